/**
 * `deno task reproduce [--scale default|tiny|paper|release] [--method paper|release] [--data SPEC] [--net NAME]
 *  [--backend NAME] [--out DIR] [--steps S] [--classes N] [--per-class K|inf]`
 *
 * The whole pipeline of the paper: images -> seeds -> surrogate data ->
 * pretraining -> features -> SVM -> Table 1, with progress throughout; ends by
 * printing Table 1 beside the paper's numbers and the run folder.
 *
 * `--scale` says how much of the method to run (the run scales of
 * lib/presets.ts: `default`, the embedded synthetic data in minutes on two CPU
 * cores; `tiny`, a seconds-long smoke run; `paper` and `release`, N = 16000 at
 * the paper's and the release's settings over up to 1.56 M steps, which expect
 * real data, `--data stl10:DIR`, and first print an estimate of their duration
 * from a measured warm-up). `--method` picks the method preset (`paper` or
 * `release`, default: the scale's); the other flags override single settings.
 *
 * An interrupted run continues where it stopped when run again with the same
 * --out.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { selectBackend } from "../lib/compute/backend.ts";
import { fmtSecs, parseFlags, Progress, progressBars, runTask } from "../lib/util/cli.ts";
import { DATA_SPECS, inspectDataset, openDataset } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { outputFolder } from "../lib/util/output_folder.ts";
import { evaluateRun } from "../lib/evaluate.ts";
import { measureSpeed, planBudget } from "../lib/budget.ts";
import { exists, writeFileAtomic } from "../lib/util/fsutil.ts";
import { lockFolder } from "../lib/util/lock.ts";
import { writeTable1 } from "../lib/table1.ts";
import { pretrain } from "../lib/train.ts";
import { checkContinues, readRunConfig, readRunConfigFile, RUN_FILES } from "../lib/run_folder.ts";
import { checkTrainingFits, resolveTrainConfig, SCHEDULE_NAMES, type TrainConfig } from "../lib/config.ts";
import { rowSummary, TRAIN_FLAGS } from "../lib/train_flags.ts";
import { METHOD_NAMES, RUN_SCALES, SCALE_NAMES, type ScaleName } from "../lib/presets.ts";

const USAGE = `deno task reproduce [--scale ${SCALE_NAMES.join("|")}] [--method ${
  METHOD_NAMES.join("|")
}] [--config RUN/config.json] [--minutes M] [--data SPEC] [--net NAME] [--classes N] [--per-class K|inf] [--transforms LIST] [--steps S] [--batch B] [--schedule ${
  SCHEDULE_NAMES.join("|")
}] [--lr R] [--valid-every S] [--seed S] [--workers W] [--backend NAME] [--out DIR]   (SPEC: ${DATA_SPECS})`;

/** Measures training speed on the chosen backend and prints how long the run will take. */
async function estimate(cfg: TrainConfig, backend: string | undefined): Promise<void> {
  const info = await selectBackend(backend);
  const sps = await measureSpeed(cfg, info);
  console.error(
    `estimate: ${
      sps.toFixed(0)
    } samples/s on ${info.name} (measured warm-up) -> ${cfg.steps} steps of ${cfg.batch} take about ${
      fmtSecs((cfg.steps * cfg.batch) / sps)
    } of pretraining, plus seeds and evaluation`,
  );
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    ...TRAIN_FLAGS,
    scale: {
      type: "string",
      help: "run scale: default (synthetic data, minutes), tiny (seconds), laptop (real data, an hour; the default " +
        "with --data), paper or release (real data, a GPU)",
    },
    out: { type: "string", help: "the run folder (default runs/reproduce-SCALE); the same command again continues" },
    config: {
      type: "string",
      help: "a run's config.json: run again with its settings (flags override them; default --out: DIR-again)",
    },
  }, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  // Real data (not the embedded synthetic set) defaults to the laptop scale: an hour's budget.
  const real = values.data !== undefined && !(values.data as string).startsWith("synthetic");
  const scaleName = (values.scale as string | undefined) ?? (real ? "laptop" : "default");
  // The run's settings: the flags over a saved config.json (--config) over the run scale; every one checked here,
  // before any work starts.
  const savedFrom = values.config as string | undefined;
  const saved = savedFrom === undefined ? undefined : (await readRunConfigFile(savedFrom)).train;
  const { cfg, minutes } = resolveTrainConfig(values, { scale: scaleName as ScaleName, saved, savedFrom });
  const scale = RUN_SCALES[scaleName as ScaleName];
  const out = (values.out as string | undefined) ??
    (saved ? `${dirname(savedFrom!)}-again` : join("runs", `reproduce-${scaleName}`));
  // A run folder whose config.json is damaged is named as such, not taken for a folder of a user's files.
  if (exists(join(out, RUN_FILES.config))) await readRunConfig(out);
  // A run folder to continue, or a new, empty or marked folder: a folder of the user's own files is not written into.
  const folder = outputFolder(out, { task: "reproduce", flag: "--out", runFolder: true });
  // A run folder made with other settings is refused before anything is written into it (a time budget's run once
  // its plan is made, since the plan decides N and K); the folder is ours until the end.
  if (minutes === undefined) await checkContinues(cfg, out);
  checkTrainingFits(cfg, await selectBackend(values.backend as string | undefined));
  await folder.make();
  try {
    const lock = await lockFolder(out);
    try {
      await run(cfg, minutes, out, { scaleName, estimateFirst: !saved && scale.data === undefined, values });
    } finally {
      lock.release();
    }
  } catch (e) {
    folder.abandon(); // (a new run refused before it wrote anything leaves no folder)
    throw e;
  }
}

/** The pipeline, with the run folder's lock held. */
async function run(
  cfg: TrainConfig,
  minutes: number | undefined,
  out: string,
  opts: { scaleName: string; estimateFirst: boolean; values: Record<string, unknown> },
): Promise<void> {
  const values = opts.values;
  if (minutes !== undefined) {
    Object.assign(
      cfg,
      await planBudget(cfg, minutes, out, {
        backend: values.backend as string | undefined,
        classesGiven: values.classes !== undefined || values.config !== undefined,
        perClassGiven: values["per-class"] !== undefined || values.config !== undefined,
        log: (m) => console.error(m),
      }),
    );
    await checkContinues(cfg, out);
  }
  const t0 = performance.now();
  const stage = (k: number, what: string) =>
    console.error(`\n[${k}/5] ${what} (${fmtSecs((performance.now() - t0) / 1000)} so far)`);

  stage(1, `data: ${cfg.data}`);
  const ds = await openDataset(cfg.data, { log: (m) => console.error(m) });
  const summary = await inspectDataset(ds);
  ds.close();
  await Deno.mkdir(out, { recursive: true });
  await writeFileAtomic(join(out, "data.json"), JSON.stringify(summary, null, 2) + "\n");
  console.error(
    `  ${
      Object.entries(summary.splits as Record<string, { images: number }>).map(([k, v]) => `${k} ${v.images}`).join(
        ", ",
      )
    } images; ${summary.classes} classes`,
  );

  if (opts.estimateFirst && minutes === undefined) {
    await estimate(cfg, values.backend as string | undefined);
  }

  const resume = exists(join(out, "checkpoint.ckpt"));
  stage(
    2,
    `seeds, surrogate classes and pretraining: ${cfg.net}, N = ${cfg.classes}, K = ${cfg.perClass}, ${cfg.steps} steps of ${cfg.batch}${
      resume ? " (continuing the run in " + out + ")" : ""
    }`,
  );
  const bar = new Progress("pretrain", cfg.steps);
  const trained = await pretrain(cfg, {
    out,
    resume,
    backend: values.backend as string | undefined,
    log: (m) => console.error(`  ${m.trim()}`),
    onRow: (r) => bar.update(r.step, rowSummary(r)),
    onSteps: (steps) => bar.setTotal(steps),
    onProgress: progressBars(),
  });
  if (trained.interrupted) {
    console.error(`interrupted: run the same command again to continue (${out})`);
    Deno.exit(130);
  }

  stage(3, "features, linear SVM and the evaluation protocol, with the random-weights and raw-pixel baselines");
  const results = await evaluateRun(out, { log: (m) => console.error(`  ${m}`), onProgress: progressBars() });

  stage(4, "Table 1");
  const paths = await writeTable1(out, [results]);

  stage(5, "done");
  console.log(await Deno.readTextFile(paths.md));
  const margin = results.random ? results.learned.mean - results.random.mean : NaN;
  console.log(
    `learned ${results.learned.mean.toFixed(2)} % vs random weights ${results.random?.mean.toFixed(2)} % (margin ${
      margin >= 0 ? "+" : ""
    }${margin.toFixed(2)}) vs raw pixels ${
      results.raw?.mean.toFixed(2)
    } %, after ${results.scale.samples} pretraining samples; ${fmtSecs((performance.now() - t0) / 1000)} in all`,
  );
  const knn = results.learned.knn;
  if (knn) {
    console.log(
      `weighted kNN (k = ${knn.k}, T = ${knn.temperature}) on the same features: learned ${
        knn.mean.toFixed(2)
      } % vs random weights ${results.random?.knn?.mean.toFixed(2)} % vs raw pixels ${
        results.raw?.knn?.mean.toFixed(2)
      } %`,
    );
  }
  console.log(`run folder: ${out}  (table1.md, table1.html, results.json, metrics.jsonl, config.json)`);
}

if (import.meta.main) runTask(main);
