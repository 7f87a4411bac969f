/** components/shell.ts: quoting and the safe-word checks every renderer shares. */
import * as assert from "assert/strict";
import { spawnSync } from "child_process";
import { ansiC, isHostName, isUrlPath, shellQuote } from "../../components/shell";

describe("shell.ts", () => {
  it("quotes what bash would split or expand, and bash reads back the same word", () => {
    for (const word of ["plain", "", "a b", "it's", "$HOME", "`x`", "a\nb", "*"]) {
      const res = spawnSync("bash", ["-c", `printf %s ${shellQuote(word)}`], { encoding: "utf8" });
      assert.equal(res.stdout, word);
      const c = spawnSync("bash", ["-c", `printf %s ${ansiC(word)}`], { encoding: "utf8" });
      assert.equal(c.stdout, word);
    }
    assert.equal(shellQuote("/srv/shop-prod/bin/apphost-release"), "/srv/shop-prod/bin/apphost-release");
  });

  it("host names and IPv4 addresses pass; spaces, braces, wildcards and empty labels do not", () => {
    for (const ok of ["shop.example.com", "10.0.0.11", "localhost", "Shop.Example.com"])
      assert.ok(isHostName(ok), ok);
    for (const bad of ["", "bad host", "x}{", "*.example.com", "a..b", "-a.b", "a".repeat(64) + ".com"])
      assert.ok(!isHostName(bad), bad);
  });

  it("URL paths start with / and hold no quote, space or brace", () => {
    for (const ok of ["/", "/healthz", "/api/health", "/static/"]) assert.ok(isUrlPath(ok), ok);
    for (const bad of ["healthz", "/a b", "/x{", "/a'b", ""]) assert.ok(!isUrlPath(bad), bad);
  });
});
