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
 * @module
 */
import { UserError } from "./util/errors.ts";
import { Rng } from "./util/rng.ts";
import { METHODS } from "./presets.ts";

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
}

function checkC(C: number): void {
  if (!(C > 0 && Number.isFinite(C))) throw new UserError(`C = ${C}: the SVM's C must lie in (0, inf)`);
}

/** Trains one binary problem (labels +-1) by dual coordinate descent; returns w (dim + 1). */
function trainBinary(
  f: Features,
  sign: Int8Array,
  C: number,
  B: number,
  tol: number,
  maxIter: number,
  rng: Rng,
): Float64Array {
  const { n, dim, x } = f;
  const w = new Float64Array(dim + 1);
  const alpha = new Float64Array(n);
  const Dii = 1 / (2 * C);
  const Q = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = B * B;
    const o = i * dim;
    for (let j = 0; j < dim; j++) s += x[o + j] * x[o + j];
    Q[i] = s + Dii;
  }
  const index = new Int32Array(n);
  for (let i = 0; i < n; i++) index[i] = i;
  let active = n;
  let PGmaxOld = Infinity;
  for (let iter = 0; iter < maxIter; iter++) {
    let PGmax = -Infinity, PGmin = Infinity;
    for (let i = 0; i < active; i++) {
      const j = i + rng.int(active - i);
      [index[i], index[j]] = [index[j], index[i]];
    }
    for (let s = 0; s < active; s++) {
      const i = index[s], yi = sign[i], o = i * dim;
      let wx = w[dim] * B;
      for (let j = 0; j < dim; j++) wx += w[j] * x[o + j];
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
        for (let j = 0; j < dim; j++) w[j] += d * x[o + j];
        w[dim] += d * B;
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
  return w;
}

/** Trains a one-vs-rest linear SVM on features with labels 0..classes-1. */
export function trainSVM(f: Features, labels: Int32Array, classes: number, opts: SVMOptions): LinearSVM {
  checkC(opts.C);
  if (labels.length !== f.n) throw new Error(`${labels.length} labels for ${f.n} feature vectors`);
  const B = opts.bias ?? METHODS.paper.eval.svmBias.stl10;
  const rng = new Rng(opts.seed ?? 1, 555);
  const w = new Float64Array(classes * (f.dim + 1));
  const sign = new Int8Array(f.n);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < f.n; i++) sign[i] = labels[i] === c ? 1 : -1;
    w.set(trainBinary(f, sign, opts.C, B, opts.tol ?? 0.1, opts.maxIter ?? 1000, rng), c * (f.dim + 1));
  }
  return { classes, dim: f.dim, w, bias: B, C: opts.C };
}

/** Predicted class of every row: the class with the largest decision value. */
export function predictSVM(m: LinearSVM, f: Features): Int32Array {
  if (f.dim !== m.dim) throw new Error(`features of ${f.dim} dimensions for an SVM of ${m.dim}`);
  const out = new Int32Array(f.n), D = m.dim + 1;
  for (let i = 0; i < f.n; i++) {
    let best = -Infinity, arg = 0;
    const o = i * f.dim;
    for (let c = 0; c < m.classes; c++) {
      const wo = c * D;
      let s = m.w[wo + m.dim] * m.bias;
      for (let j = 0; j < f.dim; j++) s += m.w[wo + j] * f.x[o + j];
      if (s > best) best = s, arg = c;
    }
    out[i] = arg;
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

/** Chooses C by accuracy on a validation set; ties go to the smaller C. */
export function chooseC(
  train: Features,
  yTrain: Int32Array,
  valid: Features,
  yValid: Int32Array,
  classes: number,
  grid: number[] = METHODS.paper.eval.cGrid,
  bias: number = METHODS.paper.eval.svmBias.stl10,
  score: (p: Int32Array, y: Int32Array) => number = accuracy,
): { C: number; scores: { C: number; accuracy: number }[] } {
  for (const C of grid) checkC(C);
  const scores = grid.map((C) => ({
    C,
    accuracy: score(predictSVM(trainSVM(train, yTrain, classes, { C, bias }), valid), yValid),
  }));
  let best = scores[0];
  for (const s of scores) if (s.accuracy > best.accuracy + 1e-12) best = s;
  return { C: best.C, scores };
}
