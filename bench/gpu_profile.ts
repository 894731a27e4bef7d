/**
 * Where a training step's time goes on the current backend: one step of a network (batch 128, 1000 classes) with
 * {@link DeviceEngine}, as pretraining runs it on a GPU, under `tf.profile`: each kernel's device time (WebGPU
 * timestamp queries) summed by kernel name and input shapes. (The in-place SGD pass is not a TensorFlow.js kernel
 * and is not in the profile; the wall time includes it.)
 * Used by the GPU check (bench/gpu.ts --profile).
 *
 * @module
 */
import { netSpec } from "../lib/nets.ts";
import { tf } from "../lib/compute/backend.ts";
import { DeviceEngine } from "../lib/compute/engine.ts";
import { BATCH, CLASSES, randomBatch } from "./nets_bench.ts";

/** One row of a profile: a kernel with its input shapes, how often it ran in the step and its summed time. */
export interface ProfileRow {
  kernel: string;
  shapes: string;
  calls: number;
  ms: number;
}

/** Profiles one training step of `name` (after a warm-up step) and returns the rows, slowest first. */
export async function profileStep(name: string): Promise<{ rows: ProfileRow[]; totalMs: number; wallMs: number }> {
  const engine = await DeviceEngine.create(netSpec({ net: name, classes: CLASSES, method: "release", seed: 1 }));
  const hp = { momentum: 0.9, weightDecay: 0.004 };
  try {
    const { x, y } = randomBatch();
    await engine.step(x, y, BATCH, 1);
    engine.update(1e-4, hp);
    const t0 = performance.now();
    const info = await tf.profile(async () => {
      await engine.step(x, y, BATCH, 2);
      engine.update(1e-4, hp);
    });
    const wallMs = performance.now() - t0;
    const rows = new Map<string, ProfileRow>();
    for (const k of info.kernels) {
      const shapes = k.inputShapes.map((s) => `[${s}]`).join(" ");
      const key = `${k.name} ${shapes}`;
      const row = rows.get(key) ?? { kernel: k.name, shapes, calls: 0, ms: 0 };
      row.calls++;
      row.ms += Number(k.kernelTimeMs) || 0;
      rows.set(key, row);
    }
    const sorted = [...rows.values()].sort((a, b) => b.ms - a.ms);
    return { rows: sorted, totalMs: sorted.reduce((a, r) => a + r.ms, 0), wallMs };
  } finally {
    engine.close();
  }
}
