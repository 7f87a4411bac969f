/**
 * The stack's user and directory tree on a host: the command that creates
 * them, and its exact mirror for destroy, which keeps the data and backups
 * (moved aside, never deleted). Pure: commands as text, run by App's layout step.
 */
import { posix } from "path";
import { isPostgres } from "../config/defaults";
import type { DatabaseConfig, ProxyConfig } from "../config/types";
import { sqlitePath } from "../release/backup";
import { TIMER_STAMP_DIR, UNIT_DIR, unitName, upstreamPort, webPorts, type HostLayout } from "../paths";
import { shellQuote as q } from "../shell";
import { deleteUpstreamTables } from "./nftables";
import {
  disableUnitsCommand,
  dropInRemoval,
  stackUnitPatterns,
  stackUnits,
  type StackUnitsInput,
} from "./systemd";
import { acmeWebroot, caddyAccessLog, HOST_DIRS, nginxLogs, proxyCommands, type HostDirs } from "./common";

/** Where `pulumi destroy` moves a stack's data and backups: `/var/lib/apphost/kept/<id>-<UTC stamp>`. */
export const KEPT_DIR = "/var/lib/apphost/kept";

/**
 * The stack's logs that its proxy writes outside `/srv/<id>`, rotations
 * included: Caddy's access log and nginx's two (both, whichever proxy the stack
 * has now: it may have had the other). A find expression, for moving or deleting them.
 */
export function proxyLogsFind(layout: HostLayout, dirs: HostDirs = HOST_DIRS): string {
  const nginx = nginxLogs(layout, dirs);
  const names = [caddyAccessLog(layout, dirs), nginx.access, nginx.error]
    .map((file) => `-name ${q(`${posix.basename(file)}*`)}`)
    .join(" -o ");
  return `find ${q(dirs.caddyLogs)} ${q(dirs.nginxLogs)} -maxdepth 1 -type f \\( ${names} \\)`;
}

/**
 * What the layout step and the destroy look at on the host besides the paths
 * of HostLayout: the unit files, /proc, and Caddy's process. The unit tests
 * point them at a temp tree and stand-ins.
 */
export interface HostProbe {
  unitDir: string;
  proc: string;
  /** Prints Caddy's main pid, or 0 when it does not run */
  caddyPid: string;
}
const HOST_PROBE: HostProbe = {
  unitDir: UNIT_DIR,
  proc: "/proc",
  caddyPid: "systemctl show -p MainPID --value caddy",
};

/**
 * On destroy, first: Caddy does not reopen its log files on a reload
 * (caddyserver/caddy#5316; seen with 2.6.2): while it runs it holds the
 * stack's access log open after the site is gone, and a stack deployed again
 * under this name logs into that same open file. So a log Caddy holds is
 * copied and emptied, never moved (the next stack's lines went into the kept
 * data) or deleted (they went nowhere). Sets `caddy_log`, `caddy_held` (1 when
 * Caddy holds it) and `skip` (find arguments that leave it out) for
 * keepDataCommands and strayFilesCommands.
 */
export function caddyLogCommands(
  layout: HostLayout,
  dirs: HostDirs = HOST_DIRS,
  tools: Pick<HostProbe, "proc" | "caddyPid"> = HOST_PROBE,
): string[] {
  return [
    `caddy_log=${q(caddyAccessLog(layout, dirs))} caddy_held='' skip=()`,
    `caddy_pid=$(${tools.caddyPid} 2>/dev/null || true)`,
    `if [ -f "$caddy_log" ] && [ "\${caddy_pid:-0}" != 0 ] && [ -n "$(find ${q(tools.proc)}/"$caddy_pid"/fd -lname "$caddy_log" -print -quit 2>/dev/null)" ]; then caddy_held=1 skip=(! -path "$caddy_log"); fi`,
  ];
}

/**
 * On destroy: when shared/data or shared/backups holds anything, move shared/
 * to KEPT_DIR under a dated name, with the proxy's logs of the stack in its
 * logs/, owned by root (the app user is deleted next, and a later user could
 * get its uid), and say where. Nothing is deleted.
 */
export function keepDataCommands(layout: HostLayout): string[] {
  const shared = q(layout.shared);
  return [
    "kept=",
    `if [ -n "$(find ${q(layout.data)} ${q(layout.backups)} -mindepth 1 -print -quit 2>/dev/null)" ]; then`,
    `  kept=${KEPT_DIR}/${layout.id}-$(date -u +%Y%m%dT%H%M%SZ)`,
    `  install -d -m 0700 ${KEPT_DIR}`,
    `  mv ${shared} "$kept"`,
    '  install -d "$kept/logs"',
    '  if [ -n "$caddy_held" ]; then cp -p "$caddy_log" "$kept/logs/" && truncate -s 0 "$caddy_log"; fi',
    // A missing log directory makes find fail too: what is left over says whether a move failed.
    `  ${proxyLogsFind(layout)} "\${skip[@]}" -exec mv -t "$kept/logs" {} + 2>/dev/null || true`,
    `  if [ -n "$(${proxyLogsFind(layout)} "\${skip[@]}" -print -quit 2>/dev/null)" ]; then echo "apphost: warning: not every proxy log of ${layout.id} moved to $kept/logs; the rest stay where they are" >&2; fi`,
    '  chown -R -h root:root "$kept"',
    `  echo "apphost: kept the data and backups of ${layout.id} in $kept (destroy never deletes them); delete that directory when you no longer need it" >&2`,
    "fi",
  ];
}

/**
 * On destroy, after keepDataCommands: what else the stack left outside
 * `/srv/<id>`: the proxy's logs of it (when no data was kept, `$kept` unset), the
 * certbot webroot, and the stamps systemd keeps for its `Persistent=` timers.
 */
export function strayFilesCommands(
  layout: HostLayout,
  units: readonly string[],
  dirs: HostDirs = HOST_DIRS,
): string[] {
  const stamps = units.filter((u) => u.endsWith(".timer")).map((u) => `${TIMER_STAMP_DIR}/stamp-${u}`);
  return [
    // With kept data, the logs went with it; one that would not move is left, never deleted.
    `if [ -z "\${kept:-}" ]; then`,
    '  if [ -n "$caddy_held" ]; then truncate -s 0 "$caddy_log"; fi',
    `  ${proxyLogsFind(layout, dirs)} "\${skip[@]}" -delete 2>/dev/null || true`,
    "fi",
    `rm -rf --one-file-system ${q(acmeWebroot(layout, dirs))}`,
    `rm -f ${stamps.join(" ")}`,
  ];
}

/**
 * `port_listener <port>`: `<pid> <unit>` of a process listening on TCP
 * <port>, or nothing when none listens. The unit (or scope) is the last part
 * of the listener's cgroup path: the unified hierarchy's
 * (`0::/system.slice/…/apphost-<id>-web@8000.service`), else the v1
 * `name=systemd` one's; empty for a root path. The layout step's port claim
 * and the release script's health gate both define and call it; `ss` and
 * `proc` are the release harness's stand-ins.
 */
export function portListenerFunction(tools: ListenerTools = LISTENER_TOOLS): string[] {
  return [
    // In bash past ss: the health gate asks at each try while an instance does not answer.
    "port_listener() {",
    "  local found pid line unit",
    `  found=$(${q(tools.ss)} -Hltnp "sport = :$1" 2>/dev/null) || true`,
    "  if [[ ! $found =~ pid=([0-9]+) ]]; then return 0; fi",
    "  pid=${BASH_REMATCH[1]}",
    ...unitOfPid(tools).map((l) => `  ${l}`),
    `  printf '%s %s\\n' "$pid" "$unit"`,
    "}",
  ];
}

/** `ss` and `/proc`, or the release harness's stand-ins. */
export interface ListenerTools {
  ss: string;
  proc: string;
}

const LISTENER_TOOLS: ListenerTools = { ss: "ss", proc: "/proc" };

/**
 * Sets `unit` to the unit of the process "$pid": the last part of its cgroup path (the first line, unified or v1's
 * `name=systemd`, whose path does not end in a slash), or nothing. In bash: no process of its own.
 */
function unitOfPid(tools: ListenerTools): string[] {
  return [
    'unit=""',
    'while IFS= read -r line || [ -n "$line" ]; do',
    '  case "$line" in 0::/* | [0-9]*:name=systemd:/*) if [ -n "${line##*/}" ]; then unit=${line##*/}; break; fi ;; esac',
    `done 2>/dev/null <${q(tools.proc)}/"$pid"/cgroup || true`,
  ];
}

/**
 * `unit_listens <unit>`: the local addresses (`127.0.0.1:8000`) where a
 * process of <unit> listens on TCP, one a line, or nothing. The health gate
 * reads it when the new instance does not answer on its port: a server on a
 * port of its own is named at once, rather than after the whole timeout.
 */
export function unitListensFunction(tools: ListenerTools = LISTENER_TOOLS): string[] {
  return [
    "unit_listens() {",
    "  local addr users pid line unit",
    `  ${q(tools.ss)} -Hltnp 2>/dev/null | while read -r _ _ _ addr _ users; do`,
    "    while read -r pid; do",
    ...unitOfPid(tools).map((l) => `      ${l}`),
    `      if [ "$unit" = "$1" ]; then printf '%s\\n' "$addr"; break; fi`,
    "    done < <(grep -o 'pid=[0-9]*' <<<\"$users\" | cut -d= -f2)",
    "  done | sort -u",
    "}",
  ];
}

/**
 * `unit_replaced <unit>`: the files a process of <unit> runs that a package
 * upgrade replaced after it started, their names sorted on one line, or
 * nothing. dpkg unpacks a new version beside a file and renames it over the
 * old one, which a running process keeps mapped, and the kernel then names
 * `(deleted)`: an executable mapping of such a file from the system's
 * directories is an old shared library (libssl, libc) or interpreter still
 * running. Its processes are those whose cgroup (unified, else v1's
 * `name=systemd`) ends in the unit's name. The release script's status reports
 * them as drift, and the doctor's units check fails on them.
 */
export function unitReplacedFunction(tools: Pick<ListenerTools, "proc"> = LISTENER_TOOLS): string[] {
  const system = "^\\/(usr\\/)?(lib|lib32|lib64|libx32|bin|sbin)\\/";
  return [
    "unit_replaced() {",
    "  local re=${1//./\\\\.} cgroups=()",
    `  mapfile -t cgroups < <(grep -lE -e "^0::(/.*)?/$re\\$" -e "^[0-9]+:name=systemd:(/.*)?/$re\\$" ${q(tools.proc)}/[0-9]*/cgroup 2>/dev/null || true)`,
    '  if [ "${#cgroups[@]}" -eq 0 ]; then return 0; fi',
    `  { cat "\${cgroups[@]/%cgroup/maps}" 2>/dev/null || true; } | awk '$2 ~ /x/ && $NF == "(deleted)" && $6 ~ /${system}/ { n = split($6, p, "/"); print p[n] }' | sort -u | paste -sd ' ' -`,
    "}",
  ];
}

export interface PortClaimInput {
  /** apphost:app.basePort: the web ports are it and the next, the upstream port the one after */
  basePort: number;
  /** The web process's name (its unit is `<unitPrefix>-<web>@<port>.service`). @default "web" */
  web?: string;
}

/**
 * The stack's three ports (its two web ports and the upstream port) are its
 * own on this host, checked before the stack's user, files or units exist: no
 * other stack claims one of them (`<id>.ports` beside the env files), and
 * nothing but this stack's web unit of that port listens on one (a service
 * of the machine, or a stack deployed before the claims; an instance of the
 * web process under a former name is the stack's own, and stops once the
 * release has switched). Two stacks on one
 * port would each start its instance beside the other's, and the health gate
 * would take the other app's answer for the new release's. A refusal lists
 * every taken port and suggests a free base port, and sets `refused`
 * (claimCommands writes no claim then).
 */
export function portClaimCommands(
  layout: HostLayout,
  input: PortClaimInput,
  host: Pick<HostProbe, "unitDir" | "proc"> = HOST_PROBE,
): string[] {
  const ports = [...webPorts(input.basePort), upstreamPort(input.basePort)];
  const [a, b, up] = ports;
  // Every stack's claim on this host, this one's included, sits beside this one's.
  const claimsDir = posix.dirname(layout.portsFile);
  // `apphost-<id>-<web process>@` and the port make the unit of this stack's instance on it.
  const ours = unitName(layout, input.web ?? "web", "web").replace(/\.service$/, "");
  return [
    `ports=(${ports.join(" ")})`,
    "taken=()",
    `for f in ${claimsDir}/*.ports; do`,
    `  if [ ! -f "$f" ] || [ "$f" = ${q(layout.portsFile)} ]; then continue; fi`,
    '  read -ra claimed <"$f" || true',
    '  for p in "${claimed[@]}"; do',
    '    case " ${ports[*]} " in *" $p "*) taken+=("$p is claimed by the stack $(basename "$f" .ports) on this host") ;; esac',
    "  done",
    "done",
    ...portListenerFunction({ ss: "ss", proc: host.proc }),
    'for p in "${ports[@]}"; do',
    '  listener=$(port_listener "$p")',
    '  if [ -z "$listener" ]; then continue; fi',
    "  pid=${listener%% *} unit=${listener#* }",
    `  if [ "$unit" = "${ours}$p.service" ]; then continue; fi`,
    // An instance of a web process this stack had under another name (renamed): its template is this stack's.
    '  if [ "${unit%@*}" != "$unit" ]; then',
    `    case "$(head -n 1 ${q(host.unitDir)}/"\${unit%@*}@.service" 2>/dev/null || true)" in ${q(`# apphost ${layout.id}: `)}*) continue ;; esac`,
    "  fi",
    `  taken+=("$p is listened on by $(cat ${q(host.proc)}/"$pid/comm" 2>/dev/null || echo a process) (pid $pid\${unit:+, $unit})")`,
    "done",
    'if [ "${#taken[@]}" -gt 0 ]; then',
    // Every port listened on or claimed, to suggest a base port whose three are none of them.
    `  used=" $(ss -Hltn | awk '{ n = split($4, a, ":"); print a[n] }' | tr '\\n' ' ' || true) $(cat ${claimsDir}/*.ports 2>/dev/null | tr '\\n' ' ' || true) "`,
    "  free=",
    `  for n in $(seq ${input.basePort + 100} 100 65400); do`,
    '    case "$used" in *" $n "* | *" $((n + 1)) "* | *" $((n + 2)) "*) ;; *) free=$n; break ;; esac',
    "  done",
    "  {",
    `    echo "apphost:app.basePort: this stack's ports ${a}, ${b} (web) and ${up} (upstream) are not all free on this host:"`,
    "    printf '  - %s\\n' \"${taken[@]}\"",
    `    echo "Give the stack ports of its own, e.g.: pulumi config set --path 'apphost:app.basePort' \${free:-<a free port>}"`,
    "  } >&2",
    "  refused=1",
    "fi",
  ];
}

/**
 * The names of the stack's systemd units are its own on this host. A unit is
 * `apphost-<id>-<name>`, and ids are `<app>-<stack>`, so a process `eu-web`
 * of the stack shop-prod names the unit of the stack shop-prod-eu's `web`:
 * its unit file would replace the other's, and each stack would start, stop
 * and destroy the other's processes. Refused when another stack claims the
 * name (`<id>.units` beside the ports), or when its unit file exists and this
 * stack did not write it (its first line is not `# apphost <id>: `; a stack
 * deployed before the claims, or a unit of the machine). A refusal names each
 * unit and the key that makes it, and sets `refused`.
 */
export function unitClaimCommands(
  layout: HostLayout,
  app: StackUnitsInput,
  { unitDir }: Pick<HostProbe, "unitDir"> = HOST_PROBE,
): string[] {
  const units = stackUnits(layout, app);
  const claimsDir = posix.dirname(layout.unitsFile);
  return [
    `units=(${units.map((u) => q(u.unit)).join(" ")})`,
    `froms=(${units.map((u) => q(u.from)).join(" ")})`,
    "taken=()",
    'for i in "${!units[@]}"; do',
    "  u=${units[$i]} owner=",
    `  for f in ${claimsDir}/*.units; do`,
    `    if [ -f "$f" ] && [ "$f" != ${q(layout.unitsFile)} ] && grep -qxF -- "$u" "$f"; then owner=$(basename "$f" .units); break; fi`,
    "  done",
    '  if [ -n "$owner" ]; then',
    '    taken+=("$u (${froms[$i]}) is claimed by the stack $owner on this host")',
    `  elif [ -f ${q(unitDir)}/"$u" ]; then`,
    `    first=$(head -n 1 ${q(unitDir)}/"$u")`,
    `    case "$first" in ${q(`# apphost ${layout.id}: `)}*) ;; *) taken+=("$u (\${froms[$i]}) is a unit file this stack did not write: ${unitDir}/$u begins \\"$first\\"") ;; esac`,
    "  fi",
    "done",
    'if [ "${#taken[@]}" -gt 0 ]; then',
    "  {",
    `    echo "apphost:app.processes: this stack's systemd units are not all its own on this host:"`,
    "    printf '  - %s\\n' \"${taken[@]}\"",
    `    echo "Each unit is named ${layout.unitPrefix}-<process> (a scheduled job's: -schedule-<name>), and another stack's id can start with ${layout.id}- (a process eu-web here names the web unit of a stack ${layout.id}-eu): rename the process or scheduled job, or deploy the stacks to different hosts."`,
    "  } >&2",
    "  refused=1",
    "fi",
  ];
}

/**
 * The stack's claims on this host: its ports and its units' names. Every
 * refusal is printed, then the step fails with nothing written; otherwise both
 * claims are (re)written.
 */
export function claimCommands(
  layout: HostLayout,
  input: PortClaimInput & { app: StackUnitsInput },
  host: Pick<HostProbe, "unitDir" | "proc"> = HOST_PROBE,
): string[] {
  return [
    "refused=0",
    ...portClaimCommands(layout, input, host),
    ...unitClaimCommands(layout, input.app, host),
    'if [ "$refused" = 1 ]; then exit 1; fi',
    `install -d -m 0755 ${[...new Set([layout.portsFile, layout.unitsFile].map(posix.dirname))].map(q).join(" ")}`,
    `echo "\${ports[*]}" >${q(layout.portsFile)}`,
    `printf '%s\\n' "\${units[@]}" >${q(layout.unitsFile)}`,
  ];
}

/**
 * A stack moved from SQLite to a Postgres kind (postgres, rds, external) while its SQLite database holds
 * tables is refused before anything of the new kind is used: apphost does not move data between databases,
 * and the app would start on an empty one while the data sat unused beside it. The way on: move the data,
 * then rename the file (it is never deleted), or set the kind back. A file of one page (no table) or none
 * passes. Tables are counted by SQLite's header (the database size in pages, at byte 28): no sqlite3 needed
 * on a host that no longer runs SQLite.
 */
export function databaseSwitchCommands(
  layout: HostLayout,
  database: Pick<DatabaseConfig, "kind" | "sqliteFile">,
): string[] {
  if (!isPostgres(database.kind)) return [];
  const file = sqlitePath(layout, database);
  return [
    `if [ -f ${q(file)} ] && [ "$(head -c 15 ${q(file)} 2>/dev/null)" = "SQLite format 3" ]; then`,
    `  pages=$(od -An -tu1 -j28 -N4 ${q(file)} | awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }')`,
    `  if [ "\${pages:-0}" -gt 1 ]; then`,
    `    echo "apphost: apphost:database.kind is ${database.kind}, but this stack's SQLite database ${file} holds data ($(du -h ${q(file)} | cut -f1)): apphost does not move data between databases, and the app would start on an empty one. Move the data into ${database.kind === "postgres" ? "the stack's Postgres database" : "the database DATABASE_URL names"} yourself (pgloader, or a dump and load), then rename the file (mv ${file} ${file}.moved; it is never deleted) and run pulumi up again (docs/config.md, From SQLite to Postgres); or set apphost:database.kind back to sqlite. Nothing of the release changed." >&2`,
    "    exit 1",
    "  fi",
    "fi",
  ];
}

/**
 * Units read the env their instance was started with (`instances/<port>.env`, `instances/live.env`), copies the
 * release script makes. A host deployed before those copies has instances without one: before `pulumi up` writes
 * the new env file and units, each running instance, and the live release, gets a copy of the env file as it is
 * now, the env it runs with.
 */
export function envCopyBackfill(layout: HostLayout): string[] {
  const copy = (to: string) => `install -m 0640 -o root -g ${q(layout.user)} ${q(layout.envFile)} ${to}`;
  return [
    `if [ -e ${q(layout.envFile)} ] && [ -d ${q(layout.instances)} ]; then`,
    `  for link in ${q(layout.instances)}/*; do`,
    `    if [ -L "$link" ] && [ ! -e "$link.env" ]; then ${copy('"$link.env"')}; fi`,
    "  done",
    `  if [ -e ${q(layout.current)} ] && [ ! -e ${q(layout.liveEnv)} ]; then ${copy(q(layout.liveEnv))}; fi`,
    "fi",
  ];
}

/** The command that creates the stack's user and layout, and its exact mirror for destroy. */
export function layoutCommands(
  layout: HostLayout,
  input: {
    proxy: Pick<ProxyConfig, "kind">;
    database?: Pick<DatabaseConfig, "kind" | "sqliteFile">;
    /** The stack's processes and scheduled jobs: destroy names each of their units */
    app: StackUnitsInput;
  } & PortClaimInput,
): { create: string; delete: string } {
  const cmd = proxyCommands(input.proxy.kind);
  // Written by apphost versions that switched by rewriting it and reloading the proxy.
  const legacyUpstreamFile = input.proxy.kind === "caddy" ? layout.caddyUpstream : layout.nginxUpstream;
  const units = stackUnitPatterns(layout, input.app);
  const patterns = units.map(q).join(" ");
  return {
    create: [
      "set -euo pipefail",
      ...claimCommands(layout, input),
      ...(input.database ? databaseSwitchCommands(layout, input.database) : []),
      `if ! id -u ${q(layout.user)} >/dev/null 2>&1; then`,
      `  useradd --system --user-group --home-dir ${q(layout.root)} --no-create-home --shell /usr/sbin/nologin ${q(layout.user)}`,
      "fi",
      `install -d -m 0755 ${q(layout.root)} ${q(layout.bin)}`,
      ...envCopyBackfill(layout),
      "",
    ].join("\n"),
    delete: [
      "set -euo pipefail",
      disableUnitsCommand(units),
      // The stack's nftables tables (its upstream switch and the web ports' guard); only this stack's.
      `if command -v nft >/dev/null; then ${deleteUpstreamTables(layout)
        .map((args) => `nft ${args} 2>/dev/null || true`)
        .join("; ")}; fi`,
      `rm -f ${q(legacyUpstreamFile)} ${q(layout.envFile)} ${q(layout.portsFile)} ${q(layout.unitsFile)}`,
      // The data and its backups outlive the stack: moved aside (root's alone, the app user is going), never deleted.
      ...caddyLogCommands(layout),
      ...keepDataCommands(layout),
      ...strayFilesCommands(layout, units),
      ...input.app.processes.map((p) => dropInRemoval(unitName(layout, p.name, p.kind))),
      `rm -rf --one-file-system ${q(layout.root)}`,
      `if id -u ${q(layout.user)} >/dev/null 2>&1; then userdel ${q(layout.user)}; fi`,
      `if getent group ${q(layout.user)} >/dev/null; then groupdel ${q(layout.user)}; fi`,
      "systemctl daemon-reload",
      // A timer whose service went first is left "failed"; forget it.
      `systemctl reset-failed ${patterns} 2>/dev/null || true`,
      `${cmd.validate} >/dev/null && ${cmd.reload}`,
      "",
    ].join("\n"),
  };
}
