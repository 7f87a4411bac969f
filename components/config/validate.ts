/**
 * The pure stack-config parser: raw `apphost:<section>` objects in, a fully
 * defaulted `StackConfig` out, or ONE `ConfigError` that lists every problem.
 *
 * Nothing here reads Pulumi config or creates resources, so a bad stack fails
 * before `pulumi up` touches anything, and the rules are tested as a table
 * (test/unit/config.test.ts). Every message names the full key as it appears
 * on the stack (`apphost:dns.zone`, `apphost:dns.hostnames[1].name`), says what
 * was expected and what to do, in the spirit of Kamal's config validation.
 */
import { isIPv4 } from "node:net";
import * as sshpk from "sshpk";
import * as D from "./defaults";
import { isName, isUrlPath } from "../shell";
import { upstreamPort } from "../paths";
import { CALENDAR_EXAMPLES, calendarProblem } from "./calendar";
import { chainedParts, parseProcfile, splitChain } from "./procfile";
import { envReferences, referenceProblem } from "./envrefs";
import { compileExcludes } from "../release/artifact";
import { detectPythonDeps, PythonDepsError, type PythonDeps, type PythonFacts } from "../release/python";
import type {
  AlertsConfig,
  AppConfig,
  BackupsConfig,
  DatabaseConfig,
  RdsConfig,
  DnsConfig,
  Ec2HostConfig,
  ExistingHostConfig,
  HostAddress,
  HostConfig,
  HostnameConfig,
  LbConfig,
  ProcessConfig,
  ProxyConfig,
  ReleasesConfig,
  ScheduleConfig,
  StackConfig,
  TlsConfig,
  ViaConfig,
} from "./types";

// ---------------------------------------------------------------------------
// Public surface

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

/** Top-level keys read outside the pure parser because they hold secrets. */
export const SECRET_KEYS = ["sshPrivateKey", "secretEnv", "jumpPrivateKey", "alerts", "databaseUrl"] as const;

/** Keys of `apphost:alerts` (a secret object). */
export const ALERTS_KEYS = ["webhook"] as const;

/** Keys of each `apphost:app.schedules.<name>`. */
export const SCHEDULE_KEYS = ["command", "onCalendar", "timeoutSeconds"] as const;

/** Every key each section accepts; docs and Pulumi.yaml are tested against this list. */
export const KNOWN_KEYS: Record<Section, readonly string[]> = {
  host: [
    "kind",
    "user",
    "port",
    "swapMb",
    "instanceType",
    "os",
    "rootVolumeGb",
    "sshPublicKey",
    "sshAllowCidrs",
    "allowSshFromAnywhere",
    "elasticIp",
    "subnetId",
    "count",
    "subnetIds",
    "address",
    "addresses",
    "hostKey",
    "via",
  ],
  dns: ["provider", "zone", "zoneId", "hostnames", "ipv6"],
  tls: ["mode", "email", "originValidityDays", "renewBeforeDays", "acmeDirectory", "acmeCaRoot"],
  proxy: ["kind", "maxBodySize", "hsts", "compression", "httpPort", "httpsPort"],
  app: [
    "name",
    "source",
    "excludes",
    "runtime",
    "requirements",
    "python",
    "healthPath",
    "basePort",
    "env",
    "staticDir",
    "staticPrefix",
    "build",
    "processes",
    "schedules",
    "maintenance",
    "maintenancePage",
  ],
  database: ["kind", "sqliteFile", "postgresName", "migrate", "revision", "pool", "rds"],
  backups: ["schedule", "keep", "s3", "s3ExpireDays"],
  releases: [
    "keep",
    "rollbackTo",
    "healthTimeoutSeconds",
    "drainSeconds",
    "lockTtlMinutes",
    "minFreeMb",
    "batchSize",
  ],
  lb: ["address", "user", "port", "hostKey", "privateAddress", "healthIntervalSeconds"],
};

/** Keys of `apphost:database.rds`. */
export const RDS_KEYS = [
  "instanceClass",
  "allocatedStorageGb",
  "engineVersion",
  "backupRetentionDays",
  "multiAz",
  "subnetIds",
] as const;

/** Keys of `apphost:database.pool`. */
/** The keys of `apphost:host.via.jump`. */
export const JUMP_KEYS = ["address", "port", "user", "hostKey"] as const;

export const POOL_KEYS = ["size", "maxOverflow", "timeoutSeconds", "recycleSeconds"] as const;

/** Validity periods Cloudflare's Origin CA issues, in days. */
export const ORIGIN_VALIDITY_DAYS = [7, 30, 90, 365, 730, 1095, 5475] as const;

/** What `index.ts` learned about the private key without handing the key to the parser. */
export interface PrivateKeyInfo {
  format: "openssh" | "pem" | "unknown";
  /** Protected by a passphrase: unusable for unattended deploys */
  encrypted: boolean;
  /** The public half as an OpenSSH line (`ssh-ed25519 AAAA...`), when it could be derived */
  publicKey?: string;
}

/**
 * Facts about the secret keys. The values themselves never enter the parser,
 * so they can never end up in an error message.
 */
export interface SecretFacts {
  /** `apphost:sshPrivateKey` is set */
  sshPrivateKey?: boolean;
  sshPrivateKeyInfo?: PrivateKeyInfo;
  /**
   * Shape of `apphost:secretEnv`: variable name -> `typeof` its value
   * (`"array"` and `"null"` spelled out), or the type of the whole value when it
   * is not an object. Absent when the key is not set.
   */
  secretEnvTypes?: Record<string, string> | string;
  /** Names of `apphost:secretEnv` variables that are dev-only reset switches set on (DEV_RESET_SWITCHES) */
  secretEnvResetsOn?: string[];
  /** `apphost:jumpPrivateKey` (the jump host's key, when it is not the deploy key): what it is, if set */
  jumpPrivateKeyInfo?: PrivateKeyInfo;
  /** `apphost:alerts`, when set: its shape, never the URL */
  alertsInfo?: AlertsInfo;
  /** `apphost:databaseUrl` (database.kind external), when set: its shape, never the URL */
  databaseUrlInfo?: DatabaseUrlInfo;
}

/** What the parser learns of `apphost:databaseUrl` without the URL (and its password). */
export interface DatabaseUrlInfo {
  /** `typeof` the value */
  type: string;
  /** postgresql://user:password@host[:port]/database[?params], nothing else */
  isPostgresUrl: boolean;
  /** The host part, when it parsed (an address or name, no secret) */
  host?: string;
  /** Stored as a Pulumi secret */
  secret: boolean;
}

/** Facts about `apphost:databaseUrl`; the URL itself stays outside the parser. */
export function inspectDatabaseUrl(value: unknown, secret: boolean): DatabaseUrlInfo {
  if (typeof value !== "string")
    return { type: Array.isArray(value) ? "array" : typeof value, isPostgresUrl: false, secret };
  const m =
    /^postgres(?:ql)?:\/\/([^:@/\s]+):([^@\s]+)@([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?\/([A-Za-z0-9_$-]+)(\?[A-Za-z0-9_=&.-]*)?$/.exec(
      value.trim(),
    );
  return { type: "string", isPostgresUrl: m !== null, ...(m ? { host: m[3] } : {}), secret };
}

/** What the parser learns of `apphost:alerts` without the webhook URL itself. */
export interface AlertsInfo {
  /** `typeof` the whole value (`"object"` when it is a map) */
  type: string;
  /** Its keys, when it is a map */
  keys: string[];
  /** `typeof` its `webhook` value, when present */
  webhookType?: string;
  /** The webhook is an http(s) URL with a host, and no whitespace or quotes */
  webhookIsUrl?: boolean;
  /** The webhook is plain http to something other than loopback or a private address */
  webhookPlainHttp?: boolean;
  /** The value is stored as a Pulumi secret */
  secret: boolean;
}

export interface ParseContext {
  project: string;
  stack: string;
  secrets: SecretFacts;
  /** Files read from the app directory (apphost:app.source); absent when it could not be read */
  appFiles?: AppFiles;
}

/** What the parser needs from the app directory: the Procfile and the files that decide the Python install. */
export interface AppFiles {
  /** The directory, as resolved, for messages */
  dir: string;
  procfile?: string;
  python: PythonFacts;
}

export interface ConfigIssue {
  /** Full key, e.g. `apphost:dns.hostnames[0].name` */
  path: string;
  /** What was expected and what to do */
  message: string;
}

/** Thrown once, with every problem found; `issues` keeps them for tools and tests. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(stack: string, issues: readonly ConfigIssue[]) {
    super(formatIssues(stack, issues));
    this.name = "ConfigError";
    this.issues = issues;
  }
}

export function formatIssues(stack: string, issues: readonly ConfigIssue[]): string {
  const count = issues.length === 1 ? "1 problem" : `${issues.length} problems`;
  const lines = issues.map((issue, i) => `  ${i + 1}. ${issue.path}: ${issue.message}`);
  return (
    `apphost: ${count} in the configuration of stack "${stack}"; no resources were changed. ` +
    `Fix them in Pulumi.${stack}.yaml or with \`pulumi config set --path\`, then run again:\n` +
    lines.join("\n")
  );
}

/**
 * Validates and normalizes the raw config. `raw` maps section name to the
 * object read from `apphost:<section>`; any other key in it is reported as an
 * unknown top-level key (index.ts passes every `apphost:*` key it finds).
 */
export function parseStackConfig(raw: Record<string, unknown>, ctx: ParseContext): StackConfig {
  const issues = new Issues(ctx.stack);

  for (const key of Object.keys(raw)) {
    if ((SECTIONS as readonly string[]).includes(key) || (SECRET_KEYS as readonly string[]).includes(key)) {
      continue;
    }
    const all = [...SECTIONS, ...SECRET_KEYS];
    const near = closest(key, all);
    issues.add(
      `apphost:${key}`,
      near
        ? `unknown key; did you mean apphost:${near}? Rename or remove it`
        : `unknown key; apphost reads ${all.map((k) => `apphost:${k}`).join(", ")}. Remove it`,
    );
  }

  const host = parseHost(section(issues, raw, "host", true), ctx);
  const dns = parseDns(section(issues, raw, "dns", false));
  const tls = parseTls(section(issues, raw, "tls", true));
  const proxy = parseProxy(section(issues, raw, "proxy", false), tls.mode);
  const app = parseApp(section(issues, raw, "app", true), ctx);
  const database = parseDatabase(
    section(issues, raw, "database", false),
    app.name,
    ctx.stack,
    procfileRelease(raw, ctx),
  );
  const backups = parseBackups(section(issues, raw, "backups", false), ctx.stack);
  const releases = parseReleases(section(issues, raw, "releases", false));
  // Pulumi.yaml's default is {}: an empty object is no balancer.
  const lbAbsent =
    raw.lb === undefined || raw.lb === null || (isObject(raw.lb) && Object.keys(raw.lb).length === 0);
  const lb = lbAbsent ? undefined : parseLb(section(issues, raw, "lb", false), host);

  checkEnvReferences(issues, app, database);
  checkReservedEnv(issues, app, database, ctx.secrets.secretEnvTypes);
  checkSecrets(issues, ctx.secrets, host, app);
  const alerts = checkAlerts(issues, ctx.secrets.alertsInfo);
  checkResetSwitches(issues, ctx, app);
  checkCrossField(issues, { host, dns, tls, proxy, app, database, backups });
  checkHosts(issues, { host, tls, proxy, database, dns, lb }, ctx.secrets.databaseUrlInfo);

  if (issues.list.length > 0) {
    throw new ConfigError(ctx.stack, issues.list);
  }
  // With no issues every required field was read, so the partial objects are complete.
  return {
    project: ctx.project,
    stack: ctx.stack,
    host: host as HostConfig,
    dns: dns as DnsConfig,
    tls: tls as TlsConfig,
    proxy: proxy as ProxyConfig,
    app: app as AppConfig,
    database: database as DatabaseConfig,
    backups: backups as BackupsConfig,
    releases: releases as ReleasesConfig,
    alerts,
    ...(lb ? { lb: lb as LbConfig } : {}),
  };
}

/**
 * `apphost:alerts`: a secret object `{webhook: <https URL>}`. Only facts about
 * it arrive here (AlertsInfo), so the URL (which is itself a credential: anyone
 * holding it can post) never reaches a message.
 */
function checkAlerts(issues: Issues, info: AlertsInfo | undefined): AlertsConfig {
  const key = "apphost:alerts";
  const set = `pulumi config set --secret --path '${key}.webhook' https://hooks.slack.com/services/...`;
  // Pulumi.yaml's default is {}: no webhook, no alerts.
  if (!info || (info.type === "object" && info.keys.length === 0)) return { enabled: false };
  if (info.type !== "object") {
    issues.add(key, `expected an object {webhook: <URL>}, got a ${info.type}; set it with: ${set}`);
    return { enabled: false };
  }
  for (const k of info.keys.filter((k) => !(ALERTS_KEYS as readonly string[]).includes(k))) {
    issues.add(`${key}.${k}`, `unknown key; the keys of ${key} are ${ALERTS_KEYS.join(", ")}. Remove it`);
  }
  if (info.webhookType === undefined) {
    issues.add(`${key}.webhook`, `missing; expected the webhook URL alerts are posted to; ${set}`);
  } else if (info.webhookType !== "string" || !info.webhookIsUrl) {
    issues.add(
      `${key}.webhook`,
      "expected an http(s) URL (Slack, Discord or any endpoint taking a JSON POST), without spaces or quotes; " +
        `the value is not shown because it is a secret; ${set}`,
    );
  } else if (info.webhookPlainHttp) {
    issues.add(
      `${key}.webhook`,
      "is a plain http:// URL to a public address: the URL and every alert would cross the internet unencrypted; use https://",
    );
  }
  if (!info.secret) {
    issues.add(
      key,
      `is stored in plain text in the stack file, and the webhook URL is a credential (whoever has it can post); ` +
        `remove it (pulumi config rm ${key}) and set it again as a secret: ${set}`,
    );
  }
  return { enabled: info.webhookType === "string" && info.webhookIsUrl === true };
}

/** Facts about `apphost:alerts` for the parser: shape, URL-ness, secrecy; never the URL. */
export function inspectAlerts(value: unknown, secret: boolean): AlertsInfo {
  const type = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  if (type !== "object") return { type, keys: [], secret };
  const obj = value as Record<string, unknown>;
  const info: AlertsInfo = { type, keys: Object.keys(obj), secret };
  if ("webhook" in obj) {
    const w = obj.webhook;
    info.webhookType = w === null ? "null" : Array.isArray(w) ? "array" : typeof w;
    if (typeof w === "string") {
      let url: URL | undefined;
      try {
        url = new URL(w);
      } catch {
        url = undefined;
      }
      info.webhookIsUrl =
        url !== undefined && /^https?:$/.test(url.protocol) && url.hostname !== "" && !/[\s"'\\]/.test(w);
      info.webhookPlainHttp =
        url?.protocol === "http:" &&
        !/^(localhost|127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|\[::1\])/.test(url.hostname);
    }
  }
  return info;
}

// ---------------------------------------------------------------------------
// Pure helpers exported for the components and tests

/**
 * Graviton instance families carry a `g` after the generation number
 * (t4g, m7g, c7gn, r8g, x2gd, im4gn, is4gen, hpc7g) or are the first-generation `a1`.
 * Returns undefined for strings that are not instance types.
 */
export function archOf(instanceType: string): "x86_64" | "arm64" | undefined {
  const m = /^([a-z]+)(\d+)([a-z-]*)\.([a-z0-9-]+)$/.exec(instanceType);
  if (!m) return undefined;
  const [, prefix, , suffix] = m;
  if (prefix === "a" || /g/.test(suffix.replace(/-flex$/, ""))) return "arm64";
  return "x86_64";
}

/** A public DNS name as Cloudflare and ACME accept it: lowercase labels, at least two, no wildcard. */
export function isDnsName(name: string): boolean {
  if (name.length > 253) return false;
  const labels = name.split(".");
  if (labels.length < 2) return false;
  if (/^\d+$/.test(labels[labels.length - 1])) return false; // "10.0.0.1" is an address, not a name
  return labels.every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l));
}

export function isIpv4(value: string): boolean {
  return isIPv4(value);
}

/** `a.b.c.d/n` with the host bits zero (AWS stores the network address; anything else diffs forever). */
export function ipv4CidrProblem(cidr: string): string | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  if (!m || !isIpv4(m[1]) || Number(m[2]) > 32) return "not an IPv4 CIDR";
  const bits = Number(m[2]);
  const ip = m[1].split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - bits);
  const network = ip - (ip % size);
  if (network !== ip) {
    const n = [24, 16, 8, 0].map((s) => Math.floor(network / 2 ** s) % 256).join(".");
    return `host bits are set; the network is ${n}/${bits}`;
  }
  return undefined;
}

/**
 * Inspects a private key without keeping it: its format, whether a passphrase
 * protects it, and its public half. Used by index.ts so that the parser can
 * compare the public half with `apphost:host.sshPublicKey`.
 */
export function inspectPrivateKey(text: string): PrivateKeyInfo {
  const trimmed = text.trim();
  const format = /^-----BEGIN OPENSSH PRIVATE KEY-----/.test(trimmed)
    ? "openssh"
    : /^-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(trimmed)
      ? "pem"
      : undefined;
  if (format === undefined) return { format: "unknown", encrypted: false };
  if (
    format === "pem" &&
    (/^-----BEGIN ENCRYPTED/.test(trimmed) || /Proc-Type:\s*4,ENCRYPTED/.test(trimmed))
  ) {
    return { format, encrypted: true };
  }
  try {
    const key = sshpk.parsePrivateKey(trimmed, format === "openssh" ? "ssh" : "pem");
    return { format, encrypted: false, publicKey: keyIdentity(key.toPublic().toString("ssh")) };
  } catch (e) {
    if (e instanceof sshpk.KeyEncryptedError) return { format, encrypted: true };
    return { format: "unknown", encrypted: false };
  }
}

// ---------------------------------------------------------------------------
// Issue collection and typed readers

class Issues {
  readonly list: ConfigIssue[] = [];
  constructor(readonly stack: string) {}
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** How a value is quoted in messages: short, JSON-like, `nothing` when absent. */
function show(v: unknown): string {
  if (v === undefined || v === null) return "nothing";
  if (Array.isArray(v)) return v.length === 0 ? "an empty list" : "a list";
  if (isObject(v)) return "an object";
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** `.key` for identifiers, `["key"]` otherwise, as `pulumi config set --path` spells it. */
function child(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}["${key}"]`;
}

function setHint(path: string, example: string): string {
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

function closest(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3; // more than two edits away is a different word, not a typo
  for (const c of candidates) {
    const dist = distance(key, c);
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  return best;
}

/**
 * Reads one object, remembering which keys were read so that `finish()` can
 * report every key nobody asked for (typos, keys of the other host kind).
 */
class Reader {
  private readonly read = new Set<string>();
  constructor(
    readonly issues: Issues,
    readonly path: string,
    readonly obj: Obj,
  ) {}

  at(key: string): string {
    return child(this.path, key);
  }

  /** The raw value; YAML's empty value (`key:`) counts as absent. */
  raw(key: string): unknown {
    this.read.add(key);
    const v = this.obj[key];
    return v === null ? undefined : v;
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  fail(key: string, expected: string, got: unknown, todo: string): undefined {
    this.issues.add(this.at(key), `expected ${expected}, got ${show(got)}; ${todo}`);
    return undefined;
  }

  /** `hintKey` names the key the example sets when it is not `key` itself (`hostnames[0].name`). */
  missing(key: string, expected: string, example: string, why = "", hintKey = key): undefined {
    this.issues.add(
      this.at(key),
      `missing${why ? ` (${why})` : ""}; expected ${expected}; ` +
        setHint(hintKey === key ? this.at(key) : `${this.path}.${hintKey}`, example),
    );
    return undefined;
  }

  /** Reports the key as unusable here; used when a key only applies to another mode. */
  notHere(key: string, why: string): void {
    if (!this.has(key)) return;
    this.read.add(key);
    this.issues.add(this.at(key), `${why}; remove it`);
  }

  string(
    key: string,
    spec: { expected: string; example: string; required?: string | true; test?: (s: string) => boolean },
  ): string | undefined {
    const v = this.raw(key);
    if (v === undefined) {
      if (spec.required) {
        return this.missing(key, spec.expected, spec.example, spec.required === true ? "" : spec.required);
      }
      return undefined;
    }
    if (typeof v !== "string" || v.trim() === "" || (spec.test && !spec.test(v))) {
      return this.fail(key, spec.expected, v, setHint(this.at(key), spec.example));
    }
    return v;
  }

  oneOf<T extends string>(
    key: string,
    values: readonly T[],
    fallback: T | undefined,
    why = "",
  ): T | undefined {
    const v = this.raw(key);
    const expected = `one of ${values.map((x) => `"${x}"`).join(", ")}`;
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      return this.missing(key, expected, values[0], why);
    }
    if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
      return this.fail(key, expected, v, setHint(this.at(key), values[0]));
    }
    return v as T;
  }

  /**
   * Integers. Strings of digits are accepted because `pulumi config set --path`
   * stores values as strings unless told otherwise.
   */
  int(
    key: string,
    min: number,
    max: number,
    fallback: number | undefined,
    example?: number,
  ): number | undefined {
    const v = this.raw(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      return this.missing(key, `an integer from ${min} to ${max}`, String(example ?? min));
    }
    const n = typeof v === "string" && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
      return this.fail(
        key,
        `an integer from ${min} to ${max}`,
        v,
        setHint(this.at(key), String(example ?? fallback ?? min)),
      );
    }
    return n;
  }

  bool(key: string, fallback: boolean): boolean | undefined {
    const v = this.raw(key);
    if (v === undefined) return fallback;
    if (v === true || v === "true") return true;
    if (v === false || v === "false") return false;
    return this.fail(key, "true or false", v, setHint(this.at(key), String(fallback)));
  }

  stringList(key: string, fallback: string[] | undefined, example: string): string[] | undefined {
    const v = this.raw(key);
    if (v === undefined) return fallback;
    if (!Array.isArray(v)) {
      return this.fail(key, "a list of strings", v, `write it as a YAML list, e.g. [${example}]`);
    }
    let ok = true;
    v.forEach((item, i) => {
      if (typeof item !== "string" || item.trim() === "") {
        ok = false;
        this.issues.add(
          child(this.at(key), i),
          `expected a non-empty string, got ${show(item)}; fix or remove the item`,
        );
      }
    });
    return ok ? (v as string[]) : undefined;
  }

  object(key: string): Reader | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (!isObject(v)) {
      return this.fail(
        key,
        "an object (a YAML mapping)",
        v,
        `see docs/config.md for the keys of ${this.at(key)}`,
      );
    }
    return new Reader(this.issues, this.at(key), v);
  }

  /** Reports keys nobody read. `elsewhere` explains keys that belong to another mode. */
  finish(known: readonly string[], elsewhere: Record<string, string> = {}): void {
    for (const key of Object.keys(this.obj)) {
      if (this.read.has(key)) continue;
      if (elsewhere[key]) {
        this.issues.add(this.at(key), `${elsewhere[key]}; remove it`);
        continue;
      }
      const near = closest(key, known);
      this.issues.add(
        this.at(key),
        near
          ? `unknown key; did you mean "${near}"? Rename or remove it`
          : `unknown key; the keys of ${this.path} are ${known.join(", ")}. Remove it`,
      );
    }
  }
}

/** The first key to set for each required section. */
const REQUIRED_START: Partial<Record<Section, string>> = {
  host: "pulumi config set --path 'apphost:host.kind' ec2",
  tls: "pulumi config set --path 'apphost:tls.mode' caddy-acme",
  app: "pulumi config set --path 'apphost:app.source' app",
};

/** Reads `apphost:<name>`; an absent optional section is an empty object so every default applies. */
function section(issues: Issues, raw: Obj, name: Section, required: boolean): Reader | undefined {
  const path = `apphost:${name}`;
  const v = raw[name];
  if (v === undefined || v === null) {
    if (!required) return new Reader(issues, path, {});
    issues.add(
      path,
      `missing; expected an object (see docs/config.md for its keys); start with: ${REQUIRED_START[name]}`,
    );
    return undefined;
  }
  if (!isObject(v)) {
    issues.add(
      path,
      `expected an object (a YAML mapping under ${path} in Pulumi.${issues.stack}.yaml), got ${show(v)}; ` +
        `see docs/config.md for its keys`,
    );
    return undefined;
  }
  return new Reader(issues, path, v);
}

// ---------------------------------------------------------------------------
// Sections. Each returns a partial object: fields are undefined where the
// input was wrong, so cross-field checks can skip them without a cascade of
// follow-up errors.

/** Both host shapes at once, so a half-read host can still be checked against other sections. */
type PartialHost = Partial<Omit<Ec2HostConfig, "kind">> &
  Partial<Omit<ExistingHostConfig, "kind">> & { kind?: HostConfig["kind"] };

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
function keyIdentity(line: string): string {
  return line.trim().split(/\s+/).slice(0, 2).join(" ");
}

/**
 * `apphost:host.via`: absent or `direct`, `instance-connect` (ec2), or `{jump: {address, port, user, hostKey}}`.
 * The jump user is "" when unset: parseHost fills in the host's login user.
 */
function parseVia(r: Reader, kind: HostConfig["kind"] | undefined): ViaConfig | undefined {
  const v = r.raw("via");
  const forms =
    "direct (the default), instance-connect (ec2: an EC2 Instance Connect Endpoint), " +
    "or {jump: {address, port, user, hostKey}} for an SSH jump host";
  if (v === undefined || v === "direct") return { kind: "direct" };
  if (v === "instance-connect") {
    if (kind === "existing") {
      r.issues.add(
        r.at("via"),
        `instance-connect needs an EC2 instance (${r.at("kind")} is existing); use {jump: {...}} to reach a server behind a bastion, or direct`,
      );
      return undefined;
    }
    return { kind: "instance-connect" };
  }
  if (!isObject(v) || !isObject(v.jump)) {
    r.fail(
      "via",
      forms,
      v,
      `set it with: pulumi config set --path '${r.at("via")}.jump.address' 203.0.113.5 (and .hostKey)`,
    );
    return undefined;
  }
  const via = new Reader(r.issues, r.at("via"), v);
  const j = via.object("jump");
  via.finish(["jump"]);
  if (!j) return undefined;
  const address = j.string("address", {
    expected: 'the jump host\'s IPv4 address or DNS name, like "203.0.113.5"',
    example: "203.0.113.5",
    required: "where the SSH connections go first",
    test: (s) => isIpv4(s) || isDnsName(s),
  });
  const port = j.int("port", 1, 65535, 22);
  const user = j.string("user", {
    expected: "a login user name on the jump host",
    example: "jump",
    test: (s) => /^[a-z_][a-z0-9_-]{0,31}$/.test(s),
  });
  const hostKey = j.string("hostKey", {
    expected: 'the jump host\'s public host key line, like "ssh-ed25519 AAAA..."',
    example: "\"$(ssh-keyscan -t ed25519 203.0.113.5 | cut -d' ' -f2-)\"",
    required: "apphost pins the jump host's key too; it is known before the first connection",
    test: (s) => isOpenSshPublicKey(s, HOST_KEY_TYPES),
  });
  j.finish(JUMP_KEYS);
  if (!address || !port || !hostKey || (j.has("user") && !user)) return undefined;
  return { kind: "jump", address, port, user: user ?? "", hostKey };
}

function parseHost(r: Reader | undefined, ctx: ParseContext): PartialHost {
  if (!r) return {};
  const kind = r.oneOf("kind", ["ec2", "existing"] as const, undefined, "which machine to deploy to");
  const port = r.int("port", 1, 65535, D.HOST_DEFAULTS.port);
  const via = parseVia(r, kind);

  if (kind === "ec2") {
    const instanceType = r.string("instanceType", {
      expected: 'an EC2 instance type like "t4g.small"',
      example: "t4g.small",
      required: true,
      test: (s) => archOf(s) !== undefined,
    });
    const arch = instanceType ? archOf(instanceType) : undefined;
    const os = r.oneOf("os", ["debian-12", "ubuntu-24.04"] as const, D.HOST_DEFAULTS.os);
    const user = r.string("user", {
      expected: "a login user name",
      example: "admin",
      test: (s) => /^[a-z_][a-z0-9_-]{0,31}$/.test(s),
    });
    // Through an Instance Connect Endpoint, SSH needs no CIDR at all: the endpoint's security group is the way in.
    const viaEndpoint = via?.kind === "instance-connect";
    const sshAllowCidrs = r.stringList("sshAllowCidrs", viaEndpoint ? [] : undefined, "203.0.113.0/24");
    if (viaEndpoint) {
      // Any list, empty included.
    } else if (!r.has("sshAllowCidrs")) {
      r.missing(
        "sshAllowCidrs",
        "a list of IPv4 CIDRs allowed to reach SSH",
        "203.0.113.7/32",
        "SSH is closed to everyone else",
        "sshAllowCidrs[0]",
      );
    } else if (sshAllowCidrs?.length === 0) {
      r.fail(
        "sshAllowCidrs",
        "at least one IPv4 CIDR",
        sshAllowCidrs,
        "add the address you deploy from, e.g. [203.0.113.7/32] (curl -4 ifconfig.me)",
      );
    }
    const allowSshFromAnywhere = r.bool("allowSshFromAnywhere", D.HOST_DEFAULTS.allowSshFromAnywhere);
    sshAllowCidrs?.forEach((cidr, i) => {
      const path = child(r.at("sshAllowCidrs"), i);
      const problem = ipv4CidrProblem(cidr);
      if (problem) {
        r.issues.add(
          path,
          `expected an IPv4 CIDR like "203.0.113.7/32", got ${show(cidr)} (${problem}); fix the item`,
        );
      } else if (cidr === "0.0.0.0/0" && allowSshFromAnywhere !== true) {
        r.issues.add(
          path,
          "opens SSH to the whole internet; list the addresses you deploy from, " +
            `or set ${r.at("allowSshFromAnywhere")} to true if you really mean it`,
        );
      }
    });
    const host: PartialHost = {
      kind,
      instanceType,
      arch,
      os,
      user: user ?? (os ? D.defaultEc2User(os) : undefined),
      port,
      via,
      swapMb: r.int("swapMb", 0, 65536, instanceType ? D.defaultEc2SwapMb(instanceType) : 0),
      rootVolumeGb: r.int("rootVolumeGb", 8, 16384, D.HOST_DEFAULTS.rootVolumeGb),
      sshPublicKey: r.string("sshPublicKey", {
        expected:
          'an OpenSSH public key line of type ssh-ed25519 or ssh-rsa (EC2 imports no other type), like "ssh-ed25519 AAAA... you@laptop"',
        example: '"$(cat ~/.ssh/apphost_deploy.pub)"',
        required: "the EC2 key pair is made from it",
        test: (s) => isOpenSshPublicKey(s, SSH_KEY_TYPES_EC2),
      }),
      sshAllowCidrs,
      allowSshFromAnywhere,
      elasticIp: r.bool("elasticIp", D.defaultElasticIp(ctx.stack)),
      subnetId: r.string("subnetId", {
        expected: 'a subnet id like "subnet-0123456789abcdef0"',
        example: "subnet-0123456789abcdef0",
        test: (s) => /^subnet-[0-9a-f]{8,17}$/.test(s),
      }),
      count: r.int("count", 1, 20, 1),
    };
    const subnetIds = r.stringList("subnetIds", undefined, "subnet-0123456789abcdef0");
    subnetIds?.forEach((id, i) => {
      if (!/^subnet-[0-9a-f]{8,17}$/.test(id)) {
        r.issues.add(
          child(r.at("subnetIds"), i),
          `expected a subnet id like "subnet-0123456789abcdef0", got ${show(id)}; fix the item`,
        );
      }
    });
    if (subnetIds) host.subnetIds = subnetIds;
    // Normally unset: the instance's key is generated here and installed at launch.
    const ec2HostKey = r.string("hostKey", {
      expected: 'the instance\'s public host key line, like "ssh-ed25519 AAAA..."',
      example: "\"$(ssh-keyscan -t ed25519 203.0.113.10 | cut -d' ' -f2-)\"",
      test: (s) => isOpenSshPublicKey(s, HOST_KEY_TYPES),
    });
    if (ec2HostKey) host.hostKey = ec2HostKey;
    r.finish(KNOWN_KEYS.host, {
      address: `only used when ${r.at("kind")} is existing (ec2 gets its address from AWS)`,
      addresses: `only used when ${r.at("kind")} is existing (ec2 gets its address from AWS)`,
    });
    if (host.via?.kind === "jump" && !host.via.user && host.user) host.via = { ...host.via, user: host.user };
    return host;
  }

  if (kind === "existing") {
    const addresses = r.has("addresses") ? parseAddresses(r) : undefined;
    if (addresses && (r.has("address") || r.has("hostKey"))) {
      for (const key of ["address", "hostKey"].filter((k) => r.has(k))) {
        r.raw(key);
        r.issues.add(
          r.at(key),
          `set with ${r.at("addresses")} too; give every host in addresses (a host key as {address, hostKey}) and remove ${key}`,
        );
      }
    }
    const host: PartialHost = {
      kind,
      address: r.has("addresses")
        ? addresses?.[0]?.address
        : r.string("address", {
            expected: 'an IPv4 address or DNS name like "203.0.113.10"',
            example: "203.0.113.10",
            required: "where to SSH to (or apphost:host.addresses, a list, for several app hosts)",
            test: (s) => isIpv4(s) || isDnsName(s),
          }),
      user: r.string("user", {
        expected: "a login user name with sudo rights",
        example: "deploy",
        required: "apphost cannot guess the login user of a server it did not create",
        test: (s) => /^[a-z_][a-z0-9_-]{0,31}$/.test(s),
      }),
      port,
      via,
      swapMb: r.int("swapMb", 0, 65536, D.HOST_DEFAULTS.existingSwapMb),
      hostKey: r.has("addresses")
        ? addresses?.[0]?.hostKey
        : r.string("hostKey", {
            expected: 'the server\'s public host key line, like "ssh-ed25519 AAAA..."',
            example: "\"$(ssh-keyscan -t ed25519 203.0.113.10 | cut -d' ' -f2-)\"",
            test: (s) => isOpenSshPublicKey(s, HOST_KEY_TYPES),
          }),
    };
    if (host.hostKey === undefined) delete host.hostKey;
    if (addresses) host.addresses = addresses;
    else if (host.address)
      host.addresses = [{ address: host.address, ...(host.hostKey ? { hostKey: host.hostKey } : {}) }];
    const ec2Only = `only used when ${r.at("kind")} is ec2`;
    r.finish(KNOWN_KEYS.host, {
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
    });
    if (host.via?.kind === "jump" && !host.via.user && host.user) host.via = { ...host.via, user: host.user };
    return host;
  }
  // Unknown kind: other keys cannot be judged, but typos still can.
  for (const key of KNOWN_KEYS.host) r.raw(key);
  r.finish(KNOWN_KEYS.host);
  return {};
}

/**
 * `apphost:host.addresses`: the app hosts, each an address or
 * `{address, hostKey}`. Every bad item is reported; duplicates too.
 */
function parseAddresses(r: Reader): HostAddress[] | undefined {
  const v = r.raw("addresses");
  const key = r.at("addresses");
  if (!Array.isArray(v) || v.length === 0) {
    return r.fail(
      "addresses",
      "a non-empty list of app hosts, each an address or {address, hostKey}",
      v,
      `e.g. pulumi config set --path '${key}[0]' 203.0.113.10`,
    );
  }
  const out: HostAddress[] = [];
  let ok = true;
  const seen = new Map<string, number>();
  v.forEach((item, i) => {
    const at = child(key, i);
    const obj = typeof item === "string" ? { address: item } : isObject(item) ? item : undefined;
    if (!obj) {
      ok = false;
      r.issues.add(at, `expected an address or {address, hostKey}, got ${show(item)}; fix the item`);
      return;
    }
    const item_ = new Reader(r.issues, at, obj as Obj);
    const address = item_.string("address", {
      expected: 'an IPv4 address or DNS name like "203.0.113.10"',
      example: "203.0.113.10",
      required: true,
      test: (s) => isIpv4(s) || isDnsName(s),
    });
    const hostKey = item_.string("hostKey", {
      expected: 'the server\'s public host key line, like "ssh-ed25519 AAAA..."',
      example: "\"$(ssh-keyscan -t ed25519 203.0.113.10 | cut -d' ' -f2-)\"",
      test: (s) => isOpenSshPublicKey(s, HOST_KEY_TYPES),
    });
    item_.finish(["address", "hostKey"]);
    if (!address) {
      ok = false;
      return;
    }
    const first = seen.get(address.toLowerCase());
    if (first !== undefined) {
      ok = false;
      r.issues.add(at, `${show(address)} is already ${child(key, first)}; list each app host once`);
      return;
    }
    seen.set(address.toLowerCase(), i);
    out.push({ address, ...(hostKey ? { hostKey } : {}) });
  });
  return ok ? out : undefined;
}

/** `apphost:lb`: the balancer host in front of existing app hosts. */
function parseLb(r: Reader | undefined, host: PartialHost): Partial<LbConfig> {
  if (!r) return {};
  const address = r.string("address", {
    expected: 'an IPv4 address or DNS name like "203.0.113.20"',
    example: "203.0.113.20",
    required: "the balancer host apphost configures over SSH",
    test: (s) => isIpv4(s) || isDnsName(s),
  });
  const privateAddress = r.string("privateAddress", {
    expected: "the IPv4 address the app hosts see the balancer's requests come from",
    example: "10.0.0.20",
    test: isIpv4,
  });
  const lb: Partial<LbConfig> = {
    address,
    user:
      r.string("user", {
        expected: "a login user name with sudo rights",
        example: "deploy",
        test: (s) => /^[a-z_][a-z0-9_-]{0,31}$/.test(s),
      }) ?? (r.has("user") ? undefined : host.user),
    port: r.int("port", 1, 65535, D.LB_DEFAULTS.port),
    privateAddress:
      privateAddress ?? (address && isIpv4(address) && !r.has("privateAddress") ? address : undefined),
    healthIntervalSeconds: r.int("healthIntervalSeconds", 1, 300, D.LB_DEFAULTS.healthIntervalSeconds),
  };
  const hostKey = r.string("hostKey", {
    expected: 'the balancer\'s public host key line, like "ssh-ed25519 AAAA..."',
    example: "\"$(ssh-keyscan -t ed25519 203.0.113.20 | cut -d' ' -f2-)\"",
    test: (s) => isOpenSshPublicKey(s, HOST_KEY_TYPES),
  });
  if (hostKey) lb.hostKey = hostKey;
  if (address && !isIpv4(address) && !r.has("privateAddress")) {
    r.missing(
      "privateAddress",
      "the balancer's IPv4 address as the app hosts see it",
      "10.0.0.20",
      `${show(address)} is a name, and the app hosts' proxies admit one address`,
    );
  }
  r.finish(KNOWN_KEYS.lb);
  return lb;
}

function parseHostnames(r: Reader): HostnameConfig[] | undefined {
  const v = r.raw("hostnames");
  if (v === undefined) return [];
  const path = r.at("hostnames");
  if (!Array.isArray(v)) {
    r.fail(
      "hostnames",
      "a list of hostnames",
      v,
      'write it as a YAML list, e.g. ["example.com", "www.example.com"]',
    );
    return undefined;
  }
  const out: HostnameConfig[] = [];
  const seen = new Set<string>();
  let ok = true;
  v.forEach((item, i) => {
    const itemPath = child(path, i);
    // An item is a bare name or {name, proxied}.
    const entry = typeof item === "string" ? new Reader(r.issues, itemPath, { name: item }) : undefined;
    const reader = entry ?? (isObject(item) ? new Reader(r.issues, itemPath, item) : undefined);
    if (!reader) {
      ok = false;
      r.issues.add(
        itemPath,
        `expected a hostname or {name, proxied}, got ${show(item)}; write e.g. "www.example.com" or {name: www.example.com, proxied: true}`,
      );
      return;
    }
    const namePath = typeof item === "string" ? itemPath : child(itemPath, "name");
    const raw = reader.raw("name");
    let name: string | undefined;
    // An IPv4 address stands in for a name on stacks without DNS (the proxy serves it); cross-field checks
    // refuse it where a record or a public certificate needs a real name.
    if (typeof raw === "string" && (isDnsName(raw) || isIpv4(raw))) {
      name = raw;
    } else {
      ok = false;
      const lower =
        typeof raw === "string" && isDnsName(raw.toLowerCase())
          ? `; write it in lowercase: ${raw.toLowerCase()}`
          : "";
      const wildcard =
        typeof raw === "string" && raw.startsWith("*.")
          ? "; wildcards need a DNS challenge apphost does not do, list each name"
          : "";
      r.issues.add(
        namePath,
        `expected a DNS name like "www.example.com" (lowercase letters, digits and dashes, at least two labels) ` +
          `or, without DNS, the host's IPv4 address, got ${show(raw)}` +
          (lower || wildcard || "; fix the name"),
      );
    }
    const proxied = reader.bool("proxied", D.DNS_DEFAULTS.proxied);
    if (proxied === undefined) ok = false;
    if (typeof item !== "string") reader.finish(["name", "proxied"]);
    if (name !== undefined && seen.has(name)) {
      ok = false;
      r.issues.add(namePath, `duplicate hostname ${show(name)}; list each hostname once`);
    }
    if (name !== undefined) seen.add(name);
    if (name !== undefined && proxied !== undefined) out.push({ name, proxied });
  });
  return ok ? out : undefined;
}

function parseDns(r: Reader | undefined): Partial<DnsConfig> {
  if (!r) return {};
  const provider = r.oneOf("provider", ["cloudflare", "none"] as const, D.DNS_DEFAULTS.provider);
  const dns: Partial<DnsConfig> = {
    provider,
    zone: r.string("zone", {
      expected: 'a Cloudflare zone name like "example.com"',
      example: "example.com",
      test: isDnsName,
    }),
    zoneId: r.string("zoneId", {
      expected: "a Cloudflare zone id (32 hex characters, Overview page of the zone)",
      example: "023e105f4ecef8ad9ca31a8372d0c353",
      test: (s) => /^[0-9a-f]{32}$/.test(s),
    }),
    hostnames: parseHostnames(r),
    ipv6: r.bool("ipv6", D.DNS_DEFAULTS.ipv6),
  };
  r.finish(KNOWN_KEYS.dns);

  if (provider === "cloudflare") {
    if (!r.has("zone") && !r.has("zoneId")) {
      r.missing(
        "zone",
        "the Cloudflare zone name (or apphost:dns.zoneId)",
        "example.com",
        "records are created in this zone",
      );
    }
    if (dns.hostnames?.length === 0 && r.has("hostnames")) {
      r.fail(
        "hostnames",
        "at least one hostname",
        [],
        setHint(`${r.at("hostnames")}[0].name`, "example.com"),
      );
    } else if (dns.hostnames?.length === 0) {
      r.missing(
        "hostnames",
        "at least one hostname",
        "example.com",
        "one A record is created per hostname",
        "hostnames[0].name",
      );
    }
    const zone = dns.zone;
    dns.hostnames?.forEach((h, i) => {
      if (zone && !isIpv4(h.name) && h.name !== zone && !h.name.endsWith(`.${zone}`)) {
        const raw = (r.obj.hostnames as unknown[])[i];
        r.issues.add(
          typeof raw === "string" ? child(r.at("hostnames"), i) : child(child(r.at("hostnames"), i), "name"),
          `${show(h.name)} is not in the zone ${show(zone)}; use a name ending in .${zone} or change apphost:dns.zone`,
        );
      }
    });
  }
  if (provider === "none") {
    const why = `only used when ${r.at("provider")} is cloudflare (with "none" you manage DNS yourself)`;
    for (const key of ["zone", "zoneId"]) {
      if (r.has(key)) r.issues.add(r.at(key), `${why}; remove it or set ${r.at("provider")} to cloudflare`);
    }
    if (dns.ipv6 === true) {
      r.issues.add(r.at("ipv6"), `${why}; remove it or set ${r.at("provider")} to cloudflare`);
    }
    const items = Array.isArray(r.obj.hostnames) ? (r.obj.hostnames as unknown[]) : [];
    items.forEach((item, i) => {
      if (isObject(item) && (item.proxied === true || item.proxied === "true")) {
        r.issues.add(
          child(child(r.at("hostnames"), i), "proxied"),
          `${why}; remove it or set ${r.at("provider")} to cloudflare`,
        );
      }
    });
  }
  return dns;
}

function parseTls(r: Reader | undefined): Partial<TlsConfig> {
  if (!r) return {};
  const mode = r.oneOf(
    "mode",
    ["caddy-acme", "certbot", "cloudflare-origin", "internal", "off", "acm"] as const,
    undefined,
    "how HTTPS certificates are obtained",
  );
  const email = r.string("email", {
    expected: "an e-mail address for the ACME account",
    example: "ops@example.com",
    test: (s) => /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(s),
  });
  const acmeDirectory = r.string("acmeDirectory", {
    expected: "the https:// URL of an ACME directory",
    example: "https://acme-staging-v02.api.letsencrypt.org/directory",
    test: (s) => /^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~%/-]*)?$/.test(s),
  });
  const acmeCaRoot = r.string("acmeCaRoot", {
    expected:
      "one PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----): the root the ACME server's HTTPS certificate chains to",
    example: '"$(cat acme-root.pem)"',
    test: (s) =>
      /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*$/.test(s.trim()),
  });
  const validity = r.raw("originValidityDays");
  let originValidityDays: number | undefined = D.TLS_DEFAULTS.originValidityDays;
  if (validity !== undefined) {
    const n = typeof validity === "string" && /^\d+$/.test(validity) ? Number(validity) : validity;
    originValidityDays = (ORIGIN_VALIDITY_DAYS as readonly unknown[]).includes(n) ? (n as number) : undefined;
    if (originValidityDays === undefined) {
      r.fail(
        "originValidityDays",
        `one of ${ORIGIN_VALIDITY_DAYS.join(", ")} (the validities Cloudflare's Origin CA issues)`,
        validity,
        setHint(r.at("originValidityDays"), "365"),
      );
    }
  }
  const renewBeforeDays = r.int(
    "renewBeforeDays",
    1,
    5474,
    originValidityDays !== undefined ? D.defaultRenewBeforeDays(originValidityDays) : 1,
    30,
  );
  r.finish(KNOWN_KEYS.tls);

  if (
    originValidityDays !== undefined &&
    renewBeforeDays !== undefined &&
    renewBeforeDays >= originValidityDays
  ) {
    r.issues.add(
      r.at("renewBeforeDays"),
      `must be less than ${r.at("originValidityDays")} (${originValidityDays}), got ${renewBeforeDays}; ` +
        `otherwise the certificate is renewed on every run. Lower it, e.g. to ${D.defaultRenewBeforeDays(originValidityDays)}`,
    );
  }
  if (mode && mode !== "caddy-acme" && mode !== "certbot" && email !== undefined) {
    r.issues.add(
      r.at("email"),
      `only used when ${r.at("mode")} is caddy-acme or certbot (got ${show(mode)}); remove it`,
    );
  }
  if (mode && mode !== "cloudflare-origin") {
    for (const key of ["originValidityDays", "renewBeforeDays"]) {
      if (r.has(key)) {
        r.issues.add(
          r.at(key),
          `only used when ${r.at("mode")} is cloudflare-origin (got ${show(mode)}); remove it`,
        );
      }
    }
  }
  if (mode && mode !== "caddy-acme" && mode !== "certbot") {
    for (const key of ["acmeDirectory", "acmeCaRoot"]) {
      if (r.has(key)) {
        r.issues.add(
          r.at(key),
          `only used when ${r.at("mode")} is caddy-acme or certbot (got ${show(mode)}); remove it`,
        );
      }
    }
  } else if (acmeCaRoot !== undefined && !r.has("acmeDirectory")) {
    r.issues.add(
      r.at("acmeCaRoot"),
      `names the root of an ACME server, but ${r.at("acmeDirectory")} is not set (certificates would come from Let's Encrypt); ` +
        `set it too, e.g. pulumi config set --path '${r.at("acmeDirectory")}' https://ca.internal:9000/acme/acme/directory, or remove acmeCaRoot`,
    );
  }
  return { mode, email, originValidityDays, renewBeforeDays, acmeDirectory, acmeCaRoot };
}

function parseProxy(r: Reader | undefined, tlsMode: TlsConfig["mode"] | undefined): Partial<ProxyConfig> {
  if (!r) return {};
  const proxy: Partial<ProxyConfig> = {
    kind: r.oneOf("kind", ["caddy", "nginx"] as const, D.PROXY_DEFAULTS.kind),
    maxBodySize:
      r.string("maxBodySize", {
        expected: 'a size in nginx syntax like "25m" (digits, then k, m or g)',
        example: "25m",
        test: (s) => /^\d+[kmg]?$/i.test(s),
      }) ?? (r.has("maxBodySize") ? undefined : D.PROXY_DEFAULTS.maxBodySize),
    hsts: r.bool("hsts", D.defaultHsts(tlsMode ?? "off")),
    compression: r.bool("compression", D.PROXY_DEFAULTS.compression),
    httpPort: r.int("httpPort", 1, 65535, D.PROXY_DEFAULTS.httpPort),
    httpsPort: r.int("httpsPort", 1, 65535, D.PROXY_DEFAULTS.httpsPort),
  };
  r.finish(KNOWN_KEYS.proxy);
  if (proxy.httpPort !== undefined && proxy.httpPort === proxy.httpsPort) {
    r.issues.add(
      r.at("httpsPort"),
      `must differ from ${r.at("httpPort")} (both are ${proxy.httpPort}); pick another port`,
    );
  }
  if (proxy.hsts === true && r.has("hsts") && tlsMode === "off") {
    r.issues.add(
      r.at("hsts"),
      "HSTS tells browsers to insist on HTTPS, but apphost:tls.mode is off; remove it or turn TLS on",
    );
  }
  return proxy;
}

/** URL paths and release directories land unquoted in proxy configs: the same narrow charset as render/common.ts. */
const REL_DIR = /^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*\/?$/;

/** Relative path inside the project (or release); `..` could escape it. */
function isRelativePath(s: string): boolean {
  return !s.startsWith("/") && !s.split("/").includes("..") && !/^[A-Za-z]:/.test(s);
}

function parseEnv(r: Reader): Record<string, string> | undefined {
  const env = r.object("env");
  if (!env) return r.has("env") ? undefined : {};
  const out: Record<string, string> = {};
  let ok = true;
  for (const [name, value] of Object.entries(env.obj)) {
    const problem = envProblem(name, typeName(value));
    if (problem) {
      ok = false;
      r.issues.add(child(env.path, name), problem);
    } else {
      out[name] = String(value);
    }
  }
  return ok ? out : undefined;
}

/** One rule for env and secretEnv: shell-safe names, scalar values, PORT reserved. */
function envProblem(name: string, type: string): string | undefined {
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

/**
 * Variables apphost sets itself, refused here (before any resource) in
 * apphost:app.env and apphost:secretEnv alike: PATH (the units put the venv or
 * node_modules/.bin first), DATABASE_URL (from apphost:database unless its
 * kind is none) and, with Postgres, the pool variables. PORT is refused with
 * the other name rules (envProblem).
 */
function checkReservedEnv(
  issues: Issues,
  app: Partial<AppConfig>,
  database: Partial<DatabaseConfig>,
  secretEnvTypes: SecretFacts["secretEnvTypes"],
): void {
  const names = [
    ...Object.keys(app.env ?? {}).map((n) => [child("apphost:app.env", n), n] as const),
    ...(typeof secretEnvTypes === "object" ? Object.keys(secretEnvTypes) : []).map(
      (n) => [child("apphost:secretEnv", n), n] as const,
    ),
  ];
  for (const [path, name] of names) {
    if (name === "PATH") {
      issues.add(
        path,
        "PATH is set by apphost: the units put the release's venv or node_modules/.bin first; remove it",
      );
    } else if (name === "DATABASE_URL" && database.kind && database.kind !== "none") {
      issues.add(
        path,
        `DATABASE_URL is set by apphost from apphost:database (kind ${database.kind}); remove it, or set apphost:database.kind to none to bring your own`,
      );
    } else if (name in D.POOL_VARS && D.isPostgres(database.kind)) {
      issues.add(
        path,
        `${name} is set by apphost from apphost:database.pool.${D.POOL_VARS[name]}; set that instead and remove this`,
      );
    }
  }
}

/** Process names whose worker unit would be one of apphost's own units (systemd.ts). */
const RESERVED_PROCESS_NAMES = ["backup", "upstream", "job", "alert"];

function parseProcesses(r: Reader, files: AppFiles | undefined): ProcessConfig[] | undefined {
  const procfile = r.raw("processes") === undefined ? procfileProcesses(r, files) : undefined;
  if (procfile === null) return undefined;
  const path = procfile ? `${r.at("processes")} (from ${files?.dir}/Procfile)` : r.at("processes");
  const v = procfile ?? r.raw("processes");
  if (v === undefined) {
    r.missing(
      "processes",
      "a map of process name to {command, kind}",
      '"gunicorn app:app --bind 127.0.0.1:$PORT"',
      `what runs on the host; ${files ? `${files.dir} has` : "the app has"} no Procfile to take it from`,
      "processes.web.command",
    );
    return undefined;
  }
  if (!isObject(v)) {
    r.fail(
      "processes",
      "a map of process name to {command, kind}",
      v,
      "write e.g. processes: {web: {command: ..., kind: web}}",
    );
    return undefined;
  }
  if (Object.keys(v).length === 0) {
    r.fail(
      "processes",
      "at least one process",
      v,
      "add the web process, e.g. web: {command: ..., kind: web}",
    );
    return undefined;
  }
  const out: ProcessConfig[] = [];
  let ok = true;
  for (const [name, item] of Object.entries(v)) {
    const itemPath = child(path, name);
    if (!isName(name)) {
      ok = false;
      r.issues.add(
        itemPath,
        "expected a process name of lowercase letters, digits and dashes, starting with a letter (it becomes part of a systemd unit name); rename it",
      );
      continue;
    }
    if (RESERVED_PROCESS_NAMES.includes(name) || name.startsWith("schedule-")) {
      ok = false;
      r.issues.add(
        itemPath,
        `"${name}" is taken: apphost's own unit is apphost-<app>-<stack>-${name}.service (${RESERVED_PROCESS_NAMES.join(", ")} and schedule-* are reserved); rename the process`,
      );
      continue;
    }
    // `web: gunicorn app:app` is shorthand for {command: ..., kind: web}, like a Procfile line.
    const reader =
      typeof item === "string"
        ? new Reader(r.issues, itemPath, { command: item })
        : isObject(item)
          ? new Reader(r.issues, itemPath, item)
          : undefined;
    if (!reader) {
      ok = false;
      r.issues.add(
        itemPath,
        `expected {command, kind} or a command string, got ${show(item)}; write e.g. {command: "python worker.py", kind: worker}`,
      );
      continue;
    }
    const command = reader.string("command", {
      expected: 'the command to run, e.g. "gunicorn app:app --bind 127.0.0.1:$PORT"',
      example: '"gunicorn app:app --bind 127.0.0.1:$PORT"',
      required: true,
    });
    const kind = reader.oneOf("kind", ["web", "worker"] as const, D.defaultProcessKind(name));
    if (typeof item !== "string") reader.finish(["command", "kind"]);
    if (command === undefined || kind === undefined) {
      ok = false;
      continue;
    }
    out.push({ name, command, kind });
  }
  if (ok) {
    const web = out.filter((p) => p.kind === "web").map((p) => p.name);
    if (web.length !== 1) {
      r.issues.add(
        path,
        `expected exactly one process of kind "web" (it receives HTTP on $PORT), got ${web.length === 0 ? "none" : `${web.length} (${web.join(", ")})`}; ` +
          (web.length === 0
            ? "set kind: web on the HTTP process"
            : "keep kind: web on one of them and make the others workers"),
      );
      return undefined;
    }
  }
  return ok ? out : undefined;
}

/**
 * The app's Procfile as a raw `processes` map (name -> command), without its
 * `release:` line; undefined without a Procfile, null after reporting its
 * problems (a bad line, a web line that chains commands).
 */
function procfileProcesses(
  r: Reader,
  files: AppFiles | undefined,
): Record<string, string> | undefined | null {
  if (files?.procfile === undefined) return undefined;
  const where = `${files.dir}/Procfile`;
  const { entries, bad } = parseProcfile(files.procfile);
  let ok = true;
  for (const b of bad) {
    ok = false;
    r.issues.add(
      `${r.at("processes")} (from ${where})`,
      `line ${b.line} "${b.text}" is not "name: command"; fix the line, or set apphost:app.processes in the stack`,
    );
  }
  const out: Record<string, string> = {};
  for (const e of entries) {
    if (e.name === "release") continue;
    const parts = e.name === "web" ? chainedParts(e.command) : undefined;
    if (parts) {
      ok = false;
      const { migrate, build, server } = splitChain(parts);
      const m = migrate.join(" && ");
      const b = build.join(" && ");
      r.issues.add(
        `${r.at("processes")} (from ${where})`,
        build.length === 0
          ? `line ${e.line}: the web process chains commands ("${e.command}"); apphost runs the migration once per release, ` +
              `before traffic moves, so split it: "release: ${m}" and "web: ${server}" in the Procfile, ` +
              `or set apphost:app.processes.web to "${server}" and apphost:database.migrate to "${m}"`
          : `line ${e.line}: the web process chains commands ("${e.command}"); split it: ` +
              (migrate.length > 0
                ? `the migration "${m}" runs once per release, before traffic moves ("release: ${m}" in the Procfile, or apphost:database.migrate); `
                : "") +
              `"${b}" prepares the code, so it belongs in every release on every host (apphost:app.build); ` +
              `the web process is "web: ${server}" (or apphost:app.processes.web)`,
      );
      continue;
    }
    out[e.name] = e.command;
  }
  if (ok && Object.keys(out).length === 0) {
    r.issues.add(
      `${r.at("processes")} (from ${where})`,
      "the Procfile names no process; add a web: line or set apphost:app.processes in the stack",
    );
    return null;
  }
  return ok ? out : null;
}

/** The Procfile's `release:` command, the migrate default, when the stack takes its processes from the Procfile. */
function procfileRelease(raw: Record<string, unknown>, ctx: ParseContext): string | undefined {
  const app = raw.app;
  if (!isObject(app) || app.processes !== undefined || ctx.appFiles?.procfile === undefined) return undefined;
  return parseProcfile(ctx.appFiles.procfile).entries.find((e) => e.name === "release")?.command;
}

/** `apphost:app.schedules`: name -> {command, onCalendar, timeoutSeconds}. */
function parseSchedules(r: Reader): ScheduleConfig[] | undefined {
  const v = r.raw("schedules");
  if (v === undefined) return [];
  const path = r.at("schedules");
  if (!isObject(v)) {
    r.fail(
      "schedules",
      "a map of job name to {command, onCalendar, timeoutSeconds}",
      v,
      'write e.g. schedules: {cleanup: {command: "flask purge-sessions", onCalendar: hourly}}',
    );
    return undefined;
  }
  const out: ScheduleConfig[] = [];
  let ok = true;
  for (const [name, item] of Object.entries(v)) {
    const itemPath = child(path, name);
    if (!isName(name)) {
      ok = false;
      r.issues.add(
        itemPath,
        "expected a job name of lowercase letters, digits and dashes, starting with a letter (it names the systemd timer apphost-<app>-<stack>-schedule-<name>); rename it",
      );
      continue;
    }
    if (!isObject(item)) {
      ok = false;
      r.issues.add(
        itemPath,
        `expected {command, onCalendar, timeoutSeconds}, got ${show(item)}; write e.g. {command: "flask purge-sessions", onCalendar: hourly}`,
      );
      continue;
    }
    const reader = new Reader(r.issues, itemPath, item);
    const command = reader.string("command", {
      expected: "one line of shell, run in the live release with the app's environment",
      example: '"flask purge-sessions"',
      required: true,
      test: (s) => !/[\n\r\0]/.test(s),
    });
    const onCalendar = reader.string("onCalendar", {
      expected: `a systemd OnCalendar expression (man systemd.time), e.g. ${CALENDAR_EXAMPLES.map((e) => `"${e}"`).join(", ")}`,
      example: "hourly",
      required: true,
    });
    let calendarOk = onCalendar !== undefined;
    if (onCalendar !== undefined) {
      const problem = calendarProblem(onCalendar);
      if (problem) {
        calendarOk = false;
        r.issues.add(
          reader.at("onCalendar"),
          `${show(onCalendar)} is not a systemd OnCalendar expression: ${problem}; ` +
            `write e.g. ${CALENDAR_EXAMPLES.map((e) => `"${e}"`).join(", ")} (check one with: systemd-analyze calendar '<expression>')`,
        );
      }
    }
    const timeoutSeconds = reader.int(
      "timeoutSeconds",
      1,
      7 * 24 * 3600,
      D.SCHEDULE_DEFAULTS.timeoutSeconds,
      600,
    );
    reader.finish(SCHEDULE_KEYS);
    if (command === undefined || onCalendar === undefined || !calendarOk || timeoutSeconds === undefined) {
      ok = false;
      continue;
    }
    out.push({ name, command, onCalendar, timeoutSeconds });
  }
  return ok ? out : undefined;
}

function parseApp(r: Reader | undefined, ctx: ParseContext): Partial<AppConfig> {
  if (!r) return {};
  let name = r.string("name", {
    expected: "lowercase letters, digits and dashes, starting with a letter",
    example: "shop",
    test: isName,
  });
  if (!r.has("name")) {
    if (isName(ctx.project)) {
      name = ctx.project;
    } else {
      r.missing(
        "name",
        "lowercase letters, digits and dashes, starting with a letter",
        "shop",
        `the default, the project name "${ctx.project}", cannot name a Linux user`,
      );
    }
  }
  const runtime = r.oneOf(
    "runtime",
    ["python", "node"] as const,
    undefined,
    "how dependencies are installed",
  );
  const app: Partial<AppConfig> = {
    name,
    source: r.string("source", {
      expected:
        'a directory: relative to the project ("app", "../shop" for an app in its own repository) or absolute',
      example: "app",
      required: "the app to deploy",
      // The artifact is built from whatever directory this names; it only has to be a path.
      test: (s) => s.trim() === s && s !== "" && !/[\0\n\r]/.test(s),
    }),
    excludes: checkExcludes(
      r,
      r.stringList("excludes", [...D.APP_DEFAULTS.excludes], '".git", "node_modules"'),
    ),
    runtime,
    requirements:
      r.string("requirements", {
        expected: "a file path relative to apphost:app.source",
        example: "requirements.txt",
        test: isRelativePath,
      }) ?? (r.has("requirements") || runtime !== "node" ? undefined : D.defaultRequirements(runtime)),
    python: r.oneOf("python", ["system", "managed"] as const, D.APP_DEFAULTS.python),
    healthPath:
      r.string("healthPath", {
        expected: 'a URL path starting with "/" (letters, digits and ._~/-), like "/healthz"',
        example: "/healthz",
        test: (s) => isUrlPath(s),
      }) ?? (r.has("healthPath") ? undefined : D.APP_DEFAULTS.healthPath),
    basePort: r.int("basePort", 1024, 65533, D.APP_DEFAULTS.basePort),
    env: parseEnv(r),
    staticDir: r.string("staticDir", {
      expected: 'a directory relative to the release (letters, digits and ._-), like "frontend/dist"',
      example: "frontend/dist",
      test: (s) => REL_DIR.test(s) && isRelativePath(s),
    }),
    staticPrefix:
      r.string("staticPrefix", {
        expected: 'a URL prefix starting and ending with "/" (not "/" alone), like "/static/"',
        example: "/static/",
        test: (s) => isUrlPath(s) && s.endsWith("/") && s !== "/",
      }) ?? (r.has("staticPrefix") ? undefined : D.APP_DEFAULTS.staticPrefix),
    build: r.string("build", { expected: "a shell command", example: '"npm ci && npm run build"' }),
    processes: parseProcesses(r, ctx.appFiles),
    schedules: parseSchedules(r),
    maintenance: r.bool("maintenance", D.APP_DEFAULTS.maintenance),
    maintenancePage: r.string("maintenancePage", {
      expected: "an HTML file, relative to the project or absolute",
      example: "maintenance.html",
      test: (s) => s.trim() === s && !/[\0\n\r]/.test(s),
    }),
  };
  r.finish(KNOWN_KEYS.app);
  if (runtime === "python" && ctx.appFiles && !(r.has("requirements") && app.requirements === undefined)) {
    app.pythonDeps = pythonDepsOf(r, ctx.appFiles, app.requirements);
  } else if (runtime !== "python" && r.has("python")) {
    r.issues.add(r.at("python"), `only used with ${r.at("runtime")} python; remove it`);
  }

  // hostLayout() derives the Linux user `<app>-<stack>` from these (components/paths.ts).
  if (!isName(ctx.stack)) {
    r.issues.add(
      "(stack name)",
      `"${ctx.stack}" must be lowercase letters, digits and dashes, starting with a letter, because it names the Linux user and paths on the host; ` +
        "create the stack under such a name (pulumi stack rename)",
    );
  } else if (name && `${name}-${ctx.stack}`.length > 31) {
    r.issues.add(
      r.at("name"),
      `"${name}-${ctx.stack}" is ${name.length + ctx.stack.length + 1} characters; it names the Linux user on the host, ` +
        `which is limited to 31; ${setHint(r.at("name"), name.slice(0, Math.max(1, 30 - ctx.stack.length)).replace(/-+$/, ""))}`,
    );
  }
  if (app.staticDir === undefined && r.has("staticPrefix")) {
    r.issues.add(r.at("staticPrefix"), `only used with ${r.at("staticDir")}; set staticDir or remove it`);
  }
  return app;
}

/** `${...}` references in apphost:app.env: known names, and a database that has the part. */
/** Each `apphost:app.excludes` pattern as the artifact builder compiles it; every bad one reported. */
function checkExcludes(r: Reader, excludes: string[] | undefined): string[] | undefined {
  if (excludes === undefined) return undefined;
  let ok = true;
  excludes.forEach((pattern, i) => {
    try {
      compileExcludes([pattern]);
    } catch (e) {
      ok = false;
      const why = (e as Error).message.replace(/^apphost:app\.excludes: /, "");
      r.issues.add(child(r.at("excludes"), i), `${why}; fix or remove the pattern`);
    }
  });
  return ok ? excludes : undefined;
}

function checkEnvReferences(
  issues: Issues,
  app: Partial<AppConfig>,
  database: Partial<DatabaseConfig>,
): void {
  for (const [name, value] of Object.entries(app.env ?? {})) {
    for (const ref of envReferences(value)) {
      const problem = referenceProblem(ref, database.kind);
      if (problem) issues.add(child("apphost:app.env", name), problem);
    }
  }
}

/** How the app's Python dependencies install (release/python.ts); a lock file apphost cannot use is an issue. */
function pythonDepsOf(r: Reader, files: AppFiles, requirements: string | undefined): PythonDeps | undefined {
  try {
    return detectPythonDeps(files.python, requirements);
  } catch (e) {
    if (!(e instanceof PythonDepsError)) throw e;
    r.issues.add(r.at("requirements"), `${files.dir}: ${e.message}`);
    return undefined;
  }
}

function parseDatabase(
  r: Reader | undefined,
  app: string | undefined,
  stack: string,
  procfileRelease?: string,
): Partial<DatabaseConfig> {
  if (!r) return {};
  const kind = r.oneOf(
    "kind",
    ["sqlite", "postgres", "rds", "external", "none"] as const,
    D.DATABASE_DEFAULTS.kind,
  );
  const pg = D.isPostgres(kind);
  const db: Partial<DatabaseConfig> = {
    kind,
    sqliteFile:
      r.string("sqliteFile", {
        expected: 'a file name like "app.db" (no directories; it lives in shared/data)',
        example: "app.db",
        test: (s) => /^[A-Za-z0-9._-]+$/.test(s) && s !== "." && s !== "..",
      }) ?? (r.has("sqliteFile") ? undefined : D.DATABASE_DEFAULTS.sqliteFile),
    postgresName:
      r.string("postgresName", {
        expected: "a Postgres identifier (lowercase letters, digits and _, up to 63 characters)",
        example: "shop_prod",
        test: (s) => /^[a-z_][a-z0-9_]{0,62}$/.test(s),
      }) ?? (r.has("postgresName") ? undefined : app ? D.defaultPostgresName(app, stack) : undefined),
    migrate:
      r.string("migrate", { expected: "a shell command", example: '"alembic upgrade head"' }) ??
      (r.has("migrate")
        ? undefined
        : kind !== "none" && procfileRelease
          ? procfileRelease
          : D.DATABASE_DEFAULTS.migrate),
    revision:
      r.string("revision", { expected: "a shell command", example: '"alembic current"' }) ??
      (r.has("revision") ? undefined : D.DATABASE_DEFAULTS.revision),
  };
  const poolReader = r.object("pool");
  if (poolReader) {
    db.pool = {
      size: poolReader.int("size", 1, 1000, D.DATABASE_POOL_DEFAULTS.size),
      maxOverflow: poolReader.int("maxOverflow", 0, 1000, D.DATABASE_POOL_DEFAULTS.maxOverflow),
      timeoutSeconds: poolReader.int("timeoutSeconds", 1, 3600, D.DATABASE_POOL_DEFAULTS.timeoutSeconds),
      recycleSeconds: poolReader.int("recycleSeconds", -1, 86400, D.DATABASE_POOL_DEFAULTS.recycleSeconds),
    } as DatabaseConfig["pool"];
    poolReader.finish(POOL_KEYS);
  } else if (!r.has("pool")) {
    db.pool = { ...D.DATABASE_POOL_DEFAULTS };
  }
  const rdsReader = kind === "rds" ? r.object("rds") : undefined;
  if (kind === "rds" && (rdsReader || !r.has("rds"))) db.rds = parseRds(rdsReader, stack);
  if (kind !== "rds") r.notHere("rds", `only used when ${r.at("kind")} is rds (got ${show(kind)})`);
  r.finish(KNOWN_KEYS.database);
  if (!pg)
    r.notHere("pool", `only used when ${r.at("kind")} is postgres, rds or external (got ${show(kind)})`);
  if (kind !== "sqlite")
    r.notHere("sqliteFile", `only used when ${r.at("kind")} is sqlite (got ${show(kind)})`);
  if (!pg || kind === "external")
    r.notHere(
      "postgresName",
      `only used when ${r.at("kind")} is postgres or rds (got ${show(kind)}${kind === "external" ? ": the name is in apphost:databaseUrl" : ""})`,
    );
  if (kind === "none") {
    r.notHere("migrate", `there is no database to migrate when ${r.at("kind")} is none`);
    r.notHere("revision", `there is no database to migrate when ${r.at("kind")} is none`);
  }
  if (db.revision && !db.migrate) {
    r.issues.add(
      r.at("revision"),
      `reports the revision ${r.at("migrate")} reaches, but migrate is not set; set migrate or remove it`,
    );
  }
  return db;
}

/** `apphost:database.rds`; every key has a default, so an absent object is the defaults. */
function parseRds(r: Reader | undefined, stack: string): RdsConfig | undefined {
  const d = D.RDS_DEFAULTS;
  if (!r) return { ...d, backupRetentionDays: D.defaultRdsBackupRetentionDays(stack) };
  const rds = {
    instanceClass:
      r.string("instanceClass", {
        expected: 'an RDS instance class like "db.t4g.micro"',
        example: "db.t4g.micro",
        test: (s) => /^db\.[a-z0-9]+\.[a-z0-9]+$/.test(s),
      }) ?? (r.has("instanceClass") ? undefined : d.instanceClass),
    allocatedStorageGb: r.int("allocatedStorageGb", 20, 65536, d.allocatedStorageGb),
    // pg_dump refuses a server newer than itself: Debian 12 ships 15.
    engineVersion:
      r.string("engineVersion", {
        expected:
          'Postgres "15" or a 15.x minor version (Debian 12\'s pg_dump, which takes the backups, is 15)',
        example: '"15"',
        test: (s) => /^15(\.\d+)?$/.test(s),
      }) ?? (r.has("engineVersion") ? undefined : d.engineVersion),
    backupRetentionDays: r.int("backupRetentionDays", 1, 35, D.defaultRdsBackupRetentionDays(stack)),
    multiAz: r.bool("multiAz", d.multiAz),
    subnetIds: r.stringList("subnetIds", undefined, "subnet-0123456789abcdef0"),
  };
  if (rds.subnetIds) {
    const bad = rds.subnetIds.filter((s) => !/^subnet-[0-9a-f]{8,17}$/.test(s));
    if (bad.length > 0) {
      r.issues.add(
        r.at("subnetIds"),
        `expected subnet ids like "subnet-0123456789abcdef0", got ${bad.map((b) => show(b)).join(", ")}`,
      );
    } else if (rds.subnetIds.length < 2) {
      r.issues.add(
        r.at("subnetIds"),
        "RDS needs subnets in two availability zones at least; list two or more",
      );
    }
  }
  r.finish(RDS_KEYS);
  const { subnetIds, ...required } = rds;
  if (Object.values(required).some((v) => v === undefined)) return undefined;
  return { ...(required as Omit<RdsConfig, "subnetIds">), ...(subnetIds ? { subnetIds } : {}) };
}

function parseBackups(r: Reader | undefined, stack: string): Partial<BackupsConfig> {
  if (!r) return {};
  const backups: Partial<BackupsConfig> = {
    // A full OnCalendar check needs systemd-analyze on the host; this catches shell metacharacters and typos of the shorthands.
    schedule:
      r.string("schedule", {
        expected: 'a systemd OnCalendar expression like "daily" or "*-*-* 03:30:00"',
        example: "daily",
        test: (s) => /^[A-Za-z0-9*:,./~ -]+$/.test(s),
      }) ?? (r.has("schedule") ? undefined : D.BACKUPS_DEFAULTS.schedule),
    // Two at least: the live release's pre-migration backup and the newest one.
    keep: r.int("keep", 2, 1000, D.defaultBackupsKeep(stack)),
    s3: r.bool("s3", D.BACKUPS_DEFAULTS.s3),
    // Up to ten years; S3 lifecycle rules count whole days from 1.
    s3ExpireDays: r.int("s3ExpireDays", 1, 3650, D.defaultBackupsS3ExpireDays(stack)),
  };
  r.finish(KNOWN_KEYS.backups);
  if (backups.s3 === false) {
    r.notHere("s3ExpireDays", `only used when ${r.at("s3")} is true (no bucket is created otherwise)`);
  }
  return backups;
}

function parseReleases(r: Reader | undefined): Partial<ReleasesConfig> {
  if (!r) return {};
  const releases: Partial<ReleasesConfig> = {
    // Two at least: the live release and the one a rollback goes back to.
    keep: r.int("keep", 2, 100, D.RELEASES_DEFAULTS.keep),
    rollbackTo: r.string("rollbackTo", {
      expected: "a release id (YYYYMMDDHHMMSS-<8 hex>) from `npm run releases`",
      example: "20250102120000-1a2b3c4d",
      test: (s) => /^[0-9]{14}-[0-9a-f]{8}$/.test(s),
    }),
    healthTimeoutSeconds: r.int("healthTimeoutSeconds", 1, 3600, D.RELEASES_DEFAULTS.healthTimeoutSeconds),
    drainSeconds: r.int("drainSeconds", 0, 600, D.RELEASES_DEFAULTS.drainSeconds),
    lockTtlMinutes: r.int("lockTtlMinutes", 1, 1440, D.RELEASES_DEFAULTS.lockTtlMinutes),
    minFreeMb: r.int("minFreeMb", 0, 1048576, D.RELEASES_DEFAULTS.minFreeMb),
    batchSize: r.int("batchSize", 1, 100, D.RELEASES_DEFAULTS.batchSize),
  };
  r.finish(KNOWN_KEYS.releases);
  return releases;
}

// ---------------------------------------------------------------------------
// Secrets and rules spanning sections

/**
 * A dev-only switch that wipes the database at startup (DB_RESET_ON_STARTUP=true)
 * must never reach a production stack: refused on stacks named prod*.
 */
function checkResetSwitches(issues: Issues, ctx: ParseContext, app: Partial<AppConfig>): void {
  if (!D.isProductionStack(ctx.stack)) return;
  const why =
    `is a dev-only switch that wipes the database when the app starts; stack "${ctx.stack}" is a production stack ` +
    "(named prod*), so apphost refuses it. Remove it, or set it to false";
  for (const name of D.DEV_RESET_SWITCHES) {
    const value = app.env?.[name];
    if (value !== undefined && D.isSwitchOn(value)) issues.add(child("apphost:app.env", name), why);
  }
  for (const name of ctx.secrets.secretEnvResetsOn ?? []) {
    issues.add(child("apphost:secretEnv", name), why);
  }
}

function checkSecrets(
  issues: Issues,
  secrets: SecretFacts,
  host: PartialHost,
  app: Partial<AppConfig>,
): void {
  const key = "apphost:sshPrivateKey";
  if (!secrets.sshPrivateKey) {
    issues.add(
      key,
      "missing; apphost deploys over SSH with this key (on ec2 too). " +
        `Store it encrypted with: pulumi config set --secret ${key} < ~/.ssh/apphost_deploy`,
    );
  } else {
    const info = secrets.sshPrivateKeyInfo;
    if (info?.format === "unknown") {
      issues.add(
        key,
        'expected an OpenSSH or PEM private key ("-----BEGIN OPENSSH PRIVATE KEY-----"); ' +
          `store the private key file itself: pulumi config set --secret ${key} < ~/.ssh/apphost_deploy`,
      );
    } else if (info?.encrypted) {
      issues.add(
        key,
        "the key is protected by a passphrase, and deploys run without a prompt; " +
          'use a dedicated deploy key without one (ssh-keygen -t ed25519 -N "" -f ~/.ssh/apphost_deploy)',
      );
    } else if (
      info?.publicKey &&
      host.kind === "ec2" &&
      host.sshPublicKey &&
      keyIdentity(host.sshPublicKey) !== keyIdentity(info.publicKey)
    ) {
      issues.add(
        "apphost:host.sshPublicKey",
        `does not match ${key} (whose public half is ${show(info.publicKey)}), so the instance would only accept ` +
          "a key the deployer does not hold; set it to the output of: ssh-keygen -y -f ~/.ssh/apphost_deploy",
      );
    }
  }

  const jump = secrets.jumpPrivateKeyInfo;
  if (jump) {
    const jumpKey = "apphost:jumpPrivateKey";
    if (host.via && host.via.kind !== "jump") {
      issues.add(jumpKey, "only used when apphost:host.via is a jump host ({jump: {...}}); remove it");
    } else if (jump.format === "unknown") {
      issues.add(
        jumpKey,
        'expected an OpenSSH or PEM private key ("-----BEGIN OPENSSH PRIVATE KEY-----"); ' +
          `store the key file itself: pulumi config set --secret ${jumpKey} < ~/.ssh/apphost_jump`,
      );
    } else if (jump.encrypted) {
      issues.add(
        jumpKey,
        "the key is protected by a passphrase, and deploys run without a prompt; use a key without one",
      );
    }
  }

  const types = secrets.secretEnvTypes;
  if (types === undefined) return;
  if (typeof types === "string") {
    issues.add(
      "apphost:secretEnv",
      `expected an object of environment variables, got ${types === "array" ? "a list" : `a ${types}`}; ` +
        "set each variable with: pulumi config set --secret --path 'apphost:secretEnv.NAME' value",
    );
    return;
  }
  for (const [name, type] of Object.entries(types)) {
    const problem = envProblem(name, type);
    if (problem) {
      issues.add(child("apphost:secretEnv", name), problem);
    } else if (app.env && name in app.env) {
      issues.add(
        child("apphost:secretEnv", name),
        `also set in apphost:app.env; keep it in one place (secretEnv if it is a secret)`,
      );
    }
  }
}

interface Parsed {
  host: PartialHost;
  dns: Partial<DnsConfig>;
  tls: Partial<TlsConfig>;
  proxy: Partial<ProxyConfig>;
  app: Partial<AppConfig>;
  database: Partial<DatabaseConfig>;
  backups: Partial<BackupsConfig>;
}

function checkCrossField(issues: Issues, { host, dns, tls, proxy, app, database, backups }: Parsed): void {
  const mode = tls.mode;
  const names = dns.hostnames;

  if (database.kind === "rds" && host.kind && host.kind !== "ec2") {
    issues.add(
      "apphost:database.kind",
      `"rds" needs apphost:host.kind ec2 (got ${show(host.kind)}): the database goes in the instance's VPC, reachable from its security group only; ` +
        'use "postgres" to run Postgres on this server',
    );
  }
  if (
    database.kind === "rds" &&
    host.kind === "ec2" &&
    host.subnetId &&
    database.rds &&
    !database.rds.subnetIds
  ) {
    issues.add(
      "apphost:database.rds.subnetIds",
      `missing: the instance is in ${host.subnetId} (apphost:host.subnetId), so the database needs a subnet group in that VPC; ` +
        "list two or more of its subnets in different availability zones: pulumi config set --path 'apphost:database.rds.subnetIds[0]' subnet-...",
    );
  }

  if (mode === "cloudflare-origin" && dns.provider && dns.provider !== "cloudflare") {
    issues.add(
      "apphost:tls.mode",
      `"cloudflare-origin" needs apphost:dns.provider "cloudflare" (the Origin CA signs only for zones Cloudflare serves), ` +
        `got ${show(dns.provider)}; set apphost:dns.provider to cloudflare or choose another tls.mode`,
    );
  }
  if (mode === "cloudflare-origin" && dns.provider === "cloudflare" && names) {
    // An Origin CA certificate is trusted by Cloudflare's edge only; browsers reaching the host directly would reject it.
    names.forEach((h, i) => {
      if (!h.proxied) {
        issues.add(
          `apphost:dns.hostnames[${i}]`,
          `${show(h.name)} is not proxied, but tls.mode cloudflare-origin serves a certificate only Cloudflare trusts; ` +
            `set proxied: true on it or choose tls.mode caddy-acme`,
        );
      }
    });
  }
  if (mode === "certbot" && proxy.kind && proxy.kind !== "nginx") {
    issues.add(
      "apphost:tls.mode",
      `"certbot" needs apphost:proxy.kind "nginx" (certbot's installer edits nginx), got ${show(proxy.kind)}; ` +
        "set apphost:proxy.kind to nginx, or use tls.mode caddy-acme with Caddy",
    );
  }
  if (mode === "caddy-acme" && proxy.kind && proxy.kind !== "caddy") {
    issues.add(
      "apphost:tls.mode",
      `"caddy-acme" needs apphost:proxy.kind "caddy" (Caddy obtains the certificates itself), got ${show(proxy.kind)}; ` +
        "set apphost:proxy.kind to caddy, or use tls.mode certbot with nginx",
    );
  }
  if (mode === "internal" && proxy.kind && proxy.kind !== "caddy") {
    issues.add(
      "apphost:tls.mode",
      `"internal" needs apphost:proxy.kind "caddy" (its local CA issues the certificate), got ${show(proxy.kind)}; ` +
        "set apphost:proxy.kind to caddy, or use tls.mode off behind another TLS terminator",
    );
  }
  const needsNames = mode === "caddy-acme" || mode === "certbot" || mode === "cloudflare-origin";
  if (names?.length === 0 && dns.provider === "none") {
    // (with provider cloudflare, parseDns already reported the missing hostnames)
    issues.add(
      "apphost:dns.hostnames",
      needsNames
        ? `missing; tls.mode ${mode} needs the names to put on the certificate; ` +
            setHint("apphost:dns.hostnames[0].name", "example.com")
        : "missing; the proxy serves only the names listed here (without DNS, list the host's public IPv4 address); " +
            setHint("apphost:dns.hostnames[0].name", "203.0.113.10"),
    );
  }
  names?.forEach((h, i) => {
    if (!isIpv4(h.name)) return;
    const path = `apphost:dns.hostnames[${i}]`;
    if (dns.provider === "cloudflare") {
      issues.add(
        path,
        `${show(h.name)} is an address, and DNS records need a name; use a name like "www.example.com"`,
      );
    } else if (needsNames) {
      issues.add(
        path,
        `${show(h.name)} is an address, and tls.mode ${mode} needs a DNS name on the certificate; ` +
          "use a name, or tls.mode internal or off",
      );
    }
  });
  if (dns.ipv6 === true && dns.provider === "cloudflare" && host.kind && host.kind !== "ec2") {
    issues.add(
      "apphost:dns.ipv6",
      `AAAA records need the instance's IPv6 address, which apphost only knows for apphost:host.kind ec2 (got ${show(host.kind)}); remove it`,
    );
  }
  if (host.kind === "existing" && dns.provider === "cloudflare" && host.address && !isIpv4(host.address)) {
    issues.add(
      "apphost:host.address",
      `is a DNS name, but apphost:dns.provider cloudflare publishes A records and needs the server's IPv4 address; ` +
        `${setHint("apphost:host.address", "203.0.113.10")}`,
    );
  }

  // The S3 copy authenticates as the instance's IAM role (no keys on the host), which only an
  // instance the program creates has; and it runs Debian 12's awscli package.
  if (backups.s3 === true) {
    const path = "apphost:backups.s3";
    if (host.kind === "existing") {
      issues.add(
        path,
        `needs apphost:host.kind ec2 (got "existing"): the copy authenticates with the IAM role of the instance apphost creates, ` +
          "and apphost puts no AWS keys on a server it did not create; set it to false, or copy the backups directory with your own tooling",
      );
    } else if (host.kind === "ec2" && host.os === "ubuntu-24.04") {
      issues.add(
        path,
        `needs apphost:host.os debian-12 (got "ubuntu-24.04"): the copy uses Debian 12's awscli package, ` +
          "which Ubuntu 24.04's archive does not carry; set apphost:host.os to debian-12 or set this to false",
      );
    }
    if (database.kind === "none") {
      issues.add(
        path,
        `there is nothing to back up when apphost:database.kind is none; set it to false or remove it`,
      );
    }
  }

  // The two web ports and the upstream port must not collide with anything else listening on the host.
  if (app.basePort !== undefined) {
    const taken: Array<[number | undefined, string]> = [
      [proxy.httpPort, "apphost:proxy.httpPort"],
      [proxy.httpsPort, "apphost:proxy.httpsPort"],
      [host.port, "apphost:host.port"],
      // The upstream rule redirects loopback connections to basePort+2 host-wide, and the web
      // instances bind the other two: none may be a port a local service on the host uses.
      ...LOCAL_SERVICE_PORTS.map(([port, what]): [number, string] => [port, what]),
    ];
    for (const [port, key] of taken) {
      if (port !== undefined && port >= app.basePort && port <= upstreamPort(app.basePort)) {
        issues.add(
          "apphost:app.basePort",
          `the web instances listen on ${app.basePort} and ${app.basePort + 1} and the proxy connects to ${upstreamPort(app.basePort)}, which collides with ${key} (${port}); ` +
            setHint("apphost:app.basePort", String(D.APP_DEFAULTS.basePort)),
        );
      }
    }
  }
}

/** Ports of services that listen on a host's loopback: apphost's own proxy and database, and the usual neighbours. */
export const LOCAL_SERVICE_PORTS: ReadonlyArray<readonly [number, string]> = [
  [2019, "Caddy's admin API"],
  [3306, "MySQL"],
  [5432, "Postgres (apphost:database.kind postgres)"],
  [6379, "Redis"],
  [11211, "memcached"],
];

// ---------------------------------------------------------------------------
// Private key internals

/**
 * Several app hosts, the balancer and the database that must live on none of
 * them; apphost:databaseUrl for database.kind external.
 */
function checkHosts(
  issues: Issues,
  {
    host,
    tls,
    proxy,
    database,
    dns,
    lb,
  }: {
    host: PartialHost;
    tls: Partial<TlsConfig>;
    proxy: Partial<ProxyConfig>;
    database: Partial<DatabaseConfig>;
    dns: Partial<DnsConfig>;
    lb?: Partial<LbConfig>;
  },
  url: DatabaseUrlInfo | undefined,
): void {
  const count = host.kind === "existing" ? (host.addresses?.length ?? 1) : (host.count ?? 1);
  const many = count > 1;
  const list = host.kind === "ec2" ? "apphost:host.count" : "apphost:host.addresses";
  if (many && (database.kind === "sqlite" || database.kind === "postgres")) {
    issues.add(
      "apphost:database.kind",
      `${show(database.kind)} keeps the data on one app host, and ${list} lists ${count}; ` +
        'use "external" with the URL of a Postgres that lives on none of them ' +
        "(pulumi config set --secret apphost:databaseUrl postgresql://user:password@host:5432/name)" +
        (host.kind === "ec2" ? ', or "rds"' : ""),
    );
  }
  if (host.kind === "ec2") checkAlb(issues, { host, tls, proxy, dns }, count);
  if (many && !lb && host.kind === "existing") {
    issues.add(
      "apphost:lb",
      `missing: ${list} lists ${count} app hosts, and they serve behind a balancer host; ` +
        "set apphost:lb.address (an existing server apphost runs Caddy on), or list one address",
    );
  }
  if (lb) {
    if (host.kind && host.kind !== "existing") {
      issues.add(
        "apphost:lb",
        `only used when apphost:host.kind is existing (got ${show(host.kind)}); remove it`,
      );
    } else if (!many && host.kind === "existing" && host.addresses) {
      issues.add(
        "apphost:lb",
        `${list} lists one app host; a balancer needs two or more (add them), or remove apphost:lb`,
      );
    }
    if (proxy.kind && proxy.kind !== "caddy") {
      issues.add(
        "apphost:proxy.kind",
        `behind apphost:lb the app hosts run Caddy (it admits only the balancer's address and trusts its X-Forwarded-* headers); got ${show(proxy.kind)}, set "caddy"`,
      );
    }
    if (tls.mode && !["caddy-acme", "internal", "off"].includes(tls.mode)) {
      issues.add(
        "apphost:tls.mode",
        `behind apphost:lb the balancer's Caddy serves TLS: one of "caddy-acme", "internal", "off"; got ${show(tls.mode)}`,
      );
    }
    const addresses = new Set((host.addresses ?? []).map((a: HostAddress) => a.address.toLowerCase()));
    if (lb.address && addresses.has(lb.address.toLowerCase())) {
      issues.add(
        "apphost:lb.address",
        `${show(lb.address)} is also an app host (${list}); the balancer is a host of its own`,
      );
    }
  }
  const key = "apphost:databaseUrl";
  if (database.kind === "external") {
    if (!url) {
      issues.add(
        key,
        "missing (apphost:database.kind is external); store the URL encrypted: " +
          `pulumi config set --secret ${key} postgresql://user:password@host:5432/name`,
      );
    } else if (!url.secret) {
      issues.add(key, `stored in plain text; it holds a password: pulumi config set --secret ${key} <url>`);
    } else if (!url.isPostgresUrl) {
      issues.add(
        key,
        `expected a postgresql://user:password@host[:port]/database URL (a ${url.type}, not one); ` +
          `set it again: pulumi config set --secret ${key} postgresql://...`,
      );
    } else if (
      url.host &&
      (host.addresses ?? []).some((a) => a.address.toLowerCase() === url.host!.toLowerCase()) &&
      many
    ) {
      issues.add(
        key,
        `its host ${show(url.host)} is one of the app hosts (${list}); the database must live on none of them`,
      );
    }
  } else if (url) {
    issues.add(
      key,
      `only used when apphost:database.kind is external (got ${show(database.kind)}); remove it`,
    );
  }
}

/**
 * apphost:host.count > 1 on ec2: the instances serve behind an Application
 * Load Balancer with an ACM certificate validated through Cloudflare records.
 */
function checkAlb(
  issues: Issues,
  {
    host,
    tls,
    proxy,
    dns,
  }: { host: PartialHost; tls: Partial<TlsConfig>; proxy: Partial<ProxyConfig>; dns: Partial<DnsConfig> },
  count: number,
): void {
  if (count <= 1) {
    if (tls.mode === "acm") {
      issues.add(
        "apphost:tls.mode",
        '"acm" is the load balancer\'s certificate, used with apphost:host.count > 1; with one instance use "caddy-acme" or "cloudflare-origin"',
      );
    }
    if (host.subnetIds) {
      issues.add(
        "apphost:host.subnetIds",
        "only used with apphost:host.count > 1 (use subnetId for one instance); remove it",
      );
    }
    return;
  }
  if (tls.mode && tls.mode !== "acm") {
    issues.add(
      "apphost:tls.mode",
      `with apphost:host.count ${count} the load balancer serves TLS with an ACM certificate: set "acm" (got ${show(tls.mode)})`,
    );
  }
  if (dns.provider !== "cloudflare") {
    issues.add(
      "apphost:dns.provider",
      `with apphost:host.count ${count} the ACM certificate is validated through DNS records apphost creates, and the hostnames point at the load balancer: set "cloudflare" (got ${show(dns.provider ?? "none")})`,
    );
  }
  if (proxy.kind && proxy.kind !== "caddy") {
    issues.add(
      "apphost:proxy.kind",
      `behind the load balancer the instances run Caddy; got ${show(proxy.kind)}, set "caddy"`,
    );
  }
  if (host.subnetId) {
    issues.add(
      "apphost:host.subnetId",
      `one subnet for ${count} instances; list two subnets in different availability zones at least in apphost:host.subnetIds (or neither, for the default VPC's), and remove subnetId`,
    );
  }
  if (host.subnetIds && host.subnetIds.length < 2) {
    issues.add(
      "apphost:host.subnetIds",
      "the load balancer needs subnets in two availability zones at least; list two or more",
    );
  }
  if (host.via?.kind === "instance-connect") {
    issues.add(
      "apphost:host.via",
      `"instance-connect" creates one endpoint per instance, and a VPC holds one; with apphost:host.count ${count} use direct or a jump host`,
    );
  }
}
