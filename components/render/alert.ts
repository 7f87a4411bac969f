/**
 * Failure alerts (apphost:alerts): the script `OnFailure=` runs through
 * `apphost-<id>-alert@<failed unit>.service`, and the curl config that holds
 * the webhook URL.
 *
 * The URL is a credential (whoever holds it can post), so it lives only in
 * the root-only file `layout.alertFile` as a curl config (`url = "…"`), read
 * with `curl -K`: never in an argv (`ps`), a unit file or the script.
 *
 * One JSON body fits Slack (`text`), Discord (`content`) and a generic
 * receiver (`apphost`, the same facts as fields).
 */
import { alertScriptPath, type HostLayout } from "../paths";
import { managedBy } from "./common";
import { assertSafe, SAFE } from "../shell";

/** The curl config naming the webhook: one `url = "…"` line (the URL was checked: no quotes, spaces or backslashes). */
export function renderAlertCurlConfig(webhook: string): string {
  assertSafe("alert curl config", [["apphost:alerts.webhook", webhook, SAFE.quotableUrl]]);
  return `# ${managedBy("alert.ts")}\nurl = "${webhook}"\n`;
}

export interface AlertScriptInput {
  /** `apphost:app.name` and the stack, named in the message */
  app: string;
  stack: string;
  /**
   * A refused or unreachable post is tried again this often, this many seconds apart (curl's --retry,
   * --retry-delay; every error counts).
   * @default { count: 3, delaySeconds: 2 }
   */
  retry?: { count: number; delaySeconds: number };
}

/** `/srv/<id>/bin/apphost-alert <failed unit>|--test`: posts one message; exit 0 sent, 1 refused, 2 not configured. */
export function renderAlertScript(layout: HostLayout, input: AlertScriptInput): string {
  const retry = input.retry ?? { count: 3, delaySeconds: 2 };
  return [
    "#!/bin/bash",
    `# apphost ${layout.id}: posts one alert about a failed unit to apphost:alerts.webhook.`,
    `# Usage: ${alertScriptPath(layout)} <failed unit> | --test`,
    `# ${managedBy("alert.ts")}`,
    "set -uo pipefail",
    `conf=${layout.alertFile}`,
    "unit=${1:?usage: apphost-alert <failed unit> | --test}",
    'if [ ! -r "$conf" ]; then echo "apphost-alert: $conf is missing: apphost:alerts is not set on this stack" >&2; exit 2; fi',
    "host=$(hostname -f 2>/dev/null || hostname)",
    "# JSON string escaping for the few characters a unit name, host name or result can hold.",
    'json_str() { local s=${1//\\\\/\\\\\\\\}; s=${s//\\"/\\\\\\"}; printf \'"%s"\' "${s//$\'\\n\'/ }"; }',
    'if [ "$unit" = --test ]; then',
    "  test=true result=test status=0",
    `  text="apphost test alert: stack ${input.stack} (app ${input.app}) on $host can post here (npm run doctor -- --stack ${input.stack} --alert-test)"`,
    "else",
    "  test=false",
    '  result=$(systemctl show -p Result --value "$unit" 2>/dev/null || true)',
    '  status=$(systemctl show -p ExecMainStatus --value "$unit" 2>/dev/null || true)',
    `  text="apphost: $unit failed on $host (stack ${input.stack}, app ${input.app}; result \${result:-unknown}, exit status \${status:-unknown}). Its log: npm run logs -- --stack ${input.stack}"`,
    "fi",
    'body=$(printf \'{"text":%s,"content":%s,"apphost":{"stack":%s,"app":%s,"host":%s,"unit":%s,"result":%s,"status":%s,"test":%s}}\' \\',
    '  "$(json_str "$text")" "$(json_str "$text")" ' +
      `"$(json_str ${input.stack})" "$(json_str ${input.app})" ` +
      '"$(json_str "$host")" "$(json_str "$unit")" "$(json_str "$result")" "$(json_str "$status")" "$test")',
    "# The URL comes from the root-only curl config (-K): never on a command line.",
    `if out=$(printf '%s' "$body" | curl -sS --fail --max-time 10 --retry ${retry.count} --retry-delay ${retry.delaySeconds} --retry-all-errors \\`,
    "  -H 'Content-Type: application/json' --data-binary @- -o /dev/null -K \"$conf\" 2>&1); then",
    '  echo "apphost-alert: posted: $text"',
    "  exit 0",
    "fi",
    'echo "apphost-alert: the webhook refused the alert or could not be reached: $out" >&2',
    "exit 1",
    "",
  ].join("\n");
}
