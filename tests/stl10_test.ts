import assert from "node:assert/strict";
import { openStl10, stl10ToImage, writeStl10 } from "../lib/data/stl10.ts";
import { newImage } from "../lib/util/image.ts";
import { oneLineError, task, tempDir } from "./helpers.ts";

/** Writes STL-10 bytes by hand, independently of the project's writer. */
function handMadeRecord(value: (c: number, y: number, x: number) => number): Uint8Array {
  const rec = new Uint8Array(3 * 96 * 96);
  // Official layout: channel-major, column-major within a channel.
  for (let c = 0; c < 3; c++) {
    for (let x = 0; x < 96; x++) for (let y = 0; y < 96; y++) rec[c * 9216 + x * 96 + y] = value(c, y, x);
  }
  return rec;
}

Deno.test("STL-10 records are column-major within a channel", () => {
  // A horizontal red bar in the top rows, a vertical green bar in the left columns.
  const rec = handMadeRecord((c, y, x) => (c === 0 && y < 10) || (c === 1 && x < 5) ? 255 : 0);
  const img = stl10ToImage(rec);
  const px = (y: number, x: number) => Array.from(img.data.subarray(3 * (y * 96 + x), 3 * (y * 96 + x) + 3));
  assert.deepEqual(px(2, 50), [255, 0, 0]); // top row, middle: red bar
  assert.deepEqual(px(50, 2), [0, 255, 0]); // left column, middle: green bar
  assert.deepEqual(px(50, 50), [0, 0, 0]);
  assert.deepEqual(px(2, 2), [255, 255, 0]);
  // A single pixel, to pin the exact index arithmetic.
  const one = stl10ToImage(handMadeRecord((c, y, x) => c === 2 && y === 7 && x === 90 ? 200 : 0));
  assert.equal(one.data[3 * (7 * 96 + 90) + 2], 200);
  assert.equal(one.data.reduce((a, b) => a + b, 0), 200);
});

Deno.test("STL-10 writer and reader round-trip, with labels and folds", async () => {
  await using tmp = await tempDir();
  const dir = `${tmp.path}/stl10_binary`;
  const mk = (seed: number) => {
    const img = newImage(96, 96);
    for (let i = 0; i < img.data.length; i++) img.data[i] = (i * 7 + seed * 13) & 255;
    return img;
  };
  await writeStl10(dir, {
    classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
    unlabeled: { count: 3, image: (i) => mk(i) },
    train: { count: 20, image: (i) => mk(100 + i), labels: Array.from({ length: 20 }, (_, i) => i % 10) },
    test: { count: 5, image: (i) => mk(200 + i), labels: [9, 8, 7, 6, 5] },
    folds: Array.from({ length: 10 }, (_, f) => [f, f + 10]),
  });
  const ds = openStl10(tmp.path); // the parent folder is accepted too
  assert.deepEqual(Object.keys(ds.splits), ["unlabeled", "train", "test"]);
  assert.equal(ds.splits.unlabeled.labels, null);
  assert.deepEqual(Array.from(ds.splits.test.labels!), [9, 8, 7, 6, 5]);
  assert.deepEqual(ds.folds![3], [3, 13]);
  assert.deepEqual((await ds.splits.train.image(4)).data, mk(104).data);
  assert.deepEqual((await ds.splits.unlabeled.image(2)).data, mk(2).data);
  // Raw bytes on disk follow the official layout: byte c*9216 + x*96 + y is pixel (y, x) channel c.
  const raw = Deno.readFileSync(`${dir}/test_X.bin`).subarray(3 * 96 * 96, 2 * 3 * 96 * 96);
  const img = mk(201);
  assert.equal(raw[1 * 9216 + 40 * 96 + 3], img.data[3 * (3 * 96 + 40) + 1]);
  assert.equal(Deno.readFileSync(`${dir}/test_y.bin`)[0], 10); // labels stored 1..10
  ds.close();
});

Deno.test("a truncated STL-10 file is refused with one line naming it", async () => {
  await using tmp = await tempDir();
  Deno.writeFileSync(`${tmp.path}/unlabeled_X.bin`, new Uint8Array(27648 * 2 + 100));
  const r = await task("data", ["inspect", `stl10:${tmp.path}`]);
  oneLineError(r, /unlabeled_X\.bin: 55396 bytes is not a whole number of 27648-byte records/);
});

Deno.test("STL-10 labels of the wrong length are refused", async () => {
  await using tmp = await tempDir();
  Deno.writeFileSync(`${tmp.path}/train_X.bin`, new Uint8Array(27648 * 3));
  Deno.writeFileSync(`${tmp.path}/train_y.bin`, new Uint8Array([1, 2]));
  oneLineError(await task("data", ["inspect", `stl10:${tmp.path}`]), /train_y\.bin: 2 labels for 3 images/);
  Deno.writeFileSync(`${tmp.path}/train_y.bin`, new Uint8Array([1, 2, 11]));
  oneLineError(await task("data", ["inspect", `stl10:${tmp.path}`]), /train_y\.bin: label 11 at index 2/);
});

Deno.test("a folder without STL-10 files and a missing split are refused", async () => {
  await using tmp = await tempDir();
  oneLineError(await task("data", ["inspect", `stl10:${tmp.path}`]), /no STL-10 binary files/);
  Deno.writeFileSync(`${tmp.path}/unlabeled_X.bin`, new Uint8Array(27648));
  const r = await task("data", ["preview", `stl10:${tmp.path}`, "--split", "test", "--out", `${tmp.path}/x.png`]);
  oneLineError(r, /split "test" not found .* \(it has: unlabeled\)/);
});

Deno.test("reading a 1 GB STL-10 file keeps resident memory far below its size", async () => {
  await using tmp = await tempDir();
  const n = 38000; // 1.05 GB
  const f = await Deno.open(`${tmp.path}/unlabeled_X.bin`, { create: true, write: true });
  await f.truncate(n * 27648); // sparse: no disk space used
  f.close();
  const code = `
    import { openStl10 } from "${new URL("../lib/data/stl10.ts", import.meta.url).href}";
    const ds = openStl10("${tmp.path}");
    const s = ds.splits.unlabeled;
    let sum = 0;
    for (let i = 0; i < s.length; i += 7) sum += (await s.image(i)).data[0];
    console.log(JSON.stringify({ n: s.length, sum, rss: Deno.memoryUsage().rss }));
  `;
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code], stdout: "piped" }).output();
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(r.n, n);
  assert.equal(r.sum, 0);
  assert.ok(r.rss < 300e6, `resident memory ${r.rss} bytes`);
});
