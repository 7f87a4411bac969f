/**
 * The dynamic providers' serialization, once per process instead of in every
 * program run under mocks.
 *
 * Registering a dynamic resource serializes its provider's code into the
 * resource's inputs (`__provider`, what the state keeps and the engine runs).
 * Pulumi does it once per provider and process, about 1.2 s of CPU for
 * apphost's five: in each mocha worker that runs a program under mocks.ts,
 * while no spec there reads that text. mocks.ts calls stubProviderSerialization,
 * so those runs carry PROVIDER_STUB; release.provider.test serializes each
 * provider for real, with `serializeFunction` (the real one), and loads the
 * code as the engine does.
 */
// The module dynamic.Resource requires as each provider is first serialized: its export is looked up at that time.
const closure = require("@pulumi/pulumi/runtime/closure/serializeClosure") as {
  serializeFunction: typeof import("@pulumi/pulumi").runtime.serializeFunction;
};

/** Pulumi's own serializeFunction, whether or not the stub is in place. */
export const serializeFunction = closure.serializeFunction;

/** What a program run under mocks.ts carries as each dynamic resource's `__provider`. */
export const PROVIDER_STUB =
  "exports.handler = undefined; // not serialized under the unit specs' mocks (test/unit/provider-serialization.ts)";

/** Makes each provider's serialization in this process PROVIDER_STUB. */
export function stubProviderSerialization(): void {
  closure.serializeFunction = async () => ({
    text: PROVIDER_STUB,
    exportName: "handler",
    containsSecrets: false,
  });
}
