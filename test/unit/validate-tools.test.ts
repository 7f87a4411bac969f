/**
 * Every rendered host file, checked by the tool that reads it on the host:
 * caddy validate/fmt, nginx -t, systemd-analyze verify/security/calendar,
 * systemd-tmpfiles, logrotate, apt-config, shellcheck, bash. Then both
 * proxies serve a real request through the rendered site on loopback.
 *
 * A missing tool fails its test with the command that installs it: these
 * checks are the reason the renderers can be trusted, so they never skip.
 *
 * Rendered files point at host paths (/var/log/caddy, /etc/letsencrypt). The tests pass a HostLayout and HostDirs that
 * point into a temp dir instead; the text is otherwise what the host gets.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, SpawnSyncReturns } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import type { TlsConfig } from "../../components/config/types";
import {
  alertUnitName,
  commandDropIn,
  HostLayout,
  hostLayout,
  scheduleUnitNames,
  upstreamUnitName,
} from "../../components/paths";
import { alertTestScript, execScript, logsScript, maintenanceScript } from "../../components/remote/day2";
import { renderAlertScript } from "../../components/render/alert";
import {
  AUTO_UPGRADES_PATH,
  UNATTENDED_UPGRADES_PATH,
  renderAutoUpgradesConf,
  renderBaseline,
  renderUnattendedUpgradesConf,
  runtimePackages,
} from "../../components/render/baseline";
import { CADDY_TLS_MODES, renderCaddySite, renderCaddyfile } from "../../components/render/caddy";
import {
  HostDirs,
  ProxySiteInput,
  acmeCaRootPath,
  caddyAccessLog,
  nginxLogs,
} from "../../components/render/common";
import { renderEnvFile } from "../../components/render/env";
import { renderLogrotate } from "../../components/render/logrotate";
import { needrestartConfPath, renderNeedrestartConf } from "../../components/render/needrestart";
import { NginxSiteInput, renderNginxSite } from "../../components/render/nginx";
import {
  backupUnitNames,
  renderBackupService,
  renderBackupTimer,
  renderCommandDropIn,
  UWSGI_GRACEFUL_TERM,
  renderProcessUnit,
  renderUpstreamUnit,
  renderAlertUnit,
  renderScheduleService,
  renderScheduleTimer,
} from "../../components/render/systemd";
import { renderSharedTmpfiles, renderTmpfiles } from "../../components/render/tmpfiles";
import { selfSignedCert } from "./certs";
import { python3 } from "./python3";
import { claimPorts, returnPorts } from "./release-harness";

const INSTALL: Record<string, string> = {
  caddy: "apt-get install -y caddy",
  nginx: "apt-get install -y nginx-light (or nginx)",
  "systemd-analyze": "apt-get install -y systemd",
  "systemd-tmpfiles": "apt-get install -y systemd",
  shellcheck: "apt-get install -y shellcheck",
  logrotate: "apt-get install -y logrotate",
  openssl: "apt-get install -y openssl",
  "apt-config": "apt-get install -y apt",
  bash: "apt-get install -y bash",
  python3: "apt-get install -y python3",
  perl: "apt-get install -y perl",
};

/** Runs a tool; a missing one fails the test with the command that installs it. */
function run(
  tool: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {},
): SpawnSyncReturns<string> {
  const r = spawnSync(tool, args, { encoding: "utf8", timeout: 60_000, ...opts });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
    throw new Error(
      `${tool} is not installed; this test validates rendered files with it. Install it: ${INSTALL[tool]}`,
    );
  }
  if (r.error) throw r.error;
  return r;
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

function write(file: string, content: string, mode = 0o644): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content, { mode });
  return file;
}

/** The certificate and key made for each name, as PEM: a name's files are copies after the first (openssl's key). */
const CERTS = new Map<string, { cert: string; key: string }>();

/** A self-signed certificate and key for `name`, for the TLS variants that load files. */
function makeCert(cert: string, key: string, name: string): void {
  let made = CERTS.get(name);
  if (!made) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-cert-"));
    try {
      selfSignedCert(`${dir}/cert`, `${dir}/key`, [name], 2);
      made = { cert: fs.readFileSync(`${dir}/cert`, "utf8"), key: fs.readFileSync(`${dir}/key`, "utf8") };
      CERTS.set(name, made);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  write(cert, made.cert);
  write(key, made.key, 0o600);
}

describe("validate-tools: real tools read the rendered files", () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-validate-"));
    // nginx workers (nobody) read static files from here in the runtime test.
    fs.chmodSync(tmp, 0o755);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** The host directories, under `root`; the log directories exist, as the packages create them on a host. */
  function dirsIn(root: string): HostDirs {
    fs.mkdirSync(`${root}/log/caddy`, { recursive: true });
    fs.mkdirSync(`${root}/log/nginx`, { recursive: true });
    return {
      caddyLogs: `${root}/log/caddy`,
      nginxLogs: `${root}/log/nginx`,
      acmeWebroot: `${root}/www/acme`,
      tls: `${root}/etc/apphost/tls`,
      letsencryptLive: `${root}/etc/letsencrypt/live`,
      localCaCerts: `${root}/usr/local/share/ca-certificates`,
      needrestartConf: `${root}/etc/needrestart/conf.d`,
    };
  }

  /** Two stacks side by side, as on a shared host, each with its own ports. */
  function stacks(): { layout: HostLayout; host: string; basePort: number }[] {
    return [
      { layout: hostLayout("shop", "prod"), host: "shop.example.com", basePort: 8000 },
      { layout: hostLayout("shop", "staging"), host: "staging.shop.example.com", basePort: 8100 },
    ];
  }

  function site(host: string, mode: TlsConfig["mode"], basePort = 8000): ProxySiteInput {
    return {
      hostnames: [host, `www.${host}`],
      tls: { mode },
      proxy: { maxBodySize: "25m", hsts: true, compression: true, httpPort: 80, httpsPort: 443 },
      app: {
        healthPath: "/healthz",
        staticDir: "frontend/dist",
        staticPrefix: "/static/",
        basePort,
        // Uploads the proxy serves from a shared directory (apphost:app.sharedUrls), beside the static files.
        sharedUrls: { "/media/": "media" },
      },
    };
  }

  /** Caddy keeps its data (the internal CA of `tls internal`) under HOME/XDG dirs: keep them in the temp dir. */
  function caddyEnv(root: string): NodeJS.ProcessEnv {
    return {
      ...process.env,
      HOME: `${root}/home`,
      XDG_DATA_HOME: `${root}/data`,
      XDG_CONFIG_HOME: `${root}/config`,
    };
  }

  describe("validate: caddy validate + caddy fmt", () => {
    for (const mode of CADDY_TLS_MODES) {
      it(`two stacks, tls ${mode}`, () => {
        const root = `${tmp}/caddy-${mode}`;
        const dirs = dirsIn(root);
        const files: string[] = [];
        const caddyfile = write(
          `${root}/Caddyfile`,
          renderCaddyfile({
            proxy: { httpPort: 80, httpsPort: 443 },
            sitesGlob: `${root}/caddy/*.caddy`,
          }),
        );
        files.push(caddyfile);
        for (const s of stacks()) {
          if (mode === "cloudflare-origin") {
            makeCert(`${dirs.tls}/${s.layout.id}.crt`, `${dirs.tls}/${s.layout.id}.key`, s.host);
          }
          files.push(
            write(
              `${root}/caddy/${s.layout.id}.caddy`,
              renderCaddySite(s.layout, site(s.host, mode, s.basePort), dirs),
            ),
          );
        }
        const out = ok(
          run("caddy", ["validate", "--adapter", "caddyfile", "--config", caddyfile], {
            env: caddyEnv(root),
          }),
          "caddy validate",
        );
        assert.match(out, /Valid configuration/);
        assert.doesNotMatch(out, /not formatted/, "caddy warns that a file is not formatted");
        for (const f of files) {
          const fmt = ok(run("caddy", ["fmt", f]), `caddy fmt ${f}`);
          assert.equal(
            fmt.trimEnd(),
            fs.readFileSync(f, "utf8").trimEnd(),
            `${f} is not formatted as caddy fmt would`,
          );
        }
      });
    }
  });

  describe("caddy adapt: stacks with different TLS modes on one host", () => {
    it("each keeps its own issuer: ACME for the caddy-acme stack, the internal CA for the internal one, none for off", () => {
      const root = `${tmp}/caddy-mixed`;
      const caddyfile = write(
        `${root}/Caddyfile`,
        renderCaddyfile({ proxy: { httpPort: 80, httpsPort: 443 }, sitesGlob: `${root}/caddy/*.caddy` }),
      );
      const mixed: [string, TlsConfig["mode"], number][] = [
        ["prod", "caddy-acme", 8000],
        ["staging", "internal", 8100],
        ["preview", "off", 8200],
        ["qa", "caddy-acme", 8300],
      ];
      // The qa stack gets its certificates from an internal ACME server whose HTTPS chains to a root of its own.
      const qaRoot = acmeCaRootPath(hostLayout("shop", "qa"), dirsIn(root));
      makeCert(qaRoot, `${root}/qa-root.key`, "ca.internal");
      for (const [stack, mode, basePort] of mixed) {
        const input = site(`${stack}.shop.example.com`, mode, basePort);
        input.tls =
          stack === "qa"
            ? {
                mode,
                email: "qa@example.com",
                acmeDirectory: "https://ca.internal:9000/acme/acme/directory",
                acmeCaRoot: fs.readFileSync(qaRoot, "utf8"),
              }
            : { mode, email: "ops@example.com" };
        write(
          `${root}/caddy/shop-${stack}.caddy`,
          renderCaddySite(hostLayout("shop", stack), input, dirsIn(root)),
        );
      }
      const json = JSON.parse(
        ok(
          run("caddy", ["adapt", "--adapter", "caddyfile", "--config", caddyfile], { env: caddyEnv(root) }),
          "caddy adapt",
        ),
      ) as {
        apps: {
          tls?: {
            automation?: {
              policies?: {
                subjects?: string[];
                issuers?: {
                  module: string;
                  email?: string;
                  ca?: string;
                  trusted_roots_pem_files?: string[];
                }[];
              }[];
            };
          };
          http: {
            servers: Record<string, { listen: string[]; routes?: { match?: { host?: string[] }[] }[] }>;
          };
        };
      };
      const policies = json.apps.tls?.automation?.policies ?? [];
      const issuersOf = (host: string) =>
        (policies.find((p) => p.subjects === undefined || p.subjects.includes(host))?.issuers ?? []).map(
          (i) => `${i.module}:${i.email ?? ""}`,
        );
      // Caddy's ACME issuers (Let's Encrypt, then ZeroSSL), with this stack's account only.
      assert.deepEqual(
        issuersOf("prod.shop.example.com"),
        ["acme:ops@example.com", "zerossl:ops@example.com"],
        JSON.stringify(policies),
      );
      const qa = policies.find((p) => p.subjects?.includes("qa.shop.example.com"));
      assert.deepEqual(
        qa?.issuers,
        [
          {
            module: "acme",
            ca: "https://ca.internal:9000/acme/acme/directory",
            email: "qa@example.com",
            trusted_roots_pem_files: [qaRoot],
          },
        ],
        JSON.stringify(policies),
      );
      assert.deepEqual(issuersOf("staging.shop.example.com"), ["internal:"], JSON.stringify(policies));
      // The off stack is served on :80 only.
      const servers = Object.values(json.apps.http.servers);
      const hostsOn = (port: string) =>
        servers
          .filter((srv) => srv.listen.some((l) => l.endsWith(port)))
          .flatMap((srv) => (srv.routes ?? []).flatMap((r) => (r.match ?? []).flatMap((m) => m.host ?? [])));
      assert.ok(hostsOn(":80").includes("preview.shop.example.com"), JSON.stringify(json.apps.http));
      assert.ok(!hostsOn(":443").includes("preview.shop.example.com"), JSON.stringify(json.apps.http));
      assert.ok(hostsOn(":443").includes("staging.shop.example.com"), JSON.stringify(json.apps.http));
    });
  });

  /** nginx.conf shaped like Debian's (same http-level settings), with Debian's default site next to ours. */
  function nginxConf(root: string): string {
    fs.mkdirSync(`${root}/temp`, { recursive: true });
    return `pid ${root}/nginx.pid;
error_log ${root}/error.log;
events {
	worker_connections 768;
}
http {
	sendfile on;
	tcp_nopush on;
	types_hash_max_size 2048;
	include /etc/nginx/mime.types;
	default_type application/octet-stream;
	ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
	ssl_prefer_server_ciphers on;
	access_log ${root}/access.log;
	gzip on;
	client_body_temp_path ${root}/temp/body;
	proxy_temp_path ${root}/temp/proxy;
	fastcgi_temp_path ${root}/temp/fastcgi;
	uwsgi_temp_path ${root}/temp/uwsgi;
	scgi_temp_path ${root}/temp/scgi;
	include ${root}/sites-enabled/*;
}
`;
  }

  const DEBIAN_DEFAULT_SITE = `server {
	listen 80 default_server;
	listen [::]:80 default_server;
	root /var/www/html;
	index index.html index.htm index.nginx-debian.html;
	server_name _;
	location / {
		try_files $uri $uri/ =404;
	}
}
`;

  describe("validate: nginx -t", () => {
    const variants: [string, (host: string) => NginxSiteInput][] = [
      ["off", (h) => site(h, "off")],
      ["certbot", (h) => site(h, "certbot")],
      ["certbot before the first certificate", (h) => ({ ...site(h, "certbot"), certbotBootstrap: true })],
      ["cloudflare-origin", (h) => site(h, "cloudflare-origin")],
      [
        "certbot, no compression, no static, no HSTS",
        (h) => {
          const s = site(h, "certbot");
          return {
            ...s,
            proxy: { ...s.proxy, compression: false, hsts: false },
            app: { ...s.app, staticDir: undefined },
          };
        },
      ],
    ];
    variants.forEach(([name, input0], i) => {
      const input = (h: string, basePort: number) => {
        const v = input0(h);
        return { ...v, app: { ...v.app, basePort } };
      };
      it(`two stacks and Debian's default site, tls ${name}`, () => {
        const root = `${tmp}/nginx-${i}`;
        const dirs = dirsIn(root);
        write(`${root}/nginx.conf`, nginxConf(root));
        write(`${root}/sites-enabled/default`, DEBIAN_DEFAULT_SITE);
        for (const s of stacks()) {
          const siteInput = input(s.host, s.basePort);
          if (siteInput.tls.mode === "certbot" && !siteInput.certbotBootstrap) {
            const live = `${dirs.letsencryptLive}/${s.host}`;
            makeCert(`${live}/fullchain.pem`, `${live}/privkey.pem`, s.host);
          }
          if (siteInput.tls.mode === "cloudflare-origin") {
            makeCert(`${dirs.tls}/${s.layout.id}.crt`, `${dirs.tls}/${s.layout.id}.key`, s.host);
          }
          write(
            `${root}/sites-enabled/apphost-${s.layout.id}.conf`,
            renderNginxSite(s.layout, siteInput, dirs),
          );
        }
        const out = ok(run("nginx", ["-t", "-p", root, "-c", `${root}/nginx.conf`]), "nginx -t");
        assert.match(out, /test is successful/);
        assert.doesNotMatch(out, /\[warn\]|\[emerg\]/, out);
      });
    });
  });

  describe("validate: systemd-analyze", () => {
    const layout = hostLayout("shop", "prod");
    const web = {
      name: "web",
      kind: "web" as const,
      command: "gunicorn app.main:app --bind 127.0.0.1:$PORT",
    };

    function unitFiles(root: string): Record<string, string> {
      // verify checks that ExecStart's binary exists and is executable. The
      // process units run /bin/sh, which exists; the backup unit's program is
      // an input, so it points at an executable made in the temp dir. (A
      // --root= temp tree would need a copy of every systemd unit it pulls in.)
      const backupProgram = write(`${root}/bin/backup`, "#!/bin/sh\nexit 0\n", 0o755);
      const backup = { backups: { schedule: "daily" }, execStart: backupProgram };
      const names = backupUnitNames(layout);
      return {
        "apphost-shop-prod-web@.service": renderProcessUnit(layout, { process: web, runtime: "python" }),
        "apphost-node-prod-web@.service": renderProcessUnit(hostLayout("node", "prod"), {
          process: { ...web, command: "node server.js" },
          runtime: "node",
        }),
        "apphost-shop-prod-worker.service": renderProcessUnit(layout, {
          process: { name: "worker", kind: "worker", command: "python -m app.worker" },
          runtime: "python",
        }),
        [names.service]: renderBackupService(layout, backup),
        [names.timer]: renderBackupTimer(layout, backup),
        [upstreamUnitName(layout)]: renderUpstreamUnit(layout, { script: backupProgram }),
        // apphost:backups.s3: the same service with the network for the copy.
        [backupUnitNames(hostLayout("s3", "prod")).service]: renderBackupService(hostLayout("s3", "prod"), {
          ...backup,
          network: true,
        }),
        // apphost:alerts: OnFailure= on a worker, a scheduled job, the alert unit itself.
        "apphost-alrt-prod-worker.service": renderProcessUnit(hostLayout("alrt", "prod"), {
          process: { name: "worker", kind: "worker", command: "python -m app.worker" },
          runtime: "python",
          alerts: true,
        }),
        [scheduleUnitNames(layout, "cleanup").service]: renderScheduleService(layout, {
          schedule,
          runtime: "python",
          alerts: true,
        }),
        [scheduleUnitNames(layout, "cleanup").timer]: renderScheduleTimer(layout, {
          schedule,
          runtime: "python",
        }),
        [alertUnitName(layout)]: renderAlertUnit(layout, { script: backupProgram }),
      };
    }
    const schedule = {
      name: "cleanup",
      command: "flask purge-sessions",
      onCalendar: "*:*:0/10",
      timeoutSeconds: 600,
    };

    it("verify: every unit parses with no warning", () => {
      const root = `${tmp}/systemd-verify`;
      const paths = Object.entries(unitFiles(root)).map(([name, content]) =>
        write(`${root}/units/${name}`, content),
      );
      const r = run("systemd-analyze", ["verify", ...paths]);
      // verify exits 0 on unknown keys and bad values and only prints them: any
      // line naming one of our files or units is a failure.
      const ours = (r.stdout + r.stderr)
        .split("\n")
        .filter((l) => l.includes(root) || l.includes("apphost-"));
      assert.deepEqual(ours, []);
      ok(r, "systemd-analyze verify");
    });

    it("verify: a uWSGI web instance's and a node worker's command drop-ins parse with no warning (a bad key would be named)", () => {
      const root = `${tmp}/systemd-verify-dropins`;
      const units = unitFiles(root);
      const dropIn = (unit: string, lines: string[]) =>
        write(
          `${root}/units/${path.relative(layout.unitDir, commandDropIn(layout, unit))}`,
          `${lines.join("\n")}\n`,
        );
      const verify = () => {
        const r = run("systemd-analyze", [
          "verify",
          write(`${root}/units/apphost-shop-prod-web@.service`, units["apphost-shop-prod-web@.service"]),
          `${root}/units/apphost-shop-prod-web@8001.service`,
          write(`${root}/units/apphost-shop-prod-worker.service`, units["apphost-shop-prod-worker.service"]),
        ]);
        return (r.stdout + r.stderr).split("\n").filter((l) => l.includes(root) || l.includes("apphost-"));
      };
      // uWSGI: its SIGTERM hook is an Environment= line quoted for its blank.
      const webLines = renderCommandDropIn(layout, {
        process: {
          ...web,
          command: "UWSGI_PROCESSES=2 uwsgi --http-socket 127.0.0.1:$PORT --module app:app",
        },
        runtime: "python",
      });
      assert.ok(webLines.includes(`Environment="UWSGI_HOOK_MASTER_START=${UWSGI_GRACEFUL_TERM}"`));
      dropIn("apphost-shop-prod-web@8001.service", webLines);
      dropIn(
        "apphost-shop-prod-worker.service",
        renderCommandDropIn(layout, {
          process: { name: "worker", kind: "worker", command: "node worker.js" },
          runtime: "python",
        }),
      );
      assert.deepEqual(verify(), []);
      // The control: verify reads the instance's drop-in, and names a key systemd does not know.
      dropIn("apphost-shop-prod-web@8001.service", [...webLines, "NoSuchKey=1"]);
      assert.match(verify().join("\n"), /apphost-command\.conf:\d+: Unknown key 'NoSuchKey'/);
    });

    // Measured on systemd 252 (Debian 12): 1.5 for the python web unit, 1.5 for
    // the node web unit and the worker, 1.7 for the backup service (root with
    // five capabilities, no network), 2.5 for the backup service that copies to
    // S3 (the same plus the network: PrivateNetwork 0.5, AF_INET 0.3). See docs/host-files.md.
    for (const [name, limit] of [
      ["apphost-shop-prod-web@.service", 2.0],
      ["apphost-node-prod-web@.service", 2.0],
      ["apphost-shop-prod-worker.service", 2.0],
      ["apphost-shop-prod-backup.service", 2.0],
      ["apphost-s3-prod-backup.service", 2.5],
      ["apphost-shop-prod-schedule-cleanup.service", 2.0],
    ] as const) {
      it(`security: ${name} exposure <= ${limit.toFixed(1)}`, () => {
        const root = `${tmp}/systemd-security`;
        const file = write(`${root}/units/${name}`, unitFiles(root)[name]);
        const out = ok(
          run("systemd-analyze", ["security", "--offline=true", "--no-pager", file]),
          "systemd-analyze security",
        );
        const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(out);
        assert.ok(m, `no exposure level in:\n${out}`);
        const exposure = Number(m[1]);
        assert.ok(exposure <= limit, `${name}: exposure ${exposure} > ${limit}\n${out}`);
      });
    }

    it("calendar: the default backup schedule and a custom one parse", () => {
      ok(
        run("systemd-analyze", ["calendar", "daily", "Mon..Fri *-*-* 03:30:00"]),
        "systemd-analyze calendar",
      );
    });
  });

  describe("validate: systemd-tmpfiles --create in a temp root", () => {
    it("creates every directory with its owner and mode", () => {
      const root = `${tmp}/tmpfiles-root`;
      // tmpfiles resolves owners from the root's own passwd/group.
      write(
        `${root}/etc/passwd`,
        "root:x:0:0::/root:/bin/sh\ncaddy:x:990:990::/var/lib/caddy:/usr/sbin/nologin\nshop-prod:x:991:991::/srv/shop-prod:/usr/sbin/nologin\n",
      );
      write(`${root}/etc/group`, "root:x:0:\ncaddy:x:990:\nshop-prod:x:991:\n");
      const layout = hostLayout("shop", "prod");
      const stack = write(
        `${tmp}/tmpfiles/apphost-shop-prod.conf`,
        renderTmpfiles(layout, { proxy: { kind: "caddy" }, tls: { mode: "certbot" } }),
      );
      const shared = write(
        `${tmp}/tmpfiles/apphost.conf`,
        renderSharedTmpfiles({ proxy: { kind: "caddy" } }),
      );
      const out = ok(
        run("systemd-tmpfiles", ["--create", `--root=${root}`, shared, stack]),
        "systemd-tmpfiles --create",
      );
      assert.equal(out, "");
      const expect: [string, number, number, number][] = [
        ["/etc/apphost", 0o755, 0, 0],
        ["/etc/apphost/tls", 0o750, 0, 990],
        ["/etc/caddy/apphost", 0o755, 0, 0],
        ["/srv/shop-prod", 0o755, 0, 0],
        ["/srv/shop-prod/releases", 0o755, 0, 0],
        ["/srv/shop-prod/instances", 0o755, 0, 0],
        ["/srv/shop-prod/venvs", 0o755, 0, 0],
        ["/srv/shop-prod/bin", 0o755, 0, 0],
        ["/srv/shop-prod/cache", 0o750, 991, 991],
        ["/srv/shop-prod/shared", 0o755, 0, 0],
        ["/srv/shop-prod/shared/data", 0o750, 991, 991],
        ["/srv/shop-prod/shared/logs", 0o750, 991, 991],
        ["/srv/shop-prod/shared/backups", 0o700, 0, 0],
        ["/var/www/acme/shop-prod", 0o755, 0, 0],
        ["/var/log/caddy/shop-prod.access.log", 0o640, 990, 990],
      ];
      for (const [p, mode, uid, gid] of expect) {
        const st = fs.statSync(`${root}${p}`);
        assert.deepEqual([p, st.mode & 0o7777, st.uid, st.gid], [p, mode, uid, gid]);
      }
    });
  });

  describe("validate: logrotate", () => {
    it("parses, and a forced rotation copies and truncates as the owners", function () {
      const root = `${tmp}/logrotate`;
      if (run("id", ["caddy"]).status !== 0) {
        throw new Error("user caddy is missing; it comes with the caddy package: apt-get install -y caddy");
      }
      // `su` needs users that exist here: daemon stands in for the app user.
      const layout = { ...hostLayout("shop", "prod"), user: "daemon", logs: `${root}/logs` };
      const dirs = dirsIn(root);
      const conf = write(
        `${root}/apphost-shop-prod`,
        renderLogrotate(layout, { proxy: { kind: "caddy" } }, dirs),
      );
      const appLog = write(`${layout.logs}/app.log`, "app line\n", 0o640);
      const accessLog = write(caddyAccessLog(layout, dirs), "access line\n", 0o644);
      run("chown", ["-R", "daemon:daemon", layout.logs]);
      run("chown", ["-R", "caddy:caddy", dirs.caddyLogs]);
      const debug = run("logrotate", ["-d", "-s", `${root}/state`, conf]);
      assert.doesNotMatch(debug.stdout + debug.stderr, /error:/);
      ok(debug, "logrotate -d");
      ok(run("logrotate", ["-f", "-s", `${root}/state`, conf]), "logrotate -f");
      for (const log of [appLog, accessLog]) {
        assert.equal(fs.statSync(log).size, 0, `${log} was not truncated`);
        assert.ok(
          fs.existsSync(`${log}.1`),
          `${log}.1 missing (delaycompress keeps the first rotation plain)`,
        );
      }
    });

    it("nginx stacks add no entry for Debian's /var/log/nginx/*.log", () => {
      const root = `${tmp}/logrotate-nginx`;
      const layout = { ...hostLayout("shop", "prod"), user: "daemon", logs: `${root}/logs` };
      const conf = write(`${root}/apphost-shop-prod`, renderLogrotate(layout, { proxy: { kind: "nginx" } }));
      const out = run("logrotate", ["-d", "-s", `${root}/state`, conf]);
      ok(out, "logrotate -d");
      assert.doesNotMatch(out.stdout + out.stderr, /var\/log\/nginx/);
      assert.equal(nginxLogs(layout).access, "/var/log/nginx/apphost-shop-prod.access.log");
    });
  });

  describe("validate: perl reads the needrestart fragment as needrestart does", () => {
    it("sets override_rc to 0 for the web instances' units alone, beside the defaults", () => {
      const conf = write(
        needrestartConfPath(hostLayout("shop", "prod"), dirsIn(`${tmp}/needrestart`)),
        renderNeedrestartConf(hostLayout("shop", "prod"), "web"),
      );
      ok(run("perl", ["-c", conf]), "perl -c");
      // needrestart.conf evaluates each conf.d/*.conf (`eval` of its text, dying on an error); a unit's restart is the
      // value of the first override_rc pattern it matches (needrestart 3.6's loop, here with a default for dbus).
      const units = [
        "apphost-shop-prod-web@8000.service",
        "apphost-shop-prod-web@8001.service",
        "apphost-shop-prod-worker.service",
        "apphost-shop-prod-eu-web@8000.service",
        "apphost-shop-prodxweb@8000.service",
        "dbus.service",
        "caddy.service",
      ];
      const perl = [
        "our %nrconf = (override_rc => { qr(^dbus) => 0 });",
        "my $fn = shift @ARGV;",
        "eval do { local(@ARGV, $/) = $fn; <> };",
        'die "Error parsing $fn: $@" if $@;',
        "for my $rc (@ARGV) {",
        "  my $restart = 1;",
        "  foreach my $re (keys %{$nrconf{override_rc}}) { next unless $rc =~ /$re/; $restart = $nrconf{override_rc}->{$re}; last; }",
        '  print "$rc $restart\\n";',
        "}",
      ].join("\n");
      assert.equal(
        ok(run("perl", ["-e", perl, conf, ...units]), "perl"),
        [
          "apphost-shop-prod-web@8000.service 0",
          "apphost-shop-prod-web@8001.service 0",
          "apphost-shop-prod-worker.service 1",
          "apphost-shop-prod-eu-web@8000.service 1",
          "apphost-shop-prodxweb@8000.service 1",
          "dbus.service 0",
          "caddy.service 1",
          "",
        ].join("\n"),
      );
    });
  });

  describe("validate: apt-config reads the unattended-upgrades files", () => {
    it("security origins only, after clearing Debian's lists", () => {
      const root = `${tmp}/apt`;
      // What Debian's 50unattended-upgrades sets, then our 52 file on top.
      const debian = write(
        `${root}/50unattended-upgrades`,
        'Unattended-Upgrade::Origins-Pattern { "origin=Debian,codename=${distro_codename},label=Debian"; };\n',
      );
      const ours = write(
        `${root}/${path.basename(UNATTENDED_UPGRADES_PATH)}`,
        renderUnattendedUpgradesConf(),
      );
      const both = write(`${root}/combined`, fs.readFileSync(debian, "utf8") + fs.readFileSync(ours, "utf8"));
      const dump = ok(run("apt-config", ["-c", both, "dump", "Unattended-Upgrade"]), "apt-config dump");
      assert.deepEqual(
        dump.split("\n").filter((l) => l.startsWith("Unattended-Upgrade::Origins-Pattern:: ")),
        [
          'Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";',
          'Unattended-Upgrade::Origins-Pattern:: "origin=Ubuntu,archive=${distro_codename}-security,label=Ubuntu";',
        ],
      );
      const auto = write(`${root}/${path.basename(AUTO_UPGRADES_PATH)}`, renderAutoUpgradesConf());
      const periodic = ok(run("apt-config", ["-c", auto, "dump", "APT::Periodic"]), "apt-config dump");
      assert.match(periodic, /APT::Periodic::Unattended-Upgrade "1";/);
      assert.match(periodic, /APT::Periodic::Update-Package-Lists "1";/);
    });
  });

  describe("validate: shellcheck + bash -n on the baseline", () => {
    const variants: [string, Parameters<typeof renderBaseline>[0]][] = [
      [
        "caddy, python, sqlite, swap",
        {
          host: { swapMb: 1024 },
          proxy: { kind: "caddy", ports: [80, 443] },
          packages: runtimePackages({
            proxy: { kind: "caddy" },
            app: { runtime: "python" },
            tls: { mode: "caddy-acme" },
            database: { kind: "sqlite" },
            backups: { s3: false },
          }),
        },
      ],
      [
        "nginx, node, certbot, awscli, no swap",
        {
          host: { swapMb: 0 },
          proxy: { kind: "nginx", ports: [8080, 8443] },
          packages: runtimePackages({
            proxy: { kind: "nginx" },
            app: { runtime: "node" },
            tls: { mode: "certbot" },
            database: { kind: "postgres" },
            backups: { s3: true },
          }),
        },
      ],
    ];
    variants.forEach(([name, input], i) => {
      it(name, () => {
        const file = write(`${tmp}/baseline-${i}.sh`, renderBaseline(input), 0o755);
        ok(run("shellcheck", ["-s", "bash", "-S", "style", file]), "shellcheck");
        ok(run("bash", ["-n", file]), "bash -n");
      });
    });
  });

  describe("validate: shellcheck + bash -n on the alert script and the day-2 scripts", () => {
    const layout = hostLayout("shop", "prod");
    const scripts: [string, string][] = [
      ["alert", renderAlertScript(layout, { app: "shop", stack: "prod" })],
      ["logs", logsScript(layout, { app: { processes: [], schedules: [] }, follow: false })],
      ["logs -f", logsScript(layout, { app: { processes: [], schedules: [] }, follow: true, since: "1h" })],
      [
        "logs migrate",
        logsScript(layout, { app: { processes: [], schedules: [] }, follow: false, process: "migrate" }),
      ],
      ["exec", execScript(layout, { runtime: "python", argv: ["python", "-c", "print(1)"], tty: false })],
      ["exec --tty", execScript(layout, { runtime: "python", argv: ["bash"], tty: true })],
      ["maintenance on", maintenanceScript(layout, "on")],
      ["maintenance off", maintenanceScript(layout, "off")],
      ["alert test", alertTestScript(layout)],
    ];
    scripts.forEach(([name, text], i) => {
      it(name, () => {
        const file = write(
          `${tmp}/day2-${i}.sh`,
          text.startsWith("#!") ? text : `#!/bin/bash\n${text}`,
          0o755,
        );
        ok(run("shellcheck", ["-s", "bash", "-S", "style", file]), "shellcheck");
        ok(run("bash", ["-n", file]), "bash -n");
      });
    });
  });

  describe("validate: the env file is valid POSIX sh too", () => {
    it("sourcing it yields every value byte for byte", () => {
      const layout = hostLayout("shop", "prod");
      const env = {
        QUOTES: `it's "quoted"`,
        DOLLAR: "$HOME and ${PATH} and $(id)",
        BACKTICK: "`id`",
        BACKSLASH: "C:\\path\\n",
        NEWLINE: "line1\nline2",
        HASH: "#not a comment",
        SPACES: "  padded  ",
        EMPTY: "",
      };
      const file = write(
        `${tmp}/env/shop-prod.env`,
        // As secretEnv: written as given (apphost:app.env would read ${PATH} as a reference).
        renderEnvFile(layout, {
          stack: "prod",
          env: {},
          secretEnv: env,
          database: { kind: "sqlite", sqliteFile: "app.db" },
        }),
      );
      const keys = [...Object.keys(env), "APP_ENV", "DATABASE_URL"];
      const r = ok(
        run(
          "bash",
          ["-c", 'set -a; . "$1"; shift; for k in "$@"; do printf "%s\\0" "${!k}"; done', "-", file, ...keys],
          {
            env: { PATH: "/usr/bin:/bin" },
          },
        ),
        "bash: . env file",
      );
      assert.deepEqual(r.split("\0").slice(0, keys.length), [
        ...Object.values(env),
        "prod",
        "sqlite:////srv/shop-prod/shared/data/app.db",
      ]);
    });
  });

  interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    raw: string[];
    body: string;
  }

  /** `latin1`: the body's bytes one char each (a gzip body) */
  function request(
    port: number,
    p: string,
    opts: { method?: string; body?: Buffer; headers?: http.OutgoingHttpHeaders; encoding?: "latin1" } = {},
  ): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: "127.0.0.1",
          port,
          path: p,
          method: opts.method ?? "GET",
          headers: opts.headers,
          agent: false,
          timeout: 5_000,
        },
        (res) => {
          let body = "";
          res.setEncoding(opts.encoding ?? "utf8");
          res.on("data", (c) => (body += c));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, raw: res.rawHeaders, body }),
          );
        },
      );
      req.on("error", reject);
      req.on("timeout", () => req.destroy(new Error(`timeout on ${p}`)));
      req.end(opts.body);
    });
  }

  /** Until the proxy answers 200 through to the app (the app may start after the proxy). */
  async function waitFor(port: number, p: string, deadlineMs: number): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      try {
        const r = await request(port, p);
        if (r.status === 200) return;
        if (Date.now() > end) throw new Error(`${p} still answers ${r.status}`);
      } catch (e) {
        if (Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** How many times a header appears (node joins duplicates, rawHeaders does not). */
  function count(reply: Reply, name: string): number {
    return reply.raw.filter((_, i) => i % 2 === 0).filter((h) => h.toLowerCase() === name.toLowerCase())
      .length;
  }

  const BACKEND = `
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        if self.path == "/own-headers":
            self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(("app " + self.path + "\\n").encode())
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.do_GET()
    def log_message(self, *a):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`;

  describe("validate: both proxies serve through the rendered site", function () {
    this.timeout(30_000);

    async function serve(proxy: "caddy" | "nginx"): Promise<void> {
      const root = `${tmp}/serve-${proxy}`;
      const dirs = dirsIn(root);
      // Claimed below the ephemeral range, as the release harness claims its hosts' ports: a free port found by
      // binding port 0 could be taken, before the app or the proxy binds it, by another spec's server on port 0 (the
      // proxy then answered that server's 500 at /healthz, once, in CI).
      const base = claimPorts();
      const [proxyPort, appPort] = [base + 1, base + 2];
      const layout = {
        ...hostLayout("shop", "prod"),
        current: `${root}/current`,
        maintenance: `${root}/maintenance`,
      };
      write(`${layout.current}/frontend/dist/app.js`, "console.log('static');\n");
      // A build's precompressed copy beside it, of other text, so what is served shows which file it came from.
      fs.writeFileSync(
        `${layout.current}/frontend/dist/app.js.gz`,
        zlib.gzipSync("console.log('precompressed');\n"),
      );
      write(`${layout.maintenance}/page.html`, "<h1>back soon</h1>\n");
      const input: ProxySiteInput = {
        hostnames: ["127.0.0.1"],
        tls: { mode: "off" },
        proxy: { maxBodySize: "1k", hsts: true, compression: true, httpPort: proxyPort, httpsPort: 443 },
        // The proxy connects to basePort + 2, which nftables leads to the live
        // instance on a host; here the app listens on that port itself.
        app: {
          healthPath: "/healthz",
          staticDir: "frontend/dist",
          staticPrefix: "/static/",
          basePort: appPort - 2,
        },
      };
      const children: ReturnType<typeof spawn>[] = [];
      const start = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) => {
        run(cmd, ["--version"]); // fails with the install hint when missing
        const c = spawn(cmd, args, { stdio: "ignore", env: env ?? process.env });
        children.push(c);
      };
      let accessLog: string;
      try {
        start(python3(), ["-c", BACKEND, String(appPort)]);
        if (proxy === "caddy") {
          accessLog = caddyAccessLog(layout, dirs);
          write(`${root}/caddy/shop-prod.caddy`, renderCaddySite(layout, input, dirs));
          // The main Caddyfile is checked above; here the admin API is off so a
          // Caddy already running on this machine (port 2019) is no obstacle.
          const main = write(
            `${root}/Caddyfile`,
            `{\n\tadmin off\n\thttp_port ${proxyPort}\n}\n\nimport ${root}/caddy/*.caddy\n`,
          );
          start("caddy", ["run", "--adapter", "caddyfile", "--config", main], caddyEnv(root));
        } else {
          accessLog = nginxLogs(layout, dirs).access;
          write(`${root}/nginx.conf`, nginxConf(root));
          write(`${root}/sites-enabled/apphost-shop-prod.conf`, renderNginxSite(layout, input, dirs));
          start("nginx", ["-p", root, "-c", `${root}/nginx.conf`, "-g", "daemon off;"]);
        }
        await waitFor(proxyPort, "/healthz", 10_000);

        const plain = await request(proxyPort, "/plain");
        assert.equal(plain.body, "app /plain\n");
        assert.equal(plain.headers["x-frame-options"], "SAMEORIGIN");
        assert.equal(plain.headers["x-content-type-options"], "nosniff");
        assert.equal(plain.headers["referrer-policy"], "strict-origin-when-cross-origin");
        assert.equal(plain.headers["strict-transport-security"], undefined, "HSTS over plain HTTP");

        // The app's own header wins, and is not duplicated; the other defaults stay.
        const own = await request(proxyPort, "/own-headers");
        assert.equal(count(own, "X-Frame-Options"), 1);
        assert.equal(own.headers["x-frame-options"], "DENY");
        assert.equal(own.headers["referrer-policy"], "strict-origin-when-cross-origin");

        const st = await request(proxyPort, "/static/app.js");
        assert.equal(st.body, "console.log('static');\n");
        assert.equal(st.headers["x-content-type-options"], "nosniff");
        // A client that takes gzip gets the build's .gz as it is, not the file compressed again.
        const gz = await request(proxyPort, "/static/app.js", {
          headers: { "accept-encoding": "gzip" },
          encoding: "latin1",
        });
        assert.equal(gz.headers["content-encoding"], "gzip");
        assert.match(String(gz.headers.vary), /Accept-Encoding/i);
        assert.equal(
          zlib.gunzipSync(Buffer.from(gz.body, "latin1")).toString(),
          "console.log('precompressed');\n",
        );

        // A path under the prefix that the build did not put there reaches the app, prefix and query as sent
        // (an app may serve more there: uploads, linkding's favicons from its data directory).
        const fromApp = await request(proxyPort, "/static/favicons/example.org.png?v=2");
        assert.equal(fromApp.status, 200);
        assert.equal(fromApp.body, "app /static/favicons/example.org.png?v=2\n");

        const big = await request(proxyPort, "/upload", { method: "POST", body: Buffer.alloc(4096, 97) });
        // nginx says 413; Caddy 2.6 reports the refused body as 502.
        assert.ok([413, 502].includes(big.status), `a 4k body passed the 1k limit: ${big.status}`);
        const small = await request(proxyPort, "/upload", { method: "POST", body: Buffer.alloc(100, 97) });
        assert.equal(small.status, 200);

        // Maintenance: either switch file turns it on at once (no reload), for
        // every path but the health path; removing both turns it off.
        for (const flag of ["on", "on-config"]) {
          const file = write(`${layout.maintenance}/${flag}`, "x\n");
          for (const p of ["/plain", "/static/app.js", "/static/favicons/example.org.png"]) {
            const m = await request(proxyPort, p);
            assert.equal(m.status, 503, `${flag} ${p}`);
            assert.equal(m.body, "<h1>back soon</h1>\n", `${flag} ${p}`);
            assert.equal(m.headers["retry-after"], "120", `${flag} ${p}`);
          }
          const health = await request(proxyPort, "/healthz");
          assert.equal(health.status, 200, `${flag}: the health path reaches the app`);
          fs.rmSync(file);
        }
        assert.equal((await request(proxyPort, "/plain")).status, 200, "off again");

        await request(proxyPort, "/healthz");
        const logged = fs.readFileSync(accessLog, "utf8");
        assert.match(logged, /\/plain/);
        assert.doesNotMatch(logged, /healthz/, "the health path is not access-logged");
      } finally {
        for (const c of children) c.kill("SIGTERM");
        returnPorts(base);
      }
    }

    it("caddy", () => serve("caddy"));
    it("nginx", () => serve("nginx"));
  });
});
