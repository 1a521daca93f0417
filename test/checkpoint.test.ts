// Activation checkpointing: the same losses, gradients and updated parameters as the plain path, less peak memory,
// nothing leaked.
import { describe, expect, it } from 'vitest';
import { createModel } from '../lib/models/catalog.js';
import { setInitSeed } from '../lib/nn/init.js';
import { IRConStyleTrainer, type StepLosses } from '../lib/train/irconstyle.js';
import { checkpoint } from '../lib/autograd/checkpoint.js';
import { noGrad } from '../lib/autograd/node.js';
import { backward } from '../lib/autograd/tape.js';
import { conv2d } from '../lib/ops/conv.js';
import { add } from '../lib/ops/elementwise.js';
import { tensor } from '../lib/tensor/tensor.js';
import { native } from '../lib/native/loader.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
import { setKeepOnCpu } from '../lib/ops/fused.js';
import { randArray, randTensor } from './helpers.js';

interface Run {
  losses: StepLosses;
  grads: Float32Array;
  params: Float32Array;
  peak: number;
}

async function trainStep(model: string, ck: boolean, n: number, s: number): Promise<Run> {
  setInitSeed(11);
  const net = createModel(model, { constyle: 'train', K: 64 });
  const tr = new IRConStyleTrainer(net, { checkpoint: ck });
  const lq = tensor(randArray(n * s * s * 3, 1, 0, 1), [n, s, s, 3]);
  const gt = tensor(randArray(n * s * s * 3, 2, 0, 1), [n, s, s, 3]);
  await tr.step(lq, gt); // warm-up (caches, lazily made buffers)
  await sync();
  native.trim();
  const losses = await tr.step(lq, gt);
  await sync();
  const peak = memoryStats().peakBytes;
  const grads = (await tr.arena.grads.data()) as Float32Array;
  const params = (await tr.arena.params.data()) as Float32Array;
  tr.dispose();
  net.dispose();
  for (const t of [lq, gt]) t.dispose();
  return { losses, grads, params, peak };
}

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num += (a[i]! - b[i]!) ** 2; den += b[i]! ** 2; }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

function mismatches(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

describe('activation checkpointing', () => {
  for (const [model, n, s] of [['constyle-nafnet-tiny', 4, 64], ['constyle-restormer-tiny', 2, 64]] as const) {
    it(`${model}: identical step, lower peak memory`, async () => {
      const plain = await trainStep(model, false, n, s);
      const ck = await trainStep(model, true, n, s);
      expect(ck.losses).toEqual(plain.losses);
      // the recomputation runs the same kernels on the same values: bitwise equal
      expect(mismatches(ck.grads, plain.grads)).toBe(0);
      expect(mismatches(ck.params, plain.params)).toBe(0);
      expect(ck.peak).toBeLessThan(0.9 * plain.peak);
    });
  }

  it('with the fused ops recomputing in their backward (as on CUDA) the checkpointed step is the same too', async () => {
    const was = setKeepOnCpu(false);
    try {
      const plain = await trainStep('constyle-restormer-tiny', false, 2, 64);
      const ck = await trainStep('constyle-restormer-tiny', true, 2, 64);
      expect(ck.losses).toEqual(plain.losses);
      expect(mismatches(ck.grads, plain.grads)).toBe(0);
      expect(mismatches(ck.params, plain.params)).toBe(0);
      const mplain = await trainStep('constyle-maxim-tiny', false, 2, 64);
      const mck = await trainStep('constyle-maxim-tiny', true, 2, 64);
      expect(relErr(mck.grads, mplain.grads)).toBeLessThan(1e-5);
    } finally {
      setKeepOnCpu(was);
    }
  });

  it('constyle-maxim-tiny: the same step up to summation order, lower peak memory', async () => {
    const plain = await trainStep('constyle-maxim-tiny', false, 2, 64);
    const ck = await trainStep('constyle-maxim-tiny', true, 2, 64);
    // A MAXIM block's chain input also feeds its long skip: its gradient is the chain's (summed inside the
    // recomputation) plus the skip's, where the plain graph adds the same terms in another order.
    for (const k of Object.keys(plain.losses) as (keyof StepLosses)[]) expect(ck.losses[k]).toBeCloseTo(plain.losses[k], 5);
    expect(relErr(ck.grads, plain.grads)).toBeLessThan(1e-5);
    // AdamW's first steps move each entry by about lr·sign(g): noise-level gradients may flip (measured 8.7e-6)
    expect(relErr(ck.params, plain.params)).toBeLessThan(1e-4);
    expect(ck.peak).toBeLessThan(0.7 * plain.peak);
  });

  it('frees everything it recomputes (live tensors back to baseline after each step)', async () => {
    setInitSeed(3);
    const net = createModel('constyle-restormer-tiny', { constyle: 'train', K: 64 });
    const tr = new IRConStyleTrainer(net, { checkpoint: true });
    const lq = tensor(randArray(2 * 32 * 32 * 3, 4, 0, 1), [2, 32, 32, 3]);
    const gt = tensor(randArray(2 * 32 * 32 * 3, 5, 0, 1), [2, 32, 32, 3]);
    await tr.step(lq, gt);
    await sync();
    const base = memoryStats();
    for (let i = 0; i < 2; i++) await tr.step(lq, gt);
    await sync();
    const after = memoryStats();
    expect(after.tensors).toBe(base.tensors);
    expect(after.bytes).toBe(base.bytes);
    tr.dispose();
    net.dispose();
    for (const t of [lq, gt]) t.dispose();
  });

  it('gives the input and parameter gradients of the plain graph, and is plain fn(x) without grad mode', async () => {
    const w = randTensor([3, 3, 4, 4], 7, -0.3, 0.3);
    w.requiresGrad = true;
    const fn = (t: ReturnType<typeof tensor>) => conv2d(conv2d(t, w, null, { pad: 1 }), w, null, { pad: 1 });
    const grads = async (ck: boolean) => {
      const x = randTensor([1, 5, 6, 4], 8);
      x.requiresGrad = true;
      const y = ck ? checkpoint(fn, x, [w]) : fn(x);
      const seed = randTensor(y.shape, 9);
      backward(y, seed);
      const out = [await x.grad!.data(), await w.grad!.data()];
      for (const t of [x, y, seed, x.grad!, w.grad!]) t.dispose();
      w.grad = null;
      return out;
    };
    const [a, b] = [await grads(false), await grads(true)];
    expect(b[0]).toEqual(a[0]);
    expect(b[1]).toEqual(a[1]);
    // x also feeding a skip around the checkpoint (and one inside): the recomputation's backward starts from a view
    // of the gradient the outer skip's leaf .grad also holds, and must not write into it
    const inner = (t: ReturnType<typeof tensor>) => add(fn(t), t);
    const skip = async (ck: boolean) => {
      const x = randTensor([1, 5, 6, 4], 8);
      x.requiresGrad = true;
      const y = add(ck ? checkpoint(inner, x, [w]) : inner(x), x);
      const seed = randTensor(y.shape, 9);
      backward(y, seed);
      const out = await x.grad!.data();
      for (const t of [x, y, seed, x.grad!, w.grad!]) t.dispose();
      w.grad = null;
      return out as Float32Array;
    };
    const [sp, sc] = [await skip(false), await skip(true)];
    expect(relErr(sc, sp)).toBeLessThan(1e-6);
    const x = randTensor([1, 5, 6, 4], 10);
    const y = noGrad(() => checkpoint(fn, x, [w]));
    expect(y.requiresGrad).toBe(false);
    for (const t of [x, y, w]) t.dispose();
  });
});
