/**
 * The pure parts of `npm run doctor` and `npm run releases`: the stack config
 * read back from `pulumi config --json`, the outputs they need, the doctor
 * report, the releases view. samples/ops/ holds real output from the local
 * stack on the sandbox: `pulumi config --show-secrets --json --config-file`
 * (config-local.json) and `apphost-release status` (status.txt).
 */
import assert from "assert/strict";
import * as fs from "fs";
import * as path from "path";
import type * as auto from "@pulumi/pulumi/automation";
import { ConfigError, keyFilePath } from "../../components/config";
import { doctorChecks, doctorInputFromConfig } from "../../components/doctor";
import { parseStatus } from "../../components/release/script";
import { parseDoctorArgs, renderDoctorReport } from "../../scripts/doctor";
import { deployedFromOutputs, pickHost, stackConfigFromMap } from "../../scripts/lib/ops";
import { DEPLOY_KEY } from "./fixtures";
import { historyRows, liveLine, parseReleasesArgs, renderReleases } from "../../scripts/releases";
import {
  holdFollowers,
  parseRestoreArgs,
  releaseFollowers,
  restoreCommand,
  workersCommand,
  type WorkersAction,
  summaryLine,
} from "../../scripts/restore";
import { hostLayout } from "../../components/paths";
import type { MaintenanceAction } from "../../components/remote/day2";

const SAMPLES = path.join(__dirname, "samples", "ops");
const configMap = (): auto.ConfigMap =>
  JSON.parse(fs.readFileSync(path.join(SAMPLES, "config-local.json"), "utf8")) as auto.ConfigMap;
const status = () => parseStatus(fs.readFileSync(path.join(SAMPLES, "status.txt"), "utf8"));
const KEY = DEPLOY_KEY.privateKey;

describe("ops: the stack config from `pulumi config --json`", () => {
  it("parses the local stack's real config as the program does, the key read from sshPrivateKeyFile", () => {
    const read: string[] = [];
    const config = stackConfigFromMap(configMap(), {
      project: "apphost",
      stack: "local-h6",
      readFile: (f) => {
        read.push(f);
        return KEY;
      },
    });
    assert.equal(read.length, 1);
    assert.match(read[0], /\/\.cache\/apphost\/sandbox\/id_ed25519$/);
    assert.ok(!read[0].startsWith("~"), "~ expands to the home directory");
    assert.equal(config.stack, "local-h6");
    assert.equal(config.app.name, "sample");
    assert.deepEqual(config.host, { ...config.host, kind: "existing", address: "10.79.0.2", port: 22 });
    assert.equal(config.tls.mode, "internal");
    assert.equal(config.database.kind, "sqlite");
    assert.equal(config.backups.schedule, "daily");
  });

  it("several app hosts with an external database: apphost:databaseUrl's facts, never its value, reach the parser", () => {
    const map = configMap();
    map["apphost:host"] = {
      value: JSON.stringify({ kind: "existing", user: "admin", addresses: ["10.88.0.2", "10.89.0.2"] }),
      secret: false,
    };
    map["apphost:lb"] = { value: JSON.stringify({ address: "10.87.0.2" }), secret: false };
    map["apphost:database"] = { value: JSON.stringify({ kind: "external" }), secret: false };
    map["apphost:databaseUrl"] = { value: "postgresql://app:s3cret@10.87.0.2:5432/app", secret: true };
    const config = stackConfigFromMap(map, { project: "apphost", stack: "local-mh", readFile: () => KEY });
    assert.equal(config.database.kind, "external");
    assert.equal(config.lb?.address, "10.87.0.2");
    assert.ok(!JSON.stringify(config).includes("s3cret"));
    map["apphost:databaseUrl"] = { value: "postgresql://app:s3cret@10.87.0.2:5432/app", secret: false };
    assert.throws(
      () => stackConfigFromMap(map, { project: "apphost", stack: "local-mh", readFile: () => KEY }),
      (e: Error) =>
        /apphost:databaseUrl: stored in plain text/.test(e.message) && !e.message.includes("s3cret"),
    );
  });

  it("gives the doctor the same checks the deployed host needs", () => {
    const config = stackConfigFromMap(configMap(), {
      project: "apphost",
      stack: "local-h6",
      readFile: () => KEY,
    });
    const input = doctorInputFromConfig(config, { releaseId: "20261125160306-2d331be9" });
    assert.deepEqual(input.units, [
      "caddy.service",
      "apphost-sample-local-h6-upstream.service",
      "apphost-sample-local-h6-worker.service",
    ]);
    assert.deepEqual(input.web?.upstream, {
      table: "apphost_sample_local_h6",
      port: 8002,
      unit: "apphost-sample-local-h6-upstream.service",
    });
    assert.deepEqual(input.database, {
      file: "/srv/sample-local-h6/shared/data/app.db",
      owner: "sample-local-h6",
    });
    assert.deepEqual(
      doctorChecks(input).map((c) => c.name),
      [
        "units",
        "health",
        "maintenance",
        "tls-certificate",
        "backup",
        "database-permissions",
        "disk",
        "memory",
        "release",
      ],
    );
  });

  it("a value that is not JSON stays a string, and the parser reports it with the rest", () => {
    const map = {
      ...configMap(),
      "apphost:tls": { value: "internal", secret: false },
      "apphost:dsn": { value: "x", secret: false },
    };
    assert.throws(
      () => stackConfigFromMap(map, { project: "apphost", stack: "local-h6", readFile: () => KEY }),
      (e: ConfigError) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(
          e.issues.map((i) => i.path),
          ["apphost:dsn", "apphost:tls"],
        );
        return true;
      },
    );
  });

  it("the key file under ~/.cache/apphost is read where scripts/sandbox keeps it: APPHOST_CACHE, else XDG_CACHE_HOME", () => {
    const file = "~/.cache/apphost/sandbox/id_ed25519";
    assert.equal(keyFilePath(file, {}, "/home/u"), "/home/u/.cache/apphost/sandbox/id_ed25519");
    assert.equal(keyFilePath(file, { XDG_CACHE_HOME: "/x" }, "/home/u"), "/x/apphost/sandbox/id_ed25519");
    assert.equal(
      keyFilePath(file, { XDG_CACHE_HOME: "/x", APPHOST_CACHE: "/c" }, "/home/u"),
      "/c/sandbox/id_ed25519",
    );
    // Empty is unset, as the scripts' ${APPHOST_CACHE:-...} read it; other paths keep ~ as home.
    assert.equal(
      keyFilePath(file, { APPHOST_CACHE: "" }, "/home/u"),
      "/home/u/.cache/apphost/sandbox/id_ed25519",
    );
    assert.equal(
      keyFilePath("~/.ssh/id_ed25519", { APPHOST_CACHE: "/c" }, "/home/u"),
      "/home/u/.ssh/id_ed25519",
    );
    assert.equal(
      keyFilePath("~/.cache/apphostx/k", { APPHOST_CACHE: "/c" }, "/home/u"),
      "/home/u/.cache/apphostx/k",
    );
    assert.equal(keyFilePath("/abs/k", { APPHOST_CACHE: "/c" }, "/home/u"), "/abs/k");
  });

  it("scripts/sandbox and scripts/engine put their cache where localCacheDir says", () => {
    for (const script of ["scripts/sandbox", "scripts/engine"]) {
      const text = fs.readFileSync(path.join(__dirname, "..", "..", script), "utf8");
      assert.match(
        text,
        /^CACHE=\$\{APPHOST_CACHE:-\$\{XDG_CACHE_HOME:-\$HOME\/\.cache\}\/apphost\}$/m,
        script,
      );
    }
  });

  it("a key file that cannot be read is named, not a stack trace", () => {
    assert.throws(
      () =>
        stackConfigFromMap(configMap(), {
          project: "apphost",
          stack: "local-h6",
          readFile: () => {
            throw Object.assign(new Error("nope"), { code: "ENOENT" });
          },
        }),
      /apphost:sshPrivateKeyFile: cannot read "~\/\.cache\/apphost\/sandbox\/id_ed25519" \(ENOENT\)/,
    );
  });
});

describe("ops: the outputs doctor and releases need", () => {
  const outputs = (o: Record<string, unknown>): auto.OutputMap =>
    Object.fromEntries(Object.entries(o).map(([k, value]) => [k, { value, secret: k === "connection" }]));

  it("connection, releaseId and hostId; port 22 unless given", () => {
    const d = deployedFromOutputs(
      "prod",
      outputs({
        connection: { host: "203.0.113.7", user: "admin", privateKey: KEY },
        releaseId: "r1",
        hostId: "shop-prod",
        url: "https://shop.example.com",
      }),
    );
    assert.deepEqual(d, {
      connection: { host: "203.0.113.7", port: 22, user: "admin", privateKey: KEY },
      releaseId: "r1",
      hostId: "shop-prod",
      url: "https://shop.example.com",
    });
  });

  it("liveRelease's id: the release the stack serves, an older one under apphost:releases.rollbackTo", () => {
    const base = {
      connection: { host: "203.0.113.7", user: "admin", privateKey: KEY },
      releaseId: "20250102120000-bbbbbbbb",
      hostId: "shop-prod",
    };
    const live = (value: unknown) =>
      deployedFromOutputs("prod", outputs({ ...base, liveRelease: value })).liveRelease;
    assert.equal(live("20250101120000-aaaaaaaa"), "20250101120000-aaaaaaaa");
    assert.equal(
      live("20250101120000-aaaaaaaa (worker apphost-shop-prod-worker.service failed)"),
      "20250101120000-aaaaaaaa",
      "a refresh's record of what was down",
    );
    assert.equal(live("none"), undefined);
    assert.equal(live(undefined), undefined);
  });

  it("a stack that was never deployed (or destroyed) is named with what is missing", () => {
    assert.throws(
      () => deployedFromOutputs("prod", outputs({})),
      /^Error: stack prod has no connection, releaseId, hostId outputs: is it deployed\?/,
    );
  });
});

describe("ops: doctor", () => {
  it("options: --origin-ca-file, --backup-max-age in seconds", () => {
    assert.deepEqual(parseDoctorArgs(["--stack", "prod", "--backup-max-age", "7200"]), {
      stack: "prod",
      options: { "backup-max-age": "7200" },
      alertTest: false,
    });
    assert.throws(
      () => parseDoctorArgs(["--stack", "prod", "--backup-max-age", "2h"]),
      /whole number of seconds/,
    );
  });

  it("prints one line per check in order, a check never reported fails, then the counts", () => {
    const report = renderDoctorReport(
      ["units", "health", "backup", "release"],
      [
        { name: "health", status: "pass", detail: "" },
        { name: "units", status: "fail", detail: "apphost-x-worker.service is inactive" },
        { name: "backup", status: "skip", detail: "n/a: no database" },
      ],
    );
    assert.deepEqual(report.lines, [
      "FAIL units: apphost-x-worker.service is inactive",
      "PASS health",
      "SKIP backup: n/a: no database",
      "FAIL release: no result (the doctor script stopped early)",
      "doctor: 4 checks: 1 pass, 2 fail, 1 skip",
    ]);
    assert.equal(report.failed, 2);
  });
});

describe("ops: releases", () => {
  const history = [
    {
      version: 0,
      kind: "update",
      result: "succeeded",
      startTime: new Date("2026-11-25T16:03:41.000Z"),
      endTime: new Date("2026-11-25T16:03:49.000Z"),
      resourceChanges: { same: 19, update: 2 },
    },
    {
      version: 0,
      kind: "update",
      result: "succeeded",
      startTime: new Date("2026-11-25T16:02:50.000Z"),
      endTime: new Date("2026-11-25T16:03:27.000Z"),
      resourceChanges: { create: 21 },
    },
  ] as unknown as auto.UpdateSummary[];

  it("options: --limit", () => {
    assert.deepEqual(parseReleasesArgs(["-s", "prod", "--limit", "5"]).options, { limit: "5" });
    assert.throws(() => parseReleasesArgs(["-s", "prod", "--limit", "0"]), /positive whole number/);
  });

  it("history rows: a self-managed backend's version 0 is numbered by position", () => {
    assert.deepEqual(historyRows(history), [
      {
        version: 2,
        kind: "update",
        result: "succeeded",
        start: "2026-11-25T16:03:41Z",
        end: "2026-11-25T16:03:49Z",
        changes: "same 19, update 2",
      },
      {
        version: 1,
        kind: "update",
        result: "succeeded",
        start: "2026-11-25T16:02:50Z",
        end: "2026-11-25T16:03:27Z",
        changes: "create 21",
      },
    ]);
    assert.equal(historyRows([{ ...history[0], version: 42 }])[0].version, 42);
  });

  it("the real status: what is live and since when, then the log and the history", () => {
    const lines = renderReleases({
      stack: "local-h6",
      releaseId: "20261125160306-2d331be9",
      logPath: "/srv/sample-local-h6/releases.log",
      status: status(),
      history: historyRows(history),
    });
    assert.deepEqual(lines, [
      "live: 20261125160306-2d331be9 since 2026-11-25T16:03:27Z (deployed, migration 0002 (head)) on port 8000; matches the stack's releaseId",
      "",
      "host release log (/srv/sample-local-h6/releases.log, newest first):",
      "     RELEASE                  TIME                  MIGRATION    OUTCOME",
      "  *  20261125160306-2d331be9  2026-11-25T16:03:27Z  0002 (head)  deployed",
      "",
      "stack history (local-h6, newest first):",
      "  VERSION  KIND    RESULT     STARTED               ENDED                 CHANGES",
      "  2        update  succeeded  2026-11-25T16:03:41Z  2026-11-25T16:03:49Z  same 19, update 2",
      "  1        update  succeeded  2026-11-25T16:02:50Z  2026-11-25T16:03:27Z  create 21",
    ]);
  });

  it("since when: the newest line that made the current release live (a rollback counts)", () => {
    const st = parseStatus(
      [
        "current=r1",
        "active_port=8001",
        "previous=",
        "releases=r1 r2",
        "lock=",
        "log=r1\t2025-01-01T12:00:00Z\t0001\tdeployed",
        "log=r2\t2025-01-02T12:00:00Z\t0002 (head)\tdeployed",
        "log=r3\t2025-01-03T12:00:00Z\t-\tfailed:health-gate",
        "log=r1\t2025-01-04T12:00:00Z\t0002 (head)\trolled-back",
      ].join("\n"),
    );
    assert.equal(
      liveLine({ stack: "prod", releaseId: "r2", status: st }),
      "live: r1 since 2025-01-04T12:00:00Z (rolled-back, migration 0002 (head)) on port 8001; " +
        "WARNING: the stack published r2; run npm run doctor, then `npm run deploy -- up --stack prod` to put it back or adopt the change",
    );
    const lines = renderReleases({ stack: "prod", releaseId: "r2", logPath: "/l", status: st, history: [] });
    assert.deepEqual(lines.slice(3, 8), [
      "     RELEASE  TIME                  MIGRATION    OUTCOME",
      "  *  r1       2025-01-04T12:00:00Z  0002 (head)  rolled-back",
      "     r3       2025-01-03T12:00:00Z  -            failed:health-gate",
      "     r2       2025-01-02T12:00:00Z  0002 (head)  deployed",
      "     r1       2025-01-01T12:00:00Z  0001         deployed",
    ]);
    assert.equal(lines.at(-1), "  (no updates)");
  });

  it("nothing live yet", () => {
    const st = parseStatus("current=\nactive_port=\nprevious=\nreleases=\nlock=\n");
    assert.equal(
      liveLine({ stack: "prod", releaseId: "r1", status: st }),
      "live: nothing (no current release on the host); the stack published r1",
    );
  });
});

describe("ops: restore", () => {
  it("options: --backup is a backup name; --stack is required; every problem is listed", () => {
    assert.deepEqual(
      parseRestoreArgs(["--stack", "prod", "--backup", "app-20261125T160341.123Z-scheduled.db"]),
      {
        stack: "prod",
        options: { backup: "app-20261125T160341.123Z-scheduled.db" },
      },
    );
    assert.throws(
      () => parseRestoreArgs(["--stack", "prod", "--backup", "a b;rm -rf /"]),
      /--backup: "a b;rm -rf \/" is not a backup name/,
    );
    assert.throws(
      () => parseRestoreArgs(["--backup", "x.db", "--bogus", "1"]),
      /usage: npm run restore -- --stack <name> \[--config-file <path>\] \[--backup <value>\]\n {2}- unknown option "--bogus".*\n {2}- --stack <name> is required/,
    );
  });

  it("runs apphost-release restore on the host with the lock owner; quotes nothing it need not", () => {
    assert.equal(
      restoreCommand("/srv/sample-prod/bin/apphost-release", "ana@npm-run-restore", "app-x-scheduled.db"),
      "exec /srv/sample-prod/bin/apphost-release --owner=ana@npm-run-restore restore app-x-scheduled.db",
    );
    assert.equal(
      restoreCommand("/srv/sample-prod/bin/apphost-release", "ana@npm-run-restore"),
      "exec /srv/sample-prod/bin/apphost-release --owner=ana@npm-run-restore restore",
    );
  });

  it("its last line says what was restored, where the replaced database is, and that the app is healthy", () => {
    assert.equal(
      summaryLine("prod", {
        restored: "/srv/sample-prod/shared/backups/app-a-scheduled.db",
        saved: "/srv/sample-prod/shared/backups/app-b-pre-restore.db",
        port: "8001",
      }),
      "restore: prod: database restored from /srv/sample-prod/shared/backups/app-a-scheduled.db (web instance on port 8001 healthy); " +
        "what it replaced is saved in /srv/sample-prod/shared/backups/app-b-pre-restore.db",
    );
  });

  it("with several app hosts the others are in maintenance with their workers stopped while the first restores; only what it changed is changed back", async () => {
    const layout = hostLayout("sample", "prod");
    const host = (name: string, address: string) => ({
      name,
      connection: { host: address, port: 22, user: "admin", privateKey: "k" },
    });
    const [app2, app3] = [host("app2", "10.0.0.3"), host("app3", "10.0.0.4")];
    type H = typeof app2;
    const label = (h: H) => `${h.name} (${h.connection.host})`;
    // Stand-ins for the hosts: `maintenance` and `workers` are each host's state; a host in `unreachable` answers
    // every command with an error, one in `locked` refuses workers stop|start (a deploy holds its lock).
    const calls: string[] = [];
    const fake = (
      maintenance: Record<string, string>,
      workers: Record<string, { units: string; running: boolean }>,
      unreachable: string[] = [],
      locked: string[] = [],
    ) => ({
      maintenance: async (
        hosts: H[],
        l: typeof layout,
        action: MaintenanceAction,
        named = hosts.length > 1,
      ) => {
        assert.equal(l, layout);
        assert.equal(named, true);
        return hosts.map((h) => {
          calls.push(`maintenance ${action} ${h.name}`);
          if (unreachable.includes(h.name)) return { host: label(h), error: "Connection refused" };
          if (action !== "status") maintenance[h.name] = action;
          return { host: label(h), state: { maintenance: maintenance[h.name] } };
        });
      },
      workers: async (hosts: H[], l: typeof layout, action: WorkersAction, owner: string) => {
        assert.equal(l, layout);
        assert.equal(owner, "ana@laptop:npm-run-restore");
        return hosts.map((h) => {
          calls.push(`workers ${action} ${h.name}`);
          if (unreachable.includes(h.name)) return { host: label(h), error: "Connection refused" };
          if (locked.includes(h.name)) return { host: label(h), error: "apphost: deploy lock held by bo@ci" };
          workers[h.name].running = action === "start";
          return { host: label(h), workers: workers[h.name].units };
        });
      },
    });
    const worker = "apphost-sample-prod-worker.service apphost-sample-prod-mail.service";
    const said: string[] = [];
    const err = console.error;
    console.error = (line: string) => said.push(line);
    const owner = "ana@laptop:npm-run-restore";
    try {
      // app3 is in maintenance already and runs no workers.
      const maintenance = { app2: "off", app3: "on" };
      const workers = { app2: { units: worker, running: true }, app3: { units: "", running: false } };
      const held = await holdFollowers("prod", [app2, app3], layout, owner, fake(maintenance, workers));
      assert.deepEqual(held, { maintenance: [app2], workers: [app2] });
      assert.deepEqual(maintenance, { app2: "on", app3: "on" });
      assert.equal(workers.app2.running, false);
      await releaseFollowers("prod", held, layout, owner, fake(maintenance, workers));
      assert.deepEqual(maintenance, { app2: "off", app3: "on" }, "app3 was on before: it stays on");
      assert.equal(workers.app2.running, true);
      assert.deepEqual(calls, [
        "maintenance status app2",
        "maintenance status app3",
        "maintenance on app2",
        "workers stop app2",
        "workers stop app3",
        "workers start app2",
        "maintenance off app2",
      ]);
      assert.deepEqual(said, [
        "restore: prod: maintenance on for app2 (10.0.0.3) while the database is restored: its requests get the maintenance page",
        "restore: prod: workers stopped on app2 (10.0.0.3) while the database is restored: apphost-sample-prod-worker.service, apphost-sample-prod-mail.service",
        "restore: prod: workers started again on app2 (10.0.0.3)",
        "restore: prod: maintenance off again for app2 (10.0.0.3)",
      ]);

      // A follower that cannot be reached: nothing is switched, and the restore does not run.
      said.length = calls.length = 0;
      const none = { app2: "off", app3: "off" };
      assert.equal(
        await holdFollowers("prod", [app2, app3], layout, owner, fake(none, workers, ["app3"])),
        "app3 (10.0.0.4): Connection refused",
      );
      assert.deepEqual(none, { app2: "off", app3: "off" });
      assert.deepEqual(calls, ["maintenance status app2", "maintenance status app3"]);

      // A follower in the middle of a deploy refuses to stop its workers: the other's start again, both leave
      // maintenance, and the restore does not run.
      said.length = calls.length = 0;
      const both = { app2: { units: worker, running: true }, app3: { units: worker, running: true } };
      assert.equal(
        await holdFollowers("prod", [app2, app3], layout, owner, fake(none, both, [], ["app3"])),
        "app3 (10.0.0.4): apphost: deploy lock held by bo@ci",
      );
      assert.deepEqual(none, { app2: "off", app3: "off" });
      assert.deepEqual([both.app2.running, both.app3.running], [true, true]);
      assert.deepEqual(calls, [
        "maintenance status app2",
        "maintenance status app3",
        "maintenance on app2",
        "maintenance on app3",
        "workers stop app2",
        "workers stop app3",
        "workers start app2",
        "maintenance off app2",
        "maintenance off app3",
      ]);
      assert.deepEqual(said, []);

      // Workers that cannot be started again are named with the command that starts them; maintenance still goes off.
      said.length = calls.length = 0;
      await releaseFollowers(
        "prod",
        { maintenance: [app3], workers: [app3] },
        layout,
        owner,
        fake({ app3: "on" }, both, [], ["app3"]),
      );
      assert.deepEqual(said, [
        "restore: prod: the workers of app3 (10.0.0.4) are still stopped (apphost: deploy lock held by bo@ci): " +
          "on that host, sudo /srv/sample-prod/bin/apphost-release workers start (or pulumi up, which starts them)",
        "restore: prod: maintenance off again for app3 (10.0.0.4)",
      ]);

      // One host alone (no followers): nothing to do.
      assert.deepEqual(await holdFollowers("prod", [], layout, owner, fake({}, {})), {
        maintenance: [],
        workers: [],
      });
    } finally {
      console.error = err;
    }
  });

  it("runs apphost-release workers stop|start on each other app host with the lock owner", () => {
    assert.equal(
      workersCommand("/srv/sample-prod/bin/apphost-release", "ana@laptop:npm-run-restore", "stop"),
      "exec /srv/sample-prod/bin/apphost-release --owner=ana@laptop:npm-run-restore workers stop",
    );
  });
});

describe("--host: the app host a day-2 command works on", () => {
  const conn = (host: string) => ({ host, port: 22, user: "admin", privateKey: "k" });
  const one = { connection: conn("10.0.0.11"), releaseId: "r", hostId: "shop-prod" };
  const several = {
    ...one,
    hosts: [
      { name: "app", connection: conn("10.0.0.11") },
      { name: "app2", connection: conn("10.0.0.12") },
    ],
  };

  it("the first host by default, another by name or address", () => {
    assert.equal(pickHost(one, undefined).connection.host, "10.0.0.11");
    assert.equal(pickHost(several, undefined).name, "app");
    assert.equal(pickHost(several, "app2").connection.host, "10.0.0.12");
    assert.equal(pickHost(several, "10.0.0.12").name, "app2");
    assert.equal(pickHost(one, "app").connection.host, "10.0.0.11");
  });

  it("an unknown host is refused, naming the stack's app hosts", () => {
    assert.throws(() => pickHost(several, "app3"), {
      message:
        "--host app3: not an app host of this stack; its app hosts are app (10.0.0.11), app2 (10.0.0.12)",
    });
  });
});
