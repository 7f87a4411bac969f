/**
 * `npm run bench [-- --quick]`: how apphost behaves on the sandbox host.
 *
 *   1. downtime   failed requests and worst latency under a steady, bounded load while
 *                 (a) apphost releases new code (`pulumi up`) and (b) the runbooks' way
 *                 (tar over SSH into /srv/<id>/current/, restart the live web instance)
 *   2. noop       a no-op `pulumi up` against a bare `pulumi preview`: wall time and
 *                 remote commands (sudo's COMMAND= lines in the host journal)
 *   3. release    a code-only release with unchanged and with changed dependencies:
 *                 wall time and time per phase of the release script
 *   4. test       wall time of `npm test`
 *
 * Every measurement is repeated `--reps` times (default 5; `--quick`: once;
 * `--test-reps` for npm test alone, which takes ~1.5 min a run here) and
 * reported as median, min and max. Results go to bench/out/ (results.json,
 * report.md, latency.svg); a full run also writes BENCHMARKS.md and
 * docs/bench-latency.svg. Exits non-zero when a check fails, above all when an
 * apphost release drops a single request.
 *
 * Options: --quick, --reps N, --test-reps N, --only downtime,noop,release,test,
 * --keep-sandbox (leave the sandbox up for the next run), --publish / --no-publish.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type * as auto from "@pulumi/pulumi/automation";
import * as yaml from "js-yaml";
import { engineBin } from "../scripts/lib/automation";
import {
  changedCount,
  freshBackend,
  http,
  localStack,
  onHost,
  ROOT,
  sandboxDown,
  sandboxUp,
} from "../test/e2e/lib";
import type { Sandbox } from "../test/e2e/lib";
import { readCommandLine, usageError } from "../scripts/lib/cli";
import { latencyChart, type Panel } from "./chart";
import {
  deployCommandTimes,
  DEPLOY_PHASES,
  hostEvents,
  hostNow,
  hostVersions,
  remoteCommandsSince,
  runbookRelease,
  watchPhases,
  type DeployPhase,
  type PhaseTimes,
} from "./host";
import { startLoad, type LoadOptions, type LoadRun, type Sample } from "./load";
import { markedSections, renderReport, type Results } from "./report";
import { fmtSpread, spread, summarize } from "./stats";

// The bench's own sandbox and stack: others run theirs on 10.77-10.79 at the same time.
const SANDBOX = { name: "apphost-h7", subnet: "10.80.0" };
const STACK = "local-h7";
const HOSTNAME = "sample.local.test";
/** A small pure-python package, pinned, added by the changed-dependencies release */
const EXTRA_REQUIREMENT = "six==1.17.0";
const OUT = path.join(ROOT, "bench", "out");

interface Args {
  quick: boolean;
  reps: number;
  testReps: number;
  only: Set<string>;
  keepSandbox: boolean;
  publish: boolean;
}

const SECTIONS = ["downtime", "noop", "release", "test"];

function parseArgs(argv: string[]): Args {
  const line = readCommandLine(argv, {
    values: ["reps", "test-reps", "only"],
    flags: ["quick", "keep-sandbox", "publish", "no-publish"],
  });
  const problems = [...line.problems];
  const quick = line.flags.has("quick");
  const count = (name: string, fallback: number): number => {
    const given = line.values[name];
    if (given === undefined) return fallback;
    const n = Number(given);
    if (!Number.isInteger(n) || n < 1 || n > 20) problems.push(`--${name} takes 1..20, got "${given}"`);
    return n;
  };
  const reps = quick ? 1 : count("reps", 5);
  const testReps = count("test-reps", reps);
  const only = new Set(line.values.only?.split(",") ?? SECTIONS);
  for (const s of only) if (!SECTIONS.includes(s)) problems.push(`--only: unknown section "${s}"`);
  if (line.flags.has("publish") && line.flags.has("no-publish"))
    problems.push("--publish and --no-publish both given");
  if (problems.length > 0)
    throw usageError("npm run bench -- [options]; see the header of bench/run.ts", problems);
  const publish = line.flags.has("publish") || (!line.flags.has("no-publish") && !quick);
  return { quick, reps, testReps, only, keepSandbox: line.flags.has("keep-sandbox"), publish };
}

const started = Date.now();
function log(msg: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`bench [${t}s] ${msg}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch {
    return "";
  }
}

function machine(): Results["machine"] {
  const cpu = fs.readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "";
  return {
    nproc: Number(sh("nproc", [])) || os.cpus().length,
    cpu,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: os.release(),
  };
}

/** Other sandboxes (network namespaces named apphost-*) running now: other work on the machine. */
function otherSandboxes(): string[] {
  return sh("ip", ["netns", "list"])
    .split("\n")
    .map((l) => l.split(" ")[0])
    .filter((n) => n.startsWith("apphost-") && n !== SANDBOX.name);
}

// ------------------------------------------------------------ the app copy

/**
 * A temp copy of the sample app whose `/` says which edit it runs, so the load
 * sees the switch. It lives under bench/out/ (ignored by git): apphost:app.source
 * must be a path relative to the project.
 */
class AppCopy {
  readonly dir: string;
  private readonly main: string;
  private readonly reqs: string;
  private readonly baseReqs: string;
  readonly visible: boolean;

  constructor() {
    this.dir = fs.mkdtempSync(path.join(OUT, "app-"));
    fs.cpSync(path.join(ROOT, "examples", "sample-app"), this.dir, { recursive: true });
    this.main = path.join(this.dir, "app", "main.py");
    this.reqs = path.join(this.dir, "requirements.txt");
    this.baseReqs = fs.readFileSync(this.reqs, "utf8");
    const src = fs.readFileSync(this.main, "utf8");
    const index = /return \{"app": "sample", "release": RELEASE,/;
    this.visible = index.test(src);
    const patched = src.replace(index, 'return {"app": "sample", "release": RELEASE, "edit": BENCH_EDIT,');
    fs.writeFileSync(this.main, `${patched}\nBENCH_EDIT = "initial"  # rewritten by bench/run.ts\n`);
  }

  /** Change the code: `/` answers `edit: <label>` once this code runs. */
  edit(label: string): void {
    const src = fs.readFileSync(this.main, "utf8");
    fs.writeFileSync(this.main, src.replace(/^BENCH_EDIT = ".*"/m, `BENCH_EDIT = "${label}"`));
  }

  /** Original requirements, or those plus the extra package and a note that makes its hash new. */
  requirements(extra?: string): void {
    fs.writeFileSync(
      this.reqs,
      extra ? `${this.baseReqs}# added by bench/run.ts (${extra}):\n${EXTRA_REQUIREMENT}\n` : this.baseReqs,
    );
  }

  /** A copy of this copy with the code changed: what the runbook uploads by hand (apphost's source stays as deployed). */
  editedCopy(label: string): string {
    const dir = fs.mkdtempSync(path.join(OUT, "runbook-"));
    fs.cpSync(this.dir, dir, { recursive: true });
    const main = path.join(dir, "app", "main.py");
    fs.writeFileSync(
      main,
      fs.readFileSync(main, "utf8").replace(/^BENCH_EDIT = ".*"/m, `BENCH_EDIT = "${label}"`),
    );
    return dir;
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(OUT, { recursive: true });
  const engineLog = fs.createWriteStream(path.join(OUT, "engine.log"));
  const onOutput = (s: string) => engineLog.write(s);
  const results: Results = {
    mode: args.quick ? "quick" : "full",
    reps: args.reps,
    testReps: args.testReps,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    startedAt: new Date().toISOString(),
    machine: machine(),
    loadAtStart: sh("uptime", []),
    loadAtEnd: "",
    otherSandboxesAtStart: otherSandboxes(),
    otherSandboxesAtEnd: [],
    versions: { node: process.version, pulumi: "", hostPython: sh("python3", ["--version"]) },
    load: { workers: 4, intervalMs: 100, paths: ["/", "/items"], timeoutMs: 15000 },
    checks: [],
  };
  const check = (name: string, ok: boolean, detail = "") => {
    results.checks.push({ name, ok, detail });
    log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? `: ${detail}` : ""}`);
  };
  log(
    `mode ${results.mode}: ${args.reps} repetition(s), npm test ${args.testReps}; sections ${[...args.only].join(", ")}`,
  );
  log(
    `machine: ${results.loadAtStart}; other sandboxes: ${results.otherSandboxesAtStart.join(" ") || "none"}`,
  );
  results.versions.pulumi = sh(path.join(engineBin(), "pulumi"), ["version"]);

  const needsHost = ["downtime", "noop", "release"].some((s) => args.only.has(s));
  const stackFile = path.join(ROOT, `Pulumi.${STACK}.yaml`);
  const stackFileExisted = fs.existsSync(stackFile);
  fs.mkdirSync(OUT, { recursive: true });
  const app = new AppCopy();
  let configDir: string | undefined;
  let backendDir: string | undefined;
  let sandboxIsUp = false;

  try {
    if (needsHost) {
      log(`sandbox ${SANDBOX.name} at ${SANDBOX.subnet}.2`);
      const sandbox = sandboxUp(SANDBOX);
      sandboxIsUp = true;
      const backend = freshBackend();
      backendDir = backend.slice("file://".length);
      const base = yaml.load(fs.readFileSync(path.join(ROOT, "Pulumi.local.yaml"), "utf8")) as {
        config: Record<string, Record<string, unknown>>;
      };
      const stack = await localStack(backend, {
        stackName: STACK,
        sandbox,
        config: { "apphost:app": { ...base.config["apphost:app"], source: path.relative(ROOT, app.dir) } },
      });
      configDir = path.dirname(stack.configFile);
      const up = () => stack.up({ onOutput, configFile: stack.configFile });

      log("first `pulumi up` (host setup, venv, first release; not measured)");
      const t0 = Date.now();
      const first = await up();
      results.firstUpSeconds = (Date.now() - t0) / 1000;
      const id = String(first.outputs.hostId.value);
      const ctx: HostCtx = {
        sandbox,
        stack,
        up,
        onOutput,
        app,
        id,
        root: `/srv/${id}`,
        unitPrefix: `apphost-${id}`,
      };
      log(
        `first up: ${results.firstUpSeconds.toFixed(1)}s, release ${first.outputs.releaseId.value} on ${id}`,
      );
      const home = http(sandbox, HOSTNAME, "/", "https");
      check(
        "the app answers through the proxy after the first up",
        home.status === 200,
        `HTTP ${home.status}`,
      );
      results.versions = { ...results.versions, ...hostVersions() };

      if (args.only.has("downtime")) await downtime(ctx, args, results, check);
      if (args.only.has("noop")) await noop(ctx, args, results, check);
      if (args.only.has("release")) await releases(ctx, args, results, check);
    }
  } catch (e) {
    check("the bench ran to the end", false, (e as Error).stack ?? String(e));
  } finally {
    app.remove();
    if (configDir) fs.rmSync(configDir, { recursive: true, force: true });
    if (backendDir) fs.rmSync(backendDir, { recursive: true, force: true });
    if (!stackFileExisted) fs.rmSync(stackFile, { force: true });
    if (sandboxIsUp && !args.keepSandbox) {
      log(`sandbox ${SANDBOX.name} down`);
      try {
        sandboxDown();
      } catch (e) {
        check("the sandbox went down", false, String(e));
      }
    }
  }

  if (args.only.has("test")) {
    results.testWithSandboxDown = !sandboxIsUp || !args.keepSandbox;
    testSuite(args, results, check);
  }

  results.loadAtEnd = sh("uptime", []);
  results.otherSandboxesAtEnd = otherSandboxes();
  results.finishedAt = new Date().toISOString();
  results.wallSeconds = (Date.now() - started) / 1000;
  engineLog.end();

  const svg = results.chart ? latencyChart(results.chart.title, results.chart.panels) : undefined;
  if (svg) fs.writeFileSync(path.join(OUT, "latency.svg"), svg);
  fs.writeFileSync(path.join(OUT, "results.json"), JSON.stringify({ ...results, chart: undefined }, null, 2));
  const report = renderReport(results, svg ? "docs/bench-latency.svg" : undefined);
  fs.writeFileSync(path.join(OUT, "report.md"), report);
  if (args.publish) {
    // Sections other benches wrote (bench/rolling.ts) stay as they are.
    const file = path.join(ROOT, "BENCHMARKS.md");
    const kept = fs.existsSync(file) ? markedSections(fs.readFileSync(file, "utf8")) : "";
    fs.writeFileSync(file, kept ? `${report.replace(/\n*$/, "\n")}\n${kept}` : report);
    if (svg) fs.writeFileSync(path.join(ROOT, "docs", "bench-latency.svg"), svg);
    log("wrote BENCHMARKS.md and docs/bench-latency.svg");
  }

  process.stdout.write(`\n${summaryText(results)}\n`);
  const failed = results.checks.filter((c) => !c.ok).length;
  // .ci/run reads mocha's closing lines; the bench's checks are counted the same way.
  process.stdout.write(`\n  ${results.checks.length - failed} passing\n`);
  if (failed) process.stdout.write(`  ${failed} failing\n`);
  return failed ? 1 : 0;
}

type Check = (name: string, ok: boolean, detail?: string) => void;

interface HostCtx {
  sandbox: Sandbox;
  stack: auto.Stack & { configFile: string };
  up: () => Promise<auto.UpResult>;
  onOutput: (s: string) => void;
  app: AppCopy;
  id: string;
  root: string;
  unitPrefix: string;
}

// --------------------------------------------------------------- downtime

function loadOptions(ctx: HostCtx, results: Results, maxSeconds: number): LoadOptions {
  const l = results.load;
  return {
    address: ctx.sandbox.host,
    hostname: HOSTNAME,
    paths: l.paths,
    workers: l.workers,
    intervalMs: l.intervalMs,
    timeoutMs: l.timeoutMs,
    maxSeconds,
    maxRequests: Math.ceil((maxSeconds * 1000 * l.workers) / l.intervalMs),
  };
}

/** Run `release` under load: 3 s of load before, 3 s after. */
async function underLoad(
  ctx: HostCtx,
  results: Results,
  maxSeconds: number,
  release: () => Promise<void> | void,
): Promise<{ samples: Sample[]; start: number; end: number; ended: string }> {
  const load = await startLoad(loadOptions(ctx, results, maxSeconds));
  let start = Date.now();
  let end = 0;
  let run: LoadRun | undefined;
  try {
    await sleep(3000);
    start = Date.now();
    await release();
    end = Date.now();
    await sleep(3000);
  } finally {
    if (end === 0) end = Date.now();
    run = await load.stop();
  }
  return { samples: run.samples, start, end, ended: run.ended };
}

/** When a request's answer arrived. */
function answeredAt(s: Sample | undefined): number | undefined {
  return s === undefined ? undefined : s.at + s.ms;
}

/** The release's wall time, the failed requests and the host's events, in s since the release started. */
function details(
  w: { samples: Sample[]; start: number; end: number; ended: string },
  events: { at: number; what: string }[],
) {
  const rel = (t: number) => Math.round(t - w.start) / 1000;
  return {
    seconds: (w.end - w.start) / 1000,
    ended: w.ended,
    failedRequests: w.samples
      .filter((s) => !s.ok)
      .map((s) => ({
        t: rel(s.at),
        ms: s.ms,
        what: s.status ? `HTTP ${s.status}` : (s.error ?? "error"),
        reused: s.reused,
      })),
    hostEvents: events.map((e) => ({ t: rel(e.at), what: e.what })),
  };
}

async function downtime(ctx: HostCtx, args: Args, results: Results, check: Check): Promise<void> {
  const rows: Results["downtime"] = { apphost: [], runbook: [] };
  results.downtime = rows;
  const panels: Panel[] = [];
  for (let i = 1; i <= args.reps; i++) {
    const aLabel = `apphost-${i}-${Date.now()}`;
    ctx.app.edit(aLabel);
    log(`downtime ${i}/${args.reps}: apphost release (pulumi up) under load`);
    let upError = "";
    const aSince = hostNow();
    const a = await underLoad(ctx, results, 300, async () => {
      try {
        const res = await ctx.up();
        if (changedCount(res.summary.resourceChanges) === 0) upError = "the up changed nothing";
      } catch (e) {
        upError = (e as Error).message.slice(0, 2000);
      }
    });
    const aSum = summarize(a.samples);
    const aSwitch = answeredAt(a.samples.find((s) => s.edit === aLabel));
    const aEvents = hostEvents(aSince, ctx.unitPrefix);
    rows.apphost.push({ ...aSum, ...details(a, aEvents), switched: aSwitch !== undefined });
    log(
      `  apphost: ${aSum.failed}/${aSum.requests} failed (${aSum.retried} retried), worst ${aSum.worstMs} ms, ${((a.end - a.start) / 1000).toFixed(1)}s` +
        (upError ? `, ERROR ${upError}` : ""),
    );
    check(`apphost release ${i}: pulumi up succeeded`, upError === "", upError);
    check(
      `apphost release ${i}: no failed request under load`,
      aSum.failed === 0,
      `${aSum.failed} of ${aSum.requests} failed ${JSON.stringify(aSum.failures)}`,
    );
    if (ctx.app.visible) check(`apphost release ${i}: the new code answered`, aSwitch !== undefined);
    // The upstream moves with nftables (docs/releases.md): a release never reloads the proxy.
    const reloads = aEvents.filter((e) => e.what === "caddy reload").length;
    check(
      `apphost release ${i}: no proxy reload`,
      reloads === 0,
      `${reloads} caddy reload(s) during the release`,
    );

    await sleep(2000);
    const bLabel = `runbook-${i}-${Date.now()}`;
    const runbookDir = ctx.app.editedCopy(bLabel);
    log(`downtime ${i}/${args.reps}: runbook release (tar into current/, restart) under load`);
    let rbError = "";
    const bSince = hostNow();
    const b = await underLoad(ctx, results, 120, () => {
      try {
        runbookRelease(ctx.sandbox, runbookDir, ctx.root, ctx.unitPrefix);
      } catch (e) {
        rbError = (e as Error).message;
      }
    });
    fs.rmSync(runbookDir, { recursive: true, force: true });
    const bSum = summarize(b.samples);
    const bSwitch = answeredAt(b.samples.find((s) => s.edit === bLabel));
    const bEvents = hostEvents(bSince, ctx.unitPrefix);
    rows.runbook.push({ ...bSum, ...details(b, bEvents), switched: bSwitch !== undefined });
    log(
      `  runbook: ${bSum.failed}/${bSum.requests} failed (${bSum.retried} retried), worst ${bSum.worstMs} ms, ${((b.end - b.start) / 1000).toFixed(1)}s` +
        (rbError ? `, ERROR ${rbError}` : ""),
    );
    check(`runbook release ${i}: upload and restart succeeded`, rbError === "", rbError);
    if (i === 1) {
      panels.push(
        {
          title: "apphost: pulumi up (blue/green behind a health gate)",
          samples: a.samples,
          start: a.start,
          end: a.end,
          switchedAt: aSwitch,
          events: aEvents,
        },
        {
          title: "runbook: tar into /srv/<id>/current/, restart web@<port>",
          samples: b.samples,
          start: b.start,
          end: b.end,
          switchedAt: bSwitch,
          events: bEvents,
        },
      );
    }
    await sleep(2000);
  }
  results.chart = {
    title: "Request latency during a code release under steady load (first repetition)",
    panels,
  };
}

// ------------------------------------------------------------------- noop

async function noop(ctx: HostCtx, args: Args, results: Results, check: Check): Promise<void> {
  const rows: Results["noop"] = { up: [], preview: [] };
  results.noop = rows;
  for (let i = 1; i <= args.reps; i++) {
    for (const op of ["up", "preview"] as const) {
      // journalctl's --since has whole seconds: start the window after this probe.
      const since = hostNow() + 1;
      await sleep(1100);
      const t0 = Date.now();
      const res =
        op === "up"
          ? await ctx.up()
          : await ctx.stack.preview({ onOutput: ctx.onOutput, configFile: ctx.stack.configFile });
      const seconds = (Date.now() - t0) / 1000;
      const summary =
        op === "up"
          ? (res as auto.UpResult).summary.resourceChanges
          : (res as auto.PreviewResult).changeSummary;
      const changes = changedCount(summary);
      const commands = remoteCommandsSince(since);
      rows[op].push({ seconds, commands: commands.length, changes, commandLines: commands.slice(0, 20) });
      log(
        `noop ${i}/${args.reps}: ${op} ${seconds.toFixed(1)}s, ${commands.length} remote commands, ${changes} changes`,
      );
      check(`no-op ${op} ${i}: changes nothing`, changes === 0, JSON.stringify(summary));
      check(
        `no-op ${op} ${i}: runs no remote command`,
        commands.length === 0,
        commands.slice(0, 5).join("\n"),
      );
    }
  }
}

// ---------------------------------------------------------------- release

async function releases(ctx: HostCtx, args: Args, results: Results, check: Check): Promise<void> {
  const rows: Results["release"] = { unchanged: [], changed: [] };
  results.release = rows;
  for (const deps of ["unchanged", "changed"] as const) {
    for (let i = 1; i <= args.reps; i++) {
      const label = `release-${deps}-${i}-${Date.now()}`;
      ctx.app.edit(label);
      ctx.app.requirements(deps === "changed" ? label : undefined);
      const since = hostNow();
      const watcher = await watchPhases(ctx.sandbox, ctx.root, 900);
      const t0 = Date.now();
      let error = "";
      try {
        await ctx.up();
      } catch (e) {
        error = (e as Error).message.slice(0, 2000);
      }
      const seconds = (Date.now() - t0) / 1000;
      const starts = deployCommandTimes(since);
      const phases: PhaseTimes = await watcher.finish(starts[starts.length - 1]);
      rows[deps].push({
        seconds,
        script: phases.script,
        phases: phases.phases,
        note: phases.note,
        events: phases.events.map((e) => `${((e.at - t0) / 1000).toFixed(3)} ${e.kind}`),
      });
      const detail = phases.phases
        ? DEPLOY_PHASES.map((p) => `${p} ${phases.phases![p].toFixed(2)}`).join(", ")
        : (phases.note ?? "");
      log(`release (${deps} deps) ${i}/${args.reps}: ${seconds.toFixed(1)}s; ${detail}`);
      check(`release (${deps} deps) ${i}: pulumi up succeeded`, error === "", error);
      check(`release (${deps} deps) ${i}: every phase timed`, phases.phases !== undefined, phases.note ?? "");
      if (deps === "changed" && phases.phases) {
        // A new requirements hash means a new venv: pip really ran.
        check(
          `release (changed deps) ${i}: a new venv was built`,
          onHost(
            `ls ${ctx.root}/venvs/*/lib/python3*/site-packages/six.py 2>/dev/null | wc -l`,
          ).stdout.trim() !== "0",
        );
      }
    }
  }
  ctx.app.requirements();
}

// ------------------------------------------------------------------- test

function testSuite(args: Args, results: Results, check: Check): void {
  results.test = [];
  for (let i = 1; i <= args.testReps; i++) {
    const logFile = path.join(OUT, `npm-test-${i}.log`);
    log(`npm test ${i}/${args.testReps} (output: ${path.relative(ROOT, logFile)})`);
    const t0 = Date.now();
    const fd = fs.openSync(logFile, "w");
    const res = spawnSync("npm", ["test"], { cwd: ROOT, stdio: ["ignore", fd, fd], timeout: 20 * 60_000 });
    fs.closeSync(fd);
    const seconds = (Date.now() - t0) / 1000;
    const passing = /^\s*(\d+) passing/m.exec(fs.readFileSync(logFile, "utf8"))?.[1];
    results.test.push({ seconds, code: res.status ?? -1, passing: passing ? Number(passing) : undefined });
    log(`  ${seconds.toFixed(1)}s, exit ${res.status}${passing ? `, ${passing} passing` : ""}`);
    check(`npm test ${i}: exits 0`, res.status === 0, `exit ${res.status}; see ${logFile}`);
  }
}

// ---------------------------------------------------------------- summary

function summaryText(r: Results): string {
  const s = (v: number[], d = 1) => fmtSpread(spread(v), d);
  const lines = [`apphost bench (${r.mode}, ${r.reps} repetition(s); median (min–max))`];
  if (r.downtime) {
    for (const m of ["apphost", "runbook"] as const) {
      const rows = r.downtime[m];
      lines.push(
        `  downtime ${m.padEnd(7)}: failed ${s(
          rows.map((x) => x.failed),
          0,
        )} of ~${Math.round(spread(rows.map((x) => x.requests)).median)} (retried ${s(
          rows.map((x) => x.retried),
          0,
        )}), worst ${s(
          rows.map((x) => x.worstMs),
          0,
        )} ms, release ${s(rows.map((x) => x.seconds))} s`,
      );
    }
  }
  if (r.noop) {
    lines.push(
      `  no-op up     : ${s(r.noop.up.map((x) => x.seconds))} s, ${s(
        r.noop.up.map((x) => x.commands),
        0,
      )} remote commands`,
      `  preview      : ${s(r.noop.preview.map((x) => x.seconds))} s, ${s(
        r.noop.preview.map((x) => x.commands),
        0,
      )} remote commands`,
    );
  }
  if (r.release) {
    for (const deps of ["unchanged", "changed"] as const) {
      const rows = r.release[deps];
      const phases = DEPLOY_PHASES.map(
        (p: DeployPhase) =>
          `${p} ${s(
            rows.map((x) => x.phases?.[p] ?? NaN),
            2,
          )}`,
      ).join(", ");
      lines.push(`  release, ${deps} deps: ${s(rows.map((x) => x.seconds))} s; ${phases}`);
    }
  }
  if (r.test) lines.push(`  npm test     : ${s(r.test.map((x) => x.seconds))} s`);
  lines.push(
    `  total: ${((r.wallSeconds ?? 0) / 60).toFixed(1)} min; load at start: ${r.loadAtStart}; at end: ${r.loadAtEnd}`,
  );
  const failed = r.checks.filter((c) => !c.ok);
  if (failed.length)
    lines.push("  FAILED checks:", ...failed.map((c) => `    - ${c.name}: ${c.detail.split("\n")[0]}`));
  return lines.join("\n");
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
