/**
 * apphost:host.via.jump end to end: a second sandbox plays the bastion
 * (apphost-jb, 10.84.0.2), and the app host (apphost-ja, 10.85.0.2) lets SSH
 * in from the bastion's address only (iptables in its network namespace,
 * REJECT with a TCP reset for everyone else, this machine included). A local
 * stack that goes through the bastion deploys, shows a hand edit as drift,
 * passes the doctor and destroys; with the bastion's sshd stopped, drift
 * exits 2 and names the jump host. A stand-in `aws` that tunnels through the
 * bastion plays an EC2 Instance Connect Endpoint for OpenSSH's ProxyCommand
 * (open-tunnel's exact arguments) and the HostScript steps it needs.
 *
 * Run it alone with
 *   npx mocha -r ts-node/register/transpile-only --bail --timeout 1800000 test/e2e/jump.e2e.ts
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import type * as auto from "@pulumi/pulumi/automation";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { SshConnection } from "../../components/remote/connection";
import { hostScriptProvider, scanHostKeyViaProxy } from "../../components/remote/resources";
import {
  freshBackend,
  http,
  localStack,
  ROOT,
  sandboxCommand,
  sandboxesDone,
  sandboxUp,
  type Sandbox,
} from "./lib";
import { inSandbox, runCli, sandboxSystemctl } from "./ops-lib";

const BASTION = { name: "apphost-jb", subnet: "10.84.0" };
const APP = { name: "apphost-ja", subnet: "10.85.0" };
const STACK = "local-jump";
const ID = `sample-${STACK}`;
const HOSTNAME = "sample.local.test";

describe("an SSH jump host: the app host's sshd answers the bastion only (real engine)", function () {
  let bastion: Sandbox;
  let app: Sandbox;
  let backend: string;
  let stack: auto.Stack & { configFile: string };
  let ruleSince = "";
  const hadStackFile = fs.existsSync(path.join(ROOT, `Pulumi.${STACK}.yaml`));
  const log = (s: string) => process.stdout.write(s);
  const say = (s: string) => process.stdout.write(`      ${s}\n`);
  /** A command as root on the app host, entered from this machine (SSH from here is refused). */
  const onApp = (command: string) => inSandbox(APP.name, command);
  const cli = (command: string) =>
    runCli(command, ["--stack", STACK, "--config-file", stack.configFile], { PULUMI_BACKEND_URL: backend });
  /** ssh from this machine straight to the app host, as the deployer would without the bastion. */
  const directSsh = () =>
    spawnSync(
      "ssh",
      [
        "-F",
        "none",
        "-i",
        app.key,
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=5",
        `${app.user}@${app.host}`,
        "true",
      ],
      { encoding: "utf8" },
    );

  before(async function () {
    bastion = sandboxUp(BASTION);
    // A fresh app host every run: what an earlier run left must not decide this one.
    sandboxUp(APP);
    sandboxCommand(APP, "down");
    app = sandboxUp(APP);
    // The bastion reaches the app host from its own address, as on one private network.
    sandboxCommand(BASTION, "link", APP.subnet);
    const only = `-p tcp --dport 22 ! -s ${bastion.host} -m addrtype ! --src-type LOCAL -j REJECT --reject-with tcp-reset`;
    const ipt = (args: string) =>
      spawnSync("bash", ["-c", `ip netns exec ${APP.name} iptables ${args}`], { encoding: "utf8" });
    if (ipt(`-C INPUT ${only}`).status !== 0) {
      const added = ipt(`-I INPUT ${only}`);
      assert.equal(added.status, 0, added.stderr);
    }
    // From here on (scripts/sandbox up itself logged in from this machine to see the host was ready).
    // The next whole second on the host's clock: journalctl --since counts whole seconds.
    ruleSince = onApp("echo $(( $(date +%s) + 1 )); sleep 1.1").trim();
    const refused = directSsh();
    assert.notEqual(refused.status, 0, "the app host still answers SSH from this machine");
    say(`direct ssh to ${app.host} refused: ${refused.stderr.trim().split("\n").at(-1)}`);
    const scan = spawnSync("ssh-keyscan", ["-T", "10", "-t", "ed25519", bastion.host], { encoding: "utf8" });
    const bastionKey = scan.stdout.trim().split(/\s+/).slice(1, 3).join(" ");
    assert.match(bastionKey, /^ssh-ed25519 AAAA/, scan.stderr);
    backend = freshBackend();
    stack = await localStack(backend, {
      stackName: STACK,
      sandbox: app,
      config: {
        "apphost:host": {
          kind: "existing",
          port: 22,
          user: "admin",
          via: { jump: { address: bastion.host, user: bastion.user, hostKey: bastionKey } },
        },
      },
    });
  });

  after(function () {
    if (!hadStackFile) fs.rmSync(path.join(ROOT, `Pulumi.${STACK}.yaml`), { force: true });
    sandboxesDone(BASTION, APP);
  });

  it("`pulumi up` deploys through the bastion: the host setup, the release, HTTPS", async function () {
    const up = await stack.up({ onOutput: log, configFile: stack.configFile });
    assert.equal(up.summary.result, "succeeded");
    const release = String(up.outputs.releaseId.value);
    const health = JSON.parse(http(app, HOSTNAME, "/healthz", "https").body) as { release: string };
    assert.equal(health.release, release);
    // Every session came from the bastion: the app host's sshd saw no other address.
    const peers = onApp(
      `journalctl -u ssh --no-pager -o cat --since @${ruleSince} | grep -oE 'Accepted publickey for [a-z]+ from [0-9.]+' | awk '{print $NF}' | sort -u`,
    ).trim();
    assert.equal(
      peers,
      bastion.host,
      `sshd accepted logins from: ${JSON.stringify(peers)}, not only ${JSON.stringify(bastion.host)}`,
    );
    assert.notEqual(directSsh().status, 0, "the rule that keeps everyone but the bastion out is gone");
  });

  it("a second `up` changes nothing", async function () {
    const up = await stack.up({ configFile: stack.configFile });
    const changed = Object.entries(up.summary.resourceChanges ?? {}).filter(([k]) => k !== "same");
    assert.deepEqual(changed, []);
  });

  it("`npm run drift` exits 1 on a hand edit, naming the resource, through the bastion", async function () {
    onApp(`echo '# edited by hand' >> /etc/caddy/apphost/${ID}.caddy`);
    const res = await cli("drift");
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stdout, /app-site/);
  });

  it("`npm run doctor` passes every check through the bastion", async function () {
    await stack.up({ configFile: stack.configFile, refresh: true });
    // The doctor wants a recent backup: the scheduled one, run now.
    onApp(`systemctl start apphost-${ID}-backup.service`);
    const res = await cli("doctor");
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.doesNotMatch(res.stdout, /^FAIL /m);
  });

  it("`npm run releases` and `npm run restore` reach the host through the bastion too", async function () {
    const live = await cli("releases");
    assert.equal(live.code, 0, live.stderr);
    assert.match(
      live.stdout.split("\n")[0],
      /^live: \d{14}-[0-9a-f]{8} since .*matches the stack's releaseId$/,
    );
    const backup = onApp(`ls -1 /srv/${ID}/shared/backups/ | grep -- '-scheduled\\.db$' | tail -n 1`).trim();
    assert.ok(backup, "no scheduled backup to restore");
    const restored = await runCli(
      "restore",
      ["--stack", STACK, "--config-file", stack.configFile, "--backup", backup],
      {
        PULUMI_BACKEND_URL: backend,
      },
    );
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    assert.match(
      restored.stdout,
      new RegExp(`^restore: ${STACK}: database restored from \\S+${backup.replace(/\./g, "\\.")} `, "m"),
    );
  });

  it("`npm run logs`, `exec` and `maintenance` go through the bastion too", async function () {
    const exec = await runCli(
      "exec",
      ["--stack", STACK, "--config-file", stack.configFile, "--", "id -un; hostname"],
      {
        PULUMI_BACKEND_URL: backend,
      },
    );
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout.trim().split("\n")[0], ID);
    const logs = await runCli(
      "logs",
      ["--stack", STACK, "--config-file", stack.configFile, "--process", "web", "--since", "30m"],
      {
        PULUMI_BACKEND_URL: backend,
      },
    );
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, new RegExp(` ${ID}-web\\[\\d+\\]: `));
    const status = await runCli(
      "maintenance",
      ["--stack", STACK, "--config-file", stack.configFile, "status"],
      {
        PULUMI_BACKEND_URL: backend,
      },
    );
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^maintenance: ${STACK}: off$`, "m"));
  });

  it("an EC2 Instance Connect tunnel (a stand-in `aws` that tunnels through the bastion): host scripts and the key scan over OpenSSH", async function () {
    // `aws ec2-instance-connect open-tunnel ...` as OpenSSH's ProxyCommand: the stand-in logs its
    // arguments and carries the connection to the app host's port 22 through the bastion.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-fake-aws-"));
    const argsLog = path.join(bin, "args.log");
    fs.writeFileSync(
      path.join(bin, "aws"),
      `#!/bin/bash\necho "$*" >>${argsLog}\n` +
        `exec ssh -F none -i ${app.key} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null ` +
        `-o LogLevel=ERROR -W ${app.host}:22 ${bastion.user}@${bastion.host}\n`,
      { mode: 0o755 },
    );
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    try {
      const base: SshConnection = {
        host: app.host,
        port: 22,
        user: app.user,
        privateKey: fs.readFileSync(app.key, "utf8"),
        proxy: {
          kind: "instance-connect",
          instanceId: "i-0e2e",
          endpointId: "eice-0e2e",
          region: "eu-central-1",
        },
      };
      // The scan trusts nothing: it learns the key through the tunnel, with no credential offered.
      const key = await scanHostKeyViaProxy(base, 1);
      assert.equal(key, onApp("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub").trim());
      const conn = { ...base, hostKey: key };
      const marker = `/root/apphost-e2e-hostscript`;
      const inputs = {
        connection: conn,
        create: `printf '%s' "$(cat)" > ${marker}`,
        delete: `rm -f ${marker}`,
        stdin: "from stdin, not the script",
        description: "e2e host script",
        timeoutSeconds: 60,
        providerVersion: 2,
      };
      await hostScriptProvider.create!(inputs);
      assert.equal(onApp(`cat ${marker}`), "from stdin, not the script");
      const changed = { ...inputs, stdin: "changed" };
      assert.equal((await hostScriptProvider.diff!("x", inputs, changed)).changes, true);
      assert.equal((await hostScriptProvider.diff!("x", inputs, { ...inputs })).changes, false);
      await hostScriptProvider.update!("x", inputs, changed);
      assert.equal(onApp(`cat ${marker}`), "changed");
      // A failing script: the error names the step and the endpoint, and never shows its stdin.
      let message = "";
      await hostScriptProvider.create!({
        ...inputs,
        create: "cat >/dev/null; echo boom >&2; exit 3",
        stdin: "top-s3cret-value",
      }).catch((e: Error) => (message = e.message));
      assert.match(message, /^e2e host script: exit code 3\n/);
      assert.doesNotMatch(message, /top-s3cret-value/);
      await hostScriptProvider.delete!("x", changed);
      assert.equal(onApp(`test -e ${marker} && echo present || echo gone`).trim(), "gone");
      const calls = fs.readFileSync(argsLog, "utf8").trim().split("\n");
      assert.ok(calls.length >= 4, calls.join("\n"));
      for (const call of calls) {
        assert.equal(
          call,
          "ec2-instance-connect open-tunnel --instance-id i-0e2e --instance-connect-endpoint-id eice-0e2e --remote-port 22 --region eu-central-1",
        );
      }
      say(`${calls.length} tunnels opened with: aws ${calls[0]}`);
    } finally {
      process.env.PATH = savedPath;
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });

  it("with the bastion's sshd down, drift exits 2 and names the jump host, not the app host", async function () {
    sandboxSystemctl(BASTION.name, "stop", "ssh.service");
    try {
      const res = await cli("drift");
      assert.equal(res.code, 2, res.stdout + res.stderr);
      assert.match(
        res.stderr,
        new RegExp(
          `the jump host admin@${bastion.host.replace(/\./g, "\\.")}:22 \\(apphost:host\\.via\\.jump\\) could not be reached`,
        ),
      );
    } finally {
      sandboxSystemctl(BASTION.name, "start", "ssh.service");
    }
  });

  it("`pulumi destroy` through the bastion leaves the app host clean", async function () {
    const res = await stack.destroy({ onOutput: log, configFile: stack.configFile });
    assert.equal(res.summary.result, "succeeded");
    assert.equal(onApp(`test -e /srv/${ID} && echo present || echo gone`).trim(), "gone");
    assert.equal(onApp(`ls /etc/systemd/system | grep -c '^apphost-${ID}-' || true`).trim(), "0");
  });
});
