import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { certbotIssueScript, renderCertbotDeployHook } from "../../components/render/certbot";
import { hostLayout } from "../../components/paths";
import { selfSignedCert } from "./certs";
import { shellcheckSync } from "./shellcheck";

describe("certbot", () => {
  const layout = hostLayout("shop", "prod");

  it("renders the deploy hook that reloads nginx after a renewal", () => {
    assert.equal(
      renderCertbotDeployHook(),
      [
        "#!/bin/sh",
        "# Managed by apphost (components/render/certbot.ts); edits are overwritten on the next deploy.",
        "# certbot runs this after a renewal: pick up the new certificate without dropping connections.",
        "nginx -t -q && systemctl reload nginx",
        "",
      ].join("\n"),
    );
  });

  it("issues the first certificate through the bootstrap site, and expands it when a hostname is added", () => {
    const script = certbotIssueScript(layout, {
      hostnames: ["example.com", "www.example.com"],
      email: "ops@example.com",
      bootstrapSite: "server { listen 80; }\n",
      fullSite: "server { listen 443; }\n",
    });
    assert.equal(
      script,
      [
        "set -euo pipefail",
        "install -d -m 0755 /var/www/acme/shop-prod /etc/letsencrypt/renewal-hooks/deploy",
        "cat >/etc/letsencrypt/renewal-hooks/deploy/apphost-reload-nginx <<'APPHOST_EOF'",
        "#!/bin/sh",
        "# Managed by apphost (components/render/certbot.ts); edits are overwritten on the next deploy.",
        "# certbot runs this after a renewal: pick up the new certificate without dropping connections.",
        "nginx -t -q && systemctl reload nginx",
        "APPHOST_EOF",
        "chmod 0755 /etc/letsencrypt/renewal-hooks/deploy/apphost-reload-nginx",
        "systemctl enable --now certbot.timer",
        "if [ -f /etc/letsencrypt/live/example.com/fullchain.pem ]; then",
        "  # The names the certificate holds, one per line (DNS:example.com).",
        "  names=$(openssl x509 -in /etc/letsencrypt/live/example.com/fullchain.pem -noout -ext subjectAltName | tail -n +2 | tr -d ' ' | tr ',' '\\n')",
        "  missing=0",
        "  wanted=(example.com www.example.com)",
        '  for name in "${wanted[@]}"; do',
        `    printf '%s\\n' "$names" | grep -Fxq "DNS:$name" || missing=1`,
        "  done",
        '  if [ "$missing" = 0 ]; then exit 0; fi',
        "  # A hostname was added: serve it on port 80 with the full site, then expand the certificate.",
        "cat >/etc/nginx/sites-enabled/apphost-shop-prod.conf <<'APPHOST_EOF'",
        "server { listen 443; }",
        "APPHOST_EOF",
        "  nginx -t",
        "  if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl enable --now nginx; fi",
        "  certbot certonly --webroot -w /var/www/acme/shop-prod --cert-name example.com -d example.com -d www.example.com --email ops@example.com --agree-tos --non-interactive --expand",
        "  exit 0",
        "fi",
        "cat >/etc/nginx/sites-enabled/apphost-shop-prod.conf <<'APPHOST_EOF'",
        "server { listen 80; }",
        "APPHOST_EOF",
        "nginx -t",
        "if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl enable --now nginx; fi",
        "certbot certonly --webroot -w /var/www/acme/shop-prod --cert-name example.com -d example.com -d www.example.com --email ops@example.com --agree-tos --non-interactive --keep-until-expiring",
        "",
      ].join("\n"),
    );
  });

  it("another ACME server goes to certbot's --server (kept in the renewal config)", () => {
    const script = certbotIssueScript(layout, {
      hostnames: ["example.com"],
      acmeDirectory: "https://ca.internal:9000/acme/acme/directory",
      bootstrapSite: "x\n",
      fullSite: "y\n",
    });
    assert.match(
      script,
      / -d example\.com --register-unsafely-without-email --server https:\/\/ca\.internal:9000\/acme\/acme\/directory --agree-tos --non-interactive --keep-until-expiring\n/,
    );
  });

  it("registers without an e-mail when none is configured", () => {
    const script = certbotIssueScript(layout, {
      hostnames: ["example.com"],
      bootstrapSite: "x\n",
      fullSite: "y\n",
    });
    assert.match(script, / -d example\.com --register-unsafely-without-email --agree-tos /);
  });

  it("passes shellcheck", () => {
    const script = certbotIssueScript(layout, {
      hostnames: ["example.com"],
      bootstrapSite: "x\n",
      fullSite: "y\n",
    });
    const r = shellcheckSync(script, ["-s", "bash"]);
    assert.deepEqual([r.status, r.output], [0, ""], `shellcheck found problems:\n${r.output}`);
  });

  describe("runs: first certificate, nothing to do, a hostname added", () => {
    // The script with /etc and /var/www moved under a temp dir, and stand-ins
    // for nginx, systemctl and certbot that log their arguments; openssl is real.
    let tmp: string;
    beforeEach(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-certbot-"));
      fs.mkdirSync(`${tmp}/bin`);
      for (const tool of ["nginx", "systemctl", "certbot"]) {
        fs.writeFileSync(`${tmp}/bin/${tool}`, `#!/bin/sh\necho "${tool} $*" >>"${tmp}/calls"\n`, {
          mode: 0o755,
        });
      }
      fs.mkdirSync(`${tmp}/etc/nginx/sites-enabled`, { recursive: true });
    });
    afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

    function certFor(names: string[]): void {
      const dir = `${tmp}/etc/letsencrypt/live/example.com`;
      selfSignedCert(`${dir}/fullchain.pem`, `${dir}/privkey.pem`, names, 30);
    }

    function run(hostnames: string[]): { calls: string[]; site: string } {
      const script = certbotIssueScript(layout, {
        hostnames,
        bootstrapSite: "# bootstrap\n",
        fullSite: "# full\n",
      })
        .replaceAll("/etc/", `${tmp}/etc/`)
        .replaceAll("/var/www/", `${tmp}/var/www/`);
      const res = spawnSync("bash", ["-c", script], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${tmp}/bin:${process.env.PATH ?? ""}` },
      });
      assert.equal(res.status, 0, res.stderr);
      const calls = fs.existsSync(`${tmp}/calls`)
        ? fs.readFileSync(`${tmp}/calls`, "utf8").trim().split("\n")
        : [];
      const sitePath = `${tmp}/etc/nginx/sites-enabled/apphost-shop-prod.conf`;
      return { calls, site: fs.existsSync(sitePath) ? fs.readFileSync(sitePath, "utf8") : "" };
    }
    const certbotCalls = (calls: string[]) => calls.filter((c) => c.startsWith("certbot "));

    it("no certificate yet: the bootstrap site, then certbot for every name", () => {
      const { calls, site } = run(["example.com", "www.example.com"]);
      assert.equal(site, "# bootstrap\n");
      assert.equal(certbotCalls(calls).length, 1);
      assert.match(certbotCalls(calls)[0], / -d example\.com -d www\.example\.com .*--keep-until-expiring$/);
    });

    it("the certificate covers every name: nothing runs, the site stays", () => {
      certFor(["example.com", "www.example.com"]);
      const { calls, site } = run(["example.com", "www.example.com"]);
      assert.deepEqual(certbotCalls(calls), []);
      assert.equal(site, "");
    });

    it("a hostname added: the full site goes live, then certbot expands the certificate to every name", () => {
      certFor(["example.com"]);
      const { calls, site } = run(["example.com", "www.example.com"]);
      assert.equal(site, "# full\n");
      assert.equal(certbotCalls(calls).length, 1);
      assert.match(
        certbotCalls(calls)[0],
        / --cert-name example\.com -d example\.com -d www\.example\.com .*--expand$/,
      );
      assert.ok(calls.indexOf("nginx -t") < calls.indexOf(certbotCalls(calls)[0]), calls.join("\n"));
    });
  });
});
