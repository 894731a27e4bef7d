/**
 * Where a GPU training step's time goes outside the kernels (bench/gpu.ts --latency). On an H200 a step of the small
 * network took about 80 ms of wall time for 6.5 ms of kernel time until uploads went through `queue.writeBuffer`
 * (lib/compute/webgpu_upload.ts; bench/README.md, "GPU"). Each line times one ingredient through TensorFlow.js's
 * WebGPU backend, as milliseconds per operation: a read back to the CPU, a dispatch, an upload of a batch, a queue
 * submission and the wait for it to finish, a uniform write; then one training step of the small network with its
 * loss read at every step, once per 10 steps and never. (`--trace`, bench/gpu_trace.ts, splits a step by WebGPU call.)
 *
 * @module
 */
import { netSpec } from "../lib/nets.ts";
import { tf } from "../lib/compute/backend.ts";
import { DeviceEngine } from "../lib/compute/engine.ts";
import { BATCH, CLASSES, randomBatch } from "./nets_bench.ts";

async function perOp(n: number, f: (i: number) => void | Promise<void>, sync: () => Promise<unknown>): Promise<number> {
  await f(-1);
  await sync();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await f(i);
  await sync();
  return Number(((performance.now() - t0) / n).toFixed(3));
}

/** Times each ingredient on the current (WebGPU) backend; returns milliseconds per operation. */
export async function latency(net = "64c5-64c5-128f"): Promise<Record<string, number>> {
  // deno-lint-ignore no-explicit-any
  const device = (tf.backend() as any).device as GPUDevice;
  // (4096 values: TensorFlow.js runs operations on fewer than 1000 values of CPU-held data on the CPU, and a read of
  // those would not touch the GPU.)
  const small = tf.ones([4096]);
  const done = () => device.queue.onSubmittedWorkDone();
  const out: Record<string, number> = {};
  out.read_ms = await perOp(30, async (i) => {
    const t = small.add(i);
    await t.data();
    t.dispose();
  }, done);
  const kept: tf.Tensor[] = [];
  out.dispatch_ms = await perOp(300, (i) => void kept.push(small.add(i)), async () => {
    if (kept.length) await kept[kept.length - 1].data();
    tf.dispose(kept.splice(0));
  });
  const batch = new Float32Array(BATCH * 32 * 32 * 3);
  out.upload_batch_ms = await perOp(20, () => {
    const t = tf.tensor(batch), u = t.add(1);
    kept.push(u);
    t.dispose();
  }, async () => {
    if (kept.length) await kept[kept.length - 1].data();
    tf.dispose(kept.splice(0));
  });
  out.submit_ms = await perOp(30, async () => {
    device.queue.submit([]);
    await done();
  }, done);
  const uniform = device.createBuffer({ size: 64, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const bytes = new Float32Array(16);
  out.write_buffer_ms = await perOp(300, () => device.queue.writeBuffer(uniform, 0, bytes), done);
  uniform.destroy();
  small.dispose();

  const engine = await DeviceEngine.create(netSpec({ net, classes: CLASSES, method: "release", seed: 1 }));
  try {
    const { x, y } = randomBatch();
    const hp = { momentum: 0.9, weightDecay: 0.004 };
    out.step_read_every_step_ms = await perOp(20, async (i) => {
      await engine.step(x, y, BATCH, i + 2);
      engine.update(1e-4, hp);
    }, () => engine.stats());
    out.step_read_every_10_ms = await perOp(30, async (i) => {
      await engine.accumulate(x, y, BATCH, i + 2);
      engine.update(1e-4, hp);
      if (i % 10 === 9) await engine.stats();
    }, () => engine.stats());
    out.step_no_read_ms = await perOp(30, async (i) => {
      await engine.accumulate(x, y, BATCH, i + 2);
      engine.update(1e-4, hp);
    }, () => engine.stats());
  } finally {
    engine.close();
  }
  return out;
}
