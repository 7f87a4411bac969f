/**
 * apphost-release run in a temp directory (see release-harness.ts): keeping N
 * releases and the venvs they use.
 */

import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { EXIT_CODES } from "../../components/release/phases";
import { FakeHost, writeTestApp } from "./release-harness";

describe("release script: keep N releases", function () {
  this.timeout(240000);
  let host: FakeHost;
  before(() => {
    // Releases 1 and 2 have no requirements.txt, 3 and more have one: two venvs, each a copy of the shared one
    // (installs are the deploy story's; pip here cost 6 s of CPU).
    host = new FakeHost({ releases: { keep: 2 }, sharedVenv: "with-requirements" });
  });
  after(() => host.cleanup());

  it("keeps the newest N, never current nor previous, and prunes unused venvs", () => {
    const ids = [1, 2, 3, 4].map((i) => `2025010${i}120000-${String(i).repeat(8)}`);
    ids.forEach((id, i) => {
      const app = writeTestApp(path.join(host.tmp, `k${i}`), { version: `k${i}` });
      // Release 3 and 4 have other requirements: a new venv; the first one becomes unused.
      if (i >= 2) fs.writeFileSync(path.join(app, "requirements.txt"), "# no packages\n");
      const r = host.deploy(app, id);
      assert.equal(r.status, 0, r.stderr);
    });
    assert.deepEqual(fs.readdirSync(host.layout.releases).sort(), ids.slice(2));
    assert.equal(fs.readdirSync(host.layout.venvs).length, 1, "the venv only releases 1 and 2 used is gone");
    // Lines the release log should not hold (a blank one, no tabs, no release id first) are passed over.
    fs.appendFileSync(host.layout.releaseLog, "\n\tx\t-\tdeployed\ngarbage deployed\n../x\tt\t-\tdeployed\n");
    // Roll back to release 3, then deploy 5: 5 is newest, 4 is kept by count, 3 is current's previous... and protected.
    let r = host.run(["rollback"]);
    assert.equal(r.status, 0, r.stderr);
    const id5 = "20250105120000-55555555";
    const app5 = writeTestApp(path.join(host.tmp, "k5"), { version: "k5" });
    fs.writeFileSync(path.join(app5, "requirements.txt"), "# no packages\n");
    r = host.deploy(app5, id5);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(host.layout.releases).sort(), [ids[2], ids[3], id5]);
    // A release that fails its health gate stays while it is the newest (a retry reuses it) ...
    const id6 = "20250106120000-66666666";
    r = host.deploy(writeTestApp(path.join(host.tmp, "k6"), { version: "k6", healthy: false }), id6);
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.deepEqual(fs.readdirSync(host.layout.releases).sort(), [ids[2], ids[3], id5, id6]);
    // ... and does not count toward keep: after the next good release, the two newest that served remain.
    const id7 = "20250107120000-77777777";
    const app7 = writeTestApp(path.join(host.tmp, "k7"), { version: "k7" });
    fs.writeFileSync(path.join(app7, "requirements.txt"), "# no packages\n");
    r = host.deploy(app7, id7);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(host.layout.releases).sort(), [id5, id7]);
    assert.match(r.stderr, new RegExp(`finish: removed release ${id6} \\(it never served\\)`));
    assert.match(r.stderr, new RegExp(`finish: removed release ${ids[3]} \\(apphost:releases.keep = 2\\)`));
  });
});
