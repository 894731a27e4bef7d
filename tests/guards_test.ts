/**
 * Nothing silently wrong: a diverged run stops and keeps only a usable checkpoint, a network that is not usable is
 * never evaluated, cached features never outlive their images, a run folder is used by one task at a time and never
 * receives foreign seeds, a refused run writes nothing, and sizes that cannot fit are refused before any work.
 */
import { useCacheDir } from "../lib/util/fsutil.ts";
import assert from "node:assert/strict";
import { loadCheckpoint, saveCheckpoint } from "../lib/checkpoint.ts";
import { TRAIN_DEFAULTS, type TrainConfig } from "../lib/config.ts";
import { loadRunCheckpoint, weightTrouble } from "../lib/run_folder.ts";
import { pretrain } from "../lib/train.ts";
import { UserError } from "../lib/util/errors.ts";
import { CALTECH_TINY, listTree, oneLineError, task, tempDir, tinyRunArgs } from "./helpers.ts";

const DATA = "synthetic:unlabeled=60,train=10,test=10,fold=10";
const quiet = () => {};

/** A tiny run's settings. */
function tiny(change: Partial<TrainConfig> = {}): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    data: DATA,
    net: "8c5-16f",
    classes: 12,
    perClass: 6,
    steps: 20,
    batch: 8,
    logEvery: 5,
    validEvery: 10,
    workers: 1,
    ...change,
  };
}

/** The bytes of every file of a folder, by name (to see that nothing changed). */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of listTree(dir)) {
    const st = await Deno.stat(`${dir}/${name}`);
    if (st.isFile) out[name] = `${st.mtime?.getTime()}:${(await Deno.readFile(`${dir}/${name}`)).join(",")}`;
  }
  return out;
}

Deno.test("a run that diverges stops with one line naming the step and the rate, and keeps its last usable checkpoint", async () => {
  await using tmp = await tempDir();
  useCacheDir(`${tmp.path}/cache`);
  // A checkpoint at every step: the last one before the weights blew up is what must stay.
  const out = `${tmp.path}/run`;
  const err = await pretrain(tiny({ lr: 10, steps: 300 }), {
    out,
    backend: "wasm",
    checkpointMinutes: 0,
    log: quiet,
  }).then(() => null, (e) => e);
  assert.ok(err instanceof UserError, `expected the run to stop, got ${err}`);
  const m = /^training diverged by step (\d+) at learning rate 10: .*lower the learning rate \(--lr\)\. (.*)$/.exec(
    err.message,
  );
  assert.ok(m, err.message);
  const kept = /The last checkpoint \(step (\d+)\) is kept as it was\./.exec(m[2]);
  if (kept) {
    const ck = await loadRunCheckpoint(out);
    assert.equal(ck.state.step, Number(kept[1]));
    assert.ok(ck.state.step < Number(m[1]));
    assert.equal(weightTrouble(ck.weights), null, "the checkpoint kept holds a usable network");
  } else assert.match(m[2], /No checkpoint was written/);

  // As a task: weights that are infinite after one step leave no checkpoint at all.
  const inf = await task("pretrain", tinyRunArgs(`${tmp.path}/inf`, 1, ["--lr", "1e300"]), {
    EXEMPLAR_CACHE: `${tmp.path}/cache`,
  });
  oneLineError(inf, /training diverged by step 1 at learning rate 1e\+300: .*No checkpoint was written/);
  assert.ok(!listTree(`${tmp.path}/inf`).includes("checkpoint.ckpt"));
  // Weights far past any usable network's, though finite, are a divergence too.
  oneLineError(
    await task("pretrain", tinyRunArgs(`${tmp.path}/big`, 2, ["--lr", "1e6"]), {
      EXEMPLAR_CACHE: `${tmp.path}/cache`,
    }),
    /training diverged by step 2 .*a weight reached/,
  );
});

Deno.test("evaluate and export refuse a network whose weights are not finite", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const run = `${tmp.path}/run`;
  assert.equal((await task("pretrain", tinyRunArgs(run, 4), env)).code, 0);
  const ck = await loadCheckpoint(`${run}/checkpoint.ckpt`);
  ck.arrays[0].data[3] = NaN;
  await saveCheckpoint(`${run}/checkpoint.ckpt`, ck);
  oneLineError(
    await task("evaluate", ["--run", run, "--no-baselines", "--runs", "1"], env),
    /conv1\.w holds weights that are not numbers \(NaN\): the run diverged/,
  );
  oneLineError(await task("export", ["--run", run, "--out", `${tmp.path}/model`], env), /the run diverged/);
});

Deno.test("cached features follow their images: replaced images (same names, same count) are read again; a damaged cache is recomputed", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const run = `${tmp.path}/run`;
  assert.equal((await task("pretrain", tinyRunArgs(run, 4), env)).code, 0);
  // Two classes of ten photographs.
  const src = `${CALTECH_TINY}/101_ObjectCategories`;
  const files = (cls: string) => [...Deno.readDirSync(`${src}/${cls}`)].map((e) => e.name).sort().slice(0, 10);
  const imgs = `${tmp.path}/imgs`;
  for (const cls of ["car_side", "ketch"]) {
    await Deno.mkdir(`${imgs}/${cls}`, { recursive: true });
    for (const f of files(cls)) await Deno.copyFile(`${src}/${cls}/${f}`, `${imgs}/${cls}/${f}`);
  }
  const evaluate = async () => {
    const r = await task("evaluate", ["--run", run, "--data", `folder:${imgs}`, "--runs", "2", "--knn-k", "0"], env);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(await Deno.readTextFile(`${run}/results.json`));
    return [res.learned, res.random, res.raw].map((p) => p.runs);
  };
  // An evaluation on the run's own data first: the folder's evaluation keeps it beside its own results.json.
  const own = await task("evaluate", ["--run", run, "--no-baselines", "--runs", "1", "--knn-k", "0"], env);
  assert.equal(own.code, 0, own.stderr);
  const ownResults = await Deno.readTextFile(`${run}/results.json`);
  const first = await evaluate();
  const kept = [...Deno.readDirSync(run)].map((e) => e.name).filter((n) => /^results-stl10-\w{8}\.json$/.test(n));
  assert.equal(kept.length, 1, "the earlier evaluation is kept under its own name");
  assert.equal(await Deno.readTextFile(`${run}/${kept[0]}`), ownResults);
  // Every image replaced by another photograph, under the same names.
  const laptops = files("laptop");
  for (const [k, f] of files("car_side").entries()) {
    await Deno.copyFile(`${src}/laptop/${laptops[k]}`, `${imgs}/car_side/${f}`);
  }
  const cars = [...Deno.readDirSync(`${src}/car_side`)].map((e) => e.name).sort().slice(20, 30);
  for (const [k, f] of files("ketch").entries()) {
    await Deno.copyFile(`${src}/car_side/${cars[k]}`, `${imgs}/ketch/${f}`);
  }
  const after = await evaluate();
  await Deno.remove(`${run}/features`, { recursive: true });
  await Deno.remove(`${tmp.path}/cache/features`, { recursive: true }); // (the baselines' cache)
  const fresh = await evaluate();
  assert.deepEqual(after, fresh, "the features of the new images, not the cached ones of the old");
  assert.notDeepEqual(fresh, first, "(the new images do score otherwise)");

  // Damaged cache files: one cut short, one with its bytes changed, one whose description is not JSON.
  const cacheFiles = (ext: string) =>
    [`${run}/features`, `${tmp.path}/cache/features`].flatMap((d) =>
      [...Deno.readDirSync(d)].map((e) => `${d}/${e.name}`).filter((f) => f.endsWith(ext)).sort()
    );
  const bins = cacheFiles(".f32"), metas = cacheFiles(".json");
  assert.ok(bins.length >= 3, bins.join(", "));
  await Deno.truncate(bins[0], 100);
  const bytes = await Deno.readFile(bins[1]);
  bytes[bytes.length - 1] ^= 0x40;
  await Deno.writeFile(bins[1], bytes);
  await Deno.writeTextFile(metas[2], "{not json");
  assert.deepEqual(await evaluate(), fresh);
});

Deno.test("seeds into a run's folder: other seeds are refused; the run's own are drawn again the same; a continued run checks its seeds", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const run = `${tmp.path}/run`;
  assert.equal((await task("pretrain", tinyRunArgs(run, 4), env)).code, 0);
  const before = await snapshot(run);
  oneLineError(
    await task("seeds", ["--data", DATA, "--n", "5", "--out", run], env),
    /is a pretraining run's folder \(data .*N = 12.*\); its seeds are not replaced/,
  );
  oneLineError(await task("seeds", ["--data", DATA, "--n", "12", "--seed", "1", "--out", run], env), /not replaced/);
  assert.deepEqual(await snapshot(run), before);
  const seedsBin = await Deno.readFile(`${run}/seeds.bin`);
  const same = await task("seeds", ["--data", DATA, "--n", "12", "--out", run], env);
  assert.equal(same.code, 0, same.stderr);
  assert.deepEqual(await Deno.readFile(`${run}/seeds.bin`), seedsBin, "the run's own seeds, drawn again");

  // Foreign seeds put in by hand: another N, then the same N from another seed. Continuing is refused.
  const other = async (args: string[]) => {
    const dir = `${tmp.path}/other-${args.join("")}`;
    assert.equal((await task("seeds", ["--data", DATA, ...args, "--out", dir], env)).code, 0);
    for (const f of ["seeds.bin", "seeds.json"]) await Deno.copyFile(`${dir}/${f}`, `${run}/${f}`);
  };
  await other(["--n", "13"]);
  oneLineError(
    await task("pretrain", tinyRunArgs(run, 8), env),
    /its seeds \(seeds\.bin, seeds\.json\) are not the ones the run was made with \(13 seeds for N = 12\)/,
  );
  await other(["--n", "12", "--seed", "1"]);
  oneLineError(await task("pretrain", tinyRunArgs(run, 8), env), /not the ones the run was made with \(another hash\)/);
});

Deno.test("a refused reproduce writes nothing into the run folder; a refused new run leaves no folder behind", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const run = `${tmp.path}/run`;
  const args = ["--scale", "tiny", "--out", run];
  assert.equal((await task("reproduce", args, env)).code, 0);
  const before = await snapshot(run);
  await new Promise((r) => setTimeout(r, 20)); // (a rewrite would change the modification times)
  oneLineError(
    await task("reproduce", [...args, "--net", "8c5-8f"], env),
    /that run was made with net = .*; the run folder is left as it is/,
  );
  assert.deepEqual(await snapshot(run), before);
  // A new run refused once its folder was made (the data is missing) removes the folder it made.
  oneLineError(
    await task("pretrain", ["--data", `folder:${tmp.path}/nowhere`, "--out", `${tmp.path}/new`], env),
    /folder not found/,
  );
  assert.ok(!listTree(tmp.path).includes("new"));
  // Sizes that cannot fit are refused before the folder is made.
  oneLineError(
    await task("pretrain", tinyRunArgs(`${tmp.path}/huge`, 1, ["--batch", "100000"]), env),
    /--batch 100000 .* needs about [\d.]+ GiB/,
  );
  assert.ok(!listTree(tmp.path).includes("huge"));
});

Deno.test("one class is no classification: refused with one line", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const run = `${tmp.path}/run`;
  assert.equal((await task("pretrain", tinyRunArgs(run, 2), env)).code, 0);
  await Deno.mkdir(`${tmp.path}/one/ketch`, { recursive: true });
  const src = `${CALTECH_TINY}/101_ObjectCategories/ketch`;
  for (const e of [...Deno.readDirSync(src)].slice(0, 6)) {
    await Deno.copyFile(`${src}/${e.name}`, `${tmp.path}/one/ketch/${e.name}`);
  }
  oneLineError(
    await task("evaluate", ["--run", run, "--data", `folder:${tmp.path}/one`], env),
    /a classifier needs at least two classes, and it has 1 \(ketch\)/,
  );
  assert.ok(!listTree(run).includes("results.json"));
});

Deno.test("a run folder in use by another task is refused by every task that reads or writes it", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const run = `${tmp.path}/run`;
  assert.equal((await task("reproduce", ["--scale", "tiny", "--out", run], env)).code, 0);
  // A live pretraining holds it (this test's own process stands in for it).
  const holder = { pid: Deno.pid, host: Deno.hostname(), since: "now", task: "deno task pretrain" };
  await Deno.writeTextFile(`${run}/.lock`, JSON.stringify(holder));
  const busy = new RegExp(`in use by deno task pretrain \\(process ${Deno.pid} on `);
  oneLineError(await task("evaluate", ["--run", run, "--runs", "1"], env), busy);
  oneLineError(await task("export", ["--run", run, "--out", `${tmp.path}/model`], env), busy);
  oneLineError(await task("table1", ["--run", run], env), busy);
  oneLineError(await task("seeds", ["--data", "x", "--n", "3", "--out", run], env), busy);
  oneLineError(await task("reproduce", ["--scale", "tiny", "--out", run], env), busy);
  await Deno.remove(`${run}/.lock`);
  const r = await task("evaluate", ["--run", run, "--runs", "1", "--no-baselines", "--knn-k", "0"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!listTree(run).includes(".lock"));
});
