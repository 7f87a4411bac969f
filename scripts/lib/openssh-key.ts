/**
 * An OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`, what
 * `ssh-keygen` writes) for an ed25519 key from Node's key generator. Used by
 * `npm run render` for its throwaway deploy key and by the unit tests'
 * fixtures; apphost itself only reads keys.
 */
import { randomBytes, type KeyObject } from "crypto";

/** One length-prefixed field of the SSH wire format. */
export function sshString(data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

export interface OpenSshKeyOptions {
  /** The key's comment. */
  comment: string;
  /** "none", or a cipher name that makes the file claim passphrase protection. @default "none" */
  cipher?: string;
  /** The public blob the container names as its own. @default the key's own public half */
  publicBlob?: Buffer;
}

/** The key file and the key's own public blob (`ssh-ed25519 <base64 of it>`). */
export function openSshPrivateKey(
  key: KeyObject,
  opts: OpenSshKeyOptions,
): { pem: string; publicBlob: Buffer } {
  const cipher = opts.cipher ?? "none";
  const jwk = key.export({ format: "jwk" }) as { d: string; x: string };
  const seed = Buffer.from(jwk.d, "base64url");
  const pub = Buffer.from(jwk.x, "base64url");
  const publicBlob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  const check = randomBytes(4);
  let priv = Buffer.concat([
    check,
    check,
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(opts.comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString(cipher),
    sshString(cipher === "none" ? "none" : "bcrypt"),
    sshString(cipher === "none" ? Buffer.alloc(0) : randomBytes(24)),
    Buffer.from([0, 0, 0, 1]),
    sshString(opts.publicBlob ?? publicBlob),
    sshString(priv),
  ]);
  const b64 = body.toString("base64").replace(/(.{70})/g, "$1\n");
  return {
    pem: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicBlob,
  };
}
