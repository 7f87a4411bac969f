/**
 * The normalized, validated stack configuration. Every component reads these
 * types; only `components/config/` turns raw Pulumi config into them, and the
 * defaults live there (see `defaults.ts`).
 *
 * Keys on the stack are `apphost:<section>` objects, e.g. `apphost:proxy` with
 * `{ kind: caddy }`; error messages name them as `apphost:proxy.kind`.
 */
import type { PythonDeps, PythonSource } from "../release/python";

/** `apphost:host` */
export type HostConfig = Ec2HostConfig | ExistingHostConfig;

interface HostCommon {
  /** SSH login user. @default "admin" for ec2 Debian, "ubuntu" for ec2 Ubuntu, required for existing */
  user: string;
  /** SSH port. @default 22 */
  port: number;
  /** How SSH reaches the host (`apphost:host.via`). @default { kind: "direct" } */
  via: ViaConfig;
  /** Swap file size in MiB created by the host baseline; 0 disables. @default 1024 for instances with < 2 GiB, else 0 */
  swapMb: number;
}

/**
 * `apphost:host.via`: `direct` (the default); `instance-connect` (ec2): an
 * EC2 Instance Connect Endpoint the program creates, reached with `aws
 * ec2-instance-connect open-tunnel` (IAM decides who may open a tunnel); or
 * `{jump: {address, port, user, hostKey}}`, an SSH jump host (a bastion) every
 * connection goes through. With either of the last two the host's sshd need
 * not be reachable from the deployer at all.
 */
export type ViaConfig = { kind: "direct" } | { kind: "instance-connect" } | JumpConfig;

export interface JumpConfig {
  kind: "jump";
  /** The jump host's IPv4 address or DNS name */
  address: string;
  /** @default 22 */
  port: number;
  /** Login user on the jump host. @default the host's user */
  user: string;
  /** The jump host's public host key line, pinned (required: a bastion is known in advance) */
  hostKey: string;
}

export interface Ec2HostConfig extends HostCommon {
  kind: "ec2";
  /** @example "t3.small", "t4g.small" (arm64 is picked from the family) */
  instanceType: string;
  /** CPU architecture derived from instanceType */
  arch: "x86_64" | "arm64";
  /** @default "debian-12" */
  os: "debian-12" | "ubuntu-24.04";
  /** gp3 root volume size in GiB. @default 20 */
  rootVolumeGb: number;
  /** OpenSSH public key line for the EC2 key pair */
  sshPublicKey: string;
  /** CIDRs allowed to reach port 22. 0.0.0.0/0 is refused unless allowSshFromAnywhere */
  sshAllowCidrs: string[];
  /** @default false */
  allowSshFromAnywhere: boolean;
  /** Attach an Elastic IP. @default true on stacks named prod*, else false */
  elasticIp: boolean;
  /** Optional subnet; the default VPC is used otherwise */
  subnetId?: string;
  /**
   * `apphost:host.count`: app instances. More than one serve behind an
   * Application Load Balancer (components/loadbalancer.ts), spread over the
   * subnets of two availability zones at least. @default 1
   */
  count: number;
  /** With count > 1: the subnets (two availability zones at least); @default the default VPC's default subnets */
  subnetIds?: string[];
  /**
   * Pinned host key line. Unset (the normal case): apphost generates the
   * instance's ed25519 host key (@pulumi/tls), installs it through user data
   * at launch and pins it. Set it for an instance launched without that key.
   */
  hostKey?: string;
}

export interface ExistingHostConfig extends HostCommon {
  kind: "existing";
  /** IPv4 address or DNS name (the first of `addresses`) */
  address: string;
  /** Pinned host key line (`ssh-ed25519 AAAA...`); when absent the first key seen is trusted */
  hostKey?: string;
  /**
   * Every app host, in order: `apphost:host.address` alone, or
   * `apphost:host.addresses` (two or more serve behind `apphost:lb`).
   * The first one runs the migrations and the scheduled jobs.
   */
  addresses: HostAddress[];
}

/** One app host of `apphost:host.addresses`. */
export interface HostAddress {
  /** IPv4 address or DNS name */
  address: string;
  /** Pinned host key line; when absent the first key seen is trusted */
  hostKey?: string;
}

/**
 * `apphost:lb`: the load-balancer host in front of several existing app hosts,
 * itself an existing server reached over SSH like them. apphost runs Caddy on
 * it: TLS for the stack's hostnames, active health checks against every app
 * host, hosts taken out and put back with a graceful reload.
 */
export interface LbConfig {
  /** IPv4 address or DNS name */
  address: string;
  /** SSH login user with sudo rights. @default apphost:host.user */
  user: string;
  /** SSH port. @default 22 */
  port: number;
  /** Pinned host key line; when absent the first key seen is trusted */
  hostKey?: string;
  /**
   * The address the app hosts see the balancer's requests come from (their
   * proxies answer it alone). @default address, when it is an IPv4 address
   */
  privateAddress: string;
  /** Seconds between the balancer's health checks of each app host. @default 1 */
  healthIntervalSeconds: number;
}

/** `apphost:dns` */
export interface DnsConfig {
  /** @default "none" */
  provider: "cloudflare" | "none";
  /** Cloudflare zone name, looked up when zoneId is absent */
  zone?: string;
  zoneId?: string;
  /** Hostnames served by this stack; the first is the primary */
  hostnames: HostnameConfig[];
  /** Also publish AAAA records (ec2 only). @default false */
  ipv6: boolean;
}

export interface HostnameConfig {
  name: string;
  /** Orange-cloud through Cloudflare (forces ttl 1). @default false */
  proxied: boolean;
}

/** `apphost:tls` */
export interface TlsConfig {
  /** `acm`: the load balancer's ACM certificate (apphost:host.count > 1 on ec2) */
  mode: "caddy-acme" | "certbot" | "cloudflare-origin" | "internal" | "off" | "acm";
  /** ACME account e-mail (caddy-acme, certbot) */
  email?: string;
  /** Origin certificate validity in days (cloudflare-origin). @default 365 */
  originValidityDays: number;
  /** Renew the origin certificate through `pulumi up` this many days before expiry. @default 30 */
  renewBeforeDays: number;
  /**
   * The ACME directory certificates come from (caddy-acme, certbot): Let's
   * Encrypt staging, ZeroSSL, an internal step-ca. @default Let's Encrypt (Caddy: then ZeroSSL)
   */
  acmeDirectory?: string;
  /**
   * PEM root certificate the ACME server's own HTTPS certificate chains to,
   * when the host does not trust it already (step-ca, Pebble). Installed into
   * the host's trust store; needs acmeDirectory.
   */
  acmeCaRoot?: string;
}

/** `apphost:proxy` */
export interface ProxyConfig {
  /** @default "caddy" */
  kind: "caddy" | "nginx";
  /** Maximum request body, nginx syntax (`25m`). @default "25m" */
  maxBodySize: string;
  /** @default true when TLS is on */
  hsts: boolean;
  /** gzip/zstd responses. @default true */
  compression: boolean;
  /** Public HTTP and HTTPS ports. @default 80 / 443 */
  httpPort: number;
  httpsPort: number;
}

/** One entry of `apphost:app.processes` (Procfile-like). */
export interface ProcessConfig {
  name: string;
  /** Command run inside the release directory, with the venv/node_modules on PATH */
  command: string;
  /** `web` receives HTTP on $PORT and runs as two alternating instances; `worker` does not */
  kind: "web" | "worker";
}

/** `apphost:app` */
export interface AppConfig {
  /** Short name used in unit, user, path and proxy names. @default Pulumi project name */
  name: string;
  /** Local directory of the app, relative to the project. */
  source: string;
  /** @default ".git", "venv", ".venv", "node_modules", "__pycache__", "*.pyc", ".env", "data/", "logs/" */
  excludes: string[];
  runtime: "python" | "node";
  /**
   * pip requirements file that overrides detection (python), or the node
   * lock file. @default python: detected (components/release/python.ts); node: "package-lock.json"
   */
  requirements?: string;
  /**
   * `apphost:app.python`: the host's python3 (`system`) or a Python that uv
   * installs to match the app's requirement (`managed`). @default "system"
   */
  python?: PythonSource;
  /** python: how the dependencies install, detected from the app's files when the config is read */
  pythonDeps?: PythonDeps;
  /** @default "/healthz" */
  healthPath: string;
  /** First of the two web ports (blue = base, green = base+1). @default 8000 */
  basePort: number;
  /** Plain environment for every process */
  env: Record<string, string>;
  /** Built frontend directory inside the release, served by the proxy as static files */
  staticDir?: string;
  /** URL prefix for staticDir. @default "/static/" */
  staticPrefix: string;
  /** Optional frontend build command run at install (`npm ci && npm run build`) */
  build?: string;
  processes: ProcessConfig[];
  /** `apphost:app.schedules`: jobs run by systemd timers in the live release. @default [] */
  schedules: ScheduleConfig[];
  /**
   * Maintenance mode from the config: the proxy answers everything but the
   * health path with the maintenance page (503, Retry-After). `npm run
   * maintenance` switches it outside the state. @default false
   */
  maintenance: boolean;
  /** HTML file (relative to the project) served as the maintenance page. @default apphost's own page */
  maintenancePage?: string;
}

/** One entry of `apphost:app.schedules`: a command run by a systemd timer. */
export interface ScheduleConfig {
  name: string;
  /** Run in the live release, like a worker (same PATH, env file, user and sandbox) */
  command: string;
  /** systemd OnCalendar expression (`hourly`, `Mon..Fri 09:00`, `*:0/15`) */
  onCalendar: string;
  /** The run is stopped (and fails) after this many seconds. @default 3600 */
  timeoutSeconds: number;
}

/** `apphost:database` */
export interface DatabaseConfig {
  /** @default "sqlite" */
  kind: "sqlite" | "postgres" | "rds" | "external" | "none";
  /** SQLite file name inside shared/data. @default "app.db" */
  sqliteFile: string;
  /** Postgres database and role name. @default "<app>_<stack>" */
  postgresName: string;
  /** Migration command run inside the new release. @default "" (none) */
  migrate: string;
  /** Command printing the current migration revision. @default "" */
  revision: string;
  /** postgres, rds: the app's connection pool, exported as DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT, DB_POOL_RECYCLE */
  pool: DatabasePoolConfig;
  /** rds: the managed instance; present exactly when kind is rds */
  rds?: RdsConfig;
}

/** `apphost:database.rds` (kind rds, ec2 stacks only): managed Postgres beside the instance. */
export interface RdsConfig {
  /** @default "db.t4g.micro" */
  instanceClass: string;
  /** @default 20 */
  allocatedStorageGb: number;
  /** Postgres major version; 15 only, the pg_dump of Debian 12 that takes the pre-migration backups. @default "15" */
  engineVersion: string;
  /** Days of automated backups. @default 30 on stacks named prod*, else 7 */
  backupRetentionDays: number;
  /** A standby in a second availability zone. @default false */
  multiAz: boolean;
  /** Subnets of the DB subnet group (two availability zones at least); needed with apphost:host.subnetId. @default the default VPC's */
  subnetIds?: string[];
}

/** `apphost:database.pool` (postgres only): SQLAlchemy's pool settings, the runbook's defaults. */
export interface DatabasePoolConfig {
  /** Connections kept open per process (DB_POOL_SIZE). @default 5 */
  size: number;
  /** Extra connections allowed under load (DB_MAX_OVERFLOW). @default 10 */
  maxOverflow: number;
  /** Seconds to wait for a free connection (DB_POOL_TIMEOUT). @default 30 */
  timeoutSeconds: number;
  /** Seconds after which a connection is replaced (DB_POOL_RECYCLE). @default 1800 */
  recycleSeconds: number;
}

/** `apphost:backups` */
export interface BackupsConfig {
  /** systemd OnCalendar expression for scheduled backups. @default "daily" */
  schedule: string;
  /** Backups kept. @default 7 (staging), 30 (prod) */
  keep: number;
  /**
   * Copy each backup (scheduled and pre-migration) to an S3 bucket the program
   * creates, with the instance's role. ec2 hosts on debian-12 only. @default false
   */
  s3: boolean;
  /** Days the bucket keeps a backup (and an overwritten version) before its lifecycle rule expires it. @default 30 (staging), 90 (prod) */
  s3ExpireDays: number;
}

/** `apphost:releases` */
export interface ReleasesConfig {
  /** Releases kept on the host. @default 5 */
  keep: number;
  /** Serve this release id instead of the newest (rollback on purpose) */
  rollbackTo?: string;
  /** Seconds the health gate waits for the new instance. @default 60 */
  healthTimeoutSeconds: number;
  /** Seconds the old instance drains after the switch. @default 5 */
  drainSeconds: number;
  /** Deploy lock expiry in minutes. @default 30 */
  lockTtlMinutes: number;
  /** Free disk space required by the check phase, MiB. @default 500 */
  minFreeMb: number;
  /** Several app hosts: how many release at once, out of the balancer together. @default 1 */
  batchSize: number;
}

/**
 * `apphost:alerts` (a secret): where a failed apphost unit is reported. Only
 * facts reach the typed config; the webhook URL stays a secret Output.
 */
export interface AlertsConfig {
  /** A webhook URL is set (`apphost:alerts.webhook`) */
  enabled: boolean;
}

export interface StackConfig {
  project: string;
  stack: string;
  host: HostConfig;
  dns: DnsConfig;
  tls: TlsConfig;
  proxy: ProxyConfig;
  app: AppConfig;
  database: DatabaseConfig;
  backups: BackupsConfig;
  releases: ReleasesConfig;
  alerts: AlertsConfig;
  /** `apphost:lb`: present exactly when existing app hosts serve behind a balancer host */
  lb?: LbConfig;
}
