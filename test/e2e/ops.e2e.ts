/**
 * The day-2 commands end to end, run as a person or CI runs them (`npm run
 * drift|doctor|releases -- --stack local-h6 --config-file <file>` with
 * PULUMI_BACKEND_URL set) against the local stack deployed to a sandbox of
 * this spec's own (apphost-h6 on 10.79.0).
 */
import { strict as assert } from "assert";
import type * as auto from "@pulumi/pulumi/automation";
import * as fs from "fs";
import * as path from "path";
import { freshBackend, localStack, onHost, ROOT, sandboxUp, type Sandbox } from "./lib";
import { runCli, sandboxSystemctl } from "./ops-lib";

const SANDBOX = { name: "apphost-h6", subnet: "10.79.0" };
const STACK = "local-h6";
const ID = `sample-${STACK}`;
const HOSTFILE = "pulumi-nodejs:dynamic/apphost:HostFile";

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
          [`FAIL units: apphost-${ID}-worker.service is inactive`],
        );
        assert.match(res.stdout, /^doctor: 8 checks: 7 pass, 1 fail, 0 skip$/m);
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
          [`FAIL database-permissions: ${db} has mode 0644, not 0640 or 0600`],
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
      // The first `up` and the `up --refresh`; preview-only refreshes are not recorded.
      const history = lines.slice(lines.indexOf(`stack history (${STACK}, newest first):`) + 1);
      assert.match(history[0], /^ {2}VERSION +KIND +RESULT +STARTED +ENDED +CHANGES$/);
      assert.match(history[1], /^ {2}2 +update +succeeded +\S+Z +\S+Z +.*update 2/);
      assert.match(history[2], /^ {2}1 +update +succeeded +\S+Z +\S+Z +create \d+$/);
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
  });
});
