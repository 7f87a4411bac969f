import { strict as assert } from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { cacheArtifact } from "../../components/release/cache";
import { layoutCommands } from "../../components/render/layout";
import { hostLayout } from "../../components/paths";
import { stackConfig } from "./fixtures";

describe("app: the stack's layout command and its mirror on destroy", () => {
  const config = stackConfig({}, "prod");
  const cmds = layoutCommands(hostLayout(config.app.name, config.stack), { proxy: config.proxy });

  it("creates the user and the root; no upstream file (the proxy names the upstream port itself)", () => {
    assert.equal(
      cmds.create,
      [
        "set -euo pipefail",
        "if ! id -u apphost-prod >/dev/null 2>&1; then",
        "  useradd --system --user-group --home-dir /srv/apphost-prod --no-create-home --shell /usr/sbin/nologin apphost-prod",
        "fi",
        "install -d -m 0755 /srv/apphost-prod /srv/apphost-prod/bin",
        "",
      ].join("\n"),
    );
  });

  it("destroy stops the units, deletes only this stack's nftables tables, and a leftover upstream file", () => {
    assert.equal(
      cmds.delete,
      [
        "set -euo pipefail",
        "for unit in $(systemctl list-units --all --plain --no-legend 'apphost-apphost-prod-*' | awk '{print $1}'); do",
        '  systemctl disable --now "$unit" >/dev/null 2>&1 || systemctl stop "$unit" || true',
        "done",
        "if command -v nft >/dev/null; then nft delete table ip apphost_apphost_prod 2>/dev/null || true; nft delete table inet apphost_apphost_prod 2>/dev/null || true; fi",
        "rm -f /etc/caddy/apphost/apphost-prod.upstream /etc/apphost/apphost-prod.env",
        // The data and backups are moved aside, never deleted.
        'if [ -n "$(find /srv/apphost-prod/shared/data /srv/apphost-prod/shared/backups -mindepth 1 -print -quit 2>/dev/null)" ]; then',
        "  kept=/var/lib/apphost/kept/apphost-prod-$(date -u +%Y%m%dT%H%M%SZ)",
        "  install -d -m 0700 /var/lib/apphost/kept",
        '  mv /srv/apphost-prod/shared "$kept"',
        '  chown -R -h root:root "$kept"',
        '  echo "apphost: kept the data and backups of apphost-prod in $kept (destroy never deletes them); delete that directory when you no longer need it" >&2',
        "fi",
        "rm -rf --one-file-system /srv/apphost-prod",
        "if id -u apphost-prod >/dev/null 2>&1; then userdel apphost-prod; fi",
        "if getent group apphost-prod >/dev/null; then groupdel apphost-prod; fi",
        "systemctl daemon-reload",
        "systemctl reset-failed 'apphost-apphost-prod-*' 2>/dev/null || true",
        "caddy validate --adapter caddyfile --config /etc/caddy/Caddyfile >/dev/null && if systemctl is-active --quiet caddy; then systemctl reload caddy; else systemctl enable --now caddy; fi",
        "",
      ].join("\n"),
    );
    const other = layoutCommands(hostLayout(config.app.name, "staging"), { proxy: config.proxy });
    assert.match(other.delete, /nft delete table ip apphost_apphost_staging /);
    assert.match(other.delete, /nft delete table inet apphost_apphost_staging /);
    assert.doesNotMatch(other.delete, /apphost_apphost_prod/);
  });
});

describe("app: the artifact cache", () => {
  const tarGz = Buffer.from("the artifact's bytes");
  const artifact = {
    contentHash: "0123abcd",
    sha256: createHash("sha256").update(tarGz).digest("hex"),
    tarGz,
  };
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-cache-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("writes the artifact under its content hash, with no partial file left", () => {
    const p = cacheArtifact(dir, artifact);
    assert.equal(p, path.join(dir, "0123abcd.tar.gz"));
    assert.deepEqual(fs.readFileSync(p), tarGz);
    assert.deepEqual(fs.readdirSync(dir), ["0123abcd.tar.gz"]);
  });

  it("replaces a cached file whose bytes are not the ones built (truncated or edited), and keeps a good one", () => {
    const p = path.join(dir, "0123abcd.tar.gz");
    fs.writeFileSync(p, "the artifact's by");
    cacheArtifact(dir, artifact);
    assert.deepEqual(fs.readFileSync(p), tarGz, "a truncated cache file was used");
    const inode = fs.statSync(p).ino;
    cacheArtifact(dir, artifact);
    assert.equal(fs.statSync(p).ino, inode, "a good cache file was rewritten");
  });
});
