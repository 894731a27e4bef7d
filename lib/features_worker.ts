/**
 * A feature-extraction worker: its own wasm backend, the network (trained
 * weights or the seeded random initialisation) and its own reader of the data
 * set; extracts the features of the images it is given.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { selectBackend } from "./compute/backend.ts";
import { openDataset } from "./data/mod.ts";
import { NetRunner, type NetSpec } from "./compute/engine.ts";
import { extractFeatures, type Pooling } from "./features.ts";

/** A request to a feature worker. */
export interface FeatureJob {
  spec: NetSpec;
  /** Flat weights in the network's parameter order; null keeps the seeded initialisation. */
  weights: Float32Array | null;
  data: string;
  split: string;
  indices: number[];
  size: number;
  pooling: Pooling;
  mean: [number, number, number];
}

self.onmessage = async (e: MessageEvent<FeatureJob>) => {
  try {
    const job = e.data;
    await selectBackend("wasm");
    const runner = new NetRunner(job.spec);
    if (job.weights) runner.load(job.weights);
    const ds = await openDataset(job.data);
    const f = await extractFeatures(runner.net, ds.splits[job.split], job.indices, {
      size: job.size,
      pooling: job.pooling,
      mean: job.mean,
      onProgress: (done) => self.postMessage({ progress: done }),
    });
    ds.close();
    runner.net.dispose();
    self.postMessage({ done: true, n: f.n, dim: f.dim, x: f.x }, { transfer: [f.x.buffer as ArrayBuffer] });
  } catch (err) {
    self.postMessage({ error: (err as Error).message });
  }
};
