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
 * @module
 */
import { UserError } from "../util/errors.ts";

/** What goes from host to worker. */
interface Envelope<Req> {
  id: number;
  request: Req;
}

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
    const id = ++this.#id;
    const p = new Promise<Res>((resolve, reject) => this.#pending.set(id, { resolve, reject, onEvent: opts.onEvent }));
    this.#workers[worker % this.#workers.length].postMessage(
      { id, request } satisfies Envelope<Req>,
      { transfer: opts.transfer ?? [] },
    );
    return p;
  }

  /** Stops the workers; calls still pending are rejected. */
  close(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
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
    const { id, request } = e.data;
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
