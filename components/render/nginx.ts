/**
 * Nginx (Debian 12: 1.22). One site file per stack in sites-enabled, which
 * Debian's nginx.conf includes inside `http {}`; the site's upstream block
 * names the stack's stable upstream port (basePort + 2), which a release
 * moves to the new web instance with nftables (components/render/nftables.ts):
 * nginx is never reloaded for a release.
 *
 * Everything that lives at `http {}` level (the upstream and the maps) is
 * named after the stack, so two stacks on one host never define a name twice
 * and no shared file is needed.
 */
import type { TlsConfig } from "../config/types";
import { maintenanceFiles, NGINX_HTTP_CONF_PATH, upstreamPort, type HostLayout } from "../paths";
import { MAINTENANCE_RETRY_AFTER_SECONDS } from "./maintenance";
import {
  HOST_DIRS,
  HostDirs,
  ProxySiteInput,
  acmeWebroot,
  checkSiteInput,
  managedBy,
  nginxLogs,
  originCertPaths,
  securityHeaders,
  sharedUrlRoots,
  staticRoot,
} from "./common";

/** TLS modes an nginx site can serve. nginx has no ACME client or internal CA of its own. */
export const NGINX_TLS_MODES: readonly TlsConfig["mode"][] = ["certbot", "cloudflare-origin", "off"];

export interface NginxSiteInput extends ProxySiteInput {
  /**
   * certbot only: the first certificate does not exist yet, so render the
   * port-80 server alone (ACME webroot + app) and no 443 server, whose
   * `ssl_certificate` would make `nginx -t` fail. Render again without it
   * once certbot has obtained the certificate.
   * @default false
   */
  certbotBootstrap?: boolean;
}

/** `upstream` block name of a stack: `<id>_web`. */
export function nginxUpstreamName(layout: HostLayout): string {
  return `${layout.id}_web`;
}

/** Prefix of the stack's nginx variables: `$apphost_shop_prod_…` (variables cannot contain dashes). */
function varPrefix(layout: HostLayout): string {
  return `apphost_${layout.id.replace(/-/g, "_")}`;
}

function headerVar(layout: HostLayout, header: string): string {
  return `${varPrefix(layout)}_${header.toLowerCase().replace(/-/g, "_")}`;
}

/** certbot's certificate for the primary host name. */
export function certbotCertPaths(primary: string, dirs: HostDirs = HOST_DIRS): { cert: string; key: string } {
  return {
    cert: `${dirs.letsencryptLive}/${primary}/fullchain.pem`,
    key: `${dirs.letsencryptLive}/${primary}/privkey.pem`,
  };
}

/** The per-stack site, `layout.nginxSite`. */
export function renderNginxSite(
  layout: HostLayout,
  input: NginxSiteInput,
  dirs: HostDirs = HOST_DIRS,
): string {
  checkSiteInput(input, NGINX_TLS_MODES, "nginx");
  const mode = input.tls.mode;
  const bootstrap = input.certbotBootstrap === true;
  if (bootstrap && mode !== "certbot") {
    throw new Error(`nginx site: certbotBootstrap only applies to apphost:tls.mode certbot, not "${mode}"`);
  }
  const upstream = nginxUpstreamName(layout);
  const logs = nginxLogs(layout, dirs);
  const headers = securityHeaders(input);
  const serverNames = input.hostnames.join(" ");
  const { httpPort, httpsPort } = input.proxy;

  const common = [
    `server_name ${serverNames};`,
    "server_tokens off;",
    `access_log ${logs.access};`,
    `error_log ${logs.error};`,
  ];

  const acme = [
    "# certbot --webroot answers the HTTP-01 challenge from here.",
    "location ^~ /.well-known/acme-challenge/ {",
    `    root ${acmeWebroot(layout, dirs)};`,
    "    default_type text/plain;",
    "}",
  ];

  const app: string[] = [`client_max_body_size ${input.proxy.maxBodySize};`, ""];
  if (input.proxy.compression) {
    app.push(
      "gzip on;",
      "gzip_vary on;",
      "gzip_proxied any;",
      "gzip_comp_level 5;",
      "gzip_min_length 256;",
      "gzip_types text/plain text/css text/javascript application/javascript application/json application/xml image/svg+xml;",
    );
  } else {
    app.push("gzip off;");
  }
  app.push(
    "",
    ...headers.map(([name]) => `add_header ${name} $${headerVar(layout, name)} always;`),
    "",
    "proxy_http_version 1.1;",
    "proxy_set_header Host $host;",
    "proxy_set_header X-Real-IP $remote_addr;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    "proxy_set_header X-Forwarded-Host $host;",
    "proxy_set_header Upgrade $http_upgrade;",
    `proxy_set_header Connection $${varPrefix(layout)}_connection;`,
    "# WebSockets and streams stay open while idle for up to 5 minutes.",
    "# A streaming answer (Server-Sent Events) sent with X-Accel-Buffering: no",
    "# passes through unbuffered (Nginx honors that header by default).",
    "proxy_read_timeout 300s;",
    "# A connection to the app that fails (an instance restarting) is retried.",
    "# A switch loses nothing: requests under way finish on the old instance,",
    "# which drains before it is stopped.",
    "proxy_next_upstream error timeout;",
    "proxy_next_upstream_tries 3;",
    "proxy_next_upstream_timeout 10s;",
    "",
  );
  const maintenance = nginxMaintenance(layout);
  app.push(...maintenance.server, "");
  for (const [url, root] of sharedUrlRoots(layout, input.app)) {
    app.push(
      `# apphost:app.sharedUrls: what the app wrote in ${root.slice(layout.linked.length + 1)}, from disk (no listing).`,
      `location ${url} {`,
      ...maintenance.check.map((l) => `    ${l}`),
      `    alias ${root}/;`,
      "}",
      "",
    );
  }
  if (input.app.staticDir !== undefined) {
    app.push(
      `location ${input.app.staticPrefix} {`,
      ...maintenance.check.map((l) => `    ${l}`),
      `    alias ${staticRoot(layout, input.app.staticDir)}/;`,
      "    # A path that is not a file there goes to the app: an app may serve more under this prefix",
      "    # (uploads, linkding's favicons). An error_page here drops the server's, so the maintenance one is repeated.",
      `    error_page 404 = ${appLocation(layout)};`,
      `    ${maintenance.errorPage}`,
      // The .gz beside a file, where the build wrote one (WhiteNoise, django-compressor), instead of compressing it again.
      ...(input.proxy.compression
        ? [
            "    # The .gz beside a file, where the build wrote one, is served as it is.",
            "    gzip_static on;",
          ]
        : []),
      "    access_log off;",
      "}",
      "",
    );
  }
  app.push(
    "# The health path reaches the app like any request; it is just not logged.",
    `location = ${input.app.healthPath} {`,
    `    proxy_pass http://${upstream};`,
    "    access_log off;",
    "}",
    "",
    "location / {",
    ...maintenance.check.map((l) => `    ${l}`),
    `    proxy_pass http://${upstream};`,
    "}",
    ...(input.app.staticDir !== undefined
      ? [
          "",
          "# What the static location does not find on disk.",
          `location ${appLocation(layout)} {`,
          `    proxy_pass http://${upstream};`,
          "}",
        ]
      : []),
  );

  const servers: string[][] = [];
  const listenHttp = [`listen ${httpPort};`, `listen [::]:${httpPort};`];
  if (mode === "off") {
    servers.push([...listenHttp, ...common, "", ...app]);
  } else if (bootstrap) {
    servers.push([...listenHttp, ...common, "", ...acme, "", ...app]);
  } else {
    const target = httpsPort === 443 ? "https://$host$request_uri" : `https://$host:${httpsPort}$request_uri`;
    const redirect = ["location / {", `    return 301 ${target};`, "}"];
    servers.push([...listenHttp, ...common, "", ...(mode === "certbot" ? [...acme, ""] : []), ...redirect]);
    const { cert, key } =
      mode === "certbot" ? certbotCertPaths(input.hostnames[0], dirs) : originCertPaths(layout, dirs);
    servers.push([
      `listen ${httpsPort} ssl http2;`,
      `listen [::]:${httpsPort} ssl http2;`,
      ...common,
      "",
      `ssl_certificate ${cert};`,
      `ssl_certificate_key ${key};`,
      "ssl_protocols TLSv1.2 TLSv1.3;",
      "ssl_session_timeout 1d;",
      "ssl_session_cache shared:apphost_ssl:10m;",
      "ssl_session_tickets off;",
      "",
      ...app,
    ]);
  }

  const label = bootstrap ? "certbot, before the first certificate" : mode;
  const out = [
    `# apphost ${layout.id}: nginx site (TLS: ${label}).`,
    `# ${managedBy("nginx.ts")}`,
    "",
    `upstream ${upstream} {`,
    "    # The stable upstream port: nftables leads each new connection to the live",
    "    # web instance (apphost-release switches it; this file does not change).",
    "    # No keepalive: a pooled connection would stay on the old instance after a switch.",
    `    server 127.0.0.1:${upstreamPort(input.app.basePort)};`,
    "}",
    "",
    "# WebSocket upgrades pass through; other requests close their upstream connection.",
    `map $http_upgrade $${varPrefix(layout)}_connection {`,
    "    default upgrade;",
    '    ""      close;',
    "}",
    "",
    "# Security headers are defaults: when the app sets one itself, nginx adds none",
    "# (an empty value makes add_header add nothing).",
  ];
  for (const [name, value] of headers) {
    out.push(
      `map $upstream_http_${name.toLowerCase().replace(/-/g, "_")} $${headerVar(layout, name)} {`,
      `    ""      "${value}";`,
      '    default "";',
      "}",
    );
  }
  for (const server of servers) {
    out.push("", "server {", ...server.map((l) => (l === "" ? "" : `    ${l}`)), "}");
  }
  out.push("");
  return out.join("\n");
}

/**
 * Maintenance mode: `check` goes first in every location but the health
 * path's (nginx tests the switch files per request, so switching needs no
 * reload), and `server` turns that 503 into the maintenance page. A 503 from
 * the app itself passes through untouched (proxy_intercept_errors is off).
 */
export function nginxMaintenance(layout: HostLayout): {
  check: string[];
  server: string[];
  errorPage: string;
} {
  const files = maintenanceFiles(layout);
  const named = `@${varPrefix(layout)}_maintenance`;
  const errorPage = `error_page 503 ${named};`;
  return {
    check: [`if (-f ${files.manual}) { return 503; }`, `if (-f ${files.config}) { return 503; }`],
    errorPage,
    server: [
      "# Maintenance mode (apphost:app.maintenance, npm run maintenance): each location but the",
      "# health path answers 503 while a switch file exists; this serves the page with it.",
      errorPage,
      `location ${named} {`,
      `    root ${layout.maintenance};`,
      `    add_header Retry-After ${MAINTENANCE_RETRY_AFTER_SECONDS} always;`,
      "    add_header Cache-Control no-store always;",
      `    try_files ${files.page.slice(layout.maintenance.length)} =503;`,
      "}",
    ],
  };
}

/** The named location that proxies to the app what the static location does not find: `@<prefix>_app`. */
function appLocation(layout: HostLayout): string {
  return `@${varPrefix(layout)}_app`;
}

/** Host-wide http-level settings, shared by every stack: `/etc/nginx/conf.d/apphost.conf`. */
export { NGINX_HTTP_CONF_PATH };

/**
 * Each stack adds a `map` variable named after it (`$<id>_connection_upgrade`),
 * and long variable and host names overflow nginx's default 64-byte hash
 * buckets ("could not build variables_hash"), so the buckets are raised once
 * for the whole host.
 */
export function renderNginxHttpConf(): string {
  return [
    `# ${managedBy("nginx.ts")}`,
    "# Shared by every apphost stack on this host.",
    "variables_hash_bucket_size 128;",
    "server_names_hash_bucket_size 128;",
    "",
  ].join("\n");
}
