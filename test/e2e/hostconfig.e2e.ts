/**
 * Host configuration end to end: the baseline, validation of proxy config on
 * the host before it goes live, a preview that shows a file's diff, two
 * stacks side by side on one host, and Nginx as the proxy.
 */
import { strict as assert } from "assert";
import type * as auto from "@pulumi/pulumi/automation";
import * as yaml from "js-yaml";
import * as fs from "fs";
import * as path from "path";
import {
  assertSpreadOverTime,
  freshBackend,
  http,
  localStack,
  onHost,
  pulumiCli,
  readEventStream,
  ROOT,
  sandboxUp,
  type Sandbox,
  sandboxesDone,
} from "./lib";

type TestStack = auto.Stack & { configFile: string };

const base = (
  yaml.load(fs.readFileSync(path.join(ROOT, "Pulumi.local.yaml"), "utf8")) as {
    config: Record<string, unknown>;
  }
).config;
const baseApp = base["apphost:app"] as Record<string, unknown>;
const log = (s: string) => process.stdout.write(s);

const SANDBOX = { name: "apphost-h9", subnet: "10.82.0" };

describe("host configuration on the sandbox (real engine)", function () {
  let sandbox: Sandbox;
  let a: TestStack;
  let b: TestStack;
  let backend: string;

  before(async function () {
    // A sandbox of its own: the other spec files may run at the same time (.mocharc.e2e.json).
    sandbox = sandboxUp(SANDBOX);
    backend = freshBackend();
    a = await localStack(backend, { sandbox, stackName: "local" });
    // A second stack of the same app on the same host: its own hostname and ports.
    b = await localStack(backend, {
      sandbox,
      stackName: "local-b",
      config: {
        "apphost:dns": { provider: "none", hostnames: [{ name: "b.local.test" }] },
        "apphost:app": { ...baseApp, basePort: 8100 },
      },
    });
  });

  after(() => sandboxesDone(SANDBOX));

  /** A refused stack left nothing of its own on the host (its root, its claims), and stacks a and b serve on. */
  function assertRefusedWhole(id: string): void {
    assert.equal(onHost(`ls /srv/${id} /etc/apphost/${id}.* 2>/dev/null || true`).stdout, "");
    assert.equal(http(sandbox, "sample.local.test", "/healthz", "https").status, 200);
    assert.equal(http(sandbox, "b.local.test", "/healthz", "https").status, 200);
  }

  it("applies the host baseline: unattended upgrades, no SSH passwords, time sync", async function () {
    await a.up({ onOutput: log, configFile: a.configFile });
    assert.equal(
      onHost("sshd -T | grep -i '^passwordauthentication'").stdout.trim(),
      "passwordauthentication no",
    );
    assert.match(onHost("apt-config dump APT::Periodic::Unattended-Upgrade").stdout, /"1"/);
    assert.equal(onHost("systemctl is-enabled systemd-timesyncd").stdout.trim(), "enabled");
    assert.equal(
      onHost("dpkg-query -W -f='${Status}' caddy python3-venv sqlite3").stdout.includes("not-installed"),
      false,
    );
  });

  it("`pulumi preview --diff` (the plain CLI) shows a config change as the changed line of the file", async function () {
    const cfg = yaml.load(fs.readFileSync(a.configFile, "utf8")) as { config: Record<string, unknown> };
    cfg.config["apphost:proxy"] = { kind: "caddy", maxBodySize: "7m" };
    const changed = a.configFile.replace(/\.yaml$/, ".bigger.yaml");
    fs.writeFileSync(changed, yaml.dump(cfg));
    const site = onHost("ls /etc/caddy/apphost/*.caddy").stdout.trim().split("\n")[0];
    const before = onHost(`grep max_size ${site}`).stdout.trim();
    const preview = pulumiCli(["preview", "--stack", "local", "--diff", "--config-file", changed], {
      backendUrl: backend,
    });
    assert.equal(preview.code, 0, preview.stderr);
    // The file by its resource name and its host path (a HostFile's id), then the line as it was and as it will be.
    assert.match(
      preview.stdout,
      /~ pulumi-nodejs:dynamic\/apphost:HostFile: \(update\)[\s\S]*urn:pulumi:local::apphost::.*::app-site\]/,
    );
    assert.ok(preview.stdout.includes(`[id=${site}]`), `no [id=${site}] in:\n${preview.stdout}`);
    assert.equal(before, "max_size 25MiB");
    assert.match(preview.stdout, /-\s+max_size 25MiB\n\s*\+\s+max_size 7MiB\n/);
    assert.match(preview.stdout, /~ 1 to update/);
  });

  it("runs two stacks side by side, each with its own units, paths and site", async function () {
    await b.up({ onOutput: log, configFile: b.configFile });
    assert.equal(http(sandbox, "sample.local.test", "/healthz", "https").status, 200);
    assert.equal(http(sandbox, "b.local.test", "/healthz", "https").status, 200);
    // b's first release: on the second of its two web ports (choose_ports).
    assert.equal(onHost("cat /srv/sample-local-b/active-port").stdout.trim(), "8101");
    const aPort = onHost("cat /srv/sample-local/active-port").stdout.trim();
    const units = onHost(
      "systemctl list-units --plain --no-legend 'apphost-*' | awk '{print $1}' | sort",
    ).stdout;
    assert.match(units, new RegExp(`apphost-sample-local-web@${aPort}\\.service`));
    assert.match(units, /apphost-sample-local-b-web@8101\.service/);
  });

  it("refuses a process of stack a whose unit is stack b's (b's id starts with a's), before anything changes", async function () {
    // Stack a's worker renamed b-worker: its unit would be apphost-sample-local-b-worker.service, stack b's worker.
    const cfg = yaml.load(fs.readFileSync(a.configFile, "utf8")) as { config: Record<string, unknown> };
    const app = cfg.config["apphost:app"] as { processes: Record<string, unknown> };
    const { worker, ...others } = app.processes;
    app.processes = { ...others, "b-worker": worker };
    const clash = a.configFile.replace(/\.yaml$/, ".b-worker.yaml");
    fs.writeFileSync(clash, yaml.dump(cfg));
    const bWorker = "/etc/systemd/system/apphost-sample-local-b-worker.service";
    const before = onHost(`sha256sum ${bWorker}`).stdout;
    await assert.rejects(a.up({ configFile: clash }), (e: Error) => {
      assert.match(
        e.message,
        /apphost:app\.processes: this stack's systemd units are not all its own on this host:/,
      );
      assert.match(
        e.message,
        /- apphost-sample-local-b-worker\.service \(apphost:app\.processes\.b-worker\) is claimed by the stack sample-local-b on this host/,
      );
      return true;
    });
    assert.equal(onHost(`sha256sum ${bWorker}`).stdout, before);
    // Stack a's claim is still its worker's unit, not b-worker's.
    const claim = onHost("cat /etc/apphost/sample-local.units").stdout;
    assert.match(claim, /^apphost-sample-local-worker\.service$/m);
    assert.doesNotMatch(claim, /b-worker/);
    assert.match(onHost(`head -n 1 ${bWorker}`).stdout, /^# apphost sample-local-b: worker process\./);
    assert.equal(
      onHost("systemctl is-active apphost-sample-local-worker apphost-sample-local-b-worker").stdout,
      "active\nactive\n",
    );
    assert.equal(http(sandbox, "sample.local.test", "/healthz", "https").status, 200);
    assert.equal(http(sandbox, "b.local.test", "/healthz", "https").status, 200);
  });

  it("refuses a third stack on stack a's ports before anything of it exists, naming each port and a free base port", async function () {
    const c = await localStack(backend, {
      sandbox,
      stackName: "local-c",
      config: { "apphost:dns": { provider: "none", hostnames: [{ name: "c.local.test" }] } },
    });
    await assert.rejects(c.up({ configFile: c.configFile }), (e: Error) => {
      assert.match(
        e.message,
        /apphost:app\.basePort: this stack's ports 8000, 8001 \(web\) and 8002 \(upstream\) are not all free on this host:/,
      );
      for (const port of [8000, 8001, 8002])
        assert.match(e.message, new RegExp(`- ${port} is claimed by the stack sample-local on this host`));
      // Stack a's live instance: its gunicorn, in its own web unit.
      assert.match(
        e.message,
        /- 800[01] is listened on by gunicorn \(pid \d+, apphost-sample-local-web@800[01]\.service\)/,
      );
      // 8100-8102 are stack b's: the next free base port.
      assert.match(e.message, /pulumi config set --path 'apphost:app\.basePort' 8200/);
      return true;
    });
    assert.equal(onHost("id -u sample-local-c >/dev/null 2>&1 || echo none").stdout.trim(), "none");
    assert.equal(
      onHost("cat /etc/apphost/sample-local.ports /etc/apphost/sample-local-b.ports").stdout,
      "8000 8001 8002\n8100 8101 8102\n",
    );
    assertRefusedWhole("sample-local-c");
  });

  it("refuses an nginx stack on the host whose Caddy serves stacks a and b, before nginx is installed", async function () {
    const n = await localStack(backend, {
      sandbox,
      stackName: "local-n0",
      config: {
        "apphost:proxy": { kind: "nginx" },
        "apphost:tls": { mode: "off" },
        "apphost:dns": { provider: "none", hostnames: [{ name: "n0.local.test" }] },
        "apphost:app": { ...baseApp, basePort: 8300 },
      },
    });
    await assert.rejects(n.up({ configFile: n.configFile }), (e: Error) => {
      assert.ok(
        e.message.includes(
          "apphost baseline: apphost:proxy.kind is nginx, but caddy listens on port 80 of this host: a host " +
            "runs one proxy, which every apphost stack on it shares (the stacks here: sample-local-b sample-local); " +
            "set apphost:proxy.kind to caddy, or deploy this stack to another host; to move the host to nginx once " +
            "no stack uses caddy: systemctl disable --now caddy. Nothing was installed or changed.",
        ),
        e.message,
      );
      return true;
    });
    assert.equal(
      onHost("dpkg-query -W -f='${db:Status-Status}' nginx 2>/dev/null || echo none").stdout.trim(),
      "none",
    );
    assertRefusedWhole("sample-local-n0");
  });

  it("refuses a proxy config the host's validator rejects, and the old config keeps serving", async function () {
    // Stack b claims stack a's hostname too: Caddy refuses two sites with one address.
    const cfg = yaml.load(fs.readFileSync(b.configFile, "utf8")) as { config: Record<string, unknown> };
    cfg.config["apphost:dns"] = {
      provider: "none",
      hostnames: [{ name: "b.local.test" }, { name: "sample.local.test" }],
    };
    const clash = b.configFile.replace(/\.yaml$/, ".clash.yaml");
    fs.writeFileSync(clash, yaml.dump(cfg));
    const before = onHost("sha256sum /etc/caddy/apphost/sample-local-b.caddy").stdout;
    await assert.rejects(b.up({ configFile: clash }), (e: Error) => {
      assert.match(e.message, /was not installed: the validator refused it/);
      assert.match(e.message, /ambiguous site definition|sample\.local\.test/);
      return true;
    });
    assert.equal(onHost("sha256sum /etc/caddy/apphost/sample-local-b.caddy").stdout, before);
    assert.equal(http(sandbox, "sample.local.test", "/healthz", "https").status, 200);
    assert.equal(http(sandbox, "b.local.test", "/healthz", "https").status, 200);
  });

  it("destroying one stack leaves the other serving and its files and units untouched", async function () {
    // Stack a's id (sample-local) starts stack b's (sample-local-b): a's destroy names its own units, not
    // apphost-sample-local-*, which stopped and disabled b's too.
    const bState = () => ({
      files: onHost(
        "find /srv/sample-local-b /etc/caddy/apphost/sample-local-b.* -maxdepth 1 | sort | sha256sum",
      ).stdout,
      units: onHost(
        "systemctl list-units --all --plain --no-legend 'apphost-sample-local-b-*' | awk '{print $1, $3, $4}'",
      ).stdout,
      enabled: onHost(
        "systemctl list-unit-files --plain --no-legend 'apphost-sample-local-b-*' | awk '{print $1, $2}'",
      ).stdout,
    });
    const before = bState();
    assert.match(before.units, /^apphost-sample-local-b-web@810[01]\.service active running$/m);
    await a.destroy({ onOutput: log, configFile: a.configFile });
    assert.equal(onHost("ls -d /srv/sample-local 2>/dev/null || true").stdout.trim(), "");
    // Its ports and unit names are free again: only stack b's claims are left.
    assert.equal(
      onHost("ls /etc/apphost/*.ports /etc/apphost/*.units").stdout,
      "/etc/apphost/sample-local-b.ports\n/etc/apphost/sample-local-b.units\n",
    );
    assert.deepEqual(bState(), before);
    assert.equal(http(sandbox, "b.local.test", "/healthz", "https").status, 200);
  });

  it("serves through Nginx when apphost:proxy.kind is nginx", async function () {
    await b.destroy({ onOutput: log, configFile: b.configFile });
    const n = await localStack(freshBackend(), {
      sandbox,
      stackName: "local-nginx",
      config: {
        "apphost:proxy": { kind: "nginx" },
        "apphost:tls": { mode: "off" },
        "apphost:dns": { provider: "none", hostnames: [{ name: "n.local.test" }] },
        "apphost:app": { ...baseApp, basePort: 8200 },
      },
    });
    try {
      onHost("systemctl stop caddy");
      await n.up({ onOutput: log, configFile: n.configFile });
      const home = http(sandbox, "n.local.test", "/healthz", "http");
      assert.equal(home.status, 200, home.body);
      assert.match(onHost("nginx -T 2>/dev/null | grep -c 'apphost'").stdout.trim(), /^[1-9]/);
      // Server-Sent Events pass through unbuffered (the app sends X-Accel-Buffering: no).
      const events = await readEventStream(
        sandbox,
        "n.local.test",
        "/events?count=5&interval=0.8",
        "http",
        30,
      );
      assert.equal(String(events.headers["content-type"]).split(";")[0], "text/event-stream");
      log(`      nginx: ${assertSpreadOverTime(events, 5, 800)}\n`);
    } finally {
      await n.destroy({ onOutput: log, configFile: n.configFile }).catch(() => undefined);
      onHost("systemctl stop nginx; systemctl start caddy", { allowFailure: true });
    }
  });
});
