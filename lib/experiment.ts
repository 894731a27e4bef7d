/**
 * The paper's own experiments (arXiv 1406.6909 v2, §5; PAPER.md "The paper's experiments"): how the features change
 * with the number of surrogate classes N, with the copies per class K, with the transformations used, and with the
 * network, each as a sweep of pretraining runs evaluated alike.
 *
 * The paper varies N from 50 to 32000 and K from 1 to 300, removes transformations from the surrogate data, and
 * compares its three networks (PAPER.md says what it reports for each). A sweep ({@link runExperiment}) is one
 * folder with one run folder per point (`SWEEP/N=400/`, `SWEEP/K=100/`, `SWEEP/transforms=without-rotation/`,
 * `SWEEP/net=64c5-64c5-128f/`):
 *
 * - every point is pretrained with the same settings but the one varied: the same time budget (`--minutes`, so that
 *   each point is a run of minutes; lib/budget.ts) or the same steps, the same run seed (so the same seed patches
 *   wherever N is the same), the same N where N is not varied (`--classes`, else the run scale's: a budget does not
 *   choose N in a sweep), the same K (`--per-class`, else unlimited under a budget);
 * - every point is evaluated with the same protocol and runs (lib/evaluate.ts `evaluateRun`): the learned features
 *   beside the same network with random weights and raw pixels, each with the linear SVM and the weighted kNN;
 * - `sweep.json` holds every point's settings and results, `sweep.md` the table, `sweep.html` the chart (one line per
 *   figure, error bars of one standard deviation over the protocol's runs, a log axis for N and K; offline, with
 *   `plotly.min.js` beside it) and the table; all three are written again after every point;
 * - the same command continues an interrupted sweep: a finished point is kept, a half-trained one continues from its
 *   checkpoint (lib/train.ts), an evaluated one is not evaluated again. A sweep folder is refused when it was made
 *   with other settings (more values may be added to it).
 *
 * The transformations sweep has the paper's ablation as its points: all six, each one left out (`without-X`), each
 * alone (`only-X`).
 *
 * @module
 */
import { join } from "node:path";
import { TRANSFORMS } from "./augment.ts";
import { planBudget } from "./budget.ts";
import { selectBackend, tf } from "./compute/backend.ts";
import { checkTrainingFits, LIMITS, resolveTrainConfig, type TrainConfig, transformsLabel } from "./config.ts";
import { openDataset } from "./data/mod.ts";
import { checkResults, type EvaluateOptions, evaluateRun, type EvaluationResults, readResults } from "./evaluate.ts";
import { convolutionalMaps } from "./features.ts";
import { ExemplarNet, PAPER_NETS } from "./nets.ts";
import { SCALE_NAMES, type ScaleName } from "./presets.ts";
import { checkProtocolFits, defaultProtocol, PROTOCOL_INPUT, type ProtocolName, PROTOCOLS } from "./protocols.ts";
import { checkContinues, type MetricsRow, readMetrics, readRunConfig, RUN_FILES } from "./run_folder.ts";
import { pretrain } from "./train.ts";
import { UserError } from "./util/errors.ts";
import { exists, writeFileAtomic } from "./util/fsutil.ts";
import { escapeHtml, scriptJson } from "./util/html.ts";
import { lockFolder } from "./util/lock.ts";
import { outputFolder } from "./util/output_folder.ts";
import type { PlotlyFigure } from "./util/viz.ts";

/** What a sweep varies: N, K, the transformations or the network. */
export const VARIES = ["N", "K", "transforms", "net"] as const;
/** One of {@link VARIES}. */
export type Vary = typeof VARIES[number];

/** The training flag each sweep sets at its points. */
const VARIED_FLAG: Record<Vary, string> = { N: "classes", K: "per-class", transforms: "transforms", net: "net" };

/**
 * The points a sweep runs when `--values` names none: N from the paper's range (50 to 32000) in steps of four, that
 * a laptop's budget can still train; K from 1 to the paper's 300; the ablation of the transformations; the paper's
 * three networks.
 */
export const DEFAULT_VALUES: Record<Vary, readonly string[]> = {
  N: ["100", "400", "1600", "6400"],
  K: ["1", "3", "10", "30", "100", "300"],
  transforms: ["all", ...TRANSFORMS.map((t) => `without-${t}`), ...TRANSFORMS.map((t) => `only-${t}`)],
  net: Object.values(PAPER_NETS),
};

/** One point of a sweep: its name (also its folder), where it stands on the x axis, and the flag that makes it. */
export interface SweepPoint {
  /** Name and folder (`N=400`, `transforms=without-rotation`). */
  name: string;
  /** The value on the chart's x axis: a number for N and K, the value's name otherwise. */
  x: number | string;
  /** The training flag that makes the point, as a flag's string (`{ classes: "400" }`). */
  flags: Record<string, string>;
}

/** The transformations of a point of the transformations sweep: `all`, `without-X`, `only-X`. */
function transformsOf(value: string): string | null {
  if (value === "all") return "all";
  const m = /^(without|only)-(\w+)$/.exec(value);
  if (!m || !(TRANSFORMS as readonly string[]).includes(m[2])) return null;
  return m[1] === "only" ? m[2] : TRANSFORMS.filter((t) => t !== m[2]).join(",");
}

/**
 * The points of a sweep from `--values` (comma-separated; default {@link DEFAULT_VALUES}), in the order given. A bad
 * value, a repeated one, or none at all is one line naming `--values`.
 */
export function sweepPoints(vary: string, values?: string): SweepPoint[] {
  if (!(VARIES as readonly string[]).includes(vary)) {
    throw new UserError(`--vary ${vary}: expected one of ${VARIES.join(", ")}`);
  }
  const v = vary as Vary;
  const list = values === undefined ? [...DEFAULT_VALUES[v]] : values.split(",").map((s) => s.trim());
  if (list.length === 0 || list.some((s) => s === "")) {
    throw new UserError(`--values ${values}: expected values separated by commas`);
  }
  const points = list.map((value): SweepPoint => {
    if (v === "N" || v === "K") {
      const n = Number(value), [min, max] = v === "N" ? [2, LIMITS.classes] : [1, LIMITS.perClass];
      if (!/^\d+$/.test(value) || !(n >= min && n <= max)) {
        throw new UserError(
          `--values ${values}: ${value} is not ${v === "N" ? "an N" : "a K"} (integers in [${min}, ${max}]${
            v === "K" ? "; unlimited K is a time budget's, not a point on a log axis" : ""
          })`,
        );
      }
      return { name: `${v}=${n}`, x: n, flags: { [VARIED_FLAG[v]]: String(n) } };
    }
    if (v === "transforms") {
      const t = transformsOf(value);
      if (t === null) {
        throw new UserError(
          `--values ${values}: ${value} is not a set of transformations (expected all, without-NAME or only-NAME, ` +
            `NAME one of ${TRANSFORMS.join(", ")})`,
        );
      }
      return { name: `transforms=${value}`, x: value, flags: { transforms: t } };
    }
    if (!/^[\w-]+$/.test(value)) throw new UserError(`--values ${values}: ${value} is not a network name`);
    return { name: `net=${value}`, x: value, flags: { net: value } };
  });
  const seen = new Set<string>();
  for (const p of points) {
    if (seen.has(p.name)) throw new UserError(`--values ${values}: ${p.name} is given twice`);
    seen.add(p.name);
  }
  return points;
}

/** How a sweep is evaluated: the same at every point. */
export interface SweepEvaluation {
  /** Labelled data to evaluate on (default: the pretraining data). */
  data?: string;
  /** The protocol (default: the one that fits the data). */
  protocol?: string;
  /** The protocol's runs (default: its own). */
  runs?: number;
  /** A fixed C for the SVM. */
  C?: number;
  /** The weighted kNN beside the SVM; false skips it. */
  knn?: EvaluateOptions["knn"];
}

/** What {@link runExperiment} runs. */
export interface ExperimentOptions {
  /** The sweep folder. */
  out: string;
  /** What the sweep varies. */
  vary: string;
  /** The values, comma-separated (default {@link DEFAULT_VALUES}). */
  values?: string;
  /** The run scale under the flags (default: `laptop` on real data, else `default`). */
  scale?: string;
  /** Pretraining flags shared by every point, as the command line gives them (lib/train_flags.ts). */
  flags?: Record<string, string | undefined>;
  /** The evaluation of every point. */
  evaluation?: SweepEvaluation;
  /** The backend (default: the first that works). */
  backend?: string;
  /** Messages for the user. */
  log?: (m: string) => void;
  /** Each pretraining row of the point being trained. */
  onRow?: (point: string, row: MetricsRow, steps: number) => void;
  /** Progress of long work (seeds, features). */
  onProgress?: (what: string, done: number, total: number) => void;
  /** Stop pretraining (with a checkpoint) when this returns true. */
  shouldStop?: () => boolean;
}

/** One point as sweep.json keeps it. */
export interface SweepPointRecord {
  /** Name and folder. */
  name: string;
  /** The x value. */
  x: number | string;
  /** `done`: trained and evaluated; `failed`: stopped with `error`; `pending`: not (yet) finished. */
  status: "done" | "failed" | "pending";
  /** Its pretraining settings, as its config.json has them. */
  train?:
    & Pick<
      TrainConfig,
      "data" | "net" | "classes" | "perClass" | "transforms" | "steps" | "batch" | "method" | "seed" | "schedule" | "lr"
    >
    & { samples: number; minutes: number | null };
  /** The surrogate task at the end of pretraining: the last validation row. */
  surrogate?: { step: number; val_accuracy: number; val_loss: number } | null;
  /** The evaluation (lib/evaluate.ts results.json). */
  results?: EvaluationResults;
  /** Why the point failed. */
  error?: string;
}

/** What sweep.json holds. */
export interface SweepFile {
  /** What is varied. */
  vary: Vary;
  /** The settings every point shares (the flags as given, the scale, the evaluation): the sweep's identity. */
  settings: Record<string, string | number | boolean | null>;
  /** The protocol every point is evaluated with. */
  protocol: ProtocolName;
  /** Data evaluated on. */
  evalData: string;
  /** Every point run in this folder, in the order of the x axis. */
  points: SweepPointRecord[];
  /** When the file was last written. */
  updated: string;
}

/** The files of a sweep folder. */
export const SWEEP_FILES = { json: "sweep.json", md: "sweep.md", html: "sweep.html" } as const;

/** Flags that only say how a sweep runs, not what it measures. */
const NOT_IDENTITY = new Set(["backend", "workers"]);

/** The plan of a sweep, made and checked before any work. */
interface SweepPlan {
  vary: Vary;
  scale: ScaleName;
  points: (SweepPoint & { cfg: TrainConfig; minutes?: number; dir: string })[];
  settings: SweepFile["settings"];
  protocol: ProtocolName;
  evalData: string;
  previous: SweepFile | null;
}

/**
 * Reads a sweep folder's sweep.json, or null where there is none. Its points are shown again in the chart and the
 * table, so each is checked first: a file damaged or edited into other types is a {@link UserError} naming the field.
 */
export async function readSweep(dir: string): Promise<SweepFile | null> {
  const path = join(dir, SWEEP_FILES.json);
  if (!exists(path)) return null;
  const refused = (why: string) =>
    new UserError(`${path}: not a sweep's sweep.json (${why}); move it away, or give another --out`);
  let f: SweepFile;
  try {
    f = JSON.parse(await Deno.readTextFile(path)) as SweepFile;
    if (!(VARIES as readonly string[]).includes(f?.vary) || !Array.isArray(f.points)) throw new Error();
    if (typeof f.settings !== "object" || f.settings === null) throw new Error();
  } catch {
    throw refused("damaged?");
  }
  f.points.forEach((p, i) => {
    const at = `points[${i}]`;
    const finite = (v: unknown) => typeof v === "number" && Number.isFinite(v);
    if (typeof p?.name !== "string" || !(typeof p.x === "string" || finite(p.x))) throw refused(`${at}: its name`);
    if (!["done", "failed", "pending"].includes(p.status)) throw refused(`${at}.status`);
    if (p.error !== undefined && typeof p.error !== "string") throw refused(`${at}.error`);
    const t = p.train;
    if (
      t !== undefined &&
      !(typeof t?.net === "string" && Array.isArray(t.transforms) && t.transforms.every((x) => typeof x === "string") &&
        finite(t.classes) && (t.perClass === "inf" || finite(t.perClass)) && finite(t.steps) && finite(t.samples))
    ) throw refused(`${at}.train`);
    const v = p.surrogate;
    if (v != null && !(finite(v.step) && finite(v.val_accuracy))) throw refused(`${at}.surrogate`);
    if (p.results !== undefined) {
      try {
        checkResults(p.results, `${at}.results`);
      } catch (e) {
        throw refused((e as Error).message.replace(/ \(not the results of .*$/, ""));
      }
    }
  });
  return f;
}

/** Plans a sweep: every point's settings checked, the folder's earlier sweep matched, the protocol fitted. */
async function planSweep(o: ExperimentOptions): Promise<SweepPlan> {
  const points = sweepPoints(o.vary, o.values);
  const vary = o.vary as Vary;
  const flags = Object.fromEntries(Object.entries(o.flags ?? {}).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
  const varied = VARIED_FLAG[vary];
  if (flags[varied] !== undefined) {
    throw new UserError(`--${varied} ${flags[varied]}: the sweep varies ${vary}; give its values with --values`);
  }
  const real = flags.data !== undefined && !flags.data.startsWith("synthetic");
  const scale = (o.scale ?? (real ? "laptop" : "default")) as ScaleName;
  if (!(SCALE_NAMES as readonly string[]).includes(scale)) {
    throw new UserError(`--scale ${scale}: unknown run scale (expected one of: ${SCALE_NAMES.join(", ")})`);
  }
  const planned = points.map((p) => {
    const { cfg, minutes } = resolveTrainConfig({ ...flags, ...p.flags }, { scale });
    // Under a budget K is unlimited unless given (lib/budget.ts); N is always the sweep's.
    if (minutes !== undefined && vary !== "K" && flags["per-class"] === undefined) cfg.perClass = "inf";
    return { ...p, cfg, minutes, dir: join(o.out, p.name) };
  });
  const ev = o.evaluation ?? {};
  const evalData = ev.data ?? planned[0].cfg.data;
  if (ev.protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(ev.protocol)) {
    throw new UserError(`--protocol ${ev.protocol}: unknown protocol (expected one of: ${PROTOCOLS.join(", ")})`);
  }
  const ds = await openDataset(evalData, { log: o.log });
  let protocol: ProtocolName;
  try {
    protocol = (ev.protocol as ProtocolName | undefined) ?? defaultProtocol(ds);
    checkProtocolFits(protocol, ds);
  } finally {
    ds.close();
  }
  const settings: SweepFile["settings"] = { vary, scale };
  for (const [k, v] of Object.entries(flags).sort()) if (!NOT_IDENTITY.has(k)) settings[`--${k}`] = v;
  Object.assign(settings, {
    "eval data": evalData,
    protocol,
    runs: ev.runs ?? null,
    C: ev.C ?? null,
    knn: ev.knn === false ? "off" : ev.knn ? `k ${ev.knn.k}, T ${ev.knn.temperature}` : "default",
  });
  const previous = await readSweep(o.out);
  if (previous) {
    const all = new Set([...Object.keys(previous.settings), ...Object.keys(settings)]);
    for (const k of all) {
      if (JSON.stringify(previous.settings[k] ?? null) !== JSON.stringify(settings[k] ?? null)) {
        throw new UserError(
          `${o.out}: that sweep was made with ${k} ${JSON.stringify(previous.settings[k] ?? null)}, not ${
            JSON.stringify(settings[k] ?? null)
          }; the folder is left as it is (another --out starts a new sweep)`,
        );
      }
    }
  }
  return { vary, scale, points: planned, settings, protocol, evalData, previous };
}

/** Whether a point's folder holds an evaluation of its finished run, with the sweep's protocol and data. */
async function evaluated(dir: string, protocol: ProtocolName, evalData: string): Promise<EvaluationResults | null> {
  const path = join(dir, "results.json");
  if (!exists(path) || !exists(join(dir, RUN_FILES.config))) return null;
  try {
    const r = await readResults(path);
    const train = (await readRunConfig(dir)).train;
    return r.protocol === protocol && r.evalData === evalData && r.scale.steps === train.steps ? r : null;
  } catch {
    return null;
  }
}

/**
 * Seconds to extract one image's features at the protocol's size with a network: a measured pass of a few images
 * (random weights; the learned network costs the same), shared out over the workers the evaluation uses.
 */
async function secondsPerImage(net: string, method: TrainConfig["method"], size: number): Promise<number> {
  const n = new ExemplarNet(net, 2, { method });
  try {
    const pass = async () => {
      const maps = tf.tidy(() => convolutionalMaps(n, tf.zeros([2, size, size, 3])));
      await Promise.all(maps.map((m) => m.data()));
      tf.dispose(maps);
    };
    await pass();
    const t0 = performance.now();
    await pass();
    const workers = tf.getBackend() === "wasm" ? Math.max(1, Math.min(2, navigator.hardwareConcurrency)) : 1;
    return (performance.now() - t0) / 1000 / 2 / workers;
  } finally {
    n.dispose();
  }
}

/** Seconds as `1 h 05 min`, `7 min 20 s` or `12 s`. */
export function duration(s: number): string {
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${String(Math.round((s % 3600) / 60)).padStart(2, "0")} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`;
  return `${Math.max(1, Math.round(s))} s`;
}

/**
 * What a sweep will run and about how long it takes, before it starts: points to run x (pretraining + features of
 * the learned and random-weights networks), the features timed on this machine; drawing the seeds and the SVMs are
 * not counted.
 */
async function describePlan(plan: SweepPlan, o: ExperimentOptions, done: Set<string>): Promise<string[]> {
  const todo = plan.points.filter((p) => !done.has(p.name));
  const ds = await openDataset(plan.evalData);
  let images = 0;
  try {
    for (const [name, s] of Object.entries(ds.splits)) if (name !== "unlabeled" && s.labels) images += s.length;
  } finally {
    ds.close();
  }
  const { size } = PROTOCOL_INPUT[plan.protocol];
  const perNet = new Map<string, number>();
  for (const p of todo) {
    if (!perNet.has(p.cfg.net)) perNet.set(p.cfg.net, await secondsPerImage(p.cfg.net, p.cfg.method, size));
  }
  const evalSeconds = (p: SweepPlan["points"][number]) => 2 * images * perNet.get(p.cfg.net)!;
  const first = plan.points[0].cfg;
  const lines = [
    `experiment: ${plan.vary} over ${plan.points.map((p) => p.x).join(", ")} in ${o.out} (${plan.points.length} points${
      done.size ? `, ${done.size} already done` : ""
    })`,
    `  each point: ${
      plan.points[0].minutes !== undefined
        ? `${plan.points[0].minutes} minutes of pretraining (a time budget)`
        : `${first.steps} steps of pretraining`
    } of ${plan.vary === "net" ? "its network" : first.net} on ${first.data}, N = ${
      plan.vary === "N" ? "the point's" : first.classes
    }, K = ${plan.vary === "K" ? "the point's" : first.perClass === "inf" ? "unlimited" : first.perClass}, ${
      plan.vary === "transforms" ? "the point's transformations" : transformsLabel(first.transforms)
    }, ${first.method} method, seed ${first.seed}`,
    `  evaluation: the ${plan.protocol} protocol on ${plan.evalData} (${images} labelled images), learned features ` +
    `beside random weights and raw pixels, SVM and kNN`,
  ];
  if (todo.length === 0) return [...lines, "  every point is done: the chart and table are written again"];
  const evalTotal = todo.reduce((a, p) => a + evalSeconds(p), 0);
  const trainTotal = todo.reduce((a, p) => a + (p.minutes ?? NaN) * 60, 0);
  lines.push(
    Number.isFinite(trainTotal)
      ? `  about ${todo.length} x (${todo[0].minutes} min of pretraining + ${
        duration(evalTotal / todo.length)
      } of features) = ${duration(trainTotal + evalTotal)}, plus drawing the seeds and the SVMs`
      : `  about ${duration(evalTotal)} of features for ${todo.length} points, plus pretraining (${first.steps} ` +
        `steps a point; --minutes M makes each point a time budget), drawing the seeds and the SVMs`,
  );
  return lines;
}

/** The last validation row of a run: where the surrogate task stood at its end. */
async function surrogateAtEnd(dir: string): Promise<SweepPointRecord["surrogate"]> {
  const rows = (await readMetrics(dir)).filter((r) => r.val_accuracy !== undefined);
  const last = rows.at(-1);
  return last ? { step: last.step, val_accuracy: last.val_accuracy!, val_loss: last.val_loss! } : null;
}

/** A point's record from its folder. */
async function pointRecord(
  p: SweepPoint & { dir: string },
  status: SweepPointRecord["status"],
  results?: EvaluationResults,
  error?: string,
): Promise<SweepPointRecord> {
  const rec: SweepPointRecord = { name: p.name, x: p.x, status };
  if (exists(join(p.dir, RUN_FILES.config))) {
    const t = (await readRunConfig(p.dir)).train;
    rec.train = {
      data: t.data,
      net: t.net,
      classes: t.classes,
      perClass: t.perClass,
      transforms: t.transforms,
      steps: t.steps,
      batch: t.batch,
      method: t.method,
      seed: t.seed,
      schedule: t.schedule,
      lr: t.lr,
      samples: t.steps * t.batch,
      minutes: t.budget?.minutes ?? null,
    };
    rec.surrogate = await surrogateAtEnd(p.dir);
  }
  if (results) rec.results = results;
  if (error) rec.error = error;
  return rec;
}

/** The points of a sweep file in the order of the x axis: numbers ascending, names in the order they came. */
function ordered(points: SweepPointRecord[]): SweepPointRecord[] {
  return points.map((p, i) => ({ p, i })).sort((a, b) =>
    typeof a.p.x === "number" && typeof b.p.x === "number" ? a.p.x - b.p.x : a.i - b.i
  ).map(({ p }) => p);
}

/** The figures a sweep plots at each point: three feature sets, two classifiers. */
const FIGURES = [
  { key: "learned", what: "learned features" },
  { key: "random", what: "random weights" },
  { key: "raw", what: "raw pixels" },
] as const;

/** The chart of a sweep: one line per feature set and classifier, error bars of one standard deviation. */
export function sweepFigure(sweep: SweepFile): PlotlyFigure {
  const done = ordered(sweep.points).filter((p) => p.results);
  const x = done.map((p) => p.x);
  const colours = { learned: "#1f77b4", random: "#ff7f0e", raw: "#7f7f7f" };
  const data: Record<string, unknown>[] = [];
  for (const f of FIGURES) {
    for (const classifier of ["SVM", "kNN"] as const) {
      const figures = done.map((p) => {
        const r = p.results![f.key];
        return classifier === "SVM" ? r : r?.knn;
      });
      if (figures.every((v) => v === undefined)) continue;
      data.push({
        type: "scatter",
        mode: "lines+markers",
        name: `${f.what}, ${classifier}`,
        x,
        y: figures.map((v) => v?.mean ?? null),
        error_y: { type: "data", array: figures.map((v) => v?.std ?? null), visible: true },
        line: { color: colours[f.key], dash: classifier === "SVM" ? "solid" : "dot" },
      });
    }
  }
  const surrogate = done.map((p) => (p.surrogate ? 100 * (1 - p.surrogate.val_accuracy) : null));
  if (surrogate.some((v) => v !== null)) {
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: "surrogate task: validation error (right axis)",
      x,
      y: surrogate,
      yaxis: "y2",
      line: { color: "#d62728", dash: "dash" },
    });
  }
  const numeric = sweep.vary === "N" || sweep.vary === "K";
  const metric = done[0]?.results?.learned.metric ?? "accuracy";
  return {
    data,
    layout: {
      title: { text: `${AXIS[sweep.vary]}: ${sweep.protocol} protocol on ${sweep.evalData}` },
      xaxis: { title: { text: AXIS[sweep.vary] }, type: numeric ? "log" : "category" },
      yaxis: { title: { text: `${metric} (%)` }, rangemode: "tozero" },
      yaxis2: { title: { text: "surrogate validation error (%)" }, overlaying: "y", side: "right", range: [0, 100] },
      legend: { orientation: "h", y: -0.25 },
      height: 560,
    },
  };
}

/** The x axis of each sweep. */
const AXIS: Record<Vary, string> = {
  N: "number of surrogate classes N",
  K: "samples per surrogate class K",
  transforms: "transformations used",
  net: "network",
};

const pm = (r: { mean: number; std: number } | undefined) => (r ? `${r.mean.toFixed(1)} ± ${r.std.toFixed(1)}` : "-");

/** The table's header and rows, as text (the Markdown and the HTML escape them each their way). */
export function sweepRows(sweep: SweepFile): { head: string[]; rows: string[][] } {
  const head = [
    "point",
    "N",
    "K",
    "transformations",
    "network",
    "steps (samples)",
    ...FIGURES.flatMap((f) => [`${f.what}, SVM`, `${f.what}, kNN`]),
    "surrogate val. acc.",
    "status",
  ];
  const rows = ordered(sweep.points).map((p) => {
    const t = p.train, r = p.results;
    return [
      p.name,
      t ? String(t.classes) : "-",
      t ? String(t.perClass) : "-",
      t ? transformsLabel(t.transforms) : "-",
      t?.net ?? "-",
      t ? `${r?.scale.steps ?? t.steps} (${(r?.scale.samples ?? t.samples)})` : "-",
      ...FIGURES.flatMap((f) => [pm(r?.[f.key]), pm(r?.[f.key]?.knn)]),
      p.surrogate ? `${(100 * p.surrogate.val_accuracy).toFixed(1)} %` : "-",
      p.status === "done" ? "done" : p.status === "failed" ? `failed: ${p.error}` : "not finished",
    ];
  });
  return { head, rows };
}

/** What the sweep was made with, one line each. */
function settingsLines(sweep: SweepFile): string[] {
  return Object.entries(sweep.settings).map(([k, v]) => `${k}: ${v ?? "default"}`);
}

/** The table in Markdown. */
export function sweepMarkdown(sweep: SweepFile): string {
  const { head, rows } = sweepRows(sweep);
  const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const metric = ordered(sweep.points).find((p) => p.results)?.results?.learned.metric ?? "accuracy";
  return [
    `# ${AXIS[sweep.vary]}`,
    "",
    `The ${sweep.protocol} protocol on ${sweep.evalData}: ${metric} in percent, mean ± standard deviation over the ` +
    `protocol's runs. Learned features beside the same network with random weights and raw pixels, each with the ` +
    `linear SVM and the weighted kNN; the surrogate task's validation accuracy at the end of pretraining.`,
    "",
    `| ${head.map(cell).join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
    "",
    "Settings every point shares:",
    "",
    ...settingsLines(sweep).map((l) => `- ${cell(l)}`),
    "",
  ].join("\n");
}

/** The page: chart and table, loading `plotly.min.js` from its own folder; every value escaped for where it stands. */
export function sweepHtml(sweep: SweepFile): string {
  const { head, rows } = sweepRows(sweep);
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const trs = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`).join("\n");
  const settings = settingsLines(sweep).map((l) => `<li>${escapeHtml(l)}</li>`).join("");
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeHtml(AXIS[sweep.vary])}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>
<script src="plotly.min.js"></script></head>
<body><h1>${escapeHtml(AXIS[sweep.vary])}</h1>
<div id="chart" style="width:960px;height:560px"></div>
<table><tr>${th}</tr>
${trs}</table>
<p>Settings every point shares:</p><ul>${settings}</ul>
<script>
const fig = ${scriptJson(sweepFigure(sweep))};
Plotly.newPlot("chart", fig.data, fig.layout).then(() => document.body.setAttribute("data-chart", "drawn"));
</script></body></html>
`;
}

/** Writes sweep.json, sweep.md and sweep.html (with plotly.min.js beside it) into a sweep folder. */
export async function writeSweep(dir: string, sweep: SweepFile): Promise<void> {
  const plotly = join(dir, "plotly.min.js");
  if (!exists(plotly)) {
    await writeFileAtomic(
      plotly,
      await Deno.readFile(new URL("../node_modules/plotly.js-dist-min/plotly.min.js", import.meta.url)),
    );
  }
  await writeFileAtomic(join(dir, SWEEP_FILES.json), JSON.stringify(sweep, null, 1) + "\n");
  await writeFileAtomic(join(dir, SWEEP_FILES.md), sweepMarkdown(sweep));
  await writeFileAtomic(join(dir, SWEEP_FILES.html), sweepHtml(sweep));
}

/** What {@link runExperiment} reports. */
export interface ExperimentResult {
  /** The sweep as sweep.json holds it. */
  sweep: SweepFile;
  /** Whether pretraining was stopped (Ctrl-C, SIGTERM, `shouldStop`): the same call continues the sweep. */
  interrupted: boolean;
}

/**
 * Runs a sweep (see the module documentation): plans and checks every point, says what it will run and how long it
 * takes, then trains and evaluates the points not yet done, writing sweep.json, sweep.md and sweep.html after each.
 * A point that fails with a {@link UserError} (a run that diverged, say) is recorded as failed and the sweep goes on;
 * the call then ends with a {@link UserError} naming the failed points.
 */
export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const log = o.log ?? (() => {});
  const folder = outputFolder(o.out, { task: "experiment", flag: "--out" });
  const backend = await selectBackend(o.backend);
  const plan = await planSweep(o);
  for (const p of plan.points) {
    checkTrainingFits(p.cfg, backend);
    await checkContinues(p.cfg, p.dir);
  }
  const done = new Set<string>();
  for (const p of plan.points) if (await evaluated(p.dir, plan.protocol, plan.evalData)) done.add(p.name);
  for (const line of await describePlan(plan, o, done)) log(line);
  await folder.make();
  const lock = await lockFolder(o.out);
  try {
    return await runPoints(plan, o, log);
  } finally {
    lock.release();
  }
}

async function runPoints(plan: SweepPlan, o: ExperimentOptions, log: (m: string) => void): Promise<ExperimentResult> {
  // Points of earlier commands in this folder stay in the sweep; this command's are run (or found done).
  const records = new Map<string, SweepPointRecord>((plan.previous?.points ?? []).map((p) => [p.name, p]));
  const sweep = (): SweepFile => ({
    vary: plan.vary,
    settings: plan.settings,
    protocol: plan.protocol,
    evalData: plan.evalData,
    points: ordered([...records.values()]),
    updated: new Date().toISOString(),
  });
  for (const p of plan.points) {
    if (!records.has(p.name)) records.set(p.name, { name: p.name, x: p.x, status: "pending" });
  }
  await writeSweep(o.out, sweep());
  const ev = o.evaluation ?? {};
  let interrupted = false;
  for (const [i, p] of plan.points.entries()) {
    const already = await evaluated(p.dir, plan.protocol, plan.evalData);
    if (already) {
      log(`[${i + 1}/${plan.points.length}] ${p.name}: done (${p.dir})`);
      records.set(p.name, await pointRecord(p, "done", already));
      continue;
    }
    log(`[${i + 1}/${plan.points.length}] ${p.name}`);
    const lock = await lockFolder(p.dir);
    try {
      let cfg = p.cfg;
      if (p.minutes !== undefined) {
        // Every point has the sweep's N and K: a budget plans the steps alone.
        cfg = await planBudget(cfg, p.minutes, p.dir, {
          backend: o.backend,
          classesGiven: true,
          perClassGiven: true,
          log: (m) => log(`  ${m}`),
        });
        await checkContinues(cfg, p.dir);
      }
      const trained = await pretrain(cfg, {
        out: p.dir,
        resume: exists(join(p.dir, RUN_FILES.checkpoint)),
        backend: o.backend,
        log: (m) => log(`  ${m.trim()}`),
        onRow: (r) => o.onRow?.(p.name, r, cfg.steps),
        onProgress: o.onProgress,
        shouldStop: o.shouldStop,
      });
      if (trained.interrupted) {
        interrupted = true;
        records.set(p.name, await pointRecord(p, "pending"));
        break;
      }
      const results = await evaluateRun(p.dir, {
        data: plan.evalData,
        protocol: plan.protocol,
        runs: ev.runs,
        C: ev.C,
        knn: ev.knn,
        log: (m) => log(`  ${m}`),
        onProgress: o.onProgress,
      });
      records.set(p.name, await pointRecord(p, "done", results));
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      log(`  ${p.name} failed: ${e.message}`);
      records.set(p.name, await pointRecord(p, "failed", undefined, e.message));
    } finally {
      lock.release();
      await writeSweep(o.out, sweep());
    }
  }
  const result = sweep();
  const failed = plan.points.filter((p) => records.get(p.name)?.status === "failed");
  if (failed.length && !interrupted) {
    throw new UserError(
      `${failed.length} of ${plan.points.length} points failed (${
        failed.map((p) => `${p.name}: ${records.get(p.name)!.error}`).join("; ")
      }); the others are in ${join(o.out, SWEEP_FILES.md)}; the same command tries the failed ones again`,
    );
  }
  return { sweep: result, interrupted };
}
