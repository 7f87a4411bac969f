/**
 * `npm run restore -- --stack <name> --backup <file> [--config-file <path>]`
 *
 * Restores the stack's database from a named backup on its host, through
 * `apphost-release restore` (see components/release/restore.ts): verify the
 * backup, stop the workers and the web instance, save what the restore
 * replaces (`…-pre-restore.db`), restore, start, health-check. When the app is
 * not healthy on the restored database, the saved copy goes back and the app
 * is started again.
 *
 * `--backup` is a file name in the host's `shared/backups/` (or its full
 * path); without it, the command lists the backups there.
 *
 * With several app hosts (apphost:lb) the first one restores; the others are
 * in maintenance meanwhile, with their workers stopped (holdFollowers), so
 * none serves from, or writes to, the database being replaced.
 *
 * Exit: 0 restored and healthy; 1 the restore failed (the database is back
 * as it was, unless the output says otherwise); 2 could not run (usage, the
 * stack, SSH).
 */
import * as os from "os";
import { EXIT_CODES } from "../components/release/phases";
import { parseResult, releaseScriptPath } from "../components/release/script";
import type { HostLayout } from "../components/paths";
import type { SshConnection } from "../components/remote/connection";
import { runRemote } from "../components/remote/ssh";
import { shellQuote } from "../components/shell";
import {
  appHosts,
  deployedLayout,
  EXIT_CANNOT_CHECK,
  openDeployedStack,
  parseOpsArgs,
  runCommand,
  shortError,
  type OpenedStack,
  type OpsArgs,
} from "./lib/ops";
import { switchMaintenance } from "./maintenance";

const BACKUP_NAME = /^[A-Za-z0-9_./@%+=:,-]+$/;

export function parseRestoreArgs(argv: string[]): OpsArgs {
  const args = parseOpsArgs("restore", argv, ["backup"]);
  const backup = args.options.backup;
  if (backup !== undefined && !BACKUP_NAME.test(backup)) {
    throw new Error(`--backup: "${backup}" is not a backup name (letters, digits and _./@%+=:,- only)`);
  }
  return args;
}

/** `exec <script> --owner=<who> <args...>`, each word quoted where it needs to be. */
function scriptCommand(scriptPath: string, owner: string, ...args: string[]): string {
  return ["exec", scriptPath, `--owner=${owner}`, ...args].map(shellQuote).join(" ");
}

/** The remote command: `exec <script> --owner=<who> restore [<backup>]`. */
export function restoreCommand(scriptPath: string, owner: string, backup?: string): string {
  return scriptCommand(scriptPath, owner, "restore", ...(backup ? [backup] : []));
}

/** What the command prints last, from the script's result lines. */
export function summaryLine(stack: string, result: Record<string, string>): string {
  const saved = result.saved ? `; what it replaced is saved in ${result.saved}` : "";
  const port = result.port ? ` (web instance on port ${result.port} healthy)` : "";
  return `restore: ${stack}: database restored from ${result.restored}${port}${saved}`;
}

async function main(): Promise<number> {
  const opened = await openDeployedStack("restore", parseRestoreArgs, process.argv.slice(2), "run");
  if (typeof opened === "number") return opened;
  const { args, deployed, cannot } = opened;
  let layout: HostLayout;
  try {
    layout = await deployedLayout(opened);
  } catch (e) {
    return cannot("reading the stack", e);
  }
  const followers = args.options.backup ? appHosts(deployed).slice(1) : [];
  const owner = restoreOwner();
  const held = await holdFollowers(args.stack, followers, layout, owner);
  if (typeof held === "string")
    return cannot("putting the other app hosts in maintenance and stopping their workers", new Error(held));
  // Ctrl-C or a kill: the host's restore puts its database back by itself if it is cut short (its EXIT trap), and
  // the other hosts start their workers and leave maintenance once it has ended, not before (they would serve from,
  // and write to, a database being replaced). A signal only keeps this process alive until then: npm passes Ctrl-C
  // on to it a second time.
  let signalled = false;
  const interrupted = (signal: NodeJS.Signals) => {
    if (!signalled)
      console.error(
        `restore: ${args.stack}: ${signal}: the other app hosts get their workers back and leave maintenance once the host's restore has ended`,
      );
    signalled = true;
  };
  if (held.maintenance.length > 0 || held.workers.length > 0) {
    process.on("SIGINT", interrupted);
    process.on("SIGTERM", interrupted);
  }
  try {
    return await restoreOnFirstHost(opened, layout, owner);
  } finally {
    await releaseFollowers(args.stack, held, layout, owner);
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }
}

type Host = { name: string; connection: SshConnection };

/** The lock owner the host's commands record: who runs the restore, and from where. */
function restoreOwner(): string {
  return `${os.userInfo().username}@${os.hostname()}:npm-run-restore`.replace(/[^A-Za-z0-9@._:/-]/g, "");
}

export type WorkersAction = "stop" | "start";

/** The remote command: `exec <script> --owner=<who> workers stop|start`. */
export function workersCommand(scriptPath: string, owner: string, action: WorkersAction): string {
  return scriptCommand(scriptPath, owner, "workers", action);
}

/** A host's answer to `workers stop|start`: its worker units (`workers=`, "" when it has none), or why it could not. */
export interface HostWorkers {
  host: string;
  workers?: string;
  error?: string;
}

/** `apphost-release workers stop|start` on each host at once, each in a process group of its own (as maintenance). */
export async function switchWorkers(
  hosts: Host[],
  layout: HostLayout,
  action: WorkersAction,
  owner: string,
): Promise<HostWorkers[]> {
  const command = workersCommand(releaseScriptPath(layout), owner, action);
  return Promise.all(
    hosts.map(async (h) => {
      const host = `${h.name} (${h.connection.host})`;
      try {
        const res = await runRemote(h.connection, command, {
          what: `workers ${action}`,
          timeoutSeconds: 300,
          ownProcessGroup: true,
        });
        return { host, workers: parseResult(res.stdout).workers ?? "" };
      } catch (e) {
        return { host, error: shortError(e, 3) };
      }
    }),
  );
}

/** How the restore reaches the other app hosts; the tests pass stand-ins. */
export interface FollowerSwitches {
  maintenance: typeof switchMaintenance;
  workers: typeof switchWorkers;
}

const SWITCHES: FollowerSwitches = { maintenance: switchMaintenance, workers: switchWorkers };

/** What holdFollowers changed, for releaseFollowers to change back. */
export interface HeldFollowers {
  /** The hosts it switched into maintenance (one already in maintenance stays so) */
  maintenance: Host[];
  /** The hosts whose workers it stopped */
  workers: Host[];
}

const named = (hosts: { host: string }[]) => hosts.map((a) => a.host).join(", ");
const failures = (answers: { host: string; error?: string }[]) =>
  answers
    .filter((a) => a.error !== undefined)
    .map((a) => `${a.host}: ${a.error}`)
    .join("; ");

/**
 * With several app hosts (apphost:lb) the database is restored on the first, which stops its own web instance and
 * workers; the others would go on serving, and writing, from the database being replaced. Each of them that is not
 * in maintenance already is switched on for the restore (its requests get the maintenance page), and each one's
 * workers are stopped, under its deploy lock. Returns what it changed, or why it could not (then what it had changed
 * is changed back, and the restore does not run).
 */
export async function holdFollowers(
  stack: string,
  followers: Host[],
  layout: HostLayout,
  owner: string,
  sw: FollowerSwitches = SWITCHES,
): Promise<HeldFollowers | string> {
  if (followers.length === 0) return { maintenance: [], workers: [] };
  const before = await sw.maintenance(followers, layout, "status", true);
  if (failures(before)) return failures(before);
  const off = followers.filter((_, i) => before[i].state?.maintenance !== "on");
  const on = await sw.maintenance(off, layout, "on", true);
  const switched = off.filter((_, i) => on[i].error === undefined);
  const stopped = failures(on) ? [] : await sw.workers(followers, layout, "stop", owner);
  const why = failures(on) || failures(stopped);
  if (why) {
    await sw.workers(
      followers.filter((_, i) => stopped[i]?.error === undefined && stopped[i]?.workers),
      layout,
      "start",
      owner,
    );
    await sw.maintenance(switched, layout, "off", true);
    return why;
  }
  if (switched.length > 0) {
    console.error(
      `restore: ${stack}: maintenance on for ${named(on)} while the database is restored: ` +
        "its requests get the maintenance page",
    );
  }
  const withWorkers = stopped.filter((a) => a.workers);
  for (const a of withWorkers) {
    console.error(
      `restore: ${stack}: workers stopped on ${a.host} while the database is restored: ${(a.workers ?? "").replace(/ /g, ", ")}`,
    );
  }
  return { maintenance: switched, workers: followers.filter((_, i) => stopped[i].workers) };
}

/**
 * What holdFollowers changed, changed back: the workers started, then maintenance off. A host where that fails is
 * named with the command that does it.
 */
export async function releaseFollowers(
  stack: string,
  held: HeldFollowers | string,
  layout: HostLayout,
  owner: string,
  sw: FollowerSwitches = SWITCHES,
): Promise<void> {
  if (typeof held === "string") return;
  if (held.workers.length > 0) {
    const started = await sw.workers(held.workers, layout, "start", owner);
    const ok = started.filter((a) => a.error === undefined);
    if (ok.length > 0) console.error(`restore: ${stack}: workers started again on ${named(ok)}`);
    for (const a of started.filter((x) => x.error !== undefined)) {
      console.error(
        `restore: ${stack}: the workers of ${a.host} are still stopped (${a.error}): ` +
          `on that host, sudo ${releaseScriptPath(layout)} workers start (or pulumi up, which starts them)`,
      );
    }
  }
  if (held.maintenance.length === 0) return;
  const off = await sw.maintenance(held.maintenance, layout, "off", true);
  const ok = off.filter((a) => a.error === undefined);
  if (ok.length > 0) console.error(`restore: ${stack}: maintenance off again for ${named(ok)}`);
  for (const a of off.filter((x) => x.error !== undefined)) {
    console.error(
      `restore: ${stack}: maintenance is still on for ${a.host} (${a.error}): npm run maintenance -- --stack ${stack} off`,
    );
  }
}

async function restoreOnFirstHost(opened: OpenedStack, layout: HostLayout, owner: string): Promise<number> {
  const { args, deployed, cannot } = opened;
  const conn = deployed.connection;
  const res = await runRemote(conn, restoreCommand(releaseScriptPath(layout), owner, args.options.backup), {
    what: `apphost-release restore on ${conn.user}@${conn.host}:${conn.port}`,
    timeoutSeconds: 3600,
    allowFailure: true,
  }).catch((e: unknown) => e as Error);
  if (res instanceof Error) return cannot("the host", res);
  process.stderr.write(res.stderr);
  if (res.code === 0) {
    console.log(summaryLine(args.stack, parseResult(res.stdout)));
    return 0;
  }
  if (res.code === 255) return cannot(`ssh to ${conn.user}@${conn.host}:${conn.port}`, new Error(res.stderr));
  if (res.code === EXIT_CODES.usage) {
    console.error(
      `restore: ${args.stack}: nothing was changed. usage: npm run restore -- --stack ${args.stack} --backup <file>`,
    );
    return EXIT_CANNOT_CHECK;
  }
  if (res.code === EXIT_CODES.locked) {
    console.error(
      `restore: ${args.stack}: nothing was changed: a deploy or another restore holds the host's lock`,
    );
    return EXIT_CANNOT_CHECK;
  }
  console.error(
    res.code === EXIT_CODES.rollbackFailed
      ? `restore: ${args.stack}: FAILED, and putting things back failed too: look at the host (the lines above)`
      : `restore: ${args.stack}: failed (exit ${res.code}); the lines above say what was put back`,
  );
  return 1;
}

if (require.main === module) {
  runCommand("restore", main);
}
