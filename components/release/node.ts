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
import { SAFE } from "../shell";

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
