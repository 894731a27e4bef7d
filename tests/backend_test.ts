import assert from "node:assert/strict";
import { selectBackend, tf } from "../lib/compute/backend.ts";
import { installWasmKernels } from "../lib/compute/wasm_kernels.ts";
import {
  missingWasmInternals,
  pinnedWasmVersion,
  wasmInternals,
  wasmInternalsProblem,
} from "../lib/compute/tfjs_internals.ts";
import { UserError } from "../lib/util/errors.ts";
import { Rng } from "../lib/util/rng.ts";
import { CHUNK_FLOATS, convFilterGrad, convForward, type ConvGeometry, openBlas } from "../lib/compute/blas.ts";
import { WorkerPool } from "../lib/compute/pool.ts";
import { products } from "./fixtures/blas_products.ts";
import type { BlasTestRequest } from "./fixtures/blas_worker.ts";

const { blas, why: noBlas } = openBlas();
/** The wasm kernel sets under test: XNNPACK-based always, OpenBLAS where the library opens. */
const MODES = blas ? ["xnnpack", "openblas"] as const : ["xnnpack"] as const;
async function wasmWith(mode: "xnnpack" | "openblas") {
  await selectBackend("wasm");
  installWasmKernels(mode === "openblas" ? blas : null);
}

function assertClose(a: Float32Array, b: Float32Array, what: string, tol = 1e-4) {
  assert.equal(a.length, b.length, `${what}: lengths`);
  let max = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    max = Math.max(max, Math.abs(a[i] - b[i])), scale = Math.max(scale, Math.abs(b[i]));
  }
  assert.ok(max <= tol * Math.max(1, scale), `${what}: max difference ${max}`);
}

type Shape4 = [number, number, number, number];

/** Gradients of sum(conv2d(x, w) * dy) with respect to x and w, on the current backend. */
function convGrads(xs: Shape4, ws: Shape4, pad: "same" | "valid" | number, seed: number): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.randomNormal(xs, 0, 1, "float32", seed) as tf.Tensor4D;
    const w = tf.randomNormal(ws, 0, 1, "float32", seed + 1) as tf.Tensor4D;
    const outShape = tf.conv2d(x, w, 1, pad as "same").shape;
    const dy = tf.randomNormal(outShape, 0, 1, "float32", seed + 2);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad as "same").mul(dy).sum()
    );
    return g([x, w]).map((t) => t.dataSync() as Float32Array);
  });
}

Deno.test("wasm convolution gradients equal the cpu backend's on small shapes (XNNPACK and OpenBLAS kernels)", async () => {
  const cases: [Shape4, Shape4, "same" | "valid" | number][] = [
    [[2, 7, 9, 3], [5, 5, 3, 4], "same"],
    [[3, 8, 6, 2], [3, 3, 2, 5], "valid"],
    [[1, 6, 6, 4], [5, 5, 4, 2], 1],
    [[4, 5, 5, 1], [1, 1, 1, 3], "same"],
  ];
  await selectBackend("cpu");
  const cpu = cases.map(([x, w, p], i) => convGrads(x, w, p, 10 * i + 1));
  for (const mode of MODES) {
    await wasmWith(mode);
    const wasm = cases.map(([x, w, p], i) => convGrads(x, w, p, 10 * i + 1));
    for (let c = 0; c < cases.length; c++) {
      for (let g = 0; g < 2; g++) {
        assertClose(wasm[c][g], cpu[c][g], `${mode} case ${c} ${g ? "filter" : "input"} gradient`);
      }
    }
  }
});

Deno.test("OpenBLAS convolutions: strided and padded forward passes, strided filter gradients, batched products", {
  ignore: !blas && Deno.env.get("CI") !== "true",
}, async () => {
  assert.ok(blas, `CI installs OpenBLAS, but it did not open: ${noBlas}`);
  const run = () =>
    tf.tidy(() => {
      const out: Float32Array[] = [];
      const x = tf.randomNormal([2, 9, 11, 3], 0, 1, "float32", 41) as tf.Tensor4D;
      const w = tf.randomNormal([3, 4, 3, 5], 0, 1, "float32", 42) as tf.Tensor4D;
      for (const [s, pad] of [[1, "same"], [2, "same"], [2, "valid"], [3, 1]] as const) {
        const y = tf.conv2d(x, w, s, pad);
        out.push(y.dataSync() as Float32Array);
        const dy = tf.randomNormal(y.shape, 0, 1, "float32", 43 + s);
        out.push(
          tf.grad((b: tf.Tensor) => tf.conv2d(x, b as tf.Tensor4D, s, pad).mul(dy).sum())(w).dataSync() as Float32Array,
        );
      }
      const a = tf.randomNormal([3, 4, 6], 0, 1, "float32", 51), b = tf.randomNormal([3, 6, 2], 0, 1, "float32", 52);
      out.push(tf.matMul(a, b).dataSync() as Float32Array);
      out.push(tf.matMul(a, a, true, false).dataSync() as Float32Array);
      out.push(tf.matMul(b, b, false, true).dataSync() as Float32Array);
      out.push(tf.matMul(a, b.transpose([0, 2, 1]), false, true).dataSync() as Float32Array);
      return out;
    });
  await selectBackend("cpu");
  const ref = run();
  await wasmWith("openblas");
  const got = run();
  for (let i = 0; i < ref.length; i++) assertClose(got[i], ref[i], `output ${i}`);
});

/** Unit roundoff of float32. */
const U32 = 2 ** -24;

/**
 * Asserts |got - exact| <= gamma_n * bound elementwise, gamma_n = n u / (1 - n u): Higham's bound on a sum of n
 * float32 products computed in any order, with or without fused multiply-adds, against the exact sum (here in
 * float64) with bound = the sum of the products' magnitudes. It holds for every blocking a BLAS library may choose.
 */
function assertWithinRounding(got: Float32Array, exact: Float64Array, bound: Float64Array, n: number, what: string) {
  const gamma = n * U32 / (1 - n * U32);
  assert.equal(got.length, exact.length, `${what}: lengths`);
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - exact[i]);
    assert.ok(
      err <= gamma * bound[i],
      `${what}: element ${i} is ${got[i]}, exact ${exact[i]} (allowed ${gamma * bound[i]})`,
    );
  }
}

/** A float32 array holding the same values at a different place in memory (offset floats into a fresh buffer). */
function moved(a: Float32Array, offset: number): Float32Array {
  const b = new Float32Array(a.length + offset).subarray(offset);
  b.set(a);
  return b;
}

Deno.test(
  "OpenBLAS convolutions: every im2col chunk size within float32's rounding of the exact sums; a repeated call gives the same bits wherever its operands lie",
  {
    ignore: !blas,
  },
  () => {
    const geometries: ConvGeometry[] = [
      {
        batch: 3,
        inH: 7,
        inW: 6,
        inC: 4,
        outH: 4,
        outW: 3,
        outC: 5,
        kh: 3,
        kw: 3,
        strideH: 2,
        strideW: 2,
        padTop: 1,
        padLeft: 1,
      },
      // Wide enough rows (K = 200) that OpenBLAS's kernels block the sums differently for different chunks.
      {
        batch: 2,
        inH: 12,
        inW: 12,
        inC: 8,
        outH: 12,
        outW: 12,
        outC: 16,
        kh: 5,
        kw: 5,
        strideH: 1,
        strideW: 1,
        padTop: 2,
        padLeft: 2,
      },
    ];
    const rnd = (n: number, seed: number) =>
      Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i * 12.9898));
    for (const [gi, g] of geometries.entries()) {
      const K = g.kh * g.kw * g.inC, M = g.batch * g.outH * g.outW, N = g.outC;
      const x = rnd(g.batch * g.inH * g.inW * g.inC, 1), w = rnd(K * N, 2), dy = rnd(M * N, 3);
      // The exact sums, and the sums of the products' magnitudes, by direct loops in float64.
      const y64 = new Float64Array(M * N), yAbs = new Float64Array(M * N);
      const dw64 = new Float64Array(K * N), dwAbs = new Float64Array(K * N);
      for (let r = 0; r < M; r++) {
        const n = Math.floor(r / (g.outH * g.outW)), oy = Math.floor(r / g.outW) % g.outH, ox = r % g.outW;
        for (let ky = 0; ky < g.kh; ky++) {
          for (let kx = 0; kx < g.kw; kx++) {
            const iy = oy * g.strideH - g.padTop + ky, ix = ox * g.strideW - g.padLeft + kx;
            if (iy < 0 || iy >= g.inH || ix < 0 || ix >= g.inW) continue;
            for (let c = 0; c < g.inC; c++) {
              const xv = x[((n * g.inH + iy) * g.inW + ix) * g.inC + c], k = (ky * g.kw + kx) * g.inC + c;
              for (let o = 0; o < N; o++) {
                y64[r * N + o] += xv * w[k * N + o], yAbs[r * N + o] += Math.abs(xv * w[k * N + o]);
                dw64[k * N + o] += xv * dy[r * N + o], dwAbs[k * N + o] += Math.abs(xv * dy[r * N + o]);
              }
            }
          }
        }
      }
      for (const chunk of [1, K, 7 * K + 3, 1000, CHUNK_FLOATS]) {
        const what = `geometry ${gi}, chunks of ${chunk} floats`;
        const y = new Float32Array(M * N), dw = new Float32Array(K * N);
        convForward(blas!, x, w, y, g, chunk);
        convFilterGrad(blas!, x, dy, dw, g, chunk);
        assertWithinRounding(y, y64, yAbs, K, `${what}: forward`);
        assertWithinRounding(dw, dw64, dwAbs, M, `${what}: filter gradient`);
        // Determinism (a run continued from a checkpoint ends with the same weights as one never stopped): the same
        // call gives the same bits, also with its tensors elsewhere in memory, as in a continued run's wasm heap.
        for (const offset of [0, 1, 3]) {
          const y2 = moved(new Float32Array(M * N), offset + 2), dw2 = moved(new Float32Array(K * N), offset);
          convForward(blas!, moved(x, offset), moved(w, offset + 1), y2, g, chunk);
          convFilterGrad(blas!, moved(x, offset + 2), moved(dy, offset), dw2, g, chunk);
          assert.deepEqual(y2, y, `${what}: forward again, operands moved by ${offset}`);
          assert.deepEqual(dw2, dw, `${what}: filter gradient again, operands moved by ${offset}`);
        }
      }
    }
  },
);

Deno.test("OpenBLAS sgemm refuses a product that does not fit its arrays, before OpenBLAS writes anything", {
  ignore: !blas,
}, () => {
  // Each view lies in a larger buffer filled with a marker, so that a write past its end is seen (and stays in
  // memory the test owns).
  const MARK = -7;
  const inside = (n: number) => new Float32Array(n + 64).fill(MARK).subarray(0, n).fill(1);
  const untouched = (v: Float32Array) => new Float32Array(v.buffer).subarray(v.length).every((x) => x === MARK);
  const A = inside(3 * 4), B = inside(4 * 5);
  // C one row short: 2 x 5 where the product is 3 x 5.
  const short = inside(2 * 5);
  assert.throws(
    () => blas!.sgemm(false, false, 3, 5, 4, 1, A, 4, B, 5, 0, short, 5),
    /C holds 10 floats, the product reaches 15/,
  );
  assert.ok(untouched(short), "nothing written past C");
  const C = inside(3 * 5);
  assert.throws(() => blas!.sgemm(false, false, 3, 5, 4, 1, A.subarray(1), 4, B, 5, 0, C, 5), /A holds 11 floats/);
  assert.throws(() => blas!.sgemm(true, false, 3, 5, 4, 1, A, 3, B.subarray(0, 19), 5, 0, C, 5), /B holds 19 floats/);
  assert.throws(
    () => blas!.sgemm(false, true, 3, 5, 4, 1, A, 4, B, 3, 0, C, 5),
    /B has 4 columns, but its leading dimension is 3/,
  );
  assert.throws(() => blas!.sgemm(false, false, 3, 5, 4, 1, A, 4, B, 5, 0, C, 4), /C has 5 columns/);
  assert.throws(() => blas!.sgemm(false, false, 3, 5, 4.5, 1, A, 4, B, 5, 0, C, 5), /K = 4.5/);
  const shared = inside(12 + 15);
  assert.throws(
    () => blas!.sgemm(false, false, 3, 5, 4, 1, shared.subarray(0, 12), 4, B, 5, 0, shared.subarray(11, 26), 5),
    /C overlaps A/,
  );
  assert.ok(C.every((x) => x === 1) && untouched(C), "C untouched by refused calls");
  // Padded rows (ld > columns) are products that fit: the gaps between rows stay as they were.
  const padded = inside(2 * 7 + 5);
  blas!.sgemm(false, false, 3, 5, 4, 1, A, 4, B, 5, 0, padded, 7);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 7 && r * 7 + c < padded.length; c++) assert.equal(padded[r * 7 + c], c < 5 ? 4 : 1);
  }
  assert.ok(untouched(padded));
});

Deno.test("OpenBLAS called from several workers at once gives the bits it gives alone, within its arrays", {
  ignore: !blas,
}, async () => {
  // Each thread of the project (the main one, each gradient or feature worker) calls the one OpenBLAS of the process.
  const SEEDS = [1, 2, 3], COUNT = 30;
  const alone = SEEDS.map((seed) => products(blas!, seed, COUNT));
  const pool = new WorkerPool<BlasTestRequest, number[]>(
    new URL("./fixtures/blas_worker.ts", import.meta.url),
    SEEDS.length,
    "blas",
  );
  try {
    const answers = SEEDS.map((seed, i) => pool.call(i, { seed, count: COUNT, rounds: 3 }));
    // This thread computes too while the workers do.
    const here = [products(blas!, 2, COUNT), products(blas!, 1, COUNT)];
    const got = await Promise.all(answers);
    assert.deepEqual(here, [alone[1], alone[0]], "this thread, beside the workers");
    got.forEach((hashes, i) => assert.deepEqual(hashes, [alone[i], alone[i], alone[i]], `worker ${i}`));
  } finally {
    pool.close();
  }
});

Deno.test("a pool closed while its workers multiply returns once none of them is inside OpenBLAS", {
  ignore: !blas,
}, async () => {
  const pool = new WorkerPool<{ ms: number }, number>(
    new URL("./fixtures/blas_busy_worker.ts", import.meta.url),
    2,
    "busy",
  );
  const begun = [0, 1].map((w) =>
    new Promise<void>((ok) => pool.call(w, { ms: 60_000 }, { onEvent: () => ok() }).catch(() => {}))
  );
  await Promise.all(begun);
  // A busy machine may not run a worker at once: wait (up to 10 s) until one is inside OpenBLAS.
  for (const until = Date.now() + 10_000; pool.nativeCalls === 0 && Date.now() < until;) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(pool.nativeCalls > 0, "the workers are multiplying");
  pool.close();
  assert.equal(pool.nativeCalls, 0, "no worker inside OpenBLAS once close() returns");
});

Deno.test("a process that exits while pool workers multiply ends cleanly (no crash in OpenBLAS's clean-up)", {
  ignore: !blas,
}, async () => {
  // Without the wait, about one such exit in 300 crashed (a segmentation fault, or glibc's heap check).
  for (let i = 0; i < 12; i++) {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./fixtures/blas_exit.ts", import.meta.url).pathname, String(5 + 17 * i)],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 0, `exit ${i}: code ${r.code} ${new TextDecoder().decode(r.stderr)}`);
  }
});

Deno.test("wasm max-pooling gradient, transposed matrix products and row sums equal the cpu backend's", async () => {
  const run = () =>
    tf.tidy(() => {
      const x = tf.randomNormal([2, 9, 7, 5], 0, 1, "float32", 21) as tf.Tensor4D;
      // After a ReLU most windows hold ties (zeros): dy goes to the first maximum in scan order.
      const ties = tf.relu(tf.randomNormal([2, 9, 7, 5], 0, 1, "float32", 25).round()) as tf.Tensor4D;
      // Eight channels: the four-lane (SIMD) loops; five: the plain ones.
      const x8 = tf.randomNormal([2, 9, 7, 8], 0, 1, "float32", 41) as tf.Tensor4D;
      const ties8 = tf.relu(tf.randomNormal([2, 9, 7, 8], 0, 1, "float32", 45).round()) as tf.Tensor4D;
      const out: Float32Array[] = [];
      for (const input of [ties, x, ties8, x8]) {
        for (const [k, s] of [[3, 2], [2, 2], [3, 1]]) {
          const dy = tf.randomNormal(tf.maxPool(input, k, s, "same").shape, 0, 1, "float32", 26 + k + s);
          out.push(
            tf.grad((a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, k, s, "same").mul(dy).sum())(input)
              .dataSync() as Float32Array,
          );
        }
      }
      out.push(x8.sum([0, 1, 2]).dataSync() as Float32Array);
      const a = tf.randomNormal([6, 11], 0, 1, "float32", 31) as tf.Tensor2D;
      const b = tf.randomNormal([6, 4], 0, 1, "float32", 32) as tf.Tensor2D;
      const c = tf.randomNormal([3, 11], 0, 1, "float32", 33) as tf.Tensor2D;
      out.push(tf.matMul(a, b, true, false).dataSync() as Float32Array);
      out.push(tf.matMul(a, c, false, true).dataSync() as Float32Array);
      out.push(tf.matMul(b, a, true, false).dataSync() as Float32Array);
      // Sums over all leading axes (bias gradients) and over other axes (the backend's own kernel).
      out.push(x.sum([0, 1, 2]).dataSync() as Float32Array);
      out.push(a.sum(0).dataSync() as Float32Array);
      out.push(x.sum([1, 2]).dataSync() as Float32Array);
      out.push(x.sum([0, 1, 2], true).dataSync() as Float32Array);
      return out;
    });
  await selectBackend("cpu");
  const c = run();
  for (const mode of MODES) {
    await wasmWith(mode);
    const w = run();
    for (let i = 0; i < w.length; i++) {
      assert.equal(w[i].length, c[i].length);
      for (let j = 0; j < w[i].length; j++) {
        assert.ok(Math.abs(w[i][j] - c[i][j]) < 1e-4, `${mode} output ${i}[${j}]: ${w[i][j]} vs ${c[i][j]}`);
      }
    }
  }
});

Deno.test("the project's kernels refuse what they do not implement", async () => {
  const x = tf.ones([1, 8, 8, 2]) as tf.Tensor4D, w = tf.ones([3, 3, 2, 2]) as tf.Tensor4D;
  for (const mode of MODES) {
    await wasmWith(mode);
    assert.throws(
      () => tf.grads((a: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, w, 2, "same").sum())([x]),
      /only stride 1/,
    );
  }
  await selectBackend("wasm");
});

Deno.test("backend selection: the chain falls back to wasm here; unknown names are refused", async () => {
  const info = await selectBackend();
  assert.ok(["tensorflow-gpu", "tensorflow", "webgpu", "wasm"].includes(info.name));
  if (info.name === "wasm") assert.ok(info.skipped.length >= 2, info.skipped.join("; "));
  assert.equal(tf.getBackend(), info.tfBackend);
  await assert.rejects(() => selectBackend("tpu"), /--backend tpu: unknown backend/);
});

Deno.test("TensorFlow.js internals: the wasm backend has every member the project uses; one it lacks is named", async () => {
  await selectBackend("wasm");
  assert.deepEqual(missingWasmInternals(tf.backend()), []);
  assert.equal(wasmInternalsProblem(tf.backend()), null);
  assert.ok(wasmInternals().wasm.HEAPU8.length > 0);
  const pinned = pinnedWasmVersion();
  assert.match(pinned, /^\d+\.\d+\.\d+$/);
  // A stand-in with some of the members: the others are named, in one line with the pinned version.
  const fake = { makeOutput() {}, wasm: {} };
  assert.deepEqual(missingWasmInternals(fake), [
    "typedArrayFromHeap",
    "refCount",
    "incRef",
    "wasm.HEAPU8",
    "wasm.asm.memory",
  ]);
  const problem = wasmInternalsProblem(fake)!;
  assert.ok(!problem.includes("\n"), problem);
  assert.match(
    problem,
    new RegExp(
      `wasm backend lacks typedArrayFromHeap, refCount, incRef, wasm\\.HEAPU8, .*${pinned.replaceAll(".", "\\.")}`,
    ),
  );
  assert.match(problem, /deno\.json/);
  assert.throws(() => wasmInternals(fake as unknown as tf.KernelBackend), /lacks typedArrayFromHeap/);
});

Deno.test("backend selection refuses a wasm backend without a member the project's kernels use, in one line", async () => {
  await selectBackend("wasm");
  // The running backend itself, with one member hidden (an own property over its class's method).
  const backend = tf.backend() as unknown as Record<string, unknown>;
  backend.typedArrayFromHeap = undefined;
  try {
    await assert.rejects(() => selectBackend("wasm"), (e: Error) => {
      assert.ok(e instanceof UserError, String(e));
      assert.ok(!e.message.includes("\n"), e.message);
      assert.match(e.message, /^--backend wasm: .*lacks typedArrayFromHeap, .*tfjs-backend-wasm \d+\.\d+\.\d+/);
      return true;
    });
    // The chain does not stop there: it names why wasm was skipped and goes on (to cpu, where nothing better starts).
    const info = await selectBackend();
    if (info.name === "cpu") assert.ok(info.skipped.some((s) => /^wasm: .*lacks typedArrayFromHeap/.test(s)));
  } finally {
    delete backend.typedArrayFromHeap;
  }
  const info = await selectBackend("wasm");
  assert.equal(info.name, "wasm");
  assert.equal(missingWasmInternals(tf.backend()).length, 0);
});

Deno.test("wasm: a tensor saved for the backward pass shares its data instead of copying it, and lives as long as either", async () => {
  await selectBackend("wasm");
  const backend = wasmInternals();
  const a = tf.tensor1d([1, 2, 3]), b = tf.clone(a);
  assert.equal(backend.refCount(a.dataId), 2);
  assert.equal(b.dataId, a.dataId);
  a.dispose();
  assert.deepEqual(Array.from(await b.data()), [1, 2, 3]);
  b.dispose();
  assert.equal(backend.refCount(b.dataId), 0);
  // The gradient of a layer that saves its input is what it was with copies: d/dx sum(relu(x) * x) = 2x for x > 0.
  const x = tf.tensor1d([-1, 0.5, 2]);
  const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.relu(v), v)))(x);
  assert.deepEqual(Array.from(await g.data()), [0, 1, 4]);
  tf.dispose([x, g]);
});

Deno.test("wasm: the four-lane max-pooling gradient and row sums give the plain loops' results to the bit", async () => {
  await selectBackend("wasm");
  const backend = wasmInternals();
  const { maxPoolBackward, maxPoolBackwardSimd } = await import("../lib/compute/wasm_kernels.ts");
  const { HeapSimd } = await import("../lib/compute/wasm_simd.ts");
  const simd = new HeapSimd(backend.wasm.asm.memory);
  const view = (t: tf.Tensor) => backend.typedArrayFromHeap(t) as Float32Array;
  for (const [k, s, C] of [[3, 2, 8], [2, 2, 4], [3, 1, 12], [3, 2, 64]]) {
    // Ties (zeros after a ReLU, and rounded values) where the first maximum in scan order must win.
    const x = tf.relu(tf.randomNormal([3, 11, 9, C], 0, 2, "float32", 50 + C).round()) as tf.Tensor4D;
    const y = tf.maxPool(x, k, s, "same"), dy = tf.randomNormal(y.shape, 0, 1, "float32", 51);
    const a = tf.zeros(x.shape), b = tf.zeros(x.shape);
    const info = tf.backend_util.computePool2DInfo(x.shape, k, s, 1, "same");
    maxPoolBackward(view(x), view(y), view(dy), view(a), info);
    maxPoolBackwardSimd(simd, view(x), view(y), view(dy), view(b), info);
    assert.deepEqual(view(b), view(a), `window ${k}, stride ${s}, ${C} channels`);
    const sum = tf.zeros([C]), rows = x.size / C, plain = new Float32Array(C), xs = view(x);
    simd.sumRows(xs.byteOffset, view(sum).byteOffset, rows, 4 * C);
    for (let m = 0; m < rows; m++) for (let c = 0; c < C; c++) plain[c] += xs[m * C + c];
    assert.deepEqual(view(sum), plain);
    tf.dispose([x, y, dy, a, b, sum]);
  }
});

Deno.test(
  "wasm with OpenBLAS: a convolution, its bias and ReLU in one kernel give the three operations' values and gradients to the bit",
  {
    ignore: !blas,
  },
  async () => {
    await selectBackend("wasm");
    const { convBiasRelu } = await import("../lib/compute/wasm_kernels.ts");
    const same = (a: ArrayLike<number>, c: ArrayLike<number>) =>
      a.length === c.length && Array.from(a).every((v, i) => v === c[i]);
    for (const [C, pad, k] of [[64, "same", 5], [6, "same", 3], [128, "valid", 8]] as const) {
      const x = tf.randomNormal([4, 12, 12, 5], 0, 1, "float32", 1) as tf.Tensor4D;
      const w = tf.randomNormal([k, k, 5, C], 0, 0.3, "float32", 2) as tf.Tensor4D;
      const b = tf.randomNormal([C], 0, 0.5, "float32", 3);
      const plain = (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor) => tf.relu(tf.conv2d(x, w, 1, pad).add(b));
      const fused = (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor) => convBiasRelu(x, w, b, pad);
      const loss = (f: typeof plain) => (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => {
        const y = f(x as tf.Tensor4D, w as tf.Tensor4D, b);
        return tf.sum(tf.mul(y, tf.randomNormal(y.shape, 0, 1, "float32", 9)));
      };
      assert.ok(same(fused(x, w, b).dataSync(), plain(x, w, b).dataSync()), `${C} channels, ${pad}: forward`);
      const g0 = tf.grads(loss(plain))([x, w, b]), g1 = tf.grads(loss(fused))([x, w, b]);
      for (const i of [0, 1, 2]) {
        assert.ok(
          same(g1[i].dataSync(), g0[i].dataSync()),
          `${C} channels, ${pad}: gradient ${i}`,
        );
      }
      tf.dispose([x, w, b, ...g0, ...g1]);
    }
  },
);

Deno.test("OpenBLAS's sgemv, dsyrk and Cholesky solve (the SVM's Newton form) against plain loops; bad sizes refused", {
  ignore: !blas?.linalg,
}, () => {
  const la = blas!.linalg!, rng = new Rng(5);
  const M = 7, N = 5, A = Float32Array.from({ length: M * N }, () => rng.normal());
  const x = Float32Array.from({ length: N }, () => rng.normal()),
    xt = Float32Array.from({ length: M }, () => rng.normal());
  const y = new Float32Array(M).fill(1), yt = new Float32Array(N).fill(1);
  la.sgemv(false, M, N, 2, A, N, x, 0.5, y);
  la.sgemv(true, M, N, 1, A, N, xt, 0, yt);
  for (let i = 0; i < M; i++) {
    let s = 0;
    for (let j = 0; j < N; j++) s += A[i * N + j] * x[j];
    assert.ok(Math.abs(y[i] - (2 * s + 0.5)) < 1e-5, `A x, row ${i}`);
  }
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let i = 0; i < M; i++) s += A[i * N + j] * xt[i];
    assert.ok(Math.abs(yt[j] - s) < 1e-5, `A^T x, column ${j}`);
  }
  // The upper triangle of C = A^T A (row-major), added to a C that holds ones; the lower triangle left alone.
  const A64 = Float64Array.from(A), C = new Float64Array(N * N).fill(1);
  la.dsyrk(N, M, 1, A64, 1, C);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < M; k++) s += A64[k * N + i] * A64[k * N + j];
      if (j >= i) assert.ok(Math.abs(C[i * N + j] - (1 + s)) < 1e-12, `C[${i}, ${j}]`);
      else assert.equal(C[i * N + j], 1);
    }
  }
  // H = A^T A + 1 solved against b: H x = b for the full (symmetric) H.
  const H = new Float64Array(N * N);
  la.dsyrk(N, M, 1, A64, 0, H);
  for (let i = 0; i < N; i++) H[i * N + i] += 1;
  const full = (i: number, j: number) => H[Math.min(i, j) * N + Math.max(i, j)];
  const Hcopy = Array.from({ length: N * N }, (_, k) => full(Math.floor(k / N), k % N));
  const b = Float64Array.from({ length: N }, () => rng.normal()), sol = b.slice();
  assert.ok(la.posv(N, H, sol));
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < N; j++) s += Hcopy[i * N + j] * sol[j];
    assert.ok(Math.abs(s - b[i]) < 1e-10, `(H x)_${i}`);
  }
  // Not positive definite: answered false.
  assert.equal(la.posv(2, Float64Array.from([1, 2, 2, 1]), new Float64Array(2)), false);
  assert.throws(() => la.sgemv(false, M, N, 1, A.subarray(1), N, x, 0, y), /A holds 34 floats/);
  assert.throws(() => la.sgemv(false, M, N, 1, A, N, x, 0, y.subarray(1)), /y holds 6 numbers, the call reaches 7/);
  assert.throws(() => la.dsyrk(N, M, 1, A64.subarray(1), 0, C), /A holds 34 numbers/);
  assert.throws(() => la.posv(N, H.subarray(1), sol), /H holds 24 numbers/);
});
