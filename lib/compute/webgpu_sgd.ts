/**
 * Caffe's SGD update on the GPU, in place: one WGSL pass per parameter computes
 * v = momentum v + rate (scale g + decay w); w -= v over the parameter's buffers as TensorFlow.js's WebGPU backend
 * holds them, where TensorFlow.js arithmetic would take seven passes and two new buffers per parameter.
 *
 * The pass is submitted to the device queue after everything TensorFlow.js has recorded so far, so it sees the
 * gradient of the step just computed and the next step sees its result. The tensors' values must not be cached
 * on the CPU (a read of the tensor itself caches them): {@link DeviceEngine} reads copies.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { flushTfjs, tensorBuffer, type WebGPUBackendInternals as WebGPUBackend } from "./tfjs_internals.ts";

/** One parameter's update: its weights, momentum and gradient tensors, and the numbers of the formula. */
export interface SgdItem {
  w: tf.TensorInfo;
  v: tf.TensorInfo;
  g: tf.TensorInfo;
  /** lr x lr_mult */
  rate: number;
  /** weight_decay x decay_mult */
  decay: number;
  momentum: number;
  /** 1 / batch: the gradient is that of the summed loss */
  scale: number;
}

const WGSL = `
struct Hyper { rate: f32, decay: f32, momentum: f32, scale: f32, size: u32, rowStride: u32 };
@group(0) @binding(0) var<storage, read_write> w: array<f32>;
@group(0) @binding(1) var<storage, read_write> v: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<uniform> h: Hyper;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.y * h.rowStride + id.x;
  if (i >= h.size) { return; }
  let vi = h.momentum * v[i] + h.rate * (h.scale * g[i] + h.decay * w[i]);
  v[i] = vi;
  w[i] = w[i] - vi;
}
`;

/** Workgroups per row of the dispatch grid (WebGPU allows 65,535 per dimension). */
const ROW = 4096;

/** The in-place SGD pass on a TensorFlow.js WebGPU backend. */
export class DeviceSgd {
  #backend: WebGPUBackend;
  #device: GPUDevice;
  #pipeline: GPUComputePipeline;
  #uniforms: GPUBuffer[] = [];

  constructor(backend: WebGPUBackend) {
    this.#backend = backend;
    this.#device = backend.device;
    this.#pipeline = this.#device.createComputePipeline({
      layout: "auto",
      compute: { module: this.#device.createShaderModule({ code: WGSL }), entryPoint: "main" },
    });
  }

  /** Updates every item's weights and momentum in place. */
  run(items: SgdItem[]): void {
    const device = this.#device, backend = this.#backend;
    const bindings = items.map((it) => [it.w, it.v, it.g].map((t) => tensorBuffer(backend, t)));
    // What TensorFlow.js has recorded (the step's gradient) goes to the queue first.
    flushTfjs(backend);
    while (this.#uniforms.length < items.length) {
      this.#uniforms.push(device.createBuffer({ size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST }));
    }
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(this.#pipeline);
    items.forEach((it, i) => {
      const size = it.w.shape.reduce((a, b) => a * b, 1);
      const groups = Math.ceil(size / 256);
      const h = new ArrayBuffer(32), f = new Float32Array(h), u = new Uint32Array(h);
      f.set([it.rate, it.decay, it.momentum, it.scale]);
      u.set([size, ROW * 256], 4);
      device.queue.writeBuffer(this.#uniforms[i], 0, h);
      const [w, v, g] = bindings[i];
      pass.setBindGroup(
        0,
        device.createBindGroup({
          layout: this.#pipeline.getBindGroupLayout(0),
          entries: [
            { binding: 0, resource: { buffer: w } },
            { binding: 1, resource: { buffer: v } },
            { binding: 2, resource: { buffer: g } },
            { binding: 3, resource: { buffer: this.#uniforms[i] } },
          ],
        }),
      );
      pass.dispatchWorkgroups(Math.min(groups, ROW), Math.ceil(groups / ROW));
    });
    pass.end();
    device.queue.submit([encoder.finish()]);
  }
}
