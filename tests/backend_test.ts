import assert from "node:assert/strict";
import { registerWasmConvGradients, selectBackend, tf } from "../lib/backend.ts";

type Shape4 = [number, number, number, number];

/** Gradients of sum(conv2d(x, w) * dy) with respect to x and w, on the current backend. */
function convGrads(xs: Shape4, ws: Shape4, pad: "same" | "valid" | number, seed: number): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.randomNormal(xs, 0, 1, "float32", seed) as tf.Tensor4D;
    const w = tf.randomNormal(ws, 0, 1, "float32", seed + 1) as tf.Tensor4D;
    const outShape = tf.conv2d(x, w, 1, pad as "same").shape;
    const dy = tf.randomNormal(outShape, 0, 1, "float32", seed + 2);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad as "same").mul(dy).sum()
    );
    return g([x, w]).map((t) => t.dataSync() as Float32Array);
  });
}

Deno.test("wasm convolution gradients equal the cpu backend's on small shapes", async () => {
  const cases: [Shape4, Shape4, "same" | "valid" | number][] = [
    [[2, 7, 9, 3], [5, 5, 3, 4], "same"],
    [[3, 8, 6, 2], [3, 3, 2, 5], "valid"],
    [[1, 6, 6, 4], [5, 5, 4, 2], 1],
    [[4, 5, 5, 1], [1, 1, 1, 3], "same"],
  ];
  await selectBackend("wasm");
  const wasm = cases.map(([x, w, p], i) => convGrads(x, w, p, 10 * i + 1));
  await selectBackend("cpu");
  const cpu = cases.map(([x, w, p], i) => convGrads(x, w, p, 10 * i + 1));
  for (let c = 0; c < cases.length; c++) {
    for (let g = 0; g < 2; g++) {
      const a = wasm[c][g], b = cpu[c][g];
      assert.equal(a.length, b.length);
      let max = 0, scale = 0;
      for (let i = 0; i < a.length; i++) {
        max = Math.max(max, Math.abs(a[i] - b[i])), scale = Math.max(scale, Math.abs(b[i]));
      }
      assert.ok(
        max <= 1e-4 * Math.max(1, scale),
        `case ${c} ${g ? "filter" : "input"} gradient: max difference ${max}`,
      );
    }
  }
});

Deno.test("wasm max-pooling gradient, transposed matrix products and row sums equal the cpu backend's", async () => {
  const run = () =>
    tf.tidy(() => {
      const x = tf.randomNormal([2, 9, 7, 5], 0, 1, "float32", 21) as tf.Tensor4D;
      const out: Float32Array[] = [];
      for (const [k, s] of [[3, 2], [2, 2]]) {
        const dy = tf.randomNormal(tf.maxPool(x, k, s, "same").shape, 0, 1, "float32", 22 + k);
        out.push(
          tf.grad((a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, k, s, "same").mul(dy).sum())(x)
            .dataSync() as Float32Array,
        );
      }
      const a = tf.randomNormal([6, 11], 0, 1, "float32", 31) as tf.Tensor2D;
      const b = tf.randomNormal([6, 4], 0, 1, "float32", 32) as tf.Tensor2D;
      const c = tf.randomNormal([3, 11], 0, 1, "float32", 33) as tf.Tensor2D;
      out.push(tf.matMul(a, b, true, false).dataSync() as Float32Array);
      out.push(tf.matMul(a, c, false, true).dataSync() as Float32Array);
      out.push(tf.matMul(b, a, true, false).dataSync() as Float32Array);
      // Sums over all leading axes (bias gradients) and over other axes (the backend's own kernel).
      out.push(x.sum([0, 1, 2]).dataSync() as Float32Array);
      out.push(a.sum(0).dataSync() as Float32Array);
      out.push(x.sum([1, 2]).dataSync() as Float32Array);
      out.push(x.sum([0, 1, 2], true).dataSync() as Float32Array);
      return out;
    });
  await selectBackend("wasm");
  const w = run();
  await selectBackend("cpu");
  const c = run();
  for (let i = 0; i < w.length; i++) {
    assert.equal(w[i].length, c[i].length);
    for (let j = 0; j < w[i].length; j++) {
      assert.ok(Math.abs(w[i][j] - c[i][j]) < 1e-4, `output ${i}[${j}]: ${w[i][j]} vs ${c[i][j]}`);
    }
  }
});

Deno.test("the project's kernels refuse what they do not implement", async () => {
  await selectBackend("wasm");
  registerWasmConvGradients("wasm");
  const x = tf.ones([1, 8, 8, 2]) as tf.Tensor4D, w = tf.ones([3, 3, 2, 2]) as tf.Tensor4D;
  assert.throws(
    () => tf.grads((a: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, w, 2, "same").sum())([x]),
    /only stride 1/,
  );
});

Deno.test("backend selection: the chain falls back to wasm here; unknown names are refused", async () => {
  const info = await selectBackend();
  assert.ok(["tensorflow-gpu", "tensorflow", "webgpu", "wasm"].includes(info.name));
  if (info.name === "wasm") assert.ok(info.skipped.length >= 2, info.skipped.join("; "));
  assert.equal(tf.getBackend(), info.tfBackend);
  await assert.rejects(() => selectBackend("tpu"), /--backend tpu: unknown backend/);
});
