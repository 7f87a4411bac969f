/**
 * The release as a resource. Its inputs are the artifact's content hash, the
 * requirements hash and a hash of the host configuration the processes run
 * with (env file, units); when none changed, `pulumi up` does no remote work.
 *
 * create/update run `apphost-release deploy` on the host with the artifact on
 * stdin: check, upload, install, backup, migrate, publish, health-gate,
 * finish; the script rolls itself back on failure, and the error names the
 * phase and shows the tail of its output. `read` asks the host which release
 * is live, so a hand switch of `current` shows as drift.
 */
import * as pulumi from "@pulumi/pulumi";
import type { SshConnection } from "./connection";
import { connectionChanged, currentConnection, PROVIDER_VERSION } from "./follow";
import { redact, runRemote, shellQuote, sshFailure, tail, type RemoteResult } from "./ssh";

export interface ReleaseArgs {
  connection: pulumi.Input<SshConnection>;
  /** `/srv/<id>/bin/apphost-release` */
  script: pulumi.Input<string>;
  /** Local path of the built artifact (tar.gz) */
  artifact: pulumi.Input<string>;
  contentHash: pulumi.Input<string>;
  requirementsHash: pulumi.Input<string>;
  /** Hash of what the processes run with (env file, units): a change re-publishes the release */
  configHash: pulumi.Input<string>;
  /** Serve this older release instead (`apphost:releases.rollbackTo`) */
  rollbackTo?: pulumi.Input<string | undefined>;
  /** Who holds the host's deploy lock, e.g. `pulumi@laptop` */
  lockOwner: pulumi.Input<string>;
  /**
   * Secret values (apphost:secretEnv, generated secrets, the database password)
   * blanked out of the output an error carries, as the SSH key is: a failing
   * migration that prints its settings must not put them in the engine's log.
   * Never stored in the state's outputs.
   */
  redactions?: pulumi.Input<string[]>;
}

export interface ReleaseInputs {
  connection: SshConnection;
  script: string;
  artifact: string;
  contentHash: string;
  requirementsHash: string;
  configHash: string;
  rollbackTo?: string;
  lockOwner: string;
  redactions?: string[];
  /** PROVIDER_VERSION of the code that last applied it; absent before version 2 */
  providerVersion?: number;
}

interface Outputs extends ReleaseInputs {
  /** The release built from `contentHash` (`YYYYMMDDHHMMSS-<hash8>`) */
  releaseId: string;
  /** The release `current` points to, as last seen on the host */
  live: string;
  /** Seconds each phase of the last deploy (or rollback) took, in order, from its `phase <name>: ok (<s>s)` lines */
  phaseSeconds?: PhaseTime[];
}

/** One phase and how long it took. A list, not a map: the state sorts map keys, and the order matters. */
export interface PhaseTime {
  phase: string;
  seconds: number;
}

/**
 * The warnings of a run that went through: each `apphost: warning: ...` (or `apphost: <what>: warning: ...`) line
 * with the lines that follow it up to the script's next `apphost: ` line (a worker's journal, say). A failed run's
 * error carries its whole output; a successful one is shown nowhere else.
 */
export function releaseWarnings(stderr: string): string[] {
  const warnings: string[][] = [];
  let current: string[] | undefined;
  for (const line of stderr.split("\n")) {
    if (/^apphost: (?:[\w-]+: )?warning: /.test(line)) warnings.push((current = [line]));
    else if (line.startsWith("apphost: ")) current = undefined;
    else current?.push(line);
  }
  return warnings.map((w) => w.join("\n").trimEnd());
}

/**
 * Prints a successful run's warnings where `pulumi up` shows them (the stack's diagnostics), each after the host it
 * came from (several app hosts deploy in one run), secrets blanked.
 */
function printWarnings(inputs: ReleaseInputs, stderr: string): void {
  const secrets = secretsOf(inputs.connection, inputs.redactions);
  for (const w of releaseWarnings(stderr)) console.error(redact(`${inputs.connection.host}: ${w}`, secrets));
}

/** `apphost: phase <name>: ok (<seconds>s)` lines of the release script, in order. */
export function phaseSeconds(stderr: string): PhaseTime[] {
  return [...stderr.matchAll(/^apphost: phase (\S+): ok \((\d+(?:\.\d+)?)s\)$/gm)].map((m) => ({
    phase: m[1],
    seconds: Number(m[2]),
  }));
}

const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/**
 * The id a new release of `contentHash` deploys under: `YYYYMMDDHHMMSS-<hash8>`
 * at `now`, moved past `previous` when the clock went back, so ids always sort
 * in deploy order. (Unchanged content keeps its id: the providers do not call this then.)
 */
export function newReleaseId(contentHash: string, previous?: string, now = Date.now()): string {
  if (!/^[0-9a-f]{8,}$/.test(contentHash))
    throw new Error(`release id: "${contentHash}" is not a hex content hash`);
  let at = Math.floor(now / 1000) * 1000;
  if (previous && /^\d{14}-/.test(previous)) {
    const p = previous;
    const prev = Date.UTC(
      +p.slice(0, 4),
      +p.slice(4, 6) - 1,
      +p.slice(6, 8),
      +p.slice(8, 10),
      +p.slice(10, 12),
      +p.slice(12, 14),
    );
    if (at <= prev) at = prev + 1000;
  }
  const stamp = new Date(at).toISOString().slice(0, 19).replace(/[-T:]/g, "");
  return `${stamp}-${contentHash.slice(0, 8)}`;
}

export function parseKv(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/**
 * What a host serves, from `apphost-release status`: the current release, or `none`. A release whose web
 * instance is down, or a worker of which is stopped or given up by systemd (`failed`: it crash-looped), is
 * not served as declared: `<id> (web inactive)`, `<id> (worker apphost-shop-prod-worker.service failed)`
 * differs from the release id, so a refresh shows it as drift and the next `up` publishes the same release
 * again (a release resets and restarts every unit). A worker still restarting (`activating`) is not drift.
 * A unit that still runs files a package upgrade replaced is drift too (`<unit> runs libssl.so.3, replaced
 * since it started`): publishing the release again starts a fresh web instance behind the health gate and
 * restarts the workers, as any release does, and the upgrade then applies to the app.
 */
export function liveOf(status: Record<string, string>): string {
  const current = status.current || "none";
  if (current === "none") return current;
  const down: string[] = [];
  if (status.web !== undefined && status.web !== "active") down.push(`web ${status.web || "unknown"}`);
  for (const entry of (status.workers ?? "").split(" ").filter(Boolean)) {
    const i = entry.lastIndexOf(":");
    const [unit, state] = [entry.slice(0, i), entry.slice(i + 1)];
    if (state === "failed" || state === "inactive") down.push(`worker ${unit} ${state}`);
  }
  for (const entry of (status.replaced ?? "").split(" ").filter(Boolean)) {
    const i = entry.lastIndexOf(":");
    const files = entry.slice(i + 1).split(",");
    const more = files.length > 3 ? ` and ${files.length - 3} more` : "";
    down.push(`${entry.slice(0, i)} runs ${files.slice(0, 3).join(", ")}${more}, replaced since it started`);
  }
  return down.length ? `${current} (${down.join(", ")})` : current;
}

/**
 * What a dependency built from source looked for and the host lacks, as pip, node-gyp and the compiler print
 * it, with the Debian 12 / Ubuntu package that has it. A header is matched by its path's end
 * (`fatal error: libxml/xmlversion.h: No such file or directory`).
 */
const BUILD_NEEDS: ReadonlyArray<{ missing: RegExp; what: string; pkg: string }> = [
  { missing: /pg_config executable not found/, what: "pg_config", pkg: "libpq-dev" },
  {
    missing: /mysql_config:? not found|Can not find valid pkg-config name/,
    what: "mysql_config",
    pkg: "default-libmysqlclient-dev pkg-config",
  },
  {
    missing: /pkg-config: (?:command )?not found|No such file or directory: 'pkg-config'/,
    what: "pkg-config",
    pkg: "pkg-config",
  },
  // node-gyp looks for make before it compiles (better-sqlite3 without a prebuilt binary for the host's Node).
  {
    missing: /gyp ERR! stack Error: not found: make|make: (?:command )?not found/,
    what: "make",
    pkg: "build-essential",
  },
  { missing: /\b(?:g\+\+|c\+\+): (?:command )?not found/, what: "g++", pkg: "build-essential" },
];
const HEADERS: Readonly<Record<string, string>> = {
  "pg_config.h": "libpq-dev",
  "libpq-fe.h": "libpq-dev",
  "mysql.h": "default-libmysqlclient-dev",
  "Python.h": "python3-dev",
  "ffi.h": "libffi-dev",
  "openssl/ssl.h": "libssl-dev",
  "openssl/opensslv.h": "libssl-dev",
  "libxml/xmlversion.h": "libxml2-dev",
  "libxslt/xsltconfig.h": "libxslt1-dev",
  "jpeglib.h": "libjpeg-dev",
  "zlib.h": "zlib1g-dev",
  "sqlite3.h": "libsqlite3-dev",
  "lber.h": "libldap2-dev",
  "ldap.h": "libldap2-dev",
  "sasl/sasl.h": "libsasl2-dev",
  "krb5.h": "libkrb5-dev",
  "gssapi/gssapi.h": "libkrb5-dev",
  "yaml.h": "libyaml-dev",
  "geos_c.h": "libgeos-dev",
  "gdal.h": "libgdal-dev",
  "lzma.h": "liblzma-dev",
  "bzlib.h": "libbz2-dev",
  "ft2build.h": "libfreetype-dev",
  "png.h": "libpng-dev",
  "cairo.h": "libcairo2-dev",
};

/**
 * A failed install's hint: the files a build from source looked for in `output` and the packages that
 * have them, for apphost:host.packages; undefined when the output names none it knows.
 */
export function buildHint(output: string): string | undefined {
  const found = new Map<string, string>();
  for (const m of output.matchAll(/fatal error: ([\w./+-]+\.h): No such file or directory/g)) {
    const header = Object.keys(HEADERS).find((h) => m[1] === h || m[1].endsWith(`/${h}`));
    if (header) found.set(header, HEADERS[header]);
  }
  for (const n of BUILD_NEEDS) if (n.missing.test(output)) found.set(n.what, n.pkg);
  if (found.size === 0) return undefined;
  const what = [...found].map(([file, pkg]) => `${file} (${pkg})`).join(", ");
  const pkgs = [...new Set([...found.values()].flatMap((p) => p.split(" ")))];
  // node-gyp names the package it builds: `gyp ERR! cwd <dir>/node_modules/better-sqlite3`.
  const gyp = /gyp ERR! cwd \S*\/node_modules\/((?:@[^/\s]+\/)?[^/\s]+)\s*$/m.exec(output)?.[1];
  return (
    `${gyp ? `${gyp} builds from source (node-gyp) and needs` : "a dependency built from source needs"} what the host lacks: ${what}; ` +
    `add ${pkgs.join(", ")} to apphost:host.packages, or use a release of the dependency that has ${gyp ? "a prebuilt binary for the host's Node" : "a wheel"}`
  );
}

/**
 * A failed install's hint when the app's own package takes its version from git (setuptools-scm, and hatch-vcs
 * through it) and the release has no .git, which apphost:app.excludes leaves out: the variable setuptools-scm reads
 * instead (the one its error names), set in apphost:app.env, which the install reads. Undefined when no such error
 * shows.
 */
export function scmVersionHint(output: string): string | undefined {
  if (!/setuptools[-_]scm was unable to detect version/.test(output)) return undefined;
  const name =
    /\b(SETUPTOOLS_SCM_PRETEND_VERSION_FOR_[A-Z0-9_]+)\b/.exec(output)?.[1] ??
    "SETUPTOOLS_SCM_PRETEND_VERSION";
  return (
    "the app's own package takes its version from git (setuptools-scm), and the release has no .git " +
    `(apphost:app.excludes leaves it out): set ${name} in apphost:app.env, which the install reads, ` +
    `e.g. pulumi config set --path 'apphost:app.env.${name}' 1.0.0`
  );
}

/** The Python a build ran for, as its output shows it (a compiler's `-I.../include/python3.11`, a build env's
 * `.../lib/python3.11/site-packages/`): `Python 3.11`, else "the host's Python". */
function pythonOf(output: string): string {
  const m = /-I\S*\/include\/python(3\.\d+)\b|\/lib\/python(3\.\d+)\/site-packages\//.exec(output);
  return m ? `Python ${m[1] ?? m[2]}` : "the host's Python";
}

/**
 * A failed install's hint when a dependency's C code does not compile against the host's Python: a compiler
 * error names one of the interpreter's own types (`PyThreadState` has no member named `recursion_depth`), as
 * a release older than that Python makes it (greenlet 1.1.2 on Python 3.11, from the fastapi-realworld
 * trial's lock of 2022). Names the package as poetry, pip or uv print it; undefined when no such error shows.
 */
export function pythonApiHint(output: string): string | undefined {
  const error = output
    .split("\n")
    .map((l) => /\.(?:c|cc|cpp|h):\d+:\d+: error: (.*)$/.exec(l)?.[1])
    .find((e) => e !== undefined && /[‘'`]_?Py[A-Z]\w*[’'`]/.test(e));
  if (!error) return undefined;
  const built =
    /issues with ([\w.-]+) \(([^)\s]+)\)/.exec(output) ?? // poetry
    /Failed to build `([\w.-]+)==([^`]+)`/.exec(output) ?? // uv
    /Building wheel for ([\w.-]+) \(/.exec(output); // pip
  const pkg = built ? `${built[1]}${built[2] ? ` ${built[2]}` : ""}` : "a dependency";
  const on = pythonOf(output);
  return (
    `${pkg} does not compile against ${on} (${error.replace(/\s+/g, " ").slice(0, 120)}): its C code was written ` +
    `for an older Python's internals; lock a newer release of ${built ? built[1] : "it"} (one with a wheel for ${on}), ` +
    "or run the app on a Python it supports (apphost:app.python: managed, that version in .python-version)"
  );
}

/**
 * Why a dependency's build from source failed, when it is not the host's to fix: a setup.py older than the
 * build tools that build isolation installs (the newest setuptools and Cython), or than the host's Python.
 */
const SOURCE_BUILD_CAUSES: ReadonlyArray<{
  says: RegExp;
  why: string;
  /** The build requirement, and its releases that still build it, when known: a build constraint keeps the lock */
  constraint?: { requirement: string; spec: string };
}> = [
  // PyYAML 5.4.1 and older: its setup.py subclasses build_ext in a way Cython 3 (July 2023) breaks.
  {
    says: /has no attribute 'cython_sources'/,
    why: "its setup.py predates Cython 3, which its isolated build installs",
    constraint: { requirement: "Cython", spec: "<3.0" },
  },
  {
    // django-allauth 0.45.0: `from setuptools import convert_path`, which setuptools 70.0.0 and later no longer export.
    says: /cannot import name 'convert_path' from 'setuptools/,
    why: "its setup.py uses what the newest setuptools, which its isolated build installs, no longer has",
    constraint: { requirement: "setuptools", spec: "<70" },
  },
  {
    says: /cannot import name '\w+' from 'setuptools|module 'setuptools' has no attribute|No module named 'pkg_resources'/,
    why: "its setup.py uses what the newest setuptools, which its isolated build installs, no longer has",
  },
  { says: /No module named 'distutils'/, why: "its setup.py imports distutils, which Python 3.12 removed" },
];

/** A build from source that found no C compiler (setuptools' `command 'x86_64-linux-gnu-gcc' failed: No such file`). */
const NO_COMPILER =
  /command '[^']*\b(?:gcc|cc|g\+\+|c\+\+|clang)' failed: No such file or directory|unable to execute '[^']*\bgcc'/;

/**
 * A failed install's hint when packages that had to build from source (no wheel for the host's platform and
 * Python) failed in their build backend, for poetry, pip and uv: each package with its version and the error its
 * build ended on, which thousands of lines of build warnings may hide from the tail of the output (shynet's
 * lock: pyyaml 5.4.1 and django-allauth 0.45.0 under poetry, 7,168 lines). Undefined when no such failure shows.
 */
export function sourceBuildHint(output: string): string | undefined {
  let psycopgC = false;
  const lines = output.split("\n");
  const failed = new Map<string, string>();
  const tools = new Set<"poetry" | "pip" | "uv">();
  const lastError = (from: number, to: number, strip: RegExp) => {
    for (let i = to - 1; i >= from; i--) {
      const text = lines[i].replace(strip, "").trim();
      if (text !== "" && !/^\[end of output\]$/.test(text)) return text;
    }
    return "";
  };
  lines.forEach((line, i) => {
    // poetry: the backend's output as `    | ...` lines, then this note naming the package.
    const poetry = /issues with ([\w.-]+) \(([^)\s]+)\)\s*$/.exec(line);
    if (poetry && /originates from the build backend/.test(line)) {
      let start = i - 1;
      while (start > 0 && !/^\s*\| /.test(lines[start])) start--;
      let top = start;
      while (top > 0 && /^\s*\|/.test(lines[top - 1])) top--;
      failed.set(`${poetry[1]} ${poetry[2]}`, lastError(top, start + 1, /^\s*\|/));
      tools.add("poetry");
    }
    // pip: `╰─> [N lines of output]` ... `[end of output]`, after the `Collecting <spec>` or `Building wheel for <name>` line.
    if (/^\s*\[end of output\]\s*$/.test(line)) {
      let top = i - 1;
      while (top > 0 && !/╰─> \[\d+ lines? of output\]/.test(lines[top])) top--;
      const named = lines
        .slice(0, top)
        .reverse()
        .map((l) =>
          /^\s*(?:Collecting ([\w.-]+)(?:\[[^\]]*\])?(?:==([^\s;,]+))?|Building wheel for ([\w.-]+) \()/.exec(
            l,
          ),
        )
        .find((m) => m);
      if (named) {
        failed.set(named[3] ?? `${named[1]}${named[2] ? ` ${named[2]}` : ""}`, lastError(top + 1, i, /^\s+/));
        tools.add("pip");
      }
    }
    // uv: `Failed to build `<name>==<version>``, then the backend's output up to its `hint:` line.
    const uv = /Failed to build `([\w.-]+)==([^`]+)`/.exec(line);
    if (uv) {
      let end = i + 1;
      while (end < lines.length && !/^\s*hint: /.test(lines[end]) && !/Failed to build `/.test(lines[end]))
        end++;
      failed.set(`${uv[1]} ${uv[2]}`, lastError(i + 1, end, /^\s+/));
      tools.add("uv");
    }
  });
  // A build that found no compiler is the host's to fix, which the install's error says (release.sh: no C compiler):
  // no newer release helps. psycopg-c, psycopg[c], is never a wheel, and needs libpq's headers too.
  for (const [pkg, error] of [...failed]) {
    if (!NO_COMPILER.test(error)) continue;
    failed.delete(pkg);
    if (pkg.split(" ")[0] === "psycopg-c") psycopgC = true;
  }
  const psycopgNote = psycopgC
    ? "psycopg-c (psycopg[c]) never comes as a wheel: it builds against libpq, so besides build-essential and " +
      "python3-dev add libpq-dev to apphost:host.packages, or depend on psycopg[binary] instead"
    : undefined;
  if (failed.size === 0) return psycopgNote;
  const causes = [...failed].map(([pkg, error]) => ({
    pkg,
    error,
    cause: SOURCE_BUILD_CAUSES.find((c) => c.says.test(error)),
  }));
  const each = causes.map(
    ({ pkg, error, cause }) =>
      `${pkg}${error ? ` (${error.slice(0, 160)}${cause ? `: ${cause.why}` : ""})` : ""}`,
  );
  // Poetry builds each package with the constraints pyproject.toml gives it (apphost's Poetry, 2.5.1, reads them):
  // the locked release stays, its isolated build gets the older tool (the shynet trial: both built). uv's
  // build-constraint-dependencies hold for every build, and uv.lock records them, so the lock is written again; its
  // versions stay (checked with uv 0.13.9: pyyaml 5.4.1 built once `cython<3.0` was there and in the lock).
  const constrained = causes.filter((c) => c.cause?.constraint);
  const keep =
    `; or keep the locked ${constrained.length === 1 ? "release" : "releases"} and constrain ` +
    `${constrained.length === 1 ? "its build" : "their builds"}: in pyproject.toml, under `;
  const uvConstraints = [
    ...new Set(
      constrained.map(({ cause }) => `"${cause!.constraint!.requirement}${cause!.constraint!.spec}"`),
    ),
  ];
  const constrain =
    constrained.length === 0
      ? ""
      : tools.has("poetry")
        ? `${keep}[tool.poetry.build-constraints], the ${constrained.length === 1 ? "line" : "lines"} ` +
          constrained
            .map(
              ({ pkg, cause }) =>
                `${pkg.split(" ")[0]} = { ${cause!.constraint!.requirement} = "${cause!.constraint!.spec}" }`,
            )
            .join(" and ")
        : tools.has("uv")
          ? `${keep}[tool.uv], build-constraint-dependencies = [${uvConstraints.join(", ")}], then run uv lock, ` +
            "which records the constraints and keeps the locked versions"
          : "";
  const on = pythonOf(output);
  const names = [...failed.keys()].map((k) => k.split(" ")[0]);
  const how = [
    ...(tools.has("poetry") ? [`poetry update ${names.join(" ")}`] : []),
    ...(tools.has("uv") ? [`uv lock ${names.map((n) => `--upgrade-package ${n}`).join(" ")}`] : []),
    ...(tools.has("pip") ? ["a newer pin in the requirements file"] : []),
  ];
  return (
    `${each.length === 1 ? "a dependency" : `${each.length} dependencies`} with no wheel for ${on} failed to build ` +
    `from source: ${each.join("; ")}; lock ${each.length === 1 ? "a newer release" : "newer releases"} ` +
    `(${how.join(", or ")}${tools.has("poetry") || tools.has("uv") ? "; first raise a pyproject.toml constraint that allows no newer release, as a caret such as ^5.4.1 stays below 6" : ""}), ` +
    `one with a wheel for ${on} or a build that works with today's build tools` +
    constrain +
    (psycopgNote ? `; ${psycopgNote}` : "")
  );
}

/**
 * A failed migration's or health gate's hint when the app refused the APP_ENV apphost gave it: pydantic's
 * settings (v1 and v2) name the field on the line after `ValidationError: <n> validation error(s) for <Settings>`,
 * and apphost sets APP_ENV to the stack's name, which an app with its own values (fastapi-realworld's
 * `prod`, `dev`, `test`) refuses. Undefined when no such error shows.
 */
export function appEnvHint(output: string): string | undefined {
  const lines = output.split("\n");
  const start = lines.findIndex((l) => /ValidationError: \d+ validation errors? for /.test(l));
  if (start < 0 || !lines.slice(start + 1).some((l) => /(?:^|: )app_env\s*$/i.test(l))) return undefined;
  return (
    "the app's settings refused APP_ENV, which apphost sets to the stack's name unless apphost:app.env sets it: " +
    "set it to a value the app accepts (its error in the output below lists them), e.g. " +
    "pulumi config set --path 'apphost:app.env.APP_ENV' production"
  );
}

/**
 * A failed migration's or health gate's hint when the app's pydantic settings require fields its environment lacks
 * (pydantic 2's `Field required [type=missing`, pydantic 1's `field required (type=value_error.missing)`, each on the
 * line after the field's name): the variables to set, by pydantic-settings' default (the field's name, any case),
 * and, for a database's, the references apphost:app.env's values may use. Undefined when no such error shows.
 */
export function settingsMissingHint(output: string): string | undefined {
  const lines = output.split("\n");
  const start = lines.findIndex((l) => /ValidationError: \d+ validation errors? for /.test(l));
  if (start < 0) return undefined;
  const names: string[] = [];
  for (let i = start + 1; i < lines.length - 1; i++) {
    if (!/(?:^|: )\s+[Ff]ield required (?:\[type=missing|\(type=value_error\.missing\))/.test(lines[i + 1]))
      continue;
    // A nested model's field (`security.jwt_secret_key`) is read as SECURITY__JWT_SECRET_KEY with the usual
    // env_nested_delimiter, `__`.
    const name = /(?:^|: )([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$/
      .exec(lines[i])?.[1]
      ?.toUpperCase()
      .replace(/\./g, "__");
    if (name && !names.includes(name)) names.push(name);
  }
  if (names.length === 0) return undefined;
  const nested = names.some((n) => n.includes("__"));
  return (
    `the app's settings require ${names.join(", ")}, which its environment lacks: set ` +
    `${names.length === 1 ? "it" : "each"} in apphost:app.env (apphost:secretEnv for a secret; with the settings' ` +
    "env_prefix before the name, if they have one" +
    (nested ? ", and their env_nested_delimiter for __" : "") +
    ")" +
    databaseReferences(names)
  );
}

/**
 * For variables an app's settings want, where one is a database's by its words (DB_HOST, POSTGRES_SERVER,
 * SQLALCHEMY_DATABASE_URI, PGHOST; not ADBLOCK's or MONGODB_URL's): the references apphost:app.env's values may use.
 */
function databaseReferences(names: readonly string[]): string {
  return names.some((n) => /(?:^|_)(?:DB|DATABASE|POSTGRES)(?:_|$)|^PG[A-Z]/.test(n))
    ? ", where a value may reference the stack's database: ${database.host}, ${database.port}, ${database.user}, " +
        "${database.password}, ${database.name}, ${database.url}"
    : "";
}

/**
 * A failed migration's or health gate's hint when a Node app's own check of its environment refused variables: zod's
 * flattened field errors, printed after `Invalid env` or `Invalid environment variables` as JSON (w3cj/
 * hono-open-api-starter's `{ "LOG_LEVEL": [ "Invalid option: ..." ] }`) or as Node prints an object (@t3-oss/env's
 * `{ DATABASE_URL: [ 'Required' ] }`): each variable with its first message, and where to set it. The last such
 * error of the output; undefined when none shows.
 */
export function envSchemaHint(output: string): string | undefined {
  const lines = output.split("\n");
  let start = -1;
  for (let i = lines.length - 1; i >= 0 && start < 0; i--)
    if (/Invalid env(?:ironment variables)?\b/i.test(lines[i])) start = i;
  if (start < 0) return undefined;
  // The error's object: from that line to the one that closes it (a journal's lines may carry a prefix).
  const block: string[] = [];
  for (const line of lines.slice(start, start + 60)) {
    block.push(line);
    if (block.length > 1 && /(?:^|: )\}\s*$/.test(line)) break;
    if (block.length === 1 && /\}\s*$/.test(line)) break;
  }
  const found = new Map<string, string>();
  const entry = /["']?([A-Z][A-Z0-9_]*)["']?\s*:\s*\[\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')/g;
  const text = block.map((l) => l.replace(/^.*?\]: /, "")).join("\n");
  for (const m of text.matchAll(entry)) {
    if (!found.has(m[1])) found.set(m[1], (m[2] ?? m[3]).replace(/\\(.)/g, "$1"));
  }
  if (found.size === 0) return undefined;
  const names = [...found.keys()];
  return (
    `the app's own check of its environment refused ${[...found].map(([n, why]) => `${n} (${why})`).join(", ")}: ` +
    `set ${names.length === 1 ? "it" : "each"} in apphost:app.env (apphost:secretEnv for a secret)` +
    databaseReferences(names)
  );
}

/**
 * A failed install's, migration's or health gate's hint when the app looked for a dotenv file in its release that
 * is not there: Starlette's `Config file '<path>' not found.`, Python's `FileNotFoundError` and Node's `ENOENT` for a
 * file named `.env` or `.env.<name>`. apphost:app.excludes leaves such files out (a developer's own, with their
 * values), and apphost:app.dotenv links one to the stack's env file. Undefined when no such error shows.
 */
export function dotenvHint(output: string): string | undefined {
  const missing = [
    /Config file '([^']+)' not found/,
    /No such file or directory: '([^']+)'/,
    /ENOENT: no such file or directory, (?:open|stat|access) '([^']+)'/,
  ];
  for (const line of output.split("\n")) {
    for (const re of missing) {
      const file = re.exec(line)?.[1];
      if (!file || !/(?:^|\/)\.env(?:\.[A-Za-z0-9_-]+)?$/.test(file)) continue;
      const inRelease = /\/releases\/[^/]+\/(.+)$/.exec(file)?.[1];
      const rel = inRelease !== undefined ? inRelease : file.startsWith("/") ? undefined : file;
      // `src/app/core/../../.env` is `src/.env` (no path module here: this provider is serialized into the state).
      if (rel === undefined) continue;
      const parts: string[] = [];
      let outside = false;
      for (const part of rel.split("/"))
        if (part === "..") outside ||= parts.pop() === undefined;
        else if (part !== "." && part !== "") parts.push(part);
      if (outside) continue;
      const shown = parts.join("/");
      return (
        `the app reads a dotenv file, ${shown}${inRelease === undefined ? " (relative to where its command runs)" : ""}, ` +
        "which the release does not have (apphost:app.excludes leaves out .env files: a developer's own, with their values); " +
        `list it in apphost:app.dotenv (pulumi config set --path 'apphost:app.dotenv[0]' ${shown}), and each release gets a link there ` +
        "to the stack's env file, whose values the app's processes have in their environment already"
      );
    }
  }
  return undefined;
}

/**
 * The error of a failed `apphost-release deploy|rollback`: which phase failed
 * and why (its `apphost: phase <name> failed: <reason>` line, else its exit
 * status), then the tail of the script's output. A plain Error: Pulumi
 * serializes this provider, and an Error subclass loses its message.
 */
export function releaseError(
  what: string,
  res: RemoteResult,
  conn: Pick<SshConnection, "privateKey" | "user" | "host" | "port" | "proxy" | "hostKey">,
  redactions: string[] = [],
): Error {
  // apphost-release's exit statuses (EXIT_CODES in components/release/phases.ts; kept in step by a unit test).
  const byStatus: Record<number, string> = {
    2: "usage",
    10: "check",
    11: "upload",
    12: "install",
    13: "backup",
    14: "migrate",
    15: "publish",
    16: "health-gate",
    17: "finish",
    18: "check",
    19: "choose",
    21: "restore",
    22: "choose",
  };
  const job = /^job_id=(\S+)$/m.exec(res.stdout)?.[1];
  const lines = res.stderr.split("\n");
  // The first failure is the deploy's own; later ones come from the automatic rollback.
  const failedLine = lines.find((l) => /^apphost: phase \S+ failed: /.test(l));
  const failed = failedLine ? /^apphost: phase (\S+) failed: (.*)$/.exec(failedLine) : null;
  const started = [...lines].reverse().find((l) => /^apphost: phase \S+: start$/.test(l));
  const lastStarted = started ? /^apphost: phase (\S+): start$/.exec(started)![1] : undefined;
  const phase = failed?.[1] ?? byStatus[res.code];
  let head: string;
  if (phase && res.code !== 255) {
    // A package that takes its version from git failed before any compiler ran: the host's "no C compiler" clause
    // (release.sh's on_error, which sees no output) does not apply.
    const scm = phase === "install" ? scmVersionHint(res.stderr) : undefined;
    const reason = scm
      ? failed?.[2].replace(/; the host has no C compiler: [^;]*apphost:host\.packages/, "")
      : failed?.[2];
    head = `${what}: phase ${phase} failed (exit status ${res.code})${reason !== undefined ? `: ${reason}` : ""}`;
    const hint =
      phase === "install"
        ? (scm ??
          buildHint(res.stderr) ??
          pythonApiHint(res.stderr) ??
          sourceBuildHint(res.stderr) ??
          dotenvHint(res.stderr))
        : phase === "migrate" || phase === "health-gate"
          ? (appEnvHint(res.stderr) ??
            settingsMissingHint(res.stderr) ??
            envSchemaHint(res.stderr) ??
            dotenvHint(res.stderr))
          : undefined;
    if (hint) head = `${head.replace(/:$/, "")}; ${hint}`; // a reason that ends with `:` is followed by lines below
    if (res.code === 20)
      head += "; the automatic rollback failed too: look at the host (apphost-release status)";
  } else if (res.code === 255 && !lastStarted) {
    head = `${what}: ${sshFailure(conn as SshConnection, res.stderr)} (exit status 255)`;
  } else if (res.code === 23) {
    head =
      `${what}: its job on the host${job ? ` (${job})` : ""} was killed${lastStarted ? ` during phase ${lastStarted}` : ""} ` +
      `before it could finish or roll back (exit status 23: OOM, systemctl kill or stop, a reboot); look at the host ` +
      `(apphost-release status); the next \`pulumi up\` takes over its deploy lock and tries again`;
  } else if ((res.code === 255 || res.code >= 128) && job && !/^job_status=/m.test(res.stdout)) {
    head =
      `${what}: lost the connection to its job ${job}${lastStarted ? ` during phase ${lastStarted}` : ""} (exit status ${res.code}); ` +
      `the job goes on on the host, and the next \`pulumi up\` waits for it and adopts its release if it deployed this code`;
  } else if (res.code === 255 || res.code >= 128) {
    head =
      `${what}: interrupted${lastStarted ? ` during phase ${lastStarted}` : ""} (exit status ${res.code}: ` +
      `the SSH connection or apphost-release on the host was killed); the next \`pulumi up\` takes over its deploy lock and tries again`;
  } else {
    head = `${what}: exit status ${res.code}${lastStarted ? ` during phase ${lastStarted}` : ""}`;
  }
  const output = tail(res.stderr || res.stdout, 40);
  // The warnings the run gave before it failed, which its last lines no longer show: an install phase's word on the
  // app (no alembic revision, no migration set) often says why a later phase failed.
  const before = failedLine ? res.stderr.slice(0, res.stderr.indexOf(failedLine)) : "";
  const warnings = releaseWarnings(before)
    .map((w) => w.split("\n")[0])
    .filter((w) => !output.includes(w));
  const earlier = warnings.length > 0 ? `\n--- warnings before it failed ---\n${warnings.join("\n")}` : "";
  const text = `${head}${earlier}\n--- last lines of apphost-release's output ---\n${output}`;
  return new Error(redact(text, secretsOf(conn, redactions)));
}

/** What output shown to the user must not carry: the SSH keys and the redactions. */
function secretsOf(conn: Pick<SshConnection, "privateKey" | "proxy">, redactions: string[] = []): string[] {
  return [conn.privateKey, ...(conn.proxy?.kind === "jump" ? [conn.proxy.privateKey] : []), ...redactions];
}

/** A job's report: the `key=value` lines `apphost-release start|follow` print on stdout (the last of each wins). */
export function jobReport(stdout: string): {
  id: string;
  command: string;
  key: string;
  /** The job's exit status; absent when the job's end was not seen (connection lost) */
  status?: number;
  result: Record<string, string>;
} {
  const kv = parseKv(stdout);
  return {
    id: kv.job_id ?? "",
    command: kv.job_command ?? "",
    key: kv.job_key ?? "",
    status: kv.job_status !== undefined && /^\d+$/.test(kv.job_status) ? Number(kv.job_status) : undefined,
    result: kv,
  };
}

/**
 * The client lost the job rather than the job failing: ssh failed (255) or was
 * killed (>= 128), and no `job_status` line came back. A job that itself
 * ended with 137 (its deploy killed on the host) reports job_status=137.
 */
export function lostConnection(res: RemoteResult): boolean {
  return (res.code === 255 || res.code >= 128) && jobReport(res.stdout).status === undefined;
}

/**
 * What identifies a deploy's work, for adopting one whose client went away:
 * the artifact, the release's content (its files and its build: the same
 * artifact built by another apphost:app.build is other work), the
 * requirements and the host configuration it ran with.
 */
export function deployKey(
  artifactSha256: string,
  requirementsHash: string,
  configHash: string,
  contentHash: string,
): string {
  const crypto = require("crypto") as typeof import("crypto");
  return crypto
    .createHash("sha256")
    .update(`${artifactSha256}\n${requirementsHash}\n${configHash}\n${contentHash}`)
    .digest("hex")
    .slice(0, 32);
}

/**
 * Run `apphost-release start <args>` and follow it to its end. The deploy or
 * rollback runs detached on the host (a transient systemd unit), so a lost
 * connection only ends the following: the client reattaches (`follow <job>`)
 * with backoff until the job's end is seen or the hour is up.
 */
async function runJob(
  inputs: ReleaseInputs,
  args: string[],
  opts: { what: string; key: string; stdin?: Buffer },
): Promise<RemoteResult> {
  const deadline = Date.now() + 3600 * 1000;
  const start = [inputs.script, `--owner=${inputs.lockOwner}`, `--key=${opts.key}`, "start", ...args];
  let res = await runRemote(inputs.connection, `exec ${start.map(shellQuote).join(" ")}`, {
    what: opts.what,
    stdin: opts.stdin,
    timeoutSeconds: 3600,
    allowFailure: true,
  });
  const job = jobReport(res.stdout).id;
  for (let attempt = 1; job && lostConnection(res) && attempt <= 30 && Date.now() < deadline; attempt++) {
    await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** (attempt - 1), 15000)));
    const again = await runRemote(
      inputs.connection,
      `exec ${[inputs.script, "follow", job].map(shellQuote).join(" ")}`,
      {
        what: `${opts.what} (following job ${job} again)`,
        timeoutSeconds: Math.max(60, Math.floor((deadline - Date.now()) / 1000)),
        allowFailure: true,
      },
    );
    // A follow that never reached the host keeps the output seen so far.
    res =
      again.code === 255 && !again.stdout
        ? { ...res, code: 255, stderr: `${res.stderr}\n${again.stderr}` }
        : again;
  }
  if (job && lostConnection(res)) {
    res = {
      ...res,
      stderr:
        `${res.stderr}\napphost: lost the connection to job ${job} and could not follow it again; it goes on on the host. ` +
        `The next \`pulumi up\` waits for it (and adopts its release if it deployed this same code); ` +
        `on the host: sudo ${inputs.script} follow ${job}`,
    };
  }
  return res;
}

/**
 * Before a deploy: the host's latest job. One still running (a deploy whose
 * client went away, or someone else's) is followed to its end first. A
 * finished deploy of this same work that went live is adopted: the release it
 * made is this one, and nothing runs again.
 */
async function latestJob(inputs: ReleaseInputs, what: string): Promise<ReturnType<typeof jobReport>> {
  const res = await runRemote(inputs.connection, `exec ${shellQuote(inputs.script)} follow`, {
    what: `${what}: the host's latest job`,
    timeoutSeconds: 3600,
    allowFailure: true,
  });
  if (res.code === 255 && !res.stdout) throw releaseError(what, res, inputs.connection, inputs.redactions);
  return jobReport(res.stdout);
}

/** The artifact's bytes, and the key of a deploy of it with these inputs (deployKey). */
function artifactOf(inputs: ReleaseInputs): { artifact: Buffer; sha: string; key: string } {
  const fs = require("fs") as typeof import("fs");
  const crypto = require("crypto") as typeof import("crypto");
  const artifact = fs.readFileSync(inputs.artifact);
  const sha = crypto.createHash("sha256").update(artifact).digest("hex");
  return {
    artifact,
    sha,
    key: deployKey(sha, inputs.requirementsHash, inputs.configHash, inputs.contentHash),
  };
}

/** The release a finished deploy of this same work made and left live, which a deploy adopts instead of running. */
function adoptable(before: ReturnType<typeof jobReport>, key: string): string | undefined {
  const done =
    before.command === "deploy" &&
    before.key === key &&
    before.status === 0 &&
    before.result.outcome === "deployed" &&
    before.result.live === before.result.release;
  return done && before.result.release ? before.result.release : undefined;
}

/**
 * `apphost-release start prepare`: upload and install the release without serving it (check, upload, install),
 * under the host's deploy lock, as each app host does side by side before a roll (./rollout.ts). A job still running is
 * followed to its end first, as a deploy does; a host whose last job already deployed this same work (adopted by
 * its deploy) is left alone. Returns whether it prepared: its deploy then sends no artifact.
 */
export async function prepare(
  inputs: ReleaseInputs,
  releaseId: string,
  opts: { adopt?: boolean } = {},
): Promise<boolean> {
  const { artifact, sha, key } = artifactOf(inputs);
  const what = `prepare ${releaseId}`;
  const before = await latestJob(inputs, what);
  if (opts.adopt !== false && adoptable(before, key)) return false;
  // A job, as the deploy is: a lost connection during a long install is followed again, not a failed `up`.
  const res = await runJob(inputs, ["prepare", releaseId, inputs.requirementsHash, sha], {
    what,
    key: `prepare-${key}`,
    stdin: artifact,
  });
  if (res.code !== 0) throw releaseError(what, res, inputs.connection, inputs.redactions);
  printWarnings(inputs, res.stderr);
  return true;
}

export async function deploy(
  inputs: ReleaseInputs,
  releaseId: string,
  /** prepared: the host has the release uploaded and installed (prepare), so no artifact goes on stdin */
  opts: { adopt?: boolean; prepared?: boolean } = {},
): Promise<Outputs> {
  const { artifact, sha, key } = artifactOf(inputs);
  const what = `release ${releaseId}`;
  // A prepared host's latest job is that prepare, just followed to its end: nothing to wait for or adopt.
  const before = opts.prepared ? undefined : await latestJob(inputs, what);
  let res: RemoteResult;
  let deployed = releaseId;
  const adopted = before && opts.adopt !== false ? adoptable(before, key) : undefined;
  if (adopted) {
    // Its client went away (a killed `pulumi up`, a lost connection); the host finished it.
    deployed = adopted;
    res = { code: 0, stdout: "", stderr: "" };
  } else {
    res = await runJob(inputs, ["deploy", releaseId, inputs.requirementsHash, sha], {
      what,
      key,
      ...(opts.prepared ? {} : { stdin: artifact }),
    });
    if (res.code !== 0) throw releaseError(what, res, inputs.connection, inputs.redactions);
  }
  printWarnings(inputs, res.stderr);
  if (inputs.rollbackTo) {
    const back = await rollback(inputs, inputs.rollbackTo);
    return { ...inputs, releaseId: deployed, ...back };
  }
  return { ...inputs, releaseId: deployed, live: deployed, phaseSeconds: phaseSeconds(res.stderr) };
}

export async function rollback(
  inputs: ReleaseInputs,
  target: string,
): Promise<{ live: string; phaseSeconds: PhaseTime[] }> {
  const what = `rollback to ${target}`;
  await latestJob(inputs, what);
  const res = await runJob(inputs, ["rollback", target], { what, key: `rollback-${target}` });
  if (res.code !== 0) throw releaseError(what, res, inputs.connection, inputs.redactions);
  printWarnings(inputs, res.stderr);
  return { live: parseKv(res.stdout).current || target, phaseSeconds: phaseSeconds(res.stderr) };
}

const RELEASE_KEYS: (keyof ReleaseInputs)[] = [
  "contentHash",
  "requirementsHash",
  "configHash",
  "rollbackTo",
  "script",
];

/** The work a deploy does on a host: its code and requirements, and the config and script it runs with. */
const WORK_KEYS = ["contentHash", "requirementsHash", "configHash", "script"] as const;

/**
 * The state records this same work as done on the host: a deploy of it now is
 * only for drift (a refresh saw the host serve another release, or a unit of
 * it down). The host's last job, this work finished, is then not one whose
 * client went away, to adopt as it is: it runs again. The rule of one host's
 * Release and of each host of a Rollout.
 */
export function onlyForDrift(
  olds: Partial<Record<(typeof WORK_KEYS)[number], string>>,
  news: Partial<Record<(typeof WORK_KEYS)[number], string>>,
): boolean {
  return WORK_KEYS.every((k) => (news[k] ?? "") === (olds[k] ?? ""));
}

/** The release on the host must change: new code, config or rollback target, or `current` switched by hand. */
function releaseChanged(olds: Outputs, news: ReleaseInputs): boolean {
  return (
    RELEASE_KEYS.some((k) => (news[k] ?? "") !== (olds[k] ?? "")) ||
    // Someone switched `current` by hand (seen by a refresh): put the declared release back.
    (olds.live !== undefined && olds.live !== (news.rollbackTo || olds.releaseId))
  );
}

export const releaseProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: Outputs, news: ReleaseInputs) {
    if (RELEASE_KEYS.some((k) => news[k] === UNKNOWN) || JSON.stringify(news.connection).includes(UNKNOWN))
      return { changes: true };
    const changes =
      releaseChanged(olds, news) ||
      // Only the stored connection or provider code: an update with no remote work.
      connectionChanged(olds.connection, news.connection) ||
      (olds.providerVersion ?? 1) !== news.providerVersion;
    return { changes };
  },

  async create(inputs: ReleaseInputs) {
    const releaseId = newReleaseId(inputs.contentHash);
    return { id: releaseId, outs: withoutRedactions(await deploy(inputs, releaseId)) };
  },

  async update(_id: string, olds: Outputs, news: ReleaseInputs) {
    return { outs: withoutRedactions((await updateRelease(olds, news)).outs) };
  },

  async read(id: string, props: Outputs) {
    const conn = currentConnection(props.connection);
    const res = await runRemote(conn, `exec ${shellQuote(props.script)} status`, {
      what: "release status",
      allowFailure: true,
    });
    // An unreachable host is an error, not drift: only a host that answers
    // (the script missing counts as "nothing live") says what is live.
    if (res.code === 255) {
      throw new Error(`release status: ${sshFailure(conn, res.stderr)}\n${res.stderr.trim()}`);
    }
    return { id, props: { ...props, live: liveOf(res.code === 0 ? parseKv(res.stdout) : {}) } };
  },

  // Nothing to do: the app component's teardown removes /srv/<id> with every release.
  async delete() {},
};

/** Update of a Release: no remote work, a rollback on purpose, or a deploy. */
async function updateRelease(olds: Outputs, news: ReleaseInputs): Promise<{ outs: Outputs }> {
  if (!releaseChanged(olds, news)) {
    // The host moved, or apphost's provider code changed: the same release stays live.
    const { releaseId, live, phaseSeconds } = olds;
    return { outs: { ...news, releaseId, live, ...(phaseSeconds ? { phaseSeconds } : {}) } };
  }
  const contentChanged =
    news.contentHash !== olds.contentHash || news.requirementsHash !== olds.requirementsHash;
  const configChanged = news.configHash !== olds.configHash || news.script !== olds.script;
  const releaseId = contentChanged ? newReleaseId(news.contentHash, olds.releaseId) : olds.releaseId;
  if (!contentChanged && !configChanged && news.rollbackTo) {
    // Rollback on purpose: only traffic moves; the database stays as it is.
    return { outs: { ...news, releaseId, ...(await rollback(news, news.rollbackTo)) } };
  }
  // New code, or the same code with a new env file or units: publish it
  // through the same health-gated switch, so a config change drops nothing.
  // Neither: a refresh saw the host serve something else, or a unit of the release down (onlyForDrift).
  return { outs: await deploy(news, releaseId, { adopt: !onlyForDrift(olds, news) }) };
}

/** The outputs minus the redactions: secret values are not kept in the state for nothing. */
function withoutRedactions(outs: Outputs): Outputs {
  const rest = { ...outs };
  delete rest.redactions;
  return rest;
}

export class Release extends pulumi.dynamic.Resource {
  declare public readonly releaseId: pulumi.Output<string>;
  declare public readonly live: pulumi.Output<string>;
  declare public readonly phaseSeconds: pulumi.Output<PhaseTime[]>;

  constructor(name: string, args: ReleaseArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      releaseProvider,
      name,
      {
        ...args,
        connection: pulumi.secret(args.connection),
        redactions: pulumi.secret(args.redactions ?? []),
        providerVersion: PROVIDER_VERSION,
        releaseId: undefined,
        live: undefined,
        phaseSeconds: undefined,
      },
      { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "redactions"] },
      "apphost",
      "Release",
    );
  }
}
