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
 * in maintenance meanwhile (holdFollowers), so none serves from the database
 * being replaced.
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

/** The remote command: `exec <script> --owner=<who> restore [<backup>]`. */
export function restoreCommand(scriptPath: string, owner: string, backup?: string): string {
  return ["exec", scriptPath, `--owner=${owner}`, "restore", ...(backup ? [backup] : [])]
    .map(shellQuote)
    .join(" ");
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
  const held = await holdFollowers(args.stack, followers, layout);
  if (typeof held === "string") return cannot("putting the other app hosts in maintenance", new Error(held));
  // Ctrl-C or a kill: the host's restore puts its database back by itself if it is cut short (its EXIT trap), and
  // the other hosts leave maintenance once it has ended, not before (they would serve from a database being
  // replaced). A signal only keeps this process alive until then: npm passes Ctrl-C on to it a second time.
  let signalled = false;
  const interrupted = (signal: NodeJS.Signals) => {
    if (!signalled)
      console.error(
        `restore: ${args.stack}: ${signal}: the other app hosts leave maintenance once the host's restore has ended`,
      );
    signalled = true;
  };
  if (held.length > 0) {
    process.on("SIGINT", interrupted);
    process.on("SIGTERM", interrupted);
  }
  try {
    return await restoreOnFirstHost(opened, layout);
  } finally {
    await releaseFollowers(args.stack, held, layout);
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  }
}

type Host = { name: string; connection: SshConnection };

/**
 * With several app hosts (apphost:lb) the database is restored on the first, which stops its own web instance and
 * workers; the others would go on serving, and writing, from the database being replaced. Each of them that is not
 * in maintenance already is switched on for the restore: its requests get the maintenance page. Returns those
 * switched, or why it could not (then none is left switched and nothing was changed).
 */
export async function holdFollowers(
  stack: string,
  followers: Host[],
  layout: HostLayout,
  switcher: typeof switchMaintenance = switchMaintenance,
): Promise<Host[] | string> {
  if (followers.length === 0) return [];
  const before = await switcher(followers, layout, "status", true);
  const unknown = before.filter((a) => a.error !== undefined);
  if (unknown.length > 0) return unknown.map((a) => `${a.host}: ${a.error}`).join("; ");
  const off = followers.filter((_, i) => before[i].state?.maintenance !== "on");
  const on = await switcher(off, layout, "on", true);
  const failed = on.filter((a) => a.error !== undefined);
  if (failed.length > 0) {
    await switcher(
      off.filter((_, i) => on[i].error === undefined),
      layout,
      "off",
      true,
    );
    return failed.map((a) => `${a.host}: ${a.error}`).join("; ");
  }
  if (off.length > 0) {
    console.error(
      `restore: ${stack}: maintenance on for ${on.map((a) => a.host).join(", ")} while the database is restored: ` +
        "its requests get the maintenance page (its workers keep running)",
    );
  }
  return off;
}

/** The hosts holdFollowers switched on, switched off again; one that cannot be is named with the command that does it. */
export async function releaseFollowers(
  stack: string,
  held: Host[] | string,
  layout: HostLayout,
  switcher: typeof switchMaintenance = switchMaintenance,
): Promise<void> {
  if (typeof held === "string" || held.length === 0) return;
  const off = await switcher(held, layout, "off", true);
  const ok = off.filter((a) => a.error === undefined).map((a) => a.host);
  if (ok.length > 0) console.error(`restore: ${stack}: maintenance off again for ${ok.join(", ")}`);
  for (const a of off.filter((x) => x.error !== undefined)) {
    console.error(
      `restore: ${stack}: maintenance is still on for ${a.host} (${a.error}): npm run maintenance -- --stack ${stack} off`,
    );
  }
}

async function restoreOnFirstHost(opened: OpenedStack, layout: HostLayout): Promise<number> {
  const { args, deployed, cannot } = opened;
  const conn = deployed.connection;
  const owner = `${os.userInfo().username}@${os.hostname()}:npm-run-restore`.replace(
    /[^A-Za-z0-9@._:/-]/g,
    "",
  );
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
