/**
 * A time budget as a run scale: `--minutes M` plans a pretraining run that fits M minutes on the chosen backend.
 *
 * The plan is made from a measured warm-up (steps as pretraining makes them, {@link measureSpeed}): the steps that
 * fit, the number of surrogate classes that suits that many samples ({@link budgetClasses}) and unlimited copies per
 * class (fresh transformations every epoch). The schedule stays the method's (`--schedule cosine` gives one that
 * ends on time decayed to 1/100): measured at a 30-minute budget on real photographs, the paper's plateau schedule,
 * which keeps the rate at 0.01 that long, gave better features than the cosine decay (bench/README.md, "A time
 * budget"). The plan is printed, stored in config.json (`train.budget`) and continued as it is when the same command
 * runs again, whatever the machine measures then.
 *
 * @module
 */
import { join } from "node:path";
import { type BackendInfo, selectBackend } from "./compute/backend.ts";
import { createEngine } from "./compute/engine.ts";
import { readRunConfig, RUN_FILES } from "./run_folder.ts";
import type { TrainConfig } from "./train.ts";
import { UserError } from "./util/errors.ts";
import { exists } from "./util/fsutil.ts";
import { Rng } from "./util/rng.ts";

/** A run's budget and the plan made for it. */
export interface BudgetPlan {
  /** The budget. */
  minutes: number;
  /** Training samples per second measured in the warm-up. */
  samplesPerSecond: number;
  /** The share of the time left for training steps (validation and checkpoints take the rest). */
  efficiency: number;
  /** The steps that fit. */
  steps: number;
  /** N, chosen for that many samples (or the user's). */
  classes: number;
}

/** Validation, checkpoints and the loader take about a tenth of a run's time. */
const EFFICIENCY = 0.9;

/** Each surrogate class seen about this many times (fresh copies each time) suits a budget. */
const SAMPLES_PER_CLASS = 400;

/**
 * Surrogate classes for a number of training samples: about {@link SAMPLES_PER_CLASS} samples per class, in hundreds,
 * between 100 and the paper's 16000 (more classes learn better features while each is seen often enough).
 */
export function budgetClasses(samples: number): number {
  return Math.max(100, Math.min(16000, Math.round(samples / SAMPLES_PER_CLASS / 100) * 100));
}

/** Training samples per second of `cfg`'s network on a backend: steps as pretraining makes them, for 3 s. */
export async function measureSpeed(cfg: TrainConfig, backend: BackendInfo): Promise<number> {
  const spec = { net: cfg.net, classes: cfg.classes, method: cfg.method, seed: cfg.seed };
  const engine = await createEngine(backend, spec, backend.name === "wasm" ? cfg.parallel : 1);
  try {
    const rng = new Rng(1);
    const x = Float32Array.from({ length: cfg.batch * 32 * 32 * 3 }, () => rng.normal() * 0.2);
    const y = Int32Array.from({ length: cfg.batch }, (_, i) => i % cfg.classes);
    const hyper = { momentum: cfg.momentum, weightDecay: cfg.weightDecay };
    // (A first step warms the kernels up and is not timed.)
    await engine.accumulate(x, y, cfg.batch, 1);
    engine.update(cfg.lr, hyper);
    await engine.stats();
    const t0 = performance.now();
    let n = 0;
    while (n < 3 || performance.now() - t0 < 3000) {
      await engine.accumulate(x, y, cfg.batch, 2 + n++);
      engine.update(cfg.lr, hyper);
      if (n % cfg.logEvery === 0) await engine.stats();
    }
    await engine.stats();
    return (n * cfg.batch) / ((performance.now() - t0) / 1000);
  } finally {
    engine.close();
  }
}

/**
 * The training config for a budget of `minutes`: the plan stored in `out` when the same budget is continued there,
 * else a new plan from a measured warm-up. `classesGiven` keeps the user's N instead of choosing one.
 */
export async function planBudget(
  cfg: TrainConfig,
  minutes: number,
  out: string,
  opts: { backend?: string; classesGiven?: boolean; log?: (m: string) => void } = {},
): Promise<TrainConfig> {
  if (!(minutes > 0 && Number.isFinite(minutes))) throw new UserError(`--minutes ${minutes}: expected minutes > 0`);
  const log = opts.log ?? (() => {});
  if (exists(join(out, RUN_FILES.config))) {
    const prev = (await readRunConfig(out)).train;
    if (prev.budget?.minutes === minutes) {
      log(`continuing the ${minutes}-minute plan of ${out}: ${prev.steps} steps, N = ${prev.classes}`);
      return {
        ...cfg,
        steps: prev.steps,
        classes: prev.classes,
        perClass: prev.perClass,
        schedule: prev.schedule,
        budget: prev.budget,
      };
    }
  }
  const backend = await selectBackend(opts.backend);
  const probe = { ...cfg, classes: opts.classesGiven ? cfg.classes : 1000 };
  const samplesPerSecond = await measureSpeed(probe, backend);
  const steps = Math.max(1, Math.floor((minutes * 60 * samplesPerSecond * EFFICIENCY) / cfg.batch));
  const classes = opts.classesGiven ? cfg.classes : budgetClasses(steps * cfg.batch);
  const budget: BudgetPlan = { minutes, samplesPerSecond, efficiency: EFFICIENCY, steps, classes };
  // The method's schedule unless another was asked for (cosine measured worse at a 30-minute budget).
  const schedule = cfg.schedule;
  const rate = schedule === "cosine" ? `cosine schedule to ${cfg.lr / 100}` : `${schedule} schedule`;
  log(
    `plan for ${minutes} minutes: ${samplesPerSecond.toFixed(0)} samples/s measured on ${backend.name} -> ${steps} ` +
      `steps of ${cfg.batch} (${steps * cfg.batch} samples), N = ${classes}, K unlimited, ${rate}`,
  );
  return { ...cfg, steps, classes, perClass: "inf", schedule, budget };
}
