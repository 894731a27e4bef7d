/**
 * Weighted k-nearest-neighbour classification on frozen features, the second standard measure of self-supervised
 * features beside the linear classifier (as DINO's `eval_knn.py` computes it, and lightly reports it): features are
 * L2-normalised, each test feature finds the k training features of largest cosine similarity s, and each of them
 * votes for its class with weight exp(s / T). It needs no C to choose.
 *
 * @module
 */
import type { Features } from "./svm.ts";
import { type Blas, openBlas } from "./compute/blas.ts";
import { rowDots } from "./util/rowdots.ts";

/** k and the temperature T (DINO's defaults: 20 and 0.07). */
export interface KnnOptions {
  /** Neighbours that vote. */
  k: number;
  /** Temperature of the vote weights exp(similarity / T). */
  temperature: number;
}

/** DINO's defaults. */
export const KNN_DEFAULTS: KnnOptions = { k: 20, temperature: 0.07 };

/** Rows of `f`, each divided by its L2 norm (a zero row stays zero). */
export function l2Normalised(f: Features): Features {
  const x = new Float32Array(f.x.length);
  for (let i = 0; i < f.n; i++) {
    let s = 0;
    for (let j = 0; j < f.dim; j++) s += f.x[i * f.dim + j] ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < f.dim; j++) x[i * f.dim + j] = f.x[i * f.dim + j] * inv;
  }
  return { n: f.n, dim: f.dim, x };
}

/** Similarities computed per block of test rows: at most this many floats (16 MB). */
const SIM_BLOCK_FLOATS = 1 << 22;

/**
 * The class weighted kNN gives each row of `test` (ties: the smaller class index; among equal similarities, the
 * training row first in order). The similarities are one matrix product, by OpenBLAS where it is installed (`blas`;
 * null: in JavaScript, where every similarity is the float64 sum of the float32 products rounded to float32).
 */
export function knnPredict(
  train: Features,
  labels: Int32Array,
  classes: number,
  test: Features,
  opts: KnnOptions = KNN_DEFAULTS,
  blas: Blas | null = openBlas().blas,
): Int32Array {
  if (train.dim !== test.dim) throw new Error(`test features of ${test.dim} dimensions, training ones of ${train.dim}`);
  const a = l2Normalised(train), b = l2Normalised(test), D = a.dim;
  const k = Math.min(opts.k, a.n);
  const out = new Int32Array(b.n);
  const rows = Math.max(1, Math.min(b.n, Math.floor(SIM_BLOCK_FLOATS / Math.max(1, a.n))));
  const block = new Float32Array(rows * a.n), topSim = new Float64Array(k), topIdx = new Int32Array(k);
  const votes = new Float64Array(classes);
  for (let t0 = 0; t0 < b.n; t0 += rows) {
    const t1 = Math.min(b.n, t0 + rows);
    rowDots({ x: b.x, r0: t0, r1: t1 }, { x: a.x, r0: 0, r1: a.n }, D, block, a.n, blas);
    for (let t = t0; t < t1; t++) {
      const sims = block.subarray((t - t0) * a.n, (t - t0 + 1) * a.n);
      // The k largest similarities, by insertion into a short sorted list (k is small).
      let m = 0;
      for (let i = 0; i < a.n; i++) {
        const s = sims[i];
        if (m === k && s <= topSim[k - 1]) continue;
        let p = m < k ? m++ : k - 1;
        while (p > 0 && topSim[p - 1] < s) {
          topSim[p] = topSim[p - 1];
          topIdx[p] = topIdx[p - 1];
          p--;
        }
        topSim[p] = s;
        topIdx[p] = i;
      }
      votes.fill(0);
      for (let j = 0; j < m; j++) votes[labels[topIdx[j]]] += Math.exp(topSim[j] / opts.temperature);
      let best = 0;
      for (let c = 1; c < classes; c++) if (votes[c] > votes[best]) best = c;
      out[t] = best;
    }
  }
  return out;
}
