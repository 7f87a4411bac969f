/**
 * The stack-config parser: raw `apphost:<section>` objects in, a fully
 * defaulted `StackConfig` out, or ONE `ConfigError` that lists every problem.
 *
 * The sections are a zod 4 schema (schema.ts); the rules that span sections
 * are a refinement of the whole stack, here. Nothing reads Pulumi config or
 * creates resources, so a bad stack fails before `pulumi up` touches anything,
 * and the rules are tested as a table (test/unit/config.test.ts). Every
 * message names the full key as it appears on the stack
 * (`apphost:dns.hostnames[1].name`), says what was expected and what to do.
 */
import * as sshpk from "sshpk";
import { z } from "zod";
import * as D from "./defaults";
import { upstreamPort } from "../paths";
import { chainedParts, parseProcfile, splitChain } from "./procfile";
import { envReferences, referenceProblem } from "./envrefs";
import type { PythonFacts } from "../release/python";
import {
  closest,
  envProblem,
  isIpv4,
  isObject,
  keyIdentity,
  keyOf,
  passedFields,
  sections,
  SECTIONS,
  setHint,
  show,
  child,
  type Obj,
  type Prepared,
  type Section,
} from "./schema";
import type {
  AppConfig,
  DatabaseConfig,
  BackupsConfig,
  DnsConfig,
  Ec2HostConfig,
  ExistingHostConfig,
  HostAddress,
  HostConfig,
  LbConfig,
  ProxyConfig,
  StackConfig,
  TlsConfig,
} from "./types";

export {
  archOf,
  ipv4CidrProblem,
  isDnsName,
  isIpv4,
  ORIGIN_VALIDITY_DAYS,
  SECTIONS,
  type Section,
} from "./schema";

/** Top-level keys read outside the pure parser because they hold secrets. */
export const SECRET_KEYS = ["sshPrivateKey", "secretEnv", "jumpPrivateKey", "alerts", "databaseUrl"] as const;

/** Keys of `apphost:alerts` (a secret object). */
export const ALERTS_KEYS = ["webhook"] as const;

/** Where a key's object is in a schema: through defaults, pipes, records and unions. */
function objectOf(s: z.core.$ZodType): SchemaDef | undefined {
  const def = s._zod.def as SchemaDef;
  if (def.shape || def.options || def.valueType) return def;
  for (const next of [def.in, def.out, def.innerType]) {
    const found = next && objectOf(next);
    if (found) return found;
  }
  return undefined;
}
interface SchemaDef {
  shape?: Record<string, z.core.$ZodType>;
  options?: z.core.$ZodType[];
  valueType?: z.core.$ZodType;
  in?: z.core.$ZodType;
  out?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
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
 * `apphost:alerts`: a secret object `{webhook: <https URL>}`. Only facts about
 * it arrive here (AlertsInfo), so the URL (which is itself a credential: anyone
 * holding it can post) never reaches a message.
 */
function checkAlerts(issues: Issues, info: AlertsInfo | undefined): void {
  const key = "apphost:alerts";
  const set = `pulumi config set --secret --path '${key}.webhook' https://hooks.slack.com/services/...`;
  // Pulumi.yaml's default is {}: no webhook, no alerts.
  if (!info || (info.type === "object" && info.keys.length === 0)) return;
  if (info.type !== "object") {
    return issues.add(key, `expected an object {webhook: <URL>}, got a ${info.type}; set it with: ${set}`);
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
}

function alertsEnabled(info: AlertsInfo | undefined): boolean {
  return info?.type === "object" && info.webhookType === "string" && info.webhookIsUrl === true;
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

/**
 * The whole stack: the sections, top-level typos, the rules that span
 * sections (run even when a section failed, over what passed), and the
 * defaults that depend on another section.
 */
export function stackSchema(ctx: ParseContext, p: Prepared) {
  const all = [...SECTIONS, ...SECRET_KEYS];
  return z
    .strictObject(sections(ctx, p), {
      error: (iss) =>
        iss.code !== "unrecognized_keys"
          ? undefined
          : iss.keys
              .map((key) => {
                const near = closest(key, all);
                return near
                  ? `unknown key; did you mean apphost:${near}? Rename or remove it`
                  : `unknown key; apphost reads ${all.map((k) => `apphost:${k}`).join(", ")}. Remove it`;
              })
              .join("\n"),
    })
    .superRefine(
      (v, c) => {
        const s = passed(v, c.issues);
        const issues: Issues = {
          add: (key, message) => c.addIssue({ code: "custom", message, input: undefined, params: { key } }),
        };
        checkEnvReferences(issues, s.app, s.database);
        checkReservedEnv(issues, s.app, s.database, ctx.secrets.secretEnvTypes);
        checkSecrets(issues, ctx.secrets, s.host, s.app);
        checkAlerts(issues, ctx.secrets.alertsInfo);
        checkResetSwitches(issues, ctx, s.app);
        checkCrossField(issues, s);
        checkHosts(issues, s, ctx.secrets.databaseUrlInfo);
      },
      { when: () => true },
    )
    .transform(({ lb, ...s }) => ({
      project: ctx.project,
      stack: ctx.stack,
      ...s,
      proxy: { ...s.proxy, hsts: s.proxy.hsts ?? D.defaultHsts(s.tls.mode) },
      database: {
        ...s.database,
        postgresName: s.database.postgresName ?? D.defaultPostgresName(s.app.name, ctx.stack),
      },
      alerts: { enabled: alertsEnabled(ctx.secrets.alertsInfo) },
      ...(lb
        ? { lb: { ...lb, user: lb.user ?? s.host.user, privateAddress: lb.privateAddress ?? lb.address } }
        : {}),
    }));
}

/**
 * Validates and normalizes the raw config. `raw` maps section name to the
 * object read from `apphost:<section>`; any other key in it is reported as an
 * unknown top-level key (index.ts passes every `apphost:*` key it finds).
 */
export function parseStackConfig(raw: Record<string, unknown>, ctx: ParseContext): StackConfig {
  const p = prepare(raw, ctx);
  const result = stackSchema(ctx, p).safeParse(p.raw);
  if (result.success) return result.data;
  throw new ConfigError(ctx.stack, toIssues(result.error.issues, p));
}

/** One `ConfigIssue` per zod issue (per key of an unknown-keys issue), top-level typos first. */
function toIssues(issues: readonly z.core.$ZodIssue[], p: Prepared): ConfigIssue[] {
  const top = (iss: z.core.$ZodIssue) => (iss.code === "unrecognized_keys" && iss.path.length === 0 ? 0 : 1);
  return [...issues]
    .sort((a, b) => top(a) - top(b))
    .flatMap((iss) =>
      iss.code === "unrecognized_keys"
        ? iss.keys.map((k, i) => ({ path: keyOf([...iss.path, k]), message: iss.message.split("\n")[i] }))
        : [
            {
              path: (iss.code === "custom" && (iss.params?.key as string)) || keyOf(iss.path),
              message: iss.message,
            },
          ],
    )
    .map((issue) =>
      p.procfile && issue.path.startsWith("apphost:app.processes")
        ? {
            ...issue,
            path: issue.path.replace(
              "apphost:app.processes",
              `apphost:app.processes (from ${p.procfile.where})`,
            ),
          }
        : issue,
    );
}

/** YAML's empty value (`key:`) is no value; the secrets are not the parser's. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (!isObject(v)) return v;
  return Object.fromEntries(
    Object.entries(v).flatMap(([k, x]) => (x === null ? [] : [[k, withoutNulls(x)]])),
  );
}

/** The input as the schema reads it, with the app's Procfile standing in for apphost:app.processes. */
function prepare(raw: Record<string, unknown>, ctx: ParseContext): Prepared {
  const input = withoutNulls(raw) as Obj;
  for (const key of SECRET_KEYS) delete input[key];
  // Pulumi.yaml's default is {}: an empty object is no balancer.
  if (isObject(input.lb) && Object.keys(input.lb).length === 0) delete input.lb;
  // An empty value in apphost:app.env is reported (a string value is expected), not dropped.
  if (isObject(raw.app) && isObject(raw.app.env) && isObject(input.app)) input.app.env = raw.app.env;
  const files = ctx.appFiles;
  if (!isObject(input.app) || input.app.processes !== undefined || files?.procfile === undefined)
    return { raw: input };
  const where = `${files.dir}/Procfile`;
  const { entries, bad } = parseProcfile(files.procfile);
  const problems = bad.map(
    (b) =>
      `line ${b.line} "${b.text}" is not "name: command"; fix the line, or set apphost:app.processes in the stack`,
  );
  const processes: Record<string, string> = {};
  for (const e of entries.filter((e) => e.name !== "release")) {
    const parts = e.name === "web" ? chainedParts(e.command) : undefined;
    if (!parts) {
      processes[e.name] = e.command;
      continue;
    }
    const { migrate, build, server } = splitChain(parts);
    const [m, b] = [migrate.join(" && "), build.join(" && ")];
    problems.push(
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
  }
  if (problems.length === 0 && Object.keys(processes).length === 0) {
    problems.push("the Procfile names no process; add a web: line or set apphost:app.processes in the stack");
  }
  if (problems.length === 0) input.app = { ...input.app, processes };
  const release = entries.find((e) => e.name === "release")?.command;
  return { raw: input, procfile: { where, problems, release } };
}

/** Issues of the rules spanning sections, at keys of their own spelling (`apphost:secretEnv.X`). */
interface Issues {
  add(path: string, message: string): void;
}

/** Both host shapes at once, so a half-read host can still be checked against other sections. */
type PartialHost = Partial<Omit<Ec2HostConfig, "kind">> &
  Partial<Omit<ExistingHostConfig, "kind">> & { kind?: HostConfig["kind"] };

interface Parsed {
  host: PartialHost;
  dns: Partial<DnsConfig>;
  tls: Partial<TlsConfig>;
  proxy: Partial<ProxyConfig>;
  app: Partial<AppConfig>;
  database: Partial<DatabaseConfig>;
  backups: Partial<BackupsConfig>;
  lb?: Partial<LbConfig>;
}

/**
 * The sections as far as they passed: a section that failed as a whole is
 * empty, a field that failed is undefined (unknown keys and the issues of
 * rules do not count), so the rules spanning sections never follow up on an error.
 */
function passed(v: unknown, issues: readonly z.core.$ZodRawIssue[]): Parsed {
  const out: Obj = {};
  for (const name of SECTIONS) {
    const section = isObject(v) ? v[name] : undefined;
    const own = issues.filter((i) => i.path?.[0] === name && i.code !== "unrecognized_keys");
    const whole = own.some((i) => i.path?.length === 1 || (name === "host" && i.path?.[1] === "kind"));
    if (isObject(section) && !whole) out[name] = passedFields(section, own, 1);
    else if (name !== "lb" || section !== undefined) out[name] = {};
  }
  return out as unknown as Parsed;
}

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
