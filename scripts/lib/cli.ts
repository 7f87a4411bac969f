/**
 * Command lines of apphost's npm scripts and the bench, read with
 * `node:util.parseArgs` (its tokens: `--name value`, `--name=value`, `-s
 * value`, a lone `--`). What parseArgs leaves to its caller is done here, the
 * same way for every command: every problem is collected, not only the first,
 * so one run of a mistyped command line names them all.
 */
import { parseArgs } from "node:util";

export interface CommandLineSpec {
  /** Options that take a value, by long name without dashes. */
  values: readonly string[];
  /** Options without a value. @default none */
  flags?: readonly string[];
  /** One-letter aliases: `{ s: "stack" }`. @default none */
  short?: Readonly<Record<string, string>>;
  /** Whether bare words may stand before `--` (`on`, a verb); else each is a problem. @default false */
  words?: boolean;
  /** Whether a lone `--` and the words after it (a command to run) are allowed. @default false */
  rest?: boolean;
}

export interface CommandLine {
  /** The values of `values` options given, by name. */
  values: Record<string, string>;
  /** The `flags` given, by name. */
  flags: Set<string>;
  /** Bare words before `--`, in order. */
  words: string[];
  /** The words after a lone `--`, as given (options in them are the command's); undefined without `--`. */
  rest?: string[];
  /** Every problem, in the order of the command line. */
  problems: string[];
}

type Token = ReturnType<typeof parseArgs>["tokens"] extends Array<infer T> | undefined ? T : never;

export function readCommandLine(argv: readonly string[], spec: CommandLineSpec): CommandLine {
  const flags = spec.flags ?? [];
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const name of spec.values) options[name] = { type: "string" };
  for (const name of flags) options[name] = { type: "boolean" };
  for (const [letter, name] of Object.entries(spec.short ?? {}))
    options[name] = { ...options[name], short: letter };
  const known = [...spec.values, ...flags].map((k) => `--${k}`).join(", ");
  const line: CommandLine = { values: {}, flags: new Set(), words: [], problems: [] };

  let start = 0;
  reading: while (start <= argv.length) {
    const args = argv.slice(start);
    const tokens: Token[] =
      parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true }).tokens ?? [];
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (t.kind === "option-terminator") {
        if (spec.rest) line.rest = args.slice(t.index + 1);
        else line.problems.push(`unexpected "-- ${args.slice(t.index + 1).join(" ")}"`.replace(/ "$/, '"'));
        break reading;
      }
      if (t.kind === "positional") {
        if (spec.words) line.words.push(t.value);
        else line.problems.push(`unexpected argument "${t.value}"`);
        continue;
      }
      if (spec.values.includes(t.name)) {
        // parseArgs gives `--stack --config-file x` the value "--config-file": that word is the next option.
        // A word that names no option (`--since -3min`) was meant as the value: say how to write it, skip it.
        if (t.value !== undefined && !t.inlineValue && t.value.startsWith("-")) {
          if (isOption(t.value)) {
            line.problems.push(`--${t.name} needs a value`);
            start += t.index + 1;
          } else {
            line.problems.push(
              `--${t.name} needs a value; "${t.value}" starts with "-", so it reads as options: write --${t.name}=${t.value}`,
            );
            start += t.index + 2;
          }
          continue reading;
        }
        if (t.value === undefined || t.value === "") {
          line.problems.push(`--${t.name} needs a value`);
        } else {
          if (t.name in line.values) line.problems.push(`--${t.name} is given twice`);
          line.values[t.name] = t.value;
        }
      } else if (flags.includes(t.name)) {
        if (t.value !== undefined) line.problems.push(`--${t.name} takes no value`);
        else line.flags.add(t.name);
      } else {
        line.problems.push(`unknown option "${t.rawName}" (known: ${known})`);
        // `--stak prod`: the word right after an unknown option was meant as its value.
        const next = tokens[i + 1];
        if (t.value === undefined && next?.kind === "positional" && next.index === t.index + 1) i++;
      }
    }
    break;
  }
  return line;
}

/**
 * Whether `word` reads as an option (`--stack`, `--stak`, `-s`, `-x`) rather than a value that starts with
 * "-" (`-3min`, `-1h`): a long option, known or not, or a single letter.
 */
function isOption(word: string): boolean {
  return word.startsWith("--") || /^-[A-Za-z]$/.test(word);
}

/** The error a command throws for a bad command line: its usage, then every problem. */
export function usageError(usage: string, problems: readonly string[]): Error {
  return new Error(`usage: ${usage}\n${problems.map((p) => `  - ${p}`).join("\n")}`);
}
