import assert from "node:assert/strict";
import { listTree, oneLineError, ROOT, task, tempDir } from "./helpers.ts";

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
});

Deno.test("--help on every task: usage and every flag with its meaning, exit 0", async () => {
  const tasks = ["reproduce", "pretrain", "seeds", "augment", "evaluate", "table1", "data", "companion", "fidelity"];
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
});

Deno.test("the ETA of a resumed run counts only the steps made since it resumed", async () => {
  const { Progress } = await import("../lib/util/cli.ts");
  // Resumed at step 4150 of 12650, 100 steps made in 30 s: 8400 left at 3.33 steps/s is 42 minutes, not 7.
  assert.equal(Math.round(Progress.eta(4250, 12650, 4150, 30) / 60), 42);
  assert.equal(Progress.eta(10, 100, 10, 5), Infinity);
});

Deno.test("file-system faults are one line naming the path and what was being done", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(`${tmp.path}/a-file`, "x");
  oneLineError(
    await task("pretrain", ["--out", `${tmp.path}/a-file/run`, "--steps", "1"]),
    /cannot make the folder .*a-file\/run: a file stands where a folder is needed/,
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
    /cannot make the folder .*a-file\/s: a file stands where a folder is needed/,
  );
  await Deno.mkdir(`${tmp.path}/run`);
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
