/**
 * A gradient worker of {@link ParallelEngine}: its own wasm backend and a copy
 * of the network; reads the weights from shared memory before each step and
 * writes its gradient (of the summed loss of its share) into shared memory.
 *
 * @module
 */
import { selectBackend } from "./backend.ts";
import { NetRunner, type StepResult, type WorkerRequest } from "./engine.ts";
import { serveRequests } from "./pool.ts";

let runner: NetRunner | null = null;
let weights: Float32Array, grads: Float32Array;

serveRequests<WorkerRequest, StepResult | null>(async (m) => {
  if (m.kind === "init") {
    await selectBackend("wasm");
    runner = await NetRunner.create(m.spec);
    weights = m.weights;
    grads = m.grads;
    return null;
  }
  runner!.load(weights);
  const r = m.kind === "step"
    ? await runner!.step(m.x, m.y, m.n, m.dropoutSeed, grads)
    : await runner!.evaluate(m.x, m.y, m.n);
  return { loss: r.loss, correct: r.correct };
});
