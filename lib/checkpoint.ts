/**
 * Checkpoints: named float32 arrays and a JSON state in one file, written
 * atomically (temporary name, then rename), so an interrupted write never
 * leaves a broken checkpoint behind.
 *
 * Layout: 8 bytes "EXCNNCK1", a uint32 header length, the header (JSON:
 * state and the name, shape and offset of every array), then the arrays.
 * Numbers JSON cannot hold (Infinity, -Infinity, NaN: a best validation
 * error before the first validation is Infinity) are written as
 * `{"$number": "Infinity"}` and read back as the number, so every piece of
 * training state round-trips exactly.
 *
 * @module
 */
import { UserError } from "./errors.ts";
import { writeFileAtomic } from "./fsutil.ts";

const MAGIC = "EXCNNCK1";

export interface Checkpoint {
  state: Record<string, unknown>;
  arrays: { name: string; shape: number[]; data: Float32Array }[];
}

/** JSON.stringify replacer and JSON.parse reviver for numbers JSON cannot hold. */
const encodeNumber = (_key: string, v: unknown) =>
  typeof v === "number" && !Number.isFinite(v) ? { $number: String(v) } : v;
const decodeNumber = (_key: string, v: unknown) =>
  v !== null && typeof v === "object" && Object.keys(v).length === 1 && "$number" in v
    ? Number((v as { $number: string }).$number)
    : v;

/** Writes a checkpoint atomically. */
export async function saveCheckpoint(path: string, ck: Checkpoint): Promise<void> {
  let offset = 0;
  const entries = ck.arrays.map((a) => {
    const e = { name: a.name, shape: a.shape, offset, length: a.data.length };
    offset += a.data.length;
    return e;
  });
  const header = new TextEncoder().encode(JSON.stringify({ state: ck.state, arrays: entries }, encodeNumber));
  const pad = (4 - ((12 + header.length) % 4)) % 4;
  const start = 12 + header.length + pad;
  const buf = new Uint8Array(start + offset * 4);
  buf.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(buf.buffer).setUint32(8, header.length + pad, true);
  buf.set(header, 12);
  buf.fill(0x20, 12 + header.length, start); // spaces: still valid JSON when parsed with the padding
  const floats = new Float32Array(buf.buffer, start, offset);
  ck.arrays.forEach((a, i) => floats.set(a.data, entries[i].offset));
  await writeFileAtomic(path, buf);
}

/** Reads a checkpoint written by {@link saveCheckpoint}. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let buf: Uint8Array;
  try {
    buf = await Deno.readFile(path);
  } catch {
    throw new UserError(`${path}: no checkpoint there`);
  }
  if (buf.length < 12 || new TextDecoder().decode(buf.subarray(0, 8)) !== MAGIC) {
    throw new UserError(`${path}: not a checkpoint of this project`);
  }
  const hlen = new DataView(buf.buffer, buf.byteOffset).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(12, 12 + hlen)), decodeNumber);
  const start = 12 + hlen;
  const floats = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return {
    state: header.state,
    arrays: header.arrays.map((e: { name: string; shape: number[]; offset: number; length: number }) => ({
      name: e.name,
      shape: e.shape,
      data: floats.subarray(e.offset, e.offset + e.length),
    })),
  };
}
