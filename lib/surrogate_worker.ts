/**
 * Worker side of {@link SurrogateLoader}: rebuilds the surrogate data set from
 * the shared seeds and generates the batches it is asked for.
 *
 * @module
 */
import { serveRequests } from "./compute/pool.ts";
import { type Batch, SurrogateData, type SurrogateRequest } from "./surrogate.ts";
import type { Seeds } from "./seeds.ts";

let data: SurrogateData | null = null;

serveRequests<SurrogateRequest, Batch | null>((m) => {
  if (m.kind === "init") {
    const seeds: Seeds = { n: m.init.n, context: m.init.context, origins: [], method: "paper" };
    data = new SurrogateData(seeds, m.init.opts, m.init.stats);
    return null;
  }
  return data!.batch(m.b, m.size);
}, (batch) => batch ? [batch.x.buffer as ArrayBuffer, batch.y.buffer as ArrayBuffer] : []);
