import assert from "node:assert/strict";
import { knnPredict, l2Normalised } from "../lib/knn.ts";
import { Rng } from "../lib/util/rng.ts";
import type { Features } from "../lib/svm.ts";

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
