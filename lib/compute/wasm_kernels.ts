/**
 * The project's kernels for TensorFlow.js's `wasm` backend: the arithmetic of training and using the paper's networks
 * on a CPU, where they replace or complete the backend's own.
 *
 * They serve the operations of the paper's networks (paper §5.1; PAPER.md "Networks"): the convolutional layers'
 * forward pass and both of their gradients, the gradient of max-pooling, the fully connected layers' matrix products
 * and the sum over a batch that gives every bias gradient. A step of SGD on the surrogate task (paper §4 and §5.1,
 * PAPER.md "Training") runs on all of them, and the feature extraction of the evaluation (PAPER.md "Evaluation") on
 * the forward ones.
 *
 * Why the project replaces TensorFlow.js's kernels there: the `wasm` backend lacks `Conv2DBackpropFilter` (training a
 * conv net fails without it), its `Conv2DBackpropInput`, `MaxPoolGrad`, transposed `BatchMatMul` and `Sum` over
 * leading axes are slow plain loops or take a detour through a transpose, and its `Identity` copies every tensor
 * TensorFlow.js saves for the backward pass. {@link registerWasmConvGradients} writes each of them in terms of the
 * backend's fast kernels (XNNPACK), as one pass over the heap (four lanes at a time: lib/compute/wasm_simd.ts), or
 * as shared data. For stride-1 convolutions both gradients are ordinary convolutions:
 *
 * - filter gradient: dW[kh, kw, ci, co] = sum over n, y, x of
 *   xpad[n, y + kh, x + kw, ci] dy[n, y, x, co] = a convolution of x transposed
 *   to [ci, H, W, n] (the batch becomes the channels) with dy transposed to
 *   [y, x, n, co] as the filter, then transposed back;
 * - input gradient: dx = a convolution of dy, padded by (k - 1 - pad), with
 *   the filter flipped in space and its channel axes swapped.
 *
 * Where OpenBLAS can be opened (lib/compute/blas.ts), {@link registerBlasConvolutions} puts the convolutions, their
 * gradients and the matrix products on `im2col` + `sgemm` over the wasm heap instead, about twice as fast on the
 * same cores (bench/README.md, "Backends"), with each convolution's bias and ReLU in its kernel
 * ({@link convBiasRelu}). {@link installWasmKernels} installs either set (backend selection in
 * lib/compute/backend.ts calls it), and {@link weightsInPlace} says whether weights may be written into the heap
 * directly. The kernels reach the backend's heap through the typed members of lib/compute/tfjs_internals.ts.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { type Blas, convFilterGrad, convForward, type ConvGeometry, flipFilter } from "./blas.ts";
import type { WasmBackendInternals as WasmBackend } from "./tfjs_internals.ts";
import { HeapSimd } from "./wasm_simd.ts";

type TensorInfo = tf.TensorInfo;
// deno-lint-ignore no-explicit-any
type Attrs = any;

/** A float tensor of the wasm backend as a view into its heap (valid until the next allocation moves the heap). */
function heap(backend: WasmBackend, t: TensorInfo): Float32Array {
  return backend.typedArrayFromHeap(t) as Float32Array;
}

/** A float tensor's values as a view into the wasm heap when wasm is the current backend, else null. */
export function wasmHeapView(t: TensorInfo): Float32Array | null {
  return tf.getBackend() === "wasm" && t.dtype === "float32" ? heap(tf.backend() as WasmBackend, t) : null;
}

/** A stride or dilation attribute as [height, width]. */
function pair(v: number | number[] | undefined, dflt: number): number[] {
  return v === undefined ? [dflt, dflt] : typeof v === "number" ? [v, v] : v;
}

function kernel(name: string, backend: string) {
  const k = tf.getKernel(name, backend);
  if (!k) throw new Error(`kernel ${name} is not registered for ${backend}`);
  return k.kernelFunc;
}

/** Runs a kernel function on tensor infos. */
function callKernel(f: tf.KernelFunc, inputs: Record<string, TensorInfo>, attrs: Attrs, backend: tf.KernelBackend) {
  return f({ inputs, attrs, backend }) as TensorInfo;
}

/** The convolution gradients below handle stride 1, dilation 1, NHWC (the paper's networks). */
function checkStride1(attrs: Attrs, what: string, backendName: string): void {
  const s = pair(attrs.strides, 1), d = pair(attrs.dilations, 1);
  if (s[0] !== 1 || s[1] !== 1 || d[0] !== 1 || d[1] !== 1 || attrs.dataFormat === "NCHW") {
    throw new Error(`${what} on ${backendName}: only stride 1, dilation 1, NHWC convolutions are supported`);
  }
}

/** The filter gradient of a convolution as one forward convolution of transposed operands (wasm has none fast). */
function conv2DFilterGradKernel(backendName: string): tf.KernelConfig {
  const conv = kernel("Conv2D", backendName), transpose = kernel("Transpose", backendName);
  return {
    kernelName: "Conv2DBackpropFilter",
    backendName,
    kernelFunc: (args) => {
      const inputs = args.inputs, attrs = args.attrs as Attrs, backend = args.backend as tf.KernelBackend;
      const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
      checkStride1(attrs, "Conv2DBackpropFilter", backendName);
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number],
        attrs.filterShape,
        1,
        1,
        attrs.pad,
        attrs.dimRoundingMode,
      );
      const p = info.padInfo;
      const xt = callKernel(transpose, { x }, { perm: [3, 1, 2, 0] }, backend); // [ci, H, W, n]
      const dyt = callKernel(transpose, { x: dy }, { perm: [1, 2, 0, 3] }, backend); // [oh, ow, n, co]
      const g = callKernel(conv, { x: xt, filter: dyt }, {
        strides: 1,
        pad: [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]],
        dataFormat: "NHWC",
        dilations: 1,
      }, backend); // [ci, kh, kw, co]
      const out = callKernel(transpose, { x: g }, { perm: [1, 2, 0, 3] }, backend);
      for (const t of [xt, dyt, g]) backend.disposeData(t.dataId);
      return out;
    },
  };
}

/** The input gradient of a convolution: a forward convolution with the flipped, transposed filter. */
function conv2DInputGradKernel(backendName: string): tf.KernelConfig {
  const conv = kernel("Conv2D", backendName), transpose = kernel("Transpose", backendName);
  const reverse = kernel("Reverse", backendName);
  return {
    kernelName: "Conv2DBackpropInput",
    backendName,
    kernelFunc: (args) => {
      const inputs = args.inputs, attrs = args.attrs as Attrs, backend = args.backend as tf.KernelBackend;
      const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
      checkStride1(attrs, "Conv2DBackpropInput", backendName);
      const [kh, kw] = filter.shape;
      const info = tf.backend_util.computeConv2DInfo(
        attrs.inputShape,
        filter.shape as [number, number, number, number],
        1,
        1,
        attrs.pad,
        attrs.dimRoundingMode,
      );
      const p = info.padInfo;
      const flipped = callKernel(reverse, { x: filter }, { dims: [0, 1] }, backend);
      const wt = callKernel(transpose, { x: flipped }, { perm: [0, 1, 3, 2] }, backend); // [kh, kw, co, ci]
      const out = callKernel(conv, { x: dy, filter: wt }, {
        strides: 1,
        pad: [[0, 0], [kh - 1 - p.top, kh - 1 - p.bottom], [kw - 1 - p.left, kw - 1 - p.right], [0, 0]],
        dataFormat: "NHWC",
        dilations: 1,
      }, backend);
      for (const t of [flipped, wt]) backend.disposeData(t.dataId);
      return out;
    },
  };
}

/** MaxPoolGrad: the backend's plain loop is slow; this one finds each window's first maximum from the forward output. */
function maxPoolGradKernel(backendName: string): tf.KernelConfig {
  return {
    kernelName: "MaxPoolGrad",
    backendName,
    kernelFunc: (args) => {
      const { dy, input, output } = args.inputs as { dy: TensorInfo; input: TensorInfo; output: TensorInfo };
      const attrs = args.attrs as Attrs, backend = args.backend as WasmBackend;
      const info = tf.backend_util.computePool2DInfo(
        input.shape as [number, number, number, number],
        attrs.filterSize,
        attrs.strides,
        1,
        attrs.pad,
        attrs.dimRoundingMode,
      );
      const out = backend.makeOutput(input.shape, "float32") as TensorInfo;
      // Views after makeOutput: allocating may have moved the heap.
      const views = [input, output, dy, out].map((t) => heap(backend, t)) as [
        Float32Array,
        Float32Array,
        Float32Array,
        Float32Array,
      ];
      if (info.inChannels % 4 === 0) maxPoolBackwardSimd(heapSimd(backend), ...views, info);
      else maxPoolBackward(...views, info);
      return out;
    },
  };
}

/** BatchMatMul with a transposed operand runs a slow path on wasm; transposing first is cheaper. */
function batchMatMulKernel(backendName: string): tf.KernelConfig {
  const matmul = kernel("BatchMatMul", backendName), transpose = kernel("Transpose", backendName);
  return {
    kernelName: "BatchMatMul",
    backendName,
    kernelFunc: (args) => {
      const attrs = args.attrs as Attrs, backend = args.backend as tf.KernelBackend;
      let { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
      if (!attrs.transposeA && !attrs.transposeB) return callKernel(matmul, { a, b }, attrs, backend);
      const temps: TensorInfo[] = [];
      const swapLast = (t: TensorInfo) => {
        const perm = t.shape.map((_, i) => i);
        [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
        const r = callKernel(transpose, { x: t }, { perm }, backend);
        temps.push(r);
        return r;
      };
      if (attrs.transposeA) a = swapLast(a);
      if (attrs.transposeB) b = swapLast(b);
      const out = callKernel(matmul, { a, b }, { ...attrs, transposeA: false, transposeB: false }, backend);
      for (const t of temps) backend.disposeData(t.dataId);
      return out;
    },
  };
}

/**
 * Sum over all axes but the last (every bias gradient of a conv layer): one pass over the rows, where the backend
 * transposes first.
 */
function sumRowsKernel(backendName: string): tf.KernelConfig {
  const sum = kernel("Sum", backendName);
  return {
    kernelName: "Sum",
    backendName,
    kernelFunc: (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      const attrs = args.attrs as Attrs, backend = args.backend as WasmBackend;
      const rank = x.shape.length;
      const axes = (Array.isArray(attrs.axis) ? attrs.axis : [attrs.axis]).map((a: number) => (a + rank) % rank).sort();
      const leading = rank >= 2 && axes.length === rank - 1 && axes.every((a: number, i: number) => a === i);
      if (!leading || attrs.keepDims || x.dtype !== "float32") return callKernel(sum, { x }, attrs, backend);
      const C = x.shape[rank - 1], M = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const out = backend.makeOutput([C], "float32") as TensorInfo;
      // Views after makeOutput: allocating may have moved the heap.
      const src = heap(backend, x), dst = heap(backend, out);
      if (C % 4 === 0) {
        heapSimd(backend).sumRows(src.byteOffset, dst.byteOffset, M, 4 * C);
        return out;
      }
      const acc = new Float32Array(C);
      for (let m = 0, o = 0; m < M; m++, o += C) for (let c = 0; c < C; c++) acc[c] += src[o + c];
      dst.set(acc);
      return out;
    },
  };
}

/**
 * Identity: TensorFlow.js clones every tensor it saves for the backward pass, and the backend copies the data for
 * each (a step of the small network copied about 150 MB); this one shares it, as the `cpu` backend's does. No kernel
 * of the project writes into its inputs, and weights are written in place only where nothing shares them
 * (lib/compute/engine.ts `load`).
 */
function identityKernel(backendName: string): tf.KernelConfig {
  return {
    kernelName: "Identity",
    backendName,
    kernelFunc: (args) => {
      const { x } = args.inputs as { x: TensorInfo };
      (args.backend as WasmBackend).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  };
}

/** Registers the convolution gradients of the module documentation on `backendName` (default wasm). */
export function registerWasmConvGradients(backendName = "wasm"): void {
  const kernels = [
    conv2DFilterGradKernel(backendName),
    conv2DInputGradKernel(backendName),
    maxPoolGradKernel(backendName),
    batchMatMulKernel(backendName),
    sumRowsKernel(backendName),
    identityKernel(backendName),
  ];
  for (const k of kernels) {
    if (tf.getKernel(k.kernelName, backendName)) tf.unregisterKernel(k.kernelName, backendName);
    tf.registerKernel(k);
  }
}

/** A kernel's body: its output, or null for what it does not cover (the kernel registered before handles it). */
type KernelBody = (inputs: Record<string, TensorInfo>, attrs: Attrs, backend: WasmBackend) => TensorInfo | null;

/** Whether a convolution is one the BLAS kernels cover: no dilation, NHWC. */
function plainConv(attrs: Attrs): boolean {
  const d = pair(attrs.dilations, 1);
  return d[0] === 1 && d[1] === 1 && attrs.dataFormat !== "NCHW";
}

/** All float32. */
function allFloat32(...ts: TensorInfo[]): boolean {
  return ts.every((t) => t.dtype === "float32");
}

/** The geometry of a convolution, as TensorFlow.js computes it. */
function convGeometry(xShape: number[], fShape: number[], attrs: Attrs): ConvGeometry {
  const s = pair(attrs.strides, 1);
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    fShape as [number, number, number, number],
    s as [number, number],
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kh: info.filterHeight,
    kw: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/** Conv2D as im2col and one sgemm per image (lib/compute/blas.ts). */
function blasConv2D(blas: Blas): KernelBody {
  return ({ x, filter }, attrs, backend) => {
    if (!plainConv(attrs) || !allFloat32(x, filter)) return null;
    const g = convGeometry(x.shape, filter.shape, attrs);
    const out = backend.makeOutput([g.batch, g.outH, g.outW, g.outC], "float32") as TensorInfo;
    convForward(blas, heap(backend, x), heap(backend, filter), heap(backend, out), g);
    return out;
  };
}

/** The filter gradient as im2col and sgemm. */
function blasConv2DFilterGrad(blas: Blas): KernelBody {
  return ({ x, dy }, attrs, backend) => {
    if (!plainConv(attrs) || !allFloat32(x, dy)) return null;
    const g = convGeometry(x.shape, attrs.filterShape, attrs);
    const out = backend.makeOutput(attrs.filterShape, "float32") as TensorInfo;
    convFilterGrad(blas, heap(backend, x), heap(backend, dy), heap(backend, out), g);
    return out;
  };
}

/** The input gradient (stride 1) as a forward convolution with the flipped filter. */
function blasConv2DInputGrad(blas: Blas): KernelBody {
  return ({ dy, filter }, attrs, backend) => {
    const s = pair(attrs.strides, 1);
    if (!plainConv(attrs) || s[0] !== 1 || s[1] !== 1 || !allFloat32(dy, filter)) return null;
    const fwd = convGeometry(attrs.inputShape, filter.shape, attrs);
    const [kh, kw, ci, co] = filter.shape;
    // dx is the stride-1 convolution of dy, padded by (k - 1 - pad), with the flipped, channel-swapped filter.
    const g: ConvGeometry = {
      batch: fwd.batch,
      inH: fwd.outH,
      inW: fwd.outW,
      inC: co,
      outH: fwd.inH,
      outW: fwd.inW,
      outC: ci,
      kh,
      kw,
      strideH: 1,
      strideW: 1,
      padTop: kh - 1 - fwd.padTop,
      padLeft: kw - 1 - fwd.padLeft,
    };
    const out = backend.makeOutput(attrs.inputShape, "float32") as TensorInfo;
    const wf = flipFilter(heap(backend, filter), kh, kw, ci, co);
    convForward(blas, heap(backend, dy), wf, heap(backend, out), g);
    return out;
  };
}

/** Matrix products (the dense layers), either operand transposed, as sgemm's own transposes. */
function blasBatchMatMul(blas: Blas): KernelBody {
  return ({ a, b }, attrs, backend) => {
    const ra = a.shape.length, rb = b.shape.length;
    const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
    const sameBatch = ra === rb && batchA.every((d, i) => d === batchB[i]);
    if (!sameBatch || ra < 2 || !allFloat32(a, b)) return null;
    const ta = !!attrs.transposeA, tb = !!attrs.transposeB;
    const [a0, a1] = a.shape.slice(-2), [b0, b1] = b.shape.slice(-2);
    const M = ta ? a1 : a0, K = ta ? a0 : a1, N = tb ? b0 : b1;
    if ((tb ? b1 : b0) !== K) return null; // the backend words the error
    const batches = batchA.reduce((x, y) => x * y, 1);
    const out = backend.makeOutput([...batchA, M, N], "float32") as TensorInfo;
    const A = heap(backend, a), B = heap(backend, b), C = heap(backend, out);
    for (let i = 0; i < batches; i++) {
      const Ai = A.subarray(i * M * K, (i + 1) * M * K), Bi = B.subarray(i * K * N, (i + 1) * K * N);
      blas.sgemm(ta, tb, M, N, K, 1, Ai, a1, Bi, b1, 0, C.subarray(i * M * N, (i + 1) * M * N), N);
    }
    return out;
  };
}

/**
 * Registers OpenBLAS convolutions on `backendName` (wasm): `Conv2D`, `Conv2DBackpropFilter` and
 * `Conv2DBackpropInput` as im2col + sgemm on the wasm heap (lib/compute/blas.ts). What they do not cover
 * (dilation, NCHW, a strided input gradient) goes to the kernels registered before.
 */
export function registerBlasConvolutions(blas: Blas, backendName = "wasm"): void {
  const bodies: Record<string, KernelBody> = {
    Conv2D: blasConv2D(blas),
    Conv2DBackpropFilter: blasConv2DFilterGrad(blas),
    Conv2DBackpropInput: blasConv2DInputGrad(blas),
    BatchMatMul: blasBatchMatMul(blas),
  };
  if (backendName === "wasm") {
    for (const k of [blasConvBiasRelu(blas), reluGradKernel]) {
      if (tf.getKernel(k.kernelName, backendName)) tf.unregisterKernel(k.kernelName, backendName);
      tf.registerKernel(k);
    }
    registerConvBiasReluGradient();
  }
  // Each kernel hands what it does not cover to the one registered before it. (In each body, heap views are
  // taken after makeOutput: allocating may move the heap.)
  for (const [kernelName, body] of Object.entries(bodies)) {
    const before = kernel(kernelName, backendName);
    tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({
      kernelName,
      backendName,
      kernelFunc: (args) =>
        body(args.inputs as Record<string, TensorInfo>, args.attrs as Attrs, args.backend as WasmBackend) ??
          before(args) as TensorInfo,
    });
  }
}

/** The project's kernel of a stride-1 convolution, its bias and ReLU in one (OpenBLAS on wasm only). */
const CONV_BIAS_RELU = "ExemplarConvBiasRelu";
/** The project's kernel of the gradient through a ReLU, from its output: dy * (y > 0). */
const RELU_GRAD = "ExemplarReluGrad";

/**
 * relu(conv2d(x, w, stride 1, pad) + b): one kernel where OpenBLAS serves the wasm backend (the convolution as
 * im2col + sgemm, then the bias and ReLU in one pass over its output, four channels at a time), else TensorFlow.js's
 * three operations. Its gradient (registered below) passes dy through the ReLU in one pass and then takes the
 * convolution's and the bias's gradients as TensorFlow.js does, with the same kernels.
 */
export function convBiasRelu(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor, pad: "same" | "valid"): tf.Tensor4D {
  if (!weightsInPlace()) return tf.relu(tf.conv2d(x, w, 1, pad).add(b));
  return tf.engine().runKernel(CONV_BIAS_RELU, { x, filter: w, bias: b }, { pad }) as tf.Tensor4D;
}

/** The kernel of {@link convBiasRelu}. */
function blasConvBiasRelu(blas: Blas): tf.KernelConfig {
  return {
    kernelName: CONV_BIAS_RELU,
    backendName: "wasm",
    kernelFunc: (args) => {
      const { x, filter, bias } = args.inputs as { x: TensorInfo; filter: TensorInfo; bias: TensorInfo };
      const backend = args.backend as WasmBackend;
      const g = convGeometry(x.shape, filter.shape, { strides: 1, pad: (args.attrs as Attrs).pad });
      const out = backend.makeOutput([g.batch, g.outH, g.outW, g.outC], "float32") as TensorInfo;
      // Views after makeOutput: allocating may have moved the heap.
      const y = heap(backend, out), b = heap(backend, bias), C = g.outC;
      convForward(blas, heap(backend, x), heap(backend, filter), y, g);
      if (C % 4 === 0) heapSimd(backend).biasRelu(y.byteOffset, b.byteOffset, y.length / C, 4 * C);
      else for (let i = 0; i < y.length; i++) y[i] = Math.max(y[i] + b[i % C], 0);
      return out;
    },
  };
}

/** The kernel of the gradient through a ReLU. */
const reluGradKernel: tf.KernelConfig = {
  kernelName: RELU_GRAD,
  backendName: "wasm",
  kernelFunc: (args) => {
    const { dy, y } = args.inputs as { dy: TensorInfo; y: TensorInfo };
    const backend = args.backend as WasmBackend;
    const out = backend.makeOutput(dy.shape, "float32") as TensorInfo;
    const d = heap(backend, dy), v = heap(backend, y), o = heap(backend, out), n = o.length, m = n & ~3;
    if (m) heapSimd(backend).reluGrad(d.byteOffset, v.byteOffset, o.byteOffset, 4 * m);
    for (let i = m; i < n; i++) o[i] = d[i] * (v[i] > 0 ? 1 : 0);
    return out;
  },
};

let convBiasReluGradient = false;

/** The gradient of {@link convBiasRelu}'s kernel (registered once; it runs only where the kernel does). */
function registerConvBiasReluGradient(): void {
  if (convBiasReluGradient) return;
  convBiasReluGradient = true;
  tf.registerGradient({
    kernelName: CONV_BIAS_RELU,
    inputsToSave: ["x", "filter"],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter, y] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
      const dz = tf.engine().runKernel(RELU_GRAD, { dy: dy as tf.Tensor, y }) as tf.Tensor4D;
      const conv = { strides: 1, pad: (attrs as Attrs).pad, dataFormat: "NHWC" };
      return {
        x: () => tf.engine().runKernel("Conv2DBackpropInput", { dy: dz, filter }, { ...conv, inputShape: x.shape }),
        filter: () =>
          tf.engine().runKernel("Conv2DBackpropFilter", { x, dy: dz }, { ...conv, filterShape: filter.shape }),
        bias: () => tf.sum(dz, [0, 1, 2]),
      } as Record<string, () => tf.Tensor>;
    },
  });
}

/**
 * Each output pixel of a max-pooling (NHWC) with the part of its window inside the image: `visit(o, p, rows, cols)`
 * with o the output pixel's index, p the input index of the window's first pixel inside, and its `rows` x `cols`
 * pixels there (windows wholly outside are passed over).
 */
function eachPoolWindow(
  info: tf.backend_util.Conv2DInfo,
  visit: (o: number, p: number, rows: number, cols: number) => void,
): void {
  const { batchSize: N, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW } = info;
  const sh = info.strideHeight, sw = info.strideWidth, fh = info.effectiveFilterHeight, fw = info.effectiveFilterWidth;
  const top = info.padInfo.top, left = info.padInfo.left;
  for (let n = 0, o = 0; n < N; n++) {
    for (let oy = 0; oy < OH; oy++) {
      const y0 = Math.max(0, oy * sh - top), y1 = Math.min(H, oy * sh - top + fh);
      for (let ox = 0; ox < OW; ox++, o++) {
        const x0 = Math.max(0, ox * sw - left), x1 = Math.min(W, ox * sw - left + fw);
        if (y1 > y0 && x1 > x0) visit(o, (n * H + y0) * W + x0, y1 - y0, x1 - x0);
      }
    }
  }
}

/**
 * dx of max-pooling (NHWC): each dy goes to the first maximum of its window in x (row by row), as TensorFlow routes
 * it. The forward output y gives each window's maximum, so a channel's scan of its window stops at the first element
 * equal to it.
 */
export function maxPoolBackward(
  x: Float32Array,
  y: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const { inWidth: W, inChannels: C } = info;
  dx.fill(0);
  const window = new Int32Array(info.effectiveFilterHeight * info.effectiveFilterWidth); // offsets, in scan order
  eachPoolWindow(info, (o, p, rows, cols) => {
    let len = 0;
    for (let r = 0; r < rows; r++) for (let q = 0; q < cols; q++) window[len++] = (p + r * W + q) * C;
    for (let c = 0, oc = o * C; c < C; c++, oc++) {
      const m = y[oc];
      for (let k = 0; k < len; k++) {
        const i = window[k] + c;
        if (x[i] === m) {
          dx[i] += dy[oc];
          break;
        }
      }
    }
  });
}

/** {@link maxPoolBackward} four channels at a time (C a multiple of 4), with the same results. */
export function maxPoolBackwardSimd(
  simd: HeapSimd,
  x: Float32Array,
  y: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  info: tf.backend_util.Conv2DInfo,
): void {
  const B = 4 * info.inChannels, rowBytes = info.inWidth * B;
  dx.fill(0);
  eachPoolWindow(info, (o, p, rows, cols) => {
    const at = p * B, out = o * B;
    simd.poolGrad(
      x.byteOffset + at,
      dx.byteOffset + at,
      y.byteOffset + out,
      dy.byteOffset + out,
      rows,
      cols,
      rowBytes,
      B,
      B,
    );
  });
}

/** The SIMD loops over the backend's heap (one instance per memory). */
const simdOf = new WeakMap<WebAssembly.Memory, HeapSimd>();
function heapSimd(backend: WasmBackend): HeapSimd {
  const memory = backend.wasm.asm.memory;
  let k = simdOf.get(memory);
  if (!k) simdOf.set(memory, k = new HeapSimd(memory));
  return k;
}

/** The kernels {@link installWasmKernels} replaces. */
const PROJECT_KERNELS = [
  "Conv2D",
  "Conv2DBackpropFilter",
  "Conv2DBackpropInput",
  "MaxPoolGrad",
  "BatchMatMul",
  "Sum",
  "Identity",
];
/** The backend's own kernels of {@link PROJECT_KERNELS}, by backend, as first found. */
const stockKernels = new Map<string, Map<string, tf.KernelConfig | undefined>>();
/** Whether the OpenBLAS kernels are installed on wasm. */
let blasInstalled = false;

/**
 * Whether a network's weights may be overwritten in place in the wasm heap between steps. Not with XNNPACK's
 * convolutions and matrix products: they pack a filter once and keep the packed copy for as long as the tensor
 * lives, so weights written in place would go unseen. The OpenBLAS kernels read the heap at every call.
 */
export function weightsInPlace(): boolean {
  return blasInstalled && tf.getBackend() === "wasm";
}

/**
 * Puts the project's kernels on `backendName` (wasm) over the backend's own: the XNNPACK-based
 * convolution gradients and the other kernels of {@link registerWasmConvGradients}, then, with
 * `blas`, the OpenBLAS convolutions and matrix products. Calling it again switches between the two.
 */
export function installWasmKernels(blas: Blas | null, backendName = "wasm"): void {
  let stock = stockKernels.get(backendName);
  if (!stock) {
    stock = new Map(PROJECT_KERNELS.map((n) => [n, tf.getKernel(n, backendName)]));
    stockKernels.set(backendName, stock);
  }
  for (const [name, k] of stock) {
    if (tf.getKernel(name, backendName)) tf.unregisterKernel(name, backendName);
    if (k) tf.registerKernel(k);
  }
  registerWasmConvGradients(backendName);
  if (blas) registerBlasConvolutions(blas, backendName);
  if (backendName === "wasm") blasInstalled = blas !== null;
}
