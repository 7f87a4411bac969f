// Loads .ts files for the unit specs and the programs they start (render-stack's
// children): SWC strips the types and writes CommonJS, as tsconfig.json asks
// (ES2022, esModuleInterop, define semantics for class fields).
//
// Why not ts-node here: ts-node loads the TypeScript compiler (a quarter of a
// second of CPU in each of the four workers and each child) even when SWC does
// the transpiling, and its source-map hook re-maps every stack Pulumi records
// for a resource. Type checking stays with `npm run build` (`tsc`); `pulumi up`,
// the npm scripts and the e2e specs keep ts-node (with SWC as its transpiler:
// tsconfig.json's "ts-node" block).
//
// Each file's output is kept in node_modules/.cache/apphost-ts, under a hash of
// SWC's version, the options, the file's path and its text: an unchanged file
// is read back instead of transpiled again in every worker and child. A changed
// file gets a new entry; `rm -rf node_modules/.cache/apphost-ts` empties it.
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const { SourceMap } = require("module");

const SWC_VERSION = require("@swc/core/package.json").version;
const CACHE_DIR = path.join(__dirname, "..", "node_modules", ".cache", "apphost-ts");

/** @param {string} filename */
function options(filename) {
  return {
    filename,
    sourceMaps: true,
    swcrc: false,
    configFile: false,
    module: { type: "commonjs", strictMode: true, noInterop: false },
    jsc: {
      target: "es2022",
      parser: { syntax: "typescript" },
      transform: { useDefineForClassFields: true },
      keepClassNames: true,
    },
  };
}
const OPTIONS_KEY = JSON.stringify(options(""));

/** @type {import("@swc/core") | undefined} */
let swc;

/**
 * The file's CommonJS and its source map (JSON text), from the cache or SWC.
 * @param {string} source @param {string} filename @returns {{ code: string, map: string }}
 */
function transpile(source, filename) {
  const key = crypto
    .createHash("sha256")
    .update(`${SWC_VERSION}\0${OPTIONS_KEY}\0${filename}\0`)
    .update(source)
    .digest("hex");
  const file = path.join(CACHE_DIR, key.slice(0, 2), `${key}.json`);
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    // not cached yet (or unreadable): transpile
  }
  swc ??= require("@swc/core");
  const { code, map } = swc.transformSync(source, options(filename));
  const entry = { code, map: map ?? "" };
  try {
    // Written beside it, then renamed: a parallel worker reads all of it or none.
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(entry));
    fs.renameSync(tmp, file);
  } catch {
    // a read-only tree: transpile each time
  }
  return entry;
}

// Each file's map, parsed the first time a stack needs it. Only the stacks a person may read are mapped:
// @pulumi/pulumi takes a stack for every resource (Resource.callsites) and, with PULUMI_DEBUG_PROMISE_LEAKS,
// for every promise (debuggablePromise, below), and mapping those cost about 8 s of the unit specs' CPU; they
// keep only the project's frames, as transpiled.
/** @type {Map<string, string>} */
const rawMaps = new Map();
/** @type {Map<string, SourceMap | null>} */
const maps = new Map();
const UNREAD = new Set(["debuggablePromise", "callsites"]);

/** @param {string} file @returns {SourceMap | null} */
function mapOf(file) {
  if (!maps.has(file)) {
    const raw = rawMaps.get(file);
    let map = null;
    try {
      if (raw) map = new SourceMap(JSON.parse(raw));
    } catch {
      // an unreadable map: the frame stays as transpiled
    }
    maps.set(file, map);
  }
  return maps.get(file) ?? null;
}

/** A frame as V8 writes it, its `file:line:col` where the source map puts it in the .ts file */
function mapped(frame) {
  const file = frame.getFileName();
  if (!file || !file.endsWith(".ts")) return frame.toString();
  const [line, col] = [frame.getLineNumber(), frame.getColumnNumber()];
  const entry = mapOf(file)?.findEntry(line - 1, col - 1);
  if (!entry || entry.originalLine === undefined) return frame.toString();
  return frame
    .toString()
    .replace(`${file}:${line}:${col}`, `${file}:${entry.originalLine + 1}:${entry.originalColumn + 1}`);
}

/** A frame in the project's own code (not a dependency's, not Node's) */
const own = (frame) => {
  const file = frame.getFileName();
  return !!file && path.isAbsolute(file) && !file.includes(`${path.sep}node_modules${path.sep}`);
};

Error.prepareStackTrace = (error, frames) => {
  const head = error instanceof Error ? Error.prototype.toString.call(error) : String(error);
  if (frames.length > 0 && UNREAD.has(frames[0].getFunctionName())) {
    // Read only in a leak report: the project's frames, as transpiled (formatting every frame of the
    // thousands of such stacks a spec file makes cost half a second of CPU in each worker).
    return [head, ...frames.filter(own).map((f) => `    at ${f.toString()}`)].join("\n");
  }
  return [head, ...frames.map((f) => `    at ${mapped(f)}`)].join("\n");
};

// @pulumi/pulumi keeps a stack with every promise it makes (debuggablePromise), which it prints only when
// PULUMI_DEBUG_PROMISE_LEAKS is set; without it the stack is never read. So, unless that is set, its promises
// are made with no frames taken: Pulumi's own code runs unchanged, it only skips the capture. That capture,
// and formatting it, was about a fifth of a mock program's CPU in the unit specs.
const DEBUGGABLE = path.join(
  path.dirname(require.resolve("@pulumi/pulumi/package.json")),
  "runtime",
  "debuggable.js",
);
const compileJavaScript = require.extensions[".js"];
require.extensions[".js"] = function compileJavaScriptOnce(module, filename) {
  compileJavaScript(module, filename);
  if (filename !== DEBUGGABLE || module.exports.debugPromiseLeaks) return;
  const debuggablePromise = module.exports.debuggablePromise;
  module.exports.debuggablePromise = function withoutStack(promise, context) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return debuggablePromise(promise, context);
    } finally {
      Error.stackTraceLimit = limit;
    }
  };
};

require.extensions[".ts"] = function compileTypeScript(module, filename) {
  const { code, map } = transpile(fs.readFileSync(filename, "utf8"), filename);
  rawMaps.set(filename, map);
  module._compile(code, filename);
};
