/**
 * File helpers: nothing half-written is ever left under a final name.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { UserError } from "./errors.ts";

/** A temporary name beside `path`, unique to this process and call. */
export function tempName(path: string): string {
  const tag = `${Deno.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
  return join(dirname(path), `.${path.split("/").pop()}.tmp-${tag}`);
}

/**
 * A file-system error as one line for the user: the path, what the program was doing, and why (a read-only folder,
 * a full disk, a parent that cannot be made). Errors that are not the file system's pass through unchanged.
 */
export function fsError(e: unknown, doing: string, path: string): unknown {
  const why = e instanceof Deno.errors.PermissionDenied
    ? "permission denied (a read-only folder?)"
    : e instanceof Deno.errors.NotFound
    ? "a folder on the way does not exist"
    : e instanceof Deno.errors.AlreadyExists || e instanceof Deno.errors.NotADirectory
    ? "a file stands where a folder is needed"
    : e instanceof Error && /ENOSPC|No space left/i.test(e.message)
    ? "no space left on the device"
    : e instanceof Error && /EROFS|read-only file system/i.test(e.message)
    ? "the file system is read-only"
    : null;
  return why ? new UserError(`${doing} ${path}: ${why}`) : e;
}

/** Writes `data` to a temporary name beside `path`, then renames it into place. */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
): Promise<void> {
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
  } catch (e) {
    throw fsError(e, "cannot make the folder of", path);
  }
  const tmp = tempName(path);
  try {
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw fsError(e, "cannot write", path);
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

/**
 * The project's root folder: the nearest folder above this module that holds deno.json (two levels up in the source
 * tree; one level up from a bundle in `.gpu/`), else the working folder.
 */
export const PROJECT_ROOT: string = (() => {
  let dir = dirname(new URL(import.meta.url).pathname);
  for (;;) {
    if (exists(join(dir, "deno.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) return Deno.cwd();
    dir = up;
  }
})();

/** Where generated data is cached: `$EXEMPLAR_CACHE`, else `<project>/.cache`. */
export function cacheDir(): string {
  return Deno.env.get("EXEMPLAR_CACHE") ?? join(PROJECT_ROOT, ".cache");
}
