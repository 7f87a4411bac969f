/**
 * Every default of the stack configuration, in one place. The schema (schema.ts) applies
 * them; nothing else in apphost may invent a default for a config key.
 *
 * Defaults that depend on other keys (the SSH user depends on the OS, the
 * backup count on the stack name) are small functions here, so the rule and
 * its reason stay next to each other.
 */
import * as os from "os";
import * as path from "path";
import { packageScript, whereAndSteps } from "./procfile";

/**
 * The deploying machine's apphost cache (artifacts, the engine, the sandbox and its key):
 * `$APPHOST_CACHE`, else `$XDG_CACHE_HOME/apphost`, else `~/.cache/apphost`, the rule scripts/engine
 * and scripts/sandbox follow too.
 */
export function localCacheDir(env: NodeJS.ProcessEnv = process.env, home = os.homedir()): string {
  return env.APPHOST_CACHE || path.join(env.XDG_CACHE_HOME || path.join(home, ".cache"), "apphost");
}

/** Stacks named like this get production defaults (Elastic IP, 30 backups). */
export function isProductionStack(stack: string): boolean {
  return /^prod/.test(stack);
}

export const HOST_DEFAULTS = {
  port: 22,
  os: "debian-12" as const,
  /** 20 GiB leaves room for releases, venvs and backups on top of the ~2 GiB OS image. */
  rootVolumeGb: 20,
  allowSshFromAnywhere: false,
  /** Swap created on instances with less than 2 GiB of memory (pip/npm installs run out of memory without it). */
  smallInstanceSwapMb: 1024,
  /**
   * An existing server is not ours to resize: no swap unless asked for, because
   * we cannot tell its memory from the config.
   */
  existingSwapMb: 0,
  /** Debian packages the baseline installs besides those the stack needs (runtimePackages) */
  packages: [] as string[],
};

/** The login user baked into the official cloud images. */
export function defaultEc2User(os: keyof typeof HOST_OS_PACKAGES): string {
  return os === "ubuntu-24.04" ? "ubuntu" : "admin";
}

/**
 * A stop/start of an instance without an Elastic IP changes its public address;
 * production pays for the fixed address, other stacks reconcile on the next
 * `pulumi up --refresh` (see docs/config.md, "IP reconciliation").
 */
export function defaultElasticIp(stack: string): boolean {
  return isProductionStack(stack);
}

/**
 * Sizes below 2 GiB of memory. On AWS only the `nano` (0.5 GiB) and `micro`
 * (1 GiB) sizes of the burstable families are that small; every `small` has 2 GiB.
 */
export function defaultEc2SwapMb(instanceType: string): number {
  const size = instanceType.split(".")[1];
  return size === "nano" || size === "micro" ? HOST_DEFAULTS.smallInstanceSwapMb : 0;
}

export const DNS_DEFAULTS = {
  provider: "none" as const,
  ipv6: false,
  proxied: false,
  /** Cloudflare's "automatic" TTL, the only value it accepts for proxied records. */
  proxiedTtl: 1,
  /** Five minutes: short enough that an IP change after a stop/start propagates quickly. */
  ttl: 300,
};

export const TLS_DEFAULTS = {
  originValidityDays: 365,
};

/**
 * Renew 30 days before expiry, or a third of the validity for short-lived
 * certificates (a 7-day certificate renewing 30 days early would renew on every run).
 */
export function defaultRenewBeforeDays(originValidityDays: number): number {
  return Math.min(30, Math.floor(originValidityDays / 3));
}

export const PROXY_DEFAULTS = {
  kind: "caddy" as const,
  maxBodySize: "25m",
  compression: true,
  httpPort: 80,
  httpsPort: 443,
};

/** HSTS only makes sense when the site is served over HTTPS. */
export function defaultHsts(tlsMode: string): boolean {
  return tlsMode !== "off";
}

export const APP_DEFAULTS = {
  excludes: [".git", "venv", ".venv", "node_modules", "__pycache__", "*.pyc", ".env", "/data/", "/logs/"],
  healthPath: "/healthz",
  basePort: 8000,
  staticPrefix: "/static/",
  sharedDirs: [] as string[],
  dotenv: [] as string[],
  sharedUrls: {} as Record<string, string>,
  maintenance: false,
  python: "system" as const,
};

/** `apphost:app.schedules.<name>`: a job that runs longer than an hour is stopped and counts as failed. */
export const SCHEDULE_DEFAULTS = {
  timeoutSeconds: 3600,
};

/** The `Retry-After` seconds of the maintenance page: clients and crawlers come back in two minutes. */
export const MAINTENANCE_RETRY_AFTER_SECONDS = 120;

/** The dependency manifest whose hash decides whether a release can reuse the previous environment. */
export function defaultRequirements(runtime: "python" | "node"): string {
  return runtime === "python" ? "requirements.txt" : "package-lock.json";
}

/** A process named `web` receives HTTP, like a Procfile; anything else is a worker. */
export function defaultProcessKind(name: string): "web" | "worker" {
  return name === "web" ? "web" : "worker";
}

/**
 * The processes an app host runs: all of them on the first (or only) app host; on every other one (a follower)
 * those not kept to the first by apphost:app.processes.<name>.hosts: first.
 */
export function processesOn<P extends { hosts?: "first" }>(
  processes: P[],
  role: "primary" | "follower" = "primary",
): P[] {
  return role === "follower" ? processes.filter((p) => p.hosts !== "first") : processes;
}

/** The scheme of a database's DATABASE_URL without a driver: what apphost:database.urlScheme starts with. */
export function databaseUrlScheme(kind: string): "sqlite" | "postgresql" {
  return kind === "sqlite" ? "sqlite" : "postgresql";
}

/** An apphost:database.urlScheme with a driver, for messages: SQLAlchemy's asyncio driver of the kind. */
export function databaseUrlSchemeExample(kind: string): string {
  return kind === "sqlite" ? "sqlite+aiosqlite" : "postgresql+asyncpg";
}

export const DATABASE_DEFAULTS = {
  kind: "sqlite" as const,
  sqliteFile: "app.db",
  migrate: "",
  revision: "",
};

/**
 * Django's migration state in one line: the migration recorded last in django_migrations
 * and how many are applied (`users.0004_location (69 applied)`), `none` before the first migrate. The count
 * changes with every migration applied, a data-only one too, which leaves the schema fingerprint as it was.
 */
const DJANGO_REVISION =
  `shell -v 0 -c "from django.db import connection; from django.db.migrations.recorder import MigrationRecorder; ` +
  `r = MigrationRecorder(connection); m = r.migration_qs.order_by('id').last() if r.has_table() else None; ` +
  `print(f'{m.app}.{m.name} ({r.migration_qs.count()} applied)' if m else 'none')"`;

/**
 * sequelize-cli's migration state in one line, from `db:migrate:status` (an `up <file>` line per applied
 * migration, in order): the last applied and the count, `none` before the first. A failed status fails it.
 */
const sequelizeRevision = (status: string) =>
  `s=$(${status}) && printf '%s\\n' "$s" | awk '$1 == "up" { n++; last = $2 } END { print n ? last " (" n " applied)" : "none" }'`;

/** alembic's options before its command that its revision and its ini depend on: `-c/--config FILE`, `-n/--name SECTION`. */
const ALEMBIC_OPTIONS = String.raw`(?:\s+(?:-c|--config|-n|--name)\s+[^\s;&|]+)*`;

/**
 * apphost:database.revision when unset: the revision command of the tool the
 * migrate command runs, when it has one. `alembic [-c FILE] upgrade head` has
 * `alembic [-c FILE] current`, Flask-Migrate's `flask [--app APP] db upgrade`
 * has `flask [--app APP] db current`, Django's `[python] manage.py migrate
 * [--noinput]` (or `django-admin migrate`) has the same manage.py's shell
 * printing the last applied migration and the count (DJANGO_REVISION),
 * sequelize-cli's `[npx] sequelize-cli db:migrate [--env E ...]` its
 * `db:migrate:status` read the same way, knex's `[npx] knex [--knexfile F]
 * migrate:latest` its `migrate:currentVersion` (the newest applied
 * migration's timestamp: each migration has its own); each after the same
 * leading `cd <dir>` (a monorepo's `cd backend && ...`), read by the web
 * line's rule (whereAndSteps). In a chain of steps, the revision of the one
 * step that has one; with none or several, none (""), as for anything else.
 * A package.json script run by its manager (`npm run migrate`, `yarn
 * migrate`, `pnpm run migrate`) has the revision of the command the script
 * runs (`knex migrate:latest`), given `scripts` (package.json's): npm puts
 * node_modules/.bin on its PATH, as the units' PATH has it.
 */
export function defaultRevision(migrate: string, scripts: Readonly<Record<string, string>> = {}): string {
  const script = packageScript(migrate);
  if (script !== undefined && Object.hasOwn(scripts, script)) return defaultRevision(scripts[script]);
  const { where, steps } = whereAndSteps(migrate);
  if (where || steps.length > 1) {
    // A chain: the revision of its one step that has one (linkding's bootstrap, `mkdir -p data/favicons && python
    // manage.py generate_secret_key && python manage.py migrate && ...`). A data-only step beside it (a seed) changes
    // no revision, as it changes no fingerprint; the migration's own count still tells its data migrations.
    const found = steps.map((s) => defaultRevision(s, where ? {} : scripts)).filter((r) => r !== "");
    const inner = found.length === 1 ? found[0] : DATABASE_DEFAULTS.revision;
    return inner && where ? `${where} && ${inner}` : inner;
  }
  const m = migrate.trim();
  // `--name value` or `--name=value` options, kept for the revision command (--env, --knexfile).
  const options = "((?:\\s+--[a-z-]+(?:=|\\s+)[^\\s;&|-][^\\s;&|]*)*)";
  const sequelize = new RegExp(`^((?:npx\\s+)?sequelize(?:-cli)?)\\s+db:migrate${options}$`).exec(m);
  if (sequelize) return sequelizeRevision(`${sequelize[1]} db:migrate:status${sequelize[2]}`);
  const knex = new RegExp(`^((?:npx\\s+)?knex${options})\\s+migrate:latest${options}$`).exec(m);
  if (knex) return `${knex[1]} migrate:currentVersion${knex[3]}`;
  const alembic = new RegExp(`^(alembic${ALEMBIC_OPTIONS})\\s+upgrade\\s+head$`).exec(m);
  if (alembic) return `${alembic[1]} current`;
  const flask = /^(flask(?:\s+(?:-A|--app)\s+[^\s;&|]+)?\s+db)\s+upgrade$/.exec(m);
  if (flask) return `${flask[1]} current`;
  const django =
    /^((?:python(?:3(?:\.\d+)?)?\s+)?(?:\.\/)?manage\.py|django-admin)\s+migrate(?:\s+--no-?input)?$/.exec(m);
  if (django) return `${django[1]} ${DJANGO_REVISION}`;
  return DATABASE_DEFAULTS.revision;
}

/**
 * The manage.py of a Django migration, as its revision runs it (`python manage.py`, `cd backend && python
 * manage.py`, `django-admin`), or undefined for another tool's: what the install phase's SECRET_KEY check runs.
 */
export function djangoCommand(migrate: string): string | undefined {
  const revision = defaultRevision(migrate);
  return revision.endsWith(` ${DJANGO_REVISION}`)
    ? revision.slice(0, -DJANGO_REVISION.length - 1)
    : undefined;
}

/**
 * Where an alembic migration runs and the ini it reads, relative to the release: `cd backend && alembic -c
 * conf/alembic.ini upgrade head` is `{ dir: "backend", ini: "backend/conf/alembic.ini" }`, plain `alembic upgrade
 * head` `{ dir: ".", ini: "alembic.ini" }`; undefined for another tool's, a chain with no alembic step, or a path that
 * leaves the release. What a failed migration's hint reads (alembic_url_hint, release.sh).
 */
export function alembicConfig(migrate: string): { dir: string; ini: string } | undefined {
  const found = alembicMigration(migrate);
  return found && "ini" in found ? found : undefined;
}

/**
 * Where a migration's alembic revisions live, relative to the release: alembic's own command as alembicConfig reads it
 * (the ini's script_location, which the release script reads), or Flask-Migrate's `flask db upgrade`, whose scripts
 * are `migrations/` where it runs (`-d`/`--directory` names another), `{ dir, scripts }`; undefined for another tool's.
 * What the install phase's check for a versions directory with no revision reads (alembic_revisions_check).
 */
export function alembicMigration(
  migrate: string,
): { dir: string; ini: string } | { dir: string; scripts: string } | undefined {
  const { where, steps } = whereAndSteps(migrate);
  const dir = path.posix.normalize(where.replace(/^cd\s+/, "").replace(/\s*&&\s*cd\s+/g, "/") || ".");
  const upgrade = new RegExp(`^alembic(${ALEMBIC_OPTIONS})\\s+upgrade\\s+\\S+$`);
  const flaskUpgrade = /^flask(?:\s+--app\s+[^\s;&|]+)?\s+db\s+upgrade((?:\s+[^\s;&|]+)*)$/;
  const alembic = steps.map((s) => upgrade.exec(s.trim())).filter((m) => m !== null);
  const flask = steps.map((s) => flaskUpgrade.exec(s.trim())).filter((m) => m !== null);
  let found: { dir: string; ini: string } | { dir: string; scripts: string };
  if (alembic.length === 1 && flask.length === 0) {
    const file = /(?:-c|--config)\s+([^\s;&|]+)/.exec(alembic[0][1])?.[1] ?? "alembic.ini";
    found = { dir, ini: path.posix.join(dir, file) };
  } else if (flask.length === 1 && alembic.length === 0) {
    const named = /(?:^|\s)(?:-d|--directory)\s+([^\s;&|]+)/.exec(flask[0][1])?.[1];
    found = { dir, scripts: path.posix.join(dir, named ?? "migrations") };
  } else return undefined;
  const outside = (p: string) => p === ".." || p.startsWith("../") || path.posix.isAbsolute(p);
  return outside(dir) || outside("ini" in found ? found.ini : found.scripts) ? undefined : found;
}

/** Postgres on the host, on RDS or elsewhere: DATABASE_URL and the pool come from apphost, pg_dump takes the backups. */
export function isPostgres(kind: "sqlite" | "postgres" | "rds" | "external" | "none" | undefined): boolean {
  return kind === "postgres" || kind === "rds" || kind === "external";
}

/**
 * A Postgres that lives on no app host (RDS, or `external`: one whose URL the
 * stack is given): reached over the network with DATABASE_URL, dumped with
 * pg_dump through it, never provisioned by apphost's host commands.
 */
export function isRemotePostgres(
  kind: "sqlite" | "postgres" | "rds" | "external" | "none" | undefined,
): boolean {
  return kind === "rds" || kind === "external";
}

/**
 * What each apphost:host.os ships that apphost's checks name, newest OS first: its python3 (the check phase's
 * message names the first whose Python would do) and the major version of its pg_dump (postgresql-client),
 * which takes an RDS database's backups and refuses a later server, so it bounds apphost:database.rds.engineVersion.
 */
export const HOST_OS_PACKAGES = {
  "debian-13": { python: "3.13.5", pgDump: 17 },
  "ubuntu-24.04": { python: "3.12.3", pgDump: 16 },
  "debian-12": { python: "3.11.2", pgDump: 15 },
} as const;

/** `apphost:database.rds` */
export const RDS_DEFAULTS = {
  instanceClass: "db.t4g.micro",
  allocatedStorageGb: 20,
  engineVersion: "15",
  multiAz: false,
};

/** Automated RDS backups: a month on production, a week elsewhere. */
export function defaultRdsBackupRetentionDays(stack: string): number {
  return isProductionStack(stack) ? 30 : 7;
}

/** The variables apphost exports from `apphost:database.pool`, and the key each comes from. */
export const POOL_VARS: Record<string, string> = {
  DB_POOL_SIZE: "size",
  DB_MAX_OVERFLOW: "maxOverflow",
  DB_POOL_TIMEOUT: "timeoutSeconds",
  DB_POOL_RECYCLE: "recycleSeconds",
};

/** `apphost:database.pool`: the runbook's SQLAlchemy pool settings. */
export const DATABASE_POOL_DEFAULTS = {
  size: 5,
  maxOverflow: 10,
  timeoutSeconds: 30,
  recycleSeconds: 1800,
};

/**
 * Dev-only switches that wipe the database when the app starts. Refused on
 * stacks named `prod*` (in apphost:app.env and apphost:secretEnv).
 */
export const DEV_RESET_SWITCHES = [
  "DB_RESET_ON_STARTUP",
  "RESET_DB_ON_STARTUP",
  "DB_DROP_ON_STARTUP",
] as const;

/** A reset switch counts as on unless its value is empty, 0, false, no or off. */
export function isSwitchOn(value: string): boolean {
  return !/^(|0|false|no|off)$/i.test(value.trim());
}

/** Postgres identifiers cannot contain dashes, so `shop-prod` becomes `shop_prod`. */
export function defaultPostgresName(app: string, stack: string): string {
  return `${app}_${stack}`.replace(/-/g, "_");
}

export const BACKUPS_DEFAULTS = {
  schedule: "daily",
  /** Off: the bucket costs money and needs IAM rights the deploy role may not have (docs/ci.md). */
  s3: false,
};

export function defaultBackupsKeep(stack: string): number {
  return isProductionStack(stack) ? 30 : 7;
}

/**
 * How long the bucket keeps a copy: a quarter for production (a problem noticed
 * late can still be traced back), a month elsewhere.
 */
export function defaultBackupsS3ExpireDays(stack: string): number {
  return isProductionStack(stack) ? 90 : 30;
}

export const RELEASES_DEFAULTS = {
  keep: 5,
  healthTimeoutSeconds: 60,
  drainSeconds: 5,
  lockTtlMinutes: 30,
  minFreeMb: 500,
  batchSize: 1,
};

/** `apphost:lb` */
export const LB_DEFAULTS = {
  port: 22,
  healthIntervalSeconds: 1,
};
