/**
 * Table 1 of the paper (paper §5.2; PAPER.md "Table 1") beside what this project
 * measures. The paper's numbers live in one data file, `data/table1.json`,
 * with their source; every measured cell is labelled with the scale it was
 * made at (data, network, N, K, steps, samples), because a run on two CPU
 * cores for minutes is not the paper's 1.5-9 GPU-days.
 *
 * Outputs: `table1.md`, `table1.html` (the table and a Plotly chart of paper
 * versus measured, working offline with `plotly.min.js` beside it) and
 * `table1-chart.json` (the chart's figure).
 *
 * @module
 */
import { join } from "node:path";
import type { EvaluationResults } from "./evaluate.ts";
import { writeFileAtomic } from "./util/fsutil.ts";
import { escapeHtml, scriptJson } from "./util/html.ts";
import { PROTOCOL_COLUMN, type ProtocolResult } from "./protocols.ts";
import type { PlotlyFigure } from "./util/viz.ts";

/** The paper's table. */
export interface Table1Data {
  /** Where the numbers come from. */
  source: string;
  /** The data-set columns. */
  columns: string[];
  /** Where the NIPS 2014 version's cells (`nips` of a row) come from. */
  nipsSource?: string;
  /**
   * One row per method: its cells as printed in the paper (null: not reported), and where the NIPS 2014 version
   * printed another value, that value (`nips`, null where it is the same or not transcribed).
   */
  rows: { method: string; net?: string; cells: (string | null)[]; nips?: (string | null)[] }[];
}

/** A paper row's cells, each with the NIPS version's value beside it where that differs. */
export function paperCells(row: Table1Data["rows"][number]): (string | null)[] {
  return row.cells.map((c, i) => (c !== null && row.nips?.[i] ? `${c} (NIPS: ${row.nips[i]})` : c));
}

/** Reads `data/table1.json`. */
export async function loadTable1(): Promise<Table1Data> {
  return JSON.parse(await Deno.readTextFile(new URL("../data/table1.json", import.meta.url)));
}

/** The scale label of a result: what the measured numbers were made at. */
export function scaleLabel(r: EvaluationResults): string {
  const s = r.scale;
  return `data ${s.data}, ${s.net}, N=${s.N}, K=${s.K}, ${s.steps} steps (${s.samples} samples), method ${
    s.method ?? (s as { preset?: string }).preset
  }; evaluated on ${r.evalData}`;
}

const pm = (m: number, s: number) => `${m.toFixed(1)} ± ${s.toFixed(1)}`;

/** Measured rows: learned features and the two baselines, each with its scale. */
export function measuredRows(
  results: EvaluationResults[],
  columns: string[],
): { method: string; cells: (string | null)[]; scale: string }[] {
  const rows: { method: string; cells: (string | null)[]; scale: string }[] = [];
  for (const r of results) {
    const col = columns.indexOf(PROTOCOL_COLUMN[r.protocol]);
    const cell = (p: { mean: number; std: number } | undefined) =>
      columns.map((_, i) => (i === col && p ? pm(p.mean, p.std) : null));
    const label = scaleLabel(r);
    rows.push({ method: `Exemplar-CNN (${r.scale.net}), measured`, cells: cell(r.learned), scale: label });
    if (r.random) rows.push({ method: `Same network, random weights, measured`, cells: cell(r.random), scale: label });
    if (r.raw) rows.push({ method: `Raw pixels (32x32), measured`, cells: cell(r.raw), scale: label });
    // The same features, classified by weighted kNN instead of the linear SVM.
    const knn = (p: ProtocolResult | undefined, what: string) => {
      if (p?.knn) {
        rows.push({ method: `${what}, measured, kNN (k = ${p.knn.k})`, cells: cell(p.knn), scale: label });
      }
    };
    knn(r.learned, `Exemplar-CNN (${r.scale.net})`);
    knn(r.random, "Same network, random weights");
    knn(r.raw, "Raw pixels (32x32)");
  }
  return rows;
}

/** The table in Markdown: the paper's rows, then the measured ones with their scale. */
export function table1Markdown(data: Table1Data, results: EvaluationResults[]): string {
  const head = `| method | ${data.columns.join(" | ")} |\n| --- | ${data.columns.map(() => "---").join(" | ")} |\n`;
  const line = (m: string, cells: (string | null)[]) => `| ${m} | ${cells.map((c) => c ?? "-").join(" | ")} |\n`;
  const nips = data.nipsSource ? `\n\n${data.nipsSource}` : "";
  let md = `# Table 1: the paper and this project\n\nPaper: ${data.source}${nips}\n\n${head}`;
  for (const r of data.rows) md += line(r.method, paperCells(r));
  const measured = measuredRows(results, data.columns);
  for (const r of measured) {
    md += line(`**${r.method}**`, r.cells.map((c, i) => (i === data.columns.length - 1 ? null : c)));
  }
  if (results.length) {
    md += `\nMeasured rows (in bold) were made at this scale:\n\n`;
    for (const r of results) {
      md += `- ${
        scaleLabel(r)
      }; protocol ${r.protocol} (${r.learned.metric}, ${r.learned.runs.length} runs, C = ${r.learned.C}).\n`;
    }
  } else md += `\nNo measured results yet: run \`deno task reproduce\` or \`deno task evaluate\`.\n`;
  return md;
}

/** The chart: for each measured protocol, the paper's Exemplar-CNN value and the measured ones. */
export function table1Figure(data: Table1Data, results: EvaluationResults[]): PlotlyFigure {
  const x: string[] = [],
    paper: (number | null)[] = [],
    learned: number[] = [],
    random: (number | null)[] = [],
    raw: (number | null)[] = [],
    learnedKnn: (number | null)[] = [];
  const errs: number[] = [];
  for (const r of results) {
    const col = data.columns.indexOf(PROTOCOL_COLUMN[r.protocol]);
    const row = data.rows.find((w) => w.net === r.scale.net) ?? data.rows.find((w) => w.net === "64c5-64c5-128f")!;
    x.push(`${PROTOCOL_COLUMN[r.protocol]} protocol, ${r.scale.net}, measured on ${r.evalData.split(":")[0]}`);
    paper.push(row.cells[col] ? Number.parseFloat(row.cells[col]!) : null);
    learned.push(r.learned.mean);
    errs.push(r.learned.std);
    random.push(r.random?.mean ?? null);
    raw.push(r.raw?.mean ?? null);
    learnedKnn.push(r.learned.knn?.mean ?? null);
  }
  return {
    data: [
      { type: "bar", name: "paper (Exemplar-CNN, the real data set)", x, y: paper },
      { type: "bar", name: "measured: learned features", x, y: learned, error_y: { type: "data", array: errs } },
      { type: "bar", name: "measured: random weights", x, y: random },
      { type: "bar", name: "measured: raw pixels", x, y: raw },
      ...(learnedKnn.some((v) => v !== null)
        ? [{ type: "bar", name: "measured: learned features, kNN", x, y: learnedKnn }]
        : []),
    ],
    layout: {
      title: { text: "Table 1: paper versus measured (accuracy, %)" },
      barmode: "group",
      yaxis: { title: { text: "accuracy (%)" }, range: [0, 100] },
    },
  };
}

/** The HTML page: chart and table; loads `plotly.min.js` from its own folder. */
export function table1Html(data: Table1Data, results: EvaluationResults[]): string {
  const fig = table1Figure(data, results);
  const rows = data.rows.map((r) => ({ ...r, cells: paperCells(r), measured: false, scale: "" }))
    .concat(measuredRows(results, data.columns).map((r) => ({ ...r, measured: true })));
  const th = data.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const trs = rows.map((r) =>
    `<tr${r.measured ? ' class="measured" title="' + escapeHtml(r.scale) + '"' : ""}><td>${escapeHtml(r.method)}</td>${
      r.cells.map((c) => `<td>${c === null ? "-" : escapeHtml(c)}</td>`).join("")
    }</tr>`
  ).join("\n");
  const scales = results.map((r) => `<li>${escapeHtml(scaleLabel(r))}</li>`).join("");
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Exemplar-CNN: Table 1</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}tr.measured{background:#eef6ff;font-weight:bold}</style>
<script src="plotly.min.js"></script></head>
<body><h1>Table 1: the paper and this project</h1>
<div id="chart" style="width:900px;height:480px"></div>
<table><tr><th>method</th>${th}</tr>
${trs}</table>
<p>Paper: ${escapeHtml(data.source)}</p>${data.nipsSource ? `<p>${escapeHtml(data.nipsSource)}</p>` : ""}
<p>Measured rows were made at this scale:</p><ul>${scales}</ul>
<script>
const fig = ${scriptJson(fig)};
Plotly.newPlot("chart", fig.data, fig.layout).then(() => document.body.setAttribute("data-chart", "drawn"));
</script></body></html>
`;
}

/** Writes table1.md, table1.html (with plotly.min.js beside it) and table1-chart.json into `dir`. */
export async function writeTable1(dir: string, results: EvaluationResults[]): Promise<{ md: string; html: string }> {
  const data = await loadTable1();
  const md = table1Markdown(data, results);
  await writeFileAtomic(join(dir, "table1.md"), md);
  await writeFileAtomic(join(dir, "table1-chart.json"), JSON.stringify(table1Figure(data, results), null, 1) + "\n");
  const plotly = await Deno.readFile(new URL("../node_modules/plotly.js-dist-min/plotly.min.js", import.meta.url));
  await writeFileAtomic(join(dir, "plotly.min.js"), plotly);
  await writeFileAtomic(join(dir, "table1.html"), table1Html(data, results));
  return { md: join(dir, "table1.md"), html: join(dir, "table1.html") };
}
