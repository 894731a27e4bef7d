import assert from "node:assert/strict";
import {
  colorPCA,
  drawParams,
  identityParams,
  NO_PCA,
  parseTransforms,
  sweepParams,
  transformPatch,
  TRANSFORMS,
} from "../lib/augment.ts";
import { Rng } from "../lib/util/rng.ts";
import { METHODS } from "../lib/presets.ts";
import { CONTEXT, PATCH } from "../lib/seeds.ts";

/** A random CONTEXT x CONTEXT window of RGB bytes. */
function randomWindow(seed: number): Uint8Array {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: CONTEXT * CONTEXT * 3 }, () => rng.int(256));
}

const M = (CONTEXT - PATCH) / 2; // the seed's offset inside its window
const at = (w: Uint8Array, x: number, y: number, c: number) => w[3 * (y * CONTEXT + x) + c] / 255;

function run(w: Uint8Array, p = identityParams(), pca = NO_PCA): Float32Array {
  const out = new Float32Array(PATCH * PATCH * 3);
  transformPatch(w, 0, p, pca, out);
  return out;
}

Deno.test("identity parameters give the seed back", () => {
  const w = randomWindow(1);
  const out = run(w, identityParams(), colorPCA(w));
  for (let y = 0; y < PATCH; y++) {
    for (let x = 0; x < PATCH; x++) {
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(out[3 * (y * PATCH + x) + c] - at(w, x + M, y + M, c)) < 1e-6);
    }
  }
});

Deno.test("contrast1 with all factors 1 is the identity, whatever the principal components", () => {
  const w = randomWindow(2);
  const pca = colorPCA(w);
  // The components are orthonormal.
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 3; b++) {
      const dot = pca.vectors[a].reduce((s, v, i) => s + v * pca.vectors[b][i], 0);
      assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-9);
    }
  }
  const p = identityParams();
  p.pca = [1, 1, 1];
  const out = run(w, p, pca);
  const ref = run(w, identityParams(), NO_PCA);
  for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i] - ref[i]) < 1e-6);
  // And a factor != 1 changes the patch.
  p.pca = [2, 1, 1];
  assert.ok(run(w, p, pca).some((v, i) => Math.abs(v - ref[i]) > 0.01));
});

Deno.test("color: the hue wraps around", () => {
  // A uniform window of one colour with hue 0.95 (a pinkish red).
  const w = new Uint8Array(CONTEXT * CONTEXT * 3);
  for (let i = 0; i < w.length; i += 3) [w[i], w[i + 1], w[i + 2]] = [255, 0, 76]; // h = 1 - 76/255/6 = 0.950
  const hueOf = (r: number, g: number, b: number) => {
    const max = Math.max(r, g, b), d = max - Math.min(r, g, b);
    const h = max === r ? ((g - b) / d) / 6 : max === g ? ((b - r) / d + 2) / 6 : ((r - g) / d + 4) / 6;
    return (h + 1) % 1;
  };
  const p = identityParams();
  p.hue = 0.1;
  const out = run(w, p);
  const h = hueOf(out[0], out[1], out[2]);
  assert.ok(Math.abs(h - 0.0503) < 1e-3, `hue ${h}`); // 0.950 + 0.1 = 1.050 -> 0.050
  p.hue = -0.1;
  const back = run(w, p);
  assert.ok(Math.abs(hueOf(back[0], back[1], back[2]) - 0.8503) < 1e-3);
  p.hue = 1; // a whole turn is no change
  const same = run(w, p);
  assert.ok(Math.abs(same[0] - 1) < 1e-6 && Math.abs(same[2] - 76 / 255) < 1e-6);
});

Deno.test("a 90-degree rotation matches an exact array rotation", () => {
  const w = randomWindow(3);
  const p = identityParams();
  p.angle = Math.PI / 2;
  const out = run(w, p);
  // The seed rotated clockwise: out[y][x] = seed[31 - x][y].
  for (let y = 0; y < PATCH; y++) {
    for (let x = 0; x < PATCH; x++) {
      for (let c = 0; c < 3; c++) {
        assert.ok(Math.abs(out[3 * (y * PATCH + x) + c] - at(w, y + M, PATCH - 1 - x + M, c)) < 1e-5);
      }
    }
  }
});

Deno.test("translation samples the surroundings: no empty borders", () => {
  const w = randomWindow(4);
  const p = identityParams();
  p.tx = 8;
  p.ty = -8;
  const out = run(w, p);
  for (let y = 0; y < PATCH; y++) {
    for (let x = 0; x < PATCH; x++) {
      assert.ok(Math.abs(out[3 * (y * PATCH + x)] - at(w, x + M + 8, y + M - 8, 0)) < 1e-6);
    }
  }
  // The widest geometric transform of either preset stays inside the window:
  // the patch corner (15.5, 15.5) / scale, rotated by 20 degrees, plus the largest shift, along one axis.
  for (const preset of ["paper", "release"] as const) {
    const r = METHODS[preset].augment;
    const deg20 = Math.PI / 9;
    const shift = r.translation * PATCH / (r.translationOf === "scaledPatch" ? r.scale[0] : 1);
    const reach = (PATCH / 2 - 0.5) / r.scale[0] * (Math.cos(deg20) + Math.sin(deg20)) + shift;
    assert.ok(reach + 1 < CONTEXT / 2 - 0.5, `${preset} reaches ${reach}`);
  }
});

Deno.test("every drawn parameter lies inside its preset's range", () => {
  for (const preset of ["paper", "release"] as const) {
    const r = METHODS[preset].augment;
    const rng = new Rng(9);
    const eps = 1e-9;
    const inside = (v: number, [lo, hi]: [number, number]) => v >= lo - eps && v <= hi + eps;
    for (let i = 0; i < 3000; i++) {
      const p = drawParams(rng, preset);
      const limit = r.translation * PATCH / (r.translationOf === "scaledPatch" ? p.scale : 1) + eps;
      assert.ok(Math.abs(p.tx) <= limit && Math.abs(p.ty) <= limit);
      assert.ok(inside(p.scale, r.scale), `scale ${p.scale}`);
      assert.ok(Math.abs(p.angle) <= r.rotationDeg * Math.PI / 180 + eps);
      for (const f of p.pca) assert.ok(inside(f, r.pca), `pca ${f}`);
      for (const v of [p.sPow, p.vPow]) assert.ok(inside(v, r.power), `power ${v}`);
      for (const v of [p.sMul, p.vMul]) assert.ok(inside(v, r.factor), `factor ${v}`);
      for (const v of [p.sAdd, p.vAdd]) assert.ok(inside(v, r.add), `add ${v}`);
      assert.ok(inside(p.hue, r.hue));
    }
  }
  // The draws spread over the range, not just near its centre.
  const rng = new Rng(10);
  const scales = Array.from({ length: 2000 }, () => drawParams(rng, "paper").scale);
  assert.ok(Math.min(...scales) < 0.72 && Math.max(...scales) > 1.37);
});

Deno.test("each transformation can be switched off on its own", () => {
  const only = parseTransforms("rotation,color");
  const p = drawParams(new Rng(5), "paper", only);
  const all = drawParams(new Rng(5), "paper");
  assert.equal(p.angle, all.angle); // the others' draws are unchanged
  assert.equal(p.hue, all.hue);
  assert.deepEqual([p.tx, p.ty, p.scale, p.pca, p.sPow, p.vMul], [0, 0, 1, [1, 1, 1], 1, 1]);
  assert.throws(() => parseTransforms("rotation,blur"), /unknown transformation "blur"/);
  for (const t of TRANSFORMS) assert.equal(sweepParams(t, "paper", 5).length, 5);
});

Deno.test("release contrast1: log2 factors spread 0.5 on the largest-variance component, 1 on the others", () => {
  const rng = new Rng(21);
  const n = 20000, sum = [0, 0, 0], sq = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const p = drawParams(rng, "release");
    for (let k = 0; k < 3; k++) {
      const l = Math.log2(p.pca[k]);
      sum[k] += l;
      sq[k] += l * l;
    }
  }
  const std = sq.map((s, k) => Math.sqrt(s / n - (sum[k] / n) ** 2));
  // The components are listed largest variance first (colorPCA); N(0, s^2) has std s, within 3 % at this n.
  [0.5, 1, 1].forEach((s, k) => assert.ok(Math.abs(std[k] - s) < 0.03 * s, `component ${k}: std ${std[k]}`));
});
