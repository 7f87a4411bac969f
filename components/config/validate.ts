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
import { isIPv4 } from "node:net";
import * as sshpk from "sshpk";
import { z } from "zod";
import * as D from "./defaults";
import { upstreamPort } from "../paths";
import { parseProcfile, type ProcfileEntry, scriptMigrations, splitChain, webChainParts } from "./procfile";
import { envReferences, referenceProblem } from "./envrefs";
import { gunicornBindProblem } from "./webport";
import type { PythonWebApp } from "./webapp";
import type { NodeFacts } from "../release/node";
import { pythonSatisfies, type PythonFacts } from "../release/python";
import * as S from "./schema";
import { child, isObject, show, type Obj } from "./schema";
import type { Ec2HostConfig, ExistingHostConfig, HostConfig, LbConfig, StackConfig } from "./types";

/** Top-level keys read outside the pure parser because they hold secrets. */
export const SECRET_KEYS = S.SECRET_KEYS;

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
  /** `apphost:jumpPrivateKey` (the jump host's key, when it is not the deploy key), if set */
  jumpPrivateKeyInfo?: PrivateKeyInfo;
  /**
   * `apphost:secretEnv`, if set: variable name -> `typeName` of its value, or
   * the type of the whole value when it is not an object.
   */
  secretEnvTypes?: Record<string, string> | string;
  /** Names of `apphost:secretEnv` variables that are dev-only reset switches set on (DEV_RESET_SWITCHES) */
  secretEnvResetsOn?: string[];
  /** `apphost:alerts`, if set (inspectAlerts) */
  alertsInfo?: AlertsInfo;
  /** `apphost:databaseUrl`, if set (inspectDatabaseUrl) */
  databaseUrlInfo?: DatabaseUrlInfo;
}

/** What the parser learns of `apphost:alerts`: whether a webhook is set, and its problems, never the URL. */
export interface AlertsInfo {
  enabled: boolean;
  problems: ConfigIssue[];
}

/** What the parser learns of `apphost:databaseUrl`: what is wrong with it, and its host (no secret). */
export interface DatabaseUrlInfo {
  problem?: string;
  host?: string;
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
  /**
   * Its package.json, if any, for apphost:app.runtime's detection: `tooling` when it has no
   * dependencies and no start script (linters, a frontend build), not a Node app
   */
  packageJson?: "app" | "tooling";
  /** A Node app's lock files, packageManager and workspaces: how its dependencies install (detectNodeDeps) */
  node?: NodeFacts;
  /** The shell script the web process runs (`bash Procfile.sh`) */
  webScript?: AppFile;
  /** The config file gunicorn reads for a web command with no --bind (gunicorn.conf.py) */
  gunicornConf?: AppFile;
  /** The runtime whose program the web command starts (procfile.ts: commandRuntime), for apphost:app.runtime */
  webRuntime?: "python" | "node";
  /**
   * The file a Node web command starts with `node` (procfile.ts: nodeEntryFile) when the app directory lacks it, and
   * the package.json script that runs it: what a build makes (`nest build`'s dist/main), for apphost:app.build;
   * `excluded` when the directory has it but apphost:app.excludes leaves it out of the upload. From `start`, the
   * package.json start script, when neither the stack nor a Procfile says a web command (the one the parser offers).
   */
  webEntryMissing?: { file: string; script?: string; from: AppFile["from"] | "start"; excluded?: true };
  /**
   * For an app whose only Python manifest is a pyproject.toml of tool settings (appfiles.ts: toolsOnlyPyproject):
   * its `[tool.*]` tables, and the .txt files that look like requirements, production ones first
   */
  toolsOnlyPyproject?: { tools: string[]; requirements: string[] };
  /** package.json's packageManager where apphost:app.build starts (`cd frontend && ...`), when it says one */
  buildPackageManager?: unknown;
  /**
   * The web application the app's Python files make, for apphost:app.processes' example when the stack says no web
   * command and there is no Procfile: a Django project's WSGI module, a Flask or FastAPI application (webapp.ts)
   */
  pythonWeb?: PythonWebApp;
}

/** A file of the app the web command reads: its path relative to the app, its text, and where that command was set. */
export interface AppFile {
  path: string;
  text: string;
  from: "config" | "procfile";
}

export interface ConfigIssue {
  /** Full key, e.g. `apphost:dns.hostnames[0].name` */
  path: string;
  /** What was expected and what to do */
  message: string;
}

/** Thrown once, with every problem found; `issues` keeps them for tools and tests. */
export class ConfigError extends Error {
  constructor(
    stack: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super(
      `apphost: ${issues.length === 1 ? "1 problem" : `${issues.length} problems`} in the configuration of stack "${stack}"; ` +
        `no resources were changed. Fix them in Pulumi.${stack}.yaml or with \`pulumi config set --path\`, then run again:\n` +
        issues.map((issue, i) => `  ${i + 1}. ${issue.path}: ${issue.message}`).join("\n"),
    );
    this.name = "ConfigError";
  }
}

/** Facts about `apphost:databaseUrl`; the URL itself stays outside the parser. */
export function inspectDatabaseUrl(value: unknown, secret: boolean): DatabaseUrlInfo {
  const set = "pulumi config set --secret apphost:databaseUrl";
  const m =
    typeof value === "string"
      ? /^postgres(?:ql)?:\/\/([^:@/\s]+):([^@\s]+)@([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?\/([A-Za-z0-9_$-]+)(\?[A-Za-z0-9_=&.-]*)?$/.exec(
          value.trim(),
        )
      : null;
  const driver =
    typeof value === "string" ? /^(postgres(?:ql)?\+[a-z0-9_]+):\/\//.exec(value.trim())?.[1] : undefined;
  const problem = !secret
    ? `stored in plain text; it holds a password: ${set} <url>`
    : driver
      ? `expected a postgresql://user:password@host[:port]/database URL, without the driver (${driver}); ` +
        `set it again without it (${set} postgresql://...), and set apphost:database.urlScheme to ` +
        driver.replace(/^postgres\+/, "postgresql+")
      : !m
        ? `expected a postgresql://user:password@host[:port]/database URL (a ${S.typeName(value)}, not one); ` +
          `set it again: ${set} postgresql://...`
        : undefined;
  return { problem, host: m?.[3] };
}

/**
 * `apphost:alerts`: a secret object `{webhook: <http(s) URL>}`. The URL is
 * itself a credential (anyone holding it can post), so only whether it is on
 * and what is wrong with it leave here.
 */
export function inspectAlerts(value: unknown, secret: boolean): AlertsInfo {
  const key = "apphost:alerts";
  const set = `pulumi config set --secret --path '${key}.webhook' https://hooks.slack.com/services/...`;
  const problems: ConfigIssue[] = [];
  const add = (path: string, message: string) => problems.push({ path, message });
  const w = isObject(value) ? value.webhook : undefined;
  let url: URL | undefined;
  try {
    url = typeof w === "string" ? new URL(w) : undefined;
  } catch {
    url = undefined;
  }
  const enabled =
    !!url && /^https?:$/.test(url.protocol) && url.hostname !== "" && !/[\s"'\\]/.test(String(w));
  if (!isObject(value)) {
    add(key, `expected an object {webhook: <URL>}, got a ${S.typeName(value)}; set it with: ${set}`);
  } else if (Object.keys(value).length > 0) {
    // Pulumi.yaml's default is {}: no webhook, no alerts.
    for (const k of Object.keys(value).filter((k) => k !== "webhook")) {
      add(`${key}.${k}`, S.unknownKey(key, k, ["webhook"]));
    }
    if (w === undefined) {
      add(`${key}.webhook`, `missing; expected the webhook URL alerts are posted to; ${set}`);
    } else if (!enabled) {
      add(
        `${key}.webhook`,
        "expected an http(s) URL (Slack, Discord or any endpoint taking a JSON POST), without spaces or quotes; " +
          `the value is not shown because it is a secret; ${set}`,
      );
    } else if (
      url?.protocol === "http:" &&
      !/^(localhost|127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|\[::1\])/.test(url.hostname)
    ) {
      add(
        `${key}.webhook`,
        "is a plain http:// URL to a public address: the URL and every alert would cross the internet unencrypted; use https://",
      );
    }
    if (!secret) {
      add(
        key,
        `is stored in plain text in the stack file, and the webhook URL is a credential (whoever has it can post); ` +
          `remove it (pulumi config rm ${key}) and set it again as a secret: ${set}`,
      );
    }
  }
  return { enabled, problems };
}

export function inspectPrivateKey(text: string): PrivateKeyInfo {
  const trimmed = text.trim();
  const format = /^-----BEGIN OPENSSH PRIVATE KEY-----/.test(trimmed)
    ? "openssh"
    : /^-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(trimmed)
      ? "pem"
      : undefined;
  if (format === undefined) return { format: "unknown", encrypted: false };
  if (format === "pem" && /^-----BEGIN ENCRYPTED|Proc-Type:\s*4,ENCRYPTED/m.test(trimmed)) {
    return { format, encrypted: true };
  }
  try {
    const key = sshpk.parsePrivateKey(trimmed, format === "openssh" ? "ssh" : "pem");
    return { format, encrypted: false, publicKey: S.keyIdentity(key.toPublic().toString("ssh")) };
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
export function stackSchema(ctx: ParseContext, p: S.Prepared) {
  return z
    .strictObject(S.sections(ctx, p), {
      error: (iss) =>
        iss.code !== "unrecognized_keys"
          ? undefined
          : iss.keys.map((k) => S.unknownKey(undefined, k, [...S.SECTIONS, ...SECRET_KEYS])).join("\n"),
    })
    .superRefine(
      (v, c) =>
        crossRules(passed(v, c.issues), ctx, (key, message) =>
          c.addIssue({ code: "custom", message, input: undefined, params: { key } }),
        ),
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
      alerts: { enabled: ctx.secrets.alertsInfo?.enabled ?? false },
      ...(lb
        ? { lb: { ...lb, user: lb.user ?? s.host.user, privateAddress: lb.privateAddress ?? lb.address } }
        : {}),
    }));
}

/**
 * Schemas built, by their context and S.builtFrom's facts of the input (the
 * newest 16). A built schema reads the rest of the input from its `live`
 * Prepared, which each parse sets first. A stack parses once a run; the unit
 * specs parse some 400 times, and building was two thirds of a parse.
 */
const built = new Map<string, { schema: ReturnType<typeof stackSchema>; live: S.Prepared }>();

function schemaFor(ctx: ParseContext, p: S.Prepared): ReturnType<typeof stackSchema> {
  const key = JSON.stringify([ctx, S.builtFrom(p)]);
  let entry = built.get(key);
  if (!entry) {
    const live: S.Prepared = { ...p };
    entry = { schema: stackSchema(structuredClone(ctx), live), live };
    if (built.size >= 16) built.delete(built.keys().next().value!);
    built.set(key, entry);
  }
  entry.live.raw = p.raw;
  entry.live.procfile = p.procfile;
  return entry.schema;
}

/**
 * Validates and normalizes the raw config. `raw` maps section name to the
 * object read from `apphost:<section>`; any other key in it is reported as an
 * unknown top-level key (index.ts passes every `apphost:*` key it finds).
 */
export function parseStackConfig(raw: Record<string, unknown>, ctx: ParseContext): StackConfig {
  const p = prepare(raw, ctx);
  const result = schemaFor(ctx, p).safeParse(p.raw);
  if (result.success) return result.data;
  // One ConfigIssue per zod issue (per key of an unknown-keys issue), top-level typos first.
  const top = (iss: z.core.$ZodIssue) => (iss.code === "unrecognized_keys" && iss.path.length === 0 ? 0 : 1);
  const issues = [...result.error.issues]
    .sort((a, b) => top(a) - top(b))
    .flatMap((iss) =>
      iss.code === "unrecognized_keys"
        ? iss.keys.map((k, i) => ({ path: S.keyOf([...iss.path, k]), message: iss.message.split("\n")[i] }))
        : [
            {
              path: (iss.code === "custom" && (iss.params?.key as string)) || S.keyOf(iss.path),
              message: iss.message,
            },
          ],
    )
    .map(({ path, message }) => ({
      path: p.procfile ? path.replace(/^apphost:app\.processes/, `$& (from ${p.procfile.where})`) : path,
      message,
    }));
  throw new ConfigError(ctx.stack, issues);
}

/** YAML's empty value (`key:`) is no value; the secrets are not the parser's. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (!isObject(v)) return v;
  return Object.fromEntries(
    Object.entries(v).flatMap(([k, x]) => (x === null ? [] : [[k, withoutNulls(x)]])),
  );
}

/**
 * A chained Procfile web line, and how to split it: the migration runs once
 * per release (`runs` says where it is already set, if it is), the other
 * steps belong in apphost:app.build, the web process is the server alone.
 */
function chainProblem(e: ProcfileEntry, parts: string[], whole: string, runs: string | undefined): string {
  const { migrate, build, server } = splitChain(parts);
  const [m, b] = [migrate.join(" && "), build.join(" && ")];
  const head = `line ${e.line}: the web process chains commands ("${e.command}")`;
  if (migrate.length > 0 && runs !== undefined) {
    return (
      `${head}; the migration "${m}" already runs once per release, before traffic moves (${runs}), so drop it from the web line` +
      (build.length > 0
        ? `; "${b}" prepares the code, so it belongs in every release on every host (apphost:app.build)`
        : "") +
      `; the web process is "web: ${server}" (or apphost:app.processes.web${whole ? `; ${whole}` : ""})`
    );
  }
  if (build.length === 0) {
    return (
      `${head}; apphost runs the migration once per release, before traffic moves, so split it: "release: ${m}" and "web: ${server}" in the Procfile, ` +
      `or set apphost:app.processes.web to "${server}" and apphost:database.migrate to "${m}"${whole ? ` (${whole})` : ""}`
    );
  }
  return (
    `${head}; split it: ` +
    (migrate.length > 0
      ? `the migration "${m}" runs once per release, before traffic moves ("release: ${m}" in the Procfile, or apphost:database.migrate); `
      : "") +
    `"${b}" prepares the code, so it belongs in every release on every host (apphost:app.build); ` +
    `the web process is "web: ${server}" (or apphost:app.processes.web${whole ? `; ${whole}` : ""})`
  );
}

/** The input as the schema reads it, with the app's Procfile standing in for apphost:app.processes. */
function prepare(raw: Record<string, unknown>, ctx: ParseContext): S.Prepared {
  const input = withoutNulls(raw) as Obj;
  for (const key of SECRET_KEYS) delete input[key];
  // Pulumi.yaml's default is {}: an empty object is no balancer.
  if (isObject(input.lb) && Object.keys(input.lb).length === 0) delete input.lb;
  // An empty value in apphost:app.env is reported (a string value is expected), not dropped.
  if (isObject(raw.app) && isObject(raw.app.env) && isObject(input.app)) input.app.env = raw.app.env;
  const files = ctx.appFiles;
  if (!isObject(input.app) || input.app.processes !== undefined || files?.procfile === undefined)
    return { raw: input };
  const { entries, bad } = parseProcfile(files.procfile);
  const problems = bad.map(
    (b) =>
      `line ${b.line} "${b.text}" is not "name: command"; fix the line, or set apphost:app.processes in the stack`,
  );
  const processes: Record<string, string> = {};
  // Set in the stack, apphost:app.processes replaces the whole Procfile: the other processes go there too.
  const others = entries.filter((e) => e.name !== "release" && e.name !== "web").map((e) => e.name);
  const whole =
    others.length > 0
      ? `apphost:app.processes replaces the whole Procfile, so list ${others.join(", ")} there too`
      : "";
  const release = entries.find((e) => e.name === "release")?.command;
  const migrateKey = isObject(input.database) ? input.database.migrate : undefined;
  // Where the migration already runs once per release, if it does: the chained copy is only dropped.
  const runs =
    typeof migrateKey === "string"
      ? `apphost:database.migrate, "${migrateKey}"`
      : release !== undefined
        ? `the Procfile's release: line, "${release}"`
        : undefined;
  for (const e of entries.filter((e) => e.name !== "release")) {
    const parts = e.name === "web" ? webChainParts(e.command) : undefined;
    if (parts) problems.push(chainProblem(e, parts, whole, runs));
    else processes[e.name] = e.command;
  }
  if (problems.length === 0 && Object.keys(processes).length === 0) {
    problems.push("the Procfile names no process; add a web: line or set apphost:app.processes in the stack");
  }
  if (problems.length === 0) input.app = { ...input.app, processes };
  return { raw: input, procfile: { where: `${files.dir}/Procfile`, problems, release } };
}

/** Both host shapes at once, so a half-read host can still be checked against other sections. */
type PartialHost = Partial<Omit<Ec2HostConfig, "kind">> &
  Partial<Omit<ExistingHostConfig, "kind">> & { kind?: HostConfig["kind"] };
type Parsed = { [K in "dns" | "tls" | "proxy" | "app" | "database" | "backups"]: Partial<StackConfig[K]> } & {
  host: PartialHost;
  lb?: Partial<LbConfig>;
};

/**
 * The sections as far as they passed: a section that failed as a whole is
 * empty, a field that failed is undefined (unknown keys and the issues of
 * rules do not count), so the rules spanning sections never follow up on an error.
 */
function passed(v: unknown, issues: readonly z.core.$ZodRawIssue[]): Parsed {
  const out: Obj = {};
  for (const name of S.SECTIONS) {
    const section = isObject(v) ? v[name] : undefined;
    const own = issues.filter((i) => i.path?.[0] === name && i.code !== "unrecognized_keys");
    const whole = own.some((i) => i.path?.length === 1 || (name === "host" && i.path?.[1] === "kind"));
    if (isObject(section) && !whole) out[name] = S.passedFields(section, own, 1);
    else if (name !== "lb" || section !== undefined) out[name] = {};
  }
  return out as unknown as Parsed;
}

/** Ports of services that listen on a host's loopback: apphost's own proxy and database, and the usual neighbours. */
const LOCAL_SERVICE_PORTS: ReadonlyArray<readonly [number, string]> = [
  [2019, "Caddy's admin API"],
  [3306, "MySQL"],
  [5432, "Postgres (apphost:database.kind postgres)"],
  [6379, "Redis"],
  [11211, "memcached"],
];

/** What each tls.mode needs of another section: the key, the value, why, and what to do instead. */
const TLS_NEEDS: Record<
  string,
  [key: "proxy.kind" | "dns.provider", value: string, why: string, todo: string]
> = {
  "cloudflare-origin": [
    "dns.provider",
    "cloudflare",
    "the Origin CA signs only for zones Cloudflare serves",
    "set apphost:dns.provider to cloudflare or choose another tls.mode",
  ],
  certbot: [
    "proxy.kind",
    "nginx",
    "certbot's installer edits nginx",
    "set apphost:proxy.kind to nginx, or use tls.mode caddy-acme with Caddy",
  ],
  "caddy-acme": [
    "proxy.kind",
    "caddy",
    "Caddy obtains the certificates itself",
    "set apphost:proxy.kind to caddy, or use tls.mode certbot with nginx",
  ],
  internal: [
    "proxy.kind",
    "caddy",
    "its local CA issues the certificate",
    "set apphost:proxy.kind to caddy, or use tls.mode off behind another TLS terminator",
  ],
};

/** A private key apphost cannot use: not a key, or locked by a passphrase. */
function keyProblem(
  info: PrivateKeyInfo | undefined,
  key: string,
  file: string,
  what = "key file",
  instead = "a key without one",
): string | undefined {
  if (info?.format === "unknown") {
    return (
      'expected an OpenSSH or PEM private key ("-----BEGIN OPENSSH PRIVATE KEY-----"); ' +
      `store the ${what} itself: pulumi config set --secret ${key} < ~/.ssh/${file}`
    );
  }
  if (info?.encrypted) {
    return `the key is protected by a passphrase, and deploys run without a prompt; use ${instead}`;
  }
  return undefined;
}

/** The rules that span sections, over what passed; each issue at a key of its own spelling (`apphost:secretEnv.X`). */
function crossRules(s: Parsed, ctx: ParseContext, add: (key: string, message: string) => void): void {
  const { host, dns, tls, proxy, app, database, backups, lb } = s;
  const { secrets } = ctx;
  const mode = tls.mode;
  const names = dns.hostnames;
  const appEnv = (name: string) => child("apphost:app.env", name);
  const secretEnv = (name: string) => child("apphost:secretEnv", name);
  const types = secrets.secretEnvTypes;
  const secretTypes = typeof types === "object" ? types : {};

  // Environment: references, and variables apphost sets itself
  for (const [name, value] of Object.entries(app.env ?? {})) {
    for (const ref of envReferences(value)) {
      const problem = referenceProblem(ref, database.kind);
      if (problem) add(appEnv(name), problem);
    }
  }
  const envNames = [
    ...Object.keys(app.env ?? {}).map((n) => [appEnv(n), n]),
    ...Object.keys(secretTypes).map((n) => [secretEnv(n), n]),
  ];
  for (const [path, name] of envNames) {
    const setBy = `${name} is set by apphost`;
    if (name === "PATH") {
      add(path, `${setBy}: the units put the release's venv or node_modules/.bin first; remove it`);
    } else if (name === "DATABASE_URL" && database.kind && database.kind !== "none") {
      add(
        path,
        `${setBy} from apphost:database (kind ${database.kind}); remove it (for a driver in its scheme, such as ` +
          `${D.databaseUrlSchemeExample(database.kind)}://, ` +
          "set apphost:database.urlScheme), or set apphost:database.kind to none to bring your own",
      );
    } else if (name in D.POOL_VARS && D.isPostgres(database.kind)) {
      add(path, `${setBy} from apphost:database.pool.${D.POOL_VARS[name]}; set that instead and remove this`);
    }
  }

  // A web process that migrates as it starts (a script: `web: bash Procfile.sh`, babybuddy's)
  const script = ctx.appFiles?.webScript;
  const { migrations, server } = script ? scriptMigrations(script.text) : { migrations: [] };
  if (script && migrations.length > 0) {
    const lines = migrations.map((m) => `line ${m.line}: "${m.command}"`).join(", ");
    const others = (app.processes ?? []).filter((p) => p.name !== "web").map((p) => p.name);
    const migrate =
      database.migrate !== undefined && database.migrate !== ""
        ? `apphost:database.migrate already runs "${database.migrate}" so; `
        : `set apphost:database.migrate to "${migrations[0].command}" (or a "release:" line in the Procfile), and `;
    add(
      script.from === "procfile" ? "apphost:app.processes" : "apphost:app.processes.web",
      `the web process runs ${script.path}, which migrates the database each time a web instance starts (${lines}); ` +
        "apphost migrates once per release, after a backup and before traffic moves, while the live instance serves on: " +
        `${migrate}set apphost:app.processes.web to the server alone` +
        (server ? ` ("${server}")` : "") +
        (script.from === "procfile" && others.length > 0
          ? `; apphost:app.processes replaces the whole Procfile, so list ${others.join(", ")} there too`
          : ""),
    );
  }

  // A web process whose gunicorn config file binds a port of its own (BookWyrm's bind = "[::]:8000")
  const conf = ctx.appFiles?.gunicornConf;
  const cmdArgs = app.env?.GUNICORN_CMD_ARGS ?? "";
  const bindProblem =
    conf && !/(?:^|\s)(?:-b|--bind)\b/.test(cmdArgs) ? gunicornBindProblem(conf.path, conf.text) : undefined;
  if (conf && bindProblem) {
    add(conf.from === "procfile" ? "apphost:app.processes" : "apphost:app.processes.web", bindProblem);
  }

  // The secrets
  const sshKey = "apphost:sshPrivateKey";
  const info = secrets.sshPrivateKeyInfo;
  const sshProblem = !secrets.sshPrivateKey
    ? "missing; apphost deploys over SSH with this key (on ec2 too). " +
      `Store it encrypted with: pulumi config set --secret ${sshKey} < ~/.ssh/apphost_deploy`
    : keyProblem(
        info,
        sshKey,
        "apphost_deploy",
        "private key file",
        'a dedicated deploy key without one (ssh-keygen -t ed25519 -N "" -f ~/.ssh/apphost_deploy)',
      );
  if (sshProblem) {
    add(sshKey, sshProblem);
  } else if (
    info?.publicKey &&
    host.kind === "ec2" &&
    host.sshPublicKey &&
    S.keyIdentity(host.sshPublicKey) !== S.keyIdentity(info.publicKey)
  ) {
    add(
      "apphost:host.sshPublicKey",
      `does not match ${sshKey} (whose public half is ${show(info.publicKey)}), so the instance would only accept ` +
        "a key the deployer does not hold; set it to the output of: ssh-keygen -y -f ~/.ssh/apphost_deploy",
    );
  }
  const jumpKey = "apphost:jumpPrivateKey";
  const jump = secrets.jumpPrivateKeyInfo;
  const jumpProblem =
    jump && host.via && host.via.kind !== "jump"
      ? "only used when apphost:host.via is a jump host ({jump: {...}}); remove it"
      : keyProblem(jump, jumpKey, "apphost_jump");
  if (jumpProblem) add(jumpKey, jumpProblem);
  if (typeof types === "string") {
    add(
      "apphost:secretEnv",
      `expected an object of environment variables, got ${types === "array" ? "a list" : `a ${types}`}; ` +
        "set each variable with: pulumi config set --secret --path 'apphost:secretEnv.NAME' value",
    );
  }
  for (const [name, type] of Object.entries(secretTypes)) {
    const twice = app.env && name in app.env;
    const problem =
      S.envProblem(name, type) ??
      (twice ? "also set in apphost:app.env; keep it in one place (secretEnv if it is a secret)" : undefined);
    if (problem) add(secretEnv(name), problem);
  }
  for (const issue of secrets.alertsInfo?.problems ?? []) add(issue.path, issue.message);
  // A dev-only switch that wipes the database at startup must never reach a stack named prod*.
  const resets = [
    ...D.DEV_RESET_SWITCHES.filter((n) => app.env?.[n] !== undefined && D.isSwitchOn(app.env[n])).map(appEnv),
    ...(secrets.secretEnvResetsOn ?? []).map(secretEnv),
  ];
  for (const key of D.isProductionStack(ctx.stack) ? resets : []) {
    add(
      key,
      `is a dev-only switch that wipes the database when the app starts; stack "${ctx.stack}" is a production stack ` +
        "(named prod*), so apphost refuses it. Remove it, or set it to false",
    );
  }

  // The machine, the database, the names and the certificates
  if (database.kind === "rds" && host.kind && host.kind !== "ec2") {
    add(
      "apphost:database.kind",
      `"rds" needs apphost:host.kind ec2 (got ${show(host.kind)}): the database goes in the instance's VPC, reachable from its security group only; ` +
        'use "postgres" to run Postgres on this server',
    );
  }
  // An ec2 instance's python3 is its image's: an app that needs another would fail its first release's check
  // phase only after the instance, its baseline and the database exist.
  const python = app.runtime === "python" && app.python === "system" ? app.pythonDeps : undefined;
  const ec2Os = host.kind === "ec2" ? host.os : undefined;
  if (
    ec2Os &&
    python?.requiresPython &&
    pythonSatisfies(python.requiresPython, D.HOST_OS_PACKAGES[ec2Os].python) === false
  ) {
    const would = Object.entries(D.HOST_OS_PACKAGES)
      .filter(([, os]) => pythonSatisfies(python.requiresPython, os.python))
      .map(([name, os]) => `${name} (Python ${os.python})`);
    add(
      "apphost:host.os",
      `${ec2Os} has Python ${D.HOST_OS_PACKAGES[ec2Os].python}, and the app needs Python ${python.requiresPython} (${python.requiresPythonFrom}); ` +
        (would.length > 0
          ? `set this to ${would.join(" or ")} for a new instance (a running one keeps its image's OS), or `
          : "no host.os has a Python that does: ") +
        "set apphost:app.python to managed: uv installs a matching Python at the first release (the instance must reach github.com)" +
        (python.requiresPythonFrom === ".python-version"
          ? "; or, if the app also runs on that Python, write its version in .python-version"
          : ""),
    );
  }
  // The host's pg_dump takes an RDS database's backups, and refuses a server newer than itself.
  const rdsMajor = Number(database.rds?.engineVersion?.split(".")[0]);
  const os = host.kind === "ec2" ? host.os : undefined;
  const dumpMajor = os ? D.HOST_OS_PACKAGES[os].pgDump : undefined;
  if (database.kind === "rds" && dumpMajor !== undefined && rdsMajor > dumpMajor) {
    add(
      "apphost:database.rds.engineVersion",
      `Postgres ${rdsMajor} is newer than the pg_dump of apphost:host.os ${show(os)} (${dumpMajor}), ` +
        `which takes the backups and refuses a newer server; set apphost:host.os to debian-13 (pg_dump 17), or this to "${dumpMajor}"`,
    );
  }
  if (
    database.kind === "rds" &&
    host.kind === "ec2" &&
    host.subnetId &&
    database.rds &&
    !database.rds.subnetIds
  ) {
    add(
      "apphost:database.rds.subnetIds",
      `missing: the instance is in ${host.subnetId} (apphost:host.subnetId), so the database needs a subnet group in that VPC; ` +
        "list two or more of its subnets in different availability zones: pulumi config set --path 'apphost:database.rds.subnetIds[0]' subnet-...",
    );
  }
  const needs = mode ? TLS_NEEDS[mode] : undefined;
  const got = needs && (needs[0] === "proxy.kind" ? proxy.kind : dns.provider);
  if (needs && got && got !== needs[1]) {
    add(
      "apphost:tls.mode",
      `"${mode}" needs apphost:${needs[0]} "${needs[1]}" (${needs[2]}), got ${show(got)}; ${needs[3]}`,
    );
  }
  if (mode === "cloudflare-origin" && dns.provider === "cloudflare") {
    // An Origin CA certificate is trusted by Cloudflare's edge only; browsers reaching the host directly would reject it.
    names?.forEach((h, i) => {
      if (h.proxied) return;
      add(
        `apphost:dns.hostnames[${i}]`,
        `${show(h.name)} is not proxied, but tls.mode cloudflare-origin serves a certificate only Cloudflare trusts; ` +
          `set proxied: true on it or choose tls.mode caddy-acme`,
      );
    });
  }
  const needsNames = mode === "caddy-acme" || mode === "certbot" || mode === "cloudflare-origin";
  if (names?.length === 0 && dns.provider === "none") {
    // (with provider cloudflare, the dns section reported the missing hostnames)
    add(
      "apphost:dns.hostnames",
      needsNames
        ? `missing; tls.mode ${mode} needs the names to put on the certificate; ` +
            S.setHint("apphost:dns.hostnames[0].name", "example.com")
        : "missing; the proxy serves only the names listed here (without DNS, list the host's public IPv4 address); " +
            S.setHint("apphost:dns.hostnames[0].name", "203.0.113.10"),
    );
  }
  names?.forEach((h, i) => {
    if (!isIPv4(h.name) || (dns.provider !== "cloudflare" && !needsNames)) return;
    add(
      `apphost:dns.hostnames[${i}]`,
      dns.provider === "cloudflare"
        ? `${show(h.name)} is an address, and DNS records need a name; use a name like "www.example.com"`
        : `${show(h.name)} is an address, and tls.mode ${mode} needs a DNS name on the certificate; ` +
            "use a name, or tls.mode internal or off",
    );
  });
  if (dns.ipv6 === true && dns.provider === "cloudflare" && host.kind && host.kind !== "ec2") {
    add(
      "apphost:dns.ipv6",
      `AAAA records need the instance's IPv6 address, which apphost only knows for apphost:host.kind ec2 (got ${show(host.kind)}); remove it`,
    );
  }
  if (host.kind === "existing" && dns.provider === "cloudflare" && host.address && !isIPv4(host.address)) {
    add(
      "apphost:host.address",
      `is a DNS name, but apphost:dns.provider cloudflare publishes A records and needs the server's IPv4 address; ` +
        S.setHint("apphost:host.address", "203.0.113.10"),
    );
  }

  // The S3 copy authenticates as the instance's IAM role (no keys on the host), which only an
  // instance the program creates has; and it runs Debian 12's awscli package.
  if (backups.s3 === true && host.kind === "existing") {
    add(
      "apphost:backups.s3",
      `needs apphost:host.kind ec2 (got "existing"): the copy authenticates with the IAM role of the instance apphost creates, ` +
        "and apphost puts no AWS keys on a server it did not create; set it to false, or copy the backups directory with your own tooling",
    );
  } else if (backups.s3 === true && host.kind === "ec2" && host.os === "ubuntu-24.04") {
    add(
      "apphost:backups.s3",
      `needs apphost:host.os debian-13 or debian-12 (got "ubuntu-24.04"): the copy uses Debian's awscli package, ` +
        "which Ubuntu 24.04's archive does not carry; set apphost:host.os to debian-13 or set this to false",
    );
  }
  if (backups.s3 === true && database.kind === "none") {
    add(
      "apphost:backups.s3",
      "there is nothing to back up when apphost:database.kind is none; set it to false or remove it",
    );
  }

  // The two web ports and the upstream port must not collide with anything else listening on the host:
  // the upstream rule redirects loopback connections to basePort+2 host-wide.
  const base = app.basePort ?? 0;
  const taken: Array<readonly [number | undefined, string]> = [
    [proxy.httpPort, "apphost:proxy.httpPort"],
    [proxy.httpsPort, "apphost:proxy.httpsPort"],
    [host.port, "apphost:host.port"],
    ...LOCAL_SERVICE_PORTS,
  ];
  for (const [port, key] of app.basePort === undefined ? [] : taken) {
    if (port === undefined || port < base || port > upstreamPort(base)) continue;
    add(
      "apphost:app.basePort",
      `the web instances listen on ${base} and ${base + 1} and the proxy connects to ${upstreamPort(base)}, which collides with ${key} (${port}); ` +
        S.setHint("apphost:app.basePort", String(D.APP_DEFAULTS.basePort)),
    );
  }

  // Several app hosts: behind a load balancer (ec2) or a balancer host (existing), the database on none of them
  const count = host.kind === "existing" ? (host.addresses?.length ?? 1) : (host.count ?? 1);
  const many = count > 1;
  const list = host.kind === "ec2" ? "apphost:host.count" : "apphost:host.addresses";
  const runCaddy = (behind: string, why = "") => {
    if (proxy.kind && proxy.kind !== "caddy")
      add("apphost:proxy.kind", `behind ${behind} run Caddy${why}; got ${show(proxy.kind)}, set "caddy"`);
  };
  if (many && (database.kind === "sqlite" || database.kind === "postgres")) {
    add(
      "apphost:database.kind",
      `${show(database.kind)} keeps the data on one app host, and ${list} lists ${count}; ` +
        'use "external" with the URL of a Postgres that lives on none of them ' +
        "(pulumi config set --secret apphost:databaseUrl postgresql://user:password@host:5432/name)" +
        (host.kind === "ec2" ? ', or "rds"' : ""),
    );
  }
  if (host.kind === "ec2" && !many) {
    if (mode === "acm") {
      add(
        "apphost:tls.mode",
        '"acm" is the load balancer\'s certificate, used with apphost:host.count > 1; with one instance use "caddy-acme" or "cloudflare-origin"',
      );
    }
    if (host.subnetIds) {
      add(
        "apphost:host.subnetIds",
        "only used with apphost:host.count > 1 (use subnetId for one instance); remove it",
      );
    }
  } else if (host.kind === "ec2") {
    // The instances serve behind an Application Load Balancer with an ACM certificate validated through Cloudflare records.
    if (mode && mode !== "acm") {
      add(
        "apphost:tls.mode",
        `with apphost:host.count ${count} the load balancer serves TLS with an ACM certificate: set "acm" (got ${show(mode)})`,
      );
    }
    if (dns.provider !== "cloudflare") {
      add(
        "apphost:dns.provider",
        `with apphost:host.count ${count} the ACM certificate is validated through DNS records apphost creates, and the hostnames point at the load balancer: set "cloudflare" (got ${show(dns.provider ?? "none")})`,
      );
    }
    runCaddy("the load balancer the instances");
    if (host.subnetId) {
      add(
        "apphost:host.subnetId",
        `one subnet for ${count} instances; list two subnets in different availability zones at least in apphost:host.subnetIds (or neither, for the default VPC's), and remove subnetId`,
      );
    }
    if (host.subnetIds && host.subnetIds.length < 2) {
      add(
        "apphost:host.subnetIds",
        "the load balancer needs subnets in two availability zones at least; list two or more",
      );
    }
    if (host.via?.kind === "instance-connect") {
      add(
        "apphost:host.via",
        `"instance-connect" creates one endpoint per instance, and a VPC holds one; with apphost:host.count ${count} use direct or a jump host`,
      );
    }
  }
  if (many && app.sharedDirs && app.sharedDirs.length > 0) {
    add(
      "apphost:app.sharedDirs",
      `${list} lists ${count} app hosts, each with a disk of its own: a file written to a shared directory on one is not on the others; ` +
        "keep such files in an object store (S3), and remove sharedDirs",
    );
  }
  if (many && !lb && host.kind === "existing") {
    add(
      "apphost:lb",
      `missing: ${list} lists ${count} app hosts, and they serve behind a balancer host; ` +
        "set apphost:lb.address (an existing server apphost runs Caddy on), or list one address",
    );
  }
  const addresses = (host.addresses ?? []).map((a) => a.address.toLowerCase());
  if (lb && host.kind && host.kind !== "existing") {
    add("apphost:lb", `only used when apphost:host.kind is existing (got ${show(host.kind)}); remove it`);
  } else if (lb && !many && host.kind === "existing" && host.addresses) {
    add(
      "apphost:lb",
      `${list} lists one app host; a balancer needs two or more (add them), or remove apphost:lb`,
    );
  }
  if (lb) {
    runCaddy(
      "apphost:lb the app hosts",
      " (it admits only the balancer's address and trusts its X-Forwarded-* headers)",
    );
    if (mode && !["caddy-acme", "internal", "off"].includes(mode)) {
      add(
        "apphost:tls.mode",
        `behind apphost:lb the balancer's Caddy serves TLS: one of "caddy-acme", "internal", "off"; got ${show(mode)}`,
      );
    }
    if (lb.address && addresses.includes(lb.address.toLowerCase())) {
      add(
        "apphost:lb.address",
        `${show(lb.address)} is also an app host (${list}); the balancer is a host of its own`,
      );
    }
  }
  const urlKey = "apphost:databaseUrl";
  const url = secrets.databaseUrlInfo;
  if (database.kind === "external" && !url) {
    add(
      urlKey,
      "missing (apphost:database.kind is external); store the URL encrypted: " +
        `pulumi config set --secret ${urlKey} postgresql://user:password@host:5432/name`,
    );
  } else if (database.kind === "external" && url?.problem) {
    add(urlKey, url.problem);
  } else if (
    database.kind === "external" &&
    many &&
    url?.host &&
    addresses.includes(url.host.toLowerCase())
  ) {
    add(
      urlKey,
      `its host ${show(url.host)} is one of the app hosts (${list}); the database must live on none of them`,
    );
  } else if (database.kind !== "external" && url) {
    add(urlKey, `only used when apphost:database.kind is external (got ${show(database.kind)}); remove it`);
  }
}
