/**
 * `deno task companion --out DIR [--notebooks LIST] [--executed DIR]`
 *
 * Writes the companion as a static site into DIR, to read beside the paper:
 * - `index.html`: the pipeline, stage by stage, and the notebooks;
 * - one page per stage of the method: the paper's words (the module
 *   documentation, which quotes them), the numbers of both method presets
 *   with their sources (lib/presets.ts), and the code that implements it;
 * - `fidelity.html`: FIDELITY.md, every number of the method side by side;
 * - one page per notebook, executed, with its pictures and charts
 *   (`plotly.min.js` beside them, so the site works offline).
 *
 * The notebooks are executed headless with Deno's Jupyter kernel
 * (`tests/run_notebooks.py`, which needs Jupyter: see docs/usage.md), all of them
 * or those `--notebooks` names (`02_augmentations,04_table1`);
 * `--executed DIR` takes notebooks executed before instead (executions of
 * the notebooks as they are now). The committed notebooks stay without
 * outputs. DIR is new, empty, or a site written before (lib/util/output_folder.ts).
 *
 * @module
 */
import { basename, join } from "node:path";
import { Marked, marked } from "marked";
import { parseFlags, runTask } from "../lib/util/cli.ts";
import { UserError } from "../lib/util/errors.ts";
import { exists, writeFileAtomic } from "../lib/util/fsutil.ts";
import { escapeHtml } from "../lib/util/html.ts";
import { outputFolder } from "../lib/util/output_folder.ts";
import { METHODS, numberPaths, SOURCES } from "../lib/presets.ts";

const USAGE = "deno task companion --out DIR [--notebooks 00_data,04_table1,...] [--executed DIR]";
const ROOT = new URL("../", import.meta.url);
const here = (path: string) => new URL(path, ROOT).pathname;

/** The stages of the method, as the paper presents them, with the modules that implement each. */
const STAGES = [
  {
    id: "seeds",
    title: "Seed patches",
    section: "§3",
    modules: ["lib/seeds.ts"],
    numbers: "seeds.",
  },
  {
    id: "surrogate",
    title: "Transformations and surrogate classes",
    section: "§3",
    modules: ["lib/augment.ts", "lib/surrogate.ts"],
    numbers: "augment.",
  },
  { id: "networks", title: "Networks", section: "§5.1", modules: ["lib/nets.ts"], numbers: "net." },
  {
    id: "pretraining",
    title: "Pretraining on the surrogate task",
    section: "§4, §5.1",
    modules: ["lib/train.ts", "lib/compute/sgd.ts", "lib/schedule.ts"],
    numbers: "train.",
  },
  {
    id: "evaluation",
    title: "Features, the linear SVM and the protocols",
    section: "§5.1",
    modules: ["lib/features.ts", "lib/svm.ts", "lib/protocols.ts", "lib/evaluate.ts"],
    numbers: "eval.",
  },
  { id: "table1", title: "Table 1", section: "§5.2", modules: ["lib/table1.ts"], numbers: null },
  {
    id: "experiments",
    title: "The paper's experiments: N, K, the transformations, invariance",
    section: "§5",
    modules: ["lib/experiment.ts", "lib/invariance.ts"],
    numbers: null,
  },
] as const;

/** The module documentation of a source file (its first doc comment, ending in `@module`), as Markdown. */
export function moduleDoc(source: string): string {
  const m = /\/\*\*([\s\S]*?)\*\//.exec(source);
  if (!m || !m[1].includes("@module")) return "";
  return m[1].split("\n").map((l) => l.replace(/^\s*\* ?/, "")).filter((l) => l.trim() !== "@module").join("\n")
    .replace(/\{@link ([^}]+)\}/g, "`$1`").trim();
}

/** A page of the site: the shared header, `body`, and the check every page runs after loading. */
function page(title: string, body: string, opts: { plotly?: boolean } = {}): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} - Exemplar-CNN companion</title>
<link rel="stylesheet" href="style.css">${opts.plotly ? '\n<script src="plotly.min.js"></script>' : ""}</head>
<body><nav><a href="index.html">Exemplar-CNN companion</a></nav><main>
<h1>${escapeHtml(title)}</h1>
${body}
</main>
<script>
// Records on <body> how many pictures loaded and how many charts were drawn (read by the companion's test).
const charts = [...document.querySelectorAll("[data-figure]")].map((el) =>
  Plotly.newPlot(el, JSON.parse(el.dataset.figure).data, JSON.parse(el.dataset.figure).layout, { staticPlot: true })
    .then(() => { el.dataset.chart = "drawn"; })
);
window.addEventListener("load", async () => {
  await Promise.all(charts);
  const imgs = [...document.images];
  document.body.dataset.images = String(imgs.length);
  document.body.dataset.imagesLoaded = String(imgs.filter((i) => i.complete && i.naturalWidth > 0).length);
  document.body.dataset.charts = String(charts.length);
  document.body.dataset.chartsDrawn = String(document.querySelectorAll('[data-chart="drawn"]').length);
});
</script></body></html>
`;
}

const STYLE = `body { font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #222; }
nav { background: #234; padding: 0.5em 1em; } nav a { color: #fff; text-decoration: none; font-weight: 600; }
main { max-width: 1100px; margin: 0 auto; padding: 1em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 13px; }
blockquote { border-left: 4px solid #9ab; margin: 0.5em 0; padding: 0 1em; color: #345; }
table { border-collapse: collapse; font-size: 14px; } td, th { border: 1px solid #ccc; padding: 0.3em 0.5em; vertical-align: top; }
.cell { margin: 1em 0; } .output { border-left: 3px solid #ccd; padding-left: 0.8em; margin: 0.4em 0; }
.output img { max-width: 100%; }
`;

/** Renders a value of a preset for the table. */
const show = (v: unknown) => escapeHtml(JSON.stringify(v));

/** The numbers of one stage, for both presets, with their sources. */
function numbersTable(prefix: string): string {
  const rows = numberPaths().filter((p) => p.startsWith(prefix)).map((path) => {
    const [group, key] = path.split(".");
    const value = (m: keyof typeof METHODS) =>
      (METHODS[m] as unknown as Record<string, Record<string, unknown>>)[group][key];
    const src = SOURCES[path];
    return `<tr><td><code>${escapeHtml(path)}</code></td><td>${show(value("paper"))}</td><td>${
      escapeHtml(src.paper)
    }</td><td>${show(value("release"))}</td><td>${escapeHtml(src.release)}</td></tr>`;
  });
  return `<table><tr><th>number</th><th>paper preset</th><th>the paper says</th><th>release preset</th><th>the release does</th></tr>
${rows.join("\n")}</table>`;
}

/** One stage's page: module documentation (the paper's words), its numbers, its code. */
async function stagePage(stage: typeof STAGES[number]): Promise<string> {
  const parts: string[] = [`<p>Paper (arXiv 1406.6909 v2) ${stage.section}.</p>`];
  for (const m of stage.modules) {
    const source = await Deno.readTextFile(here(m));
    parts.push(`<h2><code>${m}</code></h2>`, await marked.parse(moduleDoc(source)));
  }
  if (stage.numbers) parts.push("<h2>Its numbers, in both presets (lib/presets.ts)</h2>", numbersTable(stage.numbers));
  parts.push("<h2>The code</h2>");
  for (const m of stage.modules) {
    const source = await Deno.readTextFile(here(m));
    parts.push(
      `<details><summary><code>${m}</code> (${source.split("\n").length} lines)</summary><pre><code>${
        escapeHtml(source)
      }</code></pre></details>`,
    );
  }
  return page(`${stage.title} (paper ${stage.section})`, parts.join("\n"));
}

interface NotebookCell {
  cell_type: string;
  source: string | string[];
  outputs?: { output_type: string; text?: string | string[]; data?: Record<string, unknown>; evalue?: string }[];
}

const joined = (s: string | string[] | undefined) => Array.isArray(s) ? s.join("") : s ?? "";

/** Where a link or picture of computed Markdown may point: the web, mail, the page itself, or a relative path. */
const SAFE_URL = /^(?:https?:|mailto:|#|[^:]*$)/i;

/**
 * Markdown that a cell computed (Table 1 with a run's data paths and scale, say) holds values from the user's files:
 * it is rendered with its raw HTML as text, and a link or picture pointing anywhere else (`javascript:`) as its text.
 */
const computedMarkdown = new Marked({
  renderer: {
    html: ({ text }) => escapeHtml(text),
    link(token) {
      return SAFE_URL.test(token.href) ? false : this.parser.parseInline(token.tokens);
    },
    image: (token) => SAFE_URL.test(token.href) ? false : escapeHtml(token.text),
  },
});

/**
 * One output of a code cell: a chart, a picture (HTML or PNG), or text. Text, charts and Markdown are escaped. HTML
 * goes in as it is: the notebook is the project's own (see {@link readExecuted}), and its HTML comes from the display
 * helpers of lib/util/viz.ts, which escape every value they write.
 */
function outputHtml(o: NonNullable<NotebookCell["outputs"]>[number]): string {
  if (o.output_type === "stream") return `<pre>${escapeHtml(joined(o.text))}</pre>`;
  if (o.output_type === "error") return `<pre>error: ${escapeHtml(o.evalue ?? "")}</pre>`;
  const d = o.data ?? {};
  const fig = d["application/vnd.plotly.v1+json"];
  if (fig) return `<div class="chart" data-figure="${escapeHtml(JSON.stringify(fig))}"></div>`;
  if (d["text/html"]) return joined(d["text/html"] as string | string[]);
  if (d["image/png"]) return `<img src="data:image/png;base64,${escapeHtml(joined(d["image/png"] as string))}">`;
  if (d["text/markdown"]) {
    return computedMarkdown.parse(joined(d["text/markdown"] as string), { async: false }) as string;
  }
  return `<pre>${escapeHtml(joined(d["text/plain"] as string | string[]))}</pre>`;
}

/** An executed notebook as a page. */
function notebookPage(name: string, nb: { cells: NotebookCell[] }): string {
  const cells = nb.cells.map((c) => {
    if (c.cell_type === "markdown") {
      return `<div class="cell">${marked.parse(joined(c.source), { async: false })}</div>`;
    }
    if (c.cell_type !== "code") return "";
    const outs = (c.outputs ?? []).map((o) => `<div class="output">${outputHtml(o)}</div>`).join("\n");
    return `<div class="cell"><pre><code>${escapeHtml(joined(c.source))}</code></pre>${outs}</div>`;
  });
  return page(`Notebook ${name}`, cells.join("\n"), { plotly: true });
}

/**
 * Reads an executed notebook, which must be an execution of the project's notebook `source` as it is now (the same
 * cells): the companion shows its outputs, HTML included, as the project's own.
 */
async function readExecuted(path: string, source: string): Promise<{ cells: NotebookCell[] }> {
  let nb: { cells?: NotebookCell[] };
  try {
    nb = JSON.parse(await Deno.readTextFile(path));
  } catch {
    throw new UserError(`${path}: not a notebook (not JSON)`);
  }
  const cells = (n: { cells?: NotebookCell[] }) => (n.cells ?? []).map((c) => `${c.cell_type}\n${joined(c.source)}`);
  const committed = JSON.parse(await Deno.readTextFile(source));
  if (!Array.isArray(nb?.cells) || JSON.stringify(cells(nb)) !== JSON.stringify(cells(committed))) {
    throw new UserError(
      `${path}: not an execution of ${source.slice(here("").length)} as it is now (the cells differ); ` +
        `execute it again, or leave out --executed`,
    );
  }
  return nb as { cells: NotebookCell[] };
}

/** Executes notebooks headless into `dir`, with the project's strict runner. */
async function executeNotebooks(paths: string[], dir: string): Promise<void> {
  const python = "/usr/bin/python3";
  const check = await new Deno.Command(python, { args: ["-c", "import nbformat, jupyter_client"], stderr: "null" })
    .output().catch(() => null);
  if (!check?.success) {
    throw new UserError(
      "executing the notebooks needs Jupyter: apt-get install --no-install-recommends jupyter-nbconvert jupyter-client && deno jupyter --install",
    );
  }
  console.error(`executing ${paths.length} notebook(s) with Deno's kernel ...`);
  const r = await new Deno.Command(python, {
    args: [here("tests/run_notebooks.py"), "--out", dir, ...paths],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!r.success) throw new UserError("a notebook failed (above); the companion was not written");
}

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    out: { type: "string", help: "folder the site is written into: new, empty, or an earlier site (required)" },
    notebooks: { type: "string", help: "comma-separated notebooks to execute and include (default: all)" },
    executed: { type: "string", help: "a folder of the notebooks, executed before as they are now (skips executing)" },
  }, USAGE);
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  if (!values.out) throw new UserError(`--out DIR is required (usage: ${USAGE})`);
  const all = [...Deno.readDirSync(here("notebooks"))].map((e) => e.name).filter((n) => n.endsWith(".ipynb")).sort();
  const wanted = values.notebooks === undefined
    ? all
    : values.notebooks.split(",").map((n) => n.trim().replace(/\.ipynb$/, "") + ".ipynb");
  for (const n of wanted) {
    if (!all.includes(n)) throw new UserError(`--notebooks: no notebook ${n} (there are: ${all.join(", ")})`);
  }

  // The site's folder is checked before the notebooks run (minutes), and made only when the pages are written.
  const out = outputFolder(values.out, { task: "companion", flag: "--out" });
  let executed = values.executed;
  const tmp = executed ? null : await Deno.makeTempDir({ prefix: "exemplar-companion-" });
  try {
    if (!executed) {
      executed = tmp!;
      await executeNotebooks(wanted.map((n) => here(`notebooks/${n}`)), executed);
    }
    // Every executed notebook is read and checked before anything is written.
    const notebooks: { name: string; html: string }[] = [];
    for (const n of wanted) {
      const path = join(executed, n);
      if (!exists(path)) throw new UserError(`${path}: no executed notebook there`);
      const name = basename(n, ".ipynb");
      notebooks.push({ name, html: notebookPage(name, await readExecuted(path, here(`notebooks/${n}`))) });
    }
    await out.make();
    await writeFileAtomic(join(out.path, "style.css"), STYLE);
    await writeFileAtomic(
      join(out.path, "plotly.min.js"),
      await Deno.readFile(here("node_modules/plotly.js-dist-min/plotly.min.js")),
    );
    for (const stage of STAGES) {
      await writeFileAtomic(join(out.path, `stage-${stage.id}.html`), await stagePage(stage));
    }
    for (const nb of notebooks) await writeFileAtomic(join(out.path, `notebook-${nb.name}.html`), nb.html);
    const fidelity = await Deno.readTextFile(here("FIDELITY.md"));
    await writeFileAtomic(
      join(out.path, "fidelity.html"),
      page(
        "Every number of the method: the paper, the release, this project",
        await marked.parse(fidelity.split("\n").slice(1).join("\n")),
      ),
    );
    const readme = await Deno.readTextFile(here("README.md"));
    const intro = readme.split("\n## ")[0].split("\n").slice(1).join("\n");
    // The pictures the introduction shows, beside it.
    for (const [, src] of intro.matchAll(/!\[[^\]]*\]\((docs\/[\w.-]+\.png)\)/g)) {
      await writeFileAtomic(join(out.path, src), await Deno.readFile(here(src)));
    }
    const index = [
      await marked.parse(intro),
      "<h2>The method, stage by stage</h2><ol>",
      ...STAGES.map((s) => `<li><a href="stage-${s.id}.html">${escapeHtml(s.title)}</a> (paper ${s.section})</li>`),
      "</ol>",
      "<p><a href=\"fidelity.html\">Every number of the method</a>: the paper's words, the release's value, both presets, the code and the test of each.</p>",
      "<h2>The notebooks, executed</h2><ul>",
      ...notebooks.map(({ name }) => `<li><a href="notebook-${name}.html">${escapeHtml(name)}</a></li>`),
      "</ul>",
    ].join("\n");
    await writeFileAtomic(join(out.path, "index.html"), page("Exemplar-CNN, a companion to the paper", index));
    console.log(
      `companion written: ${join(out.path, "index.html")} (${STAGES.length} stages, ${notebooks.length} notebooks)`,
    );
  } finally {
    if (tmp) await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) runTask(main);
