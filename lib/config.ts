/**
 * One pretraining run's configuration, in one place: what a run is ({@link TrainConfig}), its defaults, the run
 * scales as settings, the checks every setting passes before any work starts ({@link validateConfig}), and where a
 * run's settings come from ({@link resolveTrainConfig}): the flags over a saved run's config.json over the run scale.
 *
 * @module
 */
import {
  BUDGET_TRAINING,
  method as methodNamed,
  type MethodName,
  METHODS,
  RUN_SCALES,
  type RunScale,
  SCALE_NAMES,
  type ScaleName,
} from "./presets.ts";
import { UserError } from "./util/errors.ts";
import { decimal } from "./util/cli.ts";
import { checkNetFits, trainingMemory } from "./nets.ts";
import type { BackendInfo } from "./compute/backend.ts";
import { type TransformName, TRANSFORMS } from "./augment.ts";

/** The learning-rate schedules: `plateau` (the paper), `stages` (the release), `anneal` and `cosine` (time budgets). */
export const SCHEDULE_NAMES = ["plateau", "stages", "anneal", "cosine"] as const;

/** A learning-rate schedule's name. */
export type ScheduleName = typeof SCHEDULE_NAMES[number];

/** A time budget and the plans made for it (lib/budget.ts). */
export interface BudgetPlan {
  /** The budget. */
  minutes: number;
  /** Training samples per second measured in the warm-up. */
  samplesPerSecond: number;
  /** The share of the time left for training steps (validation and checkpoints take the rest). */
  efficiency: number;
  /** The steps that fit. */
  steps: number;
  /** N, chosen for that many samples (or the user's). */
  classes: number;
  /** The plan made again from the run's own speed, once the run has measured it. */
  replan?: Replan;
  /** The plan made a second time, at half the steps, from the speed since the first re-plan. */
  second?: Replan;
}

/** A budget planned again from the speed the run itself reaches. */
export interface Replan {
  /** The step at which it was made: the steps before it followed the previous plan. */
  step: number;
  /** Training samples per second the run reached (validation included), up to `step`. */
  samplesPerSecond: number;
  /** The steps that fit the budget at that speed. */
  steps: number;
  /** Seconds into the run when it was made (the next re-plan measures its speed from there). */
  elapsedS?: number;
}

/** Everything that defines a pretraining run. */
export interface TrainConfig {
  /** Data spec of the unlabeled images (`synthetic`, `stl10:DIR`, ...). */
  data: string;
  /** The network (`64c5-64c5-128f`, or small, medium, large). */
  net: string;
  /** N: surrogate classes (seed patches). */
  classes: number;
  /** K: copies per class, or "inf". */
  perClass: number | "inf";
  /** SGD steps. */
  steps: number;
  /** Samples per step. */
  batch: number;
  /** Method preset (`paper` or `release`, lib/presets.ts): seed sampling, transformation ranges, network and schedule. */
  method: MethodName;
  /**
   * The transformations that make the surrogate classes (lib/augment.ts `TRANSFORMS`, in that order): all six by
   * default; the paper's ablation leaves some out (§5). A run's config.json without it was made with all six.
   */
  transforms: TransformName[];
  /** Learning-rate schedule: `plateau` (the paper), `stages` (the release), `anneal` or `cosine` (a time budget's). */
  schedule: ScheduleName;
  /** The time budget this run was planned for (lib/budget.ts), if any. */
  budget?: BudgetPlan;
  /** Initial learning rate. */
  lr: number;
  /** SGD momentum. */
  momentum: number;
  /** L2 weight decay. */
  weightDecay: number;
  /** Run seed: seeds, transformations, initial weights and dropout follow from it. */
  seed: number;
  /** Validate every this many steps (and log a validation row). */
  validEvery: number;
  /** Plateau schedule: validations without improvement before the rate is divided by 3. */
  patience: number;
  /** Log a training row every this many steps. */
  logEvery: number;
  /** Held-out copies per class used for validation (at most 4096 samples are used). */
  validationCopies: number;
  /** Workers generating surrogate batches. */
  workers: number;
  /**
   * Gradient workers on the wasm backend (data parallelism, lib/compute/engine.ts);
   * 1 computes in the training thread. Other backends always use 1.
   */
  parallel: number;
}

/** Defaults of a run: the paper preset's numbers (lib/presets.ts) and this project's choices of bookkeeping. */
export const TRAIN_DEFAULTS: Omit<TrainConfig, "data" | "net" | "classes" | "perClass" | "steps"> = {
  batch: METHODS.paper.train.batch,
  method: "paper",
  transforms: [...TRANSFORMS],
  schedule: METHODS.paper.train.schedule,
  lr: METHODS.paper.train.lr,
  momentum: METHODS.paper.train.momentum,
  weightDecay: METHODS.paper.train.weightDecay,
  seed: 0,
  validEvery: 200,
  patience: METHODS.paper.train.patience,
  logEvery: 10,
  validationCopies: 1,
  workers: 2,
  parallel: 2,
};

/** A run scale (lib/presets.ts) as training settings; flags or a caller's own settings go over them. */
export function scaleSettings(scale: RunScale): Partial<TrainConfig> {
  const { method, data, net, classes, perClass, steps, batch, validEvery, patience } = scale;
  const cfg: Partial<TrainConfig> = { method, net, classes, perClass, steps, validEvery };
  if (data !== undefined) cfg.data = data;
  if (batch !== undefined) cfg.batch = batch;
  if (patience !== undefined) cfg.patience = patience;
  cfg.schedule = METHODS[method].train.schedule;
  return cfg;
}

/** The whole training config of a run scale that names its data (`default`, `tiny`). */
export function scaleConfig(name: ScaleName): TrainConfig {
  const scale = RUN_SCALES[name];
  if (scale.data === undefined) throw new UserError(`the ${name} scale needs real data: give its data spec`);
  return { ...TRAIN_DEFAULTS, ...scaleSettings(scale) } as TrainConfig;
}

/** The largest N, K, batch, steps and seed a run accepts (far beyond the paper's; they keep arithmetic exact). */
export const LIMITS = { classes: 1_000_000, perClass: 1_000_000, batch: 1_000_000, steps: 1e9, seed: 2 ** 31 - 1 };

/** A setting that must be an integer in [min, max]: a {@link UserError} naming its flag otherwise. */
function intIn(flag: string, v: unknown, min: number, max: number, what: string): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new UserError(`--${flag} ${v}: ${what} must be an integer in [${min}, ${max}]`);
  }
}

/** A setting that must be a finite number in [min, max) (or [min, max] with `closed`). */
function numberIn(flag: string, v: unknown, min: number, max: number, what: string, closed = false): void {
  const ok = typeof v === "number" && Number.isFinite(v) && v >= min && (closed ? v <= max : v < max);
  if (!ok) {
    throw new UserError(`--${flag} ${v}: ${what} must be a number in [${min}, ${max}${closed ? "]" : ")"}`);
  }
}

/**
 * Checks every setting of a training config before any work starts, wherever it came from (flags, a saved
 * config.json, a caller's object): a bad value is one line naming its flag.
 */
export function validateConfig(c: TrainConfig): void {
  if (typeof c.data !== "string" || c.data === "") throw new UserError(`--data ${c.data}: expected a data spec`);
  if (typeof c.net !== "string") throw new UserError(`--net ${c.net}: expected a network name`);
  methodNamed(c.method);
  checkTransforms(c.transforms);
  checkNetFits(c.net);
  intIn("classes", c.classes, 2, LIMITS.classes, "N");
  if (c.perClass !== "inf") intIn("per-class", c.perClass, 1, LIMITS.perClass, "K (or inf)");
  intIn("steps", c.steps, 1, LIMITS.steps, "the number of steps");
  intIn("batch", c.batch, 1, LIMITS.batch, "the batch size");
  if (!(SCHEDULE_NAMES as readonly string[]).includes(c.schedule)) {
    throw new UserError(
      `--schedule ${c.schedule}: expected plateau (the paper), stages (the release), anneal or cosine`,
    );
  }
  if (!(typeof c.lr === "number" && c.lr > 0 && Number.isFinite(c.lr))) {
    throw new UserError(`--lr ${c.lr}: the learning rate must be a positive number`);
  }
  numberIn("momentum", c.momentum, 0, 1, "the momentum");
  numberIn("weight-decay", c.weightDecay, 0, 1, "the weight decay");
  intIn("seed", c.seed, 0, LIMITS.seed, "the run seed");
  intIn("valid-every", c.validEvery, 1, LIMITS.steps, "the validation interval");
  intIn("patience", c.patience, 1, 1_000_000, "the plateau patience");
  intIn("log-every", c.logEvery, 1, LIMITS.steps, "the logging interval");
  intIn("validation-copies", c.validationCopies, 1, 1000, "the held-out copies per class");
  intIn("workers", c.workers, 1, 256, "the number of surrogate workers");
  intIn("parallel", c.parallel, 1, 64, "the number of gradient workers");
  if (c.budget !== undefined) {
    const b = c.budget;
    if (typeof b !== "object" || b === null) throw new UserError(`budget: expected a time budget's plan`);
    numberIn("minutes", b.minutes, Number.MIN_VALUE, Infinity, "a time budget");
  }
}

/**
 * A set of transformations as a run keeps it: an array of names of lib/augment.ts `TRANSFORMS`, each once, in that
 * order (so that the same set is always written the same way); anything else is one line naming `--transforms`.
 */
export function checkTransforms(t: unknown): asserts t is TransformName[] {
  const names = TRANSFORMS as readonly unknown[];
  const ok = Array.isArray(t) && t.every((x) => names.includes(x)) &&
    t.every((x, i) => i === 0 || names.indexOf(x) > names.indexOf(t[i - 1]));
  if (!ok) {
    throw new UserError(
      `--transforms ${JSON.stringify(t)}: expected some of ${TRANSFORMS.join(", ")}, each once and in that order`,
    );
  }
}

/**
 * A `--transforms` flag's value as a set of transformations in the order of lib/augment.ts `TRANSFORMS`: names
 * separated by commas, `all` (the default: all six) or `none`.
 */
export function parseTransformsFlag(value: string): TransformName[] {
  const list = value.trim();
  if (list === "all") return [...TRANSFORMS];
  if (list === "none") return [];
  const given = list.split(",").map((s) => s.trim());
  for (const t of given) {
    if (!(TRANSFORMS as readonly string[]).includes(t)) {
      throw new UserError(
        `--transforms ${value}: unknown transformation "${t}" (expected some of ${TRANSFORMS.join(", ")}, all or none)`,
      );
    }
  }
  return TRANSFORMS.filter((t) => given.includes(t));
}

/** A set of transformations in words: `all six`, `without rotation`, `rotation only`, or the names. */
export function transformsLabel(t: readonly TransformName[]): string {
  if (t.length === TRANSFORMS.length) return "all six transformations";
  if (t.length === 0) return "no transformation";
  if (t.length === 1) return `${t[0]} only`;
  const left = TRANSFORMS.filter((x) => !t.includes(x));
  return left.length === 1 ? `all but ${left[0]}` : t.join(", ");
}

/**
 * Refuses a run whose training step cannot fit in memory (lib/nets.ts `trainingMemory`): on the wasm backend each
 * gradient worker's share of the batch must fit a WebAssembly heap (4 GiB), and all of it the machine's memory.
 */
export function checkTrainingFits(cfg: TrainConfig, backend: Pick<BackendInfo, "name">): void {
  const parallel = backend.name === "wasm" ? Math.max(1, cfg.parallel) : 1;
  const share = Math.ceil(cfg.batch / parallel);
  const perWorker = trainingMemory(cfg.net, cfg.classes, share, cfg.method);
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  const WASM_HEAP = 4 * 2 ** 30;
  if (backend.name === "wasm" && perWorker > WASM_HEAP) {
    throw new UserError(
      `--batch ${cfg.batch} with ${cfg.net} and N = ${cfg.classes}: a training step needs about ${
        gib(perWorker)
      } in each of ${parallel} gradient workers, more than a WebAssembly heap holds (4 GiB); use a smaller batch or network`,
    );
  }
  let available = Infinity;
  try {
    available = Deno.systemMemoryInfo().available;
  } catch { /* without the permission: not checked */ }
  if (perWorker * parallel > available) {
    throw new UserError(
      `--batch ${cfg.batch} with ${cfg.net} and N = ${cfg.classes}: a training step needs about ${
        gib(perWorker * parallel)
      }, and this machine has ${gib(available)} available; use a smaller batch or network`,
    );
  }
}

/**
 * Settings from flags as `node:util` parseArgs gives them (strings), converted to numbers where a number is meant;
 * only the flags that were given. Ranges are {@link validateConfig}'s.
 */
export function flagSettings(v: Record<string, string | boolean | undefined>): Partial<TrainConfig> {
  const out: Partial<TrainConfig> = {};
  const num = (flag: string): number | undefined => {
    const raw = v[flag];
    if (raw === undefined || typeof raw === "boolean") return undefined;
    const n = decimal(raw);
    if (Number.isNaN(n)) throw new UserError(`--${flag} ${raw}: expected a number`);
    return n;
  };
  const str = (flag: string) => (typeof v[flag] === "string" ? v[flag] as string : undefined);
  const set = <K extends keyof TrainConfig>(key: K, value: TrainConfig[K] | undefined) => {
    if (value !== undefined) out[key] = value;
  };
  set("data", str("data"));
  set("net", str("net"));
  set("classes", num("classes"));
  set("perClass", str("per-class") === "inf" ? "inf" : num("per-class"));
  set("steps", num("steps"));
  set("batch", num("batch"));
  set("method", str("method") as MethodName | undefined);
  const transforms = str("transforms");
  set("transforms", transforms === undefined ? undefined : parseTransformsFlag(transforms));
  set("schedule", str("schedule") as ScheduleName | undefined);
  set("lr", num("lr"));
  set("validEvery", num("valid-every"));
  set("seed", num("seed"));
  set("workers", num("workers"));
  return out;
}

/** Where a run's settings come from, besides the flags. */
export interface ConfigBase {
  /** The run scale (lib/presets.ts `RUN_SCALES`); default `default`. */
  scale?: ScaleName;
  /** A saved run's settings (`--config RUN/config.json`): they stand in for the scale's. */
  saved?: TrainConfig;
  /** Where `saved` was read from, for messages. */
  savedFrom?: string;
}

/** A resolved run configuration: the settings, and the time budget to plan them for, if any. */
export interface ResolvedConfig {
  /** The run's settings, checked. */
  cfg: TrainConfig;
  /** Minutes of pretraining to plan steps and N for (lib/budget.ts), or undefined: the steps as they are. */
  minutes?: number;
}

/**
 * A run's configuration from its three sources, strongest first: the flags, a saved run's config.json (`--config`),
 * the run scale. A scale with a time budget (`laptop`) or `--minutes` plans the steps, unless steps are given (by
 * `--steps` or a saved run), and trains at the budget's rate and schedule (lib/presets.ts `BUDGET_TRAINING`) unless
 * the flags say otherwise. Steps given by flag end a saved run's budget: no re-plan changes them. The result is
 * checked by {@link validateConfig}.
 */
export function resolveTrainConfig(
  flags: Record<string, string | boolean | undefined>,
  base: ConfigBase = {},
): ResolvedConfig {
  const scaleName = base.scale ?? "default";
  if (!(SCALE_NAMES as readonly string[]).includes(scaleName)) {
    throw new UserError(`--scale ${scaleName}: unknown run scale (expected one of: ${SCALE_NAMES.join(", ")})`);
  }
  const scale = RUN_SCALES[scaleName];
  const given = flagSettings(flags);
  if (base.saved) {
    // A saved config passes the same checks as flags do.
    try {
      validateConfig({ ...TRAIN_DEFAULTS, ...base.saved });
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${base.savedFrom ?? "the saved config"}: ${e.message}`);
      throw e;
    }
  } else if (scale.data === undefined && given.data === undefined) {
    throw new UserError(
      `--scale ${scaleName} runs on real data: give --data SPEC (stl10:DIR, caltech101:DIR, ...; deno task data download)`,
    );
  }
  let minutes: number | undefined;
  if (flags.minutes !== undefined) {
    minutes = decimal(String(flags.minutes));
    if (!(minutes > 0 && Number.isFinite(minutes))) {
      throw new UserError(`--minutes ${flags.minutes}: expected minutes > 0`);
    }
  } else if (!base.saved && given.steps === undefined) minutes = scale.minutes;
  const budgetTraining = minutes !== undefined || scale.minutes !== undefined;
  const under: Partial<TrainConfig> = base.saved ??
    { ...scaleSettings(scale), ...(budgetTraining ? BUDGET_TRAINING : {}) };
  if (given.method !== undefined && base.saved === undefined && given.schedule === undefined && !budgetTraining) {
    // Another method brings its own schedule with it.
    const m = METHODS[given.method as MethodName];
    if (m) under.schedule = m.train.schedule;
  }
  const cfg = { ...TRAIN_DEFAULTS, data: "synthetic", ...under, ...given } as TrainConfig;
  // Steps given by hand end a saved run's time budget: no re-plan changes them.
  if (given.steps !== undefined) delete cfg.budget;
  validateConfig(cfg);
  return { cfg, minutes };
}
