/**
 * The ssh command line apphost runs: checked with OpenSSH itself (`ssh -G`
 * prints the configuration a connection would use, without connecting).
 */
import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { asRootFromStdin, commandConnection } from "../../components/remote/command";
import type { SshConnection } from "../../components/remote/connection";
import {
  jumpKnownHostsLine,
  jumpProxyCommand,
  keyTempDir,
  sshArgv,
  sshFailure,
} from "../../components/remote/ssh";

const conn = { host: "203.0.113.9", port: 2222, user: "admin", privateKey: "unused" };

describe("remote/ssh: the ssh command line", () => {
  let dir: string;
  let userConfig: string;
  before(() => {
    // A deployer config that forwards the agent, X11 and a port to every host, and names another user.
    // OpenSSH reads ~/.ssh/config from the passwd entry's home, so it is given with -F here.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-ssh-"));
    userConfig = path.join(dir, "config");
    fs.writeFileSync(
      userConfig,
      "Host *\n  ForwardAgent yes\n  ForwardX11 yes\n  LocalForward 5433 127.0.0.1:5432\n  User someoneelse\n",
      { mode: 0o600 },
    );
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** `ssh -G`: the configuration this command line would connect with, without connecting. */
  const effective = (argv: string[]) => {
    const r = spawnSync("ssh", ["-G", ...argv.slice(0, argv.indexOf("--"))], { encoding: "utf8" });
    assert.ok(!r.error, `ssh is not installed: ${String(r.error)}`);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const argv = () => sshArgv(conn, { identity: "/tmp/id", knownHosts: "/tmp/kh" }, "true");
  /** The command line with the deployer's config file in place of `-F none`. */
  const withUserConfig = (a: string[]) =>
    a.map((w, i) => (w === "none" && a[i - 1] === "-F" ? userConfig : w));

  it("reads no ssh config file at all (-F none), and its own options win over one", () => {
    assert.deepEqual(argv().slice(0, 2), ["-F", "none"]);
    const cfg = effective(withUserConfig(argv()));
    assert.match(cfg, /^forwardagent no$/m);
    assert.match(cfg, /^forwardx11 no$/m);
    assert.match(cfg, /^clearallforwardings yes$/m);
    assert.match(cfg, /^user admin$/m);
    assert.match(cfg, /^port 2222$/m);
    assert.match(cfg, /^batchmode yes$/m);
    assert.match(cfg, /^identitiesonly yes$/m);
  });

  it("without its forwarding options the same config would forward the agent: the test can fail", () => {
    const a = withUserConfig(argv());
    assert.deepEqual(a.slice(2, 8), [
      "-o",
      "ForwardAgent=no",
      "-o",
      "ForwardX11=no",
      "-o",
      "ClearAllForwardings=yes",
    ]);
    const cfg = effective([...a.slice(0, 2), ...a.slice(8)]);
    assert.match(cfg, /^forwardagent yes$/m);
    assert.match(cfg, /^localforward 5433 \[?127\.0\.0\.1\]?:5432$/m);
  });

  it("pins a known host key strictly; accepts the first one only when none is known", () => {
    const pinned = effective(
      sshArgv(
        { ...conn, hostKey: "ssh-ed25519 AAAA" },
        { identity: "/tmp/id", knownHosts: "/tmp/kh" },
        "true",
      ),
    );
    assert.match(pinned, /^stricthostkeychecking true$/m);
    assert.match(pinned, /^userknownhostsfile \/tmp\/kh$/m);
    const first = effective(sshArgv(conn, { identity: "/tmp/id", knownHosts: "/tmp/kh" }, "true"));
    assert.match(first, /^stricthostkeychecking accept-new$/m);
  });
});

describe("remote/ssh: through a jump host (apphost:host.via.jump)", () => {
  const jump = {
    kind: "jump" as const,
    host: "198.51.100.5",
    port: 2200,
    user: "jumper",
    privateKey: "jump-key",
    hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  };
  const viaJump: SshConnection = { ...conn, proxy: jump };
  const files = {
    identity: "/tmp/d/id",
    knownHosts: "/tmp/d/kh",
    jumpIdentity: "/tmp/d/jid",
    jumpKnownHosts: "/tmp/d/jkh",
  };

  it("tunnels with the jump host's own ssh: no config, its key, its pinned host key, no agent, -W to the host", () => {
    assert.equal(
      jumpProxyCommand(jump, files),
      "ssh -F none -i /tmp/d/jid -p 2200 -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile=/tmp/d/jkh " +
        "-o StrictHostKeyChecking=yes -o ForwardAgent=no -o ForwardX11=no -o ConnectTimeout=15 -o LogLevel=ERROR -W %h:%p jumper@198.51.100.5",
    );
    assert.equal(jumpKnownHostsLine(jump), `[198.51.100.5]:2200 ${jump.hostKey}\n`);
    assert.equal(jumpKnownHostsLine({ ...jump, port: 22 }), `198.51.100.5 ${jump.hostKey}\n`);
    const argv = sshArgv(viaJump, files, "true");
    const i = argv.indexOf(`ProxyCommand=${jumpProxyCommand(jump, files)}`);
    assert.ok(i > 0 && argv[i - 1] === "-o", argv.join(" "));
    assert.equal(
      sshArgv(conn, files, "true").some((w) => w.startsWith("ProxyCommand=")),
      false,
    );
  });

  it("OpenSSH reads it as the connection's proxy command, the host's options unchanged", () => {
    const a = sshArgv(viaJump, files, "true");
    const r = spawnSync("ssh", ["-G", ...a.slice(0, a.indexOf("--"))], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^proxycommand ssh -F none -i \/tmp\/d\/jid -p 2200 .* -W %h:%p jumper@198\.51\.100\.5$/m,
    );
    assert.match(r.stdout, /^hostname 203\.0\.113\.9$/m);
    assert.match(r.stdout, /^port 2222$/m);
    assert.match(r.stdout, /^forwardagent no$/m);
  });

  it("names the jump host when that is where it failed; the host otherwise", () => {
    assert.equal(
      sshFailure(
        viaJump,
        "ssh: connect to host 198.51.100.5 port 2200: Connection refused\r\nConnection closed by UNKNOWN port 65535\n",
      ),
      "ssh to admin@203.0.113.9:2222 failed: the jump host jumper@198.51.100.5:2200 (apphost:host.via.jump) could not be reached",
    );
    assert.equal(
      sshFailure(
        viaJump,
        "channel 0: open failed: connect failed: No route to host\nstdio forwarding failed\n",
      ),
      "ssh to admin@203.0.113.9:2222 through the jump host jumper@198.51.100.5:2200 (apphost:host.via.jump) failed: the jump host could not reach 203.0.113.9:2222",
    );
    assert.equal(
      sshFailure(conn, "ssh: connect to host 203.0.113.9 port 2222: Connection refused\n"),
      "ssh to admin@203.0.113.9:2222 failed",
    );
  });

  it("@pulumi/command steps go through the same jump host, its key pinned", () => {
    const c = commandConnection(viaJump);
    assert.deepEqual(c.proxy, {
      host: "198.51.100.5",
      port: 2200,
      user: "jumper",
      privateKey: "jump-key",
      hostKey: jump.hostKey,
      dialErrorLimit: 4,
      perDialTimeout: 15,
    });
    assert.equal(commandConnection(conn).proxy, undefined);
  });
});

describe("remote/ssh: the key directories of processes that are gone", () => {
  let root: string;
  beforeEach(() => (root = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-keydirs-"))));
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  /** A directory holding a key file, as runRemote writes it. */
  const keyDir = (name: string, ageDays = 0) => {
    const dir = path.join(root, name);
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.writeFileSync(path.join(dir, "id"), "-----BEGIN OPENSSH PRIVATE KEY-----\n", { mode: 0o600 });
    const when = new Date(Date.now() - ageDays * 86400e3);
    fs.utimesSync(dir, when, when);
    return name;
  };

  it("removes those of dead processes and old unnamed ones, keeps live ones and anything else", () => {
    const gone = spawnSync("true").pid; // exited: its pid is free
    const dead = keyDir(`apphost-ssh-${gone}-a1B2c3`);
    const own = keyDir(`apphost-ssh-${process.pid}-d4E5f6`);
    const init = keyDir("apphost-ssh-1-g7H8i9"); // pid 1 lives, whoever owns it
    const oldSsh = keyDir("apphost-ssh-Xy12Zw", 2);
    const oldScan = keyDir("apphost-scan-Qr34St", 2);
    const recent = keyDir("apphost-ssh-Uv56Wx"); // a run of the old code may still be connecting
    const other = keyDir(`apphost-ssh-${gone}-notmine`, 2); // not a name keyTempDir makes
    const made = keyTempDir(root);
    assert.match(path.basename(made), new RegExp(`^apphost-ssh-${process.pid}-[A-Za-z0-9]{6}$`));
    assert.equal(fs.statSync(made).mode & 0o777, 0o700);
    assert.deepEqual(
      fs.readdirSync(root).sort(),
      [own, init, recent, other, path.basename(made)].sort(),
      `removed: ${[dead, oldSsh, oldScan].join(", ")}`,
    );
  });
});

describe("remote/command: a host step's script arrives on stdin, the command line stays short", () => {
  // What @pulumi/command runs: the command line (which its error message quotes) with stdin = script + the step's own stdin.
  const run = (script: string, stdin: string) =>
    spawnSync("bash", ["-c", asRootFromStdin(script)], { input: stdin, encoding: "utf8" });
  const script = 'set -euo pipefail\necho "ran as $0" >&2\nread -r secret\necho "got $secret"\nexit 7\n';

  it("runs the script with the rest of stdin as its own, and keeps its exit status", () => {
    const cmd = asRootFromStdin(script);
    assert.ok(cmd.length < 400, cmd);
    assert.ok(!cmd.includes("read -r secret"), "the script is not in the command line");
    const r = run(script, `${script}s3cret\n`);
    assert.equal(r.status, 7, r.stderr);
    assert.equal(r.stdout, "got s3cret\n");
    const file = /^ran as (.+)$/m.exec(r.stderr)?.[1] ?? "";
    assert.ok(file.startsWith(os.tmpdir()), r.stderr);
    assert.equal(fs.existsSync(file), false, "the script's temporary file is removed");
  });

  it("runs nothing when the script arrives cut short or changed, and says so", () => {
    for (const stdin of [script.slice(0, -8), script.replace("exit 7", "exit 0")]) {
      const r = run(script, stdin);
      assert.equal(r.status, 1, r.stderr);
      assert.equal(r.stdout, "");
      assert.equal(
        r.stderr,
        `apphost: the step's script (${Buffer.byteLength(script)} bytes) did not arrive whole\n`,
      );
    }
  });

  it("counts bytes, not characters", () => {
    const s = 'echo "café ✓"\n';
    const r = run(s, s);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "café ✓\n");
  });
});
