/**
 * Python apps as their authors wrote them: which dependency manager installs
 * them (read from the files in the app directory), which Python they need,
 * and the install phase's commands for each manager.
 *
 *   uv.lock            -> uv sync --frozen --no-dev --no-install-project (uv from PyPI, pinned)
 *   poetry.lock        -> poetry install --only main --no-root (Poetry from PyPI, pinned; the lock must match)
 *   requirements.txt   -> pip install -r requirements.txt (as before)
 *   Pipfile.lock       -> pipenv install --deploy (Pipenv from PyPI, pinned; the lock must match the Pipfile)
 *   pdm.lock           -> pdm install --prod --no-self --frozen-lockfile --check (PDM from PyPI, pinned; the lock must match pyproject.toml)
 *   Pipfile alone      -> refused: `pipenv lock` makes the lock
 *   pyproject.toml     -> pip install . (no lock: the versions are whatever resolves today), or of its
 *                         [project] dependencies when the project is not a package (virtualProjectDependencies)
 *
 * `apphost:app.requirements` overrides the detection: pip install -r <file>,
 * or the manager of the lock it names (`Pipfile.lock` or `pdm.lock` where the
 * app also has a requirements.txt).
 *
 * The tools live in one host-wide directory (`HOST_TOOLS_DIR`), one venv per
 * tool version, installed by the release script the first time a release
 * needs them and reused after. The app's own project is never installed
 * into the venv (`--no-install-project`, `--no-root`): the venv is shared by
 * every release with the same lock file, and the code runs from the release
 * directory (the working directory of every unit), which PYTHONPATH makes
 * importable with its src/ (render/systemd.ts `processEnvironment`, release.sh `as_app`).
 *
 * Pure: reading the app directory is done by the caller (`readPythonFacts`
 * takes a file reader), so tests pass file contents.
 */
import * as fs from "fs";
import * as path from "path";
import { HOST_OS_PACKAGES } from "../config/defaults";
import { HOST_TOOLS_DIR } from "../paths";
import { parse as parseToml } from "smol-toml";
import { ansiC, assertSafe, SAFE, shellQuote as q } from "../shell";
import {
  PDM_VERSION,
  PIPENV_VERSION,
  POETRY_VERSION,
  PYTHON_TOOL_DEPS,
  PYTHON_TOOL_VERSION,
  UV_VERSION,
  type PythonTool,
} from "./python-tools";

export { PDM_VERSION, PIPENV_VERSION, POETRY_VERSION, PYTHON_TOOL_VERSION, UV_VERSION } from "./python-tools";
export type { PythonTool } from "./python-tools";

export type PythonManager = "uv" | "poetry" | "pipenv" | "pdm" | "pip" | "pip-project" | "none";

/** `apphost:app.python`: the host's python3 (`system`) or a uv-managed Python matching the app's requirement. */
export type PythonSource = "system" | "managed";

/** How the app's dependencies install, as detected from its files (or the override). */
export interface PythonDeps {
  manager: PythonManager;
  /** The file (relative to apphost:app.source) whose content keys the venv; "" for none */
  manifest: string;
  /** The Python versions the app accepts, PEP 440 clauses (`>=3.10,<4`; `||` between alternatives); "" for any */
  requiresPython: string;
  /** Where requiresPython came from, for messages (`pyproject.toml requires-python`) */
  requiresPythonFrom: string;
  /** uv: the workspace the app is a member of, when its uv.lock is in a parent directory */
  workspace?: UvWorkspace;
  /**
   * pip-project: the `[project] dependencies` pip installs when the project is not a package
   * (`virtualProjectDependencies`); absent for a package, which `pip install .` builds and installs. The install
   * reads them again on the host, from the release's pyproject.toml (`PYPROJECT_DEPS_PY`).
   */
  dependencies?: readonly string[];
  /**
   * apphost:app.dependencyGroups: the groups and extras installed besides the main dependencies (uv and Poetry),
   * as the app's pyproject.toml declares each (offeredGroups). Absent for none.
   */
  groups?: readonly PythonGroup[];
  /**
   * uv and Poetry: the packages only a group or an extra that apphost:app.dependencyGroups does not name lists, by
   * normalized name (groupedPackages), each with those groups and extras: where the install phase's program check
   * points a program it does not find (uvicorn in Poetry's dev group). Absent for none.
   */
  groupedPackages?: Readonly<Record<string, readonly PythonGroup[]>>;
  /**
   * apphost:app.extraRequirements: pip requirements installed into the venv after the app's own dependencies (a
   * server its own image installs). Absent for none.
   */
  extraRequirements?: readonly string[];
  /**
   * The version Heroku's runtime.txt names (`python-3.10.2` -> `3.10.2`), when
   * nothing apphost enforces states one: the install phase warns when the
   * release's Python differs from it. Absent otherwise.
   */
  runtimeTxt?: string;
}

/** A dependency group or an extra installed besides the main dependencies (apphost:app.dependencyGroups). */
export interface PythonGroup {
  name: string;
  as: "group" | "extra";
}

/**
 * What the app's pyproject.toml offers its manager to install besides the main dependencies, by name: uv's
 * `[dependency-groups]` (`--group`) and `[project.optional-dependencies]` (`--extra`); Poetry's
 * `[tool.poetry.group.<name>]` (`--only main,<name>`) and `[tool.poetry.extras]` or `[project.optional-dependencies]`
 * (`--extras`), and the legacy `[tool.poetry.dev-dependencies]` as its dev group. Undefined for a manager apphost
 * installs none with (pip, Pipenv, PDM); empty for a pyproject.toml that is missing or unreadable (the install says
 * what is wrong with it).
 */
export function offeredGroups(
  manager: PythonManager,
  pyproject: string | undefined,
): Map<string, PythonGroup["as"]> | undefined {
  return offeredIn(manager, pyproject === undefined ? undefined : parseTomlLenient(pyproject));
}

/**
 * The managers that install apphost:app.dependencyGroups: uv, Poetry, and pip from pyproject.toml (its PEP 735
 * groups and its extras; a package's extras as `pip install '.[a,b]'`).
 */
export function installsGroups(deps: Pick<PythonDeps, "manager">): boolean {
  return deps.manager === "uv" || deps.manager === "poetry" || deps.manager === "pip-project";
}

/** offeredGroups of a parsed pyproject.toml (undefined: missing or unreadable). */
function offeredIn(manager: PythonManager, doc: unknown): Map<string, PythonGroup["as"]> | undefined {
  if (!installsGroups({ manager })) return undefined;
  const offered = new Map<string, PythonGroup["as"]>();
  const names = (dotted: string) => tableKeys(tomlAt(doc, dotted));
  for (const g of names(manager === "poetry" ? "tool.poetry.group" : "dependency-groups"))
    offered.set(g, "group");
  // Poetry's legacy [tool.poetry.dev-dependencies] is its dev group (`--only main,dev` installs it, Poetry 2 too).
  if (manager === "poetry" && names("tool.poetry.dev-dependencies").length > 0) offered.set("dev", "group");
  const extras = [
    ...(manager === "poetry" ? names("tool.poetry.extras") : []),
    ...names("project.optional-dependencies"),
  ];
  for (const e of extras) if (!offered.has(e)) offered.set(e, "extra");
  return offered;
}

/** A TOML table's keys; none for anything else. */
function tableKeys(v: unknown): string[] {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? Object.keys(v) : [];
}

/** A package name as PEP 503 compares them: lowercase, each run of `-`, `_` and `.` one `-`. */
export function normalizedPackage(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}

/** The normalized package name a requirement string starts with (`uvicorn[standard]>=0.40`: uvicorn); none for another value. */
export function requirementPackage(r: unknown): string | undefined {
  const name = typeof r === "string" ? /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(r)?.[1] : undefined;
  return name === undefined ? undefined : normalizedPackage(name);
}

/**
 * The packages pyproject.toml's groups and extras list (offeredGroups' names) that no group or extra in `installed`
 * lists, by normalized name, each with the groups and extras that list it. uv: `[dependency-groups]` and
 * `[project.optional-dependencies]` requirement strings (`uvicorn[standard]>=0.40`; an `{include-group}` lists the
 * included group's); Poetry: the keys of `[tool.poetry.group.<name>.dependencies]`, the names in `[tool.poetry.extras]`, and
 * `[project.optional-dependencies]`. Empty for another manager or a pyproject.toml that does not parse.
 */
export function groupedPackages(
  manager: PythonManager,
  pyproject: string | undefined,
  installed: readonly string[] = [],
): Map<string, PythonGroup[]> {
  const out = new Map<string, PythonGroup[]>();
  const doc = pyproject === undefined ? undefined : parseTomlLenient(pyproject);
  const offered = offeredIn(manager, doc);
  if (!offered || offered.size === 0) return out;
  const listed = (name: string, as: PythonGroup["as"]): unknown[] => {
    const at = (dotted: string) => tomlAt(doc, dotted);
    let v: unknown;
    if (as === "extra") v = at(`tool.poetry.extras.${name}`) ?? at(`project.optional-dependencies.${name}`);
    else if (manager !== "poetry") v = pep735Group(doc, name);
    else {
      v = [
        ...tableKeys(at(`tool.poetry.group.${name}.dependencies`)),
        ...(name === "dev" ? tableKeys(at("tool.poetry.dev-dependencies")) : []),
      ];
    }
    return Array.isArray(v) ? v : [];
  };
  const packagesOf = (name: string, as: PythonGroup["as"]) =>
    listed(name, as).flatMap((r) => requirementPackage(r) ?? []);
  const taken = new Set(installed.flatMap((name) => packagesOf(name, offered.get(name) ?? "group")));
  for (const [name, as] of offered) {
    if (installed.includes(name)) continue;
    for (const pkg of new Set(packagesOf(name, as))) {
      if (!taken.has(pkg)) out.set(pkg, [...(out.get(pkg) ?? []), { name, as }]);
    }
  }
  return out;
}

/**
 * The main dependencies pyproject.toml lists, by normalized name, each with its extras (`fastapi[standard]`:
 * fastapi → ["standard"]): `[project] dependencies` and Poetry's `[tool.poetry.dependencies]` (python aside).
 */
export function mainPackages(pyproject: string | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const doc = pyproject === undefined ? undefined : parseTomlLenient(pyproject);
  const add = (name: string, extras: string[]) =>
    out.set(normalizedPackage(name), [...(out.get(normalizedPackage(name)) ?? []), ...extras]);
  const listed = tomlAt(doc, "project.dependencies");
  for (const r of Array.isArray(listed) ? listed : []) {
    const m = typeof r === "string" ? /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?/.exec(r) : null;
    if (m)
      add(
        m[1],
        (m[2] ?? "")
          .split(",")
          .map((e) => e.trim())
          .filter(Boolean),
      );
  }
  const poetry = tomlAt(doc, "tool.poetry.dependencies");
  for (const name of tableKeys(poetry)) {
    if (name === "python") continue;
    const extras = tomlAt(poetry, `${name}.extras`);
    add(name, Array.isArray(extras) ? extras.filter((e): e is string => typeof e === "string") : []);
  }
  return out;
}

/**
 * A PEP 735 `[dependency-groups]` list with each `{include-group = ...}` read in its place (names compare
 * normalized, as uv and pip compare them); a group that includes itself, or none declared, ends the reading there.
 */
function pep735Group(doc: unknown, name: string, seen: readonly string[] = []): unknown[] {
  const groups = tomlAt(doc, "dependency-groups");
  const key = tableKeys(groups).find((k) => normalizedPackage(k) === normalizedPackage(name));
  const list = key === undefined ? undefined : (groups as Record<string, unknown>)[key];
  if (!Array.isArray(list) || seen.includes(normalizedPackage(name))) return [];
  return list.flatMap((d: unknown) => {
    const include =
      d !== null && typeof d === "object" ? (d as Record<string, unknown>)["include-group"] : undefined;
    return typeof include === "string" ? pep735Group(doc, include, [...seen, normalizedPackage(name)]) : [d];
  });
}

/**
 * A uv workspace the app directory is a member of (uv finds it the same way:
 * upwards, a pyproject.toml with [tool.uv.workspace] beside uv.lock). The
 * release carries the workspace's lock and pyproject.toml files, and the other
 * members' code, under WORKSPACE_DIR; uv installs the app's dependencies, the
 * other members among them, into the venv (not editable).
 */
export interface UvWorkspace {
  /** From the app directory up to the workspace root, `/`-separated (`..`) */
  root: string;
  /** From the workspace root down to the app directory (`backend`) */
  member: string;
  /** The app's [project] name, for `uv sync --package` */
  package: string;
}

/** Where a release keeps the workspace's files (relative to the release). */
export const WORKSPACE_DIR = ".apphost-workspace";

/**
 * The app's Python install: the detected one, else (a config built without
 * reading the app directory, as in unit tests) pip with apphost:app.requirements
 * or requirements.txt.
 */
export function pythonDepsOf(app: {
  requirements?: string;
  pythonDeps?: PythonDeps;
  extraRequirements?: readonly string[];
}): PythonDeps {
  const deps = app.pythonDeps ?? {
    manager: "pip",
    manifest: app.requirements ?? "requirements.txt",
    requiresPython: "",
    requiresPythonFrom: "",
  };
  return app.extraRequirements?.length ? { ...deps, extraRequirements: app.extraRequirements } : deps;
}

/** The files detection looks at, relative to the app directory. */
export const PYTHON_FILES = [
  "uv.lock",
  "poetry.lock",
  "pdm.lock",
  "Pipfile.lock",
  "Pipfile",
  "requirements.txt",
  "pyproject.toml",
  ".python-version",
  "runtime.txt",
] as const;
export type PythonFile = (typeof PYTHON_FILES)[number];

/** The contents of the files detection reads (absent files are undefined), and the uv workspace found above. */
export type PythonFacts = Partial<Record<PythonFile, string>> & { workspace?: UvWorkspace };

/** Reads PYTHON_FILES from `dir` (absent or unreadable files are left out), and the uv workspace it belongs to. */
export function readPythonFacts(dir: string): PythonFacts {
  const facts: PythonFacts = {};
  for (const f of PYTHON_FILES) {
    try {
      facts[f] = fs.readFileSync(path.join(dir, f), "utf8");
    } catch {
      // absent
    }
  }
  if (facts["uv.lock"] === undefined && facts["pyproject.toml"] !== undefined) {
    const found = findUvWorkspace(dir, facts["pyproject.toml"]);
    if (found) {
      facts["uv.lock"] = found.lock;
      facts.workspace = found.workspace;
    }
  }
  return facts;
}

/** How many directories up a workspace root is looked for. */
const WORKSPACE_LEVELS = 4;

/** The uv workspace whose root is above `dir` and lists it as a member, with its uv.lock. */
export function findUvWorkspace(
  dir: string,
  pyproject: string,
): { workspace: UvWorkspace; lock: string } | undefined {
  const name = tomlString(pyproject, "project", "name");
  let root = path.resolve(dir);
  for (let i = 0; i < WORKSPACE_LEVELS; i++) {
    const up = path.dirname(root);
    if (up === root) return undefined;
    root = up;
    let toml: string;
    let lock: string;
    try {
      toml = fs.readFileSync(path.join(root, "pyproject.toml"), "utf8");
      lock = fs.readFileSync(path.join(root, "uv.lock"), "utf8");
    } catch {
      continue;
    }
    const member = path.relative(root, path.resolve(dir)).split(path.sep).join("/");
    if (!workspaceMembers(root, toml).includes(member)) return undefined;
    if (!name) return undefined;
    const rootRel = path.relative(path.resolve(dir), root).split(path.sep).join("/");
    return { workspace: { root: rootRel, member, package: name }, lock };
  }
  return undefined;
}

/** `[tool.uv.workspace] members` of the root pyproject, globs expanded (`packages/*`), as root-relative paths. */
export function workspaceMembers(root: string, toml: string): string[] {
  const list = tomlValue(toml, "tool.uv.workspace", "members");
  const globs = Array.isArray(list) ? list.filter((g): g is string => typeof g === "string") : [];
  const out: string[] = [];
  for (const g of globs) {
    let paths = [""];
    for (const seg of g.split("/").filter((x) => x !== "" && x !== ".")) {
      const re = new RegExp(
        `^${seg
          .replace(/[.+^${}()|[\]\\]/g, "\\$&")
          .replace(/\*/g, "[^/]*")
          .replace(/\?/g, "[^/]")}$`,
      );
      paths = paths.flatMap((p) => {
        if (!/[*?]/.test(seg)) return [p ? `${p}/${seg}` : seg];
        try {
          return fs
            .readdirSync(path.join(root, p), { withFileTypes: true })
            .filter((d) => d.isDirectory() && re.test(d.name))
            .map((d) => (p ? `${p}/${d.name}` : d.name));
        } catch {
          return [];
        }
      });
    }
    for (const p of paths) if (fs.existsSync(path.join(root, p, "pyproject.toml"))) out.push(p);
  }
  return [...new Set(out)].sort();
}

/** A refusal: what is wrong and what to do, for the config error of `apphost:app.requirements`. */
export class PythonDepsError extends Error {}

/**
 * The manager for the app's files. `requirements` is `apphost:app.requirements`
 * when set (it wins over detection). Throws PythonDepsError for a lock file
 * apphost cannot install from.
 */
export function detectPythonDeps(facts: PythonFacts, requirements?: string): PythonDeps {
  const deps = (manager: PythonManager, manifest: string): PythonDeps => {
    const { spec, from } = requiresPythonOf(facts, manager === "pipenv");
    const runtimeTxt = spec === "" ? runtimeTxtVersion(facts["runtime.txt"]) : undefined;
    return {
      manager,
      manifest,
      requiresPython: spec,
      requiresPythonFrom: from,
      ...(runtimeTxt ? { runtimeTxt } : {}),
    };
  };
  if (
    requirements &&
    (!(LOCKS as readonly string[]).includes(requirements) || requirements === "requirements.txt")
  ) {
    return deps("pip", requirements);
  }
  if (requirements && facts[requirements as Lock] === undefined) {
    throw new PythonDepsError(`the app has no ${requirements}, which apphost:app.requirements names`);
  }
  // A lock named by apphost:app.requirements, else the first the app has.
  const lock = (requirements as Lock | undefined) ?? LOCKS.find((f) => facts[f] !== undefined);
  switch (lock) {
    case "uv.lock":
      return facts.workspace
        ? { ...deps("uv", `${WORKSPACE_DIR}/uv.lock`), workspace: facts.workspace }
        : deps("uv", "uv.lock");
    case "poetry.lock":
      return deps("poetry", "poetry.lock");
    case "requirements.txt":
      return deps("pip", "requirements.txt");
    case "Pipfile.lock":
      if (facts.Pipfile === undefined) {
        throw new PythonDepsError(
          "the app has a Pipfile.lock and no Pipfile, which pipenv reads beside it: commit the Pipfile too",
        );
      }
      return deps("pipenv", "Pipfile.lock");
    case "pdm.lock":
      if (facts["pyproject.toml"] === undefined) {
        throw new PythonDepsError(
          "the app has a pdm.lock and no pyproject.toml, which PDM reads beside it: commit pyproject.toml too",
        );
      }
      return deps("pdm", "pdm.lock");
  }
  if (facts.Pipfile !== undefined && facts["pyproject.toml"] === undefined) {
    throw new PythonDepsError(
      "the app has a Pipfile and no Pipfile.lock: run `pipenv lock` and commit Pipfile.lock (apphost installs exactly what it pins)",
    );
  }
  const pyproject = facts["pyproject.toml"];
  if (pyproject !== undefined) {
    const dependencies = virtualProjectDependencies(pyproject);
    return { ...deps("pip-project", "pyproject.toml"), ...(dependencies ? { dependencies } : {}) };
  }
  return deps("none", "");
}

/**
 * The `[project] dependencies` of a pyproject.toml whose project is not a package, as uv reads one: no
 * `[build-system]` (`uv init --app`, FastAPI's full-stack backend), or `[tool.pdm] distribution = false`,
 * `[tool.poetry] package-mode = false`, `[tool.uv] package = false`. pip installs these instead of
 * `pip install .`, which would build the directory with setuptools' defaults and fail on a layout of several
 * top-level directories (`app/` beside `migrations/`: "Multiple top-level packages discovered in a
 * flat-layout"). The code runs from the release, as for every other manager. Undefined for a package, and for
 * dependencies its build computes (`dynamic`): `pip install .` then.
 */
export function virtualProjectDependencies(toml: string): string[] | undefined {
  return virtualDependencies(parseTomlLenient(toml));
}

/**
 * virtualProjectDependencies of a parsed pyproject.toml. One with no `[project]` and no `[build-system]`, only
 * PEP 735 `[dependency-groups]` (BookWyrm's `main` and `dev`, which its Dockerfile installs with pip's `--group`),
 * is no package either: no dependencies of its own, its groups installed as apphost:app.dependencyGroups names them.
 */
function virtualDependencies(doc: unknown): string[] | undefined {
  const project = tomlAt(doc, "project");
  if (
    project === undefined &&
    tomlAt(doc, "build-system") === undefined &&
    tomlAt(doc, "dependency-groups")
  ) {
    return [];
  }
  if (project === null || typeof project !== "object" || Array.isArray(project)) return undefined;
  const { dependencies, dynamic } = project as { dependencies?: unknown; dynamic?: unknown };
  const uvPackage = tomlAt(doc, "tool.uv.package");
  const packaged =
    uvPackage === true ||
    (tomlAt(doc, "build-system") !== undefined &&
      tomlAt(doc, "tool.pdm.distribution") !== false &&
      tomlAt(doc, "tool.poetry.package-mode") !== false &&
      uvPackage !== false);
  if (packaged || (Array.isArray(dynamic) && dynamic.includes("dependencies"))) return undefined;
  return Array.isArray(dependencies) ? dependencies.filter((d): d is string => typeof d === "string") : [];
}

/**
 * The `[tool.*]` tables of a pyproject.toml that declares nothing to install: no `[project]`, `[build-system]`,
 * `[dependency-groups]` or Poetry project, only tools' settings (ruff's and black's in sinisaos/litestar-piccolo's
 * backend, whose dependencies are in requirements/requirements.txt). `pip install .` would build such a directory
 * with setuptools' defaults. Undefined for any other pyproject.toml, or one that does not parse.
 */
export function toolOnlyPyproject(toml: string): string[] | undefined {
  const doc = parseTomlLenient(toml);
  if (doc === undefined) return undefined;
  if (
    ["project", "build-system", "dependency-groups", "tool.poetry"].some((k) => tomlAt(doc, k) !== undefined)
  )
    return undefined;
  const tool = tomlAt(doc, "tool");
  return tool !== null && typeof tool === "object" ? Object.keys(tool).map((t) => `[tool.${t}]`) : [];
}

/** The files that say who installs, in the order detection tries them (a lock, or requirements.txt). */
const LOCKS = ["uv.lock", "poetry.lock", "requirements.txt", "Pipfile.lock", "pdm.lock"] as const;
type Lock = (typeof LOCKS)[number];

// ------------------------------------------------------------ the Python version

/** The version in Heroku's runtime.txt (`python-3.10.2`), or undefined when it names none. */
export function runtimeTxtVersion(text: string | undefined): string | undefined {
  const line = text
    ?.split("\n")
    .map((l) => l.trim())
    .find((l) => l !== "");
  return /^python-(\d+\.\d+(?:\.\d+)?)$/.exec(line ?? "")?.[1];
}

/**
 * install phase, once PY_MM is set: a warning when runtime.txt names another
 * Python than the release's. apphost does not enforce runtime.txt (Heroku's
 * file, often a stale exact pin): it says how to pin a version it does enforce.
 */
export function runtimeTxtWarning(deps: PythonDeps): string[] {
  if (!deps.runtimeTxt) return [];
  const mm = deps.runtimeTxt.split(".").slice(0, 2).join(".");
  return [
    `if [ "$PY_MM" != ${q(mm)} ]; then note ${q(
      `warning: runtime.txt names Python ${deps.runtimeTxt} and this release runs Python `,
    )}"$PY_MM"${q(
      `: apphost does not enforce runtime.txt (Heroku's file); to pin a version, write it in .python-version or pyproject.toml's requires-python (apphost:app.python managed installs it), or remove runtime.txt`,
    )}; fi`,
  ];
}

/**
 * The Python requirement from `[project] requires-python`, else Poetry's
 * `[tool.poetry.dependencies] python`, plus `.python-version` (what uv
 * would pick), joined with a comma when both are present. With `pipfile`
 * (Pipenv installs), also the Pipfile's `[requires]` python_full_version or
 * python_version, which `pipenv install --deploy` enforces.
 */
export function requiresPythonOf(facts: PythonFacts, pipfile = false): { spec: string; from: string } {
  const parts: string[] = [];
  const from: string[] = [];
  const toml = facts["pyproject.toml"];
  if (toml !== undefined) {
    const project = tomlString(toml, "project", "requires-python");
    const poetry = project === undefined ? tomlString(toml, "tool.poetry.dependencies", "python") : undefined;
    if (project !== undefined && project.trim() !== "") {
      parts.push(normalizeSpec(project));
      from.push("pyproject.toml requires-python");
    } else if (poetry !== undefined && poetry.trim() !== "" && poetry.trim() !== "*") {
      parts.push(poetryToPep440(poetry));
      from.push("pyproject.toml [tool.poetry.dependencies] python");
    }
  }
  // `3.11` -> `==3.11.*`, `3.11.4` -> `==3.11.4`: what uv and Pipenv read these pins as.
  const exact = (v: string) => (v.split(".").length === 3 ? `==${v}` : `==${v}.*`);
  const pin = facts[".python-version"]
    ?.split("\n")
    .map((l) => l.trim())
    .find((l) => l !== "" && !l.startsWith("#"));
  if (pin !== undefined && /^\d+(\.\d+){0,2}$/.test(pin)) {
    parts.push(exact(pin));
    from.push(".python-version");
  }
  const requires =
    pipfile && facts.Pipfile !== undefined ? parseTomlLenient(facts.Pipfile)?.requires : undefined;
  const pipenvKey = ["python_full_version", "python_version"].find(
    (k) => typeof tomlAt(requires, k) === "string",
  );
  const pipenvPin = pipenvKey && String(tomlAt(requires, pipenvKey)).trim();
  if (pipenvPin && /^\d+(\.\d+){0,2}$/.test(pipenvPin)) {
    parts.push(exact(pipenvPin));
    from.push(`Pipfile [requires] ${pipenvKey}`);
  }
  if (parts.some((p) => p.includes("||")) && parts.length > 1) {
    // (a || b), c: distribute c over the alternatives.
    const [first, ...rest] = parts;
    return {
      spec: first
        .split("||")
        .map((alt) => [alt, ...rest].join(","))
        .join("||"),
      from: from.join(" and "),
    };
  }
  return { spec: parts.join(","), from: from.join(" and ") };
}

/** `>= 3.10, <4` -> `>=3.10,<4`. */
function normalizeSpec(spec: string): string {
  return spec
    .split(",")
    .map((c) => c.replace(/\s+/g, ""))
    .filter((c) => c !== "")
    .join(",");
}

/** Poetry's constraint syntax in PEP 440 clauses: `^3.10` -> `>=3.10,<4.0`, `~3.10` -> `>=3.10,<3.11`. */
export function poetryToPep440(constraint: string): string {
  return constraint
    .split("||")
    .map((alt) =>
      alt
        .split(/,|\s+(?=[<>=!~^])/)
        .map((c) => c.trim())
        .filter((c) => c !== "" && c !== "*")
        .map(poetryClause)
        .join(","),
    )
    .join("||");
}

function poetryClause(c: string): string {
  const m = /^(\^|~(?!=))\s*(\d+(?:\.\d+)*)$/.exec(c);
  if (m) {
    const nums = m[2].split(".").map(Number);
    let upper: number[];
    if (m[1] === "^") {
      // The first non-zero part is the one that may not change.
      const i = nums.findIndex((n) => n !== 0);
      const keep = i < 0 ? nums.length - 1 : i;
      upper = [...nums.slice(0, keep), nums[keep] + 1];
    } else {
      upper = nums.length === 1 ? [nums[0] + 1] : [nums[0], nums[1] + 1];
    }
    return `>=${m[2]},<${upper.join(".")}`;
  }
  if (/^\d+(\.\d+)*(\.\*)?$/.test(c)) return `==${c}`;
  return c.replace(/\s+/g, "");
}

/** The TOML document, or undefined when it does not parse (the tool that reads it then says why). */
function parseTomlLenient(toml: string): Record<string, unknown> | undefined {
  try {
    return parseToml(toml) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The value at a dotted path (`tool.uv.package`) in a parsed document, or undefined. */
function tomlAt(doc: unknown, dotted: string): unknown {
  let at = doc;
  for (const part of dotted.split(".")) {
    at =
      at !== null && typeof at === "object" && !Array.isArray(at)
        ? (at as Record<string, unknown>)[part]
        : undefined;
  }
  return at;
}

/** The value at a dotted table path and key (`tool.poetry.dependencies`, `python`; `""` for the root), or undefined. */
function tomlValue(toml: string, table: string, key: string): unknown {
  return tomlAt(parseTomlLenient(toml), table === "" ? key : `${table}.${key}`);
}

/** A string value at a table and key, or undefined (absent, another type, or a document that does not parse). */
export function tomlString(toml: string, table: string, key: string): string | undefined {
  const v = tomlValue(toml, table, key);
  return typeof v === "string" ? v : undefined;
}

/**
 * Python 3.11+ (stdlib tomllib) that prints the `[project] dependencies` of the pyproject.toml in argv[1], then
 * those of each `group:<name>` (PEP 735 `[dependency-groups]`, an `{include-group = ...}` read in its place) and
 * `extra:<name>` (`[project.optional-dependencies]`) argument after it, one a line. Group names compare as PEP 735
 * says, normalized. It runs as root on a file in the app user's release: never through a symlink (O_NOFOLLOW).
 */
export const PYPROJECT_DEPS_PY = [
  "import os, re, sys, tomllib",
  "with os.fdopen(os.open(sys.argv[1], os.O_RDONLY | os.O_NOFOLLOW), 'rb') as f:",
  "    doc = tomllib.load(f)",
  "project = doc.get('project', {})",
  "norm = lambda n: re.sub(r'[-_.]+', '-', n).lower()",
  "groups = {norm(k): v for k, v in doc.get('dependency-groups', {}).items()}",
  "def group(name, seen=()):",
  "    if norm(name) in seen or norm(name) not in groups:",
  "        sys.exit('dependency group %s: %s' % (name, 'includes itself' if norm(name) in seen else 'not declared'))",
  "    out = []",
  "    for d in groups[norm(name)]:",
  "        out += group(d['include-group'], seen + (norm(name),)) if isinstance(d, dict) and 'include-group' in d else [d]",
  "    return out",
  // --named-only: the groups and extras alone, for a package whose own install (pip install .) brought the rest.
  "deps = [] if '--named-only' in sys.argv[2:] else list(project.get('dependencies', []))",
  "for arg in sys.argv[2:]:",
  "    if arg == '--named-only':",
  "        continue",
  "    kind, _, name = arg.partition(':')",
  "    deps += group(name) if kind == 'group' else project.get('optional-dependencies', {}).get(name, [])",
  "print(''.join(d + '\\n' for d in deps if isinstance(d, str)), end='')",
].join("\n");

/**
 * Python (stdlib only, any 3.x) that exits 0 when its own version, or the
 * version in argv[2], satisfies argv[1] (PEP 440 clauses joined by `,`,
 * alternatives by `||`), else 1. Prints nothing.
 */
export const SPEC_CHECK_PY = [
  "import re, sys",
  "def nums(s):",
  "    return tuple(int(re.match(r'\\d+', p).group()) for p in s.split('.'))",
  "def pad(t):",
  "    return (t + (0, 0, 0))[:3]",
  "v = pad(nums(sys.argv[2])) if len(sys.argv) > 2 else tuple(sys.version_info[:3])",
  "def ok(c):",
  "    m = re.match(r'^(===|~=|==|!=|<=|>=|<|>)?\\s*([0-9][0-9a-z.*]*)$', c)",
  "    if not m:",
  "        sys.exit(2)",
  "    op, ver = m.group(1) or '==', m.group(2)",
  "    if op == '===':",
  "        return '.'.join(map(str, v)) == ver",
  "    if ver.endswith('.*'):",
  "        t = nums(ver[:-2])",
  "        same = v[:len(t)] == t",
  "        return same if op == '==' else (not same) if op == '!=' else sys.exit(2)",
  "    t = nums(ver)",
  "    if op == '~=':",
  "        return v >= pad(t) and v[:len(t) - 1] == t[:-1]",
  "    a, b = v, pad(t)",
  "    return {'==': a == b, '!=': a != b, '<=': a <= b, '>=': a >= b, '<': a < b, '>': a > b}[op]",
  "spec = sys.argv[1].replace(' ', '')",
  "sys.exit(0 if any(all(ok(c) for c in alt.split(',') if c) for alt in spec.split('||')) else 1)",
].join("\n");

/**
 * SPEC_CHECK_PY's verdict on `version` (`3.11.2`), for the config's check of
 * an ec2 host.os: true or false, undefined when a clause is one it does not
 * read (its exit status 2), and the host's own check decides.
 */
export function pythonSatisfies(spec: string, version: string): boolean | undefined {
  const nums = (s: string): number[] | undefined => {
    const parts = s.split(".").map((p) => /^\d+/.exec(p)?.[0]);
    return parts.every((p) => p !== undefined) ? parts.map(Number) : undefined;
  };
  const pad = (t: number[]) => [...t, 0, 0, 0].slice(0, 3);
  // Python's tuple order: the first difference decides, a tuple that is a prefix of the other is less.
  const cmp = (a: number[], b: number[]): number => {
    for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return Math.sign(a.length - b.length);
  };
  const have = nums(version);
  if (!have) return undefined;
  const v = pad(have);
  const ok = (c: string): boolean | undefined => {
    const m = /^(===|~=|==|!=|<=|>=|<|>)?\s*([0-9][0-9a-z.*]*)$/.exec(c);
    if (!m) return undefined;
    const [op, ver] = [m[1] ?? "==", m[2]];
    if (op === "===") return v.join(".") === ver;
    const t = nums(ver.endsWith(".*") ? ver.slice(0, -2) : ver);
    if (!t) return undefined;
    if (ver.endsWith(".*")) {
      const same = cmp(v.slice(0, t.length), t) === 0;
      return op === "==" ? same : op === "!=" ? !same : undefined;
    }
    if (op === "~=") return cmp(v, pad(t)) >= 0 && cmp(v.slice(0, t.length - 1), t.slice(0, -1)) === 0;
    const order = cmp(v, pad(t));
    return {
      "==": order === 0,
      "!=": order !== 0,
      "<=": order <= 0,
      ">=": order >= 0,
      "<": order < 0,
      ">": order > 0,
    }[op];
  };
  const alternatives = spec
    .replace(/ /g, "")
    .split("||")
    .map((alt) =>
      alt
        .split(",")
        .filter((c) => c !== "")
        .map(ok),
    );
  if (alternatives.some((clauses) => clauses.includes(undefined))) return undefined;
  return alternatives.some((clauses) => clauses.every(Boolean));
}

/**
 * `<os> <python3 version>` for each OS apphost:host.os offers, newest first: the check's message names the first
 * whose Python would do (Debian 13 for `>=3.12`, Debian 12 for a Pipfile's `python_version = "3.11"`).
 */
const OS_PYTHONS = Object.entries(HOST_OS_PACKAGES).map(([os, { python }]) => `${os} ${python}`);

/** The host's choices when its Python is too old, for the check phase's message (`$hint`: the OS that would do). */
export const PYTHON_CHOICES =
  "run it on a host whose python3 satisfies that$hint, or let uv install a matching Python with apphost:app.python set to managed (the host must reach github.com to download it)";

/**
 * check phase: fail before anything changes when the host's python3 does not
 * satisfy the app's requirement. Sets PY_VERSION. Nothing for a managed
 * Python (uv finds or installs one at install) or an app without a requirement.
 */
export function pythonVersionCheck(deps: PythonDeps, source: PythonSource): string[] {
  if (source === "managed" || deps.requiresPython === "") return [];
  // A .python-version alone is the one Python the authors run, not the range the app supports (Heroku's
  // getting-started Django app pins 3.14; Django 6 runs on 3.12 and later).
  const pinOnly =
    deps.requiresPythonFrom === ".python-version"
      ? "; or, if the app also runs on Python $PY_VERSION, write that in .python-version (one version, pinned for uv, pyenv and Heroku)"
      : "";
  return [
    // -S (no site import) in each, as versionProbe: sys and re are all they use.
    `PY_VERSION=$(python3 ${versionProbe(3)} 2>/dev/null) || die "python3 is missing on the host"`,
    // $'...' keeps the Python on one line of the script (its functions are indented when rendered).
    `SPEC_CHECK_PY=${ansiC(SPEC_CHECK_PY)}`,
    `if ! python3 -S -c "$SPEC_CHECK_PY" ${q(deps.requiresPython)}; then`,
    `  hint=""; for os_python in ${OS_PYTHONS.map(q).join(" ")}; do`,
    `    if python3 -S -c "$SPEC_CHECK_PY" ${q(deps.requiresPython)} "\${os_python#* }"; then`,
    `      hint=" (an ec2 stack can set apphost:host.os to \${os_python% *}, which has Python \${os_python#* })"; break`,
    "    fi",
    "  done",
    `  die ${q(
      `the app needs Python ${deps.requiresPython} (${deps.requiresPythonFrom}) and the host has Python `,
    )}"$PY_VERSION; ${PYTHON_CHOICES}${pinOnly}"`,
    "fi",
  ];
}

/**
 * The host's CA store, as pip uses it: uv otherwise trusts only its bundled
 * roots and Poetry certifi's, so a host behind a TLS-inspecting proxy (its CA
 * added with update-ca-certificates) could install with pip and not with them.
 */
export const HOST_TLS = {
  uv: "UV_SYSTEM_CERTS=1",
  poetry: "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
  // Pipenv's own pip, run by the venv's Python, reads pip's setting.
  pipenv: "PIP_CERT=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
  pdm: "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
};

/** Where a pinned tool lives on the host. */
export function toolDir(tool: PythonTool): string {
  return `${HOST_TOOLS_DIR}/${tool}-${PYTHON_TOOL_VERSION[tool]}`;
}

/**
 * Installs a pinned tool from PyPI into its own venv under HOST_TOOLS_DIR
 * once (built in a temporary directory, renamed into place: a concurrent or
 * interrupted install never leaves half a tool). A renamed venv's console
 * scripts name the temporary path in their shebangs, so a tool runs as its
 * native binary (uv) or as `bin/python -m <tool>` (Poetry, Pipenv, PDM), whose bin/python
 * links to the host's python3. It runs as root, once per
 * host: pip keeps no cache for it (a stack's cache directory is the app
 * user's, and pip disables a cache it does not own, with a warning).
 */
export function toolInstallCommand(tool: PythonTool): string {
  const dir = toolDir(tool);
  const version = PYTHON_TOOL_VERSION[tool];
  return (
    `if [ ! -x ${dir}/bin/${tool} ]; then ` +
    `note "install: ${tool} ${version} from PyPI into ${dir}"; ` +
    `install -d -m 0755 ${HOST_TOOLS_DIR}; rm -rf ${dir}.tmp.$$; ` +
    `if python3 -m venv ${dir}.tmp.$$ && ` +
    `${dir}.tmp.$$/bin/pip install --disable-pip-version-check --no-input --quiet --no-cache-dir ${[`${tool}==${version}`, ...PYTHON_TOOL_DEPS[tool]].join(" ")}; ` +
    // A concurrent deploy of another stack may have won the rename: its copy is as good.
    `then mv -T ${dir}.tmp.$$ ${dir} 2>/dev/null || rm -rf ${dir}.tmp.$$; ` +
    `else rm -rf ${dir}.tmp.$$; die "could not install ${tool} ${version} from PyPI"; fi; fi`
  );
}

/**
 * python3's arguments that print the interpreter's version to `fields` parts (3.11, or 3.11.2 with 3). `-S`: no
 * site import, which the version does not need (a .pth file in site-packages can import whole packages: a CA
 * bundle's took 20 of a start's 28 ms here).
 */
function versionProbe(fields: 2 | 3): string {
  return `-S -c 'import sys; print("${Array(fields).fill("%d").join(".")}" % sys.version_info[:${fields}])'`;
}

/**
 * The install phase's Python part, run only when the venv is not there yet:
 * sets PYTHON (the interpreter) first (PY_MM names the venv, so it is set
 * before), then creates "$VENV" and installs the dependencies into it as the
 * app user. `req` is checked by the caller.
 */
export function pythonInterpreterCommands(
  deps: PythonDeps,
  source: PythonSource,
  cacheDir: string,
): string[] {
  if (source === "system") {
    return [`PYTHON=python3`, `PY_MM=$(python3 ${versionProbe(2)})`];
  }
  const uv = `${toolDir("uv")}/bin/uv`;
  const spec = deps.requiresPython === "" ? "3" : deps.requiresPython.split("||")[0];
  const env = `UV_PYTHON_INSTALL_DIR=${HOST_TOOLS_DIR}/python UV_CACHE_DIR=${cacheDir}/uv-python ${HOST_TLS.uv}`;
  return [
    toolInstallCommand("uv"),
    `PYTHON=$(${env} ${uv} python find --managed-python ${q(spec)} 2>/dev/null) || { note "install: uv installs a Python for ${spec}"; ${env} ${uv} python install ${q(spec)} >&2 && PYTHON=$(${env} ${uv} python find --managed-python ${q(spec)}); } || die ${q(
      `uv could not provide a Python for ${spec} (apphost:app.python is managed): the host must reach github.com; or set apphost:app.python to system`,
    )}`,
    `PY_MM=$("$PYTHON" ${versionProbe(2)})`,
  ];
}

/**
 * Creates "$VENV" with "$PYTHON" and installs the app's dependencies into it,
 * as the app user. A venv that gets no packages is made without pip: pip's
 * own 3,000 files would be all it held (2 to 3 s of a small host's CPU).
 */
export function pythonInstallCommands(deps: PythonDeps, cacheDir: string): string[] {
  const extra = deps.extraRequirements ?? [];
  assertSafe(
    "install phase",
    extra.map((r) => ["apphost:app.extraRequirements", r, SAFE.requirement] as const),
  );
  const install = managerInstallCommands(deps, cacheDir);
  if (extra.length === 0) return install;
  // apphost:app.extraRequirements, after the app's own: uv's venv has no pip (uv pip installs into it), the others'
  // pip, which an app without dependencies gets for them (managerInstallCommands).
  const reqs = extra.map(q).join(" ");
  return [
    ...install,
    deps.manager === "uv"
      ? `as_app "$NEW_DIR" "${uvEnv(cacheDir)} ${toolDir("uv")}/bin/uv pip install --python $VENV/bin/python ${reqs}"`
      : `as_app "$NEW_DIR" "PIP_CACHE_DIR=${cacheDir}/pip $VENV/bin/pip install --disable-pip-version-check --no-input ${reqs}"`,
  ];
}

/** uv's environment: the stack's cache, no Python downloads, the host's CA bundle, the venv as the project's. */
function uvEnv(cacheDir: string): string {
  return `UV_CACHE_DIR=${cacheDir}/uv UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 ${HOST_TLS.uv} UV_PROJECT_ENVIRONMENT=$VENV`;
}

/** The app's own dependencies into $VENV, as its manager installs them. */
function managerInstallCommands(deps: PythonDeps, cacheDir: string): string[] {
  const venv = `as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv $VENV"`;
  // An app without dependencies: a venv without pip (3,000 files), unless apphost:app.extraRequirements needs it.
  const emptyVenv = deps.extraRequirements?.length
    ? venv
    : `as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv --without-pip $VENV"`;
  // A pinned tool (toolInstallCommand) installing the lock into the venv, which it finds active (VIRTUAL_ENV, first on
  // PATH). Not bin/<tool>: its shebang names the temporary directory the tool's venv was built in.
  const lockedInstall = (tool: "poetry" | "pipenv" | "pdm", env: string, args: string) => [
    toolInstallCommand(tool),
    venv,
    `as_app "$NEW_DIR" "${env} ${HOST_TLS[tool]} VIRTUAL_ENV=$VENV PATH=$VENV/bin:\\$PATH ${toolDir(tool)}/bin/python -m ${tool} ${args}"`,
  ];
  switch (deps.manager) {
    case "uv": {
      const uv = `${toolDir("uv")}/bin/uv`;
      const env = uvEnv(cacheDir);
      const ws = deps.workspace;
      // In a workspace: from the member's copy, that package's dependencies, the other members installed as copies.
      const dir = ws ? `"$NEW_DIR/${WORKSPACE_DIR}/${ws.member}"` : `"$NEW_DIR"`;
      const only = ws ? ` --no-editable --package ${q(ws.package)}` : "";
      const groups = (deps.groups ?? []).map((g) => ` --${g.as} ${q(g.name)}`).join("");
      return [
        toolInstallCommand("uv"),
        `as_app ${dir} "${env} ${uv} venv --allow-existing --python \\"$PYTHON\\" $VENV"`,
        `as_app ${dir} "${env} ${uv} sync --frozen --no-dev --no-install-project${only}${groups} --python \\"$PYTHON\\""`,
      ];
    }
    case "poetry": {
      const groups = (deps.groups ?? []).filter((g) => g.as === "group").map((g) => `,${g.name}`);
      const extras = (deps.groups ?? []).filter((g) => g.as === "extra").map((g) => g.name);
      return lockedInstall(
        "poetry",
        `POETRY_CACHE_DIR=${cacheDir}/poetry POETRY_VIRTUALENVS_CREATE=false`,
        `install --only main${groups.join("")}${extras.length ? ` --extras ${q(extras.join(" "))}` : ""} --no-root --no-interaction --no-ansi`,
      );
    }
    case "pipenv":
      // --deploy: the lock must match the Pipfile and its [requires] Python (the default packages only, as pinned).
      // Not the release's .env, which Pipenv loads into every command's environment by default: the lock alone decides.
      // COLUMNS: its messages (a lock out of date, with both hashes) on a line each in the release log, not wrapped at 80.
      return lockedInstall(
        "pipenv",
        `PIPENV_CACHE_DIR=${cacheDir}/pipenv PIP_CACHE_DIR=${cacheDir}/pip PIPENV_VERBOSITY=-1 PIPENV_NOSPIN=1 PIPENV_YES=1 PIPENV_DONT_LOAD_ENV=1 COLUMNS=160`,
        "install --deploy",
      );
    case "pdm":
      // --check: the lock must match pyproject.toml. The venv is PDM's because it is active (VIRTUAL_ENV, first on
      // PATH), never a .pdm-python the app may have committed. PDM writes a log for each command: into the cache,
      // not under the home, which the app user cannot write.
      return lockedInstall(
        "pdm",
        `PDM_CACHE_DIR=${cacheDir}/pdm PDM_LOG_DIR=${cacheDir}/pdm/logs PDM_CHECK_UPDATE=false PDM_NON_INTERACTIVE=1 PDM_IGNORE_SAVED_PYTHON=1 COLUMNS=160`,
        "install --prod --no-self --frozen-lockfile --check",
      );
    case "pip":
      return [
        `if [ -f "$NEW_DIR/${deps.manifest}" ]; then ${venv}; as_app "$NEW_DIR" "PIP_CACHE_DIR=${cacheDir}/pip $VENV/bin/pip install --disable-pip-version-check --no-input -r ${deps.manifest}"; else ${emptyVenv}; note "install: no ${deps.manifest}; the venv has no packages"; fi`,
      ];
    case "pip-project": {
      const pip = `PIP_CACHE_DIR=${cacheDir}/pip $VENV/bin/pip install --disable-pip-version-check --no-input`;
      const named = (as: PythonGroup["as"]) =>
        (deps.groups ?? []).filter((g) => g.as === as).map((g) => g.name);
      if (!deps.dependencies) {
        // A package: pip builds and installs it with the extras named; the PEP 735 groups named, which pip 23 (Debian
        // 12's) cannot install, are read as below and installed after it.
        const extras = named("extra");
        const install = [
          venv,
          `as_app "$NEW_DIR" "${pip} ${extras.length ? q(`.[${extras.join(",")}]`) : "."}"`,
        ];
        const groups = named("group").map((g) => `group:${g}`);
        return groups.length ? [...install, ...pipedDependencies(["--named-only", ...groups], pip)] : install;
      }
      const groups = (deps.groups ?? []).map((g) => `${g.as}:${g.name}`);
      if (deps.dependencies.length === 0 && groups.length === 0) {
        return [emptyVenv, `note "install: pyproject.toml lists no dependencies; the venv has no packages"`];
      }
      return [venv, ...pipedDependencies(groups, pip)];
    }
    case "none":
      return [
        emptyVenv,
        `note "install: no requirements.txt, pyproject.toml or lock file; the venv has no packages"`,
      ];
  }
}

/**
 * The requirements PYPROJECT_DEPS_PY reads with `args` (`--named-only`, `group:<name>`, `extra:<name>`), installed by `pip`. Read on the host from the release's own
 * pyproject.toml, not written into this script: a dependency (a URL with a token in it) stays out of the script and
 * the state, and a change to the list changes no host file. Read once to fail with a reason, then piped to pip's
 * arguments, one requirement each (xargs reads the pipe it was handed; pip -r /dev/stdin would reopen root's pipe as
 * the app user and be refused): no file holds the list, for other users to read or for a failed install to leave
 * behind.
 */
function pipedDependencies(args: readonly string[], pip: string): string[] {
  const readDeps = ['python3 -c "$PYPROJECT_DEPS_PY" "$NEW_DIR/pyproject.toml"', ...args.map(q)].join(" ");
  return [
    `PYPROJECT_DEPS_PY=${ansiC(PYPROJECT_DEPS_PY)}; ${readDeps} >/dev/null || die ${q(
      "install: could not read the dependencies from the release's pyproject.toml with the host's python3 (tomllib needs Python 3.11 or later)",
    )}`,
    `${readDeps} | as_app "$NEW_DIR" "xargs -d '\\n' -r env ${pip}"`,
  ];
}

/** One line for the install phase's description. */
export function pythonInstallLabel(deps: PythonDeps): string {
  const extra = deps.extraRequirements ?? [];
  const label = managerInstallLabel(deps);
  return extra.length ? `${label}, then apphost:app.extraRequirements (${extra.join(" ")})` : label;
}

function managerInstallLabel(deps: PythonDeps): string {
  switch (deps.manager) {
    case "uv":
      return `uv ${UV_VERSION} sync --frozen from uv.lock`;
    case "poetry":
      return `poetry ${POETRY_VERSION} install from poetry.lock`;
    case "pipenv":
      return `pipenv ${PIPENV_VERSION} install --deploy from Pipfile.lock`;
    case "pdm":
      return `pdm ${PDM_VERSION} install --prod --frozen-lockfile from pdm.lock`;
    case "pip":
      return `pip install -r ${deps.manifest}`;
    case "pip-project": {
      const groups = (deps.groups ?? []).map((g) => `${g.as} ${g.name}`);
      return deps.dependencies
        ? `pip install of pyproject.toml's [project] dependencies${groups.length ? ` and its ${groups.join(", ")}` : ""} (no lock file; the project is not a package)`
        : `pip install .${groups.length ? ` with its ${groups.join(", ")}` : ""} (pyproject.toml, no lock file)`;
    }
    case "none":
      return "no packages";
  }
}
