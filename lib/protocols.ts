/**
 * The evaluation protocols of Table 1 (paper §5.1; PAPER.md "Evaluation").
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
 * The `release` method takes CIFAR-10(400)'s subsets and Caltech-101's splits
 * from the release's files instead of drawing them (`eval.fixedSplits`,
 * data/release/README.md), and refuses a data set they do not index as the
 * release did; C is then chosen on split 1, validated on split 2's training
 * images not in split 1, as the release does.
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
import {
  accuracy,
  type Features,
  increasing,
  type LinearSVM,
  meanClassAccuracy,
  pipelined,
  predictSVM,
  subset,
  SVMWorkers,
  type WorkerProblem,
} from "./svm.ts";
import { type EvalNumbers, type MethodName, METHODS, type ReleaseFile, releaseFile } from "./presets.ts";
import { KNN_DEFAULTS, type KnnOptions, knnPredict } from "./knn.ts";
import type { Pooling } from "./features.ts";

/** The evaluation protocols of Table 1. */
export const PROTOCOLS = ["stl10", "cifar10-400", "cifar10", "caltech101", "caltech256", "folder"] as const;
/** The name of a protocol. */
export type ProtocolName = typeof PROTOCOLS[number];

/** How each protocol sees the images. */
export const PROTOCOL_INPUT: Record<ProtocolName, { size: number; pooling: Pooling; metric: string }> = {
  stl10: { ...METHODS.paper.eval.input.stl10, metric: "accuracy" },
  "cifar10-400": { ...METHODS.paper.eval.input["cifar10-400"], metric: "accuracy" },
  cifar10: { ...METHODS.paper.eval.input.cifar10, metric: "accuracy" },
  caltech101: { ...METHODS.paper.eval.input.caltech101, metric: "mean per-class accuracy" },
  caltech256: { ...METHODS.paper.eval.input.caltech256, metric: "mean per-class accuracy" },
  folder: { ...METHODS.paper.eval.input.folder, metric: "mean per-class accuracy" },
};

/** The Table 1 column of each protocol. */
export const PROTOCOL_COLUMN: Record<ProtocolName, string> = {
  stl10: "STL-10",
  "cifar10-400": "CIFAR-10(400)",
  cifar10: "CIFAR-10",
  caltech101: "Caltech-101",
  caltech256: "Caltech-256(30)",
  folder: "your photographs",
};

/** The protocol that fits a data set's format by default. */
export function defaultProtocol(ds: Dataset): ProtocolName {
  return ({
    stl10: "stl10",
    cifar10: "cifar10-400",
    caltech101: "caltech101",
    caltech256: "caltech256",
    folder: "folder",
  } as Record<
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
  /** The protocol. */
  protocol: ProtocolName;
  /** What is measured (accuracy, mean per-class accuracy). */
  metric: string;
  /** In percent. */
  mean: number;
  /** Standard deviation over the runs, in percent. */
  std: number;
  /** Each run's figure, in percent. */
  runs: number[];
  /** The SVM's C. */
  C: number;
  /** Validation score of each C tried. */
  cScores: { C: number; accuracy: number }[];
  /** Training images per run. */
  trainPerRun: number;
  /** Weighted kNN on the same training and test sets (L2-normalised features), beside the SVM. */
  knn?: { k: number; temperature: number; mean: number; std: number; runs: number[] };
  /** Test images per run. */
  test: number;
  /** Feature dimension. */
  dim: number;
}

/** Computes features for images of a split. */
export type FeatureFn = (split: string, indices: number[]) => Promise<Features>;

/** Mean and standard deviation: the sample's (divided by n - 1) or the population's (by n, as the release). */
function meanStd(v: number[], kind: "sample" | "population" = "sample"): { mean: number; std: number } {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const dof = kind === "sample" ? v.length - 1 : v.length;
  const std = dof > 0 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / dof) : 0;
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
  // (With one class every classifier is right every time: no measure at all.)
  need(
    ds.classNames.length >= 2,
    `a classifier needs at least two classes, and it has ${ds.classNames.length}${
      ds.classNames.length ? ` (${ds.classNames[0]})` : ""
    }`,
  );
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
  } else if (p === "folder") {
    const given = ds.splits.train && ds.splits.test;
    for (const name of given ? ["train", "test"] : ["all"]) {
      const s = ds.splits[name];
      need(s?.labels, `it needs labelled images (${given ? "train/ and test/ with" : ""} <class>/<image> folders)`);
      const counts = ds.classNames.map((_, c) => s.labels!.filter((y) => y === c).length);
      need(
        Math.min(...counts) >= (given ? 1 : 2),
        `every class needs ${given ? "an image in each split" : "2 images"} (the smallest has ${Math.min(...counts)})`,
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

/** Options of {@link runProtocol}. */
export interface ProtocolOptions {
  /** Seed of the random subsets and splits. */
  seed?: number;
  /** Runs to average over (subsets, splits or STL-10 folds); default: the method's (10). */
  runs?: number;
  /** A fixed C (skips the choice of C). */
  C?: number;
  /** The SVM's bias feature; default: the method's. */
  bias?: number;
  /** The method preset whose evaluation numbers apply (default `paper`). */
  method?: MethodName;
  /** Weighted kNN beside the SVM (default: k 20, temperature 0.07); false skips it. */
  knn?: KnnOptions | false;
  /** Messages (C chosen, each run's figure). */
  log?: (m: string) => void;
  /** Progress of the SVMs: (what, done, total) for the validation of C and for the runs. */
  onProgress?: (what: string, done: number, total: number) => void;
  /** Changes the protocol's plan before it runs (an experiment on the protocol itself, e.g. another choice of C). */
  plan?: (plan: ProtocolPlan) => ProtocolPlan;
  /**
   * The threads that train the SVMs (lib/svm.ts SVMWorkers): how many (default: one per core, started and closed by
   * the protocol), or workers the caller started (and closes).
   */
  workers?: number | SVMWorkers;
}

/**
 * What a protocol trains and tests on: image indices of one split for the SVM's training sets, one test set per run
 * (all in `testSplit`), and the training/validation indices C is chosen on.
 */
export interface ProtocolPlan {
  /** The split the training sets (and C's validation) come from. */
  trainSplit: string;
  /** The split the test sets come from. */
  testSplit: string;
  /** One training set per run. */
  train: number[][];
  /** One test set per run (the same set for every run where the protocol has a fixed test split). */
  test: number[][];
  /** C is chosen by training on `cTrain` and scoring on `cValid` (both in trainSplit)... */
  cTrain: number[];
  /** ... the images C is scored on. */
  cValid: number[];
  /** With two or more folds, C's score is the mean over them (cross-validation); else cTrain/cValid. */
  cFolds?: { train: number[]; valid: number[] }[];
  /** Mean per-class accuracy (Caltech) rather than accuracy. */
  perClass: boolean;
}

/** Images of a split grouped by label. */
function byClass(ds: Dataset, split: string): number[][] {
  const y = ds.splits[split].labels!;
  return ds.classNames.map((_, c) => [...Array(y.length).keys()].filter((i) => y[i] === c));
}

/** STL-10: train on each predefined fold, test on the test split; C chosen on fold 1 against the images outside it. */
function stl10Plan(ds: Dataset, runs: number): ProtocolPlan {
  const folds = ds.folds!, n = ds.splits.train.length;
  const inFold1 = new Set(folds[0]);
  const test = [...Array(ds.splits.test.length).keys()];
  const train = folds.slice(0, runs);
  return {
    trainSplit: "train",
    testSplit: "test",
    train,
    test: train.map(() => test),
    cTrain: folds[0],
    cValid: [...Array(n).keys()].filter((i) => !inFold1.has(i)),
    perClass: false,
  };
}

/** CIFAR-10(400): random subsets of 400 training images per class; C chosen on subset 1 with a fifth held out. */
function cifar400Plan(ds: Dataset, rng: Rng, runs: number, perClass: number): ProtocolPlan {
  const classes = byClass(ds, "train");
  const train = Array.from(
    { length: runs },
    () =>
      classes.flatMap((idx) => Array.from(rng.permutation(idx.length).subarray(0, perClass), (j) => idx[j]))
        .sort((a, b) => a - b),
  );
  const perm = rng.permutation(train[0].length);
  const cut = Math.floor(train[0].length / 5);
  const test = [...Array(ds.splits.test.length).keys()];
  return {
    trainSplit: "train",
    testSplit: "test",
    train,
    test: train.map(() => test),
    cValid: Array.from(perm.subarray(0, cut), (j) => train[0][j]),
    cTrain: Array.from(perm.subarray(cut), (j) => train[0][j]),
    perClass: false,
  };
}

/** CIFAR-10: all training images, one run; C chosen with a tenth held out. */
function cifarFullPlan(ds: Dataset, rng: Rng): ProtocolPlan {
  const n = ds.splits.train.length;
  const perm = rng.permutation(n);
  const cut = Math.floor(n / 10);
  return {
    trainSplit: "train",
    testSplit: "test",
    train: [[...Array(n).keys()]],
    test: [[...Array(ds.splits.test.length).keys()]],
    cValid: Array.from(perm.subarray(0, cut)),
    cTrain: Array.from(perm.subarray(cut)),
    perClass: false,
  };
}

/**
 * Caltech-101/256: per random split, `trainPer` training images per class and the rest (at most `testMax` per
 * class) for testing; C chosen on split 1, its last 5 training images per class held out.
 */
function caltechPlan(ds: Dataset, rng: Rng, runs: number, trainPer: number, testMax: number): ProtocolPlan {
  const split = ds.splits.all ? "all" : "train";
  const classes = byClass(ds, split);
  const splits = Array.from({ length: runs }, () => {
    const tr: number[] = [], te: number[] = [];
    for (const idx of classes) {
      const perm = Array.from(rng.permutation(idx.length), (j) => idx[j]);
      tr.push(...perm.slice(0, trainPer));
      te.push(...perm.slice(trainPer, trainPer + testMax));
    }
    return { tr, te };
  });
  const y = ds.splits[split].labels!;
  const cTrain: number[] = [], cValid: number[] = [];
  for (let c = 0; c < ds.classNames.length; c++) {
    const mine = splits[0].tr.filter((i) => y[i] === c);
    cTrain.push(...mine.slice(0, trainPer - 5));
    cValid.push(...mine.slice(trainPer - 5));
  }
  return {
    trainSplit: split,
    testSplit: split,
    train: splits.map((s) => s.tr),
    test: splits.map((s) => s.te),
    cTrain,
    cValid,
    perClass: true,
  };
}

/**
 * A folder of the user's own photographs: its train/ and test/ folders when it has them (one run; C chosen with a
 * fifth of train/ held out), otherwise `runs` stratified random splits, a quarter of each class (at least one image)
 * for testing (C chosen on split 1, a fifth of its training images held out).
 */
function folderPlan(ds: Dataset, rng: Rng, runs: number): ProtocolPlan {
  const holdOut = (train: number[]) => {
    const perm = rng.permutation(train.length), cut = Math.max(1, Math.floor(train.length / 5));
    return {
      cValid: Array.from(perm.subarray(0, cut), (j) => train[j]),
      cTrain: Array.from(perm.subarray(cut), (j) => train[j]),
    };
  };
  if (ds.splits.train && ds.splits.test) {
    const train = [...Array(ds.splits.train.length).keys()];
    const test = [...Array(ds.splits.test.length).keys()];
    return { trainSplit: "train", testSplit: "test", train: [train], test: [test], ...holdOut(train), perClass: true };
  }
  const classes = byClass(ds, "all");
  const splits = Array.from({ length: runs }, () => {
    const tr: number[] = [], te: number[] = [];
    for (const idx of classes) {
      const perm = Array.from(rng.permutation(idx.length), (j) => idx[j]);
      const nTest = Math.max(1, Math.round(idx.length / 4));
      te.push(...perm.slice(0, nTest));
      tr.push(...perm.slice(nTest));
    }
    return { tr: tr.sort((a, b) => a - b), te: te.sort((a, b) => a - b) };
  });
  return {
    trainSplit: "all",
    testSplit: "all",
    train: splits.map((s) => s.tr),
    test: splits.map((s) => s.te),
    ...holdOut(splits[0].tr),
    perClass: true,
  };
}

/** What the release's split files index: the images of the data set, in its official order, and its classes. */
const RELEASE_SPLITS_INDEX = {
  "cifar10-400": { images: 50_000, classes: 10, what: "the 50,000 official CIFAR-10 training images" },
  caltech101: {
    images: 8_677,
    classes: 101,
    what: "the 8,677 images of Caltech-101's 101 classes without BACKGROUND_Google",
  },
} as const;

/**
 * The lists of one of the release's split files (`key`: train_splits, test_splits) as 0-based indices, with a
 * one-line error for a file that is not `count` lists of indices in 1..`n` (at least two: C is validated on split 2).
 */
function splitLists(file: ReleaseFile, key: string, n: number, count?: number): number[][] {
  const lists = (releaseFile(file) as Record<string, unknown>)[key];
  const ok = Array.isArray(lists) && lists.length >= 2 && (count === undefined || lists.length === count) &&
    lists.every((l) => Array.isArray(l) && l.every((i) => Number.isInteger(i) && i >= 1 && i <= n));
  if (!ok) throw new UserError(`${file}: expected ${key}, ${count ?? "two or more"} lists of image indices in 1..${n}`);
  return (lists as number[][]).map((l) => l.map((i) => i - 1));
}

/** Images of each class in a list of indices. */
function perClassCounts(y: Int32Array, idx: number[], classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const i of idx) counts[y[i]]++;
  return counts;
}

/**
 * The release's fixed splits of CIFAR-10(400) or Caltech-101 (testing/all_cifar_splits.mat,
 * caltech101_no_back_splits.mat): its first `runs` splits, C chosen on split 1 and validated on split 2's training
 * images not in split 1. The files index the data set's images in its official order; a data set of another size,
 * or one whose classes the splits do not take `cifarPerClass` (CIFAR-10) or `caltechTrain` and min(`caltechTestMax`,
 * rest) (Caltech-101) images of, is refused with one line rather than misindexed.
 */
function releaseSplitsPlan(
  p: "cifar10-400" | "caltech101",
  file: ReleaseFile,
  ds: Dataset,
  e: EvalNumbers,
  runs: number,
): ProtocolPlan {
  const expected = RELEASE_SPLITS_INDEX[p];
  const split = p === "cifar10-400" ? "train" : ds.splits.all ? "all" : "train";
  const y = ds.splits[split].labels!, K = ds.classNames.length;
  const name = `${ds.format}:${ds.root}`;
  if (y.length !== expected.images || K !== expected.classes) {
    throw new UserError(
      `the release's ${PROTOCOL_COLUMN[p]} splits (${file}) index ${expected.what}; ${name} has ${y.length} ${
        p === "cifar10-400" ? "training " : ""
      }images in ${K} classes`,
    );
  }
  const train = splitLists(file, "train_splits", y.length);
  if (runs > train.length) {
    throw new UserError(`${runs} runs: the release's ${PROTOCOL_COLUMN[p]} has ${train.length} splits (${file})`);
  }
  // Each split must take the preset's number of images of every class, as it does from the official order.
  const sizes = perClassCounts(y, [...y.keys()], K);
  const check = (k: number, idx: number[], what: string, want: (c: number) => number) => {
    perClassCounts(y, idx, K).forEach((n, c) => {
      if (n === want(c)) return;
      throw new UserError(
        `the release's ${PROTOCOL_COLUMN[p]} split ${k + 1} (${file}) takes ${n} ${what} of class "${
          ds.classNames[c]
        }" where it takes ${want(c)}: the images of ${name} are not in the order it indexes (${
          p === "cifar10-400" ? "data_batch_1 ... data_batch_5" : "class folders sorted, file names sorted in a class"
        })`,
      );
    });
  };
  let test: number[][];
  if (p === "cifar10-400") {
    train.forEach((tr, k) => check(k, tr, "images", () => e.cifarPerClass));
    const all = [...Array(ds.splits.test.length).keys()];
    test = train.map(() => all);
  } else {
    test = splitLists(file, "test_splits", y.length, train.length);
    train.forEach((tr, k) => check(k, tr, "training images", () => e.caltechTrain));
    test.forEach((te, k) => check(k, te, "test images", (c) => Math.min(e.caltechTestMax, sizes[c] - e.caltechTrain)));
  }
  const first = new Set(train[0]);
  return {
    trainSplit: split,
    testSplit: p === "cifar10-400" ? "test" : split,
    train: train.slice(0, runs),
    test: test.slice(0, runs),
    cTrain: train[0],
    cValid: train[1].filter((i) => !first.has(i)),
    perClass: p === "caltech101",
  };
}

/**
 * The plan of a protocol on a data set: the release's fixed splits where the method names them
 * (`eval.fixedSplits`), else random subsets and splits drawn from `rng`.
 */
export function protocolPlan(p: ProtocolName, ds: Dataset, rng: Rng, e: EvalNumbers, runs = e.runs): ProtocolPlan {
  const fixed = p === "cifar10-400" || p === "caltech101" ? e.fixedSplits[p] : null;
  if (fixed) return releaseSplitsPlan(p as "cifar10-400" | "caltech101", fixed, ds, e, runs);
  const plan = p === "stl10"
    ? stl10Plan(ds, runs)
    : p === "cifar10-400"
    ? cifar400Plan(ds, rng, runs, e.cifarPerClass)
    : p === "cifar10"
    ? cifarFullPlan(ds, rng)
    : p === "folder"
    ? folderPlan(ds, rng, runs)
    : caltechPlan(ds, rng, runs, e.caltechTrain, e.caltechTestMax);
  if (e.cValidation === "release") return releaseValidation(p, plan);
  // STL-10 validates on its protocol's 4,000 images outside fold 1, CIFAR-10 on a tenth of 50,000: enough. Elsewhere
  // a held-out part would be a few images per class, and C would follow the luck of which ones.
  return p === "stl10" || p === "cifar10" ? plan : kFoldValidation(plan, ds, rng, e.cFolds);
}

/**
 * C validated by k-fold cross-validation on the first run's training images: each class's images dealt, in a random
 * order, to `k` folds in turn (so every fold holds about a k-th of every class); C's score is its mean over the folds,
 * each fold held out once while the SVM trains on the rest.
 */
export function kFoldValidation(plan: ProtocolPlan, ds: Dataset, rng: Rng, k: number): ProtocolPlan {
  const y = ds.splits[plan.trainSplit].labels!;
  const byLabel = new Map<number, number[]>();
  for (const i of plan.train[0]) byLabel.set(y[i], [...byLabel.get(y[i]) ?? [], i]);
  const folds = Array.from({ length: k }, () => [] as number[]);
  let next = 0;
  for (const label of [...byLabel.keys()].sort((a, b) => a - b)) {
    const idx = byLabel.get(label)!;
    for (const j of rng.permutation(idx.length)) folds[next++ % k].push(idx[j]);
  }
  const sorted = (a: number[]) => a.sort((x, z) => x - z);
  const cFolds = folds.filter((f) => f.length > 0).map((valid, v) => ({
    train: sorted(folds.filter((_, u) => u !== v).flat()),
    valid: sorted([...valid]),
  }));
  return { ...plan, cTrain: plan.train[0], cValid: [], cFolds };
}

/**
 * Where the release validates C: STL-10 fold 1 against the rest (as the held-out plan); CIFAR-10(400) and Caltech
 * run 1's training set against run 2's training images not in it; CIFAR-10 two-fold cross-validation.
 */
function releaseValidation(p: ProtocolName, plan: ProtocolPlan): ProtocolPlan {
  if (p === "cifar10") {
    const all = plan.train[0], half = [...plan.cValid, ...plan.cTrain]; // a random order of all training images
    const a = half.slice(0, Math.floor(all.length / 2)), b = half.slice(Math.floor(all.length / 2));
    return { ...plan, cTrain: a, cValid: b, cFolds: [{ train: a, valid: b }, { train: b, valid: a }] };
  }
  if (p === "stl10" || plan.train.length < 2) return plan;
  const first = new Set(plan.train[0]);
  return { ...plan, cTrain: plan.train[0], cValid: plan.train[1].filter((i) => !first.has(i)) };
}

/** The most memory the weights of one part of a C path take (lib/svm.ts solvePath): 64 MiB. */
const PATH_BYTES = 64 * 2 ** 20;

const sortedUnion = (...lists: number[][]) => [...new Set(lists.flat())].sort((a, b) => a - b);

/**
 * Runs a protocol (see the module documentation): its plan, then the features of every image the plan uses, C
 * chosen on the plan's validation split (unless given), and one linear SVM per run scored on the run's test set.
 * The SVMs train in worker threads (`workers`), with the same results for any number of them; while they train the
 * next SVM, this thread scores the last.
 */
export async function runProtocol(
  p: ProtocolName,
  ds: Dataset,
  features: FeatureFn,
  opts: ProtocolOptions = {},
): Promise<ProtocolResult> {
  checkProtocolFits(p, ds);
  const log = opts.log ?? (() => {}), progress = opts.onProgress ?? (() => {});
  const e = METHODS[opts.method ?? "paper"].eval;
  const drawn = protocolPlan(p, ds, new Rng(opts.seed ?? 0, 9001), e, opts.runs ?? e.runs);
  const plan = opts.plan ? opts.plan(drawn) : drawn;
  const K = ds.classNames.length;
  const bias = opts.bias ?? e.svmBias[p];
  const score = (pred: Int32Array, y: Int32Array) => plan.perClass ? meanClassAccuracy(pred, y, K) : accuracy(pred, y);

  // Features: the training split's images (all runs and the C split), then the test split's; one call where the
  // protocol draws both from the same split.
  const trainIdx = sortedUnion(...plan.train, plan.cTrain, plan.cValid);
  const testIdx = sortedUnion(...plan.test);
  let fTrain: Features, fTest: Features, trainRows: number[], testRows: number[];
  if (plan.trainSplit === plan.testSplit) {
    const all = sortedUnion(trainIdx, testIdx);
    log(`features of ${all.length} images`);
    fTrain = fTest = await features(plan.trainSplit, all);
    trainRows = testRows = all;
  } else {
    log(`features of ${trainIdx.length} training and ${testIdx.length} test images`);
    fTrain = await features(plan.trainSplit, trainIdx);
    fTest = await features(plan.testSplit, testIdx);
    [trainRows, testRows] = [trainIdx, testIdx];
  }
  const yTrain = ds.splits[plan.trainSplit].labels!, yTest = ds.splits[plan.testSplit].labels!;
  const rowsIn = (rows: number[]) => (idx: number[]) => rowsOf(rows, idx);
  const [trRows, teRows] = [rowsIn(trainRows), rowsIn(testRows)];

  const svm = opts.workers instanceof SVMWorkers ? opts.workers : new SVMWorkers(opts.workers);
  try {
    let C = opts.C ?? NaN, cScores: { C: number; accuracy: number }[] = [];
    if (opts.C === undefined) {
      // The values tried: the grid, or the release's random log-uniform draws in the protocol's range.
      const { range: [lo, hi], draws } = e.cRandom[p], cRng = new Rng(opts.seed ?? 0, 9002);
      const candidates = e.cSearch === "grid"
        ? e.cGrid
        : Array.from({ length: draws }, () => Math.exp(cRng.uniform(Math.log(lo), Math.log(hi))));
      const folds = plan.cFolds ?? [{ train: plan.cTrain, valid: plan.cValid }];
      // Each fold's classes are solved along the candidates in increasing C, each C from the solution at the C before
      // (lib/svm.ts solvePath), in parts of at most PATH_BYTES of weights; the workers solve the next part (or fold)
      // while this thread scores the last.
      const order = increasing(candidates);
      const per = Math.max(1, Math.floor(PATH_BYTES / (8 * K * (fTrain.dim + 1))));
      const parts: { v: number; idx: number[] }[] = [];
      for (let v = 0; v < folds.length; v++) {
        for (let i = 0; i < order.length; i += per) parts.push({ v, idx: order.slice(i, i + per) });
      }
      const sets = new Map<number, { problem: WorkerProblem; alpha: Float64Array; valid: Features; y: Int32Array }>();
      const setOf = async (v: number) => {
        if (!sets.has(v)) {
          const f = folds[v], y = labelsOf(yTrain, f.train);
          const problem = await svm.problem(subset(fTrain, trRows(f.train)), y, bias);
          const alpha = svm.pathStart(problem, K);
          sets.set(v, { problem, alpha, valid: subset(fTrain, trRows(f.valid)), y: labelsOf(yTrain, f.valid) });
        }
        return sets.get(v)!;
      };
      // The score of a C: its mean over the folds; ties go to the first tried (the smaller C on the grid).
      const sums = new Array<number>(candidates.length).fill(0);
      let solving: Promise<unknown> = Promise.resolve();
      progress("C validation", 0, parts.length * K);
      await pipelined(
        parts.length,
        (t) => {
          // A part starts from the last one's solutions: it waits for it.
          const { v, idx } = parts[t];
          const models = solving.then(async () => {
            const set = await setOf(v);
            const Cs = idx.map((i) => candidates[i]);
            return await svm.solvePath(set.problem, K, Cs, set.alpha, {}, (d) => {
              progress("C validation", t * K + d, parts.length * K);
            });
          });
          solving = models;
          return models;
        },
        async (models: LinearSVM[], t) => {
          const { v, idx } = parts[t], set = await setOf(v);
          models.forEach((m, j) => {
            sums[idx[j]] += score(predictSVM(m, set.valid), set.y);
          });
          if (t + 1 < parts.length && parts[t + 1].v === v) return;
          sets.delete(v);
          if (folds.length > 1) log(`C validated on fold ${v + 1}/${folds.length}`);
        },
      );
      cScores = candidates.map((c, i) => ({ C: c, accuracy: sums[i] / folds.length }));
      const best = cScores.reduce((b, s) => s.accuracy > b.accuracy + 1e-12 ? s : b);
      C = best.C;
      log(
        `C = ${C.toPrecision(3)} (validation ${
          cScores.map((s) => `${s.C.toPrecision(2)}: ${(100 * s.accuracy).toFixed(1)}`).join(", ")
        })`,
      );
    }

    const runs: number[] = [], knnRuns: number[] = [];
    const knn = opts.knn === false ? null : opts.knn ?? KNN_DEFAULTS;
    // STL-10 and CIFAR-10 test every run on the same set (one array): its rows are gathered once, not once per run.
    const testSets = new Map<number[], Features>();
    const testSet = (te: number[]) => testSets.get(te) ?? testSets.set(te, subset(fTest, teRows(te))).get(te)!;
    // The workers train run k + 1's SVM while this thread scores run k's.
    progress("runs", 0, plan.train.length);
    await pipelined(plan.train.length, async (k) => {
      const tr = plan.train[k], train = subset(fTrain, trRows(tr)), y = labelsOf(yTrain, tr);
      return { train, y, m: await svm.train(train, y, K, { C, bias }) };
    }, ({ train, y, m }, k) => {
      const te = plan.test[k], test = testSet(te);
      runs.push(100 * score(predictSVM(m, test), labelsOf(yTest, te)));
      if (knn) knnRuns.push(100 * score(knnPredict(train, y, K, test, knn), labelsOf(yTest, te)));
      progress("runs", k + 1, plan.train.length);
      log(
        `run ${k + 1}/${plan.train.length}: ${runs.at(-1)!.toFixed(2)} %${
          knn ? ` (kNN ${knnRuns.at(-1)!.toFixed(2)} %)` : ""
        }`,
      );
    });
    const { mean, std } = meanStd(runs, e.std);
    const knnResult = knn
      ? { k: knn.k, temperature: knn.temperature, ...meanStd(knnRuns, e.std), runs: knnRuns }
      : undefined;
    return {
      protocol: p,
      metric: PROTOCOL_INPUT[p].metric,
      mean,
      std,
      runs,
      C,
      cScores,
      trainPerRun: plan.train.at(-1)!.length,
      ...(knnResult ? { knn: knnResult } : {}),
      test: plan.test.at(-1)!.length,
      dim: fTrain.dim,
    };
  } finally {
    if (svm !== opts.workers) svm.close();
  }
}
