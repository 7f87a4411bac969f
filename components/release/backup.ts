/**
 * Database backup and restore as data: the shell functions that
 * `apphost-release` embeds (and the standalone scripts built from them for the
 * doctor check and ad-hoc use). Pure functions of the typed config.
 *
 * Database stance: rolling code back never silently rolls the database back.
 * The only automatic restore is the deploy's own failure path: a release whose
 * deploy fails after its migration changed the schema or the revision gets the
 * pre-migration backup back (see phases.ts). Everything else is explicit:
 * `apphost-release restore <file>`, which first backs up what it replaces.
 *
 * SQLite is copied and restored through SQLite itself (`.backup`/`.restore`,
 * the online backup API), never with `cp`: that is consistent while the live
 * release keeps reading and writing, includes committed pages still in the WAL,
 * and a restore is seen at once by the running processes instead of leaving
 * them on an unlinked inode.
 */
import { isPostgres, isRemotePostgres } from "../config/defaults";
import type { BackupsConfig, DatabaseConfig } from "../config/types";
import type { HostLayout } from "../paths";
import { pgEnvFromUrlLines } from "../render/postgres";
import { assertSafe, SAFE, shellQuote as q } from "../shell";
import { RELEASE_ID_SHAPE } from "./id";

/**
 * Commands the release script calls that tests may replace (the renderer bakes
 * them into the script text, so a production render contains exactly the
 * defaults; nothing is read from the environment at run time).
 */
export interface HostTools {
  /** @default "systemctl" */
  systemctl: string;
  /** @default "journalctl" */
  journalctl: string;
  /** Starts a deploy or rollback as a transient unit (`apphost-release start`). @default "systemd-run" */
  systemdRun: string;
  /** Called as `<runuser> -u <user> -- <argv...>`. @default "runuser" */
  runuser: string;
  /** @default "nginx" */
  nginx: string;
  /** Called as `<nft> -f -` with the stack's ruleset on stdin. @default "nft" */
  nft: string;
  /** The AWS CLI, for apphost:backups.s3. @default "aws" */
  aws: string;
  /** Called as `<ss> -Hltnp "sport = :<port>"`: who listens on a web port the health gate polls. @default "ss" */
  ss: string;
  /** Where `<pid>/cgroup` names a listener's systemd unit. @default "/proc" */
  proc: string;
  /** A C compiler, looked up when an app command fails in the install phase: without one, a dependency that builds from source cannot. @default "cc" */
  cc: string;
  /** Gives the proxy's user read access to a directory apphost:app.sharedUrls serves (POSIX ACLs). @default "setfacl" */
  setfacl: string;
  /** Called as `<getfacl> -cp -- <dir>`: whether that directory has the proxy's default entry already. @default "getfacl" */
  getfacl: string;
  /** Refuse to run unless uid 0. @default true */
  requireRoot: boolean;
}

export const PRODUCTION_TOOLS: HostTools = {
  systemctl: "systemctl",
  journalctl: "journalctl",
  systemdRun: "systemd-run",
  runuser: "runuser",
  nginx: "nginx",
  nft: "nft",
  aws: "aws",
  ss: "ss",
  proc: "/proc",
  cc: "cc",
  setfacl: "setfacl",
  getfacl: "getfacl",
  requireRoot: true,
};

/** Where a stack's backups are copied off the host (`apphost:backups.s3`): `s3://<bucket>/<prefix><file>`. */
export interface S3Target {
  bucket: string;
  region: string;
  /** `<app>/<stack>/` */
  prefix: string;
}

export interface BackupInput {
  layout: HostLayout;
  database: DatabaseConfig;
  backups: Pick<BackupsConfig, "keep">;
  /** Copy each new backup here (apphost:backups.s3); absent: backups stay on the host only */
  s3?: S3Target;
  /** Test hooks; omit in production */
  tools?: Partial<HostTools>;
}

/** Seconds SQLite waits for a lock held by the live release before giving up. */
export const SQLITE_BUSY_TIMEOUT_MS = 30000;

/** Paths are baked into shell and SQLite dot-commands unquoted; refuse anything that would need quoting. */
export function assertSafePath(what: string, p: string): string {
  assertSafe("host path", [[what, p, SAFE.hostPath]]);
  return p;
}

export function toolsOf(tools?: Partial<HostTools>): HostTools {
  return { ...PRODUCTION_TOOLS, ...tools };
}

/** `<layout.data>/<sqliteFile>` */
export function sqlitePath(layout: HostLayout, database: Pick<DatabaseConfig, "sqliteFile">): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(database.sqliteFile)) {
    throw new Error(
      `apphost:database.sqliteFile "${database.sqliteFile}" must be a plain file name (letters, digits, _.-)`,
    );
  }
  return assertSafePath("database path", `${layout.data}/${database.sqliteFile}`);
}

/** Backup file names are `<stem>-<UTC stamp to the millisecond>-<label>.<ext>`, so a name sort is a time sort. */
export function backupNaming(database: DatabaseConfig): { stem: string; ext: string } {
  if (isPostgres(database.kind)) {
    if (!/^[a-z_][a-z0-9_]*$/.test(database.postgresName)) {
      throw new Error(
        `apphost:database.postgresName "${database.postgresName}" must be lowercase letters, digits and _`,
      );
    }
    return { stem: database.postgresName, ext: "pgdump" };
  }
  return { stem: database.sqliteFile.replace(/\.[^.]*$/, "") || "db", ext: "db" };
}

// ------------------------------------------------------------ single commands

/** Online copy of a live SQLite database. */
export function sqliteBackupCommand(db: string, target: string): string {
  return `sqlite3 -bail -cmd '.timeout ${SQLITE_BUSY_TIMEOUT_MS}' ${db} ".backup '${target}'"`;
}

/** Online restore of `file` into the live SQLite database `db`. */
export function sqliteRestoreCommand(db: string, file: string): string {
  return `sqlite3 -bail -cmd '.timeout ${SQLITE_BUSY_TIMEOUT_MS}' ${db} ".restore '${file}'"`;
}

/** Prints `ok` when the database file is sound. */
export function sqliteIntegrityCommand(file: string): string {
  return `sqlite3 -bail -cmd '.timeout ${SQLITE_BUSY_TIMEOUT_MS}' ${file} 'PRAGMA integrity_check;'`;
}

/** Schema and user_version: what a migration changes, and what the live release's own writes do not. */
export function sqliteSchemaCommand(db: string): string {
  return (
    `sqlite3 -bail -cmd '.timeout ${SQLITE_BUSY_TIMEOUT_MS}' ${db} ` +
    `'PRAGMA user_version; SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name;'`
  );
}

export function pgDumpCommand(tools: HostTools, name: string): string {
  return `${tools.runuser} -u postgres -- pg_dump --format=custom --no-owner --dbname=${name}`;
}

/**
 * Restores `file` into the stack's database exactly, in one transaction:
 * everything the stack's role owns is dropped (tables, sequences, schemas and
 * types a failed migration created included), then the dump is replayed as
 * that role. `pg_restore --clean` would only drop what the dump knows and
 * trip over what depends on the rest. Transactional DDL: the live release's
 * queries wait on the locks for the moment it takes, and see either the old
 * database or the restored one, never a half. COMMIT is only sent once
 * pg_restore has read the whole dump: a dump that breaks half way leaves the
 * transaction open when psql's input ends, and Postgres rolls it back.
 */
export function pgRestoreCommand(tools: HostTools, name: string, file: string): string {
  return (
    `{ printf 'BEGIN;\\nDROP OWNED BY %s CASCADE;\\n' ${name}; ${restoreSql(file, name)} && printf 'COMMIT;\\n'; } | ` +
    `${tools.runuser} -u postgres -- psql -X -q -v ON_ERROR_STOP=1 --dbname=${name}`
  );
}

/**
 * The dump as SQL, without its COMMENT ON EXTENSION entries: only an extension's owner may set its comment, and
 * one the postgres superuser created (apphost:database.extensions, BookWyrm's bloom) is not the role's, so the
 * restore would fail on it ("must be owner of extension"); the comment comes from the extension's control file
 * anyway. CREATE EXTENSION IF NOT EXISTS stays: it passes over one that is there, and creates again one the role
 * owned and the reset dropped (a trusted one, like pg_trgm).
 */
function restoreSql(file: string, role?: string): string {
  return (
    `pg_restore --list ${file} | grep -v '^[0-9]*; [0-9]* [0-9]* COMMENT - EXTENSION ' | ` +
    `pg_restore --no-owner${role ? ` --role=${role}` : ""} --use-list=/dev/stdin --file=- ${file}`
  );
}

/** The schema as text; pg_dump's `\restrict` lines carry a fresh random key each time, so they are left out. */
export function pgSchemaCommand(tools: HostTools, name: string): string {
  return `${tools.runuser} -u postgres -- pg_dump --schema-only --no-owner --dbname=${name} | grep -Ev '^\\\\(un)?restrict '`;
}

export function pgExistsCommand(tools: HostTools, name: string): string {
  return `${tools.runuser} -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = '${name}'"`;
}

/**
 * RDS: commands connect as the app does, with the env file's DATABASE_URL
 * (`db_pg_connect` sets libpq's PG* variables), inside a subshell so the
 * password never outlives the command.
 */
export function rdsDumpCommand(): string {
  return "(db_pg_connect && pg_dump --format=custom --no-owner)";
}

export function rdsSchemaCommand(): string {
  return "(db_pg_connect && pg_dump --schema-only --no-owner) | grep -Ev '^\\\\(un)?restrict '";
}

/**
 * RDS: the app's role owns the database but is no superuser, so instead of
 * DROP OWNED (which also revokes grants RDS gave it) the restore drops the
 * public schema and every schema the role owns, recreates public as Postgres
 * 15 makes it, and replays the dump, in one transaction committed only after
 * the whole dump was read.
 */
export const RDS_RESET_SQL = [
  "BEGIN;",
  "DROP SCHEMA public CASCADE;",
  "CREATE SCHEMA public AUTHORIZATION pg_database_owner;",
  "GRANT USAGE ON SCHEMA public TO PUBLIC;",
  "COMMENT ON SCHEMA public IS 'standard public schema';",
  "DO 'DECLARE s name; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspowner = current_user::regrole LOOP EXECUTE format(''DROP SCHEMA %I CASCADE'', s); END LOOP; END';",
];

export function rdsRestoreCommand(file: string): string {
  const reset = RDS_RESET_SQL.map((l) => q(l)).join(" ");
  return (
    `(db_pg_connect && { printf '%s\\n' ${reset}; ${restoreSql(file)} && printf 'COMMIT;\\n'; } | ` +
    "psql -X -q -v ON_ERROR_STOP=1)"
  );
}

// ------------------------------------------------------------ function bodies

/**
 * Body of `db_backup <label>`: sets BACKUP_FILE to the new backup, or to ""
 * when there is no database yet (logged, not an error).
 */
export function backupCommands(input: BackupInput): string[] {
  const { layout, database } = input;
  const tools = toolsOf(input.tools);
  const backups = assertSafePath("backups directory", layout.backups);
  const { stem, ext } = backupNaming(database);
  const name = `${backups}/${stem}-"$stamp"-"$1"`;
  if (database.kind === "none") {
    return ['BACKUP_FILE=""', 'note "backup: apphost:database.kind is none; nothing to back up"'];
  }
  if (database.kind === "sqlite") {
    const db = sqlitePath(layout, database);
    return [
      'local stamp check=""',
      'BACKUP_FILE=""',
      `if [ ! -f ${db} ]; then note "backup: no database yet at ${db}; nothing to back up"; return 0; fi`,
      `[ -d ${backups} ] || install -d -m 0700 ${backups}`,
      // The names sort by time, which pruning relies on.
      "stamp=$(date -u +%Y%m%dT%H%M%S.%3NZ)",
      `BACKUP_FILE=${name}.${ext}`,
      `if [ -e "$BACKUP_FILE" ]; then BACKUP_FILE=${name}-$$.${ext}; fi`,
      'rm -f "$BACKUP_FILE.tmp"',
      sqliteBackupCommand(db, "$BACKUP_FILE.tmp"),
      "db_fix_owner",
      `check=$(${sqliteIntegrityCommand('"$BACKUP_FILE.tmp"')} 2>&1) || true`,
      'if [ "$check" != ok ]; then rm -f "$BACKUP_FILE.tmp"; fail "backup: integrity check of the copy failed: $check"; fi',
      'chmod 0600 "$BACKUP_FILE.tmp"',
      'mv -f "$BACKUP_FILE.tmp" "$BACKUP_FILE"',
      'note "backup: database copied to $BACKUP_FILE (integrity ok)"',
    ];
  }
  if (isRemotePostgres(database.kind)) {
    return [
      'local stamp check=""',
      'BACKUP_FILE=""',
      `[ -d ${backups} ] || install -d -m 0700 ${backups}`,
      "stamp=$(date -u +%Y%m%dT%H%M%S.%3NZ)",
      `BACKUP_FILE=${name}.${ext}`,
      `if [ -e "$BACKUP_FILE" ]; then BACKUP_FILE=${name}-$$.${ext}; fi`,
      // pg_dump's own messages, kept to say what a version mismatch means; on success they are printed as they were.
      `if ! check=$( (umask 077 && ${rdsDumpCommand()} >"$BACKUP_FILE.tmp") 2>&1); then`,
      '  rm -f "$BACKUP_FILE.tmp"',
      `  case $check in *"server version mismatch"*) fail "backup: $check; ${PG_DUMP_TOO_OLD}" ;; esac`,
      '  fail "backup: pg_dump failed: $check"',
      "fi",
      'if [ -n "$check" ]; then printf \'%s\\n\' "$check" >&2; fi',
      'if ! check=$(pg_restore --list "$BACKUP_FILE.tmp" 2>&1 >/dev/null); then rm -f "$BACKUP_FILE.tmp"; fail "backup: the dump is unreadable: $check"; fi',
      'mv -f "$BACKUP_FILE.tmp" "$BACKUP_FILE"',
      'note "backup: database dumped to $BACKUP_FILE"',
    ];
  }
  const pg = database.postgresName;
  return [
    'local stamp check=""',
    'BACKUP_FILE=""',
    `if [ "$(${pgExistsCommand(tools, pg)})" != 1 ]; then note "backup: no database ${pg} yet; nothing to back up"; return 0; fi`,
    `[ -d ${backups} ] || install -d -m 0700 ${backups}`,
    "stamp=$(date -u +%Y%m%dT%H%M%S.%3NZ)",
    `BACKUP_FILE=${name}.${ext}`,
    `if [ -e "$BACKUP_FILE" ]; then BACKUP_FILE=${name}-$$.${ext}; fi`,
    `(umask 077 && ${pgDumpCommand(tools, pg)} >"$BACKUP_FILE.tmp")`,
    'if ! check=$(pg_restore --list "$BACKUP_FILE.tmp" 2>&1 >/dev/null); then rm -f "$BACKUP_FILE.tmp"; fail "backup: the dump is unreadable: $check"; fi',
    'mv -f "$BACKUP_FILE.tmp" "$BACKUP_FILE"',
    'note "backup: database dumped to $BACKUP_FILE"',
  ];
}

/**
 * A remote Postgres newer than the host's pg_dump: what to do. pg_dump refuses a server of a later major
 * version; Debian's pg_wrapper runs the newest client installed for a remote server.
 */
export const PG_DUMP_TOO_OLD =
  "the database server is newer than this host's pg_dump, which takes the stack's backups (a release stops at this one, " +
  "before its migration). On ec2 set apphost:host.os to debian-13 (pg_dump 17); " +
  "on an existing host install the postgresql-client package of the server's major version from the PostgreSQL apt repository " +
  "(apt.postgresql.org), whose pg_dump is then used";

/** Body of `db_restore <file>`: restores the live database from a backup, verified before and after. */
export function restoreCommands(input: BackupInput): string[] {
  const { layout, database } = input;
  const tools = toolsOf(input.tools);
  if (database.kind === "none") return ['fail "restore: apphost:database.kind is none"'];
  if (database.kind === "sqlite") {
    const db = sqlitePath(layout, database);
    return [
      'local file=$1 check=""',
      'db_verify_backup "$file"',
      sqliteRestoreCommand(db, "$file"),
      "db_fix_owner",
      `check=$(${sqliteIntegrityCommand(db)} 2>&1) || true`,
      `if [ "$check" != ok ]; then fail "restore: ${db} fails its integrity check after the restore: $check"; fi`,
      'note "restore: database restored from $file"',
    ];
  }
  const pg = database.postgresName;
  const restore = isRemotePostgres(database.kind)
    ? rdsRestoreCommand('"$file"')
    : pgRestoreCommand(tools, pg, '"$file"');
  return [
    'local file=$1 out=""',
    'db_verify_backup "$file"',
    `if ! out=$( ${restore} 2>&1 >/dev/null); then fail "restore: pg_restore of $file into ${pg} failed (the database is as it was): $out"; fi`,
    'note "restore: database restored from $file"',
  ];
}

/**
 * Body of `db_verify_backup <file>`: fails unless the file is a readable backup
 * (SQLite integrity_check ok, or a dump pg_restore can list). Changes nothing;
 * a restore runs it before it stops anything.
 */
export function verifyBackupCommands(input: BackupInput): string[] {
  const { database } = input;
  if (database.kind === "none") return ['fail "restore: apphost:database.kind is none"'];
  const head = ['local check=""', 'if [ ! -f "$1" ]; then fail "restore: backup file $1 does not exist"; fi'];
  if (database.kind === "sqlite") {
    return [
      ...head,
      `check=$(${sqliteIntegrityCommand('"$1"')} 2>&1) || true`,
      'if [ "$check" != ok ]; then fail "restore: $1 fails its integrity check: $check"; fi',
    ];
  }
  return [
    ...head,
    'if ! check=$(pg_restore --list "$1" 2>&1 >/dev/null); then fail "restore: $1 is not a readable dump: $check"; fi',
  ];
}

/** Prints the sha256 of what `command` prints (the digest alone: sha256sum's file name dropped in bash); fails as it does. */
function sha256Lines(command: string): string[] {
  // `$( (` apart: `$((` opens arithmetic.
  const open = command.startsWith("(") ? "$( " : "$(";
  return ["local sum", `sum=${open}${command} | sha256sum) || return`, "printf '%s\\n' \"${sum%% *}\""];
}

/**
 * Body of `db_fingerprint`: prints one sha256 of the schema (and user_version),
 * or `absent`. Data written by the live release does not change it; a
 * migration does.
 */
export function fingerprintCommands(input: BackupInput): string[] {
  const { layout, database } = input;
  const tools = toolsOf(input.tools);
  if (database.kind === "none") return ["echo none"];
  if (database.kind === "sqlite") {
    const db = sqlitePath(layout, database);
    return [`if [ ! -f ${db} ]; then echo absent; return 0; fi`, ...sha256Lines(sqliteSchemaCommand(db))];
  }
  if (isRemotePostgres(database.kind)) return sha256Lines(rdsSchemaCommand());
  const pg = database.postgresName;
  return [
    `if [ "$(${pgExistsCommand(tools, pg)})" != 1 ]; then echo absent; return 0; fi`,
    ...sha256Lines(pgSchemaCommand(tools, pg)),
  ];
}

/**
 * Body of `db_set_aside <release-id>`: after a failed first migration (there was
 * no database before it), move what it created out of the way, never delete it.
 */
export function setAsideCommands(input: BackupInput): string[] {
  const { layout, database } = input;
  if (database.kind !== "sqlite") return ['note "restore: nothing to set aside for this database kind"'];
  const db = sqlitePath(layout, database);
  const backups = assertSafePath("backups directory", layout.backups);
  return [
    "local f moved=()",
    `[ -d ${backups} ] || install -d -m 0700 ${backups}`,
    `for f in ${db} ${db}-wal ${db}-shm ${db}-journal; do if [ -e "$f" ]; then mv -f "$f" ${backups}/"$(basename "$f")".failed-"$1"; moved+=("$(basename "$f")".failed-"$1"); fi; done`,
    `if [ "\${#moved[@]}" = 0 ]; then note "restore: there was no database before the migration, and it created none"; ` +
      `else note "restore: there was no database before the migration; what it created is in ${backups}: \${moved[*]}"; fi`,
  ];
}

/** Body of `db_fix_owner`: SQLite files created by root (restore, WAL side files) go back to the app user. */
export function fixOwnerCommands(input: BackupInput): string[] {
  const { layout, database } = input;
  if (database.kind !== "sqlite") return [":"];
  const db = sqlitePath(layout, database);
  return [
    "local f",
    // The data directory is the app's: a planted symlink must not hand root's chown to any file.
    `for f in ${db} ${db}-wal ${db}-shm ${db}-journal; do if [ -e "$f" ] && [ ! -L "$f" ]; then chown -h ${q(layout.user)}: "$f"; fi; done`,
  ];
}

/**
 * The pipeline that prints the names of the backups in `dir`, one a line,
 * newest first (their names sort by time): what pruning counts and the
 * restore lists. Lock files, set-aside databases and partial copies are not backups.
 */
function backupNamesNewestFirst(dir: string, stem: string, ext: string): string {
  return `find ${dir} -maxdepth 1 -type f -name '${stem}-*.${ext}' -printf '%f\\n' | sort -r`;
}

/**
 * Body of `db_prune_backups`: keep the `backups.keep` newest backups, the one
 * taken before the live release's migration, and every `pre-<id>` of a
 * release newer than the live one (a deploy under way, or one that failed and
 * will be retried: its backup is what its rollback restores).
 */
export function pruneBackupsCommands(input: BackupInput): string[] {
  const { layout, database, backups } = input;
  if (!Number.isInteger(backups.keep) || backups.keep < 2) {
    throw new Error(`apphost:backups.keep must be a whole number >= 2, got ${backups.keep}`);
  }
  if (database.kind === "none") return [":"];
  const dir = assertSafePath("backups directory", layout.backups);
  const { stem, ext } = backupNaming(database);
  const current = assertSafePath("current link", layout.current);
  return [
    'local old cur=""',
    // The backup taken before the live release's migration is the one to go back to if that
    // migration turns out wrong: never pruned, however many scheduled backups came after it.
    `if [ -L ${current} ]; then cur=$(basename "$(readlink ${current})"); fi`,
    `if [ ! -d ${dir} ]; then return 0; fi`,
    `${backupNamesNewestFirst(dir, stem, ext)} | tail -n +${backups.keep + 1} | while IFS= read -r old; do`,
    `  if [ "${dir}/$old" = "$BACKUP_FILE" ]; then continue; fi`,
    `  if [[ "$old" =~ -pre-(${RELEASE_ID_SHAPE})(-[0-9]+)?\\.${ext}$ ]] && ! [[ "\${BASH_REMATCH[1]}" < "$cur" ]]; then continue; fi`,
    `  rm -f -- ${dir}/"$old"; note "backup: pruned $old (apphost:backups.keep = ${backups.keep})"`,
    "done",
  ];
}

/**
 * Body of `db_first_backup_after <id>`: the name of the oldest backup taken before the migration of a release newer
 * than <id> (`-pre-<newer id>`), or nothing: the database as release <id> left it, which a rollback to it may need
 * (a failed deploy's is the same: its rollback restored what it changed).
 */
export function firstBackupAfterCommands(input: BackupInput): string[] {
  if (input.database.kind === "none") return [":"];
  const dir = assertSafePath("backups directory", input.layout.backups);
  const { stem, ext } = backupNaming(input.database);
  return [
    'local name first=""',
    `if [ ! -d ${dir} ]; then return 0; fi`,
    `while IFS= read -r name; do if [[ "$name" =~ -pre-(${RELEASE_ID_SHAPE})(-[0-9]+)?\\.${ext}$ ]] && [[ "\${BASH_REMATCH[1]}" > "$1" ]]; then first=$name; fi; done < <(${backupNamesNewestFirst(dir, stem, ext)})`,
    'if [ -n "$first" ]; then printf \'%s\\n\' "$first"; fi',
  ];
}

/** Body of `db_list_backups`: the backups' names on one line, newest first, or "none"; for the restore's messages. */
export function listBackupsCommands(input: BackupInput): string[] {
  if (input.database.kind === "none") return ["echo none"];
  const dir = assertSafePath("backups directory", input.layout.backups);
  const { stem, ext } = backupNaming(input.database);
  return [
    "local names",
    `if [ ! -d ${dir} ]; then echo none; return 0; fi`,
    `names=$(${backupNamesNewestFirst(dir, stem, ext)} | tr '\\n' ' ')`,
    'if [ -z "$names" ]; then echo none; else echo "${names% }"; fi',
  ];
}

/** Seconds a backup waits for another one on the same stack to finish. */
export const BACKUP_LOCK_WAIT_SECONDS = 900;

/** Body of `db_lock`: flock on `<backups>/.lock` (fd 8), so backups and their pruning never overlap. */
export function lockCommands(input: BackupInput): string[] {
  if (input.database.kind === "none") return [":"];
  const dir = assertSafePath("backups directory", input.layout.backups);
  return [
    `[ -d ${dir} ] || install -d -m 0700 ${dir}`,
    `exec 8>>${dir}/.lock`,
    `if ! flock -w ${BACKUP_LOCK_WAIT_SECONDS} 8; then fail "backup: another backup of this stack held ${dir}/.lock for ${BACKUP_LOCK_WAIT_SECONDS}s"; fi`,
  ];
}

/** Seconds one copy to S3 may take before it counts as failed (a deploy waits for it). */
export const S3_COPY_TIMEOUT_SECONDS = 900;

/** Bucket, region and prefix are baked into the script unquoted; refuse anything else. */
export function assertS3Target(t: S3Target): S3Target {
  assertSafe("backup copy to S3", [
    ["apphost:backups.s3 bucket", t.bucket, SAFE.s3Bucket],
    ["the AWS region", t.region, SAFE.awsRegion],
    ["the key prefix", t.prefix, SAFE.s3Prefix],
  ]);
  return t;
}

/**
 * Body of `db_copy_offsite <file>`: copies one backup to S3 with the instance's
 * role (awscli finds it through IMDSv2; no key on the host), encrypted at rest.
 * Returns 1 after a warning when the copy fails; the caller decides whether
 * that fails it (the scheduled backup) or not (a deploy).
 */
export function copyOffsiteCommands(target: S3Target, hostTools?: Partial<HostTools>): string[] {
  const { bucket, region, prefix } = assertS3Target(target);
  const tools = toolsOf(hostTools);
  return [
    'local file=$1 url out=""',
    'if [ -z "$file" ]; then return 0; fi',
    `url=s3://${bucket}/${prefix}"$(basename "$file")"`,
    `if out=$(timeout ${S3_COPY_TIMEOUT_SECONDS} ${tools.aws} s3 cp --region ${region} --sse AES256 --only-show-errors --no-progress --cli-connect-timeout 10 "$file" "$url" 2>&1); then`,
    '  note "backup: copied to $url"',
    "  return 0",
    "fi",
    'note "warning: backup: the copy of $file to $url failed (apphost:backups.s3): ${out:-timed out or no output}"',
    "return 1",
  ];
}

/** `name() {\n  body\n}` */
export function shellFunction(name: string, body: string[]): string {
  return `${name}() {\n${body.map((l) => `  ${l.replace(/\n/g, "\n  ")}`).join("\n")}\n}\n`;
}

/**
 * `stray_databases <dir> <find test...>`: the SQLite databases (by their first
 * bytes) under <dir> that pass the find test (a time: `-newermt @<t>`,
 * `-newer <file>`), one per line, relative to <dir>. Found as `user` through
 * `runuser`, following no link but <dir> itself (data/, logs/, .venv,
 * node_modules are links). The deploy refuses a release that wrote one
 * (phases.ts, strayDatabaseCheck); the doctor's release check looks in the live one.
 */
export function strayDatabasesFunction(runuser: string, user: string): string {
  return shellFunction("stray_databases", [
    "# shellcheck disable=SC2016 # the inner script's $0 and $f are its own",
    `${runuser} -u ${user} -- find -H "$1" -xdev -type f "\${@:2}" -exec sh -c \\`,
    `  'for f; do [ "$(head -c 15 -- "$f" 2>/dev/null)" = "SQLite format 3" ] && printf "%s\\n" "\${f#"$0"/}"; done; true' \\`,
    '  "$1" {} + 2>/dev/null || true',
  ]);
}

/** All database functions, for embedding in a script that defines `note` and `fail`. */
export function databaseFunctions(input: BackupInput): string {
  return [
    ...(isRemotePostgres(input.database.kind)
      ? [
          "# RDS or an external Postgres: libpq's PG* variables from the env file's DATABASE_URL (call it in a subshell).",
          shellFunction("db_pg_connect", [
            "local url rest cred where hostport",
            ...pgEnvFromUrlLines(assertSafePath("env file", input.layout.envFile), "backup"),
            ...(input.database.kind === "rds"
              ? ["export PGSSLMODE=require PGCONNECT_TIMEOUT=10"]
              : [
                  "# external: the URL's sslmode, else libpq's default (prefer).",
                  "local sslmode_re='[?&]sslmode=([a-z-]+)'",
                  "PGSSLMODE=prefer; if [[ $url =~ $sslmode_re ]]; then PGSSLMODE=${BASH_REMATCH[1]}; fi",
                  "export PGSSLMODE PGCONNECT_TIMEOUT=10",
                ]),
          ]),
        ]
      : []),
    "# db_lock / db_unlock: one backup or prune at a time on this stack (a scheduled backup and a deploy's).",
    shellFunction("db_lock", lockCommands(input)),
    shellFunction("db_unlock", ["flock -u 8 2>/dev/null || true"]),
    shellFunction("db_fix_owner", fixOwnerCommands(input)),
    shellFunction("db_backup", backupCommands(input)),
    shellFunction("db_restore", restoreCommands(input)),
    shellFunction("db_verify_backup", verifyBackupCommands(input)),
    shellFunction("db_fingerprint", fingerprintCommands(input)),
    shellFunction("db_set_aside", setAsideCommands(input)),
    shellFunction("db_prune_backups", pruneBackupsCommands(input)),
    shellFunction("db_list_backups", listBackupsCommands(input)),
    shellFunction("db_first_backup_after", firstBackupAfterCommands(input)),
    ...(input.s3 && input.database.kind !== "none"
      ? [shellFunction("db_copy_offsite", copyOffsiteCommands(input.s3, input.tools))]
      : []),
  ].join("\n");
}
