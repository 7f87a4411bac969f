/**
 * Ubuntu 24.04 (noble, apphost:host.os ubuntu-24.04, or an existing Ubuntu server) end to end
 * (test/e2e/os-lib.ts), on a sandbox debootstrapped from Ubuntu's archive with universe, as its cloud image has it,
 * its login user, ubuntu, and needrestart: Python 3.12, PostgreSQL 16, systemd 255, Caddy 2.6 and Node 18 from universe,
 * noble's certbot and Nginx.
 */
import { describeOs } from "./os-lib";

describeOs({
  title: "Ubuntu 24.04 (apphost:host.os ubuntu-24.04): Python 3.12, PostgreSQL 16, systemd 255 (real engine)",
  os: "noble",
  sandbox: { name: "apphost-u24", subnet: "10.96.0", suite: "noble" },
  stack: "local-u24",
  release: "ubuntu 24.04",
  python: /^Python 3\.12\.\d+$/,
  postgres: /^16\.\d+/,
  postgresMajor: 16,
  node: /^v18\./,
  nginx: /nginx\/1\.2[4-9]\./,
  certbot: /certbot [2-9]\./,
  needrestart: true,
});
