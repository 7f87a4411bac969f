/**
 * Passwords apphost generates (the app's SECRET_KEY, the Postgres role's),
 * kept encrypted in the state.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";

/**
 * A RandomPassword's result, secret: letters and digits only, so no URL,
 * env-file or shell quoting can break. Unknown, never undefined, in a run whose state has
 * none: `pulumi destroy` and `refresh` run the program too
 * (`PULUMI_RUN_PROGRAM`, components/remote/follow.ts), and on a stack that was
 * never deployed or is destroyed already the engine registers the password
 * without a result, in a run that creates nothing. Unknown, nothing is
 * rendered from it, as in a preview; undefined, it failed the env file's
 * safety check, and the destroy failed after a minute of reporting that.
 */
export function generatedPassword(
  name: string,
  length: number,
  opts?: pulumi.CustomResourceOptions,
): pulumi.Output<string> {
  const { result } = new random.RandomPassword(name, { length, special: false }, opts);
  // Secret by the provider's schema already; said here too, so no consumer depends on that.
  return pulumi.secret(
    result.apply((value) => pulumi.output(value ?? (pulumi.unknown as unknown as string))),
  );
}
