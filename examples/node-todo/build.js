// The frontend build: web/ -> public/, with the build's time and a content hash in the page.
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const src = path.join(__dirname, "web");
const out = path.join(__dirname, "public");
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });
const js = fs.readFileSync(path.join(src, "app.js"), "utf8");
const hash = crypto.createHash("sha256").update(js).digest("hex").slice(0, 8);
fs.writeFileSync(path.join(out, `app.${hash}.js`), js);
const html = fs
  .readFileSync(path.join(src, "index.html"), "utf8")
  .replace("%APP_JS%", `/assets/app.${hash}.js`);
fs.writeFileSync(path.join(out, "index.html"), html);
console.log(`built public/ (app.${hash}.js)`);
