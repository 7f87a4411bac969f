/**
 * The day-2 commands end to end, run as a person or CI runs them (`npm run
 * drift|doctor|releases -- --stack local-h6 --config-file <file>` with
 * PULUMI_BACKEND_URL set) against the local stack deployed to a sandbox of
 * this spec's own (apphost-h6 on 10.79.0).
 */
import { strict as assert } from "assert";
import type * as auto from "@pulumi/pulumi/automation";
import { spawn } from "child_process";
import * as fs from "fs";
import * as nodeHttp from "http";
import * as yaml from "js-yaml";
import * as path from "path";
import {
  freshBackend,
  http,
  localStack,
  onHost,
  postItem,
  pulumiCli,
  ROOT,
  sandboxUp,
  type Sandbox,
  sandboxesDone,
} from "./lib";
import { runCli, runInTerminal, sandboxSystemctl } from "./ops-lib";

const SANDBOX = { name: "apphost-h6", subnet: "10.79.0" };
const STACK = "local-h6";
const ID = `sample-${STACK}`;
const HOSTFILE = "pulumi-nodejs:dynamic/apphost:HostFile";
const HOSTNAME = "sample.local.test";
const BACKUPS = `/srv/${ID}/shared/backups`;

describe("day-2 commands on the local stack: drift, doctor, releases (real engine)", function () {
  let sandbox: Sandbox;
  let stack: auto.Stack & { configFile: string };
  let backend: string;
  let releaseId: string;
  const log = (s: string) => process.stdout.write(s);
  const cli = (command: string, env: Record<string, string> = {}) =>
    runCli(command, ["--stack", STACK, "--config-file", stack.configFile], {
      PULUMI_BACKEND_URL: backend,
      ...env,
    });
  const checkLines = (out: string) => out.split("\n").filter((l) => /^(PASS|FAIL|SKIP) /.test(l));
  /** Names of the items the app serves through the proxy, oldest first. */
  const names = () =>
    (JSON.parse(http(sandbox, HOSTNAME, "/items", "https").body) as { name: string }[]).map((i) => i.name);

  before(async function () {
    sandbox = sandboxUp(SANDBOX);
    backend = freshBackend();
    stack = await localStack(backend, { stackName: STACK, sandbox });
  });

  describe("setup", function () {
    it("deploys the local stack to the sandbox", async function () {
      const up = await stack.up({ onOutput: log, configFile: stack.configFile });
      assert.equal(up.summary.result, "succeeded");
      releaseId = String(up.outputs.releaseId.value);
      assert.match(releaseId, /^\d{14}-[0-9a-f]{8}$/);
    });
  });

  describe("npm run drift", function () {
    it("exits 0 on the stack as deployed", async function () {
      const res = await cli("drift");
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.trim(), `drift: ${STACK}: no drift`);
    });

    it("exits 1 after hand edits of the Caddy site and a unit file, naming each resource and its type", async function () {
      onHost(`echo '# edited by hand' >> /etc/caddy/apphost/${ID}.caddy`);
      onHost(`chmod 0600 /etc/systemd/system/apphost-${ID}-worker.service`);
      const res = await cli("drift");
      assert.equal(res.code, 1, res.stderr);
      const lines = res.stdout.trim().split("\n");
      assert.equal(lines[0], `drift: ${STACK}: 2 resource(s) differ from the state:`);
      assert.ok(lines.includes(`  changed: app-site (HostFile, ${HOSTFILE}): content, sha256`), res.stdout);
      assert.ok(lines.includes(`  changed: app-unit-worker (HostFile, ${HOSTFILE}): mode`), res.stdout);
    });

    it("exits 0 again after `up --refresh` put the files back", async function () {
      await stack.up({ refresh: true, onOutput: log, configFile: stack.configFile });
      assert.equal(
        onHost(`stat -c %a /etc/systemd/system/apphost-${ID}-worker.service`).stdout.trim(),
        "644",
      );
      assert.doesNotMatch(onHost(`cat /etc/caddy/apphost/${ID}.caddy`).stdout, /edited by hand/);
      const res = await cli("drift");
      assert.equal(res.code, 0, res.stderr);
    });

    it("exits 2 (could not check), not 1, when the host's sshd is stopped", async function () {
      sandboxSystemctl(SANDBOX.name, "stop", "ssh.service");
      let res;
      try {
        res = await cli("drift");
      } finally {
        sandboxSystemctl(SANDBOX.name, "start", "ssh.service");
      }
      assert.equal(res.code, 2, res.stdout);
      assert.match(
        res.stderr,
        new RegExp(`^drift: ${STACK}: could not check: \\d+ resource\\(s\\) could not be read:$`, "m"),
      );
      const refused = `ssh: connect to host ${sandbox.host.replace(/\./g, "\\.")} port 22: Connection refused`;
      assert.match(res.stderr, new RegExp(`^ {2}${refused}$`, "m"));
      assert.match(res.stderr, /^ {4}.*\bapp-site \(HostFile\)/m);
      assert.doesNotMatch(res.stdout, /differ from the state/);
      assert.equal(onHost("systemctl is-active ssh.service").stdout.trim(), "active");
    });

    it("exits 2 with a backend that does not hold the stack, and creates no stack there", async function () {
      const empty = freshBackend();
      const res = await cli("drift", { PULUMI_BACKEND_URL: empty });
      assert.equal(res.code, 2, res.stdout);
      assert.match(res.stderr, /could not check: cannot open the stack: .*no stack named 'local-h6' found/);
      // The engine writes the backend's meta.yaml on first use, but no stack.
      assert.ok(!fs.existsSync(path.join(empty.slice("file://".length), ".pulumi", "stacks")));
      const missing = await cli("drift", { PULUMI_BACKEND_URL: `${empty}/does-not-exist` });
      assert.equal(missing.code, 2, missing.stdout);
    });

    it("exits 2 on a usage error", async function () {
      const res = await runCli("drift", ["--stak", STACK]);
      assert.equal(res.code, 2);
      assert.match(res.stderr, /^usage: npm run drift -- --stack <name> \[--config-file <path>\]$/m);
    });
  });

  describe("npm run doctor", function () {
    it("passes every check on the healthy host (after a scheduled backup ran)", async function () {
      onHost(`systemctl start apphost-${ID}-backup.service`);
      const res = await cli("doctor");
      assert.equal(res.code, 0, res.stdout + res.stderr);
      assert.deepEqual(checkLines(res.stdout), [
        "PASS units",
        "PASS health",
        "PASS maintenance",
        "PASS tls-certificate",
        "PASS backup",
        "PASS database-permissions",
        "PASS disk",
        "PASS memory",
        "PASS release",
      ]);
      assert.match(
        res.stdout,
        new RegExp(`^doctor: ${STACK}: ${ID} on admin@${sandbox.host}:22, release ${releaseId}$`, "m"),
      );
    });

    it("fails the units check, naming the unit, when the worker is stopped", async function () {
      onHost(`systemctl stop apphost-${ID}-worker.service`);
      try {
        const res = await cli("doctor");
        assert.equal(res.code, 1, res.stdout + res.stderr);
        const lines = checkLines(res.stdout);
        assert.deepEqual(
          lines.filter((l) => l.startsWith("FAIL")),
          [
            `FAIL units: apphost-${ID}-worker.service is inactive; once the cause is fixed (npm run logs shows the journal), ` +
              "pulumi up --refresh publishes the live release again, which starts them",
          ],
        );
        assert.match(res.stdout, /^doctor: 9 checks: 8 pass, 1 fail, 0 skip$/m);
        // A stopped worker is drift: the release is not served as declared, and `up --refresh` starts it again.
        const drift = await cli("drift");
        assert.equal(drift.code, 1, drift.stdout + drift.stderr);
        assert.match(
          drift.stdout,
          /^ {2}changed: app-release \(Release, pulumi-nodejs:dynamic\/apphost:Release\)/m,
        );
        assert.ok(
          drift.stdout.includes(
            `\n    live: ${releaseId} -> ${releaseId} (worker apphost-${ID}-worker.service inactive)\n`,
          ),
          drift.stdout,
        );
        const up = await stack.up({ refresh: true, onOutput: log, configFile: stack.configFile });
        assert.equal(up.summary.result, "succeeded");
        assert.equal(String(up.outputs.releaseId.value), releaseId, "the same release, published again");
        assert.equal(
          onHost(`systemctl is-active apphost-${ID}-worker.service`, { allowFailure: true }).stdout.trim(),
          "active",
        );
        assert.equal((await cli("drift")).code, 0);
      } finally {
        onHost(`systemctl start apphost-${ID}-worker.service`);
      }
    });

    it("fails the database-permissions check when the database is chmod 0644", async function () {
      const db = `/srv/${ID}/shared/data/app.db`;
      const mode = onHost(`stat -c %a ${db}`).stdout.trim();
      onHost(`chmod 0644 ${db}`);
      try {
        const res = await cli("doctor");
        assert.equal(res.code, 1, res.stdout + res.stderr);
        assert.deepEqual(
          checkLines(res.stdout).filter((l) => l.startsWith("FAIL")),
          [
            `FAIL database-permissions: ${db} has mode 0644, not 0640 or 0600 (the next release tightens it; now: sudo chmod g-w,o-rwx ${db})`,
          ],
        );
      } finally {
        onHost(`chmod ${mode} ${db}`);
      }
    });
  });

  describe("npm run releases", function () {
    it("prints what is live and since when, the host's release log and the stack history", async function () {
      const res = await cli("releases");
      assert.equal(res.code, 0, res.stderr);
      const lines = res.stdout.split("\n");
      assert.match(
        lines[0],
        new RegExp(
          `^live: ${releaseId} since \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ \\(deployed, migration 0002 \\(head\\)\\) on port 800[01]; matches the stack's releaseId$`,
        ),
      );
      assert.ok(lines.includes(`host release log (/srv/${ID}/releases.log, newest first):`), res.stdout);
      assert.ok(
        lines.some((l) => new RegExp(`^ {2}\\* {2}${releaseId} .*0002 \\(head\\) +deployed$`).test(l)),
        res.stdout,
      );
      // The first `up` and the two `up --refresh` (the hand edits, the stopped worker: the release published
      // again); preview-only refreshes are not recorded.
      const history = lines.slice(lines.indexOf(`stack history (${STACK}, newest first):`) + 1);
      assert.match(history[0], /^ {2}VERSION +KIND +RESULT +STARTED +ENDED +CHANGES$/);
      assert.match(history[1], /^ {2}3 +update +succeeded +\S+Z +\S+Z +same \d+, update 1$/);
      assert.match(history[2], /^ {2}2 +update +succeeded +\S+Z +\S+Z +.*update 2/);
      assert.match(history[3], /^ {2}1 +update +succeeded +\S+Z +\S+Z +create \d+$/);
    });
  });

  describe("npm run restore", function () {
    const post = (name: string) => postItem(sandbox, HOSTNAME, name);
    let backup = "";

    it("restores a named backup: the app stops, gets the backup's data, starts, passes its health check, serves it", async function () {
      post("in the backup");
      const taken = onHost(`/srv/${ID}/bin/apphost-release --owner=e2e backup e2e-named`).stdout;
      backup = /^backup=(.*)$/m.exec(taken)![1];
      post("written after the backup");
      assert.deepEqual(names().slice(-2), ["in the backup", "written after the backup"]);
      const named = await runCliWith(["--backup", path.basename(backup)]);
      assert.equal(named.code, 0, named.stderr);
      const saved = new RegExp(
        `^restore: ${STACK}: database restored from ${backup} \\(web instance on port 800[01] healthy\\); what it replaced is saved in (${BACKUPS}/app-\\S+-pre-restore\\.db)$`,
      ).exec(named.stdout.trim());
      assert.ok(saved, named.stdout);
      assert.match(
        named.stderr,
        /apphost: restore: stopping apphost-sample-local-h6-heartbeat\.service apphost-sample-local-h6-worker\.service apphost-sample-local-h6-web@800[01]\.service/,
      );
      assert.match(named.stderr, /apphost: phase restore: ok/);
      const items = names();
      assert.equal(items.at(-1), "in the backup");
      assert.ok(!items.includes("written after the backup"), items.join(", "));
      const health = JSON.parse(http(sandbox, HOSTNAME, "/healthz", "https").body) as Record<string, string>;
      assert.deepEqual([health.status, health.database, health.revision], ["ok", "ok", "0002"]);
      // What the restore replaced is kept, with the row written after the backup.
      assert.equal(
        onHost(
          `sqlite3 ${saved[1]} "select count(*) from items where name = 'written after the backup'"`,
        ).stdout.trim(),
        "1",
      );
    });

    it("without --backup, or with a backup that is not there: exit 2, the backups listed, nothing changed", async function () {
      const before = onHost(`sha256sum /srv/${ID}/shared/data/app.db`).stdout;
      const none = await runCliWith([]);
      assert.equal(none.code, 2, none.stderr);
      assert.match(
        none.stderr,
        new RegExp(`restore: which backup\\? Backups here: .*${path.basename(backup)}`),
      );
      assert.doesNotMatch(
        none.stderr,
        /apphost-release \[--owner NAME\]/,
        "the host script's usage line is left out",
      );
      assert.match(none.stderr, new RegExp(`usage: npm run restore -- --stack ${STACK} --backup <file>`));
      const missing = await runCliWith(["--backup", "app-20000101T000000.000Z-nope.db"]);
      assert.equal(missing.code, 2, missing.stderr);
      assert.match(missing.stderr, /restore: there is no backup .*nope\.db/);
      assert.match(missing.stderr, new RegExp(`restore: ${STACK}: nothing was changed`));
      assert.equal(onHost(`sha256sum /srv/${ID}/shared/data/app.db`).stdout, before);
    });

    const runCliWith = (extra: string[]) =>
      runCli("restore", ["--stack", STACK, "--config-file", stack.configFile, ...extra], {
        PULUMI_BACKEND_URL: backend,
      });
  });

  describe("a reboot of the host", function () {
    it("brings the app back by itself: proxy, web instance and worker serve the same release", async function () {
      const bootId = () => onHost("cat /proc/sys/kernel/random/boot_id").stdout.trim();
      const before = bootId();
      const rebootAt = Date.now();
      onHost("systemd-run --on-active=1 systemctl reboot");
      const deadline = Date.now() + 180_000;
      let after = "";
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 2000));
        const res = onHost("cat /proc/sys/kernel/random/boot_id", { allowFailure: true });
        if (res.code === 0 && res.stdout.trim() !== before) {
          after = res.stdout.trim();
          break;
        }
      }
      assert.ok(after, "the host came back within 180 s");
      const sinceReboot = (Date.now() - rebootAt) / 1000;
      const initAge = Number(onHost("ps -o etimes= -p 1").stdout.trim());
      assert.ok(
        initAge <= sinceReboot + 1,
        `PID 1 is ${initAge} s old: booted again after the reboot (${sinceReboot} s ago)`,
      );
      let health = { status: 0, body: "" };
      while (Date.now() < deadline) {
        try {
          health = http(sandbox, HOSTNAME, "/healthz", "https");
          if (health.status === 200) break;
        } catch {
          /* the proxy is not up yet */
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
      assert.equal(health.status, 200, health.body);
      log(
        `\n      the app served again ${((Date.now() - rebootAt) / 1000).toFixed(1)} s after the reboot request\n`,
      );
      assert.equal((JSON.parse(health.body) as { release: string }).release, releaseId);
      assert.equal(
        onHost(`systemctl is-active apphost-${ID}-worker.service caddy.service`).stdout.trim(),
        "active\nactive",
      );
      assert.equal(names().at(-1), "in the backup", "the restored data survived the reboot");
    });
  });

  describe("the host's SSH key", function () {
    it("a re-keyed host is refused, naming the pinned key and how to accept a new one; accepting it converges", async function () {
      // As ssh-keygen prints it: "256 SHA256:<base64> root@host (ED25519)".
      const pinned = onHost("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").stdout.split(/\s+/)[1];
      // The server is replaced (or someone else answers at its address): new host keys.
      onHost("rm -f /etc/ssh/ssh_host_*; ssh-keygen -A >/dev/null; systemctl restart ssh");
      const refused = await cli("drift");
      assert.notEqual(refused.code, 0, refused.stdout);
      const text = `${refused.stdout}\n${refused.stderr}`;
      assert.match(text, /the host's SSH key is not the one apphost pinned for 10\.79\.0\.2/);
      assert.ok(text.includes(`(ED25519 ${pinned})`), `the pinned key ${pinned} is not named:\n${text}`);
      assert.match(text, /nothing was sent/);
      assert.match(text, /APPHOST_ACCEPT_NEW_HOST_KEY=1 pulumi up/);
      // Accepting the new key on purpose: the next up pins it, and everything reads clean again.
      process.env.APPHOST_ACCEPT_NEW_HOST_KEY = "1";
      try {
        const up = await stack.up({ onOutput: log, configFile: stack.configFile });
        assert.equal(up.summary.result, "succeeded");
      } finally {
        delete process.env.APPHOST_ACCEPT_NEW_HOST_KEY;
      }
      const clean = await cli("drift");
      assert.equal(clean.code, 0, clean.stderr);
      assert.equal(http(sandbox, HOSTNAME, "/healthz", "https").status, 200);
    });
  });

  describe("day-2: logs, exec, scheduled jobs, maintenance mode, failure alerts (issue 19)", function () {
    const TOKEN = `T${process.pid}x${Date.now().toString(36)}`;
    const received: { at: number; body: Record<string, unknown> }[] = [];
    let receiver: nodeHttp.Server;
    const outputs: string[] = [];
    const cli19 = async (command: string, extra: string[]) => {
      const res = await runCli(command, ["--stack", STACK, "--config-file", stack.configFile, ...extra], {
        PULUMI_BACKEND_URL: backend,
      });
      outputs.push(res.stdout, res.stderr);
      return res;
    };
    const up19 = async () => {
      let text = "";
      const up = await stack.up({ onOutput: (s) => ((text += s), log(s)), configFile: stack.configFile });
      outputs.push(text);
      assert.equal(up.summary.result, "succeeded");
      return up;
    };
    const editConfig = (edit: (config: Record<string, Record<string, unknown>>) => void) => {
      const doc = yaml.load(fs.readFileSync(stack.configFile, "utf8")) as {
        config: Record<string, Record<string, unknown>>;
      };
      edit(doc.config);
      fs.writeFileSync(stack.configFile, yaml.dump(doc));
    };
    const tickRuns = () =>
      onHost(`journalctl --no-pager -o cat -u apphost-${ID}-schedule-tick.service`)
        .stdout.split("\n")
        .filter((l) => l.startsWith("tick secret-set=True"));
    /** Start times of the web instance, the worker and the proxy: a restart changes one of them. */
    const startTimes = () =>
      onHost(
        `port=$(cat /srv/${ID}/active-port); systemctl show -p ActiveEnterTimestampMonotonic --value ` +
          `apphost-${ID}-web@$port.service apphost-${ID}-worker.service caddy.service`,
      ).stdout.trim();

    before(async function () {
      receiver = nodeHttp.createServer((req, res) => {
        let body = "";
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("end", () => {
          if (req.url === `/hook/${TOKEN}`) received.push({ at: Date.now(), body: JSON.parse(body) });
          res.writeHead(req.url === `/hook/${TOKEN}` ? 200 : 404);
          res.end();
        });
      });
      // The host side of the sandbox's own link: only the sandbox reaches it.
      await new Promise<void>((r) => receiver.listen(0, `${SANDBOX.subnet}.1`, r));
    });
    after(() => receiver.close());

    it("setup: a job every 10 s and a webhook (a secret) in the stack's config; up installs them", async function () {
      editConfig((c) => {
        (c["apphost:app"] as Record<string, unknown>).schedules = {
          tick: {
            // Fails while shared/data/fail-tick exists, to test the alert.
            command: `python -c "import os,sys; print('tick secret-set=' + str(os.environ['SECRET_KEY'] != '')); sys.exit(3 if os.path.exists('data/fail-tick') else 0)"`,
            onCalendar: "*:*:0/10",
            timeoutSeconds: 60,
          },
        };
      });
      const port = (receiver.address() as { port: number }).port;
      const url = `http://${SANDBOX.subnet}.1:${port}/hook/${TOKEN}`;
      const set = pulumiCli(
        [
          "config",
          "set",
          "--secret",
          "--path",
          "apphost:alerts.webhook",
          url,
          "--stack",
          STACK,
          "--config-file",
          stack.configFile,
        ],
        { backendUrl: backend },
      );
      assert.equal(set.code, 0, set.stderr);
      assert.ok(
        !fs.readFileSync(stack.configFile, "utf8").includes(TOKEN),
        "the stack file holds it encrypted",
      );
      await up19();
      assert.equal(onHost(`systemctl is-active apphost-${ID}-schedule-tick.timer`).stdout.trim(), "active");
      assert.equal(onHost(`stat -c '%a %U' /etc/apphost/${ID}.alert`).stdout.trim(), "600 root");
    });

    it("logs -f shows the line the app logs on a request within 2 s; Ctrl-C ends it and its journalctl", async function () {
      const marker = `probe-${Date.now().toString(36)}`;
      const child = spawn(
        "npm",
        [
          "run",
          "--silent",
          "logs",
          "--",
          "--stack",
          STACK,
          "--config-file",
          stack.configFile,
          "--process",
          "web",
          "-f",
        ],
        {
          cwd: ROOT,
          env: { ...process.env, PULUMI_BACKEND_URL: backend },
          stdio: ["pipe", "pipe", "pipe"],
          detached: true,
        },
      );
      let out = "";
      let seenAt = 0;
      child.stdout.on("data", (b: Buffer) => {
        out += b.toString();
        if (!seenAt && out.includes(marker)) seenAt = Date.now();
      });
      child.stderr.on("data", (b: Buffer) => (out += b.toString()));
      const exited = new Promise<number>((r) => child.on("close", (code) => r(code ?? 128)));
      try {
        // Following: the journal's last lines arrive first.
        const start = Date.now();
        while (!/ sample-local-h6-web\[\d+\]: /.test(out) && Date.now() - start < 60_000)
          await new Promise((r) => setTimeout(r, 200));
        assert.match(out, / sample-local-h6-web\[\d+\]: /, out);
        const sent = Date.now();
        http(sandbox, HOSTNAME, `/items?marker=${marker}`, "https");
        while (!seenAt && Date.now() - sent < 10_000) await new Promise((r) => setTimeout(r, 50));
        assert.ok(seenAt, `no line with ${marker} within 10 s:\n${out.slice(-2000)}`);
        log(`\n      the request's log line arrived ${seenAt - sent} ms after the request\n`);
        assert.ok(seenAt - sent <= 2000, `${seenAt - sent} ms`);
      } finally {
        process.kill(-child.pid!, "SIGINT");
      }
      await exited;
      // The command's own error line (`logs: <stack>: could not ...`), not whatever the app's journal says.
      assert.doesNotMatch(
        out,
        /^logs: .*could not/m,
        `Ctrl-C ends a follow without an error:\n${out.slice(-3000)}`,
      );
      await new Promise((r) => setTimeout(r, 1000));
      const left = onHost("pgrep -ax journalctl || true")
        .stdout.split("\n")
        .filter((l) => l.includes(ID));
      assert.deepEqual(left, [], "the remote journalctl ended with the client");
      outputs.push(out);
    });

    it("logs without -f: every unit, labelled by process, in time order; an unknown process is refused (exit 2)", async function () {
      // The job runs every 10 s from setup on: in a fast run this test may come before its first run.
      for (let i = 0; i < 30 && tickRuns().length === 0; i++) await new Promise((r) => setTimeout(r, 1000));
      const res = await cli19("logs", ["--since", "10m"]);
      assert.equal(res.code, 0, res.stderr);
      const labels = new Set(
        [...res.stdout.matchAll(/ (sample-local-h6-[a-z-]+)\[\d+\]: /g)].map((m) => m[1]),
      );
      for (const l of ["sample-local-h6-web", "sample-local-h6-worker", "sample-local-h6-schedule-tick"])
        assert.ok(labels.has(l), `${l} in ${[...labels].join(", ")}`);
      // journalctl merges in the order journald received the lines. It prints the
      // time journald gave a line, except where the sender stamped it: systemd's
      // own lines about a unit (`systemd[1]: Started ...`) come over the journal's
      // socket with the time they were sent, which can fall in the second before
      // the app's line received just ahead of them. The app's stdout lines carry
      // journald's time, so they must be in order exactly.
      const lines = res.stdout.split("\n").filter((l) => /^\d{4}-/.test(l));
      const appLines = lines.filter((l) => !/ systemd\[1\]: /.test(l));
      const appTimes = appLines.map((l) => l.split(" ")[0]);
      assert.ok(appTimes.length >= 3, res.stdout);
      const sorted = [...appTimes].sort();
      const first = appTimes.findIndex((t, i) => t !== sorted[i]);
      assert.equal(
        first,
        -1,
        `merged in time order:\n${appLines.slice(Math.max(0, first - 10), first + 10).join("\n")}`,
      );
      const migrate = await cli19("logs", ["--process", "migrate"]);
      assert.equal(migrate.code, 0, migrate.stderr);
      assert.match(migrate.stderr, /==> \/srv\/sample-local-h6\/shared\/logs\/apphost-migrate-.*\.log <==/);
      const bad = await cli19("logs", ["--process", "wbe"]);
      assert.equal(bad.code, 2);
      assert.match(
        bad.stderr,
        /"wbe" is not a process of this stack; choose one of heartbeat, web, worker, tick, backup, migrate/,
      );
    });

    it("exec runs in the live release as the app user with the env file; the secret appears in no output", async function () {
      const secret = onHost(`sed -n 's/^SECRET_KEY=//p' /etc/apphost/${ID}.env`)
        .stdout.trim()
        .replace(/^['"]|['"]$/g, "");
      assert.ok(secret.length >= 20, "the env file has a SECRET_KEY");
      const res = await cli19("exec", [
        "--",
        "python",
        "-c",
        'import os; print(os.environ["SECRET_KEY"] != "")',
      ]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.trim(), "True");
      const who = await cli19("exec", ["--", "sh -c 'id -un; pwd -P; command -v python'"]);
      assert.equal(who.code, 0, who.stderr);
      const [user, dir, python] = who.stdout.trim().split("\n");
      assert.equal(user, ID);
      assert.equal(
        dir,
        `/srv/${ID}/releases/${JSON.parse(http(sandbox, HOSTNAME, "/healthz", "https").body).release}`,
      );
      assert.equal(python, `/srv/${ID}/current/.venv/bin/python`);
      // --tty: a terminal on the host (script(1) gives this side one, as a person's shell would).
      const tty = await runInTerminal(
        `npm run --silent exec -- --stack ${STACK} --config-file ${stack.configFile} --tty -- 'tty; id -un'`,
        { PULUMI_BACKEND_URL: backend },
      );
      assert.equal(tty.code, 0, tty.stdout + tty.stderr);
      assert.match(tty.stdout, /\/dev\/pts\/\d+\r?\n/);
      assert.match(tty.stdout, new RegExp(`^${ID}\\r?$`, "m"));
      outputs.push(tty.stdout, tty.stderr);
      const failed = await cli19("exec", ["--", "exit 7"]);
      assert.equal(failed.code, 7, "the command's own exit status");
      for (const o of outputs) assert.ok(!o.includes(secret), "SECRET_KEY in an output");
    });

    it("the job runs every 10 s with the release's env (at least twice in 30 s); doctor shows its last result", async function () {
      const before = tickRuns().length;
      await new Promise((r) => setTimeout(r, 30_000));
      const runs = tickRuns().length - before;
      log(`\n      the job ran ${runs} times in 30 s\n`);
      assert.ok(runs >= 2, `${runs} runs`);
      // A doctor that lands while the job runs says so (systemd keeps no last result then); ask again.
      let doctor = await cli19("doctor", []);
      for (let i = 0; i < 5 && /^PASS schedule-tick: running now /m.test(doctor.stdout); i++) {
        await new Promise((r) => setTimeout(r, 1500));
        doctor = await cli19("doctor", []);
      }
      assert.equal(doctor.code, 0, doctor.stdout);
      assert.match(doctor.stdout, /^PASS schedule-tick: last run .+: success; next run .+$/m);
      // The same for releases: a run going on, or one that just ended, is shown as such (no last result, or
      // no next run yet: the timer sets it a moment later); ask again.
      const settled = /^ {2}tick +\*:\*:0\/10 +\S.* UTC +success +\S.* UTC$/m;
      let releases = await cli19("releases", []);
      for (let i = 0; i < 5 && !settled.test(releases.stdout); i++) {
        await new Promise((r) => setTimeout(r, 1500));
        releases = await cli19("releases", []);
      }
      assert.equal(releases.code, 0, releases.stderr);
      assert.match(releases.stdout, /^scheduled jobs \(each run uses the live release\):$/m);
      assert.match(releases.stdout, settled);
    });

    it("a restore stops the job's timer with the app, and starts it again: the job runs after it", async function () {
      const taken = onHost(`/srv/${ID}/bin/apphost-release --owner=e2e backup e2e-schedules`).stdout;
      const backup = /^backup=(.*)$/m.exec(taken)![1];
      const since = onHost("date +%s").stdout.trim();
      const alerts = received.length;
      const restored = await cli19("restore", ["--backup", path.basename(backup)]);
      assert.equal(restored.code, 0, restored.stderr);
      const tick = `apphost-${ID}-schedule-tick`;
      assert.match(
        restored.stderr,
        new RegExp(
          `apphost: restore: stopping .*web@800[01]\\.service ${tick}\\.timer ${tick}\\.service \\(`,
        ),
      );
      const timer = onHost(`journalctl --no-pager -o cat -u ${tick}.timer --since @${since}`).stdout;
      assert.match(timer, /^Stopped .*\n(.*\n)*Started /m, timer);
      assert.equal(onHost(`systemctl is-active ${tick}.timer`).stdout.trim(), "active");
      const before = tickRuns().length;
      for (let i = 0; i < 30 && tickRuns().length === before; i++)
        await new Promise((r) => setTimeout(r, 1000));
      assert.ok(tickRuns().length > before, "the job did not run after the restore");
      // A run under way when the restore began ended by itself (run_settle): no failure, so no alert.
      assert.equal(received.length, alerts, JSON.stringify(received.slice(alerts)));
    });

    it("maintenance on: / answers 503 with the page, /healthz 200; off: / 200; nothing restarted", async function () {
      const started = startTimes();
      const on = await cli19("maintenance", ["on"]);
      assert.equal(on.code, 0, on.stderr);
      assert.match(on.stdout, /maintenance: local-h6: on/);
      const page = http(sandbox, HOSTNAME, "/", "https");
      assert.equal(page.status, 503);
      assert.match(page.body, /sample is down for maintenance/);
      assert.equal(page.headers["retry-after"], "120");
      assert.equal(http(sandbox, HOSTNAME, "/items", "https").status, 503);
      assert.equal(http(sandbox, HOSTNAME, "/healthz", "https").status, 200);
      // The health check passes through it; the doctor's maintenance check is the one that fails, saying how to end it.
      const doctor = await cli19("doctor", []);
      assert.equal(doctor.code, 1, doctor.stdout);
      assert.deepEqual(
        doctor.stdout.split("\n").filter((l) => /^(FAIL|PASS health)/.test(l)),
        [
          "PASS health",
          `FAIL maintenance: on, switched by hand (${/^npm run maintenance on, \S+Z$/m.exec(onHost(`cat /srv/${ID}/maintenance/on`).stdout)?.[0]}): ` +
            `every request but the health path gets the maintenance page; npm run maintenance -- --stack ${STACK} off ends it`,
        ],
      );
      const off = await cli19("maintenance", ["off"]);
      assert.equal(off.code, 0, off.stderr);
      assert.equal(http(sandbox, HOSTNAME, "/", "https").status, 200);
      assert.equal(startTimes(), started, "no web instance, worker or proxy restarted");
    });

    it("apphost:app.maintenance: true holds it on through a release (env change); maintenance off then exits 1", async function () {
      const release = JSON.parse(http(sandbox, HOSTNAME, "/healthz", "https").body).release as string;
      editConfig((c) => {
        const app = c["apphost:app"] as Record<string, unknown>;
        app.maintenance = true;
        app.env = { ...(app.env as object), MAINTENANCE_TEST: "1" };
      });
      const up = await up19();
      assert.deepEqual(
        (up.outputs.releasePhases.value as { phase: string }[]).map((p) => p.phase).includes("health-gate"),
        true,
        "the env change re-published the release through the health gate",
      );
      assert.equal(JSON.parse(http(sandbox, HOSTNAME, "/healthz", "https").body).release, release);
      assert.equal(http(sandbox, HOSTNAME, "/", "https").status, 503);
      const off = await cli19("maintenance", ["off"]);
      assert.equal(off.code, 1);
      assert.match(off.stderr, /still on: apphost:app\.maintenance is true/);
      // Declared by the stack: the doctor's maintenance check passes, and says it is on.
      const doctor = await cli19("doctor", []);
      assert.match(
        doctor.stdout,
        /^PASS maintenance: on, as apphost:app\.maintenance says \(every request but the health path gets the maintenance page\)$/m,
      );
      editConfig((c) => {
        (c["apphost:app"] as Record<string, unknown>).maintenance = false;
      });
      await up19();
      assert.equal(http(sandbox, HOSTNAME, "/", "https").status, 200);
    });

    it("alerts: --alert-test posts; a failing job posts one message naming it; the URL appears in no output", async function () {
      const test = await cli19("doctor", ["--alert-test"]);
      assert.equal(test.code, 0, test.stderr);
      assert.equal(received.length, 1);
      assert.equal((received[0].body.apphost as { test: boolean }).test, true);
      onHost(`install -o ${ID} -g ${ID} /dev/null /srv/${ID}/shared/data/fail-tick`);
      const start = Date.now();
      while (received.length < 2 && Date.now() - start < 60_000) await new Promise((r) => setTimeout(r, 500));
      onHost(`rm -f /srv/${ID}/shared/data/fail-tick`);
      assert.ok(received.length >= 2, "no alert within 60 s");
      const alert = received[1].body as { text: string; apphost: Record<string, unknown> };
      assert.equal(alert.apphost.unit, `apphost-${ID}-schedule-tick.service`);
      assert.equal(alert.apphost.stack, STACK);
      assert.equal(alert.apphost.status, "3");
      assert.match(alert.text, new RegExp(`apphost-${ID}-schedule-tick\\.service failed on `));
      const doctor = await cli19("doctor", []);
      const exported = pulumiCli(["stack", "export", "--stack", STACK], { backendUrl: backend });
      assert.equal(exported.code, 0, exported.stderr);
      const journal = onHost(`journalctl --no-pager -u 'apphost-${ID}-*'`).stdout;
      for (const [what, text] of [
        ["the state", exported.stdout],
        ["the host's journal", journal],
        ["the commands and ups", outputs.join("\n")],
        ["doctor", doctor.stdout + doctor.stderr],
      ] as const)
        assert.ok(!text.includes(TOKEN), `the webhook URL in ${what}`);
    });
  });

  // Mocha runs a suite's own tests before its nested suites: every step is in a suite, in order.
  describe("teardown", function () {
    it("destroy leaves the host clean; the commands then say the stack is not deployed (exit 2)", async function () {
      const res = await stack.destroy({ onOutput: log, configFile: stack.configFile });
      assert.equal(res.summary.result, "succeeded");
      assert.equal(onHost(`ls -d /srv/${ID} 2>/dev/null || true`).stdout.trim(), "");
      const doctor = await cli("doctor");
      assert.equal(doctor.code, 2, doctor.stdout);
      assert.match(doctor.stderr, /has no connection, releaseId, hostId outputs: is it deployed\?/);
    });
  });

  after(function () {
    // `stack init` of a stack without a committed Pulumi.<stack>.yaml writes one
    // holding only the passphrase salt; the spec's config lives in stack.configFile.
    const stackFile = path.join(ROOT, `Pulumi.${STACK}.yaml`);
    if (fs.existsSync(stackFile) && /^encryptionsalt: \S+\n$/.test(fs.readFileSync(stackFile, "utf8"))) {
      fs.rmSync(stackFile);
    }
    sandboxesDone(SANDBOX);
  });
});
