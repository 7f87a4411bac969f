/**
 * App wiring of apphost:backups.s3 under the shared mocks: the bucket the
 * program hands to App reaches the release script, and the backup unit gets
 * the network only then. (The script and the unit themselves are tested in
 * release.*.test.ts and render.systemd.test.ts.)
 */
import { resetRecords, resources, settled, valueOf } from "./mocks"; // first: sets the mocks
import * as assert from "assert/strict";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { App } from "../../components/app";
import type { S3Target } from "../../components/release/backup";
import { appArgs, stackConfig, useTempArtifactCache } from "./fixtures";
import { stackArtifact } from "../../components/release/cache";

/** The sample app's artifact, as the program builds it before the components. */
const sampleArtifact = () => stackArtifact(stackConfig({ "app.source": "examples/sample-app" }).app, ROOT);

const HOST_FILE = "pulumi-nodejs:dynamic/apphost:HostFile";
const ROOT = path.join(__dirname, "..", "..");

describe("App with apphost:backups.s3", function () {
  this.timeout(60000);
  useTempArtifactCache("apphost-app-test-");
  beforeEach(resetRecords);

  async function app(name: string, keys: Record<string, unknown>, backupTarget?: pulumi.Input<S3Target>) {
    const a = new App(name, {
      ...appArgs(stackConfig({ "app.source": "examples/sample-app", ...keys })),
      connection: pulumi.secret({ host: "198.51.100.10", port: 22, user: "admin", privateKey: "k" }),
      secretEnv: pulumi.secret({}),
      backupTarget,
      projectDir: ROOT,
      artifact: sampleArtifact(),
    });
    await settled(a);
    await valueOf(a.releaseId!);
    return a;
  }

  const file = (name: string) => {
    const found = resources.filter((r) => r.type === HOST_FILE && r.name === name);
    assert.equal(found.length, 1, name);
    return found[0].inputs.content as string;
  };

  it("the release script copies to the bucket, and the backup unit has the network", async () => {
    await app(
      "s3app",
      { "backups.s3": true },
      pulumi.output({
        bucket: "apphost-staging-20250101abcdef",
        region: "eu-central-1",
        prefix: "apphost/staging/",
      }),
    );
    const script = file("s3app-release-script");
    assert.ok(script.includes("\ndb_copy_offsite() {\n"));
    assert.ok(
      script.includes('url=s3://apphost-staging-20250101abcdef/apphost/staging/"$(basename "$file")"'),
    );
    assert.ok(script.includes(" aws s3 cp --region eu-central-1 --sse AES256 "));
    const unit = file("s3app-unit-backup");
    assert.ok(unit.includes("\nRestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n"));
    assert.ok(!unit.includes("PrivateNetwork=true"));
  });

  it("without a bucket: no copy in the script, and the backup unit stays off the network", async () => {
    await app("plain", {});
    assert.ok(!file("plain-release-script").includes("aws "));
    const unit = file("plain-unit-backup");
    assert.ok(unit.includes("\nPrivateNetwork=true\nRestrictAddressFamilies=AF_UNIX\n"));
  });
});
