/**
 * Connections that follow the host. Each host resource stores the connection
 * it was last applied with, and the engine hands a resource's `read` and
 * `delete` that stored state, run by the provider code stored with it. After
 * an EC2 stop/start (no Elastic IP) or a changed `apphost:host.address`, the
 * stored address is stale; these helpers let every host resource use the
 * connection of the current program run instead:
 *
 * - `HostConnection` (./resources.ts), one per host, is registered first; its
 *   `check` (which sees the current program's inputs) records the current
 *   connection in this process under the host's `ref`. Every host resource
 *   takes its connection from that resource's output, so it registers after.
 * - The dynamic providers of all resources run in one provider process per
 *   deployment, so a host resource's `read` and `delete` find the current
 *   connection there (`currentConnection`). With the program run by a refresh
 *   or destroy (`--run-program`, or `PULUMI_RUN_PROGRAM=true`, which
 *   `scripts/engine env` and the npm commands set), `pulumi up --refresh` and
 *   `pulumi destroy` reach the host at its new address. Without it they use
 *   the stored connection, which every `pulumi up` keeps current.
 * - A changed connection is an update that rewrites the stored connection and
 *   does no remote work unless the content changed too (`connectionChanged`).
 * - `PROVIDER_VERSION` is an input of every dynamic resource: bumping it turns
 *   the next `up` into updates that store the new provider code, so `read`
 *   and `delete` run the upgraded code from then on.
 *
 * Pulumi serializes the providers that call these functions: Node built-ins
 * only, and the registry lives on `globalThis`, shared by every provider the
 * process loads.
 */
import type { SshConnection } from "./connection";

/** Bump when a dynamic provider's read, update or delete changes behaviour. */
export const PROVIDER_VERSION = 3;

const REGISTRY = "__apphostCurrentConnections";

function registry(): Map<string, SshConnection> {
  const g = globalThis as unknown as Record<string, Map<string, SshConnection> | undefined>;
  let map = g[REGISTRY];
  if (!map) {
    map = new Map();
    g[REGISTRY] = map;
  }
  return map;
}

/** Records the current program's connection to the host `conn.ref`. */
export function rememberConnection(conn: SshConnection): void {
  if (conn.ref) registry().set(conn.ref, conn);
}

/** The current program's connection to the host a stored connection names, else the stored one. */
export function currentConnection(stored: SshConnection): SshConnection {
  return (stored.ref ? registry().get(stored.ref) : undefined) ?? stored;
}

/** Forgets every recorded connection (tests). */
export function forgetConnections(): void {
  registry().clear();
}

/** True when `next` reaches another host, port, user or key than `prev`, pins another host key, or goes another way (jump host). */
export function connectionChanged(prev: SshConnection | undefined, next: SshConnection): boolean {
  if (!prev) return true;
  return (
    prev.host !== next.host ||
    Number(prev.port) !== Number(next.port) ||
    prev.user !== next.user ||
    prev.privateKey !== next.privateKey ||
    (prev.hostKey ?? "") !== (next.hostKey ?? "") ||
    (prev.ref ?? "") !== (next.ref ?? "") ||
    JSON.stringify(prev.proxy ?? null) !== JSON.stringify(next.proxy ?? null)
  );
}
