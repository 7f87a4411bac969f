/**
 * A release id: `YYYYMMDDHHMMSS-<first 8 hex of the content hash>`, in UTC, so ids sort by time as plain
 * strings. remote/release.ts's newReleaseId makes them; everything that checks or finds one uses this shape.
 */

/**
 * The id's shape as an extended regular expression without anchors: JavaScript's RegExp, bash's `=~` and
 * `grep -E` read it alike.
 */
export const RELEASE_ID_SHAPE = "[0-9]{14}-[0-9a-f]{8}";

const WHOLE = new RegExp(`^${RELEASE_ID_SHAPE}$`);

const LEADING = new RegExp(`^${RELEASE_ID_SHAPE}\\b`);

/** The release id a live value starts with (`<id>`, or `<id> (<what is down>)` as a refresh records it). */
export function liveReleaseId(live: string): string | undefined {
  return LEADING.exec(live)?.[0];
}

/** Whether `s` is a release id and nothing else. */
export function isReleaseId(s: string): boolean {
  return WHOLE.test(s);
}
