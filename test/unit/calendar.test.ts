/**
 * components/config/calendar.ts against the real parser: every expression in the table is also given to
 * `systemd-analyze calendar` (systemd 252 on Debian 12; exit 0 = valid) and the two verdicts must agree.
 * A missing systemd-analyze fails the test with the command that installs it: the table is only
 * trustworthy because systemd itself confirms it, so it never skips.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { CALENDAR_EXAMPLES, calendarProblem } from "../../components/config/calendar";

// [expression, valid?]. The second column documents intent; systemd-analyze is the judge.
const TABLE: [string, boolean][] = [
  ["daily", true],
  ["hourly", true],
  ["quarterly", true],
  ["SemiAnnually", true],
  ["weekly UTC", true],
  ["Mon..Fri 09:00", true],
  ["Sat,Sun 10:00", true],
  ["monday,wednesday..friday 7:30", true],
  ["Mon-Fri 12:00", true],
  ["*-*-* 03:30:00", true],
  ["*:0/15", true],
  ["*:*:0/10", true],
  ["0/2:00", true],
  ["*-*~1", true],
  ["*-02~03 04:00", true],
  ["2026-12-01 12:00 UTC", true],
  ["*-*-* 00:00:00 Europe/Berlin", true],
  ["12:00 Etc/GMT+5", true],
  ["00:00:00.5", true],
  ["*:*:0..1.5", true],
  ["69-01-01", true],
  ["2199-12-31 23:59:59", true],
  ["*-02-31", true],
  ["@1700000000", true],
  ["Mon @1700000000", true],
  ["Mon..Fry", false],
  ["Sun..Mon", false],
  ["Mon..", false],
  ["12:00 Mon", false],
  ["25:00", false],
  ["*:60", false],
  ["00:00:60", false],
  ["*:0/0", false],
  ["*:50/10", false],
  ["*/2:00", false],
  ["5..3:00", false],
  ["*:*:1..1", false],
  ["13-01", false],
  ["*-*-32", false],
  ["*-*~29", false],
  ["*-*~1/2", false],
  ["1969-01-01", false],
  ["2200-01-01", false],
  ["@7258118400", false],
  ["@-1", false],
  ["every day", false],
  ["daily ", false],
  [" daily", false],
  ["UTC", false],
  ["12:00:00:00", false],
  ["", false],
  ["   ", false],
  ["daily\nhourly", false],
  ["daily\0", false],
];

const TZ_ENV = { ...process.env, TZ: "UTC" }; // systemd also accepts the local zone's abbreviations

/** systemd's verdict: undefined when valid, else its error line. Fails when systemd-analyze is missing. */
function systemdProblem(expr: string): string | undefined {
  const r = spawnSync("systemd-analyze", ["calendar", "--", expr], { encoding: "utf8", env: TZ_ENV });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    assert.fail(
      "systemd-analyze is not installed; this test checks calendar.ts against it (apt-get install -y systemd)",
    );
  }
  if (r.error) throw r.error;
  return r.status === 0 ? undefined : r.stderr.trim() || `exit ${r.status}`;
}

const verdict = (problem: string | undefined) => (problem === undefined ? "valid" : `invalid (${problem})`);

describe("config/calendar: OnCalendar= expressions, checked against systemd-analyze", () => {
  for (const [expr, valid] of TABLE) {
    it(`${JSON.stringify(expr)} is ${valid ? "valid" : "invalid"}`, () => {
      const ours = calendarProblem(expr);
      assert.equal(ours === undefined, valid, `calendarProblem(${JSON.stringify(expr)}): ${verdict(ours)}`);
      // systemd-analyze takes one argv string: empty, multi-line or NUL-bearing input cannot reach it.
      if (expr === "" || /[\n\0]/.test(expr)) return;
      const theirs = systemdProblem(expr);
      assert.equal(
        ours === undefined,
        theirs === undefined,
        `${JSON.stringify(expr)}: calendarProblem says ${verdict(ours)}, systemd-analyze says ${verdict(theirs)}`,
      );
    });
  }

  it("gives short reasons", () => {
    assert.equal(calendarProblem("Mon..Fry"), '"Mon..Fry" is not a weekday');
    assert.equal(calendarProblem("25:00"), "hour 25 is out of range 0..23");
    assert.equal(calendarProblem("*:60"), "minute 60 is out of range 0..59");
    assert.equal(calendarProblem("13-01"), "month 13 is out of range 1..12");
    assert.equal(calendarProblem("*:0/0"), "a repetition must be at least 1, not /0");
    assert.equal(calendarProblem(""), "the calendar expression is empty");
    assert.equal(calendarProblem("every day"), 'cannot parse "every day" at "every"');
  });

  it("documents only valid examples", () => {
    for (const expr of CALENDAR_EXAMPLES) {
      assert.equal(calendarProblem(expr), undefined, expr);
      assert.equal(systemdProblem(expr), undefined, expr);
    }
  });

  it("accepts any well-formed zone name, which systemd checks against /usr/share/zoneinfo", () => {
    // The one known difference (see the module comment): kept pure, so no filesystem lookup.
    assert.equal(calendarProblem("12:00 Mars/Olympus"), undefined);
    assert.notEqual(systemdProblem("12:00 Mars/Olympus"), undefined);
  });
});
