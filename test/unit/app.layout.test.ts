import { strict as assert } from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { cacheArtifact } from "../../components/release/cache";
import { spawnSync } from "child_process";
import {
  caddyLogCommands,
  claimCommands,
  databaseSwitchCommands,
  envCopyBackfill,
  layoutCommands,
  portClaimCommands,
  portListenerFunction,
  unitListensFunction,
  unitReplacedFunction,
  proxyLogsFind,
  strayFilesCommands,
  unitClaimCommands,
} from "../../components/render/layout";
import { HOST_DIRS } from "../../components/render/common";
import { hostLayout } from "../../components/paths";
import type { StackUnitsInput } from "../../components/render/systemd";
import { relocateLayout } from "./release-harness";
import { stackConfig } from "./fixtures";

describe("app: the stack's layout command and its mirror on destroy", () => {
  const config = stackConfig({}, "prod");
  const app = { processes: config.app.processes, schedules: [{ name: "report" }] };
  const cmds = layoutCommands(hostLayout(config.app.name, config.stack), {
    proxy: config.proxy,
    basePort: config.app.basePort,
    web: "web",
    app,
  });
  // Each unit of the stack by its own name (web and worker, a scheduled job, backup, upstream, job, alert, exec).
  const UNITS = [
    "apphost-apphost-prod-web@*.service",
    "apphost-apphost-prod-worker.service",
    "apphost-apphost-prod-schedule-report.service",
    "apphost-apphost-prod-schedule-report.timer",
    "apphost-apphost-prod-backup.service",
    "apphost-apphost-prod-backup.timer",
    "apphost-apphost-prod-upstream.service",
    "apphost-apphost-prod-job@*.service",
    "apphost-apphost-prod-alert@*.service",
    "apphost-apphost-prod-exec-*",
  ]
    .map((u) => (u.includes("*") ? `'${u}'` : u))
    .join(" ");

  it("claims the stack's ports and units first, then creates the user and the root; no upstream file (the proxy names the upstream port itself)", () => {
    assert.equal(
      cmds.create,
      [
        "set -euo pipefail",
        ...claimCommands(hostLayout(config.app.name, config.stack), { basePort: 8000, web: "web", app }),
        "if ! id -u apphost-prod >/dev/null 2>&1; then",
        "  useradd --system --user-group --home-dir /srv/apphost-prod --no-create-home --shell /usr/sbin/nologin apphost-prod",
        "fi",
        "install -d -m 0755 /srv/apphost-prod /srv/apphost-prod/bin",
        "if [ -e /etc/apphost/apphost-prod.env ] && [ -d /srv/apphost-prod/instances ]; then",
        "  for link in /srv/apphost-prod/instances/*; do",
        '    if [ -L "$link" ] && [ ! -e "$link.env" ]; then install -m 0640 -o root -g apphost-prod /etc/apphost/apphost-prod.env "$link.env"; fi',
        "  done",
        "  if [ -e /srv/apphost-prod/current ] && [ ! -e /srv/apphost-prod/instances/live.env ]; then install -m 0640 -o root -g apphost-prod /etc/apphost/apphost-prod.env /srv/apphost-prod/instances/live.env; fi",
        "fi",
        "",
      ].join("\n"),
    );
  });

  it("gives each running instance of a host deployed before the env copies, and the live release, the env file as it is", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-backfill-"));
    try {
      const l = relocateLayout(hostLayout("shop", "prod"), tmp, os.userInfo().username);
      fs.mkdirSync(path.dirname(l.envFile), { recursive: true });
      fs.mkdirSync(`${l.releases}/r1`, { recursive: true });
      fs.mkdirSync(l.instances, { recursive: true });
      fs.writeFileSync(l.envFile, 'SECRET="old"\n');
      fs.symlinkSync(`${l.releases}/r1`, `${l.instances}/8000`);
      fs.symlinkSync(`${l.releases}/r1`, `${l.instances}/8001`);
      fs.writeFileSync(`${l.instances}/8001.env`, 'SECRET="its own"\n');
      fs.symlinkSync(`${l.releases}/r1`, l.current);
      const run = () =>
        spawnSync("bash", ["-euo", "pipefail", "-c", envCopyBackfill(l).join("\n")], { encoding: "utf8" });
      assert.equal(run().status, 0);
      assert.equal(fs.readFileSync(`${l.instances}/8000.env`, "utf8"), 'SECRET="old"\n');
      assert.equal(
        fs.readFileSync(`${l.instances}/8001.env`, "utf8"),
        'SECRET="its own"\n',
        "a copy it has is kept",
      );
      assert.equal(fs.readFileSync(l.liveEnv, "utf8"), 'SECRET="old"\n');
      assert.equal((fs.statSync(l.liveEnv).mode & 0o777).toString(8), "640");
      assert.deepEqual(fs.readdirSync(l.instances).sort(), [
        "8000",
        "8000.env",
        "8001",
        "8001.env",
        "live.env",
      ]);
      // Run again after pulumi up wrote a new env file: the copies stay the env the processes run with.
      fs.writeFileSync(l.envFile, 'SECRET="new"\n');
      assert.equal(run().status, 0);
      assert.equal(fs.readFileSync(`${l.instances}/8000.env`, "utf8"), 'SECRET="old"\n');
      assert.equal(fs.readFileSync(l.liveEnv, "utf8"), 'SECRET="old"\n');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  const LOGS =
    "-name 'apphost-prod.access.log*' -o -name 'apphost-apphost-prod.access.log*' -o -name 'apphost-apphost-prod.error.log*'";

  it("destroy stops the units, deletes only this stack's nftables tables, and a leftover upstream file", () => {
    assert.equal(
      cmds.delete,
      [
        "set -euo pipefail",
        `for unit in $(systemctl list-units --all --plain --no-legend ${UNITS} | awk '{print $1}'); do systemctl disable --now "$unit" >/dev/null 2>&1 || systemctl stop "$unit" || true; done`,
        "if command -v nft >/dev/null; then nft delete table ip apphost_apphost_prod 2>/dev/null || true; nft delete table inet apphost_apphost_prod 2>/dev/null || true; fi",
        "rm -f /etc/caddy/apphost/apphost-prod.upstream /etc/apphost/apphost-prod.env /etc/apphost/apphost-prod.ports /etc/apphost/apphost-prod.units",
        // Caddy holds its access log open after the site is gone: copied and emptied, never moved or deleted.
        "caddy_log=/var/log/caddy/apphost-prod.access.log caddy_held='' skip=()",
        "caddy_pid=$(systemctl show -p MainPID --value caddy 2>/dev/null || true)",
        `if [ -f "$caddy_log" ] && [ "\${caddy_pid:-0}" != 0 ] && [ -n "$(find /proc/"$caddy_pid"/fd -lname "$caddy_log" -print -quit 2>/dev/null)" ]; then caddy_held=1 skip=(! -path "$caddy_log"); fi`,
        // The data and backups are moved aside, never deleted.
        "kept=",
        'if [ -n "$(find /srv/apphost-prod/shared/data /srv/apphost-prod/shared/backups -mindepth 1 -print -quit 2>/dev/null)" ]; then',
        "  kept=/var/lib/apphost/kept/apphost-prod-$(date -u +%Y%m%dT%H%M%SZ)",
        "  install -d -m 0700 /var/lib/apphost/kept",
        '  mv /srv/apphost-prod/shared "$kept"',
        '  install -d "$kept/logs"',
        '  if [ -n "$caddy_held" ]; then cp -p "$caddy_log" "$kept/logs/" && truncate -s 0 "$caddy_log"; fi',
        `  find /var/log/caddy /var/log/nginx -maxdepth 1 -type f \\( ${LOGS} \\) "\${skip[@]}" -exec mv -t "$kept/logs" {} + 2>/dev/null || true`,
        `  if [ -n "$(find /var/log/caddy /var/log/nginx -maxdepth 1 -type f \\( ${LOGS} \\) "\${skip[@]}" -print -quit 2>/dev/null)" ]; then echo "apphost: warning: not every proxy log of apphost-prod moved to $kept/logs; the rest stay where they are" >&2; fi`,
        '  chown -R -h root:root "$kept"',
        '  echo "apphost: kept the data and backups of apphost-prod in $kept (destroy never deletes them); delete that directory when you no longer need it" >&2',
        "fi",
        // What else the stack left: its proxy logs (unless kept above), certbot webroot, timer stamps.
        `if [ -z "\${kept:-}" ]; then`,
        '  if [ -n "$caddy_held" ]; then truncate -s 0 "$caddy_log"; fi',
        `  find /var/log/caddy /var/log/nginx -maxdepth 1 -type f \\( ${LOGS} \\) "\${skip[@]}" -delete 2>/dev/null || true`,
        "fi",
        "rm -rf --one-file-system /var/www/acme/apphost-prod",
        "rm -f /var/lib/systemd/timers/stamp-apphost-apphost-prod-schedule-report.timer /var/lib/systemd/timers/stamp-apphost-apphost-prod-backup.timer",
        // The command drop-ins the releases wrote (each web instance's, the worker's).
        "rm -rf -- /etc/systemd/system/apphost-apphost-prod-web@*.service.d",
        "rm -rf -- /etc/systemd/system/apphost-apphost-prod-worker.service.d",
        "rm -rf --one-file-system /srv/apphost-prod",
        "if id -u apphost-prod >/dev/null 2>&1; then userdel apphost-prod; fi",
        "if getent group apphost-prod >/dev/null; then groupdel apphost-prod; fi",
        "systemctl daemon-reload",
        `systemctl reset-failed ${UNITS} 2>/dev/null || true`,
        "caddy validate --adapter caddyfile --config /etc/caddy/Caddyfile >/dev/null && if systemctl is-active --quiet caddy; then systemctl reload caddy; else systemctl enable --now caddy; fi",
        "",
      ].join("\n"),
    );
    const other = layoutCommands(hostLayout(config.app.name, "staging"), {
      proxy: config.proxy,
      basePort: config.app.basePort,
      app,
    });
    assert.match(other.delete, /nft delete table ip apphost_apphost_staging /);
    assert.match(other.delete, /nft delete table inet apphost_apphost_staging /);
    assert.doesNotMatch(other.delete, /apphost_apphost_prod/);
  });
});

describe("app: destroy stops the stack's own units, not those of a stack whose id starts with its id (run under bash)", () => {
  it("destroying shop-prod disables its units and none of shop-prod-eu's", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-units-"));
    try {
      const units = [
        ...["web@8000.service", "worker.service", "backup.service", "backup.timer", "upstream.service"].map(
          (u) => `apphost-shop-prod-${u}`,
        ),
        ...[
          "web@8100.service",
          "worker.service",
          "backup.timer",
          "upstream.service",
          "schedule-report.timer",
        ].map((u) => `apphost-shop-prod-eu-${u}`),
      ];
      // systemctl: list-units prints the units matching any pattern given; every other call is logged.
      fs.writeFileSync(
        `${tmp}/systemctl`,
        [
          "#!/bin/bash",
          'if [ "$1" = list-units ]; then',
          "  shift 4",
          `  for u in ${units.join(" ")}; do for p in "$@"; do if [[ $u == $p ]]; then echo "$u loaded active running x"; break; fi; done; done`,
          "  exit 0",
          "fi",
          `echo "$*" >>${tmp}/calls`,
        ].join("\n"),
        { mode: 0o755 },
      );
      const { delete: destroy } = layoutCommands(hostLayout("shop", "prod"), {
        proxy: { kind: "caddy" },
        basePort: 8000,
        web: "web",
        app: {
          processes: [
            { name: "web", kind: "web" },
            { name: "worker", kind: "worker" },
          ],
          schedules: [],
        },
      });
      const lines = destroy.split("\n");
      const loop = lines.filter((l) => l.startsWith("for unit in"));
      const reset = lines.filter((l) => l.startsWith("systemctl reset-failed"));
      const run = spawnSync("bash", ["-euo", "pipefail", "-c", [...loop, ...reset].join("\n")], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${tmp}:${process.env.PATH}` },
      });
      assert.equal(run.status, 0, run.stderr);
      const calls = fs.readFileSync(`${tmp}/calls`, "utf8").trim().split("\n");
      assert.deepEqual(
        calls.filter((c) => c.startsWith("disable")),
        [
          "disable --now apphost-shop-prod-web@8000.service",
          "disable --now apphost-shop-prod-worker.service",
          "disable --now apphost-shop-prod-backup.service",
          "disable --now apphost-shop-prod-backup.timer",
          "disable --now apphost-shop-prod-upstream.service",
        ],
      );
      assert.doesNotMatch(calls.join("\n"), /shop-prod-eu/);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("app: destroy's sweep of the files a stack leaves outside /srv (run under bash)", () => {
  it("takes this stack's proxy logs and their rotations, from both proxies' directories, and no other stack's", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-stray-"));
    try {
      const dirs = {
        ...HOST_DIRS,
        caddyLogs: `${tmp}/caddy`,
        nginxLogs: `${tmp}/nginx`,
        acmeWebroot: `${tmp}/acme`,
      };
      const shop = hostLayout("shop", "prod");
      const files = {
        mine: [
          "caddy/shop-prod.access.log",
          "caddy/shop-prod.access.log.1",
          "caddy/shop-prod.access.log.2.gz",
          "nginx/apphost-shop-prod.access.log",
          "nginx/apphost-shop-prod.error.log.3.gz",
        ],
        others: [
          "caddy/shop-prod-eu.access.log",
          "caddy/myshop-prod.access.log",
          "nginx/apphost-shop-prod-eu.access.log",
          "nginx/access.log",
          "acme/shop-prod-eu/token",
        ],
      };
      for (const f of [...files.mine, ...files.others, "acme/shop-prod/.well-known/acme-challenge/t"]) {
        fs.mkdirSync(path.dirname(`${tmp}/${f}`), { recursive: true });
        fs.writeFileSync(`${tmp}/${f}`, "x\n");
      }
      // A stand-in Caddy (pid 4242) holding the access log open, as a running one does after its site is gone.
      fs.mkdirSync(`${tmp}/proc/4242/fd`, { recursive: true });
      fs.symlinkSync(`${tmp}/caddy/shop-prod.access.log`, `${tmp}/proc/4242/fd/7`);
      const sweepWith = (caddyPid: string) =>
        [
          ...caddyLogCommands(shop, dirs, { caddyPid, proc: `${tmp}/proc` }),
          ...strayFilesCommands(shop, [], dirs),
        ]
          .filter((line) => !line.includes("/var/lib/systemd"))
          .join("\n");
      const sweep = sweepWith("echo 0");
      const listed = spawnSync("bash", ["-euo", "pipefail", "-c", `${proxyLogsFind(shop, dirs)} -print`], {
        encoding: "utf8",
      });
      assert.equal(listed.status, 0, listed.stderr);
      assert.deepEqual(listed.stdout.trim().split("\n").sort(), files.mine.map((f) => `${tmp}/${f}`).sort());
      const run = spawnSync("bash", ["-euo", "pipefail", "-c", sweep], { encoding: "utf8" });
      assert.equal(run.status, 0, run.stderr);
      const left = (dir: string) => fs.readdirSync(`${tmp}/${dir}`).map((f) => `${dir}/${f}`);
      assert.deepEqual([...left("caddy"), ...left("nginx"), ...left("acme")].sort(), [
        "acme/shop-prod-eu",
        "caddy/myshop-prod.access.log",
        "caddy/shop-prod-eu.access.log",
        "nginx/access.log",
        "nginx/apphost-shop-prod-eu.access.log",
      ]);
      // Caddy holds the access log: it is emptied, not deleted (a later stack of this name logs into it); the rest go.
      for (const f of files.mine) fs.writeFileSync(`${tmp}/${f}`, "x\n");
      const held = spawnSync("bash", ["-euo", "pipefail", "-c", sweepWith("echo 4242")], {
        encoding: "utf8",
      });
      assert.equal(held.status, 0, held.stderr);
      assert.deepEqual(
        files.mine.filter((f) => fs.existsSync(`${tmp}/${f}`)),
        ["caddy/shop-prod.access.log"],
      );
      assert.equal(fs.statSync(`${tmp}/caddy/shop-prod.access.log`).size, 0);
      // With data kept ($kept set), a log that would not move with it is left, never deleted.
      fs.writeFileSync(`${tmp}/caddy/shop-prod.access.log`, "x\n");
      const kept = spawnSync("bash", ["-euo", "pipefail", "-c", `kept=${tmp}/kept\n${sweep}`], {
        encoding: "utf8",
      });
      assert.equal(kept.status, 0, kept.stderr);
      assert.ok(fs.existsSync(`${tmp}/caddy/shop-prod.access.log`), "the log is left in place");
      fs.rmSync(`${tmp}/caddy/shop-prod.access.log`);
      // A proxy that never ran here has no log directory: the sweep still succeeds.
      fs.rmSync(`${tmp}/nginx`, { recursive: true });
      assert.equal(spawnSync("bash", ["-euo", "pipefail", "-c", sweep]).status, 0);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("app: the stack's claims on its ports and unit names (layout step)", () => {
  const shop = hostLayout("shop", "prod");

  it("is this script, before anything of the stack exists", () => {
    assert.equal(
      portClaimCommands(shop, { basePort: 8000, web: "web" }).join("\n"),
      [
        "ports=(8000 8001 8002)",
        "taken=()",
        "for f in /etc/apphost/*.ports; do",
        '  if [ ! -f "$f" ] || [ "$f" = /etc/apphost/shop-prod.ports ]; then continue; fi',
        '  read -ra claimed <"$f" || true',
        '  for p in "${claimed[@]}"; do',
        '    case " ${ports[*]} " in *" $p "*) taken+=("$p is claimed by the stack $(basename "$f" .ports) on this host") ;; esac',
        "  done",
        "done",
        ...portListenerFunction(),
        'for p in "${ports[@]}"; do',
        '  listener=$(port_listener "$p")',
        '  if [ -z "$listener" ]; then continue; fi',
        "  pid=${listener%% *} unit=${listener#* }",
        '  if [ "$unit" = "apphost-shop-prod-web@$p.service" ]; then continue; fi',
        '  if [ "${unit%@*}" != "$unit" ]; then',
        `    case "$(head -n 1 /etc/systemd/system/"\${unit%@*}@.service" 2>/dev/null || true)" in '# apphost shop-prod: '*) continue ;; esac`,
        "  fi",
        '  taken+=("$p is listened on by $(cat /proc/"$pid/comm" 2>/dev/null || echo a process) (pid $pid${unit:+, $unit})")',
        "done",
        'if [ "${#taken[@]}" -gt 0 ]; then',
        `  used=" $(ss -Hltn | awk '{ n = split($4, a, ":"); print a[n] }' | tr '\\n' ' ' || true) $(cat /etc/apphost/*.ports 2>/dev/null | tr '\\n' ' ' || true) "`,
        "  free=",
        "  for n in $(seq 8100 100 65400); do",
        '    case "$used" in *" $n "* | *" $((n + 1)) "* | *" $((n + 2)) "*) ;; *) free=$n; break ;; esac',
        "  done",
        "  {",
        '    echo "apphost:app.basePort: this stack\'s ports 8000, 8001 (web) and 8002 (upstream) are not all free on this host:"',
        "    printf '  - %s\\n' \"${taken[@]}\"",
        "    echo \"Give the stack ports of its own, e.g.: pulumi config set --path 'apphost:app.basePort' ${free:-<a free port>}\"",
        "  } >&2",
        "  refused=1",
        "fi",
      ].join("\n"),
    );
    // The web process's own name makes the unit that may hold the ports.
    assert.match(
      portClaimCommands(shop, { basePort: 9000, web: "api" }).join("\n"),
      /"\$unit" = "apphost-shop-prod-api@\$p\.service"/,
    );
  });

  it("the unit names' check is this script: each unit with the key that names it", () => {
    const app = { processes: [{ name: "web", kind: "web" as const }], schedules: [{ name: "report" }] };
    assert.equal(
      unitClaimCommands(shop, app).join("\n"),
      [
        "units=(apphost-shop-prod-web@.service apphost-shop-prod-schedule-report.service apphost-shop-prod-schedule-report.timer apphost-shop-prod-backup.service apphost-shop-prod-backup.timer apphost-shop-prod-upstream.service apphost-shop-prod-job@.service apphost-shop-prod-alert@.service)",
        "froms=(apphost:app.processes.web apphost:app.schedules.report apphost:app.schedules.report 'apphost'\\''s backup unit' 'apphost'\\''s backup timer unit' 'apphost'\\''s upstream unit' 'apphost'\\''s deploy job unit' 'apphost'\\''s alert unit')",
        "taken=()",
        'for i in "${!units[@]}"; do',
        "  u=${units[$i]} owner=",
        "  for f in /etc/apphost/*.units; do",
        '    if [ -f "$f" ] && [ "$f" != /etc/apphost/shop-prod.units ] && grep -qxF -- "$u" "$f"; then owner=$(basename "$f" .units); break; fi',
        "  done",
        '  if [ -n "$owner" ]; then',
        '    taken+=("$u (${froms[$i]}) is claimed by the stack $owner on this host")',
        '  elif [ -f /etc/systemd/system/"$u" ]; then',
        '    first=$(head -n 1 /etc/systemd/system/"$u")',
        `    case "$first" in '# apphost shop-prod: '*) ;; *) taken+=("$u (\${froms[$i]}) is a unit file this stack did not write: /etc/systemd/system/$u begins \\"$first\\"") ;; esac`,
        "  fi",
        "done",
        'if [ "${#taken[@]}" -gt 0 ]; then',
        "  {",
        '    echo "apphost:app.processes: this stack\'s systemd units are not all its own on this host:"',
        "    printf '  - %s\\n' \"${taken[@]}\"",
        "    echo \"Each unit is named apphost-shop-prod-<process> (a scheduled job's: -schedule-<name>), and another stack's id can start with shop-prod- (a process eu-web here names the web unit of a stack shop-prod-eu): rename the process or scheduled job, or deploy the stacks to different hosts.\"",
        "  } >&2",
        "  refused=1",
        "fi",
      ].join("\n"),
    );
  });

  it("port_listener is this function, with the host's ss and /proc", () => {
    assert.equal(
      portListenerFunction().join("\n"),
      [
        "port_listener() {",
        "  local found pid line unit",
        '  found=$(ss -Hltnp "sport = :$1" 2>/dev/null) || true',
        "  if [[ ! $found =~ pid=([0-9]+) ]]; then return 0; fi",
        "  pid=${BASH_REMATCH[1]}",
        '  unit=""',
        '  while IFS= read -r line || [ -n "$line" ]; do',
        '    case "$line" in 0::/* | [0-9]*:name=systemd:/*) if [ -n "${line##*/}" ]; then unit=${line##*/}; break; fi ;; esac',
        '  done 2>/dev/null </proc/"$pid"/cgroup || true',
        '  printf \'%s %s\\n\' "$pid" "$unit"',
        "}",
      ].join("\n"),
    );
  });

  it("port_listener reads the listener's unit from its cgroup: the unified path's last part, else the v1 name=systemd one's; none for a root path", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-listener-"));
    const ss = path.join(dir, "ss");
    // A stand-in ss: pid 4242 listens on 8000 and nothing else does.
    fs.writeFileSync(
      ss,
      '#!/bin/bash\n[ "$2" = "sport = :8000" ] && echo \'LISTEN 0 2048 127.0.0.1:8000 0.0.0.0:* users:(("gunicorn",pid=4242,fd=5),("gunicorn",pid=4243,fd=5))\'\nexit 0\n',
      { mode: 0o755 },
    );
    fs.mkdirSync(path.join(dir, "4242"));
    const fn = portListenerFunction({ ss, proc: dir }).join("\n");
    const listener = (port: number) =>
      spawnSync("bash", ["--norc", "-c", `${fn}\nport_listener ${port}`], { encoding: "utf8" }).stdout;
    try {
      assert.equal(listener(8001), "", "nothing listens on 8001");
      const unitOf = (cgroup: string) => {
        fs.writeFileSync(path.join(dir, "4242", "cgroup"), cgroup);
        const out = listener(8000);
        assert.match(out, /^4242 /, "the first pid listening on 8000");
        return out.slice("4242 ".length).trim();
      };
      assert.equal(
        unitOf("0::/system.slice/system-apphost\\x2dshop.slice/apphost-shop-prod-web@8000.service\n"),
        "apphost-shop-prod-web@8000.service",
      );
      assert.equal(unitOf("0::/user.slice/user-0.slice/session-3.scope\n"), "session-3.scope");
      assert.equal(unitOf("1:name=systemd:/system.slice/caddy.service\n2:cpu,cpuacct:/\n"), "caddy.service");
      // A hybrid host names it twice; this machine's processes sit at the root of both.
      assert.equal(
        unitOf("1:name=systemd:/system.slice/caddy.service\n0::/system.slice/caddy.service\n"),
        "caddy.service",
      );
      assert.equal(unitOf("9:name=systemd:/\n4:memory:/process_api/f69a\n0::/\n"), "");
      assert.equal(
        unitOf("0::/system.slice/nginx.service"),
        "nginx.service",
        "a last line without its newline",
      );
      assert.equal(unitOf("0::/system.slice/\n"), "", "a path ending in a slash names nothing");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("unit_replaced is this function, with the host's /proc", () => {
    assert.equal(
      unitReplacedFunction().join("\n"),
      [
        "unit_replaced() {",
        "  local re=${1//./\\\\.} cgroups=()",
        '  mapfile -t cgroups < <(grep -lE -e "^0::(/.*)?/$re\\$" -e "^[0-9]+:name=systemd:(/.*)?/$re\\$" /proc/[0-9]*/cgroup 2>/dev/null || true)',
        '  if [ "${#cgroups[@]}" -eq 0 ]; then return 0; fi',
        `  { cat "\${cgroups[@]/%cgroup/maps}" 2>/dev/null || true; } | awk '$2 ~ /x/ && $NF == "(deleted)" && $6 ~ /^\\/(usr\\/)?(lib|lib32|lib64|libx32|bin|sbin)\\// { n = split($6, p, "/"); print p[n] }' | sort -u | paste -sd ' ' -`,
        "}",
      ].join("\n"),
    );
  });

  it("unit_replaced names the replaced system files every process of the unit maps executable, on one line", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-replaced-"));
    const proc = (pid: number, cgroup: string, maps: string[]) => {
      fs.mkdirSync(path.join(dir, String(pid)));
      fs.writeFileSync(path.join(dir, String(pid), "cgroup"), cgroup);
      fs.writeFileSync(path.join(dir, String(pid), "maps"), maps.map((m) => `${m}\n`).join(""));
    };
    const deleted = (file: string, perms = "r-xp") =>
      `7f3a10028000-7f3a1017d000 ${perms} 00028000 fe:01 1311 ${file} (deleted)`;
    // gunicorn's master and a worker of one instance (a template's nested slice), and an instance of the other port.
    const web = "apphost-shop-prod-web@8001.service";
    proc(100, `0::/system.slice/system-apphost\\x2dshop.slice/${web}\n`, [
      deleted("/usr/bin/python3.11"),
      deleted("/usr/lib/locale/locale-archive", "r--p"),
      deleted("/dev/shm/sem.mp-1", "rw-s"),
      deleted("/srv/shop-prod/venvs/a/lib/python3.11/site-packages/_cffi_backend.so"),
    ]);
    proc(101, `1:name=systemd:/system.slice/${web}\n`, [
      deleted("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
      deleted("/lib/x86_64-linux-gnu/libc.so.6"),
      "7f3a40000000-7f3a40014000 r-xp 00002000 fe:01 2002 /usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
    ]);
    proc(102, "0::/system.slice/apphost-shop-prod-web@8000.service\n", [
      deleted("/usr/lib/x86_64-linux-gnu/libpq.so.5"),
    ]);
    proc(103, `0::/system.slice/${web}x\n`, [deleted("/usr/lib/x86_64-linux-gnu/libxml2.so.2")]);
    // A process that exited between the look at its cgroup and the read of its maps.
    fs.mkdirSync(path.join(dir, "104"));
    fs.writeFileSync(path.join(dir, "104", "cgroup"), `0::/system.slice/${web}\n`);
    const fn = unitReplacedFunction({ proc: dir }).join("\n");
    const replaced = (unit: string) =>
      spawnSync("bash", ["--norc", "-c", `set -euo pipefail\n${fn}\nunit_replaced ${unit}`], {
        encoding: "utf8",
      });
    try {
      const r = replaced(web);
      assert.deepEqual([r.status, r.stdout, r.stderr], [0, "libc.so.6 libssl.so.3 python3.11\n", ""]);
      assert.equal(replaced("apphost-shop-prod-web@8000.service").stdout, "libpq.so.5\n");
      assert.deepEqual([replaced("caddy.service").status, replaced("caddy.service").stdout], [0, ""]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("unit_listens prints where a unit's processes listen (the real ss, a real socket), and nothing for another unit", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-listens-"));
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    // This process, in the stand-in /proc, is the web instance of port 8001.
    fs.mkdirSync(path.join(dir, String(process.pid)));
    fs.writeFileSync(
      path.join(dir, String(process.pid), "cgroup"),
      "0::/system.slice/apphost-shop-prod-web@8001.service\n",
    );
    const fn = unitListensFunction({ ss: "ss", proc: dir }).join("\n");
    const listens = (unit: string) =>
      spawnSync("bash", ["--norc", "-c", `${fn}\nunit_listens ${unit}`], { encoding: "utf8" }).stdout;
    try {
      assert.equal(listens("apphost-shop-prod-web@8001.service"), `127.0.0.1:${port}\n`);
      assert.equal(listens("apphost-shop-prod-web@8000.service"), "");
    } finally {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("run with bash, the claims in a temp directory and a stand-in ss", () => {
    let dir: string;
    let listeners: string;
    const claims = () => path.join(dir, "etc", "apphost");
    const unitDir = () => path.join(dir, "etc", "systemd", "system");
    const layout = () => ({
      ...shop,
      portsFile: path.join(claims(), "shop-prod.ports"),
      unitsFile: path.join(claims(), "shop-prod.units"),
    });
    const WEB_ONLY: StackUnitsInput = { processes: [{ name: "web", kind: "web" }], schedules: [] };
    const run = (basePort: number, app: StackUnitsInput = WEB_ONLY, proc = "/proc") =>
      spawnSync(
        "bash",
        [
          "--norc",
          "-c",
          [
            "set -euo pipefail",
            ...claimCommands(layout(), { basePort, app }, { unitDir: unitDir(), proc }),
          ].join("\n"),
        ],
        {
          encoding: "utf8",
          env: { PATH: `${path.join(dir, "bin")}:${process.env.PATH}`, SS_LISTENERS: listeners },
        },
      );
    const claimed = (ext: "ports" | "units") => {
      const file = path.join(claims(), `shop-prod.${ext}`);
      return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : undefined;
    };
    const OWN_UNITS = [
      "apphost-shop-prod-backup.service",
      "apphost-shop-prod-backup.timer",
      "apphost-shop-prod-upstream.service",
      "apphost-shop-prod-job@.service",
      "apphost-shop-prod-alert@.service",
    ];

    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-ports-"));
      fs.mkdirSync(path.join(dir, "bin"));
      listeners = path.join(dir, "listeners");
      fs.writeFileSync(listeners, "");
      // `ss -Hltn` lists every listener, `ss -Hltnp "sport = :P"` those on P, from "port pid comm" lines.
      fs.writeFileSync(
        path.join(dir, "bin", "ss"),
        [
          "#!/bin/bash",
          'want=""',
          'for a in "$@"; do case $a in "sport = :"*) want=${a#sport = :} ;; esac; done',
          "while read -r port pid comm; do",
          '  if [ -n "$want" ] && [ "$port" != "$want" ]; then continue; fi',
          '  echo "LISTEN 0 2048 127.0.0.1:$port 0.0.0.0:* users:((\"$comm\",pid=$pid,fd=5),(\"$comm\",pid=$pid,fd=6))"',
          'done <"$SS_LISTENERS"',
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("on a host where the ports and unit names are free: writes both claims, exit 0; again, the same", () => {
      for (const round of ["first", "second"]) {
        const r = run(8000);
        assert.equal(r.status, 0, `${round} run: ${r.stderr}`);
        assert.equal(claimed("ports"), "8000 8001 8002\n");
        assert.equal(claimed("units"), ["apphost-shop-prod-web@.service", ...OWN_UNITS, ""].join("\n"));
      }
    });

    it("refuses every port another stack claims or another process listens on, and suggests a free base port", () => {
      fs.mkdirSync(claims(), { recursive: true });
      fs.writeFileSync(path.join(claims(), "blog-prod.ports"), "8001 8002 8003\n");
      fs.writeFileSync(path.join(claims(), "wiki-prod.ports"), "8100 8101 8102\n");
      // A process of this machine, not in the stack's web unit, listening on 8000; another on 8201.
      const pid = process.pid;
      const comm = fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      const unit = /^0::.*\/(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/cgroup`, "utf8"))?.[1] ?? "";
      fs.writeFileSync(listeners, `8000 ${pid} gunicorn\n8201 ${pid} postgres\n`);
      const r = run(8000);
      assert.equal(r.status, 1);
      assert.equal(
        r.stderr,
        [
          "apphost:app.basePort: this stack's ports 8000, 8001 (web) and 8002 (upstream) are not all free on this host:",
          "  - 8001 is claimed by the stack blog-prod on this host",
          "  - 8002 is claimed by the stack blog-prod on this host",
          `  - 8000 is listened on by ${comm} (pid ${pid}${unit ? `, ${unit}` : ""})`,
          // 8100 is wiki-prod's, 8200-8202 holds the listener on 8201.
          "Give the stack ports of its own, e.g.: pulumi config set --path 'apphost:app.basePort' 8300",
          "",
        ].join("\n"),
      );
      assert.equal(claimed("ports"), undefined, "no claim is written");
      assert.equal(claimed("units"), undefined);
    });

    it("its own claims are no conflict: a changed base port or process replaces them", () => {
      assert.equal(run(8000).status, 0);
      const r = run(8001, { processes: [{ name: "api", kind: "web" }], schedules: [{ name: "report" }] });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(claimed("ports"), "8001 8002 8003\n");
      assert.equal(
        claimed("units"),
        [
          "apphost-shop-prod-api@.service",
          "apphost-shop-prod-schedule-report.service",
          "apphost-shop-prod-schedule-report.timer",
          ...OWN_UNITS,
          "",
        ].join("\n"),
      );
    });

    it("a listener in an instance of this stack's web process under a former name is its own; another stack's web instance is not", () => {
      // Stand-in /proc: pid 4242 in shop-prod's web process as it was named (app), 4343 in shop-prod-eu's.
      const proc = path.join(dir, "proc");
      const pidDir = (pid: number, unit: string) => {
        fs.mkdirSync(path.join(proc, String(pid)), { recursive: true });
        fs.writeFileSync(path.join(proc, String(pid), "cgroup"), `0::/system.slice/${unit}\n`);
        fs.writeFileSync(path.join(proc, String(pid), "comm"), "gunicorn\n");
      };
      pidDir(4242, "apphost-shop-prod-app@8000.service");
      pidDir(4343, "apphost-shop-prod-eu-web@8001.service");
      fs.mkdirSync(unitDir(), { recursive: true });
      fs.writeFileSync(
        path.join(unitDir(), "apphost-shop-prod-app@.service"),
        "# apphost shop-prod: app process, one instance per port (@8000, @8001, ...).\n",
      );
      fs.writeFileSync(
        path.join(unitDir(), "apphost-shop-prod-eu-web@.service"),
        "# apphost shop-prod-eu: web process, one instance per port (@8000, @8001, ...).\n",
      );
      fs.writeFileSync(listeners, "8000 4242 gunicorn\n8001 4343 gunicorn\n");
      const r = run(8000, WEB_ONLY, proc);
      assert.equal(r.status, 1);
      assert.deepEqual(
        r.stderr.split("\n").filter((l) => l.startsWith("  - ")),
        ["  - 8001 is listened on by gunicorn (pid 4343, apphost-shop-prod-eu-web@8001.service)"],
      );
      // Without the other stack's listener: the former name's instance holds no port of another's.
      fs.writeFileSync(listeners, "8000 4242 gunicorn\n");
      const own = run(8000, WEB_ONLY, proc);
      assert.equal(own.status, 0, own.stderr);
      assert.equal(claimed("ports"), "8000 8001 8002\n");
    });

    it("refuses a unit name another stack claims, or whose file this stack did not write, each with its key; with the port refusal, and no claim written", () => {
      fs.mkdirSync(claims(), { recursive: true });
      fs.mkdirSync(unitDir(), { recursive: true });
      // shop-prod-eu's units: its web process's, and its backup's, which this stack's process eu-backup would name.
      fs.writeFileSync(
        path.join(claims(), "shop-prod-eu.units"),
        "apphost-shop-prod-eu-web@.service\napphost-shop-prod-eu-backup.service\n",
      );
      fs.writeFileSync(path.join(claims(), "blog-prod.ports"), "8002\n");
      // Unit files: this stack's own (no conflict), one of a stack deployed before the claims, one of the machine.
      const unitFile = (name: string, text: string) => fs.writeFileSync(path.join(unitDir(), name), text);
      unitFile(
        "apphost-shop-prod-web@.service",
        "# apphost shop-prod: web process, one instance per port.\n",
      );
      unitFile("apphost-shop-prod-eu-worker.service", "# apphost shop-prod-eu: worker process.\n[Unit]\n");
      unitFile("apphost-shop-prod-schedule-report.timer", "[Unit]\nDescription=report\n");
      const r = run(8000, {
        processes: [
          { name: "web", kind: "web" },
          { name: "eu-web", kind: "web" },
          { name: "eu-backup", kind: "worker" },
          { name: "eu-worker", kind: "worker" },
        ],
        schedules: [{ name: "report" }],
      });
      assert.equal(r.status, 1);
      const dirOf = unitDir();
      assert.equal(
        r.stderr,
        [
          "apphost:app.basePort: this stack's ports 8000, 8001 (web) and 8002 (upstream) are not all free on this host:",
          "  - 8002 is claimed by the stack blog-prod on this host",
          "Give the stack ports of its own, e.g.: pulumi config set --path 'apphost:app.basePort' 8100",
          "apphost:app.processes: this stack's systemd units are not all its own on this host:",
          "  - apphost-shop-prod-eu-web@.service (apphost:app.processes.eu-web) is claimed by the stack shop-prod-eu on this host",
          "  - apphost-shop-prod-eu-backup.service (apphost:app.processes.eu-backup) is claimed by the stack shop-prod-eu on this host",
          `  - apphost-shop-prod-eu-worker.service (apphost:app.processes.eu-worker) is a unit file this stack did not write: ${dirOf}/apphost-shop-prod-eu-worker.service begins "# apphost shop-prod-eu: worker process."`,
          `  - apphost-shop-prod-schedule-report.timer (apphost:app.schedules.report) is a unit file this stack did not write: ${dirOf}/apphost-shop-prod-schedule-report.timer begins "[Unit]"`,
          "Each unit is named apphost-shop-prod-<process> (a scheduled job's: -schedule-<name>), and another stack's id can start with shop-prod- (a process eu-web here names the web unit of a stack shop-prod-eu): rename the process or scheduled job, or deploy the stacks to different hosts.",
          "",
        ].join("\n"),
      );
      assert.equal(claimed("ports"), undefined, "no claim is written");
      assert.equal(claimed("units"), undefined);
      // The units alone refuse too.
      fs.rmSync(path.join(claims(), "blog-prod.ports"));
      const units = run(8000, { processes: [{ name: "eu-web", kind: "web" }], schedules: [] });
      assert.equal(units.status, 1);
      assert.match(units.stderr, /^apphost:app\.processes: this stack's systemd units are not all its own/);
      assert.equal(claimed("units"), undefined);
    });
  });
});

describe("app: a stack moved from SQLite to Postgres while its SQLite database holds data", () => {
  let dir = "";
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-switch-"))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const layout = () => ({ ...hostLayout("shop", "prod"), data: dir });
  const db = () => path.join(dir, "app.db");
  const run = (kind: "postgres" | "rds" | "external" | "sqlite") => {
    const script = [
      "set -euo pipefail",
      ...databaseSwitchCommands(layout(), { kind, sqliteFile: "app.db" }),
      "echo went on",
    ];
    const r = spawnSync("bash", ["-c", script.join("\n")], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const sqlite = (sql: string) => {
    const r = spawnSync("sqlite3", [db(), sql], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  };

  it("goes on when there is no SQLite file, or one that is not a database", () => {
    assert.deepEqual(run("postgres"), { status: 0, stdout: "went on\n", stderr: "" });
    fs.writeFileSync(db(), "not a database, a file the app keeps\n".repeat(200));
    assert.deepEqual(run("postgres"), { status: 0, stdout: "went on\n", stderr: "" });
    fs.rmSync(db());
  });

  it("goes on when the SQLite database has no table (one page)", () => {
    sqlite("PRAGMA user_version = 7;");
    assert.ok(fs.statSync(db()).size > 0);
    assert.deepEqual(run("postgres"), { status: 0, stdout: "went on\n", stderr: "" });
  });

  it("refuses when it holds a table, naming the file, its size and the way on; the same for rds and external", () => {
    sqlite("CREATE TABLE post (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO post (body) VALUES ('kept');");
    const r = run("postgres");
    assert.equal(r.status, 1);
    assert.equal(r.stdout, "", "nothing after the check ran");
    const size = spawnSync("du", ["-h", db()], { encoding: "utf8" }).stdout.split("\t")[0];
    assert.equal(
      r.stderr,
      `apphost: apphost:database.kind is postgres, but this stack's SQLite database ${db()} holds data (${size}): ` +
        "apphost does not move data between databases, and the app would start on an empty one. Move the data into the stack's " +
        `Postgres database yourself (pgloader, or a dump and load), then rename the file (mv ${db()} ${db()}.moved; it is never ` +
        "deleted) and run pulumi up again (docs/config.md, From SQLite to Postgres); or set apphost:database.kind back to sqlite. " +
        "Nothing of the release changed.\n",
    );
    assert.match(
      run("rds").stderr,
      /^apphost: apphost:database\.kind is rds, .* into the database DATABASE_URL names /,
    );
    assert.equal(run("external").status, 1);
    // Renamed, as the message says: the check passes, and the file is still there.
    fs.renameSync(db(), `${db()}.moved`);
    assert.equal(run("postgres").status, 0);
    assert.ok(fs.existsSync(`${db()}.moved`));
  });

  it("is no part of a SQLite stack's layout step", () => {
    assert.deepEqual(databaseSwitchCommands(layout(), { kind: "sqlite", sqliteFile: "app.db" }), []);
    assert.deepEqual(databaseSwitchCommands(layout(), { kind: "none", sqliteFile: "app.db" }), []);
    const pg = layoutCommands(hostLayout("shop", "prod"), {
      proxy: { kind: "caddy" },
      basePort: 8000,
      database: { kind: "postgres", sqliteFile: "app.db" },
      app: { processes: [], schedules: [] },
    }).create;
    assert.ok(pg.includes("od -An -tu1 -j28 -N4 /srv/shop-prod/shared/data/app.db"), pg);
  });
});

describe("app: the artifact cache", () => {
  const tarGz = Buffer.from("the artifact's bytes");
  const artifact = {
    contentHash: "0123abcd",
    sha256: createHash("sha256").update(tarGz).digest("hex"),
    tarGz,
  };
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-cache-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("writes the artifact under its content hash, with no partial file left", () => {
    const p = cacheArtifact(dir, artifact);
    assert.equal(p, path.join(dir, "0123abcd.tar.gz"));
    assert.deepEqual(fs.readFileSync(p), tarGz);
    assert.deepEqual(fs.readdirSync(dir), ["0123abcd.tar.gz"]);
  });

  it("replaces a cached file whose bytes are not the ones built (truncated or edited), and keeps a good one", () => {
    const p = path.join(dir, "0123abcd.tar.gz");
    fs.writeFileSync(p, "the artifact's by");
    cacheArtifact(dir, artifact);
    assert.deepEqual(fs.readFileSync(p), tarGz, "a truncated cache file was used");
    const inode = fs.statSync(p).ino;
    cacheArtifact(dir, artifact);
    assert.equal(fs.statSync(p).ino, inode, "a good cache file was rewritten");
  });
});
