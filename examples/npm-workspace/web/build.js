// The frontend's build: dist/index.html, stamped with the build's NODE_ENV.
const fs = require("fs");
const path = require("path");

const html = `<!doctype html>\n<title>shop</title>\n<p>built for ${process.env.NODE_ENV || "development"}</p>\n`;
fs.writeFileSync(path.join(__dirname, "dist", "index.html"), html);
console.log("web: wrote dist/index.html");
