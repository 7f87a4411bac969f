/**
 * apphost-release RUN in a temp directory with a fake systemctl that really
 * starts and stops the web instances (see release-harness.ts): one host's
 * story of deploys, the health gate, the rollback mirror and rollback on
 * purpose.
 */

import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { instanceEnvFile } from "../../components/paths";
import { DEPLOY_PHASES, EXIT_CODES, PREPARE_PHASES } from "../../components/release/phases";
import { parseResult, parseStatus } from "../../components/release/script";
import { renderUpstreamRuleset } from "../../components/render/nftables";
import {
  assertSameDatabase,
  FakeHost,
  HARNESS_HEALTH_TIMEOUT_SECONDS,
  requireTool,
  sqlite,
  writeTestApp,
} from "./release-harness";

describe("release script: a deploy story (blue/green, health gate, mirror, rollback)", function () {
  this.timeout(240000);
  let host: FakeHost;
  const ids = {
    v1: "20250101120000-11111111",
    v2: "20250102120000-22222222",
    v3: "20250103120000-33333333",
    v4: "20250104120000-44444444",
    v5: "20250105120000-55555555",
    v6: "20250106120000-66666666",
    v7: "20250107120000-77777777",
    v8: "20250108120000-88888888",
  };
  let blue: number;
  let green: number;

  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    requireTool("python3", "apt-get install -y python3 python3-venv");
    host = new FakeHost();
    // A first release starts on the second of the two ports (choose_ports).
    blue = host.firstPort;
    green = host.basePort;
  });
  after(() => host.cleanup());

  it("first deploy: uploads, installs a venv, migrates, serves on the blue port", async () => {
    const app = writeTestApp(path.join(host.tmp, "v1"), {
      version: "v1",
      migrations: ["CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)"],
      copyLockTo: "data/lock-seen",
      lockFile: host.layout.lock,
    });
    const r = host.deploy(app, ids.v1, "alice@laptop");
    assert.equal(r.status, 0, r.stderr);
    for (const phase of DEPLOY_PHASES) {
      assert.match(
        r.stderr,
        new RegExp(
          `apphost: phase ${phase}: start\\n(.|\\n)*?apphost: phase ${phase}: ok \\(\\d+\\.\\ds\\)\\n`,
        ),
      );
    }
    assert.equal((r.stderr.match(/^apphost: phase [a-z-]+: ok \(\d+\.\ds\)$/gm) ?? []).length, 8, r.stderr);
    assert.match(r.stderr, /backup: no database yet/);
    assert.match(r.stderr, /install: no requirements\.txt; the venv has no packages/);
    const venvBin = path.join(host.layout.releases, ids.v1, ".venv", "bin");
    assert.ok(fs.existsSync(path.join(venvBin, "python")), "the release's venv has its python");
    assert.ok(!fs.existsSync(path.join(venvBin, "pip")), "a venv that gets no packages is made without pip");
    assert.deepEqual(parseResult(r.stdout), {
      release: ids.v1,
      current: ids.v1,
      port: String(blue),
      revision: "v1",
      outcome: "deployed",
    });
    const served = JSON.parse((await host.get(blue)).body);
    assert.equal(served.version, "v1");
    assert.equal(served.cwd, path.join(host.layout.releases, ids.v1));
    assert.equal(fs.readlinkSync(host.layout.current), path.join(host.layout.releases, ids.v1));
    assert.equal(host.read(host.layout.activePort), `${blue}\n`);
    assert.equal(host.ruleset(), renderUpstreamRuleset(host.layout, { basePort: host.basePort, port: blue }));
    assert.ok(fs.lstatSync(path.join(host.layout.releases, ids.v1, "data")).isSymbolicLink());
    assert.equal(fs.readlinkSync(path.join(host.layout.releases, ids.v1, "data")), host.layout.data);
    assert.match(
      host.read(path.join(host.layout.data, "lock-seen")),
      /^owner=alice@laptop\npid=\d+\nexpires=\d+\n/,
    );
    assert.ok(!fs.existsSync(host.layout.lock), "lock released after the deploy");
    assert.deepEqual(
      host.releaseLog().map((l) => [l[0], l[2], l[3]]),
      [[ids.v1, "v1", "deployed"]],
    );
    assert.match(host.releaseLog()[0][1], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const calls = host.calls();
    assert.ok(calls.includes(`restart apphost-shop-test-web@${blue}.service`));
    assert.ok(calls.includes("nft -f -"));
    assert.ok(!calls.some((c) => /^reload /.test(c)), "no proxy reload");
    assert.ok(calls.includes("restart apphost-shop-test-worker.service"));
  });

  it("second deploy: green port, the old instance drained and stopped, venv reused, DB backed up", async () => {
    const app = writeTestApp(path.join(host.tmp, "v2"), {
      version: "v2",
      migrations: ["CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY)"],
    });
    sqlite(host.db, "INSERT INTO items (name) VALUES ('milk')");
    const r = host.deploy(app, ids.v2);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /install: reusing .*venvs\//);
    assert.match(
      r.stderr,
      /backup: database copied to .*app-\d{8}T\d{6}\.\d{3}Z-pre-20250102120000-22222222\.db \(integrity ok\)/,
    );
    assert.equal(parseResult(r.stdout).port, String(green));
    assert.equal(JSON.parse((await host.get(green)).body).version, "v2");
    await assert.rejects(host.get(blue), "the blue instance is stopped");
    assert.equal(
      host.ruleset(),
      renderUpstreamRuleset(host.layout, { basePort: host.basePort, port: green }),
    );
    assert.equal(host.read(host.layout.activePort), `${green}\n`);
    const calls = host.calls();
    const switched = calls.lastIndexOf("nft -f -");
    const stopped = calls.lastIndexOf(`stop apphost-shop-test-web@${blue}.service`);
    assert.ok(switched >= 0 && stopped > switched, "old instance stopped only after the proxy switched");
  });

  it("`upstream` (the boot unit) loads the rule for the port in active-port again, and nothing else", () => {
    fs.rmSync(path.join(host.tmp, "run", "nft.ruleset"));
    const before = host.calls().length;
    const r = host.run(["upstream"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(
      r.stderr,
      new RegExp(
        `upstream: 127\\.0\\.0\\.1:${host.basePort + 2} -> 127\\.0\\.0\\.1:${green} \\(nftables table ip apphost_shop_test\\)`,
      ),
    );
    assert.equal(
      host.ruleset(),
      renderUpstreamRuleset(host.layout, { basePort: host.basePort, port: green }),
    );
    assert.deepEqual(host.calls().slice(before), ["nft -f -"]);
  });

  it("deploying the current release again re-publishes it on the other port (env or unit change)", async () => {
    for (const port of [blue, green]) {
      const env = `GREETING='hello from the env file'\nPUBLISHED_ON=${port}\n`;
      fs.writeFileSync(host.layout.envFile, env);
      const r = host.deploy(path.join(host.tmp, "v2"), ids.v2);
      assert.equal(r.status, 0, r.stderr);
      // The instance started, and the live release's workers, read the env file as this deploy found it.
      assert.equal(host.read(instanceEnvFile(host.layout, port)), env);
      assert.equal(host.read(host.layout.liveEnv), env);
      assert.match(r.stderr, /upload: release 20250102120000-22222222 is already on the host; reusing it/);
      assert.equal(parseResult(r.stdout).port, String(port));
      assert.equal(JSON.parse((await host.get(port)).body).version, "v2");
    }
    assert.deepEqual(
      host.releaseLog().map((l) => [l[0], l[3]]),
      [
        [ids.v1, "deployed"],
        [ids.v2, "deployed"],
        [ids.v2, "deployed"],
        [ids.v2, "deployed"],
      ],
    );
  });

  it("an unhealthy release fails the health gate (16): traffic stays on green, its migration is undone", async () => {
    const app = writeTestApp(path.join(host.tmp, "v3"), {
      version: "v3",
      healthy: false,
      migrations: ["ALTER TABLE items ADD COLUMN done INTEGER NOT NULL DEFAULT 0"],
      // What Django with WhiteNoise's storage and no collectstatic logs for each request (Heroku's sample app).
      unhealthyError: "ValueError: Missing staticfiles manifest entry for 'lang-logo.png'",
    });
    const serving = host.read(instanceEnvFile(host.layout, green));
    fs.writeFileSync(host.layout.envFile, "GREETING='hello from the env file'\nNEVER_LIVE=v3\n");
    const r = host.deploy(app, ids.v3);
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.match(
      r.stderr,
      /apphost: phase health-gate failed: apphost-shop-test-web@\d+\.service did not answer 2xx/,
    );
    assert.ok(
      r.stderr.includes(
        `(last answer: HTTP 500; no 2xx within ${HARNESS_HEALTH_TIMEOUT_SECONDS}s; the last error in its journal: ` +
          "ValueError: Missing staticfiles manifest entry for 'lang-logo.png' (Django with ManifestStaticFilesStorage, " +
          "as WhiteNoise sets it up, serves only what collectstatic wrote: set apphost:app.build to " +
          '"python manage.py collectstatic --noinput")); traffic stays on the old instance',
      ),
      r.stderr,
    );
    // The journal's last lines in the error: the failed health requests (the server's first line, "unhealthy on
    // purpose", is past the last 40 once seven polls have each logged their six-line traceback).
    assert.match(r.stderr, /server v3: "GET \/healthz HTTP\/1\.\d" 500 -/, "journal lines in the error");
    assert.match(r.stderr, /rollback revert-traffic: ok/);
    assert.match(r.stderr, /restore: database restored from/);
    assert.equal(JSON.parse((await host.get(green)).body).version, "v2");
    await assert.rejects(host.get(blue), "the failed instance is stopped");
    assert.equal(host.read(host.layout.activePort), `${green}\n`);
    assert.equal(fs.readlinkSync(host.layout.current), path.join(host.layout.releases, ids.v2));
    assert.equal(sqlite(host.db, "SELECT rev FROM revision"), "v2\n");
    assert.doesNotMatch(sqlite(host.db, "SELECT sql FROM sqlite_schema WHERE name = 'items'"), /done/);
    assert.deepEqual(host.releaseLog().at(-1)!.slice(2), ["v2", "failed:health-gate"]);
    // A restart of green, or of a worker, reads the env it ran with before, not the failed deploy's.
    assert.equal(host.read(instanceEnvFile(host.layout, green)), serving);
    assert.equal(host.read(host.layout.liveEnv), serving);
    assert.equal(
      host.read(instanceEnvFile(host.layout, blue)),
      "GREETING='hello from the env file'\nNEVER_LIVE=v3\n",
    );
  });

  it("a failed migration (14) restores the database from the pre-migration backup, byte for byte", async () => {
    sqlite(host.db, "INSERT INTO items (name) VALUES ('eggs')");
    const before = path.join(host.tmp, "before.db");
    sqlite(host.db, `VACUUM INTO '${before}'`);
    const app = writeTestApp(path.join(host.tmp, "v4"), {
      version: "v4",
      migrations: ["CREATE TABLE audit (id INTEGER PRIMARY KEY)", "DELETE FROM items"],
      failMigration: true,
    });
    const r = host.deploy(app, ids.v4);
    assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
    assert.match(
      r.stderr,
      /apphost: phase migrate failed: the migration command failed: bash migrate.sh; last 40 lines/,
    );
    assert.match(r.stderr, /migration: boom, something went wrong/);
    const m = /restore: database restored from (\S+)/.exec(r.stderr);
    assert.ok(m, r.stderr);
    const backup = m[1];
    assert.match(path.basename(backup), /^app-\d{8}T\d{6}\.\d{3}Z-pre-20250104120000-44444444\.db$/);
    assertSameDatabase(host.db, backup);
    assert.equal(sqlite(host.db, ".sha3sum --schema"), sqlite(before, ".sha3sum --schema"));
    assert.equal(sqlite(host.db, "SELECT name FROM items ORDER BY id"), "milk\neggs\n");
    assert.equal(sqlite(host.db, "PRAGMA integrity_check"), "ok\n");
    assert.equal(JSON.parse((await host.get(green)).body).version, "v2");
    assert.deepEqual(host.releaseLog().at(-1)!.slice(2), ["v2", "failed:migrate"]);
    assert.ok(!host.releaseLog().some((l) => l[0] === ids.v4 && l[3] === "deployed"));
  });

  it("status reports current, port, previous, releases and the log", () => {
    const r = host.run(["status"]);
    assert.equal(r.status, 0, r.stderr);
    const st = parseStatus(r.stdout);
    assert.equal(st.current, ids.v2);
    assert.equal(st.activePort, green);
    assert.equal(st.previous, ids.v1);
    assert.deepEqual(st.releases, [ids.v1, ids.v2, ids.v3, ids.v4]);
    assert.equal(st.lock, "");
    assert.deepEqual(
      st.log.map((e) => e.outcome),
      ["deployed", "deployed", "deployed", "deployed", "failed:health-gate", "failed:migrate"],
    );
  });

  it("rollback on purpose goes to the previous deployed release through the health gate; the DB is untouched", async () => {
    const dbBefore = fs.readFileSync(host.db);
    const r = host.run(["rollback"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(parseResult(r.stdout), {
      release: ids.v1,
      current: ids.v1,
      port: String(blue),
      revision: "v2",
      outcome: "rolled-back",
    });
    assert.match(r.stderr, /the database was not changed/);
    assert.equal(JSON.parse((await host.get(blue)).body).version, "v1");
    await assert.rejects(host.get(green));
    assert.equal(fs.readlinkSync(host.layout.current), path.join(host.layout.releases, ids.v1));
    assert.ok(fs.readFileSync(host.db).equals(dbBefore), "rollback never touches the database");
    assert.deepEqual(host.releaseLog().at(-1)!.slice(2), ["v2", "rolled-back"]);
  });

  it("rollback refuses (19) when there is nothing older to roll back to", () => {
    const r = host.run(["rollback"]);
    assert.equal(r.status, EXIT_CODES.nothingToRollBack, r.stderr);
    assert.match(r.stderr, /nothing to roll back to: current is 20250101120000-11111111/);
    assert.ok(!fs.existsSync(host.layout.lock));
  });

  it("rollback <id> switches to that release; to the current one it is a no-op", async () => {
    let r = host.run(["rollback", ids.v2]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse((await host.get(green)).body).version, "v2");
    r = host.run(["rollback", ids.v2]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(parseResult(r.stdout).outcome, "unchanged");
    r = host.run(["rollback", "20200101000000-deadbeef"]);
    assert.equal(r.status, EXIT_CODES.choose, r.stderr);
    assert.match(r.stderr, /release 20200101000000-deadbeef is not on this host; releases here: /);
  });

  it("a migration that writes a SQLite database inside the release is refused (14), naming it; traffic and data stay", async () => {
    const before = path.join(host.tmp, "before-v5.db");
    sqlite(host.db, `VACUUM INTO '${before}'`);
    const app = writeTestApp(path.join(host.tmp, "v5"), { version: "v5", strayDatabase: "migration" });
    const r = host.deploy(app, ids.v5);
    assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
    const dir = path.join(host.layout.releases, ids.v5);
    assert.ok(
      r.stderr.includes(
        `apphost: phase migrate failed: the migration (bash migrate.sh) wrote a SQLite database inside the release directory ${dir}: db.sqlite3. ` +
          "The next release is a new directory, so its data would stay behind there, and go when this release is pruned. " +
          `Open it where DATABASE_URL says (sqlite:///${host.layout.data}/app.db), or as data/<file> in the release (data/ links to ${host.layout.data}) ` +
          "and set apphost:database.sqliteFile to <file>, so backups and restores take it.\n",
      ),
      r.stderr,
    );
    assert.equal(JSON.parse((await host.get(green)).body).version, "v2");
    assert.deepEqual(host.releaseLog().at(-1)!.slice(2), ["v2", "failed:migrate"]);
    const m = /restore: database restored from (\S+)/.exec(r.stderr);
    assert.ok(m, r.stderr);
    assertSameDatabase(host.db, m[1]);
    assert.equal(sqlite(host.db, ".sha3sum"), sqlite(before, ".sha3sum"));
  });

  it("an app that opens one as it starts is refused at the health gate (16), before any traffic moves", async () => {
    const app = writeTestApp(path.join(host.tmp, "v6"), { version: "v6", strayDatabase: "server" });
    const r = host.deploy(app, ids.v6);
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.match(
      r.stderr,
      /apphost: phase health-gate failed: the new release \(apphost-shop-test-web@\d+\.service, as it started\) wrote a SQLite database inside the release directory \S+\/20250106120000-66666666: db\.sqlite3\. The next release is a new directory/,
    );
    assert.equal(JSON.parse((await host.get(green)).body).version, "v2");
    assert.equal(host.read(host.layout.activePort), `${green}\n`);
    assert.deepEqual(host.releaseLog().at(-1)!.slice(2), ["v2", "failed:health-gate"]);
  });

  it("start prepare runs check, upload and install alone: the live release serves on, the lock is free, the log unchanged", async () => {
    const app = writeTestApp(path.join(host.tmp, "v7"), { version: "v7" });
    const logBefore = host.releaseLog();
    const r = host.prepare(app, ids.v7);
    assert.equal(r.status, 0, r.stderr);
    const phases = [...r.stderr.matchAll(/^apphost: phase ([a-z-]+): ok \(\d+\.\ds\)$/gm)].map((m) => m[1]);
    assert.deepEqual(phases, [...PREPARE_PHASES]);
    assert.deepEqual(phases, ["check", "upload", "install"]);
    assert.match(r.stderr, /install: reusing .*venvs\//);
    assert.match(r.stderr, new RegExp(`apphost: release ${ids.v7} prepared; ${ids.v2} keeps serving\n`));
    const result = parseResult(r.stdout);
    assert.deepEqual(
      [result.release, result.current, result.outcome, result.job_command, result.job_status, result.live],
      [ids.v7, ids.v2, "prepared", "prepare", "0", ids.v2],
    );
    assert.equal(JSON.parse((await host.get(green)).body).version, "v2");
    assert.equal(host.read(host.layout.activePort), `${green}\n`);
    assert.equal(fs.readlinkSync(host.layout.current), path.join(host.layout.releases, ids.v2));
    assert.ok(fs.lstatSync(path.join(host.layout.releases, ids.v7, ".venv")).isSymbolicLink());
    assert.ok(!fs.existsSync(host.layout.lock), "lock released after the prepare");
    assert.deepEqual(host.releaseLog(), logBefore);
  });

  it("a deploy of the prepared release gets nothing on stdin: it reuses the upload and the install", async () => {
    const r = host.startPrepared(path.join(host.tmp, "v7"), ids.v7);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`upload: release ${ids.v7} is already on the host; reusing it`));
    assert.match(r.stderr, /install: reusing .*venvs\//);
    assert.equal(parseResult(r.stdout).outcome, "deployed");
    assert.equal(JSON.parse((await host.get(blue)).body).version, "v7");
    assert.deepEqual(host.releaseLog().at(-1)!.slice(2), ["v7", "deployed"]);
  });

  it("a prepare that fails (the upload's checksum: 11) changes nothing and rolls nothing back", async () => {
    const app = writeTestApp(path.join(host.tmp, "v8"), { version: "v8" });
    const logBefore = host.releaseLog();
    const r = host.prepare(app, ids.v8, { sha256: "0".repeat(64), direct: true });
    assert.equal(r.status, EXIT_CODES.upload, r.stderr);
    assert.match(
      r.stderr,
      /apphost: phase upload failed: artifact checksum mismatch: expected 0{64}, received [0-9a-f]{64}/,
    );
    assert.doesNotMatch(r.stderr, /rollback:|phase (backup|migrate|publish)/);
    assert.ok(!fs.existsSync(path.join(host.layout.releases, ids.v8)), "no release directory");
    assert.equal(JSON.parse((await host.get(blue)).body).version, "v7");
    assert.ok(!fs.existsSync(host.layout.lock), "lock released after the failed prepare");
    assert.deepEqual(host.releaseLog(), logBefore);
  });

  it("prepare takes deploy's arguments, and refuses a fourth (2)", () => {
    const r = host.run(["prepare", ids.v8, "abcdef12", "0".repeat(64), "extra"]);
    assert.equal(r.status, EXIT_CODES.usage, r.stderr);
    assert.match(
      r.stderr,
      /^apphost: prepare takes <release-id> <requirements-hash> \[<artifact-sha256>\]\n/,
    );
    const bad = host.run(["prepare", "v8", "abcdef12"]);
    assert.equal(bad.status, EXIT_CODES.usage, bad.stderr);
    assert.match(bad.stderr, /^apphost: prepare: "v8" is not a release id/);
  });
});
