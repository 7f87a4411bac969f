/**
 * Caddy (Debian 12 ships 2.6.2; only directives it knows are used here).
 *
 * apphost owns `/etc/caddy/Caddyfile`: global options, then one `import` of
 * every stack's snippet, so two stacks on one host each contribute one file.
 * A stack's snippet proxies to its stable upstream port (basePort + 2); a
 * release moves that port to the new web instance with nftables
 * (components/render/nftables.ts), so Caddy is never reloaded for a release
 * (a reload also reloads managed certificates, caddyserver/caddy#5589, and
 * closes idle client connections).
 */
import type { ProxyConfig, TlsConfig } from "../config/types";
import { CADDY_SITES_DIR, CADDYFILE_PATH, maintenanceFiles, upstreamPort, type HostLayout } from "../paths";
import { MAINTENANCE_RETRY_AFTER_SECONDS } from "./maintenance";
import { assertSafe, SAFE } from "../shell";
import {
  acmeCaRootPath,
  HOST_DIRS,
  HostDirs,
  NGINX_SIZE,
  ProxySiteInput,
  caddyAccessLog,
  checkSiteInput,
  managedBy,
  originCertPaths,
  securityHeaders,
  sharedUrlRoots,
  staticRoot,
} from "./common";

export { CADDYFILE_PATH };
/** Matches every stack's `layout.caddySite` */
export const CADDY_SITES_GLOB = `${CADDY_SITES_DIR}/*.caddy`;

/** TLS modes a Caddy site can serve. certbot is for nginx; Caddy obtains certificates itself. */
export const CADDY_TLS_MODES: readonly TlsConfig["mode"][] = [
  "caddy-acme",
  "internal",
  "cloudflare-origin",
  "off",
];

export interface CaddyfileInput {
  /** Emitted as `http_port`/`https_port` only when they are not 80/443 */
  proxy: Pick<ProxyConfig, "httpPort" | "httpsPort">;
  /** @default CADDY_SITES_GLOB; tests point it at a temp dir */
  sitesGlob?: string;
}

/**
 * The main Caddyfile, shared by every stack on the host. Its global options
 * apply to every site, so nothing in it depends on one stack's TLS mode: each
 * snippet says what it needs (`tls internal`, `tls <email>`, `http://`
 * addresses), and two stacks with different modes each keep their own issuer.
 */
export function renderCaddyfile(input: CaddyfileInput): string {
  assertSafe("Caddyfile", [
    ["apphost:proxy.httpPort", input.proxy.httpPort, SAFE.port],
    ["apphost:proxy.httpsPort", input.proxy.httpsPort, SAFE.port],
  ]);
  const global: string[] = [];
  // The admin API stays on loopback: `caddy reload` (ExecReload) talks to it.
  global.push("admin localhost:2019");
  // An internal CA stays Caddy's own: installing its root into the host's
  // trust store would need root, which Caddy does not have (it asks sudo on
  // every reload and fails). Harmless for sites that use no internal CA.
  global.push("skip_install_trust");
  if (input.proxy.httpPort !== 80) global.push(`http_port ${input.proxy.httpPort}`);
  if (input.proxy.httpsPort !== 443) global.push(`https_port ${input.proxy.httpsPort}`);
  return [
    `# ${managedBy("caddy.ts")}`,
    `# Each apphost stack on this host adds one site snippet under ${CADDY_SITES_DIR}/.`,
    "{",
    ...global.map((l) => `\t${l}`),
    "}",
    "",
    `import ${input.sitesGlob ?? CADDY_SITES_GLOB}`,
    "",
  ].join("\n");
}

/**
 * This stack's ACME account and server, in its own site (global options would
 * set every stack's): `tls <email>`, and a block naming the directory and the
 * root its HTTPS certificate chains to when they are not Let's Encrypt's.
 */
function caddyAcme(layout: HostLayout, tls: ProxySiteInput["tls"], dirs: HostDirs): string[] {
  assertSafe("caddy site", [
    ...(tls.email !== undefined ? [["apphost:tls.email", tls.email, SAFE.email] as const] : []),
    ...(tls.acmeDirectory !== undefined
      ? [["apphost:tls.acmeDirectory", tls.acmeDirectory, SAFE.httpsUrl] as const]
      : []),
  ]);
  const head = tls.email !== undefined ? `tls ${tls.email}` : "tls";
  if (tls.acmeDirectory === undefined) return tls.email !== undefined ? [head] : [];
  return [
    `${head} {`,
    `	ca ${tls.acmeDirectory}`,
    ...(tls.acmeCaRoot !== undefined ? [`	ca_root ${acmeCaRootPath(layout, dirs)}`] : []),
    "}",
  ];
}

/** The ACME lines of a caddy-acme site (the balancer's too). */
export function caddyAcmeLines(
  layout: HostLayout,
  tls: ProxySiteInput["tls"],
  dirs: HostDirs = HOST_DIRS,
): string[] {
  return caddyAcme(layout, tls, dirs);
}

/** nginx size syntax (`25m`, apphost:proxy.maxBodySize) to Caddy's (`25MiB`): nginx's m is 1024*1024. */
export function caddySize(nginxSize: string): string {
  assertSafe("caddy site", [["apphost:proxy.maxBodySize", nginxSize, SAFE.size]]);
  const m = NGINX_SIZE.exec(nginxSize)!;
  const unit = { "": "", k: "KiB", m: "MiB", g: "GiB" }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
  return `${m[1]}${unit}`;
}

/** The per-stack site snippet, `layout.caddySite`. */
export function renderCaddySite(
  layout: HostLayout,
  input: ProxySiteInput,
  dirs: HostDirs = HOST_DIRS,
): string {
  checkSiteInput(input, CADDY_TLS_MODES, "caddy");
  // Behind apphost:lb the balancer serves TLS; this host answers it alone, over HTTP.
  const lb = input.balancer;
  const mode = lb ? "off" : input.tls.mode;
  const addresses =
    lb && lb.address === undefined
      ? `:${input.proxy.httpPort}`
      : input.hostnames.map((h) => (mode === "off" ? `http://${h}` : h)).join(", ");
  const body: string[] = [];
  if (lb?.address !== undefined)
    body.push(...caddyBalancerGuard(lb.address), ...caddyDrain(layout, input.app.healthPath));

  if (mode === "internal") body.push("tls internal");
  if (mode === "caddy-acme") body.push(...caddyAcme(layout, input.tls, dirs));
  if (mode === "cloudflare-origin") {
    const { cert, key } = originCertPaths(layout, dirs);
    body.push(`tls ${cert} ${key}`);
  }

  body.push(
    "log {",
    `\toutput file ${caddyAccessLog(layout, dirs)} {`,
    `\t\t# logrotate rotates it (copytruncate): /etc/logrotate.d/apphost-${layout.id}`,
    "\t\troll_disabled",
    "\t}",
    "\tformat json",
    "}",
    "# The health path reaches the app like any request; it is just not logged.",
    `@health path ${input.app.healthPath}`,
    "skip_log @health",
  );

  if (input.proxy.compression) body.push("encode zstd gzip");
  // 0 means "no limit" in nginx syntax; Caddy has no limit without request_body.
  if (Number(NGINX_SIZE.exec(input.proxy.maxBodySize)?.[1]) > 0) {
    body.push(
      "# A larger body is refused; Caddy 2.6 reports it as 502, not 413 (nginx says 413).",
      "request_body {",
      `\tmax_size ${caddySize(input.proxy.maxBodySize)}`,
      "}",
    );
  }

  body.push(
    '# "?" sets a header only when the app did not: no duplicates, the app wins.',
    "# One directive each: in one header block, Caddy would set them all only when all are missing.",
    ...securityHeaders(input).map(([name, value]) => `header ?${name} "${value}"`),
  );

  body.push(...caddyMaintenance(layout, input.app.healthPath));

  const reverseProxy = caddyReverseProxy(
    upstreamPort(input.app.basePort),
    lb ? (lb.address ?? "private_ranges") : undefined,
  );
  for (const [url, root] of sharedUrlRoots(layout, input.app)) {
    body.push(
      `# apphost:app.sharedUrls: what the app wrote in ${root.slice(layout.linked.length + 1)}, from disk (no listing).`,
      `handle_path ${url}* {`,
      `\troot * ${root}`,
      "\tfile_server",
      "}",
    );
  }
  if (input.app.staticDir !== undefined) {
    body.push(
      `handle_path ${input.app.staticPrefix}* {`,
      `\troot * ${staticRoot(layout, input.app.staticDir)}`,
      "\t# A file the build put there is served from disk; any other path goes to the app, with its",
      "\t# prefix put back: an app may serve more under it (uploads, linkding's favicons).",
      "\t@built file",
      "\thandle @built {",
      // The .br/.gz/.zst beside a file, where the build wrote one (WhiteNoise's CompressedManifestStaticFilesStorage,
      // django-compressor, a bundler's compression plugin), instead of compressing it again for each request.
      ...(input.proxy.compression
        ? [
            "\t\t# The .zst/.br/.gz beside a file, where the build wrote one, is served as it is.",
            "\t\tfile_server {",
            "\t\t\tprecompressed zstd br gzip",
            "\t\t}",
          ]
        : ["\t\tfile_server"]),
      "\t}",
      "\thandle {",
      `\t\trewrite * ${input.app.staticPrefix.replace(/\/$/, "")}{uri}`,
      ...reverseProxy.map((l) => `\t\t${l}`),
      "\t}",
      "}",
    );
  }

  body.push("handle {", ...reverseProxy.map((l) => `\t${l}`), "}");
  if (lb) {
    body.push(
      "# The app did not answer (it is down): close the connection unanswered, so the",
      "# balancer tries the request on another host instead of passing on a 502.",
      "handle_errors {",
      "\t@down expression {err.status_code} == 502",
      "\tabort @down",
      "}",
    );
  }

  return [
    `# apphost ${layout.id}: Caddy site, imported by ${CADDYFILE_PATH}.`,
    `# ${managedBy("caddy.ts")}`,
    `${addresses} {`,
    ...body.map((l) => `\t${l}`),
    "}",
    "",
  ].join("\n");
}

/**
 * Behind apphost:lb, a host being released is drained without touching the
 * balancer's configuration (a Caddy reload there would drop handshakes and
 * idle connections): while the drain file exists, the health path answers
 * 503, the balancer's active check takes the host out within one interval,
 * and the requests that still arrive are served as usual.
 */
function caddyDrain(layout: HostLayout, healthPath: string): string[] {
  const files = maintenanceFiles(layout);
  return [
    "# Drained for a rolling release: the balancer's health check fails, every other request is served.",
    "@drained {",
    `\tpath ${healthPath}`,
    `\theader ${BALANCER_CHECK_HEADER} 1`,
    "\tfile {",
    `\t\troot ${layout.maintenance}`,
    `\t\ttry_files ${files.drain.slice(layout.maintenance.length)}`,
    "\t}",
    "}",
    "handle @drained {",
    '\trespond "draining" 503',
    "}",
  ];
}

/** The header the balancer's active health check carries: a drained host fails that check only. */
export const BALANCER_CHECK_HEADER = "X-Apphost-Balancer-Check";

/** Behind apphost:lb: only the balancer (and this host itself) is answered; anyone else's connection is closed. */
function caddyBalancerGuard(address: string): string[] {
  assertSafe("caddy site", [["apphost:lb.privateAddress", address, SAFE.ipv4]]);
  return [
    "# Behind apphost:lb: requests come from the balancer alone.",
    `@outside not remote_ip ${address}/32 127.0.0.0/8 ::1`,
    "handle @outside {",
    "\tabort",
    "}",
  ];
}

/**
 * Maintenance mode: while either switch file exists (`file` tests it on each
 * request), everything but the health path gets the maintenance page with 503
 * and Retry-After. Switching is a file written or removed: no reload.
 */
export function caddyMaintenance(layout: HostLayout, healthPath: string): string[] {
  const files = maintenanceFiles(layout);
  const name = (p: string) => p.slice(layout.maintenance.length);
  return [
    "# Maintenance mode (apphost:app.maintenance, npm run maintenance): tested per request,",
    "# so switching it needs no reload and no app restart. The health path still reaches the app.",
    "@maintenance {",
    `	not path ${healthPath}`,
    "	file {",
    `		root ${layout.maintenance}`,
    `		try_files ${name(files.manual)} ${name(files.config)}`,
    "	}",
    "}",
    "handle @maintenance {",
    `	header Retry-After ${MAINTENANCE_RETRY_AFTER_SECONDS}`,
    "	header Cache-Control no-store",
    `	root * ${layout.maintenance}`,
    `	rewrite * ${name(files.page)}`,
    "	file_server {",
    "		status 503",
    "	}",
    "}",
  ];
}

/**
 * The site's `reverse_proxy` to the stack's stable upstream port, which the
 * stack's nftables rule leads to the live web instance.
 */
export function caddyReverseProxy(port: number, balancer?: string): string[] {
  assertSafe("caddy site", [
    ["the upstream port", port, SAFE.port],
    ...(balancer !== undefined && balancer !== "private_ranges"
      ? [["apphost:lb.privateAddress", balancer, SAFE.ipv4] as const]
      : []),
  ]);
  const behind = balancer
    ? [
        "\t# Behind the balancer: its X-Forwarded-* headers (the client, https) are kept;",
        "\t# the retries are short, the balancer has other hosts to try.",
        `\ttrusted_proxies ${balancer === "private_ranges" ? balancer : `${balancer}/32`}`,
        "\tlb_try_duration 1s",
      ]
    : [
        "\t# Caddy sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host itself,",
        "\t# and passes Host through, so nothing is set here.",
        "\t# Requests whose connection to the app fails are retried for up to 10s,",
        "\t# so an instance restart does not surface as a 502.",
        "\tlb_try_duration 10s",
      ];
  return [
    "# The stable upstream port: nftables leads each new connection to the live",
    "# web instance (apphost-release switches it; this file does not change).",
    "# WebSocket upgrades pass through reverse_proxy as they are.",
    `reverse_proxy 127.0.0.1:${port} {`,
    ...behind,
    "\tlb_try_interval 250ms",
    "\t# Streams (Server-Sent Events, chunked answers) reach the client as the app",
    "\t# writes them: Caddy flushes those at once. No flush_interval -1: Caddy 2.6",
    "\t# then ties each request to the handler's life, and a reload cancels the",
    "\t# requests in flight (caddyserver/caddy#5663).",
    "\t# A new upstream connection per request: a pooled one would stay on the old",
    "\t# instance after a switch (nftables only redirects new connections).",
    "\ttransport http {",
    "\t\tkeepalive off",
    "\t}",
    "}",
  ];
}
