/**
 * The stack's env file, `layout.envFile` (`/etc/apphost/<id>.env`), read by
 * every unit through `EnvironmentFile=`.
 *
 * Every value is double-quoted with `\`, `"`, `` ` `` and `$` escaped. That
 * is exactly what systemd's env-file parser unescapes inside double quotes
 * (src/basic/env-file.c; a newline inside the quotes is kept), and it is
 * also valid POSIX sh, so a release script may `set -a; . <file>` it to run
 * migrations with the same environment.
 */
import { DATABASE_POOL_DEFAULTS, isPostgres } from "../config/defaults";
import type { AppConfig, DatabaseConfig } from "../config/types";
import type { HostLayout } from "../paths";
import { sqlitePath } from "../release/backup";
import { HostFile, managedBy } from "./common";
import { assertSafe, SAFE } from "../shell";
import {
  databaseParts,
  envReferences,
  referenceProblem,
  resolveEnvValue,
  type EnvReference,
} from "../config/envrefs";

export interface EnvFileInput {
  /** Stack name, exported as APP_ENV */
  stack: string;
  /** `apphost:app.env`; its `${database.*}` and `${secretKey}` references are resolved here */
  env: AppConfig["env"];
  /** `apphost:secretEnv` (with the generated SECRET_KEY), written as given */
  secretEnv?: Record<string, string>;
  /** What `${secretKey}` stands for: the app's SECRET_KEY */
  secretKey?: string;
  /**
   * `apphost:dns.hostnames`, for `${hostnames}` and `${origins}` (and as JSON lists, `${hostnames.json}`), the first
   * for `${hostname}` and `${origin}`
   */
  hostnames?: string[];
  /** The scheme of `${origins}`: http when apphost:tls.mode is off. @default "https" */
  scheme?: "http" | "https";
  database: Pick<DatabaseConfig, "kind" | "sqliteFile"> & Partial<Pick<DatabaseConfig, "pool" | "urlScheme">>;
  /** postgres: the connection URL (a secret the caller resolved). Ignored for other kinds */
  databaseUrl?: string;
}

/** `sqlite:////srv/<id>/shared/data/<file>`: SQLAlchemy/dj-database-url form of an absolute path. */
export function sqliteUrl(layout: HostLayout, file: string): string {
  return `sqlite:///${sqlitePath(layout, { sqliteFile: file })}`;
}

/**
 * DATABASE_URL as the app reads it, and `${database.url}`: the database's URL with apphost:database.urlScheme
 * (`postgresql+asyncpg://…`, `sqlite+aiosqlite:////srv/…`; `file:///srv/…`, a file URL, as libsql reads a SQLite
 * file). The host's own tools read it with or without a driver.
 */
function appDatabaseUrl(layout: HostLayout, input: EnvFileInput): string | undefined {
  if (input.database.kind === "sqlite" && input.database.urlScheme === "file") {
    return `file://${sqlitePath(layout, { sqliteFile: input.database.sqliteFile })}`;
  }
  const url =
    input.database.kind === "sqlite"
      ? sqliteUrl(layout, input.database.sqliteFile)
      : isPostgres(input.database.kind)
        ? input.databaseUrl
        : undefined;
  const scheme = input.database.urlScheme;
  return url && scheme ? url.replace(/^[a-z]+:/, `${scheme}:`) : url;
}

/** `apphost:database.pool` as the app sees it: DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT, DB_POOL_RECYCLE. */
export function poolEnv(pool: DatabaseConfig["pool"] = DATABASE_POOL_DEFAULTS): Record<string, string> {
  return {
    DB_POOL_SIZE: String(pool.size),
    DB_MAX_OVERFLOW: String(pool.maxOverflow),
    DB_POOL_TIMEOUT: String(pool.timeoutSeconds),
    DB_POOL_RECYCLE: String(pool.recycleSeconds),
  };
}

/** Double-quoted for systemd EnvironmentFile= and POSIX sh alike. */
export function quoteEnvValue(value: string): string {
  return `"${value.replace(/[\\"`$]/g, (c) => `\\${c}`)}"`;
}

export function renderEnvFile(layout: HostLayout, input: EnvFileInput): string {
  const problems: string[] = [];
  const vars = new Map<string, string>();
  const refs = referenceValues(layout, input);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(input.env)) {
    const bad = typeof value === "string" ? envReferences(value).filter((n) => !(n in refs)) : [];
    for (const name of bad) {
      problems.push(
        `apphost:app.env.${key}: ${referenceProblem(name, input.database.kind) ?? `\${${name}} has no value`}`,
      );
    }
    env[key] = bad.length === 0 && typeof value === "string" ? resolveEnvValue(value, refs) : value;
  }
  const all = Object.entries({ ...env, ...input.secretEnv });
  // Each variable by the key it was set with: a secret one is apphost:secretEnv's.
  const at = (key: string) =>
    key in (input.secretEnv ?? {}) ? `apphost:secretEnv.${key}` : `apphost:app.env.${key}`;
  assertSafe(`env file ${layout.envFile}`, [
    ...all.flatMap(([key, value]) => [
      [at(key), key, SAFE.envName] as const,
      [at(key), value, SAFE.envValue] as const,
    ]),
    ["the stack", input.stack, SAFE.name],
    ...(input.database.kind === "sqlite"
      ? [["apphost:database.sqliteFile", input.database.sqliteFile, SAFE.fileName] as const]
      : []),
  ]);
  for (const [key, value] of all) vars.set(key, value);
  if (isPostgres(input.database.kind) && !input.databaseUrl) {
    problems.push(`databaseUrl: required when apphost:database.kind is ${input.database.kind}`);
  }
  if (problems.length > 0) {
    throw new Error(
      `env file ${layout.envFile}: fix these settings:\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
  }

  // APP_ENV defaults to the stack; apphost:app.env may say otherwise ("production").
  if (!vars.has("APP_ENV")) vars.set("APP_ENV", input.stack);
  const url = appDatabaseUrl(layout, input);
  if (url) vars.set("DATABASE_URL", url);
  if (isPostgres(input.database.kind) && input.databaseUrl) {
    // apphost:database.pool, under the names the runbook's SQLAlchemy engine reads.
    for (const [name, value] of Object.entries(poolEnv(input.database.pool))) {
      vars.set(name, value);
    }
  }

  const keys = [...vars.keys()].sort();
  return [
    `# apphost ${layout.id}: environment of every process (EnvironmentFile=).`,
    `# ${managedBy("env.ts")}`,
    "# PORT is not here: each web unit instance sets its own.",
    ...keys.map((k) => `${k}=${quoteEnvValue(vars.get(k) as string)}`),
    "",
  ].join("\n");
}

/** The values references resolve to: the database's URL and parts, the secret key. */
function referenceValues(layout: HostLayout, input: EnvFileInput): Partial<Record<EnvReference, string>> {
  const out: Partial<Record<EnvReference, string>> = {};
  if (isPostgres(input.database.kind) && input.databaseUrl) {
    Object.assign(out, databaseParts(input.databaseUrl));
  }
  const url = appDatabaseUrl(layout, input);
  if (url) out["database.url"] = url;
  if (input.database.kind === "sqlite") out["database.path"] = sqlitePath(layout, input.database);
  if (input.secretKey !== undefined) out.secretKey = input.secretKey;
  if (input.hostnames) {
    out.hostnames = input.hostnames.join(",");
    const origins = input.hostnames.map((h) => `${input.scheme ?? "https"}://${h}`);
    out.origins = origins.join(",");
    out["hostnames.json"] = JSON.stringify(input.hostnames);
    out["origins.json"] = JSON.stringify(origins);
    // The first hostname is the stack's canonical one (a stack has at least one: the config check).
    if (input.hostnames[0] !== undefined) {
      out.hostname = input.hostnames[0];
      out.origin = `${input.scheme ?? "https"}://${input.hostnames[0]}`;
    }
  }
  return out;
}

/**
 * Who may read the env file: root:<app user> 0640. The app reads it (its units
 * through systemd, migrations through the release script); it cannot rewrite
 * what root's release script and the other units load.
 */
export function envFileOwnership(layout: HostLayout): Pick<HostFile, "mode" | "owner" | "group"> {
  return { mode: "0640", owner: "root", group: layout.user };
}
