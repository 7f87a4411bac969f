/**
 * The static bash beside its renderer (release/release.sh, doctor.sh). Each
 * file starts with a preamble for shellcheck reading it alone (the shell, the
 * file-wide directives); the render leaves the preamble out.
 */
import * as fs from "fs";

/** The line that ends a static file's preamble. */
const PREAMBLE_END = "# ---- end of the preamble (not rendered) ----\n";

/**
 * What a render carries of a static shell file: everything after its
 * preamble. Call it when the renderer's module loads, so a render does no I/O
 * (`renderReleaseScript` runs in the program, and a function that read files
 * at call time would break if it were ever serialized into a dynamic provider).
 */
export function staticShell(file: string): string {
  const text = fs.readFileSync(file, "utf8");
  const at = text.indexOf(PREAMBLE_END);
  if (at < 0) throw new Error(`${file}: no line "${PREAMBLE_END.trim()}"`);
  return text.slice(at + PREAMBLE_END.length).replace(/^\n+/, "");
}
