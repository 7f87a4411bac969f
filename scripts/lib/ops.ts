/**
 * What the day-2 commands (`npm run drift`, `doctor`, `releases`) share:
 * their command line, reading a deployed stack's config and outputs, and
 * turning the config back into the typed `StackConfig` the program saw.
 *
 * Exit codes are the same for all three: 0 all good, 1 the check found
 * something (drift, a failed doctor check), 2 could not check.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import type * as auto from "@pulumi/pulumi/automation";
import {
  inspectAlerts,
  inspectDatabaseUrl,
  inspectPrivateKey,
  KEY_FILE,
  keyFilePath,
  markUnknownKeys,
  parseStackConfig,
  readAppFiles,
  SECTIONS,
  type SecretFacts,
  type StackConfig,
} from "../../components/config";
import { hostLayout, type HostLayout } from "../../components/paths";
import type { SshConnection } from "../../components/remote/connection";
import { openStack } from "./automation";
import { readCommandLine, usageError, type CommandLine } from "./cli";
import { liveReleaseId } from "../../components/release/id";

/** Exit status of a command that could not do its check at all. */
export const EXIT_CANNOT_CHECK = 2;

export interface OpsArgs {
  stack: string;
  /** `--config-file <path>`: the stack's config file instead of Pulumi.<stack>.yaml */
  configFile?: string;
  /** Values of the command's own `--name <value>` options, by name without dashes */
  options: Record<string, string>;
}

/** What a day-2 command reads beyond `--stack` and `--config-file`. */
export interface OpsCommandLine {
  /** Its own `--name <value>` options. @default none */
  options?: readonly string[];
  /** Its options without a value (`--tty`), with one-letter aliases in `short`. @default none */
  flags?: readonly string[];
  /** One-letter aliases of `flags`: `{ f: "follow" }` (`-s` is always `--stack`). @default none */
  short?: Readonly<Record<string, string>>;
  /** Whether bare words may follow (`on`, `off`). @default false */
  words?: boolean;
  /** Whether a command may follow a lone `--`. @default false */
  rest?: boolean;
  /** The usage after the options, e.g. `[--tty] -- <command…>`. @default "" */
  usage?: string;
}

/**
 * `--stack <name> [--config-file <path>]` and the command's own options, each
 * also as `--name=value`; `-s` is `--stack`. Returns the arguments, the flags,
 * words and rest the command allows, and every problem with them (the command
 * adds its own, then throws `opsUsageError`).
 */
export function readOpsArgs(
  argv: readonly string[],
  spec: OpsCommandLine = {},
): { args: OpsArgs; line: CommandLine; problems: string[] } {
  const line = readCommandLine(argv, {
    values: ["stack", "config-file", ...(spec.options ?? [])],
    flags: spec.flags,
    short: { s: "stack", ...spec.short },
    words: spec.words,
    rest: spec.rest,
  });
  const problems = [...line.problems];
  if (!line.values.stack && !problems.some((p) => p.startsWith("--stack"))) {
    problems.push("--stack <name> is required (local, staging or prod)");
  }
  const { stack = "", "config-file": configFile, ...options } = line.values;
  return { args: { stack, ...(configFile !== undefined ? { configFile } : {}), options }, line, problems };
}

/** The usage line of a day-2 command and its problems, as one error. */
export function opsUsageError(command: string, spec: OpsCommandLine, problems: readonly string[]): Error {
  const usage =
    `npm run ${command} -- --stack <name> [--config-file <path>]` +
    (spec.options ?? []).map((o) => ` [--${o} <value>]`).join("") +
    (spec.usage ? ` ${spec.usage}` : "");
  return usageError(usage, problems);
}

/** `readOpsArgs` for a command with options alone; throws every problem with the usage line. */
export function parseOpsArgs(
  command: string,
  argv: readonly string[],
  options: readonly string[] = [],
): OpsArgs {
  const { args, problems } = readOpsArgs(argv, { options });
  if (problems.length > 0) throw opsUsageError(command, { options }, problems);
  return args;
}

/**
 * The stack's config with secrets in clear (`pulumi config --show-secrets
 * --json`), from `configFile` when given: the Automation API's getAllConfig
 * has no config-file option, so that case runs the same engine command with
 * the workspace's environment.
 */
export async function readStackConfig(stack: auto.Stack, configFile?: string): Promise<auto.ConfigMap> {
  if (!configFile) return stack.getAllConfig();
  const ws = stack.workspace as auto.LocalWorkspace;
  const args = ["config", "--show-secrets", "--json", "--stack", stack.name, "--config-file", configFile];
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      ws.pulumiCommand.command,
      [...args, "--non-interactive"],
      { cwd: ws.workDir, env: { ...process.env, ...ws.envVars }, maxBuffer: 64 * 1024 * 1024 },
      (err, out, errOut) =>
        err ? reject(new Error(`pulumi ${args.join(" ")}: ${errOut.trim() || err.message}`)) : resolve(out),
    );
  });
  return JSON.parse(stdout) as auto.ConfigMap;
}

export interface ConfigFromMapOptions {
  project: string;
  stack: string;
  /** Reads `apphost:sshPrivateKeyFile` (`~` already expanded). @default fs.readFileSync */
  readFile?: (file: string) => string;
  /** Where apphost:app.source is resolved from. @default process.cwd() (npm run runs in the project) */
  projectDir?: string;
}

/**
 * The typed config of a stack from its `pulumi config --json` map, parsed
 * exactly as the program parses it (`loadStackConfig`): object values as
 * JSON, the secrets seen only as facts. Throws the parser's ConfigError.
 */
export function stackConfigFromMap(map: auto.ConfigMap, opts: ConfigFromMapOptions): StackConfig {
  const ns = opts.project;
  const value = (key: string): unknown => {
    // `pulumi config --json` also gives `objectValue` for structured values; the
    // SDK's ConfigValue type does not declare it, and `value` holds the same JSON.
    const entry = map[`${ns}:${key}`];
    if (!entry) return undefined;
    try {
      return JSON.parse(entry.value);
    } catch {
      return entry.value;
    }
  };
  const raw: Record<string, unknown> = {};
  for (const section of SECTIONS) raw[section] = value(section);
  markUnknownKeys(raw, Object.keys(map), ns);

  const secrets: SecretFacts = {};
  const keyFile = map[`${ns}:${KEY_FILE}`]?.value;
  let key: string | undefined = map[`${ns}:sshPrivateKey`]?.value;
  if (keyFile) {
    const file = keyFilePath(keyFile);
    try {
      key = (opts.readFile ?? ((f: string) => fs.readFileSync(f, "utf8")))(file);
    } catch (e) {
      throw new Error(
        `${ns}:${KEY_FILE}: cannot read "${keyFile}" (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
  }
  if (key !== undefined && key.trim() !== "") {
    secrets.sshPrivateKey = true;
    secrets.sshPrivateKeyInfo = inspectPrivateKey(key);
  }
  const alerts = map[`${ns}:alerts`];
  if (alerts !== undefined) secrets.alertsInfo = inspectAlerts(value("alerts"), alerts.secret === true);
  const url = map[`${ns}:databaseUrl`];
  if (url !== undefined && url.value.trim() !== "") {
    // Facts only, as the program learns them (components/config/index.ts): never the URL.
    secrets.databaseUrlInfo = inspectDatabaseUrl(url.value, url.secret === true);
  }
  const env = map[`${ns}:secretEnv`];
  if (env !== undefined) {
    const v = value("secretEnv");
    secrets.secretEnvTypes =
      typeof v === "object" && v !== null && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).map(([name, x]) => [name, typeOf(x)]))
        : typeOf(v);
  }
  return parseStackConfig(raw, {
    project: opts.project,
    stack: opts.stack,
    secrets,
    appFiles: readAppFiles(raw.app, opts.projectDir ?? process.cwd()),
  });
}

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** The stack outputs the day-2 commands need; throws naming what is missing. */
export interface DeployedStack {
  connection: SshConnection;
  /** The newest release this stack deployed */
  releaseId: string;
  /**
   * The release the stack serves (liveRelease's id): an older one than releaseId while apphost:releases.rollbackTo
   * names it; absent when the output has none (a stack from before it, or nothing live)
   */
  liveRelease?: string;
  hostId: string;
  url?: string;
  /**
   * Several app hosts (apphost:lb): each by its component name (`app`,
   * `app2`, ...), the first one first; absent on a one-host stack.
   */
  hosts?: { name: string; connection: SshConnection }[];
  /** apphost:lb: the balancer host and its `apphost-lb` */
  balancer?: { connection: SshConnection; script: string };
}

/** The stack's app hosts, the first one first: `deployed.hosts`, or its one host as `app`. */
export function appHosts(deployed: DeployedStack): { name: string; connection: SshConnection }[] {
  return deployed.hosts ?? [{ name: "app", connection: deployed.connection }];
}

/**
 * The app host a command works on: `--host <name|address>` (`app`, `app2`,
 * or its address) among the stack's app hosts, else the first one. Throws
 * naming the hosts there are.
 */
export function pickHost(
  deployed: DeployedStack,
  wanted: string | undefined,
): { name: string; connection: SshConnection } {
  const hosts = appHosts(deployed);
  if (wanted === undefined) return hosts[0];
  const found = hosts.find((h) => h.name === wanted || h.connection.host === wanted);
  if (found) return found;
  throw new Error(
    `--host ${wanted}: not an app host of this stack; its app hosts are ` +
      hosts.map((h) => `${h.name} (${h.connection.host})`).join(", "),
  );
}

export function deployedFromOutputs(stackName: string, outputs: auto.OutputMap): DeployedStack {
  const conn = outputs.connection?.value as Partial<SshConnection> | undefined;
  const missing: string[] = [];
  if (!conn || typeof conn.host !== "string" || typeof conn.privateKey !== "string")
    missing.push("connection");
  const releaseId = outputs.releaseId?.value;
  if (typeof releaseId !== "string" || releaseId === "") missing.push("releaseId");
  const hostId = outputs.hostId?.value;
  if (typeof hostId !== "string" || hostId === "") missing.push("hostId");
  if (missing.length > 0) {
    throw new Error(
      `stack ${stackName} has no ${missing.join(", ")} output${missing.length > 1 ? "s" : ""}: ` +
        "is it deployed? (`npm run deploy -- up --stack " +
        stackName +
        "`)",
    );
  }
  // `<id>`, or `<id> (<what is down>)` as a refresh recorded it: the id is what the stack serves.
  const live = liveReleaseId(String(outputs.liveRelease?.value ?? ""));
  return {
    connection: { ...(conn as SshConnection), port: conn?.port ?? 22 },
    releaseId: releaseId as string,
    ...(live ? { liveRelease: live } : {}),
    hostId: hostId as string,
    ...(typeof outputs.url?.value === "string" ? { url: outputs.url.value } : {}),
    ...(Array.isArray(outputs.hosts?.value)
      ? {
          hosts: (outputs.hosts.value as { name: string; connection: SshConnection }[]).map((h) => ({
            name: h.name,
            connection: { ...h.connection, port: h.connection.port ?? 22 },
          })),
        }
      : {}),
    ...(outputs.balancer?.value ? { balancer: outputs.balancer.value as DeployedStack["balancer"] } : {}),
  };
}

/**
 * An error message cut to what a person needs, for a one-screen "could not
 * check": the engine's own `error:` lines when the Automation API wrapped a
 * failed command (its message repeats stdout and stderr), else the last lines.
 */
export function shortError(e: unknown, lines = 6): string {
  const text = (e instanceof Error ? e.message : String(e)).replace(/\s+$/, "");
  const engine = [...new Set(text.split("\n").filter((l) => /^error: /.test(l)))];
  if (engine.length > 0) return engine.slice(-lines).join("\n");
  return text.split("\n").slice(-lines).join("\n");
}

/**
 * Runs `main` as a command: its resolved number is the exit code, and
 * anything thrown (or an unhandled rejection) exits 2, never 1, so a crash
 * is never mistaken for a finding.
 */
export function runCommand(name: string, main: () => Promise<number>): void {
  const die = (e: unknown) => {
    process.stderr.write(`${name}: could not check: ${shortError(e, 30)}\n`);
    process.exit(EXIT_CANNOT_CHECK);
  };
  process.on("uncaughtException", die);
  process.on("unhandledRejection", die);
  main().then((code) => process.exit(code), die);
}

/** A deployed stack a day-2 command works on. */
export interface OpenedStack {
  args: OpsArgs;
  stack: auto.Stack;
  deployed: DeployedStack;
  /** Prints `<command>: <stack>: could not <verb>: <what>: <error>` and returns EXIT_CANNOT_CHECK */
  cannot: (what: string, e: unknown) => number;
}

/**
 * What every day-2 command does first: parse its arguments, open the stack
 * (which must exist) and read the outputs of its last deploy. Returns the
 * exit code (EXIT_CANNOT_CHECK, after printing why) when any step fails.
 */
export async function openDeployedStack(
  command: string,
  parse: (argv: string[]) => OpsArgs,
  argv: string[],
  verb = "check",
): Promise<OpenedStack | number> {
  let args: OpsArgs;
  try {
    args = parse(argv);
  } catch (e) {
    console.error((e as Error).message);
    return EXIT_CANNOT_CHECK;
  }
  const cannot = (what: string, e: unknown) => {
    console.error(`${command}: ${args.stack}: could not ${verb}: ${what}: ${shortError(e)}`);
    return EXIT_CANNOT_CHECK;
  };
  let stack: auto.Stack;
  try {
    stack = await openStack({ stack: args.stack, mustExist: true });
  } catch (e) {
    return cannot("cannot open the stack", e);
  }
  try {
    return { args, stack, deployed: deployedFromOutputs(args.stack, await stack.outputs()), cannot };
  } catch (e) {
    return cannot("reading the stack", e);
  }
}

/**
 * The host layout of a deployed stack: its hostId output is `<app>-<stack>`;
 * the stack's config says the same and is the fallback.
 */
export async function deployedLayout(opened: OpenedStack): Promise<HostLayout> {
  const { args, stack, deployed } = opened;
  const suffix = `-${args.stack}`;
  const app = deployed.hostId.endsWith(suffix)
    ? deployed.hostId.slice(0, -suffix.length)
    : stackConfigFromMap(await readStackConfig(stack, args.configFile), {
        project: "apphost",
        stack: args.stack,
      }).app.name;
  return hostLayout(app, args.stack);
}

/** The typed config of an opened stack (its config file when `--config-file` was given). */
export async function openedStackConfig(opened: OpenedStack): Promise<StackConfig> {
  return stackConfigFromMap(await readStackConfig(opened.stack, opened.args.configFile), {
    project: "apphost",
    stack: opened.args.stack,
  });
}

/**
 * The app host a command runs on (`--host`) and the script it runs there,
 * built from the stack's config and host layout; the exit code when either
 * cannot be had (the reason printed).
 */
export async function hostScript(
  opened: OpenedStack,
  build: (layout: HostLayout, config: StackConfig) => string,
): Promise<{ host: ReturnType<typeof pickHost>; script: string } | number> {
  try {
    const host = pickHost(opened.deployed, opened.args.options.host);
    const config = await openedStackConfig(opened);
    return { host, script: build(hostLayout(config.app.name, config.stack), config) };
  } catch (e) {
    return opened.cannot("reading the stack", e);
  }
}
