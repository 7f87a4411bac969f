/**
 * End-to-end harness: the sandbox host (scripts/sandbox), a throwaway state
 * backend per run, the real engine on this project directory (the `pulumi`
 * CLI, directly or through the Automation API's LocalWorkspace), and helpers
 * that look at the host over SSH and HTTP. Traffic goes only to the sandbox,
 * a network namespace this run made.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as auto from "@pulumi/pulumi/automation";
import * as yaml from "js-yaml";
import { shellQuote } from "../../components/remote/ssh";
import { engineBin, openStack, ROOT } from "../../scripts/lib/automation";

export interface Sandbox {
  name: string;
  subnet: string;
  host: string;
  user: string;
  port: number;
  key: string;
}

/**
 * Which sandbox a spec file uses. Specs that may run at the same time as
 * others (several developers, helpers) pick their own name and subnet.
 */
export interface SandboxSpec {
  /** @default "apphost-sbx" */
  name?: string;
  /** First three octets. @default "10.77.0" */
  subnet?: string;
}

let current: Required<SandboxSpec> = { name: "apphost-sbx", subnet: "10.77.0" };

function sandboxEnv(spec: Required<SandboxSpec>): NodeJS.ProcessEnv {
  return { ...process.env, SANDBOX_NAME: spec.name, SANDBOX_SUBNET: spec.subnet };
}

function sandboxScript(...args: string[]): string {
  return execFileSync("bash", [path.join(ROOT, "scripts", "sandbox"), ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    env: sandboxEnv(current),
  });
}

export function sandboxUp(spec: SandboxSpec = {}): Sandbox {
  current = { name: spec.name ?? "apphost-sbx", subnet: spec.subnet ?? "10.77.0" };
  sandboxScript("up");
  return sandboxNow();
}

/**
 * Moves the running sandbox to `<subnet>.<octet>` (`scripts/sandbox
 * readdress`), as an EC2 stop/start moves an instance without an Elastic IP:
 * the same host, files and keys at a new address.
 */
export function sandboxReaddress(octet: number): Sandbox {
  sandboxScript("readdress", String(octet));
  return sandboxNow();
}

function sandboxNow(): Sandbox {
  const env = Object.fromEntries(
    sandboxScript("env")
      .trim()
      .split("\n")
      .map((l) => l.split("=", 2) as [string, string]),
  );
  return {
    ...current,
    host: env.SANDBOX_HOST,
    user: env.SANDBOX_USER,
    port: Number(env.SANDBOX_PORT),
    key: env.SANDBOX_KEY,
  };
}

export function sandboxDown(): void {
  sandboxScript("down");
}

/** Run a shell command on the sandbox as root; returns stdout, throws on failure. */
export function onHost(
  command: string,
  opts: { allowFailure?: boolean } = {},
): { code: number; stdout: string; stderr: string } {
  const res = spawnSync(
    "bash",
    [path.join(ROOT, "scripts", "sandbox"), "ssh", `sudo -n bash -c ${shellQuote(command)}`],
    { encoding: "utf8", env: sandboxEnv(current) },
  );
  const out = { code: res.status ?? 1, stdout: res.stdout, stderr: res.stderr };
  if (out.code !== 0 && !opts.allowFailure) {
    throw new Error(`on host: ${command}\nexit ${out.code}\n${out.stderr}`);
  }
  return out;
}

export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/** An HTTP(S) request to the sandbox's proxy with a Host header (curl; -k for the internal CA). */
export function http(
  sandbox: Sandbox,
  hostname: string,
  urlPath: string,
  scheme: "http" | "https" = "http",
): HttpAnswer {
  const port = scheme === "http" ? 80 : 443;
  const res = spawnSync(
    "curl",
    [
      "-sS",
      "-k",
      "--max-time",
      "10",
      "-D",
      "-",
      "--resolve",
      `${hostname}:${port}:${sandbox.host}`,
      `${scheme}://${hostname}${urlPath}`,
    ],
    { encoding: "utf8" },
  );
  if (res.status !== 0) throw new Error(`curl ${scheme}://${hostname}${urlPath}: ${res.stderr}`);
  const [head, ...rest] = res.stdout.split("\r\n\r\n");
  const lines = head.split("\r\n");
  const status = Number(lines[0].split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, body: rest.join("\r\n\r\n"), headers };
}

/** A fresh state backend directory for one test run. */
export function freshBackend(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-state-"));
  return `file://${dir}`;
}

export interface LocalStackOptions {
  /** @default "local" */
  stackName?: string;
  /** The sandbox to target; its address replaces apphost:host.address */
  sandbox?: Sandbox;
  /** Config values set on top of Pulumi.local.yaml, by full key (`apphost:proxy`) */
  config?: Record<string, unknown>;
}

/**
 * A stack with Pulumi.local.yaml's settings plus overrides, kept in a config
 * file of its own (`--config-file`), so the committed file never changes.
 * Pass `stack.configFile` to every operation.
 */
export async function localStack(
  backendUrl: string,
  opts: LocalStackOptions = {},
): Promise<auto.Stack & { configFile: string }> {
  const base = yaml.load(fs.readFileSync(path.join(ROOT, "Pulumi.local.yaml"), "utf8")) as {
    config: Record<string, unknown>;
    encryptionsalt?: string;
  };
  const config = { ...base.config, ...(opts.config ?? {}) };
  if (opts.sandbox) {
    config["apphost:host"] = { ...(config["apphost:host"] as object), address: opts.sandbox.host };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-config-"));
  const configFile = path.join(dir, `Pulumi.${opts.stackName ?? "local"}.yaml`);
  fs.writeFileSync(configFile, yaml.dump({ ...base, config }));
  const stack = await openStack({ stack: opts.stackName ?? "local", backendUrl });
  return Object.assign(stack, { configFile });
}

/**
 * The plain `pulumi` CLI in the project directory, as a user runs it after
 * `eval "$(bash scripts/engine env)"`: the engine on PATH, the given backend,
 * the local stacks' passphrase, no prompts.
 */
export function pulumiCli(
  args: string[],
  opts: { backendUrl: string; env?: Record<string, string> },
): { code: number; stdout: string; stderr: string } {
  const res = spawnSync("pulumi", [...args, "--non-interactive"], {
    cwd: ROOT,
    encoding: "utf8",
    env: {
      ...process.env,
      PATH: `${engineBin()}:${process.env.PATH ?? ""}`,
      PULUMI_BACKEND_URL: opts.backendUrl,
      PULUMI_CONFIG_PASSPHRASE: "apphost-local",
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_RUN_PROGRAM: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      ...(opts.env ?? {}),
    },
  });
  return { code: res.status ?? 1, stdout: res.stdout, stderr: res.stderr };
}

/** Count of resources that an update changed (everything but `same`). */
export function changedCount(summary: Record<string, number> | undefined): number {
  return Object.entries(summary ?? {})
    .filter(([k]) => k !== "same")
    .reduce((n, [, v]) => n + v, 0);
}

export { ROOT };
