/**
 * `npm run releases -- --stack <name> [--config-file <path>] [--limit <n>]`
 *
 * What is live and since when: the host's release log (from `apphost-release
 * status` over SSH: release id, time, migration revision, outcome) next to
 * the stack's Pulumi history (version, kind, result, start and end time).
 * The first line answers the question:
 *
 *     live: 20250102120000-22222222 since 2025-01-02T12:00:41Z (deployed, migration 0002 (head)); the stack's releaseId
 *
 * Exit: 0 printed, 2 could not read the stack or the host. It reports, it
 * does not judge: a live release that differs from the stack's is flagged on
 * the first line, and `npm run doctor` fails its `release` check for it.
 */
import type * as auto from "@pulumi/pulumi/automation";
import { releaseScriptPath, parseStatus, type ReleaseStatus } from "../components/release/script";
import { runRemote } from "../components/remote/ssh";
import { shellQuote } from "../components/shell";
import { parseScheduleStatus, scheduleStatusScript, type ScheduleStatus } from "../components/remote/day2";
import {
  deployedLayout,
  openDeployedStack,
  openedStackConfig,
  parseOpsArgs,
  runCommand,
  type OpsArgs,
} from "./lib/ops";

export function parseReleasesArgs(argv: string[]): OpsArgs {
  const args = parseOpsArgs("releases", argv, ["limit"]);
  const limit = args.options.limit;
  if (limit !== undefined && !/^[1-9][0-9]*$/.test(limit)) {
    throw new Error(`--limit: "${limit}" must be a positive whole number`);
  }
  return args;
}

/** One row of the stack history as printed. */
export interface HistoryRow {
  version: number;
  kind: string;
  result: string;
  start: string;
  end: string;
  changes: string;
}

/**
 * Rows of `stack.history()` (newest first). Self-managed backends report
 * version 0 for every update; the rows are then numbered by position, 1 for
 * the oldest.
 */
export function historyRows(history: auto.UpdateSummary[]): HistoryRow[] {
  return history.map((h, i) => ({
    version: h.version > 0 ? h.version : history.length - i,
    kind: h.kind,
    result: h.result,
    start: isoTime(h.startTime),
    end: h.endTime ? isoTime(h.endTime) : "",
    changes: Object.entries(h.resourceChanges ?? {})
      .filter(([, n]) => n > 0)
      .map(([op, n]) => `${op} ${n}`)
      .join(", "),
  }));
}

export interface ReleasesView {
  stack: string;
  /** The stack's `releaseId` output: the release its last update published */
  releaseId: string;
  /** Where the release log lives on the host, for the heading */
  logPath: string;
  status: ReleaseStatus;
  history: HistoryRow[];
  /** apphost:app.schedules as the host reports them (they run in the live release) */
  schedules?: (ScheduleStatus & { onCalendar: string })[];
}

/** The first line: what is live and since when. */
export function liveLine(v: ReleasesViewLike): string {
  const { status, releaseId } = v;
  if (!status.current) {
    return `live: nothing (no current release on the host); the stack published ${releaseId || "no release"}`;
  }
  // The newest log line that made it live: deployed, or rolled back to.
  const since = [...status.log]
    .reverse()
    .find((e) => e.id === status.current && (e.outcome === "deployed" || e.outcome === "rolled-back"));
  const when = since
    ? `since ${since.time} (${since.outcome}${since.revision ? `, migration ${since.revision}` : ""})`
    : "since an unknown time (not in the last lines of the release log)";
  const port = status.activePort ? ` on port ${status.activePort}` : "";
  const match =
    status.current === releaseId
      ? "matches the stack's releaseId"
      : `WARNING: the stack published ${releaseId}; run npm run doctor, then \`npm run deploy -- up --stack ${v.stack}\` to put it back or adopt the change`;
  return `live: ${status.current} ${when}${port}; ${match}`;
}

type ReleasesViewLike = Pick<ReleasesView, "stack" | "releaseId" | "status">;

/** Everything `npm run releases` prints. */
export function renderReleases(v: ReleasesView): string[] {
  const lines = [liveLine(v), ""];
  const log = [...v.status.log].reverse();
  lines.push(`host release log (${v.logPath}, newest first${log.length >= 10 ? ", last 10" : ""}):`);
  if (log.length === 0) lines.push("  (empty)");
  else {
    lines.push(
      ...table(
        ["", "RELEASE", "TIME", "MIGRATION", "OUTCOME"],
        log.map((e, i) => [
          // The live release's newest line is marked.
          e.id === v.status.current && log.findIndex((x) => x.id === e.id) === i ? "*" : " ",
          e.id,
          e.time,
          e.revision || "-",
          e.outcome,
        ]),
      ),
    );
  }
  if (v.status.lock) lines.push(`  deploy lock held: ${v.status.lock}`);
  if (v.schedules && v.schedules.length > 0) {
    lines.push("", "scheduled jobs (each run uses the live release):");
    lines.push(
      ...table(
        ["JOB", "ON CALENDAR", "LAST RUN", "RESULT", "NEXT RUN"],
        v.schedules.map((s) =>
          s.runningSince
            ? // A run going on: systemd keeps no last result, nor the next run, until it ends.
              [
                s.name,
                s.onCalendar,
                `running now (started ${s.runningSince})`,
                "-",
                s.nextRun || "after this run",
              ]
            : [
                s.name,
                s.onCalendar,
                s.lastRun || "never",
                s.lastRun ? (s.result === "success" ? "success" : `${s.result} (exit ${s.status})`) : "-",
                s.nextRun || (s.timerActive ? "not set yet (timer active)" : "timer not active"),
              ],
        ),
      ),
    );
  }
  lines.push("", `stack history (${v.stack}, newest first):`);
  if (v.history.length === 0) lines.push("  (no updates)");
  else {
    lines.push(
      ...table(
        ["VERSION", "KIND", "RESULT", "STARTED", "ENDED", "CHANGES"],
        v.history.map((h) => [String(h.version), h.kind, h.result, h.start, h.end, h.changes]),
      ),
    );
  }
  return lines;
}

function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) =>
    "  " +
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}

function isoTime(d: Date | string): string {
  const date = d instanceof Date ? d : new Date(d);
  return Number.isNaN(date.getTime()) ? String(d) : date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function main(): Promise<number> {
  const opened = await openDeployedStack("releases", parseReleasesArgs, process.argv.slice(2), "read");
  if (typeof opened === "number") return opened;
  const { args, stack, deployed, cannot } = opened;
  let history: auto.UpdateSummary[];
  let layout;
  try {
    history = await stack.history();
    layout = await deployedLayout(opened);
  } catch (e) {
    return cannot("reading the stack", e);
  }
  const conn = deployed.connection;
  let status: ReleaseStatus;
  try {
    const res = await runRemote(conn, `exec ${shellQuote(releaseScriptPath(layout))} status`, {
      what: `apphost-release status on ${conn.user}@${conn.host}:${conn.port}`,
      timeoutSeconds: 120,
    });
    status = parseStatus(res.stdout);
  } catch (e) {
    return cannot("the host's release log", e);
  }
  let schedules: ReleasesView["schedules"];
  try {
    const jobs = (await openedStackConfig(opened)).app.schedules;
    if (jobs.length > 0) {
      const res = await runRemote(conn, scheduleStatusScript(layout, jobs), {
        what: `scheduled jobs on ${conn.user}@${conn.host}:${conn.port}`,
        timeoutSeconds: 60,
      });
      const byName = new Map(parseScheduleStatus(res.stdout).map((s) => [s.name, s]));
      schedules = jobs.map((j) => ({
        ...(byName.get(j.name) ?? {
          name: j.name,
          lastRun: "",
          result: "",
          status: "",
          nextRun: "",
          timerActive: false,
          runningSince: "",
        }),
        onCalendar: j.onCalendar,
      }));
    }
  } catch (e) {
    return cannot("the scheduled jobs", e);
  }
  const limit = Number(args.options.limit ?? 20);
  console.log(
    renderReleases({
      stack: args.stack,
      releaseId: deployed.releaseId,
      logPath: layout.releaseLog,
      status,
      history: historyRows(history).slice(0, limit),
      ...(schedules ? { schedules } : {}),
    }).join("\n"),
  );
  if (deployed.hosts) {
    // Several app hosts (apphost:lb): what each one serves; the history above is the first host's.
    console.log("\napp hosts (the first keeps the release log above, the backups and the scheduled jobs):");
    const rows: string[][] = [];
    for (const host of deployed.hosts) {
      const c = host.connection;
      try {
        const res = await runRemote(c, `exec ${shellQuote(releaseScriptPath(layout))} status`, {
          what: `apphost-release status on ${host.name}`,
          timeoutSeconds: 120,
        });
        const kv = Object.fromEntries(
          res.stdout
            .split("\n")
            .filter((l) => /^(current|previous|web)=/.test(l))
            .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
        );
        rows.push([
          host.name,
          `${c.user}@${c.host}:${c.port}`,
          kv.current || "none",
          kv.previous || "-",
          kv.web || "-",
        ]);
      } catch (e) {
        return cannot(`the release status of ${host.name}`, e);
      }
    }
    console.log(table(["HOST", "SSH", "CURRENT", "PREVIOUS", "WEB"], rows).join("\n"));
  }
  return 0;
}

if (require.main === module) {
  runCommand("releases", main);
}
