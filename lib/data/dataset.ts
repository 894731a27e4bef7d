/**
 * The one shape every data set takes, whatever its official format
 * (PAPER.md "Data sets"): named splits of RGB images with labels, class names,
 * and STL-10's predefined training folds.
 *
 * @module
 */
import type { RGBImage } from "../util/image.ts";
import { UserError } from "../util/errors.ts";

/** One split of a data set ("unlabeled", "train", "test" or "all"). */
export interface Split {
  /** The split's name (`train`, `test`, `unlabeled`, `all`). */
  readonly name: string;
  /** Number of images. */
  readonly length: number;
  /** 0-based class of each image; null for an unlabeled split. */
  readonly labels: Int32Array | null;
  /** The size every image has, or null when sizes vary (Caltech, folders). */
  readonly size: { width: number; height: number } | null;
  /** Reads image `i`; only that image is read from disk. */
  image(i: number): Promise<RGBImage>;
  /** Width and height of image `i`, from its header where possible. */
  imageSize(i: number): Promise<{ width: number; height: number }>;
  /** Where image `i` comes from (a file name, or file and record). */
  source(i: number): string;
}

/** Files found but not used, and why. */
export interface Skipped {
  /** Number of files that are not images (wrong magic bytes). */
  notImages: number;
  /** Number of image files that cannot be decoded (damaged, cut short, claiming an impossible size). */
  unreadable: number;
  /** Number of symbolic links (to a class folder or an image) that lead to nothing, or into a loop of links. */
  brokenLinks: number;
  /** Classes the protocol excludes, with their image counts. */
  excludedClasses: Record<string, number>;
  /** The first few skipped paths (an image that cannot be decoded: with the reason), for the user to look at. */
  examples: string[];
}

/** A data set in the project's one shape. */
export interface Dataset {
  /** The official format it was read from. */
  readonly format: "stl10" | "cifar10" | "caltech101" | "caltech256" | "folder";
  /** The folder it was read from. */
  readonly root: string;
  /** Class names, index = label. */
  readonly classNames: string[];
  /** Splits by name, in their natural order. */
  readonly splits: Record<string, Split>;
  /** STL-10's 10 predefined training folds (0-based indices into "train"), else null. */
  readonly folds: number[][] | null;
  /** Files that were skipped while opening the data set (not images, not decodable), with the reason. */
  readonly skipped: Skipped;
  /** Releases open files. */
  close(): void;
}

/** Looks up a split or fails with a message listing the ones there are. */
export function getSplit(ds: Dataset, name: string): Split {
  const s = ds.splits[name];
  if (!s) {
    throw new UserError(
      `split "${name}" not found in ${ds.format}:${ds.root} (it has: ${Object.keys(ds.splits).join(", ")})`,
    );
  }
  return s;
}

/** The split seed patches are cut from: "unlabeled" where there is one, else the first. */
export function pretrainingSplit(ds: Dataset, name?: string): Split {
  return getSplit(ds, name ?? ("unlabeled" in ds.splits ? "unlabeled" : Object.keys(ds.splits)[0]));
}

/** No files skipped. */
export function noneSkipped(): Skipped {
  return { notImages: 0, unreadable: 0, brokenLinks: 0, excludedClasses: {}, examples: [] };
}
