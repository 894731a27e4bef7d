/**
 * Backends: where the tensor arithmetic runs (bench/README.md, "Backends").
 *
 * TensorFlow.js is chosen at start-up, best first:
 * `@tensorflow/tfjs-node-gpu` (CUDA) -> `@tensorflow/tfjs-node` (native CPU) ->
 * WebGPU (Deno's `navigator.gpu`, only a real, non-fallback adapter) -> `wasm`
 * -> `cpu`. `--backend NAME` forces one. The native packages are optional
 * imports: where they cannot be installed (their install script downloads
 * libtensorflow from outside the npm registry) the chain skips them.
 *
 * Selecting `wasm` installs the project's kernels for it (lib/compute/wasm_kernels.ts), selecting `webgpu` its
 * uploads and WGSL kernels (lib/compute/webgpu_upload.ts, lib/compute/webgpu_kernels.ts). Both first check that the
 * backend's private members those use are all there (lib/compute/tfjs_internals.ts).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { UserError } from "../util/errors.ts";
import { openBlas } from "./blas.ts";
import { DEFAULT_WEBGPU_KERNELS, installWebGPUKernels } from "./webgpu_kernels.ts";
import { installWriteBufferUpload } from "./webgpu_upload.ts";
import { wasmInternalsProblem, webgpuInternals, webgpuInternalsProblem } from "./tfjs_internals.ts";
import { installWasmKernels } from "./wasm_kernels.ts";
import { webgpuStepMode } from "./webgpu_step.ts";

/** Backend names accepted by `--backend`. */
export const BACKENDS = ["tensorflow-gpu", "tensorflow", "webgpu", "wasm", "cpu"] as const;
/** The name of a backend. */
export type BackendName = typeof BACKENDS[number];

/** What was chosen, for every run's config. */
export interface BackendInfo {
  /** The backend in use. */
  name: BackendName;
  /** TensorFlow.js's own name for it. */
  tfBackend: string;
  /** What it runs on (threads, SIMD, adapter), in words. */
  detail: string;
  /** Why better backends were skipped. */
  skipped: string[];
}

let wasmReady = false;

async function tryWasm(): Promise<string | null> {
  const dir = new URL("../../node_modules/@tensorflow/tfjs-backend-wasm/dist/", import.meta.url);
  try {
    Deno.statSync(new URL("tfjs-backend-wasm-simd.wasm", dir));
  } catch {
    return `the wasm binaries are not in ${dir.pathname} (run deno install)`;
  }
  if (!wasmReady) {
    setWasmPaths(dir.href);
    wasmReady = true;
  }
  // setBackend answers false (and TensorFlow.js silently stays on cpu) when the .wasm file cannot be read.
  if (!(await tf.setBackend("wasm"))) return "the wasm backend failed to start";
  // The backend's private members the project's kernels use (lib/compute/tfjs_internals.ts) must all be there.
  const internals = wasmInternalsProblem(tf.backend());
  if (internals) return internals;
  installWasmKernels(openBlas().blas);
  return null;
}

/**
 * Deno's WebGPU adapter (null where there is none), asked for the high-performance one. Mesa's Vulkan drivers print
 * "XDG_RUNTIME_DIR is invalid or not set" to stderr while an adapter is requested on a machine without a desktop
 * session; that variable then points at a private temporary folder, so that a task's stderr keeps to its own lines.
 */
// deno-lint-ignore no-explicit-any
export async function requestGpuAdapter(): Promise<any> {
  // deno-lint-ignore no-explicit-any
  const gpu = (navigator as any).gpu;
  if (!gpu) return null;
  try {
    if (!Deno.env.get("XDG_RUNTIME_DIR")) {
      const dir = Deno.makeTempDirSync({ prefix: "exemplar-xdg-" });
      Deno.env.set("XDG_RUNTIME_DIR", dir);
      globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    }
  } catch { /* without the permissions for it, the driver's lines stay: harmless */ }
  return await gpu.requestAdapter({ powerPreference: "high-performance" });
}

/** The WebGPU adapter's description (and whether it is a software fallback), for every run's config. */
let webgpuAdapter = "";
/** The project's WebGPU kernels in use. */
let webgpuKernels: string[] = [];
/** How tensors go to the GPU: `writeBuffer` (the project's) or `mapped` (TensorFlow.js's own staging buffers). */
let webgpuUpload = "writeBuffer";

async function tryWebGPU(opts: SelectOptions = {}): Promise<string | null> {
  if (!("gpu" in navigator)) return "navigator.gpu is not available";
  const adapter = await requestGpuAdapter();
  if (!adapter) return "no WebGPU adapter";
  const info = adapter.info ?? {};
  webgpuAdapter = `${info.description || info.device || "unnamed"} (vendor ${info.vendor}${
    info.isFallbackAdapter ? ", software fallback" : ""
  })`;
  const software = opts.softwareGpu ?? Deno.env.get("EXEMPLAR_SOFTWARE_GPU") === "1";
  if ((adapter.info?.isFallbackAdapter || adapter.isFallbackAdapter) && !software) {
    return "only a software (fallback) WebGPU adapter";
  }
  try {
    await import("@tensorflow/tfjs-backend-webgpu");
  } catch (e) {
    return `@tensorflow/tfjs-backend-webgpu is not installed (${(e as Error).message.split("\n")[0]})`;
  }
  if (!(await tf.setBackend("webgpu"))) return "the webgpu backend failed to start";
  // The backend's private members the project uses (lib/compute/tfjs_internals.ts) must all be there.
  const internals = webgpuInternalsProblem(tf.backend());
  if (internals) return internals;
  // Uploads through queue.writeBuffer (lib/compute/webgpu_upload.ts); EXEMPLAR_WEBGPU_UPLOAD=mapped keeps
  // TensorFlow.js's own.
  webgpuUpload = Deno.env.get("EXEMPLAR_WEBGPU_UPLOAD") === "mapped" ? "mapped" : "writeBuffer";
  installWriteBufferUpload(webgpuInternals(), webgpuUpload === "writeBuffer");
  // The project's kernels (lib/compute/webgpu_kernels.ts): by default those that measured faster than TensorFlow.js's own
  // on a real GPU (bench/README.md, "GPU"); EXEMPLAR_WEBGPU_KERNELS=all installs all of them, =off none, and a
  // comma-separated list of kernel names those.
  const env = Deno.env.get("EXEMPLAR_WEBGPU_KERNELS") ?? "default";
  const which = env === "default"
    ? DEFAULT_WEBGPU_KERNELS
    : env === "all"
    ? true
    : env === "off"
    ? false
    : env.split(",");
  try {
    webgpuKernels = installWebGPUKernels(which);
  } catch (e) {
    throw new UserError(`EXEMPLAR_WEBGPU_KERNELS=${env}: ${(e as Error).message}`);
  }
  return null;
}

async function tryNative(pkg: string, tfName: string): Promise<string | null> {
  try {
    // Optional: absent wherever libtensorflow could not be downloaded at install time.
    await import(pkg);
  } catch (e) {
    return `${pkg} is not installed (${(e as Error).message.split("\n")[0]})`;
  }
  if (!(await tf.setBackend(tfName))) return `${pkg} failed to start`;
  return null;
}

/** Options of {@link selectBackend}. */
export interface SelectOptions {
  /**
   * Accept a software (fallback) WebGPU adapter such as llvmpipe: for testing the WebGPU path
   * on a machine without a GPU; the chain never picks one by itself. Default: the environment variable
   * `EXEMPLAR_SOFTWARE_GPU=1` (so that a task can be tried on one from the command line).
   */
  softwareGpu?: boolean;
}

const TRIES: Record<
  BackendName,
  { tf: string; detail: string; start: (opts?: SelectOptions) => Promise<string | null> }
> = {
  "tensorflow-gpu": {
    tf: "tensorflow",
    detail: "@tensorflow/tfjs-node-gpu (libtensorflow, CUDA)",
    start: () => tryNative("@tensorflow/tfjs-node-gpu", "tensorflow"),
  },
  tensorflow: {
    tf: "tensorflow",
    detail: "@tensorflow/tfjs-node (libtensorflow, CPU)",
    start: () => tryNative("@tensorflow/tfjs-node", "tensorflow"),
  },
  webgpu: { tf: "webgpu", detail: "WebGPU through Deno's navigator.gpu", start: tryWebGPU },
  wasm: {
    tf: "wasm",
    detail: "WebAssembly SIMD with XNNPACK, with the project's convolution gradients",
    start: tryWasm,
  },
  cpu: {
    tf: "cpu",
    detail: "plain JavaScript (a numerical reference; very slow)",
    start: async () => (await tf.setBackend("cpu")) ? null : "cpu failed",
  },
};

/**
 * Selects the backend: `name` forces one (failing with a clear message if it
 * cannot start); otherwise the first of the chain that starts.
 */
export async function selectBackend(name?: string, opts: SelectOptions = {}): Promise<BackendInfo> {
  if (name !== undefined && !(BACKENDS as readonly string[]).includes(name)) {
    throw new UserError(`--backend ${name}: unknown backend (expected one of: ${BACKENDS.join(", ")})`);
  }
  const chain = name ? [name as BackendName] : [...BACKENDS];
  const skipped: string[] = [];
  for (const b of chain) {
    const why = await TRIES[b].start(opts);
    if (why === null) {
      await tf.ready();
      let detail = TRIES[b].detail;
      if (b === "wasm") {
        const { blas, why } = openBlas();
        detail += blas
          ? `; convolutions and matrix products on ${blas.path} (${blas.config})`
          : `; convolutions on XNNPACK (${why})`;
      }
      if (b === "webgpu") {
        detail += `; adapter: ${webgpuAdapter}`;
        detail += webgpuKernels.length
          ? `; the project's WGSL kernels for ${webgpuKernels.join(", ")}`
          : "; TensorFlow.js's own WebGPU kernels (EXEMPLAR_WEBGPU_KERNELS=off)";
        if (webgpuUpload === "mapped") detail += "; TensorFlow.js's mapped uploads (EXEMPLAR_WEBGPU_UPLOAD=mapped)";
        detail += `; training step: ${webgpuStepMode()} (lib/compute/webgpu_step.ts, EXEMPLAR_WEBGPU_STEP)`;
      }
      return { name: b, tfBackend: tf.getBackend(), detail, skipped };
    }
    if (name) throw new UserError(`--backend ${name}: ${why}`);
    skipped.push(`${b}: ${why}`);
  }
  throw new UserError(`no backend could start: ${skipped.join("; ")}`);
}

export { tf };
