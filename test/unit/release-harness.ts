/**
 * Shared fixtures for the release tests, and a harness that runs the rendered
 * `apphost-release` in a temp directory: the layout is relocated under it, and
 * systemctl/journalctl (and runuser when not root) are replaced at render time
 * by small scripts. The fake systemctl really starts and stops the web
 * instances (a tiny Python HTTP server per port), so publish, the health gate,
 * the switch and the rollback mirror all run for real.
 */
import assert from "assert/strict";
import { spawn, spawnSync, type ChildProcess } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { AppConfig, BackupsConfig, DatabaseConfig, ReleasesConfig } from "../../components/config/types";
import { hostLayout, type HostLayout } from "../../components/paths";
import { buildArtifact } from "../../components/release/artifact";
import type { S3Target } from "../../components/release/backup";
import type { ReleaseInput } from "../../components/release/phases";
import { renderReleaseScript, type ScriptInput, type ScriptTiming } from "../../components/release/script";
import { pathWithPython3, python3 } from "./python3";

export const baseApp: AppConfig = {
  name: "shop",
  source: "app",
  excludes: [".git", "venv", ".venv", "node_modules", "__pycache__", "*.pyc", ".env", "/data/", "/logs/"],
  runtime: "python",
  requirements: "requirements.txt",
  healthPath: "/healthz",
  basePort: 8000,
  env: {},
  staticPrefix: "/static/",
  sharedDirs: [],
  dotenv: [],
  sharedUrls: {},
  processes: [
    { name: "web", command: "gunicorn -c gunicorn.conf.py app.main:app", kind: "web" },
    { name: "worker", command: "python worker.py", kind: "worker" },
  ],
  schedules: [],
  maintenance: false,
};

export const baseDatabase: DatabaseConfig = {
  kind: "sqlite",
  sqliteFile: "app.db",
  postgresName: "shop_prod",
  migrate: "alembic upgrade head",
  revision: "alembic current",
  pool: { size: 5, maxOverflow: 10, timeoutSeconds: 30, recycleSeconds: 1800 },
};

export const baseReleases: ReleasesConfig = {
  keep: 5,
  healthTimeoutSeconds: 60,
  drainSeconds: 5,
  lockTtlMinutes: 30,
  minFreeMb: 500,
  batchSize: 1,
};

export const baseBackups: BackupsConfig = { schedule: "daily", keep: 7, s3: false, s3ExpireDays: 30 };

export function baseInput(overrides: Partial<ReleaseInput> = {}): ReleaseInput {
  return {
    layout: hostLayout("shop", "prod"),
    app: baseApp,
    database: baseDatabase,
    releases: baseReleases,
    backups: baseBackups,
    proxy: { kind: "caddy" },
    ...overrides,
  };
}

export function mkTemp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `apphost-${prefix}-`));
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * apphost:releases.healthTimeoutSeconds on the fake hosts: what an unhealthy release waits before its
 * gate fails, on the gate's clock (HARNESS_HEALTH_CLOCK_SPEED).
 */
export const HARNESS_HEALTH_TIMEOUT_SECONDS = 3;

/**
 * The fake hosts' health gate keeps time this many times as fast as the wall clock (ScriptTiming.healthClockSpeed):
 * a gate that fails on its deadline takes 1 s of the 3 its message names, and the windows a test sets (the same
 * answer, another port) a third of theirs. A healthy test server answers within half a second, even on a busy
 * machine.
 */
export const HARNESS_HEALTH_CLOCK_SPEED = 3;

let venvTemplate: { dir: string; pyMM: string } | undefined;

/**
 * A venv as the install phase leaves one for an app without requirements.txt
 * (`python3 -m venv`, then `.apphost-complete`), but without pip, which such
 * an app never runs: its 3,000 files made each copy cost more system time than
 * the deploy itself. Built once for this machine's python3 and kept under the
 * temp directory (keyed by its version and path, checked before each use):
 * hosts with `sharedVenv` get a copy instead of building their own, 2-3 s of
 * CPU each.
 */
function sharedVenvTemplate(): { dir: string; pyMM: string } {
  if (venvTemplate) return venvTemplate;
  const probe = spawnSync(python3(), [
    "-c",
    'import sys; print("%d.%d" % sys.version_info[:2]); print(sys.version); print(sys.executable)',
  ]);
  assert.equal(probe.status, 0, `python3: ${probe.stderr}`);
  const pyMM = probe.stdout.toString().split("\n")[0];
  const key = createHash("sha256").update(`venv v2 without pip\n${probe.stdout}`).digest("hex").slice(0, 16);
  const dir = path.join(os.tmpdir(), `apphost-test-venv-${key}`);
  const usable = () =>
    fs.existsSync(path.join(dir, ".apphost-complete")) &&
    spawnSync(path.join(dir, "bin", "python"), ["-c", ""]).status === 0;
  if (!usable()) {
    // Built beside it, then renamed into place: a parallel worker sees all of it or none.
    const tmp = fs.mkdtempSync(`${dir}.tmp-`);
    fs.chmodSync(tmp, 0o755); // as the install phase makes it (install -d -m 0755)
    const made = spawnSync(python3(), ["-m", "venv", "--without-pip", tmp]);
    assert.equal(made.status, 0, `python3 -m venv --without-pip: ${made.stderr}`);
    fs.writeFileSync(path.join(tmp, ".apphost-complete"), "");
    if (fs.existsSync(dir) && !usable()) fs.rmSync(dir, { recursive: true, force: true });
    try {
      fs.renameSync(tmp, dir);
    } catch {
      fs.rmSync(tmp, { recursive: true, force: true }); // another worker's is in place
    }
    assert.ok(usable(), `the shared venv ${dir} is not usable`);
  }
  venvTemplate = { dir, pyMM };
  return venvTemplate;
}

const PORT_CLAIMS = path.join(os.tmpdir(), "apphost-test-ports");

/**
 * Three ports for a fake host (two web, the upstream), claimed by a file named after the first, which holds
 * the claiming process's pid: hosts alive at once in the parallel workers never share a port (a random pick
 * alone could, more often the more workers run). Below Linux's ephemeral range (32768 and up), where a
 * client connection of another test (one in TIME_WAIT too) can hold the port: the test server binds without
 * SO_REUSEADDR, and a web instance failed the gate with EADDRINUSE. `cleanup` gives the claim back.
 */
export function claimPorts(): number {
  fs.mkdirSync(PORT_CLAIMS, { recursive: true });
  for (let tries = 0; tries < 200; tries++) {
    const base = 20000 + 3 * Math.floor(Math.random() * 4000);
    const claim = path.join(PORT_CLAIMS, String(base));
    try {
      fs.writeFileSync(claim, String(process.pid), { flag: "wx" });
      return base;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    // A claim whose process is gone is removed, then drawn again; one given back meanwhile is simply gone, and an
    // empty one is being written.
    let owner = 0;
    try {
      owner = Number(fs.readFileSync(claim, "utf8"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      continue;
    }
    if (owner > 0 && !alive(owner)) fs.rmSync(claim, { force: true });
  }
  throw new Error(
    `no free port slot in ${PORT_CLAIMS} after 200 draws: remove the directory if no test runs`,
  );
}

/** Gives back the ports `claimPorts` gave. */
export function returnPorts(base: number): void {
  fs.rmSync(path.join(PORT_CLAIMS, String(base)), { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A host in a temp directory with the rendered script and fake systemd. */
export class FakeHost {
  readonly tmp: string;
  readonly layout: HostLayout;
  readonly script: string;
  readonly basePort: number;
  /** The port a first release starts on, the second of the two (choose_ports): basePort + 1 */
  readonly firstPort: number;
  private readonly runDir: string;
  private readonly sharedVenv: boolean | "with-requirements";
  private input: ScriptInput;

  constructor(
    opts: {
      releases?: Partial<ReleasesConfig>;
      database?: Partial<DatabaseConfig>;
      backupsKeep?: number;
      /** apphost:backups.s3: the script copies with a fake `aws` (see awsCalls(), failAws()) */
      s3?: S3Target;
      /**
       * Deploys of an app without requirements.txt find its venv already complete (a copy of one built
       * once, see sharedVenvTemplate) and reuse it. For the tests that are not about the install phase.
       * `"with-requirements"`: apps with one find theirs complete too (the same copy, under their own
       * requirements hash), so no deploy runs pip; for the tests about what happens around the venvs.
       */
      sharedVenv?: boolean | "with-requirements";
      /**
       * Shorter waits; `follow` looks every 0.1 s, the workers are checked 0.05 s after their restart and the health gate's
       * clock runs at HARNESS_HEALTH_CLOCK_SPEED unless this says otherwise
       */
      timing?: Partial<ScriptTiming>;
      /**
       * The systemd unit a stand-in `ss` and /proc say holds every port the health gate asks about, as
       * another stack's instance would. @default none: the harness's instances run in no unit, so the real
       * `ss` finds them and a /proc of this host's own (empty) tells no unit
       */
      portHolder?: string;
      /** The app's keys over baseApp's (a build command, say) */
      app?: Partial<AppConfig>;
      /** HostTools.cc: the C compiler the install phase's error looks for. @default "cc" */
      cc?: string;
    } = {},
  ) {
    this.sharedVenv = opts.sharedVenv ?? false;
    this.tmp = mkTemp("host");
    this.runDir = path.join(this.tmp, "run");
    fs.mkdirSync(this.runDir);
    const user = os.userInfo().username;
    this.layout = relocateLayout(hostLayout("shop", "test"), this.tmp, user);
    this.basePort = claimPorts();
    this.firstPort = this.basePort + 1;
    const bin = path.join(this.tmp, "fakebin");
    fs.mkdirSync(bin);
    const systemctl = path.join(bin, "systemctl");
    // /proc for the listeners' cgroups: each web instance the fake systemctl starts is in its unit's.
    const proc = path.join(this.tmp, "proc");
    fs.mkdirSync(proc);
    fs.writeFileSync(systemctl, fakeSystemctl(this.layout, this.runDir, proc), { mode: 0o755 });
    const journalctl = path.join(bin, "journalctl");
    fs.writeFileSync(journalctl, `#!/bin/bash\ntail -n 40 ${this.runDir}/journal.log 2>/dev/null || true\n`, {
      mode: 0o755,
    });
    // nft: logs the call beside systemctl's (for ordering) and keeps the ruleset it was given.
    const nft = path.join(bin, "nft");
    fs.writeFileSync(
      nft,
      `#!/bin/bash\necho "nft $*" >>${this.runDir}/systemctl.log\ncat >${this.runDir}/nft.ruleset\n`,
      { mode: 0o755 },
    );
    // runuser: the layout's user is this one, so `runuser -u <user> --` changes nothing but costs a PAM session
    // (about 3 ms of CPU each, some 600 times a unit run); the stand-in runs the command as it is. It is env:
    // `env -u <user> -- <command>` unsets a variable named like the user and runs the command, with no shell to
    // start first (every call the script makes is `runuser -u <user> -- <command>`).
    const runuser = path.join(bin, "runuser");
    fs.symlinkSync("/usr/bin/env", runuser);
    // systemd-run: the transient unit of `apphost-release start` as a detached process (its own session,
    // stdin/stdout/stderr from the --property=Standard*=file: options), logged beside systemctl's calls.
    const systemdRun = path.join(bin, "systemd-run");
    fs.writeFileSync(systemdRun, fakeSystemdRun(this.runDir), { mode: 0o755 });
    // With portHolder, a unit that holds every port: ss answering pid 4242, in that unit's cgroup.
    let ss = "ss";
    if (opts.portHolder) {
      fs.mkdirSync(path.join(proc, "4242"));
      fs.writeFileSync(path.join(proc, "4242", "cgroup"), `0::/system.slice/${opts.portHolder}\n`);
      ss = path.join(bin, "ss");
      fs.writeFileSync(
        ss,
        '#!/bin/bash\necho "LISTEN 0 2048 127.0.0.1:${2##*:} 0.0.0.0:* users:((\\"gunicorn\\",pid=4242,fd=5))"\n',
        { mode: 0o755 },
      );
    }
    // setfacl: logs the call beside systemctl's (the proxy's user, caddy, is not one of this machine's); it fails,
    // as on a file system mounted without ACLs, while the file setfacl.fail exists. A default entry it sets is kept
    // in acl-default/, where the stand-in getfacl finds it.
    const setfacl = path.join(bin, "setfacl");
    fs.mkdirSync(path.join(this.runDir, "acl-default"));
    fs.writeFileSync(
      setfacl,
      `#!/bin/bash
echo "setfacl $*" >>${this.runDir}/systemctl.log
if [ -f ${this.runDir}/setfacl.fail ]; then echo "setfacl: \${!#}: Operation not supported" >&2; exit 1; fi
re=",d:u:([a-z-]+):rX -- (.*)$"
if [[ $* =~ $re ]]; then echo "\${BASH_REMATCH[1]}" >"${this.runDir}/acl-default/$(printf %s "\${BASH_REMATCH[2]}" | tr / _)"; fi
`,
      { mode: 0o755 },
    );
    // getfacl -cp -- <dir>: the default entry the stand-in setfacl gave <dir>, as the real one prints it.
    const getfacl = path.join(bin, "getfacl");
    fs.writeFileSync(
      getfacl,
      `#!/bin/bash
f="${this.runDir}/acl-default/$(printf %s "\${!#}" | tr / _)"
if [ -f "$f" ]; then read -r user <"$f"; echo "default:user:$user:r-x"; fi
`,
      { mode: 0o755 },
    );
    // The fake AWS CLI logs its arguments; it fails while the file aws.fail exists.
    const aws = path.join(bin, "aws");
    fs.writeFileSync(
      aws,
      `#!/bin/bash\nif [ -f ${this.runDir}/aws.fail ]; then echo "upload failed: An error occurred (AccessDenied)" >&2; exit 1; fi\necho "$*" >>${this.runDir}/aws.log\n`,
      { mode: 0o755 },
    );
    const input: ScriptInput = {
      layout: this.layout,
      app: {
        ...baseApp,
        basePort: this.basePort,
        processes: [
          { name: "web", command: "python3 server.py", kind: "web" },
          { name: "worker", command: "true", kind: "worker" },
        ],
        ...opts.app,
      },
      database: {
        ...baseDatabase,
        migrate: "bash migrate.sh",
        revision: "bash revision.sh",
        ...opts.database,
      },
      releases: {
        ...baseReleases,
        healthTimeoutSeconds: HARNESS_HEALTH_TIMEOUT_SECONDS,
        drainSeconds: 0,
        minFreeMb: 1,
        ...opts.releases,
      },
      backups: { ...baseBackups, keep: opts.backupsKeep ?? 7 },
      proxy: { kind: "caddy" },
      s3: opts.s3,
      tools: {
        systemctl,
        journalctl,
        systemdRun,
        runuser,
        nft,
        aws,
        ss,
        proc,
        cc: opts.cc ?? "cc",
        setfacl,
        getfacl,
        requireRoot: false,
      },
      timing: {
        followPollSeconds: 0.1,
        workerSettleSeconds: 0.05,
        healthClockSpeed: HARNESS_HEALTH_CLOCK_SPEED,
        ...opts.timing,
      },
    };
    this.input = input;
    this.script = path.join(this.layout.bin, "apphost-release");
    fs.mkdirSync(this.layout.bin, { recursive: true });
    fs.writeFileSync(this.script, renderReleaseScript(input), { mode: 0o755 });
    fs.mkdirSync(path.dirname(this.layout.envFile), { recursive: true });
    fs.writeFileSync(this.layout.envFile, "GREETING='hello from the env file'\n", { mode: 0o600 });
  }

  /** The script rendered again with these keys of the app over its own, as the next `pulumi up` writes it. */
  rewrite(app: Partial<AppConfig>): void {
    this.input = { ...this.input, app: { ...this.input.app, ...app } };
    fs.writeFileSync(this.script, renderReleaseScript(this.input), { mode: 0o755 });
  }

  run(args: string[], stdin?: Buffer | string, env: NodeJS.ProcessEnv = {}): RunResult {
    const r = spawnSync(this.script, args, {
      input: stdin ?? "",
      env: { PATH: pathWithPython3(), HOME: process.env.HOME, ...env },
      timeout: 120000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { status: r.status ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  }

  private artifact(appDir: string) {
    const a = buildArtifact(appDir, {
      runtime: "python",
      requirements: "requirements.txt",
      excludes: baseApp.excludes,
    });
    // The shared venv is what the install phase builds for an app without requirements.txt; an app with
    // one gets a copy too only where the test asks for it.
    const hasRequirements = fs.existsSync(path.join(appDir, "requirements.txt"));
    if (this.sharedVenv === "with-requirements" || (this.sharedVenv && !hasRequirements))
      this.seedVenv(a.requirementsHash);
    return a;
  }

  /** The shared venv where the install phase looks for this requirements hash, unless one is there. */
  private seedVenv(requirementsHash: string): void {
    const t = sharedVenvTemplate();
    const dest = path.join(this.layout.venvs, `${requirementsHash}-py${t.pyMM}`);
    if (fs.existsSync(dest)) return;
    fs.mkdirSync(this.layout.venvs, { recursive: true, mode: 0o755 });
    const r = spawnSync("cp", ["-a", t.dir, dest]);
    assert.equal(r.status, 0, `cp -a ${t.dir} ${dest}: ${r.stderr}`);
  }

  /** Lets a migration written with `migrationGate` go on (it waits for data/proceed, then removes it). */
  proceed(): void {
    fs.mkdirSync(this.layout.data, { recursive: true });
    fs.writeFileSync(path.join(this.layout.data, "proceed"), "");
  }

  /** Build the artifact of `appDir` and deploy it as `id`. */
  deploy(appDir: string, id: string, owner?: string): RunResult {
    const a = this.artifact(appDir);
    return this.run(
      [...(owner ? ["--owner", owner] : []), "deploy", id, a.requirementsHash, a.sha256],
      a.tarGz,
    );
  }

  /**
   * `prepare`: the deploy's check, upload and install alone; `start prepare` (detached, followed) as each app host
   * runs it before a roll, or on this session with `direct`.
   */
  prepare(appDir: string, id: string, opts: { sha256?: string; direct?: boolean } = {}): RunResult {
    const a = this.artifact(appDir);
    const args = ["prepare", id, a.requirementsHash, opts.sha256 ?? a.sha256];
    return this.run(opts.direct ? args : ["start", ...args], a.tarGz);
  }

  /** `start deploy` with nothing on stdin, as the roll deploys on a host that prepared the release. */
  startPrepared(appDir: string, id: string): RunResult {
    const a = this.artifact(appDir);
    return this.run(["start", "deploy", id, a.requirementsHash, a.sha256]);
  }

  /** The same deploy, running in the background with its stdout and stderr as pipes the caller reads (or closes). */
  spawnDeploy(appDir: string, id: string): ChildProcess {
    const a = this.artifact(appDir);
    const child = spawn(this.script, ["deploy", id, a.requirementsHash, a.sha256], {
      env: { PATH: pathWithPython3(), HOME: process.env.HOME },
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin!.end(a.tarGz);
    return child;
  }

  /** `start deploy`: the same deploy detached (the fake systemd-run), followed to its end. */
  start(appDir: string, id: string, key = ""): RunResult {
    const a = this.artifact(appDir);
    return this.run(
      [...(key ? ["--key", key] : []), "start", "deploy", id, a.requirementsHash, a.sha256],
      a.tarGz,
    );
  }

  /** `start deploy` in the background, its pipes the caller's to read or close (a client that goes away). */
  spawnStart(appDir: string, id: string): ChildProcess {
    const a = this.artifact(appDir);
    const child = spawn(this.script, ["start", "deploy", id, a.requirementsHash, a.sha256], {
      env: { PATH: pathWithPython3(), HOME: process.env.HOME },
      stdio: ["pipe", "pipe", "pipe"],
    });
    child.stdin!.end(a.tarGz);
    return child;
  }

  get db(): string {
    return path.join(this.layout.data, "app.db");
  }

  read(p: string): string {
    return fs.existsSync(p) ? fs.readFileSync(p, "utf8") : "";
  }

  releaseLog(): string[][] {
    return this.read(this.layout.releaseLog)
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("\t"));
  }

  /** The last ruleset the script gave `nft -f -` ("" if none). */
  ruleset(): string {
    return this.read(path.join(this.runDir, "nft.ruleset"));
  }

  /** Argument lines the fake `aws` was called with. */
  awsCalls(): string[] {
    return this.read(path.join(this.runDir, "aws.log")).split("\n").filter(Boolean);
  }

  /** Makes the workers exit as they start (true), as a worker whose queue's server is missing does, or run (false). */
  crashWorkers(crash: boolean): void {
    this.setFlag("worker.crash", crash);
  }

  /** The process of a job's unit starts `seconds` after systemd-run returns (0: at once), as on a busy host. */
  slowJobStarts(seconds: number): void {
    fs.writeFileSync(path.join(this.runDir, "systemd-run.delay"), `${seconds}\n`);
  }

  /** Makes the workers `failed`, as systemd leaves one it gave up on, until a `reset-failed`. */
  giveUpWorkers(): void {
    fs.writeFileSync(path.join(this.runDir, "worker.failed"), "");
  }

  /**
   * A package upgrade replaced `file` (a library in /usr/lib) under the running processes of `unit`: their stand-in
   * maps name it `(deleted)`, as the kernel does once dpkg has renamed the new version over it. Beside it, mappings
   * that are not such a file: a venv's extension (not the system's), the locale archive (not executable) and a
   * library still in place. Returns the maps written, for the test to remove.
   */
  replaceLibraryUnder(unit: string, file: string): string[] {
    const proc = path.join(this.tmp, "proc");
    const written: string[] = [];
    for (const pid of fs.readdirSync(proc)) {
      const cgroup = path.join(proc, pid, "cgroup");
      if (!fs.existsSync(cgroup) || !fs.readFileSync(cgroup, "utf8").trim().endsWith(`/${unit}`)) continue;
      const maps = path.join(proc, pid, "maps");
      fs.writeFileSync(
        maps,
        [
          `7f3a10000000-7f3a10028000 r--p 00000000 fe:01 1311 /usr/lib/x86_64-linux-gnu/${file} (deleted)`,
          `7f3a10028000-7f3a1017d000 r-xp 00028000 fe:01 1311 /usr/lib/x86_64-linux-gnu/${file} (deleted)`,
          `7f3a20000000-7f3a20004000 r-xp 00000000 fe:01 2000 ${this.layout.venvs}/x/lib/_speedups.so (deleted)`,
          "7f3a30000000-7f3a30400000 r--p 00000000 fe:01 2001 /usr/lib/locale/locale-archive (deleted)",
          "7f3a40000000-7f3a40014000 r-xp 00002000 fe:01 2002 /usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
          "",
        ].join("\n"),
      );
      written.push(maps);
    }
    return written;
  }

  /** Makes the next `systemctl restart` of a worker fail, as a start job systemd reports failed does. */
  failWorkerRestartOnce(): void {
    fs.writeFileSync(path.join(this.runDir, "worker.restart.fail"), "");
  }

  /** A line in the journal every unit shows (the fake journalctl prints the last 40 lines for any unit). */
  logJournal(line: string): void {
    fs.appendFileSync(path.join(this.runDir, "journal.log"), `${line}\n`);
  }

  /** The host's log empty again: what logJournal() wrote is no unit's journal from now on. */
  clearJournal(): void {
    fs.writeFileSync(path.join(this.runDir, "journal.log"), "");
  }

  /** Web instances started from now on are started again when their server exits, as Restart=always does. */
  restartWebOnExit(): void {
    fs.writeFileSync(path.join(this.runDir, "web.restart"), "");
  }

  /** A flag file the fake tools look for in the run directory: there (true) or not (false). */
  private setFlag(name: string, on: boolean): void {
    const flag = path.join(this.runDir, name);
    if (on) fs.writeFileSync(flag, "");
    else fs.rmSync(flag, { force: true });
  }

  /** Makes the fake `setfacl` fail (true), as on a file system without ACLs, or succeed (false). */
  failSetfacl(fail: boolean): void {
    this.setFlag("setfacl.fail", fail);
  }

  /** Makes the fake `aws` fail (true) or succeed (false). */
  failAws(fail: boolean): void {
    this.setFlag("aws.fail", fail);
  }

  calls(): string[] {
    return this.read(path.join(this.runDir, "systemctl.log")).split("\n").filter(Boolean);
  }

  async get(port: number, p = "/"): Promise<{ status: number; body: string }> {
    const res = await fetch(`http://127.0.0.1:${port}${p}`);
    return { status: res.status, body: await res.text() };
  }

  /** Stop every fake instance this host started (by pid) and remove the temp dir. */
  cleanup(): void {
    for (const f of fs.existsSync(this.runDir) ? fs.readdirSync(this.runDir) : []) {
      if (!f.endsWith(".pid")) continue;
      const pid = Number(fs.readFileSync(path.join(this.runDir, f), "utf8"));
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        /* already gone */
      }
    }
    fs.rmSync(this.tmp, { recursive: true, force: true });
    returnPorts(this.basePort);
  }
}

/**
 * systemctl for the harness: web instances `…-web@<port>.service` run
 * `python3 server.py <port>` in `instances/<port>`; everything else is logged.
 */
function fakeSystemctl(layout: HostLayout, runDir: string, proc: string): string {
  return `#!/bin/bash
set -u
echo "$*" >>${runDir}/systemctl.log
verb=$1; shift
[ "$verb" = enable ] || [ "$verb" = disable ] && { [ "$1" = --quiet ] && shift; exit 0; }
# The workers (\`show -p NRestarts --value <unit>\` and is-active): running, unless crashWorkers() made them exit as
# they start (systemd restarting them: not active, NRestarts up by 2 at each look, and 0 again after reset-failed).
crash=0; [ -f ${runDir}/worker.crash ] && crash=1
[ "$verb" = reset-failed ] && [ $crash = 1 ] && echo 0 >${runDir}/worker.crash
# A worker systemd gave up on (giveUpWorkers()): failed until reset-failed.
[ "$verb" = reset-failed ] && [ -e ${runDir}/worker.failed ] && rm -f ${runDir}/worker.failed
# A web instance's restarts: what restartWebOnExit()'s loop counted.
if [ "$verb" = show ]; then case "\${!#}" in *-web@*.service) u=\${!#}; p=\${u##*@}; cat ${runDir}/\${p%.service}.restarts 2>/dev/null || echo 0; exit 0 ;; esac; fi
[ "$verb" = show ] && { n=0; [ $crash = 1 ] && { read -r n <${runDir}/worker.crash || n=0; n=$((n + 2)); echo $n >${runDir}/worker.crash; }; echo $n; exit 0; }
unit=\${1:-}
case "$unit" in
  *-web@*.service) port=\${unit##*@}; port=\${port%.service} ;;
  *) if [ "$verb" = restart ] && [ -f ${runDir}/worker.restart.fail ]; then rm -f ${runDir}/worker.restart.fail; echo "Job for $unit failed." >&2; exit 1; fi
     if [ "$verb" = is-active ]; then if [ -f ${runDir}/worker.failed ]; then echo failed; exit 3; fi; if [ $crash = 1 ]; then echo activating; exit 3; fi; echo active; fi; exit 0 ;;
esac
pidfile=${runDir}/$port.pid
# A killed instance is reparented to PID 1, which may reap it late: a zombie counts as stopped.
# (read, not cat or grep: the release script calls this a few hundred times in a unit run.)
pid=""
alive() {
  local stat=""
  { [ -f "$pidfile" ] && read -r pid <"$pidfile" && kill -0 "$pid"; } 2>/dev/null || return 1
  read -r stat <"/proc/$pid/stat" 2>/dev/null
  stat=\${stat##*) }
  [ "\${stat%% *}" != Z ]
}
# The server, in the unit's cgroup as the stand-in /proc tells it.
serve() { mkdir -p ${proc}/$BASHPID && echo "0::/system.slice/$unit" >${proc}/$BASHPID/cgroup && PORT=$port exec .venv/bin/python server.py "$port"; }
launch() {
  if [ -e ${runDir}/$port.restarts ]; then rm -f ${runDir}/$port.restarts; fi
  if [ -f ${runDir}/web.restart ]; then
    # Restart=always: the server again 0.2 s after it exits, each time counted as systemd's NRestarts.
    ( cd ${layout.root}/instances/$port && n=0 && while :; do (serve); n=$((n + 1)); echo $n >${runDir}/$port.restarts; sleep 0.2; done ) >>${runDir}/journal.log 2>&1 </dev/null 3>&- &
  else
    ( cd ${layout.root}/instances/$port && serve ) >>${runDir}/journal.log 2>&1 </dev/null 3>&- &
  fi
  echo $! >"$pidfile"
}
stop() { if alive; then kids=""; [ -f ${runDir}/web.restart ] && kids=$(pgrep -P "$pid"); kill "$pid"; [ -z "$kids" ] || kill $kids 2>/dev/null; for ((i = 0; i < 250; i++)); do alive || break; sleep 0.02; done; fi; if [ -e "$pidfile" ]; then rm -f "$pidfile"; fi; }
case "$verb" in
  stop) stop ;;
  start) alive || launch ;;
  restart) stop; launch ;;
  is-active) if alive; then echo active; else echo inactive; exit 3; fi ;;
esac
exit 0
`;
}

/** Resolves once `child`'s stderr has printed `text` (a phase line); rejects after `ms` with what it saw. */
export function untilStderr(child: ChildProcess, text: string, ms = 60000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`no "${text}" in: ${seen}`)), ms);
    child.stderr!.on("data", (b: Buffer) => {
      seen += b.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/**
 * systemd-run for the harness: runs the unit's command detached, as systemd would, and logs the call.
 * A unit it started stays loaded for good (systemd-run.loaded), as a job's unit that systemd has not
 * collected yet does: a second start under that name fails with systemd 252's message.
 * A bash in between waits for the command, so it is reaped the moment it exits, as systemd reaps a
 * unit's process: orphaned, it would wait for PID 1, which here reaps late (a second or two), and
 * until then `tail --pid` (follow) sees a zombie that still runs.
 */
function fakeSystemdRun(runDir: string): string {
  return `#!/bin/bash
set -u
echo "systemd-run $*" >>${runDir}/systemctl.log
in=/dev/null out=/dev/null err=/dev/null unit=
while [ $# -gt 0 ]; do
  case "$1" in
    --property=StandardInput=file:*) in=\${1#--property=StandardInput=file:} ;;
    --property=StandardOutput=file:*) out=\${1#--property=StandardOutput=file:} ;;
    --property=StandardError=file:*) err=\${1#--property=StandardError=file:} ;;
    --unit=*) unit=\${1#--unit=} ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
if [ -n "$unit" ] && grep -qxF "$unit" ${runDir}/systemd-run.loaded 2>/dev/null; then
  echo "Failed to start transient service unit: Unit $unit was already loaded or has a fragment file." >&2
  exit 1
fi
if [ -n "$unit" ]; then echo "$unit" >>${runDir}/systemd-run.loaded; fi
# slowJobStarts(): the unit's process starts this long after systemd-run returned, as on a busy host.
delay=0; [ -f ${runDir}/systemd-run.delay ] && read -r delay <${runDir}/systemd-run.delay
bash -c 'in=$1 out=$2 err=$3 delay=$4; shift 4; [ "$delay" = 0 ] || sleep "$delay"; setsid "$@" <"$in" >"$out" 2>"$err" & wait' \
  reaper "$in" "$out" "$err" "$delay" "$@" </dev/null >/dev/null 2>&1 3>&- 9>&- &
exit 0
`;
}

/** The test app: a tiny HTTP server and a SQLite migration script, both Python stdlib only. */
/** The server's second listener (writeTestApp's alsoBinds), failing as uWSGI's stats server does on a taken port. */
const ALSO_BINDS = (port: number) => `import socket
stats = socket.socket()
try:
    stats.bind(("127.0.0.1", ${port}))
    stats.listen()
except OSError:
    sys.stderr.write("probably another instance of uWSGI is running on the same address (127.0.0.1:${port}).\\nbind(): Address already in use [core/socket.c line 769]\\n")
    sys.exit(1)
`;

export function writeTestApp(
  dir: string,
  opts: {
    version: string;
    healthy?: boolean;
    /** What the health path answers when not healthy. @default 500 */
    unhealthyCode?: number;
    /** The body of that answer. @default the JSON every path answers */
    unhealthyBody?: string;
    /** With that answer, a traceback in the journal ending in this line, as Django logs a request's error */
    unhealthyError?: string;
    /** Every path but the health path answers 404 with this page (Django's debug page: DEBUG = True) */
    notFoundPage?: string;
    /**
     * `/` answers 302 to this location, as an app whose home page needs a login (microblog's /auth/login?next=%2F);
     * paths other than `/`, that page's and the health path then answer 404
     */
    rootRedirect?: string;
    migrations?: string[];
    failMigration?: boolean;
    /**
     * The migration touches data/migrating, then waits until the test lets it go on (FakeHost.proceed(),
     * which writes data/proceed; at most 60 s) before it starts
     */
    migrationGate?: boolean;
    /** The migration copies this file (the deploy lock) to `copyLockTo`, to show who held it */
    lockFile?: string;
    copyLockTo?: string;
    /** The port the server binds whatever its argument says, as `uvicorn.run(app)` binds 8000 */
    bindsPort?: number;
    /**
     * A second port the server binds once it listens on its own, as uWSGI's stats server (`stats = 127.0.0.1:9191`):
     * when it is taken the server exits with uWSGI's two lines
     */
    alsoBinds?: number;
    /** A taken port makes the server exit with uvicorn's line, which names the address, instead of Python's traceback */
    bindErrorAsUvicorn?: boolean;
    /**
     * The revision command opens the database read-write, creating an empty file where there is none, as Django's
     * `manage.py shell` does. By default it reads a database only where there is one.
     */
    revisionCreatesDatabase?: boolean;
    /**
     * The revision command runs the migration's statements before it reads the revision, as CTFd's `flask db current`
     * does: its create_app creates every table on SQLite (create_all) and stamps the head revision, before any migration.
     */
    revisionMigrates?: boolean;
    /** Who opens `db.sqlite3` in the release directory itself, as `startproject`'s settings do */
    strayDatabase?: "migration" | "server";
    /** A module the server imports as it starts: a missing one makes it exit with a traceback, as an app's import error does */
    importsAtStart?: string;
    /**
     * The revisions `revision.sh` knows: a database at another one makes it fail as `alembic current` does in
     * a release older than the database's migrations (`FAILED: Can't locate revision identified by '…'`, exit 255).
     * @default every revision
     */
    knowsRevisions?: string[];
  },
): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, "server.py"),
    // _socket and _thread, not http.server or socketserver: http.server's imports (email, http.client, html,
    // mimetypes) took 40 of the 63 ms a start cost, socketserver's (socket, selectors, threading) 9 of the 17 left,
    // and the harness starts a server for each release it publishes.
    `import _socket, _thread, os, sys
VERSION = ${JSON.stringify(opts.version)}
HEALTHY = ${opts.healthy === false ? "False" : "True"}
UNHEALTHY_CODE = ${opts.unhealthyCode ?? 500}
UNHEALTHY_BODY = ${opts.unhealthyBody === undefined ? "None" : JSON.stringify(opts.unhealthyBody)}
UNHEALTHY_ERROR = ${opts.unhealthyError === undefined ? "None" : JSON.stringify(opts.unhealthyError)}
NOT_FOUND_PAGE = ${opts.notFoundPage === undefined ? "None" : JSON.stringify(opts.notFoundPage)}
ROOT_REDIRECT = ${opts.rootRedirect === undefined ? "None" : JSON.stringify(opts.rootRedirect)}
ROOT_REDIRECT_PATH = ${opts.rootRedirect === undefined ? "None" : JSON.stringify(new URL(opts.rootRedirect).pathname)}
REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
def poisoned():
    # A database with a table named "poisoned" makes the app unhealthy (restore tests). sqlite3 (a third of a start)
    # is imported only for a database whose file or journal holds the word.
    seen = False
    for name in ("data/app.db", "data/app.db-wal"):
        try:
            with open(name, "rb") as f:
                seen = seen or b"poisoned" in f.read()
        except OSError:
            pass
    if not seen:
        return False
    import sqlite3
    try:
        db = sqlite3.connect("file:data/app.db?mode=ro", uri=True)
        return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'poisoned'").fetchone() is not None
    except sqlite3.Error:
        return False
def quoted(s):
    return '"' + s.replace("\\\\", "\\\\\\\\").replace('"', '\\\\"') + '"'
def handle(conn):
    # One request per connection, answered as HTTP/1.0 with Connection: close, as http.server's handler does; its
    # headers are read to the blank line and passed over.
    try:
        data = b""
        while b"\\r\\n\\r\\n" not in data and b"\\n\\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        request = data.split(b"\\n", 1)[0].decode("latin-1").strip()
        parts = request.split()
        if len(parts) < 2:
            return
        code = 200 if (parts[1] != "/healthz" or (HEALTHY and not poisoned())) else UNHEALTHY_CODE
        body = ('{"version": %s, "cwd": %s, "port": %s}' % (quoted(VERSION), quoted(os.path.realpath(".")), quoted(sys.argv[1]))).encode()
        if code != 200 and UNHEALTHY_BODY is not None:
            body = UNHEALTHY_BODY.encode()
        if NOT_FOUND_PAGE is not None and parts[1] != "/healthz":
            code, body = 404, NOT_FOUND_PAGE.encode()
        # An app whose home page needs a login has its own routes only: /, the login page and the health path.
        if ROOT_REDIRECT is not None and parts[1] not in ("/", "/healthz", ROOT_REDIRECT_PATH):
            code, body = 404, b"not found"
        if code != 200 and UNHEALTHY_ERROR is not None:
            sys.stderr.write('Internal Server Error: %s\\nTraceback (most recent call last):\\n  File "views.py", line 9, in index\\n    return render(request)\\n%s\\n' % (parts[1], UNHEALTHY_ERROR))
        head = "HTTP/1.0 %d %s\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\nconnection: close\\r\\n" % (code, REASONS.get(code, "Status"), len(body))
        if ROOT_REDIRECT is not None and parts[1] == "/":
            code, body = 302, b""
            head = "HTTP/1.0 302 Found\\r\\ncontent-length: 0\\r\\nconnection: close\\r\\nlocation: %s\\r\\n" % ROOT_REDIRECT
        elif 300 <= code < 400:
            head += "location: /catalog/\\r\\n"
        conn.sendall((head + "\\r\\n").encode("latin-1") + body)
        sys.stderr.write('server %s: "%s" %d -\\n' % (VERSION, request, code))
    except OSError:
        pass
    finally:
        conn.close()
if not HEALTHY:
    sys.stderr.write("server %s: unhealthy on purpose\\n" % VERSION)
${opts.importsAtStart ? `import ${opts.importsAtStart}\n` : ""}${opts.strayDatabase === "server" ? STRAY : ""}PORT = ${opts.bindsPort ?? "int(sys.argv[1])"}
server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
${
  opts.bindErrorAsUvicorn
    ? `try:
    server.bind(("127.0.0.1", PORT))
except OSError:
    sys.stderr.write("ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', %d): address already in use\\n" % PORT)
    sys.exit(3)
`
    : `server.bind(("127.0.0.1", PORT))
`
}server.listen(128)
${opts.alsoBinds ? ALSO_BINDS(opts.alsoBinds) : ""}while True:
    fd, _ = server._accept()
    _thread.start_new_thread(handle, (_socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd),))
`,
  );
  const migrations = opts.migrations ?? [
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)",
  ];
  // The revision command, as a script of its own: `sqlite3` reads what migrate.sh wrote, as `alembic current` does,
  // at a third of the CPU of a Python start (the release script asks for the revision several times a run).
  const known = opts.knowsRevisions?.map((r) => `"${r}"`).join(" | ");
  fs.writeFileSync(
    path.join(dir, "revision.sh"),
    `${
      opts.revisionCreatesDatabase
        ? "# Opens the file as Django does, creating it empty where there is none.\n: >>data/app.db\n"
        : opts.revisionMigrates
          ? "# Creates the tables and stamps the revision first, as CTFd's create_app does.\nsqlite3 data/app.db <migrate.sql\n"
          : "# Read-only, like \`alembic current\`: never creates the file or a table.\n"
    }if [ ! -s data/app.db ]; then echo none; exit 0; fi
# No revision table yet (a database the migration never ran on): none, as alembic says.
rev=$(sqlite3 -readonly data/app.db "SELECT rev FROM revision LIMIT 1" 2>/dev/null) || rev=""
${
  known
    ? `if [ -n "$rev" ]; then case "$rev" in ${known}) ;; *) echo "FAILED: Can't locate revision identified by '$rev'"; exit 255 ;; esac; fi
`
    : ""
}echo "\${rev:-none}"
`,
  );
  // The migration, in bash over sqlite3 (a Python start cost three times the CPU, some 70 times a unit run): the
  // statements, then the revision, each committed as it runs; a failing one stops it there.
  const sql = (v: string) => `'${v.replace(/'/g, "''")}'`;
  fs.writeFileSync(
    path.join(dir, "migrate.sql"),
    [
      ".bail on",
      ".timeout 5000",
      "CREATE TABLE IF NOT EXISTS revision (rev TEXT);",
      ...migrations.map((m) => `${m};`),
      "DELETE FROM revision;",
      `INSERT INTO revision VALUES (${sql(opts.version)});`,
      "",
    ].join("\n"),
  );
  fs.writeFileSync(
    path.join(dir, "migrate.sh"),
    `set -e
${opts.migrationGate ? GATE : ""}${opts.strayDatabase === "migration" ? STRAY_SH : ""}if [ "\${GREETING:-}" != "hello from the env file" ]; then echo "env file not loaded" >&2; exit 1; fi
${opts.lockFile ? `cat ${JSON.stringify(opts.lockFile)} >${JSON.stringify(opts.copyLockTo)}\n` : ""}sqlite3 data/app.db <migrate.sql
${opts.failMigration ? 'echo "migration: boom, something went wrong" >&2\nexit 3' : `echo "migrated to ${opts.version}"`}
`,
  );
  return dir;
}

/** A SQLite database opened in the working directory, the release: `BASE_DIR / "db.sqlite3"`. */
const STRAY = `import sqlite3
sqlite3.connect("db.sqlite3", isolation_level=None).execute("CREATE TABLE IF NOT EXISTS sessions (k TEXT)")
`;

/** The same in the migration (STRAY in bash). */
const STRAY_SH = `sqlite3 db.sqlite3 "CREATE TABLE IF NOT EXISTS sessions (k TEXT)"
`;

/** migrate.sh with `migrationGate`: data/migrating, then wait for data/proceed and consume it (at most 60 s). */
const GATE = `: >data/migrating
# read -t on a pipe no one writes to: a sleep without a process each time.
exec {wait}<> <(:)
for ((i = 0; i < 1200; i++)); do
  if [ -e data/proceed ]; then rm -f data/proceed; break; fi
  read -r -t 0.05 -u "$wait" || true
done
`;

/** apphost:backups.s3 as BackupBucket.target hands it to the script. */
export const S3 = { bucket: "shop-test-20250101abcdef", region: "eu-central-1", prefix: "shop/test/" };

export function requireTool(tool: string, hint: string): void {
  const r = spawnSync("sh", ["-c", `command -v ${tool}`]);
  if (r.status !== 0) assert.fail(`${tool} is not installed; it is required by these tests: ${hint}`);
}

export function sqlite(db: string, sql: string): string {
  const r = spawnSync("sqlite3", ["-bail", db, sql]);
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout.toString();
}

/** Same database pages; only the header counters SQLite bumps on every write may differ. */
export function assertSameDatabase(actual: string, expected: string): void {
  const a = fs.readFileSync(actual);
  const b = fs.readFileSync(expected);
  assert.equal(a.length, b.length, "database sizes differ");
  const mask = (buf: Buffer) => {
    const c = Buffer.from(buf);
    c.fill(0, 24, 28); // file change counter
    c.fill(0, 40, 44); // schema cookie
    c.fill(0, 92, 100); // version-valid-for and SQLite version number
    return c;
  };
  assert.ok(mask(a).equals(mask(b)), "database pages differ");
  assert.equal(sqlite(actual, ".sha3sum --schema"), sqlite(expected, ".sha3sum --schema"));
}

/**
 * The same layout moved under `root` (`/srv/<id>/x` → `<root>/srv/x`,
 * `/etc/...` → `<root>/etc/...`), for running the script in a temp directory.
 */
export function relocateLayout(layout: HostLayout, root: string, user = layout.user): HostLayout {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(layout)) {
    if (typeof v !== "string" || !v.startsWith("/")) out[k] = v;
    else if (v === layout.root || v.startsWith(`${layout.root}/`))
      out[k] = `${root}/srv${v.slice(layout.root.length)}`;
    else out[k] = `${root}${v}`;
  }
  return { ...(out as unknown as HostLayout), user };
}
