/**
 * `npm run exec -- --stack <name> [--tty] -- <command…>`
 *
 * Runs a one-off command on the host in the live release's directory, as the
 * app user, with the env file (its secrets included) loaded by systemd as the
 * units load it, the units' PATH and a worker's sandbox: a shell, `flask
 * shell`, `python manage.py createsuperuser`, a data fix. One word is shell
 * text (`-- 'flask routes | head'`), several are an argv. `--tty` gives an
 * interactive terminal. Nothing of the env file is printed.
 *
 * Exit: the command's own status; 2 when it could not run (bad arguments,
 * stack not deployed, SSH failed; also a command that itself exits 2).
 */
import { errorHintOf } from "../components/release/phases";
import { appYarnBerry } from "../components/release/node";
import { execScript } from "../components/remote/day2";
import { spawnRemote } from "../components/remote/ssh";
import {
  EXIT_CANNOT_CHECK,
  openDeployedStack,
  hostScript,
  opsUsageError,
  readOpsArgs,
  type OpsCommandLine,
  runCommand,
  type OpsArgs,
} from "./lib/ops";

export interface ExecArgs extends OpsArgs {
  tty: boolean;
  command: string[];
}

const EXEC_COMMAND_LINE: OpsCommandLine = {
  options: ["host"],
  flags: ["tty"],
  short: { t: "tty" },
  rest: true,
  usage: "[--tty] -- <command…>",
};

export function parseExecArgs(argv: string[]): ExecArgs {
  const { args, line, problems } = readOpsArgs(argv, EXEC_COMMAND_LINE);
  const command = line.rest ?? [];
  if (command.length === 0) {
    problems.push("no command: give it after --, e.g. npm run exec -- --stack local -- flask shell");
  }
  if (problems.length > 0) throw opsUsageError("exec", EXEC_COMMAND_LINE, problems);
  return { ...args, tty: line.flags.has("tty"), command };
}

async function main(): Promise<number> {
  const opened = await openDeployedStack("exec", parseExecArgs, process.argv.slice(2), "run the command");
  if (typeof opened === "number") return opened;
  const args = opened.args as ExecArgs;
  const picked = await hostScript(opened, (layout, config) =>
    execScript(layout, {
      runtime: config.app.runtime,
      yarnBerry: appYarnBerry(config.app),
      argv: args.command,
      tty: args.tty,
    }),
  );
  if (typeof picked === "number") return picked;
  const { host, script } = picked;
  const { code, stderrTail } = await spawnRemote(host.connection, script, {
    tty: args.tty,
    keepStderr: 65536,
  });
  if (code === 255) {
    const c = host.connection;
    console.error(
      `exec: ${args.stack}: ssh to ${c.user}@${c.host}:${c.port} failed (or the command exited 255)`,
    );
    return EXIT_CANNOT_CHECK;
  }
  // A failed command's error, where apphost knows what it usually means (a write into the read-only release).
  const known = code === 0 ? undefined : errorHintOf(stderrTail);
  if (known) console.error(`exec: ${known.line}: ${known.hint}`);
  return code;
}

if (require.main === module) {
  runCommand("exec", main);
}
