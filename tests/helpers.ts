/** Helpers shared by the tests: running tasks as a user would, temporary folders. */
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url)).replace(/\/$/, "");
/** Real photographs in Caltech-101's layout, inside the repository (tests/fixtures/caltech101-tiny/README.md). */
export const CALTECH_TINY = `${ROOT}/tests/fixtures/caltech101-tiny`;

/** Runs `deno run -A tasks/NAME.ts ARGS...` and returns its exit code and output. */
export async function task(
  name: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/tasks/${name}.ts`, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A fresh temporary folder, removed by the returned function. */
export async function tempDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: "exemplar-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}) };
}

/**
 * Asserts that a task failed with exactly one `error:` line matching `re`, as
 * its last line, and no stack trace (progress lines before it are allowed).
 */
export function oneLineError(r: { code: number; stderr: string }, re: RegExp): void {
  if (r.code === 0) throw new Error(`expected a non-zero exit, got 0; stderr: ${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l.trim());
  const errors = lines.filter((l) => l.startsWith("error: "));
  if (errors.length !== 1 || lines.at(-1) !== errors[0] || lines.some((l) => /^\s+at /.test(l))) {
    throw new Error(`expected one "error:" line at the end and no stack trace, got:\n${r.stderr}`);
  }
  if (!re.test(errors[0])) throw new Error(`error line does not match ${re}: ${errors[0]}`);
}

/** Lists every entry under `dir`, recursively, as relative paths. */
export function listTree(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(rel);
    if (e.isDirectory) out.push(...listTree(`${dir}/${e.name}`, rel));
  }
  return out.sort();
}

/** A page's DOM after its scripts ran (up to 10 s of virtual time), as headless Chromium renders it. */
export async function renderedDom(file: string, profile: string): Promise<string> {
  const dom = await new Deno.Command("/usr/bin/chromium", {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${profile}`,
      "--virtual-time-budget=10000",
      "--dump-dom",
      `file://${file}`,
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(dom.stdout);
}

/** Arguments of a tiny pretraining run (seconds): synthetic data, a one-conv network, N = 12, K = 6, batch 8. */
export function tinyRunArgs(out: string, steps: number, extra: string[] = []): string[] {
  return [
    "--data",
    "synthetic:unlabeled=60,train=10,test=10,fold=10",
    "--net",
    "8c5-16f",
    "--classes",
    "12",
    "--per-class",
    "6",
    "--steps",
    String(steps),
    "--batch",
    "8",
    ...extra,
    "--out",
    out,
  ];
}
