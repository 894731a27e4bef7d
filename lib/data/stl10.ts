/**
 * STL-10, binary version (`stl10_binary/`), PAPER.md "Data sets".
 *
 * Each image is 3x96x96 uint8, channel-major, and **column-major within a
 * channel**: the byte of channel c, row y, column x is at
 * `c * 9216 + x * 96 + y`. Labels are uint8 1..10 (the project uses 0..9).
 * `fold_indices.txt` holds 10 lines of 0-based indices into the train split.
 *
 * {@link writeStl10} writes the same files; the embedded synthetic data set
 * uses it, so the default run goes through this very reader.
 *
 * @module
 */
import { join } from "node:path";
import { UserError } from "../util/errors.ts";
import { exists, isDir, tempName } from "../util/fsutil.ts";
import { newImage, type RGBImage } from "../util/image.ts";
import { type Dataset, noneSkipped, type Split } from "./dataset.ts";
import { RecordFile } from "./records.ts";

export const STL10_SIZE = 96;
const PLANE = STL10_SIZE * STL10_SIZE;
const RECORD = 3 * PLANE;
const SPLITS = ["unlabeled", "train", "test"] as const;

/** STL-10 record bytes -> RGB image (HWC, row-major). */
export function stl10ToImage(rec: Uint8Array, out = newImage(STL10_SIZE, STL10_SIZE)): RGBImage {
  const d = out.data;
  for (let c = 0; c < 3; c++) {
    const plane = c * PLANE;
    for (let x = 0; x < STL10_SIZE; x++) {
      const col = plane + x * STL10_SIZE;
      for (let y = 0; y < STL10_SIZE; y++) d[3 * (y * STL10_SIZE + x) + c] = rec[col + y];
    }
  }
  return out;
}

/** RGB image (96x96) -> STL-10 record bytes. */
export function imageToStl10(img: RGBImage, out = new Uint8Array(RECORD)): Uint8Array {
  if (img.width !== STL10_SIZE || img.height !== STL10_SIZE) {
    throw new Error(`STL-10 images are 96x96, got ${img.width}x${img.height}`);
  }
  const d = img.data;
  for (let c = 0; c < 3; c++) {
    for (let x = 0; x < STL10_SIZE; x++) {
      const col = c * PLANE + x * STL10_SIZE;
      for (let y = 0; y < STL10_SIZE; y++) out[col + y] = d[3 * (y * STL10_SIZE + x) + c];
    }
  }
  return out;
}

/** The `stl10_binary` folder: `dir` itself or `dir/stl10_binary`. */
export function findStl10Dir(dir: string): string {
  for (const d of [dir, join(dir, "stl10_binary")]) {
    if (SPLITS.some((s) => exists(join(d, `${s}_X.bin`)))) return d;
  }
  if (!isDir(dir)) throw new UserError(`stl10:${dir}: folder not found`);
  throw new UserError(
    `stl10:${dir}: no STL-10 binary files (expected unlabeled_X.bin, train_X.bin or test_X.bin in it or in stl10_binary/)`,
  );
}

function readLabels(path: string, n: number): Int32Array {
  if (!exists(path)) throw new UserError(`${path}: file not found (expected ${n} label bytes)`);
  const bytes = Deno.readFileSync(path);
  if (bytes.length !== n) {
    throw new UserError(`${path}: ${bytes.length} labels for ${n} images (expected one byte per image)`);
  }
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (bytes[i] < 1 || bytes[i] > 10) {
      throw new UserError(`${path}: label ${bytes[i]} at index ${i} (expected 1..10)`);
    }
    labels[i] = bytes[i] - 1;
  }
  return labels;
}

function readFolds(path: string, nTrain: number): number[][] | null {
  if (!exists(path)) return null;
  const lines = Deno.readTextFileSync(path).split("\n").map((l) => l.trim()).filter((l) => l);
  const folds = lines.map((l, f) =>
    l.split(/\s+/).map((t) => {
      const v = Number(t);
      if (!Number.isInteger(v) || v < 0 || v >= nTrain) {
        throw new UserError(`${path}: line ${f + 1}: "${t}" is not an index into the ${nTrain} training images`);
      }
      return v;
    })
  );
  if (folds.length !== 10) throw new UserError(`${path}: ${folds.length} folds (expected 10 lines)`);
  return folds;
}

/** Opens an STL-10 binary folder. Images are read from disk only when asked for. */
export function openStl10(dir: string): Dataset {
  const root = findStl10Dir(dir);
  const files: RecordFile[] = [];
  const splits: Record<string, Split> = {};
  for (const name of SPLITS) {
    const xPath = join(root, `${name}_X.bin`);
    if (!exists(xPath)) continue;
    const rf = new RecordFile(xPath, RECORD, "3x96x96 uint8 STL-10 images");
    files.push(rf);
    const labels = name === "unlabeled" ? null : readLabels(join(root, `${name}_y.bin`), rf.count);
    splits[name] = {
      name,
      length: rf.count,
      labels,
      size: { width: STL10_SIZE, height: STL10_SIZE },
      image: (i) => Promise.resolve(stl10ToImage(rf.read(i))),
      imageSize: () => Promise.resolve({ width: STL10_SIZE, height: STL10_SIZE }),
      source: (i) => `${xPath}#${i}`,
    };
  }
  const namesPath = join(root, "class_names.txt");
  const classNames = exists(namesPath)
    ? Deno.readTextFileSync(namesPath).split("\n").map((s) => s.trim()).filter((s) => s)
    : Array.from({ length: 10 }, (_, i) => `class${i + 1}`);
  const folds = splits.train ? readFolds(join(root, "fold_indices.txt"), splits.train.length) : null;
  return {
    format: "stl10",
    root,
    classNames,
    splits,
    folds,
    skipped: noneSkipped(),
    close: () => files.forEach((f) => f.close()),
  };
}

/** What {@link writeStl10} writes: images as 96x96 RGB, labels 0..9. */
export interface Stl10Contents {
  classNames: string[];
  unlabeled?: { count: number; image: (i: number) => RGBImage };
  train?: { count: number; image: (i: number) => RGBImage; labels: ArrayLike<number> };
  test?: { count: number; image: (i: number) => RGBImage; labels: ArrayLike<number> };
  folds?: number[][];
}

/**
 * Writes an STL-10 binary folder at `dir` (created; must not exist yet).
 * Images are produced one at a time and streamed to disk, so any size fits in
 * memory. The folder is built under a temporary name and renamed when done.
 */
export async function writeStl10(dir: string, c: Stl10Contents): Promise<void> {
  const tmp = tempName(dir);
  await Deno.mkdir(tmp, { recursive: true });
  try {
    const rec = new Uint8Array(RECORD);
    for (const name of SPLITS) {
      const s = c[name];
      if (!s) continue;
      const f = await Deno.open(join(tmp, `${name}_X.bin`), { write: true, create: true });
      const chunk = 64;
      const buf = new Uint8Array(chunk * RECORD);
      for (let i = 0; i < s.count; i += chunk) {
        const n = Math.min(chunk, s.count - i);
        for (let j = 0; j < n; j++) {
          imageToStl10(s.image(i + j), rec);
          buf.set(rec, j * RECORD);
        }
        let off = 0;
        const part = buf.subarray(0, n * RECORD);
        while (off < part.length) off += await f.write(part.subarray(off));
      }
      f.close();
      if ("labels" in s) {
        const y = new Uint8Array(s.count);
        for (let i = 0; i < s.count; i++) y[i] = s.labels[i] + 1;
        await Deno.writeFile(join(tmp, `${name}_y.bin`), y);
      }
    }
    await Deno.writeTextFile(join(tmp, "class_names.txt"), c.classNames.join("\n") + "\n");
    if (c.folds) {
      await Deno.writeTextFile(
        join(tmp, "fold_indices.txt"),
        c.folds.map((f) => f.join(" ")).join("\n") + "\n",
      );
    }
    await Deno.rename(tmp, dir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}
