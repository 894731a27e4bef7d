/**
 * `deno task export --run DIR --out DIR [--data SPEC] [--gallery N]`
 *
 * Writes a trained network, without its softmax layer, as a TensorFlow.js
 * model (model.json + weights.bin) with its preprocessing (preprocessing.json)
 * and an offline page (index.html) that shows its first-layer filters and the
 * nearest pictures of a small gallery (N images of the data's test split) for
 * a picture dropped on it. See lib/export.ts.
 *
 * @module
 */
import { join } from "node:path";
import { selectBackend } from "../lib/compute/backend.ts";
import { DATA_SPECS, openDataset } from "../lib/data/mod.ts";
import { exportedDifference, exportNetwork, loadExportedModel } from "../lib/export.ts";
import { loadTrainedNet, lockRunFolder } from "../lib/run_folder.ts";
import { loadSeeds, seedMeanColour } from "../lib/seeds.ts";
import { intFlag, parseFlags, runTask } from "../lib/util/cli.ts";
import { UserError } from "../lib/util/errors.ts";
import { outputFolder } from "../lib/util/output_folder.ts";
import { resizeAntialiased } from "../lib/util/image.ts";
import { tf } from "../lib/compute/backend.ts";

const USAGE = `deno task export --run DIR --out DIR [--data SPEC] [--gallery N]   (SPEC: ${DATA_SPECS})`;

async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    args,
    {
      run: { type: "string", help: "a pretraining run folder (required)" },
      out: {
        type: "string",
        help:
          "folder for model.json, weights.bin, preprocessing.json and index.html: new, empty or an earlier export " +
          "(required)",
      },
      data: { type: "string", help: "images for the page's gallery (default: the run's data)" },
      gallery: { type: "string", help: "gallery images, from the data's test split (default 24)" },
    },
    USAGE,
    "Writes the trained network as a TensorFlow.js model with an offline page.",
  );
  if (positionals.length) throw new UserError(`unexpected argument "${positionals[0]}" (usage: ${USAGE})`);
  if (!values.run || !values.out) throw new UserError(`--run DIR and --out DIR are required (usage: ${USAGE})`);
  const count = intFlag("gallery", values.gallery, 24, 0, 500);
  const out = outputFolder(values.out, { task: "export", flag: "--out" });
  await selectBackend();
  // (No live pretraining replaces the checkpoint while it is read.)
  const lock = await lockRunFolder(values.run);
  let loaded;
  try {
    loaded = await loadTrainedNet(values.run);
  } finally {
    lock.release();
  }
  const { net, config, step } = loaded;
  try {
    // The mean colour of the pretraining inputs, as the project's features subtract it.
    const mean = seedMeanColour(await loadSeeds(values.run));
    const ds = await openDataset(values.data ?? config.data, { log: (msg) => console.error(msg) });
    const split = ds.splits.test ?? ds.splits.all ?? ds.splits.train ?? Object.values(ds.splits)[0];
    const gallery = [];
    for (let i = 0; i < Math.min(count, split.length); i++) {
      const label = split.labels ? ds.classNames[split.labels[i]] : "image";
      gallery.push({ name: `${label} ${i}`, image: resizeAntialiased(await split.image(i), 96, 96) });
    }
    ds.close();
    await out.make();
    await exportNetwork(net, values.out, { mean, net: config.net, method: config.method, steps: step }, gallery);
    // Load it back and check it computes what the project computes.
    const model = await loadExportedModel(values.out);
    const x = tf.randomUniform([1, 48, 48, 3], -0.5, 0.5) as tf.Tensor4D;
    const diff = exportedDifference(net, model, x);
    x.dispose();
    model.dispose();
    console.error(
      `exported ${config.net} (step ${step}) to ${values.out}; loaded back, largest difference ${
        diff.toExponential(1)
      }`,
    );
    console.log(join(values.out, "index.html"));
  } finally {
    net.dispose();
  }
}

if (import.meta.main) runTask(main);
