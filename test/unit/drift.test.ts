/**
 * `npm run drift`: reading the engine's refresh output, and the command line.
 *
 * The samples in samples/drift/ are real: `refresh --preview-only
 * --expect-no-changes` of the local stack on the sandbox through the
 * Automation API (v3.248.0), `.out` what onOutput saw, `.err` the message the
 * API threw:
 *
 *   clean        nothing changed on the host
 *   drift        a line appended to the Caddy site, a unit file chmod 0600
 *   unreachable  the host's sshd stopped (the release's status read then
 *                reports live=none, which the engine shows as an update),
 *                by providers serialized before RemoteError became a plain
 *                Error: the engine only says "Unknown Error"
 *   unreachable-ssh  the same with today's providers: each error names the
 *                file and the ssh failure (only the output is kept; the
 *                thrown message repeats it, 56 KB)
 *   noconfig     the stack's config file not passed (no output at all)
 *   release      the sample's worker stopped by hand (systemctl stop), stack local-d: the
 *                release's status reads it inactive; release-events.json is what onEvent saw of
 *                the Release's steps, its outputs cut to `live`
 */
import assert from "assert/strict";
import * as fs from "fs";
import * as path from "path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import {
  judgeRefresh,
  liveChanges,
  parseDrift,
  parseDriftArgs,
  parseDriftErrors,
  renderVerdict,
} from "../../scripts/drift";
import { parseOpsArgs, shortError } from "../../scripts/lib/ops";

const SAMPLES = path.join(__dirname, "samples", "drift");
const sample = (name: string) => fs.readFileSync(path.join(SAMPLES, name), "utf8");
const HOSTFILE = "pulumi-nodejs:dynamic/apphost:HostFile";

const RELEASE = "pulumi-nodejs:dynamic/apphost:Release";
const RELEASE_ID = "20261205064646-07fbcbe1";
/** The engine's events of samples/drift/release.out, as onEvent saw them (release-events.json: its Release steps) */
const releaseEvents = () => JSON.parse(sample("release-events.json")) as EngineEvent[];

describe("drift: liveChanges (the engine's events of a refresh)", () => {
  const step = (type: string, name: string, from: unknown, to: unknown): EngineEvent =>
    ({
      sequence: 1,
      timestamp: 0,
      resourcePreEvent: {
        metadata: {
          op: "update",
          urn: `urn:pulumi:prod::apphost::apphost:index:App$${type}::${name}`,
          type,
          provider: "",
          old: { type, urn: "", id: "x", parent: "", inputs: {}, outputs: { live: from }, provider: "" },
          new: { type, urn: "", id: "x", parent: "", inputs: {}, outputs: { live: to }, provider: "" },
        },
      },
    }) as EngineEvent;
  it("a Release's live before and after; the same value, or another type's, is none", () => {
    assert.deepEqual(
      liveChanges([
        step(RELEASE, "app-release", RELEASE_ID, `${RELEASE_ID} (web inactive)`),
        step(RELEASE, "other-release", RELEASE_ID, RELEASE_ID),
        step(HOSTFILE, "app-site", "a", "b"),
      ]),
      [{ name: "app-release", from: RELEASE_ID, to: `${RELEASE_ID} (web inactive)` }],
    );
  });

  it("a Rollout's per app host: each host whose live changed, a host new to it from none", () => {
    const ROLLOUT = "pulumi-nodejs:dynamic/apphost:Rollout";
    assert.deepEqual(
      liveChanges([
        step(
          ROLLOUT,
          "rollout",
          [
            { name: "app", live: RELEASE_ID },
            { name: "app2", live: RELEASE_ID },
          ],
          [
            { name: "app", live: RELEASE_ID },
            { name: "app2", live: "none" },
            { name: "app3", live: RELEASE_ID },
          ],
        ),
      ]),
      [
        { name: "rollout", host: "app2", from: RELEASE_ID, to: "none" },
        { name: "rollout", host: "app3", from: "none", to: RELEASE_ID },
      ],
    );
  });

  it("the real events of a refresh that found a worker stopped (samples/drift/release-events.json)", () => {
    assert.deepEqual(liveChanges(releaseEvents()), [
      {
        name: "app-release",
        from: RELEASE_ID,
        to: `${RELEASE_ID} (worker apphost-sample-local-d-worker.service inactive)`,
      },
    ]);
  });
});

describe("drift: parseDrift on real engine output", () => {
  it("a clean refresh names nothing (refreshing/same lines are not drift)", () => {
    assert.deepEqual(parseDrift(sample("clean.out")), []);
  });

  it("names each drifted resource with its type and the properties that differ", () => {
    assert.deepEqual(parseDrift(sample("drift.out")), [
      { op: "changed", type: HOSTFILE, name: "app-unit-worker", diff: ["mode"] },
      { op: "changed", type: HOSTFILE, name: "app-site", diff: ["content", "sha256"] },
    ]);
  });

  it("reads the same from the error message, which repeats the output", () => {
    assert.deepEqual(
      parseDrift(sample("drift.err")).map((d) => d.name),
      ["app-unit-worker", "app-site"],
    );
  });

  it("the unreachable sample shows the release as an update: the reason errors must win", () => {
    assert.deepEqual(parseDrift(sample("unreachable.out")), [
      { op: "changed", type: "pulumi-nodejs:dynamic/apphost:Release", name: "app-release", diff: [] },
    ]);
  });

  it("deletes, replaces, ANSI colours; the stack itself and `refresh 1 error` lines are not drift", () => {
    const out = [
      "\x1b[38;5;3m ~ \x1b[0m pulumi-nodejs:dynamic/apphost:HostFile app-env update [diff: ~sha256]",
      " -  aws:ec2/instance:Instance host-instance delete ",
      " +- cloudflare:index/dnsRecord:DnsRecord dns-a replace [diff: ~content]",
      " ~  pulumi:pulumi:Stack apphost-prod update",
      " ~  pulumi-nodejs:dynamic/apphost:HostFile app-site refresh 1 error",
    ].join("\n");
    assert.deepEqual(parseDrift(out), [
      { op: "changed", type: HOSTFILE, name: "app-env", diff: ["sha256"] },
      { op: "gone", type: "aws:ec2/instance:Instance", name: "host-instance", diff: [] },
      { op: "changed", type: "cloudflare:index/dnsRecord:DnsRecord", name: "dns-a", diff: ["content"] },
    ]);
  });
});

describe("drift: parseDriftErrors", () => {
  it("clean and drifted runs have no errors (the expect-no-changes refusal is not one)", () => {
    assert.deepEqual(parseDriftErrors(sample("clean.out")), []);
    assert.deepEqual(parseDriftErrors(sample("drift.out")), []);
    assert.deepEqual(parseDriftErrors(sample("drift.err")), []);
  });

  it("an unreachable host: one error per resource the engine could not read, by name and type", () => {
    const errors = parseDriftErrors(sample("unreachable.out"));
    const named = errors.filter((e) => e.type !== "");
    assert.equal(named.length, 12);
    assert.ok(named.every((e) => e.type === HOSTFILE && e.message === "Preview failed: Unknown Error"));
    assert.ok(named.some((e) => e.name === "app-site"));
    assert.deepEqual(
      errors.filter((e) => e.type === ""),
      [{ type: "", name: "apphost-local-h6", message: "preview failed" }],
    );
  });

  it("multi-line errors keep their cause; the stack's stack traces are not errors", () => {
    const errors = parseDriftErrors(sample("unreachable-ssh.out"));
    const site = errors.find((e) => e.name === "app-site");
    assert.deepEqual(site, {
      type: HOSTFILE,
      name: "app-site",
      message:
        "Preview failed: reading /etc/caddy/apphost/sample-local-h6.caddy: ssh to admin@10.79.0.2:22 failed\n" +
        "ssh: connect to host 10.79.0.2 port 22: Connection refused",
    });
    assert.equal(errors.filter((e) => e.type === HOSTFILE).length, 12);
    assert.deepEqual(
      errors.filter((e) => e.type === ""),
      [{ type: "", name: "apphost-local-h6", message: "preview failed" }],
    );
  });

  it("an engine error before any output (`error:` at the start of a line), once", () => {
    assert.deepEqual(parseDriftErrors(sample("noconfig.err")), [
      {
        type: "",
        name: "",
        message:
          "validating stack config: Stack 'local-h6' is missing configuration values 'app', 'host' and 'tls'",
      },
    ]);
  });
});

describe("drift: judgeRefresh (exit code)", () => {
  it("0 when the refresh passed", () => {
    assert.deepEqual(judgeRefresh(sample("clean.out")), { code: 0, drift: [], errors: [] });
  });

  it("1 when the engine refused proposed changes and nothing failed", () => {
    const v = judgeRefresh(sample("drift.out"), sample("drift.err"));
    assert.equal(v.code, 1);
    assert.deepEqual(
      v.drift.map((d) => d.name),
      ["app-unit-worker", "app-site"],
    );
  });

  it("2, not 1, when the host is unreachable, although a resource shows as changed", () => {
    const v = judgeRefresh(sample("unreachable.out"), sample("unreachable.err"));
    assert.equal(v.code, 2);
    assert.equal(v.drift.length, 1);
  });

  it("2 when a read failed even if the engine also says changes were proposed", () => {
    const out =
      sample("drift.out") +
      "Diagnostics:\n  pulumi-nodejs:dynamic/apphost:HostFile (app-env):\n    error: reading /etc/apphost/x.env: ssh to admin@10.0.0.2:22 failed\n\n";
    assert.equal(
      judgeRefresh(out, "error: no changes were expected for refresh but changes were proposed").code,
      2,
    );
  });

  it("2 for an engine error with no output, with the engine's reason", () => {
    const v = judgeRefresh("", sample("noconfig.err"));
    assert.equal(v.code, 2);
    assert.match(v.errors[0].message, /^validating stack config: Stack 'local-h6' is missing/);
  });

  it("2 for any other failure (a lock, a crash), never 1", () => {
    assert.equal(judgeRefresh("", "the stack is currently locked by 1 lock(s)").code, 2);
    assert.equal(judgeRefresh("Previewing refresh (prod):\n", "").code, 2);
  });
});

describe("drift: the summary printed", () => {
  it("drift names every resource by name and type, with the way back", () => {
    const lines = renderVerdict("local-h6", judgeRefresh(sample("drift.out"), sample("drift.err")));
    assert.deepEqual(lines, [
      "drift: local-h6: 2 resource(s) differ from the state:",
      `  changed: app-unit-worker (HostFile, ${HOSTFILE}): mode`,
      `  changed: app-site (HostFile, ${HOSTFILE}): content, sha256`,
      "Put the declared state back: npm run deploy -- up --refresh --stack local-h6",
      "or accept what is there into the state: pulumi refresh --stack local-h6",
    ]);
  });

  it("says what a drifted release serves, as the refresh read it (the engine's events), under its line", () => {
    const v = {
      ...judgeRefresh(sample("release.out"), "error: no changes were expected"),
      live: liveChanges(releaseEvents()),
    };
    assert.equal(v.code, 1);
    const lines = renderVerdict("local-d", v);
    assert.deepEqual(lines, [
      "drift: local-d: 1 resource(s) differ from the state:",
      `  changed: app-release (Release, ${RELEASE})`,
      `    live: ${RELEASE_ID} -> ${RELEASE_ID} (worker apphost-sample-local-d-worker.service inactive)`,
      // Accepting a stopped worker into the state would change nothing: the next up publishes the release again.
      "Put the declared state back: npm run deploy -- up --refresh --stack local-d",
    ]);
    // Another release live (a hand switch of current), or a host file changed too: accepting is a choice.
    const other = { ...v, live: [{ name: "app-release", from: RELEASE_ID, to: "20261205000000-00000000" }] };
    assert.equal(
      renderVerdict("local-d", other).at(-1),
      "or accept what is there into the state: pulumi refresh --stack local-d",
    );
    const withFile = {
      ...v,
      drift: [...v.drift, { op: "changed" as const, type: HOSTFILE, name: "app-site", diff: ["content"] }],
    };
    assert.equal(
      renderVerdict("local-d", withFile).at(-1),
      "or accept what is there into the state: pulumi refresh --stack local-d",
    );
  });

  it("could not check groups the read errors by their cause and names every resource", () => {
    const lines = renderVerdict(
      "local-h6",
      judgeRefresh(sample("unreachable.out"), sample("unreachable.err")),
    );
    assert.equal(lines[0], "drift: local-h6: could not check: 12 resource(s) could not be read:");
    assert.equal(lines[1], "  Preview failed: Unknown Error");
    assert.match(lines[2], /^ {4}[a-z-]+ \(HostFile\)(, [a-z-]+ \(HostFile\)){11}$/);
    assert.equal(lines[3], "  preview failed");
  });

  it("an unreachable host is one cause, with one example and every resource it stopped", () => {
    // The first lines of the message the Automation API threw (the rest repeats the output).
    const thrown =
      "code: -2\n stdout: \n stderr: Command failed with exit code 1: pulumi refresh --preview-only --expect-no-changes --stack local-h6";
    const v = judgeRefresh(sample("unreachable-ssh.out"), thrown);
    assert.equal(v.code, 2);
    const lines = renderVerdict("local-h6", v);
    assert.deepEqual(lines.slice(0, 2), [
      "drift: local-h6: could not check: 12 resource(s) could not be read:",
      "  ssh: connect to host 10.79.0.2 port 22: Connection refused",
    ]);
    assert.match(lines[2], /^ {4}e\.g\. Preview failed: reading \/\S+: ssh to admin@10\.79\.0\.2:22 failed$/);
    assert.match(lines[3], /^ {4}[a-z-]+ \(HostFile\)(, [a-z-]+ \(HostFile\)){11}$/);
    assert.deepEqual(lines.slice(4), ["  preview failed"]);
  });

  it("no drift is one line", () => {
    assert.deepEqual(renderVerdict("prod", { code: 0, drift: [], errors: [] }), ["drift: prod: no drift"]);
  });
});

describe("drift: command line", () => {
  it("--stack and --config-file, spaced or with =, and -s", () => {
    assert.deepEqual(parseDriftArgs(["--stack", "prod"]), { stack: "prod", options: {} });
    assert.deepEqual(parseDriftArgs(["--stack=staging", "--config-file=/tmp/c/Pulumi.staging.yaml"]), {
      stack: "staging",
      configFile: "/tmp/c/Pulumi.staging.yaml",
      options: {},
    });
    assert.deepEqual(parseDriftArgs(["--config-file", "x.yaml", "-s", "local-h6"]), {
      stack: "local-h6",
      configFile: "x.yaml",
      options: {},
    });
  });

  it("lists every problem with the usage line", () => {
    assert.throws(
      () => parseDriftArgs(["--stak", "prod", "extra", "--config-file"]),
      (e: Error) => {
        assert.equal(
          e.message,
          [
            "usage: npm run drift -- --stack <name> [--config-file <path>]",
            '  - unknown option "--stak" (known: --stack, --config-file)',
            '  - unexpected argument "extra"',
            "  - --config-file needs a value",
            "  - --stack <name> is required (local, staging or prod)",
          ].join("\n"),
        );
        return true;
      },
    );
  });

  it("a missing value is not taken from the next option", () => {
    assert.throws(() => parseDriftArgs(["--stack", "--config-file", "x"]), /--stack needs a value/);
    assert.throws(() => parseDriftArgs(["--stack", "a", "--stack", "b"]), /--stack is given twice/);
    assert.throws(() => parseDriftArgs([]), /--stack <name> is required/);
  });

  it("commands declare their own options", () => {
    assert.deepEqual(
      parseOpsArgs("doctor", ["-s", "prod", "--origin-ca-file", "/etc/ca.pem"], ["origin-ca-file"]),
      {
        stack: "prod",
        options: { "origin-ca-file": "/etc/ca.pem" },
      },
    );
    assert.throws(
      () => parseDriftArgs(["-s", "prod", "--origin-ca-file", "/x"]),
      /unknown option "--origin-ca-file"/,
    );
  });

  it("shortError keeps the engine's error lines of a wrapped command failure", () => {
    assert.equal(
      shortError(new Error(sample("noconfig.err"))),
      "error: validating stack config: Stack 'local-h6' is missing configuration values 'app', 'host' and 'tls'",
    );
    assert.equal(shortError(new Error("a\nb\nc"), 2), "b\nc");
  });
});
