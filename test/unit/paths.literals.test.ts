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
