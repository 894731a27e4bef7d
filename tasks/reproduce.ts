/**
 * `deno task reproduce [--data SPEC] [--out DIR]`: the whole pipeline of the
 * paper, images -> seeds -> surrogate data -> pretraining -> features -> SVM
 * -> Table 1, on the embedded default data unless `--data` says otherwise.
 *
 * Stages run in order; a stage not built yet is named as such and the run
 * stops there, after doing all the stages before it.
 *
 * @module
 */
import { join } from "node:path";
import { parseFlags, runTask } from "../lib/cli.ts";
import { DATA_SPECS, inspectDataset, openDataset } from "../lib/data/mod.ts";
import { UserError } from "../lib/errors.ts";
import { writeFileAtomic } from "../lib/fsutil.ts";

const USAGE = `deno task reproduce [--data SPEC] [--out DIR]   (SPEC: ${DATA_SPECS})`;

/** The paper's stages, in order, and whether this version of the project has them. */
const STAGES: { name: string; built: boolean }[] = [
  { name: "data (readers, synthetic default)", built: true },
  { name: "seed patches (PAPER.md 1)", built: false },
  { name: "surrogate classes: the six transformations (PAPER.md 1)", built: false },
  { name: "pretraining the network (PAPER.md 2-3)", built: false },
  { name: "pooled features (PAPER.md 4)", built: false },
  { name: "linear SVM and the evaluation protocols (PAPER.md 4)", built: false },
  { name: "Table 1 beside the paper's numbers (PAPER.md 5)", built: false },
];

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    data: { type: "string" },
    out: { type: "string" },
  }, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  const spec = values.data ?? "synthetic";
  const out = values.out ?? join("runs", "reproduce");

  console.error(`[1/${STAGES.length}] ${STAGES[0].name}: ${spec}`);
  const ds = await openDataset(spec);
  const summary = await inspectDataset(ds);
  ds.close();
  await writeFileAtomic(join(out, "data.json"), JSON.stringify(summary, null, 2) + "\n");
  console.error(`  ${JSON.stringify(summary.splits)}`);
  console.error(`  summary written to ${join(out, "data.json")}`);

  const missing = STAGES.filter((s) => !s.built);
  console.error(`\nNot built yet in this version of the project:`);
  for (const s of missing) console.error(`  - ${s.name}`);
  console.error(`\nThe run stops here; run folder: ${out}`);
  console.log(out);
}

if (import.meta.main) runTask(main);
