/**
 * The pretraining flags that `deno task pretrain` and `deno task reproduce` share, and how they become a
 * {@link TrainConfig}; a training row as the progress line shows it.
 *
 * @module
 */
import { intFlag } from "./util/cli.ts";
import { UserError } from "./util/errors.ts";
import { METHOD_NAMES, type MethodName, METHODS } from "./presets.ts";
import type { MetricsRow } from "./run_folder.ts";
import { TRAIN_DEFAULTS, type TrainConfig } from "./train.ts";

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
  schedule: {
    type: "string",
    help: "plateau (the paper), stages (the release), anneal or cosine (budgets); default: the method's",
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

/** Builds a training config from flags over defaults. */
export function trainConfigFromFlags(
  v: Record<string, string | boolean | undefined>,
  defaults: Partial<TrainConfig> = {},
): TrainConfig {
  const s = (k: string) => v[k] as string | undefined;
  const perClassRaw = s("per-class");
  const perClass = perClassRaw === undefined
    ? defaults.perClass ?? 100
    : perClassRaw === "inf"
    ? "inf"
    : intFlag("per-class", perClassRaw, 100, 1);
  const methodName = s("method") ?? defaults.method ?? "paper";
  if (!(METHOD_NAMES as readonly string[]).includes(methodName)) {
    throw new UserError(`--method ${methodName}: expected ${METHOD_NAMES.join(" or ")}`);
  }
  const m = METHODS[methodName as MethodName];
  const lrRaw = s("lr");
  const lr = lrRaw === undefined ? defaults.lr ?? TRAIN_DEFAULTS.lr : Number(lrRaw);
  if (!(lr > 0 && Number.isFinite(lr))) throw new UserError(`--lr ${lrRaw}: expected a positive number`);
  return {
    ...TRAIN_DEFAULTS,
    ...defaults,
    data: s("data") ?? defaults.data ?? "synthetic",
    net: s("net") ?? defaults.net ?? "64c5-64c5-128f",
    classes: intFlag("classes", s("classes"), defaults.classes ?? 1000, 0),
    perClass,
    steps: intFlag("steps", s("steps"), defaults.steps ?? 1000, 0),
    batch: intFlag("batch", s("batch"), defaults.batch ?? TRAIN_DEFAULTS.batch, 0),
    method: m.name,
    schedule: (s("schedule") ?? defaults.schedule ?? m.train.schedule) as TrainConfig["schedule"],
    lr,
    validEvery: intFlag("valid-every", s("valid-every"), defaults.validEvery ?? TRAIN_DEFAULTS.validEvery, 1),
    seed: intFlag("seed", s("seed"), defaults.seed ?? 0, 0),
    workers: intFlag("workers", s("workers"), defaults.workers ?? TRAIN_DEFAULTS.workers, 1, 256),
    // Steps given by hand end a saved run's time budget: no re-plan changes them.
    budget: s("steps") === undefined ? defaults.budget : undefined,
  };
}
