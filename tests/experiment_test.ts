/** The paper's experiments: sweeps over N, K, the transformations or the network, and invariance (lib/experiment.ts). */
import assert from "node:assert/strict";
import { DEFAULT_VALUES, readSweep, type SweepFile, sweepPoints, writeSweep } from "../lib/experiment.ts";
import { type InvarianceResult, magnitudes, normalisedDistances, writeInvariance } from "../lib/invariance.ts";
import { TRANSFORMS } from "../lib/augment.ts";
import { METHODS } from "../lib/presets.ts";
import { PATCH } from "../lib/seeds.ts";
import { UserError } from "../lib/util/errors.ts";
import { listTree, oneLineError, renderedDom, task, tempDir } from "./helpers.ts";

/** A sweep of the smallest runs: synthetic data, a one-conv network, K = 6, 4 steps of 8, the protocol twice. */
const TINY = [
  ...["--data", "synthetic:unlabeled=60,train=20,test=20,fold=10", "--net", "8c5-16f", "--per-class", "6"],
  ...["--steps", "4", "--batch", "8", "--valid-every", "2", "--workers", "1", "--runs", "2"],
];

const json = async (path: string) => JSON.parse(await Deno.readTextFile(path));

Deno.test("sweep points: the values of each sweep, the paper's ablation as the transformations' default", () => {
  assert.deepEqual(sweepPoints("N", "400, 100").map((p) => [p.name, p.x, p.flags]), [
    ["N=400", 400, { classes: "400" }],
    ["N=100", 100, { classes: "100" }],
  ]);
  assert.deepEqual(sweepPoints("K").map((p) => p.x), DEFAULT_VALUES.K.map(Number));
  const t = sweepPoints("transforms");
  assert.equal(t.length, 1 + 2 * TRANSFORMS.length);
  assert.deepEqual(t[0].flags, { transforms: "all" });
  assert.deepEqual(t.find((p) => p.name === "transforms=without-rotation")!.flags, {
    transforms: "translation,scaling,contrast1,contrast2,color",
  });
  assert.deepEqual(t.find((p) => p.name === "transforms=only-color")!.flags, { transforms: "color" });
  assert.deepEqual(sweepPoints("net", "64c5-64c5-128f").map((p) => p.name), ["net=64c5-64c5-128f"]);
  const refused = (vary: string, values: string | undefined, re: RegExp) =>
    assert.throws(() => sweepPoints(vary, values), (e) => e instanceof UserError && re.test(e.message));
  refused("M", undefined, /^--vary M: expected one of N, K, transforms, net/);
  refused("N", "100,abc", /^--values 100,abc: abc is not an N/);
  refused("N", "1", /is not an N \(integers in \[2, /);
  refused("K", "inf", /unlimited K is a time budget's/);
  refused("K", "10,10", /K=10 is given twice/);
  refused("N", "100,,400", /expected values separated by commas/);
  refused("transforms", "only-shear", /only-shear is not a set of transformations/);
  refused("net", "../x", /not a network name/);
});

Deno.test("invariance: each transformation's magnitudes span its range through the identity; the distance is normalised", () => {
  for (const method of ["paper", "release"] as const) {
    const r = METHODS[method].augment;
    for (const name of TRANSFORMS) {
      const m = magnitudes(name, method, 7);
      assert.equal(m.x.length, 7);
      assert.equal(m.params.length, 7);
      // The identity in the middle: its parameters change nothing.
      assert.equal(m.x[3], m.log ? 1 : 0, `${method} ${name}`);
      assert.ok(m.x.every((v, i) => i === 0 || v > m.x[i - 1]), `${method} ${name}: increasing`);
    }
    assert.deepEqual(
      [magnitudes("translation", method, 7).x[0], magnitudes("translation", method, 7).x[6]],
      [-r.translation * PATCH, r.translation * PATCH],
    );
    const scale = magnitudes("scaling", method, 5);
    assert.ok(Math.abs(scale.x[0] - r.scale[0]) < 1e-12 && Math.abs(scale.x[4] - r.scale[1]) < 1e-12);
    assert.ok(Math.abs(scale.x[1] - Math.sqrt(r.scale[0])) < 1e-12, "factors spaced on a log scale");
    assert.deepEqual(magnitudes("rotation", method, 3).params.map((p) => p.angle), [
      -r.rotationDeg * Math.PI / 180,
      0,
      r.rotationDeg * Math.PI / 180,
    ]);
    assert.deepEqual(magnitudes("color", method, 3).x, [r.hue[0], 0, r.hue[1]]);
    assert.deepEqual(magnitudes("contrast2", method, 3).params.map((p) => [p.sPow, p.vPow]), [
      [r.power[0], r.power[0]],
      [1, 1],
      [r.power[1], r.power[1]],
    ]);
  }
  // The paper's contrast1 multiplies every component by the factor; the release's is 2^(z s_k), one z for the three.
  assert.deepEqual(magnitudes("contrast1", "paper", 3).params[2].pca, [2, 2, 2]);
  // (The release spreads the largest-variance component least: s = 0.5 there, 1 for the other two.)
  assert.deepEqual(magnitudes("contrast1", "release", 3).params[0].pca, [0.5, 0.25, 0.25]);
  // ||a_i - b_i|| / ||b_i|| row by row (NaN where ||b_i|| is 0); shifted, each row against the next one.
  const a = Float32Array.from([3, 4, 0, 0]), b = Float32Array.from([0, 0, 0, 2]);
  assert.deepEqual(normalisedDistances(a, a, 2), [0, NaN]);
  assert.deepEqual(normalisedDistances(b, a, 2), [1, NaN]);
  assert.deepEqual(normalisedDistances(a, b, 2), [NaN, 1]);
  assert.deepEqual(normalisedDistances(b, b, 2, 1), [NaN, 1]);
});

Deno.test("a sweep over N: a run folder a point, sweep.json, the table, a chart that draws; continued, not redone", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const out = `${tmp.path}/sweep`;
  const r = await task("experiment", ["--vary", "N", "--values", "12,6", ...TINY, "--out", out], env);
  assert.equal(r.code, 0, r.stderr);
  // What it will run, and about how long it takes, before it starts.
  assert.match(r.stderr, /^experiment: N over 12, 6 in .*sweep \(2 points\)$/m);
  assert.match(r.stderr, /evaluation: the stl10 protocol on synthetic:\S+ \(40 labelled images\)/);
  assert.match(r.stderr, /about \d+ (s|min \d+ s) of features for 2 points, plus pretraining \(4 steps a point/);
  for (const f of [".exemplar-output", "sweep.json", "sweep.md", "sweep.html", "plotly.min.js"]) {
    assert.ok(listTree(out).includes(f), f);
  }
  const sweep = await json(`${out}/sweep.json`);
  assert.equal(sweep.vary, "N");
  assert.equal(sweep.protocol, "stl10");
  assert.equal(sweep.settings["--steps"], "4");
  assert.equal(sweep.settings.runs, 2);
  // In the order of the x axis, each point its own run with the same seed, K and steps; evaluated alike.
  assert.deepEqual(sweep.points.map((p: { name: string }) => p.name), ["N=6", "N=12"]);
  for (const p of sweep.points) {
    assert.equal(p.status, "done");
    const cfg = (await json(`${out}/${p.name}/config.json`)).train;
    assert.deepEqual([cfg.classes, cfg.perClass, cfg.steps, cfg.seed, cfg.net], [p.x, 6, 4, 0, "8c5-16f"]);
    assert.deepEqual(p.train.transforms, [...TRANSFORMS]);
    const results = await json(`${out}/${p.name}/results.json`);
    assert.deepEqual(p.results, results);
    for (const which of ["learned", "random", "raw"]) {
      assert.equal(results[which].runs.length, 2, which);
      assert.equal(results[which].knn.runs.length, 2, which);
    }
    assert.ok(p.surrogate.val_accuracy >= 0 && p.surrogate.step === 4);
  }
  const md = await Deno.readTextFile(`${out}/sweep.md`);
  assert.match(md, /\| N=6 \| 6 \| 6 \| all six transformations \| 8c5-16f \| 4 \(32\) \| \d+\.\d ± \d+\.\d \|/);
  assert.equal(r.stdout.trim().split("\n")[0], "# number of surrogate classes N");
  const dom = await renderedDom(`${out}/sweep.html`, `${tmp.path}/chromium`);
  assert.match(dom, /data-chart="drawn"/, "Plotly.newPlot resolved");
  assert.match(
    await Deno.readTextFile(`${out}/sweep.html`),
    /"xaxis":\{"title":\{"text":"number of surrogate classes N"\},"type":"log"\}/,
    "N on a log axis",
  );
  // Six lines (learned, random weights, raw pixels; SVM and kNN) and the surrogate task's validation error.
  assert.equal((dom.match(/class="trace scatter/g) ?? []).length, 7);
  assert.match(dom, /learned features, SVM/);

  // Interrupted: N=12 evaluated but its results lost, N=24 half trained (its run stopped after 2 of its 4 steps).
  const evaluatedAt = (await Deno.stat(`${out}/N=6/results.json`)).mtime!.getTime();
  await Deno.remove(`${out}/N=12/results.json`);
  const half = await task("pretrain", [
    ...TINY.filter((_, i, a) => a[i] !== "--runs" && a[i - 1] !== "--runs").map((v) => v === "4" ? "2" : v),
    ...["--classes", "24", "--out", `${out}/N=24`],
  ], env);
  assert.equal(half.code, 0, half.stderr);
  const again = await task("experiment", ["--vary", "N", "--values", "6,12,24", ...TINY, "--out", out], env);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /\(3 points, 1 already done\)/);
  assert.match(again.stderr, /\[1\/3\] N=6: done/);
  assert.match(again.stderr, /N=12: already trained for 4 steps/);
  assert.match(again.stderr, /N=24: continuing with 4 steps \(the run was made with 2\)/);
  assert.equal((await Deno.stat(`${out}/N=6/results.json`)).mtime!.getTime(), evaluatedAt, "not evaluated again");
  const metrics = (await Deno.readTextFile(`${out}/N=24/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(metrics.map((m) => m.step), [2, 4], "continued from step 2");
  const swept = await json(`${out}/sweep.json`);
  assert.deepEqual(swept.points.map((p: { name: string; status: string }) => [p.name, p.status]), [
    ["N=6", "done"],
    ["N=12", "done"],
    ["N=24", "done"],
  ]);
  // The same folder with other settings is refused, and left as it is.
  const other = await task("experiment", ["--vary", "N", ...TINY.map((v) => v === "4" ? "5" : v), "--out", out], env);
  oneLineError(other, /sweep: that sweep was made with --steps "4", not "5"; the folder is left as it is/);
  assert.deepEqual(await json(`${out}/sweep.json`), swept);

  // Invariance of a point's network: six transformations, the identity at distance 0, a page whose charts draw.
  const inv = await task("experiment", [
    ...["--invariance", "--run", `${out}/N=12`, "--patches", "6", "--magnitudes", "3"],
  ], env);
  assert.equal(inv.code, 0, inv.stderr);
  const result = await json(`${out}/N=12/invariance/invariance.json`);
  assert.deepEqual(result.transforms.map((t: { name: string }) => t.name), [...TRANSFORMS]);
  for (const t of result.transforms) {
    assert.equal(t.x.length, 3);
    const kinds = t.curves.map((c: { kind: string; layer: string }) => `${c.kind} ${c.layer}`);
    assert.deepEqual(kinds, [
      "raw pixels",
      "learned all layers",
      "learned conv1 8c5",
      "learned fc1 16f",
      "random all layers",
      "random conv1 8c5",
      "random fc1 16f",
    ]);
    for (const c of t.curves) {
      assert.equal(c.mean[1], 0, `${t.name} ${c.kind} ${c.layer}: the identity moves nothing`);
      assert.ok(c.between > 0);
    }
    const raw = t.curves[0];
    assert.ok(raw.mean[0] > 0 && raw.mean[2] > 0, `${t.name}: the transformation changes the pixels`);
  }
  assert.match(
    inv.stdout,
    /^translation {2}at the range's ends: learned \d\.\d{3}, random weights \d\.\d{3}, raw pixels \d\.\d{3}$/m,
  );
  const page = await renderedDom(`${out}/N=12/invariance/invariance.html`, `${tmp.path}/chromium-inv`);
  assert.match(page, /data-chart="drawn"/);
  assert.equal((page.match(/class="subplot x\d*y\d*"/g) ?? []).length, 6, "six panels");
});

Deno.test("a sweep under a time budget: each point planned for the same minutes, the sweep's N, K unlimited; run again, nothing is redone", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const out = `${tmp.path}/sweep`;
  // TINY without its steps and K: a budget plans the steps, and K is unlimited unless given.
  const budget = TINY.filter((v, i, a) =>
    !["--steps", "--per-class"].includes(a[i - 1]) && !["--steps", "--per-class"].includes(v)
  );
  const args = ["--vary", "N", "--values", "6,12", ...budget, "--minutes", "0.05", "--out", out];
  const r = await task("experiment", args, env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /each point: 0\.05 minutes of pretraining \(a time budget\) .* K = unlimited/);
  assert.match(r.stderr, /about 2 x \(0\.05 min of pretraining \+ \d+ (s|min \d+ s) of features\) = /);
  for (const n of [6, 12]) {
    const train = (await json(`${out}/N=${n}/config.json`)).train;
    assert.deepEqual([train.classes, train.perClass, train.budget.minutes], [n, "inf", 0.05]);
  }
  const sweep = await json(`${out}/sweep.json`);
  const again = await task("experiment", args, env);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /\(2 points, 2 already done\)/);
  assert.match(again.stderr, /every point is done/);
  assert.deepEqual((await json(`${out}/sweep.json`)).points, sweep.points);
});

Deno.test("bad sweeps are one line, exit 2, before any work; a user's folder or a file is refused", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const mine = `${tmp.path}/mine`;
  await Deno.mkdir(mine);
  await Deno.writeTextFile(`${mine}/notes.txt`, "mine");
  await Deno.writeTextFile(`${tmp.path}/a-file`, "mine");
  const cases: [string[], RegExp][] = [
    [["--vary", "M"], /^error: --vary M: expected one of N, K, transforms, net$/],
    [["--vary", "N", "--values", "100,x"], /^error: --values 100,x: x is not an N/],
    [["--vary", "K", "--values", "3,inf"], /unlimited K is a time budget's/],
    [["--vary", "N", "--classes", "40"], /^error: --classes 40: the sweep varies N; give its values with --values$/],
    [["--vary", "transforms", "--values", "without-blur"], /without-blur is not a set of transformations/],
    [["--values", "1,2"], /^error: --vary is required/],
    [["--vary", "N", "--patches", "3"], /^error: --patches belongs to --invariance$/],
    [["--invariance", "--patches", "3"], /^error: --invariance needs --run RUN/],
    [
      ["--vary", "N", "--values", "6", "--out", mine],
      /^error: --out .*mine: the folder holds files the project did not write \(notes\.txt\)/,
    ],
    [["--vary", "N", "--values", "6", "--out", `${tmp.path}/a-file`], /^error: --out .*a-file: a file, not a folder/],
    [["--invariance", "--run", mine, "--out", `${tmp.path}/a-file`], /^error: --out .*a-file: a file, not a folder/],
    [["--invariance", "--run", mine], /^error: .*mine: no trained checkpoint/],
    [["--invariance", "--run", mine, "--steps", "3"], /^error: --steps belongs to a sweep, not to --invariance$/],
    [
      ["--vary", "N", "--values", "6", "--protocol", "imagenet", "--out", `${tmp.path}/s`],
      /^error: --protocol imagenet: unknown protocol/,
    ],
    [
      ["--vary", "N", "--values", "6", "--transforms", "shear", "--out", `${tmp.path}/s`],
      /^error: --transforms shear: unknown transformation "shear"/,
    ],
  ];
  const results = await Promise.all(
    cases.map(([args]) => task("experiment", args.includes("--invariance") ? args : [...TINY, ...args], env)),
  );
  for (const [i, r] of results.entries()) {
    oneLineError(r, cases[i][1]);
    assert.equal(r.code, 2, cases[i][0].join(" "));
  }
  assert.deepEqual(listTree(tmp.path).filter((p) => !p.startsWith("cache")), ["a-file", "mine", "mine/notes.txt"]);
});

Deno.test("the sweep's and the invariance page show hostile data paths and settings as text, and run none of them", async () => {
  await using tmp = await tempDir();
  const script = `</script><script>document.title='pwned'</script><!--`;
  const path = `caltech101:/data/a" onmouseover="document.title='pwned'" x="<b>`;
  const result = (mean: number) => ({
    protocol: "caltech101" as const,
    metric: "mean per-class accuracy",
    mean,
    std: 1,
    runs: [mean, mean],
    C: 0.01,
    cScores: [],
    trainPerRun: 30,
    test: 20,
    dim: 64,
    knn: { k: 20, temperature: 0.07, mean, std: 1, runs: [mean, mean] },
  });
  const sweep: SweepFile = {
    vary: "net",
    settings: { vary: "net", "--data": path, "eval data": script },
    protocol: "caltech101",
    evalData: script,
    points: [{
      name: `net=${script}`,
      x: script,
      status: "failed",
      error: script,
      results: {
        scale: { data: path, net: script, N: 8, K: 4, steps: 2, samples: 16, method: "paper" },
        protocol: "caltech101",
        evalData: script,
        learned: result(40),
        random: result(30),
        raw: result(20),
        seconds: 1,
      },
    }],
    updated: "",
  };
  await Deno.mkdir(`${tmp.path}/sweep`);
  await writeSweep(`${tmp.path}/sweep`, sweep);
  const dom = await renderedDom(`${tmp.path}/sweep/sweep.html`, `${tmp.path}/chromium`);
  assert.match(dom, /<title>network<\/title>/, "no script of the sweep ran");
  assert.match(dom, /data-chart="drawn"/);
  const escaped = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  assert.ok(dom.includes(`<li>--data: ${escaped(path)}</li>`), "the data path, as text");
  assert.ok(dom.includes(`<td>net=${escaped(script)}</td>`), "the point's name, as text");
  assert.match(await Deno.readTextFile(`${tmp.path}/sweep/sweep.md`), /failed: <\/script>/);

  const inv: InvarianceResult = {
    run: script,
    net: script,
    step: 1,
    method: "paper",
    patches: { n: 2, from: path },
    measure: "m",
    transforms: TRANSFORMS.map((name) => ({
      name,
      axis: script,
      log: false,
      x: [-1, 0, 1],
      curves: [{ kind: "raw" as const, layer: script, mean: [1, 0, 1], std: [0, 0, 0], between: 2 }],
    })),
  };
  await Deno.mkdir(`${tmp.path}/inv`);
  await writeInvariance(`${tmp.path}/inv`, inv);
  const page = await renderedDom(`${tmp.path}/inv/invariance.html`, `${tmp.path}/chromium-inv`);
  assert.ok(page.includes(`<title>Invariance of ${escaped(script)}</title>`), "no script of the run ran");
  assert.match(page, /data-chart="drawn"/);
});

Deno.test("a sweep.json edited into other types is refused in one line before it is shown again", async () => {
  await using tmp = await tempDir();
  const result = { protocol: "stl10", metric: "accuracy", mean: 26, std: 0, runs: [26], C: 10 };
  const point = {
    name: "N=10",
    x: 10,
    status: "done",
    train: {
      data: "synthetic",
      net: "16c5-32f",
      classes: 10,
      perClass: 10,
      transforms: ["color"],
      steps: 5,
      samples: 160,
    },
    surrogate: { step: 5, val_accuracy: 0.2, val_loss: 2.3 },
    results: {
      scale: { data: "synthetic", net: "16c5-32f", N: 10, K: 10, steps: 5, samples: 160, method: "paper" },
      protocol: "stl10",
      evalData: "synthetic",
      learned: result,
      seconds: 1,
    },
  };
  const file = (points: unknown[]) => ({
    vary: "N",
    settings: { vary: "N" },
    protocol: "stl10",
    evalData: "x",
    points,
  });
  const write = (f: unknown) => Deno.writeTextFile(`${tmp.path}/sweep.json`, JSON.stringify(f));
  await write(file([point]));
  assert.equal((await readSweep(tmp.path))!.points[0].name, "N=10");
  const edits: [unknown, RegExp][] = [
    [{ ...point, status: "</script><script>alert(1)</script>" }, /points\[0\]\.status/],
    [{ ...point, results: { ...point.results, learned: { ...result, mean: "abc" } } }, /learned\.mean is "abc"/],
    [{ ...point, train: { ...point.train, transforms: "color" } }, /points\[0\]\.train/],
    [{ ...point, surrogate: { step: 5, val_accuracy: "NaN" } }, /points\[0\]\.surrogate/],
  ];
  for (const [p, re] of edits) {
    await write(file([p]));
    await assert.rejects(() => readSweep(tmp.path), (e) => e instanceof UserError && re.test(e.message));
  }
});
