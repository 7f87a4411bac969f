import assert from "node:assert/strict";
import { needrestartConfPath, renderNeedrestartConf } from "../../components/render/needrestart";
import { layout } from "./render.fixtures";

describe("render/needrestart", () => {
  it("keeps needrestart from restarting the web instances, by their template's exact name", () => {
    assert.equal(needrestartConfPath(layout), "/etc/needrestart/conf.d/apphost-shop-prod.conf");
    assert.equal(
      renderNeedrestartConf(layout, "web"),
      `# apphost shop-prod: needrestart does not restart this stack's web instances.
# Managed by apphost (components/render/needrestart.ts); edits are overwritten on the next deploy.
# A restart would fail the requests of its seconds; apphost reads an instance running a replaced library as
# drift instead (npm run drift, npm run doctor), and \`pulumi up --refresh\` publishes the release again behind
# its health gate.
$nrconf{override_rc}{qr{^apphost-shop-prod-web\\@[0-9]+\\.service$}} = 0;
`,
    );
  });

  it("names the web process apphost:app.processes gives, its characters quoted for Perl", () => {
    assert.match(
      renderNeedrestartConf(layout, "api.v2"),
      /^\$nrconf\{override_rc\}\{qr\{\^apphost-shop-prod-api\\\.v2\\@\[0-9\]\+\\\.service\$\}\} = 0;$/m,
    );
  });
});
