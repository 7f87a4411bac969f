import assert from "node:assert/strict";
import {
  TMPFILES_SHARED_PATH,
  renderSharedTmpfiles,
  renderTmpfiles,
  tmpfilesPath,
} from "../../components/render/tmpfiles";
import { layout, lineDiff } from "./render.fixtures";

describe("render/tmpfiles", () => {
  const base = renderTmpfiles(layout, { proxy: { kind: "caddy" }, tls: { mode: "caddy-acme" } });

  it("renders the stack's directories with owner and mode, and Caddy's log file", () => {
    assert.equal(
      base,
      `# apphost shop-prod: directories (systemd-tmpfiles --create /etc/tmpfiles.d/apphost-shop-prod.conf).
# Managed by apphost (components/render/tmpfiles.ts); edits are overwritten on the next deploy.
# Root of the stack, read-only for the app
d /srv/shop-prod                      0755 root      root      -
# One directory per release (the deploy chowns each to the app user); the proxy reads static files there
d /srv/shop-prod/releases             0755 root      root      -
# instances/<port>: link to the release each web instance runs (components/release)
d /srv/shop-prod/instances            0755 root      root      -
# Virtualenvs, one per requirements hash
d /srv/shop-prod/venvs                0755 root      root      -
# apphost's scripts on the host
d /srv/shop-prod/bin                  0755 root      root      -
# pip cache of the installs (run as the app user)
d /srv/shop-prod/cache                0750 shop-prod shop-prod -
# Survives every release
d /srv/shop-prod/shared               0755 root      root      -
# App data: the app user owns it so SQLite can create its -wal and -shm files
d /srv/shop-prod/shared/data          0750 shop-prod shop-prod -
# The app's log files (rotated by logrotate)
d /srv/shop-prod/shared/logs          0750 shop-prod shop-prod -
# Database copies, root's alone: the app cannot read, plant or remove a backup (components/release/backup.ts)
d /srv/shop-prod/shared/backups       0700 root      root      -
# Caddy's access log, owned by caddy before a \`caddy validate\` run as root can create it
f /var/log/caddy/shop-prod.access.log 0640 caddy     caddy     -
`,
    );
  });

  it("nginx with certbot: the ACME webroot, no Caddy log file", () => {
    assert.equal(
      renderTmpfiles(layout, { proxy: { kind: "nginx" }, tls: { mode: "certbot" } }),
      `# apphost shop-prod: directories (systemd-tmpfiles --create /etc/tmpfiles.d/apphost-shop-prod.conf).
# Managed by apphost (components/render/tmpfiles.ts); edits are overwritten on the next deploy.
# Root of the stack, read-only for the app
d /srv/shop-prod                0755 root      root      -
# One directory per release (the deploy chowns each to the app user); the proxy reads static files there
d /srv/shop-prod/releases       0755 root      root      -
# instances/<port>: link to the release each web instance runs (components/release)
d /srv/shop-prod/instances      0755 root      root      -
# Virtualenvs, one per requirements hash
d /srv/shop-prod/venvs          0755 root      root      -
# apphost's scripts on the host
d /srv/shop-prod/bin            0755 root      root      -
# pip cache of the installs (run as the app user)
d /srv/shop-prod/cache          0750 shop-prod shop-prod -
# Survives every release
d /srv/shop-prod/shared         0755 root      root      -
# App data: the app user owns it so SQLite can create its -wal and -shm files
d /srv/shop-prod/shared/data    0750 shop-prod shop-prod -
# The app's log files (rotated by logrotate)
d /srv/shop-prod/shared/logs    0750 shop-prod shop-prod -
# Database copies, root's alone: the app cannot read, plant or remove a backup (components/release/backup.ts)
d /srv/shop-prod/shared/backups 0700 root      root      -
# certbot --webroot writes challenges here; nginx (www-data) serves them
d /var/www/acme/shop-prod       0755 root      root      -
`,
    );
  });

  it("renders the host-wide directories for caddy", () => {
    assert.equal(
      renderSharedTmpfiles({ proxy: { kind: "caddy" } }),
      `# apphost: host-wide directories (systemd-tmpfiles --create /etc/tmpfiles.d/apphost.conf).
# Managed by apphost (components/render/tmpfiles.ts); edits are overwritten on the next deploy.
# Env files (each 0600, owned by its app user) and tls/
d /etc/apphost       0755 root root  -
# Origin certificates; Caddy runs as caddy and reads the keys (0640 root:caddy)
d /etc/apphost/tls   0750 root caddy -
# Site and upstream snippets
d /etc/caddy/apphost 0755 root root  -
`,
    );
  });

  it("nginx: tls/ is root-only, the upstream directory and the ACME parent", () => {
    const v = renderSharedTmpfiles({ proxy: { kind: "nginx" } });
    assert.deepEqual(lineDiff(renderSharedTmpfiles({ proxy: { kind: "caddy" } }), v), {
      removed: [
        "d /etc/apphost       0755 root root  -",
        "# Origin certificates; Caddy runs as caddy and reads the keys (0640 root:caddy)",
        "d /etc/apphost/tls   0750 root caddy -",
        "# Site and upstream snippets",
        "d /etc/caddy/apphost 0755 root root  -",
      ],
      added: [
        "d /etc/apphost       0755 root root -",
        "# Origin certificates; nginx reads them as root before dropping privileges",
        "d /etc/apphost/tls   0700 root root -",
        "# Upstream files",
        "d /etc/nginx/apphost 0755 root root -",
        "# Parent of the per-stack certbot webroots",
        "d /var/www/acme      0755 root root -",
      ],
    });
  });

  it("file names", () => {
    assert.equal(tmpfilesPath(layout), "/etc/tmpfiles.d/apphost-shop-prod.conf");
    assert.equal(TMPFILES_SHARED_PATH, "/etc/tmpfiles.d/apphost.conf");
  });
});
