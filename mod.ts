/**
 * Exemplar-CNN in TypeScript: the public API.
 *
 * A companion to Dosovitskiy et al., "Discriminative Unsupervised Feature
 * Learning with Exemplar Convolutional Neural Networks" (NIPS 2014, TPAMI
 * 2016). Each module of `lib/` implements one stage of the paper; notebooks
 * and tasks import them from here.
 *
 * @example
 * ```ts
 * import { openDataset } from "./mod.ts";
 * const ds = await openDataset("synthetic");
 * console.log(ds.classNames, ds.splits.train.length);
 * ```
 *
 * @module
 */
export * from "./lib/data/mod.ts";
export * from "./lib/data/download.ts";
export * from "./lib/util/image.ts";
export * from "./lib/util/viz.ts";
export * from "./lib/util/rng.ts";
export * from "./lib/util/errors.ts";
export * from "./lib/seeds.ts";
export * from "./lib/augment.ts";
export * from "./lib/surrogate.ts";
export * from "./lib/compute/backend.ts";
export * from "./lib/compute/blas.ts";
export * from "./lib/nets.ts";
export * from "./lib/train.ts";
export * from "./lib/checkpoint.ts";
export * from "./lib/compute/engine.ts";
export * from "./lib/features.ts";
export * from "./lib/svm.ts";
export * from "./lib/protocols.ts";
export * from "./lib/evaluate.ts";
export * from "./lib/table1.ts";
