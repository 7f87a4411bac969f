/**
 * apphost-release run in a temp directory (see release-harness.ts): a web
 * process that listens on its own port and binds a fixed one besides it
 * (uWSGI's stats server in linkding's uwsgi.ini, `stats = 127.0.0.1:9191`).
 * The first release serves; the next one's instance finds the live one holding
 * that port and exits, and the gate names the port, not the web port.
 */

import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import assert from "assert/strict";
import { EXIT_CODES } from "../../components/release/phases";
import { FakeHost, writeTestApp } from "./release-harness";

describe("release script: a web process that binds a fixed port besides its own", function () {
  this.timeout(60000);
  let host: FakeHost;
  // A gate that would wait 30 s.
  before(() => (host = new FakeHost({ sharedVenv: true, releases: { healthTimeoutSeconds: 30 } })));
  after(() => host.cleanup());

  it("serves the first release, and the second's gate names that port and the listener to change (16)", async () => {
    // A free port for the stats server: one the kernel just handed out and took back.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const stats = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const v1 = "20250110120000-d1d1d1d1";
    let r = host.deploy(writeTestApp(path.join(host.tmp, "v1"), { version: "v1", alsoBinds: stats }), v1);
    assert.equal(r.status, 0, r.stderr);
    host.restartWebOnExit();
    r = host.deploy(
      writeTestApp(path.join(host.tmp, "v2"), { version: "v2", alsoBinds: stats }),
      "20250111120000-d2d2d2d2",
    );
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    const unit = `apphost-shop-test-web@${host.basePort}.service`.replace(/[.@]/g, "\\$&");
    const m = new RegExp(
      `${unit} did not answer 2xx on http://127\\.0\\.0\\.1:${host.basePort}/healthz \\(last answer: HTTP 000; ` +
        `systemd restarted ${unit} (\\d+) times, its journal saying port ${stats} is already in use, so the gate stopped waiting: (.*)\\); ` +
        "traffic stays on the old instance",
    ).exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.ok(Number(m[1]) >= 2, `${m[1]} restarts`);
    // The live instance holds it (the harness's /proc puts each instance in its unit's cgroup).
    assert.equal(
      m[2],
      `besides its own port, ${host.basePort}, the web process binds port ${stats}, which the live release's instance, ` +
        `apphost-shop-test-web@${host.firstPort}.service, holds: ` +
        "each release starts beside the one serving, so a fixed port of its own serves one release at most; turn that listener off, " +
        "or give it a port that differs per release (uWSGI's stats server, `stats = 127.0.0.1:9191` in uwsgi.ini, needs neither to serve; " +
        "a metrics or debug server)",
    );
    assert.equal(JSON.parse((await host.get(host.firstPort)).body).version, "v1");
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), v1);
  });

  it("one whose only port is fixed, the live release's (uvicorn --port), is still told to listen on $PORT (16)", async () => {
    const other = new FakeHost({ sharedVenv: true, releases: { healthTimeoutSeconds: 30 } });
    try {
      // The first release's port, where it serves; the second asks for it again, and uvicorn's line names it.
      const fixed = { bindsPort: other.firstPort, bindErrorAsUvicorn: true };
      let r = other.deploy(
        writeTestApp(path.join(other.tmp, "v1"), { version: "v1", ...fixed }),
        "20250112120000-d3d3d3d3",
      );
      assert.equal(r.status, 0, r.stderr);
      other.restartWebOnExit();
      r = other.deploy(
        writeTestApp(path.join(other.tmp, "v2"), { version: "v2", ...fixed }),
        "20250113120000-d4d4d4d4",
      );
      assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
      assert.match(
        r.stderr,
        /error while attempting to bind on address \('127\.0\.0\.1', \d+\): address already in use/,
      );
      assert.match(
        r.stderr,
        new RegExp(
          `its journal saying an address is already in use, so the gate stopped waiting: the web process \\(apphost:app\\.processes\\) must listen on the port in \\$PORT, ${other.basePort} for this release`,
        ),
      );
    } finally {
      other.cleanup();
    }
  });
});
