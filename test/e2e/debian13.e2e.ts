/**
 * Debian 13 (trixie, apphost:host.os debian-13) end to end (test/e2e/os-lib.ts): Python 3.13, PostgreSQL 17,
 * systemd 257, Caddy and Node from trixie, trixie's certbot and Nginx.
 */
import { describeOs } from "./os-lib";

describeOs({
  title: "Debian 13 (apphost:host.os debian-13): Python 3.13, PostgreSQL 17, systemd 257 (real engine)",
  os: "trixie",
  sandbox: { name: "apphost-d13", subnet: "10.91.0", suite: "trixie" },
  stack: "local-d13",
  release: "debian 13",
  python: /^Python 3\.13\.\d+$/,
  postgres: /^17\.\d+/,
  postgresMajor: 17,
  node: /^v20\./,
  nginx: /nginx\/1\.2[6-9]\./,
  certbot: /certbot [4-9]\./,
});
