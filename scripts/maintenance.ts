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
 * With several app hosts (apphost:lb) every app host is switched, and each is
 * named in what it prints.
 *
 * Exit: 0 done (status printed), 1 off was asked but the stack's config keeps
 * it on, 2 could not run (on any app host: each one's state is printed).
 */
import { hostLayout, type HostLayout } from "../components/paths";
import type { SshConnection } from "../components/remote/connection";
import { parseResult } from "../components/release/script";
import { maintenanceScript, type MaintenanceAction } from "../components/remote/day2";
import { runRemote } from "../components/remote/ssh";
import {
  appHosts,
  openDeployedStack,
  openedStackConfig,
  opsUsageError,
  readOpsArgs,
  type OpsCommandLine,
  runCommand,
  shortError,
  EXIT_CANNOT_CHECK,
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

/** One app host's answer to the maintenance script: its `key=value` lines, or why it could not run there. */
export interface HostMaintenance {
  /** `app2 (10.81.0.2)` with several app hosts; empty with one */
  host: string;
  state?: Record<string, string>;
  error?: string;
}

/**
 * What `npm run maintenance` prints and its exit status, from every app host's answer: with several app hosts
 * (apphost:lb) the switch is each host's own, so each is switched and named; maintenance on some of them only would
 * send part of the users to the app.
 */
export function maintenanceReport(
  stack: string,
  action: MaintenanceAction,
  answers: HostMaintenance[],
): { out: string[]; err: string[]; code: number } {
  const out: string[] = [];
  const err: string[] = [];
  const at = (a: HostMaintenance) => (a.host ? ` ${a.host}` : "");
  for (const a of answers) {
    if (a.error !== undefined) {
      err.push(`maintenance: ${stack}:${at(a)}: could not switch maintenance ${action}: ${a.error}`);
      continue;
    }
    const state = a.state ?? {};
    const held = state.config === "on" ? " (held on by apphost:app.maintenance in the stack's config)" : "";
    out.push(`maintenance: ${stack}:${a.host ? ` ${a.host}:` : ""} ${state.maintenance ?? "unknown"}${held}`);
    if (state.page !== "present")
      out.push(
        `maintenance: warning: the maintenance page is missing${a.host ? ` on ${a.host}` : ""}; pulumi up installs it`,
      );
  }
  const answered = answers.filter((a) => a.error === undefined);
  if (err.length > 0) {
    err.push(
      answered.length > 0
        ? `maintenance: ${stack}: the app hosts above that answered were switched; run it again to switch the others`
        : `maintenance: ${stack}: nothing was switched`,
    );
    return { out, err, code: EXIT_CANNOT_CHECK };
  }
  if (action === "off" && answered.some((a) => a.state?.config === "on")) {
    err.push(
      `maintenance: ${stack}: still on: apphost:app.maintenance is true; set it to false (pulumi config set --path apphost:app.maintenance false) and pulumi up`,
    );
    return { out, err, code: 1 };
  }
  const on = answered.filter((a) => a.state?.maintenance === "on").map((a) => a.host);
  if (on.length > 0 && on.length < answered.length) {
    out.push(
      `maintenance: warning: on for ${on.join(", ")} only: the balancer sends the others' share of the requests to the app; ` +
        `npm run maintenance -- --stack ${stack} on (or off) switches every app host`,
    );
  }
  return { out, err, code: 0 };
}

/** The maintenance script run on every app host of the stack (the first one alone when it has one). */
export async function switchMaintenance(
  hosts: { name: string; connection: SshConnection }[],
  layout: HostLayout,
  action: MaintenanceAction,
  named = hosts.length > 1,
): Promise<HostMaintenance[]> {
  const script = maintenanceScript(layout, action);
  return Promise.all(
    hosts.map(async (h) => {
      const host = named ? `${h.name} (${h.connection.host})` : "";
      try {
        // In a process group of its own: a Ctrl-C leaves no host half way (restore switches the others back after one).
        const res = await runRemote(h.connection, script, {
          what: `maintenance ${action}`,
          timeoutSeconds: 120,
          ownProcessGroup: true,
        });
        return { host, state: parseResult(res.stdout) };
      } catch (e) {
        return { host, error: shortError(e, 3) };
      }
    }),
  );
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
  let layout: HostLayout;
  try {
    const config = await openedStackConfig(opened);
    layout = hostLayout(config.app.name, config.stack);
  } catch (e) {
    return opened.cannot("reading the stack", e);
  }
  const { deployed } = opened;
  const hosts = appHosts(deployed);
  const report = maintenanceReport(
    args.stack,
    args.action,
    await switchMaintenance(hosts, layout, args.action),
  );
  report.out.forEach((l) => console.log(l));
  report.err.forEach((l) => console.error(l));
  return report.code;
}

if (require.main === module) {
  runCommand("maintenance", main);
}
