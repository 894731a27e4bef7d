import assert from "node:assert/strict";
import { newImage } from "../lib/util/image.ts";
import { Rng } from "../lib/util/rng.ts";
import { seedPatches } from "../lib/seeds.ts";
import { SurrogateData, SurrogateLoader } from "../lib/surrogate.ts";
import type { Split } from "../lib/data/dataset.ts";

async function someSeeds(n: number) {
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
  return await seedPatches(split, { n, seed: 1 });
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
