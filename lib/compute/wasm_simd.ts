/**
 * WebAssembly SIMD loops over the `wasm` backend's own heap, for the steps of training that TensorFlow.js's backend
 * runs as plain loops, as several passes, or that the project wrote in JavaScript (lib/compute/wasm_kernels.ts): the
 * gradient of max-pooling, the sum over a batch that gives a bias gradient, a convolution's bias and ReLU, and the
 * gradient through the ReLU. Each reads and writes four float32 lanes at a time and does, lane by lane, the same
 * arithmetic in the same order as the operations it replaces.
 *
 * The module imports the backend's memory (TensorFlow.js's wasm module exports it), so the loops take tensors where
 * they lie: every address below is a byte offset into that heap, every length a multiple of 16 bytes.
 *
 * @module
 */
import {
  add32,
  type AsmFunction,
  asmModule,
  bump,
  f32x4,
  get,
  I32,
  i32,
  load,
  loopUntil,
  mul32,
  set,
  simd,
  store,
  tee,
  V128,
  v128,
} from "../util/wasm_asm.ts";

/** v128.const of four float32 zeros (all bits clear), and of four ones. */
const zeros = [...simd(0x0c, ...new Array(16).fill(0))];
const ones = [...simd(0x0c, ...[0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0x3f])];

/** The address local `base` + local `off` on the stack. */
const at = (base: number, off: number) => [...get(base), ...get(off), ...add32];

/**
 * The address local `a` + local `q`, kept in local `tmp` for the store that follows, and the four floats there plus the
 * four at local `b` + local `q` on the stack: `acc[q] + src[q]` of an in-place update.
 */
const plusAt = (a: number, b: number, q: number, tmp: number) => [
  ...at(a, q),
  ...tee(tmp),
  ...get(tmp),
  ...load(),
  ...at(b, q),
  ...load(),
  ...f32x4.add,
];

/**
 * `step` for every 16 bytes of every row: `rows` rows of `row` bytes from local `ptr` on (locals `rows`, `row`), local
 * `q` the offset in the row and local `end` free for the loop's bound.
 */
const eachRow = (ptr: number, rows: number, row: number, end: number, q: number, step: number[]) => [
  ...get(ptr),
  ...get(rows),
  ...get(row),
  ...mul32,
  ...add32,
  ...set(end),
  ...loopUntil(ptr, end, [
    ...i32(0),
    ...set(q),
    ...loopUntil(q, row, [...step, ...bump(q, i32(16))]),
    ...bump(ptr, get(row)),
  ]),
];

/**
 * sumRows(src, dst, rows, rowBytes): dst = the sum of `rows` rows of rowBytes bytes at src, each lane summed in row
 * order from zero (as `acc[c] += src[r][c]` in float32).
 */
function sumRowsBody(): AsmFunction {
  const SRC = 0, DST = 1, ROWS = 2, ROW = 3, END = 4, Q = 5, A = 6;
  const code = [
    ...i32(0),
    ...set(Q),
    ...loopUntil(Q, ROW, [...at(DST, Q), ...zeros, ...store(), ...bump(Q, i32(16))]),
    // dst[q] += src[q], row after row
    ...eachRow(SRC, ROWS, ROW, END, Q, [...plusAt(DST, SRC, Q, A), ...store()]),
  ];
  return { name: "sumRows", params: [I32, I32, I32, I32], result: [], locals: [[3, I32]], code };
}

/**
 * poolGrad(x, dx, y, dy, rows, cols, rowStride, colStride, cBytes): the gradient of one max-pooling output pixel. x
 * and dx address the window's first pixel (its valid part: `rows` x `cols` pixels, `rowStride` and `colStride` bytes
 * apart), y and dy the output pixel; for each channel, dy goes to the first pixel of the window (row by row) whose
 * value equals the output's, as TensorFlow routes it.
 */
function poolGradBody(): AsmFunction {
  const X = 0, DX = 1, Y = 2, DY = 3, ROWS = 4, COLS = 5, RS = 6, CS = 7, CB = 8;
  const C = 9, R = 10, REND = 11, Q = 12, QEND = 13, P = 14, M = 15, G = 16, DONE = 17, EQ = 18;
  const pixel = [
    // eq = (x[p] == m) & ~done; dx[p] += eq & g; done |= eq
    ...at(Q, C),
    ...set(P),
    ...at(X, P),
    ...load(),
    ...get(M),
    ...f32x4.eq,
    ...get(DONE),
    ...v128.andnot,
    ...set(EQ),
    ...at(DX, P),
    ...tee(P),
    ...get(P),
    ...load(),
    ...get(EQ),
    ...get(G),
    ...v128.and,
    ...f32x4.add,
    ...store(),
    ...get(DONE),
    ...get(EQ),
    ...v128.or,
    ...set(DONE),
    ...bump(Q, get(CS)),
  ];
  const code = [
    ...get(ROWS),
    ...get(RS),
    ...mul32,
    ...set(REND),
    ...i32(0),
    ...set(C),
    ...loopUntil(C, CB, [
      ...at(Y, C),
      ...load(),
      ...set(M),
      ...at(DY, C),
      ...load(),
      ...set(G),
      ...zeros,
      ...set(DONE),
      ...i32(0),
      ...set(R),
      ...loopUntil(R, REND, [
        ...get(R),
        ...set(Q),
        ...get(R),
        ...get(COLS),
        ...get(CS),
        ...mul32,
        ...add32,
        ...set(QEND),
        ...loopUntil(Q, QEND, pixel),
        ...bump(R, get(RS)),
      ]),
      ...bump(C, i32(16)),
    ]),
  ];
  return {
    name: "poolGrad",
    params: [I32, I32, I32, I32, I32, I32, I32, I32, I32],
    result: [],
    locals: [[6, I32], [4, V128]],
    code,
  };
}

/**
 * biasRelu(z, b, rows, rowBytes): z = max(z + b, 0) in place, for `rows` rows of rowBytes bytes at z and the row b
 * (a convolution's output, its bias and its ReLU; NaN stays NaN).
 */
function biasReluBody(): AsmFunction {
  const Z = 0, B = 1, ROWS = 2, ROW = 3, END = 4, Q = 5, A = 6;
  const code = eachRow(Z, ROWS, ROW, END, Q, [
    // z[q] = max(z[q] + b[q], 0)
    ...plusAt(Z, B, Q, A),
    ...zeros,
    ...f32x4.max,
    ...store(),
  ]);
  return { name: "biasRelu", params: [I32, I32, I32, I32], result: [], locals: [[3, I32]], code };
}

/** reluGrad(dy, y, out, bytes): out = dy * (y > 0 ? 1 : 0) (the gradient through a ReLU whose output is y). */
function reluGradBody(): AsmFunction {
  const DY = 0, Y = 1, OUT = 2, BYTES = 3, END = 4;
  const code = [
    ...at(OUT, BYTES),
    ...set(END),
    ...loopUntil(OUT, END, [
      ...get(OUT),
      ...get(DY),
      ...load(),
      ...get(Y),
      ...load(),
      ...zeros,
      ...f32x4.gt,
      ...ones,
      ...v128.and,
      ...f32x4.mul,
      ...store(),
      ...bump(DY, i32(16)),
      ...bump(Y, i32(16)),
      ...bump(OUT, i32(16)),
    ]),
  ];
  return { name: "reluGrad", params: [I32, I32, I32, I32], result: [], locals: [[1, I32]], code };
}

let compiled: WebAssembly.Module | undefined;

/** The loops over one (not shared) WebAssembly memory. */
export class HeapSimd {
  readonly sumRows: (src: number, dst: number, rows: number, rowBytes: number) => void;
  readonly poolGrad: (
    x: number,
    dx: number,
    y: number,
    dy: number,
    rows: number,
    cols: number,
    rowStride: number,
    colStride: number,
    cBytes: number,
  ) => void;

  readonly biasRelu: (z: number, b: number, rows: number, rowBytes: number) => void;
  readonly reluGrad: (dy: number, y: number, out: number, bytes: number) => void;

  constructor(memory: WebAssembly.Memory) {
    compiled ??= asmModule([sumRowsBody(), poolGradBody(), biasReluBody(), reluGradBody()], false);
    const e = new WebAssembly.Instance(compiled, { env: { memory } }).exports;
    this.sumRows = e.sumRows as HeapSimd["sumRows"];
    this.poolGrad = e.poolGrad as HeapSimd["poolGrad"];
    this.biasRelu = e.biasRelu as HeapSimd["biasRelu"];
    this.reluGrad = e.reluGrad as HeapSimd["reluGrad"];
  }
}
