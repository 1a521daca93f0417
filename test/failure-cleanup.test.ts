// A forward, a backward or a training step that fails part way (on a GPU: out of memory) frees what it made at once,
// without waiting for garbage collection, and a failed training step leaves the trained parameters and AdamW's state
// as they were. (On the CUDA emulator the same is checked with real out-of-memory failures:
// scripts/service-scenarios.mjs.)
import { afterEach, describe, expect, it } from 'vitest';
import { backward, freeGraphOnError, record, setBackwardObserver } from '../lib/autograd/tape.js';
import { noGrad } from '../lib/autograd/node.js';
import { IrcError } from '../lib/errors.js';
import { conv2d } from '../lib/ops/conv.js';
import { relu } from '../lib/ops/activation2.js';
import { add, mul, scale, sum } from '../lib/ops/elementwise.js';
import { tidy } from '../lib/tensor/scope.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
import { tensor } from '../lib/tensor/tensor.js';
import { setInitSeed } from '../lib/nn/init.js';
import { createModel } from '../lib/models/catalog.js';
import { IRConStyleTrainer } from '../lib/train/irconstyle.js';
import { randArray, randTensor } from './helpers.js';

async function held(): Promise<[number, number]> {
  await sync();
  const m = memoryStats();
  return [m.tensors, m.bytes];
}

afterEach(() => setBackwardObserver(null));

describe('failures part way free what they made', () => {
  it('a forward that throws under freeGraphOnError frees the saved tensors of its graph', async () => {
    const x = randTensor([2, 8, 8, 3], 1);
    const w = randTensor([3, 3, 3, 4], 2);
    w.requiresGrad = true;
    const forward = () => tidy(() => {
      const y = relu(conv2d(x, w, null, { pad: 1 }));
      mul(y, y);
      throw new IrcError('E_OOM', 'injected');
    });
    const base = await held();
    expect(() => freeGraphOnError(forward)).toThrow('injected');
    expect(await held()).toEqual(base);
    expect(() => forward()).toThrow('injected');  // the same without the guard: the saved tensors wait for the GC
    expect((await held())[0]).toBeGreaterThan(base[0]);
  });

  it('a backward rule that throws after making tensors leaves none of them, nor the incoming gradients', async () => {
    const x = randTensor([4, 5], 3);
    x.requiresGrad = true;
    const base = await held();
    const z = tidy(() => relu(mul(x, x)));
    const out = noGrad(() => scale(z, 2));
    record({
      name: 'fails',
      inputs: [z],
      outputs: [out],
      save: [z],
      backward: ([g], [s]) => {
        add(g!, s!);
        mul(g!, g!);
        throw new IrcError('E_OOM', 'injected in a rule');
      },
    });
    const loss = sum(out);
    expect(() => backward(loss)).toThrow('injected in a rule');
    loss.dispose();
    out.dispose();
    z.dispose();
    expect(await held()).toEqual(base);
    expect(x.grad).toBeNull();
  });

  it('gradients a node made but did not hand on yet are freed when the backward stops there', async () => {
    const x = randTensor([3, 6], 4);
    x.requiresGrad = true;
    const base = await held();
    const loss = tidy(() => sum(mul(add(x, x), relu(x))));
    setBackwardObserver((name) => {
      if (name === 'mul') throw new IrcError('E_OOM', 'injected after mul');
    });
    expect(() => backward(loss)).toThrow('injected after mul');
    loss.dispose();
    expect(await held()).toEqual(base);
  });
});

describe('a training step that fails part way', () => {
  for (const where of ['forward', 'backward'] as const) {
    it(`fails in the ${where}: nothing left, parameters and AdamW state untouched, next step trains`, async () => {
      setInitSeed(5);
      const model = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 });
      const tr = new IRConStyleTrainer(model, { lr: 1e-3 });
      const lq = tensor(randArray(2 * 16 * 16 * 3, 6, 0, 1), [2, 16, 16, 3]);
      const gt = tensor(randArray(2 * 16 * 16 * 3, 7, 0, 1), [2, 16, 16, 3]);
      await tr.step(lq, gt);
      const base = await held();
      const before = [await tr.arena.params.data(), await tr.optimizer.m.data(), await tr.optimizer.v.data()];
      const steps = tr.optimizer.step;
      const restore = model.restore.bind(model);
      if (where === 'forward') {
        model.restore = (...args: Parameters<typeof restore>) => {
          restore(...args);  // the whole restoration forward recorded, then a failure
          throw new IrcError('E_OOM', 'injected in the forward');
        };
      } else {
        let n = 0;
        setBackwardObserver(() => {
          if (++n === 40) throw new IrcError('E_OOM', 'injected in the backward');
        });
      }
      await expect(tr.step(lq, gt)).rejects.toThrow(`injected in the ${where}`);
      setBackwardObserver(null);
      model.restore = restore;
      expect(await held()).toEqual(base);
      const after = [await tr.arena.params.data(), await tr.optimizer.m.data(), await tr.optimizer.v.data()];
      after.forEach((a, i) => expect(a).toEqual(before[i]));
      expect(tr.optimizer.step).toBe(steps);
      const l = await tr.step(lq, gt);
      expect(Number.isFinite(l.total)).toBe(true);
      expect(tr.optimizer.step).toBe(steps + 1);
      lq.dispose();
      gt.dispose();
    });
  }
});
