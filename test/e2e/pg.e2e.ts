/**
 * Postgres on the host end to end (apphost:database.kind postgres): the role
 * and database a first `up` creates, a code release under load, a migration
 * that fails half way, a scheduled backup restored with `npm run restore`,
 * and a Server-Sent Events stream through Caddy that a release does not cut.
 */
import { strict as assert } from "assert";
import * as path from "path";
import type * as auto from "@pulumi/pulumi/automation";
import {
  assertSpreadOverTime,
  freshBackend,
  http,
  onHost,
  postItem,
  pulumiCli,
  readEventStream,
  sandboxUp,
  type Sandbox,
  type StreamResult,
  sandboxesDone,
} from "./lib";
import { runCli } from "./ops-lib";
import {
  appVariant,
  BROKEN_0003,
  describeLoad,
  FIXED_0003,
  hostPostgres,
  samplePostgresStack,
  removeVariants,
  startLoad,
} from "./release-lib";

const SANDBOX = { name: "apphost-h10", subnet: "10.83.0" };
const STACK = "local-pg";
const ID = `sample-${STACK}`;
const DB = "sample_local_pg";
const HOSTNAME = "sample.local.test";
/** Long enough that a stream opened before the switch is still going when the old instance is stopped. */
const DRAIN_SECONDS = 15;

const { sql, fingerprint } = hostPostgres(DB);
const rowCounts = () =>
  sql(
    "select string_agg(table_name || '=' || (xpath('/row/c/text()', query_to_xml('select count(*) as c from public.' || quote_ident(table_name), false, true, '')))[1]::text, ',' order by table_name) from information_schema.tables where table_schema = 'public'",
  );

describe("postgres on the host: role, release, failed migration, backup and restore, streams (real engine)", function () {
  let sandbox: Sandbox;
  let backend: string;
  let engineOutput = "";
  const log = (s: string) => {
    engineOutput += s;
    process.stdout.write(s);
  };
  const say = (s: string) => process.stdout.write(`      ${s}\n`);

  // bloom: an extension only a superuser may create (apphost:database.extensions), whose COMMENT ON EXTENSION in
  // every dump only its owner, postgres, may set: the restore below passes over it.
  const stackFor = (source: string) =>
    samplePostgresStack(
      backend,
      STACK,
      sandbox,
      source,
      { drainSeconds: DRAIN_SECONDS },
      { extensions: ["bloom"] },
    );
  let lastSource = path.join("examples", "sample-app");
  async function up(source: string): Promise<auto.UpResult> {
    lastSource = source;
    const stack = await stackFor(source);
    return stack.up({ onOutput: log, configFile: stack.configFile });
  }
  const post = (name: string) => postItem(sandbox, HOSTNAME, name);
  const names = () =>
    (JSON.parse(http(sandbox, HOSTNAME, "/items", "https").body) as { name: string }[]).map((i) => i.name);

  /** `pulumi destroy` keeps the database (by design): a rerun on the same sandbox starts from none. */
  const dropDatabase = () =>
    onHost(
      `if command -v dropdb >/dev/null; then runuser -u postgres -- dropdb --if-exists ${DB}; runuser -u postgres -- dropuser --if-exists ${DB}; runuser -u postgres -- dropuser --if-exists e2e_other; fi`,
      { allowFailure: true },
    );

  before(function () {
    sandbox = sandboxUp(SANDBOX);
    backend = freshBackend();
    dropDatabase();
  });

  after(function () {
    removeVariants();
    sandboxesDone(SANDBOX);
  });

  it("the first up creates the role and the database, migrates, and serves from Postgres; the password is never in plain text", async function () {
    const res = await up(path.join("examples", "sample-app"));
    assert.equal(res.summary.result, "succeeded");
    const health = JSON.parse(http(sandbox, HOSTNAME, "/healthz", "https").body) as Record<string, string>;
    assert.deepEqual([health.status, health.database, health.revision], ["ok", "ok", "0002"]);
    for (const n of ["first", "second", "third"]) post(n);
    assert.deepEqual(names(), ["first", "second", "third"]);
    // The rows are in the stack's Postgres database, owned by the stack's role.
    assert.equal(sql("select string_agg(name, ',' order by id) from items"), "first,second,third");
    assert.equal(
      sql("select pg_get_userbyid(datdba) from pg_database where datname = current_database()"),
      DB,
    );
    assert.equal(sql("select tableowner from pg_tables where tablename = 'items'"), DB);
    // apphost:database.extensions: created by the postgres superuser, which the stack's role is not.
    assert.equal(sql("select extowner::regrole from pg_extension where extname = 'bloom'"), "postgres");
    assert.equal(sql(`select rolsuper from pg_roles where rolname = '${DB}'`), "f");
    assert.match(sql(`select rolpassword from pg_authid where rolname = '${DB}'`), /^SCRAM-SHA-256\$4096:/);

    const env = onHost(`cat /etc/apphost/${ID}.env; stat -c '%a %U' /etc/apphost/${ID}.env`).stdout;
    const url = /^DATABASE_URL="(postgresql:\/\/[^"]+)"$/m.exec(env)?.[1] ?? "";
    const password =
      /^postgresql:\/\/sample_local_pg:([A-Za-z0-9]{32})@127\.0\.0\.1:5432\/sample_local_pg$/.exec(url)?.[1];
    assert.ok(password, `DATABASE_URL is not the expected form: ${url.replace(/:[^:@]*@/, ":***@")}`);
    for (const line of [
      'DB_POOL_SIZE="5"',
      'DB_MAX_OVERFLOW="10"',
      'DB_POOL_TIMEOUT="30"',
      'DB_POOL_RECYCLE="1800"',
    ]) {
      assert.ok(env.includes(`\n${line}\n`), line);
    }
    assert.match(env, /\n640 root\n$/, "the env file is root's, 0640");

    // Nowhere in plain text: the state export, the engine's output, the host's Postgres log.
    const exported = pulumiCli(["stack", "export", "--stack", STACK], { backendUrl: backend });
    assert.equal(exported.code, 0, exported.stderr);
    assert.ok(
      exported.stdout.includes("random:index/randomPassword:RandomPassword"),
      "the password is a RandomPassword",
    );
    assert.equal(exported.stdout.includes(password), false, "the password is in the state export");
    assert.equal(engineOutput.includes(password), false, "the password is in the engine's output");
    assert.equal(
      onHost(`grep -rl ${password} /var/log/postgresql /var/log/apphost* 2>/dev/null || true`).stdout.trim(),
      "",
    );

    // The role logs in with its password on 127.0.0.1; another role cannot open the stack's database.
    assert.equal(
      onHost(
        `PGPASSWORD=${password} psql -X -At -h 127.0.0.1 -U ${DB} -d ${DB} -c 'select current_user'`,
      ).stdout.trim(),
      DB,
    );
    onHost(
      'runuser -u postgres -- psql -X -q -c "DROP ROLE IF EXISTS e2e_other" -c "CREATE ROLE e2e_other LOGIN PASSWORD \'other-pw\'"',
    );
    const other = onHost(`PGPASSWORD=other-pw psql -X -At -h 127.0.0.1 -U e2e_other -d ${DB} -c 'select 1'`, {
      allowFailure: true,
    });
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /permission denied for database|does not have CONNECT privilege/);
    say(`role ${DB}: scram-sha-256, ${names().length} rows served from Postgres`);
  });

  it("a second up with nothing changed changes nothing", async function () {
    const stack = await stackFor(path.join("examples", "sample-app"));
    const res = await stack.up({ onOutput: log, configFile: stack.configFile });
    assert.deepEqual(
      Object.entries(res.summary.resourceChanges ?? {}).filter(([k]) => k !== "same"),
      [],
      JSON.stringify(res.summary.resourceChanges),
    );
  });

  it("Server-Sent Events pass through Caddy as they are sent, not all at once at the end", async function () {
    const r = await readEventStream(sandbox, HOSTNAME, "/events?count=5&interval=0.8", "https", 30);
    assert.equal(String(r.headers["content-type"]).split(";")[0], "text/event-stream");
    say(`caddy: ${assertSpreadOverTime(r, 5, 800)}`);
  });

  it("a code release under load fails 0 requests, and a stream open across the switch runs to its end", async function () {
    const v2 = appVariant({ "app/main.py": (s) => s.replace('"app": "sample"', '"app": "sample-v2"') });
    const before = String(
      (JSON.parse(http(sandbox, HOSTNAME, "/", "https").body) as { release: string }).release,
    );
    const load = startLoad(sandbox, {
      hostname: HOSTNAME,
      paths: ["/", "/healthz", "/items"],
      keepAliveClients: 2,
      freshClients: 1,
      maxRequests: 8000,
      maxSeconds: 240,
    });
    // A new 12 s stream every 3 s while the release runs (at most 60): the ones open at the
    // switch must end with every event, from the release they started on.
    const streams: Promise<StreamResult>[] = [];
    let releasing = true;
    const opener = (async () => {
      while (releasing && streams.length < 60) {
        streams.push(readEventStream(sandbox, HOSTNAME, "/events?count=24&interval=0.5", "https", 60));
        await new Promise((r) => setTimeout(r, 3000));
      }
    })();
    let res: auto.UpResult;
    try {
      res = await up(v2);
    } finally {
      releasing = false;
      await opener;
    }
    const report = await load.stop();
    say(`load: ${describeLoad(report)}`);
    assert.equal(res.summary.result, "succeeded");
    assert.equal(report.failed, 0, `failed requests:\n${report.failures.join("\n")}`);
    assert.ok(report.requests >= 100, `only ${report.requests} requests ran`);
    const after = String(res.outputs.releaseId.value);
    assert.notEqual(after, before);
    assert.deepEqual(names(), ["first", "second", "third"]);

    const done = await Promise.all(streams);
    const broken = done.filter((s) => s.error || s.events.length !== 24);
    assert.deepEqual(
      broken.map((s) => `${s.events.length} events, ${s.error ?? "ended early"}`),
      [],
      "a stream was cut short",
    );
    // At least one stream served by the old release was still open when the new one took over.
    const firstNew = Math.min(
      ...done.filter((s) => s.events[0]?.data.release === after).map((s) => s.startedAt),
    );
    const across = done.filter(
      (s) => s.events[0]?.data.release === before && s.startedAt < firstNew && s.endedAt > firstNew,
    );
    assert.ok(across.length > 0, "no stream was open across the switch");
    say(
      `${done.length} streams, all complete; ${across.length} open across the switch, served by ${before} to the end`,
    );
  });

  it("a migration that fails half way leaves the schema fingerprint and the row counts as they were; the fixed one deploys", async function () {
    const fpBefore = fingerprint();
    const countsBefore = rowCounts();
    const live = String(
      (JSON.parse(http(sandbox, HOSTNAME, "/", "https").body) as { release: string }).release,
    );
    let message = "";
    await assert.rejects(up(appVariant({ "migrations/versions/0003_note.py": BROKEN_0003 })), (e: Error) => {
      message = String(e.message);
      return true;
    });
    assert.match(message, /phase migrate failed/);
    assert.match(message, /migration 0003 failed on purpose after creating half_done/);
    assert.equal(fingerprint(), fpBefore, "the schema differs from before the migration");
    assert.equal(rowCounts(), countsBefore);
    assert.equal(sql("select to_regclass('public.half_done') is null"), "t", "half_done is still there");
    assert.equal(sql("select version_num from alembic_version"), "0002");
    assert.equal(
      String((JSON.parse(http(sandbox, HOSTNAME, "/", "https").body) as { release: string }).release),
      live,
      "the previous release stopped serving",
    );
    say(`after the failed 0003: fingerprint ${fpBefore.slice(0, 12)} and rows ${countsBefore} as before`);

    const fixed = await up(appVariant({ "migrations/versions/0003_note.py": FIXED_0003 }));
    assert.equal(fixed.summary.result, "succeeded");
    assert.equal(sql("select version_num from alembic_version"), "0003");
    assert.deepEqual(names(), ["first", "second", "third"]);
  });

  it("a scheduled backup, restored with npm run restore, serves the backed-up rows", async function () {
    onHost(`systemctl start apphost-${ID}-backup.service`);
    const backup = onHost(`ls -1t /srv/${ID}/shared/backups/*-scheduled.pgdump | head -1`).stdout.trim();
    assert.match(
      backup,
      new RegExp(`^/srv/${ID}/shared/backups/${DB}-\\d{8}T\\d{6}\\.\\d{3}Z-scheduled\\.pgdump$`),
    );
    assert.match(onHost(`pg_restore --list ${backup} | grep -c 'TABLE DATA'`).stdout.trim(), /^[1-9]/);
    // The dump holds bloom's comment, which the stack's role may not set: the restore must leave it out.
    assert.equal(
      onHost(`pg_restore --list ${backup} | grep -c 'COMMENT - EXTENSION bloom'`).stdout.trim(),
      "1",
    );
    post("written after the backup");
    assert.equal(names().at(-1), "written after the backup");
    const restored = await runCli(
      "restore",
      [
        "--stack",
        STACK,
        "--config-file",
        (await stackFor(lastSource)).configFile,
        "--backup",
        path.basename(backup),
      ],
      {
        PULUMI_BACKEND_URL: backend,
      },
    );
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, new RegExp(`database restored from ${backup}`));
    assert.deepEqual(names(), ["first", "second", "third"]);
    assert.equal(JSON.parse(http(sandbox, HOSTNAME, "/healthz", "https").body).revision, "0003");
  });

  it("npm run doctor: the app's role connects with the env file's URL, and the last backup is recent", async function () {
    const doctor = await runCli(
      "doctor",
      ["--stack", STACK, "--config-file", (await stackFor(lastSource)).configFile],
      {
        PULUMI_BACKEND_URL: backend,
      },
    );
    const lines = doctor.stdout.split("\n").filter((l) => /^(PASS|FAIL|SKIP) /.test(l));
    assert.ok(lines.includes("PASS database-permissions"), lines.join("\n"));
    assert.ok(lines.includes("PASS backup"), lines.join("\n"));
    assert.equal(doctor.code, 0, lines.join("\n"));
    // Another role granted CONNECT by hand is drift the check names.
    onHost(`runuser -u postgres -- psql -X -q -c "GRANT CONNECT ON DATABASE ${DB} TO PUBLIC"`);
    try {
      const drifted = await runCli(
        "doctor",
        ["--stack", STACK, "--config-file", (await stackFor(lastSource)).configFile],
        {
          PULUMI_BACKEND_URL: backend,
        },
      );
      assert.equal(drifted.code, 1);
      assert.match(
        drifted.stdout,
        /^FAIL database-permissions: every role may connect to sample_local_pg \(PUBLIC has CONNECT\)/m,
      );
    } finally {
      onHost(`runuser -u postgres -- psql -X -q -c "REVOKE CONNECT ON DATABASE ${DB} FROM PUBLIC"`);
    }
  });
});
