/**
 * Folders of image files: Caltech-101, Caltech-256 and the common
 * `<class>/<image>` layout (PAPER.md "Data sets").
 *
 * - `caltech101:DIR`: `101_ObjectCategories/<class>/image_NNNN.jpg`. The
 *   protocol excludes `BACKGROUND_Google`: the reader does not make it a class
 *   but lists it under `skipped.excludedClasses` with its image count.
 * - `caltech256:DIR`: `256_ObjectCategories/NNN.<class>/*.jpg`; `257.clutter`
 *   is excluded the same way; class names drop the `NNN.` prefix.
 * - `folder:DIR`: `DIR/<class>/<image>` gives one split "all"; when DIR holds
 *   split folders (`train/`, `test/`, ... each with `<class>/<image>`), each is a
 *   split and the class list is their union.
 *
 * A folder the project's tasks wrote (their `.exemplar-output` marker in it) is never a class or a split.
 *
 * Every file's first bytes are checked: files that are not JPEG, PNG or GIF
 * (Caltech-101 ships one) are skipped and counted, never decoded. Symbolic
 * links to class folders and to images are followed; links that lead nowhere
 * are skipped and counted. Images are
 * decoded when asked for; grayscale and CMYK JPEGs come back as RGB, an
 * animated GIF as its first frame. {@link keepDecodable} (which `openDataset`
 * applies) decodes every image once and leaves out, counted and named, those
 * that cannot be decoded, so that every index of a split is an image that
 * reads, whichever stage asks for it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { UserError } from "../util/errors.ts";
import { cacheDir, exists, isDir, listDir, removeStaleTemps, writeFileAtomic } from "../util/fsutil.ts";
import { OUTPUT_MARKER } from "../util/output_folder.ts";
import { decodeImage, headerSize, imageKind, UnreadableImage } from "../util/image.ts";
import { type Dataset, noneSkipped, type Skipped, type Split } from "./dataset.ts";

const MAX_EXAMPLES = 10;

function readHead(path: string, n = 16): Uint8Array {
  const f = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(n);
    const got = f.readSync(buf) ?? 0;
    return buf.subarray(0, got);
  } finally {
    f.close();
  }
}

function example(skipped: Skipped, what: string): void {
  if (skipped.examples.length < MAX_EXAMPLES) skipped.examples.push(what);
}

/**
 * What a folder entry is, a symbolic link being what it points to: links are followed (one level of the layout at a
 * time, so a link back to a folder above cannot loop); a link to nothing, or in a loop of links, is "broken".
 */
function kindOf(path: string, e: { isFile: boolean; isDirectory: boolean; isSymlink: boolean }) {
  if (!e.isSymlink) return e.isDirectory ? "dir" : e.isFile ? "file" : "other";
  try {
    const st = Deno.statSync(path);
    return st.isDirectory ? "dir" : st.isFile ? "file" : "other";
  } catch {
    return "broken";
  }
}

/** Counts a link that leads nowhere in `skipped`. */
function brokenLink(skipped: Skipped, path: string): void {
  skipped.brokenLinks++;
  let to = "?";
  try {
    to = Deno.readLinkSync(path);
  } catch { /* unreadable link */ }
  example(skipped, `${path}: a link to ${to}, which does not lead to a file or folder`);
}

/** Image files of one class folder; everything else is counted in `skipped`. */
function imageFiles(dir: string, skipped: Skipped): string[] {
  const out: string[] = [];
  for (const e of listDir(dir)) {
    const path = join(dir, e.name);
    const kind = kindOf(path, e);
    if (kind === "broken") {
      brokenLink(skipped, path);
      continue;
    }
    let head: Uint8Array | null = null;
    if (kind === "file") {
      try {
        head = readHead(path);
      } catch (err) {
        skipped.unreadable++;
        example(skipped, `${path}: cannot read (${(err as Error).message})`);
        continue;
      }
    }
    if (head && imageKind(head) !== null) out.push(path);
    else {
      skipped.notImages++;
      example(skipped, path);
    }
  }
  return out;
}

/** A split over a list of image files with their labels. */
export function fileSplit(name: string, files: string[], labels: Int32Array | null): Split {
  return {
    name,
    length: files.length,
    labels,
    size: null,
    image: async (i) => decodeImage(await Deno.readFile(files[i]), files[i]),
    imageSize: async (i) => {
      const bytes = await Deno.readFile(files[i]);
      return headerSize(bytes) ?? await decodeImage(bytes, files[i]);
    },
    source: (i) => files[i],
  };
}

interface ClassDir {
  name: string;
  path: string;
}

function collect(
  splitName: string,
  classes: ClassDir[],
  classIndex: Map<string, number>,
  skipped: Skipped,
): Split {
  const files: string[] = [];
  const labels: number[] = [];
  for (const c of classes) {
    for (const f of imageFiles(c.path, skipped)) {
      files.push(f);
      labels.push(classIndex.get(c.name)!);
    }
  }
  return fileSplit(splitName, files, Int32Array.from(labels));
}

/**
 * The class (or split) folders in `dir`, links to folders included; a link to nothing is counted in `skipped`. A
 * folder the project's tasks wrote (it holds their {@link OUTPUT_MARKER}: an `--out` inside the data, say) is no
 * class: it is listed under `skipped.excludedClasses` with its image count.
 */
function subdirs(dir: string, skipped: Skipped = noneSkipped()): ClassDir[] {
  const out: ClassDir[] = [];
  for (const e of listDir(dir)) {
    if (e.name.startsWith(".")) continue;
    const path = join(dir, e.name), kind = kindOf(path, e);
    if (kind === "dir" && exists(join(path, OUTPUT_MARKER))) skipped.excludedClasses[e.name] = countImages(path);
    else if (kind === "dir") out.push({ name: e.name, path });
    else if (kind === "broken") brokenLink(skipped, path);
  }
  return out;
}

function requireDir(spec: string, dir: string): void {
  if (!isDir(dir)) throw new UserError(`${spec}:${dir}: folder not found`);
}

function countImages(dir: string): number {
  const s = noneSkipped();
  return imageFiles(dir, s).length;
}

function caltech(
  format: "caltech101" | "caltech256",
  dir: string,
  top: string,
  excluded: string,
  className: (folder: string) => string,
): Dataset {
  requireDir(format, dir);
  const root = isDir(join(dir, top))
    ? join(dir, top)
    : isDir(join(dir, format === "caltech101" ? "caltech-101" : "caltech-256", top))
    ? join(dir, format === "caltech101" ? "caltech-101" : "caltech-256", top)
    : dir;
  const skipped = noneSkipped();
  const classes: ClassDir[] = [];
  for (const c of subdirs(root, skipped)) {
    if (c.name === excluded) skipped.excludedClasses[c.name] = countImages(c.path);
    else classes.push({ name: className(c.name), path: c.path });
  }
  if (classes.length === 0) {
    throw new UserError(`${format}:${dir}: no class folders (expected ${top}/<class>/*.jpg)`);
  }
  const index = new Map(classes.map((c, i) => [c.name, i]));
  const all = collect("all", classes, index, skipped);
  if (all.length === 0) throw new UserError(`${format}:${dir}: no image files in ${classes.length} class folders`);
  return {
    format,
    root,
    classNames: classes.map((c) => c.name),
    splits: { all },
    folds: null,
    skipped,
    close: () => {},
  };
}

/** Opens Caltech-101 (background class excluded, listed as skipped). */
export function openCaltech101(dir: string): Dataset {
  return caltech("caltech101", dir, "101_ObjectCategories", "BACKGROUND_Google", (n) => n);
}

/** Opens Caltech-256 (`257.clutter` excluded, listed as skipped). */
export function openCaltech256(dir: string): Dataset {
  return caltech("caltech256", dir, "256_ObjectCategories", "257.clutter", (n) => n.replace(/^\d+\./, ""));
}

const SPLIT_NAMES = new Set(["train", "test", "val", "valid", "validation", "unlabeled"]);

/** Opens `DIR/<class>/<image>`, or `DIR/<split>/<class>/<image>`. */
export function openFolder(dir: string): Dataset {
  requireDir("folder", dir);
  const skipped = noneSkipped();
  const top = subdirs(dir, skipped);
  if (top.length === 0) throw new UserError(`folder:${dir}: no class folders (expected ${dir}/<class>/<image>)`);
  const splits: Record<string, Split> = {};
  const bySplit = top.every((d) => SPLIT_NAMES.has(d.name)) &&
    top.some((d) => subdirs(d.path).length > 0);
  const splitDirs = bySplit
    ? top.map((d) => ({ split: d.name, classes: subdirs(d.path, skipped) }))
    : [{ split: "all", classes: top }];
  const names = [...new Set(splitDirs.flatMap((s) => s.classes.map((c) => c.name)))].sort();
  const index = new Map(names.map((n, i) => [n, i]));
  for (const s of splitDirs) splits[s.split] = collect(s.split, s.classes, index, skipped);
  const total = Object.values(splits).reduce((a, s) => a + s.length, 0);
  if (total === 0) {
    throw new UserError(`folder:${dir}: no image files (JPEG, PNG or GIF) in ${names.length} class folders`);
  }
  return { format: "folder", root: dir, classNames: names, splits, folds: null, skipped, close: () => {} };
}

/** Why a file's image cannot be decoded, or null when it decodes. */
async function decodeProblem(path: string): Promise<string | null> {
  try {
    await decodeImage(await Deno.readFile(path), path);
    return null;
  } catch (e) {
    if (e instanceof UnreadableImage) return e.message;
    return `${path}: cannot read (${(e as Error).message})`;
  }
}

/** What a file was when it was last decoded (size, modification time) and why it failed to decode (null: it did). */
type Verdict = [size: number, mtime: number, problem: string | null];

/**
 * A data set of image files with only the images that decode: each is decoded once (the answers are kept under
 * `<cache>/decodable/`, keyed by file, size and modification time, so that opening the data set again costs a
 * `stat` per file), and those that fail are left out of their split, counted in `skipped.unreadable` and named in
 * `skipped.examples` with the reason; `log` hears one line about them. Data sets whose splits are not image files
 * (binary records of a fixed size) are returned as they are.
 */
export async function keepDecodable(ds: Dataset, log: (msg: string) => void = () => {}): Promise<Dataset> {
  const splits = Object.values(ds.splits);
  if (splits.every((s) => s.size !== null)) return ds;
  const store = join(
    cacheDir(),
    "decodable",
    `${createHash("sha256").update(ds.root).digest("hex").slice(0, 16)}.json`,
  );
  let known: Record<string, Verdict> = {};
  try {
    known = JSON.parse(await Deno.readTextFile(store)).files ?? {};
  } catch { /* first time, or a damaged store: decode again */ }
  const seen: Record<string, Verdict> = {};
  const total = splits.reduce((a, s) => a + (s.size === null ? s.length : 0), 0);
  let fresh = 0;
  const t0 = performance.now();
  const problem = async (path: string): Promise<string | null> => {
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(path);
    } catch (e) {
      return `${path}: cannot read (${(e as Error).message})`;
    }
    const mtime = st.mtime?.getTime() ?? 0, old = known[path];
    if (old && old[0] === st.size && old[1] === mtime) return (seen[path] = old)[2];
    if (fresh++ === 0 && total >= 1000) {
      log(`checking that the ${total} images of ${ds.root} decode (once; the answers are kept in ${store})`);
    }
    const why = await decodeProblem(path);
    seen[path] = [st.size, mtime, why];
    return why;
  };
  const skipped: Skipped = { ...ds.skipped, examples: [...ds.skipped.examples] };
  const reasons: string[] = [];
  const kept: Record<string, Split> = {};
  for (const [name, s] of Object.entries(ds.splits)) {
    if (s.size !== null) {
      kept[name] = s;
      continue;
    }
    const files: string[] = [], labels: number[] = [];
    for (let i = 0; i < s.length; i++) {
      const why = await problem(s.source(i));
      if (why === null) {
        files.push(s.source(i));
        if (s.labels) labels.push(s.labels[i]);
        continue;
      }
      skipped.unreadable++;
      reasons.push(why);
      example(skipped, why);
    }
    kept[name] = fileSplit(name, files, s.labels ? Int32Array.from(labels) : null);
  }
  if (fresh > 0) {
    if (total >= 1000) log(`  checked ${fresh} images in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    await removeStaleTemps(dirname(store));
    await writeFileAtomic(store, JSON.stringify({ root: ds.root, files: seen }) + "\n").catch(() => {
      // Without a writable cache the images are decoded again next time; nothing else depends on it.
    });
  }
  if (reasons.length) {
    log(`${reasons.length} images could not be read and were skipped (the first: ${reasons[0]})`);
  }
  const left = Object.values(kept).reduce((a, s) => a + s.length, 0);
  if (left === 0) {
    throw new UserError(`${ds.format}:${ds.root}: none of its ${reasons.length} images can be decoded (${reasons[0]})`);
  }
  return { ...ds, splits: kept, skipped };
}
