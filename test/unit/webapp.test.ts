/**
 * components/config/webapp.ts: the web application a Python app's files make, for the example web command of an
 * app that says none. Each layout is a real app's, cut down to the lines the search reads.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import assert from "assert/strict";
import { pythonWebApp, pythonWebCommand } from "../../components/config/webapp";

describe("the web application a Python app makes (webapp.ts)", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-webapp-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (files: Record<string, string>) => {
    for (const [file, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), text);
    }
  };
  /** The example command and where it was found, or "none". */
  const example = (dependencies = "") => {
    const app = pythonWebApp(dir, dependencies);
    return app ? `${pythonWebCommand(app)} [${app.found} ${app.server} serves]` : "none";
  };

  it("a module that makes a Flask application: gunicorn module:app (flaskr-tdd's project/app.py)", () => {
    write({
      "project/__init__.py": "",
      "project/app.py": "from flask import Flask, render_template\n\napp = Flask(__name__)\n",
      "tests/test_app.py": "from project.app import app\napp = Flask('tests')\n",
    });
    assert.equal(
      example(),
      "gunicorn project.app:app --bind 127.0.0.1:$PORT [project/app.py makes app, the Flask application gunicorn serves]",
    );
  });

  it("a FastAPI application one directory down whose code imports `app.` absolutely: cd there (full-stack-fastapi-template)", () => {
    write({
      "backend/app/__init__.py": "",
      "backend/app/main.py":
        "from fastapi import FastAPI\nfrom app.api.main import api_router\n\napp = FastAPI(\n    title='x',\n)\n",
      "backend/app/api/main.py": "from fastapi import APIRouter\napi_router = APIRouter()\n",
    });
    assert.equal(
      example(),
      "cd backend && uvicorn app.main:app --host 127.0.0.1 --port $PORT " +
        "[backend/app/main.py makes app, the FastAPI application uvicorn serves]",
    );
  });

  it("src/ a package too, but the code imports `app.`: cd src (FastAPI-boilerplate); `backend.` imports keep the root (fba)", () => {
    write({
      "src/__init__.py": "",
      "src/app/__init__.py": "",
      "src/app/main.py":
        "from .core.setup import create_application\n\napp = create_application(router=router)\n",
      "src/app/core/setup.py": "from fastapi import FastAPI\nfrom app.core.config import settings\n",
    });
    assert.equal(
      example('dependencies = ["fastapi>=0.115", "uvicorn", "starlette"]'),
      "cd src && uvicorn app.main:app --host 127.0.0.1 --port $PORT " +
        "[src/app/main.py makes app, the FastAPI application uvicorn serves]",
    );
    fs.rmSync(path.join(dir, "src"), { recursive: true });
    write({
      "backend/__init__.py": "",
      "backend/main.py": "from backend.core.registrar import register_app\n\napp = register_app()\n",
      "backend/core/registrar.py": "from fastapi import FastAPI\n",
    });
    assert.equal(
      example("fastapi[standard]==0.116\n"),
      "uvicorn backend.main:app --host 127.0.0.1 --port $PORT [backend/main.py makes app, the FastAPI application uvicorn serves]",
    );
  });

  it("a factory with no required argument: gunicorn's call syntax, uvicorn's --factory; one that needs an argument is passed over", () => {
    write({
      "flaskr/__init__.py":
        "import os\n\nfrom flask import Flask\n\n\ndef create_app(test_config=None):\n    app = Flask(__name__)\n",
    });
    assert.equal(
      example(),
      `gunicorn "flaskr:create_app()" --bind 127.0.0.1:$PORT [flaskr/__init__.py's create_app() makes the Flask application gunicorn serves]`,
    );
    write({ "flaskr/__init__.py": "from flask import Flask\n\ndef create_app(config_name):\n    pass\n" });
    assert.equal(example(), "none");
    fs.rmSync(path.join(dir, "flaskr"), { recursive: true });
    write({
      "api/app.py":
        "from litestar import Litestar\n\ndef create_app() -> Litestar:\n    return Litestar([])\n",
    });
    assert.equal(
      example(),
      // api/ is no package (no __init__.py, no `api.` import): Python finds app.py from inside it.
      "cd api && uvicorn app:create_app --factory --host 127.0.0.1 --port $PORT " +
        "[api/app.py's create_app() makes the Litestar application uvicorn serves]",
    );
  });

  it("the top level first, then wsgi.py before scripts that make the app too (CTFd); a CLI's app is not a web one", () => {
    write({
      "populate.py": "from CTFd import create_app\napp = create_app()\n",
      "wsgi.py": "from gevent import monkey\nfrom CTFd import create_app\n\napp = create_app()\n",
      "cli.py": "import typer\napp = typer.Typer()\n",
      "CTFd/__init__.py":
        'from flask import Flask\n\ndef create_app(config="CTFd.config.Config"):\n    pass\n',
    });
    assert.equal(
      example("Flask==3.1.1\nFlask-SQLAlchemy==3.1\n"),
      "gunicorn wsgi:app --bind 127.0.0.1:$PORT [wsgi.py makes app, the Flask application gunicorn serves]",
    );
    // Without the dependencies to say Flask, the top level's modules tell no framework: CTFd/__init__.py's factory.
    assert.equal(
      example(),
      `gunicorn "CTFd:create_app()" --bind 127.0.0.1:$PORT [CTFd/__init__.py's create_app() makes the Flask application gunicorn serves]`,
    );
  });

  it("a Flask extension's import says Flask (flasky.py); an ASGI framework named beside Flask in the dependencies wins", () => {
    write({
      "flasky.py":
        "import os\nfrom flask_migrate import Migrate\nfrom app import create_app, db\n\napp = create_app(os.getenv('FLASK_CONFIG') or 'default')\n",
    });
    assert.equal(
      example(),
      "gunicorn flasky:app --bind 127.0.0.1:$PORT [flasky.py makes app, the Flask application gunicorn serves]",
    );
    write({ "flasky.py": "from app import create_app\napp = create_app()\n" });
    assert.equal(example(), "none");
    assert.equal(
      example("quart==0.20\nflask==3.1\n"),
      "hypercorn flasky:app --bind 127.0.0.1:$PORT [flasky.py makes app, the Quart application hypercorn serves]",
    );
  });

  it("a Quart application is served by hypercorn, which quart requires; a factory is called as gunicorn calls it (esfoobar/quart-postgres-boilerplate)", () => {
    write({
      "my_app/__init__.py": "",
      "my_app/application.py":
        "from quart import Quart\n\nasync def create_app(**config_overrides):\n    app = Quart(__name__)\n    return app\n",
      "my_app/asgi.py":
        "import asyncio\nfrom my_app.application import create_app\n\napp = asyncio.run(create_app())\n",
    });
    const deps = '[tool.poetry.dependencies]\npython = "^3.10"\nquart = "0.18.4"\n';
    assert.equal(
      example(deps),
      "hypercorn my_app.asgi:app --bind 127.0.0.1:$PORT [my_app/asgi.py makes app, the Quart application hypercorn serves]",
    );
    assert.equal(pythonWebApp(dir, deps)?.listed, true, "quart brings hypercorn");
    // A Quart app whose dependencies name neither quart nor hypercorn (a plugin's name is not quart's).
    write({ "app.py": "from quart import Quart\napp = Quart(__name__)\n" });
    assert.deepEqual(
      [pythonWebApp(dir, "quart-schema==0.20\n")?.server, pythonWebApp(dir, "quart-schema==0.20\n")?.listed],
      ["hypercorn", false],
    );
    assert.equal(
      pythonWebCommand({
        dir: "",
        target: "my_app:create_app",
        server: "hypercorn",
        factory: true,
        found: "",
      }),
      'hypercorn "my_app:create_app()" --bind 127.0.0.1:$PORT',
    );
  });

  it("says whether the dependency files name the server: gunicorn, uvicorn, or fastapi[standard] that brings uvicorn", () => {
    write({
      "flaskr/__init__.py": "from flask import Flask\n\ndef create_app(test_config=None):\n    pass\n",
    });
    const listed = (deps: string) => pythonWebApp(dir, deps)?.listed;
    assert.equal(listed(""), undefined, "no dependency files: nothing to say");
    assert.equal(listed('[project]\ndependencies = ["flask"]\n'), false);
    assert.equal(listed("Flask==3.1\ngunicorn==23.0.0\n"), true);
    assert.equal(
      listed("Flask==3.1\ngunicorn-thing==1\n"),
      false,
      "another package whose name starts with it",
    );
    fs.rmSync(path.join(dir, "flaskr"), { recursive: true });
    write({ "main.py": "from fastapi import FastAPI\napp = FastAPI()\n" });
    assert.equal(listed('dependencies = ["fastapi[standard]>=0.115"]'), true);
    assert.equal(listed('dependencies = ["fastapi>=0.115", "Uvicorn[standard]"]'), true);
    assert.equal(listed('dependencies = ["fastapi[all]"]'), true);
    assert.equal(listed('dependencies = ["fastapi>=0.115"]'), false);
  });

  it("a Django project's WSGI module comes first; directories a command cannot cd to as written, tests and virtualenvs are not searched", () => {
    write({
      "my site/app.py": "from flask import Flask\napp = Flask(__name__)\n",
      "tests/app.py": "from flask import Flask\napp = Flask(__name__)\n",
      "venv/lib/app.py": "from flask import Flask\napp = Flask(__name__)\n",
    });
    assert.equal(example(), "none");
    write({
      "manage.py": 'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")\n',
      "config/wsgi.py": "",
      "config/app.py": "from flask import Flask\napp = Flask(__name__)\n",
    });
    assert.equal(
      example(),
      "gunicorn config.wsgi --bind 127.0.0.1:$PORT [manage.py's settings have config.wsgi beside them, the WSGI application gunicorn serves]",
    );
  });
});
