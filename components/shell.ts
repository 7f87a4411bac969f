/**
 * Shell quoting: the one place apphost turns a value into a shell word. Pure
 * (no I/O), so renderers, the doctor and the SSH transport share it; the
 * dynamic providers serialize these functions with their own code.
 */

/** Quote one word for a POSIX shell. */
export function shellQuote(word: string): string {
  if (word !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A bash ANSI-C quoted string (`$'...'`) holding `text` exactly. */
export function ansiC(text: string): string {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === "'") out += "\\'";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `$'${out}'`;
}

/**
 * The safe-word checks every renderer asserts, through `assertSafe`, before a
 * value lands unquoted in a proxy file, a unit or a script. The config
 * boundary (components/config/schema.ts, validate.ts) does the validation: it is
 * stricter, names every offender and says what to do. These only keep a
 * value the config check let through by mistake out of a file.
 */

/** A URL path: `/` then letters, digits and `._~/-` (health paths, static prefixes). */
export const URL_PATH = /^\/[A-Za-z0-9._~/-]*$/;

export function isUrlPath(value: string): boolean {
  return URL_PATH.test(value);
}

/** A host name or IPv4 address: dot-separated labels of letters, digits and inner dashes, 253 characters at most. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function isHostName(value: string): boolean {
  return HOST_NAME.test(value);
}

/**
 * App, stack, process and job names: lowercase letters, digits and dashes,
 * starting with a letter, at most 31 characters. They become systemd unit,
 * Linux user and path names.
 */
export function isName(value: string): boolean {
  return /^[a-z][a-z0-9-]{0,30}$/.test(value);
}

/** A rule of `assertSafe`: what the value must be, for the message, and its test. */
export interface SafeRule {
  readonly what: string;
  readonly test: (value: string | number) => boolean;
  /** The value may be a secret: the message names the key alone. */
  readonly hideValue?: boolean;
}

const matches =
  (re: RegExp) =>
  (v: string | number): boolean =>
    typeof v === "string" && re.test(v);

const wholeNumber =
  (min: number, max: number) =>
  (v: string | number): boolean =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

/** The rules, by what the renderers write. */
export const SAFE = {
  urlPath: { what: "a URL path (/ then letters, digits, ._~/-)", test: matches(URL_PATH) },
  hostName: { what: "a host name", test: (v) => typeof v === "string" && isHostName(v) },
  ipv4: {
    what: "an IPv4 address",
    test: matches(/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/),
  },
  /** A directory inside the release: relative, no `..`, no characters a proxy file would read. */
  relativeDir: {
    what: "a directory inside the release, like frontend/dist",
    test: (v) =>
      typeof v === "string" &&
      /^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*\/?$/.test(v) &&
      !v.split("/").includes(".."),
  },
  /** A URL prefix: a URL path that starts and ends with `/`, and is not `/` alone. */
  urlPrefix: {
    what: "a URL path that starts and ends with /, like /static/",
    test: (v) => typeof v === "string" && URL_PATH.test(v) && v.endsWith("/") && v !== "/",
  },
  /** A host path baked into shell and SQLite dot-commands unquoted: nothing that would need quoting. */
  hostPath: {
    what: "an absolute path of letters, digits and _.@%+=:,/- only",
    test: matches(/^\/[A-Za-z0-9_.@%+=:,/-]*$/),
  },
  s3Bucket: { what: "an S3 bucket name", test: matches(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/) },
  awsRegion: { what: "an AWS region", test: matches(/^[a-z]{2}(-[a-z]+)+-\d+$/) },
  s3Prefix: { what: "an S3 key prefix ending in /", test: matches(/^([a-z0-9][a-z0-9-]*\/)+$/) },
  /** A file inside the app or release: relative, no `..`. */
  relativeFile: {
    what: "a relative path inside the app",
    test: (v) =>
      typeof v === "string" && /^[A-Za-z0-9_.][A-Za-z0-9_./-]*$/.test(v) && !v.split("/").includes(".."),
  },
  fileName: { what: "a file name, like app.db", test: matches(/^[A-Za-z0-9._-]+$/) },
  /**
   * A pip requirement from an index (apphost:app.extraRequirements): a name, its extras and version constraints
   * (`gunicorn==23.0.0`, `uvicorn[standard]>=0.30,<1`), nothing that would need quoting but the comparison signs.
   */
  requirement: {
    what: 'a pip requirement like "gunicorn==23.0.0": a package name, extras in [], version constraints',
    test: matches(
      /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*\])?((===?|!=|~=|<=?|>=?)[A-Za-z0-9.*+!_-]+(,(===?|!=|~=|<=?|>=?)[A-Za-z0-9.*+!_-]+)*)?$/,
    ),
  },
  /** A release of a tool npm installs (Yarn, pnpm): package.json's packageManager names one. */
  version: {
    what: "an exact version, like 1.22.22",
    test: matches(/^\d{1,4}\.\d{1,4}\.\d{1,4}(?:-[0-9A-Za-z.-]{1,40})?$/),
  },
  absolutePath: { what: "an absolute path without spaces", test: matches(/^\/[A-Za-z0-9._/-]+$/) },
  /** nginx's size syntax: bytes, or a k/m/g suffix. */
  size: { what: "a size like 25m, 512k or 1g", test: matches(/^\d+[kKmMgG]?$/) },
  email: { what: "an e-mail address", test: matches(/^[^\s@{}"]+@[^\s@{}"]+$/) },
  httpsUrl: {
    what: "an https:// URL",
    test: matches(/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~%/-]*)?$/),
  },
  /** A URL written inside double quotes (curl's config): no quotes, spaces or backslashes. */
  quotableUrl: {
    what: "an http(s) URL without spaces, quotes or backslashes",
    test: matches(/^https?:\/\/[^\s"'\\]+$/),
    hideValue: true,
  },
  /** A command or a systemd value: one line. */
  oneLine: {
    what: "one non-empty line",
    test: (v) => typeof v === "string" && v.trim() !== "" && !/[\n\r\0]/.test(v),
  },
  /** Process, schedule and stack names: they become unit and file names. */
  name: {
    what: "a name of lowercase letters, digits and dashes",
    test: (v) => typeof v === "string" && isName(v),
  },
  /** An environment variable's name: what systemd's EnvironmentFile= and a shell both read. */
  envName: {
    what: "a variable name (letters, digits and _, not starting with a digit)",
    test: matches(/^[A-Za-z_][A-Za-z0-9_]*$/),
  },
  /** An environment variable's value: written quoted, but never with a NUL. */
  envValue: {
    what: "a string without NUL characters",
    test: (v) => typeof v === "string" && !v.includes("\0"),
    hideValue: true,
  },
  /** Postgres identifiers apphost creates: lowercase letters, digits and _, at most 63 characters. */
  pgIdentifier: {
    what: "a Postgres identifier (lowercase letters, digits and _, up to 63 characters)",
    test: matches(/^[a-z_][a-z0-9_]{0,62}$/),
  },
  /** A Postgres extension's name (`uuid-ossp` has a dash), written double-quoted in SQL. */
  pgExtension: {
    what: "an extension name (lowercase letters, digits, _ and -)",
    test: matches(/^[a-z_][a-z0-9_-]{0,62}$/),
  },
  debianPackage: { what: "a Debian package name", test: matches(/^[a-z0-9][a-z0-9.+-]+$/) },
  port: { what: "a TCP port (1-65535)", test: wholeNumber(1, 65535) },
  seconds: { what: "a whole number of seconds >= 1", test: wholeNumber(1, Number.MAX_SAFE_INTEGER) },
  count: { what: "a whole number >= 0", test: wholeNumber(0, Number.MAX_SAFE_INTEGER) },
} satisfies Record<string, SafeRule>;

/** One value to check: its config key (or what it is), the value, the rule. */
export type SafeCheck = readonly [label: string, value: string | number, rule: SafeRule];

/**
 * Throws, naming every offender, when a value is not safe to write where
 * `where` writes it. The config check refuses all of these first; reaching
 * this error means a value got past it.
 */
export function assertSafe(where: string, checks: readonly SafeCheck[]): void {
  const bad = checks.filter(([, value, rule]) => !rule.test(value));
  if (bad.length === 0) return;
  throw new Error(
    `${where}: not safe to write (apphost's config check should have refused it; please report this):\n` +
      bad
        .map(([label, value, rule]) =>
          rule.hideValue
            ? `  - ${label}: its value is not ${rule.what}`
            : `  - ${label}: ${JSON.stringify(value)} is not ${rule.what}`,
        )
        .join("\n"),
  );
}
