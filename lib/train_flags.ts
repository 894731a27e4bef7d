/**
 * The pretraining flags that `deno task pretrain` and `deno task reproduce` share (lib/config.ts
 * `resolveTrainConfig` turns them into a run's configuration), and a training row as the progress line shows it.
 *
 * @module
 */
import type { MetricsRow } from "./run_folder.ts";
import { SCHEDULE_NAMES } from "./config.ts";
import { SCALE_NAMES } from "./presets.ts";
import { TRANSFORMS } from "./augment.ts";

/** Flags of pretraining, shared by the tasks that pretrain. */
export const TRAIN_FLAGS = {
  data: {
    type: "string",
    help: `unlabeled images to draw seeds from (default: synthetic; ${"stl10:DIR, folder:DIR, ..."})`,
  },
  net: {
    type: "string",
    help: "the network: small, medium, large or a name like 64c5-64c5-128f (default: the scale's)",
  },
  classes: { type: "string", help: "N, surrogate classes (seed patches)" },
  "per-class": { type: "string", help: "K, transformed copies per class, or inf for fresh copies every epoch" },
  steps: { type: "string", help: "SGD steps" },
  batch: { type: "string", help: "samples per step (default 128)" },
  backend: { type: "string", help: "wasm, webgpu, cpu, tensorflow, tensorflow-gpu (default: the first that works)" },
  method: { type: "string", help: "method preset: paper (the text, default) or release (the authors' code)" },
  transforms: {
    type: "string",
    help: `the transformations that make the surrogate classes, some of ${
      TRANSFORMS.join(",")
    }, or all (default) or none`,
  },
  schedule: {
    type: "string",
    help: `${
      SCHEDULE_NAMES.join(", ")
    }: plateau is the paper's, stages the release's, anneal or cosine a budget's (default: the method's)`,
  },
  scale: {
    type: "string",
    help: `run scale, the settings under the flags: ${SCALE_NAMES.join(", ")} (lib/presets.ts RUN_SCALES)`,
  },
  config: {
    type: "string",
    help: "a run's config.json: its settings under the flags, instead of the scale's",
  },
  minutes: {
    type: "string",
    help: "a time budget: plan the steps and N that fit M minutes (measured warm-up; overrides --steps)",
  },
  lr: { type: "string", help: "initial learning rate (default 0.01)" },
  "valid-every": { type: "string", help: "validate on held-out copies every this many steps" },
  seed: { type: "string", help: "run seed: seeds, transformations, weights and dropout follow from it (default 0)" },
  workers: { type: "string", help: "workers generating surrogate batches (default 2)" },
} as const;

/** One training row as a progress-bar text. */
export function rowSummary(r: MetricsRow): string {
  return `step ${r.step} loss ${r.loss.toFixed(3)} acc ${(100 * r.accuracy).toFixed(1)}%${
    r.val_accuracy !== undefined ? ` val ${(100 * r.val_accuracy).toFixed(1)}%` : ""
  } lr ${r.lr.toPrecision(2)} ${r.samples_per_s.toFixed(0)} samples/s`;
}
