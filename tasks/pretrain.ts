/**
 * `deno task pretrain --out DIR [--data SPEC] [--net NAME] [--classes N] [--per-class K|inf] [--steps S]
 *  [--batch B] [--backend NAME] [--preset paper|release] [--schedule plateau|stages] [--seed S] [--resume]`
 *
 * `--workers W`: surrogate-generation workers (default 2; a GPU consumes batches faster than two cores make them).
 *
 * Trains a network on the surrogate task (PAPER.md sections 2-3) with a
 * progress bar; writes config.json, metrics.jsonl and checkpoint.ckpt into
 * the run folder. Ctrl-C or SIGTERM writes a checkpoint and stops; the same command again continues the run (`--resume`
 * says so explicitly, and fails where there is nothing to continue); the folder is locked while a run writes it.
 *
 * @module
 */
import { join } from "node:path";
import { BACKENDS } from "../lib/compute/backend.ts";
import { intFlag, parseFlags, Progress, runTask } from "../lib/util/cli.ts";
import { DATA_SPECS } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { type MetricsRow, pretrain, TRAIN_DEFAULTS, type TrainConfig } from "../lib/train.ts";

const USAGE =
  `deno task pretrain --out DIR [--data SPEC] [--net NAME] [--classes N] [--per-class K|inf] [--steps S] [--batch B] [--backend ${
    BACKENDS.join("|")
  }] [--preset paper|release] [--schedule plateau|stages] [--lr R] [--valid-every S] [--seed S] [--workers W] [--resume]   (SPEC: ${DATA_SPECS})`;

/** Flags shared with `reproduce`. */
export const TRAIN_FLAGS = {
  data: { type: "string" },
  net: { type: "string" },
  classes: { type: "string" },
  "per-class": { type: "string" },
  steps: { type: "string" },
  batch: { type: "string" },
  backend: { type: "string" },
  preset: { type: "string" },
  schedule: { type: "string" },
  lr: { type: "string" },
  "valid-every": { type: "string" },
  seed: { type: "string" },
  workers: { type: "string" },
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
  const preset = (s("preset") ?? defaults.preset ?? "paper") as TrainConfig["preset"];
  if (preset !== "paper" && preset !== "release") throw new UserError(`--preset ${preset}: expected paper or release`);
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
    preset,
    schedule:
      (s("schedule") ?? defaults.schedule ?? (preset === "release" ? "stages" : "plateau")) as TrainConfig["schedule"],
    lr,
    validEvery: intFlag("valid-every", s("valid-every"), defaults.validEvery ?? TRAIN_DEFAULTS.validEvery, 1),
    seed: intFlag("seed", s("seed"), defaults.seed ?? 0, 0),
    workers: intFlag("workers", s("workers"), defaults.workers ?? TRAIN_DEFAULTS.workers, 1, 256),
  };
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    ...TRAIN_FLAGS,
    out: { type: "string" },
    resume: { type: "boolean" },
  }, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  if (!values.out) throw new UserError(`--out DIR is required (usage: ${USAGE})`);
  const cfg = trainConfigFromFlags(values);
  const bar = new Progress("pretrain", cfg.steps);
  const result = await pretrain(cfg, {
    out: values.out,
    resume: values.resume,
    backend: values.backend as string | undefined,
    onRow: (r) => bar.update(r.step, rowSummary(r)),
  });
  console.error(
    `${result.steps} steps (${result.samples} samples) on ${result.backend.name}; run folder ${values.out}`,
  );
  console.log(join(values.out, "checkpoint.ckpt"));
  if (result.interrupted) Deno.exit(130);
}

if (import.meta.main) runTask(main);
