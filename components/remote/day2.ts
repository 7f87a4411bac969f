/**
 * The day-2 commands' host scripts, as data (`npm run logs`, `exec`,
 * `maintenance`, `doctor --alert-test`): pure functions from the stack's
 * typed config to one bash script each, run as root over the deploy's own
 * connection (scripts/*.ts). Tested as exact strings, and on the sandbox.
 */
import type { AppConfig, ProcessConfig, ScheduleConfig } from "../config/types";
import {
  alertScriptPath,
  execUnitName,
  maintenanceFiles,
  scheduleUnitNames,
  unitName,
  type HostLayout,
} from "../paths";
import {
  backupUnitNames,
  processEnvironment,
  processRuntime,
  sandboxProperties,
  stackUnitPatterns,
} from "../render/systemd";
import { shellQuote as q } from "./ssh";

/** The units `--since` takes, apphost's one letter and journalctl's spellings (systemd.time(7)), as journalctl gets them. */
const SINCE_UNITS: Record<string, string> = Object.fromEntries(
  [
    ["s", "s", "sec", "secs", "second", "seconds"],
    ["min", "m", "min", "mins", "minute", "minutes"],
    ["h", "h", "hr", "hour", "hours"],
    ["d", "d", "day", "days"],
  ].flatMap(([to, ...spellings]) => spellings.map((u) => [u, to])),
);

/**
 * `--since`: `90s`, `30m`, `2h`, `7d` (or journalctl's own `-30min`, `2hours`), or a date `2026-11-30` /
 * `2026-11-30 14:00[:00]`; journalctl's form.
 */
export function journalSince(since: string): string {
  const rel = /^-?([1-9][0-9]{0,5})([a-z]+)$/.exec(since);
  const unit = rel && Object.hasOwn(SINCE_UNITS, rel[2]) ? SINCE_UNITS[rel[2]] : undefined;
  if (rel && unit) return `-${rel[1]}${unit}`;
  if (/^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2})?)?$/.test(since)) return since;
  throw new Error(
    `--since: "${since}" is not a duration (90s, 30m, 2h, 7d) or a date (2026-11-30, "2026-11-30 14:00"); give one of those`,
  );
}

export interface LogsInput {
  app: Pick<AppConfig, "processes" | "schedules">;
  /** `--process`: a process name (web, a worker), a schedule name, `backup` or `migrate`; absent: every unit of the stack */
  process?: string;
  /** `--since` as given */
  since?: string;
  /** `-f`: follow until the client goes away */
  follow: boolean;
  /** Lines shown when `since` is absent. @default 200 */
  lines?: number;
}

/** Every name `--process` accepts, in the order `logs` lists them. */
export function logSources(app: Pick<AppConfig, "processes" | "schedules">): string[] {
  return [...app.processes.map((p) => p.name), ...app.schedules.map((s) => s.name), "backup", "migrate"];
}

/** The journal units of one `--process` (globs for the web template), or all of the stack's. */
export function journalUnits(
  layout: HostLayout,
  app: Pick<AppConfig, "processes" | "schedules">,
  process?: string,
): string[] {
  if (process === undefined) return stackUnitPatterns(layout, app);
  const proc = app.processes.find((p: ProcessConfig) => p.name === process);
  if (proc) return [unitName(layout, proc.name, proc.kind).replace("@.service", "@*.service")];
  const schedule = app.schedules.find((s: ScheduleConfig) => s.name === process);
  if (schedule) return [scheduleUnitNames(layout, schedule.name).service];
  if (process === "backup") return [backupUnitNames(layout).service];
  throw new Error(
    `--process: "${process}" is not a process of this stack; choose one of ${logSources(app).join(", ")}`,
  );
}

/**
 * `npm run logs`: the journal of the stack's units, merged in time order, each
 * line labelled by its process (the units' SyslogIdentifier, `<id>-<process>`);
 * `migrate` prints the newest migration log instead (read as the app user: the
 * logs directory is the app's). With `follow`, journalctl runs until ssh's
 * stdin closes (the client went away).
 */
export function logsScript(layout: HostLayout, input: LogsInput): string {
  if (input.process === "migrate") {
    if (input.follow)
      throw new Error("--process migrate: a migration log is a file of the last release; drop -f");
    return [
      "set -euo pipefail",
      `latest=$(runuser -u ${q(layout.user)} -- sh -c 'ls -t ${q(layout.logs)}/apphost-migrate-*.log 2>/dev/null | head -n 1') || true`,
      'if [ -z "$latest" ]; then echo "logs: no migration log yet in ' + layout.logs + '" >&2; exit 1; fi',
      'echo "==> $latest <==" >&2',
      `runuser -u ${q(layout.user)} -- cat -- "$latest"`,
      "",
    ].join("\n");
  }
  const units = journalUnits(layout, input.app, input.process);
  const args = ["journalctl", "--no-pager", "--quiet", "--output=short-iso"];
  if (input.since !== undefined) args.push(`--since=${journalSince(input.since)}`);
  else args.push(`--lines=${input.lines ?? 200}`);
  for (const u of units) args.push(`--unit=${u}`);
  const cmd = args.map(q).join(" ");
  if (!input.follow) return ["set -euo pipefail", cmd, ""].join("\n");
  return [
    "set -uo pipefail",
    `${cmd} --follow &`,
    "journal=$!",
    "# Until the client goes away: its ssh stdin closes, cat ends, journalctl is stopped.",
    "cat >/dev/null",
    'kill "$journal" 2>/dev/null',
    'wait "$journal" 2>/dev/null',
    "exit 0",
    "",
  ].join("\n");
}

export interface ExecInput {
  runtime: AppConfig["runtime"];
  /** The app's lock is Yarn 2 or later's (node.ts: appYarnBerry). @default false */
  yarnBerry?: boolean;
  /** The command: one word is shell text (`'flask shell'`), several are an argv, each word quoted */
  argv: string[];
  tty: boolean;
}

/** The shell text `exec` runs: one word as written, several words quoted one by one. */
export function execCommandText(argv: string[]): string {
  if (argv.length === 0)
    throw new Error("exec: no command; give one after --, e.g. npm run exec -- --stack local -- flask shell");
  if (argv.some((a) => /[\0]/.test(a))) throw new Error("exec: a NUL byte cannot be passed to a command");
  return argv.length === 1 ? argv[0] : argv.map(q).join(" ");
}

/**
 * `npm run exec`: the command in the live release (`current`), as the app
 * user, with the live env file read by systemd exactly as the workers read it, the
 * same PATH and the same sandbox as a worker, in a transient unit
 * (`systemd-run --wait`): its exit status is the command's. `--pipe` passes
 * stdin/stdout/stderr through; `--pty` gives a terminal. Nothing of the env
 * file is printed; the transient unit is collected when it ends.
 */
export function execScript(layout: HostLayout, input: ExecInput): string {
  const text = execCommandText(input.argv);
  const dir = layout.current;
  const runtime = processRuntime(text, input.runtime);
  const props = [
    `WorkingDirectory=${dir}`,
    `EnvironmentFile=${layout.liveEnv}`,
    ...sandboxProperties([layout.data, layout.logs], runtime).filter(
      // A terminal is a device node the private /dev would not have.
      (p) => !(input.tty && p.startsWith("PrivateDevices=")),
    ),
  ];
  const argv = [
    "systemd-run",
    "--quiet",
    "--wait",
    "--collect",
    "--service-type=exec",
    input.tty ? "--pty" : "--pipe",
    `--uid=${layout.user}`,
    `--gid=${layout.user}`,
    `--unit=${execUnitName(layout, "$$")}`,
    ...props.map((p) => `--property=${p}`),
    ...processEnvironment(dir, runtime, false, text, input.yarnBerry).map((e) => `--setenv=${e}`),
    "--",
    "/bin/sh",
    "-c",
    text,
  ];
  return [
    "set -uo pipefail",
    `if [ ! -e ${q(dir)} ]; then echo "exec: ${layout.id} has no live release yet (${dir}); deploy first" >&2; exit 2; fi`,
    // $$ names the unit after this shell: unique while it runs.
    `exec ${argv.map((a) => (a.includes("$$") ? `"${a}"` : q(a))).join(" ")}`,
    "",
  ].join("\n");
}

export type MaintenanceAction = "on" | "off" | "status";

/**
 * `npm run maintenance on|off|status`: the manual switch file (outside the
 * state); `status` and every action print `maintenance=on|off` and which
 * switch holds it. Neither reloads the proxy nor restarts the app.
 */
export function maintenanceScript(layout: HostLayout, action: MaintenanceAction): string {
  const f = maintenanceFiles(layout);
  const change =
    action === "on"
      ? [
          `install -d -m 0755 ${q(layout.maintenance)}`,
          `printf 'npm run maintenance on, %s\\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > ${q(f.manual)}.tmp`,
          `chmod 0644 ${q(f.manual)}.tmp`,
          `mv -f ${q(f.manual)}.tmp ${q(f.manual)}`,
        ]
      : action === "off"
        ? [`rm -f ${q(f.manual)}`]
        : [];
  return [
    "set -euo pipefail",
    ...change,
    `manual=off; config=off; page=missing`,
    `[ -e ${q(f.manual)} ] && manual=on`,
    `[ -e ${q(f.config)} ] && config=on`,
    `[ -e ${q(f.page)} ] && page=present`,
    'if [ "$manual" = on ] || [ "$config" = on ]; then echo maintenance=on; else echo maintenance=off; fi',
    'echo "manual=$manual"',
    'echo "config=$config"',
    'echo "page=$page"',
    "",
  ].join("\n");
}

/** `doctor --alert-test`: the alert script's test message; its exit status is the result. */
export function alertTestScript(layout: HostLayout): string {
  const script = alertScriptPath(layout);
  return [
    "set -uo pipefail",
    `if [ ! -x ${q(script)} ]; then echo "alert-test: ${script} is missing: apphost:alerts is not set on this stack (or not deployed yet)" >&2; exit 2; fi`,
    `exec ${q(script)} --test`,
    "",
  ].join("\n");
}

/** One scheduled job as the host reports it (`scheduleStatusScript`). */
export interface ScheduleStatus {
  name: string;
  /** When its last run ended, "" when it never ran */
  lastRun: string;
  /** systemd's Result of the last run (`success`, `exit-code`, `timeout`...), "" when it never ran */
  result: string;
  /** Exit status of the last run */
  status: string;
  /** Next run, "" when the timer is not active, or has not set it yet */
  nextRun: string;
  /**
   * The timer is active. Its next run can still be unset: while a run goes on, and for a moment after the
   * timer elapsed (the service and the timer are read one after the other).
   */
  timerActive: boolean;
  /**
   * When the run going on now started ("" when none is): systemd then keeps no
   * last result, and no next run until it ends.
   */
  runningSince: string;
}

/**
 * For each job, `job<TAB><name>` and then its units' properties as systemctl
 * prints them (`service<TAB>Result=success`, `timer<TAB>NextElapseUSecRealtime=…`).
 * A systemctl that fails fails the script (pipefail), rather than report a job as never run.
 */
export function scheduleStatusScript(layout: HostLayout, schedules: Pick<ScheduleConfig, "name">[]): string {
  const lines = ["set -euo pipefail"];
  for (const s of schedules) {
    const u = scheduleUnitNames(layout, s.name);
    lines.push(
      `printf 'job\\t%s\\n' ${q(s.name)}`,
      `systemctl show -p ExecMainExitTimestamp -p Result -p ExecMainStatus -p ActiveState -p ExecMainStartTimestamp -- ${q(u.service)} | sed 's/^/service\\t/'`,
      `systemctl show -p NextElapseUSecRealtime -p ActiveState -- ${q(u.timer)} | sed 's/^/timer\\t/'`,
    );
  }
  return lines.join("\n") + "\n";
}

export function parseScheduleStatus(text: string): ScheduleStatus[] {
  const out: ScheduleStatus[] = [];
  const props: Record<string, string> = {};
  const flush = (name: string | undefined) => {
    if (name === undefined) return;
    const ran =
      (props["service.ExecMainExitTimestamp"] ?? "") !== "" &&
      props["service.ExecMainExitTimestamp"] !== "n/a";
    const active = props["timer.ActiveState"] === "active";
    const next = props["timer.NextElapseUSecRealtime"] ?? "";
    const running = ["activating", "active", "deactivating"].includes(props["service.ActiveState"] ?? "");
    const since = props["service.ExecMainStartTimestamp"] ?? "";
    // While a run goes on, the last run's result is gone (systemd reset it when this one started).
    const last = ran && !running;
    out.push({
      name,
      lastRun: last ? props["service.ExecMainExitTimestamp"] : "",
      result: last ? (props["service.Result"] ?? "") : "",
      status: last ? (props["service.ExecMainStatus"] ?? "") : "",
      nextRun: active && next !== "" && next !== "n/a" ? next : "",
      timerActive: active,
      runningSince: running ? (since !== "" && since !== "n/a" ? since : "just now") : "",
    });
    for (const k of Object.keys(props)) delete props[k];
  };
  let current: string | undefined;
  for (const line of text.split("\n")) {
    const [kind, rest] = [line.slice(0, line.indexOf("\t")), line.slice(line.indexOf("\t") + 1)];
    if (kind === "job") {
      flush(current);
      current = rest;
    } else if (kind === "service" || kind === "timer") {
      const eq = rest.indexOf("=");
      if (eq > 0) props[`${kind}.${rest.slice(0, eq)}`] = rest.slice(eq + 1);
    }
  }
  flush(current);
  return out;
}
