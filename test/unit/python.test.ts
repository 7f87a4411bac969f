/**
 * Python apps as their authors wrote them (components/release/python.ts,
 * components/config/procfile.ts): detection of the dependency manager, the
 * Python requirement and its check (run with the real python3 and bash), the
 * install commands per manager, and the Procfile defaults through the parser.
 */
import * as assert from "assert/strict";
import { execFileSync, spawnSync } from "child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import {
  chainedParts,
  parseProcfile,
  scriptMigrations,
  webScriptPath,
  gunicornConfigPath,
} from "../../components/config/procfile";
import { parseStackConfig, type AppFiles } from "../../components/config/validate";
import { gunicornBindProblem } from "../../components/config/webport";
import { detectRuntime, readAppFiles } from "../../components/config/appfiles";
import { commandRuntime } from "../../components/config/procfile";
import { buildArtifact, requirementsHash } from "../../components/release/artifact";
import {
  detectPythonDeps,
  groupedPackages,
  mainPackages,
  offeredGroups,
  poetryToPep440,
  PYTHON_CHOICES,
  pythonDepsOf,
  readPythonFacts,
  pythonInstallCommands,
  pythonInstallLabel,
  pythonInterpreterCommands,
  pythonSatisfies,
  pythonVersionCheck,
  requiresPythonOf,
  runtimeTxtVersion,
  runtimeTxtWarning,
  SPEC_CHECK_PY,
  tomlString,
  toolOnlyPyproject,
  virtualProjectDependencies,
  UV_VERSION,
  POETRY_VERSION,
  PIPENV_VERSION,
  PDM_VERSION,
  type PythonDeps,
} from "../../components/release/python";
import {
  alembicConfig,
  alembicMigration,
  defaultRevision,
  djangoCommand,
} from "../../components/config/defaults";
import {
  PYTHON_TOOL_DEPS,
  PYTHON_TOOL_VERSION,
  type PythonTool,
} from "../../components/release/python-tools";
import { baseCtx, baseRaw, configProblems, existingRaw, withKeys } from "./fixtures";
import { shellcheckSync } from "./shellcheck";
import { pathWithPython3, python3 } from "./python3";

const UV_PYPROJECT = `[project]
name = "notes"
version = "0.1.0"
requires-python = ">= 3.10, <4"
dependencies = ["fastapi>=0.110"]

[dependency-groups]
dev = ["pytest"]
`;

describe("python: which manager installs the app", () => {
  it("picks uv.lock, then poetry.lock, then requirements.txt, then pyproject.toml", () => {
    const all = { "uv.lock": "", "poetry.lock": "", "requirements.txt": "", "pyproject.toml": UV_PYPROJECT };
    assert.deepEqual(
      [
        detectPythonDeps(all).manager,
        detectPythonDeps({ ...all, "uv.lock": undefined }).manager,
        detectPythonDeps({ "requirements.txt": "", "pyproject.toml": UV_PYPROJECT }).manager,
        detectPythonDeps({ "pyproject.toml": UV_PYPROJECT }).manager,
        detectPythonDeps({}).manager,
      ],
      ["uv", "poetry", "pip", "pip-project", "none"],
    );
  });

  it("apphost:app.requirements wins over every lock file", () => {
    assert.deepEqual(detectPythonDeps({ "uv.lock": "", "pyproject.toml": UV_PYPROJECT }, "reqs/prod.txt"), {
      manager: "pip",
      manifest: "reqs/prod.txt",
      requiresPython: ">=3.10,<4",
      requiresPythonFrom: "pyproject.toml requires-python",
    });
  });

  it("PDM installs pdm.lock beside its pyproject.toml; without a pyproject.toml it is refused", () => {
    assert.deepEqual(detectPythonDeps({ "pdm.lock": "", "pyproject.toml": UV_PYPROJECT }), {
      manager: "pdm",
      manifest: "pdm.lock",
      requiresPython: ">=3.10,<4",
      requiresPythonFrom: "pyproject.toml requires-python",
    });
    const both = { "pdm.lock": "", "pyproject.toml": UV_PYPROJECT, "requirements.txt": "" };
    assert.equal(detectPythonDeps(both).manager, "pip");
    assert.equal(detectPythonDeps(both, "pdm.lock").manager, "pdm");
    assert.throws(
      () => detectPythonDeps({ "pdm.lock": "" }),
      /^Error: the app has a pdm\.lock and no pyproject\.toml, which PDM reads beside it: commit pyproject\.toml too$/,
    );
  });

  it("Pipenv installs Pipfile.lock when there is no requirements.txt, or when apphost:app.requirements names it", () => {
    const pipfile = '[packages]\nflask = "*"\n\n[requires]\npython_version = "3.11"\n';
    const pipenv = {
      manager: "pipenv",
      manifest: "Pipfile.lock",
      requiresPython: "==3.11.*",
      requiresPythonFrom: "Pipfile [requires] python_version",
    };
    assert.deepEqual(detectPythonDeps({ "Pipfile.lock": "{}", Pipfile: pipfile }), pipenv);
    // Both: requirements.txt, as before Pipenv was supported; the Pipfile's Python is then not enforced.
    const both = { "Pipfile.lock": "{}", Pipfile: pipfile, "requirements.txt": "flask\n" };
    assert.deepEqual(detectPythonDeps(both), {
      manager: "pip",
      manifest: "requirements.txt",
      requiresPython: "",
      requiresPythonFrom: "",
    });
    assert.deepEqual(detectPythonDeps(both, "Pipfile.lock"), pipenv);
    assert.equal(detectPythonDeps(both, "requirements.txt").manager, "pip");
    // A lock named in apphost:app.requirements picks its manager (not pip -r on a lock).
    assert.equal(
      detectPythonDeps({ "poetry.lock": "", "requirements.txt": "" }, "poetry.lock").manager,
      "poetry",
    );
    assert.throws(
      () => detectPythonDeps({ "requirements.txt": "" }, "uv.lock"),
      /^Error: the app has no uv\.lock, which apphost:app\.requirements names$/,
    );
  });

  it("refuses a Pipfile without its lock, and a lock without its Pipfile, saying what to commit", () => {
    assert.throws(
      () => detectPythonDeps({ Pipfile: "[packages]\n" }),
      /^Error: the app has a Pipfile and no Pipfile\.lock: run `pipenv lock` and commit Pipfile\.lock \(apphost installs exactly what it pins\)$/,
    );
    assert.throws(
      () => detectPythonDeps({ "Pipfile.lock": "{}" }),
      /^Error: the app has a Pipfile\.lock and no Pipfile, which pipenv reads beside it: commit the Pipfile too$/,
    );
    // A Pipfile beside a pyproject.toml (a tool's, unlocked) installs the project, as before.
    assert.equal(detectPythonDeps({ Pipfile: "", "pyproject.toml": UV_PYPROJECT }).manager, "pip-project");
  });

  it("a pyproject.toml without a lock: its [project] dependencies when the project is not a package, as uv reads one", () => {
    const project =
      '[project]\nname = "app"\ndependencies = [\n  "fastapi>=0.115", # the API\n  "uvicorn[standard]",\n]\n';
    const build = '\n[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n';
    const cases: [string, string[] | undefined][] = [
      [project, ["fastapi>=0.115", "uvicorn[standard]"]],
      [project + build, undefined],
      [`${project}${build}\n[tool.pdm]\ndistribution = false\n`, ["fastapi>=0.115", "uvicorn[standard]"]],
      [`${project}${build}\n[tool.poetry]\npackage-mode = false\n`, ["fastapi>=0.115", "uvicorn[standard]"]],
      [`${project}${build}\n[tool.uv]\npackage = false\n`, ["fastapi>=0.115", "uvicorn[standard]"]],
      [`${project}\n[tool.uv]\npackage = true\n`, undefined],
      ['[project]\nname = "app"\ndynamic = ["dependencies"]\n', undefined],
      ['[project]\nname = "app"\n', []],
      ["[tool.black]\nline-length = 100\n", undefined],
      ["[project\nname = ", undefined],
    ];
    assert.deepEqual(
      cases.map(([toml]) => virtualProjectDependencies(toml)),
      cases.map(([, expected]) => expected),
    );
    assert.deepEqual(detectPythonDeps({ "pyproject.toml": UV_PYPROJECT }).dependencies, ["fastapi>=0.110"]);
    assert.equal(detectPythonDeps({ "pyproject.toml": project + build }).dependencies, undefined);
  });

  it("a config read without the app directory installs with pip from requirements.txt, as before", () => {
    assert.deepEqual(pythonDepsOf({}), {
      manager: "pip",
      manifest: "requirements.txt",
      requiresPython: "",
      requiresPythonFrom: "",
    });
  });

  it("keys the venv by manager and lock content; pip keeps its old key", () => {
    const dir = mkdtempSync(join(tmpdir(), "apphost-py-"));
    try {
      writeFileSync(join(dir, "uv.lock"), "version = 1\n");
      writeFileSync(join(dir, "requirements.txt"), "flask\n");
      const uv = detectPythonDeps({ "uv.lock": "" });
      const a = requirementsHash(dir, { runtime: "python", pythonDeps: uv });
      writeFileSync(join(dir, "uv.lock"), "version = 1\n# changed\n");
      const b = requirementsHash(dir, { runtime: "python", pythonDeps: uv });
      assert.notEqual(a, b);
      assert.equal(
        requirementsHash(dir, {
          runtime: "python",
          pythonDeps: detectPythonDeps({ "requirements.txt": "" }),
        }),
        requirementsHash(dir, { runtime: "python", requirements: "requirements.txt" }),
      );
      assert.match(
        requirementsHash(dir, { runtime: "python", pythonDeps: detectPythonDeps({}) }),
        /^[0-9a-f]{16}$/,
      );
      // Pipenv: the Pipfile too (install --deploy checks the lock against it); pip's key ignores the Pipfile.
      writeFileSync(join(dir, "Pipfile.lock"), "{}\n");
      writeFileSync(join(dir, "Pipfile"), '[packages]\nflask = "*"\n');
      const pipenv = detectPythonDeps({ "Pipfile.lock": "{}", Pipfile: "" });
      const pip = detectPythonDeps({ "requirements.txt": "" });
      const before = [pipenv, pip].map((d) => requirementsHash(dir, { runtime: "python", pythonDeps: d }));
      writeFileSync(join(dir, "Pipfile"), '[packages]\nflask = "*"\nrequests = "*"\n');
      const after = [pipenv, pip].map((d) => requirementsHash(dir, { runtime: "python", pythonDeps: d }));
      assert.notEqual(after[0], before[0]);
      assert.equal(after[1], before[1]);
      // PDM and Poetry: pyproject.toml too (their installs compare the lock's content hash with it); uv: the lock alone.
      writeFileSync(join(dir, "pdm.lock"), "# pdm\n");
      writeFileSync(join(dir, "poetry.lock"), "# poetry\n");
      writeFileSync(join(dir, "pyproject.toml"), UV_PYPROJECT);
      const keys = () =>
        (["pdm.lock", "poetry.lock", "uv.lock"] as const).map((lock) =>
          requirementsHash(dir, {
            runtime: "python",
            pythonDeps: detectPythonDeps({ [lock]: "", "pyproject.toml": UV_PYPROJECT }),
          }),
        );
      const first = keys();
      writeFileSync(join(dir, "pyproject.toml"), `${UV_PYPROJECT}# changed\n`);
      const second = keys();
      assert.deepEqual(
        second.map((k, i) => k !== first[i]),
        [true, true, false],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("python: the version the app needs", () => {
  it("reads requires-python, Poetry's python and .python-version", () => {
    assert.deepEqual(requiresPythonOf({ "pyproject.toml": UV_PYPROJECT }), {
      spec: ">=3.10,<4",
      from: "pyproject.toml requires-python",
    });
    assert.deepEqual(
      requiresPythonOf({
        "pyproject.toml":
          '[tool.poetry]\nname = "x"\n\n[tool.poetry.dependencies]\npython = "^3.11"\nflask = "^3"\n',
      }),
      { spec: ">=3.11,<4", from: "pyproject.toml [tool.poetry.dependencies] python" },
    );
    assert.deepEqual(requiresPythonOf({ "pyproject.toml": UV_PYPROJECT, ".python-version": "3.12\n" }), {
      spec: ">=3.10,<4,==3.12.*",
      from: "pyproject.toml requires-python and .python-version",
    });
    assert.deepEqual(requiresPythonOf({ ".python-version": "# pinned\n3.11.7\n" }), {
      spec: "==3.11.7",
      from: ".python-version",
    });
    assert.deepEqual(requiresPythonOf({ "pyproject.toml": '[project]\nname = "x"\n' }), {
      spec: "",
      from: "",
    });
  });

  it("reads the Pipfile's [requires] for Pipenv installs only, the full version first", () => {
    const Pipfile = '[packages]\npython_version = "3.9"\n\n[requires]\npython_version = "3.11"\n';
    assert.deepEqual(requiresPythonOf({ Pipfile }, true), {
      spec: "==3.11.*",
      from: "Pipfile [requires] python_version",
    });
    assert.deepEqual(requiresPythonOf({ Pipfile }), { spec: "", from: "" });
    assert.deepEqual(
      requiresPythonOf(
        { Pipfile: `${Pipfile}python_full_version = "3.11.4"\n`, ".python-version": "3.11\n" },
        true,
      ),
      { spec: "==3.11.*,==3.11.4", from: ".python-version and Pipfile [requires] python_full_version" },
    );
    assert.deepEqual(requiresPythonOf({ Pipfile: '[requires]\npython_version = "*"\n' }, true), {
      spec: "",
      from: "",
    });
  });

  it("runtime.txt (Heroku's) is read for a warning only, and only when nothing apphost enforces names a version", () => {
    assert.deepEqual(
      ["python-3.10.2\n", "\n python-3.12 \n", "3.10.2", "python-3", "ruby-3.2.0", undefined].map(
        runtimeTxtVersion,
      ),
      ["3.10.2", "3.12", undefined, undefined, undefined, undefined],
    );
    const heroku = { "requirements.txt": "django\n", "runtime.txt": "python-3.10.2\n" };
    assert.deepEqual(detectPythonDeps(heroku), {
      manager: "pip",
      manifest: "requirements.txt",
      requiresPython: "",
      requiresPythonFrom: "",
      runtimeTxt: "3.10.2",
    });
    // A version apphost enforces wins: runtime.txt is then not mentioned at all.
    assert.equal(detectPythonDeps({ ...heroku, ".python-version": "3.11\n" }).runtimeTxt, undefined);
    assert.equal(detectPythonDeps({ "requirements.txt": "django\n" }).runtimeTxt, undefined);
    assert.deepEqual(runtimeTxtWarning(detectPythonDeps({ "requirements.txt": "" })), []);
    // Neither makes an app a Python one.
    assert.deepEqual(
      detectRuntime({ dir: "../shop", python: { "runtime.txt": "python-3.12\n" }, packageJson: "app" }),
      { runtime: "node" },
    );
  });

  it("the install phase warns when the release's Python is not runtime.txt's (major.minor), and says how to pin one", () => {
    const lines = runtimeTxtWarning({ ...pythonDepsOf({}), runtimeTxt: "3.10.2" });
    const run = (mm: string) =>
      spawnSync("bash", ["-c", `note() { echo "apphost: $*" >&2; }; PY_MM=${mm}\n${lines.join("\n")}`], {
        encoding: "utf8",
      });
    const warned = run("3.11");
    assert.equal(warned.status, 0);
    assert.equal(
      warned.stderr,
      "apphost: warning: runtime.txt names Python 3.10.2 and this release runs Python 3.11: apphost does not enforce runtime.txt (Heroku's file); " +
        "to pin a version, write it in .python-version or pyproject.toml's requires-python (apphost:app.python managed installs it), or remove runtime.txt\n",
    );
    assert.equal(run("3.10").stderr, "");
    const checked = shellcheckSync(["note() { :; }", "PY_MM=3.11", ...lines].join("\n"), ["-s", "bash"]);
    assert.equal(checked.status, 0, checked.output);
  });

  it("reads only the named table's key (not one in another table or an array of tables)", () => {
    const toml = `[tool.other]\nrequires-python = ">=9"\n[[tool.x]]\nrequires-python = ">=8"\n[ project ]\nrequires-python = '>=3.9'  # ok\n`;
    assert.equal(tomlString(toml, "project", "requires-python"), ">=3.9");
    assert.equal(tomlString("[project]\nname = 'x'\n", "project", "requires-python"), undefined);
  });

  it("translates Poetry constraints into PEP 440 clauses", () => {
    const rows: [string, string][] = [
      ["^3.10", ">=3.10,<4"],
      ["^3.10.2", ">=3.10.2,<4"],
      ["^0.2.3", ">=0.2.3,<0.3"],
      ["~3.10", ">=3.10,<3.11"],
      ["~3.10.4", ">=3.10.4,<3.11"],
      [">=3.9,<3.13", ">=3.9,<3.13"],
      [">=3.9 <3.13", ">=3.9,<3.13"],
      ["3.11.*", "==3.11.*"],
      ["~3.9 || ^3.11", ">=3.9,<3.10||>=3.11,<4"],
      ["~=3.10", "~=3.10"],
    ];
    assert.deepEqual(
      rows.map(([c]) => [c, poetryToPep440(c)]),
      rows,
    );
  });

  // The checker runs on the host's python3; here it runs on this machine's, against its real version.
  const local = execFileSync(python3(), ["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], {
    encoding: "utf8",
  }).trim();
  const [maj, min, mic] = local.split(".").map(Number);
  // -S, as the check phase runs it (pythonVersionCheck).
  const check = (spec: string) => spawnSync(python3(), ["-S", "-c", SPEC_CHECK_PY, spec]).status;

  it(`decides PEP 440 clauses like pip does (against this machine's Python ${local})`, function () {
    this.timeout(60_000); // one python3 per row
    const rows: [string, number][] = [
      [`>=${maj}.${min}`, 0],
      [`>=${maj}.${min + 1}`, 1],
      [`<${maj}.${min}`, 1],
      [`<=${maj}.${min}`, mic === 0 ? 0 : 1],
      [`>${maj}.${min}`, mic === 0 ? 1 : 0],
      [`==${maj}.${min}.*`, 0],
      [`!=${maj}.${min}.*`, 1],
      [`==${maj}.${min}.${mic}`, 0],
      [`===${maj}.${min}.${mic}`, 0],
      [`~=${maj}.${min - 1}`, 0],
      [`~=${maj}.${min}.${mic + 1}`, 1],
      [`>=3.14`, maj > 3 || min >= 14 ? 0 : 1],
      [`>= 3.8, < 4`, 0],
      [`>=${maj}.${min + 1}||==${maj}.${min}.*`, 0],
      [`>=${maj}.${min + 1}||<3`, 1],
      [`bogus`, 2],
    ];
    assert.deepEqual(
      rows.map(([spec]) => [spec, check(spec)]),
      rows,
    );
  });

  it("check refuses the host's Python, naming its version, the requirement and the choices (real bash)", function () {
    this.timeout(30_000);
    const deps: PythonDeps = {
      manager: "uv",
      manifest: "uv.lock",
      requiresPython: ">=3.14",
      requiresPythonFrom: "pyproject.toml requires-python",
    };
    // Inside a function, indented, as the release script renders a phase.
    const run = (requiresPython: string, requiresPythonFrom = deps.requiresPythonFrom) => {
      const cmds = pythonVersionCheck({ ...deps, requiresPython, requiresPythonFrom }, "system");
      const script = `die() { echo "$*" >&2; exit 10; }\ncheck() {\n${cmds.map((c) => `    ${c}`).join("\n")}\n}\ncheck\necho ok\n`;
      return spawnSync("bash", ["-c", script], {
        encoding: "utf8",
        env: { ...process.env, PATH: pathWithPython3() },
      });
    };
    const managed =
      "or let uv install a matching Python with apphost:app.python set to managed (the host must reach github.com to download it)";
    assert.ok(maj === 3 && min < 12, `this test expects the machine's python3 older than 3.12, got ${local}`);
    // No OS apphost offers has 3.14: the hint names none.
    const r = run(">=3.14");
    assert.equal(r.status, 10);
    assert.equal(
      r.stderr.trim(),
      `the app needs Python >=3.14 (pyproject.toml requires-python) and the host has Python ${local}; ` +
        `run it on a host whose python3 satisfies that, ${managed}`,
    );
    assert.equal(PYTHON_CHOICES, `run it on a host whose python3 satisfies that$hint, ${managed}`);
    // Debian 13's 3.13.5 satisfies >=3.12 and ==3.13.*: the hint names it; not >=3.13.6 nor >=3.14.
    const r12 = run(">=3.12");
    assert.equal(r12.status, 10);
    assert.equal(
      r12.stderr.trim(),
      `the app needs Python >=3.12 (pyproject.toml requires-python) and the host has Python ${local}; ` +
        "run it on a host whose python3 satisfies that (an ec2 stack can set apphost:host.os to debian-13, " +
        `which has Python 3.13.5), ${managed}`,
    );
    assert.match(run("==3.13.*").stderr, /debian-13, which has Python 3\.13\.5/);
    assert.doesNotMatch(run(">=3.13.6").stderr, /apphost:host.os/);
    // The first OS, newest first, whose Python would do: Ubuntu 24.04's for 3.12 only, Debian 12's for 3.11.2.
    assert.match(
      run(">=3.12,<3.13").stderr,
      /set apphost:host.os to ubuntu-24\.04, which has Python 3\.12\.3\)/,
    );
    assert.match(run("==3.11.2").stderr, /set apphost:host.os to debian-12, which has Python 3\.11\.2\)/);
    // A .python-version alone: the pin may be the authors' Python, not the app's range.
    const pinned = run("==3.14.*", ".python-version");
    assert.equal(pinned.status, 10);
    assert.equal(
      pinned.stderr.trim(),
      `the app needs Python ==3.14.* (.python-version) and the host has Python ${local}; ` +
        `run it on a host whose python3 satisfies that, ${managed}; or, if the app also runs on Python ${local}, ` +
        "write that in .python-version (one version, pinned for uv, pyenv and Heroku)",
    );
    const ok = spawnSync(
      "bash",
      [
        "-c",
        `die() { exit 10; }\n${pythonVersionCheck({ ...deps, requiresPython: ">=3.8" }, "system").join("\n")}\necho ok`,
      ],
      { encoding: "utf8", env: { ...process.env, PATH: pathWithPython3() } },
    );
    assert.equal(ok.stdout.trim(), "ok");
    assert.deepEqual(pythonVersionCheck(deps, "managed"), [], "uv provides the Python at install");
    assert.deepEqual(pythonVersionCheck({ ...deps, requiresPython: "" }, "system"), []);
  });

  it("pythonSatisfies decides as the check phase's Python does, for a version given", () => {
    const specs = [
      ">=3.12",
      ">=3.10,<4.0",
      ">=3.14,<4.0",
      "==3.11.*",
      "!=3.11.*",
      "==3.13.5",
      "===3.13.5",
      "===3.13",
      "~=3.11",
      "~=3.11.4",
      "<=3.12",
      ">3.12.3",
      "<3.12",
      ">=3.9,<3.10||>=3.11,<4",
      "==3.11.*,==3.14.*",
      ">= 3.8, < 4",
      "",
      "bogus",
      ">=3.8,^3.9",
      "<=3.11.*",
    ];
    const versions = ["3.11.2", "3.12.3", "3.13.5", "3.14.0", "3.9.18"];
    const rows = specs.flatMap((spec) => versions.map((version) => [spec, version]));
    // One python3 for every row: SPEC_CHECK_PY exits with its verdict, 0 (yes), 1 (no) or 2 (a clause it does not read).
    const runner =
      "import json, sys\nsrc = sys.argv[1]\nout = []\nfor spec, version in json.loads(sys.argv[2]):\n" +
      "    sys.argv = ['-c', spec, version]\n    try:\n        exec(src, {})\n        out.append('no exit')\n" +
      "    except SystemExit as e:\n        out.append(e.code)\nprint(json.dumps(out))";
    const theirs = JSON.parse(
      execFileSync(python3(), ["-S", "-c", runner, SPEC_CHECK_PY, JSON.stringify(rows)], {
        encoding: "utf8",
      }),
    ) as unknown[];
    const verdict = (v: boolean | undefined) => (v === undefined ? 2 : v ? 0 : 1);
    assert.deepEqual(
      rows.map(([spec, version]) => `${spec} @ ${version}: ${verdict(pythonSatisfies(spec, version))}`),
      rows.map(([spec, version], i) => `${spec} @ ${version}: ${String(theirs[i])}`),
    );
    // Some rows answer each way, so the table tells the three apart.
    assert.deepEqual([...new Set(theirs)].sort(), [0, 1, 2]);
  });

  it("refuses an ec2 host.os whose Python the app's requirement excludes, before anything exists", () => {
    const app = (python: AppFiles["python"]): AppFiles => ({
      dir: "../full-stack/backend",
      procfile: "web: fastapi run --workers 2 app/main.py\n",
      python,
    });
    const raw = (keys: Record<string, unknown> = {}) =>
      withKeys(baseRaw(), { "app.requirements": undefined, ...keys });
    const requiring = (spec: string) =>
      app({
        "uv.lock": "version = 1\n",
        "pyproject.toml": `[project]\nname = "app"\nrequires-python = "${spec}"\n`,
      });
    const managed =
      "set apphost:app.python to managed: uv installs a matching Python at the first release (the instance must reach github.com)";
    // fastapi/full-stack-fastapi-template since 14728b63: Python 3.14, which no host.os has.
    assert.deepEqual(configProblems(raw(), { ...baseCtx(), appFiles: requiring(">=3.14,<4.0") }), [
      `apphost:host.os: debian-12 has Python 3.11.2, and the app needs Python >=3.14,<4.0 (pyproject.toml requires-python); no host.os has a Python that does: ${managed}`,
    ]);
    // Django 6's >=3.12: the two that have one.
    assert.deepEqual(configProblems(raw(), { ...baseCtx(), appFiles: requiring(">=3.12") }), [
      "apphost:host.os: debian-12 has Python 3.11.2, and the app needs Python >=3.12 (pyproject.toml requires-python); " +
        `set this to debian-13 (Python 3.13.5) or ubuntu-24.04 (Python 3.12.3) for a new instance (a running one keeps its image's OS), or ${managed}`,
    ]);
    // A .python-version alone may be the authors' own Python.
    assert.deepEqual(
      configProblems(raw({ "host.os": "debian-13" }), {
        ...baseCtx(),
        appFiles: app({ "requirements.txt": "fastapi\n", ".python-version": "3.14\n" }),
      }),
      [
        "apphost:host.os: debian-13 has Python 3.13.5, and the app needs Python ==3.14.* (.python-version); " +
          `no host.os has a Python that does: ${managed}; or, if the app also runs on that Python, write its version in .python-version`,
      ],
    );
    // Accepted: an OS whose Python does, a managed Python, a server apphost does not choose the OS of (its check phase
    // reads the host's own python3), a clause only the host's check reads.
    const ok = (keys: Record<string, unknown>, spec: string) =>
      parseStackConfig(raw(keys), { ...baseCtx(), appFiles: requiring(spec) }).app.pythonDeps?.requiresPython;
    assert.equal(ok({ "host.os": "debian-13" }, ">=3.12"), ">=3.12");
    assert.equal(ok({ "app.python": "managed" }, ">=3.14"), ">=3.14");
    assert.equal(ok({ "host.os": "debian-12" }, ">=3.8,<=3.14.*"), ">=3.8,<=3.14.*");
    const existing = withKeys(existingRaw(), { "app.requirements": undefined });
    assert.equal(
      parseStackConfig(existing, { ...baseCtx(), appFiles: requiring(">=3.14") }).app.pythonDeps
        ?.requiresPython,
      ">=3.14",
    );
  });
});

describe("python: install commands per manager", () => {
  const cache = "/srv/shop-prod/cache";
  const deps = (manager: PythonDeps["manager"], manifest: string): PythonDeps => ({
    manager,
    manifest,
    requiresPython: ">=3.10",
    requiresPythonFrom: "pyproject.toml requires-python",
  });
  const uvInstall =
    `if [ ! -x /var/lib/apphost/tools/uv-${UV_VERSION}/bin/uv ]; then note "install: uv ${UV_VERSION} from PyPI into /var/lib/apphost/tools/uv-${UV_VERSION}"; ` +
    `install -d -m 0755 /var/lib/apphost/tools; rm -rf /var/lib/apphost/tools/uv-${UV_VERSION}.tmp.$$; ` +
    `if python3 -m venv /var/lib/apphost/tools/uv-${UV_VERSION}.tmp.$$ && ` +
    `/var/lib/apphost/tools/uv-${UV_VERSION}.tmp.$$/bin/pip install --disable-pip-version-check --no-input --quiet --no-cache-dir uv==${UV_VERSION}; ` +
    `then mv -T /var/lib/apphost/tools/uv-${UV_VERSION}.tmp.$$ /var/lib/apphost/tools/uv-${UV_VERSION} 2>/dev/null || rm -rf /var/lib/apphost/tools/uv-${UV_VERSION}.tmp.$$; ` +
    `else rm -rf /var/lib/apphost/tools/uv-${UV_VERSION}.tmp.$$; die "could not install uv ${UV_VERSION} from PyPI"; fi; fi`;

  it("uv: the pinned uv, then a frozen sync without dev dependencies or the project itself", () => {
    const uv = `/var/lib/apphost/tools/uv-${UV_VERSION}/bin/uv`;
    const env = `UV_CACHE_DIR=${cache}/uv UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 UV_SYSTEM_CERTS=1 UV_PROJECT_ENVIRONMENT=$VENV`;
    assert.deepEqual(pythonInstallCommands(deps("uv", "uv.lock"), cache), [
      uvInstall,
      `as_app "$NEW_DIR" "${env} ${uv} venv --allow-existing --python \\"$PYTHON\\" $VENV"`,
      `as_app "$NEW_DIR" "${env} ${uv} sync --frozen --no-dev --no-install-project --python \\"$PYTHON\\""`,
    ]);
  });

  it("poetry, pipenv and pdm: the pinned tool, a venv, then the tool installing the lock's main packages into it", () => {
    const tool = (name: string, version: string) =>
      `/var/lib/apphost/tools/${name}-${version}/bin/python -m ${name}`;
    const cases = [
      {
        deps: deps("poetry", "poetry.lock"),
        pin: `poetry==${POETRY_VERSION}`,
        install: `POETRY_CACHE_DIR=${cache}/poetry POETRY_VIRTUALENVS_CREATE=false REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt VIRTUAL_ENV=$VENV PATH=$VENV/bin:\\$PATH ${tool("poetry", POETRY_VERSION)} install --only main --no-root --no-interaction --no-ansi`,
        label: `poetry ${POETRY_VERSION} install from poetry.lock`,
      },
      {
        // --check: the lock checked against pyproject.toml; the venv is PDM's because it is the active one.
        deps: deps("pdm", "pdm.lock"),
        pin: `pdm==${PDM_VERSION}`,
        install: `PDM_CACHE_DIR=${cache}/pdm PDM_LOG_DIR=${cache}/pdm/logs PDM_CHECK_UPDATE=false PDM_NON_INTERACTIVE=1 PDM_IGNORE_SAVED_PYTHON=1 COLUMNS=160 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt VIRTUAL_ENV=$VENV PATH=$VENV/bin:\\$PATH ${tool("pdm", PDM_VERSION)} install --prod --no-self --frozen-lockfile --check`,
        label: `pdm ${PDM_VERSION} install --prod --frozen-lockfile from pdm.lock`,
      },
      {
        // --deploy: the Pipfile's [packages] as the lock pins them, the lock checked against the Pipfile.
        deps: deps("pipenv", "Pipfile.lock"),
        pin: `pipenv==${PIPENV_VERSION}`,
        install: `PIPENV_CACHE_DIR=${cache}/pipenv PIP_CACHE_DIR=${cache}/pip PIPENV_VERBOSITY=-1 PIPENV_NOSPIN=1 PIPENV_YES=1 PIPENV_DONT_LOAD_ENV=1 COLUMNS=160 PIP_CERT=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt VIRTUAL_ENV=$VENV PATH=$VENV/bin:\\$PATH ${tool("pipenv", PIPENV_VERSION)} install --deploy`,
        label: `pipenv ${PIPENV_VERSION} install --deploy from Pipfile.lock`,
      },
    ];
    for (const c of cases) {
      const cmds = pythonInstallCommands(c.deps, cache);
      assert.equal(cmds.length, 3);
      // The tool with its dependencies as tested (python-tools.ts).
      const tool = c.deps.manager as PythonTool;
      assert.ok(
        cmds[0].includes(` --quiet --no-cache-dir ${[c.pin, ...PYTHON_TOOL_DEPS[tool]].join(" ")}; `),
        cmds[0],
      );
      assert.deepEqual(cmds.slice(1), [
        'as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv $VENV"',
        `as_app "$NEW_DIR" "${c.install}"`,
      ]);
      assert.equal(pythonInstallLabel(c.deps), c.label);
    }
  });

  it("each tool's dependency pins are name==version words, one per package, without the tool itself", () => {
    for (const [tool, pins] of Object.entries(PYTHON_TOOL_DEPS)) {
      const names = pins.map((p) => p.split("==")[0].toLowerCase().replace(/[._]/g, "-"));
      for (const p of pins)
        assert.match(p, /^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][0-9A-Za-z.+]*$/, `${tool}: ${p}`);
      assert.equal(new Set(names).size, names.length, `${tool}: a package pinned twice`);
      assert.ok(!names.includes(tool), `${tool} pins itself`);
      assert.match(PYTHON_TOOL_VERSION[tool as PythonTool], /^[0-9][0-9.]*$/);
    }
    // pdm 2.29.4 fails with hishel 2 (its own requirement allows it): the pin that made the list necessary.
    assert.ok(PYTHON_TOOL_DEPS.pdm.includes("hishel==1.4.0"));
  });

  it("docs/config.md names each tool's pinned version and directory", () => {
    const docs = readFileSync(join(__dirname, "..", "..", "docs", "config.md"), "utf8");
    for (const [tool, version] of Object.entries(PYTHON_TOOL_VERSION)) {
      assert.ok(
        docs.includes(`/var/lib/apphost/tools/${tool}-${version}`),
        `${tool} ${version} in docs/config.md`,
      );
    }
  });

  it("pip-project and none", () => {
    assert.deepEqual(pythonInstallCommands(deps("pip-project", "pyproject.toml"), cache), [
      'as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv $VENV"',
      `as_app "$NEW_DIR" "PIP_CACHE_DIR=${cache}/pip $VENV/bin/pip install --disable-pip-version-check --no-input ."`,
    ]);
    // A project that is not a package: its [project] dependencies, read on the host from the release's
    // pyproject.toml and piped to pip (never written into the script, which the state holds, nor into a file).
    const virtual = {
      ...deps("pip-project", "pyproject.toml"),
      dependencies: ["fastapi>=0.115,<1", `uvicorn[standard]>=0.30; python_version >= '3.11'`],
    };
    const cmds = pythonInstallCommands(virtual, cache);
    assert.deepEqual(
      [cmds[0], cmds[2]],
      [
        'as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv $VENV"',
        `python3 -c "$PYPROJECT_DEPS_PY" "$NEW_DIR/pyproject.toml" | as_app "$NEW_DIR" "xargs -d '\\n' -r env PIP_CACHE_DIR=${cache}/pip $VENV/bin/pip install --disable-pip-version-check --no-input"`,
      ],
    );
    assert.equal(cmds.length, 3);
    assert.ok(!cmds.join("\n").includes("fastapi"), "the list is not in the script");
    // Under bash and this machine's python3, from a pyproject.toml: pip's standard input (here a stand-in as_app
    // that prints it) holds each requirement as written; a symlinked pyproject.toml is refused.
    const dir = mkdtempSync(join(tmpdir(), "apphost-pyproject-"));
    try {
      const toml = `[project]\nname = "app"\ndependencies = [\n  "fastapi>=0.115,<1", # the API\n  "uvicorn[standard]>=0.30; python_version >= '3.11'",\n]\n`;
      writeFileSync(join(dir, "pyproject.toml"), toml);
      const read = (newDir: string) =>
        spawnSync(
          "bash",
          [
            "-c",
            `set -o pipefail; die() { echo "died: $1"; exit 9; }; as_app() { cat; }; NEW_DIR=${newDir}; ${cmds[1]}; ${cmds[2]}`,
          ],
          {
            encoding: "utf8",
            env: { ...process.env, PATH: pathWithPython3() },
          },
        );
      assert.equal(read(dir).stdout, `${virtual.dependencies.join("\n")}\n`);
      mkdirSync(join(dir, "linked"));
      symlinkSync(join(dir, "pyproject.toml"), join(dir, "linked", "pyproject.toml"));
      const linked = read(join(dir, "linked"));
      assert.equal(linked.status, 9);
      assert.match(
        linked.stdout,
        /^died: install: could not read the dependencies from the release's pyproject\.toml/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.deepEqual(pythonInstallCommands({ ...virtual, dependencies: [] }, cache), [
      'as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv --without-pip $VENV"',
      'note "install: pyproject.toml lists no dependencies; the venv has no packages"',
    ]);
    assert.equal(
      pythonInstallLabel(virtual),
      "pip install of pyproject.toml's [project] dependencies (no lock file; the project is not a package)",
    );
    // Nothing to install: a venv without pip.
    assert.deepEqual(pythonInstallCommands(deps("none", ""), cache), [
      'as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv --without-pip $VENV"',
      'note "install: no requirements.txt, pyproject.toml or lock file; the venv has no packages"',
    ]);
  });

  it("pip-project, a package: its extras installed with it (pip install '.[a,b]'), its PEP 735 groups after it", () => {
    const toml = [
      "[build-system]",
      'requires = ["setuptools>=61"]',
      'build-backend = "setuptools.build_meta"',
      "[project]",
      'name = "shop"',
      'version = "1.0"',
      'dependencies = ["flask>=3"]',
      "[project.optional-dependencies]",
      'postgres = ["psycopg[binary]>=3.2"]',
      'redis = ["redis>=5"]',
      "[dependency-groups]",
      'serve = ["gunicorn>=23", {include-group = "metrics"}]',
      'metrics = ["prometheus-client>=0.20"]',
      "",
    ].join("\n");
    const app: AppFiles = {
      dir: "../shop",
      procfile: "web: gunicorn shop:app\n",
      python: { "pyproject.toml": toml },
    };
    const parse = (groups?: string[]) =>
      parseStackConfig(
        withKeys(baseRaw(), { "app.requirements": undefined, "app.dependencyGroups": groups }),
        {
          ...baseCtx(),
          appFiles: app,
        },
      ).app.pythonDeps!;
    const pip = `PIP_CACHE_DIR=${cache}/pip $VENV/bin/pip install --disable-pip-version-check --no-input`;
    const venv = 'as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv $VENV"';
    // None named: the package alone, as before, and the program check names the group gunicorn is in.
    const bare = parse();
    assert.equal(bare.dependencies, undefined, "a package");
    assert.deepEqual(pythonInstallCommands(bare, cache), [venv, `as_app "$NEW_DIR" "${pip} ."`]);
    assert.deepEqual(bare.groupedPackages?.gunicorn, [{ name: "serve", as: "group" }]);
    // Extras only: pip's own `.[a,b]`, quoted for the app user's shell.
    const extras = parse(["postgres", "redis"]);
    assert.deepEqual(pythonInstallCommands(extras, cache), [
      venv,
      `as_app "$NEW_DIR" "${pip} '.[postgres,redis]'"`,
    ]);
    assert.equal(
      pythonInstallLabel(extras),
      "pip install . with its extra postgres, extra redis (pyproject.toml, no lock file)",
    );
    // A group too: read on the host, without the [project] dependencies pip install . brought, and piped to pip.
    const both = parse(["postgres", "serve"]);
    const cmds = pythonInstallCommands(both, cache);
    assert.deepEqual(
      [cmds[0], cmds[1], cmds[3]],
      [
        venv,
        `as_app "$NEW_DIR" "${pip} '.[postgres]'"`,
        `python3 -c "$PYPROJECT_DEPS_PY" "$NEW_DIR/pyproject.toml" --named-only group:serve | as_app "$NEW_DIR" "xargs -d '\\n' -r env ${pip}"`,
      ],
    );
    assert.equal(cmds.length, 4);
    assert.equal(
      pythonInstallLabel(both),
      "pip install . with its extra postgres, group serve (pyproject.toml, no lock file)",
    );
    // Under bash and this machine's python3: the group with the one it includes, and nothing else.
    const dir = mkdtempSync(join(tmpdir(), "apphost-pyproject-"));
    try {
      writeFileSync(join(dir, "pyproject.toml"), toml);
      const r = spawnSync(
        "bash",
        [
          "-c",
          `set -o pipefail; die() { echo "died: $1"; exit 9; }; as_app() { cat; }; NEW_DIR=${dir}; ${cmds[2]}; ${cmds[3]}`,
        ],
        { encoding: "utf8", env: { ...process.env, PATH: pathWithPython3() } },
      );
      assert.equal(r.stdout, "gunicorn>=23\nprometheus-client>=0.20\n", r.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("pip-project with PEP 735 dependency groups only (BookWyrm): the groups apphost:app.dependencyGroups names", () => {
    // BookWyrm db40a61c9's pyproject.toml in short: no [project], no [build-system]; its Dockerfile runs
    // `pip install --group main --group dev`.
    const toml = [
      "[dependency-groups]",
      'main = ["Django==5.2.16", "gunicorn==25.0.3", {include-group = "Queue_Workers"}]',
      'queue-workers = ["celery[redis]==5.6.2"]',
      'dev = ["pytest==9.0.3", {include-group = "main"}]',
      "[tool.pytest.ini_options]",
      'testpaths = ["bookwyrm/tests"]',
      "",
    ].join("\n");
    const detected = detectPythonDeps({ "pyproject.toml": toml });
    assert.deepEqual([detected.manager, detected.dependencies], ["pip-project", []]);
    assert.deepEqual(
      [...(offeredGroups("pip-project", toml)?.keys() ?? [])],
      ["main", "queue-workers", "dev"],
    );
    // A package (pip install .) offers the same: see the test below.
    assert.deepEqual(
      [...(offeredGroups("pip-project", `[build-system]\nrequires = ["setuptools"]\n${toml}`)?.keys() ?? [])],
      ["main", "queue-workers", "dev"],
    );
    const app: AppFiles = {
      dir: "../bookwyrm",
      procfile: "web: gunicorn bookwyrm.wsgi:application\n",
      python: { "pyproject.toml": toml },
    };
    const config = parseStackConfig(
      withKeys(baseRaw(), { "app.requirements": undefined, "app.dependencyGroups": ["main"] }),
      { ...baseCtx(), appFiles: app },
    );
    const withMain = config.app.pythonDeps!;
    assert.deepEqual(withMain.groups, [{ name: "main", as: "group" }]);
    assert.deepEqual(withMain.groupedPackages, { pytest: [{ name: "dev", as: "group" }] });
    const cmds = pythonInstallCommands(withMain, cache);
    assert.equal(
      cmds[2],
      `python3 -c "$PYPROJECT_DEPS_PY" "$NEW_DIR/pyproject.toml" group:main | as_app "$NEW_DIR" "xargs -d '\\n' -r env PIP_CACHE_DIR=${cache}/pip $VENV/bin/pip install --disable-pip-version-check --no-input"`,
    );
    assert.equal(
      pythonInstallLabel(withMain),
      "pip install of pyproject.toml's [project] dependencies and its group main (no lock file; the project is not a package)",
    );
    // None named: nothing to install, and the install phase's program check names the group gunicorn is in.
    const bare = parseStackConfig(withKeys(baseRaw(), { "app.requirements": undefined }), {
      ...baseCtx(),
      appFiles: app,
    }).app.pythonDeps!;
    assert.deepEqual(bare.groupedPackages?.gunicorn, [
      { name: "main", as: "group" },
      { name: "dev", as: "group" },
    ]);
    assert.equal(
      pythonInstallCommands(bare, cache)[0],
      'as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv --without-pip $VENV"',
    );
    // Under bash and this machine's python3: the named group with the group it includes (names compare normalized).
    const dir = mkdtempSync(join(tmpdir(), "apphost-pyproject-"));
    try {
      writeFileSync(join(dir, "pyproject.toml"), toml);
      const read = (command: string) =>
        spawnSync(
          "bash",
          [
            "-c",
            `set -o pipefail; die() { echo "died: $1"; exit 9; }; as_app() { cat; }; NEW_DIR=${dir}; ${cmds[1]}; ${command}`,
          ],
          {
            encoding: "utf8",
            env: { ...process.env, PATH: pathWithPython3() },
          },
        );
      assert.deepEqual(read(cmds[2]).stdout.split("\n"), [
        "Django==5.2.16",
        "gunicorn==25.0.3",
        "celery[redis]==5.6.2",
        "",
      ]);
      const both = pythonInstallCommands({ ...withMain, groups: [{ name: "dev", as: "group" }] }, cache)[2];
      assert.deepEqual(read(both).stdout.split("\n"), [
        "pytest==9.0.3",
        "Django==5.2.16",
        "gunicorn==25.0.3",
        "celery[redis]==5.6.2",
        "",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("managed Python: uv finds or installs one matching the requirement, downloads only here", () => {
    const uv = `/var/lib/apphost/tools/uv-${UV_VERSION}/bin/uv`;
    const env = `UV_PYTHON_INSTALL_DIR=/var/lib/apphost/tools/python UV_CACHE_DIR=${cache}/uv-python UV_SYSTEM_CERTS=1`;
    assert.deepEqual(pythonInterpreterCommands(deps("uv", "uv.lock"), "managed", cache), [
      uvInstall,
      `PYTHON=$(${env} ${uv} python find --managed-python '>=3.10' 2>/dev/null) || { note "install: uv installs a Python for >=3.10"; ${env} ${uv} python install '>=3.10' >&2 && PYTHON=$(${env} ${uv} python find --managed-python '>=3.10'); } || die 'uv could not provide a Python for >=3.10 (apphost:app.python is managed): the host must reach github.com; or set apphost:app.python to system'`,
      `PY_MM=$("$PYTHON" -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')`,
    ]);
    assert.deepEqual(pythonInterpreterCommands(deps("uv", "uv.lock"), "system", cache), [
      "PYTHON=python3",
      `PY_MM=$(python3 -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')`,
    ]);
  });

  it("the install commands pass shellcheck as one script", function () {
    const all = (["uv", "poetry", "pipenv", "pdm", "pip", "pip-project", "none"] as const).flatMap((m) => [
      ...pythonInterpreterCommands(deps(m, "x"), "managed", cache),
      ...pythonInstallCommands(deps(m, m === "pip" ? "requirements.txt" : "x"), cache),
      ...pythonVersionCheck(deps(m, "x"), "system"),
    ]);
    all.push(
      ...pythonInstallCommands(
        { ...deps("pip-project", "x"), dependencies: [`a[b]>=1; python_version >= '3.11'`, "c"] },
        cache,
      ),
    );
    const script = `#!/bin/bash\nnote() { :; }\ndie() { exit 1; }\nas_app() { :; }\nNEW_DIR=/x\nVENV=/v\n${all.join("\n")}\necho "$PYTHON $PY_MM $PY_VERSION"\n`;
    const r = shellcheckSync(script, ["-s", "bash"]);
    assert.equal(r.output, "");
    assert.equal(r.status, 0);
  });
});

describe("Procfile", () => {
  it("parses name: command lines, skipping comments and blanks, and reports bad lines", () => {
    assert.deepEqual(
      parseProcfile(
        "# app\nweb: gunicorn app:app --bind 127.0.0.1:$PORT\n\nworker:python w.py\nnonsense\nrelease:\n",
      ),
      {
        entries: [
          { name: "web", command: "gunicorn app:app --bind 127.0.0.1:$PORT", line: 2 },
          { name: "worker", command: "python w.py", line: 4 },
        ],
        bad: [
          { line: 5, text: "nonsense" },
          { line: 6, text: "release:" },
        ],
      },
    );
  });

  it("finds chained commands outside quotes only", () => {
    assert.deepEqual(chainedParts("flask db upgrade && gunicorn app:app"), [
      "flask db upgrade",
      "gunicorn app:app",
    ]);
    assert.deepEqual(chainedParts("a; b || c"), ["a", "b", "c"]);
    assert.equal(chainedParts(`sh -c 'a && b'`), undefined);
    assert.equal(chainedParts(`gunicorn "app:create_app()" --bind 127.0.0.1:$PORT`), undefined);
    assert.equal(chainedParts("echo a\\;b"), undefined);
  });

  const files = (procfile: string, python: AppFiles["python"] = {}): AppFiles => ({
    dir: "../notes",
    procfile,
    python,
  });
  const noProcesses = () => withKeys(baseRaw(), { "app.processes": undefined });

  it("gives the processes and the migrate command when the stack sets neither", () => {
    const c = parseStackConfig(noProcesses(), {
      ...baseCtx(),
      appFiles: files(
        "release: alembic upgrade head\nweb: uvicorn notes.main:app --port $PORT\nworker: python -m notes.worker\n",
      ),
    });
    assert.deepEqual(c.app.processes, [
      { name: "web", command: "uvicorn notes.main:app --port $PORT", kind: "web" },
      { name: "worker", command: "python -m notes.worker", kind: "worker" },
    ]);
    assert.equal(c.database.migrate, "alembic upgrade head");
  });

  it("the stack's processes and migrate win over the Procfile", () => {
    const c = parseStackConfig(withKeys(baseRaw(), { "database.migrate": "make migrate" }), {
      ...baseCtx(),
      appFiles: files("release: alembic upgrade head\nweb: other\n"),
    });
    assert.equal(c.app.processes[0].command, "gunicorn app:app --bind 127.0.0.1:$PORT");
    assert.equal(c.database.migrate, "make migrate");
  });

  it("apphost:database.migrate true, as pulumi config set --path stores it (a boolean), is the shell's true; false is refused", () => {
    const c = parseStackConfig(withKeys(baseRaw(), { "database.migrate": true }), {
      ...baseCtx(),
      appFiles: files("release: alembic upgrade head\nweb: other\n"),
    });
    assert.equal(c.database.migrate, "true");
    assert.deepEqual(configProblems(withKeys(baseRaw(), { "database.migrate": false }), baseCtx()), [
      "apphost:database.migrate: expected a shell command, got false; set it with: pulumi config set --path 'apphost:database.migrate' \"alembic upgrade head\"",
    ]);
  });

  it("refuses a chained web line with the split to make, and every other problem with it", () => {
    assert.deepEqual(
      configProblems(noProcesses(), {
        ...baseCtx(),
        appFiles: files("web: flask db upgrade && gunicorn app:app\nbad line\nbackup: x\n", {
          Pipfile: '[packages]\nflask = "*"\n',
        }),
      }),
      [
        'apphost:app.processes (from ../notes/Procfile): line 2 "bad line" is not "name: command"; fix the line, or set apphost:app.processes in the stack',
        'apphost:app.processes (from ../notes/Procfile): line 1: the web process chains commands ("flask db upgrade && gunicorn app:app"); apphost runs the migration once per release, before traffic moves, so split it: "release: flask db upgrade" and "web: gunicorn app:app" in the Procfile, or set apphost:app.processes.web to "gunicorn app:app" and apphost:database.migrate to "flask db upgrade" (apphost:app.processes replaces the whole Procfile, so list backup there too)',
        "apphost:app.requirements: ../notes: the app has a Pipfile and no Pipfile.lock: run `pipenv lock` and commit Pipfile.lock (apphost installs exactly what it pins)",
      ],
    );
  });

  it("a chained web line: migrations go to release:, the steps that prepare the code to app.build (microblog's Procfile)", () => {
    assert.deepEqual(
      configProblems(noProcesses(), {
        ...baseCtx(),
        appFiles: files(
          "web: flask db upgrade; flask translate compile; gunicorn microblog:app\nworker: rq worker microblog-tasks\n",
          { "requirements.txt": "flask\n" },
        ),
      }),
      [
        'apphost:app.processes (from ../notes/Procfile): line 1: the web process chains commands ("flask db upgrade; flask translate compile; gunicorn microblog:app"); split it: ' +
          'the migration "flask db upgrade" runs once per release, before traffic moves ("release: flask db upgrade" in the Procfile, or apphost:database.migrate); ' +
          '"flask translate compile" prepares the code, so it belongs in every release on every host (apphost:app.build); ' +
          'the web process is "web: gunicorn microblog:app" (or apphost:app.processes.web; apphost:app.processes replaces the whole Procfile, so list worker there too)',
      ],
    );
  });

  it("a chained web line whose migration already runs once per release: drop it, naming where it is set", () => {
    const microblog =
      "web: flask db upgrade; flask translate compile; gunicorn microblog:app\nworker: rq worker microblog-tasks\n";
    assert.deepEqual(
      configProblems(withKeys(noProcesses(), { "database.migrate": "flask db upgrade" }), {
        ...baseCtx(),
        appFiles: files(microblog, { "requirements.txt": "flask\n" }),
      }),
      [
        'apphost:app.processes (from ../notes/Procfile): line 1: the web process chains commands ("flask db upgrade; flask translate compile; gunicorn microblog:app"); ' +
          'the migration "flask db upgrade" already runs once per release, before traffic moves (apphost:database.migrate, "flask db upgrade"), so drop it from the web line; ' +
          '"flask translate compile" prepares the code, so it belongs in every release on every host (apphost:app.build); ' +
          'the web process is "web: gunicorn microblog:app" (or apphost:app.processes.web; apphost:app.processes replaces the whole Procfile, so list worker there too)',
      ],
    );
    assert.deepEqual(
      configProblems(noProcesses(), {
        ...baseCtx(),
        appFiles: files(
          "release: alembic upgrade head\nweb: alembic upgrade head && uvicorn app:app --port $PORT\n",
          {
            "requirements.txt": "fastapi\n",
          },
        ),
      }),
      [
        'apphost:app.processes (from ../notes/Procfile): line 2: the web process chains commands ("alembic upgrade head && uvicorn app:app --port $PORT"); ' +
          `the migration "alembic upgrade head" already runs once per release, before traffic moves (the Procfile's release: line, "alembic upgrade head"), so drop it from the web line; ` +
          'the web process is "web: uvicorn app:app --port $PORT" (or apphost:app.processes.web)',
      ],
    );
  });

  it("a web script that migrates as it starts is refused, with the split to make (babybuddy's web: bash Procfile.sh)", () => {
    // babybuddy at fa8bf4cd: its Procfile.sh, as written.
    const procfileSh =
      "#!/bin/bash\n\npython manage.py migrate\n\ngunicorn babybuddy.wsgi:application --timeout 30 --log-file -";
    const withScript = (procfile: string, from: "config" | "procfile"): AppFiles => ({
      ...files(procfile, { "requirements.txt": "django\n" }),
      webScript: { path: "Procfile.sh", text: procfileSh, from },
    });
    const why =
      'the web process runs Procfile.sh, which migrates the database each time a web instance starts (line 3: "python manage.py migrate"); ' +
      "apphost migrates once per release, after a backup and before traffic moves, while the live instance serves on: ";
    assert.deepEqual(
      configProblems(noProcesses(), {
        ...baseCtx(),
        appFiles: withScript("web: bash Procfile.sh\nworker: python manage.py qcluster\n", "procfile"),
      }),
      [
        `apphost:app.processes (from ../notes/Procfile): ${why}` +
          'set apphost:database.migrate to "python manage.py migrate" (or a "release:" line in the Procfile), and ' +
          'set apphost:app.processes.web to the server alone ("gunicorn babybuddy.wsgi:application --timeout 30 --log-file -"); ' +
          "apphost:app.processes replaces the whole Procfile, so list worker there too",
      ],
    );
    // Set in the stack, with the migration already once per release: the web process alone is left to change.
    assert.deepEqual(
      configProblems(
        withKeys(baseRaw(), {
          "app.processes": { web: "bash Procfile.sh" },
          "database.migrate": "python manage.py migrate --noinput",
        }),
        { ...baseCtx(), appFiles: withScript("web: gunicorn app:app\n", "config") },
      ),
      [
        `apphost:app.processes.web: ${why}` +
          'apphost:database.migrate already runs "python manage.py migrate --noinput" so; ' +
          'set apphost:app.processes.web to the server alone ("gunicorn babybuddy.wsgi:application --timeout 30 --log-file -")',
      ],
    );
  });

  it("readAppFiles reads the script the web process runs, from the stack's processes or the Procfile", () => {
    const dir = mkdtempSync(join(tmpdir(), "apphost-webscript-"));
    try {
      writeFileSync(join(dir, "Procfile"), "web: bash Procfile.sh\n");
      writeFileSync(join(dir, "Procfile.sh"), "python manage.py migrate\ngunicorn app:app\n");
      writeFileSync(join(dir, "big.sh"), "#".repeat(65537));
      assert.deepEqual(readAppFiles({ source: dir }, "/")?.webScript, {
        path: "Procfile.sh",
        text: "python manage.py migrate\ngunicorn app:app\n",
        from: "procfile",
      });
      assert.equal(
        readAppFiles({ source: dir, processes: { web: { command: "sh Procfile.sh" } } }, "/")?.webScript
          ?.from,
        "config",
      );
      for (const web of ["bash big.sh", "bash missing.sh", "gunicorn app:app"])
        assert.equal(readAppFiles({ source: dir, processes: { web } }, "/")?.webScript, undefined, web);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a web process whose gunicorn config file binds a port of its own is refused, naming the file and the fix", () => {
    // BookWyrm db40a61c9's gunicorn.conf.py, which gunicorn reads from the directory it starts in.
    const bookwyrm =
      'import multiprocessing\nfrom environs import Env\n\nbind = "[::]:8000"\nworkers = 2\nworker_class = "gthread"\n';
    const app = (web: string, conf: string, from: "config" | "procfile" = "config"): AppFiles => ({
      dir: "../bookwyrm",
      python: { "requirements.txt": "gunicorn\n" },
      gunicornConf: { path: gunicornConfigPath(web)!, text: conf, from },
    });
    const web = "gunicorn bookwyrm.wsgi:application";
    const raw = (env: Record<string, string> = {}) =>
      withKeys(baseRaw(), { "app.processes": { web: { command: web } }, "app.env": env });
    assert.deepEqual(configProblems(raw(), { ...baseCtx(), appFiles: app(web, bookwyrm) }), [
      'apphost:app.processes.web: gunicorn reads gunicorn.conf.py, whose bind = "[::]:8000" listens on port 8000 whatever $PORT says; ' +
        "each release starts its web instance on the other of two ports (apphost:app.basePort and the one after it) and passes that port in $PORT, " +
        "so a fixed port collides with the instance still serving and the release fails its health gate: " +
        'add "--bind 127.0.0.1:$PORT" to the web command, which gunicorn takes over the file\'s',
    ]);
    // A list over several lines; a bind that reads the environment; none; GUNICORN_CMD_ARGS binding.
    assert.match(
      gunicornBindProblem("conf/gunicorn.py", 'bind = [\n    "127.0.0.1:8000",\n]\n') ?? "",
      /^gunicorn reads conf\/gunicorn\.py, whose bind = \[ "127\.0\.0\.1:8000", \] listens on port 8000 /,
    );
    for (const ok of [
      "bind = f\"0.0.0.0:{os.environ.get('PORT', 8000)}\"\n",
      "bind = os.getenv('BIND', '127.0.0.1:8000')\n",
      "workers = 2\n",
      '    bind = "[::]:8000"  # indented: inside a block, not the module\'s\n',
    ])
      assert.equal(gunicornBindProblem("gunicorn.conf.py", ok), undefined, ok);
    assert.doesNotThrow(() =>
      parseStackConfig(raw({ GUNICORN_CMD_ARGS: "--bind 127.0.0.1:$PORT" }), {
        ...baseCtx(),
        appFiles: app(web, bookwyrm),
      }),
    );
    // Which file gunicorn reads, for which command.
    assert.deepEqual(
      [
        web,
        "WEB_CONCURRENCY=2 gunicorn -c conf/g.py app:app",
        "cd api && exec .venv/bin/gunicorn --config=g.py app:app",
        "gunicorn --bind 127.0.0.1:$PORT app:app",
        "gunicorn -b :8000 app:app",
        "gunicorn -c python:conf.gunicorn app:app",
        "gunicorn -c ../g.py app:app",
        "uvicorn app:app --port $PORT",
      ].map(gunicornConfigPath),
      ["gunicorn.conf.py", "conf/g.py", "api/g.py", undefined, undefined, undefined, undefined, undefined],
    );
    // readAppFiles: the file the web command's gunicorn reads, when there is one.
    const dir = mkdtempSync(join(tmpdir(), "apphost-gunicorn-"));
    try {
      writeFileSync(join(dir, "gunicorn.conf.py"), bookwyrm);
      writeFileSync(join(dir, "Procfile"), `web: ${web}\n`);
      assert.deepEqual(readAppFiles({ source: dir }, "/")?.gunicornConf, {
        path: "gunicorn.conf.py",
        text: bookwyrm,
        from: "procfile",
      });
      assert.equal(
        readAppFiles({ source: dir, processes: { web: `${web} -c missing.py` } }, "/")?.gunicornConf,
        undefined,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("webScriptPath and scriptMigrations: the script a web command runs, and the lines of it that migrate", () => {
    assert.deepEqual(
      [
        "bash Procfile.sh",
        "sh bin/start",
        "./start.sh",
        "start.sh --port $PORT",
        "exec bash run",
        "bash ../x.sh",
        "gunicorn app:app",
        "bash -c 'x'",
      ].map(webScriptPath),
      ["Procfile.sh", "bin/start", "start.sh", "start.sh", "run", undefined, undefined, undefined],
    );
    assert.deepEqual(
      scriptMigrations(
        [
          "set -e",
          "# python manage.py migrate (a comment)",
          'echo "python manage.py migrate"',
          "python manage.py migrate --check",
          "alembic -c conf/alembic.ini upgrade head",
          "cd api && npx knex migrate:latest",
          "python manage.py collectstatic --noinput",
          "piccolo migrations forwards session_auth",
          "piccolo migrations check",
          "npx drizzle-kit migrate",
          "exec uvicorn app:app --port $PORT",
        ].join("\n"),
      ),
      {
        migrations: [
          { line: 5, command: "alembic -c conf/alembic.ini upgrade head" },
          { line: 6, command: "cd api && npx knex migrate:latest" },
          { line: 8, command: "piccolo migrations forwards session_auth" },
          { line: 10, command: "npx drizzle-kit migrate" },
        ],
        server: "uvicorn app:app --port $PORT",
      },
    );
  });

  it("a web line that only cds into the app's directory first is the server, not a chain; a chain after it keeps the cd", () => {
    // examples/npm-workspace's Procfile, as monorepos write it for Heroku.
    const c = parseStackConfig(noProcesses(), {
      ...baseCtx(),
      appFiles: files("web: cd api && node server.js\n"),
    });
    assert.deepEqual(c.app.processes, [{ name: "web", command: "cd api && node server.js", kind: "web" }]);
    assert.deepEqual(
      configProblems(noProcesses(), {
        ...baseCtx(),
        appFiles: files("web: cd api && npm run migrate && node server.js\n"),
      }),
      [
        'apphost:app.processes (from ../notes/Procfile): line 1: the web process chains commands ("cd api && npm run migrate && node server.js"); ' +
          'apphost runs the migration once per release, before traffic moves, so split it: "release: cd api && npm run migrate" and "web: cd api && node server.js" in the Procfile, ' +
          'or set apphost:app.processes.web to "cd api && node server.js" and apphost:database.migrate to "cd api && npm run migrate"',
      ],
    );
  });

  it("a Procfile web line left on its server's default port is refused, naming the Procfile and the option to add", () => {
    assert.deepEqual(
      configProblems(noProcesses(), {
        ...baseCtx(),
        appFiles: files("release: alembic upgrade head\nweb: uvicorn app.main:app --workers 4\n", {
          "requirements.txt": "fastapi\n",
        }),
      }),
      [
        "apphost:app.processes (from ../notes/Procfile).web.command: listens on uvicorn's default port, 8000, whatever $PORT says; " +
          "each release starts its web instance on the other of two ports (apphost:app.basePort and the one after it) and passes that port in $PORT, " +
          'so a fixed port collides with the instance still serving and the release fails its health gate: add "--port $PORT"',
      ],
    );
  });

  it("checks Procfile names like the stack's (reserved names, one web)", () => {
    assert.throws(
      () => parseStackConfig(noProcesses(), { ...baseCtx(), appFiles: files("worker: python w.py\n") }),
      /apphost:app\.processes \(from \.\.\/notes\/Procfile\): expected exactly one process of kind "web"/,
    );
    assert.throws(
      () => parseStackConfig(noProcesses(), { ...baseCtx(), appFiles: files("web: x\nbackup: y\n") }),
      /apphost:app\.processes \(from \.\.\/notes\/Procfile\)\.backup: "backup" is taken/,
    );
  });

  it("readAppFiles reads the Procfile and the Python files of apphost:app.source", () => {
    const dir = mkdtempSync(join(tmpdir(), "apphost-app-"));
    try {
      writeFileSync(join(dir, "Procfile"), "web: x\n");
      writeFileSync(join(dir, "uv.lock"), "lock\n");
      const f = readAppFiles({ source: "." }, dir);
      assert.deepEqual(f, {
        dir: ".",
        procfile: "web: x\n",
        python: { "uv.lock": "lock\n" },
      });
      // A package.json without dependencies or a start script is tooling (bakerydemo's linters)...
      const kind = (text: string) => {
        writeFileSync(join(dir, "package.json"), text);
        return readAppFiles({ source: "." }, dir)?.packageJson;
      };
      assert.equal(kind("{}\n"), "tooling");
      assert.equal(
        kind('{"devDependencies": {"eslint": "^9"}, "scripts": {"lint": "eslint ."}, "dependencies": {}}'),
        "tooling",
      );
      // ...one with either, or one that is not JSON, may be the app.
      assert.equal(kind('{"dependencies": {"express": "^5"}}'), "app");
      assert.equal(kind('{"scripts": {"start": "node server.js"}}'), "app");
      assert.equal(kind("{ not json"), "app");
      assert.equal(readAppFiles({ source: "missing" }, dir), undefined);
      assert.equal(readAppFiles(undefined, dir), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("apphost:app.runtime from the app directory", () => {
  const examples = join(__dirname, "..", "..", "examples");
  const app = (name: string) => readAppFiles({ source: name }, examples)!;
  const withoutRuntime = () => withKeys(baseRaw(), { "app.runtime": undefined, "app.processes": undefined });
  const parse = (files: AppFiles, raw = withoutRuntime()) =>
    parseStackConfig(raw, { ...baseCtx(), appFiles: files });

  it("python for Python's dependency files without a package.json, node for a package.json alone", () => {
    const sample = parse(app("sample-app"));
    assert.equal(sample.app.runtime, "python");
    assert.equal(sample.app.pythonDeps?.manager, "pip");
    const workspace = parse(app("uv-workspace/backend")); // its uv.lock is the workspace's, above it
    assert.equal(workspace.app.runtime, "python");
    assert.equal(workspace.app.pythonDeps?.manager, "uv");
    const todo = parse(app("node-todo"));
    assert.equal(todo.app.runtime, "node");
    assert.equal(todo.app.requirements, "package-lock.json");
  });

  it("a runtime the stack sets wins over the files; node needs a package.json", () => {
    const node = withKeys(withoutRuntime(), { "app.runtime": "node" });
    const c = parse({ ...app("sample-app"), packageJson: "tooling" }, node);
    assert.equal(c.app.runtime, "node");
    assert.deepEqual(configProblems(node, { ...baseCtx(), appFiles: app("sample-app") }), [
      "apphost:app.source: sample-app has no package.json, which the install of a Node app (apphost:app.runtime) reads; point apphost:app.source at the app's directory, or set the runtime the app has",
    ]);
  });

  it("a pyproject.toml of tool settings alone names no dependencies: apphost:app.requirements is asked for, with the app's requirements files (sinisaos/litestar-piccolo)", () => {
    assert.deepEqual(toolOnlyPyproject("[tool.ruff]\nline-length = 79\n\n[tool.coverage.run]\nomit = []\n"), [
      "[tool.ruff]",
      "[tool.coverage]",
    ]);
    assert.deepEqual(toolOnlyPyproject("# nothing\n"), []);
    for (const declares of [
      '[project]\nname = "x"\n',
      '[build-system]\nrequires = ["setuptools"]\n',
      '[tool.poetry]\nname = "x"\n',
      "[dependency-groups]\nmain = []\n",
      "[tool.ruff\n", // does not parse: pip says why
    ])
      assert.equal(toolOnlyPyproject(declares), undefined, declares);
    const dir = mkdtempSync(join(tmpdir(), "apphost-app-"));
    const write = (file: string, text = "") => {
      mkdirSync(join(dir, file, ".."), { recursive: true });
      writeFileSync(join(dir, file), text);
    };
    const problems = (extra: Record<string, unknown> = {}) =>
      configProblems(withKeys(withoutRuntime(), { "app.runtime": "python", ...extra }), {
        ...baseCtx(),
        appFiles: readAppFiles({ source: "backend" }, dir),
      }).filter((p) => p.startsWith("apphost:app.requirements"));
    try {
      write("backend/pyproject.toml", "[tool.ruff]\nline-length = 79\n\n[tool.black]\nline-length = 79\n");
      write("backend/main.py", "app = None\n");
      const told =
        "apphost:app.requirements: backend's only dependency file is a pyproject.toml that declares no project " +
        "(no [project], [build-system] or [tool.poetry]; only tool settings: [tool.ruff], [tool.black]), so nothing " +
        "names the packages to install; ";
      assert.deepEqual(problems(), [
        told + "list them in a requirements.txt, or declare them in pyproject.toml's [project] dependencies",
      ]);
      // Its requirements files, production ones first, tests' last: the first is the example.
      write("backend/requirements/test-requirements.txt", "pytest\n");
      write("backend/requirements/requirements.txt", "litestar\n");
      write("backend/requirements-dev.txt", "ruff\n");
      write("backend/requirements/notes.md", "");
      assert.deepEqual(problems(), [
        told +
          "name the file that lists them (backend has requirements/requirements.txt, requirements-dev.txt, " +
          "requirements/test-requirements.txt): set it with: pulumi config set --path 'apphost:app.requirements' " +
          "requirements/requirements.txt",
      ]);
      write("backend/requirements/prod.txt", "-r requirements.txt\n");
      assert.match(problems()[0], / requirements\/prod\.txt$/);
      // Set, or with a setup.py for pip install . to build, or a requirements.txt: nothing to ask.
      assert.deepEqual(problems({ "app.requirements": "requirements/requirements.txt" }), []);
      write("backend/setup.py", "from setuptools import setup\nsetup()\n");
      assert.deepEqual(problems(), []);
      rmSync(join(dir, "backend/setup.py"));
      write("backend/requirements.txt", "litestar\n");
      assert.deepEqual(problems(), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("both kinds of files, or neither: the key is asked for, naming what was found", () => {
    const both: AppFiles = {
      dir: "../shop",
      procfile: "web: gunicorn shop.wsgi\n",
      python: { "requirements.txt": "django\n", "pyproject.toml": "[tool.black]\n" },
      packageJson: "app",
    };
    assert.deepEqual(configProblems(withoutRuntime(), { ...baseCtx(), appFiles: both }), [
      `apphost:app.runtime: missing (how dependencies are installed; ../shop has requirements.txt and pyproject.toml for Python, and a package.json with dependencies or a start script: say which installs the app (apphost:app.build can install the other's, as "npm ci --omit=dev && ..." for a Python app whose static files come from npm)); expected one of "python", "node"; set it with: pulumi config set --path 'apphost:app.runtime' python`,
    ]);
    // apphost:app.python says the runtime is python; it is not reported while the runtime is undecided.
    const managed = withKeys(withoutRuntime(), { "app.python": "managed" });
    assert.deepEqual(configProblems(managed, { ...baseCtx(), appFiles: both }), [
      `apphost:app.runtime: missing (how dependencies are installed; ../shop has requirements.txt and pyproject.toml for Python, and a package.json with dependencies or a start script: say which installs the app (apphost:app.build can install the other's, as "npm ci --omit=dev && ..." for a Python app whose static files come from npm)); expected one of "python", "node"; set it with: pulumi config set --path 'apphost:app.runtime' python`,
    ]);
    const node = withKeys(managed, { "app.runtime": "node" });
    assert.deepEqual(configProblems(node, { ...baseCtx(), appFiles: both }), [
      "apphost:app.python: only used with apphost:app.runtime python; remove it",
    ]);
    // The web command's program decides, when it says: cookiecutter-flask's Procfile (the nodejs and python
    // buildpacks, a webpack build beside a gunicorn app), a Node server beside a Python tool's files.
    assert.deepEqual(detectRuntime({ ...both, webRuntime: "python" }), { runtime: "python" });
    assert.deepEqual(detectRuntime({ ...both, webRuntime: "node" }), { runtime: "node" });
    for (const [command, runtime] of [
      ["gunicorn my_flask_app.app:create_app\\(\\) -b 0.0.0.0:$PORT -w 3", "python"],
      ["WEB_CONCURRENCY=2 exec .venv/bin/uvicorn app.main:app --port $PORT", "python"],
      ["cd backend && python3.12 -m gunicorn app:app", "python"],
      ["poetry run hypercorn app:app", "python"],
      ["cd api && node server.js", "node"],
      ["NODE_ENV=production yarn start", "node"],
      ["bash start.sh", undefined],
      ["bin/start-web", undefined],
    ] as const)
      assert.equal(commandRuntime(command), runtime, command);
    const dir = mkdtempSync(join(tmpdir(), "apphost-runtime-"));
    try {
      writeFileSync(join(dir, "requirements.txt"), "flask\n");
      writeFileSync(join(dir, "package.json"), '{"dependencies": {"webpack": "^5.101.1"}}');
      writeFileSync(
        join(dir, "Procfile"),
        "release: flask db upgrade\nweb: gunicorn app:app -b 0.0.0.0:$PORT\n",
      );
      assert.equal(readAppFiles({ source: dir }, "/")?.webRuntime, "python");
      // apphost:app.processes, when set, is the web command read.
      assert.equal(
        readAppFiles({ source: dir, processes: { web: "node server.js" } }, "/")?.webRuntime,
        "node",
      );
      assert.equal(parse(readAppFiles({ source: dir }, "/")!, withoutRuntime()).app.runtime, "python");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // A package.json that is only tooling leaves the app to the Python files, as wagtail/bakerydemo's linters do.
    assert.deepEqual(detectRuntime({ ...both, packageJson: "tooling" }), { runtime: "python" });
    assert.deepEqual(detectRuntime({ ...both, python: {}, packageJson: "tooling" }), { runtime: "node" });
    const neither: AppFiles = {
      dir: "../shop",
      procfile: "web: ./server\n",
      python: { ".python-version": "3.12\n" },
    };
    assert.deepEqual(configProblems(withoutRuntime(), { ...baseCtx(), appFiles: neither }), [
      `apphost:app.runtime: missing (how dependencies are installed; ../shop has no requirements.txt, pyproject.toml, Python lock file or package.json to tell); expected one of "python", "node"; set it with: pulumi config set --path 'apphost:app.runtime' python`,
    ]);
  });
});

describe("apphost:database.revision from the migrate command", () => {
  it("sequelize-cli's: the last applied migration and the count from db:migrate:status, under bash", () => {
    // What sequelize-cli 6.6 printed on the conduit trial's sandbox (its header, then one line per migration).
    const status = [
      "",
      "\u001b[4mSequelize CLI [Node: 18.20.4, CLI: 6.6.0, ORM: 6.29.3]\u001b[24m",
      "",
      'Loaded configuration file "config/config.js".',
      'Using environment "production".',
      "up 20220129140530-create-tag.js",
      "up 20220129141319-create-comment.js",
      "down 20260101000000-add-location.js",
    ].join("\n");
    const dir = mkdtempSync(join(tmpdir(), "apphost-sequelize-"));
    try {
      const cli = join(dir, "sequelize");
      writeFileSync(
        cli,
        `#!/bin/sh\nif [ -f ${dir}/fail ]; then echo "ERROR: connect ECONNREFUSED" >&2; exit 1; fi\ncat ${dir}/status\n`,
        { mode: 0o755 },
      );
      const run = (text: string) => {
        writeFileSync(join(dir, "status"), text);
        return spawnSync("bash", ["-c", `set -e; ${defaultRevision("sequelize db:migrate")}`], {
          encoding: "utf8",
          env: { PATH: `${dir}:${process.env.PATH}` },
        });
      };
      assert.deepEqual(
        [run(status).stdout, run(status).status],
        ["20220129141319-create-comment.js (2 applied)\n", 0],
      );
      assert.equal(run(status.replace(/^up /gm, "down ")).stdout, "none\n");
      writeFileSync(join(dir, "fail"), "");
      const failed = run(status);
      assert.deepEqual([failed.status, failed.stdout], [1, ""], "a failed status is no revision");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const DJANGO =
    `shell -v 0 -c "from django.db import connection; from django.db.migrations.recorder import MigrationRecorder; ` +
    `r = MigrationRecorder(connection); m = r.migration_qs.order_by('id').last() if r.has_table() else None; ` +
    `print(f'{m.app}.{m.name} ({r.migration_qs.count()} applied)' if m else 'none')"`;

  const sequelize = (status: string) =>
    `s=$(${status}) && printf '%s\\n' "$s" | awk '$1 == "up" { n++; last = $2 } END { print n ? last " (" n " applied)" : "none" }'`;

  it("the tool's own revision command for Alembic, Flask-Migrate, Django, sequelize-cli and knex, none for anything else", () => {
    const table: Array<[string, string]> = [
      ["alembic upgrade head", "alembic current"],
      ["alembic -c conf/alembic.ini upgrade head", "alembic -c conf/alembic.ini current"],
      ["flask db upgrade", "flask db current"],
      ["flask --app microblog db upgrade", "flask --app microblog db current"],
      ["alembic upgrade +1", ""],
      // A chain: the revision of its one step that has one (a seed beside it changes none).
      ["alembic upgrade head && python seed.py", "alembic current"],
      ["python manage.py migrate --noinput", `python manage.py ${DJANGO}`],
      ["python3 manage.py migrate", `python3 manage.py ${DJANGO}`],
      ["./manage.py migrate --no-input", `./manage.py ${DJANGO}`],
      ["django-admin migrate", `django-admin ${DJANGO}`],
      ["python manage.py migrate polls 0002", ""],
      ["python manage.py migrate && python manage.py loaddata seed", `python manage.py ${DJANGO}`],
      // linkding's bootstrap, as its Docker image runs it.
      [
        "mkdir -p data/favicons && python manage.py generate_secret_key && python manage.py migrate && python manage.py enable_wal && python manage.py migrate_tasks",
        `python manage.py ${DJANGO}`,
      ],
      // Two steps with a revision each: which one would say is not known.
      ["alembic upgrade head && flask db upgrade", ""],
      ["npm run migrate", ""],
      ["", ""],
      // A monorepo's app in a directory of its own: the same revision, from there.
      ["cd backend && alembic upgrade head", "cd backend && alembic current"],
      ["cd backend && python manage.py migrate", `cd backend && python manage.py ${DJANGO}`],
      ["cd backend && npm run migrate", ""],
      // The web line's rule for a leading cd (whereAndSteps): any separator after it, several of them.
      ["cd backend; alembic upgrade head", "cd backend && alembic current"],
      ["cd apps && cd api && flask db upgrade", "cd apps && cd api && flask db current"],
      ["cd backend && alembic upgrade head && python seed.py", "cd backend && alembic current"],
      ["npx sequelize-cli db:migrate", sequelize("npx sequelize-cli db:migrate:status")],
      [
        "cd backend && npx sequelize-cli db:migrate --env production",
        `cd backend && ${sequelize("npx sequelize-cli db:migrate:status --env production")}`,
      ],
      ["sequelize db:migrate", sequelize("sequelize db:migrate:status")],
      ["npx sequelize-cli db:migrate:undo", ""],
      [
        "npx knex --knexfile config/knexfile.js migrate:latest",
        "npx knex --knexfile config/knexfile.js migrate:currentVersion",
      ],
      ["knex migrate:latest --env production", "knex migrate:currentVersion --env production"],
      ["npx knex migrate:up", ""],
    ];
    assert.deepEqual(
      table.map(([migrate]) => [migrate, defaultRevision(migrate)]),
      table,
    );
  });

  it("a Procfile's release line or apphost:database.migrate brings it; a revision the stack sets wins", () => {
    const noDb = () => withKeys(baseRaw(), { "database.migrate": undefined, "database.revision": undefined });
    const procfile: AppFiles = {
      dir: "../blog",
      procfile: "release: flask db upgrade\nweb: gunicorn blog:app\n",
      python: {},
    };
    const fromProcfile = parseStackConfig(withKeys(noDb(), { "app.processes": undefined }), {
      ...baseCtx(),
      appFiles: procfile,
    });
    assert.deepEqual(
      [fromProcfile.database.migrate, fromProcfile.database.revision],
      ["flask db upgrade", "flask db current"],
    );
    const set = parseStackConfig(withKeys(noDb(), { "database.migrate": "alembic upgrade head" }), baseCtx());
    assert.equal(set.database.revision, "alembic current");
    const own = parseStackConfig(
      withKeys(noDb(), { "database.migrate": "alembic upgrade head", "database.revision": "alembic heads" }),
      baseCtx(),
    );
    assert.equal(own.database.revision, "alembic heads");
    const django = parseStackConfig(
      withKeys(noDb(), { "database.migrate": "python manage.py migrate" }),
      baseCtx(),
    );
    assert.equal(django.database.revision, `python manage.py ${DJANGO}`);
  });

  it("a Django migration's manage.py is what the install phase's SECRET_KEY check runs; another tool's has none", () => {
    const table: [string, string | undefined][] = [
      ["python manage.py migrate", "python manage.py"],
      ["python3 manage.py migrate --noinput", "python3 manage.py"],
      ["./manage.py migrate", "./manage.py"],
      ["django-admin migrate", "django-admin"],
      ["cd backend && python manage.py migrate", "cd backend && python manage.py"],
      ["python manage.py migrate && python manage.py loaddata seed", "python manage.py"],
      ["python manage.py migrate catalog", undefined],
      ["alembic upgrade head", undefined],
      ["flask db upgrade", undefined],
    ];
    assert.deepEqual(
      table.map(([migrate]) => [migrate, djangoCommand(migrate)]),
      table,
    );
  });

  it("an alembic migration's directory and ini, relative to the release, for its URL hint; another tool's none", () => {
    type Found = { dir: string; ini: string } | undefined;
    const table: [string, Found][] = [
      ["alembic upgrade head", { dir: ".", ini: "alembic.ini" }],
      ["cd backend && alembic upgrade head", { dir: "backend", ini: "backend/alembic.ini" }],
      ["cd src && alembic -c conf/alembic.ini upgrade heads", { dir: "src", ini: "src/conf/alembic.ini" }],
      ["alembic --config db/alembic.ini upgrade head && python seed.py", { dir: ".", ini: "db/alembic.ini" }],
      ["alembic -c ../alembic.ini upgrade head", undefined],
      ["alembic upgrade head && alembic -n other upgrade head", undefined],
      ["flask db upgrade", undefined],
      ["python manage.py migrate", undefined],
    ];
    assert.deepEqual(
      table.map(([migrate]) => [migrate, alembicConfig(migrate)]),
      table,
    );
  });

  it("where a migration's alembic revisions live: alembic's ini, or Flask-Migrate's directory; another tool's none", () => {
    type Found = ReturnType<typeof alembicMigration>;
    const table: [string, Found][] = [
      ["cd src && alembic upgrade head", { dir: "src", ini: "src/alembic.ini" }],
      ["flask db upgrade", { dir: ".", scripts: "migrations" }],
      ["cd app && flask --app microblog db upgrade", { dir: "app", scripts: "app/migrations" }],
      [
        "flask db upgrade -d db/migrations && flask translate compile",
        { dir: ".", scripts: "db/migrations" },
      ],
      ["flask db upgrade --directory ../migrations", undefined],
      ["flask db upgrade && alembic upgrade head", undefined],
      ["flask db migrate", undefined],
      ["python manage.py migrate", undefined],
    ];
    assert.deepEqual(
      table.map(([migrate]) => [migrate, alembicMigration(migrate)]),
      table,
    );
  });

  it("a package.json script its manager runs (npm run migrate) has the revision of the command the script runs", () => {
    const scripts = {
      migrate: "knex migrate:latest",
      "db:migrate": "sequelize-cli db:migrate --env production",
      seed: "node seed.js",
      setup: "knex migrate:latest && node seed.js",
    };
    const table: [string, string][] = [
      ["npm run migrate", "knex migrate:currentVersion"],
      ["npm run-script migrate", "knex migrate:currentVersion"],
      ["yarn migrate", "knex migrate:currentVersion"],
      ["yarn run migrate", "knex migrate:currentVersion"],
      ["pnpm run migrate", "knex migrate:currentVersion"],
      ["pnpm migrate", "knex migrate:currentVersion"],
      ["npm run db:migrate", sequelize("sequelize-cli db:migrate:status --env production")],
      ["npm run setup", "knex migrate:currentVersion"],
      ["npm run seed", ""],
      ["npm run missing", ""],
      ["npm run migrate && node seed.js", "knex migrate:currentVersion"],
      // Another directory has its own package.json: the top one's scripts are not its.
      ["cd backend && npm run migrate", ""],
      ["npm run migrate -- --env production", ""],
    ];
    assert.deepEqual(
      table.map(([migrate]) => [migrate, defaultRevision(migrate, scripts)]),
      table,
    );
    assert.equal(defaultRevision("npm run migrate"), "", "without package.json's scripts");
    const node = parseStackConfig(
      withKeys(baseRaw(), {
        "app.runtime": "node",
        "database.migrate": "npm run migrate",
        "database.revision": undefined,
      }),
      {
        ...baseCtx(),
        appFiles: {
          dir: "../kutt",
          python: {},
          packageJson: "app",
          node: { locks: { "package-lock.json": "{}" }, scripts: { migrate: "knex migrate:latest" } },
        },
      },
    );
    assert.deepEqual(
      [node.database.migrate, node.database.revision],
      ["npm run migrate", "knex migrate:currentVersion"],
    );
  });
});

describe("apphost:app.env references", () => {
  it("accepts the known names, and lists every unknown one or one the database lacks", () => {
    const ok = parseStackConfig(
      withKeys(baseRaw(), {
        "database.kind": "postgres",
        "app.env.POSTGRES_PASSWORD": "${database.password}",
        "app.env.KEY": "${secretKey}",
        "app.env.LIT": "$${NOT_A_REF}",
      }),
      baseCtx(),
    );
    assert.equal(
      ok.app.env.POSTGRES_PASSWORD,
      "${database.password}",
      "kept as written; resolved into the env file only",
    );
    assert.deepEqual(
      configProblems(
        withKeys(baseRaw(), {
          "app.env.A": "${database.user}",
          "app.env.B": "x${secretkey}y${database.port}",
        }),
        baseCtx(),
      ),
      [
        "apphost:app.env.A: ${database.user}: a SQLite database has no user; only ${database.url} (sqlite:///...) and ${database.path} (the file) are set",
        "apphost:app.env.B: ${secretkey} is not a reference apphost knows; use one of ${database.url}, ${database.path}, ${database.host}, ${database.port}, ${database.user}, ${database.password}, ${database.name}, ${secretKey}, ${hostnames}, ${origins}, ${hostname}, ${origin}, ${hostnames.json}, ${origins.json}, or write $${ for a literal ${",
        "apphost:app.env.B: ${database.port}: a SQLite database has no port; only ${database.url} (sqlite:///...) and ${database.path} (the file) are set",
      ],
    );
  });
});

describe("apphost:app.env's ${database.path}", () => {
  it("is SQLite's file alone: another kind is refused, naming it", () => {
    assert.deepEqual(
      configProblems(
        withKeys(baseRaw(), { "database.kind": "postgres", "app.env.FLASK_DATABASE": "${database.path}" }),
        baseCtx(),
      ),
      [
        "apphost:app.env.FLASK_DATABASE: ${database.path}: only a SQLite database is a file (apphost:database.kind is postgres); use ${database.url} or its parts",
      ],
    );
    const sqlite = parseStackConfig(
      withKeys(baseRaw(), { "app.env.FLASK_DATABASE": "${database.path}" }),
      baseCtx(),
    );
    assert.equal(sqlite.app.env.FLASK_DATABASE, "${database.path}");
  });
});

describe("python: a uv workspace above the app (examples/uv-workspace)", () => {
  const backend = join(__dirname, "..", "..", "examples", "uv-workspace", "backend");

  it("is found upwards, as uv finds it, with the lock file and the app's package name", () => {
    const facts = readPythonFacts(backend);
    assert.deepEqual(facts.workspace, { root: "..", member: "backend", package: "backend" });
    const deps = detectPythonDeps(facts);
    assert.equal(deps.manager, "uv");
    assert.equal(deps.manifest, ".apphost-workspace/uv.lock");
    assert.equal(deps.requiresPython, ">=3.10");
  });

  it("the release carries the lock, the members' pyproject.toml and the other members' code, not the app twice", () => {
    const deps = detectPythonDeps(readPythonFacts(backend));
    const a = buildArtifact(backend, {
      runtime: "python",
      pythonDeps: deps,
      excludes: [".venv", "__pycache__"],
    });
    const ws = a.entries
      .filter((e) => e.path.startsWith(".apphost-workspace"))
      .map((e) => `${e.type} ${e.path}`);
    assert.deepEqual(ws, [
      "dir .apphost-workspace",
      "file .apphost-workspace/pyproject.toml",
      "file .apphost-workspace/uv.lock",
      "dir .apphost-workspace/backend",
      "file .apphost-workspace/backend/pyproject.toml",
      "dir .apphost-workspace/libs",
      "dir .apphost-workspace/libs/greeting",
      "file .apphost-workspace/libs/greeting/pyproject.toml",
      "dir .apphost-workspace/libs/greeting/src",
      "dir .apphost-workspace/libs/greeting/src/greeting",
      "file .apphost-workspace/libs/greeting/src/greeting/__init__.py",
    ]);
    assert.ok(a.entries.some((e) => e.path === "app/main.py"));
    // The tar holds the workspace files' bytes.
    const dir = mkdtempSync(join(tmpdir(), "apphost-ws-"));
    try {
      writeFileSync(join(dir, "a.tgz"), a.tarGz);
      execFileSync("tar", ["-xzf", "a.tgz"], { cwd: dir });
      assert.equal(
        execFileSync(
          "cat",
          [join(dir, ".apphost-workspace", "libs", "greeting", "src", "greeting", "__init__.py")],
          {
            encoding: "utf8",
          },
        ),
        'def hello(name: str) -> str:\n    return f"hello, {name}"\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("installs from the member's copy: that package, the other members as copies", () => {
    const deps = detectPythonDeps(readPythonFacts(backend));
    const cmds = pythonInstallCommands(deps, "/srv/x/cache");
    assert.match(cmds[1], /^as_app "\$NEW_DIR\/\.apphost-workspace\/backend" ".* venv --allow-existing/);
    assert.match(
      cmds[2],
      /^as_app "\$NEW_DIR\/\.apphost-workspace\/backend" ".* sync --frozen --no-dev --no-install-project --no-editable --package backend --python/,
    );
  });

  it("the venv key follows the lock and the other members' code", () => {
    const deps = detectPythonDeps(readPythonFacts(backend));
    const a = buildArtifact(backend, { runtime: "python", pythonDeps: deps, excludes: [] });
    const same = buildArtifact(backend, { runtime: "python", pythonDeps: deps, excludes: [] });
    assert.equal(a.requirementsHash, same.requirementsHash);
    const other = requirementsHash(backend, { runtime: "python", pythonDeps: deps }, []);
    assert.notEqual(a.requirementsHash, other);
  });
});

describe("apphost:app.dependencyGroups: pyproject.toml's groups and extras besides the main dependencies", () => {
  // linkding's pyproject.toml in short: a dev group, a postgres group; and an extra.
  const PYPROJECT = [
    "[project]",
    'name = "linkding"',
    'requires-python = ">=3.11"',
    'dependencies = ["django>=6"]',
    "[project.optional-dependencies]",
    'ldap = ["python-ldap"]',
    "[dependency-groups]",
    'dev = ["pytest"]',
    'postgres = ["psycopg[c]>=3.2.9"]',
    "",
  ].join("\n");
  const files = (python: AppFiles["python"]): AppFiles => ({
    dir: "../linkding",
    procfile: "web: gunicorn bookmarks.wsgi\n",
    python,
  });
  const uvApp = files({ "uv.lock": "version = 1\n", "pyproject.toml": PYPROJECT });
  const raw = (groups: unknown) =>
    withKeys(baseRaw(), { "app.requirements": undefined, "app.dependencyGroups": groups });

  it("resolves each name to a group or an extra of the app's manager", () => {
    const c = parseStackConfig(raw(["postgres", "ldap"]), { ...baseCtx(), appFiles: uvApp });
    assert.deepEqual(c.app.pythonDeps?.groups, [
      { name: "postgres", as: "group" },
      { name: "ldap", as: "extra" },
    ]);
    assert.deepEqual(
      offeredGroups(
        "poetry",
        "[tool.poetry.group.pg.dependencies]\npsycopg = '*'\n[tool.poetry.extras]\npgsql = ['psycopg2-binary']\n",
      ),
      new Map([
        ["pg", "group"],
        ["pgsql", "extra"],
      ]),
    );
    assert.equal(offeredGroups("pip", PYPROJECT), undefined);
    // None: the dependencies as they were, and the venv keyed as before.
    assert.equal(
      parseStackConfig(raw(undefined), { ...baseCtx(), appFiles: uvApp }).app.pythonDeps?.groups,
      undefined,
    );
  });

  it("installs them: uv --group/--extra, Poetry --only main,<group> and --extras", () => {
    const uv = pythonInstallCommands(
      {
        ...detectPythonDeps(uvApp.python),
        groups: [
          { name: "postgres", as: "group" },
          { name: "ldap", as: "extra" },
        ],
      },
      "/srv/x/cache",
    );
    assert.match(
      uv.at(-1)!,
      / sync --frozen --no-dev --no-install-project --group postgres --extra ldap --python /,
    );
    const poetry = pythonInstallCommands(
      {
        ...detectPythonDeps({ "poetry.lock": "", "pyproject.toml": "[tool.poetry]\nname = 'mealie'\n" }),
        groups: [
          { name: "postgres", as: "group" },
          { name: "pgsql", as: "extra" },
        ],
      },
      "/srv/x/cache",
    );
    assert.match(
      poetry.at(-1)!,
      / -m poetry install --only main,postgres --extras pgsql --no-root --no-interaction --no-ansi"$/,
    );
  });

  it("keys a venv of its own for each set, none hashing as before", () => {
    const dir = mkdtempSync(join(tmpdir(), "apphost-groups-"));
    try {
      writeFileSync(join(dir, "uv.lock"), "version = 1\n");
      const deps = detectPythonDeps({ "uv.lock": "" });
      const hash = (groups?: PythonDeps["groups"]) =>
        requirementsHash(dir, { runtime: "python", pythonDeps: { ...deps, ...(groups ? { groups } : {}) } });
      const none = hash();
      assert.equal(hash([]), none);
      const pg = hash([{ name: "postgres", as: "group" }]);
      assert.notEqual(pg, none);
      assert.notEqual(hash([{ name: "postgres", as: "extra" }]), pg);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("knows the main dependencies by normalized name with their extras, uv's and Poetry's, python aside", () => {
    assert.deepEqual(
      mainPackages(
        '[project]\ndependencies = ["FastAPI[standard, all]>=0.128", "sqlalchemy[asyncio] ; python_version >= \'3.9\'", "Py_JWT"]\n',
      ),
      new Map([
        ["fastapi", ["standard", "all"]],
        ["sqlalchemy", ["asyncio"]],
        ["py-jwt", []],
      ]),
    );
    assert.deepEqual(
      mainPackages(
        "[tool.poetry.dependencies]\npython = '^3.13'\nuvicorn = { version = '^0.38', extras = ['standard'] }\nalembic = '^1.17'\n",
      ),
      new Map([
        ["uvicorn", ["standard"]],
        ["alembic", []],
      ]),
    );
    assert.deepEqual(mainPackages("[project\n"), new Map());
    assert.deepEqual(mainPackages(undefined), new Map());
  });

  it("knows the packages only the groups and extras it does not install list, for the install's program check", () => {
    const uv = [
      "[project.optional-dependencies]",
      'server = ["Uvicorn[standard]>=0.40"]',
      "[dependency-groups]",
      'dev = ["pytest", "uvicorn", {include-group = "lint"}]',
      "lint = [\"ruff ; python_version >= '3.9'\"]",
      "",
    ].join("\n");
    assert.deepEqual(
      groupedPackages("uv", uv),
      new Map([
        [
          "uvicorn",
          [
            { name: "dev", as: "group" },
            { name: "server", as: "extra" },
          ],
        ],
        ["pytest", [{ name: "dev", as: "group" }]],
        // dev includes lint: uv --group dev installs ruff too.
        [
          "ruff",
          [
            { name: "dev", as: "group" },
            { name: "lint", as: "group" },
          ],
        ],
      ]),
    );
    // A package a named group or extra installs is no hint's, whatever else lists it.
    assert.deepEqual(
      groupedPackages("uv", uv, ["server"]),
      new Map([
        ["pytest", [{ name: "dev", as: "group" }]],
        // dev includes lint: uv --group dev installs ruff too.
        [
          "ruff",
          [
            { name: "dev", as: "group" },
            { name: "lint", as: "group" },
          ],
        ],
      ]),
    );
    const poetry =
      "[tool.poetry.group.dev.dependencies]\nuvicorn = { version = '^0.32', extras = ['standard'] }\nPytest_Asyncio = '*'\n" +
      "[tool.poetry.extras]\npgsql = ['psycopg2-binary']\n";
    assert.deepEqual(
      groupedPackages("poetry", poetry),
      new Map([
        ["uvicorn", [{ name: "dev", as: "group" }]],
        ["pytest-asyncio", [{ name: "dev", as: "group" }]],
        ["psycopg2-binary", [{ name: "pgsql", as: "extra" }]],
      ]),
    );
    // Poetry's legacy dev-dependencies: its dev group, offered and read as one.
    const legacy =
      "[tool.poetry.dev-dependencies]\nuvicorn = '^0.18'\n[tool.poetry.group.test.dependencies]\npytest = '*'\n";
    assert.deepEqual(
      offeredGroups("poetry", legacy),
      new Map([
        ["test", "group"],
        ["dev", "group"],
      ]),
    );
    assert.deepEqual(
      groupedPackages("poetry", legacy),
      new Map([
        ["pytest", [{ name: "test", as: "group" }]],
        ["uvicorn", [{ name: "dev", as: "group" }]],
      ]),
    );
    assert.deepEqual(
      groupedPackages("poetry", legacy, ["dev"]),
      new Map([["pytest", [{ name: "test", as: "group" }]]]),
    );
    assert.deepEqual(groupedPackages("pip", uv), new Map());
    assert.deepEqual(groupedPackages("uv", "not [toml"), new Map());
    // Through the config: linkding with its postgres group installed.
    assert.deepEqual(
      parseStackConfig(raw(["postgres"]), { ...baseCtx(), appFiles: uvApp }).app.pythonDeps?.groupedPackages,
      {
        pytest: [{ name: "dev", as: "group" }],
        "python-ldap": [{ name: "ldap", as: "extra" }],
      },
    );
  });

  it("names a group pyproject.toml does not declare, a manager that installs none, a Node app", () => {
    assert.deepEqual(configProblems(raw(["postgress", "dev", "x y"]), { ...baseCtx(), appFiles: uvApp }), [
      'apphost:app.dependencyGroups[0]: "postgress" is no dependency group or extra of ../linkding/pyproject.toml (it declares: "dev", "postgres", "ldap"); fix or remove the item',
      'apphost:app.dependencyGroups[2]: expected a group name like "postgres", got "x y"; fix the item',
    ]);
    const pip = files({ "requirements.txt": "django\n", "pyproject.toml": PYPROJECT });
    assert.deepEqual(configProblems(raw(["postgres"]), { ...baseCtx(), appFiles: pip }), [
      "apphost:app.dependencyGroups: apphost installs dependency groups and extras with uv, Poetry, and pip from pyproject.toml; ../linkding installs with pip (requirements.txt): list the packages in its main dependencies instead, and remove apphost:app.dependencyGroups",
    ]);
    assert.deepEqual(
      configProblems(withKeys(raw(["postgres"]), { "app.runtime": "node" }), {
        ...baseCtx(),
        appFiles: { ...uvApp, packageJson: "app" },
      }).filter((m) => m.includes("dependencyGroups")),
      ["apphost:app.dependencyGroups: only used with apphost:app.runtime python; remove it"],
    );
  });
});

describe("apphost:app.extraRequirements: pip requirements installed after the app's own (a server its image installs)", () => {
  // healthchecks' requirements.txt names no server: its Dockerfile runs `pip install uwsgi`.
  const files = (python: AppFiles["python"]): AppFiles => ({ dir: "../healthchecks", python });
  const pipApp = files({ "requirements.txt": "Django==6.1\npsycopg==3.3.4\n" });
  const raw = (extra: unknown, keys: Record<string, unknown> = {}) =>
    withKeys(baseRaw(), { "app.requirements": undefined, "app.extraRequirements": extra, ...keys });
  const cache = "/srv/hc-prod/cache";

  it("is kept in the config and in the app's Python install, and refused for a Node app or an item pip would not read as a name", () => {
    const c = parseStackConfig(raw(["gunicorn==23.0.0", "uvicorn[standard]>=0.30,<1"]), {
      ...baseCtx(),
      appFiles: pipApp,
    });
    assert.deepEqual(c.app.extraRequirements, ["gunicorn==23.0.0", "uvicorn[standard]>=0.30,<1"]);
    assert.deepEqual(pythonDepsOf(c.app).extraRequirements, [
      "gunicorn==23.0.0",
      "uvicorn[standard]>=0.30,<1",
    ]);
    assert.equal(pythonDepsOf({ requirements: "requirements.txt" }).extraRequirements, undefined);
    const what =
      'a pip requirement like "gunicorn==23.0.0": a package name, extras in [], version constraints';
    assert.deepEqual(
      configProblems(raw(["gunicorn; rm -rf /", "https://example.com/g.whl", "ok==1", ""]), {
        ...baseCtx(),
        appFiles: pipApp,
      }),
      [
        `apphost:app.extraRequirements[0]: expected ${what}, got "gunicorn; rm -rf /"; fix the item`,
        `apphost:app.extraRequirements[1]: expected ${what}, got "https://example.com/g.whl"; fix the item`,
        'apphost:app.extraRequirements[3]: expected a non-empty string, got ""; fix or remove the item',
      ],
    );
    assert.deepEqual(
      configProblems(raw(["gunicorn"], { "app.runtime": "node" }), {
        ...baseCtx(),
        appFiles: { ...pipApp, packageJson: "app" },
      }).filter((m) => m.includes("extraRequirements")),
      [
        "apphost:app.extraRequirements: only used with apphost:app.runtime python (a Node app's are its package.json's); remove it",
      ],
    );
  });

  it("installs them after the manager's install: pip into the venv, uv pip into uv's; an app without dependencies gets pip for them", () => {
    const deps = (manager: PythonDeps["manager"], manifest: string): PythonDeps => ({
      manager,
      manifest,
      requiresPython: "",
      requiresPythonFrom: "",
      extraRequirements: ["gunicorn==23.0.0", "uvicorn[standard]>=0.30,<1"],
    });
    const reqs = "gunicorn==23.0.0 'uvicorn[standard]>=0.30,<1'";
    const pip = `as_app "$NEW_DIR" "PIP_CACHE_DIR=${cache}/pip $VENV/bin/pip install --disable-pip-version-check --no-input ${reqs}"`;
    const withPip = pythonInstallCommands(deps("pip", "requirements.txt"), cache);
    assert.equal(withPip.length, 2);
    assert.ok(withPip[0].includes("-r requirements.txt"), withPip[0]);
    assert.equal(withPip[1], pip);
    const uv = pythonInstallCommands(deps("uv", "uv.lock"), cache);
    assert.equal(
      uv.at(-1),
      `as_app "$NEW_DIR" "UV_CACHE_DIR=${cache}/uv UV_PYTHON_DOWNLOADS=never UV_NO_PROGRESS=1 UV_SYSTEM_CERTS=1 UV_PROJECT_ENVIRONMENT=$VENV ` +
        `/var/lib/apphost/tools/uv-${UV_VERSION}/bin/uv pip install --python $VENV/bin/python ${reqs}"`,
    );
    assert.ok(uv.at(-2)?.includes(" sync --frozen "), uv.join("\n"));
    assert.deepEqual(pythonInstallCommands(deps("none", ""), cache), [
      'as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv $VENV"',
      'note "install: no requirements.txt, pyproject.toml or lock file; the venv has no packages"',
      pip,
    ]);
    // The install's note and the phase's description name them.
    assert.equal(
      pythonInstallLabel(deps("pip", "requirements.txt")),
      "pip install -r requirements.txt, then apphost:app.extraRequirements (gunicorn==23.0.0 uvicorn[standard]>=0.30,<1)",
    );
    // Rendered unquoted into a double-quoted command: refused there too, whatever the config let through.
    assert.throws(
      () =>
        pythonInstallCommands(
          { ...deps("pip", "requirements.txt"), extraRequirements: ['x"; rm -rf /'] },
          cache,
        ),
      /apphost:app\.extraRequirements/,
    );
  });

  it("gives the venv a key of its own, as a dependency group does", () => {
    const dir = mkdtempSync(join(tmpdir(), "apphost-extra-"));
    try {
      writeFileSync(join(dir, "requirements.txt"), "Django==6.1\n");
      const hash = (extraRequirements?: string[]) =>
        requirementsHash(dir, { runtime: "python", requirements: "requirements.txt", extraRequirements });
      assert.equal(hash(), hash([]));
      assert.notEqual(hash(["gunicorn==23.0.0"]), hash());
      assert.notEqual(hash(["gunicorn==23.0.0"]), hash(["gunicorn==22.0.0"]));
      assert.equal(hash(["gunicorn==23.0.0"]), hash(["gunicorn==23.0.0"]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the example web command no longer asks to add a server it names", () => {
    const hc: AppFiles = {
      ...pipApp,
      pythonWeb: {
        dir: "",
        target: "hc.wsgi",
        server: "gunicorn",
        factory: false,
        found: "manage.py's settings have hc.wsgi beside them, the WSGI application",
        listed: false,
      },
    };
    const missing = (extra?: string[]) =>
      configProblems(raw(extra, { "app.processes": undefined }), { ...baseCtx(), appFiles: hc }).filter((m) =>
        m.startsWith("apphost:app.processes"),
      );
    assert.match(
      missing()[0],
      /the app's dependencies do not name gunicorn: add it to them, or to apphost:app\.extraRequirements/,
    );
    assert.match(missing(["Gunicorn==23.0.0"])[0], /gunicorn serves\)\); expected/);
  });
});
