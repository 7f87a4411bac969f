/**
 * Issue 5's acceptance, end to end: releases of the sample app to the sandbox
 * host through the real engine, under a steady HTTPS load through the proxy.
 * A code release drops no request; no release (or rollback) reloads the
 * proxy: traffic moves with the stack's nftables rule, and the load window
 * checks Caddy's main process and journal; an unchanged app does no remote work; a
 * migration is backed up first; a failed migration and a failed health check
 * leave the previous release serving and the database intact; rollback on
 * purpose and back; a killed deploy converges on the next `up`; the scheduled
 * backup works; after a reboot the upstream port leads to the live instance.
 *
 * Runs in its own sandbox (apphost-h5, 10.78.0.x) and stack (local-h5), so it
 * can run beside the other spec files. Run it alone with
 *   npx mocha -r ts-node/register/transpile-only --bail --timeout 1800000 test/e2e/release.e2e.ts
 * (`--config .mocharc.e2e.json <file>` adds the file to the config's glob: it
 * runs every e2e spec, on their sandboxes too). About 4 minutes.
 */
import { strict as assert } from "assert";
import type * as auto from "@pulumi/pulumi/automation";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  changedCount,
  freshBackend,
  http,
  localStack,
  onHost,
  pulumiCli,
  ROOT,
  sandboxCommand,
  sandboxesDone,
  sandboxUp,
  type Sandbox,
} from "./lib";
import {
  appConfig,
  appVariant,
  migration,
  describeLoad,
  hostStatus,
  releasesConfig,
  startLoad,
  removeVariants,
  type Load,
  type LoadReport,
} from "./release-lib";

const HOSTNAME = "sample.local.test";
const STACK = "local-h5";
const ID = `sample-${STACK}`;
const SANDBOX = { name: "apphost-h5", subnet: "10.78.0" };
/** Short enough that the failed health check costs little; long enough for gunicorn on two cores. */
const HEALTH_TIMEOUT = 20;
const DRAIN_SECONDS = 2;

type Edits = Record<string, string | ((old: string) => string)>;

/** The sample app with `"build": <build>` in its `/` answer, plus `extra` edits. */
function variant(build: string, extra: Edits = {}): string {
  const main = extra["app/main.py"];
  return appVariant({
    ...extra,
    "app/main.py": (s) => {
      const tagged = s.replace('"app": "sample"', `"app": "sample", "build": "${build}"`);
      if (typeof main !== "function") return tagged;
      const edited = main(tagged);
      // A silent no-op would turn a failure spec into a plain release.
      if (edited === tagged) throw new Error(`variant ${build}: the edit of app/main.py changed nothing`);
      return edited;
    },
  });
}

/** 0003: a new table (expand-only, the live release keeps working). */
const MIGRATION_3 = {
  "migrations/versions/0003_add_note.py": migration(
    "0003",
    "0002",
    'op.add_column("items", sa.Column("note", sa.Text(), nullable=True))',
  ),
};
/** 0004 that creates a table, then fails. */
const MIGRATION_4_BROKEN = {
  "migrations/versions/0004_half_done.py": migration(
    "0004",
    "0003",
    'op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))\n' +
      'raise RuntimeError("migration 0004 failed on purpose after creating half_done")',
  ),
};
/** 0004, fixed. */
const MIGRATION_4 = {
  "migrations/versions/0004_half_done.py": migration(
    "0004",
    "0003",
    'op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))',
  ),
};
/** 0005: takes 10 s (time to kill the client during it), then adds a column. */
const MIGRATION_5_SLOW = {
  "migrations/versions/0005_slow.py": migration(
    "0005",
    "0004",
    'import time\ntime.sleep(10)\nop.add_column("items", sa.Column("slow", sa.Text(), nullable=True))',
  ),
};
const UNHEALTHY: Edits = {
  "app/main.py": (s) =>
    s.replace(
      '    return {"status": "ok", "release": RELEASE',
      '    return JSONResponse({"status": "broken on purpose", "release": RELEASE}, status_code=500)\n    return {"status": "ok", "release": RELEASE',
    ),
};
/** gunicorn imports the app before it binds (preload_app): the new instance needs ~8s to answer. */
const SLOW_START: Edits = {
  "app/main.py": (s) =>
    s.replace(
      "RELEASE = _release_id()\n",
      "RELEASE = _release_id()\n\nimport time  # noqa: E402\n\ntime.sleep(8)\n",
    ),
};

const sql = (query: string, file = `/srv/${ID}/shared/data/app.db`) =>
  onHost(`sqlite3 -bail -cmd '.timeout 10000' ${file} ${JSON.stringify(query)}`).stdout.trim();
const current = () => path.basename(onHost(`readlink /srv/${ID}/current`).stdout.trim());
const servedRelease = () => JSON.parse(http(sandboxRef, HOSTNAME, "/", "https").body).release as string;
const activePort = () => onHost(`cat /srv/${ID}/active-port`).stdout.trim();
const NFT_TABLE = `apphost_${ID.replace(/-/g, "_")}`;
/** The web port the stack's nftables rule sends the proxy's upstream port (8002) to. */
const ruleTarget = () =>
  /tcp dport 8002 dnat to 127\.0\.0\.1:(\d+)/.exec(
    onHost(`nft list table ip ${NFT_TABLE}`, { allowFailure: true }).stdout,
  )?.[1] ?? "";

/** Caddy's main process and the host's clock: what a release must leave alone. */
interface ProxyMark {
  pid: string;
  started: string;
  since: number;
}
function proxyMark(): ProxyMark {
  const show = onHost("systemctl show -p MainPID -p ExecMainStartTimestampMonotonic caddy; date +%s").stdout;
  return {
    pid: /^MainPID=(\d+)$/m.exec(show)?.[1] ?? "",
    started: /^ExecMainStartTimestampMonotonic=(\d+)$/m.exec(show)?.[1] ?? "",
    since: Number(show.trim().split("\n").at(-1)),
  };
}
/** No restart and no reload of Caddy since `mark` (systemd's Reloading line, or a config load on the admin API). */
function assertProxyUntouched(mark: ProxyMark): string {
  const now = proxyMark();
  assert.ok(mark.pid && mark.pid !== "0", "caddy was not running");
  assert.equal(now.pid, mark.pid, "caddy's main process changed (restarted)");
  assert.equal(now.started, mark.started, "caddy was restarted");
  const reloads = onHost(
    `journalctl --no-pager -o cat -u caddy --since @${mark.since} | grep -E 'Reloading|Reloaded|"uri":"/load"|load complete' || true`,
  ).stdout.trim();
  assert.equal(reloads, "", `caddy reloaded during the release:\n${reloads}`);
  return `caddy pid ${now.pid} unchanged, no reload in its journal since @${mark.since}`;
}
const unitState = (port: string) =>
  onHost(`systemctl is-active apphost-${ID}-web@${port}.service`, { allowFailure: true }).stdout.trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * The id of the stack's newest deploy job once it is another than `before` and
 * its own log on the host says the migration started; fails after two minutes.
 */
async function newJobMigrating(before: string): Promise<string> {
  const deadline = Date.now() + 120000;
  while (Date.now() < deadline) {
    const job = onHost(
      `[ "$(readlink /srv/${ID}/jobs/latest)" != "${before}" ] && grep -q 'phase migrate: start' /srv/${ID}/jobs/latest/err && readlink /srv/${ID}/jobs/latest`,
      { allowFailure: true },
    ).stdout.trim();
    if (job) return job;
    await sleep(200);
  }
  assert.fail("the deploy never reached its migration");
}
/** The pids of the processes whose command line matches `pattern` (pgrep -f) and of all their descendants. */
function processTree(pattern: string): number[] {
  const pids = (args: string[]) =>
    spawnSync("pgrep", args, { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
  const all: number[] = [];
  const queue = pids(["-f", pattern]);
  while (queue.length) {
    const pid = queue.shift()!;
    if (all.includes(pid)) continue;
    all.push(pid);
    queue.push(...pids(["-P", String(pid)]));
  }
  return all;
}
let sandboxRef: Sandbox;
/** The Release provider's error line in an `up` failure. */
const providerError = (message: string) =>
  /^\s*error: ((?:release|rollback) .*)$/m.exec(message)?.[1] ?? message.split("\n")[0];

describe("releases: zero-downtime, failures, rollback, a killed deploy, backups (real engine)", function () {
  let sandbox: Sandbox;
  let backend: string;
  let load: Load | undefined;
  let lastUp: auto.UpResult;
  const hadStackFile = fs.existsSync(path.join(ROOT, `Pulumi.${STACK}.yaml`));
  const log = (s: string) => process.stdout.write(s);
  const say = (s: string) => process.stdout.write(`      ${s}\n`);
  const releases = (overrides: Record<string, unknown> = {}) =>
    releasesConfig({ healthTimeoutSeconds: HEALTH_TIMEOUT, drainSeconds: DRAIN_SECONDS, ...overrides });

  /** `pulumi up` with the app at `source` (a variant directory, or the sample app) and these releases settings. */
  async function up(
    source: string,
    releasesOverrides: Record<string, unknown> = {},
    env: Record<string, string> = {},
    appOverrides: Record<string, unknown> = {},
  ): Promise<auto.UpResult> {
    const app = appConfig(source);
    const stack = await localStack(backend, {
      stackName: STACK,
      sandbox,
      config: {
        "apphost:app": {
          ...app,
          env: { ...(app.env as Record<string, string> | undefined), ...env },
          ...appOverrides,
        },
        "apphost:releases": releases(releasesOverrides),
      },
    });
    lastUp = await stack.up({ onOutput: log, configFile: stack.configFile });
    return lastUp;
  }

  /** An `up` that must fail; returns its error text. */
  async function failingUp(
    source: string,
    releasesOverrides: Record<string, unknown> = {},
    env: Record<string, string> = {},
    appOverrides: Record<string, unknown> = {},
  ): Promise<string> {
    let message = "";
    await assert.rejects(
      up(source, releasesOverrides, env, appOverrides).then(() => undefined),
      (e: Error) => {
        message = String(e.message ?? e);
        return true;
      },
    );
    return message;
  }

  let proxyBefore: ProxyMark | undefined;
  function steadyLoad(maxSeconds = 90): Load {
    proxyBefore = proxyMark();
    load = startLoad(sandbox, {
      hostname: HOSTNAME,
      paths: ["/", "/healthz"],
      keepAliveClients: 2,
      freshClients: 1,
      maxRequests: 6000,
      maxSeconds,
    });
    return load;
  }

  async function endLoad(): Promise<LoadReport> {
    const report = await load!.stop();
    load = undefined;
    say(`load: ${describeLoad(report)}`);
    // Every load window spans a release, a rollback or a refused one: none touches the proxy.
    say(`proxy: ${assertProxyUntouched(proxyBefore!)}`);
    return report;
  }

  function assertNoFailures(report: LoadReport, minRequests: number): void {
    assert.equal(report.failed, 0, `failed requests:\n${report.failures.join("\n")}`);
    // Only a proxy reload closes kept-alive client connections under a steady load, and releases do not reload it.
    assert.equal(report.resent, 0, `${report.resent} requests met a closed kept-alive connection`);
    assert.ok(report.requests >= minRequests, `only ${report.requests} requests ran`);
    assert.notEqual(report.endedBy, "maxRequests", "the load ran out of requests before the release ended");
    assert.notEqual(report.endedBy, "maxSeconds", "the load ran out of time before the release ended");
  }

  before(function () {
    // A fresh host every run: what an earlier run left must not decide this one.
    sandboxCommand(SANDBOX, "down");
    sandbox = sandboxUp(SANDBOX);
    sandboxRef = sandbox;
    backend = freshBackend();
  });

  afterEach(async function () {
    if (load) await endLoad();
  });

  after(function () {
    removeVariants();
    if (!hadStackFile) fs.rmSync(path.join(ROOT, `Pulumi.${STACK}.yaml`), { force: true });
    sandboxesDone(SANDBOX);
  });

  // Filled in as the story goes on.
  let first = "";
  let v2 = { dir: "", id: "" };

  it("deploys the sample app (the release the next ones replace)", async function () {
    const res = await up(path.join(ROOT, "examples", "sample-app"));
    assert.equal(res.summary.result, "succeeded");
    first = String(res.outputs.releaseId.value);
    assert.match(first, /^\d{14}-[0-9a-f]{8}$/);
    assert.equal(servedRelease(), first);
  });

  it("1. a code release under steady load fails no request; the old instance stops after draining", async function () {
    const oldPort = activePort();
    v2 = { dir: variant("v2"), id: "" };
    steadyLoad();
    await sleep(1500);
    const res = await up(v2.dir);
    await sleep((DRAIN_SECONDS + 1) * 1000);
    const report = await endLoad();
    say(`worst latency during the release: ${report.worstMs.toFixed(0)} ms over ${report.requests} requests`);

    assertNoFailures(report, 100);
    v2.id = String(res.outputs.releaseId.value);
    assert.notEqual(v2.id, first, "a new release id");
    assert.equal(current(), v2.id);
    assert.equal(servedRelease(), v2.id);
    assert.equal(JSON.parse(http(sandbox, HOSTNAME, "/", "https").body).build, "v2");
    assert.deepEqual(report.releases, [first, v2.id], "traffic moved once, from the old release to the new");

    const newPort = activePort();
    assert.notEqual(newPort, oldPort);
    assert.equal(unitState(newPort), "active");
    assert.equal(unitState(oldPort), "inactive", "the old web instance is stopped");
    assert.equal(ruleTarget(), newPort, "the upstream port leads to the new instance");
    // Drained: the old instance was told to stop only drainSeconds after the switch
    // (active-port is written right after the nftables rule).
    const switched = Number(onHost(`stat -c %.Y /srv/${ID}/active-port`).stdout.trim());
    const stopping = Number(
      onHost(
        `journalctl --no-pager -o short-unix -u apphost-${ID}-web@${oldPort}.service | grep ' Stopping ' | tail -n 1 | cut -d' ' -f1`,
      ).stdout.trim(),
    );
    assert.ok(stopping > 0, "no 'Stopping' line in the old instance's journal");
    say(`old instance stopped ${(stopping - switched).toFixed(2)}s after the switch`);
    assert.ok(
      stopping - switched >= DRAIN_SECONDS - 0.05,
      `stopped ${stopping - switched}s after the switch`,
    );
  });

  it("1b. the web process renamed and a worker removed in one `up`, under load: no request fails, the old name's instance and the removed worker stop; the next `up` brings both back", async function () {
    const oldPort = activePort();
    const { web, heartbeat, ...others } = appConfig(v2.dir).processes as Record<string, unknown>;
    assert.ok(web && heartbeat, "the sample stack runs web and heartbeat");
    const unit = (name: string) => `apphost-${ID}-${name}.service`;
    const state = (...units: string[]) =>
      onHost(`systemctl is-active ${units.join(" ")} || true`)
        .stdout.trim()
        .split("\n");
    assert.deepEqual(state(unit(`web@${oldPort}`), unit("heartbeat")), ["active", "active"]);

    steadyLoad();
    await sleep(1500);
    await up(v2.dir, {}, {}, { processes: { app: web, ...others } });
    await sleep((DRAIN_SECONDS + 1) * 1000);
    assertNoFailures(await endLoad(), 100);
    const newPort = activePort();
    assert.notEqual(newPort, oldPort);
    assert.equal(ruleTarget(), newPort);
    assert.deepEqual(state(unit(`app@${newPort}`), unit(`web@${oldPort}`), unit("heartbeat")), [
      "active",
      "inactive",
      "inactive",
    ]);
    // Not started again at boot either: no link left in the target's wants.
    assert.equal(
      onHost(
        `ls /etc/systemd/system/*.wants/ | grep -xF -e ${unit(`web@${oldPort}`)} -e ${unit("heartbeat")} || true`,
      ).stdout,
      "",
    );
    assert.equal(JSON.parse(http(sandbox, HOSTNAME, "/", "https").body).build, "v2");

    const res = await up(v2.dir);
    v2.id = String(res.outputs.releaseId.value);
    const port = activePort();
    assert.deepEqual(state(unit(`web@${port}`), unit("heartbeat"), unit(`app@${newPort}`)), [
      "active",
      "active",
      "inactive",
    ]);
    assert.equal(servedRelease(), v2.id);
  });

  it("2. an unchanged app: a second `up` keeps the release id and runs no remote command", async function () {
    const since = Number(onHost("date +%s").stdout.trim()) + 1;
    await sleep(1100);
    const res = await up(v2.dir);
    assert.equal(changedCount(res.summary.resourceChanges), 0, JSON.stringify(res.summary.resourceChanges));
    // Every remote step runs through sudo, which logs it; only this query itself may appear.
    const commands = onHost(
      `journalctl --no-pager -o cat --since @${since} SYSLOG_IDENTIFIER=sudo | grep 'COMMAND=' | grep -v journalctl || true`,
    ).stdout.trim();
    assert.equal(commands, "", `remote commands during the no-op up:\n${commands}`);
    assert.equal(String(res.outputs.releaseId.value), v2.id);
    assert.equal(current(), v2.id);
  });

  let v3 = "";
  it("3. a migration that adds a column runs before the switch, after a backup that passes integrity_check; existing rows are intact", async function () {
    sql("insert into items (name, done) values ('written before 0003', 1), ('also before 0003', 0)");
    const rowsBefore = sql("select id, name, done, created_at from items order by id");
    const dir = variant("v3", MIGRATION_3);
    const res = await up(dir);
    v3 = String(res.outputs.releaseId.value);
    assert.notEqual(v3, v2.id);
    assert.equal(current(), v3);
    assert.match(sql("select version_num from alembic_version"), /^0003$/);
    // The column is there, every existing row is intact, and the new column is empty on them.
    assert.match(sql("select sql from sqlite_schema where name = 'items'"), /\bnote TEXT\b/);
    assert.equal(sql("select id, name, done, created_at from items order by id"), rowsBefore);
    assert.equal(sql("select count(*) from items where note is not null"), "0");
    // The migration ran before the switch: its log was complete before the new instance started.
    const migrated = Number(
      onHost(`stat -c %Y /srv/${ID}/shared/logs/apphost-migrate-${v3}.log`).stdout.trim(),
    );
    const started = Number(
      onHost(
        `date -d "$(systemctl show -p ActiveEnterTimestamp --value apphost-${ID}-web@${activePort()}.service)" +%s`,
      ).stdout.trim(),
    );
    assert.ok(
      migrated <= started,
      `migration log written at ${migrated}, new instance started at ${started}`,
    );
    const backups = onHost(`ls -1 /srv/${ID}/shared/backups/`).stdout.trim().split("\n");
    const mine = backups.filter((f) => f.endsWith(`-pre-${v3}.db`));
    assert.equal(mine.length, 1, `backups: ${backups.join(", ")}`);
    const file = `/srv/${ID}/shared/backups/${mine[0]}`;
    assert.equal(sql("PRAGMA integrity_check", file), "ok");
    assert.equal(sql("select version_num from alembic_version", file), "0002", "taken before the migration");
    assert.equal(onHost(`stat -c '%a %U' ${file}`).stdout.trim(), "600 root");
  });

  let v4 = "";
  let failedMigration = "";
  it("4. a failed migration: `up` names the phase and shows the output; the old release serves on; schema and content hash as before; the fix deploys", async function () {
    const port = activePort();
    for (const name of ["keep me", "and me"]) {
      onHost(
        `curl -sf -X POST -H 'content-type: application/json' -d '{"name": "${name}"}' http://127.0.0.1:${port}/items`,
      );
    }
    const rowsBefore = sql("select id, name, done from items order by id");
    assert.match(rowsBefore, /keep me/);
    // SHA3 of every table's content and the schema, read through SQLite (the load only reads).
    const contentBefore = sql(".sha3sum --schema");

    steadyLoad();
    await sleep(1000);
    const message = await failingUp(variant("v4-broken", { ...MIGRATION_3, ...MIGRATION_4_BROKEN }));
    const report = await endLoad();
    say(`error: ${providerError(message)}`);
    assert.match(
      message,
      /phase migrate failed \(exit status 14\): the migration command failed: alembic upgrade head/,
    );
    assert.match(message, /RuntimeError: migration 0004 failed on purpose after creating half_done/);
    failedMigration = /release (\d{14}-[0-9a-f]{8}): phase migrate failed/.exec(message)![1];

    assertNoFailures(report, 20);
    assert.deepEqual(report.releases, [v3], "only the previous release answered");
    assert.equal(current(), v3);
    assert.equal(servedRelease(), v3);
    assert.equal(sql("select version_num from alembic_version"), "0003");
    assert.equal(
      sql("select count(*) from sqlite_schema where name = 'half_done'"),
      "0",
      "half_done is gone",
    );
    assert.equal(sql("select id, name, done from items order by id"), rowsBefore);
    assert.equal(sql(".sha3sum --schema"), contentBefore, "schema and content as before, hash for hash");
    const releaseLog = onHost(`cat /srv/${ID}/releases.log`).stdout;
    assert.match(releaseLog, new RegExp(`^${failedMigration}\\t[^\\t]+\\t[^\\t]*\\tfailed:migrate$`, "m"));
    assert.doesNotMatch(releaseLog, new RegExp(`^${failedMigration}\\t.*\\tdeployed$`, "m"));

    const res = await up(variant("v4", { ...MIGRATION_3, ...MIGRATION_4 }));
    v4 = String(res.outputs.releaseId.value);
    assert.ok(v4 !== v3 && v4 !== failedMigration);
    assert.equal(current(), v4);
    assert.equal(servedRelease(), v4);
    assert.equal(sql("select version_num from alembic_version"), "0004");
    assert.equal(sql("select id, name, done from items order by id"), rowsBefore);
  });

  let v5 = "";
  let unhealthy = "";
  it("5. a failed health check: `up` names health-gate; traffic stays on the previous release; the next `up` deploys", async function () {
    const live = activePort();
    const idle = String(8000 + 8001 - Number(live));
    const migrations = { ...MIGRATION_3, ...MIGRATION_4 };
    steadyLoad();
    await sleep(1000);
    // The failing release comes with an env change too (apphost:app.env), which pulumi up writes to the env file,
    // and new commands for web and a worker (apphost:app.processes), which it writes to their units first.
    const source = variant("v5-unhealthy", { ...migrations, ...UNHEALTHY });
    const processes = appConfig(source).processes as Record<string, { command: string; kind: string }>;
    const changed = (name: string) => ({
      ...processes[name],
      command: `FAILED_DEPLOY_COMMAND=1 ${processes[name].command}`,
    });
    const message = await failingUp(
      source,
      {},
      {
        FAILED_DEPLOY_SETTING: "never live",
      },
      { processes: { ...processes, web: changed("web"), heartbeat: changed("heartbeat") } },
    );
    const report = await endLoad();
    say(`error: ${providerError(message)}`);
    assert.match(
      message,
      // The app logs nothing of its 500: the gate quotes what it answered.
      /phase health-gate failed \(exit status 16\): .* did not answer 2xx .* \(last answer: HTTP 500; no 2xx within \d+s; the app answered: "\{"status":"broken on purpose","release":"\d{14}-[0-9a-f]{8}"\}"\)/,
    );
    unhealthy = /release (\d{14}-[0-9a-f]{8}): phase health-gate failed/.exec(message)![1];
    assertNoFailures(report, 20);
    assert.deepEqual(report.releases, [v4]);
    assert.equal(current(), v4);
    assert.equal(activePort(), live);
    assert.equal(ruleTarget(), live, "the upstream port never left the live instance");
    assert.equal(unitState(idle), "inactive", "the unhealthy instance was stopped");
    // The env file has the failed deploy's setting; the live instance, restarted (a crash, a reboot), has not.
    assert.match(onHost(`grep FAILED_DEPLOY_SETTING /etc/apphost/${ID}.env`).stdout, /never live/);
    const environ = () =>
      onHost(
        `tr '\\0' '\\n' </proc/$(systemctl show -p MainPID --value apphost-${ID}-web@${live}.service)/environ`,
      ).stdout;
    assert.match(environ(), /^APP_ENV=/m, "the live instance's environment is read");
    onHost(
      `systemctl restart apphost-${ID}-web@${live}.service && for i in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:${live}/healthz && exit 0; sleep 0.2; done; exit 1`,
    );
    assert.match(environ(), /^APP_ENV=/m);
    assert.doesNotMatch(
      environ(),
      /FAILED_DEPLOY_SETTING/,
      "the restarted live instance read the failed deploy's env",
    );
    // Nor its commands: the units have them, and the restarted web instance and worker run what they ran
    // (each one's command drop-in, written by the release that started it).
    assert.match(
      onHost(
        `cat /etc/systemd/system/apphost-${ID}-web@.service /etc/systemd/system/apphost-${ID}-heartbeat.service`,
      ).stdout,
      /^ExecStart=.*FAILED_DEPLOY_COMMAND=1 exec gunicorn[^]*^ExecStart=.*FAILED_DEPLOY_COMMAND=1 exec node heartbeat\.js/m,
    );
    assert.doesNotMatch(
      environ(),
      /FAILED_DEPLOY_COMMAND/,
      "the restarted live instance ran the failed deploy's command",
    );
    const heartbeat = `apphost-${ID}-heartbeat.service`;
    onHost(`systemctl restart ${heartbeat} && sleep 1 && systemctl is-active --quiet ${heartbeat}`);
    assert.doesNotMatch(
      onHost(`tr '\\0' '\\n' </proc/$(systemctl show -p MainPID --value ${heartbeat})/environ`).stdout,
      /FAILED_DEPLOY_COMMAND/,
      "the restarted worker ran the failed deploy's command",
    );
    assert.match(
      onHost(`tail -n 1 /srv/${ID}/releases.log`).stdout.trim(),
      new RegExp(`^${unhealthy}\\t.*\\tfailed:health-gate$`),
    );
    // Rolling back to it is refused while it is still on the host (the next deploy prunes
    // a release that never served, see spec 6); a refusal changes nothing.
    const refused = await failingUp(variant("v4", migrations), { rollbackTo: unhealthy });
    say(`error: ${providerError(refused)}`);
    assert.match(
      refused,
      new RegExp(
        `rollback to ${unhealthy}: phase choose failed \\(exit status 22\\): release ${unhealthy} never served successfully \\(release log: failed:health-gate\\)`,
      ),
    );
    assert.equal(current(), v4);

    steadyLoad();
    await sleep(1000);
    const res = await up(variant("v5", migrations));
    const report2 = await endLoad();
    v5 = String(res.outputs.releaseId.value);
    assert.ok(v5 !== v4 && v5 !== unhealthy);
    assertNoFailures(report2, 20);
    assert.equal(current(), v5);
    assert.equal(servedRelease(), v5);
    assert.equal(activePort(), idle);
  });

  it("6. rollback on purpose: `releases.rollbackTo` serves the previous release, unsetting it returns to the newest; unusable targets are refused", async function () {
    const v5dir = variant("v5", { ...MIGRATION_3, ...MIGRATION_4 });
    assert.equal(hostStatus(ID).previous, v4);

    steadyLoad();
    await sleep(1000);
    let res = await up(v5dir, { rollbackTo: v4 });
    let report = await endLoad();
    assertNoFailures(report, 20);
    assert.equal(String(res.outputs.liveRelease.value), v4);
    assert.equal(String(res.outputs.releaseId.value), v5, "the newest release is still the declared one");
    assert.equal(current(), v4);
    assert.equal(servedRelease(), v4);
    assert.equal(ruleTarget(), activePort(), "the rollback switched the upstream port too");
    assert.match(
      onHost(`tail -n 1 /srv/${ID}/releases.log`).stdout.trim(),
      new RegExp(`^${v4}\\t.*\\trolled-back$`),
    );
    assert.equal(
      sql("select version_num from alembic_version"),
      "0004",
      "a rollback never touches the database",
    );

    steadyLoad();
    await sleep(1000);
    res = await up(v5dir);
    report = await endLoad();
    assertNoFailures(report, 20);
    assert.equal(String(res.outputs.liveRelease.value), v5);
    assert.equal(current(), v5);
    assert.equal(servedRelease(), v5);

    const missing = "20200101000000-deadbeef";
    let message = await failingUp(v5dir, { rollbackTo: missing });
    say(`error: ${providerError(message)}`);
    assert.match(
      message,
      new RegExp(
        `rollback to ${missing}: phase choose failed \\(exit status 22\\): release ${missing} is not on this host`,
      ),
    );
    // The release whose health gate failed never served: v5's deploy pruned it (releases.keep counts served ones).
    message = await failingUp(v5dir, { rollbackTo: unhealthy });
    say(`error: ${providerError(message)}`);
    assert.match(
      message,
      new RegExp(
        `rollback to ${unhealthy}: phase choose failed \\(exit status 22\\): release ${unhealthy} is not on this host`,
      ),
    );
    assert.equal(current(), v5, "a refused rollback moves nothing");
    assert.equal(servedRelease(), v5);
    assert.doesNotMatch(
      onHost(`cat /srv/${ID}/releases.log`).stdout,
      new RegExp(`^(${missing}|${unhealthy})\\t.*choose`, "m"),
    );
    res = await up(v5dir);
    assert.equal(changedCount(res.summary.resourceChanges), 0, JSON.stringify(res.summary.resourceChanges));
  });

  it("7. a deploy killed on the host mid-way: the previous release serves throughout and the next `up` converges", async function () {
    const live = activePort();
    const idle = String(8000 + 8001 - Number(live));
    const dir = variant("v6", { ...MIGRATION_3, ...MIGRATION_4, ...SLOW_START });
    steadyLoad(150);
    await sleep(1000);
    const killed = up(dir).then(
      () => "",
      (e: Error) => String(e.message ?? e),
    );
    // Wait for the new instance to be starting (publish done, health gate polling), then kill the deploy.
    let pid = "";
    const deadline = Date.now() + 90000;
    while (Date.now() < deadline) {
      const probe = onHost(
        `cat /srv/${ID}/deploy.lock 2>/dev/null; echo unit=$(systemctl is-active apphost-${ID}-web@${idle}.service)`,
        { allowFailure: true },
      ).stdout;
      const lockPid = /^pid=(\d+)$/m.exec(probe)?.[1];
      if (lockPid && /^command=deploy /m.test(probe) && /^unit=(active|activating)$/m.test(probe)) {
        pid = lockPid;
        break;
      }
      await sleep(200);
    }
    assert.ok(pid, "the deploy never reached the health gate");
    onHost(`kill -KILL ${pid}`);
    say(`killed apphost-release (pid ${pid}) during the health gate`);
    const message = await killed;
    say(`error: ${providerError(message)}`);
    assert.match(message, /interrupted during phase health-gate/);
    const stale = hostStatus(ID);
    assert.match(stale.lock, new RegExp(`\\(pid ${pid}, deploy `), "the killed deploy's lock is left behind");
    assert.equal(current(), v5);
    assert.equal(servedRelease(), v5);

    const res = await up(dir);
    const report = await endLoad();
    const v6 = String(res.outputs.releaseId.value);
    assertNoFailures(report, 50);
    assert.deepEqual(report.releases, [v5, v6], "the previous release served until the new one took over");
    assert.equal(current(), v6);
    assert.equal(servedRelease(), v6);
    const status = hostStatus(ID);
    assert.equal(status.lock, "", "the stale lock was taken over and released");
    assert.equal(status.log.at(-1)?.id, v6);
    assert.equal(status.log.at(-1)?.outcome, "deployed");
    assert.equal(unitState(live), "inactive");
  });

  it("7b. the SSH client killed mid-migration under load: the job goes on on the host, the client follows it again, the next `up` changes nothing", async function () {
    const before = current();
    // 0005: a migration that takes 10 s, so the client is killed while it runs.
    const dir = variant("v7", {
      ...MIGRATION_3,
      ...MIGRATION_4,
      ...MIGRATION_5_SLOW,
    });
    const jobBefore = onHost(`readlink /srv/${ID}/jobs/latest || true`).stdout.trim();
    steadyLoad(150);
    await sleep(1000);
    const started = Date.now();
    const deploying = up(dir);
    await newJobMigrating(jobBefore);
    // The deployer's ssh client (not the script): what a dropped connection or a closed laptop lid does.
    // Only this stack's: other specs may be deploying to their own sandboxes at the same moment.
    const killed = spawnSync(
      "pkill",
      [
        "-KILL",
        "-e",
        "-f",
        `^ssh .* ${sandbox.user}@${sandbox.host.replace(/\./g, "\\.")} -- .*apphost-release.* start deploy `,
      ],
      {
        encoding: "utf8",
      },
    );
    assert.equal(killed.status, 0, `no ssh client running the deploy to kill: ${killed.stderr}`);
    say(
      `killed the ssh client ${Math.round((Date.now() - started) / 1000)}s into the up: ${killed.stdout.trim()}`,
    );
    const res = await deploying;
    const report = await endLoad();
    const v7 = String(res.outputs.releaseId.value);
    assertNoFailures(report, 50);
    assert.deepEqual(
      report.releases,
      [before, v7],
      "the previous release served until the new one took over",
    );
    assert.equal(current(), v7);
    assert.equal(servedRelease(), v7);
    assert.equal(sql("select version_num from alembic_version"), "0005");
    // One job did the deploy, from start to end, on the host.
    const job = onHost(`basename "$(readlink /srv/${ID}/jobs/latest)"`).stdout.trim();
    assert.equal(onHost(`cat /srv/${ID}/jobs/${job}/rc`).stdout.trim(), "0");
    const jobLog = onHost(`cat /srv/${ID}/jobs/${job}/err`).stdout;
    assert.equal(jobLog.match(/phase migrate: start/g)?.length, 1, "the migration ran once");
    assert.match(jobLog, new RegExp(`release ${v7} deployed`));
    const status = hostStatus(ID);
    assert.equal(status.lock, "");
    assert.equal(status.log.at(-1)?.id, v7);
    assert.equal(status.log.at(-1)?.outcome, "deployed");
    // sudo's journal: after the first session was cut, the client ran `follow <job>` in a new one.
    const follows = Number(
      onHost(
        `journalctl --no-pager -o cat -t sudo --since @${Math.floor(started / 1000)} | grep -c 'apphost-release follow ${job}' || true`,
      ).stdout.trim(),
    );
    say(`job ${job} ran to its end on the host; the client followed it again in ${follows} new session(s)`);
    assert.ok(follows >= 1, "the client never followed the job again");
    const again = await up(dir);
    assert.equal(
      changedCount(again.summary.resourceChanges),
      0,
      JSON.stringify(again.summary.resourceChanges),
    );
  });

  it("7c. the deploying machine goes away mid-migration (the whole `pulumi up` killed): the host finishes, the next `up` adopts its release", async function () {
    const before = current();
    const dir = variant("v8", {
      ...MIGRATION_3,
      ...MIGRATION_4,
      ...MIGRATION_5_SLOW,
      "migrations/versions/0006_slow.py": migration(
        "0006",
        "0005",
        'import time\ntime.sleep(10)\nop.add_column("items", sa.Column("slower", sa.Text(), nullable=True))',
      ),
    });
    const jobBefore = onHost(`readlink /srv/${ID}/jobs/latest || true`).stdout.trim();
    steadyLoad(150);
    await sleep(1000);
    const interrupted = up(dir).then(
      () => "",
      (e: Error) => String(e.message ?? e),
    );
    const job = await newJobMigrating(jobBefore);
    const deadline = Date.now() + 120000;
    // This stack's `pulumi up` and everything under it (language host, providers, ssh): SIGKILL, no goodbye.
    const tree = processTree(`pulumi up .*--stack [^ ]*${STACK}( |$)`);
    assert.ok(tree.length >= 3, `expected the CLI, its plugins and ssh, found: ${tree.join(", ")}`);
    spawnSync("kill", ["-KILL", ...tree.map(String)]);
    say(`killed \`pulumi up\` and its ${tree.length - 1} descendants during job ${job}'s migration`);
    say(`the killed up: ${(await interrupted).split("\n")[0] || "(no error text)"}`);
    // The provider was connected to the host (following the job) when it died, so its copy of the
    // deploy key is still on disk: its `finally` never ran. The next run's first connection removes it.
    const keyDirs = () =>
      fs.readdirSync(os.tmpdir()).filter((n) => tree.some((pid) => n.startsWith(`apphost-ssh-${pid}-`)));
    const orphaned = keyDirs();
    assert.ok(orphaned.length >= 1, "the killed run left no key directory: is it still named by its pid?");
    // The host goes on alone: the job ends, the new release serves.
    let rc = "";
    while (Date.now() < deadline && !rc) {
      rc = onHost(`cat /srv/${ID}/jobs/${job}/rc 2>/dev/null || true`).stdout.trim();
      if (!rc) await sleep(500);
    }
    assert.equal(rc, "0", "the job did not finish on its own");
    const made = /^release=(\S+)$/m.exec(onHost(`cat /srv/${ID}/jobs/${job}/out`).stdout)?.[1] ?? "";
    assert.equal(current(), made);
    // The killed CLI left its lock on the backend; the engine's error names `pulumi cancel`, which a user runs.
    const cancel = pulumiCli(["cancel", "--yes", "--stack", STACK], { backendUrl: backend });
    assert.equal(cancel.code, 0, cancel.stderr);
    say(`pulumi cancel: ${(cancel.stdout + cancel.stderr).trim().split("\n").at(-1)}`);
    // The next `up`: it adopts that release; no second deploy, no second migration.
    const res = await up(dir);
    assert.deepEqual(
      keyDirs(),
      [],
      `the next up left the killed run's key directories ${orphaned.join(", ")}`,
    );
    const report = await endLoad();
    assertNoFailures(report, 50);
    assert.deepEqual(report.releases, [before, made]);
    assert.equal(String(res.outputs.releaseId.value), made, "the next up adopted the release the host made");
    assert.equal(
      onHost(`readlink /srv/${ID}/jobs/latest`).stdout.trim(),
      job,
      "the next up started another job",
    );
    assert.equal(sql("select version_num from alembic_version"), "0006");
    const again = await up(dir);
    assert.equal(
      changedCount(again.summary.resourceChanges),
      0,
      JSON.stringify(again.summary.resourceChanges),
    );
  });

  it("8. the scheduled backup: its service runs and writes a backup that passes integrity_check", async function () {
    const since = onHost("date -u +%Y%m%dT%H%M%S").stdout.trim();
    onHost(`systemctl start apphost-${ID}-backup.service`);
    assert.equal(
      onHost(`systemctl show -p Result --value apphost-${ID}-backup.service`).stdout.trim(),
      "success",
    );
    const files = onHost(`ls -1 /srv/${ID}/shared/backups/`).stdout.trim().split("\n");
    const scheduled = files.filter((f) => f.endsWith("-scheduled.db")).sort();
    assert.ok(scheduled.length > 0, `backups: ${files.join(", ")}`);
    const newest = scheduled.at(-1)!;
    assert.ok(newest.slice("app-".length) >= since, `${newest} is older than ${since}`);
    const file = `/srv/${ID}/shared/backups/${newest}`;
    assert.equal(sql("PRAGMA integrity_check", file), "ok");
    assert.equal(sql("select version_num from alembic_version", file), "0006");
    assert.ok(files.length <= 3, `apphost:backups.keep = 3, found ${files.length}`);
    assert.ok(lastUp);
  });

  it("9. a reboot: the upstream unit loads the rule from active-port before the proxy starts, and HTTPS serves the live release", async function () {
    const live = activePort();
    const release = current();
    // Before the reboot: without the table the proxy would lead nowhere; the unit puts it back.
    onHost(`nft delete table ip ${NFT_TABLE}`);
    onHost(`systemctl restart apphost-${ID}-upstream.service`);
    assert.equal(ruleTarget(), live);
    // Debian's nftables.service flushes the whole ruleset when it (re)starts; the unit runs again after it.
    onHost("systemctl restart nftables.service");
    let target = "";
    for (let i = 0; i < 20 && target !== live; i++) {
      await sleep(500);
      target = ruleTarget();
    }
    assert.equal(target, live, "the rule is back after nftables.service flushed the ruleset");

    const bootBefore = onHost("cat /proc/sys/kernel/random/boot_id").stdout.trim();
    onHost("systemctl reboot", { allowFailure: true });
    // Wait for the old system to go away, then for the new one to answer.
    const deadline = Date.now() + 120000;
    let boot = bootBefore;
    while (Date.now() < deadline) {
      await sleep(1000);
      const r = onHost("systemctl is-system-running; cat /proc/sys/kernel/random/boot_id", {
        allowFailure: true,
      });
      const [state, id] = r.stdout.trim().split("\n");
      if (id && id !== bootBefore && (state === "running" || state === "degraded")) {
        boot = id;
        break;
      }
    }
    assert.notEqual(boot, bootBefore, "the host did not come back from the reboot within 120s");
    say(`rebooted (boot id ${bootBefore.slice(0, 8)} -> ${boot.slice(0, 8)})`);
    assert.equal(onHost(`systemctl is-active apphost-${ID}-upstream.service`).stdout.trim(), "active");
    assert.equal(ruleTarget(), live, "the rule leads to the port in active-port");
    const order = onHost(
      `systemctl show -p ActiveEnterTimestampMonotonic --value apphost-${ID}-upstream.service; systemctl show -p ActiveEnterTimestampMonotonic --value caddy`,
    )
      .stdout.trim()
      .split("\n")
      .map(Number);
    assert.ok(
      order[0] > 0 && order[0] <= order[1],
      `the upstream unit (${order[0]}) was active before caddy (${order[1]})`,
    );
    // The web instance comes up with the host; the proxy answers once it listens.
    let served = "";
    while (Date.now() < deadline && !served) {
      try {
        served = servedRelease();
      } catch {
        await sleep(1000);
      }
    }
    assert.equal(served, release);
  });

  it("10. the web ports answer on loopback only (after the reboot too): a server on 0.0.0.0 at the idle port is reset from outside", async function () {
    assert.match(
      onHost(`nft list table inet ${NFT_TABLE}`).stdout,
      /iifname != "lo" tcp dport \{ 8000, 8001 \} reject with tcp reset/,
    );
    // A stand-in for an app that binds every address, on the port the next release would take.
    const idle = activePort() === "8000" ? "8001" : "8000";
    onHost(`systemd-run --unit=apphost-e2e-open --quiet python3 -m http.server --bind 0.0.0.0 ${idle}`);
    try {
      let itself = "";
      for (let i = 0; i < 40 && itself !== "200"; i++) {
        await sleep(250);
        itself = onHost(`curl -s -o /dev/null -w '%{http_code}' http://${sandboxRef.host}:${idle}/`, {
          allowFailure: true,
        }).stdout;
      }
      assert.equal(itself, "200", "the host itself reaches it on its own address");
      const outside = spawnSync(
        "curl",
        ["-sS", "-o", "/dev/null", "--max-time", "5", `http://${sandboxRef.host}:${idle}/`],
        { encoding: "utf8" },
      );
      assert.equal(outside.status, 7, `curl from outside: exit ${outside.status}, ${outside.stderr}`);
      assert.match(outside.stderr, /Couldn't connect to server/);
      assert.equal(servedRelease(), current(), "the proxy serves the live release as before");
    } finally {
      onHost("systemctl stop apphost-e2e-open", { allowFailure: true });
    }
  });
});
