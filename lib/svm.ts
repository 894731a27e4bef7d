/**
 * The linear SVM of the evaluation (paper §5.1; PAPER.md "Evaluation"): one-vs-rest,
 * L2-regularised, squared hinge loss, with a bias term, trained by dual
 * coordinate descent - the algorithm of liblinear (Hsieh et al., ICML 2008;
 * liblinear's solver 1, `L2R_L2LOSS_SVC_DUAL`, which is also the default of
 * scikit-learn's `LinearSVC`).
 *
 * For one binary problem with labels y_i in {-1, +1} it minimises
 * 1/2 |w|^2 + C sum_i max(0, 1 - y_i w.x_i)^2, where every x_i carries an
 * extra constant feature B so that w's last weight is the bias (liblinear's
 * `-B`; the release uses B = 5). The dual is solved one coordinate at a time
 * in a random order, with liblinear's stopping rule (the spread of projected
 * gradients below `tol`, 0.1 by default) and its shrinking heuristic.
 *
 * Each coordinate step needs the margin w.x_i of its example. liblinear keeps w
 * and computes the margin as a dot product over the `dim` features (the
 * primal form). Where the examples are few enough for their n x n Gram matrix
 * K = X X^T + B^2 (float32) to fit in memory, the same steps keep every margin
 * instead (the Gram form): a step that changes alpha_i adds its change times
 * row i of K to the n margins, and a step that changes nothing costs nothing,
 * where the primal form pays a dot product for every step. K is computed once
 * per training set (by OpenBLAS where it is installed) and serves every class
 * and every C; w = sum_i alpha_i y_i x_i is recovered at the end. Both forms take
 * the same steps in the same order; they differ in the rounding of the margins
 * only.
 *
 * Where the examples far outnumber the features (CIFAR-10: 50,000 images of 1,024 or 3,072 features) and OpenBLAS
 * with LAPACK is installed, the same objective is minimised in the primal by Newton's method instead (the Newton
 * form, lib/svm_newton.ts): a few steps, each a Cholesky solve of a features x features system, where the dual's
 * passes over the examples would number in the hundreds.
 *
 * The inner loops of both dual forms (a margin as a dot product, w or the margins
 * updated from a row) run as WebAssembly SIMD kernels (lib/svm_kernels.ts) over
 * one memory that holds the training set. The classes of one-vs-rest are
 * independent problems, each with its own random order (a stream of the seed
 * and the class), so {@link SVMWorkers} solves them in parallel threads over
 * that memory, shared, with the same results as {@link trainSVM} in one.
 *
 * @module
 */
import { UserError } from "./util/errors.ts";
import { Rng } from "./util/rng.ts";
import { METHODS } from "./presets.ts";
import { type Blas, type Linalg, openBlas } from "./compute/blas.ts";
import { rowDots } from "./util/rowdots.ts";
import { WorkerPool } from "./compute/pool.ts";
import { Arena, kernels } from "./svm_kernels.ts";
import { crossProducts, type NewtonProblem, solveNewtonPath } from "./svm_newton.ts";

/** A set of feature vectors: `n` rows of `dim` floats. */
export interface Features {
  /** Rows. */
  n: number;
  /** Floats per row. */
  dim: number;
  /** The rows, one after another. */
  x: Float32Array;
}

/** A trained one-vs-rest linear SVM. */
export interface LinearSVM {
  /** Classes (one binary problem each). */
  classes: number;
  /** Feature dimension. */
  dim: number;
  /** classes x (dim + 1): weights, then the bias weight (multiplying B). */
  w: Float64Array;
  /** The bias feature B. */
  bias: number;
  /** The C it was trained with. */
  C: number;
}

/**
 * How a problem is solved (see the module notes): dual coordinate descent keeping the margins through K (`gram`) or
 * through w (`primal`), or Newton's method in the primal (`newton`); `auto` picks ({@link formOf}).
 */
export type SVMForm = "auto" | "gram" | "primal" | "newton";

/** Options of {@link trainSVM}. */
export interface SVMOptions {
  /** The cost of a margin violation. */
  C: number;
  /** The constant bias feature (liblinear's -B). */
  bias?: number;
  /** Stopping tolerance (liblinear's eps, 0.1). */
  tol?: number;
  /** At most this many passes over the data. */
  maxIter?: number;
  /** Seed of the coordinate order. */
  seed?: number;
  /** The form (default `auto`). */
  form?: SVMForm;
  /** The BLAS for the Gram matrix; default: OpenBLAS where installed (null: JavaScript). */
  blas?: Blas | null;
}

/** The largest Gram matrix `auto` builds (float32 bytes): 16,384 examples. */
export const GRAM_MAX_BYTES = 1 << 30;

function checkC(C: number): void {
  if (!(C > 0 && Number.isFinite(C))) throw new UserError(`C = ${C}: the SVM's C must lie in (0, inf)`);
}

/** `auto` picks the Newton form where the examples number at least this many times the features (and the bias). */
export const NEWTON_MIN_RATIO = 2;

/**
 * The form training on `n` examples of `dim` features uses: the one asked for, or for `auto` the Newton form where
 * the examples are at least {@link NEWTON_MIN_RATIO} times the features and `linalg` is there (OpenBLAS with LAPACK),
 * else the Gram form where K fits in {@link GRAM_MAX_BYTES}, else the primal form.
 */
export function formOf(
  n: number,
  dim: number,
  form: SVMForm = "auto",
  linalg: Linalg | null = openBlas().blas?.linalg ?? null,
): Exclude<SVMForm, "auto"> {
  if (form === "newton" && !linalg) {
    throw new UserError(`the SVM's Newton form needs OpenBLAS with LAPACK (${openBlas().why || "not found"})`);
  }
  if (form !== "auto") return form;
  if (linalg && n >= NEWTON_MIN_RATIO * (dim + 1)) return "newton";
  return n * n * 4 <= GRAM_MAX_BYTES ? "gram" : "primal";
}

/**
 * One training set as the solver sees it: the rows, |x_i|^2 + B^2, the Gram matrix in the Gram form, and scratch
 * memory for one solver; all of them in one WebAssembly memory (lib/svm_kernels.ts), made by {@link dualProblem}.
 */
export interface DualProblem {
  /** Rows. */
  n: number;
  /** Features per row. */
  dim: number;
  /** The bias feature B. */
  bias: number;
  /** The memory that holds the arrays below. */
  memory: WebAssembly.Memory;
  /** The rows (n x dim). */
  x: Float32Array;
  /** |x_i|^2 + B^2 for every row (float64). */
  norms: Float64Array;
  /** The Gram form's K = X X^T + B^2 (n x n), or null. */
  gram: Float32Array | null;
  /** The Newton form's X~^T X~ ((dim + 1)^2, its upper triangle; lib/svm_newton.ts), or null. */
  xtx: Float64Array | null;
  /** n + dim + 1 float64 the solver works in (the margins, then w). */
  scratch: Float64Array;
}

/** What {@link solveDual} returns. */
export interface DualSolution {
  /** The dual variables. */
  alpha: Float64Array;
  /** w = sum_i alpha_i y_i (x_i, B): dim weights, then the bias weight. */
  w: Float64Array;
  /** Passes over the (active) coordinates. */
  iterations: number;
}

/**
 * Solves one binary problem (labels +-1) by dual coordinate descent, in the problem's form; `rng` orders the
 * coordinates.
 */
export function solveDual(
  p: DualProblem,
  sign: Int8Array,
  C: number,
  tol: number,
  maxIter: number,
  rng: Rng,
  start?: Float64Array,
): DualSolution {
  const { n, dim, x, gram: K, bias: B } = p, k = kernels(p.memory);
  const alpha = start ? start.slice() : new Float64Array(n);
  const Dii = 1 / (2 * C);
  // The diagonal of the dual's Hessian: |x_i|^2 + B^2 + 1 / 2C.
  const Q = Float64Array.from(p.norms, (v) => v + Dii);
  // Primal form: w (and its last weight, the bias's). Gram form: margin[i] = w.(x_i, B) for every i.
  const margin = p.scratch.subarray(0, n).fill(0), w = p.scratch.subarray(n, n + dim + 1).fill(0);
  // A warm start (the solution at a smaller C: every alpha >= 0 is feasible at any C) begins from its w.
  for (let i = 0; start && i < n; i++) {
    if (alpha[i] === 0) continue;
    const d = alpha[i] * sign[i];
    if (K) k.axpy(d, K, i * n, margin, 0, n);
    else {
      k.axpy(d, x, i * dim, w, 0, dim);
      w[dim] += d * B;
    }
  }
  const index = new Int32Array(n);
  for (let i = 0; i < n; i++) index[i] = i;
  let active = n;
  let PGmaxOld = Infinity;
  let iter = 0;
  for (; iter < maxIter; iter++) {
    let PGmax = -Infinity, PGmin = Infinity;
    for (let i = 0; i < active; i++) {
      const j = i + rng.int(active - i);
      [index[i], index[j]] = [index[j], index[i]];
    }
    for (let s = 0; s < active; s++) {
      const i = index[s], yi = sign[i];
      const wx = K ? margin[i] : w[dim] * B + k.dot(w, 0, x, i * dim, dim);
      const G = yi * wx - 1 + Dii * alpha[i];
      let PG = 0;
      if (alpha[i] === 0) {
        if (G > PGmaxOld) {
          // Shrink: this variable will stay at its bound.
          active--;
          [index[s], index[active]] = [index[active], index[s]];
          s--;
          continue;
        }
        if (G < 0) PG = G;
      } else PG = G;
      PGmax = Math.max(PGmax, PG);
      PGmin = Math.min(PGmin, PG);
      if (Math.abs(PG) > 1e-12) {
        const old = alpha[i];
        alpha[i] = Math.max(old - G / Q[i], 0);
        const d = (alpha[i] - old) * yi;
        if (d === 0) continue;
        if (K) k.axpy(d, K, i * n, margin, 0, n);
        else {
          k.axpy(d, x, i * dim, w, 0, dim);
          w[dim] += d * B;
        }
      }
    }
    if (PGmax - PGmin <= tol) {
      if (active === n) break;
      // Converged on the active set: check everything once more.
      active = n;
      PGmaxOld = Infinity;
      continue;
    }
    PGmaxOld = PGmax <= 0 ? Infinity : PGmax;
  }
  if (K) {
    // w = sum_i alpha_i y_i (x_i, B).
    let b = 0;
    for (let i = 0; i < n; i++) {
      if (alpha[i] === 0) continue;
      k.axpy(alpha[i] * sign[i], x, i * dim, w, 0, dim);
      b += alpha[i] * sign[i];
    }
    w[dim] = b * B;
  }
  return { alpha, w: w.slice(), iterations: iter };
}

/**
 * A training set in the solvers' memory (shared between threads): the rows, |x_i|^2 + B^2, room for the Gram matrix
 * in the Gram form or X~^T X~ in the Newton form (filled by {@link fillGram}) and scratch memory for `solvers`
 * solvers at once (the problem holds the first; `scratch` all).
 */
export function dualProblem(
  f: Features,
  bias: number,
  form: Exclude<SVMForm, "auto">,
  solvers = 1,
): { problem: DualProblem; scratch: Float64Array[] } {
  const { n, dim } = f, gram = form === "gram";
  const arena = new Arena(Arena.bytes([n * dim, gram ? n * n : 0], [n, ...Array(solvers).fill(n + dim + 1)]));
  const x = arena.f32(n * dim);
  x.set(f.x.subarray(0, n * dim));
  const norms = arena.f64(n);
  for (let i = 0; i < n; i++) {
    let s = bias * bias;
    for (let j = i * dim; j < (i + 1) * dim; j++) s += x[j] * x[j];
    // (A NaN or an infinity anywhere in the row makes its squared norm one.)
    if (!Number.isFinite(s)) throw new UserError(`feature vector ${i} holds a value that is not a finite number`);
    norms[i] = s;
  }
  const K = gram ? arena.f32(n * n) : null;
  const scratch = Array.from({ length: solvers }, () => arena.f64(n + dim + 1));
  const xtx = form === "newton" ? new Float64Array(new SharedArrayBuffer(8 * (dim + 1) ** 2)) : null;
  return { problem: { n, dim, bias, memory: arena.memory, x, norms, gram: K, xtx, scratch: scratch[0] }, scratch };
}

/**
 * Rows of the Gram matrix computed per block (the upper triangle and the diagonal block): in JavaScript, blocks whose
 * rows stay in cache; OpenBLAS, larger ones (it blocks for the cache itself).
 */
const GRAM_BLOCK = 64, GRAM_BLOCK_BLAS = 512;

/** Computes rows [r0, r1) of X X^T from column r0 on (the upper triangle and the block's diagonal) into k. */
function gramBlock(
  x: Float32Array,
  n: number,
  dim: number,
  r0: number,
  r1: number,
  k: Float32Array,
  blas: Blas | null,
) {
  rowDots({ x, r0, r1 }, { x, r0, r1: n }, dim, k.subarray(r0 * n + r0), n, blas);
}

/** Completes K from its upper triangle: mirrors it and adds B^2. */
function finishGram(k: Float32Array, n: number, B: number): void {
  const B2 = B * B, T = 64;
  for (let i0 = 0; i0 < n; i0 += T) {
    for (let j0 = i0; j0 < n; j0 += T) {
      const i1 = Math.min(n, i0 + T), j1 = Math.min(n, j0 + T);
      for (let i = i0; i < i1; i++) {
        for (let j = Math.max(j0, i); j < j1; j++) k[j * n + i] = k[i * n + j] = k[i * n + j] + B2;
      }
    }
  }
}

/** K = X X^T + B^2 (n x n, float32) of a training set, the Gram form's matrix; `out` may hold it (n x n floats). */
export function gramMatrix(
  f: Features,
  bias: number,
  blas: Blas | null = openBlas().blas,
  out: Float32Array = new Float32Array(f.n * f.n),
): Float32Array {
  const { n, dim, x } = f;
  const step = blas ? GRAM_BLOCK_BLAS : GRAM_BLOCK;
  for (let r = 0; r < n; r += step) gramBlock(x, n, dim, r, Math.min(n, r + step), out, blas);
  finishGram(out, n, bias);
  return out;
}

/**
 * Computes the Gram matrix of a problem made by {@link dualProblem} in the Gram form (with `blas`, or in JavaScript
 * where null), or X~^T X~ in the Newton form, in this thread.
 */
export function fillGram(p: DualProblem, blas: Blas | null): void {
  if (p.gram) gramMatrix(p, p.bias, blas, p.gram);
  if (p.xtx) crossProducts(p as NewtonProblem, linalg(), p.xtx);
}

/** This thread's OpenBLAS linear algebra, which a problem in the Newton form needs. */
function linalg(): Linalg {
  const la = openBlas().blas?.linalg;
  if (!la) throw new Error("the SVM's Newton form without OpenBLAS's LAPACK in this thread");
  return la;
}

/** The floats of one class's start in a path: its dual variables, or in the Newton form its weights. */
function startLength(p: DualProblem): number {
  return p.xtx ? p.dim + 1 : p.n;
}

function checkTraining(f: Features, labels: Int32Array, opts: SVMOptions): void {
  checkC(opts.C);
  if (labels.length !== f.n) throw new Error(`${labels.length} labels for ${f.n} feature vectors`);
}

/** The +-1 labels of class c against the rest. */
function signsOf(labels: Int32Array, c: number): Int8Array {
  return Int8Array.from(labels, (l) => (l === c ? 1 : -1));
}

/** The random order of class c's problem. */
const classRng = (seed: number, c: number) => new Rng(seed, 555, c);

/** Trains a one-vs-rest linear SVM on features with labels 0..classes-1, in this thread. */
export function trainSVM(f: Features, labels: Int32Array, classes: number, opts: SVMOptions): LinearSVM {
  checkTraining(f, labels, opts);
  const { problem } = dualProblem(f, opts.bias ?? METHODS.paper.eval.svmBias.stl10, formOf(f.n, f.dim, opts.form));
  fillGram(problem, opts.blas === undefined ? openBlas().blas : opts.blas);
  return trainWith(problem, labels, classes, opts);
}

function trainWith(p: DualProblem, labels: Int32Array, classes: number, opts: SVMOptions): LinearSVM {
  return pathWith(p, labels, classes, [opts.C], opts)[0];
}

/** The indices of `Cs` in increasing C (ties in their order). */
export function increasing(Cs: number[]): number[] {
  return Cs.map((_, i) => i).sort((a, b) => Cs[a] - Cs[b] || a - b);
}

/**
 * Class c's problem solved at each C of `Cs` (increasing) in turn, each from the dual solution at the C before (the
 * first from `alpha`, when it holds one: zeros are a cold start), as liblinear's search for C does: the dual's only
 * constraint, alpha >= 0, does not depend on C, so the last solution is a feasible start, and usually a close one.
 * Each C's coordinates are visited in the order of a fresh `rng()` (as when each is solved alone), so a path solved
 * in parts gives what it gives in one. Writes each C's weights with `put` and leaves the last solution in `alpha`.
 * In the Newton form `alpha` holds the weights instead (dim + 1), each C starting from the weights at the C before.
 */
function solveClassPath(
  p: DualProblem,
  sign: Int8Array,
  Cs: number[],
  tol: number,
  maxIter: number,
  rng: () => Rng,
  alpha: Float64Array,
  put: (k: number, w: Float64Array) => void,
): void {
  if (p.xtx) {
    solveNewtonPath(p as NewtonProblem, sign, Cs, alpha, linalg(), put);
    return;
  }
  let start: Float64Array | undefined = alpha.some((a) => a !== 0) ? alpha : undefined;
  for (let k = 0; k < Cs.length; k++) {
    const s = solveDual(p, sign, Cs[k], tol, maxIter, rng(), start);
    put(k, s.w);
    start = s.alpha;
  }
  if (start) alpha.set(start);
}

/** The one-vs-rest SVMs of one training set at every C of `Cs` (in that order), by warm-started paths of C. */
function pathWith(p: DualProblem, labels: Int32Array, classes: number, Cs: number[], opts: Omit<SVMOptions, "C">) {
  const order = increasing(Cs), sorted = order.map((i) => Cs[i]), D = p.dim + 1;
  const w = Cs.map(() => new Float64Array(classes * D));
  for (let c = 0; c < classes; c++) {
    solveClassPath(
      p,
      signsOf(labels, c),
      sorted,
      opts.tol ?? 0.1,
      opts.maxIter ?? 1000,
      () => classRng(opts.seed ?? 1, c),
      new Float64Array(startLength(p)),
      (k, wk) => w[order[k]].set(wk, c * D),
    );
  }
  return Cs.map((C, i): LinearSVM => ({ classes, dim: p.dim, w: w[i], bias: p.bias, C }));
}

/** The decision values of row i (each summed in float64 in the order of the features), four classes at a time. */
function exactScores(m: LinearSVM, x: Float32Array, i: number, score: Float64Array): void {
  const D = m.dim + 1, dim = m.dim, W = m.w, B = m.bias, o = i * dim;
  let c = 0;
  for (; c + 4 <= m.classes; c += 4) {
    const w0 = c * D, w1 = w0 + D, w2 = w1 + D, w3 = w2 + D;
    let s0 = W[w0 + dim] * B, s1 = W[w1 + dim] * B, s2 = W[w2 + dim] * B, s3 = W[w3 + dim] * B;
    for (let j = 0; j < dim; j++) {
      const v = x[o + j];
      s0 += W[w0 + j] * v;
      s1 += W[w1 + j] * v;
      s2 += W[w2 + j] * v;
      s3 += W[w3 + j] * v;
    }
    score[c] = s0, score[c + 1] = s1, score[c + 2] = s2, score[c + 3] = s3;
  }
  for (; c < m.classes; c++) {
    const wo = c * D;
    let s = W[wo + dim] * B;
    for (let j = 0; j < dim; j++) s += W[wo + j] * x[o + j];
    score[c] = s;
  }
}

/** The first index of the largest value. */
function argmax(v: Float64Array): number {
  let best = -Infinity, arg = 0;
  for (let c = 0; c < v.length; c++) if (v[c] > best) best = v[c], arg = c;
  return arg;
}

/** Rows scored per OpenBLAS call in {@link predictSVM}. */
const PREDICT_ROWS = 1024;

/**
 * Predicted class of every row: the class with the largest decision value w_c.(x, B) (ties: the first class), each
 * value summed in float64. With OpenBLAS (`blas`), the values are first computed in float32 by `sgemm`, with a bound
 * on their error, 2 (dim + 2) 2^-24 sum_j |w_cj x_j| (the rounding of w to float32 and the float32 sums, in any order;
 * Higham, "Accuracy and Stability of Numerical Algorithms", §3.1); a row whose best class leads every other by more
 * than both bounds has that class, and every other row is scored in float64: the classes are those of float64 scores
 * throughout, ties included. (The bound also allows for values below float32's normal range.)
 */
export function predictSVM(m: LinearSVM, f: Features, blas: Blas | null = openBlas().blas): Int32Array {
  if (f.dim !== m.dim) throw new Error(`features of ${f.dim} dimensions for an SVM of ${m.dim}`);
  const out = new Int32Array(f.n), K = m.classes, dim = m.dim, D = dim + 1;
  const score = new Float64Array(K);
  if (!blas || dim === 0) {
    for (let i = 0; i < f.n; i++) {
      exactScores(m, f.x, i, score);
      out[i] = argmax(score);
    }
    return out;
  }
  const w32 = new Float32Array(K * dim), wAbs = new Float32Array(K * dim), bias = new Float64Array(K);
  for (let c = 0; c < K; c++) {
    for (let j = 0; j < dim; j++) w32[c * dim + j] = m.w[c * D + j], wAbs[c * dim + j] = Math.abs(m.w[c * D + j]);
    bias[c] = m.w[c * D + dim] * m.bias;
  }
  let negative = false, xMax = 0;
  for (let i = 0; i < f.x.length; i++) negative ||= f.x[i] < 0, xMax = Math.max(xMax, Math.abs(f.x[i]));
  const rows = Math.min(PREDICT_ROWS, f.n);
  const s32 = new Float32Array(rows * K), mag = new Float32Array(rows * K);
  const xAbs = negative ? new Float32Array(rows * dim) : null;
  // The bound's factor, with 1 % for the float32 sums of |w_cj x_j| themselves; and what underflow below float32's
  // normal range may add (2^-150 per rounding).
  const eps = 2.02 * (dim + 2) * 2 ** -24, tiny = (dim + 2) * 2 ** -148 * (2 + xMax);
  for (let r0 = 0; r0 < f.n; r0 += rows) {
    const r1 = Math.min(f.n, r0 + rows);
    rowDots({ x: f.x, r0, r1 }, { x: w32, r0: 0, r1: K }, dim, s32, K, blas);
    if (xAbs) {
      for (let k = 0; k < (r1 - r0) * dim; k++) xAbs[k] = Math.abs(f.x[r0 * dim + k]);
      rowDots({ x: xAbs, r0: 0, r1: r1 - r0 }, { x: wAbs, r0: 0, r1: K }, dim, mag, K, blas);
    } else rowDots({ x: f.x, r0, r1 }, { x: wAbs, r0: 0, r1: K }, dim, mag, K, blas);
    for (let i = r0; i < r1; i++) {
      const o = (i - r0) * K;
      for (let c = 0; c < K; c++) score[c] = s32[o + c] + bias[c];
      const best = argmax(score), bound = eps * mag[o + best] + 2 * tiny;
      let sure = true;
      for (let c = 0; c < K && sure; c++) {
        sure = c === best || score[best] - score[c] > bound + eps * mag[o + c];
      }
      if (!sure) exactScores(m, f.x, i, score);
      out[i] = sure ? best : argmax(score);
    }
  }
  return out;
}

/** Fraction of correct predictions. */
export function accuracy(pred: Int32Array, labels: Int32Array): number {
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) ok++;
  return ok / pred.length;
}

/** Mean over classes of the per-class accuracy (the Caltech protocols). */
export function meanClassAccuracy(pred: Int32Array, labels: Int32Array, classes: number): number {
  const hit = new Float64Array(classes), tot = new Float64Array(classes);
  for (let i = 0; i < pred.length; i++) {
    tot[labels[i]]++;
    if (pred[i] === labels[i]) hit[labels[i]]++;
  }
  let s = 0, k = 0;
  for (let c = 0; c < classes; c++) if (tot[c] > 0) s += hit[c] / tot[c], k++;
  return s / k;
}

/** The rows `idx` of a feature set (and their labels). */
export function subset(f: Features, idx: ArrayLike<number>): Features {
  const x = new Float32Array(idx.length * f.dim);
  for (let i = 0; i < idx.length; i++) x.set(f.x.subarray(idx[i] * f.dim, (idx[i] + 1) * f.dim), i * f.dim);
  return { n: idx.length, dim: f.dim, x };
}

/** The validation scores of the C values tried, and the C chosen. */
export interface CChoice {
  /** The C with the best score (ties: the first tried). */
  C: number;
  /** Every C tried with its validation score. */
  scores: { C: number; accuracy: number }[];
}

function bestC(scores: { C: number; accuracy: number }[]): CChoice {
  let best = scores[0];
  for (const s of scores) if (s.accuracy > best.accuracy + 1e-12) best = s;
  return { C: best.C, scores };
}

/**
 * Chooses C by accuracy on a validation set; ties go to the first tried (the smaller C on a grid). Every C trains on
 * the same Gram matrix, each class's problems in increasing C from the solution at the C before.
 */
export function chooseC(
  train: Features,
  yTrain: Int32Array,
  valid: Features,
  yValid: Int32Array,
  classes: number,
  grid: number[] = METHODS.paper.eval.cGrid,
  bias: number = METHODS.paper.eval.svmBias.stl10,
  score: (p: Int32Array, y: Int32Array) => number = accuracy,
): CChoice {
  for (const C of grid) checkC(C);
  if (yTrain.length !== train.n) throw new Error(`${yTrain.length} labels for ${train.n} feature vectors`);
  const { problem: p } = dualProblem(train, bias, formOf(train.n, train.dim));
  fillGram(p, openBlas().blas);
  return bestC(
    pathWith(p, yTrain, classes, grid, {}).map((m) => ({ C: m.C, accuracy: score(predictSVM(m, valid), yValid) })),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// In parallel: the classes (and the C values) of one-vs-rest in worker threads, sharing the rows and K.

/** A request to an SVM worker. */
export type SVMJob =
  | {
    /** Rows [r0, r1) of a Gram matrix (their upper triangle), in JavaScript. */
    kind: "gram";
    x: Float32Array;
    n: number;
    dim: number;
    r0: number;
    r1: number;
    gram: Float32Array;
  }
  | {
    /**
     * The one-vs-rest problems at the C values `Cs` (increasing): the worker solves the next class no worker has taken
     * (`next[0]`, counted up by every worker) until none is left, each in the problem's scratch memory (which is this
     * worker's), at every C in turn, each from the solution at the C before, the first from row c of `alpha`
     * (classes x n, or classes x (dim + 1) weights in the Newton form; zeros: a cold start), where the last solution
     * is left; C number k's weights go to row
     * k * classes + c of `out`, and the class is counted done in `next[1]`.
     */
    kind: "path";
    problem: DualProblem;
    labels: Int32Array;
    classes: number;
    Cs: number[];
    tol: number;
    maxIter: number;
    seed: number;
    next: Int32Array;
    alpha: Float64Array;
    out: Float64Array;
  };

/** A worker's answer: the problems it solved. */
export type SVMAnswer = number;

/** What a worker does with a request (lib/svm_worker.ts). */
export function runSVMJob(job: SVMJob): SVMAnswer {
  if (job.kind === "gram") {
    gramBlock(job.x, job.n, job.dim, job.r0, job.r1, job.gram, null);
    return 0;
  }
  const D = job.problem.dim + 1, n = startLength(job.problem);
  for (let solved = 0;; solved++) {
    const c = Atomics.add(job.next, 0, 1);
    if (c >= job.classes) return solved;
    const { problem: p, Cs, classes, out } = job;
    const rng = () => classRng(job.seed, c), alpha = job.alpha.subarray(c * n, (c + 1) * n);
    solveClassPath(p, signsOf(job.labels, c), Cs, job.tol, job.maxIter, rng, alpha, (k, w) => {
      out.set(w, (k * classes + c) * D);
    });
    solved += Cs.length - 1;
    Atomics.add(job.next, 1, 1);
  }
}

/** A copy of `a` in shared memory. */
function shared<T extends Int32Array | Float64Array>(a: T): T {
  const s = new (a.constructor as { new (b: SharedArrayBuffer): T })(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

/**
 * A training set in the SVM workers' shared memory (made by {@link SVMWorkers.problem}): the rows, |x_i|^2 + B^2,
 * the Gram matrix in the Gram form, scratch memory for each worker, and the labels. Every C trained on it shares it.
 */
export interface WorkerProblem {
  /** The problem as one thread sees it (with the first worker's scratch memory). */
  problem: DualProblem;
  /** Each worker's scratch memory. */
  scratch: Float64Array[];
  /** The labels 0..classes-1 of the rows. */
  labels: Int32Array;
}

/**
 * Worker threads that train one-vs-rest SVMs: {@link trainSVM} and {@link chooseC} with the classes spread over the
 * workers, and the same results. The workers take the classes one after another, each the next one no worker has
 * taken, without waiting for this thread: work handed to them goes on while this thread does something else (scores
 * the last SVM). The Gram matrix is computed here with OpenBLAS where it is installed (one thread calls it), else in
 * the workers. Close it when done.
 */
export class SVMWorkers {
  #pool: WorkerPool<SVMJob, SVMAnswer>;
  #blas: Blas | null;
  #size: number;
  #solved = 0;

  /** Starts `size` workers (default: one per core); `blas` as in {@link SVMOptions}. */
  constructor(size: number = navigator.hardwareConcurrency, blas: Blas | null = openBlas().blas) {
    if (!(Number.isInteger(size) && size >= 1)) {
      throw new UserError(`${size} SVM workers: expected a whole number >= 1`);
    }
    this.#pool = new WorkerPool(new URL("./svm_worker.ts", import.meta.url), size, "svm");
    this.#blas = blas;
    this.#size = size;
  }

  /** The number of workers. */
  get size(): number {
    return this.#size;
  }

  /** Binary (one class against the rest) problems the workers have solved so far. */
  get solved(): number {
    return this.#solved;
  }

  /** Stops the workers; work not done is rejected. */
  close(): void {
    this.#pool.close();
  }

  /**
   * A training set in the workers' shared memory, with its Gram matrix in the Gram form or X~^T X~ in the Newton form
   * (`form`, default `auto`) and scratch memory for each worker.
   */
  async problem(f: Features, labels: Int32Array, bias: number, form: SVMForm = "auto"): Promise<WorkerProblem> {
    if (labels.length !== f.n) throw new Error(`${labels.length} labels for ${f.n} feature vectors`);
    const { n, dim } = f;
    const made = dualProblem(f, bias, formOf(n, dim, form, this.#blas?.linalg ?? null), this.size);
    const { x, gram, xtx } = made.problem;
    if (xtx || (gram && this.#blas)) fillGram(made.problem, this.#blas);
    else if (gram) {
      const rows: Promise<SVMAnswer>[] = [];
      for (let r = 0, k = 0; r < n; r += GRAM_BLOCK, k++) {
        const job: SVMJob = { kind: "gram", x, n, dim, r0: r, r1: Math.min(n, r + GRAM_BLOCK), gram };
        rows.push(this.#pool.call(k % this.size, job));
      }
      await Promise.all(rows);
      finishGram(gram, n, bias);
    }
    return { ...made, labels: shared(labels) };
  }

  /**
   * The one-vs-rest SVM of a training set with one C: its classes are handed to the workers at once (they start on
   * them as soon as they have finished the work handed to them before).
   */
  async solve(p: WorkerProblem, classes: number, C: number, opts: Omit<SVMOptions, "C"> = {}): Promise<LinearSVM> {
    return (await this.solvePath(p, classes, [C], undefined, opts))[0];
  }

  /**
   * The one-vs-rest SVMs of a training set at every C of `Cs` (returned in that order), each class's problems solved
   * in increasing C from the solution at the C before (see {@link chooseC}). `alpha` (classes x n float64 in shared
   * memory, from {@link SVMWorkers.pathStart}) carries the last solutions from one call to the next, so that a long
   * list of C can be solved a part at a time: give each call C values above the last call's. `onClass` hears how
   * many classes are done, as they are done.
   */
  async solvePath(
    p: WorkerProblem,
    classes: number,
    Cs: number[],
    alpha: Float64Array = this.pathStart(p, classes),
    opts: Omit<SVMOptions, "C"> = {},
    onClass?: (done: number, classes: number) => void,
  ): Promise<LinearSVM[]> {
    for (const C of Cs) checkC(C);
    const { problem, scratch, labels } = p, D = problem.dim + 1;
    if (alpha.length !== classes * startLength(problem)) {
      throw new Error(`${alpha.length} starting values for ${classes} x ${startLength(problem)}`);
    }
    const order = increasing(Cs), sorted = order.map((i) => Cs[i]);
    const next = new Int32Array(new SharedArrayBuffer(8)), out = shared(new Float64Array(Cs.length * classes * D));
    const job = (w: number): SVMJob => ({
      kind: "path",
      problem: { ...problem, scratch: scratch[w] },
      labels,
      classes,
      Cs: sorted,
      tol: opts.tol ?? 0.1,
      maxIter: opts.maxIter ?? 1000,
      seed: opts.seed ?? 1,
      next,
      alpha,
      out,
    });
    // Classes done, as the workers count them, every quarter of a second.
    let told = 0;
    const tell = () => {
      const done = Atomics.load(next, 1);
      if (done !== told) onClass?.(told = done, classes);
    };
    const timer = onClass ? setInterval(tell, 250) : undefined;
    let solved: number[];
    try {
      solved = await Promise.all(Array.from({ length: this.size }, (_, w) => this.#pool.call(w, job(w))));
    } finally {
      clearInterval(timer);
    }
    tell();
    this.#solved += solved.reduce((a, b) => a + b, 0);
    const models = new Array<LinearSVM>(Cs.length);
    order.forEach((i, k) => {
      models[i] = {
        classes,
        dim: problem.dim,
        w: out.slice(k * classes * D, (k + 1) * classes * D),
        bias: problem.bias,
        C: Cs[i],
      };
    });
    return models;
  }

  /** A cold start for {@link SVMWorkers.solvePath}: zeros, classes x n (Newton form: x (dim + 1)), in shared memory. */
  pathStart(p: WorkerProblem, classes: number): Float64Array {
    return new Float64Array(new SharedArrayBuffer(8 * classes * startLength(p.problem)));
  }

  /** {@link trainSVM} in the workers. */
  async train(f: Features, labels: Int32Array, classes: number, opts: SVMOptions): Promise<LinearSVM> {
    checkTraining(f, labels, opts);
    const p = await this.problem(f, labels, opts.bias ?? METHODS.paper.eval.svmBias.stl10, opts.form);
    return await this.solve(p, classes, opts.C, opts);
  }

  /** {@link chooseC} in the workers: the same C path, its classes spread over the workers. */
  async chooseC(
    train: Features,
    yTrain: Int32Array,
    valid: Features,
    yValid: Int32Array,
    classes: number,
    grid: number[] = METHODS.paper.eval.cGrid,
    bias: number = METHODS.paper.eval.svmBias.stl10,
    score: (p: Int32Array, y: Int32Array) => number = accuracy,
  ): Promise<CChoice> {
    for (const C of grid) checkC(C);
    const p = await this.problem(train, yTrain, bias);
    const models = await this.solvePath(p, classes, grid);
    return bestC(models.map((m) => ({ C: m.C, accuracy: score(predictSVM(m, valid), yValid) })));
  }
}

/**
 * start(i) for i = 0 .. n - 1, and use(the result, i) in that order, each item started before the last one is used:
 * while this thread uses item i (scores an SVM), the workers can work on item i + 1. A failure of either stops it,
 * and is thrown; the items started and not used are dropped.
 */
export async function pipelined<T>(
  n: number,
  start: (i: number) => Promise<T>,
  use: (result: T, i: number) => void | Promise<void>,
): Promise<void> {
  const started = (i: number) => {
    const p = start(i);
    // (A failure is thrown where the item is awaited; one never awaited, after an earlier failure, is dropped.)
    p.catch(() => {});
    return p;
  };
  let current = n > 0 ? started(0) : null;
  for (let i = 0; i < n; i++) {
    const next = i + 1 < n ? started(i + 1) : null;
    // A turn of the event loop: the next item's work reaches the workers before this thread is busy with item i.
    await new Promise((resolve) => setTimeout(resolve, 0));
    await use(await current!, i);
    current = next;
  }
}
