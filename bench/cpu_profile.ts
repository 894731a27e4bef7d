/**
 * `deno run -A bench/cpu_profile.ts [--net NAME] [--steps S]`
 *
 * Where a CPU training step's time goes: the step as lib/train.ts runs it on the wasm backend (OpenBLAS where it
 * opens), in one thread, batch 128 and 1000 classes (bench/nets_bench.ts), with every kernel of the backend timed
 * by a clock around it. Prints the step's time, then the milliseconds a step (and calls a step) of each kernel that
 * takes at least one, the others together, what the kernels leave (TensorFlow.js's bookkeeping) and the SGD update.
 *
 * @module
 */
import { selectBackend, tf } from "../lib/compute/backend.ts";
import { createEngine } from "../lib/compute/engine.ts";
import { netSpec } from "../lib/nets.ts";
import { intFlag, parseFlags, runTask } from "../lib/util/cli.ts";
import { BATCH, CLASSES, randomBatch } from "./nets_bench.ts";

const USAGE = "deno run -A bench/cpu_profile.ts [--net NAME] [--steps S]";

await runTask(async (args) => {
  const { values } = parseFlags(args, {
    net: { type: "string", help: "the network (default 64c5-64c5-128f)" },
    steps: { type: "string", help: "steps timed, after three untimed ones (default 8)" },
  }, USAGE);
  const name = (values.net as string | undefined) ?? "64c5-64c5-128f";
  const steps = intFlag("steps", values.steps as string | undefined, 8, 1);
  const info = await selectBackend("wasm");
  const engine = await createEngine(info, netSpec({ net: name, classes: CLASSES, method: "release", seed: 1 }), 1);
  // Every kernel of the backend, wrapped with a clock (running only while `timing`).
  const times = new Map<string, { ms: number; calls: number }>();
  let timing = false;
  for (const k of tf.getKernelsForBackend("wasm")) {
    const f = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, "wasm");
    tf.registerKernel({
      ...k,
      kernelFunc: (a: Parameters<typeof f>[0]) => {
        if (!timing) return f(a);
        const t = performance.now(), r = f(a);
        const e = times.get(k.kernelName) ?? { ms: 0, calls: 0 };
        e.ms += performance.now() - t;
        e.calls++;
        times.set(k.kernelName, e);
        return r;
      },
    });
  }
  const { x, y } = randomBatch();
  const hp = { momentum: 0.9, weightDecay: 0.004 };
  for (let s = 1; s <= 3; s++) {
    await engine.accumulate(x, y, BATCH, s);
    engine.update(1e-4, hp);
  }
  await engine.stats();
  timing = true;
  let update = 0;
  const t0 = performance.now();
  for (let s = 4; s < 4 + steps; s++) {
    await engine.accumulate(x, y, BATCH, s);
    const t = performance.now();
    engine.update(1e-4, hp);
    update += performance.now() - t;
  }
  await engine.stats();
  const wall = (performance.now() - t0) / steps;
  timing = false;
  engine.close();
  console.log(`${name}, one thread: ${wall.toFixed(1)} ms a step (${(BATCH / wall * 1000).toFixed(1)} samples/s)`);
  let kernels = 0, rest = 0;
  const line = (what: string, ms: number, calls = "") =>
    console.log(`  ${what.padEnd(24)} ${ms.toFixed(1).padStart(7)} ms  ${calls}`);
  for (const [k, v] of [...times].sort((a, b) => b[1].ms - a[1].ms)) {
    kernels += v.ms / steps;
    if (v.ms / steps >= 1) line(k, v.ms / steps, `${v.calls / steps} calls`);
    else rest += v.ms / steps;
  }
  line("(other kernels)", rest);
  line("(outside kernels)", wall - kernels - update / steps);
  line("(SGD update)", update / steps);
});
