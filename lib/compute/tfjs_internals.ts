/**
 * The members of TensorFlow.js's backends that the project reaches beyond their public API, in one typed place.
 *
 * WebGPU: the project's WGSL kernels (lib/compute/webgpu_kernels.ts), its uploads (lib/compute/webgpu_upload.ts), its
 * SGD pass (lib/compute/webgpu_sgd.ts) and its own training step (lib/compute/webgpu_step.ts) work on the backend's
 * GPU device, its tensors' buffers and its command encoder: private fields of `WebGPUBackend` in
 * `@tensorflow/tfjs-backend-webgpu` ({@link WebGPUBackendInternals}).
 *
 * wasm: the project's kernels (lib/compute/wasm_kernels.ts) read and write tensors in place in the WebAssembly heap
 * and allocate their outputs there, and the engine (lib/compute/engine.ts) writes weights into it: members of
 * `BackendWasm` in `@tensorflow/tfjs-backend-wasm` that TensorFlow.js's own kernels use and its public API does not
 * offer ({@link WasmBackendInternals}).
 *
 * Those members may change with any release, so the project pins the releases in deno.json, and when a backend is
 * selected (lib/compute/backend.ts) {@link webgpuInternalsProblem} or {@link wasmInternalsProblem} checks that every
 * member named here is still there: a version that lacks one is refused with one line naming the pinned version,
 * rather than failing in the middle of a run.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import config from "../../deno.json" with { type: "json" };

/** What the backend keeps for a tensor: its values on the CPU or its buffer on the GPU (one of them), and more. */
export interface TensorData {
  /** The GPU buffer that holds the values, once uploaded. */
  resource: GPUBuffer | null;
  /** The values, while they are on the CPU only. */
  values: ArrayLike<number> | null;
  dtype: string;
  shape: number[];
  refCount: number;
}

/** A program the backend compiles and dispatches (TensorFlow.js's `WebGPUProgram`, as this project writes them). */
export interface WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  getUserCode(): string;
}

/** The private members of TensorFlow.js's `WebGPUBackend` that this project uses. */
export interface WebGPUBackendInternals extends tf.KernelBackend {
  /** The GPU device every buffer and pipeline belongs to. */
  device: GPUDevice;
  /** Its queue. */
  queue: GPUQueue;
  /** Every tensor's data, by its data id. */
  tensorMap: { get(dataId: object): TensorData };
  /** The pool of GPU buffers tensors take their storage from. */
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer };
  /** The command encoder that holds recorded, unsubmitted work (null when there is none). */
  commandEncoder: GPUCommandEncoder | null;
  /** Ends the open compute pass, if any. */
  endComputePassEncoder(): void;
  /** Submits the recorded work and releases what waited for it. */
  submitQueue(): void;
  /** Moves a tensor's values to a GPU buffer (replaced by lib/compute/webgpu_upload.ts). */
  uploadToGPU(dataId: object): void;
  /** Compiles (once) and records a program on `inputs`; returns its output. */
  runWebGPUProgram(program: WebGPUProgram, inputs: tf.TensorInfo[], dtype: tf.DataType): tf.TensorInfo;
}

/** A member, as a path from the backend, and what it must be (a field: present, whatever its value). */
type Member = [path: string, kind: "object" | "function" | "field"];

/** The members of {@link WebGPUBackendInternals}. */
const WEBGPU_MEMBERS: Member[] = [
  ["device", "object"],
  ["queue", "object"],
  ["tensorMap.get", "function"],
  ["bufferManager.acquireBuffer", "function"],
  ["commandEncoder", "field"],
  ["endComputePassEncoder", "function"],
  ["submitQueue", "function"],
  ["uploadToGPU", "function"],
  ["runWebGPUProgram", "function"],
];

/** The members of `members` that `backend` lacks. */
function missingMembers(backend: object, members: Member[]): string[] {
  return members.filter(([path, kind]) => {
    let owner: unknown = backend, value: unknown = backend;
    const parts = path.split(".");
    for (const part of parts) {
      owner = value;
      value = value != null && typeof value === "object" ? (value as Record<string, unknown>)[part] : undefined;
    }
    if (kind === "field") return owner == null || !(parts.at(-1)! in (owner as object));
    return kind === "function" ? typeof value !== "function" : value == null || typeof value !== "object";
  }).map(([path]) => path);
}

/** The version of `pkg` that deno.json pins. */
function pinnedVersion(pkg: string): string {
  const spec = (config.imports as Record<string, string>)[pkg] ?? "";
  return spec.split("@").at(-1) ?? spec;
}

/** One line on what `backend` lacks of `members` (null: nothing), naming the release of `pkg` the project pins. */
function internalsProblem(backend: object, members: Member[], what: string, pkg: string): string | null {
  const missing = missingMembers(backend, members);
  if (!missing.length) return null;
  return `TensorFlow.js ${tf.version_core}'s ${what} backend lacks ${missing.join(", ")}, which the project uses ` +
    `(lib/compute/tfjs_internals.ts); it is written for ${pkg} ${pinnedVersion(pkg)}, as deno.json pins it`;
}

/** The members of {@link WebGPUBackendInternals} that `backend` lacks (none: it is TensorFlow.js's, as pinned). */
export function missingWebGPUInternals(backend: object): string[] {
  return missingMembers(backend, WEBGPU_MEMBERS);
}

/** The `@tensorflow/tfjs-backend-webgpu` version deno.json pins. */
export function pinnedWebGPUVersion(): string {
  return pinnedVersion("@tensorflow/tfjs-backend-webgpu");
}

/**
 * Why `backend` cannot serve as the project's WebGPU backend, in one line (null: it can): the members it lacks and
 * the TensorFlow.js version the project is pinned to.
 */
export function webgpuInternalsProblem(backend: object): string | null {
  return internalsProblem(backend, WEBGPU_MEMBERS, "WebGPU", "@tensorflow/tfjs-backend-webgpu");
}

/** The current (or given) backend as TensorFlow.js's WebGPU backend, its private members typed. */
export function webgpuInternals(backend: tf.KernelBackend = tf.backend()): WebGPUBackendInternals {
  const problem = webgpuInternalsProblem(backend);
  if (problem) throw new Error(problem);
  return backend as WebGPUBackendInternals;
}

/** Ends TensorFlow.js's open pass and submits what it has recorded, so that work submitted next runs after it. */
export function flushTfjs(backend: WebGPUBackendInternals): void {
  if (backend.commandEncoder) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
}

/** The GPU buffer that holds a tensor's values (uploading them first where they are still on the CPU). */
export function tensorBuffer(backend: WebGPUBackendInternals, t: tf.TensorInfo): GPUBuffer {
  backend.uploadToGPU(t.dataId);
  const resource = backend.tensorMap.get(t.dataId).resource;
  if (!resource) throw new Error("a tensor has no GPU buffer after its upload");
  return resource;
}

/** The members of TensorFlow.js's wasm backend (`BackendWasm`) beyond `KernelBackend` that this project uses. */
export interface WasmBackendInternals extends tf.KernelBackend {
  /** A tensor's values as a view into the heap (valid until the next allocation moves the heap). */
  typedArrayFromHeap(t: tf.TensorInfo): tf.TypedArray;
  /** Allocates a kernel's output tensor in the heap. */
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  /** How many tensors share a tensor's data (1: the tensor owns its storage). */
  refCount(dataId: object): number;
  /** One more tensor shares a tensor's data (freed when the last of them is disposed). */
  incRef(dataId: object): void;
  /** The WebAssembly module: its heap, as bytes, and its exports (the heap's memory among them). */
  wasm: { HEAPU8: Uint8Array; asm: { memory: WebAssembly.Memory } };
}

/** The members of {@link WasmBackendInternals}. */
const WASM_MEMBERS: Member[] = [
  ["typedArrayFromHeap", "function"],
  ["makeOutput", "function"],
  ["refCount", "function"],
  ["incRef", "function"],
  ["wasm.HEAPU8", "object"],
  ["wasm.asm.memory", "object"],
];

/** The members of {@link WasmBackendInternals} that `backend` lacks (none: it is TensorFlow.js's, as pinned). */
export function missingWasmInternals(backend: object): string[] {
  return missingMembers(backend, WASM_MEMBERS);
}

/** The `@tensorflow/tfjs-backend-wasm` version deno.json pins. */
export function pinnedWasmVersion(): string {
  return pinnedVersion("@tensorflow/tfjs-backend-wasm");
}

/**
 * Why `backend` cannot serve as the project's wasm backend, in one line (null: it can): the members it lacks and
 * the TensorFlow.js version the project is pinned to.
 */
export function wasmInternalsProblem(backend: object): string | null {
  return internalsProblem(backend, WASM_MEMBERS, "wasm", "@tensorflow/tfjs-backend-wasm");
}

/** The current (or given) backend as TensorFlow.js's wasm backend, its members beyond `KernelBackend` typed. */
export function wasmInternals(backend: tf.KernelBackend = tf.backend()): WasmBackendInternals {
  const problem = wasmInternalsProblem(backend);
  if (problem) throw new Error(problem);
  return backend as WasmBackendInternals;
}
