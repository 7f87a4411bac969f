import assert from "assert/strict";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { StackConfig } from "../../components/config/types";
import { selfSignedCert } from "./certs";
import { shellcheckSync } from "./shellcheck";
import { hostLayout } from "../../components/paths";
import { renderUpstreamRuleset } from "../../components/render/nftables";
import {
  backupMaxAgeSeconds,
  DoctorCheck,
  doctorChecks,
  DOCTOR_SH,
  DoctorInput,
  doctorInputFromConfig,
  DoctorResult,
  parseDoctorOutput,
  renderDoctorScript,
} from "../../components/doctor";

// ---------------------------------------------------------------------------
// Fixtures

/** The input a prod stack of app "shop" would produce: used for exact-string tests. */
function hostInput(overrides: Partial<DoctorInput> = {}): DoctorInput {
  return {
    units: ["caddy.service", "apphost-shop-prod-worker.service"],
    processUnits: ["apphost-shop-prod-worker.service"],
    web: { templates: ["apphost-shop-prod-web@.service"], activePortFile: "/srv/shop-prod/active-port" },
    health: { hostname: "shop.example.com", port: 443, path: "/healthz" },
    tlsMode: "caddy-acme",
    backup: { dir: "/srv/shop-prod/shared/backups", maxAgeSeconds: 95040, sqliteIntegrity: true },
    database: { file: "/srv/shop-prod/shared/data/app.db", owner: "shop-prod" },
    disk: { paths: ["/", "/srv"], minFreePercent: 10 },
    memory: { meminfo: "/proc/meminfo", minAvailablePercent: 10 },
    release: { current: "/srv/shop-prod/current", expectedId: "20250101T120000Z-abc123", user: "shop-prod" },
    ...overrides,
  };
}

function check(input: DoctorInput, name: string): DoctorCheck {
  const found = doctorChecks(input).find((c) => c.name === name);
  assert.ok(found, `no check named ${name}`);
  return found;
}

/** What a check adds to the rendered script: its header values, then its run line. */
function rendered(c: DoctorCheck): string[] {
  return renderDoctorScript([c])
    .split("\n")
    .filter(
      (l) =>
        (l.startsWith("readonly ") && !l.startsWith("readonly DOCTOR_")) ||
        l.startsWith("apphost_doctor_run "),
    );
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bash asynchronously, so servers in this process keep answering. */
function bash(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", args, { env: opts.env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}

/** Runs one check through the real runner and returns its parsed result. */
async function runCheck(c: DoctorCheck, env?: NodeJS.ProcessEnv): Promise<DoctorResult> {
  const run = await bash(["-c", renderDoctorScript([c])], { env });
  const results = parseDoctorOutput(run.stdout);
  assert.equal(results.length, 1, `expected one result line, got:\n${run.stdout}${run.stderr}`);
  assert.equal(run.code, results[0].status === "fail" ? 1 : 0, "runner exit status");
  return results[0];
}

function requireTool(tool: string, why: string): void {
  const r = spawnSync(tool, ["--version"], { encoding: "utf8" });
  if (r.error) {
    assert.fail(`${tool} is not installed (${(r.error as NodeJS.ErrnoException).code}); it is needed ${why}`);
  }
}

function sqlite(file: string, sql: string): void {
  requireTool("sqlite3", "to build the SQLite backups the backup check reads");
  const r = spawnSync("sqlite3", [file, sql], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
}

/** shellcheck at style severity on a script's text (clean verdicts remembered: ./shellcheck.ts). */
function shellcheck(source: string, label: string, args = ["--shell=bash"]): void {
  const r = shellcheckSync(source, ["--severity=style", ...args]);
  assert.deepEqual([r.status, r.output], [0, ""], `shellcheck findings in ${label}:\n${r.output}`);
}

/** doctor.sh from its first function on: what every render carries after the values. */
const DOCTOR_SH_BODY = (() => {
  const text = fs.readFileSync(path.join(__dirname, "../../components/doctor.sh"), "utf8");
  return text.slice(text.indexOf("\n# fail <detail>") + 1).trimEnd();
})();

/**
 * One check rendered alone, without doctor.sh (shellchecked as it is, and
 * within every stack's full render): its values, its functions, its run line.
 */
function renderedAlone(c: DoctorCheck): string {
  const s = renderDoctorScript([c]);
  const at = s.indexOf(DOCTOR_SH_BODY);
  assert.ok(at > 0, "the render carries doctor.sh");
  const [shebang, ...rest] = (s.slice(0, at) + s.slice(at + DOCTOR_SH_BODY.length)).split("\n");
  return [
    shebang,
    "# shellcheck disable=SC2034 # the values are read by doctor.sh's functions",
    ...rest,
  ].join("\n");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, ms: number, host = "127.0.0.1"): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host);
      s.on("connect", () => (s.destroy(), resolve(true)));
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const me = os.userInfo().username;

// ---------------------------------------------------------------------------

describe("doctor: rendered checks", () => {
  it("lists every check in order", () => {
    assert.deepEqual(
      doctorChecks(hostInput()).map((c) => c.name),
      ["units", "health", "tls-certificate", "backup", "database-permissions", "disk", "memory", "release"],
    );
  });

  it("release: compares the target of current with the expected id; the app user looks for stray databases", () => {
    assert.deepEqual(rendered(check(hostInput(), "release")), [
      "readonly RELEASE_CURRENT=/srv/shop-prod/current",
      "readonly RELEASE_EXPECTED=20250101T120000Z-abc123",
      "readonly RELEASE_USER=shop-prod",
      "apphost_doctor_run release check_release",
    ]);
  });

  it("maintenance: the flag npm run maintenance on leaves, after health (which answers through it); none without a web process", () => {
    const input = hostInput({
      maintenance: {
        manual: "/srv/shop-prod/maintenance/on",
        config: "/srv/shop-prod/maintenance/on-config",
        off: "npm run maintenance -- --stack prod off",
      },
    });
    assert.deepEqual(rendered(check(input, "maintenance")), [
      "readonly MAINTENANCE_MANUAL=/srv/shop-prod/maintenance/on",
      "readonly MAINTENANCE_CONFIG=/srv/shop-prod/maintenance/on-config",
      "readonly MAINTENANCE_OFF='npm run maintenance -- --stack prod off'",
      "apphost_doctor_run maintenance check_maintenance",
    ]);
    assert.deepEqual(
      doctorChecks(input)
        .map((c) => c.name)
        .slice(0, 3),
      ["units", "health", "maintenance"],
    );
  });

  it("memory: MemAvailable against MemTotal", () => {
    assert.deepEqual(rendered(check(hostInput(), "memory")), [
      "readonly MEMINFO=/proc/meminfo",
      "readonly MEMORY_MIN_AVAILABLE=10",
      "apphost_doctor_run memory check_memory",
    ]);
  });

  it("units: fixed units plus the web template on the active port", () => {
    assert.deepEqual(rendered(check(hostInput(), "units")), [
      "readonly UNITS=(caddy.service apphost-shop-prod-worker.service)",
      "readonly PROCESS_UNITS=(apphost-shop-prod-worker.service)",
      "readonly WEB_TEMPLATES=(apphost-shop-prod-web@.service)",
      "readonly ACTIVE_PORT_FILE=/srv/shop-prod/active-port",
      "readonly UPSTREAM_TABLE=''",
      "readonly UPSTREAM_PORT=''",
      "readonly UPSTREAM_UNIT=''",
      "apphost_doctor_run units check_units",
    ]);
  });

  it("units, with the upstream switch: its rule must lead the upstream port to the active port", () => {
    const input = hostInput({
      web: {
        templates: ["apphost-shop-prod-web@.service"],
        activePortFile: "/srv/shop-prod/active-port",
        upstream: { table: "apphost_shop_prod", port: 8002, unit: "apphost-shop-prod-upstream.service" },
      },
    });
    const without = rendered(check(hostInput(), "units"));
    const at = without.indexOf("readonly UPSTREAM_TABLE=''");
    assert.deepEqual(rendered(check(input, "units")), [
      ...without.slice(0, at),
      "readonly UPSTREAM_TABLE=apphost_shop_prod",
      "readonly UPSTREAM_PORT=8002",
      "readonly UPSTREAM_UNIT=apphost-shop-prod-upstream.service",
      ...without.slice(at + 3),
    ]);
  });

  describe("health: one curl through the proxy, trust by TLS mode", () => {
    const healthLines = (input: DoctorInput) => rendered(check(input, "health"));
    const header = (url: string, port: number, trust: string) => [
      `readonly HEALTH_URL=${url}`,
      "readonly HEALTH_HOST=shop.example.com",
      `readonly HEALTH_PORT=${port}`,
      "readonly HEALTH_MAX_TIME=10",
      `readonly HEALTH_TRUST=(${trust})`,
      "apphost_doctor_run health check_health",
    ];

    it("public CA (caddy-acme, certbot): verified, no -k", () => {
      for (const tlsMode of ["caddy-acme", "certbot"] as const) {
        assert.deepEqual(
          healthLines(hostInput({ tlsMode })),
          header("https://shop.example.com:443/healthz", 443, ""),
        );
      }
    });

    it("internal: -k", () => {
      assert.deepEqual(
        healthLines(hostInput({ tlsMode: "internal" })),
        header("https://shop.example.com:443/healthz", 443, "-k"),
      );
    });

    it("cloudflare-origin: verified against the Origin CA, never -k", () => {
      const input = hostInput({
        tlsMode: "cloudflare-origin",
        health: {
          hostname: "shop.example.com",
          port: 443,
          path: "/healthz",
          caFile: "/etc/ssl/cloudflare-origin-ca.pem",
        },
      });
      assert.deepEqual(
        healthLines(input),
        header("https://shop.example.com:443/healthz", 443, "--cacert /etc/ssl/cloudflare-origin-ca.pem"),
      );
    });

    it("off: plain http on the http port", () => {
      const input = hostInput({
        tlsMode: "off",
        health: { hostname: "shop.example.com", port: 80, path: "/up?x=1" },
      });
      assert.deepEqual(healthLines(input), header("'http://shop.example.com:80/up?x=1'", 80, ""));
    });

    it("-k appears for no mode but internal", () => {
      for (const tlsMode of ["caddy-acme", "certbot", "off"] as const) {
        assert.ok(!healthLines(hostInput({ tlsMode })).some((l) => /[( ]-k[ )]/.test(l)), tlsMode);
      }
    });
  });

  it("tls-certificate: an explicit n/a skip when TLS is off", () => {
    assert.deepEqual(rendered(check(hostInput({ tlsMode: "off" }), "tls-certificate")), [
      "apphost_doctor_run tls-certificate skip 'n/a: tls off'",
    ]);
  });

  it("tls-certificate: 14 days by default, 1 hour for internal, or as given", () => {
    const checkend = (input: DoctorInput) =>
      /^readonly CERT_MIN_SECONDS=(\d+)$/m.exec(rendered(check(input, "tls-certificate")).join("\n"))?.[1];
    assert.equal(checkend(hostInput()), "1209600");
    assert.equal(checkend(hostInput({ tlsMode: "internal" })), "3600");
    assert.equal(checkend(hostInput({ certMinSeconds: 30 * 86400 })), "2592000");
  });

  it("backup and database checks skip explicitly without a database", () => {
    const input = hostInput({ backup: undefined, database: undefined });
    assert.deepEqual(rendered(check(input, "backup")), ["apphost_doctor_run backup skip 'n/a: no database'"]);
    assert.deepEqual(rendered(check(input, "database-permissions")), [
      "apphost_doctor_run database-permissions skip 'n/a: no sqlite database'",
    ]);
  });

  it("refuses bad input, listing every offender with the fix", () => {
    assert.throws(
      () =>
        doctorChecks(
          hostInput({
            units: ["caddy.service", "rm -rf /"],
            tlsMode: "cloudflare-origin",
            release: { current: "srv/current", expectedId: "../x" },
          }),
        ),
      {
        message:
          "doctor: invalid input:\n" +
          '  1. units[1]: "rm -rf /" is not a systemd unit name\n' +
          "  2. health.caFile: required for tls mode cloudflare-origin: Cloudflare Origin CA certificates are not " +
          "publicly trusted, so pass the Origin CA root installed on the host (curl -k is refused for this mode)\n" +
          '  3. release.current: "srv/current" must be an absolute path\n' +
          '  4. release.expectedId: "../x" is not a release id',
      },
    );
  });

  it("quotes every value it interpolates", () => {
    const input = hostInput({
      release: { current: "/srv/it's here/current", expectedId: "r1" },
      disk: { paths: ["/", "/srv/a b"], minFreePercent: 10 },
    });
    assert.ok(
      rendered(check(input, "release")).includes("readonly RELEASE_CURRENT='/srv/it'\\''s here/current'"),
    );
    assert.ok(rendered(check(input, "disk")).includes("readonly DISK_PATHS=(/ '/srv/a b')"));
  });
});

describe("doctor: the runner script", () => {
  const checks: DoctorCheck[] = [
    { name: "ok", description: "Passes.", command: ["true"] },
    { name: "na", description: "Skips.", command: ["skip", "n/a: nothing here"] },
  ];

  it("renders the header, doctor.sh, then every check as a line run with a timeout and no stdin", () => {
    assert.equal(
      renderDoctorScript(checks, { timeoutSeconds: 30 }),
      [
        "#!/usr/bin/env bash",
        `# apphost doctor: one line per check, "PASS <name>", "FAIL <name>: <detail>"`,
        `# or "SKIP <name>: <reason>"; exits 1 when any check failed.`,
        "# Rendered by apphost: the values and the checks that run (components/doctor.ts), the checks themselves (components/doctor.sh).",
        "set -uo pipefail",
        "",
        "readonly DOCTOR_TIMEOUT=30",
        "# The values each check's bash gets (apphost_doctor_run).",
        "readonly DOCTOR_VALUES=()",
        "",
        DOCTOR_SH.trimEnd(),
        "",
        "failed=0",
        "# ok: Passes.",
        "apphost_doctor_run ok true",
        "# na: Skips.",
        "apphost_doctor_run na skip 'n/a: nothing here'",
        'exit "$failed"',
        "",
      ].join("\n"),
    );
    assert.match(
      DOCTOR_SH,
      /^  out=\$\(timeout "\$DOCTOR_TIMEOUT" bash -c "\$lib"\$'\\nset -euo pipefail\\n"\$@"' apphost-doctor "\$@" <\/dev\/null 2>&1\)$/m,
    );
  });

  it("renders each value once, in the order the checks name them; the check's bash gets them, readonly", async () => {
    const values: DoctorCheck[] = [
      {
        name: "values",
        description: "Reads values.",
        command: [
          "eval",
          `[[ $(declare -p WORDS) == "declare -ar "* ]] && printf 'info: %s|%s|%s\\n' "$GREETING" "\${WORDS[0]}" "\${WORDS[1]}"`,
        ],
        values: { GREETING: "it's", WORDS: ["a b", "c"], EMPTY: [] },
      },
      { name: "again", description: "Shares one.", command: ["true"], values: { WORDS: ["a b", "c"], N: 7 } },
    ];
    const script = renderDoctorScript(values);
    assert.deepEqual(
      script.split("\n").filter((l) => l.startsWith("readonly ")),
      [
        "readonly DOCTOR_TIMEOUT=60",
        "readonly GREETING='it'\\''s'",
        "readonly WORDS=('a b' c)",
        "readonly EMPTY=()",
        "readonly N=7",
        "readonly DOCTOR_VALUES=(GREETING WORDS EMPTY N)",
      ],
    );
    const run = await bash(["-c", script]);
    assert.equal(run.stdout, "PASS values: it's|a b|c\nPASS again\n", run.stderr);
  });

  it("refuses values two checks disagree on, and value names the runner could mistake", () => {
    const a: DoctorCheck = { name: "a", description: "A.", command: ["true"], values: { PORT: 80 } };
    assert.throws(() => renderDoctorScript([a, { ...a, name: "b", values: { PORT: 443 } }]), {
      message: 'doctor: check "b" sets PORT=443, an earlier check PORT=80',
    });
    for (const bad of ["port", "DOCTOR_TIMEOUT", "1X", "A-B"]) {
      assert.throws(() => renderDoctorScript([{ ...a, values: { [bad]: 1 } }]), /value name .* must match/);
    }
    assert.throws(() => renderDoctorScript([{ ...a, command: [] }]), /check "a" has no command/);
  });

  it("prints one line per check and exits 1 on any failure", async () => {
    const run = await bash([
      "-c",
      renderDoctorScript([
        ...checks,
        {
          name: "broken",
          description: "Fails.",
          command: ["bash", "-c", "echo working\necho 'disk on fire' >&2\nexit 1\n"],
        },
        { name: "crash", description: "Exits oddly.", command: ["bash", "-c", "exit 7"] },
      ]),
    ]);
    assert.equal(
      run.stdout,
      "PASS ok\nSKIP na: n/a: nothing here\nFAIL broken: disk on fire\nFAIL crash: exit status 7\n",
    );
    assert.equal(run.code, 1);
  });

  it("exits 0 when nothing failed", async () => {
    const run = await bash(["-c", renderDoctorScript(checks)]);
    assert.equal(run.code, 0);
    assert.deepEqual(parseDoctorOutput(run.stdout), [
      { name: "ok", status: "pass", detail: "" },
      { name: "na", status: "skip", detail: "n/a: nothing here" },
    ]);
  });

  it("a hung check fails on its timeout and the others still run", async () => {
    const run = await bash([
      "-c",
      renderDoctorScript([{ name: "slow", description: "Hangs.", command: ["sleep", "30"] }, checks[0]], {
        timeoutSeconds: 1,
      }),
    ]);
    assert.equal(run.stdout, "FAIL slow: timed out after 1s\nPASS ok\n");
  });

  it("works fed through stdin (bash -s over SSH): checks cannot eat the script", async () => {
    const reader: DoctorCheck = {
      name: "reader",
      description: "Reads stdin.",
      command: ["eval", "if read -r line; then exit 1; fi"],
    };
    const run = await bash(["-s"], { input: renderDoctorScript([reader, checks[0]]) });
    assert.equal(run.stdout, "PASS reader\nPASS ok\n");
  });

  it("refuses check names that would break the result lines", () => {
    assert.throws(
      () => renderDoctorScript([{ ...checks[0], name: "Disk: root" }]),
      /check name "Disk: root" must match/,
    );
    assert.throws(() => renderDoctorScript([checks[0], checks[0]]), /check name "ok" is used twice/);
  });
});

describe("doctor: parseDoctorOutput", () => {
  it("reads results and ignores other lines", () => {
    assert.deepEqual(
      parseDoctorOutput(
        "Warning: Permanently added 'host' to known hosts\r\n" +
          "PASS units\r\n" +
          "FAIL backup: newest backup /x.db is 30h old: see `ls`\n" +
          "SKIP tls-certificate: n/a: tls off\n" +
          "\n",
      ),
      [
        { name: "units", status: "pass", detail: "" },
        { name: "backup", status: "fail", detail: "newest backup /x.db is 30h old: see `ls`" },
        { name: "tls-certificate", status: "skip", detail: "n/a: tls off" },
      ],
    );
  });

  it("refuses a check reported twice", () => {
    assert.throws(() => parseDoctorOutput("PASS disk\nFAIL disk: full\n"), /check "disk" is reported twice/);
  });
});

describe("doctor: from stack config", () => {
  const config: StackConfig = {
    project: "shop",
    stack: "prod",
    host: {
      kind: "ec2",
      user: "admin",
      port: 22,
      via: { kind: "direct" },
      packages: [],
      swapMb: 0,
      instanceType: "t3.small",
      arch: "x86_64",
      os: "debian-12",
      rootVolumeGb: 20,
      sshPublicKey: "ssh-ed25519 AAAA test",
      sshAllowCidrs: ["203.0.113.0/24"],
      allowSshFromAnywhere: false,
      elasticIp: true,
      count: 1,
    },
    dns: {
      provider: "cloudflare",
      zone: "example.com",
      hostnames: [{ name: "shop.example.com", proxied: false }],
      ipv6: false,
    },
    tls: { mode: "caddy-acme", email: "ops@example.com", originValidityDays: 365, renewBeforeDays: 30 },
    proxy: { kind: "caddy", maxBodySize: "25m", hsts: true, compression: true, httpPort: 80, httpsPort: 443 },
    app: {
      name: "shop",
      source: "app",
      excludes: [],
      runtime: "python",
      requirements: "requirements.txt",
      healthPath: "/healthz",
      basePort: 8000,
      env: {},
      staticPrefix: "/static/",
      sharedDirs: [],
      dotenv: [],
      sharedUrls: {},
      processes: [
        { name: "web", command: "gunicorn app:app", kind: "web" },
        { name: "worker", command: "python worker.py", kind: "worker" },
      ],
      schedules: [],
      maintenance: false,
    },
    database: {
      kind: "sqlite",
      sqliteFile: "app.db",
      postgresName: "shop_prod",
      migrate: "",
      revision: "",
      pool: { size: 5, maxOverflow: 10, timeoutSeconds: 30, recycleSeconds: 1800 },
    },
    backups: { schedule: "daily", keep: 30, s3: false, s3ExpireDays: 90 },
    releases: {
      keep: 5,
      healthTimeoutSeconds: 60,
      drainSeconds: 5,
      lockTtlMinutes: 30,
      minFreeMb: 500,
      batchSize: 1,
    },
    alerts: { enabled: false },
  };

  it("derives units, paths and ports from the host layout", () => {
    assert.deepEqual(doctorInputFromConfig(config, { releaseId: "20250101T120000Z-abc123" }), {
      units: ["caddy.service", "apphost-shop-prod-upstream.service", "apphost-shop-prod-worker.service"],
      processUnits: ["apphost-shop-prod-worker.service"],
      web: {
        templates: ["apphost-shop-prod-web@.service"],
        activePortFile: "/srv/shop-prod/active-port",
        upstream: { table: "apphost_shop_prod", port: 8002, unit: "apphost-shop-prod-upstream.service" },
      },
      health: { hostname: "shop.example.com", port: 443, path: "/healthz" },
      tlsMode: "caddy-acme",
      maintenance: {
        manual: "/srv/shop-prod/maintenance/on",
        config: "/srv/shop-prod/maintenance/on-config",
        off: "npm run maintenance -- --stack prod off",
      },
      backup: {
        dir: "/srv/shop-prod/shared/backups",
        maxAgeSeconds: 95040,
        sqliteIntegrity: true,
        startUnit: "apphost-shop-prod-backup.service",
        releaseLog: "/srv/shop-prod/releases.log",
      },
      database: { file: "/srv/shop-prod/shared/data/app.db", owner: "shop-prod" },
      disk: { paths: ["/", "/srv"], minFreePercent: 10 },
      memory: { meminfo: "/proc/meminfo", minAvailablePercent: 10 },
      release: {
        current: "/srv/shop-prod/current",
        expectedId: "20250101T120000Z-abc123",
        user: "shop-prod",
      },
      schedules: [],
    });
  });

  it("with apphost:backups.s3 the backup check also looks at the backup unit's last run", () => {
    const s3 = { ...config, backups: { ...config.backups, s3: true } };
    assert.deepEqual(doctorInputFromConfig(s3, { releaseId: "r" }).backup, {
      dir: "/srv/shop-prod/shared/backups",
      maxAgeSeconds: 95040,
      sqliteIntegrity: true,
      startUnit: "apphost-shop-prod-backup.service",
      releaseLog: "/srv/shop-prod/releases.log",
      service: "apphost-shop-prod-backup.service",
    });
  });

  it("variant: nginx, tls off, postgres: http port, no sqlite checks, backups by age only", () => {
    const input = doctorInputFromConfig(
      {
        ...config,
        tls: { ...config.tls, mode: "off" },
        proxy: { ...config.proxy, kind: "nginx" },
        database: { ...config.database, kind: "postgres" },
      },
      { releaseId: "r1", backupMaxAgeSeconds: 7200 },
    );
    assert.equal(input.units[0], "nginx.service");
    assert.deepEqual(input.health, { hostname: "shop.example.com", port: 80, path: "/healthz" });
    assert.deepEqual(input.backup, {
      dir: "/srv/shop-prod/shared/backups",
      maxAgeSeconds: 7200,
      sqliteIntegrity: false,
      startUnit: "apphost-shop-prod-backup.service",
      releaseLog: "/srv/shop-prod/releases.log",
    });
    assert.equal(input.database, undefined);
  });

  it("variant: several app hosts: a worker kept to the first (hosts: first) is checked there alone", () => {
    const withBeat = {
      ...config,
      app: {
        ...config.app,
        processes: [
          ...config.app.processes,
          { name: "beat", command: "python beat.py", kind: "worker" as const, hosts: "first" as const },
        ],
      },
    };
    const beat = "apphost-shop-prod-beat.service";
    assert.ok(doctorInputFromConfig(withBeat, { releaseId: "r1" }).processUnits.includes(beat));
    assert.ok(doctorInputFromConfig(withBeat, { releaseId: "r1", role: "primary" }).units.includes(beat));
    const follower = doctorInputFromConfig(withBeat, { releaseId: "r1", role: "follower" });
    assert.ok(!follower.processUnits.includes(beat), follower.processUnits.join(" "));
    assert.ok(!follower.units.includes(beat));
    assert.ok(follower.processUnits.length > 0, "the other workers are still checked there");
  });

  it("variant: cloudflare-origin carries the Origin CA file into the health check", () => {
    const input = doctorInputFromConfig(
      { ...config, tls: { ...config.tls, mode: "cloudflare-origin" } },
      { releaseId: "r1", originCaFile: "/etc/apphost/cloudflare-origin-ca.pem" },
    );
    assert.equal(input.health.caFile, "/etc/apphost/cloudflare-origin-ca.pem");
    assert.ok(
      rendered(check(input, "health")).includes(
        "readonly HEALTH_TRUST=(--cacert /etc/apphost/cloudflare-origin-ca.pem)",
      ),
    );
    assert.throws(
      () =>
        doctorChecks(
          doctorInputFromConfig(
            { ...config, tls: { ...config.tls, mode: "cloudflare-origin" } },
            { releaseId: "r1" },
          ),
        ),
      /health\.caFile: required for tls mode cloudflare-origin/,
    );
  });

  it("backup age limits: one interval plus 10%, at least an hour", () => {
    assert.equal(backupMaxAgeSeconds("hourly"), 7200);
    assert.equal(backupMaxAgeSeconds("daily"), 95040);
    assert.equal(backupMaxAgeSeconds("weekly"), 665280);
    assert.throws(() => backupMaxAgeSeconds("*-*-* 03:00:00"), {
      message:
        'doctor: cannot derive the backup age limit from apphost:backups.schedule "*-*-* 03:00:00"; ' +
        "pass backupMaxAgeSeconds (known shorthands: hourly, daily, weekly, monthly)",
    });
  });
});

describe("doctor: shellcheck", function () {
  this.timeout(60_000);
  it("doctor.sh, the static part, passes shellcheck as it is; the render carries it without its preamble", () => {
    const file = path.join(__dirname, "../../components/doctor.sh");
    const text = fs.readFileSync(file, "utf8");
    assert.match(text, /^# shellcheck shell=bash$/m, "shellcheck must know the shell without --shell");
    shellcheck(text, file, []);
    const s = renderDoctorScript(doctorChecks(hostInput()));
    assert.ok(!s.includes("# shellcheck shell=bash"), "the preamble was rendered");
    assert.ok(!s.includes("# shellcheck disable=SC2034"), "the preamble's file-wide directive was rendered");
    assert.ok(s.includes(`\n${DOCTOR_SH_BODY}\n`), "the render carries doctor.sh from its first function on");
  });

  const variants: [string, DoctorInput][] = [
    [
      "caddy-acme with sqlite, maintenance checked",
      hostInput({
        maintenance: {
          manual: "/srv/shop-prod/maintenance/on",
          config: "/srv/shop-prod/maintenance/on-config",
          off: "npm run maintenance -- --stack prod off",
        },
      }),
    ],
    ["internal", hostInput({ tlsMode: "internal" })],
    [
      "cloudflare-origin",
      hostInput({
        tlsMode: "cloudflare-origin",
        health: {
          hostname: "shop.example.com",
          port: 443,
          path: "/healthz",
          caFile: "/etc/ssl/origin-ca.pem",
        },
      }),
    ],
    [
      "backups copied to S3 (the backup unit is checked too)",
      hostInput({
        backup: {
          dir: "/srv/shop-prod/shared/backups",
          maxAgeSeconds: 3600,
          sqliteIntegrity: true,
          service: "apphost-shop-prod-backup.service",
        },
      }),
    ],
    [
      "postgres on the host",
      hostInput({
        database: undefined,
        postgres: { envFile: "/etc/apphost/shop-prod.env", name: "shop_prod", onHost: true },
      }),
    ],
    [
      "rds",
      hostInput({
        database: undefined,
        postgres: { envFile: "/etc/apphost/shop-prod.env", name: "shop_prod", onHost: false },
      }),
    ],
    [
      "tls off, no database, no web",
      hostInput({ tlsMode: "off", backup: undefined, database: undefined, web: undefined }),
    ],
  ];
  for (const [label, input] of variants) {
    it(`every check rendered alone is clean: ${label}`, () => {
      for (const c of doctorChecks(input)) shellcheck(renderedAlone(c), `${label}: ${c.name}`);
    });
    it(`the rendered script is clean: ${label}`, () => {
      shellcheck(renderDoctorScript(doctorChecks(input)), label);
    });
  }
});

// ---------------------------------------------------------------------------
// Execution against temp files: the checks themselves, run by bash

describe("doctor: checks executed in a temp dir", function () {
  this.timeout(60_000);
  let tmp: string;

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-doctor-"));
  });
  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const at = (...p: string[]) => path.join(tmp, ...p);

  describe("release", () => {
    const input = (expectedId: string) => hostInput({ release: { current: at("current"), expectedId } });

    it("passes when current points to the expected release", async () => {
      fs.mkdirSync(at("releases", "r2"), { recursive: true });
      fs.symlinkSync(at("releases", "r2"), at("current"));
      assert.deepEqual(await runCheck(check(input("r2"), "release")), {
        name: "release",
        status: "pass",
        detail: "",
      });
    });

    it("fails naming the live and the expected release (relative link too)", async () => {
      fs.mkdirSync(at("releases", "r1"), { recursive: true });
      fs.symlinkSync("releases/r1", at("current"));
      const r = await runCheck(check(input("r2"), "release"));
      assert.equal(r.detail, "live release is r1, expected r2");
    });

    it("with the app user: fails naming the SQLite databases written inside the release since its upload", async () => {
      const withUser = hostInput({ release: { current: at("current"), expectedId: "r3", user: me } });
      fs.mkdirSync(at("releases", "r3", "instance"), { recursive: true });
      fs.symlinkSync(at("releases", "r3"), at("current"));
      const old = new Date("2025-01-01T00:00:00Z");
      // Shipped with the code (older than the upload), and the shared data directory (a link): not the release's.
      fs.writeFileSync(at("releases", "r3", "seed.db"), "SQLite format 3\0");
      fs.utimesSync(at("releases", "r3", "seed.db"), old, old);
      fs.writeFileSync(at("releases", "r3", ".apphost-release"), "id=r3\n");
      fs.utimesSync(at("releases", "r3", ".apphost-release"), old, old);
      fs.mkdirSync(at("shared"));
      fs.writeFileSync(at("shared", "app.db"), "SQLite format 3\0");
      fs.symlinkSync(at("shared"), at("releases", "r3", "data"));
      fs.writeFileSync(at("releases", "r3", "notes.txt"), "not a database");
      assert.equal((await runCheck(check(withUser, "release"))).status, "pass");
      // What Flask-SQLAlchemy makes of a relative sqlite:///app.db, and startproject's db.sqlite3.
      fs.writeFileSync(at("releases", "r3", "instance", "app.db"), "SQLite format 3\0");
      fs.writeFileSync(at("releases", "r3", "db.sqlite3"), "SQLite format 3\0");
      const detail = (await runCheck(check(withUser, "release"))).detail;
      assert.match(
        detail,
        /^release r3 holds a SQLite database the app wrote inside it: (db\.sqlite3, instance\/app\.db|instance\/app\.db, db\.sqlite3); the next release is a new directory and would not see its data\. /,
      );
    });

    it("fails on a dangling link and on a directory", async () => {
      fs.symlinkSync(at("releases", "r2"), at("current"));
      assert.equal(
        (await runCheck(check(input("r2"), "release"))).detail,
        `${at("current")} points to ${at("releases", "r2")}, which does not exist`,
      );
      fs.rmSync(at("current"));
      fs.mkdirSync(at("current"));
      assert.equal(
        (await runCheck(check(input("r2"), "release"))).detail,
        `${at("current")} is not a symlink`,
      );
    });
  });

  describe("backup", () => {
    const input = (over: Partial<NonNullable<DoctorInput["backup"]>> = {}) =>
      hostInput({ backup: { dir: at("backups"), maxAgeSeconds: 3600, sqliteIntegrity: true, ...over } });
    const aged = (file: string, seconds: number) => {
      const t = Date.now() / 1000 - seconds;
      fs.utimesSync(file, t, t);
    };
    const goodDb = (file: string) => sqlite(file, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");

    beforeEach(() => fs.mkdirSync(at("backups")));

    it("passes for a fresh backup that passes integrity_check", async () => {
      goodDb(at("backups", "app-2.db"));
      goodDb(at("backups", "app-1.db"));
      aged(at("backups", "app-1.db"), 7200); // older ones do not matter
      assert.equal((await runCheck(check(input(), "backup"))).status, "pass");
    });

    it("fails when the newest backup is older than the schedule allows", async () => {
      goodDb(at("backups", "app.db"));
      aged(at("backups", "app.db"), 3 * 3600);
      const r = await runCheck(check(input(), "backup"));
      assert.equal(r.status, "fail");
      assert.match(
        r.detail,
        new RegExp(
          `^newest backup ${at("backups", "app.db")} is 3h old \\(\\d+ s\\), older than the 1h \\(3600 s\\)`,
        ),
      );
    });

    it("ignores dot-files (partial writes) when picking the newest", async () => {
      goodDb(at("backups", "app.db"));
      aged(at("backups", "app.db"), 3 * 3600);
      fs.writeFileSync(at("backups", ".app.db.partial"), "x");
      assert.match((await runCheck(check(input(), "backup"))).detail, /is 3h old/);
    });

    it("fails when the newest backup is not a sound database", async () => {
      fs.writeFileSync(at("backups", "app.db"), "this is not a database, just text that looks long enough");
      const r = await runCheck(check(input(), "backup"));
      assert.equal(r.status, "fail");
      assert.match(r.detail, new RegExp(`^integrity_check on ${at("backups", "app.db")}`));
    });

    it("fails on a corrupted page that integrity_check reports", async () => {
      const db = at("backups", "app.db");
      sqlite(
        db,
        "PRAGMA page_size = 1024; CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t (x);" +
          "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) " +
          "INSERT INTO t SELECT printf('row-%06d', i) FROM n;",
      );
      const bytes = fs.readFileSync(db);
      bytes.fill(0xff, 5 * 1024 + 8, 5 * 1024 + 200); // scribble over a b-tree page, keep the header
      fs.writeFileSync(db, bytes);
      const r = await runCheck(check(input(), "backup"));
      assert.equal(r.status, "fail");
      assert.match(r.detail, new RegExp(`^integrity_check on ${db}`));
      assert.match(r.detail, /malformed|in database main/);
    });

    it("leaves no -wal/-shm next to a WAL-mode backup, and never takes side files for the newest", async () => {
      // What `.backup` of the app's WAL database writes: a copy that is itself in WAL mode.
      const db = at("backups", "app-1.db");
      sqlite(db, "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);");
      for (const side of ["-wal", "-shm"]) fs.rmSync(db + side, { force: true });
      assert.equal((await runCheck(check(input(), "backup"))).status, "pass");
      assert.deepEqual(fs.readdirSync(at("backups")), ["app-1.db"]);
      // Side files someone else left, newer than the backup, are not backups.
      fs.writeFileSync(db + "-shm", "x".repeat(100));
      fs.writeFileSync(db + "-wal", "");
      assert.equal((await runCheck(check(input(), "backup"))).status, "pass");
    });

    it("reads a backup whose path has URI characters (% ? #)", async () => {
      goodDb(at("backups", "app-%41?#.db"));
      assert.equal((await runCheck(check(input(), "backup"))).status, "pass");
    });

    it("reads gzip-compressed backups", async () => {
      goodDb(at("backups", "app.db"));
      const gz = spawnSync("gzip", [at("backups", "app.db")]);
      assert.equal(gz.status, 0);
      assert.equal((await runCheck(check(input(), "backup"))).status, "pass");
    });

    it("with a backup unit (apphost:backups.s3): fails when its last run failed, though the file is fine", async () => {
      requireTool("sqlite3", "to build the SQLite backups the backup check reads");
      goodDb(at("backups", "app.db"));
      fs.mkdirSync(at("bin"));
      // `systemctl is-failed -- UNIT`: prints the state in the file `state`, exits 0 only for failed.
      fs.writeFileSync(
        at("bin", "systemctl"),
        `#!/usr/bin/env bash\nstate=$(cat ${JSON.stringify(at("state"))})\necho "$state"\n[[ $state == failed ]]\n`,
        { mode: 0o755 },
      );
      const env = { ...process.env, PATH: `${at("bin")}:${process.env.PATH}` };
      const withUnit = input({ service: "apphost-shop-test-backup.service" });
      fs.writeFileSync(at("state"), "failed");
      assert.deepEqual(await runCheck(check(withUnit, "backup"), env), {
        name: "backup",
        status: "fail",
        detail:
          "the last run of apphost-shop-test-backup.service failed (with apphost:backups.s3, often the copy to S3): " +
          "journalctl -u apphost-shop-test-backup.service",
      });
      fs.writeFileSync(at("state"), "inactive");
      assert.equal((await runCheck(check(withUnit, "backup"), env)).status, "pass");
    });

    it("checks age only when the database is not SQLite", async () => {
      fs.writeFileSync(at("backups", "shop.pgdump"), "PGDMP");
      assert.equal((await runCheck(check(input({ sqliteIntegrity: false }), "backup"))).status, "pass");
    });

    it("fails when there is no backup or it is empty", async () => {
      assert.equal((await runCheck(check(input(), "backup"))).detail, `no backup in ${at("backups")} yet`);
      assert.equal(
        (await runCheck(check(input({ startUnit: "apphost-shop-test-backup.service" }), "backup"))).detail,
        `no backup in ${at("backups")} yet; take the first one now: ` +
          "sudo systemctl start apphost-shop-test-backup.service (apphost:backups.schedule takes the next ones)",
      );
      fs.writeFileSync(at("backups", "app.db"), "");
      assert.equal(
        (await runCheck(check(input(), "backup"))).detail,
        `newest backup ${at("backups", "app.db")} is empty`,
      );
    });

    it("skips while none is due: no backup yet, and the first deploy (the release log's oldest entry) is younger than the schedule allows", async () => {
      const log = at("releases.log");
      const stamp = (secondsAgo: number) =>
        new Date(Date.now() - secondsAgo * 1000).toISOString().replace(/\.\d+Z$/, "Z");
      const first = stamp(600);
      fs.writeFileSync(
        log,
        `20261202103746-07fbcbe1\t${first}\t0002 (head)\tdeployed\n20261202113746-17fbcbe1\t${stamp(5)}\t0002 (head)\tdeployed\n`,
      );
      const withLog = input({ releaseLog: log, startUnit: "apphost-shop-test-backup.service" });
      assert.deepEqual(await runCheck(check(withLog, "backup")), {
        name: "backup",
        status: "skip",
        detail:
          `no backup in ${at("backups")} yet, and none is due: the stack was first deployed at ${first}, ` +
          "and the schedule takes one within 1h of that; take the first one now: " +
          "sudo systemctl start apphost-shop-test-backup.service (apphost:backups.schedule takes the next ones)",
      });
      // First deployed longer ago than the schedule allows: the missing backup is late.
      fs.writeFileSync(log, `20261202103746-07fbcbe1\t${stamp(7200)}\t0002 (head)\tdeployed\n`);
      const late = await runCheck(check(withLog, "backup"));
      assert.equal(late.status, "fail");
      assert.match(late.detail, /^no backup in .* yet; take the first one now/);
      // An empty or unreadable log proves nothing.
      fs.writeFileSync(log, "");
      assert.equal((await runCheck(check(withLog, "backup"))).status, "fail");
      fs.rmSync(log);
      assert.equal((await runCheck(check(withLog, "backup"))).status, "fail");
    });
  });

  describe("database-permissions on postgres (fake psql and runuser on PATH)", () => {
    const input = () => hostInput({ postgres: { envFile: at("app.env"), name: "shop_prod", onHost: true } });
    const fakeBin = () => at("fakebin");
    beforeEach(() => {
      fs.writeFileSync(
        at("app.env"),
        'APP_ENV="prod"\nDATABASE_URL="postgresql://shop_prod:s3cr%40t@127.0.0.1:5432/shop_prod"\n',
      );
      fs.mkdirSync(fakeBin());
      // psql logs its argv and the password it got; answers per the PSQL_* variables.
      fs.writeFileSync(
        path.join(fakeBin(), "psql"),
        `#!/bin/bash\necho "argv: $*" >>${at("psql.log")}\necho "PG: \${PGHOST:-}:\${PGPORT:-} \${PGUSER:-}/\${PGDATABASE:-} \${PGPASSWORD:-}" >>${at("psql.log")}\n` +
          'case "$*" in *current_user*) [ -n "${PSQL_REFUSE:-}" ] && { echo "FATAL:  password authentication failed" >&2; exit 2; }; echo shop_prod ;; *) echo "${PSQL_PUBLIC:-0}" ;; esac\n',
        { mode: 0o755 },
      );
      fs.writeFileSync(path.join(fakeBin(), "runuser"), '#!/bin/bash\nshift 3\nexec "$@"\n', { mode: 0o755 });
    });
    const run = (env: Record<string, string> = {}) =>
      runCheck(check(input(), "database-permissions"), {
        ...process.env,
        PATH: `${fakeBin()}:${process.env.PATH}`,
        ...env,
      });

    it("passes when the role connects with the env file's password (decoded, in PGPASSWORD, never argv)", async () => {
      const r = await run();
      assert.equal(r.status, "pass", r.detail);
      const log = fs.readFileSync(at("psql.log"), "utf8");
      // The app's connection from the env file's URL, through libpq's variables.
      assert.match(
        log,
        /^argv: -X -At -c select current_user\nPG: 127\.0\.0\.1:5432 shop_prod\/shop_prod s3cr@t$/m,
      );
      // The PUBLIC check runs as postgres on the local socket, without the app's variables.
      assert.match(log, /^argv: -X -At -d shop_prod -c select case when datacl is null .*\nPG: : \/ $/m);
      assert.equal(/^argv: .*s3cr/m.test(log), false, "the password is in psql's argv");
    });

    it("reads a URL with a driver in its scheme (apphost:database.urlScheme), and names one it cannot read", async () => {
      fs.writeFileSync(
        at("app.env"),
        'DATABASE_URL="postgresql+asyncpg://shop_prod:s3cr%40t@127.0.0.1:5433/shop_prod?ssl=disable"\n',
      );
      assert.equal((await run()).status, "pass");
      assert.match(
        fs.readFileSync(at("psql.log"), "utf8"),
        /^PG: 127\.0\.0\.1:5433 shop_prod\/shop_prod s3cr@t$/m,
      );
      // Heroku's postgres:// (apphost:database.urlScheme: postgres).
      fs.rmSync(at("psql.log"));
      fs.writeFileSync(at("app.env"), 'DATABASE_URL="postgres://shop_prod:s3cr%40t@127.0.0.1/shop_prod"\n');
      assert.equal((await run()).status, "pass");
      assert.match(
        fs.readFileSync(at("psql.log"), "utf8"),
        /^PG: 127\.0\.0\.1:5432 shop_prod\/shop_prod s3cr@t$/m,
      );
      fs.writeFileSync(at("app.env"), 'DATABASE_URL="mysql://shop_prod:s3cr%40t@127.0.0.1/shop_prod"\n');
      const r = await run();
      assert.equal(r.status, "fail");
      assert.match(
        r.detail,
        new RegExp(
          `DATABASE_URL in ${at("app.env")} is not a postgresql\\[\\+driver\\]://user:password@host:port/database URL \\(or postgres://\\.\\.\\.\\)$`,
        ),
      );
    });

    it("fails naming the role and psql's answer when the role cannot connect", async () => {
      const r = await run({ PSQL_REFUSE: "1" });
      assert.deepEqual(
        [r.status, r.detail],
        [
          "fail",
          "the app's role shop_prod cannot connect to shop_prod on 127.0.0.1:5432: FATAL:  password authentication failed",
        ],
      );
    });

    it("fails when every role may connect (PUBLIC has CONNECT)", async () => {
      const r = await run({ PSQL_PUBLIC: "1" });
      assert.deepEqual(
        [r.status, r.detail],
        [
          "fail",
          "every role may connect to shop_prod (PUBLIC has CONNECT); revoke it: runuser -u postgres -- psql -c 'REVOKE CONNECT ON DATABASE shop_prod FROM PUBLIC'",
        ],
      );
    });
  });

  describe("database-permissions", () => {
    const input = (owner = me) => hostInput({ database: { file: at("data", "app.db"), owner } });

    beforeEach(() => {
      fs.mkdirSync(at("data"));
      fs.chmodSync(at("data"), 0o750);
      fs.writeFileSync(at("data", "app.db"), "");
      fs.chmodSync(at("data", "app.db"), 0o640);
    });

    it("passes for 0640 and 0600 in a 0750 directory owned by the app user", async () => {
      assert.equal((await runCheck(check(input(), "database-permissions"))).status, "pass");
      fs.chmodSync(at("data", "app.db"), 0o600);
      assert.equal((await runCheck(check(input(), "database-permissions"))).status, "pass");
    });

    it("lists every wrong mode and owner", async () => {
      fs.chmodSync(at("data", "app.db"), 0o644);
      fs.chmodSync(at("data"), 0o755);
      assert.equal(
        (await runCheck(check(input("nobody"), "database-permissions"))).detail,
        [
          `${at("data", "app.db")} is owned by ${me}, not nobody`,
          `${at("data", "app.db")} has mode 0644, not 0640 or 0600 (the next release tightens it; now: sudo chmod g-w,o-rwx ${at("data", "app.db")})`,
          `${at("data")} is owned by ${me}, not nobody`,
          `${at("data")} has mode 0755, not 0750`,
        ].join("; "),
      );
    });

    it("fails when the database file is missing", async () => {
      fs.rmSync(at("data", "app.db"));
      assert.equal(
        (await runCheck(check(input(), "database-permissions"))).detail,
        `${at("data", "app.db")} does not exist`,
      );
    });

    it("flags a -wal file left behind by another user (needs root to chown)", async function () {
      if (process.getuid?.() !== 0) this.skip();
      fs.writeFileSync(at("data", "app.db-wal"), "");
      fs.chownSync(at("data", "app.db-wal"), 65534, 65534);
      const owner = spawnSync("stat", ["-c", "%U", at("data", "app.db-wal")], {
        encoding: "utf8",
      }).stdout.trim();
      assert.equal(
        (await runCheck(check(input(), "database-permissions"))).detail,
        `${at("data", "app.db-wal")} is owned by ${owner}, not ${me}`,
      );
    });
  });

  describe("disk", () => {
    const input = (paths: string[], minFreePercent: number) => hostInput({ disk: { paths, minFreePercent } });

    it("passes with headroom and fails below the threshold", async () => {
      assert.equal((await runCheck(check(input([tmp, "/"], 0), "disk"))).status, "pass");
      const r = await runCheck(check(input([tmp], 100), "disk"));
      assert.equal(r.status, "fail");
      assert.match(r.detail, new RegExp(`^${tmp} has \\d+% free \\(\\d+ MiB\\), below 100%$`));
    });

    it("fails for a path it cannot measure", async () => {
      assert.equal(
        (await runCheck(check(input([at("missing")], 10), "disk"))).detail,
        `cannot read the free space of ${at("missing")}`,
      );
    });
  });

  describe("maintenance", () => {
    const m = () => ({
      manual: at("maintenance", "on"),
      config: at("maintenance", "on-config"),
      off: "npm run maintenance -- --stack prod off",
    });
    const run = () => runCheck(check(hostInput({ maintenance: m() }), "maintenance"));

    it("passes when off; fails when switched on by hand, saying when and how to end it; passes, said so, when the stack declares it", async () => {
      fs.rmSync(at("maintenance"), { recursive: true, force: true });
      assert.deepEqual(await run(), { name: "maintenance", status: "pass", detail: "" });
      fs.mkdirSync(at("maintenance"));
      fs.writeFileSync(m().config, "apphost:app.maintenance\n");
      assert.deepEqual(await run(), {
        name: "maintenance",
        status: "pass",
        detail:
          "on, as apphost:app.maintenance says (every request but the health path gets the maintenance page)",
      });
      fs.writeFileSync(m().manual, "npm run maintenance on, 2026-12-05T17:00:00Z\n");
      assert.deepEqual(await run(), {
        name: "maintenance",
        status: "fail",
        detail:
          "on, switched by hand (npm run maintenance on, 2026-12-05T17:00:00Z): every request but the health path " +
          "gets the maintenance page; npm run maintenance -- --stack prod off ends it",
      });
    });
  });

  describe("memory", () => {
    const input = () => hostInput({ memory: { meminfo: at("meminfo"), minAvailablePercent: 10 } });
    const meminfo = (total: number, avail: number) =>
      fs.writeFileSync(
        at("meminfo"),
        `MemTotal:       ${total} kB\nMemFree:         1000 kB\nMemAvailable:   ${avail} kB\nBuffers: 1 kB\n`,
      );

    it("passes at 10% and fails below", async () => {
      meminfo(2_000_000, 200_000);
      assert.equal((await runCheck(check(input(), "memory"))).status, "pass");
      meminfo(2_000_000, 199_000);
      assert.equal(
        (await runCheck(check(input(), "memory"))).detail,
        "MemAvailable is 9% of MemTotal (194 of 1953 MiB), below 10%",
      );
    });

    it("fails when the numbers are missing", async () => {
      fs.writeFileSync(at("meminfo"), "MemTotal: 100 kB\n");
      assert.equal(
        (await runCheck(check(input(), "memory"))).detail,
        `cannot read MemTotal and MemAvailable from ${at("meminfo")}`,
      );
    });
  });

  describe("units (with a stand-in systemctl and /proc)", () => {
    const worker = "apphost-shop-prod-worker.service";
    const web = "apphost-shop-prod-web@8001.service";
    /** Every unit active; `maps` gives the processes of a unit the lines of their /proc/<pid>/maps. */
    const host = (maps: Record<string, string[]>) => {
      fs.mkdirSync(at("bin"));
      fs.writeFileSync(at("bin", "systemctl"), "#!/usr/bin/env bash\necho active\n", { mode: 0o755 });
      fs.writeFileSync(at("active-port"), "8001\n");
      let pid = 100;
      for (const [unit, lines] of Object.entries({ "caddy.service": [], [worker]: [], [web]: [], ...maps })) {
        fs.mkdirSync(at("proc", String(++pid)), { recursive: true });
        fs.writeFileSync(at("proc", String(pid), "cgroup"), `0::/system.slice/${unit}\n`);
        fs.writeFileSync(at("proc", String(pid), "maps"), lines.map((l) => `${l}\n`).join(""));
      }
      const input = hostInput({
        proc: at("proc"),
        web: { templates: ["apphost-shop-prod-web@.service"], activePortFile: at("active-port") },
      });
      return () =>
        runCheck(check(input, "units"), { ...process.env, PATH: `${at("bin")}:${process.env.PATH}` });
    };
    const deleted = (file: string) => `7f3a10028000-7f3a1017d000 r-xp 00028000 fe:01 1311 ${file} (deleted)`;

    it("names three of the files, and how many more", async () => {
      const libs = ["ld-linux-x86-64.so.2", "libc.so.6", "libdl.so.2", "libm.so.6", "libresolv.so.2"];
      const run = host({ [web]: libs.map((l) => deleted(`/usr/lib/x86_64-linux-gnu/${l}`)) });
      assert.equal(
        (await run()).detail,
        `a package upgrade replaced files these still run (ld-linux-x86-64.so.2, libc.so.6, libdl.so.2 and 2 more): ${web}; ` +
          "pulumi up --refresh publishes the live release again (a new web instance behind the health gate, the workers restarted)",
      );
    });

    it("passes while the processes a release starts run the files on disk", async () => {
      const run = host({
        [web]: ["7f3a40000000-7f3a40014000 r-xp 00002000 fe:01 2002 /usr/lib/x86_64-linux-gnu/libc.so.6"],
      });
      assert.deepEqual(await run(), { name: "units", status: "pass", detail: "" });
    });

    it("fails naming each worker and the web instance that runs a library a package upgrade replaced, and what restarts them; the proxy's own is not its business", async () => {
      const run = host({
        [worker]: [deleted("/usr/lib/x86_64-linux-gnu/libssl.so.3")],
        [web]: [deleted("/usr/lib/x86_64-linux-gnu/libc.so.6"), deleted("/usr/bin/python3.11")],
        "caddy.service": [deleted("/usr/lib/x86_64-linux-gnu/libc.so.6")],
      });
      assert.deepEqual(await run(), {
        name: "units",
        status: "fail",
        detail:
          `a package upgrade replaced files these still run (libc.so.6, libssl.so.3, python3.11): ${worker}, ${web}; ` +
          "pulumi up --refresh publishes the live release again (a new web instance behind the health gate, the workers restarted)",
      });
    });
  });

  describe("a scheduled job (with a stand-in systemctl)", () => {
    const job = {
      name: "tick",
      service: "apphost-shop-test-tick.service",
      timer: "apphost-shop-test-tick.timer",
    };
    /**
     * `systemctl is-active -- UNIT`, `systemctl show -p PROP --value -- UNIT` and `systemctl show -p A -p B …
     * -- UNIT` (`A=…` lines; ActiveState is the unit's state), from files named after them. A unit with files in
     * `after` is read from those after its first read: a run that ends while the doctor reads it.
     */
    const fake = (props: Record<string, string>, after: Record<string, string> = {}) => {
      fs.rmSync(at("after"), { recursive: true, force: true });
      fs.mkdirSync(at("bin"), { recursive: true });
      fs.mkdirSync(at("after"), { recursive: true });
      for (const [k, v] of Object.entries(props)) fs.writeFileSync(at(k), v);
      for (const [k, v] of Object.entries(after)) fs.writeFileSync(at("after", k), v);
      fs.writeFileSync(
        at("bin", "systemctl"),
        [
          "#!/usr/bin/env bash",
          "unit=${!#}",
          `dir=${JSON.stringify(tmp)}`,
          'if compgen -G "$dir/after/$unit.*" >/dev/null; then',
          '  if [[ -e "$dir/after/.$unit.reads" ]]; then dir=$dir/after; else touch "$dir/after/.$unit.reads"; fi',
          "fi",
          'if [[ $1 == is-active ]]; then s=$(cat "$dir/$unit.state" 2>/dev/null); echo "${s:-inactive}"; [[ $s == active ]]; exit; fi',
          'if [[ $4 == --value ]]; then cat "$dir/$unit.$3" 2>/dev/null || true; exit 0; fi',
          "shift",
          "while [[ $1 == -p ]]; do",
          '  if [[ $2 == ActiveState ]]; then v=$(cat "$dir/$unit.state" 2>/dev/null); v=${v:-inactive}; else v=$(cat "$dir/$unit.$2" 2>/dev/null); fi',
          '  printf "%s=%s\\n" "$2" "$v"; shift 2',
          "done",
        ].join("\n"),
        { mode: 0o755 },
      );
      return { ...process.env, PATH: `${at("bin")}:${process.env.PATH}` };
    };
    const run = (env: NodeJS.ProcessEnv) =>
      runCheck(check(hostInput({ schedules: [job] }), "schedule-tick"), env);

    it("shows the last run and the next one", async () => {
      const env = fake({
        [`${job.timer}.state`]: "active",
        [`${job.timer}.NextElapseUSecRealtime`]: "Mon 2026-12-01 12:00:10 UTC",
        [`${job.service}.Result`]: "success",
        [`${job.service}.ExecMainStatus`]: "0",
        [`${job.service}.ExecMainExitTimestamp`]: "Mon 2026-12-01 12:00:00 UTC",
      });
      assert.deepEqual(await run(env), {
        name: "schedule-tick",
        status: "pass",
        detail: "last run Mon 2026-12-01 12:00:00 UTC: success; next run Mon 2026-12-01 12:00:10 UTC",
      });
    });

    it("while a run goes on (systemd then keeps no last result), says so instead of 'not run yet'", async () => {
      const env = fake({
        [`${job.timer}.state`]: "active",
        [`${job.service}.state`]: "activating",
        [`${job.service}.ExecMainStartTimestamp`]: "Mon 2026-12-01 12:00:20 UTC",
      });
      assert.deepEqual(await run(env), {
        name: "schedule-tick",
        status: "pass",
        detail: "running now (started Mon 2026-12-01 12:00:20 UTC); its result shows once it ends",
      });
    });

    it("a run read as it ends is one state (one systemctl show), not a mix that reads as a failed run", async () => {
      // Running at the first read of the service; ended (success, inactive) at every read after it.
      const env = fake(
        {
          [`${job.timer}.state`]: "active",
          [`${job.service}.state`]: "activating",
          [`${job.service}.ExecMainStartTimestamp`]: "Mon 2026-12-01 12:00:20 UTC",
        },
        {
          [`${job.service}.Result`]: "success",
          [`${job.service}.ExecMainStatus`]: "0",
          [`${job.service}.ExecMainExitTimestamp`]: "Mon 2026-12-01 12:00:21 UTC",
        },
      );
      assert.deepEqual(await run(env), {
        name: "schedule-tick",
        status: "pass",
        detail: "running now (started Mon 2026-12-01 12:00:20 UTC); its result shows once it ends",
      });
    });

    it("fails when the last run failed, and when the timer is not active", async () => {
      const env = fake({
        [`${job.timer}.state`]: "active",
        [`${job.service}.Result`]: "exit-code",
        [`${job.service}.ExecMainStatus`]: "3",
        [`${job.service}.ExecMainExitTimestamp`]: "Mon 2026-12-01 12:00:00 UTC",
      });
      assert.equal((await run(env)).status, "fail");
      fs.writeFileSync(at(`${job.timer}.state`), "inactive");
      assert.match(
        (await run(env)).detail,
        /^timer apphost-shop-test-tick.timer is inactive: the job does not run/,
      );
    });
  });

  describe("units (with a stand-in systemctl)", () => {
    let env: NodeJS.ProcessEnv;
    const states = (lines: Record<string, string>) =>
      fs.writeFileSync(
        at("states"),
        Object.entries(lines)
          .map(([u, s]) => `${u} ${s}\n`)
          .join(""),
      );
    const input = () =>
      hostInput({
        units: ["caddy.service", "apphost-shop-test-worker.service"],
        processUnits: ["apphost-shop-test-worker.service"],
        web: { templates: ["apphost-shop-test-web@.service"], activePortFile: at("active-port") },
      });

    /** The input with the stack's upstream switch: table apphost_shop_test, the proxy's port `upstreamPort`. */
    const withUpstreamAt = (upstreamPort: number) => {
      const i = input();
      return hostInput({
        ...i,
        web: {
          ...i.web!,
          upstream: {
            table: "apphost_shop_test",
            port: upstreamPort,
            unit: "apphost-shop-test-upstream.service",
          },
        },
      });
    };

    beforeEach(() => {
      fs.mkdirSync(at("bin"));
      // `systemctl is-active -- UNIT`: prints the state from the table, exits 0 only for active.
      fs.writeFileSync(
        at("bin", "systemctl"),
        [
          "#!/usr/bin/env bash",
          "unit=${!#}",
          `state=$(awk -v u="$unit" '$1 == u { print $2 }' ${JSON.stringify(at("states"))})`,
          'echo "${state:-inactive}"',
          "[[ $state == active ]]",
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      // `ss -Hltn "sport = :PORT"`: the listening sockets kept in a file (a loopback one unless a test says).
      fs.writeFileSync(at("bin", "ss"), `#!/usr/bin/env bash\ncat ${JSON.stringify(at("listening"))}\n`, {
        mode: 0o755,
      });
      fs.writeFileSync(at("listening"), "LISTEN 0      2048       127.0.0.1:8001      0.0.0.0:*\n");
      env = { ...process.env, PATH: `${at("bin")}:${process.env.PATH}` };
      fs.writeFileSync(at("active-port"), "8001\n");
    });

    it("passes when every unit and the web instance on the active port are active", async () => {
      states({
        "caddy.service": "active",
        "apphost-shop-test-worker.service": "active",
        "apphost-shop-test-web@8001.service": "active",
      });
      assert.equal((await runCheck(check(input(), "units"), env)).status, "pass");
    });

    it("names every unit that is not active", async () => {
      states({
        "caddy.service": "active",
        "apphost-shop-test-worker.service": "failed",
        "apphost-shop-test-web@8000.service": "active",
      });
      assert.equal(
        (await runCheck(check(input(), "units"), env)).detail,
        "apphost-shop-test-worker.service is failed; apphost-shop-test-web@8001.service is inactive; " +
          "once the cause is fixed (npm run logs shows the journal), pulumi up --refresh publishes the live release again, which starts them",
      );
    });

    it("says how to start the app's processes again only when one of them is down, not for the proxy", async () => {
      states({
        "caddy.service": "failed",
        "apphost-shop-test-worker.service": "active",
        "apphost-shop-test-web@8001.service": "active",
      });
      assert.equal((await runCheck(check(input(), "units"), env)).detail, "caddy.service is failed");
      states({
        "caddy.service": "active",
        "apphost-shop-test-worker.service": "failed",
        "apphost-shop-test-web@8001.service": "active",
      });
      assert.match(
        (await runCheck(check(input(), "units"), env)).detail,
        /^apphost-shop-test-worker\.service is failed; once the cause is fixed .*, which starts them$/,
      );
    });

    it("with the upstream switch: passes when the rule leads to the active port, names it when not", async () => {
      states({
        "caddy.service": "active",
        "apphost-shop-test-worker.service": "active",
        "apphost-shop-test-web@8001.service": "active",
      });
      // `nft list table ip T`: prints the ruleset kept in a file, fails like nft when there is none.
      fs.writeFileSync(
        at("bin", "nft"),
        `#!/usr/bin/env bash\ncat ${JSON.stringify(at("ruleset"))} 2>/dev/null || { echo "Error: No such file or directory" >&2; exit 1; }\n`,
        { mode: 0o755 },
      );
      const withUpstream = () => withUpstreamAt(8002);
      const rule = (port: number) =>
        `table ip apphost_shop_test {\n\tchain upstream {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tip daddr 127.0.0.1 tcp dport 8002 dnat to 127.0.0.1:${port}\n\t}\n}\n`;
      fs.writeFileSync(at("ruleset"), rule(8001));
      assert.equal((await runCheck(check(withUpstream(), "units"), env)).status, "pass");
      fs.writeFileSync(at("ruleset"), rule(8000));
      assert.equal(
        (await runCheck(check(withUpstream(), "units"), env)).detail,
        "the upstream port 8002 does not lead to the active port 8001 (systemctl restart apphost-shop-test-upstream.service)",
      );
      fs.rmSync(at("ruleset"));
      assert.equal(
        (await runCheck(check(withUpstream(), "units"), env)).detail,
        "no nftables table ip apphost_shop_test: the upstream port 8002 leads nowhere (systemctl restart apphost-shop-test-upstream.service)",
      );
    });

    it("names the addresses beyond loopback the web instance listens on (the real ss, real sockets), unless the guard is loaded", async () => {
      fs.rmSync(at("bin", "ss"));
      const listen = (host: string) =>
        new Promise<net.Server>((resolve) => {
          const server = net.createServer();
          server.listen(0, host, () => resolve(server));
        });
      const open = await listen("0.0.0.0");
      const port = (open.address() as net.AddressInfo).port;
      const closed = await listen("127.0.0.1");
      const loopbackPort = (closed.address() as net.AddressInfo).port;
      try {
        const active = (p: number) => {
          fs.writeFileSync(at("active-port"), `${p}\n`);
          states({
            "caddy.service": "active",
            "apphost-shop-test-worker.service": "active",
            [`apphost-shop-test-web@${p}.service`]: "active",
          });
        };
        active(port);
        assert.equal(
          (await runCheck(check(input(), "units"), env)).detail,
          `the web instance listens on 0.0.0.0:${port}, beyond 127.0.0.1: it answers past the proxy (no TLS, no maintenance page) ` +
            `wherever the host's firewall lets port ${port} in; bind it to 127.0.0.1 (--host 127.0.0.1, --bind 127.0.0.1:$PORT)`,
        );
        active(loopbackPort);
        assert.equal((await runCheck(check(input(), "units"), env)).status, "pass");

        // With the stack's nftables tables (a stand-in nft listing them): the guard makes 0.0.0.0 harmless.
        active(port);
        const table = "apphost_shop_test";
        const withUpstream = () => withUpstreamAt(port + 2);
        const ruleset = renderUpstreamRuleset(hostLayout("shop", "test"), { basePort: port, port });
        const [ip, inet] = [
          ruleset.indexOf(`table ip ${table} {\n`),
          ruleset.indexOf(`table inet ${table} {\n`),
        ];
        fs.writeFileSync(at("ip"), ruleset.slice(ip, inet));
        fs.writeFileSync(at("inet"), ruleset.slice(inet));
        // `nft list table <family> T`: what `nft -f` of the ruleset loaded, fails like nft when there is none.
        fs.writeFileSync(
          at("bin", "nft"),
          `#!/usr/bin/env bash
cat ${JSON.stringify(at(""))}/"$3" 2>/dev/null || { echo "Error: No such file or directory" >&2; exit 1; }
`,
          { mode: 0o755 },
        );
        assert.equal((await runCheck(check(withUpstream(), "units"), env)).status, "pass");
        fs.rmSync(at("inet"));
        assert.equal(
          (await runCheck(check(withUpstream(), "units"), env)).detail,
          `the web instance listens on 0.0.0.0:${port}, beyond 127.0.0.1, and the guard that resets connections to it from elsewhere ` +
            `(nftables table inet ${table}) is not loaded: it answers past the proxy (no TLS, no maintenance page) wherever the host's firewall ` +
            `lets port ${port} in; systemctl restart apphost-shop-test-upstream.service, or bind it to 127.0.0.1 (--host 127.0.0.1, --bind 127.0.0.1:$PORT)`,
        );
      } finally {
        open.close();
        closed.close();
      }
    });

    it("fails without an active port", async () => {
      fs.rmSync(at("active-port"));
      assert.equal(
        (await runCheck(check(input(), "units"), env)).detail,
        `cannot read the active web port from ${at("active-port")}`,
      );
    });
  });

  describe("health (http, tls off)", () => {
    let server: http.Server;
    let port: number;
    let seen: { host?: string; url?: string } = {};

    beforeEach(async () => {
      server = http.createServer((req, res) => {
        seen = { host: req.headers.host, url: req.url };
        res.statusCode = req.url === "/healthz" ? 200 : 503;
        res.end("ok");
      });
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      port = (server.address() as net.AddressInfo).port;
    });
    afterEach(async () => {
      await new Promise((r) => server.close(r));
    });

    const input = (p: string, healthPort = port) =>
      hostInput({ tlsMode: "off", health: { hostname: "shop.example.test", port: healthPort, path: p } });

    it("passes on 2xx, sending the public hostname to 127.0.0.1", async () => {
      assert.equal((await runCheck(check(input("/healthz"), "health"))).status, "pass");
      assert.deepEqual(seen, { host: `shop.example.test:${port}`, url: "/healthz" });
    });

    it("fails on a non-2xx answer", async () => {
      assert.equal(
        (await runCheck(check(input("/broken"), "health"))).detail,
        `HTTP 503 from http://shop.example.test:${port}/broken`,
      );
    });

    it("fails when nothing answers", async () => {
      const closed = await freePort();
      const r = await runCheck(check(input("/healthz", closed), "health"));
      assert.match(
        r.detail,
        new RegExp(`^no answer from http://shop.example.test:${closed}/healthz via 127.0.0.1:${closed}: `),
      );
    });
  });

  describe("tls-certificate and https health (openssl s_server)", function () {
    this.timeout(60_000);
    let server: ReturnType<typeof spawn> | undefined;
    let port: number;

    /** openssl s_server with a certificate for `name` (an IPv4 address: an IP SAN, served on that address). */
    async function serve(days: number, name: string): Promise<void> {
      const ip = /^\d+\.\d+\.\d+\.\d+$/.test(name);
      selfSignedCert(at("cert.pem"), at("key.pem"), [name], days);
      port = await freePort();
      server = spawn(
        "openssl",
        [
          "s_server",
          "-accept",
          `${ip ? name : "127.0.0.1"}:${port}`,
          "-cert",
          at("cert.pem"),
          "-key",
          at("key.pem"),
          "-www",
          "-quiet",
        ],
        { stdio: "ignore" },
      );
      await waitForPort(port, 10_000, ip ? name : "127.0.0.1");
    }

    afterEach(() => {
      server?.kill();
      server = undefined;
    });

    const input = (tlsMode: DoctorInput["tlsMode"], hostname = "shop.example.test") =>
      hostInput({ tlsMode, health: { hostname, port, path: "/healthz" } });

    it("passes for a certificate valid 30 more days", async () => {
      await serve(30, "shop.example.test");
      assert.equal((await runCheck(check(input("caddy-acme"), "tls-certificate"))).status, "pass");
    });

    it("fails for one that expires within 14 days", async () => {
      await serve(5, "shop.example.test");
      const r = await runCheck(check(input("caddy-acme"), "tls-certificate"));
      assert.match(
        r.detail,
        /^certificate for shop\.example\.test expires .+ GMT, less than 14 days from now$/,
      );
    });

    it("fails for one that does not cover the hostname", async () => {
      await serve(30, "other.example.test");
      assert.equal(
        (await runCheck(check(input("caddy-acme"), "tls-certificate"))).detail,
        `certificate served on 127.0.0.1:${port} does not cover shop.example.test`,
      );
    });

    it("fails when nothing serves TLS", async () => {
      port = await freePort();
      assert.equal(
        (await runCheck(check(input("caddy-acme"), "tls-certificate"))).detail,
        `no certificate served on 127.0.0.1:${port} for shop.example.test`,
      );
    });

    it("a stack without DNS (an address as its name): both checks reach the proxy on that address, no SNI", async () => {
      // Caddy picks an address's certificate by the address the connection reached: on 127.0.0.1 it has none.
      await serve(30, "127.0.0.2");
      assert.deepEqual(await runCheck(check(input("internal", "127.0.0.2"), "tls-certificate")), {
        name: "tls-certificate",
        status: "pass",
        detail: "",
      });
      assert.equal((await runCheck(check(input("internal", "127.0.0.2"), "health"))).status, "pass");
      server?.kill();
      await serve(30, "127.0.0.3");
      assert.equal(
        (await runCheck(check(input("internal", "127.0.0.2"), "tls-certificate"))).detail,
        `no certificate served on 127.0.0.2:${port} for 127.0.0.2`,
      );
    });

    it("health over https: -k for internal passes, a public-CA mode refuses the self-signed certificate", async () => {
      await serve(30, "shop.example.test");
      assert.equal((await runCheck(check(input("internal"), "health"))).status, "pass");
      const strict = await runCheck(check(input("caddy-acme"), "health"));
      assert.equal(strict.status, "fail");
      assert.match(strict.detail, /certificate/i);
    });
  });

  it("the whole script on a healthy temp host: every check passes or skips, exit 0", async () => {
    // Stand-ins: systemctl, the app's files, a health server, /proc/meminfo.
    fs.mkdirSync(at("bin"));
    fs.writeFileSync(at("bin", "systemctl"), "#!/usr/bin/env bash\necho active\n", { mode: 0o755 });
    fs.writeFileSync(at("active-port"), "8000\n");
    fs.mkdirSync(at("releases", "r7"), { recursive: true });
    fs.symlinkSync(at("releases", "r7"), at("current"));
    fs.mkdirSync(at("backups"));
    sqlite(at("backups", "app-1.db"), "CREATE TABLE t (x);");
    fs.mkdirSync(at("data"), { mode: 0o750 });
    fs.chmodSync(at("data"), 0o750);
    fs.writeFileSync(at("data", "app.db"), "", { mode: 0o640 });
    fs.chmodSync(at("data", "app.db"), 0o640);
    fs.writeFileSync(at("meminfo"), "MemTotal: 1000 kB\nMemAvailable: 500 kB\n");
    const server = http.createServer((_req, res) => res.end("ok"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const input: DoctorInput = {
        units: ["caddy.service"],
        processUnits: [],
        web: { templates: ["apphost-shop-test-web@.service"], activePortFile: at("active-port") },
        health: { hostname: "shop.example.test", port, path: "/healthz" },
        tlsMode: "off",
        backup: { dir: at("backups"), maxAgeSeconds: 3600, sqliteIntegrity: true },
        database: { file: at("data", "app.db"), owner: me },
        disk: { paths: [tmp], minFreePercent: 1 },
        memory: { meminfo: at("meminfo"), minAvailablePercent: 10 },
        release: { current: at("current"), expectedId: "r7" },
      };
      const env = { ...process.env, PATH: `${at("bin")}:${process.env.PATH}` };
      const healthy = await bash(["-c", renderDoctorScript(doctorChecks(input))], { env });
      assert.equal(
        healthy.stdout,
        [
          "PASS units",
          "PASS health",
          "SKIP tls-certificate: n/a: tls off",
          "PASS backup",
          "PASS database-permissions",
          "PASS disk",
          "PASS memory",
          "PASS release",
          "",
        ].join("\n"),
      );
      assert.equal(healthy.code, 0);

      const stale = await bash(
        [
          "-c",
          renderDoctorScript(
            doctorChecks({ ...input, release: { current: at("current"), expectedId: "r8" } }),
          ),
        ],
        { env },
      );
      assert.equal(stale.code, 1);
      assert.deepEqual(
        parseDoctorOutput(stale.stdout).filter((r) => r.status === "fail"),
        [{ name: "release", status: "fail", detail: "live release is r7, expected r8" }],
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
