/**
 * apphost-release run in a temp directory (see release-harness.ts): backups
 * (copied to S3 by a fake aws, kept N, never the live release's
 * pre-migration one) and restores, of a database alone and of a deployed app.
 */

import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { EXIT_CODES } from "../../components/release/phases";
import { parseResult } from "../../components/release/script";
import { releaseWarnings } from "../../components/remote/release";
import {
  assertSameDatabase,
  FakeHost,
  HARNESS_HEALTH_TIMEOUT_SECONDS,
  requireTool,
  S3,
  sqlite,
  writeTestApp,
} from "./release-harness";

describe("release script: backups copied to S3 (fake aws)", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost({ s3: S3, backupsKeep: 2, sharedVenv: true });
  });
  after(() => host.cleanup());

  it("with no database yet there is nothing to copy", () => {
    const r = host.run(["backup", "scheduled"]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(host.awsCalls(), []);
  });

  it("a scheduled backup is copied to s3://<bucket>/<app>/<stack>/<file> with SSE", () => {
    fs.mkdirSync(host.layout.data, { recursive: true });
    sqlite(host.db, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
    const r = host.run(["backup", "scheduled"]);
    assert.equal(r.status, 0, r.stderr);
    const file = parseResult(r.stdout).backup;
    const url = `s3://${S3.bucket}/shop/test/${path.basename(file)}`;
    assert.deepEqual(host.awsCalls(), [
      `s3 cp --region eu-central-1 --sse AES256 --only-show-errors --no-progress --cli-connect-timeout 10 ${file} ${url}`,
    ]);
    assert.match(r.stderr, new RegExp(`backup: copied to ${url.replace(/[.]/g, "\\.")}\n`));
  });

  it("a failed copy fails the scheduled backup (status 13), loudly, and keeps the local backup", () => {
    host.failAws(true);
    try {
      const r = host.run(["backup", "scheduled"]);
      assert.equal(r.status, EXIT_CODES.backup, r.stderr);
      const file = parseResult(r.stdout).backup;
      assert.ok(fs.existsSync(file), "the local backup is there");
      assert.match(
        r.stderr,
        /warning: backup: the copy of .* failed \(apphost:backups\.s3\): upload failed: An error occurred \(AccessDenied\)/,
      );
      assert.match(
        r.stderr,
        /phase backup failed: the backup is on this host \(.*\), but its copy to S3 failed\n/,
      );
    } finally {
      host.failAws(false);
    }
  });

  it("a deploy whose pre-migration copy fails still deploys, with a warning", () => {
    host.failAws(true);
    try {
      const app = writeTestApp(path.join(host.tmp, "app-s3"), { version: "v1" });
      const r = host.deploy(app, "20250101120000-0000aaaa");
      assert.equal(r.status, 0, r.stderr);
      assert.equal(parseResult(r.stdout).outcome, "deployed");
      assert.match(r.stderr, /warning: backup: the copy of .*-pre-20250101120000-0000aaaa\.db .* failed/);
      assert.match(r.stderr, /warning: the deploy goes on with the backup on this host/);
    } finally {
      host.failAws(false);
    }
  });
});

describe("release script: backup and restore", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost({ backupsKeep: 3 });
  });
  after(() => host.cleanup());

  it("with no database yet, backup logs it and succeeds", () => {
    const r = host.run(["backup", "scheduled"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /backup: no database yet at .*app\.db; nothing to back up/);
    assert.deepEqual(parseResult(r.stdout), { backup: "" });
  });

  it("copies a live WAL database online, integrity-checked, mode 0600, and keeps the newest N", () => {
    fs.mkdirSync(host.layout.data, { recursive: true });
    sqlite(host.db, "PRAGMA journal_mode=WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);");
    // Hold the database open with uncheckpointed WAL content while the backup runs.
    const writer = spawn("sqlite3", [host.db], { stdio: ["pipe", "ignore", "ignore"] });
    writer.stdin!.write("PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES (3);\n");
    const r = host.run(["backup", "scheduled"]);
    writer.stdin!.end(".quit\n");
    assert.equal(r.status, 0, r.stderr);
    const file = parseResult(r.stdout).backup;
    assert.match(path.basename(file), /^app-\d{8}T\d{6}\.\d{3}Z-scheduled\.db$/);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(sqlite(file, "PRAGMA integrity_check"), "ok\n");
    assert.match(sqlite(file, "SELECT count(*) FROM t"), /^[23]\n$/);
    for (let i = 0; i < 4; i++) assert.equal(host.run(["backup", `manual-${i}`]).status, 0);
    const left = fs.readdirSync(host.layout.backups).filter((f) => f.endsWith(".db"));
    assert.equal(left.length, 3, left.join(" "));
    assert.ok(
      left.some((f) => f.includes("manual-3")),
      "the newest is kept",
    );
  });

  it("restore is explicit: it saves what it replaces first, then restores online", () => {
    const file = parseResult(host.run(["backup", "before-change"]).stdout).backup;
    sqlite(host.db, "DELETE FROM t; CREATE TABLE junk (y);");
    const r = host.run(["restore", path.basename(file)]);
    assert.equal(r.status, 0, r.stderr);
    const res = parseResult(r.stdout);
    assert.equal(res.restored, file);
    assert.match(path.basename(res.saved), /-pre-restore\.db$/);
    assert.equal(sqlite(res.saved, "SELECT count(*) FROM junk"), "0\n", "the replaced state is kept");
    assertSameDatabase(host.db, file);
    const missing = host.run(["restore", "nope.db"]);
    assert.equal(missing.status, EXIT_CODES.usage);
    // The backups only (not the lock file beside them), newest first: the copy the restore just saved.
    const listed = /Backups here: (.*)$/m.exec(missing.stderr)?.[1].split(" ") ?? [];
    assert.match(missing.stderr, /restore: there is no backup .*nope\.db\. Backups here: /);
    // A value refused, not a command line that does not parse: the message only, no usage line
    // (npm run restore prints its own after it).
    assert.equal(
      missing.stderr,
      `apphost: restore: there is no backup ${host.layout.backups}/nope.db. Backups here: ${listed.join(" ")}\n`,
    );
    assert.ok(fs.existsSync(path.join(host.layout.backups, ".lock")), "the backups' lock file is there");
    assert.equal(listed[0], path.basename(res.saved), missing.stderr);
    assert.ok(listed.includes(path.basename(file)), missing.stderr);
    assert.deepEqual(
      listed.filter((f) => !/^app-\d{8}T\d{6}\.\d{3}Z-.+\.db$/.test(f)),
      [],
      `only backups are listed: ${missing.stderr}`,
    );
  });

  it("refuses a corrupt backup without touching the live database", () => {
    const bad = path.join(host.layout.backups, "app-20000101T000000Z-bad.db");
    fs.writeFileSync(bad, "this is not a database");
    const before = fs.readFileSync(host.db);
    const r = host.run(["restore", bad]);
    assert.equal(r.status, EXIT_CODES.restore, r.stderr);
    assert.match(r.stderr, /fails its integrity check/);
    assert.ok(fs.readFileSync(host.db).equals(before));
  });
});

describe("release script: restore of a deployed app (stop, restore, start, health)", function () {
  this.timeout(120000);
  let host: FakeHost;
  let port = 0;
  const web = () => `apphost-shop-test-web@${port}.service`;
  const worker = "apphost-shop-test-worker.service";
  before(async () => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost({ sharedVenv: true });
    const r = host.deploy(
      writeTestApp(path.join(host.tmp, "v1"), { version: "v1" }),
      "20250101120000-11111111",
    );
    assert.equal(r.status, 0, r.stderr);
    port = Number(parseResult(r.stdout).port);
    assert.equal((await host.get(port, "/healthz")).status, 200);
  });
  after(() => host.cleanup());

  it("stops the worker and the live web instance, restores, starts them on the same port and health-checks", async () => {
    sqlite(host.db, "INSERT INTO items (name) VALUES ('kept'), ('also kept')");
    const backup = parseResult(host.run(["backup", "good"]).stdout).backup;
    sqlite(host.db, "DELETE FROM items; INSERT INTO items (name) VALUES ('written after the backup')");
    const callsBefore = host.calls().length;
    const r = host.run(["restore", path.basename(backup)]);
    assert.equal(r.status, 0, r.stderr);
    const res = parseResult(r.stdout);
    assert.deepEqual(Object.keys(res).sort(), ["port", "restored", "saved"]);
    assert.equal(res.restored, backup);
    assert.equal(res.port, String(port));
    assert.match(path.basename(res.saved), /-pre-restore\.db$/);
    assert.deepEqual(host.calls().slice(callsBefore, callsBefore + 4), [
      `stop ${worker}`,
      `stop ${web()}`,
      `start ${web()}`,
      `start ${worker}`,
    ]);
    assert.match(r.stderr, /apphost: phase restore: ok/);
    assert.equal(sqlite(host.db, "SELECT name FROM items ORDER BY id"), "kept\nalso kept\n");
    assert.equal(
      sqlite(res.saved, "SELECT name FROM items"),
      "written after the backup\n",
      "what the restore replaced is kept",
    );
    assert.equal((await host.get(port, "/healthz")).status, 200);
    assert.ok(!fs.existsSync(host.layout.lock), "the lock is released");
  });

  it("a restored database the app is unhealthy on: the saved copy goes back, the app serves again, exit 21", async () => {
    sqlite(host.db, "CREATE TABLE poisoned (x)");
    const bad = parseResult(host.run(["backup", "poisoned"]).stdout).backup;
    sqlite(host.db, "DROP TABLE poisoned; INSERT INTO items (name) VALUES ('live row')");
    const live = path.join(host.tmp, "live.db");
    sqlite(host.db, `VACUUM INTO '${live}'`);
    const r = host.run(["restore", bad]);
    assert.equal(r.status, EXIT_CODES.restore, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `phase restore failed: ${web().replace(/[.@]/g, "\\$&")} did not answer 2xx on http://127\\.0\\.0\\.1:${port}/healthz after the restore \\(last answer: HTTP 500; no 2xx within ${HARNESS_HEALTH_TIMEOUT_SECONDS}s; the app answered: "\\{"version": "v1", .*\\}"\\)`,
      ),
    );
    assert.match(r.stderr, /restore: the database is back as it was \(from .*-pre-restore\.db\)/);
    assert.match(r.stderr, /restore: the app serves again/);
    assert.equal(sqlite(host.db, "SELECT count(*) FROM sqlite_master WHERE name = 'poisoned'"), "0\n");
    assert.equal(
      sqlite(host.db, "SELECT name FROM items ORDER BY id"),
      sqlite(live, "SELECT name FROM items ORDER BY id"),
    );
    assert.equal((await host.get(port, "/healthz")).status, 200);
    assert.ok(!fs.existsSync(host.layout.lock), "the lock is released");
  });
});

describe("release script: backup retention keeps the live release's pre-migration backup", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost({ backupsKeep: 2, sharedVenv: true });
  });
  after(() => host.cleanup());

  it("scheduled backups past apphost:backups.keep prune the older ones, never pre-<current release>", () => {
    const v1 = "20250101120000-11111111";
    const v2 = "20250102120000-22222222";
    let r = host.deploy(writeTestApp(path.join(host.tmp, "v1"), { version: "v1" }), v1);
    assert.equal(r.status, 0, r.stderr);
    r = host.deploy(
      writeTestApp(path.join(host.tmp, "v2"), {
        version: "v2",
        migrations: ["ALTER TABLE items ADD COLUMN done INTEGER NOT NULL DEFAULT 0"],
      }),
      v2,
    );
    assert.equal(r.status, 0, r.stderr);
    for (let i = 0; i < 3; i++) assert.equal(host.run(["backup", "scheduled"]).status, 0);
    // Dot-files (the backup lock) are not backups.
    const left = fs
      .readdirSync(host.layout.backups)
      .filter((f) => !f.startsWith("."))
      .sort();
    assert.equal(left.length, 3, left.join(" "));
    assert.match(left[0], new RegExp(`-pre-${v2}\\.db$`), "the live release's pre-migration backup is kept");
    assert.ok(
      left.slice(1).every((f) => f.endsWith("-scheduled.db")),
      left.join(" "),
    );
  });

  it("a scheduled backup during a deploy never prunes that deploy's pre-<new release> backup", () => {
    // As if the deploy of v3 took its backup and is migrating while the timer fires (keep = 2).
    const v3 = "20250103120000-33333333";
    const pre = path.join(host.layout.backups, `app-20250103T120000.000Z-pre-${v3}.db`);
    fs.copyFileSync(host.db, pre);
    // An older release's pre-migration backup is an ordinary one: pruned past keep.
    const old = path.join(host.layout.backups, "app-20241231T120000.000Z-pre-20241231120000-00000000.db");
    fs.copyFileSync(host.db, old);
    for (let i = 0; i < 3; i++) {
      const r = host.run(["backup", "scheduled"]);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.ok(fs.existsSync(pre), "the deploy's pre-migration backup was pruned");
    assert.equal(fs.existsSync(old), false, "an older release's pre-migration backup was kept past keep");
    assert.ok(
      fs.readdirSync(host.layout.backups).some((f) => /-pre-20250102120000-22222222\.db$/.test(f)),
      "the live release's pre-migration backup was pruned",
    );
  });
});

describe("release script: a rollback to a release older than the database's migrations", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true })));
  after(() => host.cleanup());

  it("records no revision, and warns, naming the backup taken before the migration after it", async () => {
    const v1 = "20250101120000-a1a1a1a1";
    const v2 = "20250102120000-b2b2b2b2";
    const v3 = "20250103120000-c3c3c3c3";
    // Each release knows its own revisions and the ones before, as its alembic versions/ does.
    let r = host.deploy(
      writeTestApp(path.join(host.tmp, "v1"), { version: "v1", knowsRevisions: ["v1"] }),
      v1,
    );
    assert.equal(r.status, 0, r.stderr);
    r = host.deploy(
      writeTestApp(path.join(host.tmp, "v2"), { version: "v2", knowsRevisions: ["v1", "v2"] }),
      v2,
    );
    assert.equal(r.status, 0, r.stderr);
    const before = /backup: database copied to \S+\/(app-\S+-pre-20250102120000-b2b2b2b2\.db) /.exec(
      r.stderr,
    )?.[1];
    assert.ok(before, r.stderr);
    r = host.deploy(
      writeTestApp(path.join(host.tmp, "v3"), { version: "v3", knowsRevisions: ["v1", "v2", "v3"] }),
      v3,
    );
    assert.equal(r.status, 0, r.stderr);

    // Back to v1: its revision.sh does not know v3, the database's revision.
    r = host.run(["rollback", v1]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(parseResult(r.stdout).revision, "", "a failed revision command is no revision");
    assert.deepEqual(host.releaseLog().at(-1)!.slice(2), ["-", "rolled-back"]);
    assert.deepEqual(releaseWarnings(r.stderr), [
      `apphost: rollback: warning: the revision command of release ${v1} failed (bash revision.sh: "FAILED: Can't locate revision identified by 'v3'"): ` +
        "a later release's migration may have taken the database past this release's migrations, and a rollback does not touch the database; " +
        `if this release needs the schema it was deployed with, restore ${before}, the backup taken before the first migration after it ` +
        `(npm run restore -- --stack test --backup ${before}), and lose what was written since`,
    ]);
    assert.equal(JSON.parse((await host.get(Number(parseResult(r.stdout).port))).body).version, "v1");

    // To v2, which knows v1 and v2 only: the first backup after it is v3's; with none left, it says so.
    r = host.run(["rollback", v2]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      releaseWarnings(r.stderr)[0] ?? "",
      /, restore app-\S+-pre-20250103120000-c3c3c3c3\.db, the backup/,
    );
    for (const f of fs.readdirSync(host.layout.backups)) fs.rmSync(path.join(host.layout.backups, f));
    r = host.run(["rollback", v1]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      releaseWarnings(r.stderr)[0] ?? "",
      /; no backup taken before a later release's migration is left on this host$/,
    );
    // A target that knows the database's revision: no warning, its revision recorded.
    r = host.run(["rollback", v3]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(releaseWarnings(r.stderr), []);
    assert.equal(parseResult(r.stdout).revision, "v3");
  });

  it("no revision command (aerich, an app's own script): the schema's fingerprint is the revision, and a rollback past a change warns", () => {
    const other = new FakeHost({ sharedVenv: true, database: { revision: "" } });
    try {
      const [x1, x2, x3] = ["20250101120000-f1f1f1f1", "20250102120000-f2f2f2f2", "20250103120000-f3f3f3f3"];
      const items = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)";
      const tags = "CREATE TABLE IF NOT EXISTS tags (id INTEGER PRIMARY KEY)";
      const deploy = (id: string, version: string, migrations: string[]) =>
        other.deploy(writeTestApp(path.join(other.tmp, version), { version, migrations }), id);
      let r = deploy(x1, "x1", [items]);
      assert.equal(r.status, 0, r.stderr);
      const schema1 =
        /migrate: revision  -> (schema:[0-9a-f]{12}) \(the schema's fingerprint: apphost:database\.revision is unset\)\n/.exec(
          r.stderr,
        )?.[1];
      assert.ok(schema1, r.stderr);
      r = deploy(x2, "x2", [items, tags]);
      assert.equal(r.status, 0, r.stderr);
      const before = /backup: database copied to \S+\/(app-\S+-pre-20250102120000-f2f2f2f2\.db) /.exec(
        r.stderr,
      )?.[1];
      assert.ok(before, r.stderr);
      const schema2 = other.releaseLog().at(-1)![2];
      assert.match(schema2, /^schema:[0-9a-f]{12}$/);
      assert.notEqual(schema2, schema1);
      // A migration that leaves the schema as it was (data only): the same fingerprint.
      r = deploy(x3, "x3", [items, tags, "INSERT INTO tags VALUES (1)"]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(other.releaseLog().at(-1)![2], schema2);

      r = other.run(["rollback", x1]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(releaseWarnings(r.stderr), [
        `apphost: rollback: warning: the database's schema is not the one release ${x1} was deployed with (its fingerprint ` +
          `${schema2.slice(7)}, then ${schema1.slice(7)}; the stack has no revision command, apphost:database.revision): ` +
          "a later release's migration may have taken the database past this release's migrations, and a rollback does not touch the database; " +
          `if this release needs the schema it was deployed with, restore ${before}, the backup taken before the first migration after it ` +
          `(npm run restore -- --stack test --backup ${before}), and lose what was written since`,
      ]);
      assert.deepEqual(other.releaseLog().at(-1)!.slice(2), [schema2, "rolled-back"]);
      // Back to x2, deployed with the schema the database has: no warning.
      r = other.run(["rollback", x2]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(releaseWarnings(r.stderr), []);
    } finally {
      other.cleanup();
    }
  });

  it("a revision command that reads the database whatever the release knows (knex, Django): warns when the revision is not the one the target was deployed at", () => {
    const other = new FakeHost({ sharedVenv: true });
    try {
      const [w1, w2] = ["20250101120000-d1d1d1d1", "20250102120000-e2e2e2e2"];
      let r = other.deploy(writeTestApp(path.join(other.tmp, "w1"), { version: "w1" }), w1);
      assert.equal(r.status, 0, r.stderr);
      r = other.deploy(writeTestApp(path.join(other.tmp, "w2"), { version: "w2" }), w2);
      assert.equal(r.status, 0, r.stderr);
      const before = /backup: database copied to \S+\/(app-\S+-pre-20250102120000-e2e2e2e2\.db) /.exec(
        r.stderr,
      )?.[1];
      assert.ok(before, r.stderr);
      r = other.run(["rollback", w1]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(parseResult(r.stdout).revision, "w2", "the database's revision, which w1 reads");
      assert.deepEqual(releaseWarnings(r.stderr), [
        `apphost: rollback: warning: the database is at revision "w2", not "w1" as when release ${w1} was deployed: ` +
          "a later release's migration may have taken the database past this release's migrations, and a rollback does not touch the database; " +
          `if this release needs the schema it was deployed with, restore ${before}, the backup taken before the first migration after it ` +
          `(npm run restore -- --stack test --backup ${before}), and lose what was written since`,
      ]);
      // Back to w2, deployed at the revision the database is at: no warning.
      r = other.run(["rollback", w2]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(releaseWarnings(r.stderr), []);
    } finally {
      other.cleanup();
    }
  });
});
