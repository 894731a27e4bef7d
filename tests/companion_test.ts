import assert from "node:assert/strict";
import { numberPaths, SOURCES } from "../lib/presets.ts";
import { renderedDom, ROOT, task, tempDir } from "./helpers.ts";

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
