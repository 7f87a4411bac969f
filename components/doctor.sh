# shellcheck shell=bash
# The static part of the doctor script (see components/doctor.ts): the checks, one function each, and
# the runner. The renderer writes the header (the stack's readonly values, DOCTOR_TIMEOUT, and
# DOCTOR_VALUES, the names of the values the checks read), the functions made for the stack
# (pg_env_from_url for postgres), this file from the line after the preamble's last line, then one
# `apphost_doctor_run <name> <command> [<arg>...]` line per check and `exit "$failed"`.
#
# A check runs in its own bash with set -euo pipefail and stdin closed. It exits 0 for a pass (a last
# line "info: <text>" is shown with it), 1 for a fail and 3 for a skip, with the detail or reason as
# the last line it prints. It reads the header's values and its arguments.
#
# For shellcheck reading this file alone; the rendered script is checked whole, without these:
#   SC2034: apphost_doctor_run sets `failed`, which the rendered script's last line reads.
# shellcheck disable=SC2034
# ---- end of the preamble (not rendered) ----

# fail <detail>: the check fails.
# shellcheck disable=SC2317 # called by the checks, which apphost_doctor_run calls
fail() {
  printf '%s\n' "$*"
  exit 1
}

# skip <reason>: the check does not apply to this stack.
# shellcheck disable=SC2317 # called by the checks, which apphost_doctor_run calls
skip() {
  printf '%s\n' "$*"
  exit 3
}

# fail_any [<problem>...]: the check fails with every problem, joined by "; ", when there is one.
# shellcheck disable=SC2317 # called by the checks, which apphost_doctor_run calls
fail_any() {
  local detail
  if (($# > 0)); then
    printf -v detail '%s; ' "$@"
    fail "${detail%; }"
  fi
}

# units: every unit in UNITS is active (PROCESS_UNITS: those of them a release starts), and so is each
# template of WEB_TEMPLATES on the port in
# ACTIVE_PORT_FILE; with UPSTREAM_TABLE, the stack's nftables rule leads UPSTREAM_PORT (the port the
# proxy connects to) to that port, and its guard resets connections to the two web ports (UPSTREAM_PORT
# - 2 and - 1) from beyond loopback (UPSTREAM_UNIT loads both). Without the guard, the instance must
# listen on loopback only (ss). No process a release starts (a worker, the web instance) runs a file a package
# upgrade replaced since it started (unit_replaced): the upgrade applies to it only once it restarts.
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_units() {
  local units=("${UNITS[@]}") port="" template unit state rules guard="" open bad=() processes_down="" stale=() files=() replaced=() shown
  if ((${#WEB_TEMPLATES[@]} > 0)); then
    port=$(cat -- "$ACTIVE_PORT_FILE" 2>/dev/null) || fail "cannot read the active web port from $ACTIVE_PORT_FILE"
    [[ $port =~ ^[0-9]+$ ]] || fail "active web port in $ACTIVE_PORT_FILE is not a number: $port"
    for template in "${WEB_TEMPLATES[@]}"; do units+=("${template%.service}$port.service"); done
  fi
  command -v systemctl >/dev/null || fail "systemctl not found"
  for unit in "${units[@]}"; do
    state=$(systemctl is-active -- "$unit" 2>/dev/null) || true
    if [[ " ${PROCESS_UNITS[*]} " != *" $unit "* && ! (-n $port && $unit == *"@$port.service") ]]; then
      [[ $state == active ]] || bad+=("$unit is ${state:-unknown}")
    elif [[ $state != active ]]; then
      bad+=("$unit is ${state:-unknown}")
      processes_down=1
    else
      read -ra replaced <<<"$(unit_replaced "$unit")"
      if ((${#replaced[@]} > 0)); then stale+=("$unit") files+=("${replaced[@]}"); fi
    fi
  done
  # One line for them all: a libc upgrade replaces half a dozen files under every process.
  if ((${#stale[@]} > 0)); then
    mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)
    shown=$(printf '%s, ' "${files[@]:0:3}")
    shown=${shown%, }
    if ((${#files[@]} > 3)); then shown+=" and $((${#files[@]} - 3)) more"; fi
    bad+=("a package upgrade replaced files these still run ($shown): $(printf '%s, ' "${stale[@]}" | sed 's/, $//'); pulumi up --refresh publishes the live release again (a new web instance behind the health gate, the workers restarted)")
  fi
  if [[ -n $UPSTREAM_TABLE ]]; then
    if ! command -v nft >/dev/null; then
      bad+=("nft not found (apt-get install nftables): cannot check where the upstream port $UPSTREAM_PORT leads")
    elif ! rules=$(nft list table ip "$UPSTREAM_TABLE" 2>&1); then
      bad+=("no nftables table ip $UPSTREAM_TABLE: the upstream port $UPSTREAM_PORT leads nowhere (systemctl restart $UPSTREAM_UNIT)")
    elif [[ $rules != *"tcp dport $UPSTREAM_PORT dnat to 127.0.0.1:$port"* ]]; then
      bad+=("the upstream port $UPSTREAM_PORT does not lead to the active port $port (systemctl restart $UPSTREAM_UNIT)")
    fi
    if command -v nft >/dev/null && rules=$(nft list table inet "$UPSTREAM_TABLE" 2>/dev/null) &&
      [[ $rules == *"iifname != \"lo\" tcp dport { $((UPSTREAM_PORT - 2)), $((UPSTREAM_PORT - 1)) } reject"* ]]; then
      guard=1
    fi
  fi
  # The proxy reaches the instance on 127.0.0.1; an address beyond loopback serves it past the proxy,
  # unless the guard resets those connections.
  if [[ -n $port ]] && [[ -z $guard ]] && command -v ss >/dev/null; then
    open=$(ss -Hltn "sport = :$port" 2>/dev/null | awk '$4 !~ /^(127\.[0-9.]+|\[::1\]|\[::ffff:127\.[0-9.]+\]):[0-9]+$/ { print $4 }' | sort -u | paste -sd ' ') || true
    if [[ -n $open ]]; then
      bad+=("the web instance listens on $open, beyond 127.0.0.1${UPSTREAM_TABLE:+, and the guard that resets connections to it from elsewhere (nftables table inet $UPSTREAM_TABLE) is not loaded}: it answers past the proxy (no TLS, no maintenance page) wherever the host's firewall lets port $port in; ${UPSTREAM_TABLE:+systemctl restart $UPSTREAM_UNIT, or }bind it to 127.0.0.1 (--host 127.0.0.1, --bind 127.0.0.1:\$PORT)")
    fi
  fi
  # A process a release starts: one given up by systemd stays down until something starts it again.
  if [[ $processes_down ]]; then
    bad+=("once the cause is fixed (npm run logs shows the journal), pulumi up --refresh publishes the live release again, which starts them")
  fi
  fail_any "${bad[@]}"
}

# Where the checks reach the proxy on this host: 127.0.0.1, or, when HEALTH_HOST is an IPv4
# address (a stack without DNS), that address itself. A TLS client sends no name (SNI) for an
# address, and Caddy then picks the certificate by the address the connection reached.
# shellcheck disable=SC2317 # called by the checks, which apphost_doctor_run calls
proxy_address() {
  if [[ $HEALTH_HOST =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then echo "$HEALTH_HOST"; else echo 127.0.0.1; fi
}

# health: HEALTH_URL answers 2xx through the proxy on this host: curl resolves HEALTH_HOST to
# proxy_address on HEALTH_PORT, waits HEALTH_MAX_TIME seconds at most, and trusts the certificate
# as HEALTH_TRUST says (-k, --cacert FILE, or nothing: the system store).
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_health() {
  local out code at
  at=$(proxy_address)
  out=$(curl --silent --output /dev/null --write-out '%{http_code} %{errormsg}' --max-time "$HEALTH_MAX_TIME" \
    --resolve "$HEALTH_HOST:$HEALTH_PORT:$at" "${HEALTH_TRUST[@]}" "$HEALTH_URL" 2>/dev/null) || true
  code=${out%% *}
  if [[ $code == 000 || -z $code ]]; then
    fail "no answer from $HEALTH_URL via $at:$HEALTH_PORT: ${out#* }"
  fi
  [[ $code == 2?? ]] || fail "HTTP $code from $HEALTH_URL"
}

# maintenance: no maintenance switched on by hand (MAINTENANCE_MANUAL, which says who and when; MAINTENANCE_OFF
# ends it). The stack's own (apphost:app.maintenance, MAINTENANCE_CONFIG) passes, said so.
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_maintenance() {
  local said=""
  if [[ -e $MAINTENANCE_MANUAL ]]; then
    said=$(head -n 1 -- "$MAINTENANCE_MANUAL" 2>/dev/null | tr -cd '[:print:]' | cut -c1-100) || true
    fail "on, switched by hand (${said:-$MAINTENANCE_MANUAL}): every request but the health path gets the maintenance page; $MAINTENANCE_OFF ends it"
  fi
  if [[ -e $MAINTENANCE_CONFIG ]]; then
    printf 'info: on, as apphost:app.maintenance says (every request but the health path gets the maintenance page)\n'
  fi
}

# tls-certificate: the certificate served for HEALTH_HOST on proxy_address:HEALTH_PORT covers that
# name (or address) and stays valid for CERT_MIN_SECONDS more (CERT_MIN in words).
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_tls_certificate() {
  local at endpoint served pem end match sni=(-servername "$HEALTH_HOST") covers=(-checkhost "$HEALTH_HOST")
  at=$(proxy_address)
  endpoint=$at:$HEALTH_PORT
  if [[ $at == "$HEALTH_HOST" ]]; then sni=(-noservername) covers=(-checkip "$HEALTH_HOST"); fi
  command -v openssl >/dev/null || fail "openssl is not installed"
  served=$(timeout 15 openssl s_client -connect "$endpoint" "${sni[@]}" </dev/null 2>&1) || true
  pem=$(openssl x509 <<<"$served" 2>/dev/null) || fail "no certificate served on $endpoint for $HEALTH_HOST"
  end=$(openssl x509 -noout -enddate <<<"$pem")
  end=${end#notAfter=}
  openssl x509 -noout -checkend "$CERT_MIN_SECONDS" <<<"$pem" >/dev/null ||
    fail "certificate for $HEALTH_HOST expires $end, less than $CERT_MIN from now"
  match=$(openssl x509 -noout "${covers[@]}" <<<"$pem")
  [[ $match == *"does match"* ]] || fail "certificate served on $endpoint does not cover $HEALTH_HOST"
}

# backup: the newest file in BACKUP_DIR matching BACKUP_PATTERN (dot-files and SQLite side files
# aside) is not empty and at most BACKUP_MAX_AGE seconds old; with BACKUP_SQLITE=1 it passes
# PRAGMA integrity_check (plain, .gz or .zst). With BACKUP_SERVICE, that unit's last run did not
# fail; with BACKUP_START_UNIT, a missing first backup says how to take it. With no backup yet and a
# BACKUP_RELEASE_LOG whose oldest entry (the first deploy) is younger than BACKUP_MAX_AGE, the
# check is skipped: a first deploy takes none (there was no database before it), and the schedule
# is not late yet.
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_backup() {
  local newest hint="" stamp file age uri result unpack
  if [[ -n $BACKUP_SERVICE ]] && [[ $(systemctl is-failed -- "$BACKUP_SERVICE" 2>/dev/null) == failed ]]; then
    fail "the last run of $BACKUP_SERVICE failed (with apphost:backups.s3, often the copy to S3): journalctl -u $BACKUP_SERVICE"
  fi
  [[ -d $BACKUP_DIR ]] || fail "backup directory $BACKUP_DIR does not exist"
  # SQLite side files (-wal, -shm, -journal) are not backups, whoever left them there.
  newest=$(find "$BACKUP_DIR" -maxdepth 1 -type f -name "$BACKUP_PATTERN" ! -name '.*' ! -name '*-wal' ! -name '*-shm' ! -name '*-journal' -printf '%T@ %p\n' | sort -n | tail -n 1)
  if [[ -n $BACKUP_START_UNIT ]]; then
    hint="; take the first one now: sudo systemctl start $BACKUP_START_UNIT (apphost:backups.schedule takes the next ones)"
  fi
  if [[ -z $newest ]]; then
    local first since
    first=$(head -n 1 -- "$BACKUP_RELEASE_LOG" 2>/dev/null | cut -f 2) || first=""
    since=$(date -d "$first" +%s 2>/dev/null) || since=""
    if [[ -n $first && -n $since ]] && (($(date +%s) - since <= BACKUP_MAX_AGE)); then
      skip "no backup in $BACKUP_DIR yet, and none is due: the stack was first deployed at $first, and the schedule takes one within $((BACKUP_MAX_AGE / 3600))h of that$hint"
    fi
    fail "no backup in $BACKUP_DIR yet$hint"
  fi
  stamp=${newest%% *}
  file=${newest#* }
  age=$(($(date +%s) - ${stamp%.*}))
  ((age <= BACKUP_MAX_AGE)) ||
    fail "newest backup $file is $((age / 3600))h old ($age s), older than the $((BACKUP_MAX_AGE / 3600))h ($BACKUP_MAX_AGE s) the schedule allows"
  [[ -s $file ]] || fail "newest backup $file is empty"
  [[ $BACKUP_SQLITE == 1 ]] || return 0
  command -v sqlite3 >/dev/null || fail "sqlite3 is not installed; cannot run PRAGMA integrity_check on $file"
  # db is global: the EXIT trap removes the decompressed copy after this function has returned.
  db=$file
  case $file in
    *.gz | *.zst)
      db=$(mktemp)
      trap 'rm -f "$db"' EXIT
      if [[ $file == *.gz ]]; then unpack=(gzip -dc); else unpack=(zstd -q -dc); fi
      "${unpack[@]}" -- "$file" >"$db" 2>/dev/null || fail "cannot decompress $file"
      ;;
  esac
  # immutable=1: no locks, and no -wal/-shm next to the backup (a WAL-mode copy would get both, even read-only).
  uri=${db//%/%25}
  uri=${uri//\?/%3f}
  uri=${uri//#/%23}
  result=$(sqlite3 -readonly "file:$uri?immutable=1" 'PRAGMA integrity_check;' 2>&1) ||
    fail "integrity_check on $file failed: $(head -n 1 <<<"$result")"
  [[ $result == ok ]] || fail "integrity_check on $file: $(head -n 1 <<<"$result")"
}

# database-permissions (SQLite): DB_FILE is owned by DB_OWNER with mode 0640 or 0600, its directory
# DB_DIR by DB_OWNER with mode 0750, and any -wal, -shm or -journal file by DB_OWNER.
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_sqlite_permissions() {
  local file_owner file_mode dir_owner dir_mode side side_owner bad=()
  [[ -f $DB_FILE ]] || fail "$DB_FILE does not exist"
  read -r file_owner file_mode < <(stat -c '%U %a' -- "$DB_FILE")
  [[ $file_owner == "$DB_OWNER" ]] || bad+=("$DB_FILE is owned by $file_owner, not $DB_OWNER")
  [[ $file_mode == 640 || $file_mode == 600 ]] ||
    bad+=("$DB_FILE has mode 0$file_mode, not 0640 or 0600 (the next release tightens it; now: sudo chmod g-w,o-rwx $DB_FILE)")
  read -r dir_owner dir_mode < <(stat -c '%U %a' -- "$DB_DIR")
  [[ $dir_owner == "$DB_OWNER" ]] || bad+=("$DB_DIR is owned by $dir_owner, not $DB_OWNER")
  [[ $dir_mode == 750 ]] || bad+=("$DB_DIR has mode 0$dir_mode, not 0750")
  # A sqlite3 shell run as root leaves root-owned side files the app then cannot write.
  for side in "$DB_FILE-wal" "$DB_FILE-shm" "$DB_FILE-journal"; do
    [[ -e $side ]] || continue
    side_owner=$(stat -c '%U' -- "$side")
    [[ $side_owner == "$DB_OWNER" ]] || bad+=("$side is owned by $side_owner, not $DB_OWNER")
  done
  fail_any "${bad[@]}"
}

# database-permissions (Postgres): the app's role connects with DATABASE_URL from PG_ENV_FILE, as the
# app does (over TCP with its password, in PGPASSWORD, never in argv: pg_env_from_url, made for the
# stack); with PG_ON_HOST=1, PUBLIC may not connect to database PG_NAME.
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_postgres() {
  local who public
  [[ -f $PG_ENV_FILE ]] || fail "$PG_ENV_FILE does not exist"
  pg_env_from_url
  if ! who=$(PGCONNECT_TIMEOUT=5 psql -X -At -c 'select current_user' 2>&1); then
    fail "the app's role $PGUSER cannot connect to $PGDATABASE on $PGHOST:$PGPORT: $who"
  fi
  [[ $PG_ON_HOST == 1 ]] || return 0
  unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE
  public=$(runuser -u postgres -- psql -X -At -d "$PG_NAME" -c "select case when datacl is null then 1 else (select count(*) from aclexplode(datacl) a where a.grantee = 0 and a.privilege_type = 'CONNECT') end from pg_database where datname = current_database()" 2>&1) || fail "cannot read the privileges of $PG_NAME: $public"
  [[ $public == 0 ]] || fail "every role may connect to $PG_NAME (PUBLIC has CONNECT); revoke it: runuser -u postgres -- psql -c 'REVOKE CONNECT ON DATABASE $PG_NAME FROM PUBLIC'"
}

# disk: each of DISK_PATHS has DISK_MIN_FREE percent or more of its space available.
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_disk() {
  local path line size avail free bad=()
  for path in "${DISK_PATHS[@]}"; do
    if ! line=$(df -Pk -- "$path" 2>/dev/null | awk 'NR == 2 { print $2, $4 }') || [[ -z $line ]]; then
      bad+=("cannot read the free space of $path")
      continue
    fi
    read -r size avail <<<"$line"
    free=$((avail * 100 / size))
    ((free >= DISK_MIN_FREE)) || bad+=("$path has $free% free ($((avail / 1024)) MiB), below $DISK_MIN_FREE%")
  done
  fail_any "${bad[@]}"
}

# memory: MemAvailable is MEMORY_MIN_AVAILABLE percent or more of MemTotal, read from MEMINFO.
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_memory() {
  local total avail pct
  total=$(awk '$1 == "MemTotal:" { print $2 }' "$MEMINFO" 2>/dev/null) || true
  avail=$(awk '$1 == "MemAvailable:" { print $2 }' "$MEMINFO" 2>/dev/null) || true
  [[ $total =~ ^[1-9][0-9]*$ && $avail =~ ^[0-9]+$ ]] || fail "cannot read MemTotal and MemAvailable from $MEMINFO"
  pct=$((avail * 100 / total))
  ((pct >= MEMORY_MIN_AVAILABLE)) ||
    fail "MemAvailable is $pct% of MemTotal ($((avail / 1024)) of $((total / 1024)) MiB), below $MEMORY_MIN_AVAILABLE%"
}

# release: the symlink RELEASE_CURRENT points to an existing release named RELEASE_EXPECTED. With
# RELEASE_USER, that user finds no SQLite database written inside the release since its upload
# (.apphost-release), following no link: one the app opened lazily, on a first request, or one of a
# release deployed before apphost refused them; the next release would not see its data
# (stray_databases: the deploy's own search, rendered with the check).
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_release() {
  local target live stray
  target=$(readlink -- "$RELEASE_CURRENT") || fail "$RELEASE_CURRENT is not a symlink"
  live=$(basename -- "$target")
  [[ $live == "$RELEASE_EXPECTED" ]] || fail "live release is $live, expected $RELEASE_EXPECTED"
  [[ -d $RELEASE_CURRENT/ ]] || fail "$RELEASE_CURRENT points to $target, which does not exist"
  [[ -n $RELEASE_USER && -f $RELEASE_CURRENT/.apphost-release ]] || return 0
  stray=$(stray_databases "$RELEASE_CURRENT" -newer "$RELEASE_CURRENT/.apphost-release")
  [[ -z $stray ]] ||
    fail "release $live holds a SQLite database the app wrote inside it: ${stray//$'\n'/, }; the next release is a new directory and would not see its data. Move it where DATABASE_URL says, or under data/ (apphost:database.sqliteFile), and have the app open it there"
}

# schedule-<job> (check_schedule <job> <service> <timer>): the job's timer is active and its last
# run, if any, succeeded. A pass shows the last result and the next run, or that a run is going on
# (systemd keeps no last result while it runs).
# shellcheck disable=SC2317 # called through apphost_doctor_run
check_schedule() {
  local job=$1 service=$2 timer=$3 state next result="" status="" ended="" running="" started="" key value
  state=$(systemctl is-active -- "$timer" 2>/dev/null) || true
  next=$(systemctl show -p NextElapseUSecRealtime --value -- "$timer" 2>/dev/null) || true
  [[ $state == active ]] || fail "timer $timer is ${state:-unknown}: the job does not run (systemctl enable --now $timer)"
  # The service's state and last run in one read: a run that starts or ends between separate reads left
  # "not run yet" (its exit already reset, its state already inactive again).
  while IFS='=' read -r key value; do
    case $key in
      ActiveState) running=$value ;;
      Result) result=$value ;;
      ExecMainStatus) status=$value ;;
      ExecMainStartTimestamp) started=$value ;;
      ExecMainExitTimestamp) ended=$value ;;
    esac
  done < <(systemctl show -p ActiveState -p Result -p ExecMainStatus -p ExecMainStartTimestamp -p ExecMainExitTimestamp -- "$service" 2>/dev/null || true)
  # While a run goes on, systemd has reset the last run's exit and the timer's next elapse.
  if [[ $running == activating || $running == active || $running == deactivating ]]; then
    printf 'info: running now (started %s); its result shows once it ends\n' "${started:-just now}"
    return 0
  fi
  if [[ -z $ended ]]; then
    printf 'info: not run yet; next run %s\n' "${next:-unknown}"
    return 0
  fi
  [[ $result == success ]] || fail "last run failed ($ended): result $result, exit status $status; see npm run logs -- --process $job"
  printf 'info: last run %s: success; next run %s\n' "$ended" "${next:-unknown}"
}

# apphost_doctor_run <name> <command> [<arg>...]: runs one check in its own bash, with stdin closed
# and DOCTOR_TIMEOUT seconds at most (then timeout stops its whole process group). That bash gets the
# values named in DOCTOR_VALUES and every function of this script, as text. Prints the result line;
# a failure sets failed=1.
apphost_doctor_run() {
  local name=$1 lib out rc detail
  shift
  lib=$(
    if ((${#DOCTOR_VALUES[@]} > 0)); then declare -p "${DOCTOR_VALUES[@]}"; fi
    declare -f
  )
  out=$(timeout "$DOCTOR_TIMEOUT" bash -c "$lib"$'\nset -euo pipefail\n"$@"' apphost-doctor "$@" </dev/null 2>&1)
  rc=$?
  detail=$(tr -d '\r' <<<"$out" | awk 'NF { line = $0 } END { print line }')
  detail=${detail:0:400}
  case $rc in
    0) if [[ $detail == "info: "* ]]; then printf 'PASS %s: %s\n' "$name" "${detail#info: }"; else printf 'PASS %s\n' "$name"; fi ;;
    3) printf 'SKIP %s: %s\n' "$name" "${detail:-skipped}" ;;
    124) printf 'FAIL %s: timed out after %ss\n' "$name" "$DOCTOR_TIMEOUT" && failed=1 ;;
    *) printf 'FAIL %s: %s\n' "$name" "${detail:-exit status $rc}" && failed=1 ;;
  esac
}
