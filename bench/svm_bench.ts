/**
 * `deno run -A bench/svm_bench.ts [--shape caltech101|cifar10|NxDxK] [--C 0.01,1] [--grid] [--workers W]
 * [--form auto|gram|primal|newton] [--knn] [--separation S] [--cache DIR]`
 *
 * Times the evaluation's classifiers (lib/svm.ts, lib/knn.ts) at the size of one run of a protocol, on synthetic
 * features made like the network's (see {@link pooledFeatures}), and prints JSON lines:
 * - `svm`: one-vs-rest training at each C (in this thread, or in W workers), with the test accuracy;
 * - `svm-grid` (`--grid`): choosing C on the method's grid (the training set's Gram matrix serves every C);
 * - `knn` (`--knn`): weighted kNN of the test set.
 *
 * Shapes: `caltech101` is one Caltech-101 run with the small network's pyramid features (3030 training and 2945 test
 * images, 21 x 256 dims, 101 classes); `cifar10` one CIFAR-10 run with quadrant features (50,000 training and 10,000
 * test images, 1024 dims, 10 classes); `NxDxK` n training images of D dims in K classes (as many test images).
 *
 * @module
 */
import process from "node:process";
import { parseFlags, runTask } from "../lib/util/cli.ts";
import { UserError } from "../lib/util/errors.ts";
import { Rng } from "../lib/util/rng.ts";
import { openBlas } from "../lib/compute/blas.ts";
import { METHODS } from "../lib/presets.ts";
import { accuracy, chooseC, type Features, predictSVM, type SVMForm, SVMWorkers, trainSVM } from "../lib/svm.ts";
import { knnPredict } from "../lib/knn.ts";
import { writeFileAtomic } from "../lib/util/fsutil.ts";

/**
 * Features made like a network's pooled responses: nonnegative, skewed, correlated, with class structure. Each image
 * draws a latent vector z (its class's centre plus unit noise, `rank` dimensions); each feature is relu(a_j.z + b_j
 * + noise)^2 for fixed random a_j, b_j; and, as the evaluation scales each block of features, all are divided by the
 * 0.9999 quantile of the values. The class structure (centres, a, b) depends on `rank`, `separation` and the
 * dimensions only, so sets drawn with different seeds are training and test sets of one problem.
 */
export function pooledFeatures(
  n: number,
  dim: number,
  classes: number,
  seed: number,
  opts: { rank?: number; separation?: number; scale?: number } = {},
): { f: Features; y: Int32Array; scale: number } {
  const rank = opts.rank ?? 64, sep = opts.separation ?? 0.4;
  const rng = new Rng(77, dim, classes);
  const A = Float32Array.from({ length: dim * rank }, () => rng.normal() / Math.sqrt(rank));
  const b = Float32Array.from({ length: dim }, () => 1.1 + 0.3 * rng.normal());
  const mu = Array.from({ length: classes }, () => Float32Array.from({ length: rank }, () => sep * rng.normal()));
  const x = new Float32Array(n * dim), y = new Int32Array(n), z = new Float32Array(rank);
  const draw = new Rng(seed, 78);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    y[i] = c;
    for (let r = 0; r < rank; r++) z[r] = mu[c][r] + draw.normal();
    for (let j = 0; j < dim; j++) {
      let s = b[j];
      for (let r = 0; r < rank; r++) s += A[j * rank + r] * z[r];
      const v = Math.max(0, s + 0.5 * draw.normal());
      x[i * dim + j] = v * v;
    }
  }
  let scale = opts.scale;
  if (scale === undefined) {
    const sample = Float32Array.from({ length: Math.min(x.length, 1 << 20) }, () => x[draw.int(x.length)]).sort();
    scale = sample[Math.floor(0.9999 * (sample.length - 1))] || 1;
  }
  for (let i = 0; i < x.length; i++) x[i] /= scale;
  return { f: { n, dim, x }, y, scale };
}

/** {@link pooledFeatures}, read from `dir` when drawn there before (and written there the first time). */
export async function cachedPooledFeatures(
  dir: string | undefined,
  n: number,
  dim: number,
  classes: number,
  seed: number,
  separation: number,
  scale?: number,
): Promise<{ f: Features; y: Int32Array; scale: number }> {
  if (!dir) return pooledFeatures(n, dim, classes, seed, { scale, separation });
  const file = `${dir}/pooled-${n}x${dim}x${classes}-${separation}-${seed}-${scale ?? "own"}.f32`;
  try {
    const bytes = await Deno.readFile(file);
    const y = Int32Array.from({ length: n }, (_, i) => i % classes);
    const x = new Float32Array(bytes.buffer, 8, n * dim);
    return { f: { n, dim, x }, y, scale: new Float64Array(bytes.buffer, 0, 1)[0] };
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const r = pooledFeatures(n, dim, classes, seed, { scale, separation });
  const bytes = new Uint8Array(8 + r.f.x.byteLength);
  new Float64Array(bytes.buffer, 0, 1)[0] = r.scale;
  bytes.set(new Uint8Array(r.f.x.buffer), 8);
  await Deno.mkdir(dir, { recursive: true });
  await writeFileAtomic(file, bytes);
  return r;
}

/** n, dim, classes, test images and the separation of the classes (linear SVM accuracy about 55 % and 65 %). */
const SHAPES: Record<string, [number, number, number, number, number]> = {
  caltech101: [3030, 21 * 256, 101, 2945, 0.4],
  cifar10: [50000, 1024, 10, 10000, 0.2],
};

/** Seconds since `t0` (ms), and of processor time (all threads) since `c0` (s). */
const secs = (t0: number) => Number(((performance.now() - t0) / 1000).toFixed(2));
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const cpuSecs = (c0: number) => Number((cpuNow() - c0).toFixed(2));

async function main(args: string[]): Promise<void> {
  const usage =
    "deno run -A bench/svm_bench.ts [--shape caltech101|cifar10|NxDxK] [--C 0.01,1] [--grid] [--workers W] [--form auto|gram|primal|newton] [--knn] [--separation S] [--cache DIR]";
  const { values } = parseFlags(args, {
    shape: { type: "string", help: "caltech101 (default), cifar10, or NxDxK" },
    C: { type: "string", help: "comma-separated C values to train with (default 0.01,1)" },
    grid: { type: "boolean", help: "also choose C on the grid (validation: the test set)" },
    workers: { type: "string", help: "SVM worker threads (default 0: train in this thread)" },
    form: { type: "string", help: "the SVM's form: auto (default), gram, primal or newton" },
    knn: { type: "boolean", help: "also time weighted kNN" },
    separation: { type: "string", help: "spread of the class centres (default: the shape's)" },
    cache: { type: "string", help: "a folder to keep the drawn features in (they take minutes to draw)" },
  }, usage);
  const shapeName = values.shape ?? "caltech101";
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(shapeName);
  const shape = SHAPES[shapeName] ?? (m ? [+m[1], +m[2], +m[3], +m[1], 0.4] : null);
  if (!shape) throw new UserError(`--shape ${shapeName}: expected caltech101, cifar10 or NxDxK`);
  const [n, dim, classes, nTest] = shape, separation = Number(values.separation ?? shape[4]);
  if (!(separation >= 0)) throw new UserError(`--separation ${values.separation}: expected a number >= 0`);
  const Cs = (values.C ?? "0.01,1").split(",").map(Number);
  const workers = Number(values.workers ?? 0);
  const form = (values.form ?? "auto") as SVMForm;
  if (!["auto", "gram", "primal", "newton"].includes(form)) {
    throw new UserError(`--form ${form}: expected auto, gram, primal or newton`);
  }
  const t0 = performance.now();
  const train = await cachedPooledFeatures(values.cache, n, dim, classes, 1, separation);
  const test = await cachedPooledFeatures(values.cache, nTest, dim, classes, 2, separation, train.scale);
  const about = {
    shape: shapeName,
    n,
    dim,
    classes,
    test: nTest,
    separation,
    blas: openBlas().blas ? "openblas" : "off",
    workers,
    cores: navigator.hardwareConcurrency,
  };
  console.error(`features drawn in ${secs(t0)} s`);
  const pool = workers > 0 ? new SVMWorkers(workers) : null;
  try {
    for (const C of Cs) {
      const t = performance.now(), c = cpuNow();
      const svm = pool
        ? await pool.train(train.f, train.y, classes, { C, form })
        : trainSVM(train.f, train.y, classes, { C, form });
      const trainSeconds = secs(t), trainCpu = cpuSecs(c), tp = performance.now();
      const acc = accuracy(predictSVM(svm, test.f), test.y);
      console.log(JSON.stringify({
        bench: "svm",
        ...about,
        form,
        C,
        train_seconds: trainSeconds,
        train_cpu_seconds: trainCpu,
        predict_seconds: secs(tp),
        accuracy: acc,
      }));
    }
    if (values.grid) {
      const grid = METHODS.paper.eval.cGrid, t = performance.now(), c = cpuNow();
      const r = pool
        ? await pool.chooseC(train.f, train.y, test.f, test.y, classes, grid, 1)
        : chooseC(train.f, train.y, test.f, test.y, classes, grid, 1);
      console.log(
        JSON.stringify({
          bench: "svm-grid",
          ...about,
          grid,
          seconds: secs(t),
          cpu_seconds: cpuSecs(c),
          C: r.C,
          scores: r.scores,
        }),
      );
    }
    if (values.knn) {
      const t = performance.now(), c = cpuNow();
      const acc = accuracy(knnPredict(train.f, train.y, classes, test.f), test.y);
      console.log(JSON.stringify({ bench: "knn", ...about, seconds: secs(t), cpu_seconds: cpuSecs(c), accuracy: acc }));
    }
  } finally {
    pool?.close();
  }
}

if (import.meta.main) runTask(main);
