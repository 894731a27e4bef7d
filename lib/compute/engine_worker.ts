/**
 * A gradient worker of {@link ParallelEngine}: its own wasm backend and a copy
 * of the network; reads the weights from shared memory before each step and
 * writes its gradient (of the summed loss of its share) into shared memory.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { selectBackend } from "./backend.ts";
import { NetRunner, type WorkerRequest } from "./engine.ts";

let runner: NetRunner | null = null;
let weights: Float32Array, grads: Float32Array;

self.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const m = e.data;
  if (m.kind === "init") {
    await selectBackend("wasm");
    runner = new NetRunner(m.spec);
    weights = m.weights;
    grads = m.grads;
    self.postMessage({ ready: true });
    return;
  }
  runner!.load(weights);
  const r = m.kind === "step"
    ? await runner!.step(m.x, m.y, m.n, m.dropoutSeed, grads)
    : await runner!.evaluate(m.x, m.y, m.n);
  self.postMessage({ id: m.id, loss: r.loss, correct: r.correct });
};
