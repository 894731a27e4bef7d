/**
 * `deno task data inspect SPEC`
 * `deno task data preview SPEC --split NAME --index I --out FILE.png`
 * `deno task data download stl10|cifar10|caltech101|caltech256 --to DIR [--url URL] [--md5 HEX|none]`
 * `deno task data subset NAME --from DIR --to DIR` (a named subset of data/subsets.json, e.g. caltech101-mini)
 *
 * @module
 */
import { HelpRequested, intFlag, parseFlags, progressBars, runTask } from "../lib/util/cli.ts";
import { ARCHIVES, downloadArchive } from "../lib/data/download.ts";
import { DATA_SPECS, getSplit, inspectDataset, openDataset } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { refuseFileAsFolder } from "../lib/util/output_folder.ts";
import { exists, writeFileAtomic } from "../lib/util/fsutil.ts";
import { encodePng } from "../lib/util/image.ts";
import { makeSubset, subsetNamed, SUBSETS, subsetSpec } from "../lib/data/subsets.ts";

const USAGE = `deno task data inspect SPEC | preview SPEC --split NAME --index I --out FILE.png | download ${
  Object.keys(ARCHIVES).join("|")
} --to DIR | subset ${Object.keys(SUBSETS).join("|")} --from DIR --to DIR   (SPEC: ${DATA_SPECS})`;

async function main(args: string[]): Promise<void> {
  const [cmd, ...rest] = args;
  if (cmd === "--help" || cmd === "-h") {
    throw new HelpRequested(
      `usage: ${USAGE}\n\ncommands:\n  inspect SPEC    JSON: splits, sizes, classes, skipped files\n  preview SPEC    one image as a PNG (--help after it lists its flags)\n  download NAME   an official archive, resumed and checked (--help after it lists its flags)\n  subset NAME     a named subset of an official download (data/subsets.json), in its layout`,
    );
  }
  if (cmd === "inspect") {
    const { positionals } = parseFlags(rest, {}, USAGE);
    if (positionals.length !== 1) throw new UserError(`inspect takes one data spec (usage: ${USAGE})`);
    const ds = await openDataset(positionals[0], { log: (m) => console.error(m) });
    try {
      console.log(JSON.stringify(await inspectDataset(ds), null, 2));
    } finally {
      ds.close();
    }
  } else if (cmd === "preview") {
    const { values, positionals } = parseFlags(rest, {
      split: { type: "string", help: "split to show (default: the first)" },
      index: { type: "string", help: "image index (default 0)" },
      out: { type: "string", help: "PNG file to write (required)" },
    }, USAGE);
    if (positionals.length !== 1) throw new UserError(`preview takes one data spec (usage: ${USAGE})`);
    if (!values.out) throw new UserError(`preview needs --out FILE.png`);
    if (!values.out.toLowerCase().endsWith(".png")) {
      throw new UserError(`--out ${values.out}: expected a .png file name`);
    }
    if (exists(values.out)) {
      throw new UserError(`--out ${values.out}: a file is there already; name a new file (nothing is written over)`);
    }
    const ds = await openDataset(positionals[0], { log: (m) => console.error(m) });
    try {
      const split = getSplit(ds, values.split ?? Object.keys(ds.splits)[0]);
      const i = intFlag("index", values.index, 0, 0, split.length - 1);
      const img = await split.image(i);
      await writeFileAtomic(values.out, await encodePng(img));
      const label = split.labels ? ds.classNames[split.labels[i]] : "(unlabeled)";
      console.error(`${split.source(i)}: ${img.width}x${img.height}, ${label} -> ${values.out}`);
    } finally {
      ds.close();
    }
  } else if (cmd === "download") {
    const { values, positionals } = parseFlags(rest, {
      to: { type: "string", help: "folder to download and extract into (required)" },
      url: { type: "string", help: "another address for the archive (a mirror)" },
      md5: { type: "string", help: "the archive's MD5, when the mirror's differs" },
    }, USAGE);
    if (positionals.length !== 1) throw new UserError(`download takes one data set name (usage: ${USAGE})`);
    const a = ARCHIVES[positionals[0]];
    if (!a) {
      throw new UserError(
        `unknown data set "${positionals[0]}" (expected one of: ${Object.keys(ARCHIVES).join(", ")})`,
      );
    }
    if (!values.to) throw new UserError(`download needs --to DIR`);
    refuseFileAsFolder(values.to, "--to");
    if (values.md5 !== undefined && values.md5 !== "none" && !/^[0-9a-f]{32}$/i.test(values.md5)) {
      throw new UserError(`--md5 ${values.md5}: expected 32 hex digits or "none"`);
    }
    const archive = {
      ...a,
      url: values.url ?? a.url,
      md5: values.md5 === "none" ? null : values.md5 ?? a.md5,
    };
    const bars = progressBars();
    const dir = await downloadArchive(archive, values.to, {
      log: (m) => console.error(m),
      onProgress: (done, total) => {
        if (total) bars(archive.file, done / total, 1, `${(done / 1e6).toFixed(1)}/${(total / 1e6).toFixed(1)} MB`);
      },
    });
    console.log(dir);
  } else if (cmd === "subset") {
    const { values, positionals } = parseFlags(rest, {
      from: { type: "string", help: "the official download's folder (e.g. the one data download caltech101 made)" },
      to: { type: "string", help: "a new folder for the subset (required)" },
    }, USAGE);
    if (positionals.length !== 1) throw new UserError(`subset takes one subset name (usage: ${USAGE})`);
    const def = subsetNamed(positionals[0]);
    if (!values.from || !values.to) throw new UserError(`subset needs --from DIR and --to DIR`);
    refuseFileAsFolder(values.to, "--to");
    const r = await makeSubset(def, values.from, values.to, (m) => console.error(m));
    console.error(
      `${positionals[0]}: ${r.images} images, fingerprint ${r.fingerprint}; use it as --data ${subsetSpec(def, r.dir)}`,
    );
    console.log(r.dir);
  } else {
    throw new UserError(`unknown command "${cmd ?? ""}" (usage: ${USAGE})`);
  }
}

if (import.meta.main) runTask(main);
