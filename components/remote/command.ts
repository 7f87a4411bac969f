/**
 * Steps run on the host for their effect (the baseline, the app's layout,
 * Nginx's default site, the first certbot certificate) are
 * @pulumi/command's `remote.Command`: run on create, again when the script
 * or the connection changes, the `delete` script on destroy, and nothing on
 * an unchanged `pulumi up`.
 *
 * What it cannot do is read the host back, so files whose hand edits must
 * show as drift stay `HostFile` (./resources.ts).
 */
import { createHash } from "crypto";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import type { SshConnection } from "./connection";
import { HostScript } from "./resources";
import { shellQuote } from "./ssh";

export interface HostStepArgs {
  connection: pulumi.Input<SshConnection>;
  /** Script run as root on create, and again whenever it (or the connection) changes */
  create: string;
  /** Script run as root on destroy */
  delete?: string;
  /**
   * Names the step for a reader of the state and the error: `host baseline`.
   * Printed by the script before it starts, so it heads the step's log.
   */
  description: string;
  /** Give up after this many minutes. @default 30 */
  timeoutMinutes?: number;
  /**
   * Standard input of the create script: how a secret reaches the host. Never
   * put one in `create`: the script is in the state and the preview's diff.
   * A change re-runs the script.
   */
  stdin?: pulumi.Input<string>;
  /**
   * The connection goes through an EC2 Instance Connect Endpoint
   * (`hostNeedsOpenSsh(config.host)`): @pulumi/command's SSH client can only
   * tunnel through an SSH proxy, so the step is an apphost `HostScript`, the
   * same scripts run by OpenSSH with `aws ec2-instance-connect open-tunnel` as
   * its ProxyCommand.
   */
  openSshOnly?: boolean;
}

/** True when only OpenSSH can reach the host: `apphost:host.via` is instance-connect. */
export function hostNeedsOpenSsh(host: { via: { kind: string } }): boolean {
  return host.via.kind === "instance-connect";
}

/**
 * The remote command line that runs `script` as root whoever logs in: root
 * runs it directly, any other user through `sudo -n` (no password prompt;
 * a missing sudo rule fails at once). The script text appears once, quoted.
 */
export function asRoot(script: string): string {
  return `s=; [ "$(id -u)" -eq 0 ] || s='sudo -n'; $s bash -c ${shellQuote(script)}`;
}

/**
 * The remote command line that runs, as root (see `asRoot`), the script that
 * arrives as the first `bytes` bytes of standard input: it is saved to a
 * temporary file, checked against its SHA-256 (a connection lost mid-way runs
 * nothing, never a truncated script), and run with the rest of standard input
 * as its own. The command stays short: @pulumi/command quotes the command
 * line in its error message (three times in the engine's output), so the
 * step's own message is what a failed step shows, not the script.
 */
export function asRootFromStdin(script: string): string {
  const bytes = Buffer.byteLength(script, "utf8");
  const sha = createHash("sha256").update(script, "utf8").digest("hex");
  const run = [
    "f=$(mktemp) || exit 1; trap 'rm -f \"$f\"' EXIT",
    `head -c ${bytes} >"$f"`,
    `if ! echo "${sha}  $f" | sha256sum --check --status; then echo "apphost: the step's script (${bytes} bytes) did not arrive whole" >&2; exit 1; fi`,
    'bash "$f"',
  ].join("; ");
  return asRoot(run);
}

/** apphost's connection as @pulumi/command's: the host key is pinned when one is known; a jump host is its `proxy`. */
export function commandConnection(conn: SshConnection): command.types.input.remote.ConnectionArgs {
  return {
    host: conn.host,
    port: conn.port,
    user: conn.user,
    privateKey: conn.privateKey,
    ...(conn.hostKey ? { hostKey: conn.hostKey } : {}),
    // A host that does not answer fails the step within a minute, not ten.
    dialErrorLimit: 4,
    perDialTimeout: 15,
    // apphost:host.via.jump: through the jump host, whose key is pinned too.
    ...(conn.proxy?.kind === "jump"
      ? {
          proxy: {
            host: conn.proxy.host,
            port: conn.proxy.port,
            user: conn.proxy.user,
            privateKey: conn.proxy.privateKey,
            hostKey: conn.proxy.hostKey,
            dialErrorLimit: 4,
            perDialTimeout: 15,
          },
        }
      : {}),
  };
}

/** The script with a first line naming the step, so its log says what ran. */
function described(description: string, script: string): string {
  return `echo ${shellQuote(`apphost: ${description}`)} >&2\n${script}`;
}

/**
 * A `remote.Command` that runs its scripts as root. Its stdout and stderr are
 * secret outputs (encrypted in the state) and only stderr reaches the
 * engine's log: no step prints a secret, and none can leak one into the state.
 */
export function hostStep(
  name: string,
  args: HostStepArgs,
  opts: pulumi.CustomResourceOptions = {},
): pulumi.CustomResource {
  const timeout = `${args.timeoutMinutes ?? 30}m`;
  if (args.openSshOnly) {
    return new HostScript(
      name,
      {
        connection: args.connection,
        create: described(args.description, args.create),
        ...(args.delete ? { delete: described(`${args.description} (delete)`, args.delete) } : {}),
        ...(args.stdin !== undefined ? { stdin: args.stdin } : {}),
        description: args.description,
        timeoutSeconds: (args.timeoutMinutes ?? 30) * 60,
      },
      opts,
    );
  }
  const script = described(args.description, args.create);
  return new command.remote.Command(
    name,
    {
      connection: pulumi.secret(pulumi.output(args.connection).apply(commandConnection)),
      // The script goes in on stdin, ahead of the step's own (a secret's): the command line stays short.
      create: asRootFromStdin(script),
      // @pulumi/command gives the delete the same stdin, which the delete script does not read.
      ...(args.delete ? { delete: asRoot(described(`${args.description} (delete)`, args.delete)) } : {}),
      stdin:
        args.stdin !== undefined
          ? pulumi.secret(pulumi.output(args.stdin).apply((secret) => `${script}${secret}`))
          : script,
      logging: "stderr",
      // Only works with sshd's AcceptEnv, and nothing here reads it.
      addPreviousOutputInEnv: false,
    },
    {
      ...opts,
      additionalSecretOutputs: ["stdout", "stderr"],
      customTimeouts: { create: timeout, update: timeout, delete: timeout },
    },
  );
}
