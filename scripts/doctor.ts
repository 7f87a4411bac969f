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
  doctorChecks,
  doctorInputFromConfig,
  parseDoctorOutput,
  renderDoctorScript,
  type DoctorResult,
} from "../components/doctor";
import { runRemote } from "../components/remote/ssh";
import {
  EXIT_CANNOT_CHECK,
  openDeployedStack,
  parseOpsArgs,
  readStackConfig,
  runCommand,
  stackConfigFromMap,
  type OpsArgs,
} from "./lib/ops";

export const DOCTOR_OPTIONS = ["origin-ca-file", "backup-max-age"];

export function parseDoctorArgs(argv: string[]): OpsArgs {
  const args = parseOpsArgs("doctor", argv, DOCTOR_OPTIONS);
  const age = args.options["backup-max-age"];
  if (age !== undefined && !/^[1-9][0-9]*$/.test(age)) {
    throw new Error(`--backup-max-age: "${age}" must be a whole number of seconds`);
  }
  return args;
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
    r.status === "pass" ? `PASS ${r.name}` : `${r.status.toUpperCase()} ${r.name}: ${r.detail}`,
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
  let script: string;
  let names: string[];
  try {
    const config = stackConfigFromMap(await readStackConfig(stack, args.configFile), {
      project: "apphost",
      stack: args.stack,
    });
    const age = args.options["backup-max-age"];
    const checks = doctorChecks(
      doctorInputFromConfig(config, {
        releaseId: deployed.releaseId,
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

  const { connection: conn } = deployed;
  console.log(
    `doctor: ${args.stack}: ${deployed.hostId} on ${conn.user}@${conn.host}:${conn.port}, release ${deployed.releaseId}`,
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

if (require.main === module) {
  runCommand("doctor", main);
}
