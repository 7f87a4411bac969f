/**
 * What every stack on a host shares: the baseline (packages, unattended
 * upgrades, sshd, time sync, swap), host-wide directories and the main proxy
 * configuration. Two stacks on one host declare the same content here, and
 * these resources are retained on destroy, so destroying one stack never
 * pulls the proxy out from under the other.
 */
import * as pulumi from "@pulumi/pulumi";
import type { StackConfig } from "./config/types";
import { hostNeedsOpenSsh, hostStep } from "./remote/command";
import { HostFile } from "./remote/resources";
import type { SshConnection } from "./remote/connection";
import { NGINX_DEFAULT_SITE } from "./paths";
import { renderBaseline, runtimePackages } from "./render/baseline";
import { CADDYFILE_PATH, renderCaddyfile } from "./render/caddy";
import { NGINX_HTTP_CONF_PATH, renderNginxHttpConf } from "./render/nginx";
import { renderSharedTmpfiles, TMPFILES_SHARED_PATH } from "./render/tmpfiles";

export interface ServerArgs {
  config: StackConfig;
  connection: pulumi.Input<SshConnection>;
  /** `balancer`: the apphost:lb host, which runs Caddy and nothing of the app. @default "app" */
  role?: "app" | "balancer";
}

/**
 * Commands the proxy resources run; kept together so app.ts uses the same
 * ones. A running proxy is reloaded, never restarted (open connections
 * finish); one that is not running yet (first deploy, or a host that just
 * switched proxies) is started.
 */
export function proxyCommands(kind: "caddy" | "nginx"): { validate: string; reload: string } {
  const reload = (unit: string) =>
    `if systemctl is-active --quiet ${unit}; then systemctl reload ${unit}; else systemctl enable --now ${unit}; fi`;
  return kind === "caddy"
    ? { validate: `caddy validate --adapter caddyfile --config ${CADDYFILE_PATH}`, reload: reload("caddy") }
    : { validate: "nginx -t", reload: reload("nginx") };
}

export class Server extends pulumi.ComponentResource {
  /** Everything host-side that later resources must wait for */
  readonly ready: pulumi.Resource[];

  constructor(name: string, args: ServerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:Server", name, {}, opts);
    const baseline = this.createBaseline(name, args);
    const dirs = this.createSharedDirs(name, args, baseline);
    const proxy = this.createProxyConfig(name, args, dirs);
    this.ready = [baseline, dirs, ...proxy];
    this.registerOutputs({});
  }

  private createBaseline(name: string, { config, connection, role }: ServerArgs): pulumi.CustomResource {
    const script = renderBaseline({
      host: { swapMb: config.host.swapMb },
      packages:
        role === "balancer"
          ? ["caddy", "curl"]
          : runtimePackages({
              proxy: config.proxy,
              app: config.app,
              tls: config.tls,
              database: config.database,
              backups: config.backups,
            }),
    });
    return hostStep(
      `${name}-baseline`,
      {
        connection,
        openSshOnly: hostNeedsOpenSsh(config.host),
        description: "host baseline",
        create: script,
        timeoutMinutes: 30,
      },
      // Shared by every stack on the host: a destroy leaves packages installed.
      { parent: this, retainOnDelete: true },
    );
  }

  private createSharedDirs(
    name: string,
    { config, connection }: ServerArgs,
    after: pulumi.Resource,
  ): HostFile {
    return new HostFile(
      `${name}-tmpfiles`,
      {
        connection,
        path: TMPFILES_SHARED_PATH,
        content: renderSharedTmpfiles({ proxy: config.proxy }),
        reload: `systemd-tmpfiles --create ${TMPFILES_SHARED_PATH}`,
      },
      { parent: this, dependsOn: [after], retainOnDelete: true },
    );
  }

  private createProxyConfig(
    name: string,
    { config, connection }: ServerArgs,
    after: pulumi.Resource,
  ): pulumi.Resource[] {
    const cmd = proxyCommands(config.proxy.kind);
    if (config.proxy.kind === "caddy") {
      return [
        new HostFile(
          `${name}-caddyfile`,
          {
            connection,
            path: CADDYFILE_PATH,
            content: renderCaddyfile({ proxy: config.proxy }),
            validate: cmd.validate,
            reload: cmd.reload,
          },
          { parent: this, dependsOn: [after], retainOnDelete: true },
        ),
      ];
    }
    // Debian's default site answers every unknown Host on :80; apphost's sites replace it.
    const httpConf = new HostFile(
      `${name}-nginx-conf`,
      {
        connection,
        path: NGINX_HTTP_CONF_PATH,
        content: renderNginxHttpConf(),
        validate: cmd.validate,
        reload: cmd.reload,
      },
      { parent: this, dependsOn: [after], retainOnDelete: true },
    );
    return [
      httpConf,
      hostStep(
        `${name}-nginx-default-off`,
        {
          connection,
          openSshOnly: hostNeedsOpenSsh(config.host),
          description: "disable nginx's default site",
          create: `rm -f ${NGINX_DEFAULT_SITE} && ${cmd.validate} && ${cmd.reload}`,
        },
        { parent: this, dependsOn: [httpConf], retainOnDelete: true },
      ),
    ];
  }
}
