/**
 * A seed worker: its own reader of the data set; answers pass 1 (the weight of a range of images) and pass 2 (the
 * seeds cut from some of them) of lib/seeds.ts `seedPatches`, reporting images done as events.
 *
 * @module
 */
import { getSplit, openDataset } from "./data/mod.ts";
import { countCandidates, cutSeeds, type SeedJob, type SeedOrigin } from "./seeds.ts";
import { serveRequests } from "./compute/pool.ts";
import { useCacheDir } from "./util/fsutil.ts";
import type { CandidateCounts } from "./seeds.ts";

type Answer = CandidateCounts | { context: Uint8Array; origins: SeedOrigin[] }[];

serveRequests<SeedJob, Answer>(async (job, ctx) => {
  if (job.cache) useCacheDir(job.cache);
  const ds = await openDataset(job.data);
  try {
    const split = getSplit(ds, job.split);
    let done = 0;
    if (job.kind === "count") {
      return await countCandidates(split, job.from, job.to, job.method, () => ctx.emit(++done));
    }
    const out = [];
    for (const [i, count] of job.images) {
      out.push(cutSeeds(await split.image(i), i, count, job.method, job.seed));
      ctx.emit(++done);
    }
    return out;
  } finally {
    ds.close();
  }
}, (a) => Array.isArray(a) ? a.map((c) => c.context.buffer as ArrayBuffer) : [a.weights.buffer as ArrayBuffer]);
