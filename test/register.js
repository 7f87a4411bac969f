// Loads .ts files for the unit specs and the programs they start (render-stack's
// children): SWC strips the types and writes CommonJS, as tsconfig.json asks
// (ES2022, esModuleInterop, define semantics for class fields), with an inline
// source map, from which the stacks people read name the .ts lines.
//
// Why not ts-node here: ts-node loads the TypeScript compiler (a quarter of a
// second of CPU in each of the four workers and each child) even when SWC does
// the transpiling, and its source-map hook re-maps every stack Pulumi records
// for a resource. With this hook the unit specs take about 29 s instead of 31 s
// on this 2-core machine. Type checking stays with `npm run build` (`tsc`);
// `pulumi up`, the npm scripts and the e2e specs keep ts-node (with SWC as its
// transpiler: tsconfig.json's "ts-node" block).
"use strict";
const fs = require("fs");
const swc = require("@swc/core");

// Node keeps each file's inline map (module.findSourceMap); the stacks are mapped below, and only those a
// person may read: @pulumi/pulumi takes a stack for every promise and every resource (debuggablePromise,
// Resource.callsites), and mapping those cost about 8 s of the unit specs' CPU.
process.setSourceMapsEnabled(true);
const { findSourceMap } = require("module");
const UNREAD = new Set(["debuggablePromise", "callsites"]);

/** A frame as V8 writes it, its `file:line:col` where the source map puts it in the .ts file */
function mapped(frame) {
  const file = frame.getFileName();
  if (!file || !file.endsWith(".ts")) return frame.toString();
  const [line, col] = [frame.getLineNumber(), frame.getColumnNumber()];
  const entry = findSourceMap(file)?.findEntry(line - 1, col - 1);
  if (!entry || entry.originalLine === undefined) return frame.toString();
  return frame
    .toString()
    .replace(`${file}:${line}:${col}`, `${file}:${entry.originalLine + 1}:${entry.originalColumn + 1}`);
}

Error.prepareStackTrace = (error, frames) => {
  const unread = frames.length > 0 && UNREAD.has(frames[0].getFunctionName());
  const head = error instanceof Error ? Error.prototype.toString.call(error) : String(error);
  return [head, ...frames.map((f) => `    at ${unread ? f.toString() : mapped(f)}`)].join("\n");
};

/** @param {string} filename */
function options(filename) {
  return {
    filename,
    sourceMaps: "inline",
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

require.extensions[".ts"] = function compileTypeScript(module, filename) {
  const { code } = swc.transformSync(fs.readFileSync(filename, "utf8"), options(filename));
  module._compile(code, filename);
};
