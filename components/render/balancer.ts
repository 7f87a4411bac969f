/**
 * The balancer host (`apphost:lb`) in front of several existing app hosts:
 * Caddy terminates TLS for the stack's hostnames and proxies to every app
 * host's proxy, with active health checks (the app's health path, every
 * `healthIntervalSeconds`) and passive ones (a host whose connection fails is
 * out for 10 s, and an idempotent request is tried on another host).
 *
 * The site is a template with `@UPSTREAMS@`; `apphost-lb apply` fills it with
 * the app hosts that are not drained and reloads Caddy (a graceful reload:
 * requests in flight finish on the old configuration). A rolling release
 * drains a host, deploys it, undrains it and waits until it answers its
 * health check from the balancer; a removed host is drained by the `up` that
 * removes it from the upstream list, before its own resources go.
 */
import type { TlsConfig } from "../config/types";
import { BALANCER_CHECK_HEADER, CADDYFILE_PATH, caddyAcmeLines } from "./caddy";
import { managedBy } from "./common";
import { assertSafe, SAFE } from "../shell";
import type { BalancerLayout, HostLayout } from "../paths";

export const UPSTREAMS_TOKEN = "@UPSTREAMS@";

export interface BalancerSiteInput {
  /** The stack's hostnames: the balancer serves them (its address is what DNS points at) */
  hostnames: string[];
  tls: Pick<TlsConfig, "mode" | "email" | "acmeDirectory" | "acmeCaRoot">;
  /** apphost:app.healthPath: the active health check, sent with the primary hostname as Host */
  healthPath: string;
  healthIntervalSeconds: number;
}

function check(input: BalancerSiteInput): void {
  if (!["caddy-acme", "internal", "off"].includes(input.tls.mode)) {
    throw new Error(
      `balancer site: apphost:tls.mode "${input.tls.mode}": the balancer serves caddy-acme, internal or off`,
    );
  }
  assertSafe("balancer site", [
    ...input.hostnames.map((h, i) => [`apphost:dns.hostnames[${i}]`, h, SAFE.hostName] as const),
    ["apphost:app.healthPath", input.healthPath, SAFE.urlPath],
    ["apphost:lb.healthIntervalSeconds", input.healthIntervalSeconds, SAFE.seconds],
  ]);
}

/** The balancer's site template (`BalancerLayout.template`). */
export function renderBalancerSite(layout: HostLayout, lb: BalancerLayout, input: BalancerSiteInput): string {
  check(input);
  const off = input.tls.mode === "off";
  const body: string[] = [];
  if (input.tls.mode === "internal") body.push("tls internal");
  if (input.tls.mode === "caddy-acme") body.push(...caddyAcmeLines(layout, input.tls));
  const interval = input.healthIntervalSeconds;
  body.push(
    "reverse_proxy {",
    "\t# The app hosts that are not drained; apphost-lb apply writes them here.",
    `\tto ${UPSTREAMS_TOKEN}`,
    "\tlb_policy round_robin",
    "\t# A request whose connection to a host fails (the host is down, or its app",
    "\t# is: its proxy then closes the connection unanswered) goes to another",
    "\t# host for up to 5s. Caddy resends only GET (and HEAD) requests this way.",
    "\tlb_try_duration 5s",
    "\tlb_try_interval 100ms",
    "\t# Passive: a failed host is left out for 10s.",
    "\tfail_duration 10s",
    "\tmax_fails 1",
    "\t# Active: the app's health path on each host, through its proxy, as the app's own host name.",
    `\thealth_uri ${input.healthPath}`,
    `\thealth_interval ${interval}s`,
    `\thealth_timeout ${Math.max(1, Math.min(5, interval * 2))}s`,
    "\thealth_status 2xx",
    "\thealth_headers {",
    `\t\tHost ${input.hostnames[0]}`,
    `\t\tX-Forwarded-Proto ${off ? "http" : "https"}`,
    "\t\t# A drained app host fails this check alone; its users' own requests are served.",
    `\t\t${BALANCER_CHECK_HEADER} 1`,
    "\t}",
    "\t# Caddy passes Host through and sets X-Forwarded-For/-Proto/-Host; the app",
    "\t# hosts' proxies trust them from this host only. No flush_interval -1:",
    "\t# with it, Caddy 2.6 ties each proxied request to the handler's life, and",
    "\t# the reload that adds or removes a host cancels the requests in flight",
    "\t# (caddyserver/caddy#5663). Streams are flushed as written without it.",
    "}",
  );
  const addresses = input.hostnames.map((h) => (off ? `http://${h}` : h)).join(", ");
  return [
    `# apphost ${layout.id}: the balancer's site, imported by ${CADDYFILE_PATH}.`,
    `# ${managedBy("balancer.ts")}`,
    `# Filled in by ${lb.script} apply from ${lb.upstreams} minus ${lb.drained}.`,
    `${addresses} {`,
    ...body.map((l) => `\t${l}`),
    "}",
    "",
  ].join("\n");
}

/** `BalancerLayout.upstreams`: each app host's proxy, `address:port`, one per line. */
export function renderUpstreams(addresses: string[], port: number): string {
  assertSafe("balancer upstreams", [
    ...addresses.map((a, i) => [`app host ${i + 1}`, a, SAFE.hostName] as const),
    ["the app hosts' proxy port", port, SAFE.port],
  ]);
  return addresses.map((a) => `${a}:${port}\n`).join("");
}

export interface BalancerScriptInput {
  /** The primary hostname: the Host header of `wait-healthy`'s check */
  host: string;
  healthPath: string;
  https: boolean;
  healthIntervalSeconds: number;
}

/**
 * `apphost-lb`, root's, on the balancer host. Exit 0 done, 1 failed, 2 usage.
 *   apply                 the site from the template, the app hosts minus the drained ones; validate; reload
 *   drain <host:port>     leave it out (refused for the last serving host)
 *   undrain <host:port>   put it back
 *   wait-healthy <host:port> <seconds>   until its health path answers 2xx from here, and the checker saw it
 *   status                one line per app host: host=, state=serving|drained, health=<HTTP status>
 */
export function renderBalancerScript(lb: BalancerLayout, input: BalancerScriptInput): string {
  assertSafe("apphost-lb", [
    ["apphost:dns.hostnames[0]", input.host, SAFE.hostName],
    ["apphost:app.healthPath", input.healthPath, SAFE.urlPath],
    ["apphost:lb.healthIntervalSeconds", input.healthIntervalSeconds, SAFE.seconds],
  ]);
  const settle = input.healthIntervalSeconds * 2;
  return `#!/bin/bash
# apphost-lb for ${lb.id}. ${managedBy("balancer.ts")}
set -euo pipefail
umask 077

readonly DIR=${lb.dir}
readonly UPSTREAMS=${lb.upstreams}
readonly DRAINED=${lb.drained}
readonly TEMPLATE=${lb.template}
readonly SITE=${lb.site}
readonly CADDYFILE=${CADDYFILE_PATH}
readonly HEALTH_HOST=${input.host}
readonly HEALTH_PATH=${input.healthPath}
readonly HEALTH_PROTO=${input.https ? "https" : "http"}
readonly SETTLE=${settle}

fail() { echo "apphost-lb: $*" >&2; exit 1; }
note() { echo "apphost-lb: $*" >&2; }
usage() { echo "usage: apphost-lb apply | drain HOST:PORT | undrain HOST:PORT | wait-healthy HOST:PORT SECONDS | status" >&2; exit 2; }

listed() { grep -qxF -- "$1" "$UPSTREAMS"; }
drained() { [[ -f $DRAINED ]] && grep -qxF -- "$1" "$DRAINED"; }

# The app hosts that serve: listed and not drained, in the listed order.
serving() {
  local h
  while IFS= read -r h; do
    [[ -n $h ]] || continue
    drained "$h" || printf '%s\\n' "$h"
  done <"$UPSTREAMS"
}

apply() {
  local hosts old="" tmp
  [[ -f $UPSTREAMS && -f $TEMPLATE ]] || fail "$UPSTREAMS or $TEMPLATE is missing: run pulumi up"
  hosts=$(serving | tr '\\n' ' ')
  hosts=\${hosts% }
  [[ -n $hosts ]] || fail "no app host left to serve (all drained); undrain one first"
  tmp=$(mktemp "$DIR/site.XXXXXX")
  sed "s|${UPSTREAMS_TOKEN}|$hosts|" "$TEMPLATE" >"$tmp"
  chmod 0644 "$tmp"
  if [[ -f $SITE ]]; then old=$(mktemp "$DIR/site.old.XXXXXX"); cp -p "$SITE" "$old"; fi
  mv -f "$tmp" "$SITE"
  if ! out=$(caddy validate --adapter caddyfile --config "$CADDYFILE" 2>&1); then
    if [[ -n $old ]]; then mv -f "$old" "$SITE"; else rm -f "$SITE"; fi
    fail "the new site does not validate (the old one stays): $(printf '%s' "$out" | tail -n 3)"
  fi
  [[ -z $old ]] || rm -f "$old"
  if systemctl is-active --quiet caddy; then systemctl reload caddy; else systemctl enable --now caddy; fi
  note "serving: $hosts"
}

locked() {
  exec 9>"$DIR/.lock"
  flock -w 60 9 || fail "another apphost-lb holds $DIR/.lock"
}

cmd=\${1:-}
case $cmd in
  apply)
    locked
    apply
    ;;
  drain)
    [[ $# -eq 2 ]] || usage
    locked
    # A host being added gets its release before the balancer lists it: nothing to drain yet.
    if ! listed "$2"; then note "$2 is not in the balancer (yet); nothing to drain"; exit 0; fi
    if drained "$2"; then note "$2 is drained already"; exit 0; fi
    [[ $(serving | grep -cvxF -- "$2" || true) -gt 0 ]] || fail "$2 is the last app host serving; refusing to drain it"
    printf '%s\\n' "$2" >>"$DRAINED"
    apply
    ;;
  undrain)
    [[ $# -eq 2 ]] || usage
    locked
    if ! drained "$2"; then note "$2 is not drained"; exit 0; fi
    if [[ -f $DRAINED ]]; then
      grep -vxF -- "$2" "$DRAINED" >"$DRAINED.new" || true
      mv -f "$DRAINED.new" "$DRAINED"
    fi
    apply
    ;;
  wait-healthy)
    [[ $# -eq 3 && $3 =~ ^[0-9]+$ ]] || usage
    deadline=$((SECONDS + $3))
    code=000
    while ((SECONDS < deadline)); do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $HEALTH_HOST" -H "X-Forwarded-Proto: $HEALTH_PROTO" -H "${BALANCER_CHECK_HEADER}: 1" "http://$2$HEALTH_PATH" || true)
      if [[ $code == 2?? ]]; then
        # Let Caddy's own checker see it too before the next host goes out.
        sleep "$SETTLE"
        note "$2 answers $HEALTH_PATH with $code"
        exit 0
      fi
      sleep 0.5
    done
    fail "$2 did not answer $HEALTH_PATH with 2xx within $3s (last: HTTP $code)"
    ;;
  status)
    while IFS= read -r h; do
      [[ -n $h ]] || continue
      state=serving
      drained "$h" && state=drained
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: $HEALTH_HOST" -H "X-Forwarded-Proto: $HEALTH_PROTO" -H "${BALANCER_CHECK_HEADER}: 1" "http://$h$HEALTH_PATH" || true)
      printf 'host=%s state=%s health=%s\\n' "$h" "$state" "$code"
    done <"$UPSTREAMS"
    ;;
  *) usage ;;
esac
`;
}
