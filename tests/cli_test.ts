import assert from "node:assert/strict";
import { listTree, oneLineError, task, tempDir } from "./helpers.ts";

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
