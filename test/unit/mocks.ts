/**
 * The one `pulumi.runtime.setMocks` of the unit tests. Every `setMocks` call
 * replaces the previous one, so test files import this module first and
 * import components after it.
 *
 * Resource inputs and invokes are recorded so tests can assert on them
 * (policy-style: "SSH is not open to the world"); computed outputs such as the
 * instance's public IP are filled in the way AWS and Cloudflare would.
 */
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { stubProviderSerialization } from "./provider-serialization";

export interface RecordedResource {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

export interface RecordedCall {
  token: string;
  inputs: Record<string, unknown>;
}

/**
 * A real ed25519 key pair in OpenSSH formats, as @pulumi/tls returns it
 * (`privateKeyOpenssh`, `publicKeyOpenssh` with a trailing newline), one per
 * resource name, so tests can check that what the instance installs is one pair.
 */
const ED25519_KEYS = new Map<string, { privateKeyOpenssh: string; publicKeyOpenssh: string }>();
export function ed25519(name: string): { privateKeyOpenssh: string; publicKeyOpenssh: string } {
  let pair = ED25519_KEYS.get(name);
  if (!pair) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-mock-key-"));
    const file = path.join(dir, "key");
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "", "-f", file]);
    if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
    pair = {
      privateKeyOpenssh: fs.readFileSync(file, "utf8"),
      publicKeyOpenssh: `${fs.readFileSync(`${file}.pub`, "utf8").trim()}\n`,
    };
    fs.rmSync(dir, { recursive: true, force: true });
    ED25519_KEYS.set(name, pair);
  }
  return pair;
}

/**
 * Names of RandomPasswords answered without a result, as the engine answers a
 * destroy's or refresh's program run on a stack whose state holds none.
 */
export const NO_RESULT = new Set<string>();

/**
 * Resources whose registration the mocked engine holds until the promise settles, by name: a test holds
 * one and sees which resources wait for it (their dependsOn) and which do not.
 */
export const HOLD = new Map<string, Promise<void>>();

export const resources: RecordedResource[] = [];
export const calls: RecordedCall[] = [];

/** Public addresses the mocked cloud hands out. */
export const MOCK = {
  instancePublicIp: "198.51.100.10",
  instancePrivateIp: "172.31.5.10",
  instanceIpv6: "2001:db8::10",
  elasticIp: "203.0.113.50",
  zoneId: "0123456789abcdef0123456789abcdef",
  defaultVpcId: "vpc-0default0000000000",
  subnetVpcId: "vpc-0custom00000000000",
  region: "eu-central-1",
  accountId: "123456789012",
};

/** The id the mocked cloud gives the security group named `name`. */
export function sgId(name: string): string {
  return `sg-0${createHash("sha256").update(name).digest("hex").slice(0, 16)}`;
}

/** Forgets what earlier tests recorded. */
export function resetRecords(): void {
  resources.length = 0;
  calls.length = 0;
}

/** Records of one resource type, optionally only those whose name starts with `prefix`. */
export function ofType(type: string, prefix = ""): RecordedResource[] {
  return resources.filter((r) => r.type === type && r.name.startsWith(prefix));
}

/** An Output's value. Never assert inside an un-awaited apply: a failure there is lost. */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

/** Waits until each resource is registered, so its inputs are recorded. */
export async function settled(...all: Array<pulumi.Resource | undefined>): Promise<void> {
  await Promise.all(all.filter((r): r is pulumi.Resource => r !== undefined).map((r) => valueOf(r.urn)));
}

function amiFor(inputs: Record<string, unknown>): Record<string, unknown> {
  const filters = (inputs.filters ?? []) as Array<{ name: string; values: string[] }>;
  const arch = filters.find((f) => f.name === "architecture")?.values[0] ?? "x86_64";
  const pattern = filters.find((f) => f.name === "name")?.values[0] ?? "";
  return {
    id: `ami-${arch === "arm64" ? "0arm64" : "0amd64"}${(inputs.owners as string[])[0]}`,
    architecture: arch,
    name: pattern.replace("*", "20250101-1234"),
  };
}

// No spec under these mocks reads a dynamic resource's serialized provider: each is serialized for real once, in
// release.provider.test.
stubProviderSerialization();

pulumi.runtime.setMocks(
  {
    call(args: pulumi.runtime.MockCallArgs) {
      calls.push({ token: args.token, inputs: args.inputs });
      switch (args.token) {
        case "aws:ec2/getAmi:getAmi":
          return amiFor(args.inputs);
        case "aws:ec2/getVpc:getVpc":
          return { id: MOCK.defaultVpcId, default: true, cidrBlock: "172.31.0.0/16" };
        case "aws:ec2/getSubnet:getSubnet":
          return { id: args.inputs.id, vpcId: MOCK.subnetVpcId };
        case "aws:ec2/getSubnets:getSubnets":
          // The default VPC's default subnet of each availability zone.
          return {
            ids: ["subnet-0default0000000002", "subnet-0default0000000001", "subnet-0default0000000003"],
          };
        case "cloudflare:index/getZone:getZone":
          return { id: MOCK.zoneId, zoneId: MOCK.zoneId, name: args.inputs.filter?.name, status: "active" };
        default:
          return args.inputs;
      }
    },
    newResource(args: pulumi.runtime.MockResourceArgs) {
      resources.push({ type: args.type, name: args.name, inputs: args.inputs });
      const state: Record<string, unknown> = { ...args.inputs };
      let id = `${args.name}-id`;
      switch (args.type) {
        case "aws:ec2/instance:Instance":
          id = "i-0123456789abcdef0";
          state.publicIp = MOCK.instancePublicIp;
          state.privateIp = MOCK.instancePrivateIp;
          state.subnetId = args.inputs.subnetId ?? "subnet-0default0000000001";
          state.ipv6Addresses = args.inputs.ipv6AddressCount ? [MOCK.instanceIpv6] : [];
          break;
        case "aws:ec2transitgateway/instanceConnectEndpoint:InstanceConnectEndpoint":
          id = "eice-0123456789abcdef0";
          state.region = MOCK.region;
          state.dnsName = `${id}.ec2-instance-connect-endpoint.${MOCK.region}.amazonaws.com`;
          break;
        case "aws:ec2/eip:Eip":
          id = "eipalloc-0123456789abcdef0";
          state.allocationId = id;
          state.publicIp = MOCK.elasticIp;
          break;
        case "aws:ec2/keyPair:KeyPair":
          state.keyName = `${args.name}-0123abc`;
          break;
        case "aws:ec2/securityGroup:SecurityGroup":
          // One id per group, so a rule's source group can be told from its own.
          id = sgId(args.name);
          break;
        case "aws:rds/instance:Instance":
          id = `db-${args.name}`;
          state.address = `${args.inputs.identifier as string}.c0abcdefghij.${MOCK.region}.rds.amazonaws.com`;
          state.endpoint = `${state.address as string}:${args.inputs.port as number}`;
          break;
        case "aws:rds/subnetGroup:SubnetGroup":
          state.name = `${args.name}-7g8h9i`;
          id = state.name as string;
          break;
        case "aws:s3/bucket:Bucket": {
          // AWS appends a unique suffix to bucketPrefix.
          const bucket =
            (args.inputs.bucket as string) ?? `${args.inputs.bucketPrefix as string}20250101abcdef`;
          id = bucket;
          state.bucket = bucket;
          state.arn = `arn:aws:s3:::${bucket}`;
          state.region = (args.inputs.region as string) ?? MOCK.region;
          break;
        }
        case "aws:iam/role:Role":
          state.name = `${args.name}-1a2b3c`;
          id = state.name as string;
          state.arn = `arn:aws:iam::${MOCK.accountId}:role/${state.name as string}`;
          break;
        case "aws:iam/instanceProfile:InstanceProfile":
          state.name = `${args.name}-4d5e6f`;
          id = state.name as string;
          state.arn = `arn:aws:iam::${MOCK.accountId}:instance-profile/${state.name as string}`;
          break;
        case "tls:index/privateKey:PrivateKey":
          state.privateKeyPem = `-----BEGIN PRIVATE KEY-----\nmock-${args.name}\n-----END PRIVATE KEY-----\n`;
          if (args.inputs.algorithm === "ED25519") Object.assign(state, ed25519(args.name));
          break;
        case "tls:index/certRequest:CertRequest":
          state.certRequestPem =
            "-----BEGIN CERTIFICATE REQUEST-----\nmock\n-----END CERTIFICATE REQUEST-----\n";
          break;
        case "aws:lb/loadBalancer:LoadBalancer":
          state.arn = `arn:aws:elasticloadbalancing:${MOCK.region}:${MOCK.accountId}:loadbalancer/app/${args.name}/50dc6c495c0c9188`;
          state.dnsName = `${args.name}-1234567890.${MOCK.region}.elb.amazonaws.com`;
          break;
        case "aws:lb/targetGroup:TargetGroup":
          state.arn = `arn:aws:elasticloadbalancing:${MOCK.region}:${MOCK.accountId}:targetgroup/${args.name}/73e2d6bc24d8a067`;
          break;
        case "aws:acm/certificate:Certificate": {
          state.arn = `arn:aws:acm:${MOCK.region}:${MOCK.accountId}:certificate/${args.name}`;
          const names = [
            args.inputs.domainName as string,
            ...((args.inputs.subjectAlternativeNames as string[]) ?? []),
          ];
          // ACM keeps its own order: reversed here, so a test catches code that relies on it.
          state.domainValidationOptions = names.reverse().map((n) => ({
            domainName: n,
            resourceRecordName: `_x1.${n}.`,
            resourceRecordType: "CNAME",
            resourceRecordValue: `_y1.${n.replace(/\./g, "-")}.acm-validations.aws.`,
          }));
          break;
        }
        case "aws:acm/certificateValidation:CertificateValidation":
          state.certificateArn = args.inputs.certificateArn;
          break;
        case "random:index/randomPassword:RandomPassword":
          // Letters and digits, as the real provider makes with special: false.
          if (!NO_RESULT.has(args.name))
            state.result = "Mock0pw".repeat(10).slice(0, (args.inputs.length as number) ?? 16);
          break;
        case "cloudflare:index/originCaCertificate:OriginCaCertificate":
          state.certificate = "-----BEGIN CERTIFICATE-----\nmock\n-----END CERTIFICATE-----\n";
          state.expiresOn = "2026-01-01T00:00:00Z";
          break;
      }
      const hold = HOLD.get(args.name);
      return hold ? hold.then(() => ({ id, state })) : { id, state };
    },
  },
  "apphost",
  "staging",
  false,
);
