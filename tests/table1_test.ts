import assert from "node:assert/strict";
import { loadTable1, table1Markdown } from "../lib/table1.ts";
import { listTree, oneLineError, renderedDom, task, tempDir } from "./helpers.ts";

Deno.test("Table 1: the paper's numbers come from the data file, with their source", async () => {
  const t = await loadTable1();
  assert.match(t.source, /arXiv:1406\.6909 v2/);
  const small = t.rows.find((r) => r.net === "64c5-64c5-128f")!;
  assert.deepEqual(small.cells.slice(0, 5), ["67.1 ± 0.2", "69.7 ± 0.3", "76.5", "79.8 ± 0.5", "42.4 ± 0.3"]);
  const md = table1Markdown(t, []);
  assert.match(md, /\| Exemplar-CNN \(92c5-256c5-512c5-1024f\) \| 74\.2 ± 0\.4 \|/);
  assert.match(md, /No measured results yet/);
  // The NIPS version's values where they differ, beside the v2 ones, with their source.
  assert.match(t.nipsSource!, /NIPS 2014/);
  assert.match(
    md,
    /\| Exemplar-CNN \(64c5-128c5-256c5-512f\) \| 72\.8 ± 0\.4 \| 75\.4 ± 0\.2 \(NIPS: 75\.3 ± 0\.2\) \| 82\.2 \(NIPS: 82\.0\) \|/,
  );
  assert.match(md, /\| Exemplar-CNN \(92c5-256c5-512c5-1024f\) \| 74\.2 ± 0\.4 \| 76\.6 ± 0\.2 \| 84\.3 \|/);
});

Deno.test("reproduce (tiny) writes Table 1, and its chart really draws in headless Chromium", async () => {
  await using tmp = await tempDir();
  const out = `${tmp.path}/run`;
  const r = await task("reproduce", ["--scale", "tiny", "--out", out], { EXEMPLAR_CACHE: `${tmp.path}/cache` });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\*\*Exemplar-CNN \(16c5-16c5-32f\), measured\*\* \| \d+\.\d ± \d+\.\d \|/);
  assert.match(r.stdout, /N=40, K=10, 30 steps \(960 samples\)/);
  assert.match(r.stdout, /run folder: /);
  const results = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
  assert.equal(results.learned.runs.length, 10);
  assert.ok(results.random && results.raw);
  // Weighted kNN beside the SVM, on the same runs, for the learned features and both baselines.
  for (const p of [results.learned, results.random, results.raw]) {
    assert.equal(p.knn.k, 20);
    assert.equal(p.knn.runs.length, 10);
  }
  assert.match(r.stdout, /Exemplar-CNN \(16c5-16c5-32f\), measured, kNN \(k = 20\)\*\* \| \d+\.\d ± \d+\.\d \|/);
  assert.match(r.stdout, /weighted kNN \(k = 20, T = 0\.07\) on the same features: learned \d+\.\d+ %/);
  // The run folder a colleague can read: what it was made with, and its training curves.
  const env = JSON.parse(await Deno.readTextFile(`${out}/config.json`)).environment;
  assert.equal(env.deno, Deno.version.deno);
  assert.match(env.tfjs, /^\d+\.\d+\.\d+$/);
  assert.ok(env.backend.name && env.cpu.cores >= 1);
  if (env.git) assert.match(env.git.revision, /^[0-9a-f]{40}$/);
  // The same run again from its config.json: the same settings, the same training numbers.
  const again = await task("reproduce", ["--config", `${out}/config.json`], { EXEMPLAR_CACHE: `${tmp.path}/cache` });
  assert.equal(again.code, 0, again.stderr);
  const rows = async (dir: string) =>
    (await Deno.readTextFile(`${dir}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l).loss);
  assert.deepEqual(
    JSON.parse(await Deno.readTextFile(`${out}-again/config.json`)).train,
    JSON.parse(await Deno.readTextFile(`${out}/config.json`)).train,
  );
  assert.deepEqual(await rows(`${out}-again`), await rows(out));
  const curves = await renderedDom(`${out}/curves.html`, `${tmp.path}/chromium-curves`);
  assert.match(curves, /data-chart="drawn"/, "the training curves draw");
  const html = await renderedDom(`${out}/table1.html`, `${tmp.path}/chromium`);
  assert.match(html, /data-chart="drawn"/, "Plotly.newPlot resolved");
  assert.match(html, /class="main-svg"/, "the chart's SVG is in the page");
  assert.ok((html.match(/class="point"/g) ?? []).length >= 3, "bars were drawn");
});

/** Reverses the character references a serialised DOM uses in text and attribute values. */
const unescape = (s: string) =>
  s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

Deno.test("Table 1's page shows hostile results.json fields and data paths as text, and runs none of them", async () => {
  await using tmp = await tempDir();
  const run = `${tmp.path}/run`;
  await Deno.mkdir(run);
  // A data path with a quote that would end the row's title attribute, and fields that would end the chart's script.
  const path = `caltech101:/data/a" autofocus tabindex="0" onfocus="document.title='pwned'" x="<b>`;
  const script = `</script><script>document.title='pwned'</script><!--`;
  const result = (mean: number) => ({
    protocol: "caltech101",
    metric: "mean per-class accuracy",
    mean,
    std: 1,
    runs: [mean],
    C: 0.01,
    cScores: [],
    trainPerRun: 30,
    test: 20,
    dim: 64,
  });
  await Deno.writeTextFile(
    `${run}/results.json`,
    JSON.stringify({
      scale: { data: path, net: script, N: 8, K: 4, steps: 2, samples: 16, method: script },
      protocol: "caltech101",
      evalData: `${script}:x`,
      learned: result(40),
      seconds: 1,
    }),
  );
  const out = `${tmp.path}/table`;
  const r = await task("table1", ["--run", run, "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const dom = await renderedDom(`${out}/table1.html`, `${tmp.path}/chromium`);
  assert.match(dom, /<title>Exemplar-CNN: Table 1<\/title>/, "no script of the results ran");
  assert.match(dom, /data-chart="drawn"/, "the chart still draws");
  const label = `data ${path}, ${script}, N=8, K=4, 2 steps (16 samples), method ${script}; evaluated on ${script}:x`;
  const title = /<tr class="measured" title="([^"]*)">/.exec(dom);
  assert.ok(title, "the measured row keeps its one title attribute");
  assert.equal(unescape(title[1]), label);
  assert.ok(dom.includes(`<li>${label.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")}</li>`));
  // A run named twice (once with a trailing slash) is one row.
  const twice = await task("table1", ["--run", run, "--run", `${run}/`, "--out", `${tmp.path}/twice`]);
  assert.equal(twice.code, 0, twice.stderr);
  assert.equal((await Deno.readTextFile(`${tmp.path}/twice/table1.html`)).split('<tr class="measured"').length, 2);
});

Deno.test("table1: a results.json edited into other types is refused in one line; another run's folder is not --out", async () => {
  await using tmp = await tempDir();
  const result = { protocol: "stl10", metric: "accuracy", mean: 27, std: 0.5, runs: [26.5, 27.5], C: 10 };
  const valid = {
    scale: { data: "synthetic", net: "16c5-16c5-32f", N: 40, K: 10, steps: 30, samples: 960, method: "paper" },
    protocol: "stl10",
    evalData: "synthetic",
    learned: { ...result, knn: { k: 20, temperature: 0.07, mean: 11, std: 0, runs: [11, 11] } },
    random: result,
    seconds: 1,
  };
  const run = async (name: string, results: string) => {
    await Deno.mkdir(`${tmp.path}/${name}`);
    await Deno.writeTextFile(`${tmp.path}/${name}/config.json`, JSON.stringify({ train: { net: "16c5-16c5-32f" } }));
    await Deno.writeTextFile(`${tmp.path}/${name}/results.json`, results);
    return `${tmp.path}/${name}`;
  };
  const good = await run("good", JSON.stringify(valid));
  const ok = await task("table1", ["--run", good, "--out", `${tmp.path}/t`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /\*\*Exemplar-CNN \(16c5-16c5-32f\), measured\*\* \| 27\.0 ± 0\.5 \|/);
  const edits: [string, string, RegExp][] = [
    ["string", JSON.stringify(valid).replace('"std":0.5', '"std":"abc"'), /learned\.std is "abc", expected a number/],
    [
      "huge",
      JSON.stringify(valid).replace('"mean":27', '"mean":1e400'),
      /learned\.mean is Infinity, expected a number in \[0, 100\]/,
    ],
    ["knn", JSON.stringify(valid).replace('"mean":11', '"mean":"<b>11</b>"'), /learned\.knn\.mean is "<b>11<\/b>"/],
    ["protocol", JSON.stringify({ ...valid, protocol: "</td><b>x" }), /protocol is "<\/td><b>x", expected stl10, /],
    [
      "runs",
      JSON.stringify({ ...valid, random: { ...result, runs: "all" } }),
      /random\.runs is "all", expected a list/,
    ],
  ];
  for (const [name, text, re] of edits) {
    const r = await task("table1", ["--run", await run(name, text), "--out", `${tmp.path}/out-${name}`]);
    oneLineError(r, re);
    assert.equal(r.code, 2, name);
    assert.ok(!listTree(tmp.path).includes(`out-${name}`), `${name}: no output folder made`);
  }
  // Table 1 of one run is not written into another run's folder, over that run's own table.
  await Deno.writeTextFile(`${tmp.path}/string/table1.md`, "the other run's table");
  const other = await task("table1", ["--run", good, "--out", `${tmp.path}/string`]);
  oneLineError(other, /--out .*string is the folder of a run that is not among the --run folders/);
  assert.equal(await Deno.readTextFile(`${tmp.path}/string/table1.md`), "the other run's table");
});
