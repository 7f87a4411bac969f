/**
 * The deployment health check ("doctor") as data.
 *
 * `doctorChecks` turns what a deployed stack should look like into a list of
 * small bash programs, one per check, to run on the host as root over SSH.
 * `renderDoctorScript` joins them into one script that runs every check and
 * prints one line each:
 *
 *     PASS <name>
 *     FAIL <name>: <detail>
 *     SKIP <name>: <reason>
 *
 * and exits 1 when any check failed. `parseDoctorOutput` reads those lines
 * back. Nothing here does I/O: the caller decides where the script runs.
 *
 * Contract of one check's `script`: a self-contained bash program (it sets its
 * own `set -euo pipefail`) that exits 0 for pass, 1 for fail and 3 for skip,
 * with the detail or reason as the last line it prints. It reads nothing from
 * stdin, so it can be fed to `bash -s` over SSH.
 */

import * as path from "path";
import type { StackConfig, TlsConfig } from "./config/types";
import { hostLayout, scheduleUnitNames, unitName, upstreamPort, upstreamUnitName } from "./paths";
import { isPostgres } from "./config/defaults";
import { pgEnvFromUrlLines } from "./render/postgres";
import { isHostName, shellQuote } from "./shell";
import { backupUnitNames } from "./render/systemd";

export interface DoctorCheck {
  /** Lowercase id printed in the result line, e.g. `units`, `tls-certificate` */
  name: string;
  /** One sentence: what a PASS guarantees */
  description: string;
  /** Self-contained bash run as root on the host: exit 0 pass, 1 fail, 3 skip; last output line = detail */
  script: string;
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
  };
}

/** Certificates must stay valid this long, unless `certMinSeconds` says otherwise. */
export const DEFAULT_CERT_MIN_SECONDS = 14 * 86400;
/** `tls internal` leaf certificates live 12 hours in Caddy and are renewed at two thirds. */
export const INTERNAL_CERT_MIN_SECONDS = 3600;

const SKIP_EXIT = 3;

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
  const workers = config.app.processes.filter((p) => p.kind === "worker");
  const webs = config.app.processes.filter((p) => p.kind === "web");
  const hostname =
    config.dns.hostnames[0]?.name ?? (config.host.kind === "existing" ? config.host.address : "localhost");
  const db = config.database;
  return {
    units: [
      `${config.proxy.kind}.service`,
      ...(webs.length > 0 ? [upstreamUnitName(layout)] : []),
      ...workers.map((p) => unitName(layout, p.name, "worker")),
    ],
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
    backup:
      db.kind === "none" || follower
        ? undefined
        : {
            dir: layout.backups,
            maxAgeSeconds: opts.backupMaxAgeSeconds ?? backupMaxAgeSeconds(config.backups.schedule),
            sqliteIntegrity: db.kind === "sqlite",
            startUnit: backupUnitNames(layout).service,
            ...(config.backups.s3 ? { service: backupUnitNames(layout).service } : {}),
          },
    database:
      db.kind === "sqlite" ? { file: `${layout.data}/${db.sqliteFile}`, owner: layout.user } : undefined,
    ...(isPostgres(db.kind)
      ? { postgres: { envFile: layout.envFile, name: db.postgresName, onHost: db.kind === "postgres" } }
      : {}),
    disk: { paths: ["/", "/srv"], minFreePercent: 10 },
    memory: { meminfo: "/proc/meminfo", minAvailablePercent: 10 },
    release: { current: layout.current, expectedId: opts.releaseId },
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
    certificateCheck(input),
    backupCheck(input),
    databasePermissionsCheck(input),
    diskCheck(input),
    memoryCheck(input),
    releaseCheck(input),
    ...(input.schedules ?? []).map(scheduleCheck),
  ];
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
    script: script([
      ...prelude("fail"),
      `service=${shellQuote(job.service)}`,
      `timer=${shellQuote(job.timer)}`,
      `state=$(systemctl is-active -- "$timer" 2>/dev/null) || true`,
      `next=$(systemctl show -p NextElapseUSecRealtime --value -- "$timer" 2>/dev/null) || true`,
      `result=$(systemctl show -p Result --value -- "$service" 2>/dev/null) || true`,
      `status=$(systemctl show -p ExecMainStatus --value -- "$service" 2>/dev/null) || true`,
      `ended=$(systemctl show -p ExecMainExitTimestamp --value -- "$service" 2>/dev/null) || true`,
      `[[ $state == active ]] || fail "timer $timer is \${state:-unknown}: the job does not run (systemctl enable --now $timer)"`,
      // While a run goes on, systemd has reset the last run's exit and the timer's next elapse.
      `running=$(systemctl is-active -- "$service" 2>/dev/null) || true`,
      `if [[ $running == activating || $running == active || $running == deactivating ]]; then`,
      `  started=$(systemctl show -p ExecMainStartTimestamp --value -- "$service" 2>/dev/null) || true`,
      `  printf 'info: running now (started %s); its result shows once it ends\n' "\${started:-just now}"`,
      `  exit 0`,
      `fi`,
      `if [[ -z $ended ]]; then`,
      `  printf 'info: not run yet; next run %s\n' "\${next:-unknown}"`,
      `  exit 0`,
      `fi`,
      `[[ $result == success ]] || fail "last run failed ($ended): result $result, exit status $status; see npm run logs -- --process ${job.name}"`,
      `printf 'info: last run %s: success; next run %s\n' "$ended" "\${next:-unknown}"`,
    ]),
  };
}

function unitsCheck(input: DoctorInput): DoctorCheck {
  const lines = [...prelude("fail"), `units=(${input.units.map(shellQuote).join(" ")})`];
  if (input.web && input.web.templates.length > 0) {
    lines.push(
      `port_file=${shellQuote(input.web.activePortFile)}`,
      `port=$(cat -- "$port_file" 2>/dev/null) || fail "cannot read the active web port from $port_file"`,
      `[[ $port =~ ^[0-9]+$ ]] || fail "active web port in $port_file is not a number: $port"`,
      ...input.web.templates.map(
        (t) => `units+=(${shellQuote(t.slice(0, -"@.service".length) + "@")}"$port".service)`,
      ),
    );
  }
  lines.push(
    `command -v systemctl >/dev/null || fail "systemctl not found"`,
    `bad=()`,
    `for unit in "\${units[@]}"; do`,
    `  state=$(systemctl is-active -- "$unit" 2>/dev/null) || true`,
    `  [[ $state == active ]] || bad+=("$unit is \${state:-unknown}")`,
    `done`,
  );
  const up = input.web && input.web.templates.length > 0 ? input.web.upstream : undefined;
  if (up) {
    // The proxy connects to the upstream port; the stack's rule must lead it to the active port.
    lines.push(
      `table=${shellQuote(up.table)}`,
      `upstream_port=${up.port}`,
      `if ! command -v nft >/dev/null; then`,
      `  bad+=("nft not found (apt-get install nftables): cannot check where the upstream port $upstream_port leads")`,
      `elif ! rules=$(nft list table ip "$table" 2>&1); then`,
      `  bad+=("no nftables table ip $table: the upstream port $upstream_port leads nowhere (systemctl restart ${up.unit})")`,
      `elif [[ $rules != *"tcp dport $upstream_port dnat to 127.0.0.1:$port"* ]]; then`,
      `  bad+=("the upstream port $upstream_port does not lead to the active port $port (systemctl restart ${up.unit})")`,
      `fi`,
    );
  }
  lines.push(
    `if ((\${#bad[@]} > 0)); then`,
    `  printf -v detail '%s; ' "\${bad[@]}"`,
    `  fail "\${detail%; }"`,
    `fi`,
  );
  return {
    name: "units",
    description:
      "Every apphost unit, the proxy and the web instance on the active port are active; " +
      "the upstream port leads to the active port.",
    script: script(lines),
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
        ? ["--cacert", shellQuote(input.health.caFile as string)]
        : [];
  const curl = [
    "curl --silent --output /dev/null",
    `--write-out '%{http_code} %{errormsg}'`,
    `--max-time ${input.health.timeoutSeconds ?? 10}`,
    `--resolve ${shellQuote(`${hostname}:${port}:127.0.0.1`)}`,
    ...trust,
  ].join(" ");
  return {
    name: "health",
    description: `${url} answers 2xx through the proxy on this host.`,
    script: script([
      ...prelude("fail"),
      `url=${shellQuote(url)}`,
      `out=$(${curl} "$url" 2>/dev/null) || true`,
      `code=\${out%% *}`,
      `if [[ $code == 000 || -z $code ]]; then`,
      `  fail "no answer from $url via 127.0.0.1:${port}: \${out#* }"`,
      `fi`,
      `[[ $code == 2?? ]] || fail "HTTP $code from $url"`,
    ]),
  };
}

function certificateCheck(input: DoctorInput): DoctorCheck {
  const { hostname, port } = input.health;
  const min =
    input.certMinSeconds ??
    (input.tlsMode === "internal" ? INTERNAL_CERT_MIN_SECONDS : DEFAULT_CERT_MIN_SECONDS);
  const name = "tls-certificate";
  if (input.tlsMode === "off") {
    return {
      name,
      description: "Not applicable: TLS is off.",
      script: script([...prelude("skip"), `skip "n/a: tls off"`]),
    };
  }
  const endpoint = `127.0.0.1:${port}`;
  return {
    name,
    description: `The certificate served for ${hostname} on port ${port} covers that name and stays valid for ${duration(min)} or more.`,
    script: script([
      ...prelude("fail"),
      `host=${shellQuote(hostname)}`,
      `endpoint=${shellQuote(endpoint)}`,
      `command -v openssl >/dev/null || fail "openssl is not installed"`,
      `served=$(timeout 15 openssl s_client -connect "$endpoint" -servername "$host" </dev/null 2>&1) || true`,
      `pem=$(openssl x509 <<<"$served" 2>/dev/null) || fail "no certificate served on $endpoint for $host"`,
      `end=$(openssl x509 -noout -enddate <<<"$pem")`,
      `end=\${end#notAfter=}`,
      `openssl x509 -noout -checkend ${min} <<<"$pem" >/dev/null ||`,
      `  fail "certificate for $host expires $end, less than ${duration(min)} from now"`,
      `match=$(openssl x509 -noout -checkhost "$host" <<<"$pem")`,
      `[[ $match == *"does match"* ]] || fail "certificate served on $endpoint does not cover $host"`,
    ]),
  };
}

function backupCheck(input: DoctorInput): DoctorCheck {
  const name = "backup";
  const b = input.backup;
  if (!b) {
    const why = input.backupElsewhere ? "the first app host keeps the backups" : "no database";
    return {
      name,
      description: `Not applicable: ${why}.`,
      script: script([...prelude("skip"), `skip "n/a: ${why}"`]),
    };
  }
  const lines = [
    ...prelude("fail"),
    ...(b.service
      ? [
          `service=${shellQuote(b.service)}`,
          `if [[ $(systemctl is-failed -- "$service" 2>/dev/null) == failed ]]; then`,
          `  fail "the last run of $service failed (with apphost:backups.s3, often the copy to S3): journalctl -u $service"`,
          `fi`,
        ]
      : []),
    `dir=${shellQuote(b.dir)}`,
    `max_age=${b.maxAgeSeconds}`,
    `[[ -d $dir ]] || fail "backup directory $dir does not exist"`,
    `# SQLite side files (-wal, -shm, -journal) are not backups, whoever left them there.`,
    `newest=$(find "$dir" -maxdepth 1 -type f -name ${shellQuote(b.pattern ?? "*")} ! -name '.*' ! -name '*-wal' ! -name '*-shm' ! -name '*-journal' -printf '%T@ %p\\n' | sort -n | tail -n 1)`,
    `[[ -n $newest ]] || fail "no backup in $dir yet${
      b.startUnit
        ? `; take the first one now: sudo systemctl start ${b.startUnit} (apphost:backups.schedule takes the next ones)`
        : ""
    }"`,
    `stamp=\${newest%% *}`,
    `file=\${newest#* }`,
    `age=$(($(date +%s) - \${stamp%.*}))`,
    `((age <= max_age)) ||`,
    `  fail "newest backup $file is $((age / 3600))h old ($age s), older than the $((max_age / 3600))h ($max_age s) the schedule allows"`,
    `[[ -s $file ]] || fail "newest backup $file is empty"`,
  ];
  if (b.sqliteIntegrity) {
    lines.push(
      `command -v sqlite3 >/dev/null || fail "sqlite3 is not installed; cannot run PRAGMA integrity_check on $file"`,
      `db=$file`,
      `case $file in`,
      `  *.gz | *.zst)`,
      `    db=$(mktemp)`,
      `    trap 'rm -f "$db"' EXIT`,
      `    if [[ $file == *.gz ]]; then unpack=(gzip -dc); else unpack=(zstd -q -dc); fi`,
      `    "\${unpack[@]}" -- "$file" >"$db" 2>/dev/null || fail "cannot decompress $file"`,
      `    ;;`,
      `esac`,
      `# immutable=1: no locks, and no -wal/-shm next to the backup (a WAL-mode copy would get both, even read-only).`,
      `uri=\${db//%/%25}`,
      `uri=\${uri//\\?/%3f}`,
      `uri=\${uri//#/%23}`,
      `result=$(sqlite3 -readonly "file:$uri?immutable=1" 'PRAGMA integrity_check;' 2>&1) ||`,
      `  fail "integrity_check on $file failed: $(head -n 1 <<<"$result")"`,
      `[[ $result == ok ]] || fail "integrity_check on $file: $(head -n 1 <<<"$result")"`,
    );
  }
  return {
    name,
    description:
      (b.service ? `The last run of ${b.service} did not fail; the` : "The") +
      ` newest backup in ${b.dir} is younger than ${duration(b.maxAgeSeconds)}` +
      (b.sqliteIntegrity ? " and passes PRAGMA integrity_check." : "."),
    script: script(lines),
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
    script: script([
      ...prelude("fail"),
      `env_file=${shellQuote(pg.envFile)}`,
      ...(pg.onHost ? [`name=${shellQuote(pg.name)}`] : []),
      `[[ -f $env_file ]] || fail "$env_file does not exist"`,
      ...pgEnvFromUrlLines(pg.envFile, "doctor"),
      `if ! who=$(PGCONNECT_TIMEOUT=5 psql -X -At -c 'select current_user' 2>&1); then`,
      `  fail "the app's role $PGUSER cannot connect to $PGDATABASE on $PGHOST:$PGPORT: $who"`,
      `fi`,
      ...(pg.onHost
        ? [
            "unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE",
            `public=$(runuser -u postgres -- psql -X -At -d "$name" -c "select case when datacl is null then 1 else (select count(*) from aclexplode(datacl) a where a.grantee = 0 and a.privilege_type = 'CONNECT') end from pg_database where datname = current_database()" 2>&1) || fail "cannot read the privileges of $name: $public"`,
            `[[ $public == 0 ]] || fail "every role may connect to $name (PUBLIC has CONNECT); revoke it: runuser -u postgres -- psql -c 'REVOKE CONNECT ON DATABASE $name FROM PUBLIC'"`,
          ]
        : []),
    ]),
  };
}

function databasePermissionsCheck(input: DoctorInput): DoctorCheck {
  const name = "database-permissions";
  const d = input.database;
  if (input.postgres) return postgresConnectionCheck(input.postgres);
  if (!d) {
    return {
      name,
      description: "Not applicable: the stack has no SQLite database.",
      script: script([...prelude("skip"), `skip "n/a: no sqlite database"`]),
    };
  }
  const dir = path.posix.dirname(d.file);
  return {
    name,
    description: `${d.file} is owned by ${d.owner} with mode 0640 or 0600, its directory by ${d.owner} with mode 0750.`,
    script: script([
      ...prelude("fail"),
      `file=${shellQuote(d.file)}`,
      `dir=${shellQuote(dir)}`,
      `owner=${shellQuote(d.owner)}`,
      `[[ -f $file ]] || fail "$file does not exist"`,
      `bad=()`,
      `read -r file_owner file_mode < <(stat -c '%U %a' -- "$file")`,
      `[[ $file_owner == "$owner" ]] || bad+=("$file is owned by $file_owner, not $owner")`,
      `[[ $file_mode == 640 || $file_mode == 600 ]] || bad+=("$file has mode 0$file_mode, not 0640 or 0600")`,
      `read -r dir_owner dir_mode < <(stat -c '%U %a' -- "$dir")`,
      `[[ $dir_owner == "$owner" ]] || bad+=("$dir is owned by $dir_owner, not $owner")`,
      `[[ $dir_mode == 750 ]] || bad+=("$dir has mode 0$dir_mode, not 0750")`,
      `# A sqlite3 shell run as root leaves root-owned side files the app then cannot write.`,
      `for side in "$file-wal" "$file-shm" "$file-journal"; do`,
      `  [[ -e $side ]] || continue`,
      `  side_owner=$(stat -c '%U' -- "$side")`,
      `  [[ $side_owner == "$owner" ]] || bad+=("$side is owned by $side_owner, not $owner")`,
      `done`,
      `if ((\${#bad[@]} > 0)); then`,
      `  printf -v detail '%s; ' "\${bad[@]}"`,
      `  fail "\${detail%; }"`,
      `fi`,
    ]),
  };
}

function diskCheck(input: DoctorInput): DoctorCheck {
  const { paths, minFreePercent: min } = input.disk;
  return {
    name: "disk",
    description: `${paths.join(" and ")} each have ${min}% or more of their space available.`,
    script: script([
      ...prelude("fail"),
      `min=${min}`,
      `bad=()`,
      `for path in ${paths.map(shellQuote).join(" ")}; do`,
      `  if ! line=$(df -Pk -- "$path" 2>/dev/null | awk 'NR == 2 { print $2, $4 }') || [[ -z $line ]]; then`,
      `    bad+=("cannot read the free space of $path")`,
      `    continue`,
      `  fi`,
      `  read -r size avail <<<"$line"`,
      `  free=$((avail * 100 / size))`,
      `  ((free >= min)) || bad+=("$path has $free% free ($((avail / 1024)) MiB), below $min%")`,
      `done`,
      `if ((\${#bad[@]} > 0)); then`,
      `  printf -v detail '%s; ' "\${bad[@]}"`,
      `  fail "\${detail%; }"`,
      `fi`,
    ]),
  };
}

function memoryCheck(input: DoctorInput): DoctorCheck {
  const { meminfo, minAvailablePercent: min } = input.memory;
  return {
    name: "memory",
    description: `MemAvailable is ${min}% or more of MemTotal.`,
    script: script([
      ...prelude("fail"),
      `meminfo=${shellQuote(meminfo)}`,
      `min=${min}`,
      `total=$(awk '$1 == "MemTotal:" { print $2 }' "$meminfo" 2>/dev/null) || true`,
      `avail=$(awk '$1 == "MemAvailable:" { print $2 }' "$meminfo" 2>/dev/null) || true`,
      `[[ $total =~ ^[1-9][0-9]*$ && $avail =~ ^[0-9]+$ ]] || fail "cannot read MemTotal and MemAvailable from $meminfo"`,
      `pct=$((avail * 100 / total))`,
      `((pct >= min)) ||`,
      `  fail "MemAvailable is $pct% of MemTotal ($((avail / 1024)) of $((total / 1024)) MiB), below $min%"`,
    ]),
  };
}

function releaseCheck(input: DoctorInput): DoctorCheck {
  const { current, expectedId } = input.release;
  return {
    name: "release",
    description: `${current} points to release ${expectedId}.`,
    script: script([
      ...prelude("fail"),
      `current=${shellQuote(current)}`,
      `expected=${shellQuote(expectedId)}`,
      `target=$(readlink -- "$current") || fail "$current is not a symlink"`,
      `live=$(basename -- "$target")`,
      `[[ $live == "$expected" ]] || fail "live release is $live, expected $expected"`,
      `[[ -d $current/ ]] || fail "$current points to $target, which does not exist"`,
    ]),
  };
}

// ---------------------------------------------------------------------------
// The runner

export interface RenderDoctorOptions {
  /** Seconds one check may run before it counts as failed. @default 60 */
  timeoutSeconds?: number;
}

/**
 * One bash script that runs every check in its own process (with a timeout
 * and stdin closed), prints one result line per check and exits 1 when any
 * check failed, 0 otherwise.
 */
export function renderDoctorScript(checks: DoctorCheck[], opts: RenderDoctorOptions = {}): string {
  const seen = new Set<string>();
  for (const c of checks) {
    if (!CHECK_NAME.test(c.name)) {
      throw new Error(`doctor: check name "${c.name}" must match ${CHECK_NAME} (it is printed before ": ")`);
    }
    if (seen.has(c.name)) throw new Error(`doctor: check name "${c.name}" is used twice`);
    seen.add(c.name);
  }
  const timeout = opts.timeoutSeconds ?? 60;
  const functions = checks.flatMap((c, i) => [
    `# ${c.name}: ${c.description.replace(/\n/g, " ")}`,
    `# shellcheck disable=SC2317 # called through apphost_doctor_run`,
    `apphost_check_${i}() {`,
    c.script.trimEnd(),
    `}`,
    ``,
  ]);
  const runs = checks.map((c, i) => `apphost_doctor_run ${shellQuote(c.name)} apphost_check_${i}`);
  return [
    `#!/usr/bin/env bash`,
    `# apphost doctor: one line per check, "PASS <name>", "FAIL <name>: <detail>"`,
    `# or "SKIP <name>: <reason>"; exits 1 when any check failed.`,
    `set -uo pipefail`,
    ``,
    ...functions,
    `failed=0`,
    ``,
    `apphost_doctor_run() {`,
    `  local name=$1 fn=$2 out rc detail`,
    `  export -f "\${fn?}"`,
    `  out=$(timeout ${timeout} bash -c "$fn" </dev/null 2>&1)`,
    `  rc=$?`,
    `  detail=$(tr -d '\\r' <<<"$out" | awk 'NF { line = $0 } END { print line }')`,
    `  detail=\${detail:0:400}`,
    `  case $rc in`,
    `    0) if [[ $detail == "info: "* ]]; then printf 'PASS %s: %s\\n' "$name" "\${detail#info: }"; else printf 'PASS %s\\n' "$name"; fi ;;`,
    `    ${SKIP_EXIT}) printf 'SKIP %s: %s\\n' "$name" "\${detail:-skipped}" ;;`,
    `    124) printf 'FAIL %s: timed out after ${timeout}s\\n' "$name" && failed=1 ;;`,
    `    *) printf 'FAIL %s: %s\\n' "$name" "\${detail:-exit status $rc}" && failed=1 ;;`,
    `  esac`,
    `}`,
    ``,
    ...runs,
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

function prelude(...helpers: ("fail" | "skip")[]): string[] {
  return [
    "set -euo pipefail",
    ...helpers.map((h) =>
      h === "fail"
        ? `fail() { printf '%s\\n' "$*"; exit 1; }`
        : `skip() { printf '%s\\n' "$*"; exit ${SKIP_EXIT}; }`,
    ),
  ];
}

function script(lines: string[]): string {
  return lines.join("\n") + "\n";
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
