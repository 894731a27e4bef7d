/**
 * A feature-extraction worker: its own wasm backend, the networks (trained weights or the seeded random
 * initialisation) and its own reader of the data set; extracts the features of the images it is given (every
 * network's, and raw pixels' when asked, in one pass), reporting progress as events.
 *
 * @module
 */
import { selectBackend } from "./compute/backend.ts";
import { openDataset } from "./data/mod.ts";
import { NetRunner } from "./compute/engine.ts";
import { extractFeatureSets, type FeatureJob } from "./features.ts";
import type { Dataset } from "./data/dataset.ts";
import type { ExemplarNet } from "./nets.ts";
import { serveRequests } from "./compute/pool.ts";
import { useCacheDir } from "./util/fsutil.ts";
import type { Features } from "./svm.ts";

serveRequests<FeatureJob, Features[]>(async (job, ctx) => {
  await selectBackend("wasm");
  if (job.cache) useCacheDir(job.cache);
  const runners: NetRunner[] = [];
  let ds: Dataset | null = null;
  try {
    for (const { spec, weights } of job.nets) {
      const runner = await NetRunner.create(spec);
      runners.push(runner);
      if (weights) runner.load(weights);
    }
    ds = await openDataset(job.data);
    return await extractFeatureSets(runners.map((r) => r.net as ExemplarNet), ds.splits[job.split], job.indices, {
      size: job.size,
      pooling: job.pooling,
      mean: job.mean,
      levelWeights: job.levelWeights,
      rawSide: job.rawSide,
      onProgress: (done) => ctx.emit(done),
    });
  } finally {
    ds?.close();
    for (const r of runners) r.net.dispose();
  }
}, (sets) => sets.map((f) => f.x.buffer as ArrayBuffer));
