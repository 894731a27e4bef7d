/**
 * One worker pool for every worker of the project: the surrogate-data
 * generators, the gradient workers of the data-parallel engine and the
 * feature extractors.
 *
 * The host calls a worker with a request and gets a promise of its answer
 * ({@link WorkerPool.call}); the worker answers with {@link serveRequests}. A
 * request whose handler throws rejects its call with the same message (a
 * {@link UserError} stays one); a worker that dies (an uncaught error, a
 * failed import) rejects every call pending on the pool and every later call,
 * so the host sees a clear error and never waits forever. Workers may send
 * events (progress) before their answer.
 *
 * Closing a pool shuts its workers' gate to native code (OpenBLAS, lib/compute/blas.ts), stops them and waits until
 * none is inside a native call (a terminated worker leaves a native call only when the call returns, and may call
 * again before it stops), so that a process never exits, after a pool closed in mid-work, with one of its threads
 * inside OpenBLAS; pools left open are closed so when the process exits.
 *
 * @module
 */
import { UserError } from "../util/errors.ts";
import { gateNativeCalls } from "./blas.ts";

/** What goes from host to worker: a request, and (with the first) the counter of the workers' native calls. */
interface Envelope<Req> {
  id: number;
  request: Req;
  nativeCalls?: SharedArrayBuffer;
}

/** The longest a closing pool waits for its workers' native calls to return. */
const NATIVE_WAIT_MS = 30_000;

/** The pools not closed yet: closed, waiting for their native calls, when the process exits. */
const open = new Set<WorkerPool<unknown, unknown>>();
globalThis.addEventListener?.("unload", () => {
  for (const p of [...open]) p.close();
});

/** What comes back: an answer, a failure or an event on the way. */
type Reply<Res> =
  | { id: number; value: Res }
  | { id: number; error: string; userError: boolean }
  | { id: number; event: unknown };

interface Pending<Res> {
  resolve: (v: Res) => void;
  reject: (e: Error) => void;
  onEvent?: (event: unknown) => void;
}

/** Host side: `size` module workers running `url`, called by index. */
export class WorkerPool<Req, Res> {
  readonly name: string;
  #workers: Worker[];
  #pending = new Map<number, Pending<Res>>();
  #failed: Error | null = null;
  #id = 0;
  /** The workers' gate to native code (lib/compute/blas.ts gateNativeCalls): calls inside it now, and closed. */
  readonly #native = new Int32Array(new SharedArrayBuffer(8));
  #told = new Set<number>();

  /** Starts `size` workers of the module at `url`; `name` says in errors which pool failed. */
  constructor(url: URL, size: number, name: string) {
    this.name = name;
    this.#workers = Array.from({ length: Math.max(1, size) }, (_, i) => {
      const w = new Worker(url, { type: "module" });
      w.onmessage = (e: MessageEvent<Reply<Res>>) => this.#receive(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        this.#fail(new Error(`${name} worker ${i} failed: ${e.message}`));
      };
      return w;
    });
    open.add(this as WorkerPool<unknown, unknown>);
  }

  /** The number of workers. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Sends `request` to worker `worker`; resolves with its answer, rejects with its error. `transfer` moves buffers
   * instead of copying them; `onEvent` receives the events the worker sends while it works.
   */
  call(worker: number, request: Req, opts: { transfer?: Transferable[]; onEvent?: (e: unknown) => void } = {}) {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = ++this.#id, index = worker % this.#workers.length;
    const p = new Promise<Res>((resolve, reject) => this.#pending.set(id, { resolve, reject, onEvent: opts.onEvent }));
    // (Each worker gets the counter of native calls with its first request.)
    const nativeCalls = this.#told.has(index) ? undefined : this.#native.buffer as SharedArrayBuffer;
    this.#told.add(index);
    this.#workers[index].postMessage({ id, request, nativeCalls } satisfies Envelope<Req>, {
      transfer: opts.transfer ?? [],
    });
    return p;
  }

  /** Calls into native code the workers are inside now. */
  get nativeCalls(): number {
    return Atomics.load(this.#native, 0);
  }

  /**
   * Stops the workers, and returns once none is inside a native call (at most {@link NATIVE_WAIT_MS}); calls still
   * pending are rejected.
   */
  close(): void {
    // No worker enters native code from now on; those inside it are waited for.
    Atomics.store(this.#native, 1, 1);
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
    open.delete(this as WorkerPool<unknown, unknown>);
    const until = performance.now() + NATIVE_WAIT_MS;
    for (let n = Atomics.load(this.#native, 0); n > 0 && performance.now() < until; n = Atomics.load(this.#native, 0)) {
      Atomics.wait(this.#native, 0, n, 10);
    }
    this.#fail(new Error(`${this.name} workers were closed`));
  }

  #receive(m: Reply<Res>): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    if ("event" in m) return p.onEvent?.(m.event);
    this.#pending.delete(m.id);
    if ("value" in m) p.resolve(m.value);
    else p.reject(m.userError ? new UserError(m.error) : new Error(`${this.name} worker: ${m.error}`));
  }

  #fail(e: Error): void {
    this.#failed ??= e;
    for (const p of this.#pending.values()) p.reject(this.#failed);
    this.#pending.clear();
  }
}

/** What a worker's handler gets besides the request: a way to send events to the caller. */
export interface RequestContext {
  emit(event: unknown): void;
}

/**
 * Worker side: answers every request with `handler`'s value (moving the buffers `transfer` picks from it) or with
 * the error it threw. Requests are handled one at a time, in the order they came.
 */
export function serveRequests<Req, Res>(
  handler: (request: Req, ctx: RequestContext) => Res | Promise<Res>,
  transfer: (value: Res) => Transferable[] = () => [],
): void {
  // The worker's global scope (typed here without the worker library, which host modules must not load).
  const scope = self as unknown as {
    onmessage: (e: MessageEvent<Envelope<Req>>) => void;
    postMessage(message: unknown, opts?: { transfer: Transferable[] }): void;
  };
  let queue = Promise.resolve();
  scope.onmessage = (e: MessageEvent<Envelope<Req>>) => {
    const { id, request, nativeCalls } = e.data;
    if (nativeCalls) gateNativeCalls(new Int32Array(nativeCalls));
    queue = queue.then(async () => {
      const ctx = { emit: (event: unknown) => scope.postMessage({ id, event }) };
      try {
        const value = await handler(request, ctx);
        scope.postMessage({ id, value }, { transfer: transfer(value) });
      } catch (err) {
        scope.postMessage({ id, error: (err as Error)?.message ?? String(err), userError: err instanceof UserError });
      }
    });
  };
}
