/**
 * The port a web process listens on. apphost starts each release's web
 * instance on the other of two ports and passes it in $PORT (blue/green), so a
 * command that binds a port of its own, or leaves its server on a default
 * port, fails a release's health gate (the first, unless its port is the
 * first release's, basePort+1; then every later one). Refused here, before
 * anything changes, as the command is written, like procfile.ts reads chained
 * commands; a script that binds one (`python server.py`) is named by the gate.
 *
 * Pure.
 */

/**
 * Servers that listen on a port of their own unless an option tells them otherwise, whatever $PORT says
 * (gunicorn and fastapi-cli's `fastapi run` read $PORT; checked against uvicorn 0.54, Hypercorn 0.18, daphne 4.2,
 * waitress 3.0 and Flask 3.1 with PORT set).
 */
const DEFAULT_PORT_SERVERS: ReadonlyArray<{
  name: string;
  runs: RegExp;
  port: number;
  told: RegExp;
  write: string;
}> = [
  {
    name: "uvicorn",
    runs: /(?:^|[\s/])uvicorn\s/,
    port: 8000,
    told: /\s--(?:port|fd|uds)\b/,
    write: "--port $PORT",
  },
  {
    name: "flask run",
    runs: /(?:^|[\s/])flask\s(?:\S+\s+)*?run(?:\s|$)/,
    port: 5000,
    told: /\s(?:--port|-p)\b/,
    write: "--port $PORT",
  },
  {
    name: "hypercorn",
    runs: /(?:^|[\s/])hypercorn\s/,
    port: 8000,
    told: /\s(?:--bind|-b)\b/,
    write: "--bind 127.0.0.1:$PORT",
  },
  {
    name: "daphne",
    runs: /(?:^|[\s/])daphne\s/,
    port: 8000,
    told: /\s(?:--port|-p|--unix-socket|-u|--endpoint|-e|--fd)\b/,
    write: "--port $PORT",
  },
  {
    name: "waitress-serve",
    runs: /(?:^|[\s/])waitress-serve\s/,
    port: 8080,
    told: /\s--(?:port|listen|unix-socket)\b/,
    write: "--port=$PORT",
  },
  {
    name: "manage.py runserver",
    runs: /\srunserver\b/,
    port: 8000,
    told: /\srunserver\s+(?:\S*:)?(?:\d+|\$\{?PORT)/,
    write: "runserver 127.0.0.1:$PORT",
  },
];

/** uvicorn's --uds and --fd, waitress's and daphne's --unix-socket, gunicorn's and hypercorn's unix: and fd:// binds. */
const SOCKET_ONLY =
  /(?:^|\s)(--uds[= ]\s*\S+|--fd[= ]\s*\d+|--unix-socket[= ]\s*\S+|(?:--bind|-b)[= ]?\s*(?:unix:|fd:\/\/)\S+)/;

const COLLIDES =
  "each release starts its web instance on the other of two ports (apphost:app.basePort and the one after it) " +
  "and passes that port in $PORT, so a fixed port collides with the instance still serving and the release fails its health gate";

/**
 * A web command that listens on a port of its own: one it names (`--port 8000`, `--bind 0.0.0.0:8000`,
 * `-b :8000`, `-p 3000`, `runserver 0.0.0.0:8000`), or a server's default when it names none
 * (`uvicorn app:app`). Its health gate would fail (a release starts on basePort+1, then alternates), or, on a port
 * that happens to be the first release's, every later one.
 */
export function webPortProblem(command: string): string | undefined {
  // A Unix socket or an inherited descriptor is fine beside $PORT, never instead of it: the proxy and the gate use TCP.
  const socket = /\$\{?PORT\b/.test(command) ? null : SOCKET_ONLY.exec(command);
  if (socket) {
    return (
      `listens on a Unix socket or an inherited descriptor only ("${socket[1].trim()}"); apphost's proxy and health gate ` +
      "reach the web instance over TCP on 127.0.0.1:$PORT, so no release would pass its health gate: bind 127.0.0.1:$PORT instead"
    );
  }
  const m =
    /(?:^|\s)(--port[= ]\s*|-p[= ]?\s*|(?:--bind|-b|--listen|--http)[= ]?\s*\S*:|runserver\s+(?:\S*:)?)(\d+)(?=\s|$)/.exec(
      command,
    );
  // `-p 4` is uWSGI's process count; a port a user would pick is 1024 or above.
  if (m && !(m[1].startsWith("-p") && Number(m[2]) < 1024)) {
    const [, option, port] = m;
    return `binds port ${port} itself ("${(option + port).trim()}"); ${COLLIDES}: write "${(option + "$PORT").trim()}"`;
  }
  const server = DEFAULT_PORT_SERVERS.find((s) => s.runs.test(command) && !s.told.test(command));
  if (!server) return undefined;
  return `listens on ${server.name}'s default port, ${server.port}, whatever $PORT says; ${COLLIDES}: add "${server.write}"`;
}

/**
 * A gunicorn config file's `bind` that names a port (`bind = "[::]:8000"`, BookWyrm's gunicorn.conf.py), which
 * gunicorn takes over $PORT; undefined for one that reads the environment, names no port, or is not there.
 */
export function gunicornBindProblem(file: string, text: string): string | undefined {
  // The statement, on one line: its first, and the indented lines and closing bracket of a list written over several.
  const bind = /^bind\s*=\s*([^\n]*(?:\n[ \t]+[^\n]*)*(?:\n[\])][^\n]*)?)/m
    .exec(text)?.[1]
    .replace(/\s+/g, " ")
    .trim();
  if (!bind || /PORT|environ|getenv/.test(bind)) return undefined;
  const port = /:(\d{2,5})\b/.exec(bind)?.[1];
  if (!port) return undefined;
  return (
    `gunicorn reads ${file}, whose bind = ${bind.length > 60 ? `${bind.slice(0, 57)}...` : bind} listens on port ${port} whatever $PORT says; ` +
    `${COLLIDES}: add "--bind 127.0.0.1:$PORT" to the web command, which gunicorn takes over the file's`
  );
}
