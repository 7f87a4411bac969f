import { strict as assert } from "assert";
import { markedSections, replaceMarkedSection } from "../../bench/report";

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
