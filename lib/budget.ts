/**
 * A time budget as a run scale: `--minutes M` plans a pretraining run that fits M minutes on the chosen backend.
 *
 * The plan is made from a measured warm-up (steps as pretraining makes them, {@link measureSpeed}): the steps that
 * fit, the number of surrogate classes that suits that many samples ({@link budgetClasses}) and unlimited copies per
 * class (fresh transformations every epoch). It trains at its own rate and schedule (lib/presets.ts
 * `BUDGET_TRAINING`: 0.03, held for four fifths of the steps and then decayed to a hundredth, the `anneal` schedule;
 * the paper's plateau schedule at 0.01 never lowers the rate in so short a run). The plan is printed
 * and stored in config.json (`train.budget`). A warm-up of seconds measures the backend alone, before its kernels are
 * at full speed, and without the surrogate workers beside it: so the run plans once more at its first validation
 * after a tenth of the steps, from the speed it reached itself ({@link replanFromRun}), and once more after half of
 * them, from its speed since; it stores those plans too. The same command run again continues the stored plans,
 * whatever the machine measures then.
 *
 * @module
 */
import { netSpec } from "./nets.ts";
import { join } from "node:path";
import { type BackendInfo, selectBackend } from "./compute/backend.ts";
import { createEngine } from "./compute/engine.ts";
import { readRunConfig, RUN_FILES, updateTrainConfig } from "./run_folder.ts";
import { type BudgetPlan, checkTrainingFits, LIMITS, type Replan, type TrainConfig } from "./config.ts";
import { UserError } from "./util/errors.ts";
import { exists } from "./util/fsutil.ts";
import { Rng } from "./util/rng.ts";
import { ANNEAL_TAIL, DECAY_FLOOR } from "./schedule.ts";

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
  const spec = netSpec(cfg);
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

/** The share of the time left at a re-plan that the steps may fill (the checkpoints and the last save take the rest). */
const REPLAN_EFFICIENCY = 0.98;

/** The second re-plan comes at the first validation after this share of the first re-plan's steps. */
const SECOND_REPLAN_AT = 0.5;

/**
 * Whether a budget run plans again at `step`: at its first validation after a tenth of the warm-up's plan (the warm-up
 * is short and measures the backend alone; the run's own speed counts the surrogate workers beside it and a busy
 * machine), and a second time after half the steps (the first steps, kernels warming up and the workers filling
 * their queues, are slower than the rest, so the first re-plan's speed is low). Both come before the anneal schedule's
 * decay, which starts at four fifths of the steps.
 */
export function replanDue(plan: BudgetPlan | undefined, step: number): plan is BudgetPlan {
  if (plan === undefined) return false;
  if (plan.replan === undefined) return step >= 0.1 * plan.steps;
  // (A plan stored before the second re-plan existed has no elapsedS: it continues as it was made.)
  return plan.second === undefined && plan.replan.elapsedS !== undefined &&
    step >= SECOND_REPLAN_AT * plan.replan.steps;
}

/**
 * The plan made again at `step`, `elapsedS` seconds into the run, from the speed the run measured
 * (`samplesPerSecond`: over its steps so far the first time, since the first re-plan the second): the steps that fill
 * what is left of the budget, stored as `replan` the first time and `second` the next. The steps before `step` stay as
 * they were; the `plateau` schedule does not depend on the number of steps, the `anneal` and `cosine` ones follow each
 * plan up to the step of the next ({@link scheduleSteps}; the anneal schedule holds its rate there either way).
 */
export function replanFromRun(
  plan: BudgetPlan,
  at: { step: number; elapsedS: number; samplesPerSecond: number; batch: number },
): BudgetPlan {
  const left = Math.max(0, plan.minutes * 60 - at.elapsedS) * REPLAN_EFFICIENCY;
  const steps = Math.max(at.step + 1, at.step + Math.floor((left * at.samplesPerSecond) / at.batch));
  const made: Replan = { step: at.step, samplesPerSecond: at.samplesPerSecond, steps, elapsedS: at.elapsedS };
  return plan.replan === undefined ? { ...plan, replan: made } : { ...plan, second: made };
}

/**
 * The training config for a budget of `minutes`: the plan stored in `out` when the same budget is continued there,
 * else a new plan from a measured warm-up. `classesGiven` keeps the user's N instead of choosing one, `perClassGiven`
 * the user's K instead of unlimited copies.
 */
export async function planBudget(
  cfg: TrainConfig,
  minutes: number,
  out: string,
  opts: { backend?: string; classesGiven?: boolean; perClassGiven?: boolean; log?: (m: string) => void } = {},
): Promise<TrainConfig> {
  if (!(minutes > 0 && Number.isFinite(minutes))) throw new UserError(`--minutes ${minutes}: expected minutes > 0`);
  const log = opts.log ?? (() => {});
  if (exists(join(out, RUN_FILES.config))) {
    const prev = (await readRunConfig(out)).train;
    if (prev.budget?.minutes === minutes) {
      log(
        `continuing the ${minutes}-minute plan of ${out}: ${prev.steps} steps, N = ${prev.classes}${
          prev.budget.replan ? " (as planned again from its own speed)" : ""
        }`,
      );
      return {
        ...cfg,
        steps: prev.steps,
        classes: prev.classes,
        perClass: prev.perClass,
        schedule: prev.schedule,
        lr: prev.lr,
        budget: prev.budget,
      };
    }
  }
  const backend = await selectBackend(opts.backend);
  const probe = { ...cfg, classes: opts.classesGiven ? cfg.classes : 1000 };
  checkTrainingFits(probe, backend);
  const samplesPerSecond = await measureSpeed(probe, backend);
  const steps = Math.max(1, Math.floor((minutes * 60 * samplesPerSecond * EFFICIENCY) / cfg.batch));
  if (steps > LIMITS.steps) {
    throw new UserError(
      `--minutes ${minutes}: at the ${samplesPerSecond.toFixed(0)} samples/s measured on ${backend.name} that is ` +
        `${steps} steps, more than the ${LIMITS.steps} a run takes; give fewer minutes`,
    );
  }
  const classes = opts.classesGiven ? cfg.classes : budgetClasses(steps * cfg.batch);
  const budget: BudgetPlan = { minutes, samplesPerSecond, efficiency: EFFICIENCY, steps, classes };
  const schedule = cfg.schedule;
  const decayed = Number((cfg.lr * DECAY_FLOOR).toPrecision(6));
  const rate = schedule === "anneal"
    ? `rate ${cfg.lr} held, then down to ${decayed} over the last ${ANNEAL_TAIL * 100} % of the steps`
    : schedule === "cosine"
    ? `rate ${cfg.lr} down to ${decayed} along a cosine`
    : `${schedule} schedule from rate ${cfg.lr}`;
  const perClass = opts.perClassGiven ? cfg.perClass : "inf";
  log(
    `plan for ${minutes} minutes: ${samplesPerSecond.toFixed(0)} samples/s measured on ${backend.name} -> ${steps} ` +
      `steps of ${cfg.batch} (${steps * cfg.batch} samples), N = ${classes}, ${
        perClass === "inf" ? "K unlimited" : `K = ${perClass}`
      }, ${rate}; planned again from the run's own speed after a tenth of the steps and at half of them`,
  );
  return { ...cfg, steps, classes, perClass, schedule, budget };
}

/**
 * A time budget's re-plans during a run ({@link replanDue}, {@link replanFromRun}): at the validations where they are
 * due, from the speed the run measured since its 20th step (the kernels are at full speed by then), or since the
 * first re-plan; each is stored in config.json, so that a continued run keeps it.
 */
export class Replanner {
  #from: { step: number; elapsedS: number } | null = null;

  /**
   * For the run of `cfg` (whose `steps` and `budget` the re-plans change) in folder `out`, continued from
   * `startStep`; `elapsedS` tells the seconds of training so far.
   */
  constructor(
    readonly cfg: TrainConfig,
    readonly out: string,
    readonly startStep: number,
    readonly elapsedS: () => number,
    readonly log: (m: string) => void,
  ) {}

  /** After the row of `step` (made at `rowElapsedS`): plans again when due; returns the new number of steps, or null. */
  async afterRow(step: number, rowElapsedS: number, validated: boolean): Promise<number | null> {
    const cfg = this.cfg;
    let planned: number | null = null;
    if (validated && replanDue(cfg.budget, step) && this.#from && step < cfg.steps) {
      const before = cfg.budget.replan;
      const from = before ? { step: before.step, elapsedS: before.elapsedS! } : this.#from;
      const elapsedS = this.elapsedS();
      const samplesPerSecond = ((step - from.step) * cfg.batch) / (elapsedS - from.elapsedS);
      const previous = cfg.steps;
      cfg.budget = replanFromRun(cfg.budget, { step, elapsedS, samplesPerSecond, batch: cfg.batch });
      cfg.steps = planned = (cfg.budget.second ?? cfg.budget.replan)!.steps;
      await updateTrainConfig(this.out, { steps: cfg.steps, budget: cfg.budget });
      this.log(
        `\nplanned again at step ${step}: the run trains at ${samplesPerSecond.toFixed(0)} samples/s -> ${cfg.steps} ` +
          `steps fit the ${cfg.budget.minutes} minutes (${
            before ? "planned before" : "the warm-up planned"
          } ${previous})`,
      );
    }
    this.#from ??= step >= this.startStep + 20 ? { step, elapsedS: rowElapsedS } : null;
    return planned;
  }
}
