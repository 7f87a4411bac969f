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
import type { StackConfig } from "./config/types";
import { hostLayout, upstreamUnitName, type HostLayout } from "./paths";
import type { SshConnection } from "./remote/connection";
import { hostNeedsOpenSsh, hostStep } from "./remote/command";
import { HostFile } from "./remote/resources";
import { Release, type PhaseTime } from "./remote/release";
import { shellQuote as q } from "./remote/ssh";
import { buildArtifact } from "./release/artifact";
import type { S3Target } from "./release/backup";
import { releaseScriptPath, renderReleaseScript } from "./release/script";
import { acmeCaRootPath, originCertPaths } from "./render/common";
import { certbotIssueScript } from "./render/certbot";
import { renderCaddySite } from "./render/caddy";
import { envFileOwnership, renderEnvFile } from "./render/env";
import { logrotatePath, renderLogrotate } from "./render/logrotate";
import { renderNginxSite } from "./render/nginx";
import { deleteUpstreamTable } from "./render/nftables";
import {
  backupUnitNames,
  renderBackupService,
  renderBackupTimer,
  renderProcessUnits,
  renderUpstreamUnit,
} from "./render/systemd";
import { renderTmpfiles, tmpfilesPath } from "./render/tmpfiles";
import { proxyCommands } from "./server";

export interface AppArgs {
  config: StackConfig;
  connection: pulumi.Input<SshConnection>;
  /** `apphost:secretEnv` plus generated secrets, merged into the env file */
  secretEnv: pulumi.Input<Record<string, string>>;
  /** postgres: the stack's `DATABASE_URL` (components/database.ts), secret */
  databaseUrl?: pulumi.Input<string>;
  /** cloudflare-origin: the certificate and key installed for the proxy */
  originCertificate?: { certificatePem: pulumi.Input<string>; privateKeyPem: pulumi.Input<string> };
  /** apphost:backups.s3: where each backup is copied (`BackupBucket.target`); absent: host only */
  backupTarget?: pulumi.Input<S3Target>;
  /** Resources of the shared host setup that must exist first */
  dependsOn: pulumi.Input<pulumi.Resource>[];
  /** Project directory the app source is relative to */
  projectDir: string;
}

function sha256(text: string | Buffer): string {
  return crypto.createHash("sha256").update(text).digest("hex");
}

/** Where `pulumi destroy` moves a stack's data and backups: `/var/lib/apphost/kept/<id>-<UTC stamp>`. */
export const KEPT_DIR = "/var/lib/apphost/kept";

/**
 * On destroy: when shared/data or shared/backups holds anything, move shared/
 * to KEPT_DIR under a dated name, owned by root (the app user is deleted next,
 * and a later user could get its uid), and say where. Nothing is deleted.
 */
export function keepDataCommands(layout: HostLayout): string[] {
  const shared = q(layout.shared);
  return [
    `if [ -n "$(find ${q(layout.data)} ${q(layout.backups)} -mindepth 1 -print -quit 2>/dev/null)" ]; then`,
    `  kept=${KEPT_DIR}/${layout.id}-$(date -u +%Y%m%dT%H%M%SZ)`,
    `  install -d -m 0700 ${KEPT_DIR}`,
    `  mv ${shared} "$kept"`,
    '  chown -R -h root:root "$kept"',
    `  echo "apphost: kept the data and backups of ${layout.id} in $kept (destroy never deletes them); delete that directory when you no longer need it" >&2`,
    "fi",
  ];
}

/** The command that creates the stack's user and layout, and its exact mirror for destroy. */
export function layoutCommands(layout: HostLayout, config: StackConfig): { create: string; delete: string } {
  const cmd = proxyCommands(config.proxy.kind);
  // Written by apphost versions that switched by rewriting it and reloading the proxy.
  const legacyUpstreamFile = config.proxy.kind === "caddy" ? layout.caddyUpstream : layout.nginxUpstream;
  const units = `${layout.unitPrefix}-*`;
  return {
    create: [
      "set -euo pipefail",
      `if ! id -u ${q(layout.user)} >/dev/null 2>&1; then`,
      `  useradd --system --user-group --home-dir ${q(layout.root)} --no-create-home --shell /usr/sbin/nologin ${q(layout.user)}`,
      "fi",
      `install -d -m 0755 ${q(layout.root)} ${q(layout.bin)}`,
      "",
    ].join("\n"),
    delete: [
      "set -euo pipefail",
      `for unit in $(systemctl list-units --all --plain --no-legend ${q(units)} | awk '{print $1}'); do`,
      '  systemctl disable --now "$unit" >/dev/null 2>&1 || systemctl stop "$unit" || true',
      "done",
      // The stack's nftables table (its upstream switch); only this stack's.
      `if command -v nft >/dev/null; then nft ${deleteUpstreamTable(layout)} 2>/dev/null || true; fi`,
      `rm -f ${q(legacyUpstreamFile)} ${q(layout.envFile)}`,
      // The data and its backups outlive the stack: moved aside (root's alone, the app user is going), never deleted.
      ...keepDataCommands(layout),
      `rm -rf --one-file-system ${q(layout.root)}`,
      `if id -u ${q(layout.user)} >/dev/null 2>&1; then userdel ${q(layout.user)}; fi`,
      `if getent group ${q(layout.user)} >/dev/null; then groupdel ${q(layout.user)}; fi`,
      "systemctl daemon-reload",
      // A timer whose service went first is left "failed"; forget it.
      `systemctl reset-failed ${q(units)} 2>/dev/null || true`,
      `${cmd.validate} >/dev/null && ${cmd.reload}`,
      "",
    ].join("\n"),
  };
}

/**
 * The artifact in the local cache (`<cache>/<contentHash>.tar.gz`), which the
 * Release reads when it deploys. A cached file is used only when its sha256 is
 * the one just built (the build is deterministic); anything else (a truncated
 * or edited file) is replaced. Written under a name of its own, then renamed:
 * two programs building the same release at once (two stacks, parallel tests)
 * never read half a file.
 */
export function cacheArtifact(
  cacheDir: string,
  artifact: { contentHash: string; sha256: string; tarGz: Buffer },
): string {
  fs.mkdirSync(cacheDir, { recursive: true });
  const artifactPath = path.join(cacheDir, `${artifact.contentHash}.tar.gz`);
  if (fs.existsSync(artifactPath) && sha256(fs.readFileSync(artifactPath)) === artifact.sha256)
    return artifactPath;
  const partial = `${artifactPath}.${process.pid}.partial`;
  fs.writeFileSync(partial, artifact.tarGz);
  fs.renameSync(partial, artifactPath);
  return artifactPath;
}

/**
 * What an error must never show: every apphost:secretEnv value (SECRET_KEY
 * included), the database URL and its password.
 */
export function secretValues(env: Record<string, string>, databaseUrl?: string): string[] {
  const values = Object.values(env);
  if (databaseUrl) {
    values.push(databaseUrl);
    const password = /^[a-z+]+:\/\/[^:/@]*:([^@]*)@/.exec(databaseUrl)?.[1];
    if (password) values.push(password, decodeURIComponent(password));
  }
  return [...new Set(values.filter((v) => v.length >= 4))];
}

export class App extends pulumi.ComponentResource {
  readonly layout: HostLayout;
  readonly releaseId: pulumi.Output<string>;
  readonly liveRelease: pulumi.Output<string>;
  /** Seconds per phase of the last deploy or rollback (`pulumi stack output releasePhases`) */
  readonly releasePhases: pulumi.Output<PhaseTime[]>;
  readonly url: string;

  constructor(name: string, args: AppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:App", name, {}, opts);
    const { config } = args;
    this.layout = hostLayout(config.app.name, config.stack);
    const base = this.createLayout(name, args);
    const dirs = this.createDirectories(name, args, base);
    const certs = this.createCertificates(name, args, base);
    const env = this.createEnvFile(name, args, dirs);
    const units = this.createUnits(name, args, dirs);
    const script = this.createReleaseScript(name, args, dirs);
    const upstream = this.createUpstreamUnit(name, args, script);
    const site = this.createProxySite(name, args, [dirs, upstream, ...certs]);
    const housekeeping = this.createHousekeeping(name, args, [script]);
    const release = this.createRelease(name, args, { env, units, script, after: [site, ...housekeeping] });
    this.releaseId = release.releaseId;
    this.liveRelease = release.live;
    this.releasePhases = release.phaseSeconds;
    const primary = config.dns.hostnames[0]?.name ?? "localhost";
    this.url = `${config.tls.mode === "off" ? "http" : "https"}://${primary}`;
    this.registerOutputs({ releaseId: this.releaseId, url: this.url });
  }

  private createLayout(name: string, args: AppArgs): pulumi.CustomResource {
    const cmds = layoutCommands(this.layout, args.config);
    return hostStep(
      `${name}-layout`,
      {
        connection: args.connection,
        openSshOnly: hostNeedsOpenSsh(args.config.host),
        description: `layout of ${this.layout.id}`,
        create: cmds.create,
        delete: cmds.delete,
      },
      { parent: this, dependsOn: args.dependsOn },
    );
  }

  private createDirectories(name: string, { config, connection }: AppArgs, after: pulumi.Resource): HostFile {
    const file = tmpfilesPath(this.layout);
    return new HostFile(
      `${name}-tmpfiles`,
      {
        connection,
        path: file,
        content: renderTmpfiles(this.layout, { proxy: config.proxy, tls: config.tls }),
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
    const acmeRoot = args.config.tls.acmeCaRoot;
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
    const cmd = proxyCommands(args.config.proxy.kind);
    const group = args.config.proxy.kind === "caddy" ? "caddy" : "root";
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
    { config, connection, secretEnv, databaseUrl }: AppArgs,
    after: pulumi.Resource,
  ): HostFile {
    const content = pulumi.secret(
      pulumi.all([secretEnv, databaseUrl]).apply(([secrets, url]) =>
        renderEnvFile(this.layout, {
          stack: config.stack,
          env: { ...config.app.env, ...secrets },
          database: config.database,
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

  private createUnits(
    name: string,
    { config, connection, backupTarget }: AppArgs,
    after: pulumi.Resource,
  ): HostFile[] {
    const units = renderProcessUnits(this.layout, {
      processes: config.app.processes,
      runtime: config.app.runtime,
    });
    const backup = backupUnitNames(this.layout);
    const backupExec = `${this.layout.bin}/apphost-backup`;
    const all = [
      ...units,
      {
        name: backup.service,
        path: `/etc/systemd/system/${backup.service}`,
        content: renderBackupService(this.layout, {
          backups: config.backups,
          execStart: backupExec,
          // The copy to S3 needs the network (and IMDS for the instance's credentials); so does pg_dump of an RDS database.
          network: backupTarget !== undefined || config.database.kind === "rds",
        }),
      },
      {
        name: backup.timer,
        path: `/etc/systemd/system/${backup.timer}`,
        content: renderBackupTimer(this.layout, { backups: config.backups, execStart: backupExec }),
      },
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
          onDelete: u.name.endsWith(".timer")
            ? `systemctl disable --now ${q(u.name)} || true; systemctl daemon-reload`
            : "systemctl daemon-reload",
        },
        { parent: this, dependsOn },
      );
    const services = all.filter((u) => !u.name.endsWith(".timer")).map((u) => file(u, [after]));
    const timers = all.filter((u) => u.name.endsWith(".timer")).map((u) => file(u, [after, ...services]));
    return [...services, ...timers];
  }

  private createReleaseScript(
    name: string,
    { config, connection, backupTarget }: AppArgs,
    after: pulumi.Resource,
  ): HostFile {
    const render = (s3?: S3Target) =>
      renderReleaseScript({
        layout: this.layout,
        app: config.app,
        database: config.database,
        releases: config.releases,
        backups: config.backups,
        proxy: config.proxy,
        s3,
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
        path: `/etc/systemd/system/${unit}`,
        content: renderUpstreamUnit(this.layout, { script: releaseScriptPath(this.layout) }),
        reload: `systemctl daemon-reload && systemctl enable --quiet ${q(unit)} && systemctl restart ${q(unit)}`,
        onDelete: `systemctl disable --now ${q(unit)} || true; systemctl daemon-reload`,
      },
      { parent: this, dependsOn: [script] },
    );
  }

  private createProxySite(name: string, { config, connection }: AppArgs, after: pulumi.Resource[]): HostFile {
    const cmd = proxyCommands(config.proxy.kind);
    const input = {
      hostnames: config.dns.hostnames.map((h) => h.name),
      tls: config.tls,
      proxy: config.proxy,
      app: config.app,
    };
    const caddy = config.proxy.kind === "caddy";
    const deps = [...after];
    if (config.tls.mode === "certbot") {
      // The first certificate comes through the bootstrap site; then the full site replaces it.
      deps.push(
        hostStep(
          `${name}-certbot`,
          {
            connection,
            openSshOnly: hostNeedsOpenSsh(config.host),
            description: `certbot certificate for ${input.hostnames.join(", ")}`,
            create: certbotIssueScript(this.layout, {
              hostnames: input.hostnames,
              email: config.tls.email,
              acmeDirectory: config.tls.acmeDirectory,
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
    { config, connection }: AppArgs,
    after: pulumi.Resource[],
  ): HostFile[] {
    const backupWrapper = `#!/bin/sh\n# Managed by apphost: the scheduled backup.\nexec ${releaseScriptPath(this.layout)} backup scheduled\n`;
    return [
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
          content: renderLogrotate(this.layout, { proxy: config.proxy }),
        },
        { parent: this, dependsOn: after },
      ),
    ];
  }

  private createRelease(
    name: string,
    { config, connection, projectDir, secretEnv, databaseUrl }: AppArgs,
    deps: { env: HostFile; units: HostFile[]; script: HostFile; after: pulumi.Resource[] },
  ): Release {
    const source = path.resolve(projectDir, config.app.source);
    if (!fs.existsSync(source)) {
      throw new Error(
        `apphost:app.source: "${config.app.source}" does not exist (resolved to ${source}); point it at the app directory`,
      );
    }
    const artifact = buildArtifact(source, config.app);
    const cacheDir = path.join(
      process.env.APPHOST_CACHE ?? path.join(os.homedir(), ".cache", "apphost"),
      "artifacts",
    );
    const artifactPath = cacheArtifact(cacheDir, artifact);
    // What the processes run with: a change re-publishes the same code.
    const configHash = pulumi
      .all([deps.env.sha256, ...deps.units.map((u) => u.sha256), deps.script.sha256])
      .apply((hashes) => sha256(hashes.join("\n")));
    return new Release(
      `${name}-release`,
      {
        connection,
        script: releaseScriptPath(this.layout),
        artifact: artifactPath,
        contentHash: artifact.contentHash,
        requirementsHash: artifact.requirementsHash,
        configHash,
        rollbackTo: config.releases.rollbackTo,
        lockOwner: `${os.userInfo().username}@${os.hostname()}`,
        redactions: pulumi.secret(
          pulumi.all([secretEnv, databaseUrl]).apply(([env, url]) => secretValues(env, url)),
        ),
      },
      { parent: this, dependsOn: [deps.env, ...deps.units, deps.script, ...deps.after] },
    );
  }
}
