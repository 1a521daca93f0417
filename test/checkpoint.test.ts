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
import { tensor } from '../lib/tensor/tensor.js';
import { native } from '../lib/native/loader.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
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
    const x = randTensor([1, 5, 6, 4], 10);
    const y = noGrad(() => checkpoint(fn, x, [w]));
    expect(y.requiresGrad).toBe(false);
    for (const t of [x, y, w]) t.dispose();
  });
});
