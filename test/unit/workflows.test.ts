import assert from "assert/strict";
import { spawnSync, SpawnSyncReturns } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const root = path.resolve(__dirname, "../..");
const workflowsDir = path.join(root, ".github", "workflows");

// js-yaml is not a dependency of apphost; mocha depends on it, so resolve it from mocha.
const yaml = require(
  require.resolve("js-yaml", { paths: [path.dirname(require.resolve("mocha/package.json"))] }),
) as { load(source: string): unknown };

// ---------------------------------------------------------------------------
// A typed view of the parts of a workflow the policy reads

type Concurrency = string | { group: string; "cancel-in-progress"?: boolean | string };

interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, unknown>;
  env?: Record<string, string>;
}

interface Job {
  name?: string;
  if?: string;
  uses?: string;
  environment?: string | { name: string; url?: string };
  permissions?: Record<string, string> | string;
  concurrency?: Concurrency;
  strategy?: { matrix?: Record<string, unknown> };
  env?: Record<string, string>;
  steps?: Step[];
}

interface Workflow {
  file: string;
  name?: string;
  on: Record<string, unknown>;
  permissions?: Record<string, string> | string;
  concurrency?: Concurrency;
  env?: Record<string, string>;
  jobs: Record<string, Job>;
}

function loadWorkflows(): Workflow[] {
  return fs
    .readdirSync(workflowsDir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((file) => {
      const doc = yaml.load(fs.readFileSync(path.join(workflowsDir, file), "utf8")) as Omit<Workflow, "file">;
      return { file, ...doc };
    });
}

const workflows = loadWorkflows();
const byFile = (file: string): Workflow => {
  const wf = workflows.find((w) => w.file === file);
  assert.ok(wf, `.github/workflows/${file} is missing`);
  return wf;
};

const allJobs = (): [Workflow, string, Job][] =>
  workflows.flatMap((wf) =>
    Object.entries(wf.jobs).map(([id, job]): [Workflow, string, Job] => [wf, id, job]),
  );

const isPulumi = (s: Step) => s.uses?.startsWith("pulumi/actions@") ?? false;
const pulumiSteps = (job: Job) => (job.steps ?? []).filter(isPulumi);
const concurrencyOf = (wf: Workflow, job: Job) => {
  const c = job.concurrency ?? wf.concurrency;
  return c === undefined ? undefined : typeof c === "string" ? { group: c } : c;
};
const environmentOf = (job: Job) =>
  typeof job.environment === "string" ? job.environment : job.environment?.name;

function step(job: Job, name: string): Step {
  const s = (job.steps ?? []).find((x) => x.name === name);
  assert.ok(s, `no step named "${name}"`);
  return s;
}

// ---------------------------------------------------------------------------

function actionlint(args: string[] = [], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return spawnSync("bash", [path.join(opts.cwd ?? root, "scripts", "actionlint"), ...args], {
    cwd: opts.cwd ?? root,
    env: opts.env ?? process.env,
    encoding: "utf8",
    timeout: 600_000,
  });
}

const show = (r: SpawnSyncReturns<string>) =>
  `exit ${r.status}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe("workflows: actionlint", function () {
  // A cold run builds actionlint from the Go module proxy (seconds to a minute).
  this.timeout(600_000);

  it("scripts/actionlint finds nothing in .github/workflows (Go and shellcheck required)", () => {
    const r = actionlint();
    assert.equal(r.status, 0, `scripts/actionlint failed; it needs Go and shellcheck on PATH.\n${show(r)}`);
  });

  it("a warm run rebuilds nothing", () => {
    // The path alone: the script checks its build first, as a lint does, and stops there (the lint above ran).
    const r = actionlint([], { env: { ...process.env, APPHOST_ACTIONLINT_PRINT_PATH: "1" } });
    assert.equal(r.status, 0, show(r));
    assert.doesNotMatch(r.stderr, /building/);
    const bin = r.stdout.trim();
    const version = /github\.com\/rhysd\/actionlint (v\S+)/.exec(
      fs.readFileSync(path.join(root, "tools/actionlint/go.mod"), "utf8"),
    )?.[1];
    assert.equal(path.basename(bin), `actionlint-${version}`);
    assert.ok(fs.statSync(bin).mode & 0o100, `${bin} is not executable`);
  });

  it("fails loudly when Go is missing and nothing is cached", () => {
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-cache-"));
    try {
      const noGo = (process.env.PATH ?? "")
        .split(":")
        .filter((dir) => dir !== "" && !fs.existsSync(path.join(dir, "go")))
        .join(":");
      const r = actionlint([], { env: { ...process.env, PATH: noGo, XDG_CACHE_HOME: cache } });
      assert.equal(r.status, 127, show(r));
      assert.match(r.stderr, /go is not on PATH; install Go/);
    } finally {
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });

  it("exits non-zero on findings, including `with:` inputs of fully pinned actions", () => {
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-lint-"));
    try {
      fs.mkdirSync(path.join(repo, "scripts"));
      fs.copyFileSync(path.join(root, "scripts/actionlint"), path.join(repo, "scripts/actionlint"));
      fs.cpSync(path.join(root, "tools/actionlint"), path.join(repo, "tools/actionlint"), {
        recursive: true,
      });
      fs.mkdirSync(path.join(repo, ".github/workflows"), { recursive: true });
      const bad = (lines: string[]) =>
        fs.writeFileSync(
          path.join(repo, ".github/workflows/bad.yml"),
          ["on: push", "jobs:", "  bad:", "    runs-on: ubuntu-24.04", "    steps:", ...lines, ""].join("\n"),
        );

      bad(["      - uses: actions/checkout@v6.0.2", "      - run: echo $HOME"]);
      let r = actionlint([], { cwd: repo });
      assert.equal(r.status, 1, show(r));
      assert.match(r.stdout, /bad\.yml:7:\d+: shellcheck reported issue in this script: SC2086/);

      // actionlint alone knows inputs only by major tag; the script's second pass catches this.
      bad(["      - uses: actions/checkout@v6.0.2", "        with:", "          fetch-dept: 1"]);
      r = actionlint([], { cwd: repo });
      assert.equal(r.status, 1, show(r));
      assert.match(
        r.stdout,
        /bad\.yml:8:\d+: input "fetch-dept" is not defined in action "actions\/checkout@v6"/,
      );
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });
});

describe("workflows: policy", () => {
  it("has the four workflows", () => {
    assert.deepEqual(
      workflows.map((w) => w.file),
      ["deploy-prod.yml", "deploy-staging.yml", "drift.yml", "preview.yml"],
    );
  });

  it("pins every action to a full version tag or a commit, never a branch or a major tag", () => {
    const offenders: string[] = [];
    for (const [wf, id, job] of allJobs()) {
      const uses = [job.uses, ...(job.steps ?? []).map((s) => s.uses)].filter((u): u is string => !!u);
      for (const u of uses) {
        if (u.startsWith("./")) continue; // an action in this repository
        if (!/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_./-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})$/.test(u)) {
          offenders.push(`${wf.file} ${id}: ${u}`);
        }
      }
    }
    assert.deepEqual(offenders, []);
  });

  it("grants only contents: read at the top; writes only where a job needs them", () => {
    const allowedWrites: Record<string, string[]> = {
      "preview.yml/preview": ["id-token", "pull-requests"],
      "deploy-staging.yml/up": ["id-token"],
      "deploy-prod.yml/up": ["id-token"],
      "drift.yml/drift": ["id-token", "issues"],
    };
    for (const wf of workflows) {
      assert.deepEqual(wf.permissions, { contents: "read" }, `${wf.file}: top-level permissions`);
    }
    for (const [wf, id, job] of allJobs()) {
      assert.equal(typeof job.permissions, "object", `${wf.file} ${id}: declare permissions per job`);
      const writes = Object.entries(job.permissions as Record<string, string>)
        .filter(([, level]) => level === "write")
        .map(([scope]) => scope)
        .sort();
      assert.deepEqual(
        writes,
        allowedWrites[`${wf.file}/${id}`] ?? [],
        `${wf.file} ${id}: write permissions`,
      );
      const usesAws = (job.steps ?? []).some((s) =>
        s.uses?.startsWith("aws-actions/configure-aws-credentials@"),
      );
      assert.equal(writes.includes("id-token"), usesAws, `${wf.file} ${id}: id-token only for AWS OIDC`);
    }
  });

  it("keeps secrets out of workflow- and job-level env, and installs dependencies before any credential", () => {
    for (const [wf, id, job] of allJobs()) {
      for (const [where, env] of [
        ["workflow", wf.env],
        ["job", job.env],
      ] as const) {
        for (const [k, v] of Object.entries(env ?? {})) {
          assert.doesNotMatch(String(v), /secrets\./, `${wf.file} ${id}: ${where} env ${k} carries a secret`);
        }
      }
      const steps = job.steps ?? [];
      const install = steps.findIndex((s) => s.run === "npm ci");
      const firstCredential = steps.findIndex(
        (s) => s.uses?.startsWith("aws-actions/") || JSON.stringify(s.env ?? {}).includes("secrets."),
      );
      assert.ok(install >= 0, `${wf.file} ${id}: no npm ci step`);
      assert.ok(install < firstCredential, `${wf.file} ${id}: npm ci must run before credentials are set up`);
    }
  });

  it("every deploy runs one at a time per stack, never cancelled half-way", () => {
    const deploys = allJobs().filter(([, , job]) => pulumiSteps(job).some((s) => s.with?.command === "up"));
    assert.deepEqual(deploys.map(([wf, id]) => `${wf.file}/${id}`).sort(), [
      "deploy-prod.yml/up",
      "deploy-staging.yml/up",
    ]);
    const groups = new Set<string>();
    for (const [wf, id, job] of deploys) {
      const stack = String(pulumiSteps(job)[0].with?.["stack-name"]);
      const c = concurrencyOf(wf, job);
      assert.ok(c, `${wf.file} ${id}: no concurrency group`);
      assert.match(
        c.group,
        new RegExp(`(^|[^a-z0-9])${stack}($|[^a-z0-9])`),
        `${wf.file}: group not keyed by stack`,
      );
      assert.equal(c["cancel-in-progress"], false, `${wf.file}: cancel-in-progress must be false`);
      assert.ok(!groups.has(c.group), `${wf.file}: group ${c.group} shared with another deploy`);
      groups.add(c.group);
    }
    // Previews and drift checks never queue in a deploy's group: a newer pending run
    // cancels an older pending one, and that must never be a deploy.
    for (const [wf, id, job] of allJobs()) {
      if (deploys.some(([w, i]) => w === wf && i === id)) continue;
      const c = concurrencyOf(wf, job);
      assert.ok(
        c === undefined || !groups.has(c.group),
        `${wf.file} ${id}: shares a deploy's concurrency group`,
      );
    }
  });

  it("prod is only changed from the production environment", () => {
    for (const [wf, id, job] of allJobs()) {
      for (const s of pulumiSteps(job)) {
        const cmd = s.with?.command;
        if (s.with?.["stack-name"] === "prod" && (cmd === "up" || cmd === "destroy" || cmd === "refresh")) {
          assert.equal(environmentOf(job), "production", `${wf.file} ${id}: pulumi ${cmd} on prod`);
        }
      }
    }
    const prod = byFile("deploy-prod.yml");
    assert.deepEqual(Object.keys(prod.on).sort(), ["push", "workflow_dispatch"]);
    assert.deepEqual(prod.on.push, { tags: ["v*"] });
    assert.equal(environmentOf(prod.jobs.up), "production");
    assert.equal(prod.jobs.up.if, "github.ref_type == 'tag' || github.ref == 'refs/heads/main'");
    assert.match(fs.readFileSync(path.join(workflowsDir, "deploy-prod.yml"), "utf8"), /required reviewers/);
  });

  it("staging deploys every push to main", () => {
    const wf = byFile("deploy-staging.yml");
    assert.deepEqual(wf.on, { push: { branches: ["main"] } });
    assert.deepEqual(
      pulumiSteps(wf.jobs.up).map((s) => [s.with?.command, s.with?.["stack-name"]]),
      [["up", "staging"]],
    );
  });

  it("previews staging and prod on every pull request and comments on it", () => {
    const wf = byFile("preview.yml");
    assert.ok("pull_request" in wf.on);
    const job = wf.jobs.preview;
    assert.deepEqual(job.strategy?.matrix?.stack, ["staging", "prod"]);
    const [s] = pulumiSteps(job);
    assert.equal(s.with?.command, "preview");
    assert.equal(s.with?.["stack-name"], "${{ matrix.stack }}");
    assert.equal(s.with?.["comment-on-pr"], true);
    assert.equal(s.with?.["github-token"], "${{ secrets.GITHUB_TOKEN }}");
  });
});

// ---------------------------------------------------------------------------
// The drift job's shell, executed with stand-ins for npm and gh

describe("workflows: drift job behaviour", function () {
  this.timeout(60_000);
  const job = byFile("drift.yml").jobs.drift;
  let tmp: string;

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-drift-"));
    fs.mkdirSync(path.join(tmp, "bin"));
    // npm: prints a summary and exits with $FAKE_DRIFT_EXIT.
    fs.writeFileSync(
      path.join(tmp, "bin", "npm"),
      '#!/usr/bin/env bash\necho "npm $*"\necho "~ aws:ec2:SecurityGroup web updated"\nexit "$FAKE_DRIFT_EXIT"\n',
      { mode: 0o755 },
    );
    // gh: logs its arguments; `issue list` answers with $FAKE_GH_ISSUES.
    fs.writeFileSync(
      path.join(tmp, "bin", "gh"),
      '#!/usr/bin/env bash\nprintf "%s\\n" "$*" >>"$FAKE_GH_LOG"\n' +
        'if [[ $1 == issue && $2 == list ]]; then printf "%s" "$FAKE_GH_ISSUES"; fi\n',
      { mode: 0o755 },
    );
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Runs a step's `run:` the way the runner does: `bash --noprofile --norc -eo pipefail`. */
  function runStep(name: string, env: Record<string, string>) {
    const script = path.join(tmp, "step.sh");
    fs.writeFileSync(script, step(job, name).run ?? "");
    const r = spawnSync("bash", ["--noprofile", "--norc", "-eo", "pipefail", script], {
      cwd: tmp,
      encoding: "utf8",
      env: {
        ...process.env,
        PATH: `${path.join(tmp, "bin")}:${process.env.PATH}`,
        STACK: "prod",
        ISSUE_TITLE: "Drift detected on stack prod",
        RUN_URL: "https://github.example/runs/1",
        GITHUB_OUTPUT: path.join(tmp, "output"),
        GITHUB_STEP_SUMMARY: path.join(tmp, "summary"),
        FAKE_GH_LOG: path.join(tmp, "gh.log"),
        // The step's mktemp lands here, removed with it (a runner's temp is removed with the job).
        TMPDIR: tmp,
        ...env,
      },
    });
    if (r.error) throw r.error;
    return r;
  }
  const read = (f: string) =>
    fs.existsSync(path.join(tmp, f)) ? fs.readFileSync(path.join(tmp, f), "utf8") : "";
  const ghCalls = () =>
    read("gh.log")
      .split("\n")
      .filter(Boolean)
      .map((l) => l.replace(/\/tmp\S*/g, "<file>"));

  it("runs the repository's drift script for the matrix stack", () => {
    const r = runStep("Check drift", { FAKE_DRIFT_EXIT: "0" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^npm run --silent drift -- --stack prod$/m);
    assert.equal(read("output"), "exit-code=0\n");
    assert.match(read("summary"), /## Drift check: prod \(exit 0\)/);
  });

  it("exit 1 (drift) passes the step and hands over to the issue step", () => {
    const r = runStep("Check drift", { FAKE_DRIFT_EXIT: "1" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(read("output"), "exit-code=1\n");
    assert.equal(step(job, "Open or update the drift issue").if, "steps.drift.outputs.exit-code == '1'");
  });

  it("exit 2 (could not check) fails the job and opens no issue", () => {
    const r = runStep("Check drift", { FAKE_DRIFT_EXIT: "2" });
    assert.equal(r.status, 2);
    assert.match(r.stdout, /::error title=Drift check failed on prod::could not check/);
    assert.equal(read("output"), "exit-code=2\n");
    // Only exit-code 1 opens an issue; a failed step also skips every later step.
    for (const s of job.steps ?? []) {
      if (s.run?.includes("gh issue create")) assert.equal(s.if, "steps.drift.outputs.exit-code == '1'");
    }
  });

  it("any other exit code fails the job too", () => {
    assert.equal(runStep("Check drift", { FAKE_DRIFT_EXIT: "137" }).status, 137);
  });

  describe("the drift issue (jq and a stand-in gh)", () => {
    before(function () {
      if (spawnSync("jq", ["--version"]).error)
        assert.fail("jq is not installed; the drift job uses it (as on GitHub runners)");
    });

    beforeEach(() =>
      fs.writeFileSync(path.join(tmp, "drift-output.txt"), "~ aws:ec2:SecurityGroup web updated\n"),
    );

    it("opens one labelled issue per stack when none is open", () => {
      const r = runStep("Open or update the drift issue", {
        FAKE_GH_ISSUES: '[{"number": 4, "title": "Drift detected on stack prod-eu"}]',
      });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(ghCalls(), [
        "label create drift --color D93F0B --description Stack drift found by the drift workflow --force",
        "issue list --label drift --state open --search prod in:title --json number,title",
        "issue create --title Drift detected on stack prod --label drift --body-file <file>",
      ]);
    });

    it("updates the open issue of that stack instead of opening another", () => {
      const r = runStep("Open or update the drift issue", {
        FAKE_GH_ISSUES:
          '[{"number": 4, "title": "Drift detected on stack prod-eu"}, {"number": 9, "title": "Drift detected on stack prod"}]',
      });
      assert.equal(r.status, 0, r.stderr);
      const calls = ghCalls();
      assert.equal(calls[2], "issue edit 9 --body-file <file>");
      assert.match(
        calls[3],
        /^issue comment 9 --body Drift still present \(\d{4}-\d\d-\d\d\): https:\/\/github.example\/runs\/1$/,
      );
      assert.equal(calls.length, 4);
    });

    it("closes the stack's issue when a later check is clean", () => {
      const r = runStep("Close the drift issue", {
        FAKE_GH_ISSUES: '[{"number": 9, "title": "Drift detected on stack prod"}]',
      });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(ghCalls(), [
        "issue list --label drift --state open --search prod in:title --json number,title",
        "issue close 9 --comment No drift on the prod stack any more: https://github.example/runs/1",
      ]);
      assert.equal(step(job, "Close the drift issue").if, "steps.drift.outputs.exit-code == '0'");
    });
  });
});

describe("npm run test:e2e", () => {
  it("names every spec file in test/e2e once (three run at a time: the order decides the wall time)", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    const listed = pkg.scripts["test:e2e"].split(/\s+/).filter((w) => w.endsWith(".e2e.ts"));
    const present = fs
      .readdirSync(path.join(__dirname, "..", "e2e"))
      .filter((f) => f.endsWith(".e2e.ts"))
      .map((f) => `test/e2e/${f}`);
    assert.deepEqual(
      [...listed].sort(),
      present.sort(),
      "a spec file is missing from (or extra in) test:e2e",
    );
    assert.equal(new Set(listed).size, listed.length, "a spec file is listed twice");
  });
});

describe("pulumi up's loader (Pulumi.yaml runtime.options)", () => {
  it("ts-node with tsconfig.pulumi.json, as the language host registers it, transpiles with SWC and loads the program", () => {
    // The options the Node.js language host passes (@pulumi/pulumi cmd/run/run.js), the
    // tsconfig's noCheck deciding transpileOnly; SWC comes from tsconfig.json's "ts-node" block.
    const probe = `
      const svc = require("ts-node").register({
        compiler: "typescript", transpileOnly: true, project: "tsconfig.pulumi.json", skipProject: false, compilerOptions: {},
      });
      const { program } = require("./program.ts");
      console.log(JSON.stringify({ swc: svc.options.swc === true, program: typeof program }));`;
    const r = spawnSync(process.execPath, ["-e", probe], { cwd: root, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { swc: true, program: "function" });
  });
});

describe("npm test (.mocharc.unit.json)", () => {
  it("reports a stack at the .ts file's own lines (test/register.js maps it), Pulumi's unread stacks as transpiled", () => {
    const lines = fs.readFileSync(__filename, "utf8").split("\n");
    const lineOf = (mark: string) => lines.findIndex((l) => l.includes(mark) && !l.includes("lineOf")) + 1;
    const at = (line: number) => new RegExp(`workflows\\.test\\.ts:${line}:\\d+\\)`);
    const read = new Error("read").stack ?? ""; // mark: read
    assert.match(read, at(lineOf("mark: read")));
    // With PULUMI_DEBUG_PROMISE_LEAKS, debuggablePromise takes a stack for every promise: left as SWC wrote it (only a
    // leak report shows it)
    const debuggablePromise = () => new Error("unread").stack ?? ""; // mark: unread
    const unread = debuggablePromise();
    assert.match(unread, /workflows\.test\.ts:\d+:\d+\)/);
    assert.doesNotMatch(unread, at(lineOf("mark: unread")));
  });

  it("@pulumi/pulumi's promises carry no stack unless PULUMI_DEBUG_PROMISE_LEAKS is set (test/register.js)", async () => {
    assert.equal(
      process.env.PULUMI_DEBUG_PROMISE_LEAKS,
      undefined,
      "this test expects PULUMI_DEBUG_PROMISE_LEAKS unset",
    );
    const debuggable = require("@pulumi/pulumi/runtime/debuggable") as {
      debuggablePromise: <T>(p: Promise<T>, context: string) => Promise<T>;
    };
    const limit = Error.stackTraceLimit;
    const p = Promise.resolve(7);
    assert.equal(await debuggable.debuggablePromise(p, "workflows.test"), 7);
    assert.equal((p as unknown as { _debugStackTrace: string })._debugStackTrace, "Error");
    assert.equal(Error.stackTraceLimit, limit, "the frame limit is put back");
  });

  it("names every spec file in test/unit once, longest first (four workers: the order decides the wall time)", () => {
    const rc = JSON.parse(fs.readFileSync(path.join(root, ".mocharc.unit.json"), "utf8")) as {
      spec: string[];
    };
    const present = fs
      .readdirSync(path.join(__dirname))
      .filter((f) => f.endsWith(".test.ts"))
      .map((f) => `test/unit/${f}`);
    assert.deepEqual([...rc.spec].sort(), present.sort(), "a spec file is missing from (or extra in) spec");
    assert.equal(new Set(rc.spec).size, rc.spec.length, "a spec file is listed twice");
  });
});

describe("scripts/check-aws-cli (apphost:host.via instance-connect in CI)", () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-awscli-"))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  /** Runs the script with only a stand-in `aws` printing `version` (none when null) on PATH. */
  const run = (version: string | null) => {
    const bin = fs.mkdtempSync(path.join(dir, "bin-"));
    if (version !== null) {
      fs.writeFileSync(path.join(bin, "aws"), `#!/bin/sh\necho '${version}'\n`, { mode: 0o755 });
    }
    return spawnSync("bash", [path.join(root, "scripts", "check-aws-cli")], {
      encoding: "utf8",
      env: { PATH: `${bin}:/usr/bin:/bin` },
    });
  };

  it("passes v2.12.0 and later, naming the version", () => {
    for (const v of [
      "aws-cli/2.12.0 Python/3.11.4 Linux/6.5 exe/x86_64.ubuntu.24",
      "aws-cli/2.22.35 Python/3.12.6",
    ]) {
      const r = run(v);
      assert.equal(r.status, 0, r.stderr);
      assert.match(
        r.stdout,
        /^check-aws-cli: aws-cli\/2\.\d+\.\d+ \(open-tunnel needs 2\.12\.0 or later\)\n$/,
      );
    }
  });

  it("refuses v1, an older v2, a missing aws and an unreadable version, saying what to do", () => {
    assert.match(
      run("aws-cli/1.29.0 Python/3.8").stderr,
      /aws-cli\/1\.29\.0 is too old .*AWS CLI v1 has none/,
    );
    assert.match(run("aws-cli/2.11.27 Python/3.11").stderr, /aws-cli\/2\.11\.27 is too old/);
    assert.match(run(null).stderr, /no aws on PATH; .*AWS CLI v2\.12\.0 or later/);
    assert.match(run("something else").stderr, /cannot read the version/);
    for (const v of ["aws-cli/1.29.0", "aws-cli/2.11.27", null, "x"]) assert.equal(run(v).status, 1);
  });

  it("runs in every workflow after the AWS credentials, before Pulumi reaches a host", () => {
    for (const file of fs.readdirSync(path.join(root, ".github", "workflows"))) {
      const text = fs.readFileSync(path.join(root, ".github", "workflows", file), "utf8");
      const creds = text.indexOf("aws-actions/configure-aws-credentials");
      const check = text.indexOf("run: bash scripts/check-aws-cli");
      // The step that runs Pulumi: the action, or the drift script (not a comment that names it).
      const reach = Math.max(text.indexOf("uses: pulumi/actions@"), text.indexOf("npm run --silent drift"));
      assert.ok(reach > 0, `${file}: no step runs Pulumi`);
      assert.ok(creds > 0 && check > creds, `${file}: the check is not after the credentials`);
      assert.ok(reach < 0 || check < reach, `${file}: the check comes after the step that reaches the host`);
    }
  });
});

describe("scripts/quickstart (the README's first command)", () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-quickstart-"))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("stops at an engine that could not be built or found, with its error, before it makes the sandbox", () => {
    // A copy of the script beside stand-ins: prerequisites present, node_modules up to date, an engine that fails
    // as it does on a machine without ../shared/vendor, and a sandbox that logs its calls.
    fs.mkdirSync(path.join(dir, "scripts"));
    fs.copyFileSync(path.join(root, "scripts", "quickstart"), path.join(dir, "scripts", "quickstart"));
    const stub = (name: string, body: string) =>
      fs.writeFileSync(path.join(dir, "scripts", name), `#!/usr/bin/env bash\n${body}\n`, { mode: 0o755 });
    stub("install-prereqs", "exit 0");
    stub(
      "engine",
      'echo "engine: error: the source of pulumi-language-nodejs is not at /x/shared/vendor" >&2\nexit 1',
    );
    stub("sandbox", `echo "sandbox $*" >>${JSON.stringify(path.join(dir, "sandbox.log"))}`);
    fs.writeFileSync(path.join(dir, "package-lock.json"), "{}\n");
    fs.mkdirSync(path.join(dir, "node_modules"));
    fs.writeFileSync(path.join(dir, "node_modules", ".package-lock.json"), "{}\n");
    const future = new Date(Date.now() + 60_000);
    fs.utimesSync(path.join(dir, "node_modules", ".package-lock.json"), future, future);
    const r = spawnSync("bash", [path.join(dir, "scripts", "quickstart")], { encoding: "utf8" });
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /=== quickstart: the engine: [^\n]*\nengine: error: the source of pulumi-language-nodejs/,
    );
    assert.doesNotMatch(r.stderr, /=== quickstart: the sandbox host/);
    assert.equal(fs.existsSync(path.join(dir, "sandbox.log")), false, "the sandbox was made");
  });
});
