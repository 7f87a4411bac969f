/**
 * `npm run drift -- --stack <name> [--config-file <path>]`: does the cloud or
 * the host still match the stack's state? Runs the engine's refresh in
 * preview-only mode with --expect-no-changes (nothing is written), prints
 * which resources drifted, and exits:
 *
 *   0  no drift
 *   1  drift found (the summary names each resource and its type)
 *   2  could not check (no credentials, no such stack, host unreachable,
 *      engine error): never reported as drift
 *
 * PULUMI_BACKEND_URL selects the backend as for every engine command.
 */
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { liveReleaseId } from "../components/release/id";
import { openStack } from "./lib/automation";
import { EXIT_CANNOT_CHECK, parseOpsArgs, runCommand, shortError, type OpsArgs } from "./lib/ops";

export interface DriftItem {
  /** `changed` (update or replace) or `gone` (the refresh would delete it from the state) */
  op: "changed" | "gone";
  /** Resource type token, e.g. `pulumi-nodejs:dynamic/apphost:HostFile` */
  type: string;
  /** Resource name, e.g. `app-site` */
  name: string;
  /** Properties that differ, from the engine's `[diff: ~content,sha256]`; [] when not shown */
  diff: string[];
}

/**
 * What a refresh read as live where the state has another value: a Release's `live` (`<id> (<unit> failed)`,
 * `<id> (<unit> runs libssl.so.3, replaced since it started)`), a Rollout's per host (`host` set).
 */
export interface LiveChange {
  /** Resource name, e.g. `app-release` */
  name: string;
  /** The app host's name (a Rollout's `app2`); absent for one host's Release */
  host?: string;
  from: string;
  to: string;
}

const RELEASE_TYPES = ["pulumi-nodejs:dynamic/apphost:Release", "pulumi-nodejs:dynamic/apphost:Rollout"];

/**
 * The live values a refresh preview's steps change, from the engine's events: a drifted release says what is
 * down or stale on the host, which its progress line does not.
 */
export function liveChanges(events: readonly EngineEvent[]): LiveChange[] {
  const out = new Map<string, LiveChange>();
  for (const e of events) {
    const m = e.resourcePreEvent?.metadata ?? e.resOutputsEvent?.metadata;
    if (!m || !RELEASE_TYPES.includes(m.type)) continue;
    const name = m.urn.slice(m.urn.lastIndexOf("::") + 2);
    const [from, to] = [m.old?.outputs?.live, m.new?.outputs?.live];
    if (typeof from === "string" && typeof to === "string") {
      if (from !== to) out.set(name, { name, from, to });
      continue;
    }
    // A Rollout: [{ name, live }] per app host.
    const hosts = (v: unknown) =>
      new Map(
        (Array.isArray(v) ? v : []).flatMap((h: { name?: unknown; live?: unknown }) =>
          typeof h?.name === "string" && typeof h.live === "string" ? [[h.name, h.live] as const] : [],
        ),
      );
    const before = hosts(from);
    for (const [host, live] of hosts(to)) {
      const was = before.get(host) ?? "none";
      if (was !== live) out.set(`${name} ${host}`, { name, host, from: was, to: live });
    }
  }
  return [...out.values()];
}

/** A resource the engine could not read, or an error not tied to a resource. */
export interface DriftError {
  /** Resource type token; "" for the engine's own errors */
  type: string;
  name: string;
  message: string;
}

const NO_CHANGES_EXPECTED = "no changes were expected";

/**
 * The resources a refresh preview would change, from the engine's progress
 * lines (the last one per resource wins):
 *
 *     ~  pulumi-nodejs:dynamic/apphost:HostFile app-site update [diff: ~content,sha256]
 *     -  aws:ec2/instance:Instance host-instance delete
 */
export function parseDrift(output: string): DriftItem[] {
  const items = new Map<string, DriftItem>();
  const line =
    /^\s*(?:[~+-]|\+-|-\+|<=|\+>)?\s+(\S+:\S+)\s+(\S+)\s+(update|delete|replace|create-replacement|delete-replaced)(?:\s+\[diff: ([^\]]*)\])?\s*$/;
  for (const raw of stripAnsi(output).split("\n")) {
    const m = line.exec(raw);
    if (!m || m[1] === "pulumi:pulumi:Stack") continue;
    const [, type, name, op, diff] = m;
    const diffs = (diff ?? "")
      .split(/[\s,]+/)
      .map((d) => d.replace(/^[~+-]+/, ""))
      .filter(Boolean);
    const prev = items.get(`${type} ${name}`);
    items.set(`${type} ${name}`, {
      op: op === "delete" ? "gone" : "changed",
      type,
      name,
      diff: diffs.length > 0 ? diffs : (prev?.diff ?? []),
    });
  }
  return [...items.values()];
}

/**
 * The errors in the engine's `Diagnostics:` section, except the one that
 * --expect-no-changes itself raises:
 *
 *     Diagnostics:
 *       pulumi-nodejs:dynamic/apphost:HostFile (app-site):
 *         error: reading /etc/caddy/apphost/x.caddy: ssh to admin@10.0.0.2:22 failed
 */
export function parseDriftErrors(output: string): DriftError[] {
  const errors: DriftError[] = [];
  const lines = stripAnsi(output).split("\n");
  const start = lines.findIndex((l) => /^Diagnostics:\s*$/.test(l));
  if (start >= 0) {
    let type = "";
    let name = "";
    let current: DriftError | undefined;
    for (const l of lines.slice(start + 1)) {
      if (/^\S/.test(l)) break; // the next section (Resources:, Outputs:, Duration:)
      const header = /^ {2}(\S+) \((.*)\):\s*$/.exec(l);
      if (header) {
        [, type, name] = header;
        current = undefined;
        continue;
      }
      const err = /^ {4}error: (.*)$/.exec(l);
      if (err) {
        current = undefined;
        if (err[1].startsWith(NO_CHANGES_EXPECTED)) continue;
        current = { type: type === "pulumi:pulumi:Stack" ? "" : type, name, message: err[1].trim() };
        errors.push(current);
        continue;
      }
      // An error's further lines (`ssh: connect to host ...: Connection refused`), up to a blank line.
      const more = /^ {4}(\S.*)$/.exec(l);
      if (more && current) current.message += `\n${more[1].trim()}`;
      else current = undefined;
    }
  }
  // Errors printed outside the Diagnostics section (before the engine ran).
  for (const l of lines.slice(0, start >= 0 ? start : undefined)) {
    const m = /^error: (.*)$/.exec(l);
    if (m && !m[1].startsWith(NO_CHANGES_EXPECTED) && !errors.some((e) => e.message === m[1].trim())) {
      errors.push({ type: "", name: "", message: m[1].trim() });
    }
  }
  const errored = /^\s+(\d+) errored\s*$/m.exec(stripAnsi(output));
  if (errored && !errors.some((e) => e.type !== "")) {
    errors.push({ type: "", name: "", message: `${errored[1]} resource(s) errored` });
  }
  return errors;
}

export interface DriftVerdict {
  code: 0 | 1 | 2;
  drift: DriftItem[];
  errors: DriftError[];
  /** What each drifted release serves on its host, where the state says otherwise (liveChanges) */
  live?: LiveChange[];
}

/**
 * What a `refresh --preview-only --expect-no-changes` run means. `error` is
 * the message the Automation API threw (undefined when the refresh
 * succeeded). Drift is reported only when the engine refused because of
 * proposed changes *and* nothing failed: a resource the engine could not read
 * (host unreachable, credentials) makes the whole check "could not check",
 * since its read may itself show up as a change.
 */
export function judgeRefresh(output: string, error?: string): DriftVerdict {
  const drift = parseDrift(output);
  if (error === undefined) return { code: 0, drift: [], errors: [] };
  const errors = parseDriftErrors(output);
  const refused = error.includes(NO_CHANGES_EXPECTED) || output.includes(NO_CHANGES_EXPECTED);
  if (errors.length === 0 && refused) return { code: 1, drift, errors };
  if (errors.length === 0) {
    // Failed before or outside the refresh: no stack, no backend, no passphrase.
    const lines = error.split("\n").filter((l) => l.trim() !== "");
    const line = lines.find((l) => /^error: /.test(l.trim())) ?? lines[lines.length - 1] ?? "unknown error";
    errors.push({ type: "", name: "", message: line.trim().replace(/^error: /, "") });
  }
  return { code: 2, drift, errors };
}

/** The host serves the release the state has, with something down or stale (`<id> (...)` after `<id>`). */
const sameRelease = (l: LiveChange) => {
  const id = liveReleaseId(l.from);
  return id !== undefined && l.to.startsWith(`${id} (`);
};

/** The lines `npm run drift` prints for a verdict (stdout for 0 and 1, stderr for 2). */
export function renderVerdict(stack: string, v: DriftVerdict): string[] {
  const short = (type: string) => type.replace(/^.*[:/]/, "");
  if (v.code === 0) return [`drift: ${stack}: no drift`];
  if (v.code === 1) {
    const lines = [
      v.drift.length > 0
        ? `drift: ${stack}: ${v.drift.length} resource(s) differ from the state:`
        : `drift: ${stack}: the engine proposed changes, but named no resource (see its output above)`,
      ...v.drift.flatMap((d) => [
        `  ${d.op}: ${d.name} (${short(d.type)}, ${d.type})` +
          (d.diff.length > 0 ? `: ${d.diff.join(", ")}` : ""),
        ...(v.live ?? [])
          .filter((l) => l.name === d.name)
          .map((l) => `    ${l.host ? `${l.host}: ` : ""}live: ${l.from} -> ${l.to}`),
      ]),
      `Put the declared state back: npm run deploy -- up --refresh --stack ${stack}`,
      // A release whose units are down or run replaced files serves the declared release still: recording that in
      // the state changes nothing on the host, and the next up publishes it again all the same.
      ...(v.drift.every((d) => (v.live ?? []).some((l) => l.name === d.name && sameRelease(l)))
        ? []
        : [`or accept what is there into the state: pulumi refresh --stack ${stack}`]),
    ];
    return lines;
  }
  const named = v.errors.filter((e) => e.type !== "");
  const lines = [
    `drift: ${stack}: could not check` +
      (named.length > 0 ? `: ${named.length} resource(s) could not be read:` : ":"),
  ];
  // Grouped by the root cause: the last line of each message (`ssh: connect to
  // host ... refused`), which is the same for every resource on one host.
  const groups = new Map<string, DriftError[]>();
  for (const e of named) {
    const cause = e.message.split("\n").pop()!;
    groups.set(cause, [...(groups.get(cause) ?? []), e]);
  }
  for (const [cause, errs] of groups) {
    lines.push(`  ${cause}`);
    if (errs[0].message.includes("\n")) lines.push(`    e.g. ${errs[0].message.split("\n")[0]}`);
    lines.push(`    ${errs.map((e) => `${e.name} (${short(e.type)})`).join(", ")}`);
  }
  for (const e of v.errors.filter((x) => x.type === ""))
    lines.push(`  ${e.message.split("\n").join("\n  ")}`);
  return lines;
}

export function parseDriftArgs(argv: string[]): OpsArgs {
  return parseOpsArgs("drift", argv);
}

async function main(): Promise<number> {
  let args: OpsArgs;
  try {
    args = parseDriftArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    return EXIT_CANNOT_CHECK;
  }
  let stack;
  try {
    // The drift check compares the host with the state as deployed: every
    // resource is read where it was last applied, all at once, so one that
    // cannot be read does not hide the others (a refresh that runs the program
    // stops at the first). After a move, `pulumi up --refresh` follows the host
    // (it runs the program); until then this check says it could not read it.
    stack = await openStack({ stack: args.stack, mustExist: true, env: { PULUMI_RUN_PROGRAM: "false" } });
  } catch (e) {
    console.error(`drift: ${args.stack}: could not check: cannot open the stack: ${shortError(e)}`);
    return EXIT_CANNOT_CHECK;
  }
  let output = "";
  let error: string | undefined;
  const events: EngineEvent[] = [];
  try {
    await stack.refresh({
      previewOnly: true,
      expectNoChanges: true,
      ...(args.configFile ? { configFile: args.configFile } : {}),
      onOutput: (s) => {
        output += s;
      },
      onEvent: (e) => {
        if (e.resourcePreEvent || e.resOutputsEvent) events.push(e);
      },
    });
  } catch (e) {
    error = String((e as Error).message ?? e);
  }
  const verdict = { ...judgeRefresh(output, error), live: liveChanges(events) };
  if (verdict.code === 2) {
    // The engine's own account first (its last lines), then the summary.
    if (output.trim() !== "")
      console.error(stripAnsi(output).replace(/\s+$/, "").split("\n").slice(-40).join("\n"));
    console.error(renderVerdict(args.stack, verdict).join("\n"));
  } else {
    console.log(renderVerdict(args.stack, verdict).join("\n"));
  }
  return verdict.code;
}

function stripAnsi(s: string): string {
  return s.replace(/\x1b\[[0-9;]*m/g, "");
}

if (require.main === module) {
  runCommand("drift", main);
}
