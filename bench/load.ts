/**
 * A small, bounded HTTPS load loop against the sandbox's proxy, run in a
 * child process of its own (so the engine and the Automation API calls in
 * the bench's process cannot delay its timers).
 *
 * `workers` loops each send one request at a time, at most one every
 * `intervalMs` (a slow answer skips the slots it missed: no bursts). The loop
 * stops by itself after `maxSeconds` or `maxRequests`, whichever comes first,
 * or earlier when the parent sends "stop". It answers with every sample.
 *
 * Like a browser (and RFC 9112, 9.3.1), a GET that dies on a kept-alive
 * connection before any answer arrived (the server closed the idle connection
 * as the request went out: ECONNRESET, EPIPE) is sent once more on a new
 * connection. Such a request is marked `retried`; it fails only when the retry
 * fails too. Its latency covers both attempts.
 */
import { fork, type ChildProcess } from "child_process";
import * as https from "https";
import * as path from "path";

export interface LoadOptions {
  /** The sandbox address requests are sent to */
  address: string;
  /** Host header and TLS server name */
  hostname: string;
  /** Paths requested in turn */
  paths: string[];
  workers: number;
  intervalMs: number;
  /** Hard bounds: the loop stops by itself at whichever comes first */
  maxSeconds: number;
  maxRequests: number;
  /** A request slower than this counts as failed */
  timeoutMs: number;
}

export interface Sample {
  /** Start of the request, ms since the epoch */
  at: number;
  /** ms until the whole answer arrived (or the error) */
  ms: number;
  /** HTTP status; 0 on a connection error or timeout */
  status: number;
  ok: boolean;
  /** The release that answered (`release` in a JSON body), when it says */
  release?: string;
  /** Which code edit answered (`edit` in a JSON body: the bench's copy of the app says) */
  edit?: string;
  error?: string;
  /** Whether the request went out on a kept-alive connection (set on failures) */
  reused?: boolean;
  /** The error of a first attempt that died on a kept-alive connection before any answer (then retried) */
  retried?: string;
}

type Attempt = Omit<Sample, "at" | "ms"> & { answered: boolean; code?: string };

export interface LoadRun {
  samples: Sample[];
  /** Why the loop ended: "stopped", "time" or "count" */
  ended: string;
}

function sampleOf(a: Sample & Attempt): Sample {
  const s: Sample = { at: a.at, ms: a.ms, status: a.status, ok: a.ok };
  if (a.release !== undefined) s.release = a.release;
  if (a.edit !== undefined) s.edit = a.edit;
  if (a.error !== undefined) s.error = a.error;
  if (a.reused !== undefined) s.reused = a.reused;
  return s;
}

function runLoop(opts: LoadOptions, shouldStop: () => boolean): Promise<LoadRun> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: opts.workers });
  const samples: Sample[] = [];
  const started = Date.now();
  const deadline = started + opts.maxSeconds * 1000;
  let sent = 0;
  let ended = "stopped";

  const attempt = (p: string, fresh: boolean): Promise<Sample & Attempt> =>
    new Promise((resolve) => {
      const at = Date.now();
      let settled = false;
      let answered = false;
      const done = (s: Omit<Attempt, "answered">) => {
        if (settled) return;
        settled = true;
        resolve({ at, ms: Date.now() - at, answered, ...s });
      };
      const req = https.request(
        {
          host: opts.address,
          port: 443,
          path: p,
          method: "GET",
          // The retry goes out on a connection of its own.
          agent: fresh ? false : agent,
          servername: opts.hostname,
          headers: { Host: opts.hostname, "User-Agent": "apphost-bench" },
          rejectUnauthorized: false,
          timeout: opts.timeoutMs,
        },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (e) => done({ status: res.statusCode ?? 0, ok: false, error: e.message }));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            let release: string | undefined;
            let edit: string | undefined;
            try {
              const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
              if (body && typeof body.release === "string") release = body.release;
              if (body && typeof body.edit === "string") edit = body.edit;
            } catch {
              // Not JSON (an error page): nothing to note.
            }
            done({ status, ok: status >= 200 && status < 300, release, edit });
          });
        },
      );
      req.on("timeout", () => {
        req.destroy(new Error(`no answer within ${opts.timeoutMs}ms`));
      });
      req.on("error", (e: NodeJS.ErrnoException) =>
        done({ status: 0, ok: false, error: e.message, code: e.code, reused: req.reusedSocket }),
      );
      req.end();
    });

  const one = async (p: string): Promise<Sample> => {
    const first = await attempt(p, false);
    const closedUnderUs =
      !first.ok && !first.answered && first.reused && ["ECONNRESET", "EPIPE"].includes(first.code ?? "");
    if (!closedUnderUs) return sampleOf(first);
    const again = await attempt(p, true);
    return { ...sampleOf(again), at: first.at, ms: again.at + again.ms - first.at, retried: first.error };
  };

  const worker = async (w: number) => {
    let slot = started + (w * opts.intervalMs) / opts.workers;
    for (;;) {
      if (shouldStop()) return;
      if (Date.now() >= deadline) {
        ended = "time";
        return;
      }
      if (sent >= opts.maxRequests) {
        ended = "count";
        return;
      }
      const wait = slot - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (shouldStop()) return;
      const p = opts.paths[sent % opts.paths.length];
      sent++;
      samples.push(await one(p));
      slot += opts.intervalMs;
      // Missed slots are skipped, not made up for.
      if (slot < Date.now()) slot = Date.now();
    }
  };

  return Promise.all(Array.from({ length: opts.workers }, (_, w) => worker(w))).then(() => {
    agent.destroy();
    samples.sort((a, b) => a.at - b.at);
    return { samples, ended };
  });
}

/** A load loop running in a child process; `stop()` ends it and returns its samples. */
export interface RunningLoad {
  stop(): Promise<LoadRun>;
}

export async function startLoad(opts: LoadOptions): Promise<RunningLoad> {
  const child: ChildProcess = fork(path.join(__dirname, "load.ts"), [], {
    execArgv: ["-r", "ts-node/register/transpile-only"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const result = new Promise<LoadRun>((resolve, reject) => {
    child.on("message", (m: { kind: string; run?: LoadRun }) => {
      if (m.kind === "done" && m.run) resolve(m.run);
    });
    child.on("exit", (code) => reject(new Error(`the load process exited (${code}) without answering`)));
  });
  await new Promise<void>((resolve, reject) => {
    child.once("message", (m: { kind: string }) => (m.kind === "ready" ? resolve() : undefined));
    child.once("exit", (code) => reject(new Error(`the load process exited (${code}) before starting`)));
    child.send({ kind: "start", opts });
  });
  return {
    async stop() {
      if (child.connected) child.send({ kind: "stop" });
      // The child's own bounds end it anyway; this is a last resort.
      const guard = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs + 30_000);
      try {
        return await result;
      } finally {
        clearTimeout(guard);
      }
    },
  };
}

// ------------------------------------------------------------- child side

if (require.main === module && process.send) {
  let stop = false;
  process.on("message", (m: { kind: string; opts?: LoadOptions }) => {
    if (m.kind === "stop") stop = true;
    if (m.kind === "start" && m.opts) {
      const opts = m.opts;
      process.send!({ kind: "ready" });
      runLoop(opts, () => stop).then((run) => {
        process.send!({ kind: "done", run }, () => process.disconnect());
      });
    }
  });
}
