/**
 * The balancer host of `apphost:lb`: Caddy in front of every app host
 * (components/render/balancer.ts). Its site template and `apphost-lb` come
 * first; the list of app hosts is written after the release reached them
 * (`after`), so a host being added joins the balancer only once it serves
 * the live release, and a host being removed leaves it before its own
 * resources are deleted.
 */
import * as pulumi from "@pulumi/pulumi";
import type { TlsConfig } from "./config/types";
import type { StackIdentity } from "./host";
import { balancerLayout, hostLayout, type BalancerLayout } from "./paths";
import type { SshConnection } from "./remote/connection";
import { HostFile } from "./remote/resources";
import { shellQuote as q } from "./shell";
import { renderBalancerScript, renderBalancerSite, renderUpstreams } from "./render/balancer";
import { acmeCaRootPath } from "./render/common";
import { proxyCommands } from "./render/common";

/**
 * What apphost:lb's balancer host installs besides the baseline
 * (`ServerArgs.packages`): Caddy, and curl for `apphost-lb`'s health checks.
 */
export const BALANCER_PACKAGES = ["caddy", "curl"];

export interface BalancerArgs {
  /** Whose balancer (`stackIdentity(config)`): `<app>-<stack>` names its files on the host */
  identity: Pick<StackIdentity, "app" | "stack">;
  /** The balancer host's connection (its own Host component) */
  connection: pulumi.Input<SshConnection>;
  /** The app hosts' addresses as the balancer reaches them, in order */
  upstreams: string[];
  /** apphost:proxy.httpPort: where the app hosts' proxies answer the balancer */
  upstreamPort: number;
  /** apphost:dns.hostnames' names: the sites it serves; the first is the Host of `apphost-lb`'s health checks */
  hostnames: string[];
  /** apphost:tls: how the balancer gets its certificate (caddy-acme, internal or off), and the ACME server's root it trusts */
  tls: Pick<TlsConfig, "mode" | "email" | "acmeDirectory" | "acmeCaRoot">;
  /** apphost:app.healthPath: what the health checks request of each app host */
  healthPath: string;
  /** apphost:lb.healthIntervalSeconds: seconds between two health checks of each app host. @default 1 */
  healthIntervalSeconds?: number;
}

export class Balancer extends pulumi.ComponentResource {
  readonly layout: BalancerLayout;
  /** `apphost-lb` and the site template: what the rolling release drains and undrains with */
  readonly ready: pulumi.Resource[];
  private readonly args: BalancerArgs;
  private readonly name: string;

  constructor(name: string, args: BalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:Balancer", name, {}, opts);
    this.args = args;
    this.name = name;
    this.layout = balancerLayout(args.identity.app, args.identity.stack);
    // The balancer host's shared setup (Server.ready) comes as opts.dependsOn.
    const after = opts?.dependsOn;
    const ca = this.createAcmeCaRoot(name, args, after);
    const script = this.createScript(name, args, after);
    const template = this.createTemplate(name, args, [script, ...ca]);
    this.ready = [script, template];
    this.registerOutputs({});
  }

  /**
   * The list of app hosts, written after `after` (the release on every host):
   * `apphost-lb apply` then serves exactly them. Called once by the program.
   */
  listUpstreams(after: pulumi.Resource[]): HostFile {
    const { connection, upstreams, upstreamPort } = this.args;
    return new HostFile(
      `${this.name}-upstreams`,
      {
        connection,
        path: this.layout.upstreams,
        content: renderUpstreams(upstreams, upstreamPort),
        mode: "0600",
        reload: `${q(this.layout.script)} apply`,
        onDelete: `rm -f ${q(this.layout.site)} ${q(this.layout.drained)}; ${proxyCommands("caddy").validate} >/dev/null && ${proxyCommands("caddy").reload}`,
      },
      { parent: this, dependsOn: [...this.ready, ...after] },
    );
  }

  private createAcmeCaRoot(
    name: string,
    { identity, connection, tls }: BalancerArgs,
    dependsOn: pulumi.ComponentResourceOptions["dependsOn"],
  ): HostFile[] {
    if (tls.acmeCaRoot === undefined) return [];
    return [
      new HostFile(
        `${name}-acme-ca-root`,
        {
          connection,
          path: acmeCaRootPath(hostLayout(identity.app, identity.stack)),
          content: tls.acmeCaRoot.trim() + "\n",
          mode: "0644",
          reload: "update-ca-certificates >/dev/null",
          onDelete: "update-ca-certificates --fresh >/dev/null",
        },
        { parent: this, dependsOn },
      ),
    ];
  }

  private createScript(
    name: string,
    { connection, hostnames, healthPath, tls, healthIntervalSeconds }: BalancerArgs,
    dependsOn: pulumi.ComponentResourceOptions["dependsOn"],
  ): HostFile {
    return new HostFile(
      `${name}-script`,
      {
        connection,
        path: this.layout.script,
        content: renderBalancerScript(this.layout, {
          host: hostnames[0] ?? "localhost",
          healthPath,
          https: tls.mode !== "off",
          healthIntervalSeconds: healthIntervalSeconds ?? 1,
        }),
        mode: "0750",
        onDelete: "",
      },
      { parent: this, dependsOn },
    );
  }

  private createTemplate(
    name: string,
    { identity, connection, hostnames, tls, healthPath, healthIntervalSeconds }: BalancerArgs,
    after: pulumi.Resource[],
  ): HostFile {
    const layout = hostLayout(identity.app, identity.stack);
    return new HostFile(
      `${name}-site`,
      {
        connection,
        path: this.layout.template,
        content: renderBalancerSite(layout, this.layout, {
          hostnames,
          tls,
          healthPath,
          healthIntervalSeconds: healthIntervalSeconds ?? 1,
        }),
        mode: "0600",
        // A changed site applies at once when the hosts are listed already (not on the first up).
        reload: `if [ -f ${q(this.layout.upstreams)} ]; then ${q(this.layout.script)} apply; fi`,
        onDelete: "",
      },
      { parent: this, dependsOn: after },
    );
  }
}
