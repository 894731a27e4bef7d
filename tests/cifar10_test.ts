import assert from "node:assert/strict";
import { openCifar10 } from "../lib/data/cifar10.ts";
import { decodeImage } from "../lib/util/image.ts";
import { oneLineError, task, tempDir } from "./helpers.ts";

/** One CIFAR-10 record made by hand: label, then the R, G and B planes, each row-major. */
function record(label: number, value: (c: number, y: number, x: number) => number): Uint8Array {
  const rec = new Uint8Array(3073);
  rec[0] = label;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) rec[1 + c * 1024 + y * 32 + x] = value(c, y, x);
  }
  return rec;
}

function batch(records: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(records.length * 3073);
  records.forEach((r, i) => out.set(r, i * 3073));
  return out;
}

async function makeCifar(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/cifar-10-batches-bin`, { recursive: true });
  for (let b = 1; b <= 5; b++) {
    const recs = [0, 1, 2].map((j) =>
      record((b + j) % 10, (c, y, x) => c === 0 ? y * 8 : c === 1 ? x * 8 : b * 10 + j)
    );
    await Deno.writeFile(`${dir}/cifar-10-batches-bin/data_batch_${b}.bin`, batch(recs));
  }
  await Deno.writeFile(`${dir}/cifar-10-batches-bin/test_batch.bin`, batch([record(9, () => 77), record(3, () => 5)]));
  await Deno.writeTextFile(`${dir}/cifar-10-batches-bin/batches.meta.txt`, "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n");
}

Deno.test("CIFAR-10 binary batches: planes R, G, B, each row-major; labels; splits across files", async () => {
  await using tmp = await tempDir();
  await makeCifar(tmp.path);
  const ds = openCifar10(tmp.path);
  assert.equal(ds.splits.train.length, 15);
  assert.equal(ds.splits.test.length, 2);
  assert.deepEqual(ds.classNames, ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
  assert.deepEqual(Array.from(ds.splits.train.labels!.subarray(0, 6)), [1, 2, 3, 2, 3, 4]);
  const img = await ds.splits.train.image(7); // batch 3, record 1
  const px = (y: number, x: number) => Array.from(img.data.subarray(3 * (y * 32 + x), 3 * (y * 32 + x) + 3));
  assert.deepEqual(px(3, 20), [24, 160, 31]); // R grows down the rows, G across the columns
  assert.equal(ds.splits.train.source(7).endsWith("data_batch_3.bin#1"), true);
  ds.close();
});

Deno.test("data inspect and preview work on generated CIFAR-10 files", async () => {
  await using tmp = await tempDir();
  await makeCifar(tmp.path);
  const r = await task("data", ["inspect", `cifar10:${tmp.path}`]);
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout);
  assert.equal(info.format, "cifar10");
  assert.deepEqual(info.splits.test.shape, [32, 32, 3]);
  assert.equal(info.splits.train.images, 15);
  const out = `${tmp.path}/p.png`;
  const p = await task("data", ["preview", `cifar10:${tmp.path}`, "--split", "test", "--index", "0", "--out", out]);
  assert.equal(p.code, 0, p.stderr);
  const img = await decodeImage(await Deno.readFile(out));
  assert.equal(img.width, 32);
  assert.deepEqual(Array.from(img.data.subarray(0, 3)), [77, 77, 77]);
});

Deno.test("a truncated CIFAR-10 batch and a missing batch are refused", async () => {
  await using tmp = await tempDir();
  await makeCifar(tmp.path);
  const f = `${tmp.path}/cifar-10-batches-bin/data_batch_2.bin`;
  await Deno.writeFile(f, (await Deno.readFile(f)).subarray(0, 5000));
  oneLineError(
    await task("data", ["inspect", `cifar10:${tmp.path}`]),
    /data_batch_2\.bin: 5000 bytes .* 3073-byte records/,
  );
  await Deno.remove(f);
  oneLineError(await task("data", ["inspect", `cifar10:${tmp.path}`]), /missing data_batch_2\.bin/);
});
