/**
 * Evaluating a pretrained run: its features, the linear SVM and a protocol
 * (paper §5.1; PAPER.md "Evaluation"), beside two baselines computed on the same protocol -
 * the same network with random (untrained) weights, and raw pixels - so that
 * a reader sees what the pretext task buys.
 *
 * Writes `results.json` into the run folder, labelled with the scale the run
 * was made at (data, network, N, K, steps, samples).
 *
 * @module
 */
import { join } from "node:path";
import { getSplit, openDataset } from "./data/mod.ts";
import {
  applyScales,
  blockScales,
  cachedFeatures,
  cacheHas,
  extractFeatureSets,
  extractFeaturesParallel,
  featureLayout,
  imagesIdentity,
} from "./features.ts";
import { hashBytes, hashText } from "./util/rng.ts";
import { cacheDir, writeFileAtomic } from "./util/fsutil.ts";
import { ExemplarNet, netSpec } from "./nets.ts";
import { tf } from "./compute/backend.ts";
import { flatWeights } from "./compute/engine.ts";
import {
  checkProtocolFits,
  defaultProtocol,
  type FeatureFn,
  PROTOCOL_INPUT,
  type ProtocolName,
  type ProtocolResult,
  PROTOCOLS,
  runProtocol,
} from "./protocols.ts";
import { UserError } from "./util/errors.ts";
import { loadSeeds, seedMeanColour } from "./seeds.ts";
import { loadTrainedNet, lockRunFolder } from "./run_folder.ts";
import { METHODS } from "./presets.ts";
import type { KnnOptions } from "./knn.ts";
import { type Features, SVMWorkers } from "./svm.ts";
import type { Dataset } from "./data/dataset.ts";

/** The scale a result was made at, shown beside every measured number. */
export interface Scale {
  /** Data spec the network was pretrained on. */
  data: string;
  /** The network. */
  net: string;
  /** N: surrogate classes. */
  N: number;
  /** K: copies per class. */
  K: number | "inf";
  /** Pretraining steps. */
  steps: number;
  /** Pretraining samples (steps x batch). */
  samples: number;
  /** Method preset. */
  method: string;
}

/**
 * A run's `results.json` from an evaluation on other data or with another protocol is kept beside it, as
 * `results-<protocol>-<hash of its data>.json`, before the new results take its name.
 */
async function keepOtherEvaluation(runDir: string, next: EvaluationResults, log: (msg: string) => void) {
  const path = join(runDir, "results.json");
  let old: { protocol?: unknown; evalData?: unknown };
  try {
    old = JSON.parse(await Deno.readTextFile(path));
  } catch {
    return; // none there (or not results: readResults refuses such a file wherever it is read)
  }
  if (old.protocol === next.protocol && old.evalData === next.evalData) return;
  const name = `results-${String(old.protocol)}-${hashText(String(old.evalData)).slice(0, 8)}.json`
    .replace(/[^\w.-]/g, "_");
  await Deno.rename(path, join(runDir, name));
  log(`the results of the evaluation on ${String(old.evalData)} (${String(old.protocol)}) are kept as ${name}`);
}

/** What `results.json` holds. */
export interface EvaluationResults {
  /** The scale the network was pretrained at. */
  scale: Scale;
  /** The evaluation protocol. */
  protocol: ProtocolName;
  /** The data spec evaluated on. */
  evalData: string;
  /** The learned features' result. */
  learned: ProtocolResult;
  /** The same network with random weights (baseline). */
  random?: ProtocolResult;
  /** Raw pixels (baseline). */
  raw?: ProtocolResult;
  /** Seconds the evaluation took. */
  seconds: number;
}

/** Options of {@link evaluateRun}. */
export interface EvaluateOptions {
  /** Data to evaluate on (default: the data the run was pretrained on). */
  data?: string;
  /** Protocol name (default: the one that fits the data). */
  protocol?: string;
  /** Also compute the random-weights and raw-pixel baselines (default true). */
  baselines?: boolean;
  /** Fixed C (skips the choice by validation). */
  C?: number;
  /** Runs of the protocol (default: its own, 10). */
  runs?: number;
  /** Weighted kNN beside the SVM (default k 20, temperature 0.07); false skips it. */
  knn?: KnnOptions | false;
  /** Messages (default: none). */
  log?: (m: string) => void;
  /** Progress of feature extraction (images) and of the SVMs (C values and runs): (what, done, total). */
  onProgress?: (what: string, done: number, total: number) => void;
}

/**
 * Reads a run's `results.json`, checked by {@link checkResults} before anything is made from it. A file that is
 * damaged or edited into something else is a {@link UserError} naming the field.
 */
export async function readResults(path: string): Promise<EvaluationResults> {
  let r: unknown;
  try {
    r = JSON.parse(await Deno.readTextFile(path));
  } catch {
    throw new UserError(`${path}: empty or damaged (run deno task evaluate again to write it)`);
  }
  return checkResults(r, path);
}

/**
 * Checks what `where` (a file, or a field of one) holds as an evaluation: the protocol one of {@link PROTOCOLS}, the
 * scale's network and data and the evaluated data as text, and every figure a finite number (accuracies in
 * [0, 100]); a {@link UserError} naming the first field that is not.
 */
export function checkResults(value: unknown, where: string): EvaluationResults {
  const bad = (field: string, v: unknown, expected: string) => {
    const shown = typeof v === "number" ? String(v) : JSON.stringify(v) ?? "missing";
    return new UserError(
      `${where}: ${field} is ${shown}, expected ${expected} (not the results of deno task evaluate; run it again)`,
    );
  };
  const text = (field: string, v: unknown) => {
    if (typeof v !== "string") throw bad(field, v, "text");
  };
  const num = (field: string, v: unknown, lo: number, hi: number) => {
    if (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi) {
      throw bad(field, v, `a number in [${lo}, ${hi}]`);
    }
  };
  const result = (name: string, p: unknown) => {
    if (typeof p !== "object" || p === null) throw bad(name, p, "a protocol's result");
    const q = p as ProtocolResult;
    text(`${name}.metric`, q.metric);
    num(`${name}.mean`, q.mean, 0, 100);
    num(`${name}.std`, q.std, 0, 100);
    num(`${name}.C`, q.C, 0, Number.MAX_VALUE);
    if (!Array.isArray(q.runs)) throw bad(`${name}.runs`, q.runs, "a list of each run's figure");
    q.runs.forEach((v, i) => num(`${name}.runs[${i}]`, v, 0, 100));
    if (q.knn !== undefined) {
      num(`${name}.knn.k`, q.knn?.k, 1, Number.MAX_SAFE_INTEGER);
      num(`${name}.knn.mean`, q.knn?.mean, 0, 100);
      num(`${name}.knn.std`, q.knn?.std, 0, 100);
    }
  };
  const r = value as EvaluationResults;
  if (typeof r !== "object" || r === null || Array.isArray(r)) throw bad("the evaluation", r, "an object");
  if (!(PROTOCOLS as readonly unknown[]).includes(r.protocol)) throw bad("protocol", r.protocol, PROTOCOLS.join(", "));
  if (typeof r.scale !== "object" || r.scale === null) throw bad("scale", r.scale, "the pretraining's scale");
  text("scale.net", r.scale.net);
  text("scale.data", r.scale.data);
  text("evalData", r.evalData);
  result("learned", r.learned);
  if (r.random !== undefined) result("random", r.random);
  if (r.raw !== undefined) result("raw", r.raw);
  return r;
}

/** The version of the feature computation: a change to what features hold changes it, and every cached set with it. */
const FEATURES_VERSION = 3;

/** The side of the raw-pixel baseline's images (this project's baseline, not the paper's: 32 x 32 thumbnails). */
const RAW_SIDE = 32;

/**
 * Where an evaluation caches one kind of features: the folder, and `what` they are (the network's weights, or raw
 * pixels, and the extraction settings).
 */
interface FeatureSource {
  dir: string;
  what: Record<string, unknown>;
}

/**
 * The cache entry of a source's features of the images `idx` of a split: its key is made of everything the features
 * depend on, `what` and the identity of the images read (lib/features.ts `imagesIdentity`).
 */
function cacheEntry(src: FeatureSource, ds: Dataset, split: string, idx: number[]) {
  const images = imagesIdentity(ds.format, ds.splits[split], idx);
  const about = { ...src.what, version: FEATURES_VERSION, split, images: idx.length };
  return { dir: src.dir, key: `${src.what.kind}-${split}-${hashText(JSON.stringify(about), images)}`, about };
}

/**
 * A feature function with the release's per-layer scaling fitted on the training split, cached (see
 * {@link cacheEntry}).
 */
function scaledFeatures(
  src: FeatureSource,
  ds: Dataset,
  compute: (split: string, idx: number[]) => Promise<Features>,
  blocks: { offset: number; size: number }[] | null,
): FeatureFn {
  let scales: number[] | null = null;
  return async (split, idx) => {
    const e = cacheEntry(src, ds, split, idx);
    const f = await cachedFeatures(e.dir, e.key, () => compute(split, idx), e.about);
    const copy = { ...f, x: f.x.slice() };
    if (blocks) {
      if (split !== "test" || !scales) scales = blockScales(copy, blocks);
      applyScales(copy, blocks, scales);
    }
    return copy;
  };
}

/** Evaluates a run folder (see the module documentation). */
export async function evaluateRun(runDir: string, opts: EvaluateOptions = {}): Promise<EvaluationResults> {
  // (No live pretraining may replace the checkpoint, and no other evaluation write results.json, meanwhile.)
  const lock = await lockRunFolder(runDir);
  try {
    return await evaluateLocked(runDir, opts);
  } finally {
    lock.release();
  }
}

async function evaluateLocked(runDir: string, opts: EvaluateOptions): Promise<EvaluationResults> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const { net, config: cfg, step } = await loadTrainedNet(runDir);
  let ds: Dataset | null = null;
  // The SVMs of all three protocols train in the run's number of workers (at most one per core; one per core where
  // its config names none).
  let svm: SVMWorkers | null = null;
  let random: ExemplarNet | null = null;
  try {
    const evalData = opts.data ?? cfg.data;
    ds = await openDataset(evalData, { log });
    if (opts.protocol !== undefined && !(PROTOCOLS as readonly string[]).includes(opts.protocol)) {
      throw new UserError(`--protocol ${opts.protocol}: unknown protocol (expected one of: ${PROTOCOLS.join(", ")})`);
    }
    const protocol = (opts.protocol as ProtocolName | undefined) ?? defaultProtocol(ds);
    checkProtocolFits(protocol, ds);
    const { size, pooling } = PROTOCOL_INPUT[protocol];
    const levelWeights = METHODS[cfg.method].eval.levelWeights;
    // Mean colour of the pretraining inputs (the seeds' mean), subtracted as in pretraining.
    const mean = seedMeanColour(await loadSeeds(runDir));
    // The learned features are the run's; the baselines', keyed by everything they depend on (lib/features.ts
    // imagesIdentity, the random network's weights, the mean colour), are shared by every run and evaluation that
    // asks for the same ones.
    const cache = join(runDir, "features"), shared = join(cacheDir(), "features");
    const settings = { size, pooling, mean, levelWeights: levelWeights ?? null };

    // Features run in two workers on the wasm backend (each its own thread), else here. One pass over the images
    // reads every set asked for: each image is decoded and resized once.
    const workers = tf.getBackend() === "wasm" ? Math.max(1, Math.min(2, navigator.hardwareConcurrency)) : 1;
    const spec = netSpec(cfg);
    const extract = async (
      nets: { net: ExemplarNet; weights: Float32Array | null }[],
      rawSide: number | undefined,
      split: string,
      idx: number[],
      which: string,
    ): Promise<Features[]> => {
      const onProgress = (d: number) => opts.onProgress?.(`features (${which}, ${split})`, d, idx.length);
      if (workers > 1) {
        const job = { data: evalData, split, size, pooling, mean, levelWeights, rawSide };
        return await extractFeaturesParallel(
          { ...job, nets: nets.map((n) => ({ spec, weights: n.weights })) },
          idx,
          workers,
          onProgress,
        );
      }
      const run = { size, pooling, mean, levelWeights, rawSide, onProgress };
      return await extractFeatureSets(nets.map((n) => n.net), getSplit(ds!, split), idx, run);
    };
    const baselines = opts.baselines ?? true;
    // The baseline network: the run's network with the seeded initialisation it began from.
    random = baselines ? new ExemplarNet(cfg.net, cfg.classes, { method: cfg.method, seed: cfg.seed }) : null;
    const learnedWeights = await flatWeights(net);
    const about = async (kind: string, n: ExemplarNet) => ({
      kind,
      net: cfg.net,
      weights: hashBytes(await flatWeights(n)),
      ...settings,
    });
    const sources = {
      learned: { dir: cache, what: await about("learned", net) },
      random: random ? { dir: shared, what: await about("random", random) } : null,
      raw: { dir: shared, what: { kind: "raw", side: RAW_SIDE, mean } },
    };
    const { blocks } = featureLayout(net, size, pooling);
    // The learned features' pass also reads the baselines' where they are not cached yet, and caches them.
    const learnedFeatures = scaledFeatures(sources.learned, ds, async (split, idx) => {
      const along = (src: FeatureSource | null) => {
        const e = src && baselines ? cacheEntry(src, ds!, split, idx) : null;
        return e !== null && !cacheHas(e.dir, e.key);
      };
      const withRandom = along(sources.random), withRaw = along(sources.raw);
      const nets = [{ net, weights: learnedWeights }, ...(withRandom ? [{ net: random!, weights: null }] : [])];
      const which = ["learned", ...(withRandom ? ["random weights"] : []), ...(withRaw ? ["raw pixels"] : [])];
      const sets = await extract(nets, withRaw ? RAW_SIDE : undefined, split, idx, which.join(" + "));
      const companions = [...(withRandom ? [sources.random!] : []), ...(withRaw ? [sources.raw] : [])];
      for (const [k, src] of companions.entries()) {
        const e = cacheEntry(src, ds!, split, idx);
        await cachedFeatures(e.dir, e.key, () => Promise.resolve(sets[k + 1]), e.about);
      }
      return sets[0];
    }, blocks);
    const w = cfg.workers;
    svm = new SVMWorkers(Number.isInteger(w) && w >= 1 ? Math.min(w, navigator.hardwareConcurrency) : undefined);
    // Every feature set is evaluated alike: the same protocol, C (or its validation), runs, kNN and SVM workers; only
    // the learned features' protocol logs its steps.
    const evaluateWith = (which: string, features: FeatureFn) =>
      runProtocol(protocol, ds!, features, {
        C: opts.C,
        runs: opts.runs,
        method: cfg.method,
        knn: opts.knn,
        log: which === "learned" ? log : () => {},
        workers: svm!,
        onProgress: (what, done, total) => opts.onProgress?.(`SVM ${what} (${which})`, done, total),
      });
    log(
      `evaluating ${runDir} (step ${step}) on ${evalData} with the ${protocol} protocol (${size}x${size}, ${pooling} pooling)`,
    );
    const learned = await evaluateWith("learned", learnedFeatures);
    log(`learned features: ${learned.mean.toFixed(2)} +- ${learned.std.toFixed(2)} %`);
    const out: EvaluationResults = {
      scale: {
        data: cfg.data,
        net: cfg.net,
        N: cfg.classes,
        K: cfg.perClass,
        steps: step,
        samples: step * cfg.batch,
        method: cfg.method,
      },
      protocol,
      evalData,
      learned,
      seconds: 0,
    };
    if (random) {
      const randomFeatures = scaledFeatures(sources.random!, ds, async (split, idx) => {
        return (await extract([{ net: random!, weights: null }], undefined, split, idx, "random weights"))[0];
      }, blocks);
      out.random = await evaluateWith("random", randomFeatures);
      log(`random weights:   ${out.random.mean.toFixed(2)} +- ${out.random.std.toFixed(2)} %`);
      const rawFeatures = scaledFeatures(sources.raw, ds, async (split, idx) => {
        return (await extract([], RAW_SIDE, split, idx, "raw pixels"))[0];
      }, null);
      out.raw = await evaluateWith("raw", rawFeatures);
      log(`raw pixels:       ${out.raw.mean.toFixed(2)} +- ${out.raw.std.toFixed(2)} %`);
    }
    out.seconds = (performance.now() - t0) / 1000;
    await keepOtherEvaluation(runDir, out, log);
    await writeFileAtomic(join(runDir, "results.json"), JSON.stringify(out, null, 2) + "\n");
    return out;
  } finally {
    svm?.close();
    ds?.close();
    net.dispose();
    random?.dispose();
  }
}
