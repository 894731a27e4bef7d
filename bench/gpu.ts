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
 * `--no-peer` (no PyTorch rows), `--latency` (what a step of the first network costs outside the kernels,
 * bench/gpu_latency.ts), `--trace` (each network's step split into the WebGPU calls it makes and the JavaScript between
 * them, bench/gpu_trace.ts). `EXEMPLAR_WEBGPU_KERNELS` (off, or kernel names) picks the WebGPU kernels.
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
import { SurrogateData } from "../lib/surrogate.ts";

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
    "[--latency] [--trace]";
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
    latency: { type: "boolean" },
    trace: { type: "boolean" },
  }, usage);
  const seconds = Number(values.seconds ?? 6);
  if (!(seconds > 0)) throw new UserError(`--seconds ${values.seconds}: expected a positive number`);
  const backendName = (values.backend as string | undefined) ?? "webgpu";
  if (backendName !== "webgpu" && backendName !== "tensorflow-gpu") {
    throw new UserError(`--backend ${backendName}: expected webgpu or tensorflow-gpu`);
  }
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
  if (!values["skip-bench"]) await benchNets(nets, backend, seconds, { peer: !values["no-peer"] });
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
  if (values.trace) { for (const net of nets) console.log(JSON.stringify({ trace: await trace(net) })); }
  if (workers.length) await benchSurrogate(workers, seconds);
}

if (import.meta.main) runTask(main);
