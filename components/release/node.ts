/**
 * An npm workspace (`"workspaces"` in the root package.json, one
 * package-lock.json for all): what the install needs to know, read from the
 * lock, which names each member it links into node_modules
 * (`"node_modules/backend": {"resolved": "backend", "link": true}`).
 *
 * npm ci runs once per lock in `venvs/<hash>-node`, which holds only the
 * manifests: the root's package.json and lock, and each member's package.json
 * at its path. Each release's node_modules is then a copy of that tree whose
 * files are hard links, where a member's name links to the member in the
 * release (`../backend`, as npm links it), and a member's own node_modules
 * (what npm could not hoist) is copied into the release's member the same way
 * (release.sh: release_node_modules).
 */
import { SAFE, shellQuote as q } from "../shell";

/** A workspace member, as the lock links it: `name` in node_modules, `member` its directory in the app. */
export interface NpmWorkspace {
  name: string;
  member: string;
}

/** npm's package names: lowercase, URL-safe, optionally scoped (`@acme/shared`). */
const PACKAGE_NAME = /^(?:@[a-z0-9~-][a-z0-9._~-]*\/)?[a-z0-9~-][a-z0-9._~-]*$/;

/**
 * The members a package-lock.json links (lockfileVersion 2 and 3; version 1
 * predates workspaces), sorted by name, and the problems: a link outside the
 * app directory (a `file:../lib` dependency), which the release does not
 * carry, or a name or path apphost will not put in a shell command.
 */
export function npmWorkspaces(lockText: string | undefined): { members: NpmWorkspace[]; problems: string[] } {
  const members: NpmWorkspace[] = [];
  const problems: string[] = [];
  let packages: unknown;
  try {
    packages = lockText === undefined ? undefined : (JSON.parse(lockText) as { packages?: unknown }).packages;
  } catch {
    return { members, problems }; // npm ci reports an unreadable lock, with its own words
  }
  if (typeof packages !== "object" || packages === null) return { members, problems };
  const links: NpmWorkspace[] = [];
  for (const [key, value] of Object.entries(packages as Record<string, unknown>)) {
    const entry = value as { link?: unknown; resolved?: unknown } | null;
    const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(key);
    if (!m || !entry || entry.link !== true || typeof entry.resolved !== "string") continue;
    links.push({ name: m[1], member: entry.resolved.replace(/\/+$/, "") });
  }
  return checkMembers(links, "package-lock.json links");
}

/**
 * Workspace members as a lock links them (`package-lock.json links`) or package.json's workspaces name them
 * (`package.json's workspaces name`), sorted by name; the problems: a member outside the app directory, which the
 * release does not carry, or a name or path apphost will not put in a shell command.
 */
function checkMembers(
  links: readonly NpmWorkspace[],
  says: string,
): { members: NpmWorkspace[]; problems: string[] } {
  const members: NpmWorkspace[] = [];
  const problems: string[] = [];
  for (const { name, member } of links) {
    if (member.startsWith("/") || member.split("/").includes("..")) {
      problems.push(
        `${says} ${JSON.stringify(name)} to ${member}, outside the app directory: a release carries only ` +
          `the app directory; move it into the app as a workspace member, or point apphost:app.source at the directory that holds both`,
      );
    } else if (!PACKAGE_NAME.test(name) || !SAFE.relativeDir.test(member)) {
      problems.push(
        `${says} ${JSON.stringify(name)} to ${JSON.stringify(member)}: expected an npm package name and ` +
          `${SAFE.relativeDir.what}; rename the member`,
      );
    } else {
      members.push({ name, member });
    }
  }
  members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { members, problems };
}

/** Every directory from the top down to each member (`packages`, `packages/shared`), each once, parents first. */
export function memberDirs(members: readonly NpmWorkspace[]): string[] {
  return dirsDownTo(members.map((m) => m.member));
}

/** Every directory from the top down to each of `leaves` (`.yarn`, `.yarn/patches`), each once, parents first. */
export function dirsDownTo(leaves: readonly string[]): string[] {
  const dirs = new Set<string>();
  for (const leaf of leaves) {
    const parts = leaf.split("/");
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [...dirs].sort((a, b) => a.split("/").length - b.split("/").length || (a < b ? -1 : 1));
}

/** Debian's node-semver (a dependency of its npm package): the semver module npm itself judges engines with. */
export const DEBIAN_SEMVER = "/usr/share/nodejs/semver";

/**
 * install phase, once node_modules is linked: a warning when the release's package.json asks for a Node
 * (`engines.node`) the host's does not satisfy, judged by semver as npm judges it (Debian's node-semver, which
 * npm depends on; without it, nothing is said). apphost runs the host's nodejs package, so it warns and goes on,
 * as npm ci does: an app often runs on an older Node than its engines line names. What to do is release.sh's NEWER_NODE,
 * as a failed build on too old a Node is told (node_version_hint).
 */
export function nodeEnginesWarning(semver = DEBIAN_SEMVER): string[] {
  const check =
    `let s; try { s = require(${JSON.stringify(semver)}) } catch { process.exit(0) } ` +
    'const r = (JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).engines || {}).node; ' +
    'if (typeof r === "string" && s.validRange(r) && !s.satisfies(process.version, r)) console.log(r)';
  return [
    `NODE_WANTS=$(node -e ${q(check)} "$NEW_DIR/package.json" 2>/dev/null || true)`,
    `if [ -n "$NODE_WANTS" ]; then note "warning: package.json's engines.node is \\"$NODE_WANTS\\" and this release runs Node $(node --version), the host's nodejs: ` +
      `the app may fail where it needs a newer Node; apphost runs the host's nodejs package (Node 18 on Debian 12, Node 20 on Debian 13), so relax engines.node if the app runs on it, ` +
      `$NEWER_NODE"; fi`,
  ];
}

// ------------------------------------------------------------ package manager

/** Who installs a Node app's dependencies, decided by its lock file. */
export type NodeManager = "npm" | "yarn" | "pnpm";

/**
 * A package manager a Python app's build may run (a frontend's `bun install && bun run build`) that the host does
 * not have: npm installs it once per release into the stack's cache/tools. Bun installs a build's frontend only: a
 * Node app's own install is npm's, Yarn's or pnpm's.
 */
export type BuildTool = "yarn" | "pnpm" | "bun";

/** A tool package.json's `packageManager` may pin for a Python app's build: a BuildTool, or npm itself. */
export type PinnedTool = BuildTool | "npm";

/** The lock files apphost installs from, in the order it prefers them when an app has several. */
export const NODE_LOCKS = [
  "package-lock.json",
  "npm-shrinkwrap.json",
  "yarn.lock",
  "pnpm-lock.yaml",
] as const;

/** A lock file's manager: yarn.lock is Yarn's, pnpm-lock.yaml pnpm's, any other (package-lock.json) npm's. */
function managerOf(lock: string): NodeManager {
  const base = lock.split("/").pop();
  return base === "yarn.lock" ? "yarn" : base === "pnpm-lock.yaml" ? "pnpm" : "npm";
}

/** What the parser reads from a Node app's directory to decide its install (components/config/appfiles.ts). */
export interface NodeFacts {
  /** The lock files found, by name (NODE_LOCKS, and apphost:app.requirements), each with its text */
  locks: Record<string, string>;
  /** .yarnrc.yml's `nodeLinker` (Yarn 2 and later: `pnp`, the default, `node-modules` or `pnpm`) */
  yarnLinker?: string;
  /**
   * The files Yarn 2 and later read beside the lock, relative to the app: .yarnrc.yml's `yarnPath` (the Yarn the
   * app commits) and `plugins`, and the patches yarn.lock's `patch:` entries name; `missing` those the app lacks.
   */
  yarnFiles?: { present: string[]; missing: string[] };
  /** .yarnrc.yml's `yarnPath`, as written */
  yarnPath?: string;
  /** The app's .npmrc says `package-lock=false`: npm install writes no lock there */
  npmrcNoLock?: boolean;
  /** package.json's `scripts` that are strings: what `npm run <name>` runs */
  scripts?: Record<string, string>;
  /**
   * package.json's `main`, as the file it names in the app (`.js` added where npm's require would add it), when it
   * is a plain relative path: the module a Node app without a start script runs
   */
  main?: string;
  /** package.json's `packageManager` (Corepack's field), e.g. "pnpm@9.15.9+sha512.abc" */
  packageManager?: unknown;
  /** Bun's lock, bun.lock (or the binary bun.lockb of Bun before 1.2), when the app has one */
  bunLock?: string;
  /** What declares a workspace of several packages: package.json's `workspaces`, or pnpm-workspace.yaml */
  workspaces?: "package.json" | "pnpm-workspace.yaml";
  /** package.json's workspaces, expanded: each member directory with its package.json's name (Yarn 1 links these) */
  members?: NpmWorkspace[];
  /** Patterns of package.json's workspaces that could not be expanded */
  memberProblems?: string[];
}

/** How a Node app's dependencies install: the lock, its manager, and (yarn, pnpm) the version npm installs of it. */
export interface NodeDeps {
  manager: NodeManager;
  lock: string;
  /**
   * The Yarn, pnpm or npm release the install runs; "" for npm unless package.json's `packageManager` pins one: the
   * host's own
   */
  version: string;
  /** Yarn 2 and later: the files beside the lock the install reads (NodeFacts.yarnFiles), copied and hashed */
  yarnFiles?: string[];
}

/** Whether the install is Yarn 2 or later's (Berry), which reads .yarnrc.yml and takes none of Yarn 1's settings. */
export function isYarnBerry(deps: Pick<NodeDeps, "manager" | "version">): boolean {
  return deps.manager === "yarn" && !deps.version.startsWith("1.");
}

/**
 * Whether the stack's Yarn is 2 or later (which refuses Yarn 1's settings): a Node app whose lock is Berry's, or a
 * Python app whose build runs the Yarn its frontend's package.json pins.
 */
export function appYarnBerry(app: {
  runtime: string;
  requirements?: string;
  nodeDeps?: NodeDeps;
  buildToolVersions?: Partial<Record<PinnedTool, string>>;
}): boolean {
  return app.runtime === "node"
    ? isYarnBerry(nodeDepsOf(app))
    : isYarnBerry({ manager: "yarn", version: app.buildToolVersions?.yarn ?? YARN_VERSION });
}

/** Yarn 2 and later by yarn.lock's `__metadata` version: the last release of the line that writes each. */
const YARN_BY_LOCKFILE: Readonly<Record<string, string>> = {
  "4": "2.4.2",
  "6": "3.8.7",
  "8": "4.13.0",
};

/** Yarn 1, the last release of the line Yarn 1's yarn.lock belongs to. */
export const YARN_VERSION = "1.22.22";

/** pnpm by lockfileVersion: the last release of the line that writes each, which runs on Debian 12's Node 18. */
const PNPM_BY_LOCKFILE: Readonly<Record<string, string>> = {
  "5": "7.33.7",
  "6": "8.15.9",
  "9": "9.15.9",
};

/** Bun, the last release when apphost learnt it: what a build that names bun gets unless package.json pins one. */
export const BUN_VERSION = "1.4.5";

/** What a Node app locked by Bun alone is offered: a lock npm installs from (Bun writes none). */
const BUN_LOCK =
  "run npm install --package-lock-only in the app and commit the package-lock.json it writes (npm resolves " +
  "package.json's ranges itself: check the versions it locks against bun.lock's)";

/** What the refusals of a lock apphost cannot install offer instead. */
const NPM_LOCK =
  "commit a package-lock.json (npm install --package-lock-only) and set apphost:app.requirements to package-lock.json";

/** package.json's `packageManager` ("pnpm@9.15.9+sha512.abc"): the manager and its exact version, or undefined. */
function parsePackageManager(field: unknown): { manager: NodeManager | "bun"; version: string } | undefined {
  const m = typeof field === "string" ? /^(npm|yarn|pnpm|bun)@([^+\s]+)(?:\+.*)?$/.exec(field) : null;
  return m && SAFE.version.test(m[2]) ? { manager: m[1] as NodeManager | "bun", version: m[2] } : undefined;
}

/** The install of an app configured without its files (hand-built configs): the lock named, or package-lock.json. */
export function nodeDepsOf(app: { requirements?: string; nodeDeps?: NodeDeps }): NodeDeps {
  if (app.nodeDeps) return app.nodeDeps;
  const lock = app.requirements ?? "package-lock.json";
  const manager = managerOf(lock);
  return {
    manager,
    lock,
    version: manager === "npm" ? "" : DEFAULT_TOOL_VERSION[manager],
  };
}

/**
 * The install a Node app's files call for: the lock apphost:app.requirements
 * names, else the one package.json's `packageManager` points to, else the
 * first of NODE_LOCKS found; the version of Yarn or pnpm from
 * `packageManager`, else the one that writes that lock. A problem, for
 * apphost:app.requirements, when none can install the app as its lock says:
 * no lock, Yarn 2 or later without a node_modules (berryVersion), a pnpm
 * workspace, or a lock of a pnpm apphost does not know. A Yarn workspace
 * installs as an npm one (its members: package.json's workspaces, expanded).
 */
export function detectNodeDeps(
  facts: NodeFacts,
  requirements: string | undefined,
  dir: string,
): { deps: NodeDeps } | { problem: string } {
  const pinned = parsePackageManager(facts.packageManager);
  if (facts.packageManager !== undefined && (pinned === undefined || pinned.manager === "bun"))
    return {
      problem:
        `${dir}/package.json's "packageManager" is ${JSON.stringify(facts.packageManager)}; expected npm, yarn or pnpm ` +
        `and an exact version, like "pnpm@9.15.9"` +
        (pinned
          ? `: apphost installs a Node app with npm, Yarn or pnpm, not Bun; ${BUN_LOCK}`
          : "; fix the field or remove it"),
    };
  const wanted = pinned as { manager: NodeManager; version: string } | undefined;
  const found = NODE_LOCKS.filter((name) => facts.locks[name] !== undefined);
  const lock = requirements ?? found.find((name) => wanted && managerOf(name) === wanted.manager) ?? found[0];
  if (lock === undefined || facts.locks[lock] === undefined) {
    return {
      problem:
        (lock === undefined
          ? `${dir} has no lock file (package-lock.json, npm-shrinkwrap.json, yarn.lock or pnpm-lock.yaml)`
          : `${dir}/${lock} does not exist`) +
        "; a release installs exactly the versions a lock names: " +
        (lock === undefined && facts.bunLock
          ? `its ${facts.bunLock} is Bun's, and apphost installs a Node app with npm, Yarn or pnpm: ${BUN_LOCK}`
          : lock === undefined && facts.npmrcNoLock
            ? "its .npmrc says package-lock=false, so npm install writes none there: run " +
              "npm install --package-lock-only --package-lock=true in the app (or remove that line) and commit the " +
              "package-lock.json it writes"
            : "run npm install (or yarn, or pnpm install) in the app and commit the lock it writes") +
        (lock === undefined ? "" : ", or point apphost:app.requirements at the lock the app has"),
    };
  }
  const manager = managerOf(lock);
  const text = facts.locks[lock];
  let version = "";
  if (
    manager === "yarn" &&
    (/^__metadata:/m.test(text) || (wanted?.manager === "yarn" && !wanted.version.startsWith("1.")))
  ) {
    const berry = berryVersion(facts, wanted, text, `${dir}/${lock}`);
    if ("problem" in berry) return berry;
    version = berry.version;
  }
  // Yarn links package.json's workspaces as npm does; pnpm links each member's own node_modules to the others.
  if (manager === "pnpm" && facts.workspaces !== undefined)
    return {
      problem:
        `${dir} is a ${manager} workspace (${facts.workspaces}): apphost installs a workspace of several packages ` +
        `with npm or Yarn, from the "workspaces" of package.json; ` +
        (facts.workspaces === "package.json" ? NPM_LOCK : `list the packages there, then ${NPM_LOCK}`),
    };
  if (manager === "yarn" && version === "")
    version = wanted?.manager === "yarn" ? wanted.version : YARN_VERSION;
  // npm: the host's (Debian's 9.2), unless packageManager pins a release, which npm installs as it does Yarn's.
  if (manager === "npm" && wanted?.manager === "npm") version = wanted.version;
  if (manager === "pnpm") {
    const major = /^lockfileVersion:\s*['"]?(\d+)/m.exec(text)?.[1];
    const known = major === undefined ? undefined : PNPM_BY_LOCKFILE[major];
    version = wanted?.manager === "pnpm" ? wanted.version : (known ?? "");
    if (version === "")
      return {
        problem:
          `${dir}/${lock} has lockfileVersion ${major ?? "(none)"}, which apphost does not know the pnpm of; ` +
          `set "packageManager" in package.json to the pnpm that wrote it, like "pnpm@9.15.9"`,
      };
  }
  const yarnFiles = isYarnBerry({ manager, version }) ? (facts.yarnFiles?.present ?? []) : [];
  return { deps: { manager, lock, version, ...(yarnFiles.length > 0 ? { yarnFiles } : {}) } };
}

/**
 * The Yarn 2 or later release a Berry lock installs with: package.json's `packageManager`, else the one .yarnrc.yml's
 * `yarnPath` names (`.yarn/releases/yarn-4.13.0.cjs`), else the last of the line that writes the lock's `__metadata`
 * version. A problem when the install could not make the node_modules a release links: Plug'n'Play (Yarn's default
 * nodeLinker) or pnpm's linker, a file .yarnrc.yml or the lock names that the app lacks, or a lock whose Yarn apphost
 * does not know. A workspace installs as Yarn 1's: its node-modules linker links the members as npm does.
 */
function berryVersion(
  facts: NodeFacts,
  wanted: { manager: NodeManager; version: string } | undefined,
  text: string,
  file: string,
): { version: string } | { problem: string } {
  const linker = facts.yarnLinker ?? "pnp";
  if (linker !== "node-modules")
    return {
      problem:
        `${file} is Yarn 2 or later's (Berry) with nodeLinker: ${linker}` +
        (facts.yarnLinker === undefined ? " (Yarn's default: .yarnrc.yml sets none)" : " (.yarnrc.yml)") +
        ": apphost installs one node_modules per lock, shared by the releases, which Yarn makes only with " +
        "nodeLinker: node-modules; add that line to .yarnrc.yml (yarn.lock stays as it is), or " +
        NPM_LOCK,
    };
  if (wanted?.manager === "yarn" && wanted.version.startsWith("1."))
    return {
      problem:
        `${file} is Yarn 2 or later's (its __metadata) and package.json's "packageManager" names yarn@${wanted.version}, ` +
        "which cannot read it: name the Yarn that wrote the lock there",
    };
  const missing = facts.yarnFiles?.missing ?? [];
  if (missing.length > 0)
    return {
      problem:
        `${file}'s install reads ${missing.join(", ")}, which the app does not have (not committed, or left out by ` +
        "apphost:app.excludes): commit each, or take it out of apphost:app.excludes" +
        (facts.yarnPath !== undefined && missing.includes(facts.yarnPath)
          ? `; for .yarnrc.yml's yarnPath, removing the line also works: apphost installs the Yarn package.json's "packageManager" names`
          : ""),
    };
  const fromPath = /(?:^|\/)yarn-(\d+\.\d+\.\d+(?:-[\w.]+)?)\.c?js$/.exec(facts.yarnPath ?? "")?.[1];
  const metadata = /^__metadata:\s*\n\s+version:\s*["']?(\d+)/m.exec(text)?.[1];
  const version =
    wanted?.manager === "yarn"
      ? wanted.version
      : fromPath && SAFE.version.test(fromPath)
        ? fromPath
        : metadata === undefined
          ? undefined
          : YARN_BY_LOCKFILE[metadata];
  if (version === undefined)
    return {
      problem:
        `${file} has __metadata version ${metadata ?? "(none)"}, which apphost does not know the Yarn of; ` +
        `set "packageManager" in package.json to the Yarn that wrote it, like "yarn@4.13.0"`,
    };
  return { version };
}

/**
 * A Yarn workspace's members (Yarn 1, or 2+ with nodeLinker: node-modules): package.json's workspaces as appfiles
 * expanded them, checked as npm's links are.
 */
export function yarnWorkspaces(facts: NodeFacts): { members: NpmWorkspace[]; problems: string[] } {
  const { members, problems } = checkMembers(facts.members ?? [], "package.json's workspaces link");
  return { members, problems: [...(facts.memberProblems ?? []), ...problems] };
}

/**
 * The settings files a manager reads beside the lock, copied to the tree and hashed: npm's .npmrc
 * (`legacy-peer-deps=true`, without which npm ci refuses a lock made with it; a registry), and for Yarn 1 and
 * pnpm also .yarnrc and pnpm 10's pnpm-workspace.yaml, whose onlyBuiltDependencies lets better-sqlite3 build;
 * Yarn 2 and later read .yarnrc.yml alone (and the files it names: NodeDeps.yarnFiles).
 */
export function nodeSettings(deps: Pick<NodeDeps, "manager" | "version">): string[] {
  return isYarnBerry(deps)
    ? [".yarnrc.yml"]
    : deps.manager === "npm"
      ? [".npmrc"]
      : [".npmrc", ".yarnrc", "pnpm-workspace.yaml"];
}

/** How the install is named in notes and the phase's description: `npm ci`, `yarn 1.22.22 install`. */
export function nodeInstallLabel(deps: NodeDeps): string {
  if (deps.manager === "npm") return deps.version ? `npm ${deps.version} ci` : "npm ci";
  return `${deps.manager} ${deps.version} install`;
}

/** The release of each tool a build gets when it names one the app's install did not bring (a frontend's `yarn build`). */
export const DEFAULT_TOOL_VERSION: Readonly<Record<BuildTool, string>> = {
  yarn: YARN_VERSION,
  pnpm: PNPM_BY_LOCKFILE["9"],
  bun: BUN_VERSION,
};

/**
 * The tool a package.json's `packageManager` pins for a Python app's build (its frontend's, at the app's root or in
 * the directory the build starts in): pnpm, Yarn, Bun or npm at any release (Yarn 2 and later: npm's
 * @yarnpkg/cli-dist; npm: a lock the host's npm 9 misreads).
 */
export function pinnedBuildTool(packageManager: unknown): Partial<Record<PinnedTool, string>> {
  const pinned = parsePackageManager(packageManager);
  return pinned ? { [pinned.manager]: pinned.version } : {};
}

/**
 * The command that has npm install Yarn or pnpm at a release into `prefix` (its bin/ then holds the tool). Yarn 2
 * and later are npm's @yarnpkg/cli-dist (npm's `yarn` is Yarn 1), whose `yarn` runs .yarnrc.yml's yarnPath when
 * the app commits one.
 */
export function npmInstallTool(npmEnv: string, prefix: string, tool: PinnedTool, version: string): string {
  const name = tool === "yarn" && isYarnBerry({ manager: tool, version }) ? "@yarnpkg/cli-dist" : tool;
  return `${npmEnv} npm install --global --prefix ${prefix} --no-audit --no-fund ${name}@${version}`;
}

/**
 * The tools npm installs for the app's build (buildTools), each at its release: the one package.json's
 * `packageManager` pins (buildToolVersions), else DEFAULT_TOOL_VERSION's. Not the Node app's own manager, which its
 * install brings into node_modules/.bin; a Python app's own is npm, the host's, unless its frontend pins one and the
 * build runs npm.
 */
export function buildToolReleases(app: {
  runtime: string;
  build?: string;
  requirements?: string;
  nodeDeps?: NodeDeps;
  buildToolVersions?: Partial<Record<PinnedTool, string>>;
}): { tool: PinnedTool; version: string }[] {
  if (!app.build) return [];
  const own = app.runtime === "node" ? nodeDepsOf(app).manager : "npm";
  const tools: { tool: PinnedTool; version: string }[] = buildTools(app.build)
    .filter((tool) => tool !== own)
    .map((tool) => ({ tool, version: app.buildToolVersions?.[tool] ?? DEFAULT_TOOL_VERSION[tool] }));
  const npm = app.runtime === "python" ? app.buildToolVersions?.npm : undefined;
  return npm && runsProgram(app.build, "npm") ? [...tools, { tool: "npm", version: npm }] : tools;
}

/** Yarn, pnpm and Bun, as a command names them (`cd web && yarn install && yarn build`, `bunx vite build`), each once. */
export function buildTools(command: string): BuildTool[] {
  return (["yarn", "pnpm", "bun"] as const).filter((m) => runsProgram(command, m === "bun" ? "bunx?" : m));
}

/** Whether a command runs `program` (a regular expression) as a word of its own: `cd web && yarn build`, `(npm ci)`. */
function runsProgram(command: string, program: string): boolean {
  return new RegExp(`(?:^|[\\s;&|(])${program}(?:\\s|$|[;&|)])`).test(command);
}
