import assert from "node:assert/strict";
import { useCacheDir } from "../lib/util/fsutil.ts";
import { openDataset } from "../lib/data/mod.ts";
import { ensureSynthetic, insideShape, parseSyntheticSpec, renderSynthetic } from "../lib/data/synthetic.ts";
import { Rng } from "../lib/util/rng.ts";
import { oneLineError, task, tempDir } from "./helpers.ts";

const SMALL = { unlabeled: 30, train: 40, test: 20, fold: 10, seed: 5 };

Deno.test("synthetic data is written as real STL-10 files, deterministically from its seed", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  const quiet = () => {};
  useCacheDir(a.path);
  const dirA = await ensureSynthetic(SMALL, quiet);
  useCacheDir(b.path);
  const dirB = await ensureSynthetic(SMALL, quiet);
  const dirC = await ensureSynthetic({ ...SMALL, seed: 6 }, quiet);
  useCacheDir(null);
  for (const f of ["unlabeled_X.bin", "train_X.bin", "train_y.bin", "test_X.bin", "fold_indices.txt"]) {
    assert.deepEqual(await Deno.readFile(`${dirA}/${f}`), await Deno.readFile(`${dirB}/${f}`), f);
  }
  assert.notDeepEqual(await Deno.readFile(`${dirA}/train_X.bin`), await Deno.readFile(`${dirC}/train_X.bin`));
  const ds = await openDataset(`stl10:${dirA}`);
  assert.equal(ds.splits.unlabeled.length, 30);
  assert.equal(ds.folds!.length, 10);
  assert.ok(ds.folds!.every((f) => f.length === 10 && new Set(f).size === 10));
  const counts = ds.classNames.map((_, c) => ds.splits.train.labels!.filter((y) => y === c).length);
  assert.deepEqual(counts, Array(10).fill(4)); // balanced
});

Deno.test("synthetic images: the object's shape is its class, everything else varies", () => {
  // The shapes differ from one another: each pair disagrees on many points of the unit square.
  const pts: [number, number][] = [];
  for (let i = 0; i < 40; i++) for (let j = 0; j < 40; j++) pts.push([-1 + (i + 0.5) / 20, -1 + (j + 0.5) / 20]);
  for (let a = 0; a < 10; a++) {
    for (let b = a + 1; b < 10; b++) {
      const diff = pts.filter(([u, v]) => insideShape(a, u, v) !== insideShape(b, u, v)).length;
      assert.ok(diff > 100, `shapes ${a} and ${b} differ on only ${diff} points`);
    }
  }
  // Two images of the same class differ (nuisances are random); the same seed gives the same image.
  const x = renderSynthetic(3, new Rng(1)), y = renderSynthetic(3, new Rng(2)), z = renderSynthetic(3, new Rng(1));
  assert.notDeepEqual(x.data, y.data);
  assert.deepEqual(x.data, z.data);
});

Deno.test("synthetic spec: sizes are settable, bad options refused", async () => {
  assert.deepEqual(parseSyntheticSpec("train=50,fold=20,seed=3"), {
    unlabeled: 2000,
    train: 50,
    test: 500,
    fold: 20,
    seed: 3,
  });
  assert.throws(() => parseSyntheticSpec("trian=5"), /unknown option "trian=5"/);
  assert.throws(() => parseSyntheticSpec("train=-4"), /train=-4 is not an integer/);
  assert.throws(() => parseSyntheticSpec("train=20,fold=30"), /fold=30 is larger than train=20/);
  await using tmp = await tempDir();
  const spec = "synthetic:unlabeled=20,train=20,test=20,fold=10,seed=1";
  const r = await task("data", ["inspect", spec], { EXEMPLAR_CACHE: tmp.path });
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.deepEqual(info.splits.unlabeled, { images: 20, shape: [96, 96, 3], labelled: false });
  assert.equal(info.folds.count, 10);
  const out = `${tmp.path}/u.png`;
  const p = await task("data", ["preview", spec, "--split", "unlabeled", "--index", "3", "--out", out], {
    EXEMPLAR_CACHE: tmp.path,
  });
  assert.equal(p.code, 0, p.stderr);
  assert.ok((await Deno.stat(out)).size > 1000);
  oneLineError(await task("data", ["inspect", "synthetic:size=3"]), /unknown option "size=3"/);
});

Deno.test("synthetic sizes are bounded (a typo does not write gigabytes); ~ in a folder spec is the home folder", async () => {
  assert.throws(() => parseSyntheticSpec("unlabeled=1000000"), /unlabeled=1000000 is not an integer in \[0, 100000\]/);
  assert.throws(() => parseSyntheticSpec("train=500000"), /train=500000 is not an integer in \[10, 50000\]/);
  assert.equal(parseSyntheticSpec("train=50000").train, 50_000, "CIFAR-10's training set size");
  assert.throws(() => parseSyntheticSpec("test=20001"), /test=20001 is not an integer in \[10, 20000\]/);
  assert.equal(parseSyntheticSpec("unlabeled=100000").unlabeled, 100000);
  const home = Deno.env.get("HOME")!;
  await assert.rejects(() => openDataset("stl10:~/no-such-folder-here"), new RegExp(`${home}/no-such-folder-here`));
});
