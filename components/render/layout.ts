/**
 * The stack's user and directory tree on a host: the command that creates
 * them, and its exact mirror for destroy, which keeps the data and backups
 * (moved aside, never deleted). Pure: commands as text, run by App's layout step.
 */
import type { ProxyConfig } from "../config/types";
import type { HostLayout } from "../paths";
import { shellQuote as q } from "../shell";
import { proxyCommands } from "../server";
import { deleteUpstreamTables } from "./nftables";

/** Where `pulumi destroy` moves a stack's data and backups: `/var/lib/apphost/kept/<id>-<UTC stamp>`. */
export const KEPT_DIR = "/var/lib/apphost/kept";

/**
 * On destroy: when shared/data or shared/backups holds anything, move shared/
 * to KEPT_DIR under a dated name, owned by root (the app user is deleted next,
 * and a later user could get its uid), and say where. Nothing is deleted.
 */
export function keepDataCommands(layout: HostLayout): string[] {
  const shared = q(layout.shared);
  return [
    `if [ -n "$(find ${q(layout.data)} ${q(layout.backups)} -mindepth 1 -print -quit 2>/dev/null)" ]; then`,
    `  kept=${KEPT_DIR}/${layout.id}-$(date -u +%Y%m%dT%H%M%SZ)`,
    `  install -d -m 0700 ${KEPT_DIR}`,
    `  mv ${shared} "$kept"`,
    '  chown -R -h root:root "$kept"',
    `  echo "apphost: kept the data and backups of ${layout.id} in $kept (destroy never deletes them); delete that directory when you no longer need it" >&2`,
    "fi",
  ];
}

/** The command that creates the stack's user and layout, and its exact mirror for destroy. */
export function layoutCommands(
  layout: HostLayout,
  input: { proxy: Pick<ProxyConfig, "kind"> },
): { create: string; delete: string } {
  const cmd = proxyCommands(input.proxy.kind);
  // Written by apphost versions that switched by rewriting it and reloading the proxy.
  const legacyUpstreamFile = input.proxy.kind === "caddy" ? layout.caddyUpstream : layout.nginxUpstream;
  const units = `${layout.unitPrefix}-*`;
  return {
    create: [
      "set -euo pipefail",
      `if ! id -u ${q(layout.user)} >/dev/null 2>&1; then`,
      `  useradd --system --user-group --home-dir ${q(layout.root)} --no-create-home --shell /usr/sbin/nologin ${q(layout.user)}`,
      "fi",
      `install -d -m 0755 ${q(layout.root)} ${q(layout.bin)}`,
      "",
    ].join("\n"),
    delete: [
      "set -euo pipefail",
      `for unit in $(systemctl list-units --all --plain --no-legend ${q(units)} | awk '{print $1}'); do`,
      '  systemctl disable --now "$unit" >/dev/null 2>&1 || systemctl stop "$unit" || true',
      "done",
      // The stack's nftables tables (its upstream switch and the web ports' guard); only this stack's.
      `if command -v nft >/dev/null; then ${deleteUpstreamTables(layout)
        .map((args) => `nft ${args} 2>/dev/null || true`)
        .join("; ")}; fi`,
      `rm -f ${q(legacyUpstreamFile)} ${q(layout.envFile)}`,
      // The data and its backups outlive the stack: moved aside (root's alone, the app user is going), never deleted.
      ...keepDataCommands(layout),
      `rm -rf --one-file-system ${q(layout.root)}`,
      `if id -u ${q(layout.user)} >/dev/null 2>&1; then userdel ${q(layout.user)}; fi`,
      `if getent group ${q(layout.user)} >/dev/null; then groupdel ${q(layout.user)}; fi`,
      "systemctl daemon-reload",
      // A timer whose service went first is left "failed"; forget it.
      `systemctl reset-failed ${q(units)} 2>/dev/null || true`,
      `${cmd.validate} >/dev/null && ${cmd.reload}`,
      "",
    ].join("\n"),
  };
}
