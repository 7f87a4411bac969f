/**
 * apphost:host.count > 1 on ec2: an Application Load Balancer in front of the
 * instances. HTTP redirects to HTTPS; HTTPS (TLS 1.2 and later) forwards to a
 * target group whose health check is apphost:app.healthPath and whose
 * deregistration delay is apphost:releases.drainSeconds. The certificate is
 * ACM's, validated through Cloudflare records this component creates; the
 * hostnames are CNAMEs to the load balancer. The instances' security group
 * admits HTTP from the load balancer's group only (components/host.ts).
 */
import type * as aws from "@pulumi/aws";
import type * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { computed } from "./computed";
import { DNS_DEFAULTS, isProductionStack } from "./config/defaults";
import type { HostnameConfig } from "./config/types";
import { resourceTags, type StackIdentity } from "./host";
import { hostLayout } from "./paths";

/** TLS 1.3 and 1.2 only, AWS's recommended policy for new listeners. */
export const ALB_SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06";

export interface LoadBalancerArgs {
  /**
   * Whose load balancer (`stackIdentity(config)`): it names, tags and
   * describes the resources; a prod* stack's has deletion protection
   */
  identity: StackIdentity;
  /**
   * apphost:dns.hostnames: the certificate's names (the first its domain),
   * each a CNAME to the load balancer, proxied by Cloudflare or not
   */
  hostnames: Pick<HostnameConfig, "name" | "proxied">[];
  /** apphost:proxy.httpPort: where the instances' proxies answer the load balancer */
  targetPort: number;
  /** apphost:app.healthPath: what the target group's health check requests */
  healthPath: string;
  /** apphost:releases.drainSeconds: how long a deregistered instance keeps its requests (the deregistration delay) */
  drainSeconds: number;
  /** The VPC of the instances */
  vpcId: pulumi.Input<string>;
  /** Two availability zones at least */
  subnetIds: pulumi.Input<string[]>;
  /** The Cloudflare zone (Dns.zoneId) */
  zoneId: pulumi.Input<string | undefined>;
}

export class LoadBalancer extends pulumi.ComponentResource {
  /** The group the instances admit HTTP from */
  readonly securityGroupId: pulumi.Output<string>;
  /** What the hostnames point at */
  readonly dnsName: pulumi.Output<string>;
  readonly nodes: {
    securityGroup: aws.ec2.SecurityGroup;
    rules: (aws.vpc.SecurityGroupIngressRule | aws.vpc.SecurityGroupEgressRule)[];
    alb: aws.lb.LoadBalancer;
    targetGroup: aws.lb.TargetGroup;
    certificate: aws.acm.Certificate;
    validationRecords: cloudflare.DnsRecord[];
    validation: aws.acm.CertificateValidation;
    https: aws.lb.Listener;
    http: aws.lb.Listener;
    records: cloudflare.DnsRecord[];
    attachments: aws.lb.TargetGroupAttachment[];
  };
  private readonly name: string;
  private readonly targetPort: number;

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:LoadBalancer", name, {}, opts);
    this.name = name;
    this.targetPort = args.targetPort;
    const awsSdk = require("@pulumi/aws") as typeof import("@pulumi/aws");
    const cf = require("@pulumi/cloudflare") as typeof import("@pulumi/cloudflare");
    const { identity, hostnames } = args;
    const childOpts = { parent: this };
    const tags = resourceTags(identity);
    const id = hostLayout(identity.app, identity.stack).id;
    const prod = isProductionStack(identity.stack);

    const securityGroup = new awsSdk.ec2.SecurityGroup(
      `${name}-sg`,
      {
        description: `apphost ${identity.project}/${identity.stack}: the load balancer, HTTP and HTTPS from anywhere`,
        vpcId: args.vpcId,
        tags: { ...tags, Name: `${id}-lb` },
      },
      childOpts,
    );
    const rules = [
      ...[80, 443].map(
        (port) =>
          new awsSdk.vpc.SecurityGroupIngressRule(
            `${name}-in-${port}`,
            {
              securityGroupId: securityGroup.id,
              description: `${port === 80 ? "HTTP (redirected)" : "HTTPS"} from anywhere`,
              ipProtocol: "tcp",
              fromPort: port,
              toPort: port,
              cidrIpv4: "0.0.0.0/0",
              tags,
            },
            childOpts,
          ),
      ),
      new awsSdk.vpc.SecurityGroupEgressRule(
        `${name}-out-all`,
        {
          securityGroupId: securityGroup.id,
          description: "To the instances and their health checks",
          ipProtocol: "-1",
          cidrIpv4: "0.0.0.0/0",
          tags,
        },
        childOpts,
      ),
    ];
    const alb = new awsSdk.lb.LoadBalancer(
      name,
      {
        loadBalancerType: "application",
        internal: false,
        securityGroups: [securityGroup.id],
        subnets: args.subnetIds,
        dropInvalidHeaderFields: true,
        enableDeletionProtection: prod,
        tags: { ...tags, Name: id },
      },
      childOpts,
    );
    const targetGroup = new awsSdk.lb.TargetGroup(
      `${name}-tg`,
      {
        port: args.targetPort,
        protocol: "HTTP",
        targetType: "instance",
        vpcId: args.vpcId,
        deregistrationDelay: args.drainSeconds,
        healthCheck: {
          enabled: true,
          path: args.healthPath,
          protocol: "HTTP",
          matcher: "200-299",
          interval: 10,
          timeout: 5,
          healthyThreshold: 2,
          unhealthyThreshold: 2,
        },
        tags,
      },
      childOpts,
    );
    const [primary, ...others] = hostnames.map((h) => h.name);
    const certificate = new awsSdk.acm.Certificate(
      `${name}-cert`,
      {
        domainName: primary,
        subjectAlternativeNames: others,
        validationMethod: "DNS",
        tags,
      },
      { ...childOpts, deleteBeforeReplace: false },
    );
    const zoneId = pulumi.output(args.zoneId).apply((z) => {
      if (!z) throw new Error("the load balancer's certificate needs apphost:dns.provider cloudflare");
      return z;
    });
    const options = computed(certificate.domainValidationOptions);
    // One validation record per hostname, found by its domain name (ACM does not keep the order).
    const validationRecords = hostnames.map((h) => {
      const option = options.apply((all) => {
        const o = all.find((x) => x.domainName === h.name);
        if (!o) throw new Error(`ACM returned no DNS validation record for ${h.name}`);
        return o;
      });
      return new cf.DnsRecord(
        `${name}-validation-${h.name.replace(/\./g, "-")}`,
        {
          zoneId,
          name: option.apply((o) => (o.resourceRecordName ?? "").replace(/\.$/, "")),
          type: option.apply((o) => o.resourceRecordType ?? "CNAME"),
          content: option.apply((o) => (o.resourceRecordValue ?? "").replace(/\.$/, "")),
          ttl: DNS_DEFAULTS.ttl,
          proxied: false,
          comment: `apphost ${identity.project}/${identity.stack}: ACM validation`,
        },
        childOpts,
      );
    });
    const validation = new awsSdk.acm.CertificateValidation(
      `${name}-cert-validation`,
      {
        certificateArn: certificate.arn,
        validationRecordFqdns: options.apply((all) => all.map((o) => o.resourceRecordName ?? "")),
      },
      { ...childOpts, dependsOn: validationRecords },
    );
    const https = new awsSdk.lb.Listener(
      `${name}-https`,
      {
        loadBalancerArn: alb.arn,
        port: 443,
        protocol: "HTTPS",
        sslPolicy: ALB_SSL_POLICY,
        certificateArn: validation.certificateArn,
        defaultActions: [{ type: "forward", targetGroupArn: targetGroup.arn }],
        tags,
      },
      childOpts,
    );
    const http = new awsSdk.lb.Listener(
      `${name}-http`,
      {
        loadBalancerArn: alb.arn,
        port: 80,
        protocol: "HTTP",
        defaultActions: [
          { type: "redirect", redirect: { protocol: "HTTPS", port: "443", statusCode: "HTTP_301" } },
        ],
        tags,
      },
      childOpts,
    );
    const records = hostnames.map(
      (h) =>
        new cf.DnsRecord(
          `${name}-${h.name.replace(/\./g, "-")}-cname`,
          {
            zoneId,
            name: h.name,
            type: "CNAME",
            content: alb.dnsName,
            proxied: h.proxied,
            ttl: h.proxied ? DNS_DEFAULTS.proxiedTtl : DNS_DEFAULTS.ttl,
            comment: `apphost ${identity.project}/${identity.stack}: the load balancer`,
          },
          childOpts,
        ),
    );
    this.securityGroupId = securityGroup.id;
    this.dnsName = alb.dnsName;
    this.nodes = {
      securityGroup,
      rules,
      alb,
      targetGroup,
      certificate,
      validationRecords,
      validation,
      https,
      http,
      records,
      attachments: [],
    };
    this.registerOutputs({ dnsName: this.dnsName });
  }

  /**
   * An instance into the target group, once `after` (its release) is done: a
   * new instance serves the live release before the load balancer sends it
   * traffic; a removed one is deregistered (drained for drainSeconds) first.
   */
  attach(
    hostName: string,
    instanceId: pulumi.Input<string>,
    after: pulumi.Resource[],
  ): aws.lb.TargetGroupAttachment {
    const awsSdk = require("@pulumi/aws") as typeof import("@pulumi/aws");
    const attachment = new awsSdk.lb.TargetGroupAttachment(
      `${this.name}-${hostName}`,
      { targetGroupArn: this.nodes.targetGroup.arn, targetId: instanceId, port: this.targetPort },
      { parent: this, dependsOn: after },
    );
    this.nodes.attachments.push(attachment);
    return attachment;
  }
}
