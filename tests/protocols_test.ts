import assert from "node:assert/strict";
import { useCacheDir } from "../lib/util/fsutil.ts";
import { imageToCifar10 } from "../lib/data/cifar10.ts";
import { openDataset } from "../lib/data/mod.ts";
import { rawPixelFeatures } from "../lib/features.ts";
import { newImage } from "../lib/util/image.ts";
import { defaultProtocol, runProtocol } from "../lib/protocols.ts";
import { Rng } from "../lib/util/rng.ts";
import type { Features } from "../lib/svm.ts";
import { CALTECH_TINY, oneLineError, task, tempDir } from "./helpers.ts";

const GRAY: [number, number, number] = [0.5, 0.5, 0.5];

Deno.test("Caltech-101 protocol on real photographs: 30 training images per class, mean per-class accuracy", async () => {
  const ds = await openDataset(`caltech101:${CALTECH_TINY}`);
  let seen = 0;
  const r = await runProtocol("caltech101", ds, (split, idx) => {
    seen = idx.length;
    return rawPixelFeatures(ds.splits[split], idx, 16, GRAY);
  }, { runs: 3, C: 0.01 });
  assert.equal(r.trainPerRun, 90);
  assert.equal(r.test, 30); // 40 per class: 30 train, 10 test
  assert.equal(r.runs.length, 3);
  assert.ok(seen <= 120);
  assert.ok(r.mean > 40, `raw pixels on 3 classes: ${r.mean} %`); // chance is 33 %
});

Deno.test("CIFAR-10(400) and STL-10 protocols on generated files", async () => {
  await using tmp = await tempDir();
  // Class c is a colour: raw pixels separate them.
  const dir = `${tmp.path}/cifar-10-batches-bin`;
  await Deno.mkdir(dir);
  const rng = new Rng(3);
  const rec = (c: number) => {
    const img = newImage(32, 32);
    for (let i = 0; i < img.data.length; i++) {
      img.data[i] = Math.min(255, Math.max(0, (i % 3 === c % 3 ? 60 + 18 * c : 40) + rng.int(60)));
    }
    return imageToCifar10(img, c);
  };
  const batch = (n: number, off: number) => {
    const out = new Uint8Array(n * 3073);
    for (let i = 0; i < n; i++) out.set(rec((i + off) % 10), i * 3073);
    return out;
  };
  for (let b = 1; b <= 5; b++) await Deno.writeFile(`${dir}/data_batch_${b}.bin`, batch(820, b));
  await Deno.writeFile(`${dir}/test_batch.bin`, batch(300, 0));
  const ds = await openDataset(`cifar10:${tmp.path}`);
  const r = await runProtocol("cifar10-400", ds, (split, idx) => rawPixelFeatures(ds.splits[split], idx, 8, GRAY), {
    runs: 2,
    C: 0.1,
  });
  assert.equal(r.trainPerRun, 4000);
  assert.equal(r.test, 300);
  assert.ok(r.mean > 50, `${r.mean}`);
  await assert.rejects(
    () => runProtocol("stl10", ds, () => Promise.reject(new Error("unused"))),
    /stl10 protocol does not fit .*training folds/,
  );

  useCacheDir(`${tmp.path}/cache`);
  const stl = await openDataset("synthetic:unlabeled=0,train=100,test=50,fold=50");
  useCacheDir(null);
  const s = await runProtocol("stl10", stl, (split, idx) => rawPixelFeatures(stl.splits[split], idx, 8, GRAY), {
    C: 0.1,
  });
  assert.equal(s.runs.length, 10); // one per predefined fold
  assert.equal(s.trainPerRun, 50);
  assert.equal(s.test, 50);
});

Deno.test("evaluate: a run folder without a checkpoint, a bad C and a protocol that does not fit are refused", async () => {
  await using tmp = await tempDir();
  oneLineError(await task("evaluate", ["--run", tmp.path]), /no trained checkpoint/);
  oneLineError(await task("evaluate", ["--run", tmp.path, "--C", "0"]), /--C 0: C must lie in \(0, inf\)/);
  oneLineError(await task("evaluate", ["--run", tmp.path, "--C", "inf"]), /--C inf/);
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const r = await task("reproduce", ["--scale", "tiny", "--out", `${tmp.path}/run`], env);
  assert.equal(r.code, 0, r.stderr);
  oneLineError(
    await task("evaluate", [
      "--run",
      `${tmp.path}/run`,
      "--data",
      `folder:${CALTECH_TINY}/101_ObjectCategories`,
      "--protocol",
      "stl10",
    ], env),
    /the stl10 protocol does not fit folder:/,
  );
});

Deno.test("release evaluation: random log-uniform C in the protocol's range, validated as the release does", async () => {
  await using tmp = await tempDir();
  useCacheDir(`${tmp.path}/cache`);
  const stl = await openDataset("synthetic:unlabeled=0,train=100,test=50,fold=50");
  useCacheDir(null);
  const features = (split: string, idx: number[]) => rawPixelFeatures(stl.splits[split], idx, 8, GRAY);
  const release = await runProtocol("stl10", stl, features, { method: "release", runs: 3 });
  // testing/run_net_on_STL_matcaffe_distr.m: 50 draws of C in [2e-4, 2e-1] (log-uniform), B = 5.
  assert.equal(release.cScores.length, 50);
  assert.ok(release.cScores.every((s) => s.C >= 2e-4 && s.C <= 2e-1));
  const logs = release.cScores.map((s) => Math.log10(s.C));
  assert.ok(Math.min(...logs) < -3 && Math.max(...logs) > -1.3, "spread over the decades of the range");
  assert.equal(release.runs.length, 3, "--runs is honoured by the STL-10 protocol");
  // The population standard deviation (the release's), not the sample's.
  const m = release.runs.reduce((a, b) => a + b, 0) / 3;
  const pop = Math.sqrt(release.runs.reduce((a, b) => a + (b - m) ** 2, 0) / 3);
  assert.ok(Math.abs(release.std - pop) < 1e-9, `${release.std} vs ${pop}`);
  const paper = await runProtocol("stl10", stl, features, { runs: 3 });
  assert.deepEqual(paper.cScores.map((s) => s.C), [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10]);
  const sample = Math.sqrt(paper.runs.reduce((a, b) => a + (b - paper.mean) ** 2, 0) / 2);
  assert.ok(Math.abs(paper.std - sample) < 1e-9);
});

Deno.test("folder protocol: your own photographs, stratified splits or your train/test folders", async () => {
  await using tmp = await tempDir();
  // The real photographs as a plain <class>/<image> folder (three classes, 40 each).
  const root = `${tmp.path}/photos`;
  for (const c of ["car_side", "ketch", "laptop"]) {
    await Deno.mkdir(`${root}/${c}`, { recursive: true });
    for (const e of Deno.readDirSync(`${CALTECH_TINY}/101_ObjectCategories/${c}`)) {
      await Deno.copyFile(`${CALTECH_TINY}/101_ObjectCategories/${c}/${e.name}`, `${root}/${c}/${e.name}`);
    }
  }
  const ds = await openDataset(`folder:${root}`);
  assert.equal(defaultProtocol(ds), "folder");
  const features = (split: string, idx: number[]) => rawPixelFeatures(ds.splits[split], idx, 16, GRAY);
  const r = await runProtocol("folder", ds, features, { runs: 4, C: 0.01 });
  assert.equal(r.runs.length, 4);
  assert.equal(r.test, 30); // a quarter of each class: 10 of 40
  assert.equal(r.trainPerRun, 90);
  assert.equal(r.metric, "mean per-class accuracy");
  assert.ok(r.mean > 40 && r.knn!.runs.length === 4, `${r.mean}`);
  // With train/ and test/ folders: exactly those, one run.
  const split = `${tmp.path}/split`;
  for (const [i, c] of ["car_side", "ketch", "laptop"].entries()) {
    for (const s of ["train", "test"]) await Deno.mkdir(`${split}/${s}/${c}`, { recursive: true });
    const files = [...Deno.readDirSync(`${root}/${c}`)].map((e) => e.name).sort();
    for (const [j, f] of files.entries()) {
      await Deno.copyFile(`${root}/${c}/${f}`, `${split}/${j < 30 + i ? "train" : "test"}/${c}/${f}`);
    }
  }
  const ds2 = await openDataset(`folder:${split}`);
  const r2 = await runProtocol("folder", ds2, (s, idx) => rawPixelFeatures(ds2.splits[s], idx, 16, GRAY), { C: 0.01 });
  assert.equal(r2.runs.length, 1);
  assert.equal(r2.trainPerRun, 30 + 31 + 32);
  assert.equal(r2.test, 10 + 9 + 8);
});

Deno.test("the paper method validates C by 5-fold cross-validation on the first run's training images", async () => {
  const { protocolPlan } = await import("../lib/protocols.ts");
  const { METHODS } = await import("../lib/presets.ts");
  const ds = await openDataset(`caltech101:${CALTECH_TINY}`);
  const e = METHODS.paper.eval;
  const plan = protocolPlan("caltech101", ds, new Rng(0, 9001), e, 3);
  const y = ds.splits.all.labels!;
  assert.equal(plan.cFolds!.length, e.cFolds);
  const held = plan.cFolds!.flatMap((f) => f.valid).sort((a, b) => a - b);
  assert.deepEqual(held, [...plan.train[0]].sort((a, b) => a - b), "every training image is held out once");
  for (const f of plan.cFolds!) {
    // 30 images per class in 5 folds: 6 of every class held out, the other 24 trained on.
    for (let c = 0; c < 3; c++) {
      assert.equal(f.valid.filter((i) => y[i] === c).length, 6);
      assert.equal(f.train.filter((i) => y[i] === c).length, 24);
    }
    assert.ok(f.valid.every((i) => !f.train.includes(i)));
  }
  // C's score is its mean over the folds; the run reports the C it chose and each one's score.
  const r = await runProtocol("caltech101", ds, (split, idx) => rawPixelFeatures(ds.splits[split], idx, 16, GRAY), {
    runs: 2,
  });
  assert.equal(r.cScores.length, e.cGrid.length);
  const best = Math.max(...r.cScores.map((s) => s.accuracy));
  assert.equal(r.C, r.cScores.find((s) => s.accuracy > best - 1e-12)!.C, "the smallest C of the best score");
  ds.close();
});

Deno.test("the SVMs train in worker threads: 1 and 2 workers give the same results; failures stop it cleanly", async () => {
  const { SVMWorkers } = await import("../lib/svm.ts");
  const { METHODS } = await import("../lib/presets.ts");
  const ds = await openDataset(`caltech101:${CALTECH_TINY}`);
  // (Decoded once: every protocol below asks for the same images.)
  const decoded = new Map<string, Promise<Features>>();
  const features = (split: string, idx: number[]) => {
    const key = `${split}:${idx}`;
    if (!decoded.has(key)) decoded.set(key, rawPixelFeatures(ds.splits[split], idx, 16, GRAY));
    return decoded.get(key)!;
  };
  const progress: string[] = [];
  const one = await runProtocol("caltech101", ds, features, {
    runs: 2,
    workers: 1,
    onProgress: (what, done, total) => progress.push(`${what} ${done}/${total}`),
  });
  const pool = new SVMWorkers(2);
  try {
    const two = await runProtocol("caltech101", ds, features, { runs: 2, workers: pool });
    assert.deepEqual(two, one);
    // Every class of every C on every fold, and of each run, was solved by the workers.
    const e = METHODS.paper.eval, Cs = e.cFolds * e.cGrid.length;
    assert.equal(pool.solved, (Cs + 2) * 3);
    // C validation's progress counts classes done from 0 (reported as the stage starts, so that its line's clock
    // starts then): each fold's (its C values solved as one path), at least when the fold is done; then the runs.
    const K = 3, units = e.cFolds * K;
    const validation = progress.filter((p) => p.startsWith("C validation "));
    const done = validation.map((p) => Number(/ (\d+)\/(\d+)$/.exec(p)![1]));
    assert.ok(validation.every((p) => p.endsWith(`/${units}`)), validation.join(", "));
    assert.ok(done.every((d, i) => i === 0 || d > done[i - 1]), validation.join(", "));
    for (let f = 1; f <= e.cFolds; f++) assert.ok(done.includes(f * K), `fold ${f} done: ${validation.join(", ")}`);
    assert.equal(done[0], 0);
    assert.deepEqual(progress.slice(validation.length), ["runs 0/2", "runs 1/2", "runs 2/2"]);
    // The caller's workers stay open for its next protocol.
    const fixed = await runProtocol("caltech101", ds, features, { runs: 2, C: one.C, workers: pool });
    assert.deepEqual(fixed.runs, one.runs);
    assert.equal(pool.solved, (e.cFolds * e.cGrid.length + 4) * 3);
  } finally {
    pool.close();
  }
  // A failure while the next run trains (here, in the log) is thrown, and the run in flight dropped.
  await assert.rejects(
    runProtocol("caltech101", ds, features, {
      runs: 2,
      C: 0.01,
      log: (m) => {
        if (m.startsWith("run 1/")) throw new Error("log failed");
      },
    }),
    /log failed/,
  );
  // Workers closed under a protocol reject it with a clear message.
  const closed = new SVMWorkers(2);
  closed.close();
  await assert.rejects(runProtocol("caltech101", ds, features, { runs: 2, C: 0.01, workers: closed }), /svm workers/);
  await assert.rejects(runProtocol("caltech101", ds, features, { runs: 2, workers: 0 }), /0 SVM workers/);
  ds.close();
});
