/**
 * `npm run bench:rolling [-- --reps N] [--no-publish] [--keep-sandbox]`: the
 * wall time of a rolling code release over 2 and over 3 app hosts behind a
 * balancer host (apphost:host.addresses + apphost:lb), on four sandboxes of
 * its own (test/e2e/multihost-lib.ts, as the multihost e2e builds them).
 *
 * Each repetition changes the sample app's code in a temp copy and runs one
 * `pulumi up` under a steady, bounded load through the balancer; the release
 * goes host by host (drain, health-gated release, back in, healthy). The
 * time between the two host counts is one `up` that adds the third host (not
 * a code release; reported for context). Every release must fail 0 requests.
 *
 * Results: bench/out/rolling.json, and (unless --no-publish) the section
 * between the `rolling` markers of BENCHMARKS.md, which `npm run bench`
 * keeps when it rewrites the rest of the file.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { engineBin } from "../scripts/lib/automation";
import { readCommandLine, usageError } from "../scripts/lib/cli";
import { ROOT } from "../test/e2e/lib";
import { Cluster } from "../test/e2e/multihost-lib";
import { inSandbox } from "../test/e2e/ops-lib";
import { describeLoad } from "../test/e2e/release-lib";
import { renderRolling, replaceMarkedSection, type RollingRep, type RollingResults } from "./report";

const OUT = path.join(ROOT, "bench", "out");

interface Args {
  reps: number;
  publish: boolean;
  keepSandbox: boolean;
}

function parseArgs(argv: string[]): Args {
  const line = readCommandLine(argv, { values: ["reps"], flags: ["no-publish", "keep-sandbox"] });
  const problems = [...line.problems];
  const reps = Number(line.values.reps ?? "3");
  if (!Number.isInteger(reps) || reps < 1 || reps > 10)
    problems.push(`--reps takes 1..10, got "${line.values.reps}"`);
  if (problems.length > 0)
    throw usageError("npm run bench:rolling -- [--reps N] [--no-publish] [--keep-sandbox]", problems);
  return { reps, publish: !line.flags.has("no-publish"), keepSandbox: line.flags.has("keep-sandbox") };
}

const started = Date.now();
const log = (msg: string) =>
  process.stderr.write(`bench:rolling [${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(OUT, { recursive: true });
  const engineLog = fs.createWriteStream(path.join(OUT, "rolling-engine.log"));
  const c = new Cluster(
    {
      lb: { name: "apphost-rlb", subnet: "10.92.0" },
      apps: [
        { name: "apphost-r1", subnet: "10.93.0" },
        { name: "apphost-r2", subnet: "10.94.0" },
        { name: "apphost-r3", subnet: "10.95.0" },
      ],
      stack: "local-roll",
      db: { name: "sample_roll", user: "sample_roll", password: "roll-bench-pw-41d7" },
    },
    (s) => engineLog.write(s),
  );
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-rolling-src-"));
  fs.cpSync(path.join(ROOT, "examples", "sample-app"), copy, { recursive: true });
  const main = path.join(copy, "app", "main.py");
  const original = fs.readFileSync(main, "utf8");
  c.source = copy;
  const results: RollingResults = {
    startedAt: new Date().toISOString(),
    command: `npm run bench:rolling${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    loadAtStart: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(", "),
    loadAtEnd: "",
    versions: {},
    firstUpSeconds: NaN,
    scaleUpSeconds: NaN,
    reps: [],
  };
  let failedChecks = 0;
  const timed = async () => {
    const t0 = Date.now();
    const res = await c.up();
    return { res, seconds: (Date.now() - t0) / 1000 };
  };
  try {
    log("four sandboxes and the shared Postgres");
    c.prepare();
    log("first up: 2 app hosts and the balancer (not measured as a release)");
    results.firstUpSeconds = (await timed()).seconds;
    results.versions.pulumi = execFileSync(path.join(engineBin(), "pulumi"), ["version"], {
      encoding: "utf8",
    }).trim();
    results.versions.caddy = inSandbox(c.spec.lb.name, "caddy version").trim().split(" ")[0];
    for (const hosts of [2, 3]) {
      if (hosts === 3) {
        log("scale to 3 app hosts (not measured as a release)");
        c.count = 3;
        results.scaleUpSeconds = (await timed()).seconds;
      }
      for (let i = 1; i <= args.reps; i++) {
        fs.writeFileSync(main, `${original}\n# rolling bench: ${hosts} hosts, repetition ${i}\n`);
        const l = c.load();
        await new Promise((r) => setTimeout(r, 2000));
        const { res, seconds } = await timed();
        await new Promise((r) => setTimeout(r, 2000));
        const load = await l.stop();
        const live = res.outputs.hostsLive.value as { name: string; live: string }[];
        const rep: RollingRep = {
          hosts,
          seconds,
          requests: load.requests,
          failed: load.failed,
          failures: load.failures,
          worstMs: load.worstMs,
          allLive: live.length === hosts && live.every((h) => h.live === res.outputs.releaseId.value),
        };
        results.reps.push(rep);
        const ok = rep.failed === 0 && rep.allLive && res.summary.result === "succeeded";
        if (!ok) failedChecks++;
        log(
          `${ok ? "ok  " : "FAIL"} ${hosts} hosts, repetition ${i}: ${seconds.toFixed(1)} s; load: ${describeLoad(load)}; ` +
            `live: ${live.map((h) => `${h.name}=${h.live}`).join(" ")}`,
        );
      }
    }
  } catch (e) {
    failedChecks++;
    log(`FAIL the bench ran to the end: ${(e as Error).stack ?? String(e)}`);
  } finally {
    if (!args.keepSandbox)
      await c.down().catch((e) => log(`could not take the sandboxes down: ${String(e)}`));
    fs.rmSync(copy, { recursive: true, force: true });
    engineLog.end();
  }
  results.loadAtEnd = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");
  fs.writeFileSync(path.join(OUT, "rolling.json"), JSON.stringify(results, null, 2));
  const section = renderRolling(results);
  process.stdout.write(`\n${section}\n`);
  if (args.publish && failedChecks === 0) {
    const file = path.join(ROOT, "BENCHMARKS.md");
    fs.writeFileSync(file, replaceMarkedSection(fs.readFileSync(file, "utf8"), "rolling", section));
    log("wrote its section of BENCHMARKS.md");
  }
  log(failedChecks === 0 ? "all releases failed 0 requests" : `${failedChecks} check(s) failed`);
  return failedChecks === 0 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`bench:rolling: ${(e as Error).message}\n`);
      process.exit(2);
    },
  );
}
