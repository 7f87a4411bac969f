/**
 * `npm run render -- --stack <name> --out <dir> [--config-file <path>] [--force]`
 *
 * Writes every file the stack would put on its host (each HostFile the
 * program declares: proxy config, systemd units, env file, release script,
 * logrotate, tmpfiles, backup script, ...) under <dir> at its host path, and
 * each host command's create script under <dir>/.apphost/commands/, and the
 * URN of every resource in <dir>/.apphost/resources.txt, by running
 * the real program under mocks (scripts/lib/render-stack.ts): no credentials,
 * no state backend, no host. Secrets are placeholders.
 *
 *     wrote etc/caddy/Caddyfile (0644 root:root)
 *     ...
 *     render: prod: 14 host files and 2 command scripts in /tmp/out; ...
 *
 * Exit: 0 written, 1 the stack's configuration is invalid (apphost's
 * ConfigError, every offender listed), 2 could not render (usage, no such
 * stack file, a non-empty --out without --force, a crash).
 */
import * as path from "path";
import { ConfigError } from "../components/config";
import {
  EXIT_CANNOT_RENDER,
  EXIT_CONFIG,
  parseRenderArgs,
  checkOutDir,
  RENDER_USAGE,
  RenderError,
  RESOURCES_FILE,
  renderStack,
  type RenderedFile,
  writeFiles,
} from "./lib/render-stack";

const ROOT = path.resolve(__dirname, "..");

/** A problem with the stack's settings, as the program reports it (`apphost:app.source: ...`). */
function isConfigProblem(e: unknown): e is Error {
  return e instanceof ConfigError || (e instanceof Error && /^apphost:[A-Za-z]/.test(e.message));
}

/** Relative to the working directory when the file is under it. */
function shortPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

async function main(): Promise<number> {
  const args = parseRenderArgs(process.argv.slice(2));
  if (args.help) {
    console.log(RENDER_USAGE);
    return 0;
  }
  const out = path.resolve(args.out);
  checkOutDir(out, args.force);

  const result = await renderStack({
    root: ROOT,
    stack: args.stack,
    ...(args.configFile ? { configFile: args.configFile } : {}),
  });
  const all = [...result.files, ...result.commands];
  // The throwaway key only ever backs the SSH connection; make sure no file carries it. Its
  // first base64 line is the container's header (the same in every key), the rest is its own.
  const keyLines = (result.deployKey ?? "")
    .split("\n")
    .slice(2, -2)
    .filter((l) => l.length >= 16);
  const leak = all.find((f) => keyLines.some((l) => f.content.includes(l)));
  if (leak) throw new Error(`${leak.path} would contain the throwaway deploy key; nothing was written`);

  const resources: RenderedFile = {
    resource: "render",
    path: RESOURCES_FILE,
    content: result.resources.join("\n") + "\n",
    mode: "0644",
    owner: "root",
    group: "root",
  };
  for (const line of writeFiles(out, [...all, resources])) console.log(line);
  const placeholders = [
    ...new Set(all.flatMap((f) => f.content.match(/<(?:secret|generated|issued):[^>\s]+>/g) ?? [])),
  ];
  console.log(
    `render: ${args.stack}: ${result.files.length} host files and ${result.commands.length} command scripts ` +
      `from ${shortPath(result.stackFile)} in ${out}; ` +
      (placeholders.length > 0 ? `placeholders: ${placeholders.sort().join(", ")}; ` : "") +
      "owners are not applied; nothing was deployed",
  );
  return 0;
}

function fail(e: unknown): never {
  if (e instanceof RenderError) {
    process.stderr.write(`${e.message}\n`);
    process.exit(EXIT_CANNOT_RENDER);
  }
  if (isConfigProblem(e)) {
    process.stderr.write(`${e.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  process.stderr.write(
    `render: could not render: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
  );
  process.exit(EXIT_CANNOT_RENDER);
}

process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
main().then((code) => process.exit(code), fail);
