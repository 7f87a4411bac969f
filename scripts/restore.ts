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
 * Exit: 0 restored and healthy; 1 the restore failed (the database is back
 * as it was, unless the output says otherwise); 2 could not run (usage, the
 * stack, SSH).
 */
import * as os from "os";
import { EXIT_CODES } from "../components/release/phases";
import { parseResult, releaseScriptPath } from "../components/release/script";
import { runRemote } from "../components/remote/ssh";
import { shellQuote } from "../components/shell";
import {
  deployedLayout,
  EXIT_CANNOT_CHECK,
  openDeployedStack,
  parseOpsArgs,
  runCommand,
  type OpsArgs,
} from "./lib/ops";

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
  let layout;
  try {
    layout = await deployedLayout(opened);
  } catch (e) {
    return cannot("reading the stack", e);
  }
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
