/** Base inputs shared by the renderer tests, and a line diff for the variant tests. */
import type { ProxySiteInput } from "../../components/render/common";
import { HostLayout, hostLayout } from "../../components/paths";

export const layout: HostLayout = hostLayout("shop", "prod");

/** caddy-acme for Caddy; the nginx tests switch the mode to one nginx serves. */
export function baseSite(): ProxySiteInput {
  return {
    hostnames: ["shop.example.com", "www.shop.example.com"],
    tls: { mode: "caddy-acme" },
    proxy: { maxBodySize: "25m", hsts: true, compression: true, httpPort: 80, httpsPort: 443 },
    app: { healthPath: "/healthz", staticDir: "frontend/dist", staticPrefix: "/static/", basePort: 8000 },
  };
}

/**
 * Lines only in `a` (removed) and only in `b` (added), by longest common
 * subsequence, so a variant test asserts exactly what one input key changed.
 */
export function lineDiff(a: string, b: string): { removed: string[]; added: string[] } {
  const x = a.split("\n");
  const y = b.split("\n");
  const lcs: number[][] = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) {
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      removed.push(x[i++]);
    } else {
      added.push(y[j++]);
    }
  }
  removed.push(...x.slice(i));
  added.push(...y.slice(j));
  return { removed, added };
}
