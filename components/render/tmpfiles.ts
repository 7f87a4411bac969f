/**
 * systemd-tmpfiles.d entries: the directories apphost needs, with owner and
 * mode, (re)applied by `systemd-tmpfiles --create <file>` on every deploy
 * and at boot. `d` creates a missing directory and resets mode and owner of
 * an existing one; the age column is `-`, so nothing is ever cleaned.
 *
 * Two files, so two stacks on one host never list the same path twice
 * (tmpfiles warns about duplicates across files):
 * - `/etc/tmpfiles.d/apphost.conf`: host-wide directories;
 * - `/etc/tmpfiles.d/apphost-<id>.conf`: the stack's directories.
 * The app user (and `caddy`, from the caddy package) must exist first:
 * tmpfiles refuses unknown users.
 */
import type { ProxyConfig, TlsConfig } from "../config/types";
import { APPHOST_ETC, CADDY_SITES_DIR, NGINX_UPSTREAM_DIR, type HostLayout } from "../paths";
import { HOST_DIRS, HostDirs, acmeWebroot, caddyAccessLog, managedBy } from "./common";

export const TMPFILES_SHARED_PATH = "/etc/tmpfiles.d/apphost.conf";

export function tmpfilesPath(layout: HostLayout): string {
  return `/etc/tmpfiles.d/apphost-${layout.id}.conf`;
}

export interface TmpfilesInput {
  /** caddy adds the stack's access log file */
  proxy: Pick<ProxyConfig, "kind">;
  /** certbot adds the stack's ACME webroot */
  tls: Pick<TlsConfig, "mode">;
}

interface Dir {
  /** `d` directory (the default) or `f` file */
  type?: "d" | "f";
  path: string;
  mode: string;
  user: string;
  group: string;
  why: string;
}

function table(dirs: Dir[]): string[] {
  const w = (f: (d: Dir) => string) => Math.max(...dirs.map((d) => f(d).length));
  const [wp, wu, wg] = [w((d) => d.path), w((d) => d.user), w((d) => d.group)];
  const out: string[] = [];
  for (const d of dirs) {
    out.push(`# ${d.why}`);
    out.push(`${d.type ?? "d"} ${d.path.padEnd(wp)} ${d.mode} ${d.user.padEnd(wu)} ${d.group.padEnd(wg)} -`);
  }
  return out;
}

/** The stack's directories under `/srv/<id>`, its ACME webroot (certbot) and its Caddy access log. */
export function renderTmpfiles(layout: HostLayout, input: TmpfilesInput, dirs: HostDirs = HOST_DIRS): string {
  const u = layout.user;
  const entries: Dir[] = [
    {
      path: layout.root,
      mode: "0755",
      user: "root",
      group: "root",
      why: "Root of the stack, read-only for the app",
    },
    {
      path: layout.releases,
      mode: "0755",
      user: "root",
      group: "root",
      why: "One directory per release (the deploy chowns each to the app user); the proxy reads static files there",
    },
    {
      path: layout.instances,
      mode: "0755",
      user: "root",
      group: "root",
      why: "instances/<port>: link to the release each web instance runs (components/release)",
    },
    {
      path: layout.venvs,
      mode: "0755",
      user: "root",
      group: "root",
      why: "Virtualenvs, one per requirements hash",
    },
    { path: layout.bin, mode: "0755", user: "root", group: "root", why: "apphost's scripts on the host" },
    {
      path: `${layout.root}/cache`,
      mode: "0750",
      user: u,
      group: u,
      why: "pip cache of the installs (run as the app user)",
    },
    { path: layout.shared, mode: "0755", user: "root", group: "root", why: "Survives every release" },
    {
      path: layout.data,
      mode: "0750",
      user: u,
      group: u,
      why: "App data: the app user owns it so SQLite can create its -wal and -shm files",
    },
    { path: layout.logs, mode: "0750", user: u, group: u, why: "The app's log files (rotated by logrotate)" },
    {
      path: layout.backups,
      mode: "0700",
      user: "root",
      group: "root",
      why: "Database copies, root's alone: the app cannot read, plant or remove a backup (components/release/backup.ts)",
    },
  ];
  if (input.tls.mode === "certbot") {
    entries.push({
      path: acmeWebroot(layout, dirs),
      mode: "0755",
      user: "root",
      group: "root",
      why: "certbot --webroot writes challenges here; nginx (www-data) serves them",
    });
  }
  if (input.proxy.kind === "caddy") {
    entries.push({
      type: "f",
      path: caddyAccessLog(layout, dirs),
      mode: "0640",
      user: "caddy",
      group: "caddy",
      why: "Caddy's access log, owned by caddy before a `caddy validate` run as root can create it",
    });
  }
  return [
    `# apphost ${layout.id}: directories (systemd-tmpfiles --create ${tmpfilesPath(layout)}).`,
    `# ${managedBy("tmpfiles.ts")}`,
    ...table(entries),
    "",
  ].join("\n");
}

export interface SharedTmpfilesInput {
  proxy: Pick<ProxyConfig, "kind">;
}

/** Host-wide directories: `/etc/apphost`, its tls directory, the proxy's snippet directory. */
export function renderSharedTmpfiles(input: SharedTmpfilesInput, dirs: HostDirs = HOST_DIRS): string {
  const caddy = input.proxy.kind === "caddy";
  const entries: Dir[] = [
    {
      path: APPHOST_ETC,
      mode: "0755",
      user: "root",
      group: "root",
      why: "Env files (each 0600, owned by its app user) and tls/",
    },
    caddy
      ? {
          path: dirs.tls,
          mode: "0750",
          user: "root",
          group: "caddy",
          why: "Origin certificates; Caddy runs as caddy and reads the keys (0640 root:caddy)",
        }
      : {
          path: dirs.tls,
          mode: "0700",
          user: "root",
          group: "root",
          why: "Origin certificates; nginx reads them as root before dropping privileges",
        },
    caddy
      ? {
          path: CADDY_SITES_DIR,
          mode: "0755",
          user: "root",
          group: "root",
          why: "Site and upstream snippets",
        }
      : { path: NGINX_UPSTREAM_DIR, mode: "0755", user: "root", group: "root", why: "Upstream files" },
  ];
  if (!caddy) {
    entries.push({
      path: dirs.acmeWebroot,
      mode: "0755",
      user: "root",
      group: "root",
      why: "Parent of the per-stack certbot webroots",
    });
  }
  return [
    "# apphost: host-wide directories (systemd-tmpfiles --create /etc/tmpfiles.d/apphost.conf).",
    `# ${managedBy("tmpfiles.ts")}`,
    ...table(entries),
    "",
  ].join("\n");
}
