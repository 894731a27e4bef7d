/**
 * Gradient engines: where a training step's forward and backward passes run.
 *
 * An engine turns (weights, batch) into (loss, gradient) and applies Caffe's
 * SGD update ({@link sgdUpdate}) where the weights live: in plain
 * Float32Arrays on the CPU engines, in GPU memory on {@link DeviceEngine}.
 * The training loop (lib/train.ts) reads them with `pull()` when it writes a
 * checkpoint and hands resumed ones over with `push()`.
 *
 * - {@link LocalEngine}: in this thread, on the selected backend.
 * - {@link DeviceEngine}: in this thread, with the weights, momenta and the
 *   SGD update on the backend's device (a GPU): only the batch goes to the
 *   device and only the loss comes back at each step.
 * - {@link ParallelEngine}: data parallelism over Deno module workers, each
 *   with its own wasm backend (TensorFlow.js's wasm backend runs one thread in
 *   Deno). Each worker computes the gradient of its share of the batch; the
 *   shares are averaged once, in worker order, so a run is deterministic for a
 *   given number of workers. Weights and gradients live in SharedArrayBuffers:
 *   only the batch crosses threads by message.
 *
 * @module
 */
import { type BackendInfo, selectBackend, tf } from "./backend.ts";
import { wasmHeapView, weightsInPlace } from "./wasm_kernels.ts";
import { DeviceSgd } from "./webgpu_sgd.ts";
import { webgpuInternals } from "./tfjs_internals.ts";
import { type StepNet, WebGPUStepEngine, webgpuStepMode } from "./webgpu_step.ts";
import { WorkerPool } from "./pool.ts";
import { netBuilder } from "./net_builders.ts";
import { type ParamSlot, type SgdHyper, sgdUpdate, sgdUpdateTensors } from "./sgd.ts";

/** What one step returns: summed loss and correct count over the batch, and the mean gradient. */
export interface StepResult {
  loss: number;
  correct: number;
}

/**
 * What builds the same network in this thread and in every worker: the module that builds it (it exports
 * `buildNet(spec)`: lib/nets.ts, whose `netSpec` makes these) and what it needs.
 */
export interface NetSpec {
  /** The URL of the module that exports `buildNet(spec): TrainableNet`. */
  builder: string;
  /** The network's name (`64c5-64c5-128f`). */
  net: string;
  /** N: the softmax layer's classes. */
  classes: number;
  /** Method preset (initialisation, pooling). */
  method: string;
  /** Seed of the initial weights. */
  seed: number;
  /** Side of the square training inputs (32). */
  inputSize: number;
}

/** A network the engines can train: its parameters with their multipliers, and its loss (lib/nets.ts ExemplarNet). */
export interface TrainableNet {
  /** The parameters in a fixed order, with Caffe's per-parameter learning-rate and weight-decay multipliers. */
  readonly params: { name: string; v: tf.Variable; lrMult: number; decayMult: number }[];
  /** The summed loss of a batch and its logits, with dropout when `dropoutSeed` is given. */
  loss(x: tf.Tensor4D, y: tf.Tensor1D, opts?: { dropoutSeed?: number }): { loss: tf.Scalar; logits: tf.Tensor2D };
  /** The network as the project's WebGPU step builds it, where it can (lib/compute/webgpu_step.ts). */
  describe?(): StepNet;
  /** Frees the parameters. */
  dispose(): void;
}

/** Builds the network of `spec` with the module it names (lib/compute/net_builders.ts). */
export async function buildNet(spec: NetSpec): Promise<TrainableNet> {
  return (await netBuilder(spec.builder))(spec);
}

/** Sums over steps: loss and correct count summed over their samples; and how large the weights have grown. */
export interface StepSums extends StepResult {
  samples: number;
  /** The largest absolute weight after the last update (NaN when some weight is not a finite number). */
  weightMax: number;
}

/** The common interface of the engines. */
export interface GradientEngine {
  readonly slots: ParamSlot[];
  /**
   * The flat weights. On the CPU engines they are the weights (shared with workers where there are some); on
   * {@link DeviceEngine} a copy, current after {@link pull}, that {@link push} sends back.
   */
  readonly weights: Float32Array;
  /** The flat momenta of the SGD update, likewise. */
  readonly momenta: Float32Array;
  /** Loss and gradient of `n` samples (x: n x 32 x 32 x 3, mean subtracted) at the current weights. */
  step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<StepResult>;
  /**
   * {@link step} without reading its loss back: the loss and correct count are added to sums that {@link stats}
   * reads. On a GPU, each read waits for the device to finish all queued work; pretraining reads once per logged
   * row instead of once per step.
   */
  accumulate(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<void>;
  /** The summed loss, correct count and samples of the {@link accumulate} steps since the last call. */
  stats(): Promise<StepSums>;
  /** Caffe's SGD update ({@link sgdUpdate}) with the mean gradient of the last step. */
  update(lr: number, hp: SgdHyper): void;
  /** Makes {@link weights} and {@link momenta} current (a read from the device, where they live there). */
  pull(): Promise<void>;
  /** Makes the engine use {@link weights} and {@link momenta} as they are now. */
  push(): void;
  /** Summed loss and correct count of `n` samples, without dropout. */
  evaluate(x: Float32Array, y: Int32Array, n: number): Promise<StepResult>;
  close(): void;
}

/** The flat layout of a network's parameters. */
export function slotsOf(net: TrainableNet): ParamSlot[] {
  let offset = 0;
  return net.params.map((p) => {
    const s = {
      name: p.name,
      shape: p.v.shape as number[],
      offset,
      size: p.v.size,
      lrMult: p.lrMult,
      decayMult: p.decayMult,
    };
    offset += p.v.size;
    return s;
  });
}

/** The length of the flat vector that holds every slot. */
export function flatSize(slots: ParamSlot[]): number {
  return slots.reduce((a, s) => a + s.size, 0);
}

/** Sets a variable to its slot of a flat vector (a copy: the vector may be shared memory, which TensorFlow.js must
 * not alias). */
function assignSlot(v: tf.Variable, flat: Float32Array, s: ParamSlot): void {
  const t = tf.tensor(flat.slice(s.offset, s.offset + s.size), s.shape);
  v.assign(t);
  t.dispose(); // the variable holds its own reference to the data
}

/**
 * A network's parameters as one flat vector, in its parameter order (into `flat` when given). Reads are
 * asynchronous: the WebGPU backend cannot read synchronously in Deno (its synchronous path needs a 2D canvas).
 */
export async function flatWeights(
  net: TrainableNet,
  slots = slotsOf(net),
  flat?: Float32Array,
): Promise<Float32Array> {
  const out = flat ?? new Float32Array(flatSize(slots));
  for (let i = 0; i < net.params.length; i++) out.set(await net.params[i].v.data() as Float32Array, slots[i].offset);
  return out;
}

/** Copies a float tensor's values into `dst` at `offset`: straight from the heap on wasm, else by an asynchronous read. */
async function readInto(t: tf.Tensor, dst: Float32Array, offset: number): Promise<void> {
  dst.set(wasmHeapView(t) ?? await t.data() as Float32Array, offset);
}

/** Runs forward and backward passes of a network whose weights come from a flat vector. */
export class NetRunner {
  readonly net: TrainableNet;
  readonly slots: ParamSlot[];
  readonly inputSize: number;

  private constructor(net: TrainableNet, inputSize: number) {
    this.net = net;
    this.slots = slotsOf(net);
    this.inputSize = inputSize;
  }

  /** Builds the network of `spec` (its seeded initial weights) on the current backend. */
  static async create(spec: NetSpec): Promise<NetRunner> {
    return new NetRunner(await buildNet(spec), spec.inputSize);
  }

  /** Copies the net's own (initial) weights into `flat`. */
  async readWeights(flat: Float32Array): Promise<void> {
    await flatWeights(this.net, this.slots, flat);
  }

  load(flat: Float32Array): void {
    const backend = tf.backend();
    const inPlace = weightsInPlace();
    this.net.params.forEach((p, i) => {
      const s = this.slots[i];
      if (inPlace && backend.refCount(p.v.dataId) === 1) {
        // The variable owns its buffer in the wasm heap, and no kernel keeps a packed copy of it (see
        // weightsInPlace): overwrite it there (no new tensor, no second copy).
        wasmHeapView(p.v)!.set(flat.subarray(s.offset, s.offset + s.size));
        return;
      }
      assignSlot(p.v, flat, s);
    });
  }

  /** Summed loss, correct count and the gradient of the summed loss, as tensors (the caller disposes them). */
  gradients(
    x: Float32Array,
    y: Int32Array,
    n: number,
    dropoutSeed: number,
  ): { loss: tf.Scalar; correct: tf.Scalar; grads: tf.Tensor[] } {
    const vars = this.net.params.map((p) => p.v);
    const S = this.inputSize;
    return tf.tidy(() => {
      const xt = tf.tensor4d(x, [n, S, S, 3]);
      const yt = tf.tensor1d(y, "int32");
      let logits: tf.Tensor2D | null = null;
      const { value, grads: g } = tf.variableGrads(() => {
        const out = this.net.loss(xt, yt, { dropoutSeed });
        logits = tf.keep(out.logits);
        return out.loss;
      }, vars);
      const correct = tf.equal(tf.argMax(logits!, 1), yt).sum() as tf.Scalar;
      (logits as tf.Tensor2D | null)?.dispose();
      return { loss: value, correct, grads: this.net.params.map((p) => g[p.v.name]) };
    });
  }

  /** Summed loss, correct count; writes the gradient of the summed loss into `grads`. */
  async step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number, grads: Float32Array): Promise<StepResult> {
    const out = this.gradients(x, y, n, dropoutSeed);
    try {
      for (let i = 0; i < out.grads.length; i++) await readInto(out.grads[i], grads, this.slots[i].offset);
      return { loss: (await out.loss.data())[0], correct: (await out.correct.data())[0] };
    } finally {
      tf.dispose([out.loss, out.correct, ...out.grads]);
    }
  }

  async evaluate(x: Float32Array, y: Int32Array, n: number): Promise<StepResult> {
    let loss = 0, correct = 0;
    for (let s = 0; s < n; s += 256) {
      const m = Math.min(256, n - s);
      const S = this.inputSize, D = S * S * 3;
      const both = tf.tidy(() => {
        const xt = tf.tensor4d(x.subarray(s * D, (s + m) * D), [m, S, S, 3]);
        const yt = tf.tensor1d(y.subarray(s, s + m), "int32");
        const { loss, logits } = this.net.loss(xt, yt);
        return tf.stack([loss, tf.equal(tf.argMax(logits, 1), yt).sum().toFloat()]);
      });
      try {
        const [l, c] = await both.data(); // one read for both numbers (a read waits ~11 ms for a GPU under Deno)
        loss += l;
        correct += c;
      } finally {
        both.dispose();
      }
    }
    return { loss, correct };
  }
}

/** What the engines whose weights live in this process's memory share: the update, and sums kept in numbers. */
abstract class HostEngine implements GradientEngine {
  readonly slots: ParamSlot[];
  readonly weights: Float32Array;
  readonly momenta: Float32Array;
  /** The flat mean gradient of the last step. */
  readonly grads: Float32Array;
  #sums: StepResult & { samples: number } = { loss: 0, correct: 0, samples: 0 };
  /** The largest absolute weight over the updates since the last {@link stats} (NaN: one was not finite). */
  #weightMax = 0;

  constructor(slots: ParamSlot[], weights: Float32Array) {
    this.slots = slots;
    this.weights = weights;
    this.momenta = new Float32Array(weights.length);
    this.grads = new Float32Array(weights.length);
  }

  abstract step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<StepResult>;
  abstract evaluate(x: Float32Array, y: Int32Array, n: number): Promise<StepResult>;
  abstract close(): void;

  async accumulate(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<void> {
    const r = await this.step(x, y, n, dropoutSeed);
    this.#sums = {
      loss: this.#sums.loss + r.loss,
      correct: this.#sums.correct + r.correct,
      samples: this.#sums.samples + n,
    };
  }

  stats(): Promise<StepSums> {
    const s = { ...this.#sums, weightMax: this.#weightMax };
    this.#sums = { loss: 0, correct: 0, samples: 0 };
    this.#weightMax = Number.isNaN(this.#weightMax) ? NaN : 0;
    return Promise.resolve(s);
  }

  update(lr: number, hp: SgdHyper): void {
    const m = sgdUpdate(this.slots, this.weights, this.momenta, this.grads, lr, hp);
    if (Number.isNaN(m) || m > this.#weightMax) this.#weightMax = m;
  }

  /** The weights are here already. */
  pull(): Promise<void> {
    return Promise.resolve();
  }

  /** The weights are used from here at every step. */
  push(): void {}
}

/** Everything runs in this thread; weights, momenta and the update on the CPU. */
export class LocalEngine extends HostEngine {
  readonly runner: NetRunner;

  private constructor(runner: NetRunner) {
    super(runner.slots, new Float32Array(flatSize(runner.slots)));
    this.runner = runner;
  }

  /** Builds the network on the current backend; the initial weights are those `spec` gives. */
  static async create(spec: NetSpec): Promise<LocalEngine> {
    const eng = new LocalEngine(await NetRunner.create(spec));
    await eng.runner.readWeights(eng.weights);
    return eng;
  }

  async step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<StepResult> {
    this.runner.load(this.weights);
    const r = await this.runner.step(x, y, n, dropoutSeed, this.grads);
    for (let i = 0; i < this.grads.length; i++) this.grads[i] /= n;
    return r;
  }

  evaluate(x: Float32Array, y: Int32Array, n: number): Promise<StepResult> {
    this.runner.load(this.weights);
    return this.runner.evaluate(x, y, n);
  }

  close(): void {
    this.runner.net.dispose();
  }
}

/**
 * Everything in this thread, with the network's weights, the momenta and the SGD update on the backend's device:
 * for a GPU, where copying 10-40 M weights and their gradients to the CPU and back at every step would cost more
 * than the step (on the H200, 0.4 s a step for the medium network through TensorFlow.js's WebGPU reads). On WebGPU
 * the update is one WGSL pass per parameter, in place (lib/compute/webgpu_sgd.ts); elsewhere it is TensorFlow.js
 * arithmetic.
 */
export class DeviceEngine implements GradientEngine {
  readonly runner: NetRunner;
  readonly slots: ParamSlot[];
  readonly weights: Float32Array;
  readonly momenta: Float32Array;
  #momenta: tf.Variable[];
  #grads: tf.Tensor[] | null = null;
  #n = 1;
  #sgd: DeviceSgd | null;
  /** Summed loss and correct count of the accumulated steps, on the device; and their samples. */
  #sums: tf.Tensor1D = tf.zeros([2]);
  #samples = 0;

  private constructor(runner: NetRunner) {
    this.runner = runner;
    this.slots = runner.slots;
    this.weights = new Float32Array(flatSize(this.slots));
    this.momenta = new Float32Array(this.weights.length);
    this.#momenta = runner.net.params.map((p) => {
      const zeros = tf.zerosLike(p.v), v = tf.variable(zeros, false);
      zeros.dispose(); // the variable holds its own reference
      return v;
    });
    this.#sgd = tf.getBackend() === "webgpu" ? new DeviceSgd(webgpuInternals()) : null;
  }

  /** Builds the network on the current backend; the initial weights are those `spec` gives. */
  static async create(spec: NetSpec): Promise<DeviceEngine> {
    const eng = new DeviceEngine(await NetRunner.create(spec));
    await eng.pull();
    return eng;
  }

  /** The gradient of a batch, kept on the device for {@link update}; its loss and correct count as a tensor. */
  #gradients(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): tf.Tensor1D {
    if (this.#grads) tf.dispose(this.#grads);
    const out = this.runner.gradients(x, y, n, dropoutSeed);
    this.#grads = out.grads;
    this.#n = n;
    const both = tf.tidy(() => tf.stack([out.loss, out.correct.toFloat()]) as tf.Tensor1D);
    tf.dispose([out.loss, out.correct]);
    return both;
  }

  async step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<StepResult> {
    const both = this.#gradients(x, y, n, dropoutSeed);
    try {
      const [loss, correct] = await both.data(); // one read from the device for both numbers
      return { loss, correct };
    } finally {
      both.dispose();
    }
  }

  accumulate(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<void> {
    const both = this.#gradients(x, y, n, dropoutSeed), before = this.#sums;
    this.#sums = tf.add(before, both);
    tf.dispose([both, before]);
    this.#samples += n;
    return Promise.resolve();
  }

  async stats(): Promise<StepSums> {
    const sums = this.#sums, samples = this.#samples;
    this.#sums = tf.zeros([2]);
    this.#samples = 0;
    // With the sums, in the same read: each parameter's summed and largest absolute weight (a weight that is not
    // finite makes its sum so).
    const read = tf.tidy(() =>
      tf.concat([sums, ...this.runner.net.params.map((p) => tf.stack([tf.abs(p.v).sum(), tf.abs(p.v).max()]))])
    );
    try {
      const v = await read.data();
      let weightMax = 0;
      for (let i = 2; i < v.length; i += 2) weightMax = Number.isFinite(v[i]) ? Math.max(weightMax, v[i + 1]) : NaN;
      return { loss: v[0], correct: v[1], samples, weightMax: Number.isNaN(weightMax) ? NaN : weightMax };
    } finally {
      tf.dispose([sums, read]);
    }
  }

  update(lr: number, hp: SgdHyper): void {
    const grads = this.#grads;
    if (!grads) throw new Error("DeviceEngine.update: no gradient (call step first)");
    const params = this.runner.net.params;
    if (this.#sgd) {
      this.#sgd.run(params.map((p, i) => ({
        w: p.v,
        v: this.#momenta[i],
        g: grads[i],
        rate: lr * p.lrMult,
        decay: hp.weightDecay * p.decayMult,
        momentum: hp.momentum,
        scale: 1 / this.#n,
      })));
    } else sgdUpdateTensors(params, this.#momenta, grads, this.#n, lr, hp);
    tf.dispose(grads);
    this.#grads = null;
  }

  async pull(): Promise<void> {
    const params = this.runner.net.params;
    for (let i = 0; i < params.length; i++) {
      for (const [src, dst] of [[params[i].v, this.weights], [this.#momenta[i], this.momenta]] as const) {
        // Read a copy: a read leaves the values cached on the CPU beside the tensor, and the in-place update on the
        // device would then not be seen by a later read of the tensor itself.
        const copy = tf.mul(src, 1);
        try {
          dst.set(await copy.data() as Float32Array, this.slots[i].offset);
        } finally {
          copy.dispose();
        }
      }
    }
  }

  push(): void {
    this.runner.load(this.weights);
    this.#momenta.forEach((v, i) => assignSlot(v, this.momenta, this.slots[i]));
  }

  evaluate(x: Float32Array, y: Int32Array, n: number): Promise<StepResult> {
    return this.runner.evaluate(x, y, n);
  }

  close(): void {
    if (this.#grads) tf.dispose(this.#grads);
    tf.dispose([...this.#momenta, this.#sums]);
    this.runner.net.dispose();
  }
}

/**
 * The engine for a backend: on `wasm`, `parallel` data-parallel workers (or this thread); on `cpu`, this thread
 * (the numerical reference); on WebGPU, the project's recorded step (lib/compute/webgpu_step.ts) for a network that
 * describes itself for it, unless `EXEMPLAR_WEBGPU_STEP=tfjs`; else {@link DeviceEngine}.
 */
export async function createEngine(backend: BackendInfo, spec: NetSpec, parallel = 1): Promise<GradientEngine> {
  if (backend.name === "wasm") {
    return parallel > 1 ? await ParallelEngine.start(spec, parallel) : await LocalEngine.create(spec);
  }
  if (backend.name === "cpu") return await LocalEngine.create(spec);
  if (backend.name === "webgpu" && webgpuStepMode() !== "tfjs") {
    const engine = await createWebGPUStepEngine(spec);
    if (engine) return engine;
  }
  return await DeviceEngine.create(spec);
}

/**
 * The project's recorded WebGPU step for the network of `spec` with its seeded initial weights (built once by
 * TensorFlow.js, read, and released), or null where the network does not describe itself for it.
 */
export async function createWebGPUStepEngine(spec: NetSpec): Promise<WebGPUStepEngine | null> {
  const net = await buildNet(spec);
  try {
    if (!net.describe) return null;
    const slots = slotsOf(net), weights = await flatWeights(net, slots);
    const version = webgpuStepMode() === "project-gemm1" ? "gemm1" : "gemm2";
    return await WebGPUStepEngine.create(webgpuInternals().device, net.describe(), slots, weights, version);
  } finally {
    net.dispose();
  }
}

/** Messages to a gradient worker. */
/** A request to a gradient worker (lib/compute/engine_worker.ts). */
export type WorkerRequest =
  | { kind: "init"; spec: NetSpec; weights: Float32Array; grads: Float32Array }
  | { kind: "step"; x: Float32Array; y: Int32Array; n: number; dropoutSeed: number }
  | { kind: "evaluate"; x: Float32Array; y: Int32Array; n: number };

function sumResults(done: { r: StepResult }[]): StepResult {
  return { loss: done.reduce((a, { r }) => a + r.loss, 0), correct: done.reduce((a, { r }) => a + r.correct, 0) };
}

/** Data parallelism over `workers` module workers (see the module documentation). */
export class ParallelEngine extends HostEngine {
  readonly #workerGrads: Float32Array[];
  readonly #pool: WorkerPool<WorkerRequest, StepResult | null>;

  private constructor(slots: ParamSlot[], weights: Float32Array, workers: number) {
    const size = weights.length;
    super(slots, new Float32Array(new SharedArrayBuffer(size * 4)));
    this.weights.set(weights);
    this.#workerGrads = Array.from({ length: workers }, () => new Float32Array(new SharedArrayBuffer(size * 4)));
    this.#pool = new WorkerPool(new URL("./engine_worker.ts", import.meta.url), workers, "gradient");
  }

  /** Starts the workers; the initial weights are those `spec` gives in this thread. */
  static async start(spec: NetSpec, workers: number): Promise<ParallelEngine> {
    await selectBackend("wasm");
    const local = await NetRunner.create(spec);
    const w = new Float32Array(flatSize(local.slots));
    await local.readWeights(w);
    local.net.dispose();
    const eng = new ParallelEngine(local.slots, w, workers);
    try {
      await Promise.all(
        eng.#workerGrads.map((grads, i) => eng.#pool.call(i, { kind: "init", spec, weights: eng.weights, grads })),
      );
    } catch (e) {
      eng.close();
      throw e;
    }
    return eng;
  }

  /** Sends each worker a contiguous share of the n samples; answers in worker order. */
  async #scatter(
    kind: "step" | "evaluate",
    x: Float32Array,
    y: Int32Array,
    n: number,
    dropoutSeed = 0,
  ): Promise<{ w: number; r: StepResult }[]> {
    const W = this.#pool.size, per = Math.ceil(n / W), D = x.length / n;
    const parts = [];
    for (let w = 0; w < W; w++) {
      const a = Math.min(n, w * per), b = Math.min(n, a + per);
      if (b <= a) continue;
      const share = { x: x.slice(a * D, b * D), y: y.slice(a, b), n: b - a };
      const req: WorkerRequest = kind === "step"
        ? { kind, ...share, dropoutSeed: dropoutSeed + 7919 * w }
        : { kind, ...share };
      parts.push(this.#pool.call(w, req).then((r) => ({ w, r: r! })));
    }
    return await Promise.all(parts);
  }

  async step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<StepResult> {
    const done = await this.#scatter("step", x, y, n, dropoutSeed);
    // Average once, in worker order, in one pass: the gradients are of summed losses.
    const g = this.grads, shares = done.map(({ w }) => this.#workerGrads[w]);
    if (shares.length === 2) {
      const [a, b] = shares;
      for (let i = 0; i < g.length; i++) g[i] = (a[i] + b[i]) / n;
    } else {
      g.set(shares[0]);
      for (let p = 1; p < shares.length; p++) {
        const gw = shares[p];
        for (let i = 0; i < g.length; i++) g[i] += gw[i];
      }
      for (let i = 0; i < g.length; i++) g[i] /= n;
    }
    return sumResults(done);
  }

  /** Each worker evaluates a contiguous share of the samples; the sums are added in worker order. */
  async evaluate(x: Float32Array, y: Int32Array, n: number): Promise<StepResult> {
    return sumResults(await this.#scatter("evaluate", x, y, n));
  }

  close(): void {
    this.#pool.close();
  }
}
