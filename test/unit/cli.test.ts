import * as assert from "assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { backendProblem } from "../../scripts/lib/automation";
import { readCommandLine } from "../../scripts/lib/cli";
import { CommandError } from "@pulumi/pulumi/automation";
import { failureLine, parseCli } from "../../scripts/deploy";
import { parseExecArgs } from "../../scripts/exec";
import { parseLogsArgs } from "../../scripts/logs";
import { parseMaintenanceArgs } from "../../scripts/maintenance";
import { parseDoctorArgs } from "../../scripts/doctor";

const SPEC = { values: ["stack", "since"], flags: ["follow"], short: { s: "stack", f: "follow" } };

describe("command lines (scripts/lib/cli.ts, node:util.parseArgs)", () => {
  it("reads --name value, --name=value, -s value and flags", () => {
    assert.deepEqual(readCommandLine(["-s", "prod", "--since=1h", "-f"], SPEC), {
      values: { stack: "prod", since: "1h" },
      flags: new Set(["follow"]),
      words: [],
      problems: [],
    });
  });

  it("names every problem in the order given", () => {
    const line = readCommandLine(
      ["--stak", "prod", "word", "--since", "--stack", "a", "--stack", "b", "--follow=yes", "--"],
      SPEC,
    );
    assert.deepEqual(line.problems, [
      'unknown option "--stak" (known: --stack, --since, --follow)',
      'unexpected argument "word"',
      "--since needs a value",
      "--stack is given twice",
      "--follow takes no value",
      'unexpected "--"',
    ]);
    // The option after a value-less one is read as an option, not as the value.
    assert.equal(line.values.stack, "b");
  });

  it("a value that starts with '-' and names no option: one problem that says how to write it", () => {
    const line = readCommandLine(["--since", "-3min", "-s", "prod", "--stack", "-f"], SPEC);
    assert.deepEqual(line.problems, [
      '--since needs a value; "-3min" starts with "-", so it reads as options: write --since=-3min',
      "--stack needs a value",
    ]);
    assert.deepEqual([line.values, line.flags], [{ stack: "prod" }, new Set(["follow"])]);
    // `-f` is an option of the spec (its short name): the value is missing, the option is read.
    assert.deepEqual(readCommandLine(["--since", "-f"], SPEC).problems, ["--since needs a value"]);
    // A long option, known or not, is an option: the value is missing.
    assert.deepEqual(readCommandLine(["--since", "--stak", "prod"], SPEC).problems, [
      "--since needs a value",
      'unknown option "--stak" (known: --stack, --since, --follow)',
    ]);
    assert.deepEqual(readCommandLine(["--since=-3min"], SPEC).values, { since: "-3min" });
  });

  it("keeps the words after a lone -- as they are, options included, where allowed", () => {
    const line = readCommandLine(["-s", "a", "--", "ls", "-l", "--stack", "x"], { ...SPEC, rest: true });
    assert.deepEqual(line.rest, ["ls", "-l", "--stack", "x"]);
    assert.deepEqual(line.values, { stack: "a" });
    assert.deepEqual(line.problems, []);
    assert.equal(readCommandLine(["-s", "a"], { ...SPEC, rest: true }).rest, undefined);
  });

  it("npm run deploy: the verb first, the engine's flags", () => {
    assert.deepEqual(parseCli(["up", "--stack", "prod", "--refresh", "--diff"]), {
      verb: "up",
      stack: "prod",
      flags: new Set(["refresh", "diff"]),
    });
    assert.throws(
      () => parseCli(["deploy", "extra", "--refresh", "--fast"]),
      (e: Error) => {
        assert.equal(
          e.message,
          [
            "usage: npm run deploy -- <up|preview|refresh|destroy|outputs> --stack <name> [--refresh] [--diff] [--expect-no-changes] [--preview-only] [--yes] [--json]",
            '  - the first word must be one of up, preview, refresh, destroy, outputs; got "deploy"',
            '  - unknown option "--fast" (known: --stack, --refresh, --diff, --expect-no-changes, --preview-only, --yes, --json)',
            '  - unexpected argument "extra"',
            "  - --stack <name> is required (local, staging or prod)",
          ].join("\n"),
        );
        return true;
      },
    );
  });

  it("npm run deploy: a failed engine command is named once, its streamed output not repeated", () => {
    const stdout =
      "Previewing update (local-bk):\n...\nDiagnostics:\n  error: apphost: 2 problems in the configuration\n";
    const result = {
      stdout,
      stderr: "",
      code: 255,
      err: undefined,
      toString: () => `code: 255\n stdout: ${stdout}`,
    };
    const failed = new (CommandError as unknown as new (r: typeof result) => CommandError)(result);
    assert.equal(
      failureLine(failed, "preview", "local-bk"),
      "apphost: pulumi preview --stack local-bk failed (exit 255); its diagnostics are above",
    );
    const run = new (CommandError as unknown as new (r: typeof result) => CommandError)({
      ...result,
      code: -2,
    });
    assert.equal(
      failureLine(run, "up", "prod"),
      "apphost: pulumi up --stack prod failed; its diagnostics are above",
    );
    // Anything else (no backend, a usage error) is its own message.
    assert.equal(
      failureLine(new Error('stack "x" has no state backend'), "up", "x"),
      'apphost: stack "x" has no state backend',
    );
    assert.equal(failureLine("odd", "up", "x"), "apphost: odd");
  });

  it("day-2 commands: their flags, words and command after --, with one usage line", () => {
    assert.deepEqual(parseExecArgs(["-s", "local", "-t", "--", "flask", "--app", "x", "shell"]), {
      stack: "local",
      options: {},
      tty: true,
      command: ["flask", "--app", "x", "shell"],
    });
    assert.throws(
      () => parseExecArgs(["--stack", "local", "flask"]),
      (e: Error) => {
        assert.equal(
          e.message,
          [
            "usage: npm run exec -- --stack <name> [--config-file <path>] [--host <value>] [--tty] -- <command…>",
            '  - unexpected argument "flask"',
            "  - no command: give it after --, e.g. npm run exec -- --stack local -- flask shell",
          ].join("\n"),
        );
        return true;
      },
    );
    assert.throws(() => parseLogsArgs(["-s", "local", "--", "x"]), /unexpected "-- x"/);
    assert.throws(
      () => parseMaintenanceArgs(["--stack", "local", "on", "now"]),
      /usage: npm run maintenance -- --stack <name> \[--config-file <path>\] on\|off\|status\n {2}- unexpected argument "now"/,
    );
    assert.throws(
      () => parseDoctorArgs(["--alert-test=1", "--backup-max-age", "2h"]),
      (e: Error) => {
        assert.deepEqual(e.message.split("\n").slice(1), [
          "  - --alert-test takes no value",
          "  - --stack <name> is required (local, staging or prod)",
          '  - --backup-max-age: "2h" must be a whole number of seconds',
        ]);
        return true;
      },
    );
  });
});

describe("a stack's state backend (scripts/lib/automation.ts backendProblem)", () => {
  let home: string;
  beforeEach(() => (home = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-home-"))));
  afterEach(() => fs.rmSync(home, { recursive: true, force: true }));

  it("says how to give a stack other than local and local-* its backend, before the engine asks for a login", () => {
    assert.equal(
      backendProblem("mbapi", {}, home),
      'stack "mbapi" has no state backend: only stacks named local or local-* keep theirs in ' +
        "file://<repo>/.pulumi-state by default. Set PULUMI_BACKEND_URL (file://$HOME/.pulumi-state on one machine, " +
        "s3://<bucket> for a team; docs/ci.md) and PULUMI_CONFIG_PASSPHRASE for its secrets, or PULUMI_ACCESS_TOKEN " +
        "for Pulumi Cloud (or run pulumi login); a stack for the sandbox can be named local-mbapi",
    );
    // A login file without a current backend is no login.
    fs.mkdirSync(path.join(home, ".pulumi"));
    fs.writeFileSync(path.join(home, ".pulumi", "credentials.json"), '{"accessTokens": {}}');
    assert.match(backendProblem("prod", {}, home) ?? "", /^stack "prod" has no state backend/);
  });

  it("is none for local stacks, with PULUMI_BACKEND_URL or PULUMI_ACCESS_TOKEN, or after pulumi login", () => {
    assert.equal(backendProblem("local", {}, home), undefined);
    assert.equal(backendProblem("local-mbapi", {}, home), undefined);
    assert.equal(backendProblem("prod", { PULUMI_BACKEND_URL: "s3://state" }, home), undefined);
    assert.equal(backendProblem("prod", { PULUMI_ACCESS_TOKEN: "pul-x" }, home), undefined);
    fs.mkdirSync(path.join(home, ".pulumi"));
    fs.writeFileSync(path.join(home, ".pulumi", "credentials.json"), '{"current": "file:///var/state"}');
    assert.equal(backendProblem("prod", {}, home), undefined);
    // PULUMI_HOME moves the login file.
    const moved = path.join(home, "elsewhere");
    assert.match(backendProblem("prod", { PULUMI_HOME: moved }, home) ?? "", /no state backend/);
  });
});
