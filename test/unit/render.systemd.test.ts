import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  backupUnitNames,
  environmentLine,
  execStart,
  processDir,
  processEnvironment,
  processRuntime,
  renderBackupService,
  renderBackupTimer,
  renderProcessUnit,
  renderProcessUnits,
  renderCommandDropIn,
  dropInRemoval,
  unitRemovalCommand,
  webInstanceDir,
} from "../../components/render/systemd";
import type { ProcessConfig } from "../../components/config/types";
import { layout, lineDiff } from "./render.fixtures";

const web: ProcessConfig = {
  name: "web",
  kind: "web",
  command: "gunicorn app.main:app -k uvicorn.workers.UvicornWorker --bind 127.0.0.1:$PORT",
};
const backup = { backups: { schedule: "daily" }, execStart: "/srv/shop-prod/bin/backup" };

// Exposure measured with `systemd-analyze security --offline=true` (systemd 252):
// 1.5 for this web unit, 1.5 for node and for workers, 1.7 for the backup service
// (root with five capabilities and no network).
// test/unit/validate-tools.test.ts measures it again and asserts <= 2.0.
describe("render/systemd: process units", () => {
  const base = renderProcessUnit(layout, { process: web, runtime: "python" });

  it("renders the python web template unit", () => {
    assert.equal(
      base,
      `# apphost shop-prod: web process, one instance per port (@8000, @8001, ...).
# Managed by apphost (components/render/systemd.ts); edits are overwritten on the next deploy.
[Unit]
Description=apphost shop-prod web on port %i
After=network-online.target
Wants=network-online.target
# Keep restarting a crashing app (systemd's default gives up after five tries in 10s), but after
# 30 starts within 300s leave it failed, which apphost:alerts reports.
StartLimitIntervalSec=300
StartLimitBurst=30

[Service]
Type=exec
User=shop-prod
Group=shop-prod
# instances/<port> links to this instance's release; resolved at start, so a running instance keeps it.
WorkingDirectory=/srv/shop-prod/instances/%i
# The env this instance was started with: /etc/apphost/shop-prod.env as the deploy that started it found it.
# Values in the env file override Environment= below; it never sets PORT or PATH.
EnvironmentFile=/srv/shop-prod/instances/%i.env
Environment=PATH=/srv/shop-prod/instances/%i/.venv/bin:/usr/local/bin:/usr/bin:/bin
Environment=HOME=/tmp
Environment=VIRTUAL_ENV=/srv/shop-prod/instances/%i/.venv
Environment=PYTHONPATH=/srv/shop-prod/instances/%i:/srv/shop-prod/instances/%i/src
Environment=PYTHONUNBUFFERED=1
Environment=PORT=%i
ExecStart=/bin/sh -c "exec gunicorn app.main:app -k uvicorn.workers.UvicornWorker --bind 127.0.0.1:$$PORT"
SyslogIdentifier=shop-prod-web
Restart=always
RestartSec=2
# Graceful stop: on SIGTERM gunicorn, uvicorn and node finish in-flight requests;
# SIGKILL follows after 30s.
KillSignal=SIGTERM
TimeoutStopSec=30
LimitNOFILE=65536

# Sandbox. Writable: only the paths below; /tmp is private.
ReadWritePaths=/srv/shop-prod/shared/data /srv/shop-prod/shared/logs
UMask=0027
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
PrivateMounts=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX
IPAddressDeny=169.254.169.254
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true
MemoryDenyWriteExecute=true
RemoveIPC=true
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
# A filtered call fails with EPERM instead of killing the process.
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`,
    );
  });

  it("a worker is a plain unit without PORT", () => {
    const v = renderProcessUnit(layout, {
      process: { ...web, name: "worker", kind: "worker" },
      runtime: "python",
    });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "# apphost shop-prod: web process, one instance per port (@8000, @8001, ...).",
        "Description=apphost shop-prod web on port %i",
        "# instances/<port> links to this instance's release; resolved at start, so a running instance keeps it.",
        "WorkingDirectory=/srv/shop-prod/instances/%i",
        "# The env this instance was started with: /etc/apphost/shop-prod.env as the deploy that started it found it.",
        "EnvironmentFile=/srv/shop-prod/instances/%i.env",
        "Environment=PATH=/srv/shop-prod/instances/%i/.venv/bin:/usr/local/bin:/usr/bin:/bin",
        "Environment=VIRTUAL_ENV=/srv/shop-prod/instances/%i/.venv",
        "Environment=PYTHONPATH=/srv/shop-prod/instances/%i:/srv/shop-prod/instances/%i/src",
        "Environment=PORT=%i",
        "SyslogIdentifier=shop-prod-web",
      ],
      added: [
        "# apphost shop-prod: worker process.",
        "Description=apphost shop-prod worker",
        "# `current` is resolved at start: a running worker keeps its release until it is restarted.",
        "WorkingDirectory=/srv/shop-prod/current",
        "# The live release's env: /etc/apphost/shop-prod.env as the deploy that made it live found it.",
        "EnvironmentFile=/srv/shop-prod/instances/live.env",
        "Environment=PATH=/srv/shop-prod/current/.venv/bin:/usr/local/bin:/usr/bin:/bin",
        "Environment=VIRTUAL_ENV=/srv/shop-prod/current/.venv",
        "Environment=PYTHONPATH=/srv/shop-prod/current:/srv/shop-prod/current/src",
        "SyslogIdentifier=shop-prod-worker",
      ],
    });
  });

  it("node: node_modules/.bin on PATH, NODE_ENV, no MemoryDenyWriteExecute or ProcSubset", () => {
    const v = renderProcessUnit(layout, { process: { ...web, command: "node server.js" }, runtime: "node" });
    assert.deepEqual(lineDiff(base, v), {
      removed: [
        "Environment=PATH=/srv/shop-prod/instances/%i/.venv/bin:/usr/local/bin:/usr/bin:/bin",
        "Environment=VIRTUAL_ENV=/srv/shop-prod/instances/%i/.venv",
        "Environment=PYTHONPATH=/srv/shop-prod/instances/%i:/srv/shop-prod/instances/%i/src",
        "Environment=PYTHONUNBUFFERED=1",
        'ExecStart=/bin/sh -c "exec gunicorn app.main:app -k uvicorn.workers.UvicornWorker --bind 127.0.0.1:$$PORT"',
        "ProcSubset=pid",
        "MemoryDenyWriteExecute=true",
      ],
      added: [
        "Environment=PATH=/srv/shop-prod/instances/%i/node_modules/.bin:/usr/local/bin:/usr/bin:/bin",
        "Environment=NODE_ENV=production",
        'ExecStart=/bin/sh -c "exec node server.js"',
      ],
    });
  });

  it("stopTimeoutSeconds sets the SIGKILL deadline", () => {
    const v = renderProcessUnit(layout, { process: web, runtime: "python", stopTimeoutSeconds: 90 });
    assert.deepEqual(lineDiff(base, v), {
      removed: ["# SIGKILL follows after 30s.", "TimeoutStopSec=30"],
      added: ["# SIGKILL follows after 90s.", "TimeoutStopSec=90"],
    });
  });

  it("unitRemovalCommand: a removed worker or timer is stopped and disabled; a web template, each of its instances", () => {
    assert.equal(
      unitRemovalCommand("apphost-shop-prod-jobs.service"),
      "systemctl disable --now apphost-shop-prod-jobs.service || true; rm -rf -- /etc/systemd/system/apphost-shop-prod-jobs.service.d; systemctl daemon-reload",
    );
    assert.equal(
      unitRemovalCommand("apphost-shop-prod-backup.timer"),
      "systemctl disable --now apphost-shop-prod-backup.timer || true; systemctl daemon-reload",
    );
    assert.equal(
      unitRemovalCommand("apphost-shop-prod-web@.service"),
      "for unit in $(systemctl list-units --all --plain --no-legend 'apphost-shop-prod-web@*.service' | awk '{print $1}'); do systemctl disable --now \"$unit\" >/dev/null 2>&1 || systemctl stop \"$unit\" || true; done; rm -rf -- /etc/systemd/system/apphost-shop-prod-web@*.service.d; systemctl daemon-reload",
    );
  });

  it("renderCommandDropIn: the command, its environment and the runtime's two settings, replacing the unit's", () => {
    assert.deepEqual(renderCommandDropIn(layout, { process: web, runtime: "python" }), [
      "# apphost shop-prod: apphost:app.processes.web, as the release that started it runs it. This overrides the",
      "# unit's command, which pulumi up writes before the release: a failed release leaves this file as it was.",
      "# Managed by apphost (components/render/systemd.ts); edits are overwritten on the next deploy.",
      "[Service]",
      "ExecStart=",
      'ExecStart=/bin/sh -c "exec gunicorn app.main:app -k uvicorn.workers.UvicornWorker --bind 127.0.0.1:$$PORT"',
      "Environment=PATH=/srv/shop-prod/instances/%i/.venv/bin:/usr/local/bin:/usr/bin:/bin",
      "Environment=HOME=/tmp",
      "Environment=VIRTUAL_ENV=/srv/shop-prod/instances/%i/.venv",
      "Environment=PYTHONPATH=/srv/shop-prod/instances/%i:/srv/shop-prod/instances/%i/src",
      "Environment=PYTHONUNBUFFERED=1",
      "Environment=PORT=%i",
      "ProcSubset=pid",
      "MemoryDenyWriteExecute=true",
    ]);
    // A Node worker beside a Python app: node's PATH and V8's settings, from `current`.
    assert.deepEqual(
      renderCommandDropIn(layout, {
        process: { name: "assets", kind: "worker", command: "node worker.js" },
        runtime: "python",
      }).slice(3),
      [
        "[Service]",
        "ExecStart=",
        'ExecStart=/bin/sh -c "exec node worker.js"',
        "Environment=PATH=/srv/shop-prod/current/node_modules/.bin:/usr/local/bin:/usr/bin:/bin",
        "Environment=HOME=/tmp",
        "Environment=NODE_ENV=production",
        "ProcSubset=all",
        "MemoryDenyWriteExecute=false",
      ],
    );
    assert.throws(
      () => renderCommandDropIn(layout, { process: { ...web, command: "gunicorn\nx" }, runtime: "python" }),
      /apphost:app\.processes\.web\.command/,
    );
  });

  it("dropInRemoval: a service's .d directory, each instance's for a template (a glob)", () => {
    assert.equal(
      dropInRemoval("apphost-shop-prod-web@.service"),
      "rm -rf -- /etc/systemd/system/apphost-shop-prod-web@*.service.d",
    );
    assert.equal(
      dropInRemoval("apphost-shop-prod-worker.service"),
      "rm -rf -- /etc/systemd/system/apphost-shop-prod-worker.service.d",
    );
  });

  it("renderProcessUnits names units with unitName()", () => {
    const units = renderProcessUnits(layout, {
      runtime: "python",
      processes: [web, { name: "jobs", kind: "worker", command: "celery -A app worker" }],
    });
    assert.deepEqual(
      units.map((u) => [u.name, u.path]),
      [
        ["apphost-shop-prod-web@.service", "/etc/systemd/system/apphost-shop-prod-web@.service"],
        ["apphost-shop-prod-jobs.service", "/etc/systemd/system/apphost-shop-prod-jobs.service"],
      ],
    );
  });

  it("a Node process beside a Python app runs as node: renderProcessUnits picks the runtime per process", () => {
    const heartbeat: ProcessConfig = { name: "heartbeat", kind: "worker", command: "node heartbeat.js" };
    const [unit] = renderProcessUnits(layout, { runtime: "python", processes: [heartbeat] });
    assert.equal(unit.content, renderProcessUnit(layout, { process: heartbeat, runtime: "node" }));
    assert.match(unit.content, /^Environment=NODE_ENV=production$/m);
    assert.doesNotMatch(unit.content, /MemoryDenyWriteExecute|VIRTUAL_ENV|PYTHONPATH/);
  });

  it("HOME is each process's private /tmp, for the web instances, workers, scheduled jobs and exec alike", () => {
    // gunicorn 27 writes its control socket to ~/.gunicorn; the app user's home, the stack's root, is read-only.
    for (const [process, runtime] of [
      [web, "python"],
      [{ name: "jobs", kind: "worker", command: "celery -A app worker" }, "python"],
      [{ ...web, command: "node server.js" }, "node"],
    ] as const) {
      const unit = renderProcessUnit(layout, { process, runtime });
      assert.match(unit, /^Environment=HOME=\/tmp$/m, process.command);
      assert.match(unit, /^PrivateTmp=true$/m, process.command);
    }
    assert.ok(
      processEnvironment("/srv/shop-prod/current", "python", false, "flask shell").includes("HOME=/tmp"),
    );
  });

  it("a process that runs Yarn gets a cache and global folder in its private /tmp; others do not", () => {
    const unit = (command: string) =>
      renderProcessUnit(layout, { process: { name: "web", kind: "web", command }, runtime: "node" });
    const yarnEnv = [
      "Environment=YARN_CACHE_FOLDER=/tmp/yarn-cache",
      "Environment=YARN_PREFIX=/tmp/yarn",
      "Environment=YARN_IGNORE_ENGINES=true",
    ];
    for (const command of ["yarn start", "cd api && yarn serve", "cd web;yarn start"]) {
      const lines = unit(command).split("\n");
      assert.deepEqual(
        yarnEnv.map((l) => lines.includes(l)),
        [true, true, true],
        command,
      );
    }
    for (const command of ["npm start", "node server.js", "pnpm start", "yarnish start"])
      assert.doesNotMatch(unit(command), /YARN_/, command);
    // Yarn 2 and later refuse YARN_PREFIX and YARN_IGNORE_ENGINES ("Unrecognized or legacy configuration settings").
    const berry = (command: string) =>
      renderProcessUnit(layout, {
        process: { name: "web", kind: "web", command },
        runtime: "node",
        yarnBerry: true,
      });
    assert.doesNotMatch(berry("yarn start"), /YARN_/);
    assert.equal(
      berry("yarn start").replace(/\n/g, ""),
      unit("yarn start")
        .replace(/\nEnvironment=YARN_[^\n]*/g, "")
        .replace(/\n/g, ""),
    );
  });

  it("uWSGI, whose SIGTERM is a reload: a master hook in its environment makes it a graceful shutdown; other servers get none", () => {
    const unit = (command: string) =>
      renderProcessUnit(layout, { process: { name: "web", kind: "web", command }, runtime: "python" });
    const hook = 'Environment="UWSGI_HOOK_MASTER_START=unix_signal:15 gracefully_kill_them_all"';
    for (const command of [
      "uwsgi ./etc/uwsgi.ini",
      "UWSGI_PROCESSES=2 exec uwsgi --http-socket 127.0.0.1:$PORT --module app:app",
      "cd backend && .venv/bin/uwsgi uwsgi.ini",
    ]) {
      const lines = unit(command).split("\n");
      assert.equal(lines.filter((l) => l.startsWith("Environment=")).at(-2), hook, command);
    }
    for (const command of ["gunicorn app:app", "uwsgi-like serve", "python -m uwsgi_helper"])
      assert.doesNotMatch(unit(command), /UWSGI_/, command);
    // Its quoting: systemd splits an unquoted value on blanks.
    assert.equal(environmentLine("A=b c"), 'Environment="A=b c"');
    assert.equal(environmentLine('A="b" \\c'), 'Environment="A=\\"b\\" \\\\c"');
    assert.equal(environmentLine("PORT=%i"), "Environment=PORT=%i");
  });

  it("processRuntime: node, nodejs, npm and npx commands (after NAME=value words) are node; anything else keeps the app's runtime", () => {
    const cases: [string, "python" | "node", "python" | "node"][] = [
      ["node heartbeat.js", "python", "node"],
      ["  exec nodejs --max-old-space-size=128 clock.js", "python", "node"],
      ["npm run worker", "python", "node"],
      ["NODE_OPTIONS='--max-old-space-size=128' node heartbeat.js", "python", "node"],
      ["REMAP_SIGTERM=SIGQUIT celery -A tasks worker", "node", "node"],
      ["npx tsx jobs.ts", "python", "node"],
      ["python worker.py", "python", "python"],
      ["nodemon app.js", "python", "python"],
      ["./node_modules/.bin/thing", "python", "python"],
      ["gunicorn app:app", "node", "node"],
    ];
    assert.deepEqual(
      cases.map(([c, app]) => processRuntime(c, app)),
      cases.map(([, , want]) => want),
    );
  });

  it("refuses a multi-line command and a bad process name, listing both", () => {
    assert.throws(
      () =>
        renderProcessUnit(layout, {
          process: { name: "Web_1", kind: "web", command: "a\nb" },
          runtime: "python",
        }),
      {
        message:
          "systemd unit: not safe to write (apphost's config check should have refused it; please report this):\n" +
          '  - apphost:app.processes.Web_1: "Web_1" is not a name of lowercase letters, digits and dashes\n' +
          '  - apphost:app.processes.Web_1.command: "a\\nb" is not one non-empty line',
      },
    );
  });
});

describe("render/systemd: directories", () => {
  it("web instances run from instances/<port>, workers from current", () => {
    assert.equal(webInstanceDir(layout), "/srv/shop-prod/instances/%i");
    assert.equal(processDir(layout, "web"), "/srv/shop-prod/instances/%i");
    assert.equal(processDir(layout, "worker"), "/srv/shop-prod/current");
  });
});

describe("render/systemd: execStart", () => {
  for (const [command, line] of [
    ["gunicorn app:app", '/bin/sh -c "exec gunicorn app:app"'],
    ["node server.js --port $PORT", '/bin/sh -c "exec node server.js --port $$PORT"'],
    ["uvicorn app:app --port ${PORT}", '/bin/sh -c "exec uvicorn app:app --port $${PORT}"'],
    [
      "gunicorn --access-logformat '%(h)s \"%(r)s\"' app:app",
      `/bin/sh -c "exec gunicorn --access-logformat '%%(h)s \\"%%(r)s\\"' app:app"`,
    ],
    ["exec node a.js", '/bin/sh -c "exec node a.js"'],
    [
      "python manage.py collectstatic && gunicorn app:app",
      '/bin/sh -c "python manage.py collectstatic && gunicorn app:app"',
    ],
    ["echo a\\b", '/bin/sh -c "exec echo a\\\\b"'],
    // A Procfile's leading assignments stay before exec, which would take the first as the program.
    [
      "REMAP_SIGTERM=SIGQUIT celery -A tasks worker",
      '/bin/sh -c "REMAP_SIGTERM=SIGQUIT exec celery -A tasks worker"',
    ],
    [
      "A=1 B='two words' C=\"x y\"  D=a\\ b exec node w.js",
      `/bin/sh -c "A=1 B='two words' C=\\"x y\\"  D=a\\\\ b exec node w.js"`,
    ],
    ["NODE_ENV=production", '/bin/sh -c "exec NODE_ENV=production"'],
  ]) {
    it(command, () => assert.equal(execStart(command), line));
  }

  it("the real /bin/sh runs the program with the leading assignments in its environment, as its own process", () => {
    // ExecStart's quoted argument as systemd hands it to sh: the four escapes undone.
    const line = execStart(`A=1 B='two words' C="x y" sh -c 'echo "$A,$B,$C,$(ps -o comm= -p $PPID)"'`);
    const script = /^\/bin\/sh -c "(.*)"$/
      .exec(line)![1]
      .replace(/\\(["\\])/g, "$1")
      .replace(/\$\$/g, "$")
      .replace(/%%/g, "%");
    const r = spawnSync("/bin/sh", ["-c", script], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    // The program's parent is node: exec replaced the shell, which would otherwise get systemd's SIGTERM.
    assert.equal(r.stdout, "1,two words,x y,node\n");
  });
});

describe("render/systemd: backup units", () => {
  it("names the pair after the unit prefix", () => {
    assert.deepEqual(backupUnitNames(layout), {
      service: "apphost-shop-prod-backup.service",
      timer: "apphost-shop-prod-backup.timer",
    });
  });

  it("renders the backup service", () => {
    assert.equal(
      renderBackupService(layout, backup),
      `# apphost shop-prod: backup, started by apphost-shop-prod-backup.timer.
# Managed by apphost (components/render/systemd.ts); edits are overwritten on the next deploy.
[Unit]
Description=apphost shop-prod backup
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
# Runs as root: the backup script (components/release/backup.ts) dumps postgres through
# runuser -u postgres and hands SQLite files back to the app user. The sandbox below keeps
# root to five capabilities and to the data and backups directories.
WorkingDirectory=/srv/shop-prod/shared
ExecStart=/srv/shop-prod/bin/backup
SyslogIdentifier=shop-prod-backup
Nice=10
IOSchedulingClass=idle

# Reading a SQLite database in WAL mode writes its -shm file, so data is writable too.
# Sandbox. Writable: only the paths below; /tmp is private.
ReadWritePaths=/srv/shop-prod/shared/data /srv/shop-prod/shared/backups
UMask=0027
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
PrivateDevices=true
PrivateMounts=true
ProtectKernelTunables=true
ProtectKernelModules=true
ProtectKernelLogs=true
ProtectControlGroups=true
ProtectClock=true
ProtectHostname=true
ProtectProc=invisible
ProcSubset=pid
PrivateNetwork=true
RestrictAddressFamilies=AF_UNIX
RestrictNamespaces=true
RestrictRealtime=true
RestrictSUIDSGID=true
LockPersonality=true
MemoryDenyWriteExecute=true
RemoveIPC=true
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_SETUID CAP_SETGID
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
# A filtered call fails with EPERM instead of killing the process.
SystemCallErrorNumber=EPERM
`,
    );
  });

  it("with apphost:backups.s3 the backup service keeps the network (S3, IMDS) and nothing else changes", () => {
    const plain = renderBackupService(layout, backup);
    const s3 = renderBackupService(layout, { ...backup, network: true });
    assert.equal(
      s3,
      plain.replace(
        "PrivateNetwork=true\nRestrictAddressFamilies=AF_UNIX\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n",
      ),
    );
    assert.notEqual(s3, plain);
    assert.equal(renderBackupService(layout, { ...backup, network: false }), plain);
  });

  it("IMDS: every app unit denies 169.254.169.254; only the backup service with the network may reach it", () => {
    const units = renderProcessUnits(layout, {
      processes: [
        { name: "web", command: "gunicorn app:app", kind: "web" },
        { name: "worker", command: "node worker.js", kind: "worker" },
      ],
      runtime: "python",
    });
    assert.ok(units.length >= 2);
    for (const u of units) assert.match(u.content, /^IPAddressDeny=169\.254\.169\.254$/m, u.name);
    assert.doesNotMatch(renderBackupService(layout, { ...backup, network: true }), /IPAddressDeny/);
  });

  it("renders the timer", () => {
    assert.equal(
      renderBackupTimer(layout, backup),
      `# apphost shop-prod: backup schedule (apphost:backups.schedule).
# Managed by apphost (components/render/systemd.ts); edits are overwritten on the next deploy.
[Unit]
Description=apphost shop-prod scheduled backup

[Timer]
OnCalendar=daily
# A run missed while the host was off happens at the next boot.
Persistent=true
Unit=apphost-shop-prod-backup.service

[Install]
WantedBy=timers.target
`,
    );
  });

  it("the schedule is the OnCalendar line", () => {
    const v = renderBackupTimer(layout, { ...backup, backups: { schedule: "*-*-* 03:30:00" } });
    assert.deepEqual(lineDiff(renderBackupTimer(layout, backup), v), {
      removed: ["OnCalendar=daily"],
      added: ["OnCalendar=*-*-* 03:30:00"],
    });
  });

  it("refuses a relative ExecStart and an empty schedule", () => {
    assert.throws(
      () => renderBackupService(layout, { backups: { schedule: " " }, execStart: "bin/backup" }),
      {
        message:
          "backup units: not safe to write (apphost's config check should have refused it; please report this):\n" +
          '  - the backup script: "bin/backup" is not an absolute path without spaces\n' +
          '  - apphost:backups.schedule: " " is not one non-empty line',
      },
    );
  });
});
