/**
 * Downloads of the official archives (PAPER.md "Data sets"), with a progress
 * bar, resume of an interrupted transfer (HTTP Range), MD5 verification where
 * the official checksum is known, and extraction (modern-tar for tar and
 * tar.gz, fflate for zip).
 *
 * Nothing half-written is left under a final name: the archive grows as
 * `<file>.part` and is renamed only once complete; it is extracted into a
 * temporary folder whose entries are moved into place only when extraction
 * succeeded. A transfer is complete when the server said how long the file is
 * and that many bytes arrived, or, when it did not say, when the archive's own
 * end is there and intact ({@link archiveProblem}): a server that closes the
 * connection early is otherwise indistinguishable from one that finished.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { unzipSync } from "fflate";
import { createTarDecoder } from "modern-tar";
import { unpackTar } from "modern-tar/fs";
import { UserError } from "../util/errors.ts";
import { exists, isDir, listDir, removeStaleTemps, tempName } from "../util/fsutil.ts";

/** One official archive. */
export interface Archive {
  name: string;
  url: string;
  /** File name of the archive. */
  file: string;
  /** The official MD5, or null where none is published. */
  md5: string | null;
  /** The folder the archive unpacks to (its presence means "already here"). */
  folder: string;
}

/** The official addresses and checksums. */
export const ARCHIVES: Record<string, Archive> = {
  stl10: {
    name: "stl10",
    url: "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
    file: "stl10_binary.tar.gz",
    md5: "91f7769df0f17e558f3565bffb0c7dfb",
    folder: "stl10_binary",
  },
  cifar10: {
    name: "cifar10",
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    file: "cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
    folder: "cifar-10-batches-bin",
  },
  caltech101: {
    name: "caltech101",
    // The zip holds 101_ObjectCategories.tar.gz (extracted in turn) and the annotations.
    url: "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1",
    file: "caltech-101.zip",
    md5: null,
    folder: "caltech-101",
  },
  caltech256: {
    name: "caltech256",
    url: "https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar?download=1",
    file: "256_ObjectCategories.tar",
    md5: "67b4f42ca05d46448c6bb8ecd2220f6d",
    folder: "256_ObjectCategories",
  },
};

/** Options of {@link downloadFile}. */
export interface DownloadOptions {
  /** How many times a broken transfer is resumed before giving up. */
  retries?: number;
  /** Progress reports (bytes so far, total or null). */
  onProgress?: (done: number, total: number | null) => void;
  /** Log lines for the user. */
  log?: (msg: string) => void;
  /** Give up on a request whose answer has not begun after this many milliseconds (default 30 s), and retry. */
  connectTimeoutMs?: number;
  /** Give up on a transfer that has received nothing for this many milliseconds (default 60 s), and resume. */
  idleTimeoutMs?: number;
  /**
   * What is missing from a transfer whose length the server did not say (null: nothing, it is complete); by default
   * {@link archiveProblem} for an archive's name, else nothing is known to be missing.
   */
  incomplete?: (part: string) => Promise<string | null>;
}

/**
 * Downloads `url` to `dest`, resuming from `dest.part` if a previous transfer
 * was interrupted. Returns the final path; `dest` appears only when complete:
 * all the bytes the server announced arrived, or, without an announced length,
 * `opts.incomplete` finds nothing missing (otherwise the transfer is resumed).
 */
export async function downloadFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<string> {
  const part = `${dest}.part`;
  const retries = opts.retries ?? 5;
  const log = opts.log ?? (() => {});
  const connectMs = opts.connectTimeoutMs ?? 30_000, idleMs = opts.idleTimeoutMs ?? 60_000;
  const incomplete = opts.incomplete ??
    (isArchiveName(dest) ? (p: string) => archiveProblem(p, dest) : () => Promise.resolve(null));
  for (let attempt = 0;; attempt++) {
    let have = exists(part) ? Deno.statSync(part).size : 0;
    // The file's own bytes, so that lengths and ranges count them (not those of a compressed transfer).
    const headers: Record<string, string> = { "Accept-Encoding": "identity" };
    if (have > 0) headers.Range = `bytes=${have}-`;
    // A server that accepts the connection and then stalls must not hang the download: the request is aborted when
    // no answer begins within connectMs, or when the body stops arriving for idleMs.
    const abort = new AbortController();
    let timer = setTimeout(() => abort.abort(new Error(`no answer within ${connectMs / 1000} s`)), connectMs);
    const stalled = () => {
      clearTimeout(timer);
      timer = setTimeout(() => abort.abort(new Error(`nothing received for ${idleMs / 1000} s`)), idleMs);
    };
    try {
      let res: Response;
      try {
        res = await fetch(url, { headers, signal: abort.signal });
      } catch (e) {
        const why = abort.signal.aborted ? (abort.signal.reason as Error).message : (e as Error).message;
        if (attempt < retries) {
          log(`  connection failed (${why}); retrying`);
          await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
          continue;
        }
        throw new UserError(`${url}: cannot connect (${why}); run the command again to retry`);
      }
      stalled();
      if (res.status === 416 && have > 0) {
        // The part file already holds everything the server has: complete if that is the length the server gives,
        // or, where it gives none, if nothing is missing from the file.
        await res.body?.cancel();
        const m = /\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
        const missing = m
          ? (Number(m[1]) === have ? null : `the server has ${m[1]} bytes, ${have} arrived`)
          : await incomplete(part);
        if (missing === null) break;
        throw new UserError(
          `${url}: the server has no more bytes, but the download is incomplete (${missing}); ` +
            `remove ${part} and run the command again`,
        );
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new UserError(`${url}: server answered ${res.status} ${res.statusText}`);
      }
      let total: number | null = null;
      if (res.status === 206) {
        const m = /\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
        total = m ? Number(m[1]) : null;
        if (have > 0) log(`  resuming at ${(have / 1e6).toFixed(1)} MB`);
      } else {
        // A plain 200: the server ignored the range (or none was asked); start over.
        have = 0;
        const len = res.headers.get("content-length");
        total = len ? Number(len) : null;
      }
      const file = await Deno.open(part, { write: true, create: true, append: have > 0, truncate: have === 0 });
      let broken: Error | null = null;
      try {
        for await (const chunk of res.body!) {
          stalled();
          let off = 0;
          while (off < chunk.length) off += await file.write(chunk.subarray(off));
          have += chunk.length;
          opts.onProgress?.(have, total);
        }
      } catch (e) {
        broken = abort.signal.aborted ? abort.signal.reason as Error : e as Error;
      } finally {
        file.close();
      }
      let why = broken?.message ?? null;
      if (!why && total !== null && have < total) why = `got ${have} of ${total} bytes`;
      if (!why && total === null) {
        // Without an announced length, the end of the body may be the server giving up: the file itself must be whole.
        const missing = await incomplete(part);
        if (missing) {
          why = `the server sent no length and stopped at ${have} bytes, where the file is incomplete: ${missing}`;
        }
      }
      if (!why) break;
      if (attempt >= retries) throw new UserError(`${url}: transfer broken (${why}); run the command again to resume`);
      log(`  transfer broken at ${(have / 1e6).toFixed(1)} MB (${why}); resuming`);
    } finally {
      clearTimeout(timer); // however the attempt ends
    }
  }
  await Deno.rename(part, dest);
  return dest;
}

/** The MD5 of a file, streamed. */
export async function md5File(path: string): Promise<string> {
  const h = createHash("md5");
  using f = await Deno.open(path, { read: true });
  for await (const chunk of f.readable) h.update(chunk);
  return h.digest("hex");
}

/** Decompresses a gzip file without keeping the output: throws if it is damaged (CRC, length). */
async function verifyGzip(path: string): Promise<void> {
  using f = await Deno.open(path, { read: true });
  const reader = f.readable.pipeThrough(new DecompressionStream("gzip")).getReader();
  while (!(await reader.read()).done) { /* discard */ }
}

function isArchiveName(name: string): boolean {
  return /\.(tar\.gz|tgz|tar|zip)$/i.test(name);
}

/**
 * Reads a tar stream to its end without keeping anything: throws unless every header is intact (checksum), every
 * entry has all its bytes and the archive's end-of-archive blocks are there.
 */
async function verifyTar(stream: ReadableStream<Uint8Array>): Promise<void> {
  for await (const entry of stream.pipeThrough(createTarDecoder({ strict: true }))) {
    await entry.body.pipeTo(new WritableStream());
  }
}

/**
 * A zip's end: the end-of-central-directory record, within the last 64 KiB, with the central directory right before
 * it (a zip cut short has lost both). Returns what is wrong, or null.
 */
async function zipProblem(path: string): Promise<string | null> {
  using f = await Deno.open(path, { read: true });
  const size = (await f.stat()).size, n = Math.min(size, 22 + 65535);
  await f.seek(size - n, Deno.SeekMode.Start);
  const tail = new Uint8Array(n);
  for (let off = 0; off < n;) {
    const got = await f.read(tail.subarray(off));
    if (got === null) return "the file shrank while being read";
    off += got;
  }
  const v = new DataView(tail.buffer);
  for (let i = n - 22; i >= 0; i--) {
    if (v.getUint32(i, true) !== 0x06054b50 || i + 22 + v.getUint16(i + 20, true) !== n) continue;
    const cdSize = v.getUint32(i + 12, true), cdOffset = v.getUint32(i + 16, true);
    if (cdOffset === 0xffffffff) return null; // zip64: fflate checks it when extracting
    if (cdOffset + cdSize === size - n + i) return null;
  }
  return "no end-of-central-directory record at its end (cut short?)";
}

/**
 * Why the archive file at `path` is not whole, or null when it is: a gzip's trailer (CRC and length) must match; a
 * tar's entries must all be complete and its end-of-archive blocks present; a zip's central directory must end it.
 * `name` gives the type (the file may be a `.part`).
 */
export async function archiveProblem(path: string, name: string = path): Promise<string | null> {
  const lower = name.toLowerCase();
  try {
    if (lower.endsWith(".zip")) return await zipProblem(path);
    using f = await Deno.open(path, { read: true });
    if (lower.endsWith(".tar.gz") || lower.endsWith(".tgz")) {
      await verifyTar(f.readable.pipeThrough(new DecompressionStream("gzip")));
    } else if (lower.endsWith(".tar")) await verifyTar(f.readable);
    return null;
  } catch (e) {
    const m = (e as Error).message.replace(/\.$/, "");
    return m.charAt(0).toLowerCase() + m.slice(1);
  }
}

/** Extracts a .tar, .tar.gz/.tgz or .zip archive into `dir` (which must exist). */
export async function extractArchive(archive: string, dir: string): Promise<void> {
  const lower = archive.toLowerCase();
  try {
    if (lower.endsWith(".zip")) {
      const files = unzipSync(await Deno.readFile(archive));
      for (const [name, data] of Object.entries(files)) {
        if (name.split("/").includes("..") || name.startsWith("/")) {
          throw new Error(`unsafe path in archive: ${name}`);
        }
        const path = join(dir, name);
        if (name.endsWith("/")) {
          await Deno.mkdir(path, { recursive: true });
          continue;
        }
        await Deno.mkdir(join(path, ".."), { recursive: true });
        await Deno.writeFile(path, data);
      }
    } else if (lower.endsWith(".tar.gz") || lower.endsWith(".tgz")) {
      // The tar reader stops at the archive's end marker, before gzip's CRC
      // trailer is checked; so the whole stream is checked first.
      await verifyGzip(archive);
      await pipeline(createReadStream(archive), createGunzip(), unpackTar(dir, { strict: true }));
    } else if (lower.endsWith(".tar")) {
      await pipeline(createReadStream(archive), unpackTar(dir, { strict: true }));
    } else {
      throw new Error("unknown archive type (expected .tar, .tar.gz, .tgz or .zip)");
    }
  } catch (e) {
    throw new UserError(`${archive}: cannot extract (${(e as Error).message})`);
  }
  // Archives inside the archive (Caltech-101's zip holds a .tar.gz): extract them in place.
  const walk = async (d: string) => {
    for (const e of listDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile && isArchiveName(e.name)) {
        await extractArchive(p, d);
        await Deno.remove(p);
      }
    }
  };
  await walk(dir);
}

/**
 * Downloads an official archive into `toDir`, verifies it and extracts it.
 * Returns the folder the data is in. Does nothing if it is already there.
 */
export async function downloadArchive(
  a: Archive,
  toDir: string,
  opts: DownloadOptions = {},
): Promise<string> {
  const log = opts.log ?? (() => {});
  const target = join(toDir, a.folder);
  // An extraction that was interrupted left its temporary folder; a live one's is kept.
  await removeStaleTemps(toDir, { hiddenOnly: true, log });
  if (isDir(target)) {
    log(`${target} already exists; nothing to do`);
    return target;
  }
  await Deno.mkdir(toDir, { recursive: true });
  const archive = join(toDir, a.file);
  if (exists(archive) && !a.md5) {
    // Without a checksum, an archive left by an earlier run is used only when whole; otherwise its download resumes.
    const missing = await archiveProblem(archive);
    if (missing) {
      log(`${archive} is incomplete (${missing}); resuming its download`);
      if (!exists(`${archive}.part`)) await Deno.rename(archive, `${archive}.part`);
      else await Deno.remove(archive);
    }
  }
  if (!exists(archive)) {
    log(`downloading ${a.url}`);
    await downloadFile(a.url, archive, { ...opts, log });
  }
  if (a.md5) {
    log(`verifying MD5 of ${archive}`);
    const got = await md5File(archive);
    if (got !== a.md5.toLowerCase()) {
      await Deno.remove(archive);
      throw new UserError(
        `${archive}: MD5 ${got} does not match the official ${a.md5}; the file was removed, download again`,
      );
    }
  } else log(`no official checksum for ${a.file}; checking that it extracts`);
  const tmp = tempName(target);
  await Deno.mkdir(tmp, { recursive: true });
  try {
    log(`extracting ${archive}`);
    try {
      await extractArchive(archive, tmp);
    } catch (e) {
      // Without a checksum, failing to extract is how a corrupted download shows.
      if (!a.md5) await Deno.remove(archive).catch(() => {});
      throw e;
    }
    if (!isDir(join(tmp, a.folder))) {
      throw new UserError(`${archive}: does not contain the expected folder ${a.folder}/`);
    }
    for (const e of listDir(tmp)) {
      const dest = join(toDir, e.name);
      if (exists(dest)) throw new UserError(`${dest} already exists; move it away and run again`);
    }
    for (const e of listDir(tmp)) await Deno.rename(join(tmp, e.name), join(toDir, e.name));
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
  log(`done: ${target}`);
  return target;
}
