/** The bench's results as data, and as the Markdown of BENCHMARKS.md. */
import type { Panel } from "./chart";
import { DEPLOY_PHASES } from "./host";
import { fmt, fmtSpread, spread, type LoadSummary } from "./stats";

export interface DowntimeRow extends LoadSummary {
  /** Wall time of the release itself (the `pulumi up`, or the upload and restart), s */
  seconds: number;
  /** Whether the load saw the new code answer */
  switched: boolean;
  /** Why the load loop ended */
  ended: string;
  /** Each failed request: s since the release started, its latency, what came back, a kept-alive connection? */
  failedRequests: { t: number; ms: number; what: string; reused?: boolean }[];
  /** Proxy reloads and web instance starts/stops on the host, s since the release started */
  hostEvents: { t: number; what: string }[];
}

export interface NoopRow {
  seconds: number;
  commands: number;
  changes: number;
  commandLines: string[];
}

export interface ReleaseRow {
  /** Wall time of the `pulumi up`, s */
  seconds: number;
  /** The release script on the host, from sudo starting it to its lock's removal, s */
  script?: number;
  phases?: Record<(typeof DEPLOY_PHASES)[number], number>;
  note?: string;
  /** The watcher's events, s since the `pulumi up` started */
  events?: string[];
}

export interface Results {
  mode: "quick" | "full";
  reps: number;
  testReps: number;
  command: string;
  startedAt: string;
  finishedAt?: string;
  wallSeconds?: number;
  machine: { nproc: number; cpu: string; memoryGiB: number; kernel: string };
  loadAtStart: string;
  loadAtEnd: string;
  otherSandboxesAtStart: string[];
  otherSandboxesAtEnd: string[];
  versions: Record<string, string>;
  load: { workers: number; intervalMs: number; paths: string[]; timeoutMs: number };
  firstUpSeconds?: number;
  downtime?: { apphost: DowntimeRow[]; runbook: DowntimeRow[] };
  noop?: { up: NoopRow[]; preview: NoopRow[] };
  release?: { unchanged: ReleaseRow[]; changed: ReleaseRow[] };
  test?: { seconds: number; code: number; passing?: number }[];
  /** Whether the bench's sandbox was already down while npm test ran */
  testWithSandboxDown?: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
  chart?: { title: string; panels: Panel[] };
}

function row(cells: string[]): string {
  return `| ${cells.join(" | ")} |`;
}

function table(head: string[], rows: string[][]): string {
  return [row(head), row(head.map(() => "---")), ...rows.map(row)].join("\n");
}

function loadAverages(uptime: string): string {
  return /load average: (.*)$/.exec(uptime)?.[1] ?? uptime;
}

function ratio(a: number, b: number, digits = 1): string {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return "n/a";
  if (b === 0) return a === 0 ? "equal (both 0)" : "∞ (divisor is 0)";
  return `${fmt(a / b, digits)}×`;
}

export function renderReport(r: Results, chartPath?: string): string {
  const s = (v: number[], d = 1, unit = "") => fmtSpread(spread(v), d, unit);
  const med = (v: number[]) => spread(v).median;
  const out: string[] = [];
  const reps =
    r.reps === 1
      ? "each measurement once (quick mode)"
      : `each measurement ${r.reps} times${r.testReps !== r.reps ? ` (npm test ${r.testReps} times)` : ""}`;

  out.push(
    "# Benchmarks",
    "",
    "<!-- Written by bench/run.ts (`npm run bench`); edits here are overwritten by the next full run. -->",
    "",
    `How apphost behaves on the sandbox host (Debian 12 under systemd-nspawn, the real Pulumi engine), ` +
      `from a ${r.mode} run started ${r.startedAt} that took ${fmt((r.wallSeconds ?? 0) / 60)} min: ` +
      `${reps}. Cells are **median (min–max)**.`,
    "",
    "Reproduce (as root, from the repository, after `npm ci`):",
    "",
    "```sh",
    `${r.command}`,
    "npm run bench -- --quick   # everything once (CI's smoke run); writes bench/out/ only",
    "```",
    "",
    "Raw numbers of the last run: `bench/out/results.json`; engine output: `bench/out/engine.log`.",
    "",
    "## Machine",
    "",
    table(
      ["", ""],
      [
        ["CPU", `${r.machine.cpu || "?"}, ${r.machine.nproc} cores (nproc)`],
        ["memory", `${r.machine.memoryGiB} GiB`],
        ["kernel", r.machine.kernel],
        ["load average (1, 5, 15 min) at start", loadAverages(r.loadAtStart)],
        ["load average at end", loadAverages(r.loadAtEnd)],
        [
          "other apphost sandboxes running",
          `at start: ${r.otherSandboxesAtStart.join(", ") || "none"}; at end: ${r.otherSandboxesAtEnd.join(", ") || "none"}`,
        ],
      ],
    ),
    "",
    "The machine is shared: other sessions' sandboxes, deploys and test runs may have been running at " +
      "the same time (see the load averages and the sandboxes above), on 2 cores that also run the " +
      "sandbox host, the engine and the load client. Read the numbers as this machine on this day, " +
      "not as a property of apphost; the comparisons (ratios) were measured side by side in the same run.",
    "",
    "## Versions",
    "",
    table(
      ["component", "version"],
      [
        ["pulumi (engine built from Go modules)", r.versions.pulumi ?? "?"],
        ["node", r.versions.node ?? "?"],
        ["caddy (in the sandbox)", r.versions.caddy ?? "?"],
        ["python (in the sandbox, runs the app)", r.versions.python ?? "?"],
        ["Debian (sandbox)", r.versions.debian ?? "?"],
        ["python (this machine)", r.versions.hostPython ?? "?"],
      ],
    ),
    "",
  );

  if (r.downtime) {
    const a = r.downtime.apphost;
    const b = r.downtime.runbook;
    const l = r.load;
    // One table row per method: counts and latencies without decimals, wall time with one.
    const downtimeRow = (method: string, rows: typeof a) => [
      method,
      ...(["failed", "retried", "requests", "worstMs", "p99Ms"] as const).map((k) =>
        s(
          rows.map((x) => x[k]),
          0,
        ),
      ),
      s(rows.map((x) => x.seconds)),
    ];
    out.push(
      "## 1. Downtime during a code release under steady load",
      "",
      `A load client in its own process (bench/load.ts) sends HTTPS requests to the sandbox's Caddy ` +
        `(Host \`sample.local.test\`), alternating ${l.paths.map((p) => `\`${p}\``).join(" and ")}: ` +
        `${l.workers} loops, each at most one request every ${l.intervalMs} ms ` +
        `(≤ ${Math.round((l.workers * 1000) / l.intervalMs)} requests/s), keep-alive, a request counts as ` +
        `failed on a non-2xx answer, a connection error or no answer within ${l.timeoutMs / 1000} s. ` +
        "The loop runs 3 s before the release starts and 3 s after it ends, and stops by itself after " +
        "a bounded time and count. Each repetition changes the app code in a temp copy of " +
        "`examples/sample-app` (its `/` reports which edit answers) and releases it:",
      "",
      "- **apphost**: `pulumi up` with `apphost:app.source` pointing at the copy (upload, install, " +
        "backup, migrate, start on the idle port, health gate, proxy switch, drain, stop the old one).",
      "- **runbook**: on the same host, same app, same run: `tar` of the copy over SSH straight into " +
        "the live `/srv/<id>/current/`, then `systemctl restart apphost-<id>-web@<active port>`.",
      "",
      table(
        [
          "method",
          "failed requests",
          "retried (keep-alive closed)",
          "requests in window",
          "worst latency (ms)",
          "p99 (ms)",
          "release wall time (s)",
        ],
        [downtimeRow("apphost", a), downtimeRow("runbook", b)],
      ),
      "",
      `Ratio runbook / apphost (medians): worst latency ${ratio(
        med(b.map((x) => x.worstMs)),
        med(a.map((x) => x.worstMs)),
      )}, failed requests ${ratio(
        med(b.map((x) => x.failed)),
        med(a.map((x) => x.failed)),
      )} (apphost ${a.reduce((n, x) => n + x.failed, 0)} failed in total over ${a.length} release(s), ` +
        `runbook ${b.reduce((n, x) => n + x.failed, 0)}).`,
      "",
    );
    const failures: Record<string, number> = {};
    for (const x of [...a, ...b])
      for (const [k, v] of Object.entries(x.failures)) failures[k] = (failures[k] ?? 0) + v;
    if (Object.keys(failures).length) {
      out.push(
        "Failures seen: " +
          Object.entries(failures)
            .map(([k, v]) => `${v}× ${k}`)
            .join(", ") +
          ".",
        "",
      );
    }
    out.push(
      "**Retried** requests: a Caddy reload closes the kept-alive client connections that are idle at " +
        "that moment, and a request written into such a connection just then dies within a few ms " +
        'without an answer (ECONNRESET, "socket hang up"). Reproduced while writing the bench, with bare ' +
        "`systemctl reload caddy` once a second under the same client at 8 loops of 25 requests/s: " +
        "4 to 15 such failures per 20 to 30 reloads, every one on a reused connection, 1–4 ms after it " +
        "was sent. apphost releases do not reload Caddy: the upstream moves with the stack's nftables " +
        "rule (docs/releases.md), and the bench checks that no reload happened during them. Browsers and " +
        "most HTTP client libraries resend an idempotent request on a new connection then (RFC 9112, " +
        "9.3.1), and so does the bench's client; such requests are counted here and fail only if the " +
        "retry fails. A client that does not retry would see them as errors.",
      "",
      "Caddy retries a request whose connection to the app fails for up to 10 s " +
        "(`lb_try_duration 10s` in the site's `reverse_proxy`), so a restart shows first as latency: a " +
        "request waits while the port is closed, and fails only when the restart takes longer than that.",
      "",
    );
    if (chartPath) {
      out.push(
        `![Request latency over time during the two releases](${chartPath})`,
        "",
        "Every dot is a request (log scale), red crosses are failed requests, the shaded band is the " +
          "release running, the dashed line the first answer from the new code. First repetition of this run.",
        "",
      );
    }
  }

  if (r.noop) {
    const up = r.noop.up;
    const pv = r.noop.preview;
    out.push(
      "## 2. A no-op `pulumi up` against a bare `pulumi preview`",
      "",
      "The stack as the sections before left it: nothing changed in the source or the configuration " +
        "since its last `up`. Wall time of the Automation API call " +
        "(engine start, the language host running index.ts, every resource's diff). Remote commands: sudo's `COMMAND=` " +
        "lines in the host's journal during the call, the probe's own `journalctl` left out " +
        "(as in test/e2e/deploy.e2e.ts).",
      "",
      table(
        ["operation", "wall time (s)", "remote commands", "changes"],
        [
          [
            "`pulumi up` (no-op)",
            s(up.map((x) => x.seconds)),
            s(
              up.map((x) => x.commands),
              0,
            ),
            s(
              up.map((x) => x.changes),
              0,
            ),
          ],
          [
            "`pulumi preview`",
            s(pv.map((x) => x.seconds)),
            s(
              pv.map((x) => x.commands),
              0,
            ),
            s(
              pv.map((x) => x.changes),
              0,
            ),
          ],
        ],
      ),
      "",
      `Ratio up / preview (medians): wall time ${ratio(
        med(up.map((x) => x.seconds)),
        med(pv.map((x) => x.seconds)),
        2,
      )}, remote commands ${ratio(med(up.map((x) => x.commands)), med(pv.map((x) => x.commands)))}.`,
      "",
    );
    if (r.downtime) {
      out.push(
        "These ran after the runbook's hand uploads: the live release's files differ from the artifact " +
          "apphost recorded, yet neither the no-op `up` nor the preview shows a difference. The Release " +
          "resource only asks the host which release `current` points to (its `read`), not whether that " +
          "release's files are still what was uploaded.",
        "",
      );
    }
    const lines = [...up, ...pv].flatMap((x) => x.commandLines);
    if (lines.length) out.push("Remote commands seen:", "", "```", ...lines.slice(0, 20), "```", "");
  }

  if (r.release) {
    const u = r.release.unchanged;
    const c = r.release.changed;
    const ph = (rows: ReleaseRow[], p: (typeof DEPLOY_PHASES)[number]) =>
      s(
        rows.map((x) => x.phases?.[p] ?? NaN),
        2,
      );
    out.push(
      "## 3. A code-only release, phase by phase",
      "",
      "No load. Each repetition edits the app code; **unchanged dependencies** keeps " +
        "`requirements.txt`, so the venv of its hash is reused; **changed dependencies** adds " +
        `\`six==1.17.0\` (small, pure python, pinned) and a comment naming the repetition, so every ` +
        "repetition has a requirements hash the host has not seen and builds a new venv " +
        "(`python3 -m venv` + `pip install -r`, with the host's pip cache warm), as a real dependency change does.",
      "",
      "Where the phase times come from: `apphost-release` prints `apphost: phase <name>: ok (<s>s)` on " +
        "stderr and the stack output `releasePhases` keeps those seconds for the last deploy, rounded " +
        "to 0.1 s and without the gap from sudo to the first phase. The bench measures independently, " +
        "from outside the script, by watching its deploy lock: " +
        "`run_phase` rewrites `deploy.lock` (temp file renamed over it) just before it prints each " +
        "`phase <name>: start`, the check phase takes it, and the script removes it on exit. A watcher " +
        "on the host (python3, inotify) timestamps the eight renames and the removal; check starts at " +
        "sudo's journal entry for the command. The engine's part is the `pulumi up` wall time minus the script.",
      "",
      table(
        ["", "unchanged dependencies (s)", "changed dependencies (s)"],
        [
          ...DEPLOY_PHASES.map((p) => [p, ph(u, p), ph(c, p)]),
          ["**release script** (sum)", s(u.map((x) => x.script ?? NaN)), s(c.map((x) => x.script ?? NaN))],
          [
            "engine, program, other resources",
            s(u.map((x) => (x.script === undefined ? NaN : x.seconds - x.script))),
            s(c.map((x) => (x.script === undefined ? NaN : x.seconds - x.script))),
          ],
          ["**`pulumi up` wall time**", s(u.map((x) => x.seconds)), s(c.map((x) => x.seconds))],
        ],
      ),
      "",
      "health-gate includes the upstream switch (one `nft -f`), the worker restart and `drainSeconds` (2 s in the local " +
        "stack) before the old instance stops.",
      "",
    );
    const notes = [...u, ...c].map((x) => x.note).filter(Boolean);
    if (notes.length) out.push(`Phase timing gaps: ${notes.join("; ")}.`, "");
  }

  if (r.test) {
    out.push(
      "## 4. The unit test suite",
      "",
      "`npm test` (tsc, eslint, prettier --check, then mocha's unit specs)" +
        (r.testWithSandboxDown ? ", run after the bench's sandbox was taken down." : ".") +
        " shellcheck's clean verdicts are remembered between runs (test/unit/shellcheck.ts), so every" +
        " repetition but a first one on a fresh machine reuses them; `APPHOST_TEST_FRESH=1 npm test` checks afresh.",
      "",
      table(
        ["", "wall time (s)", "exit codes", "passing"],
        [
          [
            "`npm test`",
            s(r.test.map((x) => x.seconds)),
            r.test.map((x) => x.code).join(", "),
            r.test.map((x) => x.passing ?? "?").join(", "),
          ],
        ],
      ),
      "",
    );
  }

  const failed = r.checks.filter((c) => !c.ok);
  out.push(
    "## Checks",
    "",
    failed.length === 0
      ? `All ${r.checks.length} checks of this run passed (the run fails if any apphost release drops a request).`
      : `${failed.length} of ${r.checks.length} checks failed:\n\n${failed.map((c) => `- ${c.name}: ${c.detail.split("\n")[0]}`).join("\n")}`,
    "",
  );
  if (r.firstUpSeconds !== undefined) {
    out.push(
      `(Not measured, for context: the first \`pulumi up\` of the run, host setup through the first release, took ${fmt(r.firstUpSeconds)} s.)`,
      "",
    );
  }
  return out.join("\n");
}

const MARKED = /<!-- ([a-z]+): begin[^>]*-->\n[\s\S]*?<!-- \1: end -->\n/g;

/**
 * `text` with the section between `name`'s markers replaced by `section`, or
 * with it appended (markers included) when there is none yet: a bench that
 * writes one section of BENCHMARKS.md leaves the rest as it is.
 */
export function replaceMarkedSection(text: string, name: string, section: string): string {
  const block = `<!-- ${name}: begin (written by bench/${name}.ts) -->\n${section.replace(/\n*$/, "\n")}<!-- ${name}: end -->\n`;
  let found = false;
  const out = text.replace(MARKED, (whole, n: string) => {
    if (n !== name) return whole;
    found = true;
    return block;
  });
  return found ? out : `${text.replace(/\n*$/, "\n")}\n${block}`;
}

/** The marked sections of `text`, markers included: what `npm run bench` keeps when it rewrites the file. */
export function markedSections(text: string): string {
  return (text.match(MARKED) ?? []).join("\n");
}

// ---------------------------------------------------------------------------
// npm run bench:rolling (bench/rolling.ts): its section of BENCHMARKS.md

/** One repetition of bench:rolling: one rolling `pulumi up` under load. */
export interface RollingRep {
  hosts: number;
  seconds: number;
  requests: number;
  failed: number;
  failures: string[];
  /** The slowest answer of the load, in ms */
  worstMs: number;
  /** Every app host serves the new release afterwards */
  allLive: boolean;
}

export interface RollingResults {
  startedAt: string;
  command: string;
  machine: string;
  loadAtStart: string;
  loadAtEnd: string;
  versions: Record<string, string>;
  firstUpSeconds: number;
  scaleUpSeconds: number;
  reps: RollingRep[];
}

/** The section bench:rolling writes between its markers. */
export function renderRolling(r: RollingResults): string {
  const row = (hosts: number) => {
    const reps = r.reps.filter((x) => x.hosts === hosts);
    const failed = reps.reduce((n, x) => n + x.failed, 0);
    const requests = reps.reduce((n, x) => n + x.requests, 0);
    const cells = [
      hosts,
      fmtSpread(spread(reps.map((x) => x.seconds))),
      fmtSpread(spread(reps.map((x) => x.seconds / hosts))),
      reps.length,
      `${failed} of ${requests}`,
      fmtSpread(spread(reps.map((x) => x.worstMs)), 0),
    ];
    return `| ${cells.join(" | ")} |`;
  };
  return [
    "## 5. A rolling release over 2 and 3 app hosts",
    "",
    `\`${r.command}\`, started ${r.startedAt}, on ${r.machine}; load at start: ${r.loadAtStart}; at end: ${r.loadAtEnd}.`,
    `Engine: ${r.versions.pulumi}; the sandboxes: Debian 12 under systemd-nspawn, Caddy ${r.versions.caddy} on the balancer and the app hosts.`,
    "",
    "Four sandboxes of the bench's own: a balancer host (Caddy, active health checks every 1 s, which also runs the Postgres the app hosts share) and three app hosts, as `test/e2e/multihost.e2e.ts` builds them. Each repetition changes the sample app's code and runs one `pulumi up`, which rolls the release one host at a time: drain the host at the balancer, the health-gated release (upload, install, migrate on the first host only, start, health gate, switch), put it back and wait until the balancer sees it healthy. A steady load runs through the balancer meanwhile (one keep-alive client and one that opens a connection per request, alternating `/` and `/healthz`). Cells are **median (min–max)** in seconds; the slowest answer of each repetition's load in milliseconds.",
    "",
    "| app hosts | `pulumi up` wall time | per host | releases | failed requests | slowest answer (ms) |",
    "| --- | --- | --- | --- | --- | --- |",
    row(2),
    row(3),
    "",
    `Not code releases, for context: the first \`up\` (both hosts set up, Postgres migrated, the balancer) took ${r.firstUpSeconds.toFixed(1)} s; the \`up\` that added the third host (set up, given the live release, then let into the balancer) took ${r.scaleUpSeconds.toFixed(1)} s.`,
    "",
  ].join("\n");
}
