/**
 * Seed patches (paper §3; PAPER.md "Surrogate data"): the N exemplars that become the
 * surrogate classes.
 *
 * Paper (preset `paper`): "we sample N patches of size 32x32 pixels from
 * different images at varying positions and scales forming the initial
 * training set [...] we are mainly interested in patches containing objects or
 * parts of objects, hence we sample only from regions containing considerable
 * gradients." Implemented as: every 32x32 window of every image, at every
 * scale of a small pyramid, is a candidate with weight = the mean squared
 * gradient magnitude inside it; seeds are drawn with probability proportional
 * to that weight, in two stages that give exactly this distribution: an image
 * is drawn with probability proportional to the sum of its candidates'
 * weights, then a window of it proportionally to its weight. Images are drawn
 * without replacement while N <= number of images (so seeds come from
 * different images); beyond that each image gives at most ceil(N / images).
 *
 * Release (preset `release`, the authors' MATLAB code): one seed per image; the
 * sampling map is a high-pass energy (image minus a Gaussian low-pass with
 * sigma 2, squared, low-passed again) on a 4x subsampled image with zeroed
 * borders; the image is drawn proportionally to its mean energy, then a
 * pyramid scale from 0.8^{3,2,1,0}, then the position proportionally to the map.
 *
 * Both stream over the images twice (energies, then crops of the chosen
 * images), so memory stays bounded whatever the number of images: it holds
 * one float per image and the N seeds.
 *
 * Each seed is stored with its surroundings (a {@link CONTEXT} x CONTEXT window
 * centred on it, edges replicated), because the geometric transformations of
 * the surrogate classes sample from the image around the seed, not from a
 * zero-padded 32x32 crop.
 *
 * @module
 */
import { join } from "node:path";
import { UserError } from "./util/errors.ts";
import { cacheDir, writeFileAtomic } from "./util/fsutil.ts";
import { WorkerPool } from "./compute/pool.ts";
import { newImage, resizeAntialiased, resizeBilinear, type RGBImage, UnreadableImage } from "./util/image.ts";
import { PATCH } from "./patch.ts";
import { Rng } from "./util/rng.ts";
import { method as methodNamed, type MethodName, METHODS } from "./presets.ts";
import type { Split } from "./data/dataset.ts";

/** Seed patches are 32x32 (paper §3; PAPER.md "Surrogate data"). */
export { PATCH };
/**
 * Side of the window stored around each seed: large enough for the widest
 * geometric transformation of either preset (the release's: translation 0.25
 * of the scaled window 32 sqrt 2, scale 1/sqrt 2, rotation 20 degrees need a
 * radius of 39.4 px) plus bilinear margin.
 */
export const CONTEXT = 84;

/** Where a seed was cut from. */
export interface SeedOrigin {
  /** Index of the image in its split. */
  image: number;
  /** Pyramid scale of the image it was cut from. */
  scale: number;
  /** Top-left corner of the 32x32 patch in the scaled image. */
  x: number;
  /** Top edge of the patch in the scaled image. */
  y: number;
  /** The candidate's sampling weight (mean energy in the window). */
  energy: number;
  /** Width of the scaled image it was cut from (absent in seeds saved by older versions). */
  width?: number;
  /** Its height. */
  height?: number;
  /** Where that picture (the image inside its frame, {@link frameBox}) begins in the scaled image, when not at 0. */
  left?: number;
  /** Its top edge. */
  top?: number;
}

/** N seed patches with their surroundings. */
export interface Seeds {
  /** N: the number of seeds. */
  n: number;
  /** `n` windows of CONTEXT x CONTEXT RGB (HWC), seed i at `i * CONTEXT * CONTEXT * 3`; the seed is the centre 32x32. */
  context: Uint8Array;
  /** Where each seed was cut from. */
  origins: SeedOrigin[];
  /** The method preset that drew them. */
  method: MethodName;
  /** Images that could not be read (damaged files), skipped: index and why. */
  skipped?: { image: number; reason: string }[];
}

/** Options of {@link seedPatches}. */
export interface SeedOptions {
  /** N: the number of seeds. */
  n: number;
  /** Method preset (default `paper`). */
  method?: MethodName;
  /** Run seed: the same seed gives the same patches. */
  seed?: number;
  /** Use only the first `limit` images of the split. */
  limit?: number;
  /**
   * Read the images in this many workers, each opening the split's data set (its spec) itself: both passes run there.
   * Default: this thread.
   */
  workers?: { data: string; count: number };
  /** Progress callback: (phase, images done, images total). */
  onProgress?: (phase: string, done: number, total: number) => void;
  /** The flag that set `n`, as error messages name it (default `--n`; pretraining's is `--classes`). */
  flag?: string;
}

/** Grayscale (mean of R, G, B) of an RGB image, as floats in [0, 1]. */
export function grayscale(img: RGBImage): Float32Array {
  const g = new Float32Array(img.width * img.height);
  for (let p = 0, q = 0; p < g.length; p++, q += 3) g[p] = (img.data[q] + img.data[q + 1] + img.data[q + 2]) / 765;
  return g;
}

/** Squared gradient magnitude (central differences, one-sided at the edges). */
export function gradientEnergy(g: Float32Array, w: number, h: number): Float32Array {
  const e = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const ym = Math.max(0, y - 1), yp = Math.min(h - 1, y + 1);
    for (let x = 0; x < w; x++) {
      const xm = Math.max(0, x - 1), xp = Math.min(w - 1, x + 1);
      const gx = (g[y * w + xp] - g[y * w + xm]) / (xp - xm);
      const gy = (g[yp * w + x] - g[ym * w + x]) / (yp - ym);
      e[y * w + x] = gx * gx + gy * gy;
    }
  }
  return e;
}

/**
 * Mean of `map` over every `k`x`k` window: entry (y, x) of the result, of size
 * (h-k+1) x (w-k+1), is the mean over the window whose top-left is (x, y).
 */
export function windowMeans(map: Float32Array, w: number, h: number, k: number): Float32Array {
  const W = w + 1;
  const S = new Float64Array(W * (h + 1));
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      row += map[y * w + x];
      S[(y + 1) * W + x + 1] = S[y * W + x + 1] + row;
    }
  }
  const ow = w - k + 1, oh = h - k + 1;
  const out = new Float32Array(Math.max(0, ow) * Math.max(0, oh));
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const m = (S[(y + k) * W + x + k] - S[y * W + x + k] - S[(y + k) * W + x] + S[y * W + x]) / (k * k);
      // Rounding leaves ~1e-17 where the map is zero; the smallest real mean of an 8-bit image is ~4e-10.
      out[y * ow + x] = m > 1e-12 ? m : 0;
    }
  }
  return out;
}

/** Separable Gaussian blur with edge replication. */
export function gaussianBlur(map: Float32Array, w: number, h: number, sigma: number): Float32Array {
  const r = Math.ceil(3 * sigma);
  const kern = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += kern[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kern.length; i++) kern[i] /= sum;
  const tmp = new Float32Array(w * h), out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = -r; i <= r; i++) s += kern[i + r] * map[y * w + Math.min(w - 1, Math.max(0, x + i))];
      tmp[y * w + x] = s;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = -r; i <= r; i++) s += kern[i + r] * tmp[Math.min(h - 1, Math.max(0, y + i)) * w + x];
      out[y * w + x] = s;
    }
  }
  return out;
}

/** The candidate windows of one image at one scale, with their weights. */
export interface CandidateMap {
  scale: number;
  /** The image at this scale. */
  image: RGBImage;
  /** Weights of the windows; window j has top-left (x, y) = positionOf(j). */
  weights: Float32Array;
  positionOf(j: number): [number, number];
}

/** A pyramid level of `img`, `w` x `h`: resized with antialiasing or bilinearly (`seeds.pyramidAntialias`). */
function pyramidLevel(img: RGBImage, w: number, h: number, antialias: boolean): RGBImage {
  return antialias ? resizeAntialiased(img, w, h) : resizeBilinear(img, w, h);
}

/**
 * Paper: the weight of a window is the mean squared gradient magnitude inside
 * it; every 32x32 window of every pyramid scale is a candidate.
 */
export function paperCandidates(img: RGBImage): CandidateMap[] {
  const out: CandidateMap[] = [];
  for (const s of METHODS.paper.seeds.pyramid) {
    const w = Math.round(img.width * s), h = Math.round(img.height * s);
    if (w < PATCH || h < PATCH) continue;
    const im = pyramidLevel(img, w, h, METHODS.paper.seeds.pyramidAntialias);
    const weights = windowMeans(gradientEnergy(grayscale(im), w, h), w, h, PATCH);
    const ow = w - PATCH + 1;
    out.push({ scale: s, image: im, weights, positionOf: (j) => [j % ow, Math.floor(j / ow)] });
  }
  return out;
}

/**
 * Release: high-pass energy on a 4x subsampled image (image minus Gaussian
 * low-pass sigma 2, squared, low-passed again), borders zeroed where a patch
 * would not fit; each map cell stands for a patch centred in its 4x4 block.
 */
export function releaseCandidates(img: RGBImage): CandidateMap[] {
  const { pyramid, subsample: f, highPassSigma: sigma } = METHODS.release.seeds;
  const out: CandidateMap[] = [];
  for (const s of pyramid) {
    const w = Math.round(img.width * s), h = Math.round(img.height * s);
    if (w < PATCH || h < PATCH) continue;
    const im = pyramidLevel(img, w, h, METHODS.release.seeds.pyramidAntialias);
    const sw = Math.max(1, Math.floor(w / f)), sh = Math.max(1, Math.floor(h / f));
    const g = grayscale(resizeBilinear(im, sw, sh));
    const low = gaussianBlur(g, sw, sh, sigma);
    const hp = new Float32Array(g.length);
    for (let i = 0; i < g.length; i++) hp[i] = (g[i] - low[i]) * (g[i] - low[i]);
    const energy = gaussianBlur(hp, sw, sh, sigma);
    // Zero the border: a 32x32 patch centred on the cell must fit inside the image.
    const half = PATCH / 2;
    for (let y = 0; y < sh; y++) {
      for (let x = 0; x < sw; x++) {
        const cx = f * x + f / 2, cy = f * y + f / 2;
        if (cx - half < 0 || cy - half < 0 || cx + half > w || cy + half > h) energy[y * sw + x] = 0;
      }
    }
    out.push({
      scale: s,
      image: im,
      weights: energy,
      positionOf: (j) => [f * (j % sw) + f / 2 - half, f * Math.floor(j / sw) + f / 2 - half],
    });
  }
  return out;
}

function sum(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i];
  return s;
}

/** The weight by which an image is drawn. */
function imageWeight(maps: CandidateMap[], perImage: "spread" | "one"): number {
  if (perImage === "spread") return maps.reduce((a, m) => a + sum(m.weights), 0);
  // Release: the image's mean energy (at full scale).
  const m = maps[0];
  return m ? sum(m.weights) / m.weights.length : 0;
}

/**
 * The picture inside a uniform frame: many photographs (Caltech-101's among them) have flat black or white borders,
 * whose edge against the picture has strong gradients, so seeds would be cut from windows that are mostly frame.
 * Rows and columns at the edges whose every channel varies by at most `tolerance` (JPEG noise on a flat border) are
 * frame, up to a quarter of each side. Returns the picture's box: [left, top, width, height].
 */
export function frameBox(
  img: RGBImage,
  tolerance: number = METHODS.paper.seeds.frameTolerance,
): [number, number, number, number] {
  const flat = (x0: number, y0: number, dx: number, dy: number, n: number) => {
    const lo = [255, 255, 255], hi = [0, 0, 0];
    for (let k = 0, x = x0, y = y0; k < n; k++, x += dx, y += dy) {
      const p = 3 * (y * img.width + x);
      for (let c = 0; c < 3; c++) {
        if (img.data[p + c] < lo[c]) lo[c] = img.data[p + c];
        if (img.data[p + c] > hi[c]) hi[c] = img.data[p + c];
      }
    }
    return hi.every((h, c) => h - lo[c] <= tolerance);
  };
  const W = img.width, H = img.height, maxX = Math.floor(W / 4), maxY = Math.floor(H / 4);
  let left = 0, right = 0, top = 0, bottom = 0;
  while (top < maxY && flat(0, top, 1, 0, W)) top++;
  while (bottom < maxY && flat(0, H - 1 - bottom, 1, 0, W)) bottom++;
  while (left < maxX && flat(left, top, 0, 1, H - top - bottom)) left++;
  while (right < maxX && flat(W - 1 - right, top, 0, 1, H - top - bottom)) right++;
  return [left, top, W - left - right, H - top - bottom];
}

/** The picture inside its frame (the image itself when it has none), and where it lies in the image. */
export function withoutFrame(img: RGBImage): { picture: RGBImage; left: number; top: number } {
  const [left, top, width, height] = frameBox(img);
  if (left === 0 && top === 0 && width === img.width && height === img.height) return { picture: img, left, top };
  const picture = newImage(width, height);
  for (let y = 0; y < height; y++) {
    const from = 3 * ((y + top) * img.width + left);
    picture.data.set(img.data.subarray(from, from + 3 * width), 3 * y * width);
  }
  return { picture, left, top };
}

/** Draws index j with probability weights[j] / sum(weights). */
function drawIndex(weights: Float32Array | Float64Array, total: number, rng: Rng): number {
  let u = rng.next() * total;
  for (let j = 0; j < weights.length; j++) {
    u -= weights[j];
    if (u < 0 && weights[j] > 0) return j;
  }
  for (let j = weights.length - 1; j >= 0; j--) if (weights[j] > 0) return j;
  return -1;
}

/** Copies the CONTEXT x CONTEXT window centred on the patch at (x, y), edges replicated. */
export function cropContext(img: RGBImage, x: number, y: number, out: Uint8Array, offset: number): void {
  const x0 = x + PATCH / 2 - CONTEXT / 2, y0 = y + PATCH / 2 - CONTEXT / 2;
  for (let j = 0; j < CONTEXT; j++) {
    const sy = Math.min(img.height - 1, Math.max(0, y0 + j));
    for (let i = 0; i < CONTEXT; i++) {
      const sx = Math.min(img.width - 1, Math.max(0, x0 + i));
      const p = 3 * (sy * img.width + sx), q = offset + 3 * (j * CONTEXT + i);
      out[q] = img.data[p];
      out[q + 1] = img.data[p + 1];
      out[q + 2] = img.data[p + 2];
    }
  }
}

/** The 32x32 seed patch i (the centre of its context window). */
export function seedPatch(seeds: Seeds, i: number): RGBImage {
  const img = newImage(PATCH, PATCH);
  const off = i * CONTEXT * CONTEXT * 3, m = (CONTEXT - PATCH) / 2;
  for (let y = 0; y < PATCH; y++) {
    const row = off + 3 * ((y + m) * CONTEXT + m);
    img.data.set(seeds.context.subarray(row, row + 3 * PATCH), 3 * y * PATCH);
  }
  return img;
}

/** Pass 1 for one image: the weight by which it is drawn, its candidate positions, whether it is below patch size. */
export function imageCandidates(
  img: RGBImage,
  method: MethodName,
): { weight: number; positions: number; small: boolean } {
  const numbers = methodNamed(method).seeds;
  const maps = (numbers.sampler === "gradient" ? paperCandidates : releaseCandidates)(withoutFrame(img).picture);
  const weight = imageWeight(maps, numbers.perImage);
  let positions = 0;
  if (weight > 0) {
    for (const m of maps) {
      for (let j = 0; j < m.weights.length; j++) if (m.weights[j] > 0) positions++;
    }
  }
  return { weight, positions, small: img.width < PATCH || img.height < PATCH };
}

/**
 * Pass 2 for one image, image `i` of its split: `count` seeds cut from it, positions drawn proportionally to their
 * weight and without replacement, from a random stream of its own (so images can be cut in any order, in any worker).
 */
export function cutSeeds(
  img: RGBImage,
  i: number,
  count: number,
  method: MethodName,
  seed: number,
): { context: Uint8Array; origins: SeedOrigin[] } {
  const numbers = methodNamed(method).seeds;
  const onePerImage = numbers.perImage === "one";
  const { picture, left, top } = withoutFrame(img);
  const maps = (numbers.sampler === "gradient" ? paperCandidates : releaseCandidates)(picture);
  const imgRng = new Rng(seed, 7002, i);
  const all = maps.map((m) => Float32Array.from(m.weights));
  const totals = all.map((a) => sum(a));
  const context = new Uint8Array(count * CONTEXT * CONTEXT * 3);
  const origins: SeedOrigin[] = [];
  for (let k = 0; k < count; k++) {
    let s: number;
    if (onePerImage) {
      // A pyramid scale uniformly, then the position proportionally to its map.
      const valid = totals.map((t, j) => t > 0 ? j : -1).filter((j) => j >= 0);
      if (valid.length === 0) break;
      s = valid[imgRng.int(valid.length)];
    } else {
      s = drawIndex(Float32Array.from(totals), totals.reduce((a, b) => a + b, 0), imgRng);
    }
    if (s < 0) break;
    const j = drawIndex(all[s], totals[s], imgRng);
    if (j < 0) break;
    const [x, y] = maps[s].positionOf(j);
    cropContext(maps[s].image, x, y, context, origins.length * CONTEXT * CONTEXT * 3);
    const scale = maps[s].scale;
    origins.push({
      image: i,
      scale,
      x: x + left * scale,
      y: y + top * scale,
      energy: all[s][j],
      width: maps[s].image.width,
      height: maps[s].image.height,
      ...(left || top ? { left: left * scale, top: top * scale } : {}),
    });
    // Without replacement within the image.
    totals[s] -= all[s][j];
    all[s][j] = 0;
  }
  return { context: context.subarray(0, origins.length * CONTEXT * CONTEXT * 3), origins };
}

/** What pass 1 found for a range of images. */
export interface CandidateCounts {
  /** Each image's weight (0 for one that could not be read). */
  weights: Float64Array;
  /** Candidate positions of the images with any weight. */
  positions: number;
  /** Images smaller than a patch. */
  small: number;
  /** Images that could not be read, and why. */
  skipped: { image: number; reason: string }[];
}

/** Reads image `i`, or null (and a reason in `skipped`) for a damaged one: among thousands, skipped, not fatal. */
export async function readableImage(
  split: Split,
  i: number,
  skipped: { image: number; reason: string }[],
): Promise<RGBImage | null> {
  try {
    return await split.image(i);
  } catch (e) {
    if (!(e instanceof UnreadableImage)) throw e;
    skipped.push({ image: i, reason: e.message });
    return null;
  }
}

/** Pass 1 over images [from, to) of a split (in this thread). */
export async function countCandidates(
  split: Split,
  from: number,
  to: number,
  method: MethodName,
  onImage: () => void = () => {},
): Promise<CandidateCounts> {
  const out: CandidateCounts = { weights: new Float64Array(to - from), positions: 0, small: 0, skipped: [] };
  for (let i = from; i < to; i++) {
    const img = await readableImage(split, i, out.skipped);
    if (img) {
      const c = imageCandidates(img, method);
      out.weights[i - from] = c.weight;
      if (c.small) out.small++;
      if (c.weight > 0) out.positions += c.positions;
    }
    onImage();
  }
  return out;
}

/** A request to a seed worker (lib/seeds_worker.ts): pass 1 over a range of images, or pass 2 for some of them. */
export type SeedJob =
  | { kind: "count"; data: string; split: string; from: number; to: number; method: MethodName; cache?: string }
  | {
    kind: "cut";
    data: string;
    split: string;
    images: [number, number][];
    method: MethodName;
    seed: number;
    cache?: string;
  };

/**
 * Draws N seed patches from a split of unlabeled images (see the module
 * documentation for the two presets). Deterministic from `seed`, whatever the number of workers: with `workers`
 * (the split's data spec and how many), both passes over the images run in that many workers, each image with the
 * same arithmetic and random stream as in one thread.
 */
export async function seedPatches(split: Split, opts: SeedOptions): Promise<Seeds> {
  const method = opts.method ?? "paper";
  const numbers = methodNamed(method).seeds;
  const onePerImage = numbers.perImage === "one";
  const n = opts.n, flag = opts.flag ?? "--n";
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} ${n}: expected a positive integer`);
  const count = Math.min(split.length, opts.limit ?? split.length);
  if (count === 0) throw new UserError(`split "${split.name}" has no images to cut seeds from`);
  const size = split.size ?? await split.imageSize(0);
  if (split.size && (size.width < PATCH || size.height < PATCH)) {
    throw new UserError(`images of ${size.width}x${size.height} are smaller than the ${PATCH}x${PATCH} patch size`);
  }
  const rng = new Rng(opts.seed ?? 0, 7001);
  const pool = opts.workers && opts.workers.count > 1 && count > 1 ? new SeedPool(opts.workers, split.name) : null;
  try {
    // Pass 1: the weight of every image (and how many candidates it has).
    let done = 0;
    const progress = () => opts.onProgress?.("energy", ++done, count);
    const found = pool
      ? await pool.count(count, method, (d) => opts.onProgress?.("energy", d, count))
      : await countCandidates(split, 0, count, method, progress);
    const weights = found.weights, skipped = found.skipped;
    const usable = weights.reduce((a, w) => a + (w > 0 ? 1 : 0), 0);
    const available = onePerImage ? usable : found.positions;
    if (n > available) {
      const why = [
        found.small ? `${found.small} images are smaller than ${PATCH}x${PATCH}` : "",
        skipped.length ? `${skipped.length} could not be read` : "",
      ].filter(Boolean).join(", ");
      throw new UserError(
        `${flag} ${n} is larger than the ${available} candidate ${
          onePerImage ? "images (the release takes one seed per image)" : "patches with any gradient"
        } in ${count} images${why ? ` (${why})` : ""}`,
      );
    }

    // Draw images: without replacement, each at most `cap` times.
    const cap = onePerImage ? 1 : Math.ceil(n / Math.max(1, usable));
    const perImage = new Map<number, number>();
    const w = Float64Array.from(weights);
    let total = w.reduce((a, b) => a + b, 0);
    for (let k = 0; k < n; k++) {
      const i = drawIndex(w, total, rng);
      if (i < 0) throw new UserError(`${flag} ${n}: not enough images with gradients to draw from`);
      const c = (perImage.get(i) ?? 0) + 1;
      perImage.set(i, c);
      if (c >= cap) {
        total -= w[i];
        w[i] = 0;
      }
    }

    // Pass 2: cut the seeds from the chosen images, positions proportional to weight.
    const chosen: [number, number][] = [...perImage.keys()].sort((a, b) => a - b).map((i) => [i, perImage.get(i)!]);
    const seed = opts.seed ?? 0;
    const cuts = pool
      ? await pool.cut(chosen, method, seed, (d) => opts.onProgress?.("crop", d, chosen.length))
      : await cutAll(split, chosen, method, seed, (d) => opts.onProgress?.("crop", d, chosen.length));
    // Shared memory, so that the surrogate-data workers read the seeds without copies.
    const context = new Uint8Array(new SharedArrayBuffer(n * CONTEXT * CONTEXT * 3));
    const origins: SeedOrigin[] = [];
    for (const c of cuts) {
      if (origins.length + c.origins.length > n) break;
      context.set(c.context, origins.length * CONTEXT * CONTEXT * 3);
      origins.push(...c.origins);
    }
    if (origins.length !== n) throw new UserError(`${flag} ${n}: only ${origins.length} patches could be drawn`);
    return { n, context, origins, method, ...(skipped.length ? { skipped } : {}) };
  } finally {
    pool?.close();
  }
}

/** Pass 2 in this thread, image after image. */
async function cutAll(
  split: Split,
  chosen: [number, number][],
  method: MethodName,
  seed: number,
  onDone: (done: number) => void,
): Promise<{ context: Uint8Array; origins: SeedOrigin[] }[]> {
  const out = [];
  for (const [i, count] of chosen) {
    out.push(cutSeeds(await split.image(i), i, count, method, seed));
    onDone(out.length);
  }
  return out;
}

/** Both passes over a split's images in workers (lib/seeds_worker.ts), each with its own reader of the data. */
class SeedPool {
  readonly #pool: WorkerPool<SeedJob, CandidateCounts | { context: Uint8Array; origins: SeedOrigin[] }[]>;
  readonly #size: number;
  constructor(readonly workers: { data: string; count: number }, readonly split: string) {
    this.#size = workers.count;
    this.#pool = new WorkerPool(new URL("./seeds_worker.ts", import.meta.url), workers.count, "seed");
  }

  /** Contiguous shares of `n` items, one per worker. */
  #shares(n: number): [number, number][] {
    const per = Math.ceil(n / this.#size);
    return Array.from({ length: this.#size }, (_, w) => [Math.min(n, w * per), Math.min(n, (w + 1) * per)])
      .filter(([a, b]) => b > a) as [number, number][];
  }

  /** Pass 1 over the first `count` images, the shares merged in image order. */
  async count(count: number, method: MethodName, onDone: (done: number) => void): Promise<CandidateCounts> {
    const shares = this.#shares(count), done = shares.map(() => 0);
    const parts = await Promise.all(
      shares.map(([from, to], w) =>
        this.#pool.call(w, {
          kind: "count",
          data: this.workers.data,
          split: this.split,
          from,
          to,
          method,
          cache: cacheDir(),
        }, {
          onEvent: (d) => {
            done[w] = d as number;
            onDone(done.reduce((a, b) => a + b, 0));
          },
        }) as Promise<CandidateCounts>
      ),
    );
    const weights = new Float64Array(count);
    parts.forEach((p, k) => weights.set(p.weights, shares[k][0]));
    return {
      weights,
      positions: parts.reduce((a, p) => a + p.positions, 0),
      small: parts.reduce((a, p) => a + p.small, 0),
      skipped: parts.flatMap((p) => p.skipped),
    };
  }

  /** Pass 2 for the chosen images, in their order. */
  async cut(
    chosen: [number, number][],
    method: MethodName,
    seed: number,
    onDone: (done: number) => void,
  ): Promise<{ context: Uint8Array; origins: SeedOrigin[] }[]> {
    const shares = this.#shares(chosen.length), done = shares.map(() => 0);
    const parts = await Promise.all(shares.map(([a, b], w) =>
      this.#pool.call(w, {
        kind: "cut",
        data: this.workers.data,
        split: this.split,
        images: chosen.slice(a, b),
        method,
        seed,
        cache: cacheDir(),
      }, {
        onEvent: (d) => {
          done[w] = d as number;
          onDone(done.reduce((x, y) => x + y, 0));
        },
      }) as Promise<{ context: Uint8Array; origins: SeedOrigin[] }[]>
    ));
    return parts.flat();
  }

  close(): void {
    this.#pool.close();
  }
}

/** The per-pixel mean of the seed patches (RGB in [0, 1], 32x32x3), subtracted from every input. */
export function seedMean(seeds: Seeds): Float32Array {
  const mean = new Float32Array(PATCH * PATCH * 3);
  for (let i = 0; i < seeds.n; i++) {
    const p = seedPatch(seeds, i).data;
    for (let j = 0; j < mean.length; j++) mean[j] += p[j];
  }
  for (let j = 0; j < mean.length; j++) mean[j] /= 255 * seeds.n;
  return mean;
}

/** The mean colour of the seed patches (RGB in [0, 1]): what the features subtract from every pixel. */
export function seedMeanColour(seeds: Seeds): [number, number, number] {
  const m = seedMean(seeds), mean: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < PATCH * PATCH; i++) for (let c = 0; c < 3; c++) mean[c] += m[3 * i + c] / (PATCH * PATCH);
  return mean;
}

/** Writes seeds to `dir`: `seeds.bin` (the context windows) and `seeds.json` (where each came from). */
export async function saveSeeds(dir: string, seeds: Seeds): Promise<void> {
  await writeFileAtomic(join(dir, "seeds.bin"), seeds.context);
  await writeFileAtomic(
    join(dir, "seeds.json"),
    JSON.stringify({
      n: seeds.n,
      method: seeds.method,
      skipped: seeds.skipped,
      patch: PATCH,
      context: CONTEXT,
      origins: seeds.origins,
    }) + "\n",
  );
}

/** Reads seeds written by {@link saveSeeds}. */
export async function loadSeeds(dir: string): Promise<Seeds> {
  const metaPath = join(dir, "seeds.json"), binPath = join(dir, "seeds.bin");
  let meta: { n: number; method?: MethodName; preset?: MethodName; context: number; origins: SeedOrigin[] };
  try {
    meta = JSON.parse(await Deno.readTextFile(metaPath));
  } catch {
    throw new UserError(`${metaPath}: not found or not JSON (expected seeds written by deno task seeds)`);
  }
  const bytes = await Deno.readFile(binPath).catch(() => null);
  const stored = meta.context, size = meta.n * CONTEXT * CONTEXT * 3;
  if (!bytes || !(stored >= PATCH && stored <= CONTEXT) || bytes.length !== meta.n * stored * stored * 3) {
    throw new UserError(
      `${binPath}: expected ${meta.n} seed windows of ${stored}x${stored} (${meta.n * stored * stored * 3} bytes)`,
    );
  }
  const context = new Uint8Array(new SharedArrayBuffer(size));
  if (stored === CONTEXT) context.set(bytes);
  else {
    // Seeds saved with a smaller window (older versions): centred in today's, their edges replicated, as a crop
    // at the image's edge is; the seeds and everything the paper preset samples stay the same.
    const m = (CONTEXT - stored) / 2;
    for (let i = 0; i < meta.n; i++) {
      const from = i * stored * stored * 3, to = i * CONTEXT * CONTEXT * 3;
      for (let y = 0; y < CONTEXT; y++) {
        const sy = Math.min(stored - 1, Math.max(0, y - m));
        for (let x = 0; x < CONTEXT; x++) {
          const sx = Math.min(stored - 1, Math.max(0, x - m));
          const q = from + 3 * (sy * stored + sx), o = to + 3 * (y * CONTEXT + x);
          context[o] = bytes[q];
          context[o + 1] = bytes[q + 1];
          context[o + 2] = bytes[q + 2];
        }
      }
    }
  }
  // (Seeds written before the presets were called methods name theirs `preset`.)
  return { n: meta.n, context, origins: meta.origins, method: meta.method ?? meta.preset ?? "paper" };
}

/**
 * Where each seed's image lies in its context window: [left, top, right, bottom] (pixel centres, inclusive) per
 * seed, or null when the seeds do not record their image sizes.
 */
export function imageBounds(seeds: Seeds): Float32Array | null {
  if (seeds.origins.length !== seeds.n || seeds.origins.some((o) => o.width === undefined)) return null;
  const b = new Float32Array(4 * seeds.n), m = CONTEXT / 2 - PATCH / 2;
  seeds.origins.forEach((o, i) => {
    const x = o.x - (o.left ?? 0), y = o.y - (o.top ?? 0); // in the picture the window was cut from
    b.set([m - x, m - y, m - x + o.width! - 1, m - y + o.height! - 1], 4 * i);
  });
  return b;
}
