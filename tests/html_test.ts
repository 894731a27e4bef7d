import assert from "node:assert/strict";
import { writeCurves } from "../lib/run_folder.ts";
import { escapeHtml, scriptJson } from "../lib/util/html.ts";
import { renderedDom, tempDir } from "./helpers.ts";

/** Text that runs a script wherever it is written into HTML raw: as text, in an attribute, inside a script. */
const HOSTILE =
  `"'></script><script>document.title='pwned'</script><!--<img src=x onerror="document.title='pwned'">&amp;`;

Deno.test("escapeHtml: text and attribute values keep no markup; scriptJson: the same value, no way out of <script>", () => {
  assert.equal(
    escapeHtml(`<a href="x">Tom & 'Jerry'</a>`),
    "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;",
  );
  const value = { name: HOSTILE, lines: "a\u2028b\u2029c", n: [1, -2.5e-7, null], nested: { "<k>": true } };
  const json = scriptJson(value);
  assert.doesNotMatch(json, /[<>&\u2028\u2029]/);
  assert.deepEqual(JSON.parse(json), value, "JSON reads it back");
  assert.deepEqual((0, eval)(`(${json})`), value, "JavaScript reads it back");
  assert.equal(scriptJson(undefined), "null");
});

Deno.test("curves.html: a hostile title and a hostile metrics field show as text; no script of theirs runs", async () => {
  await using tmp = await tempDir();
  const rows = [
    { step: 10, loss: 2.3, accuracy: 0.1, lr: 0.01, samples_per_s: 100, epoch: 0.1, elapsed_s: 1 },
    { step: 20, loss: 2.1, accuracy: 0.2, lr: 0.01, samples_per_s: HOSTILE, epoch: 0.2, elapsed_s: 2 },
  ];
  await Deno.writeTextFile(`${tmp.path}/metrics.jsonl`, rows.map((r) => JSON.stringify(r) + "\n").join(""));
  await writeCurves(tmp.path, `run on data ${HOSTILE}`);
  const dom = await renderedDom(`${tmp.path}/curves.html`, `${tmp.path}/chromium`);
  const title = /<title>([^<]*)<\/title>/.exec(dom)?.[1];
  assert.equal(title, escapeHtml(`run on data ${HOSTILE}`).replace(/&quot;/g, '"').replace(/&#39;/g, "'"));
  assert.match(dom, /data-chart="drawn"/, "the chart draws");
});
