import assert from "node:assert/strict";
import { Rng } from "../lib/util/rng.ts";
import { accuracy, chooseC, type Features, meanClassAccuracy, predictSVM, trainSVM } from "../lib/svm.ts";

/** Gaussian blobs: `k` classes in `dim` dimensions, `per` points each. */
function blobs(k: number, dim: number, per: number, spread: number, seed: number): { f: Features; y: Int32Array } {
  const rng = new Rng(seed);
  const centres = Array.from({ length: k }, () => Array.from({ length: dim }, () => rng.normal() * 3));
  const x = new Float32Array(k * per * dim), y = new Int32Array(k * per);
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < per; i++) {
      const r = c * per + i;
      y[r] = c;
      for (let j = 0; j < dim; j++) x[r * dim + j] = centres[c][j] + spread * rng.normal();
    }
  }
  return { f: { n: k * per, dim, x }, y };
}

Deno.test("SVM: separable classes are learned exactly; noisy ones well", () => {
  const a = blobs(4, 6, 30, 0.2, 1);
  const m = trainSVM(a.f, a.y, 4, { C: 1 });
  assert.equal(accuracy(predictSVM(m, a.f), a.y), 1);
  const tr = blobs(5, 20, 40, 2.5, 2), te = blobs(5, 20, 40, 2.5, 2);
  const m2 = trainSVM(tr.f, tr.y, 5, { C: 0.1 });
  const acc = accuracy(predictSVM(m2, te.f), te.y);
  assert.ok(acc > 0.8, `accuracy ${acc}`);
});

Deno.test("SVM: the bias term matters when classes are offset from the origin", () => {
  // One feature; class 1 iff x > 5: only a bias separates them.
  const x = Float32Array.from({ length: 40 }, (_, i) => 3 + i * 0.1), y = Int32Array.from(x, (v) => (v > 5 ? 1 : 0));
  const m = trainSVM({ n: 40, dim: 1, x }, y, 2, { C: 100, bias: 1, tol: 1e-4 });
  assert.ok(accuracy(predictSVM(m, { n: 40, dim: 1, x }), y) >= 0.95);
});

Deno.test("SVM: dual coordinate descent reaches the optimum (tight and loose tolerance agree)", () => {
  const tr = blobs(3, 10, 50, 2, 4);
  const loose = trainSVM(tr.f, tr.y, 3, { C: 0.5 }),
    tight = trainSVM(tr.f, tr.y, 3, { C: 0.5, tol: 1e-5, maxIter: 5000 });
  let diff = 0, norm = 0;
  for (let i = 0; i < tight.w.length; i++) diff += (loose.w[i] - tight.w[i]) ** 2, norm += tight.w[i] ** 2;
  assert.ok(Math.sqrt(diff / norm) < 0.05, `relative difference ${Math.sqrt(diff / norm)}`);
});

Deno.test("SVM: C outside (0, inf) is refused; C is chosen by validation; per-class accuracy", () => {
  const tr = blobs(3, 5, 20, 1, 5);
  for (const C of [0, -1, Infinity, NaN]) {
    assert.throws(() => trainSVM(tr.f, tr.y, 3, { C }), /C = .*must lie in \(0, inf\)/);
  }
  const r = chooseC(tr.f, tr.y, tr.f, tr.y, 3, [0.01, 1]);
  assert.equal(r.scores.length, 2);
  assert.ok([0.01, 1].includes(r.C));
  assert.equal(meanClassAccuracy(Int32Array.from([0, 0, 1, 1]), Int32Array.from([0, 1, 1, 1]), 2), (1 + 2 / 3) / 2);
});
