import assert from "node:assert/strict";
import { knnPredict, l2Normalised } from "../lib/knn.ts";
import { Rng } from "../lib/util/rng.ts";
import type { Features } from "../lib/svm.ts";
import { openBlas } from "../lib/compute/blas.ts";

/** kNN as lib/knn.ts computed it one test row at a time (float64 sums stored as float32, insertion into a top-k list). */
function rowByRow(train: Features, labels: Int32Array, classes: number, test: Features, k0: number, T: number) {
  const a = l2Normalised(train), b = l2Normalised(test), D = a.dim, k = Math.min(k0, a.n);
  const out = new Int32Array(b.n),
    sims = new Float32Array(a.n),
    topSim = new Float64Array(k),
    topIdx = new Int32Array(k);
  for (let t = 0; t < b.n; t++) {
    for (let i = 0; i < a.n; i++) {
      let s = 0;
      for (let j = 0; j < D; j++) s += a.x[i * D + j] * b.x[t * D + j];
      sims[i] = s;
    }
    let m = 0;
    for (let i = 0; i < a.n; i++) {
      const s = sims[i];
      if (m === k && s <= topSim[k - 1]) continue;
      let p = m < k ? m++ : k - 1;
      while (p > 0 && topSim[p - 1] < s) topSim[p] = topSim[p - 1], topIdx[p] = topIdx[p - 1], p--;
      topSim[p] = s, topIdx[p] = i;
    }
    const votes = new Float64Array(classes);
    for (let j = 0; j < m; j++) votes[labels[topIdx[j]]] += Math.exp(topSim[j] / T);
    let best = 0;
    for (let c = 1; c < classes; c++) if (votes[c] > votes[best]) best = c;
    out[t] = best;
  }
  return out;
}

/** The same classifier written as plainly as possible: sort every similarity, take the top k, vote. */
function bruteForce(train: Features, y: Int32Array, classes: number, test: Features, k: number, T: number) {
  const a = l2Normalised(train), b = l2Normalised(test);
  return Int32Array.from({ length: b.n }, (_, t) => {
    const sims = Array.from({ length: a.n }, (_, i) => {
      let s = 0;
      for (let j = 0; j < a.dim; j++) s += a.x[i * a.dim + j] * b.x[t * b.dim + j];
      return { i, s };
    }).sort((p, q) => q.s - p.s || p.i - q.i);
    const votes = new Array(classes).fill(0);
    for (const { i, s } of sims.slice(0, k)) votes[y[i]] += Math.exp(s / T);
    return votes.indexOf(Math.max(...votes));
  });
}

Deno.test("weighted kNN equals a brute-force reference (k, temperature, ties, k larger than the data)", () => {
  const rng = new Rng(4);
  const make = (n: number, dim: number) => ({ n, dim, x: Float32Array.from({ length: n * dim }, () => rng.normal()) });
  for (const [n, m, dim, classes, k, T] of [[200, 50, 16, 5, 20, 0.07], [30, 20, 8, 3, 7, 0.5], [10, 5, 4, 4, 50, 1]]) {
    const train = make(n, dim), test = make(m, dim);
    const y = Int32Array.from({ length: n }, () => rng.int(classes));
    assert.deepEqual(
      knnPredict(train, y, classes, test, { k, temperature: T }),
      bruteForce(train, y, classes, test, Math.min(k, n), T),
    );
  }
});

Deno.test("kNN classifies clustered features; scale does not matter (cosine similarity)", () => {
  const rng = new Rng(8);
  const centres = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const sample = (n: number, scale: number) => {
    const y = Int32Array.from({ length: n }, (_, i) => i % 3);
    const x = new Float32Array(n * 3);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < 3; j++) x[i * 3 + j] = scale * (centres[y[i]][j] + 0.2 * rng.normal());
    }
    return { f: { n, dim: 3, x }, y };
  };
  const tr = sample(90, 1), te = sample(30, 100);
  const pred = knnPredict(tr.f, tr.y, 3, te.f);
  assert.deepEqual(pred, te.y);
});

Deno.test("kNN: the similarities as matrix products (in blocks of test rows) give the row-by-row predictions exactly", () => {
  const rng = new Rng(12);
  const { blas } = openBlas();
  for (
    const [n, m, dim, classes, k] of [[1001, 203, 37, 7, 20], [50, 9, 3, 4, 60], [333, 71, 256, 10, 5], [
      20011,
      301,
      6,
      5,
      20,
    ]]
  ) {
    const x = Float32Array.from({ length: n * dim }, () => Math.max(0, rng.normal()));
    // Repeated rows (equal similarities: the first row wins a place in the top k) and a zero row.
    x.copyWithin(dim * 10, 0, dim * 5);
    x.fill(0, dim * 20, dim * 21);
    const train = { n, dim, x }, test = { n: m, dim, x: Float32Array.from({ length: m * dim }, () => rng.normal()) };
    test.x.set(x.subarray(0, 3 * dim), 0);
    const y = Int32Array.from({ length: n }, () => rng.int(classes));
    const want = rowByRow(train, y, classes, test, k, 0.07);
    assert.deepEqual(knnPredict(train, y, classes, test, { k, temperature: 0.07 }, null), want);
    // OpenBLAS sums in float32: its similarities may differ in the last bits; on these problems the classes do not.
    if (blas) assert.deepEqual(knnPredict(train, y, classes, test, { k, temperature: 0.07 }, blas), want);
  }
});
