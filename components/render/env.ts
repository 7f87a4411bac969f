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
import { DATABASE_POOL_DEFAULTS, isPostgres, POOL_VARS } from "../config/defaults";
import type { AppConfig, DatabaseConfig } from "../config/types";
import type { HostLayout } from "../paths";
import { HostFile, managedBy } from "./common";
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
  /** `apphost:dns.hostnames`, for `${hostnames}` and `${origins}` */
  hostnames?: string[];
  /** The scheme of `${origins}`: http when apphost:tls.mode is off. @default "https" */
  scheme?: "http" | "https";
  database: Pick<DatabaseConfig, "kind" | "sqliteFile"> & Partial<Pick<DatabaseConfig, "pool">>;
  /** postgres: the connection URL (a secret the caller resolved). Ignored for other kinds */
  databaseUrl?: string;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `sqlite:////srv/<id>/shared/data/<file>`: SQLAlchemy/dj-database-url form of an absolute path. */
export function sqliteUrl(layout: HostLayout, file: string): string {
  return `sqlite:///${layout.data}/${file}`;
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

/**
 * Keys the units set themselves: the env file overrides Environment= in a
 * unit, so a PORT here would send both blue and green to one port.
 */
const UNIT_KEYS: Record<string, string> = {
  PORT: "each web instance gets its own port from its unit (PORT=%i)",
  PATH: "the units put the release's venv or node_modules/.bin first on PATH",
};

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
  for (const [key, value] of Object.entries({ ...env, ...input.secretEnv })) {
    // Each variable by the key it was set with: a secret one is apphost:secretEnv's.
    const path = key in (input.secretEnv ?? {}) ? `apphost:secretEnv.${key}` : `apphost:app.env.${key}`;
    if (!KEY.test(key)) {
      problems.push(`${path}: not a valid variable name (letters, digits and _, not starting with a digit)`);
    } else if (UNIT_KEYS[key]) {
      problems.push(`${path}: set by apphost, remove it: ${UNIT_KEYS[key]}`);
    } else if (key === "DATABASE_URL" && input.database.kind !== "none") {
      problems.push(
        `${path}: set by apphost from apphost:database (kind ${input.database.kind}); ` +
          `remove it, or set apphost:database.kind to none to bring your own`,
      );
    } else if (key in POOL_VARS && isPostgres(input.database.kind)) {
      problems.push(
        `${path}: set by apphost from apphost:database.pool.${POOL_VARS[key]}; set that instead and remove this`,
      );
    } else if (typeof value !== "string" || value.includes("\0")) {
      problems.push(`${path}: the value must be a string without NUL characters`);
    } else {
      vars.set(key, value);
    }
  }
  if (!/^[a-z][a-z0-9-]*$/.test(input.stack)) problems.push(`stack: "${input.stack}" is not a stack name`);
  if (input.database.kind === "sqlite" && !/^[A-Za-z0-9._-]+$/.test(input.database.sqliteFile)) {
    problems.push(
      `apphost:database.sqliteFile: "${input.database.sqliteFile}" must be a file name, like app.db`,
    );
  }
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
  if (input.database.kind === "sqlite")
    vars.set("DATABASE_URL", sqliteUrl(layout, input.database.sqliteFile));
  if (isPostgres(input.database.kind) && input.databaseUrl) {
    vars.set("DATABASE_URL", input.databaseUrl);
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
  if (input.database.kind === "sqlite") out["database.url"] = sqliteUrl(layout, input.database.sqliteFile);
  if (isPostgres(input.database.kind) && input.databaseUrl) {
    Object.assign(out, databaseParts(input.databaseUrl));
  }
  if (input.secretKey !== undefined) out.secretKey = input.secretKey;
  if (input.hostnames) {
    out.hostnames = input.hostnames.join(",");
    out.origins = input.hostnames.map((h) => `${input.scheme ?? "https"}://${h}`).join(",");
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
