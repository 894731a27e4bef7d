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
import { netSpec } from "./nets.ts";
import { type BackendInfo, selectBackend } from "./compute/backend.ts";
import { UserError } from "./util/errors.ts";
import { lockFolder } from "./util/lock.ts";
import { createEngine, type GradientEngine } from "./compute/engine.ts";
import {
  MetricsLog,
  type MetricsRow,
  openRun,
  restoreSlots,
  type RunState,
  saveRunCheckpoint,
  WEIGHT_LIMIT,
  weightTrouble,
  writeCurves,
} from "./run_folder.ts";
import { learningRate, plateauStep } from "./schedule.ts";
import { Replanner } from "./budget.ts";
import { checkTrainingFits, type TrainConfig, transformsLabel, validateConfig } from "./config.ts";
import { TRANSFORMS } from "./augment.ts";
import { METHODS } from "./presets.ts";
import { hash32 } from "./util/rng.ts";
import { PATCH } from "./seeds.ts";
import { SurrogateData, SurrogateLoader } from "./surrogate.ts";

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
  /** Progress of long work before the first step (drawing the seeds): (what, done, in all). */
  onProgress?: (what: string, done: number, total: number) => void;
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
    return await pretrainLocked({ ...cfg }, backend, opts); // (a time budget's re-plans change the copy's steps)
  } finally {
    lock.release();
  }
}

async function pretrainLocked(cfg: TrainConfig, backend: BackendInfo, opts: PretrainOptions): Promise<TrainResult> {
  const log = opts.log ?? (() => {}), out = opts.out;
  const parallel = backend.name === "wasm" ? Math.max(1, cfg.parallel) : 1;
  log(`backend: ${backend.name} (${backend.detail})${parallel > 1 ? `, ${parallel} gradient workers` : ""}`);
  // The run folder: a new run (its N seeds drawn, §3), or the checkpoint of one to continue.
  const { saved, state, seeds } = await openRun(cfg, out, {
    resume: !!opts.resume,
    backend,
    gradientWorkers: parallel,
    log,
    onProgress: opts.onProgress,
  });
  // "[...] we apply a set of transformations [...] K times to each seed": the surrogate classes (§3).
  const data = new SurrogateData(seeds, {
    k: cfg.perClass === "inf" ? Infinity : cfg.perClass,
    method: cfg.method,
    transforms: cfg.transforms,
    seed: cfg.seed,
    validationCopies: cfg.validationCopies,
  });
  const engine = await createEngine(backend, netSpec(cfg), parallel);
  const loader = new SurrogateLoader(data, cfg.batch, { workers: cfg.workers, start: state.step });
  const metrics = new MetricsLog(out);
  const signals = stopOnSignals();
  try {
    if (saved) {
      restoreSlots(out, saved, engine.slots, engine.weights, engine.momenta);
      engine.push();
    }
    return await trainLoop(
      cfg,
      { engine, data, loader, metrics, state, continued: saved !== null, backend, signals },
      opts,
    );
  } finally {
    loader.close();
    metrics.close();
    signals.remove();
    engine.close();
  }
}

/** What the loop works with. */
interface LoopParts {
  engine: GradientEngine;
  data: SurrogateData;
  loader: SurrogateLoader;
  metrics: MetricsLog;
  state: RunState;
  continued: boolean;
  backend: BackendInfo;
  signals: { readonly stopped: boolean };
}

/** The training loop: one SGD step per batch; rows, validations, re-plans and checkpoints at their steps. */
async function trainLoop(cfg: TrainConfig, p: LoopParts, opts: PretrainOptions): Promise<TrainResult> {
  const { engine, data, loader, metrics, state } = p, log = opts.log ?? (() => {}), out = opts.out;
  const hyper = { momentum: cfg.momentum, weightDecay: cfg.weightDecay }, divideBy = METHODS[cfg.method].train.divideBy;
  const t0 = performance.now(), elapsed0 = state.elapsed, startStep = state.step;
  const elapsedS = () => elapsed0 + (performance.now() - t0) / 1000;
  const ckEvery = (opts.checkpointMinutes ?? 5) * 60e3;
  let lastCk = t0, rowStart = t0, rowSamples = 0, last: MetricsRow | null = null, interrupted = false;
  // The step of the last checkpoint written (or continued from): what a run that diverges leaves.
  let lastSaved: number | null = p.continued ? state.step : null;
  const sums = new RowSums(engine, state, () => lastSaved);
  const validation = validator(engine, data, state, () => lastSaved);
  const replanner = new Replanner(cfg, out, startStep, elapsedS, log);
  const save = async () => {
    await sums.collect(); // never a checkpoint of a run that diverged
    state.window = sums.window; // a resumed run's first row then averages the same steps as the uninterrupted run's
    await engine.pull();
    // The weights as they will be saved, checked exactly: a checkpoint only ever holds a network that can be used.
    const trouble = weightTrouble(
      engine.slots.map((s) => [s.name, engine.weights.subarray(s.offset, s.offset + s.size)]),
    );
    if (trouble) diverged(trouble, state, lastSaved);
    await saveRunCheckpoint(
      out,
      { state, net: cfg.net, classes: cfg.classes },
      engine.slots,
      engine.weights,
      engine.momenta,
    );
    lastSaved = state.step;
  };

  while (state.step < cfg.steps) {
    if (p.signals.stopped || opts.shouldStop?.()) {
      interrupted = true;
      break;
    }
    // "Stochastic gradient descent with momentum 0.9, batch size 128" (§5.1), at the schedule's learning rate.
    state.lr = learningRate(cfg, state);
    const batch = await loader.next();
    // Forward, the softmax cross-entropy summed over the batch's surrogate classes, and backward
    // (lib/compute/engine.ts NetRunner.gradients); the dropout masks are a function of the step.
    await engine.accumulate(batch.x, batch.y, cfg.batch, dropoutSeed(cfg.seed, state.step));
    // Caffe's update with the release's multipliers: v = 0.9 v + lr lr_mult (g + 0.004 decay_mult w), w -= v
    // (lib/compute/engine.ts sgdUpdate; on a GPU, lib/compute/webgpu_sgd.ts).
    engine.update(state.lr, hyper);
    state.step++;
    rowSamples += cfg.batch;

    const doLog = state.step % cfg.logEvery === 0 || state.step === cfg.steps;
    const doVal = state.step % cfg.validEvery === 0 || state.step === cfg.steps;
    if (doLog || doVal) {
      // (The read waits for a GPU to finish the row's steps, so the row's time, taken after it, counts them.)
      await sums.collect();
      const now = performance.now();
      const row = sums.row(state, {
        samples_per_s: rowSamples / ((now - rowStart) / 1000),
        epoch: (state.step * cfg.batch) / data.epochSize,
        elapsed_s: elapsedS(),
      });
      if (doVal) {
        Object.assign(row, await validation());
        // "[...] divided by 3 whenever the validation error stops improving" (§5.1): the paper's schedule.
        if (cfg.schedule === "plateau" && plateauStep(state, 1 - row.val_accuracy!, cfg.patience, divideBy)) {
          log(
            `\nvalidation error stopped improving: learning rate divided by ${divideBy} -> ${state.lr.toPrecision(3)}`,
          );
        }
      }
      const steps = await replanner.afterRow(state.step, row.elapsed_s, doVal);
      if (steps !== null) opts.onSteps?.(steps);
      metrics.write(row);
      opts.onRow?.(row);
      if (doVal) {
        await writeCurves(
          out,
          `${cfg.net}, N = ${cfg.classes}, K = ${cfg.perClass}, ${cfg.steps} steps, ${cfg.method} method${
            cfg.transforms.length === TRANSFORMS.length ? "" : `, ${transformsLabel(cfg.transforms)}`
          }`,
        );
      }
      last = row;
      rowStart = performance.now();
      rowSamples = 0;
    }
    state.elapsed = elapsedS();
    if (performance.now() - lastCk > ckEvery) {
      await save();
      lastCk = performance.now();
    }
  }
  // (A run that was already complete made no step: its checkpoint stays as it is.)
  if (state.step > startStep || !p.continued) await save();
  if (interrupted) log(`\ninterrupted at step ${state.step}: checkpoint written; the same command continues the run`);
  return { out, steps: state.step, samples: state.step * cfg.batch, backend: p.backend, interrupted, last };
}

/**
 * Validation on held-out copies of every class (at most 4096 samples): their mean loss and accuracy. A validation
 * loss that is not finite is a run that diverged.
 */
function validator(
  engine: GradientEngine,
  data: SurrogateData,
  state: RunState,
  lastSaved: () => number | null,
): () => Promise<{ val_loss: number; val_accuracy: number }> {
  const val = data.validation();
  const n = Math.min(val.y.length, 4096);
  return async () => {
    const r = await engine.evaluate(val.x.subarray(0, n * PATCH * PATCH * 3), val.y.subarray(0, n), n);
    const loss = r.loss / n;
    if (!Number.isFinite(loss)) diverged(`the validation loss became ${loss}`, state, lastSaved());
    return { val_loss: loss, val_accuracy: r.correct / n };
  };
}

/** The dropout masks of a step: a function of the run seed and the step, so a resumed run draws the same ones. */
function dropoutSeed(seed: number, step: number): number {
  return 1 + (hash32(seed, 31, step) % 0x7ffffff0);
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
