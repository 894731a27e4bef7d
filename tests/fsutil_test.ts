import assert from "node:assert/strict";
import { removeStaleTemps, tempName, writeFileAtomic } from "../lib/util/fsutil.ts";
import { UserError } from "../lib/util/errors.ts";
import { listTree, ROOT, task, tempDir } from "./helpers.ts";

/** The pid of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

/** A running process (`sleep`), ended by disposing of it. */
function livePid(): { pid: number; [Symbol.asyncDispose](): Promise<void> } {
  const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
  return {
    pid: child.pid,
    [Symbol.asyncDispose]: async () => {
      child.kill("SIGKILL");
      await child.status;
    },
  };
}

Deno.test("removeStaleTemps: a dead process's temporary files go, a live one's stay, an unknown owner's after a day", async () => {
  await using tmp = await tempDir();
  await using live = livePid();
  const dead = await deadPid();
  const dir = tmp.path;
  /** tempName's name for `name`, as process `pid` of this machine (or of another, `host`) would have made it. */
  const named = (name: string, pid: number, host?: string) => {
    let n = tempName(`${dir}/${name}`).split("/").pop()!.replace(/\.tmp-\d+-/, `.tmp-${pid}-`);
    if (host) n = n.replace(/-h[0-9a-f]{8}-/, `-h${host}-`);
    return n;
  };
  const dayAgo = new Date(Date.now() - 25 * 3600e3);
  const make = async (name: string, old = false) => {
    await Deno.mkdir(`${dir}/${name}`);
    await Deno.writeFile(`${dir}/${name}/x.bin`, new Uint8Array(1000));
    if (old) await Deno.utime(`${dir}/${name}`, dayAgo, dayAgo);
    return name;
  };
  const gone = [
    await make(named("stl10_binary", dead)), // this machine, process ended
    await make(`.extract-stl10-${dead}`, true), // an earlier version's name (no machine), a day old
    await make(`stl10_binary.tmp-${dead}-1733220000000`, true), // likewise
    await make(named("cache.json", live.pid, "00000000"), true), // another machine's, a day old
  ];
  const kept = [
    await make(named("stl10_binary", live.pid)), // a live process's
    await make(named("results.json", live.pid), true), // a live process's, however old
    await make(named("features", Deno.pid)), // this process's own
    await make(`.extract-stl10-${dead}`.replace("stl10", "cifar10")), // no machine: not yet a day old
    await make(named("cache.json", dead, "00000000")), // another machine's: its process cannot be checked
    await make("stl10_binary"), // not a temporary name
    await make("photos.tmp"),
  ];
  const logs: string[] = [];
  const removed = await removeStaleTemps(dir, { log: (m) => logs.push(m) });
  assert.deepEqual(removed.sort(), gone.sort());
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), kept.sort());
  assert.match(logs.join("\n"), /removed 4 temporary files \(0\.0 MB\) left in .* by interrupted runs/);
  // hiddenOnly: in a folder of the user's own files, only names that begin with a dot are looked at.
  const visible = await make(named("stl10_binary", dead).slice(1));
  assert.deepEqual(await removeStaleTemps(dir, { hiddenOnly: true }), []);
  assert.deepEqual(await removeStaleTemps(dir), [visible]);
});

Deno.test("a synthetic data set killed while being generated: the next start removes what it left", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const key = `${tmp.path}/cache/synthetic/v4-u2000-tr10-te10-f10-s0`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/tasks/data.ts`, "inspect", "synthetic:unlabeled=2000,train=10,test=10,fold=10"],
    env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Killed (kill -9: nothing runs after it) once the generation has written something.
  const leftover = () => {
    try {
      return listTree(key).filter((p) => p.includes(".tmp-") && p.endsWith("unlabeled_X.bin"));
    } catch {
      return []; // not made yet
    }
  };
  const written = () => leftover().some((p) => Deno.statSync(`${key}/${p}`).size > 0);
  for (let i = 0; i < 1200 && !written(); i++) await new Promise((r) => setTimeout(r, 50));
  child.kill("SIGKILL");
  await child.status;
  assert.equal(leftover().length, 1, `a leftover to clean: ${listTree(key)}`);
  // The next start (of another data set) removes it, and says so.
  const r = await task("data", ["inspect", "synthetic:unlabeled=0,train=10,test=10,fold=10"], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /removed 1 temporary file \(\d+\.\d MB\) left in .*v4-u2000-tr10-te10-f10-s0 by interrupted runs/,
  );
  assert.deepEqual(listTree(key), []);
});

Deno.test("writeFileAtomic onto a folder: one line naming the path, the folder as it was, no temporary file", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/results.json`);
  await Deno.writeTextFile(`${tmp.path}/results.json/mine.txt`, "mine");
  await assert.rejects(
    () => writeFileAtomic(`${tmp.path}/results.json`, "{}"),
    (e) =>
      e instanceof UserError && /^cannot write .*results\.json: a folder stands where the file goes$/.test(e.message),
  );
  assert.deepEqual(listTree(tmp.path), ["results.json", "results.json/mine.txt"]);
});
