import assert from "node:assert/strict";
import type { Split } from "../lib/data/dataset.ts";
import { fileSplit } from "../lib/data/folder.ts";
import { decodeImage, newImage, type RGBImage } from "../lib/util/image.ts";
import { Rng } from "../lib/util/rng.ts";
import {
  frameBox,
  loadSeeds,
  paperCandidates,
  PATCH,
  releaseCandidates,
  saveSeeds,
  seedPatch,
  seedPatches,
  withoutFrame,
} from "../lib/seeds.ts";
import { CALTECH_TINY, oneLineError, task, tempDir } from "./helpers.ts";
import { openDataset, pretrainingSplit } from "../lib/data/mod.ts";
import { useCacheDir } from "../lib/util/fsutil.ts";

/** A split over images made in memory. */
function memorySplit(images: RGBImage[]): Split {
  return {
    name: "unlabeled",
    length: images.length,
    labels: null,
    size: { width: images[0].width, height: images[0].height },
    image: (i) => Promise.resolve(images[i]),
    imageSize: (i) => Promise.resolve({ width: images[i].width, height: images[i].height }),
    source: (i) => `memory#${i}`,
  };
}

/** 96x96, flat gray except the top-left quadrant, which holds random texture. */
function quadrantImage(seed: number): RGBImage {
  const img = newImage(96, 96);
  img.data.fill(128);
  const rng = new Rng(seed);
  for (let y = 0; y < 48; y++) {
    for (let x = 0; x < 48; x++) for (let c = 0; c < 3; c++) img.data[3 * (y * 96 + x) + c] = rng.int(256);
  }
  return img;
}

Deno.test("paper seeds come from where the gradients are", async () => {
  const split = memorySplit([0, 1, 2, 3].map(quadrantImage));
  const seeds = await seedPatches(split, { n: 200, method: "paper", seed: 1 });
  // A seed comes from the textured quadrant when its window, mapped back to the original image, overlaps it
  // (within 2 px: the quadrant's own edge has gradient too). Uniform sampling would give about 56 % here.
  const fromQuadrant = seeds.origins.filter((o) => o.x / o.scale < 50 && o.y / o.scale < 50);
  assert.ok(fromQuadrant.length >= 0.95 * 200, `${fromQuadrant.length} of 200 seeds from the textured quadrant`);
  // And most of them lie mostly inside it: their centre is in the quadrant.
  const centred = seeds.origins.filter((o) => (o.x + PATCH / 2) / o.scale < 48 && (o.y + PATCH / 2) / o.scale < 48);
  assert.ok(centred.length >= 0.6 * 200, `${centred.length} of 200 seeds centred in the quadrant`);
  assert.equal(new Set(seeds.origins.map((o) => o.image)).size, 4);
  assert.ok(new Set(seeds.origins.map((o) => o.scale)).size > 1, "several scales are used");
});

Deno.test("release seeds: one per image, also from the textured quadrant", async () => {
  const split = memorySplit(Array.from({ length: 60 }, (_, i) => quadrantImage(i)));
  const seeds = await seedPatches(split, { n: 50, method: "release", seed: 2 });
  assert.equal(new Set(seeds.origins.map((o) => o.image)).size, 50);
  const fromQuadrant = seeds.origins.filter((o) => o.x / o.scale < 50 && o.y / o.scale < 50);
  assert.ok(fromQuadrant.length >= 0.95 * 50, `${fromQuadrant.length} of 50`);
  await assert.rejects(
    () => seedPatches(split, { n: 61, method: "release" }),
    /--n 61 is larger than the 60 candidate images/,
  );
});

Deno.test("the same run seed gives the same seeds; another gives others; saved seeds load back", async () => {
  const split = memorySplit(Array.from({ length: 12 }, (_, i) => quadrantImage(100 + i)));
  const a = await seedPatches(split, { n: 20, seed: 7 });
  const b = await seedPatches(split, { n: 20, seed: 7 });
  const c = await seedPatches(split, { n: 20, seed: 8 });
  assert.deepEqual(a.origins, b.origins);
  assert.deepEqual(a.context, b.context);
  assert.notDeepEqual(a.origins, c.origins);
  await using tmp = await tempDir();
  await saveSeeds(tmp.path, a);
  const back = await loadSeeds(tmp.path);
  assert.deepEqual(back.origins, a.origins);
  assert.deepEqual(seedPatch(back, 19).data, seedPatch(a, 19).data);
});

Deno.test("seeds: bad input is refused", async () => {
  const flat = newImage(96, 96);
  flat.data.fill(9);
  await assert.rejects(
    () => seedPatches(memorySplit([flat, quadrantImage(1)]), { n: 100000 }),
    /--n 100000 is larger than/,
  );
  await assert.rejects(() => seedPatches(memorySplit([newImage(20, 20)]), { n: 1 }), /smaller than the 32x32 patch/);
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const spec = "synthetic:unlabeled=20,train=10,test=10,fold=10";
  oneLineError(
    await task("seeds", ["--data", spec, "--n", "10", "--out", tmp.path, "--method", "fancy"], env),
    /unknown method "fancy"/,
  );
  oneLineError(
    await task("seeds", ["--data", spec, "--n", "21", "--out", tmp.path, "--method", "release"], env),
    /--n 21 is larger/,
  );
  oneLineError(
    await task("augment", ["--data", spec, "--out", tmp.path, "--transforms", "blur"], env),
    /unknown transformation "blur"/,
  );
  oneLineError(await task("augment", ["--data", spec, "--out", tmp.path, "--method", "x"], env), /unknown method "x"/);
});

Deno.test("seeds and augment tasks write their pictures", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const spec = "synthetic:unlabeled=40,train=10,test=10,fold=10";
  const s = await task("seeds", ["--data", spec, "--n", "30", "--out", `${tmp.path}/s`], env);
  assert.equal(s.code, 0, s.stderr);
  assert.equal((await loadSeeds(`${tmp.path}/s`)).n, 30);
  assert.ok((await Deno.stat(`${tmp.path}/s/seeds.png`)).size > 1000);
  const a = await task("augment", [
    "--data",
    spec,
    "--out",
    `${tmp.path}/a`,
    "--n",
    "3",
    "--k",
    "5",
    "--method",
    "release",
  ], env);
  assert.equal(a.code, 0, a.stderr);
  for (const f of ["transforms.png", "classes.png"]) assert.ok((await Deno.stat(`${tmp.path}/a/${f}`)).size > 1000);
});

Deno.test("a flat frame around a photograph is not the picture: seeds are cut inside it", async () => {
  const rng = new Rng(5);
  const img = newImage(120, 90);
  for (let y = 0; y < 90; y++) {
    for (let x = 0; x < 120; x++) {
      const inside = x >= 12 && x < 110 && y >= 6 && y < 90;
      // A black frame (JPEG-like noise of a few levels) around a textured picture; no frame at the bottom.
      const v = inside ? 40 + rng.int(180) : rng.int(6);
      img.data.fill(v, 3 * (y * 120 + x), 3 * (y * 120 + x) + 3);
    }
  }
  assert.deepEqual(frameBox(img), [12, 6, 98, 84]);
  const { picture, left, top } = withoutFrame(img);
  assert.deepEqual([picture.width, picture.height, left, top], [98, 84, 12, 6]);
  // A picture without a frame is itself.
  assert.equal(withoutFrame(picture).picture, picture);
  // The seed windows lie inside the picture, and the origins say where in the image.
  const split: Split = {
    name: "unlabeled",
    length: 1,
    labels: null,
    size: { width: 120, height: 90 },
    image: () => Promise.resolve(img),
    imageSize: () => Promise.resolve({ width: 120, height: 90 }),
    source: () => "#0",
  };
  const seeds = await seedPatches(split, { n: 20, seed: 2 });
  for (const o of seeds.origins) {
    assert.ok(o.x / o.scale >= 12 - 1e-9 && o.y / o.scale >= 6 - 1e-9, JSON.stringify(o));
    assert.ok((o.x + PATCH) / o.scale <= 110 + 1 && (o.y + PATCH) / o.scale <= 90 + 1, JSON.stringify(o));
  }
});

Deno.test("a damaged image among real photographs is skipped, counted and reported; a huge header is refused", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/photos/ketch`;
  await Deno.mkdir(dir, { recursive: true });
  const src = `${CALTECH_TINY}/101_ObjectCategories/ketch`;
  const files = [...Deno.readDirSync(src)].map((e) => e.name).sort().slice(0, 12);
  for (const f of files) await Deno.copyFile(`${src}/${f}`, `${dir}/${f}`);
  const good = await Deno.readFile(`${dir}/${files[0]}`);
  await Deno.writeFile(`${dir}/zz_cut_short.jpg`, good.subarray(0, 300)); // a copy cut off
  const r = await task("pretrain", [
    "--data",
    `folder:${tmp.path}/photos`,
    "--net",
    "8c5-8c5-16f",
    "--classes",
    "6",
    "--per-class",
    "2",
    "--steps",
    "2",
    "--batch",
    "4",
    "--valid-every",
    "2",
    "--out",
    `${tmp.path}/run`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  // Left out when the data set is opened (lib/data/folder.ts keepDecodable), with a line saying so.
  assert.match(r.stderr, /1 images could not be read and were skipped .*zz_cut_short\.jpg: cannot decode image/);
  // A file that stops decoding after the data set was opened is skipped by the seed drawing itself, and listed.
  const paths = [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`).sort();
  const seeds = await seedPatches(fileSplit("all", paths, null), { n: 10, seed: 1 });
  assert.deepEqual(seeds.skipped?.map((s) => paths[s.image]), [`${dir}/zz_cut_short.jpg`]);
  // A PNG header claiming 100000 x 100000 pixels is refused before anything is allocated.
  const png = new Uint8Array(33);
  png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  new DataView(png.buffer).setUint32(16, 100000);
  new DataView(png.buffer).setUint32(20, 100000);
  await assert.rejects(() => decodeImage(png, "huge.png"), /huge\.png: its header claims 100000x100000 pixels/);
});

Deno.test("release pyramid levels are resized with antialiasing, the paper preset's bilinear", () => {
  // A one-pixel checkerboard shrunk to 0.8: averaged out (antialiased) it is near grey; sampled it keeps contrast.
  const img = newImage(80, 80);
  for (let i = 0; i < 80 * 80; i++) img.data.fill(((i % 80) + Math.floor(i / 80)) % 2 ? 255 : 0, 3 * i, 3 * i + 3);
  const spread = (im: RGBImage) => {
    const mean = im.data.reduce((a, b) => a + b, 0) / im.data.length;
    return Math.sqrt(im.data.reduce((a, b) => a + (b - mean) ** 2, 0) / im.data.length);
  };
  const release = releaseCandidates(img).find((m) => m.scale === 0.8)!.image;
  const paper = paperCandidates(img).find((m) => m.scale < 1 && m.scale > 0.7)!.image;
  assert.equal(release.width, 64);
  assert.ok(spread(release) < 0.5 * spread(paper), `${spread(release)} against ${spread(paper)}`);
});

Deno.test("seeds drawn in workers are the seeds drawn in one thread, for both methods, with progress", async () => {
  await using tmp = await tempDir();
  useCacheDir(`${tmp.path}/cache`);
  try {
    const data = "synthetic:unlabeled=120,train=10,test=10,fold=10,seed=3";
    const ds = await openDataset(data);
    for (const method of ["paper", "release"] as const) {
      const one = await seedPatches(pretrainingSplit(ds), { n: 40, method, seed: 2 });
      const seen: string[] = [];
      const two = await seedPatches(pretrainingSplit(ds), {
        n: 40,
        method,
        seed: 2,
        workers: { data, count: 2 },
        onProgress: (phase, done, total) => seen.push(`${phase} ${done}/${total}`),
      });
      assert.deepEqual(two.origins, one.origins, method);
      assert.deepEqual(two.context, one.context, method);
      assert.ok(seen.includes("energy 120/120") && seen.some((s) => /^crop (\d+)\/\1$/.test(s)), seen.join(", "));
    }
    ds.close();
  } finally {
    useCacheDir(null);
  }
});
