/**
 * Pretraining on the surrogate task (PAPER.md section 3).
 *
 * "We train the network [...] with stochastic gradient descent with momentum
 * 0.9, batch size 128 [...] the learning rate starts at 0.01 and is divided by
 * 3 whenever the validation error stops improving." The loss is the softmax
 * cross-entropy over the N surrogate classes.
 *
 * Schedules:
 * - `plateau` (the paper): lr 0.01, divided by 3 when the error on held-out
 *   surrogate copies has not improved for `patience` validations;
 * - `stages` (the release): lr 0.01 / 0.004 / 0.001 / 0.0004 / 0.0001 for
 *   1.2 M / 120 k / 120 k / 60 k / 60 k of its 1.56 M iterations, scaled to the
 *   run's number of steps.
 * Caffe's SGD as the release uses it: v = 0.9 v + lr lr_mult (g + wd decay_mult w),
 * w -= v, with weight decay 0.004 and the released per-layer multipliers
 * (decay: conv1 0, conv2 0, conv3 0.25, fc 1, softmax 4; lr: biases 2,
 * softmax weights 0.25).
 *
 * A run folder holds `config.json`, `metrics.jsonl` (one JSON row per logged
 * step: step, loss, accuracy, lr, samples_per_s; validation rows add
 * val_loss, val_accuracy), the seeds, and `checkpoint.ckpt`, written
 * atomically every few minutes, at the end and on Ctrl-C or SIGTERM. Batches and dropout
 * masks are functions of the step, so `resume` continues exactly where the
 * run stopped: the loss curve after resuming equals the uninterrupted run's.
 *
 * @module
 */
import { join } from "node:path";
import { augmentPreset } from "./augment.ts";
import { type BackendInfo, selectBackend, tf } from "./compute/backend.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { openDataset, pretrainingSplit } from "./data/mod.ts";
import { UserError } from "./util/errors.ts";
import { exists, lockFolder, writeFileAtomic } from "./util/fsutil.ts";
import { createEngine } from "./compute/engine.ts";
import { ExemplarNet, netFlops, netSummary, type NetVariant } from "./nets.ts";
import { hash32 } from "./util/rng.ts";
import { loadSeeds, PATCH, saveSeeds, seedPatches, type SeedPreset } from "./seeds.ts";
import { SurrogateData, SurrogateLoader } from "./surrogate.ts";

/** Everything that defines a pretraining run. */
export interface TrainConfig {
  data: string;
  net: string;
  /** N: surrogate classes (seed patches). */
  classes: number;
  /** K: copies per class, or "inf". */
  perClass: number | "inf";
  steps: number;
  batch: number;
  /** `paper` or `release`: seed sampling, transformation ranges, network variant and default schedule. */
  preset: "paper" | "release";
  schedule: "plateau" | "stages";
  lr: number;
  momentum: number;
  weightDecay: number;
  seed: number;
  /** Validate every this many steps (and log a validation row). */
  validEvery: number;
  /** Plateau schedule: validations without improvement before the rate is divided by 3. */
  patience: number;
  /** Log a training row every this many steps. */
  logEvery: number;
  /** Held-out copies per class used for validation (at most 4096 samples are used). */
  validationCopies: number;
  /** Workers generating surrogate batches. */
  workers: number;
  /**
   * Gradient workers on the wasm backend (data parallelism, lib/compute/engine.ts);
   * 1 computes in the training thread. Other backends always use 1.
   */
  parallel: number;
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, "data" | "net" | "classes" | "perClass" | "steps"> = {
  batch: 128,
  preset: "paper",
  schedule: "plateau",
  lr: 0.01,
  momentum: 0.9,
  weightDecay: 0.004,
  seed: 0,
  validEvery: 200,
  patience: 3,
  logEvery: 10,
  validationCopies: 1,
  workers: 2,
  parallel: 2,
};

/** The keys a resumed run must share with the run it continues. */
const IDENTITY_KEYS: (keyof TrainConfig)[] = [
  "data",
  "net",
  "classes",
  "perClass",
  "batch",
  "preset",
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

/** The release's fixed stages: [iterations, learning rate], 1.56 M iterations in all. */
export const RELEASE_STAGES: [number, number][] = [
  [1_200_000, 0.01],
  [120_000, 0.004],
  [120_000, 0.001],
  [60_000, 0.0004],
  [60_000, 0.0001],
];
const RELEASE_ITERATIONS = RELEASE_STAGES.reduce((a, [n]) => a + n, 0);

/** The learning rate of the `stages` schedule at `step` of `steps` (stage lengths scaled to `steps`). */
export function stageRate(step: number, steps: number, base = 0.01): number {
  let end = 0;
  for (const [n, lr] of RELEASE_STAGES) {
    end += n;
    // step / steps < end / RELEASE_ITERATIONS, in integers.
    if (step * RELEASE_ITERATIONS < end * steps) return base === 0.01 ? lr : lr * base / 0.01;
  }
  const last = RELEASE_STAGES[RELEASE_STAGES.length - 1][1];
  return base === 0.01 ? last : last * base / 0.01;
}

/** One row of metrics.jsonl. */
export interface MetricsRow {
  step: number;
  loss: number;
  accuracy: number;
  lr: number;
  samples_per_s: number;
  epoch: number;
  elapsed_s: number;
  val_loss?: number;
  val_accuracy?: number;
}

/** What {@link pretrain} reports. */
export interface TrainResult {
  out: string;
  steps: number;
  samples: number;
  backend: BackendInfo;
  interrupted: boolean;
  last: MetricsRow | null;
}

/** Options of {@link pretrain}. */
export interface PretrainOptions {
  out: string;
  resume?: boolean;
  /** Backend name (default: the selection chain). */
  backend?: string;
  /** Minutes between checkpoints. */
  checkpointMinutes?: number;
  log?: (msg: string) => void;
  onRow?: (row: MetricsRow) => void;
  /** Stop (with a checkpoint) when this returns true; checked every step. */
  shouldStop?: () => boolean;
}

interface RunState {
  step: number;
  lr: number;
  bestValError: number;
  badValidations: number;
  elapsed: number;
  /** Summed loss, correct count and samples of the steps since the last logged row. */
  window?: { loss: number; correct: number; samples: number };
}

function validateConfig(c: TrainConfig): void {
  if (!Number.isInteger(c.classes) || c.classes < 2) {
    throw new UserError(`--classes ${c.classes}: N must be an integer >= 2`);
  }
  if (c.perClass !== "inf" && (!Number.isInteger(c.perClass) || c.perClass < 1)) {
    throw new UserError(`--per-class ${c.perClass}: K must be a positive integer or inf`);
  }
  if (!Number.isInteger(c.batch) || c.batch < 1) {
    throw new UserError(`--batch ${c.batch}: the batch size must be a positive integer`);
  }
  if (!Number.isInteger(c.steps) || c.steps < 1) throw new UserError(`--steps ${c.steps}: expected a positive integer`);
  augmentPreset(c.preset);
  if (c.schedule !== "plateau" && c.schedule !== "stages") {
    throw new UserError(`schedule "${c.schedule}": expected plateau (the paper) or stages (the release)`);
  }
}

/** Reads metrics.jsonl (rows up to `maxStep`). */
export async function readMetrics(dir: string, maxStep = Infinity): Promise<MetricsRow[]> {
  const path = join(dir, "metrics.jsonl");
  if (!exists(path)) return [];
  const lines = (await Deno.readTextFile(path)).split("\n");
  const rows: MetricsRow[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].trim()) continue;
    try {
      rows.push(JSON.parse(lines[i]) as MetricsRow);
    } catch {
      // A last row cut short (the run was killed while writing it) is dropped; a resumed run writes it again.
      if (lines.slice(i + 1).every((l) => !l.trim())) break;
      throw new UserError(`${path}: line ${i + 1} is not a metrics row (the file is damaged)`);
    }
  }
  return rows.filter((r) => r.step <= maxStep);
}

/** The trained network of a run folder (its checkpoint's weights). */
export async function loadTrainedNet(dir: string): Promise<{ net: ExemplarNet; config: TrainConfig; step: number }> {
  const cfgPath = join(dir, "config.json");
  const ckPath = join(dir, "checkpoint.ckpt");
  if (!exists(cfgPath) || !exists(ckPath)) {
    throw new UserError(
      `${dir}: no trained checkpoint (expected config.json and checkpoint.ckpt from deno task pretrain)`,
    );
  }
  const config = JSON.parse(await Deno.readTextFile(cfgPath)).train as TrainConfig;
  const ck = await loadCheckpoint(ckPath);
  const net = new ExemplarNet(config.net, config.classes, { variant: config.preset as NetVariant, seed: config.seed });
  for (const p of net.params) {
    const a = ck.arrays.find((a) => a.name === p.name);
    if (!a) throw new UserError(`${ckPath}: parameter ${p.name} is missing`);
    const t = tf.tensor(a.data, a.shape);
    p.v.assign(t);
    t.dispose();
  }
  return { net, config, step: (ck.state.run as RunState).step };
}

/**
 * Pretrains a network on the surrogate task; see the module documentation.
 *
 * The same call on the same folder continues the run from its checkpoint (`resume` is implied); a run that stopped
 * before its first checkpoint starts again. The folder is locked while the run writes it.
 */
export async function pretrain(cfg: TrainConfig, opts: PretrainOptions): Promise<TrainResult> {
  validateConfig(cfg);
  const lock = await lockFolder(opts.out);
  try {
    return await pretrainLocked(cfg, opts);
  } finally {
    lock.release();
  }
}

async function pretrainLocked(cfg: TrainConfig, opts: PretrainOptions): Promise<TrainResult> {
  const log = opts.log ?? (() => {});
  const out = opts.out;
  const cfgPath = join(out, "config.json"), ckPath = join(out, "checkpoint.ckpt");
  let state: RunState = { step: 0, lr: cfg.lr, bestValError: Infinity, badValidations: 0, elapsed: 0 };
  let momenta: Map<string, Float32Array> | null = null;
  let weights: Map<string, Float32Array> | null = null;

  const resuming = exists(ckPath) && exists(cfgPath);
  if (opts.resume && !resuming && !exists(cfgPath)) {
    throw new UserError(`--resume ${out}: no run to resume there (config.json and checkpoint.ckpt)`);
  }
  if (!resuming && exists(cfgPath)) {
    log(`${out}: the run there stopped before its first checkpoint; starting it again from step 0`);
  }
  if (resuming) {
    const prev = JSON.parse(await Deno.readTextFile(cfgPath)).train as TrainConfig;
    for (const k of IDENTITY_KEYS) {
      if (JSON.stringify(prev[k]) !== JSON.stringify(cfg[k])) {
        throw new UserError(
          `${out}: that run was made with ${k} = ${JSON.stringify(prev[k])}, not ${
            JSON.stringify(cfg[k])
          }; the run folder is left as it is (another --out starts a new run)`,
        );
      }
    }
    const ck = await loadCheckpoint(ckPath);
    state = ck.state.run as RunState;
    weights = new Map(ck.arrays.filter((a) => !a.name.startsWith("momentum:")).map((a) => [a.name, a.data]));
    momenta = new Map(ck.arrays.filter((a) => a.name.startsWith("momentum:")).map((a) => [a.name.slice(9), a.data]));
    if (state.step >= cfg.steps) log(`${out}: already trained for ${state.step} steps (of ${cfg.steps})`);
  }

  const backend = await selectBackend(opts.backend);
  const spec = { net: cfg.net, classes: cfg.classes, variant: cfg.preset as NetVariant, seed: cfg.seed };
  const parallel = backend.name === "wasm" ? Math.max(1, cfg.parallel) : 1;
  log(`backend: ${backend.name} (${backend.detail})${parallel > 1 ? `, ${parallel} gradient workers` : ""}`);

  // Seeds: drawn once, kept in the run folder.
  let seeds;
  if (resuming && exists(join(out, "seeds.json"))) seeds = await loadSeeds(out);
  else {
    const ds = await openDataset(cfg.data);
    const split = pretrainingSplit(ds);
    log(
      `drawing N = ${cfg.classes} seed patches (${cfg.preset}) from ${cfg.data} ${split.name} (${split.length} images)`,
    );
    seeds = await seedPatches(split, {
      n: cfg.classes,
      preset: cfg.preset as SeedPreset,
      seed: cfg.seed,
      flag: "--classes",
    });
    ds.close();
    await saveSeeds(out, seeds);
  }
  const K = cfg.perClass === "inf" ? Infinity : cfg.perClass;
  const data = new SurrogateData(seeds, {
    k: K,
    preset: cfg.preset,
    seed: cfg.seed,
    validationCopies: cfg.validationCopies,
  });

  const engine = await createEngine(backend, spec, parallel);
  const W = engine.weights, V = engine.momenta;
  for (const slot of engine.slots) {
    const w = weights?.get(slot.name), m = momenta?.get(slot.name);
    if (weights && (!w || w.length !== slot.size)) {
      engine.close();
      throw new UserError(`${ckPath}: parameter ${slot.name} is missing or has another shape`);
    }
    if (w) W.set(w, slot.offset);
    if (m) V.set(m, slot.offset);
  }
  if (weights) engine.push();
  const summary = netSummary(cfg.net, cfg.classes, spec.variant);
  if (!resuming) {
    await writeFileAtomic(
      cfgPath,
      JSON.stringify(
        {
          train: cfg,
          backend,
          gradient_workers: parallel,
          net: { summary, flops_per_sample: netFlops(summary) },
          seeds: { n: seeds.n, images: new Set(seeds.origins.map((o) => o.image)).size },
          created: new Date().toISOString(),
        },
        null,
        2,
      ) + "\n",
    );
    await writeFileAtomic(join(out, "metrics.jsonl"), "");
  } else {
    // Drop rows logged after the checkpoint: they will be made again, identically.
    const rows = await readMetrics(out, state.step);
    await writeFileAtomic(join(out, "metrics.jsonl"), rows.map((r) => JSON.stringify(r) + "\n").join(""));
  }

  // Validation set: held-out copies, at most 4096 samples.
  const val = data.validation();
  const nVal = Math.min(val.y.length, 4096);
  const evaluate = async () => {
    const r = await engine.evaluate(val.x.subarray(0, nVal * PATCH * PATCH * 3), val.y.subarray(0, nVal), nVal);
    return { loss: r.loss / nVal, accuracy: r.correct / nVal };
  };

  const hyper = { momentum: cfg.momentum, weightDecay: cfg.weightDecay };

  const loader = new SurrogateLoader(data, cfg.batch, { workers: cfg.workers, start: state.step });
  const metricsFile = await Deno.open(join(out, "metrics.jsonl"), { append: true });
  const enc = new TextEncoder();
  const writeRow = (row: MetricsRow) => {
    metricsFile.writeSync(enc.encode(JSON.stringify(row) + "\n"));
    opts.onRow?.(row);
  };
  // The loss and correct count of the steps since the last row, read from the engine when a row is logged or a
  // checkpoint is written (on a GPU each read waits for the device: once per row, not once per step).
  let window = state.window ?? { loss: 0, correct: 0, samples: 0 }, checked = state.step;
  const collect = async () => {
    const s = await engine.stats();
    if (s.samples > 0 && !Number.isFinite(s.loss)) {
      throw new UserError(
        `the loss became ${s.loss} in steps ${checked + 1}-${state.step} at learning rate ${state.lr}: training ` +
          `diverged (lower the learning rate); the last checkpoint is left as it was`,
      );
    }
    window = { loss: window.loss + s.loss, correct: window.correct + s.correct, samples: window.samples + s.samples };
    checked = state.step;
  };
  const save = async () => {
    await collect(); // never a checkpoint of a run that diverged
    state.window = window; // a resumed run's first row then averages the same steps as the uninterrupted run's
    await engine.pull();
    const arrays = [
      ...engine.slots.map((s) => ({ name: s.name, shape: s.shape, data: W.slice(s.offset, s.offset + s.size) })),
      ...engine.slots.map((s) => ({
        name: `momentum:${s.name}`,
        shape: s.shape,
        data: V.slice(s.offset, s.offset + s.size),
      })),
    ];
    await saveCheckpoint(ckPath, { state: { run: state, net: cfg.net, classes: cfg.classes }, arrays });
  };

  // Ctrl-C (SIGINT) and SIGTERM (a scheduler's or `kill`'s stop) end the run after the current step, with a
  // checkpoint.
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  const SIGNALS = ["SIGINT", "SIGTERM"] as const;
  for (const sig of SIGNALS) {
    try {
      Deno.addSignalListener(sig, onSignal);
    } catch { /* not available on every platform */ }
  }
  const ckEvery = (opts.checkpointMinutes ?? 5) * 60e3;
  const t0 = performance.now();
  let lastCk = t0, windowStart = t0, windowSamples = 0;
  const elapsed0 = state.elapsed, startStep = state.step;
  let last: MetricsRow | null = null;
  let interrupted = false;
  try {
    while (state.step < cfg.steps) {
      if (stop || opts.shouldStop?.()) {
        interrupted = true;
        break;
      }
      const step = state.step;
      if (cfg.schedule === "stages") state.lr = stageRate(step, cfg.steps, cfg.lr);
      const batch = await loader.next();
      await engine.accumulate(batch.x, batch.y, cfg.batch, 1 + (hash32(cfg.seed, 31, step) % 0x7ffffff0));
      engine.update(state.lr, hyper);
      state.step++;
      windowSamples += cfg.batch;
      const doLog = state.step % cfg.logEvery === 0 || state.step === cfg.steps;
      const doVal = state.step % cfg.validEvery === 0 || state.step === cfg.steps;
      if (doLog || doVal) {
        await collect();
        const now = performance.now();
        const row: MetricsRow = {
          step: state.step,
          loss: window.loss / window.samples,
          accuracy: window.correct / window.samples,
          lr: state.lr,
          samples_per_s: windowSamples / ((now - windowStart) / 1000),
          epoch: (state.step * cfg.batch) / data.epochSize,
          elapsed_s: elapsed0 + (now - t0) / 1000,
        };
        if (doVal) {
          const v = await evaluate();
          row.val_loss = v.loss;
          row.val_accuracy = v.accuracy;
          if (cfg.schedule === "plateau") {
            const err = 1 - v.accuracy;
            if (err < state.bestValError - 1e-9) {
              state.bestValError = err;
              state.badValidations = 0;
            } else if (++state.badValidations >= cfg.patience) {
              state.lr /= 3;
              state.badValidations = 0;
              log(`\nvalidation error stopped improving: learning rate divided by 3 -> ${state.lr.toPrecision(3)}`);
            }
          }
        }
        writeRow(row);
        last = row;
        window = { loss: 0, correct: 0, samples: 0 };
        windowStart = performance.now();
        windowSamples = 0;
      }
      state.elapsed = elapsed0 + (performance.now() - t0) / 1000;
      if (performance.now() - lastCk > ckEvery) {
        await save();
        lastCk = performance.now();
      }
    }
    // (A run that was already complete made no step: its checkpoint stays as it is.)
    if (state.step > startStep || !resuming) await save();
  } finally {
    loader.close();
    metricsFile.close();
    for (const sig of SIGNALS) {
      try {
        Deno.removeSignalListener(sig, onSignal);
      } catch { /* ignore */ }
    }
    engine.close();
  }
  if (interrupted) log(`\ninterrupted at step ${state.step}: checkpoint written; the same command continues the run`);
  return { out, steps: state.step, samples: state.step * cfg.batch, backend, interrupted, last };
}
