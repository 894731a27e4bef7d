/**
 * Fault injection on tiny runs: a run killed without warning (SIGKILL) at a random moment and then run again with
 * the same command ends with the same weights, bit for bit, as a run never interrupted; every fault leaves one line
 * and nothing the user had is lost. (SIGINT and SIGTERM: train_test.ts; damaged checkpoints: checkpoint_test.ts;
 * two runs on one folder: nets_test.ts; a stalling server: download_test.ts.)
 */
import assert from "node:assert/strict";
import { loadRunCheckpoint, readMetrics } from "../lib/run_folder.ts";
import { Rng } from "../lib/util/rng.ts";
import { oneLineError, ROOT, task, tempDir, tinyRunArgs } from "./helpers.ts";

const STEPS = 1500;
// A checkpoint every 0.3 s, so that a kill lands between checkpoints.
const args = (out: string) => tinyRunArgs(out, STEPS, ["--valid-every", "50", "--checkpoint-minutes", "0.005"]);

Deno.test("kill -9 at a random moment, the same command again: the final weights equal an uninterrupted run's", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const whole = await task("pretrain", args(`${tmp.path}/whole`), env);
  assert.equal(whole.code, 0, whole.stderr);

  const rng = new Rng(Date.now() % 100000);
  const out = `${tmp.path}/killed`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/tasks/pretrain.ts`, ...args(out)],
    cwd: ROOT,
    env: { ...env, NO_COLOR: "1" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Wait for a checkpoint and some rows, then a random moment more.
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      if ((await Deno.stat(`${out}/checkpoint.ckpt`)).size > 0 && (await readMetrics(out)).length >= 3) break;
    } catch { /* not yet */ }
  }
  await new Promise((r) => setTimeout(r, 200 + rng.int(1500)));
  child.kill("SIGKILL");
  const status = await child.status;
  assert.ok(!status.success, "the run was killed before it finished");
  // The kill landed in mid-run: the folder holds a checkpoint part of the way, and maybe rows past it.
  const stoppedAt = (await loadRunCheckpoint(out)).state.step;
  assert.ok(stoppedAt > 0 && stoppedAt < STEPS, `killed at step ${stoppedAt}`);
  const again = await task("pretrain", args(out), env);
  assert.equal(again.code, 0, again.stderr);

  const a = await loadRunCheckpoint(`${tmp.path}/whole`), b = await loadRunCheckpoint(out);
  assert.equal(b.state.step, STEPS);
  for (const [name, w] of a.weights) assert.deepEqual(b.weights.get(name), w, `weights ${name}`);
  for (const [name, m] of a.momenta) assert.deepEqual(b.momenta.get(name), m, `momentum ${name}`);
  const losses = async (dir: string) => (await readMetrics(dir)).map((r) => [r.step, r.loss, r.accuracy, r.lr]);
  assert.deepEqual(await losses(out), await losses(`${tmp.path}/whole`));
});

/** A small tmpfs (as root), or null where this machine does not allow mounting one. */
async function smallDisk(path: string, size: string): Promise<boolean> {
  if (Deno.uid() !== 0) return false;
  await Deno.mkdir(path, { recursive: true });
  return (await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", path],
    stderr: "null",
  })
    .output().catch(() => null))?.success ?? false;
}

Deno.test("a full disk at the checkpoint: one line naming the file, no half-written checkpoint", async () => {
  await using tmp = await tempDir();
  const disk = `${tmp.path}/disk`;
  if (!(await smallDisk(disk, "320k"))) {
    console.log("skipped: mounting a small tmpfs needs root");
    return;
  }
  try {
    const r = await task("pretrain", tinyRunArgs(`${disk}/run`, 30), { EXEMPLAR_CACHE: `${tmp.path}/cache` });
    oneLineError(r, /cannot (write|append to) .*disk\/run\/.*: no space left on the device/);
    assert.equal(r.code, 2);
    const left = [...Deno.readDirSync(`${disk}/run`)].map((e) => e.name);
    assert.ok(!left.some((n) => n.includes(".tmp-")), `no temporary file left: ${left}`);
    assert.ok(!left.includes("checkpoint.ckpt"), "no checkpoint under its final name");
  } finally {
    await new Deno.Command("umount", { args: [disk] }).output();
  }
});
