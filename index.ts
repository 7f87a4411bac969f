// Entry point for the Pulumi CLI (`pulumi up` with a Node.js language host).
// `npm run deploy` runs the same program inline through the Automation API.
import { program } from "./program";

export = program();
