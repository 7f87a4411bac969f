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
 * Test hooks: `tools` (HostTools) replaces systemctl/journalctl/runuser/nginx
 * and the root check AT RENDER TIME. A production render (no `tools`) contains
 * only the real commands and reads no hook from the environment, so it behaves
 * the same whoever calls it.
 */
import { jobUnitName, upstreamPort, type HostLayout } from "../paths";
import { ansiC, shellQuote as q } from "../remote/ssh";
import { databaseFunctions, shellFunction, toolsOf, assertSafePath } from "./backup";
import {
  EXIT_CODES,
  deployPhases,
  mirrorPhases,
  rollbackPhases,
  upstreamRuleset,
  type Phase,
  type ReleaseInput,
  webProcess,
  webUnit,
} from "./phases";
import { cmdRestoreCommands, restoreRecoverCommands, restoreStartCommands } from "./restore";

export type ScriptInput = Omit<ReleaseInput, "refs">;

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

/** Render the whole script. Pure. */
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
  const E = EXIT_CODES;

  const header = `#!/bin/bash
# apphost-release for ${l.id}: deploys, rolls back and backs up this app on this host.
# Rendered by apphost (components/release/script.ts); the next \`pulumi up\` overwrites edits.
#
# usage: apphost-release [--owner NAME] deploy <release-id> <requirements-hash> [<artifact-sha256>] < release.tar.gz
#        apphost-release [--owner NAME] rollback [<release-id>]
#        apphost-release status
#        apphost-release [--owner NAME] backup [<label>]
#        apphost-release [--owner NAME] restore <backup-file>
#        apphost-release unlock
#        apphost-release upstream
#        apphost-release [--owner NAME] [--key KEY] start deploy|rollback <args...> [< release.tar.gz]
#        apphost-release follow [<job-id>]
#
# start runs deploy or rollback detached, in the transient unit ${jobUnitName(l)}, and follows its
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
readonly JOB_UNIT=${jobUnitName(l)}
readonly JOB_RE='^[0-9]{8}T[0-9]{6}Z-[0-9]+$'
readonly ACTIVE_PORT_FILE=${l.activePort}
readonly ENV_FILE=${l.envFile}
readonly UPSTREAM_PORT=${upstreamPort(base)}
readonly UPSTREAM_TEMPLATE=${ansiC(upstreamTemplate)}
readonly APP_USER=${q(l.user)}
readonly BASE_PORT=${base}
readonly RUNTIME=${input.app.runtime}
readonly HEALTH_HOST=${q(input.health?.host ?? "")}
readonly HEALTH_PROTO=${q(input.health?.proto ?? "")}
readonly ID_RE='^[0-9]{14}-[0-9a-f]{8}$'

PHASE=""
PHASE_CODE=1
FAILED_PHASE=""
DEPLOYING=0
LOCK_HELD=0
LOCK_TTL_MINUTES=${input.releases.lockTtlMinutes}
LOCK_OWNER=\${APPHOST_LOCK_OWNER:-}
JOB_KEY=""
__STATE__`;

  const helpers = [
    shellFunction("note", ['printf "apphost: %s\\n" "$*" >&2']),
    "# Fail the current phase: message on stderr, the phase's exit status, the EXIT trap rolls back.",
    shellFunction("die", [
      'if [ -n "$PHASE" ]; then FAILED_PHASE=$PHASE; printf "apphost: phase %s failed: %s\\n" "$PHASE" "$*" >&2; else printf "apphost: %s\\n" "$*" >&2; fi',
      'exit "$PHASE_CODE"',
    ]),
    shellFunction("fail", ['die "$@"']),
    shellFunction("usage_error", [
      `printf "apphost: %s\\nusage: %s [--owner NAME] deploy <release-id> <requirements-hash> [<artifact-sha256>] | rollback [<release-id>] | status | backup [<label>] | restore <file> | unlock | upstream | start deploy|rollback <args> | follow [<job-id>]\\n" "$1" "$0" >&2`,
      `exit ${E.usage}`,
    ]),
    "# A failing command outside a condition: name it in the phase's error. In a subshell, let the parent report.",
    shellFunction("on_error", [
      'if [ "$BASH_SUBSHELL" -gt 0 ]; then exit "$1"; fi',
      'die "\\`$2\\` exited with status $1"',
    ]),
    "# A signal fails the phase; the EXIT trap rolls back. When the client went away (SIGPIPE: sshd closed",
    "# the pipes; SIGHUP: the session ended), the rest of the output, rollback included, goes to",
    "# $DETACHED_LOG instead: a write to the dead pipe must not cut the rollback short.",
    shellFunction("on_signal", [
      "trap '' PIPE",
      'if [ "$1" = PIPE ] || [ "$1" = HUP ]; then exec >>"$DETACHED_LOG" 2>&1 3>&1; note "the client went away (SIG$1) at $(date -u +%Y-%m-%dT%H:%M:%SZ); finishing here"; fi',
      'die "interrupted by SIG$1"',
    ]),
    "# run_phase <name> <exit code> <function>: `phase <name>: ok (<seconds>s)` says how long each phase took.",
    shellFunction("run_phase", [
      "local started=$EPOCHREALTIME",
      "PHASE=$1 PHASE_CODE=$2",
      "lock_refresh",
      'note "phase $1: start"',
      '"$3"',
      `note "phase $1: ok ($(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s)"`,
      'PHASE=""',
    ]),
    "# ensure_dirs <mode> <owner> <dir>...: create the missing ones; never loosen or re-own an existing one.",
    shellFunction("ensure_dirs", [
      "local mode=$1 owner=$2 d",
      "shift 2",
      'for d in "$@"; do',
      '  if [ -d "$d" ]; then continue; fi',
      '  if [ "$owner" = root ]; then install -d -m "$mode" "$d"; else install -d -m "$mode" -o "$owner" -g "$owner" "$d"; fi',
      "done",
    ]),
    "# Run a command as the app user in a release directory, with the stack's env file loaded and the venv on PATH.",
    "# shellcheck disable=SC2016 # the inner script expands its own variables",
    shellFunction("as_app", [
      `${t.runuser} -u "$APP_USER" -- env -i HOME="$ROOT" USER="$APP_USER" LOGNAME="$APP_USER" LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin \\`,
      '  APPHOST_DIR="$1" APPHOST_ENV_FILE="$ENV_FILE" APPHOST_CMD="$2" \\',
      `  bash -c 'set -e; if [ -e "$APPHOST_ENV_FILE" ]; then set -a; . "$APPHOST_ENV_FILE"; set +a; fi; cd "$APPHOST_DIR"; export VIRTUAL_ENV="$APPHOST_DIR/.venv" PATH="$APPHOST_DIR/.venv/bin:$APPHOST_DIR/node_modules/.bin:$PATH"; eval "$APPHOST_CMD"' 3>&- 9>&-`,
    ]),
    "# Last non-empty stdout line of the revision command, or empty.",
    shellFunction("app_revision", [
      "local out",
      'out=$(as_app "$1" "$2" 2>/dev/null) || true',
      "printf '%s' \"$out\" | awk 'NF { line = $0 } END { print line }' | tr '\\t' ' '",
    ]),
    shellFunction("drain_stdin", ["if [ ! -t 0 ]; then cat >/dev/null; fi"]),
    shellFunction("current_id", ['if [ -L "$CURRENT" ]; then basename "$(readlink "$CURRENT")"; fi']),
    shellFunction("atomic_link", [
      "# ln to a temp name, then rename over the old link: readers never see it missing.",
      'ln -sfn "$1" "$2.tmp.$$"',
      'mv -T -f "$2.tmp.$$" "$2"',
    ]),
    shellFunction("write_active_port", [
      'printf "%s\\n" "$1" >"$ACTIVE_PORT_FILE.tmp.$$"',
      'mv -f "$ACTIVE_PORT_FILE.tmp.$$" "$ACTIVE_PORT_FILE"',
    ]),
    shellFunction("choose_ports", [
      'OLD_PORT=""',
      'if [ -f "$ACTIVE_PORT_FILE" ]; then OLD_PORT=$(tr -dc 0-9 <"$ACTIVE_PORT_FILE"); fi',
      'case "$OLD_PORT" in',
      '  "") NEW_PORT=$BASE_PORT ;;',
      '  "$BASE_PORT") NEW_PORT=$((BASE_PORT + 1)) ;;',
      '  "$((BASE_PORT + 1))") NEW_PORT=$BASE_PORT ;;',
      '  *) NEW_PORT=$BASE_PORT; note "warning: the active port $OLD_PORT is neither $BASE_PORT nor $((BASE_PORT + 1)) (apphost:app.basePort changed?); moving to $NEW_PORT" ;;',
      "esac",
      'note "ports: live ${OLD_PORT:-none}, new $NEW_PORT"',
    ]),
    "# Point the upstream port at a web port: the stack's nftables table replaced in one transaction.",
    "# New connections go to that port at once; established ones stay where they are. The proxy is not reloaded.",
    shellFunction("switch_upstream", [
      "local out",
      `if ! out=$(printf "%s" "\${UPSTREAM_TEMPLATE//@PORT@/$1}" | ${t.nft} -f - 2>&1); then`,
      '  die "nft refused the upstream rule 127.0.0.1:$UPSTREAM_PORT -> 127.0.0.1:$1 (the previous rule stays): $out"',
      "fi",
      `note "upstream: 127.0.0.1:$UPSTREAM_PORT -> 127.0.0.1:$1 (nftables table ip ${l.nftTable})"`,
    ]),
    "# health_wait <url> <unit> <seconds>: 0 on a 2xx before the deadline; HEALTH_LAST says what came back last.",
    "# The requests carry the Host and X-Forwarded-Proto the proxy would send (HEALTH_HOST, HEALTH_PROTO).",
    shellFunction("health_wait", [
      "local deadline=$((SECONDS + $3)) code state tries=0 headers=()",
      'if [ -n "$HEALTH_HOST" ]; then headers=(-H "Host: $HEALTH_HOST" -H "X-Forwarded-Proto: $HEALTH_PROTO"); fi',
      'HEALTH_LAST="nothing yet"',
      "while :; do",
      '  code=$(curl -s -o /dev/null -w \'%{http_code}\' --max-time 5 "${headers[@]}" "$1") || true',
      '  HEALTH_LAST="HTTP ${code:-000}"',
      '  case "$code" in 2[0-9][0-9]) note "health: $1 answered $code"; return 0 ;; esac',
      `  state=$(${t.systemctl} is-active "$2" 2>/dev/null) || true`,
      '  if [ "$state" = failed ]; then HEALTH_LAST="$HEALTH_LAST, $2 has failed"; return 1; fi',
      '  if [ "$SECONDS" -ge "$deadline" ]; then return 1; fi',
      "  # Poll quickly while a fresh server is likely still booting (0.1, 0.2, 0.4, 0.8 s), then once a second.",
      '  case "$tries" in 0) sleep 0.1 ;; 1) sleep 0.2 ;; 2) sleep 0.4 ;; 3) sleep 0.8 ;; *) sleep 1 ;; esac',
      "  tries=$((tries + 1))",
      "done",
    ]),
    shellFunction("journal_tail", [
      `${t.journalctl} -u "$1" --since "@$PUBLISH_STARTED" -n 40 --no-pager -o cat 2>&1 || true`,
    ]),
    "# release_log <id> <revision> <outcome>: one tab-separated line per attempt.",
    shellFunction("release_log", [
      "local rev",
      "rev=$(printf '%s' \"$2\" | tr '\\t\\n' '  ')",
      'printf "%s\\t%s\\t%s\\t%s\\n" "$1" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${rev:--}" "$3" >>"$RELEASE_LOG"',
    ]),
    "# previous_release <id>: the newest release older than <id> that served successfully and is still here.",
    shellFunction("previous_release", [
      "local ids id",
      'if [ ! -f "$RELEASE_LOG" ] || [ -z "$1" ]; then return 0; fi',
      `ids=$(awk -F'\\t' '$4 == "deployed" || $4 == "rolled-back" { print $1 }' "$RELEASE_LOG" | sort -u -r)`,
      "for id in $ids; do",
      '  if [[ "$id" =~ $ID_RE ]] && [[ "$id" < "$1" ]] && [ -d "$RELEASES/$id" ]; then echo "$id"; return 0; fi',
      "done",
    ]),
    shellFunction("release_ids", [
      `find "$RELEASES" -mindepth 1 -maxdepth 1 -type d -printf '%f\\n' | grep -E "$ID_RE" | sort || true`,
    ]),
    "# prune_releases <keep>: keep the newest <keep> releases that served (deployed or rolled back to); a release",
    "# that never served does not count and goes, unless it is the newest (the next `up` retries it). Never removed:",
    "# current, the previous one, an instance's.",
    shellFunction("prune_releases", [
      "local keep=$1 cur prev protected served newest id n=0 link why",
      "cur=$(current_id)",
      'prev=$(previous_release "$cur")',
      'protected=" $cur $prev ${OLD_DIR##*/} "',
      'for link in "$INSTANCES"/*; do if [ -L "$link" ]; then protected+="$(basename "$(readlink "$link")") "; fi; done',
      'served=" $(served_releases | tr "\n" " ")"',
      "newest=$(release_ids | tail -n 1)",
      "for id in $(release_ids | sort -r); do",
      '  case "$served" in',
      '    *" $id "*) n=$((n + 1)); if [ "$n" -le "$keep" ]; then continue; fi; why="apphost:releases.keep = $keep" ;;',
      '    *) if [ "$id" = "$newest" ]; then continue; fi; why="it never served" ;;',
      "  esac",
      '  case "$protected" in *" $id "*) continue ;; esac',
      '  rm -rf "${RELEASES:?}/$id"',
      '  rm -f "${LOGS_DIR:?}/apphost-migrate-$id.log"',
      '  note "finish: removed release $id ($why)"',
      "done",
      `find "$RELEASES" -mindepth 1 -maxdepth 1 -name '*.tmp' -exec rm -rf {} +`,
    ]),
    "# prune_venvs: remove venvs and node_modules directories no release links to.",
    shellFunction("prune_venvs", [
      'local used=" " link v t',
      // .venv links to a venv, node_modules to <dir>/node_modules: both name the directory under venvs/.
      'for link in "$RELEASES"/*/.venv "$RELEASES"/*/node_modules; do if [ -L "$link" ]; then t=$(readlink "$link"); used+="${t%/node_modules} "; fi; done',
      'for v in "$VENVS"/*; do',
      '  if [ ! -d "$v" ]; then continue; fi',
      '  case "$used" in *" $v "*) ;; *) rm -rf "$v"; note "finish: removed unused venv $v" ;; esac',
      "done",
    ]),
    "# served_releases: releases still on this host that served successfully (deployed or rolled back to), newest first.",
    shellFunction("served_releases", [
      "local id",
      'if [ ! -f "$RELEASE_LOG" ]; then return 0; fi',
      `awk -F'\\t' '$4 == "deployed" || $4 == "rolled-back" { print $1 }' "$RELEASE_LOG" | sort -u -r | while IFS= read -r id; do if [[ "$id" =~ $ID_RE ]] && [ -d "$RELEASES/$id" ]; then echo "$id"; fi; done`,
    ]),
    shellFunction("choose_rollback_target", [
      "local cur outcome",
      "cur=$(current_id)",
      'if [ -n "$ROLLBACK_TO" ]; then',
      "  RELEASE_ID=$ROLLBACK_TO",
      `  if [ ! -d "$RELEASES/$RELEASE_ID" ]; then die "release $RELEASE_ID is not on this host; releases here: $(release_ids | tr '\\n' ' ')(of these, you can roll back to: $(served_releases | tr '\\n' ' '))"; fi`,
      "  # A release whose deploy failed never served: its code may need a migration that was undone.",
      `  if ! grep -qx "$RELEASE_ID" <<<"$(served_releases)"; then outcome=$(awk -F'\\t' -v id="$RELEASE_ID" '$1 == id { o = $4 } END { print o }' "$RELEASE_LOG" 2>/dev/null || true); die "release $RELEASE_ID never served successfully (release log: \${outcome:-no entry}); releases you can roll back to: $(served_releases | tr '\\n' ' ')"; fi`,
      "else",
      '  RELEASE_ID=$(previous_release "$cur")',
      `  if [ -z "$RELEASE_ID" ]; then PHASE_CODE=${E.nothingToRollBack}; die "nothing to roll back to: current is \${cur:-none} and no older successfully deployed release is left on this host (releases here: $(release_ids | tr '\\n' ' '))"; fi`,
      "fi",
      `if [ "$RUNTIME" = python ] && [ ! -x "$RELEASES/$RELEASE_ID/.venv/bin/python" ]; then die "release $RELEASE_ID has no usable .venv (never installed, or its venv was pruned); deploy it instead"; fi`,
      'note "rollback: $RELEASE_ID will replace ${cur:-nothing}"',
    ]),
  ];

  const lock = [
    "# The deploy lock: owner, pid and expiry in $LOCK; flock makes check-and-take atomic.",
    shellFunction("lock_field", ['sed -n "s/^$1=//p" "$LOCK" 2>/dev/null | head -n 1']),
    shellFunction("lock_holder_alive", [
      '[ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr "\\0" " " <"/proc/$1/cmdline" 2>/dev/null | grep -q apphost-release',
    ]),
    shellFunction("lock_describe", [
      "local owner pid expires",
      "owner=$(lock_field owner) pid=$(lock_field pid) expires=$(lock_field expires)",
      'printf "%s (pid %s, %s, expires %s)" "${owner:-unknown}" "${pid:-?}" "$(lock_field command)" "$(date -u -d "@${expires:-0}" +%Y-%m-%dT%H:%M:%SZ)"',
    ]),
    shellFunction("lock_write", [
      // $BASHPID: the heartbeat (a subshell, same $$) may write at the same moment as the script.
      'printf "owner=%s\\npid=%s\\nexpires=%s\\ncommand=%s\\n" "$LOCK_OWNER" "$$" "$(( $(date +%s) + LOCK_TTL_MINUTES * 60 ))" "$1" >"$LOCK.tmp.$BASHPID"',
      'mv -f "$LOCK.tmp.$BASHPID" "$LOCK"',
    ]),
    "# The lock owner (--owner, else <sudo user>@<host>), in characters safe to print.",
    shellFunction("owner_default", [
      'if [ -z "$LOCK_OWNER" ]; then LOCK_OWNER="${SUDO_USER:-$(id -un)}@$(hostname)"; fi',
      "LOCK_OWNER=$(printf '%s' \"$LOCK_OWNER\" | tr -cd '[:alnum:]@._ :/-' | cut -c1-100)",
    ]),
    shellFunction("lock_acquire", [
      "local now expires pid",
      "LOCK_TTL_MINUTES=$1",
      "owner_default",
      'install -d -m 0755 "$(dirname "$LOCK")"',
      'exec 9>>"$LOCK.flock"',
      'if ! flock -w 30 9; then die "could not take $LOCK.flock within 30s"; fi',
      "now=$(date +%s)",
      'if [ -f "$LOCK" ]; then',
      "  expires=$(lock_field expires) pid=$(lock_field pid)",
      '  if [ "${expires:-0}" -gt "$now" ] && lock_holder_alive "$pid"; then',
      "    flock -u 9",
      `    PHASE_CODE=${E.locked}`,
      '    die "deploy lock held by $(lock_describe). Wait for that to finish; if it is stuck, kill it or clear the lock with: sudo $0 unlock"',
      '  elif lock_holder_alive "$pid"; then',
      "    # Expired, but its process still runs (a stuck or very long phase): never taken from a live deploy.",
      "    flock -u 9",
      `    PHASE_CODE=${E.locked}`,
      '    die "deploy lock held by $(lock_describe): it expired, but its process still runs. If it is stuck, kill pid $pid, or clear the lock with: sudo $0 unlock"',
      '  elif [ "${expires:-0}" -gt "$now" ]; then',
      '    note "warning: taking over the deploy lock of $(lock_describe): its process is gone"',
      "  else",
      '    note "warning: taking over the expired deploy lock of $(lock_describe): its process is gone"',
      "  fi",
      "fi",
      'lock_write "${MAIN_COMMAND:-deploy} $RELEASE_ID"',
      "LOCK_HELD=1",
      "flock -u 9",
      "exec 9>&-",
      "lock_heartbeat </dev/null >/dev/null 2>&1 3>&- &",
      "HEARTBEAT_PID=$!",
      'note "lock: taken by $LOCK_OWNER (expires in $LOCK_TTL_MINUTES min unless renewed; renewed every $((LOCK_TTL_MINUTES * 3))s while this runs)"',
    ]),
    "# lock_heartbeat: while this script lives, push the expiry out every TTL/20 (a long pip install is progress).",
    "# It ends with the script, even a killed one: it checks the script's pid each time.",
    shellFunction("lock_heartbeat", [
      "trap - ERR EXIT INT TERM HUP PIPE",
      "set +e",
      'while sleep "$((LOCK_TTL_MINUTES * 3))" && kill -0 "$$" 2>/dev/null; do',
      '  if [ "$(lock_field pid)" != "$$" ]; then exit 0; fi',
      '  lock_write "$(lock_field command)"',
      "done",
    ]),
    "# At each phase start: the lock must still be this script's (a deploy whose lock was taken stops before it",
    "# switches anything), and its expiry moves out.",
    shellFunction("lock_refresh", [
      'if [ "$LOCK_HELD" != 1 ]; then return 0; fi',
      `if [ "$(lock_field pid)" != "$$" ]; then LOCK_HELD=0; PHASE_CODE=${E.locked}; die "the deploy lock is no longer this one's (now $(lock_describe)); stopping before phase $PHASE"; fi`,
      'lock_write "$(lock_field command)"',
    ]),
    shellFunction("lock_release", [
      // Its sleep first: the loop then ends by itself (a killed bash would wait for the sleep to finish).
      'if [ -n "${HEARTBEAT_PID:-}" ]; then pkill -P "$HEARTBEAT_PID" -x sleep 2>/dev/null || true; kill "$HEARTBEAT_PID" 2>/dev/null || true; HEARTBEAT_PID=""; fi',
      'if [ "$LOCK_HELD" = 1 ] && [ "$(lock_field pid)" = "$$" ]; then rm -f "$LOCK"; fi',
      "LOCK_HELD=0",
    ]),
  ];

  const jobs = [
    "# ---------------------------------------------------------------- detached jobs",
    "# A deploy or rollback started with `start` runs in the transient unit $JOB_UNIT: stdin from",
    "# $JOBS/<job>/in (the artifact), stdout (the result lines) to out, stderr (the progress) to err; the",
    "# job-run wrapper records the pid and, at the end, the exit status in rc. The client only follows err.",
    shellFunction("job_field", ['sed -n "s/^$2=//p" "$JOBS/$1/meta" 2>/dev/null | head -n 1']),
    shellFunction("latest_job", ['if [ -L "$JOBS/latest" ]; then basename "$(readlink "$JOBS/latest")"; fi']),
    "# job_running <job>: its wrapper still runs (pid alive, an apphost-release, no exit status yet).",
    shellFunction("job_running", [
      "local pid",
      'pid=$(cat "$JOBS/$1/pid" 2>/dev/null) || return 1',
      '[ ! -f "$JOBS/$1/rc" ] && lock_holder_alive "$pid"',
    ]),
    shellFunction("job_started", [
      "# The unit started but the wrapper has not written its pid yet: wait for it (or for it to end).",
      "local _",
      "for _ in $(seq 100); do",
      '  if [ -f "$JOBS/$1/pid" ] || [ -f "$JOBS/$1/rc" ]; then return 0; fi',
      "  sleep 0.1",
      "done",
      "return 1",
    ]),
    shellFunction("job_describe", [
      'printf "%s %s, started by %s at %s" "$(job_field "$1" command)" "$(job_field "$1" args)" "$(job_field "$1" owner)" "$(job_field "$1" started)"',
    ]),
    "# prune_jobs: keep the newest 10 jobs' records; never a running one.",
    shellFunction("prune_jobs", [
      "local job",
      `for job in $(find "$JOBS" -mindepth 1 -maxdepth 1 -type d -printf '%f\\n' | grep -E "$JOB_RE" | sort -r | tail -n +11); do`,
      '  if job_running "$job"; then continue; fi',
      '  rm -rf "${JOBS:?}/$job"',
      "done",
    ]),
  ];

  const mirrorRunner = [
    "# The mirror: every step runs in a subshell with errexit, so one failing step does not skip the others.",
    shellFunction("mirror_step", [
      "local rc",
      'note "rollback $1: start"',
      `( PHASE=$1; PHASE_CODE=${E.rollbackFailed}; set -e; trap 'note "rollback $PHASE: \\\`$BASH_COMMAND\\\` failed"' ERR; "$2" )`,
      "rc=$?",
      'if [ "$rc" -eq 0 ]; then note "rollback $1: ok"; else note "rollback $1 failed (status $rc)"; MIRROR_OK=0; fi',
    ]),
    shellFunction("run_mirror", [
      "MIRROR_OK=1",
      'note "rollback: phase $FAILED_PHASE failed; undoing release $RELEASE_ID"',
      ...mirror.map((p) => `mirror_step ${p.name} ${fnName("mirror", p.name)}`),
      'if [ "$MIRROR_OK" = 1 ]; then note "rollback: done; ${OLD_DIR:+$(basename "$OLD_DIR") keeps serving on port $OLD_PORT}"; return 0; fi',
      `note "rollback: INCOMPLETE; look at the host (apphost-release status, journalctl -u '${l.unitPrefix}-*')"`,
      "return 1",
    ]),
    shellFunction("on_exit", [
      "local rc=$?",
      "trap - ERR",
      "set +e",
      'if [ "$rc" -ne 0 ] && [ "$DEPLOYING" = 1 ] && [ "$LOCK_HELD" = 1 ]; then',
      '  if [ "$COMMITTED" = 1 ]; then',
      '    note "release $RELEASE_ID is live on port $NEW_PORT; only the $FAILED_PHASE phase failed, nothing was rolled back"',
      "  elif ! run_mirror; then",
      `    rc=${E.rollbackFailed}`,
      "  fi",
      "fi",
      'if [ "$rc" -ne 0 ] && [ "$RESTORING" = 1 ] && [ "$LOCK_HELD" = 1 ]; then',
      `  if ! restore_recover; then rc=${E.rollbackFailed}; fi`,
      "fi",
      "lock_release",
      'exit "$rc"',
    ]),
  ];

  const phaseFns = [
    ...deploy.map((p) => phaseFunction("deploy", p)),
    ...mirror.map((p) => phaseFunction("mirror", p)),
    ...rollback.map((p) => phaseFunction("rollback", p)),
  ];

  const commands = [
    shellFunction("cmd_deploy", [
      "RELEASE_ID=${1:-} REQ_HASH=${2:-} ARTIFACT_SHA256=${3:-}",
      'if [[ ! "$RELEASE_ID" =~ $ID_RE ]]; then usage_error "deploy: \\"$RELEASE_ID\\" is not a release id (YYYYMMDDHHMMSS-<8 hex>)"; fi',
      'if [[ ! "$REQ_HASH" =~ ^[0-9a-f]{8,64}$ ]]; then usage_error "deploy: \\"$REQ_HASH\\" is not a requirements hash"; fi',
      'if [ -n "$ARTIFACT_SHA256" ] && [[ ! "$ARTIFACT_SHA256" =~ ^[0-9a-f]{64}$ ]]; then usage_error "deploy: \\"$ARTIFACT_SHA256\\" is not a sha256"; fi',
      "DEPLOYING=1",
      ...deploy.slice(0, 1).map((p) => `run_phase ${p.name} ${p.exitCode} ${fnName("deploy", p.name)}`),

      ...deploy.slice(1).map((p) => `run_phase ${p.name} ${p.exitCode} ${fnName("deploy", p.name)}`),
      'note "release $RELEASE_ID deployed on port $NEW_PORT"',
      'printf "release=%s\\ncurrent=%s\\nport=%s\\nrevision=%s\\noutcome=deployed\\n" "$RELEASE_ID" "$RELEASE_ID" "$NEW_PORT" "$REVISION" >&3',
    ]),
    shellFunction("cmd_rollback", [
      "ROLLBACK_TO=${1:-}",
      'if [ -n "$ROLLBACK_TO" ] && [[ ! "$ROLLBACK_TO" =~ $ID_RE ]]; then usage_error "rollback: \\"$ROLLBACK_TO\\" is not a release id"; fi',
      'if [ -n "$ROLLBACK_TO" ] && [ "$(current_id)" = "$ROLLBACK_TO" ]; then note "release $ROLLBACK_TO is already current; nothing to do"; printf "release=%s\\ncurrent=%s\\noutcome=unchanged\\n" "$ROLLBACK_TO" "$ROLLBACK_TO" >&3; return 0; fi',
      "# choose changes nothing: a refusal there needs no mirror (and leaves no line in the release log).",
      ...rollback.slice(0, 1).map((p) => `run_phase ${p.name} ${p.exitCode} ${fnName("rollback", p.name)}`),
      "DEPLOYING=1",
      ...rollback.slice(1).map((p) => `run_phase ${p.name} ${p.exitCode} ${fnName("rollback", p.name)}`),
      'printf "release=%s\\ncurrent=%s\\nport=%s\\nrevision=%s\\noutcome=rolled-back\\n" "$RELEASE_ID" "$RELEASE_ID" "$NEW_PORT" "$REVISION" >&3',
    ]),
    shellFunction("cmd_status", [
      "local cur port",
      "cur=$(current_id)",
      'printf "current=%s\\n" "$cur"',
      'printf "active_port=%s\\n" "$(cat "$ACTIVE_PORT_FILE" 2>/dev/null || true)"',
      // The live web instance's unit state: a host whose app was stopped by hand shows as such (a refresh sees it).
      ...(webProcess(input.app)
        ? [
            'port=$(cat "$ACTIVE_PORT_FILE" 2>/dev/null || true)',
            `if [ -n "$port" ]; then printf "web=%s\\n" "$(systemctl is-active ${webUnit(input, '"$port"')} 2>/dev/null || true)"; else printf "web=\\n"; fi`,
          ]
        : []),
      'printf "previous=%s\\n" "$(previous_release "$cur")"',
      'printf "releases=%s\\n" "$(release_ids | tr "\\n" " " | sed "s/ $//")"',
      'if [ -f "$LOCK" ]; then printf "lock=%s\\n" "$(lock_describe)"; else printf "lock=\\n"; fi',
      'if [ -f "$RELEASE_LOG" ]; then tail -n 10 "$RELEASE_LOG" | sed "s/^/log=/"; fi',
    ]),
    shellFunction("cmd_backup", [
      "local label=${1:-manual}",
      'if [[ ! "$label" =~ ^[a-z0-9][a-z0-9.-]*$ ]]; then usage_error "backup: label \\"$label\\" must be lowercase letters, digits, dots and dashes"; fi',
      "PHASE=backup PHASE_CODE=" + E.backup,
      'note "phase backup: start"',
      "db_lock",
      'db_backup "$label"',
      "db_prune_backups",
      "db_unlock",
      ...(input.s3 && input.database.kind !== "none"
        ? [
            "# A failed copy fails the command (and the scheduled unit), after the local backup is in place.",
            'if ! db_copy_offsite "$BACKUP_FILE"; then printf "backup=%s\\n" "$BACKUP_FILE" >&3; die "the backup is on this host ($BACKUP_FILE), but its copy to S3 failed"; fi',
          ]
        : []),
      'note "phase backup: ok"',
      'printf "backup=%s\\n" "$BACKUP_FILE" >&3',
    ]),
    ...(input.database.kind === "none"
      ? [
          shellFunction("cmd_restore", [
            'usage_error "restore: apphost:database.kind is none; there is no database to restore"',
          ]),
        ]
      : [
          "# restore_start: the units a restore stopped, then the health gate.",
          shellFunction("restore_start", restoreStartCommands(input)),
          "# restore_recover: after a failed restore, the saved database back and the units started (EXIT trap).",
          shellFunction("restore_recover", restoreRecoverCommands(input)),
          shellFunction("cmd_restore", cmdRestoreCommands(input)),
        ]),
    "# start deploy|rollback <args>: run it detached (see the header), then follow it. A job still running",
    "# refuses a second one: follow that one first (`follow`), then start again.",
    shellFunction("cmd_start", [
      "local command=${1:-} running job out started=0",
      'case "$command" in deploy | rollback) ;; *) usage_error "start: runs deploy or rollback, not \\"$command\\"" ;; esac',
      "owner_default",
      "JOB_KEY=$(printf '%s' \"$JOB_KEY\" | tr -cd '[:alnum:]:._-' | cut -c1-100)",
      'ensure_dirs 0700 root "$JOBS"',
      "running=$(latest_job)",
      'if [ -n "$running" ] && job_running "$running"; then',
      "  drain_stdin",
      `  PHASE_CODE=${E.locked}`,
      '  die "a job is still running on this host: $(job_describe "$running") (job $running, unit $JOB_UNIT). Follow it with: sudo $0 follow $running"',
      "fi",
      'job="$(date -u +%Y%m%dT%H%M%SZ)-$$"',
      'mkdir -m 0700 "$JOBS/$job"',
      'if [ "$command" = deploy ] && [ ! -t 0 ]; then (umask 077 && cat >"$JOBS/$job/in"); else : >"$JOBS/$job/in"; fi',
      'printf "command=%s\\nargs=%s\\nowner=%s\\nkey=%s\\nstarted=%s\\n" "$command" "${*:2}" "$LOCK_OWNER" "$JOB_KEY" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$JOBS/$job/meta"',
      'atomic_link "$job" "$JOBS/latest"',
      "prune_jobs",
      "# First, so a client whose connection drops knows which job to follow again.",
      'printf "job_id=%s\\n" "$job" >&3',
      "# The previous job's unit may still be on its way out (deactivating): its name frees up within moments.",
      "for _ in 1 2 3 4 5 6 7 8 9 10; do",
      `  if out=$(${t.systemdRun} --unit="$JOB_UNIT" --description="apphost $command for ${l.id} (job $job)" --collect --quiet --service-type=exec \\`,
      '      --property=StandardInput=file:"$JOBS/$job/in" --property=StandardOutput=file:"$JOBS/$job/out" --property=StandardError=file:"$JOBS/$job/err" \\',
      '      --property=TimeoutStopSec=15min "$0" --owner="$LOCK_OWNER" job-run "$job" "$@" 2>&1); then started=1; break; fi',
      '  if [[ "$out" != *"already exists"* ]]; then break; fi',
      "  sleep 0.5",
      "done",
      'if [ "$started" = 0 ]; then',
      '  printf "%s\\n" "$out" >"$JOBS/$job/err"',
      `  printf "%s\\n" ${E.jobLost} >"$JOBS/$job/rc"`,
      '  die "systemd-run could not start the $command as $JOB_UNIT: $out"',
      "fi",
      'if ! job_started "$job"; then die "job $job ($JOB_UNIT) did not start within 10s; see: journalctl -u $JOB_UNIT"; fi',
      'follow_job "$job" stream',
    ]),
    "# follow [<job>]: the job's progress on stderr (as it happens while it runs), then its result lines and",
    "# job_* lines on stdout, and its exit status as this command's. Without <job>: the latest job, streamed only",
    "# while it runs (a finished one prints its result lines alone).",
    shellFunction("cmd_follow", [
      "local job=${1:-}",
      'if [ -z "$job" ]; then',
      "  job=$(latest_job)",
      '  if [ -z "$job" ]; then printf "job_id=\\n" >&3; return 0; fi',
      '  if job_running "$job"; then follow_job "$job" stream; else follow_job "$job" quiet; fi',
      "fi",
      'if [[ ! "$job" =~ $JOB_RE ]]; then usage_error "follow: \\"$job\\" is not a job id (YYYYMMDDTHHMMSSZ-<pid>)"; fi',
      'if [ ! -d "$JOBS/$job" ]; then die "no job $job on this host (jobs: $(find "$JOBS" -mindepth 1 -maxdepth 1 -type d -printf "%f " 2>/dev/null))"; fi',
      'follow_job "$job" stream',
    ]),
    shellFunction("follow_job", [
      "local job=$1 how=$2 pid rc",
      'printf "job_id=%s\\njob_command=%s\\njob_key=%s\\njob_owner=%s\\njob_started=%s\\n" "$job" "$(job_field "$job" command)" "$(job_field "$job" key)" "$(job_field "$job" owner)" "$(job_field "$job" started)" >&3',
      'if [ "$how" = stream ]; then',
      '  if job_running "$job"; then',
      '    pid=$(cat "$JOBS/$job/pid")',
      "    # Until the wrapper exits; tail then prints what is left. A dropped connection ends only this tail.",
      '    tail -n +1 -f --pid="$pid" "$JOBS/$job/err" 2>/dev/null || true',
      "  else",
      '    cat "$JOBS/$job/err" 2>/dev/null || true',
      "  fi",
      "fi",
      'if [ ! -f "$JOBS/$job/rc" ]; then',
      '  if job_running "$job"; then die "job $job is still running"; fi',
      `  PHASE_CODE=${E.jobLost}`,
      '  die "job $job ($(job_describe "$job")) ended without an exit status: its unit was killed (OOM, systemctl kill or stop, a reboot). See: journalctl -u $JOB_UNIT; apphost-release status"',
      "fi",
      'rc=$(tr -dc 0-9 <"$JOBS/$job/rc")',
      'cat "$JOBS/$job/out" >&3 2>/dev/null || true',
      'printf "job_status=%s\\nlive=%s\\n" "${rc:-1}" "$(current_id)" >&3',
      'exit "${rc:-1}"',
    ]),
    "# job-run <job> <command> <args> (the unit's command): runs it, then records its exit status. The wrapper",
    "# outlives the command even when the unit is stopped: its TERM handler runs only after the command ended.",
    shellFunction("cmd_job_run", [
      "local job=${1:-} rc=0",
      "shift",
      'if [[ ! "$job" =~ $JOB_RE ]] || [ ! -d "$JOBS/$job" ]; then usage_error "job-run: no job \\"$job\\""; fi',
      "trap : INT TERM HUP",
      'printf "%s\\n" "$$" >"$JOBS/$job/pid.tmp"',
      'mv -f "$JOBS/$job/pid.tmp" "$JOBS/$job/pid"',
      '"$0" --owner="$LOCK_OWNER" "$@" || rc=$?',
      'rm -f "$JOBS/$job/in"',
      'printf "%s\\n" "$rc" >"$JOBS/$job/rc.tmp"',
      'mv -f "$JOBS/$job/rc.tmp" "$JOBS/$job/rc"',
      'exit "$rc"',
    ]),
    "# At boot (apphost-<id>-upstream.service): the upstream port leads to the port in active-port again.",
    shellFunction("cmd_upstream", [
      'local port=""',
      'if [ -f "$ACTIVE_PORT_FILE" ]; then port=$(tr -dc 0-9 <"$ACTIVE_PORT_FILE"); fi',
      'if [ -z "$port" ]; then note "upstream: no active port yet (no release served); nothing to load"; return 0; fi',
      'switch_upstream "$port"',
    ]),
    shellFunction("cmd_unlock", [
      'if [ ! -f "$LOCK" ]; then note "no deploy lock at $LOCK"; return 0; fi',
      'exec 9>>"$LOCK.flock"',
      "flock -w 30 9",
      'if lock_holder_alive "$(lock_field pid)"; then note "warning: the lock holder (pid $(lock_field pid)) is still running; it may fail when it next touches the host"; fi',
      'note "removing the deploy lock of $(lock_describe)"',
      'rm -f "$LOCK"',
      "flock -u 9",
    ]),
    shellFunction("main", [
      "while [ $# -gt 0 ]; do",
      '  case "$1" in',
      '    --owner) if [ $# -lt 2 ]; then usage_error "--owner needs a name"; fi; LOCK_OWNER=$2; shift 2 ;;',
      "    --owner=*) LOCK_OWNER=${1#--owner=}; shift ;;",
      '    --key) if [ $# -lt 2 ]; then usage_error "--key needs a value"; fi; JOB_KEY=$2; shift 2 ;;',
      "    --key=*) JOB_KEY=${1#--key=}; shift ;;",
      '    -h | --help) usage_error "help" ;;',
      '    -*) usage_error "unknown option $1" ;;',
      "    *) break ;;",
      "  esac",
      "done",
      "MAIN_COMMAND=${1:-}",
      "shift || true",
      ...(t.requireRoot
        ? [
            'if [ "$MAIN_COMMAND" != status ] && [ "$(id -u)" -ne 0 ]; then printf "apphost: %s must run as root: sudo %s %s\\n" "$MAIN_COMMAND" "$0" "$MAIN_COMMAND" >&2; exit ' +
              E.usage +
              "; fi",
          ]
        : []),
      'case "$MAIN_COMMAND" in',
      '  status) cmd_status "$@" ;;',
      "  upstream) cmd_upstream ;;",
      '  job-run) cmd_job_run "$@" ;;',
      "  deploy | rollback | backup | restore | unlock | start | follow)",
      "    # stdout carries only the result lines (fd 3); everything a command prints goes to stderr.",
      "    exec 3>&1 1>&2",
      '    if [ "$MAIN_COMMAND" = deploy ] && [ $# -gt 3 ]; then usage_error "deploy takes <release-id> <requirements-hash> [<artifact-sha256>]"; fi',
      '    "cmd_$MAIN_COMMAND" "$@" ;;',
      '  "") usage_error "missing command" ;;',
      '  *) usage_error "unknown command $MAIN_COMMAND" ;;',
      "esac",
    ]),
  ];

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
    ["COMMITTED", "0"],
    ["MIGRATE_STARTED", "0"],
    ["RESTORING", "0"],
    ["RESTORE_PORT", '""'],
    ["RESTORE_SAVED", '""'],
    ["UNITS_STOPPED", "0"],
    ["DB_REPLACED", "0"],
  ];
  const body = [
    ...helpers,
    ...lock,
    ...jobs,
    "# ---------------------------------------------------------------- database",
    databaseFunctions(input),
    "# ---------------------------------------------------------------- phases",
    ...phaseFns,
    ...mirrorRunner,
    ...commands,
  ].join("\n");
  const used = state.filter(([name]) => new RegExp(`\\$\\{?${name}\\b`).test(body));
  return [
    header.replace("__STATE__", used.map(([k, v]) => `${k}=${v}\n`).join("")),
    `readonly LOGS_DIR=${l.logs}\n`,
    body,
    "trap 'on_error $? \"$BASH_COMMAND\"' ERR",
    "trap on_exit EXIT",
    "trap 'on_signal INT' INT",
    "trap 'on_signal TERM' TERM",
    "trap 'on_signal HUP' HUP",
    "trap 'on_signal PIPE' PIPE",
    'main "$@"',
    "",
  ].join("\n");
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
