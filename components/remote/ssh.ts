/**
 * Running a script on a host over SSH. The argv is built by pure functions
 * (tested as exact strings); `runRemote` is the one place that does I/O.
 *
 * Scripts run as root through `sudo -n bash -c <script>` (or plain
 * `bash -c` when the login user is root). Anything secret travels on stdin,
 * never in the script text, so it shows neither in `ps` on the host nor in
 * error messages.
 */
import type { SshConnection, SshInstanceConnect, SshJump } from "./connection";
import { shellQuote } from "../shell";

// Quoting lives in ../shell.ts. Re-exported for the dynamic providers' modules (remote/*): their
// serialized code names it through this module, and importing it elsewhere would change every
// resource's serialized provider. Everything outside remote/ imports ../shell.ts.
export { ansiC, shellQuote } from "../shell";

/** The remote command line that runs `script` as root. */
export function rootCommand(conn: Pick<SshConnection, "user">, script: string): string {
  const bash = `bash -c ${shellQuote(script)}`;
  return conn.user === "root" ? bash : `sudo -n ${bash}`;
}

export interface SshFiles {
  /** Private key file, mode 0600 */
  identity: string;
  /** known_hosts file */
  knownHosts: string;
  /** The jump host's private key file and known_hosts (`conn.proxy`) */
  jumpIdentity?: string;
  jumpKnownHosts?: string;
}

/**
 * The `ProxyCommand` that tunnels a connection through the jump host: its own
 * ssh, with no config file, the jump's key and pinned host key only
 * (StrictHostKeyChecking=yes), no agent, and `-W %h:%p` to the host.
 */
export function jumpProxyCommand(
  jump: SshJump,
  files: Pick<SshFiles, "jumpIdentity" | "jumpKnownHosts">,
): string {
  if (!files.jumpIdentity || !files.jumpKnownHosts)
    throw new Error("jumpProxyCommand: the jump host's key files are missing");
  return [
    "ssh",
    "-F",
    "none",
    "-i",
    files.jumpIdentity,
    "-p",
    String(jump.port),
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${files.jumpKnownHosts}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "ForwardAgent=no",
    "-o",
    "ForwardX11=no",
    "-o",
    "ConnectTimeout=15",
    "-o",
    "LogLevel=ERROR",
    "-W",
    "%h:%p",
    `${jump.user}@${jump.host}`,
  ]
    .map(shellQuote)
    .join(" ");
}

/** The `ProxyCommand` that opens a tunnel to the instance's SSH port through its EC2 Instance Connect Endpoint. */
export function instanceConnectProxyCommand(p: SshInstanceConnect, port: number): string {
  return [
    "aws",
    "ec2-instance-connect",
    "open-tunnel",
    "--instance-id",
    p.instanceId,
    "--instance-connect-endpoint-id",
    p.endpointId,
    "--remote-port",
    String(port),
    "--region",
    p.region,
  ]
    .map(shellQuote)
    .join(" ");
}

/** The ProxyCommand of a connection that does not go straight to the host, else undefined. */
export function proxyCommand(
  conn: SshConnection,
  files: Pick<SshFiles, "jumpIdentity" | "jumpKnownHosts">,
): string | undefined {
  if (!conn.proxy) return undefined;
  return conn.proxy.kind === "jump"
    ? jumpProxyCommand(conn.proxy, files)
    : instanceConnectProxyCommand(conn.proxy, conn.port);
}

/**
 * Writes the jump host's key and pinned known_hosts line into `dir` (mode
 * 0600) when the connection goes through one, and returns their paths for
 * `proxyCommand`; nothing for other connections.
 */
export function writeJumpFiles(
  conn: SshConnection,
  dir: string,
): Pick<SshFiles, "jumpIdentity" | "jumpKnownHosts"> {
  if (conn.proxy?.kind !== "jump") return {};
  const fs = require("fs") as typeof import("fs");
  const path = require("path") as typeof import("path");
  const files = {
    jumpIdentity: path.join(dir, "jump_id"),
    jumpKnownHosts: path.join(dir, "jump_known_hosts"),
  };
  const key = conn.proxy.privateKey.endsWith("\n") ? conn.proxy.privateKey : `${conn.proxy.privateKey}\n`;
  fs.writeFileSync(files.jumpIdentity, key, { mode: 0o600 });
  fs.writeFileSync(files.jumpKnownHosts, jumpKnownHostsLine(conn.proxy), { mode: 0o600 });
  return files;
}

/**
 * Writes the deploy key and the pinned known_hosts line into `dir` (mode
 * 0600), and the jump host's when there is one: every file `sshArgv` names.
 */
export function writeSshFiles(conn: SshConnection, dir: string): SshFiles {
  const fs = require("fs") as typeof import("fs");
  const path = require("path") as typeof import("path");
  const files: SshFiles = { identity: path.join(dir, "id"), knownHosts: path.join(dir, "known_hosts") };
  const key = conn.privateKey.endsWith("\n") ? conn.privateKey : `${conn.privateKey}\n`;
  fs.writeFileSync(files.identity, key, { mode: 0o600 });
  fs.writeFileSync(files.knownHosts, knownHostsLine(conn), { mode: 0o600 });
  return { ...files, ...writeJumpFiles(conn, dir) };
}

/** Names of the key directories: `apphost-ssh-<pid of the process that made it>-XXXXXX`. */
const KEY_DIR = /^apphost-ssh-(\d+)-[A-Za-z0-9]{6}$/;
/** Before the pid was in the name (`apphost-ssh-XXXXXX`, `apphost-scan-XXXXXX`): removed after a day. */
const OLD_KEY_DIR = /^apphost-(ssh|scan)-[A-Za-z0-9]{6}$/;

/**
 * A private directory (mode 0700) for one connection's key files, in the temp
 * directory. The caller removes it when ssh is done, in a `finally`; a process
 * killed outright (SIGKILL, a crash, the power) never gets there, and its copy
 * of the deploy key would stay on disk. So each call first removes the key
 * directories of processes that are gone, and those of the old naming older
 * than a day (no connection lasts that long before it has read its key).
 */
export function keyTempDir(tmp?: string): string {
  const fs = require("fs") as typeof import("fs");
  const os = require("os") as typeof import("os");
  const path = require("path") as typeof import("path");
  const root = tmp ?? os.tmpdir();
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "EPERM"; // another user's live process
    }
  };
  for (const name of fs.readdirSync(root)) {
    const pid = KEY_DIR.exec(name)?.[1];
    try {
      const stale = pid
        ? Number(pid) !== process.pid && !alive(Number(pid))
        : OLD_KEY_DIR.test(name) && Date.now() - fs.statSync(path.join(root, name)).mtimeMs > 86400e3;
      if (stale) fs.rmSync(path.join(root, name), { recursive: true, force: true });
    } catch {
      // Another user's directory, or one another process removed first.
    }
  }
  return fs.mkdtempSync(path.join(root, `apphost-ssh-${process.pid}-`));
}

/** The `ssh-ed25519 AAAA...` key of the first ed25519 line of ssh-keyscan output or a known_hosts file. */
export function ed25519KeyIn(text: string): string | undefined {
  const f = text
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((fields) => fields.length >= 3 && fields[1] === "ssh-ed25519");
  return f ? `${f[1]} ${f[2]}` : undefined;
}

/** The known_hosts line that pins the jump host's key. */
export function jumpKnownHostsLine(jump: SshJump): string {
  const name = jump.port === 22 ? jump.host : `[${jump.host}]:${jump.port}`;
  return `${name} ${jump.hostKey.trim()}\n`;
}

/**
 * The argv of `ssh` (without the program name) for one remote command; `tty`
 * forces a terminal (`-tt`), for an interactive `npm run exec -- --tty`.
 */
export function sshArgv(
  conn: SshConnection,
  files: SshFiles,
  remoteCommand: string,
  opts: { tty?: boolean } = {},
): string[] {
  return [
    ...(opts.tty ? ["-tt"] : []),
    // Not the deployer's ~/.ssh/config or /etc/ssh/ssh_config: a Host block there could
    // forward their agent (every key it holds) or ports to the host, or swap the proxy.
    "-F",
    "none",
    "-o",
    "ForwardAgent=no",
    "-o",
    "ForwardX11=no",
    "-o",
    "ClearAllForwardings=yes",
    "-i",
    files.identity,
    "-p",
    String(conn.port),
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${files.knownHosts}`,
    // A pinned host key is enforced; without one, the first key seen is trusted.
    "-o",
    `StrictHostKeyChecking=${conn.hostKey ? "yes" : "accept-new"}`,
    "-o",
    "ConnectTimeout=15",
    "-o",
    "ServerAliveInterval=15",
    "-o",
    "ServerAliveCountMax=4",
    "-o",
    "LogLevel=ERROR",
    ...(conn.proxy ? ["-o", `ProxyCommand=${proxyCommand(conn, files)}`] : []),
    `${conn.user}@${conn.host}`,
    "--",
    remoteCommand,
  ];
}

/**
 * When ssh refused the host's key: which key apphost pinned, and how to accept
 * a new one on purpose. Nothing was sent to that host.
 */
export function hostKeyHint(stderr: string, conn: SshConnection): string {
  if (!/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key .*differs/i.test(stderr))
    return "";
  return (
    `: the host's SSH key is not the one apphost pinned for ${conn.host} (${hostKeyFingerprint(conn.hostKey ?? "")}), so nothing was sent. ` +
    "If the server was replaced or re-keyed on purpose, accept its new key with: APPHOST_ACCEPT_NEW_HOST_KEY=1 pulumi up " +
    "(or pin it yourself in apphost:host.hostKey); otherwise someone else answers at that address"
  );
}

/** Where a connection failed (exit status 255): the jump host, when that is where, else the host. */
export function sshFailure(conn: SshConnection, stderr: string): string {
  const j = conn.proxy;
  if (j?.kind === "instance-connect") {
    const at = `EC2 Instance Connect Endpoint ${j.endpointId} (apphost:host.via instance-connect, instance ${j.instanceId}, ${j.region})`;
    if (
      /aws: (command )?not found|No such file or directory.*aws|Unable to locate credentials|AccessDenied|UnauthorizedOperation|error occurred/i.test(
        stderr,
      )
    )
      return (
        `ssh to ${conn.user}@${conn.host}:${conn.port} through ${at} failed: the tunnel was refused or could not start ` +
        "(AWS CLI v2.12+ on PATH, credentials allowed ec2-instance-connect:OpenTunnel on the endpoint; docs/ci.md)"
      );
    return `ssh to ${conn.user}@${conn.host}:${conn.port} through ${at} failed${hostKeyHint(stderr, conn)}`;
  }
  if (j) {
    const at = `the jump host ${j.user}@${j.host}:${j.port} (apphost:host.via.jump)`;
    const jumpHost = j.host.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    if (
      new RegExp(
        `connect to host ${jumpHost} port ${j.port}|Could not resolve hostname ${jumpHost}`,
        "i",
      ).test(stderr)
    )
      return `ssh to ${conn.user}@${conn.host}:${conn.port} failed: ${at} could not be reached`;
    if (
      new RegExp(`Host key for (\\[)?${jumpHost}|Host key verification failed`, "i").test(stderr) &&
      !/stdio forwarding failed/.test(stderr) &&
      !stderr.includes(`Host key for ${conn.host}`) &&
      !stderr.includes(`Host key for [${conn.host}]`)
    )
      return (
        `ssh to ${conn.user}@${conn.host}:${conn.port} failed: ${at} showed another host key than the one pinned in ` +
        `apphost:host.via.jump.hostKey (${hostKeyFingerprint(j.hostKey)}), so nothing was sent`
      );
    if (/stdio forwarding failed|channel \d+: open failed/i.test(stderr))
      return `ssh to ${conn.user}@${conn.host}:${conn.port} through ${at} failed: the jump host could not reach ${conn.host}:${conn.port}`;
    if (/Permission denied/.test(stderr) && !/Permission denied.*\n.*Permission denied/s.test(stderr))
      return `ssh to ${conn.user}@${conn.host}:${conn.port} through ${at} failed: a login was refused (the jump host's, or the host's)`;
    return `ssh to ${conn.user}@${conn.host}:${conn.port} through ${at} failed${hostKeyHint(stderr, conn)}`;
  }
  return `ssh to ${conn.user}@${conn.host}:${conn.port} failed${hostKeyHint(stderr, conn)}`;
}

/** `ED25519 SHA256:<base64>`, as `ssh-keygen -lf` and ssh's own warnings print a key. */
export function hostKeyFingerprint(hostKey: string): string {
  const [type, blob] = hostKey.trim().split(/\s+/);
  if (!type || !blob) return "no key";
  const { createHash } = require("crypto") as typeof import("crypto");
  const digest = createHash("sha256").update(Buffer.from(blob, "base64")).digest("base64").replace(/=+$/, "");
  return `${type.replace(/^ssh-/, "").toUpperCase()} SHA256:${digest}`;
}

/** The known_hosts line for a pinned host key. */
export function knownHostsLine(conn: SshConnection): string {
  const name = conn.port === 22 ? conn.host : `[${conn.host}]:${conn.port}`;
  return conn.hostKey ? `${name} ${conn.hostKey.trim()}\n` : "";
}

/** The last `lines` lines of a command's output, for error messages. */
export function tail(text: string, lines = 40): string {
  const all = text.replace(/\s+$/, "").split("\n");
  return all.slice(-lines).join("\n");
}

/** Where printers mark a value they cut short: `...` (pydantic's `input_value=`, reprlib) or `…`. */
const CUT = /\.\.\.|…/g;

/**
 * Terminal control sequences in a host's output: CSI (colours, cursor moves), OSC (a title, a link), the other
 * escapes (a character set, a reset), and every other C0 control but tab and newline. An app's log in its journal carries colour
 * codes when its logger colours without asking for a terminal (structlog's console renderer, Celery's worker).
 */
const CONTROL =
  /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]?|[\x00-\x08\x0b-\x1f\x7f]/g;

/**
 * What a message shows of a host's output: its text without terminal control
 * sequences (`CONTROL`), which would otherwise reach the operator's terminal
 * from the app's journal; every secret value replaced with [secret], and a
 * secret's start just before a cut mark or its end just after one: pydantic
 * shortens the settings it prints to `{'SECRET_KEY': 'PtUg6MCgJ...ORD': 'x'}`,
 * which holds no whole value. Values and cut pieces under 4 characters stay:
 * too short to blank without mangling the rest of the text.
 */
export function redact(text: string, secrets: string[]): string {
  const values = secrets.filter((s) => s && s.length >= 4);
  // Controls first: a secret the app printed in colour, or with a code inside it, is then one run of text.
  let out = text.replace(CONTROL, "");
  for (const s of values) out = out.split(s).join("[secret]");
  const spans: Array<[number, number]> = [];
  for (const m of out.matchAll(CUT)) {
    const start = m.index;
    const end = start + m[0].length;
    let before = 0;
    let after = 0;
    for (const s of values) {
      for (let n = Math.min(s.length - 1, start); n >= 4 && n > before; n--) {
        if (out.startsWith(s.slice(0, n), start - n)) before = n;
      }
      for (let n = Math.min(s.length - 1, out.length - end); n >= 4 && n > after; n--) {
        if (out.startsWith(s.slice(s.length - n), end)) after = n;
      }
    }
    if (before) spans.push([start - before, start]);
    if (after) spans.push([end, end + after]);
  }
  // Right to left, so the earlier spans keep their offsets; a piece two cut marks share is blanked once.
  let last = Infinity;
  for (const [from, to] of spans.sort((a, b) => b[0] - a[0])) {
    const upTo = Math.min(to, last);
    if (upTo > from) out = `${out.slice(0, from)}[secret]${out.slice(upTo)}`;
    last = from;
  }
  return out;
}

export interface RemoteResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A failed remote command. A plain Error with the result attached, not a
 * subclass: Pulumi serializes the providers that throw it, and a serialized
 * Error subclass loses its message.
 */
export type RemoteError = Error & { result: RemoteResult };

export function remoteError(message: string, result: RemoteResult): RemoteError {
  return Object.assign(new Error(message), { name: "RemoteError", result });
}

export interface RunOptions {
  /** Bytes sent to the script's stdin (file contents, artifacts, secrets) */
  stdin?: Buffer | string;
  /** What this step is, for error messages: `host file /etc/caddy/Caddyfile` */
  what: string;
  /** Values that must never appear in an error message */
  secrets?: string[];
  /** Give up after this many seconds. @default 1800 */
  timeoutSeconds?: number;
  /** Resolve instead of throwing on a non-zero exit */
  allowFailure?: boolean;
  /**
   * ssh in a process group of its own: a Ctrl-C at the terminal (and npm passing it on) does not cut it short, for
   * a step that puts things back after an interruption
   */
  ownProcessGroup?: boolean;
}

/**
 * Run `script` as root on the host. Throws a RemoteError naming `what`, the
 * exit code and the tail of stderr when the script fails.
 *
 * Kept free of imports other than Node built-ins, because Pulumi serializes
 * the dynamic providers that call it.
 */
export async function runRemote(
  conn: SshConnection,
  script: string,
  opts: RunOptions,
): Promise<RemoteResult> {
  const fs = require("fs") as typeof import("fs");
  const cp = require("child_process") as typeof import("child_process");
  const dir = keyTempDir();
  try {
    const files = writeSshFiles(conn, dir);
    const argv = sshArgv(conn, files, rootCommand(conn, script));
    const result = await new Promise<RemoteResult>((resolve, reject) => {
      const child = cp.spawn("ssh", argv, {
        stdio: ["pipe", "pipe", "pipe"],
        ...(opts.ownProcessGroup ? { detached: true } : {}),
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const timer = setTimeout(() => child.kill("SIGKILL"), (opts.timeoutSeconds ?? 1800) * 1000);
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`${opts.what}: could not start ssh: ${e.message}`));
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({
          code: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
        });
      });
      child.stdin.on("error", () => undefined); // the script may exit before reading stdin
      child.stdin.end(opts.stdin ?? "");
    });
    if (result.code !== 0 && !opts.allowFailure) {
      const detail = redact(tail(result.stderr || result.stdout), [
        conn.privateKey,
        ...(conn.proxy?.kind === "jump" ? [conn.proxy.privateKey] : []),
        ...(opts.secrets ?? []),
      ]);
      const reason = result.code === 255 ? sshFailure(conn, result.stderr) : `exit code ${result.code}`;
      throw remoteError(`${opts.what}: ${reason}\n${detail}`, result);
    }
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface SpawnRemoteOptions {
  /** Give the remote command a terminal (interactive shells, REPLs); stdin, stdout and stderr are this process's */
  tty?: boolean;
  /**
   * Keep ssh's stdin open (never at EOF) until ssh exits, instead of passing
   * this process's stdin: a remote `cat >/dev/null` then ends exactly when the
   * client goes away (`npm run logs -f` stops its journalctl that way).
   */
  holdStdin?: boolean;
  /**
   * Without a terminal: pass the remote stderr through as it comes, and keep its last this many characters, which
   * the result's `stderrTail` holds (`npm run exec` reads the error a failed command ended on).
   */
  keepStderr?: number;
}

/**
 * Runs `script` as root on the host with this process's stdout and stderr
 * (streamed as they come, nothing kept) and resolves with ssh's exit status
 * (the script's, or 255 when ssh itself failed) and whether Ctrl-C (SIGINT)
 * ended it. For the interactive day-2 commands (`logs -f`, `exec`);
 * everything else uses `runRemote`.
 */
export async function spawnRemote(
  conn: SshConnection,
  script: string,
  opts: SpawnRemoteOptions = {},
): Promise<{ code: number; interrupted: boolean; stderrTail: string }> {
  const fs = require("fs") as typeof import("fs");
  const cp = require("child_process") as typeof import("child_process");
  const dir = keyTempDir();
  const keep = opts.tty ? 0 : (opts.keepStderr ?? 0);
  let stderrTail = "";
  try {
    const files = writeSshFiles(conn, dir);
    const argv = sshArgv(conn, files, rootCommand(conn, script), { tty: opts.tty });
    return await new Promise<{ code: number; interrupted: boolean; stderrTail: string }>(
      (resolve, reject) => {
        const child = cp.spawn("ssh", argv, {
          stdio: [opts.holdStdin && !opts.tty ? "pipe" : "inherit", "inherit", keep > 0 ? "pipe" : "inherit"],
        });
        child.stderr?.on("data", (b: Buffer) => {
          process.stderr.write(b);
          stderrTail = (stderrTail + b.toString()).slice(-keep);
        });
        // Ctrl-C reaches ssh (same process group), which ends the remote side; this process waits for it.
        let interrupted = false;
        const ignore = () => {
          interrupted = true;
        };
        process.on("SIGINT", ignore);
        child.on("error", (e) => {
          process.off("SIGINT", ignore);
          reject(new Error(`could not start ssh: ${e.message}`));
        });
        child.on("close", (code, signal) => {
          // ssh may end on the same Ctrl-C (exit 255) before this process's SIGINT event is handled, and
          // one event-loop turn is not always enough for it: after a 255, wait up to half a second for it.
          const done = () => {
            process.off("SIGINT", ignore);
            resolve({
              code: code ?? (signal ? 128 : 1),
              interrupted: interrupted || signal === "SIGINT",
              stderrTail,
            });
          };
          if (code !== 255) return void setImmediate(done);
          const started = Date.now();
          const wait = () => (interrupted || Date.now() - started >= 500 ? done() : setTimeout(wait, 20));
          setImmediate(wait);
        });
      },
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
