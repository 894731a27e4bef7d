import assert from "node:assert/strict";
import { requestGpuAdapter, selectBackend, tf } from "../lib/compute/backend.ts";
import { DeviceEngine, type GradientEngine, LocalEngine } from "../lib/compute/engine.ts";
import { Rng } from "../lib/util/rng.ts";
import { netSpec } from "../lib/nets.ts";

// The WebGPU path, exercised on the software adapter (llvmpipe) that Deno offers on a machine without a GPU: the
// chain never picks it by itself, `softwareGpu` lets a test use it. Skipped only where not even that adapter exists.
const adapter = await requestGpuAdapter();

Deno.test("WebGPU: a training step and an evaluation equal the wasm backend's", { ignore: !adapter }, async () => {
  // With an FC layer and dropout: the dropout mask comes from the same seed on every backend.
  const spec = netSpec({ net: "8c5-8c5-16f", classes: 10, method: "release", seed: 3 });
  const n = 8, rng = new Rng(2);
  const x = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
  const y = Int32Array.from({ length: n }, (_, i) => i % 10);
  const run = async (backend: string) => {
    await selectBackend(backend, { softwareGpu: true });
    assert.equal(tf.getBackend(), backend);
    const engine = await LocalEngine.create(spec);
    try {
      const before = tf.memory().numTensors;
      const step = await engine.step(x, y, n, 5);
      const grads = engine.grads.slice();
      for (let i = 0; i < engine.weights.length; i++) engine.weights[i] -= 0.01 * grads[i];
      const evaluation = await engine.evaluate(x, y, n);
      assert.equal(tf.memory().numTensors, before, `${backend}: tensors left behind`);
      return { weights: engine.weights.slice(), step, grads, evaluation };
    } finally {
      engine.close();
    }
  };
  const wasm = await run("wasm");
  const gpu = await run("webgpu");
  assert.deepEqual(gpu.weights.length, wasm.weights.length);
  assert.ok(Math.abs(gpu.step.loss - wasm.step.loss) < 1e-4 * Math.abs(wasm.step.loss), `loss ${gpu.step.loss}`);
  assert.equal(gpu.step.correct, wasm.step.correct);
  let max = 0, scale = 0;
  for (let i = 0; i < wasm.grads.length; i++) {
    max = Math.max(max, Math.abs(gpu.grads[i] - wasm.grads[i]));
    scale = Math.max(scale, Math.abs(wasm.grads[i]));
  }
  assert.ok(scale > 0 && max < 1e-4 * scale, `max gradient difference ${max} (scale ${scale})`);
  assert.ok(Math.abs(gpu.evaluation.loss - wasm.evaluation.loss) < 1e-4 * Math.abs(wasm.evaluation.loss));
  await selectBackend("wasm");
});

Deno.test("WebGPU: the chain refuses a software adapter unless asked", { ignore: !adapter }, async () => {
  const fallback = adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter;
  if (!fallback) return; // a real GPU: nothing to refuse
  await assert.rejects(() => selectBackend("webgpu"), /--backend webgpu: only a software \(fallback\) WebGPU adapter/);
  const info = await selectBackend();
  assert.notEqual(info.name, "webgpu");
  assert.ok(info.skipped.some((s) => s.startsWith("webgpu: only a software")), info.skipped.join("; "));
});

Deno.test(
  "WebGPU: DeviceEngine (in-place WGSL update) trains as LocalEngine on wasm does",
  { ignore: !adapter },
  async () => {
    const spec = netSpec({ net: "8c5-8c5-16f", classes: 10, method: "release", seed: 5 });
    const n = 8, rng = new Rng(4);
    const x = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
    const y = Int32Array.from({ length: n }, (_, i) => i % 10);
    const hp = { momentum: 0.9, weightDecay: 0.004 };
    const train = async (engine: GradientEngine) => {
      const losses = [];
      for (let s = 0; s < 4; s++) {
        losses.push((await engine.step(x, y, n, 21 + s)).loss);
        engine.update(0.05, hp);
      }
      await engine.pull();
      const out = { losses, weights: engine.weights.slice(), momenta: engine.momenta.slice() };
      engine.close();
      return out;
    };
    await selectBackend("wasm");
    const cpu = await train(await LocalEngine.create(spec));
    await selectBackend("webgpu", { softwareGpu: true });
    const before = tf.memory().numTensors;
    const gpu = await train(await DeviceEngine.create(spec));
    assert.equal(tf.memory().numTensors, before, "tensors left behind");
    for (let s = 0; s < 4; s++) {
      assert.ok(
        Math.abs(gpu.losses[s] - cpu.losses[s]) < 1e-4 * cpu.losses[s],
        `step ${s}: ${gpu.losses} vs ${cpu.losses}`,
      );
    }
    for (const k of ["weights", "momenta"] as const) {
      let max = 0, scale = 0;
      for (let i = 0; i < cpu[k].length; i++) {
        max = Math.max(max, Math.abs(gpu[k][i] - cpu[k][i]));
        scale = Math.max(scale, Math.abs(cpu[k][i]));
      }
      assert.ok(scale > 0 && max < 1e-4 * scale, `${k}: max difference ${max} (scale ${scale})`);
    }
    await selectBackend("wasm");
  },
);

Deno.test("WebGPU: tensors go to the GPU through queue.writeBuffer, values intact", { ignore: !adapter }, async () => {
  await selectBackend("webgpu", { softwareGpu: true });
  // Count the calls of TensorFlow.js's own upload path (a buffer mapped at creation, filled through getMappedRange).
  const proto = GPUBuffer.prototype, own = proto.getMappedRange;
  let mapped = 0;
  proto.getMappedRange = function (this: GPUBuffer, ...a: [number?, number?]) {
    mapped++;
    return own.apply(this, a);
  };
  try {
    const n = 3000; // above TensorFlow.js's size for running small operations on the CPU
    const f = Float32Array.from({ length: n }, (_, i) => i / 7 - 100);
    const i32 = Int32Array.from({ length: n }, (_, i) => i * 31 - 5000);
    const bools = Uint8Array.from({ length: n }, (_, i) => i % 3 === 0 ? 1 : 0);
    const [a, b, c] = [tf.tensor(f), tf.tensor(i32, undefined, "int32"), tf.tensor(bools, undefined, "bool")];
    // Each goes through a GPU operation, so each is uploaded; the reads come back through mapAsync.
    const outs = [a.mul(1), b.add(0), c.logicalNot().logicalNot()];
    const before = mapped;
    tf.dispose([a, b, c]);
    const [rf, ri, rb] = await Promise.all(outs.map((t) => t.data()));
    assert.deepEqual(rf, f);
    assert.deepEqual(Array.from(ri), Array.from(i32));
    assert.deepEqual(Array.from(rb), Array.from(bools));
    tf.dispose(outs);
    // Only the three reads mapped a buffer: none of the uploads did.
    assert.equal(mapped - before, 3, `getMappedRange calls: ${mapped - before}`);
    assert.equal(before, 0, `uploads mapped ${before} buffers`);
  } finally {
    proto.getMappedRange = own;
    await selectBackend("wasm");
  }
});

Deno.test(
  "WebGPU: DeviceEngine reports weights that blew up or stopped being numbers",
  { ignore: !adapter },
  async () => {
    await selectBackend("webgpu", { softwareGpu: true });
    const engine = await DeviceEngine.create(netSpec({ net: "8c5-16f", classes: 4, method: "paper", seed: 1 }));
    try {
      const n = 4, rng = new Rng(3);
      const x = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
      const y = Int32Array.from({ length: n }, (_, i) => i % 4);
      const hyper = { momentum: 0.9, weightDecay: 0 };
      await engine.accumulate(x, y, n, 1);
      engine.update(0.01, hyper);
      const sane = await engine.stats();
      assert.ok(sane.weightMax > 0 && sane.weightMax < 10, `weights after a small step: ${sane.weightMax}`);
      await engine.accumulate(x, y, n, 2);
      engine.update(1e30, hyper);
      await engine.accumulate(x, y, n, 3);
      engine.update(1e30, hyper);
      const blown = await engine.stats();
      assert.ok(!(blown.weightMax <= 1e3), `weights after steps at rate 1e30: ${blown.weightMax}`);
    } finally {
      engine.close();
      await selectBackend("wasm");
    }
  },
);
