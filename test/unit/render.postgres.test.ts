import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import {
  postgresDeleteScript,
  postgresProvisionScript,
  postgresUrl,
  scramVerifier,
  scramVerifierWithSalt,
} from "../../components/render/postgres";

describe("render/postgres: the stack's role and database", () => {
  it("the SCRAM-SHA-256 verifier is the one Postgres 15 stores for the same password and salt", () => {
    // From Debian 12's postgresql 15: CREATE ROLE v PASSWORD 'pencil'; SELECT rolpassword FROM pg_authid.
    const fromPostgres =
      "SCRAM-SHA-256$4096:i0DO5CbASy/usc13+hMxpg==$XR3hPe73e7VumkkQrTbIsNSZXEF2TclSZZE8hPDUUaI=:WSm/gVfF1oXHof1PtwZQlQUB5gaLTrVfSol6EG5qEqY=";
    assert.equal(
      scramVerifierWithSalt("pencil", Buffer.from("i0DO5CbASy/usc13+hMxpg==", "base64")),
      fromPostgres,
    );
  });

  it("the same role and password give the same verifier (an unchanged up changes nothing); another role another salt", () => {
    const a = scramVerifier("shop_prod", "Abc123");
    assert.equal(scramVerifier("shop_prod", "Abc123"), a);
    assert.match(a, /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$/);
    assert.notEqual(scramVerifier("shop_staging", "Abc123").split("$")[1], a.split("$")[1]);
    assert.notEqual(scramVerifier("shop_prod", "Abc124"), a);
    assert.equal(a.includes("Abc123"), false);
  });

  it("DATABASE_URL is TCP on 127.0.0.1 with the password percent-encoded", () => {
    assert.equal(postgresUrl("shop_prod", "a1B2"), "postgresql://shop_prod:a1B2@127.0.0.1:5432/shop_prod");
    assert.equal(
      postgresUrl("shop_prod", "p@ss/w:rd"),
      "postgresql://shop_prod:p%40ss%2Fw%3Ard@127.0.0.1:5432/shop_prod",
    );
  });

  it("refuses a name that is not a plain identifier, naming the key", () => {
    for (const bad of ["Shop", "shop-prod", "1shop", 'x"; DROP', "a".repeat(64)]) {
      assert.throws(
        () => postgresProvisionScript({ name: bad }),
        /apphost:database\.postgresName: ".*" is not a Postgres identifier/,
      );
      assert.throws(() => postgresUrl(bad, "pw"), /apphost:database\.postgresName/);
    }
  });

  it("the provisioning script takes the verifier on stdin and creates what is missing, idempotently", () => {
    assert.equal(
      postgresProvisionScript({ name: "shop_prod" }),
      `set -euo pipefail
IFS= read -r verifier
case "$verifier" in SCRAM-SHA-256\\$*) ;; *) echo "apphost: expected a SCRAM-SHA-256 verifier on stdin" >&2; exit 2 ;; esac
systemctl enable --now postgresql >/dev/null 2>&1 || systemctl start postgresql
for _ in $(seq 60); do
  if runuser -u postgres -- pg_isready -q; then break; fi
  sleep 1
done
runuser -u postgres -- pg_isready >&2 || { echo "apphost: postgresql does not accept connections after 60 s (journalctl -u postgresql)" >&2; exit 1; }
APPHOST_PG_VERIFIER="$verifier" runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -v name=shop_prod <<'SQL'
\\getenv verifier APPHOST_PG_VERIFIER
SELECT format('CREATE ROLE %I', :'name') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \\gexec
ALTER ROLE :"name" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'verifier';
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \\gexec
ALTER DATABASE :"name" OWNER TO :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
echo "apphost: postgres role and database shop_prod ready (scram-sha-256 on 127.0.0.1:5432; no other role may connect)" >&2
`,
    );
  });

  it("apphost:database.extensions: the postgres superuser creates them in the app's database, each one offered first", () => {
    const script = postgresProvisionScript({ name: "shop_prod", extensions: ["bloom", "uuid-ossp"] });
    const lines = script.split("\n");
    const after = lines.indexOf('REVOKE ALL ON DATABASE :"name" FROM PUBLIC;') + 2;
    assert.deepEqual(lines.slice(after, after + 10), [
      `missing=$(runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -d shop_prod -At -c "SELECT string_agg(e, ', ') FROM unnest(ARRAY['bloom', 'uuid-ossp']) e WHERE e NOT IN (SELECT name FROM pg_available_extensions)")`,
      'if [ -n "$missing" ]; then',
      `  echo "apphost: apphost:database.extensions: not offered by this host's PostgreSQL: $missing; add the package that brings each to apphost:host.packages (postgis: postgresql-<major>-postgis-3), or remove it" >&2`,
      "  exit 1",
      "fi",
      "runuser -u postgres -- psql -X -v ON_ERROR_STOP=1 -d shop_prod -q <<'SQL'",
      'CREATE EXTENSION IF NOT EXISTS "bloom";',
      'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";',
      "SQL",
      'echo "apphost: postgres extensions in shop_prod: bloom, uuid-ossp" >&2',
    ]);
    // None: the script as before (an existing stack's host step does not run again).
    assert.equal(
      postgresProvisionScript({ name: "shop_prod", extensions: [] }),
      postgresProvisionScript({ name: "shop_prod" }),
    );
    assert.throws(
      () => postgresProvisionScript({ name: "shop_prod", extensions: ["bloom", `x"; DROP`] }),
      /apphost:database\.extensions\[1\]: "x\\"; DROP" is not an extension name/,
    );
    // Under bash, with stand-ins for runuser (which runs what follows --) and psql: an extension this PostgreSQL does
    // not offer is named and nothing is created; with all offered, each is created.
    const run = (missing: string) => {
      const bin = mkdtempSync(join(tmpdir(), "apphost-pg-"));
      try {
        writeFileSync(join(bin, "runuser"), '#!/bin/bash\nshift 3\nexec "$@"\n', { mode: 0o755 });
        writeFileSync(join(bin, "pg_isready"), "#!/bin/bash\nexit 0\n", { mode: 0o755 });
        writeFileSync(join(bin, "systemctl"), "#!/bin/bash\nexit 0\n", { mode: 0o755 });
        writeFileSync(
          join(bin, "psql"),
          `#!/bin/bash\nif [[ " $* " == *" -At "* ]]; then printf '%s\\n' ${JSON.stringify(missing)}; else cat >>${join(bin, "sql")}; fi\n`,
          { mode: 0o755 },
        );
        const r = spawnSync("bash", ["-c", script], {
          input: "SCRAM-SHA-256$4096:x\n",
          encoding: "utf8",
          env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
        });
        return {
          status: r.status,
          stderr: r.stderr,
          sql: existsSync(join(bin, "sql")) ? readFileSync(join(bin, "sql"), "utf8") : "",
        };
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
    };
    const refused = run("uuid-ossp");
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /not offered by this host's PostgreSQL: uuid-ossp; add the package/);
    assert.doesNotMatch(refused.sql, /CREATE EXTENSION/);
    const created = run("");
    assert.equal(created.status, 0, created.stderr);
    assert.match(
      created.sql,
      /CREATE EXTENSION IF NOT EXISTS "bloom";\nCREATE EXTENSION IF NOT EXISTS "uuid-ossp";\n$/,
    );
  });

  it("destroy keeps the data and says how to drop it", () => {
    assert.equal(
      postgresDeleteScript({ name: "shop_prod" }),
      'echo "apphost: kept postgres database shop_prod and its role (destroy never drops data); to drop them: runuser -u postgres -- dropdb shop_prod && runuser -u postgres -- dropuser shop_prod" >&2\n',
    );
  });

  it("both scripts pass shellcheck -s bash with no findings", () => {
    for (const script of [
      postgresProvisionScript({ name: "shop_prod" }),
      postgresProvisionScript({ name: "shop_prod", extensions: ["bloom", "pg_trgm"] }),
      postgresDeleteScript({ name: "shop_prod" }),
    ]) {
      const r = spawnSync("shellcheck", ["-s", "bash", "-"], { input: script, encoding: "utf8" });
      assert.ok(!r.error, `shellcheck is not installed (apt-get install -y shellcheck): ${String(r.error)}`);
      assert.equal(r.status, 0, r.stdout);
    }
  });
});
