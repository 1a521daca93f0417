// shape ops (pixel shuffle, concat/split, pad/crop) and losses + optimiser kernels.
import { describe, expect, it } from 'vitest';
import { tensor } from '../lib/tensor/tensor.js';
import { pixelShuffle, pixelUnshuffle, concat, split, pad2d, crop2d } from '../lib/ops/shape.js';
import { crossEntropy, l1Loss, mseLoss } from '../lib/ops/loss.js';
import { adamwStep, momentumUpdate } from '../lib/ops/optim.js';
import { gelu } from '../lib/ops/activation.js';
import { scale } from '../lib/ops/elementwise.js';
import { geluSplit } from '../lib/ops/fused.js';
import { backward } from '../lib/autograd/tape.js';
import { runOp } from '../lib/ops/run.js';
import { randArray, expectClose, gradcheck, differing } from './helpers.js';

describe('shape ops', () => {
  it('pixelShuffle uses the PyTorch channel order; pixelUnshuffle inverts it', async () => {
    const N = 2, H = 3, W = 5, C = 2, r = 2;
    const a = randArray(N * H * W * C * r * r, 1);
    const ref = new Float32Array(a.length);
    for (let n = 0; n < N; ++n)
      for (let h = 0; h < H; ++h)
        for (let w = 0; w < W; ++w)
          for (let c = 0; c < C; ++c)
            for (let i = 0; i < r; ++i)
              for (let j = 0; j < r; ++j)
                ref[((n * H * r + r * h + i) * W * r + r * w + j) * C + c] = a[((n * H + h) * W + w) * C * r * r + c * r * r + i * r + j]!;
    const y = pixelShuffle(tensor(a, [N, H, W, C * r * r]), r);
    expect(y.shape).toEqual([N, H * r, W * r, C]);
    await expectClose(y, ref, 0);
    await expectClose(pixelUnshuffle(y, r), a, 0);
    await gradcheck((x) => pixelShuffle(x, 2), [{ data: a, shape: [N, H, W, 8] }]);
    await gradcheck((x) => pixelUnshuffle(x, 2), [{ data: a, shape: [N, 6, 10, 2] }]);
  });

  it('concat / split along channels', async () => {
    const a = randArray(2 * 3 * 2, 2), b = randArray(2 * 3 * 5, 3);
    const y = concat([tensor(a, [2, 3, 2]), tensor(b, [2, 3, 5])]);
    const ref: number[] = [];
    for (let r = 0; r < 6; ++r) ref.push(...a.slice(r * 2, r * 2 + 2), ...b.slice(r * 5, r * 5 + 5));
    await expectClose(y, ref, 0);
    const [p, q] = split(y, [2, 5]);
    await expectClose(p!, a, 0);
    await expectClose(q!, b, 0);
    await gradcheck((x, z) => concat([x, z]), [{ data: a, shape: [2, 3, 2] }, { data: b, shape: [2, 3, 5] }]);
    await gradcheck((x) => split(x, [3, 4])[1]!, [{ data: Float32Array.from(ref), shape: [2, 3, 7] }]);
    expect(() => split(y, [1, 1])).toThrowError(/must sum to/);
  });

  it('pad2d zero / reflect (torch ReflectionPad2d), crop2d, and gradients', async () => {
    const N = 1, H = 4, W = 5, C = 2;
    const a = randArray(N * H * W * C, 4);
    const refl = (i: number, n: number) => (i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i);
    for (const mode of ['zero', 'reflect'] as const) {
      const [t, b, l, r] = [2, 1, 3, 4];
      const Ho = H + t + b, Wo = W + l + r;
      const ref: number[] = [];
      for (let oh = 0; oh < Ho; ++oh)
        for (let ow = 0; ow < Wo; ++ow)
          for (let c = 0; c < C; ++c) {
            let ih = oh - t, iw = ow - l;
            if (mode === 'reflect') [ih, iw] = [refl(ih, H), refl(iw, W)];
            ref.push(ih < 0 || ih >= H || iw < 0 || iw >= W ? 0 : a[(ih * W + iw) * C + c]!);
          }
      await expectClose(pad2d(tensor(a, [N, H, W, C]), [t, b, l, r], mode), ref, 0, mode);
      await gradcheck((x) => pad2d(x, [t, b, l, r], mode), [{ data: a, shape: [N, H, W, C] }]);
    }
    expect(() => pad2d(tensor(a, [N, H, W, C]), [4, 0, 0, 0], 'reflect')).toThrowError(/smaller than the padded dim/);
    const c = crop2d(tensor(a, [N, H, W, C]), 1, 2, 2, 3);
    const cref: number[] = [];
    for (let h = 1; h < 3; ++h) for (let w = 2; w < 5; ++w) cref.push(a[(h * W + w) * C]!, a[(h * W + w) * C + 1]!);
    await expectClose(c, cref, 0);
    await gradcheck((x) => crop2d(x, 1, 2, 2, 3), [{ data: a, shape: [N, H, W, C] }]);
  });
});

describe('gelu_split', () => {
  it('equals split(gelu(x)) bit for bit, forward and backward, with a part left without a gradient', async () => {
    for (const [shape, sizes] of [[[2, 3, 5, 12], [6, 6]], [[7, 9], [2, 0, 4, 3]], [[4, 13], [13]]] as [number[], number[]][]) {
      const data = randArray(shape.reduce((a, b) => a * b, 1), 91, -4, 4);
      const run = async (fused: boolean) => {
        const x = tensor(data, shape);
        x.requiresGrad = true;
        const ys = fused ? geluSplit(x, sizes) : split(gelu(x), sizes);
        // every part but the last gets a gradient (the last's is zeros)
        const used = ys.slice(0, -1).filter((y) => y.size > 0);
        if (used.length) backward(concat(used.map((y, i) => scale(y, i + 1.5))), tensor(randArray(used.reduce((a, y) => a + y.size, 0), 92), [...used[0]!.shape.slice(0, -1), used.reduce((a, y) => a + y.shape.at(-1)!, 0)]));
        return [...await Promise.all(ys.map(async (y) => Float32Array.from((await y.data()) as Float32Array))), x.grad ? Float32Array.from((await x.grad.data()) as Float32Array) : new Float32Array()];
      };
      const [f, ref] = [await run(true), await run(false)];
      for (let i = 0; i < ref.length; ++i) expect(differing(f[i]!, ref[i]!), `${shape} ${sizes} output ${i}`).toBe(0);
    }
  });

  it('gradients match finite differences; bad sizes and gradients are named', async () => {
    await gradcheck((x) => concat(geluSplit(x!, [3, 5]).map((y, i) => scale(y, i + 1))), [{ data: randArray(2 * 8, 93, -3, 3), shape: [2, 8] }]);
    const x = tensor(randArray(12, 1), [3, 4]);
    expect(() => geluSplit(x, [3, 2])).toThrow(/gelu_split: sizes \[3, 2\] must sum to the last dim of x \[3, 4\]/);
    expect(() => geluSplit(tensor(randArray(17, 1), [17]), Array(17).fill(1))).toThrow(/gelu_split: at most 16 parts \(its backward takes one gradient per part\), got 17/);
    expect(() => runOp('gelu_split_backward', [x, tensor(randArray(6, 1), [3, 2])])).toThrow(/gradients concatenated along the last axis must have the shape of x \[3, 4\], got \[3, 2\]/);
  });
});

describe('losses', () => {
  it('crossEntropy is a stable mean logsumexp - logit[label]', async () => {
    const N = 5, K = 7;
    const a = randArray(N * K, 5, -30, 30);
    a[3] = 90;
    const lab = Int32Array.from([0, 6, 3, 3, 1]);
    let ref = 0;
    for (let n = 0; n < N; ++n) {
      const row = Array.from(a.slice(n * K, n * K + K));
      const m = Math.max(...row);
      ref += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[lab[n]!]!;
    }
    await expectClose(crossEntropy(tensor(a, [N, K]), tensor(lab, [N], 'int32')), [ref / N], 1e-6);
    await gradcheck((x) => crossEntropy(x, tensor(lab, [N], 'int32')), [{ data: randArray(N * K, 6, -3, 3), shape: [N, K] }]);
    const bad = crossEntropy(tensor(a, [N, K]), tensor(Int32Array.from([0, 7, 0, 0, 0]), [N], 'int32'));
    await expect(bad.data()).rejects.toThrowError(/out of range/);
  });

  it('l1Loss / mseLoss and gradients (sign(0) = 0)', async () => {
    const a = randArray(3 * 4 * 5, 7), b = randArray(60, 8);
    b[0] = a[0]!;
    const l1 = Array.from(a, (v, i) => Math.abs(v - b[i]!)).reduce((s, v) => s + v, 0) / 60;
    const l2 = Array.from(a, (v, i) => (v - b[i]!) ** 2).reduce((s, v) => s + v, 0) / 60;
    await expectClose(l1Loss(tensor(a, [3, 4, 5]), tensor(b, [3, 4, 5])), [l1], 1e-6);
    await expectClose(mseLoss(tensor(a, [3, 4, 5]), tensor(b, [3, 4, 5])), [l2], 1e-6);
    await gradcheck(mseLoss, [{ data: a, shape: [3, 4, 5] }, { data: b, shape: [3, 4, 5] }]);
    const b2 = Float32Array.from(b, (v, i) => (i === 0 ? v : v + (v > a[i]! ? 0.05 : -0.05))); // keep |a-b| away from 0
    await gradcheck(l1Loss, [{ data: a.slice(1), shape: [59] }, { data: b2.slice(1), shape: [59] }], { eps: 1e-3 });
    const x = tensor(a, [60]);
    x.requiresGrad = true;
    const { backward } = await import('../lib/autograd/tape.js');
    backward(l1Loss(x, tensor(b, [60])));
    expect((await x.grad!.data())[0]).toBe(0);
  });
});

describe('optimiser kernels', () => {
  it('adamwStep matches a float64 torch.optim.AdamW over several steps', async () => {
    const n = 257, o = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0.05 };
    const p0 = randArray(n, 9);
    const p = tensor(p0, [n]), m = tensor(new Float32Array(n), [n]), v = tensor(new Float32Array(n), [n]);
    const P = Float64Array.from(p0), M = new Float64Array(n), V = new Float64Array(n);
    for (let step = 1; step <= 6; ++step) {
      const g = randArray(n, 100 + step);
      adamwStep(p, tensor(g, [n]), m, v, { ...o, step });
      for (let i = 0; i < n; ++i) {
        P[i] *= 1 - o.lr * o.wd;
        M[i] = o.beta1 * M[i]! + (1 - o.beta1) * g[i]!;
        V[i] = o.beta2 * V[i]! + (1 - o.beta2) * g[i]! * g[i]!;
        const den = Math.sqrt(V[i]!) / Math.sqrt(1 - o.beta2 ** step) + o.eps;
        P[i] -= (o.lr / (1 - o.beta1 ** step)) * (M[i]! / den);
      }
    }
    await expectClose(p, P, 1e-6, 'param');
    await expectClose(m, M, 1e-6, 'm');
    await expectClose(v, V, 1e-6, 'v');
  });

  it('momentumUpdate', async () => {
    const a = randArray(100, 10), b = randArray(100, 11);
    const t = tensor(a, [100]);
    momentumUpdate(t, tensor(b, [100]), 0.999);
    await expectClose(t, Array.from(a, (v, i) => v * 0.999 + b[i]! * 0.001), 1e-6);
  });
});
