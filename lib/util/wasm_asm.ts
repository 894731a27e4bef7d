/**
 * A few words of WebAssembly's binary format, enough to write small SIMD kernels by hand (lib/svm_kernels.ts,
 * lib/compute/wasm_simd.ts): integer encodings, the instructions those kernels use, and a module of functions over
 * one imported memory.
 *
 * @module
 */

/** Unsigned LEB128, the integer encoding of WebAssembly's binary format. */
export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** Signed LEB128 (of i32.const). */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** Value types. */
export const I32 = 0x7f, F64 = 0x7c, V128 = 0x7b;

// Instructions (WebAssembly 2.0, with its 128-bit SIMD).
export const get = (i: number) => [0x20, i], set = (i: number) => [0x21, i], tee = (i: number) => [0x22, i];
export const i32 = (v: number) => [0x41, ...sleb(v)];
export const add32 = [0x6a], mul32 = [0x6c], shl32 = [0x74], geU32 = [0x4f], addF64 = [0xa0];
export const simd = (op: number, ...imm: number[]) => [0xfd, ...leb(op), ...imm];
/** v128 load / store at the address on the stack plus `offset` (alignment hint 0: any address). */
export const load = (offset = 0) => simd(0x00, 0, ...leb(offset)),
  store = (offset = 0) => simd(0x0b, 0, ...leb(offset));
export const f32x4 = {
  splat: simd(0x13),
  eq: simd(0x41),
  gt: simd(0x44),
  add: simd(0xe4),
  mul: simd(0xe6),
  max: simd(0xe9),
};
export const f64x2 = { splat: simd(0x14), add: simd(0xf0), mul: simd(0xf2), lane: (k: number) => simd(0x21, k) };
export const v128 = { and: simd(0x4e), andnot: simd(0x4f), or: simd(0x50) };
/** Two float32 at the address (plus `offset`) as two float64: v128.load64_zero, f64x2.promote_low_f32x4. */
export const twoFloats = (offset: number) => [...simd(0x5d, 0, ...leb(offset)), ...simd(0x5f)];

/** `body` repeated while local `ptr` is below local `end`: block { loop { br_if ptr >= end; body; br } }. */
export const loopUntil = (ptr: number, end: number, body: number[]) => [
  ...[0x02, 0x40, 0x03, 0x40],
  ...get(ptr),
  ...get(end),
  ...geU32,
  0x0d,
  1,
  ...body,
  0x0c,
  0,
  0x0b,
  0x0b,
];

/** local += v (an i32). */
export const bump = (local: number, v: number[]) => [...get(local), ...v, ...add32, ...set(local)];

/** One function of a module: its parameter and result types, its locals ([count, type] runs) and its code. */
export interface AsmFunction {
  name: string;
  params: number[];
  result: number[];
  locals: [number, number][];
  code: number[];
}

/**
 * A module that imports `env.memory` (shared or not, as the memory it will be given) and exports the functions.
 */
export function asmModule(fns: AsmFunction[], sharedMemory: boolean): WebAssembly.Module {
  const section = (id: number, items: number[][]) => {
    const body = [...leb(items.length), ...items.flat()];
    return [id, ...leb(body.length), ...body];
  };
  const name = (s: string) => [...leb(s.length), ...new TextEncoder().encode(s)];
  const types = fns.map((f) => [0x60, ...leb(f.params.length), ...f.params, ...leb(f.result.length), ...f.result]);
  const codes = fns.map((f) => {
    const body = [...leb(f.locals.length), ...f.locals.flatMap(([n, t]) => [...leb(n), t]), ...f.code, 0x0b];
    return [...leb(body.length), ...body];
  });
  // (memory 0 65536 shared), or (memory 0): any size, for a memory that grows.
  const limits = sharedMemory ? [0x03, ...leb(0), ...leb(65536)] : [0x00, ...leb(0)];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, types),
    ...section(2, [[...name("env"), ...name("memory"), 0x02, ...limits]]),
    ...section(3, fns.map((_, i) => leb(i))),
    ...section(7, fns.map((f, i) => [...name(f.name), 0x00, ...leb(i)])),
    ...section(10, codes),
  ];
  return new WebAssembly.Module(new Uint8Array(bytes));
}
