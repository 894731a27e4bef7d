/**
 * Checkpoints: named float32 arrays and a JSON state in one file, written
 * atomically (temporary name, then rename), so an interrupted write never
 * leaves a broken checkpoint behind; and checked when read, so a file damaged
 * afterwards (truncated by a full disk or a copy cut short, a flipped bit) is
 * refused with one line instead of resuming a run with wrong numbers.
 *
 * Layout: 8 bytes "EXCNNCK2", a uint32 header length, the header (JSON:
 * state, the name, shape and offset of every array, the arrays' byte length
 * and their CRC-32), then the arrays. Numbers JSON cannot hold (Infinity,
 * -Infinity, NaN: a best validation error before the first validation is
 * Infinity) are written as `{"$number": "Infinity"}` and read back as the
 * number, so every piece of training state round-trips exactly. Files of the
 * first layout ("EXCNNCK1", without length and checksum) are still read.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { UserError } from "./util/errors.ts";
import { writeFileAtomic } from "./util/fsutil.ts";

const MAGIC = "EXCNNCK2", MAGIC_V1 = "EXCNNCK1";

export interface Checkpoint {
  state: Record<string, unknown>;
  arrays: { name: string; shape: number[]; data: Float32Array }[];
}

interface Entry {
  name: string;
  shape: number[];
  offset: number;
  length: number;
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
  const entries: Entry[] = ck.arrays.map((a) => {
    const e = { name: a.name, shape: a.shape, offset, length: a.data.length };
    offset += a.data.length;
    return e;
  });
  const floats = new Float32Array(offset);
  ck.arrays.forEach((a, i) => floats.set(a.data, entries[i].offset));
  const payload = new Uint8Array(floats.buffer);
  const header = new TextEncoder().encode(
    JSON.stringify({ state: ck.state, arrays: entries, bytes: payload.length, crc32: crc32(payload) }, encodeNumber),
  );
  const pad = (4 - ((12 + header.length) % 4)) % 4;
  const start = 12 + header.length + pad;
  const buf = new Uint8Array(start + payload.length);
  buf.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(buf.buffer).setUint32(8, header.length + pad, true);
  buf.set(header, 12);
  buf.fill(0x20, 12 + header.length, start); // spaces: still valid JSON when parsed with the padding
  buf.set(payload, start);
  await writeFileAtomic(path, buf);
}

/** Reads a checkpoint written by {@link saveCheckpoint}; a damaged or foreign file is a {@link UserError}. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let buf: Uint8Array;
  try {
    buf = await Deno.readFile(path);
  } catch {
    throw new UserError(`${path}: no checkpoint there`);
  }
  const magic = buf.length >= 12 ? new TextDecoder().decode(buf.subarray(0, 8)) : "";
  if (magic !== MAGIC && magic !== MAGIC_V1) throw new UserError(`${path}: not a checkpoint of this project`);
  const damaged = (why: string) =>
    new UserError(`${path}: damaged checkpoint (${why}); continue from an intact copy, or start the run again`);
  const hlen = new DataView(buf.buffer, buf.byteOffset).getUint32(8, true);
  if (12 + hlen > buf.length) throw damaged(`the file ends inside its header, at ${buf.length} bytes`);
  let header: { state: Record<string, unknown>; arrays: Entry[]; bytes?: number; crc32?: number };
  try {
    header = JSON.parse(new TextDecoder().decode(buf.subarray(12, 12 + hlen)), decodeNumber);
    if (!header || typeof header.state !== "object" || !Array.isArray(header.arrays)) throw new Error("fields");
  } catch {
    throw damaged("its header is not readable");
  }
  const start = 12 + hlen;
  const payload = buf.subarray(start);
  if (magic === MAGIC) {
    if (payload.length !== header.bytes) {
      throw damaged(`${start + payload.length} bytes where it should have ${start + (header.bytes ?? 0)}`);
    }
    if (crc32(payload) !== header.crc32) throw damaged("its CRC-32 does not match: some bytes changed");
  }
  const floats = new Float32Array(payload.slice().buffer, 0, Math.floor(payload.length / 4));
  for (const e of header.arrays) {
    if (e.offset + e.length > floats.length) throw damaged(`array ${e.name} ends past the end of the file`);
  }
  return {
    state: header.state,
    arrays: header.arrays.map((e) => ({
      name: e.name,
      shape: e.shape,
      data: floats.subarray(e.offset, e.offset + e.length),
    })),
  };
}
