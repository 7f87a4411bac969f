/**
 * The stack config as a zod 4 schema: one object per `apphost:<section>`, its
 * defaults (from defaults.ts) and the rules within a section beside it. The
 * types in types.ts are inferred from it.
 *
 * Every leaf carries its own error function, so each issue names what was
 * expected and how to set it; zod hands that function the full path, which
 * `keyOf` spells as the stack does (`apphost:dns.hostnames[1].name`).
 * Section rules are refinements that run even when a field failed, over the
 * fields that passed, so one run reports every offender without follow-ups.
 */
import { isIPv4 } from "node:net";
import * as sshpk from "sshpk";
import { z } from "zod";
import * as D from "./defaults";
import { isName, isUrlPath, SAFE } from "../shell";
import { detectRuntime } from "./appfiles";
import { CALENDAR_EXAMPLES, calendarProblem } from "./calendar";
import { webPortProblem } from "./webport";
import { BROUGHT_BY, pythonWebCommand } from "./webapp";
import { compileExcludes } from "../release/artifact";
import {
  detectPythonDeps,
  groupedPackages,
  mainPackages,
  offeredGroups,
  PythonDepsError,
  requirementPackage,
  type PythonDeps,
} from "../release/python";
import {
  detectNodeDeps,
  npmWorkspaces,
  pinnedBuildTool,
  type NodeDeps,
  yarnWorkspaces,
  type NpmWorkspace,
  type PinnedTool,
} from "../release/node";
import type { AppFiles, ParseContext } from "./validate";
import { isReleaseId } from "../release/id";

// The sections are built for each parse (they read the stack's name, project and files), so zod's JIT would
// compile each object's parser every time, for one use: without it a parse takes a quarter less time.
z.config({ jitless: true });

// ---------------------------------------------------------------------------
// Pure helpers

export type Obj = Record<string, unknown>;
type Path = readonly PropertyKey[];
type Issue = z.core.$ZodRawIssue;

export function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** How a value is quoted in messages: short, JSON-like, `nothing` when absent. */
export function show(v: unknown): string {
  if (v === undefined || v === null) return "nothing";
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : "a list";
  if (isObject(v)) return "an object";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
}

/** `.key` for identifiers, `["key"]` otherwise, as `pulumi config set --path` spells it. */
export function child(path: string, key: PropertyKey): string {
  if (typeof key === "number") return `${path}[${key}]`;
  const k = String(key);
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? `${path}.${k}` : `${path}["${k}"]`;
}

/** The stack's spelling of a zod path: `["dns", "hostnames", 1]` is `apphost:dns.hostnames[1]`. */
export function keyOf(path: Path): string {
  return path.slice(1).reduce<string>((acc, k) => child(acc, k), `apphost:${String(path[0])}`);
}

export function setHint(path: string, example: string): string {
  return `set it with: pulumi config set --path '${path}' ${example}`;
}

/** Levenshtein distance, to suggest the key a typo meant. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
    }
  }
  return d[a.length][b.length];
}

/** The candidate a typo meant: two edits away at most (more is a different word). */
function closest(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const dist = distance(key, c);
    if (dist < bestDistance) [best, bestDistance] = [c, dist];
  }
  return best;
}

/** A public DNS name as Cloudflare and ACME accept it: lowercase labels, at least two, no wildcard. */
export function isDnsName(name: string): boolean {
  if (name.length > 253) return false;
  const labels = name.split(".");
  if (labels.length < 2) return false;
  if (/^\d+$/.test(labels[labels.length - 1])) return false; // "10.0.0.1" is an address, not a name
  return labels.every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l));
}

const isAddress = (s: string) => isIPv4(s) || isDnsName(s);
const isUser = (s: string) => /^[a-z_][a-z0-9_-]{0,31}$/.test(s);
const isSubnetId = (s: string) => /^subnet-[0-9a-f]{8,17}$/.test(s);
const isRelativePath = (s: string) =>
  !s.startsWith("/") && !s.split("/").includes("..") && !/^[A-Za-z]:/.test(s);
/** URL paths and release directories land unquoted in proxy configs: the same narrow charset as render/common.ts. */
const REL_DIR = /^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*\/?$/;

/**
 * Graviton instance families carry a `g` after the generation number
 * (t4g, m7g, c7gn, r8g, x2gd, im4gn, is4gen, hpc7g) or are the first-generation `a1`.
 * Returns undefined for strings that are not instance types.
 */
export function archOf(instanceType: string): "x86_64" | "arm64" | undefined {
  const m = /^([a-z]+)(\d+)([a-z-]*)\.([a-z0-9-]+)$/.exec(instanceType);
  if (!m) return undefined;
  const [, prefix, , suffix] = m;
  return prefix === "a" || /g/.test(suffix.replace(/-flex$/, "")) ? "arm64" : "x86_64";
}

/** `a.b.c.d/n` with the host bits zero (AWS stores the network address; anything else diffs forever). */
export function ipv4CidrProblem(cidr: string): string | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32) return "not an IPv4 CIDR";
  const bits = Number(m[2]);
  const ip = m[1].split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const network = ip - (ip % 2 ** (32 - bits));
  if (network === ip) return undefined;
  return `host bits are set; the network is ${[24, 16, 8, 0].map((s) => Math.floor(network / 2 ** s) % 256).join(".")}/${bits}`;
}

const SSH_KEY_TYPES_EC2 = ["ssh-ed25519", "ssh-rsa"];
const HOST_KEY_TYPES = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "ssh-rsa",
];

/** `type base64 [comment]` where the blob parses as a key of that same `type`. */
function isOpenSshPublicKey(line: string, types: readonly string[]): boolean {
  const type = line.trim().split(/\s+/)[0];
  if (!types.includes(type)) return false;
  try {
    return sshpk.parseKey(line.trim(), "ssh").toString("ssh").split(" ")[0] === type;
  } catch {
    return false;
  }
}

/** `type base64`, without the comment, for comparing keys. */
export function keyIdentity(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(" ");
}

/** Validity periods Cloudflare's Origin CA issues, in days. */
const ORIGIN_VALIDITY_DAYS = [7, 30, 90, 365, 730, 1095, 5475] as const;

/** apphost:app.staticPrefix and apphost:app.sharedUrls' keys: the URL prefixes the proxy files may hold (shell.ts). */
const isUrlPrefix = (s: string) => SAFE.urlPrefix.test(s);

/** `media/` is `media`. */
const withoutSlash = (dir: string) => dir.replace(/\/+$/, "");

/** The release paths apphost links in itself, which the app's own links may not be or be inside. */
const LINKED_BY_APPHOST = ["data", "logs", ".venv", "node_modules"];

/** The directory of LINKED_BY_APPHOST that `path` (relative to the release) is, or is inside; undefined for none. */
const linkedByApphost = (path: string) =>
  LINKED_BY_APPHOST.find((o) => path === o || path.startsWith(`${o}/`));

/** apphost:app.sharedDirs: a release directory the app writes, never one apphost links in itself. */
function sharedDirProblem(d: string): string | undefined {
  const dir = withoutSlash(d);
  if (!REL_DIR.test(d) || !isRelativePath(d) || dir === "." || dir.split("/").includes("."))
    return `expected a directory inside the release (letters, digits and ._-, like "media" or "shop/media"), got ${show(d)}; fix the item`;
  const own = linkedByApphost(dir);
  if (own)
    return `${show(d)} is ${dir === own ? "" : "inside "}${own}/, which apphost links in itself${own === "data" ? " (it persists already)" : ""}; list another directory`;
  return undefined;
}

/** apphost:app.dotenv: a file inside the release, never in a directory apphost links in itself. */
function dotenvProblem(f: string): string | undefined {
  if (
    !REL_DIR.test(f) ||
    f.endsWith("/") ||
    !isRelativePath(f) ||
    f.split("/").some((p) => p === "." || p === "..")
  )
    return `expected a file path inside the release (letters, digits and ._-), like ".env" or "src/.env", got ${show(f)}; fix the item`;
  const own = linkedByApphost(f);
  if (own)
    return `${show(f)} is ${f === own ? "" : "inside "}${own}${f === own ? "" : "/"}, which apphost links in itself; list another file`;
  return undefined;
}

/** Process names whose worker unit would be one of apphost's own units (systemd.ts). */
const RESERVED_PROCESS_NAMES = ["backup", "upstream", "job", "alert"];

// ---------------------------------------------------------------------------
// Leaves: each schema's error function says what was expected and how to set it

interface Spec {
  expected: string;
  example?: string;
  /** Why the key is needed, in the `missing` message */
  why?: string;
  /** What the missing message's example sets, after the key (`[0].name`) */
  hint?: string;
  /** Instead of the `set it with` hint for a wrong value */
  todo?: string | ((key: string) => string);
}

/** `missing (why); expected ...; set it with ...` or `expected ..., got ...; set it with ...` */
function says(s: Spec) {
  return (iss: Issue) => {
    const key = keyOf(iss.path ?? []);
    if (iss.input === undefined) {
      const why = s.why ? ` (${s.why})` : "";
      return `missing${why}; expected ${s.expected}; ${setHint(key + (s.hint ?? ""), s.example ?? "")}`;
    }
    const todo = typeof s.todo === "function" ? s.todo(key) : (s.todo ?? setHint(key, s.example ?? ""));
    return `expected ${s.expected}, got ${show(iss.input)}; ${todo}`;
  };
}

/** A non-blank string passing `test`; `why` says, when it is missing, what it is for. */
const str = (expected: string, example: string, test: (v: string) => boolean = () => true, why?: string) =>
  z.string({ error: says({ expected, example, why }) }).refine((v) => v.trim() !== "" && test(v));

/**
 * Strings of digits count: `pulumi config set --path` stores values as strings unless told otherwise.
 * A string out of range stays a string, so the message quotes it as written.
 */
const int = (min: number, max: number, example: number) =>
  z.preprocess(
    (v) => {
      const n = typeof v === "string" && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
      return typeof n === "number" && n >= min && n <= max ? n : v;
    },
    z
      .number({ error: says({ expected: `an integer from ${min} to ${max}`, example: String(example) }) })
      .int()
      .min(min)
      .max(max),
  );
/** An integer with a default, which is also the example the message suggests unless one is given. */
const num = (min: number, max: number, dflt: number, example = dflt) => int(min, max, example).default(dflt);

const flag = (example: boolean) =>
  z.preprocess(
    (v) => (v === "true" ? true : v === "false" ? false : v),
    z.boolean({ error: says({ expected: "true or false", example: String(example) }) }),
  );
const bool = (dflt: boolean) => flag(dflt).default(dflt);

const oneOf = <const T extends readonly [string, ...string[]]>(values: T, why?: string) =>
  z.enum(values, {
    error: says({ expected: `one of ${values.map((x) => `"${x}"`).join(", ")}`, example: values[0], why }),
  });

/**
 * A list of non-empty strings, each bad item reported at its index; `problem`
 * says what is wrong with an item beyond that (undefined when nothing is).
 */
const list = (example: string, problem: (item: string) => string | undefined = () => undefined) =>
  z.array(
    z
      .string({
        error: (iss) =>
          (typeof iss.input === "string" && iss.input.trim() !== "" && problem(iss.input)) ||
          `expected a non-empty string, got ${show(iss.input)}; fix or remove the item`,
      })
      .refine((s) => s.trim() !== "" && problem(s) === undefined),
    { error: says({ expected: "a list of strings", todo: `write it as a YAML list, e.g. [${example}]` }) },
  );
/** The `problem` of a list item that must pass `test`. */
const each = (test: (s: string) => boolean, expected: string) => (s: string) =>
  test(s) ? undefined : `expected ${expected}, got ${show(s)}; fix the item`;

const address = (example: string, why?: string) =>
  str(`an IPv4 address or DNS name like "${example}"`, example, isAddress, why);
const hostKey = (whose: string, at: string, why?: string) =>
  str(
    `${whose} public host key line, like "ssh-ed25519 AAAA..."`,
    `"$(ssh-keyscan -t ed25519 ${at} | cut -d' ' -f2-)"`,
    (s) => isOpenSshPublicKey(s, HOST_KEY_TYPES),
    why,
  );
const user = (expected: string, example: string, why?: string) => str(expected, example, isUser, why);
const SUBNET = "subnet-0123456789abcdef0";
const subnetIds = () => list(SUBNET, each(isSubnetId, `a subnet id like "${SUBNET}"`));
const command = (example: string) => str("a shell command", example);
/** A path written as is (relative to the project, or absolute): no surrounding blanks or line breaks. */
const isPath = (s: string) => s.trim() === s && !/[\0\n\r]/.test(s);

// ---------------------------------------------------------------------------
// Objects: every unknown key named, with the key a typo meant

/**
 * The message for a key an object does not have: one that belongs to another mode, a typo, or neither.
 * `parent` is undefined for the stack's own keys, spelled `apphost:<key>`.
 */
export function unknownKey(
  parent: string | undefined,
  key: string,
  known: readonly string[],
  notHere: Record<string, string> = {},
): string {
  if (notHere[key]) return `${notHere[key]}; remove it`;
  // A key of the stack's own written inside a section (apphost:app.secretEnv): say where it goes.
  if (parent && (SECRET_KEYS as readonly string[]).includes(key)) {
    return `not a key of ${parent}: apphost:${key} is a secret of the stack's own; set it with pulumi config set --secret --path 'apphost:${key}${{ secretEnv: ".NAME", alerts: ".webhook" }[key as string] ?? ""}' <value> (encrypted in the stack file), and remove this one`;
  }
  if (parent && (SECTIONS as readonly string[]).includes(key)) {
    return `not a key of ${parent}: apphost:${key} is a section of the stack's own; move this under apphost:${key}`;
  }
  // `apphost:host.packages` at the top: a key with a dot in its name, as `pulumi config set` without --path writes.
  const [section, ...rest] = key.split(".");
  if (!parent && rest.length > 0 && (SECTIONS as readonly string[]).includes(section)) {
    return (
      `a key with a dot in its name, which Pulumi keeps apart from apphost:${section} (\`pulumi config set\` without ` +
      `--path writes one): move ${rest.join(".")} under apphost:${section} in the stack file, or remove it ` +
      `(pulumi config rm 'apphost:${key}') and set it again with pulumi config set --path`
    );
  }
  const spell = (k: string) => (parent ? k : `apphost:${k}`);
  const near = closest(key, known);
  if (near) return `unknown key; did you mean ${parent ? `"${near}"` : spell(near)}? Rename or remove it`;
  return `unknown key; ${parent ? `the keys of ${parent} are` : "apphost reads"} ${known.map(spell).join(", ")}. Remove it`;
}

interface ObjOptions {
  /** Keys valid in another mode, and why they are not here */
  notHere?: Record<string, string>;
  /** The keys a typo is matched against (default: the shape's) */
  known?: readonly string[];
  /** The message when the value is not an object at all */
  type?: (iss: Issue) => string;
}

/**
 * A strict object. zod reports all unknown keys of one object as one issue;
 * its message carries one line per key, which parseStackConfig splits.
 */
function obj<S extends z.core.$ZodLooseShape>(shape: S, o: ObjOptions = {}) {
  const known = o.known ?? Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) =>
      iss.code === "unrecognized_keys"
        ? iss.keys.map((k) => unknownKey(keyOf(iss.path ?? []), k, known, o.notHere)).join("\n")
        : o.type
          ? o.type(iss)
          : `expected an object (a YAML mapping), got ${show(iss.input)}; see docs/config.md for the keys of ${keyOf(iss.path ?? [])}`,
  });
}

/**
 * The fields of `v` as far as they passed: one with an issue at `path[depth]`
 * is undefined. Unknown keys and the issues of rules do not count: they leave
 * the value as it was read.
 */
export function passedFields(v: Obj, issues: readonly Issue[], depth = 0): Obj {
  const failed = new Set(
    issues
      .filter((i) => i.code !== "unrecognized_keys" && !(i.params as Obj | undefined)?.rule)
      .map((i) => i.path?.[depth]),
  );
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, failed.has(k) ? undefined : x]));
}

/** What a section's rules are handed besides the fields that passed. */
interface RuleKit {
  /** Adds an issue at a path below the section, or at a key of its own spelling (`(stack name)`) */
  add(path: PropertyKey[] | string, message: string): void;
  /** The key was set at all (a default does not count) */
  has(key: string): boolean;
  /** Each key of `only` that is set while `field` is none of its values: `only used when ...; remove it` */
  only(field: string, only: Record<string, readonly string[]>, note?: string): void;
}

/** A process or job name: it becomes part of a systemd unit name. */
function nameProblem(name: string, what: "process" | "job"): string | undefined {
  if (!isName(name)) {
    const why =
      what === "process"
        ? "it becomes part of a systemd unit name"
        : "it names the systemd timer apphost-<app>-<stack>-schedule-<name>";
    return `expected a ${what} name of lowercase letters, digits and dashes, starting with a letter (${why}); rename it`;
  }
  // exec-<n>: the transient unit `npm run exec` runs a command in (paths.ts, execUnitName).
  if (what === "process" && (RESERVED_PROCESS_NAMES.includes(name) || /^(schedule-|exec-\d+$)/.test(name))) {
    return `"${name}" is taken: apphost's own unit is apphost-<app>-<stack>-${name}.service (${RESERVED_PROCESS_NAMES.join(", ")}, schedule-* and exec-<digits> are reserved); rename the process`;
  }
  return undefined;
}

/** A map of named units; an entry with a bad name is reported instead of read. */
function units<V extends z.core.$ZodType>(what: "process" | "job", value: V, spec: Spec) {
  return z.record(
    z.string().refine((name) => nameProblem(name, what) === undefined),
    value,
    { error: (iss) => (iss.code === "invalid_key" ? nameProblem(String(iss.input), what) : says(spec)(iss)) },
  );
}

/** One rule for env and secretEnv: shell-safe names, scalar values, PORT reserved. */
export function envProblem(name: string, type: string): string | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    return "expected an environment variable name (letters, digits and _, not starting with a digit); rename it";
  }
  if (name === "PORT") {
    return "PORT is set by apphost for each web instance (blue/green ports); remove it and read $PORT in the app";
  }
  if (!["string", "number", "boolean"].includes(type)) {
    return `expected a string value, got ${type === "array" ? "a list" : type === "object" ? "an object" : type}; quote the value`;
  }
  return undefined;
}

export function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

// ---------------------------------------------------------------------------
// Sections

/** The stack's secret keys: the parser sees only facts about them (is it set, is it encrypted). */
export const SECRET_KEYS = ["sshPrivateKey", "secretEnv", "jumpPrivateKey", "alerts", "databaseUrl"] as const;

/** The `apphost:<section>` objects, in the order problems are reported. */
export const SECTIONS = [
  "host",
  "dns",
  "tls",
  "proxy",
  "app",
  "database",
  "backups",
  "releases",
  "lb",
] as const;
export type Section = (typeof SECTIONS)[number];

/**
 * What the schema needs besides the stack's own keys. A built schema reads
 * `raw` anew at each parse (validate.ts builds one for each context and set
 * of builtFrom facts, then sets these fields before each parse).
 */
export interface Prepared {
  /** The input, with YAML's empty values (`key:`) removed: they count as absent */
  raw: Obj;
  /** The app's Procfile, when the stack takes its processes from it */
  procfile?: { where: string; problems: string[]; release?: string };
}

/** The first key to set for each required section. */
const REQUIRED_START: Partial<Record<Section, string>> = {
  host: "pulumi config set --path 'apphost:host.kind' ec2",
  tls: "pulumi config set --path 'apphost:tls.mode' caddy-acme",
  app: "pulumi config set --path 'apphost:app.source' app",
};

const VIA_FORMS =
  "direct (the default), instance-connect (ec2: an EC2 Instance Connect Endpoint), " +
  "or {jump: {address, port, user, hostKey}} for an SSH jump host";

/** `apphost:host.via`: absent or `direct`, `instance-connect` (ec2), or `{jump: {address, port, user, hostKey}}`. */
const Via = z.preprocess(
  (v, ctx) => {
    if (v === undefined || v === "direct" || v === "instance-connect") return { kind: v ?? "direct" };
    if (!isObject(v) || !isObject(v.jump)) {
      ctx.addIssue({
        code: "custom",
        input: v,
        message: `expected ${VIA_FORMS}, got ${show(v)}; set it with: pulumi config set --path 'apphost:host.via.jump.address' 203.0.113.5 (and .hostKey)`,
      });
      return v;
    }
    // Reported before the jump host's keys, as a zod issue that lets the pipe go on.
    for (const k of Object.keys(v).filter((k) => k !== "jump")) {
      ctx.addIssue({
        code: "unrecognized_keys",
        keys: [k],
        input: v,
        message: unknownKey("apphost:host.via", k, ["jump"]),
      });
    }
    return { kind: "jump", jump: v.jump };
  },
  z.discriminatedUnion("kind", [
    z.object({ kind: z.literal("direct") }),
    z.object({ kind: z.literal("instance-connect") }),
    z
      .object({
        kind: z.literal("jump"),
        jump: obj({
          address: str(
            'the jump host\'s IPv4 address or DNS name, like "203.0.113.5"',
            "203.0.113.5",
            isAddress,
            "where the SSH connections go first",
          ),
          port: num(1, 65535, D.HOST_DEFAULTS.port),
          /** @default the host's user */
          user: user("a login user name on the jump host", "jump").optional(),
          hostKey: hostKey(
            "the jump host's",
            "203.0.113.5",
            "apphost pins the jump host's key too; it is known before the first connection",
          ),
        }),
      })
      // The jump user is "" here when unset: the host fills in its own login user.
      .transform(({ jump }) => ({ kind: "jump" as const, ...jump, user: jump.user ?? "" })),
  ]),
);

/** Keeps `keys` in the output as `undefined` when unset (the normalized config lists them), still optional in its type. */
function explicit<T extends object>(o: T, ...keys: (keyof T)[]): T {
  return { ...Object.fromEntries(keys.map((k) => [k, undefined])), ...o };
}

function withJumpUser<V extends { kind: string; user?: string }>(via: V, hostUser: string): V {
  return via.kind === "jump" && !via.user ? { ...via, user: hostUser } : via;
}

/** `a, b or c` */
const orList = (values: readonly string[]) =>
  values.length === 1 ? values[0] : `${values.slice(0, -1).join(", ")} or ${values[values.length - 1]}`;

/**
 * apphost:app.dependencyGroups with a manager apphost installs none with (pip, Pipenv, PDM), or nothing (a name the
 * app's pyproject.toml does not declare is the item's own problem).
 */
function dependencyGroupsRefused(files: AppFiles, requirements: string | undefined): string | undefined {
  let deps: PythonDeps;
  try {
    deps = detectPythonDeps(files.python, requirements);
  } catch {
    return undefined; // apphost:app.requirements says what is wrong
  }
  if (offeredGroups(deps.manager, files.python["pyproject.toml"])) return undefined;
  return (
    `apphost installs dependency groups and extras with uv, Poetry, and pip from pyproject.toml; ${files.dir} installs with ${deps.manager}${deps.manifest ? ` (${deps.manifest})` : ""}: ` +
    "list the packages in its main dependencies instead, and remove apphost:app.dependencyGroups"
  );
}

/**
 * The groups and extras that alone list `pkg` and that apphost:app.dependencyGroups leaves out (uvicorn in
 * minimal-fastapi-postgres-template's "dev" group), for the example web command's server.
 */
function groupsAlone(files: AppFiles, app: Obj, pkg: string): string[] {
  const requirements = typeof app.requirements === "string" ? app.requirements : undefined;
  const groups = Array.isArray(app.dependencyGroups)
    ? app.dependencyGroups.filter((g) => typeof g === "string")
    : [];
  // A main dependency that is the server, or brings it (`fastapi[standard]` requires uvicorn[standard]), installs it.
  const main = mainPackages(files.python["pyproject.toml"]);
  const by = BROUGHT_BY[pkg];
  if (main.has(pkg) || (by && (main.get(by.pkg) ?? []).some((e) => by.extras.includes(e)))) return [];
  try {
    const deps = detectPythonDeps(files.python, requirements);
    return (groupedPackages(deps.manager, files.python["pyproject.toml"], groups).get(pkg) ?? []).map(
      (g) => g.name,
    );
  } catch {
    return []; // apphost:app.requirements says what is wrong
  }
}

/**
 * The app's Python dependencies with apphost:app.dependencyGroups resolved to groups and extras (none: as they are),
 * and the packages only the other groups and extras list.
 */
function withGroups(
  deps: PythonDeps | undefined,
  files: AppFiles,
  groups: readonly string[] = [],
): PythonDeps | undefined {
  if (!deps) return deps;
  const pyproject = files.python["pyproject.toml"];
  const offered = groups.length ? offeredGroups(deps.manager, pyproject) : undefined;
  const grouped = groupedPackages(deps.manager, pyproject, groups);
  return {
    ...deps,
    ...(offered && { groups: groups.map((name) => ({ name, as: offered.get(name) ?? "group" })) }),
    ...(grouped.size > 0 && { groupedPackages: Object.fromEntries(grouped) }),
  };
}

/**
 * What `sections` reads of the input as it builds the schema, rather than as
 * it parses: two inputs that agree on these (and on the context) can share a
 * schema. Everything else of `p` is read at parse time.
 */
export function builtFrom(p: Prepared): unknown[] {
  const app = isObject(p.raw.app) ? p.raw.app : {};
  return [
    D.defaultHsts(String(isObject(p.raw.tls) ? p.raw.tls.mode : "off")),
    typeof app.requirements === "string" ? app.requirements : undefined,
    // The processes' example command is the runtime's, and names the groups its server is in.
    app.runtime,
    JSON.stringify(app.dependencyGroups),
    JSON.stringify(app.extraRequirements),
    p.procfile,
  ];
}

/**
 * The schema of a context: some defaults and messages depend on the stack
 * (its name, the project, the app's files), and a few rules on whether a key
 * was set at all, which only the input knows (read from `p` as each parse
 * runs, but for builtFrom's facts).
 */
export function sections(ctx: ParseContext, p: Prepared) {
  const raw = (name: Section): Obj => (isObject(p.raw[name]) ? p.raw[name] : {});
  const sectionError = (name: Section) => (iss: Issue) =>
    iss.input === undefined
      ? `missing; expected an object (see docs/config.md for its keys); start with: ${REQUIRED_START[name]}`
      : `expected an object (a YAML mapping under apphost:${name} in Pulumi.${ctx.stack}.yaml), got ${show(iss.input)}; ` +
        "see docs/config.md for its keys";
  /**
   * A section, and its rules: a refinement that runs even when some of its
   * fields failed; those fields are undefined in what it sees, so it never
   * follows up on them.
   */
  const section = <S extends z.core.$ZodLooseShape>(
    name: Section,
    shape: S,
    rules: (v: Partial<z.output<z.ZodObject<S, z.core.$strict>>>, kit: RuleKit) => void = () => {},
    o: ObjOptions = {},
  ) =>
    obj(shape, { type: sectionError(name), ...o }).superRefine(
      (v, c) => {
        if (!isObject(v)) return;
        const fields = passedFields(v, c.issues) as Partial<z.output<z.ZodObject<S, z.core.$strict>>>;
        const add: RuleKit["add"] = (path, message) =>
          c.addIssue({
            code: "custom",
            message,
            input: undefined,
            ...(typeof path === "string"
              ? { params: { key: path, rule: true } }
              : { path, params: { rule: true } }),
          });
        const has = (key: string) => raw(name)[key] !== undefined;
        const only: RuleKit["only"] = (field, table, note = "") => {
          const mode = (fields as Obj)[field];
          for (const [key, modes] of Object.entries(table)) {
            if (typeof mode === "string" && !modes.includes(mode) && has(key))
              add(
                [key],
                `only used when apphost:${name}.${field} is ${orList(modes)} (got ${show(mode)}${note}); remove it`,
              );
          }
        };
        rules(fields, { add, has, only });
      },
      { when: () => true },
    );

  // --- apphost:host: an EC2 instance apphost creates, or servers that exist
  // apphost:host.addresses' items as they are read, in order: the list starts them again (startAddresses).
  const seen = new Map<string, number>();
  let item = 0;
  const startAddresses = (v: unknown) => {
    seen.clear();
    item = 0;
    return v;
  };
  const anywhere = () => [true, "true"].includes(raw("host").allowSshFromAnywhere as boolean);
  const common = {
    port: num(1, 65535, D.HOST_DEFAULTS.port),
    via: Via,
    /** Debian packages the baseline installs too: build tools for dependencies built from source, system libraries */
    packages: list(
      '"build-essential", "python3-dev"',
      each(
        SAFE.debianPackage.test,
        'a Debian package name like "build-essential" (lowercase letters, digits and .+-)',
      ),
    ).default(() => [...D.HOST_DEFAULTS.packages]),
  };
  const ec2 = {
    kind: z.literal("ec2"),
    /** @default "admin" on Debian, "ubuntu" on Ubuntu */
    user: user("a login user name", "admin").optional(),
    ...common,
    /** @default 1024 for instances with < 2 GiB, else 0 */
    swapMb: int(0, 65536, 0).optional(),
    instanceType: str('an EC2 instance type like "t4g.small"', "t4g.small", (s) => archOf(s) !== undefined),
    os: oneOf(["debian-12", "debian-13", "ubuntu-24.04"]).default(D.HOST_DEFAULTS.os),
    rootVolumeGb: num(8, 16384, D.HOST_DEFAULTS.rootVolumeGb),
    sshPublicKey: str(
      'an OpenSSH public key line of type ssh-ed25519 or ssh-rsa (EC2 imports no other type), like "ssh-ed25519 AAAA... you@laptop"',
      '"$(cat ~/.ssh/apphost_deploy.pub)"',
      (s) => isOpenSshPublicKey(s, SSH_KEY_TYPES_EC2),
      "the EC2 key pair is made from it",
    ),
    /** Required unless via is instance-connect; 0.0.0.0/0 only with allowSshFromAnywhere */
    sshAllowCidrs: list("203.0.113.0/24", (cidr) => {
      const problem = ipv4CidrProblem(cidr);
      if (problem)
        return `expected an IPv4 CIDR like "203.0.113.7/32", got ${show(cidr)} (${problem}); fix the item`;
      if (cidr !== "0.0.0.0/0" || anywhere()) return undefined;
      return (
        "opens SSH to the whole internet; list the addresses you deploy from, " +
        "or set apphost:host.allowSshFromAnywhere to true if you really mean it"
      );
    }).optional(),
    allowSshFromAnywhere: bool(D.HOST_DEFAULTS.allowSshFromAnywhere),
    elasticIp: bool(D.defaultElasticIp(ctx.stack)),
    subnetId: str(`a subnet id like "${SUBNET}"`, SUBNET, isSubnetId).optional(),
    count: num(1, 20, 1),
    subnetIds: subnetIds().optional(),
    hostKey: hostKey("the instance's", "203.0.113.10").optional(),
  };
  const addressItem = z.preprocess(
    (v) => (typeof v === "string" ? { address: v } : v),
    obj(
      { address: address("203.0.113.10"), hostKey: hostKey("the server's", "203.0.113.10").optional() },
      {
        type: (iss) => `expected an address or {address, hostKey}, got ${show(iss.input)}; fix the item`,
      },
    ).superRefine(
      // Items are read in order: a repeat is reported with the item itself.
      (a, c) => {
        const i = item++;
        const key =
          isObject(a) && !c.issues.some((x) => x.path?.[0] === "address") && a.address.toLowerCase();
        if (!key) return;
        if (!seen.has(key)) return void seen.set(key, i);
        c.addIssue({
          code: "custom",
          input: a,
          message: `${show(a.address)} is already apphost:host.addresses[${seen.get(key)}]; list each app host once`,
        });
      },
      { when: () => true },
    ),
  );
  const existing = {
    kind: z.literal("existing"),
    user: user(
      "a login user name with sudo rights",
      "deploy",
      "apphost cannot guess the login user of a server it did not create",
    ),
    ...common,
    swapMb: num(0, 65536, D.HOST_DEFAULTS.existingSwapMb),
    address: address("203.0.113.10").optional(),
    hostKey: hostKey("the server's", "203.0.113.10").optional(),
    /** Every app host; two or more serve behind apphost:lb */
    addresses: z
      .preprocess(
        startAddresses,
        z
          .array(addressItem, {
            error: says({
              expected: "a non-empty list of app hosts, each an address or {address, hostKey}",
              todo: (key) => `e.g. pulumi config set --path '${key}[0]' 203.0.113.10`,
            }),
          })
          .min(1),
      )
      .optional(),
  };
  const hostKeys = [...new Set([...Object.keys(ec2), ...Object.keys(existing)])];
  const ec2Only = "only used when apphost:host.kind is ec2";
  const existingOnly = "only used when apphost:host.kind is existing (ec2 gets its address from AWS)";

  const Ec2 = section(
    "host",
    ec2,
    (h, { add, has }) => {
      if (h.via?.kind === "instance-connect") return;
      if (!has("sshAllowCidrs")) {
        add(
          ["sshAllowCidrs"],
          "missing (SSH is closed to everyone else); expected a list of IPv4 CIDRs allowed to reach SSH; " +
            setHint("apphost:host.sshAllowCidrs[0]", "203.0.113.7/32"),
        );
      } else if (h.sshAllowCidrs?.length === 0) {
        add(
          ["sshAllowCidrs"],
          "expected at least one IPv4 CIDR, got an empty list; add the address you deploy from, e.g. [203.0.113.7/32] (curl -4 ifconfig.me)",
        );
      }
    },
    { known: hostKeys, notHere: { address: existingOnly, addresses: existingOnly } },
  ).transform((h) => {
    const login = h.user ?? D.defaultEc2User(h.os);
    return {
      ...explicit(h, "subnetId"),
      arch: archOf(h.instanceType) as "x86_64" | "arm64",
      user: login,
      swapMb: h.swapMb ?? D.defaultEc2SwapMb(h.instanceType),
      sshAllowCidrs: h.sshAllowCidrs ?? [],
      via: withJumpUser(h.via, login),
    };
  });

  const Existing = section(
    "host",
    existing,
    (h, { add, has }) => {
      if (h.via?.kind === "instance-connect") {
        add(
          ["via"],
          "instance-connect needs an EC2 instance (apphost:host.kind is existing); use {jump: {...}} to reach a server behind a bastion, or direct",
        );
      }
      if (has("addresses")) {
        for (const key of ["address", "hostKey"].filter(has)) {
          add(
            [key],
            `set with apphost:host.addresses too; give every host in addresses (a host key as {address, hostKey}) and remove ${key}`,
          );
        }
      } else if (!has("address")) {
        add(
          ["address"],
          'missing (where to SSH to (or apphost:host.addresses, a list, for several app hosts)); expected an IPv4 address or DNS name like "203.0.113.10"; ' +
            setHint("apphost:host.address", "203.0.113.10"),
        );
      }
    },
    {
      known: hostKeys,
      notHere: {
        instanceType: ec2Only,
        os: `${ec2Only} (an existing server keeps its OS)`,
        rootVolumeGb: ec2Only,
        sshPublicKey: `${ec2Only} (install the key on the server yourself)`,
        sshAllowCidrs: `${ec2Only} (apphost does not manage the firewall of an existing server)`,
        allowSshFromAnywhere: ec2Only,
        elasticIp: ec2Only,
        subnetId: ec2Only,
        count: `${ec2Only} (list several existing servers in apphost:host.addresses)`,
        subnetIds: ec2Only,
      },
    },
  ).transform(({ address: one, hostKey: key, addresses: list, ...h }) => {
    const addresses = list ?? [{ address: one as string, ...(key ? { hostKey: key } : {}) }];
    const first: { address: string; hostKey?: string } = addresses[0];
    return {
      ...h,
      address: first.address,
      ...(first.hostKey ? { hostKey: first.hostKey } : {}),
      addresses,
      via: withJumpUser(h.via, h.user),
    };
  });

  const kindError = says({
    expected: 'one of "ec2", "existing"',
    example: "ec2",
    why: "which machine to deploy to",
  });
  const Host = z.preprocess(
    // With a kind that is neither, the other keys cannot be judged, but typos still can.
    (v, c) => {
      if (!isObject(v) || v.kind === "ec2" || v.kind === "existing") return v;
      for (const k of Object.keys(v).filter((k) => !hostKeys.includes(k))) {
        c.addIssue({
          code: "unrecognized_keys",
          keys: [k],
          input: v,
          message: unknownKey("apphost:host", k, hostKeys),
        });
      }
      return v;
    },
    z.discriminatedUnion("kind", [Ec2, Existing], {
      error: (iss) =>
        iss.code === "invalid_union"
          ? kindError({ ...iss, input: isObject(iss.input) ? iss.input.kind : undefined })
          : sectionError("host")(iss),
    }),
  );

  // --- apphost:dns
  const rawNames = () => (Array.isArray(raw("dns").hostnames) ? (raw("dns").hostnames as unknown[]) : []);
  const hostnamePath = (i: number) =>
    typeof rawNames()[i] === "string" ? ["hostnames", i] : ["hostnames", i, "name"];
  const isHostname = (s: string) => isDnsName(s) || isIPv4(s);
  const hostnameError = (raw: unknown) => {
    const lower =
      typeof raw === "string" && isDnsName(raw.toLowerCase())
        ? `; write it in lowercase: ${raw.toLowerCase()}`
        : "";
    const wildcard =
      typeof raw === "string" && raw.startsWith("*.")
        ? "; wildcards need a DNS challenge apphost does not do, list each name"
        : "";
    return (
      'expected a DNS name like "www.example.com" (lowercase letters, digits and dashes, at least two labels) ' +
      `or, without DNS, the host's IPv4 address, got ${show(raw)}${lower || wildcard || "; fix the name"}`
    );
  };
  const hostname = z.preprocess(
    // A bare name is {name, proxied: false}; a bad one is reported at the item itself.
    (v, c) => {
      if (typeof v !== "string" || isHostname(v)) return typeof v === "string" ? { name: v } : v;
      c.addIssue({ code: "custom", input: v, message: hostnameError(v) });
      return v;
    },
    obj(
      {
        // An IPv4 address stands in for a name on stacks without DNS (the proxy serves it); the cross-field
        // rules refuse it where a record or a public certificate needs a real name.
        name: z.string({ error: (iss) => hostnameError(iss.input) }).refine(isHostname),
        /** Orange-cloud through Cloudflare (forces ttl 1) */
        proxied: bool(D.DNS_DEFAULTS.proxied),
      },
      {
        type: (iss) =>
          `expected a hostname or {name, proxied}, got ${show(iss.input)}; write e.g. "www.example.com" or {name: www.example.com, proxied: true}`,
      },
    ),
  );
  const Dns = section(
    "dns",
    {
      provider: oneOf(["cloudflare", "none"]).default(D.DNS_DEFAULTS.provider),
      /** Looked up when zoneId is absent */
      zone: str('a Cloudflare zone name like "example.com"', "example.com", isDnsName).optional(),
      zoneId: str(
        "a Cloudflare zone id (32 hex characters, Overview page of the zone)",
        "023e105f4ecef8ad9ca31a8372d0c353",
        (s) => /^[0-9a-f]{32}$/.test(s),
      ).optional(),
      /** The first is the primary */
      hostnames: z
        .array(hostname, {
          error: says({
            expected: "a list of hostnames",
            todo: 'write it as a YAML list, e.g. ["example.com", "www.example.com"]',
          }),
        })
        .superRefine((names, c) => {
          const seen = new Set<string>();
          names.forEach((h, i) => {
            if (seen.has(h.name))
              c.addIssue({
                code: "custom",
                path: hostnamePath(i).slice(1),
                message: `duplicate hostname ${show(h.name)}; list each hostname once`,
              });
            seen.add(h.name);
          });
        })
        .default(() => []),
      /** Also publish AAAA records (ec2 only) */
      ipv6: bool(D.DNS_DEFAULTS.ipv6),
    },
    (d, { add, has }) => {
      if (d.provider === "cloudflare") {
        if (!has("zone") && !has("zoneId")) {
          add(
            ["zone"],
            "missing (records are created in this zone); expected the Cloudflare zone name (or apphost:dns.zoneId); " +
              setHint("apphost:dns.zone", "example.com"),
          );
        }
        const example = setHint("apphost:dns.hostnames[0].name", "example.com");
        if (d.hostnames?.length === 0) {
          add(
            ["hostnames"],
            has("hostnames")
              ? `expected at least one hostname, got an empty list; ${example}`
              : `missing (one A record is created per hostname); expected at least one hostname; ${example}`,
          );
        }
        const zone = d.zone;
        d.hostnames?.forEach((h, i) => {
          if (zone && !isIPv4(h.name) && h.name !== zone && !h.name.endsWith(`.${zone}`)) {
            add(
              hostnamePath(i),
              `${show(h.name)} is not in the zone ${show(zone)}; use a name ending in .${zone} or change apphost:dns.zone`,
            );
          }
        });
      }
      if (d.provider === "none") {
        const why =
          'only used when apphost:dns.provider is cloudflare (with "none" you manage DNS yourself); remove it or set apphost:dns.provider to cloudflare';
        for (const key of ["zone", "zoneId"]) if (has(key)) add([key], why);
        if (d.ipv6 === true) add(["ipv6"], why);
        rawNames().forEach((item, i) => {
          if (isObject(item) && (item.proxied === true || item.proxied === "true"))
            add(["hostnames", i, "proxied"], why);
        });
      }
    },
  ).transform((d) => explicit(d, "zone", "zoneId"));

  // --- apphost:tls
  const ACME = ["caddy-acme", "certbot"];
  const Tls = section(
    "tls",
    {
      /** `acm`: the load balancer's ACM certificate (apphost:host.count > 1 on ec2) */
      mode: oneOf(
        ["caddy-acme", "certbot", "cloudflare-origin", "internal", "off", "acm"],
        "how HTTPS certificates are obtained",
      ),
      /** ACME account e-mail (caddy-acme, certbot) */
      email: str("an e-mail address for the ACME account", "ops@example.com", (s) =>
        /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(s),
      ).optional(),
      /** Origin certificate validity in days (cloudflare-origin) */
      originValidityDays: z
        .preprocess(
          (v) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v),
          z
            .number({
              error: says({
                expected: `one of ${ORIGIN_VALIDITY_DAYS.join(", ")} (the validities Cloudflare's Origin CA issues)`,
                example: "365",
              }),
            })
            .refine((n) => (ORIGIN_VALIDITY_DAYS as readonly number[]).includes(n)),
        )
        .default(D.TLS_DEFAULTS.originValidityDays),
      /** Renew the origin certificate through `pulumi up` this many days before expiry. @default 30, a third of short validities */
      renewBeforeDays: int(1, 5474, 30).optional(),
      /** The ACME directory certificates come from (caddy-acme, certbot). @default Let's Encrypt (Caddy: then ZeroSSL) */
      acmeDirectory: str(
        "the https:// URL of an ACME directory",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
        (s) => /^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~%/-]*)?$/.test(s),
      ).optional(),
      /** PEM root the ACME server's own HTTPS certificate chains to (step-ca, Pebble); needs acmeDirectory */
      acmeCaRoot: str(
        "one PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----): the root the ACME server's HTTPS certificate chains to",
        '"$(cat acme-root.pem)"',
        (s) =>
          /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*$/.test(s.trim()),
      ).optional(),
    },
    (t, { add, has, only }) => {
      const validity = t.originValidityDays;
      if (validity !== undefined && t.renewBeforeDays !== undefined && t.renewBeforeDays >= validity) {
        add(
          ["renewBeforeDays"],
          `must be less than apphost:tls.originValidityDays (${validity}), got ${t.renewBeforeDays}; ` +
            `otherwise the certificate is renewed on every run. Lower it, e.g. to ${D.defaultRenewBeforeDays(validity)}`,
        );
      }
      const origin = ["cloudflare-origin"];
      only("mode", {
        email: ACME,
        originValidityDays: origin,
        renewBeforeDays: origin,
        acmeDirectory: ACME,
        acmeCaRoot: ACME,
      });
      if (t.mode && ACME.includes(t.mode) && t.acmeCaRoot !== undefined && !has("acmeDirectory")) {
        add(
          ["acmeCaRoot"],
          "names the root of an ACME server, but apphost:tls.acmeDirectory is not set (certificates would come from Let's Encrypt); " +
            "set it too, e.g. pulumi config set --path 'apphost:tls.acmeDirectory' https://ca.internal:9000/acme/acme/directory, or remove acmeCaRoot",
        );
      }
    },
  ).transform((t) => ({
    ...explicit(t, "email", "acmeDirectory", "acmeCaRoot"),
    renewBeforeDays: t.renewBeforeDays ?? D.defaultRenewBeforeDays(t.originValidityDays),
  }));

  // --- apphost:proxy
  const Proxy = section(
    "proxy",
    {
      kind: oneOf(["caddy", "nginx"]).default(D.PROXY_DEFAULTS.kind),
      /** Maximum request body, nginx syntax */
      maxBodySize: str('a size in nginx syntax like "25m" (digits, then k, m or g)', "25m", (s) =>
        /^\d+[kmg]?$/i.test(s),
      ).default(D.PROXY_DEFAULTS.maxBodySize),
      /** @default true when TLS is on (D.defaultHsts) */
      hsts: flag(D.defaultHsts(String(isObject(p.raw.tls) ? p.raw.tls.mode : "off"))).optional(),
      /** gzip/zstd responses */
      compression: bool(D.PROXY_DEFAULTS.compression),
      httpPort: num(1, 65535, D.PROXY_DEFAULTS.httpPort),
      httpsPort: num(1, 65535, D.PROXY_DEFAULTS.httpsPort),
    },
    (x, { add, has }) => {
      if (x.httpPort !== undefined && x.httpPort === x.httpsPort) {
        add(
          ["httpsPort"],
          `must differ from apphost:proxy.httpPort (both are ${x.httpPort}); pick another port`,
        );
      }
      if (x.hsts === true && has("hsts") && raw("tls").mode === "off") {
        add(
          ["hsts"],
          "HSTS tells browsers to insist on HTTPS, but apphost:tls.mode is off; remove it or turn TLS on",
        );
      }
    },
  );

  // --- apphost:app
  const files = ctx.appFiles;
  const detected = files ? detectRuntime(files) : undefined;
  const runtimeKey =
    detected && "runtime" in detected
      ? oneOf(["python", "node"]).default(detected.runtime)
      : oneOf(["python", "node"], `how dependencies are installed${detected ? `; ${detected.why}` : ""}`);
  const runtime =
    typeof raw("app").runtime === "string" ? raw("app").runtime : (detected as { runtime?: string })?.runtime;
  // A Node app's example is its package.json's start script (what Heroku runs without a Procfile), when it can be
  // written between double quotes as it is; else the file its `main` names.
  const start = runtime === "node" ? files?.node?.scripts?.start : undefined;
  const startUsable = start !== undefined && /^[^"$`\\\n]+$/.test(start);
  const main = runtime === "node" && start === undefined ? files?.node?.main : undefined;
  // A Python app's example serves the application its files make (webapp.ts: Django's WSGI module, a Flask or
  // FastAPI app), when one is found. Single quotes: a shell would expand $PORT inside double ones.
  const pyWeb = runtime === "python" ? files?.pythonWeb : undefined;
  const webCommand =
    runtime === "node"
      ? `"${startUsable ? start : `node ${main ?? "server.js"}`}"`
      : `'${pyWeb ? pythonWebCommand(pyWeb) : "gunicorn app:app --bind 127.0.0.1:$PORT"}'`;
  const serverGroups = pyWeb && files ? groupsAlone(files, raw("app"), pyWeb.server) : [];
  // apphost:app.extraRequirements' package names (`gunicorn` of "gunicorn==23.0.0"): a server named there is installed.
  const extras = raw("app").extraRequirements;
  const extraNames = (Array.isArray(extras) ? (extras as unknown[]) : []).flatMap(
    (r) => requirementPackage(r) ?? [],
  );
  const listed = (names: string[]) => names.map((g) => `"${g}"`).join(" or ");
  const startSays = startUsable
    ? ` (package.json's start script runs ${start}; the web process must listen on $PORT)`
    : main
      ? ` (package.json has no start script, and its main is ${main}; the web process must listen on $PORT)`
      : pyWeb
        ? ` (${pyWeb.found} ${pyWeb.server} serves${
            serverGroups.length
              ? `; pyproject.toml lists ${pyWeb.server} only in ${listed(serverGroups)}, which the install leaves out: ` +
                `add it to the main dependencies, or ${listed(serverGroups)} to apphost:app.dependencyGroups`
              : pyWeb.listed === false && !extraNames.includes(pyWeb.server)
                ? `; the app's dependencies do not name ${pyWeb.server}: add it to them, or to ` +
                  "apphost:app.extraRequirements (a server the app's own image installs)"
                : ""
          })`
        : "";
  const process = z.preprocess(
    // `web: gunicorn app:app` is shorthand for {command: ..., kind: web}, like a Procfile line.
    (v) => (typeof v === "string" ? { command: v } : v),
    obj(
      {
        /** Run inside the release directory, with the venv/node_modules on PATH */
        command: str(`the command to run, e.g. ${webCommand}`, webCommand),
        /** `web` receives HTTP on $PORT (two alternating instances); `worker` does not. @default web for `web` */
        kind: oneOf(["web", "worker"]).optional(),
        /**
         * Several app hosts: `all` runs the process on each, `first` on the first app host alone, for a worker
         * that must run once per stack (a scheduler such as celery beat, a sender of alerts). @default all
         */
        hosts: oneOf(
          ["all", "first"],
          "where the process runs when the stack has several app hosts",
        ).optional(),
      },
      {
        type: (iss) =>
          `expected {command, kind} or a command string, got ${show(iss.input)}; write e.g. {command: "python worker.py", kind: worker}`,
      },
    ),
  );
  const processes = units("process", process, {
    expected: "a map of process name to {command, kind}",
    example: webCommand,
    why: `what runs on the host; ${files ? `${files.dir} has` : "the app has"} no Procfile to take it from${startSays}`,
    hint: ".web.command",
    todo: "write e.g. processes: {web: {command: ..., kind: web}}",
  })
    .refine(
      (m) => Object.keys(m).length > 0,
      "expected at least one process, got an object; add the web process, e.g. web: {command: ..., kind: web}",
    )
    .transform((m, c) => {
      const out = Object.entries(m).map(([name, x]) => ({
        name,
        command: x.command,
        kind: x.kind ?? D.defaultProcessKind(name),
        // Kept only when it says something: every process runs on every app host unless it says first.
        ...(x.hosts === "first" ? { hosts: "first" as const } : {}),
      }));
      for (const x of out.filter((x) => x.kind === "web")) {
        const problem = webPortProblem(x.command);
        if (problem)
          c.addIssue({ code: "custom", input: x.command, path: [x.name, "command"], message: problem });
        if (x.hosts === "first")
          c.addIssue({
            code: "custom",
            input: x.hosts,
            path: [x.name, "hosts"],
            message:
              'expected "all" for the web process: the balancer sends requests to every app host, and each serves them; ' +
              "hosts: first is for a worker that must run once per stack; remove it here",
          });
      }
      const web = out.filter((x) => x.kind === "web").map((x) => x.name);
      if (web.length !== 1) {
        c.addIssue({
          code: "custom",
          input: m,
          message:
            `expected exactly one process of kind "web" (it receives HTTP on $PORT), got ${web.length === 0 ? "none" : `${web.length} (${web.join(", ")})`}; ` +
            (web.length === 0
              ? "set kind: web on the HTTP process"
              : "keep kind: web on one of them and make the others workers"),
        });
      }
      return out;
    });
  const calendarExamples = CALENDAR_EXAMPLES.map((e) => `"${e}"`).join(", ");
  const schedule = obj(
    {
      /** Run in the live release, like a worker (same PATH, env file, user and sandbox) */
      command: str(
        "one line of shell, run in the live release with the app's environment",
        '"flask purge-sessions"',
        (s) => !/[\n\r\0]/.test(s),
      ),
      onCalendar: str(
        `a systemd OnCalendar expression (man systemd.time), e.g. ${calendarExamples}`,
        "hourly",
      ).refine((s) => s.trim() === "" || calendarProblem(s) === undefined, {
        error: (iss) =>
          `${show(iss.input)} is not a systemd OnCalendar expression: ${calendarProblem(String(iss.input))}; ` +
          `write e.g. ${calendarExamples} (check one with: systemd-analyze calendar '<expression>')`,
      }),
      /** The run is stopped (and fails) after this many seconds */
      timeoutSeconds: num(1, 7 * 24 * 3600, D.SCHEDULE_DEFAULTS.timeoutSeconds, 600),
    },
    {
      type: (iss) =>
        `expected {command, onCalendar, timeoutSeconds}, got ${show(iss.input)}; write e.g. {command: "flask purge-sessions", onCalendar: hourly}`,
    },
  );
  const appName = (why?: string) =>
    str("lowercase letters, digits and dashes, starting with a letter", "shop", isName, why);
  // A Node app's install (its lock: npm, Yarn or pnpm) and an npm lock's workspace members, with the links a release
  // cannot carry: read once, for the check and the result.
  const rawRequirements = raw("app").requirements;
  const node = files?.node
    ? detectNodeDeps(files.node, typeof rawRequirements === "string" ? rawRequirements : undefined, files.dir)
    : undefined;
  const nodeDeps = node && "deps" in node ? node.deps : undefined;
  // npm's members come from its lock's links; Yarn's (1 and 2+) from package.json's workspaces, which it links the
  // same way.
  const npm =
    nodeDeps?.manager === "npm"
      ? npmWorkspaces(files?.node?.locks[nodeDeps.lock])
      : nodeDeps?.manager === "yarn" && files?.node?.workspaces === "package.json"
        ? yarnWorkspaces(files.node)
        : undefined;
  const pythonDeps = (requirements: string | undefined) =>
    files ? detectPythonDeps(files.python, requirements) : undefined;
  // The groups and extras the app's pyproject.toml declares for the manager its files name (apphost:app.dependencyGroups).
  const declared = (() => {
    try {
      const deps = files && detectPythonDeps(files.python);
      return deps && offeredGroups(deps.manager, files.python["pyproject.toml"]);
    } catch {
      return undefined;
    }
  })();
  const App = section(
    "app",
    {
      /** Short name used in unit, user, path and proxy names. @default the Pulumi project name */
      name: isName(ctx.project)
        ? appName().default(ctx.project)
        : appName(`the default, the project name "${ctx.project}", cannot name a Linux user`),
      /** The app's directory: relative to the project, or absolute. The artifact is built from it. */
      source: str(
        'a directory: relative to the project ("app", "../shop" for an app in its own repository) or absolute',
        "app",
        isPath,
        "the app to deploy",
      ),
      excludes: list('".git", "node_modules"', (pattern) => {
        try {
          compileExcludes([pattern]);
          return undefined;
        } catch (e) {
          return `${(e as Error).message.replace(/^apphost:app\.excludes: /, "")}; fix or remove the pattern`;
        }
      }).default(() => [...D.APP_DEFAULTS.excludes]),
      /** @default detected from the app directory's files (detectRuntime) */
      runtime: runtimeKey,
      /** pip requirements file that overrides detection, or the lock whose manager installs (Pipfile.lock, pdm.lock) (python); the node lock file, which says who installs (npm, Yarn 1 or 2+, pnpm). @default python: detected; node: the lock the app has */
      requirements: str(
        "a file path relative to apphost:app.source",
        "requirements.txt",
        isRelativePath,
      ).optional(),
      /** The host's python3 (`system`) or a Python uv installs to match the app's requirement (`managed`) */
      python: oneOf(["system", "managed"]).default(D.APP_DEFAULTS.python),
      /** pyproject.toml's dependency groups or extras installed besides the main dependencies (uv, Poetry) */
      dependencyGroups: list('"postgres"', (g) =>
        !/^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(g)
          ? `expected a group name like "postgres", got ${show(g)}; fix the item`
          : files && declared && !declared.has(g)
            ? `${show(g)} is no dependency group or extra of ${files.dir}/pyproject.toml (it declares: ${[...declared.keys()].map((d) => `"${d}"`).join(", ") || "none"}); fix or remove the item`
            : undefined,
      ).optional(),
      /**
       * pip requirements installed into the venv after the app's own dependencies (python): a server the app's
       * dependency files do not name, which its own image installs (healthchecks' uWSGI)
       */
      extraRequirements: list(
        '"gunicorn==23.0.0"',
        each(SAFE.requirement.test, SAFE.requirement.what),
      ).optional(),
      healthPath: str(
        'a URL path starting with "/" (letters, digits and ._~/-), like "/healthz"',
        "/healthz",
        isUrlPath,
      ).default(D.APP_DEFAULTS.healthPath),
      /** First of the two web ports (blue = base, green = base+1) */
      basePort: num(1024, 65533, D.APP_DEFAULTS.basePort),
      /** Plain environment for every process */
      env: z
        .record(z.string(), z.unknown(), {
          error: (iss) =>
            `expected an object (a YAML mapping), got ${show(iss.input)}; see docs/config.md for the keys of apphost:app.env`,
        })
        .superRefine((env, c) => {
          for (const [name, value] of Object.entries(env)) {
            const problem = envProblem(name, typeName(value));
            if (problem) c.addIssue({ code: "custom", path: [name], input: value, message: problem });
          }
        })
        .transform((env) => Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])))
        .default(() => ({})),
      /** Built frontend directory inside the release, served by the proxy as static files */
      staticDir: str(
        'a directory relative to the release (letters, digits and ._-), like "frontend/dist"',
        "frontend/dist",
        (s) => REL_DIR.test(s) && isRelativePath(s),
      ).optional(),
      /** Release directories the app writes at run time (uploads), kept across releases in shared/data/linked */
      sharedDirs: list('"media"', sharedDirProblem)
        .transform((dirs) => dirs.map(withoutSlash))
        .default(() => [...D.APP_DEFAULTS.sharedDirs]),
      /** Release files where the app reads a dotenv file (Starlette's `Config(".env")`), each a link to the stack's env file */
      dotenv: list('"src/.env"', dotenvProblem).default(() => [...D.APP_DEFAULTS.dotenv]),
      /** URL prefixes the proxy serves from a shared directory (`/media/`: `mediafiles`), as it serves staticDir */
      sharedUrls: z
        .record(z.string(), z.unknown(), {
          error: says({
            expected:
              'an object of URL prefixes and the shared directories they serve, like {"/media/": "media"}',
            todo: (key) => `e.g. pulumi config set --path '${key}["/media/"]' media`,
          }),
        })
        .superRefine((urls, c) => {
          for (const [url, dir] of Object.entries(urls)) {
            if (!isUrlPrefix(url))
              c.addIssue({
                code: "custom",
                path: [url],
                input: url,
                message: `expected a URL prefix starting and ending with "/" (not "/" alone), like "/media/", as the key; rename it`,
              });
            else if (typeof dir !== "string" || dir.trim() === "")
              c.addIssue({
                code: "custom",
                path: [url],
                input: dir,
                message: `expected a directory listed in apphost:app.sharedDirs, like "media", got ${show(dir)}; fix the value`,
              });
          }
        })
        .transform((urls) =>
          Object.fromEntries(Object.entries(urls).map(([u, d]) => [u, withoutSlash(String(d))])),
        )
        .default(() => ({ ...D.APP_DEFAULTS.sharedUrls })),
      staticPrefix: str(
        'a URL prefix starting and ending with "/" (not "/" alone), like "/static/"',
        "/static/",
        isUrlPrefix,
      ).default(D.APP_DEFAULTS.staticPrefix),
      /** Frontend build command run at install (`npm ci && npm run build`) */
      build: command('"npm ci && npm run build"').optional(),
      /** A Procfile's problems are reported on their own; its processes are then left out. */
      processes: p.procfile?.problems.length ? processes.catch([]) : processes,
      /** Jobs run by systemd timers in the live release */
      schedules: units("job", schedule, {
        expected: "a map of job name to {command, onCalendar, timeoutSeconds}",
        todo: 'write e.g. schedules: {cleanup: {command: "flask purge-sessions", onCalendar: hourly}}',
      })
        .transform((m) => Object.entries(m).map(([name, s]) => ({ name, ...s })))
        .default(() => []),
      /** The proxy answers everything but the health path with the maintenance page (503, Retry-After) */
      maintenance: bool(D.APP_DEFAULTS.maintenance),
      /** HTML file (relative to the project) served as the maintenance page. @default apphost's own page */
      maintenancePage: str(
        "an HTML file, relative to the project or absolute",
        "maintenance.html",
        isPath,
      ).optional(),
    },
    (a, { add, has }) => {
      for (const problem of p.procfile?.problems ?? []) add(["processes"], problem);
      const toolsOnly = files?.toolsOnlyPyproject;
      if (a.runtime === "python" && toolsOnly && !has("requirements")) {
        // `pip install .` of tool settings: setuptools would guess a package from the directory, and fail on most.
        const found = toolsOnly.requirements;
        add(
          ["requirements"],
          `${files.dir}'s only dependency file is a pyproject.toml that declares no project (no [project], ` +
            `[build-system] or [tool.poetry]${toolsOnly.tools.length ? `; only tool settings: ${toolsOnly.tools.join(", ")}` : ""}), ` +
            `so nothing names the packages to install; ` +
            (found.length
              ? `name the file that lists them (${files.dir} has ${found.join(", ")}): ${setHint("apphost:app.requirements", found[0])}`
              : `list them in a requirements.txt, or declare them in pyproject.toml's [project] dependencies`),
        );
      } else if (a.runtime === "python" && files && !(has("requirements") && a.requirements === undefined)) {
        try {
          pythonDeps(a.requirements);
        } catch (e) {
          if (!(e instanceof PythonDepsError)) throw e;
          add(["requirements"], `${files.dir}: ${e.message}`);
        }
      } else if (a.runtime === "node" && has("python")) {
        // (an undecided runtime is reported on its own; python then says which it is)
        add(["python"], "only used with apphost:app.runtime python; remove it");
      }
      if (a.runtime === "node" && a.extraRequirements?.length) {
        add(
          ["extraRequirements"],
          "only used with apphost:app.runtime python (a Node app's are its package.json's); remove it",
        );
      }
      if (a.runtime === "node" && a.dependencyGroups?.length) {
        add(["dependencyGroups"], "only used with apphost:app.runtime python; remove it");
      } else if (a.runtime === "python" && files && has("dependencyGroups")) {
        const refused = dependencyGroupsRefused(files, a.requirements);
        if (refused) add(["dependencyGroups"], refused);
      }
      if (a.runtime === "node" && files && !files.packageJson) {
        add(
          ["source"],
          `${files.dir} has no package.json, which the install of a Node app (apphost:app.runtime) reads; point apphost:app.source at the app's directory, or set the runtime the app has`,
        );
      } else if (
        a.runtime === "node" &&
        node &&
        "problem" in node &&
        !(has("requirements") && a.requirements === undefined)
      ) {
        add(["requirements"], node.problem);
      }
      if (a.runtime === "node" && files && npm) {
        for (const problem of npm.problems) add(["source"], `${files.dir}: ${problem}`);
      }
      // A web process that starts a file the app lacks, which its build script makes (nest build's dist/main):
      // Heroku runs that script before it starts the app; apphost runs a build only when told.
      const entry = a.runtime === "node" && a.build === undefined ? files?.webEntryMissing : undefined;
      const builds = ["heroku-postbuild", "build"].find((b) => files?.node?.scripts?.[b] !== undefined);
      if (entry && builds && files) {
        add(
          ["build"],
          (entry.from === "start"
            ? "package.json's start script, the web command offered for apphost:app.processes,"
            : `the web process (${entry.from === "procfile" ? "the Procfile's web line" : "apphost:app.processes.web"})`) +
            ` runs node ${entry.file}` +
            `${entry.script && !(entry.from === "start" && entry.script === "start") ? ` (package.json's "${entry.script}" script)` : ""}, which ` +
            `${entry.excluded ? `apphost:app.excludes leaves out of the upload (${files.dir} has it)` : `${files.dir} does not have`}: ` +
            `package.json's "${builds}" script makes it (${files.node?.scripts?.[builds]}); Heroku runs that script by ` +
            `itself, apphost only as apphost:app.build: ${setHint("apphost:app.build", `'npm run ${builds}'`)}`,
        );
      }
      // hostLayout() derives the Linux user `<app>-<stack>` from these (components/paths.ts).
      if (!isName(ctx.stack)) {
        add(
          "(stack name)",
          `"${ctx.stack}" must be lowercase letters, digits and dashes, starting with a letter, because it names the Linux user and paths on the host; ` +
            "create the stack under such a name (pulumi stack rename)",
        );
      } else if (a.name && `${a.name}-${ctx.stack}`.length > 31) {
        const shorter = a.name.slice(0, Math.max(1, 30 - ctx.stack.length)).replace(/-+$/, "");
        add(
          ["name"],
          `"${a.name}-${ctx.stack}" is ${a.name.length + ctx.stack.length + 1} characters; it names the Linux user on the host, ` +
            `which is limited to 31; ${setHint("apphost:app.name", shorter)}`,
        );
      }
      const dirs = a.sharedDirs ?? [];
      dirs.forEach((d, i) => {
        const other = dirs.findIndex((o, j) => j !== i && (o === d ? j < i : `${d}/`.startsWith(`${o}/`)));
        if (other >= 0)
          add(
            ["sharedDirs", i],
            `${show(d)} is ${dirs[other] === d ? "listed in" : "inside"} apphost:app.sharedDirs[${other}] already; list each directory once`,
          );
      });
      const statics = a.staticDir && withoutSlash(a.staticDir);
      const dotenvs = a.dotenv ?? [];
      dotenvs.forEach((f, i) => {
        const where = (d: string) => f === d || f.startsWith(`${d}/`);
        const again = dotenvs.indexOf(f);
        const shared = dirs.findIndex(where);
        if (again < i)
          add(
            ["dotenv", i],
            `${show(f)} is listed in apphost:app.dotenv[${again}] already; list each file once`,
          );
        else if (shared >= 0)
          add(
            ["dotenv", i],
            `${show(f)} is inside apphost:app.sharedDirs[${shared}], which every release shares; list a file of the release itself`,
          );
        else if (statics && where(statics))
          add(
            ["dotenv", i],
            `${show(f)} is inside apphost:app.staticDir (${show(a.staticDir)}), which the proxy serves to anyone; list a file outside it`,
          );
      });
      const overlap =
        statics && dirs.find((d) => `${statics}/`.startsWith(`${d}/`) || `${d}/`.startsWith(`${statics}/`));
      if (overlap) {
        add(
          ["staticDir"],
          `${show(a.staticDir)} overlaps apphost:app.sharedDirs (${show(overlap)}): the proxy serves staticDir from the release and cannot read shared/data; ` +
            "collect the static files into a release directory of their own (the build runs in each release)" +
            // The same directory: files the app writes (uploads), which sharedUrls serves.
            (overlap === statics
              ? `; for files the app writes there (uploads), serve the shared directory with apphost:app.sharedUrls instead: ` +
                `pulumi config set --path 'apphost:app.sharedUrls["${has("staticPrefix") && typeof a.staticPrefix === "string" ? a.staticPrefix : "/media/"}"]' ${statics}, and remove staticDir`
              : ""),
        );
      }
      if (a.staticDir === undefined && has("staticPrefix")) {
        add(["staticPrefix"], "only used with apphost:app.staticDir; set staticDir or remove it");
      }
      const urls = Object.entries(a.sharedUrls ?? {}).filter(([u]) => isUrlPrefix(u));
      const inside = (u: string, o: string) => u.startsWith(o);
      for (const [url, dir] of urls) {
        const key = ["sharedUrls", url];
        if (a.sharedDirs && !a.sharedDirs.includes(dir))
          add(
            key,
            `${show(dir)} is not in apphost:app.sharedDirs; list it there too (the proxy serves a directory the releases share, ` +
              "kept in shared/data/linked), or serve a directory the build writes with apphost:app.staticDir",
          );
        const other = urls.find(([o]) => o !== url && inside(url, o));
        if (other)
          add(
            key,
            `${show(url)} is inside apphost:app.sharedUrls["${other[0]}"]; give each a prefix of its own`,
          );
        const prefix =
          a.staticDir !== undefined ? (a.staticPrefix ?? D.APP_DEFAULTS.staticPrefix) : undefined;
        if (prefix && (inside(url, prefix) || inside(prefix, url)))
          add(
            key,
            `${show(url)} overlaps apphost:app.staticPrefix (${show(prefix)}); give the shared directory a prefix of its own, like "/media/"`,
          );
        if (a.healthPath && inside(a.healthPath, url))
          add(
            key,
            `apphost:app.healthPath (${show(a.healthPath)}) is under ${show(url)}, which the proxy answers from disk; give the uploads another prefix`,
          );
      }
    },
  ).transform(({ python, ...a }) => {
    // python is optional in the type (hand-built configs in tests leave it out); the parser always sets it.
    const out: typeof a & {
      python?: typeof python;
      pythonDeps?: PythonDeps;
      npmWorkspaces?: NpmWorkspace[];
      nodeDeps?: NodeDeps;
      buildToolVersions?: Partial<Record<PinnedTool, string>>;
    } = {
      ...explicit(
        a,
        "requirements",
        "staticDir",
        "build",
        "maintenancePage",
        "dependencyGroups",
        "extraRequirements",
      ),
      python,
    };
    if (a.runtime === "node") out.requirements ??= nodeDeps?.lock ?? D.defaultRequirements("node");
    if (a.runtime === "node" && nodeDeps) out.nodeDeps = nodeDeps;
    // A Python app's build (a frontend at its root, or where the build starts) runs the Yarn or pnpm its package.json pins.
    const pinned =
      a.runtime === "python" && a.build
        ? pinnedBuildTool(files?.buildPackageManager ?? files?.node?.packageManager)
        : {};
    if (Object.keys(pinned).length > 0) out.buildToolVersions = pinned;
    if (a.runtime === "python" && files)
      out.pythonDeps = withGroups(pythonDeps(a.requirements), files, a.dependencyGroups);
    if (a.runtime === "node" && npm) out.npmWorkspaces = npm.members;
    return out;
  });

  // --- apphost:database
  const pool = obj({
    /** Connections kept open per process (DB_POOL_SIZE) */
    size: num(1, 1000, D.DATABASE_POOL_DEFAULTS.size),
    /** Extra connections allowed under load (DB_MAX_OVERFLOW) */
    maxOverflow: num(0, 1000, D.DATABASE_POOL_DEFAULTS.maxOverflow),
    /** Seconds to wait for a free connection (DB_POOL_TIMEOUT) */
    timeoutSeconds: num(1, 3600, D.DATABASE_POOL_DEFAULTS.timeoutSeconds),
    /** Seconds after which a connection is replaced (DB_POOL_RECYCLE) */
    recycleSeconds: num(-1, 86400, D.DATABASE_POOL_DEFAULTS.recycleSeconds),
  });
  const rds = obj({
    instanceClass: str('an RDS instance class like "db.t4g.micro"', "db.t4g.micro", (s) =>
      /^db\.[a-z0-9]+\.[a-z0-9]+$/.test(s),
    ).default(D.RDS_DEFAULTS.instanceClass),
    allocatedStorageGb: num(20, 65536, D.RDS_DEFAULTS.allocatedStorageGb),
    // pg_dump refuses a server newer than itself: the host's OS decides how new (validate.ts, HOST_OS_PACKAGES).
    engineVersion: str('Postgres "15", "16" or "17", or a minor version of one like "17.2"', '"15"', (s) =>
      /^1[5-7](\.\d+)?$/.test(s),
    ).default(D.RDS_DEFAULTS.engineVersion),
    /** Days of automated backups */
    backupRetentionDays: num(1, 35, D.defaultRdsBackupRetentionDays(ctx.stack)),
    /** A standby in a second availability zone */
    multiAz: bool(D.RDS_DEFAULTS.multiAz),
    /** The DB subnet group (two availability zones at least); needed with apphost:host.subnetId. @default the default VPC's */
    subnetIds: subnetIds()
      .refine(
        (ids) => ids.length >= 2,
        "RDS needs subnets in two availability zones at least; list two or more",
      )
      .optional(),
  });
  const migrateOf = (kind: string | undefined, migrate: string | undefined) =>
    migrate ?? (kind !== "none" && p.procfile?.release ? p.procfile.release : D.DATABASE_DEFAULTS.migrate);
  const Database = section(
    "database",
    {
      kind: oneOf(["sqlite", "postgres", "rds", "external", "none"]).default(D.DATABASE_DEFAULTS.kind),
      /** SQLite file name inside shared/data */
      sqliteFile: str(
        'a file name like "app.db" (no directories; it lives in shared/data)',
        "app.db",
        (s) => /^[A-Za-z0-9._-]+$/.test(s) && s !== "." && s !== "..",
      ).default(D.DATABASE_DEFAULTS.sqliteFile),
      /** Postgres database and role name. @default "<app>_<stack>" */
      postgresName: str(
        "a Postgres identifier (lowercase letters, digits and _, up to 63 characters)",
        "shop_prod",
        (s) => /^[a-z_][a-z0-9_]{0,62}$/.test(s),
      ).optional(),
      /**
       * The scheme of DATABASE_URL and `${database.url}`: a driver for SQLAlchemy (postgresql+asyncpg, sqlite+aiosqlite),
       * Heroku's `postgres` for an app that tests for it, or `file` for a SQLite file libsql opens (file:///srv/...).
       * @default "postgresql", or "sqlite" for kind sqlite
       */
      urlScheme: str(
        'a URL scheme like "postgresql+asyncpg" (postgresql or sqlite, then +driver; postgres, as Heroku writes it; or file, for SQLite as libsql reads it)',
        "postgresql+asyncpg",
        (s) => /^(postgresql|sqlite)(\+[a-z][a-z0-9_]*)?$|^postgres$|^file$/.test(s),
      ).optional(),
      /**
       * Migration command run inside the new release; `true` (the shell's, or the boolean `pulumi config set --path`
       * makes of it) for an app that migrates itself. @default the Procfile's release:, else none
       */
      migrate: z.preprocess((v) => (v === true ? "true" : v), command('"alembic upgrade head"')).optional(),
      /** Command printing the current migration revision. @default from migrate (D.defaultRevision) */
      revision: command('"alembic current"').optional(),
      /**
       * postgres: extensions the host's postgres superuser creates in the app's database before any release (the
       * app's role is no superuser: BookWyrm's migration creates bloom)
       */
      extensions: list(
        '"bloom", "pg_trgm"',
        each(
          (e) => SAFE.pgExtension.test(e),
          'an extension name like "pg_trgm" (lowercase letters, digits, _ and -)',
        ),
      ).optional(),
      /** postgres, rds, external: the app's connection pool (DB_POOL_SIZE, ...) */
      pool: pool.prefault({}),
      /** rds: the managed instance; present exactly when kind is rds */
      rds: rds.prefault({}),
    },
    (d, { add, has, only }) => {
      only("kind", { rds: ["rds"], pool: ["postgres", "rds", "external"], sqliteFile: ["sqlite"] });
      only(
        "kind",
        { extensions: ["postgres"] },
        d.kind === "rds" || d.kind === "external"
          ? ": on a database apphost does not run, its admin role creates them, as RDS' master user can"
          : "",
      );
      only(
        "kind",
        { postgresName: ["postgres", "rds"] },
        d.kind === "external" ? ": the name is in apphost:databaseUrl" : "",
      );
      for (const key of d.kind === "none" ? ["migrate", "revision"].filter(has) : []) {
        add([key], "there is no database to migrate when apphost:database.kind is none; remove it");
      }
      if (d.kind === "none" && has("urlScheme")) {
        add(["urlScheme"], "there is no DATABASE_URL when apphost:database.kind is none; remove it");
      } else if (d.kind && d.urlScheme) {
        const base = D.databaseUrlScheme(d.kind);
        const other = base === "postgresql" ? "postgres" : "file";
        if (d.urlScheme.split("+")[0] !== base && d.urlScheme !== other) {
          add(
            ["urlScheme"],
            `expected ${base}, ${other} or ${base}+<driver> for apphost:database.kind ${d.kind}, got ${show(d.urlScheme)}; ` +
              setHint("apphost:database.urlScheme", D.databaseUrlSchemeExample(d.kind)),
          );
        }
      }
      if (d.revision && !migrateOf(d.kind, d.migrate)) {
        add(
          ["revision"],
          "reports the revision apphost:database.migrate reaches, but migrate is not set; set migrate or remove it",
        );
      }
    },
  ).transform(({ rds: managed, ...d }) => {
    const migrate = migrateOf(d.kind, d.migrate);
    const out: Omit<typeof d, "revision"> & { revision: string; rds?: typeof managed } = {
      ...d,
      ...(d.kind !== "none" ? { urlScheme: d.urlScheme ?? D.databaseUrlScheme(d.kind) } : {}),
      migrate,
      revision: d.revision ?? D.defaultRevision(migrate, ctx.appFiles?.node?.scripts),
    };
    if (d.kind === "rds") out.rds = managed;
    return out;
  });

  // --- apphost:backups, apphost:releases
  const Backups = section(
    "backups",
    {
      // A full OnCalendar check needs systemd-analyze on the host; this catches shell metacharacters and typos of the shorthands.
      schedule: str('a systemd OnCalendar expression like "daily" or "*-*-* 03:30:00"', "daily", (s) =>
        /^[A-Za-z0-9*:,./~ -]+$/.test(s),
      ).default(D.BACKUPS_DEFAULTS.schedule),
      // Two at least: the live release's pre-migration backup and the newest one.
      keep: num(2, 1000, D.defaultBackupsKeep(ctx.stack)),
      /** Copy each backup to an S3 bucket the program creates, with the instance's role (ec2 on Debian) */
      s3: bool(D.BACKUPS_DEFAULTS.s3),
      // Up to ten years; S3 lifecycle rules count whole days from 1.
      s3ExpireDays: num(1, 3650, D.defaultBackupsS3ExpireDays(ctx.stack)),
    },
    (b, { add, has }) => {
      if (b.s3 === false && has("s3ExpireDays")) {
        add(
          ["s3ExpireDays"],
          "only used when apphost:backups.s3 is true (no bucket is created otherwise); remove it",
        );
      }
    },
  );
  const Releases = section("releases", {
    // Two at least: the live release and the one a rollback goes back to.
    keep: num(2, 100, D.RELEASES_DEFAULTS.keep),
    /** Serve this release id instead of the newest (rollback on purpose) */
    rollbackTo: str(
      "a release id (YYYYMMDDHHMMSS-<8 hex>) from `npm run releases`",
      "20250102120000-1a2b3c4d",
      isReleaseId,
    ).optional(),
    /** Seconds the health gate waits for the new instance */
    healthTimeoutSeconds: num(1, 3600, D.RELEASES_DEFAULTS.healthTimeoutSeconds),
    /** Seconds the old instance drains after the switch */
    drainSeconds: num(0, 600, D.RELEASES_DEFAULTS.drainSeconds),
    /** Deploy lock expiry in minutes */
    lockTtlMinutes: num(1, 1440, D.RELEASES_DEFAULTS.lockTtlMinutes),
    /** Free disk space required by the check phase, MiB */
    minFreeMb: num(0, 1048576, D.RELEASES_DEFAULTS.minFreeMb),
    /** Several app hosts: how many release at once, out of the balancer together */
    batchSize: num(1, 100, D.RELEASES_DEFAULTS.batchSize),
  }).transform((r) => explicit(r, "rollbackTo"));

  // --- apphost:lb: the balancer host in front of existing app hosts
  const Lb = section(
    "lb",
    {
      address: address("203.0.113.20", "the balancer host apphost configures over SSH"),
      /** SSH login user with sudo rights. @default apphost:host.user */
      user: user("a login user name with sudo rights", "deploy").optional(),
      port: num(1, 65535, D.LB_DEFAULTS.port),
      hostKey: hostKey("the balancer's", "203.0.113.20").optional(),
      /** The address the app hosts see the balancer's requests come from. @default address, when it is an IPv4 address */
      privateAddress: str(
        "the IPv4 address the app hosts see the balancer's requests come from",
        "10.0.0.20",
        isIPv4,
      ).optional(),
      /** Seconds between the balancer's health checks of each app host */
      healthIntervalSeconds: num(1, 300, D.LB_DEFAULTS.healthIntervalSeconds),
    },
    (l, { add, has }) => {
      if (l.address && !isIPv4(l.address) && !has("privateAddress")) {
        add(
          ["privateAddress"],
          `missing (${show(l.address)} is a name, and the app hosts' proxies admit one address); ` +
            `expected the balancer's IPv4 address as the app hosts see it; ${setHint("apphost:lb.privateAddress", "10.0.0.20")}`,
        );
      }
    },
  );

  return {
    host: Host,
    dns: Dns.prefault({}),
    tls: Tls,
    proxy: Proxy.prefault({}),
    app: App,
    database: Database.prefault({}),
    backups: Backups.prefault({}),
    releases: Releases.prefault({}),
    lb: Lb.optional(),
  };
}
