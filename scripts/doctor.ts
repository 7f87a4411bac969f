/**
 * `npm run doctor -- --stack <name> [--config-file <path>]
 *                    [--origin-ca-file <path on host>] [--backup-max-age <seconds>]`
 *
 * Is the deployed stack healthy? Reads the stack's outputs (how to reach the
 * host, the release it published) and config, builds the checks of
 * components/doctor.ts, runs them on the host as root over SSH and prints one
 * line per check:
 *
 *     PASS units
 *     FAIL backup: no backup in /srv/shop-prod/shared/backups
 *     SKIP tls-certificate: n/a: tls off
 *
 * Exit: 0 every check passed (or was skipped), 1 a check failed, 2 could not
 * check (no such stack, not deployed, bad config, SSH failed).
 */
import {
  balancerCheck,
  doctorChecks,
  doctorInputFromConfig,
  parseDoctorOutput,
  renderDoctorScript,
  type DoctorResult,
} from "../components/doctor";
import type { StackConfig } from "../components/config/types";
import type { SshConnection } from "../components/remote/connection";
import { runRemote } from "../components/remote/ssh";
import { shellQuote } from "../components/shell";
import {
  EXIT_CANNOT_CHECK,
  openDeployedStack,
  opsUsageError,
  readOpsArgs,
  type OpsCommandLine,
  readStackConfig,
  runCommand,
  stackConfigFromMap,
  openedStackConfig,
  type OpenedStack,
  type OpsArgs,
} from "./lib/ops";
import { alertTestScript } from "../components/remote/day2";
import { hostLayout } from "../components/paths";

/**
 * `--alert-test`: the host posts a test message to apphost:alerts.webhook
 * with the same script a failed unit uses. Exit 0 sent, 1 the webhook refused
 * it or could not be reached, 2 alerts are not set (or could not run).
 */
async function alertTest(opened: OpenedStack): Promise<number> {
  const { args, deployed, cannot } = opened;
  let script: string;
  try {
    const config = await openedStackConfig(opened);
    if (!config.alerts.enabled) {
      console.error(
        `doctor: ${args.stack}: --alert-test: apphost:alerts is not set; set it with pulumi config set --secret --path 'apphost:alerts.webhook' <URL>, then pulumi up`,
      );
      return EXIT_CANNOT_CHECK;
    }
    script = alertTestScript(hostLayout(config.app.name, config.stack));
  } catch (e) {
    return cannot("reading the stack", e);
  }
  let res;
  try {
    res = await runRemote(deployed.connection, script, {
      what: "alert test",
      allowFailure: true,
      timeoutSeconds: 120,
    });
  } catch (e) {
    return cannot("sending the test alert", e);
  }
  const text = (res.stdout + res.stderr).trim();
  if (res.code === 0) {
    console.log(`doctor: ${args.stack}: alert-test: sent (${text.split("\n").pop()})`);
    return 0;
  }
  console.error(
    `doctor: ${args.stack}: alert-test: ${res.code === 255 ? "ssh failed" : "not sent"}: ${text}`,
  );
  return res.code === 1 ? 1 : EXIT_CANNOT_CHECK;
}

export const DOCTOR_OPTIONS = ["origin-ca-file", "backup-max-age"];

export interface DoctorArgs extends OpsArgs {
  /** `--alert-test`: send a test message through apphost:alerts instead of the checks */
  alertTest: boolean;
}

const DOCTOR_COMMAND_LINE: OpsCommandLine = {
  options: DOCTOR_OPTIONS,
  flags: ["alert-test"],
  usage: "[--alert-test]",
};

export function parseDoctorArgs(argv: string[]): DoctorArgs {
  const { args, line, problems } = readOpsArgs(argv, DOCTOR_COMMAND_LINE);
  const age = args.options["backup-max-age"];
  if (age !== undefined && !/^[1-9][0-9]*$/.test(age)) {
    problems.push(`--backup-max-age: "${age}" must be a whole number of seconds`);
  }
  if (problems.length > 0) throw opsUsageError("doctor", DOCTOR_COMMAND_LINE, problems);
  return { ...args, alertTest: line.flags.has("alert-test") };
}

/**
 * The lines doctor prints after the header: every expected check once, in
 * order (a check the script never reported is a failure), then a count.
 */
export function renderDoctorReport(
  expected: string[],
  results: DoctorResult[],
): { lines: string[]; failed: number } {
  const byName = new Map(results.map((r) => [r.name, r]));
  const all: DoctorResult[] = expected.map(
    (name) =>
      byName.get(name) ?? { name, status: "fail", detail: "no result (the doctor script stopped early)" },
  );
  const lines = all.map((r) =>
    r.status === "pass" && r.detail === ""
      ? `PASS ${r.name}`
      : `${r.status.toUpperCase()} ${r.name}: ${r.detail}`,
  );
  const count = (s: string) => all.filter((r) => r.status === s).length;
  const failed = count("fail");
  // Not "N passed, N failed": CI reads that shape as a test runner's closing line.
  lines.push(`doctor: ${all.length} checks: ${count("pass")} pass, ${failed} fail, ${count("skip")} skip`);
  return { lines, failed };
}

async function main(): Promise<number> {
  const opened = await openDeployedStack("doctor", parseDoctorArgs, process.argv.slice(2));
  if (typeof opened === "number") return opened;
  const { args, stack, deployed, cannot } = opened;
  if ((args as DoctorArgs).alertTest) return alertTest(opened);
  let config: StackConfig;
  try {
    config = stackConfigFromMap(await readStackConfig(stack, args.configFile), {
      project: "apphost",
      stack: args.stack,
    });
  } catch (e) {
    return cannot("reading the stack", e);
  }
  // One host, or every app host behind apphost:lb (the first keeps the backups), then the balancer.
  const targets = deployed.hosts ?? [{ name: "", connection: deployed.connection }];
  let failed = 0;
  for (const [i, target] of targets.entries()) {
    const code = await checkHost(opened, config, target, i === 0 ? "primary" : "follower");
    if (code === EXIT_CANNOT_CHECK) return code;
    failed += code;
  }
  if (deployed.balancer) {
    const code = await checkBalancer(opened, deployed.balancer);
    if (code === EXIT_CANNOT_CHECK) return code;
    failed += code;
  }
  return failed > 0 ? 1 : 0;
}

/** The checks on one app host; 0 every check passed, 1 one failed, 2 could not check. */
async function checkHost(
  opened: OpenedStack,
  config: StackConfig,
  target: { name: string; connection: SshConnection },
  role: "primary" | "follower",
): Promise<number> {
  const { args, deployed, cannot } = opened;
  let script: string;
  let names: string[];
  try {
    const age = args.options["backup-max-age"];
    const checks = doctorChecks(
      doctorInputFromConfig(config, {
        // The release the stack serves: with apphost:releases.rollbackTo, the older one it names.
        releaseId: deployed.liveRelease ?? deployed.releaseId,
        role,
        ...(age !== undefined ? { backupMaxAgeSeconds: Number(age) } : {}),
        ...(args.options["origin-ca-file"] !== undefined
          ? { originCaFile: args.options["origin-ca-file"] }
          : {}),
      }),
    );
    names = checks.map((c) => c.name);
    script = renderDoctorScript(checks);
  } catch (e) {
    return cannot("reading the stack", e);
  }

  const conn = target.connection;
  console.log(
    `doctor: ${args.stack}: ${target.name ? `${target.name} (${deployed.hostId})` : deployed.hostId} on ${conn.user}@${conn.host}:${conn.port}, release ${deployed.liveRelease ?? deployed.releaseId}`,
  );
  let res;
  try {
    res = await runRemote(conn, script, { what: "doctor", allowFailure: true, timeoutSeconds: 900 });
  } catch (e) {
    return cannot("running the checks", e);
  }
  let results: DoctorResult[];
  try {
    results = parseDoctorOutput(res.stdout);
  } catch (e) {
    return cannot("reading the results", e);
  }
  if (res.code === 255 || results.length === 0) {
    const detail = (res.stderr || res.stdout).trim().split("\n").slice(-10).join("\n");
    console.error(
      `doctor: ${args.stack}: could not check: ` +
        (res.code === 255
          ? `ssh to ${conn.user}@${conn.host}:${conn.port} failed`
          : `the doctor script exited ${res.code} without results`) +
        (detail ? `\n${detail}` : ""),
    );
    return EXIT_CANNOT_CHECK;
  }
  const report = renderDoctorReport(names, results);
  console.log(report.lines.join("\n"));
  return report.failed > 0 ? 1 : 0;
}

/** apphost:lb: every app host listed, serving and healthy as the balancer sees it. */
async function checkBalancer(
  opened: OpenedStack,
  balancer: { connection: SshConnection; script: string },
): Promise<number> {
  const { args, cannot } = opened;
  const conn = balancer.connection;
  console.log(`doctor: ${args.stack}: balancer on ${conn.user}@${conn.host}:${conn.port}`);
  let res;
  try {
    res = await runRemote(conn, `exec ${shellQuote(balancer.script)} status`, {
      what: "doctor: balancer",
      allowFailure: true,
      timeoutSeconds: 120,
    });
  } catch (e) {
    return cannot("checking the balancer", e);
  }
  if (res.code !== 0) {
    console.error(
      `doctor: ${args.stack}: could not check the balancer: ${res.code === 255 ? "ssh failed" : `apphost-lb status exited ${res.code}`}: ${res.stderr.trim()}`,
    );
    return EXIT_CANNOT_CHECK;
  }
  const report = renderDoctorReport(["balancer"], [balancerCheck(res.stdout)]);
  console.log(report.lines.join("\n"));
  return report.failed > 0 ? 1 : 0;
}

if (require.main === module) {
  runCommand("doctor", main);
}
