import assert from "node:assert/strict";
import { loadCheckpoint, saveCheckpoint } from "../lib/checkpoint.ts";
import { UserError } from "../lib/util/errors.ts";
import { tempDir } from "./helpers.ts";

const arrays = [
  { name: "w", shape: [2, 3], data: Float32Array.from([1.5, -2, 0, 3, 4, 5]) },
  { name: "momentum:w", shape: [2, 3], data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) },
];

Deno.test("checkpoints keep numbers JSON cannot hold: Infinity, -Infinity, NaN", async () => {
  await using tmp = await tempDir();
  const state = { run: { bestValError: Infinity, low: -Infinity, guard: NaN, step: 3, note: { $other: 1 } } };
  await saveCheckpoint(`${tmp.path}/ck`, { state, arrays });
  const back = await loadCheckpoint(`${tmp.path}/ck`);
  assert.deepEqual(back.state, state);
  assert.deepEqual(
    back.arrays.map((a) => [a.name, a.shape, Array.from(a.data)]),
    arrays.map((a) => [a.name, a.shape, Array.from(a.data)]),
  );
});

Deno.test("a damaged checkpoint is refused with one line: truncated, a changed byte, a foreign file, a broken header", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.path}/ck`;
  await saveCheckpoint(path, { state: { step: 7 }, arrays });
  const good = await Deno.readFile(path);
  const refused = async (bytes: Uint8Array, re: RegExp) => {
    await Deno.writeFile(path, bytes);
    await assert.rejects(() => loadCheckpoint(path), (e: Error) => e instanceof UserError && re.test(e.message));
  };
  await refused(good.subarray(0, good.length - 8), /damaged checkpoint \(\d+ bytes where it should have \d+\)/);
  const flipped = good.slice();
  flipped[flipped.length - 5] ^= 0x10;
  await refused(flipped, /damaged checkpoint \(its CRC-32 does not match/);
  await refused(new TextEncoder().encode("PK\x03\x04 not ours at all"), /not a checkpoint of this project/);
  const header = good.slice();
  header[14] = 0x7b; // "{" inside the JSON
  await refused(header, /damaged checkpoint \(its header is not readable\)/);
  await refused(good.subarray(0, 20), /damaged checkpoint \(the file ends inside its header/);
  await Deno.writeFile(path, good);
  assert.equal((await loadCheckpoint(path)).state.step, 7);
});

Deno.test("checkpoints of the first layout (no length, no checksum) are still read", async () => {
  await using tmp = await tempDir();
  // EXCNNCK1: magic, uint32 header length, header {state, arrays}, padding to 4 bytes, the floats.
  const header = new TextEncoder().encode(
    JSON.stringify({ state: { step: 2 }, arrays: [{ name: "w", shape: [2], offset: 0, length: 2 }] }),
  );
  const pad = (4 - ((12 + header.length) % 4)) % 4;
  const buf = new Uint8Array(12 + header.length + pad + 8);
  buf.set(new TextEncoder().encode("EXCNNCK1"));
  new DataView(buf.buffer).setUint32(8, header.length + pad, true);
  buf.set(header, 12);
  buf.fill(0x20, 12 + header.length, 12 + header.length + pad);
  new Float32Array(buf.buffer, 12 + header.length + pad, 2).set([0.5, -1]);
  await Deno.writeFile(`${tmp.path}/old`, buf);
  const ck = await loadCheckpoint(`${tmp.path}/old`);
  assert.equal(ck.state.step, 2);
  assert.deepEqual(Array.from(ck.arrays[0].data), [0.5, -1]);
});
