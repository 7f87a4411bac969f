/**
 * apphost-release run in a temp directory (see release-harness.ts): the
 * deploy lock and its heartbeat.
 */

import { spawn, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { EXIT_CODES } from "../../components/release/phases";
import { parseStatus } from "../../components/release/script";
import { FakeHost, requireTool, writeTestApp } from "./release-harness";

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

  it("workers stop|start: the workers under the lock, refused while a deploy holds it (a restore's other app hosts)", () => {
    // systemctl's calls so far (none before the first: no log yet).
    const calls = () => {
      try {
        return host.calls();
      } catch {
        return [];
      }
    };
    writeLock(holder!.pid!, 600);
    let r = host.run(["--owner=ana@laptop:npm-run-restore", "workers", "stop"]);
    assert.equal(r.status, EXIT_CODES.locked, r.stderr);
    assert.match(r.stderr, /deploy lock held by bob@desk/);
    assert.equal(calls().filter((c) => /^(stop|start) /.test(c)).length, 0, "a worker was touched");
    fs.rmSync(host.layout.lock);
    r = host.run(["--owner=ana@laptop:npm-run-restore", "workers", "stop"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "workers=apphost-shop-test-worker.service\n");
    assert.match(r.stderr, /lock: taken by ana@laptop:npm-run-restore/);
    assert.equal(calls().at(-1), "stop apphost-shop-test-worker.service");
    r = host.run(["workers", "start"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(calls().at(-1), "start apphost-shop-test-worker.service");
    assert.ok(!fs.existsSync(host.layout.lock), "released on exit");
    r = host.run(["workers", "restart"]);
    assert.equal(r.status, EXIT_CODES.usage);
    assert.match(r.stderr, /^apphost: workers: stop or start, not "restart"\nusage: .* workers stop\|start /);
  });
});

describe("release script: the lock's heartbeat", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    // TTL 1 minute; the heartbeat renews every second (every 3 s in production with this TTL).
    host = new FakeHost({
      releases: { lockTtlMinutes: 1 },
      timing: { lockRenewSeconds: 1 },
      sharedVenv: true,
    });
  });
  after(() => host.cleanup());

  it("renews the lock during a long phase, and a deploy whose lock was taken stops before it switches", async () => {
    const v1 = "20250101120000-c1c1c1c1";
    // A migration that waits for the test (host.proceed()), and a marker when it starts.
    const app = writeTestApp(path.join(host.tmp, "slow"), { version: "slow", migrationGate: true });
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
    // Renewed while the migration runs: within a few heartbeats (expires has a resolution of one second).
    for (let i = 0; i < 100 && expires() <= first; i++) await sleep(100);
    const renewed = expires();
    assert.ok(renewed > first, `the lock was not renewed during the migration (${first} -> ${renewed})`);
    // Someone clears the lock and another deploy takes it while this one migrates (right after a renewal,
    // so the heartbeat's next look, a second away, finds it).
    fs.writeFileSync(
      host.layout.lock,
      `owner=carol@desk\npid=${process.pid}\nexpires=${Math.floor(Date.now() / 1000) + 600}\ncommand=deploy other\n`,
    );
    host.proceed();
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
