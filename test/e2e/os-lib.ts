/**
 * One Debian-family release end to end (test/e2e/debian13.e2e.ts, ubuntu.e2e.ts): the same program on a host whose
 * every package is that release's (Python, PostgreSQL, systemd, Caddy, Node, Nginx, certbot). The sample app on
 * Postgres: the first up, the units as that systemd reads them, a migration that fails half way (the pre-migration
 * pg_dump restored by that PostgreSQL's pg_restore), the fixed one, doctor, an up that changes nothing; then
 * `tls.mode certbot` with Nginx: that certbot and Nginx get and serve a certificate from Pebble (test/e2e/pebble.ts).
 */
import { strict as assert } from "assert";
import * as path from "path";
import type * as auto from "@pulumi/pulumi/automation";
import {
  freshBackend,
  http,
  localStack,
  onHost,
  postItem,
  sandboxUp,
  type Sandbox,
  sandboxesDone,
} from "./lib";
import { runCli } from "./ops-lib";
import { served, startPebble, verifiedGet } from "./pebble";
import {
  appVariant,
  BROKEN_0003,
  describeLoad,
  startLoad,
  FIXED_0003,
  hostPostgres,
  samplePostgresStack,
  removeVariants,
} from "./release-lib";

export interface OsSpec {
  /** The spec's title */
  title: string;
  /** The release's name in the tests' titles (`trixie`) */
  os: string;
  sandbox: { name: string; subnet: string; suite: "trixie" | "noble" };
  /** The stack; its Postgres database is `sample_<stack with _ for ->` */
  stack: string;
  /** /etc/os-release's `$ID $VERSION_ID` (`debian 13`) */
  release: string;
  /** The release venv's `python --version` */
  python: RegExp;
  /** `show server_version` */
  postgres: RegExp;
  postgresMajor: number;
  /** `node --version` */
  node: RegExp;
  /** In `nginx -v; certbot --version` */
  nginx: RegExp;
  certbot: RegExp;
  /**
   * The host has needrestart, as Ubuntu's cloud image does: the first up's apt run upgrades libc6 (the sandbox is
   * the release's first packages), and sshd, which links it, must not be restarted by needrestart's hook
   */
  needrestart?: boolean;
}

const HOSTNAME = "sample.local.test";

export function describeOs(o: OsSpec): void {
  const ID = `sample-${o.stack}`;
  const DB = `sample_${o.stack.replace(/-/g, "_")}`;
  const { sql, fingerprint } = hostPostgres(DB);

  describe(o.title, function () {
    let sandbox: Sandbox;
    let backend: string;
    const log = (s: string) => process.stdout.write(s);
    const say = (s: string) => process.stdout.write(`      ${s}\n`);

    // A driver in DATABASE_URL's scheme (apphost:database.urlScheme): the sample app's SQLAlchemy 2.0 with psycopg2, as
    // named; the doctor and the backups read the URL with it.
    const stackFor = (source: string) =>
      samplePostgresStack(backend, o.stack, sandbox, source, {}, { urlScheme: "postgresql+psycopg2" });
    let lastSource = path.join("examples", "sample-app");
    async function up(source: string): Promise<auto.UpResult> {
      lastSource = source;
      const stack = await stackFor(source);
      return stack.up({ onOutput: log, configFile: stack.configFile });
    }
    const names = () =>
      (JSON.parse(http(sandbox, HOSTNAME, "/items", "https").body) as { name: string }[]).map((i) => i.name);
    const health = () =>
      JSON.parse(http(sandbox, HOSTNAME, "/healthz", "https").body) as Record<string, string>;

    before(function () {
      sandbox = sandboxUp(o.sandbox);
      backend = freshBackend();
    });

    after(function () {
      removeVariants();
      sandboxesDone(o.sandbox);
    });

    it(`the first up installs ${o.os}'s Python, PostgreSQL, Caddy and Node, migrates, and serves from Postgres`, async function () {
      assert.equal(
        onHost(". /etc/os-release && echo $ID $VERSION_ID").stdout.trim(),
        o.release,
        "not the host it should be",
      );
      const libc = () => onHost("dpkg-query -W -f='${Version}' libc6").stdout;
      const sshd = () => onHost("systemctl show -p InvocationID --value ssh.service").stdout.trim();
      const before = { libc: libc(), sshd: sshd() };
      const res = await up(path.join("examples", "sample-app"));
      assert.equal(res.summary.result, "succeeded");
      if (o.needrestart) {
        assert.match(onHost("dpkg-query -W -f='${Status}' needrestart").stdout, /install ok installed/);
        assert.notEqual(libc(), before.libc, "the up upgraded no libc6: needrestart had nothing to restart");
        assert.match(before.sshd, /^[0-9a-f]{32}$/, "ssh.service was not running before the up");
        assert.equal(sshd(), before.sshd, "ssh.service was restarted during the up (needrestart)");
      }
      const h = health();
      assert.deepEqual([h.status, h.database, h.revision], ["ok", "ok", "0002"]);
      for (const n of ["first", "second"]) postItem(sandbox, HOSTNAME, n);
      assert.deepEqual(names(), ["first", "second"]);
      assert.equal(sql("select string_agg(name, ',' order by id) from items"), "first,second");
      // The release's venv is trixie's Python; the database is trixie's PostgreSQL.
      const venvPython = onHost(`/srv/${ID}/current/.venv/bin/python --version`).stdout.trim();
      assert.match(venvPython, o.python);
      assert.match(
        onHost(`grep '^DATABASE_URL=' /etc/apphost/${ID}.env`).stdout,
        new RegExp(
          `^DATABASE_URL="postgresql\\+psycopg2://${DB}:[A-Za-z0-9]+@127\\.0\\.0\\.1:5432/${DB}"\n$`,
        ),
      );
      const server = sql("show server_version");
      assert.match(server, o.postgres);
      assert.match(onHost("node --version").stdout, o.node, "the heartbeat worker's Node");
      assert.equal(
        onHost(
          `systemctl is-active apphost-${ID}-worker.service apphost-${ID}-heartbeat.service caddy postgresql`,
        )
          .stdout.split("\n")
          .filter(Boolean)
          .join(" "),
        "active active active active",
      );
      say(`${venvPython}, PostgreSQL ${server}`);
    });

    it(`${o.os}'s systemd reads every unit apphost wrote without a complaint (systemd-analyze verify)`, function () {
      const units = onHost(`ls /etc/systemd/system/apphost-${ID}-* | grep -E '\\.(service|timer)$'`)
        .stdout.split("\n")
        .filter(Boolean);
      assert.ok(units.length >= 5, units.join(" "));
      // verify exits 0 on unknown keys and bad values and only prints them: a line naming a unit of ours fails.
      const verified = onHost(`systemd-analyze verify ${units.join(" ")} 2>&1`, { allowFailure: true });
      const complaints = verified.stdout
        .split("\n")
        .filter((l) => l.includes("apphost-"))
        .join("\n");
      assert.equal(complaints, "", verified.stdout);
      assert.equal(verified.code, 0, verified.stdout);
    });

    it(`a migration that fails half way: PostgreSQL ${o.postgresMajor}'s pg_restore puts the schema back; the fixed one deploys`, async function () {
      const before = fingerprint();
      await assert.rejects(
        up(appVariant({ "migrations/versions/0003_note.py": BROKEN_0003 })),
        /phase migrate failed/,
      );
      assert.equal(fingerprint(), before, "the schema differs from before the migration");
      assert.equal(sql("select to_regclass('public.half_done') is null"), "t", "half_done is still there");
      assert.equal(sql("select version_num from alembic_version"), "0002");
      assert.deepEqual(names(), ["first", "second"], "the previous release stopped serving its rows");
      const dumps = onHost(`ls -1 /srv/${ID}/shared/backups/ | grep -c '\\.pgdump$'`).stdout.trim();
      assert.match(dumps, /^[1-9]/, "no pre-migration dump");

      const fixed = await up(appVariant({ "migrations/versions/0003_note.py": FIXED_0003 }));
      assert.equal(fixed.summary.result, "succeeded");
      assert.equal(health().revision, "0003");
      assert.deepEqual(names(), ["first", "second"]);
    });

    it("npm run doctor passes every check, and a second up changes nothing", async function () {
      const stack = await stackFor(lastSource);
      const doctor = await runCli("doctor", ["--stack", o.stack, "--config-file", stack.configFile], {
        PULUMI_BACKEND_URL: backend,
      });
      const lines = doctor.stdout.split("\n").filter((l) => /^(PASS|FAIL|SKIP) /.test(l));
      assert.equal(doctor.code, 0, lines.join("\n"));
      assert.equal(lines.filter((l) => !l.startsWith("PASS ")).length, 0, lines.join("\n"));
      const again = await stack.up({ onOutput: log, configFile: stack.configFile });
      assert.deepEqual(
        Object.entries(again.summary.resourceChanges ?? {}).filter(([k]) => k !== "same"),
        [],
        JSON.stringify(again.summary.resourceChanges),
      );
    });

    it(`a library upgrade under the running app (libc6 reinstalled${o.needrestart ? ", needrestart's hook run" : ""}) is drift the doctor names; up --refresh publishes the release again under load, 0 failed`, async function () {
      const stack = await stackFor(lastSource);
      const cli = (command: string) =>
        runCli(command, ["--stack", o.stack, "--config-file", stack.configFile], {
          PULUMI_BACKEND_URL: backend,
        });
      const activePort = () => onHost(`cat /srv/${ID}/active-port`).stdout.trim();
      const port = activePort();
      const web = `apphost-${ID}-web@${port}.service`;
      const invocation = () => onHost(`systemctl show -p InvocationID --value ${web}`).stdout.trim();
      const before = invocation();
      // As unattended-upgrades installs a security update: dpkg renames the new libc.so.6 over the one the app runs
      // (and, on Ubuntu, needrestart's apt hook restarts what it may).
      onHost("DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall libc6 >/dev/null 2>&1");
      assert.equal(invocation(), before, "the upgrade restarted the live web instance (needrestart)");
      const doctor = await cli("doctor");
      assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
      const units = doctor.stdout.split("\n").find((l) => l.startsWith("FAIL units: ")) ?? doctor.stdout;
      assert.match(
        units,
        /^FAIL units: a package upgrade replaced files these still run \([^)]*libc\.so\.6[^)]*\): /,
      );
      assert.ok(units.includes(web), units);
      assert.ok(
        units.endsWith(
          "; pulumi up --refresh publishes the live release again (a new web instance behind the health gate, the workers restarted)",
        ),
        units,
      );
      const drift = await cli("drift");
      assert.equal(drift.code, 1, drift.stdout + drift.stderr);
      assert.match(
        drift.stdout,
        /^ {2}changed: app-release \(Release, pulumi-nodejs:dynamic\/apphost:Release\)/m,
      );
      // What the host serves, as the refresh read it: the web instance runs the replaced libc.
      assert.ok(drift.stdout.includes(`(${web} runs `), drift.stdout);
      assert.match(drift.stdout, /^ {4}live: \S+ -> \S+ \(.*libc\.so\.6.*, replaced since it started/m);
      const load = startLoad(sandbox, {
        hostname: HOSTNAME,
        paths: ["/", "/healthz", "/items"],
        keepAliveClients: 2,
        freshClients: 1,
        maxRequests: 4000,
        maxSeconds: 180,
      });
      let res: auto.UpResult;
      try {
        res = await stack.up({ refresh: true, onOutput: log, configFile: stack.configFile });
      } finally {
        await load.stop();
      }
      const report = load.report;
      say(`load during up --refresh: ${describeLoad(report)}`);
      assert.equal(res.summary.result, "succeeded");
      assert.equal(report.failed, 0, `failed requests:\n${report.failures.join("\n")}`);
      assert.ok(report.requests >= 50, `only ${report.requests} requests ran`);
      assert.notEqual(activePort(), port, "no fresh web instance on the other port");
      const again = await cli("doctor");
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.equal((await cli("drift")).code, 0);
    });

    it(`tls.mode certbot with Nginx: ${o.os}'s certbot gets Pebble's certificate through HTTP-01; Nginx serves it`, async function () {
      // Ports 80 and 443 go from the Postgres stack's Caddy to this stack's Nginx.
      const pg = await stackFor(lastSource);
      await pg.destroy({ onOutput: log, configFile: pg.configFile });
      const pebble = await startPebble(sandbox.host.replace(/\.\d+$/, ".1"), sandbox.host);
      try {
        const name = "certbot.local.test";
        const stack = await localStack(backend, {
          stackName: `${o.stack}-certbot`,
          sandbox,
          config: {
            "apphost:dns": { provider: "none", hostnames: [{ name }] },
            "apphost:proxy": { kind: "nginx" },
            "apphost:tls": {
              mode: "certbot",
              email: "ops@example.com",
              acmeDirectory: pebble.directory,
              acmeCaRoot: pebble.listenerRoot,
            },
          },
        });
        const res = await stack.up({ onOutput: log, configFile: stack.configFile });
        assert.equal(res.summary.result, "succeeded");
        const cert = served(sandbox, name);
        assert.ok(cert, "nothing served on 443");
        assert.match(cert.issuer, /Pebble Intermediate CA/);
        assert.deepEqual(cert.names, [name]);
        const health = verifiedGet(sandbox, pebble, name, "/healthz");
        assert.equal(health.code, 0, health.body);
        assert.match(health.body, /"status":"ok"/);
        const versions = onHost("nginx -v 2>&1; certbot --version").stdout;
        assert.match(versions, o.nginx);
        assert.match(versions, o.certbot);
        say(versions.trim().replace(/\n/g, ", "));
      } finally {
        pebble.stop();
      }
    });
  });
}
