/**
 * Dynamic resources over SSH. Unlike @pulumi/command, these can read the host
 * back: `HostFile.read` reports the file's real hash, mode and owner, so a
 * hand edit on the host shows in `pulumi preview --refresh` and fails
 * `pulumi refresh --preview-only --expect-no-changes`.
 *
 * Pulumi serializes each provider object into the state, so providers only
 * call functions from ./ssh and ./scripts, which use nothing but Node
 * built-ins.
 */
import * as pulumi from "@pulumi/pulumi";
import type { SshConnection } from "./connection";
import { connectionChanged, currentConnection, PROVIDER_VERSION, rememberConnection } from "./follow";
import { ed25519KeyIn, keyTempDir, proxyCommand, runRemote, writeJumpFiles } from "./ssh";
import {
  deleteFileScript,
  normalizeMode,
  parseFileState,
  readFileScript,
  writeFileScript,
  type FileSpec,
} from "./scripts";

/** The engine sends this for values not known during a preview. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function sha256(text: string): string {
  const crypto = require("crypto") as typeof import("crypto");
  return crypto.createHash("sha256").update(text, "utf8").digest("hex");
}

function hasUnknown(value: unknown): boolean {
  if (value === UNKNOWN) return true;
  if (Array.isArray(value)) return value.some(hasUnknown);
  if (value && typeof value === "object") return Object.values(value).some(hasUnknown);
  return false;
}

// ---------------------------------------------------------------- HostFile

export interface HostFileArgs {
  connection: pulumi.Input<SshConnection>;
  path: pulumi.Input<string>;
  content: pulumi.Input<string>;
  /** @default "0644" */
  mode?: pulumi.Input<string>;
  /** @default "root" */
  owner?: pulumi.Input<string>;
  /** @default "root" */
  group?: pulumi.Input<string>;
  validate?: pulumi.Input<string>;
  reload?: pulumi.Input<string>;
  /** Run after the file is removed on destroy, instead of validate + reload ("" for nothing) */
  onDelete?: pulumi.Input<string>;
  /**
   * The content is secret (env files, keys). A refresh then reads back only
   * the hash, never the text. @default false, or true when content is a secret Output
   */
  secret?: pulumi.Input<boolean>;
}

interface FileInputs {
  connection: SshConnection;
  path: string;
  content: string;
  mode: string;
  owner: string;
  group: string;
  validate?: string;
  reload?: string;
  onDelete?: string;
  secret: boolean;
  /** sha256 of `content` (inputs), of the file on the host (outputs, as last read) */
  sha256: string;
  /** PROVIDER_VERSION of the code that last applied it; absent before version 2 */
  providerVersion?: number;
}

interface FileOutputs extends FileInputs {
  actualMode: string;
  actualOwner: string;
  actualGroup: string;
}

function fileSpec(f: FileInputs): FileSpec {
  return {
    path: f.path,
    mode: f.mode,
    owner: f.owner,
    group: f.group,
    validate: f.validate,
    reload: f.reload,
    onDelete: f.onDelete,
  };
}

async function writeFile(f: FileInputs): Promise<FileOutputs> {
  await runRemote(f.connection, writeFileScript(fileSpec(f)), {
    what: `host file ${f.path}`,
    stdin: f.content,
    secrets: [f.content],
  });
  return {
    ...f,
    sha256: sha256(f.content),
    actualMode: normalizeMode(f.mode),
    actualOwner: f.owner,
    actualGroup: f.group,
  };
}

/** What the host has differs from what the program declares (content, mode, owner, commands). */
function fileChanged(olds: FileOutputs, news: FileInputs): boolean {
  return (
    news.sha256 !== olds.sha256 ||
    normalizeMode(news.mode) !== olds.actualMode ||
    news.owner !== olds.actualOwner ||
    news.group !== olds.actualGroup ||
    (news.validate ?? "") !== (olds.validate ?? "") ||
    (news.reload ?? "") !== (olds.reload ?? "")
  );
}

export const hostFileProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: FileInputs, news: FileInputs) {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (typeof news.path === "string" && !news.path.startsWith("/")) {
      failures.push({ property: "path", reason: `path must be absolute, got "${news.path}"` });
    }
    if (typeof news.mode === "string" && !/^[0-7]{3,4}$/.test(news.mode)) {
      failures.push({ property: "mode", reason: `mode must be octal like 0644, got "${news.mode}"` });
    }
    return { inputs: news, failures };
  },

  async diff(_id: string, olds: FileOutputs, news: FileInputs) {
    if (hasUnknown([news.path, news.content, news.mode, news.owner, news.group])) return { changes: true };
    const replaces = news.path !== olds.path ? ["path"] : [];
    const changes =
      replaces.length > 0 ||
      fileChanged(olds, news) ||
      // Only the stored connection, delete command or provider code: an update with no remote work.
      hasUnknown(news.connection) ||
      connectionChanged(olds.connection, news.connection) ||
      // What a later delete runs is stored with the file (a delete runs the stored outputs): store a new one.
      (news.onDelete ?? "") !== (olds.onDelete ?? "") ||
      (olds.providerVersion ?? 1) !== news.providerVersion;
    return { changes, replaces, deleteBeforeReplace: false };
  },

  async create(inputs: FileInputs) {
    const outs = await writeFile(inputs);
    return { id: inputs.path, outs };
  },

  async update(_id: string, olds: FileOutputs, news: FileInputs) {
    if (!fileChanged(olds, news)) {
      // The host moved, or apphost's provider code changed: keep what the
      // host has, store the new connection and code.
      const { actualMode, actualOwner, actualGroup } = olds;
      return { outs: { ...news, sha256: olds.sha256, actualMode, actualOwner, actualGroup } };
    }
    return { outs: await writeFile(news) };
  },

  // A refresh reports what is on the host as both outputs and inputs, so the
  // next preview shows a hand edit as a diff of `content` (or, for secret
  // files, of `sha256`) against what the program declares.
  async read(id: string, props: FileOutputs) {
    const res = await runRemote(
      currentConnection(props.connection),
      readFileScript(props.path, !props.secret),
      {
        what: `reading ${props.path}`,
      },
    );
    const state = parseFileState(res.stdout);
    const actual = {
      sha256: state.present ? state.sha256! : "absent",
      actualMode: state.mode ?? "absent",
      actualOwner: state.owner ?? "absent",
      actualGroup: state.group ?? "absent",
    };
    const inputs: FileInputs = {
      connection: props.connection,
      path: props.path,
      content: props.secret ? props.content : (state.content ?? ""),
      mode: actual.actualMode,
      owner: actual.actualOwner,
      group: actual.actualGroup,
      validate: props.validate,
      reload: props.reload,
      onDelete: props.onDelete,
      secret: props.secret,
      sha256: actual.sha256,
      // As applied: a refresh must not show the code version as drift.
      providerVersion: props.providerVersion,
    };
    // The engine's protobuf encoding refuses `undefined`: drop unset keys.
    const defined = <T extends object>(o: T): T =>
      Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
    return { id, props: defined({ ...props, ...actual, content: inputs.content }), inputs: defined(inputs) };
  },

  async delete(_id: string, props: FileOutputs) {
    await runRemote(currentConnection(props.connection), deleteFileScript(fileSpec(props)), {
      what: `removing ${props.path}`,
    });
  },
};

/**
 * A file on the host whose content, mode and owner Pulumi manages and reads
 * back. Secret content stays secret in the state and never reaches a log.
 */
export class HostFile extends pulumi.dynamic.Resource {
  declare public readonly path: pulumi.Output<string>;
  declare public readonly sha256: pulumi.Output<string>;

  constructor(name: string, args: HostFileArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      hostFileProvider,
      name,
      {
        mode: "0644",
        owner: "root",
        group: "root",
        ...args,
        secret: args.secret ?? pulumi.isSecret(pulumi.output(args.content)),
        connection: pulumi.secret(args.connection),
        sha256: pulumi.output(args.content).apply(sha256),
        providerVersion: PROVIDER_VERSION,
        actualMode: undefined,
        actualOwner: undefined,
        actualGroup: undefined,
      },
      opts,
      "apphost",
      "HostFile",
    );
  }
}

// ---------------------------------------------------------- HostConnection

interface ConnectionInputs {
  connection: SshConnection;
  providerVersion: number;
  /** The host key apphost trusts for this host: configured, or the first one seen, kept in the state */
  pinnedHostKey?: string;
}

/**
 * The host's ed25519 key, as `ssh-ed25519 AAAA...`, from `ssh-keyscan`; undefined
 * when the host does not answer (a new instance still booting: the first
 * connection then accepts its key, and the next run pins it).
 */
export async function scanHostKey(host: string, port: number, tries = 6): Promise<string | undefined> {
  const { spawnSync } = require("child_process") as typeof import("child_process");
  for (let i = 0; i < tries; i++) {
    const r = spawnSync("ssh-keyscan", ["-T", "10", "-p", String(port), "-t", "ed25519", host], {
      encoding: "utf8",
      timeout: 20000,
    });
    const key = ed25519KeyIn(r.stdout ?? "");
    if (key) return key;
    if (i < tries - 1) await new Promise((res) => setTimeout(res, 5000));
  }
  return undefined;
}

/**
 * The host's ed25519 key as seen through its jump host or Instance Connect
 * Endpoint (ssh-keyscan cannot use a proxy): a connection that accepts the
 * first key into a scratch known_hosts and offers no credential at all, so it
 * ends right after the key exchange.
 */
export async function scanHostKeyViaProxy(conn: SshConnection, tries = 6): Promise<string | undefined> {
  const fs = require("fs") as typeof import("fs");
  const path = require("path") as typeof import("path");
  const { spawnSync } = require("child_process") as typeof import("child_process");
  if (!conn.proxy) return undefined;
  const dir = keyTempDir();
  try {
    const files = writeJumpFiles(conn, dir);
    const knownHosts = path.join(dir, "known_hosts");
    for (let i = 0; i < tries; i++) {
      fs.writeFileSync(knownHosts, "", { mode: 0o600 });
      spawnSync(
        "ssh",
        [
          "-F",
          "none",
          "-p",
          String(conn.port),
          "-o",
          `ProxyCommand=${proxyCommand(conn, files)}`,
          "-o",
          "BatchMode=yes",
          "-o",
          "StrictHostKeyChecking=accept-new",
          "-o",
          `UserKnownHostsFile=${knownHosts}`,
          "-o",
          "HostKeyAlgorithms=ssh-ed25519",
          "-o",
          "PubkeyAuthentication=no",
          "-o",
          "PasswordAuthentication=no",
          "-o",
          "KbdInteractiveAuthentication=no",
          "-o",
          "ConnectTimeout=15",
          "-o",
          "LogLevel=ERROR",
          `${conn.user}@${conn.host}`,
          "true",
        ],
        { encoding: "utf8", timeout: 40000, stdio: ["ignore", "ignore", "pipe"] },
      );
      const key = ed25519KeyIn(fs.readFileSync(knownHosts, "utf8"));
      if (key) return key;
      if (i < tries - 1) await new Promise((res) => setTimeout(res, 5000));
    }
    return undefined;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const hostConnectionProvider: pulumi.dynamic.ResourceProvider = {
  // check sees the current program's inputs, before any resource on the host
  // is read, updated or deleted: pin the host key, and record where the host is now.
  //   - apphost:host.hostKey, when configured, is the key;
  //   - else the key pinned by an earlier run (kept in this resource's inputs);
  //   - else the key the host shows now (trust on first use), from then on enforced.
  // APPHOST_ACCEPT_NEW_HOST_KEY=1 replaces a pinned key with the one the host shows now.
  async check(olds: ConnectionInputs | undefined, news: ConnectionInputs) {
    if (!news.connection || hasUnknown(news.connection)) return { inputs: news };
    const accept = process.env.APPHOST_ACCEPT_NEW_HOST_KEY === "1";
    let pinned = news.connection.hostKey || (accept ? undefined : olds?.pinnedHostKey);
    if (!pinned) {
      pinned = news.connection.proxy
        ? await scanHostKeyViaProxy(news.connection)
        : await scanHostKey(news.connection.host, Number(news.connection.port));
    }
    const inputs = pinned
      ? { ...news, pinnedHostKey: pinned, connection: { ...news.connection, hostKey: pinned } }
      : news;
    rememberConnection(inputs.connection);
    return { inputs };
  },
  async diff(_id: string, olds: ConnectionInputs, news: ConnectionInputs) {
    return {
      changes:
        hasUnknown(news.connection) ||
        connectionChanged(olds.connection, news.connection) ||
        (olds.providerVersion ?? 1) !== news.providerVersion,
    };
  },
  async create(inputs: ConnectionInputs) {
    return { id: inputs.connection.ref ?? "host", outs: inputs };
  },
  async update(_id: string, _olds: ConnectionInputs, news: ConnectionInputs) {
    return { outs: news };
  },
};

/**
 * How the host is reached in this program run, registered before every
 * resource on the host (they take `connection` from here). No remote work:
 * its provider records the connection for the other providers' read and
 * delete (./follow.ts), and its state says where the host was last reached.
 */
export class HostConnection extends pulumi.dynamic.Resource {
  declare public readonly connection: pulumi.Output<SshConnection>;
  constructor(
    name: string,
    args: { connection: pulumi.Input<SshConnection> },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      hostConnectionProvider,
      name,
      { connection: pulumi.secret(args.connection), providerVersion: PROVIDER_VERSION },
      { ...opts, additionalSecretOutputs: ["connection"] },
      "apphost",
      "HostConnection",
    );
  }
}

// ---------------------------------------------------------------- HostScript

interface ScriptInputs {
  connection: SshConnection;
  /** Run as root on create, and again when it, stdin or the connection changes */
  create: string;
  /** Run as root on destroy */
  delete?: string;
  stdin?: string;
  description: string;
  timeoutSeconds: number;
  providerVersion: number;
}

/**
 * A host step run by OpenSSH: what `hostStep` is for a host that only
 * OpenSSH reaches (EC2 Instance Connect, see `HostStepArgs.openSshOnly`).
 * The same contract as @pulumi/command's `remote.Command`: `create` on create
 * and whenever it, its stdin or the connection changes; `delete` on destroy,
 * at the host's current address; nothing on an unchanged `up`. Its output is
 * not kept: only an error carries its tail, with every secret blanked out.
 */
/** The step's create script must run again: it, its stdin or the connection changed. */
function mustRerun(olds: ScriptInputs, news: ScriptInputs): boolean {
  return (
    olds.create !== news.create ||
    (olds.stdin ?? "") !== (news.stdin ?? "") ||
    connectionChanged(olds.connection, news.connection)
  );
}

function runCreate(inputs: ScriptInputs): Promise<unknown> {
  return runRemote(inputs.connection, inputs.create, {
    what: inputs.description,
    stdin: inputs.stdin,
    secrets: inputs.stdin ? [inputs.stdin] : [],
    timeoutSeconds: inputs.timeoutSeconds,
  });
}

export const hostScriptProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: ScriptInputs, news: ScriptInputs) {
    return {
      changes:
        hasUnknown(news) ||
        mustRerun(olds, news) ||
        (olds.delete ?? "") !== (news.delete ?? "") ||
        (olds.providerVersion ?? 1) !== news.providerVersion,
    };
  },
  async create(inputs: ScriptInputs) {
    await runCreate(inputs);
    return { id: inputs.description.replace(/[^A-Za-z0-9.-]+/g, "-"), outs: inputs };
  },
  async update(_id: string, olds: ScriptInputs, news: ScriptInputs) {
    if (mustRerun(olds, news)) await runCreate(news);
    return { outs: news };
  },
  async delete(_id: string, olds: ScriptInputs) {
    if (!olds.delete) return;
    await runRemote(currentConnection(olds.connection), olds.delete, {
      what: `${olds.description} (delete)`,
      timeoutSeconds: olds.timeoutSeconds,
    });
  },
};

export class HostScript extends pulumi.dynamic.Resource {
  constructor(
    name: string,
    args: {
      connection: pulumi.Input<SshConnection>;
      create: pulumi.Input<string>;
      delete?: pulumi.Input<string>;
      stdin?: pulumi.Input<string>;
      description: string;
      timeoutSeconds: number;
    },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      hostScriptProvider,
      name,
      {
        ...args,
        connection: pulumi.secret(args.connection),
        ...(args.stdin !== undefined ? { stdin: pulumi.secret(args.stdin) } : {}),
        providerVersion: PROVIDER_VERSION,
      },
      { ...opts, additionalSecretOutputs: ["connection", "stdin"] },
      "apphost",
      "HostScript",
    );
  }
}
