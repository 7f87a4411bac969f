/**
 * systemd units: one per `apphost:app.processes` entry, and the backup
 * service/timer pair.
 *
 * The web process is a template unit (`apphost-<id>-web@.service`), started
 * as `@<port>` with `PORT=%i`; blue/green releases alternate between two
 * ports. Workers are plain units.
 *
 * Hardening: measured with `systemd-analyze security --offline=true` on
 * systemd 252 (see test/unit/validate-tools.test.ts and docs/host-files.md):
 * 1.5 for the web unit, python and node alike (node goes without
 * MemoryDenyWriteExecute and ProcSubset=pid, see below), 1.5 for workers,
 * 1.7 for the backup service (root with five capabilities, no network).
 * Left out of the app units on purpose: PrivateNetwork and an
 * IPAddressDeny=any (the app talks to its database and to APIs; only the
 * instance metadata service, 169.254.169.254, is denied), PrivateUsers
 * (not needed to reach the target; it remaps every other owner to nobody,
 * which surprises apps reading group-owned files).
 */
import type { AppConfig, BackupsConfig, ProcessConfig, ScheduleConfig } from "../config/types";
import {
  alertScriptPath,
  alertUnitName,
  HostLayout,
  execUnitName,
  instanceEnvFile,
  jobUnitName,
  scheduleUnitNames,
  UNIT_DIR,
  unitName,
  upstreamUnitName,
} from "../paths";
import { leadingProgram, splitAssignments } from "../config/procfile";
import { managedBy } from "./common";
import { buildTools } from "../release/node";
import { assertSafe, SAFE, shellQuote as q } from "../shell";

export { UNIT_DIR };

/**
 * Name of the virtualenv link inside a release directory: the release links
 * `<release>/.venv` to its venv under `layout.venvs`, and the units put
 * `<release dir>/.venv/bin` first on PATH.
 */
export const RELEASE_VENV_LINK = ".venv";

/**
 * PYTHONPATH of a Python app's commands run in release directory `dir`: the
 * app's own package is never installed into the venv (it is shared by
 * releases), so `dir` and its `src/` (a src layout) are importable as an
 * editable install would make them. The units and `npm run exec` set it
 * (`processEnvironment`), and so does the release script for the build,
 * migrate and revision commands (`app_pythonpath`, release/script.ts).
 */
export function pythonImportPath(dir: string): string {
  return `${dir}:${dir}/src`;
}

export interface ProcessUnitInput {
  process: ProcessConfig;
  runtime: AppConfig["runtime"];
  /** The app's lock is Yarn 2 or later's (node.ts: appYarnBerry): a `yarn` command gets none of Yarn 1's settings. @default false */
  yarnBerry?: boolean;
  /** Seconds between SIGTERM and SIGKILL when the unit stops. @default 30 */
  stopTimeoutSeconds?: number;
  /** apphost:alerts is set: a failure starts the stack's alert unit (OnFailure=). @default false */
  alerts?: boolean;
}

/**
 * How long a crash loop lasts before systemd gives up on a process: more than
 * START_LIMIT_BURST starts within START_LIMIT_INTERVAL_SECONDS (with
 * RestartSec=2, about two minutes of crashing) leave the unit "failed", which
 * is what OnFailure= (apphost:alerts) reports. A release resets the failure
 * before it restarts a unit (phases.ts `restartUnit`).
 */
export const START_LIMIT_INTERVAL_SECONDS = 300;
export const START_LIMIT_BURST = 30;

/** `OnFailure=` of an apphost unit when apphost:alerts is set: the alert unit, told which unit failed. */
export function onFailure(layout: HostLayout, alerts: boolean | undefined): string[] {
  if (!alerts) return [];
  return [
    "# apphost:alerts: a failure of this unit posts one message (components/render/alert.ts).",
    `OnFailure=${alertUnitName(layout).replace("@.service", "@%n.service")}`,
  ];
}

export interface UnitFile {
  /** `apphost-<id>-web@.service` */
  name: string;
  /** `/etc/systemd/system/<name>` */
  path: string;
  content: string;
}

/**
 * Release directory of a web instance: `<root>/instances/%i`, a symlink the
 * release points at the new release before it starts the instance on that
 * port (components/release/phases.ts `instanceDir`). So the new instance
 * runs the new release while `current`, the old instance and the workers
 * stay on the old one until the switch.
 */
export function webInstanceDir(layout: HostLayout): string {
  return `${layout.instances}/%i`;
}

/** Release directory of a process: the instance link for web, `current` for workers. */
export function processDir(layout: HostLayout, kind: ProcessConfig["kind"]): string {
  return kind === "web" ? webInstanceDir(layout) : layout.current;
}

/**
 * The environment systemd gives an app process besides its env file, as
 * `NAME=value` (the unit's `Environment=` lines; `npm run exec` passes the
 * same with `systemd-run -E`).
 */
export function processEnvironment(
  dir: string,
  runtime: AppConfig["runtime"],
  web: boolean,
  command = "",
  yarnBerry = false,
): string[] {
  // HOME is the unit's private /tmp: the app user's home, the stack's root, is root's and read-only to the unit, and a
  // tool that writes there fails (gunicorn 27's control socket, ~/.gunicorn/gunicorn.ctl: `[ERROR] Control server
  // error: [Errno 30] Read-only file system`); each instance has its own, so two releases side by side never share it.
  const env = [`PATH=${processPath(dir, runtime)}`, "HOME=/tmp"];
  if (runtime === "python") {
    // PYTHONPATH in the env file replaces this one (systemd lets EnvironmentFile= override Environment=).
    env.push(
      `VIRTUAL_ENV=${dir}/${RELEASE_VENV_LINK}`,
      `PYTHONPATH=${pythonImportPath(dir)}`,
      "PYTHONUNBUFFERED=1",
    );
  } else {
    env.push("NODE_ENV=production");
  }
  // Yarn 1 looks for a writable cache and global folder at each `yarn start` and warns in the journal when the
  // home directory (the stack's root) has none: the process's private /tmp has both. It also refuses to run under
  // a Node that package.json's engines.node excludes, where npm runs (the install phase warns). Yarn 2 and later
  // refuse those settings, and need nothing written at `yarn start` (the release links its install state).
  if (!yarnBerry && buildTools(command).includes("yarn"))
    env.push("YARN_CACHE_FOLDER=/tmp/yarn-cache", "YARN_PREFIX=/tmp/yarn", "YARN_IGNORE_ENGINES=true");
  // uWSGI 2.0 takes SIGTERM, systemd's stop, for a brutal reload: it starts again, and the stop of a release's old
  // instance waits out TimeoutStopSec, then kills it. This option (read from the environment, as any uWSGI option,
  // beside the app's ini) makes SIGTERM a graceful shutdown, as in uWSGI 2.1: in-flight requests finish.
  if (/(^|\/)uwsgi$/.test(leadingProgram(command)?.program ?? ""))
    env.push(`UWSGI_HOOK_MASTER_START=${UWSGI_GRACEFUL_TERM}`);
  if (web) env.push("PORT=%i");
  return env;
}

/**
 * uWSGI's master hook that makes SIGTERM a graceful shutdown. uWSGI 2.0.31 on the sandbox: with it, gone 1 s after
 * SIGTERM (`graceful shutdown triggered`); without it, `...brutally killing workers...` and running again.
 */
export const UWSGI_GRACEFUL_TERM = "unix_signal:15 gracefully_kill_them_all";

/** `NAME=value` as a unit's Environment= line: quoted when the value has blanks, which systemd splits on. */
export function environmentLine(assignment: string): string {
  return /\s/.test(assignment)
    ? `Environment="${assignment.replace(/[\\"]/g, (c) => `\\${c}`)}"`
    : `Environment=${assignment}`;
}

/** PATH of an app process: its release's venv or node_modules/.bin, then the system. */
export function processPath(dir: string, runtime: AppConfig["runtime"]): string {
  const first = runtime === "python" ? `${dir}/${RELEASE_VENV_LINK}/bin` : `${dir}/node_modules/.bin`;
  return `${first}:/usr/local/bin:/usr/bin:/bin`;
}

/**
 * `ExecStart=` for a shell command from the config. systemd neither searches
 * PATH= nor expands `$PORT` inside a word, so the command runs under
 * `/bin/sh -c`. Escaped for systemd: `%` → `%%` (specifiers), `$` → `$$` (so
 * the shell, not systemd, expands `$PORT`), `\` and `"` inside the quotes.
 * A plain command gets `exec` so the app itself receives SIGTERM, after its
 * leading `NAME=value` words (`exec NAME=value cmd` would run a program named
 * `NAME=value`; `NAME=value exec cmd` exports it to cmd, as Heroku's shell
 * does); one with `;`, `&` or `|` keeps the shell, and the default
 * KillMode=control-group still signals every process of the unit.
 */
export function execStart(command: string): string {
  const { assignments, rest } = splitAssignments(command);
  const plain = !/[;&|]/.test(command) && !/^exec\s/.test(rest);
  const script = plain ? `${assignments}exec ${rest}` : command;
  const escaped = script
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/%/g, "%%")
    .replace(/\$/g, "$$$$");
  return `/bin/sh -c "${escaped}"`;
}

/**
 * The lines of a process's command drop-in (paths.ts, commandDropIn), which the release script writes as it
 * (re)starts the process: the command and what follows from it (the environment, and the two sandbox settings
 * that differ between python and node, runtimeSandbox), overriding the unit file's. `pulumi up` writes a changed
 * unit before the release runs; with this, a release that fails leaves each process one restart away from what it
 * ran, not from the new command. The same lines for every port: `%i` is the instance's.
 */
export function renderCommandDropIn(
  layout: HostLayout,
  {
    process,
    runtime: appRuntime,
    yarnBerry,
  }: { process: ProcessConfig; runtime: AppConfig["runtime"]; yarnBerry?: boolean },
): string[] {
  const key = `apphost:app.processes.${process.name}`;
  assertSafe("systemd drop-in", [[`${key}.command`, process.command, SAFE.oneLine]]);
  const runtime = processRuntime(process.command, appRuntime);
  const web = process.kind === "web";
  const sandbox = runtimeSandbox(runtime);
  return [
    `# apphost ${layout.id}: ${key}, as the release that started it runs it. This overrides the`,
    "# unit's command, which pulumi up writes before the release: a failed release leaves this file as it was.",
    `# ${managedBy("systemd.ts")}`,
    "[Service]",
    "ExecStart=",
    `ExecStart=${execStart(process.command)}`,
    ...processEnvironment(processDir(layout, process.kind), runtime, web, process.command, yarnBerry).map(
      environmentLine,
    ),
    `ProcSubset=${sandbox.procSubset}`,
    `MemoryDenyWriteExecute=${sandbox.memoryDenyWriteExecute}`,
  ];
}

/**
 * The two sandbox settings a runtime decides: Node's os.cpus() reads /proc/cpuinfo and /proc/stat, which
 * ProcSubset=pid hides (apps size their cluster with it; CPython reads the CPU count from /sys), and V8's JIT needs
 * writable+executable memory, which CPython does not.
 */
function runtimeSandbox(runtime: AppConfig["runtime"] | "backup"): {
  procSubset: "pid" | "all";
  memoryDenyWriteExecute: boolean;
} {
  return runtime === "node"
    ? { procSubset: "all", memoryDenyWriteExecute: false }
    : { procSubset: "pid", memoryDenyWriteExecute: true };
}

/**
 * A worker's sandbox as unit properties without comments (`Key=value`), for a
 * transient unit (`systemd-run --property=`, `npm run exec`).
 */
export function sandboxProperties(writable: string[], runtime: AppConfig["runtime"]): string[] {
  return hardening(writable, runtime).filter((l) => !l.startsWith("#"));
}

/** The sandbox every apphost service gets; node loosens two settings. */
function hardening(
  writable: string[],
  runtime: AppConfig["runtime"] | "backup",
  opts: { network?: boolean } = {},
): string[] {
  const lines = [
    "# Sandbox. Writable: only the paths below; /tmp is private.",
    `ReadWritePaths=${writable.join(" ")}`,
    "UMask=0027",
    "NoNewPrivileges=true",
    "ProtectSystem=strict",
    "ProtectHome=true",
    "PrivateTmp=true",
    "PrivateDevices=true",
    "PrivateMounts=true",
    "ProtectKernelTunables=true",
    "ProtectKernelModules=true",
    "ProtectKernelLogs=true",
    "ProtectControlGroups=true",
    "ProtectClock=true",
    "ProtectHostname=true",
    "ProtectProc=invisible",
  ];
  // The two settings node loosens (runtimeSandbox): left at systemd's defaults for it.
  const sandbox = runtimeSandbox(runtime);
  if (sandbox.procSubset === "pid") lines.push("ProcSubset=pid");
  if (runtime === "backup" && opts.network) {
    // apphost:backups.s3: the copy reaches S3 and the instance metadata service (IMDSv2,
    // for the role's credentials), so this backup keeps the host's network.
    lines.push("RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX");
  } else if (runtime === "backup") {
    // SQLite is a file and postgres is dumped through its local socket (a path, which a
    // private network namespace still reaches): no network at all.
    lines.push("PrivateNetwork=true", "RestrictAddressFamilies=AF_UNIX");
  } else {
    lines.push(
      // AF_NETLINK reads the interfaces' addresses (getifaddrs: Node's os.networkInterfaces(), which Uptime Kuma
      // calls as it starts and which throws without it); changing them needs CAP_NET_ADMIN, which the app lacks.
      "RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX",
      // The instance metadata service hands out the instance role's credentials (the backup
      // bucket's): the app never needs them, so a request forgery in the app cannot get them.
      "IPAddressDeny=169.254.169.254",
    );
  }
  lines.push(
    "RestrictNamespaces=true",
    "RestrictRealtime=true",
    "RestrictSUIDSGID=true",
    "LockPersonality=true",
  );
  if (sandbox.memoryDenyWriteExecute) lines.push("MemoryDenyWriteExecute=true");
  lines.push("RemoveIPC=true");
  if (runtime === "backup") {
    // Root, but only with what the backup script uses: runuser -u postgres
    // (SETUID/SETGID), reading and chowning the app's SQLite files
    // (DAC_OVERRIDE/CHOWN), chmod of the app-owned backups directory (FOWNER).
    lines.push("CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SETUID CAP_SETGID");
  } else {
    lines.push("CapabilityBoundingSet=");
  }
  lines.push(
    "AmbientCapabilities=",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "# A filtered call fails with EPERM instead of killing the process.",
    "SystemCallErrorNumber=EPERM",
  );
  return lines;
}

/** The unit file of one process. */
export function renderProcessUnit(layout: HostLayout, input: ProcessUnitInput): string {
  const { process, runtime } = input;
  const stop = input.stopTimeoutSeconds ?? 30;
  assertSafe("systemd unit", [
    [`apphost:app.processes.${process.name}`, process.name, SAFE.name],
    [`apphost:app.processes.${process.name}.command`, process.command, SAFE.oneLine],
    ["the stop timeout", stop, SAFE.seconds],
  ]);

  const web = process.kind === "web";
  const dir = processDir(layout, process.kind);
  const env = processEnvironment(dir, runtime, web, process.command, input.yarnBerry).map(environmentLine);

  return [
    web
      ? `# apphost ${layout.id}: ${process.name} process, one instance per port (@8000, @8001, ...).`
      : `# apphost ${layout.id}: ${process.name} process.`,
    `# ${managedBy("systemd.ts")}`,
    "[Unit]",
    web
      ? `Description=apphost ${layout.id} ${process.name} on port %i`
      : `Description=apphost ${layout.id} ${process.name}`,
    "After=network-online.target",
    "Wants=network-online.target",
    `# Keep restarting a crashing app (systemd's default gives up after five tries in 10s), but after`,
    `# ${START_LIMIT_BURST} starts within ${START_LIMIT_INTERVAL_SECONDS}s leave it failed, which apphost:alerts reports.`,
    `StartLimitIntervalSec=${START_LIMIT_INTERVAL_SECONDS}`,
    `StartLimitBurst=${START_LIMIT_BURST}`,
    ...onFailure(layout, input.alerts),
    "",
    "[Service]",
    "Type=exec",
    `User=${layout.user}`,
    `Group=${layout.user}`,
    web
      ? "# instances/<port> links to this instance's release; resolved at start, so a running instance keeps it."
      : "# `current` is resolved at start: a running worker keeps its release until it is restarted.",
    `WorkingDirectory=${dir}`,
    web
      ? `# The env this instance was started with: ${layout.envFile} as the deploy that started it found it.`
      : `# The live release's env: ${layout.envFile} as the deploy that made it live found it.`,
    "# Values in the env file override Environment= below; it never sets PORT or PATH.",
    `EnvironmentFile=${web ? instanceEnvFile(layout, "%i") : layout.liveEnv}`,
    ...env,
    `ExecStart=${execStart(process.command)}`,
    `SyslogIdentifier=${layout.id}-${process.name}`,
    "Restart=always",
    "RestartSec=2",
    "# Graceful stop: on SIGTERM gunicorn, uvicorn and node finish in-flight requests;",
    `# SIGKILL follows after ${stop}s.`,
    "KillSignal=SIGTERM",
    `TimeoutStopSec=${stop}`,
    "LimitNOFILE=65536",
    "",
    ...hardening([layout.data, layout.logs], runtime),
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

/**
 * The runtime a process runs under: `node` when its command, after any
 * `NAME=value` words, starts with node, nodejs, npm or npx (a small Node
 * process beside a Python app), else the app's runtime. It picks the unit's
 * PATH, environment and the two hardening settings V8 needs.
 */
export function processRuntime(command: string, appRuntime: AppConfig["runtime"]): AppConfig["runtime"] {
  const first = splitAssignments(command.trim())
    .rest.replace(/^exec\s+/, "")
    .split(/\s+/)[0];
  return /^(node|nodejs|npm|npx)$/.test(first) ? "node" : appRuntime;
}

/** Every process unit of a stack, named with `unitName()`. */
export function renderProcessUnits(
  layout: HostLayout,
  input: {
    processes: ProcessConfig[];
    runtime: AppConfig["runtime"];
    yarnBerry?: boolean;
    stopTimeoutSeconds?: number;
    alerts?: boolean;
  },
): UnitFile[] {
  return input.processes.map((process) => {
    const name = unitName(layout, process.name, process.kind);
    return {
      name,
      path: `${UNIT_DIR}/${name}`,
      content: renderProcessUnit(layout, {
        process,
        runtime: processRuntime(process.command, input.runtime),
        yarnBerry: input.yarnBerry,
        stopTimeoutSeconds: input.stopTimeoutSeconds,
        alerts: input.alerts,
      }),
    };
  });
}

export interface BackupUnitInput {
  /** `schedule` is the timer's OnCalendar expression */
  backups: Pick<BackupsConfig, "schedule">;
  /** Absolute path of the backup program, e.g. `/srv/<id>/bin/backup` */
  execStart: string;
  /** The backup copies to S3 (apphost:backups.s3) or dumps an RDS database, so it needs the network. @default false */
  network?: boolean;
  /** apphost:alerts is set: a failed backup (or its S3 copy) posts an alert. @default false */
  alerts?: boolean;
}

/** `<unitPrefix>-backup.service` and `.timer`. */
export function backupUnitNames(layout: HostLayout): { service: string; timer: string } {
  return { service: `${layout.unitPrefix}-backup.service`, timer: `${layout.unitPrefix}-backup.timer` };
}

/** What names a stack's units besides its layout: its processes and scheduled jobs. */
export interface StackUnitsInput {
  processes: Pick<ProcessConfig, "name" | "kind">[];
  schedules: Pick<ScheduleConfig, "name">[];
}

/**
 * What follows the removal of a process's unit file (or a timer's): the
 * process stops and is not started at boot again; for a web template, each
 * instance. `disable --now` works on a unit whose file is gone. Without it, a
 * process removed from apphost:app.processes, or renamed, kept running from
 * the deleted file, and a renamed web process's old instance held its port.
 */
export function unitRemovalCommand(unit: string): string {
  const stop = unit.endsWith("@.service")
    ? disableUnitsCommand([unit.replace("@.service", "@*.service")])
    : `systemctl disable --now ${q(unit)} || true`;
  if (unit.endsWith(".timer")) return `${stop}; systemctl daemon-reload`;
  return `${stop}; ${dropInRemoval(unit)}; systemctl daemon-reload`;
}

/**
 * `rm -rf` of a service's drop-in directory, each instance's for a template (`<name>@.service`: `<name>@*.service.d`,
 * a glob), with the command drop-ins a release wrote in them (paths.ts, commandDropIn): for a unit that goes.
 */
export function dropInRemoval(unit: string): string {
  return unit.endsWith("@.service")
    ? `rm -rf -- ${q(`${UNIT_DIR}/${unit.slice(0, -".service".length)}`)}*.service.d`
    : `rm -rf -- ${q(`${UNIT_DIR}/${unit}.d`)}`;
}

/**
 * Stops and disables every loaded unit that matches one of `patterns`
 * (`systemctl` patterns, quoted here); a transient one, which cannot be
 * disabled, is stopped. Destroy runs it on all of the stack's units, and a
 * removed web template's delete on its instances.
 */
export function disableUnitsCommand(patterns: readonly string[]): string {
  return (
    `for unit in $(systemctl list-units --all --plain --no-legend ${patterns.map(q).join(" ")} | awk '{print $1}'); do ` +
    'systemctl disable --now "$unit" >/dev/null 2>&1 || systemctl stop "$unit" || true; done'
  );
}

/**
 * Every unit the stack names, by its file name (templates as `<name>@.service`),
 * with what in the config makes it: `apphost:app.processes.<name>`,
 * `apphost:app.schedules.<name>`, or apphost's own. The transient `exec-<n>`
 * units of `npm run exec` are not in it: they have no name before they run.
 */
export function stackUnits(layout: HostLayout, app: StackUnitsInput): { unit: string; from: string }[] {
  const own = (unit: string, what: string) => ({ unit, from: `apphost's ${what} unit` });
  const backup = backupUnitNames(layout);
  return [
    ...app.processes.map((p) => ({
      unit: unitName(layout, p.name, p.kind),
      from: `apphost:app.processes.${p.name}`,
    })),
    ...app.schedules.flatMap((s) =>
      Object.values(scheduleUnitNames(layout, s.name)).map((unit) => ({
        unit,
        from: `apphost:app.schedules.${s.name}`,
      })),
    ),
    own(backup.service, "backup"),
    own(backup.timer, "backup timer"),
    own(upstreamUnitName(layout), "upstream"),
    own(jobUnitName(layout, ""), "deploy job"),
    own(alertUnitName(layout), "alert"),
  ];
}

/**
 * Every unit of the stack, as `systemctl` and `journalctl` take patterns: each
 * unit's own name, with a glob only after it (the web instances `<web>@*`,
 * `alert@*`, `exec-*`). Never `apphost-<id>-*`, which also matches the units
 * of a stack whose id starts with `<id>-` (sample-local and sample-local-b on
 * one host): the destroy of one stopped the other's.
 */
export function stackUnitPatterns(layout: HostLayout, app: StackUnitsInput): string[] {
  return [
    ...stackUnits(layout, app).map(({ unit }) => unit.replace("@.service", "@*.service")),
    execUnitName(layout, "*"),
  ];
}

function checkBackupInput(input: BackupUnitInput): void {
  assertSafe("backup units", [
    ["the backup script", input.execStart, SAFE.absolutePath],
    ["apphost:backups.schedule", input.backups.schedule, SAFE.oneLine],
  ]);
}

/** The backup service, run by the timer (and by hand: `systemctl start <prefix>-backup`). */
export function renderBackupService(layout: HostLayout, input: BackupUnitInput): string {
  checkBackupInput(input);
  return [
    `# apphost ${layout.id}: backup, started by ${backupUnitNames(layout).timer}.`,
    `# ${managedBy("systemd.ts")}`,
    "[Unit]",
    `Description=apphost ${layout.id} backup`,
    "After=network-online.target",
    "Wants=network-online.target",
    ...onFailure(layout, input.alerts),
    "",
    "[Service]",
    "Type=oneshot",
    "# Runs as root: the backup script (components/release/backup.ts) dumps postgres through",
    "# runuser -u postgres and hands SQLite files back to the app user. The sandbox below keeps",
    "# root to five capabilities and to the data and backups directories.",
    `WorkingDirectory=${layout.shared}`,
    `ExecStart=${input.execStart}`,
    `SyslogIdentifier=${layout.id}-backup`,
    "Nice=10",
    "IOSchedulingClass=idle",
    "",
    "# Reading a SQLite database in WAL mode writes its -shm file, so data is writable too.",
    ...hardening([layout.data, layout.backups], "backup", { network: input.network }),
    "",
  ].join("\n");
}

export function renderBackupTimer(layout: HostLayout, input: BackupUnitInput): string {
  checkBackupInput(input);
  return [
    `# apphost ${layout.id}: backup schedule (apphost:backups.schedule).`,
    `# ${managedBy("systemd.ts")}`,
    "[Unit]",
    `Description=apphost ${layout.id} scheduled backup`,
    "",
    "[Timer]",
    `OnCalendar=${input.backups.schedule}`,
    "# A run missed while the host was off happens at the next boot.",
    "Persistent=true",
    `Unit=${backupUnitNames(layout).service}`,
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
}

export interface UpstreamUnitInput {
  /** Absolute path of `apphost-release`; the unit runs `<script> upstream` */
  script: string;
}

/**
 * `apphost-<id>-upstream.service`: at boot, before the proxy starts, loads
 * the stack's nftables rule (components/render/nftables.ts) pointing the
 * upstream port at the port in `active-port`, through the same function a
 * release switches with (`apphost-release upstream`). nftables rules live in
 * the kernel only, so without this a reboot would leave the proxy's upstream
 * port leading nowhere.
 *
 * Debian's nftables.service flushes the whole ruleset when it starts or
 * reloads (`flush ruleset` in /etc/nftables.conf): PartOf= and
 * ReloadPropagatedFrom= load the rule again after it. No ExecStop: stopping
 * the unit (shutdown) leaves traffic flowing; destroy deletes the table.
 */
export function renderUpstreamUnit(layout: HostLayout, input: UpstreamUnitInput): string {
  assertSafe("upstream unit", [["the release script", input.script, SAFE.absolutePath]]);
  return [
    `# apphost ${layout.id}: the proxy's upstream port leads to the live web instance (nftables).`,
    `# ${managedBy("systemd.ts")}`,
    "[Unit]",
    `Description=apphost ${layout.id} upstream switch (nftables)`,
    "# Before the proxy, so it never connects to the upstream port with no rule behind it.",
    "Before=caddy.service nginx.service",
    "After=nftables.service",
    "PartOf=nftables.service",
    "ReloadPropagatedFrom=nftables.service",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=${input.script} upstream`,
    `ExecReload=${input.script} upstream`,
    `SyslogIdentifier=${layout.id}-upstream`,
    "# Root for nft, but only CAP_NET_ADMIN, and nothing on disk is written.",
    "CapabilityBoundingSet=CAP_NET_ADMIN",
    "NoNewPrivileges=true",
    "ProtectSystem=strict",
    "ProtectHome=true",
    "PrivateTmp=true",
    "RestrictAddressFamilies=AF_NETLINK AF_UNIX",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

export interface ScheduleUnitInput {
  schedule: ScheduleConfig;
  runtime: AppConfig["runtime"];
  /** The app's lock is Yarn 2 or later's (node.ts: appYarnBerry): a `yarn` command gets none of Yarn 1's settings. @default false */
  yarnBerry?: boolean;
  /** apphost:alerts is set: a failed run posts an alert. @default false */
  alerts?: boolean;
}

/**
 * A scheduled job's service (apphost:app.schedules.<name>): a oneshot run in
 * `current`, so it moves with the release, as the app user with the env file,
 * the same PATH and the same sandbox as a worker. The run is stopped and fails
 * after timeoutSeconds.
 */
export function renderScheduleService(layout: HostLayout, input: ScheduleUnitInput): string {
  const { schedule } = input;
  const runtime = processRuntime(schedule.command, input.runtime);
  const dir = layout.current;
  const names = scheduleUnitNames(layout, schedule.name);
  return [
    `# apphost ${layout.id}: scheduled job ${schedule.name}, started by ${names.timer} (apphost:app.schedules.${schedule.name}).`,
    `# ${managedBy("systemd.ts")}`,
    "[Unit]",
    `Description=apphost ${layout.id} scheduled job ${schedule.name}`,
    "After=network-online.target",
    "Wants=network-online.target",
    ...onFailure(layout, input.alerts),
    "",
    "[Service]",
    "Type=oneshot",
    `User=${layout.user}`,
    `Group=${layout.user}`,
    "# `current` is resolved at each start: every run uses the live release.",
    `WorkingDirectory=${dir}`,
    `EnvironmentFile=${layout.liveEnv}`,
    ...processEnvironment(dir, runtime, false, schedule.command, input.yarnBerry).map(environmentLine),
    `ExecStart=${execStart(schedule.command)}`,
    `SyslogIdentifier=${layout.id}-schedule-${schedule.name}`,
    `# A run still going after ${schedule.timeoutSeconds}s is stopped and counts as failed.`,
    `TimeoutStartSec=${schedule.timeoutSeconds}`,
    "KillSignal=SIGTERM",
    "TimeoutStopSec=30",
    "Nice=5",
    "",
    ...hardening([layout.data, layout.logs], runtime),
    "",
  ].join("\n");
}

/** The timer of a scheduled job: its OnCalendar, and no catch-up storm after downtime. */
export function renderScheduleTimer(layout: HostLayout, input: ScheduleUnitInput): string {
  const { schedule } = input;
  const names = scheduleUnitNames(layout, schedule.name);
  assertSafe("schedule timer", [
    [`apphost:app.schedules.${schedule.name}.onCalendar`, schedule.onCalendar, SAFE.oneLine],
  ]);
  return [
    `# apphost ${layout.id}: schedule of job ${schedule.name} (apphost:app.schedules.${schedule.name}.onCalendar).`,
    `# ${managedBy("systemd.ts")}`,
    "[Unit]",
    `Description=apphost ${layout.id} schedule of ${schedule.name}`,
    "",
    "[Timer]",
    `OnCalendar=${schedule.onCalendar}`,
    "# Seconds matter (*:*:0/10): systemd's default accuracy is a minute.",
    "AccuracySec=1s",
    "# A run missed while the host was off happens once at the next boot.",
    "Persistent=true",
    `Unit=${names.service}`,
    "",
    "[Install]",
    "WantedBy=timers.target",
    "",
  ].join("\n");
}

/**
 * `apphost-<id>-alert@.service`: started by `OnFailure=` with the failed
 * unit's name as its instance; runs the alert script as root (it alone reads
 * the webhook file), with the network and little else.
 */
export function renderAlertUnit(layout: HostLayout, input: { script?: string } = {}): string {
  return [
    `# apphost ${layout.id}: posts one alert when an apphost unit fails (apphost:alerts); %i is the failed unit.`,
    `# ${managedBy("systemd.ts")}`,
    "[Unit]",
    `Description=apphost ${layout.id} alert for %i`,
    "After=network-online.target",
    "",
    "[Service]",
    "Type=oneshot",
    `ExecStart=${input.script ?? alertScriptPath(layout)} %i`,
    `SyslogIdentifier=${layout.id}-alert`,
    "TimeoutStartSec=60",
    "# Root for its own (root-only) webhook file and systemctl show; no capabilities.",
    "CapabilityBoundingSet=",
    "NoNewPrivileges=true",
    "ProtectSystem=strict",
    "ProtectHome=true",
    "PrivateTmp=true",
    "PrivateDevices=true",
    "ProtectKernelTunables=true",
    "ProtectKernelModules=true",
    "ProtectControlGroups=true",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "IPAddressDeny=169.254.169.254",
    "",
  ].join("\n");
}
