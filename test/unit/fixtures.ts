/**
 * Known-good raw stack config and a deploy key made for the tests, shared by
 * config.test.ts and cloud.test.ts. Keys are built from Node's generator (or
 * a fixed test seed); no key file is checked in.
 */
import { execFileSync } from "child_process";
import { createPrivateKey } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as sshpk from "sshpk";
import * as assert from "assert/strict";
import type { z } from "zod";
import {
  ConfigError,
  inspectPrivateKey,
  parseStackConfig,
  type ParseContext,
} from "../../components/config/validate";
import { sections, SECTIONS, type Section } from "../../components/config/schema";
import type { StackConfig } from "../../components/config/types";

/** DER header of a PKCS#8 Ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = "302e020100300506032b657004220420";

/**
 * An Ed25519 key in OpenSSH's own container (what `ssh-keygen -t ed25519`
 * writes) and its public line. A fixed seed gives a fixed key, so messages
 * that quote the public half can be asserted exactly.
 */
export function openSshKeyPair(comment: string, seedHex: string): { privateKey: string; publicKey: string } {
  const pkcs8 = createPrivateKey({
    key: Buffer.from(PKCS8_ED25519_PREFIX + seedHex, "hex"),
    format: "der",
    type: "pkcs8",
  }).export({ type: "pkcs8", format: "pem" });
  const key = sshpk.parsePrivateKey(pkcs8, "pkcs8");
  key.comment = comment;
  return { privateKey: key.toString("ssh"), publicKey: key.toPublic().toString("ssh") };
}

/** An ed25519 key file protected by a passphrase, as `ssh-keygen -N <passphrase>` writes it. */
export function lockedOpenSshKey(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-locked-key-"));
  try {
    const file = path.join(dir, "key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-C", "locked", "-f", file]);
    return fs.readFileSync(file, "utf8");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The deploy key of the base config: a fixed test seed, never used outside tests. */
export const DEPLOY_KEY = openSshKeyPair("apphost-test", "00".repeat(31) + "01");

/** A staging stack on EC2 behind Cloudflare with an Origin CA certificate. */
export function baseRaw(): Record<string, unknown> {
  return {
    host: {
      kind: "ec2",
      instanceType: "t4g.small",
      sshPublicKey: DEPLOY_KEY.publicKey,
      sshAllowCidrs: ["203.0.113.7/32"],
    },
    dns: {
      provider: "cloudflare",
      zone: "example.com",
      hostnames: [{ name: "staging.example.com", proxied: true }],
    },
    tls: { mode: "cloudflare-origin" },
    app: {
      source: "app",
      runtime: "python",
      processes: {
        web: { command: "gunicorn app:app --bind 127.0.0.1:$PORT", kind: "web" },
        worker: { command: "python worker.py", kind: "worker" },
      },
    },
  };
}

/** An existing server with DNS managed elsewhere and Caddy getting certificates. */
export function existingRaw(): Record<string, unknown> {
  return {
    ...baseRaw(),
    host: { kind: "existing", address: "203.0.113.10", user: "deploy" },
    dns: { hostnames: ["shop.example.net"] },
    tls: { mode: "caddy-acme", email: "ops@example.net" },
  };
}

export function baseCtx(stack = "staging"): ParseContext {
  return {
    project: "apphost",
    stack,
    secrets: { sshPrivateKey: true, sshPrivateKeyInfo: inspectPrivateKey(DEPLOY_KEY.privateKey) },
  };
}

/** Every problem the parser reports for `raw`, as `<key>: <message>`; fails when it accepts the config. */
export function configProblems(raw: Record<string, unknown>, ctx: ParseContext = baseCtx()): string[] {
  try {
    parseStackConfig(raw, ctx);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.issues.map((i) => `${i.path}: ${i.message}`);
  }
  return assert.fail("expected the config to be rejected");
}

/**
 * A copy of `raw` with one key set (or deleted, for `undefined`). Keys use the
 * config's own path syntax: `dns.hostnames[0].name`, `app.env["MY-VAR"]`.
 */
export function withKey(raw: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(raw);
  const parts = [...path.matchAll(/([^.[\]"]+)|\[(\d+)\]|\["([^"]+)"\]/g)].map((m) =>
    m[2] !== undefined ? Number(m[2]) : (m[1] ?? m[3]),
  );
  let node: Record<string | number, unknown> = copy;
  for (const part of parts.slice(0, -1)) {
    if (node[part] === undefined || node[part] === null) node[part] = typeof part === "number" ? [] : {};
    node = node[part] as Record<string | number, unknown>;
  }
  const last = parts[parts.length - 1];
  if (value === undefined) {
    if (Array.isArray(node) && typeof last === "number") node.splice(last, 1);
    else delete node[last];
  } else {
    node[last] = value;
  }
  return copy;
}

/** Applies several keys, for rows that need a different mode before the one bad key. */
export function withKeys(
  raw: Record<string, unknown>,
  keys: Record<string, unknown>,
): Record<string, unknown> {
  return Object.entries(keys).reduce((acc, [path, value]) => withKey(acc, path, value), raw);
}

/** A parsed config for the component tests. */
export function stackConfig(
  keys: Record<string, unknown> = {},
  stack = "staging",
  raw = baseRaw(),
): StackConfig {
  return parseStackConfig(withKeys(raw, keys), baseCtx(stack));
}

/**
 * App's args from a parsed config, as the program derives them (the tests'
 * hosts are reached directly: no openSshOnly).
 */
export function appArgs(config: StackConfig) {
  const { stack, app, tls, proxy, database, backups, releases } = config;
  const hostnames = config.dns.hostnames.map((h) => h.name);
  return { stack, app, hostnames, tls, proxy, database, backups, releases };
}

/**
 * For the describe() it is called in: App builds its artifact into
 * APPHOST_CACHE, so point that at a temp dir, and put things back after.
 */
export function useTempArtifactCache(prefix = "apphost-app-test-"): void {
  let cache: string;
  const saved = process.env.APPHOST_CACHE;
  before(() => {
    cache = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    process.env.APPHOST_CACHE = cache;
  });
  after(() => {
    if (saved === undefined) delete process.env.APPHOST_CACHE;
    else process.env.APPHOST_CACHE = saved;
    fs.rmSync(cache, { recursive: true, force: true });
  });
}

/** Where a key's object is in a schema: through defaults, pipes, records and unions. */
interface SchemaDef {
  shape?: Record<string, z.core.$ZodType>;
  options?: z.core.$ZodType[];
  valueType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  out?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
}
function objectOf(s: z.core.$ZodType): SchemaDef | undefined {
  const def = s._zod.def as SchemaDef;
  if (def.shape || def.options || def.valueType) return def;
  for (const next of [def.in, def.out, def.innerType]) {
    const found = next && objectOf(next);
    if (found) return found;
  }
  return undefined;
}

/** The keys of the object at `path` in a schema (a map's entries are its values). */
function keysAt(s: z.core.$ZodType, ...path: string[]): string[] {
  const def = objectOf(s) as SchemaDef;
  if (def.valueType) return keysAt(def.valueType, ...path);
  if (def.options) {
    if (path.length === 0) return [...new Set(def.options.flatMap((o) => keysAt(o)))];
    return keysAt(def.options.find((o) => keysAt(o).includes(path[0])) as z.core.$ZodType, ...path);
  }
  const shape = def.shape as Record<string, z.core.$ZodType>;
  return path.length === 0 ? Object.keys(shape) : keysAt(shape[path[0]], ...path.slice(1));
}

/** The schema as the docs describe it: its keys do not depend on the stack. */
const DOC = sections({ project: "apphost", stack: "dev", secrets: {} }, { raw: {} });

/** Every key each section accepts; docs/config.md and Pulumi.yaml are tested against these lists. */
export const KNOWN_KEYS = Object.fromEntries(SECTIONS.map((s) => [s, keysAt(DOC[s])])) as unknown as Record<
  Section,
  readonly string[]
>;
/** Keys of `apphost:database.rds`, `.pool`, `apphost:host.via.jump` and each `apphost:app.schedules.<name>`. */
export const RDS_KEYS = keysAt(DOC.database, "rds");
export const POOL_KEYS = keysAt(DOC.database, "pool");
export const JUMP_KEYS = keysAt(DOC.host, "via", "jump");
export const SCHEDULE_KEYS = keysAt(DOC.app, "schedules");
