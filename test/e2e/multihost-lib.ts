/**
 * A balancer host and up to three app hosts of one stack, the database on the
 * balancer's sandbox playing the managed Postgres (`database.kind: external`):
 * what test/e2e/multihost.e2e.ts and bench/rolling.ts both deploy to. All
 * traffic goes to the balancer from this machine.
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as path from "path";
import type * as auto from "@pulumi/pulumi/automation";
import { freshBackend, localStack, pulumiCli, ROOT, sandboxCommand, sandboxUp, type Sandbox } from "./lib";
import { inSandbox, runCli } from "./ops-lib";
import { startLoad } from "./release-lib";

export const HOSTNAME = "sample.local.test";

export interface ClusterSpec {
  /** The balancer's sandbox (it also runs the shared Postgres) */
  lb: { name: string; subnet: string };
  /** The app hosts' sandboxes; `count` of them, first first, are in the stack */
  apps: { name: string; subnet: string }[];
  stack: string;
  db: { name: string; user: string; password: string };
}

export class Cluster {
  lb!: Sandbox;
  readonly apps: Sandbox[] = [];
  backend = "";
  /** The app's source directory (`apphost:app.source`) */
  source = path.join(ROOT, "examples", "sample-app");
  /** How many of the app hosts are in the stack */
  count = 2;
  /** apphost:app.processes.worker.hosts: `first` keeps the worker to the first app host */
  workerHosts: "all" | "first" = "all";
  /** apphost:app.build, when set */
  build?: string;
  /** The app's host id on the hosts (`/srv/<id>`) */
  readonly id: string;

  constructor(
    readonly spec: ClusterSpec,
    private readonly log: (s: string) => void = (s) => process.stdout.write(s),
  ) {
    this.id = `sample-${spec.stack}`;
  }

  /** Fresh sandboxes (what an earlier run left must not decide this one), linked, and the database. */
  prepare(): void {
    const { lb, apps, db } = this.spec;
    for (const spec of [lb, ...apps]) {
      sandboxUp(spec);
      sandboxCommand(spec, "down");
    }
    this.lb = sandboxUp(lb);
    for (const spec of apps) this.apps.push(sandboxUp(spec));
    for (const spec of apps) {
      // The balancer reaches each app host from its own address (their proxies admit it alone), and back.
      sandboxCommand(lb, "link", spec.subnet);
      sandboxCommand(spec, "link", lb.subnet);
      // The sample app's / names the machine that answered.
      inSandbox(spec.name, `hostname ${spec.name}`);
    }
    // The managed Postgres: on the balancer's sandbox, reached over the network with a password.
    inSandbox(
      lb.name,
      [
        "set -e",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update -qq >/dev/null",
        "apt-get install -y -qq postgresql >/dev/null",
        "conf=$(ls -d /etc/postgresql/*/main)",
        `echo "listen_addresses = '*'" >"$conf/conf.d/apphost-e2e.conf"`,
        'echo "host all all 10.0.0.0/8 scram-sha-256" >>"$conf/pg_hba.conf"',
        "systemctl restart postgresql",
        `runuser -u postgres -- psql -X -q -c "CREATE ROLE ${db.user} LOGIN PASSWORD '${db.password}'"`,
        `runuser -u postgres -- psql -X -q -c "CREATE DATABASE ${db.name} OWNER ${db.user}"`,
      ].join("\n"),
    );
    this.backend = freshBackend();
  }

  /** The stack as it is now (`count` app hosts, `source`), its databaseUrl set as a secret. */
  async stack(): Promise<auto.Stack & { configFile: string }> {
    const { stack: stackName, db } = this.spec;
    const stack = await localStack(this.backend, {
      stackName,
      config: {
        "apphost:host": {
          kind: "existing",
          user: "admin",
          port: 22,
          addresses: this.apps.slice(0, this.count).map((a) => a.host),
        },
        "apphost:lb": { address: this.lb.host },
        "apphost:app": {
          name: "sample",
          source: this.source,
          runtime: "python",
          healthPath: "/healthz",
          ...(this.build ? { build: this.build } : {}),
          env: { WEB_CONCURRENCY: "2", WORKER_INTERVAL: "5", HEARTBEAT_INTERVAL: "2" },
          processes: {
            web: { command: "gunicorn -c gunicorn.conf.py app.main:app", kind: "web" },
            worker: { command: "python worker.py", kind: "worker", hosts: this.workerHosts },
          },
        },
        "apphost:database": {
          kind: "external",
          migrate: "alembic upgrade head",
          revision: "alembic current",
        },
        "apphost:releases": { keep: 3, healthTimeoutSeconds: 20, drainSeconds: 1 },
      },
    });
    const url = `postgresql://${db.user}:${db.password}@${this.lb.host}:5432/${db.name}`;
    const set = pulumiCli(
      [
        "config",
        "set",
        "--secret",
        "apphost:databaseUrl",
        url,
        "--stack",
        stackName,
        "--config-file",
        stack.configFile,
      ],
      { backendUrl: this.backend },
    );
    assert.equal(set.code, 0, set.stderr);
    return stack;
  }

  async up(opts: { refresh?: boolean } = {}): Promise<auto.UpResult> {
    const stack = await this.stack();
    return stack.up({
      onOutput: this.log,
      configFile: stack.configFile,
      ...(opts.refresh ? { refresh: true } : {}),
    });
  }

  /** `npm run <command> -- --stack <stack> --config-file <file> [args…]` against this cluster's state. */
  async cli(command: string, args: string[] = []) {
    const stack = await this.stack();
    return runCli(command, ["--stack", this.spec.stack, "--config-file", stack.configFile, ...args], {
      PULUMI_BACKEND_URL: this.backend,
    });
  }

  /** The sandboxes taken down, with the stack's hosts: nothing outlives them, so nothing is destroyed first. */
  async down(): Promise<void> {
    for (const spec of [this.spec.lb, ...this.spec.apps]) sandboxCommand(spec, "down");
  }

  /**
   * GET `urlPath` through the balancer (Caddy's internal CA, not trusted here): curl's exit code and the body,
   * or with `status` the HTTP status as the body.
   */
  get(urlPath = "/", opts: { status?: boolean } = {}): { code: number; body: string } {
    const res = spawnSync(
      "curl",
      [
        "-sk",
        ...(opts.status ? ["-o", "/dev/null", "-w", "%{http_code}"] : []),
        "--max-time",
        "10",
        "--resolve",
        `${HOSTNAME}:443:${this.lb.host}`,
        `https://${HOSTNAME}${urlPath}`,
      ],
      { encoding: "utf8" },
    );
    return { code: res.status ?? 1, body: res.stdout };
  }

  /** Which app hosts answer `n` requests through the balancer. */
  answering(n = 12): string[] {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = this.get("/");
      assert.equal(r.code, 0, `curl through the balancer failed (${r.code})`);
      seen.add(JSON.parse(r.body).host);
    }
    return [...seen].sort();
  }

  /**
   * A bounded steady load through the balancer: one keep-alive client, one with a fresh connection per request.
   * `acrossReloads`: the balancer's Caddy reloads meanwhile (see resendRefusedHandshakes).
   */
  load(paths = ["/", "/healthz"], acrossReloads = false) {
    return startLoad(this.lb, {
      hostname: HOSTNAME,
      paths,
      resendRefusedHandshakes: acrossReloads,
      maxRequests: 20000,
      maxSeconds: 600,
      keepAliveClients: 1,
      freshClients: 1,
    });
  }
}
