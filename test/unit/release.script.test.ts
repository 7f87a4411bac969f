/**
 * apphost-release, rendered: shellcheck on the production render, its variants
 * and release.sh itself, the test hooks, then usage errors of the script run in
 * a temp directory (see release-harness.ts). The script's runs are split over
 * release.story, release.backup, release.host, release.gate, release.keep,
 * release.lock, release.jobs and release.away .test.ts, so that mocha's workers run them
 * side by side.
 */

import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import assert from "assert/strict";
import { hostLayout } from "../../components/paths";
import { shellQuote } from "../../components/shell";
import {
  ERROR_HINTS,
  errorHintFunction,
  knownErrorLineFunction,
  EXIT_CODES,
  MIGRATE_NOT_FOUND_HINT,
} from "../../components/release/phases";
import { parseResult, renderReleaseScript } from "../../components/release/script";
import { shellcheck, shellcheckSync } from "./shellcheck";
import { baseInput, baseReleases, FakeHost, relocateLayout, S3, writeTestApp } from "./release-harness";

/** `fn` over `items`, `n` at a time; the results in the order of `items`. */
async function inBatches<T, R>(items: T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  return out;
}

/** release.sh, the static part the render ends with: its functions are also run alone, in real bash, below. */
const RELEASE_SH = fs.readFileSync(path.join(__dirname, "../../components/release/release.sh"), "utf8");

/** A function of release.sh as it is written there, on one line or several. */
function releaseFunction(name: string): string {
  const fn = new RegExp(`^${name}\\(\\) \\{[^\\n]*\\}\\n|^${name}\\(\\) \\{\\n[\\s\\S]*?\\n\\}\\n`, "m").exec(
    RELEASE_SH,
  )?.[0];
  assert.ok(fn, `release.sh has no ${name}`);
  return fn;
}

/** A top-level definition of release.sh: what `pattern` (multiline) matches. */
function releaseDefinition(pattern: RegExp): string {
  const found = pattern.exec(RELEASE_SH)?.[0];
  assert.ok(found, `release.sh has nothing that matches ${pattern}`);
  return found;
}

/**
 * Runs `lines` in bash, after `set -euo pipefail`, with `$1`... as `args` and NEW_DIR a temporary release holding
 * `files` (its path: its text; a path that ends in / a directory), and the variables `env` gives for the temporary
 * directory above it; its stdout, once it exited 0. The temporary directory is removed after.
 */
function runInRelease(
  lines: string[],
  files: Record<string, string>,
  { args = [], env = () => ({}) }: { args?: string[]; env?: (tmp: string) => Record<string, string> } = {},
): string {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-release-fn-"));
  try {
    const release = path.join(tmp, "release");
    fs.mkdirSync(release);
    for (const [f, text] of Object.entries(files)) {
      fs.mkdirSync(path.join(release, f.endsWith("/") ? f : path.dirname(f)), { recursive: true });
      if (!f.endsWith("/")) fs.writeFileSync(path.join(release, f), text);
    }
    const r = spawnSync("bash", ["-c", ["set -euo pipefail", ...lines].join("\n"), "fn", ...args], {
      encoding: "utf8",
      env: { ...process.env, NEW_DIR: release, ...env(tmp) },
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

describe("release script: static checks", () => {
  it("passes shellcheck -s bash with no findings (production render, variants, standalone backup/restore)", async function () {
    this.timeout(60000);
    const variants = [
      baseInput(),
      baseInput({ proxy: { kind: "nginx" } }),
      baseInput({ database: { ...baseInput().database, kind: "postgres" } }),
      baseInput({ database: { ...baseInput().database, kind: "none", migrate: "" } }),
      baseInput({
        app: {
          ...baseInput().app,
          runtime: "node",
          requirements: "package-lock.json",
          build: "npm run build",
        },
      }),
      baseInput({
        app: {
          ...baseInput().app,
          runtime: "node",
          requirements: "package-lock.json",
          npmWorkspaces: [{ name: "@acme/web", member: "packages/web" }],
        },
      }),
      baseInput({
        app: { ...baseInput().app, processes: [{ name: "worker", command: "x", kind: "worker" }] },
      }),
      baseInput({ s3: S3 }),
      baseInput({ s3: S3, database: { ...baseInput().database, kind: "postgres" } }),
      baseInput({ database: { ...baseInput().database, kind: "rds" } }),
      // Several app hosts: an external Postgres, the first host and one after it.
      baseInput({ database: { ...baseInput().database, kind: "external" } }),
      baseInput({ database: { ...baseInput().database, kind: "external" }, follower: true }),
    ];
    // A second of CPU each: as many at once as there are cores.
    const results = await inBatches(
      variants.map((v) => renderReleaseScript(v)),
      os.cpus().length,
      (text) => shellcheck(text, ["-s", "bash"]),
    );
    results.forEach((r, i) => assert.deepEqual([r.status, r.output], [0, ""], `variant ${i}:\n${r.output}`));
  });

  it("release.sh, the static part, passes shellcheck as it is; the render carries none of its preamble", () => {
    const text = RELEASE_SH;
    assert.match(text, /^# shellcheck shell=bash$/m, "shellcheck must know the shell without -s");
    const r = shellcheckSync(text, ["-S", "style"]);
    assert.deepEqual([r.status, r.output], [0, ""], r.output);
    const s = renderReleaseScript(baseInput());
    assert.ok(
      !s.includes("# shellcheck disable=SC2034"),
      "the preamble's file-wide directives were rendered",
    );
    assert.ok(!s.includes("# shellcheck shell=bash"));
    assert.ok(s.endsWith(text.slice(text.indexOf("\nnote() {") + 1)), "the render ends with release.sh");
  });

  it("apphost:backups.s3: the backup command copies after pruning, and a failed copy fails it", () => {
    const s = renderReleaseScript(baseInput({ s3: S3 }));
    assert.ok(
      s.includes(
        [
          "  db_lock",
          '  db_backup "$label"',
          "  db_prune_backups",
          "  db_unlock",
          "  # A failed copy fails the command (and the scheduled unit), after the local backup is in place.",
          '  if [ "$S3_COPY" = 1 ] && ! db_copy_offsite "$BACKUP_FILE"; then printf "backup=%s\\n" "$BACKUP_FILE" >&3; die "the backup is on this host ($BACKUP_FILE), but its copy to S3 failed"; fi',
          '  note "phase backup: ok"',
        ].join("\n"),
      ),
    );
    assert.match(s, /^readonly S3_COPY=1$/m);
    assert.ok(s.includes(" aws s3 cp --region eu-central-1 --sse AES256 "), "the real CLI in production");
    assert.ok(!renderReleaseScript(baseInput()).includes("aws "), "no copy without apphost:backups.s3");
    assert.match(renderReleaseScript(baseInput()), /^readonly S3_COPY=0$/m);
  });

  it("a production render contains no test hooks", () => {
    const s = renderReleaseScript(baseInput());
    assert.match(s, /^#!\/bin\/bash\n/);
    // The commands are readonly values of the header; release.sh calls them through these.
    for (const [name, command] of [
      ["SYSTEMCTL", "systemctl"],
      ["JOURNALCTL", "journalctl"],
      ["SYSTEMD_RUN", "systemd-run"],
      ["RUNUSER", "runuser"],
      ["NFT", "nft"],
    ]) {
      assert.match(s, new RegExp(`^readonly ${name}=${command}$`, "m"), name);
    }
    assert.ok(s.includes('  "$RUNUSER" -u "$APP_USER" -- env -i'));
    assert.ok(s.includes('$("$NFT" -f - 2>&1 <<<'), "switches with the real nft");
    assert.ok(!/reload (caddy|nginx)/.test(s), "never reloads the proxy");
    assert.match(s, /^readonly REQUIRE_ROOT=1$/m, "requires root");
    assert.ok(
      s.includes('if [ "$REQUIRE_ROOT" = 1 ] && [ "$MAIN_COMMAND" != status ] && [ "$(id -u)" -ne 0 ]'),
    );
    assert.ok(!/APPHOST_(SYSTEMCTL|JOURNALCTL|RUNUSER)/.test(s), "nothing read from the environment");
    // The waits are the production ones: TTL / 20 between lock renewals (30 min: 90 s), tail's own 1 s.
    assert.match(s, /^readonly LOCK_RENEW_SECONDS=90$/m);
    assert.match(s, /^readonly FOLLOW_POLL_SECONDS=1$/m);
    // The gate: the same 4xx for 10 s; listening elsewhere for half its 60 s, at least 10 s; three restarts.
    assert.match(s, /^readonly HEALTH_SAME_ANSWER_SECONDS=10$/m);
    assert.match(s, /^readonly HEALTH_ELSEWHERE_SECONDS=30$/m);
    assert.match(s, /^readonly HEALTH_CRASH_RESTARTS=3$/m);
    // Its clock is the wall's, and it polls after 0.1, 0.2, 0.4 and 0.8 s, then every second.
    assert.match(s, /^readonly HEALTH_CLOCK_SPEED=1$/m);
    assert.match(s, /^readonly HEALTH_POLL_SECONDS=\(0\.1 0\.2 0\.4 0\.8 1\)$/m);
    const short = renderReleaseScript(baseInput({ releases: { ...baseReleases, healthTimeoutSeconds: 12 } }));
    assert.match(short, /^readonly HEALTH_ELSEWHERE_SECONDS=10$/m);
  });

  it("timing (a test hook): positive seconds only", () => {
    const s = renderReleaseScript({
      ...baseInput(),
      timing: { lockRenewSeconds: 1, followPollSeconds: 0.1 },
    });
    assert.match(s, /^readonly LOCK_RENEW_SECONDS=1$/m);
    assert.match(s, /^readonly FOLLOW_POLL_SECONDS=0.1$/m);
    // A gate's clock 4 times as fast: its polls a quarter as long, on the wall clock.
    const fast = renderReleaseScript({ ...baseInput(), timing: { healthClockSpeed: 4 } });
    assert.match(fast, /^readonly HEALTH_CLOCK_SPEED=4$/m);
    assert.match(fast, /^readonly HEALTH_POLL_SECONDS=\(0\.025 0\.05 0\.1 0\.2 0\.25\)$/m);
    assert.throws(
      () => renderReleaseScript({ ...baseInput(), timing: { healthClockSpeed: 2.5 } }),
      /timing\.healthClockSpeed must be a whole number, got 2\.5/,
    );
    for (const bad of [0, -1, NaN, Infinity]) {
      assert.throws(
        () => renderReleaseScript({ ...baseInput(), timing: { followPollSeconds: bad } }),
        new RegExp(`timing.followPollSeconds must be a positive number of seconds, got ${bad}`),
      );
    }
  });

  it("renders the same text for the same input", () => {
    assert.equal(renderReleaseScript(baseInput()), renderReleaseScript(baseInput()));
  });

  it("parses results", () => {
    assert.deepEqual(parseResult("release=x\nport=8001\noutcome=deployed\n"), {
      release: "x",
      port: "8001",
      outcome: "deployed",
    });
  });

  it("relocates every layout path under a temp root", () => {
    const l = relocateLayout(hostLayout("shop", "prod"), "/tmp/x", "me");
    assert.equal(l.root, "/tmp/x/srv");
    assert.equal(l.releases, "/tmp/x/srv/releases");
    assert.equal(l.envFile, "/tmp/x/etc/apphost/shop-prod.env");
    assert.equal(l.caddyUpstream, "/tmp/x/etc/caddy/apphost/shop-prod.upstream");
    assert.equal(l.user, "me");
    assert.equal(l.unitPrefix, "apphost-shop-prod");
  });
});

describe("release script: release_node_modules (the tree's hard-linked copy in a release)", () => {
  const fn = releaseFunction("release_node_modules");

  /** `body` with a temp directory, removed after it; release.sh must have the function. */
  function inTemp(body: (tmp: string) => void): void {
    assert.ok(fn, "release.sh has no release_node_modules");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-release-node-modules-"));
    try {
      body(tmp);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** The tree npm ci made and a release, under a temp dir; `run` runs release_node_modules there. */
  function setup(tmp: string): {
    node: string;
    tree: string;
    rel: string;
    run: (args: string) => { status: number; stderr: string };
  } {
    const node = path.join(tmp, "venvs", "abc-node");
    const tree = path.join(node, "node_modules");
    fs.mkdirSync(path.join(tree, "typeorm"), { recursive: true });
    fs.mkdirSync(path.join(tree, ".bin"), { recursive: true });
    fs.writeFileSync(path.join(tree, "typeorm", "cli.js"), "// cli\n");
    fs.symlinkSync("../typeorm/cli.js", path.join(tree, ".bin", "typeorm"));
    // The release: and a node_modules the artifact should not have had.
    const rel = path.join(tmp, "releases", "r1");
    fs.mkdirSync(path.join(rel, "node_modules", "stale"), { recursive: true });
    fs.writeFileSync(path.join(rel, "tsconfig.json"), "{}\n");
    const runuser = path.join(tmp, "runuser");
    fs.writeFileSync(runuser, '#!/bin/bash\n[ "$1" = -u ] && shift 2\n[ "$1" = -- ] && shift\nexec "$@"\n', {
      mode: 0o755,
    });
    const run = (args: string) => {
      const script = [
        "set -euo pipefail",
        `RUNUSER=${runuser} APP_USER=nobody NEW_DIR=${rel}`,
        'die() { echo "die: $1" >&2; exit 9; }',
        fn!,
        `release_node_modules ${node} ${args}`,
      ].join("\n");
      const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
      return { status: r.status ?? -1, stderr: r.stderr };
    };
    return { node, tree, rel, run };
  }

  it("the release's own directories, the tree's files hard-linked: a package resolves inside the release", () => {
    inTemp((tmp) => {
      const { tree, rel, run } = setup(tmp);
      const r = run("");
      assert.equal(r.status, 0, r.stderr);
      const nm = path.join(rel, "node_modules");
      assert.ok(!fs.lstatSync(nm).isSymbolicLink(), "node_modules is a directory of the release");
      // ts-node looks for tsconfig.json from the script it runs upward: from the resolved path, the release's.
      const cli = fs.realpathSync(path.join(nm, ".bin", "typeorm"));
      assert.equal(cli, path.join(nm, "typeorm", "cli.js"));
      assert.equal(
        fs.statSync(cli).ino,
        fs.statSync(path.join(tree, "typeorm", "cli.js")).ino,
        "a hard link",
      );
      assert.equal(fs.readlinkSync(path.join(nm, ".apphost-tree")), tree);
      assert.ok(!fs.existsSync(path.join(nm, "stale")), "the release's own node_modules was replaced");
      // What a build writes there stays in the release.
      fs.mkdirSync(path.join(nm, ".cache"));
      assert.deepEqual(fs.readdirSync(tree).sort(), [".bin", "typeorm"], "the tree was changed");
      // Again (a release published again while it serves): the copy it has stays, untouched.
      assert.equal(run("").status, 0);
      assert.equal(fs.readlinkSync(path.join(nm, ".apphost-tree")), tree);
      assert.ok(fs.existsSync(path.join(nm, ".cache")), "the release's copy was made again");
      // A release an older apphost linked to the tree: the link is replaced by the finished copy.
      fs.rmSync(nm, { recursive: true });
      fs.symlinkSync(tree, nm);
      assert.equal(run("").status, 0);
      assert.ok(!fs.lstatSync(nm).isSymbolicLink(), "node_modules is still the link");
      assert.equal(fs.realpathSync(path.join(nm, "typeorm", "cli.js")), path.join(nm, "typeorm", "cli.js"));
      assert.deepEqual(fs.readdirSync(rel).sort(), ["node_modules", "tsconfig.json"], "a leftover beside it");
    });
  });

  it("an npm workspace: each member's name links to the member in the release, its own node_modules copied", () => {
    inTemp((tmp) => {
      const { node, tree, rel, run } = setup(tmp);
      // The members as npm links them (../<member>, manifests only), a scope with a registry package and a member,
      // and what npm could not hoist into a member.
      fs.mkdirSync(path.join(tree, "@acme", "util"), { recursive: true });
      fs.mkdirSync(path.join(node, "packages", "api", "node_modules", "left-pad"), { recursive: true });
      fs.writeFileSync(
        path.join(node, "packages", "api", "node_modules", "left-pad", "index.js"),
        "// pad\n",
      );
      fs.mkdirSync(path.join(node, "packages", "web"), { recursive: true });
      fs.symlinkSync("../packages/api", path.join(tree, "api"));
      fs.symlinkSync("../../packages/web", path.join(tree, "@acme", "web"));
      fs.mkdirSync(path.join(rel, "packages", "api"), { recursive: true });
      fs.mkdirSync(path.join(rel, "packages", "web"), { recursive: true });
      const r = run("@acme/web=packages/web api=packages/api");
      assert.equal(r.status, 0, r.stderr);
      const nm = path.join(rel, "node_modules");
      assert.equal(fs.readlinkSync(path.join(nm, "@acme", "web")), "../../packages/web");
      assert.equal(fs.readlinkSync(path.join(nm, "api")), "../packages/api");
      assert.equal(fs.realpathSync(path.join(nm, "@acme", "web")), path.join(rel, "packages", "web"));
      assert.equal(fs.realpathSync(path.join(nm, "api")), path.join(rel, "packages", "api"));
      assert.ok(fs.lstatSync(path.join(nm, "@acme", "util")).isDirectory());
      const pad = path.join(rel, "packages", "api", "node_modules", "left-pad", "index.js");
      assert.equal(fs.realpathSync(pad), pad, "the member's own node_modules is the release's");
      assert.equal(
        fs.statSync(pad).ino,
        fs.statSync(path.join(node, "packages", "api", "node_modules", "left-pad", "index.js")).ino,
      );
      assert.equal(fs.readlinkSync(path.join(nm, ".apphost-tree")), tree);
    });
  });

  it("a tree it cannot copy fails the install, naming the tree and why", () => {
    inTemp((tmp) => {
      const { node, run } = setup(tmp);
      fs.rmSync(path.join(node, "node_modules"), { recursive: true });
      const r = run("");
      assert.equal(r.status, 9);
      assert.match(
        r.stderr,
        new RegExp(
          `die: install: could not copy ${node}/node_modules into the release as hard links \\(cp -al: the release and the stack's venvs/ must be on one filesystem\\)`,
        ),
      );
    });
  });
});

describe("release script: usage", () => {
  let host: FakeHost;
  before(() => {
    host = new FakeHost();
  });
  after(() => host.cleanup());

  it("rejects bad arguments with status 2 and the usage line", () => {
    for (const args of [
      [],
      ["nope"],
      ["deploy", "bad-id", "abcdef12"],
      ["deploy", "20250101120000-abcdef12", "XYZ"],
    ]) {
      const r = host.run(args);
      assert.equal(r.status, EXIT_CODES.usage, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /usage: /);
    }
  });

  it("fails the upload phase with status 11 when no artifact arrives on stdin", () => {
    const r = host.run(["deploy", "20250101120000-abcdef12", "0123456789abcdef"]);
    assert.equal(r.status, EXIT_CODES.upload, r.stderr);
    assert.match(r.stderr, /apphost: phase upload failed: no artifact on stdin/);
    assert.match(r.stderr, /apphost: phase check: ok \(\d+\.\d+s\)\n/);
    assert.deepEqual(
      host.releaseLog().map((l) => [l[0], l[3]]),
      [["20250101120000-abcdef12", "failed:upload"]],
    );
    assert.ok(!fs.existsSync(host.layout.lock), "lock released");
  });

  it("refuses a truncated artifact (checksum mismatch)", () => {
    const app = writeTestApp(path.join(host.tmp, "app-trunc"), { version: "t" });
    const r = host.run(
      ["deploy", "20250101120001-abcdef12", "0123456789abcdef", "b".repeat(64)],
      "not a tarball",
    );
    assert.equal(r.status, EXIT_CODES.upload, r.stderr);
    assert.match(r.stderr, /artifact checksum mismatch/);
    assert.ok(!fs.existsSync(path.join(host.layout.releases, "20250101120001-abcdef12")));
    assert.ok(fs.existsSync(app));
  });
});

/** A Python migration's failure, with what the release's error adds to the migration's own output. */
/** ERROR_HINTS' hint for what an error line says, as a failed migration's output ends with it. */
const hintFor = (says: string) => `(${ERROR_HINTS.find((h) => h.says === says)!.hint})`;

const MIGRATION_FAILURES = [
  {
    what: "whose tool is not found (127): the tool may be a dev dependency, which no manager installs on the host",
    // The migration's own program is found (the install phase checks it); a tool it runs is not.
    migrate: "bash -c 'apphost-test-missing-tool upgrade head'",
    said: /apphost-test-missing-tool: command not found/,
    hint: MIGRATE_NOT_FOUND_HINT,
    notHint: hintFor("No module named 'psycopg'"),
  },
  {
    what: "without psycopg: what SQLAlchemy 2.1 reads a postgresql:// URL with, and the three ways out",
    migrate: "python -c 'import psycopg'",
    said: /ModuleNotFoundError: No module named 'psycopg'/,
    hint: hintFor("No module named 'psycopg'"),
    notHint: MIGRATE_NOT_FOUND_HINT,
  },
  {
    what: "writing into the release directory, which the units mount read-only",
    migrate: `python -c "raise OSError(30, 'Read-only file system', '/srv/shop-test/releases/x/CTFd/../.data')"`,
    said: /OSError: \[Errno 30\] Read-only file system: '\/srv\/shop-test\/releases\/x\/CTFd\/\.\.\/\.data'/,
    hint: hintFor("[Errno 30] Read-only file system"),
    notHint: MIGRATE_NOT_FOUND_HINT,
  },
  {
    what: "without greenlet: what SQLAlchemy 2.1's asyncio extension needs and no longer installs",
    migrate: "python -c 'import greenlet'",
    said: /ModuleNotFoundError: No module named 'greenlet'/,
    hint: hintFor("No module named 'greenlet'"),
    notHint: hintFor("No module named 'psycopg'"),
  },
];

for (const c of MIGRATION_FAILURES) {
  describe(`release script: a Python migration ${c.what}`, () => {
    let host: FakeHost;
    before(() => {
      host = new FakeHost({ sharedVenv: true, database: { migrate: c.migrate, revision: undefined } });
    });
    after(() => host.cleanup());

    it("fails migrate (14) with the migration's output, then the hint", () => {
      const app = writeTestApp(path.join(host.tmp, "app-failing"), { version: "v1" });
      const r = host.deploy(app, "20250101120000-abcdef12");
      assert.equal(r.status, EXIT_CODES.migrate, r.stderr);
      assert.match(r.stderr, c.said);
      assert.ok(r.stderr.includes(`\n${c.hint}\n`), r.stderr);
      assert.ok(!r.stderr.includes(c.notHint), "the other hint too");
    });
  });
}

describe("shellcheck's clean verdicts are remembered (test/unit/shellcheck.ts)", () => {
  const fresh = process.env.APPHOST_TEST_FRESH;
  afterEach(() => {
    if (fresh === undefined) delete process.env.APPHOST_TEST_FRESH;
    else process.env.APPHOST_TEST_FRESH = fresh;
  });
  /** A script no earlier run has seen. */
  const unique = (body: string) => `# ${process.pid} ${Date.now()} ${Math.random()}\n${body}`;

  it("a clean script is checked once, then remembered; a script with findings is checked every time", () => {
    delete process.env.APPHOST_TEST_FRESH;
    const clean = unique('x=$1\necho "$x"\n');
    assert.deepEqual(shellcheckSync(clean, ["-s", "bash"]), { status: 0, output: "", remembered: false });
    assert.deepEqual(shellcheckSync(clean, ["-s", "bash"]), { status: 0, output: "", remembered: true });
    // Other arguments are another verdict.
    assert.equal(shellcheckSync(clean, ["-s", "sh"]).remembered, false);
    const dirty = unique("x=$1\necho $x\n");
    for (let i = 0; i < 2; i++) {
      const r = shellcheckSync(dirty, ["-s", "bash"]);
      assert.equal(r.status, 1);
      assert.match(r.output, /SC2086/);
      assert.equal(r.remembered, false);
    }
  });

  it("APPHOST_TEST_FRESH=1 checks every script afresh", () => {
    process.env.APPHOST_TEST_FRESH = "1";
    const clean = unique("true\n");
    for (let i = 0; i < 2; i++) assert.equal(shellcheckSync(clean, ["-s", "bash"]).remembered, false);
  });
});

describe("release script: the env copies (env_snapshot, live_env_set, live_env_revert)", () => {
  const fns = ["env_copy", "env_snapshot", "live_env_set", "live_env_revert"].map(releaseFunction);

  /** The functions run under bash -eu in a temp dir holding env (ENV_FILE) and live.env (LIVE_ENV). */
  function run(tmp: string, body: string[]) {
    const script = [
      "set -euo pipefail",
      `ENV_FILE=${tmp}/env LIVE_ENV=${tmp}/live.env APP_USER=${os.userInfo().username} LIVE_ENV_SET=0`,
      ...fns,
      ...body,
    ].join("\n");
    return spawnSync("bash", ["-c", script], { encoding: "utf8" });
  }
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : null);

  it("an instance's copy is the env file as it was, 0640; a later env file leaves it alone", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-env-copies-"));
    try {
      fs.writeFileSync(`${tmp}/env`, "A=1\n", { mode: 0o640 });
      assert.equal(run(tmp, [`env_snapshot ${tmp}/8001.env`]).status, 0);
      fs.writeFileSync(`${tmp}/env`, "A=2\n");
      assert.equal(read(`${tmp}/8001.env`), "A=1\n");
      assert.equal((fs.statSync(`${tmp}/8001.env`).mode & 0o777).toString(8), "640");
      // No env file: an empty copy (the unit starts, without the stack's env, as the check phase warns).
      fs.rmSync(`${tmp}/env`);
      assert.equal(run(tmp, [`env_snapshot ${tmp}/8000.env`]).status, 0);
      assert.equal(read(`${tmp}/8000.env`), "");
      assert.deepEqual(fs.readdirSync(tmp).sort(), ["8000.env", "8001.env"], "no temp file left");
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("live_env_set replaces live.env, and live_env_revert puts the old one back (or none), only after a set", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-env-copies-"));
    try {
      fs.writeFileSync(`${tmp}/live.env`, "A=old\n");
      fs.writeFileSync(`${tmp}/8001.env`, "A=new\n");
      let r = run(tmp, [`live_env_set ${tmp}/8001.env`, 'cat "$LIVE_ENV"', "live_env_revert"]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, "A=new\n");
      assert.equal(read(`${tmp}/live.env`), "A=old\n");
      // A set that finished is kept; a revert without a set in this run touches nothing (the .previous of an
      // earlier deploy is not this run's).
      r = run(tmp, [`live_env_set ${tmp}/8001.env`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(read(`${tmp}/live.env.previous`), "A=old\n");
      assert.equal(run(tmp, ["live_env_revert"]).status, 0);
      assert.equal(read(`${tmp}/live.env`), "A=new\n");
      // The first release: no live.env before, none after the revert.
      fs.rmSync(`${tmp}/live.env`);
      r = run(tmp, [`live_env_set ${tmp}/8001.env`, "live_env_revert"]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(read(`${tmp}/live.env`), null);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("release script: as_app, what a build, migration or check runs in", () => {
  const asApp = releaseFunction("as_app");

  it("npm keeps its cache in the stack's cache/ (the app user's home, the stack root, is root's) and reads the host's CA store; Yarn 1 and Yarn 2+ each get their own settings", () => {
    assert.ok(asApp, "release.sh has no as_app");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-as-app-"));
    try {
      // runuser's stand-in runs the command as this user; no env file.
      fs.writeFileSync(`${tmp}/runuser`, '#!/bin/sh\nshift 3\nexec "$@"\n', { mode: 0o755 });
      const run = (berry: 0 | 1) => {
        const script = [
          "set -euo pipefail",
          `RUNUSER=${tmp}/runuser APP_USER=nobody ROOT=${tmp} ENV_FILE=${tmp}/none YARN_BERRY=${berry}`,
          "app_pythonpath() { printf -v \"$1\" ''; }",
          asApp!,
          `as_app ${tmp} 'npm config get cache; echo "$NODE_EXTRA_CA_CERTS"; env | grep ^YARN_ | sort'`,
        ].join("\n");
        const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
      };
      const common = `${tmp}/cache/npm\n/etc/ssl/certs/ca-certificates.crt\n`;
      // Yarn 1 gets a cache and global folder in the stack's cache/, and runs under any engines.node ...
      assert.equal(
        run(0),
        `${common}YARN_CACHE_FOLDER=${tmp}/cache/yarn\nYARN_IGNORE_ENGINES=true\nYARN_PREFIX=${tmp}/cache/yarn\n`,
      );
      // ... which Yarn 2 and later refuse ("Unrecognized or legacy configuration settings found: prefix").
      assert.equal(run(1), `${common}YARN_ENABLE_TELEMETRY=0\nYARN_GLOBAL_FOLDER=${tmp}/cache/yarn-berry\n`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("release script: bind_failure_port, the port a web process's journal says is taken", () => {
  const fn = releaseFunction("bind_failure_port");
  const bound = releaseDefinition(/^BIND_FAILURES=.*$/m);

  /** bind_failure_port over a journal of these lines (journal_tail's stand-in prints them). */
  function portOf(lines: string[]): string {
    assert.ok(fn && bound, "release.sh has no bind_failure_port or BIND_FAILURES");
    const journal = lines.map((l) => shellQuote(l)).join(" ");
    const script = [
      "set -euo pipefail",
      bound,
      `journal_tail() { printf '%s\\n' ${journal}; }`,
      fn,
      "bind_failure_port web",
    ];
    const r = spawnSync("bash", ["-c", script.join("\n")], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }

  it("reads Node's, gunicorn's, uvicorn's and uWSGI's lines; Python's bare errno 98 names none", () => {
    const table: [string[], string][] = [
      [
        [
          "Error: listen EADDRINUSE: address already in use 127.0.0.1:3000",
          "    at Server.setupListenHandle",
        ],
        "3000",
      ],
      [["Error: listen EADDRINUSE: address already in use :::3000"], "3000"],
      [
        [
          "[2026-12-04 23:43:33 +0000] [9] [ERROR] Connection in use: ('127.0.0.1', 8000)",
          "Retrying in 1 second.",
        ],
        "8000",
      ],
      [
        [
          "ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', 8001): address already in use",
        ],
        "8001",
      ],
      [
        [
          "uWSGI http bound on 127.0.0.1:8000 fd 4",
          "probably another instance of uWSGI is running on the same address (127.0.0.1:9191).",
          "bind(): Address already in use [core/socket.c line 769]",
          "Fri Dec  4 23:43:33 2026 - uWSGI worker 2 error: the master disconnected from this worker.",
        ],
        "9191",
      ],
      [["Traceback (most recent call last):", "OSError: [Errno 98] Address already in use"], ""],
    ];
    for (const [lines, port] of table) assert.equal(portOf(lines), port, lines.join("\n"));
  });
});

describe("release script: local_server_hint, a server of this host a worker's journal says it cannot reach", () => {
  const fn = releaseFunction("local_server_hint");
  const servers = releaseDefinition(/^declare -A LOCAL_SERVERS=[\s\S]*?\nreadonly LOCAL_SERVERS\n/m);
  const unreachable = releaseDefinition(/^UNREACHABLE=.*$/m);

  /** The hint for this journal line, with port 6380 the one port of this host something listens on. */
  function hintOf(line: string): string {
    assert.ok(
      fn && servers && unreachable,
      "release.sh has no local_server_hint, LOCAL_SERVERS or UNREACHABLE",
    );
    const script = [
      "set -euo pipefail",
      unreachable,
      servers,
      'port_listener() { if [ "$1" = 6380 ]; then echo "users:((\\"redis-server\\",pid=7,fd=6))"; fi; }',
      fn,
      // The worker warnings hint only at a line the journal's grep for UNREACHABLE picked.
      'if grep -qiE "$UNREACHABLE" <<<"$1"; then local_server_hint "$1"; else printf "not picked"; fi',
    ];
    const r = spawnSync("bash", ["-c", script.join("\n"), "hint", line], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }

  it("reads the port as redis-py, Celery and Node write it, as libpq does and as asyncio does", () => {
    const postgres =
      "; nothing on this host listens on port 5432, Postgres's: set apphost:database.kind to postgres, and apphost runs it and sets DATABASE_URL, or give the app the address of one (apphost:app.env)";
    const redis =
      "; nothing on this host listens on port 6379, Redis's: add redis-server to apphost:host.packages (the host baseline installs and starts it), or give the app the address of one (apphost:app.env)";
    const table: [string, string][] = [
      ["Error 111 connecting to localhost:6379. Connection refused.", redis],
      [
        "consumer: Cannot connect to redis://127.0.0.1:6379/0: Error 111 connecting to 127.0.0.1:6379.",
        redis,
      ],
      [
        "Error: connect ECONNREFUSED 127.0.0.1:5672",
        "; nothing on this host listens on port 5672, RabbitMQ's: add rabbitmq-server to apphost:host.packages (the host baseline installs and starts it), or give the app the address of one (apphost:app.env)",
      ],
      // psycopg 3 and psycopg2 over libpq 14 and later
      ['connection to server at "localhost" (127.0.0.1), port 5432 failed: Connection refused', postgres],
      [
        'connection to server at "127.0.0.1", port 5433 failed: Connection refused',
        "; nothing on this host listens on port 5433",
      ],
      // asyncpg: every address localhost resolves to, each refused
      [
        "OSError: Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), [Errno 111] Connect call failed ('127.0.0.1', 5432)",
        postgres,
      ],
      ["ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 6379)", redis],
      // Something listens there (it refuses the worker for another reason), or the server is another host's
      ["Error 111 connecting to localhost:6380. Connection refused.", ""],
      ['connection to server at "db.internal" (10.0.0.5), port 5432 failed: Connection refused', ""],
      ["[Errno 111] Connection refused", ""],
      ["worker: ready.", "not picked"],
    ];
    for (const [line, hint] of table) assert.equal(hintOf(line), hint, line);
  });
});

/**
 * `call` under bash -euo pipefail after `definitions`, with APPHOST_OUTPUT a file that holds `output` (the job's err
 * file, which the install's hints read); its standard output.
 */
function withJobOutput(definitions: (string | undefined)[], call: string, output: string): string {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-job-output-"));
  try {
    fs.writeFileSync(path.join(tmp, "err"), output);
    const script = ["set -euo pipefail", ...definitions, call].join("\n");
    const r = spawnSync("bash", ["-c", script], {
      encoding: "utf8",
      env: { ...process.env, APPHOST_OUTPUT: path.join(tmp, "err") },
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

describe("release script: unit_restart, a unit's restart", () => {
  const fn = releaseFunction("unit_restart");

  /** unit_restart under bash with a systemctl whose restarts fail with these ExecMainStatus values, then succeed. */
  function restart(failures: string[]): { status: number | null; out: string } {
    assert.ok(fn, "release.sh has no unit_restart");
    const script = [
      "set -euo pipefail",
      "SYSTEMCTL=fake_systemctl; FAILS=(" + failures.join(" ") + "); LAST=0",
      'fake_systemctl() { case "$1" in',
      '  restart) echo "restart $2"; if [ "${#FAILS[@]}" -gt 0 ]; then LAST=${FAILS[0]}; FAILS=("${FAILS[@]:1}"); return 1; fi; LAST=0 ;;',
      '  show) if [ "$3" = ExecMainStatus ]; then echo "$LAST"; else echo "ActiveState=failed"; fi ;;',
      "esac; }",
      'note() { echo "note: $*"; }; die() { echo "die: $*"; exit 1; }; journal_tail() { echo "(journal)"; }; sleep() { :; }',
      fn!,
      "unit_restart apphost-shop-prod-worker.service",
    ].join("\n");
    const r = spawnSync("bash", ["-c", script], { encoding: "utf8" });
    return { status: r.status, out: r.stdout };
  }

  it("a start that failed for its cgroup (219/CGROUP) is tried once more; any other failure, or a second one, fails", () => {
    assert.deepEqual(restart([]), { status: 0, out: "restart apphost-shop-prod-worker.service\n" });
    assert.deepEqual(restart(["219"]), {
      status: 0,
      out:
        "restart apphost-shop-prod-worker.service\n" +
        "note: warning: apphost-shop-prod-worker.service could not start in its cgroup (status 219/CGROUP); starting it once more\n" +
        "restart apphost-shop-prod-worker.service\n",
    });
    const twice = restart(["219", "219"]);
    assert.equal(twice.status, 1);
    assert.match(
      twice.out,
      /restart apphost-shop-prod-worker\.service\n.*\nrestart .*\ndie: `systemctl restart apphost-shop-prod-worker\.service` exited with status 1/s,
    );
    const other = restart(["1"]);
    assert.equal(other.status, 1);
    assert.equal(other.out.split("\n").filter((l) => l.startsWith("restart")).length, 1);
  });
});

describe("release script: git_hint, an install that could not run git for a dependency from a git repository", () => {
  const fn = releaseFunction("git_hint");
  const defs = [releaseDefinition(/^GIT_MISSING=.*$/m), releaseDefinition(/^GIT_URL=.*$/m)];

  function hintOf(lines: string[]): string {
    assert.ok(fn && defs.every(Boolean), "release.sh has no git_hint, GIT_MISSING or GIT_URL");
    return withJobOutput([...defs, fn], "git_hint", `${lines.join("\n")}\n`);
  }

  it("names the first repository as Yarn 4, Yarn 1, npm, pip and uv say it; nothing for other failures", () => {
    const todo =
      "and the host has no git: add git to apphost:host.packages (the host then needs to reach that repository's server), or lock that dependency from the package registry";
    const table: [string[], string][] = [
      // HedgeDoc 1.10.8's install by Yarn 4.13.0 on a host without git
      [
        [
          "➤ YN0000: ┌ Fetch step",
          "➤ YN0035: │ @hedgedoc/codemirror-5@npm:5.65.12: Package not found",
          "➤ YN0001: │ Idle.Js@https://github.com/shawnmclean/Idle.js.git#commit=2b57cc6e49d177b7ddce0cca00ef5cbe07453541: Process git failed to spawn",
          "➤ YN0001: │   Thrown Error: spawn git ENOENT",
          "➤ YN0001: │ diff-match-patch@https://github.com/hackmdio/diff-match-patch.git#commit=59a9395ad9fe143e601e7ae5765ed943bdd2b11e: Process git failed to spawn",
          "➤ YN0000: · Failed with errors in 16s 206ms",
        ],
        `; a dependency comes from a git repository (https://github.com/shawnmclean/Idle.js.git) ${todo}`,
      ],
      [
        [
          "[1/4] Resolving packages...",
          "error Couldn't find the binary git",
          "info Visit https://yarnpkg.com/en/docs/cli/install for documentation about this command.",
        ],
        `; a dependency comes from a git repository ${todo}`,
      ],
      [
        [
          "npm error code ENOENT",
          "npm error syscall spawn git",
          "npm error path git",
          "npm error errno -2",
          "npm error enoent An unknown git error occurred",
        ],
        `; a dependency comes from a git repository ${todo}`,
      ],
      [
        [
          "Collecting lz-string@ git+https://github.com/hackmdio/lz-string.git (from -r requirements.txt (line 3))",
          "  Cloning https://github.com/hackmdio/lz-string.git to /tmp/pip-install-x/lz-string",
          "  ERROR: Error [Errno 2] No such file or directory: 'git' while executing command git version",
          "ERROR: Cannot find command 'git' - do you have 'git' installed and in your PATH?",
        ],
        `; a dependency comes from a git repository (git+https://github.com/hackmdio/lz-string.git) ${todo}`,
      ],
      [
        [
          "  × Failed to download and build `lz-string @ git+ssh://git@example.com/lz-string.git`",
          "  ╰─▶ Git executable not found. Ensure that Git is installed and available.",
        ],
        `; a dependency comes from a git repository (git+ssh://git@example.com/lz-string.git) ${todo}`,
      ],
      [["npm error code ETARGET", "npm error notarget No matching version found for ms@9.9.9."], ""],
    ];
    for (const [lines, hint] of table) assert.equal(hintOf(lines), hint, lines.join("\n"));
  });
});

describe("release script: network_hint, what an install that could not download says", () => {
  const fn = releaseFunction("network_hint");
  const failures = releaseDefinition(/^NETWORK_FAILURES=.*$/m);

  /** The hint for a job whose output ends with these lines. */
  function hintOf(lines: string[], release: Record<string, string> = {}): string {
    assert.ok(fn && failures, "release.sh has no network_hint or NETWORK_FAILURES");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-network-hint-"));
    try {
      const output = path.join(tmp, "err");
      fs.writeFileSync(output, `${lines.join("\n")}\n`);
      // The release's files, read as the app user (`env -u <user> --` runs them as this one).
      fs.mkdirSync(path.join(tmp, "release"));
      for (const [file, text] of Object.entries(release))
        fs.writeFileSync(path.join(tmp, "release", file), text);
      const script = ["set -euo pipefail", failures, fn, "network_hint"].join("\n");
      const r = spawnSync("bash", ["-c", script], {
        encoding: "utf8",
        env: {
          ...process.env,
          APPHOST_OUTPUT: output,
          NEW_DIR: path.join(tmp, "release"),
          RUNUSER: "/usr/bin/env",
          APP_USER: "nobody-here",
        },
      });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  const retry = (url: string) =>
    `  WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno -2] Name or service not known')': ${url}`;
  const gaveUp = (host: string, url: string) =>
    `ERROR: Could not install packages due to an OSError: HTTPSConnectionPool(host='${host}', port=443): Max retries exceeded with url: ${url} (Caused by NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno -2] Name or service not known'))`;
  const index =
    "the host needs DNS and outbound HTTPS to it; check the index the app's files name, if any (requirements.txt's -i or --index-url, a lock's sources, .npmrc's registry)";

  it("names the server, and a requirement pip downloads from its own URL there with its line", () => {
    const zip =
      "https://github.com/simonw/django-sql-dashboard/archive/40ffbf18e57c7959750181d44c36cd3c3e99ee9e.zip";
    const wheel = "https://static.simonwillison.net/static/2026/s3_web_manager_django-0.1.3-py3-none-any.whl";
    const table: [string[], string][] = [
      // simonw/simonwillisonblog's requirements.txt: a GitHub archive (line 11) and a wheel on its own server (line 30)
      [
        [
          `Collecting ${zip} (from -r requirements.txt (line 11))`,
          retry("/simonw/django-sql-dashboard/archive/40ffbf18e57c7959750181d44c36cd3c3e99ee9e.zip"),
          gaveUp(
            "github.com",
            "/simonw/django-sql-dashboard/archive/40ffbf18e57c7959750181d44c36cd3c3e99ee9e.zip",
          ),
        ],
        `; the install could not reach github.com (Name or service not known): requirements.txt (line 11) downloads ${zip} from it directly, not from the package index: the host needs DNS and outbound HTTPS to github.com, or the requirement from an index the host reaches`,
      ],
      [
        [
          "Collecting Django==6.1 (from -r requirements.txt (line 7))",
          `Collecting s3-web-manager-django@ ${wheel} (from -r requirements.txt (line 30))`,
          gaveUp("static.simonwillison.net", "/static/2026/s3_web_manager_django-0.1.3-py3-none-any.whl"),
        ],
        `; the install could not reach static.simonwillison.net (Name or service not known): requirements.txt (line 30) downloads ${wheel} from it directly, not from the package index: the host needs DNS and outbound HTTPS to static.simonwillison.net, or the requirement from an index the host reaches`,
      ],
      // babybuddy's: the index its requirements.txt names with -i
      [
        [
          "Looking in indexes: https://pypi.python.org/simple",
          retry("/simple/django/"),
          "ERROR: Could not find a version that satisfies the requirement django==5.2 (from versions: none)",
        ],
        `; the install could not reach a server it downloads from (Name or service not known, https://pypi.python.org/simple): ${index}`,
      ],
      [
        ["Looking in indexes: https://pypi.python.org/simple", gaveUp("pypi.python.org", "/simple/django/")],
        `; the install could not reach pypi.python.org (Name or service not known, https://pypi.python.org/simple): ${index}`,
      ],
      // npm, and Prisma's engines as its postinstall fetches them (the realworld trial)
      [
        [
          "npm error code ENOTFOUND",
          "npm error syscall getaddrinfo",
          "npm error network request to https://registry.npmjs.org/express failed, reason: getaddrinfo ENOTFOUND registry.npmjs.org",
        ],
        `; the install could not reach registry.npmjs.org (ENOTFOUND): ${index}`,
      ],
      [
        [
          "Error: request to https://binaries.prisma.sh/all_commits/x failed, reason: getaddrinfo EAI_AGAIN binaries.prisma.sh",
        ],
        `; the install could not reach binaries.prisma.sh (EAI_AGAIN): ${index}`,
      ],
      // HedgeDoc 1.10.8's install by Yarn 4.13.0 with git on the host, which does not reach github.com
      [
        [
          "➤ YN0001: │ Idle.Js@https://github.com/shawnmclean/Idle.js.git#commit=2b57cc6e49d177b7ddce0cca00ef5cbe07453541: Failed cloning the repository",
          "➤ YN0001: │   Repository URL: https://github.com/shawnmclean/Idle.js.git",
          "➤ YN0001: │   Fatal Error: unable to access 'https://github.com/shawnmclean/Idle.js.git/': Could not resolve host: github.com",
          "➤ YN0001: │   Exit Code: 128",
        ],
        "; the install could not reach github.com (Could not resolve host): a dependency comes from its git repository " +
          "(https://github.com/shawnmclean/Idle.js.git): the host needs DNS and outbound HTTPS to github.com, or lock " +
          "that dependency from the package registry",
      ],
      [
        ["fatal: unable to access 'https://example.com/x/': Could not resolve host: example.com"],
        `; the install could not reach example.com (Could not resolve host): ${index}`,
      ],
      [["ERROR: No matching distribution found for nosuchpackage"], ""],
    ];
    for (const [lines, hint] of table) assert.equal(hintOf(lines), hint, lines.join("\n"));
  });

  it("uv: the server it failed to fetch from, and a registry uv.lock names there (fastapi_best_architecture's mirror)", () => {
    const wheel =
      "https://mirrors.aliyun.com/pypi/packages/9f/75/bb79c8b89a93ae23cd33c0d802373f16feaf9633f05d8af77091350dda0a/msgspec-0.21.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl";
    // As uv 0.13.9 printed it on the trial's host.
    const uv = [
      "error: Failed to download `msgspec==0.21.1`",
      "  cause: Request failed after 3 retries in 6.3s",
      `  cause: Failed to fetch: ${wheel}`,
      `  cause: error sending request for url (${wheel})`,
      "  cause: client error (Connect)",
      "  cause: dns error",
      "  cause: error resolving DNS",
      "  cause: failed to lookup address information: Name or service not known",
    ];
    assert.equal(hintOf(uv), `; the install could not reach mirrors.aliyun.com (dns error): ${index}`);
    const lock =
      'version = 1\n[[package]]\nname = "msgspec"\nversion = "0.21.1"\nsource = { registry = "https://mirrors.aliyun.com/pypi/simple" }\n';
    assert.equal(
      hintOf(uv, { "uv.lock": lock }),
      "; the install could not reach mirrors.aliyun.com (dns error): uv.lock downloads its packages " +
        "from the registry it names there (pyproject.toml's [[tool.uv.index]], or the index it was locked with): the " +
        "host needs DNS and outbound HTTPS to mirrors.aliyun.com, or lock the app against an index the host reaches " +
        "(without that [[tool.uv.index]]: uv lock --default-index https://pypi.org/simple)",
    );
  });
});

describe("release script: the command drop-ins (dropin_write, live_dropin_write, live_dropins_revert, live_dropins_done)", () => {
  const fns = ["dropin_write", "live_dropin_write", "live_dropins_revert", "live_dropins_done"].map(
    releaseFunction,
  );

  /** The functions run under bash -eu, SYSTEMCTL a stand-in that logs its arguments to <tmp>/systemctl.log. */
  function run(tmp: string, body: string[]) {
    fs.writeFileSync(`${tmp}/systemctl`, `#!/bin/sh\necho "$*" >>${tmp}/systemctl.log\n`, { mode: 0o755 });
    const script = ["set -euo pipefail", `SYSTEMCTL=${tmp}/systemctl LIVE_DROPINS=()`, ...fns, ...body].join(
      "\n",
    );
    return spawnSync("bash", ["-c", script], { encoding: "utf8" });
  }
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : null);
  const web = (tmp: string) => `${tmp}/x-web@8001.service.d/apphost-command.conf`;
  const worker = (tmp: string) => `${tmp}/x-worker.service.d/apphost-command.conf`;

  it("dropin_write makes the unit's .d directory and writes the content as given, 0644, no temp file left", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-dropins-"));
    try {
      const r = run(tmp, [
        `dropin_write ${web(tmp)} $'[Service]\\nExecStart=\\nExecStart=/bin/sh -c "exec a b"\\n'`,
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(read(web(tmp)), '[Service]\nExecStart=\nExecStart=/bin/sh -c "exec a b"\n');
      assert.equal((fs.statSync(web(tmp)).mode & 0o777).toString(8), "644");
      assert.deepEqual(fs.readdirSync(path.dirname(web(tmp))), ["apphost-command.conf"]);
      assert.equal(read(`${tmp}/systemctl.log`), null, "the caller reloads, not dropin_write");
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("live_dropins_revert puts back what each live_dropin_write of this run replaced (or removes it), then reloads", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-dropins-"));
    try {
      fs.mkdirSync(path.dirname(worker(tmp)));
      fs.writeFileSync(worker(tmp), "old worker\n");
      let r = run(tmp, [
        `live_dropin_write ${worker(tmp)} 'new worker'`,
        `live_dropin_write ${tmp}/x-other.service.d/apphost-command.conf 'new other'`,
        `cat ${worker(tmp)}`,
        "live_dropins_revert",
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, "new worker");
      assert.equal(read(worker(tmp)), "old worker\n");
      assert.equal(read(`${tmp}/x-other.service.d/apphost-command.conf`), null, "none before: none after");
      assert.equal(read(`${tmp}/systemctl.log`), "daemon-reload\n");
      // Without a write in this run the revert touches nothing and does not reload (the .previous is an earlier run's).
      r = run(tmp, [`live_dropin_write ${worker(tmp)} 'new worker'`]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(read(`${worker(tmp)}.previous`), "old worker\n");
      assert.equal(run(tmp, ["live_dropins_revert"]).status, 0);
      assert.equal(read(worker(tmp)), "new worker");
      assert.equal(read(`${tmp}/systemctl.log`), "daemon-reload\n");
      // A release that finished drops the copies its switch kept.
      r = run(tmp, [`live_dropin_write ${worker(tmp)} 'newer worker'`, "live_dropins_done"]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(read(worker(tmp)), "newer worker");
      assert.deepEqual(fs.readdirSync(path.dirname(worker(tmp))), ["apphost-command.conf"]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe("release script: node_version_hint, a build whose tools need a newer Node than the host's", () => {
  const fn = releaseFunction("node_version_hint");
  const defs = [releaseDefinition(/^NODE_TOO_OLD=.*$/m), releaseDefinition(/^NEWER_NODE=.*$/m)];

  /** The hint for a failed `command` whose output ends in `lines`, on a host whose node says v18.20.4. */
  function hintOf(command: string, lines: string[]): string {
    assert.ok(fn && defs.every(Boolean), "release.sh has no node_version_hint or NODE_TOO_OLD");
    return withJobOutput(
      [...defs, fn, `AS_APP_CMD=${shellQuote(command)}`, "node() { echo v18.20.4; }"],
      "node_version_hint",
      `${lines.join("\n")}\n`,
    );
  }
  const todo =
    "set apphost:host.os to debian-13 on an ec2 stack, or, on an existing host, add NodeSource's apt repository for a newer nodejs before deploying";
  const tooOld =
    "; the host's Node (v18.20.4, Debian's nodejs package) is older than the build's tools need: ";

  it("quotes Vite 8's rolldown, Vite 7 and Vite's own check on Node 18; offers bun run --bun to a build that runs bun run", () => {
    const rolldown = [
      "$ tsc -p tsconfig.build.json && vite build",
      "file:///srv/fst-fst/releases/20261207202751-4a61b5f7/node_modules/rolldown/dist/shared/create-bundler-option-BZD-ER-Z.mjs:8",
      'import { formatWithOptions, styleText } from "node:util";',
      "                            ^^^^^^^^^",
      "SyntaxError: The requested module 'node:util' does not provide an export named 'styleText'",
      "    at ModuleJob._instantiate (node:internal/modules/esm/module_job:123:21)",
      "Node.js v18.20.4",
      'error: script "build" exited with code 1',
    ];
    // full-stack-fastapi-template's frontend, built on Debian 12 (a trial's output, cut down)
    assert.equal(
      hintOf("bun install --frozen-lockfile && cd frontend && bun run build", rolldown),
      `${tooOld}SyntaxError: The requested module 'node:util' does not provide an export named 'styleText'; ` +
        `run the build's scripts on Bun (bun run --bun <script>), ${todo}`,
    );
    assert.equal(
      hintOf("cd frontend && npm ci && npm run build", rolldown),
      `${tooOld}SyntaxError: The requested module 'node:util' does not provide an export named 'styleText'; ${todo}`,
    );
    assert.equal(
      hintOf("npm run build", [
        "> vite build",
        "You are using Node.js 18.20.4. Vite requires Node.js version 20.19+ or 22.12+. Please upgrade your Node.js version.",
        "error during build:",
        "TypeError: crypto.hash is not a function",
      ]),
      `${tooOld}You are using Node.js 18.20.4. Vite requires Node.js version 20.19+ or 22.12+. Please upgrade your Node.js version.; ${todo}`,
    );
    assert.equal(
      hintOf("yarn build", ["error during build:", "  TypeError: crypto.hash is not a function"]),
      `${tooOld}TypeError: crypto.hash is not a function; ${todo}`,
    );
  });

  it("nothing for other failures; a build that already runs its scripts on Bun is not offered it again", () => {
    assert.equal(hintOf("npm run build", ["src/main.ts(3,1): error TS2304: Cannot find name 'foo'."]), "");
    assert.equal(
      hintOf("bun run --bun build", [
        "SyntaxError: The requested module 'node:util' does not provide an export named 'styleText'",
      ]),
      `${tooOld}SyntaxError: The requested module 'node:util' does not provide an export named 'styleText'; ${todo}`,
    );
  });
});

describe("release script: npm_lock_hint, npm ci refusing the lock as out of sync with package.json", () => {
  const fn = releaseFunction("npm_lock_hint");
  const defs = [
    releaseDefinition(/^NPM_PIN=.*$/m),
    releaseDefinition(/^NPM_PIN_NODE18=.*$/m),
    releaseDefinition(/^NEWER_NODE=.*$/m),
  ];
  const hostNpm =
    "npm_config_cache=/srv/n-n/cache/npm npm_config_nodedir=/usr npm ci --include=dev --no-audit --no-fund";

  /** The hint for a failed `command` whose output ends in `lines`, on a host with npm 9.2.0 and Node `node`. */
  function hintOf(command: string, lines: string[], node = "v20.19.2"): string {
    assert.ok(
      fn && defs.every(Boolean),
      "release.sh has no npm_lock_hint, NPM_PIN, NPM_PIN_NODE18 or NEWER_NODE",
    );
    return withJobOutput(
      [
        ...defs,
        fn,
        `AS_APP_CMD=${shellQuote(command)}`,
        "npm() { echo 9.2.0; }",
        `node() { echo ${node}; }`,
        // runuser -u <user> -- <command>: the command, as this user.
        'as_user() { shift 3; "$@"; }; RUNUSER=as_user APP_USER=shop-prod',
      ],
      "npm_lock_hint",
      `${lines.join("\n")}\n`,
    );
  }
  // What Debian 13's npm 9.2.0 printed for brocoders/nestjs-boilerplate's lock (a trial's output, cut down).
  const refused = [
    "npm WARN EBADENGINE   required: { node: '^20.9.0 || >=22.0.0', npm: '>=10.8.2' },",
    "npm ERR! code EUSAGE",
    "npm ERR!",
    "npm ERR! `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync. Please update your lock file with `npm install` before continuing.",
    "npm ERR!",
    "npm ERR! Missing: gcp-metadata@7.0.1 from lock file",
    "npm ERR!",
    "npm ERR! Clean install a project",
  ];
  const host = (pin: string, why = "") =>
    "; npm 9.2.0, the host's (Debian's npm package), reads the lock as out of sync with package.json " +
    "(Missing: gcp-metadata@7.0.1 from lock file), as an older npm often reads a lock a newer one wrote: " +
    `set "packageManager": "npm@${pin}" in package.json${why}, and apphost installs that npm for the release; ` +
    "or run npm install with npm 9.2.0 in the app and commit the lock it writes";

  it("the host's npm: names what differs and offers the npm 11 pin, or npm 10 on a Node older than 20.17", () => {
    assert.equal(hintOf(hostNpm, refused), host("11.21.3"));
    assert.equal(
      hintOf(hostNpm, refused, "v18.19.0"),
      host(
        "10.9.9",
        " (npm 11 needs Node 20.17 or later, and the host's is v18.19.0: if npm 10.9.9 reads the lock the same, " +
          "set apphost:host.os to debian-13 on an ec2 stack, or, on an existing host, add NodeSource's apt repository " +
          "for a newer nodejs before deploying, then pin npm 11.21.3)",
      ),
    );
    // npm 10 and later spell it `npm error`; an Invalid: line is named as a Missing: one is.
    const invalid = [
      "npm error `npm ci` can only install packages when your package.json and package-lock.json or npm-shrinkwrap.json are in sync. Please update your lock file with `npm install` before continuing.",
      "npm error Invalid: lock file's vite@5.4.1 does not satisfy vite@6.0.0",
    ];
    assert.match(
      hintOf(hostNpm, invalid),
      /\(Invalid: lock file's vite@5\.4\.1 does not satisfy vite@6\.0\.0\)/,
    );
  });

  it("a pinned npm's refusal asks for the lock that npm writes; nothing for another failure or command", () => {
    // The release the install phase put beside the tree, read from its package.json.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-npm-pin-"));
    try {
      fs.mkdirSync(path.join(dir, ".apphost-tool/lib/node_modules/npm"), { recursive: true });
      fs.writeFileSync(
        path.join(dir, ".apphost-tool/lib/node_modules/npm/package.json"),
        '{\n  "name": "npm",\n  "version": "11.21.3",\n  "bin": {}\n}\n',
      );
      const pinned = `npm_config_nodedir=/usr ${dir}/.apphost-tool/bin/npm ci --include=dev --no-audit --no-fund`;
      assert.equal(
        hintOf(pinned, refused),
        "; npm 11.21.3 (package.json's packageManager) reads the lock as out of sync with package.json " +
          "(Missing: gcp-metadata@7.0.1 from lock file): run npm install with that npm in the app and commit the lock " +
          "it writes, or pin the npm that wrote the lock",
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(
      hintOf(hostNpm, ["npm ERR! code E404", "npm ERR! 404 Not Found - GET https://registry.npmjs.org/nope"]),
      "",
    );
    // A Python app's build, with the npm its frontend pins first on its PATH.
    assert.equal(
      hintOf(
        'export PATH="/srv/shop-prod/cache/tools/npm-11.21.2/bin:$PATH" npm_config_nodedir=/usr; cd frontend && npm ci && npm run build',
        refused,
      ),
      "; npm 11.21.2 (package.json's packageManager) reads the lock as out of sync with package.json " +
        "(Missing: gcp-metadata@7.0.1 from lock file): run npm install with that npm in the app and commit the lock " +
        "it writes, or pin the npm that wrote the lock",
    );
    // The host's npm in a build: the pin offered.
    assert.match(hintOf("cd frontend && npm ci && npm run build", refused), /^; npm 9\.2\.0, the host's/);
    assert.equal(hintOf("yarn install --frozen-lockfile", refused), "");
    assert.equal(hintOf("npm cinnamon", refused), "");
  });
});

describe("release script: output_traceback, the Python error a failed build or install step ended on", () => {
  const fns = ["exception_line", "output_traceback"].map(releaseFunction);

  function run(output: string): string {
    assert.ok(fns.every(Boolean), "release.sh has no exception_line or output_traceback");
    return withJobOutput([errorHintFunction(), ...fns], "output_traceback", output);
  }

  it("names the step's last traceback with its hint; nothing for an earlier step's, or none", () => {
    const hint = (says: string) => ERROR_HINTS.find((h) => h.says === says)!.hint;
    // cookiecutter-flask's `npm install && npm run build`: webpack, then `flask digest compile` without the variable.
    const build = [
      "apphost: phase install: start",
      "added 411 packages, and audited 412 packages in 21s",
      "webpack 5.101.1 compiled successfully in 10553 ms",
      "> my_flask_app@1.0.0 flask-static-digest",
      "> flask digest compile",
      "Traceback (most recent call last):",
      '  File "/srv/ccf-ccf/releases/20261207081741-3e5bc133/my_flask_app/settings.py", line 18, in <module>',
      '    SEND_FILE_MAX_AGE_DEFAULT = env.int("SEND_FILE_MAX_AGE_DEFAULT")',
      "    raise EnvError(",
      'environs.exceptions.EnvError: Environment variable "SEND_FILE_MAX_AGE_DEFAULT" not set',
      "",
    ].join("\n");
    assert.equal(
      run(build),
      '; it ended on: environs.exceptions.EnvError: Environment variable "SEND_FILE_MAX_AGE_DEFAULT" not set ' +
        `(${hint('Environment variable "')})`,
    );
    // django-environ's and python-decouple's words get the same hint.
    for (const error of [
      "django.core.exceptions.ImproperlyConfigured: Set the DJANGO_SECRET_KEY environment variable",
      "decouple.UndefinedValueError: SECRET_KEY not found. Declare it as envvar or define a default value.",
    ])
      assert.equal(
        run(`Traceback (most recent call last):\n  File "x.py", line 1\n${error}\n`),
        `; it ended on: ${error} (${hint('Environment variable "')})`,
      );
    // A traceback of an earlier step (before the script's last note), or none at all: nothing.
    assert.equal(run(`${build}apphost: install: npm ci into /srv/x\nnpm error code ETARGET\n`), "");
    assert.equal(run("npm error code ETARGET\n"), "");
  });
});

describe("release script: journal_error, the error a web process that fails the gate died of, and its hint", () => {
  const fns = [
    "exception_line",
    "error_line",
    "last_exception",
    "journal_error",
    "unreachable_hint",
    "local_server_hint",
  ].map(releaseFunction);
  const servers = [/^declare -A LOCAL_SERVERS=[\s\S]*?\nreadonly LOCAL_SERVERS\n/m, /^UNREACHABLE=.*$/m].map(
    releaseDefinition,
  );

  /**
   * `<fn> <unit>` under bash -eu, with error_hint as rendered and a journalctl that prints `journal`; port 6380 is
   * the one port of this host something listens on.
   */
  function run(fn: "last_exception" | "journal_error", journal: string) {
    const script = [
      "set -euo pipefail",
      'JOURNALCTL=journal PUBLISH_STARTED=0; journal() { printf "%s" "$JOURNAL"; }',
      'port_listener() { if [ "$1" = 6380 ]; then echo "users:((\\"redis-server\\",pid=7,fd=6))"; fi; }',
      ...servers,
      errorHintFunction(),
      knownErrorLineFunction(),
      ...fns,
      `${fn} apphost-shop-prod-web@8001.service`,
    ].join("\n");
    const r = spawnSync("bash", ["-c", script], {
      encoding: "utf8",
      env: { ...process.env, JOURNAL: journal },
    });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  }
  const lastException = (journal: string) => run("last_exception", journal);
  const traceback = (error: string) =>
    [
      "[2026-12-04 18:02:58 +0000] [812] [ERROR] Exception in worker process",
      "Traceback (most recent call last):",
      '  File "/srv/shop-prod/releases/x/app/main.py", line 1, in <module>',
      "    import greenlet",
      error,
      "[2026-12-04 18:02:58 +0000] [812] [INFO] Worker exiting (pid: 812)",
    ].join("\n");

  it("the exception line of the last whole traceback, not of a start still printing one", () => {
    const journal = [
      traceback("ImportError: cannot import name 'x'"),
      traceback("ModuleNotFoundError: No module named 'greenlet'"),
      "Traceback (most recent call last):",
      '  File "/srv/shop-prod/releases/x/app/main.py", line 1, in <module>',
      "",
    ].join("\n");
    assert.equal(lastException(journal), "ModuleNotFoundError: No module named 'greenlet'\n");
    // Django's errors carry their module: the whole line.
    assert.equal(
      lastException(traceback("django.core.exceptions.ImproperlyConfigured: SECRET_KEY must not be empty")),
      "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must not be empty\n",
    );
  });

  it("journal_error: the line, with what it usually means (ERROR_HINTS), or nothing", () => {
    assert.equal(
      run("journal_error", traceback("ValueError: Missing staticfiles manifest entry for 'lang-logo.png'")),
      "; the last error in its journal: ValueError: Missing staticfiles manifest entry for 'lang-logo.png' " +
        "(Django with ManifestStaticFilesStorage, as WhiteNoise sets it up, serves only what collectstatic wrote: " +
        'set apphost:app.build to "python manage.py collectstatic --noinput")',
    );
    // fastapi-realworld's poetry.lock of 2022 on Python 3.11 (pydantic 1.9.2), as the trial's health gate quoted it.
    assert.equal(
      run("journal_error", traceback("ValueError: 'not' is not a valid parameter name")),
      "; the last error in its journal: ValueError: 'not' is not a valid parameter name (pydantic before 1.10 " +
        "fails on Python 3.11 and later with a field aliased to a Python keyword (FastAPI's OpenAPI models alias " +
        "not): lock pydantic 1.10 or later (poetry update pydantic, still pydantic 1))",
    );
    // BookWyrm's migration on apphost's Postgres role, as the trial's migrate phase printed it: psycopg's HINT line
    // after the exception's.
    const bloom = [
      "Traceback (most recent call last):",
      '  File "/srv/bw-bw/releases/x/.venv/lib/python3.11/site-packages/psycopg/cursor.py", line 97, in execute',
      "    raise ex.with_traceback(None)",
      'django.db.utils.ProgrammingError: permission denied to create extension "bloom"',
      "HINT:  Must be superuser to create this extension.",
      "",
    ].join("\n");
    assert.equal(
      run("journal_error", bloom),
      '; the last error in its journal: django.db.utils.ProgrammingError: permission denied to create extension "bloom" ' +
        "(the app's Postgres role owns its database but is no superuser, which this extension needs: list it in " +
        "apphost:database.extensions (kind postgres), and the host's postgres superuser creates it before the release; " +
        "the migration's CREATE EXTENSION IF NOT EXISTS then passes over it)",
    );
    // miguelgrinberg/flasky's Werkzeug 0.12.2 on Python 3.11, as the trial's migration printed it.
    const abc =
      "ImportError: cannot import name 'Container' from 'collections' (/usr/lib/python3.11/collections/__init__.py)";
    assert.equal(
      run("journal_error", traceback(abc)),
      `; the last error in its journal: ${abc} (a dependency written for Python 3.9 or older imports an abstract base ` +
        "class from collections, which Python 3.10 moved to collections.abc: the traceback's last frame names the " +
        "package (under site-packages/); lock a release of it made for Python 3.10 or later, or run a Python it " +
        "supports (pin the version in .python-version or requires-python, and set apphost:app.python to managed))",
    );
    assert.equal(
      run("journal_error", traceback("KeyError: 'SECRET_KEY'")),
      "; the last error in its journal: KeyError: 'SECRET_KEY'",
    );
    assert.equal(run("journal_error", "no traceback here\n"), "");
  });

  it("journal_error: output with no traceback (a Node app's), its last line with an error ERROR_HINTS knows", () => {
    const hint = ERROR_HINTS.find((h) => h.says === "unable to open database file")!.hint;
    // sequelize/express-example's index.js, its storage relative to the read-only release, as the trial's journal had it.
    const start = [
      "Checking database connection...",
      "Unable to connect to the database:",
      "SQLITE_CANTOPEN: unable to open database file",
      "apphost-seq-seq-web@9201.service: Main process exited, code=exited, status=1/FAILURE",
      "",
    ].join("\n");
    assert.equal(
      run("journal_error", start.repeat(3)),
      `; the last error in its journal: SQLITE_CANTOPEN: unable to open database file (${hint})`,
    );
    // The same in Python's words, from a traceback.
    assert.equal(
      run("journal_error", traceback("sqlite3.OperationalError: unable to open database file")),
      `; the last error in its journal: sqlite3.OperationalError: unable to open database file (${hint})`,
    );
    // A known error's first words with another ending (a relation's, not " does not exist"): nothing to say, and an
    // earlier line that is known is still found.
    assert.equal(run("journal_error", 'Error: relation "x" is locked\n'), "");
    assert.equal(
      lastException(`${start}Error: relation "x" is locked\n`),
      "SQLITE_CANTOPEN: unable to open database file\n",
    );
    // Node's words for a write into the read-only release: actualbudget/actual-server's migration state, where
    // ACTUAL_DATA_DIR is unset (the trial's journal).
    const erofs = [
      'Checking if there are any migrations to run for direction "up"...',
      "file:///srv/actual-actual/releases/20261207080224-8b842d0f/src/migrations.js:25",
      "            throw err;",
      "            ^",
      "[Error: EROFS: read-only file system, open '/srv/actual-actual/releases/20261207080224-8b842d0f/.migrate'] {",
      "  errno: -30,",
      "  code: 'EROFS',",
      "}",
      "Node.js v18.20.4",
      "",
    ].join("\n");
    assert.equal(
      run("journal_error", erofs),
      "; the last error in its journal: [Error: EROFS: read-only file system, open " +
        `'/srv/actual-actual/releases/20261207080224-8b842d0f/.migrate'] { (${ERROR_HINTS.find((h) => h.says === "EROFS: read-only file system")!.hint})`,
    );
    // The health gate's look at a 5xx (last_exception): Sequelize's error for a table the database lacks.
    assert.equal(
      lastException(
        "Executing (default): SELECT * FROM `users`;\nError: SQLITE_ERROR: no such table: users\n",
      ),
      "Error: SQLITE_ERROR: no such table: users\n",
    );
  });

  it("journal_error: a table the database lacks, in Postgres's words through asyncpg and psycopg, and in SQLite's; Tortoise's scheme", () => {
    const hint = ERROR_HINTS.find((h) => h.says === "no such table: ")!.hint;
    // FastAPI-boilerplate's /api/v1/tiers before its first revision, as the trial's health gate quoted it.
    const errors = [
      'sqlalchemy.dialects.postgresql.asyncpg.AsyncAdapt_asyncpg_dbapi.ProgrammingError: relation "tier" does not exist',
      'psycopg2.errors.UndefinedTable: relation "catalog_book" does not exist',
      "sqlite3.OperationalError: no such table: songs",
    ];
    for (const error of errors)
      assert.equal(
        run("journal_error", traceback(error)),
        `; the last error in its journal: ${error} (${hint})`,
      );
    // Tortoise ORM's aerich upgrade on apphost's default scheme (testdrivenio/fastapi-tdd-docker's trial).
    const tortoise = "tortoise.exceptions.ConfigurationError: Unknown DB scheme: postgresql";
    assert.equal(
      run("journal_error", traceback(tortoise)),
      `; the last error in its journal: ${tortoise} (Tortoise ORM (and aerich) reads postgres:// (asyncpg), not the ` +
        "postgresql:// apphost writes in DATABASE_URL by default: set apphost:database.urlScheme to postgres)",
    );
    // A Node process's journal, no traceback: the line ERROR_HINTS knows (TypeORM without its DATABASE_TYPE, the
    // nestjs-boilerplate trial's migration output).
    const typeorm =
      'Error: Unable to open file: "/srv/n-n/releases/x/src/database/data-source.ts". Wrong driver: "undefined" given. ' +
      'Supported drivers are: "aurora-mysql", "postgres", "sqlite".';
    assert.equal(
      run(
        "journal_error",
        ["Error during migration run:", typeorm, "    at Function.loadDataSource (x.ts:21:19)"].join("\n"),
      ),
      `; the last error in its journal: ${typeorm} (TypeORM's DataSource got no type: the app reads the kind of ` +
        "database from a variable of its own that the stack does not set (nestjs-boilerplate's DATABASE_TYPE): set it " +
        "in apphost:app.env to postgres (sqlite for apphost:database.kind sqlite); apphost sets DATABASE_URL, and the " +
        "app's other database variables may reference ${database.host}, ${database.port}, ${database.user}, " +
        "${database.password}, ${database.name})",
    );
    // Node's recursive mkdir in the read-only release (multer's destination './files' at NestJS's start).
    const mkdir = "Error: ENOENT: no such file or directory, mkdir './files'";
    assert.equal(
      run(
        "journal_error",
        [
          "[Nest] 10880  - 12/07/2026, 11:41:38 PM     LOG [InstanceLoader] ConfigModule dependencies initialized +0ms",
          `[Nest] 10880  - 12/07/2026, 11:41:38 PM   ERROR [ExceptionHandler] ${mkdir}`,
          "    at Object.mkdirSync (node:fs:1386:26)",
          "  syscall: 'mkdir',",
        ].join("\n"),
      ),
      `; the last error in its journal: [Nest] 10880  - 12/07/2026, 11:41:38 PM   ERROR [ExceptionHandler] ${mkdir} ` +
        "(a directory the app makes in its working directory, the release (Node's recursive mkdir says ENOENT where " +
        "it may not write): the release directory is read-only to the app's processes (each release replaces it): " +
        "list the directory the app writes in apphost:app.sharedDirs (a path inside the release, like .data or " +
        "CTFd/uploads), which keeps it across releases, or point the app at data/ (docs/config.md, Files the app writes))",
    );
    // Another object that does not exist is not a table.
    assert.equal(
      run("journal_error", traceback('psycopg2.OperationalError: FATAL:  database "shop" does not exist')),
      '; the last error in its journal: psycopg2.OperationalError: FATAL:  database "shop" does not exist',
    );
  });

  it("journal_error: with no hint, the line before it that names a server of this host nothing listens on", () => {
    // FastAPI-boilerplate's lifespan on a host without Redis, as the trial's journal had it (arq retries, then a
    // chain whose last exception is the failed close of the pool it never made).
    const chain = (port: number) =>
      [
        `2026-12-07 01:54:15,330 - arq.connections - WARNING - redis connection error localhost:${port} ConnectionError Error 111 connecting to localhost:${port}. Connection refused., 5 retries remaining...`,
        "ERROR:    Traceback (most recent call last):",
        '  File "/srv/boiler-boiler/venvs/x/lib/python3.11/site-packages/redis/asyncio/connection.py", line 723, in _connect',
        "ConnectionRefusedError: [Errno 111] Connection refused",
        "During handling of the above exception, another exception occurred:",
        "Traceback (most recent call last):",
        '  File "/srv/boiler-boiler/releases/x/src/app/core/setup.py", line 102, in lifespan',
        `redis.exceptions.ConnectionError: Error 111 connecting to localhost:${port}. Connection refused.`,
        "During handling of the above exception, another exception occurred:",
        "Traceback (most recent call last):",
        '  File "/srv/boiler-boiler/releases/x/src/app/core/setup.py", line 116, in lifespan',
        "AttributeError: 'NoneType' object has no attribute 'aclose'",
        "ERROR:    Application startup failed. Exiting.",
        "",
      ].join("\n");
    assert.equal(
      run("journal_error", chain(6379)),
      "; the last error in its journal: AttributeError: 'NoneType' object has no attribute 'aclose'; before it, the " +
        'journal says it could not reach a server it needs: "redis.exceptions.ConnectionError: Error 111 connecting to ' +
        "localhost:6379. Connection refused.\"; nothing on this host listens on port 6379, Redis's: add redis-server to " +
        "apphost:host.packages (the host baseline installs and starts it), or give the app the address of one (apphost:app.env)",
    );
    // Something listens there: the server refused for another reason, which the line alone does not tell.
    assert.equal(
      run("journal_error", chain(6380)),
      "; the last error in its journal: AttributeError: 'NoneType' object has no attribute 'aclose'",
    );
    // An error with a hint of its own keeps it alone.
    assert.match(
      run(
        "journal_error",
        `Error 111 connecting to localhost:6379. Connection refused.\n${traceback("ValueError: 'not' is not a valid parameter name")}`,
      ),
      /\(pydantic before 1\.10 [^;]*\)$/,
    );
  });

  it("nothing without a traceback (a Node app, a shell error), and at most 300 characters", () => {
    assert.equal(
      lastException("Error: Cannot find module 'express'\n    at Module._resolveFilename\n"),
      "\n",
    );
    assert.equal(
      lastException(traceback(`KeyError: '${"k".repeat(400)}'`)),
      `KeyError: '${"k".repeat(289)}\n`,
    );
  });
});

describe("release script: port_hint, for a web process that listens elsewhere", () => {
  const hintOf = (runtime: string) => {
    const r = spawnSync(
      "bash",
      [
        "-c",
        [
          "set -euo pipefail",
          "port_listener() { :; }",
          releaseFunction("port_hint"),
          'port_hint 9201 "$2"',
        ].join("\n"),
        "_",
        runtime,
        "apphost-seq-seq-web@9201.service",
      ],
      { encoding: "utf8", env: { ...process.env, RUNTIME: runtime } },
    );
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const said =
    "the web process (apphost:app.processes) must listen on the port in $PORT, 9201 for this release: each release starts " +
    "beside the one serving, on the other of two ports, so a port of its own, or its server's default, serves one release " +
    "at most; give it $PORT in the command (--port $PORT, or APP_PORT=$PORT <command> for an app that reads its port from " +
    "a variable of its own), or read PORT in the script that starts the server";

  it("names process.env.PORT for a Node app (sequelize/express-example's const PORT = 8080)", () => {
    assert.equal(hintOf("python"), `${said}\n`);
    assert.equal(hintOf("node"), `${said} (Node: process.env.PORT where the app calls listen)\n`);
  });
});

/** release.sh's grep options that leave the app's tests out, which several checks read the release with. */
const APP_TESTS = releaseDefinition(/^APP_TESTS=\([^)]*\)$/m);

describe("release script: drop_tables_check, a migration named as a database's creation that drops tables", () => {
  const fn = APP_TESTS + "\n" + releaseFunction("drop_tables_check");
  const check = (files: Record<string, string>, command: string) =>
    runInRelease(['note() { printf "%s\\n" "$*"; }', fn, 'drop_tables_check "$1"'], files, {
      args: [command],
      env: () => ({ RUNUSER: "/usr/bin/env", APP_USER: "nobody-here" }),
    });
  const said = (command: string, at: string) =>
    `install: warning: the migration, \`${command}\`, is named as a database's creation, and the release drops tables (${at}): ` +
    "apphost runs the migration before every release, so each release would empty the stack's database (the backup taken " +
    `before it keeps what it held); run it once by hand (npm run exec -- ${command}), and set apphost:database.migrate to a ` +
    "migration tool's command that keeps the data (Flask-Migrate's flask db upgrade, alembic upgrade head), or to \"true\"\n";

  it("names the first line that drops tables, in Python or SQL; nothing where none does", () => {
    // The Flask tutorial's flaskr: init-db runs schema.sql.
    const flaskr = {
      "flaskr/__init__.py": "def create_app():\n    pass\n",
      "flaskr/schema.sql":
        "DROP TABLE IF EXISTS user;\nDROP TABLE IF EXISTS post;\n\nCREATE TABLE user (id INTEGER);\n",
    };
    assert.equal(
      check(flaskr, "flask --app flaskr init-db"),
      said("flask --app flaskr init-db", "flaskr/schema.sql:1"),
    );
    // testdrivenio/flask-on-docker's services/web/manage.py.
    const manage = {
      "manage.py": '@cli.command("create_db")\ndef create_db():\n    db.drop_all()\n    db.create_all()\n',
    };
    assert.equal(
      check(manage, "python manage.py create_db"),
      said("python manage.py create_db", "manage.py:3"),
    );
    assert.equal(
      check(
        {
          "manage.py": "db.create_all()\n",
          "schema.sql": "-- DROP TABLE users;\nCREATE TABLE users (id int);\n",
          // The app's tests drop their own tables.
          "tests/conftest.py": "db.drop_all()\n",
          "app/test_models.py": "db.drop_all()\n",
          "test/schema.sql": "DROP TABLE users;\n",
        },
        "python manage.py create_db",
      ),
      "",
    );
  });

  it("Sequelize's sync({ force: true }) in JavaScript or TypeScript, not in tests or node_modules", () => {
    // sequelize/express-example (7304dc6): package.json's setup-example-db runs this file.
    const setup = {
      "sqlite-example-database/setup.js":
        "async function reset() {\n\tconsole.log('Will rewrite the SQLite example database');\n\n\tawait sequelize.sync({ force: true });\n",
      "index.js": "sequelize.authenticate();\n",
    };
    assert.equal(
      check(setup, "npm run setup-example-db"),
      said("npm run setup-example-db", "sqlite-example-database/setup.js:4"),
    );
    assert.equal(
      check({ "src/db.ts": "await db.sync({alter: true, force:true})\n" }, "npm run reset-db"),
      said("npm run reset-db", "src/db.ts:1"),
    );
    assert.equal(
      check(
        {
          "index.js": "await sequelize.sync();\nawait sequelize.sync({ alter: true });\n",
          "test/setup.js": "await sequelize.sync({ force: true });\n",
          "models.test.js": "await sequelize.sync({ force: true });\n",
          "node_modules/sequelize/lib/sequelize.js": "this.sync({ force: true });\n",
        },
        "npm run setup-db",
      ),
      "",
    );
  });
});

describe("release script: migrate_output and migrate_earlier, what a failed migration's error quotes of its log", () => {
  const quoted = (log: string) =>
    runInRelease(
      [
        releaseFunction("migrate_output"),
        releaseFunction("migrate_earlier"),
        'echo "failed$(migrate_earlier "$NEW_DIR/migrate.log"); last 40 lines:"; migrate_output "$NEW_DIR/migrate.log"',
      ],
      { "migrate.log": log },
      { env: () => ({ RUNUSER: "/usr/bin/env", APP_USER: "nobody-here" }) },
    );
  const usage = Array.from({ length: 45 }, (_, i) => `usage line ${i + 1}`);
  const last40 = `${usage.slice(5).join("\n")}\n`;

  it("its last 40 lines, without terminal colours; where longer, the lines before them that name an error (Piccolo's)", () => {
    // sinisaos/litestar-piccolo's `piccolo migrations forwards all`: the error, then the command's usage.
    const log = [
      "\u001b[1m  TASKS\u001b[0m",
      "  - 2023-02-17T18:31:54:853171 [forwards]... ok!",
      "  - 2023-02-18T07:32:43:869608 [forwards]... \u001b[31mThe command failed.\u001b[39m\u001b[0m",
      'relation "piccolo_user" does not exist',
      "For a full stack trace, use --trace",
      ...usage,
    ];
    assert.equal(
      quoted(`${log.join("\n")}\n`),
      "failed; earlier in its output: - 2023-02-18T07:32:43:869608 [forwards]... The command failed. | " +
        'relation "piccolo_user" does not exist; last 40 lines:\n' +
        last40,
    );
    // 25 lines or fewer, or none before the last 25 that names an error: the last 40 alone.
    assert.equal(quoted("a\nERROR: b\n"), "failed; last 40 lines:\na\nERROR: b\n");
    assert.equal(quoted(`ok\n${usage.join("\n")}\n`), `failed; last 40 lines:\n${last40}`);
    const firstLine = (text: string) => quoted(text).split("\n")[0];
    assert.equal(
      firstLine(`${usage.slice(0, 21).join("\n")}\nERROR: x\n${usage.slice(21).join("\n")}\n`),
      "failed; last 40 lines:",
    );
    // A traceback's frames and code lines are passed over; its chained errors are not (esfoobar/quart-postgres-boilerplate).
    const traceback = [
      'psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 failed: FATAL:  password authentication failed for user "app_user"',
      "",
      "The above exception was the direct cause of the following exception:",
      "Traceback (most recent call last):",
      '  File "/srv/x/venvs/v/lib/python3.13/site-packages/sqlalchemy/engine/base.py", line 2442, in _handle_dbapi_exception_noconnection',
      "    raise sqlalchemy_exception.with_traceback(exc_info[2]) from e",
      "        Connection._handle_dbapi_exception_noconnection(",
    ];
    assert.equal(
      firstLine(`${traceback.join("\n")}\n${usage.slice(0, 30).join("\n")}\n`),
      'failed; earlier in its output: psycopg2.OperationalError: connection to server at "127.0.0.1", port 5432 ' +
        'failed: FATAL:  password authentication failed for user "app_user"; last 40 lines:',
    );
    // sinisaos/litestar-piccolo's, as it was: 41 lines, the error 9 lines down (the deploy showed its last 28).
    assert.equal(
      firstLine(`${log.slice(0, 5).join("\n")}\n${usage.slice(0, 36).join("\n")}\n`),
      "failed; earlier in its output: - 2023-02-18T07:32:43:869608 [forwards]... The command failed. | " +
        'relation "piccolo_user" does not exist; last 40 lines:',
    );
  });
});

describe("release script: migration_unset_check, a migration tool's files in a stack that runs no migration", () => {
  const fn = ["create_all_script", "migration_unset_check", "django_manage"].map(releaseFunction).join("");

  /** What the check notes for a release holding these files (a path ending in / is a directory). */
  const noteOf = (files: string[] | Record<string, string>, noCollectstatic = "1") =>
    runInRelease(
      [
        'note() { printf "%s\\n" "$*"; }',
        // Django's checks, as they are called.
        'static_root_check() { printf "static_root_check %s\\n" "$*"; }',
        'secret_key_check() { printf "secret_key_check %s\\n" "$*"; }',
        fn,
        'migration_unset_check "$1"',
      ],
      Array.isArray(files) ? Object.fromEntries(files.map((f) => [f, ""])) : files,
      { args: [noCollectstatic], env: () => ({ RUNUSER: "/usr/bin/env", APP_USER: "nobody-here" }) },
    );
  // mjhea0/flaskr-tdd's create_db.py (305122f), comments aside.
  const CREATE_DB =
    "from project.app import app, db\n\nwith app.app_context():\n    db.create_all()\n    db.session.commit()\n";
  const CREATE_ALL_TAIL =
    " the app's tables with SQLAlchemy's create_all() (the missing ones only: a changed model needs a migration tool, " +
    "such as Flask-Migrate)";
  // Django's startproject manage.py, as its first lines read.
  const DJANGO_MANAGE = '"""Django\'s command-line utility for administrative tasks."""\nimport os\n';

  it("names the file found and its tool's command; nothing for a release without one", () => {
    const said = (found: string, command: string) =>
      `install: warning: the release has ${found}, and the stack runs no migration (apphost:database.migrate is ` +
      "unset, and the app has no Procfile release: line), so its database tables are never created or changed: set " +
      `apphost:database.migrate to "${command}" (apphost then backs the database up before it, and restores it if the ` +
      'release fails), or, if the app migrates by itself as it starts, to "true"\n';
    const table: [string[] | Record<string, string>, string][] = [
      // testdrivenio/fastapi-sqlmodel-alembic's project/
      [["alembic.ini", "migrations/env.py", "app/main.py"], said("alembic.ini", "alembic upgrade head")],
      [
        ["migrations/alembic.ini", "migrations/env.py", "app.py"],
        said("migrations/alembic.ini, Flask-Migrate's", "flask db upgrade"),
      ],
      // Django's, with its own checks (django-cms/django-cms-quickstart's first deploy: every page a 500, no error logged).
      [
        { "manage.py": DJANGO_MANAGE, "shop/settings.py": "" },
        said("manage.py, Django's", "python manage.py migrate --noinput") +
          "static_root_check python manage.py\nsecret_key_check python manage.py\n",
      ],
      // shynet: its Django project one directory down, its checks run there.
      [
        { "shynet/manage.py": DJANGO_MANAGE, "shynet/shynet/settings.py": "", "package.json": "{}" },
        said("shynet/manage.py, Django's", "cd shynet && python manage.py migrate --noinput") +
          "static_root_check cd shynet && python manage.py\nsecret_key_check cd shynet && python manage.py\n",
      ],
      // testdrivenio/flask-on-docker's services/web: a Flask CLI named manage.py.
      [{ "manage.py": "from flask.cli import FlaskGroup\n", "project/__init__.py": "" }, ""],
      [["prisma/migrations/", "package.json"], said("prisma/migrations", "npx prisma migrate deploy")],
      [["knexfile.js", "package.json"], said("a knexfile", "npx knex migrate:latest")],
      // sinisaos/litestar-piccolo's backend: Piccolo ORM's project file, its migrations in each app's piccolo_migrations/.
      [
        ["piccolo_conf.py", "apps/tasks/piccolo_migrations/", "main.py"],
        said("piccolo_conf.py, Piccolo's", "piccolo migrations forwards all"),
      ],
      // w3cj/hono-open-api-starter: drizzle-kit's config, its migrations in src/db/migrations.
      [
        ["drizzle.config.ts", "src/db/migrations/0000_x.sql", "package.json"],
        said("drizzle.config.ts, drizzle-kit's", "npx drizzle-kit migrate"),
      ],
      [["drizzle.config.mjs"], said("drizzle.config.mjs, drizzle-kit's", "npx drizzle-kit migrate")],
      [["app.py", "requirements.txt", "migrations/"], ""],
      // mjhea0/flaskr-tdd (305122f): its create_db.py at the root.
      [
        {
          "create_db.py": CREATE_DB,
          "project/app.py": "db = SQLAlchemy(app)\n",
          Procfile: "web: gunicorn project.app:app\n",
        },
        said(
          "create_db.py, which creates the app's tables with SQLAlchemy's create_all() (the missing ones only: a changed " +
            "model needs a migration tool, such as Flask-Migrate)",
          "python create_db.py",
        ),
      ],
      [{ "Init-DB.py": CREATE_DB }, said(`Init-DB.py, which creates${CREATE_ALL_TAIL}`, "python Init-DB.py")],
      [
        { "db_create.py": CREATE_DB },
        said(`db_create.py, which creates${CREATE_ALL_TAIL}`, "python db_create.py"),
      ],
      // A migration tool comes first.
      [{ "create_db.py": CREATE_DB, "alembic.ini": "" }, said("alembic.ini", "alembic upgrade head")],
      // One that drops the tables too (flask-on-docker's create_db, as a script) empties the database each release.
      [{ "create_db.py": `db.drop_all()\n${CREATE_DB}` }, ""],
      // Not named as a creation (an app that creates its tables as it starts), not at the root, no create_all().
      [{ "app.py": CREATE_DB }, ""],
      [{ "scripts/create_db.py": CREATE_DB }, ""],
      [{ "create_db.py": "import sqlite3\n" }, ""],
    ];
    assert.deepEqual(
      table.map(([files]) => [files, noteOf(files)]),
      table,
    );
    // A command of the stack's runs collectstatic: Django's deploy check of SECRET_KEY alone.
    assert.equal(
      noteOf({ "manage.py": DJANGO_MANAGE }, "0"),
      said("manage.py, Django's", "python manage.py migrate --noinput") +
        "secret_key_check python manage.py\n",
    );
  });
});

describe("release script: health_elsewhere, what / says of an app with no route at the health path", () => {
  /**
   * health_elsewhere with curl stubbed: `root` is what / answers (code and redirect), `target` what
   * /accounts/login/ (where / redirects) answers, `route` the one common health route that answers 200 (each other
   * path answers 404), and the calls logged.
   */
  const run = (root: string, target = "", route = "", healthPath = "/healthz") =>
    runInRelease(
      [
        "PROXY_HEADERS=()",
        'curl() { echo "${!#}" >>"$CALLS"; case "${!#}" in *:8001/) printf %s "$ROOT" ;; */accounts/login/) printf %s "$TARGET" ;; *:8001"$ROUTE") printf 200 ;; *) printf 404 ;; esac; }',
        releaseDefinition(/^HEALTH_ROUTES=\([^)]*\)$/m),
        releaseDefinition(/^API_DOC_ROUTES=\([^)]*\)$/m),
        releaseFunction("health_elsewhere"),
        'health_elsewhere "$1"; echo "calls $(wc -l <"$CALLS")"',
      ],
      {},
      {
        args: [`http://127.0.0.1:8001${healthPath}`],
        env: (tmp) => ({
          ROOT: root,
          TARGET: target,
          ROUTE: route || "/none",
          CALLS: path.join(tmp, "calls"),
        }),
      },
    );
  const elsewhere = (root: string, target = "") => run(root, target).replace(/calls \d+\n$/, "");

  it("a common health route that answers 2xx comes first (full-stack-fastapi-template's), each route asked once", () => {
    assert.equal(
      run("200 ", "", "/api/v1/utils/health-check/"),
      " (GET /api/v1/utils/health-check/ answers 200: set it to /api/v1/utils/health-check/)\ncalls 8\n",
    );
    // None answers: each asked once, the health path itself not again, then /.
    assert.equal(
      run("200 ", "", "", "/health"),
      " (GET / answers 200: set it to /, or add a route that answers 2xx)\ncalls 14\n",
    );
  });

  it("a page that answers 2xx, or a 5xx there: the app fails on its own pages too (healthchecks without compress)", () => {
    assert.equal(elsewhere("200 "), " (GET / answers 200: set it to /, or add a route that answers 2xx)\n");
    assert.equal(elsewhere("500 "), " (GET / answers 500: the app fails on its own pages too)\n");
    const login = "302 http://127.0.0.1:8001/accounts/login/?next=/";
    assert.equal(
      elsewhere(login, "200"),
      " (GET / redirects to /accounts/login/, which answers 200: set it to /accounts/login/, or add a route that answers 2xx)\n",
    );
    assert.equal(
      elsewhere(login, "500"),
      " (GET / redirects to /accounts/login/, which answers 500: the app fails on its own pages too)\n",
    );
    // A 404 or a login there says nothing more.
    assert.equal(elsewhere(login, "404"), "");
    assert.equal(elsewhere("401 "), "");
  });

  it("an API with no page at /: its documentation's route (sinisaos/litestar-piccolo: Litestar's /schema)", () => {
    assert.equal(
      run("404 ", "", "/schema"),
      " (GET / answers 404, and GET /schema, the API's documentation, answers 200: set it to /schema, or add a route " +
        "that answers 2xx)\ncalls 16\n",
    );
    // None of them: nothing, each asked once.
    assert.equal(run("404 "), "calls 19\n");
    // Asked only where / answers 404.
    assert.equal(run("403 ", "", "/docs"), "calls 14\n");
    assert.equal(elsewhere("302 http://127.0.0.1:8001/"), "");
  });
});

describe("release script: database_env_hint, an app that reads its Postgres from variables of its own", () => {
  /** The hint for a release with these files, and an env file with these lines (none: no env file). */
  const hintOf = (files: Record<string, string>, envFile?: string) =>
    runInRelease([APP_TESTS, releaseFunction("database_env_hint"), "database_env_hint"], files, {
      env: (tmp) => {
        if (envFile !== undefined) fs.writeFileSync(path.join(tmp, "app.env"), envFile);
        return { RUNUSER: "/usr/bin/env", APP_USER: "nobody-here", ENV_FILE: path.join(tmp, "app.env") };
      },
    });
  // healthchecks/healthchecks at 29b5ec25, hc/settings.py's DATABASES (lines 207 to 251), cut down.
  const HC = [
    "import os",
    "def envsecret(s, default):",
    "    return os.getenv(s, default)",
    "DATABASES = {",
    '    "default": {',
    '        "ENGINE": "django.db.backends.sqlite3",',
    '        "NAME": os.getenv("DB_NAME", BASE_DIR / "hc.sqlite"),',
    "    }",
    "}",
    'if os.getenv("DB") == "postgres":',
    "    DATABASES = {",
    '        "default": {',
    '            "HOST": os.getenv("DB_HOST", ""),',
    '            "PORT": os.getenv("DB_PORT", ""),',
    '            "NAME": os.getenv("DB_NAME", "hc"),',
    '            "USER": os.getenv("DB_USER", "postgres"),',
    '            "PASSWORD": envsecret("DB_PASSWORD", ""),',
    '            "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", "0"),',
    '            "OPTIONS": {"sslmode": os.getenv("DB_SSLMODE", "prefer")},',
    "        }",
    "    }",
    'if os.getenv("DB") in ["mysql", "mariadb"]:',
    '    DATABASES = {"default": {"HOST": os.getenv("DB_HOST", "")}}',
    "",
  ].join("\n");

  it("names the variables, where the first is read, and the apphost:app.env values for them (healthchecks)", () => {
    assert.equal(
      hintOf({ "hc/settings.py": HC, "hc/wsgi.py": "import os\n" }),
      "the app's code reads its database from DB_NAME, DB, DB_HOST, DB_PORT, DB_USER, DB_PASSWORD (hc/settings.py:7), " +
        "not DATABASE_URL, which apphost sets: set apphost:app.env's DB_NAME to ${database.name}, DB to postgres, " +
        "DB_HOST to ${database.host}, DB_PORT to ${database.port}, DB_USER to ${database.user}, DB_PASSWORD to ${database.password}",
    );
  });

  it("leaves out what the env file sets already; nothing where it sets each", () => {
    const hc = { "hc/settings.py": HC };
    assert.equal(
      hintOf(hc, "DB='postgres'\nDB_HOST='localhost'\nSECRET_KEY='x'\n"),
      "the app's code reads its database from DB_NAME, DB, DB_HOST, DB_PORT, DB_USER, DB_PASSWORD (hc/settings.py:7), " +
        "not DATABASE_URL, which apphost sets: set apphost:app.env's DB_NAME to ${database.name}, " +
        "DB_PORT to ${database.port}, DB_USER to ${database.user}, DB_PASSWORD to ${database.password}",
    );
    const all = ["DB", "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD"]
      .map((n) => `${n}='x'\n`)
      .join("");
    assert.equal(hintOf(hc, all), "");
  });

  it("other spellings: os.environ[...], environ.get, django-environ and decouple, POSTGRES_* and URLs of their own", () => {
    assert.equal(
      hintOf({
        "app/config.py": [
          "from decouple import config",
          'HOST = os.environ["POSTGRES_SERVER"]',
          "PORT = os.environ.get('POSTGRES_PORT', 5432)",
          'USER = config("POSTGRES_USER")',
          'PASSWORD = env.str("POSTGRES_PASSWORD")',
          'NAME = get_env_variable("POSTGRES_DB")',
          'ENGINE = os.getenv("DB_ENGINE", "sqlite")  # compared nowhere: left out',
          'SQLALCHEMY_DATABASE_URI = os.getenv("SQLALCHEMY_DATABASE_URI")',
          'SECRET = os.getenv("SECRET_KEY")',
          "",
        ].join("\n"),
      }),
      "the app's code reads its database from POSTGRES_SERVER, POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD, " +
        "POSTGRES_DB, SQLALCHEMY_DATABASE_URI (app/config.py:2), not DATABASE_URL, which apphost sets: set apphost:app.env's " +
        "POSTGRES_SERVER to ${database.host}, POSTGRES_PORT to ${database.port}, POSTGRES_USER to ${database.user}, " +
        "POSTGRES_PASSWORD to ${database.password}, POSTGRES_DB to ${database.name}, SQLALCHEMY_DATABASE_URI to ${database.url}",
    );
  });

  it("dynaconf's settings, read from DYNACONF_<name> or its envvar_prefix's (esfoobar/quart-postgres-boilerplate)", () => {
    // my_app/db.py and home_app/views.py as the app has them, cut down.
    const files = {
      "my_app/db.py": [
        "import sqlalchemy",
        "from dynaconf import settings",
        "",
        "async def db_connection():",
        "    database_url = f\"postgresql+asyncpg://{settings['DB_USERNAME']}:\"",
        "    database_url += f\"{settings['DB_PASSWORD']}@\"",
        "    database_url += f\"{settings.get('DB_HOST')}:5432/\"",
        "    database_url += f\"{settings['DATABASE_NAME']}\"",
        "",
      ].join("\n"),
      "my_app/home_app/views.py":
        "from dynaconf import settings\nx = settings.DB_HOST + settings.ENV_FOR_DYNACONF\n",
      "settings.toml": '[default]\nDB_USERNAME = "app_user"\n',
    };
    assert.equal(
      hintOf(files),
      "the app's code reads its database from DB_USERNAME, DB_PASSWORD, DB_HOST, DATABASE_NAME (my_app/db.py:5), not " +
        "DATABASE_URL, which apphost sets: set apphost:app.env's DYNACONF_DB_USERNAME to ${database.user}, " +
        "DYNACONF_DB_PASSWORD to ${database.password}, DYNACONF_DB_HOST to ${database.host}, DYNACONF_DATABASE_NAME to " +
        "${database.name}",
    );
    // Those the env file sets already are left out; another envvar_prefix, or none.
    assert.match(
      hintOf(files, 'DYNACONF_DB_USERNAME="x"\nDYNACONF_DB_PASSWORD="y"\n'),
      /: set apphost:app.env's DYNACONF_DB_HOST to \$\{database\.host\}, DYNACONF_DATABASE_NAME to \$\{database\.name\}$/,
    );
    const config = (args: string) => ({
      ...files,
      "my_app/config.py": `from dynaconf import Dynaconf\nsettings = Dynaconf(${args})\n`,
    });
    assert.match(hintOf(config('envvar_prefix="COUNTER"')), /set apphost:app.env's COUNTER_DB_USERNAME to/);
    assert.match(hintOf(config("envvar_prefix=False")), /set apphost:app.env's DB_USERNAME to/);
    // Without dynaconf, a settings object's attributes are not read as variables.
    assert.equal(hintOf({ "db.py": "from django.conf import settings\nx = settings.DB_HOST\n" }), "");
  });

  it("JavaScript's destructuring of process.env, renamed or defaulted, on one line", () => {
    assert.equal(
      hintOf({
        "src/db.js": [
          'const { Pool } = require("pg");',
          "const { DB_HOST, DB_USER: user, DB_PASSWORD, DB_PORT = 5432, NODE_ENV, ...rest } = process.env;",
          "function name() { const { PGDATABASE } = process.env; return PGDATABASE; }",
          "const { API_KEY } = process.env.CONFIG ? JSON.parse(process.env.CONFIG) : {};",
          "",
        ].join("\n"),
      }),
      "the app's code reads its database from DB_HOST, DB_USER, DB_PASSWORD, DB_PORT, PGDATABASE (src/db.js:2), " +
        "not DATABASE_URL, which apphost sets: set apphost:app.env's DB_HOST to ${database.host}, DB_USER to ${database.user}, " +
        "DB_PASSWORD to ${database.password}, DB_PORT to ${database.port}, PGDATABASE to ${database.name}",
    );
    assert.equal(hintOf({ "src/db.js": "const { DATABASE_URL, DB_HOST } = process.env;\n" }), "");
  });

  it('JavaScript and TypeScript: process.env.NAME and process.env["NAME"], a knex client compared to pg', () => {
    const knexfile = [
      "module.exports = {",
      '  client: process.env.DB_CLIENT === "pg" ? "pg" : "sqlite3",',
      "  connection: {",
      "    host: process.env.DB_HOST,",
      '    port: Number(process.env["DB_PORT"] || 5432),',
      "    user: process.env.DB_USER, password: process.env.DB_PASSWORD,",
      "    database: process.env.DB_NAME,",
      "  },",
      "};",
      "",
    ].join("\n");
    assert.equal(
      hintOf({
        "knexfile.js": knexfile,
        "src/db.spec.ts": "process.env.TEST_DB_HOST;\n",
        "node_modules/pg/lib/defaults.js": "host: process.env.PGHOST,\n",
      }),
      "the app's code reads its database from DB_CLIENT, DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME (knexfile.js:2), " +
        "not DATABASE_URL, which apphost sets: set apphost:app.env's DB_CLIENT to pg, DB_HOST to ${database.host}, " +
        "DB_PORT to ${database.port}, DB_USER to ${database.user}, DB_PASSWORD to ${database.password}, DB_NAME to ${database.name}",
    );
    // A spec reads its own variables; node_modules is another's code. One that reads DATABASE_URL too says nothing.
    assert.equal(
      hintOf({ "knexfile.js": knexfile, "src/db.ts": "export const url = process.env.DATABASE_URL;\n" }),
      "",
    );
  });

  it("nothing where the app reads DATABASE_URL, reads no database variable, or only its tests do", () => {
    assert.equal(
      hintOf({ "hc/settings.py": HC + 'DATABASES = dj_database_url.parse(os.environ["DATABASE_URL"])\n' }),
      "",
    );
    assert.equal(hintOf({ "app.py": 'DEBUG = os.getenv("DEBUG")\n' }), "");
    // dj-database-url's config() and django-environ's env.db() read DATABASE_URL without naming it.
    assert.equal(
      hintOf({
        "hc/settings.py": HC + 'DATABASES = {"default": dj_database_url.config(conn_max_age=600)}\n',
      }),
      "",
    );
    assert.equal(hintOf({ "hc/settings.py": HC + 'DATABASES = {"default": env.db()}\n' }), "");
    assert.equal(hintOf({ "tests/settings.py": HC, "conftest.py": HC, "app/test_db.py": HC }), "");
    assert.equal(hintOf({}), "");
  });
});

describe("release script: alembic_url_hint, a migration that went to the URL its alembic.ini names", () => {
  const fn = ["ini_value", "alembic_script_dir", "alembic_url_hint"].map(releaseFunction).join("");
  const unreachable = releaseDefinition(/^DB_UNREACHABLE=.*$/m);
  // testdrivenio/fastapi-sqlmodel-alembic's project/ (b9f7864): its alembic.ini names the Docker Compose service, and
  // its env.py is alembic's async template, which reads that URL alone.
  const INI =
    "[alembic]\nscript_location = migrations\nsqlalchemy.url = postgresql+asyncpg://postgres:postgres@db:5432/foo\n";
  const TEMPLATE_ENV = 'config = context.config\nurl = config.get_main_option("sqlalchemy.url")\n';
  const GAIERROR =
    "    for res in _socket.getaddrinfo(host, port, family, type, proto, flags):\nsocket.gaierror: [Errno -2] Name or service not known\n";

  /** The hint for a release with these files (relative to it) and this migration log, alembic run in `dir`. */
  const hintOf = (files: Record<string, string>, log: string, ini = "alembic.ini", dir = ".") =>
    runInRelease([unreachable, fn, 'alembic_url_hint "$1" "$2"'], files, {
      args: [ini, dir],
      env: (tmp) => {
        fs.writeFileSync(path.join(tmp, "migrate.log"), log);
        return {
          MIGRATE_LOG: path.join(tmp, "migrate.log"),
          RUNUSER: "/usr/bin/env", // `env -u <user> -- <command>`: runs it as this user
          APP_USER: "nobody-here",
        };
      },
    });

  it("names the ini's URL without its password and the line for env.py; nothing where env.py reads the environment", () => {
    const hint = (ini: string, env: string) =>
      `the migration connects to the URL ${ini} sets in sqlalchemy.url, postgresql+asyncpg://postgres:***@db:5432/foo, ` +
      `as ${env} reads no other: apphost gives the app the stack's database in DATABASE_URL; in ${env}, before it ` +
      'connects: config.set_main_option("sqlalchemy.url", os.environ["DATABASE_URL"])';
    const app = { "alembic.ini": INI, "migrations/env.py": TEMPLATE_ENV };
    assert.equal(hintOf(app, GAIERROR), hint("alembic.ini", "migrations/env.py"));
    // A long log after the error line (a read that stops at the first match must not fail the check).
    assert.equal(
      hintOf(app, GAIERROR + "INFO more output\n".repeat(20000)),
      hint("alembic.ini", "migrations/env.py"),
    );
    // In a subdirectory, with %(here)s and with a relative script_location.
    const here = {
      "project/alembic.ini": INI.replace("= migrations", "= %(here)s/alembic"),
      "project/alembic/env.py": TEMPLATE_ENV,
    };
    assert.equal(
      hintOf(here, GAIERROR, "project/alembic.ini", "project"),
      hint("project/alembic.ini", "project/alembic/env.py"),
    );
    const relative = { "project/alembic.ini": INI, "project/migrations/env.py": TEMPLATE_ENV };
    assert.equal(
      hintOf(
        relative,
        'asyncpg.exceptions.InvalidPasswordError: password authentication failed for user "postgres"\n',
        "project/alembic.ini",
        "project",
      ),
      hint("project/alembic.ini", "project/migrations/env.py"),
    );
    // Nothing: env.py reads the environment or the app's settings; the ini's URL is interpolated or absent; the
    // migration failed for another reason.
    const none = [
      hintOf(
        {
          ...app,
          "migrations/env.py": `import os\nconfig.set_main_option("sqlalchemy.url", os.environ["DATABASE_URL"])\n`,
        },
        GAIERROR,
      ),
      hintOf(
        {
          ...app,
          "migrations/env.py": "from app.core.config import settings\nurl = settings.database_url\n",
        },
        GAIERROR,
      ),
      hintOf(
        { ...app, "alembic.ini": INI.replace(/sqlalchemy\.url = .*/, "sqlalchemy.url = %(DB_URL)s") },
        GAIERROR,
      ),
      hintOf({ ...app, "alembic.ini": "[alembic]\nscript_location = migrations\n" }, GAIERROR),
      hintOf(app, 'sqlalchemy.exc.ProgrammingError: relation "song" already exists\n'),
      hintOf({ "alembic.ini": INI }, GAIERROR),
    ];
    assert.deepEqual(none, ["", "", "", "", "", ""]);
  });
});

describe("release script: alembic_revisions_check, an alembic migration with no revision to run", () => {
  const fns = ["ini_value", "alembic_script_dir", "alembic_revisions_check", "revisions_check"].map(
    releaseFunction,
  );
  // igorbenav/FastAPI-boilerplate (61d84fa): src/alembic.ini, `cd src && alembic upgrade head`, and
  // src/migrations/versions/ with a README alone.
  const INI = "[alembic]\nscript_location = migrations\nprepend_sys_path = .\n";
  const WARNING =
    "install: warning: src/migrations/versions has no alembic revision, so the migration creates no table, and the " +
    'app\'s first query fails: `alembic revision --autogenerate -m "initial tables"`, run where the app reaches a ' +
    "database (an empty one, or one as the stack's is), writes the first from its models; add it to the app\n";
  const check = (files: Record<string, string>, ini = "src/alembic.ini", dir = "src") =>
    runInRelease(['note() { printf "%s\\n" "$*"; }', ...fns, 'alembic_revisions_check "$1" "$2"'], files, {
      args: [ini, dir],
      env: () => ({ RUNUSER: "/usr/bin/env", APP_USER: "nobody-here" }),
    });

  it("warns where versions/ has no revision, as the ini locates it; nothing once it has one, or where the ini says otherwise", () => {
    const app = {
      "src/alembic.ini": INI,
      "src/migrations/env.py": "",
      "src/migrations/versions/README.MD": "",
    };
    assert.equal(check(app), WARNING);
    assert.equal(check({ ...app, "src/migrations/versions/__init__.py": "" }), WARNING);
    // %(here)s: the ini's directory, whatever directory alembic runs in.
    assert.equal(
      check(
        { ...app, "src/alembic.ini": INI.replace("= migrations", "= %(here)s/migrations") },
        "src/alembic.ini",
        ".",
      ),
      WARNING,
    );
    const none = [
      check({ ...app, "src/migrations/versions/2026_12_07_0200-a1b2c3_initial.py": "" }),
      check({ ...app, "src/migrations/versions/2026/a1b2c3_initial.py": "" }),
      check({ ...app, "src/alembic.ini": `${INI}version_locations = %(here)s/revisions\n` }),
      check({ ...app, "src/alembic.ini": INI.replace("= migrations", "= /opt/migrations") }),
      check({ "src/alembic.ini": INI, "src/migrations/env.py": "" }),
      check({}),
    ];
    assert.deepEqual(none, ["", "", "", "", "", ""]);
  });

  it("Flask-Migrate's migrations/ (its alembic.ini has no script_location): the same warning, with its own command", () => {
    const flask = (files: Record<string, string>) =>
      runInRelease(['note() { printf "%s\\n" "$*"; }', ...fns, 'revisions_check "$1" "$2"'], files, {
        args: ["migrations", 'flask db migrate -m "initial tables"'],
        env: () => ({ RUNUSER: "/usr/bin/env", APP_USER: "nobody-here" }),
      });
    const app = {
      "migrations/alembic.ini": "[alembic]\n",
      "migrations/env.py": "",
      "migrations/versions/": "",
    };
    assert.equal(
      flask(app),
      WARNING.replace("src/migrations", "migrations").replace(
        'alembic revision --autogenerate -m "initial tables"',
        'flask db migrate -m "initial tables"',
      ),
    );
    assert.equal(flask({ ...app, "migrations/versions/3f2a_users.py": "" }), "");
  });
});
describe("release script: settings_assignment, where the release's Python files first assign a setting", () => {
  const fn = releaseFunction("settings_assignment");
  const at = (files: Record<string, string>) =>
    runInRelease(["RUNUSER=/usr/bin/env APP_USER=nobody-here", fn, "settings_assignment STATIC_ROOT"], files);

  it("the first file in name order, its first such line by number; nothing when none assigns it", () => {
    const lines = (n: number, last: string) => `${"x = 1\n".repeat(n - 1)}${last}\n`;
    assert.equal(
      at({
        // Line 9 before line 10 of the same file (a sort of `file:line:text` as text would put 10 first).
        "config/settings.py": `${lines(9, "STATIC_ROOT = 'a'")}STATIC_ROOT = 'b'\n`,
        "config/z.py": "STATIC_ROOT = 'c'\n",
        "tests/x.py": "  STATIC_ROOT = 'd'\n",
      }),
      "config/settings.py:9",
    );
    assert.equal(at({ "app.py": "# STATIC_ROOT = 'x'\nSTATIC_ROOTS = 1\n" }), "");
  });
});
