/**
 * `npm run logs -- --stack <name> [--process web|<worker>|<schedule>|backup|migrate] [--since 1h] [-f]`
 *
 * The journal of the stack's units on its host, merged in time order, each
 * line labelled by its process (`<app>-<stack>-<process>[pid]`); `migrate`
 * prints the last migration's log. `-f` follows until Ctrl-C. Runs over the
 * deploy's own connection (a jump host or Instance Connect included).
 *
 * Exit: 0 printed (or followed until stopped), 1 nothing to show (no
 * migration log yet), 2 could not run (bad arguments, stack not deployed, SSH failed).
 */
import { logsScript } from "../components/remote/day2";
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

export interface LogsArgs extends OpsArgs {
  follow: boolean;
}

const LOGS_COMMAND_LINE: OpsCommandLine = {
  options: ["process", "since", "host"],
  flags: ["follow"],
  short: { f: "follow" },
  usage: "[-f|--follow]",
};

export function parseLogsArgs(argv: string[]): LogsArgs {
  const { args, line, problems } = readOpsArgs(argv, LOGS_COMMAND_LINE);
  if (problems.length > 0) throw opsUsageError("logs", LOGS_COMMAND_LINE, problems);
  return { ...args, follow: line.flags.has("follow") };
}

async function main(): Promise<number> {
  const opened = await openDeployedStack("logs", parseLogsArgs, process.argv.slice(2), "show logs");
  if (typeof opened === "number") return opened;
  const args = opened.args as LogsArgs;
  const picked = await hostScript(opened, (layout, config) =>
    logsScript(layout, {
      app: config.app,
      process: args.options.process,
      since: args.options.since,
      follow: args.follow,
    }),
  );
  if (typeof picked === "number") return picked;
  const { host, script } = picked;
  const { code, interrupted } = await spawnRemote(host.connection, script, {
    holdStdin: args.follow,
  });
  // Ctrl-C is how a follow ends: not a failure.
  if (interrupted && args.follow) return 0;
  if (code === 255) {
    const c = host.connection;
    console.error(`logs: ${args.stack}: could not show logs: ssh to ${c.user}@${c.host}:${c.port} failed`);
    return EXIT_CANNOT_CHECK;
  }
  return code === 0 ? 0 : code === 1 ? 1 : EXIT_CANNOT_CHECK;
}

if (require.main === module) {
  runCommand("logs", main);
}
