import assert from "node:assert/strict";
import { selectBackend, tf } from "../lib/compute/backend.ts";
import { checkNetFits, ExemplarNet, PAPER_NETS, parseNetName } from "../lib/nets.ts";
import { readMetrics } from "../lib/run_folder.ts";
import { listTree, oneLineError, ROOT, task, tempDir } from "./helpers.ts";

await selectBackend("wasm");

Deno.test("the paper's networks: forward FLOPs per sample match PAPER.md", () => {
  const expected = { small: 63.3, medium: 236.3, large: 802.1 };
  for (const [k, name] of Object.entries(PAPER_NETS)) {
    const net = new ExemplarNet(name, 1000, { method: "release" });
    const f = net.flops();
    assert.equal((f.withoutSoftmax / 1e6).toFixed(1), expected[k as keyof typeof expected].toFixed(1), name);
    const fc = parseNetName(name).filter((l) => l.kind === "fc").at(-1)!.units;
    assert.equal(f.total - f.withoutSoftmax, 2 * fc * 1000); // the N-way softmax adds 2 * fcUnits * N
    net.dispose();
  }
});

Deno.test("network summary: shapes 32 -> 16 -> 8 in both variants, parameter counts", () => {
  for (const variant of ["paper", "release"] as const) {
    const net = new ExemplarNet("64c5-128c5-256c5-512f", 50, { method: variant });
    const rows = net.summary();
    assert.deepEqual(rows.map((r) => r.output), [[32, 32, 64], [16, 16, 64], [16, 16, 128], [8, 8, 128], [8, 8, 256], [
      512,
    ], [50]]);
    assert.equal(rows[0].params, 5 * 5 * 3 * 64 + 64);
    assert.equal(rows[5].params, 8 * 8 * 256 * 512 + 512);
    const counted = net.params.reduce((a, p) => a + p.v.size, 0);
    assert.equal(counted, rows.reduce((a, r) => a + r.params, 0));
    // The network really produces those shapes.
    const taps: tf.Tensor[] = [];
    const logits = net.forward(tf.zeros([2, 32, 32, 3]) as tf.Tensor4D, { taps });
    assert.deepEqual(taps.map((t) => t.shape), [[2, 32, 32, 64], [2, 16, 16, 128], [2, 8, 8, 256], [2, 512]]);
    assert.deepEqual(logits.shape, [2, 50]);
    tf.dispose([...taps, logits]);
    net.dispose();
  }
});

Deno.test("release initialisation: per-layer standard deviations and biases", () => {
  const net = new ExemplarNet("64c5-128c5-256c5-512f", 200, { method: "release", seed: 3 });
  const std = (name: string) => {
    const d = Array.from(net.param(name).dataSync() as Float32Array);
    const m = d.reduce((a, b) => a + b, 0) / d.length;
    return Math.sqrt(d.reduce((a, b) => a + (b - m) ** 2, 0) / d.length);
  };
  for (
    const [name, s] of [["conv1.w", 0.05], ["conv2.w", 0.02], ["conv3.w", 0.01], ["fc1.w", 0.01], [
      "softmax.w",
      0.005,
    ]] as const
  ) {
    assert.ok(Math.abs(std(name) / s - 1) < 0.1, `${name}: std ${std(name)}`);
  }
  assert.equal(net.param("conv1.b").dataSync()[0], Math.fround(0.1));
  assert.equal(net.param("softmax.b").dataSync()[0], 0);
  const lr = Object.fromEntries(net.params.map((p) => [p.name, [p.lrMult, p.decayMult]]));
  assert.deepEqual(lr["conv1.w"], [1, 0]);
  assert.deepEqual(lr["conv3.w"], [1, 0.25]);
  assert.deepEqual(lr["fc1.w"], [1, 1]);
  assert.deepEqual(lr["softmax.w"], [0.25, 4]);
  assert.deepEqual(lr["conv2.b"], [2, 0]);
  net.dispose();
});

Deno.test("network names: malformed ones are refused", () => {
  assert.deepEqual(parseNetName("32c3-10f"), [{ kind: "conv", units: 32, kernel: 3 }, {
    kind: "fc",
    units: 10,
    kernel: 0,
  }]);
  assert.throws(() => parseNetName("64x5-128f"), /"64x5" is neither NcK/);
  assert.throws(() => parseNetName("128f"), /at least one conv layer/);
  assert.throws(() => parseNetName("64c5-128f-64c5"), /conv layers must come before/);
  assert.throws(() => parseNetName("64c4-128f"), /odd kernel/);
  assert.throws(() => new ExemplarNet("64c5-128f", 1), /N = 1/);
});

Deno.test("pretrain: bad input is refused, an existing run folder is left intact", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const data = "synthetic:unlabeled=40,train=10,test=10,fold=10";
  const base = ["--data", data, "--net", "8c5-16f", "--per-class", "4", "--steps", "20", "--batch", "8"];
  oneLineError(
    await task("pretrain", [...base, "--classes", "1", "--out", `${tmp.path}/a`], env),
    /--classes 1: N must be an integer in \[2, /,
  );
  oneLineError(
    await task("pretrain", [...base, "--classes", "10", "--batch", "0", "--out", `${tmp.path}/a`], env),
    /--batch 0/,
  );
  oneLineError(
    await task("pretrain", [...base, "--classes", "10", "--net", "64q5", "--out", `${tmp.path}/a`], env),
    /"64q5" is neither/,
  );
  oneLineError(
    await task("pretrain", [...base, "--classes", "10", "--backend", "tpu", "--out", `${tmp.path}/a`], env),
    /--backend tpu: unknown backend/,
  );
  // The release takes one seed per image: the message names pretraining's flag for N.
  oneLineError(
    await task("pretrain", [...base, "--classes", "50", "--method", "release", "--out", `${tmp.path}/b`], env),
    /--classes 50 is larger than the 40 candidate images/,
  );
  const ok = await task("pretrain", [...base, "--classes", "10", "--out", `${tmp.path}/run`], env);
  assert.equal(ok.code, 0, ok.stderr);
  const snapshot = async () => {
    const out: Record<string, string> = {};
    for (const e of Deno.readDirSync(`${tmp.path}/run`)) {
      out[e.name] = String((await Deno.readFile(`${tmp.path}/run/${e.name}`)).reduce((a, b) => (a * 31 + b) >>> 0, 7));
    }
    return out;
  };
  const before = await snapshot();
  oneLineError(
    await task(
      "pretrain",
      [...base, "--classes", "10", "--net", "16c5-16f", "--resume", "--out", `${tmp.path}/run`],
      env,
    ),
    /that run was made with net = "8c5-16f", not "16c5-16f"; the run folder is left as it is/,
  );
  oneLineError(
    await task("pretrain", [
      ...base.map((a) => a === data ? "synthetic:unlabeled=40,train=10,test=10,fold=10,seed=1" : a),
      "--classes",
      "10",
      "--resume",
      "--out",
      `${tmp.path}/run`,
    ], env),
    /that run was made with data = /,
  );
  // The same command again continues the run: here it is complete, and nothing in the folder changes.
  const again = await task("pretrain", [...base, "--classes", "10", "--out", `${tmp.path}/run`], env);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already trained for 20 steps \(of 20\)/);
  assert.deepEqual(await snapshot(), before);
});

Deno.test("pretrain: a run stopped before its first checkpoint starts again; a folder in use is refused", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const data = "synthetic:unlabeled=40,train=10,test=10,fold=10";
  const args = ["--data", data, "--net", "8c5-16f", "--classes", "10", "--per-class", "4", "--steps", "12"];
  const run = `${tmp.path}/run`;
  assert.equal((await task("pretrain", [...args, "--batch", "8", "--out", run], env)).code, 0);
  // As after kill -9 before the first checkpoint: config.json and metrics, no checkpoint.
  await Deno.remove(`${run}/checkpoint.ckpt`);
  const restarted = await task("pretrain", [...args, "--batch", "8", "--out", run], env);
  assert.equal(restarted.code, 0, restarted.stderr);
  assert.match(restarted.stderr, /stopped before its first checkpoint; starting it again from step 0/);
  assert.equal((await readMetrics(run)).at(-1)!.step, 12);
  assert.ok(!listTree(run).includes(".lock"), "the lock is removed at the end");

  // A live holder (this test's own process) keeps the folder; a dead one's lock is taken over.
  await Deno.writeTextFile(`${run}/.lock`, JSON.stringify({ pid: Deno.pid, host: Deno.hostname(), since: "now" }));
  oneLineError(
    await task("pretrain", [...args, "--batch", "8", "--out", run], env),
    new RegExp(`in use by process ${Deno.pid} on `),
  );
  const gone = new Deno.Command("true").spawn();
  await gone.status;
  await Deno.writeTextFile(`${run}/.lock`, JSON.stringify({ pid: gone.pid, host: Deno.hostname(), since: "then" }));
  const after = await task("pretrain", [...args, "--batch", "8", "--out", run], env);
  assert.equal(after.code, 0, after.stderr);
  assert.ok(!listTree(run).includes(".lock"));
});

Deno.test("release initialisation: each released network's own weight spreads (small differs from medium)", async () => {
  const std = async (v: { data(): Promise<Float32Array | Int32Array | Uint8Array> }) => {
    const d = await v.data();
    let s = 0;
    for (const x of d) s += x * x;
    return Math.sqrt(s / d.length);
  };
  const near = (a: number, b: number) => Math.abs(a - b) < 0.05 * b;
  const small = new ExemplarNet("small", 100, { method: "release", seed: 1 });
  const medium = new ExemplarNet("medium", 100, { method: "release", seed: 1 });
  try {
    // nets_config/64c5-64c5-128f/template_old_format/train.prototxt and 64c5-128c5-256c5-512f/template/train.prototxt
    for (
      const [net, spreads] of [[small, [0.0001, 0.01, 0.005, 0.01]], [medium, [0.05, 0.02, 0.01, 0.01, 0.005]]] as const
    ) {
      const weights = net.params.filter((p) => p.name.endsWith(".w"));
      assert.equal(weights.length, spreads.length);
      for (const [i, p] of weights.entries()) assert.ok(near(await std(p.v), spreads[i]), `${net.name} ${p.name}`);
    }
  } finally {
    small.dispose();
    medium.dispose();
  }
});

Deno.test("a kernel larger than the map it runs on is refused, before any work", async () => {
  assert.throws(() => checkNetFits("64c33-128f"), /conv1's 33x33 kernel is larger than its 32x32 input map/);
  assert.throws(() => checkNetFits("16c5-16c5-16c9-32f"), /conv3's 9x9 kernel is larger than its 8x8 input map/);
  checkNetFits("92c5-256c5-512c5-1024f");
  oneLineError(
    await task("reproduce", ["--net", "8c5-8c5-8c11-16f", "--out", "/nonexistent/r"]),
    /conv3's 11x11 kernel/,
  );
});

Deno.test("the memory a training step is estimated to need covers what it takes, within twice", async () => {
  // In a process of its own: a WebAssembly heap never shrinks, so earlier tests would count.
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/tests/fixtures/memory_probe.ts`, "32c5-32c5-64f", "100", "96"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.equal(r.code, 0);
  const { heap, estimate } = JSON.parse(new TextDecoder().decode(r.stdout));
  assert.ok(heap <= estimate && estimate <= 2 * heap, `heap ${heap / 2 ** 20} MiB, estimate ${estimate / 2 ** 20}`);
});
