/**
 * An npm workspace (components/release/node.ts): the members a package-lock.json
 * links, what the config check says of links the release cannot carry, the
 * members' manifests in the requirements hash, and the lock read from the app.
 * The hard-linked copy itself runs in release.script.test (release_node_modules).
 */
import * as assert from "assert/strict";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { readAppFiles } from "../../components/config/appfiles";
import { ConfigError, parseStackConfig } from "../../components/config/validate";
import { requirementsHash } from "../../components/release/artifact";
import {
  appYarnBerry,
  DEBIAN_SEMVER,
  isYarnBerry,
  nodeSettings,
  npmInstallTool,
  detectNodeDeps,
  memberDirs,
  nodeEnginesWarning,
  npmWorkspaces,
  pinnedBuildTool,
  YARN_VERSION,
  type NodeDeps,
  type NodeFacts,
} from "../../components/release/node";
import { spawnSync } from "child_process";
import { baseCtx, baseRaw, withKeys } from "./fixtures";

/** A lockfileVersion 3 lock with these `packages` entries besides the root's. */
function lock(packages: Record<string, unknown>): string {
  return JSON.stringify({
    name: "conduit",
    lockfileVersion: 3,
    packages: { "": { name: "conduit" }, ...packages },
  });
}

// TonyMckes/conduit-realworld-example-app's shape: two members, and registry packages.
const CONDUIT = lock({
  backend: { version: "1.0.0", dependencies: { express: "^4.18.2" } },
  frontend: { version: "0.1.0", devDependencies: { vite: "^4.2.1" } },
  "node_modules/frontend": { resolved: "frontend", link: true },
  "node_modules/backend": { resolved: "backend", link: true },
  "node_modules/express": {
    version: "4.18.2",
    resolved: "https://registry.npmjs.org/express/-/express-4.18.2.tgz",
  },
  "backend/node_modules/qs": { version: "6.11.0" },
});

describe("npm workspaces (components/release/node.ts)", () => {
  it("reads the members from the lock's links, sorted by name", () => {
    assert.deepEqual(npmWorkspaces(CONDUIT), {
      members: [
        { name: "backend", member: "backend" },
        { name: "frontend", member: "frontend" },
      ],
      problems: [],
    });
    const scoped = lock({
      "node_modules/@acme/shared": { resolved: "packages/shared/", link: true },
      "node_modules/@acme/web": { resolved: "packages/web", link: true },
    });
    assert.deepEqual(npmWorkspaces(scoped).members, [
      { name: "@acme/shared", member: "packages/shared" },
      { name: "@acme/web", member: "packages/web" },
    ]);
  });

  it("no members without a lock, with a version 1 lock (before workspaces) or an unreadable one (npm ci says so)", () => {
    const none = { members: [], problems: [] };
    assert.deepEqual(npmWorkspaces(undefined), none);
    assert.deepEqual(npmWorkspaces(JSON.stringify({ lockfileVersion: 1, dependencies: { a: {} } })), none);
    assert.deepEqual(npmWorkspaces("{ not json"), none);
    assert.deepEqual(npmWorkspaces(lock({ "node_modules/express": { version: "4.18.2" } })), none);
  });

  it("a link outside the app, or a name or path unfit for a shell command, is a problem; each is named", () => {
    const r = npmWorkspaces(
      lock({
        "node_modules/lib": { resolved: "../lib", link: true },
        "node_modules/abs": { resolved: "/opt/abs", link: true },
        "node_modules/web": { resolved: "web app", link: true },
        "node_modules/api": { resolved: "api", link: true },
      }),
    );
    assert.deepEqual(r.members, [{ name: "api", member: "api" }]);
    assert.deepEqual(r.problems, [
      'package-lock.json links "lib" to ../lib, outside the app directory: a release carries only the app directory; ' +
        "move it into the app as a workspace member, or point apphost:app.source at the directory that holds both",
      'package-lock.json links "abs" to /opt/abs, outside the app directory: a release carries only the app directory; ' +
        "move it into the app as a workspace member, or point apphost:app.source at the directory that holds both",
      'package-lock.json links "web" to "web app": expected an npm package name and a directory inside the release, ' +
        "like frontend/dist; rename the member",
    ]);
  });

  it("memberDirs: every directory down to each member, parents first, each once", () => {
    assert.deepEqual(
      memberDirs([
        { name: "b", member: "packages/b" },
        { name: "api", member: "api" },
        { name: "a", member: "packages/a" },
      ]),
      ["api", "packages", "packages/a", "packages/b"],
    );
  });

  it("nodeEnginesWarning: engines.node the host's node does not satisfy is a warning, under bash with this machine's node", () => {
    assert.match(nodeEnginesWarning()[0], new RegExp(`require\\(${JSON.stringify(DEBIAN_SEMVER)}\\)`));
    // The advice is release.sh's, which defines it before any phase runs.
    const NEWER_NODE = /^NEWER_NODE=.*$/m.exec(
      fs.readFileSync(path.join(__dirname, "..", "..", "components", "release", "release.sh"), "utf8"),
    )?.[0];
    assert.ok(NEWER_NODE, "release.sh has no NEWER_NODE");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-engines-"));
    try {
      // Debian's node-semver is not on this machine: the same module from node_modules stands in for it.
      const lines = nodeEnginesWarning(require.resolve("semver"));
      const warn = (engines: unknown, semver = lines) => {
        fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "x", engines }));
        const script = [
          'note() { printf "apphost: %s\\n" "$1"; }',
          NEWER_NODE,
          `NEW_DIR=${dir}`,
          ...semver,
        ].join("\n");
        const r = spawnSync("bash", ["-c", `set -euo pipefail\n${script}`], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
      };
      assert.equal(
        warn({ node: ">=99.0.0" }),
        `apphost: warning: package.json's engines.node is ">=99.0.0" and this release runs Node ${process.version}, the host's nodejs: ` +
          "the app may fail where it needs a newer Node; apphost runs the host's nodejs package (Node 18 on Debian 12, Node 20 on Debian 13), so relax engines.node " +
          "if the app runs on it, set apphost:host.os to debian-13 on an ec2 stack, or, on an existing host, add NodeSource's apt repository for a newer nodejs before deploying\n",
      );
      // Satisfied, absent, not a range, or no semver module on the host: nothing said, and the phase goes on.
      assert.equal(warn({ node: `^${process.versions.node.split(".")[0]}.0.0 || >=99` }), "");
      assert.equal(warn(undefined), "");
      assert.equal(warn({ npm: ">=99" }), "");
      assert.equal(warn({ node: "latest please" }), "");
      assert.equal(warn({ node: ">=99.0.0" }, nodeEnginesWarning(path.join(dir, "no-semver"))), "");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("with the config and the app directory", () => {
    let dir: string;
    beforeEach(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-npm-ws-"));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    const nodeApp = (npmLock: string) =>
      parseStackConfig(withKeys(baseRaw(), { "app.runtime": "node", "app.requirements": undefined }), {
        ...baseCtx(),
        appFiles: {
          dir: "../conduit",
          python: {},
          packageJson: "app",
          node: { locks: { "package-lock.json": npmLock } },
        },
      });

    it("the parsed app carries the members; links outside it are refused at apphost:app.source, every one", () => {
      assert.deepEqual(nodeApp(CONDUIT).app.npmWorkspaces, npmWorkspaces(CONDUIT).members);
      const outside = lock({
        "node_modules/lib": { resolved: "../lib", link: true },
        "node_modules/util": { resolved: "../../util", link: true },
      });
      assert.throws(
        () => nodeApp(outside),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.deepEqual(
            e.issues.map((i) => [i.path, i.message]),
            npmWorkspaces(outside).problems.map((p) => ["apphost:app.source", `../conduit: ${p}`]),
          );
          assert.equal(e.issues.length, 2);
          return true;
        },
      );
    });

    it("readAppFiles reads the locks: those apphost knows, and apphost:app.requirements's", () => {
      fs.writeFileSync(path.join(dir, "package.json"), '{"dependencies": {"express": "4"}}');
      fs.writeFileSync(path.join(dir, "package-lock.json"), CONDUIT);
      fs.writeFileSync(path.join(dir, "other.json"), "{}");
      assert.deepEqual(readAppFiles({ source: dir }, "/")?.node, { locks: { "package-lock.json": CONDUIT } });
      assert.deepEqual(readAppFiles({ source: dir, requirements: "other.json" }, "/")?.node?.locks, {
        "package-lock.json": CONDUIT,
        "other.json": "{}",
      });
      assert.deepEqual(
        Object.keys(readAppFiles({ source: dir, requirements: "../x.json" }, "/")?.node?.locks ?? {}),
        ["package-lock.json"],
      );
    });

    /** The requirements hash of a Node app locked by CONDUIT, under `label`, as requirementsHash computes it. */
    const conduitHash = (label: string) =>
      createHash("sha256")
        .update(`apphost-requirements-v1\0node\0${label}\0`)
        .update(CONDUIT)
        .digest("hex")
        .slice(0, 16);

    it("the npm tree's hash is new since devDependencies are installed: a tree made without them is not reused", () => {
      fs.writeFileSync(path.join(dir, "package-lock.json"), CONDUIT);
      // The label and content the hash had before --include=dev, computed as requirementsHash did.
      const before = conduitHash("package-lock.json");
      const now = requirementsHash(dir, { runtime: "node", requirements: "package-lock.json" });
      assert.match(now, /^[0-9a-f]{16}$/);
      assert.notEqual(now, before);
    });

    it("an npm that packageManager pins has a tree of its own; the host's npm keeps the hash it had", () => {
      fs.writeFileSync(path.join(dir, "package-lock.json"), CONDUIT);
      // The host's npm: the label since --include=dev, unchanged by the pin's support (no tree installs again).
      const host = conduitHash("npm-include-dev:package-lock.json");
      const plain = { runtime: "node" as const, requirements: "package-lock.json" };
      assert.equal(requirementsHash(dir, plain), host);
      const pinned = (version: string) =>
        requirementsHash(dir, { ...plain, nodeDeps: { manager: "npm", lock: "package-lock.json", version } });
      assert.equal(pinned(""), host);
      assert.notEqual(pinned("11.21.3"), host);
      assert.notEqual(pinned("11.21.3"), pinned("10.9.9"));
    });

    it("the requirements hash follows each member's package.json; an app without members hashes as without them", () => {
      fs.writeFileSync(path.join(dir, "package-lock.json"), CONDUIT);
      const plain = { runtime: "node" as const, requirements: "package-lock.json" };
      const before = requirementsHash(dir, plain);
      assert.equal(requirementsHash(dir, { ...plain, npmWorkspaces: [] }), before);
      const app = { ...plain, npmWorkspaces: npmWorkspaces(CONDUIT).members };
      const missing = requirementsHash(dir, app);
      assert.notEqual(missing, before);
      fs.mkdirSync(path.join(dir, "backend"));
      fs.writeFileSync(path.join(dir, "backend", "package.json"), '{"dependencies": {"express": "4"}}');
      const one = requirementsHash(dir, app);
      assert.notEqual(one, missing);
      fs.writeFileSync(path.join(dir, "backend", "index.js"), "code\n");
      assert.equal(requirementsHash(dir, app), one, "a member's code is not its manifest");
      fs.writeFileSync(path.join(dir, "backend", "package.json"), '{"dependencies": {"express": "5"}}');
      assert.notEqual(requirementsHash(dir, app), one);
    });
  });

  describe("Yarn and pnpm locks (detectNodeDeps)", () => {
    const YARN_V1 =
      "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\nms@2.1.3:\n";
    const BERRY = '__metadata:\n  version: 8\n  cacheKey: 10c0\n\n"ms@npm:2.1.3":\n';
    const PNPM = (v: string) => `lockfileVersion: '${v}'\n\nsettings:\n  autoInstallPeers: true\n`;
    const detect = (facts: NodeFacts, requirements?: string) => detectNodeDeps(facts, requirements, "shop");

    it("Yarn 2 and later with nodeLinker: node-modules: the version from packageManager, yarnPath, or the lock", () => {
      const berry = (facts: Partial<NodeFacts>) =>
        detect({ locks: { "yarn.lock": BERRY }, yarnLinker: "node-modules", ...facts });
      // HedgeDoc 1.10.8: packageManager, yarnPath, and a patch the lock names.
      const files = [".yarn/patches/passport-npm-0.7.0-df02531736.patch", ".yarn/releases/yarn-4.13.0.cjs"];
      assert.deepEqual(
        berry({
          packageManager: "yarn@4.13.0",
          yarnPath: ".yarn/releases/yarn-4.13.0.cjs",
          yarnFiles: { present: files, missing: [] },
        }),
        { deps: { manager: "yarn", lock: "yarn.lock", version: "4.13.0", yarnFiles: files } },
      );
      assert.deepEqual(berry({ yarnPath: ".yarn/releases/yarn-3.6.4.cjs" }), {
        deps: { manager: "yarn", lock: "yarn.lock", version: "3.6.4" },
      });
      assert.deepEqual(berry({}), { deps: { manager: "yarn", lock: "yarn.lock", version: "4.13.0" } });
      assert.deepEqual(
        detect({
          locks: { "yarn.lock": BERRY.replace("version: 8", "version: 6") },
          yarnLinker: "node-modules",
        }),
        { deps: { manager: "yarn", lock: "yarn.lock", version: "3.8.7" } },
      );
      for (const [deps, berryish] of [
        [{ manager: "yarn", version: "4.13.0" }, true],
        [{ manager: "yarn", version: "2.4.2" }, true],
        [{ manager: "yarn", version: YARN_VERSION }, false],
        [{ manager: "pnpm", version: "9.15.9" }, false],
        [{ manager: "npm", version: "" }, false],
      ] as const)
        assert.equal(isYarnBerry(deps), berryish, JSON.stringify(deps));
      assert.deepEqual(nodeSettings({ manager: "yarn", version: "4.13.0" }), [".yarnrc.yml"]);
      assert.deepEqual(nodeSettings({ manager: "yarn", version: YARN_VERSION }), [
        ".npmrc",
        ".yarnrc",
        "pnpm-workspace.yaml",
      ]);
      assert.equal(
        npmInstallTool("E=1", "/p", "yarn", "4.13.0"),
        "E=1 npm install --global --prefix /p --no-audit --no-fund @yarnpkg/cli-dist@4.13.0",
      );
      assert.equal(
        npmInstallTool("E=1", "/p", "yarn", YARN_VERSION),
        `E=1 npm install --global --prefix /p --no-audit --no-fund yarn@${YARN_VERSION}`,
      );
    });

    it("the lock decides the manager; packageManager its version, and which lock of several", () => {
      const table: Array<[NodeFacts, string | undefined, NodeDeps]> = [
        [
          { locks: { "package-lock.json": "{}" } },
          undefined,
          { manager: "npm", lock: "package-lock.json", version: "" },
        ],
        [
          { locks: { "npm-shrinkwrap.json": "{}" } },
          undefined,
          { manager: "npm", lock: "npm-shrinkwrap.json", version: "" },
        ],
        [
          { locks: { "yarn.lock": YARN_V1 } },
          undefined,
          { manager: "yarn", lock: "yarn.lock", version: YARN_VERSION },
        ],
        [
          {
            locks: { "yarn.lock": YARN_V1 },
            packageManager:
              "yarn@1.22.19+sha512.ff4579ab459bb25aa7c0ff75b62acebe576f6084b36aa842971cf250a5d8c6cd3bc9420b22ce63c7f93a0857bc6ef29291db39c3e7a23aab5adfd5a4dd6c5d71",
          },
          undefined,
          { manager: "yarn", lock: "yarn.lock", version: "1.22.19" },
        ],
        [
          { locks: { "pnpm-lock.yaml": PNPM("9.0") } },
          undefined,
          { manager: "pnpm", lock: "pnpm-lock.yaml", version: "9.15.9" },
        ],
        [
          { locks: { "pnpm-lock.yaml": PNPM("6.0") } },
          undefined,
          { manager: "pnpm", lock: "pnpm-lock.yaml", version: "8.15.9" },
        ],
        [
          { locks: { "pnpm-lock.yaml": "lockfileVersion: 5.4\n" } },
          undefined,
          { manager: "pnpm", lock: "pnpm-lock.yaml", version: "7.33.7" },
        ],
        [
          { locks: { "pnpm-lock.yaml": PNPM("9.0") }, packageManager: "pnpm@10.12.1" },
          undefined,
          { manager: "pnpm", lock: "pnpm-lock.yaml", version: "10.12.1" },
        ],
        // npm pinned: that release installs (the host's npm 9 misreads many a lock npm 10 and 11 write).
        [
          { locks: { "package-lock.json": "{}" }, packageManager: "npm@11.21.3" },
          undefined,
          { manager: "npm", lock: "package-lock.json", version: "11.21.3" },
        ],
        // Several locks: package-lock.json first, unless packageManager names another's manager or requirements a lock.
        [
          { locks: { "package-lock.json": "{}", "yarn.lock": YARN_V1 } },
          undefined,
          { manager: "npm", lock: "package-lock.json", version: "" },
        ],
        [
          { locks: { "package-lock.json": "{}", "yarn.lock": YARN_V1 }, packageManager: "yarn@1.22.21" },
          undefined,
          { manager: "yarn", lock: "yarn.lock", version: "1.22.21" },
        ],
        [
          { locks: { "package-lock.json": "{}", "yarn.lock": YARN_V1 } },
          "yarn.lock",
          { manager: "yarn", lock: "yarn.lock", version: YARN_VERSION },
        ],
        // packageManager of another manager than the lock's: the lock's manager, at the release that writes it.
        [
          { locks: { "yarn.lock": YARN_V1 }, packageManager: "pnpm@9.1.0" },
          undefined,
          { manager: "yarn", lock: "yarn.lock", version: YARN_VERSION },
        ],
      ];
      for (const [facts, requirements, deps] of table)
        assert.deepEqual(
          detect(facts, requirements),
          { deps },
          JSON.stringify([facts.locks, facts.packageManager, requirements]),
        );
    });

    it("what none can install as its lock says is a problem that says what to do", () => {
      const problem = (facts: NodeFacts, requirements?: string) => {
        const r = detect(facts, requirements);
        assert.ok("problem" in r, JSON.stringify(r));
        return r.problem;
      };
      assert.equal(
        problem({ locks: {} }),
        "shop has no lock file (package-lock.json, npm-shrinkwrap.json, yarn.lock or pnpm-lock.yaml); a release installs exactly the versions a lock names: run npm install (or yarn, or pnpm install) in the app and commit the lock it writes",
      );
      assert.match(
        problem({ locks: { "yarn.lock": YARN_V1 } }, "web/yarn.lock"),
        /^shop\/web\/yarn\.lock does not exist; .*, or point apphost:app\.requirements at the lock the app has$/,
      );
      // Yarn 2 and later: only with nodeLinker: node-modules, which makes the node_modules a release links.
      assert.equal(
        problem({ locks: { "yarn.lock": BERRY } }),
        "shop/yarn.lock is Yarn 2 or later's (Berry) with nodeLinker: pnp (Yarn's default: .yarnrc.yml sets none): " +
          "apphost installs one node_modules per lock, shared by the releases, which Yarn makes only with " +
          "nodeLinker: node-modules; add that line to .yarnrc.yml (yarn.lock stays as it is), or commit a " +
          "package-lock.json (npm install --package-lock-only) and set apphost:app.requirements to package-lock.json",
      );
      assert.match(
        problem({ locks: { "yarn.lock": YARN_V1 }, packageManager: "yarn@4.5.0" }),
        /^shop\/yarn\.lock is Yarn 2 or later's \(Berry\) with nodeLinker: pnp /,
      );
      assert.match(
        problem({ locks: { "yarn.lock": BERRY }, yarnLinker: "pnpm" }),
        /with nodeLinker: pnpm \(\.yarnrc\.yml\): apphost installs one node_modules per lock/,
      );
      // A Yarn 2+ workspace installs as Yarn 1's: its node-modules linker links the members as npm does.
      assert.deepEqual(
        detect({ locks: { "yarn.lock": BERRY }, yarnLinker: "node-modules", workspaces: "package.json" }),
        {
          deps: { manager: "yarn", lock: "yarn.lock", version: "4.13.0" },
        },
      );
      // Every file .yarnrc.yml and the lock name that the app lacks, at once.
      assert.equal(
        problem({
          locks: { "yarn.lock": BERRY },
          yarnLinker: "node-modules",
          yarnPath: ".yarn/releases/yarn-4.13.0.cjs",
          yarnFiles: {
            present: [],
            missing: [".yarn/patches/passport-npm-0.7.0-df02531736.patch", ".yarn/releases/yarn-4.13.0.cjs"],
          },
        }),
        "shop/yarn.lock's install reads .yarn/patches/passport-npm-0.7.0-df02531736.patch, " +
          ".yarn/releases/yarn-4.13.0.cjs, which the app does not have (not committed, or left out by " +
          "apphost:app.excludes): commit each, or take it out of apphost:app.excludes; for .yarnrc.yml's yarnPath, " +
          'removing the line also works: apphost installs the Yarn package.json\'s "packageManager" names',
      );
      assert.equal(
        problem({
          locks: { "yarn.lock": BERRY },
          yarnLinker: "node-modules",
          packageManager: "yarn@1.22.19",
        }),
        "shop/yarn.lock is Yarn 2 or later's (its __metadata) and package.json's \"packageManager\" names yarn@1.22.19, " +
          "which cannot read it: name the Yarn that wrote the lock there",
      );
      assert.equal(
        problem({
          locks: { "yarn.lock": BERRY.replace("version: 8", "version: 5") },
          yarnLinker: "node-modules",
        }),
        'shop/yarn.lock has __metadata version 5, which apphost does not know the Yarn of; set "packageManager" in ' +
          'package.json to the Yarn that wrote it, like "yarn@4.13.0"',
      );
      assert.match(
        problem({ locks: { "pnpm-lock.yaml": PNPM("9.0") }, workspaces: "pnpm-workspace.yaml" }),
        /^shop is a pnpm workspace \(pnpm-workspace\.yaml\): apphost installs a workspace of several packages with npm or Yarn, from the "workspaces" of package\.json; list the packages there, then commit a package-lock\.json \(npm install --package-lock-only\)/,
      );
      // Yarn 1 links package.json's workspaces as npm does.
      assert.deepEqual(detect({ locks: { "yarn.lock": YARN_V1 }, workspaces: "package.json" }), {
        deps: { manager: "yarn", lock: "yarn.lock", version: YARN_VERSION },
      });
      assert.equal(
        problem({ locks: { "pnpm-lock.yaml": "lockfileVersion: '11.0'\n" } }),
        'shop/pnpm-lock.yaml has lockfileVersion 11, which apphost does not know the pnpm of; set "packageManager" in package.json to the pnpm that wrote it, like "pnpm@9.15.9"',
      );
      assert.equal(
        problem({ locks: { "yarn.lock": YARN_V1 }, packageManager: "yarn@latest" }),
        'shop/package.json\'s "packageManager" is "yarn@latest"; expected npm, yarn or pnpm and an exact version, like "pnpm@9.15.9"; fix the field or remove it',
      );
      // An npm workspace installs as before.
      assert.deepEqual(detect({ locks: { "package-lock.json": "{}" }, workspaces: "package.json" }), {
        deps: { manager: "npm", lock: "package-lock.json", version: "" },
      });
    });

    it("pinnedBuildTool: pnpm, Yarn, Bun and npm at any release from packageManager; anything else pins nothing", () => {
      const table: Array<[unknown, Record<string, string>]> = [
        ["pnpm@10.18.0+sha512.e804f889", { pnpm: "10.18.0" }],
        ["yarn@1.22.19", { yarn: "1.22.19" }],
        ["yarn@4.5.0", { yarn: "4.5.0" }],
        ["bun@1.3.5", { bun: "1.3.5" }],
        ["bun@1.3", {}],
        ["bun@latest", {}],
        ["npm@10.9.0", { npm: "10.9.0" }],
        ["npm@11", {}],
        ["pnpm@latest", {}],
        [undefined, {}],
        [42, {}],
      ];
      assert.deepEqual(
        table.map(([pm]) => pinnedBuildTool(pm)),
        table.map(([, want]) => want),
      );
    });

    describe("from the app directory", () => {
      let dir: string;
      beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-pm-"));
        fs.writeFileSync(
          path.join(dir, "package.json"),
          '{"dependencies": {"ms": "2.1.3"}, "packageManager": "yarn@1.22.19"}',
        );
      });
      afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
      const raw = () =>
        withKeys(baseRaw(), { "app.runtime": undefined, "app.requirements": undefined, "app.source": dir });
      const parse = () =>
        parseStackConfig(raw(), { ...baseCtx(), appFiles: readAppFiles({ source: dir }, "/") });
      /** The config check's messages at `key` for the app directory, with these keys set (<app> for the directory). */
      /** Writes `file` (its directories too) in the app directory. */
      const write = (file: string, text: string) => {
        fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
        fs.writeFileSync(path.join(dir, file), text);
      };
      const problemsAt = (key: string, keys: Record<string, unknown> = {}): string[] => {
        try {
          parseStackConfig(withKeys(raw(), keys), {
            ...baseCtx(),
            appFiles: readAppFiles({ source: dir }, "/"),
          });
        } catch (e) {
          assert.ok(e instanceof ConfigError);
          return e.issues.filter((i) => i.path === key).map((i) => i.message.replace(dir, "<app>"));
        }
        return [];
      };

      it("a Yarn 1 app parses with its lock as apphost:app.requirements; one without a lock is refused at that key", () => {
        assert.throws(parse, (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.deepEqual(
            e.issues.map((i) => i.path),
            ["apphost:app.requirements"],
          );
          assert.match(e.issues[0].message, /has no lock file/);
          return true;
        });
        fs.writeFileSync(path.join(dir, "yarn.lock"), YARN_V1);
        const app = parse().app;
        assert.equal(app.runtime, "node");
        assert.equal(app.requirements, "yarn.lock");
        assert.deepEqual(app.nodeDeps, { manager: "yarn", lock: "yarn.lock", version: "1.22.19" });
      });

      it("Yarn 2+'s facts from the app directory: nodeLinker, yarnPath, plugins and the lock's patches, present or missing", () => {
        fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ packageManager: "yarn@4.13.0" }));
        fs.writeFileSync(
          path.join(dir, ".yarnrc.yml"),
          "compressionLevel: mixed\n\nenableGlobalCache: false\n\nnodeLinker: node-modules\n\n" +
            'plugins:\n  - path: .yarn/plugins/@yarnpkg/plugin-workspace-tools.cjs\n    spec: "@yarnpkg/plugin-workspace-tools"\n' +
            "  - .yarn/plugins/plugin-old.js\n\nyarnPath: .yarn/releases/yarn-4.13.0.cjs\n",
        );
        // HedgeDoc's lock: a patch of its own, and a builtin patch Yarn carries (no file).
        fs.writeFileSync(
          path.join(dir, "yarn.lock"),
          "__metadata:\n  version: 8\n  cacheKey: 10\n\n" +
            '"passport@patch:passport@npm%3A0.7.0#~/.yarn/patches/passport-npm-0.7.0-df02531736.patch":\n' +
            '  version: 0.7.0\n  resolution: "passport@patch:passport@npm%3A0.7.0#~/.yarn/patches/passport-npm-0.7.0-df02531736.patch::version=0.7.0&hash=d8c6f0"\n\n' +
            '"fsevents@patch:fsevents@npm%3A2.3.3#optional!builtin<compat/fsevents>":\n  version: 2.3.3\n' +
            '"left-pad@patch:left-pad@npm%3A1.3.0#./patches/left-pad.patch::locator=shop%40workspace%3A.":\n  version: 1.3.0\n',
        );
        fs.mkdirSync(path.join(dir, ".yarn", "releases"), { recursive: true });
        fs.writeFileSync(path.join(dir, ".yarn", "releases", "yarn-4.13.0.cjs"), "// yarn\n");
        fs.mkdirSync(path.join(dir, "patches"));
        fs.writeFileSync(path.join(dir, "patches", "left-pad.patch"), "diff\n");
        const node = readAppFiles({ source: dir }, "/")?.node;
        assert.equal(node?.yarnLinker, "node-modules");
        assert.equal(node?.yarnPath, ".yarn/releases/yarn-4.13.0.cjs");
        assert.deepEqual(node?.yarnFiles, {
          present: [".yarn/releases/yarn-4.13.0.cjs", "patches/left-pad.patch"],
          missing: [
            ".yarn/patches/passport-npm-0.7.0-df02531736.patch",
            ".yarn/plugins/@yarnpkg/plugin-workspace-tools.cjs",
            ".yarn/plugins/plugin-old.js",
          ],
        });
        fs.writeFileSync(path.join(dir, ".yarnrc.yml"), "enableTelemetry: false\n");
        assert.equal(readAppFiles({ source: dir }, "/")?.node?.yarnLinker, undefined);
        fs.rmSync(path.join(dir, ".yarnrc.yml"));
        assert.equal(readAppFiles({ source: dir }, "/")?.node?.yarnFiles, undefined);
      });

      it("an app whose .npmrc says package-lock=false is told how to write the lock all the same (sequelize/express-example)", () => {
        const lockProblem = () => problemsAt("apphost:app.requirements");
        const without =
          "<app> has no lock file (package-lock.json, npm-shrinkwrap.json, yarn.lock or pnpm-lock.yaml); a release installs exactly the versions a lock names: ";
        assert.deepEqual(lockProblem(), [
          `${without}run npm install (or yarn, or pnpm install) in the app and commit the lock it writes`,
        ]);
        fs.writeFileSync(path.join(dir, ".npmrc"), "save-exact=true\npackage-lock = FALSE\n");
        assert.deepEqual(lockProblem(), [
          `${without}its .npmrc says package-lock=false, so npm install writes none there: run npm install --package-lock-only ` +
            "--package-lock=true in the app (or remove that line) and commit the package-lock.json it writes",
        ]);
        // A lock committed all the same installs.
        fs.writeFileSync(path.join(dir, "package-lock.json"), '{"lockfileVersion": 3}');
        assert.deepEqual(lockProblem(), []);
      });

      it("a Node app locked by Bun alone, or pinning Bun in packageManager, is told to commit a lock npm installs from", () => {
        const lockProblem = () => problemsAt("apphost:app.requirements");
        const npmLock =
          "run npm install --package-lock-only in the app and commit the package-lock.json it writes (npm resolves " +
          "package.json's ranges itself: check the versions it locks against bun.lock's)";
        fs.writeFileSync(path.join(dir, "bun.lock"), '{ "lockfileVersion": 1 }\n');
        assert.deepEqual(lockProblem(), [
          "<app> has no lock file (package-lock.json, npm-shrinkwrap.json, yarn.lock or pnpm-lock.yaml); a release " +
            `installs exactly the versions a lock names: its bun.lock is Bun's, and apphost installs a Node app with npm, Yarn or pnpm: ${npmLock}`,
        ]);
        fs.writeFileSync(path.join(dir, "package-lock.json"), '{"lockfileVersion": 3}');
        fs.writeFileSync(
          path.join(dir, "package.json"),
          JSON.stringify({ dependencies: { ms: "2.1.3" }, packageManager: "bun@1.3.5" }),
        );
        assert.deepEqual(lockProblem(), [
          '<app>/package.json\'s "packageManager" is "bun@1.3.5"; expected npm, yarn or pnpm and an exact version, ' +
            `like "pnpm@9.15.9": apphost installs a Node app with npm, Yarn or pnpm, not Bun; ${npmLock}`,
        ]);
      });

      it("a Node app with no processes and no Procfile is shown its start script as the web command (sequelize/express-example)", () => {
        const missing = (extra: Record<string, unknown> = {}) =>
          problemsAt("apphost:app.processes", { "app.processes": undefined, ...extra });
        fs.writeFileSync(path.join(dir, "yarn.lock"), YARN_V1);
        const pkg = (scripts: Record<string, string>) =>
          fs.writeFileSync(
            path.join(dir, "package.json"),
            JSON.stringify({ dependencies: { ms: "2.1.3" }, scripts }),
          );
        const expected =
          "expected a map of process name to {command, kind}; set it with: pulumi config set --path 'apphost:app.processes.web.command'";
        pkg({ start: "node index.js", "setup-example-db": "node sqlite-example-database/setup.js" });
        assert.deepEqual(missing(), [
          "missing (what runs on the host; <app> has no Procfile to take it from (package.json's start script runs node index.js; " +
            `the web process must listen on $PORT)); ${expected} "node index.js"`,
        ]);
        // A start script that cannot go between double quotes as it is, and none: a Node command all the same.
        pkg({ start: "node -e \"require('./server')\"" });
        assert.deepEqual(missing(), [
          `missing (what runs on the host; <app> has no Procfile to take it from); ${expected} "node server.js"`,
        ]);
        pkg({});
        assert.deepEqual(missing(), [
          `missing (what runs on the host; <app> has no Procfile to take it from); ${expected} "node server.js"`,
        ]);
        // No start script: the file package.json's main names, as require() finds it, unless server.js is there
        // (npm start runs it then). A main the app does not have, or one outside it, is not offered.
        const withMain = (main: string) =>
          fs.writeFileSync(
            path.join(dir, "package.json"),
            JSON.stringify({ main, dependencies: { express: "4.21.2" } }),
          );
        fs.mkdirSync(path.join(dir, "src"));
        fs.writeFileSync(path.join(dir, "src", "app.js"), "require('express')().listen(process.env.PORT);\n");
        for (const main of ["src/app.js", "./src/app", "src/app"]) {
          withMain(main);
          assert.deepEqual(missing(), [
            "missing (what runs on the host; <app> has no Procfile to take it from (package.json has no start script, " +
              `and its main is src/app.js; the web process must listen on $PORT)); ${expected} "node src/app.js"`,
          ]);
        }
        // An absolute main ("/src/app.js" is the app's src/app.js only if read as relative) is none either.
        for (const main of ["src/other.js", "../app.js", "src/app.js; rm -rf /", "/src/app.js"]) {
          withMain(main);
          assert.deepEqual(missing(), [
            `missing (what runs on the host; <app> has no Procfile to take it from); ${expected} "node server.js"`,
          ]);
        }
        withMain("src/app.js");
        fs.writeFileSync(path.join(dir, "server.js"), "");
        assert.deepEqual(missing(), [
          `missing (what runs on the host; <app> has no Procfile to take it from); ${expected} "node server.js"`,
        ]);
        fs.rmSync(path.join(dir, "server.js"));
        // A start script wins over main.
        fs.writeFileSync(
          path.join(dir, "package.json"),
          JSON.stringify({ main: "src/app.js", scripts: { start: "node index.js" } }),
        );
        assert.match(missing()[0], /"node index.js"$/);
        // apphost:app.runtime python over the files: Python's.
        assert.deepEqual(missing({ "app.runtime": "python", "app.requirements": "requirements.txt" }), [
          `missing (what runs on the host; <app> has no Procfile to take it from); ${expected} 'gunicorn app:app --bind 127.0.0.1:$PORT'`,
        ]);
      });

      it("a web process that starts a file only its build script makes is told to set apphost:app.build (brocoders/nestjs-boilerplate)", () => {
        // The app's files as the program reads them: with the stack's processes, if any.
        const buildProblem = (extra: Record<string, unknown> = {}): string[] => {
          const keys: Record<string, unknown> = { "app.processes": undefined, ...extra };
          try {
            parseStackConfig(withKeys(raw(), keys), {
              ...baseCtx(),
              appFiles: readAppFiles(
                { source: dir, processes: keys["app.processes"], excludes: keys["app.excludes"] },
                "/",
              ),
            });
          } catch (e) {
            assert.ok(e instanceof ConfigError, String(e));
            return e.issues
              .filter((i) => i.path === "apphost:app.build")
              .map((i) => i.message.replace(dir, "<app>"));
          }
          return [];
        };
        write("package-lock.json", '{"lockfileVersion": 3}');
        write("Procfile", "web: npm run start:prod\nrelease: npm run migration:run\n");
        const scripts = { build: "nest build", "start:prod": "node dist/main", start: "nest start" };
        write("package.json", JSON.stringify({ dependencies: { "@nestjs/core": "11.1.18" }, scripts }));
        const told =
          "the web process (the Procfile's web line) runs node dist/main (package.json's \"start:prod\" script), which " +
          '<app> does not have: package.json\'s "build" script makes it (nest build); Heroku runs that script by ' +
          "itself, apphost only as apphost:app.build: set it with: pulumi config set --path 'apphost:app.build' " +
          "'npm run build'";
        assert.deepEqual(buildProblem(), [told]);
        // With the build, or a dist/main.js the app directory has (built before the deploy): nothing to say.
        assert.deepEqual(buildProblem({ "app.build": "npm run build" }), []);
        write("dist/main.js", "// built\n");
        assert.deepEqual(buildProblem(), []);
        // ... unless apphost:app.excludes leaves it out of the upload (as .gitignore does dist/).
        const excluded = told.replace(
          "<app> does not have",
          "apphost:app.excludes leaves out of the upload (<app> has it)",
        );
        assert.deepEqual(buildProblem({ "app.excludes": [".git", "node_modules", "dist/"] }), [excluded]);
        assert.deepEqual(buildProblem({ "app.excludes": ["/dist/main.js"] }), [excluded]);
        assert.deepEqual(buildProblem({ "app.excludes": ["dist/*.map"] }), []);
        write("dist/main", "#!/usr/bin/env node\n");
        assert.deepEqual(buildProblem({ "app.excludes": ["/dist/main.js"] }), []);
        fs.rmSync(path.join(dir, "dist"), { recursive: true });
        // apphost:app.processes' web, Heroku's heroku-postbuild first, Yarn's script, a `cd`.
        write(
          "package.json",
          JSON.stringify({
            dependencies: { ms: "2.1.3" },
            scripts: { ...scripts, "heroku-postbuild": "tsc" },
          }),
        );
        assert.deepEqual(buildProblem({ "app.processes": { web: "yarn start:prod" } }), [
          'the web process (apphost:app.processes.web) runs node dist/main (package.json\'s "start:prod" script), which ' +
            '<app> does not have: package.json\'s "heroku-postbuild" script makes it (tsc); Heroku runs that script by ' +
            "itself, apphost only as apphost:app.build: set it with: pulumi config set --path 'apphost:app.build' " +
            "'npm run heroku-postbuild'",
        ]);
        assert.match(
          buildProblem({ "app.processes": { web: "cd api && node build/server.js" } })[0],
          /runs node api\/build\/server\.js, which/,
        );
        // A script the app has, a command apphost cannot follow, or no build script: nothing.
        write("src/server.js", "");
        for (const web of [
          "node src/server.js",
          "node -r ts-node/register src/x.ts",
          "nest start",
          "npm run start:prod -- --x",
        ])
          assert.deepEqual(buildProblem({ "app.processes": { web } }), [], web);
        write(
          "package.json",
          JSON.stringify({ dependencies: { ms: "2.1.3" }, scripts: { "start:prod": "node dist/main" } }),
        );
        assert.deepEqual(buildProblem(), []);
        // Variables before the command or the file, with cross-env too: what runs after them.
        write(
          "package.json",
          JSON.stringify({
            dependencies: { ms: "2.1.3" },
            scripts: { "start:prod": "cross-env NODE_ENV=production node dist/main", build: "tsc" },
          }),
        );
        for (const web of ["NODE_ENV=production npm run start:prod", "env PORT=3000 npm run start:prod"])
          assert.match(
            buildProblem({ "app.processes": { web } })[0] ?? "",
            /runs node dist\/main \(package\.json's "start:prod" script\), which <app> does not have/,
            web,
          );
        assert.match(
          buildProblem({
            "app.processes": { web: "NODE_OPTIONS='--max-old-space-size=512' node dist/main" },
          })[0] ?? "",
          /runs node dist\/main, which <app> does not have/,
        );
        // `npm start`, as Heroku runs a Node app without a Procfile: its start script.
        write(
          "package.json",
          JSON.stringify({
            dependencies: { ms: "2.1.3" },
            scripts: { start: "node dist/main", build: "tsc" },
          }),
        );
        assert.match(
          buildProblem({ "app.processes": { web: "npm start" } })[0] ?? "",
          /runs node dist\/main \(package\.json's "start" script\), which <app> does not have: package\.json's "build" script makes it \(tsc\)/,
        );
        // No web command yet, and no Procfile: the start script the parser offers, in the same run
        // (w3cj/hono-open-api-starter).
        fs.rmSync(path.join(dir, "Procfile"));
        write(
          "package.json",
          JSON.stringify({
            dependencies: { hono: "4.8.12" },
            scripts: { start: "node ./dist/src/index.js", build: "tsc && tsc-alias" },
          }),
        );
        assert.deepEqual(buildProblem(), [
          "package.json's start script, the web command offered for apphost:app.processes, runs node " +
            'dist/src/index.js, which <app> does not have: package.json\'s "build" script makes it (tsc && tsc-alias); ' +
            "Heroku runs that script by itself, apphost only as apphost:app.build: set it with: pulumi config set " +
            "--path 'apphost:app.build' 'npm run build'",
        ]);
        write("dist/src/index.js", "");
        assert.deepEqual(buildProblem(), []);
      });

      it("a Python app with no processes and no Procfile is shown its Django project's WSGI module (shynet: shynet/manage.py)", () => {
        const missing = () =>
          problemsAt("apphost:app.processes", {
            "app.processes": undefined,
            "app.runtime": "python",
            "app.requirements": "requirements.txt",
          });
        const expected =
          "expected a map of process name to {command, kind}; set it with: pulumi config set --path 'apphost:app.processes.web.command'";
        const manage = (settings: string) =>
          `import os, sys\n\nif __name__ == "__main__":\n    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "${settings}")\n`;
        // A directory whose name cannot follow `cd` as it is: not offered.
        write("my site/manage.py", manage("site.settings"));
        write("my site/site/wsgi.py", "");
        // Its manage.py one directory down, and no wsgi.py yet: Python's example.
        write("shynet/manage.py", manage("shynet.settings"));
        write("shynet/shynet/settings.py", "");
        assert.deepEqual(missing(), [
          `missing (what runs on the host; <app> has no Procfile to take it from); ${expected} 'gunicorn app:app --bind 127.0.0.1:$PORT'`,
        ]);
        write("shynet/shynet/wsgi.py", "");
        assert.deepEqual(missing(), [
          "missing (what runs on the host; <app> has no Procfile to take it from (shynet/manage.py's settings have " +
            `shynet.wsgi beside them, the WSGI application gunicorn serves)); ${expected} 'cd shynet && gunicorn shynet.wsgi --bind 127.0.0.1:$PORT'`,
        ]);
        // cookiecutter-django's layout: manage.py at the top, settings in a package below config/, wsgi.py in config/.
        fs.rmSync(path.join(dir, "shynet"), { recursive: true });
        write("manage.py", manage("config.settings.local"));
        write("config/settings/local.py", "");
        write("config/wsgi.py", "");
        assert.deepEqual(missing(), [
          "missing (what runs on the host; <app> has no Procfile to take it from (manage.py's settings have config.wsgi " +
            `beside them, the WSGI application gunicorn serves)); ${expected} 'gunicorn config.wsgi --bind 127.0.0.1:$PORT'`,
        ]);
      });

      it("a Python app with no processes and no Procfile is shown its Flask application, the framework from the requirements its requirements.txt includes (cookiecutter-flask)", () => {
        write("requirements.txt", "# Everything needed in production\n-r requirements/prod.txt\n");
        write("requirements/prod.txt", "-r base.txt\ngunicorn>=19.9.0\n");
        write("requirements/base.txt", "Flask==3.1.1\nFlask-SQLAlchemy==3.1.1\n");
        write(
          "autoapp.py",
          '"""Create an application instance."""\nfrom my_flask_app.app import create_app\n\napp = create_app()\n',
        );
        write("my_flask_app/__init__.py", "");
        const missing = problemsAt("apphost:app.processes", {
          "app.processes": undefined,
          "app.runtime": "python",
          "app.requirements": "requirements.txt",
        });
        assert.deepEqual(missing, [
          "missing (what runs on the host; <app> has no Procfile to take it from (autoapp.py makes app, the Flask application " +
            "gunicorn serves)); expected a map of process name to {command, kind}; " +
            "set it with: pulumi config set --path 'apphost:app.processes.web.command' 'gunicorn autoapp:app --bind 127.0.0.1:$PORT'",
        ]);
      });

      it("a FastAPI app whose uvicorn only a dependency group lists is told so with its example (minimal-fastapi-postgres-template)", () => {
        write(
          "pyproject.toml",
          '[project]\nname = "app"\nversion = "0.1.0"\ndependencies = ["fastapi>=0.128.0"]\n\n' +
            '[dependency-groups]\ndev = ["pytest>=9.0.2", "uvicorn[standard]>=0.40.0"]\n\n[tool.uv]\npackage = false\n',
        );
        write("uv.lock", 'version = 1\nrevision = 3\nrequires-python = ">=3.11"\n');
        write("app/__init__.py", "");
        write("app/main.py", "from fastapi import FastAPI\n\napp = FastAPI(title='x')\n");
        const missing = (groups?: string[]) =>
          problemsAt("apphost:app.processes", {
            "app.processes": undefined,
            "app.runtime": "python",
            "app.dependencyGroups": groups,
          });
        const example = "'uvicorn app.main:app --host 127.0.0.1 --port $PORT'";
        assert.deepEqual(missing(), [
          "missing (what runs on the host; <app> has no Procfile to take it from (app/main.py makes app, the FastAPI application " +
            'uvicorn serves; pyproject.toml lists uvicorn only in "dev", which the install leaves out: add it to the main ' +
            'dependencies, or "dev" to apphost:app.dependencyGroups)); expected a map of process name to {command, kind}; ' +
            `set it with: pulumi config set --path 'apphost:app.processes.web.command' ${example}`,
        ]);
        assert.deepEqual(missing(["dev"]), [
          "missing (what runs on the host; <app> has no Procfile to take it from (app/main.py makes app, the FastAPI application " +
            "uvicorn serves)); expected a map of process name to {command, kind}; " +
            `set it with: pulumi config set --path 'apphost:app.processes.web.command' ${example}`,
        ]);
        // fastapi[standard] in the main dependencies brings uvicorn: no hint.
        write(
          "pyproject.toml",
          '[project]\nname = "app"\nversion = "0.1.0"\ndependencies = ["fastapi[standard]>=0.128.0"]\n\n' +
            '[dependency-groups]\ndev = ["uvicorn>=0.40.0"]\n\n[tool.uv]\npackage = false\n',
        );
        assert.deepEqual(missing(), [
          "missing (what runs on the host; <app> has no Procfile to take it from (app/main.py makes app, the FastAPI application " +
            "uvicorn serves)); expected a map of process name to {command, kind}; " +
            `set it with: pulumi config set --path 'apphost:app.processes.web.command' ${example}`,
        ]);
      });

      it("a Flask app whose dependencies do not name gunicorn is told to add it, with its factory's example (the Flask tutorial's flaskr)", () => {
        write(
          "pyproject.toml",
          '[project]\nname = "flaskr"\nversion = "1.0.0"\ndependencies = [\n    "flask",\n]\n',
        );
        write(
          "flaskr/__init__.py",
          "import os\n\nfrom flask import Flask\n\n\ndef create_app(test_config=None):\n    pass\n",
        );
        assert.deepEqual(
          problemsAt("apphost:app.processes", {
            "app.processes": undefined,
            "app.runtime": "python",
            "app.requirements": undefined,
          }),
          [
            "missing (what runs on the host; <app> has no Procfile to take it from (flaskr/__init__.py's create_app() makes the Flask " +
              "application gunicorn serves; the app's dependencies do not name gunicorn: add it to them, or to apphost:app.extraRequirements (a server the app's own image installs))); expected a map of process " +
              "name to {command, kind}; set it with: pulumi config set --path 'apphost:app.processes.web.command' " +
              `'gunicorn "flaskr:create_app()" --bind 127.0.0.1:$PORT'`,
          ],
        );
      });

      it("a Python app's build runs the pnpm its top-level package.json pins", () => {
        fs.writeFileSync(path.join(dir, "requirements.txt"), "flask\n");
        fs.writeFileSync(
          path.join(dir, "package.json"),
          '{"devDependencies": {"vite": "5"}, "packageManager": "pnpm@10.15.1"}',
        );
        const raw = withKeys(baseRaw(), {
          "app.runtime": "python",
          "app.requirements": undefined,
          "app.source": dir,
          "app.build": "pnpm install --frozen-lockfile && pnpm run build",
        });
        const app = parseStackConfig(raw, { ...baseCtx(), appFiles: readAppFiles({ source: dir }, "/") }).app;
        assert.deepEqual(app.buildToolVersions, { pnpm: "10.15.1" });
        assert.equal(app.nodeDeps, undefined);
        assert.equal(appYarnBerry(app), false);
      });

      it("a Python app's build runs the Bun its top-level package.json pins; its bun.lock alone is no Node app's lock", () => {
        fs.writeFileSync(path.join(dir, "requirements.txt"), "flask\n");
        fs.writeFileSync(path.join(dir, "bun.lock"), '{ "lockfileVersion": 1 }\n');
        fs.writeFileSync(
          path.join(dir, "package.json"),
          '{"workspaces": ["frontend"], "packageManager": "bun@1.3.5"}',
        );
        const raw = withKeys(baseRaw(), {
          "app.runtime": undefined,
          "app.requirements": undefined,
          "app.source": dir,
          "app.build": "bun install --frozen-lockfile && cd frontend && bun run build",
        });
        const app = parseStackConfig(raw, { ...baseCtx(), appFiles: readAppFiles({ source: dir }, "/") }).app;
        assert.equal(app.runtime, "python");
        assert.deepEqual(app.buildToolVersions, { bun: "1.3.5" });
        assert.equal(app.nodeDeps, undefined);
      });

      it("a Python app's build in its frontend's directory runs the Yarn 2+ that package.json pins, without Yarn 1's settings", () => {
        fs.writeFileSync(path.join(dir, "requirements.txt"), "flask\n");
        fs.mkdirSync(path.join(dir, "frontend"));
        fs.writeFileSync(
          path.join(dir, "frontend", "package.json"),
          '{"devDependencies": {"vite": "5"}, "packageManager": "yarn@4.13.0"}',
        );
        const parse = (build: string) =>
          parseStackConfig(
            withKeys(baseRaw(), {
              "app.runtime": "python",
              "app.requirements": undefined,
              "app.source": dir,
              "app.build": build,
            }),
            { ...baseCtx(), appFiles: readAppFiles({ source: dir, build }, "/") },
          ).app;
        const app = parse("cd frontend && yarn install --immutable && yarn build");
        assert.deepEqual(app.buildToolVersions, { yarn: "4.13.0" });
        assert.equal(appYarnBerry(app), true);
        // A build that starts at the root reads the root's package.json (this one pins Yarn 1.22.19).
        const root = parse("yarn --cwd frontend build");
        assert.deepEqual(root.buildToolVersions, { yarn: "1.22.19" });
        assert.equal(appYarnBerry(root), false);
      });

      it("a Yarn 1 workspace: package.json's workspaces expanded (* within a name) into members, links outside refused", () => {
        write("package.json", '{"private": true, "workspaces": ["api", "packages/*", "../lib", "apps/**"]}');
        write("yarn.lock", YARN_V1);
        write("api/package.json", '{"name": "api"}');
        write("packages/greeting/package.json", '{"name": "@shop/greeting"}');
        write("packages/util/package.json", '{"name": "util"}');
        write("packages/notes/README.md", "no package.json: not a member\n");
        write("../lib/package.json", '{"name": "lib"}');
        const node = readAppFiles({ source: dir }, "/")?.node;
        assert.deepEqual(node?.members, [
          { name: "api", member: "api" },
          { name: "@shop/greeting", member: "packages/greeting" },
          { name: "util", member: "packages/util" },
          { name: "lib", member: "../lib" },
        ]);
        assert.deepEqual(node?.memberProblems, [
          'package.json\'s workspaces has "apps/**": apphost expands directory names with * in them (packages/*), not ** or !; list the member directories',
        ]);
        const raw = withKeys(baseRaw(), {
          "app.runtime": undefined,
          "app.requirements": undefined,
          "app.source": dir,
        });
        assert.throws(
          () => parseStackConfig(raw, { ...baseCtx(), appFiles: readAppFiles({ source: dir }, "/") }),
          (e: unknown) => {
            assert.ok(e instanceof ConfigError);
            assert.deepEqual(
              e.issues.map((i) => [i.path, i.message.replace(dir, "<app>")]),
              [
                ["apphost:app.source", `<app>: ${node?.memberProblems?.[0]}`],
                [
                  "apphost:app.source",
                  '<app>: package.json\'s workspaces link "lib" to ../lib, outside the app directory: a release carries only the app directory; move it into the app as a workspace member, or point apphost:app.source at the directory that holds both',
                ],
              ],
            );
            return true;
          },
        );
        write("package.json", '{"private": true, "workspaces": {"packages": ["api", "packages/*"]}}');
        const app = parseStackConfig(raw, { ...baseCtx(), appFiles: readAppFiles({ source: dir }, "/") }).app;
        assert.deepEqual(app.nodeDeps, { manager: "yarn", lock: "yarn.lock", version: YARN_VERSION });
        assert.deepEqual(app.npmWorkspaces, [
          { name: "@shop/greeting", member: "packages/greeting" },
          { name: "api", member: "api" },
          { name: "util", member: "packages/util" },
        ]);
      });

      it("pnpm-workspace.yaml is a workspace when it lists packages; pnpm 10's settings alone are not", () => {
        fs.writeFileSync(path.join(dir, "pnpm-lock.yaml"), PNPM("9.0"));
        fs.writeFileSync(
          path.join(dir, "pnpm-workspace.yaml"),
          "onlyBuiltDependencies:\n  - better-sqlite3\n",
        );
        assert.equal(readAppFiles({ source: dir }, "/")?.node?.workspaces, undefined);
        fs.writeFileSync(path.join(dir, "pnpm-workspace.yaml"), "packages:\n  - 'packages/*'\n");
        assert.equal(readAppFiles({ source: dir }, "/")?.node?.workspaces, "pnpm-workspace.yaml");
      });

      it("the tree's hash: npm's as before without an .npmrc; Yarn's and pnpm's follow the release; all follow the settings beside the lock", () => {
        fs.writeFileSync(path.join(dir, "package-lock.json"), "{}");
        fs.writeFileSync(path.join(dir, "yarn.lock"), YARN_V1);
        const npm = requirementsHash(dir, { runtime: "node", requirements: "package-lock.json" });
        const npmBefore = createHash("sha256")
          .update("apphost-requirements-v1\0node\0npm-include-dev:package-lock.json\0")
          .update("{}")
          .digest("hex")
          .slice(0, 16);
        assert.equal(npm, npmBefore);
        const yarn = (version: string) =>
          requirementsHash(dir, {
            runtime: "node",
            requirements: "yarn.lock",
            nodeDeps: { manager: "yarn", lock: "yarn.lock", version },
          });
        const one = yarn("1.22.19");
        assert.notEqual(yarn("1.22.22"), one);
        fs.writeFileSync(path.join(dir, ".npmrc"), "registry=https://npm.example.com/\n");
        assert.notEqual(yarn("1.22.19"), one);
        // npm reads the .npmrc too (legacy-peer-deps=true): an app with one gets a tree of its own.
        assert.notEqual(
          requirementsHash(dir, { runtime: "node", requirements: "package-lock.json" }),
          npmBefore,
        );
        // Yarn 2 and later read .yarnrc.yml (not .npmrc) and the files it and the lock name: a changed patch, a new tree.
        const patch = ".yarn/patches/passport.patch";
        fs.mkdirSync(path.join(dir, ".yarn", "patches"), { recursive: true });
        fs.writeFileSync(path.join(dir, patch), "one\n");
        const berry = () =>
          requirementsHash(dir, {
            runtime: "node",
            requirements: "yarn.lock",
            nodeDeps: { manager: "yarn", lock: "yarn.lock", version: "4.13.0", yarnFiles: [patch] },
          });
        const first = berry();
        fs.rmSync(path.join(dir, ".npmrc"));
        assert.equal(berry(), first);
        fs.writeFileSync(path.join(dir, patch), "two\n");
        const second = berry();
        assert.notEqual(second, first);
        fs.writeFileSync(path.join(dir, ".yarnrc.yml"), "nodeLinker: node-modules\n");
        assert.notEqual(berry(), second);
      });
    });
  });
});
