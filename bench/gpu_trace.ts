/**
 * Where a GPU training step's wall time goes, call by call (bench/gpu.ts --trace): every method of the WebGPU
 * objects (device, queue, buffer, command and pass encoders) is wrapped with a clock for the run of a few steps, and
 * the step's wall time is split into the time inside each WebGPU call (for a call that returns a promise, also the
 * time until it settles), the time in TensorFlow.js and the project's JavaScript around them, and the phases of a
 * step: recording the forward and backward pass, the SGD update, the read of the loss.
 *
 * On an H200 a step of the small network took about 80 ms of wall time for 6.5 ms of kernel time; this found 72.5 of
 * them in `GPUBuffer.getMappedRange`, TensorFlow.js's uploads, which now go through `queue.writeBuffer`
 * (lib/compute/webgpu_upload.ts; bench/README.md, "GPU"). `per_step` counts what a step makes: bind groups, buffer
 * writes, submissions and reads of the loss and correct count, read every `readEvery` steps (100 by default, as
 * `pretrain --log-every 100` reads them; lib/train.ts logs a row every 10 steps unless told otherwise).
 *
 * @module
 */
import { netSpec } from "../lib/nets.ts";
import { tf } from "../lib/compute/backend.ts";
import { createWebGPUStepEngine, DeviceEngine, type GradientEngine } from "../lib/compute/engine.ts";
import { webgpuStepMode } from "../lib/compute/webgpu_step.ts";
import { BATCH, CLASSES, randomBatch } from "./nets_bench.ts";

/** Milliseconds and calls per WebGPU method, summed while tracing is on. */
interface Clock {
  calls: number;
  ms: number;
  settleMs: number;
}

const WRAPPED = ["GPUDevice", "GPUQueue", "GPUBuffer", "GPUCommandEncoder", "GPUComputePassEncoder"];

/** Wraps every method of the WebGPU prototypes with a clock; returns the clocks and a function that unwraps. */
function wrapWebGpu(): { clocks: Map<string, Clock>; unwrap: () => void; on: { value: boolean } } {
  const clocks = new Map<string, Clock>(), undo: (() => void)[] = [], on = { value: false };
  for (const name of WRAPPED) {
    const proto = (globalThis as unknown as Record<string, { prototype: object } | undefined>)[name]?.prototype;
    if (!proto) continue;
    for (const key of Object.getOwnPropertyNames(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, key);
      if (key === "constructor" || !d || typeof d.value !== "function") continue;
      const f = d.value as (...a: unknown[]) => unknown, label = `${name}.${key}`;
      const wrapped = function (this: unknown, ...args: unknown[]): unknown {
        if (!on.value) return f.apply(this, args);
        const c = clocks.get(label) ?? { calls: 0, ms: 0, settleMs: 0 };
        clocks.set(label, c);
        const t0 = performance.now(), r = f.apply(this, args), t1 = performance.now();
        c.calls++;
        c.ms += t1 - t0;
        if (r instanceof Promise) {
          return r.finally(() => void (c.settleMs += performance.now() - t1));
        }
        return r;
      };
      Object.defineProperty(proto, key, { ...d, value: wrapped });
      undo.push(() => Object.defineProperty(proto, key, d));
    }
  }
  return { clocks, unwrap: () => undo.forEach((u) => u()), on };
}

/** The clocks as rows, slowest first (time inside the call and until it settled), each figure divided by `n`. */
function callRows(clocks: Map<string, Clock>, n: number, perName: string): Record<string, string | number>[] {
  const per = (v: number) => Number((v / n).toFixed(3));
  return [...clocks.entries()].sort((a, b) => (b[1].ms + b[1].settleMs) - (a[1].ms + a[1].settleMs))
    .map(([k, c]) => ({ call: k, [perName]: per(c.calls), ms: per(c.ms), settle_ms: per(c.settleMs) }));
}

/** Traces `steps` training steps of `net` (loss read every `readEvery` steps) and a few inference batches. */
export async function trace(net = "64c5-64c5-128f", steps = 100, readEvery = 100): Promise<Record<string, unknown>> {
  const { clocks, unwrap, on } = wrapWebGpu();
  // The engine training would use (EXEMPLAR_WEBGPU_STEP): the project's recorded step, or TensorFlow.js's.
  const spec = netSpec({ net, classes: CLASSES, method: "release", seed: 1 });
  const engine: GradientEngine = (webgpuStepMode() !== "tfjs" ? await createWebGPUStepEngine(spec) : null) ??
    await DeviceEngine.create(spec);
  const hp = { momentum: 0.9, weightDecay: 0.004 };
  try {
    const { x, y } = randomBatch();
    const phases = { record_ms: 0, update_ms: 0, read_ms: 0 };
    const oneStep = async (i: number) => {
      const t0 = performance.now();
      await engine.accumulate(x, y, BATCH, i + 2);
      const t1 = performance.now();
      engine.update(1e-4, hp);
      const t2 = performance.now();
      if (i % readEvery === readEvery - 1) await engine.stats();
      const t3 = performance.now();
      return [t1 - t0, t2 - t1, t3 - t2];
    };
    // Warm: pipelines compiled, buffers pooled, the sums of the warm steps read.
    for (let i = 0; i < Math.min(10, steps); i++) await oneStep(i);
    await engine.stats();
    on.value = true;
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      const [a, b, c] = await oneStep(i);
      phases.record_ms += a;
      phases.update_ms += b;
      phases.read_ms += c;
    }
    const wall = performance.now() - t0;
    on.value = false;
    const per = (ms: number) => Number((ms / steps).toFixed(3));
    const inGpuCalls = [...clocks.values()].reduce((s, c) => s + c.ms, 0);
    const calls = (k: string) => per(clocks.get(k)?.calls ?? 0);
    // What a step costs the CPU in WebGPU objects (the project's step: 0 bind groups, 3 writes, 1 submission).
    const perStep = {
      bind_groups: calls("GPUDevice.createBindGroup"),
      writes: calls("GPUQueue.writeBuffer"),
      submissions: calls("GPUQueue.submit"),
      reads: calls("GPUBuffer.mapAsync"),
    };
    const rows = callRows(clocks, steps, "per_step");
    clocks.clear();
    // Inference: the forward pass and one read of the scores per batch.
    on.value = true;
    const t1 = performance.now();
    for (let i = 0; i < 5; i++) await engine.evaluate(x, y, BATCH);
    const inferWall = (performance.now() - t1) / 5;
    on.value = false;
    const inferRows = callRows(clocks, 5, "per_batch").slice(0, 8);
    return {
      net,
      step: webgpuStepMode(),
      steps,
      read_every: readEvery,
      per_step: perStep,
      step_wall_ms: per(wall),
      step_in_webgpu_calls_ms: per(inGpuCalls),
      step_outside_webgpu_calls_ms: per(wall - inGpuCalls),
      phases_ms: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, per(v)])),
      tf_flags: {
        WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE: tf.env().get("WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE"),
        WEBGPU_CPU_FORWARD: tf.env().get("WEBGPU_CPU_FORWARD"),
      },
      calls: rows,
      infer_wall_ms: Number(inferWall.toFixed(3)),
      infer_calls: inferRows,
    };
  } finally {
    engine.close();
    unwrap();
  }
}
