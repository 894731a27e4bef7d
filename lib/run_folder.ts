/**
 * A pretraining run folder, read and written.
 *
 * - `config.json`: the run's {@link TrainConfig} (`train`), the backend, the
 *   network summary and when it was made;
 * - `metrics.jsonl`: one JSON {@link MetricsRow} per logged step;
 * - `checkpoint.ckpt`: weights, SGD momenta and the {@link RunState}, written
 *   atomically and checked when read (lib/checkpoint.ts);
 * - `seeds.bin`, `seeds.json`: the seed patches (lib/seeds.ts);
 * - `curves.html`: the training curves (loss, accuracy, learning rate, speed), written at every validation.
 *
 * @module
 */
import { join } from "node:path";
import { tf } from "./compute/backend.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { ExemplarNet } from "./nets.ts";
import type { PlateauState } from "./schedule.ts";
import type { TrainConfig } from "./config.ts";
import { hashBytes } from "./util/rng.ts";
import { loadSeeds, saveSeeds, seedPatches, type Seeds } from "./seeds.ts";
import type { BackendInfo } from "./compute/backend.ts";
import { openDataset, pretrainingSplit } from "./data/mod.ts";
import { runEnvironment } from "./environment.ts";
import { netFlops, netSummary } from "./nets.ts";
import { UserError } from "./util/errors.ts";
import { exists, fsError, isDir, writeFileAtomic } from "./util/fsutil.ts";
import { type FolderLock, lockFolder } from "./util/lock.ts";
import { escapeHtml, scriptJson } from "./util/html.ts";
import type { PlotlyFigure } from "./util/viz.ts";
import { TRANSFORMS } from "./augment.ts";

/** The files of a run folder. */
export const RUN_FILES = { config: "config.json", metrics: "metrics.jsonl", checkpoint: "checkpoint.ckpt" } as const;

/** One row of metrics.jsonl. */
export interface MetricsRow {
  /** Steps made. */
  step: number;
  /** Mean training loss since the last row. */
  loss: number;
  /** Surrogate-task accuracy since the last row (0..1). */
  accuracy: number;
  /** Learning rate. */
  lr: number;
  /** Training speed since the last row. */
  samples_per_s: number;
  /** Epochs of surrogate data seen. */
  epoch: number;
  /** Seconds of training so far. */
  elapsed_s: number;
  /** Loss on the held-out copies (validation rows). */
  val_loss?: number;
  /** Accuracy on the held-out copies (validation rows). */
  val_accuracy?: number;
}

/** The training state a checkpoint keeps beside the weights: enough to continue exactly. */
export interface RunState extends PlateauState {
  step: number;
  /** Seconds of training so far. */
  elapsed: number;
  /** Summed loss, correct count and samples of the steps since the last logged row. */
  window?: { loss: number; correct: number; samples: number };
}

/** One parameter's place in the engine's flat weight vector. */
interface Slot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/** What a run folder's config.json holds (its `train` part is the run's config). */
export interface RunConfigFile {
  train: TrainConfig;
  [key: string]: unknown;
}

/** Reads a run folder's config.json (see {@link readRunConfigFile}). */
export function readRunConfig(dir: string): Promise<RunConfigFile> {
  return readRunConfigFile(join(dir, RUN_FILES.config));
}

/**
 * Reads a run's config file; a config written before the presets were called methods (`preset`) reads as `method`,
 * and one written before runs named their transformations was made with all six.
 */
export async function readRunConfigFile(path: string): Promise<RunConfigFile> {
  let file: RunConfigFile & { train: { preset?: TrainConfig["method"] } };
  try {
    file = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new UserError(
      `${path}: ${e instanceof Deno.errors.NotFound ? "not found" : "not JSON"} (expected a run's config.json)`,
    );
  }
  if (!file?.train || typeof file.train !== "object") throw new UserError(`${path}: no "train" configuration`);
  if (file.train.method === undefined) file.train.method = file.train.preset ?? "paper";
  delete file.train.preset;
  if (file.train.transforms === undefined) file.train.transforms = [...TRANSFORMS];
  return file;
}

/** Changes some training settings in a run's config.json (the rest of the file stays as it is). */
export async function updateTrainConfig(dir: string, train: Partial<TrainConfig>): Promise<void> {
  const file = await readRunConfig(dir);
  await writeRunConfig(dir, { ...file, train: { ...file.train, ...train } });
}

/** Writes config.json for a new run. */
export async function writeRunConfig(dir: string, file: RunConfigFile): Promise<void> {
  await writeFileAtomic(join(dir, RUN_FILES.config), JSON.stringify(file, null, 2) + "\n");
}

/** Reads metrics.jsonl (rows up to `maxStep`). A last row cut short is dropped; damage elsewhere is an error. */
export async function readMetrics(dir: string, maxStep = Infinity): Promise<MetricsRow[]> {
  const path = join(dir, RUN_FILES.metrics);
  if (!exists(path)) return [];
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw fsError(e, "cannot read", path);
  }
  const lines = text.split("\n");
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

/** Keeps the rows of metrics.jsonl up to `step` (a resumed run makes the later ones again, identically). */
export async function keepMetricsUpTo(dir: string, step: number): Promise<void> {
  const rows = step === 0 ? [] : await readMetrics(dir, step);
  await writeFileAtomic(join(dir, RUN_FILES.metrics), rows.map((r) => JSON.stringify(r) + "\n").join(""));
}

/** Appends rows to metrics.jsonl as they are made. */
export class MetricsLog {
  readonly #file: Deno.FsFile;
  readonly #enc = new TextEncoder();
  readonly #path: string;
  constructor(dir: string) {
    this.#path = join(dir, RUN_FILES.metrics);
    try {
      this.#file = Deno.openSync(this.#path, { append: true, create: true });
    } catch (e) {
      throw fsError(e, "cannot open", this.#path);
    }
  }
  write(row: MetricsRow): void {
    try {
      this.#file.writeSync(this.#enc.encode(JSON.stringify(row) + "\n"));
    } catch (e) {
      throw fsError(e, "cannot append to", this.#path);
    }
  }
  close(): void {
    this.#file.close();
  }
}

/** Writes a run's checkpoint: its state, and the weights and momenta of every slot of the flat vectors. */
export async function saveRunCheckpoint(
  dir: string,
  run: { state: RunState; net: string; classes: number },
  slots: readonly Slot[],
  weights: Float32Array,
  momenta: Float32Array,
): Promise<void> {
  const arrays = [
    ...slots.map((s) => ({ name: s.name, shape: s.shape, data: weights.slice(s.offset, s.offset + s.size) })),
    ...slots.map((s) => ({
      name: `momentum:${s.name}`,
      shape: s.shape,
      data: momenta.slice(s.offset, s.offset + s.size),
    })),
  ];
  await saveCheckpoint(join(dir, RUN_FILES.checkpoint), {
    state: { run: run.state, net: run.net, classes: run.classes },
    arrays,
  });
}

/** A run's checkpoint: its state and its weights and momenta by parameter name. */
export interface RunCheckpoint {
  state: RunState;
  weights: Map<string, Float32Array>;
  momenta: Map<string, Float32Array>;
}

/** Reads a run's checkpoint. */
export async function loadRunCheckpoint(dir: string): Promise<RunCheckpoint> {
  const ck = await loadCheckpoint(join(dir, RUN_FILES.checkpoint));
  const byName = (keep: (name: string) => boolean, strip = 0) =>
    new Map(ck.arrays.filter((a) => keep(a.name)).map((a) => [a.name.slice(strip), a.data]));
  return {
    state: ck.state.run as RunState,
    weights: byName((n) => !n.startsWith("momentum:")),
    momenta: byName((n) => n.startsWith("momentum:"), "momentum:".length),
  };
}

/** Copies saved weights (and momenta) into an engine's flat vectors; a missing or misshapen one is an error. */
export function restoreSlots(
  dir: string,
  ck: RunCheckpoint,
  slots: readonly Slot[],
  weights: Float32Array,
  momenta: Float32Array,
): void {
  for (const slot of slots) {
    const w = ck.weights.get(slot.name), m = ck.momenta.get(slot.name);
    if (!w || w.length !== slot.size) {
      throw new UserError(
        `${join(dir, RUN_FILES.checkpoint)}: parameter ${slot.name} is missing or has another shape`,
      );
    }
    weights.set(w, slot.offset);
    if (m) momenta.set(m, slot.offset);
  }
}

/**
 * No weight of a network that learns grows past this: beyond it, or when a weight is not a finite number, training
 * has diverged (the paper's networks start within +-0.3 and stay within a few units while they learn).
 */
export const WEIGHT_LIMIT = 1e3;

/**
 * What is wrong with a network's weights (given by parameter name), or null when every weight is a finite number
 * within {@link WEIGHT_LIMIT}.
 */
export function weightTrouble(params: Iterable<[string, Float32Array]>): string | null {
  for (const [name, w] of params) {
    let max = 0;
    for (let i = 0; i < w.length; i++) {
      const a = Math.abs(w[i]);
      if (!(a <= WEIGHT_LIMIT)) {
        return Number.isNaN(a)
          ? `${name} holds weights that are not numbers (NaN)`
          : a === Infinity
          ? `${name} holds infinite weights`
          : `${name} holds a weight of ${w[i].toExponential(1)} (a usable network stays within ${WEIGHT_LIMIT})`;
      }
      if (a > max) max = a;
    }
  }
  return null;
}

/** A short hash of a run's seed patches (their pixels and where they came from), kept in config.json. */
export function seedsHash(seeds: Seeds): string {
  return hashBytes(seeds.context, seeds.n);
}

/**
 * Locks a run folder that a task reads (evaluate, export, invariance), so that no live pretraining replaces its
 * checkpoint meanwhile; a path that is a file is answered with one line saying so.
 */
export async function lockRunFolder(dir: string): Promise<FolderLock> {
  if (exists(dir) && !isDir(dir)) throw new UserError(`${dir}: a file, not a run folder`);
  return await lockFolder(dir);
}

/** The trained network of a run folder (its checkpoint's weights). */
export async function loadTrainedNet(dir: string): Promise<{ net: ExemplarNet; config: TrainConfig; step: number }> {
  if (!exists(join(dir, RUN_FILES.config)) || !exists(join(dir, RUN_FILES.checkpoint))) {
    throw new UserError(
      `${dir}: no trained checkpoint (expected config.json and checkpoint.ckpt from deno task pretrain)`,
    );
  }
  const config = (await readRunConfig(dir)).train;
  const ck = await loadRunCheckpoint(dir);
  const trouble = weightTrouble(ck.weights);
  if (trouble) {
    throw new UserError(
      `${
        join(dir, RUN_FILES.checkpoint)
      }: ${trouble}: the run diverged and its network cannot be used (train it again with a lower --lr)`,
    );
  }
  const net = new ExemplarNet(config.net, config.classes, { method: config.method, seed: config.seed });
  for (const p of net.params) {
    const w = ck.weights.get(p.name);
    if (!w || w.length !== p.v.size) {
      net.dispose();
      throw new UserError(`${join(dir, RUN_FILES.checkpoint)}: parameter ${p.name} is missing or has another shape`);
    }
    const t = tf.tensor(w, p.v.shape);
    p.v.assign(t);
    t.dispose();
  }
  return { net, config, step: ck.state.step };
}

/** The training curves of a run's rows as a Plotly figure: loss, surrogate accuracy, learning rate, samples/s. */
export function curvesFigure(rows: MetricsRow[], title: string): PlotlyFigure {
  const step = rows.map((r) => r.step), val = rows.filter((r) => r.val_accuracy !== undefined);
  const line = (name: string, x: number[], y: (number | undefined)[], axis: number, dash = "solid") => ({
    type: "scatter",
    mode: "lines",
    name,
    x,
    y,
    xaxis: "x",
    yaxis: axis === 1 ? "y" : `y${axis}`,
    line: { dash },
  });
  return {
    data: [
      line("training loss", step, rows.map((r) => r.loss), 1),
      line("validation loss", val.map((r) => r.step), val.map((r) => r.val_loss), 1, "dot"),
      line("training accuracy (%)", step, rows.map((r) => 100 * r.accuracy), 2),
      line("validation accuracy (%)", val.map((r) => r.step), val.map((r) => 100 * r.val_accuracy!), 2, "dot"),
      line("learning rate", step, rows.map((r) => r.lr), 3),
      line("samples/s", step, rows.map((r) => r.samples_per_s), 4),
    ],
    layout: {
      title: { text: title },
      grid: { rows: 4, columns: 1, pattern: "coupled" },
      yaxis: { title: { text: "loss" } },
      yaxis2: { title: { text: "accuracy (%)" } },
      yaxis3: { title: { text: "learning rate" }, type: "log" },
      yaxis4: { title: { text: "samples/s" } },
      xaxis: { title: { text: "step" } },
      height: 900,
    },
  };
}

/** Writes `curves.html` into a run folder (with plotly.min.js beside it, so it opens offline). */
export async function writeCurves(dir: string, title: string): Promise<void> {
  const plotly = join(dir, "plotly.min.js");
  if (!exists(plotly)) {
    await writeFileAtomic(
      plotly,
      await Deno.readFile(new URL("../node_modules/plotly.js-dist-min/plotly.min.js", import.meta.url)),
    );
  }
  const fig = curvesFigure(await readMetrics(dir), title);
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<script src="plotly.min.js"></script></head><body><div id="curves"></div><script>
const fig = ${scriptJson(fig)};
Plotly.newPlot("curves", fig.data, fig.layout).then(() => document.body.setAttribute("data-chart", "drawn"));
</script></body></html>
`;
  await writeFileAtomic(join(dir, "curves.html"), html);
}

/** The keys a continued run must share with the run it continues. */
const IDENTITY_KEYS: (keyof TrainConfig)[] = [
  "data",
  "net",
  "classes",
  "perClass",
  "batch",
  "method",
  "transforms",
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

/** A run folder opened for training. */
export interface OpenedRun {
  /** The checkpoint the run continues from, or null for a new run. */
  saved: RunCheckpoint | null;
  /** Where training stands: the checkpoint's state, or step 0. */
  state: RunState;
  /** The run's N seed patches (paper §3). */
  seeds: Seeds;
}

/**
 * Opens a run folder for pretraining `cfg`. A folder with a checkpoint is continued: its settings must be the run's
 * (`checkContinues`), its seeds the ones it was made with, and a new number of steps is recorded in config.json. A new
 * run (or one stopped before its first checkpoint, which starts again) draws its seeds and writes config.json with
 * what the run is made with. Metrics rows past the step it continues from are dropped: the run makes them again.
 */
export async function openRun(
  cfg: TrainConfig,
  out: string,
  opts: {
    resume: boolean;
    backend: BackendInfo;
    gradientWorkers: number;
    log: (m: string) => void;
    /** Progress of drawing the seeds: (phase, images done, images in all). */
    onProgress?: (phase: string, done: number, total: number) => void;
  },
): Promise<OpenedRun> {
  const { log } = opts;
  const hasConfig = exists(join(out, RUN_FILES.config));
  const continued = hasConfig && exists(join(out, RUN_FILES.checkpoint));
  if (!continued && opts.resume && !hasConfig) {
    throw new UserError(`--resume ${out}: no run to resume there (config.json and checkpoint.ckpt)`);
  }
  if (!continued && hasConfig) {
    log(`${out}: the run there stopped before its first checkpoint; starting it again from step 0`);
  }
  let opened: OpenedRun;
  if (continued) {
    await checkContinues(cfg, out);
    const saved = await loadRunCheckpoint(out);
    opened = { saved, state: saved.state, seeds: await runSeeds(cfg, out, log, opts.onProgress) };
    await recordSteps(out, cfg.steps, log);
  } else {
    // "We sample N patches [...] forming the initial training set" (§3): drawn once, kept in the run folder.
    const seeds = await drawSeeds(cfg, out, log, undefined, opts.onProgress);
    const summary = netSummary(cfg.net, cfg.classes, cfg.method);
    await writeRunConfig(out, {
      train: cfg,
      backend: opts.backend,
      environment: await runEnvironment(opts.backend),
      gradient_workers: opts.gradientWorkers,
      net: { summary, flops_per_sample: netFlops(summary) },
      seeds: { n: seeds.n, images: new Set(seeds.origins.map((o) => o.image)).size, hash: seedsHash(seeds) },
      created: new Date().toISOString(),
    });
    opened = {
      saved: null,
      state: { step: 0, lr: cfg.lr, bestValError: Infinity, badValidations: 0, elapsed: 0 },
      seeds,
    };
  }
  if (opened.state.step >= cfg.steps) log(`${out}: already trained for ${opened.state.step} steps (of ${cfg.steps})`);
  await keepMetricsUpTo(out, opened.state.step);
  return opened;
}

/** A run continued with another number of steps (`--steps`): config.json says so, as the metrics will. */
async function recordSteps(out: string, steps: number, log: (m: string) => void): Promise<void> {
  const file = await readRunConfig(out);
  if (file.train.steps === steps) return;
  log(`${out}: continuing with ${steps} steps (the run was made with ${file.train.steps})`);
  await updateTrainConfig(out, { steps });
}

/**
 * The seeds of a run being continued: they must be the ones it was made with (N of them, and, where config.json
 * records it, the same hash), else the folder's seeds were replaced and the run is refused. Missing ones are drawn
 * again (the same, from the same data and settings).
 */
async function runSeeds(
  cfg: TrainConfig,
  out: string,
  log: (m: string) => void,
  onProgress?: (phase: string, done: number, total: number) => void,
): Promise<Seeds> {
  const recorded = ((await readRunConfig(out)).seeds as { hash?: string } | undefined)?.hash;
  if (!exists(join(out, "seeds.json"))) return await drawSeeds(cfg, out, log, recorded, onProgress);
  const seeds = await loadSeeds(out);
  if (seeds.n !== cfg.classes || (recorded !== undefined && recorded !== seedsHash(seeds))) {
    throw new UserError(
      `${out}: its seeds (seeds.bin, seeds.json) are not the ones the run was made with (${
        seeds.n !== cfg.classes ? `${seeds.n} seeds for N = ${cfg.classes}` : "another hash"
      }); restore them, or start a new run with another --out`,
    );
  }
  return seeds;
}

/**
 * Draws the run's N seed patches from the data's pretraining split and saves them in the run folder; with `expected`
 * (a continued run's recorded hash), only if they are the run's own.
 */
async function drawSeeds(
  cfg: TrainConfig,
  out: string,
  log: (m: string) => void,
  expected?: string,
  onProgress?: (phase: string, done: number, total: number) => void,
): Promise<Seeds> {
  const ds = await openDataset(cfg.data, { log });
  try {
    const split = pretrainingSplit(ds);
    log(
      `drawing N = ${cfg.classes} seed patches (${cfg.method}) from ${cfg.data} ${split.name} (${split.length} images)`,
    );
    const seeds = await seedPatches(split, {
      n: cfg.classes,
      method: cfg.method,
      seed: cfg.seed,
      flag: "--classes",
      workers: { data: cfg.data, count: seedWorkers() },
      onProgress: onProgress && ((phase, done, total) => onProgress(`seeds: ${phase}`, done, total)),
    });
    if (seeds.skipped?.length) {
      log(
        `${seeds.skipped.length} images could not be read and were skipped (listed in seeds.json), the first: ${
          seeds.skipped[0].reason
        }`,
      );
    }
    if (expected !== undefined && seedsHash(seeds) !== expected) {
      throw new UserError(
        `${out}: the seeds drawn again from ${cfg.data} are not the ones the run was made with (the data changed?); ` +
          `start a new run with another --out`,
      );
    }
    await saveSeeds(out, seeds);
    return seeds;
  } finally {
    ds.close();
  }
}

/** Workers that read the images seeds are drawn from: every core, at most 8. */
export function seedWorkers(): number {
  return Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
}
