/**
 * Inner products of rows, the matrix product under the SVM's Gram matrix and the kNN's similarities: S = A B^T for
 * row-major A and B, through OpenBLAS's `sgemm` where it is given, else in JavaScript.
 *
 * The JavaScript product computes every entry as the plainest loop would: the products of float32 values summed in
 * float64 in the order of the coordinates, rounded to float32 once at the end, so its entries equal those of
 * `let s = 0; for (k) s += a[k] * b[k]` exactly. It only visits them in 4 x 2 blocks, which keeps eight sums in
 * registers and reads each loaded value twice or four times (about three times faster than one sum at a time).
 * `sgemm` sums in float32 in its own order: its entries differ from those in the last bits.
 *
 * @module
 */
import type { Blas } from "../compute/blas.ts";

/** Rows [r0, r1) of a row-major matrix of `dim` columns. */
export interface RowRange {
  /** The matrix, row after row. */
  x: Float32Array;
  /** First row. */
  r0: number;
  /** One past the last row. */
  r1: number;
}

/**
 * out[(i - a.r0) * ldo + (j - b.r0)] = a_i . b_j for the rows i of `a` and j of `b` (vectors of `dim` floats).
 * `blas` null: the JavaScript product (see the module notes).
 */
export function rowDots(
  a: RowRange,
  b: RowRange,
  dim: number,
  out: Float32Array,
  ldo: number,
  blas: Blas | null,
): void {
  const m = a.r1 - a.r0, n = b.r1 - b.r0;
  if (m <= 0 || n <= 0) return;
  if (ldo < n || out.length < (m - 1) * ldo + n) throw new Error(`rowDots: output of ${out.length} floats too small`);
  if (blas) {
    if (dim === 0) {
      for (let i = 0; i < m; i++) out.fill(0, i * ldo, i * ldo + n);
      return;
    }
    blas.sgemm(
      false,
      true,
      m,
      n,
      dim,
      1,
      a.x.subarray(a.r0 * dim, a.r1 * dim),
      dim,
      b.x.subarray(b.r0 * dim, b.r1 * dim),
      dim,
      0,
      out,
      ldo,
    );
    return;
  }
  const A = a.x, B = b.x;
  let i = a.r0;
  for (; i + 4 <= a.r1; i += 4) {
    const a0 = i * dim, a1 = a0 + dim, a2 = a1 + dim, a3 = a2 + dim, o = (i - a.r0) * ldo - b.r0;
    let j = b.r0;
    for (; j + 2 <= b.r1; j += 2) {
      const b0 = j * dim, b1 = b0 + dim;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
      for (let k = 0; k < dim; k++) {
        const u = B[b0 + k], v = B[b1 + k];
        const p = A[a0 + k], q = A[a1 + k], r = A[a2 + k], t = A[a3 + k];
        s00 += p * u;
        s01 += p * v;
        s10 += q * u;
        s11 += q * v;
        s20 += r * u;
        s21 += r * v;
        s30 += t * u;
        s31 += t * v;
      }
      out[o + j] = s00, out[o + j + 1] = s01;
      out[o + ldo + j] = s10, out[o + ldo + j + 1] = s11;
      out[o + 2 * ldo + j] = s20, out[o + 2 * ldo + j + 1] = s21;
      out[o + 3 * ldo + j] = s30, out[o + 3 * ldo + j + 1] = s31;
    }
    for (; j < b.r1; j++) {
      const b0 = j * dim;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < dim; k++) {
        const u = B[b0 + k];
        s0 += A[a0 + k] * u;
        s1 += A[a1 + k] * u;
        s2 += A[a2 + k] * u;
        s3 += A[a3 + k] * u;
      }
      out[o + j] = s0, out[o + ldo + j] = s1, out[o + 2 * ldo + j] = s2, out[o + 3 * ldo + j] = s3;
    }
  }
  for (; i < a.r1; i++) {
    const a0 = i * dim, o = (i - a.r0) * ldo - b.r0;
    for (let j = b.r0; j < b.r1; j++) {
      const b0 = j * dim;
      let s = 0;
      for (let k = 0; k < dim; k++) s += A[a0 + k] * B[b0 + k];
      out[o + j] = s;
    }
  }
}
