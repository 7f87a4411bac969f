# shellcheck shell=bash
# The static part of apphost-release (see components/release/script.ts). The renderer writes the
# header (the stack's readonly values, the runtime state) and the per-stack functions (the phases,
# their runners deploy_phases, prepare_phases, rollback_choose_phase, rollback_phases and mirror_phases, the database
# and restore functions), then appends this file from the line after the preamble's last line.
#
# For shellcheck reading this file alone; the rendered script is checked whole, without these:
#   SC2034: a value set here is read by the generated functions (OLD_PORT, NEW_PORT, HEALTH_LAST, ...).
#   SC2154: the header assigns the readonly values (ROOT, LOCK, SYSTEMCTL, EXIT_*, ...) and the state.
#   SC2153: the same, where one of those names looks like a misspelling of another (WEB_UNIT, ...).
#   SC2317: the generated functions call these helpers (lock_acquire, choose_ports, health_wait, ...).
# shellcheck disable=SC2034,SC2153,SC2154,SC2317
# ---- end of the preamble (not rendered) ----

note() {
  printf "apphost: %s\n" "$*" >&2
}

# The helpers below run at every phase (the lock, the timings, the logs) and are bash alone: no date, sed or
# awk to start each time.

# utc_time <var> [<epoch seconds>]: that time (default now) as 2025-01-02T03:04:05Z, into <var>.
utc_time() {
  TZ=UTC printf -v "$1" '%(%Y-%m-%dT%H:%M:%SZ)T' "${2:--1}"
}

# field_of <file> <name>: the value of the file's first <name>=... line, or nothing (no file, no such line).
field_of() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line == "$2="* ]]; then printf '%s\n' "${line#*=}"; return 0; fi
  done 2>/dev/null <"$1" || true
}

# digits_of <file> <var>: the digits in <file> (a port, an exit status) into <var>; nothing when it is missing.
digits_of() {
  local text=""
  IFS= read -r -d '' text 2>/dev/null <"$1" || true
  printf -v "$2" '%s' "${text//[!0-9]/}"
}

# micros <var>: the microseconds since the epoch ($EPOCHREALTIME without its decimal point, whichever the
# locale's), into <var>.
micros() {
  printf -v "$1" '%s' "${EPOCHREALTIME//[!0-9]/}"
}

# gate_ms <var> <micros>: the milliseconds since <micros> (from micros) on the health gate's clock, into <var>. It
# runs HEALTH_CLOCK_SPEED times as fast as the wall clock: 1 on a host; the unit tests' fake hosts run it faster,
# so a gate that waits out its deadline there takes a fraction of the seconds its messages name.
gate_ms() {
  local now
  micros now
  printf -v "$1" '%s' "$(((now - $2) * HEALTH_CLOCK_SPEED / 1000))"
}

# seconds_since <var> <micros>: the seconds since <micros> (from micros), to a tenth (`2.5`), into <var>.
seconds_since() {
  local now tenths
  micros now
  tenths=$(((now - $2 + 50000) / 100000))
  printf -v "$1" '%s.%s' "$((tenths / 10))" "$((tenths % 10))"
}

# Fail the current phase: message on stderr, the phase's exit status, the EXIT trap rolls back.
die() {
  if [ -n "$PHASE" ]; then FAILED_PHASE=$PHASE; printf "apphost: phase %s failed: %s\n" "$PHASE" "$*" >&2; else printf "apphost: %s\n" "$*" >&2; fi
  exit "$PHASE_CODE"
}

fail() {
  die "$@"
}

# refuse <message>: a value the command cannot take (a restore of a backup that is not there): exit 2, the
# message only. usage_error is for a command line that does not parse, and adds the usage line.
refuse() {
  printf "apphost: %s\n" "$1" >&2
  exit "$EXIT_USAGE"
}

usage_error() {
  printf "apphost: %s\nusage: %s [--owner NAME] deploy <release-id> <requirements-hash> [<artifact-sha256>] | prepare <release-id> <requirements-hash> [<artifact-sha256>] | rollback [<release-id>] | status | backup [<label>] | restore <file> | workers stop|start | unlock | upstream | start deploy|prepare|rollback <args> | follow [<job-id>]\n" "$1" "$0" >&2
  exit "$EXIT_USAGE"
}

# What an install prints when the host cannot reach a server it downloads from (a package index; a binary a
# postinstall fetches, as Prisma's engines): pip's retries (`Failed to establish a new
# connection: [Errno -2] Name or service not known`, `Temporary failure in name resolution`, `ProxyError`), npm's
# `ENOTFOUND`, `EAI_AGAIN`, `ECONNREFUSED`, `ETIMEDOUT`, uv's `dns error`, git's `Could not resolve host` (a
# dependency from a git repository).
NETWORK_FAILURES="Name or service not known|Temporary failure in name resolution|No address associated with hostname|Network is unreachable|Connection refused|Connection timed out|ProxyError|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|dns error|Could not resolve host"

# network_hint: when the job's output (APPHOST_OUTPUT, the err file `start` gives it: root's) ends with an install that
# could not reach its index, what it said, the server it named (pip's `HTTPSConnectionPool(host='github.com', ...)`,
# npm's `getaddrinfo ENOTFOUND binaries.prisma.sh`, uv's `Failed to fetch: https://...`) and the index pip named
# (`Looking in indexes: ...`), as the phase error's hint; a requirement pip downloads from its own URL on that server
# (`Collecting https://github.com/... (from -r requirements.txt (line 11))`, simonwillisonblog's) is named with its
# line, and a server uv.lock names as its registry, with how to lock the app against another.
network_hint() {
  local tail said index server="" direct url where
  if [ -z "${APPHOST_OUTPUT:-}" ] || [ ! -f "$APPHOST_OUTPUT" ]; then return 0; fi
  tail=$(tail -n 60 "$APPHOST_OUTPUT")
  said=$(grep -oE -m 1 "$NETWORK_FAILURES" <<<"$tail") || return 0
  index=$(grep -oE -m 1 'Looking in indexes: [^ ]+' <<<"$tail") || true
  server=$(grep -oE -m 1 "host='[^']+'|(ENOTFOUND|EAI_AGAIN|Could not resolve host:) [A-Za-z0-9.-]+|Failed to fetch: https?://[A-Za-z0-9.-]+" <<<"$tail") || true
  server=${server#host=\'}
  server=${server%\'}
  server=${server##* }
  server=${server#*://}
  # git could not clone a dependency's repository (HedgeDoc 1.10.8's yarn.lock names four on github.com).
  if [ "$said" = "Could not resolve host" ] && [[ $tail =~ (git\+)?https?://${server//./\\.}/[A-Za-z0-9._/~-]+\.git ]]; then
    printf '%s' "; the install could not reach $server ($said): a dependency comes from its git repository (${BASH_REMATCH[0]}): the host needs DNS and outbound HTTPS to $server, or lock that dependency from the package registry"
    return 0
  fi
  # uv.lock records each package's registry, which uv sync --frozen downloads from whatever the host reaches
  # (fastapi-practices/fastapi_best_architecture's: a mirror in China, its pyproject.toml's [[tool.uv.index]]).
  if [ -n "$server" ] && [ -n "${NEW_DIR:-}" ] && "$RUNUSER" -u "$APP_USER" -- grep -qsF "registry = \"https://$server/" "$NEW_DIR/uv.lock" 3>&- 9>&-; then
    printf '%s' "; the install could not reach $server ($said): uv.lock downloads its packages from the registry it names there (pyproject.toml's [[tool.uv.index]], or the index it was locked with): the host needs DNS and outbound HTTPS to $server, or lock the app against an index the host reaches (without that [[tool.uv.index]]: uv lock --default-index https://pypi.org/simple)"
    return 0
  fi
  if [ -n "$server" ] && direct=$(grep -oE -m 1 "Collecting ([A-Za-z0-9._-]+ ?@ )?(git\+)?https?://${server//./\\.}[/:][^ ]* \(from -r [^()]+ \(line [0-9]+\)\)" <<<"$tail"); then
    url=${direct#Collecting }
    url=${url#*@ }
    url=${url%% *}
    where=${direct#* (from -r }
    printf '%s' "; the install could not reach $server ($said): ${where%)} downloads $url from it directly, not from the package index: the host needs DNS and outbound HTTPS to $server, or the requirement from an index the host reaches"
    return 0
  fi
  printf '%s' "; the install could not reach ${server:-a server it downloads from} ($said${index:+, ${index#Looking in indexes: }}): the host needs DNS and outbound HTTPS to it; check the index the app's files name, if any (requirements.txt's -i or --index-url, a lock's sources, .npmrc's registry)"
}

# What an install prints when a dependency comes from a git repository and the host has no git: Yarn 2+'s
# `Process git failed to spawn` (`spawn git ENOENT`), Yarn 1's `Couldn't find the binary git`, npm's
# `syscall spawn git`, pip's `Cannot find command 'git'`, uv's `Git executable not found`.
GIT_MISSING="spawn git ENOENT|syscall spawn git|Couldn't find the binary git|Cannot find command 'git'|Git executable not found"
GIT_URL='(git\+)?(https?|ssh|git)://[A-Za-z0-9.@:/_~-]+\.git|git@[A-Za-z0-9.-]+:[A-Za-z0-9._/~-]+'

# git_hint: when the job's output (APPHOST_OUTPUT) ends with an install that could not run git, the repository it
# wanted (the first git URL there: HedgeDoc 1.10.8's yarn.lock has four on github.com) and what to do, as the phase
# error's hint.
git_hint() {
  local tail
  if [ -z "${APPHOST_OUTPUT:-}" ] || [ ! -f "$APPHOST_OUTPUT" ]; then return 0; fi
  tail=$(tail -n 200 "$APPHOST_OUTPUT")
  [[ $tail =~ $GIT_MISSING ]] || return 0
  local repo=""
  if [[ $tail =~ $GIT_URL ]]; then repo=" (${BASH_REMATCH[0]})"; fi
  printf '%s' "; a dependency comes from a git repository$repo and the host has no git: add git to apphost:host.packages (the host then needs to reach that repository's server), or lock that dependency from the package registry"
}

# What a build's tools print when the host's Node is older than they need: an ES module asking a node: builtin for an
# export it lacks (Vite 8's rolldown on Node 18: `The requested module 'node:util' does not provide an export named
# 'styleText'`), an API it lacks (Vite 7 on Node 18: `crypto.hash is not a function`), a builtin it lacks, or a
# tool's own check (`You are using Node.js 18.20.4. Vite requires Node.js version 20.19+ or 22.12+.`).
NODE_TOO_OLD="requested module 'node:[a-z_/]+' does not provide an export named|crypto\.hash is not a function|No such built-in module: node:|requires Node\.?js (version )?v?[0-9]+"

# What a release that needs a newer Node than the host's is told to do (node_version_hint, and the install phase's
# engines.node warning: components/release/node.ts).
NEWER_NODE="set apphost:host.os to debian-13 on an ec2 stack, or, on an existing host, add NodeSource's apt repository for a newer nodejs before deploying"

# node_version_hint: when the failed command's output (the job's, APPHOST_OUTPUT) shows the host's Node is older than
# its tools need, the line that says so, the host's version and what to do, as the phase error's hint (the C
# compiler's would mislead). A build that runs its scripts with `bun run` is offered `bun run --bun`, which runs
# them on Bun, whatever their `#!/usr/bin/env node` says.
node_version_hint() {
  local line node bun=""
  if [ -z "${APPHOST_OUTPUT:-}" ] || [ ! -f "$APPHOST_OUTPUT" ]; then return 0; fi
  line=$(tail -n 200 "$APPHOST_OUTPUT" | grep -E -m 1 -- "$NODE_TOO_OLD") || return 0
  line=${line#"${line%%[![:space:]]*}"}
  node=$(node --version 2>/dev/null) || node="unknown"
  if [[ $AS_APP_CMD =~ (^|[^[:alnum:]_-])bun\ run\  ]] && [[ ! $AS_APP_CMD =~ bun\ run\ --bun ]]; then
    bun="run the build's scripts on Bun (bun run --bun <script>), "
  fi
  printf '%s' "; the host's Node ($node, Debian's nodejs package) is older than the build's tools need: $line; ${bun}$NEWER_NODE"
}

# The npm a Node app's lock is offered when the host's reads it as out of sync with package.json: npm 11 runs on
# Node 20.17 and later (Debian 13's 20.19), npm 10 on Debian 12's Node 18.
NPM_PIN=11.21.3
NPM_PIN_NODE18=10.9.9

# npm_lock_hint: when npm ci refused the lock as out of sync with package.json (EUSAGE), the line that names what
# differs and what to do, as the phase error's hint (the C compiler's would mislead). With the host's npm (Debian's
# 9.2), that is most often a lock a newer npm wrote, which npm 9 misreads (brocoders/nestjs-boilerplate's: an optional
# peer dependency locked at another major, `Missing: gcp-metadata@7.0.1 from lock file`): it is offered a pinned npm,
# which the install phase installs as it does Yarn's and pnpm's. A pinned npm's refusal is the lock's own.
npm_lock_hint() {
  local tail line tool npm node pin=$NPM_PIN why=""
  if [ -z "${APPHOST_OUTPUT:-}" ] || [ ! -f "$APPHOST_OUTPUT" ]; then return 0; fi
  [[ $AS_APP_CMD =~ (^|[[:space:]])([^[:space:]]*/)?npm\ ci([[:space:]]|$) ]] || return 0
  tool=${BASH_REMATCH[2]}
  tail=$(tail -n 80 "$APPHOST_OUTPUT")
  [[ $tail == *"can only install packages when your package.json and "*" are in sync"* ]] || return 0
  line=$(grep -oE -m 1 '(Missing|Invalid): .*' <<<"$tail") || line="npm names no package"
  # A Python app's build runs the npm its frontend pins from the stack's cache/tools/npm-<version>, first on its PATH.
  if [ -z "$tool" ] && [[ $AS_APP_CMD =~ /cache/tools/npm-([0-9][^/[:space:]]*)/bin ]]; then npm=${BASH_REMATCH[1]}
  elif [ -n "$tool" ]; then
    # The pinned npm's own package.json says its release: read, not run, and as the app user, who installed it.
    npm=$("$RUNUSER" -u "$APP_USER" -- grep -oE -m 1 '"version": *"[^"]+"' "${tool%/bin/}/lib/node_modules/npm/package.json" 2>/dev/null 3>&- 9>&-) || npm=""
    npm=${npm%\"} npm=${npm##*\"}
  fi
  if [ -n "$tool" ] || [ -n "${npm:-}" ]; then
    printf '%s' "; npm $npm (package.json's packageManager) reads the lock as out of sync with package.json ($line): run npm install with that npm in the app and commit the lock it writes, or pin the npm that wrote the lock"
    return 0
  fi
  npm=$(npm --version 2>/dev/null) || npm="unknown"
  node=$(node --version 2>/dev/null) || node=""
  if [[ $node =~ ^v([0-9]+)\.([0-9]+) ]] && ((BASH_REMATCH[1] < 20 || (BASH_REMATCH[1] == 20 && BASH_REMATCH[2] < 17))); then
    pin=$NPM_PIN_NODE18
    why=" (npm 11 needs Node 20.17 or later, and the host's is $node: if npm $pin reads the lock the same, $NEWER_NODE, then pin npm $NPM_PIN)"
  fi
  printf '%s' "; npm $npm, the host's (Debian's npm package), reads the lock as out of sync with package.json ($line), as an older npm often reads a lock a newer one wrote: set \"packageManager\": \"npm@$pin\" in package.json$why, and apphost installs that npm for the release; or run npm install with npm $npm in the app and commit the lock it writes"
}

# output_traceback: "; it ended on: <exception line> (<what it usually means: error_hint>)" for the last whole Python
# traceback the failing step printed (the job's output, APPHOST_OUTPUT, after the script's last `apphost:` line), or
# nothing: a build whose Python code failed (cookiecutter-flask's `flask digest compile` in `npm run build`, its
# settings reading a variable the env file lacks), where the C compiler's hint would mislead.
output_traceback() {
  local line hint
  if [ -z "${APPHOST_OUTPUT:-}" ] || [ ! -f "$APPHOST_OUTPUT" ]; then return 0; fi
  line=$(tail -n 400 "$APPHOST_OUTPUT" | awk '/^apphost: / { out = ""; next } { out = out $0 "\n" } END { printf "%s", out }' | exception_line)
  if [ -z "$line" ]; then return 0; fi
  hint=$(error_hint "$line")
  printf '; it ended on: %s%s' "$line" "${hint:+ ($hint)}"
}

# A failing command outside a condition: name it in the phase's error. In a subshell, let the parent report.
# An app command (a failure inside as_app: FUNCNAME) is named as the stack gave it, not as as_app runs it; one that fails while
# installing the dependencies (INSTALLING; not the build, and not 126/127: a command that could not run) says it could not
# run git for a dependency from a git repository (git_hint) or reach a package index (network_hint) when its output
# says so; a build or install whose tools need a newer Node says so (node_version_hint); one whose Python code failed
# says the error it ended on (output_traceback); else, on a host
# without a C compiler, what a dependency built from source needs.
on_error() {
  if [ "$BASH_SUBSHELL" -gt 0 ]; then exit "$1"; fi
  if [ "${FUNCNAME[1]:-}" = as_app ]; then
    local hint=""
    if [ "$PHASE" = install ] && [ "$1" -lt 126 ]; then
      if [ "$INSTALLING" = dependencies ]; then hint=$(git_hint); fi
      if [ -z "$hint" ] && [ "$INSTALLING" = dependencies ]; then hint=$(network_hint); fi
      if [ -z "$hint" ] && [ "$INSTALLING" = dependencies ]; then hint=$(npm_lock_hint); fi
      if [ -z "$hint" ]; then hint=$(node_version_hint); fi
      if [ -z "$hint" ]; then hint=$(output_traceback); fi
      if [ -z "$hint" ] && [ "$INSTALLING" = dependencies ] && ! command -v "$CC" >/dev/null 2>&1; then
        hint="; the host has no C compiler: if a dependency builds from source (no wheel or prebuilt binary for this platform and Python or Node version), add build-essential (and python3-dev for Python) to apphost:host.packages"
      fi
    fi
    die "\`$AS_APP_CMD\` (as $APP_USER in $AS_APP_DIR) exited with status $1$hint"
  fi
  die "\`$2\` exited with status $1"
}

# A signal fails the phase; the EXIT trap rolls back. When the client went away (SIGPIPE: sshd closed
# the pipes; SIGHUP: the session ended), the rest of the output, rollback included, goes to
# $DETACHED_LOG instead: a write to the dead pipe must not cut the rollback short.
on_signal() {
  trap '' PIPE
  if [ "$1" = PIPE ] || [ "$1" = HUP ]; then exec >>"$DETACHED_LOG" 2>&1 3>&1; utc_time at; note "the client went away (SIG$1) at $at; finishing here"; fi
  die "interrupted by SIG$1"
}

# run_phase <name> <exit code> <function>: `phase <name>: ok (<seconds>s)` says how long each phase took.
run_phase() {
  local started took
  micros started
  PHASE=$1 PHASE_CODE=$2
  lock_refresh
  note "phase $1: start"
  "$3"
  seconds_since took "$started"
  note "phase $1: ok (${took}s)"
  PHASE=""
}

# rm_existing <path>...: rm -rf the ones that exist (a link counts, a dangling one too); no rm when none does, as
# on most deploys (leftovers of an interrupted one, what an artifact should not hold).
rm_existing() {
  local p found=()
  for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then found+=("$p"); fi; done
  if [ "${#found[@]}" -gt 0 ]; then rm -rf -- "${found[@]}"; fi
}

# ensure_dirs <mode> <owner> <dir>...: create the missing ones; never loosen or re-own an existing one.
ensure_dirs() {
  local mode=$1 owner=$2 d
  shift 2
  for d in "$@"; do
    if [ -d "$d" ]; then continue; fi
    if [ "$owner" = root ]; then install -d -m "$mode" "$d"; else install -d -m "$mode" -o "$owner" -g "$owner" "$d"; fi
  done
}

# Run a command as the app user in a release directory, with the stack's env file loaded and the venv on PATH.
# npm (a Python app's build: `npm ci && npm run build`) gets its cache in the stack's cache/, which the app user owns
# (its default, ~/.npm, is under the stack's root, which is root's: npm ci failed with EACCES), and the host's CA
# store. Yarn 1 (`yarn build`) gets a cache and global folder there too, and runs whatever package.json's
# engines.node says, as npm does (the install phase warns; yarn would refuse). Yarn 2 and later, which refuse
# Yarn 1's settings, get their global folder there (YARN_BERRY: the app's lock is theirs) and no telemetry.
# A Python app's release directory and its src/ are importable (app_pythonpath, the units' PYTHONPATH), unless
# the env file sets PYTHONPATH: the app's own package is never installed into the shared venv.
# shellcheck disable=SC2016 # the inner script expands its own variables
as_app() {
  local pythonpath yarn=(YARN_CACHE_FOLDER="$ROOT/cache/yarn" YARN_PREFIX="$ROOT/cache/yarn" YARN_IGNORE_ENGINES=true)
  AS_APP_DIR=$1 AS_APP_CMD=$2
  app_pythonpath pythonpath "$1"
  if [ "$YARN_BERRY" = 1 ]; then yarn=(YARN_GLOBAL_FOLDER="$ROOT/cache/yarn-berry" YARN_ENABLE_TELEMETRY=0); fi
  "$RUNUSER" -u "$APP_USER" -- env -i HOME="$ROOT" USER="$APP_USER" LOGNAME="$APP_USER" LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin \
    npm_config_cache="$ROOT/cache/npm" NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    "${yarn[@]}" APPHOST_DIR="$1" APPHOST_ENV_FILE="$ENV_FILE" APPHOST_CMD="$2" APPHOST_PYTHONPATH="$pythonpath" \
    bash -c 'set -e; if [ -e "$APPHOST_ENV_FILE" ]; then set -a; . "$APPHOST_ENV_FILE"; set +a; fi; cd "$APPHOST_DIR"; export VIRTUAL_ENV="$APPHOST_DIR/.venv" PATH="$APPHOST_DIR/.venv/bin:$APPHOST_DIR/node_modules/.bin:$PATH"; if [ -n "$APPHOST_PYTHONPATH" ]; then export PYTHONPATH="${PYTHONPATH-$APPHOST_PYTHONPATH}"; fi; eval "$APPHOST_CMD"' 3>&- 9>&-
}

# release_node_modules <node dir> [<name>=<member>...]: the release's node_modules, a copy of <node dir>/node_modules
# (the tree npm, Yarn or pnpm made once for the lock) whose files are hard links to the tree's: the directories are
# the release's own, so a package's path (and realpath) is inside the release, as on a host where the app ran npm ci
# itself. A link to the tree would put them under venvs/: ts-node 10 looks for tsconfig.json from the script it runs
# up, and brocoders/nestjs-boilerplate's migration (`ts-node ./node_modules/typeorm/cli.js`) found none and loaded
# the app's TypeScript as ESM (`__dirname is not defined`). What a build writes there (node_modules/.cache,
# .vite) stays in the release. .apphost-tree names the tree (prune_venvs). An npm workspace's member names link to
# the member in this release (../<member>, as npm links them) instead of the manifest-only copy npm ci saw, and a
# member's own node_modules (what npm could not hoist) is copied into the release's member the same way. The copy is
# made beside node_modules and then takes its place, .apphost-tree last: a release published again while it serves (a
# changed release script) keeps the copy it has, and one an older apphost linked to the tree has the link replaced by
# the finished copy (no rename puts a directory over a link: rm, then mv). As the app user, who owns both: root never
# follows a link the app planted. The tree stays as it is.
# shellcheck disable=SC2016 # the inner script expands its own arguments
release_node_modules() {
  if ! "$RUNUSER" -u "$APP_USER" -- bash -c 'set -e
    tree=$1/node_modules dst=$2/node_modules new=$2/node_modules.apphost-new
    if [ -L "$dst/.apphost-tree" ] && [ "$(readlink -- "$dst/.apphost-tree")" = "$tree" ]; then exit 0; fi
    rm -rf -- "$new"; cp -al -- "$tree" "$new"
    for pair in "${@:3}"; do
      name=${pair%%=*} member=${pair#*=} up=..
      if [[ $name == @*/* ]]; then up=../..; mkdir -p -- "$new/${name%%/*}"; fi
      ln -sfn -- "$up/$member" "$new/$name"
      if [ -d "$1/$member/node_modules" ]; then rm -rf -- "$2/$member/node_modules"; cp -al -- "$1/$member/node_modules" "$2/$member/node_modules"; fi
    done
    ln -s -- "$tree" "$new/.apphost-tree"
    rm -rf -- "$dst"
    mv -T -- "$new" "$dst"' _ "$1" "$NEW_DIR" "${@:2}" 3>&- 9>&-; then
    die "install: could not copy $1/node_modules into the release as hard links (cp -al: the release and the stack's venvs/ must be on one filesystem)"
  fi
}

# link_shared_dir <dir>: the release's <dir> (apphost:app.sharedDirs) becomes a link to $LINKED_DIR/<dir>, which
# the first release that has the directory seeds with its content; later releases' copies are dropped. As the
# app user, who owns both sides: root never follows a link the app planted. Done already (a release deployed
# again) when the link is there.
# shellcheck disable=SC2016 # the inner script expands its own arguments
link_shared_dir() {
  local src="$NEW_DIR/$1" dst="$LINKED_DIR/$1"
  if [ -L "$src" ] && [ "$(readlink -- "$src")" = "$dst" ]; then return 0; fi
  if [ -L "$src" ] || { [ -e "$src" ] && [ ! -d "$src" ]; }; then
    die "apphost:app.sharedDirs: $1 is not a directory in the release ($(stat -c %F -- "$src")); remove it from the app or from sharedDirs"
  fi
  if ! "$RUNUSER" -u "$APP_USER" -- bash -c 'set -e
    if [ ! -d "$2" ]; then mkdir -p -- "$2"; if [ -d "$1" ]; then cp -a -- "$1/." "$2/"; fi; fi
    rm -rf -- "$1"; mkdir -p -- "$(dirname -- "$1")"; ln -sfn -- "$2" "$1"' _ "$src" "$dst" 3>&- 9>&-; then
    die "apphost:app.sharedDirs: could not link $1 in the release to $dst"
  fi
  note "install: $1 links to $dst"
}

# link_dotenv <file>: apphost:app.dotenv: the release's <file> becomes a link to the stack's env file, for an app that
# reads a dotenv file there (Starlette's Config(".env") refuses to start without one). Its processes have the same
# values in their environment, which dotenv readers prefer to the file's; the link is for the file's presence and for
# what reads the file alone. A file the release has there itself is replaced, and the deploy says so.
# shellcheck disable=SC2016 # the inner script expands its own arguments
link_dotenv() {
  local dst="$NEW_DIR/$1"
  if [ -L "$dst" ] && [ "$(readlink -- "$dst")" = "$ENV_FILE" ]; then return 0; fi
  if [ -d "$dst" ] && [ ! -L "$dst" ]; then
    die "apphost:app.dotenv: $1 is a directory in the release; list the file the app reads, or remove the directory from the app"
  fi
  if [ -e "$dst" ] || [ -L "$dst" ]; then
    note "warning: apphost:app.dotenv: the release's own $1 is replaced by a link to $ENV_FILE (to ship the file instead, remove it from apphost:app.dotenv)"
  fi
  if ! "$RUNUSER" -u "$APP_USER" -- bash -c 'set -e; mkdir -p -- "$(dirname -- "$1")"; ln -sfn -- "$2" "$1"' _ "$dst" "$ENV_FILE" 3>&- 9>&-; then
    die "apphost:app.dotenv: could not link $1 in the release to $ENV_FILE"
  fi
  note "install: $1 links to $ENV_FILE"
}

# share_with_proxy <dir>: the proxy's user (PROXY_USER) may read what the app writes in $LINKED_DIR/<dir>, which
# apphost:app.sharedUrls serves: POSIX ACLs, set as the app user, who owns the directories: search on each one from
# shared/data down, read on <dir> and all in it, and the same by default on what the app creates there later. The
# rest of shared/data (the SQLite database, other directories) stays closed to the proxy. The walk through <dir>
# runs once: where its default entry is there already, what the app wrote since inherited it.
share_with_proxy() {
  local dst="$LINKED_DIR/$1" up="$LINKED_DIR/$1" parents=() walk=(-R)
  while [ "$up" != "${LINKED_DIR%/*}" ]; do up=${up%/*}; parents+=("$up"); done
  if "$RUNUSER" -u "$APP_USER" -- "$GETFACL" -cp -- "$dst" 2>/dev/null 3>&- 9>&- | grep -qx "default:user:$PROXY_USER:r-x"; then
    walk=()
  fi
  if ! "$RUNUSER" -u "$APP_USER" -- "$SETFACL" -m "u:$PROXY_USER:x" -- "${parents[@]}" 3>&- 9>&- ||
    ! "$RUNUSER" -u "$APP_USER" -- "$SETFACL" "${walk[@]}" -m "u:$PROXY_USER:rX,d:u:$PROXY_USER:rX" -- "$dst" 3>&- 9>&-; then
    die "apphost:app.sharedUrls: could not let $PROXY_USER read $dst (setfacl: the file system must support ACLs)"
  fi
  note "install: $PROXY_USER may read $1 (apphost:app.sharedUrls)"
}

# app_revision <var> <dir> <command>: <var> becomes the last non-empty stdout line of the revision command (tabs as
# spaces), or empty when it printed none or failed. REVISION_FAILED becomes a failed command's last line on stderr
# (where a traceback ends: CTFd's `flask db current` under alembic 1.16, "TypeError: current() got an unexpected
# keyword argument 'head_only'"; alembic's own `FAILED: Can't locate revision identified by '...'` in a release older
# than the database's migrations), else on stdout, else "exit status <n>", and is empty when the command went through.
app_revision() {
  local all out err rc=0 last="" line sep=$'\x1f'
  # stdout and stderr apart, in one capture (stdout, <sep>, stderr), with the command's status as the capture's.
  all=$({
    err=$(as_app "$2" "$3" 2>&1 >&3 3>&-) || status=$?
    printf '%s%s' "$sep" "$err"
    exit "${status:-0}"
  } 3>&1) || rc=$?
  out=${all%"$sep"*}
  err=${all##*"$sep"}
  if [ "$rc" != 0 ]; then out=$out$'\n'$err; fi
  while IFS= read -r line; do if [[ $line == *[!$' \t']* ]]; then last=$line; fi; done <<<"$out"
  last=${last//$'\t'/ }
  if [ "$rc" = 0 ]; then REVISION_FAILED=""; else REVISION_FAILED=${last:-exit status $rc}; last=""; fi
  printf -v "$1" '%s' "$last"
}

drain_stdin() {
  if [ ! -t 0 ]; then cat >/dev/null; fi
}

# link_base <var> <link>: <var> becomes the last part of the link's target (what basename prints), or empty when
# it is no link.
link_base() {
  local target=""
  if [ -L "$2" ]; then target=$(readlink "$2"); target=${target%/}; target=${target##*/}; fi
  printf -v "$1" '%s' "$target"
}

# current_id <var>: <var> becomes the release current links to, or empty.
current_id() { link_base "$1" "$CURRENT"; }

atomic_link() {
  # ln to a temp name, then rename over the old link: readers never see it missing.
  ln -sfn "$1" "$2.tmp.$$"
  mv -T -f "$2.tmp.$$" "$2"
}

# env_copy <from> <to>: <to> becomes a copy of <from> (empty when there is none), root:<app user> 0640, renamed
# into place.
env_copy() {
  local tmp="$2.tmp.$$" from=/dev/null
  if [ -e "$tmp" ] || [ -L "$tmp" ]; then rm -f "$tmp"; fi
  if [ -e "$1" ]; then from=$1; fi
  # install writes the copy 0600 and only then sets its group and mode: no moment when others can read it.
  install -m 0640 -g "$APP_USER" "$from" "$tmp"
  mv -f "$tmp" "$2"
}

# env_snapshot <file>: <file> becomes a copy of ENV_FILE as it is now. The unit that reads it reads the same env on
# every start, whatever pulumi up writes to ENV_FILE later: a deploy that fails changes nothing a restart of the
# serving instance or a worker reads.
env_snapshot() { env_copy "$ENV_FILE" "$1"; }

# live_env_set <file>: LIVE_ENV, which the workers, the scheduled jobs and exec read, becomes a copy of <file> (the
# new web instance's env, or ENV_FILE without a web process); the one it replaces is kept for live_env_revert.
live_env_set() {
  if [ -e "$LIVE_ENV" ]; then cp -p "$LIVE_ENV" "$LIVE_ENV.previous"; else rm -f "$LIVE_ENV.previous"; fi
  env_copy "$1" "$LIVE_ENV"
  LIVE_ENV_SET=1
}

# live_env_revert: the mirror's undo of live_env_set, before it restarts the workers on the old release.
live_env_revert() {
  if [ "$LIVE_ENV_SET" != 1 ]; then return 0; fi
  if [ -e "$LIVE_ENV.previous" ]; then mv -f "$LIVE_ENV.previous" "$LIVE_ENV"; else rm -f "$LIVE_ENV"; fi
}

# dropin_write <file> <content>: a process's command drop-in (paths.ts, commandDropIn; its content the header's
# DROPINS) becomes <content>, root's, 0644 (the script's umask is 022), renamed into place. The caller runs
# daemon-reload before it (re)starts it.
dropin_write() {
  if [ ! -d "${1%/*}" ]; then mkdir -p -- "${1%/*}"; fi
  if [ -e "$1.tmp.$$" ] || [ -L "$1.tmp.$$" ]; then rm -f "$1.tmp.$$"; fi
  printf '%s' "$2" >"$1.tmp.$$"
  mv -f "$1.tmp.$$" "$1"
}

# live_dropin_write <file> <content>: dropin_write for a worker, which the switch restarts on the new release; the
# drop-in it replaces is kept as <file>.previous (systemd reads only *.conf) for live_dropins_revert, until
# live_dropins_done.
live_dropin_write() {
  if [ -e "$1" ]; then cp -p "$1" "$1.previous"; else rm -f "$1.previous"; fi
  dropin_write "$@"
  LIVE_DROPINS+=("$1")
}

# live_dropins_revert: the mirror's undo of live_dropin_write, before it restarts the workers on the old release.
live_dropins_revert() {
  local f
  if [ "${#LIVE_DROPINS[@]}" -eq 0 ]; then return 0; fi
  for f in "${LIVE_DROPINS[@]}"; do
    if [ -e "$f.previous" ]; then mv -f "$f.previous" "$f"; else rm -f "$f"; fi
  done
  "$SYSTEMCTL" daemon-reload
}

# live_dropins_done: the release finished; the drop-ins the switch replaced go.
live_dropins_done() {
  local f
  for f in "${LIVE_DROPINS[@]}"; do rm -f "$f.previous"; done
}

write_active_port() {
  printf "%s\n" "$1" >"$ACTIVE_PORT_FILE.tmp.$$"
  mv -f "$ACTIVE_PORT_FILE.tmp.$$" "$ACTIVE_PORT_FILE"
}

# choose_ports: the idle one of the two web ports. A first release takes the second, BASE_PORT + 1: a server that
# keeps a port of its own (8000, uvicorn's and gunicorn's default and apphost:app.basePort's) then fails the first
# release's health gate, which names where it listens, instead of serving it and failing every later one.
choose_ports() {
  OLD_PORT=""
  if [ -f "$ACTIVE_PORT_FILE" ]; then digits_of "$ACTIVE_PORT_FILE" OLD_PORT; fi
  case "$OLD_PORT" in
    "") NEW_PORT=$((BASE_PORT + 1)) ;;
    "$BASE_PORT") NEW_PORT=$((BASE_PORT + 1)) ;;
    "$((BASE_PORT + 1))") NEW_PORT=$BASE_PORT ;;
    *) NEW_PORT=$BASE_PORT; note "warning: the active port $OLD_PORT is neither $BASE_PORT nor $((BASE_PORT + 1)) (apphost:app.basePort changed?); moving to $NEW_PORT" ;;
  esac
  note "ports: live ${OLD_PORT:-none}, new $NEW_PORT"
}

# Point the upstream port at a web port: the stack's nftables table replaced in one transaction.
# New connections go to that port at once; established ones stay where they are. The proxy is not reloaded.
switch_upstream() {
  local out rules=${UPSTREAM_TEMPLATE//@PORT@/$1}
  # A here-string, not printf in a pipe (no subshell); it adds the newline the ruleset already ends with.
  if ! out=$("$NFT" -f - 2>&1 <<<"${rules%$'\n'}"); then
    die "nft refused the upstream rule 127.0.0.1:$UPSTREAM_PORT -> 127.0.0.1:$1 (the previous rule stays): $out"
  fi
  note "upstream: 127.0.0.1:$UPSTREAM_PORT -> 127.0.0.1:$1 (nftables table ip $NFT_TABLE)"
}

# The Host and X-Forwarded-Proto the proxy sends (HEALTH_HOST, HEALTH_PROTO), for the requests the script makes to an
# instance itself: the health gate's, and the debug-page probe's.
PROXY_HEADERS=()
if [ -n "$HEALTH_HOST" ]; then PROXY_HEADERS=(-H "Host: $HEALTH_HOST" -H "X-Forwarded-Proto: $HEALTH_PROTO"); fi
readonly PROXY_HEADERS

# health_wait <url> <unit> <seconds>: 0 on a 2xx before the deadline; HEALTH_LAST says what came back last, and
# why the gate stopped (the deadline, or an answer waiting would not change).
# The requests carry the Host and X-Forwarded-Proto the proxy would send (PROXY_HEADERS).
# The same redirect, 400, 401, 403, 404 or 405 to every try for HEALTH_SAME_ANSWER_SECONDS is the booted app's
# own answer, which waiting does not change: it stops early, saying what that answer usually means. So does an
# instance that listens on other ports, not its own, for HEALTH_ELSEWHERE_SECONDS, and one systemd restarted twice,
# its journal saying an address is in use (port_hint). So does one systemd restarted HEALTH_CRASH_RESTARTS times
# since the gate began, whatever its journal says: it exits soon after it starts (an import error, a missing
# setting), which waiting does not change; the caller prints its journal. A 5xx is waited for (an app still reaching
# its database answers one), unless it is the same to every try for HEALTH_SAME_ANSWER_SECONDS and the last error in
# the instance's journal is one ERROR_HINTS knows, which waiting does not change either (CTFd's cache in the
# read-only release: [Errno 30] Read-only file system).
# It keeps time on the gate's clock (gate_ms), in milliseconds: a 60 s deadline is 60 s, not 59 to 60.
health_wait() {
  local out code location state tries=0 same="" since=0 port holder restarts t0 elapsed
  local elsewhere bound away_since="" restarts0="" line hint looked=-5000
  micros t0
  port=${1#http://*:} port=${port%%/*}
  HEALTH_LAST="nothing yet"
  while :; do
    out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 "${PROXY_HEADERS[@]}" "$1") || true
    gate_ms elapsed "$t0"
    code=${out%% *} location=${out#* }
    HEALTH_LAST="HTTP ${code:-000}"
    case "$code" in
      2[0-9][0-9])
        # The answer counts only from <unit>: another service on the port (a stack on the same ports, a
        # server started by hand) would pass the gate for a release that never started.
        # port_listener (generated, components/render/layout.ts) prints "<pid> <unit>".
        holder=$(port_listener "$port") holder=${holder#* }
        if [ -n "$holder" ] && [ "$holder" != "$2" ]; then
          HEALTH_LAST="HTTP $code, but from $holder, which holds port $port, not from $2; give the stack ports no other service uses (apphost:app.basePort)"
          return 1
        fi
        note "health: $1 answered $code"
        return 0
        ;;
      301 | 302 | 303 | 307 | 308 | 400 | 401 | 403 | 404 | 405)
        if [ "$code" != "$same" ]; then
          same=$code since=$elapsed
        elif [ $((elapsed - since)) -ge $((HEALTH_SAME_ANSWER_SECONDS * 1000)) ]; then
          HEALTH_LAST="HTTP $code to every try for $(((elapsed - since) / 1000))s, so the gate stopped waiting: $(health_hint "$code" "$location" "$1")"
          # What the app says of it: its answer, and the error it logged for the request (Django's DisallowedHost).
          if [[ $code == 4* ]]; then HEALTH_LAST+=$(health_answer "$1")$(journal_error "$2"); fi
          return 1
        fi
        ;;
      5[0-9][0-9])
        if [ "$code" != "$same" ]; then
          same=$code since=$elapsed
        elif [ $((elapsed - since)) -ge $((HEALTH_SAME_ANSWER_SECONDS * 1000)) ] && [ $((elapsed - looked)) -ge 5000 ]; then
          # The journal read at most every 5 s: an app that answers 5xx for another reason is waited for to the end.
          looked=$elapsed
          line=$(last_exception "$2")
          hint=""
          if [ -n "$line" ]; then hint=$(error_hint "$line"); fi
          if [ -n "$hint" ]; then
            HEALTH_LAST="HTTP $code to every try for $(((elapsed - since) / 1000))s, so the gate stopped waiting: the last error in its journal, $line, is one that waiting does not change ($hint)"
            return 1
          fi
        fi
        ;;
      000)
        same=""
        # Listening, but not on its port: a port of its own, or a server's default (looked at once past the
        # first tries, which a booting server answers with nothing anyway).
        elsewhere=""
        if [ "$tries" -ge 3 ]; then elsewhere=$(unit_listens "$2" | paste -sd ' '); fi
        if [ -z "$elsewhere" ] || [[ " $elsewhere" == *":$port "* || " $elsewhere" == *":$port" ]]; then
          away_since=""
        elif [ -z "$away_since" ]; then
          away_since=$elapsed
        elif [ $((elapsed - away_since)) -ge $((HEALTH_ELSEWHERE_SECONDS * 1000)) ]; then
          HEALTH_LAST="HTTP 000; $2 listens on $elsewhere, not on port $port, for $(((elapsed - away_since) / 1000))s, so the gate stopped waiting: $(port_hint "$port" "$2")"
          return 1
        fi
        ;;
      *) same="" ;;
    esac
    state=$("$SYSTEMCTL" is-active "$2" 2>/dev/null) || true
    if [ "$state" = failed ]; then HEALTH_LAST="$HEALTH_LAST, $2 has failed"; return 1; fi
    restarts=$("$SYSTEMCTL" show -p NRestarts --value "$2" 2>/dev/null) || true
    case "$restarts" in "" | *[!0-9]*) restarts=0 ;; esac
    if [ "$restarts" -ge 2 ] && journal_tail "$2" | grep -qiE "$BIND_FAILURES"; then
      bound=$(bind_failure_port "$2")
      # Not one of the stack's two web ports: a listener besides its own (uWSGI's stats server). One of them is the
      # live release's, which a web process on a port of its own (uvicorn --port 8001) asks for.
      if [ -n "$bound" ] && [ "$bound" != "$BASE_PORT" ] && [ "$bound" != "$((BASE_PORT + 1))" ]; then
        HEALTH_LAST="$HEALTH_LAST; systemd restarted $2 $restarts times, its journal saying port $bound is already in use, so the gate stopped waiting: $(other_port_hint "$bound" "$port")"
      else
        HEALTH_LAST="$HEALTH_LAST; systemd restarted $2 $restarts times, its journal saying an address is already in use, so the gate stopped waiting: $(port_hint "$port" "$2")"
      fi
      return 1
    fi
    # Restarts count from the gate's first look: a count left from an earlier start is not this one's.
    if [ -z "$restarts0" ]; then restarts0=$restarts; fi
    if [ $((restarts - restarts0)) -ge "$HEALTH_CRASH_RESTARTS" ]; then
      HEALTH_LAST="$HEALTH_LAST; systemd restarted $2 $((restarts - restarts0)) times in $((elapsed / 1000))s, so the gate stopped waiting: it exits soon after it starts, which waiting does not change"
      out=$(journal_error "$2")
      HEALTH_LAST+=${out:-"; its journal says why"}
      return 1
    fi
    gate_ms elapsed "$t0"
    if [ "$elapsed" -ge $(($3 * 1000)) ]; then
      HEALTH_LAST="$HEALTH_LAST; no 2xx within $3s"
      out=$(journal_error "$2")
      # A 5xx the app logged nothing of: what it answered, and for Django's own page, why there is nothing to read.
      if [ -z "$out" ] && [[ $code == 5* ]]; then
        out=$(health_answer "$1")
        if [[ $out == *'titled "Server Error (500)"' || $out == *'"<h1>Server Error (500)</h1>"' ]]; then out+=", Django's page for an error it logs nowhere with DEBUG off (its default LOGGING mails it to ADMINS): the install's warnings may name the cause (a STATIC_ROOT nothing fills); to read the error in the journal, give the settings a LOGGING that sends django.request to the console"; fi
      fi
      HEALTH_LAST+=$out
      return 1
    fi
    # Poll quickly while a fresh server is likely still booting (0.1, 0.2, 0.4, 0.8 s), then once a second.
    sleep "${HEALTH_POLL_SECONDS[tries < 4 ? tries : 4]}"
    tries=$((tries + 1))
  done
}

# health_hint <code> <location> <url>: what a redirect or 4xx the app gives to every try usually means.
health_hint() {
  case "$1" in
    3??) echo "the health path redirects (to ${2:-a location it does not name}); point apphost:app.healthPath at a page that answers 2xx itself" ;;
    400) echo "the app refuses the request itself, often for its Host header (Django: ALLOWED_HOSTS, which apphost:app.env can set from \${hostnames}; Starlette and FastAPI: TrustedHostMiddleware's allowed_hosts, which answers \"Invalid host header\"); the gate sends Host: ${HEALTH_HOST:-the instance address}, as the proxy does" ;;
    401 | 403) echo "the health path needs a login or is forbidden; point apphost:app.healthPath at a page that answers without one" ;;
    *) echo "the app has no GET route at the health path; check apphost:app.healthPath$(health_elsewhere "$3")" ;;
  esac
}

# Where apps and their frameworks commonly answer a health check: the first of these that answers 2xx is offered when
# the health path has no route (full-stack-fastapi-template's /api/v1/utils/health-check/, Rails 7's /up,
# django-health-check's /ht/, Kubernetes' /livez).
HEALTH_ROUTES=(/health /healthz /health/ /healthcheck /health-check /api/health /api/healthz /api/v1/health
  /api/v1/utils/health-check/ /status /ping /up /livez /ht/)
# Where API frameworks serve their own documentation, offered for an API with no route at / either (Litestar's /schema:
# sinisaos/litestar-piccolo's backend; FastAPI's /docs, drf-spectacular's /api/schema/).
API_DOC_ROUTES=(/docs /schema /openapi.json /api/docs /api/schema/)

# health_elsewhere <url>: for an app with no route at the health path, a page of the same instance that answers 2xx
# without a login: a common health route (HEALTH_ROUTES), / itself, or where / redirects (microblog's /auth/login),
# or, where / answers 404, the API's documentation (API_DOC_ROUTES), each asked once; or that page's 5xx, for an app
# that fails on its own pages too (healthchecks' /accounts/login/ with no `manage.py compress` under its
# COMPRESS_OFFLINE, an error Django logs nowhere with DEBUG off); nothing else. A redirect's query is left off (the
# health path has none), and so is one to a path the proxy configs could not hold.
health_elsewhere() {
  local base out code location rest path route
  base=${1#http://} base="http://${base%%/*}"
  for route in "${HEALTH_ROUTES[@]}"; do
    if [ "$base$route" = "$1" ]; then continue; fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${PROXY_HEADERS[@]}" "$base$route") || continue
    if [[ $code == 2?? ]]; then
      echo " (GET $route answers $code: set it to $route)"
      return 0
    fi
  done
  out=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 5 "${PROXY_HEADERS[@]}" "$base/") || return 0
  code=${out%% *} location=${out#* }
  case "$code" in
    2??) echo " (GET / answers $code: set it to /, or add a route that answers 2xx)"; return 0 ;;
    5??) echo " (GET / answers $code: the app fails on its own pages too)"; return 0 ;;
    301 | 302 | 303 | 307 | 308) ;;
    404)
      for route in "${API_DOC_ROUTES[@]}"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${PROXY_HEADERS[@]}" "$base$route") || continue
        if [[ $code == 2?? ]]; then
          echo " (GET / answers 404, and GET $route, the API's documentation, answers $code: set it to $route, or add a route that answers 2xx)"
          return 0
        fi
      done
      return 0 ;;
    *) return 0 ;;
  esac
  # The path of the app's own address or this instance's: what the proxy would ask the instance for.
  rest=${location#*://}
  case "$rest" in */*) path=/${rest#*/} ;; *) path=/ ;; esac
  path=${path%%\?*} path=${path%%#*}
  if [ "$path" = / ] || [[ ! $path =~ ^/[A-Za-z0-9._~/-]*$ ]]; then return 0; fi
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${PROXY_HEADERS[@]}" "$base$path") || return 0
  case "$code" in
    2??) echo " (GET / redirects to $path, which answers $code: set it to $path, or add a route that answers 2xx)" ;;
    5??) echo " (GET / redirects to $path, which answers $code: the app fails on its own pages too)" ;;
  esac
}

# health_answer <url>: "; the app answered: "<its body>"", its first 120 printable characters (whitespace
# runs as one space), or nothing for an empty body: what the app says of a 4xx it gives every try (Starlette's
# "Invalid host header", a framework's error page). An HTML page with a title is quoted by its title (Django's debug
# page: "DisallowedHost at /"), which its first characters, a style sheet's, do not say.
health_answer() {
  local body title
  body=$(curl -s --max-time 5 "${PROXY_HEADERS[@]}" "$1" 2>/dev/null | head -c 2000 | tr '\r\n\t' '   ' | tr -cd '[:print:]' | tr -s ' ') || true
  body=${body# }
  if [ -z "$body" ]; then return 0; fi
  # The first title (an SVG in the page may have its own), its entities read, &amp; last (so "&amp;lt;" is "&lt;").
  title=$(grep -oiE '<title[^>]*>[^<]*</title>' <<<"$body" | head -n 1 | sed -E 's/<[^>]*>//g') || true
  title=${title# } title=${title% } title=${title//&lt;/<} title=${title//&gt;/>} title=${title//&quot;/\"}
  title=${title//&#39;/\'} title=${title//&#x27;/\'} title=${title//&amp;/\&}
  if [ -n "$title" ]; then
    if [ "${#title}" -gt 120 ]; then title="${title:0:120}..."; fi
    printf '; the app answered a page titled "%s"' "$title"
    return 0
  fi
  if [ "${#body}" -gt 120 ]; then body="${body:0:120}..."; fi
  printf '; the app answered: "%s"' "$body"
}

# debug_page_warning <base url> [<what to do>]: once the release is live, one request for a path no app routes, with
# the Host and X-Forwarded-Proto the proxy sends. Django's debug 404 page ("you have DEBUG = True in your Django settings
# file") lists the app's URL patterns to anyone, and its error pages show tracebacks and settings: a warning, since the
# release serves. <what to do> replaces its advice (debugOffHint, phases.ts: a DEBUG the stack sets to "0").
debug_page_warning() {
  local body
  body=$(curl -s --max-time 5 "${PROXY_HEADERS[@]}" "$1/apphost-no-such-page-$RANDOM" 2>/dev/null | head -c 65536 | tr -s '\r\n\t ' ' ') || true
  if [[ $body == *"<code>DEBUG = True</code> in your Django settings file"* ]]; then
    note "health-gate: warning: the app runs with Django's DEBUG = True: its 404 page lists the app's URL patterns to anyone, and its error pages show tracebacks and settings; ${2:-read DEBUG from the environment in its settings and leave it off in apphost:app.env}"
  fi
}

# What a client prints when its database server is not there, refuses it or does not know its login: libpq's and
# psycopg's, asyncpg's and Python's resolver's words.
DB_UNREACHABLE="could not translate host name|Name or service not known|Temporary failure in name resolution|connection refused|connect call failed|password authentication failed|peer authentication failed|role \"[^\"]*\" does not exist|database \"[^\"]*\" does not exist"

# grep's options that leave out the app's tests (tests/, conftest.py, test_*.py, *.test.js), which make and drop their own
# databases, and node_modules. After --include: of contradictory ones, grep takes the last that matches.
APP_TESTS=(--exclude-dir=tests --exclude-dir=test --exclude-dir=__tests__ --exclude-dir=node_modules --exclude=conftest.py
  --exclude='test_*.py' --exclude='*_test.py' --exclude='*.test.[jt]s' --exclude='*.spec.[jt]s')

# database_env_hint: where the new release's code reads its Postgres settings from variables of its own (healthchecks'
# DB, DB_HOST, DB_NAME... in hc/settings.py; a knexfile's process.env.DB_HOST) and never DATABASE_URL, which apphost
# sets: those variables, where the first is read, and what apphost:app.env sets them to (${database.host}, ...); a
# variable that picks the engine (DB, DB_CLIENT) gets the Postgres name its line compares it to. In Python, a read is a
# call whose name has "env" in it (os.getenv, os.environ.get, django-environ's env.str, healthchecks' envsecret),
# os.environ[...] or python-decouple's config(...), with the variable's name first; in JavaScript and TypeScript,
# process.env.NAME or process.env["NAME"] (not a destructuring, nor a schema such as envalid's). Read as the app user,
# who owns the release; the app's tests are not read (APP_TESTS).
# Nothing when the release reads DATABASE_URL, or none of those variables, or the env file (ENV_FILE) sets each.
database_env_hint() {
  local found line file rest name ref at="" value sets=() names=() seen=" " set var dynaconf="" prefix=""
  # The names the env file sets already (apphost:app.env, apphost:secretEnv): the advice leaves them out.
  set=" $(sed -nE 's/^([A-Za-z_][A-Za-z0-9_]*)=.*/\1/p' "$ENV_FILE" 2>/dev/null | tr '\n' ' ' || true)"
  # dj-database-url's config() and django-environ's env.db() read DATABASE_URL without naming it.
  if (cd "$NEW_DIR" && "$RUNUSER" -u "$APP_USER" -- grep -rqE --include='*.py' "${APP_TESTS[@]}" \
    '(dj_database_url\.config|\benv\.db(_url)?)\(' . 2>/dev/null); then return 0; fi
  # dynaconf's settings (esfoobar/quart-postgres-boilerplate's settings['DB_USERNAME'], defaulted in settings.toml),
  # which it takes from the environment under its envvar_prefix: DYNACONF_DB_USERNAME by default.
  if (cd "$NEW_DIR" && "$RUNUSER" -u "$APP_USER" -- grep -rqE --include='*.py' "${APP_TESTS[@]}" \
    '^[[:space:]]*(from dynaconf import|import dynaconf)' . 2>/dev/null); then
    dynaconf=1
    prefix=$(cd "$NEW_DIR" && "$RUNUSER" -u "$APP_USER" -- grep -rhoE --include='*.py' "${APP_TESTS[@]}" \
      "envvar_prefix[[:space:]]*=[[:space:]]*([\"'][A-Za-z0-9_]*[\"']|False)" . 2>/dev/null | head -n 1) || true
    case $prefix in
      "") prefix=DYNACONF_ ;;
      *False) prefix="" ;;
      *) prefix=${prefix#*[\"\']} prefix=${prefix%[\"\']}_ ;;
    esac
  fi
  found=$(cd "$NEW_DIR" && {
    # dynaconf's reads, each as dynaconf["NAME": settings["NAME"], settings.get("NAME"), settings.NAME.
    if [ -n "$dynaconf" ]; then
      "$RUNUSER" -u "$APP_USER" -- grep -rnoE --include='*.py' "${APP_TESTS[@]}" \
        "\bsettings(\[[\"'][A-Z][A-Z0-9_]*[\"']|\.get\([[:space:]]*[\"'][A-Z][A-Z0-9_]*[\"']|\.[A-Z][A-Z0-9_]*\b)" . 2>/dev/null |
        sed -E "s/settings(\[|\.get\([[:space:]]*|\.)[\"']?([A-Z][A-Z0-9_]*).*/dynaconf[\"\2\"/"
    fi
    "$RUNUSER" -u "$APP_USER" -- grep -rnoE --include='*.py' "${APP_TESTS[@]}" \
      "(\b[A-Za-z_.]*env[A-Za-z_.]*\(|environ\[|\bconfig\()[[:space:]]*[\"'][A-Z][A-Z0-9_]*[\"']" . 2>/dev/null
    "$RUNUSER" -u "$APP_USER" -- grep -rnoE --include='*.[cm]js' --include='*.[jt]s' "${APP_TESTS[@]}" \
      "process\.env(\.[A-Z][A-Z0-9_]*|\[[\"'][A-Z][A-Z0-9_]*[\"']\])" . 2>/dev/null
    # `const { DB_HOST, DB_USER: user, DB_PORT = 5432 } = process.env` (on one line): each name as process.env.NAME.
    "$RUNUSER" -u "$APP_USER" -- grep -rnoE --include='*.[cm]js' --include='*.[jt]s' "${APP_TESTS[@]}" \
      "\{[^{}]*\}[[:space:]]*=[[:space:]]*process\.env([^.[A-Za-z0-9_]|$)" . 2>/dev/null |
      awk '{ p = index($0, "{"); head = substr($0, 1, p - 1); body = substr($0, p + 1); sub(/\}.*/, "", body)
        n = split(body, part, ","); for (i = 1; i <= n; i++) if (match(part[i], /^[[:space:]]*[A-Z][A-Z0-9_]*/)) {
          name = substr(part[i], RSTART, RLENGTH); gsub(/[[:space:]]/, "", name); print head "process.env." name } }'
  } | LC_ALL=C sort -s -t: -k1,1 -k2,2n) || true
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    file=${line%%:*} rest=${line#*:}
    name=${rest#*:}
    # Python's `getenv("DB_HOST"`, JavaScript's `process.env.DB_HOST` or `process.env["DB_HOST"]`, dynaconf's.
    var=""
    if [[ $name == dynaconf* ]]; then var=$prefix; fi
    if [[ $name == process.env* ]]; then name=${name#process.env} name=${name#.} name=${name#[} name=${name//[\"\'\]]/}
    else name=${name%[\"\']} name=${name##*[\"\']}; fi
    case $name in
      DATABASE_URL) return 0 ;;
      *DB_URL | *DB_URI | *DATABASE_URI | *DATABASE_URL | POSTGRES*_URL | POSTGRES*_URI | PG_URL | *DB_DSN | *DATABASE_DSN) ref="\${database.url}" ;;
      *DB_HOST | *DB_HOSTNAME | *DATABASE_HOST | *DATABASE_HOSTNAME | POSTGRES_HOST | POSTGRES_SERVER | PGHOST) ref="\${database.host}" ;;
      *DB_PORT | *DATABASE_PORT | POSTGRES_PORT | PGPORT) ref="\${database.port}" ;;
      *DB_USER | *DB_USERNAME | *DATABASE_USER | *DATABASE_USERNAME | POSTGRES_USER | PGUSER) ref="\${database.user}" ;;
      *DB_PASSWORD | *DB_PASS | *DATABASE_PASSWORD | POSTGRES_PASSWORD | PGPASSWORD) ref="\${database.password}" ;;
      *DB_NAME | *DB_DATABASE | *DATABASE_NAME | POSTGRES_DB | PGDATABASE) ref="\${database.name}" ;;
      DB | *DB_ENGINE | *DB_TYPE | *DB_BACKEND | *DB_VENDOR | *DB_CLIENT | *DB_DIALECT | *DATABASE_ENGINE | *DATABASE_TYPE)
        # `os.getenv("DB") == "postgres"`, `process.env.DB_CLIENT === "pg"`: the value its line compares it to, where
        # that names Postgres.
        value=$("$RUNUSER" -u "$APP_USER" -- sed -n "${rest%%:*}p" "$NEW_DIR/${file#./}" 2>/dev/null |
          grep -oE "([\"']${name}[\"']\]?\)?|\.${name})[[:space:]]*(===?|in)[[:space:]]*[([{]?[[:space:]]*[\"'](pg|[a-z.]*postgres[a-z_.]*)[\"']" |
          grep -oE "[\"'](pg|[a-z.]*postgres[a-z_.]*)[\"']\$" | tr -d "\"'") || true
        [ -n "$value" ] || continue
        ref=$value ;;
      *) continue ;;
    esac
    [[ $seen == *" $name "* ]] && continue
    seen+="$name " names+=("$name")
    [[ $set == *" $var$name "* ]] || sets+=("$var$name to $ref")
    [ -n "$at" ] || at="${file#./}:${rest%%:*}"
  done <<<"$found"
  [ ${#sets[@]} -gt 0 ] || return 0
  local IFS=,
  names=("${names[@]/#/ }") sets=("${sets[@]/#/ }")
  printf '%s' "the app's code reads its database from${names[*]} ($at), not DATABASE_URL, which apphost sets: set apphost:app.env's${sets[*]}"
}

# ini_value <ini> <key>: the first value <ini> (relative to the release) gives <key>, trimmed, read as the app user; or
# nothing.
ini_value() {
  local value
  value=$("$RUNUSER" -u "$APP_USER" -- sed -nE "s/^[[:space:]]*${2//./\\.}[[:space:]]*=[[:space:]]*//p" "$NEW_DIR/$1" 2>/dev/null | head -n 1) || true
  printf '%s' "${value%"${value##*[![:space:]]}"}"
}

# alembic_script_dir <ini> <dir>: the script_location of <ini>, relative to the release, where alembic runs in <dir>
# (a relative location is <dir>'s, `%(here)s/...` the ini's directory's); nothing for an absolute or a missing one.
alembic_script_dir() {
  local location dir
  location=$(ini_value "$1" script_location)
  case $location in
    "" | /*) return 0 ;;
    %\(here\)s/*) dir="$(dirname "$1")/${location#*/}" ;;
    *) dir="$2/$location" ;;
  esac
  printf '%s' "${dir#./}"
}

# alembic_revisions_check <ini> <dir>: revisions_check for an alembic migration run in <dir>, its scripts where <ini>'s
# script_location places them, unless the ini sets version_locations.
alembic_revisions_check() {
  local scripts
  scripts=$(alembic_script_dir "$1" "$2")
  if [ -z "$scripts" ] || [ -n "$(ini_value "$1" version_locations)" ]; then return 0; fi
  revisions_check "$scripts" 'alembic revision --autogenerate -m "initial tables"'
}

# revisions_check <scripts> <command>: a warning when the migration's alembic versions directory, <scripts>/versions,
# has no revision: the migration then creates no table, and the app answers 500 on its first query
# (igorbenav/FastAPI-boilerplate ships src/migrations/versions/ with a README alone, for `alembic revision
# --autogenerate` to fill). <command> makes the first: alembic's, or Flask-Migrate's `flask db migrate`.
revisions_check() {
  if [ ! -d "$NEW_DIR/$1/versions" ]; then return 0; fi
  if [ -n "$("$RUNUSER" -u "$APP_USER" -- find "$NEW_DIR/$1/versions" -name '*.py' ! -name '__init__.py' -print -quit 2>/dev/null)" ]; then return 0; fi
  note "install: warning: $1/versions has no alembic revision, so the migration creates no table, and the app's first query fails: \`$2\`, run where the app reaches a database (an empty one, or one as the stack's is), writes the first from its models; add it to the app"
}

# alembic_url_hint <ini> <dir>: after a failed alembic migration whose log says it could not reach or log in to its
# database, when <ini> (relative to the release) sets sqlalchemy.url and the env.py of its script_location (relative to
# <dir>, where alembic ran) reads nothing else: why the migration went to another database than the stack's, and the
# line for env.py. alembic's own env.py template reads the ini's URL alone, so an app whose alembic.ini names its Docker
# Compose service (testdrivenio/fastapi-sqlmodel-alembic: ...@db:5432/foo) migrates against that name on any host.
# Nothing when env.py reads the environment or the app's settings, or the ini's URL is interpolated. Read as the app
# user, who owns the release; the URL's password is not shown.
alembic_url_hint() {
  local read=("$RUNUSER" -u "$APP_USER" --) url scripts env shown
  "${read[@]}" grep -qiE "$DB_UNREACHABLE" "$MIGRATE_LOG" 2>/dev/null || return 0
  url=$(ini_value "$1" sqlalchemy.url) scripts=$(alembic_script_dir "$1" "$2")
  if [ -z "$url" ] || [ -z "$scripts" ] || [[ $url == *"%("* ]]; then return 0; fi
  env="$scripts/env.py"
  if ! "${read[@]}" test -f "$NEW_DIR/$env" || "${read[@]}" grep -qE 'environ|getenv|DATABASE_URL|settings|set_main_option' "$NEW_DIR/$env"; then return 0; fi
  shown=$(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$url")
  printf '%s' "the migration connects to the URL $1 sets in sqlalchemy.url, $shown, as $env reads no other: apphost gives the app the stack's database in DATABASE_URL; in $env, before it connects: config.set_main_option(\"sqlalchemy.url\", os.environ[\"DATABASE_URL\"])"
}

# create_all_script: the name of the first script at the new release's root named as the database's creation
# (create_db.py, init_db.py, db_create.py) that calls SQLAlchemy's create_all() and not drop_all(), read as the app
# user; or nothing.
create_all_script() {
  local f name read=("$RUNUSER" -u "$APP_USER" --)
  for f in "$NEW_DIR"/*.py; do
    name=${f##*/}
    [[ ${name,,} =~ ^((create|init|setup|make)[_-]?(db|database|tables?)|db[_-]?(create|init|setup))\.py$ ]] || continue
    if "${read[@]}" grep -qs 'create_all(' "$f" 3>&- 9>&- && ! "${read[@]}" grep -qs 'drop_all(' "$f" 3>&- 9>&-; then
      printf '%s' "$name"
      return 0
    fi
  done
}

# migrate_output <log>: the last 40 lines of a failed migration's log, which its error quotes, read as the app user,
# without terminal colours.
migrate_output() {
  "$RUNUSER" -u "$APP_USER" -- tail -n 40 "$1" 2>/dev/null 3>&- 9>&- | sed -E $'s/\x1b\\[[0-9;]*[A-Za-z]//g'
}

# migrate_earlier <log>: for a log longer than 25 lines, the last 3 lines before its last 25 that name an error, as
# "; earlier in its output: <line> | <line>" for the first line of the error, which the deploy shows in full; nothing
# else. The deploy shows the last 40 lines of the release's output, the rollback's a dozen of them, so a log's last 25
# or so. A CLI may print its usage after the error (Piccolo's `migrations forwards`: `relation "piccolo_user" does not
# exist`, then 30 lines of usage, in sinisaos/litestar-piccolo). A traceback's frames and code lines (File "...", lines
# indented four or more) and its joining lines are not errors of their own.
migrate_earlier() {
  local lines
  lines=$("$RUNUSER" -u "$APP_USER" -- head -n -25 "$1" 2>/dev/null 3>&- 9>&- | sed -E $'s/\x1b\\[[0-9;]*[A-Za-z]//g' |
    grep -vE '^[[:space:]]{4}|^[[:space:]]*File "|^Traceback |^The above exception |^During handling of the above exception' |
    grep -iE 'error|fail|exception|does not exist|denied|refused|invalid|not found' | tail -n 3 | cut -c 1-200 |
    sed -E 's/^[[:space:]]+//' | paste -sd '|' | sed 's/|/ | /g') || true
  if [ -n "$lines" ]; then printf '; earlier in its output: %s' "$lines"; fi
}

# migration_unset_check <1: no command runs collectstatic, else 0>: a warning when the stack runs no migration
# (apphost:database.migrate unset, no Procfile release: line; the install phase adds the check only then) and the
# release has a migration tool's files at its root (Django's manage.py also one directory down: django_manage),
# as a tutorial's app has (testdrivenio/fastapi-sqlmodel-alembic: alembic.ini and four migrations, and a deploy that
# served an app without its tables, every query a 500; sinisaos/litestar-piccolo's piccolo_conf.py, whose migrations
# a script of its own runs; w3cj/hono-open-api-starter's drizzle.config.ts, drizzle-kit's). The first found names the
# tool and its command. A manage.py is Django's only where it says so (a Flask app's, testdrivenio/flask-on-docker's
# FlaskGroup CLI, is not); read as the app user, who owns the release. Else a script at its root that creates the
# tables (create_all_script: mjhea0/flaskr-tdd's create_db.py, whose deploy served no page, `no such table: post`):
# run before each release, it creates the tables that are missing and empties none.
migration_unset_check() {
  local found command script manage=""
  if [ -f "$NEW_DIR/alembic.ini" ]; then found="alembic.ini" command="alembic upgrade head"
  elif [ -f "$NEW_DIR/migrations/alembic.ini" ] && [ -f "$NEW_DIR/migrations/env.py" ]; then found="migrations/alembic.ini, Flask-Migrate's" command="flask db upgrade"
  elif script=$(django_manage) && [ -n "$script" ]; then
    found="$script, Django's"
    manage="python manage.py"
    if [ "$script" != manage.py ]; then manage="cd ${script%/manage.py} && $manage"; fi
    command="$manage migrate --noinput"
  elif [ -d "$NEW_DIR/prisma/migrations" ]; then found="prisma/migrations" command="npx prisma migrate deploy"
  elif compgen -G "$NEW_DIR/knexfile.[jt]s" >/dev/null; then found="a knexfile" command="npx knex migrate:latest"
  elif [ -f "$NEW_DIR/piccolo_conf.py" ]; then found="piccolo_conf.py, Piccolo's" command="piccolo migrations forwards all"
  elif script=$(compgen -G "$NEW_DIR/drizzle.config.*[jt]s" | head -n 1) && [ -n "$script" ]; then
    found="${script##*/}, drizzle-kit's" command="npx drizzle-kit migrate"
  elif script=$(create_all_script) && [ -n "$script" ]; then
    found="$script, which creates the app's tables with SQLAlchemy's create_all() (the missing ones only: a changed model needs a migration tool, such as Flask-Migrate)" command="python $script"
  else return 0; fi
  note "install: warning: the release has $found, and the stack runs no migration (apphost:database.migrate is unset, and the app has no Procfile release: line), so its database tables are never created or changed: set apphost:database.migrate to \"$command\" (apphost then backs the database up before it, and restores it if the release fails), or, if the app migrates by itself as it starts, to \"true\""
  # Django's: its own checks too, which the install runs where the stack's migration is Django's (djangoChecks): a
  # STATIC_ROOT nothing fills answers 500 to every page under WhiteNoise's manifest storage, and Django logs no error.
  if [ -n "$manage" ]; then
    if [ "$1" = 1 ]; then static_root_check "$manage"; fi
    secret_key_check "$manage"
  fi
}

# django_manage: the new release's Django manage.py, at its root or else one directory down (shynet's Django project in
# shynet/, beside the repository's package.json and pyproject.toml), as a path relative to the release; a manage.py is
# Django's only where it says so (a Flask app's, testdrivenio/flask-on-docker's FlaskGroup CLI, is not). Read as the
# app user; nothing when there is none.
django_manage() {
  local f
  for f in "$NEW_DIR/manage.py" "$NEW_DIR"/*/manage.py; do
    if [ -f "$f" ] && "$RUNUSER" -u "$APP_USER" -- grep -qsi django "$f" 3>&- 9>&-; then
      printf '%s' "${f#"$NEW_DIR"/}"
      return 0
    fi
  done
}

# drop_tables_check <command>: a warning when the migration's command is named as a database's creation (init-db,
# create_db, reset_db) and the release drops tables: SQLAlchemy's drop_all() in its Python, or DROP TABLE in its SQL
# (the Flask tutorial's `flask --app flaskr init-db` runs a schema.sql that begins with DROP TABLE IF EXISTS;
# testdrivenio/flask-on-docker's create_db calls db.drop_all()), or Sequelize's sync({ force: true }) in its JavaScript
# or TypeScript (sequelize/express-example's `npm run setup-example-db`). Such a command creates a database once; run
# before every release, it empties the stack's each time, after the backup. The first such line, by file name and line
# number, read as the app user; the app's tests (tests/, conftest.py, test_*.py, *.test.js), which drop their own
# tables, and node_modules are not read.
drop_tables_check() {
  local found rest read=("$RUNUSER" -u "$APP_USER" -- grep -rn)
  found=$(cd "$NEW_DIR" && {
    "${read[@]}" -E --include='*.py' "${APP_TESTS[@]}" '\bdrop_all\(' . 2>/dev/null
    "${read[@]}" -iE --include='*.sql' "${APP_TESTS[@]}" '^[[:space:]]*drop[[:space:]]+table' . 2>/dev/null
    "${read[@]}" -E --include='*.[cm]js' --include='*.[jt]s' "${APP_TESTS[@]}" '\.sync\([[:space:]]*\{[^}]*force:[[:space:]]*true' . 2>/dev/null
  } | LC_ALL=C sort -t: -k1,1 -k2,2n | head -n 1) || true
  if [ -z "$found" ]; then return 0; fi
  found=${found#./} rest=${found#*:}
  note "install: warning: the migration, \`$1\`, is named as a database's creation, and the release drops tables (${found%%:*}:${rest%%:*}): apphost runs the migration before every release, so each release would empty the stack's database (the backup taken before it keeps what it held); run it once by hand (npm run exec -- $1), and set apphost:database.migrate to a migration tool's command that keeps the data (Flask-Migrate's flask db upgrade, alembic upgrade head), or to \"true\""
}

# static_root_check <manage.py command>: a warning when the app's settings set STATIC_ROOT, which only collectstatic
# fills, and nothing apphost runs calls it (the install phase adds the check only then): under DEBUG = False, neither
# Django nor WhiteNoise serves a static file that collectstatic did not copy there, the admin's CSS included, and the
# pages that link them still answer 200. Heroku's Python buildpack runs collectstatic by itself, so an app written for
# it has no step of its own (HackSoftware/Django-Styleguide-Example). Where: settings_assignment's.
static_root_check() {
  local at
  at=$(settings_assignment STATIC_ROOT)
  if [ -z "$at" ]; then return 0; fi
  note "install: warning: the app's settings set STATIC_ROOT ($at), which only collectstatic fills, and nothing apphost runs calls it (apphost:app.build, the migration, the processes): with DEBUG off, Django and WhiteNoise serve no static file it did not copy there, the admin's CSS included; set apphost:app.build to \"$1 collectstatic --noinput\" (Heroku's Python buildpack runs it by itself)"
}

# settings_assignment <name>: "<file>:<line>" of the first assignment of <name> in the new release's Python files (the
# first file in name order, its first such line), read as the app user, who owns the release; or nothing.
settings_assignment() {
  local found rest
  found=$(cd "$NEW_DIR" && "$RUNUSER" -u "$APP_USER" -- grep -rnE --include='*.py' "^[[:space:]]*$1[[:space:]]*=" . 2>/dev/null | LC_ALL=C sort -t: -k1,1 -k2,2n | head -n 1) || true
  if [ -z "$found" ]; then return 0; fi
  found=${found#./} rest=${found#*:}
  printf '%s:%s' "${found%%:*}" "${rest%%:*}"
}

# secret_key_check <manage.py command>: Django's own deploy check of SECRET_KEY in the new release, with the env
# file, as the app user (0.2 s). security.W009 is Django's django-insecure- default (startproject hard-codes one, and
# settings like `os.environ.get("DJANGO_SECRET_KEY", "django-insecure-...")` fall back to it) or a short key: whoever
# knows it forges sessions and password-reset links. A warning, since the release serves; a settings module that does
# not load is the health gate's to report. Only when the check fires: where the settings assign it (the first file in
# name order; read as the app user, who owns the release) and the variable they read it from there, if any, for the
# advice.
secret_key_check() {
  local out at file line text name="" read=("$RUNUSER" -u "$APP_USER" --)
  out=$(as_app "$NEW_DIR" "$1 check --deploy --tag security 2>&1") || return 0
  [[ $out == *"(security.W009)"* ]] || return 0
  at=$(settings_assignment SECRET_KEY)
  if [ -n "$at" ]; then
    file=${at%:*} line=${at##*:}
    text=$("${read[@]}" sed -n "${line}p" "$NEW_DIR/$file")
    # A call that goes on over the next lines: `os.environ.get(` then `'DJANGO_SECRET_KEY', 'django-insecure-...')`.
    if [[ $text == *"("* && $text != *")"* ]]; then text+=$("${read[@]}" sed -n "$((line + 1)),$((line + 2))p" "$NEW_DIR/$file" | tr '\n' ' '); fi
    text=${text%%)*}
    if [[ $text =~ (environ|getenv|env|config)[^\"\']*[\"\']([A-Z][A-Z0-9_]*)[\"\'] ]]; then name=${BASH_REMATCH[2]}; fi
  fi
  local why="the app's SECRET_KEY is one anyone can know (Django's check security.W009: its django-insecure- default, or a key under 50 characters): whoever has it forges sessions and password-reset links; "
  if [ "$name" = SECRET_KEY ]; then
    note "install: warning: $why""the stack sets SECRET_KEY (apphost:secretEnv or apphost:app.env), which its settings read ($at): remove it there, and apphost generates a long random one"
  elif [ -n "$name" ]; then
    note "install: warning: $why""its settings read it from $name ($at): set apphost:app.env.$name to \${secretKey}, the long random key apphost generates"
  else
    note "install: warning: $why""read it from the environment in its settings${at:+ ($at)}, as SECRET_KEY = os.environ[\"SECRET_KEY\"]: apphost generates a long random SECRET_KEY"
  fi
}

# What servers print when the address they bind is taken: Python's errno 98 (uvicorn, Flask, socketserver), Node's
# EADDRINUSE, gunicorn's "Connection in use", Django's runserver.
BIND_FAILURES="address already in use|EADDRINUSE|connection in use|port is already in use"

# bind_failure_port <unit>: the port named where <unit>'s journal last says an address is in use, on that line or the
# one before it, or nothing: Node's `EADDRINUSE: address already in use 127.0.0.1:3000`, gunicorn's `Connection in use:
# ('127.0.0.1', 8000)`, uvicorn's `bind on address ('127.0.0.1', 8000)`, uWSGI's `... on the same address
# (127.0.0.1:9191).` before its `bind(): Address already in use`; Python's bare `[Errno 98]` names none.
bind_failure_port() {
  local lines
  lines=$(journal_tail "$1" | grep -iE -B1 "$BIND_FAILURES" | tail -n 2) || true
  grep -oE "(:|', )[0-9]{1,5}\b" <<<"$lines" | tail -n 1 | tr -dc 0-9 || true
}

# other_port_hint <bound> <port>: what to do about a web process that listens on its own port, <port>, and binds a
# fixed one, <bound>, besides it (uWSGI's stats server, a metrics or debug listener), which a process already holds:
# the live release's instance, which binds it too, when the gate can tell.
other_port_hint() {
  local holder
  holder=$(port_listener "$1") holder=${holder#* }
  if [ -n "$holder" ] && [ -n "$WEB_UNIT" ] && [[ $holder == "${WEB_UNIT%@.service}@"* ]]; then holder="the live release's instance, $holder,"; fi
  echo "besides its own port, $2, the web process binds port $1, which ${holder:-another process} holds: each release starts beside the one serving, so a fixed port of its own serves one release at most; turn that listener off, or give it a port that differs per release (uWSGI's stats server, \`stats = 127.0.0.1:9191\` in uwsgi.ini, needs neither to serve; a metrics or debug server)"
}

# port_hint <port> <unit>: what to do about a web process, <unit>, that does not listen on the port it was given:
# free the port when another service holds it, else listen on it.
port_hint() {
  local holder
  holder=$(port_listener "$1") holder=${holder#* }
  if [ -n "$holder" ] && [ "$holder" != "$2" ]; then
    echo "port $1 is held by $holder; give the stack ports no other service uses (apphost:app.basePort)"
    return 0
  fi
  echo "the web process (apphost:app.processes) must listen on the port in \$PORT, $1 for this release: each release starts beside the one serving, on the other of two ports, so a port of its own, or its server's default, serves one release at most; give it \$PORT in the command (--port \$PORT, or APP_PORT=\$PORT <command> for an app that reads its port from a variable of its own), or read PORT in the script that starts the server$(if [ "$RUNTIME" = node ]; then printf '%s' " (Node: process.env.PORT where the app calls listen)"; fi)"
}

# exception_line: the exception line of the last whole Python traceback on stdin (the first line after
# "Traceback ..." that is not a frame), at most 300 characters, or an empty line.
exception_line() {
  awk '/^Traceback \(most recent call last\):/ { tb = 1; next } tb && /^[^ \t]/ { last = $0; tb = 0 } END { print substr(last, 1, 300) }'
}

# error_line: the error its standard input ended on: exception_line, or with no traceback there (a Node app's output,
# alembic's `FAILED:`), the last line known_error_line finds; an empty line for neither.
error_line() {
  local out line
  out=$(cat)
  line=$(exception_line <<<"$out")
  if [ -z "$line" ]; then line=$(known_error_line <<<"$out"); fi
  printf '%s\n' "$line"
}

# last_exception <unit>: error_line of <unit>'s journal since publish's start, for a process that exits as it starts.
# The lines journal_tail shows may end inside the traceback of a start still printing it.
last_exception() {
  "$JOURNALCTL" -u "$1" --since "@$PUBLISH_STARTED" -n 400 --no-pager -o cat 2>/dev/null | error_line
}

# journal_error <unit>: "; the last error in its journal: <last_exception> (<what it usually means: error_hint>)", or
# nothing. With no such hint, what unreachable_hint says follows: the last exception of a chain is often a later
# one's (FastAPI-boilerplate's lifespan failed to reach Redis, then to close the pool it never made: `AttributeError:
# 'NoneType' object has no attribute 'aclose'`).
journal_error() {
  local line hint
  line=$(last_exception "$1")
  if [ -z "$line" ]; then return 0; fi
  hint=$(error_hint "$line")
  printf '; the last error in its journal: %s%s' "$line" "${hint:+ ($hint)}"
  if [ -z "$hint" ]; then unreachable_hint "$1"; fi
}

# unreachable_hint <unit>: when <unit>'s journal since publish's start says the process could not reach a server on
# this host that nothing listens on (an app that connects to Redis as it starts): that line, at most 200 characters,
# and local_server_hint's advice; nothing otherwise. The last such line of the journal's last 400.
unreachable_hint() {
  local line hint
  while IFS= read -r line; do
    hint=$(local_server_hint "$line")
    if [ -n "$hint" ]; then
      printf '; before it, the journal says it could not reach a server it needs: "%s"%s' "${line:0:200}" "$hint"
      return 0
    fi
  done < <("$JOURNALCTL" -u "$1" --since "@$PUBLISH_STARTED" -n 400 --no-pager -o cat 2>/dev/null | grep -iE "$UNREACHABLE" | tail -n 3 | tac)
}

# journal_tail <unit> [since]: its last 40 lines since the epoch second given (publish's start by default).
journal_tail() {
  "$JOURNALCTL" -u "$1" --since "@${2:-$PUBLISH_STARTED}" -n 40 --no-pager -o cat 2>&1 || true
}

# unit_restart <unit>: restart it, first clearing a "failed" state: a process that crash-looped until systemd gave up
# (StartLimitBurst, components/render/systemd.ts) refuses every start, the release's included, until its failure is
# reset. A start systemd refuses (a missing program, environment file or directory of the unit's sandbox) fails the
# phase with the unit's state and the last lines of its journal, which systemctl's exit status alone does not say; a
# start that failed for the unit's cgroup (219/CGROUP) is tried once more first.
unit_restart() {
  local status=0 started=$EPOCHSECONDS state
  "$SYSTEMCTL" reset-failed "$1" 2>/dev/null || true
  "$SYSTEMCTL" restart "$1" || status=$?
  # 219/CGROUP: systemd could not place the new process in the unit's cgroup, which the stopped process's may still
  # hold for an instant (a worker restarted by a rollback, twice in the CI runs' nspawn sandboxes): once more.
  if [ "$status" -ne 0 ] && [ "$("$SYSTEMCTL" show -p ExecMainStatus --value "$1" 2>/dev/null)" = 219 ]; then
    note "warning: $1 could not start in its cgroup (status 219/CGROUP); starting it once more"
    sleep 1
    status=0
    "$SYSTEMCTL" reset-failed "$1" 2>/dev/null || true
    "$SYSTEMCTL" restart "$1" || status=$?
  fi
  if [ "$status" -ne 0 ]; then
    state=$("$SYSTEMCTL" show -p ActiveState -p SubState -p Result "$1" 2>&1 | tr '\n' ' ') || true
    die "\`systemctl restart $1\` exited with status $status (${state% }). Last lines of its journal:"$'\n'"$(journal_tail "$1" "$((started - 5))")"
  fi
}

# workers_note_restarts <unit>...: right after a deploy, rollback or restore (re)started the workers, how often systemd has restarted
# each on its own (NRestarts: reset-failed sets it to 0, a restart by hand leaves it), for workers_check. A worker
# that exits as it starts is restarted after RestartSec (2 s), not before this reads it.
workers_note_restarts() {
  local unit n
  WORKER_RESTARTS=()
  micros WORKERS_RESTARTED_AT
  for unit in "$@"; do
    n=$("$SYSTEMCTL" show -p NRestarts --value "$unit" 2>/dev/null) || true
    WORKER_RESTARTS+=("$unit=${n:-0}")
  done
}

# What a worker logs while it retries a server it cannot reach: Celery's "consumer: Cannot connect to redis://…",
# errno 111's "Connection refused", Node's ECONNREFUSED, libpq's "could not connect to server", asyncio's "Connect call
# failed".
UNREACHABLE="cannot connect to|connection refused|ECONNREFUSED|could not connect to|connect call failed"

# The servers a worker usually reaches on its own host, by port: whose port it is, and the Debian package that brings
# it (Postgres: apphost:database.kind).
declare -A LOCAL_SERVERS=([6379]="Redis redis-server" [5672]="RabbitMQ rabbitmq-server" [11211]="memcached memcached"
  [3306]="MySQL mariadb-server" [5432]="Postgres")
readonly LOCAL_SERVERS

# local_server_hint <journal line>: when the line names a port of this host that nothing listens on, says so, with
# what usually serves it there; nothing otherwise. The port as redis-py, Celery and Node write it ("connecting to
# localhost:6379", "ECONNREFUSED 127.0.0.1:5672"), as libpq does (`connection to server at "localhost" (127.0.0.1),
# port 5432 failed`) and as Python's asyncio does (asyncpg's "Connect call failed ('127.0.0.1', 5432)").
local_server_hint() {
  local port here='(localhost|127\.0\.0\.1|::1)'
  if [[ $1 =~ (localhost|127\.0\.0\.1|\[::1\]):([0-9]{2,5}) ]]; then port=${BASH_REMATCH[2]}
  elif [[ $1 =~ \"$here\"(\ \([0-9a-f.:]+\))?,\ port\ ([0-9]{2,5})\ failed ]]; then port=${BASH_REMATCH[3]}
  elif [[ $1 =~ \(\'$here\',\ ([0-9]{2,5})\) ]]; then port=${BASH_REMATCH[2]}
  else return 0; fi
  if [ -n "$(port_listener "$port")" ]; then return 0; fi
  local server=${LOCAL_SERVERS[$port]:-}
  printf '; nothing on this host listens on port %s' "$port"
  case "$server" in
    "") ;;
    Postgres) printf ", Postgres's: set apphost:database.kind to postgres, and apphost runs it and sets DATABASE_URL" ;;
    *) printf ", %s's: add %s to apphost:host.packages (the host baseline installs and starts it)" "${server% *}" "${server#* }" ;;
  esac
  if [ -n "$server" ]; then printf ', or give the app the address of one (apphost:app.env)'; fi
}

# run_settle <service> <seconds>: a restore stopped the scheduled job's timer; a run of <service> under way (a
# oneshot is `activating` while it runs) may end by itself for up to <seconds>, then it is stopped. A stopped run
# fails (systemd: result `signal`), and with apphost:alerts its OnFailure= posts that, so the restore waits first.
run_settle() {
  local service=$1 limit=$2 waited=0
  if [ "$("$SYSTEMCTL" is-active "$service" 2>/dev/null || true)" != activating ]; then return 0; fi
  note "restore: a run of $service is under way; waiting up to ${limit}s for it to end, then it is stopped"
  while [ "$("$SYSTEMCTL" is-active "$service" 2>/dev/null || true)" = activating ] && [ "$waited" -lt "$limit" ]; do
    sleep 1
    waited=$((waited + 1))
  done
  "$SYSTEMCTL" stop "$service"
}

# workers_check <deploy|rollback|restore>: once WORKER_SETTLE_MICROS have passed since their restart (the drain's
# sleep counts), each worker that is not running, or that systemd has restarted since (it exited: a crash at start, a
# server it needs that is not there), is named with the last lines of its journal. A warning, not a failure: traffic
# is on the release (or the restored database) already, a worker's failure often lies outside it (its queue's
# server), and the unit goes on restarting (apphost:alerts reports it when systemd gives up). It never fails: it
# runs after the release is committed, or the restore is done.
workers_check() {
  local action=$1 entry unit before now state left times took line live="the release is live"
  if [ "${#WORKER_RESTARTS[@]}" -eq 0 ]; then return 0; fi
  if [ "$action" = restore ]; then live="the restored database is live"; fi
  micros now
  left=$((WORKERS_RESTARTED_AT + WORKER_SETTLE_MICROS - now))
  if [ "$left" -gt 0 ]; then printf -v left '%d.%06d' $((left / 1000000)) $((left % 1000000)); sleep "$left" || true; fi
  for entry in "${WORKER_RESTARTS[@]}"; do
    unit=${entry%=*} before=${entry##*=}
    now=$("$SYSTEMCTL" show -p NRestarts --value "$unit" 2>/dev/null) || true
    state=$("$SYSTEMCTL" is-active "$unit" 2>/dev/null) || true
    if [ "$state" = active ] && [ "${now:-0}" = "$before" ]; then
      # Running, but retrying a server it needs and cannot reach (Celery's broker, a database): a worker that does
      # nothing while it looks fine. Its journal since the restart says so.
      line=$(journal_tail "$unit" "$((WORKERS_RESTARTED_AT / 1000000))" | grep -m 1 -iE "$UNREACHABLE") || true
      if [ -n "$line" ]; then
        note "warning: the worker $unit runs, but its journal says it could not reach a server it needs: \"$line\"; $live, and while the worker retries, it does no work: check the address the app gives it (apphost:app.env), and that the server runs$(local_server_hint "$line")"
      fi
      continue
    fi
    if ! [[ $now =~ ^[0-9]+$ && $before =~ ^[0-9]+$ ]]; then now=0 before=0; fi
    times="$((now - before)) times"
    if [ "$((now - before))" = 1 ]; then times=once; fi
    seconds_since took "$WORKERS_RESTARTED_AT"
    line=$(journal_tail "$unit" "$((WORKERS_RESTARTED_AT / 1000000))" | grep -m 1 -iE "$UNREACHABLE") || true
    note "warning: the worker $unit is not running ${took}s after this $action restarted it (${state:-no state}; systemd restarted it $times since): $live, the worker keeps restarting until systemd gives up on it; once its cause is fixed, pulumi up --refresh starts it again$(local_server_hint "$line"). Last lines of its journal:"$'\n'"$(journal_tail "$unit" "$((WORKERS_RESTARTED_AT / 1000000))")"
  done
}

# release_log <id> <revision> <outcome>: one tab-separated line per attempt.
release_log() {
  local rev=${2//[$'\t\n']/ } at
  utc_time at
  printf "%s\t%s\t%s\t%s\n" "$1" "$at" "${rev:--}" "$3" >>"$RELEASE_LOG"
}

# schema_revision <fingerprint>: the revision a stack with no revision command (apphost:database.revision unset or
# "") records, so a rollback can tell a database a later migration changed (aerich, a migration script of the app's
# own): `schema:` and the first 12 hex digits of db_fingerprint's sum; nothing for no database (absent, none).
schema_revision() {
  case $1 in
    absent | none | "") ;;
    *) printf 'schema:%s' "${1:0:12}" ;;
  esac
}

# deployed_revision <id>: the revision the database was at when release <id> was last deployed (the release log's
# newest "deployed" line of it that has one), or nothing.
deployed_revision() {
  if [ ! -f "$RELEASE_LOG" ]; then return 0; fi
  awk -F'\t' -v id="$1" '$1 == id && $4 == "deployed" && $3 != "-" { rev = $3 } END { print rev }' "$RELEASE_LOG"
}

# previous_release <id>: the newest release older than <id> that served successfully and is still here.
previous_release() {
  local id
  if [ ! -f "$RELEASE_LOG" ] || [ -z "$1" ]; then return 0; fi
  scan_releases
  for id in "${SERVED_IDS[@]}"; do
    if [[ "$id" < "$1" ]]; then echo "$id"; return 0; fi
  done
}

# scan_releases: RELEASE_IDS, the releases on this host (directories named like a release id), oldest first (the C
# locale's order is the ids' time order), and SERVED_IDS, those the release log says served successfully (deployed
# or rolled back to), newest first. In bash alone: prune and rollback read them several times each.
scan_releases() {
  local dir id line i
  local -A served=()
  RELEASE_IDS=() SERVED_IDS=()
  for dir in "$RELEASES"/*/; do
    dir=${dir%/} id=${dir##*/}
    if [ ! -L "$dir" ] && [[ "$id" =~ $ID_RE ]]; then RELEASE_IDS+=("$id"); fi
  done
  if [ -f "$RELEASE_LOG" ]; then
    # A line: id, time, revision, outcome, tab-separated (release_log_add).
    while IFS= read -r line || [ -n "$line" ]; do
      id=${line%%$'\t'*}
      if [[ "$line" == *$'\t'* ]] && [[ "$id" =~ $ID_RE ]]; then
        case "${line##*$'\t'}" in deployed | rolled-back) served[$id]=1 ;; esac
      fi
    done <"$RELEASE_LOG"
  fi
  for ((i = ${#RELEASE_IDS[@]} - 1; i >= 0; i--)); do
    if [ -n "${served[${RELEASE_IDS[i]}]:-}" ]; then SERVED_IDS+=("${RELEASE_IDS[i]}"); fi
  done
}

release_ids() {
  scan_releases
  if [ "${#RELEASE_IDS[@]}" -gt 0 ]; then printf '%s\n' "${RELEASE_IDS[@]}"; fi
}

# prune_releases <keep>: keep the newest <keep> releases that served (deployed or rolled back to); a release
# that never served does not count and goes, unless it is the newest (the next `up` retries it). Never removed:
# current, the previous one, an instance's.
prune_releases() {
  local keep=$1 cur prev protected served newest="" id n=0 link base why i
  current_id cur
  prev=$(previous_release "$cur")
  protected=" $cur $prev ${OLD_DIR##*/} "
  for link in "$INSTANCES"/*; do
    if [ -L "$link" ]; then link_base base "$link"; protected+="$base "; fi
  done
  scan_releases
  served=" "
  for id in "${SERVED_IDS[@]}"; do served+="$id "; done
  if [ "${#RELEASE_IDS[@]}" -gt 0 ]; then newest=${RELEASE_IDS[${#RELEASE_IDS[@]} - 1]}; fi
  for ((i = ${#RELEASE_IDS[@]} - 1; i >= 0; i--)); do
    id=${RELEASE_IDS[i]}
    case "$served" in
      *" $id "*) n=$((n + 1)); if [ "$n" -le "$keep" ]; then continue; fi; why="apphost:releases.keep = $keep" ;;
      *) if [ "$id" = "$newest" ]; then continue; fi; why="it never served" ;;
    esac
    case "$protected" in *" $id "*) continue ;; esac
    rm -rf "${RELEASES:?}/$id"
    rm -f "${LOGS_DIR:?}/apphost-migrate-$id.log"
    note "finish: removed release $id ($why)"
  done
  for link in "$RELEASES"/*.tmp; do if [ -e "$link" ] || [ -L "$link" ]; then rm -rf "$link"; fi; done
}

# prune_venvs: remove venvs and node_modules directories no release links to.
prune_venvs() {
  local used=" " link v t
  # .venv links to a venv, node_modules/.apphost-tree to <dir>/node_modules (node_modules itself, in a release an
  # older apphost made): each names the directory under venvs/.
  for link in "$RELEASES"/*/.venv "$RELEASES"/*/node_modules "$RELEASES"/*/node_modules/.apphost-tree; do
    if [ -L "$link" ]; then t=$(readlink "$link"); used+="${t%/node_modules} "; fi
  done
  for v in "$VENVS"/*; do
    if [ ! -d "$v" ]; then continue; fi
    case "$used" in *" $v "*) ;; *) rm -rf "$v"; note "finish: removed unused venv $v" ;; esac
  done
}

# served_releases: releases still on this host that served successfully (deployed or rolled back to), newest first.
served_releases() {
  scan_releases
  if [ "${#SERVED_IDS[@]}" -gt 0 ]; then printf '%s\n' "${SERVED_IDS[@]}"; fi
}

choose_rollback_target() {
  local cur outcome
  current_id cur
  if [ -n "$ROLLBACK_TO" ]; then
    RELEASE_ID=$ROLLBACK_TO
    if [ ! -d "$RELEASES/$RELEASE_ID" ]; then die "release $RELEASE_ID is not on this host; releases here: $(release_ids | tr '\n' ' ')(of these, you can roll back to: $(served_releases | tr '\n' ' '))"; fi
    # A release whose deploy failed never served: its code may need a migration that was undone.
    if ! grep -qx "$RELEASE_ID" <<<"$(served_releases)"; then outcome=$(awk -F'\t' -v id="$RELEASE_ID" '$1 == id { o = $4 } END { print o }' "$RELEASE_LOG" 2>/dev/null || true); die "release $RELEASE_ID never served successfully (release log: ${outcome:-no entry}); releases you can roll back to: $(served_releases | tr '\n' ' ')"; fi
  else
    RELEASE_ID=$(previous_release "$cur")
    if [ -z "$RELEASE_ID" ]; then PHASE_CODE=$EXIT_NOTHING_TO_ROLL_BACK; die "nothing to roll back to: current is ${cur:-none} and no older successfully deployed release is left on this host (releases here: $(release_ids | tr '\n' ' '))"; fi
  fi
  if [ "$RUNTIME" = python ] && [ ! -x "$RELEASES/$RELEASE_ID/.venv/bin/python" ]; then die "release $RELEASE_ID has no usable .venv (never installed, or its venv was pruned); deploy it instead"; fi
  note "rollback: $RELEASE_ID will replace ${cur:-nothing}"
}

# The deploy lock: owner, pid and expiry in $LOCK; flock makes check-and-take atomic.
# lock_read: the lock's owner, pid, expiry and command into LOCKED_OWNER, LOCKED_PID, LOCKED_EXPIRES and
# LOCKED_COMMAND (each empty when the lock or its line is missing), in one read and no subshell: each phase reads it.
lock_read() {
  local line
  LOCKED_OWNER="" LOCKED_PID="" LOCKED_EXPIRES="" LOCKED_COMMAND=""
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in
      owner=*) LOCKED_OWNER=${line#*=} ;;
      pid=*) LOCKED_PID=${line#*=} ;;
      expires=*) LOCKED_EXPIRES=${line#*=} ;;
      command=*) LOCKED_COMMAND=${line#*=} ;;
    esac
  done 2>/dev/null <"$LOCK" || true
}

lock_holder_alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr "\0" " " <"/proc/$1/cmdline" 2>/dev/null | grep -q apphost-release
}

lock_describe() {
  local at
  lock_read
  if [[ $LOCKED_EXPIRES =~ ^[0-9]+$ ]]; then utc_time at "$LOCKED_EXPIRES"; else utc_time at 0; fi
  printf "%s (pid %s, %s, expires %s)" "${LOCKED_OWNER:-unknown}" "${LOCKED_PID:-?}" "$LOCKED_COMMAND" "$at"
}

lock_write() {
  # $BASHPID: the heartbeat (a subshell, same $$) may write at the same moment as the script.
  printf "owner=%s\npid=%s\nexpires=%s\ncommand=%s\n" "$LOCK_OWNER" "$$" "$((EPOCHSECONDS + LOCK_TTL_MINUTES * 60))" "$1" >"$LOCK.tmp.$BASHPID"
  mv -f "$LOCK.tmp.$BASHPID" "$LOCK"
}

# The lock owner (--owner, else <sudo user>@<host>), in characters safe to print.
owner_default() {
  if [ -z "$LOCK_OWNER" ]; then LOCK_OWNER="${SUDO_USER:-$(id -un)}@${HOSTNAME:-$(hostname)}"; fi
  local unsafe='[![:alnum:]@._ :/-]'
  LOCK_OWNER=${LOCK_OWNER//$unsafe/}
  LOCK_OWNER=${LOCK_OWNER:0:100}
}

lock_acquire() {
  local now expires pid
  LOCK_TTL_MINUTES=$1
  owner_default
  install -d -m 0755 "${LOCK%/*}"
  exec 9>>"$LOCK.flock"
  if ! flock -w 30 9; then die "could not take $LOCK.flock within 30s"; fi
  now=$EPOCHSECONDS
  if [ -f "$LOCK" ]; then
    lock_read
    expires=$LOCKED_EXPIRES pid=$LOCKED_PID
    if [ "${expires:-0}" -gt "$now" ] && lock_holder_alive "$pid"; then
      flock -u 9
      PHASE_CODE=$EXIT_LOCKED
      die "deploy lock held by $(lock_describe). Wait for that to finish; if it is stuck, kill it or clear the lock with: sudo $0 unlock"
    elif lock_holder_alive "$pid"; then
      # Expired, but its process still runs (a stuck or very long phase): never taken from a live deploy.
      flock -u 9
      PHASE_CODE=$EXIT_LOCKED
      die "deploy lock held by $(lock_describe): it expired, but its process still runs. If it is stuck, kill pid $pid, or clear the lock with: sudo $0 unlock"
    elif [ "${expires:-0}" -gt "$now" ]; then
      note "warning: taking over the deploy lock of $(lock_describe): its process is gone"
    else
      note "warning: taking over the expired deploy lock of $(lock_describe): its process is gone"
    fi
  fi
  lock_write "${MAIN_COMMAND:-deploy} $RELEASE_ID"
  LOCK_HELD=1
  # Closing the last descriptor of the open file releases the flock (no child holds fd 9 by now).
  exec 9>&-
  lock_heartbeat </dev/null >/dev/null 2>&1 3>&- &
  HEARTBEAT_PID=$!
  note "lock: taken by $LOCK_OWNER (expires in $LOCK_TTL_MINUTES min unless renewed; renewed every ${LOCK_RENEW_SECONDS}s while this runs)"
}

# lock_heartbeat: while this script lives, push the expiry out every LOCK_RENEW_SECONDS (TTL/20; a long pip
# install is progress).
# It ends with the script, even a killed one: it checks the script's pid each time.
lock_heartbeat() {
  trap - ERR EXIT INT TERM HUP PIPE
  set +e
  local tick
  # It waits in read -t on a pipe no one writes to: no sleep process, so a kill ends it at once.
  exec {tick}<> <(:)
  while ! read -r -t "$LOCK_RENEW_SECONDS" -u "$tick" && kill -0 "$$" 2>/dev/null; do
    lock_read
    if [ "$LOCKED_PID" != "$$" ]; then exit 0; fi
    lock_write "$LOCKED_COMMAND"
  done
}

# At each phase start: the lock must still be this script's (a deploy whose lock was taken stops before it
# switches anything), and its expiry moves out.
lock_refresh() {
  if [ "$LOCK_HELD" != 1 ]; then return 0; fi
  lock_read
  if [ "$LOCKED_PID" != "$$" ]; then LOCK_HELD=0; PHASE_CODE=$EXIT_LOCKED; die "the deploy lock is no longer this one's (now $(lock_describe)); stopping before phase $PHASE"; fi
  # Written at every phase start, even within the heartbeat's interval: the bench times the phases by these renames.
  lock_write "$LOCKED_COMMAND"
}

lock_release() {
  # Killed, then reaped: a job's unit ends when its last process does, and one still exiting as the job's wrapper exits keeps
  # the unit deactivating (and its name taken) until systemd notices, which under cgroup v1 in a container can take
  # long enough that the next job's start fails.
  if [ -n "${HEARTBEAT_PID:-}" ]; then kill "$HEARTBEAT_PID" 2>/dev/null || true; wait "$HEARTBEAT_PID" 2>/dev/null || true; HEARTBEAT_PID=""; fi
  if [ "$LOCK_HELD" = 1 ]; then
    lock_read
    if [ "$LOCKED_PID" = "$$" ]; then rm -f "$LOCK"; fi
  fi
  LOCK_HELD=0
}

# ---------------------------------------------------------------- detached jobs
# A deploy, prepare or rollback started with `start` runs in a transient unit of its own, job_unit <job>: stdin from
# $JOBS/<job>/in (the artifact), stdout (the result lines) to out, stderr (the progress) to err; the
# job-run wrapper records the pid and, at the end, the exit status in rc. The client only follows err.
job_field() {
  field_of "$JOBS/$1/meta" "$2"
}

# job_unit <job>: the job's unit, apphost-<id>-job@<job>.service.
job_unit() {
  printf "%s\n" "${JOB_UNIT_TEMPLATE/@./@$1.}"
}

# latest_job <var>: <var> becomes the newest job's id, or empty.
latest_job() { link_base "$1" "$JOBS/latest"; }

# job_running <job>: its wrapper still runs (pid alive, an apphost-release, no exit status yet).
job_running() {
  local pid
  pid=$(cat "$JOBS/$1/pid" 2>/dev/null) || return 1
  [ ! -f "$JOBS/$1/rc" ] && lock_holder_alive "$pid"
}

job_started() {
  # The unit started but the wrapper has not written its pid yet: wait for it (or for it to end).
  local _
  for _ in $(seq 100); do
    if [ -f "$JOBS/$1/pid" ] || [ -f "$JOBS/$1/rc" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

job_describe() {
  printf "%s %s, started by %s at %s" "$(job_field "$1" command)" "$(job_field "$1" args)" "$(job_field "$1" owner)" "$(job_field "$1" started)"
}

# prune_jobs: keep the newest 10 jobs' records; never a running one.
prune_jobs() {
  local job
  for job in $(find "$JOBS" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | grep -E "$JOB_RE" | sort -r | tail -n +11); do
    if job_running "$job"; then continue; fi
    rm -rf "${JOBS:?}/$job"
  done
}

# The mirror: every step runs in a subshell with errexit, so one failing step does not skip the others.
mirror_step() {
  local rc
  note "rollback $1: start"
  ( PHASE=$1; PHASE_CODE=$EXIT_ROLLBACK_FAILED; set -e; trap 'note "rollback $PHASE: \`$BASH_COMMAND\` failed"' ERR; "$2" )
  rc=$?
  if [ "$rc" -eq 0 ]; then note "rollback $1: ok"; else note "rollback $1 failed (status $rc)"; MIRROR_OK=0; fi
}

run_mirror() {
  MIRROR_OK=1
  note "rollback: phase $FAILED_PHASE failed; undoing release $RELEASE_ID"
  mirror_phases
  if [ "$MIRROR_OK" = 1 ]; then note "rollback: done; $(if [ -n "$OLD_DIR" ]; then echo "${OLD_DIR##*/} keeps serving on port $OLD_PORT"; else echo "no release served before this one"; fi)"; return 0; fi
  note "rollback: INCOMPLETE; look at the host (apphost-release status, journalctl -u '$UNIT_PREFIX-*')"
  return 1
}

on_exit() {
  local rc=$?
  trap - ERR
  set +e
  if [ "$rc" -ne 0 ] && [ "$DEPLOYING" = 1 ] && [ "$LOCK_HELD" = 1 ]; then
    if [ "$COMMITTED" = 1 ]; then
      note "release $RELEASE_ID is live on port $NEW_PORT; only the $FAILED_PHASE phase failed, nothing was rolled back"
    elif ! run_mirror; then
      rc=$EXIT_ROLLBACK_FAILED
    fi
  fi
  if [ "$rc" -ne 0 ] && [ "$RESTORING" = 1 ] && [ "$LOCK_HELD" = 1 ]; then
    if ! restore_recover; then rc=$EXIT_ROLLBACK_FAILED; fi
  fi
  lock_release
  exit "$rc"
}

# parse_release_args <command> <id> <requirements hash> [<artifact sha256>]: deploy's and prepare's arguments.
parse_release_args() {
  local command=$1
  if [ $# -gt 4 ]; then usage_error "$command takes <release-id> <requirements-hash> [<artifact-sha256>]"; fi
  RELEASE_ID=${2:-} REQ_HASH=${3:-} ARTIFACT_SHA256=${4:-}
  if [[ ! "$RELEASE_ID" =~ $ID_RE ]]; then usage_error "$command: \"$RELEASE_ID\" is not a release id (YYYYMMDDHHMMSS-<8 hex>)"; fi
  if [[ ! "$REQ_HASH" =~ ^[0-9a-f]{8,64}$ ]]; then usage_error "$command: \"$REQ_HASH\" is not a requirements hash"; fi
  if [ -n "$ARTIFACT_SHA256" ] && [[ ! "$ARTIFACT_SHA256" =~ ^[0-9a-f]{64}$ ]]; then usage_error "$command: \"$ARTIFACT_SHA256\" is not a sha256"; fi
}

cmd_deploy() {
  parse_release_args deploy "$@"
  DEPLOYING=1
  deploy_phases
  note "release $RELEASE_ID deployed on port $NEW_PORT"
  printf "release=%s\ncurrent=%s\nport=%s\nrevision=%s\noutcome=deployed\n" "$RELEASE_ID" "$RELEASE_ID" "$NEW_PORT" "$REVISION" >&3
}

# prepare <id> <requirements hash> [<artifact sha256>]: the deploy's first phases alone (check, upload, install),
# under the deploy lock; nothing that serves changes. Several app hosts prepare side by side before the roll, so
# each host's deploy finds its release uploaded and installed, and a dependency that fails to install fails before
# any host's database or traffic is touched. A failure leaves the release directory for the next try.
cmd_prepare() {
  local cur
  parse_release_args prepare "$@"
  prepare_phases
  note "release $RELEASE_ID prepared; $(if [ -n "$OLD_DIR" ]; then echo "${OLD_DIR##*/}"; else echo "nothing"; fi) keeps serving"
  current_id cur
  printf "release=%s\ncurrent=%s\noutcome=prepared\n" "$RELEASE_ID" "$cur" >&3
}

cmd_rollback() {
  local down cur
  ROLLBACK_TO=${1:-}
  if [ -n "$ROLLBACK_TO" ] && [[ ! "$ROLLBACK_TO" =~ $ID_RE ]]; then usage_error "rollback: \"$ROLLBACK_TO\" is not a release id"; fi
  # The target already current is nothing to do, unless a unit of it is down (what a refresh reads as drift):
  # then it is published again, as a deploy for drift is, which resets and restarts every unit.
  current_id cur
  if [ -n "$ROLLBACK_TO" ] && [ "$cur" = "$ROLLBACK_TO" ]; then
    down=$(units_down)
    if [ -z "$down" ]; then note "release $ROLLBACK_TO is already current; nothing to do"; printf "release=%s\ncurrent=%s\noutcome=unchanged\n" "$ROLLBACK_TO" "$ROLLBACK_TO" >&3; return 0; fi
    note "release $ROLLBACK_TO is current, but ${down//$'\n'/, }: publishing it again"
  fi
  # choose changes nothing: a refusal there needs no mirror (and leaves no line in the release log).
  rollback_choose_phase
  DEPLOYING=1
  rollback_phases
  printf "release=%s\ncurrent=%s\nport=%s\nrevision=%s\noutcome=rolled-back\n" "$RELEASE_ID" "$RELEASE_ID" "$NEW_PORT" "$REVISION" >&3
}

# The live release's units and their states, "<web|worker> <unit> <state>" per line: the web instance on the
# active port (none without one), then each worker. What status prints and units_down reads.
unit_states() {
  local port unit
  port=$(cat "$ACTIVE_PORT_FILE" 2>/dev/null || true)
  if [ -n "$WEB_UNIT" ] && [ -n "$port" ]; then
    unit="${WEB_UNIT%@.service}@$port.service"
    printf "web %s %s\n" "$unit" "$("$SYSTEMCTL" is-active "$unit" 2>/dev/null || true)"
  fi
  for unit in $WORKER_UNITS; do printf "worker %s %s\n" "$unit" "$("$SYSTEMCTL" is-active "$unit" 2>/dev/null || true)"; done
}

# The live release's units that are down, one "<unit> is <state>" per line: the web instance when not active, a
# worker inactive or failed (one systemd still restarts is not); and those that run files a package upgrade replaced
# (unit_replaced), one "<unit> runs <files>, replaced since it started" per line. What liveOf
# (components/remote/release.ts) reads from status as drift, which publishing the release again mends.
units_down() {
  local kind unit state files
  while read -r kind unit state; do
    if { [ "$kind" = web ] && [ "$state" != active ]; } || [ "$state" = inactive ] || [ "$state" = failed ]; then
      printf "%s is %s\n" "$unit" "${state:-unknown}"
    else
      files=$(unit_replaced "$unit")
      if [ -n "$files" ]; then printf "%s runs %s, replaced since it started\n" "$unit" "${files// /, }"; fi
    fi
  done < <(unit_states)
}

cmd_status() {
  local cur kind unit state files web="" workers=() replaced=()
  current_id cur
  printf "current=%s\n" "$cur"
  printf "active_port=%s\n" "$(cat "$ACTIVE_PORT_FILE" 2>/dev/null || true)"
  # The live web instance's unit state, and each worker's as <unit>:<state>: a host whose app was stopped by
  # hand, or given up by systemd, shows as such (a refresh sees it, and the next up publishes the release again).
  # So does a unit running files a package upgrade replaced (libssl, the interpreter), as <unit>:<file>,<file>.
  while read -r kind unit state; do
    if [ "$kind" = web ]; then web=$state; else workers+=("$unit:$state"); fi
    files=$(unit_replaced "$unit")
    if [ -n "$files" ]; then replaced+=("$unit:${files// /,}"); fi
  done < <(unit_states)
  if [ -n "$WEB_UNIT" ]; then printf "web=%s\n" "$web"; fi
  if [ -n "$WORKER_UNITS" ]; then printf "workers=%s\n" "${workers[*]}"; fi
  printf "replaced=%s\n" "${replaced[*]}"
  printf "previous=%s\n" "$(previous_release "$cur")"
  printf "releases=%s\n" "$(release_ids | tr "\n" " " | sed "s/ $//")"
  if [ -f "$LOCK" ]; then printf "lock=%s\n" "$(lock_describe)"; else printf "lock=\n"; fi
  if [ -f "$RELEASE_LOG" ]; then tail -n 10 "$RELEASE_LOG" | sed "s/^/log=/"; fi
}

cmd_backup() {
  local label=${1:-manual}
  if [[ ! "$label" =~ ^[a-z0-9][a-z0-9.-]*$ ]]; then usage_error "backup: label \"$label\" must be lowercase letters, digits, dots and dashes"; fi
  PHASE=backup PHASE_CODE=$EXIT_BACKUP
  note "phase backup: start"
  db_lock
  db_backup "$label"
  db_prune_backups
  db_unlock
  # A failed copy fails the command (and the scheduled unit), after the local backup is in place.
  if [ "$S3_COPY" = 1 ] && ! db_copy_offsite "$BACKUP_FILE"; then printf "backup=%s\n" "$BACKUP_FILE" >&3; die "the backup is on this host ($BACKUP_FILE), but its copy to S3 failed"; fi
  note "phase backup: ok"
  printf "backup=%s\n" "$BACKUP_FILE" >&3
}

# start deploy|prepare|rollback <args>: run it detached (see the header), then follow it. A job still running
# refuses a second one: follow that one first (`follow`), then start again.
cmd_start() {
  local command=${1:-} running job unit out at
  case "$command" in deploy | prepare | rollback) ;; *) usage_error "start: runs deploy, prepare or rollback, not \"$command\"" ;; esac
  owner_default
  local unsafe='[![:alnum:]:._-]'
  JOB_KEY=${JOB_KEY//$unsafe/}
  JOB_KEY=${JOB_KEY:0:100}
  ensure_dirs 0700 root "$JOBS"
  latest_job running
  # A job started a moment ago may not have written its pid yet: wait for it (or its exit status) first, or this
  # start would take it for ended and stop at the deploy lock instead of naming the job.
  if [ -n "$running" ] && job_started "$running" && job_running "$running"; then
    drain_stdin
    PHASE_CODE=$EXIT_LOCKED
    die "a job is still running on this host: $(job_describe "$running") (job $running, unit $(job_unit "$running")). Follow it with: sudo $0 follow $running"
  fi
  TZ=UTC printf -v job '%(%Y%m%dT%H%M%SZ)T-%s' -1 "$$"
  utc_time at
  mkdir -m 0700 "$JOBS/$job"
  if [ "$command" != rollback ] && [ ! -t 0 ]; then (umask 077 && cat >"$JOBS/$job/in"); else : >"$JOBS/$job/in"; fi
  printf "command=%s\nargs=%s\nowner=%s\nkey=%s\nstarted=%s\n" "$command" "${*:2}" "$LOCK_OWNER" "$JOB_KEY" "$at" >"$JOBS/$job/meta"
  atomic_link "$job" "$JOBS/latest"
  prune_jobs
  # First, so a client whose connection drops knows which job to follow again.
  printf "job_id=%s\n" "$job" >&3
  # A unit of its own: the previous job's unit may still be loaded (a process it left, not yet seen gone).
  unit=$(job_unit "$job")
  if ! out=$("$SYSTEMD_RUN" --unit="$unit" --description="apphost $command for $APP_ID (job $job)" --collect --quiet --service-type=exec \
      --property=StandardInput=file:"$JOBS/$job/in" --property=StandardOutput=file:"$JOBS/$job/out" --property=StandardError=file:"$JOBS/$job/err" \
      --property=TimeoutStopSec=15min "$0" --owner="$LOCK_OWNER" job-run "$job" "$@" 2>&1); then
    printf "%s\n" "$out" >"$JOBS/$job/err"
    printf "%s\n" 23 >"$JOBS/$job/rc"
    die "systemd-run could not start the $command as $unit: $out"
  fi
  if ! job_started "$job"; then die "job $job ($unit) did not start within 10s; see: journalctl -u $unit"; fi
  follow_job "$job" stream
}

# follow [<job>]: the job's progress on stderr (as it happens while it runs), then its result lines and
# job_* lines on stdout, and its exit status as this command's. Without <job>: the latest job, streamed only
# while it runs (a finished one prints its result lines alone).
cmd_follow() {
  local job=${1:-}
  if [ -z "$job" ]; then
    latest_job job
    if [ -z "$job" ]; then printf "job_id=\n" >&3; return 0; fi
    if job_running "$job"; then follow_job "$job" stream; else follow_job "$job" quiet; fi
  fi
  if [[ ! "$job" =~ $JOB_RE ]]; then usage_error "follow: \"$job\" is not a job id (YYYYMMDDTHHMMSSZ-<pid>)"; fi
  if [ ! -d "$JOBS/$job" ]; then die "no job $job on this host (jobs: $(find "$JOBS" -mindepth 1 -maxdepth 1 -type d -printf "%f " 2>/dev/null))"; fi
  follow_job "$job" stream
}

follow_job() {
  local job=$1 how=$2 pid rc cur
  printf "job_id=%s\njob_command=%s\njob_key=%s\njob_owner=%s\njob_started=%s\n" "$job" "$(job_field "$job" command)" "$(job_field "$job" key)" "$(job_field "$job" owner)" "$(job_field "$job" started)" >&3
  if [ "$how" = stream ]; then
    if job_running "$job"; then
      pid=$(cat "$JOBS/$job/pid")
      # Until the wrapper exits (tail checks every FOLLOW_POLL_SECONDS); tail then prints what is left. A dropped
      # connection ends only this tail.
      tail -n +1 -f -s "$FOLLOW_POLL_SECONDS" --pid="$pid" "$JOBS/$job/err" 2>/dev/null || true
    else
      cat "$JOBS/$job/err" 2>/dev/null || true
    fi
  fi
  if [ ! -f "$JOBS/$job/rc" ]; then
    if job_running "$job"; then die "job $job is still running"; fi
    PHASE_CODE=$EXIT_JOB_LOST
    die "job $job ($(job_describe "$job")) ended without an exit status: its unit was killed (OOM, systemctl kill or stop, a reboot). See: journalctl -u $(job_unit "$job"); apphost-release status"
  fi
  digits_of "$JOBS/$job/rc" rc
  cat "$JOBS/$job/out" >&3 2>/dev/null || true
  current_id cur
  printf "job_status=%s\nlive=%s\n" "${rc:-1}" "$cur" >&3
  exit "${rc:-1}"
}

# job-run <job> <command> <args> (the unit's command): runs it, then records its exit status. The wrapper
# outlives the command even when the unit is stopped: its TERM handler runs only after the command ended.
cmd_job_run() {
  local job=${1:-} rc=0
  shift
  if [[ ! "$job" =~ $JOB_RE ]] || [ ! -d "$JOBS/$job" ]; then usage_error "job-run: no job \"$job\""; fi
  trap : INT TERM HUP
  printf "%s\n" "$$" >"$JOBS/$job/pid.tmp"
  mv -f "$JOBS/$job/pid.tmp" "$JOBS/$job/pid"
  APPHOST_OUTPUT="$JOBS/$job/err" "$0" --owner="$LOCK_OWNER" "$@" || rc=$?
  rm -f "$JOBS/$job/in"
  printf "%s\n" "$rc" >"$JOBS/$job/rc.tmp"
  mv -f "$JOBS/$job/rc.tmp" "$JOBS/$job/rc"
  exit "$rc"
}

# At boot (apphost-<id>-upstream.service): the upstream port leads to the port in active-port again.
cmd_upstream() {
  local port=""
  if [ -f "$ACTIVE_PORT_FILE" ]; then digits_of "$ACTIVE_PORT_FILE" port; fi
  if [ -z "$port" ]; then note "upstream: no active port yet (no release served); nothing to load"; return 0; fi
  switch_upstream "$port"
}

# workers stop|start: this host's workers (WORKER_UNITS) stopped, or started again, under the deploy lock (so never
# in the middle of a deploy's restart of them). With several app hosts a restore on the first holds the others'
# workers for its length (scripts/restore.ts): they would go on writing to the database being replaced.
cmd_workers() {
  local action=${1:-}
  case "$action" in stop | start) ;; *) usage_error "workers: stop or start, not \"$action\"" ;; esac
  if [ $# -gt 1 ]; then usage_error "workers $action takes no more arguments"; fi
  lock_acquire "$LOCK_TTL_MINUTES"
  if [ -n "$WORKER_UNITS" ]; then
    note "workers: $action $WORKER_UNITS"
    # shellcheck disable=SC2086 # a list of unit names, one word each
    "$SYSTEMCTL" "$action" $WORKER_UNITS
  fi
  printf "workers=%s\n" "$WORKER_UNITS" >&3
}

cmd_unlock() {
  if [ ! -f "$LOCK" ]; then note "no deploy lock at $LOCK"; return 0; fi
  exec 9>>"$LOCK.flock"
  flock -w 30 9
  lock_read
  if lock_holder_alive "$LOCKED_PID"; then note "warning: the lock holder (pid $LOCKED_PID) is still running; it may fail when it next touches the host"; fi
  note "removing the deploy lock of $(lock_describe)"
  rm -f "$LOCK"
  flock -u 9
}

main() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --owner) if [ $# -lt 2 ]; then usage_error "--owner needs a name"; fi; LOCK_OWNER=$2; shift 2 ;;
      --owner=*) LOCK_OWNER=${1#--owner=}; shift ;;
      --key) if [ $# -lt 2 ]; then usage_error "--key needs a value"; fi; JOB_KEY=$2; shift 2 ;;
      --key=*) JOB_KEY=${1#--key=}; shift ;;
      -h | --help) usage_error "help" ;;
      -*) usage_error "unknown option $1" ;;
      *) break ;;
    esac
  done
  MAIN_COMMAND=${1:-}
  shift || true
  if [ "$REQUIRE_ROOT" = 1 ] && [ "$MAIN_COMMAND" != status ] && [ "$(id -u)" -ne 0 ]; then printf "apphost: %s must run as root: sudo %s %s\n" "$MAIN_COMMAND" "$0" "$MAIN_COMMAND" >&2; exit "$EXIT_USAGE"; fi
  case "$MAIN_COMMAND" in
    status) cmd_status "$@" ;;
    upstream) cmd_upstream ;;
    job-run) cmd_job_run "$@" ;;
    deploy | prepare | rollback | backup | restore | workers | unlock | start | follow)
      # stdout carries only the result lines (fd 3); everything a command prints goes to stderr.
      exec 3>&1 1>&2
      "cmd_$MAIN_COMMAND" "$@" ;;
    "") usage_error "missing command" ;;
    *) usage_error "unknown command $MAIN_COMMAND" ;;
  esac
}

trap 'on_error $? "$BASH_COMMAND"' ERR
trap on_exit EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP
trap 'on_signal PIPE' PIPE
main "$@"
