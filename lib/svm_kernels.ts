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

/** Bytes of a WebAssembly page, and the most pages a (32-bit) memory holds. */
const PAGE = 65536, MAX_PAGES = 65536;

/** Unsigned LEB128, the integer encoding of WebAssembly's binary format. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** Signed LEB128 (of i32.const). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

// The few instructions the kernels use (WebAssembly 2.0, with its 128-bit SIMD).
const get = (i: number) => [0x20, i], set = (i: number) => [0x21, i], tee = (i: number) => [0x22, i];
const i32 = (v: number) => [0x41, ...sleb(v)], add32 = [0x6a], geU32 = [0x4f], addF64 = [0xa0];
const simd = (op: number, ...imm: number[]) => [0xfd, ...leb(op), ...imm];
/** v128 load / store at the address on the stack plus `offset` (alignment hint 0: any address). */
const load = (offset: number) => simd(0x00, 0, ...leb(offset)),
  store = (offset: number) => simd(0x0b, 0, ...leb(offset));
/** Two float32 at the address (plus `offset`) as two float64: v128.load64_zero, f64x2.promote_low_f32x4. */
const twoFloats = (offset: number) => [...simd(0x5d, 0, ...leb(offset)), ...simd(0x5f)];
const mulF64x2 = simd(0xf2), addF64x2 = simd(0xf0), splatF64x2 = simd(0x14), lane = (k: number) => simd(0x21, k);
/** `body` repeated while local `ptr` is below local `end`: block { loop { br_if ptr >= end; body; br } }. */
const loopUntil = (ptr: number, end: number, body: number[]) => [
  ...[0x02, 0x40, 0x03, 0x40],
  ...get(ptr),
  ...get(end),
  ...geU32,
  0x0d,
  1,
  ...body,
  0x0c,
  0,
  0x0b,
  0x0b,
];

/**
 * dot(w, x, n) = sum_j w_j x_j for n (a multiple of 8) float64 w and float32 x at byte addresses w and x: eight
 * partial sums (four f64x2), added up at the end.
 */
function dotBody(): { params: number[]; result: number[]; locals: number[][]; code: number[] } {
  const W = 0, X = 1, N = 2, END = 3, acc = [4, 5, 6, 7];
  const step = acc.flatMap((a, k) => [
    ...get(a),
    ...get(W),
    ...load(16 * k),
    ...get(X),
    ...twoFloats(8 * k),
    ...mulF64x2,
    ...addF64x2,
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
    ...addF64x2,
    ...get(acc[2]),
    ...get(acc[3]),
    ...addF64x2,
    ...addF64x2,
    ...tee(acc[0]),
    ...lane(0),
    ...get(acc[0]),
    ...lane(1),
    ...addF64,
  ];
  return { params: [0x7f, 0x7f, 0x7f], result: [0x7c], locals: [[1, 0x7f], [4, 0x7b]], code };
}

/** axpy(a, x, y, n): y_j += a x_j for n (a multiple of 4) float32 x and float64 y at byte addresses x and y. */
function axpyBody(): { params: number[]; result: number[]; locals: number[][]; code: number[] } {
  const A = 0, X = 1, Y = 2, N = 3, END = 4, S = 5;
  const half = (k: number) => [
    ...get(Y),
    ...get(Y),
    ...load(16 * k),
    ...get(S),
    ...get(X),
    ...twoFloats(8 * k),
    ...mulF64x2,
    ...addF64x2,
    ...store(16 * k),
  ];
  const code = [
    ...get(A),
    ...splatF64x2,
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
  return { params: [0x7c, 0x7f, 0x7f, 0x7f], result: [], locals: [[1, 0x7f], [1, 0x7b]], code };
}

/** The module: imports a shared memory `env.memory`, exports `dot` and `axpy`. */
function kernelModule(): WebAssembly.Module {
  const fns = [dotBody(), axpyBody()];
  const section = (id: number, items: number[][]) => {
    const body = [...leb(items.length), ...items.flat()];
    return [id, ...leb(body.length), ...body];
  };
  const name = (s: string) => [...leb(s.length), ...new TextEncoder().encode(s)];
  const types = fns.map((f) => [0x60, ...leb(f.params.length), ...f.params, ...leb(f.result.length), ...f.result]);
  const codes = fns.map((f) => {
    const body = [...leb(f.locals.length), ...f.locals.flatMap(([n, t]) => [...leb(n), t]), ...f.code, 0x0b];
    return [...leb(body.length), ...body];
  });
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    // (import "env" "memory" (memory 0 65536 shared))
    ...section(2, [[...name("env"), ...name("memory"), 0x02, 0x03, ...leb(0), ...leb(MAX_PAGES)]]),
    ...section(3, [[0], [1]]),
    ...section(7, [[...name("dot"), 0x00, 0], [...name("axpy"), 0x00, 1]]),
    ...section(10, codes),
  ];
  return new WebAssembly.Module(new Uint8Array(bytes));
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
