/**
 * `deno task augment --data SPEC --out DIR [--n 8] [--k 16] [--method paper|release] [--seed S] [--transforms LIST]`
 *
 * Pictures of the surrogate classes (paper §3; PAPER.md "Surrogate data"), written into DIR:
 * - `transforms.png`: one seed under each of the six transformations alone,
 *   at 9 strengths across the method's range (one row per transformation, in
 *   the order translation, scaling, rotation, contrast1, contrast2, color);
 * - `classes.png`: n seeds (first column) and K random copies of each (one
 *   surrogate class per row), with the transformations of `--transforms`.
 *
 * @module
 */
import { join } from "node:path";
import { parseTransforms, patchToImage, sweepParams, TRANSFORMS } from "../lib/augment.ts";
import { intFlag, parseFlags, runTask } from "../lib/util/cli.ts";
import { DATA_SPECS, openDataset, pretrainingSplit } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { writeFileAtomic } from "../lib/util/fsutil.ts";
import { outputFolder } from "../lib/util/output_folder.ts";
import { encodePng, imageGrid, type RGBImage } from "../lib/util/image.ts";
import { PATCH, seedPatch, seedPatches } from "../lib/seeds.ts";
import { SurrogateData } from "../lib/surrogate.ts";
import { method as methodNamed } from "../lib/presets.ts";

const USAGE =
  `deno task augment --data SPEC --out DIR [--n 8] [--k 16] [--method paper|release] [--seed S] [--transforms ${
    TRANSFORMS.join(",")
  }|all]   (SPEC: ${DATA_SPECS})`;

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    data: { type: "string", help: "images to draw seeds from (default: synthetic)" },
    out: { type: "string", help: "folder for transforms.png and classes.png: new, empty or written before (required)" },
    n: { type: "string", help: "seeds shown, 2..64 (default 8)" },
    k: { type: "string", help: "copies shown per seed, 1..64 (default 16)" },
    method: { type: "string", help: "paper (default) or release" },
    seed: { type: "string", help: "run seed (default 0)" },
    transforms: { type: "string", help: "comma-separated transformations applied, or all (default all)" },
  }, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  if (!values.out) throw new UserError(`--out DIR is required (usage: ${USAGE})`);
  const method = methodNamed(values.method ?? "paper").name;
  const transforms = parseTransforms(values.transforms ?? "all");
  const n = intFlag("n", values.n, 8, 2, 64);
  const k = intFlag("k", values.k, 16, 1, 64);
  const seed = intFlag("seed", values.seed, 0, 0);
  const out = outputFolder(values.out, { task: "augment", flag: "--out" });
  const ds = await openDataset(values.data ?? "synthetic", { log: (m) => console.error(m) });
  const split = pretrainingSplit(ds);
  const seeds = await seedPatches(split, { n, method, seed });
  ds.close();
  const data = new SurrogateData(seeds, { k, method, transforms: [...transforms], seed });
  const buf = new Float32Array(PATCH * PATCH * 3);
  const render = (i: number, p: ReturnType<typeof sweepParams>[number]): RGBImage => {
    data.render(i, p, buf);
    return patchToImage(buf);
  };

  const steps = 9;
  await out.make();
  const sweep: RGBImage[] = [];
  for (const name of TRANSFORMS) for (const p of sweepParams(name, method, steps)) sweep.push(render(0, p));
  await writeFileAtomic(join(values.out, "transforms.png"), await encodePng(imageGrid(sweep, steps, 64)));

  const classes: RGBImage[] = [];
  for (let i = 0; i < n; i++) {
    classes.push(seedPatch(seeds, i));
    for (let c = 0; c < k; c++) classes.push(render(i, data.params(i, c)));
  }
  await writeFileAtomic(join(values.out, "classes.png"), await encodePng(imageGrid(classes, k + 1, 48)));
  console.error(
    `${method} method, transformations: ${[...transforms].join(", ") || "none"}; pictures in ${values.out}`,
  );
  console.log(join(values.out, "transforms.png"));
  console.log(join(values.out, "classes.png"));
}

if (import.meta.main) runTask(main);
