/**
 * `deno task fidelity`: writes FIDELITY.md, the side-by-side table of the method (the paper, the authors' release,
 * this project's two presets, the code and the test of every number), from lib/presets.ts and lib/fidelity.ts.
 *
 * @module
 */
import { fidelityMarkdown } from "../lib/fidelity.ts";
import { parseFlags, runTask } from "../lib/util/cli.ts";
import { UserError } from "../lib/util/errors.ts";
import { writeFileAtomic } from "../lib/util/fsutil.ts";

async function main(args: string[]): Promise<void> {
  const { positionals } = parseFlags(args, {}, "deno task fidelity", "Writes FIDELITY.md from lib/presets.ts.");
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: deno task fidelity)`);
  const path = new URL("../FIDELITY.md", import.meta.url).pathname;
  await writeFileAtomic(path, fidelityMarkdown());
  console.log(`written: ${path}`);
}

if (import.meta.main) runTask(main);
