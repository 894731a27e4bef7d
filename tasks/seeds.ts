/**
 * `deno task seeds --data SPEC --n N --out DIR [--method paper|release] [--seed S] [--split NAME] [--limit M]`
 *
 * Draws N seed patches (paper §3; PAPER.md "Surrogate data") from the unlabeled split and
 * writes `seeds.bin`, `seeds.json` (where each seed came from) and
 * `seeds.png` (a grid of the first ones) into DIR.
 *
 * @module
 */
import { join } from "node:path";
import { intFlag, parseFlags, Progress, runTask } from "../lib/util/cli.ts";
import { DATA_SPECS, openDataset, pretrainingSplit } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { writeFileAtomic } from "../lib/util/fsutil.ts";
import { type OutputFolder, outputFolder } from "../lib/util/output_folder.ts";
import { encodePng, imageGrid } from "../lib/util/image.ts";
import { saveSeeds, seedPatch, seedPatches } from "../lib/seeds.ts";
import { method as methodNamed, METHOD_NAMES } from "../lib/presets.ts";
import { readRunConfig, RUN_FILES, seedsHash, seedWorkers } from "../lib/run_folder.ts";
import { exists } from "../lib/util/fsutil.ts";
import { lockFolder } from "../lib/util/lock.ts";

const USAGE = `deno task seeds --data SPEC --n N --out DIR [--method ${
  METHOD_NAMES.join("|")
}] [--seed S] [--split NAME] [--limit M]   (SPEC: ${DATA_SPECS})`;

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    data: { type: "string", help: "images to draw seeds from (default: synthetic)" },
    n: { type: "string", help: "N, seed patches to draw (default 1000)" },
    out: {
      type: "string",
      help: "folder for seeds.bin, seeds.json and seeds.png: new, empty or written before (required)",
    },
    method: { type: "string", help: "paper (default) or release" },
    seed: { type: "string", help: "run seed (default 0)" },
    split: { type: "string", help: "split to draw from (default: unlabeled, else train)" },
    limit: { type: "string", help: "use only the first M images" },
  }, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  if (!values.out) throw new UserError(`--out DIR is required (usage: ${USAGE})`);
  const method = methodNamed(values.method ?? "paper").name;
  const n = intFlag("n", values.n, 1000, 1);
  const seed = intFlag("seed", values.seed, 0, 0);
  const data = values.data ?? "synthetic";
  const limit = values.limit === undefined ? undefined : intFlag("limit", values.limit, 0, 1);
  // Checked before any work: a file, or a folder of the user's, is refused (a run's folder is checked below).
  const folder = outputFolder(values.out, { task: "seeds", flag: "--out", runFolder: true });
  const lock = await lockFolder(values.out);
  try {
    // Into a pretraining run's folder only the seeds that run was made with may go (they are drawn again, the same).
    const run = await runInFolder(values.out, {
      data,
      n,
      method,
      seed,
      partial: limit !== undefined || !!values.split,
    });
    await draw({ data, n, method, seed, limit, split: values.split, out: values.out, run, folder });
  } finally {
    lock.release();
  }
}

/**
 * The run whose folder `out` is (its seeds' recorded hash), or null; a run made with other seeds settings is
 * refused, as is a part of the data (`--limit`, `--split`), which a run never draws from.
 */
async function runInFolder(
  out: string,
  want: { data: string; n: number; method: string; seed: number; partial: boolean },
): Promise<{ hash?: string } | null> {
  if (!exists(join(out, RUN_FILES.config))) return null;
  const file = await readRunConfig(out);
  const t = file.train;
  const same = t.data === want.data && t.classes === want.n && t.method === want.method && t.seed === want.seed &&
    !want.partial;
  if (!same) {
    throw new UserError(
      `--out ${out} is a pretraining run's folder (data ${t.data}, N = ${t.classes}, method ${t.method}, seed ${t.seed}); ` +
        `its seeds are not replaced by others (use another --out)`,
    );
  }
  return { hash: (file.seeds as { hash?: string } | undefined)?.hash };
}

/** Draws the seeds, checks them against the run whose folder it is, and writes them with their picture. */
async function draw(
  opts: {
    data: string;
    n: number;
    method: "paper" | "release";
    seed: number;
    limit?: number;
    split?: string;
    out: string;
    run: { hash?: string } | null;
    folder: OutputFolder;
  },
): Promise<void> {
  const { n, method, seed, limit, out } = opts;
  const ds = await openDataset(opts.data, { log: (m) => console.error(m) });
  const split = pretrainingSplit(ds, opts.split);
  const bars: Record<string, Progress> = {};
  const t0 = performance.now();
  const seeds = await seedPatches(split, {
    n,
    method,
    seed,
    limit,
    workers: { data: opts.data, count: seedWorkers() },
    onProgress: (phase, done, total) => (bars[phase] ??= new Progress(`seeds: ${phase}`, total)).update(done),
  });
  ds.close();
  if (opts.run?.hash !== undefined && seedsHash(seeds) !== opts.run.hash) {
    throw new UserError(
      `--out ${out}: the seeds drawn now differ from the ones its run was made with (another version of the data?); ` +
        `the folder is left as it was`,
    );
  }
  await opts.folder.make();
  await saveSeeds(out, seeds);
  const shown = Math.min(n, 400);
  const grid = imageGrid(Array.from({ length: shown }, (_, i) => seedPatch(seeds, i)), 20, 32, 1);
  await writeFileAtomic(join(out, "seeds.png"), await encodePng(grid));
  const images = new Set(seeds.origins.map((o) => o.image)).size;
  if (seeds.skipped?.length) {
    console.error(`${seeds.skipped.length} images could not be read and were skipped (seeds.json lists them)`);
  }
  console.error(
    `${n} seeds (${method}) from ${images} images in ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${out}`,
  );
  console.log(join(out, "seeds.png"));
}

if (import.meta.main) runTask(main);
