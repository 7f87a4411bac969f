/**
 * End-to-end harness: the sandbox host (scripts/sandbox), a throwaway state
 * backend per run, the real engine on this project directory (the `pulumi`
 * CLI, directly or through the Automation API's LocalWorkspace), and helpers
 * that look at the host over SSH and HTTP. Traffic goes only to the sandbox,
 * a network namespace this run made.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as httpClient from "http";
import * as httpsClient from "https";
import * as os from "os";
import * as path from "path";
import * as auto from "@pulumi/pulumi/automation";
import * as yaml from "js-yaml";
import { shellQuote } from "../../components/shell";
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
  /** The release it boots (`scripts/sandbox`'s SANDBOX_SUITE): Debian 12, 13 or Ubuntu 24.04. @default "bookworm" (Debian 12) */
  suite?: "bookworm" | "trixie" | "noble";
}

/** The sandbox `sandboxUp()` boots when given no spec. */
export const DEFAULT_SANDBOX = { name: "apphost-sbx", subnet: "10.77.0" };

/** A sandbox named in full: its name and subnet (the suite matters only when it boots). */
type Named = Required<Pick<SandboxSpec, "name" | "subnet">> & Pick<SandboxSpec, "suite">;

let current: Named = DEFAULT_SANDBOX;

function sandboxEnv(spec: Named): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SANDBOX_NAME: spec.name,
    SANDBOX_SUBNET: spec.subnet,
    SANDBOX_SUITE: spec.suite ?? "bookworm",
  };
}

function sandboxScript(...args: string[]): string {
  return execFileSync("bash", [path.join(ROOT, "scripts", "sandbox"), ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    env: sandboxEnv(current),
  });
}

/** `scripts/sandbox <args>` for the named sandbox (a spec with two sandboxes: `down`, `link`), not the current one. */
export function sandboxCommand(spec: Named, ...args: string[]): string {
  return execFileSync("bash", [path.join(ROOT, "scripts", "sandbox"), ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    env: sandboxEnv(spec),
  });
}

/**
 * The end of a spec file: its sandboxes go down, with the stacks, files and
 * databases on them; nothing is destroyed first, since nothing outlives the
 * host. A stopped host frees this machine's two cores for the spec files still
 * running. APPHOST_E2E_KEEP=1 keeps them as they are, to look at; returns
 * whether they went down.
 */
export function sandboxesDone(...specs: Named[]): boolean {
  if (process.env.APPHOST_E2E_KEEP === "1") return false;
  for (const spec of specs) sandboxCommand(spec, "down");
  return true;
}

export function sandboxUp(spec: SandboxSpec = {}): Sandbox {
  current = {
    name: spec.name ?? DEFAULT_SANDBOX.name,
    subnet: spec.subnet ?? DEFAULT_SANDBOX.subnet,
    suite: spec.suite,
  };
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

/**
 * curl over HTTPS to the sandbox's proxy with the given hostname (-k for the
 * internal CA; --fail, so an HTTP error throws); returns the body.
 */
export function curlHttps(sandbox: Sandbox, hostname: string, urlPath: string, args: string[] = []): string {
  const res = spawnSync(
    "curl",
    [
      "-sS",
      "-k",
      "--fail",
      "--max-time",
      "10",
      "--resolve",
      `${hostname}:443:${sandbox.host}`,
      ...args,
      `https://${hostname}${urlPath}`,
    ],
    { encoding: "utf8" },
  );
  if (res.status !== 0) throw new Error(`curl https://${hostname}${urlPath}: ${res.stderr}`);
  return res.stdout;
}

/** POST /items {name} to the sample app through the proxy over HTTPS; throws on failure. */
export function postItem(sandbox: Sandbox, hostname: string, name: string): void {
  curlHttps(sandbox, hostname, "/items", [
    "-H",
    "content-type: application/json",
    "-d",
    JSON.stringify({ name }),
  ]);
}

/** Drops a stack's Postgres database and role on the sandbox, if Postgres is there (`pulumi destroy` keeps both). */
export function dropPostgres(name: string): void {
  onHost(
    `if command -v dropdb >/dev/null; then runuser -u postgres -- dropdb --if-exists ${name}; runuser -u postgres -- dropuser --if-exists ${name}; fi`,
    { allowFailure: true },
  );
}

const temps: string[] = [];
process.once("exit", () => {
  if (process.env.APPHOST_E2E_KEEP === "1") return;
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
});

/** A temp directory that is removed when this process exits (kept with APPHOST_E2E_KEEP=1, to look at). */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

/** A fresh state backend directory for one test run. */
export function freshBackend(): string {
  return `file://${tempDir("apphost-state-")}`;
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
    // The sandbox's login user: the cloud image's (ubuntu on an Ubuntu sandbox).
    config["apphost:host"] = {
      ...(config["apphost:host"] as object),
      address: opts.sandbox.host,
      user: opts.sandbox.user,
    };
  }
  const dir = tempDir("apphost-config-");
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
    // A state export holds every dynamic provider's serialized code, one copy per resource: megabytes.
    maxBuffer: 256 * 1024 * 1024,
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
  if (res.error) throw new Error(`pulumi ${args.join(" ")}: ${res.error.message}`);
  return { code: res.status ?? 1, stdout: res.stdout, stderr: res.stderr };
}

/** Count of resources that an update changed (everything but `same`). */
export function changedCount(summary: Record<string, number> | undefined): number {
  return Object.entries(summary ?? {})
    .filter(([k]) => k !== "same")
    .reduce((n, [, v]) => n + v, 0);
}

export { ROOT };

export interface StreamEvent {
  /** The event's `data:` line, parsed */
  data: Record<string, unknown>;
  /** Milliseconds after the request was sent that the event arrived */
  atMs: number;
}

export interface StreamResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  events: StreamEvent[];
  /** When it started and ended, epoch ms */
  startedAt: number;
  endedAt: number;
  /** Set when the stream broke (reset, timeout) instead of ending */
  error?: string;
}

/**
 * Reads a Server-Sent Events stream through the sandbox's proxy and notes the
 * arrival time of each event, so a spec can tell a stream from a buffered
 * answer that arrives all at once at the end. Bounded by `maxSeconds`.
 */
export function readEventStream(
  sandbox: Sandbox,
  hostname: string,
  urlPath: string,
  scheme: "http" | "https",
  maxSeconds = 60,
): Promise<StreamResult> {
  const client = scheme === "https" ? httpsClient : httpClient;
  return new Promise((resolve) => {
    const startedAt = Date.now();
    const events: StreamEvent[] = [];
    let buffered = "";
    let status = 0;
    let headers: StreamResult["headers"] = {};
    let settled = false;
    const finish = (error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, headers, events, startedAt, endedAt: Date.now(), ...(error ? { error } : {}) });
    };
    const req = client.request(
      {
        host: sandbox.host,
        port: scheme === "https" ? 443 : 80,
        path: urlPath,
        method: "GET",
        servername: hostname,
        headers: { Host: hostname, Accept: "text/event-stream" },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        status = res.statusCode ?? 0;
        headers = res.headers;
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          let end: number;
          while ((end = buffered.indexOf("\n\n")) >= 0) {
            const block = buffered.slice(0, end);
            buffered = buffered.slice(end + 2);
            const data = block
              .split("\n")
              .filter((l) => l.startsWith("data: "))
              .map((l) => l.slice(6))
              .join("\n");
            if (data)
              events.push({
                data: JSON.parse(data) as Record<string, unknown>,
                atMs: Date.now() - startedAt,
              });
          }
        });
        res.on("end", () => finish());
        res.on("error", (e) => finish(e.message));
        res.on("aborted", () => finish("aborted"));
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no end after ${maxSeconds}s`)), maxSeconds * 1000);
    req.on("error", (e) => finish(e.message));
    req.end();
  });
}

/**
 * Asserts that `r` is a stream of `count` events spread over time: the first
 * arrives well before the last (a buffered answer arrives all at once), and
 * consecutive events are at least `minGapMs` apart.
 */
export function assertSpreadOverTime(r: StreamResult, count: number, intervalMs: number): string {
  if (r.error) throw new Error(`the stream broke after ${r.events.length} events: ${r.error}`);
  if (r.status !== 200) throw new Error(`the stream answered HTTP ${r.status}`);
  const times = r.events.map((e) => e.atMs);
  if (times.length !== count) throw new Error(`expected ${count} events, got ${times.length}`);
  const gaps = times.slice(1).map((t, i) => t - times[i]);
  const spread = times[count - 1] - times[0];
  // Each gap within a generous band of the interval: not bunched together at the end.
  if (gaps.some((g) => g < intervalMs * 0.5))
    throw new Error(`events bunched together: arrival ms ${times.join(", ")}`);
  if (spread < intervalMs * (count - 1) * 0.8)
    throw new Error(`events arrived within ${spread} ms: ${times.join(", ")}`);
  return `${count} events at ${times.join(", ")} ms`;
}
