/**
 * File helpers: nothing half-written is ever left under a final name.
 *
 * @module
 */
import { dirname, join } from "node:path";

/** A temporary name beside `path`, unique to this process and call. */
export function tempName(path: string): string {
  const tag = `${Deno.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
  return join(dirname(path), `.${path.split("/").pop()}.tmp-${tag}`);
}

/** Writes `data` to a temporary name beside `path`, then renames it into place. */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const tmp = tempName(path);
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Whether `path` exists (file or folder). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Whether `path` is a folder. */
export function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** Sorted names of the entries of a folder, hidden ones included. */
export function listDir(
  path: string,
): { name: string; isDirectory: boolean; isFile: boolean }[] {
  return [...Deno.readDirSync(path)].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** The project's root folder (where deno.json lives). */
export const PROJECT_ROOT = new URL("../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);

/** Where generated data is cached: `$EXEMPLAR_CACHE`, else `<project>/.cache`. */
export function cacheDir(): string {
  return Deno.env.get("EXEMPLAR_CACHE") ?? join(PROJECT_ROOT, ".cache");
}
