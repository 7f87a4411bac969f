/**
 * The app's `Procfile`, as Heroku, Dokku and foreman read it: one
 * `name: command` per line, `#` comments. When the stack sets no
 * `apphost:app.processes`, they come from here: `web` is the web process,
 * every other entry a worker, and `release:` is the migrate command when
 * `apphost:database.migrate` is unset. Also how such a command reads: its
 * leading `NAME=value` words, the program it starts, and that program's
 * runtime.
 *
 * Pure: the caller reads the file.
 */
import * as path from "path";

export interface ProcfileEntry {
  name: string;
  command: string;
  /** 1-based line number, for messages */
  line: number;
}

export interface Procfile {
  entries: ProcfileEntry[];
  /** Lines that are neither `name: command`, a comment nor blank */
  bad: { line: number; text: string }[];
}

const LINE = /^([A-Za-z0-9_-]+)\s*:\s*(.*)$/;

export function parseProcfile(text: string): Procfile {
  const entries: ProcfileEntry[] = [];
  const bad: Procfile["bad"] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = LINE.exec(line);
    if (!m || m[2].trim() === "") bad.push({ line: i + 1, text: line });
    else entries.push({ name: m[1], command: m[2].trim(), line: i + 1 });
  });
  return { entries, bad };
}

/**
 * Where a command chains several (`a && b`, `a; b`, `a || b`) outside
 * quotes: the parts, else undefined. A web process has to be the server
 * alone: apphost runs migrations once per release, before traffic moves,
 * never in each web instance.
 */
export function chainedParts(command: string): string[] | undefined {
  const parts: string[] = [];
  let cur = "";
  let quote: string | undefined;
  for (let i = 0; i < command.length; i++) {
    const c = command[i];
    if (quote) {
      if (c === "\\" && quote === '"' && i + 1 < command.length) {
        cur += c + command[++i];
        continue;
      }
      if (c === quote) quote = undefined;
      cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
      cur += c;
      continue;
    }
    if (c === "\\" && i + 1 < command.length) {
      cur += c + command[++i];
      continue;
    }
    const two = command.slice(i, i + 2);
    if (two === "&&" || two === "||" || c === ";") {
      parts.push(cur.trim());
      cur = "";
      if (c !== ";") i++;
      continue;
    }
    cur += c;
  }
  parts.push(cur.trim());
  const real = parts.filter((p) => p !== "");
  return real.length > 1 ? real : undefined;
}

/**
 * A command's leading `cd <dir>` steps and the steps after them:
 * `cd backend && alembic upgrade head` is `{ where: "cd backend", steps:
 * ["alembic upgrade head"] }`. A leading `cd` only says where the rest runs (a
 * monorepo's app in a directory of its own): it is no step of its own. The
 * one rule for it: the web line's chain check and the revision default.
 */
export function whereAndSteps(command: string): { where: string; steps: string[] } {
  const parts = chainedParts(command) ?? [command.trim()];
  const cds = parts.findIndex((p) => !/^cd\s+[^\s;&|]+$/.test(p));
  // Nothing but `cd`s: no where, all steps (a web line of them is refused as a chain).
  const at = Math.max(cds, 0);
  return { where: parts.slice(0, at).join(" && "), steps: parts.slice(at) };
}

/**
 * A web line's chained parts that need splitting, else undefined. The parts
 * after a leading `cd <dir>` keep it (`web: cd api && npm run migrate && node
 * server.js` splits into `cd api && npm run migrate` and `cd api && node server.js`).
 */
export function webChainParts(command: string): string[] | undefined {
  const { where, steps } = whereAndSteps(command);
  if (steps.length < 2) return undefined;
  return where ? steps.map((p) => `${where} && ${p}`) : steps;
}

/** Commands that change the database schema: the ones a release runs once, before traffic moves. */
const MIGRATION =
  /\b(alembic|migrate|migrations?|db\s+upgrade|db:migrate|node-pg-migrate|knex\s+migrate|prisma\s+migrate|rake\s+db:)\b/i;

/**
 * The parts before a chained web command's server, sorted by where apphost
 * runs them: `migrate` once per release before traffic moves
 * (apphost:database.migrate, a Procfile `release:` line), `build` in every
 * release on every host (apphost:app.build, e.g. compiling translations).
 */
export function splitChain(parts: readonly string[]): { migrate: string[]; build: string[]; server: string } {
  const before = parts.slice(0, -1);
  return {
    migrate: before.filter((p) => MIGRATION.test(p)),
    build: before.filter((p) => !MIGRATION.test(p)),
    server: parts[parts.length - 1],
  };
}

/**
 * The script a web command runs, relative to the app (`bash Procfile.sh`, `sh bin/start`, `./start.sh`,
 * `start.sh`), or undefined: a shell script that may migrate before it starts the server, as
 * babybuddy's `web: bash Procfile.sh` does.
 */
export function webScriptPath(command: string): string | undefined {
  const m =
    /^(?:exec\s+)?(?:(?:ba|da)?sh\s+(?:\.\/)?([A-Za-z0-9_][A-Za-z0-9._/-]*)|(?:\.\/)?([A-Za-z0-9_][A-Za-z0-9._/-]*\.sh))(?:\s|$)/.exec(
      command.trim(),
    );
  const file = m?.[1] ?? m?.[2];
  return file && !file.split("/").includes("..") ? file : undefined;
}

/**
 * The config file gunicorn reads for a web command that runs it and names no `--bind`: its `-c`/`--config` file, else
 * its default, gunicorn.conf.py in the directory it starts in (`cd api && gunicorn ...`), relative to the app; undefined
 * for another server, a bind on the command line (which wins over the file), or a `python:` module config.
 */
export function gunicornConfigPath(command: string): string | undefined {
  const assignments = "(?:[A-Za-z_][A-Za-z0-9_]*=\\S*\\s+)*";
  const m = new RegExp(
    `^${assignments}(?:cd\\s+([A-Za-z0-9._/-]+)\\s*&&\\s*)?${assignments}(?:exec\\s+)?(?:\\S*/)?gunicorn(?:\\s|$)`,
  ).exec(command.trim());
  if (!m || /(?:^|\s)(?:-b|--bind)(?:[=\s]|$)/.test(command)) return undefined;
  const config = /(?:^|\s)(?:-c|--config)(?:=|\s+)(\S+)/.exec(command)?.[1];
  if (config?.startsWith("python:")) return undefined;
  const file = path.posix.normalize(
    m[1] ? `${m[1]}/${config ?? "gunicorn.conf.py"}` : (config ?? "gunicorn.conf.py"),
  );
  return file.startsWith("../") || path.posix.isAbsolute(file) ? undefined : file;
}

/** A migration command as a script line runs it: the tools apphost:database.migrate names (`manage.py migrate`, ...). */
const MIGRATE_COMMAND =
  /(?:^|[\s;&|(])(?:\S*manage\.py\s+migrate|django-admin\s+migrate|alembic(?:\s+-\S+(?:\s+[^\s-]\S*)?)*\s+upgrade|flask(?:\s+--app\s+\S+)?\s+db\s+upgrade|(?:sequelize(?:-cli)?|rake)\s+db:migrate|knex(?:\s+--\S+(?:\s+\S+)?)*\s+migrate:latest|node-pg-migrate\s+up|prisma\s+migrate\s+deploy|piccolo\s+migrations\s+forwards|drizzle-kit\s+migrate)(?=\s|$|;|&|\|)/;

/**
 * A web script's lines that migrate the database (comments and echo lines aside; `--check` and `--plan` only
 * look), and its server: the last other command, without a leading `exec`.
 */
export function scriptMigrations(text: string): {
  migrations: { line: number; command: string }[];
  server?: string;
} {
  const migrations: { line: number; command: string }[] = [];
  let server: string | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (
      line === "" ||
      line.startsWith("#") ||
      /^(echo|printf|set|export|if|fi|then|else|done|do)\b|^cd\s+\S+$/.test(line)
    )
      return;
    if (MIGRATE_COMMAND.test(line) && !/\s--(check|plan)\b/.test(line))
      migrations.push({ line: i + 1, command: line });
    else server = line.replace(/^exec\s+/, "");
  });
  return { migrations, ...(server !== undefined ? { server } : {}) };
}

/**
 * Leading `NAME=value` words of a command (a Procfile's `REMAP_SIGTERM=SIGQUIT celery …`),
 * each with the blanks after it; a value may hold quoted or escaped text.
 */
const ASSIGNMENTS = /^(?:[A-Za-z_][A-Za-z0-9_]*=(?:[^\s'"\\]|\\.|'[^']*'|"(?:[^"\\]|\\.)*")*\s+)+/;

/** A command's leading `NAME=value` words (with their blanks) and the command after them. */
export function splitAssignments(command: string): { assignments: string; rest: string } {
  const assignments = ASSIGNMENTS.exec(command)?.[0] ?? "";
  return { assignments, rest: command.slice(assignments.length) };
}

/**
 * The program a command starts, and the directory it starts in: `gunicorn` for `WEB_CONCURRENCY=2 gunicorn
 * app:app`, `node` in `api` for `cd api && node server.js`. Undefined when the first word is not a plain name or
 * path (`$HOME/bin/x`, a quoted word): the shell decides what that is.
 */
export function leadingProgram(command: string): { dir?: string; program: string } | undefined {
  let rest = splitAssignments(command.trim()).rest;
  const cd = /^cd\s+([A-Za-z0-9._/-]+)\s*&&\s*/.exec(rest);
  if (cd) rest = splitAssignments(rest.slice(cd[0].length)).rest;
  rest = rest.replace(/^exec\s+/, "");
  const program = /^[A-Za-z0-9._+/-]+(?=\s|$|;)/.exec(rest)?.[0];
  if (!program) return undefined;
  return cd ? { dir: cd[1], program } : { program };
}

/**
 * The package.json script a command runs by its manager (`npm run migrate`, `npm start`, `yarn migrate`, `pnpm run
 * build`), or undefined for any other command (arguments after the name too).
 */
export function packageScript(command: string): string | undefined {
  const m =
    /^(?:(?:npm\s+(?:run|run-script)|yarn(?:\s+run)?|pnpm(?:\s+run)?)\s+([A-Za-z0-9:_.-]+)|npm\s+start)$/.exec(
      command.trim(),
    );
  return m ? (m[1] ?? "start") : undefined;
}

/**
 * The file a Node web command starts with `node`, following the package.json scripts it runs (`npm run start:prod`
 * runs `"start:prod": "node dist/main"`), relative to the app: `{ file, script }`, the script that runs it last, if
 * any; undefined for any other command, a chain, or a script more than three deep. Leading variables, with or
 * without `cross-env` or `env`, are passed over.
 */
export function nodeEntryFile(
  command: string,
  scripts: Readonly<Record<string, string>> = {},
  script?: string,
  depth = 0,
): { file: string; script?: string } | undefined {
  if (depth > 3) return undefined;
  // `NODE_ENV=production npm run start:prod`, `cross-env NODE_ENV=production node dist/main`: what runs after them.
  let bare = splitAssignments(command.trim()).rest;
  const env = /^(?:cross-env|env)\s+(?=[A-Za-z_][A-Za-z0-9_]*=)/.exec(bare);
  if (env) bare = splitAssignments(bare.slice(env[0].length)).rest;
  const name = packageScript(bare);
  if (name !== undefined)
    return Object.hasOwn(scripts, name) ? nodeEntryFile(scripts[name], scripts, name, depth + 1) : undefined;
  if (/[;&|`$()<>]/.test(bare.replace(/^\s*cd\s+[A-Za-z0-9._/-]+\s*&&/, ""))) return undefined;
  const lead = leadingProgram(bare);
  if (lead?.program !== "node") return undefined;
  const words = bare.trim().split(/\s+/);
  const args = words.slice(words.indexOf(lead.program) + 1);
  const file = args.find((a) => !a.startsWith("-"));
  // `node -r ts-node/register x.ts`, `node --env-file .env x.js`: an option's value is not the file.
  if (
    !file ||
    args.slice(0, args.indexOf(file)).some((a) => /^(-r|--require|--import|--env-file|--loader)$/.test(a))
  )
    return undefined;
  const at = lead.dir ? path.posix.join(lead.dir, file) : path.posix.normalize(file);
  return at.startsWith("../") || path.posix.isAbsolute(at)
    ? undefined
    : { file: at, ...(script ? { script } : {}) };
}

/** The Python web servers and frameworks' commands, which run the app's code from its venv. */
export const PYTHON_SERVERS: readonly string[] = [
  "gunicorn",
  "uvicorn",
  "uwsgi",
  "daphne",
  "hypercorn",
  "granian",
  "waitress-serve",
  "flask",
  "django-admin",
  "fastapi",
  "litestar",
];

/**
 * The runtime whose program a command starts: a Python web server, python itself or a Python project tool's `run`
 * (`gunicorn my_app.app:create_app()`, `.venv/bin/uvicorn ...`, `poetry run ...`), or Node and its package managers;
 * undefined for anything else (a shell script, `bin/start`).
 */
export function commandRuntime(command: string): "python" | "node" | undefined {
  const program = leadingProgram(command)?.program.split("/").pop() ?? "";
  if (PYTHON_SERVERS.includes(program) || /^(?:python(?:3(?:\.\d+)?)?|pipenv|poetry|pdm|uv)$/.test(program))
    return "python";
  if (/^(?:node|nodejs|npm|npx|yarn|pnpm)$/.test(program)) return "node";
  return undefined;
}
