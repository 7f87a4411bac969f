// ts-node for the unit specs and the programs they start, with SWC as its
// transpiler: about half the CPU of TypeScript's own for the same files.
// `pulumi up` and the npm scripts keep ts-node's default transpiler.
require("ts-node").register({ transpileOnly: true, swc: true });
