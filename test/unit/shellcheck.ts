/**
 * shellcheck for the unit specs, with its clean verdicts kept.
 *
 * A script shellcheck finds nothing in is remembered by the sha256 of
 * shellcheck's version, the arguments and the script's text, as an empty file
 * under the temp directory: the same script is not checked again until it,
 * the arguments or shellcheck change. Findings are never kept. shellcheck is
 * about a second of CPU per release script, so this is most of what a rerun
 * of the static checks costs. `APPHOST_TEST_FRESH=1` (which .ci/run sets)
 * checks every script afresh.
 */
import assert from "assert/strict";
import { spawn, spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface Verdict {
  /** shellcheck's exit status: 0 for no findings */
  status: number;
  /** Its findings (stdout and stderr), "" when there are none */
  output: string;
  /** The clean verdict was remembered, not checked again */
  remembered: boolean;
}

const DIR = path.join(os.tmpdir(), "apphost-test-shellcheck");
let version: string | undefined;

function shellcheckVersion(): string {
  if (version !== undefined) return version;
  const r = spawnSync("shellcheck", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    assert.fail("shellcheck is not installed; it is required by these tests: apt-get install -y shellcheck");
  }
  version = r.stdout;
  return version;
}

function verdictFile(script: string, args: readonly string[]): string | undefined {
  if (process.env.APPHOST_TEST_FRESH === "1") return undefined;
  const key = createHash("sha256")
    .update(JSON.stringify([shellcheckVersion(), args, script]))
    .digest("hex");
  return path.join(DIR, key);
}

function remember(file: string | undefined, v: Verdict): Verdict {
  if (file && v.status === 0 && v.output === "") {
    fs.mkdirSync(DIR, { recursive: true });
    fs.writeFileSync(file, "");
  }
  return v;
}

/** `shellcheck <args> -` over `script` (its text), or the remembered clean verdict. */
export function shellcheck(script: string, args: readonly string[]): Promise<Verdict> {
  const file = verdictFile(script, args);
  if (file && fs.existsSync(file)) return Promise.resolve({ status: 0, output: "", remembered: true });
  shellcheckVersion();
  return new Promise((resolve, reject) => {
    const child = spawn("shellcheck", [...args, "-"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr.on("data", (b: Buffer) => (output += b.toString()));
    child.on("error", reject);
    child.on("close", (status) =>
      resolve(remember(file, { status: status ?? -1, output, remembered: false })),
    );
    child.stdin.end(script);
  });
}

/** The same, synchronously. */
export function shellcheckSync(script: string, args: readonly string[]): Verdict {
  const file = verdictFile(script, args);
  if (file && fs.existsSync(file)) return { status: 0, output: "", remembered: true };
  shellcheckVersion();
  const r = spawnSync("shellcheck", [...args, "-"], { input: script, encoding: "utf8" });
  return remember(file, { status: r.status ?? -1, output: `${r.stdout}${r.stderr}`, remembered: false });
}
