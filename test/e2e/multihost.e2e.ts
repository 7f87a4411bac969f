/**
 * Several app hosts behind a balancer host, end to end (apphost:host.addresses
 * + apphost:lb): four sandboxes of this spec's own, the balancer apphost-mlb
 * (10.87.0.2, which also plays the managed Postgres the app hosts share, as
 * `database.kind: external`) and the app hosts apphost-m1, -m2, -m3 (10.88.0,
 * 10.89.0, 10.90.0). All traffic goes to the balancer from this machine.
 *
 *  1. The first `up` serves the sample app through the balancer from both app
 *     hosts; the migration ran once, on the first; the app hosts' proxies close
 *     connections from anyone but the balancer.
 *  2. Maintenance switches both hosts; a restore on the first holds the second
 *     in maintenance, its worker stopped. A code release under steady load
 *     fails 0 requests; both hosts answer before and after.
 *  3. Stopping one app host's web unit by hand: the balancer stops sending it
 *     traffic (failed requests measured and printed); `up --refresh` brings it back.
 *  4. 2 -> 3 app hosts, then 3 -> 2, each one `up` under load, 0 failed.
 *  5. Ten reloads of the balancer's Caddy under load, 0 failed: what 4 relies on.
 *
 * The sandboxes and the stack come from ./multihost-lib.ts (bench/rolling.ts uses them too).
 *
 * Run it alone with
 *   npx mocha -r ts-node/register/transpile-only --bail --timeout 1800000 test/e2e/multihost.e2e.ts
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { changedCount, ROOT, tempDir } from "./lib";
import { Cluster, HOSTNAME } from "./multihost-lib";
import { inSandbox, inSandboxAsync } from "./ops-lib";
import { describeLoad, type LoadReport } from "./release-lib";

const LB = { name: "apphost-mlb", subnet: "10.87.0" };
const APPS = [
  { name: "apphost-m1", subnet: "10.88.0" },
  { name: "apphost-m2", subnet: "10.89.0" },
  { name: "apphost-m3", subnet: "10.90.0" },
];
const STACK = "local-mh";
const ID = `sample-${STACK}`;

describe("several app hosts behind a balancer host, the database on none of them (real engine)", function () {
  const c = new Cluster({
    lb: LB,
    apps: APPS,
    stack: STACK,
    db: { name: "sample_mh", user: "sample_mh", password: "mh-e2e-pw-7c1d0a" },
  });
  const say = (s: string) => process.stdout.write(`      ${s}\n`);
  const up = (opts: { refresh?: boolean } = {}) => c.up(opts);
  const cli = (command: string) => c.cli(command);
  const get = (urlPath = "/") => c.get(urlPath);
  const answering = (n?: number) => c.answering(n);
  const load = () => c.load();

  /** The commands of an app host's detached jobs, oldest first (prepare, deploy, rollback). */
  const jobCommands = (i: number) =>
    inSandbox(APPS[i].name, `cat /srv/${ID}/jobs/2*/meta | sed -n 's/^command=//p'`).trim().split("\n");

  function assertNoFailures(r: LoadReport, what: string, reloads = 0): void {
    say(`load (${what}): ${describeLoad(r)}; hosts seen: ${r.hosts.join(", ")}`);
    assert.equal(r.failed, 0, r.failures.join("\n"));
    assert.ok(r.requests > 50, `only ${r.requests} requests`);
    // A reload of Caddy 2.6 may refuse a handshake it catches (resendRefusedHandshakes); never more than one each.
    assert.ok(
      r.handshakeResent <= reloads,
      `${r.handshakeResent} refused handshakes across ${reloads} reloads`,
    );
  }

  before(function () {
    c.prepare();
  });

  after(async function () {
    // APPHOST_E2E_KEEP=1 keeps the hosts and the stack as they are, to look at them.
    if (process.env.APPHOST_E2E_KEEP === "1") return;
    await c.down();
  });

  it("the first up serves the app through the balancer from both app hosts; the migration ran once, on the first", async function () {
    const res = await up();
    assert.equal(res.summary.result, "succeeded");
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);
    const health = JSON.parse(get("/healthz").body);
    assert.equal(health.status, "ok");
    assert.match(health.revision, /^\d{4}$/);
    // The migration ran on the first host only; the second says so.
    const second = inSandbox(APPS[1].name, `cat /srv/${ID}/jobs/latest/err`);
    assert.match(second, /migrate: the first app host ran it; none here/);
    assert.match(second, /backup: the first app host backs the database up before the migration; none here/);
    const first = inSandbox(APPS[0].name, `cat /srv/${ID}/jobs/latest/err`);
    assert.match(first, /backup: database dumped to /);
    // A first release: both hosts prepared it side by side, then each one's deploy reused the upload and the venv.
    const live = (res.outputs.hostsLive.value as { live: string }[])[0].live;
    for (const [i, err] of [first, second].entries()) {
      assert.deepEqual(jobCommands(i), ["prepare", "deploy"], APPS[i].name);
      assert.match(
        err,
        new RegExp(`upload: release ${live} is already on the host; reusing it`),
        APPS[i].name,
      );
      assert.match(err, /install: reusing \/srv\//, APPS[i].name);
    }
    // Every app host gets the same env file (the same generated SECRET_KEY, the same DATABASE_URL).
    const envSum = (name: string) =>
      inSandbox(name, `sha256sum /etc/apphost/${ID}.env | cut -d' ' -f1`).trim();
    assert.match(envSum(APPS[0].name), /^[0-9a-f]{64}$/);
    assert.equal(envSum(APPS[1].name), envSum(APPS[0].name));
    // The outputs name the release each host serves.
    const outputs = res.outputs.hostsLive.value as { name: string; live: string }[];
    assert.deepEqual(
      outputs.map((h) => h.name),
      ["app", "app2"],
    );
    assert.equal(new Set(outputs.map((h) => h.live)).size, 1);
    // The app hosts' proxies answer the balancer alone: this machine's connection is closed unanswered.
    const direct = spawnSync(
      "curl",
      ["-s", "--max-time", "5", "-H", `Host: ${HOSTNAME}`, `http://${c.apps[0].host}/healthz`],
      { encoding: "utf8" },
    );
    assert.equal(
      direct.status,
      52,
      `expected curl's "empty reply" (52), got ${direct.status}: ${direct.stdout}`,
    );
    // A second up changes nothing.
    const again = await up();
    assert.equal(
      changedCount(again.summary.resourceChanges),
      0,
      JSON.stringify(again.summary.resourceChanges),
    );
  });

  it("npm run doctor and npm run releases report each app host and the balancer", async function () {
    const doctor = await cli("doctor");
    say(doctor.stdout.trim().split("\n").join("\n      "));
    assert.equal(doctor.code, 0, doctor.stdout + doctor.stderr);
    const headers = doctor.stdout.split("\n").filter((l) => /^doctor: local-mh: /.test(l));
    assert.deepEqual(
      headers.map((l) => l.replace(/, release .*$/, "")),
      [
        `doctor: local-mh: app (${ID}) on admin@${c.apps[0].host}:22`,
        `doctor: local-mh: app2 (${ID}) on admin@${c.apps[1].host}:22`,
        `doctor: local-mh: balancer on admin@${c.lb.host}:22`,
      ],
    );
    assert.match(doctor.stdout, /^PASS balancer$/m);
    // The first host keeps the backups; the second has none to check.
    assert.equal((doctor.stdout.match(/^PASS backup$/gm) ?? []).length, 1);
    assert.equal(
      (doctor.stdout.match(/^SKIP backup: n\/a: the first app host keeps the backups$/gm) ?? []).length,
      1,
    );
    const releases = await cli("releases");
    assert.equal(releases.code, 0, releases.stderr);
    for (const [i, name] of ["app", "app2"].entries()) {
      const row = new RegExp(
        `^  ${name} +admin@${c.apps[i].host.replace(/\./g, "\\.")}:22 +\\d{14}-[0-9a-f]{8} .* active$`,
        "m",
      );
      assert.match(releases.stdout, row);
    }
    // exec and logs work on the first host, or on another one with --host (name or address).
    const on = (args: string[]) => c.cli(args[0], args.slice(1));
    const first = await on(["exec", "--", "hostname"]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.trim(), "apphost-m1");
    const second = await on(["exec", "--host", "app2", "--", "hostname"]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim(), "apphost-m2");
    const byAddress = await on(["logs", "--host", c.apps[1].host, "--process", "web", "--since", "30m"]);
    assert.equal(byAddress.code, 0, byAddress.stderr);
    assert.match(byAddress.stdout, /apphost-m2/);
    const unknown = await on(["exec", "--host", "app9", "--", "true"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /--host app9: not an app host of this stack; its app hosts are app \(/);
  });

  it("npm run maintenance switches both app hosts; npm run restore holds the second in maintenance, its worker stopped, while the first restores", async function () {
    const status = (urlPath: string) => c.get(urlPath, { status: true }).body;
    const hostLines = (out: string) => out.split("\n").filter((l) => l.startsWith(`maintenance: ${STACK}: `));
    const on = await c.cli("maintenance", ["on"]);
    assert.equal(on.code, 0, on.stdout + on.stderr);
    assert.deepEqual(hostLines(on.stdout), [
      `maintenance: ${STACK}: app (${c.apps[0].host}): on`,
      `maintenance: ${STACK}: app2 (${c.apps[1].host}): on`,
    ]);
    // Whichever host the balancer picks answers with the page; the health path still reaches the app.
    const codes = Array.from({ length: 12 }, () => status("/"));
    assert.deepEqual([...new Set(codes)], ["503"], codes.join(" "));
    assert.equal(status("/healthz"), "200");
    const off = await c.cli("maintenance", ["off"]);
    assert.equal(off.code, 0, off.stdout + off.stderr);
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);

    // A backup taken by hand on the first host: the schema the app runs now (the first up's pre-migration backup
    // has none of it, and the app is not healthy on it).
    const backup = path.basename(
      inSandbox(c.apps[0].name, `/srv/${ID}/bin/apphost-release backup e2e | sed -n 's/^backup=//p'`).trim(),
    );
    assert.match(backup, /-e2e\.pgdump$/);
    const worker = `apphost-${ID}-worker.service`;
    const since = inSandbox(c.apps[1].name, "date +%s").trim();
    const restored = await c.cli("restore", ["--backup", backup]);
    say(
      restored.stderr
        .split("\n")
        .filter((l) => /^restore: /.test(l))
        .join("\n      "),
    );
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    const app2 = `app2 \\(${c.apps[1].host.replace(/\./g, "\\.")}\\)`;
    assert.match(
      restored.stderr,
      new RegExp(`^restore: ${STACK}: maintenance on for ${app2} while the database is restored`, "m"),
    );
    assert.match(restored.stderr, new RegExp(`^restore: ${STACK}: maintenance off again for ${app2}$`, "m"));
    // The second host's worker would write to the database being replaced: stopped for the restore, then started.
    assert.match(
      restored.stderr,
      new RegExp(
        `^restore: ${STACK}: workers stopped on ${app2} while the database is restored: ${worker}$`,
        "m",
      ),
    );
    assert.match(restored.stderr, new RegExp(`^restore: ${STACK}: workers started again on ${app2}$`, "m"));
    const journal = inSandbox(
      c.apps[1].name,
      `journalctl -u ${worker} --since @${since} -o cat | grep -E '^(Stopped|Started) '`,
    );
    assert.match(journal, /^Stopped .*\n(.*\n)*Started /m, journal);
    assert.equal(inSandbox(c.apps[1].name, `systemctl is-active ${worker} || true`).trim(), "active");
    assert.match(
      restored.stdout,
      new RegExp(`^restore: ${STACK}: database restored from \\S+${backup}`, "m"),
    );
    const after = await c.cli("maintenance", ["status"]);
    assert.deepEqual(hostLines(after.stdout), [
      `maintenance: ${STACK}: app (${c.apps[0].host}): off`,
      `maintenance: ${STACK}: app2 (${c.apps[1].host}): off`,
    ]);
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);
  });

  it("a code release under steady load fails 0 requests; both hosts serve before and after", async function () {
    const copy = tempDir("apphost-mh-src-");
    fs.cpSync(path.join(ROOT, "examples", "sample-app"), copy, { recursive: true });
    fs.appendFileSync(path.join(copy, "app", "main.py"), "\n# release 2 (multihost e2e)\n");
    c.source = copy;
    // The same up keeps the worker to the first app host (hosts: first): the second stops and drops its unit.
    c.workerHosts = "first";
    const worker = `apphost-${ID}-worker.service`;
    assert.equal(inSandbox(c.apps[1].name, `systemctl is-active ${worker} || true`).trim(), "active");
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);
    const l = load();
    await new Promise((r) => setTimeout(r, 3000));
    const res = await up();
    await new Promise((r) => setTimeout(r, 3000));
    const r = await l.stop();
    assert.equal(res.summary.result, "succeeded");
    assertNoFailures(r, "rolling release");
    assert.equal(r.releases.length, 2, `releases seen: ${r.releases.join(", ")}`);
    assert.deepEqual([...r.hosts].sort(), [APPS[0].name, APPS[1].name]);
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);
    const live = res.outputs.hostsLive.value as { name: string; live: string }[];
    assert.equal(live[0].live, live[1].live);
    assert.equal(res.outputs.releaseId.value, live[0].live);
    // New code alone (the same requirements, no build): no prepare, each deploy uploads it in its turn.
    for (const i of [0, 1]) {
      assert.deepEqual(jobCommands(i).slice(-2), ["deploy", "deploy"], APPS[i].name);
      const err = inSandbox(APPS[i].name, `cat /srv/${ID}/jobs/latest/err`);
      assert.doesNotMatch(err, /is already on the host/, APPS[i].name);
    }
    assert.equal(inSandbox(c.apps[0].name, `systemctl is-active ${worker} || true`).trim(), "active");
    assert.equal(inSandbox(c.apps[1].name, `systemctl is-active ${worker} || true`).trim(), "inactive");
    assert.match(inSandbox(c.apps[1].name, `ls /etc/systemd/system/${worker} 2>&1 || true`), /No such file/);
  });

  it("a release that fails on the second host stops the roll and rolls the first back; nothing fails under load", async function () {
    const good = c.source;
    const broken = tempDir("apphost-mh-broken-");
    fs.cpSync(good, broken, { recursive: true });
    // Healthy on the first host, failing its health gate on the second.
    const main = path.join(broken, "app", "main.py");
    fs.writeFileSync(
      main,
      fs
        .readFileSync(main, "utf8")
        .replace(
          "def healthz():\n",
          `def healthz():\n    if socket.gethostname() == "${APPS[1].name}":\n        return JSONResponse({"status": "broken on ${APPS[1].name}"}, status_code=500)\n`,
        ),
    );
    const before = (await (await c.stack()).outputs()).releaseId.value as string;
    c.source = broken;
    const l = load();
    await new Promise((r) => setTimeout(r, 2000));
    const failed = await up().then(
      () => undefined,
      (e: Error) => e.message,
    );
    await new Promise((r) => setTimeout(r, 2000));
    const r = await l.stop();
    c.source = good;
    assert.ok(failed, "the up should have failed");
    assert.match(failed, /rolling release \d{14}-[0-9a-f]{8} stopped: app2 \(/);
    assert.match(failed, new RegExp(`hosts already done: app: rolled back to ${before}`));
    assertNoFailures(r, "a roll that failed on the second host");
    // Both hosts serve the release from before, and the next up (the good code) changes nothing there.
    const served = new Set<string>();
    for (let i = 0; i < 12; i++) served.add(JSON.parse(get("/").body).release);
    assert.deepEqual([...served], [before]);
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);
  });

  it("a build that fails on the second host stops the roll before it began: no host drained, backed up or migrated", async function () {
    const good = c.source;
    const changed = tempDir("apphost-mh-build-");
    fs.cpSync(good, changed, { recursive: true });
    fs.appendFileSync(path.join(changed, "app", "main.py"), "\n# release 3 (a build that fails on app2)\n");
    const before = (await (await c.stack()).outputs()).releaseId.value as string;
    const backups = () =>
      inSandbox(c.apps[0].name, `ls /srv/${ID}/shared/backups/ | grep -c -e '-pre-' || true`);
    const log = () => inSandbox(c.apps[0].name, `cat /srv/${ID}/releases.log`);
    const [backupsBefore, logBefore] = [backups(), log()];
    c.source = changed;
    c.build = `test "$(hostname)" != ${APPS[1].name}`;
    const l = load();
    await new Promise((r) => setTimeout(r, 2000));
    const failed = await up().then(
      () => undefined,
      (e: Error) => e.message,
    );
    const r = await l.stop();
    c.source = good;
    c.build = undefined;
    assert.ok(failed, "the up should have failed");
    assert.match(
      failed,
      /rolling release (\d{14}-[0-9a-f]{8}) stopped before it began: preparing it failed on 1 of 2 hosts\n\s*app2 \(/,
    );
    assert.match(failed, /prepare \d{14}-[0-9a-f]{8}: .*exit status 12/);
    assert.match(
      failed,
      /no host left the balancer, backed up or migrated: each serves the release it served/,
    );
    assertNoFailures(r, "a roll whose preparation failed on the second host");
    assert.deepEqual([...new Set(r.releases)], [before]);
    assert.equal(backups(), backupsBefore, "no backup on the first host");
    assert.equal(log(), logBefore, "no line in the first host's release log");
    // The first host prepared it (uploaded, installed, built), and serves the release from before.
    const id = /rolling release (\S+) stopped/.exec(failed)![1];
    assert.match(
      inSandbox(c.apps[0].name, `ls -d /srv/${ID}/releases/${id}/.apphost-installed`),
      /installed/,
    );
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);
  });

  it("stopping one app host's web unit by hand: the balancer stops sending it traffic; up --refresh brings it back", async function () {
    const l = load();
    await new Promise((r) => setTimeout(r, 2000));
    const stoppedAt = Date.now();
    inSandbox(APPS[1].name, `systemctl stop 'apphost-${ID}-web@*.service'`);
    await new Promise((r) => setTimeout(r, 3000));
    // From now on only the first host answers; the doctor names the other.
    assert.deepEqual(answering(), [APPS[0].name]);
    const doctor = await cli("doctor");
    assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
    const host = c.apps[1].host.replace(/\./g, "\\.");
    assert.match(doctor.stdout, new RegExp(`^FAIL balancer: ${host}:80 answers its health path with `, "m"));
    await new Promise((r) => setTimeout(r, 3000));
    const r = await l.stop();
    say(
      `web unit of ${APPS[1].name} stopped ${((Date.now() - stoppedAt) / 1000).toFixed(1)}s under load: ` +
        `${r.failed} failed of ${r.requests} (health-check interval 1s); ${r.failures.join("; ") || "no failure"}`,
    );
    // At most the requests of one health-check interval (the goal, and what Caddy's retry gives for GETs, is 0).
    assert.ok(r.failed <= 5, r.failures.join("\n"));
    const back = await up({ refresh: true });
    assert.equal(back.summary.result, "succeeded");
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);
  });

  it("2 -> 3 app hosts and back to 2, one up each under load, fails 0 requests (the balancer's reload cancels none in flight)", async function () {
    c.count = 3;
    // Each up reloads the balancer's Caddy once.
    let l = c.load(undefined, true);
    await new Promise((r) => setTimeout(r, 2000));
    let res = await up();
    await new Promise((r) => setTimeout(r, 2000));
    let r = await l.stop();
    assert.equal(res.summary.result, "succeeded");
    assertNoFailures(r, "2 -> 3 hosts", 1);
    assert.deepEqual(
      answering(18),
      APPS.map((a) => a.name),
    );
    const live = res.outputs.hostsLive.value as { name: string; live: string }[];
    assert.deepEqual(
      live.map((h) => h.name),
      ["app", "app2", "app3"],
    );
    assert.equal(new Set(live.map((h) => h.live)).size, 1, JSON.stringify(live));

    c.count = 2;
    l = c.load(undefined, true);
    await new Promise((r) => setTimeout(r, 2000));
    res = await up();
    await new Promise((r) => setTimeout(r, 2000));
    r = await l.stop();
    assert.equal(res.summary.result, "succeeded");
    assertNoFailures(r, "3 -> 2 hosts", 1);
    assert.deepEqual(answering(), [APPS[0].name, APPS[1].name]);
    // The removed host's stack is gone from it.
    assert.equal(inSandbox(APPS[2].name, `test -e /srv/${ID} && echo present || echo gone`).trim(), "gone");
  });

  it("ten reloads of the balancer's Caddy under load fail 0 requests (none in flight is cancelled)", async function () {
    // What the scale test relies on, ten times over: Caddy 2.6 cancelled the
    // requests in flight at a reload while the site had flush_interval -1
    // (caddyserver/caddy#5663).
    const mainPid = () => inSandbox(LB.name, "systemctl show -p MainPID --value caddy").trim();
    const before = mainPid();
    // Every other request is an event stream of half a second (three events, 0.25 s apart), so
    // each reload finds requests in flight.
    const l = c.load(["/", "/events?count=3&interval=0.25"], true);
    await new Promise((r) => setTimeout(r, 1000));
    await inSandboxAsync(LB.name, "for i in $(seq 10); do systemctl reload caddy; sleep 1; done");
    const r = await l.stop();
    assertNoFailures(r, "10 reloads of the balancer", 10);
    // Reloaded in place each time, never restarted.
    assert.equal(mainPid(), before);
  });
});
