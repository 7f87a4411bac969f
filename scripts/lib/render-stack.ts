/**
 * `npm run render`: every file a stack would put on its host, from the real
 * program run under `pulumi.runtime.setMocks`, with no credentials, no state
 * backend and no host.
 *
 * The pure parts (arguments, turning a stack file into the runtime config
 * with placeholders for every secret, the mocks, picking the files out of the
 * registered resources, writing them) are exported for tests. `renderStack`
 * sets the process-global mocks and config, so renders in one process run one
 * after another, each replacing the last one's mocks and config. `runRender`
 * is the command (scripts/render.ts) without its process: its output and exit
 * status for one command line.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseArgs } from "util";
import * as yaml from "js-yaml";
import * as pulumi from "@pulumi/pulumi";
import * as settings from "@pulumi/pulumi/runtime/settings";
import * as runtimeState from "@pulumi/pulumi/runtime/state";
import * as sshpk from "sshpk";
import { ConfigError } from "../../components/config";

/** Exit status when the stack's configuration is invalid (apphost's ConfigError). */
export const EXIT_CONFIG = 1;
/** Exit status when nothing could be rendered: usage, the stack file, the output directory, a crash. */
export const EXIT_CANNOT_RENDER = 2;

export const HOST_FILE_TYPE = "pulumi-nodejs:dynamic/apphost:HostFile";
/**
 * Scripts run on the host for their effect: @pulumi/command's remote Command,
 * or apphost's HostScript where only OpenSSH reaches the host (EC2 Instance Connect).
 */
export const COMMAND_TYPES = ["command:remote:Command", "pulumi-nodejs:dynamic/apphost:HostScript"];
/** Where the commands' create scripts go under the output directory (not host paths). */
export const COMMANDS_DIR = ".apphost/commands";
/** Where `npm run render` lists the URN of every resource the stack declares. */
export const RESOURCES_FILE = ".apphost/resources.txt";

/** The placeholder of a `secure:` value; `apphost:secretEnv.NAME` is `<secret:NAME>`. */
export function secretPlaceholder(name: string): string {
  return `<secret:${name}>`;
}

/** The placeholder of a value a resource generates at deploy time (SECRET_KEY: `<generated:secret-key>`). */
export function generatedPlaceholder(resourceName: string): string {
  return `<generated:${resourceName}>`;
}

/** Thrown for a usage, stack-file or output-directory problem: exit EXIT_CANNOT_RENDER. */
export class RenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RenderError";
  }
}

// ------------------------------------------------------------------ arguments

export const RENDER_USAGE = [
  "usage: npm run render -- --stack <name> --out <dir> [--config-file <path>] [--force]",
  "",
  "Writes every file the stack would put on its host (proxy config, systemd units, env file,",
  "release script, logrotate, tmpfiles, backup script, ...) under <dir> at its host path",
  "(<dir>/etc/caddy/Caddyfile), with its declared mode, and each host command's script under",
  `<dir>/${COMMANDS_DIR}/<resource>.sh. It runs the program under mocks: no credentials, no state`,
  "backend, no host. Secrets are placeholders: <secret:NAME> for secure: values, <generated:NAME>",
  "for values generated at deploy time; the SSH key is a throwaway one, never written.",
  "",
  "  --stack, -s <name>    the stack; its config is Pulumi.<name>.yaml in the repository root",
  "  --out, -o <dir>       created when missing; it must be empty unless --force",
  "  --config-file <path>  read this stack file instead of Pulumi.<name>.yaml (as drift, doctor do)",
  "  --force               write into a non-empty <dir>: files at the same paths are replaced,",
  "                        other files are left alone",
  "",
  "Exit: 0 written, 1 the stack's configuration is invalid, 2 could not render.",
].join("\n");

export interface RenderArgs {
  stack: string;
  out: string;
  configFile?: string;
  force: boolean;
  help: boolean;
}

/** `--stack <name> --out <dir> [--config-file <path>] [--force]`; throws RenderError with the usage. */
export function parseRenderArgs(argv: string[]): RenderArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        stack: { type: "string", short: "s" },
        out: { type: "string", short: "o" },
        "config-file": { type: "string" },
        force: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    throw new RenderError(`render: ${(e as Error).message}\n${RENDER_USAGE}`);
  }
  const help = values.help === true;
  const errors: string[] = [];
  const stack = values.stack as string | undefined;
  const out = values.out as string | undefined;
  if (!help) {
    if (!stack) errors.push("--stack <name> is required (local, staging or prod)");
    else if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(stack))
      errors.push(`--stack: "${stack}" is not a stack name`);
    if (!out) errors.push("--out <dir> is required");
    if (values["config-file"] === "") errors.push("--config-file needs a path");
  }
  if (errors.length > 0) throw new RenderError(`render: ${errors.join("; ")}\n${RENDER_USAGE}`);
  return {
    stack: stack ?? "",
    out: out ?? "",
    ...(values["config-file"] ? { configFile: values["config-file"] as string } : {}),
    force: values.force === true,
    help,
  };
}

// ------------------------------------------------------------------ config

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The `config:` map of a stack file. Throws RenderError naming the file when it is missing or not YAML. */
export function readStackFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "ENOENT") {
      throw new RenderError(`render: cannot read the stack file ${file} (${code ?? (e as Error).message})`);
    }
    const dir = path.dirname(file);
    const stacks = (fs.existsSync(dir) ? fs.readdirSync(dir) : [])
      .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .sort();
    throw new RenderError(
      `render: no stack file ${file}` +
        (stacks.length > 0 ? ` (stack files there: ${stacks.join(", ")})` : ""),
    );
  }
  let doc: unknown;
  try {
    doc = yaml.load(text);
  } catch (e) {
    throw new RenderError(`render: ${file} is not valid YAML: ${(e as Error).message}`);
  }
  if (doc === undefined || doc === null) return {};
  if (!isObject(doc) || (doc.config !== undefined && doc.config !== null && !isObject(doc.config))) {
    throw new RenderError(`render: ${file}: expected a mapping with a "config:" mapping`);
  }
  return (doc.config as Record<string, unknown> | undefined) ?? {};
}

/** The project's name and its config defaults (`<project>:<key>` -> default) from Pulumi.yaml. */
export function readProject(root: string): { name: string; defaults: Record<string, unknown> } {
  const file = path.join(root, "Pulumi.yaml");
  const doc = yaml.load(fs.readFileSync(file, "utf8"));
  if (!isObject(doc) || typeof doc.name !== "string") throw new RenderError(`render: ${file} has no name`);
  const defaults: Record<string, unknown> = {};
  for (const [key, decl] of Object.entries(isObject(doc.config) ? doc.config : {})) {
    if (isObject(decl) && "default" in decl)
      defaults[key.includes(":") ? key : `${doc.name}:${key}`] = decl.default;
  }
  return { name: doc.name, defaults };
}

export interface RuntimeConfig {
  /** What `pulumi.runtime.setAllConfig` takes: `ns:key` -> string (objects JSON-encoded) */
  config: Record<string, string>;
  /** Keys held as secrets: every one that had a `secure:` value, and the deploy key */
  secretKeys: string[];
  /** Every placeholder put in, in the order found */
  placeholders: string[];
}

/** `{secure: "v1:..."}`, what `pulumi config set --secret` writes. */
function isSecure(v: unknown): v is { secure: string } {
  return isObject(v) && Object.keys(v).length === 1 && typeof v.secure === "string";
}

/**
 * A stack file's config as the program would see it, without decrypting
 * anything: project defaults for unset keys, every `secure:` value a
 * placeholder (`<secret:NAME>` for `apphost:secretEnv.NAME`, else
 * `<secret:ns:key.path>`), and the deploy key (`apphost:sshPrivateKey`, or
 * the file `apphost:sshPrivateKeyFile` names) replaced by a throwaway key, and
 * a valid `apphost:host.sshPublicKey` by that key's public line (see
 * throwawayDeployKey).
 * A stack that sets no key keeps none, so the program reports it missing.
 */
export function runtimeConfig(
  stackConfig: Record<string, unknown>,
  project: { name: string; defaults: Record<string, unknown> },
  deployKey: () => ThrowawayKey,
): RuntimeConfig {
  const ns = project.name;
  const placeholders: string[] = [];
  const secretKeys = new Set<string>();
  const values: Record<string, unknown> = {};
  for (const [rawKey, value] of Object.entries(stackConfig)) {
    const key = rawKey.includes(":") ? rawKey : `${ns}:${rawKey}`;
    const hide = (v: unknown, at: string[]): unknown => {
      if (isSecure(v)) {
        secretKeys.add(key);
        const name = key === `${ns}:secretEnv` && at.length === 1 ? at[0] : [key, ...at].join(".");
        const placeholder = secretPlaceholder(name);
        placeholders.push(placeholder);
        // The alert webhook must look like a URL to pass validation; it lands only in its curl config.
        if (key === `${ns}:alerts` && at.join(".") === "webhook")
          return `https://secret.invalid/${placeholder}`;
        return placeholder;
      }
      if (Array.isArray(v)) return v.map((item, i) => hide(item, [...at, String(i)]));
      if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, hide(x, [...at, k])]));
      return v;
    };
    values[key] = hide(value, []);
  }
  for (const [key, value] of Object.entries(project.defaults)) {
    if (!(key in values)) values[key] = value;
  }

  const keyKey = `${ns}:sshPrivateKey`;
  const fileKey = `${ns}:sshPrivateKeyFile`;
  const isSet = (v: unknown) => v !== undefined && v !== null && v !== "";
  if (isSet(values[keyKey]) || isSet(values[fileKey])) {
    const key = deployKey();
    const host = values[`${ns}:host`];
    if (isObject(host) && typeof host.sshPublicKey === "string" && isPublicKeyLine(host.sshPublicKey)) {
      values[`${ns}:host`] = { ...host, sshPublicKey: key.publicKey };
    }
    values[keyKey] = key.privateKey;
    values[fileKey] = "";
    secretKeys.add(keyKey);
  }

  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    config[key] = typeof value === "string" ? value : JSON.stringify(value as Json);
  }
  return { config, secretKeys: [...secretKeys].sort(), placeholders };
}

// ------------------------------------------------------------------ the throwaway key

/** An OpenSSH public key line whose blob parses (an invalid one is left for the program to report). */
function isPublicKeyLine(line: string): boolean {
  try {
    sshpk.parseKey(line, "ssh");
    return true;
  } catch {
    return false;
  }
}

export interface ThrowawayKey {
  /** The key file, OpenSSH's container, unencrypted. */
  privateKey: string;
  /** Its public line (`ssh-ed25519 AAAA... apphost-render-throwaway`). */
  publicKey: string;
}

/**
 * A throwaway Ed25519 key, generated in memory for one run and never written
 * anywhere. It stands in for the stack's deploy key, which is encrypted
 * (`secure:`) or a file that may not exist here.
 *
 * apphost checks that an ec2 stack's `apphost:host.sshPublicKey` is the
 * public half of its deploy key; the real key cannot be read here, so the
 * configured public key is replaced by the throwaway's (it lands in no host
 * file). Nothing connects with the key under mocks.
 */
export function throwawayDeployKey(): ThrowawayKey {
  const key = sshpk.generatePrivateKey("ed25519");
  key.comment = "apphost-render-throwaway";
  return { privateKey: key.toString("ssh"), publicKey: key.toPublic().toString("ssh") };
}

// ------------------------------------------------------------------ mocks

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

function pem(label: string, body: string): string {
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/**
 * Mocks that record every registered resource into `records` and fill in
 * what the cloud would compute (addresses, ids, names) with documentation
 * values, and what is generated or issued at deploy time (keys,
 * certificates, passwords) with placeholders, never key material.
 */
export function renderMocks(records: Registered[], opts: { region?: string } = {}): pulumi.runtime.Mocks {
  const region = opts.region ?? "us-east-1";
  return {
    call(args: pulumi.runtime.MockCallArgs) {
      const inputs = args.inputs as Record<string, unknown>;
      switch (args.token) {
        case "aws:ec2/getAmi:getAmi": {
          const filters = (inputs.filters ?? []) as Array<{ name: string; values: string[] }>;
          const arch = filters.find((f) => f.name === "architecture")?.values[0] ?? "x86_64";
          const pattern = filters.find((f) => f.name === "name")?.values[0] ?? "";
          return { id: `ami-0${arch}0000000000`, architecture: arch, name: pattern.replace("*", "latest") };
        }
        case "aws:ec2/getVpc:getVpc":
          return { id: "vpc-0default0000000000", default: true, cidrBlock: "172.31.0.0/16" };
        case "aws:ec2/getSubnet:getSubnet":
          return { id: inputs.id, vpcId: "vpc-0subnet00000000000" };
        case "aws:index/getRegion:getRegion":
          return { id: region, name: region, region };
        case "aws:index/getCallerIdentity:getCallerIdentity":
          return { id: "000000000000", accountId: "000000000000", arn: "arn:aws:iam::000000000000:root" };
        case "cloudflare:index/getZone:getZone": {
          const filter = inputs.filter as { name?: string } | undefined;
          const zoneId = "00000000000000000000000000000000";
          return { id: zoneId, zoneId, name: filter?.name, status: "active" };
        }
        default:
          return inputs;
      }
    },
    newResource(args: pulumi.runtime.MockResourceArgs) {
      const inputs = args.inputs as Record<string, unknown>;
      // Secret inputs (the env file, the origin key) arrive wrapped; record them plain.
      const plain = Object.fromEntries(
        Object.entries(inputs).map(([k, v]) => [k, pulumi.runtime.unwrapRpcSecret(v)]),
      );
      records.push({ type: args.type, name: args.name, inputs: plain });
      const state: Record<string, unknown> = { ...inputs };
      let id = `${args.name}-id`;
      switch (args.type) {
        case "aws:ec2/instance:Instance":
          id = "i-00000000000000000";
          state.publicIp = "203.0.113.10";
          state.ipv6Addresses = inputs.ipv6AddressCount ? ["2001:db8::10"] : [];
          break;
        case "aws:ec2/eip:Eip":
          id = "eipalloc-00000000000000000";
          state.allocationId = id;
          state.publicIp = "203.0.113.20";
          break;
        case "aws:ec2/keyPair:KeyPair":
          state.keyName = `${args.name}-0000000`;
          break;
        case "aws:ec2/securityGroup:SecurityGroup":
          id = "sg-00000000000000000";
          break;
        case "aws:s3/bucket:Bucket": {
          // AWS appends a unique suffix to bucketPrefix.
          const bucket = (inputs.bucket as string) ?? `${inputs.bucketPrefix as string}unique-suffix`;
          id = bucket;
          state.bucket = bucket;
          state.arn = `arn:aws:s3:::${bucket}`;
          state.region = (inputs.region as string) ?? region;
          break;
        }
        case "aws:iam/role:Role":
          state.name = `${args.name}-0000000`;
          id = state.name as string;
          state.arn = `arn:aws:iam::000000000000:role/${id}`;
          break;
        case "aws:iam/instanceProfile:InstanceProfile":
          state.name = `${args.name}-0000000`;
          id = state.name as string;
          state.arn = `arn:aws:iam::000000000000:instance-profile/${id}`;
          break;
        case "tls:index/privateKey:PrivateKey":
          state.privateKeyPem = pem("PRIVATE KEY", generatedPlaceholder(args.name));
          state.privateKeyPemPkcs8 = state.privateKeyPem;
          state.privateKeyOpenssh = pem("OPENSSH PRIVATE KEY", generatedPlaceholder(args.name));
          state.publicKeyPem = pem("PUBLIC KEY", generatedPlaceholder(args.name));
          state.publicKeyOpenssh = `ssh-ed25519 ${generatedPlaceholder(args.name)}\n`;
          break;
        case "tls:index/certRequest:CertRequest":
          state.certRequestPem = pem("CERTIFICATE REQUEST", generatedPlaceholder(args.name));
          break;
        case "tls:index/selfSignedCert:SelfSignedCert":
        case "tls:index/locallySignedCert:LocallySignedCert":
          state.certPem = pem("CERTIFICATE", generatedPlaceholder(args.name));
          break;
        case "cloudflare:index/originCaCertificate:OriginCaCertificate": {
          state.certificate = pem("CERTIFICATE", `<issued:${args.name}>`);
          const days = typeof inputs.requestedValidity === "number" ? inputs.requestedValidity : 365;
          state.expiresOn = new Date(Date.now() + days * 86400_000).toISOString().replace(/\.\d+Z$/, "Z");
          break;
        }
        case "aws:rds/instance:Instance":
          // Known once AWS created it: DATABASE_URL shows where it goes.
          state.address = `<endpoint:${args.name}>`;
          break;
        case "random:index/randomPassword:RandomPassword":
        case "random:index/randomString:RandomString":
          state.result = generatedPlaceholder(args.name);
          state.bcryptHash = generatedPlaceholder(args.name);
          break;
        case "random:index/randomId:RandomId":
          state.hex = "00000000";
          state.b64Url = "AAAAAA";
          state.b64Std = "AAAAAA==";
          state.dec = "0";
          break;
        case "pulumi-nodejs:dynamic/apphost:Release":
          state.releaseId = "<release-id>";
          state.live = "<release-id>";
          state.phaseSeconds = [];
          break;
      }
      return { id, state };
    },
  };
}

// ------------------------------------------------------------------ files

export interface RenderedFile {
  /** The resource's name (`app-site`), or the command's */
  resource: string;
  /** Absolute host path, or `COMMANDS_DIR/<resource>.sh` for a command */
  path: string;
  content: string;
  /** Four octal digits, `0644` */
  mode: string;
  owner: string;
  group: string;
}

function fourDigits(mode: string): string {
  return mode.length === 3 ? `0${mode}` : mode;
}

/**
 * Every HostFile the program declared, sorted by path. Two resources with
 * one path are an error unless they agree.
 */
export function hostFilesOf(records: Registered[]): RenderedFile[] {
  const byPath = new Map<string, RenderedFile>();
  for (const r of records.filter((x) => x.type === HOST_FILE_TYPE)) {
    const { path: p, content, mode, owner, group } = r.inputs;
    if (typeof p !== "string" || !p.startsWith("/") || typeof content !== "string") {
      throw new Error(`HostFile ${r.name}: no absolute path or no content (path ${JSON.stringify(p)})`);
    }
    const file: RenderedFile = {
      resource: r.name,
      path: p,
      content,
      mode: fourDigits(typeof mode === "string" ? mode : "0644"),
      owner: typeof owner === "string" ? owner : "root",
      group: typeof group === "string" ? group : "root",
    };
    const seen = byPath.get(p);
    if (seen && (seen.content !== file.content || seen.mode !== file.mode)) {
      throw new Error(
        `HostFile ${seen.resource} and ${r.name} both write ${p}, with different content or mode`,
      );
    }
    byPath.set(p, file);
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * A command line that is one `... bash -c '<script>'` (apphost's run-as-root
 * wrapper) as the script itself, after a comment with the wrapper; any other
 * command line as it is.
 */
export function unwrapBashC(line: string): string {
  const m = /^(.*?\bbash -c )'((?:[^']|'\\'')*)'\s*$/s.exec(line);
  if (!m) return line;
  const script = m[2].replace(/'\\''/g, "'");
  return `# run as: ${m[1]}'<this script>'\n${script}${script.endsWith("\n") ? "" : "\n"}`;
}

/** The create script of every host command, as `COMMANDS_DIR/<resource>.sh`, sorted by name. */
export function commandScriptsOf(records: Registered[]): RenderedFile[] {
  return records
    .filter((r) => COMMAND_TYPES.includes(r.type) && typeof r.inputs.create === "string")
    .map((r) => ({
      resource: r.name,
      path: `${COMMANDS_DIR}/${r.name}.sh`,
      content: unwrapBashC(r.inputs.create as string),
      mode: "0644",
      owner: "root",
      group: "root",
    }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Checks the output directory before anything runs, without creating it:
 * missing is fine (writeFiles creates it), non-empty is refused unless `force`.
 */
export function checkOutDir(out: string, force: boolean): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    throw new RenderError(
      `render: --out ${out}: ${code === "ENOTDIR" ? "not a directory" : (e as Error).message}`,
    );
  }
  if (entries.length > 0 && !force) {
    throw new RenderError(
      `render: --out ${out} is not empty; pass --force to write into it ` +
        "(files at the same paths are replaced, others are left alone), or name a new directory",
    );
  }
}

/** Writes each file under `out` at its path with its mode; returns one line per file. */
export function writeFiles(out: string, files: RenderedFile[]): string[] {
  const root = path.resolve(out);
  return files.map((f) => {
    const rel = f.path.replace(/^\/+/, "");
    const target = path.resolve(root, rel);
    if (!target.startsWith(root + path.sep)) throw new Error(`${f.resource}: path ${f.path} leaves --out`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.rmSync(target, { force: true });
    const mode = parseInt(f.mode, 8);
    fs.writeFileSync(target, f.content, { mode });
    fs.chmodSync(target, mode); // the umask may have taken bits away
    return `wrote ${rel} (${f.mode} ${f.owner}:${f.group})`;
  });
}

// ------------------------------------------------------------------ the run

export interface RenderOptions {
  /** The repository root: Pulumi.yaml, the stack files, program.ts */
  root: string;
  stack: string;
  /** The stack file to read instead of `<root>/Pulumi.<stack>.yaml` */
  configFile?: string;
}

export interface RenderResult {
  stackFile: string;
  files: RenderedFile[];
  commands: RenderedFile[];
  placeholders: string[];
  /** The throwaway deploy key, so the caller can make sure it reached no file */
  deployKey?: string;
  /**
   * The URN of every resource the program registered, sorted. Pulumi's mocks
   * name only the nearest parent's type in a child's URN (`App$apphost:HostFile`,
   * where the engine writes the whole chain), so renames and moves show, and
   * the list is a pin, not the engine's exact URNs.
   */
  resources: string[];
}

/**
 * Runs the program for the stack under mocks and returns the files it
 * declares. The runtime's state (mocks, config, the stack, its promises) is
 * the run's own, as Pulumi's automation server gives each program it runs;
 * APPHOST_CACHE is process-global: one run at a time in a process. Throws
 * RenderError for the stack file, and whatever the program throws (apphost's
 * ConfigError for an invalid configuration).
 */
export function renderStack(opts: RenderOptions): Promise<RenderResult> {
  return withLocalStorage(() => renderStackHere(opts));
}

/**
 * Runs `run` with a runtime state of its own (mocks, config, the stack, its promises), as Pulumi's
 * automation server runs each program: @pulumi/pulumi's withLocalStorage, marked internal, so not in
 * its typings.
 */
export const withLocalStorage = (runtimeState as unknown as { withLocalStorage<T>(run: () => T): T })
  .withLocalStorage;

// The module a dynamic resource's constructor requires to serialize its provider's code (`__provider`), looked up
// as each provider is first serialized in a process.
const closure = require("@pulumi/pulumi/runtime/closure/serializeClosure") as {
  serializeFunction: typeof pulumi.runtime.serializeFunction;
};

/**
 * What a render's dynamic resources carry as their provider's code: only the state keeps that code, a render writes
 * none of it, and serializing apphost's five providers costs about a second of CPU.
 */
const RENDER_PROVIDER_CODE = "exports.handler = undefined; // not serialized by npm run render";

async function renderStackHere(opts: RenderOptions): Promise<RenderResult> {
  const stackFile = path.resolve(opts.configFile ?? path.join(opts.root, `Pulumi.${opts.stack}.yaml`));
  const stackConfig = readStackFile(stackFile);
  const project = readProject(opts.root);
  let deployKey: string | undefined;
  const runtime = runtimeConfig(stackConfig, project, () => {
    const key = throwawayDeployKey();
    deployKey = key.privateKey;
    return key;
  });

  const records: Registered[] = [];
  let resources: string[] = [];
  const region = runtime.config["aws:region"];
  pulumi.runtime.setMocks(renderMocks(records, region ? { region } : {}), project.name, opts.stack, false);
  pulumi.runtime.setAllConfig(runtime.config, runtime.secretKeys);

  // The program builds the app's artifact into APPHOST_CACHE; keep it out of the user's cache.
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-render-"));
  const savedCache = process.env.APPHOST_CACHE;
  process.env.APPHOST_CACHE = cache;
  const serializeFunction = closure.serializeFunction;
  closure.serializeFunction = async () => ({
    text: RENDER_PROVIDER_CODE,
    exportName: "handler",
    containsSecrets: false,
  });
  try {
    const { program } = require(path.join(opts.root, "program")) as typeof import("../../program");
    await pulumi.runtime.runInPulumiStack(program);
    await pulumi.runtime.disconnect();
    const monitor = settings.getMonitor() as unknown as { getRegisteredResources(): Map<string, unknown> };
    resources = [...monitor.getRegisteredResources().keys()].sort();
  } finally {
    closure.serializeFunction = serializeFunction;
    if (savedCache === undefined) delete process.env.APPHOST_CACHE;
    else process.env.APPHOST_CACHE = savedCache;
    fs.rmSync(cache, { recursive: true, force: true });
  }
  return {
    stackFile,
    files: hostFilesOf(records),
    commands: commandScriptsOf(records),
    placeholders: runtime.placeholders,
    ...(deployKey ? { deployKey } : {}),
    resources,
  };
}

// ------------------------------------------------------------------ the command

/** Where the command's output goes: a line of standard output, a message for standard error. */
export interface RenderPrint {
  line(text: string): void;
  error(text: string): void;
}

/** A problem with the stack's settings, as the program reports it (`apphost:app.source: ...`). */
function isConfigProblem(e: unknown): e is Error {
  return e instanceof ConfigError || (e instanceof Error && /^apphost:[A-Za-z]/.test(e.message));
}

/** Relative to the working directory when the file is under it. */
function shortPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

/**
 * The exit status for what a render threw, its message printed: EXIT_CANNOT_RENDER
 * for a RenderError or a crash (with its stack), EXIT_CONFIG for the stack's settings.
 */
export function renderFailure(e: unknown, print: RenderPrint): number {
  if (e instanceof RenderError) {
    print.error(e.message);
    return EXIT_CANNOT_RENDER;
  }
  if (isConfigProblem(e)) {
    print.error(e.message);
    return EXIT_CONFIG;
  }
  print.error(`render: could not render: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  return EXIT_CANNOT_RENDER;
}

/**
 * `npm run render -- <argv>` for the repository at `root`: renders, writes,
 * prints a line per file and a summary, and returns the exit status. Never
 * throws: a failure is printed and its status returned (renderFailure).
 */
export async function runRender(root: string, argv: string[], print: RenderPrint): Promise<number> {
  try {
    const args = parseRenderArgs(argv);
    if (args.help) {
      print.line(RENDER_USAGE);
      return 0;
    }
    const out = path.resolve(args.out);
    checkOutDir(out, args.force);

    const result = await renderStack({
      root,
      stack: args.stack,
      ...(args.configFile ? { configFile: args.configFile } : {}),
    });
    const all = [...result.files, ...result.commands];
    // The throwaway key only ever backs the SSH connection; make sure no file carries it. Its
    // first base64 line is the container's header (the same in every key), the rest is its own.
    const keyLines = (result.deployKey ?? "")
      .split("\n")
      .slice(2, -2)
      .filter((l) => l.length >= 16);
    const leak = all.find((f) => keyLines.some((l) => f.content.includes(l)));
    if (leak) throw new Error(`${leak.path} would contain the throwaway deploy key; nothing was written`);

    const resources: RenderedFile = {
      resource: "render",
      path: RESOURCES_FILE,
      content: result.resources.join("\n") + "\n",
      mode: "0644",
      owner: "root",
      group: "root",
    };
    for (const line of writeFiles(out, [...all, resources])) print.line(line);
    const placeholders = [
      ...new Set(all.flatMap((f) => f.content.match(/<(?:secret|generated|issued):[^>\s]+>/g) ?? [])),
    ];
    print.line(
      `render: ${args.stack}: ${result.files.length} host files and ${result.commands.length} command scripts ` +
        `from ${shortPath(result.stackFile)} in ${out}; ` +
        (placeholders.length > 0 ? `placeholders: ${placeholders.sort().join(", ")}; ` : "") +
        "owners are not applied; nothing was deployed",
    );
    return 0;
  } catch (e) {
    return renderFailure(e, print);
  }
}
