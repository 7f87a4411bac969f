/**
 * Apps as their authors wrote them, end to end on a sandbox of their own:
 * examples/fastapi-notes (pyproject.toml + uv.lock, Alembic, Postgres read
 * in parts, a Procfile) deployed from its own directory with no file added,
 * its processes and migration taken from the Procfile and its settings from
 * `${database.*}` references; a second `up` changes nothing; its frontend
 * built with Yarn 1, Yarn 4, a pinned npm and Bun from the stack's
 * cache/tools; an app whose
 * requires-python the host cannot meet is refused at `check` while the
 * previous release keeps serving. Then examples/django-polls (startproject
 * layout, requirements.txt, Procfile) beside it on the same host:
 * collectstatic as the build, migrate from the Procfile, static files from the
 * proxy, ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS from the stack's hostnames;
 * then under uWSGI (pyuwsgi's wheel), whose old instance a release stops in
 * seconds (a graceful shutdown, not uWSGI 2.0's reload on SIGTERM).
 * Then examples/node-todo (Express, package-lock.json, node-pg-migrate, a
 * build step): npm ci once per lock file, each release a hard-linked copy of
 * its tree, reused by the next release; then the npm packageManager pins; then
 * examples/npm-workspace on the same stack (members, a devDependency for the
 * build, a library by its package name from the release). Then
 * examples/flask-poetry: the pinned Poetry installs poetry.lock's main group.
 * Then examples/flask-pipenv: the pinned Pipenv installs Pipfile.lock, and a
 * Pipfile changed without `pipenv lock` fails its release. Then
 * examples/fastapi-pdm: the pinned PDM installs pdm.lock's default group.
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type * as auto from "@pulumi/pulumi/automation";
import { PDM_VERSION, PIPENV_VERSION, POETRY_VERSION, UV_VERSION } from "../../components/release/python";
import {
  changedCount,
  curlHttps,
  dropPostgres,
  freshBackend,
  http,
  localStack,
  onHost,
  pulumiCli,
  ROOT,
  sandboxUp,
  type Sandbox,
  sandboxesDone,
} from "./lib";
import { runCli } from "./ops-lib";

const SANDBOX = { name: "apphost-ap", subnet: "10.86.0" };
const STACK = "local-ap";
const APP = "notes";
const ID = `${APP}-${STACK}`;
const DB = "notes_local_ap";
const HOSTNAME = "notes.local.test";
const SOURCE = path.join(ROOT, "examples", "fastapi-notes");
const NODE = {
  stack: "local-nd",
  id: "todo-local-nd",
  db: "todo_local_nd",
  hostname: "todo.local.test",
  source: path.join(ROOT, "examples", "node-todo"),
};
const NPM_WORKSPACE = path.join(ROOT, "examples", "npm-workspace");
const NODE_LOCKFILES = path.join(ROOT, "examples", "node-lockfiles");
const NODE_BERRY = path.join(ROOT, "examples", "node-yarn-berry");
const BUN_FRONTEND = path.join(ROOT, "examples", "bun-frontend");
const DJANGO = {
  stack: "local-dj",
  id: "polls-local-dj",
  hostname: "polls.local.test",
  source: path.join(ROOT, "examples", "django-polls"),
};

describe("apps as their authors wrote them: FastAPI + uv.lock + Procfile + Postgres in parts (real engine)", function () {
  let sandbox: Sandbox;
  let backend: string;
  let engineOutput = "";
  const log = (s: string) => {
    engineOutput += s;
    process.stdout.write(s);
  };

  async function stackFor(
    source: string,
    extra: Record<string, unknown> = {},
  ): Promise<auto.Stack & { configFile: string }> {
    return localStack(backend, {
      stackName: STACK,
      sandbox,
      config: {
        "apphost:dns": { provider: "none", hostnames: [{ name: HOSTNAME }] },
        // No processes, no migrate: the app's Procfile has them.
        "apphost:app": {
          name: APP,
          source,
          runtime: "python",
          healthPath: "/api/health",
          basePort: 8300,
          env: {
            POSTGRES_SERVER: "${database.host}",
            POSTGRES_PORT: "${database.port}",
            POSTGRES_USER: "${database.user}",
            POSTGRES_PASSWORD: "${database.password}",
            POSTGRES_DB: "${database.name}",
          },
          ...extra,
        },
        "apphost:database": { kind: "postgres" },
        "apphost:releases": { keep: 3, healthTimeoutSeconds: 60, drainSeconds: 1 },
      },
    });
  }
  async function up(source: string): Promise<auto.UpResult> {
    const stack = await stackFor(source);
    return stack.up({ onOutput: log, configFile: stack.configFile });
  }
  const health = () => http(sandbox, HOSTNAME, "/api/health", "https");
  const dropDatabase = () => dropPostgres(DB);

  before(function () {
    sandbox = sandboxUp(SANDBOX);
    backend = freshBackend();
    dropDatabase();
  });

  after(() => sandboxesDone(SANDBOX));

  /** An example app on a stack of its own on the shared host, served as `<short>.local.test`: 3 releases kept, 1 s drains. */
  function exampleStack(
    short: string,
    app: Record<string, unknown>,
    database: Record<string, unknown> = { kind: "none" },
  ) {
    return localStack(backend, {
      stackName: `local-${short}`,
      sandbox,
      config: {
        "apphost:dns": { provider: "none", hostnames: [{ name: `${short}.local.test` }] },
        "apphost:app": app,
        "apphost:database": database,
        "apphost:releases": { keep: 3, healthTimeoutSeconds: 60, drainSeconds: 1 },
      },
    });
  }

  /**
   * The Node example: Postgres through DATABASE_URL, the Procfile's web and release lines, the build's public/
   * (`app`: the keys that differ for the npm workspace on the same stack).
   */
  async function nodeStack(
    source: string,
    app: Record<string, unknown> = { runtime: "node", staticDir: "public", staticPrefix: "/assets/" },
  ): Promise<auto.Stack & { configFile: string }> {
    return localStack(backend, {
      stackName: NODE.stack,
      sandbox,
      config: {
        "apphost:dns": { provider: "none", hostnames: [{ name: NODE.hostname }] },
        "apphost:app": {
          name: "todo",
          source,
          healthPath: "/api/health",
          basePort: 8500,
          build: "npm run build",
          ...app,
        },
        "apphost:database": { kind: "postgres" },
        "apphost:releases": { keep: 3, healthTimeoutSeconds: 60, drainSeconds: 1 },
      },
    });
  }

  /** The Django example as its authors wrote it; the stack adds only what a host needs to know. */
  async function djangoStack(source = DJANGO.source): Promise<auto.Stack & { configFile: string }> {
    return localStack(backend, {
      stackName: DJANGO.stack,
      sandbox,
      config: {
        // A package the stack does not need by itself, as build-essential for a dependency built from source.
        "apphost:host": { kind: "existing", address: "10.77.0.2", user: "admin", packages: ["tree"] },
        "apphost:dns": { provider: "none", hostnames: [{ name: DJANGO.hostname }] },
        "apphost:app": {
          name: "polls",
          // Uploads: MEDIA_ROOT in the project, as many Django apps have it, served under MEDIA_URL by the proxy.
          sharedDirs: ["media"],
          sharedUrls: { "/media/": "media" },
          source,
          runtime: "python",
          healthPath: "/health/",
          basePort: 8400,
          build: "python manage.py collectstatic --noinput",
          staticDir: "staticfiles",
          staticPrefix: "/static/",
          env: { DJANGO_ALLOWED_HOSTS: "${hostnames}", DJANGO_CSRF_TRUSTED_ORIGINS: "${origins}" },
        },
        // The Procfile's release line migrates; the revision is Django's default (defaultRevision).
        "apphost:database": { kind: "sqlite" },
        "apphost:releases": { keep: 3, healthTimeoutSeconds: 60, drainSeconds: 1 },
      },
    });
  }

  it("deploys from the app's own directory: uv sync from uv.lock, processes and migration from the Procfile", async function () {
    const res = await up(SOURCE);
    assert.equal(res.summary.result, "succeeded");
    const h = health();
    assert.equal(h.status, 200, h.body);
    assert.deepEqual(JSON.parse(h.body), { ok: true, revision: "0001" });
    const created = curlHttps(sandbox, HOSTNAME, "/api/notes", [
      "-X",
      "POST",
      "-H",
      "content-type: application/json",
      "-d",
      '{"body":"first"}',
    ]);
    assert.deepEqual(JSON.parse(created), { id: 1, body: "first" });

    // uv from PyPI at the pinned version, in the host's tool directory; the venv is keyed by lock and Python version.
    assert.equal(
      onHost(`/var/lib/apphost/tools/uv-${UV_VERSION}/bin/uv --version`)
        .stdout.trim()
        .split(" ")
        .slice(0, 2)
        .join(" "),
      `uv ${UV_VERSION}`,
    );
    const venv = onHost(`readlink /srv/${ID}/current/.venv`).stdout.trim();
    assert.match(venv, new RegExp(`^/srv/${ID}/venvs/[0-9a-f]{16}-py3\\.\\d+$`));
    // Exactly what uv.lock pins: the lock's fastapi version is the one installed.
    const locked = /name = "fastapi"\nversion = "([^"]+)"/.exec(
      fs.readFileSync(path.join(SOURCE, "uv.lock"), "utf8"),
    )?.[1];
    assert.ok(locked);
    assert.equal(
      onHost(`${venv}/bin/python -c 'import fastapi; print(fastapi.__version__)'`).stdout.trim(),
      locked,
    );
    // No dev group (pytest) in the venv.
    assert.equal(onHost(`${venv}/bin/python -c 'import pytest'`, { allowFailure: true }).code, 1);

    // The Procfile's web line is the web unit; its release line ran as the migration.
    const unit = onHost(`systemctl cat apphost-${ID}-web@.service`).stdout;
    assert.match(unit, /uvicorn notes\.main:app --host 127\.0\.0\.1 --port \$\$PORT --proxy-headers/);
    assert.match(
      onHost(`cat /srv/${ID}/shared/logs/apphost-migrate-*.log`).stdout,
      /Running upgrade {2}-> 0001/,
    );

    // The split settings resolved into the env file only.
    const env = onHost(`cat /etc/apphost/${ID}.env`).stdout;
    const password = /^POSTGRES_PASSWORD="([A-Za-z0-9]{32})"$/m.exec(env)?.[1];
    assert.ok(password, "POSTGRES_PASSWORD is the generated password");
    assert.match(env, /^POSTGRES_SERVER="127\.0\.0\.1"$/m);
    assert.match(env, new RegExp(`^POSTGRES_DB="${DB}"$`, "m"));
    assert.match(env, new RegExp(`^POSTGRES_USER="${DB}"$`, "m"));

    // ${database.password} never in plain text: not in the state, not in the engine's output.
    const exported = pulumiCli(["stack", "export", "--stack", STACK], { backendUrl: backend });
    assert.equal(exported.code, 0, exported.stderr);
    assert.ok(exported.stdout.length > 1000);
    assert.equal(exported.stdout.includes(password), false, "the password is in the state export");
    assert.equal(engineOutput.includes(password), false, "the password is in the engine output");
  });

  it("a second up with nothing changed changes nothing", async function () {
    const res = await up(SOURCE);
    assert.equal(res.summary.result, "succeeded");
    assert.equal(changedCount(res.summary.resourceChanges), 0, JSON.stringify(res.summary.resourceChanges));
  });

  it("a Python app whose build runs Yarn (a frontend beside it): npm installs Yarn once into the stack's cache/tools", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-yarn-frontend-"));
    fs.cpSync(SOURCE, dir, { recursive: true });
    fs.cpSync(NODE_LOCKFILES, path.join(dir, "frontend"), { recursive: true });
    const stack = await stackFor(dir, {
      build: "cd frontend && yarn install --frozen-lockfile && yarn build",
    });
    const res = await stack.up({ onOutput: log, configFile: stack.configFile });
    assert.equal(res.summary.result, "succeeded");
    // The build ran Yarn 1.22.22 from cache/tools, with the frontend's devDependency (is-number) installed.
    assert.equal(onHost(`cat /srv/${ID}/current/frontend/built.txt`).stdout.trim(), "yarn/1.22.22");
    assert.equal(
      onHost(`readlink -f /srv/${ID}/cache/tools/yarn-1.22.22/bin/yarn`).stdout.trim(),
      `/srv/${ID}/cache/tools/yarn-1.22.22/lib/node_modules/yarn/bin/yarn.js`,
    );
    assert.equal(health().status, 200);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a Python app whose frontend is locked by Yarn 4: the build runs the Yarn the frontend's package.json pins (@yarnpkg/cli-dist), without Yarn 1's settings", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-berry-frontend-"));
    fs.cpSync(SOURCE, dir, { recursive: true });
    fs.cpSync(NODE_BERRY, path.join(dir, "frontend"), { recursive: true });
    const stack = await stackFor(dir, { build: "cd frontend && yarn install --immutable && yarn build" });
    const res = await stack.up({ onOutput: log, configFile: stack.configFile });
    assert.equal(res.summary.result, "succeeded");
    assert.equal(onHost(`cat /srv/${ID}/current/frontend/built.txt`).stdout.trim(), "yarn/4.13.0");
    assert.equal(
      onHost(`readlink -f /srv/${ID}/cache/tools/yarn-4.13.0/bin/yarn`).stdout.trim(),
      `/srv/${ID}/cache/tools/yarn-4.13.0/lib/node_modules/@yarnpkg/cli-dist/bin/yarn.js`,
    );
    assert.equal(health().status, 200);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a Python app whose frontend pins npm (packageManager): the build runs that npm from the stack's cache/tools", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-npm-frontend-"));
    fs.cpSync(SOURCE, dir, { recursive: true });
    const frontend = path.join(dir, "frontend");
    fs.cpSync(NODE_LOCKFILES, frontend, { recursive: true });
    for (const lock of ["yarn.lock", "pnpm-lock.yaml"]) fs.rmSync(path.join(frontend, lock));
    const pkg = path.join(frontend, "package.json");
    fs.writeFileSync(
      pkg,
      `${JSON.stringify({ ...JSON.parse(fs.readFileSync(pkg, "utf8")), packageManager: "npm@10.9.9" }, null, 2)}\n`,
    );
    // The lock this machine's npm writes, as the frontend's authors would commit it.
    const locked = spawnSync(
      "npm",
      ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"],
      {
        cwd: frontend,
        encoding: "utf8",
      },
    );
    assert.equal(locked.status, 0, locked.stderr);
    const stack = await stackFor(dir, { build: "cd frontend && npm ci && npm run build" });
    const res = await stack.up({ onOutput: log, configFile: stack.configFile });
    assert.equal(res.summary.result, "succeeded");
    // The build's npm (npm ci and npm run) is the pinned one, with the frontend's devDependency installed.
    assert.equal(onHost(`cat /srv/${ID}/current/frontend/built.txt`).stdout.trim(), "npm/10.9.9");
    assert.equal(
      onHost(
        `grep -c globalignorefile /srv/${ID}/cache/tools/npm-10.9.9/lib/node_modules/npm/npmrc || true`,
      ).stdout.trim(),
      "0",
    );
    assert.equal(health().status, 200);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("a Python app whose frontend is locked by Bun (full-stack-fastapi-template's): npm installs Bun into cache/tools, which installs the lock and runs the build; another build command is a new release", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-bun-frontend-"));
    fs.cpSync(SOURCE, dir, { recursive: true });
    fs.cpSync(BUN_FRONTEND, path.join(dir, "frontend"), { recursive: true });
    const stack = await stackFor(dir, {
      build: "cd frontend && bun install --frozen-lockfile && bun run build",
    });
    const res = await stack.up({ onOutput: log, configFile: stack.configFile });
    assert.equal(res.summary.result, "succeeded");
    // The build ran Bun 1.4.5 from cache/tools, with the frontend's devDependency (is-number) installed from bun.lock,
    // and Bun's package cache in the stack's cache/bun, which the app user owns.
    assert.equal(onHost(`cat /srv/${ID}/current/frontend/built.txt`).stdout.trim(), "bun/1.4.5");
    assert.equal(onHost(`/srv/${ID}/cache/tools/bun-1.4.5/bin/bun --version`).stdout.trim(), "1.4.5");
    assert.equal(
      onHost(`stat -c %U /srv/${ID}/cache/bun && ls /srv/${ID}/current/frontend/node_modules`).stdout.trim(),
      `${ID}\nis-number`,
    );
    assert.equal(health().status, 200);
    // The same code with another build command: a new release, built anew (the same release published again would
    // skip its build as done, and the host's last job, the same tarball under the same config, was adoptable).
    const first = String(res.outputs.releaseId.value);
    const again = await stackFor(dir, {
      build: "cd frontend && bun install --frozen-lockfile && bun run build && echo again >built-again.txt",
    });
    const rebuilt = await again.up({ onOutput: log, configFile: again.configFile });
    assert.equal(rebuilt.summary.result, "succeeded");
    const second = String(rebuilt.outputs.releaseId.value);
    assert.notEqual(second, first);
    assert.equal(onHost(`readlink /srv/${ID}/current`).stdout.trim(), `/srv/${ID}/releases/${second}`);
    assert.equal(onHost(`cat /srv/${ID}/current/frontend/built-again.txt`).stdout.trim(), "again");
    assert.equal(health().status, 200);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("an app needing a newer Python is refused at check, naming the host's version; the previous release keeps serving", async function () {
    // The same app with requires-python >=3.14 (the sandbox's Debian 12 has 3.11), in a directory of its own.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-py314-"));
    fs.cpSync(SOURCE, dir, { recursive: true });
    const toml = path.join(dir, "pyproject.toml");
    fs.writeFileSync(
      toml,
      fs.readFileSync(toml, "utf8").replace('requires-python = ">=3.11"', 'requires-python = ">=3.14"'),
    );
    const live = onHost(`readlink /srv/${ID}/current`).stdout.trim();
    const hostPython = onHost(
      `python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'`,
    ).stdout.trim();
    await assert.rejects(up(dir), (e: Error) => {
      assert.match(e.message, /phase check failed/);
      assert.ok(
        e.message.includes(
          `the app needs Python >=3.14 (pyproject.toml requires-python) and the host has Python ${hostPython}; ` +
            "run it on a host whose python3 satisfies that, or let uv install a matching Python " +
            "with apphost:app.python set to managed",
        ),
        e.message,
      );
      return true;
    });
    assert.equal(onHost(`readlink /srv/${ID}/current`).stdout.trim(), live);
    assert.equal(health().status, 200);
    assert.deepEqual(JSON.parse(curlHttps(sandbox, HOSTNAME, "/api/notes")), [{ id: 1, body: "first" }]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * The example with its web process under gunicorn, which its dependencies do not name (as healthchecks' and
   * ihatemoney's images install their server themselves), deployed with apphost:app.extraRequirements adding it.
   */
  async function upUnderGunicorn(dir: string): Promise<auto.UpResult> {
    fs.writeFileSync(
      path.join(dir, "Procfile"),
      "release: alembic upgrade head\n" +
        "web: gunicorn notes.main:app -k uvicorn.workers.UvicornWorker --bind 127.0.0.1:$PORT\n",
    );
    const stack = await stackFor(dir, { extraRequirements: ["gunicorn==23.0.0"] });
    return stack.up({ onOutput: log, configFile: stack.configFile });
  }
  /** The live web instance's command line, from its unit's main process. */
  const liveWebCommand = () =>
    onHost(
      `tr '\\0' ' ' </proc/$(systemctl show -p MainPID --value apphost-${ID}-web@$(cat /srv/${ID}/active-port).service)/cmdline`,
    ).stdout.trim();

  it("apphost:app.extraRequirements with uv.lock: uv pip installs gunicorn into the venv uv sync made, and gunicorn serves", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-extra-uv-"));
    try {
      fs.cpSync(SOURCE, dir, { recursive: true });
      const res = await upUnderGunicorn(dir);
      assert.equal(res.summary.result, "succeeded");
      assert.equal(health().status, 200);
      const venv = `/srv/${ID}/current/.venv/bin/python`;
      assert.equal(
        onHost(`${venv} -c 'import gunicorn; print(gunicorn.__version__)'`).stdout.trim(),
        "23.0.0",
      );
      assert.match(
        liveWebCommand(),
        /\/gunicorn notes\.main:app -k uvicorn\.workers\.UvicornWorker --bind 127\.0\.0\.1:83\d\d/,
      );
      assert.deepEqual(JSON.parse(curlHttps(sandbox, HOSTNAME, "/api/notes")), [{ id: 1, body: "first" }]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without uv.lock: pip installs pyproject.toml's dependencies, not the project (notes/ beside migrations/ is no package), then apphost:app.extraRequirements", async function () {
    // `pip install .` would fail: "Multiple top-level packages discovered in a flat-layout: ['notes', 'migrations']".
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-nolock-"));
    try {
      fs.cpSync(SOURCE, dir, { recursive: true });
      fs.rmSync(path.join(dir, "uv.lock"));
      const res = await upUnderGunicorn(dir);
      assert.equal(res.summary.result, "succeeded");
      assert.equal(health().status, 200);
      assert.match(liveWebCommand(), /\/gunicorn notes\.main:app /);
      // The same database: the migration found it at head, the note is there.
      assert.deepEqual(JSON.parse(curlHttps(sandbox, HOSTNAME, "/api/notes")), [{ id: 1, body: "first" }]);
      const venv = `/srv/${ID}/current/.venv/bin/python`;
      assert.match(onHost(`${venv} -m pip show fastapi`).stdout, /^Name: fastapi$/m);
      assert.match(onHost(`${venv} -m pip show gunicorn`).stdout, /^Version: 23\.0\.0$/m);
      // The project itself is not installed: the code runs from the release.
      assert.match(
        onHost(`${venv} -m pip show notes 2>&1 || true`).stdout,
        /WARNING: Package\(s\) not found: notes/,
      );
      assert.doesNotMatch(onHost(`${venv} -m pip list --format=freeze`).stdout, /^(pytest|httpx)==/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a web process on a port of its own, or one that exits as it starts, fails its release in seconds, named by the gate; the previous release keeps serving", async function () {
    // `web: python serve.py`, where serve.py calls uvicorn.run() on a fixed port, as many apps' READMEs start them.
    const live = onHost(`readlink /srv/${ID}/current`).stdout.trim();
    const livePort = Number(onHost(`cat /srv/${ID}/active-port`).stdout.trim());
    const idle = livePort === 8300 ? 8301 : 8300;
    const unit = `apphost-${ID}-web@${idle}.service`;
    const withServer = (port: number) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-ownport-"));
      fs.cpSync(SOURCE, dir, { recursive: true });
      fs.writeFileSync(
        path.join(dir, "serve.py"),
        `import uvicorn\nuvicorn.run("notes.main:app", host="127.0.0.1", port=${port})\n`,
      );
      const procfile = path.join(dir, "Procfile");
      fs.writeFileSync(
        procfile,
        fs.readFileSync(procfile, "utf8").replace(/^web: .*$/m, "web: python serve.py"),
      );
      return dir;
    };
    const refused = async (port: number, says: RegExp) => {
      const dir = withServer(port);
      try {
        await assert.rejects(up(dir), (e: Error) => {
          assert.match(e.message, /phase health-gate failed/);
          assert.match(e.message, says);
          assert.ok(
            e.message.includes(
              `must listen on the port in $PORT, ${idle} for this release: each release starts beside the one serving`,
            ),
            e.message,
          );
          return true;
        });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      assert.equal(onHost(`readlink /srv/${ID}/current`).stdout.trim(), live);
      assert.equal(health().status, 200);
    };
    // On a free port: it listens there, and not on $PORT (the real cgroup, as ss and /proc tell it).
    await refused(
      8399,
      new RegExp(
        `${unit.replace(/[.@]/g, "\\$&")} listens on 127\\.0\\.0\\.1:8399, not on port ${idle}, for \\d+s, so the gate stopped waiting`,
      ),
    );
    // On the live release's port: it cannot bind, and systemd restarts it (RestartSec=2) until the gate stops.
    await refused(
      livePort,
      new RegExp(
        `systemd restarted ${unit.replace(/[.@]/g, "\\$&")} \\d+ times, its journal saying an address is already in use, so the gate stopped waiting`,
      ),
    );
    // An import error as it starts: systemd restarts it (RestartSec=2), and the gate stops at the third restart
    // instead of waiting out its 60 s, with the traceback's last line.
    const crashing = withServer(8399);
    fs.writeFileSync(path.join(crashing, "serve.py"), "import no_such_module\n");
    try {
      await assert.rejects(up(crashing), (e: Error) => {
        const m = new RegExp(
          `phase health-gate failed \\(exit status 16\\): .*\\(last answer: HTTP 000; systemd restarted ${unit.replace(/[.@]/g, "\\$&")} 3 times in (\\d+)s, ` +
            "so the gate stopped waiting: it exits soon after it starts, which waiting does not change; " +
            "the last error in its journal: ModuleNotFoundError: No module named 'no_such_module'\\); traffic stays on the old instance",
        ).exec(e.message);
        assert.ok(m, e.message);
        assert.ok(Number(m[1]) < 30, `the gate waited ${m[1]}s`);
        return true;
      });
    } finally {
      fs.rmSync(crashing, { recursive: true, force: true });
    }
    assert.equal(onHost(`readlink /srv/${ID}/current`).stdout.trim(), live);
    assert.equal(health().status, 200);
    // A web server the app does not install (healthchecks' requirements have no gunicorn): the install phase
    // names it, as the app user with the unit's PATH, before any backup or migration.
    const backups = onHost(`ls /srv/${ID}/shared/backups`).stdout;
    const missing = withServer(8399);
    fs.writeFileSync(
      path.join(missing, "Procfile"),
      fs
        .readFileSync(path.join(missing, "Procfile"), "utf8")
        .replace(/^web: .*$/m, "web: WEB_CONCURRENCY=2 gunicorn-not-installed notes.main:app"),
    );
    try {
      await assert.rejects(up(missing), (e: Error) => {
        assert.ok(
          e.message.includes(
            "phase install failed (exit status 12): not found where the units look (the release, its .venv/bin, then the host's PATH), " +
              "or not executable: `gunicorn-not-installed` (process web: WEB_CONCURRENCY=2 gunicorn-not-installed notes.main:app); " +
              "add each to the app's main dependencies (",
          ),
          e.message,
        );
        assert.doesNotMatch(e.message, /phase (backup|migrate): start/);
        return true;
      });
    } finally {
      fs.rmSync(missing, { recursive: true, force: true });
    }
    assert.equal(onHost(`ls /srv/${ID}/shared/backups`).stdout, backups, "a backup was taken");
    assert.equal(onHost(`readlink /srv/${ID}/current`).stdout.trim(), live);
    assert.equal(health().status, 200);
    assert.deepEqual(JSON.parse(curlHttps(sandbox, HOSTNAME, "/api/notes")), [{ id: 1, body: "first" }]);
  });

  it("Django: collectstatic as the build, migrate from the Procfile, static files from the proxy, hosts from the stack", async function () {
    const dj = await djangoStack();
    const res = await dj.up({ onOutput: log, configFile: dj.configFile });
    assert.equal(res.summary.result, "succeeded");
    const h = http(sandbox, DJANGO.hostname, "/health/", "https");
    assert.equal(h.status, 200, h.body);
    assert.deepEqual(JSON.parse(h.body), { ok: true, polls: ["0001_initial"] });
    const created = curlHttps(sandbox, DJANGO.hostname, "/polls/", [
      "-X",
      "POST",
      "-d",
      '{"text":"Which framework?"}',
    ]);
    assert.deepEqual(JSON.parse(created), { id: 1, text: "Which framework?" });
    assert.match(
      onHost(`cat /srv/${DJANGO.id}/shared/logs/apphost-migrate-*.log`).stdout,
      /Applying polls\.0001_initial\.\.\. OK/,
    );
    // The admin's stylesheet, collected at install, is served by Caddy from the release (DEBUG is off: Django would 404).
    const css = http(sandbox, DJANGO.hostname, "/static/admin/css/base.css", "https");
    assert.equal(css.status, 200);
    assert.match(css.headers["content-type"] ?? "", /^text\/css/);
    assert.equal(css.headers.server, "Caddy");
    // ALLOWED_HOSTS is the stack's hostname: another Host is refused by Django itself.
    const port = onHost(`cat /srv/${DJANGO.id}/active-port`).stdout.trim();
    assert.equal(
      onHost(
        `curl -s -o /dev/null -w '%{http_code}' -H 'Host: evil.example' http://127.0.0.1:${port}/health/`,
      ).stdout,
      "400",
    );
    const env = onHost(`cat /etc/apphost/${DJANGO.id}.env`).stdout;
    assert.match(env, /^DJANGO_ALLOWED_HOSTS="polls\.local\.test"$/m);
    assert.match(env, /^DJANGO_CSRF_TRUSTED_ORIGINS="https:\/\/polls\.local\.test"$/m);
    // The release log records the default revision: the migration Django applied last (its plan ends with
    // sessions), and the count (Django 5.2's admin, auth, contenttypes and sessions: 18, and polls: 1).
    assert.match(
      onHost(`cat /srv/${DJANGO.id}/releases.log`).stdout,
      /\tsessions\.0001_initial \(19 applied\)\tdeployed$/m,
    );
    // apphost:host.packages: installed by the baseline.
    assert.equal(onHost("dpkg-query -W -f='${Status}' tree").stdout, "install ok installed");
    // apphost:app.sharedDirs: the release's media/ is a link the app's sandboxed processes write through.
    const linked = `/srv/${DJANGO.id}/shared/data/linked/media`;
    assert.equal(onHost(`readlink /srv/${DJANGO.id}/current/media`).stdout.trim(), linked);
    const wrote = await runCli(
      "exec",
      ["--stack", DJANGO.stack, "--config-file", dj.configFile, "--", "sh -c 'echo upload > media/u.txt'"],
      { PULUMI_BACKEND_URL: backend },
    );
    assert.equal(wrote.code, 0, wrote.stderr);
    assert.equal(onHost(`stat -c '%U %s' ${linked}/u.txt`).stdout.trim(), `${DJANGO.id} 7`);
    // apphost:app.sharedUrls: Caddy serves what the app wrote there (Django would not: DEBUG is off), and may read
    // nothing else of shared/data (its ACLs let it pass through, not list or read).
    const upload = http(sandbox, DJANGO.hostname, "/media/u.txt", "https");
    assert.equal(upload.status, 200);
    assert.equal(upload.body, "upload\n");
    assert.equal(upload.headers.server, "Caddy");
    assert.notEqual(
      onHost(`runuser -u caddy -- ls /srv/${DJANGO.id}/shared/data`, { allowFailure: true }).code,
      0,
    );
    assert.equal(onHost(`runuser -u caddy -- cat ${linked}/u.txt`).stdout, "upload\n");
    // The notes app beside it still serves.
    assert.equal(health().status, 200);
  });

  it("Django: a second up with nothing changed changes nothing", async function () {
    const dj = await djangoStack();
    const res = await dj.up({ onOutput: log, configFile: dj.configFile });
    assert.equal(changedCount(res.summary.resourceChanges), 0, JSON.stringify(res.summary.resourceChanges));
  });

  it("Django under uWSGI (pyuwsgi's wheel): a release stops the old instance with a graceful shutdown, not uWSGI 2.0's reload on SIGTERM", async function () {
    // uWSGI 2.0 takes SIGTERM for a brutal reload; the unit's UWSGI_HOOK_MASTER_START makes it a graceful shutdown.
    // Without it (measured here): uWSGI's binary re-ran /usr/bin/python3.11 outside the venv, `No module named
    // 'pyuwsgi'`, and the old instance's unit failed (an alert with apphost:alerts); a compiled uwsgi starts again
    // and is killed at the stop timeout (bakerydemo's gate took 36 s).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-uwsgi-"));
    fs.cpSync(DJANGO.source, dir, { recursive: true });
    fs.appendFileSync(path.join(dir, "requirements.txt"), "pyuwsgi==2.0.30\n");
    const procfile = path.join(dir, "Procfile");
    fs.writeFileSync(
      procfile,
      fs
        .readFileSync(procfile, "utf8")
        .replace(
          /^web: .*$/m,
          "web: uwsgi --http-socket 127.0.0.1:$PORT --master --processes 2 --module mysite.wsgi",
        ),
    );
    const dj = await djangoStack(dir);
    try {
      // The first release under uWSGI (gunicorn's instance before it stops gracefully by itself).
      let res = await dj.up({ onOutput: log, configFile: dj.configFile });
      assert.equal(res.summary.result, "succeeded");
      assert.equal(http(sandbox, DJANGO.hostname, "/health/", "https").status, 200);
      const oldUnit = `apphost-${DJANGO.id}-web@${onHost(`cat /srv/${DJANGO.id}/active-port`).stdout.trim()}.service`;
      assert.match(
        onHost(`systemctl show -p Environment ${oldUnit}`).stdout,
        /UWSGI_HOOK_MASTER_START=unix_signal:15 gracefully_kill_them_all/,
      );
      // The next release stops that uWSGI instance.
      fs.writeFileSync(path.join(dir, "polls", "uwsgi_release.py"), "# a second release\n");
      const since = onHost("date -u '+%Y-%m-%d %H:%M:%S'").stdout.trim();
      res = await dj.up({ onOutput: log, configFile: dj.configFile });
      assert.equal(res.summary.result, "succeeded");
      const gate = (res.outputs.releasePhases.value as { phase: string; seconds: number }[]).find(
        (p) => p.phase === "health-gate",
      );
      // The drain (1 s) and the stop, well inside the 30 s stop timeout.
      assert.ok(gate && gate.seconds < 15, JSON.stringify(gate));
      const journal = onHost(`journalctl -u ${oldUnit} --since '${since} UTC' --no-pager -o cat`).stdout;
      assert.match(journal, /graceful shutdown triggered/, journal);
      assert.doesNotMatch(journal, /brutally killing workers|binary reloading|Failed with result/, journal);
      // Stopped, not failed.
      assert.equal(
        onHost(`systemctl is-active ${oldUnit}`, { allowFailure: true }).stdout.trim(),
        "inactive",
      );
      assert.equal(http(sandbox, DJANGO.hostname, "/health/", "https").status, 200);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // The example as it was, for the tests after this one.
    const back = await djangoStack();
    const res = await back.up({ onOutput: log, configFile: back.configFile });
    assert.equal(res.summary.result, "succeeded");
  });

  it("Node: npm ci, the build, node-pg-migrate from the Procfile; serves its API and its built assets", async function () {
    dropPostgres(NODE.db);
    const nd = await nodeStack(NODE.source);
    const res = await nd.up({ onOutput: log, configFile: nd.configFile });
    assert.equal(res.summary.result, "succeeded");
    const h = http(sandbox, NODE.hostname, "/api/health", "https");
    assert.equal(h.status, 200, h.body);
    assert.deepEqual(JSON.parse(h.body), { ok: true, migration: "1700000000000_todos" });
    assert.deepEqual(
      JSON.parse(
        curlHttps(sandbox, NODE.hostname, "/api/todos", [
          "-H",
          "content-type: application/json",
          "-d",
          '{"title":"ship it"}',
        ]),
      ),
      {
        id: 1,
        title: "ship it",
      },
    );
    // The build's page and its hashed script, from the proxy.
    const page = http(sandbox, NODE.hostname, "/assets/index.html", "https");
    assert.equal(page.status, 200);
    const script = /src="(\/assets\/app\.[0-9a-f]{8}\.js)"/.exec(page.body)?.[1];
    assert.ok(script, page.body);
    assert.equal(http(sandbox, NODE.hostname, script, "https").status, 200);
    // node_modules is the release's copy of the tree npm ci made once for this lock file, beside the app's .npmrc:
    // its directories the release's own, so a package resolves inside the release (ts-node looks for tsconfig.json
    // from there), its files hard links to the tree's.
    const tree = onHost(`readlink /srv/${NODE.id}/current/node_modules/.apphost-tree`).stdout.trim();
    assert.match(tree, new RegExp(`^/srv/${NODE.id}/venvs/[0-9a-f]{16}-node/node_modules$`));
    const [real, links] = onHost(
      `cd /srv/${NODE.id}/current && realpath node_modules/express/package.json && stat -c %h node_modules/express/package.json`,
    ).stdout.split("\n");
    assert.match(
      real,
      new RegExp(`^/srv/${NODE.id}/releases/[0-9]{14}-[0-9a-f]{8}/node_modules/express/package\\.json$`),
    );
    assert.ok(Number(links) >= 2, `express/package.json has ${links} links`);
    assert.equal(
      onHost(`cat ${path.dirname(tree)}/.npmrc`).stdout,
      fs.readFileSync(path.join(NODE.source, ".npmrc"), "utf8"),
    );
    const again = await nd.up({ onOutput: log, configFile: nd.configFile });
    assert.equal(
      changedCount(again.summary.resourceChanges),
      0,
      JSON.stringify(again.summary.resourceChanges),
    );
  });

  it("Node: a code change reuses node_modules (the lock file did not change)", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-todo-"));
    fs.cpSync(NODE.source, dir, { recursive: true, filter: (f) => !f.includes("node_modules") });
    const server = path.join(dir, "src", "server.js");
    fs.writeFileSync(
      server,
      fs.readFileSync(server, "utf8").replace("res.json({ ok: true,", "res.json({ ok: true, v: 2,"),
    );
    const before = onHost(
      `readlink /srv/${NODE.id}/current/node_modules/.apphost-tree; readlink /srv/${NODE.id}/current`,
    ).stdout.split("\n");
    const nd = await nodeStack(dir);
    const res = await nd.up({ onOutput: log, configFile: nd.configFile });
    assert.equal(res.summary.result, "succeeded");
    const after = onHost(
      `readlink /srv/${NODE.id}/current/node_modules/.apphost-tree; readlink /srv/${NODE.id}/current`,
    ).stdout.split("\n");
    assert.notEqual(after[1], before[1], "a new release");
    assert.equal(after[0], before[0], "the same node_modules");
    const phases = res.outputs.releasePhases.value as { phase: string; seconds: number }[];
    const install = phases.find((p) => p.phase === "install")?.seconds ?? NaN;
    process.stdout.write(`      install phase with node_modules reused: ${install} s\n`);
    assert.equal(JSON.parse(http(sandbox, NODE.hostname, "/api/health", "https").body).v, 2);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("npm pinned by package.json's packageManager: that npm installs the lock and is the build's npm, its builtin npmrc without Debian's globalignorefile", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-todo-npm-"));
    fs.cpSync(NODE.source, dir, { recursive: true, filter: (f) => !f.includes("node_modules") });
    const pkg = path.join(dir, "package.json");
    fs.writeFileSync(
      pkg,
      `${JSON.stringify({ ...JSON.parse(fs.readFileSync(pkg, "utf8")), packageManager: "npm@10.9.9" }, null, 2)}\n`,
    );
    const st = await nodeStack(dir, {
      runtime: "node",
      staticDir: "public",
      staticPrefix: "/assets/",
      // The build's npm, as the proxy serves what the build wrote.
      build: "npm run build && npm --version > public/npm-version.txt",
    });
    const res = await st.up({ onOutput: log, configFile: st.configFile });
    assert.equal(res.summary.result, "succeeded");
    assert.equal(http(sandbox, NODE.hostname, "/assets/npm-version.txt", "https").body.trim(), "10.9.9");
    const nodeDir = path.dirname(
      onHost(`readlink /srv/${NODE.id}/current/node_modules/.apphost-tree`).stdout.trim(),
    );
    assert.match(nodeDir, new RegExp(`^/srv/${NODE.id}/venvs/[0-9a-f]{16}-node$`));
    assert.deepEqual(
      onHost(
        `readlink /srv/${NODE.id}/current/node_modules/.bin/npm; grep -c globalignorefile ${nodeDir}/.apphost-tool/lib/node_modules/npm/npmrc || true`,
      ).stdout.split("\n"),
      [`${nodeDir}/.apphost-tool/bin/npm`, "0", ""],
    );
    assert.equal(JSON.parse(http(sandbox, NODE.hostname, "/api/health", "https").body).ok, true);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * The workspace's library changes its code, not its package.json: the next release uses the same tree and loads
   * the new code. Removes the copy afterwards.
   */
  async function libraryChanges(
    dir: string,
    deploy: () => Promise<void>,
    tree: () => string,
    before: string,
  ) {
    const lib = path.join(dir, "packages", "greeting", "index.js");
    fs.writeFileSync(lib, fs.readFileSync(lib, "utf8").replace("hello from", "hello again from"));
    await deploy();
    const health = JSON.parse(http(sandbox, NODE.hostname, "/api/health", "https").body);
    assert.deepEqual(health, { ok: true, greeting: "hello again from packages/greeting" });
    assert.equal(tree(), before, "node_modules was installed again");
    fs.rmSync(dir, { recursive: true, force: true });
  }

  it("an npm workspace: the members' dependencies, a devDependency for the build under NODE_ENV=production, a library by its package name from the release, a warning for engines.node", async function () {
    // The same stack takes the workspace app: its API from the Procfile (cd api && node server.js).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-npm-ws-"));
    fs.cpSync(NPM_WORKSPACE, dir, { recursive: true, filter: (f) => !f.includes("node_modules") });
    const deploy = async () => {
      // The runtime is detected: a package.json with a start script and no Python files.
      const ws = await nodeStack(dir, { env: { NODE_ENV: "production" } });
      const res = await ws.up({ onOutput: log, configFile: ws.configFile });
      assert.equal(res.summary.result, "succeeded");
    };
    const from = engineOutput.length;
    await deploy();
    // The example asks for Node >=20; Debian 12's nodejs is 18: a warning, judged by Debian's node-semver, and the deploy goes on.
    assert.match(
      engineOutput.slice(from),
      /apphost: warning: package\.json's engines\.node is ">=20" and this release runs Node v18\.\d+\.\d+, the host's nodejs/,
    );
    const health = () => JSON.parse(http(sandbox, NODE.hostname, "/api/health", "https").body);
    assert.deepEqual(health(), { ok: true, greeting: "hello from packages/greeting" });
    // The build ran mkdirp, a devDependency, though NODE_ENV is production; its page comes from api's express.static.
    assert.match(http(sandbox, NODE.hostname, "/", "https").body, /<p>built for production<\/p>/);
    const links = () =>
      onHost(
        [
          `cd /srv/${NODE.id}/current`,
          "readlink node_modules/.apphost-tree node_modules/@shop/greeting",
          "test -d node_modules/express && ! test -L node_modules/express && echo directory",
        ].join(" && "),
      ).stdout.split("\n");
    const first = links();
    assert.match(first[0], new RegExp(`^/srv/${NODE.id}/venvs/[0-9a-f]{16}-node/node_modules$`));
    assert.deepEqual(first.slice(1, 3), ["../../packages/greeting", "directory"]);
    await libraryChanges(dir, deploy, () => links()[0], first[0]);
  });

  it("Yarn 1, then pnpm: each lock installs with its own tool, which starts the web process and runs the build", async function () {
    // The same stack, one app locked twice: yarn.lock is found first; then apphost:app.requirements names pnpm-lock.yaml.
    const deploy = async (tool: "yarn" | "pnpm", requirements?: string) => {
      const st = await nodeStack(NODE_LOCKFILES, {
        processes: { web: `${tool} start` },
        build: `${tool} run build`,
        env: { NODE_ENV: "production" },
        ...(requirements ? { requirements } : {}),
      });
      const res = await st.up({ onOutput: log, configFile: st.configFile });
      assert.equal(res.summary.result, "succeeded");
    };
    /**
     * Deploys with the tool; the release is started by it and built by it with its devDependency though NODE_ENV is
     * production, ms comes from the lock, and the tool is installed beside the tree and linked into its .bin.
     * Returns the tree.
     */
    const released = async (tool: "yarn" | "pnpm", version: string, requirements?: string) => {
      await deploy(tool, requirements);
      const health = JSON.parse(http(sandbox, NODE.hostname, "/api/health", "https").body);
      const by = `${tool}/${version}`;
      assert.deepEqual(health, { ok: true, startedBy: by, built: by, twoDays: 172800000 });
      const tree = onHost(`readlink /srv/${NODE.id}/current/node_modules/.apphost-tree`).stdout.trim();
      assert.match(tree, new RegExp(`^/srv/${NODE.id}/venvs/[0-9a-f]{16}-node/node_modules$`));
      assert.equal(
        onHost(`readlink /srv/${NODE.id}/current/node_modules/.bin/${tool}`).stdout.trim(),
        `${path.dirname(tree)}/.apphost-tool/bin/${tool}`,
      );
      return tree;
    };
    const yarnTree = await released("yarn", "1.22.22");
    const pnpmTree = await released("pnpm", "9.15.9", "pnpm-lock.yaml");
    assert.notEqual(pnpmTree, yarnTree, "a tree of its own");
    // pnpm's layout, through the release's link: ms links into its virtual store.
    assert.equal(
      onHost(`readlink /srv/${NODE.id}/current/node_modules/ms`).stdout.trim(),
      ".pnpm/ms@2.1.3/node_modules/ms",
    );
  });

  it("Yarn 4 with nodeLinker: node-modules: @yarnpkg/cli-dist installs the lock with its patch, runs the build, and starts the web process in its read-only release", async function () {
    const st = await nodeStack(NODE_BERRY, {
      processes: { web: "yarn start" },
      build: "yarn run build",
      env: { NODE_ENV: "production" },
    });
    const res = await st.up({ onOutput: log, configFile: st.configFile });
    assert.equal(res.summary.result, "succeeded");
    const health = JSON.parse(http(sandbox, NODE.hostname, "/api/health", "https").body);
    assert.deepEqual(health, {
      ok: true,
      startedBy: "yarn/4.13.0",
      built: "yarn/4.13.0",
      twoDays: 172800000,
      patched: true,
    });
    const current = `/srv/${NODE.id}/current`;
    const tree = onHost(`readlink ${current}/node_modules/.apphost-tree`).stdout.trim();
    assert.match(tree, new RegExp(`^/srv/${NODE.id}/venvs/[0-9a-f]{16}-node/node_modules$`));
    const nodeDir = path.dirname(tree);
    // The release reads the install's state through a link; Yarn is npm's @yarnpkg/cli-dist beside the tree.
    assert.deepEqual(
      onHost(
        `readlink ${current}/.yarn/install-state.gz ${current}/node_modules/.bin/yarn; readlink -f ${nodeDir}/.apphost-tool/bin/yarn`,
      ).stdout.split("\n"),
      [
        `${nodeDir}/.yarn/install-state.gz`,
        `${nodeDir}/.apphost-tool/bin/yarn`,
        `${nodeDir}/.apphost-tool/lib/node_modules/@yarnpkg/cli-dist/bin/yarn.js`,
        "",
      ],
    );
    // The patch was copied beside the lock; the web unit has none of Yarn 1's settings, which Yarn 4 refuses.
    assert.equal(
      onHost(`cat ${nodeDir}/.yarn/patches/ms-npm-2.1.3-81ff3cfac1.patch`).stdout,
      fs.readFileSync(path.join(NODE_BERRY, ".yarn/patches/ms-npm-2.1.3-81ff3cfac1.patch"), "utf8"),
    );
    assert.doesNotMatch(onHost(`systemctl cat apphost-${NODE.id}-web@.service`).stdout, /YARN_/);
  });

  it("the same workspace locked by Yarn 1: yarn links the members as npm does, and each release loads its own", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-yarn-ws-"));
    fs.cpSync(NPM_WORKSPACE, dir, { recursive: true, filter: (f) => !f.includes("node_modules") });
    const deploy = async () => {
      const ws = await nodeStack(dir, {
        requirements: "yarn.lock",
        build: "yarn build",
        env: { NODE_ENV: "production" },
      });
      const res = await ws.up({ onOutput: log, configFile: ws.configFile });
      assert.equal(res.summary.result, "succeeded");
    };
    await deploy();
    const health = () => JSON.parse(http(sandbox, NODE.hostname, "/api/health", "https").body);
    assert.deepEqual(health(), { ok: true, greeting: "hello from packages/greeting" });
    assert.match(http(sandbox, NODE.hostname, "/", "https").body, /<p>built for production<\/p>/);
    const links = () =>
      onHost(
        `cd /srv/${NODE.id}/current && readlink node_modules/.apphost-tree node_modules/@shop/greeting node_modules/.bin/yarn`,
      ).stdout.split("\n");
    const first = links();
    assert.match(first[0], new RegExp(`^/srv/${NODE.id}/venvs/[0-9a-f]{16}-node/node_modules$`));
    assert.deepEqual(first.slice(1, 3), [
      "../../packages/greeting",
      `${path.dirname(first[0])}/.apphost-tool/bin/yarn`,
    ]);
    await libraryChanges(dir, deploy, () => links()[0], first[0]);
  });

  it("the same workspace locked by Yarn 4 (nodeLinker: node-modules): its members linked as npm links them, each release loading its own", async function () {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-berry-ws-"));
    fs.cpSync(NPM_WORKSPACE, dir, { recursive: true, filter: (f) => !f.includes("node_modules") });
    for (const f of ["yarn.lock", "package-lock.json"]) fs.rmSync(path.join(dir, f));
    fs.renameSync(path.join(dir, "yarn-berry.lock"), path.join(dir, "yarn.lock"));
    fs.writeFileSync(path.join(dir, ".yarnrc.yml"), "nodeLinker: node-modules\n");
    const deploy = async () => {
      const ws = await nodeStack(dir, {
        build: "yarn workspace web run build",
        env: { NODE_ENV: "production" },
      });
      const res = await ws.up({ onOutput: log, configFile: ws.configFile });
      assert.equal(res.summary.result, "succeeded");
    };
    await deploy();
    assert.deepEqual(JSON.parse(http(sandbox, NODE.hostname, "/api/health", "https").body), {
      ok: true,
      greeting: "hello from packages/greeting",
    });
    assert.match(http(sandbox, NODE.hostname, "/", "https").body, /<p>built for production<\/p>/);
    const links = () =>
      onHost(
        `cd /srv/${NODE.id}/current && readlink node_modules/.apphost-tree node_modules/@shop/greeting node_modules/.bin/yarn .yarn/install-state.gz`,
      ).stdout.split("\n");
    const first = links();
    assert.match(first[0], new RegExp(`^/srv/${NODE.id}/venvs/[0-9a-f]{16}-node/node_modules$`));
    assert.deepEqual(first.slice(1, 4), [
      "../../packages/greeting",
      `${path.dirname(first[0])}/.apphost-tool/bin/yarn`,
      `${path.dirname(first[0])}/.yarn/install-state.gz`,
    ]);
    await libraryChanges(dir, deploy, () => links()[0], first[0]);
  });

  it("a uv workspace: the app in backend/, the lock and a shared library above it", async function () {
    const ws = await exampleStack("ws", {
      name: "ws",
      source: path.join(ROOT, "examples", "uv-workspace", "backend"),
      runtime: "python",
      healthPath: "/health",
      basePort: 8700,
    });
    try {
      const res = await ws.up({ onOutput: log, configFile: ws.configFile });
      assert.equal(res.summary.result, "succeeded");
      assert.doesNotMatch(res.stdout, /apphost: warning: the worker/, "a worker that runs is no warning");
      const h = http(sandbox, "ws.local.test", "/health", "https");
      assert.equal(h.status, 200, h.body);
      assert.deepEqual(JSON.parse(h.body), { ok: true, greeting: "hello, apphost" });
      // The library is installed into the venv as a copy, not as a link back into a release.
      const venv = onHost("readlink /srv/ws-local-ws/current/.venv").stdout.trim();
      assert.match(
        onHost(`${venv}/bin/python -c 'import greeting; print(greeting.__file__)'`).stdout.trim(),
        new RegExp(`^${venv}/lib/python3\\.\\d+/site-packages/greeting/__init__\\.py$`),
      );
      // The worker runs `python app/worker.py`, which imports the backend's own package (PYTHONPATH).
      let started = "";
      for (let i = 0; i < 30 && started === ""; i++) {
        started = onHost("cat /srv/ws-local-ws/shared/data/worker-started 2>/dev/null || true").stdout.trim();
        if (started === "") await new Promise((r) => setTimeout(r, 500));
      }
      assert.equal(
        started,
        "backend",
        onHost("journalctl -u apphost-ws-local-ws-worker --no-pager -n 20").stdout,
      );
      const again = await ws.up({ onOutput: log, configFile: ws.configFile });
      assert.equal(
        changedCount(again.summary.resourceChanges),
        0,
        JSON.stringify(again.summary.resourceChanges),
      );
    } finally {
      await ws.destroy({ configFile: ws.configFile }).catch(() => undefined);
    }
  });

  it("Poetry: the pinned Poetry installs poetry.lock's main group into the venv, not the dev group; apphost:app.dependencyGroups adds it", async function () {
    const app = {
      name: "greeter",
      source: path.join(ROOT, "examples", "flask-poetry"),
      healthPath: "/healthz",
      basePort: 8800,
      // The Procfile's web, and a worker whose queue's server the host does not have: it exits as it starts.
      processes: {
        web: { command: "gunicorn app:app --bind 127.0.0.1:$PORT --workers 2", kind: "web" },
        queue: {
          command: `python -c "import sys; sys.exit('queue: no server at localhost:6379')"`,
          kind: "worker",
        },
      },
    };
    const po = await exampleStack("po", app);
    const res = await po.up({ onOutput: log, configFile: po.configFile });
    assert.equal(res.summary.result, "succeeded");
    // The deploy went through, and pulumi up shows the worker that did not stay up, with its journal.
    assert.match(
      res.stdout,
      /apphost: warning: the worker apphost-greeter-local-po-queue\.service is not running \d+\.\ds after this deploy restarted it \((activating|failed); systemd restarted it (once|\d+ times) since\): the release is live, the worker keeps restarting until systemd gives up on it; once its cause is fixed, pulumi up --refresh starts it again\. Last lines of its journal:\n(.*\n)*.*queue: no server at localhost:6379/,
    );
    const lock = fs.readFileSync(path.join(ROOT, "examples", "flask-poetry", "poetry.lock"), "utf8");
    const flask = /\[\[package\]\]\nname = "flask"\nversion = "([^"]+)"/.exec(lock)?.[1];
    assert.match(flask ?? "", /^\d+\.\d+/, "flask in poetry.lock");
    const h = http(sandbox, "po.local.test", "/healthz", "https");
    assert.equal(h.status, 200, h.body);
    assert.deepEqual(JSON.parse(h.body), { ok: true, flask, pytest: false });
    // Poetry itself, in its own venv on the host, runs as bin/python -m poetry (its renamed venv's shebangs are stale).
    assert.match(
      onHost(`/var/lib/apphost/tools/poetry-${POETRY_VERSION}/bin/python -m poetry --version`).stdout,
      new RegExp(`Poetry \\(version ${POETRY_VERSION.replace(/\./g, "\\.")}\\)`),
    );
    // apphost:app.dependencyGroups: the dev group as well (Poetry's --only main,dev), into a venv of its own.
    const withDev = await exampleStack("po", { ...app, dependencyGroups: ["dev"] });
    const res2 = await withDev.up({ onOutput: log, configFile: withDev.configFile });
    assert.equal(res2.summary.result, "succeeded");
    const h2 = http(sandbox, "po.local.test", "/healthz", "https");
    assert.deepEqual(JSON.parse(h2.body), { ok: true, flask, pytest: true });
    assert.equal(
      onHost("ls -1 /srv/greeter-local-po/venvs/ | grep -c -- -py").stdout.trim(),
      "2",
      "a venv for each set of groups",
    );
  });

  it("Pipenv: install --deploy from Pipfile.lock, Flask-Migrate from the Procfile; a Pipfile changed without pipenv lock fails its release, the previous one serving", async function () {
    // A copy: the second deploy edits its Pipfile.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-pipenv-"));
    fs.cpSync(path.join(ROOT, "examples", "flask-pipenv"), dir, { recursive: true });
    const hostname = "pe.local.test";
    // Processes and the migration (flask db upgrade) from the app's Procfile.
    const pe = await exampleStack(
      "pe",
      { name: "board", source: dir, healthPath: "/healthz", basePort: 8900 },
      { kind: "sqlite" },
    );
    try {
      const res = await pe.up({ onOutput: log, configFile: pe.configFile });
      assert.equal(res.summary.result, "succeeded");
      const lock = JSON.parse(fs.readFileSync(path.join(dir, "Pipfile.lock"), "utf8"));
      const flask = String(lock.default.flask.version).replace(/^==/, "");
      const revision = /^revision = '([0-9a-f]+)'$/m.exec(
        fs
          .readdirSync(path.join(dir, "migrations", "versions"))
          .map((f) => fs.readFileSync(path.join(dir, "migrations", "versions", f), "utf8"))
          .join("\n"),
      )?.[1];
      assert.match(revision ?? "", /^[0-9a-f]{12}$/);
      curlHttps(sandbox, hostname, "/messages", [
        "-H",
        "content-type: application/json",
        "-d",
        '{"body":"first"}',
      ]);
      const healthy = { ok: true, flask, pytest: false, revision, messages: 1 };
      assert.deepEqual(JSON.parse(curlHttps(sandbox, hostname, "/healthz")), healthy);
      assert.match(
        onHost(`/var/lib/apphost/tools/pipenv-${PIPENV_VERSION}/bin/python -m pipenv --version`).stdout,
        new RegExp(`version ${PIPENV_VERSION.replace(/\./g, "\\.")}`),
      );

      // A dependency added to the Pipfile without `pipenv lock`: the install refuses the stale lock.
      const id = "board-local-pe";
      const live = onHost(`readlink /srv/${id}/current`).stdout.trim();
      fs.appendFileSync(path.join(dir, "Pipfile"), '\n[packages.requests]\nversion = "*"\n');
      await assert.rejects(pe.up({ onOutput: log, configFile: pe.configFile }), (e: Error) => {
        assert.match(e.message, /phase install failed/);
        assert.match(e.message, /Pipfile\.lock[\s\S]*is out of[\s\S]*date/);
        assert.match(
          e.message,
          /pipenv install --deploy` \(as board-local-pe in \/srv\/board-local-pe\/releases\/[^)]+\) exited with status 1/,
        );
        return true;
      });
      assert.equal(onHost(`readlink /srv/${id}/current`).stdout.trim(), live);
      assert.deepEqual(JSON.parse(curlHttps(sandbox, hostname, "/healthz")), healthy);
    } finally {
      await pe.destroy({ configFile: pe.configFile }).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("PDM: install --prod from pdm.lock, without the dev group or the project itself, a src/ layout importable from the release", async function () {
    const hostname = "pm.local.test";
    // The web process from the app's Procfile.
    const pm = await exampleStack("pm", {
      name: "tally",
      source: path.join(ROOT, "examples", "fastapi-pdm"),
      healthPath: "/healthz",
      basePort: 9000,
    });
    try {
      const res = await pm.up({ onOutput: log, configFile: pm.configFile });
      assert.equal(res.summary.result, "succeeded");
      const lock = fs.readFileSync(path.join(ROOT, "examples", "fastapi-pdm", "pdm.lock"), "utf8");
      const fastapi = /\[\[package\]\]\nname = "fastapi"\nversion = "([^"]+)"/.exec(lock)?.[1];
      assert.match(fastapi ?? "", /^\d+\.\d+/, "fastapi in pdm.lock");
      assert.deepEqual(JSON.parse(curlHttps(sandbox, hostname, "/healthz")), {
        ok: true,
        fastapi,
        pytest: false,
        installed: false,
      });
      assert.deepEqual(JSON.parse(curlHttps(sandbox, hostname, "/count/visits", ["-X", "POST"])), {
        name: "visits",
        count: 1,
      });
      // PDM in its own venv, with the dependency versions it was pinned with (hishel 1, not 2).
      assert.match(
        onHost(`/var/lib/apphost/tools/pdm-${PDM_VERSION}/bin/python -m pdm --version`).stdout,
        new RegExp(`PDM, version ${PDM_VERSION.replace(/\./g, "\\.")}`),
      );
      assert.match(
        onHost(`/var/lib/apphost/tools/pdm-${PDM_VERSION}/bin/python -m pip show hishel`).stdout,
        /^Version: 1\.4\.0$/m,
      );
    } finally {
      await pm.destroy({ configFile: pm.configFile }).catch(() => undefined);
    }
  });
});
