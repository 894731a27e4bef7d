import assert from "node:assert/strict";
import { selectBackend, tf } from "../lib/compute/backend.ts";
import { installWasmKernels } from "../lib/compute/wasm_kernels.ts";
import { openBlas } from "../lib/compute/blas.ts";
import { DeviceEngine, LocalEngine, ParallelEngine } from "../lib/compute/engine.ts";
import { sgdUpdate } from "../lib/compute/sgd.ts";
import { netSpec } from "../lib/nets.ts";
import { Rng } from "../lib/util/rng.ts";

Deno.test("data parallelism: two workers' averaged gradient equals the one-thread gradient", async () => {
  await selectBackend("wasm");
  // No FC layer, hence no dropout: the gradient is a deterministic function of weights and batch.
  const spec = netSpec({ net: "6c5-8c3", classes: 7, method: "release", seed: 4 });
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
  const spec = netSpec({ net: "6c5-8c3-16f", classes: 5, method: "release", seed: 9 });
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

Deno.test("sgdUpdate: Caffe's SGD with each slot's learning-rate and decay multipliers", () => {
  const slots = [
    { name: "a", shape: [2], offset: 0, size: 2, lrMult: 1, decayMult: 0 },
    { name: "b", shape: [1], offset: 2, size: 1, lrMult: 2, decayMult: 4 },
  ];
  const W = Float32Array.from([1, -2, 0.5]), V = Float32Array.from([0.1, 0, -0.2]), G = Float32Array.from([3, 1, -1]);
  sgdUpdate(slots, W, V, G, 0.01, { momentum: 0.9, weightDecay: 0.004 });
  // v = 0.9 v + lr lr_mult (g + wd decay_mult w); w -= v
  const v = [0.9 * 0.1 + 0.01 * 3, 0.01 * 1, 0.9 * -0.2 + 0.02 * (-1 + 0.016 * 0.5)];
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(V[i] - v[i]) < 1e-7, `v[${i}] = ${V[i]}, expected ${v[i]}`);
  const w = [1 - v[0], -2 - v[1], 0.5 - v[2]];
  for (let i = 0; i < 3; i++) assert.ok(Math.abs(W[i] - w[i]) < 1e-6, `w[${i}] = ${W[i]}, expected ${w[i]}`);
});

Deno.test("sgdUpdate returns the largest |w| after the update, NaN where a weight is NaN or infinite", () => {
  const slots = [{ name: "a", shape: [4], offset: 0, size: 4, lrMult: 1, decayMult: 0 }];
  const hp = { momentum: 0, weightDecay: 0 }, G = new Float32Array(4);
  assert.equal(sgdUpdate(slots, Float32Array.from([0.5, -3, 2, 0]), new Float32Array(4), G, 0.1, hp), 3);
  for (const bad of [NaN, Infinity, -Infinity]) {
    for (let at = 0; at < 4; at++) {
      const W = Float32Array.from([0.5, -3, 2, 0]);
      W[at] = bad;
      assert.ok(Number.isNaN(sgdUpdate(slots, W, new Float32Array(4), G, 0.1, hp)), `${bad} at ${at}`);
    }
  }
});

Deno.test("DeviceEngine (weights and update on the backend) trains as LocalEngine does; pull and push round-trip", async () => {
  await selectBackend("cpu");
  const spec = netSpec({ net: "6c5-8c3-16f", classes: 5, method: "release", seed: 2 });
  const n = 6, rng = new Rng(7);
  const x = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
  const y = Int32Array.from({ length: n }, (_, i) => i % 5);
  const hp = { momentum: 0.9, weightDecay: 0.004 };
  const local = await LocalEngine.create(spec), device = await DeviceEngine.create(spec);
  try {
    assert.deepEqual(device.weights, local.weights);
    const before = tf.memory().numTensors;
    for (let s = 0; s < 3; s++) {
      const a = await local.step(x, y, n, 11 + s), b = await device.step(x, y, n, 11 + s);
      assert.ok(Math.abs(a.loss - b.loss) < 1e-4 * Math.abs(a.loss), `step ${s}: loss ${a.loss} vs ${b.loss}`);
      local.update(0.05, hp);
      device.update(0.05, hp);
    }
    assert.equal(tf.memory().numTensors, before, "tensors left behind");
    await device.pull();
    const close = (p: Float32Array, q: Float32Array, what: string) => {
      let max = 0, scale = 0;
      for (let i = 0; i < p.length; i++) {
        max = Math.max(max, Math.abs(p[i] - q[i]));
        scale = Math.max(scale, Math.abs(q[i]));
      }
      assert.ok(scale > 0 && max < 1e-5 * scale, `${what}: max difference ${max} (scale ${scale})`);
    };
    close(device.weights, local.weights, "weights");
    close(device.momenta, local.momenta, "momenta");
    // Weights and momenta set on the host reach the device.
    for (let i = 0; i < local.weights.length; i++) device.weights[i] = local.weights[i] = local.weights[i] * 0.5;
    device.momenta.fill(0.001);
    device.push();
    const e1 = await local.evaluate(x, y, n), e2 = await device.evaluate(x, y, n);
    assert.ok(Math.abs(e1.loss - e2.loss) < 1e-4 * Math.abs(e1.loss), `evaluation ${e1.loss} vs ${e2.loss}`);
    device.momenta.fill(0);
    await device.pull();
    assert.equal(device.momenta[7], Math.fround(0.001));
  } finally {
    local.close();
    device.close();
    await selectBackend("wasm");
  }
});

Deno.test("accumulate and stats: the steps' summed losses, read once, on LocalEngine and DeviceEngine", async () => {
  await selectBackend("cpu");
  const spec = netSpec({ net: "6c5-8c3", classes: 4, method: "release", seed: 8 });
  const n = 5, rng = new Rng(9);
  const x = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
  const y = Int32Array.from({ length: n }, (_, i) => i % 4);
  const hp = { momentum: 0.9, weightDecay: 0.004 };
  const reference = await LocalEngine.create(spec);
  const expected = { loss: 0, correct: 0 };
  for (let s = 0; s < 3; s++) {
    const r = await reference.step(x, y, n, s);
    expected.loss += r.loss, expected.correct += r.correct;
    reference.update(0.05, hp);
  }
  reference.close();
  for (const create of [LocalEngine.create, DeviceEngine.create]) {
    const engine = await create(spec);
    try {
      for (let s = 0; s < 3; s++) {
        await engine.accumulate(x, y, n, s);
        engine.update(0.05, hp);
      }
      const got = await engine.stats();
      assert.equal(got.samples, 3 * n);
      assert.equal(got.correct, expected.correct);
      assert.ok(Math.abs(got.loss - expected.loss) < 1e-4 * expected.loss, `${got.loss} vs ${expected.loss}`);
      const again = await engine.stats(); // read once
      assert.deepEqual([again.loss, again.correct, again.samples], [0, 0, 0]);
      assert.ok(got.weightMax > 0 && got.weightMax < 10, `the largest weight, ${got.weightMax}`);
    } finally {
      engine.close();
    }
  }
  await selectBackend("wasm");
});
