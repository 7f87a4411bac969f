/**
 * `npm run maintenance -- --stack <name> on|off|status`
 *
 * Maintenance mode without a deploy: the proxy answers every request but the
 * health path with the maintenance page (503, Retry-After), from the moment
 * the switch file is written; off removes it. No proxy reload, no restart,
 * nothing in the state: `apphost:app.maintenance: true` is the same switch
 * kept by the stack (either one turns it on, so `off` says when the stack's
 * config still holds it on). A release can run while it is on.
 *
 * Exit: 0 done (status printed), 1 off was asked but the stack's config keeps
 * it on, 2 could not run.
 */
import { hostLayout } from "../components/paths";
import { maintenanceScript, type MaintenanceAction } from "../components/remote/day2";
import { runRemote } from "../components/remote/ssh";
import {
  openDeployedStack,
  openedStackConfig,
  opsUsageError,
  readOpsArgs,
  type OpsCommandLine,
  runCommand,
  type OpsArgs,
} from "./lib/ops";

export interface MaintenanceArgs extends OpsArgs {
  action: MaintenanceAction;
}

const MAINTENANCE_COMMAND_LINE: OpsCommandLine = { words: true, usage: "on|off|status" };

export function parseMaintenanceArgs(argv: string[]): MaintenanceArgs {
  const { args, line, problems } = readOpsArgs(argv, MAINTENANCE_COMMAND_LINE);
  const [action, ...extra] = line.words;
  if (action === undefined) problems.push("on, off or status is required");
  else if (!["on", "off", "status"].includes(action)) problems.push(`"${action}" is not on, off or status`);
  if (extra.length > 0) problems.push(`unexpected argument "${extra.join(" ")}"`);
  if (problems.length > 0) throw opsUsageError("maintenance", MAINTENANCE_COMMAND_LINE, problems);
  return { ...args, action: action as MaintenanceAction };
}

async function main(): Promise<number> {
  const opened = await openDeployedStack(
    "maintenance",
    parseMaintenanceArgs,
    process.argv.slice(2),
    "switch maintenance",
  );
  if (typeof opened === "number") return opened;
  const args = opened.args as MaintenanceArgs;
  let script: string;
  try {
    const config = await openedStackConfig(opened);
    script = maintenanceScript(hostLayout(config.app.name, config.stack), args.action);
  } catch (e) {
    return opened.cannot("reading the stack", e);
  }
  let out: string;
  try {
    out = (
      await runRemote(opened.deployed.connection, script, {
        what: `maintenance ${args.action}`,
        timeoutSeconds: 120,
      })
    ).stdout;
  } catch (e) {
    return opened.cannot(`maintenance ${args.action}`, e);
  }
  const state = Object.fromEntries(
    out
      .split("\n")
      .map((l) => l.split("="))
      .filter((kv) => kv.length === 2),
  ) as Record<string, string>;
  const held = state.config === "on" ? " (held on by apphost:app.maintenance in the stack's config)" : "";
  console.log(`maintenance: ${args.stack}: ${state.maintenance ?? "unknown"}${held}`);
  if (state.page !== "present")
    console.log("maintenance: warning: the maintenance page is missing; pulumi up installs it");
  if (args.action === "off" && state.config === "on") {
    console.error(
      `maintenance: ${args.stack}: still on: apphost:app.maintenance is true; set it to false (pulumi config set --path apphost:app.maintenance false) and pulumi up`,
    );
    return 1;
  }
  return 0;
}

if (require.main === module) {
  runCommand("maintenance", main);
}
