/**
 * Native matrix products for the convolutions (bench/README.md has the figures).
 *
 * The `wasm` backend runs convolutions on XNNPACK with 128-bit SIMD, about
 * 25-37 GFLOP/s per thread here. Where an OpenBLAS library can be opened with
 * `Deno.dlopen` (Debian: `libopenblas0-pthread`), the convolutions and both of
 * their gradients are computed as `im2col` + one `sgemm` instead, at 70-90
 * GFLOP/s per thread on the same cores. The tensors stay in the wasm heap:
 * OpenBLAS reads and writes it in place through views.
 *
 * Which library: `EXEMPLAR_BLAS` names a file, or `off` to keep XNNPACK;
 * unset, the usual names of OpenBLAS are tried (Linux, Homebrew), then
 * Apple's Accelerate (any CBLAS with `cblas_sgemm` works). Each thread of the project
 * (the main one and each gradient worker) calls OpenBLAS with one thread of
 * its own, so two data-parallel workers use the two cores without contention.
 *
 * @module
 */

import { UserError } from "../util/errors.ts";

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
  },
  // The linear SVM's Newton solver (lib/svm_newton.ts): matrix-vector products, double-precision rank-k updates and
  // LAPACK's Cholesky solve (OpenBLAS carries LAPACK; a CBLAS without them leaves that solver out).
  cblas_sgemv: {
    parameters: ["i32", "i32", "i32", "i32", "f32", "buffer", "i32", "buffer", "i32", "f32", "buffer", "i32"],
    result: "void",
    optional: true,
  },
  cblas_dsyrk: {
    parameters: ["i32", "i32", "i32", "i32", "i32", "f64", "buffer", "i32", "f64", "buffer", "i32"],
    result: "void",
    optional: true,
  },
  dposv_: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "void",
    optional: true,
  },
  // OpenBLAS's own; absent from other CBLAS libraries (Apple's Accelerate).
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
  openblas_get_config: { parameters: [], result: "pointer", optional: true },
  openblas_get_corename: { parameters: [], result: "pointer", optional: true },
} as const;

/** The library names tried when `EXEMPLAR_BLAS` is unset, best first. */
export const BLAS_CANDIDATES = [
  "libopenblas.so.0",
  "libopenblas.so",
  "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
  "libopenblas.dylib",
  "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
  "/usr/local/opt/openblas/lib/libopenblas.dylib",
  "/System/Library/Frameworks/Accelerate.framework/Accelerate",
];

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, UPPER = 121;

/**
 * The dense linear algebra of the SVM's Newton solver, in row-major order; each call checks that its operands lie
 * inside their arrays (as {@link Blas.sgemm} does).
 */
export interface Linalg {
  /** y = alpha op(A) x + beta y, A of M x N floats (row-major, rows `lda` apart), op(A) = A^T when `trans`. */
  sgemv(
    trans: boolean,
    M: number,
    N: number,
    alpha: number,
    A: Float32Array,
    lda: number,
    x: Float32Array,
    beta: number,
    y: Float32Array,
  ): void;
  /** The upper triangle of C (N x N) = alpha A^T A + beta C, A of K rows of N doubles (row-major). */
  dsyrk(N: number, K: number, alpha: number, A: Float64Array, beta: number, C: Float64Array): void;
  /**
   * Solves H x = b for a symmetric positive definite H (N x N, its upper triangle read) by Cholesky (LAPACK's
   * dposv): b becomes x, H its factor. False where H is not positive definite (then both hold no answer).
   */
  posv(N: number, H: Float64Array, b: Float64Array): boolean;
}

/** An opened OpenBLAS. */
export interface Blas {
  /** The file that was opened. */
  path: string;
  /** OpenBLAS's description of itself (version, kernel chosen for this CPU). */
  config: string;
  /** OpenBLAS's own thread count for the calls that follow (the project keeps 1; see the module notes). */
  setThreads(n: number): void;
  /** The Newton solver's linear algebra, or null where the library lacks it. */
  linalg: Linalg | null;
  /**
   * Row-major C = alpha op(A) op(B) + beta C, op(A) of M x K, op(B) of K x N.
   * The arrays may be views into any ArrayBuffer (the wasm heap included); a product that does not fit them, or a
   * C that overlaps A or B, throws a RangeError before OpenBLAS is called ({@link assertProduct}).
   */
  sgemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    A: Float32Array,
    lda: number,
    B: Float32Array,
    ldb: number,
    beta: number,
    C: Float32Array,
    ldc: number,
  ): void;
}

/**
 * Throws unless `a`, read as `rows` rows of `cols` floats, each `ld` floats after the one before (row-major), lies
 * inside the array: OpenBLAS reads and writes through the bare pointer, so a product that does not fit its arrays
 * would write past the end of C into whatever memory follows it.
 */
function assertMatrix(a: Float32Array, rows: number, cols: number, ld: number, what: string): void {
  if (!Number.isInteger(ld) || ld < Math.max(1, cols) || ld > 0x7fffffff) {
    throw new RangeError(`${what} has ${cols} columns, but its leading dimension is ${ld}`);
  }
  const reach = rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0;
  if (reach > a.length) throw new RangeError(`${what} holds ${a.length} floats, the product reaches ${reach}`);
}

/** The checks of {@link Blas.sgemm}: sizes, each operand inside its array, and C apart from A and B. */
function assertProduct(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  A: Float32Array,
  lda: number,
  B: Float32Array,
  ldb: number,
  C: Float32Array,
  ldc: number,
): void {
  for (const [v, name] of [[M, "M"], [N, "N"], [K, "K"]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) throw new RangeError(`sgemm: ${name} = ${v}`);
  }
  assertMatrix(A, transA ? K : M, transA ? M : K, lda, "sgemm: A");
  assertMatrix(B, transB ? N : K, transB ? K : N, ldb, "sgemm: B");
  assertMatrix(C, M, N, ldc, "sgemm: C");
  for (const [X, name] of [[A, "A"], [B, "B"]] as const) {
    const overlap = X.buffer === C.buffer && X.byteOffset < C.byteOffset + C.byteLength &&
      C.byteOffset < X.byteOffset + X.byteLength;
    if (overlap && M > 0 && N > 0) throw new RangeError(`sgemm: C overlaps ${name}`);
  }
}

let cached: { blas: Blas | null; why: string } | undefined;

/** Runs a call into native code inside this worker's gate (see {@link gateNativeCalls}). */
function gated<T>(call: () => T): T {
  const gate = nativeGate;
  if (gate) {
    // In, then look at the gate: a pool that closed has counted this call or will see it refused.
    Atomics.add(gate, 0, 1);
    if (Atomics.load(gate, 1)) {
      Atomics.sub(gate, 0, 1);
      Atomics.notify(gate, 0);
      throw new Error("OpenBLAS: this worker's pool was closed");
    }
  }
  try {
    return call();
  } finally {
    if (gate) {
      Atomics.sub(gate, 0, 1);
      Atomics.notify(gate, 0);
    }
  }
}

type Native = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Throws unless `a` holds `len` elements. */
function assertLength(a: { length: number }, len: number, what: string): void {
  if (!(Number.isInteger(len) && len >= 0 && len <= a.length)) {
    throw new RangeError(`${what} holds ${a.length} numbers, the call reaches ${len}`);
  }
}

function linalgOf(
  sgemv: NonNullable<Native["cblas_sgemv"]>,
  dsyrk: NonNullable<Native["cblas_dsyrk"]>,
  dposv: NonNullable<Native["dposv_"]>,
): Linalg {
  const int = (v: number) => new Int32Array([v]);
  return {
    sgemv(trans, M, N, alpha, A, lda, x, beta, y) {
      assertMatrix(A, M, N, lda, "sgemv: A");
      assertLength(x, trans ? M : N, "sgemv: x");
      assertLength(y, trans ? N : M, "sgemv: y");
      gated(() => sgemv(ROW_MAJOR, trans ? TRANS : NO_TRANS, M, N, alpha, A, lda, x, 1, beta, y, 1));
    },
    dsyrk(N, K, alpha, A, beta, C) {
      assertLength(A, K * N, "dsyrk: A");
      assertLength(C, N * N, "dsyrk: C");
      if (K > 0 && N > 0) gated(() => dsyrk(ROW_MAJOR, UPPER, TRANS, N, K, alpha, A, N, beta, C, N));
    },
    posv(N, H, b) {
      assertLength(H, N * N, "posv: H");
      assertLength(b, N, "posv: b");
      // Column-major LAPACK reading the row-major upper triangle as its lower one ("L").
      const info = int(0);
      gated(() => dposv(new Uint8Array([76]), int(N), int(1), H, int(N), b, int(N), info));
      return info[0] === 0;
    },
  };
}

/**
 * This worker's gate to OpenBLAS, in memory shared with the thread that started it (lib/compute/pool.ts): slot 0
 * counts the calls in flight, slot 1 is set when the worker's pool closes, after which no call enters. A process must
 * not exit while another of its threads is inside OpenBLAS (measured: a process that exits while two workers multiply
 * crashes, a segmentation fault or glibc's heap check, within a few dozen exits), and a terminated worker does not
 * stop at once: it can go on calling native code until it next returns to its event loop. Null in a thread nobody
 * waits for.
 */
let nativeGate: Int32Array | null = null;

/** Counts this thread's calls into OpenBLAS at `gate` and refuses new ones once its slot 1 is set (see above). */
export function gateNativeCalls(gate: Int32Array): void {
  nativeGate = gate;
}

/**
 * Opens OpenBLAS once per thread, or answers why it is not used: `EXEMPLAR_BLAS=off`, no
 * library found, or no `--allow-ffi` permission.
 */
export function openBlas(): { blas: Blas | null; why: string } {
  if (cached) return cached;
  let setting: string | undefined;
  try {
    setting = Deno.env.get("EXEMPLAR_BLAS");
  } catch {
    setting = undefined;
  }
  if (setting === "off") return cached = { blas: null, why: "EXEMPLAR_BLAS=off" };
  const names = setting ? [setting] : BLAS_CANDIDATES;
  const errors: string[] = [];
  for (const path of names) {
    let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      lib = Deno.dlopen(path, SYMBOLS);
    } catch (e) {
      const msg = (e as Error).message.split("\n")[0];
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
        return cached = { blas: null, why: `no permission to load native libraries (${msg})` };
      }
      errors.push(`${path}: ${msg}`);
      continue;
    }
    const s = lib.symbols;
    s.openblas_set_num_threads?.(1);
    const cstr = (p: Deno.PointerValue) => p ? new Deno.UnsafePointerView(p).getCString() : "";
    const blas: Blas = {
      path,
      setThreads: (n) => s.openblas_set_num_threads?.(n),
      config: s.openblas_get_config
        ? `${cstr(s.openblas_get_config())}, kernels ${cstr(s.openblas_get_corename?.() ?? null)}`
        : "CBLAS",
      sgemm: (ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) => {
        assertProduct(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
        gated(() =>
          s.cblas_sgemm(
            ROW_MAJOR,
            ta ? TRANS : NO_TRANS,
            tb ? TRANS : NO_TRANS,
            M,
            N,
            K,
            alpha,
            A,
            lda,
            B,
            ldb,
            beta,
            C,
            ldc,
          )
        );
      },
      linalg: s.cblas_sgemv && s.cblas_dsyrk && s.dposv_ ? linalgOf(s.cblas_sgemv, s.cblas_dsyrk, s.dposv_) : null,
    };
    return cached = { blas, why: "" };
  }
  if (setting) {
    throw new UserError(`EXEMPLAR_BLAS=${setting}: cannot open it (${errors[0]}); set it to off to use XNNPACK`);
  }
  return cached = { blas: null, why: "no OpenBLAS library found (Debian: apt install libopenblas0-pthread)" };
}

/** Geometry of one NHWC convolution with an [kh, kw, ci, co] filter. */
export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  padTop: number;
  padLeft: number;
}

/**
 * Floats of im2col scratch (8 MB): the rows of a convolution are processed in chunks of at most this many, so that a
 * chunk is still in cache when sgemm reads it (measured: 4 MB-8 MB chunks run conv2 of the small network 15 % faster
 * than 16 MB ones; below 2 MB the large network's 6400-wide rows lose as much).
 *
 * The size is fixed, not fitted to free memory: OpenBLAS blocks a product's sums by its shape, so the same rows in
 * chunks of another size come out different in their last bits (within float32's rounding). With one size, the
 * chunks of a convolution depend on its shape alone: a run continued from a checkpoint computes the same bits as the
 * run it continues, with one gradient worker or with the batch split between two.
 */
export const CHUNK_FLOATS = 1 << 21;
let scratch = new Float32Array(0);

function scratchOf(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch.subarray(0, n);
}

/**
 * Writes rows [r0, r1) of the im2col matrix of x into col: row (n, oy, ox) holds the input window
 * of that output position, laid out [ky, kx, ci] like the filter's rows; outside the image it is zero.
 */
export function im2col(x: Float32Array, g: ConvGeometry, r0: number, r1: number, col: Float32Array): void {
  const { inH: H, inW: W, inC: C, outH, outW, kh, kw, strideH, strideW, padTop, padLeft } = g;
  const rowLen = kh * kw * C, runLen = kw * C;
  const perImage = outH * outW;
  let o = 0;
  for (let r = r0; r < r1; r++) {
    const n = Math.floor(r / perImage), p = r - n * perImage;
    const oy = Math.floor(p / outW), ox = p - oy * outW;
    const x0 = ox * strideW - padLeft, a = Math.max(0, x0), b = Math.min(W, x0 + kw);
    for (let ky = 0; ky < kh; ky++, o += runLen) {
      const iy = oy * strideH - padTop + ky;
      if (iy < 0 || iy >= H || b <= a) {
        col.fill(0, o, o + runLen);
        continue;
      }
      if (a > x0) col.fill(0, o, o + (a - x0) * C);
      const s = ((n * H + iy) * W + a) * C, len = (b - a) * C, d = o + (a - x0) * C;
      // Short runs (the first layer's 3 channels) copy faster in a loop than through a subarray.
      if (len < 64) { for (let i = 0; i < len; i++) col[d + i] = x[s + i]; }
      else col.set(x.subarray(s, s + len), d);
      if (b < x0 + kw) col.fill(0, o + (b - x0) * C, o + runLen);
    }
  }
  if (o !== (r1 - r0) * rowLen) throw new Error("im2col: row length mismatch");
}

function isPlainInput(g: ConvGeometry): boolean {
  return g.kh === 1 && g.kw === 1 && g.strideH === 1 && g.strideW === 1 && g.padTop === 0 && g.padLeft === 0 &&
    g.outH === g.inH && g.outW === g.inW;
}

/** Calls `gemm` for each chunk of rows [r0, r1) of im2col(x), written into scratch memory. */
function eachChunk(
  x: Float32Array,
  g: ConvGeometry,
  chunkFloats: number,
  gemm: (r0: number, r1: number, col: Float32Array) => void,
): void {
  const K = g.kh * g.kw * g.inC, M = g.batch * g.outH * g.outW;
  const step = Math.max(1, Math.floor(chunkFloats / K));
  for (let r0 = 0; r0 < M; r0 += step) {
    const r1 = Math.min(M, r0 + step);
    const col = scratchOf((r1 - r0) * K);
    im2col(x, g, r0, r1, col);
    gemm(r0, r1, col);
  }
}

/** y[rows, co] = im2col(x) w[kh*kw*ci, co]. */
export function convForward(
  blas: Blas,
  x: Float32Array,
  w: Float32Array,
  y: Float32Array,
  g: ConvGeometry,
  chunkFloats = CHUNK_FLOATS,
): void {
  const K = g.kh * g.kw * g.inC, M = g.batch * g.outH * g.outW, N = g.outC;
  if (isPlainInput(g)) return blas.sgemm(false, false, M, N, K, 1, x, K, w, N, 0, y, N);
  eachChunk(x, g, chunkFloats, (r0, r1, col) => {
    blas.sgemm(false, false, r1 - r0, N, K, 1, col, K, w, N, 0, y.subarray(r0 * N, r1 * N), N);
  });
}

/** dw[kh*kw*ci, co] = im2col(x)^T dy[rows, co]. */
export function convFilterGrad(
  blas: Blas,
  x: Float32Array,
  dy: Float32Array,
  dw: Float32Array,
  g: ConvGeometry,
  chunkFloats = CHUNK_FLOATS,
): void {
  const K = g.kh * g.kw * g.inC, M = g.batch * g.outH * g.outW, N = g.outC;
  if (isPlainInput(g)) return blas.sgemm(true, false, K, N, M, 1, x, K, dy, N, 0, dw, N);
  eachChunk(x, g, chunkFloats, (r0, r1, col) => {
    blas.sgemm(true, false, K, N, r1 - r0, 1, col, K, dy.subarray(r0 * N, r1 * N), N, r0 === 0 ? 0 : 1, dw, N);
  });
}

/** The filter flipped in space with its channel axes swapped: [kh, kw, ci, co] -> [kh, kw, co, ci]. */
export function flipFilter(w: Float32Array, kh: number, kw: number, ci: number, co: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      const src = ((kh - 1 - y) * kw + (kw - 1 - x)) * ci * co, dst = (y * kw + x) * co * ci;
      for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) out[dst + o * ci + i] = w[src + i * co + o];
    }
  }
  return out;
}
