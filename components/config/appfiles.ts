/**
 * Reads what the parser needs from the app directory (`apphost:app.source`,
 * relative to the project): the Procfile and the files that decide how its
 * Python dependencies install. The program and the day-2 scripts read the
 * same files, so both parse the same processes.
 */
import * as fs from "fs";
import * as path from "path";
import { readPythonFacts } from "../release/python";
import type { AppFiles } from "./validate";

/** The app directory's files, or undefined when `apphost:app.source` is unset or not a directory (the parser reports it). */
export function readAppFiles(rawApp: unknown, projectDir: string): AppFiles | undefined {
  if (typeof rawApp !== "object" || rawApp === null) return undefined;
  const source = (rawApp as Record<string, unknown>).source;
  if (typeof source !== "string" || source.trim() === "") return undefined;
  const dir = path.resolve(projectDir, source);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return undefined;
  let procfile: string | undefined;
  try {
    procfile = fs.readFileSync(path.join(dir, "Procfile"), "utf8");
  } catch {
    procfile = undefined;
  }
  return { dir: source, ...(procfile !== undefined ? { procfile } : {}), python: readPythonFacts(dir) };
}
