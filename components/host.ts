/**
 * The one machine a stack deploys to: a new EC2 instance, or a server that
 * already exists. Either way the rest of apphost sees the same two outputs,
 * the public address (for DNS) and an SSH connection (for everything host-side).
 */
// Type-only at the top: the SDK is loaded where it is used, so stacks without EC2 (the local stack) start faster.
import type * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { Ec2HostConfig, HostConfig, JumpConfig, ProxyConfig } from "./config/types";
import { isProductionStack } from "./config/defaults";
import { hostLayout } from "./paths";
import { computed } from "./computed";
import type { SshConnection, SshProxy } from "./remote/connection";
import { HostConnection } from "./remote/resources";

/** Whose resources these are: the AWS tags, names and descriptions carry it (`stackIdentity`). */
export interface StackIdentity {
  /** The Pulumi project */
  project: string;
  /** The Pulumi stack; a `prod*` stack's instance and data are protected */
  stack: string;
  /** apphost:app.name */
  app: string;
}

/** The `StackIdentity` of a stack's config. */
export function stackIdentity(config: {
  project: string;
  stack: string;
  app: { name: string };
}): StackIdentity {
  return { project: config.project, stack: config.stack, app: config.app.name };
}

export interface HostArgs {
  /** Whose host (`stackIdentity(config)`): it names, tags and describes the AWS resources; prod* stacks protect them */
  identity: StackIdentity;
  /**
   * apphost:host, validated: an EC2 instance to create (ec2), or a server's
   * address (existing); SSH's port, user and route (`via`) either way.
   */
  host: HostConfig;
  /** apphost:proxy's ports (ec2): the firewall opens them to the web, or HTTP alone to the load balancer */
  webPorts: Pick<ProxyConfig, "httpPort" | "httpsPort">;
  /** apphost:dns.ipv6 (ec2): the instance gets an IPv6 address, and the firewall admits IPv6 too. @default false */
  ipv6?: boolean;
  /** `apphost:sshPrivateKey` (`loadStackConfig().sshPrivateKey`); the deployer logs in with it. */
  sshPrivateKey: pulumi.Input<string>;
  /** `apphost:jumpPrivateKey`: the jump host's key (apphost:host.via.jump); the deploy key when unset. */
  jumpPrivateKey?: pulumi.Input<string>;
  /**
   * ec2: the IAM instance profile the instance runs with (`BackupBucket.instanceProfileName`
   * when `apphost:backups.s3` is on). None by default: the instance gets no AWS permission.
   */
  instanceProfile?: pulumi.Input<string>;
  /**
   * ec2 behind the load balancer (apphost:host.count > 1): the instance's
   * subnet and VPC (spread over availability zones by the program), and the
   * load balancer's security group, the only source of HTTP it admits.
   */
  behindLoadBalancer?: {
    subnetId: pulumi.Input<string>;
    vpcId: pulumi.Input<string>;
    securityGroupId: pulumi.Input<string>;
  };
}

/** A security group rule, as data, so tests and docs can read the firewall without AWS. */
export interface FirewallRule {
  /** Suffix of the resource name, stable per port and CIDR so reordering the config replaces nothing */
  id: string;
  description: string;
  ipProtocol: "tcp" | "-1";
  fromPort?: number;
  toPort?: number;
  cidrIpv4?: string;
  cidrIpv6?: string;
  /** From the load balancer's security group (apphost:host.count > 1) instead of a CIDR */
  fromLoadBalancer?: true;
}

export class Host extends pulumi.ComponentResource {
  /** The address DNS points to: the Elastic IP, the instance's public IP, or `apphost:host.address`. */
  readonly publicIp: pulumi.Output<string>;
  /** The instance's IPv6 address when `apphost:dns.ipv6` is on; undefined otherwise. */
  readonly ipv6Address: pulumi.Output<string | undefined>;
  /** How host-side components log in. Always a secret: it carries the private key. */
  readonly connection: pulumi.Output<SshConnection>;
  /**
   * The host key every connection pins: ec2, the ed25519 key apphost generated and installed at launch
   * (or apphost:host.hostKey); existing, apphost:host.hostKey, else undefined (the first key seen is pinned).
   */
  readonly hostKey: pulumi.Output<string | undefined>;
  /** The EC2 instance id; undefined for an existing server. */
  readonly instanceId: pulumi.Output<string | undefined>;
  /** ec2: the instance's VPC and security group, for what only the instance may reach (apphost:database.kind rds). */
  readonly network?: { vpcId: pulumi.Output<string>; securityGroupId: pulumi.Output<string> };
  /** The underlying resources (none for an existing server), for tests and for `pulumi up --replace`. */
  readonly nodes: {
    keyPair?: aws.ec2.KeyPair;
    hostKey?: import("@pulumi/tls").PrivateKey;
    securityGroup?: aws.ec2.SecurityGroup;
    ingressRules: aws.vpc.SecurityGroupIngressRule[];
    egressRules: aws.vpc.SecurityGroupEgressRule[];
    instance?: aws.ec2.Instance;
    eip?: aws.ec2.Eip;
    eipAssociation?: aws.ec2.EipAssociation;
    /** apphost:host.via instance-connect: the endpoint and its security group */
    endpoint?: aws.ec2transitgateway.InstanceConnectEndpoint;
    endpointSecurityGroup?: aws.ec2.SecurityGroup;
  };

  constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:Host", name, {}, opts);
    // Options of every child: hoisted helper functions below cannot use `this` themselves.
    const childOpts = { parent: this };
    const { identity, host } = args;
    const ipv6 = args.ipv6 ?? false;
    // Where SSH connects and how (a jump host, an Instance Connect Endpoint); by default the public address, directly.
    let sshAddress: pulumi.Output<string> | undefined;
    // A jump host is known from the config; an Instance Connect Endpoint once created (below).
    let sshProxy: pulumi.Output<SshProxy | undefined> =
      host.via.kind === "jump"
        ? jumpProxy(host.via, args.jumpPrivateKey ?? args.sshPrivateKey)
        : pulumi.output(undefined);

    if (host.kind === "ec2") {
      const aws = require("@pulumi/aws") as typeof import("@pulumi/aws");
      const tags = resourceTags(identity);
      const ami = lookupAmi(host);
      const vpcId = args.behindLoadBalancer
        ? pulumi.output(args.behindLoadBalancer.vpcId)
        : lookupVpcId(host);
      const keyPair = createKeyPair(host);
      const hostKey = createHostKey();
      const securityGroup = createSecurityGroup();
      const { ingressRules, egressRules } = createFirewallRules(securityGroup);
      const instance = createInstance(host, keyPair, hostKey, securityGroup);
      const elastic = host.elasticIp ? createElasticIp(instance) : undefined;
      const endpoint =
        host.via.kind === "instance-connect" ? createInstanceConnect(securityGroup, instance) : undefined;

      this.nodes = {
        keyPair,
        hostKey,
        securityGroup,
        ingressRules: [...ingressRules, ...(endpoint ? [endpoint.ingress] : [])],
        egressRules: [...egressRules, ...(endpoint ? [endpoint.egress] : [])],
        instance,
        ...elastic,
        ...(endpoint ? { endpoint: endpoint.endpoint, endpointSecurityGroup: endpoint.securityGroup } : {}),
      };
      // apphost:host.hostKey overrides the generated key (an instance launched without it).
      this.hostKey = host.hostKey
        ? pulumi.output(host.hostKey)
        : computed(hostKey.publicKeyOpenssh).apply((k) => k.trim());
      this.publicIp = elastic
        ? // Wait for the association: before it, the address does not reach the instance yet.
          pulumi.all([elastic.eip.publicIp, elastic.eipAssociation.id]).apply(([ip]) => ip)
        : instance.publicIp;
      this.ipv6Address = ipv6
        ? computed(instance.ipv6Addresses.apply((a) => a?.[0]))
        : pulumi.output(undefined);
      this.instanceId = instance.id.apply((id) => id as string | undefined);
      this.network = { vpcId, securityGroupId: securityGroup.id };
      if (endpoint) {
        // Through the endpoint, SSH reaches the instance's private address; the public one serves the web only.
        sshAddress = instance.privateIp;
        sshProxy = pulumi
          .all([instance.id, endpoint.endpoint.id, endpoint.endpoint.region])
          .apply(([instanceId, endpointId, region]): SshProxy => ({
            kind: "instance-connect",
            instanceId,
            endpointId,
            region,
          }));
      }

      /**
       * An EC2 Instance Connect Endpoint in the instance's subnet, with a
       * security group of its own: it may reach the instance's SSH port, and
       * the instance lets SSH in from that group only (no CIDR needed).
       */
      function createInstanceConnect(sg: aws.ec2.SecurityGroup, inst: aws.ec2.Instance) {
        const endpointSg = new aws.ec2.SecurityGroup(
          `${name}-eice-sg`,
          {
            description: `apphost ${identity.project}/${identity.stack}: the EC2 Instance Connect Endpoint, SSH to the instance only`,
            vpcId,
            tags: { ...tags, Name: `${hostLayout(identity.app, identity.stack).id}-eice` },
          },
          childOpts,
        );
        /** SSH on the host's port, from one group to the other */
        const ssh = (own: pulumi.Input<string>, other: pulumi.Input<string>, description: string) => ({
          securityGroupId: own,
          description,
          ipProtocol: "tcp",
          fromPort: host.port,
          toPort: host.port,
          referencedSecurityGroupId: other,
          tags,
        });
        const egress = new aws.vpc.SecurityGroupEgressRule(
          `${name}-eice-out-ssh`,
          ssh(endpointSg.id, sg.id, "SSH to the apphost instance"),
          childOpts,
        );
        const ingress = new aws.vpc.SecurityGroupIngressRule(
          `${name}-in-ssh-eice`,
          ssh(sg.id, endpointSg.id, "SSH from the EC2 Instance Connect Endpoint (apphost:host.via)"),
          childOpts,
        );
        const eice = new aws.ec2transitgateway.InstanceConnectEndpoint(
          `${name}-eice`,
          { subnetId: inst.subnetId, securityGroupIds: [endpointSg.id], preserveClientIp: false, tags },
          childOpts,
        );
        return { endpoint: eice, securityGroup: endpointSg, ingress, egress };
      }

      function lookupAmi(h: Ec2HostConfig) {
        return aws.ec2.getAmiOutput(amiQuery(h.os, h.arch), childOpts);
      }

      function lookupVpcId(h: Ec2HostConfig): pulumi.Output<string> {
        // The security group must live in the subnet's VPC; without a subnet the instance lands in the default VPC.
        return h.subnetId
          ? aws.ec2.getSubnetOutput({ id: h.subnetId }, childOpts).vpcId
          : aws.ec2.getVpcOutput({ default: true }, childOpts).id;
      }

      function createKeyPair(h: Ec2HostConfig) {
        return new aws.ec2.KeyPair(`${name}-key`, { publicKey: h.sshPublicKey, tags }, childOpts);
      }

      function createHostKey() {
        const tls = require("@pulumi/tls") as typeof import("@pulumi/tls");
        // Replacing it would lock the deployer out of the running instance (its user data is not re-applied).
        return new tls.PrivateKey(
          `${name}-host-key`,
          { algorithm: "ED25519" },
          { ...childOpts, protect: isProductionStack(identity.stack) },
        );
      }

      function createSecurityGroup() {
        return new aws.ec2.SecurityGroup(
          `${name}-sg`,
          {
            description: `apphost ${identity.project}/${identity.stack}: web from anywhere, SSH from apphost:host.sshAllowCidrs`,
            vpcId,
            tags: { ...tags, Name: hostLayout(identity.app, identity.stack).id },
          },
          childOpts,
        );
      }

      function createFirewallRules(sg: aws.ec2.SecurityGroup) {
        // One resource per rule (the AWS provider's advice over inline rules): changing one CIDR touches one rule.
        const rules = firewallRules(args, args.behindLoadBalancer !== undefined);
        return {
          ingressRules: rules.ingress.map(
            (rule) =>
              new aws.vpc.SecurityGroupIngressRule(
                `${name}-in-${rule.id}`,
                {
                  securityGroupId: sg.id,
                  ...ruleArgs(rule),
                  ...(rule.fromLoadBalancer
                    ? { referencedSecurityGroupId: args.behindLoadBalancer!.securityGroupId }
                    : {}),
                  tags,
                },
                childOpts,
              ),
          ),
          egressRules: rules.egress.map(
            (rule) =>
              new aws.vpc.SecurityGroupEgressRule(
                `${name}-out-${rule.id}`,
                { securityGroupId: sg.id, ...ruleArgs(rule), tags },
                childOpts,
              ),
          ),
        };
      }

      function createInstance(
        h: Ec2HostConfig,
        key: aws.ec2.KeyPair,
        hostKey: import("@pulumi/tls").PrivateKey,
        sg: aws.ec2.SecurityGroup,
      ) {
        return new aws.ec2.Instance(
          `${name}-instance`,
          {
            ami: ami.id,
            instanceType: h.instanceType,
            keyName: key.keyName,
            subnetId: args.behindLoadBalancer?.subnetId ?? h.subnetId,
            vpcSecurityGroupIds: [sg.id],
            // Attached and detached in place: turning apphost:backups.s3 on or off never replaces the instance.
            iamInstanceProfile: args.instanceProfile,
            associatePublicIpAddress: true,
            ipv6AddressCount: ipv6 ? 1 : undefined,
            rootBlockDevice: {
              volumeType: "gp3",
              volumeSize: h.rootVolumeGb,
              encrypted: true,
              // prod*: the root volume (the data, the backups) outlives even a terminated instance.
              deleteOnTermination: !isProductionStack(identity.stack),
              tags,
            },
            // prod*: the EC2 API refuses to terminate it until this is turned off by hand.
            disableApiTermination: isProductionStack(identity.stack),
            // IMDSv2 only: a request forged through the app (SSRF) cannot read instance credentials.
            metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
            // Secret: it carries the host's private key.
            userData: pulumi.secret(
              pulumi
                .all([computed(hostKey.privateKeyOpenssh), computed(hostKey.publicKeyOpenssh)])
                .apply(([privateKey, publicKey]) => userData(identity, host.port, { privateKey, publicKey })),
            ),
            userDataReplaceOnChange: false,
            tags: { ...tags, Name: hostLayout(identity.app, identity.stack).id },
          },
          {
            ...childOpts,
            // The instance holds the data (SQLite, uploads, backups), so nothing routine may replace it:
            // - ami: a new Debian/Ubuntu image is published every few weeks; upgrades happen in place.
            // - userData: cloud-init runs it at first boot only; changing it later would merely stop/start the machine.
            // - keyName: the key pair only seeds authorized_keys at launch (rotation: docs/config.md).
            // Replace on purpose with `pulumi up --replace <urn>`.
            ignoreChanges: ["ami", "userData", "keyName"],
            // prod*: `pulumi destroy` and a replace stop here until `pulumi state unprotect`.
            ...(isProductionStack(identity.stack) ? { protect: true } : {}),
          },
        );
      }

      function createElasticIp(instance: aws.ec2.Instance) {
        const eip = new aws.ec2.Eip(
          `${name}-eip`,
          { domain: "vpc", tags: { ...tags, Name: hostLayout(identity.app, identity.stack).id } },
          childOpts,
        );
        const eipAssociation = new aws.ec2.EipAssociation(
          `${name}-eip-association`,
          { instanceId: instance.id, allocationId: eip.allocationId },
          childOpts,
        );
        return { eip, eipAssociation };
      }
    } else {
      // An existing server: nothing to create, only an address to reach.
      this.nodes = { ingressRules: [], egressRules: [] };
      this.publicIp = pulumi.output(host.address);
      this.hostKey = pulumi.output(host.hostKey);
      this.ipv6Address = pulumi.output(undefined);
      this.instanceId = pulumi.output(undefined);
    }

    // Every resource on the host takes its connection from this one, which
    // tells their providers where the host is in this run (remote/follow.ts).
    this.connection = computed(
      new HostConnection(
        `${name}-connection`,
        {
          connection: sshConnection(
            sshAddress ?? this.publicIp,
            host,
            args.sshPrivateKey,
            name,
            this.hostKey,
            sshProxy,
          ),
        },
        { parent: this },
      ).connection,
    );
    this.registerOutputs({
      publicIp: this.publicIp,
      ipv6Address: this.ipv6Address,
      connection: this.connection,
      instanceId: this.instanceId,
    });
  }
}

// ---------------------------------------------------------------------------
// Pure helpers, exported for tests

/** Owners and name patterns of the official images. */
const IMAGES = {
  // Debian's cloud team account. The arch is part of the pattern because "debian-12-backports-*"
  // images share the "debian-12-" prefix and would otherwise win as "most recent".
  "debian-12": { owner: "136693071363", name: (arch: string) => `debian-12-${arch}-*` },
  // Debian 13 (trixie), the current stable release, published by the same account the same way.
  "debian-13": { owner: "136693071363", name: (arch: string) => `debian-13-${arch}-*` },
  // Canonical. hvm-ssd-gp3 is where Noble images are published.
  "ubuntu-24.04": {
    owner: "099720109477",
    name: (arch: string) => `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${arch}-server-*`,
  },
} as const;

/** Arguments of `aws.ec2.getAmi` for the configured OS on the instance type's architecture. */
export function amiQuery(os: Ec2HostConfig["os"], arch: Ec2HostConfig["arch"]): aws.ec2.GetAmiOutputArgs {
  const image = IMAGES[os];
  const debArch = arch === "arm64" ? "arm64" : "amd64";
  return {
    owners: [image.owner],
    mostRecent: true,
    filters: [
      { name: "name", values: [image.name(debArch)] },
      { name: "architecture", values: [arch] },
      { name: "virtualization-type", values: ["hvm"] },
      { name: "root-device-type", values: ["ebs"] },
    ],
  };
}

/** Tags on every AWS resource, so a stack's resources can be found (and billed) together. */
export function resourceTags(identity: StackIdentity): Record<string, string> {
  return {
    "apphost:project": identity.project,
    "apphost:stack": identity.stack,
    "apphost:app": identity.app,
  };
}

/**
 * The firewall: HTTP and HTTPS from anywhere (IPv6 too when AAAA records are
 * published), SSH only from the configured CIDRs, everything outbound (package
 * mirrors, ACME, the app's own APIs).
 */
export function firewallRules(
  input: Pick<HostArgs, "host" | "webPorts" | "ipv6">,
  behindLoadBalancer = false,
): { ingress: FirewallRule[]; egress: FirewallRule[] } {
  const { host, webPorts } = input;
  if (host.kind !== "ec2") return { ingress: [], egress: [] };
  const ipv6 = input.ipv6 ?? false;
  const web = (label: string, port: number): FirewallRule[] => [
    {
      id: `${label}-ipv4`,
      description: `${label.toUpperCase()} from anywhere`,
      ipProtocol: "tcp",
      fromPort: port,
      toPort: port,
      cidrIpv4: "0.0.0.0/0",
    },
    ...(ipv6
      ? [
          {
            id: `${label}-ipv6`,
            description: `${label.toUpperCase()} from anywhere`,
            ipProtocol: "tcp" as const,
            fromPort: port,
            toPort: port,
            cidrIpv6: "::/0",
          },
        ]
      : []),
  ];
  const ssh: FirewallRule[] = host.sshAllowCidrs.map((cidr) => ({
    id: `ssh-${cidr.replace(/[./]/g, "-")}`,
    description: "SSH for deploys (apphost:host.sshAllowCidrs)",
    ipProtocol: "tcp",
    fromPort: host.port,
    toPort: host.port,
    cidrIpv4: cidr,
  }));
  const egress: FirewallRule[] = [
    { id: "all-ipv4", description: "All outbound traffic", ipProtocol: "-1", cidrIpv4: "0.0.0.0/0" },
    ...(ipv6
      ? [{ id: "all-ipv6", description: "All outbound traffic", ipProtocol: "-1" as const, cidrIpv6: "::/0" }]
      : []),
  ];
  // Behind the load balancer: HTTP from its security group alone, no HTTPS (it holds the certificate).
  const fromLb: FirewallRule[] = [
    {
      id: "http-from-lb",
      description: "HTTP from the load balancer only",
      ipProtocol: "tcp",
      fromPort: webPorts.httpPort,
      toPort: webPorts.httpPort,
      fromLoadBalancer: true,
    },
  ];
  return {
    ingress: behindLoadBalancer
      ? [...fromLb, ...ssh]
      : [...web("http", webPorts.httpPort), ...web("https", webPorts.httpsPort), ...ssh],
    egress,
  };
}

/** The instance's SSH host key pair (OpenSSH formats), generated by apphost and installed at launch. */
export interface HostKeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----...` */
  privateKey: string;
  /** `ssh-ed25519 AAAA...` */
  publicKey: string;
}

/**
 * First-boot cloud-config. Everything else is configured over SSH by the host
 * baseline, so this stays small:
 * - the SSH host key apphost generated (`ssh_keys`), and no other
 *   (`ssh_deletekeys`; with keys given, cloud-init generates none): the very
 *   first connection already checks the key apphost pins, so an address that
 *   changed hands is refused before anything is sent;
 * - a marker with the stack it belongs to (`/etc/apphost/host-id`);
 * - sshd moved to `apphost:host.port` when that is not 22, because the
 *   deployer's very first connection already uses that port.
 * It carries a private key: the component passes it as a secret.
 */
export function userData(identity: StackIdentity, sshPort: number, hostKey: HostKeyPair): string {
  const layout = hostLayout(identity.app, identity.stack);
  const str = (s: string) => JSON.stringify(s);
  const block = (text: string, indent: string) =>
    text
      .trim()
      .split("\n")
      .map((l) => `${indent}${l}`)
      .join("\n");
  const lines = [
    "#cloud-config",
    `# apphost first boot for ${identity.project}/${identity.stack}; cloud-init applies it once.`,
    "# The SSH host key apphost generated and pins: the only one this host offers.",
    "ssh_deletekeys: true",
    "ssh_keys:",
    "  ed25519_private: |",
    block(hostKey.privateKey, "    "),
    `  ed25519_public: ${str(hostKey.publicKey.trim())}`,
    "write_files:",
    "  - path: /etc/apphost/host-id",
    '    permissions: "0644"',
    `    content: ${str(`${layout.id}\n`)}`,
  ];
  if (sshPort !== 22) {
    lines.push(
      "  - path: /etc/ssh/sshd_config.d/10-apphost-port.conf",
      '    permissions: "0644"',
      `    content: ${str(`Port ${sshPort}\n`)}`,
      "runcmd:",
      "  # Ubuntu 24.04 starts sshd from ssh.socket, whose port a generator takes from sshd_config.",
      `  - ${str("/usr/sbin/sshd -t && systemctl daemon-reload && if systemctl is-enabled --quiet ssh.socket 2>/dev/null; then systemctl restart ssh.socket; else systemctl restart ssh.service; fi")}`,
    );
  }
  return lines.join("\n") + "\n";
}

function ruleArgs(rule: FirewallRule) {
  return {
    description: rule.description,
    ipProtocol: rule.ipProtocol,
    fromPort: rule.fromPort,
    toPort: rule.toPort,
    cidrIpv4: rule.cidrIpv4,
    cidrIpv6: rule.cidrIpv6,
  };
}

function sshConnection(
  address: pulumi.Output<string>,
  host: Pick<HostConfig, "port" | "user">,
  privateKey: pulumi.Input<string>,
  ref: string,
  hostKey: pulumi.Output<string | undefined>,
  proxy: pulumi.Output<SshProxy | undefined>,
): pulumi.Output<SshConnection> {
  // pulumi.secret() on top of the secret keys: the whole object must stay encrypted in state,
  // even if a caller passes a key as a plain string.
  return pulumi.secret(
    pulumi.all([address, privateKey, hostKey, proxy]).apply(([addr, key, pinned, via]): SshConnection => ({
      host: addr,
      port: host.port,
      user: host.user,
      privateKey: key,
      ...(pinned ? { hostKey: pinned } : {}),
      ref,
      ...(via ? { proxy: via } : {}),
    })),
  );
}

/** apphost:host.via.jump as the connection's proxy, with its key (apphost:jumpPrivateKey, else the deploy key). */
function jumpProxy(jump: JumpConfig, privateKey: pulumi.Input<string>): pulumi.Output<SshProxy | undefined> {
  return pulumi.output(privateKey).apply((key): SshProxy => ({
    kind: "jump",
    host: jump.address,
    port: jump.port,
    user: jump.user,
    privateKey: key,
    hostKey: jump.hostKey.trim(),
  }));
}
