/**
 * Values providers compute (passwords, keys, certificates, a bucket's name and
 * region) as apphost renders from them, and the passwords apphost generates.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

/**
 * A value a provider computes (a password, a key, a certificate, a bucket's
 * region, the host's connection), unknown, never undefined, in a run whose
 * state has none. `pulumi destroy` and `refresh` run the program too
 * (`PULUMI_RUN_PROGRAM`, components/remote/follow.ts), and on a stack that was
 * never deployed or is destroyed already the engine registers its resources
 * without their outputs, in a run that creates nothing. Unknown, nothing is
 * rendered from the value, as in a preview; undefined, it reached code that
 * needs a value (the env file's safety check, a key's trim), the program
 * threw, and the destroy failed after a minute of reporting that.
 */
export function computed<T>(value: pulumi.Output<T | undefined>): pulumi.Output<T> {
  return value.apply((v) => pulumi.output(v ?? (pulumi.unknown as unknown as T))) as pulumi.Output<T>;
}

/**
 * A RandomPassword's result (computed), secret: letters and digits only, so
 * no URL, env-file or shell quoting can break.
 */
export function generatedPassword(
  name: string,
  length: number,
  opts?: pulumi.CustomResourceOptions,
): pulumi.Output<string> {
  const { result } = new random.RandomPassword(name, { length, special: false }, opts);
  // Secret by the provider's schema already; said here too, so no consumer depends on that.
  return pulumi.secret(computed(result));
}
