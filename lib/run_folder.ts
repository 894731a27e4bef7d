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
import type { TrainConfig } from "./train.ts";
import { UserError } from "./util/errors.ts";
import { exists, fsError, writeFileAtomic } from "./util/fsutil.ts";
import { escapeHtml, scriptJson } from "./util/html.ts";
import type { PlotlyFigure } from "./util/viz.ts";

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

/** Reads a run's config file; a config written before the presets were called methods (`preset`) reads as `method`. */
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
  return file;
}

/** Writes config.json for a new run. */
export async function writeRunConfig(dir: string, file: RunConfigFile): Promise<void> {
  await writeFileAtomic(join(dir, RUN_FILES.config), JSON.stringify(file, null, 2) + "\n");
}

/** Reads metrics.jsonl (rows up to `maxStep`). A last row cut short is dropped; damage elsewhere is an error. */
export async function readMetrics(dir: string, maxStep = Infinity): Promise<MetricsRow[]> {
  const path = join(dir, RUN_FILES.metrics);
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

/** The trained network of a run folder (its checkpoint's weights). */
export async function loadTrainedNet(dir: string): Promise<{ net: ExemplarNet; config: TrainConfig; step: number }> {
  if (!exists(join(dir, RUN_FILES.config)) || !exists(join(dir, RUN_FILES.checkpoint))) {
    throw new UserError(
      `${dir}: no trained checkpoint (expected config.json and checkpoint.ckpt from deno task pretrain)`,
    );
  }
  const config = (await readRunConfig(dir)).train;
  const ck = await loadRunCheckpoint(dir);
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
