// The build needs a devDependency, as a bundler would, and records which tool ran it.
const fs = require("fs");
const isNumber = require("is-number");

if (!isNumber(42)) throw new Error("is-number is broken");
fs.writeFileSync("built.txt", `${(process.env.npm_config_user_agent || "").split(" ")[0]}\n`);
