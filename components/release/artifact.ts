/**
 * The release artifact: the app directory as a content-addressed, byte-for-byte
 * reproducible tar.gz.
 *
 * Why our own tar writer instead of the system `tar`: GNU tar's
 * `--sort=name --mtime=@... --owner=0` flags do not exist in bsdtar (macOS), and
 * its output still carries the local umask and PAX timestamps of the build
 * machine. Writing ustar headers ourselves takes ~80 lines and makes the bytes
 * depend on nothing but the file tree.
 *
 * Exclude syntax: .gitignore's, as the `ignore` package reads it (the one
 * eslint and prettier use), on `/`-separated paths relative to the app
 * directory: `name` at any depth, `name/` directories only, `/name` and `a/b`
 * anchored at the app root, `*`, `?`, `[a-z]`, `**`, and `!pattern` to keep
 * what an earlier pattern left out. An excluded directory is not walked, so a
 * `!` cannot bring back a file under it (as in git).
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import ignore from "ignore";
import { gzipSync } from "zlib";
import { APP_DEFAULTS } from "../config/defaults";
import type { AppConfig } from "../config/types";
import { buildToolReleases, nodeDepsOf, nodeSettings } from "./node";
import {
  pythonDepsOf,
  workspaceMembers,
  WORKSPACE_DIR,
  type PythonManager,
  type UvWorkspace,
} from "./python";

/** The excludes applied when `apphost:app.excludes` is not set: the config module's default, not a copy. */
export const DEFAULT_EXCLUDES: readonly string[] = APP_DEFAULTS.excludes;

export interface ArtifactEntry {
  /** Relative path with `/` separators, no leading `./` */
  path: string;
  type: "file" | "dir" | "symlink";
  /** Normalized mode: 0o755 for directories and executable files, 0o644 for other files, 0o777 for symlinks */
  mode: number;
  /** File size in bytes (0 for directories and symlinks) */
  size: number;
  /** sha256 of the content (files) or of the link target (symlinks); "" for directories */
  sha256: string;
  /** Symlink target */
  target?: string;
  /** Where the content is read from when it is not `<app dir>/<path>` (a uv workspace's files) */
  source?: string;
}

export interface Artifact {
  /**
   * sha256 over every entry's type, path, mode and content hash, and the build that runs over them
   * (releaseContentHash): the identity of the release content
   */
  contentHash: string;
  /** Hash of the dependency manifest; the host reuses `venvs/<requirementsHash>` while it is unchanged */
  requirementsHash: string;
  /** The gzip-compressed ustar archive; equal trees give equal bytes */
  tarGz: Buffer;
  /** sha256 of `tarGz`, which `apphost-release deploy` can verify after the upload */
  sha256: string;
  /** Archived entries in archive order */
  entries: ArtifactEntry[];
  /** Paths that were neither file, directory nor symlink (sockets, fifos) and were left out */
  skipped: string[];
}

// ------------------------------------------------------------------ excludes

type Matcher = (relPath: string, isDir: boolean) => boolean;

/**
 * Compile exclude patterns (syntax in the module comment) into one predicate
 * over a relative `/`-separated path. Throws on a pattern that excludes
 * nothing by mistake: empty, `/` alone, or a `[` never closed (git reads it as
 * a class that matches no name).
 */
export function compileExcludes(patterns: readonly string[]): Matcher {
  for (const raw of patterns) {
    const pattern = raw.trim();
    if (pattern === "" || pattern === "/" || pattern === "!") {
      throw new Error(`apphost:app.excludes: empty pattern`);
    }
    if (/\[(?![^\]]+\])/.test(pattern.replace(/\\./g, ""))) {
      throw new Error(`apphost:app.excludes: unclosed "[" in "${pattern}"`);
    }
  }
  const ig = ignore().add(patterns.map((p) => p.trim()));
  return (relPath, isDir) => ig.ignores(isDir ? `${relPath}/` : relPath);
}

// ---------------------------------------------------------------------- walk

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Walk `dir` in a fixed order (names compared as strings, directories before
 * their contents), leaving out excluded paths.
 */
export function walkApp(
  dir: string,
  excludes: readonly string[],
): { entries: ArtifactEntry[]; skipped: string[] } {
  const excluded = compileExcludes(excludes);
  const entries: ArtifactEntry[] = [];
  const skipped: string[] = [];
  const visit = (abs: string, rel: string) => {
    const names = fs.readdirSync(abs).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of names) {
      const childAbs = path.join(abs, name);
      const childRel = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(childAbs);
      if (excluded(childRel, st.isDirectory())) continue;
      if (st.isDirectory()) {
        entries.push({ path: childRel, type: "dir", mode: 0o755, size: 0, sha256: "" });
        visit(childAbs, childRel);
      } else if (st.isFile()) {
        const content = fs.readFileSync(childAbs);
        entries.push({
          path: childRel,
          type: "file",
          mode: st.mode & 0o111 ? 0o755 : 0o644,
          size: content.length,
          sha256: sha256(content),
        });
      } else if (st.isSymbolicLink()) {
        const target = fs.readlinkSync(childAbs);
        entries.push({
          path: childRel,
          type: "symlink",
          mode: 0o777,
          size: 0,
          sha256: sha256(target),
          target,
        });
      } else {
        skipped.push(childRel);
      }
    }
  };
  if (!fs.statSync(dir).isDirectory()) throw new Error(`apphost:app.source: ${dir} is not a directory`);
  visit(dir, "");
  return { entries, skipped };
}

/** sha256 over type, mode, path and content hash of every entry, in order. */
export function contentHashOf(entries: readonly ArtifactEntry[]): string {
  const h = createHash("sha256");
  h.update("apphost-artifact-v1\n");
  for (const e of entries) {
    h.update(`${e.type}\0${e.mode.toString(8)}\0${e.path}\0${e.sha256}\n`);
  }
  return h.digest("hex");
}

// ----------------------------------------------------------------------- tar

const BLOCK = 512;

function writeString(buf: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length > length) throw new Error(`tar: "${value}" does not fit in ${length} bytes`);
  bytes.copy(buf, offset);
}

function writeOctal(buf: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new Error(`tar: ${value} does not fit in a ${length}-byte field`);
  writeString(buf, offset, length, digits.padStart(length - 1, "0") + "\0");
}

/**
 * Every entry's mtime: 1980-01-02T00:00:00Z, not the epoch. A ZIP entry cannot be dated before 1980, and a wheel's
 * build backend that zips the release's files with their mtimes (flit_core: the Flask tutorial's flaskr) fails with
 * `ZIP does not support timestamps before 1980` on files dated 1970; a day past 1980 stays past it as a local time
 * in any time zone.
 */
export const TAR_MTIME = 315619200;

function header(name: string, type: string, mode: number, size: number, linkname = "", prefix = ""): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeString(h, 0, 100, name);
  writeOctal(h, 100, 8, mode);
  writeOctal(h, 108, 8, 0); // uid
  writeOctal(h, 116, 8, 0); // gid
  writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, TAR_MTIME); // mtime: always the same
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  writeString(h, 156, 1, type);
  writeString(h, 157, 100, linkname);
  writeString(h, 257, 6, "ustar\0");
  writeString(h, 263, 2, "00");
  writeString(h, 345, 155, prefix);
  let sum = 0;
  for (const b of h) sum += b;
  writeString(h, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return h;
}

function pad(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** A PAX record `"<len> key=value\n"` where len counts the whole record. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** Split a long path into ustar prefix + name, or undefined when it needs a PAX header. */
function splitUstar(p: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(p) <= 100) return { prefix: "", name: p };
  for (let i = p.indexOf("/"); i >= 0; i = p.indexOf("/", i + 1)) {
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== "")
      return { prefix, name };
  }
  return undefined;
}

/**
 * A ustar archive of `entries` read from `dir`: numeric owner 0:0, mtime TAR_MTIME,
 * normalized modes, PAX headers only for paths or link targets too long for ustar.
 */
export function buildTar(dir: string, entries: readonly ArtifactEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const name = e.type === "dir" ? `${e.path}/` : e.path;
    const type = e.type === "dir" ? "5" : e.type === "symlink" ? "2" : "0";
    const target = e.target ?? "";
    let split = splitUstar(name);
    const pax: string[] = [];
    if (!split) pax.push(paxRecord("path", name));
    if (Buffer.byteLength(target) > 100) pax.push(paxRecord("linkpath", target));
    if (pax.length > 0) {
      const body = Buffer.from(pax.join(""), "utf8");
      parts.push(header("PaxHeader", "x", 0o644, body.length), body, pad(body.length));
      // Readers without PAX support see a placeholder name; GNU tar and bsdtar use the PAX path.
      if (!split) split = { prefix: "", name: `apphost-long-path-${sha256(name).slice(0, 16)}` };
    }
    const link = Buffer.byteLength(target) > 100 ? "" : target;
    parts.push(header(split!.name, type, e.mode, e.type === "file" ? e.size : 0, link, split!.prefix));
    if (e.type === "file") {
      const content = fs.readFileSync(e.source ?? path.join(dir, ...e.path.split("/")));
      if (content.length !== e.size || sha256(content) !== e.sha256) {
        throw new Error(`artifact: ${e.path} changed while the artifact was being built; run again`);
      }
      parts.push(content, pad(content.length));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

/** gzip with a fixed header: no name, mtime 0, OS byte "Unix" whatever the build machine. */
export function deterministicGzip(data: Buffer): Buffer {
  const gz = gzipSync(data, { level: 9 });
  gz[4] = gz[5] = gz[6] = gz[7] = 0; // MTIME
  gz[9] = 3; // OS = Unix (zlib writes 19 on macOS)
  return gz;
}

// -------------------------------------------------------------- requirements

/** The dependency manifest that decides whether an installed environment can be reused ("" for none). */
export function requirementsFile(
  app: Pick<AppConfig, "runtime" | "requirements" | "pythonDeps" | "nodeDeps">,
): string {
  if (app.runtime === "node") return nodeDepsOf(app).lock;
  return pythonDepsOf(app).manifest;
}

/** The manifest a Python manager checks its lock against (and that keys its venv with the lock). */
const LOCK_CHECKED_AGAINST: Partial<Record<PythonManager, readonly string[]>> = {
  poetry: ["pyproject.toml"],
  pdm: ["pyproject.toml"],
  pipenv: ["Pipfile"],
};

/**
 * 16 hex characters of sha256 over the runtime, the manager and manifest's
 * name and its content (a missing manifest hashes as missing, so it is stable
 * too). The host keeps one venv per value (and Python version) under `venvs/`.
 */
export function requirementsHash(
  appDir: string,
  app: Pick<
    AppConfig,
    "runtime" | "requirements" | "pythonDeps" | "npmWorkspaces" | "nodeDeps" | "extraRequirements"
  >,
  workspaceEntries: readonly ArtifactEntry[] = [],
): string {
  const file = requirementsFile(app);
  const deps = app.runtime === "python" ? pythonDepsOf(app) : undefined;
  const node = app.runtime === "node" ? nodeDepsOf(app) : undefined;
  const manager = deps ? deps.manager : (node?.manager ?? "npm");
  // pip keeps the label it always had, so an upgrade does not rebuild its venvs. npm's tree has the devDependencies
  // since `npm ci --include=dev` (a tree made before, under NODE_ENV=production, lacks the build's tools): a new label,
  // so an upgrade installs each once more instead of reusing a tree without them.
  // Yarn and pnpm, and npm when packageManager pins it: the release installed, which a packageManager change changes.
  const label =
    manager === "pip"
      ? file
      : manager === "npm"
        ? `npm${node?.version ? `@${node.version}` : ""}-include-dev:${file}`
        : node
          ? `${manager}@${node.version}:${file}`
          : `${manager}:${file}`;
  // apphost:app.dependencyGroups and apphost:app.extraRequirements: a venv of its own for each set (none hashes as it
  // always did).
  const groups = [
    ...(deps?.groups ?? []).map((g) => `${g.as}:${g.name}`),
    ...(deps?.extraRequirements ?? []).map((r) => `requirement:${r}`),
  ].join(",");
  const h = createHash("sha256");
  h.update(`apphost-requirements-v1\0${app.runtime}\0${label}${groups ? `+${groups}` : ""}\0`);
  if (deps?.workspace) {
    // The workspace's lock, the package installed, and the other members' code (installed as copies).
    h.update(`${deps.workspace.package}\0`);
    for (const e of workspaceEntries) h.update(`${e.type}\0${e.path}\0${e.sha256}\0`);
    return h.digest("hex").slice(0, 16);
  }
  h.update(file !== "" ? fileOrMissing(path.join(appDir, file)) : MISSING);
  // An npm workspace: npm ci reads each member's package.json too. An app without members hashes as before.
  for (const { member } of app.runtime === "node" ? (app.npmWorkspaces ?? []) : []) {
    h.update(`\0member\0${member}\0`);
    h.update(fileOrMissing(path.join(appDir, member, "package.json")));
  }
  // The files each manager reads beside the lock: a Node manager's settings (node.ts: nodeSettings), and the manifest
  // Poetry, PDM and Pipenv check the lock against (pyproject.toml, the Pipfile), so that one changed without a new lock
  // gets a venv of its own, whose install says the lock is out of date, rather than the venv of the lock it no longer
  // matches. An npm app without an .npmrc hashes as before; Poetry's venvs were keyed by the lock alone (an upgrade
  // installs each once more).
  const beside = node ? nodeSettings(node) : deps ? (LOCK_CHECKED_AGAINST[deps.manager] ?? []) : [];
  for (const name of beside) {
    const abs = path.join(appDir, name);
    if (fs.statSync(abs, { throwIfNoEntry: false })?.isFile())
      h.update(`\0settings\0${name}\0${fs.readFileSync(abs, "utf8")}`);
  }
  // Yarn 2 and later: the files .yarnrc.yml and the lock name (its Yarn, plugins, patches), which the install reads.
  for (const name of node?.yarnFiles ?? []) {
    h.update(`\0yarn\0${name}\0`);
    h.update(fileOrMissing(path.join(appDir, name)));
  }
  // pip reads the files a requirements file names (-r, -c) too: bakerydemo's requirements.txt is `-r
  // requirements/production.txt`, which is `-r base.txt` and more. A file that names none hashes as before.
  if (manager === "pip" && file !== "") {
    for (const [rel, text] of pipIncludes(appDir, file)) h.update(`\0include\0${rel}\0${text}`);
  }
  return h.digest("hex").slice(0, 16);
}

/** What the hash reads for a file the install reads: its bytes, or a marker when it is not a file. */
const MISSING = Buffer.from("\0missing\0");
function fileOrMissing(abs: string): Buffer {
  return fs.statSync(abs, { throwIfNoEntry: false })?.isFile() ? fs.readFileSync(abs) : MISSING;
}

/** `-r`/`--requirement`/`-c`/`--constraint` lines of a pip requirements file: the paths they name. */
function pipIncludeNames(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/(^|\s)#.*$/, "").trim();
    const m = /^(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+|(?<=^-[rc]))(\S+)$/.exec(line);
    if (m) out.push(m[1]);
  }
  return out;
}

/**
 * Every file a pip requirements file includes, depth first, each once, as
 * [path relative to the app, content]: relative to the including file's
 * directory, as pip reads them. A URL or a file outside the app or missing
 * hashes by its name alone (the install fails or fetches it the same way).
 */
function pipIncludes(appDir: string, file: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const seen = new Set([path.normalize(file)]);
  const visit = (from: string, text: string) => {
    for (const name of pipIncludeNames(text)) {
      const rel = /^[a-z][a-z0-9+.-]*:\/\//i.test(name)
        ? name
        : path.normalize(path.join(path.dirname(from), name));
      if (seen.has(rel)) continue;
      seen.add(rel);
      const abs = path.join(appDir, rel);
      const inside = !rel.startsWith("..") && !path.isAbsolute(rel);
      const body =
        inside && fs.statSync(abs, { throwIfNoEntry: false })?.isFile()
          ? fs.readFileSync(abs, "utf8")
          : undefined;
      out.push([rel, body ?? "\0missing\0"]);
      if (body !== undefined) visit(rel, body);
    }
  };
  const top = path.join(appDir, file);
  if (fs.statSync(top, { throwIfNoEntry: false })?.isFile()) visit(file, fs.readFileSync(top, "utf8"));
  return out;
}

/**
 * A uv workspace's files for the release, under WORKSPACE_DIR at their
 * root-relative paths: the root's pyproject.toml and uv.lock, the app
 * member's pyproject.toml, and every other member whole (minus the excludes).
 */
export function workspaceEntries(
  appDir: string,
  ws: UvWorkspace,
  excludes: readonly string[],
): ArtifactEntry[] {
  const root = path.resolve(appDir, ws.root);
  const out: ArtifactEntry[] = [];
  const dirs = new Set<string>();
  const addDirs = (rel: string) => {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!dirs.has(d)) {
        dirs.add(d);
        out.push({ path: `${WORKSPACE_DIR}/${d}`, type: "dir", mode: 0o755, size: 0, sha256: "" });
      }
    }
  };
  const addFile = (rel: string) => {
    const abs = path.join(root, ...rel.split("/"));
    const content = fs.readFileSync(abs);
    addDirs(rel);
    out.push({
      path: `${WORKSPACE_DIR}/${rel}`,
      type: "file",
      mode: 0o644,
      size: content.length,
      sha256: sha256(content),
      source: abs,
    });
  };
  out.push({ path: WORKSPACE_DIR, type: "dir", mode: 0o755, size: 0, sha256: "" });
  addFile("pyproject.toml");
  addFile("uv.lock");
  const toml = fs.readFileSync(path.join(root, "pyproject.toml"), "utf8");
  for (const member of workspaceMembers(root, toml)) {
    if (member === ws.member) {
      addFile(`${member}/pyproject.toml`);
      continue;
    }
    addDirs(`${member}/x`);
    for (const e of walkApp(path.join(root, ...member.split("/")), excludes).entries) {
      const rel = `${member}/${e.path}`;
      if (e.type === "dir") dirs.add(rel);
      out.push({
        ...e,
        path: `${WORKSPACE_DIR}/${rel}`,
        ...(e.type === "file" ? { source: path.join(root, ...rel.split("/")) } : {}),
      });
    }
  }
  return out;
}

// ----------------------------------------------------------------- artifact

/** What of apphost:app an artifact is built from: the files, and what keys the venv or node_modules. */
export type ArtifactApp = Pick<
  AppConfig,
  | "runtime"
  | "requirements"
  | "pythonDeps"
  | "npmWorkspaces"
  | "nodeDeps"
  | "excludes"
  | "extraRequirements"
  | "build"
  | "buildToolVersions"
>;

/**
 * The release's content hash: its entries' (contentHashOf), and with apphost:app.build, the build command and the
 * tools npm installs for it at their releases, since the build's output is in the release as much as the files are:
 * a changed build makes a new release, built anew beside the live one, where the same release published again would
 * skip its build (done once per release) and serve the old build's output.
 */
export function releaseContentHash(entries: readonly ArtifactEntry[], app: ArtifactApp): string {
  const files = contentHashOf(entries);
  if (!app.build) return files;
  const tools = buildToolReleases(app).map((t) => `${t.tool}@${t.version}`);
  return createHash("sha256")
    .update(`${files}\0build\0${app.build}\0${tools.join(" ")}`)
    .digest("hex");
}

/** Build the artifact of `appDir`. Pure apart from reading the directory. */
export function buildArtifact(appDir: string, app: ArtifactApp): Artifact {
  const excludes = app.excludes ?? DEFAULT_EXCLUDES;
  const walked = walkApp(appDir, excludes);
  const ws = app.runtime === "python" ? pythonDepsOf(app).workspace : undefined;
  const extra = ws ? workspaceEntries(appDir, ws, excludes) : [];
  if (
    extra.length > 0 &&
    walked.entries.some((e) => e.path === WORKSPACE_DIR || e.path.startsWith(`${WORKSPACE_DIR}/`))
  ) {
    throw new Error(
      `apphost:app.source: ${appDir} has its own ${WORKSPACE_DIR}, the name apphost gives a uv workspace's files in a release; rename it`,
    );
  }
  const entries = [...walked.entries, ...extra];
  const tarGz = deterministicGzip(buildTar(appDir, entries));
  return {
    contentHash: releaseContentHash(entries, app),
    // A workspace: its lock, and every file of it the release carries (other members are installed as copies).
    requirementsHash: requirementsHash(appDir, app, extra),
    tarGz,
    sha256: sha256(tarGz),
    entries,
    skipped: walked.skipped,
  };
}
