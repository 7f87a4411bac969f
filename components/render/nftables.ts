/**
 * The stack's upstream switch: one nftables table per stack (family ip,
 * `layout.nftTable`) with one nat rule on the output hook,
 *
 *   ip daddr 127.0.0.1 tcp dport <upstream port> dnat to 127.0.0.1:<live web port>
 *
 * The proxy always connects to `127.0.0.1:<upstream port>` (basePort + 2,
 * `upstreamPort()`), so its configuration never changes per release and is
 * never reloaded. A release replaces the table in one `nft -f` transaction:
 * NAT is decided on a connection's first packet and kept by conntrack, so every
 * new connection goes to the new instance at once while established ones
 * finish on the old instance, which then drains and stops.
 *
 * The same table name in family inet holds the stack's guard: on the input
 * hook, a connection to either web port from anywhere but loopback is reset.
 * The proxy (and a balancer, through the proxy's own port) is the only way
 * in, so a server that binds 0.0.0.0 (gunicorn without --bind, fastapi run,
 * Node's listen(port)) does not answer past TLS and the maintenance page on a
 * host whose own firewall lets those ports in.
 *
 * The ruleset deletes and re-creates only this stack's tables (`table` first,
 * so the `delete` finds it on the first load too): another stack's tables, the
 * host's own firewall and Docker's rules are never touched.
 */
import { upstreamPort, webPorts, type HostLayout } from "../paths";
import { assertSafe, SAFE } from "../shell";
import { managedBy } from "./common";

/** A table name nft accepts unquoted. */
const TABLE = /^[a-z][a-z0-9_]{0,62}$/;

export interface UpstreamRulesetInput {
  /**
   * apphost:app.basePort: the web instances take turns on it and basePort + 1
   * (`webPorts`), reachable on loopback only; the proxy connects to basePort + 2
   * (`upstreamPort`)
   */
  basePort: number;
  /** The live web instance's port */
  port: number;
}

/**
 * Input for `nft -f -`: replaces the stack's table atomically (one
 * transaction: `table` makes sure it exists, `delete` drops it with its old
 * rule, the last block creates it again).
 */
export function renderUpstreamRuleset(layout: HostLayout, input: UpstreamRulesetInput): string {
  const t = layout.nftTable;
  if (!TABLE.test(t)) throw new Error(`nftables table "${t}": use lowercase letters, digits and _`);
  const up = upstreamPort(input.basePort);
  const [a, b] = webPorts(input.basePort);
  assertSafe("port", [
    ["basePort", input.basePort, SAFE.port],
    ["upstream port (basePort + 2)", up, SAFE.port],
    ["web port", input.port, SAFE.port],
  ]);
  if (input.port === up) {
    throw new Error(`the web port ${input.port} cannot be the upstream port itself`);
  }
  return [
    `# ${managedBy("nftables.ts")}`,
    `# apphost ${layout.id}: the proxy's upstream 127.0.0.1:${up} leads to the live web instance;`,
    `# the web ports ${a} and ${b} answer on loopback only.`,
    `table ip ${t} {}`,
    `delete table ip ${t}`,
    `table inet ${t} {}`,
    `delete table inet ${t}`,
    `table ip ${t} {`,
    "\tchain upstream {",
    // -100 is dstnat; nft 1.0.6 accepts the name only on prerouting.
    "\t\ttype nat hook output priority -100; policy accept;",
    `\t\tip daddr 127.0.0.1 tcp dport ${up} dnat to 127.0.0.1:${input.port}`,
    "\t}",
    "}",
    `table inet ${t} {`,
    "\tchain loopback_only {",
    "\t\ttype filter hook input priority 0; policy accept;",
    `\t\tiifname != "lo" tcp dport { ${a}, ${b} } reject with tcp reset`,
    "\t}",
    "}",
    "",
  ].join("\n");
}

/** `nft` arguments that remove the stack's tables (destroy), one command each; each fails when its table is gone. */
export function deleteUpstreamTables(layout: HostLayout): string[] {
  if (!TABLE.test(layout.nftTable)) throw new Error(`nftables table "${layout.nftTable}"`);
  return [`delete table ip ${layout.nftTable}`, `delete table inet ${layout.nftTable}`];
}
