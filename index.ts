// Entry point for the Pulumi CLI (`pulumi up` with a Node.js language host).
// `npm run deploy` and the day-2 commands run the same program through the Automation API.
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "./components/config";
import { program } from "./program";

// A configuration problem is the user's to fix: the engine prints apphost's
// message (every offender, what to do) and no stack trace. Anything else is a
// bug, reported with its trace.
const outputs = program().catch((e: unknown) => {
  if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
  throw e;
});
// The engine awaits the outputs a moment after loading this module; a handler
// here keeps Node from first calling the rejection unhandled.
outputs.catch(() => undefined);

export = outputs;
