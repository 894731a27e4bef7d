/** Named subsets of the official downloads: exactly the files the definition names, in the official layout. */
import assert from "node:assert/strict";
import { makeSubset, type SubsetDefinition, SUBSETS } from "../lib/data/subsets.ts";
import { openDataset } from "../lib/data/mod.ts";
import { UserError } from "../lib/util/errors.ts";
import { CALTECH_TINY, listTree, oneLineError, task, tempDir } from "./helpers.ts";

const small: SubsetDefinition = {
  about: "a test",
  format: "caltech101",
  top: "101_ObjectCategories",
  classes: ["car_side", "ketch"],
  perClass: 5,
  extra: { BACKGROUND_Google: 2 },
};

Deno.test("a subset holds the first images by file name of each class, byte for byte, in the official layout", async () => {
  await using tmp = await tempDir();
  const a = await makeSubset(small, CALTECH_TINY, `${tmp.path}/a`);
  assert.equal(a.images, 12);
  const src = `${CALTECH_TINY}/101_ObjectCategories`;
  for (const [cls, n] of [["car_side", 5], ["ketch", 5], ["BACKGROUND_Google", 2]] as const) {
    const first = [...Deno.readDirSync(`${src}/${cls}`)].map((e) => e.name).sort().slice(0, n);
    assert.deepEqual(listTree(`${tmp.path}/a/101_ObjectCategories/${cls}`), first);
    for (const f of first) {
      assert.deepEqual(
        await Deno.readFile(`${tmp.path}/a/101_ObjectCategories/${cls}/${f}`),
        await Deno.readFile(`${src}/${cls}/${f}`),
      );
    }
  }
  // A data set the readers open as Caltech-101 (the background class left out), and the same fingerprint again.
  const ds = await openDataset(`caltech101:${tmp.path}/a`);
  assert.deepEqual([ds.classNames, ds.splits.all.length], [["car_side", "ketch"], 10]);
  ds.close();
  assert.equal((await makeSubset(small, CALTECH_TINY, `${tmp.path}/b`)).fingerprint, a.fingerprint);
  // Too few images, or a folder already there: refused, nothing written.
  await assert.rejects(() => makeSubset({ ...small, perClass: 41 }, CALTECH_TINY, `${tmp.path}/c`), UserError);
  await assert.rejects(() => makeSubset(small, CALTECH_TINY, `${tmp.path}/a`), /already there/);
  assert.deepEqual(listTree(tmp.path).filter((p) => !p.includes("/")), ["a", "b"]);
});

Deno.test("caltech101-mini is defined in the repository, and the task refuses what it cannot build", async () => {
  const mini = SUBSETS["caltech101-mini"];
  assert.equal(mini.classes.length, 10);
  assert.equal(mini.perClass, 60);
  assert.deepEqual(mini.extra, { BACKGROUND_Google: 15 });
  await using tmp = await tempDir();
  oneLineError(
    await task("data", ["subset", "caltech101-mini", "--from", CALTECH_TINY, "--to", `${tmp.path}/mini`]),
    /not the official caltech101 folder/,
  );
  oneLineError(
    await task("data", ["subset", "nope", "--from", CALTECH_TINY, "--to", `${tmp.path}/x`]),
    /unknown subset/,
  );
  assert.deepEqual(listTree(tmp.path), []);
});
