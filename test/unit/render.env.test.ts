import assert from "node:assert/strict";
import {
  EnvFileInput,
  envFileOwnership,
  quoteEnvValue,
  renderEnvFile,
  sqliteUrl,
} from "../../components/render/env";
import { layout, lineDiff } from "./render.fixtures";

const input = (): EnvFileInput => ({
  stack: "prod",
  env: { SECRET_KEY: "s3cr3t", ALLOWED_HOSTS: "shop.example.com" },
  database: { kind: "sqlite", sqliteFile: "app.db" },
});

describe("render/env", () => {
  const base = renderEnvFile(layout, input());

  it("renders sorted, quoted KEY=value lines with APP_ENV and the SQLite URL", () => {
    assert.equal(
      base,
      `# apphost shop-prod: environment of every process (EnvironmentFile=).
# Managed by apphost (components/render/env.ts); edits are overwritten on the next deploy.
# PORT is not here: each web unit instance sets its own.
ALLOWED_HOSTS="shop.example.com"
APP_ENV="prod"
DATABASE_URL="sqlite:////srv/shop-prod/shared/data/app.db"
SECRET_KEY="s3cr3t"
`,
    );
  });

  it("is root:<app user> 0640: the app reads it and cannot rewrite it", () => {
    assert.deepEqual(envFileOwnership(layout), { mode: "0640", owner: "root", group: "shop-prod" });
    assert.equal(renderEnvFile(layout, input()), base);
  });

  it("escapes what systemd and sh unescape inside double quotes", () => {
    assert.equal(quoteEnvValue('a"b$c`d\\e f'), '"a\\"b\\$c\\`d\\\\e f"');
    assert.equal(quoteEnvValue("line1\nline2"), '"line1\nline2"');
    assert.equal(quoteEnvValue("#not-a-comment"), '"#not-a-comment"');
    assert.equal(quoteEnvValue(""), '""');
  });

  it("postgres: DATABASE_URL from the resolved secret, and the pool with the runbook's defaults", () => {
    const v = renderEnvFile(layout, {
      ...input(),
      database: { kind: "postgres", sqliteFile: "app.db" },
      databaseUrl: "postgresql://shop_prod:pw@localhost/shop_prod",
    });
    assert.deepEqual(lineDiff(base, v), {
      removed: ['DATABASE_URL="sqlite:////srv/shop-prod/shared/data/app.db"'],
      added: [
        'DATABASE_URL="postgresql://shop_prod:pw@localhost/shop_prod"',
        'DB_MAX_OVERFLOW="10"',
        'DB_POOL_RECYCLE="1800"',
        'DB_POOL_SIZE="5"',
        'DB_POOL_TIMEOUT="30"',
      ],
    });
  });

  it("apphost:database.urlScheme: a driver in DATABASE_URL's and ${database.url}'s scheme; the parts are as before", () => {
    const v = renderEnvFile(layout, {
      ...input(),
      env: {
        SYNC_URL: "postgresql://${database.user}:${database.password}@${database.host}/${database.name}",
      },
      database: { kind: "postgres", sqliteFile: "app.db", urlScheme: "postgresql+asyncpg" },
      databaseUrl: "postgresql://shop_prod:pw@127.0.0.1:5432/shop_prod",
    });
    const lines = v.split("\n").filter((l) => /^(DATABASE_URL|SYNC_URL)=/.test(l));
    assert.deepEqual(lines, [
      'DATABASE_URL="postgresql+asyncpg://shop_prod:pw@127.0.0.1:5432/shop_prod"',
      'SYNC_URL="postgresql://shop_prod:pw@127.0.0.1/shop_prod"',
    ]);
    // Heroku's spelling, for an app that tests DATABASE_URL for it.
    const heroku = renderEnvFile(layout, {
      ...input(),
      env: { URL: "${database.url}" },
      database: { kind: "postgres", sqliteFile: "app.db", urlScheme: "postgres" },
      databaseUrl: "postgresql://shop_prod:pw@127.0.0.1:5432/shop_prod",
    });
    assert.deepEqual(
      heroku.split("\n").filter((l) => /^(DATABASE_URL|URL)=/.test(l)),
      [
        'DATABASE_URL="postgres://shop_prod:pw@127.0.0.1:5432/shop_prod"',
        'URL="postgres://shop_prod:pw@127.0.0.1:5432/shop_prod"',
      ],
    );
    const lite = renderEnvFile(layout, {
      ...input(),
      env: { DB: "${database.url}" },
      database: { kind: "sqlite", sqliteFile: "app.db", urlScheme: "sqlite+aiosqlite" },
    });
    assert.deepEqual(lineDiff(base, lite), {
      removed: [
        'ALLOWED_HOSTS="shop.example.com"',
        'DATABASE_URL="sqlite:////srv/shop-prod/shared/data/app.db"',
        'SECRET_KEY="s3cr3t"',
      ],
      added: [
        'DATABASE_URL="sqlite+aiosqlite:////srv/shop-prod/shared/data/app.db"',
        'DB="sqlite+aiosqlite:////srv/shop-prod/shared/data/app.db"',
      ],
    });
    // `file`: a file URL, as libsql opens a SQLite file (drizzle's libsql driver in w3cj/hono-open-api-starter).
    const libsql = renderEnvFile(layout, {
      ...input(),
      env: { DB: "${database.url}", FILE: "${database.path}" },
      database: { kind: "sqlite", sqliteFile: "app.db", urlScheme: "file" },
    });
    assert.deepEqual(lineDiff(base, libsql).added, [
      'DATABASE_URL="file:///srv/shop-prod/shared/data/app.db"',
      'DB="file:///srv/shop-prod/shared/data/app.db"',
      'FILE="/srv/shop-prod/shared/data/app.db"',
    ]);
  });

  it("postgres: apphost:database.pool sets the pool variables", () => {
    const v = renderEnvFile(layout, {
      ...input(),
      database: {
        kind: "postgres",
        sqliteFile: "app.db",
        pool: { size: 20, maxOverflow: 0, timeoutSeconds: 5, recycleSeconds: -1 },
      },
      databaseUrl: "postgresql://u:p@127.0.0.1:5432/d",
    });
    assert.deepEqual(
      v.split("\n").filter((l) => l.startsWith("DB_")),
      ['DB_MAX_OVERFLOW="0"', 'DB_POOL_RECYCLE="-1"', 'DB_POOL_SIZE="20"', 'DB_POOL_TIMEOUT="5"'],
    );
  });

  it("database none: no DATABASE_URL unless the app brings its own", () => {
    const none = renderEnvFile(layout, { ...input(), database: { kind: "none", sqliteFile: "app.db" } });
    assert.deepEqual(lineDiff(base, none), {
      removed: ['DATABASE_URL="sqlite:////srv/shop-prod/shared/data/app.db"'],
      added: [],
    });
    const own = renderEnvFile(layout, {
      ...input(),
      env: { ...input().env, DATABASE_URL: "mysql://db/x" },
      database: { kind: "none", sqliteFile: "app.db" },
    });
    assert.ok(own.includes('\nDATABASE_URL="mysql://db/x"\n'));
  });

  it("apphost:app.env may override APP_ENV", () => {
    const v = renderEnvFile(layout, { ...input(), env: { ...input().env, APP_ENV: "production" } });
    assert.deepEqual(lineDiff(base, v), { removed: ['APP_ENV="prod"'], added: ['APP_ENV="production"'] });
  });

  it("the stack name is APP_ENV", () => {
    assert.ok(renderEnvFile(layout, { ...input(), stack: "staging" }).includes('\nAPP_ENV="staging"\n'));
  });

  it("sqliteUrl is the four-slash absolute form", () => {
    assert.equal(sqliteUrl(layout, "x.db"), "sqlite:////srv/shop-prod/shared/data/x.db");
  });

  // PORT, PATH, DATABASE_URL and the pool variables are refused at the config boundary
  // (config.test.ts, with what to do); here only what cannot be written at all.
  it("refuses names a shell or systemd cannot read, by the key each was set with, and hides values", () => {
    assert.throws(
      () =>
        renderEnvFile(layout, {
          ...input(),
          env: { "1BAD": "x", "with-dash": "y", OK: "fine" },
          secretEnv: { ...input().secretEnv, "bad-name": "s3cret", NUL: "a\0b" },
        }),
      {
        message:
          "env file /etc/apphost/shop-prod.env: not safe to write (apphost's config check should have refused it; please report this):\n" +
          '  - apphost:app.env.1BAD: "1BAD" is not a variable name (letters, digits and _, not starting with a digit)\n' +
          '  - apphost:app.env.with-dash: "with-dash" is not a variable name (letters, digits and _, not starting with a digit)\n' +
          '  - apphost:secretEnv.bad-name: "bad-name" is not a variable name (letters, digits and _, not starting with a digit)\n' +
          "  - apphost:secretEnv.NUL: its value is not a string without NUL characters",
      },
    );
  });

  it("postgres without a URL is refused", () => {
    assert.throws(
      () => renderEnvFile(layout, { ...input(), database: { kind: "postgres", sqliteFile: "app.db" } }),
      {
        message:
          "env file /etc/apphost/shop-prod.env: fix these settings:\n" +
          "  - databaseUrl: required when apphost:database.kind is postgres",
      },
    );
  });

  it("resolves ${database.*} and ${secretKey} in apphost:app.env; secretEnv values are written as given", () => {
    const v = renderEnvFile(layout, {
      stack: "prod",
      env: {
        SQLALCHEMY_DATABASE_URI: "${database.url}",
        POSTGRES_SERVER: "${database.host}",
        POSTGRES_PORT: "${database.port}",
        POSTGRES_USER: "${database.user}",
        POSTGRES_PASSWORD: "${database.password}",
        POSTGRES_DB: "${database.name}",
        DJANGO_SECRET: "${secretKey}",
        ASYNC_URL:
          "postgresql+asyncpg://${database.user}:${database.password}@${database.host}/${database.name}",
        LITERAL: "$${HOME} and $$ and ${secretKey}x",
        DJANGO_ALLOWED_HOSTS: "${hostnames}",
        DJANGO_CSRF_TRUSTED_ORIGINS: "${origins}",
        SITE_ROOT: "${origin}",
        SITE_HOST: "${hostname}",
        SITE_ALLOWED_HOSTS: "${hostnames.json}",
        SITE_CORS_ORIGINS: "${origins.json}",
      },
      hostnames: ["shop.example.com", "www.example.com"],
      secretEnv: { SECRET_KEY: "k3y", OTHER: "${database.password}" },
      secretKey: "k3y",
      database: { kind: "rds", sqliteFile: "app.db" },
      databaseUrl: "postgresql://shop_prod:p%40ss@db.example.com:5433/shop_prod?sslmode=require",
    });
    assert.deepEqual(
      v.split("\n").filter((l) => /^(SQLALCHEMY|POSTGRES|DJANGO|ASYNC|LITERAL|OTHER|SECRET|SITE)/.test(l)),
      [
        'ASYNC_URL="postgresql+asyncpg://shop_prod:p@ss@db.example.com/shop_prod"',
        'DJANGO_ALLOWED_HOSTS="shop.example.com,www.example.com"',
        'DJANGO_CSRF_TRUSTED_ORIGINS="https://shop.example.com,https://www.example.com"',
        'DJANGO_SECRET="k3y"',
        'LITERAL="\\${HOME} and \\$\\$ and k3yx"',
        'OTHER="\\${database.password}"',
        'POSTGRES_DB="shop_prod"',
        'POSTGRES_PASSWORD="p@ss"',
        'POSTGRES_PORT="5433"',
        'POSTGRES_SERVER="db.example.com"',
        'POSTGRES_USER="shop_prod"',
        'SECRET_KEY="k3y"',
        'SITE_ALLOWED_HOSTS="[\\"shop.example.com\\",\\"www.example.com\\"]"',
        'SITE_CORS_ORIGINS="[\\"https://shop.example.com\\",\\"https://www.example.com\\"]"',
        'SITE_HOST="shop.example.com"',
        'SITE_ROOT="https://shop.example.com"',
        'SQLALCHEMY_DATABASE_URI="postgresql://shop_prod:p%40ss@db.example.com:5433/shop_prod?sslmode=require"',
      ],
    );
  });

  it("sqlite: ${database.url} is the file's URL, ${database.path} the file; a part SQLite lacks is refused with every other", () => {
    const v = renderEnvFile(layout, {
      ...input(),
      env: { DB: "${database.url}", FLASK_DATABASE: "${database.path}" },
    });
    assert.ok(v.includes('DB="sqlite:////srv/shop-prod/shared/data/app.db"'));
    assert.ok(v.includes('FLASK_DATABASE="/srv/shop-prod/shared/data/app.db"'), v);
    assert.throws(() => renderEnvFile(layout, { ...input(), env: { A: "${database.host}", B: "${nope}" } }), {
      message:
        "env file /etc/apphost/shop-prod.env: fix these settings:\n" +
        "  - apphost:app.env.A: ${database.host}: a SQLite database has no host; only ${database.url} (sqlite:///...) and ${database.path} (the file) are set\n" +
        "  - apphost:app.env.B: ${nope} is not a reference apphost knows; use one of ${database.url}, ${database.path}, ${database.host}, ${database.port}, ${database.user}, ${database.password}, ${database.name}, ${secretKey}, ${hostnames}, ${origins}, ${hostname}, ${origin}, ${hostnames.json}, ${origins.json}, or write $${ for a literal ${",
    });
  });
});
