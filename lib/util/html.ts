/**
 * Values written into the project's HTML pages (Table 1, the training curves, the companion, the exported network's
 * page), escaped for where they stand. Names of class folders, data paths and the fields of run files come from the
 * user's disk: written raw, a folder named `<img src=x onerror=...>` would run its script in the page.
 *
 * - In text and in a quoted attribute value: {@link escapeHtml}.
 * - As data inside a `<script>` element: {@link scriptJson}.
 *
 * @module
 */

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** A string as HTML text or as a quoted attribute value (either quote): `& < > " '` become character references. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/**
 * A value as JSON that can stand inside a `<script>` element: `<`, `>` and `&` become `\u003c`, `\u003e`, `\u0026`
 * (so no `</script>` or `<!--` ends or changes the element), and U+2028 and U+2029 become `\u2028` and `\u2029`. The
 * result parses to the same value, as JavaScript and as JSON.
 */
export function scriptJson(value: unknown): string {
  return (JSON.stringify(value) ?? "null").replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
