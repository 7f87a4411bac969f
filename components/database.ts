/**
 * The stack's database server side, when apphost runs one:
 * - `postgres`: Postgres on the host; a generated password, the stack's role
 *   and database (components/render/postgres.ts), its `DATABASE_URL`.
 * - `rds`: managed Postgres beside an ec2 instance; an encrypted, private RDS
 *   instance in the instance's VPC that only the instance's security group
 *   reaches, automated backups, deletion protection and a final snapshot on
 *   production stacks, its `DATABASE_URL`.
 * SQLite needs nothing here (its file lives in shared/data), and `none` means
 * the app brings its own.
 */
// Type-only at the top: the AWS SDK is loaded only by rds stacks.
import type * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { generatedPassword } from "./computed";
import { isPostgres, isProductionStack } from "./config/defaults";
import type { DatabaseConfig, RdsConfig } from "./config/types";
import { resourceTags, type StackIdentity } from "./host";
import { hostLayout } from "./paths";
import { hostStep } from "./remote/command";
import { databaseSwitchCommands } from "./render/layout";
import type { SshConnection } from "./remote/connection";
import {
  POSTGRES_PORT,
  postgresDeleteScript,
  postgresProvisionScript,
  postgresUrl,
  scramVerifier,
} from "./render/postgres";

export interface DatabaseArgs {
  /**
   * Whose database (`stackIdentity(config)`): it names, tags and describes the
   * RDS resources; a prod* stack's instance is protected and keeps a final snapshot
   */
  identity: StackIdentity;
  /**
   * apphost:database: its kind (postgres on the host, rds, external; `forStack`
   * creates nothing for the others), the Postgres role and database name, and
   * rds' instance settings
   */
  database: Pick<DatabaseConfig, "kind" | "postgresName" | "rds" | "sqliteFile" | "extensions">;
  /**
   * apphost:host.via is instance-connect (`hostNeedsOpenSsh`): the host
   * steps run through OpenSSH. @default false
   */
  openSshOnly?: boolean;
  /** The (first) app host's connection: postgres creates the role and database there */
  connection: pulumi.Input<SshConnection>;
  /** rds: the instance's VPC and security group (`Host.network`) */
  network?: { vpcId: pulumi.Input<string>; securityGroupId: pulumi.Input<string> };
  /** rds with several instances (apphost:host.count): the other instances' security groups, admitted too */
  extraSecurityGroupIds?: pulumi.Input<string>[];
  /** external: `apphost:databaseUrl`, secret; apphost creates nothing, the app and the backups use it */
  externalUrl?: pulumi.Input<string>;
}

/**
 * The RDS instance's arguments, as data: what the policy tests read.
 * @param identity whose instance: its identifier and tags; a prod* stack's keeps a final snapshot
 * @param name apphost:database.postgresName: the database's and its master user's name
 * @param rds apphost:database.rds: the instance's class, storage, engine, backups
 */
export function rdsInstanceArgs(
  identity: StackIdentity,
  name: string,
  rds: RdsConfig,
  refs: {
    password: pulumi.Input<string>;
    securityGroupId: pulumi.Input<string>;
    subnetGroupName?: pulumi.Input<string>;
  },
): aws.rds.InstanceArgs {
  const prod = isProductionStack(identity.stack);
  const id = hostLayout(identity.app, identity.stack).id;
  return {
    identifier: `apphost-${id}`,
    engine: "postgres",
    engineVersion: rds.engineVersion,
    instanceClass: rds.instanceClass,
    allocatedStorage: rds.allocatedStorageGb,
    storageType: "gp3",
    storageEncrypted: true,
    publiclyAccessible: false,
    multiAz: rds.multiAz,
    dbName: name,
    username: name,
    password: refs.password,
    port: POSTGRES_PORT,
    vpcSecurityGroupIds: [refs.securityGroupId],
    ...(refs.subnetGroupName ? { dbSubnetGroupName: refs.subnetGroupName } : {}),
    backupRetentionPeriod: rds.backupRetentionDays,
    copyTagsToSnapshot: true,
    autoMinorVersionUpgrade: true,
    // Changes wait for the maintenance window rather than restart the database under the app.
    applyImmediately: false,
    deletionProtection: prod,
    skipFinalSnapshot: !prod,
    ...(prod ? { finalSnapshotIdentifier: `apphost-${id}-final` } : {}),
    tags: resourceTags(identity),
  };
}

export class Database extends pulumi.ComponentResource {
  /** `postgresql://…/<name>`, always secret */
  readonly url: pulumi.Output<string>;
  /** What the app's env file and release wait for */
  readonly ready: pulumi.Resource[];
  /** rds: the underlying resources, for tests */
  readonly nodes: {
    securityGroup?: aws.ec2.SecurityGroup;
    ingress?: aws.vpc.SecurityGroupIngressRule;
    subnetGroup?: aws.rds.SubnetGroup;
    instance?: aws.rds.Instance;
  } = {};

  /**
   * For postgres and rds: the step that refuses a switch from SQLite while the stack's SQLite database holds data
   * (render/layout.ts, databaseSwitchCommands), run before anything of the host changes: the server's setup waits
   * for it, and the Database waits for the server (program.ts, serverAndDatabase). A refused switch installs no
   * package and leaves no role, database or RDS instance behind. The app's layout step checks again (for external, and the
   * several-hosts stacks). `opts.dependsOn`: the host.
   */
  static sqliteCheck(
    name: string,
    {
      identity,
      database,
      connection,
      openSshOnly,
    }: Pick<DatabaseArgs, "identity" | "database" | "connection" | "openSshOnly">,
    opts: pulumi.CustomResourceOptions,
  ): pulumi.Resource | undefined {
    if (database.kind !== "postgres" && database.kind !== "rds") return undefined;
    return hostStep(
      name,
      {
        connection,
        openSshOnly: openSshOnly ?? false,
        description: `no SQLite data stays behind as ${database.kind} takes over`,
        create: [
          "set -euo pipefail",
          ...databaseSwitchCommands(hostLayout(identity.app, identity.stack), database),
          "",
        ].join("\n"),
        timeoutMinutes: 5,
      },
      opts,
    );
  }

  /**
   * The stack's Database, or undefined when apphost runs none (sqlite, none).
   * `opts.dependsOn`: the shared host setup (Server.ready; its baseline installs postgresql).
   */
  static forStack(
    name: string,
    args: DatabaseArgs,
    opts?: pulumi.ComponentResourceOptions,
  ): Database | undefined {
    return isPostgres(args.database.kind) ? new Database(name, args, opts) : undefined;
  }

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:Database", name, {}, opts);
    const db = args.database;
    if (db.kind === "external") {
      if (args.externalUrl === undefined) {
        throw new Error("apphost:database.kind external needs apphost:databaseUrl");
      }
      // A Postgres that lives on none of the app hosts: nothing to create, its URL is given.
      this.url = pulumi.secret(pulumi.output(args.externalUrl));
      this.ready = [];
      this.registerOutputs({});
      return;
    }
    const password = this.createPassword(name);
    if (db.kind === "rds") {
      const instance = this.createRds(name, args, password);
      this.url = pulumi.secret(
        pulumi
          .all([instance.address, instance.port, password])
          .apply(([host, port, pw]) => `${postgresUrl(db.postgresName, pw, host, port)}?sslmode=require`),
      );
      this.ready = [instance];
    } else {
      const roleAndDatabase = this.createRoleAndDatabase(
        name,
        args,
        db.postgresName,
        password,
        opts?.dependsOn,
      );
      this.url = pulumi.secret(password.apply((pw) => postgresUrl(db.postgresName, pw)));
      this.ready = [roleAndDatabase];
    }
    this.registerOutputs({});
  }

  /** Letters and digits only: 32 of them carry ~190 bits, and no URL or shell quoting can break. */
  private createPassword(name: string): pulumi.Output<string> {
    return generatedPassword(`${name}-password`, 32, { parent: this });
  }

  /** The role (its SCRAM verifier on stdin, never the password) and the database it owns. */
  private createRoleAndDatabase(
    name: string,
    { connection, openSshOnly, database }: DatabaseArgs,
    dbName: string,
    password: pulumi.Output<string>,
    dependsOn: pulumi.ComponentResourceOptions["dependsOn"],
  ): pulumi.Resource {
    return hostStep(
      `${name}-role`,
      {
        connection,
        openSshOnly: openSshOnly ?? false,
        description: `postgres role and database ${dbName}`,
        create: postgresProvisionScript({ name: dbName, extensions: database.extensions }),
        delete: postgresDeleteScript({ name: dbName }),
        stdin: pulumi.secret(password.apply((pw) => `${scramVerifier(dbName, pw)}\n`)),
        timeoutMinutes: 5,
      },
      { parent: this, dependsOn },
    );
  }

  /** A security group only the instance's reaches, a subnet group when the VPC is not the default one, the instance. */
  private createRds(
    name: string,
    { identity, database, network, extraSecurityGroupIds }: DatabaseArgs,
    password: pulumi.Output<string>,
  ) {
    const rds = database.rds;
    if (!rds || !network) {
      throw new Error("apphost:database.kind rds needs apphost:host.kind ec2 and apphost:database.rds");
    }
    const awsSdk = require("@pulumi/aws") as typeof import("@pulumi/aws");
    const tags = resourceTags(identity);
    const id = hostLayout(identity.app, identity.stack).id;
    const securityGroup = new awsSdk.ec2.SecurityGroup(
      `${name}-sg`,
      {
        description: `apphost ${identity.project}/${identity.stack}: Postgres from the instance's security group only`,
        vpcId: network.vpcId,
        tags: { ...tags, Name: `${id}-database` },
      },
      { parent: this },
    );
    const ingress = new awsSdk.vpc.SecurityGroupIngressRule(
      `${name}-in-postgres`,
      {
        securityGroupId: securityGroup.id,
        description: "Postgres from the apphost instance",
        ipProtocol: "tcp",
        fromPort: POSTGRES_PORT,
        toPort: POSTGRES_PORT,
        referencedSecurityGroupId: network.securityGroupId,
        tags,
      },
      { parent: this },
    );
    // Several instances behind the load balancer: each one's group is admitted, by its own rule.
    const extra = (extraSecurityGroupIds ?? []).map(
      (sg, i) =>
        new awsSdk.vpc.SecurityGroupIngressRule(
          `${name}-in-postgres-${i + 2}`,
          {
            securityGroupId: securityGroup.id,
            description: `Postgres from apphost instance ${i + 2}`,
            ipProtocol: "tcp",
            fromPort: POSTGRES_PORT,
            toPort: POSTGRES_PORT,
            referencedSecurityGroupId: sg,
            tags,
          },
          { parent: this },
        ),
    );
    const subnetGroup = rds.subnetIds
      ? new awsSdk.rds.SubnetGroup(
          `${name}-subnets`,
          { description: `apphost ${identity.project}/${identity.stack}`, subnetIds: rds.subnetIds, tags },
          { parent: this },
        )
      : undefined;
    const instance = new awsSdk.rds.Instance(
      `${name}-instance`,
      rdsInstanceArgs(identity, database.postgresName, rds, {
        password: pulumi.secret(password),
        securityGroupId: securityGroup.id,
        subnetGroupName: subnetGroup?.name,
      }),
      {
        parent: this,
        dependsOn: [ingress, ...extra],
        additionalSecretOutputs: ["password"],
        // Production data: `pulumi destroy` stops at deletion protection; a replace must never be silent.
        ...(isProductionStack(identity.stack) ? { protect: true } : {}),
      },
    );
    Object.assign(this.nodes, { securityGroup, ingress, subnetGroup, instance });
    return instance;
  }
}
