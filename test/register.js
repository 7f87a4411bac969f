// Loads .ts files for the unit specs and the programs they start (render-stack's
// children): SWC strips the types and writes CommonJS, as tsconfig.json asks
// (ES2022, esModuleInterop, define semantics for class fields), with an inline
// source map that Node itself applies to stack traces.
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

process.setSourceMapsEnabled(true);

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
