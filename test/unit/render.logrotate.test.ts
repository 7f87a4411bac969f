import assert from "node:assert/strict";
import { logrotatePath, renderLogrotate } from "../../components/render/logrotate";
import { layout, lineDiff } from "./render.fixtures";

describe("render/logrotate", () => {
  const base = renderLogrotate(layout, { proxy: { kind: "caddy" } });

  it("renders the app logs and Caddy's access log", () => {
    assert.equal(
      base,
      `# apphost shop-prod: log rotation.
# Managed by apphost (components/render/logrotate.ts); edits are overwritten on the next deploy.
# copytruncate: the writers cannot be told to reopen their files (see logrotate.ts).

# The app's own log files.
/srv/shop-prod/shared/logs/*.log {
	su shop-prod shop-prod
	daily
	rotate 14
	compress
	delaycompress
	missingok
	notifempty
	copytruncate
}

# Caddy's access log of this stack.
/var/log/caddy/shop-prod.access.log {
	su caddy caddy
	daily
	rotate 14
	compress
	delaycompress
	missingok
	notifempty
	copytruncate
}
`,
    );
  });

  it("nginx: no entry for its logs, which Debian's /etc/logrotate.d/nginx rotates", () => {
    const v = renderLogrotate(layout, { proxy: { kind: "nginx" } });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "# Caddy's access log of this stack.",
        "/var/log/caddy/shop-prod.access.log {",
        "\tsu caddy caddy",
        "\tdaily",
        "\trotate 14",
        "\tcompress",
        "\tdelaycompress",
        "\tmissingok",
        "\tnotifempty",
        "\tcopytruncate",
        "}",
      ],
      added: [
        "# nginx logs of this stack (/var/log/nginx/apphost-shop-prod.*.log) are rotated by",
        "# Debian's /etc/logrotate.d/nginx, which also reopens them; listing them here too is an error.",
      ],
    });
  });

  it("lives in /etc/logrotate.d/apphost-<id>", () => {
    assert.equal(logrotatePath(layout), "/etc/logrotate.d/apphost-shop-prod");
  });
});
