/**
 * docs/config.md and Pulumi.yaml's `config:` descriptions against the parser:
 * every documented key is one the parser knows, and every default written as
 * a single value is the value the parser gives when the key is absent.
 */
import * as assert from "assert/strict";
import { readFileSync } from "fs";
import { join } from "path";
import * as yaml from "js-yaml";
import { inspectDatabaseUrl, parseStackConfig, type ParseContext } from "../../components/config/validate";
import { SECTIONS } from "../../components/config/schema";
import {
  baseCtx,
  baseRaw,
  DEPLOY_KEY,
  existingRaw,
  JUMP_KEYS,
  KNOWN_KEYS,
  POOL_KEYS,
  RDS_KEYS,
  SCHEDULE_KEYS,
  withKeys,
} from "./fixtures";

const ROOT = join(__dirname, "..", "..");

/** Every `apphost:` key a stack may set, nested ones as `section.key.sub` (`[]` for list items). */
function knownPaths(): Set<string> {
  const paths = new Set<string>();
  for (const section of SECTIONS) for (const key of KNOWN_KEYS[section]) paths.add(`${section}.${key}`);
  for (const key of POOL_KEYS) paths.add(`database.pool.${key}`);
  for (const key of RDS_KEYS) paths.add(`database.rds.${key}`);
  for (const key of JUMP_KEYS) paths.add(`host.via.jump.${key}`);
  for (const key of SCHEDULE_KEYS) paths.add(`app.schedules.<name>.${key}`);
  for (const key of ["name", "proxied"]) paths.add(`dns.hostnames[].${key}`);
  for (const key of ["command", "kind", "instances"]) paths.add(`app.processes.<name>.${key}`);
  for (const key of ["sshPrivateKey", "sshPrivateKeyFile", "jumpPrivateKey", "databaseUrl", "secretEnv"])
    paths.add(key);
  paths.add("alerts.webhook");
  return paths;
}

interface DocRow {
  key: string;
  default: string;
}

/** The key and default columns of docs/config.md's tables (`\|` inside a cell is a literal bar). */
function docRows(): DocRow[] {
  const doc = readFileSync(join(ROOT, "docs", "config.md"), "utf8");
  return doc
    .split("\n")
    .filter((line) => line.startsWith("| `apphost:"))
    .map((line) => {
      const cells = line
        .replace(/\\\|/g, "\u0000")
        .split("|")
        .map((c) => c.trim().replace(/\u0000/g, "|"));
      return { key: cells[1].replace(/`/g, "").replace(/^apphost:/, ""), default: cells[3] };
    });
}

/** Stacks that between them reach every key: ec2, existing, a jump host, several hosts with a balancer, RDS with a pool. */
function variants(): Array<{ raw: Record<string, unknown>; ctx: ParseContext }> {
  const multi = withKeys(existingRaw(), {
    "host.address": undefined,
    "host.addresses": ["10.0.0.11", "10.0.0.12"],
    lb: { address: "10.0.0.10" },
    "database.kind": "external",
  });
  const url = inspectDatabaseUrl("postgresql://app:s3cret@10.0.0.5:5432/app", true);
  return [
    { raw: baseRaw(), ctx: baseCtx() },
    { raw: existingRaw(), ctx: baseCtx() },
    {
      raw: withKeys(existingRaw(), {
        "host.via": { jump: { address: "198.51.100.5", hostKey: DEPLOY_KEY.publicKey } },
      }),
      ctx: baseCtx(),
    },
    { raw: multi, ctx: { ...baseCtx(), secrets: { ...baseCtx().secrets, databaseUrlInfo: url } } },
    { raw: withKeys(baseRaw(), { "database.kind": "rds", "database.pool": { size: 5 } }), ctx: baseCtx() },
  ];
}

/** `a.b[].c` in an object; `[]` reads the first item. */
function at(obj: unknown, path: string): unknown {
  let v: unknown = obj;
  for (const part of path.split(".")) {
    const list = part.endsWith("[]");
    const key = list ? part.slice(0, -2) : part;
    v = (v as Record<string, unknown> | undefined)?.[key];
    if (list) v = Array.isArray(v) ? v[0] : undefined;
  }
  return v;
}

/** Deletes `a.b[].c` from a raw stack (every list item). */
function unset(raw: unknown, path: string): boolean {
  const parts = path.split(".");
  const last = parts.pop() as string;
  let targets: unknown[] = [raw];
  for (const part of parts) {
    const list = part.endsWith("[]");
    const key = list ? part.slice(0, -2) : part;
    targets = targets.flatMap((t) => {
      const v = (t as Record<string, unknown> | undefined)?.[key];
      return list ? (Array.isArray(v) ? v : []) : v === undefined ? [] : [v];
    });
  }
  let removed = false;
  for (const t of targets) {
    if (t && typeof t === "object" && last in t) {
      delete (t as Record<string, unknown>)[last];
      removed = true;
    }
  }
  return removed;
}

/** Where the parsed config keeps a key whose YAML shape it flattens: `host.via.jump.port` is `host.via.port`. */
function parsedPath(path: string): string {
  return path.replace(/^host\.via\.jump\./, "host.via.");
}

/** How the parsed value is written in the docs: a string as is, `{kind}` as its kind, else JSON. */
function shown(v: unknown): string {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && !Array.isArray(v) && typeof (v as { kind?: unknown }).kind === "string") {
    return (v as { kind: string }).kind;
  }
  return JSON.stringify(v);
}

/** A variant parsed, or undefined when it needs the key (dns.provider on a cloudflare-origin stack). */
function parsed(raw: Record<string, unknown>, ctx: ParseContext): unknown {
  try {
    return parseStackConfig(raw, ctx);
  } catch {
    return undefined;
  }
}

/** Each variant parsed as it is: what a variant that does not set a key parses to with that key unset. */
let asTheyAre: unknown[] | undefined;

/** The parsed values of `path` when it is left unset, for each variant that parses and has it. */
function defaultsOf(path: string): string[] {
  const seen: string[] = [];
  asTheyAre ??= variants().map(({ raw, ctx }) => parsed(raw, ctx));
  for (const [i, { raw, ctx }] of variants().entries()) {
    const config = unset(raw, path) ? parsed(raw, ctx) : asTheyAre[i];
    if (config === undefined) continue;
    const v = at(config, parsedPath(path));
    if (v !== undefined) seen.push(shown(v));
  }
  return seen;
}

/** A default written as one literal value: `` `22` ``. */
function literal(cell: string): string | undefined {
  return /^`([^`]+)`$/.exec(cell)?.[1];
}

/** `key (type): ...; default X...` lines of each section's description in Pulumi.yaml. */
function projectDefaults(): Map<string, string> {
  const project = yaml.load(readFileSync(join(ROOT, "Pulumi.yaml"), "utf8")) as {
    config: Record<string, { description?: string }>;
  };
  const out = new Map<string, string>();
  for (const section of SECTIONS) {
    for (const line of (project.config[section].description ?? "").split("\n")) {
      const m = /^([A-Za-z]+) \([^)]*\): .*?; default (\S+)/.exec(line.trim());
      if (m) out.set(`${section}.${m[1]}`, m[2].replace(/[.;,]+$/, ""));
    }
  }
  return out;
}

describe("docs/config.md and Pulumi.yaml agree with the parser", () => {
  it("every key docs/config.md documents is one the parser reads", () => {
    const known = knownPaths();
    const unknown = docRows()
      .map((r) => r.key)
      .filter((k) => !known.has(k));
    assert.deepEqual(unknown, []);
  });

  it("every key the parser reads has a row in docs/config.md", () => {
    const documented = new Set(docRows().map((r) => r.key));
    const missing = [...knownPaths()].filter((k) => !documented.has(k) && !k.includes("<name>"));
    assert.deepEqual(missing, []);
  });

  it("every default docs/config.md writes as one value is the parser's", () => {
    const wrong: string[] = [];
    let checked = 0;
    for (const row of docRows()) {
      const value = literal(row.default);
      if (value === undefined) continue;
      const got = defaultsOf(row.key);
      if (got.length === 0) {
        wrong.push(`${row.key}: documented default ${value}, but no stack here parses to a value for it`);
        continue;
      }
      checked++;
      for (const g of new Set(got))
        if (g !== value) wrong.push(`${row.key}: docs say ${value}, the parser gives ${g}`);
    }
    assert.deepEqual(wrong, []);
    assert.ok(checked >= 40, `only ${checked} defaults checked`);
  });

  it("Pulumi.yaml's descriptions state the same defaults as docs/config.md", () => {
    const project = projectDefaults();
    const wrong: string[] = [];
    let checked = 0;
    for (const row of docRows()) {
      const value = literal(row.default);
      if (value === undefined || row.key.split(".").length !== 2) continue;
      const said = project.get(row.key);
      if (said === undefined) continue;
      checked++;
      if (said !== value) wrong.push(`${row.key}: Pulumi.yaml says default ${said}, docs/config.md ${value}`);
    }
    assert.deepEqual(wrong, []);
    assert.ok(checked >= 25, `only ${checked} Pulumi.yaml defaults checked`);
  });
});
