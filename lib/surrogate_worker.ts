/**
 * Worker side of {@link SurrogateLoader}: rebuilds the surrogate data set from
 * the shared seeds and generates the batches it is asked for.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { SurrogateData, type SurrogateWorkerInit } from "./surrogate.ts";
import type { Seeds } from "./seeds.ts";

let data: SurrogateData | null = null;

self.onmessage = (e: MessageEvent<{ init?: SurrogateWorkerInit; b?: number; size?: number }>) => {
  const m = e.data;
  if (m.init) {
    const seeds: Seeds = { n: m.init.n, context: m.init.context, origins: [], method: "paper" };
    data = new SurrogateData(seeds, m.init.opts, { pca: m.init.pca, mean: m.init.mean });
    return;
  }
  const { x, y } = data!.batch(m.b!, m.size!);
  self.postMessage({ b: m.b, x, y }, { transfer: [x.buffer as ArrayBuffer, y.buffer as ArrayBuffer] });
};
