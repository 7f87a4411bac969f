/**
 * The Release provider's error text: the failed phase by name, the reason the
 * script gave, and the tail of its output; interrupted deploys say so.
 */
import assert from "assert/strict";
import { DEPLOY_PHASES, EXIT_CODES } from "../../components/release/phases";
import { secretValues } from "../../components/app";
import {
  appEnvHint,
  settingsMissingHint,
  envSchemaHint,
  deployKey,
  dotenvHint,
  jobReport,
  liveOf,
  lostConnection,
  onlyForDrift,
  phaseSeconds,
  pythonApiHint,
  releaseError,
  releaseWarnings,
  scmVersionHint,
  sourceBuildHint,
} from "../../components/remote/release";
import * as fs from "fs";
import * as path from "path";
import { redact } from "../../components/remote/ssh";
import { PROVIDER_STUB, serializeFunction } from "./provider-serialization";
const requireFromString = require("require-from-string") as (code: string) => unknown;

const conn = { privateKey: "-----BEGIN KEY-----secretsecret", user: "admin", host: "10.0.0.2", port: 22 };
const result = (code: number, stderr: string) => ({ code, stdout: "", stderr });
/** A release's output kept from a trial, under test/unit/samples/ */
const sample = (name: string) => fs.readFileSync(path.join(__dirname, "samples", name), "utf8");
/** The error's first line for a run that exited with `code` and printed `stderr` */
const headOf = (code: number, stderr: string) =>
  releaseError("r", result(code, stderr), conn).message.split("\n")[0];

describe("release provider: a deploy only for drift", () => {
  it("is one of the same code, requirements, config and script as the state records; it does not adopt the host's last job", () => {
    const done = {
      contentHash: "c1",
      requirementsHash: "r1",
      configHash: "k1",
      script: "/srv/a/bin/apphost-release",
    };
    assert.equal(onlyForDrift(done, { ...done }), true);
    for (const key of Object.keys(done) as (keyof typeof done)[]) {
      assert.equal(
        onlyForDrift(done, { ...done, [key]: "other" }),
        false,
        `${key} changed: new work, adopted`,
      );
    }
    assert.equal(
      onlyForDrift({ ...done, requirementsHash: undefined }, { ...done, requirementsHash: "" }),
      true,
    );
  });
});

describe("release provider: error messages", () => {
  it("names the failed phase, its reason and the output's tail", () => {
    const stderr = [
      "apphost: phase check: start",
      "apphost: phase check: ok",
      "apphost: phase migrate: start",
      "apphost: phase migrate failed: the migration command failed: alembic upgrade head; last 40 lines of its output (/x.log):",
      ...Array.from({ length: 60 }, (_, i) => `traceback line ${i}`),
      "RuntimeError: boom",
      "apphost: rollback: phase migrate failed; undoing release 20250101120000-abcdef12",
      "apphost: phase restore-database failed: restore: something else",
      "apphost: rollback: done",
    ].join("\n");
    const e = releaseError("release 20250101120000-abcdef12", result(14, stderr), conn);
    const [head] = e.message.split("\n");
    assert.equal(
      head,
      "release 20250101120000-abcdef12: phase migrate failed (exit status 14): the migration command failed: alembic upgrade head; last 40 lines of its output (/x.log):",
    );
    assert.match(e.message, /RuntimeError: boom\n/);
    assert.match(e.message, /apphost: rollback: done$/);
    assert.doesNotMatch(e.message, /traceback line 0\n/, "only the tail");
    assert.equal(Object.getPrototypeOf(e), Error.prototype, "a plain Error survives serialization");
  });

  it("knows every phase by its exit status when the script printed no reason", () => {
    for (const p of DEPLOY_PHASES) {
      const e = releaseError("release x", result(EXIT_CODES[p], "some output"), conn);
      assert.match(
        e.message,
        new RegExp(`^release x: phase ${p} failed \\(exit status ${EXIT_CODES[p]}\\)\\n`),
      );
    }
    assert.match(releaseError("r", result(EXIT_CODES.choose, ""), conn).message, /^r: phase choose failed/);
    assert.match(
      releaseError("r", result(EXIT_CODES.nothingToRollBack, ""), conn).message,
      /^r: phase choose failed/,
    );
    assert.match(
      releaseError("r", result(EXIT_CODES.rollbackFailed, "apphost: phase publish failed: x"), conn).message,
      /^r: phase publish failed \(exit status 20\): x; the automatic rollback failed too/,
    );
  });

  it("an interrupted deploy names the phase it was in; a refused connection names the host", () => {
    const killed = releaseError(
      "release x",
      result(255, "apphost: phase publish: ok\napphost: phase health-gate: start\n"),
      conn,
    );
    assert.match(killed.message, /^release x: interrupted during phase health-gate \(exit status 255/);
    assert.match(killed.message, /takes over its deploy lock/);
    const refused = releaseError(
      "release x",
      result(255, "ssh: connect to host 10.0.0.2 port 22: Connection refused"),
      conn,
    );
    assert.match(refused.message, /^release x: ssh to admin@10.0.0.2:22 failed \(exit status 255\)\n/);
    assert.match(refused.message, /Connection refused/);
  });

  it("a lost connection to a detached job says it goes on and the next `up` adopts it; a killed job says so", () => {
    const lost = releaseError(
      "release x",
      {
        code: 255,
        stdout: "job_id=20261130T120000Z-42\n",
        stderr: "apphost: phase migrate: start\nclient_loop: send disconnect: Broken pipe\n",
      },
      conn,
    );
    assert.match(
      lost.message,
      /^release x: lost the connection to its job 20261130T120000Z-42 during phase migrate \(exit status 255\); the job goes on on the host, and the next `pulumi up` waits for it and adopts its release if it deployed this code\n/,
    );
    const killed = releaseError(
      "release x",
      {
        code: EXIT_CODES.jobLost,
        stdout: "job_id=20261130T120000Z-42\n",
        stderr: "apphost: phase install: start\n",
      },
      conn,
    );
    assert.match(
      killed.message,
      /^release x: its job on the host \(20261130T120000Z-42\) was killed during phase install before it could finish or roll back \(exit status 23/,
    );
    // The job itself killed on the host (job_status seen): interrupted, not a lost connection.
    const inner = releaseError(
      "release x",
      { code: 137, stdout: "job_id=j\njob_status=137\n", stderr: "apphost: phase health-gate: start\n" },
      conn,
    );
    assert.match(inner.message, /^release x: interrupted during phase health-gate \(exit status 137/);
  });

  it("never shows the private key", () => {
    const e = releaseError("release x", result(11, `oops ${conn.privateKey} oops`), conn);
    assert.doesNotMatch(e.message, /secretsecret/);
  });
});

describe("release provider: a failed install's build hint", () => {
  it("psycopg2 from source without libpq-dev (the styleguide trial's output): the package to add", () => {
    const stderr = sample("install/psycopg2-no-libpq-dev.txt");
    assert.equal(
      headOf(EXIT_CODES.install, stderr),
      "r: phase install failed (exit status 12): `PIP_CACHE_DIR=/srv/styleguide-local-sg/cache/pip " +
        "/srv/styleguide-local-sg/venvs/57319db3689aa638-py3.11/bin/pip install --disable-pip-version-check --no-input " +
        "-r requirements.txt` (as styleguide-local-sg in /srv/styleguide-local-sg/releases/20261203113630-f8b16430) " +
        "exited with status 1; a dependency built from source needs what the host lacks: pg_config.h (libpq-dev); " +
        "add libpq-dev to apphost:host.packages, or use a release of the dependency that has a wheel",
    );
  });

  it("better-sqlite3 built by node-gyp on a host without make (the kutt trial's output): the package, and build-essential", () => {
    const stderr = sample("install/better-sqlite3-no-make.txt");
    const head = headOf(EXIT_CODES.install, stderr);
    assert.ok(
      head.endsWith(
        "; better-sqlite3 builds from source (node-gyp) and needs what the host lacks: make (build-essential); " +
          "add build-essential to apphost:host.packages, or use a release of the dependency that has a prebuilt binary for the host's Node",
      ),
      head,
    );
    assert.match(
      head,
      /^r: phase install failed \(exit status 12\): `npm_config_cache=\S+ NODE_EXTRA_CA_CERTS=\S+ npm ci /,
    );
  });

  it("greenlet 1.1.2 on Python 3.11 (the fastapi-realworld trial's poetry output): the C code is older than the Python", () => {
    const stderr = sample("install/greenlet-1.1.2-python3.11.txt");
    const head = headOf(EXIT_CODES.install, stderr);
    assert.ok(
      head.endsWith(
        "exited with status 1; greenlet 1.1.2 does not compile against Python 3.11 (‘_PyErr_StackItem’ {aka " +
          "‘struct _err_stackitem’} has no member named ‘exc_type’): its C code was written for an older Python's " +
          "internals; lock a newer release of greenlet (one with a wheel for Python 3.11), or run the app on a " +
          "Python it supports (apphost:app.python: managed, that version in .python-version)",
      ),
      head,
    );
  });

  it("packages whose build backend failed (the shynet trial's poetry output, 7,168 lines): each with its error and why", () => {
    const stderr = sample("install/poetry-pyyaml-5.4.1-allauth-0.45.0.txt");
    const head = headOf(EXIT_CODES.install, stderr);
    assert.ok(
      head.endsWith(
        "--no-root --no-interaction --no-ansi` (as shy-shy in /srv/shy-shy/releases/20261206225146-9f9ef3ef) exited " +
          "with status 1; 2 dependencies with no wheel for Python 3.11 failed to build from source: django-allauth " +
          "0.45.0 (ImportError: cannot import name 'convert_path' from 'setuptools' " +
          "(/tmp/tmp40qvwzwz/.venv/lib/python3.11/site-packages/setuptools/__init__.py): its setup.py uses what the " +
          "newest setuptools, which its isolated build installs, no longer has); pyyaml 5.4.1 (AttributeError: " +
          "'build_ext' object has no attribute 'cython_sources': its setup.py predates Cython 3, which its isolated " +
          "build installs); lock newer releases (poetry update django-allauth pyyaml; first raise a pyproject.toml " +
          "constraint that allows no newer release, as a caret such as ^5.4.1 stays below 6), one with a wheel for Python " +
          "3.11 or a build that works with today's build tools; or keep the locked releases and constrain their " +
          'builds: in pyproject.toml, under [tool.poetry.build-constraints], the lines django-allauth = { setuptools = "<70" } ' +
          'and pyyaml = { Cython = "<3.0" }',
      ),
      head,
    );
    // One package: its line alone. A setuptools error of another name has no known release to constrain to.
    const pyyaml = stderr.replace(/cannot import name 'convert_path' from 'setuptools'/g, "frob failed");
    assert.ok(
      headOf(EXIT_CODES.install, pyyaml).endsWith(
        "or keep the locked release and constrain its build: in pyproject.toml, under [tool.poetry.build-constraints], " +
          'the line pyyaml = { Cython = "<3.0" }',
      ),
    );
    const other = stderr.replace(/'convert_path' from 'setuptools'/g, "'frobnicate' from 'setuptools'");
    assert.match(headOf(EXIT_CODES.install, other), /the line pyyaml = \{ Cython = "<3\.0" \}$/);
  });

  it("the same build failure as pip and uv print it (pyyaml 5.4.1 on Debian 12): the package, its error, the lock to change", () => {
    const why =
      "pyyaml 5.4.1 (AttributeError: 'build_ext' object has no attribute 'cython_sources': its setup.py predates " +
      "Cython 3, which its isolated build installs); lock a newer release";
    const start = `a dependency with no wheel for Python 3.11 failed to build from source: ${why}`;
    const end = "one with a wheel for Python 3.11 or a build that works with today's build tools";
    assert.equal(
      sourceBuildHint(sample("install/pip-pyyaml-5.4.1-cython3.txt")),
      `${start} (a newer pin in the requirements file), ${end}`,
    );
    assert.equal(
      sourceBuildHint(sample("install/uv-pyyaml-5.4.1-cython3.txt")),
      `${start} (uv lock --upgrade-package pyyaml; first raise a pyproject.toml constraint that allows no newer release, as a caret such as ^5.4.1 stays below 6), ${end}; ` +
        'or keep the locked release and constrain its build: in pyproject.toml, under [tool.uv], build-constraint-dependencies = ["Cython<3.0"], ' +
        "then run uv lock, which records the constraints and keeps the locked versions",
    );
    // A failed install that built nothing from source, and a missing header, which buildHint names: none.
    assert.equal(sourceBuildHint("ERROR: No matching distribution found for frobnicate==9.9\n"), undefined);
    assert.equal(sourceBuildHint(sample("install/psycopg2-no-libpq-dev.txt")), undefined);
  });

  it("a build that found no compiler is the host's to fix, not a release to lock; psycopg[c] needs libpq-dev too (NetBox on Debian 13)", () => {
    // NetBox's requirements.txt (psycopg[c,pool]==3.3.4) on a host without a compiler, as its install printed it.
    const netbox = sample("install/psycopg-c-no-compiler.txt");
    assert.equal(
      sourceBuildHint(netbox),
      "psycopg-c (psycopg[c]) never comes as a wheel: it builds against libpq, so besides build-essential and " +
        "python3-dev add libpq-dev to apphost:host.packages, or depend on psycopg[binary] instead",
    );
    // Another package without a compiler: nothing to add to the install's own "no C compiler" clause.
    assert.equal(sourceBuildHint(netbox.replace(/psycopg-c\b/g, "frobc")), undefined);
    // With a compiler, a failure of its own is still named, and the release to lock.
    assert.match(
      sourceBuildHint(
        netbox
          .replace(/psycopg-c\b/g, "frobc")
          .replace(
            "error: command 'x86_64-linux-gnu-gcc' failed: No such file or directory",
            "error: frobc needs libfrob",
          ),
      )!,
      /^a dependency with no wheel for Python 3\.13 failed to build from source: frobc \(error: frobc needs libfrob\); lock a newer release/,
    );
  });

  it("a compiler error on a Python type: the package as pip and uv name it; none for other compiler errors", () => {
    const gcc = "x86_64-linux-gnu-gcc -fPIC -I/srv/v/include -I/usr/include/python3.13 -c src/x.c -o x.o";
    const apiError = "src/x.c:12:5: error: 'PyFrameObject' has no member named 'f_lasti'";
    const pip = [
      gcc,
      apiError,
      "  × Building wheel for frobnicate (pyproject.toml) did not run successfully.",
    ];
    assert.equal(
      pythonApiHint(pip.join("\n")),
      "frobnicate does not compile against Python 3.13 ('PyFrameObject' has no member named 'f_lasti'): its C " +
        "code was written for an older Python's internals; lock a newer release of frobnicate (one with a wheel " +
        "for Python 3.13), or run the app on a Python it supports (apphost:app.python: managed, that version in .python-version)",
    );
    const uv = [gcc, apiError, "  × Failed to build `frobnicate==0.9.1`"].join("\n");
    assert.match(pythonApiHint(uv) ?? "", /^frobnicate 0\.9\.1 does not compile against Python 3\.13 /);
    assert.match(
      pythonApiHint(apiError) ?? "",
      /^a dependency does not compile against the host's Python .* a newer release of it /,
    );
    // A compiler error that names no Python type is the package's own (or the compiler's): no guess.
    assert.equal(
      pythonApiHint([gcc, "src/x.c:3:1: error: unknown type name 'uint128'", ...pip.slice(2)].join("\n")),
      undefined,
    );
    // A missing header is buildHint's, and wins.
    const both = `${apiError}\nsrc/y.c:1:10: fatal error: ffi.h: No such file or directory\n`;
    assert.match(
      headOf(EXIT_CODES.install, `apphost: phase install failed: x\n${both}`),
      /; a dependency built from source needs what the host lacks: ffi\.h \(libffi-dev\);/,
    );
  });

  it("names every file it knows once, with its package; nothing for output that names none", () => {
    const out = [
      "apphost: phase install failed: `npm ci` exited with status 1",
      "../src/xml.cc:3:10: fatal error: libxml/xmlversion.h: No such file or directory",
      "    Error: pg_config executable not found.",
      "In file included from x.c:1: fatal error: /usr/include/x/libxml/xmlversion.h: No such file or directory",
      "Exception: Can not find valid pkg-config name.",
      "fatal error: unknown/thing.h: No such file or directory",
    ].join("\n");
    assert.equal(
      headOf(EXIT_CODES.install, out),
      "r: phase install failed (exit status 12): `npm ci` exited with status 1; a dependency built from source needs " +
        "what the host lacks: libxml/xmlversion.h (libxml2-dev), pg_config (libpq-dev), mysql_config " +
        "(default-libmysqlclient-dev pkg-config); add libxml2-dev, libpq-dev, default-libmysqlclient-dev, pkg-config " +
        "to apphost:host.packages, or use a release of the dependency that has a wheel",
    );
    assert.equal(
      headOf(EXIT_CODES.install, "apphost: phase install failed: x\nERROR: No matching distribution"),
      "r: phase install failed (exit status 12): x",
    );
    // Another phase's output is not a build's.
    assert.equal(
      headOf(EXIT_CODES.migrate, `apphost: phase migrate failed: m\n${out}`),
      "r: phase migrate failed (exit status 14): m",
    );
  });
});

describe("release provider: an app whose pydantic settings require variables its environment lacks", () => {
  // pydantic-settings 2.11 (pydantic 2.14): a Settings class like full-stack-fastapi-template's, only PROJECT_NAME set.
  const PYDANTIC2 = [
    "pydantic_core._pydantic_core.ValidationError: 4 validation errors for Settings",
    "SECRET_KEY",
    "  Field required [type=missing, input_value={'PROJECT_NAME': 'x'}, input_type=dict]",
    "    For further information visit https://errors.pydantic.dev/2.14/v/missing",
    "POSTGRES_SERVER",
    "  Field required [type=missing, input_value={'PROJECT_NAME': 'x'}, input_type=dict]",
    "    For further information visit https://errors.pydantic.dev/2.14/v/missing",
    "POSTGRES_USER",
    "  Field required [type=missing, input_value={'PROJECT_NAME': 'x'}, input_type=dict]",
    "    For further information visit https://errors.pydantic.dev/2.14/v/missing",
    "first_superuser",
    "  Field required [type=missing, input_value={'PROJECT_NAME': 'x'}, input_type=dict]",
    "    For further information visit https://errors.pydantic.dev/2.14/v/missing",
  ];
  const set =
    "in apphost:app.env (apphost:secretEnv for a secret; with the settings' env_prefix before the name, if they have one)";

  it("names each variable, upper-cased as pydantic-settings reads it, and the database's references (a migration)", () => {
    const stderr = [
      "apphost: phase migrate failed: the migration command failed: alembic upgrade head; last 40 lines of its output (/srv/x/shared/logs/m.log)",
      ...PYDANTIC2,
    ].join("\n");
    assert.equal(
      headOf(EXIT_CODES.migrate, stderr),
      "r: phase migrate failed (exit status 14): the migration command failed: alembic upgrade head; last 40 lines " +
        "of its output (/srv/x/shared/logs/m.log); the app's settings require SECRET_KEY, POSTGRES_SERVER, POSTGRES_USER, " +
        `FIRST_SUPERUSER, which its environment lacks: set each ${set}, where a value may reference the stack's database: ` +
        "${database.host}, ${database.port}, ${database.user}, ${database.password}, ${database.name}, ${database.url}",
    );
  });

  it("pydantic 1, and pydantic 2 in a web instance's journal; nothing for a field that is there but wrong", () => {
    assert.equal(
      settingsMissingHint(
        [
          "pydantic.error_wrappers.ValidationError: 1 validation error for Settings",
          "secret_key",
          "  field required (type=value_error.missing)",
        ].join("\n"),
      ),
      `the app's settings require SECRET_KEY, which its environment lacks: set it ${set}`,
    );
    const journal = PYDANTIC2.slice(0, 4).map((l) => `Dec 07 20:50:01 host uvicorn[812]: ${l}`);
    journal[0] = journal[0].replace("4 validation errors", "1 validation error");
    assert.equal(
      headOf(
        EXIT_CODES["health-gate"],
        [
          "apphost: phase health-gate failed: the web instance exited. Last lines of its journal:",
          ...journal,
        ].join("\n"),
      ),
      "r: phase health-gate failed (exit status 16): the web instance exited. Last lines of its journal; " +
        `the app's settings require SECRET_KEY, which its environment lacks: set it ${set}`,
    );
    assert.equal(
      settingsMissingHint(
        [
          "pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings",
          "POSTGRES_PORT",
          "  Input should be a valid integer, unable to parse string as an integer [type=int_parsing, input_value='x', input_type=str]",
        ].join("\n"),
      ),
      undefined,
    );
    assert.equal(settingsMissingHint("SECRET_KEY\n  Field required [type=missing]"), undefined);
    // The database's references only for a database's variable, by its words.
    const missing = (name: string) =>
      settingsMissingHint(
        `pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings\n${name}\n  Field required [type=missing, input_value={}, input_type=dict]`,
      ) ?? "";
    assert.deepEqual(
      [
        "DB_HOST",
        "postgres_server",
        "SQLALCHEMY_DATABASE_URI",
        "PGHOST",
        "database__hostname",
        "ADBLOCK_LIST",
        "MONGODB_URL",
        "DEBUG",
      ].map((n) => missing(n).includes("${database.host}")),
      [true, true, true, true, true, false, false, false],
    );
    // A nested model's field (pydantic-settings 2.11, env_nested_delimiter="__", SECURITY__X set).
    assert.equal(
      settingsMissingHint(
        [
          "pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings",
          "security.jwt_secret_key",
          "  Field required [type=missing, input_value={'x': '1'}, input_type=dict]",
        ].join("\n"),
      ),
      "the app's settings require SECURITY__JWT_SECRET_KEY, which its environment lacks: set it in apphost:app.env " +
        "(apphost:secretEnv for a secret; with the settings' env_prefix before the name, if they have one, and their " +
        "env_nested_delimiter for __)",
    );
  });
});

describe("release provider: a Node app whose own check of its environment refuses variables (zod)", () => {
  // w3cj/hono-open-api-starter's src/env.ts: zod's flattened field errors as JSON, in the web instance's journal.
  const HONO = [
    "apphost: phase health-gate failed: apphost-tasks-hono-web@8001.service did not answer 2xx. Last lines of its journal:",
    "[dotenv@17.2.1] injecting env (0) from .env",
    "❌ Invalid env:",
    "{",
    '  "LOG_LEVEL": [',
    '    "Invalid option: expected one of \\"fatal\\"|\\"error\\"|\\"silent\\""',
    "  ],",
    '  "DATABASE_AUTH_TOKEN": [',
    "    \"Must be set when NODE_ENV is 'production'\"",
    "  ]",
    "}",
    "apphost-tasks-hono-web@8001.service: Main process exited, code=exited, status=1/FAILURE",
  ].join("\n");

  it("names each variable with its first message, and where to set it", () => {
    assert.equal(
      headOf(EXIT_CODES["health-gate"], HONO),
      "r: phase health-gate failed (exit status 16): apphost-tasks-hono-web@8001.service did not answer 2xx. Last " +
        "lines of its journal; the app's own check of its environment refused LOG_LEVEL (Invalid option: expected one " +
        'of "fatal"|"error"|"silent"), DATABASE_AUTH_TOKEN (Must be set when NODE_ENV is \'production\'): set each in ' +
        "apphost:app.env (apphost:secretEnv for a secret), where a value may reference the stack's database: " +
        "${database.host}, ${database.port}, ${database.user}, ${database.password}, ${database.name}, ${database.url}",
    );
  });

  it("Node's own print of the object (@t3-oss/env), the last error of several; nothing without one", () => {
    assert.equal(
      envSchemaHint(
        "❌ Invalid environment variables: { SESSION_SECRET: [ 'Required' ] }\n" +
          "❌ Invalid environment variables: { SMTP_HOST: [ 'Required' ], SMTP_PORT: [ 'Expected number, received nan' ] }\n",
      ),
      "the app's own check of its environment refused SMTP_HOST (Required), SMTP_PORT (Expected number, received " +
        "nan): set each in apphost:app.env (apphost:secretEnv for a secret)",
    );
    assert.equal(envSchemaHint("Error: Invalid env\n    at main (index.js:1:1)\n"), undefined);
    assert.equal(envSchemaHint('{ "LOG_LEVEL": [ "Required" ] }\n'), undefined);
  });
});

describe("release provider: an app that refuses apphost's APP_ENV", () => {
  const HINT =
    "the app's settings refused APP_ENV, which apphost sets to the stack's name unless apphost:app.env sets it: " +
    "set it to a value the app accepts (its error in the output below lists them), e.g. " +
    "pulumi config set --path 'apphost:app.env.APP_ENV' production";

  it("pydantic 1's settings in a migration (the fastapi-realworld trial's output): the key to set", () => {
    const stderr = sample("migrate/pydantic-v1-app-env.txt");
    assert.equal(
      headOf(EXIT_CODES.migrate, stderr),
      "r: phase migrate failed (exit status 14): the migration command failed: alembic upgrade head; last 40 lines " +
        "of its output (/srv/conduit-rw/shared/logs/apphost-migrate-20261206044730-3cf88999.log); " +
        HINT,
    );
  });

  it("pydantic 2 in a web instance's journal at the health gate; none for another field or another phase", () => {
    const journal = (field: string) =>
      [
        "apphost: phase health-gate failed: the web instance exited. Last lines of its journal:",
        "Dec 06 04:50:01 host uvicorn[812]: pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings",
        `Dec 06 04:50:01 host uvicorn[812]: ${field}`,
        "Dec 06 04:50:01 host uvicorn[812]:   Input should be 'production' or 'development' [type=enum, input_value='prod', input_type=str]",
      ].join("\n");
    assert.ok(headOf(EXIT_CODES["health-gate"], journal("app_env")).endsWith(`journal; ${HINT}`));
    assert.equal(appEnvHint(journal("APP_ENV")), HINT);
    assert.equal(appEnvHint(journal("environment")), undefined);
    assert.equal(appEnvHint("app_env\nValueError: bad"), undefined);
    const publish = journal("app_env").replace("phase health-gate failed", "phase publish failed");
    assert.equal(
      headOf(EXIT_CODES.publish, publish),
      "r: phase publish failed (exit status 15): the web instance exited. Last lines of its journal:",
    );
  });
});

describe("release provider: phase timings", () => {
  it("reads `phase <name>: ok (<s>s)` lines in order; start, failed and rollback lines are not timings", () => {
    const stderr = [
      ...DEPLOY_PHASES.flatMap((p, i) => [
        `apphost: phase ${p}: start`,
        `apphost: phase ${p}: ok (${i}.${i}s)`,
      ]),
      "apphost: phase restore: ok",
      "apphost: rollback revert-traffic: ok",
      "apphost: phase migrate failed: x",
    ].join("\n");
    assert.deepEqual(
      phaseSeconds(stderr),
      DEPLOY_PHASES.map((phase, i) => ({ phase, seconds: Number(`${i}.${i}`) })),
    );
    assert.deepEqual(phaseSeconds(""), []);
  });
});

describe("release provider: a successful run's warnings", () => {
  it("each warning line with the lines that follow it, up to the script's next line", () => {
    const stderr = [
      "apphost: phase backup: start",
      "apphost: warning: backup: the copy of /srv/x.db to s3://b/x.db failed (apphost:backups.s3): AccessDenied",
      "apphost: warning: the deploy goes on with the backup on this host",
      "apphost: phase backup: ok (0.2s)",
      "apphost: warning: the worker apphost-shop-prod-worker.service is not running 3s after this deploy restarted it (activating; systemd restarted it 2 times since): the release is live, the worker keeps restarting until systemd gives up on it; once its cause is fixed, pulumi up --refresh starts it again. Last lines of its journal:",
      "Error 111 connecting to localhost:6379. Connection refused.",
      "",
      "apphost: rollback: warning: apphost-shop-prod-web@8000.service is not healthy (HTTP 500)",
      "apphost: phase finish: ok (0.0s)",
      "apphost: not a warning: warning: in the middle",
    ].join("\n");
    assert.deepEqual(releaseWarnings(stderr), [
      "apphost: warning: backup: the copy of /srv/x.db to s3://b/x.db failed (apphost:backups.s3): AccessDenied",
      "apphost: warning: the deploy goes on with the backup on this host",
      "apphost: warning: the worker apphost-shop-prod-worker.service is not running 3s after this deploy restarted it (activating; systemd restarted it 2 times since): the release is live, the worker keeps restarting until systemd gives up on it; once its cause is fixed, pulumi up --refresh starts it again. Last lines of its journal:\nError 111 connecting to localhost:6379. Connection refused.",
      "apphost: rollback: warning: apphost-shop-prod-web@8000.service is not healthy (HTTP 500)",
    ]);
    assert.deepEqual(releaseWarnings("apphost: phase check: ok (0.0s)\n"), []);
  });
});

describe("release errors never show a secret value", () => {
  it("blanks the secretEnv values and the database password out of the output an error carries", () => {
    const env = { SECRET_KEY: "s3cr3t-key-value-0123456789", STRIPE_KEY: "sk_live_abcdef", SHORT: "ab" };
    const url = "postgresql://shop_prod:Pa55w0rdPa55w0rd@127.0.0.1:5432/shop_prod";
    const redactions = secretValues(env, url);
    const printed = [
      "Traceback (most recent call last):",
      `settings: SECRET_KEY=${env.SECRET_KEY} STRIPE_KEY=${env.STRIPE_KEY}`,
      `sqlalchemy.exc.OperationalError: could not connect to ${url}`,
      "password authentication failed for user shop_prod (password Pa55w0rdPa55w0rd)",
    ].join("\n");
    const e = releaseError("release x", result(14, printed), conn, redactions);
    for (const secret of [env.SECRET_KEY, env.STRIPE_KEY, "Pa55w0rdPa55w0rd", url]) {
      assert.equal(e.message.includes(secret), false, `${secret} is in the error`);
    }
    assert.match(e.message, /SECRET_KEY=\[secret\] STRIPE_KEY=\[secret\]/);
    assert.match(e.message, /\(password \[secret\]\)/);
    // Too short to blank without mangling the rest of the text.
    assert.equal(redactions.includes("ab"), false);
  });

  it("blanks a secret's start before a cut mark and its end after one (pydantic's shortened input_value)", () => {
    const key = "PtUg6MCgJq0vX8mZ3kLw9RbN2sYdE7hTa4fGc1pQiKo5uVjWxe";
    const password = "Sup3r-long-pass";
    const redactions = secretValues({ SECRET_KEY: key, FIRST_SUPERUSER_PASSWORD: password });
    // What the fastapi full-stack template's settings printed on a host without POSTGRES_SERVER (2026-12-06).
    const printed = [
      "pydantic_core._pydantic_core.ValidationError: 2 validation errors for Settings",
      "POSTGRES_SERVER",
      `  Field required [type=missing, input_value={'SECRET_KEY': '${key.slice(0, 9)}...ORD': '${password}'}, input_type=dict]`,
      `  value ${key.slice(0, 20)}… and …${key.slice(-12)} and '${password.slice(0, 6)}...'`,
      // Not a secret's piece: ordinary cut marks, and pieces under 4 characters.
      "Waiting for the database... Sup... done",
    ].join("\n");
    const e = releaseError("release x", result(14, printed), conn, redactions);
    assert.equal(e.message.includes(key.slice(0, 4)), false, "the key's start is in the error");
    assert.equal(e.message.includes(key.slice(-4)), false, "the key's end is in the error");
    assert.equal(e.message.includes(password.slice(0, 4)), false, "the password's start is in the error");
    assert.ok(
      e.message.includes("input_value={'SECRET_KEY': '[secret]...ORD': '[secret]'}, input_type=dict]"),
      e.message,
    );
    assert.ok(e.message.includes("value [secret]… and …[secret] and '[secret]...'"), e.message);
    assert.ok(e.message.includes("Waiting for the database... Sup... done"), e.message);
  });
});

describe("release output shown without terminal control sequences", () => {
  // What Django-Styleguide-Example's journal held on the sandbox (2026-12-06): structlog's console renderer and
  // Celery's worker colour their lines in the journal too, and a release error or warning quoted them as they were.
  const structlog =
    "\x1b[2m2026-12-06T22:42:16.798544Z\x1b[0m [\x1b[32m\x1b[1minfo     \x1b[0m] \x1b[1mrequest_started     \x1b[0m " +
    "\x1b[36mrequest\x1b[0m=\x1b[35m'GET /healthz'\x1b[0m";
  const celery =
    "\x1b[1mconsumer: Cannot connect to amqp://guest:**@127.0.0.1:5672//: [Errno 111] Connection refused.\x1b[0m";

  it("keeps the text of coloured lines and drops their codes, titles, bells and carriage returns", () => {
    const printed = [structlog, celery, "\x1b]0;gunicorn\x07Booting worker\r", "tab\tstays\x1b(B\x08"].join(
      "\n",
    );
    assert.equal(
      redact(printed, []),
      [
        "2026-12-06T22:42:16.798544Z [info     ] request_started      request='GET /healthz'",
        "consumer: Cannot connect to amqp://guest:**@127.0.0.1:5672//: [Errno 111] Connection refused.",
        "Booting worker",
        "tab\tstays",
      ].join("\n"),
    );
  });

  it("blanks a secret the app printed with a colour code inside it", () => {
    const key = "s3cr3t-key-value-0123456789";
    const printed = `SECRET_KEY=\x1b[1m${key.slice(0, 10)}\x1b[0m${key.slice(10)}`;
    const e = releaseError("release x", result(16, `${printed}\n${celery}`), conn, [key]);
    assert.ok(
      e.message.endsWith(
        "SECRET_KEY=[secret]\nconsumer: Cannot connect to amqp://guest:**@127.0.0.1:5672//: [Errno 111] Connection refused.",
      ),
      e.message,
    );
    assert.equal(e.message.includes("\x1b"), false);
  });
});

describe("release provider: detached jobs", () => {
  it("reads a job's report; the last job_id wins; no job_status means its end was not seen", () => {
    const r = jobReport(
      "job_id=a\njob_id=20261130T120000Z-42\njob_command=deploy\njob_key=k\nrelease=r1\noutcome=deployed\njob_status=0\nlive=r1\n",
    );
    assert.deepEqual(
      { id: r.id, command: r.command, key: r.key, status: r.status, live: r.result.live },
      { id: "20261130T120000Z-42", command: "deploy", key: "k", status: 0, live: "r1" },
    );
    assert.equal(jobReport("job_id=x\n").status, undefined);
    assert.equal(jobReport("").id, "");
  });

  it("a lost connection is ssh's 255 or a killed client with no job_status; a job's own status is not", () => {
    assert.equal(lostConnection({ code: 255, stdout: "job_id=j\n", stderr: "" }), true);
    assert.equal(lostConnection({ code: 128, stdout: "", stderr: "" }), true);
    assert.equal(lostConnection({ code: 137, stdout: "job_id=j\njob_status=137\n", stderr: "" }), false);
    assert.equal(lostConnection({ code: 14, stdout: "job_id=j\njob_status=14\n", stderr: "" }), false);
    assert.equal(lostConnection({ code: 0, stdout: "", stderr: "" }), false);
  });

  it("a deploy's key changes with the artifact, the requirements, the host configuration and the release's content", () => {
    const k = deployKey("a".repeat(64), "req1", "cfg1", "c1");
    assert.match(k, /^[0-9a-f]{32}$/);
    assert.equal(deployKey("a".repeat(64), "req1", "cfg1", "c1"), k);
    assert.notEqual(deployKey("b".repeat(64), "req1", "cfg1", "c1"), k);
    assert.notEqual(deployKey("a".repeat(64), "req2", "cfg1", "c1"), k);
    assert.notEqual(deployKey("a".repeat(64), "req1", "cfg2", "c1"), k);
    // The same artifact under another build (releaseContentHash): not the work the host's last job did.
    assert.notEqual(deployKey("a".repeat(64), "req1", "cfg1", "c2"), k);
  });
});

describe("release provider: what a refresh reads as live", () => {
  const id = "20250101120000-abcdef12";
  const worker = "apphost-shop-prod-worker.service";
  it("the current release while its web instance runs and no worker is stopped or given up", () => {
    assert.equal(liveOf({ current: id, web: "active", workers: `${worker}:active` }), id);
    assert.equal(liveOf({ current: id, web: "active", workers: `${worker}:activating` }), id);
    assert.equal(liveOf({ current: id }), id, "a script from before web= and workers= lines");
    assert.equal(liveOf({ current: id, workers: "" }), id, "no web process, no worker");
  });

  it("names the web instance and each worker that are down, so it differs from the release id", () => {
    assert.equal(liveOf({ current: id, web: "inactive" }), `${id} (web inactive)`);
    assert.equal(liveOf({ current: id, web: "" }), `${id} (web unknown)`);
    assert.equal(
      liveOf({
        current: id,
        web: "failed",
        workers: `${worker}:failed apphost-shop-prod-mailer.service:inactive`,
      }),
      `${id} (web failed, worker ${worker} failed, worker apphost-shop-prod-mailer.service inactive)`,
    );
  });

  it("names each unit that runs files a package upgrade replaced, so it differs from the release id", () => {
    const web = "apphost-shop-prod-web@8001.service";
    assert.equal(liveOf({ current: id, web: "active", replaced: "" }), id);
    assert.equal(
      liveOf({
        current: id,
        web: "active",
        workers: `${worker}:active`,
        replaced: `${web}:libc.so.6,libssl.so.3 ${worker}:python3.11`,
      }),
      `${id} (${web} runs libc.so.6, libssl.so.3, replaced since it started, ${worker} runs python3.11, replaced since it started)`,
    );
    assert.equal(
      liveOf({
        current: id,
        replaced: `${web}:ld-linux-x86-64.so.2,libc.so.6,libdl.so.2,libm.so.6,libresolv.so.2`,
      }),
      `${id} (${web} runs ld-linux-x86-64.so.2, libc.so.6, libdl.so.2 and 2 more, replaced since it started)`,
    );
  });

  it("none when nothing is live, whatever the units say", () => {
    assert.equal(liveOf({ current: "", web: "inactive", workers: `${worker}:failed` }), "none");
    assert.equal(liveOf({}), "none");
  });
});

describe("release provider: an app that reads a dotenv file the release does not have", () => {
  const hint = (file: string, relative = false) =>
    `the app reads a dotenv file, ${file}${relative ? " (relative to where its command runs)" : ""}, which the release does not have ` +
    "(apphost:app.excludes leaves out .env files: a developer's own, with their values); " +
    `list it in apphost:app.dotenv (pulumi config set --path 'apphost:app.dotenv[0]' ${file}), and each release gets a link ` +
    "there to the stack's env file, whose values the app's processes have in their environment already";

  it("Starlette's Config in a migration (the FastAPI-boilerplate trial's output): the file, as the release names it", () => {
    assert.equal(
      headOf(EXIT_CODES.migrate, sample("migrate/starlette-config-dotenv.txt")),
      "r: phase migrate failed (exit status 14): the migration command failed: cd src && alembic upgrade head; last 40 " +
        "lines of its output (/srv/boiler-boiler/shared/logs/apphost-migrate-20261207014727-e4f182f8.log); " +
        hint("src/.env"),
    );
  });

  it("Python's open and Node's ENOENT in a web instance's journal; none for another file or one outside the release", () => {
    const journal = (line: string) =>
      [
        "apphost: phase health-gate failed: the web instance exited. Last lines of its journal:",
        `Dec 07 02:10:01 host app[812]: ${line}`,
      ].join("\n");
    const python = journal(
      "FileNotFoundError: [Errno 2] No such file or directory: '/srv/shop-prod/releases/20261207021000-0a1b2c3d/.env.production'",
    );
    assert.ok(headOf(EXIT_CODES["health-gate"], python).endsWith(`journal; ${hint(".env.production")}`));
    assert.equal(
      dotenvHint(journal("Error: ENOENT: no such file or directory, open 'config/.env'")),
      hint("config/.env", true),
    );
    assert.equal(
      dotenvHint(journal("FileNotFoundError: [Errno 2] No such file or directory: 'settings.env'")),
      undefined,
    );
    assert.equal(
      dotenvHint(journal("Config file '/srv/shop-prod/releases/x/../../.env' not found.")),
      undefined,
    );
    assert.equal(dotenvHint(journal("Config file '/etc/shop/.env' not found.")), undefined);
    assert.equal(
      dotenvHint(
        journal(
          "FileNotFoundError: [Errno 2] No such file or directory: '/srv/shop-prod/releases/x/src/.envrc'",
        ),
      ),
      undefined,
    );
    const publish = python.replace("phase health-gate failed", "phase publish failed");
    assert.equal(
      headOf(EXIT_CODES.publish, publish),
      "r: phase publish failed (exit status 15): the web instance exited. Last lines of its journal:",
    );
  });
});

describe("release provider: the warnings a failed run gave before it failed", () => {
  it("each one's first line, after the reason, where the last lines no longer show it (FastAPI-boilerplate's trial)", () => {
    const message = releaseError(
      "r",
      result(EXIT_CODES["health-gate"], sample("health-gate/no-alembic-revision.txt")),
      conn,
    ).message;
    const [, earlier, rest] =
      /\n--- warnings before it failed ---\n([\s\S]*?)\n--- last lines of apphost-release's output ---\n([\s\S]*)$/.exec(
        message,
      )!;
    assert.equal(
      earlier,
      "apphost: install: warning: src/migrations/versions has no alembic revision, so the migration creates no table, " +
        'and the app\'s first query fails: `alembic revision --autogenerate -m "initial tables"`, run where the app ' +
        "reaches a database (an empty one, or one as the stack's is), writes the first from its models; add it to the app",
    );
    assert.ok(!rest.includes("no alembic revision"), rest);
    // None: a run with no warning, one whose warning came after the failure (the rollback's), one still in its tail.
    const plain = (stderr: string) =>
      !releaseError("r", result(14, stderr), conn).message.includes("--- warnings");
    assert.ok(plain("apphost: phase migrate failed: boom\n"));
    assert.ok(
      plain("apphost: phase migrate failed: boom\napphost: rollback: warning: the worker did not start\n"),
    );
    assert.ok(plain("apphost: install: warning: late\napphost: phase migrate failed: boom\n"));
  });
});

describe("release provider: an app whose version comes from git, in a release without .git", () => {
  it("setuptools-scm's error as pip prints it: the variable it names, for apphost:app.env; none for another failure", () => {
    const head = headOf(
      EXIT_CODES.install,
      `${sample("install/pip-setuptools-scm-no-git.txt")}apphost: phase install failed: pip install . exited with status 1\n`,
    );
    assert.equal(
      head,
      "r: phase install failed (exit status 12): pip install . exited with status 1; the app's own package takes its " +
        "version from git (setuptools-scm), and the release has no .git (apphost:app.excludes leaves it out): set " +
        "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_SCMDEMO in apphost:app.env, which the install reads, e.g. pulumi config " +
        "set --path 'apphost:app.env.SETUPTOOLS_SCM_PRETEND_VERSION_FOR_SCMDEMO' 1.0.0",
    );
    // The host's clause for a host without a C compiler, which the script adds not knowing the output, goes.
    const noCompiler =
      "; the host has no C compiler: if a dependency builds from source (no wheel or prebuilt binary for this platform " +
      "and Python or Node version), add build-essential (and python3-dev for Python) to apphost:host.packages";
    assert.equal(
      headOf(
        EXIT_CODES.install,
        `${sample("install/pip-setuptools-scm-no-git.txt")}apphost: phase install failed: pip install . exited with status 1${noCompiler}\n`,
      ),
      head,
    );
    assert.ok(
      headOf(
        EXIT_CODES.install,
        `apphost: phase install failed: pip exited with status 1${noCompiler}\n`,
      ).endsWith(noCompiler),
    );
    assert.match(
      scmVersionHint("LookupError: setuptools-scm was unable to detect version for /srv/x/releases/y.\n") ??
        "",
      /: set SETUPTOOLS_SCM_PRETEND_VERSION in apphost:app\.env/,
    );
    assert.equal(scmVersionHint(sample("install/pip-pyyaml-5.4.1-cython3.txt")), undefined);
  });
});

describe("the dynamic providers, serialized as the state keeps them", function () {
  // Pulumi's closure serialization: about a second of CPU for the five, once per process.
  this.timeout(60000);

  it("each serializes without secrets, and the engine's loader gives back a provider with the same methods", async () => {
    const { rolloutProvider } = await import("../../components/remote/rollout");
    const { hostConnectionProvider, hostFileProvider, hostScriptProvider } =
      await import("../../components/remote/resources");
    const { releaseProvider } = await import("../../components/remote/release");
    const providers = {
      rolloutProvider,
      hostConnectionProvider,
      hostFileProvider,
      hostScriptProvider,
      releaseProvider,
    };
    for (const [name, provider] of Object.entries(providers)) {
      const serialized = await serializeFunction(() => provider, { allowSecrets: true });
      assert.notEqual(serialized.text, PROVIDER_STUB, name);
      assert.equal(serialized.containsSecrets, false, name);
      // What the engine's dynamic provider host does with the resource's __provider input.
      const loaded = (
        requireFromString(serialized.text) as { handler: () => Record<string, unknown> }
      ).handler();
      assert.deepEqual(Object.keys(loaded).sort(), Object.keys(provider).sort(), name);
      for (const method of Object.keys(provider))
        assert.equal(typeof loaded[method], "function", `${name}.${method}`);
    }
  });
});
