/**
 * The Release provider's error text: the failed phase by name, the reason the
 * script gave, and the tail of its output; interrupted deploys say so.
 */
import assert from "assert/strict";
import { DEPLOY_PHASES, EXIT_CODES } from "../../components/release/phases";
import { secretValues } from "../../components/app";
import { phaseSeconds, releaseError } from "../../components/remote/release";

const conn = { privateKey: "-----BEGIN KEY-----secretsecret", user: "admin", host: "10.0.0.2", port: 22 };
const result = (code: number, stderr: string) => ({ code, stdout: "", stderr });

describe("release provider: error messages", () => {
  it("names the failed phase, its reason and the output's tail", () => {
    const stderr = [
      "apphost: phase check: start",
      "apphost: phase check: ok",
      "apphost: phase migrate: start",
      "apphost: phase migrate failed: the migration command failed: alembic upgrade head; last 40 lines of its output (/x.log):",
      ...Array.from({ length: 60 }, (_, i) => `traceback line ${i}`),
      "RuntimeError: boom",
      "apphost: rollback: phase migrate failed; undoing release 20250101120000-abcdef12",
      "apphost: phase restore-database failed: restore: something else",
      "apphost: rollback: done",
    ].join("\n");
    const e = releaseError("release 20250101120000-abcdef12", result(14, stderr), conn);
    const [head] = e.message.split("\n");
    assert.equal(
      head,
      "release 20250101120000-abcdef12: phase migrate failed (exit status 14): the migration command failed: alembic upgrade head; last 40 lines of its output (/x.log):",
    );
    assert.match(e.message, /RuntimeError: boom\n/);
    assert.match(e.message, /apphost: rollback: done$/);
    assert.doesNotMatch(e.message, /traceback line 0\n/, "only the tail");
    assert.equal(Object.getPrototypeOf(e), Error.prototype, "a plain Error survives serialization");
  });

  it("knows every phase by its exit status when the script printed no reason", () => {
    for (const p of DEPLOY_PHASES) {
      const e = releaseError("release x", result(EXIT_CODES[p], "some output"), conn);
      assert.match(
        e.message,
        new RegExp(`^release x: phase ${p} failed \\(exit status ${EXIT_CODES[p]}\\)\\n`),
      );
    }
    assert.match(releaseError("r", result(EXIT_CODES.choose, ""), conn).message, /^r: phase choose failed/);
    assert.match(
      releaseError("r", result(EXIT_CODES.nothingToRollBack, ""), conn).message,
      /^r: phase choose failed/,
    );
    assert.match(
      releaseError("r", result(EXIT_CODES.rollbackFailed, "apphost: phase publish failed: x"), conn).message,
      /^r: phase publish failed \(exit status 20\): x; the automatic rollback failed too/,
    );
  });

  it("an interrupted deploy names the phase it was in; a refused connection names the host", () => {
    const killed = releaseError(
      "release x",
      result(255, "apphost: phase publish: ok\napphost: phase health-gate: start\n"),
      conn,
    );
    assert.match(killed.message, /^release x: interrupted during phase health-gate \(exit status 255/);
    assert.match(killed.message, /takes over its deploy lock/);
    const refused = releaseError(
      "release x",
      result(255, "ssh: connect to host 10.0.0.2 port 22: Connection refused"),
      conn,
    );
    assert.match(refused.message, /^release x: ssh to admin@10.0.0.2:22 failed \(exit status 255\)\n/);
    assert.match(refused.message, /Connection refused/);
  });

  it("never shows the private key", () => {
    const e = releaseError("release x", result(11, `oops ${conn.privateKey} oops`), conn);
    assert.doesNotMatch(e.message, /secretsecret/);
  });
});

describe("release provider: phase timings", () => {
  it("reads `phase <name>: ok (<s>s)` lines in order; start, failed and rollback lines are not timings", () => {
    const stderr = [
      ...DEPLOY_PHASES.flatMap((p, i) => [
        `apphost: phase ${p}: start`,
        `apphost: phase ${p}: ok (${i}.${i}s)`,
      ]),
      "apphost: phase restore: ok",
      "apphost: rollback revert-traffic: ok",
      "apphost: phase migrate failed: x",
    ].join("\n");
    assert.deepEqual(
      phaseSeconds(stderr),
      DEPLOY_PHASES.map((phase, i) => ({ phase, seconds: Number(`${i}.${i}`) })),
    );
    assert.deepEqual(phaseSeconds(""), []);
  });
});

describe("release errors never show a secret value", () => {
  it("blanks the secretEnv values and the database password out of the output an error carries", () => {
    const env = { SECRET_KEY: "s3cr3t-key-value-0123456789", STRIPE_KEY: "sk_live_abcdef", SHORT: "ab" };
    const url = "postgresql://shop_prod:Pa55w0rdPa55w0rd@127.0.0.1:5432/shop_prod";
    const redactions = secretValues(env, url);
    const printed = [
      "Traceback (most recent call last):",
      `settings: SECRET_KEY=${env.SECRET_KEY} STRIPE_KEY=${env.STRIPE_KEY}`,
      `sqlalchemy.exc.OperationalError: could not connect to ${url}`,
      "password authentication failed for user shop_prod (password Pa55w0rdPa55w0rd)",
    ].join("\n");
    const e = releaseError("release x", result(14, printed), conn, redactions);
    for (const secret of [env.SECRET_KEY, env.STRIPE_KEY, "Pa55w0rdPa55w0rd", url]) {
      assert.equal(e.message.includes(secret), false, `${secret} is in the error`);
    }
    assert.match(e.message, /SECRET_KEY=\[secret\] STRIPE_KEY=\[secret\]/);
    assert.match(e.message, /\(password \[secret\]\)/);
    // Too short to blank without mangling the rest of the text.
    assert.equal(redactions.includes("ab"), false);
  });
});
