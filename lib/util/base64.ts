/**
 * Base64 encoding of bytes (for images embedded in notebooks and HTML).
 *
 * @module
 */

/** Bytes -> base64 text. */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    s += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(s);
}
