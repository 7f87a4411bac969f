/**
 * `npm run render`: the stack files rendered by the real program under mocks.
 * The mocks are process-global and test/unit/mocks.ts owns them in this
 * process, so every render runs as its own child process (scripts/render.ts),
 * with no credentials in its environment and an empty HOME (no sandbox key).
 * The files must equal what the pure renderers make of the stack's config.
 */
import * as assert from "assert/strict";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { inspectPrivateKey, parseStackConfig } from "../../components/config/validate";
import type { StackConfig } from "../../components/config/types";
import { hostLayout, upstreamUnitName } from "../../components/paths";
import { releaseScriptPath, renderReleaseScript } from "../../components/release/script";
import { renderCaddyfile, renderCaddySite } from "../../components/render/caddy";
import { renderEnvFile } from "../../components/render/env";
import { NGINX_HTTP_CONF_PATH, renderNginxHttpConf, renderNginxSite } from "../../components/render/nginx";
import { renderProcessUnits, renderUpstreamUnit } from "../../components/render/systemd";
import { DEPLOY_KEY } from "./fixtures";
import {
  parseRenderArgs,
  RenderError,
  runtimeConfig,
  throwawayDeployKey,
  unwrapBashC,
} from "../../scripts/lib/render-stack";

const ROOT = path.join(__dirname, "..", "..");
const SCRIPT = path.join(ROOT, "scripts", "render.ts");
const RUNS = path.join(ROOT, "test", "unit", "render-runs.ts");
/** The unit specs' own loader of .ts files (SWC), for the child too */
const REGISTER = path.join(ROOT, "test", "register.js");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  out: string;
}

let tmp: string;

/** A child's environment: an empty HOME (no sandbox key), no credentials, no apphost or Pulumi settings. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { HOME: path.join(tmp, "home"), TMPDIR: tmp };
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(HOME|TMPDIR|AWS_|CLOUDFLARE_|PULUMI_|APPHOST_)/.test(k)) env[k] = v;
  }
  return env;
}

function child(script: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...process.execArgv, "-r", REGISTER, script, ...args],
      { cwd: ROOT, env: childEnv(), timeout: 120000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `scripts/render.ts <args> --out <tmp>/<name>`: the command itself, in a child process without credentials. */
async function render(name: string, args: string[]): Promise<Run> {
  const out = path.join(tmp, name);
  return { ...(await child(SCRIPT, [...args, "--out", out])), out };
}

/**
 * The same for several command lines, one after another in one child (test/unit/render-runs.ts:
 * runRender, the command without its process), as the command runs each: a child per render
 * would load the program's modules again each time, most of a render's CPU.
 */
async function renderInOneProcess(
  lines: Array<[name: string, args: string[]]>,
): Promise<Record<string, Run>> {
  const argv = lines.map(([name, args]) => [...args, "--out", path.join(tmp, name)]);
  const r = await child(RUNS, [JSON.stringify(argv)]);
  assert.equal(r.code, 0, `render-runs exited ${r.code}\n${r.stderr}`);
  const results = JSON.parse(r.stdout) as Array<Omit<Run, "out">>;
  assert.equal(results.length, lines.length);
  return Object.fromEntries(lines.map(([name], i) => [name, { ...results[i], out: path.join(tmp, name) }]));
}

function read(run: Run, hostPath: string): string {
  return fs.readFileSync(path.join(run.out, hostPath), "utf8");
}

function modeOf(run: Run, hostPath: string): string {
  return (fs.statSync(path.join(run.out, hostPath)).mode & 0o7777).toString(8).padStart(4, "0");
}

/** Every file under `dir`, relative, sorted. */
function listFiles(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .sort();
}

/** A stack file's `config:` map. */
function stackFile(file: string): Record<string, unknown> {
  return (yaml.load(fs.readFileSync(file, "utf8")) as { config: Record<string, unknown> }).config;
}

/** The stack's typed config, parsed from its file the way the program parses it (secrets as facts). */
function configOf(stack: string, file = path.join(ROOT, `Pulumi.${stack}.yaml`)): StackConfig {
  const raw: Record<string, unknown> = {};
  let secretEnvTypes: Record<string, string> | undefined;
  for (const [key, value] of Object.entries(stackFile(file))) {
    const [ns, name] = key.split(":");
    if (ns !== "apphost" || name === "sshPrivateKey" || name === "sshPrivateKeyFile") continue;
    if (name === "secretEnv") {
      secretEnvTypes = Object.fromEntries(Object.keys(value as object).map((k) => [k, "string"]));
    } else {
      raw[name] = value;
    }
  }
  return parseStackConfig(raw, {
    project: "apphost",
    stack,
    secrets: { sshPrivateKey: true, ...(secretEnvTypes ? { secretEnvTypes } : {}) },
  });
}

/** Every `secure:` ciphertext in a stack file. */
function ciphertexts(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(ciphertexts);
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (typeof o.secure === "string") return [o.secure];
    return Object.values(o).flatMap(ciphertexts);
  }
  return [];
}

function siteInput(config: StackConfig) {
  return {
    hostnames: config.dns.hostnames.map((h) => h.name),
    tls: config.tls,
    proxy: config.proxy,
    app: config.app,
  };
}

describe("npm run render (scripts/render.ts, and its runs in one child process)", function () {
  this.timeout(180000);
  const runs: Record<string, Run> = {};

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-render-test-"));
    fs.mkdirSync(path.join(tmp, "home"));
    const staging = stackFile(path.join(ROOT, "Pulumi.staging.yaml"));
    const write = (name: string, proxy: unknown) => {
      const file = path.join(tmp, name);
      fs.writeFileSync(file, yaml.dump({ config: { ...staging, "apphost:proxy": proxy } }));
      return file;
    };
    const nginx = write("nginx.yaml", { kind: "nginx" });
    const traefik = write("traefik.yaml", { kind: "traefik" });
    fs.mkdirSync(path.join(tmp, "full"));
    fs.writeFileSync(path.join(tmp, "full", "keep"), "");
    // The command itself once; the rest in one process, staging again after prod (the same files).
    runs.staging = await render("staging", ["--stack", "staging"]);
    Object.assign(
      runs,
      await renderInOneProcess([
        ["prod", ["--stack", "prod"]],
        ["staging-after-prod", ["--stack", "staging"]],
        ["local", ["--stack", "local"]],
        ["nginx", ["--stack", "staging", "--config-file", nginx]],
        ["traefik", ["--stack", "staging", "--config-file", traefik]],
        ["unknown", ["--stack", "nosuch"]],
        ["full", ["--stack", "local"]],
      ]),
    );
  });

  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const ok = (run: Run) => assert.equal(run.code, 0, `exit ${run.code}\n${run.stderr}`);

  describe("--stack prod", () => {
    const config = () => configOf("prod");
    const layout = () => hostLayout("sample", "prod");

    it("writes every host file, one line each with mode and owner, then a summary", () => {
      const run = runs.prod;
      ok(run);
      const expected: Array<[string, string]> = [
        ["etc/apphost/sample-prod.env", "0640 root:sample-prod"],
        ["etc/caddy/Caddyfile", "0644 root:root"],
        ["etc/caddy/apphost/sample-prod.caddy", "0644 root:root"],
        ["etc/logrotate.d/apphost-sample-prod", "0644 root:root"],
        ["etc/needrestart/conf.d/apphost-sample-prod.conf", "0644 root:root"],
        ["etc/systemd/system/apphost-sample-prod-backup.service", "0644 root:root"],
        ["etc/systemd/system/apphost-sample-prod-backup.timer", "0644 root:root"],
        ["etc/systemd/system/apphost-sample-prod-heartbeat.service", "0644 root:root"],
        ["etc/systemd/system/apphost-sample-prod-upstream.service", "0644 root:root"],
        ["etc/systemd/system/apphost-sample-prod-web@.service", "0644 root:root"],
        ["etc/systemd/system/apphost-sample-prod-worker.service", "0644 root:root"],
        ["etc/tmpfiles.d/apphost-sample-prod.conf", "0644 root:root"],
        ["etc/tmpfiles.d/apphost.conf", "0644 root:root"],
        ["srv/sample-prod/bin/apphost-backup", "0750 root:root"],
        ["srv/sample-prod/bin/apphost-release", "0750 root:root"],
        ["srv/sample-prod/maintenance/page.html", "0644 root:root"],
      ];
      const lines = run.stdout.trimEnd().split("\n");
      const hostLines = lines.filter((l) => !l.startsWith("wrote .apphost/"));
      assert.deepEqual(
        hostLines.slice(0, -1),
        expected.map(([p, m]) => `wrote ${p} (${m})`),
      );
      for (const [p, m] of expected) assert.equal(modeOf(run, p), m.slice(0, 4), p);
      assert.deepEqual(
        listFiles(run.out).filter((f) => !f.startsWith(".apphost")),
        expected.map(([p]) => p).sort(),
      );
      assert.match(
        lines[lines.length - 1],
        /^render: prod: 16 host files and \d+ command scripts from Pulumi\.prod\.yaml in .*; placeholders: <generated:secret-key>, <secret:SENTRY_DSN>; owners are not applied; nothing was deployed$/,
      );
    });

    it("the Caddyfile, the site, the units and the release script are exactly what the renderers make", () => {
      const c = config();
      const l = layout();
      assert.equal(read(runs.prod, "etc/caddy/Caddyfile"), renderCaddyfile({ proxy: c.proxy }));
      assert.equal(read(runs.prod, l.caddySite), renderCaddySite(l, siteInput(c)));
      const units = renderProcessUnits(l, { processes: c.app.processes, runtime: c.app.runtime });
      assert.equal(units.length, 3);
      for (const u of units) assert.equal(read(runs.prod, u.path), u.content, u.path);
      assert.equal(
        read(runs.prod, `etc/systemd/system/${upstreamUnitName(l)}`),
        renderUpstreamUnit(l, { script: releaseScriptPath(l) }),
      );
      assert.equal(
        read(runs.prod, releaseScriptPath(l)),
        renderReleaseScript({
          layout: l,
          app: c.app,
          database: c.database,
          releases: c.releases,
          backups: c.backups,
          proxy: c.proxy,
          health: { host: c.dns.hostnames[0].name, proto: "https" },
        }),
      );
    });

    it("the env file has placeholders for the secrets, and no ciphertext or key anywhere", () => {
      const c = config();
      const l = layout();
      const env = read(runs.prod, l.envFile);
      assert.equal(
        env,
        renderEnvFile(l, {
          stack: "prod",
          env: { ...c.app.env, SECRET_KEY: "<generated:secret-key>", SENTRY_DSN: "<secret:SENTRY_DSN>" },
          database: c.database,
        }),
      );
      assert.ok(env.includes('\nSECRET_KEY="<generated:secret-key>"\n'));
      assert.ok(env.includes('\nSENTRY_DSN="<secret:SENTRY_DSN>"\n'));
      const secure = ciphertexts(stackFile(path.join(ROOT, "Pulumi.prod.yaml")));
      assert.equal(secure.length, 2);
      for (const f of listFiles(runs.prod.out)) {
        const text = read(runs.prod, f);
        for (const s of secure) assert.ok(!text.includes(s), `${f} holds a ciphertext`);
        assert.ok(!/secure:|PRIVATE KEY/.test(text), `${f} holds a secret`);
      }
    });

    it("writes the host commands' scripts for review under .apphost/commands, and the resources' URNs", () => {
      const files = listFiles(runs.prod.out).filter((f) => f.startsWith(".apphost"));
      assert.deepEqual(files, [
        ".apphost/commands/app-layout.sh",
        ".apphost/commands/server-baseline.sh",
        ".apphost/resources.txt",
      ]);
      const baseline = read(runs.prod, ".apphost/commands/server-baseline.sh");
      assert.ok(
        baseline.includes("\n#!/bin/bash\n") || baseline.startsWith("#!/bin/bash\n"),
        baseline.slice(0, 200),
      );
      // One proxy per host, on both of its ports (TLS is on: caddy-acme).
      assert.ok(baseline.includes("\nproxy=caddy\n"), "the baseline's one-proxy step");
      assert.ok(
        baseline.includes("ss -Hltnp '( sport = :80 or sport = :443 )'"),
        "both of the proxy's ports",
      );
    });
  });

  it("the URN of every resource is pinned (test/unit/urns/<stack>.txt): a rename needs an alias", () => {
    const problems: string[] = [];
    for (const stack of ["local", "staging", "prod"] as const) {
      const run = runs[stack];
      ok(run);
      const now = fs
        .readFileSync(path.join(run.out, ".apphost", "resources.txt"), "utf8")
        .trimEnd()
        .split("\n");
      const pinned = fs
        .readFileSync(path.join(__dirname, "urns", `${stack}.txt`), "utf8")
        .trimEnd()
        .split("\n");
      const gone = pinned.filter((u) => !now.includes(u));
      const added = now.filter((u) => !pinned.includes(u));
      if (gone.length > 0 || added.length > 0) {
        problems.push(
          `${stack}: ${[...gone.map((u) => `- ${u}`), ...added.map((u) => `+ ${u}`)].join("\n  ")}`,
        );
      }
    }
    assert.equal(
      problems.join("\n"),
      "",
      "The program's resources changed. A resource whose URN changes (renamed, moved to another parent) is " +
        "deleted and created again by the next pulumi up: a host file removed and rewritten, a release deployed " +
        "again. Give a renamed resource `aliases: [{ name: <old name> }]` (or `{ parent }`) so it keeps its " +
        "identity; then copy the new list from `npm run render -- --stack <stack> --out <dir>` " +
        "(<dir>/.apphost/resources.txt) into test/unit/urns/<stack>.txt.",
    );
  });

  it("a render after another in the same process writes and prints what the command alone does", () => {
    const [alone, after] = [runs.staging, runs["staging-after-prod"]];
    ok(alone);
    ok(after);
    assert.equal(after.stdout.replaceAll(after.out, alone.out), alone.stdout);
    assert.equal(after.stderr, alone.stderr);
    const files = listFiles(alone.out);
    assert.deepEqual(listFiles(after.out), files);
    for (const f of files) {
      assert.equal(read(after, f), read(alone, f), f);
      assert.equal(modeOf(after, f), modeOf(alone, f), f);
    }
  });

  it("--stack staging: the Cloudflare origin certificate and key are placeholders", () => {
    const run = runs.staging;
    ok(run);
    const c = configOf("staging");
    const l = hostLayout("sample", "staging");
    assert.equal(c.tls.mode, "cloudflare-origin");
    assert.equal(read(run, "etc/caddy/Caddyfile"), renderCaddyfile({ proxy: c.proxy }));
    assert.equal(read(run, l.caddySite), renderCaddySite(l, siteInput(c)));
    assert.ok(run.stdout.includes("\nwrote etc/apphost/tls/sample-staging.key (0640 root:caddy)\n"));
    assert.equal(modeOf(run, "etc/apphost/tls/sample-staging.key"), "0640");
    assert.equal(
      read(run, "etc/apphost/tls/sample-staging.key"),
      "-----BEGIN PRIVATE KEY-----\n<generated:tls-key>\n-----END PRIVATE KEY-----\n",
    );
    assert.equal(
      read(run, "etc/apphost/tls/sample-staging.crt"),
      "-----BEGIN CERTIFICATE-----\n<issued:tls-certificate>\n-----END CERTIFICATE-----\n",
    );
    assert.ok(!read(run, l.envFile).includes("SENTRY_DSN"));
  });

  it("--stack local: no sandbox key needed (HOME is empty), Caddy's internal CA", () => {
    const run = runs.local;
    ok(run);
    const c = configOf("local");
    const l = hostLayout("sample", "local");
    assert.equal(read(run, "etc/caddy/Caddyfile"), renderCaddyfile({ proxy: c.proxy }));
    // The internal CA is the site's own choice; the shared Caddyfile names no TLS mode.
    assert.match(read(run, l.caddySite), /\n\ttls internal\n/);
    assert.doesNotMatch(read(run, "etc/caddy/Caddyfile"), /local_certs/);
    assert.equal(read(run, l.caddySite), renderCaddySite(l, siteInput(c)));
    assert.ok(read(run, l.envFile).includes('\nSECRET_KEY="<generated:secret-key>"\n'));
    assert.deepEqual(fs.readdirSync(path.join(tmp, "home")), []);
  });

  it("an nginx stack (--config-file): the nginx site and http conf, no Caddyfile", () => {
    const run = runs.nginx;
    ok(run);
    const c = configOf("staging", path.join(tmp, "nginx.yaml"));
    const l = hostLayout("sample", "staging");
    assert.equal(c.proxy.kind, "nginx");
    assert.equal(read(run, l.nginxSite), renderNginxSite(l, siteInput(c)));
    assert.equal(read(run, NGINX_HTTP_CONF_PATH), renderNginxHttpConf());
    assert.ok(!fs.existsSync(path.join(run.out, "etc/caddy")));
    assert.ok(run.stdout.includes("\nwrote etc/apphost/tls/sample-staging.key (0640 root:root)\n"));
    assert.ok(fs.existsSync(path.join(run.out, ".apphost/commands/server-nginx-default-off.sh")));
    assert.match(run.stdout, /from \/.*\/nginx\.yaml in /);
  });

  it("an invalid config exits 1 with apphost's ConfigError, and writes nothing", () => {
    const run = runs.traefik;
    assert.equal(run.code, 1, run.stderr);
    assert.ok(
      run.stderr.includes(
        '\n  1. apphost:proxy.kind: expected one of "caddy", "nginx", got "traefik"; ' +
          "set it with: pulumi config set --path 'apphost:proxy.kind' caddy\n",
      ),
      run.stderr,
    );
    assert.match(run.stderr, /^apphost: 1 problem in the configuration of stack "staging"/);
    assert.equal(run.stdout, "");
    assert.ok(!fs.existsSync(run.out));
  });

  it("an unknown stack exits 2 naming the stack file it looked for", () => {
    const run = runs.unknown;
    assert.equal(run.code, 2);
    // Test stacks (Pulumi.local-*.yaml, git-ignored) may sit beside the committed ones.
    const listed = /^render: no stack file (.*) \(stack files there: (.*)\)\n$/.exec(run.stderr);
    assert.ok(listed, run.stderr);
    assert.equal(listed[1], path.join(ROOT, "Pulumi.nosuch.yaml"));
    for (const stack of ["local", "prod", "staging"])
      assert.ok(listed[2].split(", ").includes(stack), listed[2]);
    assert.ok(!fs.existsSync(run.out));
  });

  it("a non-empty --out without --force exits 2 and leaves it alone", () => {
    const run = runs.full;
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^render: --out .*\/full is not empty; pass --force to write into it/);
    assert.deepEqual(fs.readdirSync(run.out), ["keep"]);
  });
});

describe("render-stack helpers", () => {
  const project = {
    name: "apphost",
    defaults: { "apphost:dns": {}, "apphost:sshPrivateKeyFile": "", "apphost:secretEnv": {} },
  };

  const THROWAWAY = { privateKey: "THROWAWAY", publicKey: "ssh-ed25519 THROWAWAY-PUBLIC" };

  it("runtimeConfig: secure values become placeholders, the deploy key the throwaway", () => {
    let asked = 0;
    const rc = runtimeConfig(
      {
        "aws:region": "eu-central-1",
        "apphost:host": { kind: "ec2", sshPublicKey: "ssh-ed25519 AAAA x", port: 22 },
        "apphost:app": { env: { TOKEN: { secure: "v1:abc:def" } } },
        "apphost:sshPrivateKey": { secure: "v1:key:key" },
        "apphost:secretEnv": { SENTRY_DSN: { secure: "v1:x:y" } },
      },
      project,
      () => {
        asked++;
        return THROWAWAY;
      },
    );
    assert.equal(asked, 1);
    assert.deepEqual(rc.config, {
      "aws:region": "eu-central-1",
      // Not a key line: left for the program to report.
      "apphost:host": '{"kind":"ec2","sshPublicKey":"ssh-ed25519 AAAA x","port":22}',
      "apphost:app": '{"env":{"TOKEN":"<secret:apphost:app.env.TOKEN>"}}',
      "apphost:sshPrivateKey": "THROWAWAY",
      "apphost:secretEnv": '{"SENTRY_DSN":"<secret:SENTRY_DSN>"}',
      "apphost:dns": "{}",
      "apphost:sshPrivateKeyFile": "",
    });
    assert.deepEqual(rc.secretKeys, ["apphost:app", "apphost:secretEnv", "apphost:sshPrivateKey"]);
    assert.deepEqual(rc.placeholders, [
      "<secret:apphost:app.env.TOKEN>",
      "<secret:apphost:sshPrivateKey>",
      "<secret:SENTRY_DSN>",
    ]);
  });

  it("runtimeConfig: a valid apphost:host.sshPublicKey becomes the throwaway's public line", () => {
    const rc = runtimeConfig(
      {
        "apphost:host": { kind: "ec2", sshPublicKey: DEPLOY_KEY.publicKey },
        "apphost:sshPrivateKey": { secure: "v1:key:key" },
      },
      project,
      () => THROWAWAY,
    );
    assert.equal(rc.config["apphost:host"], '{"kind":"ec2","sshPublicKey":"ssh-ed25519 THROWAWAY-PUBLIC"}');
  });

  it("runtimeConfig: a key file is replaced too; no key stays no key", () => {
    const withFile = runtimeConfig({ "apphost:sshPrivateKeyFile": "~/.cache/k" }, project, () => ({
      privateKey: "K",
      publicKey: "P",
    }));
    assert.equal(withFile.config["apphost:sshPrivateKey"], "K");
    assert.equal(withFile.config["apphost:sshPrivateKeyFile"], "");
    const none = runtimeConfig({ "apphost:tls": { mode: "off" } }, project, () =>
      assert.fail("no key asked"),
    );
    assert.equal(none.config["apphost:sshPrivateKey"], undefined);
    assert.deepEqual(none.secretKeys, []);
  });

  it("throwawayDeployKey: an unencrypted OpenSSH key and its public line, a new one each time", () => {
    const key = throwawayDeployKey();
    const own = inspectPrivateKey(key.privateKey);
    assert.equal(own.format, "openssh");
    assert.equal(own.encrypted, false);
    assert.match(own.publicKey ?? "", /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI/);
    assert.equal(key.publicKey, `${own.publicKey} apphost-render-throwaway`);
    assert.notEqual(throwawayDeployKey().privateKey, key.privateKey);
  });

  it("unwrapBashC: the script inside a run-as-root line, other lines as they are", () => {
    const line = `s=; [ "$(id -u)" -eq 0 ] || s='sudo -n'; $s bash -c 'echo '\\''hi'\\'' >&2\nset -e\n'`;
    assert.equal(
      unwrapBashC(line),
      `# run as: s=; [ "$(id -u)" -eq 0 ] || s='sudo -n'; $s bash -c '<this script>'\necho 'hi' >&2\nset -e\n`,
    );
    assert.equal(unwrapBashC("set -e\necho hi\n"), "set -e\necho hi\n");
  });

  it("parseRenderArgs: --stack and --out required, unknown options refused with the usage", () => {
    assert.deepEqual(parseRenderArgs(["-s", "prod", "--out=/tmp/x", "--force"]), {
      stack: "prod",
      out: "/tmp/x",
      force: true,
      help: false,
    });
    assert.deepEqual(parseRenderArgs(["--stack", "prod", "-o", "d", "--config-file", "c.yaml"]), {
      stack: "prod",
      out: "d",
      configFile: "c.yaml",
      force: false,
      help: false,
    });
    assert.throws(
      () => parseRenderArgs([]),
      (e: unknown) =>
        e instanceof RenderError &&
        e.message.startsWith(
          "render: --stack <name> is required (local, staging or prod); --out <dir> is required\nusage: npm run render -- --stack <name> --out <dir>",
        ),
    );
    assert.throws(
      () => parseRenderArgs(["--stack", "prod", "--out", "d", "--bogus"]),
      /Unknown option '--bogus'/,
    );
    assert.throws(
      () => parseRenderArgs(["--stack", "../x", "--out", "d"]),
      /--stack: "..\/x" is not a stack name/,
    );
    assert.equal(parseRenderArgs(["--help"]).help, true);
  });
});
