/**
 * `npm run drift -- --stack <name>`: does the cloud or the host still match
 * the stack's state? Runs the engine's refresh in preview-only mode with
 * --expect-no-changes, prints which resources drifted, and exits:
 *
 *   0  no drift
 *   1  drift found (the summary names each resource)
 *   2  could not check (no credentials, host unreachable, engine error)
 */
import { openStack } from "./lib/automation";

export interface DriftItem {
  op: string;
  type: string;
  name: string;
}

/**
 * The resources a refresh preview would change, from the engine's progress
 * lines: ` ~  pulumi-nodejs:dynamic/apphost:HostFile app-caddy-site update`.
 */
export function parseDrift(output: string): DriftItem[] {
  const items: DriftItem[] = [];
  const seen = new Set<string>();
  const line = /^\s*([~+-]|\+-|-\+)\s+(\S+:\S+)\s+(\S+)\s+(update|delete|create|replace)\b/;
  for (const raw of output.split("\n")) {
    const m = line.exec(raw);
    if (!m || m[2] === "pulumi:pulumi:Stack") continue;
    const key = `${m[2]} ${m[3]}`;
    if (seen.has(key)) continue;
    seen.add(key);
    items.push({ op: m[4] === "delete" ? "gone" : "changed", type: m[2], name: m[3] });
  }
  return items;
}

export function parseStackArg(argv: string[]): string {
  const i = argv.findIndex((a) => a === "--stack" || a === "-s");
  const stack = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith("--stack="))?.slice(8);
  if (!stack) throw new Error("usage: npm run drift -- --stack <name>");
  return stack;
}

async function main(): Promise<number> {
  let stackName: string;
  try {
    stackName = parseStackArg(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  let output = "";
  try {
    const stack = await openStack({ stack: stackName });
    await stack.refresh({
      previewOnly: true,
      expectNoChanges: true,
      onOutput: (s) => {
        output += s;
      },
    });
    console.log(`drift: ${stackName}: no drift`);
    return 0;
  } catch (e) {
    const drift = parseDrift(output);
    if (/no changes were expected/.test(String((e as Error).message)) && drift.length > 0) {
      console.log(`drift: ${stackName}: ${drift.length} resource(s) differ from the state:`);
      for (const d of drift) console.log(`  ${d.op}: ${d.name} (${d.type})`);
      console.log(
        "Run `npm run deploy -- up --refresh --stack " + stackName + "` to put the declared state back.",
      );
      return 1;
    }
    console.error(output.split("\n").slice(-30).join("\n"));
    console.error(
      `drift: ${stackName}: could not check: ${String((e as Error).message)
        .split("\n")
        .slice(-5)
        .join("\n")}`,
    );
    return 2;
  }
}

if (require.main === module) {
  main().then((code) => process.exit(code));
}
