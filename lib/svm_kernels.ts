/**
 * The two inner loops of the SVM's coordinate descent (lib/svm.ts) in WebAssembly SIMD: `dot` (the margin w.x_i of
 * the primal form) and `axpy` (the update of w, or of the margins from a row of the Gram matrix), each adding float32
 * values times float64 ones into float64 sums, two at a time. V8 compiles a JavaScript loop of the same arithmetic
 * to one scalar operation after another; these run about five times faster.
 *
 * The kernels read and write one WebAssembly memory, shared between threads, that holds the training set (an
 * {@link Arena}): the SVM's workers each run their own instance of the kernels over the same memory.
 *
 * @module
 */
import { UserError } from "./util/errors.ts";
import {
  add32,
  addF64,
  type AsmFunction,
  asmModule,
  f64x2,
  get,
  i32,
  load,
  loopUntil,
  set,
  store,
  tee,
  twoFloats,
} from "./util/wasm_asm.ts";

/** Bytes of a WebAssembly page, and the most pages a (32-bit) memory holds. */
const PAGE = 65536, MAX_PAGES = 65536;

/**
 * dot(w, x, n) = sum_j w_j x_j for n (a multiple of 8) float64 w and float32 x at byte addresses w and x: eight
 * partial sums (four f64x2), added up at the end.
 */
function dotBody(): AsmFunction {
  const W = 0, X = 1, N = 2, END = 3, acc = [4, 5, 6, 7];
  const step = acc.flatMap((a, k) => [
    ...get(a),
    ...get(W),
    ...load(16 * k),
    ...get(X),
    ...twoFloats(8 * k),
    ...f64x2.mul,
    ...f64x2.add,
    ...set(a),
  ]);
  const code = [
    ...get(X),
    ...get(N),
    ...i32(2),
    0x74, // i32.shl: n * 4 bytes
    ...add32,
    ...set(END),
    ...loopUntil(X, END, [
      ...step,
      ...get(W),
      ...i32(64),
      ...add32,
      ...set(W),
      ...get(X),
      ...i32(32),
      ...add32,
      ...set(X),
    ]),
    ...get(acc[0]),
    ...get(acc[1]),
    ...f64x2.add,
    ...get(acc[2]),
    ...get(acc[3]),
    ...f64x2.add,
    ...f64x2.add,
    ...tee(acc[0]),
    ...f64x2.lane(0),
    ...get(acc[0]),
    ...f64x2.lane(1),
    ...addF64,
  ];
  return { name: "dot", params: [0x7f, 0x7f, 0x7f], result: [0x7c], locals: [[1, 0x7f], [4, 0x7b]], code };
}

/** axpy(a, x, y, n): y_j += a x_j for n (a multiple of 4) float32 x and float64 y at byte addresses x and y. */
function axpyBody(): AsmFunction {
  const A = 0, X = 1, Y = 2, N = 3, END = 4, S = 5;
  const half = (k: number) => [
    ...get(Y),
    ...get(Y),
    ...load(16 * k),
    ...get(S),
    ...get(X),
    ...twoFloats(8 * k),
    ...f64x2.mul,
    ...f64x2.add,
    ...store(16 * k),
  ];
  const code = [
    ...get(A),
    ...f64x2.splat,
    ...set(S),
    ...get(X),
    ...get(N),
    ...i32(2),
    0x74,
    ...add32,
    ...set(END),
    ...loopUntil(X, END, [
      ...half(0),
      ...half(1),
      ...get(X),
      ...i32(16),
      ...add32,
      ...set(X),
      ...get(Y),
      ...i32(32),
      ...add32,
      ...set(Y),
    ]),
  ];
  return { name: "axpy", params: [0x7c, 0x7f, 0x7f, 0x7f], result: [], locals: [[1, 0x7f], [1, 0x7b]], code };
}

/** The module: imports a shared memory `env.memory`, exports `dot` and `axpy`. */
function kernelModule(): WebAssembly.Module {
  return asmModule([dotBody(), axpyBody()], true);
}

let compiled: WebAssembly.Module | undefined;

/** The kernels over one memory, with the tails of odd lengths done in JavaScript. */
export class Kernels {
  #dot: (w: number, x: number, n: number) => number;
  #axpy: (a: number, x: number, y: number, n: number) => void;

  constructor(memory: WebAssembly.Memory) {
    compiled ??= kernelModule();
    const e = new WebAssembly.Instance(compiled, { env: { memory } }).exports;
    this.#dot = e.dot as (w: number, x: number, n: number) => number;
    this.#axpy = e.axpy as (a: number, x: number, y: number, n: number) => void;
  }

  /** sum_j w[wi + j] x[xi + j], j < n (w and x views of this memory). */
  dot(w: Float64Array, wi: number, x: Float32Array, xi: number, n: number): number {
    const m = n & ~7;
    let s = m ? this.#dot(w.byteOffset + 8 * wi, x.byteOffset + 4 * xi, m) : 0;
    for (let j = m; j < n; j++) s += w[wi + j] * x[xi + j];
    return s;
  }

  /** y[yi + j] += a x[xi + j], j < n (x and y views of this memory). */
  axpy(a: number, x: Float32Array, xi: number, y: Float64Array, yi: number, n: number): void {
    const m = n & ~3;
    if (m) this.#axpy(a, x.byteOffset + 4 * xi, y.byteOffset + 8 * yi, m);
    for (let j = m; j < n; j++) y[yi + j] += a * x[xi + j];
  }
}

const kernelsOf = new WeakMap<WebAssembly.Memory, Kernels>();

/**
 * Float32 and float64 arrays allocated in one shared WebAssembly memory of a fixed size, and the kernels over it (one
 * instance per thread and memory).
 */
export class Arena {
  readonly memory: WebAssembly.Memory;
  #top = 0;

  /** A memory of at least `bytes` bytes (at most 4 GiB, WebAssembly's limit). */
  constructor(bytes: number) {
    const pages = Math.max(1, Math.ceil(bytes / PAGE));
    if (pages > MAX_PAGES) {
      throw new UserError(
        `${(bytes / 2 ** 30).toFixed(1)} GiB of training data (features and Gram matrix): the SVM holds at most 4 GiB`,
      );
    }
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  }

  /** The bytes that arrays of these lengths take (each aligned to 16 bytes). */
  static bytes(floats32: number[], floats64: number[]): number {
    const up = (b: number) => Math.ceil(b / 16) * 16;
    return floats32.reduce((s, n) => s + up(4 * n), 0) + floats64.reduce((s, n) => s + up(8 * n), 0);
  }

  #take(bytes: number): number {
    const at = this.#top;
    this.#top += Math.ceil(bytes / 16) * 16;
    if (this.#top > this.memory.buffer.byteLength) throw new RangeError("arena: out of memory");
    return at;
  }

  /** A new float32 array of n zeros in the memory. */
  f32(n: number): Float32Array {
    return new Float32Array(this.memory.buffer, this.#take(4 * n), n);
  }

  /** A new float64 array of n zeros in the memory. */
  f64(n: number): Float64Array {
    return new Float64Array(this.memory.buffer, this.#take(8 * n), n);
  }
}

/** The kernels over `memory` in this thread. */
export function kernels(memory: WebAssembly.Memory): Kernels {
  let k = kernelsOf.get(memory);
  if (!k) kernelsOf.set(memory, k = new Kernels(memory));
  return k;
}
