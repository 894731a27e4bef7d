import assert from "node:assert/strict";
import { numberPaths, SOURCES } from "../lib/presets.ts";
import { exists } from "../lib/util/fsutil.ts";
import { listTree, oneLineError, renderedDom, ROOT, task, tempDir } from "./helpers.ts";

const jupyter = (await new Deno.Command("/usr/bin/python3", {
  args: ["-c", "import nbformat, jupyter_client"],
  stderr: "null",
}).output().catch(() => null))?.success ?? false;

const attr = (body: string, name: string) => Number(new RegExp(`${name}="(\\d+)"`).exec(body)?.[1] ?? NaN);

Deno.test("notebooks are committed without outputs", async () => {
  for (const e of Deno.readDirSync(`${ROOT}/notebooks`)) {
    if (!e.name.endsWith(".ipynb")) continue;
    const nb = JSON.parse(await Deno.readTextFile(`${ROOT}/notebooks/${e.name}`));
    for (const c of nb.cells) {
      if (c.cell_type === "code") assert.deepEqual(c.outputs, [], `${e.name} has outputs`);
    }
  }
});

Deno.test("every number of both presets has its source (paper and release)", () => {
  assert.deepEqual(numberPaths().sort(), Object.keys(SOURCES).sort());
  for (const [path, s] of Object.entries(SOURCES)) assert.ok(s.paper && s.release, path);
});

Deno.test({
  name:
    "companion: stage pages with the paper's words, numbers and code; the executed notebook's pictures and charts load",
  ignore: !jupyter,
  fn: async () => {
    await using tmp = await tempDir();
    const out = `${tmp.path}/site`;
    const r = await task("companion", ["--out", out, "--notebooks", "04_table1"], {
      EXEMPLAR_CACHE: `${tmp.path}/cache`,
    });
    assert.equal(r.code, 0, r.stderr);
    const index = await Deno.readTextFile(`${out}/index.html`);
    const links = [...index.matchAll(/href="([^"]+\.html)"/g)].map((m) => m[1]);
    assert.ok(links.includes("notebook-04_table1.html"));
    for (const link of links) assert.ok((await Deno.stat(`${out}/${link}`)).isFile, link);
    const surrogate = await Deno.readTextFile(`${out}/stage-surrogate.html`);
    assert.match(surrogate, /vertical or horizontal translation by a distance within 0.2 of the patch size/);
    assert.match(surrogate, /<code>augment\.translation<\/code><\/td><td>0\.2<\/td>/);
    assert.match(surrogate, /export function transformPatch/);
    // The notebook page, as a browser shows it: every picture loaded, every chart drawn.
    const dom = await renderedDom(`${out}/notebook-04_table1.html`, `${tmp.path}/chromium`);
    const body = /<body[^>]*>/.exec(dom)?.[0] ?? "";
    assert.ok(attr(body, "data-images") >= 1, body);
    assert.equal(attr(body, "data-images-loaded"), attr(body, "data-images"), body);
    assert.ok(attr(body, "data-charts") >= 1, body);
    assert.equal(attr(body, "data-charts-drawn"), attr(body, "data-charts"), body);
  },
});

Deno.test("FIDELITY.md is the table the presets make; every number has its code and an existing test", async () => {
  const { fidelityMarkdown, IMPLEMENTATIONS } = await import("../lib/fidelity.ts");
  assert.deepEqual(Object.keys(IMPLEMENTATIONS).sort(), numberPaths().sort());
  const tests = new Map<string, string>();
  for (const e of Deno.readDirSync(`${ROOT}/tests`)) {
    if (e.name.endsWith(".ts")) tests.set(`tests/${e.name}`, await Deno.readTextFile(`${ROOT}/tests/${e.name}`));
  }
  for (const [path, { code, test }] of Object.entries(IMPLEMENTATIONS)) {
    const [file, name] = test.split(": ", 2) as [string, string];
    const source = tests.get(file) ?? "";
    // The test names are written literally, or (for the signal tests) with a template.
    assert.ok(source.includes(JSON.stringify(name)) || source.includes(name), `${path}: no test "${name}" in ${file}`);
    for (const part of code.split("; ")) {
      const [module, ...symbols] = part.split(/[ ,]+/).filter(Boolean);
      const text = await Deno.readTextFile(`${ROOT}/${module}`);
      for (const s of symbols) assert.ok(text.includes(s.split(".").at(-1)!), `${path}: ${s} not in ${module}`);
    }
  }
  const committed = await Deno.readTextFile(`${ROOT}/FIDELITY.md`);
  assert.equal(committed, fidelityMarkdown(), "FIDELITY.md differs from the presets: run deno task fidelity");
});

/** The committed notebook 04_table1 as if executed, with `outputs` as the outputs of its first code cell. */
async function executedWith(dir: string, outputs: unknown[]): Promise<void> {
  const nb = JSON.parse(await Deno.readTextFile(`${ROOT}/notebooks/04_table1.ipynb`));
  nb.cells.find((c: { cell_type: string }) => c.cell_type === "code").outputs = outputs;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/04_table1.ipynb`, JSON.stringify(nb));
}

const PWN = `document.title='pwned'`;

Deno.test("companion: values a notebook computed show as text on its page; none of their scripts runs", async () => {
  await using tmp = await tempDir();
  const executed = `${tmp.path}/executed`;
  // Table 1 in Markdown whose data path holds HTML and a javascript: link, a chart and a stream with hostile names.
  await executedWith(executed, [
    { output_type: "stream", name: "stdout", text: `</script><script>${PWN}</script>\n` },
    {
      output_type: "display_data",
      metadata: {},
      data: {
        "text/markdown": `| data | accuracy |\n| --- | --- |\n| caltech101:/d/<img src=x onerror="${PWN}"> | 50 |\n\n` +
          `[the run](javascript:${PWN}) <script>${PWN}</script>`,
        "text/plain": "table",
      },
    },
    {
      output_type: "display_data",
      metadata: {},
      data: {
        "application/vnd.plotly.v1+json": {
          data: [{ type: "bar", name: `"><img src=x onerror="${PWN}">`, x: [`<img src=x onerror="${PWN}">`], y: [1] }],
          layout: { title: { text: `</script><script>${PWN}</script>` } },
        },
        "text/plain": "chart",
      },
    },
  ]);
  const out = `${tmp.path}/site`;
  const r = await task("companion", ["--out", out, "--notebooks", "04_table1", "--executed", executed]);
  assert.equal(r.code, 0, r.stderr);
  const dom = await renderedDom(`${out}/notebook-04_table1.html`, `${tmp.path}/chromium`);
  assert.match(dom, /<title>Notebook 04_table1 - Exemplar-CNN companion<\/title>/, "no script of the outputs ran");
  const body = /<body[^>]*>/.exec(dom)?.[0] ?? "";
  assert.equal(attr(body, "data-charts-drawn"), 1, body);
  assert.ok(dom.includes(`caltech101:/d/&lt;img src=x onerror="${PWN}"&gt;`), "the data path is text");
  assert.ok(dom.includes(`&lt;script&gt;${PWN}&lt;/script&gt;`), "the HTML of the Markdown is text");
  assert.doesNotMatch(dom, /href="javascript:/i);
  assert.match(dom, /the run/);
});

Deno.test("companion: an executed notebook that is not the project's notebook as it is now is refused", async () => {
  await using tmp = await tempDir();
  const executed = `${tmp.path}/executed`;
  await executedWith(executed, []);
  const nb = JSON.parse(await Deno.readTextFile(`${executed}/04_table1.ipynb`));
  nb.cells.push({ cell_type: "code", source: "Deno.exit()", outputs: [], metadata: {}, execution_count: null });
  await Deno.writeTextFile(`${executed}/04_table1.ipynb`, JSON.stringify(nb));
  const out = `${tmp.path}/site`;
  oneLineError(
    await task("companion", ["--out", out, "--notebooks", "04_table1", "--executed", executed]),
    /04_table1\.ipynb: not an execution of notebooks\/04_table1\.ipynb as it is now/,
  );
  assert.ok(!exists(out), "nothing written");
});

Deno.test("companion --out: never over a user's files; again into its own site; a file is one line", async () => {
  await using tmp = await tempDir();
  const executed = `${tmp.path}/executed`;
  await executedWith(executed, []);
  const args = (out: string) => ["--out", out, "--notebooks", "04_table1", "--executed", executed];
  // A folder of the user's own pages: refused before the notebooks are executed, and left as it was.
  const mine = `${tmp.path}/mine`;
  await Deno.mkdir(mine);
  await Deno.writeTextFile(`${mine}/index.html`, "<p>my page</p>");
  await Deno.writeTextFile(`${mine}/style.css`, "p { color: red }");
  const refused = await task("companion", ["--out", mine, "--notebooks", "04_table1"]);
  oneLineError(refused, /--out .*mine: the folder holds files the project did not write \(index\.html, style\.css\)/);
  assert.equal(refused.code, 2);
  assert.doesNotMatch(refused.stderr, /executing/);
  assert.deepEqual(listTree(mine), ["index.html", "style.css"]);
  assert.equal(await Deno.readTextFile(`${mine}/index.html`), "<p>my page</p>");
  assert.equal(await Deno.readTextFile(`${mine}/style.css`), "p { color: red }");
  // Its own site, written before: written again.
  const site = `${tmp.path}/site`;
  assert.equal((await task("companion", args(site))).code, 0);
  await Deno.writeTextFile(`${site}/index.html`, "stale");
  const again = await task("companion", args(site));
  assert.equal(again.code, 0, again.stderr);
  assert.match(await Deno.readTextFile(`${site}/index.html`), /Exemplar-CNN companion/);
  // A file where the folder should be.
  await Deno.writeTextFile(`${tmp.path}/a-file`, "x");
  const file = await task("companion", args(`${tmp.path}/a-file`));
  oneLineError(file, /--out .*a-file: a file, not a folder/);
  assert.equal(file.code, 2);
  assert.equal(await Deno.readTextFile(`${tmp.path}/a-file`), "x");
});
