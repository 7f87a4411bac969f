/**
 * The latency chart: one panel per release method, every request as a dot
 * (time since the release started, latency on a log scale), failed requests
 * as red crosses, the release's window shaded and the first answer from the
 * new code marked. Plain SVG, written by hand.
 */
import type { Sample } from "./load";

export interface Panel {
  title: string;
  samples: Sample[];
  /** The release: from `start` to `end`, ms since the epoch */
  start: number;
  end: number;
  /** ms since the epoch of the first answer from the new code, if any */
  switchedAt?: number;
  /** What the host did meanwhile (proxy reloads, instance starts and stops), ms since the epoch */
  events?: { at: number; what: string }[];
}

const W = 960;
const PANEL_H = 250;
const M = { left: 70, right: 20, top: 34, bottom: 40 };

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function panelSvg(p: Panel, y0: number, yMaxMs: number): string {
  const plotW = W - M.left - M.right;
  const plotH = PANEL_H - M.top - M.bottom;
  const ts = p.samples.map((s) => (s.at - p.start) / 1000);
  const xMin = Math.min(-1, ...ts);
  const xMax = Math.max((p.end - p.start) / 1000 + 1, ...ts.map((t, i) => t + p.samples[i].ms / 1000));
  const x = (t: number) => M.left + ((t - xMin) / (xMax - xMin)) * plotW;
  const yMin = 1;
  const y = (ms: number) => {
    const v = Math.log10(Math.max(yMin, Math.min(yMaxMs, ms)));
    return y0 + M.top + plotH - ((v - Math.log10(yMin)) / (Math.log10(yMaxMs) - Math.log10(yMin))) * plotH;
  };
  const out: string[] = [];
  const top = y0 + M.top;
  const bottom = y0 + M.top + plotH;
  out.push(
    `<text x="${M.left}" y="${y0 + 20}" font-size="14" font-weight="bold">${esc(p.title)}</text>`,
    `<rect x="${x(0).toFixed(1)}" y="${top}" width="${(x((p.end - p.start) / 1000) - x(0)).toFixed(1)}" height="${plotH}" fill="#fde9c4" />`,
  );
  // y grid: decades
  for (let d = yMin; d <= yMaxMs; d *= 10) {
    const label = d >= 1000 ? `${d / 1000} s` : `${d} ms`;
    out.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y(d).toFixed(1)}" y2="${y(d).toFixed(1)}" stroke="#ddd" />`,
      `<text x="${M.left - 6}" y="${(y(d) + 4).toFixed(1)}" font-size="11" text-anchor="end">${label}</text>`,
    );
  }
  // x ticks
  const span = xMax - xMin;
  const step = span > 120 ? 20 : span > 60 ? 10 : span > 20 ? 5 : span > 8 ? 2 : 1;
  for (let t = Math.ceil(xMin / step) * step; t <= xMax; t += step) {
    out.push(
      `<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${bottom}" y2="${bottom + 4}" stroke="#333" />`,
      `<text x="${x(t).toFixed(1)}" y="${bottom + 16}" font-size="11" text-anchor="middle">${t}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${bottom}" y2="${bottom}" stroke="#333" />`,
    `<line x1="${M.left}" x2="${M.left}" y1="${top}" y2="${bottom}" stroke="#333" />`,
    `<text x="${M.left + plotW / 2}" y="${bottom + 32}" font-size="11" text-anchor="middle">seconds since the release started (shaded: the release running)</text>`,
  );
  if (p.switchedAt !== undefined) {
    const sx = x((p.switchedAt - p.start) / 1000).toFixed(1);
    out.push(
      `<line x1="${sx}" x2="${sx}" y1="${top}" y2="${bottom}" stroke="#2a9d3a" stroke-dasharray="4 3" />`,
      `<text x="${sx}" y="${top - 4}" font-size="10" fill="#2a9d3a" text-anchor="middle">new code answers</text>`,
    );
  }
  for (const e of p.events ?? []) {
    const t = (e.at - p.start) / 1000;
    if (t < xMin || t > xMax) continue;
    const color = e.what === "caddy reload" ? "#7b3fb5" : e.what.startsWith("stop") ? "#c76a00" : "#888";
    const ex = x(t).toFixed(1);
    out.push(
      `<line x1="${ex}" x2="${ex}" y1="${top}" y2="${bottom}" stroke="${color}" stroke-width="1.5" stroke-dasharray="2 2"><title>${esc(e.what)}</title></line>`,
    );
  }
  const dots: string[] = [];
  const rings: string[] = [];
  const crosses: string[] = [];
  p.samples.forEach((s, i) => {
    const cx = x(ts[i]);
    const cy = y(s.ms);
    if (s.ok && s.retried !== undefined)
      rings.push(
        `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="3.5"><title>${esc(`retried after: ${s.retried}`)}</title></circle>`,
      );
    else if (s.ok) dots.push(`<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="1.6" />`);
    else
      crosses.push(
        `<path d="M${(cx - 3).toFixed(1)},${(cy - 3).toFixed(1)}l6,6m0,-6l-6,6"><title>${esc(
          s.status ? `HTTP ${s.status}` : (s.error ?? "error"),
        )}</title></path>`,
      );
  });
  out.push(`<g fill="#1f5fa8" fill-opacity="0.55">${dots.join("")}</g>`);
  out.push(`<g stroke="#e08a00" stroke-width="1.4" fill="none">${rings.join("")}</g>`);
  out.push(`<g stroke="#d62728" stroke-width="1.6" fill="none">${crosses.join("")}</g>`);
  const failed = p.samples.filter((s) => !s.ok).length;
  const retried = p.samples.filter((s) => s.retried !== undefined).length;
  const worst = Math.max(0, ...p.samples.map((s) => s.ms));
  out.push(
    `<text x="${W - M.right}" y="${y0 + 20}" font-size="12" text-anchor="end">${p.samples.length} requests, ` +
      `<tspan fill="${failed ? "#d62728" : "#333"}">${failed} failed</tspan>, ${retried} retried, worst ${worst} ms</text>`,
  );
  return out.join("\n");
}

export function latencyChart(title: string, panels: Panel[]): string {
  const worst = Math.max(1000, ...panels.flatMap((p) => p.samples.map((s) => s.ms)));
  const yMaxMs = 10 ** Math.ceil(Math.log10(worst));
  const h = 40 + panels.length * PANEL_H + 40;
  const body = panels.map((p, i) => panelSvg(p, 40 + i * PANEL_H, yMaxMs)).join("\n");
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">`,
    `<rect width="${W}" height="${h}" fill="white" />`,
    `<text x="${M.left}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`,
    body,
    `<g font-size="11" transform="translate(${M.left},${h - 28})">`,
    `<circle cx="0" cy="-4" r="3" fill="#1f5fa8" /><text x="8" y="0">answered 2xx</text>`,
    `<path d="M137,-7l6,6m0,-6l-6,6" stroke="#d62728" stroke-width="1.6" /><text x="149" y="0">failed (non-2xx, error, timeout)</text>`,
    `<circle cx="380" cy="-4" r="3.5" fill="none" stroke="#e08a00" stroke-width="1.4" /><text x="388" y="0">2xx after one retry (the proxy closed the kept-alive connection)</text>`,
    `<line x1="-10" x2="10" y1="12" y2="12" stroke="#2a9d3a" stroke-dasharray="4 3" /><text x="16" y="16">first answer from the new code</text>`,
    `<line x1="190" x2="210" y1="12" y2="12" stroke="#888" stroke-dasharray="1 2" /><text x="216" y="16">web instance started</text>`,
    `<line x1="370" x2="390" y1="12" y2="12" stroke="#7b3fb5" stroke-dasharray="1 2" /><text x="396" y="16">caddy reload</text>`,
    `<line x1="500" x2="520" y1="12" y2="12" stroke="#c76a00" stroke-dasharray="1 2" /><text x="526" y="16">web instance stopping</text>`,
    `</g>`,
    `</svg>`,
    "",
  ].join("\n");
}
