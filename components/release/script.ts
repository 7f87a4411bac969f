/**
 * Renders `apphost-release`, the one script on the host that releases the app.
 * Installed at `<layout.bin>/apphost-release`, run as root over SSH:
 *
 *   apphost-release [--owner NAME] deploy <release-id> <requirements-hash> [<artifact-sha256>]  < release.tar.gz
 *   apphost-release [--owner NAME] rollback [<release-id>]
 *   apphost-release status
 *   apphost-release [--owner NAME] backup [<label>]
 *   apphost-release [--owner NAME] restore <backup-file>
 *   apphost-release unlock
 *   apphost-release upstream     (at boot: the upstream port leads to the active port again)
 *
 * Progress and errors go to stderr (`apphost: phase <name>: start|ok`,
 * `apphost: phase <name> failed: <reason>`); stdout carries only
 * machine-readable `key=value` lines (the result of deploy/rollback/backup, and
 * `status`). Exit statuses: EXIT_CODES in phases.ts.
 *
 * The static bash is release.sh beside this file (shellcheck reads it as it
 * is); this module renders only what differs per stack: the header of
 * `readonly` values, and the phase, database and restore functions.
 *
 * Test hooks: `tools` (HostTools) replaces systemctl/journalctl/runuser/nginx
 * and the root check AT RENDER TIME (the header's SYSTEMCTL, RUNUSER, ...,
 * REQUIRE_ROOT). A production render (no `tools`) names only the real commands
 * and reads no hook from the environment, so it behaves the same whoever calls it.
 */
import * as path from "path";
import { jobUnitName, unitName, upstreamPort, type HostLayout } from "../paths";
import { ansiC, shellQuote as q } from "../shell";
import { staticShell } from "../shellfile";
import { pythonImportPath, renderCommandDropIn } from "../render/systemd";
import { PROXY_USERS } from "../render/common";
import { portListenerFunction, unitListensFunction, unitReplacedFunction } from "../render/layout";
import { databaseFunctions, shellFunction, strayDatabasesFunction, toolsOf, assertSafePath } from "./backup";
import {
  EXIT_CODES,
  deployPhases,
  errorHintFunction,
  knownErrorLineFunction,
  PREPARE_PHASES,
  mirrorPhases,
  rollbackPhases,
  upstreamRuleset,
  workerUnits,
  type Phase,
  type ReleaseInput,
  webProcess,
} from "./phases";
import { cmdRestoreCommands, restoreRecoverCommands, restoreStartCommands } from "./restore";
import { RELEASE_ID_SHAPE } from "./id";
import { appYarnBerry } from "./node";

export interface ScriptInput extends Omit<ReleaseInput, "refs"> {
  /** Test hooks: shorter waits, baked into the header; omit in production */
  timing?: Partial<ScriptTiming>;
}

/**
 * Restarts by systemd, counted from the health gate's first look, after which the gate stops waiting: a web process
 * that exits soon after it starts does so again (with RestartSec=2, three take about 6 s plus its start-up each time,
 * against the 60 s of apphost:releases.healthTimeoutSeconds).
 */
export const HEALTH_CRASH_RESTARTS = 3;

/** How often the script looks again while it waits. */
export interface ScriptTiming {
  /** Seconds between the lock heartbeat's renewals. @default apphost:releases.lockTtlMinutes * 3 (a twentieth of the TTL) */
  lockRenewSeconds: number;
  /** Seconds between `follow`'s checks that a job's wrapper still runs (`tail -s`). @default 1 (tail's own) */
  followPollSeconds: number;
  /**
   * Seconds of the same redirect, 400, 401, 403, 404 or 405 on every try after which the health gate stops waiting:
   * a booted app's own answer, which more waiting does not change. @default 10
   */
  healthSameAnswerSeconds: number;
  /**
   * Seconds the new instance listens on other ports and not on its own before the health gate stops waiting: long
   * enough for an app that opens a side port (metrics) well before its server binds $PORT.
   * @default half of apphost:releases.healthTimeoutSeconds, at least 10
   */
  healthElsewhereSeconds: number;
  /**
   * Seconds after the deploy restarts the workers at which it looks whether each still runs: a worker that exits
   * as it starts has been restarted by systemd by then (RestartSec=2). @default 3
   */
  workerSettleSeconds: number;
  /**
   * How many times as fast as the wall clock the health gate's clock runs (a whole number): its deadline, its
   * windows and its polls all shrink by it, and its messages still name the seconds it was given. The unit
   * tests' fake hosts wait out failing gates this way. @default 1
   */
  healthClockSpeed: number;
}

/** The health gate's polls, in seconds on its clock: quickly while a fresh server is likely still booting, then once a second. */
const HEALTH_POLL_SECONDS = [0.1, 0.2, 0.4, 0.8, 1];

function timingOf(input: ScriptInput): ScriptTiming {
  const t: ScriptTiming = {
    lockRenewSeconds: input.releases.lockTtlMinutes * 3,
    followPollSeconds: 1,
    healthSameAnswerSeconds: 10,
    healthElsewhereSeconds: Math.max(10, Math.ceil(input.releases.healthTimeoutSeconds / 2)),
    workerSettleSeconds: 3,
    healthClockSpeed: 1,
    ...input.timing,
  };
  for (const [k, v] of Object.entries(t)) {
    if (!Number.isFinite(v) || v <= 0)
      throw new Error(`timing.${k} must be a positive number of seconds, got ${v}`);
  }
  if (!Number.isInteger(t.healthClockSpeed))
    throw new Error(`timing.healthClockSpeed must be a whole number, got ${t.healthClockSpeed}`);
  return t;
}

/** `<layout.bin>/apphost-release` */
export function releaseScriptPath(layout: HostLayout): string {
  return `${layout.bin}/apphost-release`;
}

function fnName(prefix: string, phase: string): string {
  return `${prefix}_${phase.replace(/-/g, "_")}`;
}

function phaseFunction(prefix: string, p: Phase): string {
  return `# ${p.name}: ${p.description.replace(/\n/g, " ")}\n${shellFunction(fnName(prefix, p.name), p.commands)}`;
}

/** The static part, release.sh beside this file, read once when the module loads (`staticShell`). */
export const RELEASE_SH: string = staticShell(path.join(__dirname, "release.sh"));

/** The exit statuses release.sh names, as `readonly EXIT_<NAME>=<status>` in the header. */
const STATIC_EXITS = ["usage", "backup", "locked", "nothingToRollBack", "rollbackFailed", "jobLost"] as const;

function exitVar(name: (typeof STATIC_EXITS)[number]): string {
  return `EXIT_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

function runPhases(prefix: string, phases: Phase[]): string[] {
  return phases.map((p) => `run_phase ${p.name} ${p.exitCode} ${fnName(prefix, p.name)}`);
}

/**
 * Render the whole script. Pure. The text is the header (comments, the
 * stack's `readonly` values, the runtime state), then the functions made for
 * this stack (database, phases, their runners, restore), then release.sh.
 */
export function renderReleaseScript(input: ScriptInput): string {
  const l = input.layout;
  for (const [k, v] of Object.entries(l)) {
    if (typeof v === "string" && v.startsWith("/")) assertSafePath(`layout.${k}`, v);
  }
  const t = toolsOf(input.tools);
  const deploy = deployPhases(input);
  const mirror = mirrorPhases(input);
  const rollback = rollbackPhases(input);
  const base = input.app.basePort;
  if (!Number.isInteger(base) || base < 1 || base > 65533) {
    throw new Error(
      `apphost:app.basePort must be a port between 1 and 65533 (basePort + 2 is the upstream port), got ${base}`,
    );
  }
  // The renderer's ruleset with the web port as a placeholder the script fills in.
  const sentinel = 65535;
  const rendered = upstreamRuleset(l, input.app, sentinel);
  if (rendered.split(`dnat to 127.0.0.1:${sentinel}`).length !== 2)
    throw new Error("the upstream ruleset does not name the web port exactly once");
  const upstreamTemplate = rendered.replace(`dnat to 127.0.0.1:${sentinel}`, "dnat to 127.0.0.1:@PORT@");
  const web = webProcess(input.app);
  const timing = timingOf(input);
  const E = EXIT_CODES;

  const header = `#!/bin/bash
# apphost-release for ${l.id}: deploys, rolls back and backs up this app on this host.
# Rendered by apphost (components/release/script.ts and release.sh); the next \`pulumi up\` overwrites edits.
#
# usage: apphost-release [--owner NAME] deploy <release-id> <requirements-hash> [<artifact-sha256>] < release.tar.gz
#        apphost-release [--owner NAME] prepare <release-id> <requirements-hash> [<artifact-sha256>] < release.tar.gz
#        apphost-release [--owner NAME] rollback [<release-id>]
#        apphost-release status
#        apphost-release [--owner NAME] backup [<label>]
#        apphost-release [--owner NAME] restore <backup-file>
#        apphost-release unlock
#        apphost-release upstream
#        apphost-release [--owner NAME] [--key KEY] start deploy|prepare|rollback <args...> [< release.tar.gz]
#        apphost-release follow [<job-id>]
#
# prepare runs deploy's check, upload and install alone; nothing that serves changes (several app hosts
# prepare side by side before a roll, whose deploys then reuse the upload and the install).
# start runs deploy, prepare or rollback detached, in a transient unit of its own, ${jobUnitName(l, "<job-id>")}, and follows its
# output: a lost SSH connection (or a killed client) no longer decides the fate of a deploy; the host
# finishes or rolls back on its own, and \`follow\` reattaches to it. Jobs live in ${l.jobs}/<job-id>/.
#
# Progress and errors: stderr. Results: key=value lines on stdout.
# Exit status: 0 ok, ${E.usage} usage, ${E.check} check, ${E.upload} upload, ${E.install} install, ${E.backup} backup,
# ${E.migrate} migrate, ${E.publish} publish, ${E["health-gate"]} health-gate, ${E.finish} finish (the release is live), ${E.locked} locked,
# ${E.nothingToRollBack} nothing to roll back to, ${E.rollbackFailed} the automatic rollback failed too, ${E.restore} restore, ${E.choose} rollback target unusable,
# ${E.jobLost} a detached job ended without an exit status (its unit was killed).
set -Eeuo pipefail
umask 022
export LC_ALL=C
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

readonly ROOT=${l.root}
readonly RELEASES=${l.releases}
readonly CURRENT=${l.current}
readonly INSTANCES=${l.instances}
readonly VENVS=${l.venvs}
${input.database.kind === "none" ? "" : `readonly BACKUPS=${l.backups}\n`}readonly RELEASE_LOG=${l.releaseLog}
readonly LOCK=${l.lock}
readonly DETACHED_LOG=${l.root}/release-output.log
readonly JOBS=${l.jobs}
readonly JOB_UNIT_TEMPLATE=${jobUnitName(l, "")}
readonly JOB_RE='^[0-9]{8}T[0-9]{6}Z-[0-9]+$'
readonly ACTIVE_PORT_FILE=${l.activePort}
readonly ENV_FILE=${l.envFile}
readonly LIVE_ENV=${l.liveEnv}
readonly UPSTREAM_PORT=${upstreamPort(base)}
readonly UPSTREAM_TEMPLATE=${ansiC(upstreamTemplate)}
readonly APP_USER=${q(l.user)}
readonly BASE_PORT=${base}
readonly RUNTIME=${input.app.runtime}
readonly YARN_BERRY=${appYarnBerry(input.app) ? 1 : 0}
readonly HEALTH_HOST=${q(input.health?.host ?? "")}
readonly HEALTH_PROTO=${q(input.health?.proto ?? "")}
readonly ID_RE='^${RELEASE_ID_SHAPE}$'
readonly APP_ID=${q(l.id)}
readonly UNIT_PREFIX=${q(l.unitPrefix)}
readonly NFT_TABLE=${q(l.nftTable)}
readonly WEB_UNIT=${q(web ? unitName(l, web, "web") : "")}
readonly WORKER_UNITS=${q(workerUnits(input).join(" "))}
${commandDropIns(input)}readonly S3_COPY=${input.s3 && input.database.kind !== "none" ? 1 : 0}
readonly REQUIRE_ROOT=${t.requireRoot ? 1 : 0}
readonly SYSTEMCTL=${q(t.systemctl)}
readonly JOURNALCTL=${q(t.journalctl)}
readonly SYSTEMD_RUN=${q(t.systemdRun)}
readonly RUNUSER=${q(t.runuser)}
readonly NFT=${q(t.nft)}
readonly CC=${q(t.cc)}
readonly SETFACL=${q(t.setfacl)}
readonly GETFACL=${q(t.getfacl)}
readonly PROXY_USER=${q(PROXY_USERS[input.proxy.kind])}
${STATIC_EXITS.map((k) => `readonly ${exitVar(k)}=${E[k]}`).join("\n")}
readonly LOGS_DIR=${l.logs}
readonly LINKED_DIR=${l.linked}
readonly LOCK_RENEW_SECONDS=${timing.lockRenewSeconds}
readonly FOLLOW_POLL_SECONDS=${timing.followPollSeconds}
readonly HEALTH_SAME_ANSWER_SECONDS=${timing.healthSameAnswerSeconds}
readonly HEALTH_ELSEWHERE_SECONDS=${timing.healthElsewhereSeconds}
readonly HEALTH_CRASH_RESTARTS=${HEALTH_CRASH_RESTARTS}
readonly HEALTH_CLOCK_SPEED=${timing.healthClockSpeed}
readonly HEALTH_POLL_SECONDS=(${HEALTH_POLL_SECONDS.map((s) => Number((s / timing.healthClockSpeed).toFixed(3))).join(" ")})
readonly WORKER_SETTLE_MICROS=${Math.round(timing.workerSettleSeconds * 1e6)}

PHASE=""
INSTALLING=""
PHASE_CODE=1
FAILED_PHASE=""
DEPLOYING=0
LOCK_HELD=0
LOCK_TTL_MINUTES=${input.releases.lockTtlMinutes}
LOCK_OWNER=\${APPHOST_LOCK_OWNER:-}
JOB_KEY=""
__STATE__`;

  const generated = [
    "# ---------------------------------------------------------------- database",
    databaseFunctions(input),
    strayDatabasesFunction('"$RUNUSER"', '"$APP_USER"'),
    "# port_listener <port>: <pid> <unit> of the process listening on <port> (health_wait, release.sh).",
    `${portListenerFunction(t).join("\n")}\n`,
    "# unit_listens <unit>: the addresses where <unit>'s processes listen on TCP, one a line (health_wait).",
    `${unitListensFunction(t).join("\n")}\n`,
    "# unit_replaced <unit>: the files <unit>'s processes run that a package upgrade replaced (status, units_down).",
    `${unitReplacedFunction(t).join("\n")}\n`,
    "# error_hint <line>: what a Python traceback's error line usually means (ERROR_HINTS, phases.ts), or nothing.",
    errorHintFunction(),
    "# known_error_line: the last line on stdin whose error ERROR_HINTS knows (journal_error, for output without a traceback).",
    knownErrorLineFunction(),
    "# app_pythonpath <var> <dir>: <var> becomes PYTHONPATH of the app's commands in release directory <dir> (empty for node).",
    shellFunction("app_pythonpath", [
      `printf -v "$1" '%s' "${input.app.runtime === "python" ? pythonImportPath("$2") : ""}"`,
    ]),
    "# ---------------------------------------------------------------- phases",
    ...deploy.map((p) => phaseFunction("deploy", p)),
    ...mirror.map((p) => phaseFunction("mirror", p)),
    ...rollback.map((p) => phaseFunction("rollback", p)),
    "# The phases in order, each with its exit status: cmd_deploy, cmd_prepare, cmd_rollback and run_mirror (release.sh) run them.",
    shellFunction("deploy_phases", runPhases("deploy", deploy)),
    shellFunction(
      "prepare_phases",
      runPhases(
        "deploy",
        deploy.filter((p) => (PREPARE_PHASES as readonly string[]).includes(p.name)),
      ),
    ),
    shellFunction("rollback_choose_phase", runPhases("rollback", rollback.slice(0, 1))),
    shellFunction("rollback_phases", runPhases("rollback", rollback.slice(1))),
    shellFunction(
      "mirror_phases",
      mirror.map((p) => `mirror_step ${p.name} ${fnName("mirror", p.name)}`),
    ),
    "# ---------------------------------------------------------------- restore",
    ...(input.database.kind === "none"
      ? [
          shellFunction("cmd_restore", [
            'refuse "restore: apphost:database.kind is none; there is no database to restore"',
          ]),
        ]
      : [
          "# restore_start: the units a restore stopped, then the health gate.",
          shellFunction("restore_start", restoreStartCommands(input)),
          "# restore_recover: after a failed restore, the saved database back and the units started (EXIT trap).",
          shellFunction("restore_recover", restoreRecoverCommands(input)),
          shellFunction("cmd_restore", cmdRestoreCommands(input)),
        ]),
    "# ---------------------------------------------------------------- release.sh",
  ].join("\n");

  // Runtime state, declared only when this render's commands use it (shellcheck: no unused variables).
  const state: [string, string][] = [
    ["RELEASE_ID", '""'],
    ["REQ_HASH", '""'],
    ["ARTIFACT_SHA256", '""'],
    ["ROLLBACK_TO", '""'],
    ["OLD_PORT", '""'],
    ["NEW_PORT", '""'],
    ["OLD_DIR", '""'],
    ["NEW_DIR", '""'],
    ["VENV", '""'],
    ["BACKUP_FILE", '""'],
    ["DB_FP_BEFORE", '""'],
    ["REVISION_BEFORE", '""'],
    ["REVISION", '""'],
    ["HEALTH_LAST", '""'],
    ["PUBLISH_STARTED", "0"],
    ["NEW_STARTED", "0"],
    ["SWITCHED", "0"],
    ["LIVE_ENV_SET", "0"],
    ["COMMITTED", "0"],
    ["MIGRATE_STARTED", "0"],
    ["MIGRATE_T0", '""'],
    ["STRAY", '""'],
    ["RESTORING", "0"],
    ["RESTORE_PORT", '""'],
    ["RESTORE_SAVED", '""'],
    ["UNITS_STOPPED", "0"],
    ["DB_REPLACED", "0"],
    ["WORKER_RESTARTS", "()"],
    ["LIVE_DROPINS", "()"],
    ["WORKERS_RESTARTED_AT", "0"],
  ];
  const body = `${generated}\n${RELEASE_SH}`;
  const used = state.filter(([name]) => new RegExp(`\\$\\{?${name}\\b`).test(body));
  return `${header.replace("__STATE__", used.map(([k, v]) => `${k}=${v}\n`).join(""))}\n${body}`;
}

/**
 * `DROPINS`, each process's command drop-in by its name (render/systemd.ts, renderCommandDropIn), which the publish
 * phase (web) and the switch (workers) write as they start it; nothing without processes.
 */
function commandDropIns(input: ScriptInput): string {
  const { app, layout } = input;
  if (app.processes.length === 0) return "";
  const entries = app.processes.map((process) => {
    const lines = renderCommandDropIn(layout, {
      process,
      runtime: app.runtime,
      yarnBerry: appYarnBerry(app),
    });
    return `  [${process.name}]=${ansiC(`${lines.join("\n")}\n`)}`;
  });
  return `readonly -A DROPINS=(\n${entries.join("\n")}\n)\n`;
}

// -------------------------------------------------------------- the caller

export interface ReleaseLogEntry {
  id: string;
  time: string;
  revision: string;
  outcome: string;
}

export interface ReleaseStatus {
  current: string;
  activePort?: number;
  previous: string;
  releases: string[];
  /** Lock description, "" when free */
  lock: string;
  log: ReleaseLogEntry[];
}

/** Parse a release log line `id\ttime\trevision\toutcome`. */
export function parseReleaseLogLine(line: string): ReleaseLogEntry | undefined {
  const f = line.split("\t");
  if (f.length !== 4) return undefined;
  return { id: f[0], time: f[1], revision: f[2] === "-" ? "" : f[2], outcome: f[3] };
}

/** Parse the stdout of `apphost-release status`. */
export function parseStatus(stdout: string): ReleaseStatus {
  const st: ReleaseStatus = { current: "", previous: "", releases: [], lock: "", log: [] };
  for (const line of stdout.split("\n")) {
    const i = line.indexOf("=");
    if (i < 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (k === "current") st.current = v;
    else if (k === "active_port") st.activePort = v ? Number(v) : undefined;
    else if (k === "previous") st.previous = v;
    else if (k === "releases") st.releases = v ? v.split(" ") : [];
    else if (k === "lock") st.lock = v;
    else if (k === "log") {
      const e = parseReleaseLogLine(v);
      if (e) st.log.push(e);
    }
  }
  return st;
}

/** Parse the `key=value` result lines of deploy, rollback, backup and restore. */
export function parseResult(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}
