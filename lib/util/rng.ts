/**
 * Deterministic pseudo-random numbers.
 *
 * Everything random in the project (synthetic data, seed sampling,
 * transformation parameters, initialisation, batch order) draws from these
 * generators, so a run is fully determined by its seed.
 *
 * @module
 */

/** Mixes 32-bit integers into one well-spread 32-bit hash (murmur3 finaliser). */
export function hash32(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    let k = Math.imul(x | 0, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A 64-bit fingerprint of bytes (two murmur3-style lanes over 32-bit words), as 16 hex digits: for telling files,
 * weights and cached results apart, not for security.
 */
export function hashBytes(bytes: Uint8Array | Float32Array, seed = 0): string {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const words = b.length >>> 2;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let h1 = hash32(seed, b.length) | 0, h2 = hash32(seed + 1, b.length) | 0;
  for (let i = 0; i < words; i++) {
    const k = view.getUint32(4 * i, true);
    h1 = Math.imul((h1 ^ Math.imul(k, 0xcc9e2d51)) << 13 | (h1 ^ Math.imul(k, 0xcc9e2d51)) >>> 19, 5) + 0xe6546b64 | 0;
    h2 = Math.imul((h2 ^ Math.imul(k, 0x1b873593)) << 15 | (h2 ^ Math.imul(k, 0x1b873593)) >>> 17, 5) + 0x561ccd1b | 0;
  }
  let tail = 0;
  for (let i = words * 4; i < b.length; i++) tail = (tail << 8) | b[i];
  return hash32(h1, tail).toString(16).padStart(8, "0") + hash32(h2, tail, 1).toString(16).padStart(8, "0");
}

/** Hashes strings (and numbers) into the same kind of fingerprint as {@link hashBytes}. */
export function hashText(...parts: (string | number)[]): string {
  return hashBytes(new TextEncoder().encode(JSON.stringify(parts)));
}

/** A small, fast generator (sfc32) seeded from any list of integers. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | null = null;

  /** A stream determined by `seed` (several numbers are hashed into one). */
  constructor(...seed: number[]) {
    this.#a = hash32(1, ...seed);
    this.#b = hash32(2, ...seed);
    this.#c = hash32(3, ...seed);
    this.#d = 1;
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer uniform in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.#spare !== null) {
      const s = this.#spare;
      this.#spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    this.shuffle(p);
    return p;
  }

  /** Shuffles an array in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}
