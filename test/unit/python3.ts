/**
 * python3 for the specs and the scripts they run, without the pyenv shim where
 * this machine has one (see python3OnPath).
 */
import assert from "assert/strict";
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

let python3Dir: string | undefined;

/**
 * A directory holding `python3`, a link to the interpreter `python3` on PATH runs, to put in front of a
 * child's PATH. Where that `python3` is a pyenv shim (bash running pyenv, which runs more bash), each call
 * costs about 0.1 s of CPU against a third of that for the interpreter, and the specs start python3 dozens
 * of times. The same interpreter either way: the link names the executable the shim would run.
 */
export function python3OnPath(): string {
  if (python3Dir) return python3Dir;
  const probe = spawnSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" });
  assert.equal(probe.status, 0, `python3: ${probe.stderr}`);
  const exe = probe.stdout.trim();
  const dir = path.join(
    os.tmpdir(),
    `apphost-test-python3-${createHash("sha256").update(exe).digest("hex").slice(0, 16)}`,
  );
  fs.mkdirSync(dir, { recursive: true });
  const link = path.join(dir, "python3");
  if (!(fs.existsSync(link) && fs.realpathSync(link) === fs.realpathSync(exe))) {
    // Made beside it and renamed over it: a parallel worker sees the old link or the new one.
    const tmp = `${link}.${process.pid}`;
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(exe, tmp);
    fs.renameSync(tmp, link);
  }
  python3Dir = dir;
  return dir;
}

/** The interpreter `python3` on PATH runs (see python3OnPath). */
export const python3 = (): string => path.join(python3OnPath(), "python3");

/** PATH with python3OnPath() in front. */
export const pathWithPython3 = (): string => `${python3OnPath()}:${process.env.PATH}`;
