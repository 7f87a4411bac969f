/**
 * Shell scripts the SSH-backed resources run on the host, built as data.
 * Pure functions, tested as exact strings and run through shellcheck.
 */
import { shellQuote as q } from "./ssh";

export interface FileSpec {
  path: string;
  /** Octal mode, 4 digits: `0644` */
  mode: string;
  owner: string;
  group: string;
  /**
   * Command that checks the live configuration once the new file is in place
   * (`caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile`,
   * `nginx -t`). On failure the previous file is put back, so the service,
   * which has not been reloaded, keeps serving the old configuration.
   */
  validate?: string;
  /** Command run after the file changed (`systemctl reload caddy`) */
  reload?: string;
  /** Command run after the file was removed on destroy. @default validate, then reload */
  onDelete?: string;
}

/** `0644` for `644`, `0600` for `600`. */
export function normalizeMode(mode: string): string {
  const m = mode.trim();
  if (!/^[0-7]{3,4}$/.test(m)) throw new Error(`file mode "${mode}" must be octal like 0644`);
  return m.padStart(4, "0");
}

/** Writes stdin to `spec.path` atomically, validates, and reloads. */
export function writeFileScript(spec: FileSpec): string {
  const lines = [
    "set -euo pipefail",
    `target=${q(spec.path)}`,
    'dir=$(dirname "$target")',
    'install -d -m 0755 "$dir"',
    'tmp=$(mktemp "$dir/.apphost-new.XXXXXX")',
    'backup=""',
    "trap 'rm -f \"$tmp\"' EXIT",
    'cat >"$tmp"',
    `chown ${q(`${spec.owner}:${spec.group}`)} "$tmp"`,
    `chmod ${normalizeMode(spec.mode)} "$tmp"`,
  ];
  if (spec.validate) {
    lines.push(
      'if [ -e "$target" ]; then backup=$(mktemp "$dir/.apphost-old.XXXXXX"); cp -p "$target" "$backup"; fi',
      'mv -f "$tmp" "$target"',
      `if ! out=$(${spec.validate} 2>&1); then`,
      '  if [ -n "$backup" ]; then mv -f "$backup" "$target"; else rm -f "$target"; fi',
      '  printf "apphost: %s was not installed: the validator refused it:\\n%s\\n" "$target" "$out" >&2',
      "  exit 3",
      "fi",
      'if [ -n "$backup" ]; then rm -f "$backup"; fi',
    );
  } else {
    lines.push('mv -f "$tmp" "$target"');
  }
  if (spec.reload) lines.push(spec.reload);
  return lines.join("\n") + "\n";
}

/**
 * Prints `present <mode> <owner> <group> <sha256>` or `absent`; with
 * `withContent`, the file's base64 follows on the next lines (never used for
 * secret files, whose content must not leave the host in a read).
 */
export function readFileScript(path: string, withContent = false): string {
  const lines = [
    "set -euo pipefail",
    `target=${q(path)}`,
    'if [ -f "$target" ]; then',
    '  printf "present %s %s\\n" "$(stat -c "%04a %U %G" "$target")" "$(sha256sum "$target" | cut -d" " -f1)"',
  ];
  if (withContent) lines.push('  base64 -w 0 "$target"', "  echo");
  lines.push("else", "  echo absent", "fi");
  return lines.join("\n") + "\n";
}

/** Removes the file, then re-validates and reloads what read it. */
export function deleteFileScript(spec: Pick<FileSpec, "path" | "validate" | "reload" | "onDelete">): string {
  const lines = ["set -euo pipefail", `rm -f ${q(spec.path)}`];
  if (spec.onDelete !== undefined) {
    if (spec.onDelete) lines.push(spec.onDelete);
  } else {
    if (spec.validate) lines.push(spec.validate);
    if (spec.reload) lines.push(spec.reload);
  }
  return lines.join("\n") + "\n";
}

export interface FileState {
  present: boolean;
  mode?: string;
  owner?: string;
  group?: string;
  sha256?: string;
  /** The file's text, when it was asked for */
  content?: string;
}

export function parseFileState(stdout: string): FileState {
  const [line = "", encoded] = stdout.replace(/\s+$/, "").split("\n");
  if (line === "absent") return { present: false };
  const m = /^present (\d{4}) (\S+) (\S+) ([0-9a-f]{64})$/.exec(line);
  if (!m) throw new Error(`unexpected answer from the host while reading a file: ${JSON.stringify(line)}`);
  const state: FileState = { present: true, mode: m[1], owner: m[2], group: m[3], sha256: m[4] };
  if (encoded !== undefined) state.content = Buffer.from(encoded, "base64").toString("utf8");
  return state;
}
