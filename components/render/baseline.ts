/**
 * The host baseline: one bash script, run as root on every deploy. Each
 * step checks before it changes anything, so a second run changes nothing.
 *
 * 0. one proxy per host: another program on the proxy's ports is refused;
 * 1. packages (apt-get only when dpkg-query says one is missing);
 * 2. unattended upgrades, security only;
 * 3. sshd: key-only logins via a drop-in, `sshd -t` before `systemctl reload ssh`;
 * 4. time sync (systemd-timesyncd, unless another NTP daemon is installed);
 * 5. a swap file of `apphost:host.swapMb` MiB.
 */
import type {
  AppConfig,
  BackupsConfig,
  DatabaseConfig,
  HostConfig,
  ProcessConfig,
  ProxyConfig,
  TlsConfig,
} from "../config/types";
import { isRemotePostgres } from "../config/defaults";
import { processRuntime } from "./systemd";
import { managedBy } from "./common";
import { APPHOST_ETC } from "../paths";
import { assertSafe, SAFE } from "../shell";

export interface BaselineInput {
  /** `swapMb`: size of /swapfile in MiB; 0 creates none (and removes nothing) */
  host: Pick<HostConfig, "swapMb">;
  /**
   * apphost:proxy: the proxy this stack runs (`kind`) and the ports it listens on (`ports`: apphost:proxy.httpPort,
   * and httpsPort unless apphost:tls.mode is off), which no other program may hold
   */
  proxy: { kind: ProxyConfig["kind"]; ports: readonly number[] };
  /** Debian packages the stack needs at run time; see runtimePackages() */
  packages: string[];
}

export interface RuntimePackagesInput {
  proxy: Pick<ProxyConfig, "kind">;
  app: Pick<AppConfig, "runtime" | "build"> &
    Partial<Pick<AppConfig, "sharedUrls">> & { processes?: Pick<ProcessConfig, "command">[] };
  tls: Pick<TlsConfig, "mode">;
  database: Pick<DatabaseConfig, "kind">;
  /** `s3`: the backup copies to S3 with awscli */
  backups: Pick<BackupsConfig, "s3">;
  /** `packages`: the stack's own additions (apphost:host.packages), after the ones it needs */
  host?: { packages?: readonly string[] };
}

/** Packages the baseline always ensures: TLS roots, curl for health checks, unattended-upgrades. */
export const BASE_PACKAGES = ["ca-certificates", "curl", "unattended-upgrades"];

/**
 * A build command that runs node tools (`npm ci && npm run build`, `npx vite build`, `yarn build`). Bun too: npm
 * installs it, and the scripts it runs start node where their shebang says so (vite's bin).
 */
const NODE_TOOLS = /(^|[\s;&|(])(npm|npx|node|yarn|pnpm|corepack|bunx?)(\s|$)/;

/** Debian 12 packages a stack needs, in a stable order. */
export function runtimePackages(input: RuntimePackagesInput): string[] {
  // nft: each stack's upstream switch (components/render/nftables.ts).
  const p: string[] = [input.proxy.kind === "caddy" ? "caddy" : "nginx", "nftables"];
  if (input.app.runtime === "python") p.push("python3", "python3-venv");
  // Node apps, and python apps whose build step runs node tools (a frontend), need node and npm.
  if (input.app.runtime === "node" || (input.app.build && NODE_TOOLS.test(input.app.build)))
    p.push("nodejs", "npm");
  // A Node process beside a Python app (`node heartbeat.js`) needs node only.
  if ((input.app.processes ?? []).some((x) => processRuntime(x.command, input.app.runtime) === "node"))
    p.push("nodejs");
  if (input.database.kind === "sqlite") p.push("sqlite3");
  if (input.database.kind === "postgres") p.push("postgresql");
  // RDS: pg_dump, pg_restore and psql for the pre-migration backups and restores.
  if (isRemotePostgres(input.database.kind)) p.push("postgresql-client");
  if (input.tls.mode === "certbot") p.push("certbot");
  // setfacl: the proxy's user reads what the app writes in a directory apphost:app.sharedUrls serves.
  if (Object.keys(input.app.sharedUrls ?? {}).length > 0) p.push("acl");
  // Debian 12's AWS CLI v2; it takes the instance role's credentials from IMDSv2.
  if (input.backups.s3) p.push("awscli");
  p.push(...(input.host?.packages ?? []));
  return [...new Set(p)];
}

/** `/etc/apt/apt.conf.d/21apphost-auto-upgrades`: the daily apt timers refresh lists and run unattended-upgrade. */
export function renderAutoUpgradesConf(): string {
  return [
    `// ${managedBy("baseline.ts")}`,
    "// Read after Debian's 20auto-upgrades, so these values win.",
    'APT::Periodic::Update-Package-Lists "1";',
    'APT::Periodic::Unattended-Upgrade "1";',
    "",
  ].join("\n");
}

/**
 * `/etc/apt/apt.conf.d/52apphost-unattended-upgrades`: security updates only.
 * Debian's 50unattended-upgrades also allows point-release updates
 * (label=Debian); `#clear` empties both origin lists before ours. One
 * pattern per distribution: the other never matches.
 */
export function renderUnattendedUpgradesConf(): string {
  return [
    `// ${managedBy("baseline.ts")}`,
    "// Only security updates are installed unattended.",
    "#clear Unattended-Upgrade::Allowed-Origins;",
    "#clear Unattended-Upgrade::Origins-Pattern;",
    "Unattended-Upgrade::Origins-Pattern {",
    '        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";',
    '        "origin=Ubuntu,archive=${distro_codename}-security,label=Ubuntu";',
    "};",
    "",
  ].join("\n");
}

/** `/etc/ssh/sshd_config.d/00-apphost.conf`: sshd keeps the first value it reads, and 00 sorts first. */
export function renderSshdDropin(): string {
  return [
    `# ${managedBy("baseline.ts")}`,
    "# Key-only logins. sshd keeps the first value it reads; this file sorts first.",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "",
  ].join("\n");
}

export const SSHD_DROPIN_PATH = "/etc/ssh/sshd_config.d/00-apphost.conf";
export const AUTO_UPGRADES_PATH = "/etc/apt/apt.conf.d/21apphost-auto-upgrades";
export const UNATTENDED_UPGRADES_PATH = "/etc/apt/apt.conf.d/52apphost-unattended-upgrades";

/** A quoted heredoc never expands anything, so the file lands byte for byte. */
function heredoc(content: string): string[] {
  if (content.split("\n").includes("APPHOST_EOF")) throw new Error("heredoc terminator inside content");
  return [...content.replace(/\n$/, "").split("\n"), "APPHOST_EOF"];
}

/**
 * Step 0: a host runs one proxy, on the ports every apphost stack on it shares. Another program listening there
 * (the other proxy, which the host's other stacks use; apache2) keeps this one from starting once it is installed
 * (`nginx: [emerg] bind() to [::]:80 failed`, after apt installed it): refused first, naming it, the stacks on the
 * host (APPHOST_ETC/<id>.units) and what to set.
 */
function oneProxyStep(proxy: BaselineInput["proxy"]): string[] {
  const ports = proxy.ports;
  const filter = ports.map((p) => `sport = :${p}`).join(" or ");
  return [
    "# 0. One proxy per host: nothing but this stack's proxy listens on its ports.",
    `proxy=${proxy.kind}`,
    "if command -v ss >/dev/null; then",
    `  others=$(ss -Hltnp '( ${filter} )' | grep -oE 'users:\\(\\("[^"]+"' | cut -d'"' -f2 | sort -u | grep -vx "$proxy" | paste -sd' ' -) || true`,
    '  if [ -n "$others" ]; then',
    '    stacks=""',
    `    for claim in ${APPHOST_ETC}/*.units; do`,
    '      if [ -e "$claim" ]; then claim=${claim##*/} stacks+="${stacks:+ }${claim%.units}"; fi',
    "    done",
    '    case "$others" in',
    '      caddy | nginx) advice="set apphost:proxy.kind to $others, or deploy this stack to another host; to move the host to $proxy once no stack uses $others: systemctl disable --now $others" ;;',
    '      *) advice="stop it if nothing needs it (systemctl disable --now <its service>), or deploy this stack to another host" ;;',
    "    esac",
    `    log "apphost:proxy.kind is $proxy, but $others listens on port ${ports.join(" or ")} of this host: a host runs one proxy, which every apphost stack on it shares\${stacks:+ (the stacks here: $stacks)}; $advice. Nothing was installed or changed." >&2`,
    "    exit 1",
    "  fi",
    "fi",
    "",
  ];
}

export function renderBaseline(input: BaselineInput): string {
  const swapMb = input.host.swapMb;
  assertSafe("host baseline", [
    ...input.proxy.ports.map((p, i) => [`the proxy's ports[${i}]`, p, SAFE.count] as const),
    ["apphost:host.swapMb", swapMb, SAFE.count],
    ...input.packages.map((p, i) => [`packages[${i}]`, p, SAFE.debianPackage] as const),
  ]);
  const packages = [...new Set([...BASE_PACKAGES, ...input.packages])];

  return [
    "#!/bin/bash",
    "# apphost host baseline: packages, unattended upgrades, sshd, time sync, swap.",
    `# ${managedBy("baseline.ts")}`,
    "# Idempotent: every step checks before it changes anything.",
    "set -euo pipefail",
    "export DEBIAN_FRONTEND=noninteractive",
    // needrestart (on Ubuntu's cloud images) restarts every service a library upgrade touches when apt runs without a
    // terminal: the app's live web instance and workers, PostgreSQL, sshd. Its apt hook forces that mode whatever
    // NEEDRESTART_MODE says (`-m u`), and skips only when suspended; the next apt run without it (unattended-upgrades)
    // restarts them.
    "export NEEDRESTART_SUSPEND=1",
    "",
    "log() { printf 'apphost baseline: %s\\n' \"$*\"; }",
    "",
    'if [ "$(id -u)" -ne 0 ]; then',
    '  log "run me as root" >&2',
    "  exit 1",
    "fi",
    "",
    "# put_file PATH MODE < CONTENT: writes PATH when its content differs; returns 1 when unchanged.",
    "put_file() {",
    "  local path=$1 mode=$2 tmp",
    "  tmp=$(mktemp)",
    '  cat >"$tmp"',
    '  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then',
    '    rm -f "$tmp"',
    "    return 1",
    "  fi",
    '  install -D -m "$mode" -o root -g root "$tmp" "$path"',
    '  rm -f "$tmp"',
    '  log "wrote $path"',
    "}",
    "",
    "is_installed() {",
    "  local status",
    "  # ${db:Status-Status} is a dpkg-query field, not a shell expansion (single quotes).",
    "  status=$(dpkg-query -W -f='${db:Status-Status}' \"$1\" 2>/dev/null || true)",
    '  [ "$status" = installed ]',
    "}",
    "",
    "apt_updated=0",
    "ensure_packages() {",
    "  local missing=() p",
    '  for p in "$@"; do',
    '    if ! is_installed "$p"; then missing+=("$p"); fi',
    "  done",
    '  if [ "${#missing[@]}" -eq 0 ]; then return 0; fi',
    '  if [ "$apt_updated" -eq 0 ]; then',
    "    apt-get -o DPkg::Lock::Timeout=600 -q update",
    "    apt_updated=1",
    "  fi",
    '  log "installing ${missing[*]}"',
    '  apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends "${missing[@]}"',
    "}",
    "",
    ...oneProxyStep(input.proxy),
    "# 1. Packages.",
    `ensure_packages ${packages.join(" ")}`,
    "",
    "# 2. Unattended upgrades, security only.",
    `put_file ${AUTO_UPGRADES_PATH} 0644 <<'APPHOST_EOF' || true`,
    ...heredoc(renderAutoUpgradesConf()),
    `put_file ${UNATTENDED_UPGRADES_PATH} 0644 <<'APPHOST_EOF' || true`,
    ...heredoc(renderUnattendedUpgradesConf()),
    "systemctl enable --now apt-daily.timer apt-daily-upgrade.timer",
    "",
    "# 3. sshd: key-only logins. The drop-in is checked with sshd -t before ssh is reloaded,",
    "# and put back when sshd refuses it.",
    `sshd_dropin=${SSHD_DROPIN_PATH}`,
    "if [ -x /usr/sbin/sshd ]; then",
    "  # sshd -t needs its privilege separation directory, which only a running ssh.service creates.",
    "  install -d -m 0755 /run/sshd",
    '  previous=""',
    '  if [ -f "$sshd_dropin" ]; then',
    "    previous=$(mktemp)",
    '    cp -p "$sshd_dropin" "$previous"',
    "  fi",
    "  if put_file \"$sshd_dropin\" 0644 <<'APPHOST_EOF'",
    ...heredoc(renderSshdDropin()),
    "  then",
    "    if ! /usr/sbin/sshd -t; then",
    '      if [ -n "$previous" ]; then mv -f "$previous" "$sshd_dropin"; else rm -f "$sshd_dropin"; fi',
    '      log "sshd -t refused $sshd_dropin; the previous file is back and ssh was not reloaded" >&2',
    "      exit 1",
    "    fi",
    "    if systemctl is-active --quiet ssh.service; then",
    "      systemctl reload ssh.service",
    '      log "reloaded ssh"',
    "    fi",
    "  fi",
    '  if [ -n "$previous" ]; then rm -f "$previous"; fi',
    "  effective=$(/usr/sbin/sshd -T)",
    "  if ! grep -qx 'passwordauthentication no' <<<\"$effective\"; then",
    '    log "sshd still accepts passwords: a file read before $sshd_dropin sets PasswordAuthentication" >&2',
    "    exit 1",
    "  fi",
    "else",
    '  log "openssh-server is not installed; sshd left alone"',
    "fi",
    "",
    "# 4. Time sync: an installed NTP daemon stays in charge; otherwise systemd-timesyncd.",
    'time_daemon=""',
    "for p in chrony ntpsec ntp openntpd; do",
    '  if is_installed "$p"; then',
    "    time_daemon=$p",
    "    break",
    "  fi",
    "done",
    'if [ -n "$time_daemon" ]; then',
    '  log "time sync: $time_daemon is installed, leaving it in charge"',
    "else",
    "  ensure_packages systemd-timesyncd",
    "  # Inside a container the unit's ConditionVirtualization skips it, and this still succeeds.",
    "  systemctl enable --now systemd-timesyncd.service",
    "fi",
    "",
    "# 5. Swap file (apphost:host.swapMb; 0 creates none and removes nothing).",
    `swap_mb=${swapMb}`,
    "swapfile=/swapfile",
    "swap_active() {",
    "  local active",
    "  active=$(swapon --show=NAME --noheadings)",
    '  grep -qx "$swapfile" <<<"$active"',
    "}",
    'if [ "$swap_mb" -gt 0 ]; then',
    "  if systemd-detect-virt --container --quiet; then",
    '    log "swap: skipped inside a container, where swapon is not allowed"',
    "  else",
    '    if [ -f "$swapfile" ] && [ "$(stat -c %s "$swapfile")" -ne $((swap_mb * 1024 * 1024)) ]; then',
    '      log "swap: resizing $swapfile to $swap_mb MiB"',
    '      if swap_active; then swapoff "$swapfile"; fi',
    '      rm -f "$swapfile"',
    "    fi",
    '    if [ ! -f "$swapfile" ]; then',
    '      fallocate -l "${swap_mb}M" "$swapfile" || dd if=/dev/zero of="$swapfile" bs=1M count="$swap_mb" status=none',
    '      chmod 0600 "$swapfile"',
    '      mkswap "$swapfile" >/dev/null',
    "    fi",
    '    if ! grep -q "^${swapfile}[[:space:]]" /etc/fstab; then',
    '      echo "$swapfile none swap sw 0 0" >>/etc/fstab',
    "    fi",
    '    if ! swap_active; then swapon "$swapfile"; fi',
    "  fi",
    "fi",
    "",
    'log "done"',
    "",
  ].join("\n");
}
