/**
 * A pure checker for systemd OnCalendar= expressions. It mirrors systemd.time(7), "CALENDAR EVENTS",
 * as implemented by calendar_spec_from_string() in systemd 252 (Debian 12), so a bad schedule in the
 * stack config is refused before anything changes on a host (systemd would only log it at
 * daemon-reload and leave the timer dead). test/unit/calendar.test.ts compares its verdicts with the
 * real `systemd-analyze calendar`.
 *
 * Grammar: a shorthand (minutely, hourly, daily, weekly, monthly, yearly/annually, quarterly,
 * semiannually; any case), `@<unix seconds>`, or `[weekdays] [[year-]month-day] [hour:minute[:second]]`,
 * then an optional timezone. Each component is `*` or a comma list of `v`, `a..b`, `v/n`, `a..b/n`;
 * `~` before the day counts from the end of the month; seconds may carry a fraction (`00:00:00.5`).
 *
 * Known difference: systemd takes a trailing zone only if /usr/share/zoneinfo has it. To stay pure,
 * this accepts any name of that shape (`Mars/Olympus` passes here but fails on a host), except names
 * that start like a weekday or are a shorthand, which systemd could never accept there.
 */

export const CALENDAR_EXAMPLES = ["daily", "hourly", "Mon..Fri 09:00", "*-*-* 03:30:00", "*:0/15"];

// minutely hourly daily monthly weekly yearly annually quarterly semiannually, and systemd's aliases.
const SHORTHAND = /^(minute|hour|dai|month|week|year|annual|anual|quarter|(semi|bi)-?annual)ly$/i;
// systemd's order, "monday" before "mon"; index >> 1 is the day number.
const DAYS = "mon tues wednes thurs fri satur sun".split(" ").flatMap((d) => [`${d}day`, d.slice(0, 3)]);
const ZONE = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/;
const USEC = 1_000_000; // seconds are kept in microseconds, as systemd does

type Part = { start: number; stop: number; repeat: number }; // stop -1: no range; repeat 0: none
type Field = { name: string; from: number; to: number; usec?: boolean };
const YEAR: Field = { name: "year", from: 1970, to: 2199 };
const MONTH: Field = { name: "month", from: 1, to: 12 };
const DAY: Field = { name: "day", from: 1, to: 31 };
const LAST_DAY: Field = { name: "day counted from the month's end", from: 1, to: 28 };
const HOUR: Field = { name: "hour", from: 0, to: 23 };
const MINUTE: Field = { name: "minute", from: 0, to: 59 };
const SECOND: Field = { name: "second", from: 0, to: 60 * USEC - 1, usec: true };

class Problem extends Error {}
const fail = (why: string): never => {
  throw new Problem(why);
};

/** undefined when `expr` is a valid OnCalendar= expression, otherwise a short reason why not. */
export function calendarProblem(expr: string): string | undefined {
  if (typeof expr !== "string" || expr.trim() === "") return "the calendar expression is empty";
  if (/[^\x20-\x7e]/.test(expr)) return "the calendar expression has a control or non-ASCII character";
  try {
    parse(stripZone(expr), expr);
    return undefined;
  } catch (e) {
    if (e instanceof Problem) return e.message;
    throw e;
  }
}

function stripZone(expr: string): string {
  if (/ utc$/i.test(expr)) return expr.slice(0, -4);
  const space = expr.lastIndexOf(" ");
  const zone = expr.slice(space + 1);
  const isZone = ZONE.test(zone) && !/^(mon|tue|wed|thu|fri|sat|sun)/i.test(zone);
  return space >= 0 && isZone && !SHORTHAND.test(zone) ? expr.slice(0, space) : expr;
}

// systemd's normalize_chain() then chain_valid(), with fix_year() for years.
function check(parts: Part[], f: Field): void {
  const show = (v: number) => String(f.usec ? v / USEC : v);
  const range = `${f.from}..${f.usec ? 59 : f.to}`;
  for (const p of parts) {
    if (f === YEAR)
      for (const k of ["start", "stop"] as const)
        p[k] += p[k] < 0 || p[k] >= 100 ? 0 : p[k] < 70 ? 2000 : 1900;
    if (p.stop > p.start && p.repeat > 0) p.stop -= (p.stop - p.start) % p.repeat;
    if ((p.stop > p.start && p.repeat > 0 && p.start + p.repeat > p.stop) || p.start === p.stop)
      [p.stop, p.repeat] = [-1, 0];
    for (const v of [p.start, p.stop])
      if (v !== -1 && (v < f.from || v > f.to)) fail(`${f.name} ${show(v)} is out of range ${range}`);
    const what = `${f.name} ${show(p.start)}${p.stop >= 0 ? `..${show(p.stop)}` : ""}/${show(p.repeat)}`;
    if (p.repeat > f.to - f.from) fail(`${what} repeats less than once in ${range}`);
    if (p.stop >= 0 && p.start + p.repeat > p.stop)
      fail(`${f.name} range ${show(p.start)}..${show(p.stop)} is empty`);
    if (p.stop < 0 && (f === LAST_DAY ? p.start - p.repeat < f.from : p.start + p.repeat > f.to))
      fail(`${what} never repeats`);
  }
}

function parse(s: string, expr: string): void {
  if (s === "") fail("a timezone alone is not a calendar expression");
  if (SHORTHAND.test(s)) return;
  let i = 0;
  const end = () => i >= s.length;
  const syntax = (): never => fail(`cannot parse "${expr}" at "${s.slice(i)}"`);
  const colon = () => (s[i] === ":" ? i++ : syntax());
  const num = (usec: boolean): number => {
    const digits = /^\d+/.exec(s.slice(i))?.[0] ?? syntax();
    i += digits.length;
    let v = Number(digits) * (usec ? USEC : 1);
    if (usec && s[i] === "." && s[i + 1] !== ".") {
      const frac = /^\d+/.exec(s.slice(++i))?.[0] ?? syntax(); // 6 digits, rounded like systemd
      i += frac.length;
      v += Number(frac.slice(0, 6).padEnd(6, "0")) + ((frac[6] ?? "0") >= "5" ? 1 : 0);
    }
    return v > 2147483647 ? fail(`${digits} is too large`) : v;
  };
  const chain = (usec: boolean): Part[] => {
    const parts: Part[] = [];
    if (s[i] === "*") {
      i++;
      return usec ? [{ start: 0, stop: -1, repeat: USEC }] : parts;
    }
    for (;;) {
      if (parts.length > 240) fail("more than 241 values in one component");
      const p = { start: num(usec), stop: -1, repeat: 0 };
      if (s.startsWith("..", i)) {
        i += 2;
        [p.stop, p.repeat] = [num(usec), usec ? USEC : 1];
      }
      if (s[i] === "/") {
        i++;
        if ((p.repeat = num(usec)) === 0) fail("a repetition must be at least 1, not /0");
      } else if (usec && p.stop >= 0 && p.start + p.repeat > p.stop) {
        fail(`seconds range ${p.start / USEC}..${p.stop / USEC} is shorter than one second`);
      }
      if (!end() && !" ,-~:".includes(s[i])) syntax();
      parts.push(p);
      if (s[i] !== ",") return parts;
      i++;
    }
  };

  // Weekdays: "Mon", "Mon,Wed", "Mon..Fri", "Mon-Fri" (old style), any case.
  const token = s.split(" ")[0];
  for (let first = true, open = -1; ; first = false) {
    const k = DAYS.findIndex((d) => s.slice(i).toLowerCase().startsWith(d));
    if (k < 0 && first) break;
    if (k < 0 || !"-., ".includes(s[i + DAYS[k].length] ?? " ")) fail(`"${token}" is not a weekday`);
    if (open > k >> 1) fail(`weekday range "${token}" runs backwards`);
    i += DAYS[k].length;
    if (end() || s[i] === " ") break;
    if (s[i] === ",") [i, open] = [i + 1, -1];
    else if (open >= 0 || (s[i] === "." && s[i + 1] !== ".")) fail(`"${token}" is not a weekday`);
    else [i, open] = [i + (s[i] === "." ? 2 : 1), k >> 1];
    if ((end() || s[i] === " ") && open >= 0) fail(`weekday range "${token}" is not closed`);
    if (end() || s[i] === " ") break;
  }
  while (i > 0 && s[i] === " ") i++; // after weekdays only: a leading space is an error

  // Date: "@<epoch>", "month-day" or "year-month-day"; "~" before the day counts from the month's end.
  if (s[i] === "@") {
    const m = /^ *([+-]?)(\d+)$/.exec(s.slice(i + 1)) ?? syntax(); // strtoul(), as systemd
    const t = m[1] === "-" ? (2n ** 64n - BigInt(m[2])) % 2n ** 64n : BigInt(m[2]); // unsigned wrap
    if (BigInt(m[2]) >= 2n ** 64n || t >= 7258118400n) fail(`@${m[1]}${m[2]} is not in 1970..2199`);
    return;
  }
  const at = i;
  const first = end() ? [] : chain(false);
  if (end() || s[i] === ":") i = at;
  else {
    let lastDay = s[i] === "~";
    if (!lastDay && s[i] !== "-") syntax();
    i++;
    const second = chain(false);
    let third: Part[] | undefined;
    if (!end() && s[i] !== " ") {
      if (lastDay || (s[i] !== "-" && s[i] !== "~")) syntax();
      lastDay = s[i++] === "~";
      third = chain(false);
      if (!end() && s[i] !== " ") syntax();
    }
    if (third) check(first, YEAR);
    check(third ? second : first, MONTH);
    check(third ?? second, lastDay ? LAST_DAY : DAY);
    while (s[i] === " ") i++;
  }

  // Time: "hour:minute[:second]".
  if (end()) return;
  check(chain(false), HOUR);
  colon();
  check(chain(false), MINUTE);
  if (end()) return;
  colon();
  check(chain(true), SECOND);
  if (!end()) syntax();
}
