// Pending-gradient accumulation: backward rules that fold an input's pending gradient (from its other consumers,
// e.g. a residual skip) into their own kernel instead of a separate add — layer_norm2d, layer_norm_bias_free and
// global_avg_pool. The ops' acc input against their plain backward plus an add (bitwise), the autograd taking that
// path (no add op runs in the backward) with the same gradients, and validation.
import { describe, expect, it } from 'vitest';
import { tensor, viewOf, type Tensor } from '../lib/tensor/tensor.js';
import { native } from '../lib/native/loader.js';
import { matmul } from '../lib/ops/conv.js';
import { runOp } from '../lib/ops/run.js';
import { add, mul } from '../lib/ops/elementwise.js';
import { layerNorm2d } from '../lib/ops/norm.js';
import { layerNormBiasFree } from '../lib/ops/norm2.js';
import { globalAvgPool, channelScale } from '../lib/ops/nafnet.js';
import { conv1x1Add } from '../lib/ops/fused.js';
import { backward } from '../lib/autograd/tape.js';
import { profileOps } from '../lib/native/profile.js';
import { randArray, gradcheck } from './helpers.js';

const f32 = async (t: Tensor) => Buffer.from(((await t.data()) as Float32Array).buffer);

describe('backward ops with an accumulation input', () => {
  it('equal the plain backward plus an add, bitwise (odd channel counts, vector paths and tails)', async () => {
    for (const [shape, seed] of [[[2, 5, 7, 48], 1], [[1, 3, 4, 13], 2], [[3, 2, 2, 600], 3]] as const) {
      const n = shape.reduce((a, b) => a * b, 1), C = shape[3], rows = n / C;
      const dy = tensor(randArray(n, seed), [...shape]), x = tensor(randArray(n, seed + 10), [...shape]);
      const w = tensor(randArray(C, seed + 20, 0.5, 1.5), [C]), b = tensor(randArray(C, seed + 30), [C]);
      const acc = tensor(randArray(n, seed + 40), [...shape]);
      const [, mean, rstd] = runOp('layer_norm2d', [x, w, b], [1e-6]);
      const plain = runOp('layer_norm2d_backward', [dy, x, w, mean!, rstd!]);
      const fused = runOp('layer_norm2d_backward', [dy, x, w, mean!, rstd!, acc]);
      expect(await f32(fused[0]!)).toEqual(await f32(add(acc, plain[0]!)));
      for (const i of [1, 2]) expect(await f32(fused[i]!)).toEqual(await f32(plain[i]!));
      const [, rs] = runOp('layer_norm_bias_free', [x, w], [1e-5]);
      const bfPlain = runOp('layer_norm_bias_free_backward', [dy, x, w, rs!]);
      const bfFused = runOp('layer_norm_bias_free_backward', [dy, x, w, rs!, acc]);
      expect(await f32(bfFused[0]!)).toEqual(await f32(add(acc, bfPlain[0]!)));
      expect(await f32(bfFused[1]!)).toEqual(await f32(bfPlain[1]!));
      const gy = tensor(randArray(shape[0] * C, seed + 50), [shape[0], 1, 1, C]);
      const gapPlain = runOp('global_avg_pool_backward', [gy, x])[0]!;
      const gapFused = runOp('global_avg_pool_backward', [gy, x, acc])[0]!;
      expect(await f32(gapFused)).toEqual(await f32(add(acc, gapPlain)));
      expect(rows).toBeGreaterThan(0);
    }
  });

  it('check the accumulation input', () => {
    const x = tensor(randArray(24, 1), [1, 2, 3, 4]), w = tensor(randArray(4, 2), [4]);
    const [, mean, rstd] = runOp('layer_norm2d', [x, w, w], [1e-6]);
    expect(() => runOp('layer_norm2d_backward', [x, x, w, mean!, rstd!, tensor(randArray(20, 3), [20])])).toThrowError(
      /layer_norm2d_backward: acc must have the 24 elements of x \[1, 2, 3, 4\], got \[20\]/,
    );
    expect(() => runOp('global_avg_pool_backward', [tensor(randArray(4, 1), [1, 1, 1, 4]), x, w])).toThrowError(/acc must have the 24 elements/);
  });
});

describe('autograd folds pending gradients into these rules', () => {
  // x feeds a LayerNorm and, later in the forward, a residual: in backward the residual's gradient is pending when
  // the LayerNorm's rule runs. Likewise for y and the bias-free LayerNorm, and z feeds a global average pool and a
  // later channel scale. (x is x0², not a leaf: leaves sum their gradients with add_n_ into .grad instead.)
  const graph = (x0: Tensor, w: Tensor, b: Tensor, pw: Tensor, s: Tensor): Tensor => {
    const x = mul(x0, x0);
    const y = conv1x1Add(layerNorm2d(x, w, b), pw, x, null, null); // y = x + LN(x) pw
    const z = conv1x1Add(layerNormBiasFree(y, w), pw, y, null, null);
    return mul(channelScale(z, globalAvgPool(z)), s);
  };
  const inputs = () => [
    { data: randArray(2 * 3 * 5 * 6, 11), shape: [2, 3, 5, 6] },
    { data: randArray(6, 12, 0.5, 1.5), shape: [6] },
    { data: randArray(6, 13), shape: [6] },
    { data: randArray(36, 14, -0.4, 0.4), shape: [1, 1, 6, 6] },
    { data: randArray(2 * 3 * 5 * 6, 15), shape: [2, 3, 5, 6] },
  ];

  it('no add runs in the backward, and the gradients pass a finite-difference check', async () => {
    const ins = inputs().map((i) => {
      const t = tensor(i.data, i.shape);
      t.requiresGrad = true;
      return t;
    });
    const prof = await profileOps(async () => {
      backward(graph(...(ins as [Tensor, Tensor, Tensor, Tensor, Tensor])));
      await Promise.all(ins.map((t) => t.grad!.data()));
    });
    const ops = new Map(prof.map((r) => [r.op, r.calls]));
    expect(ops.get('add') ?? 0).toBe(0);
    expect(ops.get('layer_norm2d_backward')).toBe(1);
    expect(ops.get('global_avg_pool_backward')).toBe(1);
    await gradcheck(graph, inputs(), { probes: 16 });
  });

  it('decides in place or not by the live views alone, however far the CPU executor has got', async () => {
    // A leaf .grad is written in place only when no live view shares its storage (lib/autograd/tape.ts). A view
    // released in JS but still held by a queued op does not count: that op runs before anything submitted later.
    // (Counting the storage's owners made the choice — an add or an in-place add_n_ — depend on the executor's
    // progress: this file's test above then saw an add under load.)
    const base = tensor(randArray(512 * 512, 3), [512, 512]);
    const v = viewOf(base, 0, [512, 512], false);
    expect(native.soleView(base.id)).toBe(false);
    const busy = [0, 1, 2, 3].map(() => matmul(base, base)); // keep the executor busy
    const read = matmul(v, v); // queued behind them, holding the view
    v.dispose();
    expect(native.soleView(base.id)).toBe(true);
    const expected = matmul(base, base);
    expect(await read.data()).toEqual(await expected.data());
    for (const t of [...busy, read, expected, base]) t.dispose();
  });

  it('gives the gradients an unfused graph (plain adds) gives', async () => {
    // the same function where no rule finds a pending gradient: each LayerNorm / pool reads a copy (x · 1) whose
    // only consumer it is, and the skips are separate adds, so the tape sums with add ops
    const unfused = (x0: Tensor, w: Tensor, b: Tensor, pw: Tensor, s: Tensor): Tensor => {
      const one = (t: Tensor) => mul(t, tensor(new Float32Array(t.size).fill(1), [...t.shape]));
      const zero = (t: Tensor) => tensor(new Float32Array(t.size), [...t.shape]);
      const x = mul(x0, x0);
      const y = add(conv1x1Add(layerNorm2d(one(x), w, b), pw, zero(x), null, null), x);
      const z = add(conv1x1Add(layerNormBiasFree(one(y), w), pw, zero(y), null, null), y);
      return mul(channelScale(z, globalAvgPool(one(z))), s);
    };
    const grads = async (fn: typeof graph) => {
      const ts = inputs().map((i) => {
        const t = tensor(i.data, i.shape);
        t.requiresGrad = true;
        return t;
      });
      backward(fn(...(ts as [Tensor, Tensor, Tensor, Tensor, Tensor])));
      return Promise.all(ts.map(async (t) => Array.from((await t.grad!.data()) as Float32Array)));
    };
    const [a, b] = [await grads(graph), await grads(unfused)];
    for (let i = 0; i < a.length; ++i) {
      const d = a[i]!.reduce((m, v, j) => Math.max(m, Math.abs(v - b[i]![j]!)), 0);
      const s = b[i]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(d, `input ${i}`).toBeLessThanOrEqual(1e-6 * Math.max(1, s));
    }
  });
});
