/**
 * The origin certificate on the host: a renewal (a new certificate, the key
 * kept or new) must reach the proxy, so the key file, written after the
 * certificate, validates the proxy's configuration and reloads it, and its
 * reload command changes with the certificate.
 */
import { resetRecords, resources, settled, valueOf } from "./mocks"; // first: sets the mocks
import * as assert from "assert/strict";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { App } from "../../components/app";
import { proxyCommands } from "../../components/render/common";
import { appArgs, stackConfig, useTempArtifactCache } from "./fixtures";
import { stackArtifact } from "../../components/release/cache";

/** The sample app's artifact, as the program builds it before the components. */
const sampleArtifact = () => stackArtifact(stackConfig({ "app.source": "examples/sample-app" }).app, ROOT);

const HOST_FILE = "pulumi-nodejs:dynamic/apphost:HostFile";
const ROOT = path.join(__dirname, "..", "..");

describe("App with a Cloudflare origin certificate", function () {
  this.timeout(60000);
  useTempArtifactCache("apphost-cert-test-");
  beforeEach(resetRecords);

  async function app(name: string, proxy: "caddy" | "nginx", certificatePem: string) {
    const a = new App(name, {
      ...appArgs(
        stackConfig({
          "app.source": "examples/sample-app",
          "tls.mode": "cloudflare-origin",
          "proxy.kind": proxy,
        }),
      ),
      connection: pulumi.secret({ host: "198.51.100.10", port: 22, user: "admin", privateKey: "k" }),
      secretEnv: pulumi.secret({}),
      originCertificate: { certificatePem, privateKeyPem: pulumi.secret("-----BEGIN PRIVATE KEY-----\nk\n") },
      projectDir: ROOT,
      artifact: sampleArtifact(),
    });
    await settled(a);
    await valueOf(a.releaseId!);
    const files = resources.filter((r) => r.type === HOST_FILE);
    const byName = (n: string) => {
      const found = files.filter((r) => r.name === `${name}-${n}`);
      assert.equal(found.length, 1, n);
      return found[0].inputs;
    };
    return { cert: byName("origin-cert"), key: byName("origin-key") };
  }

  for (const proxy of ["caddy", "nginx"] as const) {
    it(`${proxy}: the key file validates and reloads the proxy; the certificate file alone does not`, async () => {
      const { cert, key } = await app(`o-${proxy}`, proxy, "-----BEGIN CERTIFICATE-----\nfirst\n");
      const cmd = proxyCommands(proxy);
      assert.equal(cert.reload, undefined);
      assert.equal(cert.validate, undefined);
      assert.equal(key.validate, cmd.validate);
      assert.match(
        String(key.reload),
        new RegExp(
          `^${cmd.reload.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} # certificate sha256 [0-9a-f]{64}$`,
        ),
      );
    });
  }

  it("a renewed certificate changes the key file's reload, so the update reloads the proxy", async () => {
    const first = await app("r1", "caddy", "-----BEGIN CERTIFICATE-----\nfirst\n");
    resetRecords();
    const renewed = await app("r1", "caddy", "-----BEGIN CERTIFICATE-----\nrenewed\n");
    assert.deepEqual(renewed.key.content, first.key.content, "the same key");
    assert.notEqual(renewed.key.reload, first.key.reload);
  });

  it("apphost:tls.acmeCaRoot goes into the host's trust store before the site and certbot", async () => {
    const root = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    const a = new App("acme", {
      ...appArgs(
        stackConfig({
          "app.source": "examples/sample-app",
          "tls.mode": "certbot",
          "tls.email": "ops@example.com",
          "tls.acmeDirectory": "https://ca.internal:9000/acme/acme/directory",
          "tls.acmeCaRoot": root,
          "proxy.kind": "nginx",
        }),
      ),
      connection: pulumi.secret({ host: "198.51.100.10", port: 22, user: "admin", privateKey: "k" }),
      secretEnv: pulumi.secret({}),
      projectDir: ROOT,
      artifact: sampleArtifact(),
    });
    await settled(a);
    await valueOf(a.releaseId!);
    const file = resources.filter((r) => r.type === HOST_FILE && r.name === "acme-acme-ca-root");
    assert.equal(file.length, 1);
    assert.equal(file[0].inputs.path, "/usr/local/share/ca-certificates/apphost-apphost-staging-acme.crt");
    assert.equal(file[0].inputs.content, `${root}\n`);
    assert.equal(file[0].inputs.reload, "update-ca-certificates >/dev/null");
    const certbot = resources.filter((r) => r.type === "command:remote:Command" && r.name === "acme-certbot");
    assert.equal(certbot.length, 1);
    assert.match(
      String(certbot[0].inputs.stdin),
      /--server https:\/\/ca\.internal:9000\/acme\/acme\/directory/,
    );
  });
});
