/**
 * Cloudflare DNS for the stack's hostnames: one A record per hostname (and an
 * AAAA with `apphost:dns.ipv6`), all pointing at `Host.publicIp`.
 *
 * Because the record content is the host's address as an input, a changed
 * address (an instance stop/start without an Elastic IP, picked up by
 * `pulumi up --refresh`) updates DNS in the same run.
 */
// Type-only at the top: the SDK is loaded where it is used, so stacks without Cloudflare DNS start faster.
import type * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { DNS_DEFAULTS } from "./config/defaults";
import type { DnsConfig } from "./config/types";

export interface DnsArgs {
  /** apphost:dns, validated: the provider, the zone and the hostnames */
  dns: DnsConfig;
  /** Who owns the records, `<project>/<stack>`: each record's comment names it */
  owner: string;
  /** `Host.publicIp` */
  publicIp: pulumi.Input<string>;
  /** `Host.ipv6Address`; required when `apphost:dns.ipv6` is on. */
  ipv6Address?: pulumi.Input<string | undefined>;
}

/** `DnsArgs.owner` of a stack: `<project>/<stack>`. */
export function recordOwner(stack: { project: string; stack: string }): string {
  return `${stack.project}/${stack.stack}`;
}

/** One record, as data, so tests can check names, TTLs and proxying without Cloudflare. */
export interface RecordSpec {
  /** Suffix of the resource name: the hostname with dots as dashes, plus the type */
  id: string;
  hostname: string;
  type: "A" | "AAAA";
  proxied: boolean;
  ttl: number;
  comment: string;
}

export class Dns extends pulumi.ComponentResource {
  /** The zone the records live in (looked up by name unless `apphost:dns.zoneId` is set); undefined with provider none. */
  readonly zoneId: pulumi.Output<string | undefined>;
  /** Every published hostname, primary first. */
  readonly hostnames: string[];
  readonly nodes: { records: cloudflare.DnsRecord[] };

  constructor(name: string, args: DnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:Dns", name, {}, opts);
    // Options of every child: hoisted helper functions below cannot use `this` themselves.
    const childOpts = { parent: this };
    const { dns } = args;
    this.hostnames = dns.hostnames.map((h) => h.name);

    // provider "none": DNS is managed elsewhere. Nothing is created, so the
    // program can construct this component unconditionally.
    if (dns.provider !== "cloudflare") {
      this.zoneId = pulumi.output(undefined);
      this.nodes = { records: [] };
      this.registerOutputs({ zoneId: this.zoneId });
      return;
    }

    const cloudflare = require("@pulumi/cloudflare") as typeof import("@pulumi/cloudflare");
    const zoneId = lookupZoneId();
    const records = createRecords(zoneId);

    this.zoneId = zoneId.apply((id) => id as string | undefined);
    this.nodes = { records };
    this.registerOutputs({ zoneId: this.zoneId, hostnames: this.hostnames });

    function lookupZoneId(): pulumi.Output<string> {
      if (dns.zoneId) return pulumi.output(dns.zoneId);
      // Validation guarantees a zone name when there is no id.
      return cloudflare.getZoneOutput({ filter: { name: dns.zone as string } }, childOpts).id;
    }

    function createRecords(zone: pulumi.Output<string>): cloudflare.DnsRecord[] {
      return recordSpecs(dns, args.owner).map(
        (spec) =>
          new cloudflare.DnsRecord(
            `${name}-${spec.id}`,
            {
              zoneId: zone,
              name: spec.hostname,
              type: spec.type,
              content: spec.type === "A" ? args.publicIp : requireIpv6(args.ipv6Address, spec.hostname),
              proxied: spec.proxied,
              ttl: spec.ttl,
              comment: spec.comment,
            },
            childOpts,
          ),
      );
    }
  }
}

/**
 * The records of a stack. Resource names come from the hostname, not its
 * position, so reordering `apphost:dns.hostnames` replaces nothing.
 */
export function recordSpecs(dns: DnsConfig, owner: string): RecordSpec[] {
  if (dns.provider !== "cloudflare") return [];
  const types: Array<"A" | "AAAA"> = dns.ipv6 ? ["A", "AAAA"] : ["A"];
  return dns.hostnames.flatMap((h) =>
    types.map((type) => ({
      id: `${h.name.replace(/\./g, "-")}-${type.toLowerCase()}`,
      hostname: h.name,
      type,
      proxied: h.proxied,
      // Cloudflare only accepts "automatic" (1) on proxied records; visitors see Cloudflare's addresses anyway.
      ttl: h.proxied ? DNS_DEFAULTS.proxiedTtl : DNS_DEFAULTS.ttl,
      comment: `apphost ${owner}`,
    })),
  );
}

function requireIpv6(
  address: pulumi.Input<string | undefined> | undefined,
  hostname: string,
): pulumi.Output<string> {
  return pulumi.output(address).apply((a) => {
    if (!a) {
      throw new Error(
        `apphost: the AAAA record for ${hostname} needs the instance's IPv6 address, but it has none. ` +
          "Use a subnet with an IPv6 CIDR (apphost:host.subnetId; the default VPC has none) or turn off apphost:dns.ipv6.",
      );
    }
    return a;
  });
}
