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
