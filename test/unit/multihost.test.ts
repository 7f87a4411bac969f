/**
 * Several app hosts behind apphost:lb: the config (every offender at once),
 * the balancer's site and script, the app hosts' guarded site, the roll's
 * batches and which hosts a roll touches.
 */
import * as assert from "assert/strict";
import { spawnSync } from "child_process";
import { mkdtempSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { inspectDatabaseUrl, parseStackConfig, type ParseContext } from "../../components/config/validate";
import { balancerCheck, doctorInputFromConfig } from "../../components/doctor";
import { balancerLayout, hostLayout } from "../../components/paths";
import { renderBalancerScript, renderBalancerSite, renderUpstreams } from "../../components/render/balancer";
import { renderCaddySite } from "../../components/render/caddy";
import {
  deployedForDrift,
  hostsToDeploy,
  preparesFirst,
  rollBatches,
  type RolloutHost,
} from "../../components/remote/rollout";
import { backupPhase, migratePhase } from "../../components/release/phases";
import { baseCtx, configProblems, baseRaw, existingRaw, withKeys } from "./fixtures";
import { shellcheckSync } from "./shellcheck";

/** Temp directories of this file's tests, removed after them. */
const temps: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "apphost-lb-"));
  temps.push(dir);
  return dir;
};
after(() => temps.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const URL_OK = inspectDatabaseUrl("postgresql://app:s3cret@10.0.0.5:5432/app", true);

function multiRaw(keys: Record<string, unknown> = {}): Record<string, unknown> {
  return withKeys(existingRaw(), {
    "host.address": undefined,
    "host.addresses": ["10.0.0.11", { address: "10.0.0.12" }],
    lb: { address: "10.0.0.10" },
    "database.kind": "external",
    ...keys,
  });
}

function ctx(url = URL_OK): ParseContext {
  return { ...baseCtx(), secrets: { ...baseCtx().secrets, databaseUrlInfo: url } };
}

const problems = (raw: Record<string, unknown>, c: ParseContext = ctx()) => configProblems(raw, c);

describe("apphost:host.addresses and apphost:lb (config)", () => {
  it("parses two app hosts, the balancer with its defaults, an external database and batchSize", () => {
    const c = parseStackConfig(multiRaw({ "releases.batchSize": 2 }), ctx());
    assert.equal(c.host.kind, "existing");
    if (c.host.kind !== "existing") return;
    assert.deepEqual(c.host.addresses, [{ address: "10.0.0.11" }, { address: "10.0.0.12" }]);
    assert.equal(c.host.address, "10.0.0.11");
    assert.deepEqual(c.lb, {
      address: "10.0.0.10",
      user: "deploy",
      port: 22,
      privateAddress: "10.0.0.10",
      healthIntervalSeconds: 1,
    });
    assert.equal(c.database.kind, "external");
    assert.equal(c.releases.batchSize, 2);
  });

  it("apphost:app.sharedDirs is one host's disk: refused with several app hosts, normalized with one", () => {
    assert.deepEqual(problems(multiRaw({ "app.sharedDirs": ["media"] })), [
      "apphost:app.sharedDirs: apphost:host.addresses lists 2 app hosts, each with a disk of its own: a file written to a shared directory on one is not on the others; keep such files in an object store (S3), and remove sharedDirs",
    ]);
    const one = parseStackConfig(
      withKeys(existingRaw(), { "app.sharedDirs": ["shop/media/", "instance"] }),
      baseCtx(),
    );
    assert.deepEqual(one.app.sharedDirs, ["shop/media", "instance"]);
  });

  it("one address is a list of one, and no balancer", () => {
    const c = parseStackConfig(existingRaw(), baseCtx());
    assert.ok(c.host.kind === "existing");
    assert.deepEqual(c.host.kind === "existing" && c.host.addresses, [{ address: "203.0.113.10" }]);
    assert.equal(c.lb, undefined);
    // Pulumi.yaml's default {} is no balancer.
    assert.equal(parseStackConfig({ ...existingRaw(), lb: {} }, baseCtx()).lb, undefined);
  });

  it("lists every offender at once: the database on one host, no balancer, bad and repeated addresses, a plain URL", () => {
    const raw = withKeys(multiRaw(), {
      "host.addresses": ["10.0.0.11", "10.0.0.11", "not an address", { address: "10.0.0.13", port: 2 }],
      lb: undefined,
      "database.kind": "sqlite",
    });
    assert.deepEqual(problems(raw, ctx(inspectDatabaseUrl("postgresql://a:b@h/d", false))), [
      'apphost:host.addresses[1]: "10.0.0.11" is already apphost:host.addresses[0]; list each app host once',
      'apphost:host.addresses[2].address: expected an IPv4 address or DNS name like "203.0.113.10", got "not an address"; set it with: pulumi config set --path \'apphost:host.addresses[2].address\' 203.0.113.10',
      "apphost:host.addresses[3].port: unknown key; the keys of apphost:host.addresses[3] are address, hostKey. Remove it",
      'apphost:databaseUrl: only used when apphost:database.kind is external (got "sqlite"); remove it',
    ]);
    // With the addresses fixed, the cross-host rules speak.
    const fixed = withKeys(raw, { "host.addresses": ["10.0.0.11", "10.0.0.12"] });
    assert.deepEqual(problems(fixed, baseCtx()), [
      'apphost:database.kind: "sqlite" keeps the data on one app host, and apphost:host.addresses lists 2; use "external" with the URL of a Postgres that lives on none of them (pulumi config set --secret apphost:databaseUrl postgresql://user:password@host:5432/name)',
      "apphost:lb: missing: apphost:host.addresses lists 2 app hosts, and they serve behind a balancer host; set apphost:lb.address (an existing server apphost runs Caddy on), or list one address",
    ]);
  });

  it("apphost:databaseUrl with a driver in its scheme: the driver belongs in apphost:database.urlScheme", () => {
    assert.deepEqual(inspectDatabaseUrl("postgresql+asyncpg://app:pw@10.0.0.5/app", true), {
      problem:
        "expected a postgresql://user:password@host[:port]/database URL, without the driver (postgresql+asyncpg); " +
        "set it again without it (pulumi config set --secret apphost:databaseUrl postgresql://...), " +
        "and set apphost:database.urlScheme to postgresql+asyncpg",
      host: undefined,
    });
    assert.match(
      inspectDatabaseUrl(" postgres+psycopg2://a:b@h/d", true).problem ?? "",
      /urlScheme to postgresql\+psycopg2$/,
    );
  });

  it("refuses address and addresses together, nginx, certbot, a balancer that is an app host, and a URL on an app host", () => {
    const raw = withKeys(multiRaw(), {
      "host.address": "10.0.0.11",
      "proxy.kind": "nginx",
      "tls.mode": "certbot",
      "lb.address": "10.0.0.12",
    });
    const url = inspectDatabaseUrl("postgresql://app:pw@10.0.0.11/app", true);
    const got = problems(raw, ctx(url));
    assert.deepEqual(got, [
      "apphost:host.address: set with apphost:host.addresses too; give every host in addresses (a host key as {address, hostKey}) and remove address",
      'apphost:proxy.kind: behind apphost:lb the app hosts run Caddy (it admits only the balancer\'s address and trusts its X-Forwarded-* headers); got "nginx", set "caddy"',
      'apphost:tls.mode: behind apphost:lb the balancer\'s Caddy serves TLS: one of "caddy-acme", "internal", "off"; got "certbot"',
      'apphost:lb.address: "10.0.0.12" is also an app host (apphost:host.addresses); the balancer is a host of its own',
      'apphost:databaseUrl: its host "10.0.0.11" is one of the app hosts (apphost:host.addresses); the database must live on none of them',
    ]);
  });

  it("external needs apphost:databaseUrl, stored as a secret, shaped as a postgresql:// URL; the URL never reaches a message", () => {
    const raw = multiRaw();
    assert.deepEqual(problems(raw, baseCtx()), [
      "apphost:databaseUrl: missing (apphost:database.kind is external); store the URL encrypted: pulumi config set --secret apphost:databaseUrl postgresql://user:password@host:5432/name",
    ]);
    assert.match(
      problems(raw, ctx(inspectDatabaseUrl("postgresql://a:pw@h/d", false)))[0],
      /stored in plain text/,
    );
    const bad = problems(raw, ctx(inspectDatabaseUrl("mysql://root:hunter2@db/app", true)));
    assert.match(
      bad[0],
      /^apphost:databaseUrl: expected a postgresql:\/\/user:password@host\[:port\]\/database URL/,
    );
    assert.ok(!bad.join("\n").includes("hunter2"));
    assert.equal(
      inspectDatabaseUrl("postgres://u:p@db.internal:6432/x?sslmode=require", true).problem,
      undefined,
    );
  });

  it("a balancer named by DNS needs privateAddress; apphost:lb on ec2 is refused", () => {
    assert.deepEqual(problems(multiRaw({ "lb.address": "lb.internal" })), [
      "apphost:lb.privateAddress: missing (\"lb.internal\" is a name, and the app hosts' proxies admit one address); expected the balancer's IPv4 address as the app hosts see it; set it with: pulumi config set --path 'apphost:lb.privateAddress' 10.0.0.20",
    ]);
    const c = parseStackConfig(
      multiRaw({ "lb.address": "lb.internal", "lb.privateAddress": "10.0.0.10" }),
      ctx(),
    );
    assert.equal(c.lb?.privateAddress, "10.0.0.10");
    const ec2 = withKeys(baseRaw(), { lb: { address: "10.0.0.10" } });
    assert.ok(
      problems(ec2, baseCtx()).includes(
        'apphost:lb: only used when apphost:host.kind is existing (got "ec2"); remove it',
      ),
    );
  });
});

describe("the balancer (render/balancer.ts)", () => {
  const layout = hostLayout("shop", "prod");
  const lb = balancerLayout("shop", "prod");
  const site = renderBalancerSite(layout, lb, {
    hostnames: ["shop.example.net"],
    tls: { mode: "internal" },
    healthPath: "/healthz",
    healthIntervalSeconds: 1,
  });

  it("proxies to the listed hosts with active and passive health checks, as the app's own host name", () => {
    assert.match(
      site,
      /^shop\.example\.net \{\n\ttls internal\n\treverse_proxy \{\n\t\t# .*\n\t\tto @UPSTREAMS@\n/m,
    );
    for (const line of [
      "\t\tlb_try_duration 5s",
      "\t\tfail_duration 10s",
      "\t\thealth_uri /healthz",
      "\t\thealth_interval 1s",
      "\t\thealth_status 2xx",
      "\t\t\tHost shop.example.net",
      "\t\t\tX-Forwarded-Proto https",
      "\t\t\tX-Apphost-Balancer-Check 1",
    ])
      assert.ok(site.includes(`${line}\n`), line);
    // flush_interval -1 would let the reload that adds or removes a host cancel the requests in flight.
    assert.doesNotMatch(site, /^\s*flush_interval/m);
    assert.equal(renderUpstreams(["10.0.0.11", "10.0.0.12"], 80), "10.0.0.11:80\n10.0.0.12:80\n");
    assert.throws(() => renderUpstreams(["a b"], 80), /app host 1: "a b" is not a host name/);
  });

  it("the filled-in site validates with the real caddy", function () {
    const dir = tempDir();
    writeFileSync(
      join(dir, "Caddyfile"),
      site.replace("@UPSTREAMS@", "10.0.0.11:80 10.0.0.12:80").replace(/^# .*\n/gm, ""),
    );
    const res = spawnSync(
      "caddy",
      ["validate", "--adapter", "caddyfile", "--config", join(dir, "Caddyfile")],
      {
        encoding: "utf8",
      },
    );
    assert.equal(res.status, 0, res.stderr);
  });

  it("apphost-lb passes shellcheck", function () {
    const script = renderBalancerScript(lb, {
      host: "shop.example.net",
      healthPath: "/healthz",
      https: true,
      healthIntervalSeconds: 1,
    });
    const r = shellcheckSync(script, ["-s", "bash"]);
    assert.deepEqual([r.status, r.output], [0, ""], r.output);
    assert.match(script, /^readonly UPSTREAMS=\/var\/lib\/apphost\/lb\/shop-prod\/upstreams$/m);
    assert.match(script, /refusing to drain it/);
  });

  it("an app host behind it answers the balancer alone, over HTTP, trusts its headers and closes what its app did not answer", () => {
    const appSite = renderCaddySite(layout, {
      hostnames: ["shop.example.net"],
      tls: { mode: "internal" },
      proxy: { maxBodySize: "25m", hsts: true, compression: true, httpPort: 80, httpsPort: 443 },
      app: { healthPath: "/healthz", staticPrefix: "/static/", basePort: 8000 },
      balancer: { address: "10.0.0.10" },
    });
    assert.match(appSite, /^http:\/\/shop\.example\.net \{$/m);
    assert.ok(!appSite.includes("tls internal"));
    assert.ok(
      appSite.includes(
        "\t@outside not remote_ip 10.0.0.10/32 127.0.0.0/8 ::1\n\thandle @outside {\n\t\tabort\n\t}\n",
      ),
    );
    assert.ok(appSite.includes("\t\t\ttrusted_proxies 10.0.0.10/32\n\t\t\tlb_try_duration 1s\n"));
    // Drained for a release: the balancer's own check (its header) fails; users' requests, /healthz too, are served.
    assert.ok(
      appSite.includes(
        '\t@drained {\n\t\tpath /healthz\n\t\theader X-Apphost-Balancer-Check 1\n\t\tfile {\n\t\t\troot /srv/shop-prod/maintenance\n\t\t\ttry_files /drain\n\t\t}\n\t}\n\thandle @drained {\n\t\trespond "draining" 503\n\t}\n',
      ),
      appSite,
    );
    assert.ok(
      appSite.includes(
        "\thandle_errors {\n\t\t@down expression {err.status_code} == 502\n\t\tabort @down\n\t}\n",
      ),
    );
    const dir = tempDir();
    writeFileSync(join(dir, "Caddyfile"), appSite);
    const res = spawnSync(
      "caddy",
      ["validate", "--adapter", "caddyfile", "--config", join(dir, "Caddyfile")],
      {
        encoding: "utf8",
      },
    );
    // The log file's directory does not exist here; everything before it adapted.
    assert.ok(res.status === 0 || /\/var\/log\/caddy/.test(res.stderr), res.stderr);
  });
});

describe("the rolling release (remote/rollout.ts)", () => {
  const host = (name: string, over: Partial<RolloutHost> = {}): RolloutHost => ({
    name,
    connection: { host: `${name}.internal`, port: 22, user: "deploy", privateKey: "k" },
    script: "/srv/x/bin/apphost-release",
    configHash: "c1",
    upstream: `${name}.internal:80`,
    ...over,
  });

  it("the hosts prepare first for a first release, new requirements or a build, with two or more to deploy", () => {
    const news = (over: { requirementsHash?: string; build?: boolean } = {}) => ({
      hosts: [host("app"), host("app2")],
      artifact: "a.tar.gz",
      contentHash: "c2",
      requirementsHash: "r1",
      lockOwner: "me",
      batchSize: 1,
      ...over,
    });
    const olds = { requirementsHash: "r1" };
    assert.equal(preparesFirst(undefined, news(), 2), true, "the first release");
    assert.equal(preparesFirst(olds, news({ requirementsHash: "r2" }), 2), true, "new requirements");
    assert.equal(preparesFirst(olds, news({ build: true }), 2), true, "a build");
    assert.equal(preparesFirst(olds, news(), 2), false, "new code alone");
    assert.equal(preparesFirst(olds, news({ build: false }), 3), false, "new code alone, three hosts");
    assert.equal(preparesFirst(undefined, news({ build: true }), 1), false, "one host to deploy");
  });

  it("the first host alone, then batchSize at a time, never every host at once", () => {
    assert.deepEqual(rollBatches(["a", "b", "c", "d"], 1), [["a"], ["b"], ["c"], ["d"]]);
    assert.deepEqual(rollBatches(["a", "b", "c", "d"], 2), [["a"], ["b", "c"], ["d"]]);
    assert.deepEqual(rollBatches(["a", "b", "c"], 10), [["a"], ["b", "c"]]);
    assert.deepEqual(rollBatches(["a"], 3), [["a"]]);
  });

  it("new code goes to every host; the same code only to a new host, a changed one, or one serving something else", () => {
    const base = {
      hosts: [host("app"), host("app2")],
      balancer: { connection: host("lb").connection, script: "/x", drainSeconds: 1, healthTimeoutSeconds: 5 },
      artifact: "/a",
      contentHash: "h1",
      requirementsHash: "r1",
      lockOwner: "me",
      batchSize: 1,
    };
    const olds = {
      ...base,
      releaseId: "20260101000000-h1h1h1h1",
      live: [
        { name: "app", live: "20260101000000-h1h1h1h1" },
        { name: "app2", live: "20260101000000-h1h1h1h1" },
      ],
    };
    assert.deepEqual(
      hostsToDeploy(undefined, base).map((h) => h.name),
      ["app", "app2"],
    );
    assert.deepEqual(hostsToDeploy(olds, base), []);
    assert.deepEqual(
      hostsToDeploy(olds, { ...base, contentHash: "h2" }).map((h) => h.name),
      ["app", "app2"],
    );
    const three = { ...base, hosts: [...base.hosts, host("app3")] };
    assert.deepEqual(
      hostsToDeploy(olds, three).map((h) => h.name),
      ["app3"],
    );
    const changed = { ...base, hosts: [host("app"), host("app2", { configHash: "c2" })] };
    assert.deepEqual(
      hostsToDeploy(olds, changed).map((h) => h.name),
      ["app2"],
    );
    const drifted = { ...olds, live: [{ name: "app", live: "20250101000000-00000000" }, olds.live[1]] };
    assert.deepEqual(
      hostsToDeploy(drifted, base).map((h) => h.name),
      ["app"],
    );
    // Two hosts back to one: nothing to deploy (the balancer drops the other).
    assert.deepEqual(hostsToDeploy(olds, { ...base, hosts: [host("app")] }), []);
  });

  it("a host deployed again only for what a refresh saw (another release, a unit down) does not adopt its last job", () => {
    const base = {
      hosts: [host("app"), host("app2")],
      artifact: "/a",
      contentHash: "h1",
      requirementsHash: "r1",
      lockOwner: "me",
      batchSize: 1,
    };
    const id = "20260101000000-h1h1h1h1";
    const olds = {
      ...base,
      releaseId: id,
      live: [
        { name: "app", live: `${id} (worker apphost-shop-prod-worker.service failed)` },
        { name: "app2", live: id },
      ],
    };
    assert.deepEqual(
      hostsToDeploy(olds, base).map((h) => h.name),
      ["app"],
    );
    assert.equal(deployedForDrift(olds, base, base.hosts[0]), true);
    // Anything else that changed is work the state has not recorded: a finished job of it is adopted.
    assert.equal(deployedForDrift(olds, { ...base, contentHash: "h2" }, base.hosts[0]), false);
    assert.equal(deployedForDrift(olds, base, host("app", { configHash: "c2" })), false);
    assert.equal(
      deployedForDrift(olds, base, host("app", { script: "/srv/other/bin/apphost-release" })),
      false,
    );
    assert.equal(deployedForDrift(olds, { ...base, rollbackTo: id }, base.hosts[0]), false, "a rollback");
    assert.equal(deployedForDrift(olds, base, host("app3")), false, "a new host");
    assert.equal(deployedForDrift(undefined, base, base.hosts[0]), false, "the first deploy");
  });

  it("on the hosts after the first, the release neither backs up nor migrates", () => {
    const c = parseStackConfig(multiRaw({ "database.migrate": "alembic upgrade head" }), ctx());
    const input = {
      layout: hostLayout("shop", "prod"),
      app: c.app,
      database: c.database,
      releases: c.releases,
      backups: c.backups,
      proxy: c.proxy,
    };
    assert.ok(backupPhase(input).commands.includes('db_backup "pre-$RELEASE_ID"'));
    assert.deepEqual(backupPhase({ ...input, follower: true }).commands, [
      'note "backup: the first app host backs the database up before the migration; none here"',
    ]);
    assert.ok(migratePhase(input).commands.join("\n").includes("alembic upgrade head"));
    const follower = migratePhase({ ...input, follower: true }).commands.join("\n");
    assert.ok(!follower.includes("alembic upgrade head"));
    assert.match(follower, /migrate: the first app host ran it; none here/);
  });
});

describe("npm run doctor with several app hosts (components/doctor.ts)", () => {
  it("balancer: passes when every app host serves and answers 2xx; names each one that does not", () => {
    assert.deepEqual(
      balancerCheck(
        "host=10.0.0.11:80 state=serving health=200\nhost=10.0.0.12:80 state=serving health=200\n",
      ),
      {
        name: "balancer",
        status: "pass",
        detail: "",
      },
    );
    assert.deepEqual(
      balancerCheck(
        "host=10.0.0.11:80 state=drained health=200\nhost=10.0.0.12:80 state=serving health=000\n",
      ),
      {
        name: "balancer",
        status: "fail",
        detail: "10.0.0.11:80 drained; 10.0.0.12:80 answers its health path with 000 (of 2 app hosts)",
      },
    );
    assert.equal(balancerCheck("").status, "fail");
  });

  it("an app host behind the balancer is checked over HTTP; one after the first has no backup or jobs to check", () => {
    const c = parseStackConfig(
      multiRaw({ "app.schedules": { purge: { command: "python worker.py", onCalendar: "hourly" } } }),
      ctx(),
    );
    const first = doctorInputFromConfig(c, { releaseId: "r" });
    assert.equal(first.tlsMode, "off");
    assert.equal(first.health.port, 80);
    assert.ok(first.backup);
    assert.equal(first.schedules?.length, 1);
    const other = doctorInputFromConfig(c, { releaseId: "r", role: "follower" });
    assert.equal(other.backup, undefined);
    assert.equal(other.backupElsewhere, true);
    assert.deepEqual(other.schedules, []);
  });
});

describe("the Rollout's diff", () => {
  it("nothing changed is no change, though its inputs carry its own serialized code (with the unknown marker's text)", async () => {
    const { rolloutProvider } = await import("../../components/remote/rollout");
    const conn = { host: "10.0.0.11", port: 22, user: "deploy", privateKey: "k", ref: "host" };
    const inputs = {
      hosts: [{ name: "app", connection: conn, script: "/s", configHash: "c", upstream: "10.0.0.11:80" }],
      balancer: {
        connection: { ...conn, host: "10.0.0.10", ref: "lb-host" },
        script: "/b",
        drainSeconds: 1,
        healthTimeoutSeconds: 5,
      },
      artifact: "/a",
      contentHash: "h",
      requirementsHash: "r",
      lockOwner: "me",
      batchSize: 1,
      providerVersion: 2,
      __provider: 'exports.handler = ... UNKNOWN: "04da6b54-80e4-46f7-96ec-b56ff0331ba9" ...',
    };
    const olds = {
      ...inputs,
      releaseId: "20260101000000-hhhhhhhh",
      live: [{ name: "app", live: "20260101000000-hhhhhhhh" }],
    };
    assert.deepEqual(await rolloutProvider.diff!("id", olds, inputs), { changes: false });
    assert.deepEqual(await rolloutProvider.diff!("id", olds, { ...inputs, contentHash: "h2" }), {
      changes: true,
    });
    const unknown = {
      ...inputs,
      hosts: [{ ...inputs.hosts[0], configHash: "04da6b54-80e4-46f7-96ec-b56ff0331ba9" }],
    };
    assert.deepEqual(await rolloutProvider.diff!("id", olds, unknown), { changes: true });
  });
});
