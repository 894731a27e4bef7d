/**
 * RGB images: the one pixel format every stage of the project passes around,
 * decoding of image files and PNG encoding (both through imagescript).
 *
 * @module
 */
import type { Image } from "imagescript";
import { UserError } from "./errors.ts";

/** The largest image read (a damaged or hostile header must not make the reader allocate gigabytes). */
export const MAX_PIXELS = 100e6;

/** An image file that cannot be read: not decodable, or claiming an impossible size. */
export class UnreadableImage extends UserError {}

/**
 * imagescript, loaded on the first decode or encode: the stages that never read an image file (synthetic data,
 * STL-10 and CIFAR-10 binaries) then run without it, as the bundle for a GPU machine does (bench/gpu_bundle.sh).
 */
const imagescript = () => import("imagescript");

/** An 8-bit RGB image, row-major, channels interleaved (HWC). */
export interface RGBImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `height * width * 3` bytes: R, G, B of pixel (y, x) at `3 * (y * width + x)`. */
  data: Uint8Array;
}

/** A blank image. */
export function newImage(width: number, height: number): RGBImage {
  return { width, height, data: new Uint8Array(width * height * 3) };
}

/** The container format recognised from a file's first bytes, or null. */
export function imageKind(bytes: Uint8Array): "jpeg" | "png" | "gif" | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "jpeg";
  }
  if (
    bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 &&
    bytes[2] === 0x4e && bytes[3] === 0x47
  ) return "png";
  if (bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x49 && bytes[2] === 0x46) {
    return "gif";
  }
  return null;
}

/**
 * Width and height from a JPEG's, PNG's or GIF's header without decoding the pixels
 * (null when the header cannot be read; the caller then decodes).
 */
export function headerSize(bytes: Uint8Array): { width: number; height: number } | null {
  const kind = imageKind(bytes);
  if (kind === "png" && bytes.length >= 24) {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return { width: v.getUint32(16), height: v.getUint32(20) };
  }
  if (kind === "gif" && bytes.length >= 10) {
    // The logical screen the frames are drawn on, little-endian.
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return { width: v.getUint16(6, true), height: v.getUint16(8, true) };
  }
  if (kind !== "jpeg") return null;
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++;
      continue;
    }
    const len = (bytes[i + 2] << 8) | bytes[i + 3];
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return {
        height: (bytes[i + 5] << 8) | bytes[i + 6],
        width: (bytes[i + 7] << 8) | bytes[i + 8],
      };
    }
    i += 2 + len;
  }
  return null;
}

/**
 * Decodes a JPEG, PNG or GIF file into RGB. Grayscale and CMYK JPEGs come
 * back as RGB; an alpha channel is dropped; of an animated GIF, the first
 * frame is read (only that one is decoded).
 */
export async function decodeImage(bytes: Uint8Array, name = "image"): Promise<RGBImage> {
  const claimed = headerSize(bytes);
  if (claimed && claimed.width * claimed.height > MAX_PIXELS) {
    throw new UnreadableImage(
      `${name}: its header claims ${claimed.width}x${claimed.height} pixels, more than the ${
        MAX_PIXELS / 1e6
      } megapixels this project reads`,
    );
  }
  const { decode, Image } = await imagescript();
  let img: Pick<Image, "width" | "height" | "bitmap">;
  try {
    // A GIF decodes to a list of frames (here at most the first), each an Image the size of the logical screen.
    const decoded = await decode(bytes, true);
    const first = decoded instanceof Image ? decoded : decoded[0];
    if (!first) throw new Error("a GIF without any frame");
    img = first;
  } catch (e) {
    throw new UnreadableImage(`${name}: cannot decode image (${(e as Error).message})`);
  }
  const { width, height, bitmap } = img;
  const out = new Uint8Array(width * height * 3);
  for (let p = 0, q = 0; q < out.length; p += 4, q += 3) {
    out[q] = bitmap[p];
    out[q + 1] = bitmap[p + 1];
    out[q + 2] = bitmap[p + 2];
  }
  return { width, height, data: out };
}

/** Encodes an RGB image as PNG (no time stamp, so equal images give equal files). */
export async function encodePng(img: RGBImage): Promise<Uint8Array> {
  const { Image } = await imagescript();
  const out = new Image(img.width, img.height);
  const bm = out.bitmap;
  for (let p = 0, q = 0; q < img.data.length; p += 4, q += 3) {
    bm[p] = img.data[q];
    bm[p + 1] = img.data[q + 1];
    bm[p + 2] = img.data[q + 2];
    bm[p + 3] = 255;
  }
  // deno-lint-ignore no-explicit-any
  return await (out as any).encode(1, { creationTime: 0 });
}

/** Bilinear resize to `width` x `height` (pixel centres aligned, edges clamped). */
export function resizeBilinear(img: RGBImage, width: number, height: number): RGBImage {
  if (img.width === width && img.height === height) return img;
  const out = newImage(width, height);
  const sx = img.width / width, sy = img.height / height;
  const src = img.data, dst = out.data, W = img.width, H = img.height;
  for (let y = 0; y < height; y++) {
    let fy = (y + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    const y0 = Math.min(Math.floor(fy), H - 1), y1 = Math.min(y0 + 1, H - 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      let fx = (x + 0.5) * sx - 0.5;
      if (fx < 0) fx = 0;
      const x0 = Math.min(Math.floor(fx), W - 1), x1 = Math.min(x0 + 1, W - 1);
      const wx = fx - x0;
      const a = 3 * (y0 * W + x0), b = 3 * (y0 * W + x1);
      const c = 3 * (y1 * W + x0), d = 3 * (y1 * W + x1);
      const o = 3 * (y * width + x);
      for (let ch = 0; ch < 3; ch++) {
        const top = src[a + ch] + (src[b + ch] - src[a + ch]) * wx;
        const bot = src[c + ch] + (src[d + ch] - src[c + ch]) * wx;
        dst[o + ch] = Math.round(top + (bot - top) * wy);
      }
    }
  }
  return out;
}

/**
 * Resizes with antialiasing: where an axis shrinks, each output pixel averages the input under a triangle filter
 * widened by the shrink factor (as MATLAB's imresize with antialiasing and PIL's bilinear resize do), so detail
 * finer than the output grid is averaged out instead of aliased; where an axis grows or keeps its size it is
 * {@link resizeBilinear}.
 */
export function resizeAntialiased(img: RGBImage, width: number, height: number): RGBImage {
  if (width >= img.width && height >= img.height) return resizeBilinear(img, width, height);
  const rows = resampleAxis(Float32Array.from(img.data), img.width, img.height, width, true);
  const both = resampleAxis(rows, width, img.height, height, false);
  const out = newImage(width, height);
  for (let i = 0; i < both.length; i++) out.data[i] = Math.max(0, Math.min(255, Math.round(both[i])));
  return out;
}

/** One axis of {@link resizeAntialiased}: `data` is W x H x 3; resamples x (`alongX`) or y to `n` samples. */
function resampleAxis(data: Float32Array, W: number, H: number, n: number, alongX: boolean): Float32Array {
  const len = alongX ? W : H, other = alongX ? H : W;
  const scale = len / n, support = Math.max(1, scale); // the triangle's half-width, in input pixels
  const out = new Float32Array(alongX ? n * H * 3 : W * n * 3);
  for (let i = 0; i < n; i++) {
    const centre = (i + 0.5) * scale - 0.5;
    const lo = Math.max(0, Math.ceil(centre - support)), hi = Math.min(len - 1, Math.floor(centre + support));
    const weights: number[] = [];
    let total = 0;
    for (let j = lo; j <= hi; j++) {
      const w = Math.max(0, 1 - Math.abs(j - centre) / support);
      weights.push(w);
      total += w;
    }
    for (let k = 0; k < other; k++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let j = lo; j <= hi; j++) {
          const src = alongX ? 3 * (k * W + j) + c : 3 * (j * W + k) + c;
          acc += data[src] * weights[j - lo];
        }
        out[alongX ? 3 * (k * n + i) + c : 3 * (i * W + k) + c] = total > 0 ? acc / total : 0;
      }
    }
  }
  return out;
}

/**
 * Tiles images (scaled to `cell` px, nearest neighbour) into one grid image,
 * `cols` per row, separated by `pad` px of a light gray.
 */
export function imageGrid(images: RGBImage[], cols: number, cell = 64, pad = 2): RGBImage {
  const rows = Math.max(1, Math.ceil(images.length / cols));
  const W = cols * cell + (cols + 1) * pad, H = rows * cell + (rows + 1) * pad;
  const out = newImage(W, H);
  out.data.fill(230);
  images.forEach((img, n) => {
    const ox = pad + (n % cols) * (cell + pad), oy = pad + Math.floor(n / cols) * (cell + pad);
    const s = Math.max(img.width, img.height) / cell;
    const w = Math.round(img.width / s), h = Math.round(img.height / s);
    const dx = ox + ((cell - w) >> 1), dy = oy + ((cell - h) >> 1);
    for (let y = 0; y < h; y++) {
      const sy = Math.min(img.height - 1, Math.floor((y + 0.5) * s));
      for (let x = 0; x < w; x++) {
        const sx = Math.min(img.width - 1, Math.floor((x + 0.5) * s));
        const p = 3 * (sy * img.width + sx), q = 3 * ((dy + y) * W + dx + x);
        out.data[q] = img.data[p];
        out.data[q + 1] = img.data[p + 1];
        out.data[q + 2] = img.data[p + 2];
      }
    }
  });
  return out;
}

/** Draws the outline of a rectangle (top-left x, y; size w x h) in place, `t` px thick. */
export function drawRect(
  img: RGBImage,
  x: number,
  y: number,
  w: number,
  h: number,
  color: [number, number, number],
  t = 1,
): void {
  const put = (px: number, py: number) => {
    if (px < 0 || py < 0 || px >= img.width || py >= img.height) return;
    const o = 3 * (py * img.width + px);
    [img.data[o], img.data[o + 1], img.data[o + 2]] = color;
  };
  for (let k = 0; k < t; k++) {
    for (let i = x; i < x + w; i++) put(i, y + k), put(i, y + h - 1 - k);
    for (let j = y; j < y + h; j++) put(x + k, j), put(x + w - 1 - k, j);
  }
}

/** A scalar map as a picture: black (its minimum) through red and yellow to white (its maximum). */
export function heatmap(map: ArrayLike<number>, width: number, height: number): RGBImage {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < map.length; i++) lo = Math.min(lo, map[i]), hi = Math.max(hi, map[i]);
  const img = newImage(width, height);
  for (let i = 0; i < width * height; i++) {
    const t = hi > lo ? (map[i] - lo) / (hi - lo) : 0;
    img.data[3 * i] = Math.round(255 * Math.min(1, 3 * t));
    img.data[3 * i + 1] = Math.round(255 * Math.min(1, Math.max(0, 3 * t - 1)));
    img.data[3 * i + 2] = Math.round(255 * Math.max(0, 3 * t - 2));
  }
  return img;
}
