/**
 * The GPU check: `deno run -A bench/gpu.ts [--nets small,medium,large] [--seconds S] [--backend webgpu|tensorflow-gpu]`
 *
 * Prints, as JSON lines: the GPU (WebGPU adapter information, and `nvidia-smi`'s name and driver where it exists);
 * for each network, our training and inference throughput on the GPU backend at batch 128 and 1000 classes; the
 * same network in PyTorch on CUDA (bench/peers/torch_step.py --device cuda, fp32 and TF32) in the same run; and the
 * ratios. `--software-gpu` accepts a software WebGPU adapter (llvmpipe), to try the check on a machine without a GPU.
 *
 * Also, on request: `--profile` (each network's training step, kernel by kernel, with WebGPU timestamp queries),
 * `--surrogate 1,4,15` (surrogate patches per second with that many generation workers, against what the GPU
 * consumes), `--tf-flag NAME=VALUE` (a TensorFlow.js flag, repeatable), `--skip-bench` (no throughput rows),
 * `--no-peer` (no PyTorch rows), `--peer-only` (only the PyTorch rows), `--latency` (what a step of the first network
 * costs outside the kernels, bench/gpu_latency.ts), `--trace` (each network's step split into the WebGPU calls it
 * makes and the JavaScript between them, bench/gpu_trace.ts: `--trace-steps` steps, 100 by default, the sums read
 * every `--trace-read-every`, 100 by default), `--deferred-reads` (the sums read every 10 steps are awaited at the
 * next read, so that steps are submitted while a read is under way). `EXEMPLAR_WEBGPU_STEP` (project, project-gemm1, tfjs) picks the
 * training step (lib/compute/webgpu_step.ts), `EXEMPLAR_WEBGPU_KERNELS` (off, or kernel names) TensorFlow.js's
 * WebGPU kernels under the `tfjs` step.
 *
 * A lent GPU machine has no network: bench/gpu_bundle.sh packs this file into one JavaScript bundle beside a Deno
 * binary and the peer script (bench/README.md, "GPU").
 *
 * @module
 */
import { requestGpuAdapter, selectBackend } from "../lib/compute/backend.ts";
import { parseFlags, runTask } from "../lib/util/cli.ts";
import { UserError } from "../lib/util/errors.ts";
import { PAPER_NETS } from "../lib/nets.ts";
import { benchNets } from "./nets_bench.ts";
import { benchSeeds, loaderRate } from "./surrogate_bench.ts";
import { latency } from "./gpu_latency.ts";
import { trace } from "./gpu_trace.ts";
import { profileStep } from "./gpu_profile.ts";
import { tf } from "../lib/compute/backend.ts";
import { webgpuStepMode } from "../lib/compute/webgpu_step.ts";
import { SurrogateData } from "../lib/surrogate.ts";

/** An adapter's limits as a plain object (they are getters of GPUSupportedLimits). */
function limitsOf(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k in limits) out[k] = limits[k as keyof GPUSupportedLimits] as number;
  return out;
}

async function gpuInfo(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { bench: "gpu" };
  const adapter = await requestGpuAdapter();
  if (adapter) {
    const i = adapter.info ?? {};
    out.webgpu = {
      vendor: i.vendor,
      architecture: i.architecture,
      device: i.device,
      description: i.description,
      fallback: i.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
      features: [...adapter.features].sort(),
      limits: limitsOf(adapter.limits),
    };
  } else out.webgpu = null;
  try {
    const o = await new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (o.code === 0) out.nvidia_smi = new TextDecoder().decode(o.stdout).trim();
  } catch {
    out.nvidia_smi = null;
  }
  return out;
}

/** Surrogate patches per second (release preset, K = 100) with each count of generation workers. */
async function benchSurrogate(workers: number[], seconds: number): Promise<void> {
  const data = new SurrogateData(await benchSeeds(), { k: 100, seed: 1, method: "release" });
  for (const w of workers) {
    const rate = await loaderRate(data, w, seconds);
    console.log(JSON.stringify({
      bench: "surrogate",
      method: "release",
      workers: w,
      patches_per_s: Math.round(rate),
      cores: navigator.hardwareConcurrency,
    }));
  }
}

async function main(args: string[]): Promise<void> {
  const usage =
    "deno run -A bench/gpu.ts [--nets small,medium,large] [--seconds S] [--backend webgpu|tensorflow-gpu] " +
    "[--software-gpu] [--profile] [--surrogate W,W,...] [--tf-flag NAME=VALUE ...] [--skip-bench] [--no-peer] " +
    "[--peer-only] [--latency] [--trace] [--trace-steps N] [--trace-read-every N] [--deferred-reads]";
  const { values } = parseFlags(args, {
    nets: { type: "string" },
    seconds: { type: "string" },
    backend: { type: "string" },
    "software-gpu": { type: "boolean" },
    profile: { type: "boolean" },
    surrogate: { type: "string" },
    "tf-flag": { type: "string", multiple: true },
    "skip-bench": { type: "boolean" },
    "no-peer": { type: "boolean" },
    "peer-only": { type: "boolean" },
    latency: { type: "boolean" },
    trace: { type: "boolean" },
    "deferred-reads": { type: "boolean" },
    "trace-steps": { type: "string" },
    "trace-read-every": { type: "string" },
  }, usage);
  const seconds = Number(values.seconds ?? 6);
  if (!(seconds > 0)) throw new UserError(`--seconds ${values.seconds}: expected a positive number`);
  const backendName = (values.backend as string | undefined) ?? "webgpu";
  if (backendName !== "webgpu" && backendName !== "tensorflow-gpu") {
    throw new UserError(`--backend ${backendName}: expected webgpu or tensorflow-gpu`);
  }
  const steps = (flag: string, dflt: number) => {
    const v = values[flag as "trace-steps"], n = Number(v ?? dflt);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`--${flag} ${v}: expected a whole number of steps`);
    return n;
  };
  const traceSteps = steps("trace-steps", 100), traceReadEvery = steps("trace-read-every", 100);
  if (values["peer-only"] && values["no-peer"]) throw new UserError("--peer-only and --no-peer: expected one of them");
  const workers = values.surrogate === undefined ? [] : String(values.surrogate).split(",").map(Number);
  if (workers.some((w) => !Number.isInteger(w) || w < 1)) {
    throw new UserError(`--surrogate ${values.surrogate}: expected worker counts such as 1,4,15`);
  }
  console.log(JSON.stringify(await gpuInfo()));
  const backend = await selectBackend(backendName, { softwareGpu: values["software-gpu"] || undefined });
  for (const f of (values["tf-flag"] as unknown as string[] | undefined) ?? []) {
    const [name, value] = f.split("=");
    if (!name || value === undefined) throw new UserError(`--tf-flag ${f}: expected NAME=VALUE`);
    tf.env().set(name, value === "true" ? true : value === "false" ? false : Number(value));
  }
  console.log(JSON.stringify({ backend: backend.name, detail: backend.detail, tf_flags: values["tf-flag"] ?? [] }));
  const nets = ((values.nets as string | undefined) ?? "small,medium,large").split(",").map((n) =>
    (PAPER_NETS as Record<string, string>)[n] ?? n
  );
  // Which training step runs (lib/compute/webgpu_step.ts) and how the bench reads its sums, in every row.
  const extra = backend.name === "webgpu"
    ? { step: webgpuStepMode(), reads: values["deferred-reads"] ? "deferred" : "awaited" }
    : {};
  if (!values["skip-bench"]) {
    await benchNets(nets, backend, seconds, {
      peer: !values["no-peer"],
      ours: !values["peer-only"],
      extra,
      deferredReads: !!values["deferred-reads"],
    });
  }
  if (values.profile) {
    for (const net of nets) {
      const p = await profileStep(net);
      console.log(JSON.stringify({
        profile: net,
        kernel_ms: Number(p.totalMs.toFixed(3)),
        wall_ms: Number(p.wallMs.toFixed(1)),
        top: p.rows.slice(0, 16).map((r) => ({ ...r, ms: Number(r.ms.toFixed(3)) })),
      }));
    }
  }
  if (values.latency) console.log(JSON.stringify({ latency: await latency(nets[0]), net: nets[0] }));
  if (values.trace) {
    for (const net of nets) console.log(JSON.stringify({ trace: await trace(net, traceSteps, traceReadEvery) }));
  }
  if (workers.length) await benchSurrogate(workers, seconds);
}

if (import.meta.main) runTask(main);
