/**
 * The GPU check: `deno run -A bench/gpu.ts [--nets small,medium,large] [--seconds S] [--backend webgpu|tensorflow-gpu]`
 *
 * Prints, as JSON lines: the GPU (WebGPU adapter information, and `nvidia-smi`'s name and driver where it exists);
 * for each network, our training and inference throughput on the GPU backend at batch 128 and 1000 classes; the
 * same network in PyTorch on CUDA (bench/peers/torch_step.py --device cuda) in the same run; and the ratios.
 * `--software-gpu` accepts a software WebGPU adapter (llvmpipe), to try the check on a machine without a GPU.
 *
 * A lent GPU machine has no network: bench/gpu_bundle.sh packs this file into one JavaScript bundle beside a Deno
 * binary and the peer script (bench/README.md, "GPU").
 *
 * @module
 */
import { selectBackend } from "../lib/backend.ts";
import { parseFlags, runTask } from "../lib/cli.ts";
import { UserError } from "../lib/errors.ts";
import { PAPER_NETS } from "../lib/nets.ts";
import { BATCH, benchNet, CLASSES, peer } from "./nets_bench.ts";

async function gpuInfo(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = { bench: "gpu" };
  // deno-lint-ignore no-explicit-any
  const adapter = await (navigator as any).gpu?.requestAdapter({ powerPreference: "high-performance" });
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

async function main(args: string[]): Promise<void> {
  const usage =
    "deno run -A bench/gpu.ts [--nets small,medium,large] [--seconds S] [--backend webgpu|tensorflow-gpu] [--software-gpu]";
  const { values } = parseFlags(args, {
    nets: { type: "string" },
    seconds: { type: "string" },
    backend: { type: "string" },
    "software-gpu": { type: "boolean" },
  }, usage);
  const seconds = Number(values.seconds ?? 6);
  if (!(seconds > 0)) throw new UserError(`--seconds ${values.seconds}: expected a positive number`);
  const backendName = (values.backend as string | undefined) ?? "webgpu";
  if (backendName !== "webgpu" && backendName !== "tensorflow-gpu") {
    throw new UserError(`--backend ${backendName}: expected webgpu or tensorflow-gpu`);
  }
  console.log(JSON.stringify(await gpuInfo()));
  const backend = await selectBackend(backendName, { softwareGpu: !!values["software-gpu"] });
  console.log(JSON.stringify({ backend: backend.name, detail: backend.detail }));
  const nets = ((values.nets as string | undefined) ?? "small,medium,large").split(",").map((n) =>
    (PAPER_NETS as Record<string, string>)[n] ?? n
  );
  for (const name of nets) {
    const r = await benchNet(name, seconds, 1);
    const ours = {
      net: name,
      backend: backend.name,
      batch: BATCH,
      classes: CLASSES,
      train_samples_per_s: Number(r.train.toFixed(1)),
      infer_samples_per_s: Number(r.infer.toFixed(1)),
      gflops: Number((3 * r.flops * r.train / 1e9).toFixed(2)),
    };
    console.log(JSON.stringify(ours));
    const p = await peer(name, seconds, "cuda");
    if (!p) {
      console.log(JSON.stringify({ net: name, peer: "pytorch", skipped: "torch cannot run on CUDA here" }));
      continue;
    }
    console.log(JSON.stringify({ ...p, net: name }));
    console.log(JSON.stringify({
      net: name,
      backend: backend.name,
      vs: "pytorch-cuda",
      train_ratio: Number((ours.train_samples_per_s / p.train_samples_per_s).toFixed(3)),
      infer_ratio: Number((ours.infer_samples_per_s / p.infer_samples_per_s).toFixed(3)),
    }));
  }
}

if (import.meta.main) runTask(main);
