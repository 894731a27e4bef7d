/**
 * The notebook runner must fail on what the Deno kernel would let pass
 * silently: a cell error, a promise rejection nobody awaited, an error in a
 * timer; and it must keep every output of a cell that prints a lot.
 */
import assert from "node:assert/strict";
import { ROOT, tempDir } from "./helpers.ts";

function notebook(cells: string[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: "deno", display_name: "Deno", language: "typescript" } },
    cells: cells.map((c, i) => ({
      cell_type: "code",
      id: `c${i}`,
      metadata: {},
      source: c,
      outputs: [],
      execution_count: null,
    })),
  });
}

async function runBooks(dir: string, books: Record<string, string[]>) {
  for (const [name, cells] of Object.entries(books)) await Deno.writeTextFile(`${dir}/${name}.ipynb`, notebook(cells));
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      `${ROOT}/tests/run_notebooks.py`,
      "--out",
      `${dir}/out`,
      ...Object.keys(books).map((b) => `${dir}/${b}.ipynb`),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test("notebook runner: fails on cell errors, unawaited rejections and timer errors; keeps all outputs", async () => {
  await using tmp = await tempDir();
  const r = await runBooks(tmp.path, {
    good: ["const n = 6 * 7;\nn", "for (let i = 0; i < 50; i++) console.log(`line ${i}`);\n'end'"],
    raises: ["1", "throw new Error('boom in cell 2')"],
    rejects: ["Promise.reject(new Error('nobody awaits me')); 1"],
    timer: ["setTimeout(() => { throw new Error('late boom'); }, 20); 1"],
  });
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stdout, /ok\s+\S+good\.ipynb/);
  assert.match(r.stdout, /FAIL \S+raises\.ipynb: raises\.ipynb cell 2: Error: boom in cell 2/);
  assert.match(r.stdout, /FAIL \S+rejects\.ipynb: .*promise rejection nobody awaited: Error: nobody awaits me/);
  assert.match(r.stdout, /FAIL \S+timer\.ipynb: .*error outside a cell .*late boom/);
  assert.match(r.stdout, /1 passed, 3 failed/);
  const good = JSON.parse(await Deno.readTextFile(`${tmp.path}/out/good.ipynb`));
  const text = good.cells[1].outputs.filter((o: { output_type: string }) => o.output_type === "stream")
    .map((o: { text: string | string[] }) => [o.text].flat().join("")).join("");
  assert.equal(text.split("\n").filter((l: string) => l).length, 50);
  assert.equal(good.cells[1].outputs.at(-1).output_type, "execute_result");
});
