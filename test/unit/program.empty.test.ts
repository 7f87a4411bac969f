/**
 * `pulumi destroy` and `refresh` run the program (PULUMI_RUN_PROGRAM, so they
 * follow a moved host). On a stack that was never deployed or is destroyed
 * already, every value a provider computes is missing; the program must then
 * register everything and throw nothing (components/computed.ts). Before, it
 * threw on the first of them, and `pulumi destroy` run twice failed after a
 * minute. The setups run one after another in one child process
 * (test/unit/empty-state-run.ts), each with its own runtime state.
 */
import * as assert from "assert/strict";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "../..");
const REGISTER = path.join(ROOT, "test", "register.js");
const RUN = path.join(__dirname, "empty-state-run.ts");

// js-yaml is not a dependency of apphost; mocha depends on it, so resolve it from mocha.
const yaml = require(
  require.resolve("js-yaml", { paths: [path.dirname(require.resolve("mocha/package.json"))] }),
) as { load(source: string): unknown; dump(value: unknown): string };

type StackFile = { config: Record<string, Record<string, unknown>> };

/** Pulumi.staging.yaml with some sections replaced (each section as a whole). */
function stagingWith(sections: Record<string, Record<string, unknown>>): StackFile {
  const file = yaml.load(fs.readFileSync(path.join(ROOT, "Pulumi.staging.yaml"), "utf8")) as StackFile;
  return { config: { ...file.config, ...sections } };
}

const EC2 = (host: Record<string, unknown>) => ({
  "apphost:host": {
    kind: "ec2",
    instanceType: "t4g.small",
    sshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA deploy",
    sshAllowCidrs: ["203.0.113.7/32"],
    ...host,
  },
});

const SETUPS: Array<[label: string, stack: string, file: string | StackFile]> = [
  ["Pulumi.local.yaml (an existing server, sqlite, Caddy's internal CA)", "local", "Pulumi.local.yaml"],
  [
    "ec2 over SSH with an Elastic IP, IPv6, a Cloudflare origin certificate, Postgres on the host and backups copied to S3",
    "staging",
    stagingWith({
      ...EC2({ elasticIp: true, port: 2222 }),
      "apphost:dns": {
        provider: "cloudflare",
        zone: "example.com",
        ipv6: true,
        hostnames: [{ name: "staging.example.com", proxied: true }],
      },
      "apphost:database": { kind: "postgres", migrate: "alembic upgrade head" },
      "apphost:backups": { s3: true },
    }),
  ],
  [
    "three instances behind the load balancer (ACM certificate, RDS)",
    "staging",
    stagingWith({
      ...EC2({ count: 3, subnetIds: ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"] }),
      "apphost:tls": { mode: "acm" },
      "apphost:dns": {
        provider: "cloudflare",
        zone: "example.com",
        hostnames: [{ name: "shop.example.com", proxied: true }, { name: "www.shop.example.com" }],
      },
      "apphost:database": { kind: "rds", migrate: "alembic upgrade head" },
    }),
  ],
];

type RunResult = { registered: number } | { error: string };

describe("program() in a destroy's or refresh's run on a stack that holds nothing (mocks)", function () {
  this.timeout(120000);
  let tmp: string;
  let results: Map<string, RunResult>;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-empty-"));
    const setups = SETUPS.map(([label, stack, file]) => {
      // A committed stack file as it is, a variant written out first.
      const stackFile =
        typeof file === "string"
          ? path.join(ROOT, file)
          : path.join(tmp, `${label.replace(/\W+/g, "-").slice(0, 40)}.yaml`);
      if (typeof file !== "string") fs.writeFileSync(stackFile, yaml.dump(file));
      return [stack, stackFile];
    });
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [...process.execArgv, "-r", REGISTER, RUN, JSON.stringify(setups)],
        { cwd: ROOT, timeout: 120000, maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr }),
      ),
    );
    assert.equal(r.code, 0, `empty-state-run exited ${r.code}\n${r.stderr}`);
    const each = JSON.parse(r.stdout) as RunResult[];
    assert.equal(each.length, SETUPS.length);
    results = new Map(SETUPS.map(([label], i) => [label, each[i]]));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const [label] of SETUPS) {
    it(`${label}: registers every resource and throws nothing`, async () => {
      const r = results.get(label)!;
      assert.ok(!("error" in r), `the program threw: ${"error" in r ? r.error : ""}`);
      assert.ok(r.registered >= 10, `registered ${r.registered} resources`);
    });
  }
});
