/**
 * Every matrix product of a training step of the paper's networks, kernel by kernel:
 * `deno run -A bench/gpu_gemm.ts [--nets small,medium,large] [--batch 128] [--check-batch 2] [--repeat 20]
 * [--all-tiles] [--software-gpu]`
 *
 * For each product of each network (each convolution's forward pass, filter gradient and input gradient, each dense
 * layer's; lib/compute/webgpu_step.ts builds them) and each kernel (`gemm1`, `gemm2` with the tile it chooses, and
 * with `--all-tiles` `gemm2` with every tile), prints a JSON line: the milliseconds of one product at `--batch`, as
 * the mean of `--repeat` runs inside one compute pass timed by WebGPU timestamp queries (by the wall clock from
 * submission to completion where the adapter has none: then Deno's ~10 ms to notice completion is in it), its
 * TFLOP/s, and the largest difference from TensorFlow.js's `cpu` backend at `--check-batch`, relative to the
 * largest value of the result.
 *
 * On the software adapter keep the sizes small (`--batch 8 --repeat 1 --nets small`): there the difference is what
 * counts.
 *
 * @module
 */
import { requestGpuAdapter, selectBackend, tf } from "../lib/compute/backend.ts";
import {
  type BufRange,
  buildKernel,
  checked,
  gemmKernels,
  type GemmPlan,
  type GemmSpec,
  type GemmVersion,
  type Kernel,
  planGemm,
  record,
  requestComputeDevice,
  TILES,
} from "../lib/compute/webgpu_gemm.ts";
import { convProducts, denseProducts, layerShapes } from "../lib/compute/webgpu_step.ts";
import { PAPER_NETS, stepNet } from "../lib/nets.ts";
import { parseFlags, runTask } from "../lib/util/cli.ts";
import { UserError } from "../lib/util/errors.ts";
import { Rng } from "../lib/util/rng.ts";

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** A product with its inputs (values kept on the CPU for the reference) and outputs. */
interface Product {
  spec: GemmSpec;
  inputs: { buffer: GPUBuffer; values: Float32Array<ArrayBuffer> }[];
  outputs: { buffer: GPUBuffer; floats: number }[];
  /** The outputs as TensorFlow.js's cpu backend computes them from the inputs' values. */
  reference: () => Float32Array[];
  flops: number;
}

/** Every product of a training step of `net` at batch B, on fresh buffers with normal-random inputs. */
function products(device: GPUDevice, net: string, B: number, vec: boolean, seed: number): Product[] {
  const rng = new Rng(seed), out: Product[] = [];
  const input = (n: number) => {
    const values = Float32Array.from({ length: n }, () => rng.normal());
    const buffer = device.createBuffer({ size: Math.max(16, n * 4), usage: USAGE });
    device.queue.writeBuffer(buffer, 0, values);
    return { buffer, values };
  };
  const output = (n: number) => ({
    buffer: device.createBuffer({ size: Math.max(16, n * 4), usage: USAGE }),
    floats: n,
  });
  const r = (b: { buffer: GPUBuffer }): BufRange => ({ buffer: b.buffer });
  for (const { layer: l, conv: c, dense: d } of layerShapes(stepNet(net, 1000, "release"), B)) {
    if (c) {
      const P = B * c.OH * c.OW, masked = !l.pooled, first = l.name === "conv1";
      const x = input(B * c.H * c.W * c.Ci), w = input(c.KH * c.KW * c.Ci * c.Co), b = input(c.Co);
      const y = input(P * c.Co), gz = input(P * c.Co);
      const yOut = output(P * c.Co), gw = output(c.KH * c.KW * c.Ci * c.Co), gb = output(c.Co);
      const dx = output(B * c.H * c.W * c.Ci);
      const t4 = (v: Float32Array, s: number[]) => tf.tensor4d(v, s as [number, number, number, number]);
      const xs = [B, c.H, c.W, c.Ci], ws = [c.KH, c.KW, c.Ci, c.Co], ys = [B, c.OH, c.OW, c.Co];
      const dz = () => masked ? t4(gz.values, ys).mul(t4(y.values, ys).greater(0)) : t4(gz.values, ys);
      const grads = () =>
        tf.tidy(() => {
          const [gx, gwt] = tf.grads((a: tf.Tensor, k: tf.Tensor) =>
            tf.conv2d(a as tf.Tensor4D, k as tf.Tensor4D, 1, "same")
          )(
            [t4(x.values, xs), t4(w.values, ws)],
            dz(),
          );
          return [
            gx.dataSync() as Float32Array,
            gwt.dataSync() as Float32Array,
            dz().sum([0, 1, 2]).dataSync() as Float32Array,
          ];
        });
      // The forward product writes yOut; the gradients read y (their mask) and gz.
      const bufs = { x: r(x), w: r(w), b: r(b), gz: r(gz), gw: r(gw), gb: r(gb), dx: first ? undefined : r(dx) };
      const fwd = {
        ...convProducts(l.name, c, { ...bufs, y: r(y) }, vec, masked),
        forward: convProducts(l.name, c, { ...bufs, y: r(yOut) }, vec, masked).forward,
      };
      const flops = 2 * P * c.Co * c.KH * c.KW * c.Ci;
      out.push({
        spec: fwd.forward,
        inputs: [x, w, b],
        outputs: [yOut],
        flops,
        reference: () => [tf.tidy(() =>
          tf.relu(tf.conv2d(t4(x.values, xs), t4(w.values, ws), 1, "same").add(tf.tensor1d(b.values)))
            .dataSync() as Float32Array
        )],
      });
      out.push({
        spec: { ...fwd.filter },
        inputs: [x, y, gz],
        outputs: [gw, gb],
        flops,
        reference: () => grads().slice(1),
      });
      if (fwd.input) {
        out.push({ spec: fwd.input, inputs: [w, y, gz], outputs: [dx], flops, reference: () => [grads()[0]] });
      }
    } else {
      const { In, U } = d!, relu = l.kind === "fc";
      const h = input(B * In), w = input(In * U), b = input(U), o = input(B * U), gout = input(B * U);
      const oOut = output(B * U), gw = output(In * U), gb = output(U), dh = output(B * In);
      const ps = denseProducts(
        l.name,
        d!,
        { h: r(h), w: r(w), b: r(b), out: r(oOut), gout: r(gout), gw: r(gw), gb: r(gb), dh: r(dh) },
        vec,
        {
          relu,
          mask: relu ? { range: r(o) } : undefined,
        },
      );
      // (The gradients read o, the layer's output, for their mask; the forward product writes oOut.)
      const g = () =>
        relu
          ? tf.tensor2d(gout.values, [B, U]).mul(tf.tensor2d(o.values, [B, U]).greater(0))
          : tf.tensor2d(gout.values, [B, U]);
      const flops = 2 * B * In * U;
      out.push({
        spec: ps.forwardEval,
        inputs: [h, w, b],
        outputs: [oOut],
        flops,
        reference: () => [tf.tidy(() => {
          const z = tf.matMul(tf.tensor2d(h.values, [B, In]), tf.tensor2d(w.values, [In, U])).add(
            tf.tensor1d(b.values),
          );
          return (relu ? tf.relu(z) : z).dataSync() as Float32Array;
        })],
      });
      out.push({
        spec: ps.weight,
        inputs: [h, o, gout],
        outputs: [gw, gb],
        flops,
        reference: () =>
          tf.tidy(
            () => [
              tf.matMul(tf.tensor2d(h.values, [B, In]), g(), true, false).dataSync() as Float32Array,
              g().sum(0).dataSync() as Float32Array,
            ],
          ),
      });
      out.push({
        spec: ps.input!,
        inputs: [w, o, gout],
        outputs: [dh],
        flops,
        reference: () => [tf.tidy(() =>
          tf.matMul(g(), tf.tensor2d(w.values, [In, U]), false, true).dataSync() as Float32Array
        )],
      });
    }
  }
  return out;
}

/** The plans a product runs under: each kernel's own choice, and with `allTiles` the second kernel with every tile. */
function variants(s: GemmSpec, maxStaged: number, allTiles: boolean): GemmPlan[] {
  const out = (["gemm1", "gemm2"] as GemmVersion[]).map((v) => planGemm(s.M, s.N, s.K, v, maxStaged));
  if (!allTiles) return out;
  for (const t of TILES) {
    for (const BK of [8, 16]) {
      const tile = { ...t, BK };
      if (2 * BK * (t.BM + t.BN + 8) * 4 > maxStaged) continue;
      const tiles = Math.ceil(s.M / t.BM) * Math.ceil(s.N / t.BN);
      const splits = tiles >= 264 ? 1 : Math.max(1, Math.min(Math.ceil(528 / tiles), Math.floor(s.K / 256)));
      const chunk = Math.ceil(Math.ceil(s.K / splits) / BK) * BK, parts = Math.ceil(s.K / chunk);
      const p: GemmPlan = { version: "gemm2", tile, chunk, parts, scratch: parts > 1 ? parts * s.M * s.N : 0 };
      if (!out.some((q) => JSON.stringify(q) === JSON.stringify(p))) out.push(p);
    }
  }
  return out;
}

function describe(p: GemmPlan): string {
  const t = p.tile;
  return `${p.version} ${t.BM}x${t.BN} ${t.TM}x${t.TN} k${t.BK}${p.parts > 1 ? ` split ${p.parts}` : ""}`;
}

async function readBack(device: GPUDevice, b: GPUBuffer, floats: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: b.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const e = device.createCommandEncoder();
  e.copyBufferToBuffer(b, 0, staging, 0, b.size);
  device.queue.submit([e.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0, floats * 4));
  staging.unmap();
  staging.destroy();
  return out;
}

/** The kernels of `spec` under `plan`, with their scratch buffer. */
async function kernelsOf(
  device: GPUDevice,
  spec: GemmSpec,
  plan: GemmPlan,
): Promise<{ kernels: Kernel[]; scratch?: GPUBuffer }> {
  const scratch = plan.scratch ? device.createBuffer({ size: plan.scratch * 4, usage: USAGE }) : undefined;
  const kernels = await checked(
    device,
    spec.label,
    () => gemmKernels(spec, plan, scratch && { buffer: scratch }).map((k) => buildKernel(device, k)),
  );
  return { kernels, scratch };
}

/** Largest |got - want| over the largest |want|. */
function relDiff(got: Float32Array, want: Float32Array): number {
  let max = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    max = Number.isNaN(d) ? Infinity : Math.max(max, d);
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return scale > 0 ? max / scale : max;
}

/** Milliseconds per run of each kernel list, `repeat` runs each in one pass (timestamps) or one submission (wall). */
async function timeAll(device: GPUDevice, lists: Kernel[][], repeat: number): Promise<number[]> {
  if (device.features.has("timestamp-query")) {
    const out: number[] = [];
    for (let at = 0; at < lists.length; at += 1024) {
      const chunk = lists.slice(at, at + 1024), n = 2 * chunk.length;
      const set = device.createQuerySet({ type: "timestamp", count: n });
      const resolve = device.createBuffer({
        size: n * 8,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const e = device.createCommandEncoder();
      chunk.forEach((kernels, i) => {
        const pass = e.beginComputePass({
          timestampWrites: { querySet: set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
        });
        for (let r = 0; r < repeat; r++) record(pass, kernels);
        pass.end();
      });
      e.resolveQuerySet(set, 0, n, resolve, 0);
      const staging = device.createBuffer({ size: n * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      e.copyBufferToBuffer(resolve, 0, staging, 0, n * 8);
      device.queue.submit([e.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const t = new BigUint64Array(staging.getMappedRange());
      for (let i = 0; i < chunk.length; i++) out.push(Number(t[2 * i + 1] - t[2 * i]) / 1e6 / repeat);
      staging.unmap();
      for (const b of [staging, resolve]) b.destroy();
      set.destroy();
    }
    return out;
  }
  const out: number[] = [];
  for (const kernels of lists) {
    const e = device.createCommandEncoder(), pass = e.beginComputePass();
    for (let r = 0; r < repeat; r++) record(pass, kernels);
    pass.end();
    const t0 = performance.now();
    device.queue.submit([e.finish()]);
    await device.queue.onSubmittedWorkDone();
    out.push((performance.now() - t0) / repeat);
  }
  return out;
}

async function main(args: string[]): Promise<void> {
  const usage = "deno run -A bench/gpu_gemm.ts [--nets small,medium,large] [--batch 128] [--check-batch 2] " +
    "[--repeat 20] [--all-tiles] [--software-gpu]";
  const { values } = parseFlags(args, {
    nets: { type: "string" },
    batch: { type: "string" },
    "check-batch": { type: "string" },
    repeat: { type: "string" },
    "all-tiles": { type: "boolean" },
    "software-gpu": { type: "boolean" },
  }, usage);
  const int = (name: string, v: unknown, dflt: number) => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 4096) {
      throw new UserError(`--${name} ${v}: expected a whole number from 1 to 4096`);
    }
    return n;
  };
  const batch = int("batch", values.batch, 128), check = int("check-batch", values["check-batch"], 2);
  const repeat = int("repeat", values.repeat, 20);
  const nets = ((values.nets as string | undefined) ?? "small,medium,large").split(",").map((n) =>
    (PAPER_NETS as Record<string, string>)[n] ?? n
  );
  for (const net of nets) stepNet(net, 1000, "release"); // a name that is not a network: one line, before any GPU work
  const adapter = await requestGpuAdapter();
  if (!adapter) throw new UserError("no WebGPU adapter");
  if ((adapter.info?.isFallbackAdapter) && !values["software-gpu"]) {
    throw new UserError("only a software (fallback) WebGPU adapter: --software-gpu uses it");
  }
  const device = (await requestComputeDevice(adapter))!;
  const maxStaged = device.limits.maxComputeWorkgroupStorageSize;
  console.log(JSON.stringify({
    bench: "gemm",
    adapter: adapter.info?.description || adapter.info?.device,
    timer: device.features.has("timestamp-query") ? "timestamp-query" : "wall",
    batch,
    check_batch: check,
    repeat,
  }));
  await selectBackend("cpu");
  const allTiles = !!values["all-tiles"];
  for (const net of nets) {
    const references = new Map<number, Float32Array[]>(); // the same inputs for both kernels: computed once
    for (const vec of [false, true]) {
      // The same products at the full batch (timed) and at the small one (checked against the cpu backend).
      const full = products(device, net, batch, vec, 2), small = products(device, net, check, vec, 1);
      const rows: { p: Product; plan: GemmPlan; kernels: Kernel[]; scratch?: GPUBuffer; diff: number }[] = [];
      for (const [i, p] of full.entries()) {
        const q = small[i], wants = references.get(i) ?? q.reference();
        references.set(i, wants);
        for (const plan of variants(p.spec, maxStaged, allTiles)) {
          if ((plan.version === "gemm2") !== vec) continue;
          // At the small batch: the same tile, K split as often as it can be up to the same number of parts.
          const K = q.spec.K, BK = plan.tile.BK;
          const chunk = Math.ceil(Math.ceil(K / plan.parts) / BK) * BK, parts = Math.ceil(K / chunk);
          const same = { ...plan, chunk, parts, scratch: parts > 1 ? parts * q.spec.M * q.spec.N : 0 };
          const checkRun = await kernelsOf(device, q.spec, same);
          for (const o of q.outputs) device.queue.writeBuffer(o.buffer, 0, new Float32Array(o.floats).fill(NaN));
          const e = device.createCommandEncoder(), pass = e.beginComputePass();
          record(pass, checkRun.kernels);
          pass.end();
          device.queue.submit([e.finish()]);
          let diff = 0;
          for (const [k, o] of q.outputs.entries()) {
            diff = Math.max(diff, relDiff(await readBack(device, o.buffer, o.floats), wants[k]));
          }
          checkRun.scratch?.destroy();
          rows.push({ p, plan, diff, ...(await kernelsOf(device, p.spec, plan)) });
        }
      }
      const ms = await timeAll(device, rows.map((r) => r.kernels), repeat);
      rows.forEach(({ p, plan, scratch, diff }, i) => {
        console.log(JSON.stringify({
          net,
          product: p.spec.label,
          M: p.spec.M,
          N: p.spec.N,
          K: p.spec.K,
          kernel: describe(plan),
          ms: Number(ms[i].toFixed(4)),
          tflops: Number((p.flops / ms[i] / 1e9).toFixed(3)),
          max_diff_vs_cpu: Number(diff.toExponential(2)),
        }));
        scratch?.destroy();
      });
      for (const p of [...full, ...small]) {
        for (const b of [...p.inputs.map((i) => i.buffer), ...p.outputs.map((o) => o.buffer)]) b.destroy();
      }
    }
  }
}

if (import.meta.main) runTask(main);
