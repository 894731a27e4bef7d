import assert from "node:assert/strict";
import { newImage } from "../lib/util/image.ts";
import { Rng } from "../lib/util/rng.ts";
import { seedPatches } from "../lib/seeds.ts";
import { SurrogateData, SurrogateLoader, windowInside } from "../lib/surrogate.ts";
import { drawParams, identityParams, releaseColour, transformPatch } from "../lib/augment.ts";
import { CONTEXT, imageBounds, PATCH } from "../lib/seeds.ts";
import type { Split } from "../lib/data/dataset.ts";

async function someSeeds(n: number, method: "paper" | "release" = "paper") {
  const images = Array.from({ length: n }, (_, s) => {
    const img = newImage(96, 96);
    const rng = new Rng(s);
    for (let i = 0; i < img.data.length; i++) img.data[i] = (i % 288 < 144 ? 60 : 200) + rng.int(40);
    return img;
  });
  const split: Split = {
    name: "unlabeled",
    length: n,
    labels: null,
    size: { width: 96, height: 96 },
    image: (i) => Promise.resolve(images[i]),
    imageSize: () => Promise.resolve({ width: 96, height: 96 }),
    source: (i) => `#${i}`,
  };
  return await seedPatches(split, { n, seed: 1, method });
}

Deno.test("surrogate classes: exact and reproducible from (run seed, class, copy)", async () => {
  const seeds = await someSeeds(10);
  const a = new SurrogateData(seeds, { k: 4, seed: 3 });
  const b = new SurrogateData(seeds, { k: 4, seed: 3 });
  const c = new SurrogateData(seeds, { k: 4, seed: 4 });
  assert.deepEqual(a.params(7, 2), b.params(7, 2));
  assert.notDeepEqual(a.params(7, 2), a.params(7, 3));
  assert.notDeepEqual(a.params(7, 2), c.params(7, 2));
  const ba = a.batch(5, 16), bb = b.batch(5, 16);
  assert.deepEqual(ba.x, bb.x);
  assert.deepEqual(ba.y, bb.y);
  // One epoch shows every (class, copy) pair exactly once.
  const seen = new Set<string>();
  for (let j = 0; j < a.epochSize; j++) seen.add(a.sample(j).join(","));
  assert.equal(seen.size, 40);
  // Inputs are mean-subtracted: the mean over many samples is near zero.
  const big = a.batch(0, 40);
  const mean = big.x.reduce((s, v) => s + v, 0) / big.x.length;
  assert.ok(Math.abs(mean) < 0.05, `mean ${mean}`);
});

Deno.test("unlimited K: fresh parameters every epoch; validation copies are never training copies", async () => {
  const seeds = await someSeeds(6);
  const d = new SurrogateData(seeds, { k: Infinity, seed: 1, validationCopies: 2 });
  assert.equal(d.epochSize, 6);
  const e0 = Array.from({ length: 6 }, (_, j) => d.sample(j)),
    e1 = Array.from({ length: 6 }, (_, j) => d.sample(6 + j));
  assert.deepEqual(e0.map(([i]) => i).sort(), [0, 1, 2, 3, 4, 5]);
  assert.ok(e0.every(([, k]) => k === 0) && e1.every(([, k]) => k === 1));
  const v = d.validation();
  assert.equal(v.y.length, 12);
  assert.notDeepEqual(d.validationParams(2, 0), d.params(2, 0));
  assert.throws(() => new SurrogateData(seeds, { k: 0 }), /K = 0/);
});

Deno.test("the worker loader yields exactly the batches the data set defines, in order", async () => {
  const seeds = await someSeeds(8);
  const d = new SurrogateData(seeds, { k: 3, seed: 2 });
  const loader = new SurrogateLoader(d, 5, { workers: 2, start: 4 });
  try {
    for (let b = 4; b < 10; b++) {
      const got = await loader.next();
      const want = d.batch(b, 5);
      assert.deepEqual(got.y, want.y);
      assert.deepEqual(got.x, want.x);
    }
  } finally {
    loader.close();
  }
});

Deno.test("release: every sample's window stays inside its seed's image (redrawn where the first draw leaves it)", async () => {
  const seeds = await someSeeds(6, "release");
  const bounds = imageBounds(seeds)!;
  assert.ok(bounds, "seeds record their image sizes");
  const data = new SurrogateData(seeds, { k: 200, method: "release", seed: 3 });
  let redrawn = 0;
  for (let i = 0; i < seeds.n; i++) {
    for (let k = 0; k < 200; k++) {
      assert.ok(windowInside(data.params(i, k), bounds, i), `class ${i} copy ${k}`);
      // The first draw of the same stream, without the check: how often a redraw was needed.
      if (!windowInside(drawParams(new Rng(3, 11, i, k), "release"), bounds, i)) redrawn++;
    }
  }
  assert.ok(redrawn > 0, "96x96 images leave some windows outside: the check did something");
  // The paper preset reads the replicated surroundings instead.
  assert.equal(new SurrogateData(seeds, { k: 5, method: "paper" }).bounds, null);
});

Deno.test("release colour: statistics of the data, and each patch stretched to [0, 1] before contrast2", () => {
  const px = Uint8Array.from([10, 20, 30, 110, 120, 130]);
  const c = releaseColour(px, [60 / 255, 70 / 255, 80 / 255], true, true);
  assert.deepEqual([c.lo * 255, c.hi * 255].map(Math.round), [10, 130]);
  // Centred and scaled: (10 - 60 - 10) / 120 = -0.5 ... (130 - 80 - 10) / 120 = 1/3.
  assert.ok(Math.abs(c.clip[0] + 0.5) < 1e-9 && Math.abs(c.clip[1] - 1 / 3) < 1e-9, `${c.clip}`);
  // A dim, low-contrast window comes out spanning [0, 1] (the identity transform otherwise).
  const w = new Uint8Array(CONTEXT * CONTEXT * 3);
  for (let i = 0; i < w.length; i++) w[i] = 100 + (i % 7);
  const out = new Float32Array(PATCH * PATCH * 3);
  const pca = {
    mean: [0.4, 0.4, 0.4] as [number, number, number],
    vectors: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] as [number, number, number][],
    variances: [1, 1, 1] as [number, number, number],
  };
  transformPatch(w, 0, identityParams(), pca, out, 0, {
    lo: 0,
    hi: 1,
    clip: [-Infinity, Infinity],
    stretch: true,
    antialias: true,
  });
  assert.ok(
    Math.abs(Math.min(...out)) < 1e-6 && Math.abs(Math.max(...out) - 1) < 1e-6,
    `${Math.min(...out)} ${Math.max(...out)}`,
  );
  transformPatch(w, 0, identityParams(), pca, out);
  assert.ok(Math.max(...out) < 0.43, "without the stretch the patch stays dim");
});

Deno.test("release geometry: a window larger than the patch is averaged down, not aliased", () => {
  // A one-pixel checkerboard: sampled once a pixel at scale 1/sqrt 2 it stays a high-contrast pattern (aliased);
  // averaged over each pixel's footprint, as the release's antialiased resize does, it comes out near grey.
  const w = new Uint8Array(CONTEXT * CONTEXT * 3);
  for (let y = 0; y < CONTEXT; y++) {
    for (let x = 0; x < CONTEXT; x++) w.fill((x + y) % 2 ? 255 : 0, 3 * (y * CONTEXT + x), 3 * (y * CONTEXT + x) + 3);
  }
  const pca = {
    mean: [0.5, 0.5, 0.5] as [number, number, number],
    vectors: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] as [number, number, number][],
    variances: [1, 1, 1] as [number, number, number],
  };
  const spread = (antialias: boolean, scale: number) => {
    const out = new Float32Array(PATCH * PATCH * 3);
    const p = { ...identityParams(), scale, angle: 0.3 };
    transformPatch(w, 0, p, pca, out, 0, { lo: 0, hi: 1, clip: [-Infinity, Infinity], stretch: false, antialias });
    const mean = out.reduce((a, b) => a + b, 0) / out.length;
    return Math.sqrt(out.reduce((a, b) => a + (b - mean) ** 2, 0) / out.length);
  };
  const aliased = spread(false, Math.SQRT1_2), averaged = spread(true, Math.SQRT1_2);
  assert.ok(averaged < 0.5 * aliased, `spread ${averaged} averaged against ${aliased} sampled once`);
  // A window that grows (scale > 1) is sampled once a pixel either way.
  assert.equal(spread(true, 1.2), spread(false, 1.2));
});
