/**
 * The matrix products of a training step as WGSL compute shaders that stand on their own (no TensorFlow.js): the
 * project's training step on WebGPU (lib/compute/webgpu_step.ts) and `bench/gpu_gemm.ts` build them.
 *
 * Every convolution and dense layer of the paper's networks, forward and backward, is a product
 * C[m, n] = sum over k of A[m, k] B[k, n] once its operands are indexed right (the table in
 * lib/compute/webgpu_kernels.ts). Here an {@link Operand} says how to read A or B from buffers (with the ReLU
 * gradient's mask applied as it is read, where there is one) and an {@link Epilogue} what to do with each C[m, n]
 * (bias, ReLU and dropout after a forward product; a weight gradient with its bias gradient as one extra row of
 * C, whose row of A is all ones). Two kernels compute it:
 *
 * - `gemm1`: the first template (the one lib/compute/webgpu_kernels.ts runs under TensorFlow.js): 64 x 64 tiles, 4 x 4
 *   results per thread, one element of A or B per read with its full index arithmetic, one staged slice at a time.
 * - `gemm2`: tiles chosen per product ({@link TILES}), 8 x 8, 8 x 4 or 4 x 4 results per thread; reads of 4
 *   neighbouring elements at once (vec4) wherever the memory layout allows; the index arithmetic of each read split
 *   into what depends on its row (computed once) and what depends on k (advanced by additions, no division inside
 *   the k loop); two staged slices, the next one read from memory while the current one is multiplied; a
 *   workgroup-memory layout in which the 32 threads of a warp store to 32 different banks.
 *
 * Where C has too few tiles to fill the GPU and K is long (weight gradients: K is batch x pixels), K is split over
 * workgroups and a second kernel sums the parts in a fixed order (the result does not depend on timing) and applies
 * the epilogue.
 *
 * @module
 */

/** A range of a GPU buffer (byte offset and size; the whole buffer by default). */
export interface BufRange {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

/** A storage binding of a kernel: its WGSL name, element type and access, and the buffer range it binds. */
export interface Binding {
  name: string;
  type: "f32" | "vec4<f32>" | "u32" | "vec4<u32>" | "atomic<u32>";
  write?: boolean;
  range: BufRange;
}

/** One compute shader with its bindings and grid, ready to become a pipeline and a bind group. */
export interface KernelSource {
  label: string;
  code: string;
  bindings: Binding[];
  workgroups: [number, number, number];
}

/** How a kernel reads one operand (A or B) of a product (see the module documentation). */
export interface Operand {
  bindings: Binding[];
  /** Which index runs along memory: the operand's own (m of A, n of B: "o") or k. */
  contiguous: "o" | "k";
  /** Elements read at once along that index: 4 (a vec4) or 1. */
  width: 1 | 4;
  /** WGSL statements declaring `${p}_*` values that depend only on the operand's index `o` (hoisted). */
  outer(p: string, o: string): string;
  /** WGSL statements declaring the mutable `${p}_*` state of depth `k`. */
  kInit(p: string, k: string): string;
  /** WGSL statements moving that state on by `step` (a constant), without division. */
  kAdvance(p: string, step: number): string;
  /** WGSL statements that set `v` (f32 or vec4, zero already) from the states `po` and `pk`, both in range. */
  load(po: string, pk: string): string;
  /** WGSL statements ending in `return`: the element at (o, k), both in range, from scratch. */
  scalar(o: string, k: string): string;
}

/** What becomes of each element of C: WGSL bodies of `emit(m, n, v)` and, when N % 4 = 0, `emit4(m, n, v)`. */
export interface Epilogue {
  bindings: Binding[];
  emit: string;
  emit4?: string;
}

/** A product: C [M, N] (M counting an extra bias row where the epilogue has one) = A [M, K] B [K, N]. */
export interface GemmSpec {
  /** For labels: which product this is. */
  label: string;
  M: number;
  N: number;
  K: number;
  a: Operand;
  b: Operand;
  epilogue: Epilogue;
}

/** A tile of C per workgroup: BM x BN, TM x TN results per thread, slices of depth BK. */
export interface Tile {
  BM: number;
  BN: number;
  TM: number;
  TN: number;
  BK: number;
}

/** The tiles `gemm2` chooses from, largest first (each 256 or 128 threads). */
export const TILES: readonly Omit<Tile, "BK">[] = [
  { BM: 128, BN: 128, TM: 8, TN: 8 },
  { BM: 128, BN: 64, TM: 8, TN: 4 },
  { BM: 64, BN: 128, TM: 4, TN: 8 },
  { BM: 64, BN: 64, TM: 4, TN: 4 },
  { BM: 64, BN: 32, TM: 4, TN: 4 },
  { BM: 32, BN: 64, TM: 4, TN: 4 },
];

/** The first template's tile. */
const TILE1: Tile = { BM: 64, BN: 64, TM: 4, TN: 4, BK: 16 };

/** Aim for at least this many workgroups (the H200 has 132 multiprocessors: two waves of two workgroups each). */
const TARGET_WORKGROUPS = 528;
/** Each split of K is at least this long. */
const MIN_SPLIT = 256;
/** Threads per workgroup of the elementwise kernels. */
export const GROUP = 256;

/** Which kernel computes the products. */
export type GemmVersion = "gemm1" | "gemm2";

/** How a product runs: its tile, the number of parts K is split into, and each part's length. */
export interface GemmPlan {
  version: GemmVersion;
  tile: Tile;
  parts: number;
  chunk: number;
  /** Floats of scratch the partial products need (0 unsplit). */
  scratch: number;
}

/** Bytes of workgroup memory a tile stages (two slices of A and B, rows padded by 4 floats). */
function stagedBytes(t: Tile, buffers: number): number {
  return buffers * t.BK * (t.BM + 4 + t.BN + 4) * 4;
}

/** Splits of K that give about {@link TARGET_WORKGROUPS} workgroups for `tiles` tiles. */
function splitsFor(tiles: number, K: number): number {
  if (tiles >= TARGET_WORKGROUPS / 2) return 1;
  return Math.max(1, Math.min(Math.ceil(TARGET_WORKGROUPS / tiles), Math.floor(K / MIN_SPLIT)));
}

/**
 * The tile and split of K for a product of M x N x K: the largest tile that still gives two workgroups per
 * multiprocessor, else the 64 x 64 tile or a narrower one (whichever wastes least), with K split; within the
 * device's workgroup memory (`maxStaged` bytes).
 */
export function planGemm(M: number, N: number, K: number, version: GemmVersion, maxStaged = 16384): GemmPlan {
  let tile: Tile;
  if (version === "gemm1") tile = TILE1;
  else {
    const fits = TILES.map((t) => ({ ...t, BK: stagedBytes({ ...t, BK: 16 }, 2) <= maxStaged ? 16 : 8 }))
      .filter((t) => stagedBytes(t, 2) <= maxStaged);
    if (!fits.length) throw new Error(`no GEMM tile fits in ${maxStaged} bytes of workgroup memory`);
    const tiles = (t: Tile) => Math.ceil(M / t.BM) * Math.ceil(N / t.BN);
    const waste = (t: Tile) => tiles(t) * t.BM * t.BN / (M * N);
    tile = fits.find((t) => tiles(t) >= TARGET_WORKGROUPS / 2) ??
      fits.filter((t) => t.BM * t.BN <= 64 * 64).sort((a, b) => waste(a) - waste(b) || b.BM * b.BN - a.BM * a.BN)[0] ??
      fits.at(-1)!;
  }
  const splits = splitsFor(Math.ceil(M / tile.BM) * Math.ceil(N / tile.BN), K);
  const chunk = Math.ceil(Math.ceil(K / splits) / tile.BK) * tile.BK;
  const parts = Math.ceil(K / chunk);
  return { version, tile, parts, chunk, scratch: parts > 1 ? parts * M * N : 0 };
}

/** WGSL declarations of `bindings` at group 0, in order. */
export function declare(bindings: Binding[]): string {
  return bindings.map((b, i) =>
    `@group(0) @binding(${i}) var<storage, ${
      b.write || b.type === "atomic<u32>" ? "read_write" : "read"
    }> ${b.name}: ` +
    `array<${b.type}>;`
  ).join("\n");
}

/** Bindings with the same name (the same view of the same range) once. */
function unique(bindings: Binding[]): Binding[] {
  const seen = new Map<string, Binding>();
  for (const b of bindings) if (!seen.has(b.name)) seen.set(b.name, b);
  return [...seen.values()];
}

/** A 2D grid of 256-thread workgroups covering `items` items (WebGPU allows 65,535 workgroups per dimension). */
export function grid(items: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(items / GROUP)), x = Math.min(groups, 32768);
  return [x, Math.ceil(groups / x), 1];
}

/** WGSL: the flat index of an elementwise kernel's thread on a {@link grid}. */
export const FLAT_INDEX = "i32((wid.y * nwg.x + wid.x) * 256u + lidx)";
/** WGSL: the entry point of an elementwise kernel on a {@link grid}. */
export const FLAT_MAIN = "@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, " +
  "@builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lidx: u32)";

/** The kernels of a product under `plan`; `scratch` holds the partial products when K is split. */
export function gemmKernels(s: GemmSpec, plan: GemmPlan, scratch?: BufRange): KernelSource[] {
  if (plan.parts > 1 && !scratch) throw new Error(`${s.label}: a split product needs scratch memory`);
  const vec = s.N % 4 === 0 && !!s.epilogue.emit4;
  const part: Binding | null = plan.parts > 1
    ? { name: "part", type: vec ? "vec4<f32>" : "f32", write: true, range: scratch! }
    : null;
  const epilogue = `fn emit(m: i32, n: i32, v: f32) {\n${s.epilogue.emit}\n}\n` +
    (vec ? `fn emit4(m: i32, n: i32, v: vec4<f32>) {\n${s.epilogue.emit4}\n}\n` : "");
  const out = plan.parts > 1 ? [part!] : s.epilogue.bindings;
  const bindings = unique([...s.a.bindings, ...s.b.bindings, ...out]);
  const body = plan.version === "gemm1" ? gemm1(s, plan, vec) : gemm2(s, plan, vec);
  const kernels: KernelSource[] = [{
    label: `${s.label} ${plan.version} ${plan.tile.BM}x${plan.tile.BN}/${plan.tile.TM}x${plan.tile.TN}` +
      (plan.parts > 1 ? ` k/${plan.parts}` : ""),
    code: `${declare(bindings)}\n${plan.parts > 1 ? "" : epilogue}\n${body}`,
    bindings,
    workgroups: [Math.ceil(s.N / plan.tile.BN), Math.ceil(s.M / plan.tile.BM), plan.parts],
  }];
  if (plan.parts > 1) {
    // The sum of the parts, in order, through the epilogue.
    const sumBindings = unique([{ ...part!, write: false }, ...s.epilogue.bindings]);
    const w = vec ? 4 : 1, items = s.M * s.N / w;
    kernels.push({
      label: `${s.label} sum of ${plan.parts}`,
      code: `${declare(sumBindings)}\n${epilogue}
${FLAT_MAIN} {
  let i = ${FLAT_INDEX};
  if (i >= ${items}) { return; }
  var v = part[i];
  for (var p = 1; p < ${plan.parts}; p += 1) { v += part[i + p * ${items}]; }
  ${vec ? `emit4(i / ${s.N / 4}, (i % ${s.N / 4}) * 4, v);` : `emit(i / ${s.N}, i % ${s.N}, v);`}
}`,
      bindings: sumBindings,
      workgroups: grid(items),
    });
  }
  return kernels;
}

/** WGSL that stores the accumulators of a thread: through the epilogue, or into the parts when K is split. */
function store(s: GemmSpec, plan: GemmPlan, vec: boolean, rows: string[], cols: string, acc: (i: number) => string) {
  const lines: string[] = [];
  rows.forEach((m, i) => {
    const a = acc(i);
    if (plan.parts > 1) {
      lines.push(
        vec
          ? `{ let m = ${m}; let n = ${cols}; if (m < ${s.M} && n < ${s.N}) { part[((z * ${s.M} + m) * ${s.N} + n) / 4] = ${a}; } }`
          : `{ let m = ${m}; let n = ${cols}; if (m < ${s.M}) { for (var j = 0; j < 4; j += 1) { if (n + j < ${s.N}) { part[(z * ${s.M} + m) * ${s.N} + n + j] = ${a}[j]; } } } }`,
      );
    } else {
      lines.push(
        vec
          ? `{ let m = ${m}; let n = ${cols}; if (m < ${s.M} && n < ${s.N}) { emit4(m, n, ${a}); } }`
          : `{ let m = ${m}; let n = ${cols}; if (m < ${s.M}) { for (var j = 0; j < 4; j += 1) { if (n + j < ${s.N}) { emit(m, n + j, ${a}[j]); } } } }`,
      );
    }
  });
  return lines.join("\n  ");
}

/** The first template (see the module documentation), with the operands' scalar reads and the epilogue. */
function gemm1(s: GemmSpec, plan: GemmPlan, vec: boolean): string {
  const { BM, BK } = plan.tile, SIDE = 16;
  const aIndex = s.a.contiguous === "o"
    ? `let mm = e % ${BM}; let kk = e / ${BM};`
    : `let kk = e % ${BK}; let mm = e / ${BK};`;
  const bIndex = s.b.contiguous === "o"
    ? `let nn = e % ${BM}; let kk = e / ${BM};`
    : `let kk = e % ${BK}; let nn = e / ${BK};`;
  return `
var<workgroup> tileA: array<vec4<f32>, ${BK * BM / 4}>;
var<workgroup> tileB: array<vec4<f32>, ${BK * BM / 4}>;

fn loadA(o: i32, k: i32) -> f32 {
  ${s.a.scalar("o", "k")}
}

fn loadB(o: i32, k: i32) -> f32 {
  ${s.b.scalar("o", "k")}
}

@compute @workgroup_size(${SIDE}, ${SIDE}, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lidx: u32) {
  let tx = i32(lid.x);
  let ty = i32(lid.y);
  let tid = i32(lidx);
  let z = i32(wid.z);
  let m0 = i32(wid.y) * ${BM};
  let n0 = i32(wid.x) * ${BM};
  let kBegin = z * ${plan.chunk};
  let kEnd = min(${s.K}, kBegin + ${plan.chunk});
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = kBegin; k0 < kEnd; k0 = k0 + ${BK}) {
    for (var i = 0; i < ${(BM * BK) / (SIDE * SIDE)}; i = i + 1) {
      let e = tid + i * ${SIDE * SIDE};
      {
        ${aIndex}
        let m = m0 + mm;
        let k = k0 + kk;
        var v = 0.0;
        if (m < ${s.M} && k < kEnd) { v = loadA(m, k); }
        tileA[kk * ${BM / 4} + mm / 4][mm % 4] = v;
      }
      {
        ${bIndex}
        let n = n0 + nn;
        let k = k0 + kk;
        var v = 0.0;
        if (n < ${s.N} && k < kEnd) { v = loadB(n, k); }
        tileB[kk * ${BM / 4} + nn / 4][nn % 4] = v;
      }
    }
    workgroupBarrier();
    for (var kk = 0; kk < ${BK}; kk = kk + 1) {
      let a = tileA[kk * ${BM / 4} + ty];
      let b = tileB[kk * ${BM / 4} + tx];
      acc0 = fma(vec4<f32>(a.x), b, acc0);
      acc1 = fma(vec4<f32>(a.y), b, acc1);
      acc2 = fma(vec4<f32>(a.z), b, acc2);
      acc3 = fma(vec4<f32>(a.w), b, acc3);
    }
    workgroupBarrier();
  }
  ${store(s, plan, vec, [0, 1, 2, 3].map((i) => `m0 + ty * 4 + ${i}`), "n0 + tx * 4", (i) => `acc${i}`)}
}
`;
}

/** How one operand's slice is spread over the threads (see {@link gemm2}). */
interface Spread {
  /** Vectors (of `width` elements) per slice, and reads per thread. */
  vectors: number;
  passes: number;
  /** WGSL: the offsets along the operand's index and along k of pass p's vector, from `tid`. */
  o(p: number): string;
  k(p: number): string;
  /** Whether each thread's offset along k (along o) is the same in every pass. */
  kFixed: boolean;
  oFixed: boolean;
}

/**
 * Which elements of a BO x BK slice each of T threads reads. Along k: 16 neighbouring rows, each thread one vector;
 * then the next vectors along k; so a warp covers 16 rows x 2 vectors, and with rows padded to BO + 4 floats its
 * stores of one component land in 32 different banks. Along the operand's own index: consecutive vectors of a row.
 */
function spread(op: Operand, BO: number, BK: number, T: number): Spread {
  const w = op.width, vectors = BO * BK / w, passes = Math.ceil(vectors / T);
  if (op.contiguous === "k") {
    const KV = BK / w, G = 16;
    return {
      vectors,
      passes,
      o: (p) => `((tid + ${p * T}) % ${G} + ${G} * ((tid + ${p * T}) / ${G * KV}))`,
      k: (p) => `((((tid + ${p * T}) / ${G}) % ${KV}) * ${w})`,
      kFixed: T % (G * KV) === 0 || passes === 1,
      oFixed: passes === 1,
    };
  }
  const OV = BO / w;
  return {
    vectors,
    passes,
    o: (p) => `(((tid + ${p * T}) % ${OV}) * ${w})`,
    k: (p) => `((tid + ${p * T}) / ${OV})`,
    kFixed: passes === 1,
    oFixed: T % OV === 0 || passes === 1,
  };
}

/** The second kernel (see the module documentation). */
function gemm2(s: GemmSpec, plan: GemmPlan, vec: boolean): string {
  const { BM, BN, TM, TN, BK } = plan.tile;
  const TX = BN / TN, TY = BM / TM, T = TX * TY;
  const SA = BM + 4, SB = BN + 4;
  const ops = [
    { name: "A", op: s.a, BO: BM, S: SA, ext: s.M, base: "m0" },
    { name: "B", op: s.b, BO: BN, S: SB, ext: s.N, base: "n0" },
  ].map((x) => ({ ...x, sp: spread(x.op, x.BO, BK, T) }));
  const hoisted: string[] = [], kInit: string[] = [], advance: string[] = [], load: string[] = [];
  const stage: string[] = [];
  for (const { name, op, S, ext, base, sp } of ops) {
    const type = op.width === 4 ? "vec4<f32>" : "f32";
    for (let p = 0; p < sp.passes; p++) {
      const po = sp.oFixed ? `${name}o0` : `${name}o${p}`, pk = sp.kFixed ? `${name}k0` : `${name}k${p}`;
      const guard = (p + 1) * T > sp.vectors ? `tid + ${p * T} < ${sp.vectors}` : "true";
      if (!sp.oFixed || p === 0) {
        hoisted.push(`let ${po}_at = ${sp.o(p)};`, `let ${po}_ok = ${base} + ${po}_at < ${ext};`);
        hoisted.push(op.outer(po, `${base} + ${po}_at`));
      }
      if (!sp.kFixed || p === 0) {
        kInit.push(`let ${pk}_at = ${sp.k(p)};`, `var ${pk}_k = kBegin + ${pk}_at;`, op.kInit(pk, `${pk}_k`));
        advance.push(`${pk}_k += ${BK};`, op.kAdvance(pk, BK));
      }
      hoisted.push(`var ${name}r${p} = ${type}(0.0);`);
      load.push(
        `${name}r${p} = ${type}(0.0);`,
        `if (${guard} && ${po}_ok && ${pk}_k < kEnd) { var v = ${type}(0.0); ${op.load(po, pk)} ${name}r${p} = v; }`,
      );
      // The staged slice: [BK][BO + 4] floats, two of them.
      const at = (kk: string) => `buf * ${BK * S / 4} + ((${kk}) * ${S} + ${po}_at) / 4`;
      if (op.contiguous === "o" && op.width === 4) {
        stage.push(`if (${guard}) { ${name}s[${at(`${pk}_at`)}] = ${name}r${p}; }`);
      } else if (op.width === 4) {
        stage.push(
          `if (${guard}) { ` + [0, 1, 2, 3].map((j) =>
            `${name}s[${at(`${pk}_at + ${j}`)}][${po}_at % 4] = ${name}r${p}[${j}];`
          ).join(" ") + " }",
        );
      } else stage.push(`if (${guard}) { ${name}s[${at(`${pk}_at`)}][${po}_at % 4] = ${name}r${p}; }`);
    }
  }
  const a = Array.from({ length: TM / 4 }, (_, q) => `a${q}`), b = Array.from({ length: TN / 4 }, (_, q) => `b${q}`);
  const fmas: string[] = [];
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < TN / 4; j++) {
      fmas.push(`acc${i}_${j} = fma(vec4<f32>(${a[i >> 2]}[${i & 3}]), ${b[j]}, acc${i}_${j});`);
    }
  }
  const accs = fmas.map((_, x) => `var acc${Math.floor(x / (TN / 4))}_${x % (TN / 4)} = vec4<f32>(0.0);`);
  const rows = Array.from({ length: TM }, (_, i) => `m0 + ty * ${TM} + ${i}`);
  const stores = Array.from(
    { length: TN / 4 },
    (_, j) => store(s, plan, vec, rows, `n0 + tx * ${TN} + ${4 * j}`, (i) => `acc${i}_${j}`),
  ).join("\n  ");
  return `
var<workgroup> As: array<vec4<f32>, ${2 * BK * SA / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${2 * BK * SB / 4}>;

@compute @workgroup_size(${TX}, ${TY}, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) lidx: u32) {
  let tx = i32(lid.x);
  let ty = i32(lid.y);
  let tid = i32(lidx);
  let z = i32(wid.z);
  let m0 = i32(wid.y) * ${BM};
  let n0 = i32(wid.x) * ${BN};
  let kBegin = z * ${plan.chunk};
  let kEnd = min(${s.K}, kBegin + ${plan.chunk});
  // What each read needs of its row, once.
  ${hoisted.join("\n  ")}
  // Where along k each read starts.
  ${kInit.join("\n  ")}
  ${accs.join("\n  ")}
  // The first slice.
  ${load.join("\n  ")}
  var buf = 0;
  ${stage.join("\n  ")}
  workgroupBarrier();
  for (var k0 = kBegin; k0 < kEnd; k0 += ${BK}) {
    let more = k0 + ${BK} < kEnd;
    if (more) {
      // The next slice, from memory, while this one is multiplied.
      ${advance.join("\n      ")}
      ${load.join("\n      ")}
    }
    let cur = buf * ${BK};
    for (var kk = 0; kk < ${BK}; kk += 1) {
      ${a.map((x, q) => `let ${x} = As[((cur + kk) * ${SA} + ty * ${TM}) / 4 + ${q}];`).join("\n      ")}
      ${b.map((x, q) => `let ${x} = Bs[((cur + kk) * ${SB} + tx * ${TN}) / 4 + ${q}];`).join("\n      ")}
      ${fmas.join("\n      ")}
    }
    buf = 1 - buf;
    if (more) {
      ${stage.join("\n      ")}
    }
    workgroupBarrier();
  }
  ${stores}
}
`;
}

// ---------------------------------------------------------------------------------------------------------------
// Operands and epilogues of the paper's layers.

/** The geometry of a stride-1 NHWC convolution of x [B, H, W, Ci] with w [KH, KW, Ci, Co] into [B, OH, OW, Co]. */
export interface ConvGeom {
  B: number;
  H: number;
  W: number;
  Ci: number;
  KH: number;
  KW: number;
  Co: number;
  OH: number;
  OW: number;
  /** Padding at the top and left. */
  PT: number;
  PL: number;
}

/** A ReLU gradient's mask read beside an operand: keep where `by` > 0, times `factor` (dropout's 1 / keep). */
export interface Mask {
  range: BufRange;
  factor?: number;
}

/** WGSL: element `i` of a binding read as vectors of `w` (a scalar either way). */
function at(name: string, w: number, i: string): string {
  return w === 4 ? `${name}[(${i}) / 4][(${i}) % 4]` : `${name}[${i}]`;
}

/** WGSL statements that apply a mask to `v` read at element index `i` (vector index for width 4). */
function masked(mask: Mask | undefined, name: string, w: number, i: string): string {
  if (!mask) return "";
  const f = mask.factor !== undefined && mask.factor !== 1 ? ` * ${wgslFloat(mask.factor)}` : "";
  return w === 4
    ? `v = select(vec4<f32>(0.0), v${f}, ${name}_mask[${i}] > vec4<f32>(0.0));`
    : `v = select(0.0, v${f}, ${name}_mask[${i}] > 0.0);`;
}

/** A number as a WGSL f32 literal. */
export function wgslFloat(x: number): string {
  const s = String(Math.fround(x));
  return /[.e]/.test(s) ? s : `${s}.0`;
}

function bind(name: string, w: number, range: BufRange, mask?: Mask): Binding[] {
  const type = w === 4 ? "vec4<f32>" : "f32";
  return [{ name, type, range }, ...(mask ? [{ name: `${name}_mask`, type, range: mask.range } as Binding] : [])];
}

/**
 * WGSL: the incremental advance of a mixed-radix index by `step`, its digits named innermost first with their
 * radices (the outermost one unbounded).
 */
function carry(p: string, digits: [string, number][], step: number): string {
  const inc = (i: number): string =>
    `${p}_${digits[i][0]} += 1;` +
    (i < digits.length - 1
      ? ` if (${p}_${digits[i][0]} == ${digits[i][1]}) { ${p}_${digits[i][0]} = 0; ${inc(i + 1)} }`
      : "");
  const [d0, r0] = digits[0];
  return `${p}_${d0} += ${step}; while (${p}_${d0} >= ${r0}) { ${p}_${d0} -= ${r0}; ${inc(1)} }`;
}

/** A of the forward convolution: x's patches, rows (b, oy, ox), depth (kh, kw, ci), neighbours along ci. */
export function patches(c: ConvGeom, x: BufRange, vec4: boolean): Operand {
  const w = vec4 && c.Ci % 4 === 0 ? 4 : 1, n = "ax";
  const pixel = (b: string, iy: string, ix: string, ci: string) =>
    `((${b} * ${c.H} + ${iy}) * ${c.W} + ${ix}) * ${c.Ci} + ${ci}`;
  return {
    bindings: bind(n, w, x),
    contiguous: "k",
    width: w as 1 | 4,
    outer: (p, o) =>
      `let ${p}_b = (${o}) / ${c.OH * c.OW}; let ${p}_r = (${o}) % ${c.OH * c.OW}; ` +
      `let ${p}_y = ${p}_r / ${c.OW} - ${c.PT}; let ${p}_x = ${p}_r % ${c.OW} - ${c.PL};`,
    kInit: (p, k) =>
      `var ${p}_ci = (${k}) % ${c.Ci}; var ${p}_kw = ((${k}) / ${c.Ci}) % ${c.KW}; var ${p}_kh = (${k}) / ${
        c.Ci * c.KW
      };`,
    kAdvance: (p, step) => carry(p, [["ci", c.Ci], ["kw", c.KW], ["kh", 1 << 30]], step),
    load: (po, pk) =>
      `let iy = ${po}_y + ${pk}_kh; let ix = ${po}_x + ${pk}_kw;
      if (iy >= 0 && iy < ${c.H} && ix >= 0 && ix < ${c.W}) { v = ${n}[(${
        pixel(`${po}_b`, "iy", "ix", `${pk}_ci`)
      }) / ${w}]; }`,
    scalar: (o, k) =>
      `let b = ${o} / ${c.OH * c.OW}; let r = ${o} % ${c.OH * c.OW};
  let iy = r / ${c.OW} - ${c.PT} + ${k} / ${c.Ci * c.KW}; let ix = r % ${c.OW} - ${c.PL} + (${k} / ${c.Ci}) % ${c.KW};
  if (iy < 0 || iy >= ${c.H} || ix < 0 || ix >= ${c.W}) { return 0.0; }
  return ${at(n, w, pixel("b", "iy", "ix", `${k} % ${c.Ci}`))};`,
  };
}

/** A of the input gradient: dy's patches (masked), rows (b, iy, ix), depth (kh, kw, co), neighbours along co. */
export function gradPatches(c: ConvGeom, dy: BufRange, vec4: boolean, mask?: Mask): Operand {
  const w = vec4 && c.Co % 4 === 0 ? 4 : 1, n = "ady";
  const pixel = (b: string, oy: string, ox: string, co: string) =>
    `((${b} * ${c.OH} + ${oy}) * ${c.OW} + ${ox}) * ${c.Co} + ${co}`;
  return {
    bindings: bind(n, w, dy, mask),
    contiguous: "k",
    width: w as 1 | 4,
    outer: (p, o) =>
      `let ${p}_b = (${o}) / ${c.H * c.W}; let ${p}_r = (${o}) % ${c.H * c.W}; ` +
      `let ${p}_y = ${p}_r / ${c.W} + ${c.PT}; let ${p}_x = ${p}_r % ${c.W} + ${c.PL};`,
    kInit: (p, k) =>
      `var ${p}_co = (${k}) % ${c.Co}; var ${p}_kw = ((${k}) / ${c.Co}) % ${c.KW}; var ${p}_kh = (${k}) / ${
        c.Co * c.KW
      };`,
    kAdvance: (p, step) => carry(p, [["co", c.Co], ["kw", c.KW], ["kh", 1 << 30]], step),
    load: (po, pk) =>
      `let oy = ${po}_y - ${pk}_kh; let ox = ${po}_x - ${pk}_kw;
      if (oy >= 0 && oy < ${c.OH} && ox >= 0 && ox < ${c.OW}) {
        let i = (${pixel(`${po}_b`, "oy", "ox", `${pk}_co`)}) / ${w}; v = ${n}[i]; ${masked(mask, n, w, "i")}
      }`,
    scalar: (o, k) =>
      `let b = ${o} / ${c.H * c.W}; let r = ${o} % ${c.H * c.W};
  let oy = r / ${c.W} + ${c.PT} - ${k} / ${c.Co * c.KW}; let ox = r % ${c.W} + ${c.PL} - (${k} / ${c.Co}) % ${c.KW};
  if (oy < 0 || oy >= ${c.OH} || ox < 0 || ox >= ${c.OW}) { return 0.0; }
  let i = ${pixel("b", "oy", "ox", `${k} % ${c.Co}`)};
  ${mask ? `if (${at(`${n}_mask`, w, "i")} <= 0.0) { return 0.0; }` : ""}
  return ${at(n, w, "i")}${mask?.factor && mask.factor !== 1 ? ` * ${wgslFloat(mask.factor)}` : ""};`,
  };
}

/** B of the input gradient: w[kh, kw, n, co] at depth (kh, kw, co), neighbours along co. */
export function filterT(c: ConvGeom, wt: BufRange, vec4: boolean): Operand {
  const w = vec4 && c.Co % 4 === 0 ? 4 : 1, n = "bw";
  return {
    bindings: bind(n, w, wt),
    contiguous: "k",
    width: w as 1 | 4,
    outer: (p, o) => `let ${p}_n = (${o}) * ${c.Co};`,
    kInit: (p, k) => `var ${p}_co = (${k}) % ${c.Co}; var ${p}_kk = (${k}) / ${c.Co};`,
    kAdvance: (p, step) => carry(p, [["co", c.Co], ["kk", 1 << 30]], step),
    load: (po, pk) => `v = ${n}[(${pk}_kk * ${c.Ci * c.Co} + ${po}_n + ${pk}_co) / ${w}];`,
    scalar: (o, k) => `return ${at(n, w, `(${k} / ${c.Co}) * ${c.Ci * c.Co} + ${o} * ${c.Co} + ${k} % ${c.Co}`)};`,
  };
}

/**
 * A of the filter gradient: x's patches transposed, rows (kh, kw, ci) and, with `biasRow`, one more row of ones
 * (its product is the bias gradient), depth (b, oy, ox), neighbours along ci.
 */
export function patchesT(c: ConvGeom, x: BufRange, vec4: boolean, biasRow: boolean): Operand {
  const w = vec4 && c.Ci % 4 === 0 ? 4 : 1, n = "axt", M = c.KH * c.KW * c.Ci;
  const one = w === 4 ? "vec4<f32>(1.0, 0.0, 0.0, 0.0)" : "1.0";
  return {
    bindings: bind(n, w, x),
    contiguous: "o",
    width: w as 1 | 4,
    outer: (p, o) =>
      `let ${p}_ci = (${o}) % ${c.Ci}; let ${p}_kw = ((${o}) / ${c.Ci}) % ${c.KW} - ${c.PL}; ` +
      `let ${p}_kh = (${o}) / ${c.Ci * c.KW} - ${c.PT}; let ${p}_one = (${o}) >= ${M};`,
    kInit: (p, k) =>
      `var ${p}_ox = (${k}) % ${c.OW}; var ${p}_oy = ((${k}) / ${c.OW}) % ${c.OH}; var ${p}_b = (${k}) / ${
        c.OH * c.OW
      };`,
    kAdvance: (p, step) => carry(p, [["ox", c.OW], ["oy", c.OH], ["b", 1 << 30]], step),
    load: (po, pk) =>
      `${biasRow ? `if (${po}_one) { v = ${one}; } else ` : ""}{
        let iy = ${pk}_oy + ${po}_kh; let ix = ${pk}_ox + ${po}_kw;
        if (iy >= 0 && iy < ${c.H} && ix >= 0 && ix < ${c.W}) {
          v = ${n}[(((${pk}_b * ${c.H} + iy) * ${c.W} + ix) * ${c.Ci} + ${po}_ci) / ${w}];
        }
      }`,
    scalar: (o, k) =>
      `${biasRow ? `if (${o} >= ${M}) { return 1.0; }` : ""}
  let b = ${k} / ${c.OH * c.OW}; let r = ${k} % ${c.OH * c.OW};
  let iy = r / ${c.OW} - ${c.PT} + ${o} / ${c.Ci * c.KW}; let ix = r % ${c.OW} - ${c.PL} + (${o} / ${c.Ci}) % ${c.KW};
  if (iy < 0 || iy >= ${c.H} || ix < 0 || ix >= ${c.W}) { return 0.0; }
  return ${at(n, w, `((b * ${c.H} + iy) * ${c.W} + ix) * ${c.Ci} + ${o} % ${c.Ci}`)};`,
  };
}

/** An operand stored as a row-major matrix: A [M, K] (`rows` = M, read along k), or B [K, N] (read along n). */
export function matrix(
  role: "A" | "B",
  cols: number,
  range: BufRange,
  vec4: boolean,
  mask?: Mask,
): Operand {
  // A[m, k] = buf[m * K + k] (cols = K), neighbours along k; B[k, n] = buf[k * N + n] (cols = N), along n.
  const w = vec4 && cols % 4 === 0 ? 4 : 1, n = role === "A" ? "am" : "bm";
  return {
    bindings: bind(n, w, range, mask),
    contiguous: role === "A" ? "k" : "o",
    width: w as 1 | 4,
    outer: (p, o) => `let ${p}_o = (${o});`,
    kInit: (p, k) => `var ${p}_kk = (${k});`,
    kAdvance: (p, step) => `${p}_kk += ${step};`,
    load: (po, pk) => {
      const i = role === "A" ? `${po}_o * ${cols} + ${pk}_kk` : `${pk}_kk * ${cols} + ${po}_o`;
      return `let i = (${i}) / ${w}; v = ${n}[i]; ${masked(mask, n, w, "i")}`;
    },
    scalar: (o, k) => {
      const i = role === "A" ? `${o} * ${cols} + ${k}` : `${k} * ${cols} + ${o}`;
      return `${mask ? `if (${at(`${n}_mask`, w, i)} <= 0.0) { return 0.0; }` : ""}
  return ${at(n, w, i)}${mask?.factor && mask.factor !== 1 ? ` * ${wgslFloat(mask.factor)}` : ""};`;
    },
  };
}

/**
 * An operand stored transposed: A [M, K] as buf [K, M] (read along m; with `biasRow`, row M is all ones), or
 * B [K, N] as buf [N, K] (read along k).
 */
export function matrixT(role: "A" | "B", rows: number, range: BufRange, vec4: boolean, biasRow = false): Operand {
  // A[m, k] = buf[k * M + m] (rows = M); B[k, n] = buf[n * K + k] (rows = K).
  const w = vec4 && rows % 4 === 0 ? 4 : 1, n = role === "A" ? "amt" : "bmt";
  const one = w === 4 ? "vec4<f32>(1.0, 0.0, 0.0, 0.0)" : "1.0";
  return {
    bindings: bind(n, w, range),
    contiguous: role === "A" ? "o" : "k",
    width: w as 1 | 4,
    outer: (p, o) => `let ${p}_o = (${o});`,
    kInit: (p, k) => `var ${p}_kk = (${k});`,
    kAdvance: (p, step) => `${p}_kk += ${step};`,
    load: (po, pk) => {
      const i = role === "A" ? `${pk}_kk * ${rows} + ${po}_o` : `${po}_o * ${rows} + ${pk}_kk`;
      return `${biasRow ? `if (${po}_o >= ${rows}) { v = ${one}; } else ` : ""}{ v = ${n}[(${i}) / ${w}]; }`;
    },
    scalar: (o, k) => {
      const i = role === "A" ? `${k} * ${rows} + ${o}` : `${o} * ${rows} + ${k}`;
      return `${biasRow ? `if (${o} >= ${rows}) { return 1.0; }` : ""}
  return ${at(n, w, i)};`;
    },
  };
}

/** Dropout of a layer's output: the keep bits (one per element, row-major) at word `word` of `bits`, kept x factor. */
export interface Dropout {
  bits: BufRange;
  word: number;
  factor: number;
}

/**
 * A layer's output: C + bias (when given: `bias[n]`), then ReLU, then dropout, written to out [M, N] (N % 4 = 0:
 * as vectors).
 */
export function activation(
  N: number,
  out: BufRange,
  opts: { bias?: BufRange; relu?: boolean; dropout?: Dropout },
): Epilogue {
  const vec = N % 4 === 0;
  const bindings: Binding[] = [
    { name: "out", type: "f32", write: true, range: out },
    ...(vec ? [{ name: "out4", type: "vec4<f32>", write: true, range: out } as Binding] : []),
    ...(opts.bias ? [{ name: "bias", type: "f32", range: opts.bias } as Binding] : []),
    ...(opts.dropout ? [{ name: "keep", type: "u32", range: opts.dropout.bits } as Binding] : []),
  ];
  const d = opts.dropout;
  const one = (m: string, n: string, v: string) =>
    [
      `var r = ${v}${opts.bias ? ` + bias[${n}]` : ""};`,
      opts.relu ? "r = max(r, 0.0);" : "",
      d
        ? `let e = u32(${m} * ${N} + ${n}); r = select(0.0, r * ${
          wgslFloat(d.factor)
        }, ((keep[${d.word}u + e / 32u] >> (e % 32u)) & 1u) == 1u);`
        : "",
    ].join(" ");
  return {
    bindings,
    emit: `${one("m", "n", "v")} out[m * ${N} + n] = r;`,
    emit4: vec
      ? `var r4 = vec4<f32>(0.0);\n` +
        [0, 1, 2, 3].map((j) => `{ ${one("m", `n + ${j}`, `v[${j}]`)} r4[${j}] = r; }`).join("\n") +
        `\nout4[(m * ${N} + n) / 4] = r4;`
      : undefined,
  };
}

/** A weight gradient [M, N] into `grad`, and with `biasGrad` row M of C (the bias gradient) there. */
export function weightGradient(M: number, N: number, grad: BufRange, biasGrad?: BufRange): Epilogue {
  const vec = N % 4 === 0;
  const bindings: Binding[] = [
    { name: vec ? "gw4" : "gw", type: vec ? "vec4<f32>" : "f32", write: true, range: grad },
    ...(biasGrad ? [{ name: vec ? "gb4" : "gb", type: vec ? "vec4<f32>" : "f32", write: true, range: biasGrad }] : []),
  ] as Binding[];
  return {
    bindings,
    emit: vec ? "" : `if (m < ${M}) { gw[m * ${N} + n] = v; }${biasGrad ? ` else { gb[n] = v; }` : ""}`,
    emit4: vec
      ? `if (m < ${M}) { gw4[(m * ${N} + n) / 4] = v; }${biasGrad ? ` else { gb4[n / 4] = v; }` : ""}`
      : undefined,
  };
}

/** C written as it is to out [M, N]. */
export function plain(N: number, out: BufRange): Epilogue {
  return activation(N, out, {});
}

// ---------------------------------------------------------------------------------------------------------------
// Pipelines and bind groups.

/** A kernel ready to record: its pipeline, its bind group (made once) and its grid. */
export interface Kernel {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

/** Pipelines by device and shader (and binding kinds): the same shader in two plans compiles once. */
const PIPELINES = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

function layoutOf(device: GPUDevice, bindings: Binding[]): GPUBindGroupLayout {
  return device.createBindGroupLayout({
    entries: bindings.map((b, i) => ({
      binding: i,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: b.write || b.type === "atomic<u32>" ? "storage" : "read-only-storage" },
    })),
  });
}

/**
 * The pipeline and bind group of `src`, under an explicit layout (every declared binding stays in it, used or not).
 * Validation errors are collected by the caller's error scope ({@link checked}).
 */
export function buildKernel(device: GPUDevice, src: KernelSource): Kernel {
  let cache = PIPELINES.get(device);
  if (!cache) PIPELINES.set(device, cache = new Map());
  const layout = layoutOf(device, src.bindings);
  const key = src.bindings.map((b) => (b.write || b.type === "atomic<u32>" ? "w" : "r")).join("") + src.code;
  let pipeline = cache.get(key);
  if (!pipeline) {
    pipeline = device.createComputePipeline({
      label: src.label,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module: device.createShaderModule({ code: src.code, label: src.label }), entryPoint: "main" },
    });
    cache.set(key, pipeline);
  }
  const bindGroup = device.createBindGroup({
    label: src.label,
    layout,
    entries: src.bindings.map((b, i) => ({
      binding: i,
      resource: { buffer: b.range.buffer, offset: b.range.offset ?? 0, size: b.range.size },
    })),
  });
  return { label: src.label, pipeline, bindGroup, workgroups: src.workgroups };
}

/** Runs `build` inside a validation error scope: a shader or binding that WebGPU rejects throws, with its message. */
export async function checked<T>(device: GPUDevice, what: string, build: () => T): Promise<T> {
  device.pushErrorScope("validation");
  device.pushErrorScope("out-of-memory");
  let out: T | undefined, thrown: unknown = null;
  try {
    out = build();
  } catch (e) {
    thrown = e;
  }
  const oom = await device.popErrorScope();
  const invalid = await device.popErrorScope();
  if (oom) throw new Error(`${what}: the GPU is out of memory (${oom.message})`);
  if (invalid) throw new Error(`${what}: ${invalid.message}`);
  if (thrown) throw thrown;
  return out!;
}

/** Records `kernels` into an open compute pass. */
export function record(pass: GPUComputePassEncoder, kernels: Kernel[]): void {
  for (const k of kernels) {
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, k.bindGroup);
    pass.dispatchWorkgroups(...k.workgroups);
  }
}

/**
 * A GPU device of its own for the project's kernels outside TensorFlow.js (benchmarks, tests), with the adapter's
 * largest buffers and workgroup memory and, where offered, timestamp queries. Null where there is no adapter.
 */
export async function requestComputeDevice(adapter: GPUAdapter | null): Promise<GPUDevice | null> {
  if (!adapter) return null;
  const l = adapter.limits;
  return await adapter.requestDevice({
    requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
    requiredLimits: {
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
}
