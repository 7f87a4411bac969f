/**
 * components/paths.ts is the one module that names host paths: no other
 * module spells out /srv/, /etc/systemd/, /etc/caddy/ or /etc/nginx/ in code
 * (comments may show them). A new literal fails here; put it in paths.ts.
 * Likewise, components/release/id.ts is the one module that spells out a release id's pattern.
 */
import * as assert from "assert/strict";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.join(__dirname, "..", "..", "components");
const SCRIPTS = path.join(__dirname, "..", "..", "scripts");
const PATTERNS = ["/srv/", "/etc/systemd/", "/etc/caddy/", "/etc/nginx/"];

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

/** The code of a file, comments blanked out (block comments, `//` comments, doc lines). */
export function codeOnly(text: string): string[] {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, " "))
    .split("\n")
    .map((l) => l.replace(/(^|[^:"'`])\/\/.*$/, "$1"));
}

describe("paths.ts names every host path", () => {
  it("finds comments apart from code (the scanner itself)", () => {
    assert.deepEqual(codeOnly('/** /srv/x */\nconst a = "/srv/y"; // /etc/caddy/z'), [
      "             ",
      'const a = "/srv/y"; ',
    ]);
  });

  it("no module but components/paths.ts spells out /srv/, /etc/systemd/, /etc/caddy/ or /etc/nginx/ in code", () => {
    const offenders: string[] = [];
    for (const file of tsFiles(ROOT)) {
      if (path.relative(ROOT, file) === "paths.ts") continue;
      codeOnly(fs.readFileSync(file, "utf8")).forEach((line, i) => {
        for (const p of PATTERNS) {
          if (line.includes(p))
            offenders.push(`components/${path.relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
        }
      });
    }
    assert.deepEqual(offenders, [], `put these paths in components/paths.ts:\n${offenders.join("\n")}`);
  });
});

describe("components/release/id.ts spells out a release id's shape", () => {
  it("no other module or script spells out YYYYMMDDHHMMSS-<8 hex> as a pattern in code", () => {
    const offenders: string[] = [];
    for (const file of [...tsFiles(ROOT), ...tsFiles(SCRIPTS)]) {
      if (file === path.join(ROOT, "release", "id.ts")) continue;
      codeOnly(fs.readFileSync(file, "utf8")).forEach((line, i) => {
        if (/\{14\}-\[0-9a-f\]\{8\}/.test(line))
          offenders.push(`${path.relative(path.dirname(ROOT), file)}:${i + 1}: ${line.trim()}`);
      });
    }
    assert.deepEqual(
      offenders,
      [],
      `use RELEASE_ID_SHAPE or isReleaseId (components/release/id.ts):\n${offenders.join("\n")}`,
    );
  });
});

/** The modules a file imports (`from "./x"`, `import("./x")`, `require("./x")`): relative ones resolved to files, packages as named. */
function importsOf(file: string): string[] {
  const specs = [...fs.readFileSync(file, "utf8").matchAll(/(?:from|import\(|require\()\s*"([^"]+)"/g)].map(
    (m) => m[1],
  );
  return specs.map((s) => {
    if (!s.startsWith(".")) return s;
    const base = path.resolve(path.dirname(file), s);
    return [`${base}.ts`, path.join(base, "index.ts")].find((f) => fs.existsSync(f)) ?? base;
  });
}

describe("the pure modules (config, renderers, the release script) load nothing of Pulumi", () => {
  it("finds a package imported through another module (the walker itself)", () => {
    const server = path.join(ROOT, "server.ts");
    assert.ok(importsOf(server).includes("@pulumi/pulumi"));
    assert.ok(importsOf(server).includes(path.join(ROOT, "render", "caddy.ts")));
  });

  it("no module under components/config (but its Pulumi boundary, index.ts), render/ or release/ reaches @pulumi/*", () => {
    const pure = [
      ...tsFiles(path.join(ROOT, "config")).filter((f) => path.basename(f) !== "index.ts"),
      ...tsFiles(path.join(ROOT, "render")),
      ...tsFiles(path.join(ROOT, "release")),
      ...["paths.ts", "shell.ts", "shellfile.ts"].map((f) => path.join(ROOT, f)),
    ];
    const offenders: string[] = [];
    for (const start of pure) {
      // Breadth-first, so the chain reported is a shortest one.
      const via = new Map<string, string[]>([[start, []]]);
      const queue = [start];
      while (queue.length > 0) {
        const file = queue.shift()!;
        for (const dep of importsOf(file)) {
          const chain = [...via.get(file)!, path.relative(ROOT, file)];
          if (dep.startsWith("@pulumi/")) {
            offenders.push(`${[...chain, dep].join(" -> ")}`);
            queue.length = 0;
            break;
          }
          if (dep.startsWith("/") && !via.has(dep) && dep.endsWith(".ts")) {
            via.set(dep, chain);
            queue.push(dep);
          }
        }
      }
    }
    assert.deepEqual(
      offenders,
      [],
      `a pure module imports a component or Pulumi itself; move what it needs into a pure module:\n${offenders.join("\n")}`,
    );
  });
});
