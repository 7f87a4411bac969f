/**
 * Every path and name apphost uses on a host, derived in one place.
 *
 * Two stacks may share a host (staging and prod side by side), so every
 * directory, unit, user, port and proxy snippet carries `<app>-<stack>`.
 */

export interface HostLayout {
  /** `<app>-<stack>`, the id every other name is built from */
  id: string;
  /** System user and group the processes run as */
  user: string;
  /** `/srv/<id>` */
  root: string;
  /** `/srv/<id>/releases`, one directory per release id */
  releases: string;
  /** `/srv/<id>/current`, symlink to the live release */
  current: string;
  /** `/srv/<id>/shared`, survives every release */
  shared: string;
  /** `/srv/<id>/shared/data` (SQLite lives here) */
  data: string;
  /** `/srv/<id>/shared/logs` */
  logs: string;
  /** `/srv/<id>/shared/backups` */
  backups: string;
  /** `/srv/<id>/venvs`, one virtualenv per requirements hash, reused across releases */
  venvs: string;
  /** `/srv/<id>/bin`, apphost's own scripts on the host */
  bin: string;
  /** `/srv/<id>/releases.log`, one tab-separated line per release attempt */
  releaseLog: string;
  /** `/srv/<id>/deploy.lock`, the host-side deploy lock */
  lock: string;
  /**
   * `/srv/<id>/jobs`, root-only: one directory per detached deploy or rollback
   * (its argv, artifact, output and exit status), `latest` the newest
   */
  jobs: string;
  /** `/srv/<id>/active-port`, the web port the stack's upstream port currently leads to */
  activePort: string;
  /**
   * nftables table of the stack, `apphost_<id with _ for ->` (family ip): one
   * nat rule that sends the proxy's connections to the stable upstream port on
   * to the live web port (components/render/nftables.ts)
   */
  nftTable: string;
  /** `/etc/apphost/<id>.env`, mode 0600, owned by the app user */
  envFile: string;
  /** systemd unit name prefix, `apphost-<id>` */
  unitPrefix: string;
  /** Caddy: `/etc/caddy/apphost/<id>.caddy`, imported by the main Caddyfile */
  caddySite: string;
  /** Caddy: `/etc/caddy/apphost/<id>.upstream`, written by apphost before the nftables switch; destroy removes a leftover */
  caddyUpstream: string;
  /** Nginx: `/etc/nginx/sites-enabled/apphost-<id>.conf` */
  nginxSite: string;
  /** Nginx: `/etc/nginx/apphost/<id>.upstream`, written by apphost before the nftables switch; destroy removes a leftover */
  nginxUpstream: string;
}

const NAME = /^[a-z][a-z0-9-]{0,30}$/;

export function hostLayout(app: string, stack: string): HostLayout {
  const id = `${app}-${stack}`;
  if (!NAME.test(app) || !NAME.test(stack) || id.length > 31) {
    throw new Error(
      `host layout: app "${app}" and stack "${stack}" must be lowercase letters, digits and dashes, ` +
        `start with a letter, and "<app>-<stack>" must fit in 31 characters (a Linux user name limit)`,
    );
  }
  const root = `/srv/${id}`;
  const shared = `${root}/shared`;
  return {
    id,
    user: id,
    root,
    releases: `${root}/releases`,
    current: `${root}/current`,
    shared,
    data: `${shared}/data`,
    logs: `${shared}/logs`,
    backups: `${shared}/backups`,
    venvs: `${root}/venvs`,
    bin: `${root}/bin`,
    releaseLog: `${root}/releases.log`,
    lock: `${root}/deploy.lock`,
    jobs: `${root}/jobs`,
    activePort: `${root}/active-port`,
    nftTable: `apphost_${id.replace(/-/g, "_")}`,
    envFile: `/etc/apphost/${id}.env`,
    unitPrefix: `apphost-${id}`,
    caddySite: `/etc/caddy/apphost/${id}.caddy`,
    caddyUpstream: `/etc/caddy/apphost/${id}.upstream`,
    nginxSite: `/etc/nginx/sites-enabled/apphost-${id}.conf`,
    nginxUpstream: `/etc/nginx/apphost/${id}.upstream`,
  };
}

/** systemd unit for a process: the web process is a template instantiated per port. */
export function unitName(layout: HostLayout, process: string, kind: "web" | "worker"): string {
  return kind === "web"
    ? `${layout.unitPrefix}-${process}@.service`
    : `${layout.unitPrefix}-${process}.service`;
}

/** The concrete web instance unit for one port, e.g. `apphost-shop-prod-web@8001.service`. */
export function webInstance(layout: HostLayout, process: string, port: number): string {
  return `${layout.unitPrefix}-${process}@${port}.service`;
}

/**
 * The stack's stable upstream port: the proxy always connects to
 * `127.0.0.1:<basePort + 2>`, and the stack's nftables rule sends each new
 * connection on to the live web port (basePort or basePort + 1). The one place
 * this port is derived; the config validation keeps all three ports free.
 */
export function upstreamPort(basePort: number): number {
  return basePort + 2;
}

/**
 * `apphost-<id>-job.service`: the transient unit (systemd-run) a deploy or a
 * rollback runs in, so the client's SSH connection does not decide its fate.
 * One name per stack: systemd refuses a second one while it runs.
 */
export function jobUnitName(layout: HostLayout): string {
  return `${layout.unitPrefix}-job.service`;
}

/** `apphost-<id>-upstream.service`: loads the nftables rule at boot, before the proxy starts. */
export function upstreamUnitName(layout: HostLayout): string {
  return `${layout.unitPrefix}-upstream.service`;
}
