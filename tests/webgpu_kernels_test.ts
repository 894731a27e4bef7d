import assert from "node:assert/strict";
import { requestGpuAdapter, selectBackend, tf } from "../lib/compute/backend.ts";
import {
  installWebGPUKernels,
  kSplits,
  WEBGPU_KERNELS,
  webgpuKernelsInstalled,
} from "../lib/compute/webgpu_kernels.ts";
import { Rng } from "../lib/util/rng.ts";
import { NetRunner } from "../lib/compute/engine.ts";
import { netSpec, PAPER_NETS } from "../lib/nets.ts";
import {
  missingWebGPUInternals,
  pinnedWebGPUVersion,
  webgpuInternals,
  webgpuInternalsProblem,
} from "../lib/compute/tfjs_internals.ts";

// The project's WebGPU kernels against the cpu backend, on the software adapter (llvmpipe) that Deno offers on a
// machine without a GPU. Skipped only where not even that adapter exists.
const adapter = await requestGpuAdapter();

function random(shape: number[], seed: number): { data: Float32Array; shape: number[] } {
  const rng = new Rng(seed);
  return { data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape };
}

/** Runs `f` on `backend` with the inputs as tensors; returns each output's values. */
async function on(
  backend: string,
  inputs: { data: Float32Array; shape: number[] }[],
  f: (...t: tf.Tensor[]) => tf.Tensor[],
): Promise<Float32Array[]> {
  await selectBackend(backend, { softwareGpu: true });
  if (backend === "webgpu") installWebGPUKernels(true);
  const ts = inputs.map((i) => tf.tensor(i.data, i.shape));
  const outs = f(...ts);
  const values = [];
  for (const o of outs) values.push(await o.data() as Float32Array);
  tf.dispose([...ts, ...outs]);
  return values;
}

function assertClose(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, what);
  let max = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    max = Math.max(max, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(
    scale > 0 && max <= 1e-5 * scale * Math.sqrt(want.length),
    `${what}: max difference ${max} (scale ${scale})`,
  );
}

// [batch, height, width, in channels], [kh, kw, in, out], padding: the paper's 5x5 "same" convolutions on RGB and on
// feature maps, sizes that are not multiples of the 64 x 64 tiles, a 3x3 and a "valid" one, and one with a long K.
const CONVS: [number[], number[], "same" | "valid"][] = [
  [[2, 9, 7, 3], [5, 5, 3, 8], "same"],
  [[3, 8, 8, 5], [5, 5, 5, 70], "same"],
  [[1, 6, 5, 4], [3, 3, 4, 3], "valid"],
  [[16, 12, 12, 3], [5, 5, 3, 4], "same"],
];

Deno.test("WebGPU kernels: convolution, input and filter gradients equal cpu's", { ignore: !adapter }, async () => {
  for (const [xs, ws, pad] of CONVS) {
    const [B, H, W] = xs, [KH, KW, , Co] = ws;
    const ys = pad === "same" ? [B, H, W, Co] : [B, H - KH + 1, W - KW + 1, Co];
    const x = random(xs, 1), w = random(ws, 2), dy = random(ys, 3);
    const f = (a: tf.Tensor, b: tf.Tensor, g: tf.Tensor) => {
      const conv = (p: tf.Tensor, q: tf.Tensor) => tf.conv2d(p as tf.Tensor4D, q as tf.Tensor4D, 1, pad);
      const [dx, dw] = tf.grads(conv)([a, b], g);
      return [conv(a, b), dx, dw];
    };
    const want = await on("cpu", [x, w, dy], f);
    const got = await on("webgpu", [x, w, dy], f);
    for (const [i, what] of ["forward", "input gradient", "filter gradient"].entries()) {
      assertClose(got[i], want[i], `${what} of ${xs} * ${ws} ${pad}`);
    }
  }
  await selectBackend("wasm");
});

Deno.test("WebGPU kernels: matrix products with every transpose equal cpu's", { ignore: !adapter }, async () => {
  for (const [M, N, K] of [[5, 7, 3], [70, 65, 130], [3, 9, 3000]]) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const a = random(ta ? [K, M] : [M, K], 4), b = random(tb ? [N, K] : [K, N], 5);
        const f = (p: tf.Tensor, q: tf.Tensor) => [tf.matMul(p as tf.Tensor2D, q as tf.Tensor2D, ta, tb)];
        assertClose((await on("webgpu", [a, b], f))[0], (await on("cpu", [a, b], f))[0], `${M}x${N}x${K} ${ta} ${tb}`);
      }
    }
  }
  await selectBackend("wasm");
});

Deno.test("WebGPU kernels: batched and broadcast products equal cpu's", { ignore: !adapter }, async () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[3, 5, 7], [3, 7, 4], false, false],
    [[2, 3, 9, 70], [2, 3, 70, 6], false, true],
    [[1, 6, 33], [4, 33, 5], false, false],
    [[4, 8, 6], [8, 3], true, false],
  ];
  for (const [as, bs, ta, tb] of cases) {
    const a = random(as, 6), b = random(tb ? [...bs.slice(0, -2), bs.at(-1)!, bs.at(-2)!] : bs, 7);
    const f = (p: tf.Tensor, q: tf.Tensor) => [tf.matMul(p, q, ta, tb)];
    assertClose((await on("webgpu", [a, b], f))[0], (await on("cpu", [a, b], f))[0], `${as} x ${bs} ${ta} ${tb}`);
  }
  await selectBackend("wasm");
});

Deno.test(
  "WebGPU kernels: a training step of each paper network runs every product and convolution on the project's kernels",
  { ignore: !adapter },
  async () => {
    await selectBackend("webgpu", { softwareGpu: true });
    installWebGPUKernels(true);
    // Every program TensorFlow.js compiles and dispatches goes through runWebGPUProgram: count them by name.
    const backend = webgpuInternals(), own = backend.runWebGPUProgram;
    const programs = new Map<string, number>();
    backend.runWebGPUProgram = function (this: typeof backend, program, inputs, dtype) {
      const name = program.constructor.name;
      programs.set(name, (programs.get(name) ?? 0) + 1);
      return own.call(this, program, inputs, dtype);
    };
    try {
      const n = 2, rng = new Rng(8);
      const x = Float32Array.from({ length: n * 32 * 32 * 3 }, () => rng.normal());
      const y = Int32Array.from({ length: n }, (_, i) => i);
      for (const net of Object.values(PAPER_NETS)) {
        const runner = await NetRunner.create(netSpec({ net, classes: 10, method: "release", seed: 1 }));
        try {
          const out = runner.gradients(x, y, n, 3);
          await out.loss.data();
          tf.dispose([out.loss, out.correct, ...out.grads]);
        } finally {
          runner.net.dispose();
        }
        const theirs = [...programs.keys()].filter((p) => /MatMul|Conv2D|Im2Col/.test(p));
        assert.deepEqual(theirs, [], `${net}: TensorFlow.js's own products ran: ${JSON.stringify([...programs])}`);
        assert.ok((programs.get("GemmProgram") ?? 0) >= 10, `${net}: ${JSON.stringify([...programs])}`);
      }
    } finally {
      backend.runWebGPUProgram = own;
      await selectBackend("wasm");
    }
  },
);

Deno.test(
  "WebGPU kernels: installed and removed on request; long products are split",
  { ignore: !adapter },
  async () => {
    await selectBackend("webgpu", { softwareGpu: true });
    installWebGPUKernels(true);
    assert.deepEqual(webgpuKernelsInstalled(), [...WEBGPU_KERNELS]);
    installWebGPUKernels(false);
    assert.deepEqual(webgpuKernelsInstalled(), []);
    installWebGPUKernels(["Conv2DBackpropFilter"]);
    assert.deepEqual(webgpuKernelsInstalled(), ["Conv2DBackpropFilter"]);
    assert.throws(() => installWebGPUKernels(["Conv3D"]), /no project WebGPU kernel Conv3D/);
    installWebGPUKernels(true);
    // conv1's filter gradient at batch 128: 75 x 64 outputs, K = 131,072.
    assert.ok(kSplits(75, 64, 128 * 32 * 32) > 100);
    // The dense layer's input gradient of the large network: 128 x 32768, enough tiles already.
    assert.equal(kSplits(128, 32768, 1024), 1);
    await selectBackend("wasm");
  },
);

Deno.test("TensorFlow.js internals: a WebGPU backend without a member the project uses is named in one line", async () => {
  const pinned = pinnedWebGPUVersion();
  assert.match(pinned, /^\d+\.\d+\.\d+$/);
  const fake = { device: {}, queue: {}, tensorMap: { get() {} }, bufferManager: {}, submitQueue() {} };
  assert.deepEqual(missingWebGPUInternals(fake), [
    "bufferManager.acquireBuffer",
    "commandEncoder",
    "endComputePassEncoder",
    "uploadToGPU",
    "runWebGPUProgram",
  ]);
  const problem = webgpuInternalsProblem(fake)!;
  assert.ok(!problem.includes("\n"), problem);
  assert.match(
    problem,
    new RegExp(`lacks bufferManager.acquireBuffer, commandEncoder, .*${pinned.replaceAll(".", "\\.")}`),
  );
  assert.match(problem, /deno\.json/);
  if (!adapter) return;
  await selectBackend("webgpu", { softwareGpu: true });
  assert.deepEqual(missingWebGPUInternals(tf.backend()), []);
  await selectBackend("wasm");
});
