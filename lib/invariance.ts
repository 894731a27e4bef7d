/**
 * How invariant the learned features are to each transformation (arXiv 1406.6909 v2, §5; PAPER.md "The paper's
 * experiments"): the paper plots the normalized Euclidean distance between the features of image patches and of
 * their transformed copies against the magnitude of the transformation, for its network beside other
 * representations. This module measures the same curve for each of the six transformations, for a trained run's
 * network, the same network with random weights (the evaluation's baseline: the same seed, untrained) and raw pixels.
 *
 * - **Patches.** `patches` image patches with their surroundings (lib/seeds.ts windows, so that a transformation
 *   samples real image content beyond the patch): drawn as seeds are, with another seed, from the data's test split
 *   (images the network never trained on; the pretraining split where there is no test split), or the run's own seed
 *   patches (`from: "seeds"`: the surrogate classes it was trained to tell apart).
 * - **Magnitudes.** Each transformation alone, with the method's parameters (lib/augment.ts `TransformParams`), from
 *   one end of the method's range to the other through the identity: translation (horizontal shift in pixels),
 *   scaling (factor), rotation (degrees), contrast1 (the factor of the projections onto the principal components;
 *   the release's 2^(z s) at z from -2 to 2), contrast2 (the power of saturation and value), color (the hue shift).
 *   The copies are rendered as pretraining renders them (lib/surrogate.ts, with the run's colour statistics).
 * - **Features.** The network applied to the 32x32 patch convolutionally, as the evaluation applies it to images
 *   (lib/features.ts `convolutionalMaps`), the training input's mean patch subtracted; each layer's post-ReLU
 *   response max-pooled over the four quadrants, as the STL-10 protocol pools it. Distances are given for each layer
 *   and for all layers together (each layer's block divided by its 99.99th percentile over the untransformed patches,
 *   as the evaluation scales its blocks). Raw pixels: the patch, mean subtracted.
 * - **The distance.** The paper calls its measure a normalized Euclidean distance; this project does not quote its
 *   formula, and normalises by the untransformed patch's feature norm: ||f(T x) - f(x)|| / ||f(x)||, averaged over the
 *   patches (with its standard deviation). For scale, each curve also records the same ratio between two different
 *   patches, ||f(y) - f(x)|| / ||f(x)|| (`between`): a transformation that moves the features that far has made the
 *   patch unrecognisable to them.
 *
 * @module
 */
import { join } from "node:path";
import { identityParams, type TransformName, type TransformParams, TRANSFORMS } from "./augment.ts";
import { tf } from "./compute/backend.ts";
import { openDataset, pretrainingSplit } from "./data/mod.ts";
import { blockScales, convolutionalMaps, poolingGrids, poolMap } from "./features.ts";
import { ExemplarNet, layerName } from "./nets.ts";
import { METHODS } from "./presets.ts";
import { loadTrainedNet, lockRunFolder } from "./run_folder.ts";
import { loadSeeds, PATCH, seedPatches, type Seeds } from "./seeds.ts";
import { SurrogateData } from "./surrogate.ts";
import { UserError } from "./util/errors.ts";
import { exists, writeFileAtomic } from "./util/fsutil.ts";
import { escapeHtml, scriptJson } from "./util/html.ts";
import { hash32 } from "./util/rng.ts";
import type { PlotlyFigure } from "./util/viz.ts";

/** Options of {@link measureInvariance}. */
export interface InvarianceOptions {
  /** Patches averaged over (default 100). */
  patches?: number;
  /** Magnitudes per transformation, the identity among them (odd, at least 3; default 9). */
  magnitudes?: number;
  /** Where the patches come from: the data's test split (default) or the run's seeds. */
  from?: "data" | "seeds";
  /** The data to draw patches from (default: the run's). */
  data?: string;
  /** Messages. */
  log?: (m: string) => void;
  /** Progress: (what, done, in all). */
  onProgress?: (what: string, done: number, total: number) => void;
}

/** One representation's curve for one transformation. */
export interface InvarianceCurve {
  /** `learned`, `random` (the same network, untrained) or `raw` (pixels). */
  kind: "learned" | "random" | "raw";
  /** `all layers`, a layer (`conv1 64c5`), or `pixels`. */
  layer: string;
  /** The mean normalised distance at each magnitude. */
  mean: number[];
  /** Its standard deviation over the patches. */
  std: number[];
  /** The same ratio between two different patches, for scale. */
  between: number;
}

/** One transformation's magnitudes and curves. */
export interface InvarianceTransform {
  /** The transformation. */
  name: TransformName;
  /** What the magnitude is, for the axis. */
  axis: string;
  /** Whether the magnitudes are factors (a log axis). */
  log: boolean;
  /** The magnitudes, the identity among them. */
  x: number[];
  /** The curves. */
  curves: InvarianceCurve[];
}

/** What invariance.json holds. */
export interface InvarianceResult {
  /** The run folder measured. */
  run: string;
  /** Its network, step and method. */
  net: string;
  /** Pretraining steps of the checkpoint measured. */
  step: number;
  /** Method preset (its transformation ranges). */
  method: string;
  /** The patches: how many, from where. */
  patches: { n: number; from: string };
  /** The measure, in words. */
  measure: string;
  /** One entry per transformation, in lib/augment.ts order. */
  transforms: InvarianceTransform[];
}

/** A transformation's magnitudes, from one end of its range through the identity to the other. */
export interface Magnitudes {
  /** What the magnitude is. */
  axis: string;
  /** Factors (a log axis) or amounts. */
  log: boolean;
  /** The magnitudes. */
  x: number[];
  /** The parameters of each. */
  params: TransformParams[];
}

/** `m` values from `lo` to `hi` through `mid` (half on each side; on a log scale for factors). */
function through(lo: number, mid: number, hi: number, m: number, log: boolean): number[] {
  const f = log ? Math.log : (v: number) => v, g = log ? Math.exp : (v: number) => v;
  const half = (m - 1) / 2, out: number[] = [];
  out.push(lo);
  for (let i = 1; i < half; i++) out.push(g(f(lo) + ((f(mid) - f(lo)) * i) / half));
  out.push(mid);
  for (let i = 1; i < half; i++) out.push(g(f(mid) + ((f(hi) - f(mid)) * i) / half));
  out.push(hi);
  return out;
}

/**
 * The magnitudes of one transformation in a method's ranges (lib/presets.ts `augment`): `m` of them (odd), the
 * identity in the middle, the range's ends at either side.
 */
export function magnitudes(name: TransformName, method: "paper" | "release", m: number): Magnitudes {
  const r = METHODS[method].augment;
  const with_ = (x: number[], set: (p: TransformParams, v: number) => void) =>
    x.map((v) => {
      const p = identityParams();
      set(p, v);
      return p;
    });
  switch (name) {
    case "translation": {
      const x = through(-r.translation * PATCH, 0, r.translation * PATCH, m, false);
      return { axis: "horizontal shift (pixels)", log: false, x, params: with_(x, (p, v) => (p.tx = v)) };
    }
    case "scaling": {
      const x = through(r.scale[0], 1, r.scale[1], m, true);
      return { axis: "scale factor", log: true, x, params: with_(x, (p, v) => (p.scale = v)) };
    }
    case "rotation": {
      const x = through(-r.rotationDeg, 0, r.rotationDeg, m, false);
      return { axis: "rotation (degrees)", log: false, x, params: with_(x, (p, v) => (p.angle = (v * Math.PI) / 180)) };
    }
    case "contrast1": {
      // The paper's factor on every principal component; the release's 2^(z s_k) with one z for the three.
      const s = r.pcaLog2Std;
      const x = s ? through(2 ** (-2 * s[0]), 1, 2 ** (2 * s[0]), m, true) : through(r.pca[0], 1, r.pca[1], m, true);
      return {
        axis: "factor of the first principal component",
        log: true,
        x,
        params: with_(x, (p, v) => {
          const z = Math.log2(v) / (s ? s[0] : 1);
          p.pca = s ? [2 ** (z * s[0]), 2 ** (z * s[1]), 2 ** (z * s[2])] : [v, v, v];
        }),
      };
    }
    case "contrast2": {
      const x = through(r.power[0], 1, r.power[1], m, true);
      return {
        axis: "power of saturation and value",
        log: true,
        x,
        params: with_(x, (p, v) => (p.sPow = p.vPow = v)),
      };
    }
    case "color": {
      const x = through(r.hue[0], 0, r.hue[1], m, false);
      return { axis: "hue shift", log: false, x, params: with_(x, (p, v) => (p.hue = v)) };
    }
  }
}

/** The patches measured: drawn from the data's test split (or pretraining split), or the run's seeds. */
async function patchesFor(
  runDir: string,
  data: string,
  run: { seed: number; method: "paper" | "release" },
  opts: InvarianceOptions,
): Promise<Seeds> {
  const n = opts.patches ?? 100;
  if (opts.from === "seeds") {
    const seeds = await loadSeeds(runDir);
    if (n > seeds.n) throw new UserError(`--patches ${n}: the run has ${seeds.n} seeds`);
    const per = seeds.context.length / seeds.n;
    return { ...seeds, n, context: seeds.context.slice(0, n * per), origins: seeds.origins.slice(0, n) };
  }
  const ds = await openDataset(data, { log: opts.log });
  try {
    const split = "test" in ds.splits ? ds.splits.test : pretrainingSplit(ds);
    opts.log?.(`drawing ${n} patches from ${data} ${split.name} (${split.length} images)`);
    return await seedPatches(split, {
      n,
      method: run.method,
      seed: hash32(run.seed, 7919) % 0x7fffffff,
      flag: "--patches",
      onProgress: opts.onProgress && ((phase, d, t) => opts.onProgress!(`patches: ${phase}`, d, t)),
    });
  } finally {
    ds.close();
  }
}

/** Per-layer pooled features (four quadrants) of a batch of patches, one Float32Array per layer, rows of patches. */
async function layerFeatures(net: ExemplarNet, x: Float32Array, n: number): Promise<Float32Array[]> {
  const maps = tf.tidy(() => convolutionalMaps(net, tf.tensor4d(x, [n, PATCH, PATCH, 3])));
  try {
    const data = await Promise.all(maps.map((m) => m.data() as Promise<Float32Array>));
    const grids = poolingGrids("quadrant");
    return maps.map((m, k) => {
      const [, H, W, C] = m.shape, per = H * W * C, dim = 4 * C;
      const out = new Float32Array(n * dim);
      for (let i = 0; i < n; i++) poolMap(data[k].subarray(i * per, (i + 1) * per), H, W, C, grids, out, i * dim);
      return out;
    });
  } finally {
    tf.dispose(maps);
  }
}

/**
 * The normalised distance ||a_j - b_i|| / ||b_i|| for each of the `n` rows i of `a` and `b`, j = i + `shift` (mod n):
 * a transformed copy against its patch (shift 0), or another patch (shift 1). A row whose ||b_i|| is 0 gives NaN.
 */
export function normalisedDistances(a: Float32Array, b: Float32Array, n: number, shift = 0): number[] {
  const dim = a.length / n, out: number[] = [];
  for (let i = 0; i < n; i++) {
    const j = (i + shift) % n;
    let d = 0, nb = 0;
    for (let k = 0; k < dim; k++) {
      const v = a[j * dim + k] - b[i * dim + k];
      d += v * v;
      nb += b[i * dim + k] ** 2;
    }
    out.push(nb > 0 ? Math.sqrt(d / nb) : NaN);
  }
  return out;
}

/** Mean and standard deviation of the finite values. */
function meanStd(v: number[]): { mean: number; std: number } {
  const f = v.filter(Number.isFinite);
  if (f.length === 0) return { mean: NaN, std: NaN };
  const mean = f.reduce((a, b) => a + b, 0) / f.length;
  const std = f.length > 1 ? Math.sqrt(f.reduce((a, b) => a + (b - mean) ** 2, 0) / (f.length - 1)) : 0;
  return { mean, std };
}

/** The layers' blocks side by side, each divided by its scale. */
function concatenated(layers: Float32Array[], n: number, scales: number[]): Float32Array {
  const dims = layers.map((l) => l.length / n), dim = dims.reduce((a, b) => a + b, 0);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let off = i * dim;
    layers.forEach((l, k) => {
      const inv = 1 / scales[k];
      for (let j = 0; j < dims[k]; j++) out[off + j] = l[i * dims[k] + j] * inv;
      off += dims[k];
    });
  }
  return out;
}

/** Measures a run's invariance to each transformation (see the module documentation). */
export async function measureInvariance(runDir: string, opts: InvarianceOptions = {}): Promise<InvarianceResult> {
  const m = opts.magnitudes ?? 9;
  if (!(Number.isInteger(m) && m >= 3 && m % 2 === 1 && m <= 101)) {
    throw new UserError(`--magnitudes ${m}: expected an odd number in [3, 101] (the identity in the middle)`);
  }
  const n = opts.patches ?? 100;
  if (!(Number.isInteger(n) && n >= 2 && n <= 100_000)) {
    throw new UserError(`--patches ${n}: expected an integer in [2, 100000]`);
  }
  // (No live pretraining may replace the checkpoint while it is read.)
  const lock = await lockRunFolder(runDir);
  let loaded: Awaited<ReturnType<typeof loadTrainedNet>>;
  let runSeeds: Seeds;
  try {
    loaded = await loadTrainedNet(runDir);
    runSeeds = await loadSeeds(runDir);
  } finally {
    lock.release();
  }
  const { net, config: cfg, step } = loaded;
  const random = new ExemplarNet(cfg.net, cfg.classes, { method: cfg.method, seed: cfg.seed });
  try {
    const patches = await patchesFor(runDir, opts.data ?? cfg.data, cfg, { ...opts, patches: n });
    // Copies rendered as pretraining renders them: the run's colour statistics and mean patch.
    const stats = new SurrogateData(runSeeds, { k: 1, method: cfg.method }).stats;
    const data = new SurrogateData(patches, { k: 1, method: cfg.method }, { ...stats, bounds: null });
    const size = PATCH * PATCH * 3;
    const render = (p: TransformParams) => {
      const x = new Float32Array(n * size);
      for (let i = 0; i < n; i++) data.render(i, p, x, i * size);
      for (let i = 0; i < n; i++) for (let j = 0; j < size; j++) x[i * size + j] -= stats.mean[j];
      return x;
    };
    const layerNames = net.walk.filter((l) => l.kind !== "softmax").map((l) => `${l.name} ${layerName(l)}`);
    const nets = [{ kind: "learned" as const, net }, { kind: "random" as const, net: random }];
    const base = render(identityParams());
    const reference = await Promise.all(nets.map(async ({ net }) => {
      const layers = await layerFeatures(net, base, n);
      const scales = layers.map((l) =>
        blockScales({ n, dim: l.length / n, x: l }, [{ offset: 0, size: l.length / n }])[0]
      );
      return { layers, scales, all: concatenated(layers, n, scales) };
    }));
    const transforms: InvarianceTransform[] = [];
    let done = 0;
    for (const name of TRANSFORMS) {
      const mags = magnitudes(name, cfg.method, m);
      const curves: InvarianceCurve[] = [];
      const curve = (kind: InvarianceCurve["kind"], layer: string, between: number) => {
        const c: InvarianceCurve = { kind, layer, mean: [], std: [], between };
        curves.push(c);
        return c;
      };
      const rawCurve = curve("raw", "pixels", meanStd(normalisedDistances(base, base, n, 1)).mean);
      const netCurves = reference.map((ref, k) => ({
        all: curve(nets[k].kind, "all layers", meanStd(normalisedDistances(ref.all, ref.all, n, 1)).mean),
        layers: ref.layers.map((l, j) =>
          curve(nets[k].kind, layerNames[j], meanStd(normalisedDistances(l, l, n, 1)).mean)
        ),
      }));
      for (const p of mags.params) {
        const x = render(p);
        const push = (c: InvarianceCurve, v: number[]) => {
          const s = meanStd(v);
          c.mean.push(s.mean);
          c.std.push(s.std);
        };
        push(rawCurve, normalisedDistances(x, base, n));
        for (const [k, { net }] of nets.entries()) {
          const layers = await layerFeatures(net, x, n), ref = reference[k];
          push(netCurves[k].all, normalisedDistances(concatenated(layers, n, ref.scales), ref.all, n));
          layers.forEach((l, j) => push(netCurves[k].layers[j], normalisedDistances(l, ref.layers[j], n)));
        }
        opts.onProgress?.("invariance", ++done, TRANSFORMS.length * m);
      }
      transforms.push({ name, axis: mags.axis, log: mags.log, x: mags.x, curves });
    }
    return {
      run: runDir,
      net: cfg.net,
      step,
      method: cfg.method,
      patches: {
        n,
        from: opts.from === "seeds" ? `the run's seeds` : `${opts.data ?? cfg.data} (drawn as seeds are, another seed)`,
      },
      measure: "||f(T x) - f(x)|| / ||f(x)||, mean over the patches",
      transforms,
    };
  } finally {
    net.dispose();
    random.dispose();
  }
}

/** The representations' names and colours in the charts. */
const KINDS = {
  learned: { what: "learned network", colour: "#1f77b4" },
  random: { what: "random weights", colour: "#ff7f0e" },
  raw: { what: "raw pixels", colour: "#7f7f7f" },
} as const;

/**
 * Six panels, one per transformation: the normalised distance against the magnitude, for the learned network's and
 * the random network's features (all layers; each layer is in the legend, hidden until clicked) and raw pixels.
 */
export function invarianceFigure(r: InvarianceResult): PlotlyFigure {
  const data: Record<string, unknown>[] = [];
  const layout: Record<string, unknown> = {
    title: { text: `Invariance of ${r.net} (step ${r.step}): ${r.measure}` },
    grid: { rows: 2, columns: 3, pattern: "independent" },
    height: 760,
    legend: { orientation: "h", y: -0.12 },
  };
  r.transforms.forEach((t, i) => {
    const axis = i === 0 ? "" : String(i + 1);
    for (const c of t.curves) {
      const main = c.layer === "all layers" || c.kind === "raw";
      data.push({
        type: "scatter",
        mode: "lines+markers",
        name: `${KINDS[c.kind].what}${c.kind === "raw" ? "" : `, ${c.layer}`}`,
        legendgroup: `${c.kind} ${c.layer}`,
        showlegend: i === 0,
        visible: main ? true : "legendonly",
        x: t.x,
        y: c.mean,
        error_y: main ? { type: "data", array: c.std, visible: true, thickness: 1 } : undefined,
        xaxis: `x${axis}`,
        yaxis: `y${axis}`,
        line: { color: KINDS[c.kind].colour, dash: main ? "solid" : "dot", width: main ? 2 : 1 },
      });
    }
    layout[`xaxis${axis}`] = { title: { text: `${t.name}: ${t.axis}` }, type: t.log ? "log" : "linear" };
    layout[`yaxis${axis}`] = { title: { text: i % 3 === 0 ? "normalised distance" : "" }, rangemode: "tozero" };
  });
  return { data, layout };
}

/** The files of a measurement. */
export const INVARIANCE_FILES = { json: "invariance.json", html: "invariance.html" } as const;

/** The page: the six panels and a table of the distances at the range's ends; every value escaped. */
export function invarianceHtml(r: InvarianceResult): string {
  const rows = r.transforms.flatMap((t) =>
    t.curves.filter((c) => c.layer === "all layers" || c.kind === "raw").map((c) =>
      `<tr><td>${escapeHtml(t.name)}</td><td>${escapeHtml(KINDS[c.kind].what)}</td><td>${
        c.mean[0].toFixed(3)
      }</td><td>${c.mean.at(-1)!.toFixed(3)}</td><td>${c.between.toFixed(3)}</td></tr>`
    )
  ).join("\n");
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Invariance of ${escapeHtml(r.net)}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>
<script src="plotly.min.js"></script></head>
<body><h1>Invariance to each transformation</h1>
<p>Run ${escapeHtml(r.run)}: ${escapeHtml(r.net)} after ${r.step} steps, ${escapeHtml(r.method)} method; ${r.patches.n}
patches from ${escapeHtml(r.patches.from)}. Distance: ${escapeHtml(r.measure)}.</p>
<div id="chart" style="width:1100px;height:760px"></div>
<table><tr><th>transformation</th><th>features</th><th>at the range's lower end</th><th>at its upper end</th>
<th>between two different patches</th></tr>
${rows}</table>
<script>
const fig = ${scriptJson(invarianceFigure(r))};
Plotly.newPlot("chart", fig.data, fig.layout).then(() => document.body.setAttribute("data-chart", "drawn"));
</script></body></html>
`;
}

/** Writes invariance.json and invariance.html (with plotly.min.js beside it) into `dir`, which must exist. */
export async function writeInvariance(dir: string, r: InvarianceResult): Promise<void> {
  const plotly = join(dir, "plotly.min.js");
  if (!exists(plotly)) {
    await writeFileAtomic(
      plotly,
      await Deno.readFile(new URL("../node_modules/plotly.js-dist-min/plotly.min.js", import.meta.url)),
    );
  }
  await writeFileAtomic(join(dir, INVARIANCE_FILES.json), JSON.stringify(r, null, 1) + "\n");
  await writeFileAtomic(join(dir, INVARIANCE_FILES.html), invarianceHtml(r));
}
