/**
 * Pretraining on the surrogate task (paper §4 and §5.1; PAPER.md "Training").
 *
 * "We train the network [...] with stochastic gradient descent with momentum
 * 0.9, batch size 128 [...] the learning rate starts at 0.01 and is divided by
 * 3 whenever the validation error stops improving." The loss is the softmax
 * cross-entropy over the N surrogate classes.
 *
 * Schedules (lib/schedule.ts):
 * - `plateau` (the paper): lr 0.01, divided by 3 when the error on held-out
 *   surrogate copies has not improved for `patience` validations;
 * - `stages` (the release): lr 0.01 / 0.004 / 0.001 / 0.0004 / 0.0001 for
 *   1.2 M / 120 k / 120 k / 60 k / 60 k of its 1.56 M iterations, scaled to the
 *   run's number of steps;
 * - `anneal` (a time budget's, lib/budget.ts): lr held for four fifths of the
 *   run's steps, then down in a straight line to lr / 100 at its end;
 * - `cosine`: from lr down to lr / 100 along half a cosine over the run's steps.
 * Caffe's SGD as the release uses it: v = 0.9 v + lr lr_mult (g + wd decay_mult w),
 * w -= v, with weight decay 0.004 and the released per-layer multipliers
 * (decay: conv1 0, conv2 0, conv3 0.25, fc 1, softmax 4; lr: biases 2,
 * softmax weights 0.25); every number from lib/presets.ts.
 *
 * A run folder (lib/run_folder.ts) holds `config.json`, `metrics.jsonl` (one
 * JSON row per logged step), `curves.html`, the seeds, and `checkpoint.ckpt`,
 * written atomically every few minutes, at the end and on Ctrl-C or SIGTERM.
 * Batches and dropout masks are functions of the step, so the same command
 * continues exactly where a run stopped: the loss curve after resuming equals
 * the uninterrupted run's.
 *
 * @module
 */
import { join } from "node:path";
import { type BackendInfo, selectBackend } from "./compute/backend.ts";
import { openDataset, pretrainingSplit } from "./data/mod.ts";
import { UserError } from "./util/errors.ts";
import { exists } from "./util/fsutil.ts";
import { lockFolder } from "./util/lock.ts";
import { createEngine, type GradientEngine } from "./compute/engine.ts";
import { netFlops, netSummary } from "./nets.ts";
import {
  keepMetricsUpTo,
  loadRunCheckpoint,
  MetricsLog,
  type MetricsRow,
  readRunConfig,
  restoreSlots,
  RUN_FILES,
  type RunCheckpoint,
  type RunState,
  saveRunCheckpoint,
  seedsHash,
  WEIGHT_LIMIT,
  weightTrouble,
  writeCurves,
  writeRunConfig,
} from "./run_folder.ts";
import { annealRate, cosineRate, plateauStep, stageRate } from "./schedule.ts";
import { replanDue, replanFromRun, scheduleSteps } from "./budget.ts";
import { checkTrainingFits, type TrainConfig, validateConfig } from "./config.ts";
import { runEnvironment } from "./environment.ts";
import { METHODS } from "./presets.ts";
import { hash32 } from "./util/rng.ts";
import { loadSeeds, PATCH, saveSeeds, seedPatches, type Seeds } from "./seeds.ts";
import { SurrogateData, SurrogateLoader } from "./surrogate.ts";

/** The keys a resumed run must share with the run it continues. */
const IDENTITY_KEYS: (keyof TrainConfig)[] = [
  "data",
  "net",
  "classes",
  "perClass",
  "batch",
  "method",
  "schedule",
  "lr",
  "momentum",
  "weightDecay",
  "seed",
  "validEvery",
  "patience",
  "logEvery",
  "validationCopies",
  "parallel",
];

/** What {@link pretrain} reports. */
export interface TrainResult {
  /** The run folder. */
  out: string;
  /** SGD steps. */
  steps: number;
  /** Samples seen (steps x batch). */
  samples: number;
  /** The backend it ran on. */
  backend: BackendInfo;
  /** Whether it stopped early (Ctrl-C, SIGTERM), with a checkpoint. */
  interrupted: boolean;
  /** The last logged row. */
  last: MetricsRow | null;
}

/** Options of {@link pretrain}. */
export interface PretrainOptions {
  /** The run folder. */
  out: string;
  /** Insist on continuing a run (an error if there is none). */
  resume?: boolean;
  /** Backend name (default: the selection chain). */
  backend?: string;
  /** Minutes between checkpoints. */
  checkpointMinutes?: number;
  /** Messages for the user (default: none). */
  log?: (msg: string) => void;
  /** Each logged metrics row, as it is made. */
  onRow?: (row: MetricsRow) => void;
  /** The run's number of steps when a time budget's re-plan changes it. */
  onSteps?: (steps: number) => void;
  /** Stop (with a checkpoint) when this returns true; checked every step. */
  shouldStop?: () => boolean;
}

/**
 * Pretrains a network on the surrogate task; see the module documentation.
 *
 * The same call on the same folder continues the run from its checkpoint (`resume` is implied); a run that stopped
 * before its first checkpoint starts again. The folder is locked while the run writes it.
 */
export async function pretrain(cfg: TrainConfig, opts: PretrainOptions): Promise<TrainResult> {
  validateConfig(cfg);
  const backend = await selectBackend(opts.backend);
  checkTrainingFits(cfg, backend);
  const lock = await lockFolder(opts.out);
  try {
    return await pretrainLocked(cfg, backend, opts);
  } finally {
    lock.release();
  }
}

/**
 * Refuses, before anything is written, to continue a run folder made with other settings: the keys a continued run
 * must share with the run it continues. Nothing to continue (no config.json) is no refusal.
 */
export async function checkContinues(cfg: TrainConfig, out: string): Promise<void> {
  if (!exists(join(out, RUN_FILES.config))) return;
  const prev = (await readRunConfig(out)).train;
  for (const k of IDENTITY_KEYS) {
    if (JSON.stringify(prev[k]) !== JSON.stringify(cfg[k])) {
      throw new UserError(
        `${out}: that run was made with ${k} = ${JSON.stringify(prev[k])}, not ${
          JSON.stringify(cfg[k])
        }; the run folder is left as it is (another --out starts a new run)`,
      );
    }
  }
}

async function pretrainLocked(cfg: TrainConfig, backend: BackendInfo, opts: PretrainOptions): Promise<TrainResult> {
  cfg = { ...cfg }; // (a time budget's re-plan changes its steps)
  const log = opts.log ?? (() => {});
  const out = opts.out;
  const numbers = METHODS[cfg.method].train;

  // The run folder: a checkpoint to continue from, or a new run.
  const saved = await previousRun(cfg, out, opts.resume ?? false, log);
  const state: RunState = saved?.state ??
    { step: 0, lr: cfg.lr, bestValError: Infinity, badValidations: 0, elapsed: 0 };
  if (state.step >= cfg.steps) log(`${out}: already trained for ${state.step} steps (of ${cfg.steps})`);

  const spec = { net: cfg.net, classes: cfg.classes, method: cfg.method, seed: cfg.seed };
  const parallel = backend.name === "wasm" ? Math.max(1, cfg.parallel) : 1;
  log(`backend: ${backend.name} (${backend.detail})${parallel > 1 ? `, ${parallel} gradient workers` : ""}`);

  // "We sample N patches [...] forming the initial training set" (§3): drawn once, kept in the run folder.
  const seeds = saved && exists(join(out, "seeds.json")) ? await runSeeds(cfg, out) : await drawSeeds(cfg, out, log);
  // "[...] we apply a set of transformations [...] K times to each seed": the surrogate classes.
  const data = new SurrogateData(seeds, {
    k: cfg.perClass === "inf" ? Infinity : cfg.perClass,
    method: cfg.method,
    seed: cfg.seed,
    validationCopies: cfg.validationCopies,
  });

  const engine = await createEngine(backend, spec, parallel);
  const W = engine.weights, V = engine.momenta;
  try {
    if (saved) {
      restoreSlots(out, saved, engine.slots, W, V);
      engine.push();
    }
  } catch (e) {
    engine.close();
    throw e;
  }
  if (!saved) {
    const summary = netSummary(cfg.net, cfg.classes, cfg.method);
    await writeRunConfig(out, {
      train: cfg,
      backend,
      environment: await runEnvironment(backend),
      gradient_workers: parallel,
      net: { summary, flops_per_sample: netFlops(summary) },
      seeds: { n: seeds.n, images: new Set(seeds.origins.map((o) => o.image)).size, hash: seedsHash(seeds) },
      created: new Date().toISOString(),
    });
  }
  if (saved) await recordSteps(out, cfg.steps, log);
  await keepMetricsUpTo(out, state.step);

  // Validation: the held-out copies of every class, at most 4096 samples.
  const val = data.validation();
  const nVal = Math.min(val.y.length, 4096);
  const validate = async () => {
    const r = await engine.evaluate(val.x.subarray(0, nVal * PATCH * PATCH * 3), val.y.subarray(0, nVal), nVal);
    const loss = r.loss / nVal;
    if (!Number.isFinite(loss)) diverged(`the validation loss became ${loss}`, state, lastSaved);
    return { loss, accuracy: r.correct / nVal };
  };

  const hyper = { momentum: cfg.momentum, weightDecay: cfg.weightDecay };
  const loader = new SurrogateLoader(data, cfg.batch, { workers: cfg.workers, start: state.step });
  const metrics = new MetricsLog(out);
  // The step of the last checkpoint written (or continued from): what a diverged run leaves.
  let lastSaved: number | null = saved ? state.step : null;
  const sums = new RowSums(engine, state, () => lastSaved);
  const save = async () => {
    await sums.collect(); // never a checkpoint of a run that diverged
    state.window = sums.window; // a resumed run's first row then averages the same steps as the uninterrupted run's
    await engine.pull();
    // The weights as they will be saved, checked exactly: a checkpoint only ever holds a network that can be used.
    const trouble = weightTrouble(engine.slots.map((s) => [s.name, W.subarray(s.offset, s.offset + s.size)]));
    if (trouble) diverged(trouble, state, lastSaved);
    await saveRunCheckpoint(out, { state, net: cfg.net, classes: cfg.classes }, engine.slots, W, V);
    lastSaved = state.step;
  };
  // A time budget planned again from the run's own speed: stored in config.json, so a continued run keeps it.
  // The first time from the run's 20th step, the second from the first re-plan.
  const replan = async (firstFrom: { step: number; elapsedS: number }) => {
    const before = cfg.budget!.replan, from = before ? { step: before.step, elapsedS: before.elapsedS! } : firstFrom;
    const elapsedS = elapsed0 + (performance.now() - t0) / 1000;
    const samplesPerSecond = ((state.step - from.step) * cfg.batch) / (elapsedS - from.elapsedS);
    const planned = cfg.steps;
    cfg.budget = replanFromRun(cfg.budget!, { step: state.step, elapsedS, samplesPerSecond, batch: cfg.batch });
    cfg.steps = (cfg.budget.second ?? cfg.budget.replan)!.steps;
    await updateTrainConfig(out, { steps: cfg.steps, budget: cfg.budget });
    log(
      `\nplanned again at step ${state.step}: the run trains at ${
        samplesPerSecond.toFixed(0)
      } samples/s -> ${cfg.steps} ` +
        `steps fit the ${cfg.budget.minutes} minutes (${before ? "planned before" : "the warm-up planned"} ${planned})`,
    );
    opts.onSteps?.(cfg.steps);
  };
  const signals = stopOnSignals();
  const curvesTitle = () =>
    `${cfg.net}, N = ${cfg.classes}, K = ${cfg.perClass}, ${cfg.steps} steps, ${cfg.method} method`;
  const ckEvery = (opts.checkpointMinutes ?? 5) * 60e3;
  const t0 = performance.now(), elapsed0 = state.elapsed, startStep = state.step;
  let lastCk = t0, rowStart = t0, rowSamples = 0;
  // A time budget's speed, measured from this process's 20th step (the kernels are at full speed by then).
  let speedFrom: { step: number; elapsedS: number } | null = null;
  let last: MetricsRow | null = null;
  let interrupted = false;
  try {
    while (state.step < cfg.steps) {
      if (signals.stopped || opts.shouldStop?.()) {
        interrupted = true;
        break;
      }
      // One SGD step on a batch of surrogate samples: softmax cross-entropy over the N classes.
      if (cfg.schedule === "stages") state.lr = stageRate(state.step, cfg.steps, cfg.lr, numbers.stages);
      if (cfg.schedule === "anneal" || cfg.schedule === "cosine") {
        const rate = cfg.schedule === "anneal" ? annealRate : cosineRate;
        state.lr = rate(state.step, scheduleSteps(cfg.steps, cfg.budget, state.step), cfg.lr);
      }
      const batch = await loader.next();
      await engine.accumulate(batch.x, batch.y, cfg.batch, dropoutSeed(cfg.seed, state.step));
      engine.update(state.lr, hyper);
      state.step++;
      rowSamples += cfg.batch;

      const doLog = state.step % cfg.logEvery === 0 || state.step === cfg.steps;
      const doVal = state.step % cfg.validEvery === 0 || state.step === cfg.steps;
      if (doLog || doVal) {
        // The read waits for the device to finish the row's steps (a GPU runs behind the steps recorded for it), so
        // the row's time, taken after it, counts their computation.
        await sums.collect();
        const now = performance.now();
        const row = sums.row(state, {
          samples_per_s: rowSamples / ((now - rowStart) / 1000),
          epoch: (state.step * cfg.batch) / data.epochSize,
          elapsed_s: elapsed0 + (now - t0) / 1000,
        });
        if (doVal) {
          const v = await validate();
          row.val_loss = v.loss;
          row.val_accuracy = v.accuracy;
          if (cfg.schedule === "plateau" && plateauStep(state, 1 - v.accuracy, cfg.patience, numbers.divideBy)) {
            log(
              `\nvalidation error stopped improving: learning rate divided by ${numbers.divideBy} -> ${
                state.lr.toPrecision(3)
              }`,
            );
          }
        }
        if (doVal && replanDue(cfg.budget, state.step) && speedFrom && state.step < cfg.steps) {
          await replan(speedFrom);
        }
        speedFrom ??= state.step >= startStep + 20 ? { step: state.step, elapsedS: row.elapsed_s } : null;
        metrics.write(row);
        opts.onRow?.(row);
        if (doVal) await writeCurves(out, curvesTitle());
        last = row;
        rowStart = performance.now();
        rowSamples = 0;
      }
      state.elapsed = elapsed0 + (performance.now() - t0) / 1000;
      if (performance.now() - lastCk > ckEvery) {
        await save();
        lastCk = performance.now();
      }
    }
    // (A run that was already complete made no step: its checkpoint stays as it is.)
    if (state.step > startStep || !saved) await save();
  } finally {
    loader.close();
    metrics.close();
    signals.remove();
    engine.close();
  }
  if (interrupted) log(`\ninterrupted at step ${state.step}: checkpoint written; the same command continues the run`);
  return { out, steps: state.step, samples: state.step * cfg.batch, backend, interrupted, last };
}

/** A run continued with another number of steps (`--steps`): config.json says so, as the metrics will. */
async function recordSteps(out: string, steps: number, log: (m: string) => void): Promise<void> {
  const file = await readRunConfig(out);
  if (file.train.steps === steps) return;
  log(`${out}: continuing with ${steps} steps (the run was made with ${file.train.steps})`);
  await updateTrainConfig(out, { steps });
}

/** Changes some training settings in a run's config.json (the rest of the file stays as it is). */
async function updateTrainConfig(out: string, train: Partial<TrainConfig>): Promise<void> {
  const file = await readRunConfig(out);
  await writeRunConfig(out, { ...file, train: { ...file.train, ...train } });
}

/** The dropout masks of a step: a function of the run seed and the step, so a resumed run draws the same ones. */
function dropoutSeed(seed: number, step: number): number {
  return 1 + (hash32(seed, 31, step) % 0x7ffffff0);
}

/**
 * The checkpoint to continue from, or null for a new run. A checkpoint made with other settings is an error (the
 * folder is left as it is); a folder whose run stopped before its first checkpoint starts again.
 */
async function previousRun(
  cfg: TrainConfig,
  out: string,
  resume: boolean,
  log: (m: string) => void,
): Promise<RunCheckpoint | null> {
  const hasConfig = exists(join(out, RUN_FILES.config));
  if (!hasConfig || !exists(join(out, RUN_FILES.checkpoint))) {
    if (resume && !hasConfig) {
      throw new UserError(`--resume ${out}: no run to resume there (config.json and checkpoint.ckpt)`);
    }
    if (hasConfig) log(`${out}: the run there stopped before its first checkpoint; starting it again from step 0`);
    return null;
  }
  await checkContinues(cfg, out);
  return await loadRunCheckpoint(out);
}

/**
 * The seeds of a run being continued: they must be the ones it was made with (N of them, and, where config.json
 * records it, the same hash), else the folder's seeds were replaced and the run is refused.
 */
async function runSeeds(cfg: TrainConfig, out: string): Promise<Seeds> {
  const seeds = await loadSeeds(out);
  const recorded = ((await readRunConfig(out)).seeds as { hash?: string } | undefined)?.hash;
  if (seeds.n !== cfg.classes || (recorded !== undefined && recorded !== seedsHash(seeds))) {
    throw new UserError(
      `${out}: its seeds (seeds.bin, seeds.json) are not the ones the run was made with (${
        seeds.n !== cfg.classes ? `${seeds.n} seeds for N = ${cfg.classes}` : "another hash"
      }); restore them, or start a new run with another --out`,
    );
  }
  return seeds;
}

/** Draws the run's N seed patches from the data's pretraining split and saves them in the run folder. */
async function drawSeeds(cfg: TrainConfig, out: string, log: (m: string) => void) {
  const ds = await openDataset(cfg.data, { log });
  try {
    const split = pretrainingSplit(ds);
    log(
      `drawing N = ${cfg.classes} seed patches (${cfg.method}) from ${cfg.data} ${split.name} (${split.length} images)`,
    );
    const seeds = await seedPatches(split, { n: cfg.classes, method: cfg.method, seed: cfg.seed, flag: "--classes" });
    if (seeds.skipped?.length) {
      log(
        `${seeds.skipped.length} images could not be read and were skipped (listed in seeds.json), the first: ${
          seeds.skipped[0].reason
        }`,
      );
    }
    await saveSeeds(out, seeds);
    return seeds;
  } finally {
    ds.close();
  }
}

/**
 * A run that diverged stops here, with one line: what went wrong, at which steps, the likely cause (the learning
 * rate), and the checkpoint that is kept (the last one whose weights were finite and within bounds).
 */
function diverged(what: string, state: RunState, lastSaved: number | null): never {
  throw new UserError(
    `training diverged by step ${state.step} at learning rate ${state.lr}: ${what}; lower the learning rate (--lr). ${
      lastSaved === null ? "No checkpoint was written." : `The last checkpoint (step ${lastSaved}) is kept as it was.`
    }`,
  );
}

/**
 * The loss and correct count of the steps since the last logged row, read from the engine when a row is logged or
 * a checkpoint is written (on a GPU each read waits for the device: once per row, not once per step), and the check
 * that training has not diverged: a loss that is no longer finite, or weights that are not finite or beyond
 * `WEIGHT_LIMIT` (lib/run_folder.ts), stop the run.
 */
class RowSums {
  window: { loss: number; correct: number; samples: number };
  #checked: number;
  constructor(readonly engine: GradientEngine, readonly state: RunState, readonly lastSaved: () => number | null) {
    this.window = state.window ?? { loss: 0, correct: 0, samples: 0 };
    this.#checked = state.step;
  }

  /** Adds the engine's sums since the last read, after checking that training has not diverged. */
  async collect(): Promise<void> {
    const s = await this.engine.stats();
    const first = this.#checked + 1, last = this.state.step;
    const steps = first === last ? `in step ${last}` : `in steps ${first}-${last}`;
    if (s.samples > 0 && !Number.isFinite(s.loss)) {
      diverged(`the training loss became ${s.loss} ${steps}`, this.state, this.lastSaved());
    }
    if (!(s.weightMax <= WEIGHT_LIMIT)) {
      const what = Number.isNaN(s.weightMax)
        ? "some weights are no longer finite numbers"
        : `a weight reached ${s.weightMax.toExponential(1)} (a usable network stays within ${WEIGHT_LIMIT})`;
      diverged(`${what} ${steps}`, this.state, this.lastSaved());
    }
    const w = this.window;
    this.window = { loss: w.loss + s.loss, correct: w.correct + s.correct, samples: w.samples + s.samples };
    this.#checked = this.state.step;
  }

  /** The metrics row of the steps since the last one, as collected (and starts the next). */
  row(state: RunState, timing: Pick<MetricsRow, "samples_per_s" | "epoch" | "elapsed_s">): MetricsRow {
    const w = this.window;
    this.window = { loss: 0, correct: 0, samples: 0 };
    return { step: state.step, loss: w.loss / w.samples, accuracy: w.correct / w.samples, lr: state.lr, ...timing };
  }
}

/** Ctrl-C (SIGINT) and SIGTERM (a scheduler's or `kill`'s stop) end the run after the current step, with a checkpoint. */
function stopOnSignals(): { readonly stopped: boolean; remove(): void } {
  const flag = { stopped: false };
  const onSignal = () => {
    flag.stopped = true;
  };
  const SIGNALS = ["SIGINT", "SIGTERM"] as const;
  for (const sig of SIGNALS) {
    try {
      Deno.addSignalListener(sig, onSignal);
    } catch { /* not available on every platform */ }
  }
  return {
    get stopped() {
      return flag.stopped;
    },
    remove() {
      for (const sig of SIGNALS) {
        try {
          Deno.removeSignalListener(sig, onSignal);
        } catch { /* ignore */ }
      }
    },
  };
}
