/** Median, min and max of repeated measurements, and their formatting. */
import type { Sample } from "./load";

export interface Spread {
  n: number;
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { n: v.length, median, min: v[0], max: v[v.length - 1] };
}

export function fmt(x: number, digits = 1): string {
  if (!Number.isFinite(x)) return "n/a";
  return x.toFixed(digits);
}

/** `median (min–max)` */
export function fmtSpread(s: Spread, digits = 1, unit = ""): string {
  if (s.n === 0) return "n/a";
  if (s.n === 1) return `${fmt(s.median, digits)}${unit}`;
  return `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** Requests during one release, summed up. */
export interface LoadSummary {
  requests: number;
  failed: number;
  /** Requests whose first attempt died on a kept-alive connection the server closed, and were sent again */
  retried: number;
  /** Worst latency of any request in the window, ms */
  worstMs: number;
  p50Ms: number;
  p99Ms: number;
  /** Statuses and errors of the failed requests, counted */
  failures: Record<string, number>;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summarize(samples: Sample[]): LoadSummary {
  const ms = samples.map((s) => s.ms).sort((a, b) => a - b);
  const failures: Record<string, number> = {};
  for (const s of samples.filter((x) => !x.ok)) {
    const key = s.status ? `HTTP ${s.status}` : (s.error ?? "error").slice(0, 60);
    failures[key] = (failures[key] ?? 0) + 1;
  }
  return {
    requests: samples.length,
    failed: samples.filter((s) => !s.ok).length,
    retried: samples.filter((s) => s.retried !== undefined).length,
    worstMs: ms.length ? ms[ms.length - 1] : NaN,
    p50Ms: percentile(ms, 50),
    p99Ms: percentile(ms, 99),
    failures,
  };
}
