/**
 * The deployment health check ("doctor") as data.
 *
 * `doctorChecks` turns what a deployed stack should look like into a list of
 * checks, each a function of doctor.sh (beside this file) with the values it
 * reads. `renderDoctorScript` makes one script of them, to run on the host as
 * root over SSH: a header of `readonly` values, doctor.sh, then one line per
 * check. It runs every check and prints one line each:
 *
 *     PASS <name>
 *     FAIL <name>: <detail>
 *     SKIP <name>: <reason>
 *
 * and exits 1 when any check failed. `parseDoctorOutput` reads those lines
 * back. Nothing here does I/O but reading doctor.sh once, when the module
 * loads: the caller decides where the script runs.
 *
 * The static bash is doctor.sh (shellcheck reads it as it is); this module
 * renders only what differs per stack: the values, the functions made for the
 * stack (the postgres check's `pg_env_from_url`) and which checks run with what
 * arguments. The script reads nothing from stdin, so it can be fed to `bash -s`
 * over SSH.
 */

import * as path from "path";
import type { StackConfig, TlsConfig } from "./config/types";
import {
  hostLayout,
  maintenanceFiles,
  scheduleUnitNames,
  unitName,
  upstreamPort,
  upstreamUnitName,
} from "./paths";
import { isPostgres, processesOn } from "./config/defaults";
import { pgEnvFromUrlLines } from "./render/postgres";
import { unitReplacedFunction } from "./render/layout";
import { shellFunction, strayDatabasesFunction } from "./release/backup";
import { isHostName, shellQuote } from "./shell";
import { staticShell } from "./shellfile";
import { backupUnitNames } from "./render/systemd";

/** A header value: `readonly NAME=<word>`, or `readonly NAME=(<word>...)` for a list. */
export type DoctorValue = string | number | string[];

export interface DoctorCheck {
  /** Lowercase id printed in the result line, e.g. `units`, `tls-certificate` */
  name: string;
  /** One sentence: what a PASS guarantees */
  description: string;
  /**
   * What runs, in its own bash (set -euo pipefail, stdin closed, a timeout):
   * a function of doctor.sh (`check_units`, `skip`) or any command, then its
   * arguments. Exit 0 pass, 1 fail, 3 skip; the last output line is the detail.
   */
  command: string[];
  /**
   * The header values the command reads (`readonly NAME=value`). Checks that
   * name the same value must agree on it. @default none
   */
  values?: Record<string, DoctorValue>;
  /** Bash functions made for this stack that the command calls, rendered before doctor.sh. @default none */
  functions?: string;
}

export type DoctorStatus = "pass" | "fail" | "skip";

export interface DoctorResult {
  name: string;
  status: DoctorStatus;
  /** Failure detail or skip reason; "" for a pass */
  detail: string;
}

export interface DoctorInput {
  /** systemd units that must be `active`, e.g. `apphost-shop-prod-worker.service`, `caddy.service` */
  units: string[];
  /** Those of `units` a release (re)starts: the workers. A FAIL that names one says how to start it again */
  processUnits: string[];
  /** Where `<pid>/cgroup` and `<pid>/maps` tell a unit's processes and the files they run. @default "/proc" */
  proc?: string;
  /**
   * Web processes run as template units with two alternating instances; only
   * the one on the port the proxy uses is expected to be active.
   */
  web?: {
    /** Template unit names, e.g. `apphost-shop-prod-web@.service` */
    templates: string[];
    /** File holding the active web port (`HostLayout.activePort`) */
    activePortFile: string;
    /**
     * The stack's nftables upstream switch: the rule in `table` must lead
     * `port` (the stable upstream port the proxy connects to) to the active
     * web port (components/render/nftables.ts); `unit` loads it at boot
     */
    upstream?: { table: string; port: number; unit: string };
  };
  /**
   * Maintenance mode (`HostLayout.maintenance`): `manual` is the flag `npm run maintenance on` leaves, `config` the
   * one apphost:app.maintenance writes; `off` is the command that ends the manual one. Absent: no web process,
   * nothing to check.
   */
  maintenance?: { manual: string; config: string; off: string };
  /** apphost:app.schedules: each job's units, checked one by one (`schedule-<name>`) */
  schedules?: { name: string; service: string; timer: string }[];
  /** The health endpoint, requested through the proxy on this host */
  health: {
    /** Public hostname the proxy serves; resolved to 127.0.0.1 with `curl --resolve` */
    hostname: string;
    /** Proxy port: the HTTPS port when TLS is on, the HTTP port when it is off */
    port: number;
    /** @example "/healthz" */
    path: string;
    /**
     * CA bundle that signed the served certificate. Required for
     * `cloudflare-origin`, whose certificates are signed by Cloudflare's
     * Origin CA and not trusted by the system store.
     */
    caFile?: string;
    /** Seconds curl waits for the answer. @default 10 */
    timeoutSeconds?: number;
  };
  /** `apphost:tls.mode`: picks http or https, `-k` (internal only) and the certificate check */
  tlsMode: TlsConfig["mode"];
  /**
   * Seconds the served certificate must stay valid. @default 14 days, and 1 hour for
   * `internal`, whose certificates live for hours and are renewed by the proxy
   */
  certMinSeconds?: number;
  /** Scheduled backups; absent when the stack has no database */
  backup?: {
    /** `HostLayout.backups` */
    dir: string;
    /** The newest backup must be younger than this; see `backupMaxAgeSeconds` */
    maxAgeSeconds: number;
    /** Also run `PRAGMA integrity_check` on it (SQLite backups, plain, .gz or .zst) */
    sqliteIntegrity: boolean;
    /** Glob for backup file names; dot-files (partial writes) are always ignored. @default "*" */
    pattern?: string;
    /**
     * The scheduled backup's service: with no backup yet (a first deploy makes
     * none, there was no database before it), the failure says how to take the
     * first one now. @default not named
     */
    startUnit?: string;
    /**
     * `HostLayout.releaseLog`: with no backup yet, a stack first deployed less
     * than maxAgeSeconds ago (its oldest entry) is not late: the check is
     * skipped, saying when the schedule takes the first. @default every stack is old enough
     */
    releaseLog?: string;
    /**
     * The scheduled backup unit, whose last run must not have failed. Set with
     * apphost:backups.s3: a failed copy to S3 fails the unit while the local backup looks fine.
     */
    service?: string;
  };
  /** The SQLite database; absent for postgres or no database */
  database?: {
    /** Absolute path of the database file */
    file: string;
    /** Owner the file, its directory and any -wal/-shm/-journal file must have */
    owner: string;
  };
  /** One of several app hosts but the first: the backup check is skipped, naming the host that keeps them */
  backupElsewhere?: boolean;
  /** Postgres on the host: the app's role must connect with the env file's DATABASE_URL */
  postgres?: {
    /** `HostLayout.envFile` */
    envFile: string;
    /** The stack's role and database (`apphost:database.postgresName`) */
    name: string;
    /** Postgres on this host (kind postgres): also check that PUBLIC may not connect. False for RDS */
    onHost: boolean;
  };
  disk: {
    /** @default ["/", "/srv"] */
    paths: string[];
    /** @default 10 */
    minFreePercent: number;
  };
  memory: {
    /** @default "/proc/meminfo" */
    meminfo: string;
    /** MemAvailable as a percentage of MemTotal. @default 10 */
    minAvailablePercent: number;
  };
  release: {
    /** `HostLayout.current` */
    current: string;
    /** The release id this stack last published */
    expectedId: string;
    /**
     * The app user, who looks in the release for SQLite databases written there since its upload:
     * the next release is a new directory and would not see their data. @default not looked for
     */
    user?: string;
  };
}

/** Certificates must stay valid this long, unless `certMinSeconds` says otherwise. */
export const DEFAULT_CERT_MIN_SECONDS = 14 * 86400;
/** `tls internal` leaf certificates live 12 hours in Caddy and are renewed at two thirds. */
export const INTERNAL_CERT_MIN_SECONDS = 3600;

// ---------------------------------------------------------------------------
// From stack config

const SCHEDULE_SECONDS: Record<string, number> = {
  hourly: 3600,
  daily: 86400,
  weekly: 7 * 86400,
  monthly: 31 * 86400,
};

/**
 * How old the newest backup may be for a systemd `OnCalendar` shorthand: one
 * interval plus 10% (at least one hour) for the run itself and timer jitter.
 * Other calendar expressions need an explicit value.
 */
export function backupMaxAgeSeconds(schedule: string): number {
  const interval = SCHEDULE_SECONDS[schedule.trim().toLowerCase()];
  if (interval === undefined) {
    throw new Error(
      `doctor: cannot derive the backup age limit from apphost:backups.schedule "${schedule}"; ` +
        `pass backupMaxAgeSeconds (known shorthands: ${Object.keys(SCHEDULE_SECONDS).join(", ")})`,
    );
  }
  return interval + Math.max(3600, Math.round(interval / 10));
}

/**
 * Doctor input for a stack as its config describes it, with the doctor's defaults.
 * `originCaFile` is the Cloudflare Origin CA root on the host, required for
 * `tls.mode: cloudflare-origin` (see `DoctorInput.health.caFile`).
 */
export function doctorInputFromConfig(
  config: StackConfig,
  opts: {
    releaseId: string;
    backupMaxAgeSeconds?: number;
    originCaFile?: string;
    /**
     * Several app hosts (apphost:lb): `follower` for every host but the first,
     * which alone keeps the backups and runs the scheduled jobs. @default "primary"
     */
    role?: "primary" | "follower";
  },
): DoctorInput {
  // Behind apphost:lb an app host's proxy serves plain HTTP; the balancer holds the certificate.
  if (config.lb || config.tls.mode === "acm") config = { ...config, tls: { ...config.tls, mode: "off" } };
  const follower = opts.role === "follower";
  const layout = hostLayout(config.app.name, config.stack);
  const workers = processesOn(config.app.processes, opts.role)
    .filter((p) => p.kind === "worker")
    .map((p) => unitName(layout, p.name, "worker"));
  const webs = config.app.processes.filter((p) => p.kind === "web");
  const hostname =
    config.dns.hostnames[0]?.name ?? (config.host.kind === "existing" ? config.host.address : "localhost");
  const db = config.database;
  const flags = maintenanceFiles(layout);
  return {
    units: [
      `${config.proxy.kind}.service`,
      ...(webs.length > 0 ? [upstreamUnitName(layout)] : []),
      ...workers,
    ],
    processUnits: workers,
    web:
      webs.length > 0
        ? {
            templates: webs.map((p) => unitName(layout, p.name, "web")),
            activePortFile: layout.activePort,
            upstream: {
              table: layout.nftTable,
              port: upstreamPort(config.app.basePort),
              unit: upstreamUnitName(layout),
            },
          }
        : undefined,
    health: {
      hostname,
      port: config.tls.mode === "off" ? config.proxy.httpPort : config.proxy.httpsPort,
      path: config.app.healthPath,
      ...(opts.originCaFile !== undefined ? { caFile: opts.originCaFile } : {}),
    },
    tlsMode: config.tls.mode,
    ...(webs.length > 0
      ? {
          maintenance: {
            manual: flags.manual,
            config: flags.config,
            off: `npm run maintenance -- --stack ${config.stack} off`,
          },
        }
      : {}),
    backup:
      db.kind === "none" || follower
        ? undefined
        : {
            dir: layout.backups,
            maxAgeSeconds: opts.backupMaxAgeSeconds ?? backupMaxAgeSeconds(config.backups.schedule),
            sqliteIntegrity: db.kind === "sqlite",
            startUnit: backupUnitNames(layout).service,
            releaseLog: layout.releaseLog,
            ...(config.backups.s3 ? { service: backupUnitNames(layout).service } : {}),
          },
    database:
      db.kind === "sqlite" ? { file: `${layout.data}/${db.sqliteFile}`, owner: layout.user } : undefined,
    ...(isPostgres(db.kind)
      ? { postgres: { envFile: layout.envFile, name: db.postgresName, onHost: db.kind === "postgres" } }
      : {}),
    disk: { paths: ["/", "/srv"], minFreePercent: 10 },
    memory: { meminfo: "/proc/meminfo", minAvailablePercent: 10 },
    release: { current: layout.current, expectedId: opts.releaseId, user: layout.user },
    ...(follower && db.kind !== "none" ? { backupElsewhere: true } : {}),
    schedules: follower
      ? []
      : config.app.schedules.map((j) => ({ name: j.name, ...scheduleUnitNames(layout, j.name) })),
  };
}

// ---------------------------------------------------------------------------
// Checks

/** Every check, in the order they run. */
export function doctorChecks(input: DoctorInput): DoctorCheck[] {
  validate(input);
  return [
    unitsCheck(input),
    healthCheck(input),
    ...(input.maintenance ? [maintenanceCheck(input.maintenance)] : []),
    certificateCheck(input),
    backupCheck(input),
    databasePermissionsCheck(input),
    diskCheck(input),
    memoryCheck(input),
    releaseCheck(input),
    ...(input.schedules ?? []).map(scheduleCheck),
  ];
}

/** A check that does not apply to this stack: SKIP with `reason`. */
function skipCheck(name: string, description: string, reason: string): DoctorCheck {
  return { name, description, command: ["skip", reason] };
}

/**
 * One check per scheduled job (apphost:app.schedules): its timer is active
 * and its last run, if any, succeeded. A pass shows the last result and the
 * next run (`info:` line), or that a run is going on (systemd keeps no last
 * result while it runs).
 */
function scheduleCheck(job: NonNullable<DoctorInput["schedules"]>[number]): DoctorCheck {
  return {
    name: `schedule-${job.name}`,
    description: `The timer of scheduled job ${job.name} is active and its last run succeeded.`,
    command: ["check_schedule", job.name, job.service, job.timer],
  };
}

function unitsCheck(input: DoctorInput): DoctorCheck {
  const web = input.web && input.web.templates.length > 0 ? input.web : undefined;
  // The proxy connects to the upstream port; the stack's rule must lead it to the active port.
  const up = web?.upstream;
  return {
    name: "units",
    description:
      "Every apphost unit, the proxy and the web instance on the active port are active; " +
      "the upstream port leads to the active port; the web ports answer on loopback only (the stack's nftables guard, " +
      "or an instance that listens there); no process a release starts runs a library a package upgrade replaced.",
    command: ["check_units"],
    functions:
      "# unit_replaced <unit>: the files <unit>'s processes run that a package upgrade replaced.\n" +
      "# shellcheck disable=SC2317 # called by check_units, which apphost_doctor_run calls\n" +
      unitReplacedFunction({ proc: input.proc ?? "/proc" }).join("\n"),
    values: {
      UNITS: input.units,
      PROCESS_UNITS: input.processUnits,
      WEB_TEMPLATES: web?.templates ?? [],
      ACTIVE_PORT_FILE: web?.activePortFile ?? "",
      UPSTREAM_TABLE: up?.table ?? "",
      UPSTREAM_PORT: up?.port ?? "",
      UPSTREAM_UNIT: up?.unit ?? "",
    },
  };
}

function healthCheck(input: DoctorInput): DoctorCheck {
  const { hostname, port, path: urlPath } = input.health;
  const tls = input.tlsMode !== "off";
  const url = `${tls ? "https" : "http"}://${hostname}:${port}${urlPath}`;
  const trust =
    input.tlsMode === "internal"
      ? ["-k"] // internal CA: not in the system store, and that is the point of `internal`
      : input.tlsMode === "cloudflare-origin"
        ? ["--cacert", input.health.caFile as string]
        : [];
  return {
    name: "health",
    description: `${url} answers 2xx through the proxy on this host.`,
    command: ["check_health"],
    values: {
      HEALTH_URL: url,
      HEALTH_HOST: hostname,
      HEALTH_PORT: port,
      HEALTH_MAX_TIME: input.health.timeoutSeconds ?? 10,
      HEALTH_TRUST: trust,
    },
  };
}

/**
 * The app serves its pages: no `npm run maintenance on` left in place. The health path answers through
 * maintenance (the gate and the balancer need it), so the health check alone passes while every other request
 * gets the page. Maintenance the stack declares (apphost:app.maintenance) passes, said so.
 */
function maintenanceCheck(m: NonNullable<DoctorInput["maintenance"]>): DoctorCheck {
  return {
    name: "maintenance",
    description: "No maintenance switched on by hand: requests other than the health path reach the app.",
    command: ["check_maintenance"],
    values: { MAINTENANCE_MANUAL: m.manual, MAINTENANCE_CONFIG: m.config, MAINTENANCE_OFF: m.off },
  };
}

function certificateCheck(input: DoctorInput): DoctorCheck {
  const { hostname, port } = input.health;
  const min =
    input.certMinSeconds ??
    (input.tlsMode === "internal" ? INTERNAL_CERT_MIN_SECONDS : DEFAULT_CERT_MIN_SECONDS);
  const name = "tls-certificate";
  if (input.tlsMode === "off") return skipCheck(name, "Not applicable: TLS is off.", "n/a: tls off");
  return {
    name,
    description: `The certificate served for ${hostname} on port ${port} covers that name and stays valid for ${duration(min)} or more.`,
    command: ["check_tls_certificate"],
    values: { HEALTH_HOST: hostname, HEALTH_PORT: port, CERT_MIN_SECONDS: min, CERT_MIN: duration(min) },
  };
}

function backupCheck(input: DoctorInput): DoctorCheck {
  const name = "backup";
  const b = input.backup;
  if (!b) {
    const why = input.backupElsewhere ? "the first app host keeps the backups" : "no database";
    return skipCheck(name, `Not applicable: ${why}.`, `n/a: ${why}`);
  }
  return {
    name,
    description:
      (b.service ? `The last run of ${b.service} did not fail; the` : "The") +
      ` newest backup in ${b.dir} is younger than ${duration(b.maxAgeSeconds)}` +
      (b.sqliteIntegrity ? " and passes PRAGMA integrity_check." : "."),
    command: ["check_backup"],
    values: {
      BACKUP_DIR: b.dir,
      BACKUP_MAX_AGE: b.maxAgeSeconds,
      BACKUP_PATTERN: b.pattern ?? "*",
      BACKUP_SQLITE: b.sqliteIntegrity ? 1 : 0,
      BACKUP_SERVICE: b.service ?? "",
      BACKUP_START_UNIT: b.startUnit ?? "",
      BACKUP_RELEASE_LOG: b.releaseLog ?? "",
    },
  };
}

/**
 * Postgres: the app's role connects with the credentials in the env file (as
 * the app does, over TCP with its password), and no other role may connect to
 * its database. The password goes to psql in PGPASSWORD, never in argv.
 */
function postgresConnectionCheck(pg: NonNullable<DoctorInput["postgres"]>): DoctorCheck {
  return {
    name: "database-permissions",
    description: `The app's role connects to postgres database ${pg.name} with DATABASE_URL from ${pg.envFile}; PUBLIC may not connect.`,
    command: ["check_postgres"],
    values: { PG_ENV_FILE: pg.envFile, PG_NAME: pg.name, PG_ON_HOST: pg.onHost ? 1 : 0 },
    functions:
      `# pg_env_from_url: libpq's PG* variables from DATABASE_URL in ${pg.envFile}.\n` +
      "# shellcheck disable=SC2317 # called by check_postgres, which apphost_doctor_run calls\n" +
      shellFunction("pg_env_from_url", [
        "local url rest cred where hostport",
        ...pgEnvFromUrlLines(pg.envFile, "doctor"),
      ]),
  };
}

function databasePermissionsCheck(input: DoctorInput): DoctorCheck {
  const name = "database-permissions";
  const d = input.database;
  if (input.postgres) return postgresConnectionCheck(input.postgres);
  if (!d) {
    return skipCheck(name, "Not applicable: the stack has no SQLite database.", "n/a: no sqlite database");
  }
  return {
    name,
    description: `${d.file} is owned by ${d.owner} with mode 0640 or 0600, its directory by ${d.owner} with mode 0750.`,
    command: ["check_sqlite_permissions"],
    values: { DB_FILE: d.file, DB_DIR: path.posix.dirname(d.file), DB_OWNER: d.owner },
  };
}

function diskCheck(input: DoctorInput): DoctorCheck {
  const { paths, minFreePercent: min } = input.disk;
  return {
    name: "disk",
    description: `${paths.join(" and ")} each have ${min}% or more of their space available.`,
    command: ["check_disk"],
    values: { DISK_PATHS: paths, DISK_MIN_FREE: min },
  };
}

function memoryCheck(input: DoctorInput): DoctorCheck {
  const { meminfo, minAvailablePercent: min } = input.memory;
  return {
    name: "memory",
    description: `MemAvailable is ${min}% or more of MemTotal.`,
    command: ["check_memory"],
    values: { MEMINFO: meminfo, MEMORY_MIN_AVAILABLE: min },
  };
}

function releaseCheck(input: DoctorInput): DoctorCheck {
  const { current, expectedId, user } = input.release;
  return {
    name: "release",
    description:
      `${current} points to release ${expectedId}` +
      (user
        ? `, which holds no SQLite database written inside it since its upload (found as ${user}).`
        : "."),
    command: ["check_release"],
    values: { RELEASE_CURRENT: current, RELEASE_EXPECTED: expectedId, RELEASE_USER: user ?? "" },
    ...(user
      ? {
          functions:
            "# shellcheck disable=SC2317 # called by check_release, which apphost_doctor_run calls\n" +
            strayDatabasesFunction("runuser", '"$RELEASE_USER"'),
        }
      : {}),
  };
}

// ---------------------------------------------------------------------------
// The runner

export interface RenderDoctorOptions {
  /** Seconds one check may run before it counts as failed. @default 60 */
  timeoutSeconds?: number;
}

/** The static part, doctor.sh beside this file, read once when the module loads. */
export const DOCTOR_SH: string = staticShell(path.join(__dirname, "doctor.sh"));

/** A header value's name: uppercase; the DOCTOR_ prefix is the runner's own. */
const VALUE_NAME = /^(?!DOCTOR_)[A-Z][A-Z0-9_]*$/;

function valueWord(v: DoctorValue): string {
  return Array.isArray(v) ? `(${v.map(shellQuote).join(" ")})` : shellQuote(String(v));
}

/**
 * One bash script that runs every check in its own process (with a timeout
 * and stdin closed), prints one result line per check and exits 1 when any
 * check failed, 0 otherwise. The text is the header (the checks' values),
 * the functions made for the stack, doctor.sh, then one line per check.
 */
export function renderDoctorScript(checks: DoctorCheck[], opts: RenderDoctorOptions = {}): string {
  const seen = new Set<string>();
  const values = new Map<string, string>();
  for (const c of checks) {
    if (!CHECK_NAME.test(c.name)) {
      throw new Error(`doctor: check name "${c.name}" must match ${CHECK_NAME} (it is printed before ": ")`);
    }
    if (seen.has(c.name)) throw new Error(`doctor: check name "${c.name}" is used twice`);
    seen.add(c.name);
    if (c.command.length === 0) throw new Error(`doctor: check "${c.name}" has no command`);
    for (const [k, v] of Object.entries(c.values ?? {})) {
      if (!VALUE_NAME.test(k))
        throw new Error(`doctor: check "${c.name}": value name "${k}" must match ${VALUE_NAME}`);
      const word = valueWord(v);
      if (values.has(k) && values.get(k) !== word) {
        throw new Error(
          `doctor: check "${c.name}" sets ${k}=${word}, an earlier check ${k}=${values.get(k)}`,
        );
      }
      values.set(k, word);
    }
  }
  const timeout = opts.timeoutSeconds ?? 60;
  const functions = [...new Set(checks.flatMap((c) => (c.functions ? [c.functions.trimEnd()] : [])))];
  return [
    `#!/usr/bin/env bash`,
    `# apphost doctor: one line per check, "PASS <name>", "FAIL <name>: <detail>"`,
    `# or "SKIP <name>: <reason>"; exits 1 when any check failed.`,
    `# Rendered by apphost: the values and the checks that run (components/doctor.ts), the checks themselves (components/doctor.sh).`,
    `set -uo pipefail`,
    ``,
    `readonly DOCTOR_TIMEOUT=${timeout}`,
    ...[...values].map(([k, word]) => `readonly ${k}=${word}`),
    `# The values each check's bash gets (apphost_doctor_run).`,
    `readonly DOCTOR_VALUES=(${[...values.keys()].join(" ")})`,
    ``,
    ...functions.flatMap((f) => [f, ""]),
    DOCTOR_SH.trimEnd(),
    ``,
    `failed=0`,
    ...checks.flatMap((c) => [
      `# ${c.name}: ${c.description.replace(/\n/g, " ")}`,
      `apphost_doctor_run ${shellQuote(c.name)} ${c.command.map(shellQuote).join(" ")}`,
    ]),
    `exit "$failed"`,
    ``,
  ].join("\n");
}

const RESULT = /^(PASS|FAIL|SKIP) ([a-z0-9][a-z0-9-]*)(?:: (.*))?$/;

/**
 * The result lines of a doctor run. Lines that are not results (an SSH
 * banner, a stray warning) are ignored; a result line seen twice is an error.
 */
export function parseDoctorOutput(text: string): DoctorResult[] {
  const results: DoctorResult[] = [];
  const seen = new Set<string>();
  for (const raw of text.split("\n")) {
    const m = RESULT.exec(raw.replace(/\r$/, ""));
    if (!m) continue;
    const [, status, name, detail] = m;
    if (seen.has(name)) throw new Error(`doctor output: check "${name}" is reported twice`);
    seen.add(name);
    results.push({ name, status: status.toLowerCase() as DoctorStatus, detail: detail ?? "" });
  }
  return results;
}

// ---------------------------------------------------------------------------
// Helpers

const CHECK_NAME = /^[a-z0-9][a-z0-9-]*$/;
const UNIT = /^[A-Za-z0-9:_.@-]+\.(service|timer|socket|target|path|mount)$/;
const RELEASE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

function validate(input: DoctorInput): void {
  const errors: string[] = [];
  const absolute = (field: string, p: string) => {
    if (!p.startsWith("/") || p.includes("\n")) errors.push(`${field}: "${p}" must be an absolute path`);
  };
  const port = (field: string, n: number) => {
    if (!Number.isInteger(n) || n < 1 || n > 65535) errors.push(`${field}: ${n} is not a TCP port`);
  };
  const percent = (field: string, n: number) => {
    if (!Number.isFinite(n) || n < 0 || n > 100) errors.push(`${field}: ${n} must be between 0 and 100`);
  };

  input.units.forEach((u, i) => {
    if (!UNIT.test(u)) errors.push(`units[${i}]: "${u}" is not a systemd unit name`);
  });
  if (input.web) {
    absolute("web.activePortFile", input.web.activePortFile);
    const up = input.web.upstream;
    if (up) {
      if (!/^[a-z][a-z0-9_]{0,62}$/.test(up.table)) {
        errors.push(`web.upstream.table: "${up.table}" is not an nftables table name`);
      }
      port("web.upstream.port", up.port);
      if (!UNIT.test(up.unit)) errors.push(`web.upstream.unit: "${up.unit}" is not a systemd unit name`);
    }
    input.web.templates.forEach((t, i) => {
      if (!UNIT.test(t) || !t.endsWith("@.service")) {
        errors.push(`web.templates[${i}]: "${t}" must be a template unit ending in "@.service"`);
      }
    });
  }
  if (!isHostName(input.health.hostname)) {
    errors.push(`health.hostname: "${input.health.hostname}" is not a hostname`);
  }
  port("health.port", input.health.port);
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/.test(input.health.path)) {
    errors.push(`health.path: "${input.health.path}" must be a URL path starting with "/"`);
  }
  if (input.tlsMode === "cloudflare-origin") {
    if (input.health.caFile === undefined) {
      errors.push(
        `health.caFile: required for tls mode cloudflare-origin: Cloudflare Origin CA certificates are not ` +
          `publicly trusted, so pass the Origin CA root installed on the host (curl -k is refused for this mode)`,
      );
    } else absolute("health.caFile", input.health.caFile);
  }
  const t = input.health.timeoutSeconds;
  if (t !== undefined && (!Number.isInteger(t) || t < 1)) {
    errors.push(`health.timeoutSeconds: ${t} must be a positive integer`);
  }
  const cert = input.certMinSeconds;
  if (cert !== undefined && (!Number.isInteger(cert) || cert < 0)) {
    errors.push(`certMinSeconds: ${cert} must be a non-negative integer`);
  }
  if (input.backup) {
    absolute("backup.dir", input.backup.dir);
    if (!Number.isInteger(input.backup.maxAgeSeconds) || input.backup.maxAgeSeconds < 1) {
      errors.push(`backup.maxAgeSeconds: ${input.backup.maxAgeSeconds} must be a positive integer`);
    }
    if (input.backup.pattern !== undefined && !/^[A-Za-z0-9._*?[\]-]+$/.test(input.backup.pattern)) {
      errors.push(`backup.pattern: "${input.backup.pattern}" must be a file-name glob`);
    }
  }
  if (input.database) {
    absolute("database.file", input.database.file);
    if (!USER.test(input.database.owner)) {
      errors.push(`database.owner: "${input.database.owner}" is not a user name`);
    }
  }
  if (input.disk.paths.length === 0) errors.push(`disk.paths: list at least one path ("/", "/srv")`);
  input.disk.paths.forEach((p, i) => absolute(`disk.paths[${i}]`, p));
  percent("disk.minFreePercent", input.disk.minFreePercent);
  absolute("memory.meminfo", input.memory.meminfo);
  percent("memory.minAvailablePercent", input.memory.minAvailablePercent);
  absolute("release.current", input.release.current);
  if (!RELEASE_ID.test(input.release.expectedId)) {
    errors.push(`release.expectedId: "${input.release.expectedId}" is not a release id`);
  }

  if (errors.length > 0) {
    throw new Error(`doctor: invalid input:\n${errors.map((e, i) => `  ${i + 1}. ${e}`).join("\n")}`);
  }
}

function duration(seconds: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  if (seconds > 0 && seconds % 86400 === 0) return unit(seconds / 86400, "day");
  if (seconds > 0 && seconds % 3600 === 0) return unit(seconds / 3600, "hour");
  return unit(seconds, "second");
}

/**
 * The `balancer` check of a stack behind apphost:lb, from `apphost-lb status`
 * (`host=<h:p> state=serving|drained health=<HTTP status>` per app host):
 * every app host serving and answering its health path with 2xx.
 */
export function balancerCheck(statusOutput: string): DoctorResult {
  const hosts = [...statusOutput.matchAll(/^host=(\S+) state=(\S+) health=(\S*)$/gm)].map((m) => ({
    host: m[1],
    state: m[2],
    health: m[3],
  }));
  if (hosts.length === 0) {
    return { name: "balancer", status: "fail", detail: "apphost-lb status listed no app host" };
  }
  const bad = hosts
    .filter((h) => h.state !== "serving" || !/^2\d\d$/.test(h.health))
    .map(
      (h) =>
        `${h.host} ${h.state !== "serving" ? h.state : `answers its health path with ${h.health || "nothing"}`}`,
    );
  return bad.length === 0
    ? { name: "balancer", status: "pass", detail: "" }
    : { name: "balancer", status: "fail", detail: `${bad.join("; ")} (of ${hosts.length} app hosts)` };
}
