import { strict as assert } from "assert";
import { markedSections, renderRolling, replaceMarkedSection, type RollingRep } from "../../bench/report";

describe("bench: sections of BENCHMARKS.md written by one bench", () => {
  const base = "# Benchmarks\n\n## 1. Downtime\n\nrows\n";

  it("appends the section with its markers when there is none, and replaces it in place after", () => {
    const once = replaceMarkedSection(base, "rolling", "## 5. Rolling\n\n| 2 | 30.1 |\n");
    assert.equal(
      once,
      "# Benchmarks\n\n## 1. Downtime\n\nrows\n\n" +
        "<!-- rolling: begin (written by bench/rolling.ts) -->\n## 5. Rolling\n\n| 2 | 30.1 |\n<!-- rolling: end -->\n",
    );
    const twice = replaceMarkedSection(
      once.replace("rows", "new rows"),
      "rolling",
      "## 5. Rolling\n\n| 2 | 28.0 |",
    );
    assert.equal(twice, once.replace("rows", "new rows").replace("30.1", "28.0"));
  });

  it("markedSections gives what npm run bench keeps when it rewrites the rest", () => {
    const file = replaceMarkedSection(base, "rolling", "## 5. Rolling\n");
    assert.equal(
      markedSections(file),
      "<!-- rolling: begin (written by bench/rolling.ts) -->\n## 5. Rolling\n<!-- rolling: end -->\n",
    );
    assert.equal(markedSections(base), "");
  });
});

describe("bench:rolling: its section", () => {
  it("a row per host count: wall time, per host, releases, failed of sent, and the slowest answer, median (min–max)", () => {
    const rep = (hosts: number, seconds: number, worstMs: number, failed = 0): RollingRep => ({
      hosts,
      seconds,
      requests: 1000,
      failed,
      failures: [],
      worstMs,
      allLive: true,
    });
    const section = renderRolling({
      startedAt: "2026-12-05T18:00:00.000Z",
      command: "npm run bench:rolling",
      machine: "2 cores, 24 GiB, Node v20.20.2",
      loadAtStart: "0.50, 0.60, 0.70",
      loadAtEnd: "1.00, 1.10, 1.20",
      versions: { pulumi: "v3.248.0", caddy: "v2.6.2" },
      firstUpSeconds: 63.74,
      scaleUpSeconds: 44.21,
      reps: [rep(2, 36.4, 38), rep(2, 35.5, 1102), rep(2, 36.8, 36), rep(3, 49.6, 37, 1), rep(3, 48.9, 40)],
    });
    const rows = section.split("\n").filter((l) => l.startsWith("| "));
    assert.deepEqual(rows, [
      "| app hosts | `pulumi up` wall time | per host | releases | failed requests | slowest answer (ms) |",
      "| --- | --- | --- | --- | --- | --- |",
      "| 2 | 36.4 (35.5–36.8) | 18.2 (17.8–18.4) | 3 | 0 of 3000 | 38 (36–1102) |",
      "| 3 | 49.3 (48.9–49.6) | 16.4 (16.3–16.5) | 2 | 1 of 2000 | 39 (37–40) |",
    ]);
    assert.match(
      section,
      /the first `up` .* took 63\.7 s; the `up` that added the third host .* took 44\.2 s\.$/m,
    );
  });
});
