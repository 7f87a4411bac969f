/**
 * `apphost-release restore <backup>` as data: the bodies of `cmd_restore` and
 * of `restore_recover`, which the EXIT trap runs when a restore fails.
 *
 *   verify    the backup's integrity, before anything changes
 *   stop      the workers, the live web instance (the proxy answers 502
 *             until the app is back: a restore is an outage on purpose, so no
 *             request writes into a database that is being replaced) and
 *             each scheduled job's timer (a run under way may end first, for
 *             up to 60 s, then it is stopped)
 *   save      back up what the restore replaces (label `pre-restore`)
 *   restore   the backup into the live database, integrity-checked before and after
 *   start     the web instance on the same port, the workers and the timers
 *   health    poll the health path until 2xx (apphost:releases.healthTimeoutSeconds)
 *   workers   a worker that does not stay up is a warning (workers_check)
 *
 * Failure loses nothing: `restore_recover` puts the saved copy back when the
 * database was already replaced, then starts what was stopped. The restore
 * then exits with EXIT_CODES.restore (EXIT_CODES.rollbackFailed when putting
 * things back failed too).
 */
import { scheduleUnitNames } from "../paths";
import { EXIT_CODES, webProcess, webUnit, workerUnits, type ReleaseInput } from "./phases";
import { toolsOf } from "./backup";

/**
 * How long a restore lets a scheduled job's run under way end by itself before it stops it (at most the job's own
 * timeout): a stopped run fails, and apphost:alerts reports it.
 */
const SCHEDULE_SETTLE_SECONDS = 60;

/**
 * The units a restore stops and starts: the web instance (on `$RESTORE_PORT`), every worker, and each scheduled
 * job (apphost:app.schedules, which run on the first app host only): its timer, and then its service, once a run under
 * way has ended or SCHEDULE_SETTLE_SECONDS have passed (a run that fires or goes on during the restore would write to
 * the database being replaced).
 */
function restoreUnits(input: ReleaseInput): {
  web?: string;
  workers: string[];
  schedules: { service: string; timer: string; settleSeconds: number }[];
} {
  return {
    ...(webProcess(input.app) ? { web: webUnit(input, "${RESTORE_PORT}") } : {}),
    workers: workerUnits(input),
    schedules: input.follower
      ? []
      : input.app.schedules.map((j) => ({
          ...scheduleUnitNames(input.layout, j.name),
          settleSeconds: Math.min(j.timeoutSeconds, SCHEDULE_SETTLE_SECONDS),
        })),
  };
}

/**
 * Body of `restore_start`: start the web instance, the workers and the scheduled jobs' timers, then wait for the
 * health path (the timers before it: a restore that fails it starts them again from restore_recover, which this
 * same function's failed health wait would otherwise leave stopped).
 */
export function restoreStartCommands(input: ReleaseInput): string[] {
  const t = toolsOf(input.tools);
  const { web, workers, schedules } = restoreUnits(input);
  const timeout = input.releases.healthTimeoutSeconds;
  const url = `http://127.0.0.1:$RESTORE_PORT${input.app.healthPath}`;
  return [
    ...(web ? [`if [ -n "$RESTORE_PORT" ]; then ${t.systemctl} start "${web}"; fi`] : []),
    ...workers.map((u) => `${t.systemctl} start ${u}`),
    // For workers_check, after the restore: how often systemd had restarted each, right after the start.
    ...(workers.length ? [`workers_note_restarts ${workers.join(" ")}`] : []),
    ...(schedules.length ? [`${t.systemctl} start ${schedules.map((j) => j.timer).join(" ")}`] : []),
    ...(web
      ? [
          `if [ -n "$RESTORE_PORT" ] && ! health_wait "${url}" "${web}" ${timeout}; then die "${web} did not answer 2xx on ${url} after the restore (last answer: $HEALTH_LAST)"; fi`,
        ]
      : []),
  ];
}

/** Body of `cmd_restore <backup>` (the database kind is not `none`). */
export function cmdRestoreCommands(input: ReleaseInput): string[] {
  const t = toolsOf(input.tools);
  const { web, workers, schedules } = restoreUnits(input);
  const stopped = [...workers, ...(web ? [web] : []), ...schedules.flatMap((j) => [j.timer, j.service])];
  return [
    "local file=${1:-}",
    'if [ -z "$file" ]; then refuse "restore: which backup? Backups here: $(db_list_backups)"; fi',
    'case "$file" in /*) ;; *) file=$BACKUPS/$file ;; esac',
    `if [[ ! "$file" =~ ^[A-Za-z0-9_./@%+=:,-]+$ ]]; then refuse "restore: \\"$file\\" has characters a backup name never has"; fi`,
    'if [ ! -f "$file" ]; then refuse "restore: there is no backup $file. Backups here: $(db_list_backups)"; fi',
    `PHASE=restore PHASE_CODE=${EXIT_CODES.restore}`,
    'note "phase restore: start"',
    'db_verify_backup "$file"',
    `lock_acquire ${input.releases.lockTtlMinutes}`,
    'RESTORE_PORT=""',
    'if [ -f "$ACTIVE_PORT_FILE" ]; then RESTORE_PORT=$(tr -dc 0-9 <"$ACTIVE_PORT_FILE"); fi',
    "RESTORING=1",
    `note "restore: stopping ${stopped.join(" ") || "nothing"} (requests get 502 until the app is back)"`,
    // Before the first stop: one that fails after another stopped still has restore_recover start them all again.
    "UNITS_STOPPED=1",
    ...workers.map((u) => `${t.systemctl} stop ${u}`),
    ...(web ? [`if [ -n "$RESTORE_PORT" ]; then ${t.systemctl} stop "${web}"; fi`] : []),
    ...schedules.flatMap((j) => [
      `${t.systemctl} stop ${j.timer}`,
      `run_settle ${j.service} ${j.settleSeconds}`,
    ]),
    "db_lock",
    "db_backup pre-restore",
    "RESTORE_SAVED=$BACKUP_FILE",
    'note "restore: what the restore replaces is saved in ${RESTORE_SAVED:-(nothing: there was no database)}"',
    "DB_REPLACED=1",
    'db_restore "$file"',
    "db_unlock",
    "restore_start",
    "RESTORING=0",
    'note "phase restore: ok"',
    'printf "restored=%s\\nsaved=%s\\nport=%s\\n" "$file" "$RESTORE_SAVED" "$RESTORE_PORT" >&3',
    // A worker that does not stay up on the restored database (a schema its code does not expect): a warning.
    ...(workers.length ? ["workers_check restore"] : []),
  ];
}

/**
 * Body of `restore_recover`, run by the EXIT trap after a failed restore:
 * every step in a subshell, so one failure does not skip the next.
 */
export function restoreRecoverCommands(input: ReleaseInput): string[] {
  const t = toolsOf(input.tools);
  const { web } = restoreUnits(input);
  return [
    "local ok=1 rc",
    'note "restore: failed; putting back what was there"',
    "# Not `if ( ... )`: errexit is ignored inside a condition.",
    'if [ "$DB_REPLACED" = 1 ] && [ -n "$RESTORE_SAVED" ]; then',
    '  ( set -e; db_restore "$RESTORE_SAVED" )',
    "  rc=$?",
    '  if [ "$rc" -eq 0 ]; then note "restore: the database is back as it was (from $RESTORE_SAVED)"; else ok=0; note "restore: could not put $RESTORE_SAVED back"; fi',
    "fi",
    'if [ "$UNITS_STOPPED" = 1 ]; then',
    "  ( set -e; restore_start )",
    "  rc=$?",
    '  if [ "$rc" -eq 0 ]; then note "restore: the app serves again"; else ok=0; note "restore: the app did not come back"; fi',
    "fi",
    ...(web
      ? [
          `if [ "$ok" = 0 ]; then note "restore: look at the host: ${t.systemctl} status ${web}, apphost-release status"; fi`,
        ]
      : []),
    '[ "$ok" = 1 ]',
  ];
}
