/**
 * Surrogate classes (paper §3; PAPER.md "Surrogate data"): "each seed patch is a class".
 * Class i is seed i; its K members are the seed transformed by K random
 * parameter sets. Copy k of class i is made with parameters drawn from the
 * generator seeded by (run seed, i, k), so the N x K data set is exact and
 * reproducible without ever being stored. With K unlimited (`Infinity`), every
 * epoch shows each class once with fresh parameters (copy k = epoch).
 *
 * Inputs are normalised as the paper says: the per-pixel mean of the data
 * (here: of the N seed patches) is subtracted. (The release works on 0..255
 * values and also scales by 1/256; on this project's [0, 1] values that is
 * the same input.)
 *
 * Training batches are a deterministic function of the batch index: sample j
 * of the stream is position j mod E of epoch floor(j / E)'s permutation of the
 * N x K (class, copy) pairs (E = N x K; E = N for unlimited K). So a resumed
 * run sees exactly the batches the uninterrupted run would have seen.
 * {@link SurrogateLoader} generates batches in Deno workers, ahead of the
 * training loop, so that generation never stalls training.
 *
 * @module
 */
import {
  type ColorPCA,
  contrast1Basis,
  drawParams,
  patchScratch,
  type ReleaseColour,
  releaseColour,
  type TransformName,
  type TransformParams,
  transformPatch,
  TRANSFORMS,
} from "./augment.ts";
import { type MethodName, METHODS } from "./presets.ts";
import { UserError } from "./util/errors.ts";
import { Rng } from "./util/rng.ts";
import { WorkerPool } from "./compute/pool.ts";
import { CONTEXT, imageBounds, PATCH, seedMean, seedPatch, type Seeds } from "./seeds.ts";

/** Options of the surrogate data set. */
export interface SurrogateOptions {
  /** Transformed copies per class (K), or `Infinity` for fresh parameters every epoch. */
  k: number;
  /** Method preset whose transformation ranges apply (default `paper`). */
  method?: MethodName;
  /** The transformations in use (default: all six). */
  transforms?: TransformName[];
  /** Run seed. */
  seed?: number;
  /** Held-out copies per class for validation (never used for training). */
  validationCopies?: number;
}

/** A batch: `x` is B x 32 x 32 x 3 (NHWC, mean subtracted), `y` the surrogate class of each. */
export interface Batch {
  /** Samples, 32 x 32 x 3 floats each (mean patch subtracted). */
  x: Float32Array;
  /** Their surrogate classes. */
  y: Int32Array;
}

const PATCH_SIZE = PATCH * PATCH * 3;
const TAG_TRAIN = 11, TAG_VALID = 12, TAG_EPOCH = 21;

/** The N x K surrogate data set, generated on demand. */
export class SurrogateData {
  /** The seed patches. */
  readonly seeds: Seeds;
  /** N: surrogate classes. */
  readonly n: number;
  /** K: copies per class (Infinity: fresh copies every epoch). */
  readonly k: number;
  /** The method preset. */
  readonly method: MethodName;
  /** The transformations applied. */
  readonly transforms: Set<TransformName>;
  /** Run seed: the same seed gives the same samples. */
  readonly seed: number;
  /** Held-out copies per class, for validation. */
  readonly validationCopies: number;
  /** contrast1's colour basis: the principal components of the seeds' pixels, or the release's fixed ones. */
  readonly pca: ColorPCA;
  /** Per-pixel mean of the seed patches, subtracted from every input. */
  readonly mean: Float32Array;
  /** The release's colour arithmetic (its statistics of the seed pixels), or null. */
  readonly colour: ReleaseColour | null;
  /** Where each seed's image lies in its window, when samples must stay inside the image; else null. */
  readonly bounds: Float32Array | null;
  #epochPerm: { e: number; perm: Int32Array } | null = null;
  /** Working memory of the transformations, reused from patch to patch. */
  #scratch = patchScratch();

  /** The surrogate data of `seeds`; `stats` (colour PCA and mean patch) are computed from the seeds unless given. */
  constructor(seeds: Seeds, opts: SurrogateOptions, stats?: SurrogateStats) {
    if (seeds.n < 2) throw new UserError(`surrogate classes need N >= 2 seeds, got ${seeds.n}`);
    if (!(opts.k === Infinity || (Number.isInteger(opts.k) && opts.k >= 1))) {
      throw new UserError(`K = ${opts.k}: expected a positive integer or inf`);
    }
    this.seeds = seeds;
    this.n = seeds.n;
    this.k = opts.k;
    this.method = opts.method ?? "paper";
    this.transforms = new Set(opts.transforms ?? TRANSFORMS);
    this.seed = opts.seed ?? 0;
    this.validationCopies = opts.validationCopies ?? 1;
    const a = METHODS[this.method].augment;
    if (stats) {
      ({ pca: this.pca, mean: this.mean, colour: this.colour, bounds: this.bounds } = stats);
    } else {
      const pixels = new Uint8Array(this.n * PATCH_SIZE);
      for (let i = 0; i < this.n; i++) pixels.set(seedPatch(seeds, i).data, i * PATCH_SIZE);
      this.pca = contrast1Basis(pixels, a.colorBasis);
      this.mean = seedMean(seeds);
      this.colour = !a.contrast1DataRange && !a.stretchBeforeContrast2
        ? null
        : a.contrast1DataRange
        ? releaseColour(pixels, this.pca.mean, a.stretchBeforeContrast2, a.antialias)
        : { lo: 0, hi: 1, clip: [-Infinity, Infinity], stretch: true, antialias: a.antialias };
      this.bounds = a.insideImage ? imageBounds(seeds) : null;
    }
  }

  /** What a worker needs, besides the seeds, to make the same samples. */
  get stats(): SurrogateStats {
    return { pca: this.pca, mean: this.mean, colour: this.colour, bounds: this.bounds };
  }

  /** Samples in one epoch: every (class, copy) pair once; N for unlimited K. */
  get epochSize(): number {
    return this.k === Infinity ? this.n : this.n * this.k;
  }

  /** The parameters of training copy k of class i. */
  params(i: number, k: number): TransformParams {
    return this.#draw(new Rng(this.seed, TAG_TRAIN, i, k), i);
  }

  /** The parameters of held-out copy v of class i. */
  validationParams(i: number, v: number): TransformParams {
    return this.#draw(new Rng(this.seed, TAG_VALID, i, v), i);
  }

  /** One parameter set for seed i; where samples must stay inside the image, drawn again until they do. */
  #draw(rng: Rng, i: number): TransformParams {
    for (let tries = 1;; tries++) {
      const p = drawParams(rng, this.method, this.transforms);
      if (!this.bounds || tries >= MAX_DRAWS || windowInside(p, this.bounds, i)) return p;
    }
  }

  /** Writes seed i transformed by `p`, as RGB in [0, 1] (not normalised), at `out[off..]`. */
  render(i: number, p: TransformParams, out: Float32Array, off = 0): void {
    transformPatch(this.seeds.context, i * CONTEXT * CONTEXT * 3, p, this.pca, out, off, this.colour, this.#scratch);
  }

  /** The (class, copy) of sample j of the training stream. */
  sample(j: number): [number, number] {
    const E = this.epochSize, e = Math.floor(j / E), pos = j - e * E;
    if (this.#epochPerm?.e !== e) this.#epochPerm = { e, perm: new Rng(this.seed, TAG_EPOCH, e).permutation(E) };
    const q = this.#epochPerm.perm[pos];
    return this.k === Infinity ? [q, e] : [Math.floor(q / this.k), q % this.k];
  }

  /** Training batch b of `size` samples (samples b*size .. b*size+size-1 of the stream). */
  batch(b: number, size: number): Batch {
    const x = new Float32Array(size * PATCH_SIZE), y = new Int32Array(size);
    for (let s = 0; s < size; s++) {
      const [i, k] = this.sample(b * size + s);
      y[s] = i;
      this.render(i, this.params(i, k), x, s * PATCH_SIZE);
    }
    this.#normalise(x);
    return { x, y };
  }

  /** The held-out validation set: `validationCopies` copies of every class. */
  validation(): Batch {
    const V = this.validationCopies;
    const x = new Float32Array(this.n * V * PATCH_SIZE), y = new Int32Array(this.n * V);
    for (let v = 0; v < V; v++) {
      for (let i = 0; i < this.n; i++) {
        const s = v * this.n + i;
        y[s] = i;
        this.render(i, this.validationParams(i, v), x, s * PATCH_SIZE);
      }
    }
    this.#normalise(x);
    return { x, y };
  }

  #normalise(x: Float32Array): void {
    const m = this.mean;
    for (let o = 0; o < x.length; o += PATCH_SIZE) for (let j = 0; j < PATCH_SIZE; j++) x[o + j] -= m[j];
  }
}

/** The statistics of the seeds a {@link SurrogateData} computes once (and hands to its workers). */
export interface SurrogateStats {
  /** contrast1's colour basis (see {@link SurrogateData.pca}). */
  pca: ColorPCA;
  /** Per-pixel mean patch. */
  mean: Float32Array;
  /** The release's colour arithmetic, or null. */
  colour: ReleaseColour | null;
  /** Where each seed's image lies in its window, or null. */
  bounds: Float32Array | null;
}

/** What a worker needs to rebuild the same {@link SurrogateData}. */
export interface SurrogateWorkerInit {
  context: Uint8Array;
  n: number;
  opts: SurrogateOptions;
  stats: SurrogateStats;
}

/** A window that keeps leaving the image after this many draws is taken as it is (edges replicated). */
const MAX_DRAWS = 50;

/** Whether the four corners of the sampled window lie inside seed i's image (bounds from {@link imageBounds}). */
export function windowInside(p: TransformParams, bounds: Float32Array, i: number): boolean {
  const c = CONTEXT / 2 - 0.5, h = PATCH / 2 - 0.5;
  const cos = Math.cos(p.angle) / p.scale, sin = Math.sin(p.angle) / p.scale;
  const [left, top, right, bottom] = bounds.subarray(4 * i, 4 * i + 4);
  for (const du of [-h, h]) {
    for (const dv of [-h, h]) {
      const sx = c + p.tx + cos * du + sin * dv, sy = c + p.ty - sin * du + cos * dv;
      if (sx < left || sx > right || sy < top || sy > bottom) return false;
    }
  }
  return true;
}

/** A request to a surrogate worker (lib/surrogate_worker.ts). */
export type SurrogateRequest =
  | { kind: "init"; init: SurrogateWorkerInit }
  | { kind: "batch"; b: number; size: number };

/**
 * Generates training batches in Deno workers, in order, `depth` batches ahead.
 * The seeds are shared (SharedArrayBuffer), not copied.
 *
 * @example
 * ```ts
 * const loader = new SurrogateLoader(data, 128, { workers: 2 });
 * const first = await loader.next(); // batch 0
 * loader.close();
 * ```
 */
export class SurrogateLoader {
  readonly data: SurrogateData;
  readonly batchSize: number;
  #pool: WorkerPool<SurrogateRequest, Batch | null>;
  #pending = new Map<number, Promise<Batch>>();
  #next: number;
  #depth: number;

  constructor(data: SurrogateData, batchSize: number, opts: { workers?: number; depth?: number; start?: number } = {}) {
    if (!(Number.isInteger(batchSize) && batchSize >= 1)) throw new UserError(`batch size ${batchSize}: expected >= 1`);
    this.data = data;
    this.batchSize = batchSize;
    this.#next = opts.start ?? 0;
    const nWorkers = Math.max(1, opts.workers ?? 2);
    this.#depth = Math.max(nWorkers, opts.depth ?? 2 * nWorkers);
    const context = data.seeds.context;
    const shared = context.buffer instanceof SharedArrayBuffer ? context : (() => {
      const c = new Uint8Array(new SharedArrayBuffer(context.length));
      c.set(context);
      return c;
    })();
    const init: SurrogateWorkerInit = {
      context: shared,
      n: data.n,
      opts: {
        k: data.k,
        method: data.method,
        transforms: [...data.transforms],
        seed: data.seed,
        validationCopies: data.validationCopies,
      },
      stats: data.stats,
    };
    this.#pool = new WorkerPool(new URL("./surrogate_worker.ts", import.meta.url), nWorkers, "surrogate-data");
    // (A failed init fails the batches after it, which are awaited.)
    for (let w = 0; w < nWorkers; w++) this.#pool.call(w, { kind: "init", init }).catch(() => {});
    for (let b = this.#next; b < this.#next + this.#depth; b++) this.#request(b);
  }

  #request(b: number): void {
    if (this.#pending.has(b)) return;
    const p = this.#pool.call(b, { kind: "batch", b, size: this.batchSize }) as Promise<Batch>;
    p.catch(() => {}); // batches asked for ahead: their errors surface when next() awaits them
    this.#pending.set(b, p);
  }

  /** The index of the batch {@link next} returns next. */
  get position(): number {
    return this.#next;
  }

  /** The next training batch; rejects with the worker's error if the worker that makes it failed. */
  async next(): Promise<Batch> {
    const b = this.#next++;
    this.#request(b);
    this.#request(b + this.#depth - 1);
    try {
      return await this.#pending.get(b)!;
    } finally {
      this.#pending.delete(b);
    }
  }

  /** Stops the workers. */
  close(): void {
    this.#pool.close();
  }
}
