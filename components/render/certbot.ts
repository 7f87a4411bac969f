/**
 * certbot for `apphost:tls.mode: certbot` (Nginx): HTTP-01 through the
 * stack's webroot, Debian's `certbot.timer` for renewal, and a deploy hook
 * that reloads Nginx when a certificate was renewed.
 *
 * The first certificate cannot come from the full site (its 443 server names
 * a certificate that does not exist yet, so `nginx -t` fails). The issue
 * script therefore puts the bootstrap site (port 80: ACME webroot + app) in
 * place, obtains the certificate, and the site resource then writes the full
 * site over it.
 */
import type { HostLayout } from "../paths";
import { acmeWebroot, managedBy } from "./common";
import { certbotCertPaths } from "./nginx";
import { shellQuote as q } from "../shell";

export const CERTBOT_DEPLOY_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/apphost-reload-nginx";

export interface CertbotInput {
  hostnames: string[];
  email?: string;
  /** apphost:tls.acmeDirectory: certbot's `--server` (kept in the renewal config). @default Let's Encrypt */
  acmeDirectory?: string;
  /** The rendered bootstrap site (renderNginxSite with certbotBootstrap) */
  bootstrapSite: string;
  /**
   * The rendered full site (renderNginxSite). When a hostname was added, it
   * goes live before certbot runs: it still loads the existing certificate
   * (same lineage path), and its port-80 server answers the new name's
   * challenge, so HTTPS keeps serving while the certificate is expanded.
   */
  fullSite: string;
}

export function renderCertbotDeployHook(): string {
  return [
    "#!/bin/sh",
    `# ${managedBy("certbot.ts")}`,
    "# certbot runs this after a renewal: pick up the new certificate without dropping connections.",
    "nginx -t -q && systemctl reload nginx",
    "",
  ].join("\n");
}

/**
 * Idempotent: obtains the first certificate through the bootstrap site; once
 * it exists, does nothing while it covers every hostname, and expands it when
 * a hostname was added (renewal is certbot.timer's job).
 */
export function certbotIssueScript(layout: HostLayout, input: CertbotInput): string {
  const primary = input.hostnames[0];
  const cert = certbotCertPaths(primary).cert;
  const domains = input.hostnames.map((h) => `-d ${q(h)}`).join(" ");
  const account = [
    input.email ? `--email ${q(input.email)}` : "--register-unsafely-without-email",
    ...(input.acmeDirectory ? [`--server ${q(input.acmeDirectory)}`] : []),
  ].join(" ");
  const reload =
    "if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl enable --now nginx; fi";
  const certonly = `certbot certonly --webroot -w ${q(acmeWebroot(layout))} --cert-name ${q(primary)} ${domains} ${account} --agree-tos --non-interactive`;
  const site = (text: string) => [
    `cat >${q(layout.nginxSite)} <<'APPHOST_EOF'`,
    text.replace(/\n$/, ""),
    "APPHOST_EOF",
  ];
  return [
    "set -euo pipefail",
    `install -d -m 0755 ${q(acmeWebroot(layout))} ${q("/etc/letsencrypt/renewal-hooks/deploy")}`,
    `cat >${q(CERTBOT_DEPLOY_HOOK)} <<'APPHOST_EOF'`,
    renderCertbotDeployHook().replace(/\n$/, ""),
    "APPHOST_EOF",
    `chmod 0755 ${q(CERTBOT_DEPLOY_HOOK)}`,
    "systemctl enable --now certbot.timer",
    `if [ -f ${q(cert)} ]; then`,
    "  # The names the certificate holds, one per line (DNS:example.com).",
    `  names=$(openssl x509 -in ${q(cert)} -noout -ext subjectAltName | tail -n +2 | tr -d ' ' | tr ',' '\\n')`,
    "  missing=0",
    `  wanted=(${input.hostnames.map(q).join(" ")})`,
    '  for name in "${wanted[@]}"; do',
    '    printf \'%s\\n\' "$names" | grep -Fxq "DNS:$name" || missing=1',
    "  done",
    '  if [ "$missing" = 0 ]; then exit 0; fi',
    "  # A hostname was added: serve it on port 80 with the full site, then expand the certificate.",
    ...site(input.fullSite),
    "  nginx -t",
    `  ${reload}`,
    `  ${certonly} --expand`,
    "  exit 0",
    "fi",
    ...site(input.bootstrapSite),
    "nginx -t",
    reload,
    `${certonly} --keep-until-expiring`,
    "",
  ].join("\n");
}
