/**
 * The release on several app hosts behind a balancer (`apphost:lb`): one
 * resource, so the roll is all or nothing in the state.
 *
 * First, for a new install or a build (preparesFirst), every host to deploy
 * uploads and installs the release side by side (`apphost-release prepare`:
 * nothing that serves changes), so a dependency that fails to build stops the
 * `up` before any host is touched, and the installs take the time of one.
 * Then the release rolls host by host, each deploy reusing what its host
 * prepared: the first host (it runs the migration, once, before any other
 * host has the new code) alone, then the others
 * `apphost:releases.batchSize` at a time. For each host:
 *   1. drain: the balancer leaves it out (`apphost-lb drain`), then
 *      `drainSeconds` for the requests in flight;
 *   2. deploy: `apphost-release` with today's health-gated phases (the same
 *      detached job, followed and adopted as on one host: ./release.ts);
 *   3. undrain, and wait until the host answers its health check from the
 *      balancer (`apphost-lb wait-healthy`).
 * A failure on any host stops the roll: that host's own deploy rolled itself
 * back, the hosts already done are rolled back to the release they served,
 * every host goes back into the balancer, and the error names them all.
 *
 * A host added with the same code gets the live release before the balancer
 * lists it (the balancer's upstream file waits for this resource); a removed
 * host leaves the balancer in the same `up` (before its resources go).
 */
import * as pulumi from "@pulumi/pulumi";
import type { SshConnection } from "./connection";
import { connectionChanged, currentConnection, PROVIDER_VERSION } from "./follow";
import {
  deploy,
  liveOf,
  newReleaseId,
  onlyForDrift,
  parseKv,
  prepare,
  rollback,
  type PhaseTime,
  type ReleaseInputs,
} from "./release";
import { redact, runRemote, shellQuote, sshFailure } from "./ssh";

/** One app host of the roll. */
export interface RolloutHost {
  /** The host's component name (`app`, `app2`, ...): stable across runs, the key of `live` */
  name: string;
  connection: SshConnection;
  /** `/srv/<id>/bin/apphost-release` */
  script: string;
  /** Hash of what the host's processes run with (env file, units, script) */
  configHash: string;
  /** `address:port` of its proxy in the balancer's upstream list */
  upstream: string;
  /** Behind apphost:lb: the file whose presence fails the host's health path for the balancer (drained) */
  drainFile?: string;
}

export interface RolloutBalancer {
  connection: SshConnection;
  /** `apphost-lb` on the balancer host */
  script: string;
  /** apphost:releases.drainSeconds: how long a drained host finishes its requests */
  drainSeconds: number;
  /** apphost:releases.healthTimeoutSeconds: how long an undrained host may take to answer */
  healthTimeoutSeconds: number;
  /** apphost:lb.healthIntervalSeconds: the balancer notices a drained host within one */
  healthIntervalSeconds?: number;
}

interface Inputs {
  hosts: RolloutHost[];
  /**
   * apphost:lb's balancer host, drained and undrained around each host. Absent
   * behind the EC2 load balancer: each host's own health-gated switch drops
   * nothing, and the target group's health check takes a failed host out.
   */
  balancer?: RolloutBalancer;
  artifact: string;
  contentHash: string;
  requirementsHash: string;
  rollbackTo?: string;
  lockOwner: string;
  batchSize: number;
  /** apphost:app.build is set: each release runs it, so the hosts prepare the release side by side first */
  build?: boolean;
  redactions?: string[];
  providerVersion?: number;
}

/** What one host serves. A list, not a map: the state sorts map keys. */
export interface HostLive {
  name: string;
  live: string;
}

interface Outputs extends Inputs {
  releaseId: string;
  /** The release each host serves, as last seen */
  live: HostLive[];
  /** The first host's phases (it runs the migration) */
  phaseSeconds?: PhaseTime[];
}

const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
const KEYS: (keyof Inputs)[] = ["contentHash", "requirementsHash", "rollbackTo"];

/** The first host alone, then the rest `size` at a time. */
export function rollBatches<T>(hosts: T[], size: number): T[][] {
  if (hosts.length === 0) return [];
  const out: T[][] = [[hosts[0]]];
  // Never every host at once: one must stay in the balancer.
  const n = Math.max(1, Math.min(size, hosts.length - 1));
  for (let i = 1; i < hosts.length; i += n) out.push(hosts.slice(i, i + n));
  return out;
}

/** Which hosts need the release deployed: all when the code, config or target changed; else the new ones and the drifted. */
export function hostsToDeploy(olds: Outputs | undefined, news: Inputs): RolloutHost[] {
  if (!olds) return news.hosts;
  const everything = KEYS.some((k) => (news[k] ?? "") !== (olds[k] ?? ""));
  if (everything) return news.hosts;
  const before = new Map((olds.hosts ?? []).map((h) => [h.name, h]));
  const live = new Map((olds.live ?? []).map((h) => [h.name, h.live]));
  const target = olds.rollbackTo || olds.releaseId;
  return news.hosts.filter((h) => {
    const old = before.get(h.name);
    return (
      !old ||
      old.configHash !== h.configHash ||
      old.script !== h.script ||
      (live.has(h.name) && live.get(h.name) !== target) ||
      // The same name on another machine: a new host.
      old.connection.host !== h.connection.host
    );
  });
}

/**
 * The host is deployed again only for drift (onlyForDrift, as one host's
 * Release decides it): the state holds this same work as done there, on the
 * same machine, with the same rollback target.
 */
export function deployedForDrift(olds: Outputs | undefined, news: Inputs, host: RolloutHost): boolean {
  const old = olds?.hosts?.find((h) => h.name === host.name);
  return (
    !!olds &&
    !!old &&
    old.connection.host === host.connection.host &&
    (news.rollbackTo ?? "") === (olds.rollbackTo ?? "") &&
    onlyForDrift(
      { ...olds, configHash: old.configHash, script: old.script },
      { ...news, configHash: host.configHash, script: host.script },
    )
  );
}

function hostInputs(inputs: Inputs, host: RolloutHost): ReleaseInputs {
  return {
    connection: host.connection,
    script: host.script,
    artifact: inputs.artifact,
    contentHash: inputs.contentHash,
    requirementsHash: inputs.requirementsHash,
    configHash: host.configHash,
    ...(inputs.rollbackTo ? { rollbackTo: inputs.rollbackTo } : {}),
    lockOwner: inputs.lockOwner,
    redactions: inputs.redactions ?? [],
  };
}

async function balancerRun(inputs: Inputs, args: string[], what: string): Promise<void> {
  const b = inputs.balancer;
  if (!b) return;
  const res = await runRemote(b.connection, `exec ${[b.script, ...args].map(shellQuote).join(" ")}`, {
    what,
    timeoutSeconds: Math.max(120, b.healthTimeoutSeconds + 60),
    allowFailure: true,
  });
  if (res.code !== 0) {
    const why =
      res.code === 255
        ? sshFailure(b.connection, res.stderr)
        : res.stderr.trim().split("\n").slice(-5).join("\n");
    throw new Error(
      redact(`${what}: the balancer answered exit status ${res.code}: ${why}`, [b.connection.privateKey]),
    );
  }
}

/**
 * Out of the balancer or back in, on the host itself: its drain file makes its
 * health path fail for the balancer's active check (render/caddy.ts), so the
 * balancer's configuration never changes (no reload) during a release.
 */
async function drain(inputs: Inputs, host: RolloutHost, on: boolean): Promise<void> {
  if (!inputs.balancer || !host.drainFile) return;
  const file = shellQuote(host.drainFile);
  const command = on ? `install -m 0644 /dev/null ${file}` : `rm -f ${file}`;
  const res = await runRemote(host.connection, command, {
    what: `${host.name}: ${on ? "drain" : "undrain"}`,
    allowFailure: true,
    timeoutSeconds: 60,
  });
  if (res.code !== 0) {
    throw new Error(
      redact(
        `${host.name}: ${on ? "drain" : "undrain"} (${host.drainFile}): exit status ${res.code}: ${res.code === 255 ? sshFailure(host.connection, res.stderr) : res.stderr.trim()}`,
        [host.connection.privateKey],
      ),
    );
  }
}

/**
 * Whether the hosts to deploy prepare the release before the roll: two or more of them, and an install that can
 * take minutes or fail (the first release, changed requirements) or a build (it runs for each release). A release
 * of new code alone reuses each host's venv or node_modules in its deploy: preparing would only add a job per host.
 */
export function preparesFirst(
  olds: Pick<Inputs, "requirementsHash"> | undefined,
  news: Inputs,
  hosts: number,
): boolean {
  if (hosts < 2) return false;
  return !olds || olds.requirementsHash !== news.requirementsHash || news.build === true;
}

/**
 * Before the roll (preparesFirst): every host to deploy uploads and installs the release side by side
 * (`apphost-release start prepare`), so the roll's deploys reuse it and the installs' minutes are paid once, not
 * once a host. A failure here stops the `up` before any host leaves the balancer, backs up or migrates: each
 * host's live release serves on. Returns the hosts that prepared (their deploys send no artifact).
 */
async function prepareAll(
  inputs: Inputs,
  hosts: RolloutHost[],
  releaseId: string,
  adopt: (host: RolloutHost) => boolean,
  log: (s: string) => void,
): Promise<Set<string>> {
  const done = new Set<string>();
  const started = Date.now();
  const results = await Promise.allSettled(
    hosts.map((h) => prepare(hostInputs(inputs, h), releaseId, { adopt: adopt(h) })),
  );
  const failed: string[] = [];
  results.forEach((r, i) => {
    const host = hosts[i];
    if (r.status === "rejected")
      failed.push(`${host.name} (${host.upstream}): ${(r.reason as Error).message}`);
    else if (r.value) done.add(host.name);
  });
  if (failed.length > 0) {
    throw new Error(
      `rolling release ${releaseId} stopped before it began: preparing it failed on ${failed.length} of ${hosts.length} hosts\n` +
        `${failed.join("\n")}\n` +
        "no host left the balancer, backed up or migrated: each serves the release it served",
    );
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  log(`prepared ${releaseId} on ${[...done].join(", ") || "no host"} side by side in ${seconds}s`);
  return done;
}

/** One host: out of the balancer, deployed, back in and healthy. */
async function rollHost(
  inputs: Inputs,
  host: RolloutHost,
  releaseId: string,
  log: (s: string) => void,
  /** false: run the deploy even when the host's last job did this same work (deployedForDrift) */
  adopt: boolean,
  /** The host prepared the release (prepareAll): its deploy reuses the upload and the install */
  prepared = false,
): Promise<{ live: string; phaseSeconds?: PhaseTime[] }> {
  const b = inputs.balancer;
  await drain(inputs, host, true);
  if (b) {
    // Two health-check intervals (the balancer saw the 503), then the requests in flight finish.
    const wait = 2 * (b.healthIntervalSeconds ?? 1) + b.drainSeconds;
    await new Promise((r) => setTimeout(r, wait * 1000));
  }
  log(`${host.name} (${host.upstream}): out of the balancer; deploying ${releaseId}`);
  let outs;
  try {
    outs = await deploy(hostInputs(inputs, host), releaseId, { adopt, prepared });
  } finally {
    // Its deploy rolled itself back on failure: it serves the old release, so it goes back in either way.
    await drain(inputs, host, false);
  }
  await balancerRun(
    inputs,
    ["wait-healthy", host.upstream, String(b?.healthTimeoutSeconds ?? 0)],
    `${host.name}: wait until ${host.upstream} is healthy in the balancer`,
  );
  log(`${host.name} (${host.upstream}): back in the balancer, serving ${outs.live}`);
  return { live: outs.live, phaseSeconds: outs.phaseSeconds };
}

async function roll(olds: Outputs | undefined, news: Inputs, releaseId: string): Promise<Outputs> {
  const todo = hostsToDeploy(olds, news);
  const names = new Set(todo.map((h) => h.name));
  const before = new Map((olds?.live ?? []).map((h) => [h.name, h.live]));
  const live = new Map(before);
  let phaseSeconds = olds?.phaseSeconds;
  const done: RolloutHost[] = [];
  const messages: string[] = [];
  const log = (s: string) => messages.push(s);
  // Keep the first host first: it runs the migration.
  const ordered = news.hosts.filter((h) => names.has(h.name));
  const adopt = (h: RolloutHost) => !deployedForDrift(olds, news, h);
  const prepared = preparesFirst(olds, news, ordered.length)
    ? await prepareAll(news, ordered, releaseId, adopt, log)
    : new Set<string>();
  for (const batch of rollBatches(ordered, news.batchSize)) {
    const results = await Promise.allSettled(
      batch.map((h) => rollHost(news, h, releaseId, log, adopt(h), prepared.has(h.name))),
    );
    const failed: string[] = [];
    results.forEach((r, i) => {
      const host = batch[i];
      if (r.status === "fulfilled") {
        live.set(host.name, r.value.live);
        done.push(host);
        if (host.name === news.hosts[0].name) phaseSeconds = r.value.phaseSeconds;
      } else {
        failed.push(`${host.name} (${host.upstream}): ${(r.reason as Error).message}`);
      }
    });
    if (failed.length === 0) continue;
    // Stop the roll; the hosts already done go back to what they served.
    const back: string[] = [];
    for (const host of done) {
      const previous = before.get(host.name);
      if (!previous || previous === "none" || previous === releaseId) {
        back.push(`${host.name}: no earlier release to go back to; it keeps ${live.get(host.name)}`);
        continue;
      }
      try {
        await drain(news, host, true);
        const r = await rollback(hostInputs(news, host), previous);
        await drain(news, host, false);
        back.push(`${host.name}: rolled back to ${r.live}`);
      } catch (e) {
        back.push(
          `${host.name}: its rollback to ${previous} failed too: ${(e as Error).message.split("\n")[0]}`,
        );
        await drain(news, host, false).catch(() => undefined);
      }
    }
    throw new Error(
      `rolling release ${releaseId} stopped: ${failed.join("\n")}\n` +
        (back.length
          ? `hosts already done: ${back.join("; ")}\n`
          : "it failed on the first host; no other host was touched\n") +
        (messages.length ? `--- the roll so far ---\n${messages.join("\n")}` : ""),
    );
  }
  return {
    ...news,
    releaseId,
    live: news.hosts.map((h) => ({ name: h.name, live: live.get(h.name) ?? "none" })),
    ...(phaseSeconds ? { phaseSeconds } : {}),
  };
}

function changed(olds: Outputs, news: Inputs): boolean {
  return (
    hostsToDeploy(olds, news).length > 0 ||
    news.hosts.length !== (olds.hosts ?? []).length ||
    news.hosts.some((h, i) => connectionChanged(olds.hosts?.[i]?.connection, h.connection)) ||
    (news.balancer
      ? connectionChanged(olds.balancer?.connection, news.balancer.connection)
      : !!olds.balancer) ||
    news.batchSize !== olds.batchSize ||
    (olds.providerVersion ?? 1) !== news.providerVersion
  );
}

const SECRET_SIG = "4dabf18193072939515e22adb298388d";

/** Values with any secret wrapper a nested secret may still carry (`{<sig>: ..., value}`) taken off. */
export function plain<T>(value: T): T {
  if (Array.isArray(value)) return value.map(plain) as T;
  if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    if (SECRET_SIG in o) return plain(o.value) as T;
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, plain(v)])) as T;
  }
  return value;
}

export const rolloutProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: Outputs, news: Inputs) {
    // Not JSON.stringify(news): news carries this provider's own serialized code, UNKNOWN's text included.
    const data = [news.hosts, news.balancer, ...KEYS.map((k) => news[k]), news.batchSize];
    if (JSON.stringify(data).includes(UNKNOWN)) return { changes: true };
    return { changes: changed(plain(olds), plain(news)) };
  },

  async create(raw: Inputs) {
    const inputs = plain(raw);
    const releaseId = newReleaseId(inputs.contentHash);
    const outs = await roll(undefined, inputs, releaseId);
    return { id: releaseId, outs: withoutRedactions(outs) };
  },

  async update(_id: string, rawOlds: Outputs, rawNews: Inputs) {
    const olds = plain(rawOlds);
    const news = plain(rawNews);
    const contentChanged =
      news.contentHash !== olds.contentHash || news.requirementsHash !== olds.requirementsHash;
    const releaseId = contentChanged ? newReleaseId(news.contentHash, olds.releaseId) : olds.releaseId;
    if (hostsToDeploy(olds, news).length === 0) {
      // Only the stored connections, the batch size or the provider code: nothing runs on a host.
      return {
        outs: withoutRedactions({ ...news, releaseId, live: olds.live, phaseSeconds: olds.phaseSeconds }),
      };
    }
    return { outs: withoutRedactions(await roll(olds, news, releaseId)) };
  },

  async read(id: string, props: Outputs) {
    const live: HostLive[] = [];
    for (const host of props.hosts ?? []) {
      const conn = currentConnection(host.connection);
      const res = await runRemote(conn, `exec ${shellQuote(host.script)} status`, {
        what: `release status on ${host.name}`,
        allowFailure: true,
      });
      if (res.code === 255)
        throw new Error(`release status on ${host.name}: ${sshFailure(conn, res.stderr)}`);
      // A release whose web instance or a worker is down is not served: the next `up --refresh` deploys it
      // to that host again.
      live.push({ name: host.name, live: liveOf(res.code === 0 ? parseKv(res.stdout) : {}) });
    }
    return { id, props: { ...props, live } };
  },

  // The app components' teardown removes /srv/<id> on each host.
  async delete() {},
};

function withoutRedactions(outs: Outputs): Outputs {
  const rest = { ...outs };
  delete rest.redactions;
  return rest;
}

export interface RolloutArgs {
  hosts: pulumi.Input<pulumi.Input<RolloutHost>[]>;
  balancer?: pulumi.Input<RolloutBalancer>;
  artifact: pulumi.Input<string>;
  contentHash: pulumi.Input<string>;
  requirementsHash: pulumi.Input<string>;
  rollbackTo?: pulumi.Input<string | undefined>;
  lockOwner: pulumi.Input<string>;
  batchSize: pulumi.Input<number>;
  /** apphost:app.build is set */
  build?: pulumi.Input<boolean>;
  redactions?: pulumi.Input<string[]>;
}

export class Rollout extends pulumi.dynamic.Resource {
  declare public readonly releaseId: pulumi.Output<string>;
  declare public readonly live: pulumi.Output<HostLive[]>;
  declare public readonly phaseSeconds: pulumi.Output<PhaseTime[]>;

  constructor(name: string, args: RolloutArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      rolloutProvider,
      name,
      {
        ...args,
        hosts: pulumi.secret(args.hosts),
        ...(args.balancer ? { balancer: pulumi.secret(args.balancer) } : {}),
        redactions: pulumi.secret(args.redactions ?? []),
        providerVersion: PROVIDER_VERSION,
        releaseId: undefined,
        live: undefined,
        phaseSeconds: undefined,
      },
      { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "redactions"] },
      "apphost",
      "Rollout",
    );
  }
}
