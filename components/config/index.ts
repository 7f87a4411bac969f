/**
 * Reads the stack's `apphost:*` config and hands it to the pure parser.
 *
 * This is the only place that touches `pulumi.Config`: everything else takes
 * the normalized `StackConfig`. Secrets are read here too, but only facts about
 * them (is the key set, its format, its public half) reach the parser, so a
 * secret can never be echoed in an error message.
 */
import * as fs from "fs";
import * as os from "os";
import * as pulumi from "@pulumi/pulumi";
import { readAppFiles } from "./appfiles";
import { DEV_RESET_SWITCHES, isSwitchOn, localCacheDir } from "./defaults";
import type { StackConfig } from "./types";
import {
  inspectAlerts,
  inspectDatabaseUrl,
  inspectPrivateKey,
  parseStackConfig,
  SECRET_KEYS,
  type SecretFacts,
} from "./validate";
import { SECTIONS, typeName } from "./schema";

export * from "./types";
export {
  inspectAlerts,
  inspectDatabaseUrl,
  ConfigError,
  inspectPrivateKey,
  parseStackConfig,
  SECRET_KEYS,
} from "./validate";
export { SECTIONS, type Section } from "./schema";
export { readAppFiles } from "./appfiles";
export type { AppFiles, ConfigIssue, ParseContext, PrivateKeyInfo, SecretFacts } from "./validate";

/** The config namespace: the Pulumi project name in Pulumi.yaml. */
export const NAMESPACE = "apphost";

export interface LoadedStackConfig {
  config: StackConfig;
  /** `apphost:sshPrivateKey`, always a secret Output */
  sshPrivateKey: pulumi.Output<string>;
  /** `apphost:secretEnv` with every value as a string, always a secret Output; `{}` when unset */
  secretEnv: pulumi.Output<Record<string, string>>;
  /** `apphost:jumpPrivateKey`, the jump host's key when it is not the deploy key; a secret Output, or undefined */
  jumpPrivateKey?: pulumi.Output<string>;
  /** `apphost:alerts.webhook`, a secret Output, when alerts are on */
  alertWebhook?: pulumi.Output<string>;
  /** `apphost:databaseUrl` (database.kind external), a secret Output, `postgres://` spelled `postgresql://` */
  databaseUrl?: pulumi.Output<string>;
}

/**
 * Loads and validates the whole stack configuration. Throws one `ConfigError`
 * listing every problem, before any resource is declared.
 */
export function loadStackConfig(projectDir = process.cwd()): LoadedStackConfig {
  const cfg = new pulumi.Config(NAMESPACE);
  const raw: Record<string, unknown> = {};
  for (const section of SECTIONS) {
    raw[section] = readObject(cfg, section);
  }
  // Report typos of whole sections (`apphost:databse`) instead of silently ignoring them.
  markUnknownKeys(raw, Object.keys(pulumi.runtime.allConfig()), NAMESPACE);

  const config = parseStackConfig(raw, {
    project: pulumi.getProject(),
    stack: pulumi.getStack(),
    secrets: secretFacts(),
    appFiles: readAppFiles(raw.app, projectDir),
  });

  const keyFile = cfg.get(KEY_FILE) || undefined;
  const sshPrivateKey = keyFile ? pulumi.secret(readKeyFile(keyFile)) : cfg.requireSecret("sshPrivateKey");
  const secretEnv = (cfg.getSecretObject<Record<string, unknown>>("secretEnv") ?? pulumi.secret({})).apply(
    (env) => Object.fromEntries(Object.entries(env ?? {}).map(([name, value]) => [name, String(value)])),
  );
  // Pulumi.yaml's default is "": unset and empty both mean the deploy key.
  const jumpSet = (pulumi.runtime.getConfig(`${NAMESPACE}:jumpPrivateKey`) ?? "").trim() !== "";
  const jumpPrivateKey = jumpSet ? cfg.requireSecret("jumpPrivateKey") : undefined;
  const alertWebhook = config.alerts.enabled
    ? cfg.requireSecretObject<{ webhook: string }>("alerts").apply((a) => a.webhook)
    : undefined;
  const databaseUrl =
    config.database.kind === "external"
      ? cfg.requireSecret("databaseUrl").apply((u) => u.trim().replace(/^postgres:\/\//, "postgresql://"))
      : undefined;
  return {
    config,
    sshPrivateKey,
    secretEnv,
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(jumpPrivateKey ? { jumpPrivateKey } : {}),
    ...(alertWebhook ? { alertWebhook } : {}),
  };
}

/**
 * `apphost:sshPrivateKeyFile`: a path to the deploy key instead of the key
 * itself (`~` expands). Meant for the local stack, whose key the sandbox
 * script generates; the content is read at run time and only ever held as a
 * secret Output.
 */
export const KEY_FILE = "sshPrivateKeyFile";

/**
 * Sets `raw[key] = true` for every `<namespace>:<key>` in `fullKeys` that is
 * not a section already in `raw`, a secret or the key file, so the parser
 * names it as unknown (`apphost:databse`) with every other problem. The
 * value is irrelevant: the parser only names the key.
 */
export function markUnknownKeys(
  raw: Record<string, unknown>,
  fullKeys: Iterable<string>,
  namespace: string,
): void {
  for (const fullKey of fullKeys) {
    const [ns, key] = fullKey.split(":", 2);
    if (
      ns === namespace &&
      key &&
      !(key in raw) &&
      !(SECRET_KEYS as readonly string[]).includes(key) &&
      key !== KEY_FILE
    ) {
      raw[key] = true;
    }
  }
}

/**
 * The key file's path: `~/.cache/apphost/...` (what Pulumi.local.yaml names, where `scripts/sandbox up`
 * writes its key by default) is read from the apphost cache the sandbox script used (localCacheDir:
 * APPHOST_CACHE or XDG_CACHE_HOME when set); any other `~` is the home directory.
 */
export function keyFilePath(file: string, env: NodeJS.ProcessEnv = process.env, home = os.homedir()): string {
  const cache = /^~\/\.cache\/apphost(?=\/|$)/;
  if (cache.test(file)) return file.replace(cache, localCacheDir(env, home));
  return file.replace(/^~(?=\/|$)/, home);
}

function readKeyFile(file: string): string {
  const expanded = keyFilePath(file);
  try {
    return fs.readFileSync(expanded, "utf8");
  } catch (e) {
    throw new Error(
      `apphost:${KEY_FILE}: cannot read "${file}"${expanded === file ? "" : ` (${expanded})`} (${(e as NodeJS.ErrnoException).code}); ` +
        "expected the path of an OpenSSH private key, e.g. the one `scripts/sandbox up` writes",
    );
  }
}

/**
 * `getObject` throws on a value that is not JSON (`apphost:host: ec2`); return
 * the plain string instead so the parser can report it with all the others.
 */
function readObject(cfg: pulumi.Config, key: string): unknown {
  try {
    return cfg.getObject<unknown>(key);
  } catch {
    return cfg.get(key);
  }
}

/**
 * Inspects the secrets in memory and returns only facts about them. The raw
 * runtime accessor is used because `Config.get` on a secret is slated to warn
 * (pulumi/pulumi#7127); nothing read here is stored or logged.
 *
 * A plaintext private key is refused earlier, by the CLI itself: Pulumi.yaml
 * declares `sshPrivateKey` with `secret: true`.
 */
function secretFacts(): SecretFacts {
  const facts: SecretFacts = {};
  const keyFile = pulumi.runtime.getConfig(`${NAMESPACE}:${KEY_FILE}`);
  const key = keyFile ? readKeyFile(keyFile) : pulumi.runtime.getConfig(`${NAMESPACE}:sshPrivateKey`);
  if (key !== undefined && key.trim() !== "") {
    facts.sshPrivateKey = true;
    facts.sshPrivateKeyInfo = inspectPrivateKey(key);
  }
  const jump = pulumi.runtime.getConfig(`${NAMESPACE}:jumpPrivateKey`);
  if (jump !== undefined && jump.trim() !== "") facts.jumpPrivateKeyInfo = inspectPrivateKey(jump);
  const alerts = pulumi.runtime.getConfig(`${NAMESPACE}:alerts`);
  if (alerts !== undefined) {
    facts.alertsInfo = inspectAlerts(parseJson(alerts), isSecretConfig(`${NAMESPACE}:alerts`));
  }
  const url = pulumi.runtime.getConfig(`${NAMESPACE}:databaseUrl`);
  if (url !== undefined && url.trim() !== "") {
    facts.databaseUrlInfo = inspectDatabaseUrl(parseJson(url), isSecretConfig(`${NAMESPACE}:databaseUrl`));
  }
  const env = pulumi.runtime.getConfig(`${NAMESPACE}:secretEnv`);
  if (env !== undefined) {
    let value: unknown = env;
    try {
      value = JSON.parse(env);
    } catch {
      // a bare string: reported as "expected an object"
    }
    const isMap = typeof value === "object" && value !== null && !Array.isArray(value);
    facts.secretEnvTypes = isMap
      ? Object.fromEntries(
          Object.entries(value as Record<string, unknown>).map(([name, v]) => [name, typeName(v)]),
        )
      : typeName(value);
    // Only the names of reset switches that are on; never a value.
    if (isMap) {
      facts.secretEnvResetsOn = Object.entries(value as Record<string, unknown>)
        .filter(
          ([name, v]) => (DEV_RESET_SWITCHES as readonly string[]).includes(name) && isSwitchOn(String(v)),
        )
        .map(([name]) => name);
    }
  }
  return facts;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Is the key stored as a secret? (`pulumi.runtime.isConfigSecret`, untyped in this SDK version) */
function isSecretConfig(key: string): boolean {
  const rt = pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean };
  return rt.isConfigSecret ? rt.isConfigSecret(key) : true;
}
