/** components/shell.ts: quoting and the safe-word checks every renderer shares. */
import * as assert from "assert/strict";
import { spawnSync } from "child_process";
import { ansiC, assertSafe, isHostName, isUrlPath, SAFE, shellQuote } from "../../components/shell";

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

  it("assertSafe names every offender, and a value that may be a secret by its key alone", () => {
    assert.doesNotThrow(() =>
      assertSafe("site", [
        ["apphost:app.healthPath", "/healthz", SAFE.urlPath],
        ["apphost:proxy.httpPort", 80, SAFE.port],
      ]),
    );
    assert.throws(
      () =>
        assertSafe("site", [
          ["apphost:app.healthPath", "/ok", SAFE.urlPath],
          ["apphost:app.staticDir", "../etc", SAFE.relativeDir],
          ["apphost:proxy.httpPort", 0, SAFE.port],
          ["apphost:alerts.webhook", 'https://hooks.example/"s3cret"', SAFE.quotableUrl],
        ]),
      {
        message:
          "site: not safe to write (apphost's config check should have refused it; please report this):\n" +
          '  - apphost:app.staticDir: "../etc" is not a directory inside the release, like frontend/dist\n' +
          "  - apphost:proxy.httpPort: 0 is not a TCP port (1-65535)\n" +
          "  - apphost:alerts.webhook: its value is not an http(s) URL without spaces, quotes or backslashes",
      },
    );
  });

  it("each rule refuses what would break the file it guards", () => {
    const refused: Array<[keyof typeof SAFE, string | number]> = [
      ["hostName", "a b"],
      ["ipv4", "10.0.0.256"],
      ["relativeDir", "a/../b"],
      ["relativeFile", "/etc/passwd"],
      ["urlPrefix", "/"],
      ["absolutePath", "/srv/%i"],
      ["hostPath", "/srv/a b"],
      ["size", "25 MB"],
      ["email", "a b@c"],
      ["httpsUrl", "http://x"],
      ["oneLine", "a\nb"],
      ["name", "Web"],
      ["envName", "1X"],
      ["envValue", "a\0b"],
      ["pgIdentifier", "shop-prod"],
      ["pgExtension", 'x"; DROP'],
      ["debianPackage", "rm -rf"],
      ["seconds", 0],
      ["count", -1],
      ["port", 65536],
      ["s3Bucket", "Bad_Bucket"],
      ["awsRegion", "eu; rm"],
      ["s3Prefix", "../"],
      ["fileName", "a/b"],
      ["version", "1.22.22; rm -rf /"],
      ["requirement", "gunicorn; rm -rf /"],
    ];
    for (const [rule, value] of refused) assert.equal(SAFE[rule].test(value), false, `${rule} ${value}`);
    assert.deepEqual(
      Object.keys(SAFE).filter((k) => !refused.some(([r]) => r === k)),
      ["urlPath", "quotableUrl"],
      "every rule has a refused value here (urlPath and quotableUrl are tested above)",
    );
  });
});
