/**
 * The six transformations that turn a seed patch into a surrogate class
 * (paper §3; PAPER.md "Surrogate data"). "We apply a set of transformations T to each seed
 * patch [...] one random parameter set per sample, the same for every pixel of
 * the patch":
 *
 * | name | paper | release (the authors' code) |
 * | --- | --- | --- |
 * | `translation` | "vertical or horizontal translation by a distance within 0.2 of the patch size" | within 0.25 |
 * | `scaling` | "multiplication of the patch scale by a factor between 0.7 and 1.4" | factor in [1/sqrt 2, sqrt 2] |
 * | `rotation` | "rotation of the image by an angle up to 20 degrees" | the same |
 * | `contrast1` | "multiply the projection of each patch pixel onto the principal components of the set of all pixels by a factor between 0.5 and 2 (factors are independent for each principal component)" | factor 2^(z s), z ~ N(0,1), s = (1, 1, 0.5), on fixed eigenvectors (`color_eigenvectors.mat`) |
 * | `contrast2` | "raise saturation and value (S and V components of the HSV color representation) of all pixels to a power between 0.25 and 4, multiply these values by a factor between 0.7 and 1.4, add to them a value between -0.1 and 0.1" | power 2^(2u), factor 2^(0.5u), u ~ U(-1, 1) |
 * | `color` | "add a value between -0.1 and 0.1 to the hue (H component of the HSV representation)" | the same, hue taken mod 1 |
 *
 * The paper gives ranges, not distributions: this project draws additive
 * quantities uniformly and multiplicative ones (scale, factors, powers)
 * uniformly in log space, whose ranges above are all symmetric. Hue is
 * circular, so both presets take it mod 1.
 *
 * The geometric transformations (translation, scaling, rotation) are composed
 * into one affine map that samples the seed's surrounding window with
 * bilinear interpolation, so no empty borders appear. Each transformation can
 * be switched off on its own (the paper ablates them, its Figure 3).
 *
 * @module
 */
import { UserError } from "./util/errors.ts";
import { CONTEXT, PATCH } from "./seeds.ts";
import type { Rng } from "./util/rng.ts";
import { type AugmentNumbers, type MethodName, METHODS, type ReleaseFile, releaseFile } from "./presets.ts";

/** The six transformations, by the names used on the command line. */
export const TRANSFORMS = ["translation", "scaling", "rotation", "contrast1", "contrast2", "color"] as const;
/** The name of one transformation. */
export type TransformName = typeof TRANSFORMS[number];

/** One random parameter set: what one transformed copy of a seed is made with. */
export interface TransformParams {
  /** Shift of the patch centre, in pixels (x right, y down). */
  tx: number;
  /** Vertical shift of the patch centre, in pixels. */
  ty: number;
  /** Scale factor: > 1 magnifies (the patch covers a smaller area of the image). */
  scale: number;
  /** Rotation angle in radians (positive turns the content clockwise as seen on screen, y down). */
  angle: number;
  /** contrast1: factors of the projections onto the three principal components. */
  pca: [number, number, number];
  /** contrast2: S' = S^sPow * sMul + sAdd, V' = V^vPow * vMul + vAdd (then clipped to [0, 1]). */
  sPow: number;
  /** contrast2: factor multiplying the saturation. */
  sMul: number;
  /** contrast2: value added to the saturation. */
  sAdd: number;
  /** contrast2: power the value (V) is raised to. */
  vPow: number;
  /** contrast2: factor multiplying the value. */
  vMul: number;
  /** contrast2: value added to the value. */
  vAdd: number;
  /** color: added to the hue (hue in [0, 1), taken mod 1). */
  hue: number;
}

/** The parameters that change nothing. */
export function identityParams(): TransformParams {
  return {
    tx: 0,
    ty: 0,
    scale: 1,
    angle: 0,
    pca: [1, 1, 1],
    sPow: 1,
    sMul: 1,
    sAdd: 0,
    vPow: 1,
    vMul: 1,
    vAdd: 0,
    hue: 0,
  };
}

/** Parses a comma-separated list of transformation names ("all" for all six). */
export function parseTransforms(list: string): Set<TransformName> {
  if (list === "all") return new Set(TRANSFORMS);
  if (list === "none" || list === "") return new Set();
  const out = new Set<TransformName>();
  for (const t of list.split(",").map((s) => s.trim())) {
    if (!(TRANSFORMS as readonly string[]).includes(t)) {
      throw new UserError(`unknown transformation "${t}" (expected some of: ${TRANSFORMS.join(", ")}, or all)`);
    }
    out.add(t as TransformName);
  }
  return out;
}

const logUniform = (rng: Rng, [lo, hi]: [number, number]) => Math.exp(rng.uniform(Math.log(lo), Math.log(hi)));

/**
 * Draws one parameter set. Transformations not in `enabled` keep their
 * identity value; the random stream is consumed the same way whatever is
 * enabled, so switching one off leaves the others' draws unchanged.
 */
export function drawParams(
  rng: Rng,
  method: MethodName = "paper",
  enabled: Set<TransformName> = new Set(TRANSFORMS),
): TransformParams {
  const r: AugmentNumbers = METHODS[method].augment;
  const p = identityParams();
  const tx = rng.uniform(-r.translation, r.translation) * PATCH;
  const ty = rng.uniform(-r.translation, r.translation) * PATCH;
  const scale = r.scaleDraw === "uniform" ? rng.uniform(...r.scale) : logUniform(rng, r.scale);
  const angle = rng.uniform(-r.rotationDeg, r.rotationDeg) * Math.PI / 180;
  // contrast1: "multiply the projection of each patch pixel onto the principal components [...] by a factor"; the
  // release draws the factor as 2^(z s_k), z ~ N(0, 1), the paper's range is drawn log-uniformly.
  const spread = r.pcaLog2Std;
  const pca =
    (spread
      ? spread.map((s) => 2 ** (Math.max(-r.pcaClip, Math.min(r.pcaClip, rng.normal())) * s))
      : [logUniform(rng, r.pca), logUniform(rng, r.pca), logUniform(rng, r.pca)]) as [number, number, number];
  // contrast2: S and V "to a power [...], multiply [...] by a factor [...], add [...] a value" (S, then V).
  const power = [logUniform(rng, r.power), logUniform(rng, r.power)];
  const factor = [logUniform(rng, r.factor), logUniform(rng, r.factor)];
  const add = [rng.uniform(...r.add), rng.uniform(...r.add)];
  const hue = rng.uniform(...r.hue);
  if (enabled.has("scaling")) p.scale = scale;
  // The release shifts by a fraction of the scaled window (the patch covers PATCH / scale source pixels).
  const window = r.translationOf === "scaledPatch" ? 1 / p.scale : 1;
  if (enabled.has("translation")) [p.tx, p.ty] = [tx * window, ty * window];
  if (enabled.has("rotation")) p.angle = angle;
  if (enabled.has("contrast1")) p.pca = pca;
  if (enabled.has("contrast2")) {
    [p.sPow, p.vPow] = power;
    [p.sMul, p.vMul] = factor;
    [p.sAdd, p.vAdd] = add;
  }
  if (enabled.has("color")) p.hue = hue;
  return p;
}

/** Principal components of pixel colours: mean, and eigenvectors as rows (RGB in [0, 1]). */
export interface ColorPCA {
  /** Mean colour (RGB in [0, 1]). */
  mean: [number, number, number];
  /** Row k is the k-th principal direction (unit length), by decreasing variance. */
  vectors: [number, number, number][];
  /** Variance along each principal direction, largest first. */
  variances: [number, number, number];
}

/** PCA of the colours of RGB pixels (bytes, interleaved), e.g. of all seed patches. */
export function colorPCA(pixels: Uint8Array): ColorPCA {
  const n = pixels.length / 3;
  const m = [0, 0, 0];
  for (let i = 0; i < pixels.length; i += 3) for (let c = 0; c < 3; c++) m[c] += pixels[i + c] / 255;
  for (let c = 0; c < 3; c++) m[c] /= n;
  const C = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
  for (let i = 0; i < pixels.length; i += 3) {
    const d = [pixels[i] / 255 - m[0], pixels[i + 1] / 255 - m[1], pixels[i + 2] / 255 - m[2]];
    for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) C[a][b] += d[a] * d[b];
  }
  for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) C[a][b] /= Math.max(1, n - 1);
  const { values, vectors } = jacobiEigen3(C);
  const order = [0, 1, 2].sort((a, b) => values[b] - values[a]);
  return {
    mean: m as [number, number, number],
    vectors: order.map((k) => [vectors[0][k], vectors[1][k], vectors[2][k]]) as [number, number, number][],
    variances: order.map((k) => values[k]) as [number, number, number],
  };
}

/** Eigen-decomposition of a symmetric 3x3 matrix (cyclic Jacobi); eigenvectors are the columns. */
function jacobiEigen3(A: number[][]): { values: number[]; vectors: number[][] } {
  const a = A.map((r) => r.slice());
  const v = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[0][1] ** 2 + a[0][2] ** 2 + a[1][2] ** 2;
    if (off < 1e-30) break;
    for (const [p, q] of [[0, 1], [0, 2], [1, 2]]) {
      if (Math.abs(a[p][q]) < 1e-300) continue;
      const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1), s = t * c;
      for (let k = 0; k < 3; k++) {
        const akp = a[k][p], akq = a[k][q];
        a[k][p] = c * akp - s * akq;
        a[k][q] = s * akp + c * akq;
      }
      for (let k = 0; k < 3; k++) {
        const apk = a[p][k], aqk = a[q][k];
        a[p][k] = c * apk - s * aqk;
        a[q][k] = s * apk + c * aqk;
      }
      for (let k = 0; k < 3; k++) {
        const vkp = v[k][p], vkq = v[k][q];
        v[k][p] = c * vkp - s * vkq;
        v[k][q] = s * vkp + c * vkq;
      }
    }
  }
  return { values: [a[0][0], a[1][1], a[2][2]], vectors: v };
}

/**
 * contrast1's colour basis as a preset names it (`augment.colorBasis`): "the principal components of the set of all
 * pixels" (`seeds`: of `pixels`, the seed patches' pixels), or the release's fixed eigenvectors (adjust_color.m
 * loads color_eigenvectors.mat) around the mean colour of `pixels` (adjust_color.m centres on the data's mean).
 */
export function contrast1Basis(pixels: Uint8Array, basis: AugmentNumbers["colorBasis"]): ColorPCA {
  const pca = colorPCA(pixels);
  return basis === "seeds" ? pca : { mean: pca.mean, ...releaseEigenvectors(basis) };
}

/**
 * The release's colour eigenvectors (the columns of `v`, rows R, G, B) and eigenvalues `d`, as rows by decreasing
 * eigenvalue. adjust_color.m projects onto v and maps back with inv(v); v is orthonormal (to 1e-16), so inv(v) is the
 * transpose that {@link transformPatch} uses.
 */
export function releaseEigenvectors(file: ReleaseFile): Pick<ColorPCA, "vectors" | "variances"> {
  const { v, d } = releaseFile(file) as { v?: unknown; d?: unknown };
  const finite = (x: unknown, n: number): x is number[] =>
    Array.isArray(x) && x.length === n && x.every((e) => typeof e === "number" && Number.isFinite(e));
  if (!(Array.isArray(v) && v.length === 3 && v.every((row) => finite(row, 3)) && finite(d, 3))) {
    throw new UserError(`${file}: expected v, a 3 x 3 matrix of numbers, and d, 3 numbers`);
  }
  const order = [0, 1, 2].sort((a, b) => d[b] - d[a]);
  return {
    vectors: order.map((k) => [v[0][k], v[1][k], v[2][k]]) as [number, number, number][],
    variances: order.map((k) => d[k]) as [number, number, number],
  };
}

/** The identity colour transform's PCA (any orthonormal basis works when all factors are 1). */
export const NO_PCA: ColorPCA = {
  mean: [0.5, 0.5, 0.5],
  vectors: [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
  variances: [1, 1, 1],
};

/**
 * contrast1 and contrast2 as the release computes them (make_data/adjust_color.m, power_transform.m), from the
 * statistics of the seed pixels: see {@link releaseColour}.
 */
export interface ReleaseColour {
  /** The data's min (RGB in [0, 1]): pixels are centred and divided by hi - lo. */
  lo: number;
  /** The data's max. */
  hi: number;
  /** The range of the centred, scaled data: contrast1's result is clipped to it. */
  clip: [number, number];
  /** Stretch each patch to [0, 1] before contrast2. */
  stretch: boolean;
  /** Average a window larger than the patch down, 2 x 2 samples a pixel (`augment.antialias`). */
  antialias: boolean;
}

/** The release's colour statistics of some pixels (bytes, interleaved RGB) and their mean colour. */
export function releaseColour(
  pixels: Uint8Array,
  mean: [number, number, number],
  stretch: boolean,
  antialias: boolean,
): ReleaseColour {
  let lo = 255, hi = 0;
  for (let i = 0; i < pixels.length; i++) {
    if (pixels[i] < lo) lo = pixels[i];
    if (pixels[i] > hi) hi = pixels[i];
  }
  const [l, h] = [lo / 255, hi / 255], range = h - l || 1;
  let cmin = Infinity, cmax = -Infinity;
  for (let i = 0; i < pixels.length; i++) {
    const c = (pixels[i] / 255 - mean[i % 3] - l) / range;
    if (c < cmin) cmin = c;
    if (c > cmax) cmax = c;
  }
  return { lo: l, hi: h, clip: [cmin, cmax], stretch, antialias };
}

/** contrast2 and color on one pixel, in HSV; writes its RGB to `out[o..o+2]`. */
function contrast2AndColor(r: number, g: number, b: number, p: TransformParams, out: Float32Array, o: number): void {
  // RGB -> HSV: hue in [0, 1), saturation, value.
  const max = r > g ? (r > b ? r : b) : (g > b ? g : b);
  const min = r < g ? (r < b ? r : b) : (g < b ? g : b);
  const chroma = max - min;
  let hue = 0;
  if (chroma > 0) {
    if (max === r) hue = ((g - b) / chroma) / 6;
    else if (max === g) hue = ((b - r) / chroma + 2) / 6;
    else hue = ((r - g) / chroma + 4) / 6;
    if (hue < 0) hue += 1;
  }
  let sat = max > 0 ? chroma / max : 0;
  let val = max;
  // contrast2: "raise saturation and value [...] to a power [...], multiply these values by a factor [...], add to
  // them a value"
  sat = Math.pow(sat, p.sPow) * p.sMul + p.sAdd;
  val = Math.pow(val, p.vPow) * p.vMul + p.vAdd;
  sat = sat < 0 ? 0 : sat > 1 ? 1 : sat;
  val = val < 0 ? 0 : val > 1 ? 1 : val;
  // color: "add a value [...] to the hue", which is circular
  hue = (hue + p.hue) % 1;
  if (hue < 0) hue += 1;
  // HSV -> RGB: in the sector of the hue, one channel is the value, one the floor, one rises or falls.
  const h6 = hue * 6, sector = Math.floor(h6), frac = h6 - sector;
  const floor = val * (1 - sat), falling = val * (1 - frac * sat), rising = val * (1 - (1 - frac) * sat);
  switch (sector % 6) {
    case 0:
      r = val, g = rising, b = floor;
      break;
    case 1:
      r = falling, g = val, b = floor;
      break;
    case 2:
      r = floor, g = val, b = rising;
      break;
    case 3:
      r = floor, g = falling, b = val;
      break;
    case 4:
      r = rising, g = floor, b = val;
      break;
    default:
      r = val, g = floor, b = falling;
  }
  out[o] = r;
  out[o + 1] = g;
  out[o + 2] = b;
}

/**
 * The release's pixel at source position (sx, sy) of a seed's window, RGB in [0, 1] into `rgb`: one bilinear sample,
 * or, where the window shrinks to the patch, the mean of 2 x 2 bilinear samples a quarter pixel around it (the output
 * pixel's footprint: (cos, sin) is the source step of one pixel along u, (sin, cos) along v), the box filter an
 * antialiased resize averages with.
 */
function releaseSample(
  src: Uint8Array,
  srcOff: number,
  sx: number,
  sy: number,
  cos: number,
  sin: number,
  rgb: Float64Array,
) {
  rgb.fill(0);
  if (cos === 0 && sin === 0) return bilinearAdd(src, srcOff, sx, sy, 1, rgb);
  for (const du of [-0.25, 0.25]) {
    for (const dv of [-0.25, 0.25]) {
      bilinearAdd(src, srcOff, sx + cos * du + sin * dv, sy - sin * du + cos * dv, 0.25, rgb);
    }
  }
}

/** Adds `weight` x the bilinear sample of a seed's window at (sx, sy) (edges held), RGB in [0, 1], to `rgb`. */
function bilinearAdd(src: Uint8Array, srcOff: number, sx: number, sy: number, weight: number, rgb: Float64Array) {
  sx = sx < 0 ? 0 : sx > CONTEXT - 1 ? CONTEXT - 1 : sx;
  sy = sy < 0 ? 0 : sy > CONTEXT - 1 ? CONTEXT - 1 : sy;
  const x0 = Math.min(Math.floor(sx), CONTEXT - 2), y0 = Math.min(Math.floor(sy), CONTEXT - 2);
  const wx = sx - x0, wy = sy - y0, w = weight / 255;
  const i00 = srcOff + 3 * (y0 * CONTEXT + x0), i10 = i00 + 3, i01 = i00 + 3 * CONTEXT, i11 = i01 + 3;
  const w00 = (1 - wx) * (1 - wy) * w, w10 = wx * (1 - wy) * w, w01 = (1 - wx) * wy * w, w11 = wx * wy * w;
  for (let c = 0; c < 3; c++) {
    rgb[c] += src[i00 + c] * w00 + src[i10 + c] * w10 + src[i01 + c] * w01 + src[i11 + c] * w11;
  }
}

/**
 * Working memory of {@link transformPatch}, reused from patch to patch by whoever makes many (lib/surrogate.ts keeps
 * one per data set): one pixel of the release's path, and the release's patch after contrast1, kept until its
 * minimum and maximum are known.
 */
export interface PatchScratch {
  /** One sampled pixel, RGB in [0, 1]. */
  pixel: Float64Array;
  /** A patch of 32 x 32 x 3 values. */
  patch: Float64Array;
}

/** Fresh working memory for {@link transformPatch}. */
export function patchScratch(): PatchScratch {
  return { pixel: new Float64Array(3), patch: new Float64Array(PATCH * PATCH * 3) };
}

/**
 * Applies one parameter set to a seed: samples the 32x32 patch from the seed's
 * CONTEXT x CONTEXT window (bytes at `src[srcOff..]`) through the geometric
 * transform, then applies contrast1, contrast2 and color. Writes 32x32x3 RGB
 * values in [0, 1] to `out[outOff..]` (HWC). `release` switches contrast1 and
 * contrast2 to the release's arithmetic (see {@link ReleaseColour}). `scratch` is working memory a caller that
 * makes many patches passes again and again ({@link patchScratch}).
 */
export function transformPatch(
  src: Uint8Array,
  srcOff: number,
  p: TransformParams,
  pca: ColorPCA,
  out: Float32Array,
  outOff = 0,
  release: ReleaseColour | null = null,
  scratch: PatchScratch = patchScratch(),
): void {
  const sampled = scratch.pixel, stretchScratch = scratch.patch;
  // Geometry: "translation [...], scaling [...], rotation": output pixel (u, v), centred, reads the source at
  // centre + shift + R(angle) (u, v) / scale, one affine map for the three.
  const centre = CONTEXT / 2 - 0.5, half = PATCH / 2 - 0.5;
  const cos = Math.cos(p.angle) / p.scale, sin = Math.sin(p.angle) / p.scale;
  // contrast1: "multiply the projection of each patch pixel onto the principal components [...] by a factor", as
  // one 3x3 matrix M = V^T diag(f) V applied around the colour mean.
  const V = pca.vectors, f = p.pca;
  const M = new Float64Array(9);
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 3; b++) {
      M[3 * a + b] = f[0] * V[0][a] * V[0][b] + f[1] * V[1][a] * V[1][b] + f[2] * V[2][a] * V[2][b];
    }
  }
  const [m0, m1, m2] = pca.mean;
  const inv = 1 / 255;
  // The release's contrast1: centred by mean + lo, divided by the data's range, clipped to the centred data's range.
  const lo = release?.lo ?? 0, scale = release ? 1 / (release.hi - release.lo || 1) : 1;
  const [cLo, cHi] = release?.clip ?? [-Infinity, Infinity];
  const [b0, b1, b2] = [(m0 - lo) * scale, (m1 - lo) * scale, (m2 - lo) * scale];
  let pMin = Infinity, pMax = -Infinity;
  const shrinks = p.scale < 1 && release?.antialias === true; // a window larger than the patch, averaged down
  // One fused pass per pixel: the transforms run for every training sample (`deno task bench` measures them).
  for (let v = 0; v < PATCH; v++) {
    for (let u = 0; u < PATCH; u++) {
      // Source position; with y pointing down, a positive angle turns the content clockwise. Bilinear sampling.
      const du = u - half, dv = v - half;
      let sx = centre + p.tx + cos * du + sin * dv;
      let sy = centre + p.ty - sin * du + cos * dv;
      const o = 3 * (v * PATCH + u);
      let r: number, g: number, b: number;
      if (release) {
        // The release cuts the window from the image and resizes it down with antialiasing (get_patches_rotations.m):
        // where the window is larger than the patch, a pixel averages 2 x 2 samples over its footprint.
        releaseSample(src, srcOff, sx, sy, shrinks ? cos : 0, shrinks ? sin : 0, sampled);
        r = sampled[0], g = sampled[1], b = sampled[2];
      } else {
        sx = sx < 0 ? 0 : sx > CONTEXT - 1 ? CONTEXT - 1 : sx;
        sy = sy < 0 ? 0 : sy > CONTEXT - 1 ? CONTEXT - 1 : sy;
        const x0 = Math.min(Math.floor(sx), CONTEXT - 2), y0 = Math.min(Math.floor(sy), CONTEXT - 2);
        const wx = sx - x0, wy = sy - y0;
        const i00 = srcOff + 3 * (y0 * CONTEXT + x0), i10 = i00 + 3, i01 = i00 + 3 * CONTEXT, i11 = i01 + 3;
        const w00 = (1 - wx) * (1 - wy), w10 = wx * (1 - wy), w01 = (1 - wx) * wy, w11 = wx * wy;
        r = (src[i00] * w00 + src[i10] * w10 + src[i01] * w01 + src[i11] * w11) * inv;
        g = (src[i00 + 1] * w00 + src[i10 + 1] * w10 + src[i01 + 1] * w01 + src[i11 + 1] * w11) * inv;
        b = (src[i00 + 2] * w00 + src[i10 + 2] * w10 + src[i01 + 2] * w01 + src[i11 + 2] * w11) * inv;
      }
      if (!release) {
        // contrast1: the projections onto the principal components, each multiplied by its factor
        const d0 = r - m0, d1 = g - m1, d2 = b - m2;
        r = m0 + M[0] * d0 + M[1] * d1 + M[2] * d2;
        g = m1 + M[3] * d0 + M[4] * d1 + M[5] * d2;
        b = m2 + M[6] * d0 + M[7] * d1 + M[8] * d2;
        r = r < 0 ? 0 : r > 1 ? 1 : r;
        g = g < 0 ? 0 : g > 1 ? 1 : g;
        b = b < 0 ? 0 : b > 1 ? 1 : b;
        {
          // contrast2 and color, in HSV (inlined: the fused loop is what the surrogate benchmark measures)
          // RGB -> HSV: hue in [0, 1), saturation, value.
          const max = r > g ? (r > b ? r : b) : (g > b ? g : b);
          const min = r < g ? (r < b ? r : b) : (g < b ? g : b);
          const chroma = max - min;
          let hue = 0;
          if (chroma > 0) {
            if (max === r) hue = ((g - b) / chroma) / 6;
            else if (max === g) hue = ((b - r) / chroma + 2) / 6;
            else hue = ((r - g) / chroma + 4) / 6;
            if (hue < 0) hue += 1;
          }
          let sat = max > 0 ? chroma / max : 0;
          let val = max;
          // contrast2: "raise saturation and value [...] to a power [...], multiply these values by a factor [...], add to
          // them a value"
          sat = Math.pow(sat, p.sPow) * p.sMul + p.sAdd;
          val = Math.pow(val, p.vPow) * p.vMul + p.vAdd;
          sat = sat < 0 ? 0 : sat > 1 ? 1 : sat;
          val = val < 0 ? 0 : val > 1 ? 1 : val;
          // color: "add a value [...] to the hue", which is circular
          hue = (hue + p.hue) % 1;
          if (hue < 0) hue += 1;
          // HSV -> RGB: in the sector of the hue, one channel is the value, one the floor, one rises or falls.
          const h6 = hue * 6, sector = Math.floor(h6), frac = h6 - sector;
          const floor = val * (1 - sat), falling = val * (1 - frac * sat), rising = val * (1 - (1 - frac) * sat);
          switch (sector % 6) {
            case 0:
              r = val, g = rising, b = floor;
              break;
            case 1:
              r = falling, g = val, b = floor;
              break;
            case 2:
              r = floor, g = val, b = rising;
              break;
            case 3:
              r = floor, g = falling, b = val;
              break;
            case 4:
              r = rising, g = floor, b = val;
              break;
            default:
              r = val, g = floor, b = falling;
          }
        }
        out[outOff + o] = r;
        out[outOff + o + 1] = g;
        out[outOff + o + 2] = b;
        continue;
      }
      // The release's contrast1 (adjust_color.m), its result kept for the stretch.
      const d0 = (r - m0 - lo) * scale, d1 = (g - m1 - lo) * scale, d2 = (b - m2 - lo) * scale;
      const c = [
        M[0] * d0 + M[1] * d1 + M[2] * d2,
        M[3] * d0 + M[4] * d1 + M[5] * d2,
        M[6] * d0 + M[7] * d1 + M[8] * d2,
      ];
      const base = [b0, b1, b2];
      for (let k = 0; k < 3; k++) {
        const x = (c[k] < cLo ? cLo : c[k] > cHi ? cHi : c[k]) + base[k];
        const y = x < 0 ? 0 : x > 1 ? 1 : x;
        stretchScratch[o + k] = y;
        if (y < pMin) pMin = y;
        if (y > pMax) pMax = y;
      }
    }
  }
  if (!release) return;
  // The release's power_transform.m: each patch stretched to [0, 1] on its own, then contrast2 and color.
  const s = release.stretch ? 1 / Math.max(pMax - pMin, 1e-3 / 255) : 1, m = release.stretch ? pMin : 0;
  for (let o = 0; o < PATCH * PATCH * 3; o += 3) {
    const r = (stretchScratch[o] - m) * s, g = (stretchScratch[o + 1] - m) * s, b = (stretchScratch[o + 2] - m) * s;
    contrast2AndColor(r, g, b, p, out, outOff + o);
  }
}

/** Float RGB patch in [0, 1] -> bytes, for pictures. */
export function patchToImage(x: Float32Array, off = 0): { width: number; height: number; data: Uint8Array } {
  const data = new Uint8Array(PATCH * PATCH * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, Math.min(255, Math.round(x[off + i] * 255)));
  return { width: PATCH, height: PATCH, data };
}

/**
 * Parameter sets that vary one transformation alone across its preset's range
 * (`steps` values from one end to the other), for pictures of what each does.
 * translation moves horizontally, contrast1 scales the first principal
 * component, contrast2 raises S and V to the same power; for `release`,
 * contrast1 spans z in [-2, 2] (its factor 2^z has no bound).
 */
export function sweepParams(name: TransformName, method: MethodName = "paper", steps = 7): TransformParams[] {
  const r = METHODS[method].augment;
  const t = (i: number) => steps === 1 ? 0.5 : i / (steps - 1);
  const lin = (lo: number, hi: number, i: number) => lo + (hi - lo) * t(i);
  const log = ([lo, hi]: [number, number], i: number) => Math.exp(lin(Math.log(lo), Math.log(hi), i));
  return Array.from({ length: steps }, (_, i) => {
    const p = identityParams();
    switch (name) {
      case "translation":
        p.tx = lin(-r.translation, r.translation, i) * PATCH;
        break;
      case "scaling":
        p.scale = log(r.scale, i);
        break;
      case "rotation":
        p.angle = lin(-r.rotationDeg, r.rotationDeg, i) * Math.PI / 180;
        break;
      case "contrast1":
        p.pca = [r.pcaLog2Std ? 2 ** (lin(-2, 2, i) * r.pcaLog2Std[0]) : log(r.pca, i), 1, 1];
        break;
      case "contrast2":
        p.sPow = p.vPow = log(r.power, i);
        break;
      case "color":
        p.hue = lin(r.hue[0], r.hue[1], i);
        break;
    }
    return p;
  });
}
