/**
 * An npm workspace (`"workspaces"` in the root package.json, one
 * package-lock.json for all): what the install needs to know, read from the
 * lock, which names each member it links into node_modules
 * (`"node_modules/backend": {"resolved": "backend", "link": true}`).
 *
 * npm ci runs once per lock in `venvs/<hash>-node`, which holds only the
 * manifests: the root's package.json and lock, and each member's package.json
 * at its path. Each release's node_modules is then a directory of links to
 * that tree, where a member's name links to the member in the release
 * (`../backend`, as npm links it), and a member's own node_modules (what npm
 * could not hoist) is linked into the release's member (release.sh:
 * link_node_modules).
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
  for (const [key, value] of Object.entries(packages as Record<string, unknown>)) {
    const entry = value as { link?: unknown; resolved?: unknown } | null;
    const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)$/.exec(key);
    if (!m || !entry || entry.link !== true || typeof entry.resolved !== "string") continue;
    const [name, member] = [m[1], entry.resolved.replace(/\/+$/, "")];
    if (member.startsWith("/") || member.split("/").includes("..")) {
      problems.push(
        `package-lock.json links ${JSON.stringify(name)} to ${member}, outside the app directory: a release carries only ` +
          `the app directory; move it into the app as a workspace member, or point apphost:app.source at the directory that holds both`,
      );
    } else if (!PACKAGE_NAME.test(name) || !SAFE.relativeDir.test(member)) {
      problems.push(
        `package-lock.json links ${JSON.stringify(name)} to ${JSON.stringify(member)}: expected an npm package name and ` +
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
  const dirs = new Set<string>();
  for (const { member } of members) {
    const parts = member.split("/");
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
 * as npm ci does: an app often runs on an older Node than its engines line names.
 */
export function nodeEnginesWarning(semver = DEBIAN_SEMVER): string[] {
  const check =
    `let s; try { s = require(${JSON.stringify(semver)}) } catch { process.exit(0) } ` +
    'const r = (JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).engines || {}).node; ' +
    'if (typeof r === "string" && s.validRange(r) && !s.satisfies(process.version, r)) console.log(r)';
  return [
    `NODE_WANTS=$(node -e ${q(check)} "$NEW_DIR/package.json" 2>/dev/null || true)`,
    `if [ -n "$NODE_WANTS" ]; then note "warning: package.json's engines.node is \\"$NODE_WANTS\\" and this release runs Node $(node --version), the host's nodejs: ` +
      `the app may fail where it needs a newer Node; apphost runs the host's nodejs package (Node 18 on Debian 12), so relax engines.node if the app runs on it, ` +
      `or, on an existing host, add NodeSource's apt repository for a newer nodejs before deploying"; fi`,
  ];
}
