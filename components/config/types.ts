/**
 * The normalized, validated stack configuration. Every component reads these
 * types; they are inferred from the zod schema (schema.ts, validate.ts), whose
 * fields carry the documentation and the defaults (from `defaults.ts`).
 *
 * Keys on the stack are `apphost:<section>` objects, e.g. `apphost:proxy` with
 * `{ kind: caddy }`; error messages name them as `apphost:proxy.kind`.
 */
import type { z } from "zod";
import type { stackSchema } from "./validate";

export type StackConfig = z.output<ReturnType<typeof stackSchema>>;

/** `apphost:host`: an EC2 instance apphost creates, or existing servers */
export type HostConfig = StackConfig["host"];
export type Ec2HostConfig = Extract<HostConfig, { kind: "ec2" }>;
export type ExistingHostConfig = Extract<HostConfig, { kind: "existing" }>;
/** One app host of `apphost:host.addresses` */
export type HostAddress = ExistingHostConfig["addresses"][number];
/**
 * `apphost:host.via`: `direct` (the default); `instance-connect` (ec2): an
 * EC2 Instance Connect Endpoint the program creates; or `{jump: {address,
 * port, user, hostKey}}`, an SSH jump host every connection goes through.
 */
export type ViaConfig = HostConfig["via"];
export type JumpConfig = Extract<ViaConfig, { kind: "jump" }>;
/** `apphost:lb`: the balancer host in front of several existing app hosts */
export type LbConfig = NonNullable<StackConfig["lb"]>;
export type DnsConfig = StackConfig["dns"];
export type HostnameConfig = DnsConfig["hostnames"][number];
export type TlsConfig = StackConfig["tls"];
export type ProxyConfig = StackConfig["proxy"];
export type AppConfig = StackConfig["app"];
/** One entry of `apphost:app.processes` (Procfile-like) */
export type ProcessConfig = AppConfig["processes"][number];
/** One entry of `apphost:app.schedules`: a command run by a systemd timer */
export type ScheduleConfig = AppConfig["schedules"][number];
export type DatabaseConfig = StackConfig["database"];
/** `apphost:database.rds` (kind rds, ec2 stacks only): managed Postgres beside the instance */
export type RdsConfig = NonNullable<DatabaseConfig["rds"]>;
/** `apphost:database.pool`: SQLAlchemy's pool settings, exported as DB_POOL_SIZE, ... */
export type DatabasePoolConfig = DatabaseConfig["pool"];
export type BackupsConfig = StackConfig["backups"];
export type ReleasesConfig = StackConfig["releases"];
/** `apphost:alerts` (a secret): only whether a webhook is set reaches the typed config */
export type AlertsConfig = StackConfig["alerts"];
