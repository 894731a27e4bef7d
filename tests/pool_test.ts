import assert from "node:assert/strict";
import { WorkerPool } from "../lib/compute/pool.ts";
import { UserError } from "../lib/util/errors.ts";
import type { PoolTestRequest } from "./fixtures/pool_worker.ts";

const url = new URL("./fixtures/pool_worker.ts", import.meta.url);

Deno.test("worker pool: answers in order, with events on the way", async () => {
  const pool = new WorkerPool<PoolTestRequest, number>(url, 2, "test");
  try {
    const events: unknown[] = [];
    const answers = await Promise.all([
      pool.call(0, { kind: "echo", value: 1, events: 3 }, { onEvent: (e) => events.push(e) }),
      pool.call(1, { kind: "echo", value: 2 }),
      pool.call(2, { kind: "echo", value: 3 }),
    ]);
    assert.deepEqual(answers, [1, 2, 3]);
    assert.deepEqual(events, [0, 1, 2]);
  } finally {
    pool.close();
  }
});

Deno.test("worker pool: a request that throws rejects its call with the error; the worker goes on", async () => {
  const pool = new WorkerPool<PoolTestRequest, number>(url, 1, "test");
  try {
    await assert.rejects(pool.call(0, { kind: "throw", message: "bad batch" }), /test worker: bad batch/);
    const e = await pool.call(0, { kind: "throw", message: "one line for the user", user: true }).catch((e) => e);
    assert.ok(e instanceof UserError);
    assert.equal(e.message, "one line for the user");
    assert.equal(await pool.call(0, { kind: "echo", value: 7 }), 7);
  } finally {
    pool.close();
  }
});

Deno.test("worker pool: a worker that dies in mid-run rejects every pending and later call (no hang)", async () => {
  const pool = new WorkerPool<PoolTestRequest, number>(url, 2, "surrogate-data");
  try {
    const pending = [
      pool.call(0, { kind: "crash", message: "out of memory" }),
      pool.call(1, { kind: "slow", ms: 60_000 }),
      pool.call(0, { kind: "echo", value: 1 }),
    ];
    for (const p of pending) await assert.rejects(p, /surrogate-data worker 0 failed: .*out of memory/);
    await assert.rejects(pool.call(1, { kind: "echo", value: 2 }), /surrogate-data worker 0 failed/);
  } finally {
    pool.close();
  }
});

Deno.test("worker pool: calls pending when it is closed are rejected", async () => {
  const pool = new WorkerPool<PoolTestRequest, number>(url, 1, "test");
  const p = pool.call(0, { kind: "slow", ms: 60_000 });
  pool.close();
  await assert.rejects(p, /test workers were closed/);
});
