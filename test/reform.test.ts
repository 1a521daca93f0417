// Tensors formed again in the backward instead of kept (lib/autograd/reform.ts) and MAXIM's lean training step built
// on them: the same bits as keeping them, less memory held from the forward to the backward, each group formed once
// for all its readers, and nothing left behind.
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { tidy } from '../lib/tensor/scope.js';
import { backward } from '../lib/autograd/tape.js';
import { reformable } from '../lib/autograd/reform.js';
import { add, mul, scale, sum } from '../lib/ops/elementwise.js';
import { geluSplit, setKeepOnCpu } from '../lib/ops/fused.js';
import { permute } from '../lib/ops/memory.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
import { native } from '../lib/native/loader.js';
import { createModel } from '../lib/models/catalog.js';
import { setInitSeed } from '../lib/nn/init.js';
import { maximFusion } from '../lib/models/maxim_blocks.js';
import { IRConStyleTrainer, type StepLosses } from '../lib/train/irconstyle.js';
import type { Module } from '../lib/nn/module.js';
import { differing, randArray, randTensor } from './helpers.js';

interface Graph {
  /** x's and w's gradients */
  gx: Float32Array;
  gw: Float32Array;
  /** bytes alive after the forward (output and what the backward keeps), over those before it */
  held: number;
  forms: number;
}

/**
 * y = Σ u·w + Σ v'·w' for u, v = geluSplit(x) and v' a reshape view of v. `how`: keep the halves for the backward
 * ('keep'), mark them to be formed again from x ('reform'), or the same with a form that gives other values ('wrong':
 * the reformed tensors are what the backward reads).
 */
async function graph(how: 'keep' | 'reform' | 'wrong'): Promise<Graph> {
  const x = randTensor([2, 4, 6, 10], 3, -2, 2);
  const w = randTensor([2, 4, 6, 5], 4);
  const w2 = randTensor([2, 24, 5], 5);
  x.requiresGrad = w.requiresGrad = true;
  await sync();
  const before = memoryStats().bytes;
  let forms = 0;
  const y = tidy(() => {
    let [u, v] = geluSplit(x, [5, 5]) as [Tensor, Tensor];
    if (how !== 'keep')
      [u, v] = reformable([u, v], [x], ([s]) => {
        forms++;
        const h = geluSplit(s!, [5, 5]);
        return how === 'wrong' ? h.map((t) => scale(t, 2)) : h;
      });
    return add(sum(mul(u, w)), sum(mul(v.reshape([2, 24, 5]), w2)));
  });
  await sync();
  const held = memoryStats().bytes - before;
  expect(forms).toBe(0); // nothing is formed before the backward needs it
  backward(y);
  const gx = Float32Array.from((await x.grad!.data()) as Float32Array);
  const gw = Float32Array.from((await w.grad!.data()) as Float32Array);
  for (const t of [x, w, w2, y]) t.dispose();
  return { gx, gw, held, forms };
}

describe('tensors formed again in the backward', () => {
  it('give the same gradients as keeping them, hold less, and are formed once for all their readers', async () => {
    const kept = await graph('keep');
    const again = await graph('reform');
    expect(differing(again.gx, kept.gx)).toBe(0);
    expect(differing(again.gw, kept.gw)).toBe(0);
    expect(again.forms).toBe(1); // u (read by a mul) and v (through a reshape view) come from one forming
    expect(kept.held - again.held).toBe(2 * 2 * 4 * 6 * 5 * 4); // the two halves are not held
    const wrong = await graph('wrong');
    expect(differing(wrong.gw, kept.gw)).toBeGreaterThan(0);
  });

  it('leave nothing behind: after the backward, and when no backward ever reads them', async () => {
    await sync();
    const base = memoryStats();
    await graph('reform');
    await sync();
    expect(memoryStats().bytes).toBe(base.bytes);
    expect(memoryStats().tensors).toBe(base.tensors);
    // marked, then released unread: the sources' views go with the marked tensors
    const x = randTensor([3, 8], 6);
    const [a, b] = reformable(geluSplit(x, [4, 4]), [x], ([s]) => geluSplit(s!, [4, 4]));
    const p = permute(a!, [1, 0]);
    reformable([p], [a!], ([s]) => [permute(s!, [1, 0])]);
    reformable([p], [b!], ([s]) => [permute(s!, [1, 0])]); // marked twice: both groups let go of their sources
    for (const t of [a!, b!, p, x]) t.dispose();
    await sync();
    expect(memoryStats().bytes).toBe(base.bytes);
    expect(memoryStats().tensors).toBe(base.tensors);
  });
});

interface Step {
  losses: StepLosses[];
  params: Float32Array;
  held: number;
}

// Two ConStyle MAXIM training steps with the fused ops recomputing as on CUDA, MAXIM's cheap intermediates formed again
// (maximFusion.reform, the default there) or kept; and the bytes one forward leaves held for its backward.
async function maximSteps(reform: boolean): Promise<Step> {
  const was = setKeepOnCpu(false), prev = maximFusion.reform;
  maximFusion.reform = reform;
  try {
    setInitSeed(9);
    const net = createModel('constyle-maxim-tiny', { constyle: 'train', K: 64 });
    const tr = new IRConStyleTrainer(net, { graph: false });
    const lq = tensor(randArray(2 * 32 * 32 * 3, 1, 0, 1), [2, 32, 32, 3]);
    const gt = tensor(randArray(2 * 32 * 32 * 3, 2, 0, 1), [2, 32, 32, 3]);
    const losses = [await tr.step(lq, gt), await tr.step(lq, gt)];
    const params = Float32Array.from((await tr.arena.params.data()) as Float32Array);
    tr.dispose();
    // what one forward of the restoration network keeps for its backward
    const restorer = createModel('constyle-maxim-tiny', { constyle: 'inference' }) as Module & { forward(x: Tensor): Tensor };
    for (const q of restorer.parameters()) q.requiresGrad = true;
    await sync();
    const before = memoryStats().bytes;
    const y = restorer.forward(lq);
    await sync();
    const held = memoryStats().bytes - before;
    backward(sum(y));
    y.dispose();
    restorer.dispose();
    net.dispose();
    for (const t of [lq, gt]) t.dispose();
    native.trim();
    return { losses, params, held };
  } finally {
    maximFusion.reform = prev;
    setKeepOnCpu(was);
  }
}

describe("ConStyle MAXIM's lean training step", () => {
  it('trains to the same bits as keeping the intermediates, holding less from the forward to the backward', async () => {
    const kept = await maximSteps(false);
    const lean = await maximSteps(true);
    expect(lean.losses).toEqual(kept.losses);
    expect(differing(lean.params, kept.params)).toBe(0);
    // the tiny model: its GELU halves, LayerNorm outputs, Dense inputs and products no longer held (≈ 40 % here)
    expect(lean.held).toBeLessThan(0.75 * kept.held);
  });
});
