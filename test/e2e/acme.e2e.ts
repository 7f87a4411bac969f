/**
 * Real ACME issuance on the sandbox, against Pebble (test/e2e/pebble.ts):
 * `tls.mode: caddy-acme` with Caddy and `tls.mode: certbot` with Nginx each
 * get their certificate through real HTTP-01 validation, serve Pebble's chain,
 * put a hostname added to `dns.hostnames` on a served certificate after one
 * `up`, and (certbot) serve a forced renewal without a failed request.
 */
import { strict as assert } from "assert";
import type * as auto from "@pulumi/pulumi/automation";
import * as fs from "fs";
import * as yaml from "js-yaml";
import { describeLoad, startLoad } from "./release-lib";
import { freshBackend, localStack, onHost, sandboxesDone, sandboxUp, type Sandbox } from "./lib";
import { served, servedByPebble, startPebble, type Pebble, verifiedGet } from "./pebble";

const log = (s: string) => process.stdout.write(s);

const SANDBOX = { name: "apphost-h8", subnet: "10.81.0" };

describe("real ACME certificates from Pebble on the sandbox (real engine)", function () {
  let sandbox: Sandbox;
  let pebble: Pebble;
  let backend: string;

  before(async function () {
    // A sandbox of its own: the other spec files may run at the same time (.mocharc.e2e.json).
    sandbox = sandboxUp(SANDBOX);
    backend = freshBackend();
    // This machine's side of the sandbox's link: <subnet>.1.
    pebble = await startPebble(sandbox.host.replace(/\.\d+$/, ".1"), sandbox.host);
  });
  after(() => {
    pebble?.stop();
    sandboxesDone(SANDBOX);
  });

  function acmeStack(stackName: string, proxy: "caddy" | "nginx", hostnames: string[]) {
    return localStack(backend, {
      stackName,
      sandbox,
      config: {
        "apphost:dns": { provider: "none", hostnames: hostnames.map((name) => ({ name })) },
        "apphost:proxy": { kind: proxy },
        "apphost:tls": {
          mode: proxy === "caddy" ? "caddy-acme" : "certbot",
          email: "ops@example.com",
          acmeDirectory: pebble.directory,
          acmeCaRoot: pebble.listenerRoot,
        },
      },
    });
  }

  /** Adds a hostname to the stack's config file. */
  function addHostname(stack: auto.Stack & { configFile: string }, name: string): void {
    const cfg = yaml.load(fs.readFileSync(stack.configFile, "utf8")) as {
      config: { "apphost:dns": { hostnames: { name: string }[] } };
    };
    cfg.config["apphost:dns"].hostnames.push({ name });
    fs.writeFileSync(stack.configFile, yaml.dump(cfg));
  }

  describe("tls.mode caddy-acme with Caddy", function () {
    let stack: auto.Stack & { configFile: string };
    before(async function () {
      stack = await acmeStack("local-acme", "caddy", ["acme.local.test"]);
    });
    after(async () => {
      await stack?.destroy({ onOutput: log, configFile: stack.configFile });
    });

    it("gets its certificate from Pebble through HTTP-01 and serves it with Pebble's chain", async function () {
      await stack.up({ onOutput: log, configFile: stack.configFile });
      const cert = await servedByPebble(sandbox, "acme.local.test");
      assert.match(cert.issuer, /Pebble Intermediate CA/);
      const health = verifiedGet(sandbox, pebble, "acme.local.test", "/healthz");
      assert.equal(health.code, 0, health.body);
      assert.match(health.body, /"status":"ok"/);
    });

    it("a hostname added to dns.hostnames is on a served certificate after one `up`", async function () {
      addHostname(stack, "www.acme.local.test");
      await stack.up({ onOutput: log, configFile: stack.configFile });
      const cert = await servedByPebble(sandbox, "www.acme.local.test");
      assert.match(cert.issuer, /Pebble/);
      assert.equal(verifiedGet(sandbox, pebble, "www.acme.local.test", "/healthz").code, 0);
    });
  });

  describe("tls.mode certbot with Nginx", function () {
    let stack: auto.Stack & { configFile: string };
    before(async function () {
      stack = await acmeStack("local-certbot", "nginx", ["certbot.local.test"]);
    });
    after(async () => {
      await stack?.destroy({ onOutput: log, configFile: stack.configFile });
    });

    it("certbot gets the certificate from Pebble through HTTP-01; Nginx serves it with Pebble's chain", async function () {
      await stack.up({ onOutput: log, configFile: stack.configFile });
      const cert = served(sandbox, "certbot.local.test");
      assert.ok(cert, "nothing served on 443");
      assert.match(cert.issuer, /Pebble Intermediate CA/);
      assert.deepEqual(cert.names, ["certbot.local.test"]);
      const health = verifiedGet(sandbox, pebble, "certbot.local.test", "/healthz");
      assert.equal(health.code, 0, health.body);
      // Renewal goes to the same server: certbot kept it in the renewal config.
      assert.match(
        onHost("cat /etc/letsencrypt/renewal/certbot.local.test.conf").stdout,
        new RegExp(`server = ${pebble.directory}`),
      );
    });

    it("a hostname added to dns.hostnames expands the certificate after one `up`", async function () {
      addHostname(stack, "www.certbot.local.test");
      await stack.up({ onOutput: log, configFile: stack.configFile });
      const cert = served(sandbox, "www.certbot.local.test");
      assert.ok(cert);
      assert.deepEqual(cert.names.sort(), ["certbot.local.test", "www.certbot.local.test"]);
      assert.equal(verifiedGet(sandbox, pebble, "www.certbot.local.test", "/healthz").code, 0);
    });

    it("a forced renewal through certbot's service is served without a failed request", async function () {
      const before = served(sandbox, "certbot.local.test")!;
      const load = startLoad(sandbox, {
        hostname: "certbot.local.test",
        paths: ["/healthz", "/"],
        keepAliveClients: 1,
        freshClients: 2,
        maxRequests: 3000,
        maxSeconds: 60,
        ca: pebble.issuerRoot,
      });
      await new Promise((r) => setTimeout(r, 2000));
      // certbot.timer's service, with --force-renewal added for this one run.
      onHost(
        "systemd-run --wait --collect --unit=apphost-test-renew --property=Type=oneshot " +
          "/usr/bin/certbot -q renew --force-renewal --no-random-sleep-on-renew",
      );
      await new Promise((r) => setTimeout(r, 2000));
      const result = await load.stop();
      const after = served(sandbox, "certbot.local.test")!;
      assert.notEqual(after.serial, before.serial, "the renewed certificate is not served");
      assert.match(after.issuer, /Pebble/);
      log(`\n      renewal under load: ${describeLoad(result)}\n`);
      assert.ok(result.requests > 20, describeLoad(result));
      assert.equal(result.failed, 0, result.failures.join("\n"));
    });
  });
});
