/**
 * Reads what the parser needs from the app directory (`apphost:app.source`,
 * relative to the project): the Procfile and the files that decide how its
 * Python dependencies install. The program and the day-2 scripts read the
 * same files, so both parse the same processes.
 */
import * as fs from "fs";
import * as path from "path";
import { compileExcludes } from "../release/artifact";
import { NODE_LOCKS, type NodeFacts, type NpmWorkspace } from "../release/node";
import { PYTHON_FILES, readPythonFacts, toolOnlyPyproject, type PythonFacts } from "../release/python";
import { SAFE } from "../shell";
import { APP_DEFAULTS } from "./defaults";
import { pythonWebApp } from "./webapp";
import {
  commandRuntime,
  gunicornConfigPath,
  leadingProgram,
  nodeEntryFile,
  parseProcfile,
  webScriptPath,
} from "./procfile";
import type { AppFile, AppFiles } from "./validate";

/** The app directory's files, or undefined when `apphost:app.source` is unset or not a directory (the parser reports it). */
export function readAppFiles(rawApp: unknown, projectDir: string): AppFiles | undefined {
  if (typeof rawApp !== "object" || rawApp === null) return undefined;
  const source = (rawApp as Record<string, unknown>).source;
  if (typeof source !== "string" || source.trim() === "") return undefined;
  const dir = path.resolve(projectDir, source);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return undefined;
  let procfile: string | undefined;
  try {
    procfile = fs.readFileSync(path.join(dir, "Procfile"), "utf8");
  } catch {
    procfile = undefined;
  }
  const pkg = readPackageJson(path.join(dir, "package.json"));
  const node = readNodeFacts(dir, (rawApp as Record<string, unknown>).requirements);
  const web = webCommand((rawApp as Record<string, unknown>).processes, procfile);
  const webScript = web && readAppFile(dir, webScriptPath(web.command), web.from);
  const gunicornConf = web && readAppFile(dir, gunicornConfigPath(web.command), web.from);
  const webRuntime = web && commandRuntime(web.command);
  // With no web command yet, the start script the parser offers for one (w3cj/hono-open-api-starter's, which starts
  // what its build makes): both keys are asked for in one run.
  const offered =
    !web &&
    procfile === undefined &&
    (rawApp as Record<string, unknown>).processes === undefined &&
    node?.scripts?.start
      ? { command: "npm start", from: "start" as const }
      : undefined;
  const starts = web ?? offered;
  const webEntryMissing =
    starts && missingEntry(dir, starts, node?.scripts, (rawApp as Record<string, unknown>).excludes);
  const buildPackageManager = buildDirPackageManager(dir, (rawApp as Record<string, unknown>).build);
  const python = readPythonFacts(dir);
  const toolsOnly = toolsOnlyPyproject(dir, python);
  const pythonWeb =
    web || procfile !== undefined
      ? undefined
      : pythonWebApp(dir, pythonManifests(dir, python, (rawApp as Record<string, unknown>).requirements));
  return {
    dir: source,
    ...(procfile !== undefined ? { procfile } : {}),
    ...(webScript ? { webScript } : {}),
    ...(gunicornConf ? { gunicornConf } : {}),
    ...(webRuntime ? { webRuntime } : {}),
    ...(webEntryMissing ? { webEntryMissing } : {}),
    ...(buildPackageManager !== undefined ? { buildPackageManager } : {}),
    ...(pythonWeb ? { pythonWeb } : {}),
    ...(toolsOnly ? { toolsOnlyPyproject: toolsOnly } : {}),
    python,
    ...(pkg !== undefined ? { packageJson: pkg } : {}),
    ...(node !== undefined ? { node } : {}),
  };
}

/**
 * When the app's only Python manifest is a pyproject.toml that configures tools and declares nothing to install
 * (python.ts: toolOnlyPyproject), with no setup.py or setup.cfg for `pip install .` to build: its tool tables, and
 * the .txt files that look like requirements (`requirements/requirements.txt`, `requirements-prod.txt`), production
 * ones first, for apphost:app.requirements' example.
 */
function toolsOnlyPyproject(dir: string, python: PythonFacts): AppFiles["toolsOnlyPyproject"] {
  const text = python["pyproject.toml"];
  const others = PYTHON_EVIDENCE.filter((f) => f !== "pyproject.toml");
  if (text === undefined || others.some((f) => python[f] !== undefined)) return undefined;
  if (["setup.py", "setup.cfg"].some((f) => isFile(path.join(dir, f)))) return undefined;
  const tools = toolOnlyPyproject(text);
  if (!tools) return undefined;
  const list = (sub: string) => {
    try {
      return fs
        .readdirSync(path.join(dir, sub))
        .filter((f) => f.endsWith(".txt") && (sub !== "" || /requirements/i.test(f)))
        .map((f) => path.posix.join(sub, f))
        .filter((f) => isFile(path.join(dir, f)));
    } catch {
      return [];
    }
  };
  const rank = (f: string) =>
    /test|dev|doc|lint|ci\b|type/i.test(f)
      ? 3
      : /prod/i.test(f)
        ? 0
        : /base|common|main|requirements\.txt$/i.test(f)
          ? 1
          : 2;
  const requirements = ["", "requirements", "reqs"]
    .flatMap(list)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return { tools, requirements };
}

/**
 * package.json's `packageManager` in the directory apphost:app.build starts in (`cd frontend && yarn build`), when it
 * is not the app's root and says one: the Yarn or pnpm that build runs.
 */
function buildDirPackageManager(dir: string, build: unknown): unknown {
  const sub = typeof build === "string" ? leadingProgram(build)?.dir : undefined;
  if (!sub || sub.split("/").includes("..")) return undefined;
  try {
    const pkg: unknown = JSON.parse(fs.readFileSync(path.join(dir, sub, "package.json"), "utf8"));
    return typeof pkg === "object" && pkg !== null
      ? (pkg as { packageManager?: unknown }).packageManager
      : undefined;
  } catch {
    return undefined; // none there, or unreadable: the build says so itself
  }
}

/**
 * The text of the files that list the app's Python dependencies, for the framework an application module that
 * imports none is made with (cookiecutter-flask's autoapp.py): requirements.txt, pyproject.toml, Pipfile and the
 * file apphost:app.requirements names, with the files their `-r` lines include (requirements/prod.txt).
 */
function pythonManifests(dir: string, facts: PythonFacts, requirements: unknown): string {
  const texts = [facts["requirements.txt"] ?? "", facts["pyproject.toml"] ?? "", facts.Pipfile ?? ""];
  const queue = ["requirements.txt", ...(typeof requirements === "string" ? [requirements] : [])];
  const seen = new Set<string>();
  for (let file = queue.shift(); file !== undefined && seen.size < 8; file = queue.shift()) {
    if (seen.has(file) || path.isAbsolute(file) || file.split(/[\\/]/).includes("..")) continue;
    seen.add(file);
    const text = file === "requirements.txt" ? texts[0] : (readAppFile(dir, file, "config")?.text ?? "");
    if (file !== "requirements.txt") texts.push(text);
    // `-r base.txt` in requirements/prod.txt is requirements/base.txt.
    for (const m of text.matchAll(/^\s*(?:-r|--requirement)[ =]?\s*(\S+)/gm))
      queue.push(path.posix.join(path.posix.dirname(file), m[1]));
  }
  return texts.filter(Boolean).join("\n");
}

/** The web process's command, from apphost:app.processes when the stack sets it, else the Procfile's web: line. */
function webCommand(
  processes: unknown,
  procfile: string | undefined,
): { command: string; from: AppFile["from"] } | undefined {
  let command: unknown;
  let from: AppFile["from"] = "config";
  if (typeof processes === "object" && processes !== null) {
    const web = (processes as Record<string, unknown>).web;
    command = typeof web === "object" && web !== null ? (web as Record<string, unknown>).command : web;
  } else if (processes === undefined && procfile !== undefined) {
    command = parseProcfile(procfile).entries.find((e) => e.name === "web")?.command;
    from = "procfile";
  }
  return typeof command === "string" ? { command, from } : undefined;
}

/**
 * The file a Node web command starts (`node dist/main`, through package.json's scripts) when the upload has none
 * there (`dist/main`, `.js`, `.cjs`, `.mjs` or `/index.js`, as Node resolves it): a build makes it. A file the app
 * directory has but apphost:app.excludes leaves out (a `dist/` built locally and excluded) is missing on the host too.
 */
function missingEntry(
  dir: string,
  web: { command: string; from: AppFile["from"] | "start" },
  scripts: Readonly<Record<string, string>> | undefined,
  excludes: unknown,
): AppFiles["webEntryMissing"] {
  const entry = nodeEntryFile(web.command, scripts);
  if (!entry) return undefined;
  const files = ["", ".js", ".cjs", ".mjs", "/index.js"]
    .map((end) => path.posix.normalize(entry.file + end))
    .filter((file) => isFile(path.join(dir, file)));
  if (files.length === 0) return { ...entry, from: web.from };
  const excluded = uploadExcludes(excludes);
  return files.some((file) => !excluded(file, false))
    ? undefined
    : { ...entry, from: web.from, excluded: true };
}

/** Whether the path is a file (not when a part of it is a file: `dist/main/index.js` beside a file dist/main). */
function isFile(p: string): boolean {
  try {
    return fs.statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
  } catch {
    return false;
  }
}

/** What the upload leaves out (artifact.ts' walk): apphost:app.excludes, or its default; nothing if it has a bad pattern (the parser reports it). */
function uploadExcludes(excludes: unknown): (file: string, isDir: boolean) => boolean {
  const patterns =
    Array.isArray(excludes) && excludes.every((p) => typeof p === "string")
      ? excludes
      : APP_DEFAULTS.excludes;
  try {
    return compileExcludes(patterns);
  } catch {
    return () => false;
  }
}

/**
 * A file the web command reads, relative to the app (the shell script it runs, `bash Procfile.sh`, for the parser's
 * look for a migration in it; gunicorn's config file, for its bind): its path and text, 64 KiB at most.
 */
function readAppFile(dir: string, file: string | undefined, from: AppFile["from"]): AppFile | undefined {
  if (!file) return undefined;
  const full = path.join(dir, file);
  const stat = fs.statSync(full, { throwIfNoEntry: false });
  if (!stat?.isFile() || stat.size > 65536) return undefined;
  return { path: file, text: fs.readFileSync(full, "utf8"), from };
}

/**
 * A Node app's install facts: the lock files at its top (and the one
 * apphost:app.requirements names), package.json's packageManager and
 * workspaces, and pnpm-workspace.yaml. Undefined without a package.json.
 */
function readNodeFacts(dir: string, requirements: unknown): NodeFacts | undefined {
  const read = (name: string) => {
    try {
      return fs.readFileSync(path.join(dir, name), "utf8");
    } catch {
      return undefined;
    }
  };
  const pkgText = read("package.json");
  if (pkgText === undefined) return undefined;
  const names: string[] = [...NODE_LOCKS];
  if (
    typeof requirements === "string" &&
    !path.isAbsolute(requirements) &&
    !requirements.split(/[\\/]/).includes("..")
  )
    names.push(requirements);
  const locks: Record<string, string> = {};
  for (const name of names) {
    const text = read(name);
    if (text !== undefined) locks[name] = text;
  }
  let pkg: { packageManager?: unknown; workspaces?: unknown; scripts?: unknown; main?: unknown } = {};
  try {
    pkg = JSON.parse(pkgText) as typeof pkg;
  } catch {
    // npm reports an unreadable package.json, with its own words
  }
  const { members, problems } = workspaceMembers(dir, pkg.workspaces);
  const workspaces =
    pkg.workspaces !== undefined
      ? ("package.json" as const)
      : // pnpm 10 writes one for its settings alone (onlyBuiltDependencies); a workspace lists its packages.
        /^packages\s*:/m.test(read("pnpm-workspace.yaml") ?? "")
        ? ("pnpm-workspace.yaml" as const)
        : undefined;
  const scripts = Object.entries(
    typeof pkg.scripts === "object" && pkg.scripts !== null ? (pkg.scripts as Record<string, unknown>) : {},
  ).filter((e): e is [string, string] => typeof e[1] === "string");
  // Without a start script, npm start runs server.js when there is one: package.json's main is then not the server.
  const main = fs.existsSync(path.join(dir, "server.js")) ? undefined : mainFile(dir, pkg.main);
  const bunLock = ["bun.lock", "bun.lockb"].find((name) => fs.existsSync(path.join(dir, name)));
  return {
    locks,
    ...(bunLock !== undefined ? { bunLock } : {}),
    ...(main !== undefined ? { main } : {}),
    ...yarnBerryFacts(dir, read(".yarnrc.yml"), locks),
    // npm reads `package-lock=false` (any spacing, any case of its value) as: write no lock.
    ...(/^\s*package-lock\s*=\s*false\s*$/im.test(read(".npmrc") ?? "") ? { npmrcNoLock: true } : {}),
    ...(scripts.length > 0 ? { scripts: Object.fromEntries(scripts) } : {}),
    ...(pkg.packageManager !== undefined ? { packageManager: pkg.packageManager } : {}),
    ...(workspaces ? { workspaces } : {}),
    ...(members.length > 0 ? { members } : {}),
    ...(problems.length > 0 ? { memberProblems: problems } : {}),
  };
}

/**
 * The file package.json's `main` names, as require() finds it (as written, or with `.js`), when it is a relative path
 * inside the app (SAFE.relativeFile), and is there.
 */
function mainFile(dir: string, main: unknown): string | undefined {
  if (typeof main !== "string" || !SAFE.relativeFile.test(main)) return undefined;
  const rel = path.posix.normalize(main).replace(/^\.\//, "");
  for (const name of [rel, `${rel}.js`]) {
    try {
      if (fs.statSync(path.join(dir, name)).isFile()) return name;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/**
 * Yarn 2 and later's facts: .yarnrc.yml's nodeLinker and yarnPath, and the files its install reads beside the lock
 * (yarnPath, the `plugins` .yarnrc.yml names, the patches of the locks' `patch:` entries, `~/` being the app), each
 * present or missing from the app. Empty for an app without .yarnrc.yml (Yarn 1, npm, pnpm).
 */
function yarnBerryFacts(
  dir: string,
  yarnrc: string | undefined,
  locks: Record<string, string>,
): Pick<NodeFacts, "yarnLinker" | "yarnPath" | "yarnFiles"> {
  if (yarnrc === undefined) return {};
  const linker = /^nodeLinker:\s*["']?([\w-]+)/m.exec(yarnrc)?.[1];
  const yarnPath = /^yarnPath:\s*["']?([^"'\s#]+)/m.exec(yarnrc)?.[1];
  const files = new Set<string>(yarnPath ? [yarnPath] : []);
  // plugins: a list of paths, or of {path, spec}, until the next top-level key
  const plugins = /^plugins:[ \t]*\n((?:[ \t-].*\n?|[ \t]*\n)*)/m.exec(yarnrc)?.[1] ?? "";
  for (const m of plugins.matchAll(/^[ \t]*(?:-[ \t]*)?(?:path:[ \t]*)?["']?([^"'\s#]+\.c?js)["']?[ \t]*$/gm))
    files.add(m[1]);
  for (const text of Object.values(locks))
    for (const m of text.matchAll(/patch:[^#\s"]*#([^"\s:]+?\.patch)(?=::|["\s]|$)/gm))
      files.add(m[1].replace(/^~\//, "").replace(/^\.\//, ""));
  const present: string[] = [];
  const missing: string[] = [];
  for (const file of [...files].sort()) {
    const inside = !path.isAbsolute(file) && !file.split("/").includes("..");
    (inside && fs.statSync(path.join(dir, file), { throwIfNoEntry: false })?.isFile()
      ? present
      : missing
    ).push(file);
  }
  return {
    ...(linker ? { yarnLinker: linker } : {}),
    ...(yarnPath ? { yarnPath } : {}),
    ...(files.size > 0 ? { yarnFiles: { present, missing } } : {}),
  };
}

/**
 * package.json's `workspaces` (a list, or `{packages: [...]}`) expanded as Yarn 1 does: `*` matches within one
 * directory name; each directory with a package.json is a member, under its `name`. A member outside the app is
 * kept, for the parser to refuse (node.ts: yarnWorkspaces).
 */
function workspaceMembers(dir: string, workspaces: unknown): { members: NpmWorkspace[]; problems: string[] } {
  const patterns = Array.isArray(workspaces)
    ? workspaces
    : typeof workspaces === "object" &&
        workspaces !== null &&
        Array.isArray((workspaces as { packages?: unknown }).packages)
      ? (workspaces as { packages: unknown[] }).packages
      : [];
  const members: NpmWorkspace[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const pattern of patterns) {
    if (typeof pattern !== "string" || pattern.includes("**") || pattern.startsWith("!")) {
      problems.push(
        `package.json's workspaces has ${JSON.stringify(pattern)}: apphost expands directory names with * in them ` +
          `(packages/*), not ** or !; list the member directories`,
      );
      continue;
    }
    let found = [""];
    for (const part of pattern.replace(/^\.\//, "").replace(/\/+$/, "").split("/")) {
      if (!part.includes("*")) {
        found = found.map((base) => (base ? `${base}/${part}` : part));
        continue;
      }
      const re = new RegExp(
        `^${part
          .split("*")
          .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
          .join("[^/]*")}$`,
      );
      found = found.flatMap((base) => {
        try {
          return fs
            .readdirSync(path.join(dir, base), { withFileTypes: true })
            .filter((e) => e.isDirectory() && !e.name.startsWith(".") && re.test(e.name))
            .map((e) => (base ? `${base}/${e.name}` : e.name))
            .sort();
        } catch {
          return [];
        }
      });
    }
    for (const member of found) {
      let name: unknown;
      try {
        name = (
          JSON.parse(fs.readFileSync(path.join(dir, member, "package.json"), "utf8")) as { name?: unknown }
        ).name;
      } catch {
        continue; // Yarn skips a directory without a readable package.json
      }
      if (typeof name === "string" && !seen.has(member)) {
        seen.add(member);
        members.push({ name, member: path.posix.normalize(member) });
      }
    }
  }
  return { members, problems };
}

/** `tooling` for a package.json without dependencies and without a start script; `app` for any other, even unreadable. */
function readPackageJson(file: string): "app" | "tooling" | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    const pkg = JSON.parse(text) as { dependencies?: object; scripts?: { start?: unknown } };
    const deps = pkg.dependencies && Object.keys(pkg.dependencies).length > 0;
    return deps || pkg.scripts?.start !== undefined ? "app" : "tooling";
  } catch {
    return "app";
  }
}

/** The files that make an app a Python one: those detection reads, but a .python-version or runtime.txt alone does not. */
const PYTHON_EVIDENCE = PYTHON_FILES.filter((f) => f !== ".python-version" && f !== "runtime.txt");

/**
 * apphost:app.runtime as the app directory tells it: python for Python's
 * dependency files without a package.json, or beside one that is only
 * tooling (no dependencies, no start script: linters, a frontend build);
 * node for a package.json alone. Otherwise `why`: what was found, for the
 * message that asks for the key.
 */
export function detectRuntime(files: AppFiles): { runtime: "python" | "node" } | { why: string } {
  const python = PYTHON_EVIDENCE.filter((f) => files.python[f] !== undefined);
  if (python.length > 0 && files.packageJson !== "app") return { runtime: "python" };
  // Both (a Heroku app with the nodejs and python buildpacks): the web command's program decides.
  if (python.length > 0 && files.webRuntime) return { runtime: files.webRuntime };
  if (python.length === 0 && files.packageJson) return { runtime: "node" };
  return {
    why:
      python.length > 0
        ? `${files.dir} has ${python.join(", ").replace(/, ([^,]*)$/, " and $1")} for Python, and a package.json with ` +
          "dependencies or a start script: say which installs the app (apphost:app.build can install the other's, " +
          'as "npm ci --omit=dev && ..." for a Python app whose static files come from npm)'
        : `${files.dir} has no requirements.txt, pyproject.toml, Python lock file or package.json to tell`,
  };
}
