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
import { renderFailure, type RenderPrint, runRender } from "./lib/render-stack";

const ROOT = path.resolve(__dirname, "..");

const print: RenderPrint = {
  line: (text) => console.log(text),
  error: (text) => process.stderr.write(`${text}\n`),
};
const fail = (e: unknown): never => process.exit(renderFailure(e, print));

process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);
runRender(ROOT, process.argv.slice(2), print).then((code) => process.exit(code), fail);
