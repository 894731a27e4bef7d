/**
 * `deno task pretrain --out DIR [--scale NAME] [--config RUN/config.json] [--data SPEC] [--net NAME] [--classes N]
 *  [--per-class K|inf] [--steps S] [--batch B] [--backend NAME] [--method paper|release] [--transforms LIST] [--schedule NAME] [--seed S]
 *  [--minutes M] [--resume]`
 *
 * The settings are the flags over a saved run's config.json (`--config`) over a run scale (`--scale`, default
 * `default`: lib/presets.ts); lib/config.ts resolves them. `--workers W`: surrogate-generation workers (default 2; a
 * GPU consumes batches faster than two cores make them).
 *
 * Trains a network on the surrogate task (paper §4-5.1; PAPER.md "Networks", "Training") with a
 * progress bar; writes config.json, metrics.jsonl and checkpoint.ckpt into
 * the run folder. Ctrl-C or SIGTERM writes a checkpoint and stops; the same command again continues the run (`--resume`
 * says so explicitly, and fails where there is nothing to continue); the folder is locked while a run writes it.
 *
 * @module
 */
import { join } from "node:path";
import { BACKENDS } from "../lib/compute/backend.ts";
import { parseFlags, Progress, progressBars, runTask } from "../lib/util/cli.ts";
import { DATA_SPECS } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { pretrain } from "../lib/train.ts";
import { outputFolder } from "../lib/util/output_folder.ts";
import { planBudget } from "../lib/budget.ts";
import { resolveTrainConfig, SCHEDULE_NAMES } from "../lib/config.ts";
import { readRunConfig, readRunConfigFile, RUN_FILES } from "../lib/run_folder.ts";
import { exists } from "../lib/util/fsutil.ts";
import { SCALE_NAMES, type ScaleName } from "../lib/presets.ts";
import { rowSummary, TRAIN_FLAGS } from "../lib/train_flags.ts";

const USAGE = `deno task pretrain --out DIR [--scale ${
  SCALE_NAMES.join("|")
}] [--config RUN/config.json] [--data SPEC] [--net NAME] [--classes N] [--per-class K|inf] [--steps S] [--batch B] [--backend ${
  BACKENDS.join("|")
}] [--method paper|release] [--transforms LIST] [--schedule ${
  SCHEDULE_NAMES.join("|")
}] [--lr R] [--valid-every S] [--seed S] [--workers W] [--checkpoint-minutes M] [--minutes M] [--resume]   (SPEC: ${DATA_SPECS})`;

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    ...TRAIN_FLAGS,
    out: { type: "string", help: "the run folder (required); the same command again continues the run" },
    resume: { type: "boolean", help: "insist on continuing a run (an error if there is none)" },
    "checkpoint-minutes": {
      type: "string",
      help: "minutes between checkpoints (default 5; also at the end and on a stop)",
    },
  }, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  if (!values.out) throw new UserError(`--out DIR is required (usage: ${USAGE})`);
  // A run folder whose config.json is damaged is named as such, not taken for a folder of a user's files.
  if (exists(join(values.out, RUN_FILES.config))) await readRunConfig(values.out);
  // A run folder to continue, or a new, empty or marked folder: a folder of the user's own files is not written into.
  const folder = outputFolder(values.out, { task: "pretrain", flag: "--out", runFolder: true });
  const every = values["checkpoint-minutes"] === undefined ? 5 : Number(values["checkpoint-minutes"]);
  if (!(every >= 0 && Number.isFinite(every))) {
    throw new UserError(`--checkpoint-minutes ${values["checkpoint-minutes"]}: expected a number of minutes >= 0`);
  }
  // The run's settings: the flags over a saved config.json (--config) over the run scale (default: `default`).
  const savedFrom = values.config as string | undefined;
  const saved = savedFrom === undefined ? undefined : (await readRunConfigFile(savedFrom)).train;
  let { cfg, minutes } = resolveTrainConfig(values, {
    scale: (values.scale as ScaleName | undefined) ?? "default",
    saved,
    savedFrom,
  });
  if (minutes !== undefined) {
    cfg = await planBudget(cfg, minutes, values.out, {
      backend: values.backend as string | undefined,
      classesGiven: values.classes !== undefined || saved !== undefined,
      perClassGiven: values["per-class"] !== undefined || saved !== undefined,
      log: (m) => console.error(m),
    });
  }
  await folder.make();
  const bar = new Progress("pretrain", cfg.steps);
  const result = await pretrain(cfg, {
    out: values.out,
    resume: values.resume,
    checkpointMinutes: every,
    backend: values.backend as string | undefined,
    log: (m) => console.error(m),
    onRow: (r) => bar.update(r.step, rowSummary(r)),
    onSteps: (steps) => bar.setTotal(steps),
    onProgress: progressBars(),
  }).catch((e) => {
    folder.abandon(); // (a new run refused before it wrote anything leaves no folder)
    throw e;
  });
  console.error(
    `${result.steps} steps (${result.samples} samples) on ${result.backend.name}; run folder ${values.out}`,
  );
  console.log(join(values.out, "checkpoint.ckpt"));
  if (result.interrupted) Deno.exit(130);
}

if (import.meta.main) runTask(main);
