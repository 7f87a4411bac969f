/**
 * How host-side components reach a host. The host component (ec2 or existing)
 * produces one of these as a secret Output; the SSH-backed dynamic providers
 * in this folder consume it.
 */
export interface SshConnection {
  /** Address the deployer connects to (public IP, DNS name, or the sandbox's address) */
  host: string;
  /** @default 22 */
  port: number;
  /** Login user; apphost runs privileged steps through `sudo -n` when it is not root */
  user: string;
  /** OpenSSH private key (PEM/OpenSSH format). Always a secret. */
  privateKey: string;
  /** Optional pinned host key line; when absent, the first key seen is trusted */
  hostKey?: string;
  /**
   * Which host of the stack this is (the Host component's name). The
   * resources on it look up the connection of the current program run by it
   * (./follow.ts), so a moved host is read and deleted at its new address.
   */
  ref?: string;
  /** How to reach it when not directly (`apphost:host.via`): an SSH jump host, or an EC2 Instance Connect Endpoint */
  proxy?: SshProxy;
}

export type SshProxy = SshJump | SshInstanceConnect;

/**
 * An EC2 Instance Connect Endpoint: OpenSSH's ProxyCommand is `aws
 * ec2-instance-connect open-tunnel` (AWS CLI v2.12+, credentials with
 * `ec2-instance-connect:OpenTunnel` on the endpoint). `host` is then the
 * instance's private address, a name for its pinned key only.
 */
export interface SshInstanceConnect {
  kind: "instance-connect";
  instanceId: string;
  endpointId: string;
  region: string;
}

/** An SSH jump host (a bastion): connections to the host are tunnelled through it (`ssh -W`). */
export interface SshJump {
  kind: "jump";
  host: string;
  port: number;
  user: string;
  /** Its private key: `apphost:jumpPrivateKey`, else the deploy key. Always a secret. */
  privateKey: string;
  /** Its pinned host key line (required) */
  hostKey: string;
}
