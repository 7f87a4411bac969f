/**
 * Helpers for the release specs (test/e2e/release.e2e.ts, pg, debian13): app
 * variants in a temp directory, the full `apphost:app` object pointing at one,
 * the sample's migration 0003 broken and fixed, the host's Postgres, a bounded
 * HTTPS load against the sandbox's proxy, and the host's release status.
 */
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import * as yaml from "js-yaml";
import { pgSchemaCommand, toolsOf } from "../../components/release/backup";
import { parseStatus, type ReleaseStatus } from "../../components/release/script";
import { localStack, onHost, ROOT, type Sandbox } from "./lib";

/**
 * Where app variants go: inside the project (apphost:app.source must be a
 * relative path without `..`), in a directory git ignores.
 */
export const VARIANTS_DIR = path.join(ROOT, ".sandbox", "release-e2e");

/** Pulumi.local.yaml's `apphost:app`, with `source` pointing at `dir` (relative to the project). */
export function appConfig(dir: string): Record<string, unknown> {
  const base = yaml.load(fs.readFileSync(path.join(ROOT, "Pulumi.local.yaml"), "utf8")) as {
    config: Record<string, Record<string, unknown>>;
  };
  const source = path.relative(ROOT, path.resolve(dir));
  if (source.startsWith("..") || path.isAbsolute(source)) throw new Error(`${dir} is not inside ${ROOT}`);
  return { ...base.config["apphost:app"], source };
}

/** Pulumi.local.yaml's `apphost:releases`, with overrides. */
export function releasesConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base = yaml.load(fs.readFileSync(path.join(ROOT, "Pulumi.local.yaml"), "utf8")) as {
    config: Record<string, Record<string, unknown>>;
  };
  return { ...base.config["apphost:releases"], ...overrides };
}

/** The variants this process made: spec files in other workers use VARIANTS_DIR at the same time. */
const made: string[] = [];

/**
 * A copy of examples/sample-app under VARIANTS_DIR, changed by `edits`
 * (relative path → new content, or a function of the old content).
 */
export function appVariant(edits: Record<string, string | ((old: string) => string)> = {}): string {
  fs.mkdirSync(VARIANTS_DIR, { recursive: true });
  const dir = fs.mkdtempSync(path.join(VARIANTS_DIR, "app-"));
  made.push(dir);
  fs.cpSync(path.join(ROOT, "examples", "sample-app"), dir, { recursive: true });
  for (const [rel, edit] of Object.entries(edits)) {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const old = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    const next = typeof edit === "function" ? edit(old) : edit;
    if (typeof edit === "function" && next === old)
      throw new Error(`appVariant: the edit of ${rel} changed nothing`);
    fs.writeFileSync(file, next);
  }
  return dir;
}

/**
 * Removes the variants this process made, and no other: release.e2e and
 * pg.e2e run at the same time in two workers, and removing the whole
 * directory took a variant from under the other's `pulumi up`.
 */
export function removeVariants(): void {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** An Alembic migration file of the sample app: `rev` after `down`, `body` as upgrade(). */
export function migration(rev: string, down: string, body: string): string {
  return [
    `"""e2e migration ${rev}"""`,
    "",
    "import sqlalchemy as sa",
    "from alembic import op",
    "",
    `revision = "${rev}"`,
    `down_revision = "${down}"`,
    "branch_labels = None",
    "depends_on = None",
    "",
    "",
    "def upgrade() -> None:",
    ...body.split("\n").map((l) => `    ${l}`),
    "",
    "",
    "def downgrade() -> None:",
    "    pass",
    "",
  ].join("\n");
}

/**
 * The sample app's 0003 that fails half way: on Postgres a migration runs in
 * one transaction, so it creates its table in an autocommit block (as CREATE
 * INDEX CONCURRENTLY must): committed for good before the failure.
 */
export const BROKEN_0003 = migration(
  "0003",
  "0002",
  [
    "with op.get_context().autocommit_block():",
    '    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))',
    'op.add_column("items", sa.Column("note", sa.Text(), nullable=True))',
    'raise RuntimeError("migration 0003 failed on purpose after creating half_done")',
  ].join("\n"),
);
/** The same 0003, fixed. */
export const FIXED_0003 = migration(
  "0003",
  "0002",
  'op.add_column("items", sa.Column("note", sa.Text(), nullable=True))',
);

/**
 * A local stack of the sample app in `source` on the host's Postgres (Alembic migrations), with
 * Pulumi.local.yaml's `apphost:releases` and `releases` over them.
 */
export function samplePostgresStack(
  backend: string,
  stackName: string,
  sandbox: Sandbox,
  source: string,
  releases: Record<string, unknown> = {},
  database: Record<string, unknown> = {},
): ReturnType<typeof localStack> {
  return localStack(backend, {
    stackName,
    sandbox,
    config: {
      "apphost:app": appConfig(source),
      "apphost:database": {
        kind: "postgres",
        migrate: "alembic upgrade head",
        revision: "alembic current",
        ...database,
      },
      "apphost:releases": releasesConfig(releases),
    },
  });
}

/** Database `db` of the Postgres on the sandbox: a query's rows (psql as postgres), and its schema's fingerprint. */
export function hostPostgres(db: string): { sql(query: string): string; fingerprint(): string } {
  return {
    sql: (query) =>
      onHost(`runuser -u postgres -- psql -X -At -d ${db} -c ${JSON.stringify(query)}`).stdout.trim(),
    // The same fingerprint the release script takes (components/release/backup.ts).
    fingerprint: () => onHost(`${pgSchemaCommand(toolsOf(), db)} | sha256sum`).stdout.trim(),
  };
}

/** `apphost-release status` on the sandbox, parsed. */
export function hostStatus(id: string): ReleaseStatus {
  return parseStatus(onHost(`/srv/${id}/bin/apphost-release status`).stdout);
}

export interface LoadOptions {
  hostname: string;
  paths: string[];
  /** Clients with a keep-alive connection. @default 1 */
  keepAliveClients?: number;
  /** Clients that open a new connection per request. @default 1 */
  freshClients?: number;
  /** Stop after this many requests in all. */
  maxRequests: number;
  /** Stop after this many seconds. */
  maxSeconds: number;
  /** Pause between one client's requests. @default 25 */
  pauseMs?: number;
  /** Trust only this root and verify the chain (a real ACME chain). @default Caddy's internal CA, not verified */
  ca?: string;
  /**
   * Send a GET again, once, on a new connection when the TLS handshake of a
   * fresh connection was refused (the request never left the client), counted
   * in `handshakeResent`. Only for loads across a reload of Caddy, which fails
   * a handshake caught by the reload (caddyserver/caddy#5589: Caddy 2.6 builds
   * its certificate cache anew at each one). Elsewhere such a refusal is a
   * failed request. @default false
   */
  resendRefusedHandshakes?: boolean;
}

export interface LoadReport {
  requests: number;
  failed: number;
  /** GETs sent again because a kept-alive connection closed before any answer (see StaleConnection) */
  resent: number;
  /** GETs sent again because the TLS handshake of a fresh connection was refused (resendRefusedHandshakes) */
  handshakeResent: number;
  /** The first few failures: `<path>: <status or error>` */
  failures: string[];
  worstMs: number;
  worstPath: string;
  seconds: number;
  /** `release` fields seen in the answers to `/` and `/healthz`, in order of first appearance */
  releases: string[];
  /** `host` fields seen in the answers to `/` (which app host answered), in order of first appearance */
  hosts: string[];
  /** Why it stopped: "stopped", "maxRequests" or "maxSeconds" */
  endedBy: string;
}

export interface Load {
  /** Stop (if still running) and wait for the in-flight requests. */
  stop(): Promise<LoadReport>;
  /** Resolves when the load ended by itself or by stop(). */
  done: Promise<LoadReport>;
  report: LoadReport;
}

/**
 * A request on a kept-alive connection that the server closed before any
 * response byte: the server saw no request. A proxy reload closes idle
 * client connections, and a request written at that moment meets the close;
 * releases no longer reload the proxy (the upstream port is switched with
 * nftables), so the specs expect none. HTTP/1.1 lets a client send such a GET
 * again on a new connection (RFC 9112, 9.3.1), which browsers and Go do; Node
 * leaves it to the caller (`request.reusedSocket`).
 */
class StaleConnection extends Error {}

/** The TLS handshake of a new connection failed: the request was never sent. */
class RefusedHandshake extends Error {}

function once(agent: https.Agent | false, sandbox: Sandbox, hostname: string, urlPath: string, ca?: string) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    let answered = false;
    let secured = false;
    // HTTPS through Caddy's internal CA (apphost:tls.mode internal). A release
    // does not reload Caddy, so its managed certificates are never reloaded
    // under a handshake (caddyserver/caddy#5589).
    const req = https.request(
      {
        host: sandbox.host,
        port: 443,
        path: urlPath,
        method: "GET",
        servername: hostname,
        headers: { Host: hostname },
        // Caddy's internal CA: the test does not trust it; a given root is verified.
        ...(ca ? { ca, rejectUnauthorized: true } : { rejectUnauthorized: false }),
        agent,
        timeout: 10000,
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    // A kept-alive socket finished its handshake before; listening on it again would pile up one listener a request.
    req.on("socket", (s) => {
      if (req.reusedSocket) secured = true;
      else s.once("secureConnect", () => (secured = true));
    });
    req.on("timeout", () => req.destroy(new Error("timed out after 10s")));
    req.on("error", (e: NodeJS.ErrnoException) => {
      const closed = e.code === "ECONNRESET" || /socket hang up/.test(e.message);
      if (req.reusedSocket && !answered && closed) reject(new StaleConnection(e.message));
      else if (!req.reusedSocket && !secured) reject(new RefusedHandshake(`TLS handshake: ${e.message}`));
      else reject(e);
    });
    req.end();
  });
}

/**
 * A bounded steady load through the proxy: stops by itself after
 * `maxRequests` requests or `maxSeconds`, whichever comes first.
 */
export function startLoad(sandbox: Sandbox, opts: LoadOptions): Load {
  const report: LoadReport = {
    requests: 0,
    failed: 0,
    resent: 0,
    handshakeResent: 0,
    failures: [],
    worstMs: 0,
    worstPath: "",
    seconds: 0,
    releases: [],
    hosts: [],
    endedBy: "",
  };
  const started = Date.now();
  let stopped = false;
  const end = (why: string) => {
    if (!report.endedBy) report.endedBy = why;
    stopped = true;
  };
  const timer = setTimeout(() => end("maxSeconds"), opts.maxSeconds * 1000);
  const client = async (agent: https.Agent | false, n: number) => {
    let i = n;
    while (!stopped) {
      if (report.requests >= opts.maxRequests) {
        end("maxRequests");
        break;
      }
      const urlPath = opts.paths[i++ % opts.paths.length];
      report.requests++;
      const t0 = process.hrtime.bigint();
      let problem = "";
      try {
        const res = await once(agent, sandbox, opts.hostname, urlPath, opts.ca).catch((e: Error) => {
          if (e instanceof StaleConnection) report.resent++;
          else if (e instanceof RefusedHandshake && opts.resendRefusedHandshakes) report.handshakeResent++;
          else throw e;
          // Sent again once, on a new connection; a second failure counts.
          return once(agent, sandbox, opts.hostname, urlPath, opts.ca);
        });
        // An event stream cut short still has its 200: it must end with its last event.
        const events = urlPath.startsWith("/events") ? (/count=(\d+)/.exec(urlPath)?.[1] ?? "5") : undefined;
        if (res.status < 200 || res.status > 299) problem = `HTTP ${res.status} ${res.body.slice(0, 200)}`;
        else if (events && !res.body.includes(`id: ${events}\n`))
          problem = `event stream cut short: ${JSON.stringify(res.body.slice(-120))}`;
        else {
          const release = /"release":"([^"]+)"/.exec(res.body)?.[1];
          if (release && !report.releases.includes(release)) report.releases.push(release);
          const host = /"host":"([^"]+)"/.exec(res.body)?.[1];
          if (host && !report.hosts.includes(host)) report.hosts.push(host);
        }
      } catch (e) {
        problem = (e as Error).message;
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (ms > report.worstMs) {
        report.worstMs = ms;
        report.worstPath = urlPath;
      }
      if (problem) {
        report.failed++;
        if (report.failures.length < 10)
          report.failures.push(`${new Date().toISOString()} ${urlPath}: ${problem}`);
      }
      await new Promise((r) => setTimeout(r, opts.pauseMs ?? 25));
    }
  };
  const agents: (https.Agent | false)[] = [];
  for (let k = 0; k < (opts.keepAliveClients ?? 1); k++)
    agents.push(new https.Agent({ keepAlive: true, maxSockets: 1 }));
  for (let k = 0; k < (opts.freshClients ?? 1); k++) agents.push(false);
  const done = Promise.all(agents.map((a, k) => client(a, k))).then(() => {
    clearTimeout(timer);
    for (const a of agents) if (a) a.destroy();
    report.seconds = (Date.now() - started) / 1000;
    return report;
  });
  return {
    report,
    done,
    stop: () => {
      end("stopped");
      return done;
    },
  };
}

/** One line for the test output. */
export function describeLoad(r: LoadReport): string {
  return (
    `${r.requests} requests in ${r.seconds.toFixed(1)}s (ended by ${r.endedBy}), ${r.failed} failed, ` +
    `${r.resent} resent after a kept-alive connection closed unanswered, ` +
    (r.handshakeResent ? `${r.handshakeResent} resent after a refused TLS handshake, ` : "") +
    `worst latency ${r.worstMs.toFixed(0)} ms (${r.worstPath}), releases seen: ${r.releases.join(", ") || "none"}`
  );
}
