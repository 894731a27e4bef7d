import assert from "node:assert/strict";
import { requestGpuAdapter } from "../lib/compute/backend.ts";
import { tempDir } from "./helpers.ts";

const adapter = await requestGpuAdapter();

Deno.test("the GPU check (bench/gpu.ts) runs on a software WebGPU adapter and prints its JSON lines", {
  ignore: !adapter,
}, async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/gpu.ts", "--software-gpu", "--nets", "4c5-4c5-8f", "--seconds", "0.2"],
    stdout: "piped",
    stderr: "piped",
    env: { EXEMPLAR_PYTHON: "/nonexistent/python3" }, // no peer: the line says it was skipped
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const lines = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines[0].bench, "gpu");
  assert.ok(lines[0].webgpu?.description !== undefined);
  assert.equal(lines[1].backend, "webgpu");
  const row = lines.find((l) => l.net === "4c5-4c5-8f" && l.train_samples_per_s !== undefined);
  assert.ok(row && row.train_samples_per_s > 0 && row.infer_samples_per_s > 0, text);
  assert.ok(lines.some((l) => l.peer === "pytorch" && l.skipped), text);

  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/gpu.ts", "--backend", "wasm"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--backend wasm: expected webgpu or tensorflow-gpu/);
});

Deno.test("the bundled GPU check (bench/gpu_bundle.sh's gpu.js) builds and trains its networks with each step", {
  ignore: !adapter,
}, async () => {
  await using dir = await tempDir();
  const bundle = `${dir.path}/gpu.js`;
  const built = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "deno", "--external", "imagescript", "-o", bundle, "bench/gpu.ts"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
  // As bench/gpu_device.sh runs it: outside the repository, without its configuration.
  for (const step of ["project", "tfjs"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-config", "--no-lock", bundle, "--software-gpu", "--nets", "4c5-8f", "--seconds", "0.1"],
      cwd: dir.path,
      stdout: "piped",
      stderr: "piped",
      env: { EXEMPLAR_PYTHON: "/nonexistent/python3", EXEMPLAR_WEBGPU_STEP: step },
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const row = text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .find((l) => l.net === "4c5-8f" && l.train_samples_per_s !== undefined);
    assert.ok(row && row.step === step && row.train_samples_per_s > 0, text);
  }
});
