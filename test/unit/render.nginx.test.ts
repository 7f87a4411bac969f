import assert from "node:assert/strict";
import { NginxSiteInput, renderNginxHttpConf, renderNginxSite } from "../../components/render/nginx";
import { baseSite, layout, lineDiff } from "./render.fixtures";

const certbot = (): NginxSiteInput => ({ ...baseSite(), tls: { mode: "certbot" } });

/** The lines of the `server { ... }` block that listens on `listen`. */
function serverBlock(conf: string, listen: string): string[] {
  const lines = conf.split("\n");
  const start = lines.findIndex((l, i) => l === "server {" && lines[i + 1] === `    listen ${listen};`);
  assert.notEqual(start, -1, `no server block listening on ${listen}`);
  return lines.slice(start, lines.indexOf("}", start) + 1);
}

describe("render/nginx: site", () => {
  const base = renderNginxSite(layout, certbot());

  it("renders the whole site for certbot", () => {
    assert.equal(
      base,
      `# apphost shop-prod: nginx site (TLS: certbot).
# Managed by apphost (components/render/nginx.ts); edits are overwritten on the next deploy.

upstream shop-prod_web {
    # The stable upstream port: nftables leads each new connection to the live
    # web instance (apphost-release switches it; this file does not change).
    # No keepalive: a pooled connection would stay on the old instance after a switch.
    server 127.0.0.1:8002;
}

# WebSocket upgrades pass through; other requests close their upstream connection.
map $http_upgrade $apphost_shop_prod_connection {
    default upgrade;
    ""      close;
}

# Security headers are defaults: when the app sets one itself, nginx adds none
# (an empty value makes add_header add nothing).
map $upstream_http_strict_transport_security $apphost_shop_prod_strict_transport_security {
    ""      "max-age=31536000";
    default "";
}
map $upstream_http_x_content_type_options $apphost_shop_prod_x_content_type_options {
    ""      "nosniff";
    default "";
}
map $upstream_http_referrer_policy $apphost_shop_prod_referrer_policy {
    ""      "strict-origin-when-cross-origin";
    default "";
}
map $upstream_http_x_frame_options $apphost_shop_prod_x_frame_options {
    ""      "SAMEORIGIN";
    default "";
}

server {
    listen 80;
    listen [::]:80;
    server_name shop.example.com www.shop.example.com;
    server_tokens off;
    access_log /var/log/nginx/apphost-shop-prod.access.log;
    error_log /var/log/nginx/apphost-shop-prod.error.log;

    # certbot --webroot answers the HTTP-01 challenge from here.
    location ^~ /.well-known/acme-challenge/ {
        root /var/www/acme/shop-prod;
        default_type text/plain;
    }

    location / {
        return 301 https://$host$request_uri;
    }
}

server {
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name shop.example.com www.shop.example.com;
    server_tokens off;
    access_log /var/log/nginx/apphost-shop-prod.access.log;
    error_log /var/log/nginx/apphost-shop-prod.error.log;

    ssl_certificate /etc/letsencrypt/live/shop.example.com/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/shop.example.com/privkey.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_timeout 1d;
    ssl_session_cache shared:apphost_ssl:10m;
    ssl_session_tickets off;

    client_max_body_size 25m;

    gzip on;
    gzip_vary on;
    gzip_proxied any;
    gzip_comp_level 5;
    gzip_min_length 256;
    gzip_types text/plain text/css text/javascript application/javascript application/json application/xml image/svg+xml;

    add_header Strict-Transport-Security $apphost_shop_prod_strict_transport_security always;
    add_header X-Content-Type-Options $apphost_shop_prod_x_content_type_options always;
    add_header Referrer-Policy $apphost_shop_prod_referrer_policy always;
    add_header X-Frame-Options $apphost_shop_prod_x_frame_options always;

    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $apphost_shop_prod_connection;
    # WebSockets and streams stay open while idle for up to 5 minutes.
    # A streaming answer (Server-Sent Events) sent with X-Accel-Buffering: no
    # passes through unbuffered (Nginx honors that header by default).
    proxy_read_timeout 300s;
    # A connection to the app that fails (an instance restarting) is retried.
    # A switch loses nothing: requests under way finish on the old instance,
    # which drains before it is stopped.
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 3;
    proxy_next_upstream_timeout 10s;

    # Maintenance mode (apphost:app.maintenance, npm run maintenance): each location but the
    # health path answers 503 while a switch file exists; this serves the page with it.
    error_page 503 @apphost_shop_prod_maintenance;
    location @apphost_shop_prod_maintenance {
        root /srv/shop-prod/maintenance;
        add_header Retry-After 120 always;
        add_header Cache-Control no-store always;
        try_files /page.html =503;
    }

    location /static/ {
        if (-f /srv/shop-prod/maintenance/on) { return 503; }
        if (-f /srv/shop-prod/maintenance/on-config) { return 503; }
        alias /srv/shop-prod/current/frontend/dist/;
        # A path that is not a file there goes to the app: an app may serve more under this prefix
        # (uploads, linkding's favicons). An error_page here drops the server's, so the maintenance one is repeated.
        error_page 404 = @apphost_shop_prod_app;
        error_page 503 @apphost_shop_prod_maintenance;
        # The .gz beside a file, where the build wrote one, is served as it is.
        gzip_static on;
        access_log off;
    }

    # The health path reaches the app like any request; it is just not logged.
    location = /healthz {
        proxy_pass http://shop-prod_web;
        access_log off;
    }

    location / {
        if (-f /srv/shop-prod/maintenance/on) { return 503; }
        if (-f /srv/shop-prod/maintenance/on-config) { return 503; }
        proxy_pass http://shop-prod_web;
    }

    # What the static location does not find on disk.
    location @apphost_shop_prod_app {
        proxy_pass http://shop-prod_web;
    }
}
`,
    );
  });

  it("cloudflare-origin: origin certificate, no ACME location", () => {
    const v = renderNginxSite(layout, { ...baseSite(), tls: { mode: "cloudflare-origin" } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "# apphost shop-prod: nginx site (TLS: certbot).",
        "    # certbot --webroot answers the HTTP-01 challenge from here.",
        "    location ^~ /.well-known/acme-challenge/ {",
        "        root /var/www/acme/shop-prod;",
        "        default_type text/plain;",
        "    }",
        "",
        "    ssl_certificate /etc/letsencrypt/live/shop.example.com/fullchain.pem;",
        "    ssl_certificate_key /etc/letsencrypt/live/shop.example.com/privkey.pem;",
      ],
      added: [
        "# apphost shop-prod: nginx site (TLS: cloudflare-origin).",
        "    ssl_certificate /etc/apphost/tls/shop-prod.crt;",
        "    ssl_certificate_key /etc/apphost/tls/shop-prod.key;",
      ],
    });
  });

  it("tls off: one port-80 server that proxies, without HSTS", () => {
    const v = renderNginxSite(layout, { ...baseSite(), tls: { mode: "off" } });
    assert.ok(!v.includes("listen 443"));
    assert.ok(!v.includes("Strict-Transport-Security"));
    const http = serverBlock(v, "80");
    assert.ok(http.includes("        proxy_pass http://shop-prod_web;"));
    assert.ok(!http.some((l) => l.includes("return 301")));
    assert.ok(!http.some((l) => l.includes("acme-challenge")));
  });

  it("certbotBootstrap: port 80 serves the ACME webroot and the app, no 443 server yet", () => {
    const v = renderNginxSite(layout, { ...certbot(), certbotBootstrap: true });
    assert.ok(!v.includes("listen 443"));
    assert.ok(!v.includes("ssl_certificate"));
    const http = serverBlock(v, "80");
    assert.ok(http.includes("    location ^~ /.well-known/acme-challenge/ {"));
    assert.ok(http.includes("        proxy_pass http://shop-prod_web;"));
    assert.ok(
      v.startsWith("# apphost shop-prod: nginx site (TLS: certbot, before the first certificate).\n"),
    );
  });

  it("certbotBootstrap is refused outside certbot", () => {
    assert.throws(
      () => renderNginxSite(layout, { ...baseSite(), tls: { mode: "off" }, certbotBootstrap: true }),
      {
        message: 'nginx site: certbotBootstrap only applies to apphost:tls.mode certbot, not "off"',
      },
    );
  });

  it("non-default ports: listen lines and the redirect target", () => {
    const v = renderNginxSite(layout, {
      ...certbot(),
      proxy: { ...certbot().proxy, httpPort: 8080, httpsPort: 8443 },
    });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "    listen 80;",
        "    listen [::]:80;",
        "        return 301 https://$host$request_uri;",
        "    listen 443 ssl http2;",
        "    listen [::]:443 ssl http2;",
      ],
      added: [
        "    listen 8080;",
        "    listen [::]:8080;",
        "        return 301 https://$host:8443$request_uri;",
        "    listen 8443 ssl http2;",
        "    listen [::]:8443 ssl http2;",
      ],
    });
  });

  it("hsts false drops its map and header", () => {
    const v = renderNginxSite(layout, { ...certbot(), proxy: { ...certbot().proxy, hsts: false } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "map $upstream_http_strict_transport_security $apphost_shop_prod_strict_transport_security {",
        '    ""      "max-age=31536000";',
        '    default "";',
        "}",
        "    add_header Strict-Transport-Security $apphost_shop_prod_strict_transport_security always;",
      ],
      added: [],
    });
  });

  it("compression false turns gzip off", () => {
    const v = renderNginxSite(layout, { ...certbot(), proxy: { ...certbot().proxy, compression: false } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "    gzip on;",
        "    gzip_vary on;",
        "    gzip_proxied any;",
        "    gzip_comp_level 5;",
        "    gzip_min_length 256;",
        "    gzip_types text/plain text/css text/javascript application/javascript application/json application/xml image/svg+xml;",
        "        # The .gz beside a file, where the build wrote one, is served as it is.",
        "        gzip_static on;",
      ],
      added: ["    gzip off;"],
    });
  });

  it("maxBodySize is passed as nginx syntax", () => {
    const v = renderNginxSite(layout, { ...certbot(), proxy: { ...certbot().proxy, maxBodySize: "1g" } });
    assert.deepEqual(lineDiff(base, v), {
      removed: ["    client_max_body_size 25m;"],
      added: ["    client_max_body_size 1g;"],
    });
  });

  it("apphost:app.sharedUrls: a location for each prefix, aliased to its shared directory, before the static one", () => {
    const v = renderNginxSite(layout, {
      ...certbot(),
      app: { ...certbot().app, sharedUrls: { "/media/": "media" } },
    });
    assert.deepEqual(lineDiff(base, v), {
      removed: [],
      added: [
        "    # apphost:app.sharedUrls: what the app wrote in media, from disk (no listing).",
        "    location /media/ {",
        "        if (-f /srv/shop-prod/maintenance/on) { return 503; }",
        "        if (-f /srv/shop-prod/maintenance/on-config) { return 503; }",
        "        alias /srv/shop-prod/shared/data/linked/media/;",
        "    }",
        "",
      ],
    });
  });

  it("no staticDir drops the static location", () => {
    const v = renderNginxSite(layout, { ...certbot(), app: { ...certbot().app, staticDir: undefined } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "    location /static/ {",
        "        if (-f /srv/shop-prod/maintenance/on) { return 503; }",
        "        if (-f /srv/shop-prod/maintenance/on-config) { return 503; }",
        "        alias /srv/shop-prod/current/frontend/dist/;",
        "        # A path that is not a file there goes to the app: an app may serve more under this prefix",
        "        # (uploads, linkding's favicons). An error_page here drops the server's, so the maintenance one is repeated.",
        "        error_page 404 = @apphost_shop_prod_app;",
        "        error_page 503 @apphost_shop_prod_maintenance;",
        "        # The .gz beside a file, where the build wrote one, is served as it is.",
        "        gzip_static on;",
        "        access_log off;",
        "    }",
        "",
        "",
        "    # What the static location does not find on disk.",
        "    location @apphost_shop_prod_app {",
        "        proxy_pass http://shop-prod_web;",
        "    }",
      ],
      added: [],
    });
  });

  it("healthPath changes the exact-match location", () => {
    const v = renderNginxSite(layout, { ...certbot(), app: { ...certbot().app, healthPath: "/up" } });
    assert.deepEqual(lineDiff(base, v), {
      removed: ["    location = /healthz {"],
      added: ["    location = /up {"],
    });
  });

  it("a second stack names every http-level block after itself", () => {
    const v = renderNginxSite({ ...layout, id: "shop-staging" }, certbot());
    const httpLevel = (s: string) => s.split("\n").filter((l) => /^(upstream|map) /.test(l));
    assert.deepEqual(httpLevel(v), [
      "upstream shop-staging_web {",
      "map $http_upgrade $apphost_shop_staging_connection {",
      "map $upstream_http_strict_transport_security $apphost_shop_staging_strict_transport_security {",
      "map $upstream_http_x_content_type_options $apphost_shop_staging_x_content_type_options {",
      "map $upstream_http_referrer_policy $apphost_shop_staging_referrer_policy {",
      "map $upstream_http_x_frame_options $apphost_shop_staging_x_frame_options {",
    ]);
  });

  it("refuses TLS modes nginx cannot serve", () => {
    assert.throws(() => renderNginxSite(layout, { ...baseSite(), tls: { mode: "internal" } }), {
      message:
        'nginx site: apphost:tls.mode "internal" does not work with nginx; use one of certbot, cloudflare-origin, off',
    });
  });
});

describe("render/nginx: upstream", () => {
  it("basePort changes only the upstream's server line (basePort + 2)", () => {
    const v = renderNginxSite(layout, { ...certbot(), app: { ...certbot().app, basePort: 9000 } });
    assert.deepEqual(lineDiff(renderNginxSite(layout, certbot()), v), {
      removed: ["    server 127.0.0.1:8002;"],
      added: ["    server 127.0.0.1:9002;"],
    });
  });

  it("keeps no upstream connection open: no keepalive, Connection: close unless upgrading", () => {
    const site = renderNginxSite(layout, certbot());
    assert.doesNotMatch(site, /^\s*keepalive /m);
    assert.match(site, /^ {4}"" {6}close;$/m);
  });
});

describe("renderNginxHttpConf", () => {
  it("raises the hash buckets once for the host", () => {
    assert.equal(
      renderNginxHttpConf(),
      [
        "# Managed by apphost (components/render/nginx.ts); edits are overwritten on the next deploy.",
        "# Shared by every apphost stack on this host.",
        "variables_hash_bucket_size 128;",
        "server_names_hash_bucket_size 128;",
        "",
      ].join("\n"),
    );
  });
});
