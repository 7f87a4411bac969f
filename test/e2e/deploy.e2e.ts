/**
 * The local stack, end to end: the real Pulumi engine deploys the sample app
 * to the sandbox host (Debian 12 under systemd-nspawn), and these specs look
 * at what landed, over SSH and HTTP.
 */
import { strict as assert } from "assert";
import type * as auto from "@pulumi/pulumi/automation";
import * as fs from "fs";
import * as path from "path";
import { DEPLOY_PHASES } from "../../components/release/phases";
import * as yaml from "js-yaml";
import {
  changedCount,
  freshBackend,
  http,
  localStack,
  onHost,
  pulumiCli,
  sandboxReaddress,
  sandboxUp,
  type Sandbox,
  DEFAULT_SANDBOX,
  sandboxesDone,
} from "./lib";
import { runCli } from "./ops-lib";

const HOSTNAME = "sample.local.test";

function readTree(dir: string): string {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => fs.readFileSync(path.join(e.parentPath, e.name), "utf8"))
    .join("\n");
}
const ID = "sample-local";

describe("local stack on the sandbox host (real engine)", function () {
  let sandbox: Sandbox;
  let stack: auto.Stack & { configFile: string };
  let firstUp: auto.UpResult;
  let backend: string;
  const log = (s: string) => process.stdout.write(s);

  before(async function () {
    sandbox = sandboxUp();
    backend = freshBackend();
    stack = await localStack(backend, { sandbox });
  });

  // A sandbox kept to look at goes back to its usual address, where scripts/quickstart's stack finds it.
  after(() => {
    if (!sandboxesDone(DEFAULT_SANDBOX)) sandboxReaddress(2);
  });

  it("a first `pulumi up` creates the host setup, the app and its release", async function () {
    firstUp = await stack.up({ onOutput: log, configFile: stack.configFile });
    assert.equal(firstUp.summary.result, "succeeded");
    assert.ok(
      (firstUp.summary.resourceChanges?.create ?? 0) >= 10,
      JSON.stringify(firstUp.summary.resourceChanges),
    );
    assert.match(String(firstUp.outputs.releaseId.value), /^\d{14}-[0-9a-f]{8}$/);
    // How long each phase took, as a stack output: all eight, in order.
    const phases = firstUp.outputs.releasePhases.value as { phase: string; seconds: number }[];
    assert.deepEqual(
      phases.map((p) => p.phase),
      [...DEPLOY_PHASES],
    );
    assert.ok(
      phases.every((p) => p.seconds >= 0 && p.seconds < 600),
      JSON.stringify(phases),
    );
    log(`\n      phase seconds: ${JSON.stringify(phases)}\n`);
  });

  it("serves the app, its health path and its static files through the proxy over TLS", function () {
    const health = http(sandbox, HOSTNAME, "/healthz", "https");
    assert.equal(health.status, 200, health.body);
    const home = http(sandbox, HOSTNAME, "/", "https");
    assert.equal(home.status, 200, home.body);
    assert.equal(home.headers["x-content-type-options"], "nosniff");
    const page = http(sandbox, HOSTNAME, "/static/index.html", "https");
    assert.equal(page.status, 200);
    assert.match(page.body, /<html/i);
  });

  it("ran the migrations and serves data from the database", function () {
    const items = http(sandbox, HOSTNAME, "/items", "https");
    assert.equal(items.status, 200, items.body);
    assert.ok(Array.isArray(JSON.parse(items.body)), items.body);
    const rev = onHost(`sqlite3 /srv/${ID}/shared/data/app.db 'select version_num from alembic_version'`);
    assert.match(rev.stdout.trim(), /^0002/);
  });

  it("runs the Node process beside the Python app, from the same release, with the host's nodejs", async function () {
    const releaseId = String(firstUp.outputs.releaseId.value);
    const unit = `apphost-${ID}-heartbeat.service`;
    assert.equal(onHost(`systemctl is-active ${unit}`).stdout.trim(), "active");
    assert.match(
      onHost(
        `systemctl show -p ExecMainPID --value ${unit} | xargs -I{} readlink /proc/{}/exe`,
      ).stdout.trim(),
      /\/node(js)?$/,
    );
    const first = JSON.parse(http(sandbox, HOSTNAME, "/heartbeat", "https").body) as Record<string, unknown>;
    assert.equal(first.release, releaseId);
    assert.match(String(first.node), /^v\d+\.\d+\.\d+$/);
    // HEARTBEAT_INTERVAL is 2 s in Pulumi.local.yaml: it keeps beating.
    await new Promise((r) => setTimeout(r, 4500));
    const later = JSON.parse(http(sandbox, HOSTNAME, "/heartbeat", "https").body) as Record<string, number>;
    assert.ok(later.beats > (first.beats as number), `beats ${String(first.beats)} -> ${later.beats}`);
  });

  it("laid out the release, the env file and the units as declared", function () {
    const releaseId = String(firstUp.outputs.releaseId.value);
    assert.equal(onHost(`readlink /srv/${ID}/current`).stdout.trim(), `/srv/${ID}/releases/${releaseId}`);
    assert.equal(onHost(`stat -c '%a %U %G' /etc/apphost/${ID}.env`).stdout.trim(), `640 root ${ID}`);
    assert.match(onHost(`cat /etc/apphost/${ID}.env`).stdout, /^SECRET_KEY=/m);
    const port = onHost(`cat /srv/${ID}/active-port`).stdout.trim();
    assert.equal(onHost(`systemctl is-active apphost-${ID}-web@${port}.service`).stdout.trim(), "active");
    assert.equal(onHost(`systemctl is-active apphost-${ID}-worker.service`).stdout.trim(), "active");
    assert.equal(onHost(`systemctl is-enabled apphost-${ID}-backup.timer`).stdout.trim(), "enabled");
    assert.match(
      onHost(`tail -1 /srv/${ID}/releases.log`).stdout.trim(),
      new RegExp(`^${releaseId}\\t.*\\tdeployed$`),
    );
  });

  it("keeps secrets out of the state's plain text", function () {
    // The files the backend wrote (stack, history, backups), not `stack export`,
    // which decrypts secrets.
    const state = readTree(backend.slice("file://".length));
    const envFile = onHost(`cat /etc/apphost/${ID}.env`).stdout;
    const secretKey = /^SECRET_KEY=(.*)$/m.exec(envFile)![1].replace(/^"|"$/g, "");
    assert.ok(secretKey.length >= 32);
    assert.ok(!state.includes(secretKey), "the generated SECRET_KEY is in the state in plain text");
    assert.ok(!state.includes("PRIVATE KEY"), "a private key is in the state in plain text");
  });

  it("runs host steps as @pulumi/command and SECRET_KEY from @pulumi/random, their outputs secret", async function () {
    const exported = await stack.exportStack();
    type StateResource = {
      urn: string;
      type: string;
      inputs: Record<string, unknown>;
      outputs: Record<string, unknown>;
    };
    const resources = (exported.deployment as { resources: StateResource[] }).resources;
    const commands = resources.filter((r) => r.type === "command:remote:Command");
    assert.deepEqual(commands.map((r) => r.urn.split("::").pop()).sort(), ["app-layout", "server-baseline"]);
    const passwords = resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword");
    assert.equal(passwords.length, 1);
    // The export holds secrets as {"4dabf18193072939515e22adb298388d": ..., ciphertext} envelopes.
    const SECRET_SIG = "4dabf18193072939515e22adb298388d";
    const isSecret = (v: unknown) => typeof v === "object" && v !== null && SECRET_SIG in v;
    for (const c of commands) {
      for (const out of ["stdout", "stderr", "connection"]) {
        const v = out === "connection" ? c.inputs.connection : c.outputs[out];
        if (v !== undefined) assert.ok(isSecret(v), `${c.urn}: ${out} is not secret`);
      }
    }
    assert.ok(isSecret(passwords[0].outputs.result), "the RandomPassword's result is not secret");
  });

  it("a second `pulumi up` changes nothing and runs no remote command", async function () {
    // journalctl's --since has whole seconds: start the window after this test's own commands.
    const since = Number(onHost("date +%s").stdout.trim()) + 1;
    await new Promise((r) => setTimeout(r, 1100));
    const second = await stack.up({ onOutput: log, configFile: stack.configFile });
    assert.equal(
      changedCount(second.summary.resourceChanges),
      0,
      JSON.stringify(second.summary.resourceChanges),
    );
    // Every remote step runs through sudo, which logs it; only this query itself may appear.
    const commands = onHost(
      `journalctl --no-pager -o cat --since @${since} SYSLOG_IDENTIFIER=sudo | grep 'COMMAND=' | grep -v journalctl || true`,
    ).stdout.trim();
    assert.equal(commands, "", `remote commands during the no-op up:\n${commands}`);
  });

  it("a bad configuration: the CLI prints every problem with what to do, no stack trace, and changes nothing", function () {
    const cfg = yaml.load(fs.readFileSync(stack.configFile, "utf8")) as { config: Record<string, unknown> };
    const app = cfg.config["apphost:app"] as Record<string, unknown>;
    cfg.config["apphost:app"] = { ...app, healthPath: "healthz" };
    cfg.config["apphost:proxy"] = { kind: "traefik" };
    const bad = path.join(path.dirname(stack.configFile), "bad", "Pulumi.local.yaml");
    fs.mkdirSync(path.dirname(bad), { recursive: true });
    fs.writeFileSync(bad, yaml.dump(cfg));
    const before = onHost(`readlink /srv/${ID}/current`).stdout.trim();
    const up = pulumiCli(["up", "--yes", "--stack", "local", "--config-file", bad], { backendUrl: backend });
    const text = `${up.stdout}\n${up.stderr}`;
    assert.notEqual(up.code, 0, text);
    assert.match(
      text,
      /apphost: 2 problems in the configuration of stack "local"; no resources were changed/,
    );
    assert.match(text, /apphost:proxy\.kind: expected one of "caddy", "nginx", got "traefik"/);
    assert.match(text, /apphost:app\.healthPath: /);
    assert.doesNotMatch(text, /unhandled exception|ConfigError|at parseStackConfig|PromiseRejection/);
    assert.match(text, /Resources:\n +\d+ unchanged\n/);
    assert.equal(onHost(`readlink /srv/${ID}/current`).stdout.trim(), before);
  });

  it("shows a hand edit of a managed file as drift, and `up --refresh` puts it back", async function () {
    const site = `/etc/caddy/apphost/${ID}.caddy`;
    const declared = onHost(`sha256sum ${site}`).stdout.split(" ")[0];
    onHost(`echo '# edited by hand' >> ${site}`);
    await assert.rejects(
      stack.refresh({
        previewOnly: true,
        expectNoChanges: true,
        onOutput: log,
        configFile: stack.configFile,
      }),
      /no changes were expected/,
    );
    await stack.up({ refresh: true, onOutput: log, configFile: stack.configFile });
    assert.equal(onHost(`sha256sum ${site}`).stdout.split(" ")[0], declared);
    await stack.refresh({
      previewOnly: true,
      expectNoChanges: true,
      onOutput: log,
      configFile: stack.configFile,
    });
  });

  it("the host moves (stop/start without an Elastic IP): `pulumi up --refresh` with the new address follows it", async function () {
    const releaseId = String(firstUp.outputs.releaseId.value);
    const deployedLines = onHost(`grep -c deployed /srv/${ID}/releases.log`).stdout.trim();
    const moved = sandboxReaddress(3);
    assert.equal(moved.host, "10.77.0.3");
    // The user changes only apphost:host.address, as a refreshed EC2 instance changes its public IP.
    const cfg = yaml.load(fs.readFileSync(stack.configFile, "utf8")) as { config: Record<string, unknown> };
    cfg.config["apphost:host"] = { ...(cfg.config["apphost:host"] as object), address: moved.host };
    fs.writeFileSync(stack.configFile, yaml.dump(cfg));
    const cli = (args: string[], env: Record<string, string> = {}) =>
      pulumiCli([...args, "--stack", "local", "--config-file", stack.configFile], {
        backendUrl: backend,
        env,
      });

    // The refresh reads every host resource at the new address, and the update stores it.
    const up = cli(["up", "--refresh", "--yes"]);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    log(up.stdout);
    assert.match(up.stdout, /~ +pulumi-nodejs:dynamic\/apphost:HostConnection host-connection updated/);
    assert.match(up.stdout, /~ +pulumi-nodejs:dynamic\/apphost:HostFile app-env updated/);
    assert.match(up.stdout, /~ +pulumi-nodejs:dynamic\/apphost:Release app-release updated/);
    // Same release, not deployed again; served at the new address.
    assert.equal(onHost(`readlink /srv/${ID}/current`).stdout.trim(), `/srv/${ID}/releases/${releaseId}`);
    assert.equal(onHost(`grep -c deployed /srv/${ID}/releases.log`).stdout.trim(), deployedLines);
    assert.equal(http(moved, HOSTNAME, "/healthz", "https").status, 200);

    // A plain `up` after it changes nothing.
    const again = cli(["up", "--yes"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Resources:\n +\d+ unchanged\n/);
    // A refresh without the program reads at the stored connections: they are the new address now.
    const stored = cli(["refresh", "--preview-only", "--expect-no-changes"], {
      PULUMI_RUN_PROGRAM: "false",
    });
    assert.equal(stored.code, 0, `${stored.stdout}\n${stored.stderr}`);
    const drift = await runCli("drift", ["--stack", "local", "--config-file", stack.configFile], {
      PULUMI_BACKEND_URL: backend,
    });
    assert.equal(drift.code, 0, drift.stdout + drift.stderr);
    sandbox = moved;
    // `pulumi destroy` below removes everything at the new address.
  });

  it("`pulumi destroy` leaves the host clean and the proxy running", async function () {
    const res = await stack.destroy({ onOutput: log, configFile: stack.configFile });
    assert.equal(res.summary.result, "succeeded");
    // Caddy's access log aside (below): Caddy holds it open until it restarts.
    const accessLog = `/var/log/caddy/${ID}.access.log`;
    const leftovers = onHost(
      `ls -d /srv/${ID} /etc/apphost/${ID}.* /etc/caddy/apphost/${ID}.* /etc/systemd/system/apphost-${ID}-* /var/log/caddy/${ID}.* /var/lib/systemd/timers/stamp-apphost-${ID}-* 2>/dev/null | grep -vxF ${accessLog} || true`,
    ).stdout.trim();
    assert.equal(leftovers, "", `left on the host:\n${leftovers}`);
    // ... but not the data: the database and its backups are moved aside, root's alone.
    const kept = onHost(`ls -d /var/lib/apphost/kept/${ID}-* | tail -n 1`).stdout.trim();
    assert.match(kept, new RegExp(`^/var/lib/apphost/kept/${ID}-\\d{8}T\\d{6}Z$`));
    assert.equal(
      onHost(`sqlite3 ${kept}/data/app.db 'SELECT version_num FROM alembic_version'`).stdout.trim(),
      "0002",
      "the kept database is not the migrated one",
    );
    assert.equal(onHost(`stat -c '%U %a' ${kept}`).stdout.trim(), "root 755");
    // Caddy's access log of the stack went with them (it served requests above): a copy, since Caddy does not
    // reopen its logs on a reload and still holds the file; that one is left empty, where a stack deployed again
    // under this name logs (a moved one took those lines into the kept data).
    assert.match(onHost(`stat -c '%U %s' ${kept}/logs/${ID}.access.log`).stdout.trim(), /^root [1-9]\d*$/);
    assert.equal(onHost(`stat -c '%U %s' ${accessLog}`).stdout.trim(), "caddy 0");
    assert.match(
      onHost("ls -l /proc/$(systemctl show -p MainPID --value caddy)/fd").stdout,
      new RegExp(` -> ${accessLog.replace(/[.]/g, "\\.")}$`, "m"),
    );
    assert.match(onHost(`stat -c '%U %a' /var/lib/apphost/kept`).stdout.trim(), /^root 700$/);
    assert.equal(onHost(`id -u ${ID}`, { allowFailure: true }).code, 1, "the app user still exists");
    assert.equal(
      onHost(`systemctl list-units --all --plain --no-legend 'apphost-${ID}-*' | wc -l`).stdout.trim(),
      "0",
    );
    assert.equal(onHost("systemctl is-active caddy").stdout.trim(), "active");

    // Again, on the stack that now holds nothing: the program runs (PULUMI_RUN_PROGRAM) without
    // its generated passwords in the state, and the destroy succeeds at once, changing nothing.
    const t0 = Date.now();
    const again = await stack.destroy({ onOutput: log, configFile: stack.configFile });
    assert.equal(again.summary.result, "succeeded");
    assert.equal(again.summary.resourceChanges?.delete ?? 0, 0);
    log(`      a second destroy: ${Date.now() - t0} ms\n`);
  });
});
