/**
 * Stack config validation, Kamal-style: one known-good base config, one bad
 * key per row, the exact message asserted. Then defaults, the pure helpers,
 * the example stack files, and the docs listing every key.
 */
import "./mocks"; // first: loadStackConfig() below runs under the shared mocks
import * as assert from "assert/strict";
import { execFileSync } from "child_process";
import { generateKeyPairSync } from "crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import * as fc from "fast-check";
import * as pulumi from "@pulumi/pulumi";
import {
  ConfigError,
  inspectPrivateKey,
  parseStackConfig,
  type ParseContext,
  type PrivateKeyInfo,
} from "../../components/config/validate";
import { archOf, ipv4CidrProblem, isDnsName, SECTIONS } from "../../components/config/schema";
import { webPortProblem } from "../../components/config/webport";
import { loadStackConfig } from "../../components/config";
import type { StackConfig } from "../../components/config/types";
import { renewalWindow } from "../../components/tls";
import {
  baseCtx,
  baseRaw,
  configProblems,
  DEPLOY_KEY,
  existingRaw,
  JUMP_KEYS,
  KNOWN_KEYS,
  lockedOpenSshKey,
  openSshKeyPair,
  POOL_KEYS,
  RDS_KEYS,
  withKey,
  withKeys,
} from "./fixtures";
import { valueOf } from "./mocks";

const ROOT = join(__dirname, "..", "..");

function header(count: number, stack = "staging"): string {
  return (
    `apphost: ${count === 1 ? "1 problem" : `${count} problems`} in the configuration of stack "${stack}"; ` +
    `no resources were changed. Fix them in Pulumi.${stack}.yaml or with \`pulumi config set --path\`, then run again:`
  );
}

/** Parses and returns the ConfigError, failing the test when parsing succeeds. */
function errorOf(raw: Record<string, unknown>, ctx: ParseContext): ConfigError {
  try {
    parseStackConfig(raw, ctx);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail("expected the config to be rejected");
}

interface Row {
  /** keys set on the base config before parsing (undefined deletes) */
  set: Record<string, unknown>;
  /** the expected line, "path: message", or each of the lines, in order */
  error: string | string[];
  base?: () => Record<string, unknown>;
  ctx?: ParseContext;
}

const OTHER_KEY = openSshKeyPair("someone-else", "00".repeat(31) + "02");
const withSecrets = (secrets: ParseContext["secrets"]): ParseContext => ({
  ...baseCtx(),
  secrets: { ...baseCtx().secrets, ...secrets },
});

const ROWS: Row[] = [
  // --- apphost:host
  {
    set: { host: undefined },
    error:
      "apphost:host: missing; expected an object (see docs/config.md for its keys); start with: pulumi config set --path 'apphost:host.kind' ec2",
  },
  {
    set: { host: "ec2" },
    error:
      'apphost:host: expected an object (a YAML mapping under apphost:host in Pulumi.staging.yaml), got "ec2"; see docs/config.md for its keys',
  },
  {
    set: { "host.kind": "lightsail" },
    error:
      'apphost:host.kind: expected one of "ec2", "existing", got "lightsail"; set it with: pulumi config set --path \'apphost:host.kind\' ec2',
  },
  {
    set: { "host.kind": undefined },
    error:
      'apphost:host.kind: missing (which machine to deploy to); expected one of "ec2", "existing"; set it with: pulumi config set --path \'apphost:host.kind\' ec2',
  },
  {
    set: { "host.instanceType": "t4g-small" },
    error:
      'apphost:host.instanceType: expected an EC2 instance type like "t4g.small", got "t4g-small"; set it with: pulumi config set --path \'apphost:host.instanceType\' t4g.small',
  },
  {
    set: { "host.instanceType": undefined },
    error:
      "apphost:host.instanceType: missing; expected an EC2 instance type like \"t4g.small\"; set it with: pulumi config set --path 'apphost:host.instanceType' t4g.small",
  },
  {
    set: { "host.port": 70000 },
    error:
      "apphost:host.port: expected an integer from 1 to 65535, got 70000; set it with: pulumi config set --path 'apphost:host.port' 22",
  },
  {
    set: { "host.port": "ssh" },
    error:
      "apphost:host.port: expected an integer from 1 to 65535, got \"ssh\"; set it with: pulumi config set --path 'apphost:host.port' 22",
  },
  {
    set: { "host.packages": ["build-essential", "libpq-dev; curl evil.sh | sh"] },
    error:
      'apphost:host.packages[1]: expected a Debian package name like "build-essential" (lowercase letters, digits and .+-), got "libpq-dev; curl evil.sh | sh"; fix the item',
  },
  {
    set: { "host.packages": "build-essential" },
    error:
      'apphost:host.packages: expected a list of strings, got "build-essential"; write it as a YAML list, e.g. ["build-essential", "python3-dev"]',
  },
  {
    set: { "app.sharedDirs": ["media", "../uploads"] },
    error:
      'apphost:app.sharedDirs[1]: expected a directory inside the release (letters, digits and ._-, like "media" or "shop/media"), got "../uploads"; fix the item',
  },
  {
    set: { "app.sharedDirs": ["data/media"] },
    error:
      'apphost:app.sharedDirs[0]: "data/media" is inside data/, which apphost links in itself (it persists already); list another directory',
  },
  {
    set: { "app.sharedDirs": ["node_modules"] },
    error:
      'apphost:app.sharedDirs[0]: "node_modules" is node_modules/, which apphost links in itself; list another directory',
  },
  {
    set: { "app.sharedDirs": ["shop/media/", "shop/media/thumbs"] },
    error:
      'apphost:app.sharedDirs[1]: "shop/media/thumbs" is inside apphost:app.sharedDirs[0] already; list each directory once',
  },
  {
    // wagtail/news-template's uploads, served as the static files are.
    set: { "app.sharedDirs": ["media"], "app.staticDir": "media", "app.staticPrefix": "/media/" },
    error:
      'apphost:app.staticDir: "media" overlaps apphost:app.sharedDirs ("media"): the proxy serves staticDir from the release and cannot read shared/data; collect the static files into a release directory of their own (the build runs in each release); ' +
      "for files the app writes there (uploads), serve the shared directory with apphost:app.sharedUrls instead: pulumi config set --path 'apphost:app.sharedUrls[\"/media/\"]' media, and remove staticDir",
  },
  {
    set: { "app.sharedDirs": ["assets"], "app.staticDir": "assets/collected" },
    error:
      'apphost:app.staticDir: "assets/collected" overlaps apphost:app.sharedDirs ("assets"): the proxy serves staticDir from the release and cannot read shared/data; collect the static files into a release directory of their own (the build runs in each release)',
  },
  {
    set: { "app.sharedDirs": ["media", "media/"] },
    error:
      'apphost:app.sharedDirs[1]: "media" is listed in apphost:app.sharedDirs[0] already; list each directory once',
  },
  {
    set: { "app.dotenv": [".env", "../.env", "src/", "./.env"] },
    error: [
      'apphost:app.dotenv[1]: expected a file path inside the release (letters, digits and ._-), like ".env" or "src/.env", got "../.env"; fix the item',
      'apphost:app.dotenv[2]: expected a file path inside the release (letters, digits and ._-), like ".env" or "src/.env", got "src/"; fix the item',
      'apphost:app.dotenv[3]: expected a file path inside the release (letters, digits and ._-), like ".env" or "src/.env", got "./.env"; fix the item',
    ],
  },
  {
    set: { "app.dotenv": ["data/.env", ".venv"] },
    error: [
      'apphost:app.dotenv[0]: "data/.env" is inside data/, which apphost links in itself; list another file',
      'apphost:app.dotenv[1]: ".venv" is .venv, which apphost links in itself; list another file',
    ],
  },
  {
    set: {
      "app.dotenv": ["src/.env", "media/.env", "src/.env", "public/.env"],
      "app.sharedDirs": ["media"],
      "app.staticDir": "public",
    },
    error: [
      'apphost:app.dotenv[1]: "media/.env" is inside apphost:app.sharedDirs[0], which every release shares; list a file of the release itself',
      'apphost:app.dotenv[2]: "src/.env" is listed in apphost:app.dotenv[0] already; list each file once',
      'apphost:app.dotenv[3]: "public/.env" is inside apphost:app.staticDir ("public"), which the proxy serves to anyone; list a file outside it',
    ],
  },
  {
    set: { "app.sharedDirs": ["media"], "app.sharedUrls": { "media/": "media" } },
    error:
      'apphost:app.sharedUrls["media/"]: expected a URL prefix starting and ending with "/" (not "/" alone), like "/media/", as the key; rename it',
  },
  {
    set: { "app.sharedDirs": ["media"], "app.sharedUrls": { "/media/": 5 } },
    error:
      'apphost:app.sharedUrls["/media/"]: expected a directory listed in apphost:app.sharedDirs, like "media", got 5; fix the value',
  },
  {
    set: { "app.sharedUrls": "/media/" },
    error:
      'apphost:app.sharedUrls: expected an object of URL prefixes and the shared directories they serve, like {"/media/": "media"}, got "/media/"; ' +
      "e.g. pulumi config set --path 'apphost:app.sharedUrls[\"/media/\"]' media",
  },
  {
    set: { "app.sharedDirs": ["media"], "app.sharedUrls": { "/media/": "uploads" } },
    error:
      'apphost:app.sharedUrls["/media/"]: "uploads" is not in apphost:app.sharedDirs; list it there too (the proxy serves a directory ' +
      "the releases share, kept in shared/data/linked), or serve a directory the build writes with apphost:app.staticDir",
  },
  {
    set: {
      "app.sharedDirs": ["media", "thumbs"],
      "app.sharedUrls": { "/media/": "media", "/media/thumbs/": "thumbs" },
    },
    error:
      'apphost:app.sharedUrls["/media/thumbs/"]: "/media/thumbs/" is inside apphost:app.sharedUrls["/media/"]; give each a prefix of its own',
  },
  {
    set: {
      "app.sharedDirs": ["media"],
      "app.staticDir": "public",
      "app.sharedUrls": { "/static/media/": "media" },
    },
    error:
      'apphost:app.sharedUrls["/static/media/"]: "/static/media/" overlaps apphost:app.staticPrefix ("/static/"); give the shared directory a prefix of its own, like "/media/"',
  },
  {
    set: {
      "app.sharedDirs": ["media"],
      "app.healthPath": "/media/ok",
      "app.sharedUrls": { "/media/": "media" },
    },
    error:
      'apphost:app.sharedUrls["/media/"]: apphost:app.healthPath ("/media/ok") is under "/media/", which the proxy answers from disk; give the uploads another prefix',
  },
  {
    set: { "host.os": "debian-11" },
    error:
      'apphost:host.os: expected one of "debian-12", "debian-13", "ubuntu-24.04", got "debian-11"; set it with: pulumi config set --path \'apphost:host.os\' debian-12',
  },
  {
    set: { "host.rootVolumeGb": 4 },
    error:
      "apphost:host.rootVolumeGb: expected an integer from 8 to 16384, got 4; set it with: pulumi config set --path 'apphost:host.rootVolumeGb' 20",
  },
  {
    set: { "host.sshPublicKey": "ecdsa-sha2-nistp256 AAAAE2VjZHNh" },
    error:
      'apphost:host.sshPublicKey: expected an OpenSSH public key line of type ssh-ed25519 or ssh-rsa (EC2 imports no other type), like "ssh-ed25519 AAAA... you@laptop", ' +
      'got "ecdsa-sha2-nistp256 AAAAE2VjZHNh"; set it with: pulumi config set --path \'apphost:host.sshPublicKey\' "$(cat ~/.ssh/apphost_deploy.pub)"',
  },
  {
    set: { "host.sshAllowCidrs": undefined },
    error:
      "apphost:host.sshAllowCidrs: missing (SSH is closed to everyone else); expected a list of IPv4 CIDRs allowed to reach SSH; " +
      "set it with: pulumi config set --path 'apphost:host.sshAllowCidrs[0]' 203.0.113.7/32",
  },
  {
    set: { "host.sshAllowCidrs": [] },
    error:
      "apphost:host.sshAllowCidrs: expected at least one IPv4 CIDR, got an empty list; add the address you deploy from, e.g. [203.0.113.7/32] (curl -4 ifconfig.me)",
  },
  {
    set: { "host.sshAllowCidrs": ["0.0.0.0/0"] },
    error:
      "apphost:host.sshAllowCidrs[0]: opens SSH to the whole internet; list the addresses you deploy from, " +
      "or set apphost:host.allowSshFromAnywhere to true if you really mean it",
  },
  {
    set: { "host.sshAllowCidrs": ["203.0.113.7/24"] },
    error:
      'apphost:host.sshAllowCidrs[0]: expected an IPv4 CIDR like "203.0.113.7/32", got "203.0.113.7/24" (host bits are set; the network is 203.0.113.0/24); fix the item',
  },
  {
    set: { "host.sshAllowCidrs": ["203.0.113.7"] },
    error:
      'apphost:host.sshAllowCidrs[0]: expected an IPv4 CIDR like "203.0.113.7/32", got "203.0.113.7" (not an IPv4 CIDR); fix the item',
  },
  {
    set: { "host.subnetId": "sub-123" },
    error:
      'apphost:host.subnetId: expected a subnet id like "subnet-0123456789abcdef0", got "sub-123"; set it with: pulumi config set --path \'apphost:host.subnetId\' subnet-0123456789abcdef0',
  },
  {
    set: { "host.elasticIp": "yes" },
    error:
      "apphost:host.elasticIp: expected true or false, got \"yes\"; set it with: pulumi config set --path 'apphost:host.elasticIp' false",
  },
  {
    set: { "host.address": "203.0.113.10" },
    error:
      "apphost:host.address: only used when apphost:host.kind is existing (ec2 gets its address from AWS); remove it",
  },
  {
    set: { "host.instanceTyp": "t4g.small" },
    error: 'apphost:host.instanceTyp: unknown key; did you mean "instanceType"? Rename or remove it',
  },
  // --- apphost:host, kind existing
  {
    base: existingRaw,
    set: { "host.user": undefined },
    error:
      "apphost:host.user: missing (apphost cannot guess the login user of a server it did not create); " +
      "expected a login user name with sudo rights; set it with: pulumi config set --path 'apphost:host.user' deploy",
  },
  {
    base: existingRaw,
    set: { "host.address": "not an address!" },
    error:
      'apphost:host.address: expected an IPv4 address or DNS name like "203.0.113.10", got "not an address!"; set it with: pulumi config set --path \'apphost:host.address\' 203.0.113.10',
  },
  {
    base: existingRaw,
    set: { "host.hostKey": "ssh-ed25519 nope" },
    error:
      'apphost:host.hostKey: expected the server\'s public host key line, like "ssh-ed25519 AAAA...", got "ssh-ed25519 nope"; ' +
      "set it with: pulumi config set --path 'apphost:host.hostKey' \"$(ssh-keyscan -t ed25519 203.0.113.10 | cut -d' ' -f2-)\"",
  },
  {
    base: existingRaw,
    set: { "host.sshAllowCidrs": ["203.0.113.7/32"] },
    error:
      "apphost:host.sshAllowCidrs: only used when apphost:host.kind is ec2 (apphost does not manage the firewall of an existing server); remove it",
  },
  {
    set: { host: { kind: "existing", address: "server.example.net", user: "deploy" } },
    error:
      "apphost:host.address: is a DNS name, but apphost:dns.provider cloudflare publishes A records and needs the server's IPv4 address; " +
      "set it with: pulumi config set --path 'apphost:host.address' 203.0.113.10",
  },
  // --- apphost:dns
  {
    set: { "dns.provider": "route53" },
    error:
      'apphost:dns.provider: expected one of "cloudflare", "none", got "route53"; set it with: pulumi config set --path \'apphost:dns.provider\' cloudflare',
  },
  {
    set: { "dns.zone": "exa mple" },
    error:
      'apphost:dns.zone: expected a Cloudflare zone name like "example.com", got "exa mple"; set it with: pulumi config set --path \'apphost:dns.zone\' example.com',
  },
  {
    set: { "dns.zone": undefined },
    error:
      "apphost:dns.zone: missing (records are created in this zone); expected the Cloudflare zone name (or apphost:dns.zoneId); " +
      "set it with: pulumi config set --path 'apphost:dns.zone' example.com",
  },
  {
    set: { "dns.zoneId": "xyz" },
    error:
      'apphost:dns.zoneId: expected a Cloudflare zone id (32 hex characters, Overview page of the zone), got "xyz"; ' +
      "set it with: pulumi config set --path 'apphost:dns.zoneId' 023e105f4ecef8ad9ca31a8372d0c353",
  },
  {
    set: { "dns.hostnames": "staging.example.com" },
    error:
      'apphost:dns.hostnames: expected a list of hostnames, got "staging.example.com"; write it as a YAML list, e.g. ["example.com", "www.example.com"]',
  },
  {
    set: { "dns.hostnames": [] },
    error:
      "apphost:dns.hostnames: expected at least one hostname, got an empty list; set it with: pulumi config set --path 'apphost:dns.hostnames[0].name' example.com",
  },
  {
    set: { "dns.hostnames": undefined },
    error:
      "apphost:dns.hostnames: missing (one A record is created per hostname); expected at least one hostname; " +
      "set it with: pulumi config set --path 'apphost:dns.hostnames[0].name' example.com",
  },
  {
    set: { "dns.hostnames[0].name": "Staging.Example.com" },
    error:
      'apphost:dns.hostnames[0].name: expected a DNS name like "www.example.com" (lowercase letters, digits and dashes, at least two labels) ' +
      "or, without DNS, the host's IPv4 address, " +
      'got "Staging.Example.com"; write it in lowercase: staging.example.com',
  },
  {
    set: { "dns.hostnames[0].name": "*.example.com" },
    error:
      'apphost:dns.hostnames[0].name: expected a DNS name like "www.example.com" (lowercase letters, digits and dashes, at least two labels) ' +
      "or, without DNS, the host's IPv4 address, " +
      'got "*.example.com"; wildcards need a DNS challenge apphost does not do, list each name',
  },
  {
    set: { "dns.hostnames[0].name": "staging.example.org" },
    error:
      'apphost:dns.hostnames[0].name: "staging.example.org" is not in the zone "example.com"; use a name ending in .example.com or change apphost:dns.zone',
  },
  {
    set: { "dns.hostnames[1]": { name: "staging.example.com", proxied: true } },
    error: 'apphost:dns.hostnames[1].name: duplicate hostname "staging.example.com"; list each hostname once',
  },
  {
    set: { "dns.hostnames[0].proxied": "yes" },
    error:
      "apphost:dns.hostnames[0].proxied: expected true or false, got \"yes\"; set it with: pulumi config set --path 'apphost:dns.hostnames[0].proxied' false",
  },
  {
    set: { "dns.hostnames[0].ttl": 60 },
    error:
      "apphost:dns.hostnames[0].ttl: unknown key; the keys of apphost:dns.hostnames[0] are name, proxied. Remove it",
  },
  {
    set: { host: { kind: "existing", address: "203.0.113.10", user: "deploy" }, "dns.ipv6": true },
    error:
      'apphost:dns.ipv6: AAAA records need the instance\'s IPv6 address, which apphost only knows for apphost:host.kind ec2 (got "existing"); remove it',
  },
  {
    base: existingRaw,
    set: { "dns.zone": "example.net" },
    error:
      'apphost:dns.zone: only used when apphost:dns.provider is cloudflare (with "none" you manage DNS yourself); remove it or set apphost:dns.provider to cloudflare',
  },
  {
    base: existingRaw,
    set: { "dns.hostnames[0]": { name: "shop.example.net", proxied: true } },
    error:
      'apphost:dns.hostnames[0].proxied: only used when apphost:dns.provider is cloudflare (with "none" you manage DNS yourself); remove it or set apphost:dns.provider to cloudflare',
  },
  // --- apphost:tls
  {
    set: { tls: undefined },
    error:
      "apphost:tls: missing; expected an object (see docs/config.md for its keys); start with: pulumi config set --path 'apphost:tls.mode' caddy-acme",
  },
  {
    set: { "tls.mode": "letsencrypt" },
    error:
      'apphost:tls.mode: expected one of "caddy-acme", "certbot", "cloudflare-origin", "internal", "off", "acm", got "letsencrypt"; ' +
      "set it with: pulumi config set --path 'apphost:tls.mode' caddy-acme",
  },
  {
    set: { "tls.mode": "certbot" },
    error:
      'apphost:tls.mode: "certbot" needs apphost:proxy.kind "nginx" (certbot\'s installer edits nginx), got "caddy"; ' +
      "set apphost:proxy.kind to nginx, or use tls.mode caddy-acme with Caddy",
  },
  {
    set: { "tls.mode": "caddy-acme", "proxy.kind": "nginx" },
    error:
      'apphost:tls.mode: "caddy-acme" needs apphost:proxy.kind "caddy" (Caddy obtains the certificates itself), got "nginx"; ' +
      "set apphost:proxy.kind to caddy, or use tls.mode certbot with nginx",
  },
  {
    set: { dns: { provider: "none", hostnames: ["staging.example.com"] } },
    error:
      'apphost:tls.mode: "cloudflare-origin" needs apphost:dns.provider "cloudflare" (the Origin CA signs only for zones Cloudflare serves), ' +
      'got "none"; set apphost:dns.provider to cloudflare or choose another tls.mode',
  },
  {
    set: { "dns.hostnames[0].proxied": false },
    error:
      'apphost:dns.hostnames[0]: "staging.example.com" is not proxied, but tls.mode cloudflare-origin serves a certificate only Cloudflare trusts; ' +
      "set proxied: true on it or choose tls.mode caddy-acme",
  },
  {
    base: existingRaw,
    set: { "dns.hostnames": undefined },
    error:
      "apphost:dns.hostnames: missing; tls.mode caddy-acme needs the names to put on the certificate; " +
      "set it with: pulumi config set --path 'apphost:dns.hostnames[0].name' example.com",
  },
  {
    base: existingRaw,
    set: { "tls.mode": "off", "tls.email": undefined, "dns.hostnames": undefined },
    error:
      "apphost:dns.hostnames: missing; the proxy serves only the names listed here (without DNS, list the host's public IPv4 address); " +
      "set it with: pulumi config set --path 'apphost:dns.hostnames[0].name' 203.0.113.10",
  },
  {
    set: { "dns.hostnames[1]": { name: "203.0.113.10", proxied: true } },
    error:
      'apphost:dns.hostnames[1]: "203.0.113.10" is an address, and DNS records need a name; use a name like "www.example.com"',
  },
  {
    base: existingRaw,
    set: { "dns.hostnames[0]": "203.0.113.10" },
    error:
      'apphost:dns.hostnames[0]: "203.0.113.10" is an address, and tls.mode caddy-acme needs a DNS name on the certificate; ' +
      "use a name, or tls.mode internal or off",
  },
  {
    base: existingRaw,
    set: { "tls.mode": "internal", "tls.email": undefined, "proxy.kind": "nginx" },
    error:
      'apphost:tls.mode: "internal" needs apphost:proxy.kind "caddy" (its local CA issues the certificate), got "nginx"; ' +
      "set apphost:proxy.kind to caddy, or use tls.mode off behind another TLS terminator",
  },
  {
    set: { "tls.originValidityDays": 100 },
    error:
      "apphost:tls.originValidityDays: expected one of 7, 30, 90, 365, 730, 1095, 5475 (the validities Cloudflare's Origin CA issues), got 100; " +
      "set it with: pulumi config set --path 'apphost:tls.originValidityDays' 365",
  },
  {
    set: { "tls.renewBeforeDays": 400 },
    error:
      "apphost:tls.renewBeforeDays: must be less than apphost:tls.originValidityDays (365), got 400; " +
      "otherwise the certificate is renewed on every run. Lower it, e.g. to 30",
  },
  {
    set: { "tls.email": "ops@example.com" },
    error:
      'apphost:tls.email: only used when apphost:tls.mode is caddy-acme or certbot (got "cloudflare-origin"); remove it',
  },
  {
    set: { "tls.mode": "caddy-acme", "tls.email": "ops" },
    error:
      "apphost:tls.email: expected an e-mail address for the ACME account, got \"ops\"; set it with: pulumi config set --path 'apphost:tls.email' ops@example.com",
  },
  {
    set: { "tls.mode": "caddy-acme", "tls.renewBeforeDays": 10 },
    error:
      'apphost:tls.renewBeforeDays: only used when apphost:tls.mode is cloudflare-origin (got "caddy-acme"); remove it',
  },
  {
    set: { "tls.mode": "caddy-acme", "tls.acmeDirectory": "http://ca.internal/directory" },
    error:
      'apphost:tls.acmeDirectory: expected the https:// URL of an ACME directory, got "http://ca.internal/directory"; ' +
      "set it with: pulumi config set --path 'apphost:tls.acmeDirectory' https://acme-staging-v02.api.letsencrypt.org/directory",
  },
  {
    set: { "tls.acmeDirectory": "https://ca.internal/directory" },
    error:
      'apphost:tls.acmeDirectory: only used when apphost:tls.mode is caddy-acme or certbot (got "cloudflare-origin"); remove it',
  },
  {
    set: {
      "tls.mode": "caddy-acme",
      "tls.acmeCaRoot": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    },
    error:
      "apphost:tls.acmeCaRoot: names the root of an ACME server, but apphost:tls.acmeDirectory is not set (certificates would come from Let's Encrypt); " +
      "set it too, e.g. pulumi config set --path 'apphost:tls.acmeDirectory' https://ca.internal:9000/acme/acme/directory, or remove acmeCaRoot",
  },
  {
    set: {
      "tls.mode": "certbot",
      "proxy.kind": "nginx",
      "tls.acmeDirectory": "https://ca.internal:9000/acme/acme/directory",
      "tls.acmeCaRoot": "root.pem",
    },
    error:
      "apphost:tls.acmeCaRoot: expected one PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----): " +
      'the root the ACME server\'s HTTPS certificate chains to, got "root.pem"; ' +
      "set it with: pulumi config set --path 'apphost:tls.acmeCaRoot' \"$(cat acme-root.pem)\"",
  },
  // --- apphost:proxy
  {
    set: { proxy: "caddy" },
    error:
      'apphost:proxy: expected an object (a YAML mapping under apphost:proxy in Pulumi.staging.yaml), got "caddy"; see docs/config.md for its keys',
  },
  {
    set: { "proxy.kind": "apache" },
    error:
      'apphost:proxy.kind: expected one of "caddy", "nginx", got "apache"; set it with: pulumi config set --path \'apphost:proxy.kind\' caddy',
  },
  {
    set: { "proxy.maxBodySize": "25 MB" },
    error:
      'apphost:proxy.maxBodySize: expected a size in nginx syntax like "25m" (digits, then k, m or g), got "25 MB"; ' +
      "set it with: pulumi config set --path 'apphost:proxy.maxBodySize' 25m",
  },
  {
    set: { "proxy.httpsPort": 80 },
    error:
      "apphost:proxy.httpsPort: must differ from apphost:proxy.httpPort (both are 80); pick another port",
  },
  {
    set: { "tls.mode": "off", "proxy.hsts": true },
    error:
      "apphost:proxy.hsts: HSTS tells browsers to insist on HTTPS, but apphost:tls.mode is off; remove it or turn TLS on",
  },
  // --- apphost:app
  {
    set: { app: undefined },
    error:
      "apphost:app: missing; expected an object (see docs/config.md for its keys); start with: pulumi config set --path 'apphost:app.source' app",
  },
  {
    set: { "app.source": " app" },
    error:
      'apphost:app.source: expected a directory: relative to the project ("app", "../shop" for an app in its own repository) or absolute, got " app"; set it with: pulumi config set --path \'apphost:app.source\' app',
  },
  {
    set: { "app.runtime": "ruby" },
    error:
      'apphost:app.runtime: expected one of "python", "node", got "ruby"; set it with: pulumi config set --path \'apphost:app.runtime\' python',
  },
  {
    set: { "app.name": "My App" },
    error:
      "apphost:app.name: expected lowercase letters, digits and dashes, starting with a letter, got \"My App\"; set it with: pulumi config set --path 'apphost:app.name' shop",
  },
  {
    set: { "app.name": "a-very-long-application-name" },
    error:
      'apphost:app.name: "a-very-long-application-name-staging" is 36 characters; it names the Linux user on the host, which is limited to 31; ' +
      "set it with: pulumi config set --path 'apphost:app.name' a-very-long-application",
  },
  {
    set: { "app.processes": undefined },
    error:
      "apphost:app.processes: missing (what runs on the host; the app has no Procfile to take it from); expected a map of process name to {command, kind}; " +
      "set it with: pulumi config set --path 'apphost:app.processes.web.command' 'gunicorn app:app --bind 127.0.0.1:$PORT'",
  },
  {
    set: { "app.processes.worker.kind": "web" },
    error:
      'apphost:app.processes: expected exactly one process of kind "web" (it receives HTTP on $PORT), got 2 (web, worker); ' +
      "keep kind: web on one of them and make the others workers",
  },
  {
    set: { "app.processes.web.kind": "worker" },
    error:
      'apphost:app.processes: expected exactly one process of kind "web" (it receives HTTP on $PORT), got none; set kind: web on the HTTP process',
  },
  {
    set: { "app.processes.web": "uvicorn app.main:app --host 0.0.0.0 --port 8000" },
    error:
      'apphost:app.processes.web.command: binds port 8000 itself ("--port 8000"); each release starts its web instance on the other of two ports ' +
      "(apphost:app.basePort and the one after it) and passes that port in $PORT, so a fixed port collides with the instance still serving " +
      'and the release fails its health gate: write "--port $PORT"',
  },
  {
    set: { "app.processes.web.command": "gunicorn -w 4 -b 0.0.0.0:8000 app:app" },
    error:
      'apphost:app.processes.web.command: binds port 8000 itself ("-b 0.0.0.0:8000"); each release starts its web instance on the other of two ports ' +
      "(apphost:app.basePort and the one after it) and passes that port in $PORT, so a fixed port collides with the instance still serving " +
      'and the release fails its health gate: write "-b 0.0.0.0:$PORT"',
  },
  {
    set: { "app.processes.upstream": { command: "python proxy.py", kind: "worker" } },
    error:
      'apphost:app.processes.upstream: "upstream" is taken: apphost\'s own unit is apphost-<app>-<stack>-upstream.service (backup, upstream, job, alert, schedule-* and exec-<digits> are reserved); rename the process',
  },
  {
    set: { "app.processes.exec-4242": { command: "python tasks.py", kind: "worker" } },
    error:
      'apphost:app.processes["exec-4242"]: "exec-4242" is taken: apphost\'s own unit is apphost-<app>-<stack>-exec-4242.service (backup, upstream, job, alert, schedule-* and exec-<digits> are reserved); rename the process',
  },
  {
    set: { "app.processes.web.hosts": "first" },
    error:
      'apphost:app.processes.web.hosts: expected "all" for the web process: the balancer sends requests to every app host, and each serves them; ' +
      "hosts: first is for a worker that must run once per stack; remove it here",
  },
  {
    set: { "app.processes.worker.hosts": "one" },
    error:
      'apphost:app.processes.worker.hosts: expected one of "all", "first", got "one"; ' +
      "set it with: pulumi config set --path 'apphost:app.processes.worker.hosts' all",
  },
  {
    set: { "app.processes.web.kind": "http" },
    error:
      'apphost:app.processes.web.kind: expected one of "web", "worker", got "http"; set it with: pulumi config set --path \'apphost:app.processes.web.kind\' web',
  },
  {
    set: { "app.processes.web.command": "" },
    error:
      `apphost:app.processes.web.command: expected the command to run, e.g. 'gunicorn app:app --bind 127.0.0.1:$PORT', got ""; ` +
      "set it with: pulumi config set --path 'apphost:app.processes.web.command' 'gunicorn app:app --bind 127.0.0.1:$PORT'",
  },
  {
    set: { 'app.processes["Web Server"]': { command: "x" } },
    error:
      'apphost:app.processes["Web Server"]: expected a process name of lowercase letters, digits and dashes, starting with a letter ' +
      "(it becomes part of a systemd unit name); rename it",
  },
  {
    set: { "app.excludes": ["*.log", "!"] },
    error: "apphost:app.excludes[1]: empty pattern; fix or remove the pattern",
  },
  {
    set: { "app.excludes": ["data/[abc"] },
    error: 'apphost:app.excludes[0]: unclosed "[" in "data/[abc"; fix or remove the pattern',
  },
  {
    set: { "app.env.PORT": "8000" },
    error:
      "apphost:app.env.PORT: PORT is set by apphost for each web instance (blue/green ports); remove it and read $PORT in the app",
  },
  {
    set: { 'app.env["MY-VAR"]': "x" },
    error:
      'apphost:app.env["MY-VAR"]: expected an environment variable name (letters, digits and _, not starting with a digit); rename it',
  },
  {
    set: { "app.env.NESTED": { a: 1 } },
    error: "apphost:app.env.NESTED: expected a string value, got an object; quote the value",
  },
  {
    set: { "proxy.httpsPort": 8443, "app.basePort": 8442 },
    error:
      "apphost:app.basePort: the web instances listen on 8442 and 8443 and the proxy connects to 8444, which collides with apphost:proxy.httpsPort (8443); " +
      "set it with: pulumi config set --path 'apphost:app.basePort' 8000",
  },
  {
    set: { "proxy.httpsPort": 8443, "app.basePort": 8441 },
    error:
      "apphost:app.basePort: the web instances listen on 8441 and 8442 and the proxy connects to 8443, which collides with apphost:proxy.httpsPort (8443); " +
      "set it with: pulumi config set --path 'apphost:app.basePort' 8000",
  },
  {
    set: { "app.healthPath": "/health check" },
    error:
      'apphost:app.healthPath: expected a URL path starting with "/" (letters, digits and ._~/-), like "/healthz", got "/health check"; ' +
      "set it with: pulumi config set --path 'apphost:app.healthPath' /healthz",
  },
  {
    set: { "app.staticDir": "static", "app.staticPrefix": "/" },
    error:
      'apphost:app.staticPrefix: expected a URL prefix starting and ending with "/" (not "/" alone), like "/static/", got "/"; ' +
      "set it with: pulumi config set --path 'apphost:app.staticPrefix' /static/",
  },
  {
    set: { "app.staticPrefix": "/assets/" },
    error: "apphost:app.staticPrefix: only used with apphost:app.staticDir; set staticDir or remove it",
  },
  // --- apphost:database, apphost:backups, apphost:releases
  {
    set: { "database.kind": "mysql" },
    error:
      'apphost:database.kind: expected one of "sqlite", "postgres", "rds", "external", "none", got "mysql"; set it with: pulumi config set --path \'apphost:database.kind\' sqlite',
  },
  {
    set: { "app.env.PATH": "/usr/local/bin:/usr/bin" },
    error:
      "apphost:app.env.PATH: PATH is set by apphost: the units put the release's venv or node_modules/.bin first; remove it",
  },
  {
    set: { "app.env.DATABASE_URL": "sqlite:///x.db" },
    error:
      "apphost:app.env.DATABASE_URL: DATABASE_URL is set by apphost from apphost:database (kind sqlite); remove it (for a driver in its scheme, such as sqlite+aiosqlite://, set apphost:database.urlScheme), or set apphost:database.kind to none to bring your own",
  },
  {
    set: { "database.kind": "postgres", "app.env.DB_POOL_SIZE": "3" },
    error:
      "apphost:app.env.DB_POOL_SIZE: DB_POOL_SIZE is set by apphost from apphost:database.pool.size; set that instead and remove this",
  },
  {
    set: {},
    ctx: { ...baseCtx(), secrets: { ...baseCtx().secrets, secretEnvTypes: { PATH: "string" } } },
    error:
      "apphost:secretEnv.PATH: PATH is set by apphost: the units put the release's venv or node_modules/.bin first; remove it",
  },
  {
    set: { "database.postgresName": "shop" },
    error:
      'apphost:database.postgresName: only used when apphost:database.kind is postgres or rds (got "sqlite"); remove it',
  },
  {
    set: { "database.sqliteFile": "data/app.db" },
    error:
      'apphost:database.sqliteFile: expected a file name like "app.db" (no directories; it lives in shared/data), got "data/app.db"; ' +
      "set it with: pulumi config set --path 'apphost:database.sqliteFile' app.db",
  },
  {
    set: { "database.kind": "postgres", "database.urlScheme": "postgresql+Async" },
    error:
      'apphost:database.urlScheme: expected a URL scheme like "postgresql+asyncpg" (postgresql or sqlite, then +driver; postgres, as Heroku writes it; or file, for SQLite as libsql reads it), got "postgresql+Async"; ' +
      "set it with: pulumi config set --path 'apphost:database.urlScheme' postgresql+asyncpg",
  },
  {
    set: { "database.kind": "external", "database.urlScheme": "sqlite+aiosqlite" },
    ctx: { ...baseCtx(), secrets: { ...baseCtx().secrets, databaseUrlInfo: { host: "db.example.com" } } },
    error:
      'apphost:database.urlScheme: expected postgresql, postgres or postgresql+<driver> for apphost:database.kind external, got "sqlite+aiosqlite"; ' +
      "set it with: pulumi config set --path 'apphost:database.urlScheme' postgresql+asyncpg",
  },
  {
    set: { "database.urlScheme": "postgresql" },
    error:
      'apphost:database.urlScheme: expected sqlite, file or sqlite+<driver> for apphost:database.kind sqlite, got "postgresql"; ' +
      "set it with: pulumi config set --path 'apphost:database.urlScheme' sqlite+aiosqlite",
  },
  {
    set: { "database.kind": "postgres", "database.urlScheme": "file" },
    error:
      'apphost:database.urlScheme: expected postgresql, postgres or postgresql+<driver> for apphost:database.kind postgres, got "file"; ' +
      "set it with: pulumi config set --path 'apphost:database.urlScheme' postgresql+asyncpg",
  },
  {
    set: { "database.urlScheme": "postgres" },
    error:
      'apphost:database.urlScheme: expected sqlite, file or sqlite+<driver> for apphost:database.kind sqlite, got "postgres"; ' +
      "set it with: pulumi config set --path 'apphost:database.urlScheme' sqlite+aiosqlite",
  },
  {
    set: { "database.kind": "postgres", "database.urlScheme": "postgres+asyncpg" },
    error:
      'apphost:database.urlScheme: expected a URL scheme like "postgresql+asyncpg" (postgresql or sqlite, then +driver; postgres, as Heroku writes it; or file, for SQLite as libsql reads it), got "postgres+asyncpg"; ' +
      "set it with: pulumi config set --path 'apphost:database.urlScheme' postgresql+asyncpg",
  },
  {
    set: { "database.kind": "none", "database.urlScheme": "postgresql+asyncpg" },
    error:
      "apphost:database.urlScheme: there is no DATABASE_URL when apphost:database.kind is none; remove it",
  },
  {
    set: { "database.revision": "alembic current" },
    error:
      "apphost:database.revision: reports the revision apphost:database.migrate reaches, but migrate is not set; set migrate or remove it",
  },
  {
    set: { "backups.keep": 1 },
    error:
      "apphost:backups.keep: expected an integer from 2 to 1000, got 1; set it with: pulumi config set --path 'apphost:backups.keep' 7",
  },
  {
    set: { "backups.schedule": "daily; rm -rf /" },
    error:
      'apphost:backups.schedule: expected a systemd OnCalendar expression like "daily" or "*-*-* 03:30:00", got "daily; rm -rf /"; ' +
      "set it with: pulumi config set --path 'apphost:backups.schedule' daily",
  },
  {
    set: { "backups.s3": "yes" },
    error:
      "apphost:backups.s3: expected true or false, got \"yes\"; set it with: pulumi config set --path 'apphost:backups.s3' false",
  },
  {
    set: { "backups.s3": true, "backups.s3ExpireDays": 0 },
    error:
      "apphost:backups.s3ExpireDays: expected an integer from 1 to 3650, got 0; set it with: pulumi config set --path 'apphost:backups.s3ExpireDays' 30",
  },
  {
    set: { "backups.s3ExpireDays": 60 },
    error:
      "apphost:backups.s3ExpireDays: only used when apphost:backups.s3 is true (no bucket is created otherwise); remove it",
  },
  {
    set: { "backups.s3": true },
    base: existingRaw,
    error:
      'apphost:backups.s3: needs apphost:host.kind ec2 (got "existing"): the copy authenticates with the IAM role of the instance apphost creates, ' +
      "and apphost puts no AWS keys on a server it did not create; set it to false, or copy the backups directory with your own tooling",
  },
  {
    set: { "backups.s3": true, "host.os": "ubuntu-24.04" },
    error:
      'apphost:backups.s3: needs apphost:host.os debian-13 or debian-12 (got "ubuntu-24.04"): the copy uses Debian\'s awscli package, ' +
      "which Ubuntu 24.04's archive does not carry; set apphost:host.os to debian-13 or set this to false",
  },
  {
    set: { "backups.s3": true, "database.kind": "none" },
    error:
      "apphost:backups.s3: there is nothing to back up when apphost:database.kind is none; set it to false or remove it",
  },
  {
    set: { "releases.keep": 1 },
    error:
      "apphost:releases.keep: expected an integer from 2 to 100, got 1; set it with: pulumi config set --path 'apphost:releases.keep' 5",
  },
  {
    set: { "releases.drainSeconds": -1 },
    error:
      "apphost:releases.drainSeconds: expected an integer from 0 to 600, got -1; set it with: pulumi config set --path 'apphost:releases.drainSeconds' 5",
  },
  {
    set: { "releases.rollbackTo": "../x" },
    error:
      'apphost:releases.rollbackTo: expected a release id (YYYYMMDDHHMMSS-<8 hex>) from `npm run releases`, got "../x"; ' +
      "set it with: pulumi config set --path 'apphost:releases.rollbackTo' 20250102120000-1a2b3c4d",
  },
  // A key of the stack's own written inside a section: where it goes.
  {
    set: { "app.secretEnv": { DJANGO_SECRET_KEY: "x" } },
    error:
      "apphost:app.secretEnv: not a key of apphost:app: apphost:secretEnv is a secret of the stack's own; " +
      "set it with pulumi config set --secret --path 'apphost:secretEnv.NAME' <value> (encrypted in the stack file), and remove this one",
  },
  {
    set: { "app.database": { kind: "postgres" } },
    error:
      "apphost:app.database: not a key of apphost:app: apphost:database is a section of the stack's own; move this under apphost:database",
  },
  {
    set: { databse: { kind: "sqlite" } },
    error: "apphost:databse: unknown key; did you mean apphost:database? Rename or remove it",
  },
  // A key with a dot in its name (`pulumi config set apphost:host.packages` without --path, or so in the YAML).
  {
    base: () => ({ ...baseRaw(), "host.packages": ["build-essential"] }),
    set: {},
    error:
      "apphost:host.packages: a key with a dot in its name, which Pulumi keeps apart from apphost:host " +
      "(`pulumi config set` without --path writes one): move packages under apphost:host in the stack file, or " +
      "remove it (pulumi config rm 'apphost:host.packages') and set it again with pulumi config set --path",
  },
  // --- secrets (facts only: the values never reach the parser)
  {
    set: {},
    ctx: { ...baseCtx(), secrets: {} },
    error:
      "apphost:sshPrivateKey: missing; apphost deploys over SSH with this key (on ec2 too). " +
      "Store it encrypted with: pulumi config set --secret apphost:sshPrivateKey < ~/.ssh/apphost_deploy",
  },
  {
    set: {},
    ctx: withSecrets({ sshPrivateKeyInfo: inspectPrivateKey(lockedOpenSshKey()) }),
    error:
      "apphost:sshPrivateKey: the key is protected by a passphrase, and deploys run without a prompt; " +
      'use a dedicated deploy key without one (ssh-keygen -t ed25519 -N "" -f ~/.ssh/apphost_deploy)',
  },
  {
    set: {},
    ctx: withSecrets({ sshPrivateKeyInfo: inspectPrivateKey("PuTTY-User-Key-File-3: ssh-ed25519") }),
    error:
      'apphost:sshPrivateKey: expected an OpenSSH or PEM private key ("-----BEGIN OPENSSH PRIVATE KEY-----"); ' +
      "store the private key file itself: pulumi config set --secret apphost:sshPrivateKey < ~/.ssh/apphost_deploy",
  },
  {
    set: { "host.sshPublicKey": OTHER_KEY.publicKey },
    error:
      'apphost:host.sshPublicKey: does not match apphost:sshPrivateKey (whose public half is "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEy1q/atefv1q7zK/MJp..."), ' +
      "so the instance would only accept a key the deployer does not hold; set it to the output of: ssh-keygen -y -f ~/.ssh/apphost_deploy",
  },
  {
    set: {},
    ctx: withSecrets({ secretEnvTypes: "string" }),
    error:
      "apphost:secretEnv: expected an object of environment variables, got a string; " +
      "set each variable with: pulumi config set --secret --path 'apphost:secretEnv.NAME' value",
  },
  {
    set: {},
    ctx: withSecrets({ secretEnvTypes: { DATABASE: "object" } }),
    error: "apphost:secretEnv.DATABASE: expected a string value, got an object; quote the value",
  },
  {
    set: {},
    ctx: withSecrets({ secretEnvTypes: { PORT: "string" } }),
    error:
      "apphost:secretEnv.PORT: PORT is set by apphost for each web instance (blue/green ports); remove it and read $PORT in the app",
  },
  {
    set: { "app.env.SECRET_KEY": "dev" },
    ctx: withSecrets({ secretEnvTypes: { SECRET_KEY: "string" } }),
    error:
      "apphost:secretEnv.SECRET_KEY: also set in apphost:app.env; keep it in one place (secretEnv if it is a secret)",
  },
  // --- apphost:database.pool (postgres only) and dev-only reset switches (refused on prod*)
  {
    set: { "database.kind": "postgres", "database.pool": { size: 0 } },
    error:
      "apphost:database.pool.size: expected an integer from 1 to 1000, got 0; set it with: pulumi config set --path 'apphost:database.pool.size' 5",
  },
  {
    set: { "database.kind": "postgres", "database.pool": { sizes: 3 } },
    error: 'apphost:database.pool.sizes: unknown key; did you mean "size"? Rename or remove it',
  },
  {
    set: { "database.pool": { size: 3 } },
    error:
      'apphost:database.pool: only used when apphost:database.kind is postgres, rds or external (got "sqlite"); remove it',
  },
  {
    set: { "database.extensions": ["bloom"] },
    error:
      'apphost:database.extensions: only used when apphost:database.kind is postgres (got "sqlite"); remove it',
  },
  {
    set: { "database.kind": "external", "database.extensions": ["bloom"] },
    ctx: { ...baseCtx(), secrets: { ...baseCtx().secrets, databaseUrlInfo: { host: "db.example.com" } } },
    error:
      'apphost:database.extensions: only used when apphost:database.kind is postgres (got "external": on a database apphost does not run, its admin role creates them, as RDS\' master user can); remove it',
  },
  {
    set: { "database.kind": "postgres", "database.extensions": ["bloom", "Pg Trgm"] },
    error:
      'apphost:database.extensions[1]: expected an extension name like "pg_trgm" (lowercase letters, digits, _ and -), got "Pg Trgm"; fix the item',
  },
  {
    set: { "app.env.DB_RESET_ON_STARTUP": "true" },
    ctx: { ...baseCtx("prod") },
    error:
      'apphost:app.env.DB_RESET_ON_STARTUP: is a dev-only switch that wipes the database when the app starts; stack "prod" is a production stack (named prod*), so apphost refuses it. Remove it, or set it to false',
  },
  {
    set: {},
    ctx: {
      ...baseCtx("prod-eu"),
      secrets: {
        ...baseCtx().secrets,
        secretEnvTypes: { DB_RESET_ON_STARTUP: "string" },
        secretEnvResetsOn: ["DB_RESET_ON_STARTUP"],
      },
    },
    error:
      'apphost:secretEnv.DB_RESET_ON_STARTUP: is a dev-only switch that wipes the database when the app starts; stack "prod-eu" is a production stack (named prod*), so apphost refuses it. Remove it, or set it to false',
  },
  {
    set: { "database.kind": "rds", "database.rds": { engineVersion: "18" } },
    error:
      'apphost:database.rds.engineVersion: expected Postgres "15", "16" or "17", or a minor version of one like "17.2", got "18"; set it with: pulumi config set --path \'apphost:database.rds.engineVersion\' "15"',
  },
  {
    set: { "database.kind": "rds", "database.rds": { engineVersion: "16.4" } },
    error:
      'apphost:database.rds.engineVersion: Postgres 16 is newer than the pg_dump of apphost:host.os "debian-12" (15), which takes the backups and refuses a newer server; set apphost:host.os to debian-13 (pg_dump 17), or this to "15"',
  },
  {
    set: {
      "database.kind": "rds",
      "database.rds": { engineVersion: "17" },
      "host.os": "ubuntu-24.04",
      "host.instanceType": "t3.small",
    },
    error:
      'apphost:database.rds.engineVersion: Postgres 17 is newer than the pg_dump of apphost:host.os "ubuntu-24.04" (16), which takes the backups and refuses a newer server; set apphost:host.os to debian-13 (pg_dump 17), or this to "16"',
  },
  {
    set: { "database.kind": "rds", "database.rds": { subnetIds: ["subnet-0aaaaaaaaaaaaaaaa"] } },
    error:
      "apphost:database.rds.subnetIds: RDS needs subnets in two availability zones at least; list two or more",
  },
  {
    set: { "database.kind": "postgres", "database.rds": { multiAz: true } },
    error: 'apphost:database.rds: only used when apphost:database.kind is rds (got "postgres"); remove it',
  },
  {
    set: { "app.basePort": 2018 },
    error:
      "apphost:app.basePort: the web instances listen on 2018 and 2019 and the proxy connects to 2020, which collides with Caddy's admin API (2019); set it with: pulumi config set --path 'apphost:app.basePort' 8000",
  },
  {
    set: { "app.basePort": 5430 },
    error:
      "apphost:app.basePort: the web instances listen on 5430 and 5431 and the proxy connects to 5432, which collides with Postgres (apphost:database.kind postgres) (5432); set it with: pulumi config set --path 'apphost:app.basePort' 8000",
  },
  // --- apphost:host.via
  {
    base: existingRaw,
    set: { "host.via": "bastion" },
    error:
      'apphost:host.via: expected direct (the default), instance-connect (ec2: an EC2 Instance Connect Endpoint), or {jump: {address, port, user, hostKey}} for an SSH jump host, got "bastion"; ' +
      "set it with: pulumi config set --path 'apphost:host.via.jump.address' 203.0.113.5 (and .hostKey)",
  },
  {
    base: existingRaw,
    set: { "host.via": { jump: { address: "203.0.113.5" } } },
    error:
      "apphost:host.via.jump.hostKey: missing (apphost pins the jump host's key too; it is known before the first connection); " +
      'expected the jump host\'s public host key line, like "ssh-ed25519 AAAA..."; ' +
      "set it with: pulumi config set --path 'apphost:host.via.jump.hostKey' \"$(ssh-keyscan -t ed25519 203.0.113.5 | cut -d' ' -f2-)\"",
  },
  {
    base: existingRaw,
    set: { "host.via": "instance-connect" },
    error:
      "apphost:host.via: instance-connect needs an EC2 instance (apphost:host.kind is existing); use {jump: {...}} to reach a server behind a bastion, or direct",
  },
  // --- the stack name names the Linux user (components/paths.ts)
  {
    set: {},
    ctx: { ...baseCtx("Prod_EU") },
    error:
      '(stack name): "Prod_EU" must be lowercase letters, digits and dashes, starting with a letter, because it names the Linux user and paths on the host; ' +
      "create the stack under such a name (pulumi stack rename)",
  },
];

describe("stack config validation (one bad key per row)", () => {
  it("accepts the base configs", () => {
    assert.doesNotThrow(() => parseStackConfig(baseRaw(), baseCtx()));
    assert.doesNotThrow(() => parseStackConfig(existingRaw(), baseCtx()));
    // With database.kind none the app brings its own DATABASE_URL and pool.
    const own = withKeys(baseRaw(), {
      "database.kind": "none",
      "app.env.DATABASE_URL": "postgresql://u:p@db/x",
      "app.env.DB_POOL_SIZE": "3",
    });
    assert.doesNotThrow(() => parseStackConfig(own, baseCtx()));
  });

  it("apphost:app.sharedUrls: each prefix and the shared directory it serves, a trailing slash dropped", () => {
    const config = parseStackConfig(
      withKeys(baseRaw(), {
        "app.sharedDirs": ["media", "shop/files"],
        "app.sharedUrls": { "/media/": "media/", "/f/": "shop/files" },
      }),
      baseCtx(),
    );
    assert.deepEqual(config.app.sharedUrls, { "/media/": "media", "/f/": "shop/files" });
    assert.deepEqual(parseStackConfig(baseRaw(), baseCtx()).app.sharedUrls, {});
  });

  for (const row of ROWS) {
    const stack = row.ctx?.stack ?? "staging";
    const lines = [row.error].flat();
    it(`${lines[0].slice(0, lines[0].indexOf(":", "apphost:".length))} <- ${JSON.stringify(row.set).slice(0, 90)}`, () => {
      const error = errorOf(withKeys((row.base ?? baseRaw)(), row.set), row.ctx ?? baseCtx());
      assert.equal(
        error.message,
        [header(lines.length, stack), ...lines.map((l, i) => `  ${i + 1}. ${l}`)].join("\n"),
      );
    });
  }

  it("lists every offender in one error, in section order", () => {
    const error = errorOf(
      withKeys(baseRaw(), {
        "tls.mode": "certbot",
        "host.sshAllowCidrs": ["0.0.0.0/0", "198.51.100.0/24"],
        "dns.zone": "Example.com",
        "app.processes.worker.kind": "web",
        "releases.keep": "many",
        "proxy.kinds": "nginx",
      }),
      { ...baseCtx(), secrets: {} },
    );
    assert.deepEqual(
      error.issues.map((i) => i.path),
      [
        "apphost:host.sshAllowCidrs[0]",
        "apphost:dns.zone",
        "apphost:proxy.kinds",
        "apphost:app.processes",
        "apphost:releases.keep",
        "apphost:sshPrivateKey",
        "apphost:tls.mode",
      ],
    );
    const lines = error.message.split("\n");
    assert.equal(lines[0], header(7));
    assert.equal(lines.length, 8);
    lines
      .slice(1)
      .forEach((line, i) => assert.ok(line.startsWith(`  ${i + 1}. ${error.issues[i].path}: `), line));
    assert.equal(lines[3], '  3. apphost:proxy.kinds: unknown key; did you mean "kind"? Rename or remove it');
  });

  it("lists every offender of apphost:backups in one error, with the host and database it depends on", () => {
    const error = errorOf(
      withKeys(existingRaw(), {
        "backups.s3": true,
        "backups.s3ExpireDays": "forever",
        "backups.keep": 0,
        "database.kind": "none",
      }),
      baseCtx(),
    );
    assert.deepEqual(
      error.issues.map((i) => i.path),
      ["apphost:backups.keep", "apphost:backups.s3ExpireDays", "apphost:backups.s3", "apphost:backups.s3"],
    );
    const lines = error.message.split("\n");
    assert.equal(lines[0], header(4));
    assert.equal(
      lines[2],
      '  2. apphost:backups.s3ExpireDays: expected an integer from 1 to 3650, got "forever"; ' +
        "set it with: pulumi config set --path 'apphost:backups.s3ExpireDays' 30",
    );
    assert.match(lines[3], /^ {2}3\. apphost:backups\.s3: needs apphost:host\.kind ec2 \(got "existing"\)/);
    assert.match(
      lines[4],
      /^ {2}4\. apphost:backups\.s3: there is nothing to back up when apphost:database\.kind is none/,
    );
  });

  it("never quotes a secret: only facts about secrets reach the parser", () => {
    const error = errorOf(withKeys(baseRaw(), { "host.sshPublicKey": OTHER_KEY.publicKey }), baseCtx());
    assert.ok(!error.message.includes("PRIVATE KEY"));
    assert.ok(!error.message.includes(DEPLOY_KEY.privateKey.split("\n")[1]));
  });

  it("apphost:host.via.jump: every offender at once; the jump user defaults to the host's", () => {
    const error = errorOf(
      withKeys(existingRaw(), {
        "host.via": {
          jump: { address: "not an address!", port: 70000, hostKey: "ssh-ed25519 nope", colour: "red" },
          x: 1,
        },
      }),
      baseCtx(),
    );
    assert.deepEqual(
      error.issues.map((i) => i.path),
      [
        "apphost:host.via.x",
        "apphost:host.via.jump.address",
        "apphost:host.via.jump.port",
        "apphost:host.via.jump.hostKey",
        "apphost:host.via.jump.colour",
      ],
    );
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const parsed = parseStackConfig(
      withKeys(existingRaw(), { "host.via": { jump: { address: "bastion.example.net", hostKey: key } } }),
      baseCtx(),
    );
    assert.deepEqual(parsed.host.via, {
      kind: "jump",
      address: "bastion.example.net",
      port: 22,
      user: "deploy",
      hostKey: key,
    });
    assert.deepEqual(parseStackConfig(existingRaw(), baseCtx()).host.via, { kind: "direct" });
    assert.deepEqual(
      parseStackConfig(withKeys(existingRaw(), { "host.via": "direct" }), baseCtx()).host.via,
      { kind: "direct" },
    );
  });

  it("apphost:host.via instance-connect (ec2): sshAllowCidrs may be empty or absent", () => {
    for (const cidrs of [[], undefined]) {
      const parsed = parseStackConfig(
        withKeys(baseRaw(), { "host.via": "instance-connect", "host.sshAllowCidrs": cidrs }),
        baseCtx(),
      );
      assert.equal(parsed.host.kind, "ec2");
      assert.deepEqual(parsed.host.via, { kind: "instance-connect" });
      assert.deepEqual(parsed.host.kind === "ec2" && parsed.host.sshAllowCidrs, []);
    }
    // Without it, an empty list is still refused.
    assert.match(
      errorOf(withKeys(baseRaw(), { "host.sshAllowCidrs": [] }), baseCtx()).message,
      /apphost:host.sshAllowCidrs: expected at least one IPv4 CIDR/,
    );
  });

  it("apphost:jumpPrivateKey: only with a jump host, and a usable key", () => {
    const facts = (info: PrivateKeyInfo) => ({
      ...baseCtx(),
      secrets: { ...baseCtx().secrets, jumpPrivateKeyInfo: info },
    });
    const notHere = errorOf(existingRaw(), facts({ format: "openssh", encrypted: false }));
    assert.equal(
      notHere.message,
      `${header(1)}\n  1. apphost:jumpPrivateKey: only used when apphost:host.via is a jump host ({jump: {...}}); remove it`,
    );
    const jumpRaw = withKeys(existingRaw(), {
      "host.via": {
        jump: {
          address: "203.0.113.5",
          hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        },
      },
    });
    assert.doesNotThrow(() => parseStackConfig(jumpRaw, facts({ format: "openssh", encrypted: false })));
    assert.match(
      errorOf(jumpRaw, facts({ format: "openssh", encrypted: true })).message,
      /apphost:jumpPrivateKey: the key is protected by a passphrase/,
    );
    assert.match(
      errorOf(jumpRaw, facts({ format: "unknown", encrypted: false })).message,
      /apphost:jumpPrivateKey: expected an OpenSSH or PEM private key/,
    );
  });

  it("accepts SSH from anywhere only when asked for explicitly", () => {
    const config = parseStackConfig(
      withKeys(baseRaw(), { "host.sshAllowCidrs": ["0.0.0.0/0"], "host.allowSshFromAnywhere": true }),
      baseCtx(),
    );
    assert.equal(config.host.kind === "ec2" && config.host.allowSshFromAnywhere, true);
  });

  it("one schema serves parse after parse: each reads its own input, and a changed context builds another", () => {
    const ctx = baseCtx();
    const anywhere = (allow: boolean) =>
      withKeys(baseRaw(), { "host.sshAllowCidrs": ["0.0.0.0/0"], "host.allowSshFromAnywhere": allow });
    // The same context, so the same schema: the rule reads this input's allowSshFromAnywhere, not the first's.
    assert.equal(parseStackConfig(anywhere(true), ctx).host.kind, "ec2");
    assert.match(configProblems(anywhere(false), ctx).join("\n"), /opens SSH to the whole internet/);
    assert.equal(parseStackConfig(anywhere(true), ctx).host.kind, "ec2");
    // A repeated address names the first index each time: the items are counted again in each parse.
    const twice = withKey(existingRaw(), "host.addresses", ["203.0.113.10", "203.0.113.11", "203.0.113.10"]);
    delete (twice.host as Record<string, unknown>).address;
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(
        configProblems(twice, ctx).filter((p) => p.includes("already")),
        [
          'apphost:host.addresses[2]: "203.0.113.10" is already apphost:host.addresses[0]; list each app host once',
        ],
      );
    }
    // The context changed in place after a parse: the next parse names the new stack, not the one cached.
    const bad = withKey(baseRaw(), "app.name", "a-very-long-application-name-x");
    ctx.stack = "production-eu";
    const after = configProblems(bad, ctx).join("\n");
    assert.match(after, /"a-very-long-application-name-x-production-eu" is \d+ characters/);
    // Defaults that depend on another section's value at build time (hsts on TLS) follow each input.
    const off = withKeys(existingRaw(), { "tls.mode": "off" });
    delete (off.tls as Record<string, unknown>).email;
    assert.equal(parseStackConfig(existingRaw(), baseCtx()).proxy.hsts, true);
    assert.equal(parseStackConfig(off, baseCtx()).proxy.hsts, false);
    assert.equal(parseStackConfig(existingRaw(), baseCtx()).proxy.hsts, true);
  });
});

describe("stack config defaults", () => {
  it("fills every default of a minimal ec2 staging stack", () => {
    const expected: StackConfig = {
      project: "apphost",
      stack: "staging",
      host: {
        kind: "ec2",
        instanceType: "t4g.small",
        arch: "arm64",
        os: "debian-12",
        user: "admin",
        port: 22,
        packages: [],
        via: { kind: "direct" },
        swapMb: 0,
        rootVolumeGb: 20,
        sshPublicKey: DEPLOY_KEY.publicKey,
        sshAllowCidrs: ["203.0.113.7/32"],
        allowSshFromAnywhere: false,
        elasticIp: false,
        subnetId: undefined,
        count: 1,
      },
      dns: {
        provider: "cloudflare",
        zone: "example.com",
        zoneId: undefined,
        hostnames: [{ name: "staging.example.com", proxied: true }],
        ipv6: false,
      },
      tls: {
        mode: "cloudflare-origin",
        email: undefined,
        originValidityDays: 365,
        renewBeforeDays: 30,
        acmeDirectory: undefined,
        acmeCaRoot: undefined,
      },
      proxy: {
        kind: "caddy",
        maxBodySize: "25m",
        hsts: true,
        compression: true,
        httpPort: 80,
        httpsPort: 443,
      },
      app: {
        name: "apphost",
        source: "app",
        excludes: [
          ".git",
          "venv",
          ".venv",
          "node_modules",
          "__pycache__",
          "*.pyc",
          ".env",
          "/data/",
          "/logs/",
        ],
        runtime: "python",
        requirements: undefined,
        python: "system",
        healthPath: "/healthz",
        basePort: 8000,
        env: {},
        staticDir: undefined,
        staticPrefix: "/static/",
        sharedDirs: [],
        dotenv: [],
        sharedUrls: {},
        build: undefined,
        dependencyGroups: undefined,
        extraRequirements: undefined,
        processes: [
          { name: "web", command: "gunicorn app:app --bind 127.0.0.1:$PORT", kind: "web" },
          { name: "worker", command: "python worker.py", kind: "worker" },
        ],
        schedules: [],
        maintenance: false,
        maintenancePage: undefined,
      },
      database: {
        kind: "sqlite",
        sqliteFile: "app.db",
        urlScheme: "sqlite",
        postgresName: "apphost_staging",
        migrate: "",
        revision: "",
        pool: { size: 5, maxOverflow: 10, timeoutSeconds: 30, recycleSeconds: 1800 },
      },
      backups: { schedule: "daily", keep: 7, s3: false, s3ExpireDays: 30 },
      releases: {
        keep: 5,
        rollbackTo: undefined,
        healthTimeoutSeconds: 60,
        drainSeconds: 5,
        lockTtlMinutes: 30,
        minFreeMb: 500,
        batchSize: 1,
      },
      alerts: { enabled: false },
    };
    assert.deepEqual(parseStackConfig(baseRaw(), baseCtx()), expected);
  });

  it("gives stacks named prod* an Elastic IP, 30 backups and 90 days in the backup bucket", () => {
    const config = parseStackConfig(baseRaw(), baseCtx("prod"));
    assert.equal(config.host.kind === "ec2" && config.host.elasticIp, true);
    assert.equal(config.backups.keep, 30);
    assert.equal(config.backups.s3, false);
    assert.equal(config.backups.s3ExpireDays, 90);
    const s3 = parseStackConfig(withKeys(baseRaw(), { "backups.s3": "true" }), baseCtx("prod"));
    assert.deepEqual(s3.backups, { schedule: "daily", keep: 30, s3: true, s3ExpireDays: 90 });
    assert.equal(config.database.postgresName, "apphost_prod");
  });

  it("apphost:database.urlScheme: postgresql or sqlite by kind, a driver when set, Heroku's postgres, none without a database", () => {
    const parse = (keys: Record<string, unknown>) =>
      parseStackConfig(withKeys(baseRaw(), keys), baseCtx()).database;
    assert.equal(parse({}).urlScheme, "sqlite");
    assert.equal(parse({ "database.urlScheme": "sqlite+aiosqlite" }).urlScheme, "sqlite+aiosqlite");
    assert.equal(parse({ "database.kind": "postgres" }).urlScheme, "postgresql");
    assert.equal(
      parse({ "database.kind": "postgres", "database.urlScheme": "postgresql+asyncpg" }).urlScheme,
      "postgresql+asyncpg",
    );
    assert.equal(
      parse({ "database.kind": "postgres", "database.urlScheme": "postgres" }).urlScheme,
      "postgres",
    );
    assert.equal(parse({ "database.kind": "none" }).urlScheme, undefined);
  });

  it("an RDS Postgres as new as the host's pg_dump: 17 on debian-13, 16 on ubuntu-24.04", () => {
    const d13 = parseStackConfig(
      withKeys(baseRaw(), {
        "host.os": "debian-13",
        "database.kind": "rds",
        "database.rds": { engineVersion: "17.2" },
      }),
      baseCtx(),
    );
    assert.equal(d13.database.rds?.engineVersion, "17.2");
    assert.equal(d13.host.kind === "ec2" && d13.host.user, "admin");
    const noble = parseStackConfig(
      withKeys(baseRaw(), {
        "host.os": "ubuntu-24.04",
        "host.instanceType": "t3.small",
        "database.kind": "rds",
        "database.rds": { engineVersion: "16" },
      }),
      baseCtx(),
    );
    assert.equal(noble.database.rds?.engineVersion, "16");
  });

  it("derives the login user, swap and requirements from other keys", () => {
    const ubuntu = parseStackConfig(
      withKeys(baseRaw(), { "host.os": "ubuntu-24.04", "host.instanceType": "t3.micro" }),
      baseCtx(),
    );
    assert.equal(ubuntu.host.user, "ubuntu");
    assert.equal(ubuntu.host.kind === "ec2" && ubuntu.host.arch, "x86_64");
    assert.equal(ubuntu.host.swapMb, 1024, "1 GiB instances get swap");
    const node = parseStackConfig(withKeys(baseRaw(), { "app.runtime": "node" }), baseCtx());
    assert.equal(node.app.requirements, "package-lock.json");
    const existing = parseStackConfig(existingRaw(), baseCtx());
    assert.equal(existing.host.swapMb, 0, "an existing server is not resized");
    assert.equal(existing.proxy.hsts, true);
    assert.equal(parseStackConfig(withKeys(baseRaw(), { "tls.mode": "off" }), baseCtx()).proxy.hsts, false);
  });

  it("takes the app from a directory in the project, beside it (its own repository) or anywhere", () => {
    for (const source of ["app", "../shop", "/home/ana/src/shop"]) {
      assert.equal(
        parseStackConfig(withKeys(baseRaw(), { "app.source": source }), baseCtx()).app.source,
        source,
      );
    }
  });

  it("webPortProblem: a web command that binds a port of its own, as the common servers spell it; $PORT passes", () => {
    const fixed: Array<[string, string]> = [
      ["uvicorn app.main:app --host 0.0.0.0 --port 8000", "--port 8000"],
      ["fastapi run --port=8000 app/main.py", "--port=8000"],
      ["gunicorn -b :8000 app:app", "-b :8000"],
      ["gunicorn --bind=127.0.0.1:8000 app:app", "--bind=127.0.0.1:8000"],
      ["hypercorn --bind [::]:8000 app:app", "--bind [::]:8000"],
      ["flask run -p 5000", "-p 5000"],
      ["next start -p3000", "-p3000"],
      ["python manage.py runserver 0.0.0.0:8000", "runserver 0.0.0.0:8000"],
      ["python manage.py runserver 8000", "runserver 8000"],
      ["waitress-serve --listen=*:8000 app:app", "--listen=*:8000"],
      ["uwsgi --http :8000 --module app:app", "--http :8000"],
    ];
    for (const [command, written] of fixed) {
      assert.match(
        webPortProblem(command) ?? "",
        new RegExp(`^binds port \\d+ itself \\("${written.replace(/[[\]*.]/g, "\\$&")}"\\)`),
        command,
      );
    }
    for (const command of [
      "gunicorn app:app --bind 127.0.0.1:$PORT",
      "uvicorn app.main:app --port $PORT",
      "gunicorn --bind=0.0.0.0:${PORT:-8000} app:app",
      "gunicorn --bind unix:/run/app.sock --bind 127.0.0.1:$PORT app:app",
      "uwsgi --http :$PORT -p 4 --module app:app",
      "fastapi run --workers 4 app/main.py --port $PORT",
      // fastapi-cli reads $PORT (0.0.34 listened on PORT=8765, and the template's lock on the sandbox's 8001).
      "fastapi run --workers 4 app/main.py",
      "python -m uvicorn app.main:app --port=$PORT",
      "gunicorn -k uvicorn.workers.UvicornWorker app.main:app",
      "flask run -p $PORT",
      "hypercorn -b 127.0.0.1:$PORT app:app",
      "daphne -p $PORT proj.asgi:application",
      "waitress-serve --listen=127.0.0.1:$PORT app:app",
      "python manage.py runserver 127.0.0.1:$PORT",
      "python manage.py runserver ${PORT}",
      "npm start",
      "python -m http.server $PORT",
    ]) {
      assert.equal(webPortProblem(command), undefined, command);
    }
    // Servers that listen on a default port of their own when told none.
    const defaults: Array<[string, string, number, string]> = [
      ["uvicorn app.main:app --host 0.0.0.0", "uvicorn", 8000, "--port $PORT"],
      [".venv/bin/uvicorn app.main:app", "uvicorn", 8000, "--port $PORT"],
      ["flask --app shop run", "flask run", 5000, "--port $PORT"],
      ["hypercorn app:app", "hypercorn", 8000, "--bind 127.0.0.1:$PORT"],
      ["daphne proj.asgi:application", "daphne", 8000, "--port $PORT"],
      ["waitress-serve app:app", "waitress-serve", 8080, "--port=$PORT"],
      ["python manage.py runserver", "manage.py runserver", 8000, "runserver 127.0.0.1:$PORT"],
    ];
    for (const [command, name, port, write] of defaults) {
      assert.equal(
        webPortProblem(command),
        `listens on ${name}'s default port, ${port}, whatever $PORT says; each release starts its web instance on the other of two ports ` +
          "(apphost:app.basePort and the one after it) and passes that port in $PORT, so a fixed port collides with the instance still serving " +
          `and the release fails its health gate: add "${write}"`,
        command,
      );
    }
    // A Unix socket or a descriptor alone: the proxy and the gate reach the instance over TCP.
    for (const [command, written] of [
      ["gunicorn --bind unix:/run/app.sock app:app", "--bind unix:/run/app.sock"],
      ["uvicorn app.main:app --uds /run/app.sock", "--uds /run/app.sock"],
      ["uvicorn app.main:app --fd 3", "--fd 3"],
      ["hypercorn -b unix:/run/app.sock app:app", "-b unix:/run/app.sock"],
      ["waitress-serve --unix-socket=/run/app.sock app:app", "--unix-socket=/run/app.sock"],
      ["daphne --unix-socket /run/app.sock proj.asgi:application", "--unix-socket /run/app.sock"],
    ]) {
      assert.equal(
        webPortProblem(command),
        `listens on a Unix socket or an inherited descriptor only ("${written}"); apphost's proxy and health gate ` +
          "reach the web instance over TCP on 127.0.0.1:$PORT, so no release would pass its health gate: bind 127.0.0.1:$PORT instead",
        command,
      );
    }
    // A worker may listen where it likes (a metrics port, say).
    const config = parseStackConfig(
      withKeys(existingRaw(), {
        "app.processes": {
          web: "gunicorn app:app",
          metrics: { command: "python metrics.py --port 9100", kind: "worker" },
        },
      }),
      baseCtx(),
    );
    assert.equal(
      config.app.processes.find((p) => p.name === "metrics")?.command,
      "python metrics.py --port 9100",
    );
  });

  it("accepts the shorthands: bare hostnames, Procfile-style processes, scalars as strings", () => {
    const config = parseStackConfig(
      withKeys(existingRaw(), {
        "dns.hostnames": ["shop.example.net", "www.shop.example.net"],
        "app.processes": {
          web: "gunicorn app:app",
          mailer: "python mailer.py",
          beat: { command: "python beat.py", hosts: "first" },
          queue: { command: "python queue.py", hosts: "all" },
        },
        "app.env": { WORKERS: 4, DEBUG: false, NAME: "shop" },
        "host.port": "2222",
        "proxy.compression": "false",
      }),
      baseCtx(),
    );
    assert.deepEqual(config.dns.hostnames, [
      { name: "shop.example.net", proxied: false },
      { name: "www.shop.example.net", proxied: false },
    ]);
    assert.deepEqual(config.app.processes, [
      { name: "web", command: "gunicorn app:app", kind: "web" },
      { name: "mailer", command: "python mailer.py", kind: "worker" },
      { name: "beat", command: "python beat.py", kind: "worker", hosts: "first" },
      { name: "queue", command: "python queue.py", kind: "worker" },
    ]);
    assert.deepEqual(config.app.env, { WORKERS: "4", DEBUG: "false", NAME: "shop" });
    assert.equal(config.host.port, 2222);
    assert.equal(config.proxy.compression, false);
  });

  it("renews short certificates a third of their validity early", () => {
    const config = parseStackConfig(withKeys(baseRaw(), { "tls.originValidityDays": 7 }), baseCtx());
    assert.equal(config.tls.renewBeforeDays, 2);
  });
});

describe("config helpers", () => {
  it("derives the architecture from the instance family", () => {
    const table: Array<[string, string | undefined]> = [
      ["t4g.small", "arm64"],
      ["t4g.medium", "arm64"],
      ["m7g.large", "arm64"],
      ["c7gn.xlarge", "arm64"],
      ["r8g.2xlarge", "arm64"],
      ["x2gd.medium", "arm64"],
      ["im4gn.large", "arm64"],
      ["is4gen.medium", "arm64"],
      ["a1.medium", "arm64"],
      ["t3.small", "x86_64"],
      ["t3a.micro", "x86_64"],
      ["m7i-flex.large", "x86_64"],
      ["g5.xlarge", "x86_64"],
      ["g4dn.xlarge", "x86_64"],
      ["c5.metal", "x86_64"],
      ["t4g", undefined],
      ["T3.small", undefined],
    ];
    for (const [type, arch] of table) assert.equal(archOf(type), arch, type);
  });

  it("accepts DNS names built from valid labels and refuses uppercase", () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
    const tld = fc.stringMatching(/^[a-z]{2,10}$/);
    fc.assert(
      fc.property(fc.array(label, { minLength: 1, maxLength: 4 }), tld, (labels, top) => {
        const name = [...labels, top].join(".");
        assert.equal(isDnsName(name), name.length <= 253);
        if (/[a-z]/.test(name)) assert.equal(isDnsName(name.toUpperCase()), false);
      }),
    );
    for (const bad of [
      "example",
      "-a.example.com",
      "a-.example.com",
      "a..example.com",
      "10.0.0.1",
      "*.example.com",
    ]) {
      assert.equal(isDnsName(bad), false, bad);
    }
  });

  it("accepts exactly the canonical IPv4 CIDRs", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }), (ip, bits) => {
        const size = 2 ** (32 - bits);
        const network = ip - (ip % size);
        const dotted = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
        assert.equal(ipv4CidrProblem(`${dotted(network)}/${bits}`), undefined);
        if (ip !== network) {
          assert.equal(
            ipv4CidrProblem(`${dotted(ip)}/${bits}`),
            `host bits are set; the network is ${dotted(network)}/${bits}`,
          );
        }
      }),
    );
    assert.equal(ipv4CidrProblem("203.0.113.0/33"), "not an IPv4 CIDR");
    assert.equal(ipv4CidrProblem("256.0.0.0/8"), "not an IPv4 CIDR");
  });

  it("renews an origin certificate at least renewBeforeDays before it expires", () => {
    const day = 24 * 60 * 60 * 1000;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4_000_000_000_000 }),
        fc.constantFrom(7, 30, 90, 365, 730, 1095, 5475),
        fc.integer({ min: 1, max: 5474 }),
        (issuedAt, validity, renewBefore) => {
          fc.pre(renewBefore < validity);
          const window = renewalWindow(new Date(issuedAt), validity, renewBefore);
          // The first instant of the next window, when `pulumi up` replaces the certificate:
          const nextWindowStart = (window + 1) * (validity - renewBefore) * day;
          assert.equal(renewalWindow(new Date(nextWindowStart), validity, renewBefore), window + 1);
          assert.equal(renewalWindow(new Date(nextWindowStart - 1), validity, renewBefore), window);
          const expiresAt = issuedAt + validity * day;
          assert.ok(expiresAt - nextWindowStart >= renewBefore * day);
        },
      ),
    );
  });

  it("reads OpenSSH private keys: format, passphrase, public half", () => {
    assert.deepEqual(inspectPrivateKey(DEPLOY_KEY.privateKey), {
      format: "openssh",
      encrypted: false,
      publicKey: DEPLOY_KEY.publicKey.replace(/ apphost-test$/, ""),
    });
    const locked = inspectPrivateKey(lockedOpenSshKey());
    assert.equal(locked.format, "openssh");
    assert.equal(locked.encrypted, true);
    assert.deepEqual(
      inspectPrivateKey("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"),
      {
        format: "unknown",
        encrypted: false,
      },
    );
  });

  it("derives the public half of PEM keys the way ssh-keygen -y does", function () {
    const keys = [
      generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }),
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "sec1", format: "pem" }),
    ].map(String);
    // An EC key: encrypted PKCS#8 looks the same whatever the algorithm, and RSA's generation costs a tenth of a second.
    const encrypted = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
      type: "pkcs8",
      format: "pem",
      cipher: "aes-256-cbc",
      passphrase: "secret",
    });
    assert.deepEqual(inspectPrivateKey(String(encrypted)), { format: "pem", encrypted: true });

    const dir = mkdtempSync(join(tmpdir(), "apphost-key-"));
    try {
      for (const pem of [...keys, DEPLOY_KEY.privateKey]) {
        const file = join(dir, "key");
        writeFileSync(file, pem, { mode: 0o600 });
        const expected = execFileSync("ssh-keygen", ["-y", "-f", file])
          .toString()
          .trim()
          .split(" ")
          .slice(0, 2)
          .join(" ");
        assert.equal(inspectPrivateKey(pem).publicKey, expected);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("loadStackConfig()", () => {
  const saved = pulumi.runtime.allConfig();
  afterEach(() => pulumi.runtime.setAllConfig(saved));

  function setStackConfig(values: Record<string, unknown>, secretKeys: string[]): void {
    pulumi.runtime.setAllConfig(
      Object.fromEntries(
        Object.entries(values).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
      ),
      secretKeys,
    );
  }

  it("reads each apphost:<section>, parses it, and keeps the secrets secret", async () => {
    const raw = baseRaw();
    setStackConfig(
      {
        ...Object.fromEntries(Object.entries(raw).map(([k, v]) => [`apphost:${k}`, v])),
        "apphost:sshPrivateKey": DEPLOY_KEY.privateKey,
        "apphost:secretEnv": { SECRET_KEY: "s3cret", WORKERS: 4 },
        "aws:region": "eu-central-1",
      },
      ["apphost:sshPrivateKey", "apphost:secretEnv"],
    );
    const loaded = loadStackConfig();
    assert.deepEqual(loaded.config, parseStackConfig(raw, baseCtx()));
    assert.equal(await pulumi.isSecret(loaded.sshPrivateKey), true);
    assert.equal(await valueOf(loaded.sshPrivateKey), DEPLOY_KEY.privateKey);
    assert.equal(await pulumi.isSecret(loaded.secretEnv), true);
    assert.deepEqual(await valueOf(loaded.secretEnv), { SECRET_KEY: "s3cret", WORKERS: "4" });
  });

  it("reports misspelled sections and non-object values with everything else", () => {
    setStackConfig(
      {
        ...Object.fromEntries(Object.entries(baseRaw()).map(([k, v]) => [`apphost:${k}`, v])),
        "apphost:proxy": "caddy",
        "apphost:relases": { keep: 3 },
      },
      [],
    );
    assert.throws(
      () => loadStackConfig(),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.issues.map((i) => i.path).join(" ") === "apphost:relases apphost:proxy apphost:sshPrivateKey",
    );
  });
});

describe("stack files and docs", () => {
  // js-yaml comes with mocha; it is only needed here, to read the stack files the CLI would read.
  const yaml = require("js-yaml") as { load(text: string): unknown };
  const read = (file: string) => yaml.load(readFileSync(join(ROOT, file), "utf8")) as Record<string, unknown>;

  function parseStackFile(stack: string): StackConfig {
    const config = read(`Pulumi.${stack}.yaml`).config as Record<string, unknown>;
    const raw: Record<string, unknown> = {};
    const secrets: ParseContext["secrets"] = {};
    for (const [key, value] of Object.entries(config)) {
      const [namespace, name] = key.split(":");
      if (namespace !== "apphost") continue;
      if (name === "sshPrivateKey") {
        // An encrypted value (`secure: v1:...`), as `pulumi config set --secret` writes it.
        assert.match((value as { secure: string }).secure, /^v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
        secrets.sshPrivateKey = true;
      } else if (name === "sshPrivateKeyFile") {
        // The local stack names a key file instead; index.ts reads it at run time.
        secrets.sshPrivateKey = true;
      } else if (name === "secretEnv") {
        const env = value as Record<string, { secure: string }>;
        for (const v of Object.values(env)) assert.match(v.secure, /^v1:/);
        secrets.secretEnvTypes = Object.fromEntries(Object.keys(env).map((k) => [k, "string"]));
      } else {
        raw[name] = value;
      }
    }
    return parseStackConfig(raw, { project: "apphost", stack, secrets });
  }

  it("Pulumi.staging.yaml and Pulumi.prod.yaml are valid and differ where real stacks differ", () => {
    const staging = parseStackFile("staging");
    const prod = parseStackFile("prod");
    assert.equal(staging.host.kind === "ec2" && staging.host.instanceType, "t4g.small");
    assert.equal(prod.host.kind === "ec2" && prod.host.instanceType, "t4g.medium");
    assert.deepEqual(
      staging.dns.hostnames.map((h) => h.name),
      ["staging.example.com"],
    );
    assert.deepEqual(
      prod.dns.hostnames.map((h) => h.name),
      ["example.com", "www.example.com"],
    );
    assert.equal(staging.host.kind === "ec2" && staging.host.elasticIp, false);
    assert.equal(prod.host.kind === "ec2" && prod.host.elasticIp, true);
    assert.equal(staging.backups.keep, 7);
    assert.equal(prod.backups.keep, 30);
    assert.equal(staging.tls.mode, "cloudflare-origin");
    assert.equal(prod.tls.mode, "caddy-acme");
  });

  it("Pulumi.local.yaml (the sandbox stack) is valid", () => {
    const local = parseStackFile("local");
    assert.equal(local.host.kind, "existing");
    assert.equal(local.dns.provider, "none");
    assert.equal(local.tls.mode, "internal");
  });

  it("Pulumi.yaml documents every key, and types none of the object sections", () => {
    const project = read("Pulumi.yaml");
    assert.equal(project.name, "apphost");
    const config = project.config as Record<
      string,
      { type?: string; description?: string; secret?: boolean; default?: unknown }
    >;
    assert.deepEqual(
      Object.keys(config).sort(),
      [
        ...SECTIONS,
        "sshPrivateKey",
        "sshPrivateKeyFile",
        "secretEnv",
        "jumpPrivateKey",
        "alerts",
        "databaseUrl",
      ].sort(),
    );
    for (const section of SECTIONS) {
      // Project config types are string/integer/boolean/array only: an object section must stay untyped.
      assert.equal(config[section].type, undefined, section);
      for (const key of KNOWN_KEYS[section]) {
        assert.match(config[section].description ?? "", new RegExp(`\\b${key}\\b`), `${section}.${key}`);
      }
    }
    for (const key of [...POOL_KEYS, ...RDS_KEYS]) {
      assert.match(config.database.description ?? "", new RegExp(`\\b${key}\\b`), `database.pool.${key}`);
    }
    for (const key of JUMP_KEYS) {
      assert.match(config.host.description ?? "", new RegExp(`\\bjump\\.${key}\\b`), `host.via.jump.${key}`);
    }
    // Optional (the local stack uses sshPrivateKeyFile). Declaring it `secret: true` makes
    // Pulumi 3.248 demand an encrypted value even when the default applies, so it is untyped;
    // the program reads it with requireSecret either way.
    assert.deepEqual(
      {
        type: config.sshPrivateKey.type,
        secret: config.sshPrivateKey.secret,
        default: config.sshPrivateKey.default,
      },
      { type: undefined, secret: undefined, default: "" },
    );
  });
});
