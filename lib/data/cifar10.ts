/**
 * CIFAR-10, binary version (`cifar-10-batches-bin/`), PAPER.md "Data sets".
 *
 * `data_batch_1..5.bin` (train, 50000) and `test_batch.bin` (10000); each
 * record is 1 label byte (0..9) and 3072 pixel bytes: 1024 R, 1024 G, 1024 B,
 * each plane row-major 32x32. `batches.meta.txt` holds the class names.
 *
 * @module
 */
import { join } from "node:path";
import { UserError } from "../util/errors.ts";
import { exists, isDir } from "../util/fsutil.ts";
import { newImage, type RGBImage } from "../util/image.ts";
import { type Dataset, noneSkipped, type Split } from "./dataset.ts";
import { RecordFile } from "./records.ts";

export const CIFAR10_SIZE = 32;
const PLANE = CIFAR10_SIZE * CIFAR10_SIZE;
const RECORD = 1 + 3 * PLANE;
const TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
const TEST_FILES = ["test_batch.bin"];
const DEFAULT_NAMES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];

/** One CIFAR-10 record -> RGB image. */
export function cifar10ToImage(rec: Uint8Array): RGBImage {
  const img = newImage(CIFAR10_SIZE, CIFAR10_SIZE);
  for (let p = 0; p < PLANE; p++) {
    img.data[3 * p] = rec[1 + p];
    img.data[3 * p + 1] = rec[1 + PLANE + p];
    img.data[3 * p + 2] = rec[1 + 2 * PLANE + p];
  }
  return img;
}

/** RGB image (32x32) and label -> one CIFAR-10 record. */
export function imageToCifar10(img: RGBImage, label: number): Uint8Array {
  const rec = new Uint8Array(RECORD);
  rec[0] = label;
  for (let p = 0; p < PLANE; p++) {
    rec[1 + p] = img.data[3 * p];
    rec[1 + PLANE + p] = img.data[3 * p + 1];
    rec[1 + 2 * PLANE + p] = img.data[3 * p + 2];
  }
  return rec;
}

/** The `cifar-10-batches-bin` folder: `dir` itself or `dir/cifar-10-batches-bin`. */
function findDir(dir: string): string {
  for (const d of [dir, join(dir, "cifar-10-batches-bin")]) {
    if ([...TRAIN_FILES, ...TEST_FILES].some((f) => exists(join(d, f)))) return d;
  }
  if (!isDir(dir)) throw new UserError(`cifar10:${dir}: folder not found`);
  throw new UserError(
    `cifar10:${dir}: no CIFAR-10 binary batches (expected data_batch_1.bin .. test_batch.bin in it or in cifar-10-batches-bin/)`,
  );
}

function openSplit(name: string, paths: string[]): { split: Split; files: RecordFile[] } {
  const files = paths.map((p) => new RecordFile(p, RECORD, "CIFAR-10 records of 1 + 3072 bytes"));
  const starts: number[] = [];
  let n = 0;
  for (const f of files) {
    starts.push(n);
    n += f.count;
  }
  const locate = (i: number): [RecordFile, number] => {
    if (!(i >= 0 && i < n)) throw new RangeError(`${name}: index ${i} out of 0..${n}`);
    let k = files.length - 1;
    while (starts[k] > i) k--;
    return [files[k], i - starts[k]];
  };
  const labels = new Int32Array(n);
  files.forEach((f, k) => {
    // Labels are the first byte of every record: read the file in chunks.
    const chunk = 1000;
    for (let s = 0; s < f.count; s += chunk) {
      const m = Math.min(chunk, f.count - s);
      const buf = f.read(s, m);
      for (let j = 0; j < m; j++) {
        const y = buf[j * RECORD];
        if (y > 9) throw new UserError(`${f.path}: label ${y} in record ${s + j} (expected 0..9)`);
        labels[starts[k] + s + j] = y;
      }
    }
  });
  const split: Split = {
    name,
    length: n,
    labels,
    size: { width: CIFAR10_SIZE, height: CIFAR10_SIZE },
    image: (i) => {
      const [f, j] = locate(i);
      return Promise.resolve(cifar10ToImage(f.read(j)));
    },
    imageSize: () => Promise.resolve({ width: CIFAR10_SIZE, height: CIFAR10_SIZE }),
    source: (i) => {
      const [f, j] = locate(i);
      return `${f.path}#${j}`;
    },
  };
  return { split, files };
}

/** Opens a CIFAR-10 binary folder (train and test splits, read on demand). */
export function openCifar10(dir: string): Dataset {
  const root = findDir(dir);
  const splits: Record<string, Split> = {};
  const all: RecordFile[] = [];
  for (const [name, list] of [["train", TRAIN_FILES], ["test", TEST_FILES]] as const) {
    const present = list.filter((f) => exists(join(root, f)));
    if (present.length === 0) continue;
    if (name === "train" && present.length !== list.length) {
      const missing = list.filter((f) => !present.includes(f));
      throw new UserError(`cifar10:${root}: missing ${missing.join(", ")} (the train split is data_batch_1..5.bin)`);
    }
    const { split, files } = openSplit(name, present.map((f) => join(root, f)));
    splits[name] = split;
    all.push(...files);
  }
  const meta = join(root, "batches.meta.txt");
  const classNames = exists(meta)
    ? Deno.readTextFileSync(meta).split("\n").map((s) => s.trim()).filter((s) => s)
    : DEFAULT_NAMES;
  return {
    format: "cifar10",
    root,
    classNames,
    splits,
    folds: null,
    skipped: noneSkipped(),
    close: () => all.forEach((f) => f.close()),
  };
}
