/**
 * The linear SVM's solver for many examples of few features (CIFAR-10's 50,000 training images): the problem of
 * lib/svm.ts (one class against the rest, L2-regularised squared hinge loss, a bias feature B), minimised in the
 * primal by Newton's method as Keerthi and DeCoste's modified finite Newton method does (JMLR 6, 2005; liblinear's
 * solver 2 minimises the same primal, by a trust-region Newton method with conjugate gradients).
 *
 * With x~_i = (x_i, B), f(w) = 1/2 |w|^2 + C sum_i max(0, 1 - y_i w.x~_i)^2 is piecewise quadratic: on the set I of
 * the examples inside the margin (y_i w.x~_i < 1) its gradient is g = w + 2C sum_{i in I} (w.x~_i - y_i) x~_i and its
 * Hessian H = 1 + 2C X~_I^T X~_I. Each step solves H s = -g (Cholesky, D x D with D = features + 1), finds the t that
 * minimises f(w + t s) exactly (f along a line is a one-dimensional piecewise quadratic), and moves w to w + t s. Once
 * I stops changing, the step lands on the exact minimum: the method ends after a finite number of steps, usually a
 * handful, whatever the conditioning of the features.
 *
 * Its cost is X~_I^T X~_I: n D^2 for all n examples. That matrix depends on I alone, not on w or C, so it is kept from
 * one step to the next (and from one C to the next) and changed only by the examples that enter or leave I. At w = 0
 * every example is in I, and X~^T X~, computed once per training set ({@link crossProducts}), serves every class.
 * With n >> D this beats the dual coordinate descent, whose passes over 45,000 rows of raw pixels number in the
 * hundreds; with n near D or below it does not (lib/svm.ts `formOf` chooses).
 *
 * Margins and gradients are float32 products over the float32 features (OpenBLAS sgemv); X~_I^T X~_I and the
 * Cholesky factorisation are float64, which keeps H positive definite at any C.
 *
 * @module
 */
import type { Linalg } from "./compute/blas.ts";

/** A training set as the Newton solver reads it (a lib/svm.ts `DualProblem` in the Newton form). */
export interface NewtonProblem {
  /** Rows. */
  n: number;
  /** Features per row. */
  dim: number;
  /** The bias feature B. */
  bias: number;
  /** The rows (n x dim). */
  x: Float32Array;
  /** X~^T X~ ((dim + 1) x (dim + 1), its upper triangle), from {@link crossProducts}. */
  xtx: Float64Array;
}

/**
 * The solver stops when the decrease the next Newton step promises, -g.s / 2 (the Newton decrement, which estimates
 * f(w) - min f), falls below this fraction of f(w). Newton's last steps shrink it quadratically, so a tight bound
 * costs a step or two. (liblinear's Newton solver stops when |g| falls to 0.01 of |g| at w = 0, which for separable
 * classes and a large C can leave f a few parts in ten thousand above its minimum.)
 */
export const NEWTON_TOL = 1e-9;

/** At most this many Newton steps for one C. */
export const NEWTON_MAX_STEPS = 100;

/** Rows copied to float64 and added to X~^T X~ at a time. */
const BLOCK_ROWS = 256;

/** Adds alpha x~_i x~_i^T to the upper triangle of A for the rows `rows[0..count)`, a block of rows at a time. */
function addRows(
  p: Omit<NewtonProblem, "xtx">,
  rows: Int32Array,
  count: number,
  alpha: number,
  A: Float64Array,
  block: Float64Array,
  la: Linalg,
): void {
  const { dim, x, bias } = p, D = dim + 1;
  for (let r0 = 0; r0 < count; r0 += BLOCK_ROWS) {
    const r1 = Math.min(count, r0 + BLOCK_ROWS);
    for (let r = r0; r < r1; r++) {
      const i = rows[r], o = (r - r0) * D;
      block.set(x.subarray(i * dim, (i + 1) * dim), o);
      block[o + dim] = bias;
    }
    la.dsyrk(D, r1 - r0, alpha, block, 1, A);
  }
}

/** X~^T X~ of a training set (its upper triangle, float64) into `out`: the Hessian's part at w = 0. */
export function crossProducts(
  p: Omit<NewtonProblem, "xtx">,
  la: Linalg,
  out: Float64Array = new Float64Array((p.dim + 1) ** 2),
): Float64Array {
  const D = p.dim + 1;
  out.fill(0, 0, D * D);
  const all = new Int32Array(p.n);
  for (let i = 0; i < p.n; i++) all[i] = i;
  addRows(p, all, p.n, 1, out, new Float64Array(BLOCK_ROWS * D), la);
  return out;
}

/**
 * The memory of one solver: X~_I^T X~_I and the set I it belongs to, the Hessian, and per-example margins. Made once
 * per thread and size (D x D doubles twice: 150 MB for raw CIFAR pixels), reused by every class.
 */
class Workspace {
  /** X~_I^T X~_I (upper triangle) for the set I in `inA`. */
  readonly A: Float64Array;
  /** The Hessian 1 + 2C A, then its Cholesky factor. */
  readonly H: Float64Array;
  /** Whether example i is in the set A belongs to. */
  readonly inA: Uint8Array;
  /** Whether A belongs to inA (false: not computed for this class yet). */
  valid = false;
  /** Rows copied to float64 for a rank-k update, and the indices of the rows to add or remove. */
  readonly block: Float64Array;
  readonly rows: Int32Array;
  /** Margins w.x~_i, their change along the step, the gradient's coefficients. */
  readonly o: Float32Array;
  readonly delta: Float32Array;
  readonly r: Float32Array;
  /** float32 copies of a D-vector (the weights or the step) and of a gradient. */
  readonly v32: Float32Array;
  readonly g32: Float32Array;
  /** The line search's breakpoints. */
  readonly t: Float64Array;
  readonly events: Int32Array;

  constructor(readonly n: number, readonly D: number) {
    this.A = new Float64Array(D * D);
    this.H = new Float64Array(D * D);
    this.inA = new Uint8Array(n);
    this.block = new Float64Array(BLOCK_ROWS * D);
    this.rows = new Int32Array(n);
    this.o = new Float32Array(n);
    this.delta = new Float32Array(n);
    this.r = new Float32Array(n);
    this.v32 = new Float32Array(D);
    this.g32 = new Float32Array(D);
    this.t = new Float64Array(n);
    this.events = new Int32Array(n);
  }
}

let workspace: Workspace | null = null;

function workspaceFor(n: number, D: number): Workspace {
  if (!workspace || workspace.n !== n || workspace.D !== D) {
    workspace = null; // (the old one's memory can go before the new one is made)
    workspace = new Workspace(n, D);
  }
  return workspace;
}

/** out_i = w.x~_i for every example (float32, by sgemv). */
function margins(p: NewtonProblem, w: Float64Array, ws: Workspace, out: Float32Array, la: Linalg): void {
  const { n, dim, x, bias } = p;
  ws.v32.set(w);
  la.sgemv(false, n, dim, 1, x, dim, ws.v32, 0, out);
  const b = bias * w[dim];
  for (let i = 0; i < n; i++) out[i] += b;
}

/** g = w + 2C X~^T r (r_i = w.x~_i - y_i inside the margin, else 0), given r; returns |g|^2. */
function gradient(p: NewtonProblem, w: Float64Array, C: number, ws: Workspace, g: Float64Array, la: Linalg): number {
  const { n, dim, x, bias } = p;
  la.sgemv(true, n, dim, 1, x, dim, ws.r, 0, ws.g32);
  let sumR = 0;
  for (let i = 0; i < n; i++) sumR += ws.r[i];
  let norm = 0;
  for (let j = 0; j <= dim; j++) {
    g[j] = w[j] + 2 * C * (j < dim ? ws.g32[j] : bias * sumR);
    norm += g[j] * g[j];
  }
  return norm;
}

/**
 * Makes ws.A = X~_I^T X~_I for the set `inI`, the cheapest of three ways: from the set A holds, adding the rows that
 * entered and removing those that left; from zero, adding I's rows; or from X~^T X~, removing the rows outside I.
 */
function syncHessian(p: NewtonProblem, inI: Uint8Array, ws: Workspace, la: Linalg): void {
  const { n } = p, { A, inA, rows } = ws;
  let inside = 0, changed = 0;
  for (let i = 0; i < n; i++) {
    inside += inI[i];
    changed += inI[i] ^ inA[i];
  }
  const incremental = ws.valid ? changed : Infinity, fresh = inside, complement = n - inside;
  const list = (want: (i: number) => boolean) => {
    let k = 0;
    for (let i = 0; i < n; i++) if (want(i)) rows[k++] = i;
    return k;
  };
  if (incremental <= Math.min(fresh, complement)) {
    addRows(p, rows, list((i) => inI[i] === 1 && inA[i] === 0), 1, A, ws.block, la);
    addRows(p, rows, list((i) => inI[i] === 0 && inA[i] === 1), -1, A, ws.block, la);
  } else if (fresh <= complement) {
    A.fill(0);
    addRows(p, rows, list((i) => inI[i] === 1), 1, A, ws.block, la);
  } else {
    A.set(p.xtx);
    addRows(p, rows, list((i) => inI[i] === 0), -1, A, ws.block, la);
  }
  inA.set(inI);
  ws.valid = true;
}

/**
 * The t >= 0 that minimises f(w + t s), where the slack of example i along the line is a_i + t b_i (a_i = 1 - y_i
 * w.x~_i, b_i = -y_i s.x~_i): f'(t) = w.s + t s.s + 2C sum_{a_i + t b_i > 0} (a_i + t b_i) b_i is piecewise linear
 * and increasing, with a breakpoint wherever an example crosses its margin. The breakpoints are visited in order
 * until the root of the current piece lies before the next one.
 */
function lineSearch(ws: Workspace, sign: Int8Array, C: number, wDotS: number, sDotS: number): number {
  const { n, o, delta, t, events } = ws;
  let P = wDotS, Q = sDotS, count = 0;
  for (let i = 0; i < n; i++) {
    const a = 1 - sign[i] * o[i], b = -sign[i] * delta[i];
    const inside = a > 0 || (a === 0 && b > 0);
    if (inside) {
      P += 2 * C * a * b;
      Q += 2 * C * b * b;
    }
    // An example inside that moves out (b < 0), or one outside that moves in (b > 0), crosses at -a / b.
    if ((inside && b < 0) || (!inside && b > 0)) {
      t[i] = -a / b;
      events[count++] = i;
    }
  }
  const order = events.subarray(0, count).sort((u, v) => t[u] - t[v]);
  for (let e = 0; e < count; e++) {
    const root = -P / Q;
    const i = order[e];
    if (root <= t[i]) return root;
    const a = 1 - sign[i] * o[i], b = -sign[i] * delta[i], s = a > 0 || (a === 0 && b > 0) ? -1 : 1;
    P += s * 2 * C * a * b;
    Q += s * 2 * C * b * b;
  }
  return -P / Q;
}

/**
 * Minimises f at C from the weights in `w` (dim + 1: the last is the bias weight's), which it leaves there; returns
 * the Newton steps taken. Keeps the workspace's X~_I^T X~_I for the next C of the same class.
 */
function solveC(
  p: NewtonProblem,
  sign: Int8Array,
  C: number,
  w: Float64Array,
  ws: Workspace,
  la: Linalg,
  maxSteps: number,
): number {
  const { n, dim } = p, D = dim + 1, { o, delta, r, H, A } = ws;
  const g = new Float64Array(D), s = new Float64Array(D), inI = new Uint8Array(n);
  margins(p, w, ws, o, la);
  for (let step = 0; step < maxSteps; step++) {
    let f = 0;
    for (let j = 0; j < D; j++) f += w[j] * w[j] / 2;
    for (let i = 0; i < n; i++) {
      const slack = 1 - sign[i] * o[i], inside = slack > 0;
      inI[i] = inside ? 1 : 0;
      r[i] = inside ? o[i] - sign[i] : 0;
      if (inside) f += C * slack * slack;
    }
    if (gradient(p, w, C, ws, g, la) === 0) return step;
    syncHessian(p, inI, ws, la);
    // H = 1 + 2C A (the upper triangle is what the Cholesky factorisation reads); s = -g solved in place.
    for (let k = 0; k < D * D; k++) H[k] = 2 * C * A[k];
    for (let j = 0; j < D; j++) H[j * D + j] += 1;
    for (let j = 0; j < D; j++) s[j] = -g[j];
    if (!la.posv(D, H, s)) throw new Error(`Newton SVM: the Hessian at C = ${C} is not positive definite`);
    let decrement = 0;
    for (let j = 0; j < D; j++) decrement -= g[j] * s[j];
    if (decrement / 2 <= NEWTON_TOL * f) return step;
    margins(p, s, ws, delta, la);
    let wDotS = 0, sDotS = 0;
    for (let j = 0; j < D; j++) {
      wDotS += w[j] * s[j];
      sDotS += s[j] * s[j];
    }
    const t = lineSearch(ws, sign, C, wDotS, sDotS);
    for (let j = 0; j < D; j++) w[j] += t * s[j];
    for (let i = 0; i < n; i++) o[i] += t * delta[i];
  }
  return maxSteps;
}

/**
 * Class `sign`'s problem at each C of `Cs` (increasing) in turn, each from the weights at the C before, the first
 * from `w` (zeros: a cold start); writes each C's weights with `put` and leaves the last in `w`.
 */
export function solveNewtonPath(
  p: NewtonProblem,
  sign: Int8Array,
  Cs: number[],
  w: Float64Array,
  la: Linalg,
  put: (k: number, w: Float64Array) => void,
  maxSteps = NEWTON_MAX_STEPS,
): number {
  const D = p.dim + 1;
  if (w.length !== D) throw new Error(`${w.length} weights for ${D}`);
  const ws = workspaceFor(p.n, D);
  ws.valid = false;
  let steps = 0;
  for (let k = 0; k < Cs.length; k++) {
    steps += solveC(p, sign, Cs[k], w, ws, la, maxSteps);
    put(k, w);
  }
  return steps;
}
