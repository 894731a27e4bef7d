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
import { benchNets } from "./nets_bench.ts";

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
  await benchNets(nets, backend, seconds);
}

if (import.meta.main) runTask(main);
