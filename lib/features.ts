/**
 * Features for the downstream task (paper §5.1; PAPER.md "Evaluation").
 *
 * "We apply the network to the whole image convolutionally, [...] take the
 * responses of all layers but the softmax and pool them": every layer but
 * the softmax runs over the whole image (the first FC layer becomes a
 * convolution whose kernel is the training-time map, 8 x 8 for 32 x 32
 * patches; later FC layers become 1 x 1 convolutions). The post-ReLU response
 * of every conv layer and of the FC layers is max-pooled over
 * - the 4 quadrants of the map (STL-10, CIFAR-10): 4 x (sum of channels)
 *   features, 3840 for the medium network; or
 * - a 3-level spatial pyramid, 1 + 4 + 16 = 21 cells (Caltech-101/256).
 * The release then divides every layer's block by its 99.99th percentile
 * value on the training features, so that all layers count alike in the
 * linear SVM; this project does the same in both presets (the paper's text is
 * silent on it).
 *
 * Images are resized to the protocol's size (STL-10 96, CIFAR-10 upsampled to
 * 64, Caltech-101 150, Caltech-256 256) and have the training data's mean
 * colour subtracted. Extraction runs in batches so memory stays bounded on
 * 50,000 images, and results are cached in the run folder.
 *
 * @module
 */
import { join } from "node:path";
import { tf } from "./compute/backend.ts";
import { convBiasRelu } from "./compute/wasm_kernels.ts";
import type { Split } from "./data/dataset.ts";
import { cacheDir, exists, writeFileAtomic } from "./util/fsutil.ts";
import { resizeAntialiased, type RGBImage } from "./util/image.ts";
import { type ExemplarNet, layerName } from "./nets.ts";
import type { NetSpec } from "./compute/engine.ts";
import { WorkerPool } from "./compute/pool.ts";
import type { Features } from "./svm.ts";
import { METHODS } from "./presets.ts";
import { hashBytes, hashText } from "./util/rng.ts";

/** How response maps are pooled: over the four quadrants, or a 1 + 4 + 16 cell spatial pyramid. */
export type Pooling = "quadrant" | "pyramid";

/** One layer's block in the feature vector. */
export interface FeatureBlock {
  /** The layer. */
  layer: string;
  /** Its channels. */
  channels: number;
  /** Its map's side for the protocol's image size. */
  map: number;
  /** Where the block starts in the feature vector. */
  offset: number;
  /** Side the images are resized to. */
  size: number;
}

/** Cells of the pooling: quadrants (2 x 2) or the pyramid (1 x 1, 2 x 2, 4 x 4). */
export function poolingGrids(p: Pooling): number[] {
  return p === "quadrant" ? [2] : [1, 2, 4];
}

/** The cells of a g x g grid over n rows (or columns): [start, end) of each; every cell holds at least one. */
function cellBounds(n: number, g: number): [number, number][] {
  return Array.from({ length: g }, (_, k) => {
    const lo = Math.floor((k * n) / g);
    return [lo, Math.max(lo + 1, Math.floor(((k + 1) * n) / g))];
  });
}

/**
 * Max-pools a map (H x W x C, row-major) over the cells of the grids, appending to `out` at `off`; the cells of
 * grid g are multiplied by `weights[g's index]` (the release weights pyramid levels 1, 1/2, 1/4).
 *
 * Where every grid divides the finest one and the map has at least a row and a column per fine cell, each coarse
 * cell is exactly the union of fine cells: the map is read once, into the finest grid, and the coarser grids are the
 * maxima of their fine cells (the same maxima as reading the map for each grid).
 */
export function poolMap(
  map: Float32Array,
  H: number,
  W: number,
  C: number,
  grids: number[],
  out: Float32Array,
  off: number,
  weights?: number[],
): number {
  const fine = Math.max(...grids);
  const nested = H >= fine && W >= fine && grids.every((g) => fine % g === 0);
  const cells = nested ? finestCells(map, H, W, C, fine) : null;
  for (const [level, g] of grids.entries()) {
    const weight = weights?.[level] ?? 1;
    const rows = cellBounds(H, g), cols = cellBounds(W, g);
    for (let gy = 0; gy < g; gy++) {
      for (let gx = 0; gx < g; gx++) {
        for (let c = 0; c < C; c++) out[off + c] = -Infinity;
        if (cells) {
          // The fine cells inside this one.
          const f = fine / g;
          for (let fy = gy * f; fy < (gy + 1) * f; fy++) {
            for (let fx = gx * f; fx < (gx + 1) * f; fx++) maxInto(out, off, cells, (fy * fine + fx) * C, C);
          }
        } else {
          const [y0, y1] = rows[gy], [x0, x1] = cols[gx];
          for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) maxInto(out, off, map, (y * W + x) * C, C);
        }
        if (weight !== 1) { for (let c = 0; c < C; c++) out[off + c] *= weight; }
        off += C;
      }
    }
  }
  return off;
}

/** out[off + c] = max(out[off + c], v[at + c]) for c < C (a NaN in v is passed over). */
function maxInto(out: Float32Array, off: number, v: Float32Array, at: number, C: number): void {
  for (let c = 0; c < C; c++) if (v[at + c] > out[off + c]) out[off + c] = v[at + c];
}

/** The maxima of a map's cells on a g x g grid (g x g x C, row-major), the map read once. */
function finestCells(map: Float32Array, H: number, W: number, C: number, g: number): Float32Array {
  const cells = new Float32Array(g * g * C).fill(-Infinity);
  const cellOfX = new Int32Array(W);
  cellBounds(W, g).forEach(([x0, x1], k) => cellOfX.fill(k, x0, x1));
  cellBounds(H, g).forEach(([y0, y1], ky) => {
    for (let y = y0; y < y1; y++) {
      for (let x = 0; x < W; x++) maxInto(cells, (ky * g + cellOfX[x]) * C, map, (y * W + x) * C, C);
    }
  });
  return cells;
}

/**
 * Runs every layer but the softmax convolutionally over whole images
 * (B x S x S x 3) and returns the post-ReLU maps of every conv and FC layer.
 */
export function convolutionalMaps(net: ExemplarNet, x: tf.Tensor4D): tf.Tensor4D[] {
  const maps: tf.Tensor4D[] = [];
  let h = x;
  for (const l of net.walk) {
    if (l.kind === "softmax") break;
    // A fully connected layer as a convolution: its kernel is the map it saw in training (1 x 1 after the first).
    const w = l.kind === "conv" ? net.param(`${l.name}.w`) : net.param(`${l.name}.w`).reshape([
      l.kernel,
      l.kernel,
      l.inChannels,
      l.units,
    ]);
    h = convBiasRelu(h, w as tf.Tensor4D, net.param(`${l.name}.b`), l.kind === "conv" ? "same" : "valid");
    maps.push(h);
    if (l.pooled) h = net.pool(h);
  }
  return maps;
}

/** The feature layout of a network at an image size. */
export function featureLayout(
  net: ExemplarNet,
  size: number,
  pooling: Pooling,
): { blocks: FeatureBlock[]; dim: number } {
  const maps = tf.tidy(() => convolutionalMaps(net, tf.zeros([1, size, size, 3])).map((m) => m.shape));
  const cells = poolingGrids(pooling).reduce((a, g) => a + g * g, 0);
  let offset = 0;
  const blocks = maps.map((shape, i) => {
    const b = {
      layer: net.walk[i].name,
      channels: shape[3],
      map: shape[1],
      offset,
      size: cells * shape[3],
    };
    offset += b.size;
    return b;
  });
  return { blocks, dim: offset };
}

/** Options of {@link extractFeatures}. */
export interface ExtractOptions {
  /** Side the images are resized to. */
  size: number;
  /** How each layer's map is pooled. */
  pooling: Pooling;
  /** Mean colour (RGB in [0, 1]) subtracted from every pixel. */
  mean: [number, number, number];
  /** Weights of the pooling levels (default 1 each). */
  levelWeights?: number[];
  /** Images per batch through the network. */
  batch?: number;
  /** Progress: images done of the total. */
  onProgress?: (done: number, total: number) => void;
}

/** An image resized to `size` x `size`, mean colour subtracted, into `out` at `off`. */
export function prepareImage(
  img: RGBImage,
  size: number,
  mean: [number, number, number],
  out: Float32Array,
  off: number,
): void {
  const r = resizeAntialiased(img, size, size).data;
  for (let i = 0; i < size * size; i++) {
    out[off + 3 * i] = r[3 * i] / 255 - mean[0];
    out[off + 3 * i + 1] = r[3 * i + 1] / 255 - mean[1];
    out[off + 3 * i + 2] = r[3 * i + 2] / 255 - mean[2];
  }
}

/** One layer's response map as plain numbers: `height` x `width` x `channels`, row-major. */
export interface ResponseMap {
  /** The layer, as `conv1 64c5` or `fc3 128f`. */
  layer: string;
  /** Map height. */
  height: number;
  /** Map width. */
  width: number;
  /** Channels (the layer's units). */
  channels: number;
  /** The values, row-major (height x width x channels). */
  data: Float32Array;
}

/**
 * The post-ReLU response map of every layer but the softmax for one image, the network applied to the whole image
 * (resized to `size` x `size`, `mean` colour subtracted): what the pooling of the features sees.
 */
export async function responseMaps(
  net: ExemplarNet,
  img: RGBImage,
  size: number,
  mean: [number, number, number],
): Promise<ResponseMap[]> {
  const buf = new Float32Array(size * size * 3);
  prepareImage(img, size, mean, buf, 0);
  const x = tf.tensor4d(buf, [1, size, size, 3]);
  const maps = convolutionalMaps(net, x);
  try {
    const names = net.walk.map((l) => `${l.name} ${layerName(l)}`);
    return await Promise.all(maps.map(async (m, i) => {
      const [, height, width, channels] = m.shape;
      return { layer: names[i], height, width, channels, data: (await m.data()) as Float32Array };
    }));
  } finally {
    tf.dispose([x, ...maps]);
  }
}

/** Pooled features of the images `indices` of a split. */
export async function extractFeatures(
  net: ExemplarNet,
  split: Split,
  indices: ArrayLike<number>,
  opts: ExtractOptions,
): Promise<Features> {
  return (await extractFeatureSets([net], split, indices, opts))[0];
}

/**
 * The pooled features of several networks and, with `rawSide`, raw pixel features ({@link rawPixelFeatures}) of
 * the images `indices` of a split, in one pass over the images: each is decoded and resized once for all of them.
 * Returns the networks' features in their order, then the raw pixels'; each set is what {@link extractFeatures} or
 * {@link rawPixelFeatures} alone gives.
 */
export async function extractFeatureSets(
  nets: ExemplarNet[],
  split: Split,
  indices: ArrayLike<number>,
  opts: ExtractOptions & { rawSide?: number },
): Promise<Features[]> {
  const layouts = nets.map((net) => featureLayout(net, opts.size, opts.pooling));
  const grids = poolingGrids(opts.pooling);
  const n = indices.length, B = opts.batch ?? 16, S = opts.size, side = opts.rawSide;
  const sets = layouts.map(({ dim }) => ({ n, dim, x: new Float32Array(n * dim) }));
  const raw = side ? { n, dim: side * side * 3, x: new Float32Array(n * side * side * 3) } : null;
  const input = new Float32Array(nets.length ? B * S * S * 3 : 0);
  for (let s = 0; s < n; s += B) {
    const m = Math.min(B, n - s);
    for (let j = 0; j < m; j++) {
      const img = await split.image(indices[s + j]);
      if (nets.length) prepareImage(img, S, opts.mean, input, j * S * S * 3);
      if (raw) prepareImage(img, side!, opts.mean, raw.x, (s + j) * raw.dim);
    }
    for (const [k, net] of nets.entries()) {
      const maps = tf.tidy(() => convolutionalMaps(net, tf.tensor4d(input.subarray(0, m * S * S * 3), [m, S, S, 3])));
      const data = await Promise.all(maps.map((t) => t.data() as Promise<Float32Array>));
      tf.dispose(maps);
      const { blocks, dim } = layouts[k];
      for (let j = 0; j < m; j++) {
        blocks.forEach((b, l) => {
          const per = b.map * b.map * b.channels;
          poolMap(
            data[l].subarray(j * per, (j + 1) * per),
            b.map,
            b.map,
            b.channels,
            grids,
            sets[k].x,
            (s + j) * dim + b.offset,
            opts.levelWeights,
          );
        });
      }
    }
    opts.onProgress?.(s + m, n);
  }
  return raw ? [...sets, raw] : sets;
}

/** Raw pixels as features (a baseline): the image resized to `side` x `side`, in [0, 1], mean colour subtracted. */
export async function rawPixelFeatures(
  split: Split,
  indices: ArrayLike<number>,
  side: number,
  mean: [number, number, number],
): Promise<Features> {
  const dim = side * side * 3, x = new Float32Array(indices.length * dim);
  for (let i = 0; i < indices.length; i++) prepareImage(await split.image(indices[i]), side, mean, x, i * dim);
  return { n: indices.length, dim, x };
}

/** The 99.99th percentile of each block over a feature set (the release's per-layer scale). */
export function blockScales(
  f: Features,
  blocks: { offset: number; size: number }[],
  q: number = METHODS.paper.eval.blockQuantile,
): number[] {
  return blocks.map((b) => {
    const v = new Float32Array(f.n * b.size);
    for (let i = 0; i < f.n; i++) v.set(f.x.subarray(i * f.dim + b.offset, i * f.dim + b.offset + b.size), i * b.size);
    v.sort();
    const p = v[Math.min(v.length - 1, Math.floor(q * (v.length - 1)))];
    return p > 0 ? p : 1;
  });
}

/** Divides every block of every row by its scale, in place. */
export function applyScales(f: Features, blocks: { offset: number; size: number }[], scales: number[]): void {
  for (let i = 0; i < f.n; i++) {
    blocks.forEach((b, k) => {
      const o = i * f.dim + b.offset, inv = 1 / scales[k];
      for (let j = 0; j < b.size; j++) f.x[o + j] *= inv;
    });
  }
}

/**
 * What identifies the images `indices` of a split, for the feature cache: where each image comes from (file, and
 * record in a binary file) and each file's identity on disk (size, modification and change times, inode), so that
 * images replaced or edited in place, even with the same names and count, are never served stale features.
 */
export function imagesIdentity(format: string, split: Split, indices: ArrayLike<number>): string {
  // Binary formats name an image `file#record`; a folder's image is its file (whose name may hold a '#').
  const binary = format === "stl10" || format === "cifar10";
  const sources: string[] = [];
  const files = new Map<string, string>();
  for (let k = 0; k < indices.length; k++) {
    const src = split.source(indices[k]);
    sources.push(src);
    const file = binary ? src.replace(/#\d+$/, "") : src;
    if (!files.has(file)) {
      let id = "missing";
      try {
        const st = Deno.statSync(file);
        id = `${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}:${st.ino}`;
      } catch { /* (reading it will say why) */ }
      files.set(file, id);
    }
  }
  return hashText(split.name, ...sources, ...[...files].flat());
}

/** What a cached feature set was made from, kept beside it. */
export interface FeatureCacheMeta {
  n: number;
  dim: number;
  /** A fingerprint of the feature bytes: a damaged file is recomputed. */
  checksum: string;
  /** What the key was made of, for a reader. */
  about?: Record<string, unknown>;
}

/** The two files of cached features `name` in `dir`: the values and their description. */
function cacheFiles(dir: string, name: string): { bin: string; metaPath: string } {
  return { bin: join(dir, `${name}.f32`), metaPath: join(dir, `${name}.json`) };
}

/** Whether cached features `name` are in `dir` (whether they are intact is checked when they are read). */
export function cacheHas(dir: string, name: string): boolean {
  const { bin, metaPath } = cacheFiles(dir, name);
  return exists(bin) && exists(metaPath);
}

/**
 * Reads cached features, or computes and caches them (`dir/name.f32` and `.json`). `name` must identify everything
 * the features depend on (see {@link imagesIdentity}); a file that is cut short, damaged, does not match its
 * checksum, or was made for another `about` (what the key was made of) is recomputed.
 */
export async function cachedFeatures(
  dir: string,
  name: string,
  compute: () => Promise<Features>,
  about?: Record<string, unknown>,
): Promise<Features> {
  const { bin, metaPath } = cacheFiles(dir, name);
  if (cacheHas(dir, name)) {
    try {
      const meta = JSON.parse(await Deno.readTextFile(metaPath)) as FeatureCacheMeta;
      const bytes = await Deno.readFile(bin);
      // A set made for other weights, images or settings (a file copied over another's name) is not served.
      const same = about === undefined || JSON.stringify(meta.about) === JSON.stringify(about);
      if (same && Number.isInteger(meta.n) && Number.isInteger(meta.dim) && bytes.length === meta.n * meta.dim * 4) {
        const x = new Float32Array(bytes.buffer, bytes.byteOffset, meta.n * meta.dim);
        if (hashBytes(x) === meta.checksum) return { n: meta.n, dim: meta.dim, x };
      }
    } catch { /* damaged: computed again below */ }
  }
  const f = await compute();
  await writeFileAtomic(bin, new Uint8Array(f.x.buffer, f.x.byteOffset, f.x.byteLength));
  const meta: FeatureCacheMeta = { n: f.n, dim: f.dim, checksum: hashBytes(f.x), about };
  await writeFileAtomic(metaPath, JSON.stringify(meta) + "\n");
  return f;
}

/** A request to a feature worker (lib/features_worker.ts). */
export interface FeatureJob {
  /** The networks, each with its flat weights in its parameter order (null keeps the seeded initialisation). */
  nets: { spec: NetSpec; weights: Float32Array | null }[];
  /** Raw pixel features too, at this side (after the networks'). */
  rawSide?: number;
  data: string;
  split: string;
  indices: number[];
  size: number;
  pooling: Pooling;
  mean: [number, number, number];
  /** Weights of the pooling levels. */
  levelWeights?: number[];
  /** The cache folder of the thread that asked (lib/util/fsutil.ts `cacheDir`): the worker reads data from the same. */
  cache?: string;
}

/**
 * {@link extractFeatureSets} split over `workers` Deno workers (each with its own wasm backend and data reader): the
 * images are divided into contiguous shares and the results concatenated in order, so the features are those of one
 * thread (up to the last bits of the convolutions' sums, which OpenBLAS rounds by the batch's shape).
 */
export async function extractFeaturesParallel(
  job: Omit<FeatureJob, "indices">,
  indices: number[],
  workers: number,
  onProgress?: (done: number, total: number) => void,
): Promise<Features[]> {
  const per = Math.ceil(indices.length / workers);
  const shares = Array.from({ length: workers }, (_, w) => indices.slice(w * per, (w + 1) * per)).filter((s) =>
    s.length
  );
  const done = shares.map(() => 0);
  const pool = new WorkerPool<FeatureJob, Features[]>(
    new URL("./features_worker.ts", import.meta.url),
    shares.length,
    "feature",
  );
  let parts: Features[][];
  try {
    parts = await Promise.all(shares.map((share, w) =>
      pool.call(w, { cache: cacheDir(), ...job, indices: share }, {
        onEvent: (d) => {
          done[w] = d as number;
          onProgress?.(done.reduce((a, b) => a + b, 0), indices.length);
        },
      })
    ));
  } finally {
    pool.close();
  }
  return parts[0].map((_, k) => {
    const dim = parts[0][k].dim, x = new Float32Array(indices.length * dim);
    let off = 0;
    for (const p of parts) {
      x.set(p[k].x, off);
      off += p[k].x.length;
    }
    return { n: indices.length, dim, x };
  });
}
