/**
 * Postgres on the host (`apphost:database.kind: postgres`): the stack's role
 * and database, as data. Pure functions; components/database.ts runs the
 * script with @pulumi/command.
 *
 * - One role and one database per stack, both named `postgresName`; the
 *   database is owned by the role and CONNECT is revoked from PUBLIC, so two
 *   stacks on one host cannot open each other's databases.
 * - The role logs in with a password over TCP on 127.0.0.1 (Debian's
 *   pg_hba.conf: `host all all 127.0.0.1/32 scram-sha-256`; Postgres listens
 *   on localhost only). The password never reaches the host in the clear
 *   except inside the env file: the script gets a SCRAM-SHA-256 verifier,
 *   computed here, on its standard input (never in argv, the state's plain
 *   text or a server log).
 * - Destroy keeps the database and the role: data is never dropped by
 *   `pulumi destroy`. The delete script says how to drop them by hand.
 */
import * as crypto from "crypto";
import { assertSafe, SAFE } from "../shell";

export const POSTGRES_PORT = 5432;

function assertIdentifier(name: string): string {
  assertSafe("postgres", [["apphost:database.postgresName", name, SAFE.pgIdentifier]]);
  return name;
}

/**
 * `postgresql://<role>:<password>@127.0.0.1:5432/<database>`: the form
 * SQLAlchemy, Django (dj-database-url) and psql all read. The password is
 * percent-encoded (a generated one is letters and digits only).
 */
export function postgresUrl(
  name: string,
  password: string,
  host = "127.0.0.1",
  port = POSTGRES_PORT,
): string {
  assertIdentifier(name);
  return `postgresql://${name}:${encodeURIComponent(password)}@${host}:${port}/${name}`;
}

/** Iterations Postgres itself uses for SCRAM-SHA-256 verifiers (scram_iterations' default). */
export const SCRAM_ITERATIONS = 4096;

/**
 * The SCRAM-SHA-256 verifier Postgres stores for `password` (RFC 5802/7677,
 * the format of pg_authid.rolpassword): `ALTER ROLE ... PASSWORD '<verifier>'`
 * sets the password without the server ever seeing it. The salt is derived
 * from the password and the role, so the same password gives the same
 * verifier (an unchanged `up` changes nothing) and two roles never share one.
 */
export function scramVerifier(role: string, password: string, iterations = SCRAM_ITERATIONS): string {
  const salt = crypto
    .createHmac("sha256", password)
    .update(`apphost scram salt for ${role}`)
    .digest()
    .subarray(0, 16);
  return scramVerifierWithSalt(password, salt, iterations);
}

/** The verifier for a given salt (what Postgres computes with a random one). */
export function scramVerifierWithSalt(password: string, salt: Buffer, iterations = SCRAM_ITERATIONS): string {
  const salted = crypto.pbkdf2Sync(password.normalize("NFKC"), salt, iterations, 32, "sha256");
  const clientKey = crypto.createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = crypto.createHash("sha256").update(clientKey).digest();
  const serverKey = crypto.createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}

export interface PostgresProvisionInput {
  /** `apphost:database.postgresName`: the role and the database */
  name: string;
  /** Called as `<runuser> -u postgres -- psql ...`. @default "runuser" */
  runuser?: string;
  /** `apphost:database.extensions`: created in the database by the postgres superuser. @default none */
  extensions?: readonly string[];
}

/**
 * The provisioning script, run as root. Reads one line on stdin: the role's
 * SCRAM verifier. Idempotent: creates what is missing, and puts the role's
 * attributes, password, ownership and the database's grants back to what
 * they must be.
 */
export function postgresProvisionScript(input: PostgresProvisionInput): string {
  const name = assertIdentifier(input.name);
  const runuser = input.runuser ?? "runuser";
  return [
    "set -euo pipefail",
    "IFS= read -r verifier",
    'case "$verifier" in SCRAM-SHA-256\\$*) ;; *) echo "apphost: expected a SCRAM-SHA-256 verifier on stdin" >&2; exit 2 ;; esac',
    "systemctl enable --now postgresql >/dev/null 2>&1 || systemctl start postgresql",
    "for _ in $(seq 60); do",
    `  if ${runuser} -u postgres -- pg_isready -q; then break; fi`,
    "  sleep 1",
    "done",
    `${runuser} -u postgres -- pg_isready >&2 || { echo "apphost: postgresql does not accept connections after 60 s (journalctl -u postgresql)" >&2; exit 1; }`,
    // The verifier reaches psql through its environment (readable by root and postgres only), never argv.
    `APPHOST_PG_VERIFIER="$verifier" ${runuser} -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v name=${name} <<'SQL'`,
    "\\getenv verifier APPHOST_PG_VERIFIER",
    "SELECT format('CREATE ROLE %I', :'name') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \\gexec",
    "ALTER ROLE :\"name\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'verifier';",
    "SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \\gexec",
    'ALTER DATABASE :"name" OWNER TO :"name";',
    'REVOKE ALL ON DATABASE :"name" FROM PUBLIC;',
    "SQL",
    ...extensionLines(name, runuser, input.extensions ?? []),
    `echo "apphost: postgres role and database ${name} ready (scram-sha-256 on 127.0.0.1:${POSTGRES_PORT}; no other role may connect)" >&2`,
    "",
  ].join("\n");
}

/**
 * The extensions the app's role may not create itself (it is no superuser; most extensions need one), created by
 * postgres in the app's database, where they stay postgres'. Each must be one this PostgreSQL offers: the ones it
 * does not are named first, with the package that would bring them, and none is created.
 */
function extensionLines(name: string, runuser: string, extensions: readonly string[]): string[] {
  if (extensions.length === 0) return [];
  assertSafe(
    "postgres extensions",
    extensions.map((e, i) => [`apphost:database.extensions[${i}]`, e, SAFE.pgExtension] as const),
  );
  const psql = `${runuser} -u postgres -- psql -X -v ON_ERROR_STOP=1 -d ${name}`;
  return [
    `missing=$(${psql} -At -c "SELECT string_agg(e, ', ') FROM unnest(ARRAY[${extensions.map((e) => `'${e}'`).join(", ")}]) e WHERE e NOT IN (SELECT name FROM pg_available_extensions)")`,
    'if [ -n "$missing" ]; then',
    `  echo "apphost: apphost:database.extensions: not offered by this host's PostgreSQL: $missing; add the package that brings each to apphost:host.packages (postgis: postgresql-<major>-postgis-3), or remove it" >&2`,
    "  exit 1",
    "fi",
    `${psql} -q <<'SQL'`,
    ...extensions.map((e) => `CREATE EXTENSION IF NOT EXISTS "${e}";`),
    "SQL",
    `echo "apphost: postgres extensions in ${name}: ${extensions.join(", ")}" >&2`,
  ];
}

/** On destroy: the data stays. Says so, and how to drop it. */
export function postgresDeleteScript(input: PostgresProvisionInput): string {
  const name = assertIdentifier(input.name);
  return [
    `echo "apphost: kept postgres database ${name} and its role (destroy never drops data); to drop them: runuser -u postgres -- dropdb ${name} && runuser -u postgres -- dropuser ${name}" >&2`,
    "",
  ].join("\n");
}

/**
 * Bash lines that read DATABASE_URL from the env file (read, never sourced:
 * root does not run what the app user's file says; a driver in its scheme,
 * apphost:database.urlScheme, is skipped, and Heroku's postgres:// read too) and set PGHOST, PGPORT,
 * PGUSER, PGPASSWORD (percent-decoded) and PGDATABASE, so psql, pg_dump and
 * pg_restore connect as the app does with no password in their argv.
 * `fail` is the script's error function; `envFile` an absolute path.
 */
export function pgEnvFromUrlLines(envFile: string, what: string): string[] {
  assertSafe("postgres", [["the env file", envFile, SAFE.absolutePath]]);
  return [
    `url=$(sed -n 's/^DATABASE_URL="\\(.*\\)"$/\\1/p' ${envFile} | tail -n 1)`,
    `[[ $url =~ ^postgres(ql(\\+[a-z0-9_]+)?)?://.+@.+/. ]] || fail "${what}: DATABASE_URL in ${envFile} is not a postgresql[+driver]://user:password@host:port/database URL (or postgres://...)"`,
    "rest=${url#*://}; cred=${rest%%@*}; where=${rest#*@}; hostport=${where%%/*}",
    "PGUSER=${cred%%:*}; PGPASSWORD=${cred#*:}; PGDATABASE=${where#*/}; PGDATABASE=${PGDATABASE%%\\?*}",
    'PGHOST=${hostport%:*}; PGPORT=${hostport##*:}; [[ $PGPORT != "$hostport" ]] || PGPORT=5432',
    "PGPASSWORD=$(printf '%b' \"${PGPASSWORD//%/\\\\x}\")",
    "export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE",
  ];
}
