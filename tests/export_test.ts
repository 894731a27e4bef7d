import assert from "node:assert/strict";
import { selectBackend, tf } from "../lib/compute/backend.ts";
import { exportedDifference, loadExportedModel } from "../lib/export.ts";
import { loadTrainedNet } from "../lib/run_folder.ts";
import { CALTECH_TINY, listTree, oneLineError, renderedDom, task, tempDir } from "./helpers.ts";

Deno.test("export: a TensorFlow.js model that loads back and computes the project's features; its page works", async () => {
  await using tmp = await tempDir();
  const env = { EXEMPLAR_CACHE: `${tmp.path}/cache` };
  const run = `${tmp.path}/run`;
  const p = await task("pretrain", [
    "--data",
    "synthetic:unlabeled=100,train=40,test=20,fold=20",
    "--net",
    "8c5-8c5-16f",
    "--classes",
    "10",
    "--per-class",
    "4",
    "--steps",
    "4",
    "--batch",
    "16",
    "--valid-every",
    "4",
    "--out",
    run,
  ], env);
  assert.equal(p.code, 0, p.stderr);
  const out = `${tmp.path}/export`;
  const r = await task("export", ["--run", run, "--out", out, "--gallery", "8"], env);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ["model.json", "weights.bin", "preprocessing.json", "index.html", "model.js", "tf.min.js"]) {
    assert.ok((await Deno.stat(`${out}/${f}`)).size > 0, f);
  }
  const pre = JSON.parse(await Deno.readTextFile(`${out}/preprocessing.json`));
  assert.deepEqual(pre.outputs.map((o: { layer: string }) => o.layer), ["conv1", "conv2", "fc1"]);
  assert.equal(pre.mean.length, 3);

  // Loaded back with TensorFlow.js: the same maps as the project's own code, on an image of another size.
  await selectBackend("cpu");
  const { net } = await loadTrainedNet(run);
  const model = await loadExportedModel(out);
  const x = tf.randomUniform([2, 40, 40, 3], -0.5, 0.5, "float32", 7) as tf.Tensor4D;
  assert.ok(exportedDifference(net, model, x) < 1e-4);
  x.dispose();
  model.dispose();
  net.dispose();

  // The page, offline in headless Chromium: the filters drawn, the gallery embedded, the query's nearest first.
  const dom = await renderedDom(`${out}/index.html`, `${tmp.path}/chromium`);
  const body = /<body[^>]*>/.exec(dom)?.[0] ?? "";
  assert.match(body, /data-ready="yes"/, body);
  assert.match(body, /data-filters="8"/);
  assert.match(body, /data-gallery="8"/);
  const nearest = /data-nearest="([^"]*)"/.exec(body)![1].split(",");
  assert.equal(nearest.length, 5);
  assert.match(nearest[0], / 0$/, "the query picture is its own nearest");

  // Class folders are the user's names: one that is HTML shows as text, and its script does not run.
  const photos = `${tmp.path}/photos`, hostile = `<img src=x onerror="document.title='pwned'">`;
  for (const [cls, from] of [[hostile, "car_side"], ["ketch", "ketch"]]) {
    await Deno.mkdir(`${photos}/${cls}`, { recursive: true });
    for (const f of ["image_0002.jpg", "image_0006.jpg"]) {
      await Deno.copyFile(`${CALTECH_TINY}/101_ObjectCategories/${from}/${f}`, `${photos}/${cls}/${f}`);
    }
  }
  const named = `${tmp.path}/named`;
  const h = await task("export", ["--run", run, "--out", named, "--data", `folder:${photos}`, "--gallery", "4"], env);
  assert.equal(h.code, 0, h.stderr);
  const hostileDom = await renderedDom(`${named}/index.html`, `${tmp.path}/chromium-named`);
  assert.match(hostileDom, /<title>Exemplar-CNN: a trained network<\/title>/, "no script of a class name ran");
  assert.match(hostileDom, /data-ready="yes"/);
  const caption = `&lt;img src=x onerror="document.title='pwned'"&gt; 0`;
  assert.ok(hostileDom.includes(`<figcaption>${caption}</figcaption>`), "the name is the caption's text");
  assert.ok(hostileDom.includes(`<p>query: ${caption} (drop your own)</p>`), "and the query's");

  // The export writes only into its own folders: a user's page is left as it was; its own output is written again.
  const mine = `${tmp.path}/mine`;
  await Deno.mkdir(mine);
  await Deno.writeTextFile(`${mine}/index.html`, "<p>my page</p>");
  const refused = await task("export", ["--run", run, "--out", mine], env);
  oneLineError(refused, /--out .*mine: the folder holds files the project did not write \(index\.html\)/);
  assert.equal(refused.code, 2);
  assert.deepEqual(listTree(mine), ["index.html"]);
  assert.equal(await Deno.readTextFile(`${mine}/index.html`), "<p>my page</p>");
  const again = await task("export", ["--run", run, "--out", out, "--gallery", "8"], env);
  assert.equal(again.code, 0, again.stderr);
  await Deno.writeTextFile(`${tmp.path}/a-file`, "x");
  const file = await task("export", ["--run", run, "--out", `${tmp.path}/a-file`], env);
  oneLineError(file, /--out .*a-file: a file, not a folder/);
  assert.equal(file.code, 2);
});
