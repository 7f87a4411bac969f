/**
 * `apphost-release restore <backup>` as data: the bodies of `cmd_restore` and
 * of `restore_recover`, which the EXIT trap runs when a restore fails.
 *
 *   verify    the backup's integrity, before anything changes
 *   stop      the workers and the live web instance (the proxy answers 502
 *             until the app is back: a restore is an outage on purpose, so no
 *             request writes into a database that is being replaced)
 *   save      back up what the restore replaces (label `pre-restore`)
 *   restore   the backup into the live database, integrity-checked before and after
 *   start     the web instance on the same port and the workers
 *   health    poll the health path until 2xx (apphost:releases.healthTimeoutSeconds)
 *   workers   a worker that does not stay up is a warning (workers_check)
 *
 * Failure loses nothing: `restore_recover` puts the saved copy back when the
 * database was already replaced, then starts what was stopped. The restore
 * then exits with EXIT_CODES.restore (EXIT_CODES.rollbackFailed when putting
 * things back failed too).
 */
import { EXIT_CODES, webProcess, webUnit, workerUnits, type ReleaseInput } from "./phases";
import { toolsOf } from "./backup";

/** The units a restore stops and starts: the web instance (on `$RESTORE_PORT`) and every worker. */
function restoreUnits(input: ReleaseInput): { web?: string; workers: string[] } {
  return {
    ...(webProcess(input.app) ? { web: webUnit(input, "${RESTORE_PORT}") } : {}),
    workers: workerUnits(input),
  };
}

/** Body of `restore_start`: start the web instance and the workers, then wait for the health path. */
export function restoreStartCommands(input: ReleaseInput): string[] {
  const t = toolsOf(input.tools);
  const { web, workers } = restoreUnits(input);
  const timeout = input.releases.healthTimeoutSeconds;
  const url = `http://127.0.0.1:$RESTORE_PORT${input.app.healthPath}`;
  return [
    ...(web ? [`if [ -n "$RESTORE_PORT" ]; then ${t.systemctl} start "${web}"; fi`] : []),
    ...workers.map((u) => `${t.systemctl} start ${u}`),
    // For workers_check, after the restore: how often systemd had restarted each, right after the start.
    ...(workers.length ? [`workers_note_restarts ${workers.join(" ")}`] : []),
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
  const { web, workers } = restoreUnits(input);
  const stopped = [...workers, ...(web ? [web] : [])];
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
    ...workers.map((u) => `${t.systemctl} stop ${u}`),
    ...(web ? [`if [ -n "$RESTORE_PORT" ]; then ${t.systemctl} stop "${web}"; fi`] : []),
    "UNITS_STOPPED=1",
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
