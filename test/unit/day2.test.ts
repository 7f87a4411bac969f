/**
 * Issue 19's day-2 pieces without a host: the config of schedules and alerts,
 * the scripts of `logs`, `exec`, `maintenance` as exact strings, the alert
 * script run for real against a local receiver (curl, a stand-in systemctl),
 * the maintenance script run for real in a temp tree, and the commands'
 * argument parsing.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { inspectAlerts, parseStackConfig } from "../../components/config/validate";
import { hostLayout } from "../../components/paths";
import {
  execCommandText,
  execScript,
  journalSince,
  journalUnits,
  logsScript,
  maintenanceScript,
  parseScheduleStatus,
} from "../../components/remote/day2";
import { renderReleases } from "../../scripts/releases";
import { renderAlertCurlConfig, renderAlertScript } from "../../components/render/alert";
import {
  renderProcessUnit,
  renderScheduleService,
  renderScheduleTimer,
} from "../../components/render/systemd";
import { parseExecArgs } from "../../scripts/exec";
import { parseLogsArgs } from "../../scripts/logs";
import { maintenanceReport, parseMaintenanceArgs } from "../../scripts/maintenance";
import { parseResult } from "../../components/release/script";
import { parseDoctorArgs } from "../../scripts/doctor";
import { baseCtx, configProblems, baseRaw } from "./fixtures";
import { lineDiff } from "./render.fixtures";

const layout = hostLayout("shop", "prod");
const app = {
  processes: [
    { name: "web", command: "gunicorn app:app", kind: "web" as const },
    { name: "worker", command: "python worker.py", kind: "worker" as const },
  ],
  schedules: [
    { name: "cleanup", command: "flask purge-sessions", onCalendar: "hourly", timeoutSeconds: 600 },
  ],
};

function withApp(extra: Record<string, unknown>): Record<string, unknown> {
  const raw = baseRaw();
  return { ...raw, app: { ...(raw.app as object), ...extra } };
}

describe("day-2 config: apphost:app.schedules, maintenance, apphost:alerts", () => {
  it("parses schedules with the default timeout; maintenance defaults to off", () => {
    const config = parseStackConfig(
      withApp({ schedules: { cleanup: { command: "flask purge-sessions", onCalendar: "*:*:0/10" } } }),
      baseCtx(),
    );
    assert.deepEqual(config.app.schedules, [
      { name: "cleanup", command: "flask purge-sessions", onCalendar: "*:*:0/10", timeoutSeconds: 3600 },
    ]);
    assert.equal(config.app.maintenance, false);
    assert.deepEqual(config.alerts, { enabled: false });
  });

  it("lists every bad schedule at once: name, calendar, missing command, timeout, unknown key", () => {
    const found = configProblems(
      withApp({
        schedules: {
          Bad_Name: { command: "x", onCalendar: "daily" },
          a: { command: "x", onCalendar: "Mon..Fry 10:00" },
          b: { onCalendar: "daily" },
          c: { command: "x", onCalendar: "daily", timeoutSeconds: 0, every: "day" },
        },
      }),
    );
    assert.equal(found.length, 5, found.join("\n"));
    assert.match(found[0], /^apphost:app\.schedules\.Bad_Name: expected a job name of lowercase letters/);
    assert.match(
      found[1],
      /^apphost:app\.schedules\.a\.onCalendar: "Mon\.\.Fry 10:00" is not a systemd OnCalendar expression: .*systemd-analyze calendar/,
    );
    assert.match(found[2], /^apphost:app\.schedules\.b\.command: missing/);
    assert.match(
      found[3],
      /^apphost:app\.schedules\.c\.timeoutSeconds: expected an integer from 1 to 604800/,
    );
    assert.match(found[4], /^apphost:app\.schedules\.c\.every: unknown key/);
  });

  it("a process may not take a name of apphost's own units (schedule-*, job, alert)", () => {
    const found = configProblems(
      withApp({ processes: { web: "gunicorn app:app", "schedule-x": "python x.py", alert: "python a.py" } }),
    );
    assert.equal(found.length, 2, found.join("\n"));
    assert.ok(found.every((f) => /is taken: apphost's own unit/.test(f)));
  });

  it("apphost:alerts: on with a secret https webhook; the URL never reaches a message", () => {
    const url = "https://hooks.example.com/services/T000/B000/SECRETTOKEN";
    const ok = parseStackConfig(baseRaw(), {
      ...baseCtx(),
      secrets: { ...baseCtx().secrets, alertsInfo: inspectAlerts({ webhook: url }, true) },
    });
    assert.deepEqual(ok.alerts, { enabled: true });
    const bad = configProblems(baseRaw(), {
      ...baseCtx(),
      secrets: {
        ...baseCtx().secrets,
        alertsInfo: inspectAlerts({ webhook: "http://hooks.example.com/SECRETTOKEN", extra: 1 }, false),
      },
    });
    assert.equal(bad.length, 3, bad.join("\n"));
    assert.match(bad[0], /^apphost:alerts\.extra: unknown key/);
    assert.match(bad[1], /^apphost:alerts\.webhook: is a plain http:\/\/ URL to a public address/);
    assert.match(
      bad[2],
      /^apphost:alerts: is stored in plain text .* pulumi config set --secret --path 'apphost:alerts\.webhook'/,
    );
    assert.ok(bad.every((b) => !b.includes("SECRETTOKEN")));
    const notUrl = configProblems(baseRaw(), {
      ...baseCtx(),
      secrets: {
        ...baseCtx().secrets,
        alertsInfo: inspectAlerts({ webhook: "hooks.example.com SECRETTOKEN" }, true),
      },
    });
    assert.deepEqual(notUrl.length, 1);
    assert.match(notUrl[0], /^apphost:alerts\.webhook: expected an http\(s\) URL/);
    assert.ok(!notUrl[0].includes("SECRETTOKEN"));
    // A private receiver (the sandbox's link) may be plain http.
    assert.deepEqual(inspectAlerts({ webhook: "http://10.79.0.1:8099/hook" }, true).problems, []);
  });
});

describe("day-2 units: schedules and OnFailure", () => {
  const job = app.schedules[0];

  it("a scheduled job is a oneshot in current, as the app user, with the env file and a timeout", () => {
    const unit = renderScheduleService(layout, { schedule: job, runtime: "python" });
    const lines = unit.split("\n");
    for (const l of [
      "Type=oneshot",
      "User=shop-prod",
      "WorkingDirectory=/srv/shop-prod/current",
      "EnvironmentFile=/srv/shop-prod/instances/live.env",
      "Environment=PATH=/srv/shop-prod/current/.venv/bin:/usr/local/bin:/usr/bin:/bin",
      'ExecStart=/bin/sh -c "exec flask purge-sessions"',
      "SyslogIdentifier=shop-prod-schedule-cleanup",
      "TimeoutStartSec=600",
      "ProtectSystem=strict",
    ])
      assert.ok(lines.includes(l), `${l}\n${unit}`);
    assert.ok(!unit.includes("OnFailure="));
    const withAlerts = renderScheduleService(layout, { schedule: job, runtime: "python", alerts: true });
    assert.deepEqual(lineDiff(unit, withAlerts).added, [
      "# apphost:alerts: a failure of this unit posts one message (components/render/alert.ts).",
      "OnFailure=apphost-shop-prod-alert@%n.service",
    ]);
  });

  it("the timer carries OnCalendar with one-second accuracy", () => {
    const timer = renderScheduleTimer(layout, {
      schedule: { ...job, onCalendar: "*:*:0/10" },
      runtime: "python",
    });
    const lines = timer.split("\n");
    for (const l of [
      "OnCalendar=*:*:0/10",
      "AccuracySec=1s",
      "Persistent=true",
      "Unit=apphost-shop-prod-schedule-cleanup.service",
    ])
      assert.ok(lines.includes(l), l);
  });

  it("a process unit with alerts gains exactly OnFailure=", () => {
    const input = { process: app.processes[1], runtime: "python" as const };
    assert.deepEqual(
      lineDiff(renderProcessUnit(layout, input), renderProcessUnit(layout, { ...input, alerts: true })),
      {
        removed: [],
        added: [
          "# apphost:alerts: a failure of this unit posts one message (components/render/alert.ts).",
          "OnFailure=apphost-shop-prod-alert@%n.service",
        ],
      },
    );
  });
});

describe("day-2 scripts", () => {
  it("journalSince: durations and dates, anything else refused", () => {
    assert.equal(journalSince("90s"), "-90s");
    assert.equal(journalSince("30m"), "-30min");
    assert.equal(journalSince("2h"), "-2h");
    assert.equal(journalSince("7d"), "-7d");
    assert.equal(journalSince("2026-11-30 14:00"), "2026-11-30 14:00");
    // journalctl's own spellings, as a user who knows it types them (`--since=-3min`, which the argv hint suggests).
    assert.deepEqual(["-3min", "3min", "45sec", "2hours", "-1day", "10minutes"].map(journalSince), [
      "-3min",
      "-3min",
      "-45s",
      "-2h",
      "-1d",
      "-10min",
    ]);
    assert.throws(() => journalSince("1 hour; rm -rf /"), /--since: "1 hour; rm -rf \/" is not a duration/);
    for (const bad of ["3y", "--3m", "0m", "-m", "3constructor", "3toString"]) {
      assert.throws(() => journalSince(bad), /is not a duration/, bad);
    }
  });

  it("journalUnits: a web glob, a worker, a schedule, backup; an unknown name lists the choices", () => {
    // All of the stack's: each unit by its own name, never apphost-shop-prod-* (a stack shop-prod-eu's too).
    assert.deepEqual(journalUnits(layout, app), [
      "apphost-shop-prod-web@*.service",
      "apphost-shop-prod-worker.service",
      "apphost-shop-prod-schedule-cleanup.service",
      "apphost-shop-prod-schedule-cleanup.timer",
      "apphost-shop-prod-backup.service",
      "apphost-shop-prod-backup.timer",
      "apphost-shop-prod-upstream.service",
      "apphost-shop-prod-job@*.service",
      "apphost-shop-prod-alert@*.service",
      "apphost-shop-prod-exec-*",
    ]);
    assert.deepEqual(journalUnits(layout, app, "web"), ["apphost-shop-prod-web@*.service"]);
    assert.deepEqual(journalUnits(layout, app, "worker"), ["apphost-shop-prod-worker.service"]);
    assert.deepEqual(journalUnits(layout, app, "cleanup"), ["apphost-shop-prod-schedule-cleanup.service"]);
    assert.deepEqual(journalUnits(layout, app, "backup"), ["apphost-shop-prod-backup.service"]);
    assert.throws(() => journalUnits(layout, app, "wbe"), {
      message:
        '--process: "wbe" is not a process of this stack; choose one of web, worker, cleanup, backup, migrate',
    });
  });

  it("logs: the journal command, and -f stops journalctl when ssh's stdin closes", () => {
    assert.equal(
      logsScript(layout, { app, follow: false, process: "web", since: "1h" }),
      "set -euo pipefail\njournalctl --no-pager --quiet --output=short-iso --since=-1h '--unit=apphost-shop-prod-web@*.service'\n",
    );
    assert.equal(
      logsScript(layout, { app, follow: true }),
      [
        "set -uo pipefail",
        "journalctl --no-pager --quiet --output=short-iso --lines=200 '--unit=apphost-shop-prod-web@*.service' --unit=apphost-shop-prod-worker.service --unit=apphost-shop-prod-schedule-cleanup.service --unit=apphost-shop-prod-schedule-cleanup.timer --unit=apphost-shop-prod-backup.service --unit=apphost-shop-prod-backup.timer --unit=apphost-shop-prod-upstream.service '--unit=apphost-shop-prod-job@*.service' '--unit=apphost-shop-prod-alert@*.service' '--unit=apphost-shop-prod-exec-*' --follow &",
        "journal=$!",
        "# Until the client goes away: its ssh stdin closes, cat ends, journalctl is stopped.",
        "cat >/dev/null",
        'kill "$journal" 2>/dev/null',
        'wait "$journal" 2>/dev/null',
        "exit 0",
        "",
      ].join("\n"),
    );
    assert.throws(() => logsScript(layout, { app, follow: true, process: "migrate" }), /drop -f/);
  });

  it("exec: one word is shell text, several are quoted; systemd-run with the env file, as the app user", () => {
    assert.equal(execCommandText(["flask shell"]), "flask shell");
    assert.equal(execCommandText(["python", "-c", "print('hi')"]), `python -c 'print('\\''hi'\\'')'`);
    const script = execScript(layout, { runtime: "python", argv: ["flask", "routes"], tty: false });
    const last = script.trimEnd().split("\n").pop()!;
    assert.match(
      last,
      /^exec systemd-run --quiet --wait --collect --service-type=exec --pipe --uid=shop-prod --gid=shop-prod "--unit=apphost-shop-prod-exec-\$\$" /,
    );
    for (const part of [
      "--property=WorkingDirectory=/srv/shop-prod/current",
      "--property=EnvironmentFile=/srv/shop-prod/instances/live.env",
      "--property=PrivateDevices=true",
      "--setenv=PATH=/srv/shop-prod/current/.venv/bin:/usr/local/bin:/usr/bin:/bin",
      "--setenv=VIRTUAL_ENV=/srv/shop-prod/current/.venv",
      "--setenv=PYTHONPATH=/srv/shop-prod/current:/srv/shop-prod/current/src",
      "-- /bin/sh -c 'flask routes'",
    ])
      assert.ok(last.includes(part), part);
    const tty = execScript(layout, { runtime: "python", argv: ["bash"], tty: true });
    assert.ok(
      tty.includes(" --pty ") && !tty.includes("PrivateDevices"),
      "a terminal needs the host's /dev/pts",
    );
  });

  it("maintenance: on, status and off on a real tree; the config switch holds it on", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-maint-"));
    const l = { ...layout, maintenance: `${dir}/maintenance` };
    const run = (action: "on" | "off" | "status") => {
      const r = spawnSync("bash", ["-c", maintenanceScript(l, action)], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    assert.equal(run("status"), "maintenance=off\nmanual=off\nconfig=off\npage=missing\n");
    assert.equal(run("on"), "maintenance=on\nmanual=on\nconfig=off\npage=missing\n");
    assert.equal(fs.statSync(`${dir}/maintenance/on`).mode & 0o777, 0o644);
    fs.writeFileSync(`${dir}/maintenance/on-config`, "x");
    fs.writeFileSync(`${dir}/maintenance/page.html`, "x");
    assert.equal(run("off"), "maintenance=on\nmanual=off\nconfig=on\npage=present\n");
    fs.rmSync(`${dir}/maintenance/on-config`);
    assert.equal(run("status"), "maintenance=off\nmanual=off\nconfig=off\npage=present\n");
    fs.rmSync(dir, { recursive: true });
  });

  it("maintenance's report: one host as before; several app hosts each named, a failed one and a part-way state said", () => {
    const st = (maintenance: string, config = "off", page = "present") => ({
      maintenance,
      manual: maintenance,
      config,
      page,
    });
    // The script's lines as the command reads them (the release script's result parser).
    assert.deepEqual(parseResult("maintenance=on\nmanual=on\nconfig=off\npage=present\n"), st("on"));
    assert.deepEqual(maintenanceReport("prod", "on", [{ host: "", state: st("on") }]), {
      out: ["maintenance: prod: on"],
      err: [],
      code: 0,
    });
    const a = "app (10.80.0.2)";
    const b = "app2 (10.81.0.2)";
    assert.deepEqual(
      maintenanceReport("prod", "on", [
        { host: a, state: st("on") },
        { host: b, state: st("on", "off", "missing") },
      ]),
      {
        out: [
          "maintenance: prod: app (10.80.0.2): on",
          "maintenance: prod: app2 (10.81.0.2): on",
          "maintenance: warning: the maintenance page is missing on app2 (10.81.0.2); pulumi up installs it",
        ],
        err: [],
        code: 0,
      },
    );
    // One host could not be reached: the other's state is printed, and the exit says the switch is not whole.
    assert.deepEqual(
      maintenanceReport("prod", "on", [
        { host: a, state: st("on") },
        { host: b, state: undefined, error: "ssh: connect to host 10.81.0.2 port 22: Connection refused" },
      ]),
      {
        out: ["maintenance: prod: app (10.80.0.2): on"],
        err: [
          "maintenance: prod: app2 (10.81.0.2): could not switch maintenance on: ssh: connect to host 10.81.0.2 port 22: Connection refused",
          "maintenance: prod: the app hosts above that answered were switched; run it again to switch the others",
        ],
        code: 2,
      },
    );
    assert.equal(
      maintenanceReport("prod", "on", [{ host: "", error: "timeout" }]).err[1],
      "maintenance: prod: nothing was switched",
    );
    // Off while the stack's config holds it on (on any host): 1.
    const held = maintenanceReport("prod", "off", [
      { host: a, state: st("on", "on") },
      { host: b, state: st("on", "on") },
    ]);
    assert.equal(held.code, 1);
    assert.match(held.err[0], /^maintenance: prod: still on: apphost:app\.maintenance is true/);
    assert.equal(
      held.out[0],
      "maintenance: prod: app (10.80.0.2): on (held on by apphost:app.maintenance in the stack's config)",
    );
    // Status finds it on one host only (switched by hand there, or a host added since).
    assert.deepEqual(
      maintenanceReport("prod", "status", [
        { host: a, state: st("on") },
        { host: b, state: st("off") },
      ]).out,
      [
        "maintenance: prod: app (10.80.0.2): on",
        "maintenance: prod: app2 (10.81.0.2): off",
        "maintenance: warning: on for app (10.80.0.2) only: the balancer sends the others' share of the requests to the app; npm run maintenance -- --stack prod on (or off) switches every app host",
      ],
    );
  });
});

describe("day-2 alerts: the script posts one message, the URL stays in its file", function () {
  this.timeout(30_000);

  it("posts stack, unit, host and result as Slack/Discord/generic JSON; --test; a refused post exits 1", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-alert-"));
    const bodies: { url: string; body: string }[] = [];
    let status = 200;
    const server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        bodies.push({ url: req.url ?? "", body });
        res.writeHead(status);
        res.end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const secretPath = "/hook/T000/SECRETTOKEN";
    try {
      const l = { ...layout, alertFile: `${dir}/shop-prod.alert` };
      fs.writeFileSync(l.alertFile, renderAlertCurlConfig(`http://127.0.0.1:${port}${secretPath}`), {
        mode: 0o600,
      });
      fs.mkdirSync(`${dir}/bin`);
      // systemctl show -p Result|ExecMainStatus --value <unit>
      fs.writeFileSync(
        `${dir}/bin/systemctl`,
        '#!/bin/sh\ncase "$3" in Result) echo exit-code ;; ExecMainStatus) echo 3 ;; esac\n',
        { mode: 0o755 },
      );
      const script = `${dir}/apphost-alert`;
      // A host's script tries a refused post 3 more times, 2 s apart; this one once more, 1 s after (the same code).
      assert.match(
        renderAlertScript(l, { app: "shop", stack: "prod" }),
        / curl -sS --fail --max-time 10 --retry 3 --retry-delay 2 --retry-all-errors \\\n/,
      );
      fs.writeFileSync(
        script,
        renderAlertScript(l, { app: "shop", stack: "prod", retry: { count: 1, delaySeconds: 1 } }),
        { mode: 0o755 },
      );
      const env = { ...process.env, PATH: `${dir}/bin:${process.env.PATH}` };
      const run = (arg: string) =>
        new Promise<{ code: number; out: string }>((resolve) => {
          const child = require("node:child_process").spawn(script, [arg], { env });
          let out = "";
          child.stdout.on("data", (b: Buffer) => (out += b));
          child.stderr.on("data", (b: Buffer) => (out += b));
          child.on("close", (code: number) => resolve({ code, out }));
        });

      const failed = await run("apphost-shop-prod-schedule-cleanup.service");
      assert.equal(failed.code, 0, failed.out);
      assert.equal(bodies.length, 1);
      assert.equal(bodies[0].url, secretPath);
      const msg = JSON.parse(bodies[0].body);
      assert.equal(msg.apphost.stack, "prod");
      assert.equal(msg.apphost.app, "shop");
      assert.equal(msg.apphost.unit, "apphost-shop-prod-schedule-cleanup.service");
      assert.equal(msg.apphost.result, "exit-code");
      assert.equal(msg.apphost.status, "3");
      assert.equal(msg.apphost.test, false);
      assert.equal(msg.text, msg.content);
      assert.match(
        msg.text,
        /^apphost: apphost-shop-prod-schedule-cleanup\.service failed on \S+ \(stack prod, app shop; result exit-code, exit status 3\)/,
      );
      assert.ok(!failed.out.includes("SECRETTOKEN"), failed.out);

      const test = await run("--test");
      assert.equal(test.code, 0, test.out);
      assert.equal(JSON.parse(bodies[1].body).apphost.test, true);

      status = 404;
      const refused = await run("--test");
      assert.equal(refused.code, 1, refused.out);
      assert.equal(bodies.length, 4, "the refused post, then its retry");
      assert.match(refused.out, /the webhook refused the alert/);
      assert.ok(!refused.out.includes("SECRETTOKEN"), refused.out);

      fs.rmSync(l.alertFile);
      const missing = await run("--test");
      assert.equal(missing.code, 2, missing.out);
    } finally {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the curl config refuses a URL that could break out of its quotes", () => {
    assert.equal(
      renderAlertCurlConfig("https://h.example/x"),
      '# Managed by apphost (components/render/alert.ts); edits are overwritten on the next deploy.\nurl = "https://h.example/x"\n',
    );
    assert.throws(
      () => renderAlertCurlConfig('https://h.example/x"\nurl = "https://evil'),
      /without spaces, quotes or backslashes/,
    );
  });
});

describe("day-2: scheduled jobs in npm run releases", () => {
  it("reads the host's lines and prints a table: never run, success, failure, inactive timer, a run going on", () => {
    const rows = parseScheduleStatus(
      [
        "job\tcleanup",
        "service\tResult=success",
        "service\tExecMainStatus=0",
        "service\tExecMainExitTimestamp=Mon 2026-11-30 23:00:10 UTC",
        "timer\tNextElapseUSecRealtime=Mon 2026-11-30 23:00:20 UTC",
        "timer\tActiveState=active",
        "job\treport",
        "service\tResult=success",
        "service\tExecMainStatus=0",
        "service\tExecMainExitTimestamp=",
        "timer\tNextElapseUSecRealtime=Tue 2026-12-01 09:00:00 UTC",
        "timer\tActiveState=active",
        "job\tpurge",
        "service\tResult=exit-code",
        "service\tExecMainStatus=3",
        "service\tExecMainExitTimestamp=Mon 2026-11-30 22:00:00 UTC",
        "timer\tNextElapseUSecRealtime=",
        "timer\tActiveState=inactive",
        // A run going on: systemd has reset the last exit and the timer's next elapse.
        "job\ttick",
        "service\tResult=success",
        "service\tExecMainStatus=0",
        "service\tExecMainExitTimestamp=",
        "service\tActiveState=activating",
        "service\tExecMainStartTimestamp=Mon 2026-11-30 23:00:30 UTC",
        "timer\tNextElapseUSecRealtime=",
        "timer\tActiveState=active",
        // A run that just ended, read before its timer set the next one.
        "job\ttock",
        "service\tResult=success",
        "service\tExecMainStatus=0",
        "service\tExecMainExitTimestamp=Mon 2026-11-30 23:00:40 UTC",
        "service\tActiveState=inactive",
        "timer\tNextElapseUSecRealtime=",
        "timer\tActiveState=active",
        "",
      ].join("\n"),
    );
    assert.deepEqual(rows[1], {
      name: "report",
      lastRun: "",
      result: "",
      status: "",
      nextRun: "Tue 2026-12-01 09:00:00 UTC",
      timerActive: true,
      runningSince: "",
    });
    assert.deepEqual(rows[3], {
      name: "tick",
      lastRun: "",
      result: "",
      status: "",
      nextRun: "",
      timerActive: true,
      runningSince: "Mon 2026-11-30 23:00:30 UTC",
    });
    const lines = renderReleases({
      stack: "prod",
      releaseId: "r1",
      logPath: "/srv/shop-prod/releases.log",
      status: { current: "r1", log: [], activePort: "8000" } as unknown as Parameters<
        typeof renderReleases
      >[0]["status"],
      history: [],
      schedules: rows.map((r) => ({ ...r, onCalendar: "hourly" })),
    });
    const at = lines.indexOf("scheduled jobs (each run uses the live release):");
    assert.ok(at > 0, lines.join("\n"));
    assert.deepEqual(lines.slice(at + 1, at + 7), [
      "  JOB      ON CALENDAR  LAST RUN                                           RESULT              NEXT RUN",
      "  cleanup  hourly       Mon 2026-11-30 23:00:10 UTC                        success             Mon 2026-11-30 23:00:20 UTC",
      "  report   hourly       never                                              -                   Tue 2026-12-01 09:00:00 UTC",
      "  purge    hourly       Mon 2026-11-30 22:00:00 UTC                        exit-code (exit 3)  timer not active",
      "  tick     hourly       running now (started Mon 2026-11-30 23:00:30 UTC)  -                   after this run",
      "  tock     hourly       Mon 2026-11-30 23:00:40 UTC                        success             not set yet (timer active)",
    ]);
  });
});

describe("day-2 commands: arguments", () => {
  it("logs: --process, --since, -f", () => {
    assert.deepEqual(parseLogsArgs(["--stack", "local", "--process", "web", "--since", "1h", "-f"]), {
      stack: "local",
      options: { process: "web", since: "1h" },
      follow: true,
    });
    assert.throws(() => parseLogsArgs(["--stack", "local", "web"]), /unexpected argument "web"/);
  });

  it("exec: --tty and the command after --", () => {
    assert.deepEqual(parseExecArgs(["--stack", "local", "--tty", "--", "python", "-c", "print(1)"]), {
      stack: "local",
      options: {},
      tty: true,
      command: ["python", "-c", "print(1)"],
    });
    assert.throws(() => parseExecArgs(["--stack", "local"]), /no command: give it after --/);
  });

  it("maintenance: on, off or status, one of them", () => {
    assert.equal(parseMaintenanceArgs(["--stack", "local", "on"]).action, "on");
    assert.throws(
      () => parseMaintenanceArgs(["--stack", "local", "maybe"]),
      /"maybe" is not on, off or status/,
    );
    assert.throws(() => parseMaintenanceArgs(["--stack", "local"]), /on, off or status is required/);
  });

  it("doctor: --alert-test", () => {
    assert.equal(parseDoctorArgs(["--stack", "local", "--alert-test"]).alertTest, true);
  });
});
