/**
 * Exemplar-CNN in TypeScript: the public API, in the order data flows through the paper's method.
 *
 * A companion to Dosovitskiy et al., "Discriminative Unsupervised Feature
 * Learning with Exemplar Convolutional Neural Networks" (arXiv 1406.6909 v2,
 * TPAMI 2016; NIPS 2014). Notebooks and a user's own scripts import from here;
 * the compute machinery (backends, kernels, engines) stays behind
 * {@link selectBackend} and {@link pretrain}.
 *
 * @example Open the embedded data and look at it
 * ```ts
 * import { openDataset } from "./mod.ts";
 * const ds = await openDataset("synthetic");
 * console.log(ds.classNames, ds.splits.train.length);
 * ```
 *
 * @example The whole method at the smallest scale
 * ```ts
 * import { evaluateRun, pretrain, scaleConfig } from "./mod.ts";
 * const out = await Deno.makeTempDir();
 * await pretrain(scaleConfig("tiny"), { out });
 * const results = await evaluateRun(out);
 * console.log(results.learned.mean, results.random?.mean, results.raw?.mean);
 * ```
 *
 * @module
 */

// Every number of the method (paper and release presets) and the run scales.
export {
  type AugmentNumbers,
  BUDGET_TRAINING,
  type EvalNumbers,
  type Method,
  method,
  METHOD_NAMES,
  type MethodName,
  METHODS,
  type NetNumbers,
  type ReleaseFile,
  releaseFile,
  RUN_SCALES,
  type RunScale,
  SCALE_NAMES,
  type ScaleName,
  type SeedNumbers,
  type Source,
  SOURCES,
  type TrainNumbers,
} from "./lib/presets.ts";

// Data: the official formats, folders of photographs and the embedded synthetic set.
export { DATA_SPECS, inspectDataset, openDataset } from "./lib/data/mod.ts";
export { type Dataset, pretrainingSplit, type Skipped, type Split } from "./lib/data/dataset.ts";

// 1. Seed patches (paper §3).
export {
  CONTEXT,
  gradientEnergy,
  grayscale,
  PATCH,
  type SeedOptions,
  type SeedOrigin,
  seedPatch,
  seedPatches,
  type Seeds,
  windowMeans,
} from "./lib/seeds.ts";

// 2. Transformations and surrogate classes (paper §3).
export {
  type ColorPCA,
  colorPCA,
  drawParams,
  identityParams,
  type PatchScratch,
  patchScratch,
  patchToImage,
  type ReleaseColour,
  sweepParams,
  type TransformName,
  type TransformParams,
  transformPatch,
  TRANSFORMS,
} from "./lib/augment.ts";
export { type Batch, SurrogateData, type SurrogateOptions, type SurrogateStats } from "./lib/surrogate.ts";

// 3. Networks and pretraining (paper §4 and §5.1).
export {
  type BackendInfo,
  type BackendName,
  BACKENDS,
  selectBackend,
  type SelectOptions,
} from "./lib/compute/backend.ts";
export {
  ExemplarNet,
  type LayerSpec,
  layerWalk,
  type NetLayer,
  netSummary,
  PAPER_NETS,
  type SummaryRow,
} from "./lib/nets.ts";
export { type ParamSlot, type SgdHyper, sgdUpdate } from "./lib/compute/sgd.ts";
export { pretrain, type PretrainOptions, type TrainResult } from "./lib/train.ts";
export {
  type BudgetPlan,
  type ConfigBase,
  type Replan,
  type ResolvedConfig,
  resolveTrainConfig,
  scaleConfig,
  SCHEDULE_NAMES,
  type ScheduleName,
  TRAIN_DEFAULTS,
  type TrainConfig,
  transformsLabel,
  validateConfig,
} from "./lib/config.ts";
export { loadTrainedNet, type MetricsRow, readMetrics } from "./lib/run_folder.ts";
export { budgetClasses } from "./lib/budget.ts";

// 4. Features, the linear SVM and the evaluation protocols (paper §5.1).
export {
  extractFeatures,
  type ExtractOptions,
  type FeatureBlock,
  featureLayout,
  type Pooling,
  type ResponseMap,
  responseMaps,
} from "./lib/features.ts";
export {
  type CChoice,
  type DualProblem,
  type Features,
  type LinearSVM,
  predictSVM,
  type SVMForm,
  type SVMOptions,
  SVMWorkers,
  trainSVM,
  type WorkerProblem,
} from "./lib/svm.ts";
export { KNN_DEFAULTS, type KnnOptions, knnPredict } from "./lib/knn.ts";
export { type Blas, type Linalg, openBlas } from "./lib/compute/blas.ts";
export {
  type FeatureFn,
  PROTOCOL_INPUT,
  type ProtocolName,
  type ProtocolOptions,
  type ProtocolPlan,
  type ProtocolResult,
  PROTOCOLS,
  runProtocol,
} from "./lib/protocols.ts";
export { type EvaluateOptions, evaluateRun, type EvaluationResults, type Scale } from "./lib/evaluate.ts";

// 5. Table 1 (paper §5.2): the paper's numbers beside the measured ones.
export { loadTable1, type Table1Data, table1Figure, table1Markdown, writeTable1 } from "./lib/table1.ts";

// 6. The paper's experiments (§5): sweeps over N, K, the transformations or the network; invariance.
export {
  DEFAULT_VALUES,
  type ExperimentOptions,
  type ExperimentResult,
  runExperiment,
  type SweepEvaluation,
  sweepFigure,
  type SweepFile,
  sweepMarkdown,
  type SweepPoint,
  type SweepPointRecord,
  sweepPoints,
  VARIES,
  type Vary,
} from "./lib/experiment.ts";
export {
  type InvarianceCurve,
  invarianceFigure,
  type InvarianceOptions,
  type InvarianceResult,
  type InvarianceTransform,
  type Magnitudes,
  magnitudes,
  measureInvariance,
  writeInvariance,
} from "./lib/invariance.ts";

// Pictures and charts, in Jupyter and out.
export { drawRect, heatmap, imageGrid, type RGBImage } from "./lib/util/image.ts";
export {
  type Displayable,
  type MimeBundle,
  type PlotlyFigure,
  showImage,
  showMarkdown,
  showPlotly,
} from "./lib/util/viz.ts";
export { Rng } from "./lib/util/rng.ts";
export { UserError } from "./lib/util/errors.ts";
