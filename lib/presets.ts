/**
 * Every number of the method, in one place.
 *
 * Two method presets implement Exemplar-CNN:
 * - `paper`: what the paper's text says (arXiv 1406.6909 v2, sections 3-5);
 * - `release`: what the authors' released MATLAB/Caffe code does (public
 *   mirror `ethanhe42/Exemplar-CNN`, folders `code/make_data`, `code/training`,
 *   `code/testing`).
 *
 * {@link METHODS} holds the numbers, {@link SOURCES} where each comes from (the
 * paper's sentence with its section, or the release's file), keyed by the
 * number's path (`augment.translation`); a test keeps the two in step.
 *
 * The run scales ({@link RUN_SCALES}: `tiny`, `default`, `paper`, `release`)
 * say how much of the method a run does (N, K, steps); they stand beside the
 * method presets and name the preset they use.
 *
 * @module
 */
import { join } from "node:path";
import { UserError } from "./util/errors.ts";
import { PROJECT_ROOT } from "./util/fsutil.ts";

/** The two method presets. */
export type MethodName = "paper" | "release";
/** The method presets, `paper` first (the default). */
export const METHOD_NAMES: readonly MethodName[] = ["paper", "release"];

/** Seed sampling (paper §3). */
export interface SeedNumbers {
  /** Side of a seed patch, in pixels. */
  patch: number;
  /** Scales of the image pyramid the seeds are cut from. */
  pyramid: number[];
  /** Sampling map: mean squared gradient (`gradient`) or the release's high-pass energy (`highpass`). */
  sampler: "gradient" | "highpass";
  /** Seeds per image: spread over images (`spread`) or one per image (`one`). */
  perImage: "spread" | "one";
  /** High-pass sampler: sigma of its Gaussian low-pass, in pixels of the subsampled image. */
  highPassSigma: number;
  /** High-pass sampler: subsampling factor of the image before filtering. */
  subsample: number;
  /** A flat frame (edge rows and columns varying by at most this, in 0..255) is not part of the picture. */
  frameTolerance: number;
  /** Pyramid levels resized with antialiasing (a triangle filter widened by the shrink) or plain bilinear. */
  pyramidAntialias: boolean;
}

/** Transformation ranges (paper §3): each the [lo, hi] of a drawn quantity. */
export interface AugmentNumbers {
  /** Maximal |shift| as a fraction of the patch size. */
  translation: number;
  /** Scale factor range. */
  scale: [number, number];
  /** How the scale is drawn: log-uniformly (symmetric for a factor) or uniformly (the release). */
  scaleDraw: "logUniform" | "uniform";
  /** Translation as a fraction of the patch (`patch`) or of the scaled patch's window (`scaledPatch`, the release). */
  translationOf: "patch" | "scaledPatch";
  /** Redraw a sample whose window leaves the seed's image (the release keeps only windows inside the image). */
  insideImage: boolean;
  /** A window larger than the patch is averaged down (2 x 2 samples a pixel) instead of sampled once a pixel. */
  antialias: boolean;
  /** Maximal |angle| in degrees. */
  rotationDeg: number;
  /**
   * contrast1's colour basis: the principal components of the seed pixels (`seeds`), or the release's fixed
   * eigenvectors, a data file of the project (`data/release/color_eigenvectors.json`).
   */
  colorBasis: "seeds" | ReleaseFile;
  /** contrast1 factor range (drawn log-uniformly, unless `pcaLog2Std` is set). */
  pca: [number, number];
  /**
   * contrast1 as the release draws it: factor 2^(z s_k), z ~ N(0, 1) clipped to +-`pcaClip`, with s_k listed for
   * the principal components largest variance first; null: log-uniform.
   */
  pcaLog2Std: [number, number, number] | null;
  /** Bound of |z| in the release's contrast1 draw. */
  pcaClip: number;
  /**
   * contrast1 as the release does it: pixels centred and scaled by the data's range (its min and max), the result
   * clipped to the range of the centred data before the mean is added back; false: centred, clipped to [0, 1].
   */
  contrast1DataRange: boolean;
  /** Before contrast2, stretch each patch on its own to [0, 1] (the release's power_transform.m). */
  stretchBeforeContrast2: boolean;
  /** contrast2: power applied to S and V. */
  power: [number, number];
  /** contrast2: factor multiplying S and V. */
  factor: [number, number];
  /** contrast2: value added to S and V. */
  add: [number, number];
  /** color: value added to the hue (hue in [0, 1)). */
  hue: [number, number];
}

/** Network details beyond the layer sizes (paper §5.1). */
export interface NetNumbers {
  /** Max-pooling after the first two conv layers: window side and stride. */
  pool: { size: number; stride: number };
  /** Weight initialisation: He-normal (`he`) or Gaussians with the spreads below (`gaussian`). */
  init: "he" | "gaussian";
  /**
   * `gaussian` init: std of the weights of conv1, conv2, conv3 (and deeper), the FC layers and the softmax layer,
   * by network; a network the release does not define takes `default` (the medium network's).
   */
  spreads: Record<string, { conv: number[]; fc: number; softmax: number }>;
  /** `he` init: std of the softmax layer's weights (the conv and FC layers get sqrt(2 / fan-in)). */
  softmaxStd: number;
  /** Initial bias of conv and FC layers (the softmax bias starts at 0). */
  bias: number;
  /** Weight-decay multipliers: conv1, conv2, conv3 (and deeper), FC layers, softmax. */
  decayMult: { conv: [number, number, number]; fc: number; softmax: number };
  /** Learning-rate multipliers: biases, softmax weights (others 1). */
  lrMult: { bias: number; softmaxWeights: number };
  /** Dropout rate on the FC layers' outputs. */
  dropout: number;
}

/** Pretraining (paper §5.1). */
export interface TrainNumbers {
  /** Samples per SGD step. */
  batch: number;
  /** Initial learning rate. */
  lr: number;
  /** SGD momentum. */
  momentum: number;
  /** L2 weight decay (times each layer's multiplier). */
  weightDecay: number;
  /** `plateau`: divide by `divideBy` when validation error stops improving; `stages`: the release's fixed stages. */
  schedule: "plateau" | "stages";
  /** Plateau: the factor the rate is divided by. */
  divideBy: number;
  /** Plateau: validations without improvement before the rate is divided. */
  patience: number;
  /** `stages`: [iterations, learning rate], scaled to the run's steps. */
  stages: [number, number][];
}

/** Feature extraction and the linear SVM (paper §5.1). */
export interface EvalNumbers {
  /** Each protocol's image side (images are resized to it) and the pooling of every layer's responses. */
  input: Record<"stl10" | "cifar10-400" | "cifar10" | "caltech101" | "caltech256" | "folder", {
    size: number;
    pooling: "quadrant" | "pyramid";
  }>;
  /** Quantile of each layer's training features that its block is divided by (0.9999: the 99.99th percentile). */
  blockQuantile: number;
  /** Weights of the pooling levels, coarsest first (the pyramid's 1x1, 2x2, 4x4; quadrants use the first). */
  levelWeights: number[];
  /** The SVM's constant bias feature (liblinear's -B), by protocol. */
  svmBias: Record<"stl10" | "cifar10-400" | "cifar10" | "caltech101" | "caltech256" | "folder", number>;
  /** How C is chosen: on a grid, or by random log-uniform draws in a range per protocol (the release). */
  cSearch: "grid" | "logRandom";
  /** `grid`: the values of C tried. */
  cGrid: number[];
  /** `logRandom`: [lo, hi] and the number of draws, by protocol. */
  cRandom: Record<"stl10" | "cifar10-400" | "cifar10" | "caltech101" | "caltech256" | "folder", {
    range: [number, number];
    draws: number;
  }>;
  /**
   * What C is validated on: `kFold`, the first run's training set in `cFolds` stratified folds, each held out in turn
   * (CIFAR-10(400), Caltech, a folder; STL-10 keeps its protocol's fold 1 against the rest, CIFAR-10 a tenth held out,
   * both thousands of images); or the release's choice (STL-10: fold 1 against the rest; CIFAR-10(400), Caltech: run
   * 1's training set against run 2's images not in it; CIFAR-10: 2-fold cross-validation).
   */
  cValidation: "kFold" | "release";
  /** `kFold`: the number of folds. */
  cFolds: number;
  /** Standard deviation over runs: sample (n - 1) or population (n, the release). */
  std: "sample" | "population";
  /** Runs (subsets or splits) a protocol averages over. */
  runs: number;
  /** CIFAR-10(400): training images per class. */
  cifarPerClass: number;
  /** Caltech: training images per class, and at most this many test images per class. */
  caltechTrain: number;
  /** Caltech: at most this many test images per class. */
  caltechTestMax: number;
  /**
   * The release's fixed training (and Caltech test) splits, a data file of the project by protocol; null: the
   * protocol draws its own random subsets and splits.
   */
  fixedSplits: Record<"cifar10-400" | "caltech101", ReleaseFile | null>;
}

/** One of the release's data files, converted to JSON with its values unchanged (data/release/README.md). */
export type ReleaseFile = `data/release/${string}.json`;

const releaseFiles = new Map<string, unknown>();

/**
 * The contents of one of the release's data files a preset names (read once). A file that is missing or not JSON
 * is a one-line error: the files ship with the project.
 */
export function releaseFile(file: ReleaseFile): unknown {
  if (!releaseFiles.has(file)) {
    const path = join(PROJECT_ROOT, file);
    try {
      releaseFiles.set(file, JSON.parse(Deno.readTextFileSync(path)));
    } catch (e) {
      throw new UserError(`${path}: the release's data file cannot be read (${(e as Error).message.split("\n")[0]})`);
    }
  }
  return releaseFiles.get(file);
}

/** Every number of one method preset. */
export interface Method {
  /** The preset's name. */
  name: MethodName;
  /** Seed sampling. */
  seeds: SeedNumbers;
  /** Transformation ranges. */
  augment: AugmentNumbers;
  /** Network details. */
  net: NetNumbers;
  /** Pretraining. */
  train: TrainNumbers;
  /** Features and the SVM. */
  eval: EvalNumbers;
}

const PAPER_EVAL: EvalNumbers = {
  input: {
    stl10: { size: 96, pooling: "quadrant" },
    "cifar10-400": { size: 64, pooling: "quadrant" },
    cifar10: { size: 64, pooling: "quadrant" },
    caltech101: { size: 150, pooling: "pyramid" },
    caltech256: { size: 256, pooling: "pyramid" },
    // (Not in the paper: a user's own photographs, seen as STL-10's images are.)
    folder: { size: 96, pooling: "quadrant" },
  },
  blockQuantile: 0.9999,
  levelWeights: [1, 1, 1],
  svmBias: { stl10: 1, "cifar10-400": 1, cifar10: 1, caltech101: 1, caltech256: 1, folder: 1 },
  cSearch: "grid",
  cGrid: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10],
  cRandom: {
    stl10: { range: [2e-4, 2e-1], draws: 50 },
    "cifar10-400": { range: [1e-3, 1], draws: 50 },
    cifar10: { range: [1e-3, 1], draws: 30 },
    caltech101: { range: [2e-3, 1], draws: 30 },
    caltech256: { range: [2e-3, 1], draws: 30 },
    folder: { range: [2e-3, 1], draws: 30 },
  },
  cValidation: "kFold",
  cFolds: 5,
  std: "sample",
  runs: 10,
  cifarPerClass: 400,
  caltechTrain: 30,
  caltechTestMax: 50,
  fixedSplits: { "cifar10-400": null, caltech101: null },
};

const RELEASE_EVAL: EvalNumbers = {
  ...PAPER_EVAL,
  levelWeights: [1, 0.5, 0.25],
  svmBias: { stl10: 5, "cifar10-400": 1, cifar10: 1, caltech101: 1, caltech256: 1, folder: 1 },
  cSearch: "logRandom",
  cValidation: "release",
  cFolds: 2,
  std: "population",
  fixedSplits: {
    "cifar10-400": "data/release/cifar10_400_splits.json",
    caltech101: "data/release/caltech101_splits.json",
  },
};

const RELEASE_STAGES: [number, number][] = [[1_200_000, 0.01], [120_000, 0.004], [120_000, 0.001], [
  60_000,
  0.0004,
], [60_000, 0.0001]];

/** The release's layer numbers (spreads, multipliers, dropout); the paper preset shares all but the spreads' use. */
const CAFFE_LAYERS = {
  spreads: {
    default: { conv: [0.05, 0.02, 0.01], fc: 0.01, softmax: 0.005 },
    "64c5-64c5-128f": { conv: [0.0001, 0.01], fc: 0.005, softmax: 0.01 },
  },
  decayMult: { conv: [0, 0, 0.25] as [number, number, number], fc: 1, softmax: 4 },
  lrMult: { bias: 2, softmaxWeights: 0.25 },
  dropout: 0.5,
};

/** SGD as both presets run it; they differ in the schedule. */
const SGD = {
  batch: 128,
  lr: 0.01,
  momentum: 0.9,
  weightDecay: 0.004,
  divideBy: 3,
  patience: 3,
  stages: RELEASE_STAGES,
};

/** The two method presets. */
export const METHODS: Readonly<Record<MethodName, Method>> = {
  paper: {
    name: "paper",
    seeds: {
      patch: 32,
      pyramid: [1, 0.8, 0.64, 0.512],
      sampler: "gradient",
      perImage: "spread",
      highPassSigma: 2,
      subsample: 4,
      frameTolerance: 10,
      pyramidAntialias: false,
    },
    augment: {
      translation: 0.2,
      translationOf: "patch",
      antialias: false,
      scale: [0.7, 1.4],
      scaleDraw: "logUniform",
      insideImage: false,
      rotationDeg: 20,
      colorBasis: "seeds",
      pca: [0.5, 2],
      pcaLog2Std: null,
      pcaClip: 6,
      contrast1DataRange: false,
      stretchBeforeContrast2: false,
      power: [0.25, 4],
      factor: [0.7, 1.4],
      add: [-0.1, 0.1],
      hue: [-0.1, 0.1],
    },
    net: { ...CAFFE_LAYERS, pool: { size: 2, stride: 2 }, init: "he", softmaxStd: 0.01, bias: 0 },
    train: { ...SGD, schedule: "plateau" },
    eval: PAPER_EVAL,
  },
  release: {
    name: "release",
    seeds: {
      patch: 32,
      pyramid: [1, 0.8, 0.64, 0.512],
      sampler: "highpass",
      perImage: "one",
      highPassSigma: 2,
      subsample: 4,
      frameTolerance: 10,
      pyramidAntialias: true,
    },
    augment: {
      translation: 0.25,
      translationOf: "scaledPatch",
      antialias: true,
      scale: [Math.SQRT1_2, Math.SQRT2],
      scaleDraw: "uniform",
      insideImage: true,
      rotationDeg: 20,
      colorBasis: "data/release/color_eigenvectors.json",
      // 2^(z s) with z ~ N(0, 1) clipped to |z| <= 6: these are its bounds.
      pca: [2 ** -6, 2 ** 6],
      // The release lists (1, 1, 0.5) in the order of MATLAB's eig, smallest eigenvalue first: the 0.5 belongs to
      // the largest-variance (luminance-like) component, which this project lists first.
      pcaLog2Std: [0.5, 1, 1],
      pcaClip: 6,
      contrast1DataRange: true,
      stretchBeforeContrast2: true,
      power: [0.25, 4],
      factor: [Math.SQRT1_2, Math.SQRT2],
      add: [-0.1, 0.1],
      hue: [-0.1, 0.1],
    },
    net: { ...CAFFE_LAYERS, pool: { size: 3, stride: 2 }, init: "gaussian", softmaxStd: 0.01, bias: 0.1 },
    train: { ...SGD, schedule: "stages" },
    eval: RELEASE_EVAL,
  },
};

/** A method preset by name, with a one-line error for an unknown name. */
export function method(name: string): Method {
  if (!(METHOD_NAMES as readonly string[]).includes(name)) {
    throw new UserError(`unknown method "${name}" (expected ${METHOD_NAMES.join(" or ")})`);
  }
  return METHODS[name as MethodName];
}

/** Where one number comes from: the paper's words (with their section) and the release's file. */
export interface Source {
  /** The paper's words, with their section (arXiv 1406.6909 v2). */
  paper: string;
  /** The release's file and value. */
  release: string;
}

/**
 * The source of every number in {@link METHODS}, keyed by its path. "(not in the paper)" marks a choice this
 * project made where the paper is silent; the choice is then the same in both presets unless said.
 */
export const SOURCES: Readonly<Record<string, Source>> = {
  "seeds.patch": {
    paper: '§3: "we sample N patches of size 32x32 pixels from different images"',
    release: "make_data/sample_patches_multiscale.m: 32x32 patches",
  },
  "seeds.pyramid": {
    paper: '§3: "at varying positions and scales" (no scales given: the release\'s are used)',
    release: "make_data/sample_patches_multiscale.m: pyramid scales 0.8^{0,1,2,3}",
  },
  "seeds.sampler": {
    paper: '§3: "we sample only from regions containing considerable gradients" (mean squared gradient)',
    release:
      "make_data/sample_patches_multiscale.m, lowpassfilter.m: high-pass energy map (image minus Gaussian low-pass, squared, low-passed)",
  },
  "seeds.perImage": {
    paper: '§3: "from different images"',
    release: "make_data/sample_patches_multiscale.m: one patch per image",
  },
  "seeds.highPassSigma": {
    paper: "(paper preset does not use it)",
    release: "make_data/sample_patches_multiscale.m: Gaussian low-pass sigma 2",
  },
  "seeds.subsample": {
    paper: "(paper preset does not use it)",
    release: "make_data/sample_patches_multiscale.m: energy computed on the image subsampled 4x",
  },
  "seeds.frameTolerance": {
    paper:
      '§3: "patches containing objects or parts of objects" (not in the paper: a flat frame around a photograph is not the picture)',
    release: "(not in the release: it samples the whole image)",
  },
  "augment.translation": {
    paper: '§3: "vertical or horizontal translation by a distance within 0.2 of the patch size"',
    release: "make_data/augment_patches_distr.m: translation within 0.25 of the patch size",
  },
  "augment.scale": {
    paper: '§3: "multiplication of the patch scale by a factor between 0.7 and 1.4"',
    release: "make_data/augment_patches_distr.m: scale in [1/sqrt 2, sqrt 2]",
  },
  "augment.translationOf": {
    paper: '§3: "within 0.2 of the patch size"',
    release:
      "make_data/augment_position_scale_color.m: xc += xc_deform .* patchsize after patchsize ./= scale_deform (the scaled window)",
  },
  "augment.scaleDraw": {
    paper: "§3 gives a range, not a distribution (log-uniform: symmetric for a factor)",
    release: "make_data/augment_position_scale_color.m: rand .* (hi - lo) + lo (uniform)",
  },
  "seeds.pyramidAntialias": {
    paper: "(not in the paper: bilinear)",
    release:
      "make_data/sample_patches_multiscale.m: each seed is imresize(window of the full image, [32 32]), antialiased as MATLAB's imresize is when it shrinks (here: the pyramid level resized so)",
  },
  "augment.antialias": {
    paper: "(not in the paper: one bilinear sample a pixel)",
    release:
      "make_data/get_patches_rotations.m: the rotated window is cut from the full image and imresize'd to 32 x 32, antialiased when it shrinks (here: from the seed's antialiased pyramid level, 2 x 2 samples a pixel where the window is larger than the patch)",
  },
  "augment.insideImage": {
    paper: "(not in the paper: the window reads the seed's surroundings, edges replicated)",
    release:
      "make_data/get_patches_rotations.m: a sample whose rotated window leaves the image is dropped (here: redrawn, so every class keeps K copies)",
  },
  "augment.contrast1DataRange": {
    paper: "(not in the paper: centred on the mean colour, clipped to [0, 1])",
    release:
      "make_data/adjust_color.m: (x - mean - min) / (max - min), projected, scaled, clipped to the batch's range, mean added, clipped to [0, 1]",
  },
  "augment.stretchBeforeContrast2": {
    paper: "(not in the paper: no stretch)",
    release: "make_data/power_transform.m: each patch minus its min, divided by its max, before RGB -> HSV",
  },
  "augment.rotationDeg": {
    paper: '§3: "rotation of the image by an angle up to 20 degrees"',
    release: "make_data/augment_patches_distr.m: angle up to 20 degrees",
  },
  "augment.colorBasis": {
    paper: '§3: "the principal components of the set of all pixels" (here: of the N seed patches\' pixels)',
    release:
      "make_data/adjust_color.m, color_eigenvectors.mat: fixed eigenvectors v of an RGB pixel covariance (pixels projected onto v, scaled, mapped back with inv(v)); data/release/color_eigenvectors.json holds them",
  },
  "augment.pca": {
    paper:
      '§3: "multiply the projection of each patch pixel onto the principal components [...] by a factor between 0.5 and 2"',
    release: "make_data/augment_patches_distr.m: factor 2^(z s), z ~ N(0, 1) (bounds of the clipped draw)",
  },
  "augment.pcaLog2Std": {
    paper: '§3: "factors are independent for each principal component" (log-uniform draw)',
    release:
      "make_data/augment_patches_distr.m: s = (1, 1, 0.5) in eig's ascending order (adjust_color.m), so 0.5 for the largest-variance component",
  },
  "augment.pcaClip": {
    paper: "(paper preset does not use it)",
    release: "(not in the release: |z| <= 6 keeps the factor finite)",
  },
  "augment.power": {
    paper: '§3: "raise saturation and value [...] of all pixels to a power between 0.25 and 4"',
    release: "make_data/augment_patches_distr.m: power 2^(2u), u ~ U(-1, 1)",
  },
  "augment.factor": {
    paper: '§3: "multiply these values by a factor between 0.7 and 1.4"',
    release: "make_data/augment_patches_distr.m: factor 2^(0.5u), u ~ U(-1, 1)",
  },
  "augment.add": {
    paper: '§3: "add to them a value between -0.1 and 0.1"',
    release: "make_data/augment_patches_distr.m: the same",
  },
  "augment.hue": {
    paper: '§3: "add a value between -0.1 and 0.1 to the hue"',
    release: "make_data/augment_patches_distr.m: the same",
  },
  "net.pool": {
    paper: '§5.1: "2x2 max-pooling" after the first two conv layers',
    release: "nets_config/64c5-128c5-256c5-512f/template/train.prototxt: 3x3 max-pooling, stride 2",
  },
  "net.init": {
    paper: "(not in the paper: He-normal)",
    release: "nets_config/64c5-128c5-256c5-512f/template/train.prototxt: Gaussian weight fillers",
  },
  "net.spreads": {
    paper: "(paper preset does not use it)",
    release:
      "nets_config/64c5-128c5-256c5-512f/template/train.prototxt: std 0.05, 0.02, 0.01 (conv1..3), 0.01 (fc), 0.005 (softmax); nets_config/64c5-64c5-128f/template_old_format/train.prototxt: 0.0001, 0.01, 0.005, 0.01; the large network is not in the release: it takes the medium one's",
  },
  "net.softmaxStd": {
    paper: "(not in the paper: 0.01; He-normal for the other layers)",
    release: "(the release preset uses `spreads`)",
  },
  "net.bias": {
    paper: "(not in the paper: 0)",
    release: "nets_config/64c5-128c5-256c5-512f/template/train.prototxt: bias filler 0.1 (softmax 0)",
  },
  "net.decayMult": {
    paper: "(not in the paper: the release's multipliers)",
    release:
      "nets_config/64c5-128c5-256c5-512f/template/train.prototxt: weight_decay 0, 0, 0.25 (conv1..3), 1 (fc), 4 (softmax)",
  },
  "net.lrMult": {
    paper: "(not in the paper: the release's multipliers)",
    release:
      "nets_config/64c5-128c5-256c5-512f/template/train.prototxt: blobs_lr 2 for biases, 0.25 for softmax weights",
  },
  "net.dropout": {
    paper: '§5.1: "dropout [...] applied to the fully connected layers"',
    release: "nets_config/64c5-128c5-256c5-512f/template/train.prototxt: dropout_ratio 0.5",
  },
  "train.batch": {
    paper: '§5.1: "batch size 128"',
    release: "nets_config/64c5-128c5-256c5-512f/result/solver0-4.prototxt: batch 128",
  },
  "train.lr": {
    paper: '§5.1: "starting with a learning rate of 0.01"',
    release: "nets_config/64c5-128c5-256c5-512f/result/solver0-4.prototxt: base_lr 0.01",
  },
  "train.momentum": {
    paper: '§5.1: "momentum 0.9"',
    release: "nets_config/64c5-128c5-256c5-512f/result/solver0-4.prototxt: momentum 0.9",
  },
  "train.weightDecay": {
    paper: "(not in the paper: the release's 0.004)",
    release: "nets_config/64c5-128c5-256c5-512f/result/solver0-4.prototxt: weight_decay 0.004",
  },
  "train.schedule": {
    paper: '§5.1: "gradually decreasing the learning rate [...] when the validation error stops decreasing"',
    release: "nets_config/64c5-128c5-256c5-512f/result/solver0-4.prototxt: fixed stages",
  },
  "train.divideBy": {
    paper: "§5.1: the rate is divided by 3",
    release: "(the release uses fixed stages)",
  },
  "train.patience": {
    paper: "(not in the paper: 3 validations without improvement)",
    release: "(the release uses fixed stages)",
  },
  "train.stages": {
    paper: "(paper preset does not use it)",
    release:
      "nets_config/64c5-128c5-256c5-512f/result/solver0-4.prototxt: lr 0.01 / 0.004 / 0.001 / 0.0004 / 0.0001 for 1.2 M / 120 k / 120 k / 60 k / 60 k iterations",
  },
  "eval.input": {
    paper:
      "§5.1: responses pooled over the four quadrants (STL-10, CIFAR-10) or a 3-level spatial pyramid (Caltech); images at 96 (STL-10), CIFAR-10 upsampled to 64, Caltech-101 150, Caltech-256 256",
    release: "testing/run_net_on_*_matcaffe_distr.m, make_features_from_maps_f1.m: the same sizes and poolings",
  },
  "eval.blockQuantile": {
    paper: "(not in the paper: the release's per-layer scaling)",
    release: "testing/make_features_from_maps_f1.m: each layer divided by its 99.99th percentile",
  },
  "eval.levelWeights": {
    paper: "(not in the paper: levels alike)",
    release: "testing/make_features_from_maps_f1.m: each level times pool size / largest pool size: 1, 1/2, 1/4",
  },
  "eval.svmBias": {
    paper: "(not in the paper: 1)",
    release:
      "testing/run_net_on_STL_matcaffe_distr.m: B = 5; run_net_on_CIFAR_matcaffe_distr.m, run_net_on_Caltech_matcaffe_distr.m: B = 1",
  },
  "eval.cSearch": {
    paper: '§5.1: C "chosen by cross-validation" (a grid)',
    release: 'testing/svm_params_search.m: "logrand": C = exp(uniform(log lo, log hi)), the best of the draws',
  },
  "eval.cGrid": {
    paper: "(not in the paper: 0.001 ... 10 in steps of about 3)",
    release: "(the release preset draws C at random)",
  },
  "eval.cRandom": {
    paper: "(paper preset does not use it)",
    release:
      "testing/run_net_on_STL_matcaffe_distr.m: [2e-4, 2e-1], 50 draws; run_net_on_CIFAR_matcaffe_distr.m: [1e-3, 1], 50 (reduced) and 30 (full); run_net_on_Caltech_matcaffe_distr.m: [2e-3, 1], 30",
  },
  "eval.cValidation": {
    paper:
      "(the paper says only that C is validated: 5-fold cross-validation on the first run's training images, where a held-out part would be a few images per class)",
    release:
      "testing/run_net_on_*_matcaffe_distr.m: STL-10 fold 1 against the rest; CIFAR-10(400) and Caltech split 1 against split 2's images not in split 1; CIFAR-10 2-fold cross-validation (-v 2)",
  },
  "eval.cFolds": {
    paper: "(not in the paper: 5 folds, each a fifth of every class's training images)",
    release: "testing/run_net_on_CIFAR_matcaffe_distr.m: liblinear's -v 2 on CIFAR-10",
  },
  "eval.std": {
    paper: '§5.2: "mean and standard deviation" (sample standard deviation)',
    release: "testing/run_STL_folds.m, run_net_on_Caltech_matcaffe_distr.m: sqrt(mean((a - mean(a))^2)) (population)",
  },
  "eval.runs": {
    paper: '§5.2: "mean and standard deviation over 10 [folds/splits]"',
    release: "testing/run_net_on_CIFAR_matcaffe_distr.m, run_net_on_Caltech_matcaffe_distr.m: 10 splits",
  },
  "eval.cifarPerClass": {
    paper: '§5.1: "CIFAR-10(400) [...] 400 training images per class"',
    release: "testing/all_cifar_splits.mat: 400 per class",
  },
  "eval.caltechTrain": {
    paper: '§5.1: "30 training images per class"',
    release: "testing/caltech101_no_back_splits.mat: 30 per class",
  },
  "eval.caltechTestMax": {
    paper: "§5.1: the rest of the images (at most 50 per class) for testing",
    release: "testing/caltech101_no_back_splits.mat",
  },
  "eval.fixedSplits": {
    paper: "§5.1: random subsets (CIFAR-10(400)) and random splits (Caltech-101), not listed: this project draws them",
    release:
      "testing/all_cifar_splits.mat (10 x 4,000 training images), testing/caltech101_no_back_splits.mat (10 x 3,030 training and 10 x 2,945 test images), read by run_net_on_CIFAR_matcaffe_distr.m and run_net_on_Caltech_matcaffe_distr.m; data/release/*.json hold them",
  },
};

/** The paths of every number of a method preset (`augment.translation`, ...), for {@link SOURCES}. */
export function numberPaths(m: Method = METHODS.paper): string[] {
  const out: string[] = [];
  for (const [group, numbers] of Object.entries(m)) {
    if (typeof numbers !== "object") continue;
    for (const key of Object.keys(numbers)) out.push(`${group}.${key}`);
  }
  return out;
}

/**
 * How a time budget trains (`--minutes`, the `laptop` scale; lib/budget.ts), unless `--schedule` or `--lr` say
 * otherwise: a budget of an hour or less on a CPU never reaches the plateau where the paper's schedule lowers its rate,
 * so it starts higher and ends decayed (`anneal`: held for four fifths of the steps, then down to a hundredth). Chosen
 * by runs on real photographs that docs/results.md ("Time budgets") lists, with their figures.
 */
export const BUDGET_TRAINING: { schedule: "anneal"; lr: number } = { schedule: "anneal", lr: 0.03 };

/** A run scale: how much of the method one run does. */
export interface RunScale {
  /** What it is for, in a sentence. */
  about: string;
  /** The method preset it runs. */
  method: MethodName;
  /** Data spec (omitted: the user must give real data). */
  data?: string;
  /** The network. */
  net: string;
  /** N: surrogate classes. */
  classes: number;
  /** K: transformed copies per class, or `inf` (fresh copies every epoch). */
  perClass: number | "inf";
  /** SGD steps. */
  steps: number;
  /** Batch size (default: the method's). */
  batch?: number;
  /** Validate every this many steps. */
  validEvery: number;
  /** Plateau patience (validations without improvement). */
  patience?: number;
  /** A time budget in minutes: steps and N are planned from a measured warm-up (lib/budget.ts). */
  minutes?: number;
}

/** The run scales of `deno task reproduce --scale`. */
export type ScaleName = "default" | "tiny" | "laptop" | "paper" | "release";
/** The run scales, `default` first. */
export const SCALE_NAMES: readonly ScaleName[] = ["default", "tiny", "laptop", "paper", "release"];

/** The run scales. */
export const RUN_SCALES: Readonly<Record<ScaleName, RunScale>> = {
  default: {
    about: "the embedded synthetic data: minutes on two CPU cores",
    method: "paper",
    data: "synthetic",
    net: "64c5-64c5-128f",
    classes: 400,
    perClass: 100,
    steps: 560,
    validEvery: 100,
  },
  tiny: {
    about: "a seconds-long smoke run (tests, notebooks)",
    method: "paper",
    data: "synthetic:unlabeled=200,train=200,test=100,fold=100",
    net: "16c5-16c5-32f",
    classes: 40,
    perClass: 10,
    steps: 30,
    batch: 32,
    validEvery: 10,
  },
  laptop: {
    about: "real photographs on a laptop: an hour's budget on the machine's CPU (steps and N planned for it)",
    method: "paper",
    net: "64c5-64c5-128f",
    // (Planned for the budget: these two are replaced by the plan.)
    classes: 1000,
    steps: 1,
    perClass: "inf",
    validEvery: 500,
    minutes: 60,
  },
  paper: {
    about: "the paper's scale: N = 16000, K unlimited, up to 1.56 M steps (real data, a GPU)",
    method: "paper",
    net: "64c5-128c5-256c5-512f",
    classes: 16000,
    perClass: "inf",
    steps: 1_560_000,
    validEvery: 5000,
    patience: 4,
  },
  release: {
    about: "the release's scale: N = 16000, K = 150, its fixed stages over 1.56 M steps (real data, a GPU)",
    method: "release",
    net: "64c5-128c5-256c5-512f",
    classes: 16000,
    perClass: 150,
    steps: 1_560_000,
    validEvery: 5000,
  },
};
