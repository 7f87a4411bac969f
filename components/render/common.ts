/**
 * Pieces shared by the host-file renderers: the proxy site input, its
 * validation, the host directories outside `/srv/<id>` and the `HostFile`
 * shape a caller hands to the file-writing resource.
 *
 * Every renderer is a pure function from a narrow typed input to a string.
 */
import type { AppConfig, ProxyConfig, TlsConfig } from "../config/types";
import { APPHOST_ETC, CADDYFILE_PATH, type HostLayout } from "../paths";
import { assertSafe, SAFE } from "../shell";

/** A file to write on the host, with the ownership and mode it must have. */
export interface HostFile {
  path: string;
  content: string;
  /** Octal, 4 digits: `0600` */
  mode: string;
  owner: string;
  group: string;
}

/**
 * Directories outside `/srv/<id>` that the proxy renderers point at. Only
 * tests override them (so `caddy validate` and `nginx -t`, which open log and
 * certificate files, never touch the machine's real ones).
 */
export interface HostDirs {
  /** Caddy access logs. Debian's caddy package creates it owned by `caddy`, so Caddy can write there */
  caddyLogs: string;
  /** Nginx logs. Debian's `/etc/logrotate.d/nginx` already rotates `*.log` here */
  nginxLogs: string;
  /** Parent of the per-stack ACME webroots used by certbot `--webroot` */
  acmeWebroot: string;
  /** Origin certificates (cloudflare-origin), `<id>.crt` and `<id>.key` */
  tls: string;
  /** certbot's live certificate directory */
  letsencryptLive: string;
  /** Local roots `update-ca-certificates` adds to the host's trust store (apphost:tls.acmeCaRoot) */
  localCaCerts: string;
  /** needrestart's configuration fragments (needrestart.ts) */
  needrestartConf: string;
}

export const HOST_DIRS: HostDirs = {
  caddyLogs: "/var/log/caddy",
  nginxLogs: "/var/log/nginx",
  acmeWebroot: "/var/www/acme",
  tls: `${APPHOST_ETC}/tls`,
  letsencryptLive: "/etc/letsencrypt/live",
  localCaCerts: "/usr/local/share/ca-certificates",
  needrestartConf: "/etc/needrestart/conf.d",
};

/**
 * Where `apphost:tls.acmeCaRoot` goes: the host's local trust store
 * (`update-ca-certificates` links `*.crt` here into /etc/ssl/certs), so
 * certbot trusts the ACME server; Caddy's site also names it as `ca_root`.
 */
export function acmeCaRootPath(layout: HostLayout, dirs: HostDirs = HOST_DIRS): string {
  return `${dirs.localCaCerts}/apphost-${layout.id}-acme.crt`;
}

/** Certificate and key of a cloudflare-origin stack: `/etc/apphost/tls/<id>.crt|.key`. */
export function originCertPaths(
  layout: HostLayout,
  dirs: HostDirs = HOST_DIRS,
): { cert: string; key: string } {
  return { cert: `${dirs.tls}/${layout.id}.crt`, key: `${dirs.tls}/${layout.id}.key` };
}

/** certbot webroot of a stack: `/var/www/acme/<id>`. */
export function acmeWebroot(layout: HostLayout, dirs: HostDirs = HOST_DIRS): string {
  return `${dirs.acmeWebroot}/${layout.id}`;
}

/** Caddy access log of a stack: `/var/log/caddy/<id>.access.log`. */
export function caddyAccessLog(layout: HostLayout, dirs: HostDirs = HOST_DIRS): string {
  return `${dirs.caddyLogs}/${layout.id}.access.log`;
}

/** Nginx access and error logs of a stack: `/var/log/nginx/apphost-<id>.{access,error}.log`. */
export function nginxLogs(layout: HostLayout, dirs: HostDirs = HOST_DIRS): { access: string; error: string } {
  const base = `${dirs.nginxLogs}/apphost-${layout.id}`;
  return { access: `${base}.access.log`, error: `${base}.error.log` };
}

/** The first line(s) of every rendered file, after the `#` comment marker. */
export function managedBy(renderer: string): string {
  return `Managed by apphost (components/render/${renderer}); edits are overwritten on the next deploy.`;
}

/** What a proxy site needs from the stack configuration. */
export interface ProxySiteInput {
  /** `apphost:dns.hostnames[*].name`, the first is the primary (certbot names its directory after it) */
  hostnames: string[];
  /** `email`, `acmeDirectory`, `acmeCaRoot`: the ACME account and server of a caddy-acme site */
  tls: Pick<TlsConfig, "mode" | "email" | "acmeDirectory" | "acmeCaRoot">;
  proxy: Pick<ProxyConfig, "maxBodySize" | "hsts" | "compression" | "httpPort" | "httpsPort">;
  /** `basePort` gives the stable upstream port the site proxies to (`upstreamPort()`) */
  app: Pick<AppConfig, "healthPath" | "staticDir" | "staticPrefix" | "basePort"> &
    Partial<Pick<AppConfig, "sharedUrls">>;
  /**
   * Behind a balancer the site is plain HTTP. `apphost:lb`: its address, the
   * only one answered. The EC2 load balancer (no address): every Host on the
   * HTTP port (its health checks name the instance's IP), X-Forwarded-* trusted
   * from private addresses; its security group admits the load balancer alone.
   */
  balancer?: { address?: string };
}

/** nginx size syntax: bytes, or k/m/g suffix */
export const NGINX_SIZE = /^(\d+)([kKmMgG]?)$/;

/**
 * The proxy renderers' preconditions: a TLS mode this proxy serves, and
 * values safe to write unquoted into its files (assertSafe).
 */
export function checkSiteInput(
  input: ProxySiteInput,
  supportedModes: readonly TlsConfig["mode"][],
  proxy: string,
): void {
  if (!supportedModes.includes(input.tls.mode)) {
    throw new Error(
      `${proxy} site: apphost:tls.mode "${input.tls.mode}" does not work with ${proxy}; use one of ${supportedModes.join(", ")}`,
    );
  }
  if (input.hostnames.length === 0) {
    throw new Error(
      `${proxy} site: fix these settings:\n  - apphost:dns.hostnames: the proxy needs at least one host name; without DNS use the host's public IP address`,
    );
  }
  const { app } = input;
  assertSafe(`${proxy} site`, [
    ...input.hostnames.map((h, i) => [`apphost:dns.hostnames[${i}]`, h, SAFE.hostName] as const),
    ["apphost:proxy.maxBodySize", input.proxy.maxBodySize, SAFE.size],
    ["apphost:proxy.httpPort", input.proxy.httpPort, SAFE.port],
    ["apphost:proxy.httpsPort", input.proxy.httpsPort, SAFE.port],
    ["apphost:app.healthPath", app.healthPath, SAFE.urlPath],
    ...(app.staticDir !== undefined
      ? ([
          ["apphost:app.staticDir", app.staticDir, SAFE.relativeDir],
          ["apphost:app.staticPrefix", app.staticPrefix, SAFE.urlPrefix],
        ] as const)
      : []),
  ]);
}

/**
 * apphost:app.sharedUrls: each URL prefix and the directory the proxy serves it from, the shared one every release
 * links in (shared/data/linked/<dir>): what the app wrote there at run time, uploads under Django's MEDIA_URL.
 */
export function sharedUrlRoots(
  layout: HostLayout,
  app: Partial<Pick<AppConfig, "sharedUrls">>,
): [string, string][] {
  const urls = Object.entries(app.sharedUrls ?? {});
  for (const [url, dir] of urls) {
    assertSafe("proxy site", [
      [`apphost:app.sharedUrls["${url}"]`, url, SAFE.urlPrefix],
      [`apphost:app.sharedUrls["${url}"]`, dir, SAFE.relativeDir],
    ]);
  }
  return urls.map(([url, dir]) => [url, `${layout.linked}/${dir}`]);
}

/** `frontend/dist/` → `frontend/dist`, the release-relative static directory without a trailing slash. */
export function staticRoot(layout: HostLayout, staticDir: string): string {
  return `${layout.current}/${staticDir.replace(/\/+$/, "")}`;
}

/** The security headers both proxies add when the app did not set them itself. */
export function securityHeaders(input: ProxySiteInput): [string, string][] {
  const headers: [string, string][] = [];
  if (input.proxy.hsts && input.tls.mode !== "off") {
    // No includeSubDomains: the primary host may be a zone apex whose other
    // subdomains apphost knows nothing about.
    headers.push(["Strict-Transport-Security", "max-age=31536000"]);
  }
  headers.push(
    ["X-Content-Type-Options", "nosniff"],
    ["Referrer-Policy", "strict-origin-when-cross-origin"],
    ["X-Frame-Options", "SAMEORIGIN"],
  );
  return headers;
}

/** The user each proxy's workers run as on Debian: who must read the files it serves from disk. */
export const PROXY_USERS = { caddy: "caddy", nginx: "www-data" } as const;

/**
 * Commands the proxy resources run (server.ts, app.ts, balancer.ts) and the
 * release script's layout step. A running proxy is reloaded, never restarted
 * (open connections finish); one that is not running yet (first deploy, or a
 * host that just switched proxies) is started.
 */
export function proxyCommands(kind: "caddy" | "nginx"): { validate: string; reload: string } {
  const reload = (unit: string) =>
    `if systemctl is-active --quiet ${unit}; then systemctl reload ${unit}; else systemctl enable --now ${unit}; fi`;
  return kind === "caddy"
    ? { validate: `caddy validate --adapter caddyfile --config ${CADDYFILE_PATH}`, reload: reload("caddy") }
    : { validate: "nginx -t", reload: reload("nginx") };
}
