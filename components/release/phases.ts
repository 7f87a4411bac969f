/**
 * The release lifecycle as data: named phases, each a list of bash commands
 * built by pure functions from the typed config (Capistrano's named phases,
 * Kamal's commands-as-data). `script.ts` renders them into one script,
 * `apphost-release`, which runs each phase as a function and provides the
 * helpers the commands call (`note`, `die`, `as_app`, `lock_acquire`,
 * `health_wait`, `db_backup`, ...; documented there).
 *
 * Deploy:   check → upload → install → backup → migrate → publish → health-gate → finish
 * Prepare:  check → upload → install                   (`apphost-release prepare`: several app hosts, before the roll)
 * Mirror:   revert-traffic → restore-database → restart-workers → mark-failed   (run by the EXIT trap when a deploy fails)
 * On purpose (`apphost-release rollback [id]`): choose → publish → health-gate → finish
 *
 * Runtime values are shell variables the script sets; `ReleaseRefs` names them
 * (or, for a readable plan, holds literal values):
 *   RELEASE_ID, REQ_HASH        argv of `deploy`
 *   OLD_PORT, NEW_PORT          set by the check phase from active-port (blue = basePort, green = basePort + 1)
 *   OLD_DIR                     release `current` pointed to before the deploy ("" on the first deploy)
 *   BACKUP_FILE                 set by the backup phase ("" when there was no database yet)
 *   DB_FP_BEFORE, REVISION_BEFORE, REVISION, MIGRATE_T0   set by migrate
 *   NEW_STARTED, SWITCHED, COMMITTED, MIGRATE_STARTED   progress flags the mirror reads
 */
import * as path from "path";
import type { AppConfig, BackupsConfig, DatabaseConfig, ProxyConfig, ReleasesConfig } from "../config/types";
import { commandDropIn, instanceEnvFile, unitName, upstreamPort, type HostLayout } from "../paths";
import { shellQuote as q } from "../shell";
import { assertSafePath, shellFunction, toolsOf, type HostTools, type S3Target } from "./backup";
import { requirementsFile } from "./artifact";
import {
  buildToolReleases,
  memberDirs,
  nodeDepsOf,
  nodeEnginesWarning,
  nodeInstallLabel,
  nodeSettings,
  isYarnBerry,
  dirsDownTo,
  npmInstallTool,
} from "./node";
import {
  normalizedPackage,
  installsGroups,
  pythonDepsOf,
  pythonInstallCommands,
  pythonInstallLabel,
  pythonInterpreterCommands,
  pythonVersionCheck,
  runtimeTxtWarning,
} from "./python";
import { alembicConfig, alembicMigration, djangoCommand, isPostgres } from "../config/defaults";
import { renderUpstreamRuleset } from "../render/nftables";
import { leadingProgram, PYTHON_SERVERS } from "../config/procfile";
import { assertSafe, SAFE } from "../shell";

/** The deploy phases, in order. */
export const DEPLOY_PHASES = [
  "check",
  "upload",
  "install",
  "backup",
  "migrate",
  "publish",
  "health-gate",
  "finish",
] as const;
export type DeployPhaseName = (typeof DEPLOY_PHASES)[number];
/**
 * `apphost-release prepare`: the deploy's phases before anything that serves changes. With several app hosts
 * each one prepares side by side before the roll (remote/rollout.ts); the deploy then reuses what they made.
 */
export const PREPARE_PHASES = DEPLOY_PHASES.slice(0, DEPLOY_PHASES.indexOf("install") + 1);
export type MirrorPhaseName = "revert-traffic" | "restore-database" | "restart-workers" | "mark-failed";
export type RollbackPhaseName = "choose" | "publish" | "health-gate" | "finish";

export interface Phase<N extends string = string> {
  name: N;
  description: string;
  /** Exit status of `apphost-release` when this phase fails */
  exitCode: number;
  commands: string[];
}

/** Exit statuses of `apphost-release`. Each deploy phase has its own. */
export const EXIT_CODES = {
  ok: 0,
  /** Bad arguments */
  usage: 2,
  check: 10,
  upload: 11,
  install: 12,
  backup: 13,
  migrate: 14,
  publish: 15,
  "health-gate": 16,
  finish: 17,
  /** Another deploy holds the lock (a check failure with its own status, so callers can retry) */
  locked: 18,
  /** `rollback` without a target: no older successfully deployed release on the host */
  nothingToRollBack: 19,
  /** A deploy failed AND its automatic rollback failed too: look at the host */
  rollbackFailed: 20,
  /** `restore` failed */
  restore: 21,
  /** `rollback` on purpose: the target release is unusable (missing, incomplete, already current) */
  choose: 22,
  /** A detached job (`start`) ended without an exit status: its unit was killed (OOM, `systemctl kill`, a reboot) */
  jobLost: 23,
} as const;

export interface ReleaseInput {
  layout: HostLayout;
  app: AppConfig;
  database: DatabaseConfig;
  releases: ReleasesConfig;
  backups: Pick<BackupsConfig, "keep">;
  /** apphost:backups.s3: copy each backup there (BackupBucket.target) */
  s3?: S3Target;
  proxy: Pick<ProxyConfig, "kind">;
  /**
   * What the health gate's requests carry, as the proxy's would: the stack's
   * first hostname as Host and its scheme as X-Forwarded-Proto, so an app that
   * checks its host (Django's ALLOWED_HOSTS) or redirects plain http answers
   * the gate as it answers users. Absent: curl's own Host (127.0.0.1:<port>).
   */
  health?: { host: string; proto: "http" | "https" };
  /**
   * One of several app hosts that is not the first (apphost:host.addresses):
   * the first host backs the database up and migrates it, once per release,
   * before any other host gets the new code; this one does neither.
   */
  follower?: boolean;
  /** Shell words for the runtime values; default: the script's variables */
  refs?: Partial<ReleaseRefs>;
  /** Test hooks baked into the commands; omit in production */
  tools?: Partial<HostTools>;
}

/** Text for the values only known on the host at run time: a `$VAR` or a literal of safe characters. */
export interface ReleaseRefs {
  id: string;
  requirementsHash: string;
  newPort: string;
  oldPort: string;
}

/** The script's variables; every command uses a ref inside a double-quoted word. */
export const SCRIPT_REFS: ReleaseRefs = {
  id: "$RELEASE_ID",
  requirementsHash: "$REQ_HASH",
  newPort: "$NEW_PORT",
  oldPort: "$OLD_PORT",
};

// --------------------------------------------------------------- host files

/**
 * Where the web instance on `port` finds its release: `<root>/instances/<port>`
 * is a symlink to `releases/<id>`, switched before that instance starts, so
 * the new instance runs the new release while `current` (and the old
 * instance) still point at the old one. The web unit template uses
 * `WorkingDirectory=<root>/instances/%i`.
 */
export function instanceDir(layout: HostLayout, port: number | string): string {
  return `${layout.instances}/${port}`;
}

/**
 * The nftables ruleset that points the stack's upstream port at `port`
 * (`nft -f -` input; components/render/nftables.ts). The proxy's own
 * configuration never changes per release.
 */
export function upstreamRuleset(layout: HostLayout, app: Pick<AppConfig, "basePort">, port: number): string {
  return renderUpstreamRuleset(layout, { basePort: app.basePort, port });
}

// ------------------------------------------------------------------ helpers

export function webProcess(app: AppConfig): string | undefined {
  const webs = app.processes.filter((p) => p.kind === "web");
  if (webs.length > 1) {
    throw new Error(
      `apphost:app.processes: only one process can be kind "web" (it gets the two alternating ports); ` +
        `found ${webs.map((p) => p.name).join(", ")}`,
    );
  }
  return webs[0]?.name;
}

export function workerUnits(input: ReleaseInput): string[] {
  return input.app.processes
    .filter((p) => p.kind === "worker")
    .map((p) => unitName(input.layout, p.name, "worker"));
}

/**
 * `dropin_write <file> <content>` (release.sh) of a process's command drop-in, its content the header's
 * `DROPINS[<name>]` (script.ts): `unit` is the web instance's (`…@<port>.service`) as the publish phase starts it,
 * else a worker's (liveDropIns).
 */
function dropInWrite(input: ReleaseInput, unit: string, process: string, fn = "dropin_write"): string {
  return `${fn} "${commandDropIn(input.layout, unit)}" "\${DROPINS[${process}]}"`;
}

/** The switch's drop-ins: each worker's command as the new live release runs it, then daemon-reload. */
function liveDropIns(input: ReleaseInput, t: HostTools): string[] {
  // A scheduled job's unit is written after the release, by pulumi up: a failed release leaves it as it was.
  const writes = input.app.processes
    .filter((p) => p.kind === "worker")
    .map((p) => dropInWrite(input, unitName(input.layout, p.name, "worker"), p.name, "live_dropin_write"));
  return writes.length ? [...writes, `${t.systemctl} daemon-reload`] : [];
}

function refsOf(input: ReleaseInput): ReleaseRefs {
  return { ...SCRIPT_REFS, ...input.refs };
}

function paths(input: ReleaseInput) {
  const l = input.layout;
  for (const [k, v] of Object.entries(l)) {
    if (typeof v === "string" && v.startsWith("/")) assertSafePath(`layout.${k}`, v);
  }
  return l;
}

/** `apphost-x-web@"$NEW_PORT".service` */
export function webUnit(input: ReleaseInput, port: string): string {
  const name = webProcess(input.app);
  if (!name) throw new Error("no web process");
  return unitName(input.layout, name, "web").replace("@.service", `@${port}.service`);
}

function validateReleases(r: ReleasesConfig): void {
  const bad: string[] = [];
  const whole = (k: keyof ReleasesConfig, min: number) => {
    const v = r[k] as number;
    if (!Number.isInteger(v) || v < min)
      bad.push(`apphost:releases.${k} must be a whole number >= ${min}, got ${v}`);
  };
  whole("keep", 2);
  whole("healthTimeoutSeconds", 1);
  whole("drainSeconds", 0);
  whole("lockTtlMinutes", 1);
  whole("minFreeMb", 0);
  if (bad.length) throw new Error(bad.join("\n"));
}

// --------------------------------------------------------------- the phases

/** check: root, disk space, the deploy lock, host directories, which port is next. */
export function checkPhase(input: ReleaseInput): Phase<"check"> {
  const l = paths(input);
  const r = input.releases;
  validateReleases(r);
  const user = q(l.user);
  const base = input.app.basePort;
  return {
    name: "check",
    description:
      `At least ${r.minFreeMb} MiB free under ${l.root}; take the deploy lock (expires after ${r.lockTtlMinutes} min); ` +
      `ensure the host directories; pick the inactive port (${base} or ${base + 1}).`,
    exitCode: EXIT_CODES.check,
    commands: [
      // The app's Python requirement first: a host that cannot run it is refused before anything changes.
      ...(input.app.runtime === "python"
        ? pythonVersionCheck(pythonDepsOf(input.app), input.app.python ?? "system")
        : []),
      // Missing directories only: an existing one keeps the mode and owner it has (tmpfiles.d sets them).
      `ensure_dirs 0755 root ${l.root} ${l.releases} ${l.instances} ${l.venvs} ${l.shared} ${l.bin}`,
      `ensure_dirs 0750 ${user} ${l.data} ${l.logs} ${l.root}/cache`,
      `ensure_dirs 0700 root ${l.backups}`,
      // Its header and blanks dropped in bash: the digits of one number, the MiB available.
      `free_mb=$(df -m --output=avail ${l.root}); free_mb=\${free_mb//[!0-9]/}`,
      `if [ "$free_mb" -lt ${r.minFreeMb} ]; then die "only $free_mb MiB free under ${l.root}; ${r.minFreeMb} MiB required (apphost:releases.minFreeMb): remove old backups or grow the disk"; fi`,
      `lock_acquire ${r.lockTtlMinutes}`,
      "choose_ports",
      `if [ -e ${l.current} ]; then OLD_DIR=$(readlink -f ${l.current}); else OLD_DIR=""; fi`,
      `if [ ! -e ${l.envFile} ]; then note "warning: ${l.envFile} does not exist; processes start without the stack's environment"; fi`,
    ],
  };
}

/** upload: the artifact from stdin into releases/<id>.tmp, verified, then renamed; a complete release is reused. */
export function uploadPhase(input: ReleaseInput): Phase<"upload"> {
  const l = paths(input);
  const id = refsOf(input).id;
  const dir = `${l.releases}/${id}`;
  return {
    name: "upload",
    description:
      "Read the release tar.gz from stdin into releases/<id>.tmp (checksum and gzip verified), then rename it to " +
      "releases/<id>; a release directory that already exists is complete (rename is atomic) and is reused.",
    exitCode: EXIT_CODES.upload,
    commands: [
      `NEW_DIR="${dir}"`,
      `if [ -d "$NEW_DIR" ]; then note "upload: release ${id} is already on the host; reusing it"; drain_stdin; return 0; fi`,
      `rm_existing "$NEW_DIR.tmp" "$NEW_DIR.tar.gz.tmp"`,
      `(umask 077 && cat >"$NEW_DIR.tar.gz.tmp")`,
      `if [ ! -s "$NEW_DIR.tar.gz.tmp" ]; then die "no artifact on stdin: deploy reads the release tar.gz from standard input"; fi`,
      `if [ -n "$ARTIFACT_SHA256" ]; then actual=$(sha256sum "$NEW_DIR.tar.gz.tmp"); actual=\${actual%% *}; if [ "$actual" != "$ARTIFACT_SHA256" ]; then die "artifact checksum mismatch: expected $ARTIFACT_SHA256, received $actual (interrupted upload?)"; fi; fi`,
      `if ! gzip -t "$NEW_DIR.tar.gz.tmp" 2>/dev/null; then die "the artifact on stdin is not a complete gzip stream (interrupted upload?)"; fi`,
      `mkdir -m 0755 "$NEW_DIR.tmp"`,
      `tar -xzf "$NEW_DIR.tar.gz.tmp" -C "$NEW_DIR.tmp" --no-same-owner`,
      "local uploaded",
      "utc_time uploaded",
      `printf 'id=%s\\nuploaded=%s\\n' "${id}" "$uploaded" >"$NEW_DIR.tmp/.apphost-release"`,
      `rm -f "$NEW_DIR.tar.gz.tmp"`,
      `mv -T "$NEW_DIR.tmp" "$NEW_DIR"`,
    ],
  };
}

/**
 * npm's environment on the host: its cache under the stack's root, and the
 * host's CA store (Node trusts only its bundled roots otherwise, so a host
 * behind a TLS-inspecting proxy could apt and pip but not npm).
 */
export const NPM_ENV = (root: string): string =>
  `npm_config_cache=${root}/cache/npm NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt`;

/**
 * install phase, before a build that runs `npm install` (or `npm i`) with no package named: a warning when the
 * directory it starts in (`cd frontend && ...`, else the release) has no package-lock.json or npm-shrinkwrap.json,
 * since npm then resolves the frontend's dependencies anew for each release (cookiecutter-flask's Heroku build).
 */
export function npmWithoutLockWarning(build: string): string[] {
  if (!/(?:^|[\s;&|(])npm (?:install|i)(?:\s+-[-\w=]+)*(?=\s*(?:$|[;&|)]))/.test(build)) return [];
  const dir = leadingProgram(build)?.dir;
  if (dir !== undefined && !SAFE.relativeDir.test(dir)) return [];
  const at = dir ? `"$NEW_DIR/${dir}"` : '"$NEW_DIR"';
  return [
    `if [ ! -f ${at}/package-lock.json ] && [ ! -f ${at}/npm-shrinkwrap.json ]; then note ${q(
      `warning: apphost:app.build runs npm install in ${dir ? `${dir}/` : "the release"} with no package-lock.json there: ` +
        "npm resolves its dependencies anew for each release, which may build with versions no one tried; commit " +
        "the lock (npm install --package-lock-only) and run npm ci instead",
    )}; fi`,
  ];
}

/**
 * Whether a build command installs packages (`npm ci && npm run build`, `bun install`, `pip install -e .`): its failure on a host
 * without a C compiler may be a dependency built from source, as the dependencies' own install's may; a build
 * that only runs the app's tools (`vite build`, `collectstatic`) gets no such hint.
 */
export function installsPackages(command: string): boolean {
  return /(?:^|[\s;&|(])(?:npm (?:ci|install|i)|yarn install|yarn(?=\s*(?:$|[;&|)]))|pnpm (?:install|i)|bun (?:install|i)|pip3? install|python3? -m pip install|uv (?:sync|pip install))(?=\s|$|[;&|)])/.test(
    command,
  );
}

/** install: shared links, ownership, the venv (reused per requirements hash) or npm ci, the build. */
export function installPhase(input: ReleaseInput): Phase<"install"> {
  const l = paths(input);
  const app = input.app;
  const refs = refsOf(input);
  const user = q(l.user);
  const req = requirementsFile(app);
  if (req !== "") assertSafe("install phase", [["apphost:app.requirements", req, SAFE.relativeFile]]);
  assertSafe("install phase", [
    ...app.sharedDirs.map((d, i) => [`apphost:app.sharedDirs[${i}]`, d, SAFE.relativeDir] as const),
    ...app.dotenv.map((f, i) => [`apphost:app.dotenv[${i}]`, f, SAFE.relativeFile] as const),
  ]);
  const commands = [
    `NEW_DIR="${l.releases}/${refs.id}"`,
    // What on_error's hint for a missing C compiler reads: the dependencies' install, not the build.
    `INSTALLING=dependencies`,
    // data/ and logs/ are never in the artifact (a retry of this release may have linked them already).
    `rm_existing "$NEW_DIR/data" "$NEW_DIR/logs"`,
    `chown -hR ${user}: "$NEW_DIR"`,
  ];
  // After the dependencies' install, which builds a packaged app from the release (`pip install .`): setuptools'
  // automatic discovery takes every top-level directory of a flat layout for a package, and failed on the links
  // (`Multiple top-level packages discovered in a flat-layout: ['logs', 'data', 'scmdemo']`). Before the build.
  const links = [
    // The shared data/ and logs/ linked in.
    `ln -sfn ${l.data} "$NEW_DIR/data"`,
    `ln -sfn ${l.logs} "$NEW_DIR/logs"`,
    `chown -h ${user}: "$NEW_DIR/data" "$NEW_DIR/logs"`,
    // Before the build, as Capistrano links its linked_dirs: the release is the app user's from here on.
    ...app.sharedDirs.map((d) => `link_shared_dir ${q(d)}`),
    // apphost:app.sharedUrls: the proxy serves these from shared/data/linked, which is otherwise closed to it.
    ...app.sharedDirs
      .filter((d) => Object.values(app.sharedUrls ?? {}).includes(d))
      .map((d) => `share_with_proxy ${q(d)}`),
    // Before the build too, which may read it (a Django collectstatic whose settings read the file).
    ...app.dotenv.map((f) => `link_dotenv ${q(f)}`),
  ];
  if (app.runtime === "python") {
    const deps = pythonDepsOf(app);
    const cache = `${l.root}/cache`;
    commands.push(
      ...pythonInterpreterCommands(deps, app.python ?? "system", cache),
      ...runtimeTxtWarning(deps),
      // One venv per lock file and Python version, reused by every release that has both.
      `VENV="${l.venvs}/${refs.requirementsHash}-py$PY_MM"`,
      // The venv belongs to the app user (its packages' code may have changed it): probed and marked as that user, never run as root.
      `if [ -f "$VENV/.apphost-complete" ] && as_app "$NEW_DIR" "$VENV/bin/python -c ''" 2>/dev/null; then note "install: reusing $VENV"; else ` +
        `note ${q(`install: ${pythonInstallLabel(deps)} into`)}" $VENV"; rm -rf "$VENV"; install -d -m 0755 -o ${user} -g ${user} "$VENV"; ` +
        `${pythonInstallCommands(deps, cache).join("; ")}; as_app "$NEW_DIR" "touch $VENV/.apphost-complete"; fi`,
      `rm_existing "$NEW_DIR/.venv"`,
      `ln -sfn "$VENV" "$NEW_DIR/.venv"`,
      `chown -h ${user}: "$NEW_DIR/.venv"`,
    );
  }
  if (app.runtime === "node") commands.push(...nodeInstallCommands(input));
  commands.push(...links);
  const steps: string[] = [];
  if (app.build) {
    // Yarn, pnpm or Bun the build names (a frontend's `yarn install && yarn build`) that the app's own install did
    // not bring: npm installs it once per release line into the stack's cache/tools, first on the build's PATH.
    // Bun keeps its package cache in the stack's cache/bun (the app user's home, the stack's root, is root's).
    const tools = buildToolReleases(app);
    const bunCache = tools.some((t) => t.tool === "bun") ? ` BUN_INSTALL_CACHE_DIR=${l.root}/cache/bun` : "";
    assertSafe(
      "install phase",
      tools.map((t) => [`${t.tool}'s version`, t.version, SAFE.version] as const),
    );
    const dirs = tools.map((t) => `${l.root}/cache/tools/${t.tool}-${t.version}`);
    steps.push(
      `INSTALLING=${installsPackages(app.build) ? "dependencies" : "build"}`,
      ...npmWithoutLockWarning(app.build),
      ...tools.map(
        (t, i) =>
          `if [ ! -x ${dirs[i]}/bin/${t.tool} ]; then as_app "$NEW_DIR" "${npmInstallTool(NPM_ENV(l.root), dirs[i], t.tool, t.version)}"; ` +
          `${t.tool === "npm" ? `as_app "$NEW_DIR" "${npmBuiltinFix(dirs[i])}"; ` : ""}fi`,
      ),
      `as_app "$NEW_DIR" ${q(
        tools.length > 0
          ? `export PATH="${dirs.map((d) => `${d}/bin`).join(":")}:$PATH" npm_config_nodedir=/usr${bunCache}; ${app.build}`
          : app.build,
      )}`,
    );
  }
  if (steps.length > 0) {
    commands.push(
      `if [ -f "$NEW_DIR/.apphost-installed" ]; then note "install: dependencies and build already done for this release"; else ${steps.join("; ")}; as_app "$NEW_DIR" "touch $NEW_DIR/.apphost-installed"; fi`,
    );
  }
  commands.push(
    ...programChecks(input),
    ...djangoChecks(input),
    ...migrationUnsetCheck(input),
    ...alembicRevisionsCheck(input),
    ...dropTablesCheck(input),
  );
  const linked =
    (app.sharedDirs.length > 0 ? ` Link ${app.sharedDirs.join(", ")} to ${l.linked}/ as ${l.user}.` : "") +
    (app.dotenv.length > 0 ? ` Link ${app.dotenv.join(", ")} to ${l.envFile}.` : "");
  return {
    name: "install",
    description:
      (app.runtime === "python"
        ? `Chown to ${l.user}, link .venv to venvs/<requirements hash>-py<X.Y>, ` +
          `created with ${pythonInstallLabel(pythonDepsOf(app))} unless it already exists complete.`
        : `Chown to ${l.user}, copy venvs/<lock hash>-node/node_modules into the release as hard links, ` +
          `created with ${nodeInstallLabel(nodeDepsOf(app))} unless it already exists complete.`) +
      ` Then link shared data/ and logs/.${linked}` +
      (app.build ? " Then run the build command." : ""),
    exitCode: EXIT_CODES.install,
    commands,
  };
}

/**
 * The rollback's warning when a later release's migration may have taken the database past the target's
 * migrations, which a rollback does not undo: the target's revision command fails (alembic: `Can't locate revision
 * identified by '…'`), or reports another revision than the one the target was deployed at (`$deployed`: knex,
 * sequelize-cli and Django read the newest applied migration from the database, whatever the release knows). It names
 * the backup taken before that migration (db_first_backup_after), if one is left.
 * With `revision` "" (the stack has no revision command), it speaks of the schema's fingerprints instead
 * (schema_revision, release.sh), which $REVISION and $deployed then hold.
 */
function rollbackRevisionWarning(input: ReleaseInput, revision: string): string {
  // The stack the operator passes to npm run restore: the layout's id is `<app>-<stack>` (paths.ts, hostLayout).
  const prefix = `${input.app.name}-`;
  const stack = input.layout.id.startsWith(prefix) ? input.layout.id.slice(prefix.length) : "<stack>";
  const why =
    "a later release's migration may have taken the database past this release's migrations, and a rollback does not touch the database";
  return [
    'local before said todo="no backup taken before a later release\'s migration is left on this host"',
    // The command as the stack gave it, single-quoted between the double-quoted parts.
    revision
      ? `if [ -n "$REVISION_FAILED" ]; then said="the revision command of release $RELEASE_ID failed ("${q(revision)}": \\"$REVISION_FAILED\\")"; ` +
        'else said="the database is at revision \\"$REVISION\\", not \\"$deployed\\" as when release $RELEASE_ID was deployed"; fi'
      : 'said="the database\'s schema is not the one release $RELEASE_ID was deployed with (its fingerprint \${REVISION#schema:}, then \${deployed#schema:}; the stack has no revision command, apphost:database.revision)"',
    'before=$(db_first_backup_after "$RELEASE_ID")',
    `if [ -n "$before" ]; then todo="if this release needs the schema it was deployed with, restore $before, the backup taken before the first migration after it (npm run restore -- --stack ${stack} --backup $before), and lose what was written since"; fi`,
    `note "rollback: warning: $said: ${why}; $todo"`,
  ].join("; ");
}

/**
 * install, after the Django checks, where the stack has a database and runs no migration: a warning when the release has a migration
 * tool's files (migration_unset_check, release.sh), and for Django's manage.py the Django checks too (djangoChecks),
 * static_root_check where no command apphost runs calls collectstatic (its argument: 1). Not on a follower, whose
 * first host runs the stack's migration.
 */
function migrationUnsetCheck({ database: db, follower, app }: ReleaseInput): string[] {
  if (db.kind === "none" || db.migrate || follower) return [];
  return [
    `migration_unset_check ${collectsStatic([app.build ?? "", ...app.processes.map((p) => p.command)]) ? 0 : 1}`,
  ];
}

/** Whether one of these commands runs Django's collectstatic. */
function collectsStatic(commands: string[]): boolean {
  return commands.some((c) => /\bcollectstatic\b/.test(c));
}

/**
 * A migration command named as a database's creation (`flask --app flaskr init-db`, `python manage.py create_db`, `npm run
 * setup-example-db`).
 */
const CREATES_DATABASE =
  /\b(?:init|create|reset|recreate|setup)[-_]?(?:[a-z]+[-_])?(?:db|database|tables?)\b/i;

/**
 * install, last, where this host runs a migration named as a database's creation: a warning when the release drops
 * tables (drop_tables_check, release.sh), which every release would then do.
 */
function dropTablesCheck(input: ReleaseInput): string[] {
  const migrate = migrationHere(input);
  return migrate && CREATES_DATABASE.test(migrate) ? [`drop_tables_check ${q(migrate)}`] : [];
}

/**
 * install, last, where this host runs an alembic migration (alembic's own command, or Flask-Migrate's): a warning
 * when its versions directory has no revision.
 */
function alembicRevisionsCheck(input: ReleaseInput): string[] {
  const migrate = migrationHere(input);
  const found = migrate ? alembicMigration(migrate) : undefined;
  if (!found) return [];
  return "ini" in found
    ? [`alembic_revisions_check ${q(found.ini)} ${q(found.dir)}`]
    : [`revisions_check ${q(found.scripts)} ${q(`flask db migrate -m "initial tables"`)}`];
}

/**
 * install, last, where this host runs a Django migration: a warning when the settings set STATIC_ROOT and no command
 * apphost runs calls collectstatic (static_root_check, release.sh), then Django's own deploy check of SECRET_KEY
 * (secret_key_check): a warning when it is the django-insecure- default or a short one.
 */
function djangoChecks(input: ReleaseInput): string[] {
  const migrate = migrationHere(input);
  const manage = input.app.runtime === "python" && migrate ? djangoCommand(migrate) : undefined;
  if (!manage) return [];
  const { app } = input;
  const collects = collectsStatic([app.build ?? "", migrate ?? "", ...app.processes.map((p) => p.command)]);
  return [...(collects ? [] : [`static_root_check ${q(manage)}`]), `secret_key_check ${q(manage)}`];
}

/**
 * Python programs that run the app's code, so that only its venv can give them: Debian's package of one (gunicorn,
 * alembic) runs on the host's Python, outside the venv, where the app's dependencies are not. Their error offers
 * no apphost:host.packages.
 */
const VENV_ONLY_PROGRAMS = new Set([...PYTHON_SERVERS, "celery", "alembic", "rq", "dramatiq"]);

/**
 * install, last: the program each process, job and the migration starts is found where its unit will look (the
 * release's .venv/bin or node_modules/.bin, then the host's PATH), as the app user. A web command whose server is
 * not among the app's dependencies (healthchecks' requirements have no gunicorn) would otherwise fail after the
 * backup and the migration, in the health gate, with `exec: gunicorn: not found` in a crash loop; here nothing
 * has changed yet. One look for all of them, and every one missing is named.
 */
function programChecks(input: ReleaseInput): string[] {
  const { app } = input;
  const migrate = migrationHere(input);
  const runs: { what: string; command: string }[] = [
    ...app.processes.map((p) => ({ what: `process ${p.name}`, command: p.command })),
    ...(app.schedules ?? []).map((j) => ({ what: `job ${j.name}`, command: j.command })),
    ...(migrate ? [{ what: "the migration", command: migrate }] : []),
  ];
  const checks = runs.flatMap((r) => {
    const lead = leadingProgram(r.command);
    return lead ? [{ ...r, ...lead }] : [];
  });
  if (checks.length === 0) return [];
  const look = checks
    .map((c, i) =>
      c.dir
        ? `(cd ${c.dir} && command -v ${c.program}) >/dev/null 2>&1 || echo ${i}`
        : `command -v ${c.program} >/dev/null 2>&1 || echo ${i}`,
    )
    .join("; ");
  const where = app.runtime === "python" ? ".venv/bin" : "node_modules/.bin";
  const python = app.runtime === "python" ? pythonDepsOf(app) : undefined;
  const grouped = python?.groupedPackages ?? {};
  const groupsNote =
    python && installsGroups(python)
      ? "a group or an extra only when apphost:app.dependencyGroups names it"
      : "no dev group";
  const deps = python
    ? `the app's main dependencies (${python.manifest}; apphost installs ${groupsNote}) or to apphost:app.extraRequirements`
    : `package.json's dependencies (${nodeDepsOf(app).lock})`;
  // A program a group or an extra the stack does not install has (uvicorn in Poetry's dev group): that one's name.
  const inGroups = (program: string) => {
    const pkg = normalizedPackage(program);
    const groups = Object.hasOwn(grouped, pkg) ? grouped[pkg] : [];
    if (groups.length === 0) return "";
    const names = groups.map((g) => `"${g.name}" ${g.as === "extra" ? "extra" : "group"}`).join(" and ");
    const which = groups.length === 1 ? `"${groups[0].name}"` : "one of them";
    return `; pyproject.toml lists it in its ${names}: add ${which} to apphost:app.dependencyGroups`;
  };
  const labels = checks.map((c) =>
    q(`\`${c.program}\`${c.dir ? ` in ${c.dir}/` : ""} (${c.what}: ${c.command}${inGroups(c.program)})`),
  );
  // 0 for a program only the venv can give: the host package is offered when one missing program is not such.
  const hostable = checks.map((c) => (app.runtime === "python" && VENV_ONLY_PROGRAMS.has(c.program) ? 0 : 1));
  return [
    "# shellcheck disable=SC2016 # the commands are quoted as the stack wrote them",
    `PROGRAM_LABELS=(${labels.join(" ")})`,
    `PROGRAM_HOSTABLE=(${hostable.join(" ")})`,
    `MISSING=$(as_app "$NEW_DIR" ${q(look)})`,
    `if [ -n "$MISSING" ]; then missing=(); host=""; for i in $MISSING; do missing+=("\${PROGRAM_LABELS[$i]}"); ` +
      `[ "\${PROGRAM_HOSTABLE[$i]}" = 0 ] || host=", or a host program's package to apphost:host.packages"; done; ` +
      `printf -v MISSING '%s; ' "\${missing[@]}"; ` +
      `fail "not found where the units look (the release, its ${where}, then the host's PATH), or not executable: \${MISSING%; }; add each to ${deps}$host, or fix the command; nothing was backed up or migrated"; fi`,
  ];
}

/**
 * The command that strips Debian's globalignorefile line from the builtin npmrc Debian's npm copies into an npm it
 * installs into `prefix`: npm 10 and later do not know it, and every run of that npm would warn (`Unknown builtin
 * config "globalignorefile"`).
 */
function npmBuiltinFix(prefix: string): string {
  const builtin = `${prefix}/lib/node_modules/npm/npmrc`;
  return `if [ -f ${builtin} ]; then sed -i /^globalignorefile=/d ${builtin}; fi`;
}

/**
 * install, a Node app: one node_modules per lock (venvs/<hash>-node), made by npm ci, or by the Yarn 1 or pnpm
 * release the app's lock calls for (node.ts: detectNodeDeps), which npm installs beside that tree and links into its
 * node_modules/.bin, so the app's own scripts find it (`yarn build`, `pnpm start`). Reused by every release that has
 * the lock, each release with a copy of it whose files are hard links (release.sh: release_node_modules).
 * devDependencies too, whatever NODE_ENV says, as Heroku installs them: the build (vite, tsc, webpack) needs them.
 */
function nodeInstallCommands(input: ReleaseInput): string[] {
  const l = paths(input);
  const user = q(l.user);
  const deps = nodeDepsOf(input.app);
  const lock = deps.lock;
  const members = input.app.npmWorkspaces ?? [];
  assertSafe("install phase", [
    ...members.map((w) => [`npm workspace member ${w.name}`, w.member, SAFE.relativeDir] as const),
    ...(deps.version === "" ? [] : [[`${deps.manager}'s version`, deps.version, SAFE.version] as const]),
  ]);
  const yarnFileDirs = dirsDownTo(
    (deps.yarnFiles ?? []).map((f) => path.posix.dirname(f)).filter((d) => d !== "."),
  );
  // The installer reads only the manifests: the root's, the lock and (an npm workspace) each member's package.json;
  // Yarn and pnpm also their settings.
  const manifests = [
    `install -m 0644 -o ${user} -g ${user} "$NEW_DIR/package.json" "$NEW_DIR/${lock}" "$NODE_DIR/"`,
    ...(members.length > 0
      ? [
          `install -d -m 0755 -o ${user} -g ${user} ${memberDirs(members)
            .map((d) => `"$NODE_DIR/${d}"`)
            .join(" ")}`,
        ]
      : []),
    ...members.map(
      ({ member }) =>
        `install -m 0644 -o ${user} -g ${user} "$NEW_DIR/${member}/package.json" "$NODE_DIR/${member}/"`,
    ),
    ...nodeSettings(deps).map(
      (f) =>
        `if [ -f "$NEW_DIR/${f}" ]; then install -m 0644 -o ${user} -g ${user} "$NEW_DIR/${f}" "$NODE_DIR/"; fi`,
    ),
    // Yarn 2 and later: the files .yarnrc.yml and the lock name, at their paths (the parser found each in the app),
    // in directories the app user owns (Yarn writes its install state to .yarn/).
    ...yarnFileDirs.map((d) => `install -d -m 0755 -o ${user} -g ${user} "$NODE_DIR/"${q(d)}`),
    ...(deps.yarnFiles ?? []).map(
      (f) => `install -m 0644 -o ${user} -g ${user} "$NEW_DIR/"${q(f)} "$NODE_DIR/"${q(f)}`,
    ),
  ];
  const cache = `${l.root}/cache`;
  const tool = `$NODE_DIR/.apphost-tool/bin/${deps.manager}`;
  // A dependency built from source (better-sqlite3 without a prebuilt binary) builds against the host's Node headers
  // (Debian's libnode-dev, which its npm depends on), as Debian's node-gyp does; the node-gyp that pnpm and Yarn bring,
  // and the one an app's lock brings (sqlite3 5 depends on node-gyp 8, which npm ci runs from node_modules/.bin),
  // would download them from nodejs.org into a directory under the stack's root, which the app user cannot write.
  const gyp = "npm_config_nodedir=/usr";
  // Yarn 2 and later install devDependencies always, check the lock with --immutable, and write what they linked to
  // .yarn/install-state.gz, which `yarn run` reads in each release (linked below); their global folder (metadata,
  // and the package cache unless .yarnrc.yml keeps it in the app) is the stack's cache (as_app), builds are printed.
  const berry = isYarnBerry(deps);
  // npm: the host's, or the release package.json's packageManager pins, installed as Yarn's and pnpm's are.
  const npmCi = (npm: string) => `${NPM_ENV(l.root)} ${gyp} ${npm} ci --include=dev --no-audit --no-fund`;
  const install =
    deps.manager === "npm"
      ? npmCi(tool)
      : deps.manager === "pnpm"
        ? `${NPM_ENV(l.root)} npm_config_store_dir=${cache}/pnpm-store npm_config_update_notifier=false ${gyp} ${tool} install --frozen-lockfile --prod=false`
        : berry
          ? `${NPM_ENV(l.root)} YARN_ENABLE_PROGRESS_BARS=false YARN_ENABLE_INLINE_BUILDS=true ${gyp} ${tool} install --immutable`
          : `${NPM_ENV(l.root)} YARN_CACHE_FOLDER=${cache}/yarn ${gyp} ${tool} install --frozen-lockfile --non-interactive --production=false --ignore-engines --no-progress`;
  const run =
    deps.manager === "npm" && deps.version === ""
      ? [`as_app "$NODE_DIR" "${npmCi("npm")}"`]
      : [
          `as_app "$NODE_DIR" "${npmInstallTool(NPM_ENV(l.root), "$NODE_DIR/.apphost-tool", deps.manager, deps.version)}"`,
          ...(deps.manager === "npm"
            ? [`as_app "$NODE_DIR" "${npmBuiltinFix("$NODE_DIR/.apphost-tool")}"`]
            : []),
          `as_app "$NODE_DIR" "${install}"`,
          `as_app "$NODE_DIR" "mkdir -p node_modules/.bin; ln -sfn ${tool} node_modules/.bin/${deps.manager}"`,
        ];
  return [
    `NODE_DIR="${l.venvs}/${refsOf(input).requirementsHash}-node"`,
    `if [ -f "$NODE_DIR/.apphost-complete" ]; then note "install: reusing $NODE_DIR/node_modules"; else ` +
      `note "install: ${nodeInstallLabel(deps)} into $NODE_DIR"; rm -rf "$NODE_DIR"; install -d -m 0755 -o ${user} -g ${user} "$NODE_DIR"; ` +
      `${manifests.join("; ")}; ` +
      `${run.join("; ")}; as_app "$NODE_DIR" "touch $NODE_DIR/.apphost-complete"; fi`,
    // The release's own copy of the tree, its files hard links (release.sh: release_node_modules).
    ["release_node_modules", '"$NODE_DIR"', ...members.map((w) => q(`${w.name}=${w.member}`))].join(" "),
    // As the app user, who owns the release: root never follows a link the app planted.
    ...(berry
      ? [
          `as_app "$NEW_DIR" "mkdir -p .yarn; ln -sfn $NODE_DIR/.yarn/install-state.gz .yarn/install-state.gz"`,
        ]
      : []),
    ...nodeEnginesWarning(),
  ];
}

/** backup: always before migrate; skipped (logged) only when there is no database yet. */
export function backupPhase(input: ReleaseInput): Phase<"backup"> {
  const refs = refsOf(input);
  if (input.follower && input.database.kind !== "none") {
    return {
      name: "backup",
      description:
        "The first app host backed the database up before its migration; nothing to do on this one.",
      exitCode: EXIT_CODES.backup,
      commands: ['note "backup: the first app host backs the database up before the migration; none here"'],
    };
  }
  return {
    name: "backup",
    description:
      input.database.kind === "none"
        ? "No database configured (apphost:database.kind = none)."
        : `Back up the ${input.database.kind} database (integrity-checked) before the migration; keep the ${input.backups.keep} newest backups.`,
    exitCode: EXIT_CODES.backup,
    commands: [
      "db_lock",
      `db_backup "pre-${refs.id}"`,
      "db_prune_backups",
      "db_unlock",
      // The deploy needs the local backup only: a failed copy is a warning, never a failed deploy.
      ...(input.s3 && input.database.kind !== "none"
        ? [
            'db_copy_offsite "$BACKUP_FILE" || note "warning: the deploy goes on with the backup on this host"',
          ]
        : []),
    ],
  };
}

/**
 * Refuses a release that wrote a SQLite database inside its own directory
 * (`stray_databases` since MIGRATE_T0): the next release is a new directory,
 * so the data would stay behind there, and go when the release is pruned.
 * Django's `startproject` settings do that (`BASE_DIR / "db.sqlite3"`), and
 * so does a Flask app with a relative `sqlite:///app.db`. The doctor's
 * `release` check looks for the same files in the live release.
 */
export function strayDatabaseCheck(input: ReleaseInput, who: { shell: string }): string {
  const l = paths(input);
  const db = input.database;
  const where =
    db.kind === "sqlite"
      ? `Open it where DATABASE_URL says (sqlite:///${l.data}/${db.sqliteFile}), or as data/<file> in the release ` +
        `(data/ links to ${l.data}) and set apphost:database.sqliteFile to <file>, so backups and restores take it`
      : db.kind === "none"
        ? "Set apphost:database.kind to sqlite and open the database where DATABASE_URL says (in the shared data directory, " +
          "backed up before every migration), or as data/<file> in the release with apphost:database.sqliteFile set to <file>"
        : undefined;
  // One line, the files first: the error Pulumi prints keeps the message's first line. A Postgres stack's advice is
  // the variables the app's code reads its database from, where they are its own (database_env_hint, release.sh).
  const pruned =
    ". The next release is a new directory, so its data would stay behind there, and go when this release is pruned. ";
  const message =
    who.shell +
    q(" wrote a SQLite database inside the release directory ") +
    `"$NEW_DIR: \${STRAY//$'\\n'/, }"` +
    (where !== undefined
      ? q(`${pruned}${where}.`)
      : q(`${pruned}apphost:database.kind is ${db.kind}: `) +
        `"\${DB_ENV_HINT:-make the app read DATABASE_URL (Postgres) instead of a SQLite file (Django: dj-database-url)}"` +
        q("."));
  const hint = where === undefined ? "DB_ENV_HINT=$(database_env_hint); " : "";
  return `if [ -n "$MIGRATE_T0" ]; then STRAY=$(stray_databases "$NEW_DIR" -newermt "@$MIGRATE_T0"); if [ -n "$STRAY" ]; then ${hint}die ${message}; fi; fi`;
}

/** What a Python app's failed migration adds when a command it ran was not found (exit status 127). */
export const MIGRATE_NOT_FOUND_HINT =
  "(exit status 127: a command the migration runs was not found, with the venv's bin first on PATH. apphost installs " +
  "a Python app's main dependencies only, not a dev group (Poetry, PDM, uv) or the Pipfile's [dev-packages]: if the " +
  "migration's tool is among those, move it to the main dependencies.)";

/**
 * What a table the database lacks means in the migration's own output: a migration used a table an earlier one had
 * not made yet (sinisaos/litestar-piccolo's tasks migration, with a foreign key to Piccolo's user table, runs before
 * the user app's under `piccolo migrations forwards all`; its scripts/migrations.sh runs the apps one at a time).
 */
export const MIGRATION_ORDER_HINT =
  "a migration used a table that no migration before it had created: the migrations ran out of order. A command " +
  'that migrates several apps at once (Piccolo\'s "piccolo migrations forwards all") runs them in its own order; ' +
  "where the app's instructions migrate one app at a time, set apphost:database.migrate to that (a script of the " +
  'app\'s, such as "bash scripts/migrations.sh", or each command joined with &&)';

/**
 * What Postgres refusing the app's password means: apphost's DATABASE_URL holds the stack's role and password, so the
 * app logged in with credentials of its own (esfoobar/quart-postgres-boilerplate's settings.toml defaults, read by
 * dynaconf). In the migrate phase, where database_env_hint may name the app's own variables, it gives way to that.
 */
export const PG_LOGIN_HINT =
  "Postgres refused the app's login: apphost gives the app the stack's role and its password in DATABASE_URL (and " +
  "${database.user}, ${database.password}), so the app logged in with a user or password of its own, such as its " +
  "settings' defaults: set the variables it reads them from in apphost:app.env from those references (with " +
  "${database.host} and ${database.name}); with apphost:database.kind external, check apphost:databaseUrl";

/** What a table the database lacks means (ERROR_HINTS, in each database's words). */
export const NO_TABLE_HINT =
  "the app's database has no such table: the stack's migration (apphost:database.migrate, or the Procfile's " +
  "release: line) creates the app's tables, and an Alembic project with no revision yet creates none (alembic " +
  "revision --autogenerate writes the first from the app's models; add it to the app), nor does Django's migrate for " +
  "an app with no migrations (python manage.py makemigrations)";

/** What a variable the app's settings require and its environment lacks means (ERROR_HINTS). */
const MISSING_VARIABLE =
  "the app's settings read a variable its environment lacks: set it in apphost:app.env (apphost:secretEnv for a " +
  "secret), which the stack's env file gives the processes, the build and the migration; the app's own .env is " +
  "not in the release (apphost:app.excludes), and apphost:app.dotenv points a file the app reads at the env file";

/** What a write into the release directory means, in Python's words or Node's (ERROR_HINTS). */
const READ_ONLY_RELEASE =
  "the release directory is read-only to the app's processes (each release replaces it): list the directory " +
  "the app writes in apphost:app.sharedDirs (a path inside the release, like .data or CTFd/uploads), which " +
  "keeps it across releases, or point the app at data/ (docs/config.md, Files the app writes)";

/**
 * What the error line of a Python traceback usually means, by what it says: the migrate phase adds it to a failed
 * migration's output, the health gate to the last error in the new instance's journal (`error_hint`, generated).
 */
export const ERROR_HINTS: readonly {
  says: string;
  /** What the line says after `says`, where it is not one string (the table's name between) */
  then?: string;
  hint: string;
  /** What it means in a migration's own output, where that differs (`error_hint <line> migration`) */
  inMigration?: string;
}[] = [
  {
    // Tortoise ORM (and aerich, its migrations) knows postgres://, asyncpg:// and psycopg://, not postgresql://.
    says: "Unknown DB scheme: postgresql",
    hint:
      "Tortoise ORM (and aerich) reads postgres:// (asyncpg), not the postgresql:// apphost writes in DATABASE_URL " +
      "by default: set apphost:database.urlScheme to postgres",
  },
  {
    // TypeORM's DataSource with no `type` (brocoders/nestjs-boilerplate's `type: process.env.DATABASE_TYPE`, with
    // DATABASE_URL beside it): a variable of the app's own that picks the database, which apphost does not set.
    says: 'Wrong driver: "undefined" given',
    hint:
      "TypeORM's DataSource got no type: the app reads the kind of database from a variable of its own that the " +
      "stack does not set (nestjs-boilerplate's DATABASE_TYPE): set it in apphost:app.env to postgres (sqlite for " +
      "apphost:database.kind sqlite); apphost sets DATABASE_URL, and the app's other database variables may " +
      "reference ${database.host}, ${database.port}, ${database.user}, ${database.password}, ${database.name}",
  },
  // A table that is not there: Postgres (psycopg, asyncpg, through SQLAlchemy or Django) and SQLite.
  // In a migration's own output, a table an earlier migration had not made yet.
  { says: 'relation "', then: '" does not exist', hint: NO_TABLE_HINT, inMigration: MIGRATION_ORDER_HINT },
  { says: "no such table: ", hint: NO_TABLE_HINT, inMigration: MIGRATION_ORDER_HINT },
  { says: 'password authentication failed for user "', hint: PG_LOGIN_HINT },
  {
    // SQLAlchemy 2.1 and later read a plain postgresql:// URL, as DATABASE_URL is, with psycopg 3.
    says: "No module named 'psycopg'",
    hint:
      "SQLAlchemy 2.1 and later read a postgresql:// URL, as apphost's DATABASE_URL is, with psycopg 3, not " +
      "psycopg2. Add psycopg[binary] to the app's dependencies, pin SQLAlchemy below 2.1, or set " +
      "apphost:database.urlScheme to postgresql+psycopg2 (docs/config.md)",
  },
  {
    // SQLAlchemy 2.0's "ValueError: the greenlet library is required to use this function. No module named
    // 'greenlet'" (2.1 says it itself: "... use the 'sqlalchemy[asyncio]' install target").
    says: "No module named 'greenlet'",
    hint:
      "SQLAlchemy's asyncio extension (create_async_engine, an async Alembic env.py) needs greenlet, which pip " +
      "installs with SQLAlchemy only where greenlet has a wheel, and SQLAlchemy 2.1 and later not at all: add " +
      "sqlalchemy[asyncio] to the app's dependencies",
  },
  {
    // Heroku's Python buildpack runs collectstatic for a Django app by itself; apphost runs apphost:app.build.
    says: "Missing staticfiles manifest entry",
    hint:
      "Django with ManifestStaticFilesStorage, as WhiteNoise sets it up, serves only what collectstatic wrote: set " +
      'apphost:app.build to "python manage.py collectstatic --noinput"',
  },
  {
    // pydantic 1.9 and older build a model's signature with its aliases; Python 3.11's inspect refuses a keyword
    // there (FastAPI's OpenAPI Schema aliases `not`): "ValueError: 'not' is not a valid parameter name" at import.
    says: "is not a valid parameter name",
    hint:
      "pydantic before 1.10 fails on Python 3.11 and later with a field aliased to a Python keyword (FastAPI's " +
      "OpenAPI models alias not): lock pydantic 1.10 or later (poetry update pydantic, still pydantic 1)",
  },
  {
    // BookWyrm's migration creates bloom, which only a superuser may (Postgres 15; a trusted one, like pg_trgm, its
    // database's owner may).
    says: "permission denied to create extension",
    hint:
      "the app's Postgres role owns its database but is no superuser, which this extension needs: list it in " +
      "apphost:database.extensions (kind postgres), and the host's postgres superuser creates it before the " +
      "release; the migration's CREATE EXTENSION IF NOT EXISTS then passes over it",
  },
  {
    // Python 3.10 removed the aliases of collections.abc's classes from collections: a dependency locked before 2018
    // or so fails at import (miguelgrinberg/flasky's Werkzeug 0.12.2: `cannot import name 'Container' from
    // 'collections'`; Jinja2 2.9's Mapping).
    says: "from 'collections' (",
    hint:
      "a dependency written for Python 3.9 or older imports an abstract base class from collections, which Python " +
      "3.10 moved to collections.abc: the traceback's last frame names the package (under site-packages/); lock a " +
      "release of it made for Python 3.10 or later, or run a Python it supports (pin the version in .python-version " +
      "or requires-python, and set apphost:app.python to managed)",
  },
  {
    // alembic run where its config has no script_location: fastapi_best_architecture keeps it in the root's
    // pyproject.toml ([tool.alembic], alembic 1.16 and later), and its backend/alembic.ini holds the logging alone.
    says: "No 'script_location' key found in configuration",
    hint:
      "alembic found no script_location where it ran: it reads alembic.ini in the directory it runs in (or the " +
      "file -c names) and, from alembic 1.16 on, [tool.alembic] in the pyproject.toml there; run it in the " +
      "directory whose file has the key (the cd in apphost:database.migrate), as the app's own scripts run it",
  },
  {
    // SQLite's own words for a file it cannot open or create: Python's sqlite3 (and SQLAlchemy's wrapping of it),
    // node-sqlite3's SQLITE_CANTOPEN (sequelize/express-example's storage: 'sqlite-example-database/example-db.sqlite').
    says: "unable to open database file",
    hint:
      "SQLite could not open the database file the app names: a relative path opens inside the release, which is " +
      "read-only to the app's processes, and a directory that does not exist fails the same way; point the app at " +
      "the stack's database, DATABASE_URL's file in data/ (${database.path} in apphost:app.env gives its path), which " +
      "apphost backs up before each migration",
  },
  // A setting the app reads from its environment, missing there: environs' (cookiecutter-flask's
  // SEND_FILE_MAX_AGE_DEFAULT), django-environ's and python-decouple's words.
  { says: 'Environment variable "', then: '" not set', hint: MISSING_VARIABLE },
  { says: "ImproperlyConfigured: Set the ", then: " environment variable", hint: MISSING_VARIABLE },
  { says: " not found. Declare it as envvar or define a default value.", hint: MISSING_VARIABLE },
  {
    // Flask's CLI (`flask db upgrade`) with no FLASK_APP: cookiecutter-flask sets it in its .env alone.
    says: "Could not locate a Flask application",
    hint:
      "the flask command finds the app by FLASK_APP, --app, or a wsgi.py or app.py where it runs: set " +
      "apphost:app.env.FLASK_APP (the app's .env, where it often is, is not in the release), or name the app in " +
      "the command (flask --app autoapp db upgrade)",
  },
  // A write into the release directory, which the units mount read-only: CTFd's filesystem cache in .data/; in
  // Node's words, actualbudget/actual-server's migration state (.migrate) where ACTUAL_DATA_DIR is unset.
  { says: "[Errno 30] Read-only file system", hint: READ_ONLY_RELEASE },
  { says: "EROFS: read-only file system", hint: READ_ONLY_RELEASE },
  {
    // libsql's client (drizzle's libsql driver, Turso's) given apphost's sqlite:// DATABASE_URL: w3cj/hono-open-api-starter.
    says: "URL_SCHEME_NOT_SUPPORTED",
    then: 'got "sqlite',
    hint:
      "libsql opens a SQLite file by a file: URL, not sqlite:: set apphost:database.urlScheme to file, and " +
      "DATABASE_URL becomes file:///srv/<app>-<stack>/shared/data/<file>",
  },
  {
    // Node's fs.mkdirSync(dir, { recursive: true }) says ENOENT, not EROFS, on a read-only file system: multer's
    // disk storage in brocoders/nestjs-boilerplate (`destination: './files'`), relative to the release it runs in.
    says: "ENOENT: no such file or directory, mkdir './",
    hint: `a directory the app makes in its working directory, the release (Node's recursive mkdir says ENOENT where it may not write): ${READ_ONLY_RELEASE}`,
  },
];

/**
 * What ERROR_HINTS says of some output, as the release script reads it (error_line: exception_line, then known_error_line): the
 * error line of its last whole Python traceback, else its last line with a known error, and that error's hint; for
 * `npm run exec`, whose output the user sees as it comes. Undefined when it names no error ERROR_HINTS knows.
 */
export function errorHintOf(output: string): { line: string; hint: string } | undefined {
  const hintOf = (line: string) =>
    ERROR_HINTS.find(
      ({ says, then }) =>
        line.includes(says) && (!then || line.slice(line.indexOf(says) + says.length).includes(then)),
    )?.hint;
  const lines = output.split("\n");
  let exception: string | undefined;
  let inTraceback = false;
  for (const line of lines) {
    if (/^Traceback \(most recent call last\):/.test(line)) inTraceback = true;
    else if (inTraceback && /^[^ \t]/.test(line)) {
      exception = line;
      inTraceback = false;
    }
  }
  const candidates = exception !== undefined ? [exception] : [...lines].reverse();
  for (const line of candidates) {
    const hint = hintOf(line);
    if (hint) return { line: line.slice(0, 300), hint };
  }
  return undefined;
}

/**
 * `known_error_line`: the last line of its standard input (of the last 20 that hold one of their words) with an error
 * ERROR_HINTS knows, at most 300 characters, or nothing: for output with no Python traceback (a Node app's, alembic's
 * `FAILED:`), whose errors exception_line cannot find.
 */
export function knownErrorLineFunction(): string {
  return shellFunction("known_error_line", [
    "local line",
    "while IFS= read -r line; do",
    `  if [ -n "$(error_hint "$line")" ]; then printf '%s\\n' "\${line:0:300}"; return 0; fi`,
    `done < <(grep -F ${ERROR_HINTS.map(({ says }) => `-e ${q(says)}`).join(" ")} | tail -n 20 | tac)`,
  ]);
}

/** `error_hint <line> [migration]`: ERROR_HINTS' hint for an error line (its inMigration in a migration's output), or nothing. */
export function errorHintFunction(): string {
  // A hint may name one of apphost:app.env's references (${database.path}), which it prints as it is.
  const directive = ERROR_HINTS.some(({ hint }) => hint.includes("$"))
    ? "# shellcheck disable=SC2016 # a hint names a ${...} reference of apphost:app.env, printed as it is\n"
    : "";
  return `${directive}${shellFunction("error_hint", [
    'case "$1" in',
    ...ERROR_HINTS.map(
      ({ says, then, hint, inMigration }) =>
        `  *${q(says)}*${then ? `${q(then)}*` : ""}) ` +
        (inMigration
          ? `if [ "\${2:-}" = migration ]; then printf '%s\\n' ${q(inMigration)}; else printf '%s\\n' ${q(hint)}; fi ;;`
          : `printf '%s\\n' ${q(hint)} ;;`),
    ),
    "esac",
  ])}`;
}

/**
 * The migration command this host runs, if any: apphost:database.migrate with a database, unless this host is a
 * follower (the first app host ran it).
 */
function migrationHere({ database: db, follower }: ReleaseInput): string | undefined {
  return db.kind !== "none" && db.migrate && !follower ? db.migrate : undefined;
}

/** migrate: once, inside the new release, as the app user, env file loaded. */
export function migratePhase(input: ReleaseInput): Phase<"migrate"> {
  const l = paths(input);
  const db = input.database;
  const t = toolsOf(input.tools);
  const refs = refsOf(input);
  const log = `${l.logs}/apphost-migrate-${refs.id}.log`;
  // A revision command that fails (CTFd's `flask db current`, its Flask-Migrate older than its alembic) records no
  // revision: said once per deploy, as a rollback to this release could not tell whether the database is past it.
  // With no revision command, the schema's fingerprint after the migration (schema_revision).
  const schemaRevision = !db.revision && db.kind !== "none";
  const revision = db.revision
    ? [
        `app_revision REVISION "$NEW_DIR" ${q(db.revision)}`,
        `if [ -n "$REVISION_FAILED" ]; then note "warning: the revision command ("${q(db.revision)}") failed: \\"$REVISION_FAILED\\"; ` +
          "the release log records no revision for this release, so a rollback to it cannot tell whether a later migration took the database past it: " +
          'fix the command, or set apphost:database.revision to one that prints the revision (\\"\\" for none)"; fi',
        'note "migrate: revision $REVISION_BEFORE -> $REVISION"',
      ]
    : schemaRevision
      ? [
          'REVISION=$(schema_revision "$(db_fingerprint)")',
          'note "migrate: revision $REVISION_BEFORE -> $REVISION (the schema\'s fingerprint: apphost:database.revision is unset)"',
        ]
      : [];
  // A Python app's migration tool that is not found (exit status 127) is most often one the app lists among its dev
  // dependencies, which no manager installs on the host; the error of its last traceback may have a hint
  // (ERROR_HINTS: a missing psycopg, SQLAlchemy 2.1 reading DATABASE_URL). PIPESTATUS is read first: any command
  // resets it.
  // An alembic migration that could not reach its database may have gone to the URL its alembic.ini names, which
  // its env.py reads alone (alembic_url_hint).
  const alembic = db.migrate ? alembicConfig(db.migrate) : undefined;
  // A Postgres the migration could not reach or log in to: the variables of its own the app reads it from, if any
  // (database_env_hint), in a Python app or a Node one.
  const envHint = isPostgres(db.kind)
    ? `if [ -z "$MIGRATE_HINT" ] && ${t.runuser} -u "$APP_USER" -- grep -qiE "$DB_UNREACHABLE" "$MIGRATE_LOG" 2>/dev/null; ` +
      "then MIGRATE_HINT=$(database_env_hint); fi; "
    : "";
  const urlHint =
    (alembic
      ? `if [ -z "$MIGRATE_HINT" ]; then MIGRATE_HINT=$(alembic_url_hint ${q(alembic.ini)} ${q(alembic.dir)}); fi; `
      : "") + envHint;
  const asHint = `if [ -n "$MIGRATE_HINT" ]; then MIGRATE_HINT=$'\\n'"($MIGRATE_HINT)"; fi; `;
  // The error of the last traceback, else (alembic's `FAILED: ...`, a Node tool's output, which print none) the last
  // line ERROR_HINTS knows, with what it means in a migration's own output.
  // A refused login's hint gives way to the app's own variables, or alembic.ini's URL, where those are found.
  const weak = isPostgres(db.kind)
    ? {
        // By its first words: the rest names apphost:app.env's references, which shellcheck takes for expansions.
        take: `MIGRATE_WEAK=""; if [[ $MIGRATE_HINT == ${q(PG_LOGIN_HINT.split(":")[0])}:* ]]; then MIGRATE_WEAK=$MIGRATE_HINT MIGRATE_HINT=""; fi; `,
        back: "MIGRATE_HINT=${MIGRATE_HINT:-$MIGRATE_WEAK}; ",
      }
    : { take: "", back: "" };
  const errorHint =
    `MIGRATE_HINT=$(error_hint "$(${t.runuser} -u "$APP_USER" -- cat "$MIGRATE_LOG" | error_line)" migration); ` +
    weak.take;
  const notFoundHint =
    input.app.runtime === "python"
      ? `MIGRATE_STATUS=\${PIPESTATUS[0]}; MIGRATE_HINT=""; if [ "$MIGRATE_STATUS" = 127 ]; then MIGRATE_HINT=$'\\n'${q(MIGRATE_NOT_FOUND_HINT)}; ` +
        `else ${errorHint}${urlHint}${weak.back}${asHint}fi; `
      : // A Node app's: its devDependencies are installed, so no tool is missing for that reason.
        `${errorHint}${envHint}${weak.back}${asHint}`;
  const tighten = sqliteTighten(input);
  const migrate = migrationHere(input);
  if (migrate === undefined) {
    return {
      name: "migrate",
      description: input.follower
        ? "The first app host ran the migration before any other host got this release; nothing to run here."
        : "No migration command configured (apphost:database.migrate); nothing to run.",
      exitCode: EXIT_CODES.migrate,
      commands: [
        `NEW_DIR="${l.releases}/${refs.id}"`,
        "MIGRATE_T0=${EPOCHREALTIME/,/.}",
        input.follower
          ? 'note "migrate: the first app host ran it; none here"'
          : 'note "migrate: no apphost:database.migrate command; skipping"',
        ...(db.revision ? [`app_revision REVISION_BEFORE "$NEW_DIR" ${q(db.revision)}`, ...revision] : []),
        ...(db.revision ? tighten : []),
      ],
    };
  }
  return {
    name: "migrate",
    description:
      `Run \`${migrate}\` once in the new release as ${l.user} with ${l.envFile} loaded; output goes to ` +
      `shared/logs/apphost-migrate-<id>.log, its last 40 lines into the error on failure (and the last lines before ` +
      `them that name an error, into its first line).`,
    exitCode: EXIT_CODES.migrate,
    commands: [
      `NEW_DIR="${l.releases}/${refs.id}"`,
      `MIGRATE_LOG="${log}"`,
      "MIGRATE_T0=${EPOCHREALTIME/,/.}",
      // The schema first: the revision command runs the new release's code, which may change the database as it
      // starts (CTFd's `flask db current` creates every table on SQLite), and the mirror compares with the database
      // as the backup holds it.
      "DB_FP_BEFORE=$(db_fingerprint)",
      db.revision
        ? `app_revision REVISION_BEFORE "$NEW_DIR" ${q(db.revision)}`
        : `REVISION_BEFORE=${schemaRevision ? '$(schema_revision "$DB_FP_BEFORE")' : '""'}`,
      "MIGRATE_STARTED=1",
      // logs/ is the app's: root neither opens nor reads a path there (a planted symlink would point it
      // anywhere); the log is written and read back by the app user.
      'rm -f "$MIGRATE_LOG"',
      `if ! as_app "$NEW_DIR" ${q(migrate)} 2>&1 | ${t.runuser} -u "$APP_USER" -- tee "$MIGRATE_LOG" >/dev/null; then ${notFoundHint}die "the migration command failed: ${migrate.replace(/["`$\\]/g, "\\$&")}$(migrate_earlier "$MIGRATE_LOG"); last 40 lines of its output ($MIGRATE_LOG):"$'\\n'"$(migrate_output "$MIGRATE_LOG")$MIGRATE_HINT"; fi`,
      ...revision,
      ...tighten,
      strayDatabaseCheck(input, { shell: `"the migration (${migrate.replace(/["`$\\]/g, "\\$&")})"` }),
    ],
  };
}

/** publish: point instances/<new port> at the release and (re)start the web instance there. */
export function publishPhase(input: ReleaseInput): Phase<"publish"> {
  const l = paths(input);
  const dirWord = `${input.layout.releases}/${refsOf(input).id}`;
  const t = toolsOf(input.tools);
  const refs = refsOf(input);
  const web = webProcess(input.app);
  if (!web) {
    return {
      name: "publish",
      description: "No web process: nothing to start before the switch.",
      exitCode: EXIT_CODES.publish,
      commands: ['note "publish: no web process in apphost:app.processes"'],
    };
  }
  const unit = webUnit(input, refs.newPort);
  return {
    name: "publish",
    description: `Copy the env file to instances/<new port>.env, link instances/<new port> to the release and start ${unitName(l, web, "web").replace("@.service", "@<new port>.service")} beside the live one.`,
    exitCode: EXIT_CODES.publish,
    commands: [
      `env_snapshot "${instanceEnvFile(l, refs.newPort)}"`,
      `atomic_link "${dirWord}" "${l.instances}/${refs.newPort}"`,
      dropInWrite(input, unit, web),
      `${t.systemctl} daemon-reload`,
      "PUBLISH_STARTED=$EPOCHSECONDS",
      "NEW_STARTED=1",
      `${t.systemctl} enable --quiet "${unit}"`,
      restartUnit(`"${unit}"`),
    ],
  };
}

/**
 * Restart a unit, first clearing a "failed" state; a refused start fails the phase with the unit's state and
 * journal (`unit_restart`, release.sh).
 */
export function restartUnit(unit: string): string {
  return `unit_restart ${unit}`;
}

/**
 * What the health gate's debug-page warning says to do when apphost:app.env sets a DEBUG (DJANGO_DEBUG, ...) to a
 * value that reads as off ("0", "false", "no", "off") and the app runs with DEBUG on all the same: settings such as
 * `bool(os.environ.get("DEBUG", 0))` take any non-empty string as True (django-on-docker's, whose sample env file
 * sets DEBUG=0). Undefined when no such key is set: the warning's own advice stands.
 */
export function debugOffHint(env: AppConfig["env"]): string | undefined {
  const off = Object.entries(env).filter(
    ([k, v]) => /(^|_)DEBUG$/i.test(k) && /^(0|false|no|off|n)$/i.test(String(v).trim()),
  );
  if (off.length === 0) return undefined;
  const keys = off.map(([k, v]) => `apphost:app.env.${k} is ${JSON.stringify(String(v))}`).join(" and ");
  return (
    `${keys}, which the app reads as on: settings such as bool(os.environ.get("DEBUG", 0)) take any non-empty string as True, ` +
    `"0" and "False" too; remove ${off.length > 1 ? "them" : "it"} from apphost:app.env (or set ${off.length > 1 ? "them" : "it"} to ""), ` +
    `or compare the value in the settings (os.environ.get("DEBUG") == "1")`
  );
}

/** health-gate: poll the new instance; on success switch the upstream port, active-port and current, drain, stop the old one. */
export function healthGatePhase(
  input: ReleaseInput,
  action: "deploy" | "rollback" = "deploy",
): Phase<"health-gate"> {
  const l = paths(input);
  const dirWord = `${input.layout.releases}/${refsOf(input).id}`;
  const t = toolsOf(input.tools);
  const r = input.releases;
  const refs = refsOf(input);
  const web = webProcess(input.app);
  const debugHint = debugOffHint(input.app.env);
  const workers = workerUnits(input).map((u) => `${t.systemctl} enable --quiet ${u}`);
  const restartWorkers = workerUnits(input).length
    ? [
        ...workerUnits(input).map((u) => restartUnit(u)),
        // After the restart: reset-failed sets NRestarts back to 0.
        `workers_note_restarts ${workerUnits(input).join(" ")}`,
      ]
    : [];
  // After the commit: a worker that does not stay up is a warning (workers_check, release.sh).
  const checkWorkers = workerUnits(input).length ? [`workers_check ${action}`] : [];
  if (!web) {
    return {
      name: "health-gate",
      description: "No web process: switch current and restart the workers.",
      exitCode: EXIT_CODES["health-gate"],
      commands: [
        "SWITCHED=1",
        'live_env_set "$ENV_FILE"',
        ...liveDropIns(input, t),
        `atomic_link "${dirWord}" ${l.current}`,
        ...workers,
        ...restartWorkers,
        "COMMITTED=1",
        ...checkWorkers,
      ],
    };
  }
  const unit = webUnit(input, refs.newPort);
  const oldUnit = webUnit(input, refs.oldPort);
  const url = `http://127.0.0.1:${refs.newPort}${input.app.healthPath}`;
  assertSafe("health gate", [["apphost:app.healthPath", input.app.healthPath, SAFE.urlPath]]);
  return {
    name: "health-gate",
    description:
      `Poll ${input.app.healthPath} on the new port until it answers 2xx (at most ${r.healthTimeoutSeconds}s); then point ` +
      `the upstream port ${upstreamPort(input.app.basePort)} at it (one nftables transaction; the ${input.proxy.kind} ` +
      `configuration does not change and is not reloaded), switch current, restart workers, ` +
      `let the old instance drain ${r.drainSeconds}s and stop it; then warn about a worker that did not stay up.`,
    exitCode: EXIT_CODES["health-gate"],
    commands: [
      `if ! health_wait "${url}" "${unit}" ${r.healthTimeoutSeconds}; then die "${unit} did not answer 2xx on ${url} (last answer: $HEALTH_LAST); $(if [ -n "${refs.oldPort}" ]; then echo "traffic stays on the old instance"; else echo "no release served before this one, and none serves now"; fi). Last lines of its journal:"$'\\n'"$(journal_tail "${unit}")"; fi`,
      // In a deploy (MIGRATE_T0 set), before any traffic: a database the app made as it started.
      strayDatabaseCheck(input, { shell: `"the new release (${unit}, as it started)"` }),
      "SWITCHED=1",
      // active-port first: whatever cuts the script short after it, a reboot restores the rule from it.
      `write_active_port "${refs.newPort}"`,
      `switch_upstream "${refs.newPort}"`,
      `live_env_set "${instanceEnvFile(l, refs.newPort)}"`,
      ...liveDropIns(input, t),
      `atomic_link "${dirWord}" ${l.current}`,
      ...workers,
      ...restartWorkers,
      `if [ -n "${refs.oldPort}" ]; then ${r.drainSeconds > 0 ? `sleep ${r.drainSeconds}; ` : ""}${t.systemctl} stop "${oldUnit}"; ${t.systemctl} disable --quiet "${oldUnit}"; fi`,
      "COMMITTED=1",
      `debug_page_warning "http://127.0.0.1:${refs.newPort}"${debugHint ? ` ${q(debugHint)}` : ""}`,
      ...checkWorkers,
    ],
  };
}

/** finish: record the release, keep N, prune venvs. */
export function finishPhase(
  input: ReleaseInput,
  outcome: "deployed" | "rolled-back" = "deployed",
): Phase<"finish"> {
  const l = paths(input);
  const r = input.releases;
  const refs = refsOf(input);
  return {
    name: "finish",
    description: `Append "${outcome}" to ${l.releaseLog}; drop the live env copy and the workers' drop-ins the switch kept for the mirror; keep the ${r.keep} newest releases that served (never current nor the previous one; releases that never served go, unless newest); remove venvs no release uses.`,
    exitCode: EXIT_CODES.finish,
    commands: [
      `release_log "${refs.id}" "$REVISION" ${outcome}`,
      // A follower's database is the first host's.
      ...(outcome === "deployed" && !input.follower ? sqliteTighten(input) : []),
      `rm -f ${l.liveEnv}.previous`,
      "live_dropins_done",
      `prune_releases ${r.keep}`,
      "prune_venvs",
    ],
  };
}

/**
 * The SQLite database and its side files to 0640 at most, when they are regular files (chmod follows symlinks, and
 * the data directory is the app's: never a link). After the migration, which runs under the script's umask 022; and
 * as a release finishes, for a file the app made itself as it started, with a mode of its own: Uptime Kuma copies
 * its template database with copyFileSync, which keeps the template's 0644 whatever the unit's UMask.
 */
function sqliteTighten(input: ReleaseInput): string[] {
  const { database: db, layout: l } = input;
  if (db.kind !== "sqlite") return [];
  const files = [``, `-wal`, `-shm`, `-journal`].map((s) => q(`${l.data}/${db.sqliteFile}${s}`));
  return [
    `for f in ${files.join(" ")}; do if [ -f "$f" ] && [ ! -L "$f" ]; then chmod g-w,o-rwx -- "$f"; fi; done`,
  ];
}

/** The deploy, in order. */
export function deployPhases(input: ReleaseInput): Phase<DeployPhaseName>[] {
  return [
    checkPhase(input),
    uploadPhase(input),
    installPhase(input),
    backupPhase(input),
    migratePhase(input),
    publishPhase(input),
    healthGatePhase(input),
    finishPhase(input),
  ];
}

/**
 * The mirror, run when a deploy phase fails (by the EXIT trap). Each step reads
 * the progress flags, so it undoes exactly what happened:
 *   revert-traffic    the old instance serves again (started if it was already stopped), new instance stopped;
 *                     the workers stopped
 *   restore-database  when the migration changed the schema or revision: restore the pre-migration backup
 *                     (or set aside what a first migration created)
 *   restart-workers   the old release's workers started, once the database is as it was (with workers only)
 *   mark-failed       release log line `failed:<phase>`; temp files removed
 * A failure after COMMITTED (finish) leaves the healthy new release serving.
 */
export function mirrorPhases(input: ReleaseInput): Phase<MirrorPhaseName>[] {
  const l = paths(input);
  const t = toolsOf(input.tools);
  const refs = refsOf(input);
  const db = input.database;
  const web = webProcess(input.app);
  const units = workerUnits(input);
  const traffic: string[] = [];
  if (web) {
    const unit = webUnit(input, refs.newPort);
    const oldUnit = webUnit(input, refs.oldPort);
    const oldUrl = `http://127.0.0.1:${refs.oldPort}${input.app.healthPath}`;
    traffic.push(
      `if [ "$SWITCHED" = 1 ] && [ -n "${refs.oldPort}" ]; then ${t.systemctl} enable --quiet "${oldUnit}"; ${t.systemctl} start "${oldUnit}"; health_wait "${oldUrl}" "${oldUnit}" ${input.releases.healthTimeoutSeconds} || note "rollback: warning: ${oldUnit} is not healthy ($HEALTH_LAST)"; switch_upstream "${refs.oldPort}"; write_active_port "${refs.oldPort}"; fi`,
      `if [ "$NEW_STARTED" = 1 ]; then ${t.systemctl} stop "${unit}"; ${t.systemctl} disable --quiet "${unit}"; fi`,
    );
  }
  // The workers stop with the switch undone: none runs while the database is restored under it, and a
  // first release's are left stopped and disabled (restart-workers starts the old release's).
  const stopWorkers = units.length ? `${t.systemctl} stop ${units.join(" ")}; ` : "";
  const disableWorkers = units.length ? `${t.systemctl} disable --quiet ${units.join(" ")}; ` : "";
  traffic.push(
    `if [ "$SWITCHED" = 1 ] && [ -n "$OLD_DIR" ]; then ${stopWorkers}atomic_link "$OLD_DIR" ${l.current}; live_env_revert; live_dropins_revert; fi`,
    `if [ "$SWITCHED" = 1 ] && [ -z "$OLD_DIR" ]; then ${stopWorkers}${disableWorkers}rm -f ${l.current} ${l.activePort}; live_env_revert; live_dropins_revert; fi`,
  );
  const database: string[] =
    db.kind === "none"
      ? ['note "rollback: no database"']
      : [
          'if [ "$MIGRATE_STARTED" != 1 ]; then note "rollback: the migration did not run; database untouched"; return 0; fi',
          "fp_after=$(db_fingerprint)",
          'local rev_after=""',
          ...(db.revision
            ? [`app_revision rev_after "$NEW_DIR" ${q(db.revision)}`]
            : ['rev_after=$(schema_revision "$fp_after")']),
          'if [ "$fp_after" = "$DB_FP_BEFORE" ] && [ "$rev_after" = "$REVISION_BEFORE" ]; then note "rollback: the migration left schema and revision unchanged; database not restored"; return 0; fi',
          `if [ -z "$BACKUP_FILE" ]; then db_set_aside "${refs.id}"; return 0; fi`,
          'db_restore "$BACKUP_FILE"',
          // The restore is only done when the schema is the one the migration started from.
          "fp_after=$(db_fingerprint)",
          'if [ "$fp_after" != "$DB_FP_BEFORE" ]; then fail "rollback: after restoring $BACKUP_FILE the schema fingerprint is $fp_after, not $DB_FP_BEFORE as before the migration"; fi',
          'note "rollback: database restored from $BACKUP_FILE; its schema fingerprint matches the one before the migration"',
        ];
  return [
    {
      name: "revert-traffic",
      description: "Traffic back to the old port and release; the new instance stopped.",
      exitCode: EXIT_CODES.rollbackFailed,
      commands: traffic,
    },
    {
      name: "restore-database",
      description:
        "If the migration changed the schema or the revision, restore the pre-migration backup (writes made " +
        "between the backup and now are lost; see docs/releases.md).",
      exitCode: EXIT_CODES.rollbackFailed,
      commands: database,
    },
    ...(units.length
      ? [
          {
            name: "restart-workers" as const,
            description:
              "If traffic had moved back to an old release, its workers start again, after the database is as it " +
              "was; a worker that does not stay up is a warning.",
            exitCode: EXIT_CODES.rollbackFailed,
            commands: [
              'if [ "$SWITCHED" != 1 ] || [ -z "$OLD_DIR" ]; then return 0; fi',
              ...units.map((u) => restartUnit(u)),
              `workers_note_restarts ${units.join(" ")}`,
              "workers_check rollback",
            ],
          },
        ]
      : []),
    {
      name: "mark-failed",
      description:
        "Record failed:<phase> in the release log and remove temporary files; never recorded as deployed.",
      exitCode: EXIT_CODES.rollbackFailed,
      commands: [
        ...(db.kind !== "none" && db.migrate
          ? [
              // restore-database left the database as it was before the migration (restored from the backup,
              // unchanged, or, after a first one, set aside): its revision is the one read then, or none without a
              // database. Not read again through the failed release's code, whose revision command may change what it
              // reads (Django's creates the file as it opens it; CTFd's creates every table).
              `if [ "$MIGRATE_STARTED" = 1 ]; then if [ "$DB_FP_BEFORE" = absent ]; then REVISION=""; else REVISION=$REVISION_BEFORE; fi; fi`,
            ]
          : []),
        `release_log "${refs.id}" "$REVISION" "failed:$FAILED_PHASE"`,
        `rm -rf "${l.releases}/${refs.id}.tmp" "${l.releases}/${refs.id}.tar.gz.tmp"`,
      ],
    },
  ];
}

/**
 * Rollback on purpose (`apphost-release rollback [id]`): the target serves
 * through the same publish and health gate as a deploy. The database is not
 * touched.
 */
export function rollbackPhases(input: ReleaseInput): Phase<RollbackPhaseName>[] {
  const l = paths(input);
  const r = input.releases;
  const db = input.database;
  validateReleases(r);
  const refs = { ...refsOf(input), id: "$RELEASE_ID" };
  const inp = { ...input, refs };
  return [
    {
      name: "choose",
      description:
        "Take the lock; the target is the given release, or the newest successfully deployed release older than current.",
      exitCode: EXIT_CODES.choose,
      commands: [
        `lock_acquire ${r.lockTtlMinutes}`,
        "choose_ports",
        `if [ -e ${l.current} ]; then OLD_DIR=$(readlink -f ${l.current}); else OLD_DIR=""; fi`,
        "choose_rollback_target",
        `NEW_DIR="${l.releases}/$RELEASE_ID"`,
        ...(db.revision
          ? [
              `app_revision REVISION "$NEW_DIR" ${q(db.revision)}`,
              // A later release migrated the database past this one's migrations: alembic's `Can't locate revision`
              // (the command fails), or a revision other than the one this release was deployed at (knex, Django).
              // Said by the first app host alone: it migrates the database the hosts share and keeps its backups;
              // a follower said the same of the same database, and that no backup was left on it, which it never has.
              ...(input.follower
                ? [
                    ': "$REVISION_FAILED" # app_revision sets it for the warning, which is the first app host\'s',
                  ]
                : [
                    'local deployed; deployed=$(deployed_revision "$RELEASE_ID")',
                    `if [ -n "$REVISION_FAILED" ] || { [ -n "$REVISION" ] && [ -n "$deployed" ] && [ "$REVISION" != "$deployed" ]; }; then ${rollbackRevisionWarning(input, db.revision)}; fi`,
                  ]),
            ]
          : db.kind !== "none" && db.migrate && !input.follower
            ? [
                // No revision command: the schema's fingerprint, as the release log has it for releases deployed
                // since (schema_revision); none for one deployed before, which records "-".
                'REVISION=$(schema_revision "$(db_fingerprint)")',
                'local deployed; deployed=$(deployed_revision "$RELEASE_ID")',
                `if [[ $deployed == schema:* ]] && [ -n "$REVISION" ] && [ "$REVISION" != "$deployed" ]; then ${rollbackRevisionWarning(input, "")}; fi`,
              ]
            : ['REVISION=""']),
      ],
    },
    publishPhase(inp),
    healthGatePhase(inp, "rollback"),
    {
      ...finishPhase(inp, "rolled-back"),
      description: `Append "rolled-back" to ${l.releaseLog}. The database is not touched: restoring is explicit (apphost-release restore <file>).`,
      commands: [
        `release_log "$RELEASE_ID" "$REVISION" rolled-back`,
        'note "rollback: $RELEASE_ID serves now; the database was not changed (restore a backup explicitly with: apphost-release restore <file>)"',
      ],
    },
  ];
}
