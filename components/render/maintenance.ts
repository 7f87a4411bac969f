/**
 * Maintenance mode: the page the proxy serves with 503 while it is on, and
 * the switches it tests on each request (paths.ts `maintenanceFiles`). The
 * proxy checks the switch files per request, so turning maintenance on or off
 * is a file written or removed: no proxy reload, no app restart.
 */
import { MAINTENANCE_RETRY_AFTER_SECONDS } from "../config/defaults";

export { MAINTENANCE_RETRY_AFTER_SECONDS };

/** apphost's own maintenance page (apphost:app.maintenancePage replaces it). */
export function defaultMaintenancePage(appName: string): string {
  const name = appName.replace(/[<>&"']/g, "");
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${name}: down for maintenance</title>`,
    "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;padding:0 1rem;color:#222}h1{font-size:1.6rem}</style>",
    "</head>",
    "<body>",
    `<h1>${name} is down for maintenance</h1>`,
    "<p>We are working on it and will be back shortly. Please try again in a few minutes.</p>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
}
