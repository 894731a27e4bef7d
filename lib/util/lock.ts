/**
 * Run-folder locks: one task at a time writes (or reads for a result) a run folder.
 *
 * A lock is the file `.lock` in the folder, holding the process id, the host, the task and when it was taken. Every
 * task that writes into a run folder (pretrain, reproduce, seeds, evaluate, table1) or reads a trained network from it
 * (export) holds it while it works, so that nothing reads a checkpoint a live pretraining is replacing and no two
 * writers interleave their files. The lock of a process that no longer runs on this machine (killed with `kill -9`,
 * say) is taken over. Within one process the lock is re-entrant: `reproduce` holds it across its stages while the
 * stages take it again.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { UserError } from "./errors.ts";
import { exists, fsError, processAlive } from "./fsutil.ts";

/** What `.lock` holds. */
interface Holder {
  pid: number;
  host: string;
  since: string;
  task?: string;
}

/** A held lock; `release` gives it back (and removes a folder the lock made that stayed empty). */
export interface FolderLock {
  release(): void;
}

/** The locks this process holds, by absolute folder, with how many times each is held and the folders it made. */
const held = new Map<string, { count: number; made: string[] }>();

function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return ""; // without the permission: the pid alone
  }
}

/** The name of the running task (`deno task NAME` runs tasks/NAME.ts), for the message another task shows. */
function taskName(): string {
  const m = /\/tasks\/([\w-]+)\.ts$/.exec(Deno.mainModule);
  return m ? `deno task ${m[1]}` : "a process";
}

/**
 * Takes the lock of a run folder (making the folder if needed) so that two tasks never use it at once; another
 * live holder is a {@link UserError} naming it. `release` removes the lock, and the folder too when this call made
 * it and nothing was written into it, with the folders above it that it made (a run refused before it began, or a
 * `--run` that names no folder, leaves nothing behind).
 */
export async function lockFolder(dir: string): Promise<FolderLock> {
  const key = resolve(dir);
  const mine = held.get(key);
  if (mine) {
    mine.count++;
    return { release: once(() => releaseHeld(key)) };
  }
  const made: string[] = [];
  for (let p = key; !exists(p) && dirname(p) !== p; p = dirname(p)) made.push(p);
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw fsError(e, "cannot make the folder", dir);
  }
  const path = join(dir, ".lock");
  const host = hostName();
  const me: Holder = { pid: Deno.pid, host, since: new Date().toISOString(), task: taskName() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await Deno.writeTextFile(path, JSON.stringify(me) + "\n", { createNew: true });
      held.set(key, { count: 1, made });
      return { release: once(() => releaseHeld(key)) };
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) {
        removeIfEmpty(made);
        throw fsError(e, "cannot write the lock of", dir);
      }
    }
    let holder: Holder | null = null;
    try {
      holder = JSON.parse(await Deno.readTextFile(path));
    } catch { /* being written, or damaged */ }
    if (holder && holder.host === host && !processAlive(holder.pid)) {
      await Deno.remove(path).catch(() => {}); // a stale lock: its process is gone
      continue;
    }
    const where = holder
      ? `process ${holder.pid}${holder.host ? ` on ${holder.host}` : ""}, since ${holder.since}`
      : "";
    const who = !holder ? "another process" : holder.task ? `${holder.task} (${where})` : where;
    throw new UserError(
      `${dir}: in use by ${who}; wait for it to end, or remove ${path} if no such task is running`,
    );
  }
  throw new UserError(`${dir}: could not take its lock (${path})`);
}

/** Runs `f` with the folder's lock held. */
export async function withFolderLock<T>(dir: string, f: () => Promise<T>): Promise<T> {
  const lock = await lockFolder(dir);
  try {
    return await f();
  } finally {
    lock.release();
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (!done) f();
    done = true;
  };
}

function releaseHeld(key: string): void {
  const h = held.get(key);
  if (!h || --h.count > 0) return;
  held.delete(key);
  try {
    Deno.removeSync(join(key, ".lock"));
  } catch { /* already gone */ }
  removeIfEmpty(h.made);
}

/** Removes the folders this process made (the deepest first), while they are empty. */
function removeIfEmpty(made: string[]): void {
  for (const dir of made) {
    try {
      Deno.removeSync(dir); // (fails, as it should, unless empty)
    } catch {
      return; // not empty, or gone
    }
  }
}
