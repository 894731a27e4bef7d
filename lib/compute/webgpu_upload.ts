/**
 * Uploads to the GPU through `queue.writeBuffer`, in place of TensorFlow.js's mapped staging buffers.
 *
 * Why: TensorFlow.js 4.22's WebGPU backend moves a tensor's values to the GPU by creating a buffer mapped at
 * creation, filling it through `getMappedRange()` and copying it over. Under Deno 2.9 on an NVIDIA H200 each
 * `getMappedRange()` took about 10 ms, whatever its size: a training step makes six uploads (the batch, its labels,
 * small constants), so 60-70 ms of every step went there, against 6.5 ms of kernel time for the small network
 * (`bench/gpu.ts --trace`, bench/README.md "GPU"). `queue.writeBuffer` copies the values into the driver's own staging
 * memory in one call (about 0.05 ms for a small write there) and is ordered before every command submitted after it,
 * which is what an upload needs: the buffer comes from TensorFlow.js's pool, where no recorded, unsubmitted command
 * still uses it (the backend releases a buffer used in its open command encoder only after submitting it).
 *
 * `EXEMPLAR_WEBGPU_UPLOAD=mapped` keeps TensorFlow.js's own path (to compare them).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { WebGPUBackendInternals as WebGPUBackend } from "./tfjs_internals.ts";

/** Bytes per element on the GPU for the dtypes handled here (TensorFlow.js keeps bool as int32 there). */
const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 4 };

/** TensorFlow.js's own upload of each backend whose upload was replaced. */
const OWN = new WeakMap<WebGPUBackend, (dataId: object) => void>();

/**
 * Replaces `backend.uploadToGPU` with a `queue.writeBuffer` upload for float32, int32 and bool tensors (`on`), or
 * puts TensorFlow.js's own back (`on` false). Calling it again is harmless.
 */
export function installWriteBufferUpload(backend: WebGPUBackend, on = true): void {
  if (!OWN.has(backend)) OWN.set(backend, backend.uploadToGPU.bind(backend));
  const own = OWN.get(backend)!;
  if (!on) {
    backend.uploadToGPU = own;
    return;
  }
  backend.uploadToGPU = function (dataId: object): void {
    const data = backend.tensorMap.get(dataId);
    if (data.resource != null || !data.values || !(data.dtype in BYTES)) return own(dataId);
    const size = BYTES[data.dtype] * tf.util.sizeFromShape(data.shape);
    if (size === 0) return own(dataId);
    const values: Float32Array | Int32Array = data.dtype === "float32"
      ? (data.values instanceof Float32Array ? data.values : Float32Array.from(data.values))
      : (data.values instanceof Int32Array ? data.values : Int32Array.from(data.values));
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const buffer: GPUBuffer = backend.bufferManager.acquireBuffer(size, usage);
    backend.queue.writeBuffer(buffer, 0, values.buffer as ArrayBuffer, values.byteOffset, size);
    data.values = null; // once uploaded, the values live on the GPU only (as TensorFlow.js's own upload does)
    data.resource = buffer;
  };
}
