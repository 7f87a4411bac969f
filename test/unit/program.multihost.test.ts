/**
 * The whole program (program.ts) under the shared mocks with several
 * instances behind the EC2 load balancer: what it registers, and in which
 * order the pieces wait for each other. The existing-hosts path (apphost:lb)
 * runs end to end in test/e2e/multihost.e2e.ts.
 */
import { MOCK, ofType, resetRecords, resources, valueOf } from "./mocks"; // first: sets the mocks
import * as assert from "assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { plain } from "../../components/remote/rollout";
import { program } from "../../program";
import { baseRaw, DEPLOY_KEY, useTempArtifactCache, withKeys } from "./fixtures";

describe("program(): three instances behind the load balancer (mocks)", () => {
  useTempArtifactCache("apphost-program-test-");
  const saved = pulumi.runtime.allConfig();
  let outputs: Record<string, unknown>;

  before(async () => {
    resetRecords();
    const raw = withKeys(baseRaw(), {
      "host.count": 3,
      "tls.mode": "acm",
      "database.kind": "rds",
      "database.migrate": "alembic upgrade head",
      "app.source": "examples/sample-app",
      "app.processes": {
        web: { command: "gunicorn -c gunicorn.conf.py app.main:app", kind: "web" },
        worker: { command: "python worker.py", kind: "worker" },
        // A scheduler must run once per stack: on the first app host alone.
        beat: { command: "python worker.py --beat", kind: "worker", hosts: "first" },
      },
    });
    const values: Record<string, string> = Object.fromEntries(
      Object.entries(raw).map(([k, v]) => [`apphost:${k}`, JSON.stringify(v)]),
    );
    values["apphost:sshPrivateKey"] = DEPLOY_KEY.privateKey;
    pulumi.runtime.setAllConfig(values, ["apphost:sshPrivateKey"]);
    outputs = await program();
    // The Rollout's own outputs stay unresolved under the mocks; everything it needs is registered.
    await valueOf(outputs.hosts as pulumi.Output<unknown>);
    await valueOf(outputs.publicIp as pulumi.Output<unknown>);
  });
  after(() => pulumi.runtime.setAllConfig(saved));

  it("launches one instance per subnet of the default VPC, each admitting HTTP from the load balancer only", () => {
    const instances = ofType("aws:ec2/instance:Instance");
    assert.deepEqual(
      instances.map((i) => [i.name, i.inputs.subnetId]),
      [
        ["host-instance", "subnet-0default0000000001"],
        ["host2-instance", "subnet-0default0000000002"],
        ["host3-instance", "subnet-0default0000000003"],
      ],
    );
    const web = ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter(
      (r) => r.name.startsWith("host") && r.inputs.fromPort === 80,
    );
    assert.equal(web.length, 3);
    assert.ok(web.every((r) => r.inputs.cidrIpv4 === undefined && r.inputs.referencedSecurityGroupId));
  });

  it("RDS admits every instance's security group", () => {
    const pg = ofType("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "database-in-postgres");
    assert.equal(pg.length, 3);
    assert.equal(new Set(pg.map((r) => r.inputs.referencedSecurityGroupId)).size, 3);
  });

  it("one Rollout across the three hosts, then one target group attachment per instance", () => {
    const rollouts = resources.filter((r) => r.type.endsWith("apphost:Rollout"));
    assert.equal(rollouts.length, 1);
    // A secret input: the mocks see it wrapped.
    const hosts = plain(rollouts[0].inputs.hosts) as { name: string }[];
    assert.deepEqual(
      hosts.map((h) => h.name),
      ["app", "app2", "app3"],
    );
    assert.equal(rollouts[0].inputs.balancer, undefined);
    const attachments = ofType("aws:lb/targetGroupAttachment:TargetGroupAttachment");
    assert.deepEqual(
      attachments.map((a) => a.name),
      ["alb-app", "alb-app2", "alb-app3"],
    );
    // The attachments come after the roll: registered after it.
    const order = resources.map((r) => r.name);
    assert.ok(order.indexOf("release") < order.indexOf("alb-app"));
  });

  it("the first host alone runs the scheduled backup; the others' release scripts skip the backup and the migration", () => {
    const timers = resources.filter((r) => r.name.endsWith("-unit-backup-timer"));
    assert.deepEqual(
      timers.map((t) => t.name),
      ["app-unit-backup-timer"],
    );
    const script = (name: string) =>
      String(resources.find((r) => r.name === `${name}-release-script`)?.inputs.content ?? "");
    // The migration as the migrate phase runs it (release.sh's own text names the command in its advice).
    const runs = `as_app "$NEW_DIR" 'alembic upgrade head'`;
    assert.ok(script("app").includes(runs));
    assert.ok(!script("app2").includes(runs));
    assert.match(script("app2"), /migrate: the first app host ran it; none here/);
  });

  it("a worker kept to the first app host (hosts: first) runs there alone; the others run every other worker", () => {
    const units = (host: string) =>
      resources
        .filter((r) => new RegExp(`^${host}-unit-(worker|beat)$`).test(r.name))
        .map((r) => r.name)
        .sort();
    assert.deepEqual(units("app"), ["app-unit-beat", "app-unit-worker"]);
    assert.deepEqual(units("app2"), ["app2-unit-worker"]);
    assert.deepEqual(units("app3"), ["app3-unit-worker"]);
    const workerUnits = (name: string) =>
      /^readonly WORKER_UNITS=(.*)$/m.exec(
        String(resources.find((r) => r.name === `${name}-release-script`)?.inputs.content ?? ""),
      )?.[1];
    assert.equal(
      workerUnits("app"),
      "'apphost-apphost-staging-worker.service apphost-apphost-staging-beat.service'",
    );
    assert.equal(workerUnits("app2"), "apphost-apphost-staging-worker.service");
  });

  it("outputs the load balancer's name, every host's connection as a secret, and the hostnames as CNAMEs", async () => {
    assert.match(
      await valueOf(outputs.publicIp as pulumi.Output<string>),
      /^alb-1234567890\..*\.elb\.amazonaws\.com$/,
    );
    assert.equal(await pulumi.isSecret(outputs.hosts as pulumi.Output<unknown>), true);
    const hosts = (await valueOf(outputs.hosts as pulumi.Output<{ name: string }[]>)).map((h) => h.name);
    assert.deepEqual(hosts, ["app", "app2", "app3"]);
    const cnames = ofType("cloudflare:index/dnsRecord:DnsRecord").filter(
      (r) => r.inputs.type === "CNAME" && !r.name.includes("validation"),
    );
    assert.deepEqual(
      cnames.map((r) => r.inputs.name),
      ["staging.example.com"],
    );
    assert.ok(cnames.every((r) => r.inputs.zoneId === MOCK.zoneId));
  });
});
