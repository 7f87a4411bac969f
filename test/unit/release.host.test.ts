/**
 * apphost-release run in a temp directory (see release-harness.ts): the
 * host's directories, workers that do not stay up, the app's commands and
 * shared directories, and root never acting through a symlink the app user
 * planted. The health gate's early stops are in release.gate.test.ts.
 */

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import assert from "assert/strict";
import type { AppConfig, DatabaseConfig } from "../../components/config/types";
import { ERROR_HINTS, EXIT_CODES, MIGRATION_ORDER_HINT } from "../../components/release/phases";
import { parseResult } from "../../components/release/script";
import { liveOf, parseKv } from "../../components/remote/release";
import { FakeHost, mkTemp, requireTool, sqlite, writeTestApp } from "./release-harness";

describe("release script: host directories", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true })));
  after(() => host.cleanup());

  it("a deploy creates the missing ones and never loosens an existing one's mode", () => {
    // An operator tightened the data and logs directories.
    fs.mkdirSync(host.layout.data, { recursive: true, mode: 0o700 });
    fs.mkdirSync(host.layout.logs, { recursive: true, mode: 0o700 });
    fs.chmodSync(host.layout.data, 0o700);
    fs.chmodSync(host.layout.logs, 0o700);
    const r = host.deploy(
      writeTestApp(path.join(host.tmp, "dirs"), { version: "dirs" }),
      "20250101120000-d1d1d1d1",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(fs.statSync(host.layout.data).mode & 0o777, 0o700, "data/ was loosened");
    assert.equal(fs.statSync(host.layout.logs).mode & 0o777, 0o700, "logs/ was loosened");
    // The ones that were missing exist with the modes apphost gives them.
    assert.equal(fs.statSync(host.layout.backups).mode & 0o777, 0o700);
    assert.equal(fs.statSync(host.layout.releases).mode & 0o777, 0o755);
  });
});

describe("release script: a worker that runs but cannot reach a server it needs", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true })));
  after(() => host.cleanup());

  it("is a warning quoting its journal; the release is live", () => {
    let r = host.deploy(
      writeTestApp(path.join(host.tmp, "q1"), { version: "q1" }),
      "20250101120000-f3f3f3f3",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning: the worker/, "a worker whose journal is quiet is no warning");
    // Celery without its broker: active, retrying every few seconds.
    const said =
      "[2026-12-04 05:39:55,657: ERROR/MainProcess] consumer: Cannot connect to redis://127.0.0.1:6379/0: Error 111 connecting to 127.0.0.1:6379. Connection refused..";
    host.logJournal(said);
    const id = "20250102120000-f4f4f4f4";
    r = host.deploy(writeTestApp(path.join(host.tmp, "q2"), { version: "q2" }), id);
    assert.equal(r.status, 0, r.stderr);
    // The port it names is one of this host's that nothing listens on (the script asks the real ss): said so, with
    // the package that brings Redis.
    const listening = spawnSync("ss", ["-Hltn", "sport = :6379"], { encoding: "utf8" });
    assert.equal(listening.status, 0, `ss: ${listening.stderr}`);
    assert.equal(
      listening.stdout.trim(),
      "",
      "this test needs port 6379 of this machine free (a Redis listens on it)",
    );
    assert.ok(
      r.stderr.includes(
        `apphost: warning: the worker apphost-shop-test-worker.service runs, but its journal says it could not reach a server it needs: "${said}"; ` +
          "the release is live, and while the worker retries, it does no work: check the address the app gives it (apphost:app.env), and that the server runs; " +
          "nothing on this host listens on port 6379, Redis's: add redis-server to apphost:host.packages (the host baseline installs and starts it), " +
          "or give the app the address of one (apphost:app.env)\n",
      ),
      r.stderr,
    );
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), id);
    assert.equal(host.releaseLog().at(-1)?.[3], "deployed");
  });

  it("one that exits as it starts gets the same hint; a port something listens on gets none", async () => {
    // The journal still says the worker cannot reach Redis (the test above), and now it exits as it starts.
    host.crashWorkers(true);
    let r = host.deploy(
      writeTestApp(path.join(host.tmp, "q3"), { version: "q3" }),
      "20250103120000-f5f5f5f5",
    );
    host.crashWorkers(false);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /^apphost: warning: the worker apphost-shop-test-worker\.service is not running \d+\.\ds after this deploy restarted it \(activating; systemd restarted it 2 times since\): the release is live, the worker keeps restarting until systemd gives up on it; once its cause is fixed, pulumi up --refresh starts it again; nothing on this host listens on port 6379, Redis's: add redis-server to apphost:host\.packages \(the host baseline installs and starts it\), or give the app the address of one \(apphost:app\.env\)\. Last lines of its journal:$/m,
    );
    // A server that listens, but refuses the worker (another address, a full queue): no hint of a missing one.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as net.AddressInfo).port;
      host.clearJournal();
      const said = `ERROR:root:Error 111 connecting to 127.0.0.1:${port}. Connection refused.`;
      host.logJournal(said);
      r = host.deploy(writeTestApp(path.join(host.tmp, "q4"), { version: "q4" }), "20250104120000-f6f6f6f6");
      assert.equal(r.status, 0, r.stderr);
      assert.ok(
        r.stderr.includes(
          `could not reach a server it needs: "${said}"; the release is live, and while the worker retries, it does no work: check the address the app gives it (apphost:app.env), and that the server runs\n`,
        ),
        r.stderr,
      );
    } finally {
      server.close();
    }
  });
});

describe("release script: a worker that does not stay up after the deploy restarts it", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true })));
  after(() => host.cleanup());

  const warning = /^apphost: warning: the worker .*$/m;

  it("is a warning naming the unit, its state and systemd's restarts, with its journal; the release is live", () => {
    let r = host.deploy(
      writeTestApp(path.join(host.tmp, "w1"), { version: "w1" }),
      "20250101120000-e1e1e1e1",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, warning, "a worker that runs is no warning");
    // Its queue's server is gone (Redis, say): the worker exits as it starts, and systemd restarts it.
    host.crashWorkers(true);
    const id = "20250102120000-e2e2e2e2";
    r = host.deploy(writeTestApp(path.join(host.tmp, "w2"), { version: "w2" }), id);
    assert.equal(r.status, 0, r.stderr);
    // The seconds since the restart: at least the 0.05 s the harness waits, to a tenth.
    assert.match(
      warning.exec(r.stderr)?.[0] ?? r.stderr,
      /^apphost: warning: the worker apphost-shop-test-worker\.service is not running \d+\.\ds after this deploy restarted it \(activating; systemd restarted it 2 times since\): the release is live, the worker keeps restarting until systemd gives up on it; once its cause is fixed, pulumi up --refresh starts it again\. Last lines of its journal:$/,
    );
    // After the commit: the gate and finish went through, and the release serves.
    assert.match(r.stderr, /^apphost: phase health-gate: ok /m);
    assert.match(r.stderr, /^apphost: phase finish: ok /m);
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), id);
    assert.deepEqual(host.releaseLog().at(-1)?.[3], "deployed");
    // status names each worker's state; one that systemd still restarts is not drift (liveOf).
    const status = parseKv(host.run(["status"]).stdout);
    assert.equal(status.workers, "apphost-shop-test-worker.service:activating");
    assert.equal(status.web, "active");
    assert.equal(liveOf(status), id);
  });

  it("a rollback and a restore that (re)start a worker which does not stay up warn the same way, each naming itself", () => {
    // Still crashing (the test above).
    let r = host.run(["rollback"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      warning.exec(r.stderr)?.[0] ?? r.stderr,
      /^apphost: warning: the worker apphost-shop-test-worker\.service is not running \d+\.\ds after this rollback restarted it \(activating; systemd restarted it 2 times since\): the release is live, the worker keeps restarting until systemd gives up on it; once its cause is fixed, pulumi up --refresh starts it again\. Last lines of its journal:$/,
    );
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), "20250101120000-e1e1e1e1");
    const backup = parseResult(host.run(["backup", "w"]).stdout).backup;
    r = host.run(["restore", path.basename(backup)]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      warning.exec(r.stderr)?.[0] ?? r.stderr,
      /^apphost: warning: the worker apphost-shop-test-worker\.service is not running \d+\.\ds after this restore restarted it \(activating; systemd restarted it 2 times since\): the restored database is live, the worker keeps restarting until systemd gives up on it; once its cause is fixed, pulumi up --refresh starts it again\. Last lines of its journal:$/,
    );
    assert.equal(parseResult(r.stdout).restored, backup, "the restore itself went through");
    host.crashWorkers(false);
    r = host.run(["restore", path.basename(backup)]);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, warning, "a worker that runs is no warning");
  });

  it("rollback to the current release (apphost:releases.rollbackTo) publishes it again when systemd gave up on a worker", () => {
    // The rollback above made the first release current; its cause fixed, its worker is still given up.
    const id = "20250101120000-e1e1e1e1";
    host.giveUpWorkers();
    const drift = parseKv(host.run(["status"]).stdout);
    assert.equal(liveOf(drift), `${id} (worker apphost-shop-test-worker.service failed)`);
    let r = host.run(["rollback", id]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      r.stderr.includes(
        `apphost: release ${id} is current, but apphost-shop-test-worker.service is failed: publishing it again\n`,
      ),
      r.stderr,
    );
    assert.match(r.stderr, /^apphost: phase health-gate: ok /m);
    assert.equal(parseResult(r.stdout).outcome, "rolled-back");
    const status = parseKv(host.run(["status"]).stdout);
    assert.deepEqual([liveOf(status), status.workers], [id, "apphost-shop-test-worker.service:active"]);
    // Everything up: nothing to do, as before.
    r = host.run(["rollback", id]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stderr.includes(`apphost: release ${id} is already current; nothing to do\n`), r.stderr);
    assert.equal(parseResult(r.stdout).outcome, "unchanged");
  });

  it("a web instance that runs a library a package upgrade replaced is drift; the rollback to it publishes it again", () => {
    const id = "20250101120000-e1e1e1e1";
    const port = fs.readFileSync(host.layout.activePort, "utf8").trim();
    const unit = `apphost-shop-test-web@${port}.service`;
    const maps = host.replaceLibraryUnder(unit, "libssl.so.3");
    try {
      assert.ok(maps.length > 0, `no process of ${unit} in the stand-in /proc`);
      const drift = parseKv(host.run(["status"]).stdout);
      assert.equal(drift.replaced, `${unit}:libssl.so.3`);
      assert.equal(liveOf(drift), `${id} (${unit} runs libssl.so.3, replaced since it started)`);
      const r = host.run(["rollback", id]);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(
        r.stderr.includes(
          `apphost: release ${id} is current, but ${unit} runs libssl.so.3, replaced since it started: publishing it again\n`,
        ),
        r.stderr,
      );
      assert.match(r.stderr, /^apphost: phase health-gate: ok /m);
      const status = parseKv(host.run(["status"]).stdout);
      assert.notEqual(status.active_port, port, "a fresh instance, on the other port");
      assert.deepEqual([status.replaced, liveOf(status)], ["", id]);
    } finally {
      for (const m of maps) fs.rmSync(m, { force: true });
    }
  });
});

describe("release script: a first deploy whose migration writes a database inside the release", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true })));
  after(() => host.cleanup());

  it("fails (14) naming it; the shared database it made is set aside by name; nothing served before", () => {
    const id = "20250101120000-f1f1f1f1";
    const r = host.deploy(
      // Its revision command creates the database where there is none, as Django's does.
      writeTestApp(path.join(host.tmp, "stray"), {
        version: "stray",
        strayDatabase: "migration",
        revisionCreatesDatabase: true,
      }),
      id,
    );
    assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `apphost: phase migrate failed: the migration \\(bash migrate\\.sh\\) wrote a SQLite database inside the release directory ${host.layout.releases}/${id}: db\\.sqlite3\\. The next release`,
      ),
    );
    assert.ok(
      r.stderr.includes(
        `apphost: restore: there was no database before the migration; what it created is in ${host.layout.backups}: app.db.failed-${id}\n`,
      ),
      r.stderr,
    );
    assert.ok(fs.existsSync(path.join(host.layout.backups, `app.db.failed-${id}`)));
    // As before the migration: no database, and no revision in the release log (not read through the app, which
    // would create an empty one, and the next deploy would back that up and restore it as if it were the stack's).
    assert.ok(!fs.existsSync(path.join(host.layout.data, "app.db")), "no database after the rollback");
    assert.match(host.read(host.layout.releaseLog), new RegExp(`^${id}\\t\\S+\\t-\\tfailed:migrate$`, "m"));
    assert.ok(r.stderr.includes("apphost: rollback: done; no release served before this one\n"), r.stderr);
    assert.ok(!fs.existsSync(host.layout.current), "nothing is current");
  });

  // CTFd's `flask db current` (its create_app) creates every table on SQLite and stamps the head revision: the
  // revision read before the migration is what changes the database first.
  it("a revision command that creates the tables: a failed first release sets its database aside all the same", () => {
    const id = "20250101120000-f2f2f2f2";
    const app = { version: "ctfd1", revisionMigrates: true, failMigration: true };
    const r = host.deploy(writeTestApp(path.join(host.tmp, "ctfd1"), app), id);
    assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
    assert.ok(
      r.stderr.includes(
        `apphost: restore: there was no database before the migration; what it created is in ${host.layout.backups}: app.db.failed-${id}\n`,
      ),
      r.stderr,
    );
    assert.ok(!fs.existsSync(path.join(host.layout.data, "app.db")), "no database after the rollback");
    // No database, no revision: not the one the app stamped on the database it set aside.
    assert.match(host.read(host.layout.releaseLog), new RegExp(`^${id}\\t\\S+\\t-\\tfailed:migrate$`, "m"));
  });

  it("a later release's: the rollback restores the backup, and does not run the command again on it", () => {
    let r = host.deploy(
      writeTestApp(path.join(host.tmp, "ctfd2"), { version: "ctfd2" }),
      "20250102120000-f3f3f3f3",
    );
    assert.equal(r.status, 0, r.stderr);
    const tables = () =>
      sqlite(path.join(host.layout.data, "app.db"), ".tables").split(/\s+/).filter(Boolean);
    assert.deepEqual(tables(), ["items", "revision"]);
    const id = "20250103120000-f4f4f4f4";
    const app = {
      version: "ctfd3",
      revisionMigrates: true,
      failMigration: true,
      migrations: [
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE IF NOT EXISTS solves (id INTEGER)",
      ],
    };
    r = host.deploy(writeTestApp(path.join(host.tmp, "ctfd3"), app), id);
    assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
    assert.match(
      r.stderr,
      /^apphost: rollback: database restored from \S+; its schema fingerprint matches the one before the migration$/m,
    );
    assert.deepEqual(
      tables(),
      ["items", "revision"],
      "the table the failed release's revision command made is gone",
    );
    // As the backup holds it: the command, run again on it, would have stamped ctfd3.
    assert.equal(sqlite(path.join(host.layout.data, "app.db"), "SELECT rev FROM revision"), "ctfd2\n");
    assert.match(
      host.read(host.layout.releaseLog),
      new RegExp(`^${id}\\t\\S+\\t\\S+\\tfailed:migrate$`, "m"),
    );
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), "20250102120000-f3f3f3f3");
  });
});

describe("release script: a revision command that fails", function () {
  this.timeout(60000);
  let host: FakeHost;
  // CTFd's `flask db current`: its Flask-Migrate 2.5 passes alembic 1.16 an argument it no longer takes. The
  // traceback ends on stderr; stdout's last line is a plugin it loaded.
  const said = "TypeError: current() got an unexpected keyword argument 'head_only'";
  const command = `echo ' * Loaded module, CTFd.plugins.flags'; echo ${JSON.stringify(said)} >&2; exit 1`;
  before(() => (host = new FakeHost({ sharedVenv: true, database: { revision: command } })));
  after(() => host.cleanup());

  it("is a warning of the deploy, quoting it; the release is live, with no revision in the log", () => {
    const id = "20250101120000-d7d7d7d7";
    const r = host.deploy(writeTestApp(path.join(host.tmp, "r1"), { version: "r1" }), id);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      r.stderr.includes(
        `apphost: warning: the revision command (${command}) failed: "${said}"; ` +
          "the release log records no revision for this release, so a rollback to it cannot tell whether a later migration took the database past it: " +
          'fix the command, or set apphost:database.revision to one that prints the revision ("" for none)\n',
      ),
      r.stderr,
    );
    assert.match(host.read(host.layout.releaseLog), new RegExp(`^${id}\\t\\S+\\t-\\tdeployed$`, "m"));
  });
});

describe("release script: the app's own package is importable in the commands it runs", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => {
    host = new FakeHost({
      sharedVenv: true,
      database: { migrate: "python3 tools/pre_start.py && bash migrate.sh" },
    });
  });
  after(() => host.cleanup());

  /** An app that runs a file below its root importing its own package and a src/ layout one, as never installed. */
  function appWithPackages(version: string): string {
    const dir = writeTestApp(path.join(host.tmp, version), { version });
    const write = (rel: string, content: string) => {
      fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
      fs.writeFileSync(path.join(dir, rel), content);
    };
    write("shopapp/__init__.py", "");
    write("shopapp/core.py", 'NAME = "shopapp.core"\n');
    write("src/srclib/__init__.py", 'NAME = "srclib"\n');
    write(
      "tools/pre_start.py",
      [
        "import json, os",
        'out = {"PYTHONPATH": os.environ.get("PYTHONPATH")}',
        "try:",
        "    import shopapp.core, srclib",
        '    out["imports"] = [shopapp.core.NAME, srclib.NAME]',
        "except ImportError as e:",
        '    out["imports"] = str(e)',
        'open("data/imports.json", "w").write(json.dumps(out))',
        "",
      ].join("\n"),
    );
    return dir;
  }
  const seen = () => JSON.parse(fs.readFileSync(path.join(host.layout.data, "imports.json"), "utf8"));

  it("the release directory and its src/ are on PYTHONPATH, as the units put them", () => {
    const id = "20250101120000-a1a1a1a1";
    const r = host.deploy(appWithPackages("pkg1"), id);
    assert.equal(r.status, 0, r.stderr);
    const dir = path.join(host.layout.releases, id);
    assert.deepEqual(seen(), { PYTHONPATH: `${dir}:${dir}/src`, imports: ["shopapp.core", "srclib"] });
  });

  it("PYTHONPATH in the env file replaces it, as systemd lets EnvironmentFile= override Environment=", () => {
    fs.appendFileSync(host.layout.envFile, "PYTHONPATH=/opt/elsewhere\n");
    const r = host.deploy(appWithPackages("pkg2"), "20250102120000-a2a2a2a2");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(seen(), { PYTHONPATH: "/opt/elsewhere", imports: "No module named 'shopapp'" });
  });
});

describe("release script: a failed app command is named as the stack gave it", function () {
  this.timeout(60000);
  const build = "echo building >&2; exit 3";
  const failBuild = (cc: string, command = build, how: "deploy" | "start" = "deploy") => {
    const host = new FakeHost({ sharedVenv: true, app: { build: command }, cc });
    try {
      const id = "20250104120000-d8d8d8d8";
      const r = host[how](writeTestApp(path.join(host.tmp, "app"), { version: "v1" }), id);
      assert.equal(r.status, EXIT_CODES.install, r.stderr);
      if (command === build) assert.match(r.stderr, /^building$/m);
      assert.equal(fs.existsSync(host.layout.current), false, "current was switched");
      const line = r.stderr.split("\n").find((l) => l.startsWith("apphost: phase install failed:"));
      return line?.replace(`${host.layout.releases}/${id}`, "<release>").replace(host.layout.user, "<user>");
    } finally {
      host.cleanup();
    }
  };

  it("not as as_app runs it (runuser, env -i, bash -c), with the user and the release directory", () => {
    assert.equal(
      failBuild("cc"),
      `apphost: phase install failed: \`${build}\` (as <user> in <release>) exited with status 3`,
    );
  });

  it("on a host without a C compiler, saying what a dependency built from source needs, when it installs packages", () => {
    const installs = "pip install --no-index ./wheels 2>/dev/null || { echo building >&2; exit 3; }";
    assert.equal(
      failBuild("/nonexistent/cc", installs),
      `apphost: phase install failed: \`${installs}\` (as <user> in <release>) exited with status 3; ` +
        "the host has no C compiler: if a dependency builds from source (no wheel or prebuilt binary for this platform and Python or Node version), " +
        "add build-essential (and python3-dev for Python) to apphost:host.packages",
    );
    // A build that only runs the app's tools (vite build: not found in the conduit trial) gets no such hint.
    assert.equal(
      failBuild("/nonexistent/cc"),
      `apphost: phase install failed: \`${build}\` (as <user> in <release>) exited with status 3`,
    );
    // An install that could not reach its index (pip's retries, as babybuddy's requirements.txt with its -i line
    // printed them on a host without that name), in a deploy as `pulumi up` runs it (`start`: its output in a file).
    const offline =
      "pip install --index-url https://pypi.example.test/simple x 2>/dev/null || { echo 'Looking in indexes: https://pypi.example.test/simple'; " +
      "echo \"WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(': Failed to establish a new connection: " +
      "[Errno -2] Name or service not known')': /simple/x/\" >&2; echo 'ERROR: No matching distribution found for x' >&2; exit 1; }";
    assert.equal(
      failBuild("/nonexistent/cc", offline, "start"),
      `apphost: phase install failed: \`${offline}\` (as <user> in <release>) exited with status 1; ` +
        "the install could not reach a server it downloads from (Name or service not known, https://pypi.example.test/simple): " +
        "the host needs DNS and outbound HTTPS to it; check the index the app's files name, if any (requirements.txt's " +
        "-i or --index-url, a lock's sources, .npmrc's registry)",
    );
    // A command that could not run at all (127) is no build from source: no hint.
    assert.equal(
      failBuild("/nonexistent/cc", "no-such-tool --build"),
      "apphost: phase install failed: `no-such-tool --build` (as <user> in <release>) exited with status 127",
    );
  });
});

describe("release script: apphost:app.sharedDirs keep what the app writes across releases; apphost:app.dotenv links the env file", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(
    () =>
      (host = new FakeHost({
        sharedVenv: true,
        app: {
          sharedDirs: ["media", "var/cache"],
          sharedUrls: { "/media/": "media" },
          dotenv: ["src/.env", "settings.env"],
        },
      })),
  );
  after(() => host.cleanup());
  const appWith = (name: string, media: Record<string, string> | string) => {
    const dir = writeTestApp(path.join(host.tmp, name), { version: name });
    if (typeof media === "string") fs.writeFileSync(path.join(dir, "media"), media);
    else {
      fs.mkdirSync(path.join(dir, "media"));
      for (const [f, text] of Object.entries(media)) fs.writeFileSync(path.join(dir, "media", f), text);
    }
    return dir;
  };
  const read = (...p: string[]) => fs.readFileSync(path.join(host.layout.linked, ...p), "utf8");

  it("the first release seeds each one, later releases link to it and drop their copy, a release deployed again keeps its link", () => {
    const [v1, v2] = ["20250105120000-e1e1e1e1", "20250105130000-e2e2e2e2"];
    const r1 = host.deploy(appWith("v1", { "seed.txt": "from v1" }), v1);
    assert.equal(r1.status, 0, r1.stderr);
    assert.match(r1.stderr, new RegExp(`install: media links to ${host.layout.linked}/media\n`));
    for (const d of ["media", "var/cache"])
      assert.equal(fs.readlinkSync(path.join(host.layout.releases, v1, d)), `${host.layout.linked}/${d}`);
    assert.equal(read("media", "seed.txt"), "from v1");
    assert.deepEqual(fs.readdirSync(path.join(host.layout.linked, "var", "cache")), []);
    // media, which apphost:app.sharedUrls serves: the proxy's user may pass through shared/data and linked, and read
    // media and what the app writes there; var/cache stays closed to it.
    assert.deepEqual(
      host.calls().filter((c) => c.startsWith("setfacl")),
      [
        `setfacl -m u:caddy:x -- ${host.layout.linked} ${host.layout.data}`,
        `setfacl -R -m u:caddy:rX,d:u:caddy:rX -- ${host.layout.linked}/media`,
      ],
    );
    assert.match(r1.stderr, /install: caddy may read media \(apphost:app\.sharedUrls\)\n/);
    fs.writeFileSync(path.join(host.layout.linked, "media", "upload.jpg"), "pixels"); // the app, at run time

    const r2 = host.deploy(appWith("v2", { "seed.txt": "from v2", "new.txt": "v2 only" }), v2);
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(
      fs.readlinkSync(path.join(host.layout.releases, v2, "media")),
      `${host.layout.linked}/media`,
    );
    assert.deepEqual(fs.readdirSync(path.join(host.layout.linked, "media")).sort(), [
      "seed.txt",
      "upload.jpg",
    ]);
    assert.equal(read("media", "seed.txt"), "from v1");
    // Its default entry is there now: the next release lets the proxy through again, without the walk.
    assert.deepEqual(
      host
        .calls()
        .filter((c) => c.startsWith("setfacl"))
        .slice(2),
      [
        `setfacl -m u:caddy:x -- ${host.layout.linked} ${host.layout.data}`,
        `setfacl -m u:caddy:rX,d:u:caddy:rX -- ${host.layout.linked}/media`,
      ],
    );

    const again = host.deploy(appWith("v2b", { "seed.txt": "from v2" }), v2);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(read("media", "upload.jpg"), "pixels");
  });

  it("each dotenv file is a link to the env file, made before the migration reads it; a file the release ships there is replaced, with a warning", () => {
    const id = "20250105123000-d1d1d1d1";
    const app = appWith("dotenv", {});
    fs.writeFileSync(path.join(app, "settings.env"), "GREETING=shipped with the app\n");
    fs.writeFileSync(path.join(app, ".env"), "GREETING=a developer's own\n"); // left out by apphost:app.excludes
    // The migration reads the file as the app would: it fails the deploy unless the link is there before it.
    fs.appendFileSync(
      path.join(app, "migrate.sh"),
      "grep -q 'hello from the env file' src/.env || { echo 'no src/.env' >&2; exit 1; }\n",
    );
    const r = host.deploy(app, id);
    assert.equal(r.status, 0, r.stderr);
    const release = path.join(host.layout.releases, id);
    for (const f of ["src/.env", "settings.env"]) {
      assert.equal(fs.readlinkSync(path.join(release, f)), host.layout.envFile);
      assert.match(
        r.stderr,
        new RegExp(`install: ${f.replace(".", "\\.")} links to ${host.layout.envFile}\n`),
      );
    }
    assert.ok(
      r.stderr.includes(
        `warning: apphost:app.dotenv: the release's own settings.env is replaced by a link to ${host.layout.envFile} ` +
          "(to ship the file instead, remove it from apphost:app.dotenv)\n",
      ),
      r.stderr,
    );
    assert.ok(!r.stderr.includes("the release's own src/.env"), r.stderr);
    assert.equal(fs.existsSync(path.join(release, ".env")), false);
    // Deployed again (a retry of the same release): the links stand, with no warning.
    const again = host.deploy(app, id);
    assert.equal(again.status, 0, again.stderr);
    assert.ok(!again.stderr.includes("warning: apphost:app.dotenv"), again.stderr);
    assert.equal(fs.readlinkSync(path.join(release, "settings.env")), host.layout.envFile);
  });

  it("a release where the directory is a file fails the install phase, naming it, and the live release serves on", () => {
    const live = fs.readlinkSync(host.layout.current);
    const r = host.deploy(appWith("v3", "not a directory\n"), "20250105140000-e3e3e3e3");
    assert.equal(r.status, EXIT_CODES.install, r.stderr);
    assert.match(
      r.stderr,
      /apphost: phase install failed: apphost:app\.sharedDirs: media is not a directory in the release \(regular file\); remove it from the app or from sharedDirs\n/,
    );
    assert.equal(fs.readlinkSync(host.layout.current), live);
    assert.equal(read("media", "upload.jpg"), "pixels");
  });

  it("a host where the proxy's user cannot be let in (no ACLs) fails the install phase, saying why, and the live release serves on", () => {
    const live = fs.readlinkSync(host.layout.current);
    host.failSetfacl(true);
    try {
      const r = host.deploy(appWith("v4", {}), "20250105150000-e4e4e4e4");
      assert.equal(r.status, EXIT_CODES.install, r.stderr);
      assert.ok(
        r.stderr.includes(
          `apphost: phase install failed: apphost:app.sharedUrls: could not let caddy read ${host.layout.linked}/media ` +
            "(setfacl: the file system must support ACLs)\n",
        ),
        r.stderr,
      );
      assert.equal(fs.readlinkSync(host.layout.current), live);
    } finally {
      host.failSetfacl(false);
    }
  });
});

describe("release script: root never acts through a symlink the app user planted", function () {
  this.timeout(120000);
  let host: FakeHost;
  let outside: string;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost({ sharedVenv: true });
    outside = mkTemp("outside");
  });
  after(() => {
    host.cleanup();
    fs.rmSync(outside, { recursive: true, force: true });
  });
  /** A file outside the stack that a planted link points at: owned by uid 4242 when we can, mode 0666, known content. */
  const target = (name: string) => {
    const f = path.join(outside, name);
    fs.writeFileSync(f, "precious\n");
    fs.chmodSync(f, 0o666);
    if (process.getuid?.() === 0) fs.chownSync(f, 4242, 4242);
    return f;
  };
  const untouched = (f: string) => {
    const st = fs.statSync(f);
    assert.equal(fs.readFileSync(f, "utf8"), "precious\n", `${f} was written through the link`);
    assert.equal(st.mode & 0o777, 0o666, `${f} was chmod-ed through the link`);
    if (process.getuid?.() === 0) assert.equal(st.uid, 4242, `${f} was chown-ed through the link`);
  };

  it("the migration log, the SQLite side files: a deploy leaves the link targets as they were", () => {
    const id = "20250101120000-51515151";
    const log = target("log");
    const wal = target("wal");
    const shm = target("shm");
    fs.mkdirSync(host.layout.logs, { recursive: true });
    fs.mkdirSync(host.layout.data, { recursive: true });
    fs.symlinkSync(log, path.join(host.layout.logs, `apphost-migrate-${id}.log`));
    // A -wal link before the first migration: the chmod that tightens the SQLite files skips it.
    fs.symlinkSync(wal, path.join(host.layout.data, "app.db-wal"));
    const r = host.deploy(writeTestApp(path.join(host.tmp, "sym"), { version: "sym" }), id);
    assert.equal(r.status, 0, r.stderr);
    untouched(log);
    untouched(wal);
    // The log the migration wrote is a file of its own now.
    assert.equal(
      fs.lstatSync(path.join(host.layout.logs, `apphost-migrate-${id}.log`)).isSymbolicLink(),
      false,
    );
    // A -shm link at the next backup: db_fix_owner's chown does not follow it.
    fs.rmSync(path.join(host.layout.data, "app.db-shm"), { force: true });
    fs.symlinkSync(shm, path.join(host.layout.data, "app.db-shm"));
    const b = host.run(["backup", "scheduled"]);
    assert.equal(b.status, 0, b.stderr);
    untouched(shm);
  });
});

describe("release script: a deploy that fails after the switch (the mirror's workers)", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true })));
  after(() => host.cleanup());

  const worker = "apphost-shop-test-worker.service";
  const warning = /^apphost: warning: the worker .*$/m;

  it("stops the workers, starts the old release's once the database is as it was, and warns when one does not stay up", () => {
    const first = "20250101120000-f1f1f1f1";
    let r = host.deploy(writeTestApp(path.join(host.tmp, "f1"), { version: "f1" }), first);
    assert.equal(r.status, 0, r.stderr);
    // The new release's worker fails to start (its start job fails: the switch is made, the release not
    // committed), and the old release's then exits as it starts (its queue's server is gone).
    host.failWorkerRestartOnce();
    host.crashWorkers(true);
    const before = host.calls().length;
    r = host.deploy(writeTestApp(path.join(host.tmp, "f2"), { version: "f2" }), "20250102120000-f2f2f2f2");
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), first);
    const steps = r.stderr
      .split("\n")
      .filter((line) => /^apphost: rollback [a-z-]+: (start|ok)$/.test(line) || warning.test(line))
      .map((line) => line.replace(/^(apphost: warning: the worker \S+ is not running).*/, "$1"));
    assert.deepEqual(steps, [
      "apphost: rollback revert-traffic: start",
      "apphost: rollback revert-traffic: ok",
      "apphost: rollback restore-database: start",
      "apphost: rollback restore-database: ok",
      "apphost: rollback restart-workers: start",
      `apphost: warning: the worker ${worker} is not running`,
      "apphost: rollback restart-workers: ok",
      "apphost: rollback mark-failed: start",
      "apphost: rollback mark-failed: ok",
    ]);
    assert.match(
      warning.exec(r.stderr)?.[0] ?? "",
      / after this rollback restarted it \(activating; systemd restarted it 2 times since\): the release is live/,
    );
    // The failed restart, then the mirror: stopped with the switch undone, started once the database is back.
    const workerCalls = host
      .calls()
      .slice(before)
      .filter((c) => c.endsWith(worker) && /^(stop|restart) /.test(c));
    assert.deepEqual(workerCalls, [`restart ${worker}`, `stop ${worker}`, `restart ${worker}`]);
    assert.equal(host.releaseLog().at(-1)?.[3], "failed:health-gate");
  });

  it("with the worker running again, the mirror's restart is no warning", () => {
    host.crashWorkers(false);
    host.failWorkerRestartOnce();
    const r = host.deploy(
      writeTestApp(path.join(host.tmp, "f3"), { version: "f3" }),
      "20250103120000-f3f3f3f3",
    );
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    // The refused start names the command, its status, the unit's state, and its journal's lines follow.
    assert.match(
      r.stderr,
      new RegExp(
        `^apphost: phase health-gate failed: \`systemctl restart ${worker.replaceAll(".", "\\.")}\` exited with ` +
          "status 1 \\(.*\\)\\. Last lines of its journal:$",
        "m",
      ),
    );
    assert.match(r.stderr, /^apphost: rollback restart-workers: ok$/m);
    assert.doesNotMatch(r.stderr, warning);
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), "20250101120000-f1f1f1f1");
  });
});

describe("release script: a program a process, a job or the migration starts is not installed", function () {
  this.timeout(60000);
  const hosts: FakeHost[] = [];
  after(() => hosts.forEach((h) => h.cleanup()));
  const hostWith = (app: Partial<AppConfig>, database: Partial<DatabaseConfig> = {}) => {
    const host = new FakeHost({ sharedVenv: true, app, database });
    hosts.push(host);
    return host;
  };
  const backupsOf = (host: FakeHost, id: string) =>
    fs.existsSync(host.layout.backups)
      ? fs.readdirSync(host.layout.backups).filter((f) => f.includes(id))
      : [];

  it("fails the install phase (12) naming each one, before any backup or migration; the live release serves on", async () => {
    const host = hostWith({
      processes: [
        { name: "web", command: "python3 server.py", kind: "web" },
        { name: "worker", command: "WORKERS=2 ./bin/worker --queue default", kind: "worker" },
      ],
      schedules: [
        { name: "cleanup", command: "cd tools && ./cleanup --old", onCalendar: "daily", timeoutSeconds: 300 },
      ],
    });
    const withPrograms = (dir: string, version: string, migrations: string[]) => {
      writeTestApp(dir, { version, migrations });
      for (const f of ["bin/worker", "tools/cleanup"]) {
        fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
        fs.writeFileSync(path.join(dir, f), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      }
      return dir;
    };
    const v1 = "20250107120000-d1d1d1d1";
    let r = host.deploy(withPrograms(path.join(host.tmp, "v1"), "v1", ["CREATE TABLE t (x)"]), v1);
    assert.equal(r.status, 0, r.stderr);
    // v2 lost both programs (and would add a table): nothing of it may run.
    const v2dir = withPrograms(path.join(host.tmp, "v2"), "v2", ["CREATE TABLE t (x)", "CREATE TABLE u (y)"]);
    fs.rmSync(path.join(v2dir, "bin"), { recursive: true });
    fs.chmodSync(path.join(v2dir, "tools/cleanup"), 0o644);
    const v2 = "20250108120000-d2d2d2d2";
    r = host.deploy(v2dir, v2);
    assert.equal(r.status, EXIT_CODES.install, r.stderr);
    const line = r.stderr.split("\n").find((l) => l.startsWith("apphost: phase install failed:"));
    assert.equal(
      line,
      "apphost: phase install failed: not found where the units look (the release, its .venv/bin, then the host's PATH), or not executable: " +
        "`./bin/worker` (process worker: WORKERS=2 ./bin/worker --queue default); " +
        "`./cleanup` in tools/ (job cleanup: cd tools && ./cleanup --old); " +
        "add each to the app's main dependencies (requirements.txt; apphost installs no dev group) or to apphost:app.extraRequirements, or a host program's package to apphost:host.packages, or fix the command; nothing was backed up or migrated",
    );
    assert.doesNotMatch(r.stderr, /phase (backup|migrate): start/);
    assert.equal(
      fs.existsSync(path.join(host.layout.logs, `apphost-migrate-${v2}.log`)),
      false,
      "the migration ran",
    );
    assert.deepEqual(backupsOf(host, v2), []);
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), v1);
    assert.equal(JSON.parse((await host.get(host.firstPort)).body).version, "v1");
  });

  it("a first release whose web server and migration tool are not among the app's dependencies: nothing is served, nothing migrated", () => {
    // healthchecks' requirements.txt has no gunicorn (its image runs uWSGI, installed beside them).
    const host = hostWith(
      {
        processes: [
          { name: "web", command: "WEB_CONCURRENCY=2 gunicorn-not-installed hc.wsgi", kind: "web" },
        ],
      },
      { migrate: "alembic-not-installed upgrade head" },
    );
    const id = "20250109120000-d3d3d3d3";
    const r = host.deploy(writeTestApp(path.join(host.tmp, "v1"), { version: "v1" }), id);
    assert.equal(r.status, EXIT_CODES.install, r.stderr);
    assert.match(
      r.stderr,
      /^apphost: phase install failed: not found where the units look \(the release, its \.venv\/bin, then the host's PATH\), or not executable: `gunicorn-not-installed` \(process web: WEB_CONCURRENCY=2 gunicorn-not-installed hc\.wsgi\); `alembic-not-installed` \(the migration: alembic-not-installed upgrade head\); add each to /m,
    );
    assert.doesNotMatch(r.stderr, /phase migrate: start/);
    assert.equal(fs.existsSync(host.layout.current), false);
    assert.equal(
      fs.existsSync(path.join(host.layout.logs, `apphost-migrate-${id}.log`)),
      false,
      "the migration ran",
    );
    assert.equal(fs.existsSync(path.join(host.layout.data, "app.db")), false, "a database was made");
  });

  it("a failed migration that prints no traceback is explained by its last line ERROR_HINTS knows (alembic run where its config is not)", () => {
    // fastapi_best_architecture's `cd backend && alembic upgrade head`: its script_location is in the root's pyproject.toml.
    const host = hostWith({}, { migrate: "bash alembic.sh" });
    const dir = writeTestApp(path.join(host.tmp, "v1"), { version: "v1" });
    fs.writeFileSync(
      path.join(dir, "alembic.sh"),
      "echo \"FAILED: No 'script_location' key found in configuration.\"\nexit 255\n",
    );
    const r = host.deploy(dir, "20250109130000-d4d4d4d4");
    assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
    const hint = ERROR_HINTS.find((h) => h.says.startsWith("No 'script_location'"))!.hint;
    assert.match(
      r.stderr,
      new RegExp(
        `^apphost: phase migrate failed: the migration command failed: bash alembic\\.sh; last 40 lines of its output \\([^)]*\\):\\n` +
          `FAILED: No 'script_location' key found in configuration\\.\\n\\(${hint.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\)$`,
        "m",
      ),
    );
  });

  it("a migration that fails on a table an earlier one had not made, then prints its usage: the error line and the order's hint (Piccolo's forwards all)", () => {
    // sinisaos/litestar-piccolo's `piccolo migrations forwards all`: tasks' migration before the user app's.
    const host = hostWith({}, { migrate: "bash piccolo.sh" });
    const dir = writeTestApp(path.join(host.tmp, "v1"), { version: "v1" });
    fs.writeFileSync(
      path.join(dir, "piccolo.sh"),
      [
        'printf "  - 2023-02-18T07:32:43:869608 [forwards]... \\033[31mThe command failed.\\033[39m\\n"',
        "echo 'relation \"piccolo_user\" does not exist'",
        'for i in $(seq 45); do echo "usage line $i"; done',
        "exit 1",
        "",
      ].join("\n"),
    );
    const r = host.deploy(dir, "20250109130000-e5e5e5e5");
    assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
    const failed = r.stderr.split("\n").find((l) => l.startsWith("apphost: phase migrate failed: "));
    assert.equal(
      failed,
      "apphost: phase migrate failed: the migration command failed: bash piccolo.sh; earlier in its output: - " +
        '2023-02-18T07:32:43:869608 [forwards]... The command failed. | relation "piccolo_user" does not exist; last ' +
        `40 lines of its output (${host.layout.logs}/apphost-migrate-20250109130000-e5e5e5e5.log):`,
    );
    assert.ok(r.stderr.includes(`usage line 45\n(${MIGRATION_ORDER_HINT})\n`), r.stderr);
    assert.ok(!r.stderr.includes("usage line 5\n"), "more than 40 lines quoted");
  });
});
