/**
 * Helpers for the day-2 command specs (ops.e2e.ts): run a command the way a
 * person or CI does (`npm run --silent <command> -- ...` as a child process),
 * and stop or start the sandbox's sshd from outside it, which SSH itself
 * cannot do once sshd is gone.
 */
import { execFile, execFileSync, spawn } from "child_process";
import { promisify } from "util";
import * as fs from "fs";
import { ROOT } from "./lib";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `npm run --silent <command> -- <args>` in the repository, with `env` on top
 * of this process's environment. Echoes both streams so a failing spec shows
 * what the command said.
 */
export function runCli(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("npm", ["run", "--silent", command, "--", ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString("utf8")));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const result = { code: code ?? (signal ? 128 : 1), stdout, stderr };
      process.stdout.write(
        `\n$ npm run ${command} -- ${args.join(" ")}  (exit ${result.code})\n${stdout}` +
          (stderr ? `[stderr]\n${stderr}` : ""),
      );
      resolve(result);
    });
  });
}

/**
 * A command line under script(1), which gives it a terminal as a person's
 * shell would. The terminal's input stays open until the command ends: a
 * closed one reads as end of input, which script(1) passes on to the remote
 * terminal (echoed as `^@`), where `systemd-run --pty` can stop forwarding
 * before the command's last lines arrive. A person at a terminal never sends
 * that.
 */
export function runInTerminal(
  commandLine: string,
  env: Record<string, string> = {},
  timeoutMs = 120_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qec", commandLine, "/dev/null"], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString("utf8")));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      child.stdin.destroy();
      process.stdout.write(
        `\n$ script -qec ${JSON.stringify(commandLine)}  (exit ${code ?? signal})\n${stdout}`,
      );
      resolve({ code: code ?? 128, stdout, stderr });
    });
  });
}

/**
 * The pid of the sandbox's init (systemd inside the container): the child of
 * the systemd-nspawn that `scripts/sandbox` started, found from the wrapper
 * pid file of the named sandbox only.
 */
function sandboxInit(name: string): string {
  const wrapper = fs.readFileSync(`/var/lib/apphost-sandbox/${name}/wrapper.pid`, "utf8").trim();
  const children = (pid: string) =>
    execFileSync("pgrep", ["-P", pid], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  const nspawn = children(wrapper)[0];
  const init = nspawn ? children(nspawn)[0] : undefined;
  if (!init) throw new Error(`sandbox ${name}: no container init under wrapper ${wrapper}`);
  return init;
}

const enter = (name: string, command: string) => [
  "-t",
  sandboxInit(name),
  "-m",
  "-u",
  "-i",
  "-n",
  "-p",
  "bash",
  "-c",
  command,
];

/** A shell command as root inside the sandbox, entered from this machine (no SSH needed); its stdout. */
export function inSandbox(name: string, command: string): string {
  return execFileSync("nsenter", enter(name, command), {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
}

/** `inSandbox` without blocking this process (a load running here keeps going); its stdout. */
export async function inSandboxAsync(name: string, command: string): Promise<string> {
  const { stdout } = await promisify(execFile)("nsenter", enter(name, command), { encoding: "utf8" });
  return stdout;
}

/** `systemctl <verb> <unit>` inside the sandbox, entered from this machine (no SSH needed). */
export function sandboxSystemctl(name: string, verb: "start" | "stop", unit: string): void {
  execFileSync("nsenter", ["-t", sandboxInit(name), "-m", "-u", "-i", "-n", "-p", "systemctl", verb, unit], {
    stdio: ["ignore", "inherit", "inherit"],
  });
}
