import assert from "node:assert/strict";
import { listTree, oneLineError, ROOT, task, tempDir, tinyRunArgs } from "./helpers.ts";

Deno.test("unknown flags and commands are refused with one line", async () => {
  oneLineError(await task("data", ["inspect", "synthetic", "--verbose"]), /Unknown option '--verbose'/);
  oneLineError(await task("data", ["frobnicate"]), /unknown command "frobnicate"/);
  oneLineError(await task("reproduce", ["--preset-typo", "x"]), /Unknown option '--preset-typo'/);
});

Deno.test("preview: bad index and bad output name are refused, nothing is written", async () => {
  await using tmp = await tempDir();
  const spec = "synthetic:unlabeled=0,train=20,test=20,fold=10,seed=2";
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const out = `${tmp.path}/out`;
  await Deno.mkdir(out);
  oneLineError(
    await task("data", ["preview", spec, "--split", "test", "--index", "20", "--out", `${out}/a.png`], env),
    /--index 20: expected an integer in \[0, 19\]/,
  );
  oneLineError(await task("data", ["preview", spec, "--out", `${out}/a.jpg`], env), /expected a \.png/);
  oneLineError(
    await task("data", ["preview", spec, "--split", "unlabeled", "--out", `${out}/a.png`], env),
    /split "unlabeled" not found/,
  );
  assert.deepEqual(listTree(out), []);
  // A file the user has is never written over.
  await Deno.writeTextFile(`${out}/mine.png`, "mine");
  oneLineError(await task("data", ["preview", spec, "--out", `${out}/mine.png`], env), /a file is there already/);
  assert.equal(await Deno.readTextFile(`${out}/mine.png`), "mine");
});

Deno.test("--help on every task: usage and every flag with its meaning, exit 0", async () => {
  const tasks = [
    ...["reproduce", "pretrain", "seeds", "augment", "evaluate", "table1", "data", "companion", "fidelity"],
    "experiment",
  ];
  const results = await Promise.all(tasks.map((t) => task(t, ["--help"])));
  for (const [i, r] of results.entries()) {
    assert.equal(r.code, 0, `${tasks[i]}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: deno task ${tasks[i]}`), tasks[i]);
    // Every flag line says what the flag does.
    for (const line of r.stdout.split("\n").filter((l) => /^\s+--/.test(l))) {
      assert.match(line, /^\s+--\S+( VALUE)?\s{2,}\S/, `${tasks[i]}: "${line}"`);
    }
  }
  const pretrain = results[1].stdout;
  for (const flag of ["--out", "--classes", "--per-class", "--method", "--resume", "--lr"]) {
    assert.match(pretrain, new RegExp(`\\n  ${flag}\\b`), flag);
  }
  assert.equal((await task("seeds", ["-h"])).code, 0);
});

Deno.test("a negative number after a flag is its value, answered as a bad value (not an ambiguous flag)", async () => {
  oneLineError(
    await task("pretrain", ["--out", "/nonexistent/x", "--lr", "-0.5"]),
    /--lr -0\.5: the learning rate must be a positive number/,
  );
  oneLineError(await task("seeds", ["--out", "/nonexistent/x", "--n", "-3"]), /--n -3: expected an integer/);
  oneLineError(await task("seeds", ["--out", "/nonexistent/x", "--n", "0x10"]), /--n 0x10: expected an integer/);
});

Deno.test("the ETA of a resumed run counts only the steps made since it resumed", async () => {
  const { Progress } = await import("../lib/util/cli.ts");
  // Resumed at step 4150 of 12650, 100 steps made in 30 s: 8400 left at 3.33 steps/s is 42 minutes, not 7.
  assert.equal(Math.round(Progress.eta(4250, 12650, 4150, 30) / 60), 42);
  assert.equal(Progress.eta(10, 100, 10, 5), Infinity);
});

Deno.test("a progress line starts again, with its own clock, when its count goes back (a sweep's next point)", async () => {
  const { progressBars } = await import("../lib/util/cli.ts");
  const made: string[] = [], seen: number[][] = [];
  const report = progressBars((label, total) => {
    made.push(`${label}/${total}`);
    const counts: number[] = [];
    seen.push(counts);
    return { update: (done: number) => void counts.push(done) };
  });
  for (const d of [0, 3, 9]) report("seeds", d, 9);
  report("features", 1, 5);
  for (const d of [0, 4]) report("seeds", d, 9);
  report("seeds", 4, 9);
  assert.deepEqual(made, ["seeds/9", "features/5", "seeds/9"]);
  assert.deepEqual(seen, [[0, 3, 9], [1], [0, 4, 4]]);
});

Deno.test("file-system faults are one line naming the path and what was being done", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(`${tmp.path}/a-file`, "x");
  oneLineError(
    await task("pretrain", ["--out", `${tmp.path}/a-file/run`, "--steps", "1"]),
    /--out .*a-file\/run: cannot make this folder, .*a-file is a file/,
  );
  oneLineError(
    await task("seeds", [
      "--n",
      "3",
      "--data",
      "synthetic:unlabeled=20,train=20,test=10,fold=10",
      "--out",
      `${tmp.path}/a-file/s`,
    ], {
      EXEMPLAR_CACHE: `${tmp.path}/cache`,
    }),
    /--out .*a-file\/s: cannot make this folder, .*a-file is a file/,
  );
  await Deno.mkdir(`${tmp.path}/run`);
  await Deno.writeTextFile(`${tmp.path}/run/config.json`, JSON.stringify({ train: { net: "8c5-16f" } }));
  await Deno.writeTextFile(`${tmp.path}/run/results.json`, '{"scale": {"net"');
  oneLineError(await task("table1", ["--run", `${tmp.path}/run`]), /results\.json: empty or damaged/);
});

Deno.test("deno task test on a machine without Jupyter stops at once with the command that installs it", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/tests/preflight.ts`],
    env: { EXEMPLAR_PYTHON: "/nonexistent/python3", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(r.stderr);
  oneLineError(
    { code: r.code, stderr: err },
    /the tests need Jupyter.*apt-get install --no-install-recommends jupyter-nbconvert jupyter-client/,
  );
  assert.equal(r.code, 2);
  // Here, with everything installed, it passes.
  assert.equal(
    (await new Deno.Command(Deno.execPath(), { args: ["run", "-A", `${ROOT}/tests/preflight.ts`] }).output()).code,
    0,
  );
});

Deno.test("every task given a file as its output folder answers one line, exit 2, before any work", async () => {
  await using tmp = await tempDir();
  const file = `${tmp.path}/a-file`;
  await Deno.writeTextFile(file, "mine");
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const data = "synthetic:unlabeled=20,train=20,test=10,fold=10";
  await Deno.mkdir(`${tmp.path}/run`);
  await Deno.writeTextFile(`${tmp.path}/run/results.json`, "{}");
  const runs: [string, string[], string][] = [
    ["reproduce", ["--scale", "tiny", "--out", file], "--out"],
    ["pretrain", ["--steps", "1", "--minutes", "1", "--out", file], "--out"],
    ["seeds", ["--data", data, "--n", "3", "--out", file], "--out"],
    ["augment", ["--data", data, "--out", file], "--out"],
    ["table1", ["--run", `${tmp.path}/run`, "--out", file], "--out"],
    ["companion", ["--out", file, "--notebooks", "04_table1"], "--out"],
    ["export", ["--run", `${tmp.path}/run`, "--out", file], "--out"],
    ["data", ["download", "stl10", "--to", file, "--url", "http://127.0.0.1:9/none"], "--to"],
  ];
  const results = await Promise.all(runs.map(([name, args]) => task(name, args, env)));
  for (const [i, r] of results.entries()) {
    const [name, , flag] = runs[i];
    oneLineError(r, new RegExp(`^error: ${flag} .*a-file: a file, not a folder`));
    assert.equal(r.code, 2, name);
    assert.equal(r.stderr.trim().split("\n").length, 1, `${name} did work first: ${r.stderr}`);
  }
  assert.equal(await Deno.readTextFile(file), "mine");
  assert.deepEqual(listTree(tmp.path), ["a-file", "run", "run/results.json"]);
});

Deno.test("table1 --out: never over a user's files; again into its own folder or a run folder", async () => {
  await using tmp = await tempDir();
  const run = `${tmp.path}/run`;
  await Deno.mkdir(run);
  await Deno.writeTextFile(`${run}/config.json`, JSON.stringify({ train: { net: "8c5-16f" } }));
  const mine = `${tmp.path}/mine`;
  await Deno.mkdir(mine);
  await Deno.writeTextFile(`${mine}/table1.md`, "my notes");
  const refused = await task("table1", ["--out", mine]);
  oneLineError(refused, /--out .*mine: the folder holds files the project did not write \(table1\.md\)/);
  assert.equal(refused.code, 2);
  assert.deepEqual(listTree(mine), ["table1.md"]);
  assert.equal(await Deno.readTextFile(`${mine}/table1.md`), "my notes");
  const own = `${tmp.path}/own`;
  for (let i = 0; i < 2; i++) assert.equal((await task("table1", ["--out", own])).code, 0);
  assert.match(await Deno.readTextFile(`${own}/.exemplar-output`), /^written by deno task table1\n$/);
  // A run folder is the project's: Table 1 goes beside its files, and no marker is left there.
  assert.equal((await task("table1", ["--out", run])).code, 0);
  assert.deepEqual(listTree(run), ["config.json", "plotly.min.js", "table1-chart.json", "table1.html", "table1.md"]);
});

Deno.test("seeds and augment --out: never over a user's files; one marker for both in a folder of their own", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const data = "synthetic:unlabeled=40,train=10,test=10,fold=10";
  const mine = `${tmp.path}/mine`;
  await Deno.mkdir(mine);
  await Deno.writeTextFile(`${mine}/seeds.png`, "my picture");
  for (const name of ["seeds", "augment"]) {
    const r = await task(name, ["--data", data, "--n", "4", "--out", mine], env);
    oneLineError(r, /--out .*mine: the folder holds files the project did not write \(seeds\.png\)/);
    assert.equal(r.code, 2);
  }
  assert.deepEqual(listTree(mine), ["seeds.png"]);
  const own = `${tmp.path}/own`;
  assert.equal((await task("seeds", ["--data", data, "--n", "4", "--out", own], env)).code, 0);
  assert.equal((await task("augment", ["--data", data, "--n", "4", "--out", own], env)).code, 0);
  assert.equal(
    await Deno.readTextFile(`${own}/.exemplar-output`),
    "written by deno task seeds\nwritten by deno task augment\n",
  );
});

Deno.test("pretrain and reproduce --out: never into a folder of a user's files; a run of their own is continued", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const mine = `${tmp.path}/mine`;
  await Deno.mkdir(mine);
  await Deno.writeTextFile(`${mine}/metrics.jsonl`, "my notes");
  await Deno.writeTextFile(`${mine}/index.html`, "<p>my page</p>");
  for (const [name, args] of [["pretrain", tinyRunArgs(mine, 2)], ["reproduce", ["--scale", "tiny", "--out", mine]]]) {
    const r = await task(name as string, args as string[], env);
    oneLineError(r, /--out .*mine: the folder holds files the project did not write \(index\.html, metrics\.jsonl\)/);
    assert.equal(r.code, 2, name as string);
  }
  assert.deepEqual(listTree(mine), ["index.html", "metrics.jsonl"]);
  assert.equal(await Deno.readTextFile(`${mine}/metrics.jsonl`), "my notes");
  // A new run's folder is the project's from its first file on: the same command continues it, and a task that
  // writes a folder of its own (export) does not write into it.
  const run = `${tmp.path}/run`;
  for (const steps of [2, 3]) {
    const r = await task("pretrain", tinyRunArgs(run, steps), env);
    assert.equal(r.code, 0, r.stderr);
  }
  const exported = await task("export", ["--run", run, "--out", run], env);
  oneLineError(exported, /--out .*run is a pretraining run's folder; give a folder of its own for deno task export/);
  assert.ok(!listTree(run).includes("model.json"));
});

Deno.test("a --run that names no folder, or a file: one line, and no folder made on its way", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const cases: [string, string[]][] = [
    ["evaluate", ["--run", `${tmp.path}/no/such/run`]],
    ["export", ["--run", `${tmp.path}/no/such/run`, "--out", `${tmp.path}/model`]],
  ];
  for (const [name, args] of cases) {
    const r = await task(name, args, env);
    oneLineError(r, /no\/such\/run: no trained checkpoint/);
    assert.equal(r.code, 2, name);
    assert.deepEqual(listTree(tmp.path).filter((p) => !p.startsWith("cache")), [], name);
  }
  // A file given as the run: said so, and left as it was, by every task that reads a run.
  await Deno.writeTextFile(`${tmp.path}/notes.txt`, "mine");
  const file = `${tmp.path}/notes.txt`;
  const readers: [string, string[]][] = [
    ["evaluate", ["--run", file]],
    ["export", ["--run", file, "--out", `${tmp.path}/model`]],
    ["experiment", ["--invariance", "--run", file, "--out", `${tmp.path}/inv`]],
  ];
  for (const [name, args] of readers) {
    const r = await task(name, args, env);
    oneLineError(r, /notes\.txt: a file, not a run folder/);
    assert.equal(r.code, 2, name);
    assert.equal(await Deno.readTextFile(file), "mine");
  }
  assert.deepEqual(listTree(tmp.path).filter((p) => !p.startsWith("cache")), ["notes.txt"]);
});

Deno.test("pretrain and reproduce on a run folder whose config.json is damaged: one line naming config.json", async () => {
  await using tmp = await tempDir();
  const run = `${tmp.path}/run`;
  await Deno.mkdir(run);
  await Deno.writeTextFile(`${run}/config.json`, '{"train": {"lr": NaN}}');
  await Deno.writeTextFile(`${run}/checkpoint.ckpt`, "EXCNNCK2");
  for (const args of [tinyRunArgs(run, 2), ["--scale", "tiny", "--out", run]]) {
    const r = await task(args.includes("--scale") ? "reproduce" : "pretrain", args, {
      EXEMPLAR_CACHE: `${tmp.path}/c`,
    });
    oneLineError(r, /run\/config\.json: not JSON \(expected a run's config\.json\)/);
  }
  assert.deepEqual(listTree(run), ["checkpoint.ckpt", "config.json"]);
});

Deno.test("a user's file named with a line break, in a refused --out: still one line", async () => {
  await using tmp = await tempDir();
  const mine = `${tmp.path}/mine`;
  await Deno.mkdir(mine);
  await Deno.writeTextFile(`${mine}/my\nnotes.md`, "mine");
  const r = await task("table1", ["--out", mine]);
  oneLineError(r, /--out .*mine: the folder holds files the project did not write \("my\\nnotes\.md"\)/);
  assert.deepEqual(listTree(mine), ["my\nnotes.md"]);
});
