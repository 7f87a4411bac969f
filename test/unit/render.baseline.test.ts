import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { APPHOST_ETC } from "../../components/paths";
import { renderBaseline, runtimePackages } from "../../components/render/baseline";
import { lineDiff } from "./render.fixtures";

const input = () => ({
  host: { swapMb: 1024 },
  proxy: { kind: "caddy" as const, ports: [80, 443] },
  packages: ["caddy", "python3", "python3-venv", "sqlite3"],
});

describe("render/baseline", () => {
  const base = renderBaseline(input());

  it("renders the whole script", () => {
    assert.equal(
      base,
      `#!/bin/bash
# apphost host baseline: packages, unattended upgrades, sshd, time sync, swap.
# Managed by apphost (components/render/baseline.ts); edits are overwritten on the next deploy.
# Idempotent: every step checks before it changes anything.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export NEEDRESTART_SUSPEND=1

log() { printf 'apphost baseline: %s\\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  log "run me as root" >&2
  exit 1
fi

# put_file PATH MODE < CONTENT: writes PATH when its content differs; returns 1 when unchanged.
put_file() {
  local path=$1 mode=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    return 1
  fi
  install -D -m "$mode" -o root -g root "$tmp" "$path"
  rm -f "$tmp"
  log "wrote $path"
}

is_installed() {
  local status
  # \${db:Status-Status} is a dpkg-query field, not a shell expansion (single quotes).
  status=$(dpkg-query -W -f='\${db:Status-Status}' "$1" 2>/dev/null || true)
  [ "$status" = installed ]
}

apt_updated=0
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    if ! is_installed "$p"; then missing+=("$p"); fi
  done
  if [ "\${#missing[@]}" -eq 0 ]; then return 0; fi
  if [ "$apt_updated" -eq 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 -q update
    apt_updated=1
  fi
  log "installing \${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends "\${missing[@]}"
}

# 0. One proxy per host: nothing but this stack's proxy listens on its ports.
proxy=caddy
if command -v ss >/dev/null; then
  others=$(ss -Hltnp '( sport = :80 or sport = :443 )' | grep -oE 'users:\\(\\("[^"]+"' | cut -d'"' -f2 | sort -u | grep -vx "$proxy" | paste -sd' ' -) || true
  if [ -n "$others" ]; then
    stacks=""
    for claim in /etc/apphost/*.units; do
      if [ -e "$claim" ]; then claim=\${claim##*/} stacks+="\${stacks:+ }\${claim%.units}"; fi
    done
    case "$others" in
      caddy | nginx) advice="set apphost:proxy.kind to $others, or deploy this stack to another host; to move the host to $proxy once no stack uses $others: systemctl disable --now $others" ;;
      *) advice="stop it if nothing needs it (systemctl disable --now <its service>), or deploy this stack to another host" ;;
    esac
    log "apphost:proxy.kind is $proxy, but $others listens on port 80 or 443 of this host: a host runs one proxy, which every apphost stack on it shares\${stacks:+ (the stacks here: $stacks)}; $advice. Nothing was installed or changed." >&2
    exit 1
  fi
fi

# 1. Packages.
ensure_packages ca-certificates curl unattended-upgrades caddy python3 python3-venv sqlite3

# 2. Unattended upgrades, security only.
put_file /etc/apt/apt.conf.d/21apphost-auto-upgrades 0644 <<'APPHOST_EOF' || true
// Managed by apphost (components/render/baseline.ts); edits are overwritten on the next deploy.
// Read after Debian's 20auto-upgrades, so these values win.
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
APPHOST_EOF
put_file /etc/apt/apt.conf.d/52apphost-unattended-upgrades 0644 <<'APPHOST_EOF' || true
// Managed by apphost (components/render/baseline.ts); edits are overwritten on the next deploy.
// Only security updates are installed unattended.
#clear Unattended-Upgrade::Allowed-Origins;
#clear Unattended-Upgrade::Origins-Pattern;
Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=\${distro_codename}-security,label=Debian-Security";
        "origin=Ubuntu,archive=\${distro_codename}-security,label=Ubuntu";
};
APPHOST_EOF
systemctl enable --now apt-daily.timer apt-daily-upgrade.timer

# 3. sshd: key-only logins. The drop-in is checked with sshd -t before ssh is reloaded,
# and put back when sshd refuses it.
sshd_dropin=/etc/ssh/sshd_config.d/00-apphost.conf
if [ -x /usr/sbin/sshd ]; then
  # sshd -t needs its privilege separation directory, which only a running ssh.service creates.
  install -d -m 0755 /run/sshd
  previous=""
  if [ -f "$sshd_dropin" ]; then
    previous=$(mktemp)
    cp -p "$sshd_dropin" "$previous"
  fi
  if put_file "$sshd_dropin" 0644 <<'APPHOST_EOF'
# Managed by apphost (components/render/baseline.ts); edits are overwritten on the next deploy.
# Key-only logins. sshd keeps the first value it reads; this file sorts first.
PasswordAuthentication no
KbdInteractiveAuthentication no
APPHOST_EOF
  then
    if ! /usr/sbin/sshd -t; then
      if [ -n "$previous" ]; then mv -f "$previous" "$sshd_dropin"; else rm -f "$sshd_dropin"; fi
      log "sshd -t refused $sshd_dropin; the previous file is back and ssh was not reloaded" >&2
      exit 1
    fi
    if systemctl is-active --quiet ssh.service; then
      systemctl reload ssh.service
      log "reloaded ssh"
    fi
  fi
  if [ -n "$previous" ]; then rm -f "$previous"; fi
  effective=$(/usr/sbin/sshd -T)
  if ! grep -qx 'passwordauthentication no' <<<"$effective"; then
    log "sshd still accepts passwords: a file read before $sshd_dropin sets PasswordAuthentication" >&2
    exit 1
  fi
else
  log "openssh-server is not installed; sshd left alone"
fi

# 4. Time sync: an installed NTP daemon stays in charge; otherwise systemd-timesyncd.
time_daemon=""
for p in chrony ntpsec ntp openntpd; do
  if is_installed "$p"; then
    time_daemon=$p
    break
  fi
done
if [ -n "$time_daemon" ]; then
  log "time sync: $time_daemon is installed, leaving it in charge"
else
  ensure_packages systemd-timesyncd
  # Inside a container the unit's ConditionVirtualization skips it, and this still succeeds.
  systemctl enable --now systemd-timesyncd.service
fi

# 5. Swap file (apphost:host.swapMb; 0 creates none and removes nothing).
swap_mb=1024
swapfile=/swapfile
swap_active() {
  local active
  active=$(swapon --show=NAME --noheadings)
  grep -qx "$swapfile" <<<"$active"
}
if [ "$swap_mb" -gt 0 ]; then
  if systemd-detect-virt --container --quiet; then
    log "swap: skipped inside a container, where swapon is not allowed"
  else
    if [ -f "$swapfile" ] && [ "$(stat -c %s "$swapfile")" -ne $((swap_mb * 1024 * 1024)) ]; then
      log "swap: resizing $swapfile to $swap_mb MiB"
      if swap_active; then swapoff "$swapfile"; fi
      rm -f "$swapfile"
    fi
    if [ ! -f "$swapfile" ]; then
      fallocate -l "\${swap_mb}M" "$swapfile" || dd if=/dev/zero of="$swapfile" bs=1M count="$swap_mb" status=none
      chmod 0600 "$swapfile"
      mkswap "$swapfile" >/dev/null
    fi
    if ! grep -q "^\${swapfile}[[:space:]]" /etc/fstab; then
      echo "$swapfile none swap sw 0 0" >>/etc/fstab
    fi
    if ! swap_active; then swapon "$swapfile"; fi
  fi
fi

log "done"
`,
    );
  });

  it("swapMb is the only swap input", () => {
    const v = renderBaseline({ ...input(), host: { swapMb: 0 } });
    assert.deepEqual(lineDiff(base, v), { removed: ["swap_mb=1024"], added: ["swap_mb=0"] });
  });

  it("packages are deduplicated after the base set", () => {
    const v = renderBaseline({ ...input(), packages: ["nginx", "curl", "certbot"] });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "ensure_packages ca-certificates curl unattended-upgrades caddy python3 python3-venv sqlite3",
      ],
      added: ["ensure_packages ca-certificates curl unattended-upgrades nginx certbot"],
    });
  });

  it("lists every bad input", () => {
    const bad = { host: { swapMb: -1 }, proxy: { kind: "nginx" as const, ports: [80.5, 443] } };
    assert.throws(() => renderBaseline({ ...bad, packages: ["ok", "rm -rf /", "X"] }), {
      message:
        "host baseline: not safe to write (apphost's config check should have refused it; please report this):\n" +
        "  - the proxy's ports[0]: 80.5 is not a whole number >= 0\n" +
        "  - apphost:host.swapMb: -1 is not a whole number >= 0\n" +
        '  - packages[1]: "rm -rf /" is not a Debian package name\n' +
        '  - packages[2]: "X" is not a Debian package name',
    });
  });
});

describe("render/baseline: one proxy per host (step 0, run by bash with a stand-in ss)", () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-baseline-"));
    fs.mkdirSync(path.join(tmp, "bin"));
    fs.mkdirSync(path.join(tmp, "etc"));
    // ss as root prints it (-Hltnp): what $SS_OUT holds; the filter it was given goes to ss.args.
    fs.writeFileSync(
      path.join(tmp, "bin", "ss"),
      `#!/bin/bash\nprintf '%s\\n' "$*" >${tmp}/ss.args\nprintf '%b' "$SS_OUT"\n`,
      { mode: 0o755 },
    );
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Step 0 of the baseline for `proxy`, run against APPHOST_ETC's stand-in: its status and what it logged. */
  function step0(proxy: "caddy" | "nginx", ssOut: string, ports = [80, 443]) {
    const script = renderBaseline({ ...input(), proxy: { kind: proxy, ports } });
    const step = script
      .slice(script.indexOf("# 0. "), script.indexOf("# 1. "))
      .replaceAll(APPHOST_ETC, `${tmp}/etc`);
    assert.ok(step.includes(`${tmp}/etc`), "the step reads the stacks' claims");
    const r = spawnSync(
      "bash",
      [
        "-c",
        `set -euo pipefail; log() { printf 'apphost baseline: %s\\n' "$*"; }\n${step}\necho step 0 passed`,
      ],
      {
        env: { PATH: `${tmp}/bin:/usr/bin:/bin`, HOME: tmp, SS_OUT: ssOut },
        // Not a socket (Node's pipes are): bash would read ~/.bashrc, as when sshd starts it.
        stdio: ["ignore", "pipe", "pipe"],
        encoding: "utf8",
      },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  const listen = (port: number, name: string, pid: number) =>
    `LISTEN 0      4096               *:${port}             *:*    users:(("${name}",pid=${pid},fd=8))\\n`;

  it("another proxy on the ports: refused before anything is installed, naming it, the stacks on the host and what to set", () => {
    for (const id of ["sample-local", "library-library"])
      fs.writeFileSync(path.join(tmp, "etc", `${id}.units`), "");
    const r = step0("nginx", listen(80, "caddy", 936) + listen(443, "caddy", 936));
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.equal(
      r.stderr,
      "apphost baseline: apphost:proxy.kind is nginx, but caddy listens on port 80 or 443 of this host: a host runs " +
        "one proxy, which every apphost stack on it shares (the stacks here: library-library sample-local); set " +
        "apphost:proxy.kind to caddy, or deploy this stack to another host; to move the host to nginx once no stack " +
        "uses caddy: systemctl disable --now caddy. Nothing was installed or changed.\n",
    );
    assert.equal(r.stdout, "");
    assert.equal(
      fs.readFileSync(path.join(tmp, "ss.args"), "utf8"),
      "-Hltnp ( sport = :80 or sport = :443 )\n",
    );
  });

  it("another program (apache2): refused, to stop it or use another host; its own proxy or none: it goes on", () => {
    fs.rmSync(path.join(tmp, "etc"), { recursive: true, force: true });
    const apache = step0("caddy", listen(80, "apache2", 51) + listen(80, "caddy", 52), [80, 8443]);
    assert.equal(apache.status, 1);
    assert.equal(
      apache.stderr,
      "apphost baseline: apphost:proxy.kind is caddy, but apache2 listens on port 80 or 8443 of this host: a host " +
        "runs one proxy, which every apphost stack on it shares; stop it if nothing needs it (systemctl disable " +
        "--now <its service>), or deploy this stack to another host. Nothing was installed or changed.\n",
    );
    assert.equal(
      fs.readFileSync(path.join(tmp, "ss.args"), "utf8"),
      "-Hltnp ( sport = :80 or sport = :8443 )\n",
    );
    for (const [proxy, out] of [
      ["nginx", listen(80, "nginx", 7) + listen(443, "nginx", 7)],
      ["caddy", ""],
    ] as const) {
      const r = step0(proxy, out);
      assert.deepEqual([r.status, r.stdout, r.stderr], [0, "step 0 passed\n", ""]);
    }
    // apphost:tls.mode off: the proxy listens on httpPort alone, and a TLS terminator may hold 443 (Server's tlsOff).
    assert.equal(step0("nginx", "", [80]).status, 0);
    assert.equal(fs.readFileSync(path.join(tmp, "ss.args"), "utf8"), "-Hltnp ( sport = :80 )\n");
  });
});

describe("render/baseline: runtimePackages", () => {
  const cases: [string, Parameters<typeof runtimePackages>[0], string[]][] = [
    [
      "a python build that runs no node tool (Django's collectstatic) pulls in no npm",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "python", build: "python manage.py collectstatic --noinput" },
        tls: { mode: "caddy-acme" },
        database: { kind: "sqlite" },
        backups: { s3: false },
      },
      ["caddy", "nftables", "python3", "python3-venv", "sqlite3"],
    ],
    [
      "a python build that runs npm gets node and npm",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "python", build: "cd frontend && npm ci && npm run build" },
        tls: { mode: "caddy-acme" },
        database: { kind: "sqlite" },
        backups: { s3: false },
      },
      ["caddy", "nftables", "python3", "python3-venv", "nodejs", "npm", "sqlite3"],
    ],
    [
      "a python build that runs Bun (or bunx) gets node and npm: npm installs Bun, and Vite's bin runs on node",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "python", build: "bun install --frozen-lockfile && bunx vite build" },
        tls: { mode: "caddy-acme" },
        database: { kind: "sqlite" },
        backups: { s3: false },
      },
      ["caddy", "nftables", "python3", "python3-venv", "nodejs", "npm", "sqlite3"],
    ],
    [
      "caddy + python + sqlite",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "python" },
        tls: { mode: "caddy-acme" },
        database: { kind: "sqlite" },
        backups: { s3: false },
      },
      ["caddy", "nftables", "python3", "python3-venv", "sqlite3"],
    ],
    [
      "nginx + certbot + postgres",
      {
        proxy: { kind: "nginx" },
        app: { runtime: "python" },
        tls: { mode: "certbot" },
        database: { kind: "postgres" },
        backups: { s3: false },
      },
      ["nginx", "nftables", "python3", "python3-venv", "postgresql", "certbot"],
    ],
    [
      "rds: the client tools only (pg_dump, pg_restore, psql)",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "python" },
        tls: { mode: "caddy-acme" },
        database: { kind: "rds" },
        backups: { s3: true },
      },
      ["caddy", "nftables", "python3", "python3-venv", "postgresql-client", "awscli"],
    ],
    [
      "python with a frontend build needs node",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "python", build: "npm ci && npm run build" },
        tls: { mode: "off" },
        database: { kind: "none" },
        backups: { s3: false },
      },
      ["caddy", "nftables", "python3", "python3-venv", "nodejs", "npm"],
    ],
    [
      "python with a Node process needs nodejs, not npm",
      {
        proxy: { kind: "caddy" },
        app: {
          runtime: "python",
          processes: [{ command: "gunicorn app:app" }, { command: "node heartbeat.js" }],
        },
        tls: { mode: "internal" },
        database: { kind: "sqlite" },
        backups: { s3: false },
      },
      ["caddy", "nftables", "python3", "python3-venv", "nodejs", "sqlite3"],
    ],
    [
      "node",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "node" },
        tls: { mode: "internal" },
        database: { kind: "sqlite" },
        backups: { s3: false },
      },
      ["caddy", "nftables", "nodejs", "npm", "sqlite3"],
    ],
    [
      "backups copied to S3 (awscli)",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "python" },
        tls: { mode: "caddy-acme" },
        database: { kind: "sqlite" },
        backups: { s3: true },
      },
      ["caddy", "nftables", "python3", "python3-venv", "sqlite3", "awscli"],
    ],
    [
      "apphost:app.sharedUrls: acl, for the proxy's user to read what the app writes there",
      {
        proxy: { kind: "nginx" },
        app: { runtime: "python", sharedUrls: { "/media/": "media" } },
        tls: { mode: "internal" },
        database: { kind: "sqlite" },
        backups: { s3: false },
      },
      ["nginx", "nftables", "python3", "python3-venv", "sqlite3", "acl"],
    ],
    [
      "apphost:host.packages come after the stack's own, each once (uWSGI builds from source)",
      {
        proxy: { kind: "caddy" },
        app: { runtime: "python" },
        tls: { mode: "internal" },
        database: { kind: "postgres" },
        backups: { s3: false },
        host: { packages: ["build-essential", "python3-dev", "python3"] },
      },
      ["caddy", "nftables", "python3", "python3-venv", "postgresql", "build-essential", "python3-dev"],
    ],
  ];
  for (const [name, input, expected] of cases) {
    it(name, () => assert.deepEqual(runtimePackages(input), expected));
  }
});
