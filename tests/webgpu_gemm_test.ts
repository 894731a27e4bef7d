import assert from "node:assert/strict";
import { requestGpuAdapter } from "../lib/compute/backend.ts";
import {
  activation,
  buildKernel,
  checked,
  type ConvGeom,
  filterT,
  gemmKernels,
  type GemmPlan,
  type GemmSpec,
  gradPatches,
  matrix,
  matrixT,
  patches,
  patchesT,
  plain,
  planGemm,
  record,
  requestComputeDevice,
  type Tile,
  TILES,
  weightGradient,
} from "../lib/compute/webgpu_gemm.ts";
import { Rng } from "../lib/util/rng.ts";

// The products of a training step (lib/compute/webgpu_gemm.ts) against plain loops in double precision, on the
// software adapter (llvmpipe) where there is no GPU: both kernels, every tile of the second, K split and not,
// vector reads and scalar ones.
const device = await requestComputeDevice(await requestGpuAdapter());

function randoms(n: number, seed: number): Float32Array<ArrayBuffer> {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

function upload(d: GPUDevice, data: Float32Array<ArrayBuffer> | Uint32Array<ArrayBuffer>): GPUBuffer {
  const b = d.createBuffer({ size: Math.max(16, Math.ceil(data.byteLength / 16) * 16), usage: USAGE });
  d.queue.writeBuffer(b, 0, data);
  return b;
}

async function download(d: GPUDevice, b: GPUBuffer, floats: number): Promise<Float32Array> {
  const staging = d.createBuffer({ size: b.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const e = d.createCommandEncoder();
  e.copyBufferToBuffer(b, 0, staging, 0, b.size);
  d.queue.submit([e.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0, floats * 4));
  staging.unmap();
  staging.destroy();
  return out;
}

/** Runs the product under each plan; returns what each wrote into `outs`. */
async function run(d: GPUDevice, spec: GemmSpec, plan: GemmPlan, outs: GPUBuffer[], sizes: number[]) {
  for (const o of outs) d.queue.writeBuffer(o, 0, new Float32Array(o.size / 4).fill(NaN));
  const scratch = plan.scratch ? d.createBuffer({ size: plan.scratch * 4, usage: USAGE }) : undefined;
  const kernels = await checked(
    d,
    spec.label,
    () => gemmKernels(spec, plan, scratch && { buffer: scratch }).map((k) => buildKernel(d, k)),
  );
  const e = d.createCommandEncoder(), pass = e.beginComputePass();
  record(pass, kernels);
  pass.end();
  d.queue.submit([e.finish()]);
  const got = await Promise.all(outs.map((o, i) => download(d, o, sizes[i])));
  scratch?.destroy();
  return got;
}

function assertClose(got: Float32Array, want: Float64Array, what: string): void {
  let max = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    max = Math.max(max, Math.abs(got[i] - want[i]));
    if (Number.isNaN(got[i])) max = Infinity;
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(scale > 0 && max <= 2e-6 * scale, `${what}: max difference ${max} (scale ${scale})`);
}

/**
 * The plans a product is tried under: the first kernel with K whole and split in 3; the second with tiles of each
 * shape of results per thread (8 x 8, 8 x 4, 4 x 4), both slice depths, K whole and split (`all`: else only two).
 */
function plans(M: number, N: number, K: number, maxStaged: number, all = true): GemmPlan[] {
  const tile = (i: number, BK: number): Tile => ({ ...TILES[i], BK });
  const tries: [GemmPlan["version"], Tile, number][] = [
    ["gemm1", planGemm(M, N, K, "gemm1").tile, 1],
    ["gemm1", planGemm(M, N, K, "gemm1").tile, 3],
    ["gemm2", tile(1, 8), 3],
    ["gemm2", tile(4, 16), 1],
    ["gemm2", tile(0, 8), 1],
    ["gemm2", tile(5, 16), 3],
  ];
  return tries.slice(0, all ? undefined : 3).filter(([, t]) => 2 * t.BK * (t.BM + t.BN + 8) * 4 <= maxStaged).map(
    ([version, tile, splits]) => {
      const chunk = Math.ceil(Math.ceil(K / splits) / tile.BK) * tile.BK, parts = Math.ceil(K / chunk);
      return { version, tile, chunk, parts, scratch: parts > 1 ? parts * M * N : 0 };
    },
  );
}

const conv = (vec: boolean): ConvGeom => {
  const Ci = vec ? 8 : 3, Co = vec ? 12 : 6;
  return { B: 3, H: 7, W: 6, Ci, KH: 3, KW: 3, Co, OH: 7, OW: 6, PT: 1, PL: 1 };
};

Deno.test("GEMM kernels: convolution, input and filter gradients with bias, ReLU and masks", {
  ignore: !device,
}, async () => {
  const d = device!, maxStaged = d.limits.maxComputeWorkgroupStorageSize;
  for (const vec of [true, false]) {
    const c = conv(vec), P = c.B * c.OH * c.OW, K = c.KH * c.KW;
    const x = randoms(c.B * c.H * c.W * c.Ci, 1), w = randoms(K * c.Ci * c.Co, 2), b = randoms(c.Co, 3);
    const dy = randoms(P * c.Co, 4), y = randoms(P * c.Co, 5);
    // References: y = relu(conv(x, w) + b); dx and dw, db of dz = dy where y > 0.
    const fwd = new Float64Array(P * c.Co), dx = new Float64Array(c.B * c.H * c.W * c.Ci);
    const dw = new Float64Array(K * c.Ci * c.Co), db = new Float64Array(c.Co);
    for (let p = 0; p < P; p++) {
      const bi = Math.floor(p / (c.OH * c.OW)), oy = Math.floor(p / c.OW) % c.OH, ox = p % c.OW;
      for (let co = 0; co < c.Co; co++) {
        const dz = y[p * c.Co + co] > 0 ? dy[p * c.Co + co] : 0;
        db[co] += dz;
        let s = b[co];
        for (let kh = 0; kh < c.KH; kh++) {
          for (let kw = 0; kw < c.KW; kw++) {
            const iy = oy + kh - c.PT, ix = ox + kw - c.PL;
            if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
            for (let ci = 0; ci < c.Ci; ci++) {
              const xi = ((bi * c.H + iy) * c.W + ix) * c.Ci + ci, wi = ((kh * c.KW + kw) * c.Ci + ci) * c.Co + co;
              s += x[xi] * w[wi];
              dx[xi] += dz * w[wi];
              dw[wi] += dz * x[xi];
            }
          }
        }
        fwd[p * c.Co + co] = Math.max(0, s);
      }
    }
    const [X, Wb, Bb, DY, Y] = [x, w, b, dy, y].map((a) => upload(d, a));
    const out = d.createBuffer({ size: Math.max(x.length, dy.length) * 4, usage: USAGE });
    const gw = d.createBuffer({ size: dw.length * 4, usage: USAGE }), gb = d.createBuffer({ size: 64, usage: USAGE });
    const cases: [string, GemmSpec, GPUBuffer[], Float64Array[]][] = [
      [
        "forward",
        {
          label: "forward",
          M: P,
          N: c.Co,
          K: K * c.Ci,
          a: patches(c, { buffer: X }, vec),
          b: matrix("B", c.Co, { buffer: Wb }, vec),
          epilogue: activation(c.Co, { buffer: out }, { bias: { buffer: Bb }, relu: true }),
        },
        [out],
        [fwd],
      ],
      [
        "input gradient",
        {
          label: "input gradient",
          M: c.B * c.H * c.W,
          N: c.Ci,
          K: K * c.Co,
          a: gradPatches(c, { buffer: DY }, vec, { range: { buffer: Y } }),
          b: filterT(c, { buffer: Wb }, vec),
          epilogue: plain(c.Ci, { buffer: out }),
        },
        [out],
        [dx],
      ],
      [
        "filter gradient",
        {
          label: "filter gradient",
          M: K * c.Ci + 1,
          N: c.Co,
          K: P,
          a: patchesT(c, { buffer: X }, vec, true),
          b: matrix("B", c.Co, { buffer: DY }, vec, { range: { buffer: Y } }),
          epilogue: weightGradient(K * c.Ci, c.Co, { buffer: gw }, { buffer: gb, size: c.Co * 4 }),
        },
        [gw, gb],
        [dw, db],
      ],
    ];
    for (const [what, spec, outs, wants] of cases) {
      for (const plan of plans(spec.M, spec.N, spec.K, maxStaged, vec)) {
        const got = await run(d, spec, plan, outs, wants.map((w) => w.length));
        got.forEach((g, i) => assertClose(g, wants[i], `${what} (${vec ? "vec4" : "scalar"}) ${JSON.stringify(plan)}`));
      }
    }
    for (const buf of [X, Wb, Bb, DY, Y, out, gw, gb]) buf.destroy();
  }
});

Deno.test("GEMM kernels: dense layers with dropout, masks and the bias row", { ignore: !device }, async () => {
  const d = device!, maxStaged = d.limits.maxComputeWorkgroupStorageSize;
  for (const [R, In, U] of [[5, 40, 12], [7, 30, 9]]) {
    const h = randoms(R * In, 6), w = randoms(In * U, 7), b = randoms(U, 8), dd = randoms(R * U, 9);
    const dout = randoms(R * U, 10); // the layer's output after dropout: where it is > 0 the gradient passes, x 2
    const bits = new Uint32Array(4 + Math.ceil(R * U / 32));
    const keep = (e: number) => (e * 7919) % 3 !== 0;
    for (let e = 0; e < R * U; e++) if (keep(e)) bits[4 + (e >> 5)] |= 1 << (e & 31);
    const fwd = new Float64Array(R * U), dh = new Float64Array(R * In), dw = new Float64Array(In * U);
    const db = new Float64Array(U);
    for (let r = 0; r < R; r++) {
      for (let u = 0; u < U; u++) {
        let s = b[u];
        const g = dout[r * U + u] > 0 ? 2 * dd[r * U + u] : 0;
        db[u] += g;
        for (let i = 0; i < In; i++) {
          s += h[r * In + i] * w[i * U + u];
          dh[r * In + i] += g * w[i * U + u];
          dw[i * U + u] += g * h[r * In + i];
        }
        fwd[r * U + u] = keep(r * U + u) ? 2 * Math.max(0, s) : 0;
      }
    }
    const [H, Wb, Bb, DD, DO] = [h, w, b, dd, dout].map((a) => upload(d, a)), BITS = upload(d, bits);
    const out = d.createBuffer({ size: Math.max(R * U, R * In) * 4, usage: USAGE });
    const gw = d.createBuffer({ size: dw.length * 4, usage: USAGE }), gb = d.createBuffer({ size: 64, usage: USAGE });
    // (30 x 9 has no dimension divisible by 4: scalar reads either way.)
    for (const vec of In % 4 === 0 ? [true, false] : [true]) {
      const mask = { range: { buffer: DO }, factor: 2 };
      const cases: [string, GemmSpec, GPUBuffer[], Float64Array[]][] = [
        [
          "forward",
          {
            label: "forward",
            M: R,
            N: U,
            K: In,
            a: matrix("A", In, { buffer: H }, vec),
            b: matrix("B", U, { buffer: Wb }, vec),
            epilogue: activation(U, { buffer: out }, {
              bias: { buffer: Bb },
              relu: true,
              dropout: { bits: { buffer: BITS }, word: 4, factor: 2 },
            }),
          },
          [out],
          [fwd],
        ],
        [
          "input gradient",
          {
            label: "input gradient",
            M: R,
            N: In,
            K: U,
            a: matrix("A", U, { buffer: DD }, vec, mask),
            b: matrixT("B", U, { buffer: Wb }, vec),
            epilogue: plain(In, { buffer: out }),
          },
          [out],
          [dh],
        ],
        [
          "weight gradient",
          {
            label: "weight gradient",
            M: In + 1,
            N: U,
            K: R,
            a: matrixT("A", In, { buffer: H }, vec, true),
            b: matrix("B", U, { buffer: DD }, vec, mask),
            epilogue: weightGradient(In, U, { buffer: gw }, { buffer: gb, size: U * 4 }),
          },
          [gw, gb],
          [dw, db],
        ],
      ];
      for (const [what, spec, outs, wants] of cases) {
        for (const plan of plans(spec.M, spec.N, spec.K, maxStaged, vec)) {
          const got = await run(d, spec, plan, outs, wants.map((w) => w.length));
          got.forEach((g, i) =>
            assertClose(g, wants[i], `${R}x${In}x${U} ${what} (${vec ? "vec4" : "scalar"}) ${JSON.stringify(plan)}`)
          );
        }
      }
    }
    for (const buf of [H, Wb, Bb, DD, DO, BITS, out, gw, gb]) buf.destroy();
  }
});

Deno.test("GEMM kernels: the tile and split of each paper product", () => {
  // conv1's filter gradient at batch 128: 76 x 64 outputs (with the bias row), K = 131,072: split many ways.
  const dw1 = planGemm(76, 64, 128 * 32 * 32, "gemm2", 32768);
  assert.ok(dw1.parts > 100, JSON.stringify(dw1));
  // The medium network's conv2 forward: 32,768 x 128, K = 1600: large tiles, K whole.
  const f2 = planGemm(128 * 16 * 16, 128, 1600, "gemm2", 32768);
  assert.equal(f2.parts, 1);
  assert.ok(f2.tile.BM * f2.tile.BN >= 128 * 64 && f2.tile.TM === 8, JSON.stringify(f2));
  // Its fc1: 128 x 512, K = 16,384: few tiles, K split.
  assert.ok(planGemm(128, 512, 16384, "gemm2", 32768).parts > 4);
  // Within 16 KiB of workgroup memory, the slices get shallower.
  assert.ok(planGemm(128 * 16 * 16, 128, 1600, "gemm2").tile.BK === 8);
});
