/**
 * Learning-rate schedules of pretraining (paper §5.1).
 *
 * - `plateau` (the paper): "the learning rate [...] is divided by 3 whenever
 *   the validation error stops improving": {@link plateauStep}, called after
 *   every validation.
 * - `stages` (the release): fixed rates for fixed numbers of iterations, their
 *   lengths scaled to the run's steps: {@link stageRate}.
 * - `anneal` and `cosine` (a time budget's, lib/budget.ts): the rate ends the
 *   run decayed to a hundredth: {@link annealRate}, {@link cosineRate}.
 *
 * @module
 */
import { METHODS } from "./presets.ts";
import type { BudgetPlan, TrainConfig } from "./config.ts";

/**
 * The learning rate of step `state.step` under the run's schedule: the release's stages, a budget's anneal or cosine
 * decay, each a function of the step; the paper's plateau schedule keeps the rate the last validation left
 * ({@link plateauStep} divides it).
 */
export function learningRate(
  cfg: Pick<TrainConfig, "schedule" | "steps" | "lr" | "budget" | "method">,
  state: { step: number; lr: number },
): number {
  switch (cfg.schedule) {
    case "plateau":
      return state.lr;
    case "stages":
      return stageRate(state.step, cfg.steps, cfg.lr, METHODS[cfg.method].train.stages);
    case "anneal":
      return annealRate(state.step, scheduleSteps(cfg.steps, cfg.budget, state.step), cfg.lr);
    case "cosine":
      return cosineRate(state.step, scheduleSteps(cfg.steps, cfg.budget, state.step), cfg.lr);
  }
}

/**
 * The number of steps a decaying schedule spans at `step` of a time budget's run: each plan's, up to the step where
 * the next was made (lib/budget.ts; the anneal schedule holds its rate there either way).
 */
export function scheduleSteps(steps: number, plan: BudgetPlan | undefined, step: number): number {
  if (plan?.replan && step < plan.replan.step) return plan.steps;
  if (plan?.replan && plan.second && step < plan.second.step) return plan.replan.steps;
  return steps;
}

/**
 * The learning rate of the `stages` schedule at `step` of `steps`: the release's fixed stages
 * ([iterations, rate], lib/presets.ts), their lengths scaled to `steps` and their rates to `base`.
 */
export function stageRate(
  step: number,
  steps: number,
  base: number = METHODS.release.train.lr,
  stages: [number, number][] = METHODS.release.train.stages,
): number {
  const iterations = stages.reduce((a, [n]) => a + n, 0), releaseBase = stages[0][1];
  const scaled = (lr: number) => base === releaseBase ? lr : lr * base / releaseBase;
  let end = 0;
  for (const [n, lr] of stages) {
    end += n;
    // step / steps < end / iterations, in integers.
    if (step * iterations < end * steps) return scaled(lr);
  }
  return scaled(stages[stages.length - 1][1]);
}

/**
 * The learning rate of the `cosine` schedule (a time budget's, lib/budget.ts) at `step` of `steps`: from `base` down
 * to `base * floor` along half a cosine, so that the run ends on time with the rate decayed.
 */
export function cosineRate(step: number, steps: number, base: number, floor = DECAY_FLOOR): number {
  const t = Math.min(1, step / Math.max(1, steps));
  return base * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

/** What the `anneal` and `cosine` schedules decay the rate to at the end of a run, as a share of the initial rate. */
export const DECAY_FLOOR = 0.01;

/** The share of a run's steps over which the `anneal` schedule decays the rate. */
export const ANNEAL_TAIL = 0.2;

/**
 * The learning rate of the `anneal` schedule (a time budget's, lib/budget.ts) at `step` of `steps`: `base` held for
 * the first four fifths of the run, then down in a straight line to `base * floor` for the last step (over the last
 * {@link ANNEAL_TAIL} of it). A short budget needs the full rate for as long as it can have it (it does not reach the
 * plateau where the paper's schedule lowers the rate, and a cosine decay from the start learned worse features), and
 * a decayed rate at its end.
 */
export function annealRate(
  step: number,
  steps: number,
  base: number,
  floor = DECAY_FLOOR,
  tail = ANNEAL_TAIL,
): number {
  // (The last step, `steps - 1`, is made at `base * floor`.)
  const from = (1 - tail) * steps, last = steps - 1;
  if (step <= from) return base;
  const t = Math.min(1, (step - from) / Math.max(1, last - from));
  return base * (1 - (1 - floor) * t);
}

/** What the plateau schedule remembers between validations (saved in checkpoints). */
export interface PlateauState {
  lr: number;
  /** The lowest validation error so far (Infinity before the first validation). */
  bestValError: number;
  /** Validations since the last improvement. */
  badValidations: number;
}

/**
 * The plateau schedule after one validation with error `valError`: an improvement resets the count; `patience`
 * validations without one divide the rate by `divideBy`. Changes `s`; returns whether the rate was divided.
 */
export function plateauStep(s: PlateauState, valError: number, patience: number, divideBy: number): boolean {
  if (valError < s.bestValError - 1e-9) {
    s.bestValError = valError;
    s.badValidations = 0;
    return false;
  }
  if (++s.badValidations < patience) return false;
  s.lr /= divideBy;
  s.badValidations = 0;
  return true;
}
