import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { certbotIssueScript, renderCertbotDeployHook } from "../../components/render/certbot";
import { hostLayout } from "../../components/paths";

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

  it("issues the first certificate through the bootstrap site, once", () => {
    const script = certbotIssueScript(layout, {
      hostnames: ["example.com", "www.example.com"],
      email: "ops@example.com",
      bootstrapSite: "server { listen 80; }\n",
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
        "if [ -f /etc/letsencrypt/live/example.com/fullchain.pem ]; then exit 0; fi",
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

  it("registers without an e-mail when none is configured", () => {
    const script = certbotIssueScript(layout, { hostnames: ["example.com"], bootstrapSite: "x\n" });
    assert.match(script, / -d example\.com --register-unsafely-without-email --agree-tos /);
  });

  it("passes shellcheck", () => {
    const script = certbotIssueScript(layout, { hostnames: ["example.com"], bootstrapSite: "x\n" });
    try {
      execFileSync("shellcheck", ["-s", "bash", "-"], { input: script, encoding: "utf8" });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stdout?: string };
      if (err.code === "ENOENT") assert.fail("shellcheck is missing: apt-get install -y shellcheck");
      assert.fail(`shellcheck found problems:\n${err.stdout}`);
    }
  });
});
