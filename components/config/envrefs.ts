/**
 * References in `apphost:app.env` values: `${database.url}`, `${database.path}` (SQLite's file, for an app that
 * opens it with sqlite3.connect: the Flask tutorial's flaskr), `${database.host}`,
 * `${database.port}`, `${database.user}`, `${database.password}`,
 * `${database.name}` and `${secretKey}`, for apps that read the database
 * under other names (`SQLALCHEMY_DATABASE_URI`) or in parts (`POSTGRES_SERVER`,
 * `POSTGRES_PASSWORD`, ...); `${hostnames}` (`a.example.com,b.example.com`)
 * and `${origins}` (`https://a.example.com,https://b.example.com`) for
 * Django's ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS; `${hostname}` and `${origin}`,
 * the first of them alone, for an app's one canonical address (healthchecks'
 * SITE_ROOT, a BASE_URL that links in emails); `${hostnames.json}` and
 * `${origins.json}`, the same as JSON lists, for settings that parse one
 * (pydantic-settings' `list[str]`: minimal-fastapi-postgres-template's
 * SECURITY__ALLOWED_HOSTS). `$${` writes a literal `${`.
 *
 * The parser checks the names (an unknown one is a config error); the env
 * file renderer resolves them from the database URL and the secret key, so a
 * resolved secret only ever exists inside the env file, which is a secret.
 */
import type { DatabaseConfig } from "./types";

export const ENV_REFERENCES = [
  "database.url",
  "database.path",
  "database.host",
  "database.port",
  "database.user",
  "database.password",
  "database.name",
  "secretKey",
  "hostnames",
  "origins",
  "hostname",
  "origin",
  "hostnames.json",
  "origins.json",
] as const;
export type EnvReference = (typeof ENV_REFERENCES)[number];

const TOKEN = /\$\$\{|\$\{([^}]*)\}/g;

/** The names a value references, in order (`$${` escapes are not references). */
export function envReferences(value: string): string[] {
  return [...value.matchAll(TOKEN)].filter((m) => m[0] !== "$${").map((m) => m[1]);
}

/** Why `name` cannot be referenced with this database kind, or undefined when it can. */
export function referenceProblem(name: string, kind: DatabaseConfig["kind"] | undefined): string | undefined {
  if (!(ENV_REFERENCES as readonly string[]).includes(name)) {
    return (
      `\${${name}} is not a reference apphost knows; use one of ${ENV_REFERENCES.map((r) => `\${${r}}`).join(", ")}, ` +
      "or write $${ for a literal ${"
    );
  }
  if (!name.startsWith("database.") || kind === undefined) return undefined;
  if (kind === "none") return `\${${name}}: there is no database (apphost:database.kind is none)`;
  if (kind === "sqlite" && name !== "database.url" && name !== "database.path") {
    return `\${${name}}: a SQLite database has no ${name.slice("database.".length)}; only \${database.url} (sqlite:///...) and \${database.path} (the file) are set`;
  }
  if (kind !== "sqlite" && name === "database.path") {
    return `\${database.path}: only a SQLite database is a file (apphost:database.kind is ${kind}); use \${database.url} or its parts`;
  }
  return undefined;
}

/** The parts of a `postgresql://user:password@host:port/name?...` URL. */
export function databaseParts(
  url: string,
): Record<Exclude<Extract<EnvReference, `database.${string}`>, "database.path">, string> | undefined {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^:@/]*)(?::([^@]*))?@([^:/?]+)(?::(\d+))?\/([^?]*)/.exec(url);
  if (!m) return undefined;
  return {
    "database.url": url,
    "database.user": decodeURIComponent(m[2]),
    "database.password": decodeURIComponent(m[3] ?? ""),
    "database.host": m[4],
    "database.port": m[5] ?? "5432",
    "database.name": decodeURIComponent(m[6]),
  };
}

/** `value` with every reference replaced from `values` (and `$${` with `${`). Throws for one it has no value for. */
export function resolveEnvValue(value: string, values: Partial<Record<EnvReference, string>>): string {
  return value.replace(TOKEN, (token, name: string | undefined) => {
    if (token === "$${") return "${";
    const v = values[name as EnvReference];
    if (v === undefined) throw new Error(`\${${name}} has no value here`);
    return v;
  });
}
