/**
 * The update of every SGD step (paper §4, §5.1; PAPER.md "Training"): Caffe's momentum SGD, as the release trains
 * with it, for each parameter with its two multipliers:
 *
 *     v = momentum v + lr lr_mult (g + weight_decay decay_mult w)
 *     w = w - v
 *
 * where g is the gradient of the batch's mean loss. Momentum 0.9 and weight decay 0.004 are the paper's and the
 * release's; the multipliers are the release's (learning rate: 2 for biases, 0.25 for the softmax layer's weights;
 * weight decay: conv1 0, conv2 0, conv3 0.25, the FC layer 1, the softmax layer 4; lib/presets.ts). The same rule is
 * written three times, for where the weights live: flat arrays on the CPU ({@link sgdUpdate}), TensorFlow.js
 * variables on a device ({@link sgdUpdateTensors}), and one WGSL pass on WebGPU (lib/compute/webgpu_sgd.ts); tests
 * hold them equal.
 *
 * @module
 */
import { tf } from "./backend.ts";

/** The hyperparameters of Caffe's SGD that do not change during a run. */
export interface SgdHyper {
  /** Momentum (0.9). */
  momentum: number;
  /** Weight decay (0.004), times each parameter's multiplier. */
  weightDecay: number;
}

/** A parameter's place in the flat weight vector, with its multipliers. */
export interface ParamSlot {
  /** The parameter (`conv1.w`). */
  name: string;
  /** Its shape. */
  shape: number[];
  /** Where it starts in the flat vector. */
  offset: number;
  /** How many numbers it has. */
  size: number;
  /** Its learning-rate multiplier. */
  lrMult: number;
  /** Its weight-decay multiplier. */
  decayMult: number;
}

/**
 * The update on flat arrays (W weights, V momenta, G the mean gradient), slot by slot. Returns the largest absolute
 * weight after it, NaN when some weight is not a finite number (a run that diverged).
 */
export function sgdUpdate(
  slots: ParamSlot[],
  W: Float32Array,
  V: Float32Array,
  G: Float32Array,
  lr: number,
  hp: SgdHyper,
): number {
  let max = 0, notNumber = false;
  for (const s of slots) {
    const rate = lr * s.lrMult, decay = hp.weightDecay * s.decayMult, end = s.offset + s.size, m = hp.momentum;
    for (let i = s.offset; i < end; i++) {
      V[i] = m * V[i] + rate * (G[i] + decay * W[i]);
      const a = Math.abs(W[i] -= V[i]);
      // (No running sum here: a chain of additions made this loop five times slower. NaN fails every comparison.)
      if (a > max) max = a;
      else if (a !== a) notNumber = true;
    }
  }
  return notNumber || !Number.isFinite(max) ? NaN : max;
}

/**
 * The update on TensorFlow.js variables (on a device), `grads` the gradients of the batch's summed loss over `n`
 * samples.
 */
export function sgdUpdateTensors(
  params: { v: tf.Variable; lrMult: number; decayMult: number }[],
  momenta: tf.Variable[],
  grads: tf.Tensor[],
  n: number,
  lr: number,
  hp: SgdHyper,
): void {
  tf.tidy(() => {
    params.forEach((p, i) => {
      const v = momenta[i].mul(hp.momentum).add(
        grads[i].mul(1 / n).add(p.v.mul(hp.weightDecay * p.decayMult)).mul(lr * p.lrMult),
      );
      momenta[i].assign(v);
      p.v.assign(p.v.sub(v));
    });
  });
}
