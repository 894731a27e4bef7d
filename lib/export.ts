/**
 * A trained network that leaves the project: the network without its softmax
 * layer as a TensorFlow.js model (`model.json` and `weights.bin`, loadable
 * with `tf.loadLayersModel` in a browser or Node), its preprocessing beside it
 * (`preprocessing.json`), and a small static page (`index.html`) that loads it
 * offline, shows the first layer's filters and finds, for a picture dropped on
 * it, the nearest pictures of a small gallery by the network's features.
 *
 * The model is fully convolutional, as the paper applies the network to whole
 * images (paper §5.1): its input is an image of any size (RGB in [0, 1], the
 * mean colour subtracted), its outputs the post-ReLU maps of every conv layer
 * and of the FC layers (the first FC layer as a convolution whose kernel is the
 * training-time map), exactly what lib/features.ts pools.
 *
 * @module
 */
import { join } from "node:path";
import { tf } from "./compute/backend.ts";
import type { ExemplarNet } from "./nets.ts";
import { convolutionalMaps } from "./features.ts";
import { encodeBase64 } from "./util/base64.ts";
import { writeFileAtomic } from "./util/fsutil.ts";
import { scriptJson } from "./util/html.ts";
import { encodePng, type RGBImage } from "./util/image.ts";

/** How an image becomes the model's input, and what its outputs are. */
export interface Preprocessing {
  /** The side of the patches the network was trained on (any size works: it is fully convolutional). */
  trainingSize: number;
  /** Mean colour (RGB in [0, 1]) subtracted from every pixel, after dividing bytes by 255. */
  mean: [number, number, number];
  /** The outputs, in order: each layer's name and channels. */
  outputs: { layer: string; channels: number }[];
  /** The network, its method preset and training steps, for the record. */
  net: string;
  method: string;
  steps: number;
}

/** The network without its softmax as a fully convolutional TensorFlow.js model with one output per layer. */
export function featureModel(net: ExemplarNet): tf.LayersModel {
  const input = tf.input({ shape: [null, null, 3] });
  const outputs: tf.SymbolicTensor[] = [];
  const weights: [tf.layers.Layer, tf.Tensor[]][] = [];
  let h = input;
  for (const l of net.walk) {
    if (l.kind === "softmax") break;
    // A fully connected layer as a convolution whose kernel is the map it saw in training (lib/features.ts).
    const layer = tf.layers.conv2d({
      filters: l.units,
      kernelSize: l.kernel,
      padding: l.kind === "conv" ? "same" : "valid",
      activation: "relu",
      name: l.name,
    });
    h = layer.apply(h) as tf.SymbolicTensor;
    const w = net.param(`${l.name}.w`);
    weights.push([layer, [
      l.kind === "conv" ? w : w.reshape([l.kernel, l.kernel, l.inChannels, l.units]),
      net.param(`${l.name}.b`),
    ]]);
    outputs.push(h);
    if (l.pooled) {
      const { size, stride } = net.poolShape;
      h = tf.layers.maxPooling2d({ poolSize: size, strides: stride, padding: "same", name: `pool${l.name.slice(4)}` })
        .apply(h) as tf.SymbolicTensor;
    }
  }
  const model = tf.model({ inputs: input, outputs });
  for (const [layer, w] of weights) layer.setWeights(w);
  return model;
}

/** The model's files: model.json (topology and weight manifest) and weights.bin. */
export async function modelFiles(model: tf.LayersModel): Promise<{ json: string; weights: Uint8Array }> {
  let files: { json: string; weights: Uint8Array } | null = null;
  await model.save(tf.io.withSaveHandler((a) => {
    const weightData = a.weightData as ArrayBuffer;
    files = {
      json: JSON.stringify({
        format: "layers-model",
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: a.modelTopology,
        weightsManifest: [{ paths: ["weights.bin"], weights: a.weightSpecs }],
      }),
      weights: new Uint8Array(weightData),
    };
    return Promise.resolve({ modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } });
  }));
  return files!;
}

/** Loads a model written by {@link exportNetwork} from its folder (model.json and weights.bin). */
export async function loadExportedModel(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(await Deno.readTextFile(join(dir, "model.json")));
  const weights = await Deno.readFile(join(dir, "weights.bin"));
  return await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest[0].weights,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) as ArrayBuffer,
  }));
}

/** Checks that an exported model computes what the project computes: the largest difference over an input. */
export function exportedDifference(net: ExemplarNet, model: tf.LayersModel, x: tf.Tensor4D): number {
  return tf.tidy(() => {
    const ours = convolutionalMaps(net, x);
    const theirs = model.predict(x) as tf.Tensor[];
    const outs = Array.isArray(theirs) ? theirs : [theirs];
    return Math.max(...ours.map((m, i) => tf.max(tf.abs(tf.sub(m, outs[i]))).dataSync()[0]));
  });
}

/**
 * Writes the export into `dir`: model.json, weights.bin, preprocessing.json, and the offline page (index.html,
 * model.js with the model and gallery embedded, tf.min.js).
 */
export async function exportNetwork(
  net: ExemplarNet,
  dir: string,
  pre: Omit<Preprocessing, "outputs" | "trainingSize">,
  gallery: { name: string; image: RGBImage }[],
): Promise<Preprocessing> {
  const model = featureModel(net);
  try {
    const { json, weights } = await modelFiles(model);
    const preprocessing: Preprocessing = {
      trainingSize: net.inputSize,
      ...pre,
      outputs: model.outputs.map((o, i) => ({ layer: model.outputNames[i], channels: o.shape[3] as number })),
    };
    await writeFileAtomic(join(dir, "model.json"), json);
    await writeFileAtomic(join(dir, "weights.bin"), weights);
    await writeFileAtomic(join(dir, "preprocessing.json"), JSON.stringify(preprocessing, null, 2) + "\n");
    const pictures = await Promise.all(
      gallery.map(async (g) => ({ name: g.name, png: encodeBase64(await encodePng(g.image)) })),
    );
    // The page opens from the file system, where a browser may not fetch files: the model travels in a script.
    await writeFileAtomic(
      join(dir, "model.js"),
      `window.EXEMPLAR = ${
        scriptJson({
          model: JSON.parse(json),
          weights: encodeBase64(weights),
          preprocessing,
          gallery: pictures,
        })
      };\n`,
    );
    await writeFileAtomic(
      join(dir, "tf.min.js"),
      await Deno.readFile(new URL("../node_modules/@tensorflow/tfjs/dist/tf.min.js", import.meta.url)),
    );
    await writeFileAtomic(join(dir, "index.html"), PAGE);
    return preprocessing;
  } finally {
    model.dispose();
  }
}

/** The offline page: the first layer's filters, a gallery, and the nearest gallery pictures of a dropped picture. */
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Exemplar-CNN: a trained network</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
#filters canvas { width: 30px; height: 30px; image-rendering: pixelated; margin: 1px; }
#drop { border: 2px dashed #89a; padding: 1.5em; margin: 1em 0; text-align: center; }
figure { display: inline-block; margin: 4px; text-align: center; font-size: 12px; }
figure img { width: 96px; height: 96px; object-fit: cover; }
</style>
<script src="tf.min.js"></script><script src="model.js"></script></head>
<body>
<h1>Exemplar-CNN: a trained network</h1>
<p id="about"></p>
<h2>The first layer's filters</h2><div id="filters"></div>
<h2>Nearest pictures by the network's features</h2>
<div id="drop">Drop a picture here (or <input type="file" id="file" accept="image/*">)</div>
<div id="query"></div><div id="nearest"></div>
<h2>The gallery</h2><div id="gallery"></div>
<script>
const E = window.EXEMPLAR, P = E.preprocessing;
document.getElementById("about").textContent =
  P.net + ", " + P.method + " method, " + P.steps + " steps; outputs: " + P.outputs.map((o) => o.layer).join(", ");
const bytes = Uint8Array.from(atob(E.weights), (c) => c.charCodeAt(0));
const ready = tf.loadLayersModel(tf.io.fromMemory({
  modelTopology: E.model.modelTopology, weightSpecs: E.model.weightsManifest[0].weights, weightData: bytes.buffer,
}));
const load = (src) => new Promise((ok, fail) => { const i = new Image(); i.onload = () => ok(i); i.onerror = fail; i.src = src; });
// A picture's features: every layer's map max-pooled over the four quadrants, L2-normalised.
async function features(model, img) {
  return tf.tidy(() => {
    const x = tf.image.resizeBilinear(tf.browser.fromPixels(img).toFloat().div(255), [96, 96]).sub(P.mean).expandDims(0);
    const outs = [].concat(model.predict(x));
    const parts = outs.map((m) => {
      const [, h, w] = m.shape, hh = Math.ceil(h / 2), ww = Math.ceil(w / 2);
      const cells = [[0, 0], [0, ww], [hh, 0], [hh, ww]].map(([y, x0]) =>
        m.slice([0, y, x0, 0], [1, Math.max(1, Math.min(hh, h - y)), Math.max(1, Math.min(ww, w - x0)), -1]).max([1, 2]));
      return tf.concat(cells, 1);
    });
    const f = tf.concat(parts, 1).flatten();
    return f.div(f.norm().add(1e-12)).arraySync();
  });
}
const cosine = (a, b) => a.reduce((s, v, i) => s + v * b[i], 0);
// A picture with its caption. Names (class folders, dropped files) are the user's: they go in as text, never as HTML.
function figure(src, caption) {
  const fig = document.createElement("figure"), img = document.createElement("img"), cap = document.createElement("figcaption");
  img.src = src;
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}
async function main() {
  const model = await ready;
  const w = model.getLayer("conv1").getWeights()[0], [kh, kw, ci, co] = w.shape, d = w.dataSync();
  for (let o = 0; o < co; o++) {
    const c = document.createElement("canvas"); c.width = kw; c.height = kh;
    const ctx = c.getContext("2d"), im = ctx.createImageData(kw, kh);
    const px = []; for (let i = 0; i < kh * kw; i++) for (let k = 0; k < 3; k++) px.push(d[(i * ci + Math.min(k, ci - 1)) * co + o]);
    const lo = Math.min(...px), hi = Math.max(...px);
    for (let i = 0; i < kh * kw; i++) { for (let k = 0; k < 3; k++) im.data[4 * i + k] = 255 * (px[3 * i + k] - lo) / (hi - lo || 1); im.data[4 * i + 3] = 255; }
    ctx.putImageData(im, 0, 0); document.getElementById("filters").appendChild(c);
  }
  const gallery = [];
  for (const g of E.gallery) {
    const img = await load("data:image/png;base64," + g.png);
    gallery.push({ name: g.name, src: img.src, f: await features(model, img) });
    document.getElementById("gallery").appendChild(figure(img.src, g.name));
  }
  async function query(img, label) {
    const f = await features(model, img);
    const ranked = gallery.map((g) => ({ g, s: cosine(f, g.f) })).sort((a, b) => b.s - a.s).slice(0, 5);
    const p = document.createElement("p");
    p.textContent = label;
    document.getElementById("query").replaceChildren(p);
    document.getElementById("nearest").replaceChildren(...ranked.map(({ g, s }) => figure(g.src, g.name + " (" + s.toFixed(3) + ")")));
    document.body.dataset.nearest = ranked.map(({ g }) => g.name).join(",");
  }
  const fromFile = (file) => { const r = new FileReader(); r.onload = async () => query(await load(r.result), file.name); r.readAsDataURL(file); };
  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (e) => e.preventDefault());
  drop.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) fromFile(e.dataTransfer.files[0]); });
  document.getElementById("file").addEventListener("change", (e) => e.target.files[0] && fromFile(e.target.files[0]));
  // Until a picture is dropped: the first gallery picture as the query.
  if (gallery.length) await query(await load(gallery[0].src), "query: " + gallery[0].name + " (drop your own)");
  document.body.dataset.filters = String(co);
  document.body.dataset.gallery = String(gallery.length);
  document.body.dataset.ready = "yes";
}
main().catch((e) => { document.body.dataset.error = String(e); });
</script></body></html>
`;
