/**
 * What a run was made with, recorded in its config.json so that a colleague can tell how to make it again: the
 * project's git revision (and whether the working tree had uncommitted changes), Deno, TensorFlow.js, the backend
 * with its kernels, and the machine's CPU (the GPU, where one is used, is in the backend's detail).
 *
 * @module
 */
import { tf } from "./compute/backend.ts";
import type { BackendInfo } from "./compute/backend.ts";
import { PROJECT_ROOT } from "./util/fsutil.ts";

/** A run's environment. */
export interface RunEnvironment {
  /** The project's git revision, and whether tracked files had uncommitted changes; null outside a git checkout. */
  git: { revision: string; dirty: boolean } | null;
  deno: string;
  v8: string;
  tfjs: string;
  /** The backend and what it runs on (threads, SIMD, OpenBLAS or WebGPU adapter). */
  backend: BackendInfo;
  cpu: { model: string | null; cores: number };
  os: string;
}

async function gitOutput(args: string[]): Promise<string | null> {
  try {
    const r = await new Deno.Command("git", { args, cwd: PROJECT_ROOT, stdout: "piped", stderr: "null" }).output();
    return r.success ? new TextDecoder().decode(r.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** The environment of a run on `backend`. */
export async function runEnvironment(backend: BackendInfo): Promise<RunEnvironment> {
  const revision = await gitOutput(["rev-parse", "HEAD"]);
  const status = revision ? await gitOutput(["status", "--porcelain", "--untracked-files=no"]) : null;
  let model: string | null = null;
  try {
    model = /^model name\s*:\s*(.+)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? null;
  } catch { /* not Linux */ }
  return {
    git: revision ? { revision, dirty: (status ?? "") !== "" } : null,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    tfjs: (tf.version as Record<string, string>)["tfjs-core"] ?? "unknown",
    backend,
    cpu: { model, cores: navigator.hardwareConcurrency },
    os: `${Deno.build.os} ${Deno.build.arch}`,
  };
}
