import assert from "node:assert/strict";
import { useCacheDir } from "../lib/util/fsutil.ts";
import { copyFileSync } from "node:fs";
import { Frame, GIF, Image } from "imagescript";
import { openDataset } from "../lib/data/mod.ts";
import { openCaltech101, openCaltech256, openFolder } from "../lib/data/folder.ts";
import { decodeImage, headerSize, type RGBImage } from "../lib/util/image.ts";
import { CALTECH_TINY, oneLineError, ROOT, task, tempDir, tinyRunArgs } from "./helpers.ts";

const FIX = `${ROOT}/tests/fixtures`;

Deno.test("Caltech-101 layout on real photographs: 3 classes, background excluded and listed as skipped", async () => {
  const ds = openCaltech101(CALTECH_TINY);
  assert.deepEqual(ds.classNames, ["car_side", "ketch", "laptop"]);
  assert.equal(ds.splits.all.length, 120);
  assert.deepEqual(ds.skipped.excludedClasses, { BACKGROUND_Google: 3 });
  const img = await ds.splits.all.image(0);
  assert.equal(img.data.length, img.width * img.height * 3);
  assert.deepEqual(await ds.splits.all.imageSize(0), { width: img.width, height: img.height });
});

Deno.test("data inspect and preview on real photographs", async () => {
  await using tmp = await tempDir();
  const r = await task("data", ["inspect", `caltech101:${CALTECH_TINY}`]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.classes, 3);
  assert.equal(info.splits.all.images, 120);
  assert.equal(info.skipped.files, 3);
  assert.deepEqual(info.skipped.excluded_classes, { BACKGROUND_Google: 3 });
  assert.equal(info.splits.all.shape.channels, 3);
  assert.ok(info.splits.all.shape.width[1] <= 300 && info.splits.all.shape.width[0] > 50);
  const out = `${tmp.path}/x.png`;
  const p = await task("data", ["preview", `caltech101:${CALTECH_TINY}`, "--index", "30", "--out", out]);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stderr, /car_side/);
  assert.ok((await decodeImage(await Deno.readFile(out))).width > 100);
});

Deno.test("grayscale and CMYK JPEGs become RGB", async () => {
  const gray = await decodeImage(await Deno.readFile(`${FIX}/gray.jpg`));
  assert.equal(gray.data.length, 40 * 30 * 3);
  const top = Array.from(gray.data.subarray(0, 3));
  assert.ok(top[0] > 240 && top[0] === top[1] && top[1] === top[2]);
  const cmyk = await decodeImage(await Deno.readFile(`${FIX}/cmyk.jpg`));
  const first = Array.from(cmyk.data.subarray(0, 3)); // red at the top, blue at the bottom
  const last = Array.from(cmyk.data.subarray(3 * 29 * 40, 3 * 29 * 40 + 3));
  assert.ok(first[0] > 200 && first[2] < 50, `top pixel ${first}`);
  assert.ok(last[2] > 200 && last[0] < 50, `bottom pixel ${last}`);
});

Deno.test("files that are not images are skipped with a count, not decoded", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/101_ObjectCategories`;
  for (const c of ["a", "b", "BACKGROUND_Google"]) await Deno.mkdir(`${root}/${c}`, { recursive: true });
  copyFileSync(`${FIX}/gray.jpg`, `${root}/a/image_0001.jpg`);
  copyFileSync(`${FIX}/cmyk.jpg`, `${root}/b/image_0001.jpg`);
  copyFileSync(`${FIX}/cmyk.jpg`, `${root}/BACKGROUND_Google/image_0001.jpg`);
  await Deno.writeTextFile(`${root}/b/tmp`, "not an image");
  await Deno.writeTextFile(`${root}/b/image_0002.jpg`, "not a JPEG either");
  const ds = openCaltech101(tmp.path);
  assert.deepEqual(ds.classNames, ["a", "b"]);
  assert.equal(ds.splits.all.length, 2);
  assert.equal(ds.skipped.notImages, 2);
  assert.equal(ds.skipped.examples.length, 2);
  assert.deepEqual(Array.from(ds.splits.all.labels!), [0, 1]);
});

Deno.test("Caltech-256 layout: numbered class folders, clutter excluded", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/256_ObjectCategories`;
  for (const c of ["001.ak47", "002.american-flag", "257.clutter"]) {
    await Deno.mkdir(`${root}/${c}`, { recursive: true });
    copyFileSync(`${FIX}/gray.jpg`, `${root}/${c}/${c.slice(0, 3)}_0001.jpg`);
  }
  const ds = openCaltech256(tmp.path);
  assert.deepEqual(ds.classNames, ["ak47", "american-flag"]);
  assert.deepEqual(ds.skipped.excludedClasses, { "257.clutter": 1 });
});

Deno.test("folder: <class>/<image> and <split>/<class>/<image>", async () => {
  await using tmp = await tempDir();
  for (const p of ["train/cat", "train/dog", "test/cat", "test/dog"]) {
    await Deno.mkdir(`${tmp.path}/${p}`, { recursive: true });
    copyFileSync(`${FIX}/gray.jpg`, `${tmp.path}/${p}/1.jpg`);
  }
  const ds = openFolder(tmp.path);
  assert.deepEqual(Object.keys(ds.splits).sort(), ["test", "train"]);
  assert.deepEqual(ds.classNames, ["cat", "dog"]);
  assert.deepEqual(Array.from(ds.splits.test.labels!), [0, 1]);
  const flat = openFolder(`${tmp.path}/train`);
  assert.deepEqual(Object.keys(flat.splits), ["all"]);
});

Deno.test("a folder with no images, a missing folder and an unknown spec are refused", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/cls`);
  await Deno.writeTextFile(`${tmp.path}/cls/readme.txt`, "hello");
  oneLineError(await task("data", ["inspect", `folder:${tmp.path}`]), /no image files/);
  oneLineError(await task("data", ["inspect", `caltech101:${tmp.path}/nope`]), /folder not found/);
  oneLineError(await task("data", ["inspect", `imagenet:${tmp.path}`]), /unknown data spec "imagenet:/);
  oneLineError(await task("data", ["inspect", "folder"]), /needs a folder/);
});

const PHOTOS = `${CALTECH_TINY}/101_ObjectCategories`;

/** A GIF of the given frames (real photographs, decoded with imagescript), as a camera-roll GIF would be. */
async function gifOf(...jpegs: string[]): Promise<Uint8Array> {
  const frames = [];
  for (const f of jpegs) frames.push(Frame.from(await Image.decode(await Deno.readFile(f)), 100));
  return await new GIF(frames).encode();
}

/** Mean absolute difference of two images of one size, per channel value. */
function meanDiff(a: RGBImage, b: RGBImage): number {
  assert.deepEqual([a.width, a.height], [b.width, b.height]);
  let d = 0;
  for (let i = 0; i < a.data.length; i++) d += Math.abs(a.data[i] - b.data[i]);
  return d / a.data.length;
}

Deno.test("GIFs decode: a still one to its photograph, an animated one to its first frame", async () => {
  const [a, b] = ["ketch/image_0001.jpg", "laptop/image_0001.jpg"].map((f) => `${PHOTOS}/${f}`);
  const photoA = await decodeImage(await Deno.readFile(a)), photoB = await decodeImage(await Deno.readFile(b));
  const still = await gifOf(a);
  assert.deepEqual(headerSize(still), { width: photoA.width, height: photoA.height });
  const gotStill = await decodeImage(still, "still.gif");
  assert.ok(meanDiff(gotStill, photoA) < 12, `still GIF differs from its photograph by ${meanDiff(gotStill, photoA)}`);
  // Two frames of one size: the first is read, not the second.
  const frameB = Frame.from(await Image.decode(await Deno.readFile(b)), 100);
  const frameA = Frame.from((await Image.decode(await Deno.readFile(a))).crop(0, 0, photoB.width, photoB.height), 100);
  const animated = await new GIF([frameA, frameB]).encode();
  const gotFirst = await decodeImage(animated, "animated.gif");
  const cropA = { width: photoB.width, height: photoB.height, data: new Uint8Array(photoB.width * photoB.height * 3) };
  for (let y = 0; y < photoB.height; y++) {
    cropA.data.set(
      photoA.data.subarray(3 * y * photoA.width, 3 * (y * photoA.width + photoB.width)),
      3 * y * photoB.width,
    );
  }
  assert.ok(meanDiff(gotFirst, cropA) < 12, `first frame differs by ${meanDiff(gotFirst, cropA)}`);
  assert.ok(meanDiff(gotFirst, photoB) > 30, "the second frame is not the one read");
  // A GIF cut short is an image that cannot be decoded, named.
  await assert.rejects(() => decodeImage(still.subarray(0, 40), "cut.gif"), /cut\.gif: cannot decode image/);
});

/**
 * Three classes of real photographs, 6 JPEGs each; `ketch` also holds a still GIF, an animated GIF and a JPEG cut
 * short (9 images that decode, one that does not). The GIFs sort first in their class.
 */
async function mixedFolder(root: string): Promise<void> {
  for (const c of ["car_side", "ketch", "laptop"]) {
    await Deno.mkdir(`${root}/${c}`, { recursive: true });
    const files = [...Deno.readDirSync(`${PHOTOS}/${c}`)].map((e) => e.name).sort().slice(0, 6);
    for (const f of files) await Deno.copyFile(`${PHOTOS}/${c}/${f}`, `${root}/${c}/${f}`);
  }
  await Deno.writeFile(`${root}/ketch/0_still.gif`, await gifOf(`${PHOTOS}/ketch/image_0007.jpg`));
  await Deno.writeFile(
    `${root}/ketch/1_animated.gif`,
    await gifOf(`${PHOTOS}/ketch/image_0008.jpg`, `${PHOTOS}/ketch/image_0008.jpg`),
  );
  const good = await Deno.readFile(`${PHOTOS}/ketch/image_0009.jpg`);
  await Deno.writeFile(`${root}/ketch/zz_cut_short.jpg`, good.subarray(0, 400));
}

Deno.test("a folder with GIFs and a damaged JPEG: inspect and openDataset count the damaged one and keep the rest", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/photos`;
  await mixedFolder(root);
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const r = await task("data", ["inspect", `folder:${root}`], env);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.deepEqual(info.splits.all.per_class, [6, 8, 6]);
  assert.equal(info.skipped.unreadable, 1);
  assert.match(info.skipped.examples[0], /zz_cut_short\.jpg: cannot decode image/);
  assert.match(r.stderr, /1 images could not be read and were skipped \(the first: .*zz_cut_short\.jpg/);
  const p = await task("data", ["preview", `folder:${root}`, "--index", "6", "--out", `${tmp.path}/gif.png`], env);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stderr, /0_still\.gif: \d+x\d+, ketch/);
  // Opened again, the answers kept in the cache give the same splits (the damaged file is not decoded again).
  useCacheDir(env.EXEMPLAR_CACHE);
  try {
    const logs: string[] = [];
    const ds = await openDataset(`folder:${root}`, { log: (m) => logs.push(m) });
    assert.equal(ds.splits.all.length, 20);
    assert.ok(!Array.from({ length: 20 }, (_, i) => ds.splits.all.source(i)).some((f) => f.includes("zz_cut")));
    assert.equal(ds.skipped.unreadable, 1);
    assert.match(logs.join("\n"), /1 images could not be read/);
  } finally {
    useCacheDir(null);
  }
});

Deno.test("evaluation on a folder with GIFs and a damaged JPEG skips and counts the damaged one", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/photos`;
  await mixedFolder(root);
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const run = `${tmp.path}/run`;
  const p = await task("pretrain", tinyRunArgs(run, 2), env);
  assert.equal(p.code, 0, p.stderr);
  const r = await task(
    "evaluate",
    ["--run", run, "--data", `folder:${root}`, "--no-baselines", "--runs", "2", "--C", "0.01", "--knn-k", "0"],
    env,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /1 images could not be read and were skipped \(the first: .*zz_cut_short\.jpg/);
  const results = JSON.parse(await Deno.readTextFile(`${run}/results.json`));
  // A quarter of each class is tested: 2 of 6, 2 of 8 (ketch: 9 files would make it 2 of 9, 3 of 10 with the damaged).
  assert.equal(results.learned.test, 6);
  assert.equal(results.learned.trainPerRun, 14);
});

Deno.test("pretraining seeds from a folder whose first image is a GIF", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/photos`;
  await mixedFolder(root);
  await Deno.remove(`${root}/car_side`, { recursive: true }); // ketch, with its GIFs first, is the first class
  const r = await task("seeds", ["--data", `folder:${root}`, "--n", "8", "--out", `${tmp.path}/seeds`], {
    EXEMPLAR_CACHE: `${tmp.path}/cache`,
  });
  assert.equal(r.code, 0, r.stderr);
});

Deno.test("symbolic links: class folders and images are followed, links to nothing counted with a line, loops end", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/photos`, elsewhere = `${tmp.path}/elsewhere`;
  await Deno.mkdir(`${root}/car_side`, { recursive: true });
  await Deno.mkdir(`${elsewhere}/ketch`, { recursive: true });
  for (const f of ["image_0001.jpg", "image_0002.jpg"]) {
    await Deno.copyFile(`${PHOTOS}/car_side/${f}`, `${root}/car_side/${f}`);
    await Deno.copyFile(`${PHOTOS}/ketch/${f}`, `${elsewhere}/ketch/${f}`);
  }
  await Deno.symlink(`${elsewhere}/ketch`, `${root}/ketch`); // a class folder kept elsewhere
  await Deno.symlink(`${PHOTOS}/car_side/image_0003.jpg`, `${root}/car_side/image_0003.jpg`); // one image
  await Deno.symlink(`${elsewhere}/gone`, `${root}/laptop`); // a class folder that is not there
  await Deno.symlink(`${root}/car_side/b.jpg`, `${root}/car_side/a.jpg`); // a loop of two links
  await Deno.symlink(`${root}/car_side/a.jpg`, `${root}/car_side/b.jpg`);
  await Deno.symlink(root, `${elsewhere}/ketch/up`); // a link back to the data set's own folder
  const logs: string[] = [];
  useCacheDir(`${tmp.path}/cache`);
  try {
    const ds = await openDataset(`folder:${root}`, { log: (m) => logs.push(m) });
    assert.deepEqual(ds.classNames, ["car_side", "ketch"]);
    assert.deepEqual(Array.from(ds.splits.all.labels!), [0, 0, 0, 1, 1]);
    assert.equal(ds.skipped.brokenLinks, 3);
    assert.equal(ds.skipped.notImages, 1); // ketch/up: a folder among the images
    assert.match(logs.join("\n"), /skipped 1 files that are not images .*, 3 symbolic links that lead nowhere/);
    assert.ok(
      ds.skipped.examples.some((x) =>
        x.endsWith(`laptop: a link to ${elsewhere}/gone, which does not lead to a file or folder`)
      ),
    );
  } finally {
    useCacheDir(null);
  }
});

Deno.test("a task's --out inside a data folder is no class of it: its pictures are not read as images of the data", async () => {
  await using tmp = await tempDir();
  const data = `${tmp.path}/photos`;
  for (const c of ["car_side", "ketch"]) {
    await Deno.mkdir(`${data}/${c}`, { recursive: true });
    for (const f of ["image_0001.jpg", "image_0002.jpg", "image_0003.jpg"]) {
      copyFileSync(`${CALTECH_TINY}/101_ObjectCategories/${c}/${f}`, `${data}/${c}/${f}`);
    }
  }
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const r = await task(
    "augment",
    ["--data", `folder:${data}`, "--n", "2", "--k", "2", "--out", `${data}/pictures`],
    env,
  );
  assert.equal(r.code, 0, r.stderr);
  const ds = openFolder(data);
  assert.deepEqual(ds.classNames, ["car_side", "ketch"]);
  assert.equal(ds.splits.all.length, 6);
  assert.deepEqual(ds.skipped.excludedClasses, { pictures: 2 });
});
