/**
 * apphost-release run in a temp directory (see release-harness.ts): detached
 * jobs (start, follow), whose client may go away while the job goes on.
 */

import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { EXIT_CODES } from "../../components/release/phases";
import { parseResult } from "../../components/release/script";
import { FakeHost, requireTool, sqlite, untilStderr, writeTestApp } from "./release-harness";

describe("release script: detached jobs (start, follow)", function () {
  this.timeout(120000);
  let host: FakeHost;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const jobDir = (id: string) => path.join(host.layout.jobs, id);
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost({ sharedVenv: true });
  });
  after(() => host.cleanup());

  it("start deploy runs the deploy in the job unit with the artifact as its stdin, and reports it like deploy", () => {
    const v1 = "20250101120000-d1d1d1d1";
    const r = host.start(writeTestApp(path.join(host.tmp, "v1"), { version: "v1" }), v1, "key-v1");
    assert.equal(r.status, 0, r.stderr);
    const res = parseResult(r.stdout);
    assert.equal(res.release, v1);
    assert.equal(res.outcome, "deployed");
    assert.equal(res.job_key, "key-v1");
    assert.equal(res.job_command, "deploy");
    assert.equal(res.job_status, "0");
    assert.equal(res.live, v1);
    assert.match(r.stderr, /apphost: phase migrate: ok/, "the job's progress reaches the client");
    const run = host.calls().find((c) => c.startsWith("systemd-run "));
    assert.ok(run, "systemd-run was not called");
    assert.match(run, new RegExp(`--unit=apphost-shop-test-job@${res.job_id}\\.service `));
    assert.match(run, new RegExp(`--property=StandardInput=file:${jobDir(res.job_id)}/in `));
    assert.match(run, new RegExp(` job-run ${res.job_id} deploy ${v1} `));
    assert.equal(fs.statSync(host.layout.jobs).mode & 0o777, 0o700, "jobs/ is root-only");
    assert.equal(
      fs.existsSync(path.join(jobDir(res.job_id), "in")),
      false,
      "the artifact copy was not removed",
    );
    assert.equal(host.read(path.join(jobDir(res.job_id), "rc")).trim(), "0");
    assert.equal(fs.readlinkSync(host.layout.current).endsWith(v1), true);
  });

  it("the client goes away mid-migration: the job finishes on the host, and `follow <job>` reattaches to its whole output", async () => {
    const v2 = "20250102120000-d2d2d2d2";
    const app = writeTestApp(path.join(host.tmp, "v2"), {
      version: "v2",
      migrations: ["CREATE TABLE added_by_v2 (x)"],
      migrationGate: true,
    });
    const child = host.spawnStart(app, v2);
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    await untilStderr(child, "phase migrate: start");
    // A lost SSH session: the client's pipes close and it is killed.
    child.stdout!.destroy();
    child.stderr!.destroy();
    child.kill("SIGKILL");
    await new Promise((resolve) => child.on("exit", resolve));
    const job = /^job_id=(\S+)$/m.exec(out)?.[1];
    assert.ok(job, `start printed no job id first: ${out}`);
    assert.notEqual(
      fs.readlinkSync(host.layout.current).endsWith(v2),
      true,
      "it went live before the migration ended",
    );
    host.proceed();
    const again = host.run(["follow", job]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(
      again.stderr,
      /apphost: phase check: start[\s\S]*phase migrate: ok[\s\S]*release 20250102120000-d2d2d2d2 deployed/,
    );
    const res = parseResult(again.stdout);
    assert.equal(res.release, v2);
    assert.equal(res.job_status, "0");
    assert.equal(fs.readlinkSync(host.layout.current).endsWith(v2), true);
    assert.equal(
      sqlite(host.db, "SELECT count(*) FROM sqlite_master WHERE name = 'added_by_v2'").trim(),
      "1",
    );
    // Without a job id: the latest job's result alone, not its output again.
    const latest = host.run(["follow"]);
    assert.equal(latest.status, 0, latest.stderr);
    assert.equal(latest.stderr, "");
    assert.equal(parseResult(latest.stdout).job_id, job);
    assert.equal(parseResult(latest.stdout).outcome, "deployed");
  });

  it("a failed deploy's exit status is follow's, after the job rolled back on its own", () => {
    const v3 = "20250103120000-d3d3d3d3";
    const r = host.start(writeTestApp(path.join(host.tmp, "v3"), { version: "v3", failMigration: true }), v3);
    assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
    assert.match(r.stderr, /apphost: phase migrate failed: /);
    assert.match(r.stderr, /apphost: rollback: done/);
    assert.equal(parseResult(r.stdout).job_status, String(EXIT_CODES.migrate));
    assert.equal(fs.readlinkSync(host.layout.current).endsWith("20250102120000-d2d2d2d2"), true);
  });

  it("a second start while a job runs is refused, naming the job and how to follow it; its stdin is drained", async () => {
    const v4 = "20250104120000-d4d4d4d4";
    // Its unit's process starts 0.5 s late: the second start comes before the job has written its pid.
    host.slowJobStarts(0.5);
    const child = host.spawnStart(
      writeTestApp(path.join(host.tmp, "v4"), { version: "v4", migrationGate: true }),
      v4,
    );
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.resume();
    for (let i = 0; i < 300 && !/^job_id=/m.test(out); i++) await sleep(100);
    const job = /^job_id=(\S+)$/m.exec(out)?.[1];
    assert.ok(job, "no job id");
    const r = host.start(
      writeTestApp(path.join(host.tmp, "v5"), { version: "v5" }),
      "20250105120000-d5d5d5d5",
    );
    assert.equal(r.status, EXIT_CODES.locked, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `a job is still running on this host: deploy ${v4} .*started by .* \\(job ${job}, unit apphost-shop-test-job@${job}\\.service\\)\\. Follow it with: sudo \\S+ follow ${job}`,
      ),
    );
    host.slowJobStarts(0);
    host.proceed();
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, 0);
  });

  it("a job killed outright (no exit status) is reported as lost, with where to look", async () => {
    const v6 = "20250106120000-d6d6d6d6";
    const child = host.spawnStart(
      writeTestApp(path.join(host.tmp, "v6"), { version: "v6", migrationGate: true }),
      v6,
    );
    let out = "";
    child.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr!.resume();
    const marker = path.join(host.layout.data, "migrating");
    fs.rmSync(marker, { force: true });
    for (let i = 0; i < 600 && !fs.existsSync(marker); i++) await sleep(100);
    const job = /^job_id=(\S+)$/m.exec(out)?.[1];
    assert.ok(job && fs.existsSync(marker), "the job never reached its migration");
    // The whole unit killed with SIGKILL (what an OOM kill or `systemctl kill -s KILL` does): its session.
    const wrapper = Number(host.read(path.join(jobDir(job), "pid")));
    process.kill(-wrapper, "SIGKILL");
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, EXIT_CODES.jobLost);
    const r = host.run(["follow", job]);
    assert.equal(r.status, EXIT_CODES.jobLost);
    assert.match(
      r.stderr,
      new RegExp(`job ${job} \\(deploy ${v6} .*\\) ended without an exit status: its unit was killed`),
    );
    host.run(["unlock"]);
  });

  it("keeps the newest 10 jobs' records", () => {
    for (let i = 0; i < 11; i++) {
      fs.mkdirSync(path.join(host.layout.jobs, `20240101T0000${String(i).padStart(2, "0")}Z-1`), {
        recursive: true,
      });
    }
    const r = host.run(["start", "rollback"]);
    assert.equal(r.status, 0, r.stderr);
    const left = fs.readdirSync(host.layout.jobs).filter((f) => /^\d{8}T\d{6}Z-\d+$/.test(f));
    assert.equal(left.length, 10, left.join(" "));
    assert.ok(!left.some((f) => f.startsWith("20240101T000000Z")), "the oldest was kept");
  });

  it("each job runs in a unit of its own: the previous job's unit, still loaded, does not hold up the next", () => {
    // The fake systemd-run keeps every unit it started loaded, as systemd does a job's unit it has not
    // collected yet (a process the job left, which systemd under cgroup v1 in a container may not see go).
    const units = () =>
      host
        .calls()
        .filter((c) => c.startsWith("systemd-run "))
        .map((c) => /--unit=(\S+)/.exec(c)?.[1]);
    const before = units().length;
    const v7 = writeTestApp(path.join(host.tmp, "v7"), { version: "v7" });
    const jobs = [host.run(["start", "rollback"]), host.start(v7, "20250107120000-d7d7d7d7")].map((r) => {
      assert.equal(r.status, 0, r.stderr);
      const res = parseResult(r.stdout);
      assert.equal(res.job_status, "0");
      return res.job_id;
    });
    assert.deepEqual(
      units().slice(before),
      jobs.map((j) => `apphost-shop-test-job@${j}.service`),
    );
  });
});
