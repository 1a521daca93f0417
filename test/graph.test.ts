// captureForward: the capture rules (checked on the CPU exactly as they are enforced while recording a CUDA graph),
// the fallback when they are broken, and run()'s results and input checks. Every registry model's inference
// forward must be capturable, or it would silently run op by op on a GPU.
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { captureForward } from '../lib/infer/graph.js';
import { createModel } from '../lib/models/catalog.js';
import { setInitSeed } from '../lib/nn/init.js';
import { add, mul } from '../lib/ops/elementwise.js';
import { memoryStats } from '../lib/tensor/memory.js';
import { keep } from '../lib/tensor/scope.js';
import { native } from '../lib/native/loader.js';
import type { Module } from '../lib/nn/module.js';

type Net = Module & { forward(x: Tensor): Tensor };
const image = (n: number, h: number, w: number, seed = 0.37) =>
  tensor(new Float32Array(n * h * w * 3).map((_, i) => Math.sin(seed * i) * 0.5 + 0.5), [n, h, w, 3]);

describe('captureForward', () => {
  for (const name of ['constyle-nafnet-tiny', 'nafnet-tiny', 'constyle-restormer-tiny', 'restormer-tiny', 'constyle-maxim-tiny', 'maxim-tiny']) {
    it(`${name}: the inference forward obeys the capture rules; run() equals forward()`, async () => {
      setInitSeed(3);
      const m = (createModel(name, { constyle: 'inference' }) as Net).eval();
      const x = image(1, 32, 32);
      const cf = await captureForward((t) => m.forward(t), x);
      expect(cf.reason).not.toMatch(/capture failed/);
      expect(cf.capturable).toBe(true);
      expect(cf.graphed).toBe(false); // the CPU has no graphs
      expect(cf.inputShape).toEqual([1, 32, 32, 3]);
      expect(cf.outputShape).toEqual([1, 32, 32, 3]);
      const x2 = image(1, 32, 32, 0.11);
      const got = (await cf.run(x2).data()) as Float32Array;
      const want = (await m.forward(x2).data()) as Float32Array;
      expect(got).toEqual(want);
      cf.dispose();
      m.dispose();
    });
  }

  it('a function that makes a tensor from host data, reads or keeps tensors is not capturable, and still runs', async () => {
    const x = image(1, 4, 4);
    const bias = tensor(new Float32Array(48).fill(0.5), [1, 4, 4, 3]);
    const cases: [string, (t: Tensor) => Tensor, RegExp, number][] = [
      ['host data', (t) => add(t, tensor(new Float32Array(48).fill(0.5), [1, 4, 4, 3])), /host data/, 1],
      ['a read', (t) => { void t.data().catch(() => {}); return add(t, bias); }, /reading a tensor/, 1],
      ['a kept intermediate', (t) => add(keep(mul(t, t)), bias), /1 tensor made during the capture is still alive/, 0.75],
    ];
    for (const [what, fn, why, y0] of cases) {
      const cf = await captureForward(fn, x);
      expect(cf.capturable, what).toBe(false);
      expect(cf.reason, what).toMatch(why);
      const y = (await cf.run(x).data()) as Float32Array; // x[0] = 0.5
      expect(y[0], what).toBeCloseTo(y0, 6);
      cf.dispose();
    }
    // a capture left open by nothing: the next one starts cleanly
    const ok = await captureForward((t) => add(t, bias), x);
    expect(ok.capturable).toBe(true);
  });

  it('the capture rules hold in the native layer (what a CUDA capture enforces); a broken rule fails the capture', async () => {
    const x = image(1, 2, 2);
    native.captureBegin(0);
    expect(native.captureEnd(true)).toBeNull(); // nothing broken: no graph on the CPU, no error
    native.captureBegin(0);
    try {
      expect(() => native.captureBegin(0)).toThrow(/already open/);
      expect(() => native.fromData(new Float32Array(1), [1])).toThrow(/making a tensor from host data is not allowed/);
      expect(() => native.sync(0)).toThrow(/sync\(\) is not allowed/);
      expect(() => native.profile(true)).toThrow(/profiling is not allowed/);
      expect(() => native.read(x.id)).toThrow(expect.objectContaining({ code: 'E_CAPTURE' }));
    } finally {
      // the first broken rule is the capture's error, even though every error above was caught
      expect(() => native.captureEnd(true)).toThrow(/host data/);
    }
    expect(() => native.captureEnd(true)).toThrow(/no graph capture is open/);
    expect(((await x.data()) as Float32Array).length).toBe(12); // reads work again

    // sealed (CPU): the rules end at once, what was made inside is still counted once the executor has run it
    native.captureBegin(0);
    const kept = add(x, x);
    native.captureSeal();
    expect(() => native.captureBegin(0)).toThrow(/already open/);
    const after = tensor(new Float32Array(1), [1]); // host data is fine after the seal, and not counted
    await native.sync(0);
    expect(() => native.captureEnd(true)).toThrow(/1 tensor made during the capture is still alive/);
    kept.dispose();
    after.dispose();
  });

  it('run() checks its input and refuses after dispose; no memory is left behind', async () => {
    const before = memoryStats().storages;
    const x = image(1, 8, 8);
    const cf = await captureForward((t) => mul(t, t), x);
    const narrow = image(1, 8, 4), ints = tensor(new Int32Array(192), [1, 8, 8, 3]);
    expect(() => cf.run(narrow)).toThrow(/expected an input of shape \[1, 8, 8, 3\].*got \[1, 8, 4, 3\]/);
    expect(() => cf.run(ints)).toThrow(/float32/);
    narrow.dispose();
    ints.dispose();
    const y = cf.run(x);
    expect(((await y.data()) as Float32Array)[1]).toBeCloseTo((Math.sin(0.37) * 0.5 + 0.5) ** 2, 6);
    y.dispose();
    cf.dispose();
    cf.dispose();
    expect(() => cf.run(x)).toThrow(/disposed/);
    x.dispose();
    await new Promise((r) => setTimeout(r, 10));
    expect(memoryStats().storages).toBeLessThanOrEqual(before);
    await expect(captureForward((t) => t, x)).rejects.toThrow(/disposed/);
  });
});
