import { strict as assert } from "assert";
import { hostLayout, upstreamPort, upstreamUnitName } from "../../components/paths";
import { deleteUpstreamTables, renderUpstreamRuleset } from "../../components/render/nftables";
import { renderUpstreamUnit } from "../../components/render/systemd";
import { layout, lineDiff } from "./render.fixtures";

describe("render/nftables: the upstream switch", () => {
  const ports = { basePort: 8000 };
  const base = renderUpstreamRuleset(layout, { ...ports, port: 8001 });

  it("replaces the stack's tables in one transaction: the upstream switch, and the web ports' guard", () => {
    assert.equal(
      base,
      `# Managed by apphost (components/render/nftables.ts); edits are overwritten on the next deploy.
# apphost shop-prod: the proxy's upstream 127.0.0.1:8002 leads to the live web instance;
# the web ports 8000 and 8001 answer on loopback only.
table ip apphost_shop_prod {}
delete table ip apphost_shop_prod
table inet apphost_shop_prod {}
delete table inet apphost_shop_prod
table ip apphost_shop_prod {
	chain upstream {
		type nat hook output priority -100; policy accept;
		ip daddr 127.0.0.1 tcp dport 8002 dnat to 127.0.0.1:8001
	}
}
table inet apphost_shop_prod {
	chain loopback_only {
		type filter hook input priority 0; policy accept;
		iifname != "lo" tcp dport { 8000, 8001 } reject with tcp reset
	}
}
`,
    );
  });

  it("a switch changes only the target port", () => {
    assert.deepEqual(lineDiff(base, renderUpstreamRuleset(layout, { ...ports, port: 8000 })), {
      removed: ["\t\tip daddr 127.0.0.1 tcp dport 8002 dnat to 127.0.0.1:8001"],
      added: ["\t\tip daddr 127.0.0.1 tcp dport 8002 dnat to 127.0.0.1:8000"],
    });
  });

  it("two stacks on one host: their own table and port", () => {
    const other = hostLayout("shop", "staging");
    assert.equal(other.nftTable, "apphost_shop_staging");
    const s = renderUpstreamRuleset(other, { basePort: 8100, port: 8100 });
    assert.doesNotMatch(s, /apphost_shop_prod\b/);
    assert.match(s, /^\t\tip daddr 127\.0\.0\.1 tcp dport 8102 dnat to 127\.0\.0\.1:8100$/m);
    assert.match(s, /^\t\tiifname != "lo" tcp dport \{ 8100, 8101 \} reject with tcp reset$/m);
    assert.deepEqual(deleteUpstreamTables(other), [
      "delete table ip apphost_shop_staging",
      "delete table inet apphost_shop_staging",
    ]);
  });

  it("the upstream port is basePort + 2", () => {
    assert.equal(upstreamPort(8000), 8002);
    assert.equal(upstreamPort(8100), 8102);
  });

  it("refuses bad ports", () => {
    assert.throws(() => renderUpstreamRuleset(layout, { ...ports, port: 8002 }), {
      message: "the web port 8002 cannot be the upstream port itself",
    });
    assert.throws(() => renderUpstreamRuleset(layout, { basePort: 69998, port: 8001 }), {
      message:
        "port: not safe to write (apphost's config check should have refused it; please report this):\n" +
        "  - basePort: 69998 is not a TCP port (1-65535)\n" +
        "  - upstream port (basePort + 2): 70000 is not a TCP port (1-65535)",
    });
  });
});

describe("render/systemd: the upstream unit", () => {
  it("loads the rule at boot before the proxy, and again after nftables.service", () => {
    assert.equal(upstreamUnitName(layout), "apphost-shop-prod-upstream.service");
    assert.equal(
      renderUpstreamUnit(layout, { script: "/srv/shop-prod/bin/apphost-release" }),
      `# apphost shop-prod: the proxy's upstream port leads to the live web instance (nftables).
# Managed by apphost (components/render/systemd.ts); edits are overwritten on the next deploy.
[Unit]
Description=apphost shop-prod upstream switch (nftables)
# Before the proxy, so it never connects to the upstream port with no rule behind it.
Before=caddy.service nginx.service
After=nftables.service
PartOf=nftables.service
ReloadPropagatedFrom=nftables.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/srv/shop-prod/bin/apphost-release upstream
ExecReload=/srv/shop-prod/bin/apphost-release upstream
SyslogIdentifier=shop-prod-upstream
# Root for nft, but only CAP_NET_ADMIN, and nothing on disk is written.
CapabilityBoundingSet=CAP_NET_ADMIN
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
RestrictAddressFamilies=AF_NETLINK AF_UNIX

[Install]
WantedBy=multi-user.target
`,
    );
  });

  it("refuses a script path with spaces", () => {
    assert.throws(() => renderUpstreamUnit(layout, { script: "/srv/a b/apphost-release" }), {
      message:
        "upstream unit: not safe to write (apphost's config check should have refused it; please report this):\n" +
        '  - the release script: "/srv/a b/apphost-release" is not an absolute path without spaces',
    });
  });
});
