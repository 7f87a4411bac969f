/**
 * Connections that follow the host (components/remote/follow.ts): a moved
 * host or new provider code is an update with no remote work, and read and
 * delete reach the host where the current program run says it is.
 *
 * Every address here is loopback on port 1, where nothing listens: a step
 * that tries SSH fails at once, naming the address it tried.
 */
import assert from "assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  connectionChanged,
  forgetConnections,
  PROVIDER_VERSION,
  rememberConnection,
} from "../../components/remote/follow";
import { releaseProvider } from "../../components/remote/release";
import { hostConnectionProvider, hostFileProvider } from "../../components/remote/resources";
import { hostKeyHint } from "../../components/remote/ssh";
import type { SshConnection } from "../../components/remote/connection";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-key\n-----END OPENSSH PRIVATE KEY-----\n";
const old: SshConnection = { host: "127.0.0.8", port: 1, user: "admin", privateKey: KEY, ref: "host" };
const moved: SshConnection = { ...old, host: "127.0.0.9" };

const file = {
  connection: old,
  path: "/etc/caddy/apphost/shop-prod.caddy",
  content: "site {}\n",
  mode: "0644",
  owner: "root",
  group: "root",
  secret: false,
  sha256: "a".repeat(64),
  providerVersion: PROVIDER_VERSION,
};
/** The same state as older provider code wrote it: no providerVersion. */
function older<T extends { providerVersion?: number }>(state: T): T {
  const copy = { ...state };
  delete copy.providerVersion;
  return copy;
}

const fileState = { ...file, actualMode: "0644", actualOwner: "root", actualGroup: "root" };

const release = {
  connection: old,
  script: "/srv/shop-prod/bin/apphost-release",
  artifact: "/nonexistent/artifact.tar.gz",
  contentHash: "c".repeat(64),
  requirementsHash: "r".repeat(64),
  configHash: "h".repeat(64),
  lockOwner: "pulumi@test",
  providerVersion: PROVIDER_VERSION,
};
const releaseState = {
  ...release,
  releaseId: "20261130120000-cccccccc",
  live: "20261130120000-cccccccc",
  phaseSeconds: [{ phase: "check", seconds: 0.1 }],
};

describe("connections that follow the host", () => {
  afterEach(forgetConnections);

  it("connectionChanged: address, port, user, key, pinned host key or host ref; not the object's identity", () => {
    assert.equal(connectionChanged(old, { ...old }), false);
    assert.equal(connectionChanged(old, { ...old, port: "1" as unknown as number }), false);
    for (const change of [
      { host: "127.0.0.9" },
      { port: 2 },
      { user: "root" },
      { privateKey: KEY + "x" },
      { hostKey: "ssh-ed25519 AAAA" },
      { ref: "host-1" },
    ]) {
      assert.equal(connectionChanged(old, { ...old, ...change }), true, JSON.stringify(change));
    }
    assert.equal(connectionChanged(undefined, old), true);
  });

  describe("HostFile", () => {
    it("a moved host is a change, not a replacement", async () => {
      const d = await hostFileProvider.diff!("id", fileState, { ...file, connection: moved });
      assert.equal(d.changes, true);
      assert.deepEqual(d.replaces, []);
      assert.equal((await hostFileProvider.diff!("id", fileState, file)).changes, false);
    });

    it("state written by older provider code (no providerVersion) is a change", async () => {
      const oldFileState = older(fileState);
      assert.equal((await hostFileProvider.diff!("id", oldFileState, file)).changes, true);
    });

    it("the update stores the new connection and version and does no remote work", async () => {
      const oldFileState = older(fileState);
      const res = await hostFileProvider.update!("id", oldFileState, { ...file, connection: moved });
      assert.equal(res.outs.connection.host, "127.0.0.9");
      assert.equal(res.outs.providerVersion, PROVIDER_VERSION);
      assert.equal(res.outs.sha256, fileState.sha256);
      assert.equal(res.outs.actualMode, "0644");
    });

    it("a new delete command is a change; the update stores it and does no remote work (a delete runs the stored one)", async () => {
      const stored = { ...fileState, onDelete: "systemctl daemon-reload" };
      const onDelete =
        "systemctl disable --now apphost-shop-prod-worker.service || true; systemctl daemon-reload";
      const d = await hostFileProvider.diff!("id", stored, { ...file, onDelete });
      assert.equal(d.changes, true);
      assert.deepEqual(d.replaces, []);
      assert.equal(
        (await hostFileProvider.diff!("id", stored, { ...file, onDelete: stored.onDelete })).changes,
        false,
      );
      // Port 1 answers nothing: an update that tried SSH would fail.
      const res = await hostFileProvider.update!("id", stored, { ...file, onDelete });
      assert.equal(res.outs.onDelete, onDelete);
      assert.equal(res.outs.sha256, fileState.sha256);
    });

    it("an update that changes the content writes it at the new address", async () => {
      await assert.rejects(
        hostFileProvider.update!("id", fileState, { ...file, connection: moved, sha256: "b".repeat(64) }),
        /ssh to admin@127\.0\.0\.9:1 failed/,
      );
    });

    it("read and delete use the stored connection, or the current run's once its HostConnection was checked", async () => {
      await assert.rejects(hostFileProvider.read!("id", fileState), /ssh to admin@127\.0\.0\.8:1 failed/);
      await hostConnectionProvider.check!(
        {},
        { connection: { ...moved, hostKey: "ssh-ed25519 AAAAC3pinned" }, providerVersion: PROVIDER_VERSION },
      );
      await assert.rejects(hostFileProvider.read!("id", fileState), /ssh to admin@127\.0\.0\.9:1 failed/);
      await assert.rejects(hostFileProvider.delete!("id", fileState), /ssh to admin@127\.0\.0\.9:1 failed/);
    });

    it("a refresh reports the file as the host has it, and the provider version as applied (not drift)", async () => {
      // A stand-in `ssh` that answers the read script like a host holding the declared file.
      const bin = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-fake-ssh-"));
      const content = Buffer.from(file.content).toString("base64");
      fs.writeFileSync(
        path.join(bin, "ssh"),
        `#!/bin/sh\ncat >/dev/null\necho "present 0644 root root ${file.sha256}"\necho ${content}\n`,
        {
          mode: 0o755,
        },
      );
      const saved = process.env.PATH;
      process.env.PATH = `${bin}:${saved ?? ""}`;
      try {
        const res = await hostFileProvider.read!("id", fileState);
        assert.equal(res.inputs?.providerVersion, PROVIDER_VERSION);
        assert.equal(res.props?.providerVersion, PROVIDER_VERSION);
        assert.equal(res.inputs?.content, file.content);
        assert.equal((await hostFileProvider.diff!("id", res.props, file)).changes, false);
      } finally {
        process.env.PATH = saved;
        fs.rmSync(bin, { recursive: true, force: true });
      }
    });

    it("another host's current connection is not used", async () => {
      rememberConnection({ ...moved, ref: "host-1" });
      await assert.rejects(hostFileProvider.read!("id", fileState), /ssh to admin@127\.0\.0\.8:1 failed/);
    });
  });

  describe("Release", () => {
    it("a moved host is a change; the update keeps the live release and runs nothing", async () => {
      assert.equal(
        (await releaseProvider.diff!("id", releaseState, { ...release, connection: moved })).changes,
        true,
      );
      assert.equal((await releaseProvider.diff!("id", releaseState, release)).changes, false);
      const res = await releaseProvider.update!("id", releaseState, { ...release, connection: moved });
      assert.equal(res.outs.connection.host, "127.0.0.9");
      assert.equal(res.outs.releaseId, releaseState.releaseId);
      assert.equal(res.outs.live, releaseState.live);
      assert.deepEqual(res.outs.phaseSeconds, releaseState.phaseSeconds);
    });

    it("older provider code in the state is a change with no remote work", async () => {
      const oldReleaseState = older(releaseState);
      assert.equal((await releaseProvider.diff!("id", oldReleaseState, release)).changes, true);
      const res = await releaseProvider.update!("id", oldReleaseState, release);
      assert.equal(res.outs.providerVersion, PROVIDER_VERSION);
      assert.equal(res.outs.live, releaseState.live);
    });

    it("a release switched by hand is still put back, at the new address", async () => {
      const switched = { ...releaseState, live: "20261129120000-bbbbbbbb" };
      assert.equal((await releaseProvider.diff!("id", switched, release)).changes, true);
      await assert.rejects(
        releaseProvider.update!("id", switched, { ...release, connection: moved }),
        /artifact/,
      );
    });

    it("read asks the current run's address", async () => {
      rememberConnection(moved);
      await assert.rejects(releaseProvider.read!("id", releaseState), /ssh to admin@127\.0\.0\.9:1 failed/);
    });
  });

  describe("HostConnection", () => {
    it("check records the connection under its ref; a changed connection or version is an update", async () => {
      const checked = await hostConnectionProvider.check!(
        {},
        { connection: { ...moved, hostKey: "ssh-ed25519 AAAAC3pinned" }, providerVersion: PROVIDER_VERSION },
      );
      assert.equal(checked.inputs.connection.host, "127.0.0.9");
      const stored = { connection: old, providerVersion: PROVIDER_VERSION };
      assert.equal((await hostConnectionProvider.diff!("host", stored, stored)).changes, false);
      assert.equal(
        (await hostConnectionProvider.diff!("host", stored, { ...stored, connection: moved })).changes,
        true,
      );
      assert.equal((await hostConnectionProvider.diff!("host", { connection: old }, stored)).changes, true);
    });

    describe("the host key: pinned once, then enforced", () => {
      // A stand-in ssh-keyscan that logs each call and shows the key in $FAKE_HOST_KEY.
      let bin: string;
      const savedPath = process.env.PATH;
      before(() => {
        bin = fs.mkdtempSync(path.join(os.tmpdir(), "apphost-fake-keyscan-"));
        fs.writeFileSync(
          path.join(bin, "ssh-keyscan"),
          `#!/bin/sh\necho "$*" >>${bin}/calls\necho "# $7:$5 SSH-2.0-OpenSSH_9.2"\necho "$7 $FAKE_HOST_KEY"\n`,
          { mode: 0o755 },
        );
        process.env.PATH = `${bin}:${savedPath}`;
      });
      after(() => {
        process.env.PATH = savedPath;
        delete process.env.FAKE_HOST_KEY;
        delete process.env.APPHOST_ACCEPT_NEW_HOST_KEY;
        fs.rmSync(bin, { recursive: true, force: true });
      });
      const calls = () =>
        fs.existsSync(path.join(bin, "calls")) ? fs.readFileSync(path.join(bin, "calls"), "utf8") : "";
      const check = (olds: object | undefined, connection: SshConnection) =>
        hostConnectionProvider.check!(olds ?? {}, { connection, providerVersion: PROVIDER_VERSION });

      it("the first run pins the key the host shows (ed25519, port given); the connection carries it", async () => {
        process.env.FAKE_HOST_KEY = "ssh-ed25519 AAAAC3first";
        const first = await check(undefined, moved);
        assert.equal(first.inputs.pinnedHostKey, "ssh-ed25519 AAAAC3first");
        assert.equal(first.inputs.connection.hostKey, "ssh-ed25519 AAAAC3first");
        assert.equal(calls().trim(), "-T 10 -p 1 -t ed25519 127.0.0.9");
      });

      it("later runs keep the pinned key without asking the host, even when it now shows another", async () => {
        process.env.FAKE_HOST_KEY = "ssh-ed25519 AAAAC3impostor";
        const before = calls();
        const later = await check(
          { connection: moved, pinnedHostKey: "ssh-ed25519 AAAAC3first" },
          { ...moved, host: "127.0.0.10" },
        );
        assert.equal(later.inputs.connection.hostKey, "ssh-ed25519 AAAAC3first");
        assert.equal(later.inputs.connection.host, "127.0.0.10", "the address may change, the key may not");
        assert.equal(calls(), before, "the host was asked again");
      });

      it("a configured apphost:host.hostKey wins; APPHOST_ACCEPT_NEW_HOST_KEY=1 pins the key shown now", async () => {
        const configured = await check(
          { connection: moved, pinnedHostKey: "ssh-ed25519 AAAAC3first" },
          {
            ...moved,
            hostKey: "ssh-ed25519 AAAAC3configured",
          },
        );
        assert.equal(configured.inputs.pinnedHostKey, "ssh-ed25519 AAAAC3configured");
        process.env.APPHOST_ACCEPT_NEW_HOST_KEY = "1";
        process.env.FAKE_HOST_KEY = "ssh-ed25519 AAAAC3rekeyed";
        const accepted = await check({ connection: moved, pinnedHostKey: "ssh-ed25519 AAAAC3first" }, moved);
        assert.equal(accepted.inputs.pinnedHostKey, "ssh-ed25519 AAAAC3rekeyed");
        delete process.env.APPHOST_ACCEPT_NEW_HOST_KEY;
      });

      it("ssh's refusal of a changed key says what was pinned and how to accept a new one", () => {
        const hint = hostKeyHint(
          "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.\n",
          {
            ...moved,
            hostKey: "ssh-ed25519 AAAAC3first",
          },
        );
        assert.match(
          hint,
          /not the one apphost pinned for 127\.0\.0\.9 \(ED25519 SHA256:[A-Za-z0-9+/]{43}\)/,
        );
        assert.match(hint, /nothing was sent/);
        assert.match(hint, /APPHOST_ACCEPT_NEW_HOST_KEY=1 pulumi up/);
        assert.equal(hostKeyHint("Connection refused", moved), "");
      });
    });
  });
});
