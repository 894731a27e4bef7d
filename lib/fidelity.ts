/**
 * The side-by-side table of the method (FIDELITY.md): for every number of both
 * method presets, the paper's words and section, the release's file and
 * value, this project's value in each preset, where the code uses it and the
 * test that checks it. The values come from {@link METHODS} and the words from
 * {@link SOURCES}, so the table is made from the code; a test compares the
 * committed FIDELITY.md with {@link fidelityMarkdown} and fails when they
 * differ (`deno task fidelity` writes it again).
 *
 * @module
 */
import { METHODS, numberPaths, SOURCES } from "./presets.ts";

/** Where the code uses a number, and the test (file and name) that checks it. */
export interface Implementation {
  code: string;
  test: string;
}

const SEEDS = "lib/seeds.ts seedPatches";
const AUG = "lib/augment.ts drawParams";
const NET = "lib/nets.ts ExemplarNet";
const PRO = "lib/protocols.ts runProtocol";
const ranges = "tests/augment_test.ts: every drawn parameter lies inside its preset's range";
const seedsTest = "tests/seeds_test.ts: paper seeds come from where the gradients are";
const releaseSeeds = "tests/seeds_test.ts: release seeds: one per image, also from the textured quadrant";
const init = "tests/nets_test.ts: release initialisation: per-layer standard deviations and biases";
const spreads =
  "tests/nets_test.ts: release initialisation: each released network's own weight spreads (small differs from medium)";
const sgd = "tests/engine_test.ts: sgdUpdate: Caffe's SGD with each slot's learning-rate and decay multipliers";
const releaseEval =
  "tests/protocols_test.ts: release evaluation: random log-uniform C in the protocol's range, validated as the release does";
const protocols = "tests/protocols_test.ts: CIFAR-10(400) and STL-10 protocols on generated files";
const kFold =
  "tests/protocols_test.ts: the paper method validates C by 5-fold cross-validation on the first run's training images";

/** Where each number is used and checked, by its path in {@link METHODS}. */
export const IMPLEMENTATIONS: Readonly<Record<string, Implementation>> = {
  "seeds.patch": { code: "lib/patch.ts PATCH", test: seedsTest },
  "seeds.pyramid": { code: "lib/seeds.ts paperCandidates, releaseCandidates", test: seedsTest },
  "seeds.sampler": { code: SEEDS, test: seedsTest },
  "seeds.perImage": { code: SEEDS, test: releaseSeeds },
  "seeds.highPassSigma": { code: "lib/seeds.ts releaseCandidates", test: releaseSeeds },
  "seeds.subsample": { code: "lib/seeds.ts releaseCandidates", test: releaseSeeds },
  "seeds.frameTolerance": {
    code: "lib/seeds.ts frameBox, withoutFrame",
    test: "tests/seeds_test.ts: a flat frame around a photograph is not the picture: seeds are cut inside it",
  },
  "seeds.pyramidAntialias": {
    code: "lib/seeds.ts paperCandidates, releaseCandidates",
    test: "tests/seeds_test.ts: release pyramid levels are resized with antialiasing, the paper preset's bilinear",
  },
  "augment.translation": { code: AUG, test: ranges },
  "augment.translationOf": { code: AUG, test: ranges },
  "augment.scale": { code: AUG, test: ranges },
  "augment.scaleDraw": { code: AUG, test: ranges },
  "augment.insideImage": {
    code: "lib/surrogate.ts SurrogateData.params, windowInside",
    test:
      "tests/surrogate_test.ts: release: every sample's window stays inside its seed's image (redrawn where the first draw leaves it)",
  },
  "augment.antialias": {
    code: "lib/augment.ts transformPatch, releaseSample",
    test: "tests/surrogate_test.ts: release geometry: a window larger than the patch is averaged down, not aliased",
  },
  "augment.rotationDeg": { code: AUG, test: ranges },
  "augment.colorBasis": {
    code: "lib/augment.ts contrast1Basis, releaseEigenvectors; lib/surrogate.ts SurrogateData",
    test:
      "tests/release_data_test.ts: release contrast1: the release's colour eigenvectors, not the principal components of the seeds",
  },
  "augment.pca": { code: AUG, test: ranges },
  "augment.pcaLog2Std": {
    code: AUG,
    test:
      "tests/augment_test.ts: release contrast1: log2 factors spread 0.5 on the largest-variance component, 1 on the others",
  },
  "augment.pcaClip": { code: AUG, test: ranges },
  "augment.contrast1DataRange": {
    code: "lib/augment.ts releaseColour, transformPatch",
    test:
      "tests/surrogate_test.ts: release colour: statistics of the data, and each patch stretched to [0, 1] before contrast2",
  },
  "augment.stretchBeforeContrast2": {
    code: "lib/augment.ts transformPatch",
    test:
      "tests/surrogate_test.ts: release colour: statistics of the data, and each patch stretched to [0, 1] before contrast2",
  },
  "augment.power": { code: AUG, test: ranges },
  "augment.factor": { code: AUG, test: ranges },
  "augment.add": { code: AUG, test: ranges },
  "augment.hue": { code: AUG, test: "tests/augment_test.ts: color: the hue wraps around" },
  "net.pool": {
    code: "lib/nets.ts ExemplarNet.pool",
    test: "tests/nets_test.ts: network summary: shapes 32 -> 16 -> 8 in both variants, parameter counts",
  },
  "net.init": { code: NET, test: init },
  "net.spreads": { code: NET, test: spreads },
  "net.softmaxStd": { code: NET, test: init },
  "net.bias": { code: NET, test: init },
  "net.decayMult": { code: NET, test: sgd },
  "net.lrMult": { code: NET, test: sgd },
  "net.dropout": {
    code: "lib/nets.ts ExemplarNet.forward",
    test:
      "tests/train_test.ts: pretraining learns the surrogate task, and a resumed run repeats the uninterrupted run's numbers",
  },
  "train.batch": { code: "lib/config.ts TRAIN_DEFAULTS", test: sgd },
  "train.lr": { code: "lib/config.ts TRAIN_DEFAULTS", test: sgd },
  "train.momentum": { code: "lib/config.ts TRAIN_DEFAULTS", test: sgd },
  "train.weightDecay": { code: "lib/config.ts TRAIN_DEFAULTS", test: sgd },
  "train.schedule": {
    code: "lib/config.ts resolveTrainConfig",
    test: "tests/train_test.ts: the release schedule: fixed stages scaled to the run's length",
  },
  "train.divideBy": {
    code: "lib/schedule.ts plateauStep",
    test:
      "tests/train_test.ts: pretraining learns the surrogate task, and a resumed run repeats the uninterrupted run's numbers",
  },
  "train.patience": {
    code: "lib/schedule.ts plateauStep",
    test:
      "tests/train_test.ts: pretraining learns the surrogate task, and a resumed run repeats the uninterrupted run's numbers",
  },
  "train.stages": {
    code: "lib/schedule.ts stageRate",
    test: "tests/train_test.ts: the release schedule: fixed stages scaled to the run's length",
  },
  "eval.input": {
    code: "lib/protocols.ts PROTOCOL_INPUT; lib/features.ts extractFeatures",
    test: "tests/features_test.ts: feature sizes: 4 x (sum of channels) with quadrants; 21 x with the pyramid",
  },
  "eval.levelWeights": {
    code: "lib/features.ts poolMap",
    test: "tests/features_test.ts: pyramid levels weighted 1, 1/2, 1/4 (the release) multiply each level's cells",
  },
  "eval.blockQuantile": { code: "lib/features.ts blockScales", test: protocols },
  "eval.svmBias": {
    code: PRO,
    test: "tests/svm_test.ts: SVM: the bias term matters when classes are offset from the origin",
  },
  "eval.cSearch": { code: PRO, test: releaseEval },
  "eval.cGrid": { code: PRO, test: releaseEval },
  "eval.cRandom": { code: PRO, test: releaseEval },
  "eval.cValidation": { code: "lib/protocols.ts protocolPlan", test: releaseEval },
  "eval.cFolds": { code: "lib/protocols.ts kFoldValidation", test: kFold },
  "eval.std": { code: PRO, test: releaseEval },
  "eval.runs": { code: "lib/protocols.ts protocolPlan", test: protocols },
  "eval.cifarPerClass": { code: "lib/protocols.ts protocolPlan", test: protocols },
  "eval.caltechTrain": {
    code: "lib/protocols.ts protocolPlan",
    test:
      "tests/protocols_test.ts: Caltech-101 protocol on real photographs: 30 training images per class, mean per-class accuracy",
  },
  "eval.caltechTestMax": {
    code: "lib/protocols.ts protocolPlan",
    test:
      "tests/protocols_test.ts: Caltech-101 protocol on real photographs: 30 training images per class, mean per-class accuracy",
  },
  "eval.fixedSplits": {
    code: "lib/protocols.ts protocolPlan, releaseSplitsPlan",
    test:
      "tests/release_data_test.ts: release Caltech-101 splits: 30 training and min(50, rest) test images of each class on Caltech-101's layout; another layout is refused",
  },
};

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
const value = (v: unknown) => "`" + JSON.stringify(v).replace(/\|/g, "\\|") + "`";

/** FIDELITY.md, made from the presets: one row per number of the method. */
export function fidelityMarkdown(): string {
  const lines = [
    "# Exemplar-CNN, step by step: the paper, the authors' release and this project",
    "",
    "Made from `lib/presets.ts` and `lib/fidelity.ts` by `deno task fidelity`; a test fails when this file and the",
    "code disagree. Sections are those of arXiv:1406.6909 v2. Release files are in the authors' MATLAB/Caffe code",
    "(public mirror `ethanhe42/Exemplar-CNN`: `code/make_data`, `code/training`, `code/testing`, `data/nets_config`).",
    "",
    "| number | the paper | the release | `paper` preset | `release` preset | code | test |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const path of numberPaths()) {
    const [group, key] = path.split(".");
    const get = (m: "paper" | "release") =>
      (METHODS[m] as unknown as Record<string, Record<string, unknown>>)[group][key];
    const src = SOURCES[path], impl = IMPLEMENTATIONS[path];
    lines.push(
      `| \`${path}\` | ${cell(src.paper)} | ${cell(src.release)} | ${value(get("paper"))} | ${
        value(get("release"))
      } | ${cell(impl.code)} | ${cell(impl.test)} |`,
    );
  }
  return lines.join("\n") + "\n";
}
