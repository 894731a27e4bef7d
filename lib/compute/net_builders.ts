/**
 * The network builders already loaded in this thread, by the URL of the module that exports them.
 *
 * A {@link NetSpec} names the module that builds its network by URL, so that each worker can import it. The thread
 * that made the spec has loaded that module already and takes its builder from here. This is also what lets a bundle
 * build networks (bench/gpu_bundle.sh): in one, every module's `import.meta.url` is the bundle's own, and importing
 * the bundle again gives a module that exports nothing.
 *
 * @module
 */
import type { NetSpec, TrainableNet } from "./engine.ts";

/** Builds the network a spec names. */
export type NetBuilder = (spec: NetSpec) => TrainableNet;

const loaded = new Map<string, NetBuilder>();

/** Records that the module at `url` (the caller's `import.meta.url`) builds networks with `build`. */
export function provideNetBuilder(url: string, build: NetBuilder): void {
  loaded.set(url, build);
}

/** The builder of the module at `url`: the loaded one, else the module's `buildNet` export, imported. */
export async function netBuilder(url: string): Promise<NetBuilder> {
  const known = loaded.get(url);
  if (known) return known;
  const mod = await import(url) as { buildNet?: NetBuilder };
  if (typeof mod.buildNet !== "function") throw new Error(`${url} does not export buildNet(spec)`);
  return mod.buildNet;
}
