/**
 * Runs the whole program (program.ts) the way `pulumi destroy` and `refresh`
 * run it (PULUMI_RUN_PROGRAM) on a stack whose state holds nothing: the engine
 * answers every registration with the resource's own inputs and none of the
 * outputs its provider computes (passwords, keys, certificates, addresses,
 * the host's connection). Exits 0 when the program registered everything
 * without throwing, 1 with the error otherwise. Used by program.empty.test.ts:
 *   node -r ./test/register.js test/unit/empty-state-run.ts <stack> <stack file>
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
} from "../../scripts/lib/render-stack";

const ROOT = path.resolve(__dirname, "../..");

async function main(): Promise<void> {
  const [stack, file] = process.argv.slice(2);
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
  } finally {
    fs.rmSync(process.env.APPHOST_CACHE, { recursive: true, force: true });
  }
  process.stdout.write(`registered ${registered} resources\n`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
