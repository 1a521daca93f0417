// activations, norms and NAFNet ops: float64 references and central finite-difference gradient checks.
import { describe, expect, it } from 'vitest';
import { tensor } from '../lib/tensor/tensor.js';
import { leakyRelu, prelu, gelu } from '../lib/ops/activation.js';
import { batchNorm1d, layerNorm2d } from '../lib/ops/norm.js';
import { simpleGate, globalAvgPool, channelScale } from '../lib/ops/nafnet.js';
import { runOp } from '../lib/ops/run.js';
import { relu } from '../lib/ops/activation2.js';
import { scale } from '../lib/ops/elementwise.js';
import { backward } from '../lib/autograd/tape.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
import type { Tensor } from '../lib/tensor/tensor.js';
import { randArray, expectClose, gradcheck, erf } from './helpers.js';

describe('activations', () => {
  it('leakyRelu / prelu / gelu forward', async () => {
    const a = randArray(3 * 5 * 7, 1, -4, 4);
    const x = tensor(a, [3, 5, 7]);
    await expectClose(leakyRelu(x, 0.2), Array.from(a, (v) => (v > 0 ? v : 0.2 * v)), 1e-7);
    const w = randArray(7, 2);
    await expectClose(prelu(x, tensor(w, [7])), Array.from(a, (v, i) => (v > 0 ? v : w[i % 7]! * v)), 1e-7);
    await expectClose(prelu(x, tensor([0.25], [1])), Array.from(a, (v) => (v > 0 ? v : 0.25 * v)), 1e-7);
    await expectClose(gelu(x), Array.from(a, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2))), 1e-6);
    expect(() => prelu(x, tensor(randArray(5, 1), [5]))).toThrowError(/must have shape \[7\]/);
  });

  it('gradients', async () => {
    const a = randArray(2 * 3 * 5, 3, -3, 3);
    await gradcheck((x) => leakyRelu(x, 0.1), [{ data: a, shape: [2, 3, 5] }]);
    await gradcheck(prelu, [{ data: a, shape: [2, 3, 5] }, { data: randArray(5, 4), shape: [5] }]);
    await gradcheck(prelu, [{ data: a, shape: [2, 3, 5] }, { data: randArray(1, 4), shape: [1] }]);
    await gradcheck(gelu, [{ data: a, shape: [2, 3, 5] }]);
  });

  it('leakyRelu (any slope sign) and relu backward: dy where x > 0, else slope·dy (zeros included)', async () => {
    const a = randArray(4 * 9, 5, -2, 2);
    a.set([0, -0, 1e-30, -1e-30]);
    const dy = randArray(a.length, 6);
    for (const [name, f, slope] of [['leakyRelu 0.2', (x: Tensor) => leakyRelu(x, 0.2), 0.2], ['leakyRelu -0.5', (x: Tensor) => leakyRelu(x, -0.5), -0.5],
      ['leakyRelu 0', (x: Tensor) => leakyRelu(x, 0), 0], ['relu', relu, 0]] as const) {
      const x = tensor(a, [4, 9]);
      x.requiresGrad = true;
      backward(f(x), tensor(dy, [4, 9]));
      await expectClose(x.grad!, Array.from(a, (v, i) => (v > 0 ? dy[i]! : Math.fround(Math.fround(slope) * dy[i]!))), 0, name);
    }
  });

  it('leakyRelu (slope >= 0) and relu keep their output for the backward, not their input', async () => {
    for (const f of [(x: Tensor) => leakyRelu(x, 0.1), relu]) {
      const x = tensor(randArray(64 * 64, 7), [64, 64]);
      x.requiresGrad = true;
      const h = tensor(randArray(64 * 64, 8), [64, 64]); // a non-leaf input: freed once nothing keeps it
      h.requiresGrad = true;
      const z = scale(h, 2); // recorded; its backward keeps nothing
      const y = f(z);
      await sync();
      const before = memoryStats().bytes;
      z.dispose(); // only the tape could keep z now
      await sync();
      expect(before - memoryStats().bytes).toBe(4 * 64 * 64);
      backward(y, tensor(new Float32Array(64 * 64).fill(1), [64, 64]));
      for (const t of [x, h, y]) t.dispose();
    }
  });

  it('gelu / gelu_backward (vectorised erf) match float64 to float rounding on a dense grid and edge cases', async () => {
    // 200001 points over [-10, 10] (odd length: exercises the vector tail), both sides of the |x| = sqrt 2 branch
    // switch, plus special values. Absolute error bound: a few float ulps of the result.
    const n = 200001;
    const xs = new Float32Array(n + 8);
    for (let i = 0; i < n; ++i) xs[i] = -10 + (20 * i) / (n - 1);
    xs.set([Math.SQRT2, -Math.SQRT2, Math.fround(Math.SQRT2) + 1e-6, 5.6568, -5.6568, 1e-30, -1e-30, 0], n);
    const dyv = new Float32Array(xs.length).map((_, i) => 1 + 0.5 * Math.sin(i));
    const x = tensor(xs, [xs.length]);
    const y = await gelu(x).data();
    const [g] = runOp('gelu_backward', [tensor(dyv, [xs.length]), x]);
    const gd = await g!.data();
    let ey = 0, eg = 0;
    for (let i = 0; i < xs.length; ++i) {
      const v = xs[i]!;
      const cdf = 0.5 * (1 + erf(v / Math.SQRT2)), pdf = Math.exp(-0.5 * v * v) / Math.sqrt(2 * Math.PI);
      ey = Math.max(ey, Math.abs(y[i]! - v * cdf) / Math.max(1, Math.abs(v)));
      eg = Math.max(eg, Math.abs(gd[i]! - dyv[i]! * (cdf + v * pdf)));
    }
    expect(ey).toBeLessThan(3e-7);
    expect(eg).toBeLessThan(4e-7);
    const sp = tensor([Infinity, -100, 100, NaN, 0], [5]);
    const ys = Array.from(await gelu(sp).data());
    expect(ys.slice(0, 3)).toEqual([Infinity, -0, 100]);
    expect(Number.isNaN(ys[3])).toBe(true);
    expect(ys[4]).toBe(0);
    const gs = Array.from(await runOp('gelu_backward', [tensor([1, 1, 1, 1, 1], [5]), sp])[0]!.data());
    expect(gs.slice(1)).toEqual([0, 1, NaN, 0.5]);
  });
});

describe('normalisation', () => {
  it('batchNorm1d train and eval match float64 references, running stats update', async () => {
    const N = 6, C = 5;
    const a = randArray(N * C, 5, -2, 3), g = randArray(C, 6), b = randArray(C, 7);
    const rm = tensor(new Float32Array(C), [C]), rv = tensor(new Float32Array(C).fill(1), [C]);
    const y = batchNorm1d(tensor(a, [N, C]), tensor(g, [C]), tensor(b, [C]), rm, rv, { training: true });
    const ref: number[] = new Array(N * C), erm: number[] = [], erv: number[] = [];
    for (let c = 0; c < C; ++c) {
      let m = 0, q = 0;
      for (let n = 0; n < N; ++n) m += a[n * C + c]!;
      m /= N;
      for (let n = 0; n < N; ++n) q += (a[n * C + c]! - m) ** 2;
      for (let n = 0; n < N; ++n) ref[n * C + c] = ((a[n * C + c]! - m) / Math.sqrt(q / N + 1e-5)) * g[c]! + b[c]!;
      erm.push(0.1 * m);
      erv.push(0.9 + (0.1 * q) / (N - 1));
    }
    await expectClose(y, ref, 1e-6, 'train y');
    await expectClose(rm, erm, 1e-6, 'running_mean');
    await expectClose(rv, erv, 1e-6, 'running_var');
    const ye = batchNorm1d(tensor(a, [N, C]), tensor(g, [C]), tensor(b, [C]), rm, rv, { training: false });
    const eref = Array.from(a, (v, i) => ((v - erm[i % C]!) / Math.sqrt(erv[i % C]! + 1e-5)) * g[i % C]! + b[i % C]!);
    await expectClose(ye, eref, 1e-6, 'eval y');
  });

  it('batchNorm1d gradients (train and eval)', async () => {
    const N = 5, C = 3;
    for (const training of [true, false]) {
      await gradcheck(
        (x, g, b) => batchNorm1d(x, g, b, tensor(new Float32Array(C).fill(0.1), [C]), tensor(new Float32Array(C).fill(2), [C]), { training }),
        [{ data: randArray(N * C, 8, -2, 2), shape: [N, C] }, { data: randArray(C, 9), shape: [C] }, { data: randArray(C, 10), shape: [C] }],
      );
    }
  });

  it('layerNorm2d matches a float64 reference and its gradients check', async () => {
    for (const C of [3, 16, 19]) {
      const s = [2, 3, 5, C];
      const a = randArray(2 * 3 * 5 * C, C, -2, 4), w = randArray(C, 11), b = randArray(C, 12);
      const ref: number[] = [];
      for (let r = 0; r < 30; ++r) {
        let m = 0, q = 0;
        for (let c = 0; c < C; ++c) m += a[r * C + c]!;
        m /= C;
        for (let c = 0; c < C; ++c) q += (a[r * C + c]! - m) ** 2;
        for (let c = 0; c < C; ++c) ref.push(((a[r * C + c]! - m) / Math.sqrt(q / C + 1e-6)) * w[c]! + b[c]!);
      }
      await expectClose(layerNorm2d(tensor(a, s), tensor(w, [C]), tensor(b, [C])), ref, 1e-6, `C=${C}`);
      await gradcheck((x, ww, bb) => layerNorm2d(x, ww, bb), [{ data: a, shape: s }, { data: w, shape: [C] }, { data: b, shape: [C] }]);
    }
    expect(() => layerNorm2d(tensor(randArray(2 * 8 * 8 * 16, 1), [2, 8, 8, 16]), tensor(randArray(8, 1), [8]), tensor(randArray(16, 1), [16]))).toThrowError(
      /weight must have shape \[16\] \(channels of x \[2, 8, 8, 16\]\), got \[8\]/,
    );
  });
});

describe('NAFNet ops', () => {
  it('simpleGate / globalAvgPool / channelScale forward', async () => {
    const s = [2, 3, 5, 6], a = randArray(180, 13);
    const gate: number[] = [];
    for (let r = 0; r < 30; ++r) for (let c = 0; c < 3; ++c) gate.push(a[r * 6 + c]! * a[r * 6 + 3 + c]!);
    await expectClose(simpleGate(tensor(a, s)), gate, 1e-7);
    const pool = new Float64Array(12);
    for (let n = 0; n < 2; ++n) for (let p = 0; p < 15; ++p) for (let c = 0; c < 6; ++c) pool[n * 6 + c] += a[(n * 15 + p) * 6 + c]! / 15;
    const y = globalAvgPool(tensor(a, s));
    expect(y.shape).toEqual([2, 1, 1, 6]);
    await expectClose(y, pool, 1e-6);
    const sc = randArray(12, 14);
    await expectClose(channelScale(tensor(a, s), tensor(sc, [2, 1, 1, 6])), Array.from(a, (v, i) => v * sc[Math.floor(i / 90) * 6 + (i % 6)]!), 1e-7);
  });

  it('gradients', async () => {
    const s = [2, 3, 5, 6], a = randArray(180, 15);
    await gradcheck(simpleGate, [{ data: a, shape: s }]);
    await gradcheck(globalAvgPool, [{ data: a, shape: s }]);
    await gradcheck(channelScale, [{ data: a, shape: s }, { data: randArray(12, 16), shape: [2, 1, 1, 6] }]);
  });
});
