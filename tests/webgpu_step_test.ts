import assert from "node:assert/strict";
import { requestGpuAdapter, selectBackend, tf } from "../lib/compute/backend.ts";
import {
  createWebGPUStepEngine,
  type GradientEngine,
  LocalEngine,
  NetRunner,
  type NetSpec,
} from "../lib/compute/engine.ts";
import { webgpuInternals } from "../lib/compute/tfjs_internals.ts";
import { alea, keepBits, type WebGPUStepEngine } from "../lib/compute/webgpu_step.ts";
import { netSpec, PAPER_NETS } from "../lib/nets.ts";
import { Rng } from "../lib/util/rng.ts";

// The project's recorded WebGPU training step (lib/compute/webgpu_step.ts) on the software adapter (llvmpipe), against
// TensorFlow.js's own step of the same network. Skipped only where not even that adapter exists.
const adapter = await requestGpuAdapter();
const HP = { momentum: 0.9, weightDecay: 0.004 };

function batch(n: number, classes: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  return {
    x: Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal()),
    y: Int32Array.from({ length: n }, (_, i) => (i * 7 + seed) % classes),
  };
}

async function stepEngine(spec: NetSpec, version?: string): Promise<WebGPUStepEngine> {
  await selectBackend("webgpu", { softwareGpu: true });
  if (version) Deno.env.set("EXEMPLAR_WEBGPU_STEP", version);
  try {
    return (await createWebGPUStepEngine(spec))!;
  } finally {
    Deno.env.delete("EXEMPLAR_WEBGPU_STEP");
  }
}

/** Largest difference over the largest magnitude of `want`, per parameter of `engine`. */
function compare(engine: GradientEngine, got: Float32Array, want: Float32Array, what: string, tol: number): void {
  for (const s of engine.slots) {
    let max = 0, scale = 0;
    for (let i = s.offset; i < s.offset + s.size; i++) {
      max = Math.max(max, Math.abs(got[i] - want[i]));
      if (!Number.isFinite(got[i])) max = Infinity;
      scale = Math.max(scale, Math.abs(want[i]));
    }
    assert.ok(max <= tol * scale, `${what}, ${s.name}: max difference ${max} (scale ${scale})`);
  }
}

Deno.test("WebGPU step: dropout masks are TensorFlow.js's for the same seed", async () => {
  await selectBackend("cpu");
  for (const [seed, rate] of [[7, 0.5], [123456, 0.3]]) {
    const m = tf.tidy(() => tf.dropout(tf.ones([3, 700]), rate, undefined, seed).dataSync());
    const bits = new Uint32Array(Math.ceil(2100 / 32) + 2);
    keepBits(seed, 2100, rate, bits, 2);
    for (let e = 0; e < 2100; e++) {
      assert.equal((bits[2 + (e >> 5)] >>> (e & 31)) & 1, m[e] > 0 ? 1 : 0, `seed ${seed}, element ${e}`);
    }
  }
  const a = alea("1"), b = alea("1"), c = alea("2");
  assert.equal(a(), b());
  assert.notEqual(a(), c());
  await selectBackend("wasm");
});

Deno.test(
  "WebGPU step: gradients, loss and correct count equal TensorFlow.js's within 1e-5 of each gradient's scale",
  { ignore: !adapter },
  async () => {
    const nets: [string, "paper" | "release", number][] = [
      ["8c5-12c3-6c3-10f", "release", 4], // 3x3 pooling, an unpooled convolution, odd sizes
      ["6c5-8c5-24f-16f", "paper", 3], // 2x2 pooling, two dense layers with dropout
      [PAPER_NETS.medium, "release", 2],
    ];
    for (const [net, method, n] of nets) {
      const spec = netSpec({ net, classes: 10, method, seed: 2 });
      const { x, y } = batch(n, 10, 5);
      // (The first GEMM kernel on the small networks only: the paper's network takes minutes on the software adapter.)
      for (const version of net === PAPER_NETS.medium ? ["project"] : ["project", "project-gemm1"]) {
        const engine = await stepEngine(spec, version);
        let ours, grads;
        try {
          ours = await engine.step(x, y, n, 17);
          grads = await engine.gradients();
        } finally {
          engine.close();
        }
        // TensorFlow.js's step of the same network (same weights, same dropout masks), on the same adapter.
        const runner = await NetRunner.create(spec);
        const want = new Float32Array(grads.length);
        let theirs;
        try {
          theirs = await runner.step(x, y, n, 17, want);
        } finally {
          runner.net.dispose();
        }
        const what = `${net} (${method}, ${version})`;
        assert.ok(Math.abs(ours.loss - theirs.loss) <= 1e-5 * theirs.loss, `${what}: loss ${ours.loss} ${theirs.loss}`);
        assert.equal(ours.correct, theirs.correct, what);
        compare(engine, grads, want, what, 1e-5);
      }
    }
    await selectBackend("wasm");
  },
);

Deno.test(
  "WebGPU step: trains as LocalEngine on wasm does; evaluation; weights and momenta come back",
  { ignore: !adapter },
  async () => {
    const spec = netSpec({ net: "8c5-8c5-16f", classes: 10, method: "release", seed: 5 });
    const n = 8, { x, y } = batch(n, 10, 4);
    const train = async (engine: GradientEngine) => {
      const losses = [];
      for (let s = 0; s < 4; s++) {
        losses.push((await engine.step(x, y, n, 21 + s)).loss);
        engine.update(0.05, HP);
      }
      const evaluation = await engine.evaluate(x, y, n);
      await engine.pull();
      const out = { losses, evaluation, weights: engine.weights.slice(), momenta: engine.momenta.slice() };
      engine.close();
      return out;
    };
    await selectBackend("wasm");
    const cpu = await train(await LocalEngine.create(spec));
    const gpu = await train(await stepEngine(spec));
    for (let s = 0; s < 4; s++) {
      assert.ok(
        Math.abs(gpu.losses[s] - cpu.losses[s]) < 1e-4 * cpu.losses[s],
        `step ${s}: ${gpu.losses} vs ${cpu.losses}`,
      );
    }
    assert.ok(Math.abs(gpu.evaluation.loss - cpu.evaluation.loss) < 1e-4 * cpu.evaluation.loss);
    assert.equal(gpu.evaluation.correct, cpu.evaluation.correct);
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

Deno.test(
  "WebGPU step: a resumed engine continues bit for bit; sums read later are the sums of their own steps",
  { ignore: !adapter },
  async () => {
    const spec = netSpec({ net: "4c5-4c5-8f", classes: 6, method: "paper", seed: 9 });
    const n = 4, { x, y } = batch(n, 6, 1);
    const a = await stepEngine(spec), b = await stepEngine(spec);
    try {
      for (let s = 0; s < 2; s++) {
        await a.accumulate(x, y, n, 40 + s);
        a.update(0.02, HP);
      }
      const first = a.stats(); // the snapshot of steps 1-2, awaited after step 3 is submitted
      await a.pull();
      b.weights.set(a.weights);
      b.momenta.set(a.momenta);
      b.push();
      await a.accumulate(x, y, n, 42);
      a.update(0.02, HP);
      const [s12, s3] = [await first, await a.stats()];
      assert.equal(s12.samples, 2 * n);
      assert.equal(s3.samples, n);
      const direct = await b.step(x, y, n, 42); // the same step on the resumed engine, read at once
      b.update(0.02, HP);
      assert.equal(s3.loss, direct.loss);
      assert.equal(s3.correct, direct.correct);
      assert.ok(s12.loss > 0 && s12.weightMax > 0 && s3.weightMax > 0);
      await a.pull();
      await b.pull();
      assert.deepEqual(b.weights, a.weights);
      assert.deepEqual(b.momenta, a.momenta);
      assert.equal((await b.stats()).samples, 0); // step() does not count towards the sums
    } finally {
      a.close();
      b.close();
      await selectBackend("wasm");
    }
  },
);

Deno.test(
  "WebGPU step: a step makes no bind group and no TensorFlow.js program, three writes and one submission",
  { ignore: !adapter },
  async () => {
    const spec = netSpec({ net: "4c5-4c5-8f", classes: 6, method: "release", seed: 1 });
    const n = 4, { x, y } = batch(n, 6, 2);
    const engine = await stepEngine(spec);
    const backend = webgpuInternals(), own = backend.runWebGPUProgram;
    const counts = { bindGroups: 0, writes: 0, submits: 0, maps: 0, programs: 0 };
    const wrap = <T extends object>(proto: T, key: keyof T, count: keyof typeof counts) => {
      const f = proto[key] as (...a: unknown[]) => unknown;
      (proto as Record<keyof T, unknown>)[key] = function (this: unknown, ...a: unknown[]) {
        counts[count]++;
        return f.apply(this, a);
      };
      return () => (proto as Record<keyof T, unknown>)[key] = f;
    };
    const undo = [
      wrap(GPUDevice.prototype, "createBindGroup", "bindGroups"),
      wrap(GPUQueue.prototype, "writeBuffer", "writes"),
      wrap(GPUQueue.prototype, "submit", "submits"),
      wrap(GPUBuffer.prototype, "mapAsync", "maps"),
    ];
    backend.runWebGPUProgram = function (this: typeof backend, ...a) {
      counts.programs++;
      return own.apply(this, a);
    };
    try {
      await engine.accumulate(x, y, n, 1); // the first step builds the plan
      engine.update(0.01, HP);
      await engine.stats();
      Object.keys(counts).forEach((k) => counts[k as keyof typeof counts] = 0);
      for (let s = 0; s < 5; s++) {
        await engine.accumulate(x, y, n, 2 + s);
        engine.update(0.01, HP);
      }
      assert.deepEqual(counts, { bindGroups: 0, writes: 15, submits: 5, maps: 0, programs: 0 });
      const sums = await engine.stats();
      assert.equal(sums.samples, 5 * n);
      assert.equal(counts.maps, 1);
    } finally {
      undo.forEach((u) => u());
      backend.runWebGPUProgram = own;
      engine.close();
      await selectBackend("wasm");
    }
  },
);

Deno.test("WebGPU step: weights that blew up or stopped being numbers are reported", { ignore: !adapter }, async () => {
  const engine = await stepEngine(netSpec({ net: "8c5-16f", classes: 4, method: "paper", seed: 1 }));
  try {
    const n = 4, { x, y } = batch(n, 4, 3), hyper = { momentum: 0.9, weightDecay: 0 };
    await engine.accumulate(x, y, n, 1);
    engine.update(0.01, hyper);
    const sane = await engine.stats();
    assert.ok(sane.weightMax > 0 && sane.weightMax < 10, `weights after a small step: ${sane.weightMax}`);
    for (let s = 0; s < 2; s++) {
      await engine.accumulate(x, y, n, 2 + s);
      engine.update(1e30, hyper);
    }
    const blown = await engine.stats();
    assert.ok(!(blown.weightMax <= 1e3), `weights after steps at rate 1e30: ${blown.weightMax}`);
    engine.weights[3] = NaN;
    engine.push();
    await engine.accumulate(x, y, n, 5);
    engine.update(0, hyper);
    assert.ok(Number.isNaN((await engine.stats()).weightMax));
    assert.throws(() => engine.update(0.01, hyper), /no gradient/);
  } finally {
    engine.close();
    await selectBackend("wasm");
  }
});
