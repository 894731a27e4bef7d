import assert from "node:assert/strict";
import { selectBackend, tf } from "../lib/compute/backend.ts";
import { cachedFeatures, convolutionalMaps, featureLayout, poolMap } from "../lib/features.ts";
import { ExemplarNet } from "../lib/nets.ts";
import { tempDir } from "./helpers.ts";

await selectBackend("wasm");

Deno.test("quadrant and pyramid max pooling", () => {
  // A 4x4 map with 1 channel: value = 10 y + x.
  const map = Float32Array.from({ length: 16 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4));
  const q = new Float32Array(4);
  poolMap(map, 4, 4, 1, [2], q, 0);
  assert.deepEqual(Array.from(q), [11, 13, 31, 33]);
  const p = new Float32Array(21);
  poolMap(map, 4, 4, 1, [1, 2, 4], p, 0);
  assert.equal(p[0], 33);
  assert.deepEqual(Array.from(p.subarray(1, 5)), [11, 13, 31, 33]);
  assert.deepEqual(Array.from(p.subarray(5)), Array.from(map));
});

Deno.test("pooling reads the map once where the grids nest, with every cell's maximum as read cell by cell", () => {
  // The pooling's definition, cell by cell: cell (gy, gx) of a g x g grid spans rows floor(gy H / g) to
  // max(that + 1, floor((gy + 1) H / g)), and columns alike.
  const reference = (map: Float32Array, H: number, W: number, C: number, grids: number[], weights: number[]) => {
    const out: number[] = [];
    const span = (k: number, n: number, g: number) => {
      const lo = Math.floor((k * n) / g);
      return [lo, Math.max(lo + 1, Math.floor(((k + 1) * n) / g))];
    };
    grids.forEach((g, level) => {
      for (let gy = 0; gy < g; gy++) {
        for (let gx = 0; gx < g; gx++) {
          const [y0, y1] = span(gy, H, g), [x0, x1] = span(gx, W, g);
          for (let c = 0; c < C; c++) {
            let m = -Infinity;
            for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m = Math.max(m, map[(y * W + x) * C + c]);
            out.push(Math.fround(Math.fround(m) * weights[level]));
          }
        }
      }
    });
    return out;
  };
  let seed = 7;
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.3;
  for (const [H, W, C] of [[37, 29, 3], [31, 31, 5], [4, 4, 2], [3, 5, 2], [1, 1, 4], [8, 3, 1]]) {
    const map = Float32Array.from({ length: H * W * C }, () => Math.max(0, next()));
    for (const grids of [[1, 2, 4], [2], [1, 2, 3]]) {
      const weights = [1, 0.5, 0.25], cells = grids.reduce((a, g) => a + g * g, 0);
      const out = new Float32Array(cells * C);
      assert.equal(poolMap(map, H, W, C, grids, out, 0, weights), cells * C);
      assert.deepEqual(Array.from(out), reference(map, H, W, C, grids, weights), `${H}x${W}x${C}, grids ${grids}`);
    }
  }
});

Deno.test("feature sizes: 4 x (sum of channels) with quadrants; 21 x with the pyramid", () => {
  const net = new ExemplarNet("64c5-128c5-256c5-512f", 10);
  assert.equal(featureLayout(net, 96, "quadrant").dim, 3840); // PAPER.md: 3840 for the medium network
  assert.equal(featureLayout(net, 150, "pyramid").dim, 21 * 960);
  const maps = featureLayout(net, 96, "quadrant").blocks.map((b) => b.map);
  assert.deepEqual(maps, [96, 48, 24, 17]); // the FC layer as an 8 x 8 convolution over the 24 x 24 map
  net.dispose();
});

Deno.test("the FC layer applied convolutionally equals the dense layer on a 32x32 input", () => {
  // Two pooled conv layers before the FC layer (an 8x8 map in training), and one (16x16).
  for (
    const [name, shapes] of [
      ["8c5-8c5-16f", [[2, 32, 32, 8], [2, 16, 16, 8], [2, 1, 1, 16]]],
      ["8c5-16f", [[2, 32, 32, 8], [2, 1, 1, 16]]],
    ] as const
  ) {
    const net = new ExemplarNet(name, 5, { method: "release", seed: 2 });
    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, "float32", 9) as tf.Tensor4D;
    const taps: tf.Tensor[] = [];
    tf.dispose(net.forward(x, { taps }));
    const maps = convolutionalMaps(net, x);
    assert.deepEqual(maps.map((m) => m.shape), shapes);
    for (let i = 0; i < shapes.length; i++) {
      const a = maps[i].dataSync(), b = taps[i].dataSync();
      for (let j = 0; j < a.length; j++) {
        assert.ok(Math.abs(a[j] - b[j]) < 1e-4, `${name} layer ${i} [${j}]: ${a[j]} vs ${b[j]}`);
      }
    }
    tf.dispose([x, ...taps, ...maps]);
    net.dispose();
  }
});

Deno.test("antialiased resize: a fine checkerboard shrunk averages to gray (bilinear aliases it)", async () => {
  const { newImage, resizeAntialiased, resizeBilinear } = await import("../lib/util/image.ts");
  const img = newImage(300, 300);
  for (let y = 0; y < 300; y++) {
    for (let x = 0; x < 300; x++) img.data.fill((x + y) % 2 ? 255 : 0, 3 * (y * 300 + x), 3 * (y * 300 + x) + 3);
  }
  const spread = (d: Uint8Array) => Math.max(...d) - Math.min(...d);
  const aa = resizeAntialiased(img, 100, 100), bl = resizeBilinear(img, 100, 100);
  assert.ok(spread(aa.data) < 10, `antialiased spread ${spread(aa.data)}`);
  assert.ok(spread(bl.data) > 100, `bilinear spread ${spread(bl.data)}`);
  // Growing an image is the bilinear resize.
  const small = newImage(4, 4);
  small.data.forEach((_, i) => (small.data[i] = (i * 37) % 256));
  assert.deepEqual(resizeAntialiased(small, 8, 8).data, resizeBilinear(small, 8, 8).data);
});

Deno.test("pyramid levels weighted 1, 1/2, 1/4 (the release) multiply each level's cells", async () => {
  const { poolMap } = await import("../lib/features.ts");
  const map = Float32Array.from({ length: 16 }, (_, i) => i + 1); // 4 x 4 x 1
  const plain = new Float32Array(21), weighted = new Float32Array(21);
  poolMap(map, 4, 4, 1, [1, 2, 4], plain, 0);
  poolMap(map, 4, 4, 1, [1, 2, 4], weighted, 0, [1, 0.5, 0.25]);
  assert.equal(weighted[0], plain[0]);
  for (let i = 1; i < 5; i++) assert.equal(weighted[i], plain[i] / 2);
  for (let i = 5; i < 21; i++) assert.equal(weighted[i], plain[i] / 4);
});

Deno.test("a cached feature set copied over another's name is not served: it was made for other weights", async () => {
  await using tmp = await tempDir();
  const set = (v: number) => ({ n: 2, dim: 3, x: new Float32Array(6).fill(v) });
  const a = { kind: "learned", weights: "aaaa", split: "test" }, b = { ...a, weights: "bbbb" };
  await cachedFeatures(tmp.path, "learned-test-a", () => Promise.resolve(set(1)), a);
  for (const ext of ["f32", "json"]) {
    await Deno.copyFile(`${tmp.path}/learned-test-a.${ext}`, `${tmp.path}/learned-test-b.${ext}`);
  }
  let computed = 0;
  const f = await cachedFeatures(tmp.path, "learned-test-b", () => (computed++, Promise.resolve(set(2))), b);
  assert.equal(computed, 1, "the features of the other weights are computed");
  assert.deepEqual(Array.from(f.x), [2, 2, 2, 2, 2, 2]);
  // Its own set, written now, is served from the cache.
  const again = await cachedFeatures(tmp.path, "learned-test-b", () => (computed++, Promise.resolve(set(3))), b);
  assert.equal(computed, 1);
  assert.deepEqual(Array.from(again.x), [2, 2, 2, 2, 2, 2]);
});

Deno.test("one pass over the images gives each network's features and the raw pixels as each alone, in workers too", async () => {
  const { openDataset } = await import("../lib/data/mod.ts");
  const { extractFeatures, extractFeatureSets, extractFeaturesParallel, rawPixelFeatures } = await import(
    "../lib/features.ts"
  );
  const { netSpec } = await import("../lib/nets.ts");
  const { NetRunner, flatWeights } = await import("../lib/compute/engine.ts");
  const { CALTECH_TINY } = await import("./helpers.ts");
  const data = `caltech101:${CALTECH_TINY}`, ds = await openDataset(data);
  const cfg = { net: "8c5-8c5-16f", classes: 4, method: "paper" as const };
  const a = await NetRunner.create(netSpec({ ...cfg, seed: 1 })),
    b = await NetRunner.create(netSpec({ ...cfg, seed: 2 }));
  try {
    const split = ds.splits.all, idx = [0, 3, 5, 8, 9, 11, 2];
    const opts = { size: 40, pooling: "pyramid" as const, mean: [0.5, 0.4, 0.3] as [number, number, number], batch: 3 };
    const nets = [a.net as ExemplarNet, b.net as ExemplarNet];
    const alone = [
      await extractFeatures(nets[0], split, idx, opts),
      await extractFeatures(nets[1], split, idx, opts),
      await rawPixelFeatures(split, idx, 12, opts.mean),
    ];
    const together = await extractFeatureSets(nets, split, idx, { ...opts, rawSide: 12 });
    assert.deepEqual(together, alone);
    const weights = await flatWeights(nets[0]);
    const inWorkers = await extractFeaturesParallel(
      {
        nets: [{ spec: netSpec({ ...cfg, seed: 7 }), weights }, { spec: netSpec({ ...cfg, seed: 2 }), weights: null }],
        rawSide: 12,
        data,
        split: "all",
        size: opts.size,
        pooling: opts.pooling,
        mean: opts.mean,
      },
      idx,
      2,
    );
    // (The workers' batches hold other images, and a convolution's sums round in the last bits by batch.)
    assert.deepEqual(inWorkers[2], alone[2]);
    for (const k of [0, 1]) {
      assert.equal(inWorkers[k].dim, alone[k].dim);
      const worst = alone[k].x.reduce(
        (m, v, i) => Math.max(m, Math.abs(v - inWorkers[k].x[i]) / (1e-3 + Math.abs(v))),
        0,
      );
      assert.ok(worst < 1e-4, `network ${k}: relative difference ${worst}`);
    }
  } finally {
    a.net.dispose();
    b.net.dispose();
    ds.close();
  }
});
