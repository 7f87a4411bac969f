/**
 * One stack's app on a host: its user and directories, env file, systemd
 * units, proxy site, release script, backup timer and log rotation, then the
 * release itself. Every name carries `<app>-<stack>`, so two stacks share a
 * host without touching each other's files.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { isRemotePostgres } from "./config/defaults";
import type {
  AppConfig,
  BackupsConfig,
  DatabaseConfig,
  ProxyConfig,
  ReleasesConfig,
  TlsConfig,
} from "./config/types";
import {
  alertScriptPath,
  alertUnitName,
  hostLayout,
  maintenanceFiles,
  scheduleUnitNames,
  upstreamUnitName,
  type HostLayout,
} from "./paths";
import type { SshConnection } from "./remote/connection";
import { hostStep } from "./remote/command";
import { HostFile } from "./remote/resources";
import { Release, type PhaseTime } from "./remote/release";
import { shellQuote as q } from "./shell";
import type { StackArtifact } from "./release/cache";
import type { S3Target } from "./release/backup";
import { webProcess } from "./release/phases";
import { appYarnBerry } from "./release/node";
import { releaseScriptPath, renderReleaseScript } from "./release/script";
import { renderAlertCurlConfig, renderAlertScript } from "./render/alert";
import { acmeCaRootPath, originCertPaths } from "./render/common";
import { certbotIssueScript } from "./render/certbot";
import { renderCaddySite } from "./render/caddy";
import { envFileOwnership, renderEnvFile } from "./render/env";
import { layoutCommands } from "./render/layout";
import { logrotatePath, renderLogrotate } from "./render/logrotate";
import { needrestartConfPath, renderNeedrestartConf } from "./render/needrestart";
import { defaultMaintenancePage } from "./render/maintenance";
import { renderNginxSite } from "./render/nginx";
import {
  backupUnitNames,
  renderBackupService,
  renderAlertUnit,
  renderBackupTimer,
  renderProcessUnits,
  renderScheduleService,
  renderScheduleTimer,
  renderUpstreamUnit,
  UNIT_DIR,
  unitRemovalCommand,
} from "./render/systemd";
import { renderTmpfiles, tmpfilesPath } from "./render/tmpfiles";
import { proxyCommands } from "./render/common";

export interface AppArgs {
  /** The Pulumi stack: with apphost:app.name it names every file and unit (`<app>-<stack>`); the env file's APP_ENV */
  stack: string;
  /** apphost:app: the processes, env, schedules, health path, static files and maintenance page */
  app: AppConfig;
  /** apphost:dns.hostnames' names: the site serves them; the first makes `url` and the health gate's Host */
  hostnames: string[];
  /** apphost:tls: the site's certificates (mode, ACME account and server); `off` makes `url` http */
  tls: Pick<TlsConfig, "mode" | "email" | "acmeDirectory" | "acmeCaRoot">;
  /** apphost:proxy: which proxy serves the site, and how */
  proxy: ProxyConfig;
  /** apphost:database: the env file's database settings, the release's migrations and backups */
  database: DatabaseConfig;
  /** apphost:backups: the scheduled backup's timer (`schedule`) and how many the release keeps (`keep`) */
  backups: Pick<BackupsConfig, "schedule" | "keep">;
  /** apphost:releases: how the release script deploys, keeps and rolls back releases */
  releases: ReleasesConfig;
  /**
   * apphost:host.via is instance-connect (`hostNeedsOpenSsh`): the host
   * steps run through OpenSSH. @default false
   */
  openSshOnly?: boolean;
  /** The host's connection (`Host.connection`) */
  connection: pulumi.Input<SshConnection>;
  /** `apphost:secretEnv` plus generated secrets, merged into the env file */
  secretEnv: pulumi.Input<Record<string, string>>;
  /** postgres: the stack's `DATABASE_URL` (components/database.ts), secret */
  databaseUrl?: pulumi.Input<string>;
  /** cloudflare-origin: the certificate and key installed for the proxy */
  originCertificate?: { certificatePem: pulumi.Input<string>; privateKeyPem: pulumi.Input<string> };
  /** apphost:backups.s3: where each backup is copied (`BackupBucket.target`); absent: host only */
  backupTarget?: pulumi.Input<S3Target>;
  /** apphost:alerts.webhook, secret: where a failed unit is reported; absent: no alerts */
  alertWebhook?: pulumi.Input<string>;
  /** Project directory apphost:app.maintenancePage is relative to */
  projectDir: string;
  /**
   * The app's artifact, built once by the program (release/cache.ts
   * `stackArtifact`); what this component's Release deploys. Unused when
   * `rolledOut`.
   */
  artifact?: StackArtifact;
  /**
   * Several app hosts (apphost:host.addresses): `follower` for every host but
   * the first, which alone backs up, migrates and runs the scheduled backups
   * and jobs. @default "primary"
   */
  role?: "primary" | "follower";
  /**
   * Behind a balancer: apphost:lb's address, the only one this host's proxy
   * answers; `{}` behind the EC2 load balancer (its security group admits it alone).
   * The proxy serves plain HTTP either way.
   */
  balancer?: { address?: string };
  /**
   * The release is the program's `Rollout` across every host, not this
   * component's own `Release`: `rolloutTarget` says what it needs.
   */
  rolledOut?: boolean;
}

/** What a `Rollout` needs of one app host. */
export interface RolloutTarget {
  script: string;
  /** Hash of the env file, the units and the release script */
  configHash: pulumi.Output<string>;
  /** Everything on the host the release needs first */
  after: pulumi.Resource[];
}

function sha256(text: string | Buffer): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

/**
 * What an error must never show: every apphost:secretEnv value (SECRET_KEY
 * included), the database URL and its password.
 */
export function secretValues(env: Record<string, string>, databaseUrl?: string): string[] {
  const values = Object.values(env);
  if (databaseUrl) {
    values.push(databaseUrl);
    const password = /^[a-z0-9+]+:\/\/[^:/@]*:([^@]*)@/.exec(databaseUrl)?.[1];
    if (password) values.push(password, decodeURIComponent(password));
  }
  return [...new Set(values.filter((v) => v.length >= 4))];
}

/** Who holds a deploy lock this run takes, e.g. `ci@runner-1`. */
export function lockOwner(): string {
  return `${os.userInfo().username}@${os.hostname()}`;
}

export class App extends pulumi.ComponentResource {
  readonly layout: HostLayout;
  /** Undefined when the program's Rollout releases (apphost:lb) */
  readonly releaseId?: pulumi.Output<string>;
  readonly liveRelease?: pulumi.Output<string>;
  /** Seconds per phase of the last deploy or rollback (`pulumi stack output releasePhases`) */
  readonly releasePhases?: pulumi.Output<PhaseTime[]>;
  /** With `rolledOut`: what the Rollout needs of this host */
  readonly rolloutTarget?: RolloutTarget;
  readonly url: string;
  private readonly args: AppArgs;
  private readonly name: string;

  constructor(name: string, args: AppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:App", name, {}, opts);
    this.args = args;
    this.name = name;
    this.layout = hostLayout(args.app.name, args.stack);
    // The shared host setup (Server.ready) comes as opts.dependsOn: the first host step waits for it.
    const base = this.createLayout(name, args, opts?.dependsOn);
    const dirs = this.createDirectories(name, args, base);
    const certs = this.createCertificates(name, args, base);
    const env = this.createEnvFile(name, args, dirs);
    const alerts = this.createAlerts(name, args, dirs);
    const units = this.createUnits(name, args, [dirs, ...alerts]);
    const script = this.createReleaseScript(name, args, dirs);
    const upstream = this.createUpstreamUnit(name, args, script);
    const maintenance = this.createMaintenance(name, args, dirs);
    const site = this.createProxySite(name, args, [dirs, upstream, ...certs, ...maintenance]);
    const housekeeping = this.createHousekeeping(name, args, [script]);
    const deps = { env, units, script, after: [site, ...housekeeping] };
    if (args.rolledOut) {
      this.rolloutTarget = {
        script: releaseScriptPath(this.layout),
        configHash: this.configHash(deps),
        after: [deps.env, ...deps.units, deps.script, ...deps.after, ...alerts],
      };
    } else {
      const release = this.createRelease(name, args, deps);
      this.createSchedules(name, args, [release, ...alerts]);
      this.releaseId = release.releaseId;
      this.liveRelease = release.live;
      this.releasePhases = release.phaseSeconds;
    }
    const primary = args.hostnames[0] ?? "localhost";
    this.url = `${args.tls.mode === "off" ? "http" : "https"}://${primary}`;
    this.registerOutputs({ releaseId: this.releaseId, url: this.url });
  }

  private createLayout(
    name: string,
    args: AppArgs,
    after: pulumi.ComponentResourceOptions["dependsOn"],
  ): pulumi.CustomResource {
    const cmds = layoutCommands(this.layout, {
      proxy: args.proxy,
      database: args.database,
      basePort: args.app.basePort,
      web: webProcess(args.app),
      app: args.app,
    });
    return hostStep(
      `${name}-layout`,
      {
        connection: args.connection,
        openSshOnly: args.openSshOnly ?? false,
        description: `layout of ${this.layout.id}`,
        create: cmds.create,
        delete: cmds.delete,
      },
      { parent: this, dependsOn: after },
    );
  }

  private createDirectories(
    name: string,
    { proxy, tls, connection }: AppArgs,
    after: pulumi.Resource,
  ): HostFile {
    const file = tmpfilesPath(this.layout);
    return new HostFile(
      `${name}-tmpfiles`,
      {
        connection,
        path: file,
        content: renderTmpfiles(this.layout, { proxy, tls }),
        reload: `systemd-tmpfiles --create ${q(file)}`,
        onDelete: "",
      },
      { parent: this, dependsOn: [after] },
    );
  }

  /**
   * The origin certificate and its key. A renewal writes both, then checks the
   * proxy's configuration with them and reloads it, so the new certificate is
   * served at once (the site file does not change on a renewal, so nothing
   * else would reload the proxy). The key goes second: the check then sees a
   * matching pair, never a new certificate with the old key.
   */
  private createCertificates(name: string, args: AppArgs, after: pulumi.Resource): HostFile[] {
    const acmeRoot = args.tls.acmeCaRoot;
    if (acmeRoot !== undefined) {
      // apphost:tls.acmeCaRoot: the host trusts the ACME server (certbot through the
      // system store; Caddy's site names the file as ca_root).
      return [
        new HostFile(
          `${name}-acme-ca-root`,
          {
            connection: args.connection,
            path: acmeCaRootPath(this.layout),
            content: acmeRoot.trim() + "\n",
            mode: "0644",
            reload: "update-ca-certificates >/dev/null",
            onDelete: "update-ca-certificates --fresh >/dev/null",
          },
          { parent: this, dependsOn: [after] },
        ),
      ];
    }
    if (!args.originCertificate) return [];
    const paths = originCertPaths(this.layout);
    const cmd = proxyCommands(args.proxy.kind);
    const group = args.proxy.kind === "caddy" ? "caddy" : "root";
    const cert = new HostFile(
      `${name}-origin-cert`,
      {
        connection: args.connection,
        path: paths.cert,
        content: args.originCertificate.certificatePem,
        mode: "0644",
      },
      { parent: this, dependsOn: [after] },
    );
    const key = new HostFile(
      `${name}-origin-key`,
      {
        connection: args.connection,
        path: paths.key,
        // The certificate's hash rides along, so a renewal that kept the key still reloads.
        content: pulumi.secret(args.originCertificate.privateKeyPem),
        mode: "0640",
        group,
        secret: true,
        validate: cmd.validate,
        reload: pulumi
          .output(args.originCertificate.certificatePem)
          .apply((pem) => `${cmd.reload} # certificate sha256 ${sha256(pem)}`),
      },
      { parent: this, dependsOn: [cert] },
    );
    return [cert, key];
  }

  private createEnvFile(
    name: string,
    { stack, app, hostnames, tls, database, connection, secretEnv, databaseUrl }: AppArgs,
    after: pulumi.Resource,
  ): HostFile {
    const content = pulumi.secret(
      pulumi.all([secretEnv, databaseUrl]).apply(([secrets, url]) =>
        renderEnvFile(this.layout, {
          stack,
          env: app.env,
          secretEnv: secrets,
          secretKey: secrets.SECRET_KEY,
          hostnames,
          scheme: tls.mode === "off" ? "http" : "https",
          database,
          databaseUrl: url,
        }),
      ),
    );
    return new HostFile(
      `${name}-env`,
      {
        connection,
        path: this.layout.envFile,
        content,
        ...envFileOwnership(this.layout),
        secret: true,
        onDelete: "",
      },
      { parent: this, dependsOn: [after] },
    );
  }

  /**
   * apphost:alerts: the webhook (a root-only curl config), the script that
   * posts, and the unit every other apphost unit's OnFailure= starts. None of
   * them without a webhook (removing it deletes them).
   */
  private createAlerts(
    name: string,
    { stack, app, connection, alertWebhook }: AppArgs,
    after: pulumi.Resource,
  ): HostFile[] {
    if (!alertWebhook) return [];
    const unit = alertUnitName(this.layout);
    const webhook = new HostFile(
      `${name}-alert-webhook`,
      {
        connection,
        path: this.layout.alertFile,
        content: pulumi.secret(pulumi.output(alertWebhook).apply(renderAlertCurlConfig)),
        mode: "0600",
        secret: true,
        onDelete: "",
      },
      { parent: this, dependsOn: [after] },
    );
    const script = new HostFile(
      `${name}-alert-script`,
      {
        connection,
        path: alertScriptPath(this.layout),
        content: renderAlertScript(this.layout, { app: app.name, stack }),
        mode: "0750",
        onDelete: "",
      },
      { parent: this, dependsOn: [after] },
    );
    const service = new HostFile(
      `${name}-unit-alert`,
      {
        connection,
        path: `${UNIT_DIR}/${unit}`,
        content: renderAlertUnit(this.layout),
        reload: "systemctl daemon-reload",
        onDelete: "systemctl daemon-reload",
      },
      { parent: this, dependsOn: [webhook, script] },
    );
    return [webhook, script, service];
  }

  /**
   * Maintenance mode: the page (apphost:app.maintenancePage or apphost's own)
   * and, while apphost:app.maintenance is true, the config's switch file. The
   * proxy tests the switch per request, so neither reloads anything; the
   * manual switch (`npm run maintenance`) is another file, outside the state.
   */
  private createMaintenance(
    name: string,
    { app, connection, projectDir }: AppArgs,
    after: pulumi.Resource,
  ): HostFile[] {
    const files = maintenanceFiles(this.layout);
    let page = defaultMaintenancePage(app.name);
    if (app.maintenancePage !== undefined) {
      const file = path.resolve(projectDir, app.maintenancePage);
      try {
        page = fs.readFileSync(file, "utf8");
      } catch (e) {
        throw new Error(
          `apphost:app.maintenancePage: cannot read "${app.maintenancePage}" (resolved to ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); point it at an HTML file in the project`,
        );
      }
    }
    const out = [
      new HostFile(
        `${name}-maintenance-page`,
        { connection, path: files.page, content: page, mode: "0644", onDelete: "" },
        { parent: this, dependsOn: [after] },
      ),
    ];
    if (app.maintenance) {
      out.push(
        new HostFile(
          `${name}-maintenance-on`,
          {
            connection,
            path: files.config,
            content: "apphost:app.maintenance is true: the proxy serves the maintenance page.\n",
            mode: "0644",
            onDelete: "",
          },
          { parent: this, dependsOn: [after] },
        ),
      );
    }
    return out;
  }

  /**
   * apphost:app.schedules: each job's service and timer. After the release,
   * so the first run finds `current`; not part of the release's config hash
   * (a changed schedule needs no restart of the processes).
   */
  /** The scheduled jobs, after the Rollout reached this host (the first one runs them). */
  scheduleAfter(after: pulumi.Resource[]): void {
    this.createSchedules(this.name, this.args, after);
  }

  private createSchedules(
    name: string,
    { app, connection, alertWebhook, role }: AppArgs,
    after: pulumi.Resource[],
  ): void {
    // Several app hosts: a job runs once per stack, on the first host.
    if (role === "follower") return;
    for (const schedule of app.schedules) {
      const units = scheduleUnitNames(this.layout, schedule.name);
      const input = {
        schedule,
        runtime: app.runtime,
        yarnBerry: appYarnBerry(app),
        alerts: alertWebhook !== undefined,
      };
      const service = new HostFile(
        `${name}-schedule-${schedule.name}`,
        {
          connection,
          path: `${UNIT_DIR}/${units.service}`,
          content: renderScheduleService(this.layout, input),
          reload: "systemctl daemon-reload",
          onDelete: `systemctl stop ${q(units.service)} 2>/dev/null || true; systemctl daemon-reload`,
        },
        { parent: this, dependsOn: after },
      );
      new HostFile(
        `${name}-schedule-${schedule.name}-timer`,
        {
          connection,
          path: `${UNIT_DIR}/${units.timer}`,
          content: renderScheduleTimer(this.layout, input),
          reload: `systemctl daemon-reload && systemctl enable --quiet ${q(units.timer)} && systemctl restart ${q(units.timer)}`,
          onDelete: unitRemovalCommand(units.timer),
        },
        { parent: this, dependsOn: [service] },
      );
    }
  }

  private createUnits(
    name: string,
    { app, database, backups, connection, backupTarget, alertWebhook, role }: AppArgs,
    after: pulumi.Resource[],
  ): HostFile[] {
    const alerts = alertWebhook !== undefined;
    // Several app hosts: the scheduled backup runs once per stack, on the first host.
    const backupUnits = role === "follower" ? [] : null;
    const units = renderProcessUnits(this.layout, {
      processes: app.processes,
      runtime: app.runtime,
      yarnBerry: appYarnBerry(app),
      alerts,
    });
    const processUnits = new Set(units.map((u) => u.name));
    const backup = backupUnitNames(this.layout);
    const backupExec = `${this.layout.bin}/apphost-backup`;
    const all = [
      ...units,
      ...(backupUnits ?? [
        {
          name: backup.service,
          path: `${UNIT_DIR}/${backup.service}`,
          content: renderBackupService(this.layout, {
            backups: backups,
            execStart: backupExec,
            // The copy to S3 needs the network (and IMDS for the instance's credentials); so does pg_dump of an RDS database.
            network: backupTarget !== undefined || isRemotePostgres(database.kind),
            alerts,
          }),
        },
        {
          name: backup.timer,
          path: `${UNIT_DIR}/${backup.timer}`,
          content: renderBackupTimer(this.layout, { backups: backups, execStart: backupExec }),
        },
      ]),
    ];
    // A changed unit only needs a daemon-reload here: the release resource
    // re-publishes the processes through the health-gated switch. A timer is
    // enabled once its service is on the host (`enable --now` of a timer whose
    // service file is not there yet fails), so timers wait for the services.
    const file = (u: (typeof all)[number], dependsOn: pulumi.Resource[]) =>
      new HostFile(
        `${name}-unit-${u.name.replace(/@?\.(service|timer)$/, "").replace(`${this.layout.unitPrefix}-`, "")}${u.name.endsWith(".timer") ? "-timer" : ""}`,
        {
          connection,
          path: u.path,
          content: u.content,
          reload: u.name.endsWith(".timer")
            ? `systemctl daemon-reload && systemctl enable --now ${q(u.name)}`
            : "systemctl daemon-reload",
          // A process removed or renamed, or a timer removed, stops; a scheduled job or backup that runs, ends.
          onDelete:
            u.name.endsWith(".timer") || processUnits.has(u.name)
              ? unitRemovalCommand(u.name)
              : "systemctl daemon-reload",
        },
        { parent: this, dependsOn },
      );
    const services = all.filter((u) => !u.name.endsWith(".timer")).map((u) => file(u, after));
    const timers = all.filter((u) => u.name.endsWith(".timer")).map((u) => file(u, [...after, ...services]));
    return [...services, ...timers];
  }

  private createReleaseScript(
    name: string,
    { app, database, releases, backups, proxy, hostnames, tls, connection, backupTarget, role }: AppArgs,
    after: pulumi.Resource,
  ): HostFile {
    const render = (s3?: S3Target) =>
      renderReleaseScript({
        layout: this.layout,
        app,
        database,
        ...(role === "follower" ? { follower: true } : {}),
        releases,
        backups,
        proxy,
        s3,
        ...(hostnames[0]
          ? {
              health: {
                host: hostnames[0],
                proto: tls.mode === "off" ? "http" : "https",
              },
            }
          : {}),
      });
    // With S3 the script names the bucket, known once the bucket exists.
    const script = backupTarget ? pulumi.output(backupTarget).apply(render) : render();
    const release = new HostFile(
      `${name}-release-script`,
      { connection, path: releaseScriptPath(this.layout), content: script, mode: "0750", onDelete: "" },
      { parent: this, dependsOn: [after] },
    );
    return release;
  }

  /**
   * The unit that loads the stack's nftables rule at boot. Enabled and
   * (re)started here, so the rule exists (from active-port, if a release
   * served already) before the site points the proxy at the upstream port.
   */
  private createUpstreamUnit(name: string, { connection }: AppArgs, script: pulumi.Resource): HostFile {
    const unit = upstreamUnitName(this.layout);
    return new HostFile(
      `${name}-unit-upstream`,
      {
        connection,
        path: `${UNIT_DIR}/${unit}`,
        content: renderUpstreamUnit(this.layout, { script: releaseScriptPath(this.layout) }),
        reload: `systemctl daemon-reload && systemctl enable --quiet ${q(unit)} && systemctl restart ${q(unit)}`,
        onDelete: unitRemovalCommand(unit),
      },
      { parent: this, dependsOn: [script] },
    );
  }

  private createProxySite(
    name: string,
    { hostnames, tls, proxy, app, openSshOnly, connection, balancer }: AppArgs,
    after: pulumi.Resource[],
  ): HostFile {
    const cmd = proxyCommands(proxy.kind);
    const input = {
      hostnames,
      // Behind a balancer the proxy serves plain HTTP; the balancer holds the certificate.
      tls: balancer ? { ...tls, mode: "off" as const } : tls,
      proxy,
      app,
      ...(balancer ? { balancer } : {}),
    };
    const caddy = proxy.kind === "caddy";
    const deps = [...after];
    if (tls.mode === "certbot") {
      // The first certificate comes through the bootstrap site; then the full site replaces it.
      deps.push(
        hostStep(
          `${name}-certbot`,
          {
            connection,
            openSshOnly: openSshOnly ?? false,
            description: `certbot certificate for ${input.hostnames.join(", ")}`,
            create: certbotIssueScript(this.layout, {
              hostnames: input.hostnames,
              email: tls.email,
              acmeDirectory: tls.acmeDirectory,
              bootstrapSite: renderNginxSite(this.layout, { ...input, certbotBootstrap: true }),
              fullSite: renderNginxSite(this.layout, input),
            }),
            timeoutMinutes: 10,
          },
          { parent: this, dependsOn: after },
        ),
      );
    }
    return new HostFile(
      `${name}-site`,
      {
        connection,
        path: caddy ? this.layout.caddySite : this.layout.nginxSite,
        content: caddy ? renderCaddySite(this.layout, input) : renderNginxSite(this.layout, input),
        validate: cmd.validate,
        reload: cmd.reload,
      },
      { parent: this, dependsOn: deps },
    );
  }

  private createHousekeeping(
    name: string,
    { proxy, connection, app }: AppArgs,
    after: pulumi.Resource[],
  ): HostFile[] {
    const backupWrapper = `#!/bin/sh\n# Managed by apphost: the scheduled backup.\nexec ${releaseScriptPath(this.layout)} backup scheduled\n`;
    const web = webProcess(app);
    const needrestart = needrestartConfPath(this.layout);
    return [
      ...(web
        ? [
            new HostFile(
              `${name}-needrestart`,
              {
                connection,
                path: needrestart,
                content: renderNeedrestartConf(this.layout, web),
                // needrestart evaluates it as Perl: one that does not compile would stop its every run.
                validate: `perl -c ${needrestart}`,
                onDelete: "",
              },
              { parent: this, dependsOn: after },
            ),
          ]
        : []),
      new HostFile(
        `${name}-backup-script`,
        {
          connection,
          path: `${this.layout.bin}/apphost-backup`,
          content: backupWrapper,
          mode: "0750",
          onDelete: "",
        },
        { parent: this, dependsOn: after },
      ),
      new HostFile(
        `${name}-logrotate`,
        {
          connection,
          path: logrotatePath(this.layout),
          content: renderLogrotate(this.layout, { proxy }),
        },
        { parent: this, dependsOn: after },
      ),
    ];
  }

  /** What the processes run with: a change re-publishes the same code. */
  private configHash(deps: { env: HostFile; units: HostFile[]; script: HostFile }): pulumi.Output<string> {
    return pulumi
      .all([deps.env.sha256, ...deps.units.map((u) => u.sha256), deps.script.sha256])
      .apply((hashes) => sha256(hashes.join("\n")));
  }

  private createRelease(
    name: string,
    { releases, connection, artifact, secretEnv, databaseUrl }: AppArgs,
    deps: { env: HostFile; units: HostFile[]; script: HostFile; after: pulumi.Resource[] },
  ): Release {
    if (!artifact) throw new Error(`${name}: App needs the artifact unless the release is rolled out`);
    return new Release(
      `${name}-release`,
      {
        connection,
        script: releaseScriptPath(this.layout),
        artifact: artifact.path,
        contentHash: artifact.contentHash,
        requirementsHash: artifact.requirementsHash,
        configHash: this.configHash(deps),
        rollbackTo: releases.rollbackTo,
        lockOwner: lockOwner(),
        redactions: pulumi.secret(
          pulumi.all([secretEnv, databaseUrl]).apply(([env, url]) => secretValues(env, url)),
        ),
      },
      { parent: this, dependsOn: [deps.env, ...deps.units, deps.script, ...deps.after] },
    );
  }
}
