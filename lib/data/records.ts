/**
 * Fixed-size binary records read on demand: the storage of STL-10 and
 * CIFAR-10. Only the requested record is read, so a reader's memory does not
 * grow with the file (STL-10's unlabeled_X.bin is 2.7 GB).
 *
 * @module
 */
import { UserError } from "../util/errors.ts";

/** A file of `count` records of `recordSize` bytes, read by index. */
export class RecordFile {
  readonly path: string;
  readonly recordSize: number;
  readonly count: number;
  #file: Deno.FsFile | null = null;

  constructor(path: string, recordSize: number, what: string) {
    let size: number;
    try {
      size = Deno.statSync(path).size;
    } catch {
      throw new UserError(`${path}: file not found (expected ${what})`);
    }
    if (size === 0 || size % recordSize !== 0) {
      throw new UserError(
        `${path}: ${size} bytes is not a whole number of ${recordSize}-byte records (${what}); truncated or not this format?`,
      );
    }
    this.path = path;
    this.recordSize = recordSize;
    this.count = size / recordSize;
  }

  /** Reads records [start, start + n) into `out` (allocated when absent). */
  read(start: number, n = 1, out?: Uint8Array): Uint8Array {
    if (start < 0 || n < 0 || start + n > this.count || !Number.isInteger(start)) {
      throw new RangeError(`${this.path}: records ${start}..${start + n} out of 0..${this.count}`);
    }
    const buf = out ?? new Uint8Array(n * this.recordSize);
    this.#file ??= Deno.openSync(this.path, { read: true });
    this.#file.seekSync(start * this.recordSize, Deno.SeekMode.Start);
    let got = 0;
    while (got < buf.length) {
      const r = this.#file.readSync(buf.subarray(got));
      if (r === null) throw new Error(`${this.path}: unexpected end of file`);
      got += r;
    }
    return buf;
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }
}
