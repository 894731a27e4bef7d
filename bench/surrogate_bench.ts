/**
 * Surrogate-generation rates, shared by `deno task bench` (bench/bench.ts) and the GPU check (bench/gpu.ts): the
 * seeds both draw from, and batches per second from a loader with a given number of workers.
 *
 * @module
 */
import { openDataset } from "../lib/data/mod.ts";
import { seedPatches, type Seeds } from "../lib/seeds.ts";
import { type SurrogateData, SurrogateLoader } from "../lib/surrogate.ts";
import { BATCH, timed } from "./nets_bench.ts";

/** 500 seed patches of the embedded synthetic data (seed 1): what the surrogate benchmarks generate from. */
export async function benchSeeds(): Promise<Seeds> {
  const ds = await openDataset("synthetic");
  try {
    return await seedPatches(ds.splits.unlabeled, { n: 500, seed: 1 });
  } finally {
    ds.close();
  }
}

/** Augmented patches per second that a {@link SurrogateLoader} with `workers` workers delivers, in batches of 128. */
export async function loaderRate(data: SurrogateData, workers: number, seconds: number): Promise<number> {
  const loader = new SurrogateLoader(data, BATCH, { workers, depth: 4 * workers });
  try {
    return await timed(async () => void await loader.next(), seconds, BATCH);
  } finally {
    loader.close();
  }
}
