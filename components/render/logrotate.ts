/**
 * `/etc/logrotate.d/apphost-<id>`: the app's file logs and the proxy's
 * access log of the stack.
 *
 * copytruncate rather than a postrotate signal, for both:
 * - app logs: apphost cannot know how the app reopens its files (gunicorn
 *   does on SIGUSR1, uvicorn and most node loggers never do), and the web
 *   unit is a template with changing instances;
 * - Caddy: it has no "reopen logs" signal, and `caddy reload` with an
 *   unchanged configuration does not reopen them either. Caddy appends
 *   (O_APPEND), so a truncated file is written from its start again, not
 *   past a hole. Its own rolling is off (`roll_disabled` in the site).
 * The cost: lines written between the copy and the truncate (microseconds)
 * are lost. `su` makes logrotate work as the directory's owner, which it
 * requires for a directory a non-root user can write.
 *
 * nginx logs (`/var/log/nginx/apphost-<id>.*.log`) get no entry: Debian's
 * /etc/logrotate.d/nginx already rotates /var/log/nginx/*.log daily, 14
 * kept, compressed, and reopens them with `invoke-rc.d nginx rotate`; a
 * second entry for the same file is an error for logrotate.
 */
import type { ProxyConfig } from "../config/types";
import type { HostLayout } from "../paths";
import { HOST_DIRS, HostDirs, caddyAccessLog, managedBy } from "./common";

export interface LogrotateInput {
  proxy: Pick<ProxyConfig, "kind">;
}

/** `/etc/logrotate.d/apphost-<id>` */
export function logrotatePath(layout: HostLayout): string {
  return `/etc/logrotate.d/apphost-${layout.id}`;
}

function entry(pattern: string, user: string, group: string): string[] {
  return [
    `${pattern} {`,
    `\tsu ${user} ${group}`,
    "\tdaily",
    "\trotate 14",
    "\tcompress",
    "\tdelaycompress",
    "\tmissingok",
    "\tnotifempty",
    "\tcopytruncate",
    "}",
  ];
}

export function renderLogrotate(
  layout: HostLayout,
  input: LogrotateInput,
  dirs: HostDirs = HOST_DIRS,
): string {
  const out = [
    `# apphost ${layout.id}: log rotation.`,
    `# ${managedBy("logrotate.ts")}`,
    "# copytruncate: the writers cannot be told to reopen their files (see logrotate.ts).",
    "",
    "# The app's own log files.",
    ...entry(`${layout.logs}/*.log`, layout.user, layout.user),
  ];
  if (input.proxy.kind === "caddy") {
    out.push(
      "",
      "# Caddy's access log of this stack.",
      ...entry(caddyAccessLog(layout, dirs), "caddy", "caddy"),
    );
  } else {
    out.push(
      "",
      `# nginx logs of this stack (${dirs.nginxLogs}/apphost-${layout.id}.*.log) are rotated by`,
      "# Debian's /etc/logrotate.d/nginx, which also reopens them; listing them here too is an error.",
    );
  }
  out.push("");
  return out.join("\n");
}
