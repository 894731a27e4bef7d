/**
 * The release's data files (data/release/): its colour eigenvectors in the release preset's contrast1, its
 * CIFAR-10(400) subsets and Caltech-101 splits in the release preset's protocols, and the refusal of a data set
 * those splits do not index.
 */
import assert from "node:assert/strict";
import { identityParams, transformPatch } from "../lib/augment.ts";
import type { Dataset, Split } from "../lib/data/dataset.ts";
import { noneSkipped } from "../lib/data/dataset.ts";
import { openDataset } from "../lib/data/mod.ts";
import { METHODS } from "../lib/presets.ts";
import { protocolPlan, runProtocol } from "../lib/protocols.ts";
import { CONTEXT, PATCH, seedPatches } from "../lib/seeds.ts";
import { SurrogateData } from "../lib/surrogate.ts";
import { encodePng, newImage, type RGBImage } from "../lib/util/image.ts";
import { Rng } from "../lib/util/rng.ts";
import { ROOT, tempDir } from "./helpers.ts";

const release = (file: string) => JSON.parse(Deno.readTextFileSync(`${ROOT}/data/release/${file}`));

/** An in-memory split of blank images with the given labels. */
function blankSplit(name: string, labels: Int32Array, side: number): Split {
  return {
    name,
    length: labels.length,
    labels,
    size: { width: side, height: side },
    image: () => Promise.resolve(newImage(side, side)),
    imageSize: () => Promise.resolve({ width: side, height: side }),
    source: (i) => `${name}#${i}`,
  };
}

Deno.test("release contrast1: the release's colour eigenvectors, not the principal components of the seeds", async () => {
  // Seeds whose colours vary along red only, over 0..255 as photographs do: their own first principal component is
  // red, the release's is brightness.
  const images: RGBImage[] = Array.from({ length: 8 }, (_, s) => {
    const img = newImage(96, 96), rng = new Rng(s);
    for (let p = 0; p < 96 * 96; p++) {
      img.data.set([(8 * (p % 96) + 3 * Math.floor(p / 96) + s) % 256, 124 + rng.int(8), 124 + rng.int(8)], 3 * p);
    }
    return img;
  });
  const split: Split = { ...blankSplit("unlabeled", new Int32Array(8), 96), labels: null };
  split.image = (i) => Promise.resolve(images[i]);
  const seeds = await seedPatches(split, { n: 8, seed: 1, method: "paper" });
  const paper = new SurrogateData(seeds, { k: 2, method: "paper" });
  assert.ok(Math.abs(paper.pca.vectors[0][0]) > 0.99, `the seeds' first component: ${paper.pca.vectors[0]}`);

  // color_eigenvectors.mat: the columns of v, eigenvalues d ascending; the preset lists them largest first.
  const { v, d } = release("color_eigenvectors.json");
  const data = new SurrogateData(seeds, { k: 2, method: "release" });
  assert.deepEqual(data.pca.vectors, [2, 1, 0].map((k) => [v[0][k], v[1][k], v[2][k]]));
  assert.deepEqual(data.pca.variances, [d[2], d[1], d[0]]);
  assert.deepEqual(data.pca.mean, paper.pca.mean, "centred on the data's mean colour, as adjust_color.m");

  // The transformation itself: halving the first factor moves every pixel along the release's brightness
  // direction, towards the mean (contrast2 and color at identity, no stretch: contrast1's change shows as it is).
  const colour = { ...data.colour!, stretch: false };
  const p = identityParams(), q = identityParams();
  q.pca = [0.5, 1, 1];
  const a = new Float32Array(PATCH * PATCH * 3), b = new Float32Array(PATCH * PATCH * 3);
  const off = 3 * CONTEXT * CONTEXT;
  transformPatch(seeds.context, off, p, data.pca, a, 0, colour);
  transformPatch(seeds.context, off, q, data.pca, b, 0, colour);
  const bright = [v[0][2], v[1][2], v[2][2]];
  let moved = 0;
  for (let o = 0; o < a.length; o += 3) {
    const delta = [b[o] - a[o], b[o + 1] - a[o + 1], b[o + 2] - a[o + 2]];
    const norm = Math.hypot(...delta);
    if (norm < 0.01) continue;
    moved++;
    const cos = Math.abs(delta.reduce((s, x, k) => s + x * bright[k], 0)) / norm;
    assert.ok(cos > 0.999, `pixel ${o / 3} moved along ${delta}, not along ${bright}`);
  }
  assert.ok(moved > PATCH * PATCH / 2, `${moved} pixels changed`);
});

/** CIFAR-10's class names, label order. */
const CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/** A CIFAR-10-shaped data set of blank 32 x 32 images with the given training labels and 10,000 test images. */
function cifarLike(labels: Int32Array): Dataset {
  return {
    format: "cifar10",
    root: "/generated",
    classNames: CIFAR_CLASSES,
    splits: {
      train: blankSplit("train", labels, 32),
      test: blankSplit("test", Int32Array.from({ length: 10_000 }, (_, i) => i % 10), 32),
    },
    folds: null,
    skipped: noneSkipped(),
    close: () => {},
  };
}

Deno.test("release CIFAR-10(400) subsets: 400 of each class in the official label order; another training set is refused", () => {
  const { train_splits: splits } = release("cifar10_400_splits.json") as { train_splits: number[][] };
  // Each subset lists its 400 images of a class together, classes in label order: read so, the labels agree across
  // the ten subsets and with the first images of data_batch_1 (frog, truck, truck, deer, automobile, automobile,
  // bird, horse, ship, cat) that the subsets take.
  const label = new Int32Array(50_000).fill(-1);
  for (const s of splits) {
    s.forEach((i, pos) => {
      const c = Math.floor(pos / 400);
      assert.ok(label[i - 1] === -1 || label[i - 1] === c, `image ${i}`);
      label[i - 1] = c;
    });
  }
  const first = [6, 9, 9, 4, 1, 1, 2, 7, 8, 3];
  assert.ok(first.filter((c, i) => label[i] === c).length >= 3);
  assert.ok(first.every((c, i) => label[i] === -1 || label[i] === c));
  // The images no subset takes fill each class up to 5,000, as in CIFAR-10.
  const counts = CIFAR_CLASSES.map((_, c) => label.filter((y) => y === c).length);
  for (let i = 0, c = 0; i < label.length; i++) {
    if (label[i] !== -1) continue;
    while (counts[c] === 5000) c++;
    label[i] = c;
    counts[c]++;
  }

  const e = METHODS.release.eval;
  const plan = protocolPlan("cifar10-400", cifarLike(label), new Rng(0), e);
  assert.equal(plan.train.length, 10);
  plan.train.forEach((tr, k) => {
    assert.deepEqual(tr, splits[k].map((i) => i - 1), `subset ${k + 1} is the release's, 0-based`);
    for (let c = 0; c < 10; c++) assert.equal(tr.filter((i) => label[i] === c).length, 400);
  });
  assert.ok(plan.test.every((te) => te.length === 10_000));
  // C: trained on subset 1, validated on subset 2's images not in subset 1.
  assert.deepEqual(plan.cTrain, plan.train[0]);
  const inFirst = new Set(plan.train[0]);
  assert.deepEqual(plan.cValid, plan.train[1].filter((i) => !inFirst.has(i)));
  assert.ok(plan.cValid.length > 3000 && plan.cValid.length < 4000);
  assert.equal(protocolPlan("cifar10-400", cifarLike(label), new Rng(0), e, 3).train.length, 3);

  // The paper method draws its own subsets from the same data.
  const paper = protocolPlan("cifar10-400", cifarLike(label), new Rng(0), METHODS.paper.eval);
  assert.notDeepEqual([...paper.train[0]].sort((a, b) => a - b), [...plan.train[0]].sort((a, b) => a - b));

  const refused = (labels: Int32Array, re: RegExp, runs?: number) =>
    assert.throws(() => protocolPlan("cifar10-400", cifarLike(labels), new Rng(0), e, runs), (err: Error) => {
      assert.match(err.message, re);
      assert.ok(!err.message.includes("\n"), err.message);
      return true;
    });
  refused(label.subarray(1), /index the 50,000 official CIFAR-10 training images; cifar10:\/generated has 49999/);
  refused(
    Int32Array.from(label, (_, i) => label[(i + 1) % label.length]),
    /split 1 \(data\/release\/cifar10_400_splits\.json\) takes \d+ images of class "airplane" where it takes 400: .*\(data_batch_1 \.\.\. data_batch_5/,
  );
  refused(label, /11 runs: the release's CIFAR-10\(400\) has 10 splits/, 11);
});

Deno.test("release CIFAR-10(400) subsets refuse generated CIFAR-10 files of 4,100 images before any feature", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/cifar-10-batches-bin`;
  await Deno.mkdir(dir);
  const records = (n: number) => {
    const out = new Uint8Array(n * 3073);
    for (let i = 0; i < n; i++) out[i * 3073] = i % 10;
    return out;
  };
  for (let b = 1; b <= 5; b++) await Deno.writeFile(`${dir}/data_batch_${b}.bin`, records(820));
  await Deno.writeFile(`${dir}/test_batch.bin`, records(100));
  const ds = await openDataset(`cifar10:${tmp.path}`);
  await assert.rejects(
    () => runProtocol("cifar10-400", ds, () => Promise.reject(new Error("no features")), { method: "release" }),
    /the release's CIFAR-10\(400\) splits .* index the 50,000 official CIFAR-10 training images; .* has 4100 training images in 10 classes$/,
  );
  ds.close();
});

/** Caltech-101's classes and their image counts (101_ObjectCategories, BACKGROUND_Google left out). */
const CALTECH101 = `Faces:435 Faces_easy:435 Leopards:200 Motorbikes:798 accordion:55 airplanes:800 anchor:42 ant:42
barrel:47 bass:54 beaver:46 binocular:33 bonsai:128 brain:98 brontosaurus:43 buddha:85 butterfly:91 camera:50
cannon:43 car_side:123 ceiling_fan:47 cellphone:59 chair:62 chandelier:107 cougar_body:47 cougar_face:69 crab:73
crayfish:70 crocodile:50 crocodile_head:51 cup:57 dalmatian:67 dollar_bill:52 dolphin:65 dragonfly:68
electric_guitar:75 elephant:64 emu:53 euphonium:64 ewer:85 ferry:67 flamingo:67 flamingo_head:45 garfield:34
gerenuk:34 gramophone:51 grand_piano:99 hawksbill:100 headphone:42 hedgehog:54 helicopter:88 ibis:80 inline_skate:31
joshua_tree:64 kangaroo:86 ketch:114 lamp:61 laptop:81 llama:78 lobster:41 lotus:66 mandolin:43 mayfly:40 menorah:87
metronome:32 minaret:76 nautilus:55 octopus:35 okapi:39 pagoda:47 panda:38 pigeon:45 pizza:53 platypus:34 pyramid:57
revolver:82 rhino:59 rooster:49 saxophone:40 schooner:63 scissors:39 scorpion:84 sea_horse:57 snoopy:35
soccer_ball:64 stapler:45 starfish:86 stegosaurus:59 stop_sign:64 strawberry:35 sunflower:85 tick:49 trilobite:86
umbrella:75 watch:239 water_lilly:37 wheelchair:59 wild_cat:34 windsor_chair:56 wrench:39 yin_yang:60`
  .split(/\s+/).map((s) => s.split(":")).map(([name, n]) => ({ name, n: Number(n) }));

Deno.test("release Caltech-101 splits: 30 training and min(50, rest) test images of each class on Caltech-101's layout; another layout is refused", async () => {
  assert.equal(CALTECH101.length, 101);
  assert.equal(CALTECH101.reduce((a, c) => a + c.n, 0), 8677);
  await using tmp = await tempDir();
  const top = `${tmp.path}/101_ObjectCategories`;
  const png = await encodePng(newImage(1, 1));
  const image = (cls: string, k: number) => `${top}/${cls}/image_${String(k).padStart(4, "0")}.png`;
  // Written in an order of their own: the reader sorts class folders and file names.
  for (const { name, n } of [...CALTECH101, { name: "BACKGROUND_Google", n: 3 }].reverse()) {
    Deno.mkdirSync(`${top}/${name}`, { recursive: true });
    for (let k = n; k >= 1; k--) Deno.writeFileSync(image(name, k), png);
  }
  const e = METHODS.release.eval;
  const ds = await openDataset(`caltech101:${tmp.path}`);
  const plan = protocolPlan("caltech101", ds, new Rng(0), e);
  const y = ds.splits.all.labels!;
  assert.equal(y.length, 8677);
  const { train_splits: train, test_splits: test } = release("caltech101_splits.json");
  assert.equal(plan.train.length, 10);
  for (let k = 0; k < 10; k++) {
    assert.deepEqual(plan.train[k], train[k].map((i: number) => i - 1));
    assert.deepEqual(plan.test[k], test[k].map((i: number) => i - 1));
    const inTrain = new Set(plan.train[k]);
    assert.ok(plan.test[k].every((i) => !inTrain.has(i)), `split ${k + 1}: no image in both`);
    CALTECH101.forEach(({ name, n }) => {
      const c = ds.classNames.indexOf(name);
      assert.equal(plan.train[k].filter((i) => y[i] === c).length, 30, name);
      assert.equal(plan.test[k].filter((i) => y[i] === c).length, Math.min(50, n - 30), name);
    });
  }
  assert.ok(plan.perClass);
  const inFirst = new Set(plan.train[0]);
  assert.deepEqual(plan.cTrain, plan.train[0]);
  assert.deepEqual(plan.cValid, plan.train[1].filter((i) => !inFirst.has(i)));

  const refused = async (re: RegExp) => {
    const changed = await openDataset(`caltech101:${tmp.path}`);
    assert.throws(() => protocolPlan("caltech101", changed, new Rng(0), e), (err: Error) => {
      assert.match(err.message, re);
      assert.ok(!err.message.includes("\n"), err.message);
      return true;
    });
  };
  const count = /index the 8,677 images of Caltech-101's 101 classes without BACKGROUND_Google; caltech101:\S+ has/;
  const order =
    /split \d+ \(data\/release\/caltech101_splits\.json\) takes \d+ (training|test) images of class "\w+" where it takes \d+: .*\(class folders sorted/;
  // A class missing.
  Deno.renameSync(`${top}/ant`, `${tmp.path}/ant`);
  await refused(new RegExp(count.source + / 8635 images in 100 classes$/.source));
  Deno.renameSync(`${tmp.path}/ant`, `${top}/ant`);
  // An extra image.
  Deno.writeFileSync(image("accordion", 56), png);
  await refused(new RegExp(count.source + / 8678 images in 101 classes$/.source));
  // The same number of images, one of them in another class: the indices of the classes between point one image off.
  Deno.removeSync(image("Faces", 435));
  await refused(order);
  Deno.renameSync(image("accordion", 56), image("Faces", 435));
  await openDataset(`caltech101:${tmp.path}`).then((ds) => protocolPlan("caltech101", ds, new Rng(0), e));
  // Another order of the classes: a folder renamed so that it sorts elsewhere.
  Deno.renameSync(`${top}/Leopards`, `${top}/leopards`);
  await refused(order);
});
