import assert from "node:assert/strict";
import { Rng } from "../lib/util/rng.ts";
import { openBlas } from "../lib/compute/blas.ts";
import { Arena, kernels } from "../lib/svm_kernels.ts";
import { UserError } from "../lib/util/errors.ts";
import {
  accuracy,
  chooseC,
  dualProblem,
  type Features,
  fillGram,
  formOf,
  GRAM_MAX_BYTES,
  gramMatrix,
  type LinearSVM,
  meanClassAccuracy,
  predictSVM,
  solveDual,
  SVMWorkers,
  trainSVM,
} from "../lib/svm.ts";

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

/** Nonnegative, skewed, overlapping classes, like pooled network features (scaled to about [0, 1]). */
function pooledLike(k: number, dim: number, n: number, seed: number): { f: Features; y: Int32Array } {
  const shape = new Rng(99);
  const centres = Array.from({ length: k }, () => Float32Array.from({ length: dim }, () => shape.normal() * 0.7));
  const rng = new Rng(seed);
  const x = new Float32Array(n * dim), y = Int32Array.from({ length: n }, (_, i) => i % k);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) x[i * dim + j] = Math.max(0, centres[y[i]][j] + rng.normal()) ** 2 / 10;
  }
  return { f: { n, dim, x }, y };
}

/**
 * The reference: liblinear's dual coordinate descent for one binary problem written plainly in the primal form (w kept,
 * every margin a dot product), as lib/svm.ts trained before it kept margins: the solver must take these steps.
 */
function reference(f: Features, sign: Int8Array, C: number, B: number, tol: number, maxIter: number, rng: Rng) {
  const { n, dim, x } = f;
  const w = new Float64Array(dim + 1), alpha = new Float64Array(n), Dii = 1 / (2 * C), Q = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = B * B;
    for (let j = 0; j < dim; j++) s += x[i * dim + j] * x[i * dim + j];
    Q[i] = s + Dii;
  }
  const index = Int32Array.from({ length: n }, (_, i) => i);
  let active = n, PGmaxOld = Infinity, iter = 0;
  for (; iter < maxIter; iter++) {
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
      active = n;
      PGmaxOld = Infinity;
      continue;
    }
    PGmaxOld = PGmax <= 0 ? Infinity : PGmax;
  }
  return { alpha, w, iterations: iter };
}

/** max |a - b| / max |b|. */
function relDiff(a: Float64Array, b: Float64Array): number {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i])), m = Math.max(m, Math.abs(b[i]));
  return d / m;
}

const signs = (y: Int32Array, c: number) => Int8Array.from(y, (l) => (l === c ? 1 : -1));
const { blas } = openBlas();

Deno.test("SVM: the primal and the Gram form take the reference's steps (up to rounding)", () => {
  const problems = [blobs(4, 30, 75, 2.5, 11), pooledLike(6, 200, 300, 12)];
  for (const { f, y } of problems) {
    const B = 1;
    const forms = [{ name: "primal", problem: dualProblem(f, B, "primal").problem }];
    for (const b of blas ? [null, blas] : [null]) {
      const { problem } = dualProblem(f, B, "gram");
      fillGram(problem, b);
      forms.push({ name: `Gram (${b ? "OpenBLAS" : "JavaScript"})`, problem });
    }
    for (const C of [0.01, 1]) {
      for (const c of [0, 1]) {
        const ref = reference(f, signs(y, c), C, B, 0.1, 1000, new Rng(1, 555, c));
        assert.ok(ref.iterations > 2, `${ref.iterations} iterations`);
        for (const { name, problem } of forms) {
          const g = solveDual(problem, signs(y, c), C, 0.1, 1000, new Rng(1, 555, c));
          // The same steps: the same passes, and alpha and w equal up to rounding carried through the steps (the
          // margins summed in another order; in the Gram form K rounded to float32, 6e-8 relative per entry, and
          // OpenBLAS sums in float32). A step taken otherwise (another order, shrinking, stopping) moves alpha by a
          // good fraction of its size.
          const at = `${name}, C = ${C}, class ${c}`;
          assert.equal(g.iterations, ref.iterations, at);
          assert.ok(relDiff(g.alpha, ref.alpha) < 1e-4, `${at}: alpha ${relDiff(g.alpha, ref.alpha)}`);
          assert.ok(relDiff(g.w, ref.w) < 1e-4, `${at}: w ${relDiff(g.w, ref.w)}`);
        }
      }
    }
  }
});

Deno.test("SVM: Gram and primal form reach the same optimum and predict the same classes", () => {
  const tr = pooledLike(5, 120, 250, 21), te = pooledLike(5, 120, 250, 22);
  for (const C of [0.03, 3]) {
    const opts = { C, tol: 1e-6, maxIter: 5000 };
    const primal = trainSVM(tr.f, tr.y, 5, { ...opts, form: "primal" });
    const gram = trainSVM(tr.f, tr.y, 5, { ...opts, form: "gram", blas: null });
    // At tolerance 1e-6 both are within about 1e-6 C sqrt(n) of the one optimum (the dual is strongly convex,
    // with modulus 1 / 2C).
    assert.ok(relDiff(gram.w, primal.w) < 1e-5, `C = ${C}: w ${relDiff(gram.w, primal.w)}`);
    assert.deepEqual(predictSVM(gram, te.f), predictSVM(primal, te.f));
    // At the default tolerance the forms differ in rounding only (the previous test): the predictions agree.
    const d = trainSVM(tr.f, tr.y, 5, { C, form: "primal" }), g = trainSVM(tr.f, tr.y, 5, { C, form: "gram" });
    assert.deepEqual(predictSVM(g, te.f), predictSVM(d, te.f));
  }
});

Deno.test("SVM: OpenBLAS and JavaScript Gram matrices agree; so do the SVMs trained on them", { ignore: !blas }, () => {
  const tr = pooledLike(4, 300, 200, 31), te = pooledLike(4, 300, 200, 32), B = 5;
  const a = gramMatrix(tr.f, B, blas), b = gramMatrix(tr.f, B, null);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-5 * Math.abs(b[i]), `K[${i}]`);
  for (let i = 0; i < tr.f.n; i++) {
    for (let j = 0; j < i; j++) assert.equal(a[i * tr.f.n + j], a[j * tr.f.n + i], "symmetric");
  }
  const m1 = trainSVM(tr.f, tr.y, 4, { C: 0.1, bias: B, blas }),
    m2 = trainSVM(tr.f, tr.y, 4, { C: 0.1, bias: B, blas: null });
  assert.ok(relDiff(m1.w, m2.w) < 1e-4, `w ${relDiff(m1.w, m2.w)}`);
  assert.deepEqual(predictSVM(m1, te.f), predictSVM(m2, te.f));
});

Deno.test("SVM: the workers give bit-identical weights with 1 and 2 workers, and as in one thread", async () => {
  const tr = pooledLike(5, 64, 200, 41), va = pooledLike(5, 64, 100, 42);
  for (const form of ["gram", "primal"] as const) {
    const here = trainSVM(tr.f, tr.y, 5, { C: 0.3, form, seed: 7 });
    for (const size of [1, 2]) {
      for (const b of blas ? [blas, null] : [null]) {
        const pool = new SVMWorkers(size, b);
        try {
          const m = await pool.train(tr.f, tr.y, 5, { C: 0.3, form, seed: 7, blas: b });
          const ref = b === blas ? here : trainSVM(tr.f, tr.y, 5, { C: 0.3, form, seed: 7, blas: b });
          assert.deepEqual(m.w, ref.w, `${form}, ${size} workers, ${b ? "OpenBLAS" : "JavaScript"}`);
        } finally {
          pool.close();
        }
      }
    }
  }
  const pool = new SVMWorkers(2);
  try {
    const grid = [0.001, 0.1, 10];
    assert.deepEqual(
      await pool.chooseC(tr.f, tr.y, va.f, va.y, 5, grid, 1),
      chooseC(tr.f, tr.y, va.f, va.y, 5, grid, 1),
    );
  } finally {
    pool.close();
  }
});

/** The decision rule written plainly: each value summed in float64 in the order of the features, the first largest. */
function predictPlainly(m: LinearSVM, f: Features): Int32Array {
  return Int32Array.from({ length: f.n }, (_, i) => {
    let best = -Infinity, arg = 0;
    for (let c = 0; c < m.classes; c++) {
      let s = m.w[c * (m.dim + 1) + m.dim] * m.bias;
      for (let j = 0; j < m.dim; j++) s += m.w[c * (m.dim + 1) + j] * f.x[i * f.dim + j];
      if (s > best) best = s, arg = c;
    }
    return arg;
  });
}

Deno.test("SVM: predictions are those of float64 scores, with OpenBLAS too (ties, signs, NaN, near-ties)", () => {
  const rng = new Rng(51);
  for (const [classes, dim, n] of [[7, 300, 400], [101, 64, 200], [2, 1, 50]]) {
    const w = Float64Array.from({ length: classes * (dim + 1) }, () => rng.normal() * 0.1);
    // Classes 0, 1, 3 and 4 lead the others; class 3 repeats class 1 (exact ties: class 1 wins); class 4 differs from
    // class 0 by 1e-9 in one weight (scores closer than float32 can tell).
    if (classes > 4) {
      for (const c of [0, 1]) w[c * (dim + 1) + dim] = 1;
      w.copyWithin(3 * (dim + 1), 1 * (dim + 1), 2 * (dim + 1));
      w.copyWithin(4 * (dim + 1), 0, dim + 1);
      w[4 * (dim + 1)] += 1e-9;
    }
    const m: LinearSVM = { classes, dim, w, bias: 2, C: 1 };
    for (const negative of [false, true]) {
      const x = Float32Array.from({ length: n * dim }, () => negative ? rng.normal() : Math.abs(rng.normal()));
      x[5 * dim] = NaN;
      const f = { n, dim, x }, plain = predictPlainly(m, f);
      assert.deepEqual(predictSVM(m, f, null), plain);
      if (blas) assert.deepEqual(predictSVM(m, f, blas), plain);
      if (classes > 4) assert.ok(plain.includes(1) && !plain.includes(3) && plain.includes(4) && plain.includes(0));
    }
  }
});

Deno.test("SVM kernels: dot and axpy equal plain loops at any length and offset; too large a set is refused", () => {
  const arena = new Arena(Arena.bytes([5000], [5000, 5000]));
  const x = arena.f32(5000), w = arena.f64(5000), y = arena.f64(5000), k = kernels(arena.memory), rng = new Rng(61);
  x.forEach((_, i) => x[i] = rng.normal());
  w.forEach((_, i) => w[i] = rng.normal());
  y.forEach((_, i) => y[i] = rng.normal());
  for (const [wi, xi, n] of [[0, 0, 0], [0, 0, 1], [1, 3, 7], [0, 0, 8], [5, 2, 9], [3, 1, 4095], [0, 0, 4992]]) {
    let s = 0;
    for (let j = 0; j < n; j++) s += w[wi + j] * x[xi + j];
    // Eight partial sums instead of one: within a few roundings of the plain sum's terms.
    let mag = 0;
    for (let j = 0; j < n; j++) mag += Math.abs(w[wi + j] * x[xi + j]);
    assert.ok(Math.abs(k.dot(w, wi, x, xi, n) - s) <= 1e-15 * n * mag + 1e-300, `dot, n = ${n}`);
    const before = y.slice(), a = rng.normal();
    k.axpy(a, x, xi, y, wi, n);
    for (let j = 0; j < y.length; j++) {
      // The same operations per value: exact.
      assert.equal(
        y[j],
        j >= wi && j < wi + n ? before[j] + a * x[xi + j - wi] : before[j],
        `axpy, n = ${n}, j = ${j}`,
      );
    }
  }
  assert.throws(
    () => new Arena(5 * 2 ** 30),
    (e) => e instanceof UserError && /5\.0 GiB of training data .*at most 4 GiB/.test(e.message),
  );
});

Deno.test("SVM: Newton's method for many examples of few features, else the Gram form where K fits, else primal", () => {
  const n = Math.floor(Math.sqrt(GRAM_MAX_BYTES / 4)), la = blas?.linalg ?? null;
  assert.equal(formOf(n, 10_000, "auto", la), "gram");
  assert.equal(formOf(n + 1, 10_000, "auto", la), "primal");
  assert.equal(formOf(n + 1, 10, "gram", la), "gram");
  assert.equal(formOf(100_000, 10, "auto", null), "primal");
  assert.equal(formOf(100, 49, "auto", null), "gram");
  if (la) {
    assert.equal(formOf(100, 49, "auto", la), "newton");
    assert.equal(formOf(100, 50, "auto", la), "gram");
    assert.equal(formOf(100_000, 3072, "auto", la), "newton");
  }
  assert.throws(() => formOf(100, 10, "newton", null), /Newton form needs OpenBLAS with LAPACK/);
});

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
  for (const form of ["gram", "primal"] as const) {
    const m = trainSVM({ n: 40, dim: 1, x }, y, 2, { C: 100, bias: 1, tol: 1e-4, form });
    assert.ok(accuracy(predictSVM(m, { n: 40, dim: 1, x }), y) >= 0.95);
  }
});

Deno.test("SVM: dual coordinate descent reaches the optimum (tight and loose tolerance agree)", () => {
  const tr = blobs(3, 10, 50, 2, 4);
  const loose = trainSVM(tr.f, tr.y, 3, { C: 0.5, form: "gram" }),
    tight = trainSVM(tr.f, tr.y, 3, { C: 0.5, tol: 1e-5, maxIter: 5000, form: "gram" });
  let diff = 0, norm = 0;
  for (let i = 0; i < tight.w.length; i++) diff += (loose.w[i] - tight.w[i]) ** 2, norm += tight.w[i] ** 2;
  assert.ok(Math.sqrt(diff / norm) < 0.05, `relative difference ${Math.sqrt(diff / norm)}`);
});

Deno.test("SVM: C outside (0, inf) is refused; C is chosen by validation; per-class accuracy", async () => {
  const tr = blobs(3, 5, 20, 1, 5);
  const pool = new SVMWorkers(1);
  try {
    for (const C of [0, -1, Infinity, NaN]) {
      assert.throws(() => trainSVM(tr.f, tr.y, 3, { C }), /C = .*must lie in \(0, inf\)/);
      await assert.rejects(pool.train(tr.f, tr.y, 3, { C }), /C = .*must lie in \(0, inf\)/);
      await assert.rejects(pool.chooseC(tr.f, tr.y, tr.f, tr.y, 3, [1, C]), /C = .*must lie in \(0, inf\)/);
    }
  } finally {
    pool.close();
  }
  const r = chooseC(tr.f, tr.y, tr.f, tr.y, 3, [0.01, 1]);
  assert.equal(r.scores.length, 2);
  assert.ok([0.01, 1].includes(r.C));
  assert.equal(meanClassAccuracy(Int32Array.from([0, 0, 1, 1]), Int32Array.from([0, 1, 1, 1]), 2), (1 + 2 / 3) / 2);
});

Deno.test("SVM: a warm-started path of C reaches each C's optimum, in fewer passes, in parts and in workers alike", async () => {
  const tr = blobs(4, 12, 60, 3, 11), C = [0.01, 0.1, 1, 10];
  for (const form of ["gram", "primal"] as const) {
    const { problem } = dualProblem(tr.f, 1, form);
    fillGram(problem, null);
    const sign = Int8Array.from(tr.y, (c) => (c === 0 ? 1 : -1));
    const side = (w: Float64Array) =>
      Array.from({ length: tr.f.n }, (_, i) => {
        let m = w[12];
        for (let j = 0; j < 12; j++) m += w[j] * tr.f.x[i * 12 + j];
        return m > 0;
      });
    let start: Float64Array | undefined, tightStart: Float64Array | undefined, warmPasses = 0, coldPasses = 0;
    for (const c of C) {
      const warm = solveDual(problem, sign, c, 0.1, 1000, new Rng(1), start);
      const cold = solveDual(problem, sign, c, 0.1, 1000, new Rng(1));
      // Solved tightly, from the tight solution at the C before and from zero: the same optimum.
      const warmTight = solveDual(problem, sign, c, 1e-6, 100000, new Rng(1), tightStart);
      const tight = solveDual(problem, sign, c, 1e-6, 100000, new Rng(1));
      let diff = 0, norm = 0;
      for (let i = 0; i < tight.w.length; i++) diff += (warmTight.w[i] - tight.w[i]) ** 2, norm += tight.w[i] ** 2;
      assert.ok(Math.sqrt(diff / norm) < 1e-3, `${form}, C = ${c}: relative difference ${Math.sqrt(diff / norm)}`);
      // At the solver's tolerance (a bound on the optimality conditions, not on the distance to the optimum) warm and
      // cold starts both put almost every point on the side the optimum puts it.
      const best = side(tight.w);
      for (const s of [warm, cold]) {
        const agree = side(s.w).filter((v, i) => v === best[i]).length / tr.f.n;
        assert.ok(agree >= 0.95, `${form}, C = ${c}, ${s === warm ? "warm" : "cold"}: ${agree} agree`);
      }
      warmPasses += warm.iterations;
      coldPasses += cold.iterations;
      [start, tightStart] = [warm.alpha, warmTight.alpha];
    }
    assert.ok(warmPasses < coldPasses, `${form}: ${warmPasses} passes warm, ${coldPasses} cold`);
  }
  // The path in workers: the same models whatever the number of workers, in one call or in parts (the second part
  // starting from the first one's solutions), in any order of C, and as in one thread (chooseC's scores).
  const va = blobs(4, 12, 20, 3, 12);
  const one = new SVMWorkers(1), two = new SVMWorkers(2);
  try {
    for (const form of blas?.linalg ? ["gram", "newton"] as const : ["gram"] as const) {
      const p1 = await one.problem(tr.f, tr.y, 1, form), p2 = await two.problem(tr.f, tr.y, 1, form);
      const whole = await one.solvePath(p1, 4, C);
      const alpha = two.pathStart(p2, 4);
      const parts = [
        ...await two.solvePath(p2, 4, [0.1, 0.01], alpha),
        ...await two.solvePath(p2, 4, [10, 1], alpha),
      ];
      assert.deepEqual(parts.map((m) => m.C), [0.1, 0.01, 10, 1]);
      for (const m of whole) {
        const w = parts.find((q) => q.C === m.C)!.w, at = `${form}, C = ${m.C}`;
        // (Newton's method rebuilds X_I^T X_I at the start of a part by another sum: equal up to rounding.)
        if (form === "gram") assert.deepEqual(w, m.w, at);
        else assert.ok(relDiff(w, m.w) < 1e-6, `${at}: ${relDiff(w, m.w)}`);
      }
    }
    // (auto: the Newton form where OpenBLAS has LAPACK, 240 examples of 12 features.)
    assert.deepEqual(await two.chooseC(tr.f, tr.y, va.f, va.y, 4, C, 1), chooseC(tr.f, tr.y, va.f, va.y, 4, C, 1));
  } finally {
    one.close();
    two.close();
  }
});

/** The primal objective 1/2 |w|^2 + C sum max(0, 1 - y_i w.(x_i, B))^2 of one binary problem, in float64. */
function objective(f: Features, sign: Int8Array, w: Float64Array, C: number, B: number): number {
  const { n, dim, x } = f;
  let v = 0;
  for (let j = 0; j <= dim; j++) v += w[j] * w[j] / 2;
  for (let i = 0; i < n; i++) {
    let m = w[dim] * B;
    for (let j = 0; j < dim; j++) m += w[j] * x[i * dim + j];
    v += C * Math.max(0, 1 - sign[i] * m) ** 2;
  }
  return v;
}

Deno.test("SVM: Newton's method reaches the dual's optimum, along a path of C, in one thread and in workers", {
  ignore: !blas?.linalg,
}, async () => {
  // Overlapping classes (many examples stay inside the margin), separable ones (few do), and features offset far from
  // the origin (the bias carries the decision; X^T X is ill-conditioned).
  const offset = blobs(3, 8, 80, 1, 7);
  for (let i = 0; i < offset.f.x.length; i++) offset.f.x[i] += 40;
  const problems = [pooledLike(4, 30, 400, 3), blobs(4, 10, 60, 0.3, 6), offset];
  const Cs = [0.01, 1, 10];
  for (const [k, { f, y }] of problems.entries()) {
    const B = k === 2 ? 1 : 5, classes = Math.max(...y) + 1;
    const newton = Cs.map((C) => trainSVM(f, y, classes, { C, bias: B, form: "newton" }));
    const path = await (async () => {
      const pool = new SVMWorkers(2);
      try {
        return await pool.solvePath(await pool.problem(f, y, B, "newton"), classes, Cs);
      } finally {
        pool.close();
      }
    })();
    for (const [i, C] of Cs.entries()) {
      const tight = trainSVM(f, y, classes, { C, bias: B, form: "gram", tol: 1e-6, maxIter: 200_000 });
      for (let c = 0; c < classes; c++) {
        const at = `problem ${k}, C = ${C}, class ${c}`, D = f.dim + 1, sign = signs(y, c);
        const best = objective(f, sign, tight.w.subarray(c * D, (c + 1) * D), C, B);
        // Alone and along the path (warm-started from the C before), within a millionth of the dual's optimum.
        for (const m of [newton[i], path[i]]) {
          const v = objective(f, sign, m.w.subarray(c * D, (c + 1) * D), C, B);
          assert.ok(v <= best * (1 + 1e-6), `${at}: ${v} against the dual's ${best}`);
        }
      }
    }
  }
});

Deno.test("SVM: a feature vector that holds NaN or an infinity is refused with one line, in every form", () => {
  const { f, y } = blobs(2, 3, 20, 1, 8);
  for (const bad of [NaN, Infinity, -Infinity]) {
    const x = f.x.slice();
    x[5 * 3 + 1] = bad;
    for (const form of ["gram", "primal", ...(blas?.linalg ? ["newton"] as const : [])] as const) {
      assert.throws(
        () => trainSVM({ ...f, x }, y, 2, { C: 1, form }),
        (e) => e instanceof UserError && /feature vector 5 holds a value that is not a finite number/.test(e.message),
      );
    }
  }
});
