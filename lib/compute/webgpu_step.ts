/**
 * The training step of the paper's networks on WebGPU, recorded by the project rather than by TensorFlow.js
 * (`EXEMPLAR_WEBGPU_STEP`, {@link webgpuStepMode}).
 *
 * Why: TensorFlow.js records each operation as it runs: a new bind group, a new uniform buffer written and a new
 * output buffer taken from its pool for every one of the ~90 kernels of a step, in seven submissions; on an NVIDIA H200
 * that took about 10 ms of CPU time a step for the medium network, as long as its kernels (bench/README.md, "GPU").
 * The networks are fixed, so this module lays out every buffer of a step once (the batch, each layer's output and
 * its gradient, the weights, momenta and gradients as three flat buffers), builds every pipeline and bind group
 * once, and then records a step as about 25 dispatches into one compute pass: per step three writes (the batch; its
 * labels, dropout masks and which metrics slot to add to; the update's numbers) and one submission.
 *
 * A step, for the network's layers in order (lib/nets.ts, paper §5.1):
 *
 * - each convolution and dense layer is one matrix product (lib/compute/webgpu_gemm.ts) whose epilogue adds the bias
 *   and applies the ReLU, and for a dense layer dropout (the masks of TensorFlow.js's `tf.dropout` with the same
 *   seed, drawn on the CPU: {@link keepBits});
 * - max-pooling keeps each window's first maximum and where it was;
 * - the softmax cross-entropy of each row, its gradient, and whether the row's largest score is its label;
 * - the sums of loss and correct count go to a slot of a metrics buffer on the GPU, read only when asked for;
 * - backward, each layer's weight gradient and bias gradient are one product (the bias as an extra row), its input
 *   gradient another; the ReLU's gradient mask (and dropout's) is applied as the gradient is read, and the
 *   max-pooling gradient with the ReLU mask is one pass;
 * - Caffe's SGD update over all parameters at once (lib/compute/sgd.ts), which also keeps the largest absolute
 *   weight (NaN when one is not finite) for the check that a run has not diverged.
 *
 * Its gradients equal TensorFlow.js's within float rounding (tests/webgpu_step_test.ts).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { UserError } from "../util/errors.ts";
import type { ParamSlot, SgdHyper } from "./sgd.ts";
import type { GradientEngine, StepResult, StepSums } from "./engine.ts";
import {
  activation,
  type Binding,
  type BufRange,
  buildKernel,
  checked,
  type ConvGeom,
  declare,
  type Dropout,
  filterT,
  FLAT_INDEX,
  FLAT_MAIN,
  gemmKernels,
  type GemmSpec,
  type GemmVersion,
  gradPatches,
  grid,
  type Kernel,
  type KernelSource,
  type Mask,
  matrix,
  matrixT,
  patches,
  patchesT,
  plain,
  planGemm,
  record,
  weightGradient,
  wgslFloat,
} from "./webgpu_gemm.ts";

/** A layer as the step needs it (lib/nets.ts NetLayer). */
export interface StepLayer {
  name: string;
  kind: "conv" | "fc" | "softmax";
  units: number;
  /** A convolution's kernel side. */
  kernel: number;
  /** Whether max-pooling follows. */
  pooled: boolean;
}

/** A network as the step needs it: its layers in order (the softmax layer last), pooling and dropout. */
export interface StepNet {
  /** Side of the square RGB inputs. */
  inputSize: number;
  layers: StepLayer[];
  /** Max-pooling ("same" padding) after the pooled convolutions. */
  pool: { size: number; stride: number };
  /** Dropout's rate on the dense layers' outputs (training only). */
  dropout: number;
}

/** How a training step runs on WebGPU: the project's step with the second or first GEMM kernel, or TensorFlow.js's. */
export type WebGPUStepMode = "project" | "project-gemm1" | "tfjs";
const MODES: readonly WebGPUStepMode[] = ["project", "project-gemm1", "tfjs"];

/**
 * `EXEMPLAR_WEBGPU_STEP`: `project` (the default: this module, with the second GEMM kernel), `project-gemm1` (this
 * module with the first kernel) or `tfjs` (TensorFlow.js records the step, with the project's kernels and SGD pass;
 * lib/compute/engine.ts DeviceEngine).
 */
export function webgpuStepMode(): WebGPUStepMode {
  const v = Deno.env.get("EXEMPLAR_WEBGPU_STEP") ?? "project";
  if (!(MODES as readonly string[]).includes(v)) {
    throw new UserError(`EXEMPLAR_WEBGPU_STEP=${v}: expected one of ${MODES.join(", ")}`);
  }
  return v as WebGPUStepMode;
}

// ---------------------------------------------------------------------------------------------------------------
// Dropout masks as TensorFlow.js draws them.

/**
 * seedrandom's Alea generator (by Johannes Baagøe, MIT licence), which TensorFlow.js's `tf.randomUniform` uses when
 * given a seed: `tf.dropout(x, rate, undefined, seed)` keeps element i where u_i + (1 - rate) >= 1 in float32
 * arithmetic, u_i the i-th number drawn with the seed's decimal string.
 */
export function alea(seed: string): () => number {
  let n = 0xefc8249d;
  const mash = (data: string) => {
    for (let i = 0; i < data.length; i++) {
      n += data.charCodeAt(i);
      let h = 0.02519603282416938 * n;
      n = h >>> 0;
      h -= n;
      h *= n;
      n = h >>> 0;
      h -= n;
      n += h * 0x100000000;
    }
    return (n >>> 0) * 2.3283064365386963e-10;
  };
  let s0 = mash(" "), s1 = mash(" "), s2 = mash(" "), c = 1;
  s0 -= mash(seed);
  if (s0 < 0) s0 += 1;
  s1 -= mash(seed);
  if (s1 < 0) s1 += 1;
  s2 -= mash(seed);
  if (s2 < 0) s2 += 1;
  return () => {
    const t = 2091639 * s0 + c * 2.3283064365386963e-10;
    s0 = s1;
    s1 = s2;
    return s2 = t - (c = t | 0);
  };
}

/** Writes the keep bits of `tf.dropout(x, rate, undefined, seed)` over `count` elements into `out` from word `word`. */
export function keepBits(seed: number, count: number, rate: number, out: Uint32Array, word: number): void {
  const next = alea(String(seed)), keep = Math.fround(1 - rate);
  out.fill(0, word, word + Math.ceil(count / 32));
  for (let e = 0; e < count; e++) {
    if (Math.fround(Math.fround(next()) + keep) >= 1) out[word + (e >>> 5)] |= 1 << (e & 31);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The kernels besides the products.

/** Words at the start of a plan's parameter buffer: [4] metrics slot; labels follow. */
const HEADER = 8;
/** Slots of the metrics buffer that steps add to between two reads (a slot is reused after that many steps). */
const RING = 1024;
/** Slot of {@link WebGPUStepEngine.step}'s own sums, of the evaluation's, and the word of the largest weight. */
const DIRECT = RING, EVAL = RING + 1, WMAX = 2 * (RING + 2);
const METRIC_FLOATS = WMAX + 4;
/** Parameters start at multiples of 64 floats in the flat buffers (256 bytes: any binding offset is allowed). */
const ALIGN = 64;

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Max-pooling of y [B, H, W, C] into p [B, PH, PW, C], each window's first maximum, and where it was in `arg`. */
function poolForward(
  g: PoolGeom,
  size: number,
  stride: number,
  y: BufRange,
  p: BufRange,
  arg: BufRange,
): KernelSource {
  const w = g.C % 4 === 0 ? 4 : 1, T = w === 4 ? "vec4<f32>" : "f32", U = w === 4 ? "vec4<u32>" : "u32";
  const C = g.C / w, items = g.B * g.PH * g.PW * C;
  const bindings: Binding[] = [
    { name: "y", type: w === 4 ? "vec4<f32>" : "f32", range: y },
    { name: "p", type: w === 4 ? "vec4<f32>" : "f32", write: true, range: p },
    { name: "arg", type: w === 4 ? "vec4<u32>" : "u32", write: true, range: arg },
  ];
  return {
    label: "max-pooling",
    bindings,
    workgroups: grid(items),
    code: `${declare(bindings)}
${FLAT_MAIN} {
  let i = ${FLAT_INDEX};
  if (i >= ${items}) { return; }
  let c = i % ${C}; let r = i / ${C}; let px = r % ${g.PW}; let r2 = r / ${g.PW}; let py = r2 % ${g.PH}; let b = r2 / ${g.PH};
  var best = ${T}(0.0); var at = ${U}(0u); var first = true;
  for (var ky = 0; ky < ${size}; ky += 1) {
    let iy = py * ${stride} - ${g.PT} + ky;
    if (iy < 0 || iy >= ${g.H}) { continue; }
    for (var kx = 0; kx < ${size}; kx += 1) {
      let ix = px * ${stride} - ${g.PL} + kx;
      if (ix < 0 || ix >= ${g.W}) { continue; }
      let v = y[((b * ${g.H} + iy) * ${g.W} + ix) * ${C} + c];
      let pos = ${U}(u32(ky * ${size} + kx));
      if (first) { best = v; at = pos; first = false; } else {
        let better = v > best;
        best = select(best, v, better);
        at = select(at, pos, better);
      }
    }
  }
  p[i] = best;
  arg[i] = at;
}`,
  };
}

/**
 * The gradient of max-pooling followed by the ReLU's: gz [B, H, W, C] = the gradients of the windows whose
 * maximum each element was, where the ReLU's output y > 0.
 */
function poolBackward(
  g: PoolGeom,
  size: number,
  stride: number,
  y: BufRange,
  gp: BufRange,
  arg: BufRange,
  gz: BufRange,
): KernelSource {
  const w = g.C % 4 === 0 ? 4 : 1, T = w === 4 ? "vec4<f32>" : "f32", U = w === 4 ? "vec4<u32>" : "u32";
  const C = g.C / w, items = g.B * g.H * g.W * C;
  const bindings: Binding[] = [
    { name: "y", type: w === 4 ? "vec4<f32>" : "f32", range: y },
    { name: "gp", type: w === 4 ? "vec4<f32>" : "f32", range: gp },
    { name: "arg", type: w === 4 ? "vec4<u32>" : "u32", range: arg },
    { name: "gz", type: w === 4 ? "vec4<f32>" : "f32", write: true, range: gz },
  ];
  return {
    label: "max-pooling and ReLU gradient",
    bindings,
    workgroups: grid(items),
    code: `${declare(bindings)}
${FLAT_MAIN} {
  let i = ${FLAT_INDEX};
  if (i >= ${items}) { return; }
  let c = i % ${C}; let r = i / ${C}; let ix = r % ${g.W}; let r2 = r / ${g.W}; let iy = r2 % ${g.H}; let b = r2 / ${g.H};
  // The windows that hold (iy, ix): py * stride - PT <= iy <= py * stride - PT + size - 1.
  let ylo = iy + ${g.PT} - ${size - 1}; let xlo = ix + ${g.PL} - ${size - 1};
  let py0 = select(0, (ylo + ${stride - 1}) / ${stride}, ylo > 0);
  let px0 = select(0, (xlo + ${stride - 1}) / ${stride}, xlo > 0);
  let py1 = min(${g.PH - 1}, (iy + ${g.PT}) / ${stride});
  let px1 = min(${g.PW - 1}, (ix + ${g.PL}) / ${stride});
  var s = ${T}(0.0);
  for (var py = py0; py <= py1; py += 1) {
    for (var px = px0; px <= px1; px += 1) {
      let pos = ${U}(u32((iy - py * ${stride} + ${g.PT}) * ${size} + ix - px * ${stride} + ${g.PL}));
      let o = ((b * ${g.PH} + py) * ${g.PW} + px) * ${C} + c;
      s += select(${T}(0.0), gp[o], arg[o] == pos);
    }
  }
  gz[i] = select(${T}(0.0), s, y[i] > ${T}(0.0));
}`,
  };
}

/**
 * The softmax cross-entropy of each row of logits [B, N] against its label (word HEADER + row of `prm`): the row's
 * loss and whether its first largest logit is the label into rows [B, 2]; with `grad`, the gradient of the summed
 * loss, softmax - one-hot, into it.
 */
function softmaxXent(B: number, N: number, logits: BufRange, prm: BufRange, rows: BufRange, grad?: BufRange) {
  const bindings: Binding[] = [
    { name: "logits", type: "f32", range: logits },
    { name: "prm", type: "u32", range: prm },
    { name: "rows", type: "f32", write: true, range: rows },
    ...(grad ? [{ name: "dlogits", type: "f32", write: true, range: grad } as Binding] : []),
  ];
  return {
    label: grad ? "softmax cross-entropy and gradient" : "softmax cross-entropy",
    bindings,
    workgroups: [B, 1, 1] as [number, number, number],
    code: `${declare(bindings)}
var<workgroup> best: array<f32, 256>;
var<workgroup> place: array<i32, 256>;
var<workgroup> sums: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {
  let m = i32(wid.x); let t = i32(lidx); let row = m * ${N};
  let label = bitcast<i32>(prm[${HEADER} + m]);
  var b = bitcast<f32>(0xff800000u); var a = ${N};
  for (var j = t; j < ${N}; j += 256) { let v = logits[row + j]; if (v > b || a == ${N}) { b = v; a = j; } }
  best[t] = b; place[t] = a;
  workgroupBarrier();
  for (var h = 128; h > 0; h >>= 1u) {
    if (t < h) {
      let b2 = best[t + h]; let a2 = place[t + h];
      if (a2 < ${N} && (place[t] == ${N} || b2 > best[t] || (b2 == best[t] && a2 < place[t]))) { best[t] = b2; place[t] = a2; }
    }
    workgroupBarrier();
  }
  let mx = best[0];
  var s = 0.0;
  for (var j = t; j < ${N}; j += 256) { s += exp(logits[row + j] - mx); }
  sums[t] = s;
  workgroupBarrier();
  for (var h = 128; h > 0; h >>= 1u) {
    if (t < h) { sums[t] += sums[t + h]; }
    workgroupBarrier();
  }
  let lse = mx + log(sums[0]);
  ${
      grad
        ? `for (var j = t; j < ${N}; j += 256) { dlogits[row + j] = exp(logits[row + j] - lse) - select(0.0, 1.0, j == label); }`
        : ""
    }
  if (t == 0) {
    var l = lse;
    if (label >= 0 && label < ${N}) { l = lse - logits[row + label]; }
    rows[2 * m] = l;
    rows[2 * m + 1] = select(0.0, 1.0, place[0] == label);
  }
}`,
  };
}

/** Adds the rows' summed loss and correct count to slot `prm[4]` of the metrics buffer. */
function addMetrics(B: number, rows: BufRange, prm: BufRange, metrics: BufRange): KernelSource {
  const bindings: Binding[] = [
    { name: "rows", type: "f32", range: rows },
    { name: "prm", type: "u32", range: prm },
    { name: "metrics", type: "f32", write: true, range: metrics },
  ];
  return {
    label: "metrics",
    bindings,
    workgroups: [1, 1, 1],
    code: `${declare(bindings)}
var<workgroup> loss: array<f32, 256>;
var<workgroup> hits: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lidx: u32) {
  let t = i32(lidx);
  var l = 0.0; var c = 0.0;
  for (var m = t; m < ${B}; m += 256) { l += rows[2 * m]; c += rows[2 * m + 1]; }
  loss[t] = l; hits[t] = c;
  workgroupBarrier();
  for (var h = 128; h > 0; h >>= 1u) {
    if (t < h) { loss[t] += loss[t + h]; hits[t] += hits[t + h]; }
    workgroupBarrier();
  }
  if (t == 0) {
    let slot = i32(prm[4]);
    metrics[2 * slot] += loss[0];
    metrics[2 * slot + 1] += hits[0];
  }
}`,
  };
}

/**
 * Caffe's update (lib/compute/sgd.ts) over `count` floats of the flat weights, momenta and gradients from float
 * `base` (a multiple of 64), each parameter with its multipliers; the largest absolute weight after it, as float bits
 * (NaN and infinity above every finite number), goes to the metrics buffer by atomic maximum.
 */
function sgdChunk(
  slots: { end: number; lrMult: number; decayMult: number }[],
  base: number,
  count: number,
  r: { W: BufRange; V: BufRange; G: BufRange; hyper: BufRange; metrics: BufRange },
): KernelSource {
  const bindings: Binding[] = [
    { name: "w", type: "vec4<f32>", write: true, range: r.W },
    { name: "v", type: "vec4<f32>", write: true, range: r.V },
    { name: "g", type: "vec4<f32>", range: r.G },
    { name: "hyper", type: "u32", range: r.hyper },
    { name: "wmax", type: "atomic<u32>", range: r.metrics },
  ];
  const vectors = count / 4, groups = Math.min(Math.ceil(vectors / 256), 4096);
  const pick = slots.map((s, i) =>
    `${i ? "else " : ""}if (e < ${s.end}) { lm = ${wgslFloat(s.lrMult)}; dm = ${wgslFloat(s.decayMult)}; }`
  ).join(" ");
  return {
    label: `SGD update of floats ${base}..${base + count}`,
    bindings,
    workgroups: [groups, 1, 1],
    code: `${declare(bindings)}
var<workgroup> largest: atomic<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {
  let lr = bitcast<f32>(hyper[0]); let momentum = bitcast<f32>(hyper[1]);
  let decay = bitcast<f32>(hyper[2]); let scale = bitcast<f32>(hyper[3]);
  if (lidx == 0u) { atomicStore(&largest, 0u); }
  workgroupBarrier();
  var most = 0u;
  for (var i = i32(gid.x); i < ${vectors}; i += ${groups * 256}) {
    let e = ${base} + 4 * i;
    var lm = 0.0; var dm = 0.0;
    ${pick}
    let wi = w[i];
    let vi = momentum * v[i] + (lr * lm) * (scale * g[i] + (decay * dm) * wi);
    v[i] = vi;
    let wn = wi - vi;
    w[i] = wn;
    let bits = bitcast<vec4<u32>>(wn) & vec4<u32>(0x7fffffffu);
    most = max(most, max(max(bits.x, bits.y), max(bits.z, bits.w)));
  }
  atomicMax(&largest, most);
  workgroupBarrier();
  if (lidx == 0u) { atomicMax(&wmax[${WMAX}], atomicLoad(&largest)); }
}`,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// A plan: every buffer and kernel of a step at one batch size.

/** The buffers and kernels of a training step and of an evaluation at batch size B. */
class Plan {
  readonly B: number;
  readonly x: GPUBuffer;
  readonly prm: GPUBuffer;
  /** The parameter words as the next flush writes them: header, labels, the dense layers' keep bits. */
  readonly words: Uint32Array<ArrayBuffer>;
  /** Each dense layer's keep bits: first word, elements, and which dense layer it is (its seed offset). */
  readonly masks: { word: number; count: number; fc: number }[] = [];
  train: Kernel[] = [];
  evaluate: Kernel[] = [];
  readonly #buffers: GPUBuffer[] = [];

  constructor(readonly device: GPUDevice, B: number, inputFloats: number, words: number) {
    this.B = B;
    this.words = new Uint32Array(words);
    this.x = this.buffer(inputFloats);
    this.prm = this.buffer(words);
  }

  buffer(floats: number): GPUBuffer {
    const b = this.device.createBuffer({ size: Math.max(16, Math.ceil(floats / 4) * 16), usage: STORAGE });
    this.#buffers.push(b);
    return b;
  }

  destroy(): void {
    for (const b of this.#buffers) b.destroy();
  }
}

/** The flat buffers every plan shares. */
interface Shared {
  W: GPUBuffer;
  V: GPUBuffer;
  G: GPUBuffer;
  metrics: GPUBuffer;
  hyper: GPUBuffer;
  /** Each parameter's first float in the flat buffers. */
  offsets: number[];
}

function slotRange(buffer: GPUBuffer, offsets: number[], slots: ParamSlot[], i: number): BufRange {
  return { buffer, offset: offsets[i] * 4, size: slots[i].size * 4 };
}

/** The geometry of a max-pooling ("same" padding) of [B, H, W, C] into [B, PH, PW, C]. */
export interface PoolGeom {
  B: number;
  H: number;
  W: number;
  C: number;
  PH: number;
  PW: number;
  PT: number;
  PL: number;
}

/** A layer's sizes at batch B: a convolution's geometry (and its pooling's), or a dense layer's inputs and units. */
export interface LayerShape {
  layer: StepLayer;
  conv?: ConvGeom;
  pool?: PoolGeom;
  dense?: { B: number; In: number; U: number };
}

/** Every layer's sizes at batch B, as TensorFlow.js computes them ("same" padding throughout). */
export function layerShapes(net: StepNet, B: number): LayerShape[] {
  let H = net.inputSize, W = net.inputSize, C = 3;
  return net.layers.map((layer) => {
    if (layer.kind !== "conv") {
      const dense = { B, In: H * W * C, U: layer.units };
      H = W = 1;
      C = layer.units;
      return { layer, dense };
    }
    const info = tf.backend_util.computeConv2DInfo(
      [B, H, W, C],
      [layer.kernel, layer.kernel, C, layer.units],
      1,
      1,
      "same",
    );
    const conv: ConvGeom = {
      B,
      H,
      W,
      Ci: C,
      KH: layer.kernel,
      KW: layer.kernel,
      Co: layer.units,
      OH: info.outHeight,
      OW: info.outWidth,
      PT: info.padInfo.top,
      PL: info.padInfo.left,
    };
    [H, W, C] = [conv.OH, conv.OW, conv.Co];
    if (!layer.pooled) return { layer, conv };
    const pi = tf.backend_util.computePool2DInfo([B, H, W, C], net.pool.size, net.pool.stride, 1, "same");
    const pool = { B, H, W, C, PH: pi.outHeight, PW: pi.outWidth, PT: pi.padInfo.top, PL: pi.padInfo.left };
    [H, W] = [pool.PH, pool.PW];
    return { layer, conv, pool };
  });
}

/**
 * The products of a convolution: forward (x [B, H, W, Ci] into y, + bias, ReLU), filter gradient (with the bias
 * gradient) and input gradient (into dx, when given) from gz, the gradient at the convolution's output before its
 * ReLU or, with `masked`, after it (masked by y > 0 as it is read).
 */
export function convProducts(
  name: string,
  c: ConvGeom,
  r: { x: BufRange; w: BufRange; b: BufRange; y: BufRange; gz: BufRange; gw: BufRange; gb: BufRange; dx?: BufRange },
  vec: boolean,
  masked: boolean,
): { forward: GemmSpec; filter: GemmSpec; input?: GemmSpec } {
  const P = c.B * c.OH * c.OW, mask = masked ? { range: r.y } : undefined;
  return {
    forward: {
      label: `${name} forward`,
      M: P,
      N: c.Co,
      K: c.KH * c.KW * c.Ci,
      a: patches(c, r.x, vec),
      b: matrix("B", c.Co, r.w, vec),
      epilogue: activation(c.Co, r.y, { bias: r.b, relu: true }),
    },
    filter: {
      label: `${name} filter gradient`,
      M: c.KH * c.KW * c.Ci + 1,
      N: c.Co,
      K: P,
      a: patchesT(c, r.x, vec, true),
      b: matrix("B", c.Co, r.gz, vec, mask),
      epilogue: weightGradient(c.KH * c.KW * c.Ci, c.Co, r.gw, r.gb),
    },
    input: r.dx && {
      label: `${name} input gradient`,
      M: c.B * c.H * c.W,
      N: c.Ci,
      K: c.KH * c.KW * c.Co,
      a: gradPatches(c, r.gz, vec, mask),
      b: filterT(c, r.w, vec),
      epilogue: plain(c.Ci, r.dx),
    },
  };
}

/**
 * The products of a dense layer (or the softmax layer, without ReLU): forward (h [B, In] into out [B, U], + bias,
 * ReLU, with `dropout` in training), weight gradient (with the bias gradient) and input gradient (into dh, when
 * given) from gout, the gradient at its output (masked where the output is 0, times dropout's factor, when `mask`).
 */
export function denseProducts(
  name: string,
  d: { B: number; In: number; U: number },
  r: {
    h: BufRange;
    w: BufRange;
    b: BufRange;
    out: BufRange;
    gout: BufRange;
    gw: BufRange;
    gb: BufRange;
    dh?: BufRange;
  },
  vec: boolean,
  opts: { relu: boolean; dropout?: Dropout; mask?: Mask },
): { forward: GemmSpec; forwardEval: GemmSpec; weight: GemmSpec; input?: GemmSpec } {
  const forward = (dropout?: Dropout): GemmSpec => ({
    label: `${name} forward`,
    M: d.B,
    N: d.U,
    K: d.In,
    a: matrix("A", d.In, r.h, vec),
    b: matrix("B", d.U, r.w, vec),
    epilogue: activation(d.U, r.out, { bias: r.b, relu: opts.relu, dropout }),
  });
  return {
    forward: forward(opts.dropout),
    forwardEval: forward(),
    weight: {
      label: `${name} weight gradient`,
      M: d.In + 1,
      N: d.U,
      K: d.B,
      a: matrixT("A", d.In, r.h, vec, true),
      b: matrix("B", d.U, r.gout, vec, opts.mask),
      epilogue: weightGradient(d.In, d.U, r.gw, r.gb),
    },
    input: r.dh && {
      label: `${name} input gradient`,
      M: d.B,
      N: d.In,
      K: d.U,
      a: matrix("A", d.U, r.gout, vec, opts.mask),
      b: matrixT("B", d.U, r.w, vec),
      epilogue: plain(d.In, r.dh),
    },
  };
}

/** Builds the plan of `net` at batch size B. */
async function buildPlan(
  device: GPUDevice,
  net: StepNet,
  slots: ParamSlot[],
  shared: Shared,
  B: number,
  version: GemmVersion,
): Promise<Plan> {
  const vec = version === "gemm2", maxStaged = device.limits.maxComputeWorkgroupStorageSize;
  const S = net.inputSize;
  // Parameter words: header, labels, then each dense layer's keep bits.
  let words = HEADER + B;
  const maskWords: { word: number; count: number; fc: number }[] = [];
  for (const l of net.layers) {
    if (l.kind !== "fc") continue;
    maskWords.push({ word: words, count: B * l.units, fc: maskWords.length });
    words += Math.ceil(B * l.units / 32);
  }
  const plan = new Plan(device, B, B * S * S * 3, words);
  plan.masks.push(...maskWords);
  const prm: BufRange = { buffer: plan.prm };
  const factor = Math.fround(1 / Math.fround(1 - net.dropout));
  // Forward (training and evaluation), and backward per layer (run in reverse).
  type Op = { gemm: GemmSpec } | { src: KernelSource };
  const forward: Op[] = [], forwardEval: Op[] = [], backward: Op[][] = [];
  let cur: BufRange = { buffer: plan.x };
  let gradCur: BufRange | undefined; // where the gradient of `cur` goes (none for the input)
  let fc = 0;
  for (const [i, { layer: l, conv: c, pool: g, dense: d }] of layerShapes(net, B).entries()) {
    if (slots[2 * i]?.name !== `${l.name}.w` || slots[2 * i + 1]?.name !== `${l.name}.b`) {
      throw new Error(`the step expects ${l.name}.w and ${l.name}.b as parameters ${2 * i} and ${2 * i + 1}`);
    }
    const param = (buffer: GPUBuffer, k: number) => slotRange(buffer, shared.offsets, slots, k);
    const [w, b, gw, gb] = [
      param(shared.W, 2 * i),
      param(shared.W, 2 * i + 1),
      param(shared.G, 2 * i),
      param(shared.G, 2 * i + 1),
    ];
    const back: Op[] = [];
    const buf = (floats: number): BufRange => ({ buffer: plan.buffer(floats) });
    if (c) {
      const P = B * c.OH * c.OW, y = buf(P * c.Co);
      // Pooled: the gradient arrives at the pooled map and the pooling gradient makes gz; else it arrives at y.
      const gz = buf(P * c.Co);
      const products = convProducts(l.name, c, { x: cur, w, b, y, gz, gw, gb, dx: gradCur }, vec, !g);
      forward.push({ gemm: products.forward });
      forwardEval.push({ gemm: products.forward });
      if (g) {
        const pooled = B * g.PH * g.PW * g.C, p = buf(pooled), arg = buf(pooled), gp = buf(pooled);
        const pool: Op = { src: poolForward(g, net.pool.size, net.pool.stride, y, p, arg) };
        forward.push(pool);
        forwardEval.push(pool);
        back.push({ src: poolBackward(g, net.pool.size, net.pool.stride, y, gp, arg, gz) });
        [cur, gradCur] = [p, gp];
      } else [cur, gradCur] = [y, gz];
      back.push({ gemm: products.filter });
      if (products.input) back.push({ gemm: products.input });
    } else {
      const { U } = d!, out = buf(B * U), gout = buf(B * U);
      const dropout = l.kind === "fc" && net.dropout > 0
        ? { bits: prm, word: maskWords[fc++].word, factor }
        : undefined;
      const products = denseProducts(l.name, d!, { h: cur, w, b, out, gout, gw, gb, dh: gradCur }, vec, {
        relu: l.kind === "fc",
        dropout,
        mask: l.kind === "fc" ? { range: out, factor: dropout ? factor : 1 } : undefined,
      });
      forward.push({ gemm: products.forward });
      forwardEval.push({ gemm: products.forwardEval });
      if (l.kind === "softmax") {
        const rows = buf(2 * B), metrics = { buffer: shared.metrics };
        forward.push(
          { src: softmaxXent(B, U, out, prm, rows, gout) },
          { src: addMetrics(B, rows, prm, metrics) },
        );
        forwardEval.push({ src: softmaxXent(B, U, out, prm, rows) }, { src: addMetrics(B, rows, prm, metrics) });
      }
      back.push({ gemm: products.weight });
      if (products.input) back.push({ gemm: products.input });
      [cur, gradCur] = [out, gout];
    }
    backward.push(back);
  }
  const train = [...forward, ...backward.reverse().flat()];
  // One scratch buffer for every split product (they run one after another).
  const plans = new Map<GemmSpec, ReturnType<typeof planGemm>>();
  let scratch = 0;
  for (const op of [...train, ...forwardEval]) {
    if ("gemm" in op && !plans.has(op.gemm)) {
      const p = planGemm(op.gemm.M, op.gemm.N, op.gemm.K, version, maxStaged);
      plans.set(op.gemm, p);
      scratch = Math.max(scratch, p.scratch);
    }
  }
  const scratchRange = scratch ? { buffer: plan.buffer(scratch) } : undefined;
  const sources = (ops: Op[]) =>
    ops.flatMap((op) => "gemm" in op ? gemmKernels(op.gemm, plans.get(op.gemm)!, scratchRange) : [op.src]);
  await checked(device, `the training step of batch ${B}`, () => {
    plan.train = sources(train).map((k) => buildKernel(device, k));
    plan.evaluate = sources(forwardEval).map((k) => buildKernel(device, k));
  });
  return plan;
}

// ---------------------------------------------------------------------------------------------------------------
// The engine.

/** A read of the metrics buffer under way: the staging buffer it maps. */
interface Staging {
  buffer: GPUBuffer;
}

/**
 * The gradient engine of lib/compute/engine.ts with the project's recorded step (see the module documentation):
 * weights, momenta and gradients in three flat GPU buffers; the loss and correct count summed on the GPU and read by
 * {@link stats}, which takes its snapshot when called and can be awaited while later steps are submitted.
 */
export class WebGPUStepEngine implements GradientEngine {
  readonly slots: ParamSlot[];
  readonly weights: Float32Array;
  readonly momenta: Float32Array;
  readonly version: GemmVersion;
  readonly #device: GPUDevice;
  readonly #net: StepNet;
  readonly #shared: Shared;
  readonly #padded: number;
  #sgd: Kernel[] = [];
  readonly #plans = new Map<number, Plan>();
  /** Recorded work not yet submitted, and the plan whose parameter words it needs. */
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #plan: Plan | null = null;
  #hyper: Float32Array<ArrayBuffer> | null = null;
  #hasGradient = false;
  #slot = 0;
  #samples = 0;
  #lastBatch = 0;
  readonly #staging: Staging[] = [];
  /** Calls per kind, for the trace (bench/gpu_trace.ts). */
  readonly counts = { steps: 0, submissions: 0, reads: 0 };

  private constructor(device: GPUDevice, net: StepNet, slots: ParamSlot[], version: GemmVersion) {
    this.#device = device;
    this.#net = net;
    this.slots = slots;
    this.version = version;
    this.weights = new Float32Array(slots.reduce((a, s) => a + s.size, 0));
    this.momenta = new Float32Array(this.weights.length);
    const offsets: number[] = [];
    let at = 0;
    for (const s of slots) {
      offsets.push(at);
      at += Math.ceil(s.size / ALIGN) * ALIGN;
    }
    this.#padded = Math.max(ALIGN, at);
    const flat = () => device.createBuffer({ size: this.#padded * 4, usage: STORAGE });
    this.#shared = {
      W: flat(),
      V: flat(),
      G: flat(),
      metrics: device.createBuffer({ size: METRIC_FLOATS * 4, usage: STORAGE }),
      hyper: device.createBuffer({ size: 16, usage: STORAGE }),
      offsets,
    };
  }

  /**
   * An engine for `net` on `device`, starting from `weights` (flat, in the order of `slots`) and zero momenta; the
   * products run on `version`'s GEMM kernel.
   */
  static async create(
    device: GPUDevice,
    net: StepNet,
    slots: ParamSlot[],
    weights: Float32Array,
    version: GemmVersion = "gemm2",
  ): Promise<WebGPUStepEngine> {
    const eng = new WebGPUStepEngine(device, net, slots, version);
    try {
      await eng.#buildUpdate();
      eng.weights.set(weights);
      eng.push();
    } catch (e) {
      eng.close();
      throw e;
    }
    return eng;
  }

  /** The SGD update: one dispatch over all parameters (more only where a buffer exceeds one binding's limit). */
  async #buildUpdate(): Promise<void> {
    const { W, V, G, hyper, metrics } = this.#shared;
    const limit = Math.floor(this.#device.limits.maxStorageBufferBindingSize / 4 / ALIGN) * ALIGN;
    const ends = this.slots.map((s, i) => ({
      end: this.#shared.offsets[i] + Math.ceil(s.size / ALIGN) * ALIGN,
      lrMult: s.lrMult,
      decayMult: s.decayMult,
    }));
    const sources: KernelSource[] = [];
    for (let base = 0; base < this.#padded; base += limit) {
      const count = Math.min(limit, this.#padded - base),
        range = (buffer: GPUBuffer) => ({
          buffer,
          offset: base * 4,
          size: count * 4,
        });
      sources.push(
        sgdChunk(ends, base, count, {
          W: range(W),
          V: range(V),
          G: range(G),
          hyper: { buffer: hyper },
          metrics: { buffer: metrics },
        }),
      );
    }
    this.#sgd = await checked(this.#device, "the SGD update", () => sources.map((s) => buildKernel(this.#device, s)));
  }

  /** The plan of batch size `n` (built once; the two most recent are kept). */
  async #planOf(n: number): Promise<Plan> {
    let plan = this.#plans.get(n);
    if (plan) {
      this.#plans.delete(n);
      this.#plans.set(n, plan);
      return plan;
    }
    this.#flush();
    plan = await buildPlan(this.#device, this.#net, this.slots, this.#shared, n, this.version);
    this.#plans.set(n, plan);
    if (this.#plans.size > 2) {
      const [oldest, old] = this.#plans.entries().next().value!;
      this.#plans.delete(oldest);
      old.destroy();
    }
    return plan;
  }

  /** Opens the pending pass (after submitting what is pending for another plan). */
  #open(plan: Plan): GPUComputePassEncoder {
    if (this.#plan && this.#plan !== plan) this.#flush();
    if (!this.#encoder) {
      this.#encoder = this.#device.createCommandEncoder();
      this.#pass = this.#encoder.beginComputePass();
    }
    this.#plan = plan;
    return this.#pass!;
  }

  /** Submits the pending work, after writing the parameter words (and the update's numbers) it reads. */
  #flush(encoder?: GPUCommandEncoder): void {
    const queue = this.#device.queue;
    if (this.#encoder) {
      this.#pass!.end();
      if (this.#plan) queue.writeBuffer(this.#plan.prm, 0, this.#plan.words);
      if (this.#hyper) queue.writeBuffer(this.#shared.hyper, 0, this.#hyper);
      const buffers = [this.#encoder.finish()];
      if (encoder) buffers.push(encoder.finish());
      queue.submit(buffers);
      this.counts.submissions++;
    } else if (encoder) {
      queue.submit([encoder.finish()]);
      this.counts.submissions++;
    }
    this.#encoder = this.#pass = this.#plan = null;
    this.#hyper = null;
  }

  /** Records the forward and backward pass of a batch, its sums going to metrics slot `slot`. */
  async #record(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number, slot: number): Promise<void> {
    this.#flush();
    const plan = await this.#planOf(n), S = this.#net.inputSize;
    this.#device.queue.writeBuffer(plan.x, 0, x.buffer as ArrayBuffer, x.byteOffset, n * S * S * 3 * 4);
    plan.words[4] = slot;
    plan.words.set(new Uint32Array(y.buffer, y.byteOffset, n), HEADER);
    for (const m of plan.masks) keepBits(dropoutSeed + m.fc, m.count, this.#net.dropout, plan.words, m.word);
    record(this.#open(plan), plan.train);
    this.#hasGradient = true;
    this.#lastBatch = n;
    this.counts.steps++;
  }

  accumulate(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<void> {
    this.#samples += n;
    const slot = this.#slot;
    this.#slot = (this.#slot + 1) % RING;
    return this.#record(x, y, n, dropoutSeed, slot);
  }

  async step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<StepResult> {
    await this.#record(x, y, n, dropoutSeed, DIRECT);
    const [loss, correct] = await this.#read(DIRECT);
    return { loss, correct };
  }

  update(lr: number, hp: SgdHyper): void {
    if (!this.#hasGradient) throw new Error("WebGPUStepEngine.update: no gradient (call step first)");
    if (!this.#encoder) {
      this.#encoder = this.#device.createCommandEncoder();
      this.#pass = this.#encoder.beginComputePass();
    }
    record(this.#pass!, this.#sgd);
    this.#hyper = Float32Array.of(lr, hp.momentum, hp.weightDecay, 1 / this.#lastBatch);
    this.#hasGradient = false;
    this.#flush();
  }

  /** A staging buffer for a read of the metrics (reused once its read is done). */
  #takeStaging(): Staging {
    return this.#staging.pop() ??
      {
        buffer: this.#device.createBuffer({
          size: METRIC_FLOATS * 4,
          usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        }),
      };
  }

  /**
   * Copies metrics slot `slot` (or every slot of the steps and the largest weight) into a staging buffer and clears
   * it, in the queue after everything recorded so far; the numbers come back when the GPU has got there.
   */
  #read(slot: number | "steps"): Promise<number[]> {
    const staging = this.#takeStaging(), e = this.#device.createCommandEncoder(), m = this.#shared.metrics;
    if (slot === "steps") {
      e.copyBufferToBuffer(m, 0, staging.buffer, 0, METRIC_FLOATS * 4);
      e.clearBuffer(m, 0, 2 * RING * 4);
      e.clearBuffer(m, WMAX * 4, 16);
    } else {
      e.copyBufferToBuffer(m, 2 * slot * 4, staging.buffer, 0, 8);
      e.clearBuffer(m, 2 * slot * 4, 8);
    }
    this.#flush(e);
    this.counts.reads++;
    return (async () => {
      await staging.buffer.mapAsync(GPUMapMode.READ);
      const f = new Float32Array(staging.buffer.getMappedRange().slice(0));
      staging.buffer.unmap();
      this.#staging.push(staging);
      if (slot !== "steps") return [f[0], f[1]];
      let loss = 0, correct = 0;
      for (let i = 0; i < RING; i++) {
        loss += f[2 * i];
        correct += f[2 * i + 1];
      }
      const bits = new Uint32Array(f.buffer, WMAX * 4, 1)[0];
      return [loss, correct, bits >= 0x7f800000 ? NaN : f[WMAX]];
    })();
  }

  /** The sums since the last call, as of this call: the snapshot is taken now, the promise may be awaited later. */
  stats(): Promise<StepSums> {
    const samples = this.#samples;
    this.#samples = 0;
    this.#slot = 0;
    return this.#read("steps").then(([loss, correct, weightMax]) => ({ loss, correct, samples, weightMax }));
  }

  async evaluate(x: Float32Array, y: Int32Array, n: number): Promise<StepResult> {
    const S = this.#net.inputSize, D = S * S * 3, chunk = this.#lastBatch || Math.min(n, 128);
    this.#flush();
    const clear = this.#device.createCommandEncoder();
    clear.clearBuffer(this.#shared.metrics, 2 * EVAL * 4, 8);
    this.#flush(clear);
    for (let s = 0; s < n; s += chunk) {
      const m = Math.min(chunk, n - s), plan = await this.#planOf(m);
      this.#device.queue.writeBuffer(plan.x, 0, x.buffer as ArrayBuffer, x.byteOffset + s * D * 4, m * D * 4);
      plan.words[4] = EVAL;
      plan.words.set(new Uint32Array(y.buffer, y.byteOffset + s * 4, m), HEADER);
      record(this.#open(plan), plan.evaluate);
      this.#flush();
    }
    const [loss, correct] = await this.#read(EVAL);
    return { loss, correct };
  }

  /** Reads `buffer` (the flat weights or momenta) into `dst`, parameter by parameter. */
  async pull(): Promise<void> {
    const bytes = this.#padded * 4, e = this.#device.createCommandEncoder();
    const staging = this.#device.createBuffer({
      size: 2 * bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    e.copyBufferToBuffer(this.#shared.W, 0, staging, 0, bytes);
    e.copyBufferToBuffer(this.#shared.V, 0, staging, bytes, bytes);
    this.#flush(e);
    this.counts.reads++;
    try {
      await staging.mapAsync(GPUMapMode.READ);
      const f = new Float32Array(staging.getMappedRange());
      this.slots.forEach((s, i) => {
        const at = this.#shared.offsets[i];
        this.weights.set(f.subarray(at, at + s.size), s.offset);
        this.momenta.set(f.subarray(this.#padded + at, this.#padded + at + s.size), s.offset);
      });
      staging.unmap();
    } finally {
      staging.destroy();
    }
  }

  push(): void {
    this.#flush();
    for (const [src, dst] of [[this.weights, this.#shared.W], [this.momenta, this.#shared.V]] as const) {
      const padded = new Float32Array(this.#padded);
      this.slots.forEach((s, i) => padded.set(src.subarray(s.offset, s.offset + s.size), this.#shared.offsets[i]));
      this.#device.queue.writeBuffer(dst, 0, padded);
    }
  }

  /** The gradient of the last step's summed loss, flat in the order of {@link slots} (for tests). */
  async gradients(): Promise<Float32Array> {
    const bytes = this.#padded * 4, e = this.#device.createCommandEncoder();
    const staging = this.#device.createBuffer({
      size: bytes,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    e.copyBufferToBuffer(this.#shared.G, 0, staging, 0, bytes);
    this.#flush(e);
    await staging.mapAsync(GPUMapMode.READ);
    const f = new Float32Array(staging.getMappedRange()), out = new Float32Array(this.weights.length);
    this.slots.forEach((s, i) =>
      out.set(f.subarray(this.#shared.offsets[i], this.#shared.offsets[i] + s.size), s.offset)
    );
    staging.unmap();
    staging.destroy();
    return out;
  }

  close(): void {
    this.#flush();
    for (const p of this.#plans.values()) p.destroy();
    this.#plans.clear();
    for (const b of [this.#shared.W, this.#shared.V, this.#shared.G, this.#shared.metrics, this.#shared.hyper]) {
      b.destroy();
    }
    for (const s of this.#staging.splice(0)) s.buffer.destroy();
  }
}
