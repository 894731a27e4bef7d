/** A run's configuration: where each setting comes from (flags, a saved config.json, the run scale) and its checks. */
import assert from "node:assert/strict";
import {
  resolveTrainConfig,
  TRAIN_DEFAULTS,
  type TrainConfig,
  transformsLabel,
  validateConfig,
} from "../lib/config.ts";
import { checkContinues, readRunConfigFile } from "../lib/run_folder.ts";
import { TRANSFORMS } from "../lib/augment.ts";
import { tempDir } from "./helpers.ts";
import { BUDGET_TRAINING, METHODS, RUN_SCALES } from "../lib/presets.ts";
import { UserError } from "../lib/util/errors.ts";

const refused = (f: () => unknown, re: RegExp) => assert.throws(f, (e) => e instanceof UserError && re.test(e.message));

Deno.test("no flags: the default scale's run, the paper's rate and schedule, nothing to plan", () => {
  const { cfg, minutes } = resolveTrainConfig({});
  const d = RUN_SCALES.default;
  assert.equal(minutes, undefined);
  assert.deepEqual(
    [cfg.data, cfg.net, cfg.classes, cfg.perClass, cfg.steps, cfg.validEvery],
    [d.data, d.net, d.classes, d.perClass, d.steps, d.validEvery],
  );
  assert.deepEqual([cfg.schedule, cfg.lr, cfg.method], ["plateau", METHODS.paper.train.lr, "paper"]);
});

Deno.test("flags go over the scale; another method brings its schedule; a scale on real data needs --data", () => {
  const { cfg } = resolveTrainConfig({ classes: "50", "per-class": "inf", steps: "7", seed: "3" });
  assert.deepEqual([cfg.classes, cfg.perClass, cfg.steps, cfg.seed], [50, "inf", 7, 3]);
  assert.equal(resolveTrainConfig({ method: "release" }).cfg.schedule, "stages");
  assert.equal(resolveTrainConfig({ method: "release", schedule: "plateau" }).cfg.schedule, "plateau");
  refused(() => resolveTrainConfig({}, { scale: "laptop" }), /--scale laptop runs on real data: give --data/);
  refused(() => resolveTrainConfig({}, { scale: "huge" as "default" }), /--scale huge: unknown run scale/);
});

Deno.test("a time budget: the laptop scale or --minutes plans, at the budget's rate and schedule unless the flags say", () => {
  const laptop = resolveTrainConfig({ data: "caltech101:/x" }, { scale: "laptop" });
  assert.equal(laptop.minutes, RUN_SCALES.laptop.minutes);
  assert.deepEqual([laptop.cfg.schedule, laptop.cfg.lr], [BUDGET_TRAINING.schedule, BUDGET_TRAINING.lr]);
  // --steps instead: those steps, nothing planned, still the budget's rate and schedule.
  const given = resolveTrainConfig({ data: "caltech101:/x", steps: "8674" }, { scale: "laptop" });
  assert.deepEqual([given.minutes, given.cfg.steps, given.cfg.schedule], [undefined, 8674, "anneal"]);
  // --minutes plans on any scale; --steps beside it is planned over (the budget decides the steps).
  const m = resolveTrainConfig({ minutes: "30", steps: "5" });
  assert.deepEqual([m.minutes, m.cfg.schedule, m.cfg.lr], [30, "anneal", BUDGET_TRAINING.lr]);
  const own = resolveTrainConfig({ minutes: "30", schedule: "cosine", lr: "0.01" }).cfg;
  assert.deepEqual([own.schedule, own.lr], ["cosine", 0.01]);
  refused(() => resolveTrainConfig({ minutes: "0" }), /--minutes 0: expected minutes > 0/);
  refused(() => resolveTrainConfig({ minutes: "soon" }), /--minutes soon/);
});

Deno.test("a saved config.json: its settings stand in for the scale's, flags over them; --steps ends its budget", () => {
  const plan = { minutes: 30, samplesPerSecond: 300, efficiency: 0.9, steps: 3642, classes: 1200 };
  const saved: TrainConfig = {
    ...TRAIN_DEFAULTS,
    data: "caltech101:/x",
    net: "64c5-64c5-128f",
    classes: 1200,
    perClass: "inf",
    steps: 4331,
    schedule: "anneal",
    lr: 0.03,
    budget: plan,
  };
  const again = resolveTrainConfig({}, { saved });
  assert.equal(again.minutes, undefined, "a saved run is made again with its steps, not planned anew");
  assert.deepEqual(again.cfg, saved);
  const flags = resolveTrainConfig({ classes: "400", schedule: "plateau" }, { saved }).cfg;
  assert.deepEqual([flags.classes, flags.schedule, flags.lr, flags.budget], [400, "plateau", 0.03, plan]);
  // Steps given by hand end the saved budget: no re-plan changes them.
  const steps = resolveTrainConfig({ steps: "5000" }, { saved }).cfg;
  assert.deepEqual([steps.steps, steps.budget], [5000, undefined]);
  // A saved config passes the same checks as flags, named by its file.
  refused(
    () => resolveTrainConfig({}, { saved: { ...saved, workers: 0 }, savedFrom: "r/config.json" }),
    /^r\/config\.json: --workers 0/,
  );
  refused(() => resolveTrainConfig({}, { saved: { ...saved, seed: -5 }, savedFrom: "r/config.json" }), /--seed -5/);
});

Deno.test("every setting is checked, one line naming its flag, whatever it came from", () => {
  const ok: TrainConfig = { ...TRAIN_DEFAULTS, data: "synthetic", net: "8c5-16f", classes: 4, perClass: 2, steps: 1 };
  validateConfig(ok);
  const bad: [Partial<TrainConfig>, RegExp][] = [
    [{ batch: 0 }, /^--batch 0: the batch size must be an integer/],
    [{ classes: 1 }, /^--classes 1: N must be/],
    [{ perClass: 0 }, /^--per-class 0/],
    [{ steps: 2.5 }, /^--steps 2\.5/],
    [{ lr: -1 }, /^--lr -1/],
    [{ lr: Infinity }, /^--lr Infinity/],
    [{ momentum: 1 }, /^--momentum 1/],
    [{ seed: -5 }, /^--seed -5/],
    [{ workers: 0 }, /^--workers 0/],
    [{ parallel: 0 }, /^--parallel 0/],
    [{ validEvery: 0 }, /^--valid-every 0/],
    [{ schedule: "fast" as TrainConfig["schedule"] }, /^--schedule fast/],
    [{ method: "mine" as TrainConfig["method"] }, /mine/],
    [{ net: "99999c5-1f" }, /layer 99999c5 is too large/],
    [{ net: "8c5-9007199254740993f" }, /layer 9007199254740993f is too large/],
  ];
  for (const [change, re] of bad) refused(() => validateConfig({ ...ok, ...change }), re);
  refused(() => resolveTrainConfig({ batch: "abc" }), /^--batch abc: expected a number/);
  // Numbers are written in decimal: hexadecimal, binary, Infinity and blanks are not numbers to a flag.
  for (const text of ["0x10", "0b11", "Infinity", " ", "1_000"]) {
    refused(() => resolveTrainConfig({ steps: text }), /^--steps .*: expected a number/);
  }
  refused(() => resolveTrainConfig({ minutes: "0x1" }), /^--minutes 0x1: expected minutes > 0/);
  assert.equal(resolveTrainConfig({ steps: "1e2" }).cfg.steps, 100);
  refused(() => resolveTrainConfig({ batch: "0", minutes: "1" }), /^--batch 0/);
});

Deno.test("the transformations are a run setting: all six by default, named by --transforms, checked, kept in order", () => {
  assert.deepEqual(resolveTrainConfig({}).cfg.transforms, [...TRANSFORMS]);
  // Given in any order, kept in the order of lib/augment.ts TRANSFORMS (so one set is always written one way).
  assert.deepEqual(resolveTrainConfig({ transforms: "color, rotation" }).cfg.transforms, ["rotation", "color"]);
  assert.deepEqual(resolveTrainConfig({ transforms: "none" }).cfg.transforms, []);
  assert.deepEqual(resolveTrainConfig({ transforms: "all" }).cfg.transforms, [...TRANSFORMS]);
  refused(
    () => resolveTrainConfig({ transforms: "rotation,shear" }),
    /^--transforms rotation,shear: unknown transformation "shear"/,
  );
  const ok: TrainConfig = { ...TRAIN_DEFAULTS, data: "synthetic", net: "8c5-16f", classes: 4, perClass: 2, steps: 1 };
  for (const t of [["color", "rotation"], ["rotation", "rotation"], ["blur"], "rotation", null]) {
    refused(() => validateConfig({ ...ok, transforms: t as TrainConfig["transforms"] }), /^--transforms /);
  }
  assert.equal(transformsLabel([...TRANSFORMS]), "all six transformations");
  assert.equal(transformsLabel(TRANSFORMS.filter((t) => t !== "rotation")), "all but rotation");
  assert.equal(transformsLabel(["color"]), "color only");
});

Deno.test("a run's transformations are part of what it is: a config.json without them had all six; another set is refused", async () => {
  await using tmp = await tempDir();
  const cfg: TrainConfig = { ...TRAIN_DEFAULTS, data: "synthetic", net: "8c5-16f", classes: 4, perClass: 2, steps: 1 };
  const { transforms: _, ...older } = cfg;
  await Deno.writeTextFile(`${tmp.path}/config.json`, JSON.stringify({ train: older }));
  assert.deepEqual((await readRunConfigFile(`${tmp.path}/config.json`)).train.transforms, [...TRANSFORMS]);
  await checkContinues(cfg, tmp.path);
  await assert.rejects(
    checkContinues({ ...cfg, transforms: ["translation", "scaling"] }, tmp.path),
    (e) =>
      e instanceof UserError && /made with transforms = \[.*"color"\], not \["translation","scaling"\]/.test(e.message),
  );
});
