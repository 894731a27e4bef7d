/**
 * `deno run -A bench/c_choice.ts --run DIR [--data SPEC] [--seeds S] [--runs R] [--baseline]`
 *
 * How steady the paper method's choice of C is: for protocol seeds 0..S-1 (each its own random splits), the C that
 * each rule chooses and the protocol's figure with it, for the learned features of a run (or, with `--baseline`, the
 * same network with random weights): the rule of the `paper` preset (5-fold cross-validation on the first run's
 * training images) beside a hold-out of the last 5 training images of each class of the first run (the rule it
 * replaced). Features of every image are computed once (in two workers) and scaled per layer as the evaluation does
 * (fitted here on all images, where the evaluation fits them on the ones its splits use). Prints one JSON line per
 * seed and rule, then a summary line.
 *
 * @module
 */
import { getSplit, openDataset } from "../lib/data/mod.ts";
import { applyScales, blockScales, extractFeaturesParallel, featureLayout } from "../lib/features.ts";
import { flatWeights } from "../lib/compute/engine.ts";
import { selectBackend } from "../lib/compute/backend.ts";
import { defaultProtocol, PROTOCOL_INPUT, type ProtocolPlan, runProtocol } from "../lib/protocols.ts";
import { loadTrainedNet } from "../lib/run_folder.ts";
import { loadSeeds, seedMeanColour } from "../lib/seeds.ts";
import { ExemplarNet, netSpec } from "../lib/nets.ts";
import { METHODS } from "../lib/presets.ts";
import { intFlag, parseFlags, runTask } from "../lib/util/cli.ts";
import { UserError } from "../lib/util/errors.ts";
import { subset } from "../lib/svm.ts";

const USAGE = "deno run -A bench/c_choice.ts --run DIR [--data SPEC] [--seeds S] [--runs R] [--baseline]";

/** The rule the paper preset used before: the last 5 training images of each class of the first run held out. */
function holdOut(labels: Int32Array, last: number): (plan: ProtocolPlan) => ProtocolPlan {
  return (plan) => {
    const cTrain: number[] = [], cValid: number[] = [];
    const classes = [...new Set(plan.train[0].map((i) => labels[i]))].sort((a, b) => a - b);
    for (const c of classes) {
      const mine = plan.train[0].filter((i) => labels[i] === c);
      cTrain.push(...mine.slice(0, mine.length - last));
      cValid.push(...mine.slice(mine.length - last));
    }
    return { ...plan, cTrain, cValid, cFolds: undefined };
  };
}

async function main(args: string[]): Promise<void> {
  const { values } = parseFlags(args, {
    run: { type: "string", help: "a pretraining run folder (required)" },
    data: { type: "string", help: "labelled images (default: the run's data)" },
    seeds: { type: "string", help: "protocol seeds 0..S-1 (default 10)" },
    runs: { type: "string", help: "splits per protocol (default 10)" },
    baseline: { type: "boolean", help: "the same network with random weights instead of the learned one" },
  }, USAGE);
  if (!values.run) throw new UserError(`--run DIR is required (usage: ${USAGE})`);
  const seeds = intFlag("seeds", values.seeds, 10, 1), runs = intFlag("runs", values.runs, 10, 1);
  await selectBackend("wasm");
  const { net: trained, config } = await loadTrainedNet(values.run);
  const net = values.baseline
    ? new ExemplarNet(config.net, config.classes, { method: config.method, seed: config.seed })
    : trained;
  const data = (values.data as string | undefined) ?? config.data;
  const ds = await openDataset(data, { log: (m) => console.error(m) });
  const protocol = defaultProtocol(ds);
  const { size, pooling } = PROTOCOL_INPUT[protocol];
  const split = getSplit(ds, ds.splits.all ? "all" : "train");
  const all = [...Array(split.length).keys()];
  const t0 = performance.now();
  const [f] = await extractFeaturesParallel(
    {
      nets: [{ spec: netSpec(config), weights: await flatWeights(net) }],
      data,
      split: split.name,
      size,
      pooling,
      mean: seedMeanColour(await loadSeeds(values.run)),
      levelWeights: METHODS[config.method].eval.levelWeights,
    },
    all,
    2,
    (d, n) => d % 500 === 0 && console.error(`features ${d}/${n}`),
  );
  const { blocks } = featureLayout(net, size, pooling);
  applyScales(f, blocks, blockScales(f, blocks));
  console.error(`features of ${all.length} images in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const features = (_split: string, idx: number[]) => Promise.resolve(subset(f, idx));
  const summary: Record<string, { C: number; mean: number }[]> = { kFold: [], holdOut: [] };
  for (let s = 0; s < seeds; s++) {
    for (const rule of ["kFold", "holdOut"] as const) {
      const t = performance.now();
      const r = await runProtocol(protocol, ds, features, {
        seed: s,
        runs,
        method: "paper",
        knn: false,
        plan: rule === "holdOut" ? holdOut(split.labels!, 5) : undefined,
      });
      summary[rule].push({ C: r.C, mean: r.mean });
      console.log(JSON.stringify({
        seed: s,
        rule,
        C: r.C,
        mean: r.mean,
        std: r.std,
        scores: r.cScores.map((c) => [c.C, Number((100 * c.accuracy).toFixed(2))]),
        seconds: Math.round((performance.now() - t) / 1000),
      }));
    }
  }
  for (const [rule, rows] of Object.entries(summary)) {
    const means = rows.map((r) => r.mean), Cs = rows.map((r) => r.C);
    console.log(JSON.stringify({
      rule,
      features: values.baseline ? "random weights" : "learned",
      Cs: Object.fromEntries([...new Set(Cs)].sort((a, b) => a - b).map((c) => [c, Cs.filter((x) => x === c).length])),
      figure_min: Math.min(...means),
      figure_max: Math.max(...means),
    }));
  }
  ds.close();
  net.dispose();
  if (net !== trained) trained.dispose();
}

if (import.meta.main) runTask(main);
