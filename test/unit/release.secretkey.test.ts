/**
 * apphost-release run in a temp directory (see release-harness.ts): the install
 * phase's check of a Django app's SECRET_KEY (secret_key_check, release.sh),
 * which runs Django's own deploy check in the new release with the env file.
 * The app's manage.py stands in for Django's: it loads the settings module the
 * way Django does (the module's code, with the env file's environment), and
 * `check --deploy --tag security` prints security.W009 as Django 5.1 does when
 * the key is the django-insecure- default, under 50 characters or under 5
 * different ones; `migrate` runs the harness's migration.
 */

import * as fs from "fs";
import * as path from "path";
import assert from "assert/strict";
import { FakeHost, writeTestApp } from "./release-harness";

const MANAGE_PY = `import os, sys
if sys.argv[1:2] == ["migrate"]:
    os.execvp("bash", ["bash", "migrate.sh"])
if sys.argv[1:] != ["check", "--deploy", "--tag", "security"]:
    sys.exit("manage.py: unexpected arguments %r" % sys.argv[1:])
settings = {"__file__": os.path.abspath("library/settings.py")}
exec(open("library/settings.py").read(), settings)
key = settings["SECRET_KEY"]
if key.startswith("django-insecure-") or len(key) < 50 or len(set(key)) < 5:
    print("System check identified some issues:\\n\\nWARNINGS:\\n?: (security.W009) Your SECRET_KEY has less than 50 "
          "characters, less than 5 unique characters, or it's prefixed with 'django-insecure-' indicating that it was "
          "generated automatically by Django.\\n\\nSystem check identified 1 issue (0 silenced).", file=sys.stderr)
else:
    print("System check identified no issues (0 silenced).")
`;

// mdn/django-locallibrary-tutorial's settings (3dbedbe), and startproject's.
const READS_ANOTHER_NAME = `import os
from pathlib import Path

SECRET_KEY = os.environ.get(
    'DJANGO_SECRET_KEY', 'django-insecure-&psk#na5l=p3q8_a+-$4w1f^lt3lx1c@d*p4x$ymm_rn7pwb87')
DEBUG = os.environ.get('DJANGO_DEBUG', '') != 'False'
BASE_DIR = Path(__file__).resolve().parent.parent
STATIC_ROOT = BASE_DIR / 'staticfiles'
`;
const HARD_CODED = `SECRET_KEY = 'django-insecure-6n0x1f=_b(7j@k0^x8c9l2r3s4t5u6v7w8y9z0a1b2c3d4e5f6g7'
DEBUG = False
`;

const READS_SECRET_KEY = `import os
SECRET_KEY = os.environ["SECRET_KEY"]
`;

const WHY =
  "apphost: install: warning: the app's SECRET_KEY is one anyone can know (Django's check security.W009: its " +
  "django-insecure- default, or a key under 50 characters): whoever has it forges sessions and password-reset links; ";

describe("release script: a Django app's SECRET_KEY, by Django's own deploy check", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(
    () =>
      (host = new FakeHost({
        sharedVenv: true,
        database: { migrate: "python manage.py migrate", revision: "bash revision.sh" },
      })),
  );
  after(() => host.cleanup());

  function djangoApp(version: string, settings: string): string {
    const dir = writeTestApp(path.join(host.tmp, version), { version });
    fs.writeFileSync(path.join(dir, "manage.py"), MANAGE_PY);
    fs.mkdirSync(path.join(dir, "library"));
    fs.writeFileSync(path.join(dir, "library", "settings.py"), settings);
    return dir;
  }

  it("the default its settings fall back to: a warning naming the variable they read; the release is live", () => {
    const r = host.deploy(djangoApp("v1", READS_ANOTHER_NAME), "20250201120000-a1a1a1a1");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      r.stderr.includes(
        `${WHY}its settings read it from DJANGO_SECRET_KEY (library/settings.py:4): set ` +
          "apphost:app.env.DJANGO_SECRET_KEY to ${secretKey}, the long random key apphost generates\n",
      ),
      r.stderr,
    );
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), "20250201120000-a1a1a1a1");
  });

  it("settings that set STATIC_ROOT, which nothing apphost runs fills: a warning naming where, and the build to set", () => {
    const r = host.deploy(djangoApp("v1s", READS_ANOTHER_NAME), "20250201130000-a1b1a1b1");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      r.stderr.includes(
        "apphost: install: warning: the app's settings set STATIC_ROOT (library/settings.py:8), which only " +
          "collectstatic fills, and nothing apphost runs calls it (apphost:app.build, the migration, the processes): " +
          "with DEBUG off, Django and WhiteNoise serve no static file it did not copy there, the admin's CSS " +
          'included; set apphost:app.build to "python manage.py collectstatic --noinput" (Heroku\'s Python buildpack ' +
          "runs it by itself)\n",
      ),
      r.stderr,
    );
    const other = host.deploy(djangoApp("v1t", READS_SECRET_KEY), "20250201140000-a1c1a1c1");
    assert.doesNotMatch(other.stderr, /STATIC_ROOT/, "settings without it: no warning");
  });

  it("with that variable in the env file (the check loads it): no warning", () => {
    fs.appendFileSync(host.layout.envFile, `DJANGO_SECRET_KEY='${"k7Qx2-".repeat(11)}'\n`);
    const r = host.deploy(djangoApp("v2", READS_ANOTHER_NAME), "20250202120000-a2a2a2a2");
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /SECRET_KEY/, r.stderr);
  });

  it("a key the settings hard-code: a warning saying where, and to read it from the environment", () => {
    const r = host.deploy(djangoApp("v3", HARD_CODED), "20250203120000-a3a3a3a3");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      r.stderr.includes(
        `${WHY}read it from the environment in its settings (library/settings.py:1), as ` +
          'SECRET_KEY = os.environ["SECRET_KEY"]: apphost generates a long random SECRET_KEY\n',
      ),
      r.stderr,
    );
  });

  it("a short SECRET_KEY the stack sets, which the settings read: a warning to leave it to apphost", () => {
    fs.appendFileSync(host.layout.envFile, "SECRET_KEY='changeme'\n");
    const r = host.deploy(djangoApp("v4", READS_SECRET_KEY), "20250204120000-a4a4a4a4");
    assert.equal(r.status, 0, r.stderr);
    assert.ok(
      r.stderr.includes(
        `${WHY}the stack sets SECRET_KEY (apphost:secretEnv or apphost:app.env), which its settings read ` +
          "(library/settings.py:2): remove it there, and apphost generates a long random one\n",
      ),
      r.stderr,
    );
    assert.doesNotMatch(r.stderr, /changeme/, "the key itself is never printed");
  });
});
