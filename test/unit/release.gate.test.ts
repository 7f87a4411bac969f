/**
 * apphost-release run in a temp directory (see release-harness.ts): the
 * health gate's early stops, each naming what the app's answer, or its unit's
 * ports and restarts, usually mean.
 */

import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import assert from "assert/strict";
import { ERROR_HINTS, EXIT_CODES } from "../../components/release/phases";
import { FakeHost, writeTestApp } from "./release-harness";

describe("release script: the health gate stops early on the same 4xx, saying what it usually means", function () {
  this.timeout(60000);
  let host: FakeHost;
  // A gate that would wait 30 s, and gives up on one answer after 1 s of it.
  before(() => {
    host = new FakeHost({
      sharedVenv: true,
      releases: { healthTimeoutSeconds: 30 },
      timing: { healthSameAnswerSeconds: 1 },
    });
  });
  after(() => host.cleanup());

  const deployAnswering = (
    code: number,
    id: string,
    unhealthyBody?: string,
    unhealthyError?: string,
    more: Partial<Parameters<typeof writeTestApp>[1]> = {},
  ) =>
    host.deploy(
      writeTestApp(path.join(host.tmp, `answers-${code}`), {
        version: `v${code}`,
        healthy: false,
        unhealthyCode: code,
        unhealthyBody,
        unhealthyError,
        ...more,
      }),
      id,
    );

  /**
   * The gate's message after `HTTP <code> to every try for <n>s`: n counts whole seconds of the same answer,
   * at least the 1 s the host allows and well short of the 30 s the gate would wait (the loop's own count,
   * so a loaded machine cannot make it flaky: at worst one try of 5 s more).
   */
  function stoppedEarly(stderr: string, code: number): string {
    const m = new RegExp(
      `did not answer 2xx on http://127\\.0\\.0\\.1:\\d+/healthz \\(last answer: HTTP ${code} to every try for (\\d+)s, so the gate stopped waiting: (.*)$`,
      "m",
    ).exec(stderr);
    assert.ok(m, stderr);
    const seconds = Number(m[1]);
    assert.ok(seconds >= 1 && seconds < 30, `stopped after ${seconds}s`);
    return m[2];
  }

  it("a 400 to every try: the Host header (Django's ALLOWED_HOSTS, Starlette's TrustedHostMiddleware), with what the app answered", () => {
    // Starlette's TrustedHostMiddleware answers a Host it does not allow with this body.
    const r = deployAnswering(400, "20250101120000-c4c4c4c4", "Invalid host header");
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.equal(
      stoppedEarly(r.stderr, 400),
      "the app refuses the request itself, often for its Host header (Django: ALLOWED_HOSTS, which apphost:app.env can set from ${hostnames}; " +
        'Starlette and FastAPI: TrustedHostMiddleware\'s allowed_hosts, which answers "Invalid host header"); ' +
        'the gate sends Host: the instance address, as the proxy does; the app answered: "Invalid host header"); ' +
        "no release served before this one, and none serves now. Last lines of its journal:",
    );
  });

  it("the same redirect to every try: the health path redirects, and where to", () => {
    const r = deployAnswering(301, "20250103120000-c6c6c6c6");
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.match(
      stoppedEarly(r.stderr, 301),
      /^the health path redirects \(to http:\/\/127\.0\.0\.1:\d+\/catalog\/\); point apphost:app\.healthPath at a page that answers 2xx itself\); no release served before this one, and none serves now/,
    );
  });

  it("a 404 to every try: the health path (a 500 is waited for, unless its error is one waiting does not change: below)", () => {
    const r = deployAnswering(404, "20250102120000-c5c5c5c5");
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    // An error page without a title: its text, whitespace runs as one space, tags and all, cut at 120 characters.
    const page = `<html>\n  <head></head>\n\t<body><h1>Not Found</h1>${"x".repeat(200)}</body>\n</html>`;
    const r2 = deployAnswering(404, "20250102130000-c5c5c5c6", page);
    const quoted = `<html> <head></head> <body><h1>Not Found</h1>${"x".repeat(200)}`.slice(0, 120);
    // The app answers 200 on every other path: the gate names the first common health route (HEALTH_ROUTES).
    const root = " (GET /health answers 200: set it to /health)";
    assert.equal(
      stoppedEarly(r2.stderr, 404),
      `the app has no GET route at the health path; check apphost:app.healthPath${root}; the app answered: "${quoted}..."); ` +
        "no release served before this one, and none serves now. Last lines of its journal:",
    );
    // With a title, the first title (not an icon's further down), its entities read once (Werkzeug's, with
    // ampersands in it).
    const titled =
      "<!doctype html>\n<html lang=en>\n<title>404 Not Found &amp; &lt;gone&gt; &amp;lt;</title>\n<h1>Not Found</h1>" +
      "<svg><title>icon</title></svg>";
    const r3 = deployAnswering(404, "20250102140000-c5c5c5c7", titled);
    assert.equal(
      stoppedEarly(r3.stderr, 404),
      `the app has no GET route at the health path; check apphost:app.healthPath${root}; the app answered a page titled "404 Not Found & <gone> &lt;"); ` +
        "no release served before this one, and none serves now. Last lines of its journal:",
    );
    assert.match(
      stoppedEarly(r.stderr, 404),
      /^the app has no GET route at the health path; check apphost:app\.healthPath \(GET \/health answers 200: set it to \/health\); the app answered: "\{"version": "v404", "cwd": .*\}"\); no release served before this one, and none serves now/,
    );
    // / redirects to a login page (microblog's /auth/login?next=%2F; here at the app's own address), which answers
    // 200: the gate names its path, without the query.
    const r4 = deployAnswering(404, "20250102150000-c5c5c5d0", "nothing here", undefined, {
      rootRedirect: "https://shop.example.com/auth/login?next=%2F",
    });
    assert.equal(
      stoppedEarly(r4.stderr, 404),
      "the app has no GET route at the health path; check apphost:app.healthPath (GET / redirects to /auth/login, which answers 200: " +
        'set it to /auth/login, or add a route that answers 2xx); the app answered: "nothing here"); ' +
        "no release served before this one, and none serves now. Last lines of its journal:",
    );
    // Nothing to name: every other path answers 404 too.
    const r5 = deployAnswering(404, "20250102160000-c5c5c5e0", "nothing here", undefined, {
      notFoundPage: "nothing here",
    });
    assert.ok(
      stoppedEarly(r5.stderr, 404).startsWith(
        'the app has no GET route at the health path; check apphost:app.healthPath; the app answered: "nothing here"); ',
      ),
      r5.stderr,
    );
  });

  it("a 400 from Django's debug page: the page's title, and the error Django logged for the request", () => {
    // Last of this host's tests: the fake journalctl shows the host's one log, whatever the unit and time, so the
    // traceback this app logs would be every later test's "last error in its journal".
    // The first 4 KB of what Django 5.1.2 (DEBUG = True) answered the djangox trial's gate, whose ALLOWED_HOSTS did
    // not have the stack's hostname: a style sheet follows the title, and the page's first 120 characters are its head.
    const page = fs.readFileSync(
      path.join(__dirname, "samples", "health", "django-5.1-disallowedhost-debug-page-head.html"),
      "utf8",
    );
    const logged =
      "django.core.exceptions.DisallowedHost: Invalid HTTP_HOST header: 'djangox.local.test'. You may need to add 'djangox.local.test' to ALLOWED_HOSTS.";
    const r = deployAnswering(400, "20250101130000-c4c4c4c5", page, logged);
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.match(
      stoppedEarly(r.stderr, 400),
      new RegExp(
        `as the proxy does; the app answered a page titled "DisallowedHost at /"; the last error in its journal: ${logged.replace(/[.()]/g, "\\$&")}\\); no release served before this one`,
      ),
    );
  });
});

describe("release script: the health gate waits on a 5xx, unless its error is one waiting does not change", function () {
  this.timeout(60000);
  let host: FakeHost;
  // A gate that waits 4 s, and looks at one answer's error after 1 s of it.
  before(() => {
    host = new FakeHost({
      sharedVenv: true,
      releases: { healthTimeoutSeconds: 4 },
      timing: { healthSameAnswerSeconds: 1 },
    });
  });
  after(() => host.cleanup());

  const deployFailing = (id: string, error: string) => {
    host.clearJournal();
    return host.deploy(
      writeTestApp(path.join(host.tmp, id), { version: id, healthy: false, unhealthyError: error }),
      id,
    );
  };

  it("an error ERROR_HINTS knows (CTFd's cache in the read-only release): stops early, quoting it with its hint", () => {
    const error =
      "OSError: [Errno 30] Read-only file system: '/srv/ctfd-ctfd/releases/x/CTFd/../.data/filesystem_cache/tmp1'";
    const r = deployFailing("20250101120000-c9c9c9c1", error);
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    const hint = ERROR_HINTS.find((h) => h.says === "[Errno 30] Read-only file system")!.hint;
    const m = new RegExp(
      "did not answer 2xx on http://127\\.0\\.0\\.1:\\d+/healthz \\(last answer: HTTP 500 to every try for (\\d+)s, so the gate stopped waiting: " +
        "the last error in its journal, (.*), is one that waiting does not change \\((.*)\\)\\); no release served before this one",
    ).exec(r.stderr);
    assert.ok(m, r.stderr);
    const seconds = Number(m[1]);
    assert.ok(seconds >= 1 && seconds < 4, `stopped after ${seconds}s`);
    assert.deepEqual([m[2], m[3]], [error, hint]);
  });

  it("a 500 the app logs nothing of: waited for, then its answer; Django's own page says why there is no error to read", () => {
    // django-cms-quickstart with no collectstatic: WhiteNoise's manifest fails every page, and DEBUG off logs nothing.
    // Django's server_error view with no 500.html, as it answered (145 bytes).
    const page =
      '<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n';
    const deploy500 = (id: string, body: string) => {
      host.clearJournal();
      return host.deploy(
        writeTestApp(path.join(host.tmp, id), { version: id, healthy: false, unhealthyBody: body }),
        id,
      );
    };
    const django = deploy500("20250101120000-c9c9c9c3", page);
    assert.equal(django.status, EXIT_CODES["health-gate"], django.stderr);
    assert.ok(
      django.stderr.includes(
        '(last answer: HTTP 500; no 2xx within 4s; the app answered a page titled "Server Error (500)", Django\'s page ' +
          "for an error it logs nowhere with DEBUG off (its default LOGGING mails it to ADMINS): the install's warnings " +
          "may name the cause (a STATIC_ROOT nothing fills); to read the error in the journal, give the settings a " +
          "LOGGING that sends django.request to the console); ",
      ),
      django.stderr,
    );
    const other = deploy500("20250101120000-c9c9c9c4", '{"detail": "Internal Server Error"}');
    assert.ok(
      other.stderr.includes(
        '(last answer: HTTP 500; no 2xx within 4s; the app answered: "{"detail": "Internal Server Error"}"); ',
      ),
      other.stderr,
    );
  });

  it("any other error (a database still starting): waited for to the deadline, and quoted", () => {
    const error = "psycopg.OperationalError: connection failed: the database system is starting up";
    const r = deployFailing("20250101120000-c9c9c9c2", error);
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    assert.ok(
      r.stderr.includes(
        `(last answer: HTTP 500; no 2xx within 4s; the last error in its journal: ${error}); `,
      ),
      r.stderr,
    );
  });
});

describe("release script: the health gate takes an answer only from the new instance's unit", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true, portHolder: "apphost-blog-prod-web@8000.service" })));
  after(() => host.cleanup());

  it("a 200 from a port another unit holds fails the gate (16), naming that unit, and nothing is served", () => {
    const r = host.deploy(
      writeTestApp(path.join(host.tmp, "app"), { version: "v1" }),
      "20250104120000-c7c7c7c7",
    );
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    const unit = `apphost-shop-test-web@${host.firstPort}.service`;
    assert.match(
      r.stderr,
      new RegExp(
        `${unit.replace(/[.@]/g, "\\$&")} did not answer 2xx on http://127\\.0\\.0\\.1:${host.firstPort}/healthz ` +
          `\\(last answer: HTTP 200, but from apphost-blog-prod-web@8000\\.service, which holds port ${host.firstPort}, not from ` +
          `${unit.replace(/[.@]/g, "\\$&")}; give the stack ports no other service uses \\(apphost:app\\.basePort\\)\\); no release served before this one, and none serves now`,
      ),
    );
    assert.equal(fs.existsSync(host.layout.current), false, "current was switched");
  });
});

describe("release script: the health gate stops early on an instance that does not listen on its port", function () {
  this.timeout(60000);
  let host: FakeHost;
  // A gate that would wait 30 s, and gives up after 1 s of the instance listening elsewhere.
  before(
    () =>
      (host = new FakeHost({
        sharedVenv: true,
        releases: { healthTimeoutSeconds: 30 },
        timing: { healthSameAnswerSeconds: 1, healthElsewhereSeconds: 1 },
      })),
  );
  after(() => host.cleanup());

  it("a first release listening on a port of its own: the gate names where it listens (16)", () => {
    // `uvicorn.run(app)` on 8000, apphost:app.basePort's default, or Flask's `app.run()` on 5000: not the first
    // release's port, the second of the two.
    const own = host.basePort;
    const r = host.deploy(
      writeTestApp(path.join(host.tmp, "elsewhere"), { version: "v0", bindsPort: own }),
      "20250104120000-c7c7c7c7",
    );
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    const unit = `apphost-shop-test-web@${host.firstPort}.service`.replace(/[.@]/g, "\\$&");
    const m = new RegExp(
      `${unit} did not answer 2xx on http://127\\.0\\.0\\.1:${host.firstPort}/healthz \\(last answer: HTTP 000; ${unit} listens on ` +
        `127\\.0\\.0\\.1:${own}, not on port ${host.firstPort}, for (\\d+)s, so the gate stopped waiting: the web process ` +
        `\\(apphost:app\\.processes\\) must listen on the port in \\$PORT, ${host.firstPort} for this release: `,
    ).exec(r.stderr);
    assert.ok(m, r.stderr);
    // The loop's own count: at least the 1 s the host allows, well short of the 30 s the gate would wait.
    assert.ok(Number(m[1]) >= 1 && Number(m[1]) < 30, `stopped after ${m[1]}s`);
    assert.equal(fs.existsSync(host.layout.current), false, "current was switched");
  });

  it("a server on a port of its own serves the first release, and the second stops restarting it, saying so (16)", async () => {
    const v1 = "20250105120000-c8c8c8c8";
    // A server on a port of its own that happens to be the first release's: it serves that release.
    let r = host.deploy(
      writeTestApp(path.join(host.tmp, "v1"), { version: "v1", bindsPort: host.firstPort }),
      v1,
    );
    assert.equal(r.status, 0, r.stderr);
    host.restartWebOnExit();
    r = host.deploy(
      writeTestApp(path.join(host.tmp, "v2"), { version: "v2", bindsPort: host.firstPort }),
      "20250106120000-c9c9c9c9",
    );
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    const unit = `apphost-shop-test-web@${host.basePort}.service`;
    const m = new RegExp(
      `${unit.replace(/[.@]/g, "\\$&")} did not answer 2xx on http://127\\.0\\.0\\.1:${host.basePort}/healthz ` +
        `\\(last answer: HTTP 000; systemd restarted ${unit.replace(/[.@]/g, "\\$&")} (\\d+) times, its journal saying an address is already in use, ` +
        `so the gate stopped waiting: (.*)\\); traffic stays on the old instance`,
    ).exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.ok(Number(m[1]) >= 2, `${m[1]} restarts`);
    assert.equal(
      m[2],
      `the web process (apphost:app.processes) must listen on the port in $PORT, ${host.basePort} for this release: ` +
        "each release starts beside the one serving, on the other of two ports, so a port of its own, or its server's default, " +
        "serves one release at most; give it $PORT in the command (--port $PORT, or APP_PORT=$PORT <command> for an app that reads its port from a variable of its own), or read PORT in the script that starts the server",
    );
    assert.match(r.stderr, /Address already in use/, "the journal's lines follow");
    assert.equal(JSON.parse((await host.get(host.firstPort)).body).version, "v1");
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), v1);
  });

  it("an instance whose port another service holds: the gate names that service", async () => {
    const other = new FakeHost({ sharedVenv: true, portHolder: "apphost-blog-prod-web@8000.service" });
    // The server binds a port that something else listens on, and the fake ss names that unit for any port.
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      other.restartWebOnExit();
      const r = other.deploy(
        writeTestApp(path.join(other.tmp, "app"), {
          version: "v1",
          bindsPort: (taken.address() as net.AddressInfo).port,
        }),
        "20250107120000-cacacaca",
      );
      assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `its journal saying an address is already in use, so the gate stopped waiting: port ${other.firstPort} is held by ` +
            "apphost-blog-prod-web@8000\\.service; give the stack ports no other service uses \\(apphost:app\\.basePort\\)\\); no release served before this one, and none serves now",
        ),
      );
      assert.equal(fs.existsSync(other.layout.current), false, "current was switched");
    } finally {
      taken.close();
      other.cleanup();
    }
  });
});

describe("release script: the health gate stops early on a web process that exits as it starts", function () {
  this.timeout(60000);
  let host: FakeHost;
  // A gate that would wait 30 s.
  before(() => (host = new FakeHost({ sharedVenv: true, releases: { healthTimeoutSeconds: 30 } })));
  after(() => host.cleanup());

  it("after systemd restarted it 3 times, naming them and its traceback's error, its journal following; the live release serves on (16)", async () => {
    const v1 = "20250108120000-cbcbcbcb";
    let r = host.deploy(writeTestApp(path.join(host.tmp, "v1"), { version: "v1" }), v1);
    assert.equal(r.status, 0, r.stderr);
    host.restartWebOnExit();
    r = host.deploy(
      writeTestApp(path.join(host.tmp, "v2"), { version: "v2", importsAtStart: "no_such_module" }),
      "20250109120000-cccccccc",
    );
    assert.equal(r.status, EXIT_CODES["health-gate"], r.stderr);
    const unit = `apphost-shop-test-web@${host.basePort}.service`.replace(/[.@]/g, "\\$&");
    const m = new RegExp(
      `${unit} did not answer 2xx on http://127\\.0\\.0\\.1:${host.basePort}/healthz \\(last answer: HTTP 000; ` +
        `systemd restarted ${unit} (\\d+) times in (\\d+)s, so the gate stopped waiting: it exits soon after it starts, ` +
        "which waiting does not change; the last error in its journal: ModuleNotFoundError: No module named 'no_such_module'\\); " +
        "traffic stays on the old instance\\. Last lines of its journal:\\n",
    ).exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.ok(Number(m[1]) >= 3, `${m[1]} restarts`);
    assert.ok(Number(m[2]) < 30, `stopped after ${m[2]}s`);
    assert.match(r.stderr, /^ {4}import no_such_module$/m, "the journal's lines follow");
    assert.equal(JSON.parse((await host.get(host.firstPort)).body).version, "v1");
    assert.equal(path.basename(fs.readlinkSync(host.layout.current)), v1);
  });
});

describe("release script: a live release whose app shows Django's debug pages", function () {
  this.timeout(60000);
  let host: FakeHost;
  before(() => (host = new FakeHost({ sharedVenv: true })));
  after(() => host.cleanup());
  // What Django 5.1.2 answered, with DEBUG = True, a path it has no route for (the page whole, 2,247 bytes).
  const page = fs.readFileSync(
    path.join(__dirname, "samples", "health", "django-5.1-debug-404.html"),
    "utf8",
  );

  /** Deploys an app whose 404 page is that page; the warning must end with `advice`. */
  function assertDebugWarning(version: string, id: string, advice: string): void {
    const r = host.deploy(writeTestApp(path.join(host.tmp, version), { version, notFoundPage: page }), id);
    assert.equal(r.status, 0, r.stderr);
    const warning =
      "apphost: health-gate: warning: the app runs with Django's DEBUG = True: its 404 page lists the app's URL " +
      "patterns to anyone, and its error pages show tracebacks and settings; ";
    assert.ok(r.stderr.includes(`${warning}${advice}\n`), r.stderr);
  }

  it("is a warning, and a release without them has none", () => {
    assertDebugWarning(
      "debug",
      "20250105120000-d1d1d1d1",
      "read DEBUG from the environment in its settings and leave it off in apphost:app.env",
    );
    const off = host.deploy(
      writeTestApp(path.join(host.tmp, "off"), {
        version: "off",
        notFoundPage: "<h1>Not Found</h1><p>The requested resource was not found on this server.</p>",
      }),
      "20250106120000-d2d2d2d2",
    );
    assert.equal(off.status, 0, off.stderr);
    assert.doesNotMatch(off.stderr, /warning/, off.stderr);
  });

  it("with a DEBUG the stack sets to a value that reads as off, says how the app reads it", () => {
    // django-on-docker's settings, `DEBUG = bool(os.environ.get("DEBUG", default=0))`, and its sample env's DEBUG=0.
    host.rewrite({ env: { DEBUG: "0", DJANGO_DEBUG: "False", LOG_LEVEL: "0" } });
    assertDebugWarning(
      "debug0",
      "20250107120000-d3d3d3d3",
      'apphost:app.env.DEBUG is "0" and apphost:app.env.DJANGO_DEBUG is "False", which the app reads as on: settings ' +
        'such as bool(os.environ.get("DEBUG", 0)) take any non-empty string as True, "0" and "False" too; remove them ' +
        'from apphost:app.env (or set them to ""), or compare the value in the settings (os.environ.get("DEBUG") == "1")',
    );
  });
});
