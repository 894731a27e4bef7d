/**
 * Type-checks the notebooks: each notebook's code cells, in order, become one module (in a temporary folder beside
 * the notebooks, so that their imports resolve as the notebook's do), checked with `deno check` as the project's
 * own code is. A cell that calls the API with an option it no longer has fails here, not in a reader's Jupyter.
 *
 * `deno run -A tests/check_notebooks.ts [NOTEBOOK.ipynb ...]` (default: every notebook in notebooks/); exit 1 and
 * deno check's report on a type error.
 */
import { basename, dirname, join, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const notebooksDir = join(ROOT, "notebooks");
const paths = Deno.args.length
  ? Deno.args.map((p) => resolve(p))
  : [...Deno.readDirSync(notebooksDir)].filter((e) => e.name.endsWith(".ipynb")).map((e) => join(notebooksDir, e.name))
    .sort();

/** A notebook's code cells as one module whose relative imports point one folder further up. */
export function notebookModule(nb: { cells: { cell_type: string; source: string | string[] }[] }): string {
  return nb.cells.filter((c) => c.cell_type === "code")
    .map((c) => (Array.isArray(c.source) ? c.source.join("") : c.source).replace(/(from\s+["'])\.\.\//g, "$1../../"))
    .join(";\n\n") + ";\nexport {};\n";
}

const dir = await Deno.makeTempDir({ dir: notebooksDir, prefix: ".typecheck-" });
try {
  const modules: string[] = [];
  for (const p of paths) {
    const file = join(dir, basename(p, ".ipynb") + ".ts");
    await Deno.writeTextFile(file, notebookModule(JSON.parse(await Deno.readTextFile(p))));
    modules.push(file);
  }
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", ...modules],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!r.success) {
    console.error(
      `error: the notebooks do not type-check (above: ${dir.replace(ROOT + "/", "")}/NAME.ts is NAME.ipynb's code)`,
    );
    Deno.exitCode = 1;
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
