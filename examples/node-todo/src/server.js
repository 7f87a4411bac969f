// todo: a JSON API over Postgres. DATABASE_URL and PORT come from the environment.
const express = require("express");
const { Pool } = require("pg");

const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 5 });
const app = express();
app.use(express.json());

app.get("/api/health", async (_req, res) => {
  try {
    const { rows } = await pool.query("SELECT name FROM pgmigrations ORDER BY id DESC LIMIT 1");
    res.json({ ok: true, migration: rows[0] ? rows[0].name : null });
  } catch (e) {
    res.status(503).json({ ok: false, error: e.message });
  }
});

app.get("/api/todos", async (_req, res) => {
  const { rows } = await pool.query("SELECT id, title FROM todos ORDER BY id");
  res.json(rows);
});

app.post("/api/todos", async (req, res) => {
  const { rows } = await pool.query("INSERT INTO todos (title) VALUES ($1) RETURNING id, title", [
    req.body.title,
  ]);
  res.status(201).json(rows[0]);
});

const port = Number(process.env.PORT || 3000);
const server = app.listen(port, "127.0.0.1", () => console.log(`todo listening on 127.0.0.1:${port}`));
process.on("SIGTERM", () => server.close(() => pool.end().then(() => process.exit(0))));
