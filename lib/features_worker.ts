/**
 * A feature-extraction worker: its own wasm backend, the network (trained
 * weights or the seeded random initialisation) and its own reader of the data
 * set; extracts the features of the images it is given, reporting progress as
 * events.
 *
 * @module
 */
import { selectBackend } from "./compute/backend.ts";
import { openDataset } from "./data/mod.ts";
import { NetRunner } from "./compute/engine.ts";
import { extractFeatures, type FeatureJob } from "./features.ts";
import type { ExemplarNet } from "./nets.ts";
import { serveRequests } from "./compute/pool.ts";
import { useCacheDir } from "./util/fsutil.ts";
import type { Features } from "./svm.ts";

serveRequests<FeatureJob, Features>(async (job, ctx) => {
  await selectBackend("wasm");
  if (job.cache) useCacheDir(job.cache);
  const runner = await NetRunner.create(job.spec);
  if (job.weights) runner.load(job.weights);
  const ds = await openDataset(job.data);
  try {
    return await extractFeatures(runner.net as ExemplarNet, ds.splits[job.split], job.indices, {
      size: job.size,
      pooling: job.pooling,
      mean: job.mean,
      levelWeights: job.levelWeights,
      onProgress: (done) => ctx.emit(done),
    });
  } finally {
    ds.close();
    runner.net.dispose();
  }
}, (f) => [f.x.buffer as ArrayBuffer]);
