import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { packTar } from "modern-tar";
import { zipSync } from "fflate";
import { archiveProblem, downloadFile } from "../lib/data/download.ts";
import { tempName } from "../lib/util/fsutil.ts";
import { writeStl10 } from "../lib/data/stl10.ts";
import { newImage } from "../lib/util/image.ts";
import { listTree, oneLineError, task, tempDir } from "./helpers.ts";

/** A real stl10_binary.tar.gz, generated: 4 unlabeled, 10 train and 10 test images. */
async function makeArchive(dir: string): Promise<Uint8Array> {
  const img = (v: number) => {
    const im = newImage(96, 96);
    im.data.fill(v);
    return im;
  };
  await writeStl10(`${dir}/stl10_binary`, {
    classNames: Array.from({ length: 10 }, (_, i) => `k${i}`),
    unlabeled: { count: 4, image: (i) => img(i) },
    train: { count: 10, image: (i) => img(10 + i), labels: [...Array(10).keys()] },
    test: { count: 10, image: (i) => img(30 + i), labels: [...Array(10).keys()] },
  });
  const entries = [];
  for (const name of Array.from(Deno.readDirSync(`${dir}/stl10_binary`)).map((e) => e.name).sort()) {
    const body = await Deno.readFile(`${dir}/stl10_binary/${name}`);
    entries.push({ header: { name: `stl10_binary/${name}`, size: body.length }, body });
  }
  const tar = await packTar(entries);
  const gz = new Response(new Blob([tar as BlobPart]).stream().pipeThrough(new CompressionStream("gzip")));
  return new Uint8Array(await gz.arrayBuffer());
}

const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");

/**
 * An HTTP server on 127.0.0.1 that serves `body` with Range support. With
 * `cutFirst`, the first transfer stops after half the bytes (the connection is
 * broken), as a flaky network would.
 */
function serve(body: Uint8Array, cutFirst: boolean) {
  const requests: (string | null)[] = [];
  let cut = cutFirst;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const range = req.headers.get("range");
    requests.push(range);
    let start = 0;
    if (range) {
      start = Number(/bytes=(\d+)-/.exec(range)![1]);
      if (start >= body.length) return new Response(null, { status: 416 });
    }
    const part = body.subarray(start);
    const headers: Record<string, string> = { "content-length": String(part.length) };
    if (range) headers["content-range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
    if (cut) {
      cut = false;
      const half = part.subarray(0, part.length >> 1);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(half);
          setTimeout(() => c.error(new Error("connection cut on purpose by the test server")), 50);
        },
      });
      return new Response(stream, { status: range ? 206 : 200, headers });
    }
    return new Response(part as Uint8Array<ArrayBuffer>, { status: range ? 206 : 200, headers });
  });
  const url = `http://127.0.0.1:${server.addr.port}/stl10_binary.tar.gz`;
  return { url, requests, [Symbol.asyncDispose]: () => server.shutdown() };
}

Deno.test("download: a transfer cut off halfway is resumed with Range, verified and extracted", async () => {
  await using tmp = await tempDir();
  const archive = await makeArchive(`${tmp.path}/src`);
  await using srv = serve(archive, true);
  const to = `${tmp.path}/data`;
  const r = await task("data", ["download", "stl10", "--to", to, "--url", srv.url, "--md5", md5(archive)]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(srv.requests[0], null);
  assert.ok(srv.requests.length >= 2, `requests: ${srv.requests}`);
  assert.match(srv.requests[1]!, /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(srv.requests[1]!)![0]) > 0, "the second request resumes, not restarts");
  assert.match(r.stderr, /resuming/);
  assert.deepEqual(await Deno.readFile(`${to}/stl10_binary.tar.gz`), archive);
  assert.ok(
    !listTree(to).some((p) => p.includes(".part") || p.includes(".extract") || p.includes(".tmp-")),
    listTree(to).join(" "),
  );
  const info = await task("data", ["inspect", `stl10:${to}`]);
  assert.equal(info.code, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).splits.train.images, 10);
  // A second run finds the data in place and does nothing.
  const again = await task("data", ["download", "stl10", "--to", to, "--url", srv.url]);
  assert.equal(again.code, 0);
  assert.match(again.stderr, /already exists/);
});

Deno.test("download: a corrupted archive is rejected and nothing is left under a final name", async () => {
  await using tmp = await tempDir();
  const archive = await makeArchive(`${tmp.path}/src`);
  const good = md5(archive);
  const bad = archive.slice();
  bad[bad.length >> 1] ^= 0xff;
  await using srv = serve(bad, false);
  const to = `${tmp.path}/data`;
  const r = await task("data", ["download", "stl10", "--to", to, "--url", srv.url, "--md5", good]);
  oneLineError(r, new RegExp(`MD5 [0-9a-f]{32} does not match the official ${good}`));
  assert.deepEqual(listTree(to), []);
  // Without a checksum, the damage shows when extracting: refused the same way.
  const r2 = await task("data", ["download", "stl10", "--to", to, "--url", srv.url, "--md5", "none"]);
  oneLineError(r2, /cannot extract/);
  assert.deepEqual(listTree(to), []);
});

Deno.test("download: an unknown data set and a missing --to are refused", async () => {
  oneLineError(await task("data", ["download", "imagenet", "--to", "/tmp/x"]), /unknown data set "imagenet"/);
  oneLineError(await task("data", ["download", "cifar10"]), /needs --to DIR/);
  oneLineError(await task("data", ["download", "cifar10", "--to", "/tmp/x", "--md5", "xyz"]), /--md5 xyz/);
});

Deno.test("download: a server that stalls before answering, then in mid-transfer, is retried and resumed", async () => {
  await using tmp = await tempDir();
  const body = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 7) & 0xff);
  const requests: (string | null)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const range = req.headers.get("range");
    requests.push(range);
    const start = range ? Number(/bytes=(\d+)-/.exec(range)![1]) : 0;
    const part = body.subarray(start);
    const headers: Record<string, string> = { "content-length": String(part.length) };
    if (range) headers["content-range"] = `bytes ${start}-${body.length - 1}/${body.length}`;
    if (requests.length === 1) {
      // Accepts the connection, never answers (until the client gives up).
      await new Promise((r) => req.signal.addEventListener("abort", r));
      return new Response(null, { status: 503 });
    }
    if (requests.length === 2) {
      // Answers, sends half the bytes, then nothing more.
      const stream = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(part.slice(0, part.length >> 1)) });
      return new Response(stream, { status: range ? 206 : 200, headers });
    }
    return new Response(part.slice(), { status: range ? 206 : 200, headers });
  });
  try {
    const logs: string[] = [];
    const dest = `${tmp.path}/file.bin`;
    await downloadFile(`http://127.0.0.1:${server.addr.port}/file.bin`, dest, {
      connectTimeoutMs: 300,
      idleTimeoutMs: 300,
      log: (m) => logs.push(m),
    });
    assert.deepEqual(await Deno.readFile(dest), body);
    assert.equal(requests.length, 3, `requests: ${requests}`);
    assert.equal(requests[0], null);
    assert.equal(requests[1], null);
    assert.equal(requests[2], `bytes=${body.length >> 1}-`, "the third request resumes where the stall began");
    assert.match(logs.join("\n"), /no answer within 0.3 s/);
    assert.match(logs.join("\n"), /nothing received for 0.3 s/);
  } finally {
    await server.shutdown();
  }
});

/** A tar in Caltech-256's layout: 100 files of 3000 bytes each (sizes not multiples of 512). */
async function makeTar(): Promise<Uint8Array> {
  const entries = Array.from({ length: 100 }, (_, i) => ({
    header: { name: `256_ObjectCategories/${String(i % 4 + 1).padStart(3, "0")}.k${i % 4}/${i}.jpg`, size: 3000 },
    body: Uint8Array.from({ length: 3000 }, (_, j) => (i * 31 + j * 7) & 0xff),
  }));
  return await packTar(entries);
}

/**
 * A bare HTTP/1.1 server on 127.0.0.1 that answers every request with what `answer` returns for its Range start
 * (null without one), then closes the connection: without a Content-Length the end of the body is the closing, so a
 * server that stops early looks, to the client, like a complete answer.
 */
function rawServer(answer: (start: number | null) => { status: string; headers: string[]; body: Uint8Array }) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: (string | null)[] = [];
  const serveOne = async (conn: Deno.Conn) => {
    try {
      let head = "";
      const buf = new Uint8Array(4096);
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) return;
        head += new TextDecoder().decode(buf.subarray(0, n));
      }
      const range = /^range: *bytes=(\d+)-/im.exec(head);
      requests.push(range ? `bytes=${range[1]}-` : null);
      const a = answer(range ? Number(range[1]) : null);
      const text = `HTTP/1.1 ${a.status}\r\nconnection: close\r\n${a.headers.map((h) => `${h}\r\n`).join("")}\r\n`;
      await conn.write(new TextEncoder().encode(text));
      for (let off = 0; off < a.body.length;) off += await conn.write(a.body.subarray(off));
    } catch {
      /* the client went away */
    } finally {
      conn.close();
    }
  };
  (async () => {
    for await (const conn of listener) serveOne(conn);
  })().catch(() => {});
  const url = `http://127.0.0.1:${listener.addr.port}/256_ObjectCategories.tar`;
  return { url, requests, [Symbol.dispose]: () => listener.close() };
}

Deno.test("download: a tar whose server closes early without a Content-Length is resumed, not extracted cut short", async () => {
  await using tmp = await tempDir();
  const tar = await makeTar();
  const cut = tar.length >> 1; // in the middle of a file
  using srv = rawServer((start) =>
    start === null ? { status: "200 OK", headers: [], body: tar.subarray(0, cut) } : {
      status: "206 Partial Content",
      headers: [`content-range: bytes ${start}-${tar.length - 1}/${tar.length}`],
      body: tar.subarray(start),
    }
  );
  const to = `${tmp.path}/data`;
  const r = await task("data", ["download", "caltech256", "--to", to, "--url", srv.url, "--md5", "none"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(srv.requests, [null, `bytes=${cut}-`], "the second request resumes where the first one stopped");
  assert.match(r.stderr, /incomplete/);
  const files = listTree(to).filter((p) => p.endsWith(".jpg"));
  assert.equal(files.length, 100, files.join(" "));
  for (const f of files) assert.equal(Deno.statSync(`${to}/${f}`).size, 3000, f);
  assert.deepEqual(await Deno.readFile(`${to}/256_ObjectCategories.tar`), tar);
});

Deno.test("download: a tar that always ends early is refused in one line and nothing is extracted", async () => {
  await using tmp = await tempDir();
  const tar = await makeTar();
  // 40 whole entries (header and padded body: 512 + 3072 bytes each) and nothing after them, not even the end blocks;
  // the server ignores Range and sends the same bytes every time.
  const cut = 40 * (512 + 3072);
  using srv = rawServer(() => ({ status: "200 OK", headers: [], body: tar.subarray(0, cut) }));
  const to = `${tmp.path}/data`;
  const r = await task("data", ["download", "caltech256", "--to", to, "--url", srv.url, "--md5", "none"]);
  oneLineError(r, /256_ObjectCategories\.tar.*incomplete.*run the command again/);
  assert.ok(srv.requests.length > 1, "the download was retried");
  assert.ok(
    !listTree(to).some((p) => p.includes("256_ObjectCategories/") || p.includes(".extract") || p.includes(".tmp-")),
    listTree(to).join(" "),
  );
});

Deno.test("archiveProblem: a whole tar, tar.gz and zip pass; each cut short anywhere is named", async () => {
  await using tmp = await tempDir();
  const tar = await makeTar();
  const gz = new Uint8Array(
    await new Response(new Blob([tar as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer(),
  );
  const zip = zipSync({ "a/one.jpg": tar.subarray(0, 5000), "a/two.jpg": tar.subarray(5000, 9000) });
  const entry = 512 + 3072; // a header and its padded 3000-byte body
  const cases: [string, Uint8Array, number[]][] = [
    // Mid-body, at an entry's boundary, after the first of the two end blocks.
    ["x.tar", tar, [tar.length >> 1, 40 * entry, 100 * entry + 512]],
    ["x.tar.gz", gz, [gz.length >> 1, gz.length - 4]],
    ["x.zip", zip, [zip.length >> 1, zip.length - 1]],
  ];
  for (const [name, bytes, cuts] of cases) {
    const path = `${tmp.path}/${name}`;
    await Deno.writeFile(path, bytes);
    assert.equal(await archiveProblem(path), null, name);
    for (const cut of cuts) {
      await Deno.writeFile(`${path}.part`, bytes.subarray(0, cut));
      assert.ok(await archiveProblem(`${path}.part`, name), `${name} cut at ${cut} of ${bytes.length}`);
    }
  }
});

Deno.test("download: an incomplete archive left under its final name by an earlier run is resumed", async () => {
  await using tmp = await tempDir();
  const tar = await makeTar();
  using srv = rawServer((start) => ({
    status: "206 Partial Content",
    headers: [`content-range: bytes ${start}-${tar.length - 1}/${tar.length}`],
    body: tar.subarray(start ?? 0),
  }));
  const to = `${tmp.path}/data`;
  await Deno.mkdir(to);
  await Deno.writeFile(`${to}/256_ObjectCategories.tar`, tar.subarray(0, 50_000));
  const r = await task("data", ["download", "caltech256", "--to", to, "--url", srv.url, "--md5", "none"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /is incomplete .*resuming/);
  assert.deepEqual(srv.requests, ["bytes=50000-"]);
  assert.equal(listTree(to).filter((p) => p.endsWith(".jpg")).length, 100);
});

Deno.test("download: what interrupted extractions left in the folder is removed on the next start; a live one's stays", async () => {
  await using tmp = await tempDir();
  const to = `${tmp.path}/data`;
  await Deno.mkdir(`${to}/stl10_binary`, { recursive: true }); // the data is already there
  const ended = new Deno.Command("true").spawn();
  await ended.status;
  const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    // tempName's names, as the ended and the running process made them.
    const as = (pid: number) => tempName(`${to}/stl10_binary`).split("/").pop()!.replace(/\.tmp-\d+-/, `.tmp-${pid}-`);
    const dayAgo = new Date(Date.now() - 25 * 3600e3);
    const leftovers = [as(ended.pid), `.extract-stl10-${ended.pid}`], live = as(sleeper.pid);
    for (const d of [...leftovers, live]) {
      await Deno.mkdir(`${to}/${d}/stl10_binary`, { recursive: true });
      await Deno.writeFile(`${to}/${d}/stl10_binary/train_X.bin`, new Uint8Array(200_000));
    }
    await Deno.utime(`${to}/.extract-stl10-${ended.pid}`, dayAgo, dayAgo); // an earlier version's name, a day old
    const r = await task("data", ["download", "stl10", "--to", to, "--url", "http://127.0.0.1:9/none"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /removed 2 temporary files \(0\.4 MB\) left in .*data by interrupted runs/);
    assert.deepEqual([...Deno.readDirSync(to)].map((e) => e.name).sort(), [live, "stl10_binary"].sort());
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
  }
});
