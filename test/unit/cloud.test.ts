/**
 * Host, Dns and OriginCertificate against the shared mocks: assertions on the
 * inputs each resource was registered with (policy-style), and on outputs,
 * always awaited before asserting.
 */
import {
  calls,
  ed25519,
  HOLD,
  MOCK,
  NO_RESULT,
  ofType,
  resetRecords,
  resources,
  settled,
  sgId,
  valueOf,
} from "./mocks"; // first: sets the mocks
import * as assert from "assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Dns, recordOwner, recordSpecs } from "../../components/dns";
import { ABORT_INCOMPLETE_UPLOAD_DAYS, BackupBucket, backupPrefix } from "../../components/backups";
import { ConfigError } from "../../components/config/validate";
import type { StackConfig } from "../../components/config/types";
import { Database } from "../../components/database";
import { serverAndDatabase } from "../../program";
import { hostLayout } from "../../components/paths";
import { databaseSwitchCommands } from "../../components/render/layout";
import { generatedPassword } from "../../components/computed";
import { amiQuery, firewallRules, Host, stackIdentity, userData } from "../../components/host";
import { asRootFromStdin, hostStep } from "../../components/remote/command";
import { OriginCertificate, renewalWindow } from "../../components/tls";
import { DEPLOY_KEY, existingRaw, stackConfig } from "./fixtures";
import { python3 } from "./python3";

const INSTANCE = "aws:ec2/instance:Instance";
const INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
const EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule";
const EIP = "aws:ec2/eip:Eip";
const EIP_ASSOCIATION = "aws:ec2/eipAssociation:EipAssociation";
const RECORD = "cloudflare:index/dnsRecord:DnsRecord";

type Inputs = Record<string, unknown>;

/** cloud-init's own schema of cloud-config (Debian 12's cloud-init), fetched by scripts/install-prereqs. */
const CLOUD_INIT_SCHEMA = path.join(
  process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"),
  "apphost",
  "cloud-init",
  "schema-cloud-config-v1.json",
);

/**
 * Validates user data as cloud-init would: its JSON schema (types and values
 * of every module's keys), and every top-level key one that some module reads
 * (the schema itself lets unknown keys through, and cloud-init ignores them).
 */
function assertValidCloudConfig(text: string): void {
  assert.ok(
    text.startsWith("#cloud-config\n"),
    "cloud-init applies only user data that starts with #cloud-config",
  );
  if (!fs.existsSync(CLOUD_INIT_SCHEMA)) {
    assert.fail(
      `${CLOUD_INIT_SCHEMA} is missing: run bash scripts/install-prereqs (it extracts it from Debian's cloud-init package)`,
    );
  }
  const check = [
    "import json, sys, yaml, jsonschema",
    "schema = json.load(open(sys.argv[1]))",
    "config = yaml.safe_load(sys.stdin.read())",
    "known = set()",
    "for d in schema.get('$defs', {}).values():",
    "    known.update(d.get('properties', {}).keys())",
    "problems = [f\"{'/'.join(map(str, e.path))}: {e.message}\" for e in jsonschema.Draft4Validator(schema).iter_errors(config)]",
    "problems += [f'{k}: no cloud-init module reads this key' for k in config if k not in known]",
    "print('\\n'.join(problems))",
    "sys.exit(1 if problems else 0)",
  ].join("\n");
  const r = spawnSync(python3(), ["-c", check, CLOUD_INIT_SCHEMA], { input: text, encoding: "utf8" });
  assert.equal(r.status, 0, `cloud-init's schema refuses the user data:\n${r.stdout}${r.stderr}\n${text}`);
}

/** Builds a Host and waits until every resource it created is registered. */
async function host(
  name: string,
  keys: Record<string, unknown> = {},
  stack = "staging",
  raw?: Record<string, unknown>,
) {
  const h = new Host(name, {
    ...hostArgs(stackConfig(keys, stack, raw)),
    sshPrivateKey: pulumi.secret(DEPLOY_KEY.privateKey),
  });
  const n = h.nodes;
  await settled(
    h,
    n.keyPair,
    n.securityGroup,
    ...n.ingressRules,
    ...n.egressRules,
    n.instance,
    n.eip,
    n.eipAssociation,
    n.endpoint,
    n.endpointSecurityGroup,
  );
  await valueOf(h.connection);
  return h;
}

function one(type: string, prefix: string): Inputs {
  const found = ofType(type, prefix);
  assert.equal(found.length, 1, `one ${type} named ${prefix}*`);
  return found[0].inputs;
}

/** The Dns component's args from a whole stack config. */
const dnsArgs = (config: StackConfig) => ({ dns: config.dns, owner: recordOwner(config) });

/** The Host component's args from a whole stack config, as the program derives them. */
const hostArgs = (config: StackConfig) => ({
  identity: stackIdentity(config),
  host: config.host,
  webPorts: config.proxy,
  ipv6: config.dns.ipv6,
});

describe("Host (ec2)", () => {
  beforeEach(resetRecords);

  it("looks up the Debian 12 image for the instance type's architecture", async () => {
    await host("arm");
    const ami = calls.filter((c) => c.token === "aws:ec2/getAmi:getAmi");
    assert.equal(ami.length, 1);
    assert.deepEqual(ami[0].inputs.owners, ["136693071363"]);
    assert.deepEqual(ami[0].inputs.filters, [
      { name: "name", values: ["debian-12-arm64-*"] },
      { name: "architecture", values: ["arm64"] },
      { name: "virtualization-type", values: ["hvm"] },
      { name: "root-device-type", values: ["ebs"] },
    ]);
    assert.equal(ami[0].inputs.mostRecent, true);
    assert.equal(one(INSTANCE, "arm").ami, "ami-0arm64136693071363");
  });

  it("picks Debian 13 (trixie) from Debian's account, with the admin user", async () => {
    const h = await host("trixie", { "host.os": "debian-13" });
    const ami = calls.find((c) => c.token === "aws:ec2/getAmi:getAmi");
    assert.deepEqual(ami?.inputs.owners, ["136693071363"]);
    assert.deepEqual((ami?.inputs.filters as Array<{ values: string[] }>)[0].values, ["debian-13-arm64-*"]);
    assert.equal((await valueOf(h.connection)).user, "admin");
  });

  it("picks Ubuntu 24.04 on x86 for t3 with the ubuntu user", async () => {
    const h = await host("ubuntu", { "host.os": "ubuntu-24.04", "host.instanceType": "t3.small" });
    const ami = calls.find((c) => c.token === "aws:ec2/getAmi:getAmi");
    assert.deepEqual(ami?.inputs.owners, ["099720109477"]);
    assert.deepEqual((ami?.inputs.filters as Array<{ values: string[] }>)[0].values, [
      "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
    ]);
    assert.equal((await valueOf(h.connection)).user, "ubuntu");
  });

  it("requires IMDSv2 and an encrypted gp3 root volume", async () => {
    await host("policy", { "host.rootVolumeGb": 30 });
    const instance = one(INSTANCE, "policy");
    assert.equal((instance.metadataOptions as Inputs).httpTokens, "required");
    assert.equal((instance.metadataOptions as Inputs).httpPutResponseHopLimit, 1);
    const root = instance.rootBlockDevice as Inputs;
    assert.equal(root.volumeType, "gp3");
    assert.equal(root.encrypted, true);
    assert.equal(root.volumeSize, 30);
    assert.equal(instance.instanceType, "t4g.small");
    assert.equal(instance.userDataReplaceOnChange, false);
    assert.equal(instance.associatePublicIpAddress, true);
    assert.equal(instance.ipv6AddressCount, undefined);
  });

  it("prod*: termination protection, a root volume that outlives the instance, and Pulumi's protect", async () => {
    const prod = await host("prot", {}, "prod");
    const instance = one(INSTANCE, "prot");
    assert.equal(instance.disableApiTermination, true);
    assert.equal((instance.rootBlockDevice as Inputs).deleteOnTermination, false);
    assert.equal((prod.nodes.instance as unknown as { __protect: boolean }).__protect, true);
    resetRecords();
    const staging = await host("unprot", {}, "staging");
    const other = one(INSTANCE, "unprot");
    assert.equal(other.disableApiTermination, false);
    assert.equal((other.rootBlockDevice as Inputs).deleteOnTermination, true);
    assert.notEqual((staging.nodes.instance as unknown as { __protect?: boolean }).__protect, true);
  });

  it("never opens SSH to the world, and opens HTTP(S) to everyone", async () => {
    await host("fw", { "host.sshAllowCidrs": ["203.0.113.7/32", "198.51.100.0/28"] });
    const ingress = ofType(INGRESS, "fw").map((r) => r.inputs);
    const ssh = ingress.filter((r) => r.fromPort === 22);
    assert.deepEqual(ssh.map((r) => r.cidrIpv4).sort(), ["198.51.100.0/28", "203.0.113.7/32"]);
    for (const rule of ingress) {
      if (rule.cidrIpv4 === "0.0.0.0/0" || rule.cidrIpv6 === "::/0") {
        assert.ok(rule.fromPort === 80 || rule.fromPort === 443, `port ${rule.fromPort} open to the world`);
        assert.equal(rule.toPort, rule.fromPort);
      }
      assert.equal(rule.securityGroupId, sgId("fw-sg"));
    }
    assert.deepEqual(
      ingress
        .filter((r) => r.cidrIpv4 === "0.0.0.0/0")
        .map((r) => r.fromPort)
        .sort(),
      [443, 80],
    );
    assert.deepEqual(
      ofType(EGRESS, "fw").map((r) => [r.inputs.ipProtocol, r.inputs.cidrIpv4]),
      [["-1", "0.0.0.0/0"]],
    );
    assert.equal(one("aws:ec2/securityGroup:SecurityGroup", "fw").vpcId, MOCK.defaultVpcId);
  });

  it("puts the security group in the configured subnet's VPC", async () => {
    await host("subnet", { "host.subnetId": "subnet-0123456789abcdef0" });
    assert.equal(one("aws:ec2/securityGroup:SecurityGroup", "subnet").vpcId, MOCK.subnetVpcId);
    assert.equal(one(INSTANCE, "subnet").subnetId, "subnet-0123456789abcdef0");
    assert.ok(!calls.some((c) => c.token === "aws:ec2/getVpc:getVpc"), "no default VPC lookup");
  });

  it("creates no Elastic IP unless configured, and uses the instance's address", async () => {
    const h = await host("noeip");
    assert.equal(ofType(EIP, "noeip").length, 0);
    assert.equal(ofType(EIP_ASSOCIATION, "noeip").length, 0);
    assert.equal(h.nodes.eip, undefined);
    assert.equal(await valueOf(h.publicIp), MOCK.instancePublicIp);
  });

  it("creates and associates an Elastic IP on prod, and publishes its address", async () => {
    const h = await host("prodhost", {}, "prod");
    assert.equal(one(EIP, "prodhost").domain, "vpc");
    const association = one(EIP_ASSOCIATION, "prodhost");
    assert.equal(association.instanceId, "i-0123456789abcdef0");
    assert.equal(association.allocationId, "eipalloc-0123456789abcdef0");
    assert.equal(await valueOf(h.publicIp), MOCK.elasticIp);
    assert.equal((await valueOf(h.connection)).host, MOCK.elasticIp);
  });

  it("imports the configured public key and tags every AWS resource with project and stack", async () => {
    await host("tags", {}, "prod");
    assert.equal(one("aws:ec2/keyPair:KeyPair", "tags").publicKey, DEPLOY_KEY.publicKey);
    // An EIP association is not a taggable AWS object; everything else is.
    const aws = resources.filter(
      (r) => r.type.startsWith("aws:") && r.name.startsWith("tags") && r.type !== EIP_ASSOCIATION,
    );
    assert.deepEqual(aws.map((r) => r.type).sort(), [
      "aws:ec2/eip:Eip",
      "aws:ec2/instance:Instance",
      "aws:ec2/keyPair:KeyPair",
      "aws:ec2/securityGroup:SecurityGroup",
      EGRESS,
      INGRESS,
      INGRESS,
      INGRESS,
    ]);
    for (const r of aws) {
      const tags = r.inputs.tags as Record<string, string>;
      assert.equal(tags["apphost:project"], "apphost", r.name);
      assert.equal(tags["apphost:stack"], "prod", r.name);
    }
    const instance = one(INSTANCE, "tags");
    assert.equal((instance.tags as Record<string, string>).Name, "apphost-prod");
    assert.equal(
      ((instance.rootBlockDevice as Inputs).tags as Record<string, string>)["apphost:stack"],
      "prod",
    );
  });

  it("makes the connection a secret holding the deploy key and pinning the host key", async () => {
    const h = await host("conn");
    assert.equal(await pulumi.isSecret(h.connection), true);
    assert.deepEqual(await valueOf(h.connection), {
      host: MOCK.instancePublicIp,
      port: 22,
      user: "admin",
      privateKey: DEPLOY_KEY.privateKey,
      hostKey: ed25519("conn-host-key").publicKeyOpenssh.trim(),
      ref: "conn",
    });
  });

  it("keeps the connection secret even when the key is passed in plain text", async () => {
    const h = new Host("plain", { ...hostArgs(stackConfig()), sshPrivateKey: DEPLOY_KEY.privateKey });
    assert.equal(await pulumi.isSecret(h.connection), true);
  });

  it("moves SSH to the configured port in the firewall and at first boot", async () => {
    const h = await host("port", { "host.port": 2222 });
    const ssh = ofType(INGRESS, "port").filter((r) => r.inputs.cidrIpv4 === "203.0.113.7/32");
    assert.deepEqual(
      ssh.map((r) => [r.inputs.fromPort, r.inputs.toPort]),
      [[2222, 2222]],
    );
    const cloudConfig = (await valueOf(h.nodes.instance!.userData)) ?? "";
    assert.match(
      cloudConfig,
      /^  - path: \/etc\/ssh\/sshd_config\.d\/10-apphost-port\.conf\n    permissions: "0644"\n    content: "Port 2222\\n"$/m,
    );
    assert.equal((await valueOf(h.connection)).port, 2222);
  });

  it("generates the instance's ed25519 host key, installs it at first boot (user data, secret) and pins it", async () => {
    const h = await host("hk", {});
    const key = ofType("tls:index/privateKey:PrivateKey", "hk");
    assert.deepEqual(
      key.map((r) => [r.name, r.inputs.algorithm]),
      [["hk-host-key", "ED25519"]],
    );
    const pair = ed25519("hk-host-key");
    const conn = await valueOf(h.connection);
    assert.equal(conn.hostKey, pair.publicKeyOpenssh.trim(), "the connection pins the generated key");
    assert.equal(await valueOf(h.hostKey), pair.publicKeyOpenssh.trim());
    const instance = h.nodes.instance!;
    assert.equal(
      await pulumi.isSecret(instance.userData),
      true,
      "the user data carries a private key: secret",
    );
    const cloudConfig = (await valueOf(instance.userData)) ?? "";
    // The private key the instance installs is the public key's pair (ssh-keygen -y derives one from the other).
    const installed = /^  ed25519_private: \|\n((?:    .*\n)+)/m
      .exec(cloudConfig)?.[1]
      .replace(/^    /gm, "");
    assert.ok(installed, cloudConfig);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-hostkey-"));
    try {
      fs.writeFileSync(path.join(dir, "key"), installed, { mode: 0o600 });
      const derived = spawnSync("ssh-keygen", ["-y", "-f", path.join(dir, "key")], { encoding: "utf8" });
      assert.equal(derived.status, 0, derived.stderr);
      assert.equal(derived.stdout.trim().split(" ").slice(0, 2).join(" "), conn.hostKey);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.match(
      cloudConfig,
      new RegExp(`^  ed25519_public: "${conn.hostKey!.replace(/[+/]/g, "\\$&")}"$`, "m"),
    );
    assertValidCloudConfig(cloudConfig);
    assertValidCloudConfig(
      (await valueOf((await host("hk-port", { "host.port": 2222 })).nodes.instance!.userData)) ?? "",
    );
  });

  it("apphost:host.hostKey overrides the generated key (an instance launched without it)", async () => {
    const pinned = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const h = await host("hk-set", { "host.hostKey": pinned });
    assert.equal((await valueOf(h.connection)).hostKey, pinned);
  });

  it("with dns.ipv6, asks for an IPv6 address, opens the web to ::/0 and exposes the address", async () => {
    const h = await host("v6", { "dns.ipv6": true });
    assert.equal(one(INSTANCE, "v6").ipv6AddressCount, 1);
    const v6 = ofType(INGRESS, "v6").filter((r) => r.inputs.cidrIpv6 === "::/0");
    assert.deepEqual(v6.map((r) => r.inputs.fromPort).sort(), [443, 80]);
    assert.equal(ofType(EGRESS, "v6").length, 2);
    assert.equal(await valueOf(h.ipv6Address), MOCK.instanceIpv6);
  });
});

describe("Host (existing)", () => {
  beforeEach(resetRecords);

  it("creates no AWS resources and calls no AWS API", async () => {
    const h = await host(
      "old",
      { "host.hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
      "staging",
      existingRaw(),
    );
    await settled(h);
    assert.deepEqual(
      resources.filter((r) => r.type.startsWith("aws:")),
      [],
    );
    assert.deepEqual(
      calls.filter((c) => c.token.startsWith("aws:")),
      [],
    );
    // The component and the connection every resource on the host takes (no remote work).
    assert.deepEqual(
      resources.map((r) => r.type),
      ["apphost:index:Host", "pulumi-nodejs:dynamic/apphost:HostConnection"],
    );
    assert.equal(await valueOf(h.publicIp), "203.0.113.10");
    assert.equal(await valueOf(h.instanceId), undefined);
    assert.equal(await pulumi.isSecret(h.connection), true);
    assert.deepEqual(await valueOf(h.connection), {
      host: "203.0.113.10",
      port: 22,
      user: "deploy",
      privateKey: DEPLOY_KEY.privateKey,
      hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      ref: "old",
    });
  });
});

describe("Host (ec2 through an EC2 Instance Connect Endpoint)", () => {
  beforeEach(resetRecords);

  it("creates the endpoint in the instance's subnet; SSH comes in from the endpoint's group only, from no CIDR", async () => {
    const h = await host("ic", { "host.via": "instance-connect", "host.sshAllowCidrs": [] });
    const endpoint = one("aws:ec2transitgateway/instanceConnectEndpoint:InstanceConnectEndpoint", "ic");
    assert.equal(endpoint.subnetId, "subnet-0default0000000001", "the instance's own subnet");
    assert.equal(endpoint.preserveClientIp, false);
    assert.deepEqual(endpoint.securityGroupIds, [sgId("ic-eice-sg")]);
    // Policy: no ingress rule opens the SSH port to an address range; one rule lets the endpoint's group in.
    const ssh = ofType(INGRESS, "ic").filter((r) => r.inputs.fromPort === 22);
    assert.deepEqual(
      ssh.map((r) => [r.inputs.cidrIpv4, r.inputs.cidrIpv6, r.inputs.referencedSecurityGroupId]),
      [[undefined, undefined, sgId("ic-eice-sg")]],
    );
    assert.equal(ssh[0].inputs.securityGroupId, sgId("ic-sg"));
    const out = ofType(EGRESS, "ic-eice");
    assert.deepEqual(
      out.map((r) => [
        r.inputs.securityGroupId,
        r.inputs.fromPort,
        r.inputs.toPort,
        r.inputs.referencedSecurityGroupId,
      ]),
      [[sgId("ic-eice-sg"), 22, 22, sgId("ic-sg")]],
    );
    for (const rule of ofType(INGRESS, "ic")) {
      const port = rule.inputs.fromPort as number | undefined;
      const opensSsh =
        rule.inputs.ipProtocol === "-1" ||
        (port !== undefined && port <= 22 && 22 <= (rule.inputs.toPort as number));
      assert.ok(
        !(opensSsh && (rule.inputs.cidrIpv4 || rule.inputs.cidrIpv6)),
        `${rule.name} opens SSH to a CIDR`,
      );
    }
    // The connection: the private address, through the endpoint, the generated host key pinned.
    const conn = await valueOf(h.connection);
    assert.equal(conn.host, MOCK.instancePrivateIp);
    assert.deepEqual(conn.proxy, {
      kind: "instance-connect",
      instanceId: "i-0123456789abcdef0",
      endpointId: "eice-0123456789abcdef0",
      region: MOCK.region,
    });
    assert.equal(conn.hostKey, ed25519("ic-host-key").publicKeyOpenssh.trim());
    assert.equal(await valueOf(h.publicIp), MOCK.instancePublicIp, "DNS still points at the public address");
  });

  it("host steps become apphost HostScripts (OpenSSH with open-tunnel), their stdin secret; direct stacks keep @pulumi/command", async () => {
    const conn = pulumi.secret({
      host: "172.31.5.10",
      port: 22,
      user: "admin",
      privateKey: DEPLOY_KEY.privateKey,
      proxy: {
        kind: "instance-connect" as const,
        instanceId: "i-1",
        endpointId: "eice-1",
        region: "eu-central-1",
      },
    });
    const step = hostStep("ic-step", {
      connection: conn,
      description: "a step",
      create: "echo hi",
      delete: "echo bye",
      stdin: "s3cret",
      openSshOnly: true,
    });
    await settled(step);
    const rec = resources.find((r) => r.name === "ic-step")!;
    assert.equal(rec.type, "pulumi-nodejs:dynamic/apphost:HostScript");
    assert.equal(rec.inputs.create, "echo 'apphost: a step' >&2\necho hi");
    assert.equal(rec.inputs.delete, "echo 'apphost: a step (delete)' >&2\necho bye");
    assert.equal(await pulumi.isSecret((step as unknown as { stdin: pulumi.Output<string> }).stdin), true);
    const plain = hostStep("ic-plain", { connection: conn, description: "a step", create: "echo hi" });
    await settled(plain);
    const cmd = resources.find((r) => r.name === "ic-plain")!;
    assert.equal(cmd.type, "command:remote:Command");
    // The script is its stdin, in plain text (a preview's diff shows it); the command line only runs it.
    const script = "echo 'apphost: a step' >&2\necho hi";
    assert.equal(cmd.inputs.stdin, script);
    assert.equal(cmd.inputs.create, asRootFromStdin(script));
    // A step's own stdin (a secret) follows the script, and makes the whole of it secret.
    const withSecret = hostStep("ic-secret", {
      connection: conn,
      description: "a step",
      create: "echo hi",
      stdin: "s3cret",
    });
    await settled(withSecret);
    const stdin = (withSecret as unknown as { stdin: pulumi.Output<string> }).stdin;
    assert.equal(await pulumi.isSecret(stdin), true);
    assert.equal(await valueOf(stdin), `${script}s3cret`);
  });
});

describe("Host (through a jump host)", () => {
  beforeEach(resetRecords);
  const bastionKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  const raw = () => ({
    ...existingRaw(),
    host: {
      kind: "existing",
      address: "10.0.1.20",
      user: "deploy",
      via: { jump: { address: "bastion.example.net", user: "jump", hostKey: bastionKey } },
    },
  });

  it("the connection goes through the bastion, with the deploy key unless apphost:jumpPrivateKey is set; all secret", async () => {
    const h = new Host("j1", {
      ...hostArgs(stackConfig({}, "staging", raw())),
      sshPrivateKey: DEPLOY_KEY.privateKey,
    });
    assert.equal(await pulumi.isSecret(h.connection), true);
    assert.deepEqual((await valueOf(h.connection)).proxy, {
      kind: "jump",
      host: "bastion.example.net",
      port: 22,
      user: "jump",
      privateKey: DEPLOY_KEY.privateKey,
      hostKey: bastionKey,
    });
    const h2 = new Host("j2", {
      ...hostArgs(stackConfig({}, "staging", raw())),
      sshPrivateKey: DEPLOY_KEY.privateKey,
      jumpPrivateKey: pulumi.secret(
        "-----BEGIN OPENSSH PRIVATE KEY-----\njump\n-----END OPENSSH PRIVATE KEY-----\n",
      ),
    });
    const proxy = (await valueOf(h2.connection)).proxy;
    assert.ok(proxy?.kind === "jump");
    assert.match(proxy.privateKey, /\njump\n/);
    const direct = new Host("j3", {
      ...hostArgs(stackConfig({}, "staging", existingRaw())),
      sshPrivateKey: DEPLOY_KEY.privateKey,
    });
    assert.equal((await valueOf(direct.connection)).proxy, undefined);
  });
});

describe("host helpers", () => {
  it("renders the first-boot cloud-config exactly: the host key, the marker, the port", () => {
    const key = {
      privateKey:
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA\nAAAA==\n-----END OPENSSH PRIVATE KEY-----\n",
      publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+/=\n",
    };
    const head = [
      "#cloud-config",
      "# apphost first boot for apphost/staging; cloud-init applies it once.",
      "# The SSH host key apphost generated and pins: the only one this host offers.",
      "ssh_deletekeys: true",
      "ssh_keys:",
      "  ed25519_private: |",
      "    -----BEGIN OPENSSH PRIVATE KEY-----",
      "    b3BlbnNzaA",
      "    AAAA==",
      "    -----END OPENSSH PRIVATE KEY-----",
      '  ed25519_public: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+/="',
      "write_files:",
      "  - path: /etc/apphost/host-id",
      '    permissions: "0644"',
      '    content: "apphost-staging\\n"',
    ];
    const identity = stackIdentity(stackConfig());
    assert.equal(userData(identity, 22, key), [...head, ""].join("\n"));
    assert.equal(
      userData(identity, 2222, key),
      [
        ...head,
        "  - path: /etc/ssh/sshd_config.d/10-apphost-port.conf",
        '    permissions: "0644"',
        '    content: "Port 2222\\n"',
        "runcmd:",
        "  # Ubuntu 24.04 starts sshd from ssh.socket, whose port a generator takes from sshd_config.",
        '  - "/usr/sbin/sshd -t && systemctl daemon-reload && if systemctl is-enabled --quiet ssh.socket 2>/dev/null; then systemctl restart ssh.socket; else systemctl restart ssh.service; fi"',
        "",
      ].join("\n"),
    );
  });

  it("names firewall rules after port and CIDR, so reordering the CIDRs replaces nothing", () => {
    const rules = firewallRules(
      hostArgs(stackConfig({ "host.sshAllowCidrs": ["203.0.113.7/32", "198.51.100.0/28"] })),
    );
    assert.deepEqual(
      rules.ingress.map((r) => r.id),
      ["http-ipv4", "https-ipv4", "ssh-203-0-113-7-32", "ssh-198-51-100-0-28"],
    );
    const reordered = firewallRules(
      hostArgs(stackConfig({ "host.sshAllowCidrs": ["198.51.100.0/28", "203.0.113.7/32"] })),
    );
    assert.deepEqual(new Set(reordered.ingress.map((r) => r.id)), new Set(rules.ingress.map((r) => r.id)));
    assert.deepEqual(firewallRules(hostArgs(stackConfig({}, "staging", existingRaw()))), {
      ingress: [],
      egress: [],
    });
  });

  it("queries images by OS and architecture", () => {
    assert.deepEqual(amiQuery("debian-12", "x86_64").filters?.valueOf(), [
      { name: "name", values: ["debian-12-amd64-*"] },
      { name: "architecture", values: ["x86_64"] },
      { name: "virtualization-type", values: ["hvm"] },
      { name: "root-device-type", values: ["ebs"] },
    ]);
  });
});

describe("BackupBucket (apphost:backups.s3)", () => {
  beforeEach(resetRecords);

  const BUCKET = "aws:s3/bucket:Bucket";
  const S3 = "backups.s3";
  type Statement = {
    Sid?: string;
    Effect: string;
    Principal?: unknown;
    Action: string | string[];
    Resource?: string | string[];
    Condition?: unknown;
  };
  const statements = (json: unknown): Statement[] =>
    (JSON.parse(json as string) as { Statement: Statement[] }).Statement;
  const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

  /** BackupBucket's args from a whole stack config, as the program derives them. */
  const bucketArgs = (config: StackConfig) => ({
    identity: stackIdentity(config),
    backups: config.backups,
    hostKind: config.host.kind,
  });

  /** Builds the stack's bucket (when enabled) and waits until every resource it made is registered. */
  async function backups(name: string, keys: Record<string, unknown> = { [S3]: true }, stack = "staging") {
    const b = BackupBucket.forStack(name, bucketArgs(stackConfig(keys, stack)));
    if (b) {
      await settled(b, ...Object.values(b.nodes));
      await valueOf(b.target);
    }
    return b;
  }

  it("creates nothing unless apphost:backups.s3 is true, and the instance gets no profile", async () => {
    assert.equal(await backups("off", {}), undefined);
    await host("noprofile");
    assert.deepEqual(
      resources.filter((r) => r.type.startsWith("aws:s3/") || r.type.startsWith("aws:iam/")),
      [],
    );
    assert.equal(one(INSTANCE, "noprofile").iamInstanceProfile, undefined);
  });

  it("creates the bucket and its settings, the role and the profile, all children of the component", async () => {
    const b = await backups("bk");
    for (const node of Object.values(b!.nodes)) {
      assert.match(await valueOf(node.urn), /::apphost:index:BackupBucket\$aws:(s3|iam)\//);
    }
    // Registration order follows the outputs each input waits for; compare as sets.
    const byName = (a: string[], b: string[]) => a[1].localeCompare(b[1]);
    assert.deepEqual(
      resources
        .filter((r) => r.name.startsWith("bk"))
        .map((r) => [r.type, r.name])
        .sort(byName),
      [
        ["apphost:index:BackupBucket", "bk"],
        [BUCKET, "bk-bucket"],
        ["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "bk-public-access-block"],
        ["aws:s3/bucketOwnershipControls:BucketOwnershipControls", "bk-ownership"],
        ["aws:s3/bucketVersioning:BucketVersioning", "bk-versioning"],
        [
          "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
          "bk-encryption",
        ],
        ["aws:iam/role:Role", "bk-role"],
        ["aws:iam/instanceProfile:InstanceProfile", "bk-instance-profile"],
        ["aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "bk-lifecycle"],
        ["aws:s3/bucketPolicy:BucketPolicy", "bk-policy"],
        ["aws:iam/rolePolicy:RolePolicy", "bk-put-backups"],
      ].sort(byName),
    );
  });

  it("bucket: named after the stack, kept on destroy while it holds backups, tagged", async () => {
    const b = await backups("named");
    const bucket = one(BUCKET, "named");
    assert.equal(bucket.bucketPrefix, "apphost-staging-");
    assert.equal(bucket.bucket, undefined);
    assert.equal(bucket.forceDestroy, false);
    assert.equal((bucket.tags as Record<string, string>)["apphost:stack"], "staging");
    assert.equal(await valueOf(b!.bucketName), "apphost-staging-20250101abcdef");
  });

  it("versioning is Enabled", async () => {
    await backups("ver");
    assert.deepEqual(one("aws:s3/bucketVersioning:BucketVersioning", "ver"), {
      bucket: "apphost-staging-20250101abcdef",
      versioningConfiguration: { status: "Enabled" },
    });
  });

  it("every object is encrypted at rest by default (SSE-S3, AES256)", async () => {
    await backups("sse");
    assert.deepEqual(
      one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "sse")
        .rules,
      [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }],
    );
  });

  it("public access is blocked four times over, and ACLs are off (BucketOwnerEnforced)", async () => {
    await backups("pab");
    assert.deepEqual(one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "pab"), {
      bucket: "apphost-staging-20250101abcdef",
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    assert.deepEqual(one("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "pab").rule, {
      objectOwnership: "BucketOwnerEnforced",
    });
  });

  it("lifecycle: current and noncurrent versions expire after s3ExpireDays; stale uploads are aborted", async () => {
    await backups("lc", { [S3]: true, "backups.s3ExpireDays": 14 });
    assert.deepEqual(one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lc").rules, [
      {
        id: "expire-backups",
        status: "Enabled",
        filter: {},
        expiration: { days: 14 },
        noncurrentVersionExpiration: { noncurrentDays: 14 },
        abortIncompleteMultipartUpload: { daysAfterInitiation: ABORT_INCOMPLETE_UPLOAD_DAYS },
      },
    ]);
    await backups("lcprod", { [S3]: true }, "prod");
    const rule = (
      one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lcprod").rules as Inputs[]
    )[0];
    assert.deepEqual(
      [rule.expiration, rule.noncurrentVersionExpiration],
      [{ days: 90 }, { noncurrentDays: 90 }],
    );
  });

  it("bucket policy: every request without TLS is denied, for everyone", async () => {
    await backups("tls");
    const policy = one("aws:s3/bucketPolicy:BucketPolicy", "tls");
    assert.equal(policy.bucket, "apphost-staging-20250101abcdef");
    assert.deepEqual(statements(policy.policy), [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: [
          "arn:aws:s3:::apphost-staging-20250101abcdef",
          "arn:aws:s3:::apphost-staging-20250101abcdef/*",
        ],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ]);
  });

  it("instance role: EC2 only, and its one permission is s3:PutObject under <app>/<stack>/ of this bucket", async () => {
    await backups("iam");
    const role = one("aws:iam/role:Role", "iam");
    assert.deepEqual(statements(role.assumeRolePolicy), [
      { Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" },
    ]);
    assert.equal(role.managedPolicyArns, undefined, "no managed policies");
    assert.equal(role.path, "/apphost/apphost-staging/");
    const rolePolicy = one("aws:iam/rolePolicy:RolePolicy", "iam");
    assert.equal(rolePolicy.role, "iam-role-1a2b3c");
    const granted = statements(rolePolicy.policy);
    assert.deepEqual(granted, [
      {
        Sid: "PutBackups",
        Effect: "Allow",
        Action: ["s3:PutObject"],
        Resource: ["arn:aws:s3:::apphost-staging-20250101abcdef/apphost/staging/*"],
      },
    ]);
    // Policy-style, in case the statement grows: no wildcard action, no delete, nothing outside the prefix.
    for (const st of granted) {
      assert.equal(st.Effect, "Allow");
      for (const action of list(st.Action)) {
        assert.ok(!action.includes("*"), `wildcard action ${action}`);
        assert.ok(!/delete/i.test(action), `delete action ${action}`);
      }
      for (const resource of list(st.Resource)) {
        assert.ok(
          resource.startsWith(
            `arn:aws:s3:::apphost-staging-20250101abcdef/${backupPrefix(stackIdentity(stackConfig()))}`,
          ),
          resource,
        );
      }
    }
    const profile = one("aws:iam/instanceProfile:InstanceProfile", "iam");
    assert.deepEqual([profile.role, profile.path], ["iam-role-1a2b3c", "/apphost/apphost-staging/"]);
  });

  it("the instance runs with the instance profile, and the host script gets bucket, region and prefix", async () => {
    const config = stackConfig({ [S3]: true });
    const b = new BackupBucket("prof", bucketArgs(config));
    const h = new Host("prof-host", {
      ...hostArgs(config),
      sshPrivateKey: pulumi.secret(DEPLOY_KEY.privateKey),
      instanceProfile: b.instanceProfileName,
    });
    await settled(b, h, h.nodes.instance, ...Object.values(b.nodes));
    assert.equal(one(INSTANCE, "prof-host").iamInstanceProfile, "prof-instance-profile-4d5e6f");
    assert.deepEqual(await valueOf(b.target), {
      bucket: "apphost-staging-20250101abcdef",
      region: MOCK.region,
      prefix: "apphost/staging/",
    });
  });

  it("nothing with an existing host: the config refuses s3, and the component refuses to build", async () => {
    assert.throws(
      () => stackConfig({ [S3]: true }, "staging", existingRaw()),
      (e: unknown) =>
        e instanceof ConfigError && e.issues.length === 1 && e.issues[0].path === "apphost:backups.s3",
    );
    const existing = stackConfig({}, "staging", existingRaw());
    assert.equal(BackupBucket.forStack("old", bucketArgs(existing)), undefined);
    assert.throws(
      () =>
        new BackupBucket("forced", { ...bucketArgs(existing), backups: { ...existing.backups, s3: true } }),
      /needs apphost:backups.s3 true and apphost:host.kind ec2/,
    );
    await host("old-host", {}, "staging", existingRaw());
    assert.deepEqual(
      resources.filter((r) => r.type.startsWith("aws:")),
      [],
    );
  });
});

describe("Dns", () => {
  beforeEach(resetRecords);

  async function dns(
    name: string,
    keys: Record<string, unknown>,
    publicIp = pulumi.output("198.51.100.10"),
    ipv6?: pulumi.Output<string | undefined>,
  ) {
    const d = new Dns(name, { ...dnsArgs(stackConfig(keys)), publicIp, ipv6Address: ipv6 });
    await settled(d, ...d.nodes.records);
    return d;
  }

  it("looks the zone up by name and points one A record per hostname at the host", async () => {
    const d = await dns("dns", {
      "dns.hostnames": [
        { name: "staging.example.com", proxied: true },
        { name: "api.example.com", proxied: true },
      ],
    });
    const lookups = calls.filter((c) => c.token === "cloudflare:index/getZone:getZone");
    assert.deepEqual(
      lookups.map((c) => c.inputs.filter),
      [{ name: "example.com" }],
    );
    assert.equal(await valueOf(d.zoneId), MOCK.zoneId);
    assert.deepEqual(
      ofType(RECORD, "dns").map((r) => r.inputs),
      [
        {
          zoneId: MOCK.zoneId,
          name: "staging.example.com",
          type: "A",
          content: "198.51.100.10",
          proxied: true,
          ttl: 1,
          comment: "apphost apphost/staging",
        },
        {
          zoneId: MOCK.zoneId,
          name: "api.example.com",
          type: "A",
          content: "198.51.100.10",
          proxied: true,
          ttl: 1,
          comment: "apphost apphost/staging",
        },
      ],
    );
  });

  it("uses ttl 1 for proxied records and 300 for the others", async () => {
    await dns("ttl", {
      "tls.mode": "caddy-acme",
      "dns.hostnames": [{ name: "example.com", proxied: true }, "www.example.com"],
    });
    const records = ofType(RECORD, "ttl").map((r) => r.inputs);
    for (const r of records) assert.equal(r.ttl, r.proxied ? 1 : 300, String(r.name));
    assert.deepEqual(
      records.map((r) => [r.name, r.proxied, r.ttl]),
      [
        ["example.com", true, 1],
        ["www.example.com", false, 300],
      ],
    );
  });

  it("uses a configured zone id without a lookup", async () => {
    await dns("zid", { "dns.zone": undefined, "dns.zoneId": "023e105f4ecef8ad9ca31a8372d0c353" });
    assert.equal(calls.filter((c) => c.token === "cloudflare:index/getZone:getZone").length, 0);
    assert.equal(one(RECORD, "zid").zoneId, "023e105f4ecef8ad9ca31a8372d0c353");
  });

  it("publishes AAAA records only with dns.ipv6", async () => {
    await dns("v4", {});
    assert.deepEqual(
      ofType(RECORD, "v4").map((r) => r.inputs.type),
      ["A"],
    );
    await dns(
      "v6",
      { "dns.ipv6": true },
      pulumi.output("198.51.100.10"),
      pulumi.output<string | undefined>("2001:db8::10"),
    );
    assert.deepEqual(
      ofType(RECORD, "v6").map((r) => [r.inputs.type, r.inputs.content]),
      [
        ["A", "198.51.100.10"],
        ["AAAA", "2001:db8::10"],
      ],
    );
  });

  it("takes the address from the host, so an IP change reaches DNS in the same run", async () => {
    resetRecords();
    const config = stackConfig({ "dns.ipv6": true });
    const h = new Host("flow", { ...hostArgs(config), sshPrivateKey: pulumi.secret(DEPLOY_KEY.privateKey) });
    const d = new Dns("flow-dns", { ...dnsArgs(config), publicIp: h.publicIp, ipv6Address: h.ipv6Address });
    await settled(...d.nodes.records);
    assert.deepEqual(
      ofType(RECORD, "flow-dns").map((r) => r.inputs.content),
      [MOCK.instancePublicIp, MOCK.instanceIpv6],
    );
  });

  /** One program run after a refresh that saw the instance at `ip`: the A record's content and the connection's host. */
  async function runAt(ip: string, keys: Record<string, unknown>, name: string) {
    const saved = MOCK.instancePublicIp;
    MOCK.instancePublicIp = ip;
    try {
      resetRecords();
      const config = stackConfig(keys);
      const h = new Host(name, { ...hostArgs(config), sshPrivateKey: pulumi.secret(DEPLOY_KEY.privateKey) });
      const d = new Dns(`${name}-dns`, {
        ...dnsArgs(config),
        publicIp: h.publicIp,
        ipv6Address: h.ipv6Address,
      });
      await settled(...d.nodes.records);
      const connection = await valueOf(h.connection);
      // The HostConnection every host resource takes its connection from.
      const beacon = ofType("pulumi-nodejs:dynamic/apphost:HostConnection", `${name}-connection`);
      assert.equal(beacon.length, 1);
      return {
        records: ofType(RECORD, `${name}-dns`).map((r) => r.inputs.content),
        connection: connection.host,
        // A secret input is recorded in its envelope: {<secret sig>: ..., value}.
        beacon: ((beacon[0].inputs.connection as { value?: { host: string } }).value ?? {}).host,
      };
    } finally {
      MOCK.instancePublicIp = saved;
    }
  }

  it("a stop/start without an Elastic IP: the refreshed publicIp moves DNS and the connection in the same run", async () => {
    const before = await runAt("198.51.100.10", {}, "moved");
    const after = await runAt("198.51.100.77", {}, "moved");
    assert.deepEqual(before, {
      records: ["198.51.100.10"],
      connection: "198.51.100.10",
      beacon: "198.51.100.10",
    });
    assert.deepEqual(after, {
      records: ["198.51.100.77"],
      connection: "198.51.100.77",
      beacon: "198.51.100.77",
    });
  });

  it("with an Elastic IP, a new instance address changes neither DNS nor the connection", async () => {
    const before = await runAt("198.51.100.10", { "host.elasticIp": true }, "fixed");
    const after = await runAt("198.51.100.77", { "host.elasticIp": true }, "fixed");
    assert.deepEqual(before, {
      records: [MOCK.elasticIp],
      connection: MOCK.elasticIp,
      beacon: MOCK.elasticIp,
    });
    assert.deepEqual(after, before);
  });

  it("creates nothing with provider none", async () => {
    const config = stackConfig({}, "staging", existingRaw());
    const d = new Dns("none", { ...dnsArgs(config), publicIp: pulumi.output("203.0.113.10") });
    await settled(d);
    assert.equal(d.nodes.records.length, 0);
    assert.equal(ofType(RECORD, "none").length, 0);
    assert.equal(await valueOf(d.zoneId), undefined);
    assert.deepEqual(recordSpecs(config.dns, "apphost/none"), []);
  });
});

describe("OriginCertificate", () => {
  beforeEach(resetRecords);
  const NOW = new Date("2026-11-25T12:00:00Z");

  async function cert(
    name: string,
    keys: Record<string, unknown> = {},
    extra: { keyAlgorithm?: "rsa" | "ecdsa"; now?: Date } = {},
  ) {
    const config = stackConfig(keys);
    const c = new OriginCertificate(name, {
      hostnames: config.dns.hostnames.map((h) => h.name),
      validityDays: config.tls.originValidityDays,
      renewBeforeDays: config.tls.renewBeforeDays,
      zoneId: MOCK.zoneId,
      now: NOW,
      ...extra,
    });
    await settled(c, ...Object.values(c.nodes));
    return c;
  }

  it("issues an ECC Origin CA certificate for every hostname from a P-256 key", async () => {
    const c = await cert("cert", {
      "dns.hostnames": [
        { name: "staging.example.com", proxied: true },
        { name: "api.example.com", proxied: true },
      ],
    });
    assert.deepEqual(one("tls:index/privateKey:PrivateKey", "cert"), {
      algorithm: "ECDSA",
      ecdsaCurve: "P256",
    });
    const csr = one("tls:index/certRequest:CertRequest", "cert");
    assert.deepEqual(csr.dnsNames, ["staging.example.com", "api.example.com"]);
    const window = renewalWindow(NOW, 365, 30);
    assert.deepEqual(csr.subject, {
      commonName: "staging.example.com",
      organizationalUnit: `apphost renewal window ${window}`,
    });
    const origin = one("cloudflare:index/originCaCertificate:OriginCaCertificate", "cert");
    assert.deepEqual(origin.hostnames, ["staging.example.com", "api.example.com"]);
    assert.equal(origin.requestType, "origin-ecc");
    assert.equal(origin.requestedValidity, 365);
    assert.match(origin.csr as string, /BEGIN CERTIFICATE REQUEST/);
    assert.equal(c.renewalWindow, window);
    assert.match(await valueOf(c.certificatePem), /BEGIN CERTIFICATE/);
  });

  it("uses RSA 2048 and origin-rsa when asked", async () => {
    await cert("rsa", {}, { keyAlgorithm: "rsa" });
    assert.deepEqual(one("tls:index/privateKey:PrivateKey", "rsa"), { algorithm: "RSA", rsaBits: 2048 });
    assert.equal(
      one("cloudflare:index/originCaCertificate:OriginCaCertificate", "rsa").requestType,
      "origin-rsa",
    );
  });

  it("sets the zone to Full (strict) only when asked, after what the program names (the host's install)", async () => {
    const c = await cert("ssl");
    assert.equal(
      ofType("cloudflare:index/zoneSetting:ZoneSetting", "ssl").length,
      0,
      "not before requireStrictSsl",
    );
    await settled(c.requireStrictSsl([]));
    assert.deepEqual(one("cloudflare:index/zoneSetting:ZoneSetting", "ssl"), {
      zoneId: MOCK.zoneId,
      settingId: "ssl",
      value: "strict",
    });
  });

  it("keeps the private key secret", async () => {
    const c = await cert("secret");
    assert.equal(await pulumi.isSecret(c.privateKeyPem), true);
    assert.match(await valueOf(c.privateKeyPem), /BEGIN PRIVATE KEY/);
  });

  it("renews by changing the CSR when pulumi up runs in the next window", async () => {
    const validity = 90;
    const renewBefore = 30;
    const keys = { "tls.originValidityDays": validity, "tls.renewBeforeDays": renewBefore };
    const windowMs = (validity - renewBefore) * 24 * 60 * 60 * 1000;
    const start = Math.floor(NOW.getTime() / windowMs) * windowMs;
    await cert("w1", keys, { now: new Date(start) });
    await cert("w2", keys, { now: new Date(start + windowMs - 1) });
    await cert("w3", keys, { now: new Date(start + windowMs) });
    const ou = (prefix: string) =>
      (one("tls:index/certRequest:CertRequest", prefix).subject as Inputs).organizationalUnit;
    assert.equal(ou("w1"), ou("w2"), "same window, same certificate");
    assert.notEqual(ou("w2"), ou("w3"), "next window, new certificate");
  });
});

describe("Database.sqliteCheck: a switch from SQLite with data is refused before the host changes", () => {
  beforeEach(resetRecords);
  afterEach(() => HOLD.clear());

  /**
   * program.ts's check, server and database (serverAndDatabase) with the check held: the names of what
   * registers meanwhile, then of everything once it is let go.
   */
  async function heldAtTheCheck(kind: "postgres" | "rds") {
    const config = stackConfig({ "database.kind": kind }, "staging");
    const h = await host(`sw${kind}-host`, { "database.kind": kind }, "staging");
    let release!: () => void;
    HOLD.set("database-sqlite-check", new Promise<void>((r) => (release = r)));
    const { server, database } = serverAndDatabase(config, h);
    assert.ok(database, `a Database for ${kind}`);
    await new Promise((r) => setTimeout(r, 300));
    const names = () => resources.map((r) => r.name).filter((n) => /^(database|server)-/.test(n));
    const before = names();
    release();
    await settled(database, ...database.ready, ...server.ready);
    const step = resources.find((r) => r.name === "database-sqlite-check")!;
    return { before, after: names(), script: String(step.inputs.stdin) };
  }

  it("postgres: the server's baseline, and so the role, wait for the check, which runs databaseSwitchCommands", async () => {
    const { before, after, script } = await heldAtTheCheck("postgres");
    assert.deepEqual(before, ["database-sqlite-check"], "only the check registered while it was held");
    for (const n of ["server-baseline", "database-role"])
      assert.ok(after.includes(n), `${n}: ${after.join(", ")}`);
    const expected = databaseSwitchCommands(hostLayout("apphost", "staging"), {
      kind: "postgres",
      sqliteFile: "app.db",
    });
    assert.ok(script.includes(expected.join("\n")), script);
  });

  it("rds: the instance waits for it too (a refused switch pays for no instance)", async () => {
    const { before, after } = await heldAtTheCheck("rds");
    assert.deepEqual(before, ["database-sqlite-check"], "only the check registered while it was held");
    assert.ok(after.includes("database-instance"), after.join(", "));
  });

  it("none for the kinds apphost makes nothing of (sqlite, external, none)", () => {
    const config = stackConfig({}, "staging");
    for (const kind of ["sqlite", "external", "none"] as const) {
      const args = {
        identity: stackIdentity(config),
        database: { ...config.database, kind },
        connection: { host: "10.0.0.9", port: 22, user: "root", privateKey: "unused" },
      };
      assert.equal(Database.sqliteCheck("x", args, {}), undefined, kind);
    }
  });
});

describe("Database (apphost:database.kind rds)", () => {
  beforeEach(resetRecords);
  const RDS = "aws:rds/instance:Instance";

  async function rds(name: string, keys: Record<string, unknown> = {}, stack = "staging") {
    const config = stackConfig({ "database.kind": "rds", ...keys }, stack);
    const h = await host(`${name}-host`, { "database.kind": "rds", ...keys }, stack);
    const db = new Database(name, {
      identity: stackIdentity(config),
      database: config.database,
      connection: h.connection,
      network: h.network,
    });
    await settled(db, db.nodes.securityGroup, db.nodes.ingress, db.nodes.subnetGroup, db.nodes.instance);
    return { db, h, instance: one(RDS, name) };
  }

  it("policy: encrypted, not publicly accessible, reachable on 5432 from the instance's security group only", async () => {
    const { instance, h } = await rds("pol");
    assert.equal(instance.storageEncrypted, true);
    assert.equal(instance.publiclyAccessible, false);
    assert.equal(instance.engine, "postgres");
    assert.equal(instance.engineVersion, "15");
    const dbSg = one("aws:ec2/securityGroup:SecurityGroup", "pol-sg");
    assert.equal(dbSg.vpcId, MOCK.defaultVpcId, "in the instance's VPC");
    assert.deepEqual(instance.vpcSecurityGroupIds, [sgId("pol-sg")]);
    // Exactly one way in: Postgres, from the host's group; no CIDR anywhere.
    const rules = ofType(INGRESS, "pol-in");
    assert.deepEqual(
      rules.map((r) => [r.inputs.securityGroupId, r.inputs.fromPort, r.inputs.toPort, r.inputs.ipProtocol]),
      [[sgId("pol-sg"), 5432, 5432, "tcp"]],
    );
    assert.equal(rules[0].inputs.referencedSecurityGroupId, await valueOf(h.network!.securityGroupId));
    assert.equal(rules[0].inputs.referencedSecurityGroupId, sgId("pol-host-sg"));
    assert.equal(rules[0].inputs.cidrIpv4, undefined);
    assert.equal(rules[0].inputs.cidrIpv6, undefined);
    assert.equal(ofType(EGRESS, "pol").filter((r) => r.inputs.securityGroupId === sgId("pol-sg")).length, 0);
  });

  it("staging: 7 days of automated backups, no deletion protection, no final snapshot", async () => {
    const { instance } = await rds("stg");
    assert.equal(instance.backupRetentionPeriod, 7);
    assert.equal(instance.deletionProtection, false);
    assert.equal(instance.skipFinalSnapshot, true);
    assert.equal(instance.finalSnapshotIdentifier, undefined);
  });

  it("prod*: 30 days of backups, deletion protection and a final snapshot", async () => {
    const { instance } = await rds("prd", {}, "prod");
    assert.equal(instance.backupRetentionPeriod, 30);
    assert.equal(instance.deletionProtection, true);
    assert.equal(instance.skipFinalSnapshot, false);
    assert.equal(instance.finalSnapshotIdentifier, "apphost-apphost-prod-final");
  });

  it("the master password is a RandomPassword, secret in the inputs and in DATABASE_URL", async () => {
    const { db } = await rds("sec");
    assert.equal(ofType("random:index/randomPassword:RandomPassword", "sec-password").length, 1);
    const url = db.url;
    assert.equal(await pulumi.isSecret(url), true);
    const value = await valueOf(url);
    assert.match(
      value,
      /^postgresql:\/\/apphost_staging:[^@]*@apphost-apphost-staging\.c0abcdefghij\.eu-central-1\.rds\.amazonaws\.com:5432\/apphost_staging\?sslmode=require$/,
    );
    const instance = db.nodes.instance!;
    assert.equal(await pulumi.isSecret(instance.password as pulumi.Output<string>), true);
  });

  it("with apphost:host.subnetId: a DB subnet group of the listed subnets, in that VPC", async () => {
    const { instance } = await rds("sub", {
      "host.subnetId": "subnet-0aaaaaaaaaaaaaaaa",
      "database.rds": { subnetIds: ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"] },
    });
    assert.deepEqual(one("aws:rds/subnetGroup:SubnetGroup", "sub").subnetIds, [
      "subnet-0aaaaaaaaaaaaaaaa",
      "subnet-0bbbbbbbbbbbbbbbb",
    ]);
    assert.equal(instance.dbSubnetGroupName, "sub-subnets-7g8h9i");
    assert.equal(one("aws:ec2/securityGroup:SecurityGroup", "sub-sg").vpcId, MOCK.subnetVpcId);
  });

  it("refuses rds on an existing server, and a subnetId without rds.subnetIds, before anything is created", () => {
    assert.throws(
      () => stackConfig({ "database.kind": "rds" }, "staging", existingRaw()),
      (e: Error) =>
        e instanceof ConfigError &&
        e.message.includes('apphost:database.kind: "rds" needs apphost:host.kind ec2 (got "existing")'),
    );
    assert.throws(
      () => stackConfig({ "database.kind": "rds", "host.subnetId": "subnet-0aaaaaaaaaaaaaaaa" }),
      (e: Error) => e instanceof ConfigError && e.message.includes("apphost:database.rds.subnetIds: missing"),
    );
  });
});

describe("generated passwords (components/computed.ts)", () => {
  /** OutputImpl's own promise: apply never calls back on an unknown value, so valueOf would wait forever. */
  const isKnown = (o: pulumi.Output<unknown>) => (o as unknown as { isKnown: Promise<boolean> }).isKnown;

  it("a RandomPassword's result, letters and digits, secret", async () => {
    const pw = generatedPassword("gen-pw", 32);
    assert.equal(await isKnown(pw), true);
    assert.equal(await pulumi.isSecret(pw), true);
    assert.match(await valueOf(pw), /^[A-Za-z0-9]{32}$/);
    assert.deepEqual(
      ofType("random:index/randomPassword:RandomPassword", "gen-pw").map((r) => [
        r.inputs.length,
        r.inputs.special,
      ]),
      [[32, false]],
    );
  });

  it("unknown, never undefined, when the state holds none (a destroy of a stack never deployed)", async () => {
    NO_RESULT.add("gen-none").add("gone-password");
    try {
      const pw = generatedPassword("gen-none", 32);
      assert.equal(await isKnown(pw), false);
      // Nothing is rendered from it: the Postgres role's URL is unknown too, not "...:undefined@...".
      const config = stackConfig({ "database.kind": "postgres" });
      const h = await host("gone-host", { "database.kind": "postgres" });
      const db = new Database("gone", {
        identity: stackIdentity(config),
        database: config.database,
        connection: h.connection,
      });
      assert.equal(await isKnown(db.url), false);
    } finally {
      NO_RESULT.clear();
    }
  });
});
