/**
 * Data sets: one reader per official format (PAPER.md "Data sets") behind one
 * {@link Dataset} shape, the embedded synthetic default, and downloads.
 *
 * A data spec names a format and a folder: `synthetic` (the default),
 * `stl10:DIR`, `cifar10:DIR`, `caltech101:DIR`, `caltech256:DIR`, `folder:DIR`.
 *
 * @example
 * ```ts
 * const ds = await openDataset("synthetic");
 * const img = await ds.splits.train.image(0); // 96x96 RGB
 * ```
 *
 * @module
 */
import { UserError } from "../util/errors.ts";
import { openCifar10 } from "./cifar10.ts";
import type { Dataset } from "./dataset.ts";
import { keepDecodable, openCaltech101, openCaltech256, openFolder } from "./folder.ts";
import { openStl10 } from "./stl10.ts";
import { openSynthetic, parseSyntheticSpec } from "./synthetic.ts";

export * from "./dataset.ts";
export * from "./stl10.ts";
export * from "./cifar10.ts";
export * from "./folder.ts";
export * from "./synthetic.ts";

const OPENERS: Record<string, (dir: string) => Dataset> = {
  stl10: openStl10,
  cifar10: openCifar10,
  caltech101: openCaltech101,
  caltech256: openCaltech256,
  folder: openFolder,
};

/** The data spec formats, for help texts. */
export const DATA_SPECS =
  "synthetic[:unlabeled=N,train=N,test=N,fold=N,seed=N], stl10:DIR, cifar10:DIR, caltech101:DIR, caltech256:DIR, folder:DIR";

/**
 * Opens a data set from its spec. Its splits hold only images that decode ({@link keepDecodable}); files left out
 * are counted in `skipped`. `log` hears about long work (generating the synthetic set on first use, decoding a
 * folder's images the first time) and about files left out; by default nothing is printed.
 */
export async function openDataset(spec: string, opts: { log?: (msg: string) => void } = {}): Promise<Dataset> {
  const colon = spec.indexOf(":");
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  // A folder given as ~/... (a shell leaves ~ after "stl10:" as it is) is in the home folder.
  const home = Deno.env.get("HOME");
  const raw = colon < 0 ? "" : spec.slice(colon + 1);
  const rest = home && (raw === "~" || raw.startsWith("~/")) ? home + raw.slice(1) : raw;
  if (kind === "synthetic") return await openSynthetic(parseSyntheticSpec(rest), opts.log);
  const open = OPENERS[kind];
  if (!open) throw new UserError(`unknown data spec "${spec}" (expected one of: ${DATA_SPECS})`);
  if (!rest) throw new UserError(`data spec "${spec}" needs a folder: ${kind}:DIR`);
  const ds = open(rest);
  const log = opts.log ?? (() => {});
  const { notImages, brokenLinks, unreadable, examples } = ds.skipped;
  const what = [
    notImages ? `${notImages} files that are not images (JPEG, PNG or GIF)` : "",
    brokenLinks ? `${brokenLinks} symbolic links that lead nowhere` : "",
    unreadable ? `${unreadable} files that cannot be read` : "",
  ].filter(Boolean);
  if (what.length) log(`skipped ${what.join(", ")} (the first: ${examples[0]})`);
  return await keepDecodable(ds, log);
}

/** A JSON-ready summary of a data set: what `deno task data inspect` prints. */
export async function inspectDataset(ds: Dataset): Promise<Record<string, unknown>> {
  const splits: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(ds.splits)) {
    let shape: unknown;
    if (s.size) shape = [s.size.height, s.size.width, 3];
    else {
      let minW = Infinity, maxW = 0, minH = Infinity, maxH = 0;
      for (let i = 0; i < s.length; i++) {
        const { width, height } = await s.imageSize(i);
        minW = Math.min(minW, width), maxW = Math.max(maxW, width);
        minH = Math.min(minH, height), maxH = Math.max(maxH, height);
      }
      shape = { width: [minW, maxW], height: [minH, maxH], channels: 3 };
    }
    const counts = s.labels ? ds.classNames.map(() => 0) : null;
    if (s.labels && counts) { for (const y of s.labels) counts[y]++; }
    splits[name] = { images: s.length, shape, labelled: s.labels !== null, ...(counts ? { per_class: counts } : {}) };
  }
  const skippedCount = ds.skipped.notImages + ds.skipped.unreadable + ds.skipped.brokenLinks +
    Object.values(ds.skipped.excludedClasses).reduce((a, b) => a + b, 0);
  return {
    format: ds.format,
    root: ds.root,
    classes: ds.classNames.length,
    class_names: ds.classNames,
    splits,
    folds: ds.folds ? { count: ds.folds.length, sizes: ds.folds.map((f) => f.length) } : null,
    skipped: {
      files: skippedCount,
      not_images: ds.skipped.notImages,
      unreadable: ds.skipped.unreadable,
      broken_links: ds.skipped.brokenLinks,
      excluded_classes: ds.skipped.excludedClasses,
      examples: ds.skipped.examples,
    },
  };
}
