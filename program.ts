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
import { generatedPassword } from "./components/computed";
import { App, lockOwner, secretValues, type AppArgs } from "./components/app";
import { stackArtifact } from "./components/release/cache";
import { Balancer, BALANCER_PACKAGES } from "./components/balancer";
import { BackupBucket, type BackupBucketArgs } from "./components/backups";
import { loadStackConfig, type LoadedStackConfig, type StackConfig } from "./components/config";
import { processesOn } from "./components/config/defaults";
import type { ExistingHostConfig, HostConfig } from "./components/config/types";
import { maintenanceFiles } from "./components/paths";
import { Rollout, type RolloutBalancer } from "./components/remote/rollout";
import type { S3Target } from "./components/release/backup";
import { Database, type DatabaseArgs } from "./components/database";
import { Dns, recordOwner } from "./components/dns";
import { Host, stackIdentity, type HostArgs } from "./components/host";
import { LoadBalancer, type LoadBalancerArgs } from "./components/loadbalancer";
import { hostNeedsOpenSsh } from "./components/remote/command";
import { runtimePackages } from "./components/render/baseline";
import { Server, type ServerArgs } from "./components/server";
import { OriginCertificate } from "./components/tls";

/** apphost:app.source and apphost:app.maintenancePage are relative to the project. */
const PROJECT_DIR = path.resolve(__dirname);

export async function program(): Promise<Record<string, unknown>> {
  const loaded = loadStackConfig(path.resolve(__dirname));
  if (loaded.config.lb) return behindBalancer(loaded);
  if (loaded.config.host.kind === "ec2" && loaded.config.host.count > 1) return behindLoadBalancer(loaded);
  const { config, sshPrivateKey, secretEnv, jumpPrivateKey, alertWebhook, databaseUrl } = loaded;

  // apphost:backups.s3 (ec2 only): the bucket, and the role the instance copies backups with.
  const backups = BackupBucket.forStack("backups", backupBucketArgs(config));
  const host = new Host("host", {
    ...hostArgs(config),
    sshPrivateKey,
    jumpPrivateKey,
    instanceProfile: backups?.instanceProfileName,
  });
  const dns = new Dns("dns", {
    dns: config.dns,
    owner: recordOwner(config),
    publicIp: host.publicIp,
    ipv6Address: host.ipv6Address,
  });
  const origin =
    config.tls.mode === "cloudflare-origin"
      ? new OriginCertificate("tls", {
          hostnames: dns.hostnames,
          validityDays: config.tls.originValidityDays,
          renewBeforeDays: config.tls.renewBeforeDays,
          zoneId: dns.zoneId,
        })
      : undefined;

  // The app's SECRET_KEY unless the stack sets one: generated once, kept encrypted in the state.
  // Letters and digits only: 50 of them carry ~297 bits, and no quoting can break.
  const env = appSecrets(secretEnv);

  const { server, database } = serverAndDatabase(config, host, databaseUrl);
  const app = new App(
    "app",
    {
      ...appArgs(config),
      connection: host.connection,
      secretEnv: pulumi.secret(env),
      databaseUrl: database?.url,
      originCertificate: origin,
      backupTarget: backups?.target,
      alertWebhook,
      projectDir: PROJECT_DIR,
      artifact: stackArtifact(config.app, PROJECT_DIR),
    },
    { dependsOn: [...server.ready, ...(database?.ready ?? [])] },
  );
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

/**
 * The shared host setup and the stack's Database, in their order: for postgres and rds first the check that
 * refuses a switch from SQLite while its data would stay behind (Database.sqliteCheck), then the server's setup
 * (the baseline would install Postgres), then the Database (its role, or its RDS instance) on the set-up host.
 */
export function serverAndDatabase(
  config: StackConfig,
  host: Pick<Host, "connection" | "network"> & pulumi.Resource,
  databaseUrl?: pulumi.Input<string>,
): { server: Server; database: Database | undefined } {
  const sqliteCheck = Database.sqliteCheck(
    "database-sqlite-check",
    { ...databaseArgs(config), connection: host.connection },
    { dependsOn: [host] },
  );
  const server = new Server(
    "server",
    { ...serverArgs(config), connection: host.connection },
    { dependsOn: [host, ...(sqliteCheck ? [sqliteCheck] : [])] },
  );
  // apphost:database.kind postgres: the role and database on the host, and their URL.
  const database = Database.forStack(
    "database",
    { ...databaseArgs(config), connection: host.connection, network: host.network, externalUrl: databaseUrl },
    { dependsOn: server.ready },
  );
  return { server, database };
}

/**
 * The app's SECRET_KEY unless the stack sets one: generated once, kept encrypted in the state.
 * Letters and digits only: 50 of them carry ~297 bits, and no quoting can break.
 */
function appSecrets(secretEnv: pulumi.Output<Record<string, string>>): pulumi.Output<Record<string, string>> {
  const secretKey = generatedPassword("secret-key", 50);
  return pulumi
    .all([secretEnv, secretKey])
    .apply(([given, generated]): Record<string, string> => ({ SECRET_KEY: generated, ...given }));
}

/** App's args from the stack's config: the sections it renders from, its hostnames, the SSH route. */
function appArgs(
  config: StackConfig,
): Pick<
  AppArgs,
  "stack" | "app" | "hostnames" | "tls" | "proxy" | "database" | "backups" | "releases" | "openSshOnly"
> {
  const { stack, app, tls, proxy, database, backups, releases } = config;
  const hostnames = config.dns.hostnames.map((h) => h.name);
  const openSshOnly = hostNeedsOpenSsh(config.host);
  return { stack, app, hostnames, tls, proxy, database, backups, releases, openSshOnly };
}

/** BackupBucket's args from the stack's config: whose backups, apphost:backups, the host's kind. */
function backupBucketArgs(config: StackConfig): BackupBucketArgs {
  return { identity: stackIdentity(config), backups: config.backups, hostKind: config.host.kind };
}

/** Database's args from the stack's config: whose database, apphost:database, the SSH route. */
function databaseArgs(config: StackConfig): Pick<DatabaseArgs, "identity" | "database" | "openSshOnly"> {
  return {
    identity: stackIdentity(config),
    database: config.database,
    openSshOnly: hostNeedsOpenSsh(config.host),
  };
}

/**
 * Host's args from the stack's config: whose host, apphost:host (or one host
 * of it, `host`), the web ports and apphost:dns.ipv6.
 */
function hostArgs(
  config: StackConfig,
  host: HostConfig = config.host,
): Pick<HostArgs, "identity" | "host" | "webPorts" | "ipv6"> {
  return {
    identity: stackIdentity(config),
    host,
    webPorts: config.proxy,
    ipv6: config.dns.ipv6,
  };
}

/** Server's args on an app host of the stack: the proxy, the packages the stack needs, swap, the SSH route. */
function serverArgs(config: StackConfig): Omit<ServerArgs, "connection"> {
  return {
    proxy: config.proxy,
    tlsOff: config.tls.mode === "off",
    packages: runtimePackages(config),
    swapMb: config.host.swapMb,
    openSshOnly: hostNeedsOpenSsh(config.host),
  };
}

/**
 * LoadBalancer's args from the stack's config: whose load balancer, the
 * hostnames, the instances' port, health path and drain time.
 */
function loadBalancerArgs(
  config: StackConfig,
): Pick<LoadBalancerArgs, "identity" | "hostnames" | "targetPort" | "healthPath" | "drainSeconds"> {
  return {
    identity: stackIdentity(config),
    hostnames: config.dns.hostnames,
    targetPort: config.proxy.httpPort,
    healthPath: config.app.healthPath,
    drainSeconds: config.releases.drainSeconds,
  };
}

/** apphost:host as one of its hosts sees it: that host's address and key. */
function onHost(
  host: ExistingHostConfig,
  address: { address: string; hostKey?: string },
): ExistingHostConfig {
  const one = { ...host, address: address.address, addresses: [address] };
  delete one.hostKey;
  if (address.hostKey) one.hostKey = address.hostKey;
  return one;
}

/**
 * apphost:host.addresses behind apphost:lb: every app host gets the same
 * setup, env file and secrets; the balancer host runs Caddy in front of them;
 * one Rollout releases host by host (the first migrates, once), and the
 * balancer lists a host once the release reached it.
 *
 *   config -> balancer host (Caddy) -> DNS (the balancer's address)
 *          -> app host 1..N (setup, app) -> rolling release -> the balancer's host list
 */
async function behindBalancer(loaded: LoadedStackConfig): Promise<Record<string, unknown>> {
  const { config, sshPrivateKey, secretEnv, jumpPrivateKey, databaseUrl } = loaded;
  const lb = config.lb!;
  if (config.host.kind !== "existing") throw new Error("apphost:lb needs apphost:host.kind existing");
  const appHosts = config.host;

  const lbAddress = { address: lb.address, ...(lb.hostKey ? { hostKey: lb.hostKey } : {}) };
  const lbHostConfig = { ...onHost(appHosts, lbAddress), user: lb.user, port: lb.port };
  const lbHost = new Host("lb-host", { ...hostArgs(config, lbHostConfig), sshPrivateKey, jumpPrivateKey });
  // Caddy and nothing of the app; no swap.
  const lbServer = new Server(
    "lb-server",
    {
      connection: lbHost.connection,
      proxy: config.proxy,
      packages: BALANCER_PACKAGES,
      openSshOnly: hostNeedsOpenSsh(lbHostConfig),
    },
    { dependsOn: [lbHost] },
  );
  const addresses = appHosts.addresses;
  const balancer = new Balancer(
    "lb",
    {
      identity: stackIdentity(config),
      connection: lbHost.connection,
      upstreams: addresses.map((a) => a.address),
      upstreamPort: config.proxy.httpPort,
      hostnames: config.dns.hostnames.map((h) => h.name),
      tls: config.tls,
      healthPath: config.app.healthPath,
      healthIntervalSeconds: lb.healthIntervalSeconds,
    },
    { dependsOn: lbServer.ready },
  );
  const dns = new Dns("dns", {
    dns: config.dns,
    owner: recordOwner(config),
    publicIp: lbHost.publicIp,
    ipv6Address: lbHost.ipv6Address,
  });
  void dns;

  const env = appSecrets(secretEnv);
  const hosts = addresses.map((address, i) => {
    const suffix = i === 0 ? "" : String(i + 1);
    const host = new Host(`host${suffix}`, {
      ...hostArgs(config, onHost(appHosts, address)),
      sshPrivateKey,
      jumpPrivateKey,
    });
    const server = new Server(
      `server${suffix}`,
      { ...serverArgs(config), connection: host.connection },
      { dependsOn: [host] },
    );
    return { name: `app${suffix}`, address: address.address, host, server };
  });
  // external (or none): nothing on any host; its URL goes into every env file.
  const database = Database.forStack(
    "database",
    {
      ...databaseArgs(config),
      connection: hosts[0].host.connection,
      externalUrl: databaseUrl,
    },
    { dependsOn: hosts[0].server.ready },
  );
  const { rollout, outputs } = rollOut(loaded, {
    hosts: hosts.map((h) => ({ ...h, upstream: h.address })),
    env,
    database,
    balancer: { address: lb.privateAddress },
    rolloutBalancer: lbHost.connection.apply((connection) => ({
      connection,
      script: balancer.layout.script,
      drainSeconds: config.releases.drainSeconds,
      healthTimeoutSeconds: config.releases.healthTimeoutSeconds,
      healthIntervalSeconds: lb.healthIntervalSeconds,
    })),
    after: balancer.ready,
  });
  balancer.listUpstreams([rollout]);
  return {
    ...outputs,
    publicIp: lbHost.publicIp,
    balancer: pulumi.secret(
      lbHost.connection.apply((connection) => ({ connection, script: balancer.layout.script })),
    ),
  };
}

/**
 * apphost:host.count > 1 on ec2: the instances behind an Application Load
 * Balancer, spread over the subnets of two availability zones at least, the
 * database on none of them (RDS, or external). One Rollout releases them one
 * by one (the first migrates, once); an instance joins the target group once
 * the release reached it.
 *
 *   config -> network (VPC, subnets) -> load balancer (ACM, Cloudflare records)
 *          -> instances 1..N (HTTP from the load balancer only) -> database
 *          -> setup, app on each -> rolling release -> target group attachments
 */
async function behindLoadBalancer(loaded: LoadedStackConfig): Promise<Record<string, unknown>> {
  const { config, sshPrivateKey, secretEnv, jumpPrivateKey, databaseUrl } = loaded;
  if (config.host.kind !== "ec2") throw new Error("apphost:host.count > 1 needs apphost:host.kind ec2");
  const ec2 = config.host;
  const aws = require("@pulumi/aws") as typeof import("@pulumi/aws");

  // Two availability zones at least: the given subnets, else the default VPC's default subnet of each zone.
  const vpcId = ec2.subnetIds
    ? aws.ec2.getSubnetOutput({ id: ec2.subnetIds[0] }).vpcId
    : aws.ec2.getVpcOutput({ default: true }).id;
  const subnetIds = ec2.subnetIds
    ? pulumi.output(ec2.subnetIds)
    : aws.ec2
        .getSubnetsOutput({
          filters: [
            { name: "vpc-id", values: [vpcId] },
            { name: "default-for-az", values: ["true"] },
          ],
        })
        .ids.apply((ids) => [...ids].sort());
  const backups = BackupBucket.forStack("backups", backupBucketArgs(config));
  const dns = new Dns("dns", {
    dns: { ...config.dns, hostnames: [] },
    owner: recordOwner(config),
    publicIp: "",
  });
  const lb = new LoadBalancer("alb", { ...loadBalancerArgs(config), vpcId, subnetIds, zoneId: dns.zoneId });

  const env = appSecrets(secretEnv);
  const hosts = Array.from({ length: ec2.count }, (_, i) => {
    const suffix = i === 0 ? "" : String(i + 1);
    const host = new Host(`host${suffix}`, {
      ...hostArgs(config),
      sshPrivateKey,
      jumpPrivateKey,
      instanceProfile: backups?.instanceProfileName,
      behindLoadBalancer: {
        vpcId,
        subnetId: subnetIds.apply((ids) => {
          if (ids.length < 2) {
            throw new Error(
              `apphost:host.count ${ec2.count}: the load balancer needs subnets in two availability zones, and the VPC has ${ids.length}; list them in apphost:host.subnetIds`,
            );
          }
          return ids[i % ids.length];
        }),
        securityGroupId: lb.securityGroupId,
      },
    });
    const server = new Server(
      `server${suffix}`,
      { ...serverArgs(config), connection: host.connection },
      { dependsOn: [host] },
    );
    return { name: `app${suffix}`, host, server };
  });
  // RDS admits every instance's security group; external is given.
  const database = Database.forStack(
    "database",
    {
      ...databaseArgs(config),
      connection: hosts[0].host.connection,
      network: hosts[0].host.network,
      extraSecurityGroupIds: hosts.slice(1).map((h) => h.host.network!.securityGroupId),
      externalUrl: databaseUrl,
    },
    { dependsOn: hosts[0].server.ready },
  );
  const { rollout, outputs } = rollOut(loaded, {
    hosts: hosts.map((h) => ({ ...h, upstream: h.host.publicIp })),
    env,
    database,
    backupTarget: backups?.target,
    balancer: {},
    after: [],
  });
  hosts.forEach((h) =>
    lb.attach(
      h.name,
      h.host.instanceId.apply((id) => id ?? ""),
      [rollout],
    ),
  );
  return {
    ...outputs,
    publicIp: lb.dnsName,
    ...(backups ? { backupBucket: backups.bucketName } : {}),
  };
}

/**
 * Several app hosts, either balancer: the same app on each (the first one
 * primary: it backs up, migrates and runs the scheduled jobs), one Rollout
 * across them, and the outputs the day-2 commands read (every host's
 * connection, secret).
 */
function rollOut(
  loaded: LoadedStackConfig,
  opts: {
    hosts: {
      name: string;
      host: Host;
      server: Server;
      upstream: pulumi.Input<string>;
    }[];
    env: pulumi.Output<Record<string, string>>;
    database?: Database;
    backupTarget?: pulumi.Input<S3Target>;
    /** What each host's proxy admits (App.balancer) */
    balancer: { address?: string };
    /** apphost:lb's balancer host, drained around each host; none behind the EC2 load balancer */
    rolloutBalancer?: pulumi.Output<RolloutBalancer>;
    /** What the roll waits for besides the apps */
    after: pulumi.Resource[];
  },
): { apps: App[]; rollout: Rollout; outputs: Record<string, unknown> } {
  const { config, alertWebhook } = loaded;
  const { hosts, env, database } = opts;
  const artifact = stackArtifact(config.app, PROJECT_DIR);
  const apps = hosts.map(
    (h, i) =>
      new App(
        h.name,
        {
          ...appArgs(config),
          // A follower leaves the processes kept to the first app host (hosts: first) out.
          app: {
            ...config.app,
            processes: processesOn(config.app.processes, i === 0 ? "primary" : "follower"),
          },
          connection: h.host.connection,
          secretEnv: pulumi.secret(env),
          databaseUrl: database?.url,
          ...(opts.backupTarget ? { backupTarget: opts.backupTarget } : {}),
          alertWebhook,
          projectDir: PROJECT_DIR,
          role: i === 0 ? "primary" : "follower",
          balancer: opts.balancer,
          rolledOut: true,
        },
        { dependsOn: [...h.server.ready, ...(database?.ready ?? [])] },
      ),
  );
  const rollout = new Rollout(
    "release",
    {
      // One Output of plain values: secrets nested inside a list reach a dynamic provider still wrapped.
      hosts: pulumi.all(
        apps.map((app, i) =>
          pulumi
            .all([hosts[i].host.connection, app.rolloutTarget!.configHash, hosts[i].upstream])
            .apply(([connection, configHash, address]) => ({
              name: hosts[i].name,
              connection,
              script: app.rolloutTarget!.script,
              configHash,
              upstream: `${address}:${config.proxy.httpPort}`,
              ...(opts.rolloutBalancer ? { drainFile: maintenanceFiles(app.layout).drain } : {}),
            })),
        ),
      ),
      ...(opts.rolloutBalancer ? { balancer: opts.rolloutBalancer } : {}),
      artifact: artifact.path,
      contentHash: artifact.contentHash,
      requirementsHash: artifact.requirementsHash,
      rollbackTo: config.releases.rollbackTo,
      lockOwner: lockOwner(),
      batchSize: config.releases.batchSize,
      build: !!config.app.build,
      redactions: pulumi.secret(pulumi.all([env, database?.url]).apply(([e, url]) => secretValues(e, url))),
    },
    { dependsOn: [...apps.flatMap((a) => a.rolloutTarget!.after), ...opts.after] },
  );
  apps[0].scheduleAfter([rollout]);
  return {
    apps,
    rollout,
    outputs: {
      url: apps[0].url,
      releaseId: rollout.releaseId,
      liveRelease: rollout.live.apply((l) => l?.[0]?.live ?? "none"),
      hostsLive: rollout.live,
      releasePhases: rollout.phaseSeconds,
      hostId: apps[0].layout.id,
      // For `npm run doctor`, `releases`, `logs`, `exec`: the first app host, and every app host. Secret.
      connection: hosts[0].host.connection,
      hosts: pulumi.secret(
        pulumi
          .all(hosts.map((h) => h.host.connection))
          .apply((conns) => conns.map((connection, i) => ({ name: hosts[i].name, connection }))),
      ),
    },
  };
}
