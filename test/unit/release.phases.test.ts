import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { spawnSync } from "child_process";
import { buildTools, nodeEnginesWarning, type NodeDeps } from "../../components/release/node";
import { detectPythonDeps } from "../../components/release/python";
import assert from "assert/strict";
import type { DatabaseConfig } from "../../components/config/types";
import { hostLayout } from "../../components/paths";
import { shellQuote } from "../../components/shell";
import {
  assertS3Target,
  backupCommands,
  copyOffsiteCommands,
  databaseFunctions,
  fingerprintCommands,
  pruneBackupsCommands,
  restoreCommands,
  verifyBackupCommands,
} from "../../components/release/backup";
import { leadingProgram } from "../../components/config/procfile";
import {
  ERROR_HINTS,
  EXIT_CODES,
  debugOffHint,
  errorHintOf,
  errorHintFunction,
  deployPhases,
  healthGatePhase,
  installPhase,
  installsPackages,
  npmWithoutLockWarning,
  MIGRATE_NOT_FOUND_HINT,
  MIGRATION_ORDER_HINT,
  NO_TABLE_HINT,
  PG_LOGIN_HINT,
  migratePhase,
  mirrorPhases,
  publishPhase,
  rollbackPhases,
  strayDatabaseCheck,
  upstreamRuleset,
  type ReleaseInput,
  type ReleaseRefs,
} from "../../components/release/phases";
import { cmdRestoreCommands, restoreStartCommands } from "../../components/release/restore";
import { renderUpstreamRuleset } from "../../components/render/nftables";
import { baseApp, baseDatabase, baseInput, baseReleases } from "./release-harness";

const ID = "20250101120000-abcdef12";
/** Literal refs: the phases of one concrete release, readable in an assertion. */
const literal: ReleaseRefs = {
  id: ID,
  requirementsHash: "0123456789abcdef",
  newPort: "8001",
  oldPort: "8000",
};

/** The check for SQLite databases written inside the release, for the base input (kind sqlite), after `who`. */
const strayCheck = (who: string) =>
  `if [ -n "$MIGRATE_T0" ]; then STRAY=$(stray_databases "$NEW_DIR" -newermt "@$MIGRATE_T0"); if [ -n "$STRAY" ]; then die ${who}' wrote a SQLite database inside the release directory '"$NEW_DIR: \${STRAY//$'\\n'/, }"'. ` +
  "The next release is a new directory, so its data would stay behind there, and go when this release is pruned. " +
  "Open it where DATABASE_URL says (sqlite:////srv/shop-prod/shared/data/app.db), or as data/<file> in the release " +
  "(data/ links to /srv/shop-prod/shared/data) and set apphost:database.sqliteFile to <file>, so backups and restores take it." +
  "'; fi; fi";

function phase(input: ReleaseInput, name: string) {
  const p = deployPhases(input).find((x) => x.name === name);
  assert.ok(p, name);
  return p;
}

/** The install phase before its last step, the look for each program the units start (tested in the base input). */
function untilProgramCheck(cmds: string[]): string[] {
  const i = cmds.findIndex((c) => c.startsWith("# shellcheck disable=SC2016 # the commands are quoted"));
  return i < 0 ? cmds : cmds.slice(0, i);
}

describe("release phases: the base input", () => {
  it("deploys in the Capistrano order, each phase with its own exit status", () => {
    const phases = deployPhases(baseInput());
    assert.deepEqual(
      phases.map((p) => [p.name, p.exitCode]),
      [
        ["check", 10],
        ["upload", 11],
        ["install", 12],
        ["backup", 13],
        ["migrate", 14],
        ["publish", 15],
        ["health-gate", 16],
        ["finish", 17],
      ],
    );
    const codes = Object.values(EXIT_CODES);
    assert.equal(new Set(codes).size, codes.length, "exit statuses are distinct");
    assert.deepEqual(
      mirrorPhases(baseInput()).map((p) => p.name),
      ["revert-traffic", "restore-database", "restart-workers", "mark-failed"],
    );
    // No workers: no step for them, and the traffic step stops none.
    const webOnly = baseInput({
      app: { ...baseApp, processes: baseApp.processes.filter((p) => p.kind === "web") },
    });
    assert.deepEqual(
      mirrorPhases(webOnly).map((p) => p.name),
      ["revert-traffic", "restore-database", "mark-failed"],
    );
    assert.doesNotMatch(mirrorPhases(webOnly)[0].commands.join("\n"), /worker/);
    assert.deepEqual(
      rollbackPhases(baseInput()).map((p) => p.name),
      ["choose", "publish", "health-gate", "finish"],
    );
  });

  it("check", () => {
    assert.deepEqual(phase(baseInput(), "check").commands, [
      "ensure_dirs 0755 root /srv/shop-prod /srv/shop-prod/releases /srv/shop-prod/instances /srv/shop-prod/venvs /srv/shop-prod/shared /srv/shop-prod/bin",
      "ensure_dirs 0750 shop-prod /srv/shop-prod/shared/data /srv/shop-prod/shared/logs /srv/shop-prod/cache",
      "ensure_dirs 0700 root /srv/shop-prod/shared/backups",
      "free_mb=$(df -m --output=avail /srv/shop-prod); free_mb=${free_mb//[!0-9]/}",
      'if [ "$free_mb" -lt 500 ]; then die "only $free_mb MiB free under /srv/shop-prod; 500 MiB required (apphost:releases.minFreeMb): remove old backups or grow the disk"; fi',
      "lock_acquire 30",
      "choose_ports",
      'if [ -e /srv/shop-prod/current ]; then OLD_DIR=$(readlink -f /srv/shop-prod/current); else OLD_DIR=""; fi',
      'if [ ! -e /etc/apphost/shop-prod.env ]; then note "warning: /etc/apphost/shop-prod.env does not exist; processes start without the stack\'s environment"; fi',
    ]);
  });

  it("upload (script refs)", () => {
    assert.deepEqual(phase(baseInput(), "upload").commands, [
      'NEW_DIR="/srv/shop-prod/releases/$RELEASE_ID"',
      'if [ -d "$NEW_DIR" ]; then note "upload: release $RELEASE_ID is already on the host; reusing it"; drain_stdin; return 0; fi',
      'rm_existing "$NEW_DIR.tmp" "$NEW_DIR.tar.gz.tmp"',
      '(umask 077 && cat >"$NEW_DIR.tar.gz.tmp")',
      'if [ ! -s "$NEW_DIR.tar.gz.tmp" ]; then die "no artifact on stdin: deploy reads the release tar.gz from standard input"; fi',
      'if [ -n "$ARTIFACT_SHA256" ]; then actual=$(sha256sum "$NEW_DIR.tar.gz.tmp"); actual=${actual%% *}; if [ "$actual" != "$ARTIFACT_SHA256" ]; then die "artifact checksum mismatch: expected $ARTIFACT_SHA256, received $actual (interrupted upload?)"; fi; fi',
      'if ! gzip -t "$NEW_DIR.tar.gz.tmp" 2>/dev/null; then die "the artifact on stdin is not a complete gzip stream (interrupted upload?)"; fi',
      'mkdir -m 0755 "$NEW_DIR.tmp"',
      'tar -xzf "$NEW_DIR.tar.gz.tmp" -C "$NEW_DIR.tmp" --no-same-owner',
      "local uploaded",
      "utc_time uploaded",
      'printf \'id=%s\\nuploaded=%s\\n\' "$RELEASE_ID" "$uploaded" >"$NEW_DIR.tmp/.apphost-release"',
      'rm -f "$NEW_DIR.tar.gz.tmp"',
      'mv -T "$NEW_DIR.tmp" "$NEW_DIR"',
    ]);
  });

  it("install (literal refs): chown, venv per requirements hash, then the shared links", () => {
    assert.deepEqual(phase(baseInput({ refs: literal }), "install").commands, [
      `NEW_DIR="/srv/shop-prod/releases/${ID}"`,
      "INSTALLING=dependencies",
      'rm_existing "$NEW_DIR/data" "$NEW_DIR/logs"',
      'chown -hR shop-prod: "$NEW_DIR"',
      "PYTHON=python3",
      `PY_MM=$(python3 -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')`,
      'VENV="/srv/shop-prod/venvs/0123456789abcdef-py$PY_MM"',
      'if [ -f "$VENV/.apphost-complete" ] && as_app "$NEW_DIR" "$VENV/bin/python -c \'\'" 2>/dev/null; then note "install: reusing $VENV"; else note \'install: pip install -r requirements.txt into\'" $VENV"; rm -rf "$VENV"; install -d -m 0755 -o shop-prod -g shop-prod "$VENV"; if [ -f "$NEW_DIR/requirements.txt" ]; then as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv $VENV"; as_app "$NEW_DIR" "PIP_CACHE_DIR=/srv/shop-prod/cache/pip $VENV/bin/pip install --disable-pip-version-check --no-input -r requirements.txt"; else as_app "$NEW_DIR" "\\"$PYTHON\\" -m venv --without-pip $VENV"; note "install: no requirements.txt; the venv has no packages"; fi; as_app "$NEW_DIR" "touch $VENV/.apphost-complete"; fi',
      'rm_existing "$NEW_DIR/.venv"',
      'ln -sfn "$VENV" "$NEW_DIR/.venv"',
      'chown -h shop-prod: "$NEW_DIR/.venv"',
      // After the install, which builds a packaged app from the release (setuptools' discovery reads its top level).
      'ln -sfn /srv/shop-prod/shared/data "$NEW_DIR/data"',
      'ln -sfn /srv/shop-prod/shared/logs "$NEW_DIR/logs"',
      'chown -h shop-prod: "$NEW_DIR/data" "$NEW_DIR/logs"',
      // Last: the program each process and the migration start, found where its unit looks, in one look.
      "# shellcheck disable=SC2016 # the commands are quoted as the stack wrote them",
      "PROGRAM_LABELS=('`gunicorn` (process web: gunicorn -c gunicorn.conf.py app.main:app)' '`python` (process worker: python worker.py)' '`alembic` (the migration: alembic upgrade head)')",
      // gunicorn and alembic run the app's code: only the venv gives them, a host package would not see the app's.
      "PROGRAM_HOSTABLE=(0 1 0)",
      `MISSING=$(as_app "$NEW_DIR" 'command -v gunicorn >/dev/null 2>&1 || echo 0; command -v python >/dev/null 2>&1 || echo 1; command -v alembic >/dev/null 2>&1 || echo 2')`,
      'if [ -n "$MISSING" ]; then missing=(); host=""; for i in $MISSING; do missing+=("${PROGRAM_LABELS[$i]}"); ' +
        '[ "${PROGRAM_HOSTABLE[$i]}" = 0 ] || host=", or a host program\'s package to apphost:host.packages"; done; printf -v MISSING \'%s; \' "${missing[@]}"; ' +
        "fail \"not found where the units look (the release, its .venv/bin, then the host's PATH), or not executable: ${MISSING%; }; " +
        "add each to the app's main dependencies (requirements.txt; apphost installs no dev group) or to apphost:app.extraRequirements$host, or fix the command; nothing was backed up or migrated\"; fi",
      // The migration is alembic's: its versions directory must hold a revision.
      "alembic_revisions_check alembic.ini .",
    ]);
  });

  it("install: the missing programs' error offers a host package only when one of them is not a program only the venv gives", () => {
    const commands = phase(baseInput({ refs: literal }), "install").commands;
    const check = commands.slice(
      commands.indexOf("# shellcheck disable=SC2016 # the commands are quoted as the stack wrote them"),
      -1,
    );
    assert.equal(check.length, 5, check.join("\n"));
    // The lines under bash, with the look's answer (the indexes of the missing programs) and `fail` stubbed.
    const failWith = (missing: string) => {
      const r = spawnSync("bash", [
        "-c",
        `as_app() { echo ${missing}; }; fail() { echo "$1"; }; ${check.join("\n")}`,
      ]);
      assert.equal(r.status, 0, r.stderr.toString());
      return r.stdout.toString().trim();
    };
    const start =
      "not found where the units look (the release, its .venv/bin, then the host's PATH), or not executable: ";
    const deps =
      "add each to the app's main dependencies (requirements.txt; apphost installs no dev group) or to apphost:app.extraRequirements";
    const end = ", or fix the command; nothing was backed up or migrated";
    const gunicorn = "`gunicorn` (process web: gunicorn -c gunicorn.conf.py app.main:app)";
    const alembic = "`alembic` (the migration: alembic upgrade head)";
    const python = "`python` (process worker: python worker.py)";
    assert.equal(failWith('"0 2"'), `${start}${gunicorn}; ${alembic}; ${deps}${end}`);
    assert.equal(
      failWith('"0 1"'),
      `${start}${gunicorn}; ${python}; ${deps}, or a host program's package to apphost:host.packages${end}`,
    );
    assert.equal(failWith('""'), "");
  });

  it("install: a program only a group or an extra the stack does not install has is named with it (uvicorn in Poetry's dev group)", () => {
    const input = baseInput({
      refs: literal,
      app: {
        ...baseApp,
        processes: [{ name: "web", command: "uvicorn app.main:app --port $PORT", kind: "web" }],
        pythonDeps: {
          ...detectPythonDeps({ "poetry.lock": "", "pyproject.toml": "[tool.poetry]\nname = 'x'\n" }),
          groupedPackages: {
            uvicorn: [
              { name: "dev", as: "group" },
              { name: "server", as: "extra" },
            ],
            alembic: [{ name: "db", as: "group" }],
          },
        },
      },
    });
    const commands = phase(input, "install").commands;
    assert.ok(
      commands.includes(
        'PROGRAM_LABELS=(\'`uvicorn` (process web: uvicorn app.main:app --port $PORT; pyproject.toml lists it in its "dev" group and "server" extra: add one of them to apphost:app.dependencyGroups)\' ' +
          '\'`alembic` (the migration: alembic upgrade head; pyproject.toml lists it in its "db" group: add "db" to apphost:app.dependencyGroups)\')',
      ),
      commands.join("\n"),
    );
    assert.match(
      commands.at(-2)!,
      /; add each to the app's main dependencies \(poetry\.lock; apphost installs a group or an extra only when apphost:app\.dependencyGroups names it\) or to apphost:app\.extraRequirements\$host, or /,
    );
    // uvicorn and alembic only the venv can give: no host package is offered for either.
    assert.ok(commands.includes("PROGRAM_HOSTABLE=(0 0)"), commands.join("\n"));
    // pip from a pyproject.toml installs the groups named too (BookWyrm's main), a package's as well.
    const pipInstall = (pyproject: string) =>
      phase(
        baseInput({
          refs: literal,
          app: { ...baseApp, pythonDeps: detectPythonDeps({ "pyproject.toml": pyproject }) },
        }),
        "install",
      ).commands.at(-2)!;
    const groups = '[dependency-groups]\nmain = ["gunicorn"]\n';
    assert.match(
      pipInstall(groups),
      /\(pyproject\.toml; apphost installs a group or an extra only when apphost:app\.dependencyGroups names it\)/,
    );
    assert.match(
      pipInstall(`[build-system]\nrequires = ["setuptools"]\n${groups}`),
      /\(pyproject\.toml; apphost installs a group or an extra only when apphost:app\.dependencyGroups names it\)/,
    );
    // Pipenv: none.
    assert.match(
      phase(
        baseInput({
          refs: literal,
          app: { ...baseApp, pythonDeps: detectPythonDeps({ Pipfile: "", "Pipfile.lock": "{}" }) },
        }),
        "install",
      ).commands.at(-2)!,
      /\(Pipfile\.lock; apphost installs no dev group\)/,
    );
  });

  it("a Node app's failed migration gets no dev-dependency hint (its devDependencies are installed), but an error's", () => {
    const node = baseInput({ app: { ...baseApp, runtime: "node" } });
    const line = phase(node, "migrate").commands.find((c) => c.startsWith("if ! as_app"));
    assert.ok(
      line?.includes(
        `; then MIGRATE_HINT=$(error_hint "$(runuser -u "$APP_USER" -- cat "$MIGRATE_LOG" | error_line)" migration); ` +
          `if [ -n "$MIGRATE_HINT" ]; then MIGRATE_HINT=$'\\n'"($MIGRATE_HINT)"; fi; die "the migration command failed: `,
      ),
      line,
    );
    assert.ok(!line!.includes("PIPESTATUS"));
  });

  it("backup, migrate, publish, health-gate, finish (literal refs)", () => {
    const input = baseInput({ refs: literal });
    assert.deepEqual(phase(input, "backup").commands, [
      "db_lock",
      `db_backup "pre-${ID}"`,
      "db_prune_backups",
      "db_unlock",
    ]);
    // apphost:backups.s3: a failed copy only warns; the deploy needs the local backup alone.
    const s3 = { bucket: "shop-prod-20250101abcdef", region: "eu-central-1", prefix: "shop/prod/" };
    assert.deepEqual(phase(baseInput({ refs: literal, s3 }), "backup").commands, [
      "db_lock",
      `db_backup "pre-${ID}"`,
      "db_prune_backups",
      "db_unlock",
      'db_copy_offsite "$BACKUP_FILE" || note "warning: the deploy goes on with the backup on this host"',
    ]);
    assert.deepEqual(phase(input, "migrate").commands, [
      `NEW_DIR="/srv/shop-prod/releases/${ID}"`,
      `MIGRATE_LOG="/srv/shop-prod/shared/logs/apphost-migrate-${ID}.log"`,
      "MIGRATE_T0=${EPOCHREALTIME/,/.}",
      "DB_FP_BEFORE=$(db_fingerprint)",
      "app_revision REVISION_BEFORE \"$NEW_DIR\" 'alembic current'",
      "MIGRATE_STARTED=1",
      'rm -f "$MIGRATE_LOG"',
      'if ! as_app "$NEW_DIR" \'alembic upgrade head\' 2>&1 | runuser -u "$APP_USER" -- tee "$MIGRATE_LOG" >/dev/null; then ' +
        `MIGRATE_STATUS=\${PIPESTATUS[0]}; MIGRATE_HINT=""; if [ "$MIGRATE_STATUS" = 127 ]; then MIGRATE_HINT=$'\\n'${shellQuote(MIGRATE_NOT_FOUND_HINT)}; ` +
        // What an error means in the migration's own output (ERROR_HINTS' inMigration).
        `else MIGRATE_HINT=$(error_hint "$(runuser -u "$APP_USER" -- cat "$MIGRATE_LOG" | error_line)" migration); ` +
        'if [ -z "$MIGRATE_HINT" ]; then MIGRATE_HINT=$(alembic_url_hint alembic.ini .); fi; ' +
        `if [ -n "$MIGRATE_HINT" ]; then MIGRATE_HINT=$'\\n'"($MIGRATE_HINT)"; fi; fi; ` +
        'die "the migration command failed: alembic upgrade head$(migrate_earlier "$MIGRATE_LOG"); last 40 lines of its output ($MIGRATE_LOG):"$\'\\n\'"$(migrate_output "$MIGRATE_LOG")$MIGRATE_HINT"; fi',
      "app_revision REVISION \"$NEW_DIR\" 'alembic current'",
      'if [ -n "$REVISION_FAILED" ]; then note "warning: the revision command ("\'alembic current\'") failed: \\"$REVISION_FAILED\\"; ' +
        "the release log records no revision for this release, so a rollback to it cannot tell whether a later migration took the database past it: " +
        'fix the command, or set apphost:database.revision to one that prints the revision (\\"\\" for none)"; fi',
      'note "migrate: revision $REVISION_BEFORE -> $REVISION"',
      'for f in /srv/shop-prod/shared/data/app.db /srv/shop-prod/shared/data/app.db-wal /srv/shop-prod/shared/data/app.db-shm /srv/shop-prod/shared/data/app.db-journal; do if [ -f "$f" ] && [ ! -L "$f" ]; then chmod g-w,o-rwx -- "$f"; fi; done',
      strayCheck('"the migration (alembic upgrade head)"'),
    ]);
    assert.deepEqual(phase(input, "publish").commands, [
      'env_snapshot "/srv/shop-prod/instances/8001.env"',
      `atomic_link "/srv/shop-prod/releases/${ID}" "/srv/shop-prod/instances/8001"`,
      // The instance's command as this release runs it (the header's DROPINS), before systemd starts it.
      'dropin_write "/etc/systemd/system/apphost-shop-prod-web@8001.service.d/apphost-command.conf" "${DROPINS[web]}"',
      "systemctl daemon-reload",
      "PUBLISH_STARTED=$EPOCHSECONDS",
      "NEW_STARTED=1",
      'systemctl enable --quiet "apphost-shop-prod-web@8001.service"',
      'unit_restart "apphost-shop-prod-web@8001.service"',
    ]);
    assert.deepEqual(phase(input, "health-gate").commands, [
      'if ! health_wait "http://127.0.0.1:8001/healthz" "apphost-shop-prod-web@8001.service" 60; then die "apphost-shop-prod-web@8001.service did not answer 2xx on http://127.0.0.1:8001/healthz (last answer: $HEALTH_LAST); $(if [ -n "8000" ]; then echo "traffic stays on the old instance"; else echo "no release served before this one, and none serves now"; fi). Last lines of its journal:"$\'\\n\'"$(journal_tail "apphost-shop-prod-web@8001.service")"; fi',
      strayCheck('"the new release (apphost-shop-prod-web@8001.service, as it started)"'),
      "SWITCHED=1",
      'write_active_port "8001"',
      'switch_upstream "8001"',
      'live_env_set "/srv/shop-prod/instances/8001.env"',
      'live_dropin_write "/etc/systemd/system/apphost-shop-prod-worker.service.d/apphost-command.conf" "${DROPINS[worker]}"',
      "systemctl daemon-reload",
      `atomic_link "/srv/shop-prod/releases/${ID}" /srv/shop-prod/current`,
      "systemctl enable --quiet apphost-shop-prod-worker.service",
      "unit_restart apphost-shop-prod-worker.service",
      "workers_note_restarts apphost-shop-prod-worker.service",
      'if [ -n "8000" ]; then sleep 5; systemctl stop "apphost-shop-prod-web@8000.service"; systemctl disable --quiet "apphost-shop-prod-web@8000.service"; fi',
      "COMMITTED=1",
      'debug_page_warning "http://127.0.0.1:8001"',
      "workers_check deploy",
    ]);
    assert.deepEqual(phase(input, "finish").commands, [
      `release_log "${ID}" "$REVISION" deployed`,
      // A database file the new release's app made as it started, with a mode of its own (Uptime Kuma's copy).
      "for f in /srv/shop-prod/shared/data/app.db /srv/shop-prod/shared/data/app.db-wal /srv/shop-prod/shared/data/app.db-shm /srv/shop-prod/shared/data/app.db-journal; do " +
        'if [ -f "$f" ] && [ ! -L "$f" ]; then chmod g-w,o-rwx -- "$f"; fi; done',
      "rm -f /srv/shop-prod/instances/live.env.previous",
      "live_dropins_done",
      "prune_releases 5",
      "prune_venvs",
    ]);
  });

  it("the mirror undoes traffic, then the database, starts the old release's workers, then marks the release failed", () => {
    const [traffic, database, workers, mark] = mirrorPhases(baseInput({ refs: literal }));
    assert.deepEqual(traffic.commands, [
      'if [ "$SWITCHED" = 1 ] && [ -n "8000" ]; then systemctl enable --quiet "apphost-shop-prod-web@8000.service"; systemctl start "apphost-shop-prod-web@8000.service"; health_wait "http://127.0.0.1:8000/healthz" "apphost-shop-prod-web@8000.service" 60 || note "rollback: warning: apphost-shop-prod-web@8000.service is not healthy ($HEALTH_LAST)"; switch_upstream "8000"; write_active_port "8000"; fi',
      'if [ "$NEW_STARTED" = 1 ]; then systemctl stop "apphost-shop-prod-web@8001.service"; systemctl disable --quiet "apphost-shop-prod-web@8001.service"; fi',
      'if [ "$SWITCHED" = 1 ] && [ -n "$OLD_DIR" ]; then systemctl stop apphost-shop-prod-worker.service; atomic_link "$OLD_DIR" /srv/shop-prod/current; live_env_revert; live_dropins_revert; fi',
      'if [ "$SWITCHED" = 1 ] && [ -z "$OLD_DIR" ]; then systemctl stop apphost-shop-prod-worker.service; systemctl disable --quiet apphost-shop-prod-worker.service; rm -f /srv/shop-prod/current /srv/shop-prod/active-port; live_env_revert; live_dropins_revert; fi',
    ]);
    assert.deepEqual(workers.commands, [
      'if [ "$SWITCHED" != 1 ] || [ -z "$OLD_DIR" ]; then return 0; fi',
      "unit_restart apphost-shop-prod-worker.service",
      "workers_note_restarts apphost-shop-prod-worker.service",
      "workers_check rollback",
    ]);
    assert.deepEqual(database.commands, [
      'if [ "$MIGRATE_STARTED" != 1 ]; then note "rollback: the migration did not run; database untouched"; return 0; fi',
      "fp_after=$(db_fingerprint)",
      'local rev_after=""',
      "app_revision rev_after \"$NEW_DIR\" 'alembic current'",
      'if [ "$fp_after" = "$DB_FP_BEFORE" ] && [ "$rev_after" = "$REVISION_BEFORE" ]; then note "rollback: the migration left schema and revision unchanged; database not restored"; return 0; fi',
      `if [ -z "$BACKUP_FILE" ]; then db_set_aside "${ID}"; return 0; fi`,
      'db_restore "$BACKUP_FILE"',
      "fp_after=$(db_fingerprint)",
      'if [ "$fp_after" != "$DB_FP_BEFORE" ]; then fail "rollback: after restoring $BACKUP_FILE the schema fingerprint is $fp_after, not $DB_FP_BEFORE as before the migration"; fi',
      'note "rollback: database restored from $BACKUP_FILE; its schema fingerprint matches the one before the migration"',
    ]);
    assert.deepEqual(mark.commands, [
      'if [ "$MIGRATE_STARTED" = 1 ]; then if [ "$DB_FP_BEFORE" = absent ]; then REVISION=""; else REVISION=$REVISION_BEFORE; fi; fi',
      `release_log "${ID}" "$REVISION" "failed:$FAILED_PHASE"`,
      `rm -rf "/srv/shop-prod/releases/${ID}.tmp" "/srv/shop-prod/releases/${ID}.tar.gz.tmp"`,
    ]);
  });

  /** The choose phase's commands up to the target's revision, on every app host. */
  const chooseTarget = [
    "lock_acquire 30",
    "choose_ports",
    'if [ -e /srv/shop-prod/current ]; then OLD_DIR=$(readlink -f /srv/shop-prod/current); else OLD_DIR=""; fi',
    "choose_rollback_target",
    'NEW_DIR="/srv/shop-prod/releases/$RELEASE_ID"',
    "app_revision REVISION \"$NEW_DIR\" 'alembic current'",
  ];

  it("rollback on purpose records rolled-back and never touches the database", () => {
    const [choose, , , finish] = rollbackPhases(baseInput());
    assert.deepEqual(choose.commands, [
      ...chooseTarget,
      'local deployed; deployed=$(deployed_revision "$RELEASE_ID")',
      'if [ -n "$REVISION_FAILED" ] || { [ -n "$REVISION" ] && [ -n "$deployed" ] && [ "$REVISION" != "$deployed" ]; }; then ' +
        'local before said todo="no backup taken before a later release\'s migration is left on this host"; ' +
        'if [ -n "$REVISION_FAILED" ]; then said="the revision command of release $RELEASE_ID failed ("\'alembic current\'": \\"$REVISION_FAILED\\")"; ' +
        'else said="the database is at revision \\"$REVISION\\", not \\"$deployed\\" as when release $RELEASE_ID was deployed"; fi; ' +
        'before=$(db_first_backup_after "$RELEASE_ID"); ' +
        'if [ -n "$before" ]; then todo="if this release needs the schema it was deployed with, restore $before, the backup taken before the first migration after it (npm run restore -- --stack prod --backup $before), and lose what was written since"; fi; ' +
        'note "rollback: warning: $said: ' +
        "a later release's migration may have taken the database past this release's migrations, and a rollback does not touch the database; $todo\"; fi",
    ]);
    assert.deepEqual(finish.commands, [
      'release_log "$RELEASE_ID" "$REVISION" rolled-back',
      'note "rollback: $RELEASE_ID serves now; the database was not changed (restore a backup explicitly with: apphost-release restore <file>)"',
    ]);
    const all = rollbackPhases(baseInput())
      .flatMap((p) => p.commands)
      .join("\n");
    assert.doesNotMatch(all, /db_restore|db_backup|as_app "\$NEW_DIR" 'alembic upgrade/);
  });

  it("a follower's rollback records the revision and leaves the database's warning to the first app host", () => {
    const [choose] = rollbackPhases({ ...baseInput(), follower: true });
    assert.deepEqual(choose.commands, [
      ...chooseTarget,
      ': "$REVISION_FAILED" # app_revision sets it for the warning, which is the first app host\'s',
    ]);
  });
});

describe("release phases: one key changed", () => {
  it("apphost:proxy.kind nginx: the same nftables switch, no proxy reload", () => {
    const l = hostLayout("shop", "prod");
    assert.equal(upstreamRuleset(l, baseApp, 8001), renderUpstreamRuleset(l, { basePort: 8000, port: 8001 }));
    assert.match(
      upstreamRuleset(l, baseApp, 8001),
      /^\t\tip daddr 127\.0\.0\.1 tcp dport 8002 dnat to 127\.0\.0\.1:8001$/m,
    );
    const nginx = healthGatePhase(baseInput({ proxy: { kind: "nginx" } }));
    assert.match(nginx.description, /the nginx configuration does not change and is not reloaded/);
    assert.deepEqual(nginx.commands, healthGatePhase(baseInput()).commands);
  });

  it("apphost:app.env with a DEBUG that reads as off: the debug-page warning says how the app reads it", () => {
    assert.equal(debugOffHint({}), undefined);
    // Values that read as on, keys that only contain DEBUG, and a blank value (bool("") is False): nothing to say.
    assert.equal(
      debugOffHint({ DEBUG: "1", DJANGO_DEBUG: "true", DEBUGGER: "0", DEBUG_TOOLBAR_X: "off", X: "" }),
      undefined,
    );
    const hint =
      'apphost:app.env.DEBUG is " Off ", which the app reads as on: settings such as bool(os.environ.get("DEBUG", 0)) ' +
      'take any non-empty string as True, "0" and "False" too; remove it from apphost:app.env (or set it to ""), ' +
      'or compare the value in the settings (os.environ.get("DEBUG") == "1")';
    assert.equal(debugOffHint({ DEBUG: " Off " }), hint);
    const commands = healthGatePhase(
      baseInput({ refs: literal, app: { ...baseApp, env: { DEBUG: " Off " } } }),
    ).commands;
    assert.ok(
      commands.includes(`debug_page_warning "http://127.0.0.1:8001" ${shellQuote(hint)}`),
      commands.join("\n"),
    );
  });

  it("apphost:app.healthPath, apphost:releases.* numbers", () => {
    const hg = healthGatePhase(
      baseInput({
        refs: literal,
        app: { ...baseApp, healthPath: "/up" },
        releases: { ...baseReleases, healthTimeoutSeconds: 90, drainSeconds: 0 },
      }),
    );
    assert.match(
      hg.commands[0],
      /^if ! health_wait "http:\/\/127.0.0.1:8001\/up" "apphost-shop-prod-web@8001.service" 90; then/,
    );
    assert.match(hg.commands.at(-4)!, /then systemctl stop /, "no drain: no sleep 0 either");
    assert.match(phase(baseInput(), "health-gate").commands.at(-4)!, /then sleep 5; systemctl stop /);
    assert.equal(
      phase(baseInput({ releases: { ...baseReleases, keep: 3 } }), "finish").commands[4],
      "prune_releases 3",
    );
    assert.match(
      phase(baseInput({ releases: { ...baseReleases, minFreeMb: 2048 } }), "check").commands[4],
      /-lt 2048 \]/,
    );
    assert.equal(
      phase(baseInput({ releases: { ...baseReleases, lockTtlMinutes: 5 } }), "check").commands[5],
      "lock_acquire 5",
    );
  });

  it("apphost:app.basePort moves both ports", () => {
    assert.match(
      phase(baseInput({ app: { ...baseApp, basePort: 9000 } }), "check").description,
      /\(9000 or 9001\)/,
    );
  });

  it("apphost:app.sharedDirs: each linked as the app user, after the venv and data/ and logs/, before the build", () => {
    const cmds = installPhase(
      baseInput({
        refs: literal,
        app: { ...baseApp, sharedDirs: ["bakerydemo/media", "instance"], build: "make" },
      }),
    ).commands;
    const at = cmds.indexOf('chown -h shop-prod: "$NEW_DIR/.venv"');
    assert.ok(at > 0, cmds.join("\n"));
    assert.deepEqual(cmds.slice(at + 1, at + 6), [
      'ln -sfn /srv/shop-prod/shared/data "$NEW_DIR/data"',
      'ln -sfn /srv/shop-prod/shared/logs "$NEW_DIR/logs"',
      'chown -h shop-prod: "$NEW_DIR/data" "$NEW_DIR/logs"',
      "link_shared_dir bakerydemo/media",
      "link_shared_dir instance",
    ]);
    assert.match(cmds[at + 6], /^if \[ -f "\$NEW_DIR\/\.apphost-installed" \]; .*as_app "\$NEW_DIR" make;/);
    // The config check refuses a path a shell would read; the renderer only asserts it.
    assert.throws(
      () => installPhase(baseInput({ refs: literal, app: { ...baseApp, sharedDirs: ["media; rm -rf /"] } })),
      /apphost:app\.sharedDirs\[0\]: "media; rm -rf \/" is not a directory inside the release/,
    );
  });

  it("apphost:app.dotenv: each linked after the shared directories and before the build", () => {
    const input = baseInput({
      refs: literal,
      app: { ...baseApp, sharedDirs: ["media"], dotenv: ["src/.env", ".env.production"], build: "make" },
    });
    const cmds = installPhase(input).commands;
    const at = cmds.indexOf("link_shared_dir media");
    assert.deepEqual(cmds.slice(at, at + 3), [
      "link_shared_dir media",
      "link_dotenv src/.env",
      "link_dotenv .env.production",
    ]);
    assert.match(cmds[at + 3], /as_app "\$NEW_DIR" make;/);
    assert.match(
      installPhase(input).description,
      /Link media to \/srv\/shop-prod\/shared\/data\/linked\/ as shop-prod\. Link src\/\.env, \.env\.production to \/etc\/apphost\/shop-prod\.env\. /,
    );
    assert.throws(
      () => installPhase(baseInput({ refs: literal, app: { ...baseApp, dotenv: [".env", "$(reboot)"] } })),
      /apphost:app\.dotenv\[1\]: "\$\(reboot\)" is not a relative path inside the app/,
    );
  });

  it("apphost:app.runtime node, with apphost:app.build", () => {
    const cmds = installPhase(
      baseInput({
        refs: literal,
        app: { ...baseApp, runtime: "node", requirements: "package-lock.json", build: "npm run build" },
      }),
    ).commands;
    assert.deepEqual(cmds, [
      `NEW_DIR="/srv/shop-prod/releases/${ID}"`,
      "INSTALLING=dependencies",
      'rm_existing "$NEW_DIR/data" "$NEW_DIR/logs"',
      'chown -hR shop-prod: "$NEW_DIR"',
      'NODE_DIR="/srv/shop-prod/venvs/0123456789abcdef-node"',
      'if [ -f "$NODE_DIR/.apphost-complete" ]; then note "install: reusing $NODE_DIR/node_modules"; else note "install: npm ci into $NODE_DIR"; rm -rf "$NODE_DIR"; install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR"; install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/package.json" "$NEW_DIR/package-lock.json" "$NODE_DIR/"; if [ -f "$NEW_DIR/.npmrc" ]; then install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/.npmrc" "$NODE_DIR/"; fi; as_app "$NODE_DIR" "npm_config_cache=/srv/shop-prod/cache/npm NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm_config_nodedir=/usr npm ci --include=dev --no-audit --no-fund"; as_app "$NODE_DIR" "touch $NODE_DIR/.apphost-complete"; fi',
      'release_node_modules "$NODE_DIR"',
      ...nodeEnginesWarning(),
      'ln -sfn /srv/shop-prod/shared/data "$NEW_DIR/data"',
      'ln -sfn /srv/shop-prod/shared/logs "$NEW_DIR/logs"',
      'chown -h shop-prod: "$NEW_DIR/data" "$NEW_DIR/logs"',
      'if [ -f "$NEW_DIR/.apphost-installed" ]; then note "install: dependencies and build already done for this release"; else INSTALLING=build; as_app "$NEW_DIR" \'npm run build\'; as_app "$NEW_DIR" "touch $NEW_DIR/.apphost-installed"; fi',
      // After the build, which may make what a process starts; node_modules/.bin and the lock in the message.
      "# shellcheck disable=SC2016 # the commands are quoted as the stack wrote them",
      "PROGRAM_LABELS=('`gunicorn` (process web: gunicorn -c gunicorn.conf.py app.main:app)' '`python` (process worker: python worker.py)' '`alembic` (the migration: alembic upgrade head)')",
      // A Node app: any of them may be a host program.
      "PROGRAM_HOSTABLE=(1 1 1)",
      `MISSING=$(as_app "$NEW_DIR" 'command -v gunicorn >/dev/null 2>&1 || echo 0; command -v python >/dev/null 2>&1 || echo 1; command -v alembic >/dev/null 2>&1 || echo 2')`,
      'if [ -n "$MISSING" ]; then missing=(); host=""; for i in $MISSING; do missing+=("${PROGRAM_LABELS[$i]}"); ' +
        '[ "${PROGRAM_HOSTABLE[$i]}" = 0 ] || host=", or a host program\'s package to apphost:host.packages"; done; printf -v MISSING \'%s; \' "${missing[@]}"; ' +
        "fail \"not found where the units look (the release, its node_modules/.bin, then the host's PATH), or not executable: ${MISSING%; }; " +
        "add each to package.json's dependencies (package-lock.json)$host, or fix the command; nothing was backed up or migrated\"; fi",
      "alembic_revisions_check alembic.ini .",
    ]);
  });

  it("an npm workspace: each member's package.json beside the lock for npm ci, node_modules linked per release", () => {
    const cmds = installPhase(
      baseInput({
        refs: literal,
        app: {
          ...baseApp,
          runtime: "node",
          requirements: "package-lock.json",
          npmWorkspaces: [
            { name: "@acme/shared", member: "packages/shared" },
            { name: "backend", member: "backend" },
          ],
        },
      }),
    ).commands;
    assert.deepEqual(untilProgramCheck(cmds).slice(5), [
      'if [ -f "$NODE_DIR/.apphost-complete" ]; then note "install: reusing $NODE_DIR/node_modules"; else note "install: npm ci into $NODE_DIR"; rm -rf "$NODE_DIR"; install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR"; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/package.json" "$NEW_DIR/package-lock.json" "$NODE_DIR/"; ' +
        'install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR/backend" "$NODE_DIR/packages" "$NODE_DIR/packages/shared"; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/packages/shared/package.json" "$NODE_DIR/packages/shared/"; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/backend/package.json" "$NODE_DIR/backend/"; ' +
        'if [ -f "$NEW_DIR/.npmrc" ]; then install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/.npmrc" "$NODE_DIR/"; fi; ' +
        'as_app "$NODE_DIR" "npm_config_cache=/srv/shop-prod/cache/npm NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt npm_config_nodedir=/usr npm ci --include=dev --no-audit --no-fund"; as_app "$NODE_DIR" "touch $NODE_DIR/.apphost-complete"; fi',
      'release_node_modules "$NODE_DIR" @acme/shared=packages/shared backend=backend',
      ...nodeEnginesWarning(),
      'ln -sfn /srv/shop-prod/shared/data "$NEW_DIR/data"',
      'ln -sfn /srv/shop-prod/shared/logs "$NEW_DIR/logs"',
      'chown -h shop-prod: "$NEW_DIR/data" "$NEW_DIR/logs"',
    ]);
  });

  it("a Yarn 1 or pnpm lock: npm installs that release beside the tree, which it makes and links into .bin", () => {
    const install = (nodeDeps: NodeDeps) =>
      installPhase(
        baseInput({
          refs: literal,
          app: { ...baseApp, runtime: "node", requirements: nodeDeps.lock, nodeDeps },
        }),
      ).commands;
    const copy = (f: string) =>
      `if [ -f "$NEW_DIR/${f}" ]; then install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/${f}" "$NODE_DIR/"; fi; `;
    const settings = [".npmrc", ".yarnrc", "pnpm-workspace.yaml"].map(copy).join("");
    const env =
      "npm_config_cache=/srv/shop-prod/cache/npm NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt";
    const yarn = install({ manager: "yarn", lock: "yarn.lock", version: "1.22.19" });
    assert.deepEqual(yarn.slice(5, 7), [
      'if [ -f "$NODE_DIR/.apphost-complete" ]; then note "install: reusing $NODE_DIR/node_modules"; else note "install: yarn 1.22.19 install into $NODE_DIR"; rm -rf "$NODE_DIR"; install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR"; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/package.json" "$NEW_DIR/yarn.lock" "$NODE_DIR/"; ' +
        settings +
        `as_app "$NODE_DIR" "${env} npm install --global --prefix $NODE_DIR/.apphost-tool --no-audit --no-fund yarn@1.22.19"; ` +
        `as_app "$NODE_DIR" "${env} YARN_CACHE_FOLDER=/srv/shop-prod/cache/yarn npm_config_nodedir=/usr $NODE_DIR/.apphost-tool/bin/yarn install --frozen-lockfile --non-interactive --production=false --ignore-engines --no-progress"; ` +
        'as_app "$NODE_DIR" "mkdir -p node_modules/.bin; ln -sfn $NODE_DIR/.apphost-tool/bin/yarn node_modules/.bin/yarn"; ' +
        'as_app "$NODE_DIR" "touch $NODE_DIR/.apphost-complete"; fi',
      'release_node_modules "$NODE_DIR"',
    ]);
    const pnpm = install({ manager: "pnpm", lock: "pnpm-lock.yaml", version: "9.15.9" });
    assert.equal(
      pnpm[5],
      'if [ -f "$NODE_DIR/.apphost-complete" ]; then note "install: reusing $NODE_DIR/node_modules"; else note "install: pnpm 9.15.9 install into $NODE_DIR"; rm -rf "$NODE_DIR"; install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR"; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/package.json" "$NEW_DIR/pnpm-lock.yaml" "$NODE_DIR/"; ' +
        settings +
        `as_app "$NODE_DIR" "${env} npm install --global --prefix $NODE_DIR/.apphost-tool --no-audit --no-fund pnpm@9.15.9"; ` +
        `as_app "$NODE_DIR" "${env} npm_config_store_dir=/srv/shop-prod/cache/pnpm-store npm_config_update_notifier=false npm_config_nodedir=/usr $NODE_DIR/.apphost-tool/bin/pnpm install --frozen-lockfile --prod=false"; ` +
        'as_app "$NODE_DIR" "mkdir -p node_modules/.bin; ln -sfn $NODE_DIR/.apphost-tool/bin/pnpm node_modules/.bin/pnpm"; ' +
        'as_app "$NODE_DIR" "touch $NODE_DIR/.apphost-complete"; fi',
    );
    // npm pinned by package.json's packageManager (a lock the host's npm 9 misreads): installed as pnpm is, runs npm ci.
    const npm = install({ manager: "npm", lock: "package-lock.json", version: "11.21.3" });
    assert.equal(
      npm[5],
      'if [ -f "$NODE_DIR/.apphost-complete" ]; then note "install: reusing $NODE_DIR/node_modules"; else note "install: npm 11.21.3 ci into $NODE_DIR"; rm -rf "$NODE_DIR"; install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR"; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/package.json" "$NEW_DIR/package-lock.json" "$NODE_DIR/"; ' +
        copy(".npmrc") +
        `as_app "$NODE_DIR" "${env} npm install --global --prefix $NODE_DIR/.apphost-tool --no-audit --no-fund npm@11.21.3"; ` +
        'as_app "$NODE_DIR" "if [ -f $NODE_DIR/.apphost-tool/lib/node_modules/npm/npmrc ]; then sed -i /^globalignorefile=/d $NODE_DIR/.apphost-tool/lib/node_modules/npm/npmrc; fi"; ' +
        `as_app "$NODE_DIR" "${env} npm_config_nodedir=/usr $NODE_DIR/.apphost-tool/bin/npm ci --include=dev --no-audit --no-fund"; ` +
        'as_app "$NODE_DIR" "mkdir -p node_modules/.bin; ln -sfn $NODE_DIR/.apphost-tool/bin/npm node_modules/.bin/npm"; ' +
        'as_app "$NODE_DIR" "touch $NODE_DIR/.apphost-complete"; fi',
    );
    assert.throws(
      () => install({ manager: "npm", lock: "package-lock.json", version: "11 && reboot" }),
      /npm's version: "11 && reboot" is not an exact version/,
    );
    assert.match(
      installPhase(baseInput({ app: { ...baseApp, runtime: "node", requirements: "pnpm-lock.yaml" } }))
        .description,
      /created with pnpm 9\.15\.9 install unless/,
    );
    assert.throws(
      () => install({ manager: "yarn", lock: "yarn.lock", version: "1.22; rm -rf /" }),
      /yarn's version: "1\.22; rm -rf \/" is not an exact version/,
    );
    // Yarn 2 and later: npm's @yarnpkg/cli-dist, .yarnrc.yml and the files it and the lock name, --immutable, and
    // the install state linked into the release as the app user (`yarn run` reads it there).
    const berry = install({
      manager: "yarn",
      lock: "yarn.lock",
      version: "4.13.0",
      yarnFiles: [".yarn/patches/passport-npm-0.7.0-df02531736.patch", ".yarn/releases/yarn-4.13.0.cjs"],
    });
    assert.deepEqual(berry.slice(5, 8), [
      'if [ -f "$NODE_DIR/.apphost-complete" ]; then note "install: reusing $NODE_DIR/node_modules"; else note "install: yarn 4.13.0 install into $NODE_DIR"; rm -rf "$NODE_DIR"; install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR"; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/package.json" "$NEW_DIR/yarn.lock" "$NODE_DIR/"; ' +
        copy(".yarnrc.yml") +
        'install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR/".yarn; ' +
        'install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR/".yarn/patches; ' +
        'install -d -m 0755 -o shop-prod -g shop-prod "$NODE_DIR/".yarn/releases; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/".yarn/patches/passport-npm-0.7.0-df02531736.patch "$NODE_DIR/".yarn/patches/passport-npm-0.7.0-df02531736.patch; ' +
        'install -m 0644 -o shop-prod -g shop-prod "$NEW_DIR/".yarn/releases/yarn-4.13.0.cjs "$NODE_DIR/".yarn/releases/yarn-4.13.0.cjs; ' +
        `as_app "$NODE_DIR" "${env} npm install --global --prefix $NODE_DIR/.apphost-tool --no-audit --no-fund @yarnpkg/cli-dist@4.13.0"; ` +
        `as_app "$NODE_DIR" "${env} YARN_ENABLE_PROGRESS_BARS=false YARN_ENABLE_INLINE_BUILDS=true npm_config_nodedir=/usr $NODE_DIR/.apphost-tool/bin/yarn install --immutable"; ` +
        'as_app "$NODE_DIR" "mkdir -p node_modules/.bin; ln -sfn $NODE_DIR/.apphost-tool/bin/yarn node_modules/.bin/yarn"; ' +
        'as_app "$NODE_DIR" "touch $NODE_DIR/.apphost-complete"; fi',
      'release_node_modules "$NODE_DIR"',
      'as_app "$NEW_DIR" "mkdir -p .yarn; ln -sfn $NODE_DIR/.yarn/install-state.gz .yarn/install-state.gz"',
    ]);
  });

  it("a build that names Yarn or pnpm the app's install did not bring gets it from the stack's cache/tools, first on PATH", () => {
    const build = (
      app: Partial<typeof baseApp> & { nodeDeps?: NodeDeps; buildToolVersions?: Record<string, string> },
    ) =>
      untilProgramCheck(installPhase(baseInput({ refs: literal, app: { ...baseApp, ...app } })).commands).at(
        -1,
      );
    const env =
      "npm_config_cache=/srv/shop-prod/cache/npm NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt";
    assert.equal(
      build({ build: "cd frontend && yarn install --frozen-lockfile && yarn build" }),
      'if [ -f "$NEW_DIR/.apphost-installed" ]; then note "install: dependencies and build already done for this release"; else INSTALLING=dependencies; ' +
        `if [ ! -x /srv/shop-prod/cache/tools/yarn-1.22.22/bin/yarn ]; then as_app "$NEW_DIR" "${env} npm install --global --prefix /srv/shop-prod/cache/tools/yarn-1.22.22 --no-audit --no-fund yarn@1.22.22"; fi; ` +
        `as_app "$NEW_DIR" 'export PATH="/srv/shop-prod/cache/tools/yarn-1.22.22/bin:$PATH" npm_config_nodedir=/usr; cd frontend && yarn install --frozen-lockfile && yarn build'; ` +
        'as_app "$NEW_DIR" "touch $NEW_DIR/.apphost-installed"; fi',
    );
    assert.match(
      build({ build: "(cd web && pnpm i) && yarn build" }) ?? "",
      /tools\/yarn-1\.22\.22\/bin:\/srv\/shop-prod\/cache\/tools\/pnpm-9\.15\.9\/bin:\$PATH/,
    );
    // The app's own tool is in node_modules/.bin already; npm is the host's.
    const yarnApp = {
      runtime: "node" as const,
      requirements: "yarn.lock",
      nodeDeps: { manager: "yarn" as const, lock: "yarn.lock", version: "1.22.19" },
    };
    assert.match(
      build({ ...yarnApp, build: "yarn build" }) ?? "",
      /INSTALLING=build; as_app "\$NEW_DIR" 'yarn build'; as_app/,
    );
    assert.match(
      build({ build: "npm ci && npm run build" }) ?? "",
      /INSTALLING=dependencies; as_app "\$NEW_DIR" 'npm ci && npm run build'; as_app/,
    );
    // The release a top-level package.json pins (buildToolVersions, from its packageManager).
    assert.match(
      build({
        build: "pnpm install --frozen-lockfile && pnpm run build",
        buildToolVersions: { pnpm: "10.15.1" },
      }) ?? "",
      /npm install --global --prefix \/srv\/shop-prod\/cache\/tools\/pnpm-10\.15\.1 --no-audit --no-fund pnpm@10\.15\.1"; fi; as_app "\$NEW_DIR" 'export PATH="\/srv\/shop-prod\/cache\/tools\/pnpm-10\.15\.1\/bin:\$PATH"/,
    );
    // Yarn 2 and later, as a frontend's package.json pins it: npm's @yarnpkg/cli-dist at that release.
    assert.match(
      build({
        build: "cd frontend && yarn install --immutable && yarn build",
        buildToolVersions: { yarn: "4.13.0" },
      }) ?? "",
      /npm install --global --prefix \/srv\/shop-prod\/cache\/tools\/yarn-4\.13\.0 --no-audit --no-fund @yarnpkg\/cli-dist@4\.13\.0"; fi; as_app "\$NEW_DIR" 'export PATH="\/srv\/shop-prod\/cache\/tools\/yarn-4\.13\.0\/bin:\$PATH"/,
    );
    // npm, as a frontend's package.json pins it (a lock the host's npm 9 misreads): installed as Bun is, without
    // Debian's globalignorefile, first on the build's PATH; a build that runs no npm does not get it.
    const npmPinned = { buildToolVersions: { npm: "11.21.3" } };
    assert.equal(
      build({ build: "cd frontend && npm ci && npm run build", ...npmPinned }),
      'if [ -f "$NEW_DIR/.apphost-installed" ]; then note "install: dependencies and build already done for this release"; else INSTALLING=dependencies; ' +
        `if [ ! -x /srv/shop-prod/cache/tools/npm-11.21.3/bin/npm ]; then as_app "$NEW_DIR" "${env} npm install --global --prefix /srv/shop-prod/cache/tools/npm-11.21.3 --no-audit --no-fund npm@11.21.3"; ` +
        'as_app "$NEW_DIR" "if [ -f /srv/shop-prod/cache/tools/npm-11.21.3/lib/node_modules/npm/npmrc ]; then sed -i /^globalignorefile=/d /srv/shop-prod/cache/tools/npm-11.21.3/lib/node_modules/npm/npmrc; fi"; fi; ' +
        `as_app "$NEW_DIR" 'export PATH="/srv/shop-prod/cache/tools/npm-11.21.3/bin:$PATH" npm_config_nodedir=/usr; cd frontend && npm ci && npm run build'; ` +
        'as_app "$NEW_DIR" "touch $NEW_DIR/.apphost-installed"; fi',
    );
    assert.match(
      build({ build: "python manage.py collectstatic --noinput", ...npmPinned }) ?? "",
      /INSTALLING=build; as_app "\$NEW_DIR" 'python manage\.py collectstatic --noinput'; as_app/,
    );
    // Bun (full-stack-fastapi-template's frontend): npm's bun package, its package cache in the stack's cache/bun.
    assert.equal(
      build({ build: "bun install --frozen-lockfile && cd frontend && bun run build" }),
      'if [ -f "$NEW_DIR/.apphost-installed" ]; then note "install: dependencies and build already done for this release"; else INSTALLING=dependencies; ' +
        `if [ ! -x /srv/shop-prod/cache/tools/bun-1.4.5/bin/bun ]; then as_app "$NEW_DIR" "${env} npm install --global --prefix /srv/shop-prod/cache/tools/bun-1.4.5 --no-audit --no-fund bun@1.4.5"; fi; ` +
        `as_app "$NEW_DIR" 'export PATH="/srv/shop-prod/cache/tools/bun-1.4.5/bin:$PATH" npm_config_nodedir=/usr BUN_INSTALL_CACHE_DIR=/srv/shop-prod/cache/bun; bun install --frozen-lockfile && cd frontend && bun run build'; ` +
        'as_app "$NEW_DIR" "touch $NEW_DIR/.apphost-installed"; fi',
    );
    assert.match(
      build({ build: "bunx vite build", buildToolVersions: { bun: "1.3.5" } }) ?? "",
      /--prefix \/srv\/shop-prod\/cache\/tools\/bun-1\.3\.5 --no-audit --no-fund bun@1\.3\.5"; fi; as_app "\$NEW_DIR" 'export PATH="\/srv\/shop-prod\/cache\/tools\/bun-1\.3\.5\/bin:\$PATH" npm_config_nodedir=\/usr BUN_INSTALL_CACHE_DIR=\/srv\/shop-prod\/cache\/bun; bunx vite build'/,
    );
    assert.throws(
      () => build({ build: "pnpm build", buildToolVersions: { pnpm: "10; rm -rf /" } }),
      /pnpm's version/,
    );
    assert.deepEqual(
      [
        "yarn",
        "yarn build",
        "cd web;yarn",
        "pnpm -C web build",
        "yarnpkg build",
        "npx yarn-audit",
        "echo yarn's",
        "(cd web && bun install) && bunx vite build",
        "bunx vite build",
        "npx bundle",
      ].map(buildTools),
      [["yarn"], ["yarn"], ["yarn"], ["pnpm"], [], [], [], ["bun"], ["bun"], []],
    );
  });

  it("npmWithoutLockWarning: a build's npm install where no lock is, named with its directory; run under bash", () => {
    assert.deepEqual(
      [
        "npm ci && npm run build",
        "npm install left-pad && npm run build",
        "yarn install && yarn build",
        "npm run build",
      ].map(npmWithoutLockWarning),
      [[], [], [], []],
    );
    const [root] = npmWithoutLockWarning("npm install && npm run build");
    assert.equal(
      root,
      'if [ ! -f "$NEW_DIR"/package-lock.json ] && [ ! -f "$NEW_DIR"/npm-shrinkwrap.json ]; then note ' +
        "'warning: apphost:app.build runs npm install in the release with no package-lock.json there: npm resolves " +
        "its dependencies anew for each release, which may build with versions no one tried; commit the lock (npm " +
        "install --package-lock-only) and run npm ci instead'; fi",
    );
    const [frontend] = npmWithoutLockWarning("cd frontend && npm i --no-audit && npm run build");
    assert.match(
      frontend,
      /^if \[ ! -f "\$NEW_DIR\/frontend"\/package-lock\.json \] .* runs npm install in frontend\/ with/,
    );
    // Under bash: said without a lock, silent with one.
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-npm-lock-"));
    try {
      fs.mkdirSync(path.join(tmp, "frontend"));
      const run = () =>
        spawnSync("bash", ["-c", `set -eu; note() { printf '%s\\n' "$*"; }; NEW_DIR=${tmp}; ${frontend}`], {
          encoding: "utf8",
        }).stdout;
      assert.match(run(), /^warning: apphost:app\.build runs npm install in frontend\//);
      fs.writeFileSync(path.join(tmp, "frontend", "package-lock.json"), "{}");
      assert.equal(run(), "");
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("installsPackages: a build that installs packages keeps the missing-compiler hint; one that runs the app's tools does not", () => {
    const table: Array<[string, boolean]> = [
      ["npm ci && npm run build", true],
      ["cd web && yarn && yarn build", true],
      ["yarn install --frozen-lockfile", true],
      ["pip install -e .", true],
      ["python -m pip install -r requirements/build.txt", true],
      ["uv sync", true],
      ["(npm i)", true],
      ["bun install --frozen-lockfile && bun run build", true],
      ["npm run build -w frontend", false],
      ["bun run build", false],
      ["yarn build", false],
      ["python manage.py collectstatic --noinput", false],
      ["echo pipeline install", false],
    ];
    assert.deepEqual(
      table.map(([command]) => [command, installsPackages(command)]),
      table,
    );
  });

  it("a Django migration brings the SECRET_KEY check, last, with its manage.py; another tool, a follower or node none", () => {
    const last = (database: Partial<typeof baseDatabase>, more: Partial<ReleaseInput> = {}) =>
      installPhase(
        baseInput({ refs: literal, database: { ...baseDatabase, ...database }, ...more }),
      ).commands.at(-1);
    assert.equal(
      last({ migrate: "cd backend && python manage.py migrate --noinput" }),
      "secret_key_check 'cd backend && python manage.py'",
    );
    assert.equal(last({ migrate: "django-admin migrate" }), "secret_key_check django-admin");
    const none = [
      last({ migrate: "alembic upgrade head" }),
      last({ migrate: "python manage.py migrate" }, { follower: true }),
      last({ migrate: "python manage.py migrate", kind: "none" }),
      last(
        { migrate: "python manage.py migrate" },
        { app: { ...baseApp, runtime: "node", requirements: "package-lock.json" } },
      ),
    ];
    assert.deepEqual(
      none.filter((c) => c?.includes("secret_key_check")),
      [],
    );
  });

  it("an alembic migration's failure reads its ini and env.py for the URL hint, where alembic runs; another tool's not", () => {
    const hint = (migrate: string) =>
      migratePhase(baseInput({ refs: literal, database: { ...baseDatabase, migrate } }))
        .commands.join("\n")
        .match(/alembic_url_hint [^)]*/g);
    assert.deepEqual(hint("alembic upgrade head"), ["alembic_url_hint alembic.ini ."]);
    assert.deepEqual(hint("cd backend && alembic -c conf/alembic.ini upgrade head"), [
      "alembic_url_hint backend/conf/alembic.ini backend",
    ]);
    assert.equal(hint("flask db upgrade"), null);
  });

  it("a Postgres migration that could not reach or log in to its database looks for the app's own variables (database_env_hint)", () => {
    const hint = (kind: DatabaseConfig["kind"], runtime: "python" | "node" = "python") =>
      migratePhase(
        baseInput({
          refs: literal,
          app: { ...baseApp, runtime },
          database: { ...baseDatabase, kind, migrate: "python manage.py migrate --noinput" },
        }),
      )
        .commands.join("\n")
        .match(/if \[ -z "\$MIGRATE_HINT" \] && [^;]*; then MIGRATE_HINT=\$\(database_env_hint\); fi/g);
    for (const kind of ["postgres", "rds", "external"] as const) {
      assert.deepEqual(hint(kind), [
        'if [ -z "$MIGRATE_HINT" ] && runuser -u "$APP_USER" -- grep -qiE "$DB_UNREACHABLE" "$MIGRATE_LOG" 2>/dev/null; ' +
          "then MIGRATE_HINT=$(database_env_hint); fi",
      ]);
    }
    assert.equal(hint("sqlite"), null);
    // A Node app's too, its MIGRATE_HINT shown the same way.
    const node = migratePhase(
      baseInput({
        refs: literal,
        app: { ...baseApp, runtime: "node" },
        database: { ...baseDatabase, kind: "postgres" },
      }),
    ).commands.join("\n");
    assert.ok(
      node.includes(
        'cat "$MIGRATE_LOG" | error_line)" migration); ' +
          // A refused login's hint gives way to the app's own variables, where database_env_hint finds them.
          `MIGRATE_WEAK=""; if [[ $MIGRATE_HINT == 'Postgres refused the app'\\''s login':* ]]; then MIGRATE_WEAK=$MIGRATE_HINT MIGRATE_HINT=""; fi; ` +
          'if [ -z "$MIGRATE_HINT" ] && runuser -u "$APP_USER" -- grep -qiE "$DB_UNREACHABLE" "$MIGRATE_LOG" 2>/dev/null; ' +
          "then MIGRATE_HINT=$(database_env_hint); fi; MIGRATE_HINT=${MIGRATE_HINT:-$MIGRATE_WEAK}; " +
          'if [ -n "$MIGRATE_HINT" ]; then MIGRATE_HINT=$\'\\n\'"($MIGRATE_HINT)"; fi; die ',
      ),
      node,
    );
    assert.ok(
      !migratePhase(baseInput({ refs: literal, app: { ...baseApp, runtime: "node" } }))
        .commands.join("\n")
        .includes("database_env_hint"),
    );
  });

  it("an alembic or Flask-Migrate migration has its versions directory checked for a revision, where it runs; another tool's not", () => {
    const check = (migrate: string, more: Partial<ReleaseInput> = {}) =>
      installPhase(
        baseInput({ refs: literal, database: { ...baseDatabase, migrate }, ...more }),
      ).commands.filter((c) => /^(alembic_)?revisions_check /.test(c));
    assert.deepEqual(check("cd src && alembic upgrade head"), [
      "alembic_revisions_check src/alembic.ini src",
    ]);
    assert.deepEqual(check("alembic upgrade head"), ["alembic_revisions_check alembic.ini ."]);
    assert.deepEqual(check("cd app && flask db upgrade -d db/migrations"), [
      "revisions_check app/db/migrations 'flask db migrate -m \"initial tables\"'",
    ]);
    assert.deepEqual(check("python manage.py migrate"), []);
    assert.deepEqual(check("alembic upgrade head", { follower: true }), []);
  });

  it("a migration named as a database's creation has the release checked for dropped tables; a migration tool's not", () => {
    const check = (migrate: string) =>
      installPhase(baseInput({ refs: literal, database: { ...baseDatabase, migrate } })).commands.filter(
        (c) => c.startsWith("drop_tables_check"),
      );
    assert.deepEqual(check("flask --app flaskr init-db"), ["drop_tables_check 'flask --app flaskr init-db'"]);
    assert.deepEqual(check("python manage.py create_db"), ["drop_tables_check 'python manage.py create_db'"]);
    assert.deepEqual(check("python -m app reset-database"), [
      "drop_tables_check 'python -m app reset-database'",
    ]);
    // One word between (sequelize/express-example's script).
    assert.deepEqual(check("npm run setup-example-db"), ["drop_tables_check 'npm run setup-example-db'"]);
    for (const migrate of [
      "flask db upgrade",
      "alembic upgrade head",
      "python manage.py migrate",
      "npm run db:migrate",
    ])
      assert.deepEqual(check(migrate), [], migrate);
  });

  it("a stack with a database and no migration checks the release for a migration tool's files; not on a follower", () => {
    const has = (database: Partial<typeof baseDatabase>, more: Partial<ReleaseInput> = {}) =>
      installPhase(
        baseInput({ refs: literal, database: { ...baseDatabase, ...database }, ...more }),
      ).commands.find((c) => c.startsWith("migration_unset_check"));
    assert.deepEqual(
      [
        has({ migrate: "" }),
        has({ migrate: "", kind: "postgres" }),
        has({ migrate: "alembic upgrade head" }),
        has({ migrate: "", kind: "none" }),
        has({ migrate: "" }, { follower: true }),
      ],
      ["migration_unset_check 1", "migration_unset_check 1", undefined, undefined, undefined],
    );
    // 0 where a command of the stack's runs collectstatic (the build), which Django's checks then leave out.
    assert.equal(
      has({ migrate: "" }, { app: { ...baseApp, build: "python manage.py collectstatic --noinput" } }),
      "migration_unset_check 0",
    );
  });

  it("a Django migration brings the STATIC_ROOT check before the SECRET_KEY one, unless a command apphost runs calls collectstatic", () => {
    const checks = (database: Partial<typeof baseDatabase>, app: Partial<typeof baseApp> = {}) =>
      installPhase(
        baseInput({ refs: literal, database: { ...baseDatabase, ...database }, app: { ...baseApp, ...app } }),
      ).commands.filter((c) => /^(static_root|secret_key)_check /.test(c));
    assert.deepEqual(checks({ migrate: "cd backend && python manage.py migrate --noinput" }), [
      "static_root_check 'cd backend && python manage.py'",
      "secret_key_check 'cd backend && python manage.py'",
    ]);
    const collected = [
      checks({ migrate: "python manage.py migrate" }, { build: "python manage.py collectstatic --noinput" }),
      checks({ migrate: "python manage.py migrate && python manage.py collectstatic --noinput" }),
      checks(
        { migrate: "python manage.py migrate" },
        {
          processes: [
            {
              ...baseApp.processes[0],
              command: "sh -c 'python manage.py collectstatic --noinput && gunicorn x.wsgi'",
            },
          ],
        },
      ),
    ];
    assert.deepEqual(collected, Array(3).fill(["secret_key_check 'python manage.py'"]));
    assert.deepEqual(checks({ migrate: "alembic upgrade head" }, { build: "npm run build" }), []);
  });

  it("apphost:app.build on a python app runs after the venv", () => {
    const cmds = installPhase(
      baseInput({ refs: literal, app: { ...baseApp, build: "npm ci && npm run build" } }),
    ).commands;
    assert.equal(
      untilProgramCheck(cmds).at(-1),
      'if [ -f "$NEW_DIR/.apphost-installed" ]; then note "install: dependencies and build already done for this release"; else INSTALLING=dependencies; as_app "$NEW_DIR" \'npm ci && npm run build\'; as_app "$NEW_DIR" "touch $NEW_DIR/.apphost-installed"; fi',
    );
  });

  it("apphost:database.migrate empty: migrate is skipped, logged", () => {
    const m = migratePhase(
      baseInput({ refs: literal, database: { ...baseDatabase, migrate: "", revision: "" } }),
    );
    assert.deepEqual(m.commands, [
      `NEW_DIR="/srv/shop-prod/releases/${ID}"`,
      "MIGRATE_T0=${EPOCHREALTIME/,/.}",
      'note "migrate: no apphost:database.migrate command; skipping"',
    ]);
  });

  it("apphost:database.revision empty: the schema's fingerprint before and after, as the revision; none with no database", () => {
    const m = migratePhase(baseInput({ database: { ...baseDatabase, revision: "" } }));
    assert.equal(m.commands[4], 'REVISION_BEFORE=$(schema_revision "$DB_FP_BEFORE")');
    assert.ok(m.commands.includes('REVISION=$(schema_revision "$(db_fingerprint)")'), m.commands.join("\n"));
    assert.ok(!m.commands.some((c) => c.includes("app_revision")));
    const none = migratePhase(baseInput({ database: { ...baseDatabase, kind: "none", revision: "" } }));
    assert.ok(!none.commands.some((c) => c.includes("schema_revision")), none.commands.join("\n"));
  });

  it("a SQLite database written inside the release: what to do depends on apphost:database.kind", () => {
    const who = { shell: '"the migration (x)"' };
    /** The check run under bash, the release script's functions stubbed: what it dies with, after "pruned. ". */
    const advice = (kind: DatabaseConfig["kind"], envHint = "") => {
      const r = spawnSync(
        "bash",
        [
          "-c",
          [
            "set -eu",
            "stray_databases() { echo hc.sqlite; }",
            'database_env_hint() { printf %s "$HINT"; }',
            'die() { printf %s "$1"; exit 0; }',
            "MIGRATE_T0=1 NEW_DIR=/srv/shop-prod/releases/1",
            strayDatabaseCheck(baseInput({ database: { ...baseDatabase, kind } }), who),
          ].join("\n"),
        ],
        { encoding: "utf8", env: { ...process.env, HINT: envHint } },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.ok(
        r.stdout.startsWith(
          "the migration (x) wrote a SQLite database inside the release directory /srv/shop-prod/releases/1: hc.sqlite. " +
            "The next release is a new directory, so its data would stay behind there, and go when this release is pruned. ",
        ),
        r.stdout,
      );
      return /pruned\. (.*)\.$/.exec(r.stdout)?.[1];
    };
    // The variables of its own the app reads its Postgres from, where database_env_hint finds them.
    assert.equal(
      advice(
        "postgres",
        "the app's Python reads its database from DB_HOST (hc/settings.py:7), not DATABASE_URL",
      ),
      "apphost:database.kind is postgres: the app's Python reads its database from DB_HOST (hc/settings.py:7), not DATABASE_URL",
    );
    assert.equal(
      advice("sqlite", "not asked"),
      "Open it where DATABASE_URL says (sqlite:////srv/shop-prod/shared/data/app.db), or as data/<file> in the release " +
        "(data/ links to /srv/shop-prod/shared/data) and set apphost:database.sqliteFile to <file>, so backups and restores take it",
    );
    assert.equal(
      advice("none"),
      "Set apphost:database.kind to sqlite and open the database where DATABASE_URL says (in the shared data directory, " +
        "backed up before every migration), or as data/<file> in the release with apphost:database.sqliteFile set to <file>",
    );
    for (const kind of ["postgres", "rds", "external"] as const) {
      assert.equal(
        advice(kind),
        `apphost:database.kind is ${kind}: make the app read DATABASE_URL (Postgres) instead of a SQLite file (Django: dj-database-url)`,
      );
    }
  });

  it("apphost:database.kind none: no backup, no restore", () => {
    const input = baseInput({ database: { ...baseDatabase, kind: "none", migrate: "" } });
    assert.match(phase(input, "backup").description, /No database configured/);
    assert.deepEqual(mirrorPhases(input)[1].commands, ['note "rollback: no database"']);
  });

  it("no web process: publish and the gate only switch current and restart workers", () => {
    const input = baseInput({
      app: { ...baseApp, processes: [{ name: "worker", command: "x", kind: "worker" }] },
    });
    assert.deepEqual(publishPhase(input).commands, [
      'note "publish: no web process in apphost:app.processes"',
    ]);
    assert.deepEqual(healthGatePhase(input).commands, [
      "SWITCHED=1",
      'live_env_set "$ENV_FILE"',
      'live_dropin_write "/etc/systemd/system/apphost-shop-prod-worker.service.d/apphost-command.conf" "${DROPINS[worker]}"',
      "systemctl daemon-reload",
      'atomic_link "/srv/shop-prod/releases/$RELEASE_ID" /srv/shop-prod/current',
      "systemctl enable --quiet apphost-shop-prod-worker.service",
      "unit_restart apphost-shop-prod-worker.service",
      "workers_note_restarts apphost-shop-prod-worker.service",
      "COMMITTED=1",
      "workers_check deploy",
    ]);
  });

  it("test hooks replace the commands at render time", () => {
    const p = publishPhase(baseInput({ refs: literal, tools: { systemctl: "/tmp/fake/systemctl" } }));
    assert.equal(p.commands[3], "/tmp/fake/systemctl daemon-reload");
    assert.equal(p.commands[6], '/tmp/fake/systemctl enable --quiet "apphost-shop-prod-web@8001.service"');
  });
});

describe("release phases: refused input", () => {
  it("names the key and the fix", () => {
    assert.throws(
      () => deployPhases(baseInput({ releases: { ...baseReleases, keep: 1, drainSeconds: -1 } })),
      /apphost:releases.keep must be a whole number >= 2, got 1\napphost:releases.drainSeconds must be a whole number >= 0, got -1/,
    );
    assert.throws(
      () =>
        deployPhases(
          baseInput({
            app: {
              ...baseApp,
              processes: [
                { name: "web", command: "a", kind: "web" },
                { name: "api", command: "b", kind: "web" },
              ],
            },
          }),
        ),
      /only one process can be kind "web" .*found web, api/,
    );
    assert.throws(
      () => deployPhases(baseInput({ layout: { ...hostLayout("shop", "prod"), root: "/srv/my shop" } })),
      /layout.root: "\/srv\/my shop" is not an absolute path of letters/,
    );
    assert.throws(
      () => deployPhases(baseInput({ app: { ...baseApp, requirements: "../x.txt" } })),
      /apphost:app.requirements: "..\/x.txt" is not a relative path inside the app/,
    );
    assert.throws(
      () => healthGatePhase(baseInput({ app: { ...baseApp, healthPath: "healthz" } })),
      /apphost:app.healthPath/,
    );
  });
});

describe("release backup commands", () => {
  const input = (database: Partial<DatabaseConfig> = {}) => ({
    layout: hostLayout("shop", "prod"),
    database: { ...baseDatabase, ...database },
    backups: { schedule: "daily", keep: 7 },
  });

  it("sqlite: online .backup, integrity check, atomic rename", () => {
    assert.deepEqual(backupCommands(input()), [
      'local stamp check=""',
      'BACKUP_FILE=""',
      'if [ ! -f /srv/shop-prod/shared/data/app.db ]; then note "backup: no database yet at /srv/shop-prod/shared/data/app.db; nothing to back up"; return 0; fi',
      "[ -d /srv/shop-prod/shared/backups ] || install -d -m 0700 /srv/shop-prod/shared/backups",
      "stamp=$(date -u +%Y%m%dT%H%M%S.%3NZ)",
      'BACKUP_FILE=/srv/shop-prod/shared/backups/app-"$stamp"-"$1".db',
      'if [ -e "$BACKUP_FILE" ]; then BACKUP_FILE=/srv/shop-prod/shared/backups/app-"$stamp"-"$1"-$$.db; fi',
      'rm -f "$BACKUP_FILE.tmp"',
      "sqlite3 -bail -cmd '.timeout 30000' /srv/shop-prod/shared/data/app.db \".backup '$BACKUP_FILE.tmp'\"",
      "db_fix_owner",
      "check=$(sqlite3 -bail -cmd '.timeout 30000' \"$BACKUP_FILE.tmp\" 'PRAGMA integrity_check;' 2>&1) || true",
      'if [ "$check" != ok ]; then rm -f "$BACKUP_FILE.tmp"; fail "backup: integrity check of the copy failed: $check"; fi',
      'chmod 0600 "$BACKUP_FILE.tmp"',
      'mv -f "$BACKUP_FILE.tmp" "$BACKUP_FILE"',
      'note "backup: database copied to $BACKUP_FILE (integrity ok)"',
    ]);
    // db_restore verifies the backup with db_verify_backup (the same check a restore runs before it stops anything).
    assert.deepEqual(verifyBackupCommands(input()).slice(2), [
      "check=$(sqlite3 -bail -cmd '.timeout 30000' \"$1\" 'PRAGMA integrity_check;' 2>&1) || true",
      'if [ "$check" != ok ]; then fail "restore: $1 fails its integrity check: $check"; fi',
    ]);
    assert.deepEqual(restoreCommands(input()).slice(1, 3), [
      'db_verify_backup "$file"',
      "sqlite3 -bail -cmd '.timeout 30000' /srv/shop-prod/shared/data/app.db \".restore '$file'\"",
    ]);
    assert.deepEqual(pruneBackupsCommands(input()), [
      'local old cur=""',
      'if [ -L /srv/shop-prod/current ]; then cur=$(basename "$(readlink /srv/shop-prod/current)"); fi',
      "if [ ! -d /srv/shop-prod/shared/backups ]; then return 0; fi",
      "find /srv/shop-prod/shared/backups -maxdepth 1 -type f -name 'app-*.db' -printf '%f\\n' | sort -r | tail -n +8 | while IFS= read -r old; do",
      '  if [ "/srv/shop-prod/shared/backups/$old" = "$BACKUP_FILE" ]; then continue; fi',
      // pre-<id> of the live release or a newer one (a deploy under way, or failed and retried) stays.
      '  if [[ "$old" =~ -pre-([0-9]{14}-[0-9a-f]{8})(-[0-9]+)?\\.db$ ]] && ! [[ "${BASH_REMATCH[1]}" < "$cur" ]]; then continue; fi',
      '  rm -f -- /srv/shop-prod/shared/backups/"$old"; note "backup: pruned $old (apphost:backups.keep = 7)"',
      "done",
    ]);
  });

  it("postgres: pg_dump -Fc as the postgres user, verified with pg_restore --list", () => {
    const cmds = backupCommands(input({ kind: "postgres" }));
    assert.equal(
      cmds[2],
      'if [ "$(runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = \'shop_prod\'")" != 1 ]; then note "backup: no database shop_prod yet; nothing to back up"; return 0; fi',
    );
    assert.ok(
      cmds.includes(
        '(umask 077 && runuser -u postgres -- pg_dump --format=custom --no-owner --dbname=shop_prod >"$BACKUP_FILE.tmp")',
      ),
    );
    assert.ok(cmds.some((c) => c.startsWith('if ! check=$(pg_restore --list "$BACKUP_FILE.tmp"')));
    // The restore drops everything the role owns and replays the dump in one transaction, COMMIT only after a whole dump.
    assert.deepEqual(restoreCommands(input({ kind: "postgres" })), [
      'local file=$1 out=""',
      'db_verify_backup "$file"',
      "if ! out=$( { printf 'BEGIN;\\nDROP OWNED BY %s CASCADE;\\n' shop_prod; pg_restore --list \"$file\" | grep -v '^[0-9]*; [0-9]* [0-9]* COMMENT - EXTENSION ' | pg_restore --no-owner --role=shop_prod --use-list=/dev/stdin --file=- \"$file\" && printf 'COMMIT;\\n'; } | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 --dbname=shop_prod 2>&1 >/dev/null); then fail \"restore: pg_restore of $file into shop_prod failed (the database is as it was): $out\"; fi",
      'note "restore: database restored from $file"',
    ]);
    // pg_dump's \restrict lines carry a random key: left out, or every fingerprint would differ.
    assert.deepEqual(
      fingerprintCommands(input({ kind: "postgres" }))[2],
      "sum=$(runuser -u postgres -- pg_dump --schema-only --no-owner --dbname=shop_prod | grep -Ev '^\\\\(un)?restrict ' | sha256sum) || return",
    );
  });

  it("rds: dumps, fingerprints and restores as the app's role, from the env file's DATABASE_URL, in subshells", () => {
    const rds = input({ kind: "rds" });
    assert.ok(
      backupCommands(rds).includes(
        'if ! check=$( (umask 077 && (db_pg_connect && pg_dump --format=custom --no-owner) >"$BACKUP_FILE.tmp") 2>&1); then',
      ),
    );
    assert.equal(
      backupCommands(rds).some((c) => c.includes("runuser")),
      false,
      "no local postgres user on an RDS stack",
    );
    assert.deepEqual(fingerprintCommands(rds), [
      "local sum",
      "sum=$( (db_pg_connect && pg_dump --schema-only --no-owner) | grep -Ev '^\\\\(un)?restrict ' | sha256sum) || return",
      "printf '%s\\n' \"${sum%% *}\"",
    ]);
    assert.equal(
      restoreCommands(rds)[2],
      String.raw`if ! out=$( (db_pg_connect && { printf '%s\n' 'BEGIN;' 'DROP SCHEMA public CASCADE;' 'CREATE SCHEMA public AUTHORIZATION pg_database_owner;' 'GRANT USAGE ON SCHEMA public TO PUBLIC;' 'COMMENT ON SCHEMA public IS '\''standard public schema'\'';' 'DO '\''DECLARE s name; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspowner = current_user::regrole LOOP EXECUTE format('\'''\''DROP SCHEMA %I CASCADE'\'''\'', s); END LOOP; END'\'';'; pg_restore --list "$file" | grep -v '^[0-9]*; [0-9]* [0-9]* COMMENT - EXTENSION ' | pg_restore --no-owner --use-list=/dev/stdin --file=- "$file" && printf 'COMMIT;\n'; } | psql -X -q -v ON_ERROR_STOP=1) 2>&1 >/dev/null); then fail "restore: pg_restore of $file into shop_prod failed (the database is as it was): $out"; fi`,
    );
    // db_pg_connect reads the env file (never sources it) and exports libpq's variables.
    const fns = databaseFunctions(rds);
    assert.ok(
      fns.includes(
        "db_pg_connect() {\n  local url rest cred where hostport\n  url=$(sed -n 's/^DATABASE_URL=\"\\(.*\\)\"$/\\1/p' /etc/apphost/shop-prod.env | tail -n 1)\n",
      ),
      fns,
    );
    assert.ok(fns.includes("\n  export PGSSLMODE=require PGCONNECT_TIMEOUT=10\n"));
    assert.equal(fns.includes(". /etc/apphost"), false, "the env file is sourced");
  });

  it("external: a server newer than the host's pg_dump fails the backup saying what to do; other messages pass through (real bash)", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-pgdump-"));
    try {
      const layout = { ...hostLayout("shop", "prod"), backups: path.join(tmp, "backups") };
      const cmds = backupCommands({ ...input({ kind: "external" }), layout });
      fs.mkdirSync(path.join(tmp, "bin"));
      // A stand-in pg_dump: what PG_DUMP_SAYS says on stderr, then its status; a dump on stdout when it succeeds.
      fs.writeFileSync(
        path.join(tmp, "bin", "pg_dump"),
        '#!/bin/sh\nprintf "%s\\n" "$PG_DUMP_SAYS" >&2\n[ "$PG_DUMP_STATUS" = 0 ] && printf dump\nexit "$PG_DUMP_STATUS"\n',
        { mode: 0o755 },
      );
      fs.writeFileSync(path.join(tmp, "bin", "pg_restore"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      const script = [
        "set -euo pipefail",
        'fail() { echo "FAIL: $*" >&2; exit 7; }',
        'note() { echo "note: $*" >&2; }',
        "db_pg_connect() { :; }",
        `db_backup() {\n${cmds.join("\n")}\n}`,
        'db_backup pre-x; echo "file=$BACKUP_FILE"',
      ].join("\n");
      const run = (says: string, status: number) =>
        spawnSync("bash", ["-c", script], {
          encoding: "utf8",
          env: {
            ...process.env,
            PATH: `${tmp}/bin:${process.env.PATH}`,
            PG_DUMP_SAYS: says,
            PG_DUMP_STATUS: String(status),
          },
        });
      const mismatch =
        "pg_dump: error: aborting because of server version mismatch\npg_dump: detail: server version: 17.2; pg_dump version: 15.14";
      const r = run(mismatch, 1);
      assert.equal(r.status, 7, r.stderr);
      assert.equal(
        r.stderr,
        `FAIL: backup: ${mismatch}; the database server is newer than this host's pg_dump, which takes the stack's backups ` +
          "(a release stops at this one, before its migration). On ec2 set apphost:host.os to debian-13 (pg_dump 17); on an existing " +
          "host install the postgresql-client package of the server's major version from the PostgreSQL apt repository " +
          "(apt.postgresql.org), whose pg_dump is then used\n",
      );
      assert.deepEqual(fs.readdirSync(layout.backups), [], "the partial dump was left behind");
      const other = run("pg_dump: error: connection to server failed: timeout expired", 1);
      assert.equal(other.status, 7);
      assert.equal(
        other.stderr,
        "FAIL: backup: pg_dump failed: pg_dump: error: connection to server failed: timeout expired\n",
      );
      // A dump that succeeds with a warning: the warning is printed, the dump kept.
      const ok = run("pg_dump: warning: there are circular foreign-key constraints", 0);
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(
        ok.stderr,
        /^pg_dump: warning: there are circular foreign-key constraints\nnote: backup: database dumped to /,
      );
      const file = /^file=(.+)$/m.exec(ok.stdout)?.[1] ?? "";
      assert.equal(fs.readFileSync(file, "utf8"), "dump");
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it("the schema fingerprint ignores data written by the live release", () => {
    assert.deepEqual(fingerprintCommands(input()), [
      "if [ ! -f /srv/shop-prod/shared/data/app.db ]; then echo absent; return 0; fi",
      "local sum",
      "sum=$(sqlite3 -bail -cmd '.timeout 30000' /srv/shop-prod/shared/data/app.db 'PRAGMA user_version; SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name;' | sha256sum) || return",
      "printf '%s\\n' \"${sum%% *}\"",
    ]);
  });

  it("apphost:backups.s3: copies the new backup with awscli, SSE, a timeout, and reports a failure", () => {
    const target = { bucket: "shop-prod-20250101abcdef", region: "eu-central-1", prefix: "shop/prod/" };
    assert.deepEqual(copyOffsiteCommands(target), [
      'local file=$1 url out=""',
      'if [ -z "$file" ]; then return 0; fi',
      'url=s3://shop-prod-20250101abcdef/shop/prod/"$(basename "$file")"',
      'if out=$(timeout 900 aws s3 cp --region eu-central-1 --sse AES256 --only-show-errors --no-progress --cli-connect-timeout 10 "$file" "$url" 2>&1); then',
      '  note "backup: copied to $url"',
      "  return 0",
      "fi",
      'note "warning: backup: the copy of $file to $url failed (apphost:backups.s3): ${out:-timed out or no output}"',
      "return 1",
    ]);
    // The function exists only when there is a bucket and a database.
    assert.ok(databaseFunctions({ ...input(), s3: target }).includes("\ndb_copy_offsite() {\n"));
    assert.ok(!databaseFunctions(input()).includes("db_copy_offsite"));
    assert.ok(!databaseFunctions({ ...input({ kind: "none" }), s3: target }).includes("db_copy_offsite"));
    // Baked into the script unquoted: anything but a real bucket, region and prefix is refused.
    assert.throws(
      () => assertS3Target({ bucket: "Bad_Bucket", region: "eu-central-1; rm -rf /", prefix: "../" }),
      /bucket: "Bad_Bucket" is not an S3 bucket name\n {2}- the AWS region: "eu-central-1; rm -rf \/" is not an AWS region\n {2}- the key prefix: "\.\.\/" is not an S3 key prefix/,
    );
  });

  it("refuses a database file outside its directory and fewer than two backups kept", () => {
    assert.throws(() => backupCommands(input({ sqliteFile: "../x.db" })), /apphost:database.sqliteFile/);
    assert.throws(
      () => pruneBackupsCommands({ ...input(), backups: { keep: 1 } }),
      /apphost:backups.keep must be a whole number >= 2/,
    );
  });
});

describe("restore of a deployed app (apphost-release restore)", () => {
  const web = "apphost-shop-prod-web@${RESTORE_PORT}.service";
  it("verifies the backup before it takes the lock or stops anything; stops the worker, then the web instance", () => {
    const cmds = cmdRestoreCommands(baseInput());
    const at = (c: string) => {
      const i = cmds.indexOf(c);
      assert.ok(i >= 0, `missing: ${c}`);
      return i;
    };
    const verify = at('db_verify_backup "$file"');
    const lock = at("lock_acquire 30");
    const stopWorker = at("systemctl stop apphost-shop-prod-worker.service");
    const stopWeb = at(`if [ -n "$RESTORE_PORT" ]; then systemctl stop "${web}"; fi`);
    const save = at("db_backup pre-restore");
    const restore = at('db_restore "$file"');
    const start = at("restore_start");
    assert.ok(verify < lock && lock < stopWorker && stopWorker < stopWeb && stopWeb < save && save < restore);
    assert.ok(restore < start && start < at("RESTORING=0"));
    // A worker that does not stay up on the restored database: a warning once the restore is done.
    assert.equal(cmds.at(-1), "workers_check restore");
    assert.ok(at('note "phase restore: ok"') < at("workers_check restore"));
    assert.ok(
      at("RESTORING=1") < at("UNITS_STOPPED=1") &&
        at("UNITS_STOPPED=1") < stopWorker &&
        at("DB_REPLACED=1") < restore,
    );
  });

  it("starts the web instance on the port it stopped, then the workers, and gates on the health path", () => {
    assert.deepEqual(restoreStartCommands(baseInput()), [
      `if [ -n "$RESTORE_PORT" ]; then systemctl start "${web}"; fi`,
      "systemctl start apphost-shop-prod-worker.service",
      "workers_note_restarts apphost-shop-prod-worker.service",
      `if [ -n "$RESTORE_PORT" ] && ! health_wait "http://127.0.0.1:$RESTORE_PORT/healthz" "${web}" 60; then die "${web} did not answer 2xx on http://127.0.0.1:$RESTORE_PORT/healthz after the restore (last answer: $HEALTH_LAST)"; fi`,
    ]);
  });

  it("stops each scheduled job's timer and any run under way with the app, and starts the timers before the health wait", () => {
    const schedules = [
      { name: "report", command: "python report.py", onCalendar: "daily", timeoutSeconds: 3600 },
      { name: "sync", command: "python sync.py", onCalendar: "hourly", timeoutSeconds: 600 },
    ];
    const input = baseInput({ app: { ...baseApp, schedules } });
    const cmds = cmdRestoreCommands(input);
    const report = "apphost-shop-prod-schedule-report";
    const sync = "apphost-shop-prod-schedule-sync";
    assert.ok(
      cmds.includes(
        `note "restore: stopping apphost-shop-prod-worker.service ${web} ${report}.timer ${report}.service ${sync}.timer ${sync}.service (requests get 502 until the app is back)"`,
      ),
      cmds.join("\n"),
    );
    // The timer first; a run under way may end by itself (up to the job's timeout, at most 60 s), then it is stopped.
    const stops = [
      `systemctl stop ${report}.timer`,
      `run_settle ${report}.service 60`,
      `systemctl stop ${sync}.timer`,
      `run_settle ${sync}.service 60`,
    ];
    const at = stops.map((c) => cmds.indexOf(c));
    assert.deepEqual(
      at.map((i) => i - at[0]),
      [0, 1, 2, 3],
      cmds.join("\n"),
    );
    assert.ok(at[0] > cmds.indexOf("UNITS_STOPPED=1") && at[3] < cmds.indexOf("db_backup pre-restore"));
    const quick = { ...schedules[1], timeoutSeconds: 20 };
    assert.ok(
      cmdRestoreCommands(baseInput({ app: { ...baseApp, schedules: [quick] } })).includes(
        `run_settle ${sync}.service 20`,
      ),
    );
    const start = restoreStartCommands(input);
    assert.deepEqual(start.slice(2, 4), [
      "workers_note_restarts apphost-shop-prod-worker.service",
      `systemctl start ${report}.timer ${sync}.timer`,
    ]);
    assert.match(start[4], /health_wait/);
    // A follower runs no scheduled job: nothing of them to stop or start.
    const follower = baseInput({ app: { ...baseApp, schedules }, follower: true });
    assert.doesNotMatch(
      [...cmdRestoreCommands(follower), ...restoreStartCommands(follower)].join("\n"),
      /schedule/,
    );
  });

  it("an app with only workers: no web instance to stop, start or health-check", () => {
    const app = { ...baseApp, processes: baseApp.processes.filter((p) => p.kind === "worker") };
    assert.deepEqual(restoreStartCommands(baseInput({ app })), [
      "systemctl start apphost-shop-prod-worker.service",
      "workers_note_restarts apphost-shop-prod-worker.service",
    ]);
    assert.doesNotMatch(cmdRestoreCommands(baseInput({ app })).join("\n"), /web@/);
  });
});

describe("release phases: the program a command starts (the install phase looks for it)", () => {
  const cases: [string, ReturnType<typeof leadingProgram>][] = [
    ["gunicorn hc.wsgi", { program: "gunicorn" }],
    ["WEB_CONCURRENCY=2 REMAP='a b' gunicorn app:app", { program: "gunicorn" }],
    ["cd api && node server.js", { dir: "api", program: "node" }],
    ["cd api && PORT_X=1 exec node server.js", { dir: "api", program: "node" }],
    ["exec uvicorn app:app --port $PORT", { program: "uvicorn" }],
    ["./bin/run --queue default", { program: "./bin/run" }],
    ["flask db upgrade && gunicorn app:app", { program: "flask" }],
    ["alembic upgrade head; echo done", { program: "alembic" }],
    // What the shell alone can say: a variable, a quoted word, a subshell
    ["$HOME/bin/worker", undefined],
    ['"my server" --x', undefined],
    ["(cd api && node server.js)", undefined],
  ];
  for (const [command, want] of cases) {
    it(`${JSON.stringify(command)}: ${want ? `${want.program}${want.dir ? ` in ${want.dir}/` : ""}` : "not looked for"}`, () => {
      assert.deepEqual(leadingProgram(command), want);
    });
  }
});

describe("errorHintOf: what a failed npm run exec ended on, as the release script reads it", () => {
  const hint = (says: string) => ERROR_HINTS.find((h) => h.says === says)!.hint;

  it("the last traceback's error line, else the last line with a known error; nothing for an unknown one", () => {
    // wagtail/news-template's load_initial_data copying media into the read-only release, as exec printed it.
    const readOnly = [
      "Copying media files to configured storage...",
      "Traceback (most recent call last):",
      '  File "/srv/news-news/current/manage.py", line 10, in <module>',
      "    execute_from_command_line(sys.argv)",
      '  File "<frozen os>", line 225, in makedirs',
      "OSError: [Errno 30] Read-only file system: '/srv/news-news/releases/20261207054616-f013eb84/media/original_images'",
      "",
    ].join("\n");
    assert.deepEqual(errorHintOf(readOnly), {
      line: "OSError: [Errno 30] Read-only file system: '/srv/news-news/releases/20261207054616-f013eb84/media/original_images'",
      hint: hint("[Errno 30] Read-only file system"),
    });
    // A traceback whose error apphost does not know: nothing, even with a known error's words on an earlier line.
    assert.equal(
      errorHintOf(
        "no such table: x\nTraceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 'SECRET_KEY'\n",
      ),
      undefined,
    );
    // No traceback (a Node script): its last line with a known error; a known error's first words with another end
    // (then) are not it.
    assert.deepEqual(
      errorHintOf(
        'Executing (default): SELECT 1\nError: SQLITE_ERROR: no such table: users\nrelation "x" is locked\n',
      ),
      { line: "Error: SQLITE_ERROR: no such table: users", hint: hint("no such table: ") },
    );
    assert.deepEqual(errorHintOf('ERROR:  relation "users" does not exist\n'), {
      line: 'ERROR:  relation "users" does not exist',
      hint: hint('relation "'),
    });
    // w3cj/hono-open-api-starter's libsql client given apphost's sqlite:// URL; another scheme's refusal is not it.
    const libsql =
      'LibsqlError: URL_SCHEME_NOT_SUPPORTED: The client supports only "libsql:", "wss:", "ws:", "https:", "http:" and ' +
      '"file:" URLs, got "sqlite:". For more information, please read https://github.com/libsql/libsql-client-ts#supported-urls';
    assert.deepEqual(errorHintOf(`${libsql}\n    at expandConfig (config.js:94:15)\n`), {
      line: libsql.slice(0, 300),
      hint: hint("URL_SCHEME_NOT_SUPPORTED"),
    });
    assert.match(hint("URL_SCHEME_NOT_SUPPORTED"), /set apphost:database\.urlScheme to file/);
    assert.equal(errorHintOf(libsql.replace('got "sqlite:"', 'got "postgresql:"')), undefined);
    // esfoobar/quart-postgres-boilerplate's hypercorn, logging in with its settings.toml's defaults.
    const login =
      "hypercorn.utils.LifespanFailureError: Lifespan failure in startup. 'password authentication failed for user \"app_user\"'";
    assert.deepEqual(errorHintOf(`${login}\n`), { line: login, hint: PG_LOGIN_HINT });
    assert.equal(hint('password authentication failed for user "'), PG_LOGIN_HINT);
    assert.equal(errorHintOf("bash: line 1: nosuchcommand: command not found\n"), undefined);
    // error_hint, as the release script has it: in a migration's own output, a missing table is one an earlier
    // migration had not made (its inMigration); elsewhere, and for a hint without one, the hint.
    const errorHint = (...args: string[]) =>
      spawnSync("bash", ["-c", `${errorHintFunction()}\nerror_hint "$@"`, "fn", ...args], {
        encoding: "utf8",
      }).stdout;
    const missing = 'psycopg2.errors.UndefinedTable: relation "piccolo_user" does not exist';
    assert.equal(errorHint(missing), `${NO_TABLE_HINT}\n`);
    assert.equal(errorHint(missing, "migration"), `${MIGRATION_ORDER_HINT}\n`);
    assert.equal(
      errorHint("sqlite3.OperationalError: no such table: post", "migration"),
      `${MIGRATION_ORDER_HINT}\n`,
    );
    assert.equal(errorHint(login, "migration"), `${PG_LOGIN_HINT}\n`);
    assert.equal(errorHint("nothing known"), "");
    // cookiecutter-flask's `flask db upgrade` with FLASK_APP in its .env alone, as the migration's log had it: the
    // known line, though Flask's own last line (no such command) comes after it.
    const flask = [
      "Error: Could not locate a Flask application. Use the 'flask --app' option, 'FLASK_APP' environment variable, or a 'wsgi.py' or 'app.py' file in the current directory.",
      "",
      "Usage: flask [OPTIONS] COMMAND [ARGS]...",
      "Try 'flask --help' for help.",
      "",
      "Error: No such command 'db'.",
      "",
    ].join("\n");
    assert.deepEqual(errorHintOf(flask), {
      line: flask.split("\n")[0],
      hint: hint("Could not locate a Flask application"),
    });
  });
});
