/**
 * `/etc/needrestart/conf.d/apphost-<id>.conf`: needrestart leaves the stack's
 * web instances alone.
 *
 * needrestart (on Ubuntu's cloud images, and wherever an operator installs it)
 * runs after each apt run, unattended-upgrades' included, and restarts every
 * service that still runs a library the upgrade replaced. A restart stops the
 * live web instance before it starts again: the requests of those seconds fail.
 * apphost reads such an instance as drift instead (`unit_replaced`, the release
 * script's status): `npm run drift` and `npm run doctor` name it, and
 * `pulumi up --refresh` publishes the release again, a fresh instance behind the
 * health gate before the switch. The workers are left to needrestart: a release
 * restarts them the same way.
 *
 * The file is Perl that needrestart evaluates; `override_rc` maps a pattern of
 * unit names to 0 (never restart). A host without needrestart ignores it.
 */
import type { HostLayout } from "../paths";
import { unitName } from "../paths";
import { HOST_DIRS, type HostDirs, managedBy } from "./common";

/** `/etc/needrestart/conf.d/apphost-<id>.conf` */
export function needrestartConfPath(layout: HostLayout, dirs: HostDirs = HOST_DIRS): string {
  return `${dirs.needrestartConf}/apphost-${layout.id}.conf`;
}

/** A Perl regex matching `s` exactly as text. */
const quotemeta = (s: string) => s.replace(/[^A-Za-z0-9_-]/g, (c) => `\\${c}`);

/** The file, for the web process `web` (`apphost:app.processes`' one of kind web). */
export function renderNeedrestartConf(layout: HostLayout, web: string): string {
  const template = unitName(layout, web, "web").replace(/@\.service$/, "");
  return [
    `# apphost ${layout.id}: needrestart does not restart this stack's web instances.`,
    `# ${managedBy("needrestart.ts")}`,
    "# A restart would fail the requests of its seconds; apphost reads an instance running a replaced library as",
    "# drift instead (npm run drift, npm run doctor), and `pulumi up --refresh` publishes the release again behind",
    "# its health gate.",
    `$nrconf{override_rc}{qr{^${quotemeta(template)}\\@[0-9]+\\.service$}} = 0;`,
    "",
  ].join("\n");
}
