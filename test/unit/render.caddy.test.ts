import assert from "node:assert/strict";
import {
  caddySize,
  renderCaddySite,
  caddyReverseProxy,
  renderCaddyfile,
} from "../../components/render/caddy";
import { baseSite, layout, lineDiff } from "./render.fixtures";

const caddyfileInput = () => ({
  proxy: { httpPort: 80, httpsPort: 443 },
});

describe("render/caddy: main Caddyfile", () => {
  it("renders the global options and the snippet import", () => {
    assert.equal(
      renderCaddyfile(caddyfileInput()),
      `# Managed by apphost (components/render/caddy.ts); edits are overwritten on the next deploy.
# Each apphost stack on this host adds one site snippet under /etc/caddy/apphost/.
{
	admin localhost:2019
	skip_install_trust
}

import /etc/caddy/apphost/*.caddy
`,
    );
  });

  it("holds nothing of one stack's TLS mode: no local_certs, auto_https or email that would apply to every stack", () => {
    const text = renderCaddyfile(caddyfileInput());
    assert.doesNotMatch(text, /local_certs|auto_https|email|acme_ca/);
  });

  it("non-default ports become http_port/https_port", () => {
    const v = renderCaddyfile({ ...caddyfileInput(), proxy: { httpPort: 8080, httpsPort: 8443 } });
    assert.deepEqual(lineDiff(renderCaddyfile(caddyfileInput()), v), {
      removed: [],
      added: ["\thttp_port 8080", "\thttps_port 8443"],
    });
  });

  it("sitesGlob replaces the import path (tests only)", () => {
    const v = renderCaddyfile({ ...caddyfileInput(), sitesGlob: "/tmp/x/*.caddy" });
    assert.deepEqual(lineDiff(renderCaddyfile(caddyfileInput()), v), {
      removed: ["import /etc/caddy/apphost/*.caddy"],
      added: ["import /tmp/x/*.caddy"],
    });
  });
});

describe("render/caddy: site snippet", () => {
  const base = renderCaddySite(layout, baseSite());

  it("renders the whole site for caddy-acme", () => {
    assert.equal(
      base,
      `# apphost shop-prod: Caddy site, imported by /etc/caddy/Caddyfile.
# Managed by apphost (components/render/caddy.ts); edits are overwritten on the next deploy.
shop.example.com, www.shop.example.com {
	log {
		output file /var/log/caddy/shop-prod.access.log {
			# logrotate rotates it (copytruncate): /etc/logrotate.d/apphost-shop-prod
			roll_disabled
		}
		format json
	}
	# The health path reaches the app like any request; it is just not logged.
	@health path /healthz
	skip_log @health
	encode zstd gzip
	# A larger body is refused; Caddy 2.6 reports it as 502, not 413 (nginx says 413).
	request_body {
		max_size 25MiB
	}
	# "?" sets a header only when the app did not: no duplicates, the app wins.
	# One directive each: in one header block, Caddy would set them all only when all are missing.
	header ?Strict-Transport-Security "max-age=31536000"
	header ?X-Content-Type-Options "nosniff"
	header ?Referrer-Policy "strict-origin-when-cross-origin"
	header ?X-Frame-Options "SAMEORIGIN"
	# Maintenance mode (apphost:app.maintenance, npm run maintenance): tested per request,
	# so switching it needs no reload and no app restart. The health path still reaches the app.
	@maintenance {
		not path /healthz
		file {
			root /srv/shop-prod/maintenance
			try_files /on /on-config
		}
	}
	handle @maintenance {
		header Retry-After 120
		header Cache-Control no-store
		root * /srv/shop-prod/maintenance
		rewrite * /page.html
		file_server {
			status 503
		}
	}
	handle_path /static/* {
		root * /srv/shop-prod/current/frontend/dist
		# A file the build put there is served from disk; any other path goes to the app, with its
		# prefix put back: an app may serve more under it (uploads, linkding's favicons).
		@built file
		handle @built {
			# The .zst/.br/.gz beside a file, where the build wrote one, is served as it is.
			file_server {
				precompressed zstd br gzip
			}
		}
		handle {
			rewrite * /static{uri}
			# The stable upstream port: nftables leads each new connection to the live
			# web instance (apphost-release switches it; this file does not change).
			# WebSocket upgrades pass through reverse_proxy as they are.
			reverse_proxy 127.0.0.1:8002 {
				# Caddy sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host itself,
				# and passes Host through, so nothing is set here.
				# Requests whose connection to the app fails are retried for up to 10s,
				# so an instance restart does not surface as a 502.
				lb_try_duration 10s
				lb_try_interval 250ms
				# Streams (Server-Sent Events, chunked answers) reach the client as the app
				# writes them: Caddy flushes those at once. No flush_interval -1: Caddy 2.6
				# then ties each request to the handler's life, and a reload cancels the
				# requests in flight (caddyserver/caddy#5663).
				# A new upstream connection per request: a pooled one would stay on the old
				# instance after a switch (nftables only redirects new connections).
				transport http {
					keepalive off
				}
			}
		}
	}
	handle {
		# The stable upstream port: nftables leads each new connection to the live
		# web instance (apphost-release switches it; this file does not change).
		# WebSocket upgrades pass through reverse_proxy as they are.
		reverse_proxy 127.0.0.1:8002 {
			# Caddy sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host itself,
			# and passes Host through, so nothing is set here.
			# Requests whose connection to the app fails are retried for up to 10s,
			# so an instance restart does not surface as a 502.
			lb_try_duration 10s
			lb_try_interval 250ms
			# Streams (Server-Sent Events, chunked answers) reach the client as the app
			# writes them: Caddy flushes those at once. No flush_interval -1: Caddy 2.6
			# then ties each request to the handler's life, and a reload cancels the
			# requests in flight (caddyserver/caddy#5663).
			# A new upstream connection per request: a pooled one would stay on the old
			# instance after a switch (nftables only redirects new connections).
			transport http {
				keepalive off
			}
		}
	}
}
`,
    );
  });

  it("caddy-acme with an e-mail names the ACME account in the site, for this stack only", () => {
    const v = renderCaddySite(layout, {
      ...baseSite(),
      tls: { mode: "caddy-acme", email: "ops@example.com" },
    });
    assert.deepEqual(lineDiff(renderCaddySite(layout, baseSite()), v), {
      removed: [],
      added: ["\ttls ops@example.com"],
    });
  });

  it("caddy-acme with another ACME server: its directory and the root its HTTPS chains to, in this site only", () => {
    const v = renderCaddySite(layout, {
      ...baseSite(),
      tls: {
        mode: "caddy-acme",
        email: "ops@example.com",
        acmeDirectory: "https://ca.internal:9000/acme/acme/directory",
        acmeCaRoot: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
      },
    });
    assert.deepEqual(lineDiff(renderCaddySite(layout, baseSite()), v), {
      removed: [],
      added: [
        "\ttls ops@example.com {",
        "\t\tca https://ca.internal:9000/acme/acme/directory",
        "\t\tca_root /usr/local/share/ca-certificates/apphost-shop-prod-acme.crt",
        "\t}",
      ],
    });
    const noRoot = renderCaddySite(layout, {
      ...baseSite(),
      tls: { mode: "caddy-acme", acmeDirectory: "https://acme-staging-v02.api.letsencrypt.org/directory" },
    });
    assert.deepEqual(lineDiff(renderCaddySite(layout, baseSite()), noRoot), {
      removed: [],
      added: ["\ttls {", "\t\tca https://acme-staging-v02.api.letsencrypt.org/directory", "\t}"],
    });
  });

  it("refuses an e-mail that would break the file", () => {
    assert.throws(
      () =>
        renderCaddySite(layout, { ...baseSite(), tls: { mode: "caddy-acme", email: "ops@example.com }" } }),
      {
        message:
          "caddy site: not safe to write (apphost's config check should have refused it; please report this):\n" +
          '  - apphost:tls.email: "ops@example.com }" is not an e-mail address',
      },
    );
  });

  it("tls internal adds `tls internal`", () => {
    const v = renderCaddySite(layout, { ...baseSite(), tls: { mode: "internal" } });
    assert.deepEqual(lineDiff(base, v), { removed: [], added: ["\ttls internal"] });
  });

  it("cloudflare-origin loads the origin certificate files", () => {
    const v = renderCaddySite(layout, { ...baseSite(), tls: { mode: "cloudflare-origin" } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [],
      added: ["\ttls /etc/apphost/tls/shop-prod.crt /etc/apphost/tls/shop-prod.key"],
    });
  });

  it("tls off serves http:// addresses and drops HSTS", () => {
    const v = renderCaddySite(layout, { ...baseSite(), tls: { mode: "off" } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "shop.example.com, www.shop.example.com {",
        '\theader ?Strict-Transport-Security "max-age=31536000"',
      ],
      added: ["http://shop.example.com, http://www.shop.example.com {"],
    });
  });

  it("hsts false drops only HSTS", () => {
    const v = renderCaddySite(layout, { ...baseSite(), proxy: { ...baseSite().proxy, hsts: false } });
    assert.deepEqual(lineDiff(base, v), {
      removed: ['\theader ?Strict-Transport-Security "max-age=31536000"'],
      added: [],
    });
  });

  it("compression false drops encode", () => {
    const v = renderCaddySite(layout, { ...baseSite(), proxy: { ...baseSite().proxy, compression: false } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "\tencode zstd gzip",
        "\t\t\t# The .zst/.br/.gz beside a file, where the build wrote one, is served as it is.",
        "\t\t\tfile_server {",
        "\t\t\t\tprecompressed zstd br gzip",
        "\t\t\t}",
      ],
      added: ["\t\t\tfile_server"],
    });
  });

  it("maxBodySize converts nginx units to Caddy's binary units", () => {
    const v = renderCaddySite(layout, { ...baseSite(), proxy: { ...baseSite().proxy, maxBodySize: "512k" } });
    assert.deepEqual(lineDiff(base, v), { removed: ["\t\tmax_size 25MiB"], added: ["\t\tmax_size 512KiB"] });
  });

  it("maxBodySize 0 (no limit) drops request_body", () => {
    const v = renderCaddySite(layout, { ...baseSite(), proxy: { ...baseSite().proxy, maxBodySize: "0" } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "\t# A larger body is refused; Caddy 2.6 reports it as 502, not 413 (nginx says 413).",
        "\trequest_body {",
        "\t\tmax_size 25MiB",
        "\t}",
      ],
      added: [],
    });
  });

  it("no staticDir drops the static handler", () => {
    const v = renderCaddySite(layout, { ...baseSite(), app: { ...baseSite().app, staticDir: undefined } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "\thandle_path /static/* {",
        "\t\troot * /srv/shop-prod/current/frontend/dist",
        "\t\t# A file the build put there is served from disk; any other path goes to the app, with its",
        "\t\t# prefix put back: an app may serve more under it (uploads, linkding's favicons).",
        "\t\t@built file",
        "\t\thandle @built {",
        "\t\t\t# The .zst/.br/.gz beside a file, where the build wrote one, is served as it is.",
        "\t\t\tfile_server {",
        "\t\t\t\tprecompressed zstd br gzip",
        "\t\t\t}",
        "\t\t}",
        "\t\thandle {",
        "\t\t\trewrite * /static{uri}",
        // The same reverse_proxy as the site's own handle, one level deeper.
        ...caddyReverseProxy(8002).map((l) => `\t\t\t${l}`),
        "\t\t}",
        "\t}",
      ],
      added: [],
    });
  });

  it("staticPrefix and a trailing slash on staticDir", () => {
    const v = renderCaddySite(layout, {
      ...baseSite(),
      app: { ...baseSite().app, staticDir: "public/", staticPrefix: "/assets/" },
    });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "\thandle_path /static/* {",
        "\t\troot * /srv/shop-prod/current/frontend/dist",
        "\t\t\trewrite * /static{uri}",
      ],
      added: [
        "\thandle_path /assets/* {",
        "\t\troot * /srv/shop-prod/current/public",
        "\t\t\trewrite * /assets{uri}",
      ],
    });
  });

  it("apphost:app.sharedUrls: each prefix served from its shared directory, before the static handler", () => {
    const v = renderCaddySite(layout, {
      ...baseSite(),
      app: { ...baseSite().app, sharedUrls: { "/media/": "media", "/files/": "shop/uploads" } },
    });
    const first = "\thandle_path /static/* {";
    assert.deepEqual(lineDiff(base, v), {
      removed: [],
      added: [
        "\t# apphost:app.sharedUrls: what the app wrote in media, from disk (no listing).",
        "\thandle_path /media/* {",
        "\t\troot * /srv/shop-prod/shared/data/linked/media",
        "\t\tfile_server",
        "\t}",
        "\t# apphost:app.sharedUrls: what the app wrote in shop/uploads, from disk (no listing).",
        "\thandle_path /files/* {",
        "\t\troot * /srv/shop-prod/shared/data/linked/shop/uploads",
        "\t\tfile_server",
        "\t}",
      ],
    });
    assert.ok(v.indexOf("handle_path /files/*") < v.indexOf(first));
    assert.throws(
      () =>
        renderCaddySite(layout, {
          ...baseSite(),
          app: { ...baseSite().app, sharedUrls: { "/media/": "../etc" } },
        }),
      /apphost:app\.sharedUrls\["\/media\/"\]/,
    );
  });

  it("healthPath changes the unlogged matcher", () => {
    const v = renderCaddySite(layout, { ...baseSite(), app: { ...baseSite().app, healthPath: "/up" } });
    assert.deepEqual(lineDiff(base, v), {
      removed: ["\t@health path /healthz", "\t\tnot path /healthz"],
      added: ["\t@health path /up", "\t\tnot path /up"],
    });
  });

  it("one host name, an IP address", () => {
    const v = renderCaddySite(layout, { ...baseSite(), hostnames: ["203.0.113.10"] });
    assert.deepEqual(lineDiff(base, v), {
      removed: ["shop.example.com, www.shop.example.com {"],
      added: ["203.0.113.10 {"],
    });
  });

  it("refuses certbot: Caddy gets its own certificates", () => {
    assert.throws(() => renderCaddySite(layout, { ...baseSite(), tls: { mode: "certbot" } }), {
      message:
        'caddy site: apphost:tls.mode "certbot" does not work with caddy; use one of caddy-acme, internal, cloudflare-origin, off',
    });
  });

  it("lists every offending setting at once", () => {
    assert.throws(
      () =>
        renderCaddySite(layout, {
          hostnames: ["ok.example.com", "bad host", "x}{"],
          tls: { mode: "off" },
          proxy: { maxBodySize: "25 MB", hsts: false, compression: true, httpPort: 0, httpsPort: 443 },
          app: { healthPath: "healthz", staticDir: "../etc", staticPrefix: "/static", basePort: 8000 },
        }),
      {
        message:
          "caddy site: not safe to write (apphost's config check should have refused it; please report this):\n" +
          '  - apphost:dns.hostnames[1]: "bad host" is not a host name\n' +
          '  - apphost:dns.hostnames[2]: "x}{" is not a host name\n' +
          '  - apphost:proxy.maxBodySize: "25 MB" is not a size like 25m, 512k or 1g\n' +
          "  - apphost:proxy.httpPort: 0 is not a TCP port (1-65535)\n" +
          '  - apphost:app.healthPath: "healthz" is not a URL path (/ then letters, digits, ._~/-)\n' +
          '  - apphost:app.staticDir: "../etc" is not a directory inside the release, like frontend/dist\n' +
          '  - apphost:app.staticPrefix: "/static" is not a URL path that starts and ends with /, like /static/',
      },
    );
  });

  it("refuses an empty host list with the fix in the message", () => {
    assert.throws(() => renderCaddySite(layout, { ...baseSite(), hostnames: [] }), {
      message:
        "caddy site: fix these settings:\n" +
        "  - apphost:dns.hostnames: the proxy needs at least one host name; without DNS use the host's public IP address",
    });
  });
});

describe("render/caddy: reverse_proxy", () => {
  it("proxies to the stable upstream port, without upstream keep-alive", () => {
    assert.equal(
      caddyReverseProxy(8002).join("\n"),
      `# The stable upstream port: nftables leads each new connection to the live
# web instance (apphost-release switches it; this file does not change).
# WebSocket upgrades pass through reverse_proxy as they are.
reverse_proxy 127.0.0.1:8002 {
	# Caddy sets X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host itself,
	# and passes Host through, so nothing is set here.
	# Requests whose connection to the app fails are retried for up to 10s,
	# so an instance restart does not surface as a 502.
	lb_try_duration 10s
	lb_try_interval 250ms
	# Streams (Server-Sent Events, chunked answers) reach the client as the app
	# writes them: Caddy flushes those at once. No flush_interval -1: Caddy 2.6
	# then ties each request to the handler's life, and a reload cancels the
	# requests in flight (caddyserver/caddy#5663).
	# A new upstream connection per request: a pooled one would stay on the old
	# instance after a switch (nftables only redirects new connections).
	transport http {
		keepalive off
	}
}`,
    );
  });

  it("the site proxies to basePort + 2 (and so does the static handler, for a path not on disk), and basePort changes only those lines", () => {
    const site = renderCaddySite(layout, baseSite());
    assert.ok(
      site.includes(
        `\thandle {\n${caddyReverseProxy(8002)
          .map((l) => `\t\t${l}`)
          .join("\n")}\n\t}\n`,
      ),
    );
    const other = renderCaddySite(layout, { ...baseSite(), app: { ...baseSite().app, basePort: 9000 } });
    assert.deepEqual(lineDiff(site, other), {
      removed: ["\t\t\treverse_proxy 127.0.0.1:8002 {", "\t\treverse_proxy 127.0.0.1:8002 {"],
      added: ["\t\t\treverse_proxy 127.0.0.1:9002 {", "\t\treverse_proxy 127.0.0.1:9002 {"],
    });
  });

  it("refuses a port out of range", () => {
    assert.throws(() => caddyReverseProxy(70000), {
      message:
        "caddy site: not safe to write (apphost's config check should have refused it; please report this):\n  - the upstream port: 70000 is not a TCP port (1-65535)",
    });
  });
});

describe("render/caddy: caddySize", () => {
  for (const [nginx, caddy] of [
    ["25m", "25MiB"],
    ["25M", "25MiB"],
    ["512k", "512KiB"],
    ["1g", "1GiB"],
    ["1048576", "1048576"],
  ]) {
    it(`${nginx} → ${caddy}`, () => assert.equal(caddySize(nginx), caddy));
  }
});
