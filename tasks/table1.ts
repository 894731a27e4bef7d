/**
 * `deno task table1 [--run DIR ...] [--out DIR]`
 *
 * Writes Table 1 (table1.md, table1.html, table1-chart.json) with the paper's
 * numbers and the measured results of the given run folders (their
 * results.json, from `deno task evaluate` or `reproduce`), and prints the
 * Markdown table.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { parseFlags, runTask } from "../lib/util/cli.ts";
import { UserError } from "../lib/util/errors.ts";
import { type EvaluationResults, readResults } from "../lib/evaluate.ts";
import { exists } from "../lib/util/fsutil.ts";
import { isRunFolder, outputFolder } from "../lib/util/output_folder.ts";
import { writeTable1 } from "../lib/table1.ts";
import { lockFolder } from "../lib/util/lock.ts";

const USAGE = "deno task table1 [--run DIR ...] [--out DIR]";

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    args,
    {
      out: {
        type: "string",
        help: "folder for table1.md and table1.html: new, empty, written before, or a run folder (default: the run " +
          "folder, or runs/table1)",
      },
      run: { type: "string", multiple: true, help: "a run folder with results.json (repeatable)" },
    },
    USAGE,
  );
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  // A run named twice is one run (one row each).
  const given = ((values as Record<string, unknown>).run as string[] | undefined) ?? [];
  const runs = given.filter((r, i) => given.findIndex((o) => resolve(o) === resolve(r)) === i);
  const out = (values.out as string | undefined) ?? (runs.length === 1 ? runs[0] : join("runs", "table1"));
  // The table goes beside a run's own files (while no other task uses the run), or into a folder of its own; not
  // into the folder of a run it does not show, whose table1.md is that run's.
  const flag = values.out ? "--out" : runs.length === 1 ? "--run" : "the default folder";
  const folder = outputFolder(out, { task: "table1", flag, runFolder: true });
  if (runs.length && isRunFolder(out) && !runs.some((r) => resolve(r) === resolve(out))) {
    throw new UserError(
      `${flag} ${out} is the folder of a run that is not among the --run folders; give a folder of its own, or ` +
        `that run with --run`,
    );
  }
  const results: EvaluationResults[] = [];
  for (const r of runs) {
    const p = join(r, "results.json");
    if (!exists(p)) throw new UserError(`--run ${r}: no results.json there (run deno task evaluate --run ${r} first)`);
    results.push(await readResults(p));
  }
  const lock = isRunFolder(out) ? await lockFolder(out) : null;
  let paths;
  try {
    await folder.make();
    paths = await writeTable1(out, results);
  } finally {
    lock?.release();
  }
  console.log(await Deno.readTextFile(paths.md));
  console.error(`written: ${paths.md}, ${paths.html}`);
}

if (import.meta.main) runTask(main);
