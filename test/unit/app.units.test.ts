/**
 * App wiring of the unit files' delete commands under the shared mocks: what
 * `pulumi up` runs after it removes a unit file (a process removed or renamed,
 * a schedule or the backup timer gone). The commands themselves are pinned in
 * render.systemd.test.ts; the e2e (release.e2e 1b) runs them on a host.
 */
import { resetRecords, resources, settled, valueOf } from "./mocks"; // first: sets the mocks
import * as assert from "assert/strict";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { App } from "../../components/app";
import { appArgs, stackConfig, useTempArtifactCache } from "./fixtures";
import { stackArtifact } from "../../components/release/cache";

const HOST_FILE = "pulumi-nodejs:dynamic/apphost:HostFile";
const ROOT = path.join(__dirname, "..", "..");

describe("App: what removing each unit file runs", function () {
  this.timeout(60000);
  useTempArtifactCache("apphost-app-units-test-");
  beforeEach(resetRecords);

  it("a process's unit or a timer: stopped and disabled; a scheduled job's or the backup's service: a reload", async () => {
    const config = stackConfig(
      {
        "app.source": "examples/sample-app",
        "app.schedules": { report: { command: "python report.py", onCalendar: "daily" } },
      },
      "prod",
    );
    const a = new App("u", {
      ...appArgs(config),
      connection: pulumi.secret({ host: "198.51.100.10", port: 22, user: "admin", privateKey: "k" }),
      secretEnv: pulumi.secret({}),
      projectDir: ROOT,
      artifact: stackArtifact(config.app, ROOT),
    });
    await settled(a);
    await valueOf(a.releaseId!);
    assert.deepEqual(
      config.app.schedules.map((x) => x.name),
      ["report"],
    );
    const unitFiles = () =>
      resources.filter(
        (r) => r.type === HOST_FILE && String(r.inputs.path).startsWith("/etc/systemd/system/"),
      );
    // The schedule's files wait for the release's outputs: registered a few ticks later (at most 5 s).
    for (const deadline = Date.now() + 5000; unitFiles().length < 7 && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const onDelete = Object.fromEntries(
      unitFiles().map((r) => [String(r.inputs.path).replace("/etc/systemd/system/", ""), r.inputs.onDelete]),
    );
    const stops = (unit: string) => `systemctl disable --now ${unit} || true; systemctl daemon-reload`;
    // A service's drop-ins go with it: the command drop-ins a release wrote (each web instance's, the worker's).
    const stopsService = (unit: string) =>
      `systemctl disable --now ${unit} || true; rm -rf -- /etc/systemd/system/${unit}.d; systemctl daemon-reload`;
    assert.deepEqual(onDelete, {
      "apphost-apphost-prod-web@.service":
        "for unit in $(systemctl list-units --all --plain --no-legend 'apphost-apphost-prod-web@*.service' | awk '{print $1}'); do systemctl disable --now \"$unit\" >/dev/null 2>&1 || systemctl stop \"$unit\" || true; done; rm -rf -- /etc/systemd/system/apphost-apphost-prod-web@*.service.d; systemctl daemon-reload",
      "apphost-apphost-prod-worker.service": stopsService("apphost-apphost-prod-worker.service"),
      "apphost-apphost-prod-backup.service": "systemctl daemon-reload",
      "apphost-apphost-prod-backup.timer": stops("apphost-apphost-prod-backup.timer"),
      "apphost-apphost-prod-upstream.service": stopsService("apphost-apphost-prod-upstream.service"),
      "apphost-apphost-prod-schedule-report.service":
        "systemctl stop apphost-apphost-prod-schedule-report.service 2>/dev/null || true; systemctl daemon-reload",
      "apphost-apphost-prod-schedule-report.timer": stops("apphost-apphost-prod-schedule-report.timer"),
    });
  });
});
