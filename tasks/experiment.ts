/**
 * `deno task experiment --vary N|K|transforms|net [--values LIST] [--minutes M | --steps S] [--out SWEEP]
 *  [pretraining flags] [--eval-data SPEC] [--protocol NAME] [--runs R] [--C VALUE] [--knn-k K] [--knn-t T]`
 *
 * One of the paper's experiments (§5) as a sweep of pretraining runs in one folder, each point trained with the same
 * budget and seed and evaluated with the same protocol, learned features beside random weights and raw pixels
 * (lib/experiment.ts); writes sweep.json, sweep.md and sweep.html (the chart and the table). It first prints what it
 * will run and about how long it takes; the same command continues an interrupted sweep.
 *
 * `deno task experiment --invariance --run RUN [--out DIR] [--patches P] [--magnitudes M] [--patches-from
 * data|seeds] [--data SPEC]` measures how far each transformation moves a trained run's features (lib/invariance.ts):
 * six charts in invariance.html, the numbers in invariance.json (default folder: RUN/invariance); the patches are
 * drawn from the test split of --data (default: the run's data).
 *
 * @module
 */
import { join } from "node:path";
import { decimal, intFlag, parseFlags, Progress, progressBars, runTask } from "../lib/util/cli.ts";
import { DATA_SPECS } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { DEFAULT_VALUES, runExperiment, SWEEP_FILES, VARIES } from "../lib/experiment.ts";
import { INVARIANCE_FILES, measureInvariance, writeInvariance } from "../lib/invariance.ts";
import { outputFolder } from "../lib/util/output_folder.ts";
import { PROTOCOLS } from "../lib/protocols.ts";
import { selectBackend } from "../lib/compute/backend.ts";
import { KNN_DEFAULTS } from "../lib/knn.ts";
import { rowSummary, TRAIN_FLAGS } from "../lib/train_flags.ts";
import { SCALE_NAMES } from "../lib/presets.ts";

const USAGE =
  `deno task experiment --vary ${VARIES.join("|")} [--values LIST] [--minutes M | --steps S] [--out SWEEP] ` +
  `[--scale ${SCALE_NAMES.join("|")}] [--data SPEC] [--net NAME] [--classes N] [--per-class K] [--transforms LIST] ` +
  `[--method paper|release] [--seed S] [--eval-data SPEC] [--protocol ${PROTOCOLS.join("|")}] [--runs R] [--C VALUE] ` +
  `[--knn-k K] [--knn-t T] [--backend NAME]   or: deno task experiment --invariance --run RUN [--out DIR] ` +
  `[--patches P] [--magnitudes M] [--patches-from data|seeds]   (SPEC: ${DATA_SPECS})`;

const { config: _config, ...SHARED_TRAIN_FLAGS } = TRAIN_FLAGS;

const FLAGS = {
  vary: { type: "string", help: `what the sweep varies: ${VARIES.join(", ")}` },
  values: {
    type: "string",
    help: `its values, comma-separated (default N ${DEFAULT_VALUES.N.join(",")}; K ${
      DEFAULT_VALUES.K.join(",")
    }; transforms all, without-NAME for each, only-NAME for each; net the paper's three)`,
  },
  out: {
    type: "string",
    help: "the sweep folder (default runs/experiment-VARY); the same command again continues the sweep",
  },
  ...SHARED_TRAIN_FLAGS,
  scale: {
    type: "string",
    help: `run scale under the flags, ${SCALE_NAMES.join(", ")} (default: laptop on real data, else default)`,
  },
  "eval-data": { type: "string", help: "labelled images to evaluate on (default: the pretraining data)" },
  protocol: { type: "string", help: `evaluation protocol: ${PROTOCOLS.join(", ")} (default: the data's)` },
  runs: { type: "string", help: "folds, subsets or splits averaged at every point (default: the protocol's, 10)" },
  C: { type: "string", help: "a fixed C for the SVM (default: chosen by validation)" },
  "knn-k": { type: "string", help: "neighbours that vote in the weighted kNN (default 20; 0 skips it)" },
  "knn-t": { type: "string", help: "temperature of the kNN vote weights (default 0.07)" },
  invariance: {
    type: "boolean",
    help: "measure a trained run's invariance to each transformation instead of running a sweep (needs --run)",
  },
  run: { type: "string", help: "--invariance: the run folder whose network is measured" },
  patches: { type: "string", help: "--invariance: patches averaged over (default 100)" },
  magnitudes: { type: "string", help: "--invariance: magnitudes per transformation, odd, identity in the middle (9)" },
  "patches-from": {
    type: "string",
    help: "--invariance: data (patches drawn from the test split, default) or seeds (the run's seed patches)",
  },
} as const;

/** The sweep. */
async function sweep(values: Record<string, string | boolean | undefined>): Promise<void> {
  for (const f of ["run", "patches", "magnitudes", "patches-from"]) {
    if (values[f] !== undefined) throw new UserError(`--${f} belongs to --invariance`);
  }
  if (values.vary === undefined) throw new UserError(`--vary is required (usage: ${USAGE})`);
  const vary = values.vary as string;
  let C: number | undefined;
  if (values.C !== undefined) {
    C = decimal(values.C as string);
    if (!(C > 0 && Number.isFinite(C))) throw new UserError(`--C ${values.C}: C must lie in (0, inf)`);
  }
  const k = intFlag("knn-k", values["knn-k"] as string | undefined, KNN_DEFAULTS.k, 0);
  const t = values["knn-t"] === undefined ? KNN_DEFAULTS.temperature : decimal(values["knn-t"] as string);
  if (!(t > 0 && Number.isFinite(t))) throw new UserError(`--knn-t ${values["knn-t"]}: expected a positive number`);
  const flags: Record<string, string> = {};
  for (const name of Object.keys(SHARED_TRAIN_FLAGS)) {
    if (name !== "scale" && typeof values[name] === "string") flags[name] = values[name] as string;
  }
  const out = (values.out as string | undefined) ?? join("runs", `experiment-${vary}`);
  const bars = new Map<string, Progress>();
  const r = await runExperiment({
    out,
    vary,
    values: values.values as string | undefined,
    scale: values.scale as string | undefined,
    flags,
    evaluation: {
      data: values["eval-data"] as string | undefined,
      protocol: values.protocol as string | undefined,
      runs: values.runs === undefined ? undefined : intFlag("runs", values.runs as string, 10, 1),
      C,
      knn: values["knn-k"] === undefined && values["knn-t"] === undefined
        ? undefined
        : k === 0
        ? false
        : { k, temperature: t },
    },
    backend: values.backend as string | undefined,
    log: (m) => console.error(m),
    onRow: (point, row, steps) => {
      let bar = bars.get(point);
      if (!bar) bars.set(point, bar = new Progress(`  ${point}`, steps));
      bar.setTotal(steps);
      bar.update(row.step, rowSummary(row));
    },
    onProgress: progressBars(),
  });
  if (r.interrupted) {
    console.error(`interrupted: the same command continues the sweep (${out})`);
    Deno.exit(130);
  }
  console.log(await Deno.readTextFile(join(out, SWEEP_FILES.md)));
  console.log(
    `sweep folder: ${out}  (${SWEEP_FILES.html}, ${SWEEP_FILES.md}, ${SWEEP_FILES.json}, a run folder a point)`,
  );
}

/** The invariance of a trained run. */
async function invariance(values: Record<string, string | boolean | undefined>): Promise<void> {
  if (!values.run) throw new UserError(`--invariance needs --run RUN (a trained run folder)`);
  const own = new Set(["invariance", "run", "out", "patches", "magnitudes", "patches-from", "data", "backend"]);
  for (const [f, v] of Object.entries(values)) {
    if (v !== undefined && !own.has(f)) throw new UserError(`--${f} belongs to a sweep, not to --invariance`);
  }
  const run = values.run as string;
  const from = (values["patches-from"] as string | undefined) ?? "data";
  if (from !== "data" && from !== "seeds") {
    throw new UserError(`--patches-from ${from}: expected data (the test split) or seeds (the run's seed patches)`);
  }
  const folder = outputFolder((values.out as string | undefined) ?? join(run, "invariance"), {
    task: "experiment",
    flag: "--out",
  });
  await selectBackend(values.backend as string | undefined);
  const r = await measureInvariance(run, {
    patches: intFlag("patches", values.patches as string | undefined, 100, 2, 100_000),
    magnitudes: intFlag("magnitudes", values.magnitudes as string | undefined, 9, 3, 101),
    from,
    data: values.data as string | undefined,
    log: (m) => console.error(m),
    onProgress: progressBars(),
  });
  await folder.make();
  await writeInvariance(folder.path, r);
  for (const t of r.transforms) {
    const at = (kind: string) => t.curves.find((c) => c.kind === kind && (c.layer === "all layers" || kind === "raw"))!;
    const end = (kind: string) => Math.max(at(kind).mean[0], at(kind).mean.at(-1)!).toFixed(3);
    console.log(
      `${t.name.padEnd(12)} at the range's ends: learned ${end("learned")}, random weights ${end("random")}, ` +
        `raw pixels ${end("raw")}`,
    );
  }
  console.log(`invariance: ${join(folder.path, INVARIANCE_FILES.html)} (${INVARIANCE_FILES.json})`);
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, FLAGS, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  if (values.invariance) await invariance(values);
  else await sweep(values);
}

if (import.meta.main) runTask(main);
