/**
 * What the bench looks at on the sandbox host: remote commands in the journal,
 * the release script's phases (from its deploy lock), the runbook's
 * upload-and-restart, and versions. Everything goes to the bench's own
 * sandbox through `scripts/sandbox ssh`.
 */
import { spawn, spawnSync } from "child_process";
import * as path from "path";
import { DEPLOY_PHASES } from "../components/release/phases";
import { onHost, ROOT, type Sandbox } from "../test/e2e/lib";

export { DEPLOY_PHASES };
export type DeployPhase = (typeof DEPLOY_PHASES)[number];

function sandboxEnv(sandbox: Sandbox): NodeJS.ProcessEnv {
  return { ...process.env, SANDBOX_NAME: sandbox.name, SANDBOX_SUBNET: sandbox.subnet };
}

/** The host's clock, in whole seconds (journalctl's --since has whole seconds). */
export function hostNow(): number {
  return Number(onHost("date +%s").stdout.trim());
}

/**
 * Remote commands run through sudo since `since` (whole seconds), as the
 * journal has them; the query itself (journalctl) is left out, as in
 * test/e2e/deploy.e2e.ts.
 */
export function remoteCommandsSince(since: number): string[] {
  const out = onHost(
    `journalctl --no-pager -o cat --since @${since} SYSLOG_IDENTIFIER=sudo | grep 'COMMAND=' | grep -v journalctl || true`,
  ).stdout.trim();
  return out === "" ? [] : out.split("\n");
}

/** When sudo logged `apphost-release ... deploy` since `since` (ms since the epoch, from the journal's µs). */
export function deployCommandTimes(since: number): number[] {
  const out = onHost(
    `journalctl --no-pager -o json --output-fields=MESSAGE --since @${since} SYSLOG_IDENTIFIER=sudo || true`,
  ).stdout;
  const times: number[] = [];
  for (const line of out.split("\n")) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { MESSAGE?: unknown; __REALTIME_TIMESTAMP?: string };
      const msg = typeof e.MESSAGE === "string" ? e.MESSAGE : "";
      if (/COMMAND=.*apphost-release.* deploy /.test(msg) && e.__REALTIME_TIMESTAMP) {
        times.push(Number(e.__REALTIME_TIMESTAMP) / 1000);
      }
    } catch {
      // a line journalctl did not write as JSON: not ours
    }
  }
  return times;
}

/**
 * What systemd did to the proxy and the web instances since `since` (whole
 * seconds): reloads of caddy, starts and stops of `<unitPrefix>-web@<port>`.
 */
export function hostEvents(since: number, unitPrefix: string): { at: number; what: string }[] {
  const out = onHost(
    `journalctl --no-pager -o json --output-fields=MESSAGE --since @${since} _PID=1 || true`,
  ).stdout;
  const events: { at: number; what: string }[] = [];
  const web = `${unitPrefix}-web@`;
  for (const line of out.split("\n")) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { MESSAGE?: unknown; __REALTIME_TIMESTAMP?: string };
      const msg = typeof e.MESSAGE === "string" ? e.MESSAGE : "";
      const at = Number(e.__REALTIME_TIMESTAMP) / 1000;
      if (/^Reloading caddy\.service/.test(msg)) events.push({ at, what: "caddy reload" });
      else if (msg.startsWith(`Stopping ${web}`))
        events.push({ at, what: `stop ${msg.slice(9, msg.indexOf(".service"))}` });
      else if (msg.startsWith(`Started ${web}`))
        events.push({ at, what: `started ${msg.slice(8, msg.indexOf(".service"))}` });
    } catch {
      // not JSON: not ours
    }
  }
  return events;
}

// ------------------------------------------------------------ phase watcher

/**
 * Watches `<root>/deploy.lock` with inotify (python3's ctypes, on the host).
 * The release script writes the lock (to a temp name, renamed over it) once
 * when the check phase takes it and once at the start of every later phase
 * (`run_phase` → `lock_refresh`, just before `apphost: phase <name>: start`),
 * and removes it when the script exits. Eight renames and a removal are the
 * boundaries of the eight phases; the start of `check` comes from sudo's
 * journal entry for the command.
 */
const WATCHER = String.raw`
import ctypes, os, select, struct, sys, time
libc = ctypes.CDLL("libc.so.6", use_errno=True)
directory, name, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
IN_MOVED_TO, IN_DELETE = 0x80, 0x200
fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
wd = libc.inotify_add_watch(fd, directory.encode(), IN_MOVED_TO | IN_DELETE) if fd >= 0 else -1
if fd < 0 or wd < 0:
    print("error inotify errno %d" % ctypes.get_errno(), flush=True)
    sys.exit(1)
print("ready", flush=True)
end = time.time() + limit
seen = False
while time.time() < end:
    ready, _, _ = select.select([fd], [], [], 0.5)
    if not ready:
        continue
    now = time.time()
    buf = os.read(fd, 65536)
    i = 0
    while i < len(buf):
        _, mask, _, length = struct.unpack_from("iIII", buf, i)
        n = buf[i + 16 : i + 16 + length].rstrip(b"\0").decode()
        i += 16 + length
        if n != name:
            continue
        if mask & IN_MOVED_TO:
            seen = True
            print("%.6f write" % now, flush=True)
        elif mask & IN_DELETE:
            print("%.6f gone" % now, flush=True)
            if seen:
                sys.exit(0)
print("timeout", flush=True)
`;

export interface PhaseTimes {
  /** Seconds per phase; absent when the events did not line up */
  phases?: Record<DeployPhase, number>;
  /** Seconds from sudo starting the script to the lock's removal */
  script?: number;
  /** ms since the epoch of each event, for the record */
  events: { at: number; kind: string }[];
  note?: string;
}

export interface PhaseWatcher {
  /** Wait for the lock's removal (or give up after `graceMs`) and turn the events into phase times. */
  finish(deployStart: number | undefined, graceMs?: number): Promise<PhaseTimes>;
}

export async function watchPhases(
  sandbox: Sandbox,
  root: string,
  limitSeconds: number,
): Promise<PhaseWatcher> {
  const child = spawn(
    "bash",
    [
      path.join(ROOT, "scripts", "sandbox"),
      "ssh",
      `sudo -n python3 - ${root} deploy.lock ${Math.round(limitSeconds)}`,
    ],
    { env: sandboxEnv(sandbox), stdio: ["pipe", "pipe", "pipe"] },
  );
  child.stdin.end(WATCHER);
  const events: { at: number; kind: string }[] = [];
  let buffered = "";
  let stderr = "";
  let readyResolve: () => void = () => undefined;
  let readyReject: (e: Error) => void = () => undefined;
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  const exited = new Promise<void>((res) => child.on("close", () => res()));
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
  child.stdout.on("data", (b: Buffer) => {
    buffered += b.toString("utf8");
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line === "ready") readyResolve();
      else if (line.startsWith("error")) readyReject(new Error(`phase watcher: ${line}`));
      else {
        const [at, kind] = line.split(" ");
        if (kind) events.push({ at: Number(at) * 1000, kind });
      }
    }
  });
  child.on("close", (code) => readyReject(new Error(`phase watcher exited (${code}): ${stderr.trim()}`)));
  await ready;
  return {
    async finish(deployStart, graceMs = 10_000) {
      const timer = setTimeout(() => child.kill("SIGTERM"), graceMs);
      await exited;
      clearTimeout(timer);
      const writes = events.filter((e) => e.kind === "write").map((e) => e.at);
      const gone = events.find((e) => e.kind === "gone")?.at;
      const out: PhaseTimes = { events };
      if (writes.length !== DEPLOY_PHASES.length || gone === undefined || deployStart === undefined) {
        out.note =
          `expected ${DEPLOY_PHASES.length} lock writes, a removal and the sudo entry; saw ` +
          `${writes.length} writes, ${gone === undefined ? "no" : "a"} removal, ` +
          `${deployStart === undefined ? "no" : "a"} sudo entry`;
        return out;
      }
      // writes[0] is inside check (lock_acquire); writes[k] starts phase k for k >= 1.
      const starts = [deployStart, ...writes.slice(1), gone];
      const phases = {} as Record<DeployPhase, number>;
      DEPLOY_PHASES.forEach((p, i) => (phases[p] = (starts[i + 1] - starts[i]) / 1000));
      out.phases = phases;
      out.script = (gone - deployStart) / 1000;
      return out;
    },
  };
}

// ----------------------------------------------------------------- runbook

/**
 * The runbooks' release: the app directory tarred over SSH straight into the
 * live release (`/srv/<id>/current/`), then the live web instance restarted.
 * Returns the wall time in seconds.
 */
export function runbookRelease(sandbox: Sandbox, appDir: string, root: string, unitPrefix: string): number {
  const remote =
    `set -e; port=$(cat ${root}/active-port); ` +
    `sudo -n tar -xzf - -C ${root}/current/ --no-same-owner; ` +
    `sudo -n systemctl restart ${unitPrefix}-web@$port.service`;
  const t0 = Date.now();
  const res = spawnSync(
    "bash",
    [
      "-o",
      "pipefail",
      "-c",
      `tar -C "$1" -czf - --exclude=.venv --exclude=__pycache__ --exclude=./data --exclude=./logs . | bash "$2" ssh "$3"`,
      "runbook",
      appDir,
      path.join(ROOT, "scripts", "sandbox"),
      remote,
    ],
    { env: sandboxEnv(sandbox), encoding: "utf8", timeout: 120_000 },
  );
  const seconds = (Date.now() - t0) / 1000;
  if (res.status !== 0) throw new Error(`runbook release failed (${res.status}): ${res.stderr}`);
  return seconds;
}

// ---------------------------------------------------------------- versions

export function hostVersions(): Record<string, string> {
  const one = (cmd: string) => onHost(cmd, { allowFailure: true }).stdout.trim().split("\n")[0] ?? "";
  return {
    caddy: one("caddy version"),
    python: one("python3 --version"),
    debian: one("cat /etc/debian_version"),
  };
}
