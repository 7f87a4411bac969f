/**
 * apphost-release run in a temp directory (see release-harness.ts): the command
 * drop-ins. `pulumi up` writes a process's changed unit before the release runs;
 * each process runs the command its release wrote beside the unit, so a release
 * that fails leaves every process one restart away from what it ran.
 */

import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { EXIT_CODES } from "../../components/release/phases";
import { commandDropIn } from "../../components/paths";
import { FakeHost, writeTestApp } from "./release-harness";

describe("release script: each process runs the command its release wrote (the command drop-ins)", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true })));
  after(() => host.cleanup());

  const webUnit = (port: number) => `apphost-shop-test-web@${port}.service`;
  const worker = "apphost-shop-test-worker.service";
  const dropIn = (unit: string) => commandDropIn(host.layout, unit);
  const execStart = (unit: string) => /^ExecStart=(.+)$/m.exec(host.read(dropIn(unit)))?.[1];
  const processes = (web: string, work: string) => ({
    processes: [
      { name: "web", command: web, kind: "web" as const },
      { name: "worker", command: work, kind: "worker" as const },
    ],
  });
  const v1 = "20250101120000-a1a1a1a1";

  it("a deploy writes the web instance's before starting it, and the worker's at the switch", () => {
    const before = host.calls().length;
    const r = host.deploy(writeTestApp(path.join(host.tmp, "v1"), { version: "v1" }), v1);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(execStart(webUnit(host.firstPort)), '/bin/sh -c "exec python3 server.py"');
    assert.equal(execStart(worker), '/bin/sh -c "exec true"');
    assert.match(host.read(dropIn(worker)), /^ExecStart=\n/m, "the unit's own command is reset first");
    // Each written, then systemd reloaded, before the unit (re)starts.
    const calls = host.calls().slice(before);
    const reloads = calls.flatMap((c, i) => (c === "daemon-reload" ? [i] : []));
    assert.equal(reloads.length, 2);
    assert.ok(reloads[0] < calls.indexOf(`restart ${webUnit(host.firstPort)}`));
    assert.ok(reloads[1] < calls.indexOf(`restart ${worker}`));
    assert.deepEqual(fs.readdirSync(path.dirname(dropIn(worker))), ["apphost-command.conf"]);
  });

  it("a release with new commands that fails the health gate (16) leaves the live instance's and the worker's as they were", () => {
    host.rewrite(processes("python3 server.py --v2", "true v2"));
    const r = host.deploy(
      writeTestApp(path.join(host.tmp, "v2"), { version: "v2", healthy: false }),
      "20250102120000-b2b2b2b2",
    );
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.equal(execStart(webUnit(host.firstPort)), '/bin/sh -c "exec python3 server.py"');
    assert.equal(execStart(worker), '/bin/sh -c "exec true"');
    // The failed instance's is its own, on the port no instance now runs on.
    assert.equal(execStart(webUnit(host.basePort)), '/bin/sh -c "exec python3 server.py --v2"');
  });

  it("one that fails after the switch (a worker's start job fails) puts the worker's back, then reloads", () => {
    host.failWorkerRestartOnce();
    const before = host.calls().length;
    const r = host.deploy(
      writeTestApp(path.join(host.tmp, "v3"), { version: "v3" }),
      "20250103120000-c3c3c3c3",
    );
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), v1);
    assert.equal(execStart(worker), '/bin/sh -c "exec true"');
    assert.deepEqual(fs.readdirSync(path.dirname(dropIn(worker))), ["apphost-command.conf"]);
    // Written with the switch, put back by the mirror, reloaded, then the old release's worker started.
    const calls = host.calls().slice(before);
    const stop = calls.indexOf(`stop ${worker}`);
    const reload = calls.indexOf("daemon-reload", stop);
    assert.ok(stop >= 0 && reload > stop, calls.join("\n"));
    assert.ok(calls.indexOf(`restart ${worker}`, reload) > reload, calls.join("\n"));
  });

  it("the next release that goes live brings the new commands in, and keeps no copy", () => {
    const r = host.deploy(
      writeTestApp(path.join(host.tmp, "v4"), { version: "v4" }),
      "20250104120000-d4d4d4d4",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(execStart(webUnit(host.basePort)), '/bin/sh -c "exec python3 server.py --v2"');
    assert.equal(execStart(worker), '/bin/sh -c "exec true v2"');
    assert.deepEqual(fs.readdirSync(path.dirname(dropIn(worker))), ["apphost-command.conf"]);
  });
});
