/**
 * apphost-release, rendered and RUN: shellcheck on the production render, then
 * deploys, the health gate, the rollback mirror, rollback on purpose, backups,
 * restores and the host's directories in a temp directory with a fake
 * systemctl that really starts and stops the web instances (see
 * release-harness.ts). The lock, keep-N and detached jobs are in
 * release.lock.test.ts and release.jobs.test.ts, so that mocha's workers run
 * them beside this file.
 */

import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { hostLayout } from "../../components/paths";
import { DEPLOY_PHASES, EXIT_CODES } from "../../components/release/phases";
import { parseResult, parseStatus, renderReleaseScript } from "../../components/release/script";
import { renderUpstreamRuleset } from "../../components/render/nftables";
import {
  assertSameDatabase,
  baseInput,
  FakeHost,
  mkTemp,
  requireTool,
  relocateLayout,
  S3,
  sqlite,
  writeTestApp,
} from "./release-harness";

describe("release script: static checks", () => {
  it("passes shellcheck -s bash with no findings (production render, variants, standalone backup/restore)", function () {
    this.timeout(60000);
    requireTool("shellcheck", "apt-get install -y shellcheck");
    const variants = [
      baseInput(),
      baseInput({ proxy: { kind: "nginx" } }),
      baseInput({ database: { ...baseInput().database, kind: "postgres" } }),
      baseInput({ database: { ...baseInput().database, kind: "none", migrate: "" } }),
      baseInput({
        app: {
          ...baseInput().app,
          runtime: "node",
          requirements: "package-lock.json",
          build: "npm run build",
        },
      }),
      baseInput({
        app: { ...baseInput().app, processes: [{ name: "worker", command: "x", kind: "worker" }] },
      }),
      baseInput({ s3: S3 }),
      baseInput({ s3: S3, database: { ...baseInput().database, kind: "postgres" } }),
      baseInput({ database: { ...baseInput().database, kind: "rds" } }),
      // Several app hosts: an external Postgres, the first host and one after it.
      baseInput({ database: { ...baseInput().database, kind: "external" } }),
      baseInput({ database: { ...baseInput().database, kind: "external" }, follower: true }),
    ];
    const dir = mkTemp("shellcheck");
    const scripts = [...variants.map((v) => renderReleaseScript(v))];
    try {
      scripts.forEach((text, i) => {
        const file = path.join(dir, `apphost-release-${i}`);
        fs.writeFileSync(file, text);
        const r = spawnSync("shellcheck", ["-s", "bash", file]);
        assert.equal(r.status, 0, `variant ${i}:\n${r.stdout}${r.stderr}`);
        assert.equal(r.stdout.toString(), "", `variant ${i}`);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("release.sh, the static part, passes shellcheck as it is; the render carries none of its preamble", () => {
    requireTool("shellcheck", "apt-get install -y shellcheck");
    const file = path.join(__dirname, "../../components/release/release.sh");
    const text = fs.readFileSync(file, "utf8");
    assert.match(text, /^# shellcheck shell=bash$/m, "shellcheck must know the shell without -s");
    const r = spawnSync("shellcheck", ["-S", "style", file], { encoding: "utf8" });
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(r.stdout, "");
    const s = renderReleaseScript(baseInput());
    assert.ok(
      !s.includes("# shellcheck disable=SC2034"),
      "the preamble's file-wide directives were rendered",
    );
    assert.ok(!s.includes("# shellcheck shell=bash"));
    assert.ok(s.endsWith(text.slice(text.indexOf("\nnote() {") + 1)), "the render ends with release.sh");
  });

  it("apphost:backups.s3: the backup command copies after pruning, and a failed copy fails it", () => {
    const s = renderReleaseScript(baseInput({ s3: S3 }));
    assert.ok(
      s.includes(
        [
          "  db_lock",
          '  db_backup "$label"',
          "  db_prune_backups",
          "  db_unlock",
          "  # A failed copy fails the command (and the scheduled unit), after the local backup is in place.",
          '  if [ "$S3_COPY" = 1 ] && ! db_copy_offsite "$BACKUP_FILE"; then printf "backup=%s\\n" "$BACKUP_FILE" >&3; die "the backup is on this host ($BACKUP_FILE), but its copy to S3 failed"; fi',
          '  note "phase backup: ok"',
        ].join("\n"),
      ),
    );
    assert.match(s, /^readonly S3_COPY=1$/m);
    assert.ok(s.includes(" aws s3 cp --region eu-central-1 --sse AES256 "), "the real CLI in production");
    assert.ok(!renderReleaseScript(baseInput()).includes("aws "), "no copy without apphost:backups.s3");
    assert.match(renderReleaseScript(baseInput()), /^readonly S3_COPY=0$/m);
  });

  it("a production render contains no test hooks", () => {
    const s = renderReleaseScript(baseInput());
    assert.match(s, /^#!\/bin\/bash\n/);
    // The commands are readonly values of the header; release.sh calls them through these.
    for (const [name, command] of [
      ["SYSTEMCTL", "systemctl"],
      ["JOURNALCTL", "journalctl"],
      ["SYSTEMD_RUN", "systemd-run"],
      ["RUNUSER", "runuser"],
      ["NFT", "nft"],
    ]) {
      assert.match(s, new RegExp(`^readonly ${name}=${command}$`, "m"), name);
    }
    assert.ok(s.includes('  "$RUNUSER" -u "$APP_USER" -- env -i'));
    assert.ok(s.includes('| "$NFT" -f - 2>&1); then'), "switches with the real nft");
    assert.ok(!/reload (caddy|nginx)/.test(s), "never reloads the proxy");
    assert.match(s, /^readonly REQUIRE_ROOT=1$/m, "requires root");
    assert.ok(
      s.includes('if [ "$REQUIRE_ROOT" = 1 ] && [ "$MAIN_COMMAND" != status ] && [ "$(id -u)" -ne 0 ]'),
    );
    assert.ok(!/APPHOST_(SYSTEMCTL|JOURNALCTL|RUNUSER)/.test(s), "nothing read from the environment");
  });

  it("renders the same text for the same input", () => {
    assert.equal(renderReleaseScript(baseInput()), renderReleaseScript(baseInput()));
  });

  it("parses results", () => {
    assert.deepEqual(parseResult("release=x\nport=8001\noutcome=deployed\n"), {
      release: "x",
      port: "8001",
      outcome: "deployed",
    });
  });

  it("relocates every layout path under a temp root", () => {
    const l = relocateLayout(hostLayout("shop", "prod"), "/tmp/x", "me");
    assert.equal(l.root, "/tmp/x/srv");
    assert.equal(l.releases, "/tmp/x/srv/releases");
    assert.equal(l.envFile, "/tmp/x/etc/apphost/shop-prod.env");
    assert.equal(l.caddyUpstream, "/tmp/x/etc/caddy/apphost/shop-prod.upstream");
    assert.equal(l.user, "me");
    assert.equal(l.unitPrefix, "apphost-shop-prod");
  });
});

describe("release script: usage", () => {
  let host: FakeHost;
  before(() => {
    host = new FakeHost();
  });
  after(() => host.cleanup());

  it("rejects bad arguments with status 2 and the usage line", () => {
    for (const args of [
      [],
      ["nope"],
      ["deploy", "bad-id", "abcdef12"],
      ["deploy", "20250101120000-abcdef12", "XYZ"],
    ]) {
      const r = host.run(args);
      assert.equal(r.status, EXIT_CODES.usage, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /usage: /);
    }
  });

  it("fails the upload phase with status 11 when no artifact arrives on stdin", () => {
    const r = host.run(["deploy", "20250101120000-abcdef12", "0123456789abcdef"]);
    assert.equal(r.status, EXIT_CODES.upload, r.stderr);
    assert.match(r.stderr, /apphost: phase upload failed: no artifact on stdin/);
    assert.match(r.stderr, /apphost: phase check: ok \(\d+\.\d+s\)\n/);
    assert.deepEqual(
      host.releaseLog().map((l) => [l[0], l[3]]),
      [["20250101120000-abcdef12", "failed:upload"]],
    );
    assert.ok(!fs.existsSync(host.layout.lock), "lock released");
  });

  it("refuses a truncated artifact (checksum mismatch)", () => {
    const app = writeTestApp(path.join(host.tmp, "app-trunc"), { version: "t" });
    const r = host.run(
      ["deploy", "20250101120001-abcdef12", "0123456789abcdef", "b".repeat(64)],
      "not a tarball",
    );
    assert.equal(r.status, EXIT_CODES.upload, r.stderr);
    assert.match(r.stderr, /artifact checksum mismatch/);
    assert.ok(!fs.existsSync(path.join(host.layout.releases, "20250101120001-abcdef12")));
    assert.ok(fs.existsSync(app));
  });
});

describe("release script: a deploy story (blue/green, health gate, mirror, rollback)", function () {
  this.timeout(240000);
  let host: FakeHost;
  const ids = {
    v1: "20250101120000-11111111",
    v2: "20250102120000-22222222",
    v3: "20250103120000-33333333",
    v4: "20250104120000-44444444",
  };
  let blue: number;
  let green: number;

  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    requireTool("python3", "apt-get install -y python3 python3-venv");
    host = new FakeHost();
    blue = host.basePort;
    green = blue + 1;
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
    assert.equal(host.ruleset(), renderUpstreamRuleset(host.layout, { upstreamPort: blue + 2, port: blue }));
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
    assert.equal(host.ruleset(), renderUpstreamRuleset(host.layout, { upstreamPort: blue + 2, port: green }));
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
        `upstream: 127\\.0\\.0\\.1:${blue + 2} -> 127\\.0\\.0\\.1:${green} \\(nftables table ip apphost_shop_test\\)`,
      ),
    );
    assert.equal(host.ruleset(), renderUpstreamRuleset(host.layout, { upstreamPort: blue + 2, port: green }));
    assert.deepEqual(host.calls().slice(before), ["nft -f -"]);
  });

  it("deploying the current release again re-publishes it on the other port (env or unit change)", async () => {
    for (const port of [blue, green]) {
      const r = host.deploy(path.join(host.tmp, "v2"), ids.v2);
      assert.equal(r.status, 0, r.stderr);
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
    });
    const r = host.deploy(app, ids.v3);
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.match(
      r.stderr,
      /apphost: phase health-gate failed: apphost-shop-test-web@\d+\.service did not answer 2xx/,
    );
    assert.match(r.stderr, /last answer: HTTP 500/);
    assert.match(r.stderr, /unhealthy on purpose/, "journal lines in the error");
    assert.match(r.stderr, /rollback revert-traffic: ok/);
    assert.match(r.stderr, /restore: database restored from/);
    assert.equal(JSON.parse((await host.get(green)).body).version, "v2");
    await assert.rejects(host.get(blue), "the failed instance is stopped");
    assert.equal(host.read(host.layout.activePort), `${green}\n`);
    assert.equal(fs.readlinkSync(host.layout.current), path.join(host.layout.releases, ids.v2));
    assert.equal(sqlite(host.db, "SELECT rev FROM revision"), "v2\n");
    assert.doesNotMatch(sqlite(host.db, "SELECT sql FROM sqlite_schema WHERE name = 'items'"), /done/);
    assert.deepEqual(host.releaseLog().at(-1)!.slice(2), ["v2", "failed:health-gate"]);
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
      /apphost: phase migrate failed: the migration command failed: python3 migrate.py; last 40 lines/,
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
});

describe("release script: backups copied to S3 (fake aws)", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost({ s3: S3, backupsKeep: 2 });
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
    assert.match(missing.stderr, /restore: there is no backup .*nope\.db\. Backups here: .*-pre-restore\.db/);
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
    host = new FakeHost();
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
        `phase restore failed: ${web().replace(/[.@]/g, "\\$&")} did not answer 2xx on http://127\\.0\\.0\\.1:${port}/healthz within 5s after the restore \\(last answer: HTTP 500\\)`,
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
    host = new FakeHost({ backupsKeep: 2 });
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

describe("release script: host directories", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost()));
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

describe("release script: root never acts through a symlink the app user planted", function () {
  this.timeout(120000);
  let host: FakeHost;
  let outside: string;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost();
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
