/**
 * `deno task evaluate --run DIR [--data SPEC] [--protocol NAME] [--C VALUE] [--runs R] [--no-baselines]`
 *
 * Features of the run's trained network, a linear SVM and an evaluation
 * protocol (paper §5.1; PAPER.md "Evaluation"), beside the random-weights and raw-pixel
 * baselines; writes `results.json` into the run folder.
 *
 * @module
 */
import { decimal, intFlag, parseFlags, progressBars, runTask } from "../lib/util/cli.ts";
import { DATA_SPECS } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { evaluateRun } from "../lib/evaluate.ts";
import { PROTOCOLS } from "../lib/protocols.ts";
import { selectBackend } from "../lib/compute/backend.ts";
import { KNN_DEFAULTS } from "../lib/knn.ts";

const USAGE = `deno task evaluate --run DIR [--data SPEC] [--protocol ${
  PROTOCOLS.join("|")
}] [--C VALUE] [--runs R] [--knn-k K] [--knn-t T] [--backend NAME] [--no-baselines]   (SPEC: ${DATA_SPECS})`;

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    run: { type: "string", help: "a pretraining run folder (required)" },
    data: { type: "string", help: "labelled images to evaluate on (default: the run's data)" },
    protocol: { type: "string", help: "stl10, cifar10-400, cifar10, caltech101, caltech256 (default: the data's)" },
    C: { type: "string", help: "a fixed C for the SVM (default: chosen by validation)" },
    runs: { type: "string", help: "folds, subsets or splits averaged (default 10)" },
    backend: { type: "string", help: "wasm, webgpu, cpu, ... (default: the first that works)" },
    "no-baselines": { type: "boolean", help: "skip the random-weights and raw-pixel baselines" },
    "knn-k": {
      type: "string",
      help: "neighbours that vote in the weighted kNN beside the SVM (default 20; 0 skips it)",
    },
    "knn-t": { type: "string", help: "temperature of the kNN vote weights exp(similarity / T) (default 0.07)" },
  }, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  if (!values.run) throw new UserError(`--run DIR is required (usage: ${USAGE})`);
  let C: number | undefined;
  if (values.C !== undefined) {
    C = decimal(values.C as string);
    if (!(C > 0 && Number.isFinite(C))) throw new UserError(`--C ${values.C}: C must lie in (0, inf)`);
  }
  await selectBackend(values.backend as string | undefined);
  const k = intFlag("knn-k", values["knn-k"] as string | undefined, KNN_DEFAULTS.k, 0);
  const t = values["knn-t"] === undefined ? KNN_DEFAULTS.temperature : decimal(values["knn-t"] as string);
  if (!(t > 0 && Number.isFinite(t))) throw new UserError(`--knn-t ${values["knn-t"]}: expected a positive number`);
  const r = await evaluateRun(values.run, {
    data: values.data as string | undefined,
    protocol: values.protocol as string | undefined,
    C,
    runs: values.runs === undefined ? undefined : intFlag("runs", values.runs as string, 10, 1),
    baselines: !values["no-baselines"],
    knn: k === 0 ? false : { k, temperature: t },
    log: (m) => console.error(m),
    onProgress: progressBars(),
  });
  console.log(
    JSON.stringify({
      protocol: r.protocol,
      learned: r.learned.mean,
      random: r.random?.mean,
      raw: r.raw?.mean,
      knn: r.learned.knn
        ? { learned: r.learned.knn.mean, random: r.random?.knn?.mean, raw: r.raw?.knn?.mean }
        : undefined,
    }),
  );
}

if (import.meta.main) runTask(main);
