/**
 * The paper's networks (paper §5.1; PAPER.md "Networks"), built from their names.
 *
 * Notation: `64c5` is a convolution with 64 filters of 5x5, `128f` a fully
 * connected layer with 128 units. Every conv and FC layer has a ReLU;
 * max-pooling follows the first two conv layers; dropout (0.5) is applied to
 * the FC layer's output; a softmax over the N surrogate classes is on top.
 * Convolutions are padded to keep the map size ("same", padding 2 for 5x5), so
 * maps go 32 -> 16 -> 8; the first FC layer sees the whole last map.
 *
 * Method presets (lib/presets.ts):
 * - `paper`: 2x2 max-pooling with stride 2, as the text says; He-normal
 *   initialisation (the text gives none), zero biases.
 * - `release`: the authors' Caffe definitions: 3x3 max-pooling with stride 2
 *   (Caffe's ceil mode; here "same" pooling, which pads only at the end, as
 *   ceil mode does); Gaussian initial weights with the spreads of each
 *   released network (medium: 0.05 / 0.02 / 0.01 for conv1..3, 0.01 for the FC
 *   layer, 0.005 for the softmax; small: 0.0001 / 0.01, 0.005, 0.01; the large
 *   network, which the release does not define, takes the medium one's);
 *   biases 0.1, softmax bias 0.
 * Both use the release's learning-rate and weight-decay multipliers.
 *
 * @module
 */
import { tf } from "./compute/backend.ts";
import { convBiasRelu } from "./compute/wasm_kernels.ts";
import { UserError } from "./util/errors.ts";
import { hash32 } from "./util/rng.ts";
import { method as methodNamed, type MethodName, METHODS, type NetNumbers } from "./presets.ts";
import type { NetSpec } from "./compute/engine.ts";
import { provideNetBuilder } from "./compute/net_builders.ts";
import type { StepNet } from "./compute/webgpu_step.ts";
import { PATCH } from "./patch.ts";

/** The three networks of the paper, by name. */
export const PAPER_NETS = {
  small: "64c5-64c5-128f",
  medium: "64c5-128c5-256c5-512f",
  large: "92c5-256c5-512c5-1024f",
} as const;

/** The most units (filters) a layer and the largest kernel side a network name may give: far beyond the paper's. */
const MAX_UNITS = 65536, MAX_KERNEL = 255;

/** One layer of a network name. */
export interface LayerSpec {
  /** Convolution or fully connected. */
  kind: "conv" | "fc";
  /** Filters or units. */
  units: number;
  /** Kernel size (conv only). */
  kernel: number;
}

/** Parses `NcK-...-Mf` (or `small`, `medium`, `large`) into layers. */
export function parseNetName(name: string): LayerSpec[] {
  const full = (PAPER_NETS as Record<string, string>)[name] ?? name;
  const parts = full.split("-");
  const layers = parts.map((p) => {
    let m = /^(\d+)c(\d+)$/.exec(p);
    const bounded = (units: string, kernel = "0") => {
      if (Number(units) > MAX_UNITS || Number(kernel) > MAX_KERNEL) {
        throw new UserError(
          `network "${name}": layer ${p} is too large (at most ${MAX_UNITS} units and ${MAX_KERNEL}x${MAX_KERNEL} kernels)`,
        );
      }
      return { units: Number(units), kernel: Number(kernel) };
    };
    if (m) return { kind: "conv" as const, ...bounded(m[1], m[2]) };
    m = /^(\d+)f$/.exec(p);
    if (m) return { kind: "fc" as const, ...bounded(m[1]) };
    throw new UserError(
      `network "${name}": "${p}" is neither NcK (N filters of KxK) nor Nf (N fully connected units); e.g. 64c5-64c5-128f, or small, medium, large`,
    );
  });
  if (!layers.some((l) => l.kind === "conv")) throw new UserError(`network "${name}": needs at least one conv layer`);
  const firstFc = layers.findIndex((l) => l.kind === "fc");
  if (firstFc >= 0 && layers.slice(firstFc).some((l) => l.kind === "conv")) {
    throw new UserError(`network "${name}": conv layers must come before fully connected ones`);
  }
  for (const l of layers) {
    if (l.units < 1 || (l.kind === "conv" && (l.kernel < 1 || l.kernel % 2 === 0))) {
      throw new UserError(
        `network "${name}": bad layer ${l.units}${
          l.kind === "conv" ? `c${l.kernel}` : "f"
        } (odd kernel >= 1, units >= 1)`,
      );
    }
  }
  return layers;
}

/** One layer of a network as it runs on a patch: its parameters' shapes and the maps it sees. */
export interface NetLayer {
  /** `conv1`, `conv2`, ..., `fc1`, ..., `softmax`: its parameters are `NAME.w` and `NAME.b`. */
  name: string;
  /** Convolution, fully connected layer, or the softmax layer over the surrogate classes. */
  kind: "conv" | "fc" | "softmax";
  /** Filters or units (N for the softmax layer). */
  units: number;
  /** A convolution's kernel side; for the others, the side of the map they see (their kernel when applied as a convolution). */
  kernel: number;
  /** Channels of the map the layer sees. */
  inChannels: number;
  /** Side of the map the layer sees (1 for every layer after the first fully connected one). */
  inMap: number;
  /** Whether max-pooling follows (the first two convolutions). */
  pooled: boolean;
  /** Side of the map it hands on (after its pooling). */
  outMap: number;
  /** The shape of its weights: [kernel, kernel, inChannels, units] for a convolution, [inputs, units] else. */
  weightShape: number[];
}

/**
 * A network's layers as they run on an `inputSize` patch. "Max-pooling after the first two conv layers" (paper
 * §5.1), each halving the map (stride 2, "same" padding: 32 -> 16 -> 8); the first fully connected layer sees the
 * whole last map, and the softmax layer over the `classes` surrogate classes the last layer's units. Every place
 * that needs a layer's sizes (parameters, the forward pass, features, the summary, the export) reads them here.
 */
export function layerWalk(name: string, classes: number, inputSize = 32, poolStride = 2): NetLayer[] {
  const walk: NetLayer[] = [];
  let ch = 3, map = inputSize, conv = 0, fc = 0;
  for (const l of parseNetName(name)) {
    if (l.kind === "conv") {
      const pooled = conv < 2;
      const outMap = pooled ? Math.ceil(map / poolStride) : map;
      walk.push({
        name: `conv${++conv}`,
        kind: "conv",
        units: l.units,
        kernel: l.kernel,
        inChannels: ch,
        inMap: map,
        pooled,
        outMap,
        weightShape: [l.kernel, l.kernel, ch, l.units],
      });
      map = outMap;
    } else {
      walk.push(dense(`fc${++fc}`, "fc", l.units, ch, map));
      map = 1;
    }
    ch = l.units;
  }
  walk.push(dense("softmax", "softmax", classes, ch, map));
  return walk;
}

/** A fully connected layer (or the softmax one) that sees a `map` x `map` x `ch` input. */
function dense(name: string, kind: "fc" | "softmax", units: number, ch: number, map: number): NetLayer {
  return {
    name,
    kind,
    units,
    kernel: map,
    inChannels: ch,
    inMap: map,
    pooled: false,
    outMap: 1,
    weightShape: [map * map * ch, units],
  };
}

/**
 * Checks that every conv kernel fits the map it runs on (32 -> 16 -> 8 for a 32x32 input: a larger kernel would see
 * mostly padding and train nonsense).
 */
export function checkNetFits(name: string, inputSize = 32): void {
  for (const l of layerWalk(name, 2, inputSize)) {
    if (l.kind === "conv" && l.kernel > l.inMap) {
      throw new UserError(
        `network "${name}": ${l.name}'s ${l.kernel}x${l.kernel} kernel is larger than its ${l.inMap}x${l.inMap} input map`,
      );
    }
  }
}

/** One row of a network summary. */
export interface SummaryRow {
  /** The layer and its size (`conv1 64c5`). */
  layer: string;
  /** Output shape per sample. */
  output: number[];
  /** Trainable parameters. */
  params: number;
  /** Forward multiply-adds x 2 per sample. */
  flops: number;
}

/** A network's parameters and the function that runs it. */
/** A trainable variable that holds its initial value alone (the initial tensor is released). */
function variableOf(init: tf.Tensor): tf.Variable {
  const v = tf.variable(init, true);
  init.dispose();
  return v;
}

/** A network of the paper, built from its name (`64c5-64c5-128f`), with the initialisation, pooling and multipliers of a method preset. */
export class ExemplarNet {
  /** The network's name, as given. */
  readonly name: string;
  /** Its layers as they run, the softmax layer last (see {@link layerWalk}). */
  readonly walk: NetLayer[];
  /** The method preset whose initialisation, pooling and multipliers the network has. */
  readonly method: MethodName;
  /** N: the softmax's surrogate classes. */
  readonly classes: number;
  /** Side of the training input (32). */
  readonly inputSize: number;
  /**
   * Parameters in a fixed order: conv1.w, conv1.b, ..., fc1.w, fc1.b, ..., softmax.w, softmax.b (TensorFlow.js
   * variables).
   *
   * @internal
   */
  readonly params: { name: string; v: tf.Variable; lrMult: number; decayMult: number }[] = [];
  readonly #numbers: NetNumbers;

  /** Builds the network `name` with a softmax over `classes`; `seed` fixes the initial weights. */
  constructor(name: string, classes: number, opts: { method?: MethodName; seed?: number; inputSize?: number } = {}) {
    if (!Number.isInteger(classes) || classes < 2) {
      throw new UserError(`N = ${classes}: the softmax needs at least 2 classes`);
    }
    this.name = name;
    this.method = opts.method ?? "paper";
    const nn = this.#numbers = methodNamed(this.method).net;
    this.classes = classes;
    this.inputSize = opts.inputSize ?? 32;
    checkNetFits(name, this.inputSize);
    this.walk = layerWalk(name, classes, this.inputSize, nn.pool.stride);
    const seed = opts.seed ?? 0;
    // Initial weights: He-normal (std sqrt(2 / fan-in)) or the release's fixed Gaussian spreads.
    const gaussian = nn.init === "gaussian";
    const spread = nn.spreads[this.walk.filter((l) => l.kind !== "softmax").map(layerName).join("-")] ??
      nn.spreads.default;
    for (const [k, l] of this.walk.entries()) {
      const fanIn = l.weightShape.slice(0, -1).reduce((a, b) => a * b, 1);
      const conv = Math.min(k, 2); // conv3 and deeper share conv3's numbers
      const std = !gaussian
        ? (l.kind === "softmax" ? nn.softmaxStd : Math.sqrt(2 / fanIn))
        : l.kind === "conv"
        ? spread.conv[Math.min(k, spread.conv.length - 1)]
        : l.kind === "fc"
        ? spread.fc
        : spread.softmax;
      this.#add(l.name, l.weightShape, {
        std,
        bias: l.kind === "softmax" ? 0 : nn.bias,
        seed: seed + k,
        decayMult: l.kind === "conv"
          ? nn.decayMult.conv[conv]
          : l.kind === "fc"
          ? nn.decayMult.fc
          : nn.decayMult.softmax,
        weightLrMult: l.kind === "softmax" ? nn.lrMult.softmaxWeights : undefined,
      });
    }
  }

  /** Adds a layer's weights (Gaussian, `std`) and biases (constant `bias`, learning-rate multiplier as preset). */
  #add(
    name: string,
    shape: number[],
    o: { std: number; bias: number; seed: number; decayMult: number; weightLrMult?: number },
  ): void {
    this.params.push({
      name: `${name}.w`,
      // TensorFlow.js treats a seed of 0 as "no seed": draw a non-zero one from the run seed.
      v: variableOf(tf.randomNormal(shape, 0, o.std, "float32", 1 + (hash32(o.seed, 4001) % 0x7ffffffe))),
      lrMult: o.weightLrMult ?? 1,
      decayMult: o.decayMult,
    });
    this.params.push({
      name: `${name}.b`,
      v: variableOf(tf.fill([shape[shape.length - 1]], o.bias)),
      lrMult: this.#numbers.lrMult.bias,
      decayMult: 0,
    });
  }

  /**
   * The parameter called `name`.
   *
   * @internal
   */
  param(name: string): tf.Variable {
    const p = this.params.find((p) => p.name === name);
    if (!p) throw new Error(`no parameter ${name}`);
    return p.v;
  }

  /** The max-pooling after the first two conv layers: window side and stride. */
  get poolShape(): { size: number; stride: number } {
    return { ...this.#numbers.pool };
  }

  /**
   * Max-pooling after the first two conv layers ("same" padding pads only at the end, as Caffe's ceil mode).
   *
   * @internal
   */
  pool(x: tf.Tensor4D): tf.Tensor4D {
    const { size, stride } = this.#numbers.pool;
    return tf.maxPool(x, size, stride, "same");
  }

  /**
   * Runs the network on x (B x S x S x 3). Returns the logits, and with
   * `taps` the post-ReLU output of every conv and FC layer. Dropout on FC
   * outputs when `dropoutSeed` is given (training).
   *
   * @internal
   */
  forward(x: tf.Tensor4D, opts: { dropoutSeed?: number; taps?: tf.Tensor[] } = {}): tf.Tensor2D {
    let h: tf.Tensor = x;
    let fc = 0;
    for (const l of this.walk) {
      const w = this.param(`${l.name}.w`), b = this.param(`${l.name}.b`);
      if (l.kind === "conv") {
        h = convBiasRelu(h as tf.Tensor4D, w as tf.Tensor4D, b, "same");
        opts.taps?.push(h);
        if (l.pooled) h = this.pool(h as tf.Tensor4D);
        continue;
      }
      if (h.rank > 2) h = h.reshape([h.shape[0], -1]);
      if (l.kind === "softmax") return tf.matMul(h as tf.Tensor2D, w as tf.Tensor2D).add(b);
      h = tf.relu(tf.matMul(h as tf.Tensor2D, w as tf.Tensor2D).add(b));
      opts.taps?.push(h);
      if (opts.dropoutSeed !== undefined) h = tf.dropout(h, this.#numbers.dropout, undefined, opts.dropoutSeed + fc);
      fc++;
    }
    throw new Error(`${this.name}: no softmax layer`);
  }

  /**
   * The surrogate task's loss: "the softmax cross-entropy over the surrogate classes" (§4), summed over the batch's
   * samples (x: B x 32 x 32 x 3, y: their classes), with dropout on the FC layers when `dropoutSeed` is given.
   *
   * @internal
   */
  loss(x: tf.Tensor4D, y: tf.Tensor1D, opts: { dropoutSeed?: number } = {}): { loss: tf.Scalar; logits: tf.Tensor2D } {
    const logits = this.forward(x, opts);
    const loss = tf.losses.softmaxCrossEntropy(
      tf.oneHot(y, this.classes),
      logits,
      undefined,
      undefined,
      tf.Reduction.SUM,
    );
    return { loss: loss as tf.Scalar, logits };
  }

  /**
   * The network as the project's own WebGPU training step builds it (lib/compute/webgpu_step.ts): the same layers,
   * pooling and dropout as {@link forward} and {@link loss}.
   *
   * @internal
   */
  describe(): StepNet {
    return stepNet(this.name, this.classes, this.method, this.inputSize);
  }

  /** Layers, output shapes, parameters and forward FLOPs per sample (paper §5.1; PAPER.md "Networks"). */
  summary(): SummaryRow[] {
    return netSummary(this.name, this.classes, this.method, this.inputSize);
  }

  /** Forward FLOPs per 32x32 sample, without (and with) the softmax layer. */
  flops(): { withoutSoftmax: number; total: number } {
    return netFlops(this.summary());
  }

  /** The first layer's filters as small RGB pictures, each stretched to the full 0..255 range. */
  async firstLayerFilters(): Promise<{ width: number; height: number; data: Uint8Array }[]> {
    const w = this.param("conv1.w");
    const [kh, kw, ci, co] = w.shape as number[];
    const d = await w.data();
    return Array.from({ length: co }, (_, o) => {
      const px: number[] = [];
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) for (let c = 0; c < ci; c++) px.push(d[((y * kw + x) * ci + c) * co + o]);
      }
      const lo = Math.min(...px), hi = Math.max(...px);
      const data = new Uint8Array(kh * kw * 3);
      for (let i = 0; i < kh * kw; i++) {
        for (let c = 0; c < 3; c++) {
          data[3 * i + c] = Math.round(255 * (px[i * ci + Math.min(c, ci - 1)] - lo) / (hi - lo || 1));
        }
      }
      return { width: kw, height: kh, data };
    });
  }

  /** Frees the parameters. */
  dispose(): void {
    for (const p of this.params) p.v.dispose();
  }
}

/**
 * Network `name` with a softmax over `classes` and the pooling and dropout of `method`, as the project's WebGPU
 * training step builds it (lib/compute/webgpu_step.ts).
 */
export function stepNet(name: string, classes: number, method: MethodName = "paper", inputSize = 32): StepNet {
  const nn = methodNamed(method).net;
  return {
    inputSize,
    layers: layerWalk(name, classes, inputSize, nn.pool.stride).map((l) => ({
      name: l.name,
      kind: l.kind,
      units: l.units,
      kernel: l.kernel,
      pooled: l.pooled,
    })),
    pool: { ...nn.pool },
    dropout: nn.dropout,
  };
}

/** Layers, output shapes, parameters and forward FLOPs per sample of a network (paper §5.1; PAPER.md "Networks"). */
export function netSummary(name: string, classes: number, method: MethodName = "paper", inputSize = 32): SummaryRow[] {
  const pool = METHODS[method].net.pool;
  const rows: SummaryRow[] = [];
  for (const l of layerWalk(name, classes, inputSize, pool.stride)) {
    const weights = l.weightShape.reduce((a, b) => a * b, 1);
    if (l.kind === "conv") {
      rows.push({
        layer: `${l.name} ${layerName(l)}`,
        output: [l.inMap, l.inMap, l.units],
        params: weights + l.units,
        flops: 2 * l.inMap * l.inMap * weights,
      });
      if (l.pooled) {
        const n = l.name.slice(4);
        rows.push({
          layer: `pool${n} ${pool.size}x${pool.size}/${pool.stride}`,
          output: [l.outMap, l.outMap, l.units],
          params: 0,
          flops: 0,
        });
      }
    } else {
      rows.push({
        layer: l.kind === "fc" ? `${l.name} ${layerName(l)}` : `softmax ${l.units}`,
        output: [l.units],
        params: weights + l.units,
        flops: 2 * weights,
      });
    }
  }
  return rows;
}

/** A layer as the network's name writes it: `64c5`, `128f`. */
export function layerName(l: Pick<NetLayer, "kind" | "units" | "kernel">): string {
  return l.kind === "conv" ? `${l.units}c${l.kernel}` : `${l.units}f`;
}

/**
 * About how many bytes one training step of `batch` samples takes in one engine: the weights, their momenta and
 * gradients (and TensorFlow.js's copies of them), and every layer's output, kept for the backward pass with its
 * gradient and the temporaries around them, per sample.
 */
export function trainingMemory(name: string, classes: number, batch: number, method: MethodName = "paper"): number {
  const rows = netSummary(name, classes, method);
  const params = rows.reduce((a, r) => a + r.params, 0);
  const outputs = rows.reduce((a, r) => a + r.output.reduce((x, y) => x * y, 1), PATCH_FLOATS);
  return 4 * (PARAM_COPIES * params + OUTPUT_COPIES * batch * outputs) + BASE_BYTES;
}

/** Floats of one 32x32 RGB training input. */
const PATCH_FLOATS = 32 * 32 * 3;
/** Copies of the parameters one engine holds (measured on the wasm backend: see trainingMemory's test). */
const PARAM_COPIES = 7;
/**
 * Copies of each layer's output a training step holds at once, per sample (measured likewise: about 3.1-3.6 in the
 * wasm heap for the small and medium networks at batch 96-256).
 */
const OUTPUT_COPIES = 4;
/** What an engine takes before any network: the wasm heap's first 16 MiB. */
const BASE_BYTES = 16 * 2 ** 20;

/** Forward FLOPs per sample, without (and with) the softmax layer. */
export function netFlops(rows: SummaryRow[]): { withoutSoftmax: number; total: number } {
  const total = rows.reduce((a, r) => a + r.flops, 0);
  return { withoutSoftmax: total - rows[rows.length - 1].flops, total };
}

/**
 * What the engines of lib/compute/engine.ts need to build network `net` (with N = `classes` and the seeded initial
 * weights of `method`) in this thread and in each of their workers.
 */
export function netSpec(s: { net: string; classes: number; method: MethodName; seed: number }): NetSpec {
  return { builder: import.meta.url, net: s.net, classes: s.classes, method: s.method, seed: s.seed, inputSize: PATCH };
}

/** Builds the network of a {@link netSpec} (the engines call it, in this module, by the spec's `builder`). */
export function buildNet(spec: NetSpec): ExemplarNet {
  return new ExemplarNet(spec.net, spec.classes, {
    method: methodNamed(spec.method).name,
    seed: spec.seed,
    inputSize: spec.inputSize,
  });
}
provideNetBuilder(import.meta.url, buildNet);
