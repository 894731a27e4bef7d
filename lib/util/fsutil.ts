/**
 * File helpers: nothing half-written is ever left under a final name.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { UserError } from "./errors.ts";

/** Eight hex digits naming this machine in temporary names (another machine may share the folder). */
const HOST_TAG: string = (() => {
  let host = "";
  try {
    host = Deno.hostname();
  } catch { /* without the permission: one tag for every such machine */ }
  return createHash("sha256").update(host).digest("hex").slice(0, 8);
})();

/**
 * A temporary name beside `path`, unique to this process and call: `.<name>.tmp-<pid>-h<host>-<time>-<random>`, so
 * that {@link removeStaleTemps} can tell, later, whether the process that made it still runs.
 */
export function tempName(path: string): string {
  const tag = `${Deno.pid}-h${HOST_TAG}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
  return join(dirname(path), `.${path.split("/").pop()}.tmp-${tag}`);
}

/** How old a temporary file of a process whose state cannot be known must be before it is taken for a leftover. */
const STALE_AFTER_MS = 24 * 3600e3;

/**
 * The process a temporary name was made by: {@link tempName}'s names (pid and host), and those of earlier versions
 * (`<name>.tmp-<pid>-<time>[-<random>]`, `.extract-<archive>-<pid>`), which carry no host; null for any other name.
 */
function tempOwner(name: string): { pid: number; host: string | null } | null {
  const m = /\.tmp-(\d+)-h([0-9a-f]{8})-[0-9a-z]+-[0-9a-z]+$/.exec(name);
  if (m) return { pid: Number(m[1]), host: m[2] };
  const old = /\.tmp-(\d+)-[0-9a-z]+(?:-[0-9a-z]+)?$/.exec(name) ?? /^\.extract-[\w.-]+-(\d+)$/.exec(name);
  return old ? { pid: Number(old[1]), host: null } : null;
}

/**
 * Removes the temporary files and folders in `dir` (not below it) that an interrupted process left behind: those of a
 * process of this machine that no longer runs, and those older than a day whose process cannot be checked (made on
 * another machine sharing the folder, or named without the machine). A live process's temporary files are never
 * removed. `hiddenOnly` limits it to names beginning with a dot (in a folder of the user's own files). Returns the
 * names removed; `log` hears one line when there were any.
 */
export async function removeStaleTemps(
  dir: string,
  opts: { hiddenOnly?: boolean; log?: (msg: string) => void } = {},
): Promise<string[]> {
  const removed: string[] = [];
  let bytes = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return removed; // no such folder (yet)
  }
  for (const e of entries) {
    if (opts.hiddenOnly && !e.name.startsWith(".")) continue;
    const owner = tempOwner(e.name);
    if (!owner || owner.pid === Deno.pid) continue;
    const path = join(dir, e.name);
    const here = owner.host === HOST_TAG && Deno.build.os === "linux";
    if (here && processAlive(owner.pid)) continue;
    if (!here) {
      let mtime = Date.now();
      try {
        mtime = Deno.lstatSync(path).mtime?.getTime() ?? mtime;
      } catch { /* gone meanwhile */ }
      if (Date.now() - mtime < STALE_AFTER_MS) continue;
    }
    const size = treeSize(path);
    try {
      await Deno.remove(path, { recursive: true });
      removed.push(e.name);
      bytes += size;
    } catch { /* another process removed it first, or it is not ours to remove */ }
  }
  if (removed.length) {
    opts.log?.(
      `removed ${removed.length} temporary ${removed.length === 1 ? "file" : "files"} (${
        (bytes / 1e6).toFixed(1)
      } MB) left in ${dir} by interrupted runs`,
    );
  }
  return removed;
}

/** Bytes under `path` (a file, or a folder's files; links are not followed). */
function treeSize(path: string): number {
  try {
    const st = Deno.lstatSync(path);
    if (!st.isDirectory) return st.size;
    let n = 0;
    for (const e of Deno.readDirSync(path)) n += treeSize(join(path, e.name));
    return n;
  } catch {
    return 0;
  }
}

/**
 * A file-system error as one line for the user: the path, what the program was doing, and why (a read-only folder,
 * a full disk, a parent that cannot be made, a folder where a file goes). Errors that are not the file system's pass through unchanged.
 */
export function fsError(e: unknown, doing: string, path: string): unknown {
  const why = e instanceof Deno.errors.PermissionDenied
    ? "permission denied (a read-only folder?)"
    : e instanceof Deno.errors.NotFound
    ? "a folder on the way does not exist"
    : e instanceof Deno.errors.AlreadyExists || e instanceof Deno.errors.NotADirectory
    ? "a file stands where a folder is needed"
    : e instanceof Deno.errors.IsADirectory
    ? "a folder stands where the file goes"
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
): { name: string; isDirectory: boolean; isFile: boolean; isSymlink: boolean }[] {
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

/** The cache folder this thread uses instead of the default, when one is set ({@link useCacheDir}). */
let cacheOverride: string | null = null;

/** Where generated data is cached: the folder {@link useCacheDir} set, else `$EXEMPLAR_CACHE`, else `<project>/.cache`. */
export function cacheDir(): string {
  return cacheOverride ?? Deno.env.get("EXEMPLAR_CACHE") ?? join(PROJECT_ROOT, ".cache");
}

/**
 * Makes this thread cache into `dir` (null: back to the default), without touching the process's environment, which
 * test files running in parallel in one process share.
 */
export function useCacheDir(dir: string | null): void {
  cacheOverride = dir;
}

/** Whether process `pid` of this machine still runs (where that cannot be known: yes). */
export function processAlive(pid: number): boolean {
  if (Deno.build.os !== "linux") return true;
  return exists(`/proc/${pid}`);
}
