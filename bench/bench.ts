/**
 * `deno task bench [--nets small,medium,large] [--backend NAME] [--seconds S] [--skip surrogate,svm,nets,peer]`
 *
 * Throughput figures as JSON lines on stdout:
 * - one line per (network, backend): `net`, `backend`, `train_samples_per_s`
 *   (forward, backward and SGD update), `infer_samples_per_s` and `gflops`
 *   (achieved in training, counting a step as 3 forward passes), at batch 128
 *   and 1000 surrogate classes;
 * - when `/usr/bin/python3` can import torch, the same networks timed in
 *   PyTorch in the same run (`bench/peers/torch_step.py`, 2 threads), and the
 *   ratios ours / peer;
 * - `surrogate`: augmented 32x32 patches per second, on one core and with 2
 *   workers (the loader pretraining uses);
 * - `svm`: the linear SVM's accuracy and training time (and processor time,
 *   which a busy machine inflates less) beside scikit-learn's LinearSVC
 *   (liblinear) on the same features and C (`bench/peers/sklearn_svm.py`),
 *   when /usr/bin/python3 can import sklearn; bench/svm_bench.ts times the
 *   SVM and kNN at the size of a protocol's run.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import process from "node:process";
import { selectBackend } from "../lib/compute/backend.ts";
import { openBlas } from "../lib/compute/blas.ts";
import { parseFlags, runTask } from "../lib/util/cli.ts";
import { openDataset } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { PAPER_NETS } from "../lib/nets.ts";
import { SurrogateData } from "../lib/surrogate.ts";
import { rawPixelFeatures } from "../lib/features.ts";
import { accuracy, predictSVM, trainSVM } from "../lib/svm.ts";

import { BATCH, benchNets, timed } from "./nets_bench.ts";
import { benchSeeds, loaderRate } from "./surrogate_bench.ts";

async function benchSurrogate(seconds: number): Promise<void> {
  const seeds = await benchSeeds();
  for (const preset of ["paper", "release"] as const) {
    const data = new SurrogateData(seeds, { k: 100, seed: 1, method: preset });
    let b = 0;
    const oneCore = await timed(() => void data.batch(b++, BATCH), seconds, BATCH);
    const withWorkers = await loaderRate(data, 2, seconds);
    console.log(JSON.stringify({
      bench: "surrogate",
      method: preset,
      patches_per_s_one_core: Math.round(oneCore),
      workers: 2,
      patches_per_s_workers: Math.round(withWorkers),
      cores: navigator.hardwareConcurrency,
    }));
  }
}

/** The SVM beside scikit-learn's LinearSVC (liblinear) on the same features and C. */
async function benchSVM(): Promise<void> {
  const ds = await openDataset("synthetic");
  const mean: [number, number, number] = [0.5, 0.5, 0.5];
  const tr = [...Array(ds.splits.train.length).keys()], te = [...Array(ds.splits.test.length).keys()];
  const a = await rawPixelFeatures(ds.splits.train, tr, 16, mean),
    b = await rawPixelFeatures(ds.splits.test, te, 16, mean);
  const ya = ds.splits.train.labels!, yb = ds.splits.test.labels!;
  ds.close();
  const dir = await Deno.makeTempDir({ prefix: "exemplar-svm-" });
  const files = { a: `${dir}/a.f32`, ya: `${dir}/ya.i32`, b: `${dir}/b.f32`, yb: `${dir}/yb.i32` };
  await Deno.writeFile(files.a, new Uint8Array(a.x.buffer));
  await Deno.writeFile(files.b, new Uint8Array(b.x.buffer));
  await Deno.writeFile(files.ya, new Uint8Array(ya.buffer, ya.byteOffset, ya.byteLength));
  await Deno.writeFile(files.yb, new Uint8Array(yb.buffer, yb.byteOffset, yb.byteLength));
  const script = fileURLToPath(new URL("./peers/sklearn_svm.py", import.meta.url));
  for (const C of [0.001, 0.01, 0.1]) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    const m = trainSVM(a, ya, 10, { C });
    const secs = (performance.now() - t0) / 1000, cpu = process.cpuUsage(c0);
    const ours = accuracy(predictSVM(m, b), yb);
    let peer: { accuracy: number; train_seconds: number; train_cpu_seconds: number } | null = null;
    try {
      const o = await new Deno.Command("/usr/bin/python3", {
        args: [script, files.a, files.ya, files.b, files.yb, String(a.dim), String(C)],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (o.code === 0) peer = JSON.parse(new TextDecoder().decode(o.stdout).trim());
    } catch { /* no python3 */ }
    console.log(JSON.stringify({
      bench: "svm",
      features: `raw pixels 16x16 of synthetic (${a.n} train, ${b.n} test, ${a.dim} dims)`,
      C,
      accuracy: ours,
      train_seconds: Number(secs.toFixed(2)),
      train_cpu_seconds: Number(((cpu.user + cpu.system) / 1e6).toFixed(2)),
      peer: peer
        ? "sklearn LinearSVC (liblinear)"
        : "skipped: /usr/bin/python3 cannot import sklearn (Debian: python3-sklearn)",
      peer_accuracy: peer?.accuracy,
      peer_train_seconds: peer ? Number(peer.train_seconds.toFixed(2)) : undefined,
      peer_train_cpu_seconds: peer ? Number(peer.train_cpu_seconds.toFixed(2)) : undefined,
    }));
  }
  await Deno.remove(dir, { recursive: true });
}

async function main(args: string[]): Promise<void> {
  const usage =
    "deno task bench [--nets small,medium,large] [--backend NAME] [--seconds S] [--skip surrogate,svm,nets,peer]";
  const { values } = parseFlags(args, {
    nets: { type: "string", help: "comma-separated networks (default: small, medium, large)" },
    backend: { type: "string", help: "the backend to time (default: the first that works)" },
    seconds: { type: "string", help: "seconds per measurement" },
    skip: { type: "string", help: "comma-separated parts to skip: surrogate, svm, nets, peer" },
  }, usage);
  const seconds = Number(values.seconds ?? 6);
  if (!(seconds > 0)) throw new UserError(`--seconds ${values.seconds}: expected a positive number`);
  const skip = new Set((values.skip ?? "").split(",").filter((s) => s));
  const nets = (values.nets ?? "small,medium,large").split(",").map((n) =>
    (PAPER_NETS as Record<string, string>)[n] ?? n
  );
  if (!skip.has("surrogate")) await benchSurrogate(Math.min(seconds, 3));
  if (!skip.has("svm")) await benchSVM();
  if (skip.has("nets")) return;
  const backend = await selectBackend(values.backend);
  const { blas } = openBlas();
  console.log(JSON.stringify({ backend: backend.name, detail: backend.detail }));
  await benchNets(nets, backend, seconds, {
    parallel: backend.name === "wasm" ? [1, 2] : [1],
    peer: !skip.has("peer"),
    extra: backend.name === "wasm" ? { convolutions: blas ? "openblas" : "xnnpack" } : {},
  });
}

if (import.meta.main) runTask(main);
