/**
 * Self-signed certificates for the unit specs that serve or validate TLS: `openssl req -x509` with a P-256 key,
 * the way the doctor's, certbot's and the proxies' specs each need one.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Writes a self-signed certificate to `cert` and its unencrypted key to `key` (their directories made): the first
 * of `names` as the subject's CN and each as a subject alternative name (an IPv4 address as an IP SAN), valid
 * `days`. openssl missing fails with the command that installs it.
 */
export function selfSignedCert(cert: string, key: string, names: readonly string[], days: number): void {
  fs.mkdirSync(path.dirname(cert), { recursive: true });
  fs.mkdirSync(path.dirname(key), { recursive: true });
  const sans = names.map((n) => `${/^\d+\.\d+\.\d+\.\d+$/.test(n) ? "IP" : "DNS"}:${n}`).join(",");
  const r = spawnSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      String(days),
      "-subj",
      `/CN=${names[0]}`,
      "-addext",
      `subjectAltName=${sans}`,
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { encoding: "utf8" },
  );
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT")
    assert.fail("openssl is not installed; it is required by these tests: apt-get install -y openssl");
  assert.equal(r.status, 0, `openssl req failed:\n${r.stderr}`);
}
