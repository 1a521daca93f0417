// Issue-3 ops (Restormer / MAXIM): relu, sigmoid, softmax, l2Normalize, layerNormBiasFree, subsample2d,
// resizeBilinear — float64 references, the exact antialiased kernel numbers of spec §4.4 / §10, gradchecks.
import { describe, expect, it } from 'vitest';
import { tensor } from '../lib/tensor/tensor.js';
import { relu, sigmoid, softmax, l2Normalize } from '../lib/ops/activation2.js';
import { layerNormBiasFree } from '../lib/ops/norm2.js';
import { subsample2d, resizeBilinear } from '../lib/ops/resample.js';
import { runOp } from '../lib/ops/run.js';
import { randArray, expectClose, gradcheck } from './helpers.js';

/** Applies f to each row (last axis of length C) of a, in float64. */
function rows(a: ArrayLike<number>, C: number, f: (r: number[]) => number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < a.length; i += C) out.push(...f(Array.from({ length: C }, (_, j) => a[i + j]!)));
  return out;
}

// ---- float64 reference of torch's bilinear interpolate (align_corners=False), one axis ---------------------
/** Dense [out][in] weight matrix along one axis. */
function axisWeights(inn: number, out: number, aa: boolean): number[][] {
  const scale = inn / out;
  const m: number[][] = [];
  for (let i = 0; i < out; ++i) {
    const row = new Array<number>(inn).fill(0);
    if (aa) {
      const support = Math.max(scale, 1), inv = 1 / Math.max(scale, 1);
      const c = scale * (i + 0.5);
      const lo = Math.max(Math.trunc(c - support + 0.5), 0), hi = Math.min(Math.trunc(c + support + 0.5), inn);
      let tot = 0;
      for (let j = lo; j < hi; ++j) tot += row[j] = Math.max(0, 1 - Math.abs((j - c + 0.5) * inv));
      for (let j = lo; j < hi; ++j) row[j]! /= tot;
    } else {
      const src = Math.max(scale * (i + 0.5) - 0.5, 0);
      const i0 = Math.min(Math.floor(src), inn - 1), i1 = Math.min(i0 + 1, inn - 1);
      const l = src - i0;
      row[i0]! += 1 - l;
      row[i1]! += l;
    }
    m.push(row);
  }
  return m;
}

function resizeRef(x: Float32Array, [N, H, W, C]: number[], oh: number, ow: number, aa: boolean): number[] {
  const v = axisWeights(H!, oh, aa), h = axisWeights(W!, ow, aa);
  const y = new Array<number>(N! * oh * ow * C!).fill(0);
  for (let n = 0; n < N!; ++n)
    for (let i = 0; i < oh; ++i)
      for (let j = 0; j < ow; ++j)
        for (let c = 0; c < C!; ++c) {
          let s = 0;
          for (let a = 0; a < H!; ++a) {
            if (v[i]![a] === 0) continue;
            for (let b = 0; b < W!; ++b) s += v[i]![a]! * h[j]![b]! * x[((n * H! + a) * W! + b) * C! + c]!;
          }
          y[((n * oh + i) * ow + j) * C! + c] = s;
        }
  return y;
}

describe('activations (issue 3)', () => {
  it('relu / sigmoid / softmax / l2Normalize forward match float64 references', async () => {
    for (const C of [3, 5, 64]) {
      const shape = [2, 7, C];
      const a = randArray(2 * 7 * C, C, -6, 6);
      const x = tensor(a, shape);
      await expectClose(relu(x), Array.from(a, (v) => Math.max(v, 0)), 0, 'relu');
      await expectClose(sigmoid(x), Array.from(a, (v) => 1 / (1 + Math.exp(-v))), 1e-6, 'sigmoid');
      const sm = rows(a, C, (r) => {
        const m = Math.max(...r);
        const e = r.map((v) => Math.exp(v - m));
        const s = e.reduce((p, q) => p + q, 0);
        return e.map((v) => v / s);
      });
      await expectClose(softmax(x), sm, 1e-6, 'softmax');
      const l2 = (eps: number) =>
        rows(a, C, (r) => {
          const n = Math.max(Math.sqrt(r.reduce((p, q) => p + q * q, 0)), eps);
          return r.map((v) => v / n);
        });
      await expectClose(l2Normalize(x), l2(1e-12), 1e-6, 'l2Normalize');
      await expectClose(l2Normalize(x, 100), l2(100), 1e-6, 'l2Normalize clamped');
    }
  });

  it('softmax is stable for large logits and sigmoid saturates', async () => {
    const y = await softmax(tensor([1000, 1001, 999, -1e30], [1, 4])).data();
    const e = [Math.exp(-1), 1, Math.exp(-2)];
    const s = e[0]! + e[1]! + e[2]!;
    expect(Array.from(y).map((v) => +v.toFixed(6))).toEqual([...e.map((v) => +(v / s).toFixed(6)), 0]);
    const g = await sigmoid(tensor([-100, 0, 100], [3])).data();
    expect(g[0]).toBeLessThan(1e-30);
    expect(g[1]).toBe(0.5);
    expect(g[2]).toBe(1);
  });

  it('gradients', async () => {
    for (const C of [3, 5]) {
      const shape = [2, 3, C];
      const a = randArray(6 * C, 11 + C, -3, 3);
      // relu's kink at 0 must stay outside the finite-difference step.
      const away = a.map((v) => (v < 0 ? v - 0.05 : v + 0.05));
      await gradcheck(relu, [{ data: away, shape }]);
      await gradcheck(sigmoid, [{ data: a, shape }]);
      await gradcheck(softmax, [{ data: a, shape }]);
      await gradcheck((x) => l2Normalize(x), [{ data: a, shape }]);
      // Rows whose norm is below eps: the Jacobian is I / eps.
      await gradcheck((x) => l2Normalize(x, 10), [{ data: a, shape }], { eps: 1e-3 });
    }
  });

  it('bad inputs name what was expected and found', () => {
    const x = tensor(randArray(6, 1), [2, 3]);
    expect(() => runOp('softmax_backward', [x, tensor(randArray(6, 1), [3, 2])])).toThrowError(
      /dy must have the shape of y \[3, 2\], got \[2, 3\]/,
    );
    expect(() => l2Normalize(x, -1)).toThrowError(/eps must be .*>= 0, got -1/);
  });
});

describe('layerNormBiasFree', () => {
  it('forward matches BiasFree_LayerNorm in float64', async () => {
    for (const C of [3, 5, 48]) {
      const a = randArray(3 * 7 * C, 20 + C, -2, 3), w = randArray(C, 30 + C, 0.5, 1.5);
      const ref = rows(a, C, (r) => {
        const mu = r.reduce((p, q) => p + q, 0) / C;
        const v = r.reduce((p, q) => p + (q - mu) ** 2, 0) / C;
        return r.map((q, j) => (q / Math.sqrt(v + 1e-5)) * w[j]!);
      });
      await expectClose(layerNormBiasFree(tensor(a, [3, 7, C]), tensor(w, [C])), ref, 1e-6, `C=${C}`);
    }
  });

  it('gradients (x and w)', async () => {
    for (const C of [3, 5]) {
      await gradcheck((x, w) => layerNormBiasFree(x, w), [
        { data: randArray(2 * 7 * C, 40 + C, -2, 2), shape: [2, 7, C] },
        { data: randArray(C, 50 + C), shape: [C] },
      ]);
    }
  });

  it('bad weight shape', () => {
    expect(() => layerNormBiasFree(tensor(randArray(10, 1), [2, 5]), tensor(randArray(4, 1), [4]))).toThrowError(
      /weight must have shape \[5\] \(channels of x \[2, 5\]\), got \[4\]/,
    );
  });
});

describe('subsample2d', () => {
  it('forward picks x[r i + offset, r j + offset]', async () => {
    for (const [H, W, C, r, off] of [[7, 13, 3, 2, 1], [13, 7, 5, 4, 2], [8, 8, 3, 4, 3], [5, 5, 2, 1, 0]] as const) {
      const a = randArray(2 * H * W * C, H + W, -1, 1);
      const Ho = Math.floor(H / r), Wo = Math.floor(W / r);
      const ref: number[] = [];
      for (let n = 0; n < 2; ++n)
        for (let i = 0; i < Ho; ++i)
          for (let j = 0; j < Wo; ++j)
            for (let c = 0; c < C; ++c) ref.push(a[((n * H + r * i + off) * W + r * j + off) * C + c]!);
      const y = subsample2d(tensor(a, [2, H, W, C]), r, off);
      expect(y.shape).toEqual([2, Ho, Wo, C]);
      await expectClose(y, ref, 0, `${H}x${W} r${r} o${off}`);
    }
  });

  it('gradients', async () => {
    await gradcheck((x) => subsample2d(x, 2, 1), [{ data: randArray(7 * 13 * 3, 60), shape: [1, 7, 13, 3] }]);
    await gradcheck((x) => subsample2d(x, 4, 2), [{ data: randArray(2 * 9 * 8 * 2, 61), shape: [2, 9, 8, 2] }]);
  });

  it('rejects offsets that fall off the image', () => {
    expect(() => subsample2d(tensor(randArray(8 * 8, 1), [1, 8, 8, 1]), 2, 2)).toThrowError(
      /samples index 8 of an axis of size 8/,
    );
    expect(() => subsample2d(tensor(randArray(8, 1), [8, 1]), 2, 0)).toThrowError(/\[N, H, W, C\], got \[8, 1\]/);
  });
});

describe('resizeBilinear', () => {
  it('exact antialiased kernels of spec §4.4 and §10 item 5', async () => {
    // Impulse responses: resize a one-hot column and read the weights of each tap.
    const weightsOf = async (inn: number, out: number, i: number): Promise<number[]> => {
      const w: number[] = [];
      for (let j = 0; j < inn; ++j) {
        const a = new Float32Array(inn);
        a[j] = 1;
        const d = await resizeBilinear(tensor(a, [1, inn, 1, 1]), out, 1, true).data();
        w.push(d[i]!);
      }
      return w;
    };
    // ×1/2: taps 2i−1..2i+2 with (1,3,3,1)/8
    const half = await weightsOf(32, 16, 5);
    expect(half.slice(9, 13).map((v) => v * 8)).toEqual([1, 3, 3, 1].map((v) => expect.closeTo(v, 5)));
    expect(half.reduce((p, q) => p + q, 0)).toBeCloseTo(1, 6);
    expect(half.filter((v) => v !== 0).length).toBe(4);
    // ×1/4: taps 4i−2..4i+5 with (1,3,5,7,7,5,3,1)/32
    const quarter = await weightsOf(32, 8, 3);
    expect(quarter.slice(10, 18).map((v) => v * 32)).toEqual([1, 3, 5, 7, 7, 5, 3, 1].map((v) => expect.closeTo(v, 5)));
    expect(quarter.filter((v) => v !== 0).length).toBe(8);
    // Top row of the ½ kernel: renormalised 0.4286 / 0.4286 / 0.1429 (3/7, 3/7, 1/7).
    const top = await weightsOf(32, 16, 0);
    expect(top.slice(0, 3)).toEqual([3 / 7, 3 / 7, 1 / 7].map((v) => expect.closeTo(v, 6)));
    expect(top.slice(0, 3).map((v) => +v.toFixed(4))).toEqual([0.4286, 0.4286, 0.1429]);
  });

  it('forward matches torch interpolate (float64 reference), down and up, with and without antialias', async () => {
    const cases: [number, number, number, number, number][] = [
      [13, 10, 7, 5, 3],
      [32, 32, 16, 16, 3],
      [32, 32, 8, 8, 5],
      [8, 8, 16, 16, 3],
      [8, 8, 32, 32, 2],
      [7, 13, 13, 7, 5],
      [10, 9, 10, 9, 3],
    ];
    for (const [H, W, oh, ow, C] of cases) {
      const shape = [2, H, W, C];
      const a = randArray(2 * H * W * C, H * 100 + W, -1, 1);
      for (const aa of [true, false]) {
        const y = resizeBilinear(tensor(a, shape), oh, ow, aa);
        expect(y.shape).toEqual([2, oh, ow, C]);
        await expectClose(y, resizeRef(a, shape, oh, ow, aa), 1e-6, `${H}x${W}->${oh}x${ow} aa=${aa}`);
      }
    }
  });

  it('upscaling is identical with and without antialias; same size is the identity', async () => {
    const a = randArray(2 * 8 * 6 * 3, 77);
    const x = tensor(a, [2, 8, 6, 3]);
    const y1 = await resizeBilinear(x, 16, 15, true).data();
    const y0 = await resizeBilinear(x, 16, 15, false).data();
    expect(Math.max(...Array.from(y1, (v, i) => Math.abs(v - y0[i]!)))).toBeLessThan(1e-6);
    await expectClose(resizeBilinear(x, 8, 6, true), a, 0, 'identity aa');
    await expectClose(resizeBilinear(x, 8, 6, false), a, 0, 'identity');
  });

  it('gradients (down, up, antialias on and off)', async () => {
    const d = randArray(13 * 10 * 3, 90);
    await gradcheck((x) => resizeBilinear(x, 7, 5, true), [{ data: d, shape: [1, 13, 10, 3] }]);
    await gradcheck((x) => resizeBilinear(x, 7, 5, false), [{ data: d, shape: [1, 13, 10, 3] }]);
    const u = randArray(2 * 5 * 4 * 2, 91);
    await gradcheck((x) => resizeBilinear(x, 9, 11, true), [{ data: u, shape: [2, 5, 4, 2] }]);
    await gradcheck((x) => resizeBilinear(x, 16, 4, false), [{ data: randArray(32 * 8, 92), shape: [1, 32, 8, 1] }]);
  });

  it('backward is the exact transpose of the forward (<dy, R x> = <R^T dy, x>)', async () => {
    for (const [H, W, oh, ow, aa] of [[32, 32, 8, 8, 1], [13, 10, 7, 5, 0], [5, 7, 16, 9, 1]] as const) {
      const a = randArray(H * W * 3, 5), g = randArray(oh * ow * 3, 6);
      const x = tensor(a, [1, H, W, 3]);
      const y = await runOp('resize_bilinear', [x], [oh, ow, aa])[0]!.data();
      const dx = await runOp('resize_bilinear_backward', [tensor(g, [1, oh, ow, 3]), x], [oh, ow, aa])[0]!.data();
      let l = 0, r = 0;
      for (let i = 0; i < y.length; ++i) l += y[i]! * g[i]!;
      for (let i = 0; i < dx.length; ++i) r += dx[i]! * a[i]!;
      expect(Math.abs(l - r)).toBeLessThan(1e-4 * Math.max(1, Math.abs(l)));
    }
  });

  it('bad attrs and shapes', () => {
    const x = tensor(randArray(4 * 4 * 2, 1), [1, 4, 4, 2]);
    expect(() => resizeBilinear(x, 0, 3)).toThrowError(/output size \[outH, outW\] must be >= 1, got \[0, 3\]/);
    expect(() => runOp('resize_bilinear', [x], [2, 2, 3])).toThrowError(/antialias must be 0 or 1, got 3/);
    expect(() => runOp('resize_bilinear_backward', [x, x], [2, 2, 1])).toThrowError(
      /dy must have shape \[1, 2, 2, 2\] .* got \[1, 4, 4, 2\]/,
    );
  });
});
