/**
 * `npm run deploy -- <up|preview|refresh|destroy|outputs> --stack <name> [flags]`
 *
 * The main job: the real Pulumi engine on apphost's program, one command per
 * stack. Flags map to the engine's: --refresh, --diff, --expect-no-changes,
 * --preview-only (refresh), --yes is implied (the Automation API never prompts).
 */
import { CommandError } from "@pulumi/pulumi/automation";
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

/**
 * The last line of a failed run. The engine's own output, diagnostics
 * included, has already been streamed (stdout and stderr), so a failed engine
 * command is named, not repeated (its exit status when the CLI gave one: the
 * Automation API reports -2 for a failed run); any other error is its message.
 */
export function failureLine(e: unknown, verb: string, stack: string): string {
  if (e instanceof CommandError) {
    const code = (e as unknown as { commandResult?: { code?: number } }).commandResult?.code;
    return `apphost: pulumi ${verb} --stack ${stack} failed${code !== undefined && code > 0 ? ` (exit ${code})` : ""}; its diagnostics are above`;
  }
  return `apphost: ${e instanceof Error ? e.message : String(e)}`;
}

async function main(cli: Cli): Promise<number> {
  const stack = await openStack({ stack: cli.stack });
  const onOutput = (s: string) => process.stdout.write(s);
  const onError = (s: string) => process.stderr.write(s);
  const common = { onOutput, onError, color: "auto" as const };
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
  let cli: Cli | undefined;
  Promise.resolve()
    .then(() => main((cli = parseCli(process.argv.slice(2)))))
    .then(
      (code) => process.exit(code),
      (e: unknown) => {
        process.stderr.write(`\n${failureLine(e, cli?.verb ?? "", cli?.stack ?? "")}\n`);
        process.exit(1);
      },
    );
}
