/**
 * The evaluation protocols of Table 1 (PAPER.md section 4).
 *
 * - `stl10`: train on each of the 10 predefined folds, test on the test
 *   split; C chosen on fold 1 against the training images outside it.
 * - `cifar10-400`: 10 random subsets of 400 training images per class; test
 *   on the test split; C chosen on subset 1 (a fifth held out).
 * - `cifar10`: all training images; C chosen with a tenth held out.
 * - `caltech101`: background excluded (by the reader); 30 random training
 *   images per class, the rest (at most 50 per class) for testing; mean
 *   per-class accuracy over 10 random splits; C chosen on split 1 (5 of the
 *   30 held out).
 * - `caltech256`: the same with 30 per class (`257.clutter` excluded).
 * Every protocol reports mean +- standard deviation over its runs.
 *
 * A protocol sees the data only through `features(split, indices)`, so the
 * same code evaluates learned features and the baselines (random weights, raw
 * pixels).
 *
 * @module
 */
import type { Dataset } from "./data/dataset.ts";
import { UserError } from "./util/errors.ts";
import { Rng } from "./util/rng.ts";
import { accuracy, C_GRID, chooseC, type Features, meanClassAccuracy, predictSVM, subset, trainSVM } from "./svm.ts";
import type { Pooling } from "./features.ts";

export const PROTOCOLS = ["stl10", "cifar10-400", "cifar10", "caltech101", "caltech256"] as const;
export type ProtocolName = typeof PROTOCOLS[number];

/** How each protocol sees the images. */
export const PROTOCOL_INPUT: Record<ProtocolName, { size: number; pooling: Pooling; metric: string }> = {
  stl10: { size: 96, pooling: "quadrant", metric: "accuracy" },
  "cifar10-400": { size: 64, pooling: "quadrant", metric: "accuracy" },
  cifar10: { size: 64, pooling: "quadrant", metric: "accuracy" },
  caltech101: { size: 150, pooling: "pyramid", metric: "mean per-class accuracy" },
  caltech256: { size: 256, pooling: "pyramid", metric: "mean per-class accuracy" },
};

/** The Table 1 column of each protocol. */
export const PROTOCOL_COLUMN: Record<ProtocolName, string> = {
  stl10: "STL-10",
  "cifar10-400": "CIFAR-10(400)",
  cifar10: "CIFAR-10",
  caltech101: "Caltech-101",
  caltech256: "Caltech-256(30)",
};

/** The protocol that fits a data set's format by default. */
export function defaultProtocol(ds: Dataset): ProtocolName {
  return ({ stl10: "stl10", cifar10: "cifar10-400", caltech101: "caltech101", caltech256: "caltech256" } as Record<
    string,
    ProtocolName
  >)[
    ds.format
  ] ?? (() => {
    throw new UserError(`no evaluation protocol for ${ds.format} data (use --protocol ${PROTOCOLS.join("|")})`);
  })();
}

/** The result of a protocol. */
export interface ProtocolResult {
  protocol: ProtocolName;
  metric: string;
  /** In percent. */
  mean: number;
  std: number;
  runs: number[];
  C: number;
  cScores: { C: number; accuracy: number }[];
  trainPerRun: number;
  test: number;
  dim: number;
}

/** Computes features for images of a split. */
export type FeatureFn = (split: string, indices: number[]) => Promise<Features>;

function meanStd(v: number[]): { mean: number; std: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, std };
}

function labelsOf(all: Int32Array, idx: number[]): Int32Array {
  return Int32Array.from(idx, (i) => all[i]);
}

/** Position of each index within a list (to take rows of features computed for the list). */
function rowsOf(list: number[], idx: number[]): number[] {
  const pos = new Map(list.map((v, i) => [v, i]));
  return idx.map((i) => pos.get(i)!);
}

/** Checks that a protocol fits the data set, with a message saying what is missing. */
export function checkProtocolFits(p: ProtocolName, ds: Dataset): void {
  const need = (ok: unknown, what: string) => {
    if (!ok) throw new UserError(`the ${p} protocol does not fit ${ds.format}:${ds.root}: ${what}`);
  };
  if (p === "stl10") {
    need(ds.splits.train?.labels && ds.splits.test?.labels, "it needs labelled train and test splits");
    need(ds.folds && ds.folds.length > 0, "it needs predefined training folds (fold_indices.txt)");
  } else if (p.startsWith("cifar10")) {
    need(ds.splits.train?.labels && ds.splits.test?.labels, "it needs labelled train and test splits");
    if (p === "cifar10-400") {
      const counts = ds.classNames.map((_, c) => ds.splits.train.labels!.filter((y) => y === c).length);
      need(
        Math.min(...counts) >= 400,
        `it needs 400 training images per class (the smallest class has ${Math.min(...counts)})`,
      );
    }
  } else {
    const s = ds.splits.all ?? ds.splits.train;
    need(s?.labels, "it needs labelled images");
    const counts = ds.classNames.map((_, c) => s.labels!.filter((y) => y === c).length);
    need(
      Math.min(...counts) > 30,
      `it needs more than 30 images per class (the smallest class has ${Math.min(...counts)})`,
    );
  }
}

/** Runs a protocol (see the module documentation). `C` skips the choice of C. */
export async function runProtocol(
  p: ProtocolName,
  ds: Dataset,
  features: FeatureFn,
  opts: { seed?: number; runs?: number; C?: number; bias?: number; log?: (m: string) => void } = {},
): Promise<ProtocolResult> {
  checkProtocolFits(p, ds);
  const log = opts.log ?? (() => {});
  const rng = new Rng(opts.seed ?? 0, 9001);
  const K = ds.classNames.length;
  const bias = opts.bias ?? 1;
  const grid = opts.C !== undefined ? [opts.C] : C_GRID;
  const runs: number[] = [];
  let C = opts.C ?? NaN, cScores: { C: number; accuracy: number }[] = [], trainPerRun = 0, nTest = 0, dim = 0;

  if (p === "stl10" || p === "cifar10-400" || p === "cifar10") {
    const train = ds.splits.train, test = ds.splits.test;
    const yAll = train.labels!;
    let trainSets: number[][];
    let cTrain: number[], cValid: number[];
    if (p === "stl10") {
      trainSets = ds.folds!;
      const inFold1 = new Set(trainSets[0]);
      cTrain = trainSets[0];
      cValid = [...Array(train.length).keys()].filter((i) => !inFold1.has(i));
    } else if (p === "cifar10-400") {
      const byClass = ds.classNames.map((_, c) => [...Array(train.length).keys()].filter((i) => yAll[i] === c));
      trainSets = Array.from(
        { length: opts.runs ?? 10 },
        () =>
          byClass.flatMap((idx) => Array.from(rng.permutation(idx.length).subarray(0, 400), (j) => idx[j])).sort((
            a,
            b,
          ) => a - b),
      );
      const perm = rng.permutation(trainSets[0].length);
      const cut = Math.floor(trainSets[0].length / 5);
      cValid = Array.from(perm.subarray(0, cut), (j) => trainSets[0][j]);
      cTrain = Array.from(perm.subarray(cut), (j) => trainSets[0][j]);
    } else {
      trainSets = [[...Array(train.length).keys()]];
      const perm = rng.permutation(train.length);
      const cut = Math.floor(train.length / 10);
      cValid = Array.from(perm.subarray(0, cut));
      cTrain = Array.from(perm.subarray(cut));
    }
    const union = [...new Set([...trainSets.flat(), ...cValid])].sort((a, b) => a - b);
    log(`features of ${union.length} training and ${test.length} test images`);
    const fTrain = await features("train", union);
    const testIdx = [...Array(test.length).keys()];
    const fTest = await features("test", testIdx);
    const yTest = test.labels!;
    dim = fTrain.dim;
    nTest = test.length;
    if (grid.length > 1) {
      const r = chooseC(
        subset(fTrain, rowsOf(union, cTrain)),
        labelsOf(yAll, cTrain),
        subset(fTrain, rowsOf(union, cValid)),
        labelsOf(yAll, cValid),
        K,
        grid,
        bias,
      );
      C = r.C;
      cScores = r.scores;
      log(
        `C = ${C} (validation accuracy ${r.scores.map((s) => `${s.C}: ${(100 * s.accuracy).toFixed(1)}`).join(", ")})`,
      );
    }
    for (const [k, set] of trainSets.entries()) {
      const m = trainSVM(subset(fTrain, rowsOf(union, set)), labelsOf(yAll, set), K, { C, bias });
      runs.push(100 * accuracy(predictSVM(m, fTest), yTest));
      trainPerRun = set.length;
      log(`run ${k + 1}/${trainSets.length}: ${runs.at(-1)!.toFixed(2)} %`);
    }
  } else {
    const split = ds.splits.all ? "all" : "train";
    const s = ds.splits[split];
    const y = s.labels!;
    const byClass = ds.classNames.map((_, c) => [...Array(s.length).keys()].filter((i) => y[i] === c));
    const splits = Array.from({ length: opts.runs ?? 10 }, () => {
      const tr: number[] = [], te: number[] = [];
      for (const idx of byClass) {
        const perm = Array.from(rng.permutation(idx.length), (j) => idx[j]);
        tr.push(...perm.slice(0, 30));
        te.push(...perm.slice(30, 80));
      }
      return { tr, te };
    });
    const union = [...new Set(splits.flatMap((sp) => [...sp.tr, ...sp.te]))].sort((a, b) => a - b);
    log(`features of ${union.length} images`);
    const f = await features(split, union);
    dim = f.dim;
    if (grid.length > 1) {
      const tr = splits[0].tr, cTrain: number[] = [], cValid: number[] = [];
      for (let c = 0; c < K; c++) {
        const mine = tr.filter((i) => y[i] === c);
        cTrain.push(...mine.slice(0, 25));
        cValid.push(...mine.slice(25));
      }
      const r = chooseC(
        subset(f, rowsOf(union, cTrain)),
        labelsOf(y, cTrain),
        subset(f, rowsOf(union, cValid)),
        labelsOf(y, cValid),
        K,
        grid,
        bias,
        (pr, yy) => meanClassAccuracy(pr, yy, K),
      );
      C = r.C;
      cScores = r.scores;
      log(`C = ${C}`);
    }
    for (const [k, sp] of splits.entries()) {
      const m = trainSVM(subset(f, rowsOf(union, sp.tr)), labelsOf(y, sp.tr), K, { C, bias });
      runs.push(100 * meanClassAccuracy(predictSVM(m, subset(f, rowsOf(union, sp.te))), labelsOf(y, sp.te), K));
      trainPerRun = sp.tr.length;
      nTest = sp.te.length;
      log(`split ${k + 1}/${splits.length}: ${runs.at(-1)!.toFixed(2)} %`);
    }
  }
  const { mean, std } = meanStd(runs);
  return { protocol: p, metric: PROTOCOL_INPUT[p].metric, mean, std, runs, C, cScores, trainPerRun, test: nTest, dim };
}
