/**
 * apphost-release run in a temp directory (see release-harness.ts): a client
 * that goes away mid-deploy (its pipes closed) while the deploy fails.
 */

import { once } from "events";
import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { EXIT_CODES } from "../../components/release/phases";
import { FakeHost, requireTool, sqlite, untilStderr, writeTestApp } from "./release-harness";

describe("release script: the client goes away in the middle of a deploy", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost({ sharedVenv: true });
  });
  after(() => host.cleanup());

  it("its pipes closed during a failing migration: the script still rolls back on the host, its output in release-output.log", async () => {
    const v1 = "20250101120000-a1a1a1a1";
    const v2 = "20250102120000-b2b2b2b2";
    const r1 = host.deploy(writeTestApp(path.join(host.tmp, "v1"), { version: "v1" }), v1);
    assert.equal(r1.status, 0, r1.stderr);
    const tablesBefore = sqlite(host.db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    // v2's migration waits until the client is gone, creates a table, then fails.
    const app = writeTestApp(path.join(host.tmp, "v2"), {
      version: "v2",
      migrations: ["CREATE TABLE half_done (x)"],
      failMigration: true,
      migrationGate: true,
    });
    const child = host.spawnDeploy(app, v2);
    // Read until the migration starts, then close both pipes as a dropped SSH session does.
    await untilStderr(child, "phase migrate: start");
    const closed = [once(child.stdout!, "close"), once(child.stderr!, "close")];
    child.stdout!.destroy();
    child.stderr!.destroy();
    await Promise.all(closed);
    host.proceed();
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, EXIT_CODES.migrate, "the script should end with the migrate phase's status");
    const out = host.read(path.join(host.layout.root, "release-output.log"));
    assert.match(out, /the client went away \(SIGPIPE\)/);
    assert.match(out, /rollback: database restored from .*-pre-20250102120000-b2b2b2b2\.db/);
    assert.deepEqual(host.releaseLog().at(-1)?.slice(0, 1), [v2]);
    assert.equal(host.releaseLog().at(-1)?.[3], "failed:migrate");
    assert.equal(
      sqlite(host.db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
      tablesBefore,
    );
    assert.equal(fs.readlinkSync(host.layout.current).endsWith(v1), true, "current moved off v1");
  });
});
