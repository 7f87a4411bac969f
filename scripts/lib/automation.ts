/**
 * Drives the `pulumi` CLI on this project directory through the Automation
 * API's LocalWorkspace: the same engine, language host (`pulumi-language-nodejs`
 * running index.ts) and Pulumi.<stack>.yaml that a plain `pulumi up --stack
 * <name>` uses. There is one way the program runs; the npm commands only add
 * the local stacks' backend and passphrase defaults (`scripts/engine env`
 * prints the same for a shell).
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as auto from "@pulumi/pulumi/automation";

export const ROOT = path.resolve(__dirname, "..", "..");

/** Stacks that run against the sandbox and need no cloud credentials. */
export function isLocalStack(stack: string): boolean {
  return stack === "local" || stack.startsWith("local-");
}

/**
 * Why the engine would have nowhere to keep the stack's state, or undefined:
 * a stack other than local and local-* needs PULUMI_BACKEND_URL,
 * PULUMI_ACCESS_TOKEN, or a `pulumi login` (credentials.json's `current`).
 * Without one the engine asks to log in to Pulumi Cloud, which a
 * non-interactive run reports as a missing PULUMI_ACCESS_TOKEN.
 */
export function backendProblem(
  stack: string,
  env: NodeJS.ProcessEnv = process.env,
  home: string = os.homedir(),
): string | undefined {
  if (isLocalStack(stack) || env.PULUMI_BACKEND_URL || env.PULUMI_ACCESS_TOKEN) return undefined;
  const credentials = path.join(env.PULUMI_HOME || path.join(home, ".pulumi"), "credentials.json");
  try {
    if ((JSON.parse(fs.readFileSync(credentials, "utf8")) as { current?: string }).current) return undefined;
  } catch {
    // No login: said below.
  }
  return (
    `stack "${stack}" has no state backend: only stacks named local or local-* keep theirs in ` +
    `file://<repo>/.pulumi-state by default. Set PULUMI_BACKEND_URL (file://$HOME/.pulumi-state on one machine, ` +
    "s3://<bucket> for a team; docs/ci.md) and PULUMI_CONFIG_PASSPHRASE for its secrets, or PULUMI_ACCESS_TOKEN " +
    `for Pulumi Cloud (or run pulumi login); a stack for the sandbox can be named local-${stack}`
  );
}

/** The directory holding the `pulumi` binary (built or reused by scripts/engine). */
export function engineBin(): string {
  const out = execFileSync("bash", [path.join(ROOT, "scripts", "engine"), "path"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return out.trim().split("\n").pop()!;
}

export interface OpenOptions {
  stack: string;
  /** State backend URL. Defaults: PULUMI_BACKEND_URL, else `file://<repo>/.pulumi-state` for local stacks */
  backendUrl?: string;
  /** Extra environment for the engine */
  env?: Record<string, string>;
  /**
   * Select an existing stack only: a missing stack (or a backend that does
   * not hold it) is an error instead of a new, empty stack. For commands that
   * inspect a deployed stack (drift, doctor, releases).
   */
  mustExist?: boolean;
}

export async function openStack(opts: OpenOptions): Promise<auto.Stack> {
  const problem = opts.backendUrl ? undefined : backendProblem(opts.stack);
  if (problem) throw new Error(problem);
  const bin = engineBin();
  const pulumiCommand = await auto.PulumiCommand.get({ root: path.dirname(bin), skipVersionCheck: true });
  const local = isLocalStack(opts.stack);
  const env: Record<string, string> = {
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
    // Refresh and destroy run the program too, so they reach the host where
    // the program says it is now, not where the state last saw it
    // (components/remote/follow.ts).
    PULUMI_RUN_PROGRAM: "true",
    ...(opts.env ?? {}),
  };
  const backend =
    opts.backendUrl ?? process.env.PULUMI_BACKEND_URL ?? (local ? `file://${ROOT}/.pulumi-state` : undefined);
  if (backend) env.PULUMI_BACKEND_URL = backend;
  if (local) {
    // The local stack's passphrase protects nothing but sandbox state; real
    // stacks take theirs from the environment (see README, "Secrets").
    env.PULUMI_CONFIG_PASSPHRASE = process.env.PULUMI_CONFIG_PASSPHRASE ?? "apphost-local";
    // Nothing in the local stack uses AWS, Cloudflare or TLS resources, and
    // scripts/engine installed the command and random plugins.
    env.PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION = "true";
  }
  if (backend?.startsWith("file://") && !opts.mustExist) {
    fs.mkdirSync(backend.slice("file://".length), { recursive: true });
  }
  const args = { stackName: opts.stack, workDir: ROOT };
  const wsOpts = {
    pulumiCommand,
    envVars: env,
    secretsProvider: local ? "passphrase" : undefined,
  };
  return opts.mustExist
    ? auto.LocalWorkspace.selectStack(args, wsOpts)
    : auto.LocalWorkspace.createOrSelectStack(args, wsOpts);
}
