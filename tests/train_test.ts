import assert from "node:assert/strict";
import { useCacheDir } from "../lib/util/fsutil.ts";
import { pretrain } from "../lib/train.ts";
import { resolveTrainConfig, TRAIN_DEFAULTS, type TrainConfig } from "../lib/config.ts";
import { type MetricsRow, readMetrics } from "../lib/run_folder.ts";
import { stageRate } from "../lib/schedule.ts";
import { BUDGET_TRAINING } from "../lib/presets.ts";
import { listTree, oneLineError, ROOT, task, tempDir, tinyRunArgs } from "./helpers.ts";

const quiet = () => {};

function config(data: string): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data,
    net: "8c5-16c5-32f",
    classes: 12,
    perClass: 6,
    steps: 16,
    batch: 16,
    logEvery: 2,
    validEvery: 4,
    patience: 1,
    workers: 1,
  };
}

function sameRows(a: MetricsRow[], b: MetricsRow[]): void {
  assert.deepEqual(a.map((r) => r.step), b.map((r) => r.step));
  for (let i = 0; i < a.length; i++) {
    for (const k of ["loss", "accuracy", "lr", "val_loss", "val_accuracy"] as const) {
      const x = a[i][k], y = b[i][k];
      if (x === undefined || y === undefined) assert.equal(x, y, `step ${a[i].step} ${k}`);
      else assert.ok(Math.abs(x - y) <= 1e-5 * Math.max(1, Math.abs(y)), `step ${a[i].step} ${k}: ${x} vs ${y}`);
    }
  }
}

Deno.test("pretraining learns the surrogate task, and a resumed run repeats the uninterrupted run's numbers", async () => {
  await using tmp = await tempDir();
  useCacheDir(`${tmp.path}/cache`);
  const data = "synthetic:unlabeled=60,train=10,test=10,fold=10";
  const cfg = config(data);
  const full = await pretrain(cfg, { out: `${tmp.path}/full`, backend: "wasm", log: quiet });
  assert.equal(full.steps, 16);
  assert.equal(full.backend.name, "wasm");
  const rows = await readMetrics(`${tmp.path}/full`);
  assert.equal(rows.length, 8);
  for (const r of rows) {
    for (const k of ["step", "loss", "accuracy", "lr", "samples_per_s"] as const) assert.ok(Number.isFinite(r[k]));
  }
  assert.ok(rows.at(-1)!.loss < rows[0].loss, `loss ${rows[0].loss} -> ${rows.at(-1)!.loss}`);
  // The plateau schedule divides the rate by 3 when validation stops improving (patience 1 here).
  assert.ok(rows.every((r, i) => i === 0 || r.lr === rows[i - 1].lr || Math.abs(r.lr * 3 - rows[i - 1].lr) < 1e-12));

  // Continued with more steps: config.json records the new number.
  const longer = await pretrain({ ...cfg, steps: 20 }, { out: `${tmp.path}/full`, backend: "wasm", log: quiet });
  assert.equal(longer.steps, 20);
  assert.equal(JSON.parse(await Deno.readTextFile(`${tmp.path}/full/config.json`)).train.steps, 20);
  assert.equal((await readMetrics(`${tmp.path}/full`)).at(-1)!.step, 20);

  // Interrupted after step 6 (as by Ctrl-C), then resumed.
  let seen = 0;
  const part = await pretrain(cfg, {
    out: `${tmp.path}/part`,
    backend: "wasm",
    log: quiet,
    onRow: (r) => (seen = r.step),
    shouldStop: () => seen >= 6,
  });
  assert.equal(part.interrupted, true);
  assert.equal(part.steps, 6);
  const resumed = await pretrain(cfg, { out: `${tmp.path}/part`, backend: "wasm", resume: true, log: quiet });
  assert.equal(resumed.steps, 16);
  sameRows(await readMetrics(`${tmp.path}/part`), rows);

  // Interrupted after step 3: before the first validation (the best validation error is still Infinity) and between
  // two logged rows (the row at step 4 averages steps 3 and 4).
  let steps = 0;
  const early = await pretrain(cfg, {
    out: `${tmp.path}/early`,
    backend: "wasm",
    log: quiet,
    shouldStop: () => ++steps > 3,
  });
  assert.equal(early.steps, 3);
  await pretrain(cfg, { out: `${tmp.path}/early`, backend: "wasm", resume: true, log: quiet });
  sameRows(await readMetrics(`${tmp.path}/early`), rows);
  useCacheDir(null);
});

Deno.test("the transformations a run names are the ones its surrogate classes are made with", async () => {
  await using tmp = await tempDir();
  useCacheDir(`${tmp.path}/cache`);
  const cfg = { ...config("synthetic:unlabeled=60,train=10,test=10,fold=10"), steps: 2, logEvery: 1, validEvery: 2 };
  const losses = async (name: string, transforms: TrainConfig["transforms"]) => {
    await pretrain({ ...cfg, transforms }, { out: `${tmp.path}/${name}`, backend: "wasm", log: quiet });
    return (await readMetrics(`${tmp.path}/${name}`)).map((r) => [r.loss, r.val_loss]);
  };
  const all = await losses("all", cfg.transforms);
  // The same seeds, weights and batches' classes: only the copies' transformations differ.
  assert.notDeepEqual(await losses("none", []), all);
  assert.notDeepEqual(await losses("color", ["color"]), all);
  assert.deepEqual(await losses("all-again", cfg.transforms), all);
  useCacheDir(null);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`${signal} writes a checkpoint and --resume finishes the run; a damaged checkpoint is refused`, async () => {
    await interruptAndResume(signal);
  });
}

async function interruptAndResume(signal: "SIGINT" | "SIGTERM"): Promise<void> {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache`, NO_COLOR: "1" };
  const args = tinyRunArgs(`${tmp.path}/run`, 400);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/tasks/pretrain.ts`, ...args],
    cwd: ROOT,
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const metrics = `${tmp.path}/run/metrics.jsonl`;
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      if ((await Deno.readTextFile(metrics)).trim()) break;
    } catch { /* not there yet */ }
  }
  child.kill(signal);
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 130, stderr);
  assert.match(stderr, /interrupted at step \d+: checkpoint written/);
  const stopped = (await readMetrics(`${tmp.path}/run`)).at(-1)!.step;
  assert.ok(stopped < 400);

  // A copy of the run whose checkpoint was cut short inside the momentum arrays: refused in one line, left as it was.
  await Deno.mkdir(`${tmp.path}/cut`);
  for (const e of Deno.readDirSync(`${tmp.path}/run`)) {
    await Deno.copyFile(`${tmp.path}/run/${e.name}`, `${tmp.path}/cut/${e.name}`);
  }
  const ck = await Deno.readFile(`${tmp.path}/cut/checkpoint.ckpt`);
  await Deno.writeFile(`${tmp.path}/cut/checkpoint.ckpt`, ck.subarray(0, ck.length - 100));
  const before = listTree(`${tmp.path}/cut`).map((f) => [f, Deno.statSync(`${tmp.path}/cut/${f}`).size]);
  const bad = await task("pretrain", [...args.slice(0, -1), `${tmp.path}/cut`, "--resume"], env);
  oneLineError(bad, /checkpoint.ckpt: damaged checkpoint/);
  assert.equal(bad.code, 2);
  assert.deepEqual(listTree(`${tmp.path}/cut`).map((f) => [f, Deno.statSync(`${tmp.path}/cut/${f}`).size]), before);

  const r = await task("pretrain", [...args, "--resume"], env);
  assert.equal(r.code, 0, r.stderr);
  const rows = await readMetrics(`${tmp.path}/run`);
  assert.equal(rows.at(-1)!.step, 400);
  assert.deepEqual(rows.map((r) => r.step), Array.from({ length: 40 }, (_, i) => 10 * (i + 1)));
}

Deno.test("the release schedule: fixed stages scaled to the run's length", () => {
  const steps = 1560;
  assert.equal(stageRate(0, steps), 0.01);
  assert.equal(stageRate(1199, steps), 0.01);
  assert.equal(stageRate(1200, steps), 0.004);
  assert.equal(stageRate(1320, steps), 0.001);
  assert.equal(stageRate(1440, steps), 0.0004);
  assert.equal(stageRate(1559, steps), 0.0001);
});

Deno.test("metrics.jsonl: a last row cut short is dropped, a damaged one elsewhere is one line", async () => {
  await using tmp = await tempDir();
  const row = (step: number) => JSON.stringify({ step, loss: 1, accuracy: 0, lr: 0.01, samples_per_s: 1 });
  await Deno.writeTextFile(`${tmp.path}/metrics.jsonl`, `${row(10)}\n${row(20)}\n{"step":30,"lo`);
  assert.deepEqual((await readMetrics(tmp.path)).map((r) => r.step), [10, 20]);
  await Deno.writeTextFile(`${tmp.path}/metrics.jsonl`, `${row(10)}\n{"step":2\n${row(30)}\n`);
  await assert.rejects(() => readMetrics(tmp.path), /metrics.jsonl: line 2 is not a metrics row/);
});

Deno.test("a time budget planned again from the run's own speed: the steps that fill what is left, twice", async () => {
  const { replanDue, replanFromRun } = await import("../lib/budget.ts");
  const { scheduleSteps } = await import("../lib/schedule.ts");
  const plan = { minutes: 10, samplesPerSecond: 100, efficiency: 0.9, steps: 4000, classes: 1000 };
  assert.equal(replanDue(plan, 399), false);
  assert.equal(replanDue(plan, 400), true);
  assert.equal(replanDue(undefined, 400), false);
  // 60 s in at step 500, training at 128 samples/s: 540 s left, 98 % of them at one step a second.
  const again = replanFromRun(plan, { step: 500, elapsedS: 60, samplesPerSecond: 128, batch: 128 });
  const first = 500 + Math.floor(540 * 0.98);
  assert.deepEqual(again.replan, { step: 500, samplesPerSecond: 128, steps: first, elapsedS: 60 });
  assert.equal(again.steps, 4000, "the warm-up's plan is kept beside it");
  // Again at half the first re-plan's steps, from the speed since: 400 s in at step 800, 192 samples/s.
  const half = Math.ceil(first / 2);
  assert.equal(replanDue(again, half - 1), false, "not again before half the steps");
  assert.equal(replanDue(again, half), true);
  const twice = replanFromRun(again, { step: 800, elapsedS: 400, samplesPerSecond: 192, batch: 128 });
  const second = 800 + Math.floor((200 * 0.98 * 192) / 128);
  assert.deepEqual(twice.second, { step: 800, samplesPerSecond: 192, steps: second, elapsedS: 400 });
  assert.deepEqual(twice.replan, again.replan, "the first re-plan is kept beside it");
  assert.equal(replanDue(twice, 1200), false, "twice at most");
  // A plan stored before the second re-plan existed (no elapsedS) is continued as it was made.
  const old = { ...plan, replan: { step: 500, samplesPerSecond: 128, steps: first } };
  assert.equal(replanDue(old, first), false);
  // A run past its budget already makes one step more and ends.
  assert.equal(replanFromRun(plan, { step: 500, elapsedS: 900, samplesPerSecond: 128, batch: 128 }).replan!.steps, 501);
  // Steps given by hand (a saved budget run's config.json run again with --steps) are not planned again.
  const saved = { ...config("synthetic"), steps: 3642, budget: plan };
  assert.equal(resolveTrainConfig({ steps: "5000" }, { saved }).cfg.budget, undefined);
  assert.deepEqual(resolveTrainConfig({}, { saved }).cfg.budget, plan);
  // The anneal and cosine schedules span each plan's steps up to the step where the next was made.
  assert.equal(scheduleSteps(1029, again, 499), 4000);
  assert.equal(scheduleSteps(1029, again, 500), 1029);
  assert.equal(scheduleSteps(1029, undefined, 10), 1029);
  assert.equal(scheduleSteps(second, twice, 499), 4000);
  assert.equal(scheduleSteps(second, twice, 799), first);
  assert.equal(scheduleSteps(second, twice, 800), second);
});

Deno.test("a time budget: steps and N planned from a warm-up and again from the run's speed, a schedule that ends decayed, the same plan continued", async () => {
  const { annealRate, cosineRate } = await import("../lib/schedule.ts");
  const { budgetClasses } = await import("../lib/budget.ts");
  assert.equal(cosineRate(0, 100, 0.01), 0.01);
  assert.ok(Math.abs(cosineRate(100, 100, 0.01) - 0.0001) < 1e-12);
  assert.ok(Math.abs(cosineRate(50, 100, 0.01) - 0.00505) < 1e-12);
  // The anneal schedule holds the rate for four fifths of the steps, then falls in a straight line to a hundredth.
  assert.equal(annealRate(0, 100, 0.01), 0.01);
  assert.equal(annealRate(80, 100, 0.01), 0.01);
  assert.ok(Math.abs(annealRate(89.5, 100, 0.01) - 0.00505) < 1e-12);
  assert.ok(Math.abs(annealRate(99, 100, 0.01) - 0.0001) < 1e-12, "the last step is made at a hundredth");
  assert.equal(budgetClasses(10_000), 100);
  assert.equal(budgetClasses(720_000), 1800);
  assert.equal(budgetClasses(1e9), 16000);

  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const args = tinyRunArgs(`${tmp.path}/run`, 1, [
    "--minutes",
    "0.1",
    "--classes",
    "12",
    "--valid-every",
    "10",
  ]);
  const r = await task("pretrain", args, env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /plan for 0\.1 minutes: \d+ samples\/s measured on \w+ -> \d+ steps of 8 .*N = 12, K = 6,/);
  const train = JSON.parse(await Deno.readTextFile(`${tmp.path}/run/config.json`)).train;
  // N and K given beside a budget are kept (a budget chooses N, and unlimited K, only where they are not given).
  assert.deepEqual([train.classes, train.perClass], [12, 6]);
  // A budget trains with its own schedule and rate (lib/presets.ts BUDGET_TRAINING) unless the flags say otherwise.
  assert.equal(train.schedule, "anneal");
  assert.equal(train.lr, BUDGET_TRAINING.lr);
  const given = resolveTrainConfig({ schedule: "cosine", lr: "0.01", minutes: "1" }).cfg;
  assert.deepEqual([given.schedule, given.lr], ["cosine", 0.01]);
  assert.equal(train.budget.minutes, 0.1);
  // Planned again at the first validation after a tenth of the warm-up's steps (and 20 steps of its own speed).
  const replan = train.budget.replan;
  assert.ok(replan, "planned again from the run's speed");
  assert.equal(replan.step, Math.max(30, Math.ceil(train.budget.steps / 10 / 10) * 10));
  assert.match(
    r.stderr,
    new RegExp(`planned again at step ${replan.step}: the run trains at \\d+ samples/s -> ${replan.steps} steps`),
  );
  // And at the first validation after half of those steps, when the run gets there.
  const second = train.budget.second;
  if (second) {
    assert.equal(second.step, Math.max(replan.step + 10, Math.ceil(replan.steps / 2 / 10) * 10));
    assert.match(r.stderr, new RegExp(`planned again at step ${second.step}: .* -> ${second.steps} steps`));
  }
  assert.equal(train.steps, (second ?? replan).steps);
  const rows = await readMetrics(`${tmp.path}/run`);
  assert.equal(rows.at(-1)!.step, train.steps);
  assert.ok(Math.abs(rows.at(-1)!.lr - train.lr / 100) < 1e-12, `the rate ends decayed: ${rows.at(-1)!.lr}`);
  // The same command again continues the stored plan (here: finds it complete), measuring nothing.
  const again = await task("pretrain", args, env);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /continuing the 0\.1-minute plan/);
  // Continued, a plan keeps the rate and schedule it was made with, whatever the defaults are now.
  const { planBudget } = await import("../lib/budget.ts");
  const continued = await planBudget({ ...train, lr: 0.5, schedule: "cosine" }, 0.1, `${tmp.path}/run`);
  assert.deepEqual([continued.lr, continued.schedule, continued.steps], [train.lr, "anneal", train.steps]);
});

Deno.test("reproduce with a time budget: the same command again continues its plan, whatever N and K the plan chose", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const args = ["--scale", "tiny", "--minutes", "0.05", "--out", `${tmp.path}/run`];
  const first = await task("reproduce", args, env);
  assert.equal(first.code, 0, first.stderr);
  const train = JSON.parse(await Deno.readTextFile(`${tmp.path}/run/config.json`)).train;
  // The plan chose N and unlimited K, not the tiny scale's N = 40 and K = 10.
  assert.deepEqual([train.classes, train.perClass], [100, "inf"]);
  const again = await task("reproduce", args, env);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /continuing the 0\.05-minute plan/);
});

Deno.test("the laptop scale run for given steps: no budget planned, the budget's rate and schedule", async () => {
  await using tmp = await tempDir();
  const r = await task("reproduce", [
    ...["--data", `caltech101:${ROOT}/tests/fixtures/caltech101-tiny`, "--net", "8c5-16f", "--classes", "10"],
    ...["--per-class", "4", "--steps", "6", "--batch", "8", "--workers", "1", "--valid-every", "3"],
    ...["--out", `${tmp.path}/run`],
  ], { EXEMPLAR_CACHE: `${tmp.path}/cache` });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /plan for/);
  const train = JSON.parse(await Deno.readTextFile(`${tmp.path}/run/config.json`)).train;
  assert.deepEqual([train.steps, train.schedule, train.lr, train.budget], [6, "anneal", BUDGET_TRAINING.lr, undefined]);
});

Deno.test("a budget too large for any run names --minutes, after its warm-up, and writes nothing", async () => {
  await using tmp = await tempDir();
  const r = await task("pretrain", tinyRunArgs(`${tmp.path}/run`, 1, ["--minutes", "1e9"]), {
    EXEMPLAR_CACHE: `${tmp.path}/cache`,
  });
  oneLineError(
    r,
    /^error: --minutes 1000000000: at the \d+ samples\/s measured on \w+ that is \d+ steps, more than the/,
  );
  assert.equal(r.code, 2);
  assert.ok(!listTree(tmp.path).includes("run"), "no run folder");
});

Deno.test("metrics.jsonl that is a folder: one line naming it", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/metrics.jsonl`);
  await assert.rejects(
    () => readMetrics(tmp.path),
    /^UserError: cannot read .*metrics\.jsonl: a folder stands where the file goes$/,
  );
});
