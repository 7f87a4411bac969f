/**
 * components/paths.ts is the one module that names host paths: no other
 * module spells out /srv/, /etc/systemd/, /etc/caddy/ or /etc/nginx/ in code
 * (comments may show them). A new literal fails here; put it in paths.ts.
 */
import * as assert from "assert/strict";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.join(__dirname, "..", "..", "components");
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
