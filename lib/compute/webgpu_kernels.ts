/**
 * The project's WebGPU kernels: the convolutions, both of their gradients and the dense layers' matrix products as
 * one tiled matrix product in WGSL, registered over TensorFlow.js's own WebGPU kernels.
 *
 * Why: on an NVIDIA H200, TensorFlow.js 4.22's WebGPU kernels spend a training step of the small network
 * (64c5-64c5-128f, batch 128) mostly in `Conv2DBackpropFilter`: 43 of the step's 60 ms of kernel time for conv1 alone,
 * one thread per filter weight looping serially over batch x pixels; this module's takes 0.24 ms for it
 * (bench/README.md, "GPU"). Every one of these operations is a matrix product C[M, N] = sum over k of A[m, k] B[k, n]
 * once its operands are indexed right ("implicit GEMM": no im2col buffer is written), for a stride-1 NHWC
 * convolution of x [B, H, W, Ci] with a filter w [KH, KW, Ci, Co] into y [B, OH, OW, Co], padding (PT, PL):
 *
 * | operation                          | M            | N  | K            | A[m, k]                                   | B[k, n]              |
 * | ---------------------------------- | ------------ | -- | ------------ | ----------------------------------------- | -------------------- |
 * | forward y = conv(x, w)             | B OH OW      | Co | KH KW Ci     | x[b, oy + kh - PT, ox + kw - PL, ci]      | w[kh, kw, ci, co]    |
 * | input gradient dx                  | B H W        | Ci | KH KW Co     | dy[b, iy + PT - kh, ix + PL - kw, co]     | w[kh, kw, n, co]     |
 * | filter gradient dw                 | KH KW Ci     | Co | B OH OW      | x[b, oy + kh - PT, ox + kw - PL, ci]      | dy[b, oy, ox, co]    |
 * | dense layer (BatchMatMul)          | rows of a    | .. | ..           | a or its transpose                        | b or its transpose   |
 *
 * (out-of-image reads are zeros). One shader template computes all of them: each workgroup of 16 x 16 threads
 * owns a 64 x 64 tile of C, stages 16-deep slices of A and B in workgroup memory (8 KiB), and each thread
 * accumulates a 4 x 4 block with vector multiply-adds. Where the output has few tiles and K is long (the filter
 * gradients: M N of a few thousand, K = 131,072 for conv1) the K axis is split over workgroups ("split-K") and a
 * second pass sums the partial products.
 *
 * A batched product (BatchMatMul of rank 3 or more, a batch of one operand broadcast over the other's) runs its pairs
 * side by side in the grid. Anything else (strides, dilation, NCHW, other dtypes) goes to TensorFlow.js's own kernel. Which of the four are
 * installed is {@link DEFAULT_WEBGPU_KERNELS} unless `EXEMPLAR_WEBGPU_KERNELS` says otherwise (lib/compute/backend.ts).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WebGPUBackendInternals as WebGPUBackend } from "./tfjs_internals.ts";

type TensorInfo = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Attrs = any;

/** Tile of C per workgroup (TILE x TILE), depth of the staged slices of A and B, threads per workgroup side. */
const TILE = 64, DEPTH = 16, SIDE = 16;
/** Aim for at least this many workgroups when choosing the split of K (the H200 has 132 multiprocessors). */
const TARGET_WORKGROUPS = 528;
/** Each split of K is at least this long. */
const MIN_SPLIT = 256;

/** A matrix product for the template: sizes, and WGSL bodies that read A[m, k] and B[k, n]. */
export interface GemmSpec {
  /** A name for the pipeline cache: must differ whenever any number below or in the bodies differs. */
  key: string;
  M: number;
  N: number;
  K: number;
  /** Independent products computed side by side (default 1): the bodies see which one as `pair`. */
  batch?: number;
  /** Names of the input buffers, as the bodies use them. */
  inputs: string[];
  /** WGSL statements ending in `return`: A at (m, k), both in range, of product `pair`. */
  loadA: string;
  /** WGSL statements ending in `return`: B at (k, n), both in range, of product `pair`. */
  loadB: string;
  /** Which index of A (and of B) runs along memory: threads then read neighbouring addresses. */
  aContiguous: "m" | "k";
  bContiguous: "k" | "n";
}

/** How many parts K is split into for `batch` products of M x N x K (1: none). */
export function kSplits(M: number, N: number, K: number, batch = 1): number {
  const tiles = Math.ceil(M / TILE) * Math.ceil(N / TILE) * batch;
  if (tiles >= TARGET_WORKGROUPS / 2) return 1;
  const byWork = Math.ceil(TARGET_WORKGROUPS / tiles);
  const byLength = Math.max(1, Math.floor(K / MIN_SPLIT));
  return Math.max(1, Math.min(byWork, byLength));
}

/** The tiled matrix product: writes C [batch, M, N], or with `splits` > 1 the partial products [batch, splits, M, N]. */
class GemmProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [] as number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [SIDE, SIDE, 1];
  /** How many parts K is split into. */
  readonly parts: number;
  #spec: GemmSpec;
  #chunk: number;

  constructor(spec: GemmSpec, splits: number, outShape: number[]) {
    this.#spec = spec;
    this.variableNames = spec.inputs;
    const batch = spec.batch ?? 1;
    // Each split's share of K, a whole number of slices.
    this.#chunk = Math.ceil(Math.ceil(spec.K / splits) / DEPTH) * DEPTH;
    this.parts = Math.ceil(spec.K / this.#chunk);
    // Unsplit, C [batch, M, N] is the output's memory layout as it is.
    this.outputShape = this.parts > 1 ? [batch * this.parts, spec.M, spec.N] : outShape;
    this.dispatch = [Math.ceil(spec.N / TILE), Math.ceil(spec.M / TILE), this.parts * batch];
    this.shaderKey = `exemplar_gemm_${spec.key}_${batch}_${spec.M}_${spec.N}_${spec.K}_${this.#chunk}`;
  }

  getUserCode(): string {
    const s = this.#spec;
    // Element e (0..1023) of a 64 x 16 slice: which row and which depth it is, so that neighbouring threads read
    // neighbouring addresses of the operand.
    const aIndex = s.aContiguous === "m"
      ? `let mm = e % ${TILE}; let kk = e / ${TILE};`
      : `let kk = e % ${DEPTH}; let mm = e / ${DEPTH};`;
    const bIndex = s.bContiguous === "n"
      ? `let nn = e % ${TILE}; let kk = e / ${TILE};`
      : `let kk = e % ${DEPTH}; let nn = e / ${DEPTH};`;
    return `
const M = ${s.M};
const N = ${s.N};
const K = ${s.K};
const CHUNK = ${this.#chunk};
const PARTS = ${this.parts};
// Which product of the batch this workgroup computes.
var<private> pair: i32;
// Slices of A and B in workgroup memory: [depth][64 / 4] vectors of 4.
var<workgroup> tileA: array<vec4<f32>, ${DEPTH * TILE / 4}>;
var<workgroup> tileB: array<vec4<f32>, ${DEPTH * TILE / 4}>;

fn loadA(m: i32, k: i32) -> f32 {
  ${s.loadA}
}

fn loadB(k: i32, n: i32) -> f32 {
  ${s.loadB}
}

fn main(index: i32) {
  // The uniforms TensorFlow.js binds must be used, or the pipeline's layout drops their binding.
  _ = uniforms.NAN;
  let tx = i32(localId.x);
  let ty = i32(localId.y);
  let tid = i32(localIndex);
  let m0 = i32(workgroupId.y) * ${TILE};
  let n0 = i32(workgroupId.x) * ${TILE};
  pair = i32(workgroupId.z) / PARTS;
  let kBegin = (i32(workgroupId.z) % PARTS) * CHUNK;
  let kEnd = min(K, kBegin + CHUNK);
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = kBegin; k0 < kEnd; k0 = k0 + ${DEPTH}) {
    for (var i = 0; i < ${(TILE * DEPTH) / (SIDE * SIDE)}; i = i + 1) {
      let e = tid + i * ${SIDE * SIDE};
      {
        ${aIndex}
        let m = m0 + mm;
        let k = k0 + kk;
        var v = 0.0;
        if (m < M && k < kEnd) { v = loadA(m, k); }
        tileA[kk * ${TILE / 4} + mm / 4][mm % 4] = v;
      }
      {
        ${bIndex}
        let n = n0 + nn;
        let k = k0 + kk;
        var v = 0.0;
        if (n < N && k < kEnd) { v = loadB(k, n); }
        tileB[kk * ${TILE / 4} + nn / 4][nn % 4] = v;
      }
    }
    workgroupBarrier();
    for (var kk = 0; kk < ${DEPTH}; kk = kk + 1) {
      let a = tileA[kk * ${TILE / 4} + ty];
      let b = tileB[kk * ${TILE / 4} + tx];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }
  let base = i32(workgroupId.z) * M * N;
  let n = n0 + tx * 4;
  let acc = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0; i < 4; i = i + 1) {
    let m = m0 + ty * 4 + i;
    if (m < M) {
      for (var j = 0; j < 4; j = j + 1) {
        if (n + j < N) { result[base + m * N + n + j] = acc[i][j]; }
      }
    }
  }
}
`;
  }
}

/** Sums partial products [batch, parts, size] over the parts into `outputShape` ([batch, size] as laid out). */
class SplitSumProgram {
  variableNames = ["parts"];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [] as number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [256, 1, 1];
  #parts: number;
  #size: number;
  #per: number;

  constructor(parts: number, outputShape: number[], batch: number) {
    this.#parts = parts;
    this.#size = outputShape.reduce((a, b) => a * b, 1);
    this.#per = this.#size / batch;
    this.outputShape = outputShape;
    this.dispatch = [Math.ceil(this.#size / 256), 1, 1];
    this.shaderKey = `exemplar_splitsum_${parts}_${this.#size}_${batch}`;
  }

  getUserCode(): string {
    const P = this.#parts, per = this.#per;
    return `
fn main(index: i32) {
  _ = uniforms.NAN;
  if (index < ${this.#size}) {
    let first = (index / ${per}) * ${P * per} + index % ${per};
    var s = 0.0;
    for (var p = 0; p < ${P}; p = p + 1) { s = s + parts[first + p * ${per}]; }
    result[index] = s;
  }
}
`;
  }
}

/** Runs the matrix product of `spec` on `inputs`; the result has shape `outShape` (M x N elements). */
export function gemm(backend: WebGPUBackend, spec: GemmSpec, inputs: TensorInfo[], outShape: number[]): TensorInfo {
  const batch = spec.batch ?? 1;
  const program = new GemmProgram(spec, kSplits(spec.M, spec.N, spec.K, batch), outShape);
  const out = backend.runWebGPUProgram(program, inputs, "float32");
  if (program.parts === 1) return out;
  const sum = backend.runWebGPUProgram(new SplitSumProgram(program.parts, outShape, batch), [out], "float32");
  backend.disposeData(out.dataId);
  return sum;
}

/** Integer division and remainder as WGSL, for splitting a flat index into coordinates. */
function unflatten(index: string, names: string[], sizes: number[]): string {
  // sizes: the extent of each coordinate but the first.
  const lines: string[] = [];
  let rest = index;
  for (let i = 0; i < names.length - 1; i++) {
    const stride = sizes.slice(i).reduce((a, b) => a * b, 1);
    lines.push(`let ${names[i]} = ${rest} / ${stride};`);
    lines.push(`let ${names[i]}_r = ${rest} % ${stride};`);
    rest = `${names[i]}_r`;
  }
  lines.push(`let ${names[names.length - 1]} = ${rest};`);
  return lines.join(" ");
}

/** The geometry of a stride-1, dilation-1 NHWC convolution, as the three kernels need it. */
interface ConvShape {
  B: number;
  H: number;
  W: number;
  Ci: number;
  KH: number;
  KW: number;
  Co: number;
  OH: number;
  OW: number;
  PT: number;
  PL: number;
}

/** The geometry of a convolution of input `inShape` with filter `filterShape` ([KH, KW, Ci, Co]) under `attrs`. */
function convShape(inShape: number[], filterShape: number[], attrs: Attrs): ConvShape {
  const info = tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    1,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  return {
    B: info.batchSize,
    H: info.inHeight,
    W: info.inWidth,
    Ci: info.inChannels,
    KH: info.filterHeight,
    KW: info.filterWidth,
    Co: info.outChannels,
    OH: info.outHeight,
    OW: info.outWidth,
    PT: info.padInfo.top,
    PL: info.padInfo.left,
  };
}

function key(c: ConvShape): string {
  return [c.B, c.H, c.W, c.Ci, c.KH, c.KW, c.Co, c.OH, c.OW, c.PT, c.PL].join("_");
}

/** WGSL: x at (b, oy + kh - PT, ox + kw - PL, ci), zero outside the image; what A reads in the forward convolution and
 * the filter gradient. */
function inputPixel(c: ConvShape): string {
  return `let iy = oy + kh - ${c.PT};
  let ix = ox + kw - ${c.PL};
  if (iy < 0 || iy >= ${c.H} || ix < 0 || ix >= ${c.W}) { return 0.0; }
  return x[((b * ${c.H} + iy) * ${c.W} + ix) * ${c.Ci} + ci];`;
}

/** The forward convolution as a matrix product (see the module documentation). */
export function convForwardSpec(c: ConvShape): GemmSpec {
  return {
    key: `conv_fwd_${key(c)}`,
    M: c.B * c.OH * c.OW,
    N: c.Co,
    K: c.KH * c.KW * c.Ci,
    inputs: ["x", "w"],
    loadA: `${unflatten("m", ["b", "oy", "ox"], [c.OH, c.OW])} ${unflatten("k", ["kh", "kw", "ci"], [c.KW, c.Ci])}
  ${inputPixel(c)}`,
    loadB: `return w[k * ${c.Co} + n];`,
    aContiguous: "k",
    bContiguous: "n",
  };
}

/** The input gradient as a matrix product. */
export function convInputGradSpec(c: ConvShape): GemmSpec {
  return {
    key: `conv_dx_${key(c)}`,
    M: c.B * c.H * c.W,
    N: c.Ci,
    K: c.KH * c.KW * c.Co,
    inputs: ["dy", "w"],
    loadA: `${unflatten("m", ["b", "iy", "ix"], [c.H, c.W])} ${unflatten("k", ["kh", "kw", "co"], [c.KW, c.Co])}
  let oy = iy + ${c.PT} - kh;
  let ox = ix + ${c.PL} - kw;
  if (oy < 0 || oy >= ${c.OH} || ox < 0 || ox >= ${c.OW}) { return 0.0; }
  return dy[((b * ${c.OH} + oy) * ${c.OW} + ox) * ${c.Co} + co];`,
    loadB: `${unflatten("k", ["kh", "kw", "co"], [c.KW, c.Co])}
  return w[((kh * ${c.KW} + kw) * ${c.Ci} + n) * ${c.Co} + co];`,
    aContiguous: "k",
    bContiguous: "k",
  };
}

/** The filter gradient as a matrix product. */
export function convFilterGradSpec(c: ConvShape): GemmSpec {
  return {
    key: `conv_dw_${key(c)}`,
    M: c.KH * c.KW * c.Ci,
    N: c.Co,
    K: c.B * c.OH * c.OW,
    inputs: ["x", "dy"],
    loadA: `${unflatten("m", ["kh", "kw", "ci"], [c.KW, c.Ci])} ${unflatten("k", ["b", "oy", "ox"], [c.OH, c.OW])}
  ${inputPixel(c)}`,
    loadB: `return dy[k * ${c.Co} + n];`,
    aContiguous: "m",
    bContiguous: "n",
  };
}

/**
 * `batch` (possibly transposed) matrix products of a [batch, M, K] and b [batch, K, N] as stored; an operand whose
 * `batched` flag is false is one matrix, used by every product.
 */
export function matMulSpec(
  M: number,
  N: number,
  K: number,
  transposeA: boolean,
  transposeB: boolean,
  batch = 1,
  batched: [boolean, boolean] = [true, true],
): GemmSpec {
  const a0 = batched[0] && batch > 1 ? `pair * ${M * K} + ` : "",
    b0 = batched[1] && batch > 1 ? `pair * ${K * N} + ` : "";
  return {
    key: `matmul_${transposeA ? "t" : "n"}${transposeB ? "t" : "n"}_${a0 ? "b" : "1"}${b0 ? "b" : "1"}`,
    M,
    N,
    K,
    batch,
    inputs: ["a", "b"],
    loadA: transposeA ? `return a[${a0}k * ${M} + m];` : `return a[${a0}m * ${K} + k];`,
    loadB: transposeB ? `return b[${b0}n * ${K} + k];` : `return b[${b0}k * ${N} + n];`,
    aContiguous: transposeA ? "m" : "k",
    bContiguous: transposeB ? "k" : "n",
  };
}

/**
 * BatchMatMul of a and b (rank 2 or more, as `tf.matMul` hands them over) as a {@link GemmSpec} and its output's
 * shape, or null for what the template does not take: empty operands, and batch shapes that broadcast other than
 * one operand's single matrix over the other's batch.
 */
export function batchMatMulSpec(
  aShape: number[],
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
): { spec: GemmSpec; outShape: number[] } | null {
  if (aShape.length < 2 || bShape.length < 2) return null;
  const [a0, a1] = aShape.slice(-2), [b0, b1] = bShape.slice(-2);
  const M = transposeA ? a1 : a0, K = transposeA ? a0 : a1, N = transposeB ? b0 : b1;
  if ((transposeB ? b1 : b0) !== K) return null; // TensorFlow.js's kernel words the error
  const batchA = aShape.slice(0, -2), batchB = bShape.slice(0, -2);
  const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
  let outBatch: number[];
  try {
    outBatch = tf.backend_util.assertAndGetBroadcastShape(batchA, batchB);
  } catch {
    return null;
  }
  const batch = size(outBatch), BA = size(batchA), BB = size(batchB);
  if (batch * M * N * K === 0) return null;
  // A batch of as many matrices as the output's has every dimension of the output's batch (broadcasting only ever
  // stretches 1s), so its matrices lie in the output's order.
  if ((BA !== batch && BA !== 1) || (BB !== batch && BB !== 1)) return null;
  return {
    spec: matMulSpec(M, N, K, transposeA, transposeB, batch, [BA > 1, BB > 1]),
    outShape: [...outBatch, M, N],
  };
}

function pair(v: number | number[] | undefined): number[] {
  return v === undefined ? [1, 1] : typeof v === "number" ? [v, v] : v;
}

/** Whether a convolution's attributes are those the kernels cover: stride 1, dilation 1, NHWC. */
function covered(attrs: Attrs): boolean {
  const s = pair(attrs.strides), d = pair(attrs.dilations);
  return s[0] === 1 && s[1] === 1 && d[0] === 1 && d[1] === 1 && (attrs.dataFormat ?? "NHWC") === "NHWC";
}

/** The kernels this module replaces, and TensorFlow.js's own, kept for what they do not cover. */
const NAMES = ["Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput", "BatchMatMul"] as const;
const stock = new Map<string, tf.KernelConfig>();

/** The kernels this module can replace. */
export const WEBGPU_KERNELS: readonly string[] = NAMES;

/**
 * The kernels installed by default: all four. On an NVIDIA H200, once uploads stopped costing 60-70 ms a step
 * (lib/compute/webgpu_upload.ts), training was fastest with all four of this module's kernels: 64c5-64c5-128f 11,887
 * samples/s against 10,973 with only the filter gradient ours and 2,058 with none; 64c5-128c5-256c5-512f 5,808,
 * 4,752 and 1,415; 92c5-256c5-512c5-1024f 2,296, 1,641 and 725 (bench/README.md, "GPU"). (Before that fix the
 * uploads hid the difference, and the filter gradient alone had measured fastest.)
 */
export const DEFAULT_WEBGPU_KERNELS: readonly string[] = NAMES;

/**
 * Registers the kernels on the `webgpu` backend (once the backend package is loaded): all of them (`true`), none
 * (`false`: TensorFlow.js's own throughout) or those named. Idempotent.
 */
export function installWebGPUKernels(which: boolean | readonly string[] = true): string[] {
  const chosen = which === true ? [...NAMES] : which === false ? [] : [...which];
  for (const n of chosen) {
    if (!(NAMES as readonly string[]).includes(n)) {
      throw new Error(`no project WebGPU kernel ${n} (there are: ${NAMES.join(", ")})`);
    }
  }
  for (const name of NAMES) {
    if (!stock.has(name)) {
      const k = tf.getKernel(name, "webgpu");
      if (!k) throw new Error(`kernel ${name} is not registered for webgpu`);
      stock.set(name, k);
    }
    tf.unregisterKernel(name, "webgpu");
    tf.registerKernel(chosen.includes(name) ? ours(name) : stock.get(name)!);
  }
  return chosen;
}

/** The project's kernels installed on `webgpu` now. */
export function webgpuKernelsInstalled(): string[] {
  return NAMES.filter((n) => {
    const k = tf.getKernel(n, "webgpu");
    return !!k && !!stock.get(n) && k !== stock.get(n);
  });
}

function ours(name: typeof NAMES[number]): tf.KernelConfig {
  const fallback = (args: Parameters<tf.KernelFunc>[0]) => stock.get(name)!.kernelFunc(args) as TensorInfo;
  const kernelFunc: tf.KernelFunc = (args) => {
    const attrs = args.attrs as Attrs, backend = args.backend as WebGPUBackend;
    if (name === "BatchMatMul") {
      const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
      const product = batchMatMulSpec(a.shape, b.shape, !!attrs.transposeA, !!attrs.transposeB);
      if (!product || a.dtype !== "float32" || b.dtype !== "float32") return fallback(args);
      return gemm(backend, product.spec, [a, b], product.outShape);
    }
    if (!covered(attrs)) return fallback(args);
    if (name === "Conv2D") {
      const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
      const c = convShape(x.shape, filter.shape, attrs);
      return gemm(backend, convForwardSpec(c), [x, filter], [c.B, c.OH, c.OW, c.Co]);
    }
    if (name === "Conv2DBackpropInput") {
      const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
      const c = convShape(attrs.inputShape, filter.shape, attrs);
      return gemm(backend, convInputGradSpec(c), [dy, filter], [c.B, c.H, c.W, c.Ci]);
    }
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const c = convShape(x.shape, attrs.filterShape, attrs);
    return gemm(backend, convFilterGradSpec(c), [x, dy], [c.KH, c.KW, c.Ci, c.Co]);
  };
  return { kernelName: name, backendName: "webgpu", kernelFunc };
}
