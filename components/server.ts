/**
 * What every stack on a host shares: the baseline (packages, unattended
 * upgrades, sshd, time sync, swap), host-wide directories and the main proxy
 * configuration. Two stacks on one host declare the same content here, and
 * these resources are retained on destroy, so destroying one stack never
 * pulls the proxy out from under the other.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ProxyConfig } from "./config/types";
import { hostStep } from "./remote/command";
import { HostFile } from "./remote/resources";
import type { SshConnection } from "./remote/connection";
import { NGINX_DEFAULT_SITE } from "./paths";
import { renderBaseline } from "./render/baseline";
import { CADDYFILE_PATH, renderCaddyfile } from "./render/caddy";
import { proxyCommands } from "./render/common";
import { NGINX_HTTP_CONF_PATH, renderNginxHttpConf } from "./render/nginx";
import { renderSharedTmpfiles, TMPFILES_SHARED_PATH } from "./render/tmpfiles";

export interface ServerArgs {
  /** The host's connection (`Host.connection`) */
  connection: pulumi.Input<SshConnection>;
  /** apphost:proxy: the proxy the host runs (`kind`), and its ports in the main Caddyfile */
  proxy: Pick<ProxyConfig, "kind" | "httpPort" | "httpsPort">;
  /**
   * apphost:tls.mode is off: the proxy listens on httpPort alone (behind a TLS terminator, which may be on
   * this host, on httpsPort), so the baseline's one-proxy step leaves httpsPort to others. @default false
   */
  tlsOff?: boolean;
  /**
   * The Debian packages the host needs besides the baseline's own:
   * `runtimePackages(config)` on an app host, `BALANCER_PACKAGES` on
   * apphost:lb's balancer host (Caddy, nothing of the app).
   */
  packages: string[];
  /** apphost:host.swapMb: the size of /swapfile in MiB; 0 creates none. @default 0 */
  swapMb?: number;
  /**
   * apphost:host.via is instance-connect (`hostNeedsOpenSsh`): the host
   * steps run through OpenSSH. @default false
   */
  openSshOnly?: boolean;
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

  private createBaseline(
    name: string,
    { connection, proxy, tlsOff, packages, swapMb, openSshOnly }: ServerArgs,
  ): pulumi.CustomResource {
    const ports = tlsOff ? [proxy.httpPort] : [proxy.httpPort, proxy.httpsPort];
    const script = renderBaseline({
      host: { swapMb: swapMb ?? 0 },
      proxy: { kind: proxy.kind, ports },
      packages,
    });
    return hostStep(
      `${name}-baseline`,
      {
        connection,
        openSshOnly: openSshOnly ?? false,
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
    { proxy, connection }: ServerArgs,
    after: pulumi.Resource,
  ): HostFile {
    return new HostFile(
      `${name}-tmpfiles`,
      {
        connection,
        path: TMPFILES_SHARED_PATH,
        content: renderSharedTmpfiles({ proxy }),
        reload: `systemd-tmpfiles --create ${TMPFILES_SHARED_PATH}`,
      },
      { parent: this, dependsOn: [after], retainOnDelete: true },
    );
  }

  private createProxyConfig(
    name: string,
    { proxy, connection, openSshOnly }: ServerArgs,
    after: pulumi.Resource,
  ): pulumi.Resource[] {
    const cmd = proxyCommands(proxy.kind);
    if (proxy.kind === "caddy") {
      return [
        new HostFile(
          `${name}-caddyfile`,
          {
            connection,
            path: CADDYFILE_PATH,
            content: renderCaddyfile({ proxy }),
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
          openSshOnly: openSshOnly ?? false,
          description: "disable nginx's default site",
          create: `rm -f ${NGINX_DEFAULT_SITE} && ${cmd.validate} && ${cmd.reload}`,
        },
        { parent: this, dependsOn: [httpConf], retainOnDelete: true },
      ),
    ];
  }
}
