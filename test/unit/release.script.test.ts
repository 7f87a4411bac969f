/**
 * apphost-release, rendered and RUN: shellcheck on the production render, then
 * deploys, the health gate, the rollback mirror, rollback on purpose, the lock,
 * backups and keep-N in a temp directory with a fake systemctl that really
 * starts and stops the web instances (see release-harness.ts).
 */
import { spawn, spawnSync, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { hostLayout } from "../../components/paths";
import { backupScript, restoreScript } from "../../components/release/backup";
import { DEPLOY_PHASES, EXIT_CODES } from "../../components/release/phases";
import {
  parseResult,
  parseStatus,
  relocateLayout,
  renderReleaseScript,
} from "../../components/release/script";
import { renderUpstreamRuleset } from "../../components/render/nftables";
import { FakeHost, baseInput, mkTemp, untilStderr, writeTestApp } from "./release-harness";

/** apphost:backups.s3 as BackupBucket.target hands it to the script. */
const S3 = { bucket: "shop-test-20250101abcdef", region: "eu-central-1", prefix: "shop/test/" };

function requireTool(tool: string, hint: string): void {
  const r = spawnSync("sh", ["-c", `command -v ${tool}`]);
  if (r.status !== 0) assert.fail(`${tool} is not installed; it is required by these tests: ${hint}`);
}

function sqlite(db: string, sql: string): string {
  const r = spawnSync("sqlite3", ["-bail", db, sql]);
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout.toString();
}

/** Same database pages; only the header counters SQLite bumps on every write may differ. */
function assertSameDatabase(actual: string, expected: string): void {
  const a = fs.readFileSync(actual);
  const b = fs.readFileSync(expected);
  assert.equal(a.length, b.length, "database sizes differ");
  const mask = (buf: Buffer) => {
    const c = Buffer.from(buf);
    c.fill(0, 24, 28); // file change counter
    c.fill(0, 40, 44); // schema cookie
    c.fill(0, 92, 100); // version-valid-for and SQLite version number
    return c;
  };
  assert.ok(mask(a).equals(mask(b)), "database pages differ");
  assert.equal(sqlite(actual, ".sha3sum --schema"), sqlite(expected, ".sha3sum --schema"));
}

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
    const scripts = [
      ...variants.map((v) => renderReleaseScript(v)),
      ...variants.map((v) => backupScript(v, "scheduled")),
      ...variants
        .filter((v) => v.database.kind !== "none")
        .map((v) => restoreScript(v, "/srv/x/backups/a.db")),
    ];
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
          '  if ! db_copy_offsite "$BACKUP_FILE"; then printf "backup=%s\\n" "$BACKUP_FILE" >&3; die "the backup is on this host ($BACKUP_FILE), but its copy to S3 failed"; fi',
          '  note "phase backup: ok"',
        ].join("\n"),
      ),
    );
    assert.ok(s.includes(" aws s3 cp --region eu-central-1 --sse AES256 "), "the real CLI in production");
    assert.ok(!renderReleaseScript(baseInput()).includes("aws "), "no copy without apphost:backups.s3");
  });

  it("a production render contains no test hooks", () => {
    const s = renderReleaseScript(baseInput());
    assert.match(s, /^#!\/bin\/bash\n/);
    assert.ok(s.includes('  runuser -u "$APP_USER" -- env -i'));
    assert.ok(s.includes("| nft -f - 2>&1); then"), "switches with the real nft");
    assert.ok(!/reload (caddy|nginx)/.test(s), "never reloads the proxy");
    assert.ok(s.includes('[ "$(id -u)" -ne 0 ]'), "requires root");
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

describe("release script: the client goes away in the middle of a deploy", function () {
  this.timeout(120000);
  let host: FakeHost;
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost();
  });
  after(() => host.cleanup());

  it("its pipes closed during a failing migration: the script still rolls back on the host, its output in release-output.log", async () => {
    const v1 = "20250101120000-a1a1a1a1";
    const v2 = "20250102120000-b2b2b2b2";
    const r1 = host.deploy(writeTestApp(path.join(host.tmp, "v1"), { version: "v1" }), v1);
    assert.equal(r1.status, 0, r1.stderr);
    const tablesBefore = sqlite(host.db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    // v2's migration takes 3 s, creates a table, then fails: the client is gone by then.
    const app = writeTestApp(path.join(host.tmp, "v2"), {
      version: "v2",
      migrations: ["CREATE TABLE half_done (x)"],
      failMigration: true,
      migrationDelaySeconds: 3,
    });
    const child = host.spawnDeploy(app, v2);
    // Read until the migration starts, then close both pipes as a dropped SSH session does.
    await untilStderr(child, "phase migrate: start");
    child.stdout!.destroy();
    child.stderr!.destroy();
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, EXIT_CODES.migrate, "the script should end with the migrate phase's status");
    const out = host.read(path.join(host.layout.root, "release-output.log"));
    assert.match(out, /the client went away \(SIGPIPE\)/);
    assert.match(out, /rollback: database restored from .*-pre-20250102120000-b2b2b2b2\.db/);
    assert.deepEqual(host.releaseLog().at(-1)?.slice(0, 1), [v2]);
    assert.equal(host.releaseLog().at(-1)?.[3], "failed:migrate");
    assert.equal(
      sqlite(host.db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
      tablesBefore,
    );
    assert.equal(fs.readlinkSync(host.layout.current).endsWith(v1), true, "current moved off v1");
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

describe("release script: detached jobs (start, follow)", function () {
  this.timeout(120000);
  let host: FakeHost;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const jobDir = (id: string) => path.join(host.layout.jobs, id);
  before(() => {
    requireTool("sqlite3", "apt-get install -y sqlite3");
    host = new FakeHost();
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
    assert.match(run, /--unit=apphost-shop-test-job\.service /);
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
      migrationDelaySeconds: 3,
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
    const child = host.spawnStart(
      writeTestApp(path.join(host.tmp, "v4"), { version: "v4", migrationDelaySeconds: 3 }),
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
        `a job is still running on this host: deploy ${v4} .*started by .* \\(job ${job}, unit apphost-shop-test-job\\.service\\)\\. Follow it with: sudo \\S+ follow ${job}`,
      ),
    );
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    assert.equal(code, 0);
  });

  it("a job killed outright (no exit status) is reported as lost, with where to look", async () => {
    const v6 = "20250106120000-d6d6d6d6";
    const child = host.spawnStart(
      writeTestApp(path.join(host.tmp, "v6"), { version: "v6", migrationDelaySeconds: 5 }),
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
});
