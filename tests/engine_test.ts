import assert from "node:assert/strict";
import { installWasmKernels, selectBackend, tf } from "../lib/backend.ts";
import { openBlas } from "../lib/blas.ts";
import { LocalEngine, ParallelEngine } from "../lib/engine.ts";
import { Rng } from "../lib/rng.ts";

Deno.test("data parallelism: two workers' averaged gradient equals the one-thread gradient", async () => {
  await selectBackend("wasm");
  // No FC layer, hence no dropout: the gradient is a deterministic function of weights and batch.
  const spec = { net: "6c5-8c3", classes: 7, variant: "release" as const, seed: 4 };
  const n = 10, rng = new Rng(1);
  const x = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
  const y = Int32Array.from({ length: n }, (_, i) => i % 7);
  const local = await LocalEngine.create(spec);
  const par = await ParallelEngine.start(spec, 2);
  try {
    assert.deepEqual(par.weights, local.weights); // the same initial weights
    const a = await local.step(x, y, n, 5), b = await par.step(x, y, n, 5);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-4 * Math.abs(a.loss), `loss ${a.loss} vs ${b.loss}`);
    assert.equal(a.correct, b.correct);
    let max = 0, scale = 0;
    for (let i = 0; i < local.grads.length; i++) {
      max = Math.max(max, Math.abs(local.grads[i] - par.grads[i]));
      scale = Math.max(scale, Math.abs(local.grads[i]));
    }
    assert.ok(scale > 0 && max < 1e-4 * scale, `max gradient difference ${max} (scale ${scale})`);
    // Workers see weight changes made in the training thread (shared memory).
    for (let i = 0; i < par.weights.length; i++) par.weights[i] = local.weights[i] = local.weights[i] * 0.5;
    const e1 = await local.evaluate(x, y, n), e2 = await par.evaluate(x, y, n);
    assert.ok(Math.abs(e1.loss - e2.loss) < 1e-4 * Math.abs(e1.loss));
    // Steps leave no tensors behind (a leak here once exhausted the wasm heap after 640 steps).
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) await local.step(x, y, n, 10 + i);
    await local.evaluate(x, y, n);
    assert.equal(tf.memory().numTensors, before);
  } finally {
    local.close();
    par.close();
  }
});

Deno.test("weights loaded between steps are the ones the kernels use (XNNPACK keeps packed filters)", async () => {
  const { blas } = openBlas();
  const spec = { net: "6c5-8c3-16f", classes: 5, variant: "release" as const, seed: 9 };
  const n = 6, rng = new Rng(3);
  const x = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
  const y = Int32Array.from({ length: n }, (_, i) => i % 5);
  for (const kernels of blas ? [null, blas] : [null]) {
    await selectBackend("wasm");
    installWasmKernels(kernels);
    const a = await LocalEngine.create(spec), b = await LocalEngine.create(spec);
    try {
      await a.evaluate(x, y, n); // the first weights reach the kernels
      await a.step(x, y, n, 1);
      for (let i = 0; i < a.weights.length; i++) b.weights[i] = a.weights[i] = a.weights[i] * 0.5 + 0.01;
      const seen = await a.evaluate(x, y, n), fresh = await b.evaluate(x, y, n);
      assert.ok(
        Math.abs(seen.loss - fresh.loss) < 1e-5 * Math.abs(fresh.loss),
        `${kernels ? "OpenBLAS" : "XNNPACK"}: loss ${seen.loss} after loading new weights, ${fresh.loss} fresh`,
      );
    } finally {
      a.close();
      b.close();
    }
  }
  await selectBackend("wasm");
});
