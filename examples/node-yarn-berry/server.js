// Answers every path with which tool started it (from npm_config_user_agent), what the build wrote, and whether
// ms carries the patch Yarn applies from .yarn/patches.
const fs = require("fs");
const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 3000);
const built = fs.existsSync("built.txt") ? fs.readFileSync("built.txt", "utf8").trim() : "";
const startedBy = (process.env.npm_config_user_agent || "").split(" ")[0];

http
  .createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(
      JSON.stringify({
        ok: true,
        startedBy,
        built,
        twoDays: ms("2 days"),
        patched: ms.patchedByYarn === true,
      }),
    );
  })
  .listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
