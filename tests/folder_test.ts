import assert from "node:assert/strict";
import { copyFileSync } from "node:fs";
import { openCaltech101, openCaltech256, openFolder } from "../lib/data/folder.ts";
import { decodeImage } from "../lib/util/image.ts";
import { CALTECH_TINY, oneLineError, ROOT, task, tempDir } from "./helpers.ts";

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
