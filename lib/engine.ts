/**
 * Gradient engines: where a training step's forward and backward passes run.
 *
 * The training loop (lib/train.ts) keeps the weights and momenta as plain
 * Float32Arrays and applies the SGD update itself; an engine only turns
 * (weights, batch) into (loss, gradients).
 *
 * - {@link LocalEngine}: in this thread, on the selected backend.
 * - {@link ParallelEngine}: data parallelism over Deno module workers, each
 *   with its own wasm backend (TensorFlow.js's wasm backend runs one thread in
 *   Deno). Each worker computes the gradient of its share of the batch; the
 *   shares are averaged once, in worker order, so a run is deterministic for a
 *   given number of workers. Weights and gradients live in SharedArrayBuffers:
 *   only the batch crosses threads by message.
 *
 * @module
 */
import { selectBackend, tf, wasmHeapView, weightsInPlace } from "./backend.ts";
import { ExemplarNet, type NetVariant } from "./nets.ts";
import { PATCH } from "./patch.ts";

/** A parameter's place in the flat weight vector. */
export interface ParamSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
  lrMult: number;
  decayMult: number;
}

/** What one step returns: summed loss and correct count over the batch, and the mean gradient. */
export interface StepResult {
  loss: number;
  correct: number;
}

/** What builds the same network everywhere. */
export interface NetSpec {
  net: string;
  classes: number;
  variant: NetVariant;
  seed: number;
}

/** The common interface of the engines. */
export interface GradientEngine {
  readonly slots: ParamSlot[];
  /** The flat weights (shared with workers where there are some). */
  readonly weights: Float32Array;
  /** The flat mean gradient of the last step. */
  readonly grads: Float32Array;
  /** Loss and gradient of `n` samples (x: n x 32 x 32 x 3, mean subtracted) at the current weights. */
  step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number): Promise<StepResult>;
  /** Summed loss and correct count of `n` samples, without dropout. */
  evaluate(x: Float32Array, y: Int32Array, n: number): Promise<StepResult>;
  close(): void;
}

/** The flat layout of a network's parameters. */
export function slotsOf(net: ExemplarNet): ParamSlot[] {
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

/**
 * A network's parameters as one flat vector, in its parameter order (into `flat` when given). Reads are
 * asynchronous: the WebGPU backend cannot read synchronously in Deno (its synchronous path needs a 2D canvas).
 */
export async function flatWeights(net: ExemplarNet, slots = slotsOf(net), flat?: Float32Array): Promise<Float32Array> {
  const out = flat ?? new Float32Array(slots.reduce((a, s) => a + s.size, 0));
  for (let i = 0; i < net.params.length; i++) out.set(await net.params[i].v.data() as Float32Array, slots[i].offset);
  return out;
}

/** Copies a float tensor's values into `dst` at `offset`: straight from the heap on wasm, else by an asynchronous read. */
async function readInto(t: tf.Tensor, dst: Float32Array, offset: number): Promise<void> {
  dst.set(wasmHeapView(t) ?? await t.data() as Float32Array, offset);
}

/** Runs forward and backward passes of a network whose weights come from a flat vector. */
export class NetRunner {
  readonly net: ExemplarNet;
  readonly slots: ParamSlot[];

  constructor(spec: NetSpec) {
    this.net = new ExemplarNet(spec.net, spec.classes, { variant: spec.variant, seed: spec.seed });
    this.slots = slotsOf(this.net);
  }

  /** Copies the net's own (initial) weights into `flat`. */
  async readWeights(flat: Float32Array): Promise<void> {
    await flatWeights(this.net, this.slots, flat);
  }

  load(flat: Float32Array): void {
    // deno-lint-ignore no-explicit-any
    const backend = tf.backend() as any;
    const inPlace = weightsInPlace();
    this.net.params.forEach((p, i) => {
      const s = this.slots[i];
      if (inPlace && backend.refCount(p.v.dataId) === 1) {
        // The variable owns its buffer in the wasm heap, and no kernel keeps a packed copy of it (see
        // weightsInPlace): overwrite it there (no new tensor, no second copy).
        wasmHeapView(p.v)!.set(flat.subarray(s.offset, s.offset + s.size));
        return;
      }
      // A copy: the flat vector may be shared memory, which TensorFlow.js must not alias.
      const t = tf.tensor(flat.slice(s.offset, s.offset + s.size), s.shape);
      p.v.assign(t);
      t.dispose(); // the variable holds its own reference to the data
    });
  }

  /** Summed loss, correct count; writes the gradient of the summed loss into `grads`. */
  async step(x: Float32Array, y: Int32Array, n: number, dropoutSeed: number, grads: Float32Array): Promise<StepResult> {
    const vars = this.net.params.map((p) => p.v);
    const out = tf.tidy(() => {
      const xt = tf.tensor4d(x, [n, PATCH, PATCH, 3]);
      const yt = tf.tensor1d(y, "int32");
      let logits: tf.Tensor2D | null = null;
      const { value, grads: g } = tf.variableGrads(() => {
        logits = tf.keep(this.net.forward(xt, { dropoutSeed }));
        return tf.losses.softmaxCrossEntropy(
          tf.oneHot(yt, this.net.classes),
          logits,
          undefined,
          undefined,
          tf.Reduction.SUM,
        ) as tf.Scalar;
      }, vars);
      const correct = tf.equal(tf.argMax(logits!, 1), yt).sum();
      (logits as tf.Tensor2D | null)?.dispose();
      return { loss: value, correct, grads: this.net.params.map((p) => g[p.v.name]) };
    });
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
      const [l, c] = tf.tidy(() => {
        const xt = tf.tensor4d(x.subarray(s * PATCH * PATCH * 3, (s + m) * PATCH * PATCH * 3), [m, PATCH, PATCH, 3]);
        const yt = tf.tensor1d(y.subarray(s, s + m), "int32");
        const logits = this.net.forward(xt);
        const l = tf.losses.softmaxCrossEntropy(
          tf.oneHot(yt, this.net.classes),
          logits,
          undefined,
          undefined,
          tf.Reduction.SUM,
        );
        return [l, tf.equal(tf.argMax(logits, 1), yt).sum()];
      });
      try {
        loss += (await l.data())[0];
        correct += (await c.data())[0];
      } finally {
        tf.dispose([l, c]);
      }
    }
    return { loss, correct };
  }
}

/** Everything runs in this thread. */
export class LocalEngine implements GradientEngine {
  readonly runner: NetRunner;
  readonly slots: ParamSlot[];
  readonly weights: Float32Array;
  readonly grads: Float32Array;

  private constructor(runner: NetRunner) {
    this.runner = runner;
    this.slots = this.runner.slots;
    const size = this.slots.reduce((a, s) => a + s.size, 0);
    this.weights = new Float32Array(size);
    this.grads = new Float32Array(size);
  }

  /** Builds the network on the current backend; the initial weights are those `spec` gives. */
  static async create(spec: NetSpec): Promise<LocalEngine> {
    const eng = new LocalEngine(new NetRunner(spec));
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

/** Messages to a gradient worker. */
export type WorkerRequest =
  | { kind: "init"; spec: NetSpec; weights: Float32Array; grads: Float32Array }
  | { kind: "step"; id: number; x: Float32Array; y: Int32Array; n: number; dropoutSeed: number }
  | { kind: "evaluate"; id: number; x: Float32Array; y: Int32Array; n: number };

function sumResults(done: { r: StepResult }[]): StepResult {
  return { loss: done.reduce((a, { r }) => a + r.loss, 0), correct: done.reduce((a, { r }) => a + r.correct, 0) };
}

/** Data parallelism over `workers` module workers (see the module documentation). */
export class ParallelEngine implements GradientEngine {
  readonly slots: ParamSlot[];
  readonly weights: Float32Array;
  readonly grads: Float32Array;
  readonly #workerGrads: Float32Array[];
  readonly #workers: Worker[];
  #pending = new Map<number, (r: StepResult) => void>();
  #failed: Error | null = null;
  #id = 0;

  private constructor(slots: ParamSlot[], weights: Float32Array, workers: number) {
    this.slots = slots;
    const size = weights.length;
    this.weights = new Float32Array(new SharedArrayBuffer(size * 4));
    this.weights.set(weights);
    this.grads = new Float32Array(size);
    this.#workerGrads = Array.from({ length: workers }, () => new Float32Array(new SharedArrayBuffer(size * 4)));
    this.#workers = [];
  }

  /** Starts the workers; the initial weights are those `spec` gives in this thread. */
  static async start(spec: NetSpec, workers: number): Promise<ParallelEngine> {
    await selectBackend("wasm");
    const local = new NetRunner(spec);
    const size = local.slots.reduce((a, s) => a + s.size, 0);
    const w = new Float32Array(size);
    await local.readWeights(w);
    local.net.dispose();
    const eng = new ParallelEngine(local.slots, w, workers);
    await Promise.all(eng.#workerGrads.map((g, i) =>
      new Promise<void>((resolve, reject) => {
        const worker = new Worker(new URL("./engine_worker.ts", import.meta.url), { type: "module" });
        eng.#workers.push(worker);
        worker.onerror = (e) => {
          e.preventDefault();
          eng.#failed = new Error(`gradient worker ${i}: ${e.message}`);
          reject(eng.#failed);
          for (const r of eng.#pending.values()) r({ loss: NaN, correct: NaN });
        };
        worker.onmessage = (m: MessageEvent<{ id: number; loss: number; correct: number; ready?: boolean }>) => {
          if (m.data.ready) return resolve();
          const r = eng.#pending.get(m.data.id);
          eng.#pending.delete(m.data.id);
          r?.({ loss: m.data.loss, correct: m.data.correct });
        };
        worker.postMessage({ kind: "init", spec, weights: eng.weights, grads: g } satisfies WorkerRequest);
      })
    ));
    return eng;
  }

  #ask(w: number, req: WorkerRequest & { id: number }): Promise<StepResult> {
    if (this.#failed) throw this.#failed;
    return new Promise((resolve) => {
      this.#pending.set(req.id, resolve);
      this.#workers[w].postMessage(req);
    });
  }

  /** Sends each worker a contiguous share of the n samples; answers in worker order. */
  async #scatter(
    kind: "step" | "evaluate",
    x: Float32Array,
    y: Int32Array,
    n: number,
    dropoutSeed = 0,
  ): Promise<{ w: number; r: StepResult }[]> {
    const W = this.#workers.length, per = Math.ceil(n / W), D = PATCH * PATCH * 3;
    const parts = [];
    for (let w = 0; w < W; w++) {
      const a = Math.min(n, w * per), b = Math.min(n, a + per);
      if (b <= a) continue;
      const share = { id: ++this.#id, x: x.slice(a * D, b * D), y: y.slice(a, b), n: b - a };
      const req: WorkerRequest & { id: number } = kind === "step"
        ? { kind, ...share, dropoutSeed: dropoutSeed + 7919 * w }
        : { kind, ...share };
      parts.push(this.#ask(w, req).then((r) => ({ w, r })));
    }
    const done = await Promise.all(parts);
    if (this.#failed) throw this.#failed;
    return done;
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
    for (const w of this.#workers) w.terminate();
  }
}
