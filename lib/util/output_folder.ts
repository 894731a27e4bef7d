/**
 * The folders tasks write their results into (`--out`, `--to`), checked before any long work starts.
 *
 * A task that writes files of fixed names (`index.html`, `model.json`, `style.css`, `table1.md`, `seeds.png` ...)
 * writes only into a new or empty folder, or into one the project wrote before: such a folder holds the marker file
 * {@link OUTPUT_MARKER}, naming the tasks that wrote it. Any other folder may hold a user's own files of those names,
 * so it is refused with one line and nothing is written. A run folder (its `config.json` from `deno task pretrain`)
 * is the project's too: a task may be allowed to write into it (`pretrain` and `reproduce` continue it), and any
 * other task is refused there, marker or not.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { UserError } from "./errors.ts";
import { fsError, writeFileAtomic } from "./fsutil.ts";

/** The file that marks a folder as written by the project's tasks (one line per task). */
export const OUTPUT_MARKER = ".exemplar-output";

/** `path` is stat-ed; null where nothing is there. */
function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw fsError(e, "cannot read", path);
  }
}

/**
 * Refuses a folder path where a file stands, or where a file stands on its way (`a-file/out`): one line naming the
 * flag. Writes nothing; a missing folder is fine.
 */
export function refuseFileAsFolder(path: string, flag: string): void {
  for (let p = path;; p = dirname(p)) {
    const info = statOrNull(p);
    if (info && !info.isDirectory) {
      throw new UserError(
        p === path
          ? `${flag} ${path}: a file, not a folder (give a folder)`
          : `${flag} ${path}: cannot make this folder, ${p} is a file`,
      );
    }
    if (info || dirname(p) === p) return;
  }
}

/** Whether `dir` is a pretraining run folder: its `config.json` holds a `train` configuration. */
export function isRunFolder(dir: string): boolean {
  try {
    const config = JSON.parse(Deno.readTextFileSync(join(dir, "config.json")));
    return typeof config?.train === "object" && config.train !== null;
  } catch {
    return false;
  }
}

/** Options of {@link outputFolder}. */
export interface OutputFolderOptions {
  /** The task that writes the folder, as in `deno task NAME`; the marker names it. */
  task: string;
  /** The flag that named the folder, for the messages (`--out`). */
  flag: string;
  /** Whether a run folder (see {@link isRunFolder}) may be written into; it gets no marker. */
  runFolder?: boolean;
}

/** An output folder that passed its check; {@link OutputFolder.make} makes it when the task is ready to write. */
export interface OutputFolder {
  /** The folder. */
  path: string;
  /** Makes the folder (and its parents) and marks it as the project's. */
  make(): Promise<void>;
  /**
   * After a failure: removes what {@link OutputFolder.make} made (the marker, the folder and its parents) where
   * nothing else was written into it, so that a task refused once it had made its folder leaves nothing behind.
   */
  abandon(): void;
}

/**
 * Checks an output folder before any work: a file there, or a folder with files the project did not write (no
 * {@link OUTPUT_MARKER}, and not an allowed run folder), is a {@link UserError}, and nothing is written. The folder
 * is made, and marked, only by {@link OutputFolder.make}, so a task that fails before it writes leaves nothing.
 */
export function outputFolder(path: string, opts: OutputFolderOptions): OutputFolder {
  refuseFileAsFolder(path, opts.flag);
  const marker = join(path, OUTPUT_MARKER);
  let entries: string[] = [];
  try {
    entries = [...Deno.readDirSync(path)].map((e) => e.name).sort();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw fsError(e, `${opts.flag}: cannot read`, path);
  }
  const isRun = entries.length > 0 && isRunFolder(path);
  if (isRun && opts.runFolder !== true) {
    throw new UserError(
      `${opts.flag} ${path} is a pretraining run's folder; give a folder of its own for deno task ${opts.task}`,
    );
  }
  const run = opts.runFolder === true && isRun;
  if (entries.length > 0 && !entries.includes(OUTPUT_MARKER) && !run) {
    // (A name with a line break or another control character is quoted, so that the message stays one line.)
    const control = (n: string) => [...n].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
    const name = (n: string) => (control(n) ? JSON.stringify(n) : n);
    const shown = entries.slice(0, 3).map(name).join(", ") +
      (entries.length > 3 ? `, ... (${entries.length} entries)` : "");
    throw new UserError(
      `${opts.flag} ${path}: the folder holds files the project did not write (${shown}); ` +
        `give a new or empty folder, or one deno task ${opts.task} wrote before`,
    );
  }
  // The folders make() makes, the deepest first (none where the folder stands already).
  const missing: string[] = [];
  for (let p = resolve(path); statOrNull(p) === null && dirname(p) !== p; p = dirname(p)) missing.push(p);
  return {
    path,
    async make() {
      try {
        await Deno.mkdir(path, { recursive: true });
      } catch (e) {
        throw fsError(e, `${opts.flag}: cannot make the folder`, path);
      }
      if (run) return;
      const line = `written by deno task ${opts.task}`;
      let lines: string[] = [];
      try {
        lines = Deno.readTextFileSync(marker).split("\n").filter((l) => l.trim());
      } catch { /* a new folder */ }
      if (!lines.includes(line)) await writeFileAtomic(marker, [...lines, line].join("\n") + "\n");
    },
    abandon() {
      if (!missing.length) return;
      try {
        const left = [...Deno.readDirSync(path)].map((e) => e.name);
        if (left.some((n) => n !== OUTPUT_MARKER)) return;
        Deno.removeSync(marker);
      } catch { /* not made, or gone */ }
      for (const dir of missing) {
        try {
          Deno.removeSync(dir); // (fails, as it should, unless empty)
        } catch {
          return;
        }
      }
    },
  };
}
