/**
 * Timing one network, shared by `deno task bench` (bench/bench.ts) and the GPU check (bench/gpu.ts): a training
 * step as lib/train.ts runs it and inference, at batch 128 and 1000 classes, and the same network in PyTorch
 * (bench/peers/torch_step.py).
 *
 * @module
 */
import { netSpec } from "../lib/nets.ts";
import { fileURLToPath } from "node:url";
import type { BackendInfo } from "../lib/compute/backend.ts";
import { createEngine } from "../lib/compute/engine.ts";
import { ExemplarNet } from "../lib/nets.ts";
import { Rng } from "../lib/util/rng.ts";

export const BATCH = 128, CLASSES = 1000;

/** The batch every network benchmark feeds: BATCH normal-random 32x32x3 inputs (seed 1), labels spread over CLASSES. */
export function randomBatch(): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(1);
  return {
    x: Float32Array.from({ length: BATCH * 32 * 32 * 3 }, () => rng.normal()),
    y: Int32Array.from({ length: BATCH }, (_, i) => (i * 7) % CLASSES),
  };
}

/**
 * Calls of `f` per second, times `batch`: for at least `seconds` and 2 calls after a first, untimed one. `sync`, when
 * given, is awaited before the clock starts and before it stops: work `f` queued on a device counts in full.
 */
export async function timed(
  f: () => void | Promise<void>,
  seconds: number,
  batch: number,
  sync?: () => Promise<unknown>,
): Promise<number> {
  await f();
  await sync?.();
  let n = 0;
  const t0 = performance.now();
  while (n < 2 || (performance.now() - t0) / 1000 < seconds) {
    await f();
    n++;
  }
  await sync?.();
  return (n * batch) / ((performance.now() - t0) / 1000);
}

/**
 * Times one network: a training step (forward, backward, Caffe SGD update) as
 * lib/train.ts runs it (the engine lib/train.ts picks for `backend`, with `parallel` gradient workers on wasm),
 * and inference of a batch on the same threads.
 */
export async function benchNet(
  backend: BackendInfo,
  name: string,
  seconds: number,
  parallel: number,
  deferredReads = false,
): Promise<{ train: number; infer: number; flops: number }> {
  const spec = netSpec({ net: name, classes: CLASSES, method: "release", seed: 1 });
  const engine = await createEngine(backend, spec, parallel);
  const { x, y } = randomBatch();
  // As pretraining runs: the loss is read back once every 10 steps (lib/train.ts logs a row every 10 steps). With
  // `deferredReads`, each read is awaited only at the next one, so the steps between are submitted meanwhile.
  let step = 0, pending: Promise<unknown> | null = null;
  const train = await timed(
    async () => {
      await engine.accumulate(x, y, BATCH, ++step);
      engine.update(1e-4, { momentum: 0.9, weightDecay: 0.004 });
      if (step % 10 === 0) {
        const read = engine.stats();
        if (deferredReads) {
          await pending;
          pending = read;
        } else await read;
      }
    },
    seconds,
    BATCH,
    async () => {
      await pending;
      pending = null;
      await engine.stats();
    },
  );
  // Inference: forward passes (no dropout) with the loss and correct count, on the same threads as training.
  const infer = await timed(async () => void await engine.evaluate(x, y, BATCH), seconds / 2, BATCH);
  engine.close();
  const net = new ExemplarNet(name, CLASSES, { method: "release", seed: 1 });
  const flops = net.flops().total;
  net.dispose();
  return { train, infer, flops };
}

/**
 * Times the same network in PyTorch, or null where torch cannot be imported (or, with `device` cuda, cannot use
 * CUDA). The interpreter: `EXEMPLAR_PYTHON` when set, else /usr/bin/python3 (Debian's, with python3-torch).
 */
export async function peer(
  name: string,
  seconds: number,
  device: "cpu" | "cuda",
  tf32 = false,
): Promise<{ train_samples_per_s: number; infer_samples_per_s: number } | null> {
  const script = fileURLToPath(new URL("./peers/torch_step.py", import.meta.url));
  try {
    const out = await new Deno.Command(Deno.env.get("EXEMPLAR_PYTHON") ?? "/usr/bin/python3", {
      args: [
        script,
        "--net",
        name,
        "--batch",
        String(BATCH),
        "--classes",
        String(CLASSES),
        "--threads",
        "2",
        "--seconds",
        String(seconds),
        "--device",
        device,
        ...(tf32 ? ["--tf32"] : []),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code !== 0) return null;
    return JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
  } catch {
    return null;
  }
}

/**
 * Times each network on the selected backend (with each count of gradient workers in `parallel`; not with `ours`
 * false), then, unless `peer` is false, PyTorch on the same kind of device, and prints a JSON line for each and the
 * ratios ours / peer.
 */
export async function benchNets(
  nets: string[],
  backend: BackendInfo,
  seconds: number,
  opts: {
    parallel?: number[];
    peer?: boolean;
    ours?: boolean;
    extra?: Record<string, unknown>;
    deferredReads?: boolean;
  } = {},
): Promise<void> {
  // On a GPU backend the peer runs on the GPU too.
  const device = backend.name === "webgpu" || backend.name === "tensorflow-gpu" ? "cuda" : "cpu";
  for (const name of nets) {
    const mine = [];
    for (const p of opts.ours === false ? [] : opts.parallel ?? [1]) {
      const r = await benchNet(backend, name, seconds, p, opts.deferredReads);
      const line = {
        net: name,
        backend: p > 1 ? `${backend.name}x${p}` : backend.name,
        gradient_workers: p,
        ...opts.extra,
        batch: BATCH,
        classes: CLASSES,
        train_samples_per_s: Number(r.train.toFixed(1)),
        infer_samples_per_s: Number(r.infer.toFixed(1)),
        gflops: Number((3 * r.flops * r.train / 1e9).toFixed(2)),
      };
      console.log(JSON.stringify(line));
      mine.push(line);
    }
    if (opts.peer === false) continue;
    const p = await peer(name, seconds, device);
    if (!p) {
      const why = device === "cuda"
        ? "the Python of EXEMPLAR_PYTHON or /usr/bin/python3 cannot run torch on CUDA here"
        : "the Python of EXEMPLAR_PYTHON or /usr/bin/python3 cannot import torch (Debian: python3-torch)";
      console.log(JSON.stringify({ net: name, peer: "pytorch", skipped: why }));
      continue;
    }
    console.log(JSON.stringify({ ...p, net: name }));
    // On a GPU, PyTorch with TF32 tensor cores too, for reference (the ratios stay against plain fp32).
    if (device === "cuda") {
      const t = await peer(name, seconds, device, true);
      if (t) console.log(JSON.stringify({ ...t, net: name }));
    }
    for (const ours of mine) {
      console.log(JSON.stringify({
        net: name,
        backend: ours.backend,
        vs: device === "cuda" ? "pytorch-cuda" : "pytorch",
        train_ratio: Number((ours.train_samples_per_s / p.train_samples_per_s).toFixed(3)),
        infer_ratio: Number((ours.infer_samples_per_s / p.infer_samples_per_s).toFixed(3)),
      }));
    }
  }
}
