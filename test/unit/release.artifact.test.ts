import { spawnSync } from "child_process";
import { python3 } from "./python3";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import fc from "fast-check";
import {
  DEFAULT_EXCLUDES,
  buildArtifact,
  contentHashOf,
  compileExcludes,
  requirementsHash,
  walkApp,
} from "../../components/release/artifact";
import { isReleaseId, liveReleaseId, RELEASE_ID_SHAPE } from "../../components/release/id";
import { newReleaseId } from "../../components/remote/release";
import { mkTemp } from "./release-harness";

const app = { runtime: "python" as const, requirements: "requirements.txt", excludes: [...DEFAULT_EXCLUDES] };

function writeTree(root: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
  }
}

const TREE = {
  "app/main.py": "print('hi')\n",
  "app/__init__.py": "",
  "requirements.txt": "fastapi==0.115.6\n",
  "static/index.html": "<h1>hi</h1>\n",
  "migrations/versions/0001.py": "# rev 1\n",
  ".env": "SECRET=1\n",
  ".git/HEAD": "ref: refs/heads/main\n",
  "app/__pycache__/main.cpython-311.pyc": "bytecode",
  "app/util.pyc": "bytecode",
  "venv/bin/python": "#!",
  "node_modules/x/index.js": "",
  "data/app.db": "sqlite",
  "logs/app.log": "log",
  // Packages named like the release's own links, deeper down (healthchecks' hc/logs/): app code, uploaded
  "hc/logs/__init__.py": "",
  "app/data/seed.json": "[]\n",
};

describe("release artifact: excludes", () => {
  const cases: [string[], string, boolean, boolean][] = [
    // patterns, path, isDir, excluded
    [[".git"], ".git", true, true],
    [[".git"], "sub/.git", true, true],
    [["*.pyc"], "a/b/c.pyc", false, true],
    [["*.pyc"], "a/b/c.py", false, false],
    [["data/"], "data", true, true],
    [["data/"], "data", false, false],
    [["data/"], "app/data", true, true],
    [["/data/"], "app/data", true, false],
    [["/data/"], "data", true, true],
    [["static/build/*.map"], "static/build/app.js.map", false, true],
    [["static/build/*.map"], "other/static/build/app.js.map", false, false],
    [["**/*.log"], "a/b/x.log", false, true],
    [["**/*.log"], "x.log", false, true],
    [["docs/**"], "docs/a/b.md", false, true],
    [["file?.txt"], "file1.txt", false, true],
    [["file?.txt"], "file10.txt", false, false],
    [["[ab].txt"], "b.txt", false, true],
    [["[!ab].txt"], "b.txt", false, false],
    [["*.tar.gz"], "x.tar.gz", false, true],
    [["a+b"], "a+b", false, true],
    [["a+b"], "aab", false, false],
    // gitignore's negation: a later `!pattern` keeps what an earlier one left out
    [["*.log", "!keep.log"], "keep.log", false, false],
    [["*.log", "!keep.log"], "x.log", false, true],
    [["*.log", "!keep.log", "keep.log"], "keep.log", false, true],
    [["/static/*", "!/static/dist/"], "static/dist", true, false],
    [["/static/*", "!/static/dist/"], "static/src", true, true],
  ];
  for (const [patterns, p, isDir, want] of cases) {
    it(`${JSON.stringify(patterns)} ${want ? "excludes" : "keeps"} ${p}${isDir ? "/" : ""}`, () => {
      assert.equal(compileExcludes(patterns)(p, isDir), want);
    });
  }

  it("refuses empty patterns and an unclosed [ with the key in the message", () => {
    for (const p of [" ", "/", "!"]) {
      assert.throws(() => compileExcludes(["*.pyc", p]), /^Error: apphost:app.excludes: empty pattern$/);
    }
    assert.throws(
      () => compileExcludes(["data/[abc"]),
      /apphost:app.excludes: unclosed "\[" in "data\/\[abc"/,
    );
    assert.doesNotThrow(() => compileExcludes(["data/[abc]", "\\[literal"]));
  });

  it("a file under an excluded directory stays out, whatever a later ! says (the walk never enters it)", () => {
    const dir = mkTemp("excl");
    try {
      writeTree(dir, { "build/keep.txt": "k", "build/x.txt": "x", "app.py": "" });
      const { entries } = walkApp(dir, ["build/", "!build/keep.txt"]);
      assert.deepEqual(
        entries.map((e) => e.path),
        ["app.py"],
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("release artifact: content hash and tarball", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkTemp("artifact");
    writeTree(path.join(dir, "a"), TREE);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("walks in a fixed order and leaves out the default excludes (data/ and logs/ at the top only)", () => {
    const { entries } = walkApp(path.join(dir, "a"), DEFAULT_EXCLUDES);
    assert.deepEqual(
      entries.map((e) => `${e.type} ${e.path}`),
      [
        "dir app",
        "file app/__init__.py",
        "dir app/data",
        "file app/data/seed.json",
        "file app/main.py",
        "dir hc",
        "dir hc/logs",
        "file hc/logs/__init__.py",
        "dir migrations",
        "dir migrations/versions",
        "file migrations/versions/0001.py",
        "file requirements.txt",
        "dir static",
        "file static/index.html",
      ],
    );
  });

  it("same tree ⇒ same bytes and hash, also from another directory and after touching mtimes", () => {
    writeTree(path.join(dir, "b"), TREE);
    const later = new Date(Date.now() + 3600_000);
    fs.utimesSync(path.join(dir, "b", "app/main.py"), later, later);
    const a = buildArtifact(path.join(dir, "a"), app);
    const b = buildArtifact(path.join(dir, "b"), app);
    assert.equal(a.contentHash, b.contentHash);
    assert.ok(a.tarGz.equals(b.tarGz), "byte-identical tar.gz");
    assert.equal(a.sha256, b.sha256);
    assert.match(a.contentHash, /^[0-9a-f]{64}$/);
  });

  it("a change in an excluded file ⇒ same hash; a content, name or mode change ⇒ new hash", () => {
    const root = path.join(dir, "a");
    const h0 = buildArtifact(root, app).contentHash;
    fs.writeFileSync(path.join(root, "data/app.db"), "changed");
    fs.writeFileSync(path.join(root, ".env"), "SECRET=2\n");
    fs.writeFileSync(path.join(root, "app/__pycache__/main.cpython-311.pyc"), "other");
    assert.equal(buildArtifact(root, app).contentHash, h0);
    fs.writeFileSync(path.join(root, "app/main.py"), "print('ho')\n");
    const h1 = buildArtifact(root, app).contentHash;
    assert.notEqual(h1, h0);
    fs.chmodSync(path.join(root, "app/main.py"), 0o755);
    const h2 = buildArtifact(root, app).contentHash;
    assert.notEqual(h2, h1);
    fs.renameSync(path.join(root, "app/main.py"), path.join(root, "app/main2.py"));
    assert.notEqual(buildArtifact(root, app).contentHash, h2);
  });

  it("a build is part of the release's content: its command and the tools npm installs for it, at their releases", () => {
    const root = path.join(dir, "a");
    const plain = buildArtifact(root, app);
    // Without a build, the files alone: a stack with no build keeps its hash (and release) across this change.
    assert.equal(plain.contentHash, contentHashOf(plain.entries));
    const built = (build: string, buildToolVersions?: Record<string, string>) =>
      buildArtifact(root, { ...app, build, buildToolVersions });
    const vite = built("cd frontend && bun install --frozen-lockfile && bun run build");
    assert.notEqual(vite.contentHash, plain.contentHash);
    assert.ok(vite.tarGz.equals(plain.tarGz), "the same files");
    assert.equal(
      built("cd frontend && bun install --frozen-lockfile && bun run build").contentHash,
      vite.contentHash,
    );
    // The operator's fix to the build (`bun run --bun build`), or another release of the tool it runs: a new release.
    const hashes = [
      vite.contentHash,
      built("cd frontend && bun install --frozen-lockfile && bun run --bun build").contentHash,
      built("cd frontend && bun install --frozen-lockfile && bun run build", { bun: "1.3.5" }).contentHash,
      // A tool the build does not run is no part of it.
      built("cd frontend && bun install --frozen-lockfile && bun run build", { pnpm: "10.15.1" }).contentHash,
    ];
    assert.deepEqual(
      hashes.map((h) => hashes.indexOf(h)),
      [0, 1, 2, 0],
    );
  });

  it("extracts with GNU tar: normalized modes, owner 0, mtime 1980-01-02, symlinks and PAX long paths", () => {
    const root = path.join(dir, "a");
    const long = `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(60)}/${"g".repeat(90)}.txt`;
    writeTree(root, { [long]: "deep\n", "bin/run": "#!/bin/sh\n" });
    fs.chmodSync(path.join(root, "bin/run"), 0o700);
    fs.chmodSync(path.join(root, "app/main.py"), 0o600);
    fs.symlinkSync("app/main.py", path.join(root, "entry.py"));
    const a = buildArtifact(root, app);
    const tgz = path.join(dir, "a.tar.gz");
    fs.writeFileSync(tgz, a.tarGz);
    const list = spawnSync("tar", ["-tzvf", tgz, "--numeric-owner", "--full-time"], {
      env: { ...process.env, TZ: "UTC" },
    }).stdout.toString();
    assert.match(list, /^-rwxr-xr-x 0\/0 +\d+ 1980-01-02 00:00:00 bin\/run$/m);
    assert.match(list, /^-rw-r--r-- 0\/0 +\d+ 1980-01-02 00:00:00 app\/main\.py$/m);
    assert.match(list, /^lrwxrwxrwx 0\/0 +0 1980-01-02 00:00:00 entry\.py -> app\/main\.py$/m);
    assert.doesNotMatch(list, /\.env|\.git|pycache|venv|node_modules| data\/| logs\//);
    assert.match(list, / hc\/logs\/__init__\.py$/m);
    const out = path.join(dir, "out");
    fs.mkdirSync(out);
    const x = spawnSync("tar", ["-xzf", tgz, "-C", out]);
    assert.equal(x.status, 0, x.stderr.toString());
    assert.equal(fs.readFileSync(path.join(out, long), "utf8"), "deep\n");
    assert.equal(fs.readlinkSync(path.join(out, "entry.py")), "app/main.py");
    assert.equal(buildArtifact(out, app).contentHash, a.contentHash, "the extracted tree hashes the same");
    // A wheel's build backend zips the release's files with their mtimes (flit_core): ZIP has no date before 1980,
    // as a local time, here eleven hours behind UTC.
    const zip = spawnSync(
      python3(),
      [
        "-c",
        "import sys, zipfile; zipfile.ZipInfo.from_file(sys.argv[1], 'main.py')",
        path.join(out, "app/main.py"),
      ],
      { encoding: "utf8", env: { ...process.env, TZ: "Pacific/Pago_Pago" } },
    );
    assert.equal(zip.status, 0, zip.stderr);
  });

  it("the requirements hash follows requirements.txt only", () => {
    const root = path.join(dir, "a");
    const r0 = requirementsHash(root, app);
    assert.match(r0, /^[0-9a-f]{16}$/);
    fs.writeFileSync(path.join(root, "app/main.py"), "changed");
    assert.equal(requirementsHash(root, app), r0);
    fs.writeFileSync(path.join(root, "requirements.txt"), "fastapi==0.115.7\n");
    assert.notEqual(requirementsHash(root, app), r0);
    assert.notEqual(requirementsHash(root, { runtime: "node", requirements: "requirements.txt" }), r0);
    fs.rmSync(path.join(root, "requirements.txt"));
    assert.equal(requirementsHash(root, app), requirementsHash(root, app), "a missing file is stable");
  });

  it("the requirements hash follows the files requirements.txt includes (-r, -c), as pip reads them", () => {
    // wagtail/bakerydemo: requirements.txt -> requirements/production.txt -> base.txt (relative to requirements/).
    const root = path.join(dir, "inc");
    writeTree(root, {
      "requirements.txt": "-r requirements/production.txt  # the whole stack\n",
      "requirements/production.txt": "-r base.txt\n--constraint=constraints.txt\nuwsgi>=2.0.17,<2.1\n",
      "requirements/base.txt": "Django>=5.2,<5.3\nwagtail>=7.2,<7.3\n",
      "requirements/constraints.txt": "",
      "requirements/development.txt": "-r base.txt\n",
    });
    const h0 = requirementsHash(root, app);
    fs.appendFileSync(path.join(root, "requirements/base.txt"), "django-treebeard<4.8\n");
    const h1 = requirementsHash(root, app);
    assert.notEqual(h1, h0, "a change two includes down");
    fs.writeFileSync(path.join(root, "requirements/constraints.txt"), "urllib3<3\n");
    const h2 = requirementsHash(root, app);
    assert.notEqual(h2, h1, "a constraints file");
    fs.writeFileSync(path.join(root, "requirements/development.txt"), "pytest\n");
    assert.equal(requirementsHash(root, app), h2, "a file nothing includes");
    // An include loop, a missing file and one outside the app are stable.
    fs.writeFileSync(
      path.join(root, "requirements/base.txt"),
      "-r production.txt\n-r missing.txt\n-r ../../elsewhere.txt\n-rbase.txt\n",
    );
    assert.equal(requirementsHash(root, app), requirementsHash(root, app));
    // A file that includes nothing keeps the hash it always had (no venv is rebuilt by the upgrade).
    const plain = path.join(dir, "plain");
    writeTree(plain, { "requirements.txt": "flask==3.1.0\n" });
    const before = createHash("sha256")
      .update("apphost-requirements-v1\0python\0requirements.txt\0flask==3.1.0\n")
      .digest("hex")
      .slice(0, 16);
    assert.equal(requirementsHash(plain, app), before);
  });

  it("refuses a source that is not a directory", () => {
    assert.throws(() => buildArtifact(path.join(dir, "a", "requirements.txt"), app), /is not a directory/);
  });
});

describe("release ids", () => {
  const hash = "0123456789abcdef".repeat(4);

  it("are YYYYMMDDHHMMSS-<first 8 of the content hash>, in UTC", () => {
    assert.equal(
      newReleaseId(hash, undefined, Date.parse("2025-03-04T05:06:07.890Z")),
      "20250304050607-01234567",
    );
    assert.throws(() => newReleaseId("xyz"), /not a hex content hash/);
  });

  it("have one shape, which bash's =~ reads as isReleaseId does", () => {
    const samples = [
      "20250304050607-01234567",
      "20250304050607-0123456",
      "20250304050607-0123456g",
      "20250304050607-ABCDEF12",
      "2025030405060-01234567",
      "20250304050607-01234567x",
      "x20250304050607-01234567",
      "",
    ];
    const js = samples.map((s) => (isReleaseId(s) ? "1" : "0"));
    assert.deepEqual(js, ["1", "0", "0", "0", "0", "0", "0", "0"]);
    const bash = spawnSync(
      "bash",
      [
        "-c",
        `for s in "$@"; do if [[ "$s" =~ ^${RELEASE_ID_SHAPE}$ ]]; then echo 1; else echo 0; fi; done`,
        "bash",
        ...samples,
      ],
      { encoding: "utf8" },
    );
    assert.equal(bash.status, 0, bash.stderr);
    assert.deepEqual(bash.stdout.trim().split("\n"), js);
  });

  it("a live value names its release id first: liveReleaseId", () => {
    assert.equal(liveReleaseId("20250304050607-01234567"), "20250304050607-01234567");
    assert.equal(
      liveReleaseId("20250304050607-01234567 (apphost-x-worker.service inactive)"),
      "20250304050607-01234567",
    );
    assert.equal(liveReleaseId("none"), undefined);
    assert.equal(liveReleaseId("20250304050607-012345678"), undefined);
  });

  it("sort by time (property)", () => {
    const time = fc.date({
      min: new Date("2000-01-01T00:00:00Z"),
      max: new Date("2999-12-31T23:59:59Z"),
      noInvalidDate: true,
    });
    const hex = fc.hexaString({ minLength: 8, maxLength: 8 }).map((h) => h.toLowerCase());
    fc.assert(
      fc.property(time, time, hex, hex, (t1, t2, h1, h2) => {
        const s1 = Math.floor(t1.getTime() / 1000);
        const s2 = Math.floor(t2.getTime() / 1000);
        fc.pre(s1 !== s2);
        const a = newReleaseId(h1, undefined, t1.getTime());
        const b = newReleaseId(h2, undefined, t2.getTime());
        return a < b === s1 < s2 && isReleaseId(a) && isReleaseId(b);
      }),
      { numRuns: 500 },
    );
  });

  it("a new release's id sorts after the previous one even when the clock went back (newReleaseId, property)", () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date("2020-01-01T00:00:00Z"),
          max: new Date("2030-01-01T00:00:00Z"),
          noInvalidDate: true,
        }),
        fc.integer({ min: -86400_000, max: 86400_000 }),
        (first, skew) => {
          const prev = newReleaseId(hash, undefined, first.getTime());
          const other = "fedcba98".repeat(8);
          const next = newReleaseId(other, prev, first.getTime() + skew);
          return next > prev && next.endsWith("-fedcba98");
        },
      ),
      { numRuns: 300 },
    );
    assert.equal(
      newReleaseId(hash, undefined, Date.parse("2025-01-01T00:00:00.700Z")),
      "20250101000000-01234567",
    );
    // The same second as the previous release: one second later.
    assert.equal(
      newReleaseId(hash, "20250101000000-01234567", Date.parse("2025-01-01T00:00:00Z")),
      "20250101000001-01234567",
    );
  });
});
