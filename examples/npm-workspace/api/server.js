// The API: the shared library by its package name, and the frontend's build from ../web/dist.
const path = require("path");
const express = require("express");
const { greet } = require("@shop/greeting");

const app = express();
app.get("/api/health", (req, res) => res.json({ ok: true, greeting: greet() }));
app.use(express.static(path.join(__dirname, "..", "web", "dist")));

const port = Number(process.env.PORT || 3000);
app.listen(port, "127.0.0.1", () => console.log(`api listening on 127.0.0.1:${port}`));
