/**
 * Every path and name apphost uses on a host, derived in one place.
 *
 * Two stacks may share a host (staging and prod side by side), so every
 * directory, unit, user, port and proxy snippet carries `<app>-<stack>`.
 */
import { isName } from "./shell";

/**
 * Host-wide, shared by every stack on the host: pinned tools apphost installs
 * (uv, Poetry, uv-managed Pythons), one directory per tool version, root-owned.
 */
export const HOST_TOOLS_DIR = "/var/lib/apphost/tools";

/**
 * Host-wide, root-owned: each stack's env file and its claims on ports and unit names (`<id>.env`, `<id>.ports`,
 * `<id>.units`; the baseline reads the claims to name the stacks on a host), and `tls/`.
 */
export const APPHOST_ETC = "/etc/apphost";

/** systemd's directory for the units apphost writes. */
export const UNIT_DIR = "/etc/systemd/system";
/** Where systemd keeps the last run of each `Persistent=` timer (`stamp-<unit>`), left when the unit goes. */
export const TIMER_STAMP_DIR = "/var/lib/systemd/timers";
/** The main Caddyfile apphost owns (render/caddy.ts), shared by every stack on the host. */
export const CADDYFILE_PATH = "/etc/caddy/Caddyfile";
/** One Caddy site snippet per stack (`HostLayout.caddySite`), imported by the Caddyfile. */
export const CADDY_SITES_DIR = "/etc/caddy/apphost";
/** Host-wide nginx http settings (render/nginx.ts). */
export const NGINX_HTTP_CONF_PATH = "/etc/nginx/conf.d/apphost.conf";
/** Legacy nginx upstream files (`HostLayout.nginxUpstream`). */
export const NGINX_UPSTREAM_DIR = "/etc/nginx/apphost";
/** Debian's default nginx site, which apphost's sites replace. */
export const NGINX_DEFAULT_SITE = "/etc/nginx/sites-enabled/default";

export interface HostLayout {
  /** `<app>-<stack>`, the id every other name is built from */
  id: string;
  /** System user and group the processes run as */
  user: string;
  /** `/srv/<id>` */
  root: string;
  /** `/srv/<id>/releases`, one directory per release id */
  releases: string;
  /**
   * `/srv/<id>/instances`, one link per web port to the release that instance runs, and beside it the env that
   * instance started with, `<port>.env` (instanceEnvFile)
   */
  instances: string;
  /**
   * `/srv/<id>/instances/live.env`: the env the workers, the scheduled jobs and `npm run exec` read, the copy of
   * `envFile` made when the live release went live. With the instances' own copies, what a failed deploy wrote to
   * `envFile` reaches no process: a restart of what serves reads the env it was started with.
   */
  liveEnv: string;
  /** `/srv/<id>/current`, symlink to the live release */
  current: string;
  /** `/srv/<id>/shared`, survives every release */
  shared: string;
  /** `/srv/<id>/shared/data` (SQLite lives here) */
  data: string;
  /** `/srv/<id>/shared/data/linked`: apphost:app.sharedDirs, each at its path in the release (`linked/bakerydemo/media`) */
  linked: string;
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
  /**
   * `/etc/apphost/<id>.env`, root:<app user> 0640: the env `pulumi up` wants. A deploy copies it for the instance
   * it starts (instanceEnvFile) and, when that goes live, to `liveEnv`; migrations read it.
   */
  envFile: string;
  /** `/etc/apphost/<id>.alert`, root-only (0600): curl config naming the alert webhook (apphost:alerts) */
  alertFile: string;
  /**
   * `/etc/apphost/<id>.ports`: the stack's claim on its three ports (the web
   * ports and the upstream port, one line), which another stack on the same
   * host is refused (render/layout.ts, portClaimCommands)
   */
  portsFile: string;
  /**
   * `/etc/apphost/<id>.units`: the stack's claim on its systemd units' names
   * (one a line); a stack whose unit would have one of them is refused
   * (render/layout.ts, unitClaimCommands)
   */
  unitsFile: string;
  /**
   * `/srv/<id>/maintenance`, root-owned, readable by the proxy: `page.html`
   * (the 503 page), and the two switches the proxy tests on each request:
   * `on-config` (apphost:app.maintenance, written by pulumi up) and `on`
   * (`npm run maintenance`, outside the state). Either one turns it on.
   */
  maintenance: string;
  /** systemd unit name prefix, `apphost-<id>` */
  unitPrefix: string;
  /**
   * systemd's directory for the units apphost writes (UNIT_DIR), where a release also writes each process's
   * command drop-in (commandDropIn)
   */
  unitDir: string;
  /** Caddy: `/etc/caddy/apphost/<id>.caddy`, imported by the main Caddyfile */
  caddySite: string;
  /** Caddy: `/etc/caddy/apphost/<id>.upstream`, written by apphost before the nftables switch; destroy removes a leftover */
  caddyUpstream: string;
  /** Nginx: `/etc/nginx/sites-enabled/apphost-<id>.conf` */
  nginxSite: string;
  /** Nginx: `/etc/nginx/apphost/<id>.upstream`, written by apphost before the nftables switch; destroy removes a leftover */
  nginxUpstream: string;
}

export function hostLayout(app: string, stack: string): HostLayout {
  const id = `${app}-${stack}`;
  if (!isName(app) || !isName(stack) || id.length > 31) {
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
    instances: `${root}/instances`,
    liveEnv: `${root}/instances/live.env`,
    current: `${root}/current`,
    shared,
    data: `${shared}/data`,
    linked: `${shared}/data/linked`,
    logs: `${shared}/logs`,
    backups: `${shared}/backups`,
    venvs: `${root}/venvs`,
    bin: `${root}/bin`,
    releaseLog: `${root}/releases.log`,
    lock: `${root}/deploy.lock`,
    jobs: `${root}/jobs`,
    activePort: `${root}/active-port`,
    nftTable: `apphost_${id.replace(/-/g, "_")}`,
    envFile: `${APPHOST_ETC}/${id}.env`,
    alertFile: `${APPHOST_ETC}/${id}.alert`,
    portsFile: `${APPHOST_ETC}/${id}.ports`,
    unitsFile: `${APPHOST_ETC}/${id}.units`,
    maintenance: `${root}/maintenance`,
    unitPrefix: `apphost-${id}`,
    unitDir: UNIT_DIR,
    caddySite: `${CADDY_SITES_DIR}/${id}.caddy`,
    caddyUpstream: `${CADDY_SITES_DIR}/${id}.upstream`,
    nginxSite: `/etc/nginx/sites-enabled/apphost-${id}.conf`,
    nginxUpstream: `${NGINX_UPSTREAM_DIR}/${id}.upstream`,
  };
}

/**
 * `/srv/<id>/instances/<port>.env` (`%i` for the unit template): the copy of the env file the web instance on
 * `port` was started with, made by the deploy that started it; every restart of that instance reads it again.
 */
export function instanceEnvFile(layout: HostLayout, port: number | string): string {
  return `${layout.instances}/${port}.env`;
}

/**
 * `<unit dir>/<unit>.d/apphost-command.conf`: the command, environment and runtime settings a process runs with, as
 * the release that (re)started it wrote them (render/systemd.ts, renderCommandDropIn). It overrides the unit file's,
 * which `pulumi up` writes before the release runs: a failed release leaves it unchanged, so a restart of what serves
 * runs what it ran. `unit` is a unit's full name, a web instance's with its port (`…-web@8001.service`).
 */
export function commandDropIn(layout: HostLayout, unit: string): string {
  return `${layout.unitDir}/${unit}.d/apphost-command.conf`;
}

/** systemd unit for a process: the web process is a template instantiated per port. */
export function unitName(layout: HostLayout, process: string, kind: "web" | "worker"): string {
  return kind === "web"
    ? `${layout.unitPrefix}-${process}@.service`
    : `${layout.unitPrefix}-${process}.service`;
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

/** The two ports the web instances take turns on, basePort and basePort + 1: loopback only (nftables). */
export function webPorts(basePort: number): [number, number] {
  return [basePort, basePort + 1];
}

/**
 * `apphost-<id>-job@<job>.service`: the transient unit (systemd-run) a deploy,
 * a prepare or a rollback runs in, so the client's SSH connection does not
 * decide its fate. One per job: the unit of a job that ended but that systemd
 * has not collected yet (a process it left behind, which systemd under cgroup
 * v1 in a container may not see go for minutes) never holds up the next job's
 * start. The deploy lock keeps two jobs' work apart. `job` "": the template's
 * name (`apphost-<id>-job@.service`), which claims and patterns take.
 */
export function jobUnitName(layout: HostLayout, job: string): string {
  return `${layout.unitPrefix}-job@${job}.service`;
}

/** `apphost-<id>-exec-<n>`: the transient service `npm run exec` runs a command in (`n`: the shell's pid). */
export function execUnitName(layout: HostLayout, n: string): string {
  return `${layout.unitPrefix}-exec-${n}`;
}

/** `apphost-<id>-upstream.service`: loads the nftables rule at boot, before the proxy starts. */
export function upstreamUnitName(layout: HostLayout): string {
  return `${layout.unitPrefix}-upstream.service`;
}

/** The two maintenance switches (either turns it on) and the page, inside `layout.maintenance`. */
export function maintenanceFiles(layout: HostLayout): {
  config: string;
  manual: string;
  page: string;
  drain: string;
} {
  return {
    config: `${layout.maintenance}/on-config`,
    manual: `${layout.maintenance}/on`,
    page: `${layout.maintenance}/page.html`,
    // Behind apphost:lb: while it exists the health path answers 503, so the balancer stops sending new requests.
    drain: `${layout.maintenance}/drain`,
  };
}

/** A scheduled job's units (apphost:app.schedules.<name>): `apphost-<id>-schedule-<name>.service` and `.timer`. */
export function scheduleUnitNames(layout: HostLayout, name: string): { service: string; timer: string } {
  const base = `${layout.unitPrefix}-schedule-${name}`;
  return { service: `${base}.service`, timer: `${base}.timer` };
}

/**
 * `apphost-<id>-alert@.service`: started as `alert@<failed unit>` by the
 * `OnFailure=` of every apphost unit when apphost:alerts is set.
 */
export function alertUnitName(layout: HostLayout): string {
  return `${layout.unitPrefix}-alert@.service`;
}

/** `/srv/<id>/bin/apphost-alert`: posts one message about a failed unit. */
export function alertScriptPath(layout: HostLayout): string {
  return `${layout.bin}/apphost-alert`;
}

/** Where a stack's balancer lives on the `apphost:lb` host (components/render/balancer.ts). */
export interface BalancerLayout {
  id: string;
  /** `/var/lib/apphost/lb/<id>`, root-only: the site template, the app hosts, the drained ones, the script */
  dir: string;
  /** Every app host (`address:port`), one per line, as the stack declares them */
  upstreams: string;
  /** App hosts taken out for a release or before their removal, one per line */
  drained: string;
  /** The site with `@UPSTREAMS@` where the serving hosts go */
  template: string;
  /** `apphost-lb`: apply, drain, undrain, wait-healthy, status */
  script: string;
  /** `/etc/caddy/apphost/<id>-lb.caddy`, imported by the balancer's Caddyfile */
  site: string;
}

export function balancerLayout(app: string, stack: string): BalancerLayout {
  const { id } = hostLayout(app, stack);
  const dir = `/var/lib/apphost/lb/${id}`;
  return {
    id,
    dir,
    upstreams: `${dir}/upstreams`,
    drained: `${dir}/drained`,
    template: `${dir}/site.caddy.in`,
    script: `${dir}/apphost-lb`,
    site: `${CADDY_SITES_DIR}/${id}-lb.caddy`,
  };
}
