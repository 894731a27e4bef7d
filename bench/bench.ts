/**
 * `deno task bench`: throughput figures as JSON lines on stdout.
 *
 * - `surrogate`: augmented 32x32 patches per second, on one core (the
 *   generation function itself) and with 2 workers (the loader training uses).
 *
 * @module
 */
import { openDataset } from "../lib/data/mod.ts";
import { seedPatches } from "../lib/seeds.ts";
import { SurrogateData, SurrogateLoader } from "../lib/surrogate.ts";

async function benchSurrogate(): Promise<void> {
  const ds = await openDataset("synthetic");
  const seeds = await seedPatches(ds.splits.unlabeled, { n: 500, seed: 1 });
  ds.close();
  for (const preset of ["paper", "release"] as const) {
    const data = new SurrogateData(seeds, { k: 100, seed: 1, preset });
    data.batch(0, 128); // warm-up
    const t0 = performance.now();
    let n = 0;
    while (performance.now() - t0 < 3000) n += data.batch(1 + n / 128, 128).y.length;
    const oneCore = n / ((performance.now() - t0) / 1000);
    const workers = 2;
    const loader = new SurrogateLoader(data, 128, { workers, depth: 8 });
    await loader.next();
    const t1 = performance.now();
    let m = 0;
    while (performance.now() - t1 < 3000) m += (await loader.next()).y.length;
    const withWorkers = m / ((performance.now() - t1) / 1000);
    loader.close();
    console.log(JSON.stringify({
      bench: "surrogate",
      preset,
      patches_per_s_one_core: Math.round(oneCore),
      workers,
      patches_per_s_workers: Math.round(withWorkers),
      cores: navigator.hardwareConcurrency,
    }));
  }
}

if (import.meta.main) {
  await benchSurrogate();
}
