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
import { outputFolder } from "../lib/util/output_folder.ts";
import { encodePng, imageGrid } from "../lib/util/image.ts";
import { saveSeeds, seedPatch, seedPatches } from "../lib/seeds.ts";
import { method as methodNamed, METHOD_NAMES } from "../lib/presets.ts";

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
  const limit = values.limit === undefined ? undefined : intFlag("limit", values.limit, 0, 1);
  const out = outputFolder(values.out, { task: "seeds", flag: "--out" });
  const ds = await openDataset(values.data ?? "synthetic", { log: (m) => console.error(m) });
  const split = pretrainingSplit(ds, values.split);
  const bars: Record<string, Progress> = {};
  const t0 = performance.now();
  const seeds = await seedPatches(split, {
    n,
    method,
    seed,
    limit,
    onProgress: (phase, done, total) => (bars[phase] ??= new Progress(`seeds: ${phase}`, total)).update(done),
  });
  ds.close();
  await out.make();
  await saveSeeds(values.out, seeds);
  const shown = Math.min(n, 400);
  const grid = imageGrid(Array.from({ length: shown }, (_, i) => seedPatch(seeds, i)), 20, 32, 1);
  await writeFileAtomic(join(values.out, "seeds.png"), await encodePng(grid));
  const images = new Set(seeds.origins.map((o) => o.image)).size;
  if (seeds.skipped?.length) {
    console.error(`${seeds.skipped.length} images could not be read and were skipped (seeds.json lists them)`);
  }
  console.error(
    `${n} seeds (${method}) from ${images} images in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s -> ${values.out}`,
  );
  console.log(join(values.out, "seeds.png"));
}

if (import.meta.main) runTask(main);
