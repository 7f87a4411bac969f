/**
 * Runs the whole program (program.ts) the way `pulumi destroy` and `refresh`
 * run it (PULUMI_RUN_PROGRAM) on a stack whose state holds nothing: the engine
 * answers every registration with the resource's own inputs and none of the
 * outputs its provider computes (passwords, keys, certificates, addresses,
 * the host's connection). Used by program.empty.test.ts, for several stacks
 * one after another, each with its own runtime state (as Pulumi's automation
 * server runs programs):
 *   node -r ./test/register.js test/unit/empty-state-run.ts '<JSON: [stack, stack file][]>'
 * Prints a JSON array with, for each, the number of resources registered, or
 * the error the program threw. Exits 0 when every run was made, 3 when
 * something escaped a run.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
  readProject,
  readStackFile,
  renderMocks,
  runtimeConfig,
  throwawayDeployKey,
  withLocalStorage,
} from "../../scripts/lib/render-stack";

const ROOT = path.resolve(__dirname, "../..");

type RunResult = { registered: number } | { error: string };

async function runOne(stack: string, file: string): Promise<RunResult> {
  const project = readProject(ROOT);
  const runtime = runtimeConfig(readStackFile(file), project, throwawayDeployKey);
  const region = runtime.config["aws:region"];
  // Invokes (AMI, VPC, zone lookups) answer as they do in any run; resources give back their inputs only.
  const invokes = renderMocks([], region ? { region } : {});
  let registered = 0;
  pulumi.runtime.setMocks(
    {
      call: (args) => invokes.call(args),
      newResource: (args) => {
        registered++;
        return { id: `${args.name}-id`, state: { ...args.inputs } };
      },
    },
    project.name,
    stack,
    false,
  );
  pulumi.runtime.setAllConfig(runtime.config, runtime.secretKeys);
  process.env.APPHOST_CACHE = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-empty-state-"));
  try {
    const { program } = require(path.join(ROOT, "program")) as typeof import("../../program");
    await pulumi.runtime.runInPulumiStack(program);
    await pulumi.runtime.disconnect();
    return { registered };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  } finally {
    fs.rmSync(process.env.APPHOST_CACHE, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const setups = JSON.parse(process.argv[2] ?? "[]") as Array<[stack: string, file: string]>;
  const results: RunResult[] = [];
  for (const [stack, file] of setups) results.push(await withLocalStorage(() => runOne(stack, file)));
  process.stdout.write(JSON.stringify(results));
}

function escaped(e: unknown): never {
  process.stderr.write(
    `empty-state-run: escaped a run: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
  );
  process.exit(3);
}

process.on("uncaughtException", escaped);
process.on("unhandledRejection", escaped);
main().then(() => process.exit(0), escaped);
