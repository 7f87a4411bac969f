/**
 * Pebble, Let's Encrypt's ACME test server (Debian's `pebble` package), run
 * by the spec itself on this machine: its ACME directory on the host side of
 * the sandbox's link (the sandbox reaches it there), its management API and
 * the challenge test server's DNS on loopback. Every name resolves to the
 * sandbox, so Pebble's HTTP-01 validation goes to the sandbox's port 80,
 * through the proxy apphost configured.
 *
 * Pebble ships no certificate for its own HTTPS listener: one is made here
 * with openssl, under a throwaway root, which the stacks get as
 * `apphost:tls.acmeCaRoot`.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { type Sandbox, tempDir } from "./lib";

export interface Pebble {
  /** `https://<address>:14000/dir` */
  directory: string;
  /** PEM of the root the directory's HTTPS certificate chains to (apphost:tls.acmeCaRoot) */
  listenerRoot: string;
  /** PEM of the root Pebble signs certificates with (to verify what the sandbox serves) */
  issuerRoot: string;
  /** File holding issuerRoot, for curl --cacert */
  issuerRootFile: string;
  stop(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

async function waitFor(what: string, check: () => boolean, seconds: number): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not come up within ${seconds}s`);
}

/**
 * Starts challtestsrv and Pebble; `address` is this machine's side of the sandbox link. Every listener binds
 * that address, not loopback: two specs' Pebbles (acme, debian13) run side by side, one per sandbox.
 */
export async function startPebble(address: string, sandboxHost: string): Promise<Pebble> {
  for (const tool of ["pebble", "pebble-challtestsrv", "openssl"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      throw new Error(
        `${tool} is missing: bash scripts/install-prereqs installs it (apt-get install -y pebble openssl)`,
      );
    }
  }
  // Removed with the run's other temp directories (kept with APPHOST_E2E_KEEP=1, to read pebble.log).
  const dir = tempDir("apphost-pebble-");
  // The listener's certificate, under a root of its own.
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "root.key",
      "-out",
      "root.pem",
      "-days",
      "2",
      "-subj",
      "/CN=apphost test ACME listener root",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
  openssl(
    ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=pebble"],
    dir,
  );
  fs.writeFileSync(
    path.join(dir, "leaf.ext"),
    `subjectAltName=IP:${address},IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n`,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "root.pem",
      "-CAkey",
      "root.key",
      "-CAcreateserial",
      "-out",
      "cert.pem",
      "-days",
      "2",
      "-extfile",
      "leaf.ext",
    ],
    dir,
  );
  fs.writeFileSync(
    path.join(dir, "pebble.json"),
    JSON.stringify({
      pebble: {
        listenAddress: `${address}:14000`,
        managementListenAddress: `${address}:15000`,
        certificate: path.join(dir, "cert.pem"),
        privateKey: path.join(dir, "key.pem"),
        // Validation goes through the proxy on the sandbox, not Pebble's default 5002.
        httpPort: 80,
        tlsPort: 443,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
      },
    }),
  );
  const children: ChildProcess[] = [];
  const logFile = fs.openSync(path.join(dir, "pebble.log"), "a");
  const start = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const child = spawn(cmd, args, { stdio: ["ignore", logFile, logFile], env: { ...process.env, ...env } });
    children.push(child);
  };
  // Every A query answers the sandbox's address; nothing else listens.
  start("pebble-challtestsrv", [
    "-defaultIPv4",
    sandboxHost,
    "-defaultIPv6",
    "",
    "-dns01",
    `${address}:8053`,
    "-management",
    `${address}:8055`,
    "-http01",
    "",
    "-https01",
    "",
    "-tlsalpn01",
    "",
  ]);
  // No random sleeps before validation, no nonce rejections: the clients' retry paths are not under test.
  start("pebble", ["-config", path.join(dir, "pebble.json"), "-dnsserver", `${address}:8053`], {
    PEBBLE_VA_NOSLEEP: "1",
    PEBBLE_WFE_NONCEREJECT: "0",
  });
  const stop = () => {
    for (const c of children) c.kill("SIGTERM");
    fs.closeSync(logFile);
  };
  const curl = (url: string) =>
    spawnSync("curl", ["-sS", "--fail", "--max-time", "5", "--cacert", path.join(dir, "root.pem"), url], {
      encoding: "utf8",
    });
  try {
    await waitFor("pebble", () => curl(`https://${address}:14000/dir`).status === 0, 30);
    const issuerRoot = curl(`https://${address}:15000/roots/0`).stdout;
    if (!issuerRoot.includes("BEGIN CERTIFICATE")) throw new Error(`no root from pebble: ${issuerRoot}`);
    const issuerRootFile = path.join(dir, "issuer-root.pem");
    fs.writeFileSync(issuerRootFile, issuerRoot);
    return {
      directory: `https://${address}:14000/dir`,
      listenerRoot: fs.readFileSync(path.join(dir, "root.pem"), "utf8"),
      issuerRoot,
      issuerRootFile,
      stop,
    };
  } catch (e) {
    stop();
    throw new Error(`${(e as Error).message}\n${fs.readFileSync(path.join(dir, "pebble.log"), "utf8")}`);
  }
}

export interface Served {
  issuer: string;
  serial: string;
  names: string[];
}

/** The certificate the sandbox serves for `name` (SNI), read with openssl. */
export function served(sandbox: Sandbox, name: string): Served | undefined {
  const res = spawnSync(
    "sh",
    [
      "-c",
      `openssl s_client -connect ${sandbox.host}:443 -servername ${name} </dev/null 2>/dev/null | ` +
        "openssl x509 -noout -issuer -serial -ext subjectAltName",
    ],
    { encoding: "utf8", timeout: 15000 },
  );
  if (res.status !== 0 || !res.stdout.includes("issuer=")) return undefined;
  return {
    issuer: /^issuer=(.*)$/m.exec(res.stdout)![1],
    serial: /^serial=(.*)$/m.exec(res.stdout)![1],
    names: [...res.stdout.matchAll(/DNS:([^,\s]+)/g)].map((m) => m[1]),
  };
}

/** Polls until `name` is served with a Pebble certificate naming it (Caddy obtains it after it starts). */
export async function servedByPebble(sandbox: Sandbox, name: string, seconds = 90): Promise<Served> {
  const deadline = Date.now() + seconds * 1000;
  let last: Served | undefined;
  while (Date.now() < deadline) {
    last = served(sandbox, name);
    if (last && /Pebble/.test(last.issuer) && last.names.includes(name)) return last;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`no Pebble certificate for ${name} within ${seconds}s (last: ${JSON.stringify(last)})`);
}

/** HTTPS to the sandbox with Pebble's root as the only trusted one: the chain must verify. */
export function verifiedGet(
  sandbox: Sandbox,
  pebble: Pebble,
  name: string,
  urlPath: string,
): { code: number; body: string } {
  const res = spawnSync(
    "curl",
    [
      "-sS",
      "--max-time",
      "10",
      "--cacert",
      pebble.issuerRootFile,
      "--resolve",
      `${name}:443:${sandbox.host}`,
      `https://${name}${urlPath}`,
    ],
    { encoding: "utf8" },
  );
  return { code: res.status ?? 1, body: res.stdout + res.stderr };
}
