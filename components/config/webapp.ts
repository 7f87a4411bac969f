/**
 * The web application a Python app serves, found in its files, for the
 * example apphost:app.processes' error gives an app that says no web command
 * and has no Procfile: a Django project's WSGI module (manage.py's settings),
 * or the Flask, FastAPI, Starlette, Litestar or Quart application a module
 * makes (`app = FastAPI()`, `app = create_app()`) or a factory returns
 * (`def create_app():`), with the server that runs it and the directory to
 * start it in (`cd backend && uvicorn app.main:app ...`).
 *
 * It reads Python files of MAX_BYTES at most, three directories deep: MAX_FILES
 * for the application, as many again for the imports that place its module.
 */
import * as fs from "fs";
import * as path from "path";

export interface PythonWebApp {
  /** The directory the command starts in, as Python imports the module from it: "" for the app's root */
  dir: string;
  /** What the server loads: `shynet.wsgi`, `app.main:app`, `flaskr:create_app` */
  target: string;
  /** gunicorn for WSGI (Django, Flask), uvicorn for ASGI, hypercorn for Quart (which requires it) */
  server: "gunicorn" | "uvicorn" | "hypercorn";
  /** The target is a factory to call (gunicorn's and hypercorn's `"mod:create_app()"`, uvicorn's --factory) */
  factory: boolean;
  /** Where it was found, for the message: `backend/app/main.py makes app, the FastAPI application` */
  found: string;
  /**
   * Whether the app's dependency files name the server (or fastapi[standard], which brings uvicorn, or quart, which
   * brings hypercorn); undefined when there are none to read
   */
  listed?: boolean;
}

const MAX_FILES = 400;
const MAX_BYTES = 256 * 1024;
const MAX_DEPTH = 3;

/** Directories no web application is looked for in: tests, migrations, virtual environments, front ends. */
const SKIP_DIRS = new Set([
  "node_modules",
  "venv",
  "env",
  "site-packages",
  "test",
  "tests",
  "migrations",
  "alembic",
  "docs",
  "doc",
  "static",
  "templates",
  "frontend",
  "scripts",
  "build",
  "dist",
]);

/** File names a web application's module usually has, most likely first; any other name comes after them. */
const NAME_RANK = [
  "wsgi",
  "asgi",
  "main",
  "app",
  "application",
  "autoapp",
  "server",
  "serve",
  "run",
  "__init__",
];

const ASGI_FRAMEWORKS = ["FastAPI", "Starlette", "Litestar", "Quart"];
const FRAMEWORKS = ["Flask", ...ASGI_FRAMEWORKS];
const PRECEDENCE = ["FastAPI", "Litestar", "Quart", "Starlette", "Flask"];

/** The app's web application, or undefined when none is found (the example stays `gunicorn app:app`). */
export function pythonWebApp(dir: string, dependencies: string): PythonWebApp | undefined {
  const app = djangoProject(dir) ?? frameworkApp(dir, dependencies);
  if (!app || dependencies.trim() === "") return app;
  const by = BROUGHT_BY[app.server];
  const brought =
    by !== undefined &&
    (by.extras.length === 0
      ? names(dependencies, by.pkg)
      : new RegExp(`(^|[^\\w-])${by.pkg}\\s*\\[[^\\]]*\\b(${by.extras.join("|")})\\b`, "im").test(
          dependencies,
        ));
  return { ...app, listed: names(dependencies, app.server) || brought };
}

/**
 * A main dependency that brings a server with it: fastapi[standard] and fastapi[all] require uvicorn[standard]; quart
 * requires hypercorn (no extra).
 */
export const BROUGHT_BY: Readonly<Record<string, { pkg: string; extras: readonly string[] }>> = {
  uvicorn: { pkg: "fastapi", extras: ["standard", "all"] },
  hypercorn: { pkg: "quart", extras: [] },
};

/** Whether dependency files' text names `pkg` (`flask`, not `flask-sqlalchemy`), in any case. */
function names(dependencies: string, pkg: string): boolean {
  return new RegExp(`(^|[^\\w-])${pkg}([^\\w-]|$)`, "im").test(dependencies);
}

/** The web command for `app`, listening on 127.0.0.1:$PORT. */
export function pythonWebCommand(app: PythonWebApp): string {
  const cd = app.dir ? `cd ${app.dir} && ` : "";
  if (app.server === "uvicorn")
    return `${cd}uvicorn ${app.target}${app.factory ? " --factory" : ""} --host 127.0.0.1 --port $PORT`;
  if (app.server === "hypercorn")
    return `${cd}hypercorn ${app.factory ? `"${app.target}()"` : app.target} --bind 127.0.0.1:$PORT`;
  return `${cd}gunicorn ${app.factory ? `"${app.target}()"` : app.target} --bind 127.0.0.1:$PORT`;
}

/** Directory names the example can put after `cd` as they are. */
function subdirs(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() && /^\w[\w.-]*$/.test(e.name) && !SKIP_DIRS.has(e.name.toLowerCase()))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

function readSmall(file: string): string | undefined {
  try {
    const stat = fs.statSync(file);
    return stat.isFile() && stat.size <= MAX_BYTES ? fs.readFileSync(file, "utf8") : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A Django project's WSGI module: the settings module its manage.py sets as DJANGO_SETTINGS_MODULE's default (at the
 * top, or one directory down: shynet/manage.py), then the `wsgi.py` beside it or in a package above it
 * (`config.settings.production`: config/wsgi.py).
 */
function djangoProject(dir: string): PythonWebApp | undefined {
  for (const sub of ["", ...subdirs(dir)]) {
    const manage = readSmall(path.join(dir, sub, "manage.py"));
    const settings = manage && /DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']/.exec(manage)?.[1];
    const parts = settings ? settings.split(".") : [];
    for (let n = parts.length - 1; n >= 1; n--) {
      const pkg = parts.slice(0, n);
      if (fs.statSync(path.join(dir, sub, ...pkg, "wsgi.py"), { throwIfNoEntry: false })?.isFile()) {
        const module = [...pkg, "wsgi"].join(".");
        return {
          dir: sub,
          target: module,
          server: "gunicorn",
          factory: false,
          found: `${sub ? `${sub}/` : ""}manage.py's settings have ${module} beside them, the WSGI application`,
        };
      }
    }
  }
  return undefined;
}

interface Candidate {
  file: string; // relative to the app, with /
  depth: number;
  factory: boolean;
  name: string; // the module-level variable, or the factory
  framework: string;
}

/**
 * A module that makes the application at its top level (`app = FastAPI()`, `app = create_app()`,
 * `application = get_application()`), else a factory that takes no argument (`def create_app(test_config=None):`).
 * Shallower files first, then the usual names (wsgi.py, main.py, app.py...): CTFd's wsgi.py before its populate.py.
 */
function frameworkApp(dir: string, dependencies: string): PythonWebApp | undefined {
  const candidates: Candidate[] = [];
  let read = 0;
  const visit = (rel: string, depth: number) => {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(dir, rel)).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (read >= MAX_FILES) return;
      if (!name.endsWith(".py") || /^(test_|conftest\.py$|setup\.py$|manage\.py$)/.test(name)) continue;
      const text = readSmall(path.join(dir, rel, name));
      read++;
      if (text === undefined) continue;
      const found = applicationIn(text, dependencies);
      if (found) candidates.push({ file: rel ? `${rel}/${name}` : name, depth, ...found });
    }
    if (depth < MAX_DEPTH)
      for (const sub of subdirs(path.join(dir, rel))) visit(rel ? `${rel}/${sub}` : sub, depth + 1);
  };
  visit("", 0);
  const rank = (c: Candidate) => {
    const i = NAME_RANK.indexOf(path.basename(c.file, ".py"));
    return i < 0 ? NAME_RANK.length : i;
  };
  candidates.sort((a, b) => a.depth - b.depth || Number(a.factory) - Number(b.factory) || rank(a) - rank(b));
  for (const c of candidates) {
    const where = importRoot(dir, c.file);
    if (!where) continue;
    return {
      dir: where.dir,
      target: `${where.module}:${c.name}`,
      server:
        c.framework === "Quart"
          ? "hypercorn"
          : ASGI_FRAMEWORKS.includes(c.framework)
            ? "uvicorn"
            : "gunicorn",
      factory: c.factory,
      found: c.factory
        ? `${c.file}'s ${c.name}() makes the ${c.framework} application`
        : `${c.file} makes ${c.name}, the ${c.framework} application`,
    };
  }
  return undefined;
}

/** The application a module's text makes at its top level, or the factory it defines, and its framework. */
function applicationIn(
  text: string,
  dependencies: string,
): { factory: boolean; name: string; framework: string } | undefined {
  // `app = FastAPI(`, `app: Flask = create_app(`: a call at column 0.
  const made = /^(app|application)\s*(?::\s*[\w.[\], ]+)?=\s*([\w.]+)\(/m.exec(text);
  const direct =
    /^(\w+)\s*(?::\s*[\w.[\], ]+)?=\s*(?:\w+\.)?(Flask|FastAPI|Starlette|Litestar|Quart)\(/m.exec(text);
  // A factory with no required argument: `def create_app():`, `def create_app(config="CTFd.config.Config"):`.
  const factory = /^def ((?:create|make|get)_(?:app|application))\(\s*(?:\)|\*|\w+\s*(?::[^=,)]*)?=)/m.exec(
    text,
  );
  const framework = frameworkOf(text, dependencies);
  if (direct) return { factory: false, name: direct[1], framework: direct[2] };
  if (!framework) return undefined;
  if (made && !/^(?:os|sys|logging|typer|click|celery|Celery)\b/.test(made[2]))
    return { factory: false, name: made[1], framework };
  if (factory) return { factory: true, name: factory[1], framework };
  return undefined;
}

/** The framework a module imports, else the one the app's dependencies name (an autoapp.py imports only create_app). */
function frameworkOf(text: string, dependencies: string): string | undefined {
  // flask_migrate, flask_sqlalchemy: a Flask extension's import says Flask too (flasky.py imports only those).
  const imported = /^(?:from|import)\s+(flask|fastapi|starlette|litestar|quart)(?:_\w+)?\b/im.exec(text)?.[1];
  if (imported) return FRAMEWORKS.find((f) => f.toLowerCase() === imported.toLowerCase());
  // FastAPI and Litestar need Starlette's or their own parts, Quart needs Flask: the first one named is the app's.
  return PRECEDENCE.find((f) => names(dependencies, f));
}

/**
 * The directory Python imports `file` from, and its module name. The app's own absolute imports say where its
 * packages start (FastAPI-boilerplate's src/app/main.py beside `from app.core import ...`: `cd src`, module
 * app.main; fba's `from backend.app import ...`: the root, backend.main); without them, above the packages the file
 * is in (their __init__.py). Undefined when that directory is not one the example can `cd` to.
 */
function importRoot(dir: string, file: string): { dir: string; module: string } | undefined {
  const parts = file.replace(/\.py$/, "").split("/");
  const dirs = parts.slice(0, -1);
  const names = dirs.length > 0 ? absoluteImports(path.join(dir, dirs[0])) : new Set<string>();
  let top = dirs.findIndex((d) => names.has(d));
  if (top < 0) {
    top = dirs.length;
    while (top > 0 && fs.existsSync(path.join(dir, ...dirs.slice(0, top), "__init__.py"))) top--;
  }
  const module = parts.slice(top);
  if (module.length > 1 && module[module.length - 1] === "__init__") module.pop();
  if (module[0] === "__init__" || !module.every((p) => /^[A-Za-z_]\w*$/.test(p))) return undefined;
  return { dir: dirs.slice(0, top).join("/"), module: module.join(".") };
}

/** The top-level names the Python files under `root` import absolutely (`from app.core import x`: app). */
function absoluteImports(root: string): Set<string> {
  const names = new Set<string>();
  let read = 0;
  const visit = (d: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (read >= MAX_FILES) return;
      if (e.isFile() && e.name.endsWith(".py")) {
        read++;
        const text = readSmall(path.join(d, e.name)) ?? "";
        for (const m of text.matchAll(/^[ \t]*(?:from[ \t]+(\w+)[\w.]*[ \t]+import|import[ \t]+(\w+))/gm))
          names.add(m[1] ?? m[2]);
      } else if (
        e.isDirectory() &&
        depth < MAX_DEPTH &&
        !/^(\.|node_modules$|venv$|site-packages$)/.test(e.name)
      ) {
        visit(path.join(d, e.name), depth + 1);
      }
    }
  };
  visit(root, 0);
  return names;
}
