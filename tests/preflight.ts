/**
 * The first step of `deno task test`: checks that this machine has what the tests need besides Deno and the
 * repository (Jupyter with Deno's kernel, for the notebooks; Chromium, for the pages rendered in tests; node modules),
 * and stops at once with one line giving the command that installs what is missing. `.ci/run` installs it all.
 *
 * @module
 */
const missing: string[] = [];
const debian: string[] = [];
const ok = async (cmd: string, args: string[]) => {
  try {
    return (await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
};
const python = Deno.env.get("EXEMPLAR_PYTHON") ?? "/usr/bin/python3";
if (!(await ok(python, ["-c", "import jupyter_client, nbformat"]))) {
  missing.push("Jupyter");
  debian.push("jupyter-nbconvert", "jupyter-client");
}
let chromium = false;
try {
  chromium = Deno.statSync("/usr/bin/chromium").isFile;
} catch { /* absent */ }
if (!chromium) {
  missing.push("Chromium");
  debian.push("chromium");
}
let kernels: Deno.CommandOutput | null = null;
try {
  kernels = await new Deno.Command(python, {
    args: ["-c", "from jupyter_client.kernelspec import find_kernel_specs; print(' '.join(find_kernel_specs()))"],
    stdout: "piped",
    stderr: "null",
  }).output();
} catch { /* no Python */ }
const hasKernel = kernels?.success && new TextDecoder().decode(kernels.stdout).split(/\s+/).includes("deno");
let modules = false;
try {
  modules = Deno.statSync(new URL("../node_modules/@tensorflow/tfjs", import.meta.url)).isDirectory;
} catch { /* absent */ }
if (missing.length || !hasKernel || !modules) {
  const steps = [
    debian.length ? `apt-get install --no-install-recommends ${debian.join(" ")}` : "",
    hasKernel ? "" : "deno jupyter --install",
    modules ? "" : "deno install",
  ].filter(Boolean);
  const what = [...missing, hasKernel ? "" : "Deno's Jupyter kernel", modules ? "" : "node modules"].filter(Boolean);
  console.error(`error: the tests need ${what.join(", ")}: run ${steps.join(" && ")} (or bash .ci/run, which does it)`);
  Deno.exit(2);
}
