/**
 * apphost's program: one stack, one host, one graph.
 *
 *   config -> backup bucket + instance role (apphost:backups.s3) -> host (ec2 | existing)
 *          -> DNS records (follow the host's address)
 *          -> TLS (origin certificate) -> shared host setup -> the app and its release
 *
 * Everything is validated before the first resource is declared.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { App } from "./components/app";
import { BackupBucket } from "./components/backups";
import { loadStackConfig } from "./components/config";
import { Database } from "./components/database";
import { Dns } from "./components/dns";
import { Host } from "./components/host";
import { Server } from "./components/server";
import { OriginCertificate } from "./components/tls";

export async function program(): Promise<Record<string, unknown>> {
  const { config, sshPrivateKey, secretEnv, jumpPrivateKey } = loadStackConfig();

  // apphost:backups.s3 (ec2 only): the bucket, and the role the instance copies backups with.
  const backups = BackupBucket.forStack("backups", config);
  const host = new Host("host", {
    config,
    sshPrivateKey,
    jumpPrivateKey,
    instanceProfile: backups?.instanceProfileName,
  });
  const dns = new Dns("dns", { config, publicIp: host.publicIp, ipv6Address: host.ipv6Address });
  const origin =
    config.tls.mode === "cloudflare-origin"
      ? new OriginCertificate("tls", { config, zoneId: dns.zoneId })
      : undefined;

  // The app's SECRET_KEY unless the stack sets one: generated once, kept encrypted in the state.
  // Letters and digits only: 50 of them carry ~297 bits, and no quoting can break.
  const secretKey = new random.RandomPassword("secret-key", { length: 50, special: false });
  const env = pulumi
    .all([secretEnv, secretKey.result])
    .apply(([given, generated]) => ({ SECRET_KEY: generated, ...given }));

  const server = new Server("server", { config, connection: host.connection }, { dependsOn: [host] });
  // apphost:database.kind postgres: the role and database on the host, and their URL.
  const database = Database.forStack("database", {
    config,
    connection: host.connection,
    dependsOn: server.ready,
    network: host.network,
  });
  const app = new App("app", {
    config,
    connection: host.connection,
    secretEnv: pulumi.secret(env),
    databaseUrl: database?.url,
    originCertificate: origin,
    backupTarget: backups?.target,
    dependsOn: [...server.ready, ...(database?.ready ?? [])],
    projectDir: path.resolve(__dirname),
  });
  // Cloudflare verifies the origin only once the host serves the new certificate.
  origin?.requireStrictSsl([app]);

  return {
    url: app.url,
    publicIp: host.publicIp,
    releaseId: app.releaseId,
    liveRelease: app.liveRelease,
    releasePhases: app.releasePhases,
    hostId: app.layout.id,
    // Where the backups are copied to; absent unless apphost:backups.s3.
    ...(backups ? { backupBucket: backups.bucketName } : {}),
    // For `npm run doctor` and `npm run releases`: how to reach the host. Secret.
    connection: host.connection,
  };
}
