/**
 * apphost-release run in a temp directory (see release-harness.ts): keeping N
 * releases, the deploy lock and its heartbeat.
 */

import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { EXIT_CODES } from "../../components/release/phases";
import { parseStatus } from "../../components/release/script";
import { FakeHost, requireTool, writeTestApp } from "./release-harness";

describe("release script: keep N releases", function () {
  this.timeout(240000);
  let host: FakeHost;
  before(() => {
    host = new FakeHost({ releases: { keep: 2 } });
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

describe("release script: the deploy lock", function () {
  this.timeout(60000);
  let host: FakeHost;
  let holder: ChildProcess | undefined;
  before(() => {
    host = new FakeHost();
  });
  after(() => {
    if (holder?.pid) process.kill(holder.pid, "SIGTERM");
    host.cleanup();
  });

  const writeLock = (pid: number, expiresIn: number) => {
    const expires = Math.floor(Date.now() / 1000) + expiresIn;
    fs.mkdirSync(path.dirname(host.layout.lock), { recursive: true });
    fs.writeFileSync(host.layout.lock, `owner=bob@desk\npid=${pid}\nexpires=${expires}\ncommand=deploy x\n`);
  };

  it("a live, unexpired lock refuses (18) naming the owner and how to clear it", async () => {
    holder = spawn("bash", ["-c", "exec -a apphost-release sleep 60"], { stdio: "ignore" });
    await new Promise((res) => setTimeout(res, 200));
    writeLock(holder.pid!, 600);
    const r = host.run(["--owner", "alice@laptop", "rollback"]);
    assert.equal(r.status, EXIT_CODES.locked, r.stderr);
    assert.match(r.stderr, /deploy lock held by bob@desk \(pid \d+, deploy x, expires \d{4}-\d\d-\d\dT/);
    assert.match(r.stderr, /apphost-release unlock/);
    assert.match(host.read(host.layout.lock), /owner=bob@desk/, "the holder's lock is left alone");
    assert.equal(host.releaseLog().length, 0);
    const st = parseStatus(host.run(["status"]).stdout);
    assert.match(st.lock, /^bob@desk/);
  });

  it("an expired lock whose process still runs is never taken over (a stuck or very long deploy)", () => {
    writeLock(holder!.pid!, -5);
    const r = host.run(["--owner", "alice@laptop", "rollback"]);
    assert.equal(r.status, EXIT_CODES.locked, r.stderr);
    assert.match(
      r.stderr,
      /deploy lock held by bob@desk \(pid \d+, deploy x, expires .*\): it expired, but its process still runs\. If it is stuck, kill pid \d+, or clear the lock with: sudo .* unlock/,
    );
    assert.match(host.read(host.layout.lock), /owner=bob@desk/, "the holder's lock is left alone");
  });

  it("an expired lock whose process is gone is taken over with a warning", () => {
    writeLock(999999, -5);
    const r = host.run(["--owner", "alice@laptop", "rollback"]);
    assert.match(
      r.stderr,
      /warning: taking over the expired deploy lock of bob@desk .*: its process is gone/,
    );
    assert.equal(r.status, EXIT_CODES.nothingToRollBack, r.stderr);
    assert.ok(!fs.existsSync(host.layout.lock), "released on exit");
  });

  it("an unexpired lock whose process is gone is taken over with a warning", () => {
    writeLock(999999, 600);
    const r = host.run(["rollback"]);
    assert.match(r.stderr, /warning: taking over the deploy lock of bob@desk .*: its process is gone/);
    assert.equal(r.status, EXIT_CODES.nothingToRollBack, r.stderr);
  });

  it("unlock removes a lock and says whose it was", () => {
    writeLock(holder!.pid!, 600);
    const r = host.run(["unlock"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: the lock holder \(pid \d+\) is still running/);
    assert.match(r.stderr, /removing the deploy lock of bob@desk/);
    assert.ok(!fs.existsSync(host.layout.lock));
    assert.match(host.run(["unlock"]).stderr, /no deploy lock/);
  });
});

describe("release script: the lock's heartbeat", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    // TTL 1 minute: the heartbeat renews every 3 s.
    host = new FakeHost({ releases: { lockTtlMinutes: 1 } });
  });
  after(() => host.cleanup());

  it("renews the lock during a long phase, and a deploy whose lock was taken stops before it switches", async () => {
    const v1 = "20250101120000-c1c1c1c1";
    // A 10 s migration, and a marker when it starts.
    const app = writeTestApp(path.join(host.tmp, "slow"), { version: "slow", migrationDelaySeconds: 10 });
    const child = host.spawnDeploy(app, v1);
    let stderr = "";
    child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
    child.stdout!.resume();
    const marker = path.join(host.layout.data, "migrating");
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    for (let i = 0; i < 600 && !fs.existsSync(marker); i++) await sleep(100);
    assert.ok(fs.existsSync(marker), `the migration never started:\n${stderr}`);
    const expires = () => Number(/^expires=(\d+)$/m.exec(host.read(host.layout.lock))?.[1] ?? 0);
    const first = expires();
    await sleep(4500);
    const renewed = expires();
    assert.ok(renewed > first, `the lock was not renewed during the migration (${first} -> ${renewed})`);
    // Someone clears the lock and another deploy takes it while this one migrates.
    fs.writeFileSync(
      host.layout.lock,
      `owner=carol@desk\npid=${process.pid}\nexpires=${Math.floor(Date.now() / 1000) + 600}\ncommand=deploy other\n`,
    );
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, EXIT_CODES.locked, stderr);
    assert.match(
      stderr,
      /the deploy lock is no longer this one's \(now carol@desk .*\); stopping before phase publish/,
    );
    assert.equal(fs.existsSync(host.layout.current), false, "it switched anyway");
    assert.match(host.read(host.layout.lock), /owner=carol@desk/, "the other deploy's lock was touched");
  });
});
