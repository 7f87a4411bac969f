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
 * The safe-word checks every renderer asserts before a value lands unquoted
 * in a proxy file, a unit or a script. The config boundary
 * (components/config/validate.ts) is stricter and says what to do; these only
 * keep a broken value out of a file.
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
