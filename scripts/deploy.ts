/**
 * `npm run deploy -- <up|preview|refresh|destroy|outputs> --stack <name> [flags]`
 *
 * The main job: the real Pulumi engine on apphost's program, one command per
 * stack. Flags map to the engine's: --refresh, --diff, --expect-no-changes,
 * --preview-only (refresh), --yes is implied (the Automation API never prompts).
 */
import { openStack } from "./lib/automation";
import { readCommandLine, usageError } from "./lib/cli";

interface Cli {
  verb: string;
  stack: string;
  flags: Set<string>;
}

const VERBS = ["up", "preview", "refresh", "destroy", "outputs"];
const FLAGS = ["refresh", "diff", "expect-no-changes", "preview-only", "yes", "json"];

export function parseCli(argv: string[]): Cli {
  const line = readCommandLine(argv, { values: ["stack"], flags: FLAGS, short: { s: "stack" }, words: true });
  const [verb, ...extra] = line.words;
  const problems = [...line.problems];
  if (!VERBS.includes(verb ?? "")) {
    problems.unshift(`the first word must be one of ${VERBS.join(", ")}; got "${verb ?? ""}"`);
  }
  if (extra.length > 0) problems.push(`unexpected argument "${extra.join(" ")}"`);
  if (!line.values.stack && !problems.some((p) => p.startsWith("--stack"))) {
    problems.push("--stack <name> is required (local, staging or prod)");
  }
  if (problems.length > 0) {
    throw usageError(
      `npm run deploy -- <${VERBS.join("|")}> --stack <name> [--${FLAGS.join("] [--")}]`,
      problems,
    );
  }
  return { verb: verb!, stack: line.values.stack, flags: line.flags };
}

async function main(): Promise<number> {
  const cli = parseCli(process.argv.slice(2));
  const stack = await openStack({ stack: cli.stack });
  const onOutput = (s: string) => process.stdout.write(s);
  const common = { onOutput, color: "auto" as const };
  const f = (name: string) => cli.flags.has(name.replace(/^--/, ""));
  switch (cli.verb) {
    case "up":
      await stack.up({
        ...common,
        refresh: f("--refresh"),
        diff: f("--diff"),
        expectNoChanges: f("--expect-no-changes"),
      });
      break;
    case "preview":
      await stack.preview({
        ...common,
        refresh: f("--refresh"),
        diff: f("--diff"),
        expectNoChanges: f("--expect-no-changes"),
      });
      break;
    case "refresh":
      await stack.refresh({
        ...common,
        previewOnly: f("--preview-only"),
        expectNoChanges: f("--expect-no-changes"),
      });
      break;
    case "destroy":
      await stack.destroy({ ...common });
      break;
    case "outputs": {
      const outs = await stack.outputs();
      const plain = Object.fromEntries(
        Object.entries(outs).map(([k, v]) => [k, v.secret ? "[secret]" : v.value]),
      );
      process.stdout.write(JSON.stringify(plain, null, 2) + "\n");
      break;
    }
  }
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e: Error) => {
      // The engine already printed its diagnostics through onOutput.
      process.stderr.write(`\napphost: ${e.message.split("\n").slice(-30).join("\n")}\n`);
      process.exit(1);
    },
  );
}
