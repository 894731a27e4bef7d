/**
 * Named subsets of the official data sets, so that a figure measured on one can be rebuilt by anyone who has the
 * official download: `data/subsets.json` says which classes and how many images of each ("the first N by file
 * name"), and {@link makeSubset} copies exactly those files into the official layout. `caltech101-mini`, the
 * project's 600-photograph development set, is one of them.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { UserError } from "../util/errors.ts";
import { exists, fsError, isDir, listDir, tempName } from "../util/fsutil.ts";
import { hashBytes, hashText } from "../util/rng.ts";

/** A subset: the first `perClass` images (by file name) of each class, and `extra` counts of other folders. */
export interface SubsetDefinition {
  /** What it is for, in a sentence. */
  about: string;
  /** The data set it is cut from (its data spec's format). */
  format: "caltech101" | "caltech256";
  /** The folder the classes are in (`101_ObjectCategories`). */
  top: string;
  /** Its classes, as the official folders name them. */
  classes: string[];
  /** Images of each class: the first ones by file name. */
  perClass: number;
  /** Other folders and how many of their first images (BACKGROUND_Google, which the protocol leaves out). */
  extra?: Record<string, number>;
}

/** The named subsets (data/subsets.json). */
export const SUBSETS: Readonly<Record<string, SubsetDefinition>> = JSON.parse(
  Deno.readTextFileSync(new URL("../../data/subsets.json", import.meta.url)),
);

/** What {@link makeSubset} made. */
export interface SubsetResult {
  /** The folder written (its `top` folder inside). */
  dir: string;
  /** Images copied. */
  images: number;
  /** A fingerprint of the subset's file names and bytes: the same for everyone who builds it from the same download. */
  fingerprint: string;
}

/** The official folder that holds the class folders: DIR itself, DIR/top, or DIR/caltech-101/top. */
function classRoot(def: SubsetDefinition, from: string): string {
  for (const d of [join(from, def.top), join(from, def.format.replace("caltech", "caltech-"), def.top), from]) {
    if (def.classes.every((c) => isDir(join(d, c)))) return d;
  }
  const missing = def.classes.filter((c) => !isDir(join(from, def.top, c)));
  throw new UserError(
    `${from}: not the official ${def.format} folder (no ${def.top}/ with ${missing.slice(0, 3).join(", ")}${
      missing.length > 3 ? ", ..." : ""
    })`,
  );
}

/**
 * Copies subset `def` from the official download at `from` into `to` (which must not exist yet: the copy is made
 * beside it and renamed into place when complete), in the official layout.
 */
export async function makeSubset(
  def: SubsetDefinition,
  from: string,
  to: string,
  log: (m: string) => void = () => {},
): Promise<SubsetResult> {
  const root = classRoot(def, from);
  if (exists(to)) throw new UserError(`--to ${to}: already there (give a new folder)`);
  // The files, chosen before anything is written: a class with too few images is refused.
  const picks: [string, string[]][] = [];
  for (
    const [folder, count] of [...def.classes.map((c) => [c, def.perClass] as const), ...Object.entries(def.extra ?? {})]
  ) {
    const dir = join(root, folder);
    const files = isDir(dir) ? listDir(dir).filter((e) => e.isFile && !e.name.startsWith(".")).map((e) => e.name) : [];
    if (files.length < count) {
      throw new UserError(`${dir}: ${files.length} images where the subset takes the first ${count}`);
    }
    picks.push([folder, files.slice(0, count)]);
  }
  const tmp = tempName(to);
  const parts: string[] = [];
  try {
    await Deno.mkdir(dirname(to), { recursive: true });
    for (const [folder, files] of picks) {
      await Deno.mkdir(join(tmp, def.top, folder), { recursive: true });
      for (const f of files) {
        const bytes = await Deno.readFile(join(root, folder, f));
        await Deno.writeFile(join(tmp, def.top, folder, f), bytes);
        parts.push(`${folder}/${f}`, hashBytes(bytes));
      }
      log(`${folder}: ${files.length} images (${files[0]} ... ${files[files.length - 1]})`);
    }
    await Deno.rename(tmp, to);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw fsError(e, "cannot write", to);
  }
  return { dir: to, images: parts.length / 2, fingerprint: hashText(...parts) };
}

/** The subset named `name`, or a {@link UserError} listing the names there are. */
export function subsetNamed(name: string): SubsetDefinition {
  const def = SUBSETS[name];
  if (!def) throw new UserError(`unknown subset "${name}" (there are: ${Object.keys(SUBSETS).join(", ")})`);
  return def;
}

/** The spec of a subset's data (`caltech101:DIR`) once made. */
export function subsetSpec(def: SubsetDefinition, dir: string): string {
  return `${def.format}:${dir}`;
}
