/**
 * The stack's database server side, when apphost runs one
 * (`apphost:database.kind: postgres`): a generated password, the role and
 * the database on the host, and the `DATABASE_URL` the env file carries.
 * SQLite needs nothing here (its file lives in shared/data), and `none` means
 * the app brings its own.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { StackConfig } from "./config/types";
import { hostStep } from "./remote/command";
import type { SshConnection } from "./remote/connection";
import { postgresDeleteScript, postgresProvisionScript, postgresUrl, scramVerifier } from "./render/postgres";

export interface DatabaseArgs {
  config: StackConfig;
  connection: pulumi.Input<SshConnection>;
  /** Resources of the shared host setup that must exist first (the baseline installs postgresql) */
  dependsOn: pulumi.Input<pulumi.Resource>[];
}

export class Database extends pulumi.ComponentResource {
  /** `postgresql://…@127.0.0.1:5432/<name>`, always secret */
  readonly url: pulumi.Output<string>;
  /** What the app's env file and release wait for */
  readonly ready: pulumi.Resource[];

  /** The stack's Database, or undefined when apphost runs none (sqlite, none). */
  static forStack(name: string, args: DatabaseArgs): Database | undefined {
    return args.config.database.kind === "postgres" ? new Database(name, args) : undefined;
  }

  constructor(name: string, args: DatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:Database", name, {}, opts);
    const dbName = args.config.database.postgresName;
    const password = this.createPassword(name);
    const roleAndDatabase = this.createRoleAndDatabase(name, args, dbName, password);
    this.url = pulumi.secret(password.apply((pw) => postgresUrl(dbName, pw)));
    this.ready = [roleAndDatabase];
    this.registerOutputs({});
  }

  /** Letters and digits only: 32 of them carry ~190 bits, and no URL or shell quoting can break. */
  private createPassword(name: string): pulumi.Output<string> {
    return new random.RandomPassword(`${name}-password`, { length: 32, special: false }, { parent: this })
      .result;
  }

  /** The role (its SCRAM verifier on stdin, never the password) and the database it owns. */
  private createRoleAndDatabase(
    name: string,
    { connection, dependsOn }: DatabaseArgs,
    dbName: string,
    password: pulumi.Output<string>,
  ): pulumi.Resource {
    return hostStep(
      `${name}-role`,
      {
        connection,
        description: `postgres role and database ${dbName}`,
        create: postgresProvisionScript({ name: dbName }),
        delete: postgresDeleteScript({ name: dbName }),
        stdin: pulumi.secret(password.apply((pw) => `${scramVerifier(dbName, pw)}\n`)),
        timeoutMinutes: 5,
      },
      { parent: this, dependsOn },
    );
  }
}
