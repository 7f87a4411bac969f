"use strict";
// The sample app's Node process (apphost:app.processes.heartbeat, kind worker):
// every HEARTBEAT_INTERVAL seconds it writes data/heartbeat.json (shared/data,
// which survives releases) with its release, Node version and the time; the
// Python web app serves it at /heartbeat. No dependencies: it runs with the
// host's nodejs beside the Python venv. Stops cleanly on SIGTERM.
const fs = require("fs");
const path = require("path");

const interval = Math.max(1, Number(process.env.HEARTBEAT_INTERVAL || "10")) * 1000;
const target = path.join("data", "heartbeat.json");

function releaseId() {
  // apphost writes .apphost-release (id=...) into every release at upload.
  try {
    const line = fs
      .readFileSync(".apphost-release", "utf8")
      .split("\n")
      .find((l) => l.startsWith("id="));
    return line ? line.slice(3) : "local";
  } catch {
    return "local";
  }
}

const release = releaseId();
let beats = 0;

function beat() {
  beats += 1;
  const body = JSON.stringify({
    release,
    node: process.version,
    pid: process.pid,
    beats,
    at: new Date().toISOString(),
  });
  const tmp = `${target}.tmp.${process.pid}`;
  try {
    fs.writeFileSync(tmp, body + "\n", { mode: 0o640 });
    fs.renameSync(tmp, target);
  } catch (err) {
    console.error(`heartbeat: cannot write ${target}: ${err.message}`);
  }
}

console.log(`heartbeat: started (release ${release}, node ${process.version}, every ${interval / 1000}s)`);
beat();
const timer = setInterval(beat, interval);
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    clearInterval(timer);
    console.log(`heartbeat: ${signal}: stopping after ${beats} beats`);
    process.exit(0);
  });
}
