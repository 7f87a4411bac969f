/**
 * Several `npm run render` command lines in one process, one after another
 * (runRender, the command without its process), for render-stack.test.ts:
 *   node -r ./test/register.js test/unit/render-runs.ts '<JSON: string[][]>'
 * Prints a JSON array with each run's exit status, standard output and
 * standard error. Exits 0 when every run was made (whatever their statuses),
 * 3 when something escaped a run (an unhandled rejection or exception).
 *
 * One process instead of one per command line: each render loads the
 * program's modules anew otherwise, most of its CPU. The spec checks that a
 * render after others writes what a render in its own process writes.
 */
import * as path from "path";
import { runRender } from "../../scripts/lib/render-stack";

const ROOT = path.resolve(__dirname, "../..");

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function escaped(e: unknown): never {
  process.stderr.write(
    `render-runs: escaped a run: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
  );
  process.exit(3);
}

async function main(): Promise<void> {
  const lines = JSON.parse(process.argv[2] ?? "[]") as string[][];
  const results: RunResult[] = [];
  for (const argv of lines) {
    const run: RunResult = { code: -1, stdout: "", stderr: "" };
    run.code = await runRender(ROOT, argv, {
      line: (text) => (run.stdout += `${text}\n`),
      error: (text) => (run.stderr += `${text}\n`),
    });
    results.push(run);
  }
  process.stdout.write(JSON.stringify(results));
}

process.on("uncaughtException", escaped);
process.on("unhandledRejection", escaped);
main().then(() => process.exit(0), escaped);
