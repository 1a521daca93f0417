// Model structure: official parameter counts (spec §4.8), state-dict names, layouts, size rules, leaks.
import { describe, expect, it, onTestFinished } from 'vitest';
import { constyleNAFNet } from '../lib/models/constyle_nafnet.js';
import { NAFNet } from '../lib/models/nafnet.js';
import { ConStyle } from '../lib/models/constyle.js';
import { buildModel } from '../lib/models/registry.js';
import { createModel } from '../lib/models/catalog.js';
import type { ConStyleUNet } from '../lib/models/unet.js';
import { backward } from '../lib/autograd/tape.js';
import { mean } from '../lib/ops/elementwise.js';
import { IRConStyleTrainer } from '../lib/train/irconstyle.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
import { tensor } from '../lib/tensor/tensor.js';
import { noGrad } from '../lib/autograd/node.js';
import { tidy } from '../lib/tensor/scope.js';
import { randArray } from './helpers.js';
import { saveCheckpoint, loadCheckpoint } from '../lib/io/checkpoint.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('parameter counts (spec §4.8)', () => {
  it('ConStyle NAFNet: 12,739,872 inference / 13,930,704 training', () => {
    const inf = constyleNAFNet({ constyle: 'inference' });
    expect(inf.numParameters()).toBe(12_739_872);
    inf.dispose();
    const tr = constyleNAFNet();
    expect(tr.numParameters()).toBe(13_930_704);
    const sd = tr.namedParameters().length + tr.namedBuffers().length + tr.namedScalars().length;
    expect(sd).toBe(1091); // state-dict entries with Train=True (§4.10)
    tr.dispose();
  });
  it('ConStyle encoder: 1,190,832', () => {
    const cs = new ConStyle({ train: false });
    expect(cs.numParameters()).toBe(1_190_832);
    cs.dispose();
  });
  it('NAFNet (repository config): 87,404,483', () => {
    const m = new NAFNet({ width: 64, middle: 7, enc: [5, 6, 7, 7], dec: [5, 6, 7, 7] });
    expect(m.numParameters()).toBe(87_404_483);
    m.dispose();
  });
});

describe('model API', () => {
  it('uses official state-dict names and layouts', async () => {
    const m = constyleNAFNet({ dim: 8, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], K: 16 });
    const sd = await m.stateDict();
    expect(sd.get('ConStyle.encoder_q.stage1.0.0.weight')!.shape).toEqual([16, 3, 3, 3]);
    expect(sd.get('Process_Module_l1.0.beta')!.shape).toEqual([1, 8, 1, 1]);
    expect(sd.get('ConStyle.queue')!.shape).toEqual([128, 16]);
    expect(sd.get('ConStyle.queue_ptr')!.shape).toEqual([1]);
    expect(sd.get('mlp.0.weight')!.shape).toEqual([32, 128]);
    // Round trip through loadStateDict is exact.
    const m2 = constyleNAFNet({ dim: 8, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], K: 16 });
    m2.loadStateDict(sd);
    const sd2 = await m2.stateDict();
    for (const [k, v] of sd) expect(Array.from(sd2.get(k)!.data), k).toEqual(Array.from(v.data));
    m.dispose();
    m2.dispose();
  });

  it('rejects bad state dicts and configs with clear errors', async () => {
    const m = buildModel('NAFNet', { width: 8, middle: 1, enc: [1], dec: [1] });
    const sd = await m.stateDict();
    sd.delete('intro.bias');
    expect(() => m.loadStateDict(sd)).toThrowError(/1 missing \(intro\.bias\)/);
    sd.set('intro.bias', { shape: [9], data: new Float32Array(9) });
    const before = await m.stateDict();
    sd.set('intro.weight', { shape: before.get('intro.weight')!.shape, data: new Float32Array(before.get('intro.weight')!.data.length) });
    expect(() => m.loadStateDict(sd)).toThrowError(/'intro.bias' expects shape \[8\], got \[9\]/);
    // Nothing was loaded: intro.weight (valid, earlier in order) is unchanged.
    expect(Array.from((await m.stateDict()).get('intro.weight')!.data)).toEqual(Array.from(before.get('intro.weight')!.data));
    expect(() => buildModel('NAFNet', { widht: 8 })).toThrowError(/unknown config key\(s\) widht/);
    expect(() => buildModel('Nope')).toThrowError(/unknown model 'Nope'/);
    m.dispose();
  });

  it('checkpoints round-trip (same outputs) and a corrupt one is rejected without touching the model', async () => {
    const cfg = { dim: 8, left: [1, 1, 1] as [number, number, number], bottom: 1, right: [1, 1, 1] as [number, number, number], constyle: 'inference' as const };
    const a = constyleNAFNet(cfg).eval();
    const dir = mkdtempSync(join(tmpdir(), 'irc-ckpt-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'model.safetensors');
    await saveCheckpoint(path, a, { note: 'test' });
    const b = constyleNAFNet(cfg).eval();
    expect(loadCheckpoint(path, b).note).toBe('test');
    const x = tensor(randArray(1 * 16 * 16 * 3, 3, 0, 1), [1, 16, 16, 3]);
    const [ya, yb] = noGrad(() => tidy(() => [a.forward(x), b.forward(x)]));
    expect(Array.from(await yb!.data())).toEqual(Array.from(await ya!.data()));
    const bad = join(dir, 'bad.safetensors');
    writeFileSync(bad, new Uint8Array([1, 2, 3]));
    expect(() => loadCheckpoint(bad, b)).toThrowError(expect.objectContaining({ code: 'E_FORMAT' }));
    const yb2 = noGrad(() => tidy(() => b.forward(x)));
    expect(Array.from(await yb2.data())).toEqual(Array.from(await ya!.data()));
    for (const t of [x, ya!, yb!, yb2]) t.dispose();
    a.dispose();
    b.dispose();
  });

  it('ConStyle NAFNet enforces H, W multiples of 8', () => {
    const m = constyleNAFNet({ dim: 8, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], constyle: 'inference' }).eval();
    const x = tensor(randArray(1 * 12 * 16 * 3), [1, 12, 16, 3]);
    expect(() => noGrad(() => tidy(() => m.forward(x)))).toThrowError(/multiples of 8, got 12×16/);
    x.dispose();
    m.dispose();
  });

  it('NAFNet accepts any size (pads internally and crops back)', async () => {
    const m = new NAFNet({ width: 8, middle: 1, enc: [1, 1], dec: [1, 1] }).eval();
    const x = tensor(randArray(1 * 13 * 10 * 3), [1, 13, 10, 3]);
    const y = noGrad(() => tidy(() => m.forward(x)));
    expect(y.shape).toEqual([1, 13, 10, 3]);
    expect((await y.data()).every(Number.isFinite)).toBe(true);
    for (const t of [x, y]) t.dispose();
    m.dispose();
  });

  it('inference keeps only a few intermediates alive (memory is allocated when kernels run, freed when consumed)', async () => {
    const { native } = await import('../lib/native/loader.js');
    const m = constyleNAFNet({ dim: 16, left: [2, 2, 2], bottom: 2, right: [2, 2, 2], constyle: 'inference' }).eval();
    const S = 128;
    const x = tensor(randArray(S * S * 3, 9, 0, 1), [1, S, S, 3]);
    await sync();
    native.trim();
    const base = memoryStats().bytes;
    const y = noGrad(() => tidy(() => m.forward(x)));
    await y.data();
    const peak = memoryStats().peakBytes - base;
    // One full-resolution map of 2·dim channels is S·S·32·4 bytes = 2 MiB; the whole forward produces > 100 MiB.
    expect(peak).toBeLessThan(24 * 2 ** 20);
    for (const t of [x, y]) t.dispose();
    m.dispose();
  });

  it('a training step returns live tensors and bytes to baseline', async () => {
    const m = constyleNAFNet({ dim: 8, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], K: 16 });
    const tr = new IRConStyleTrainer(m);
    const lq = tensor(randArray(2 * 32 * 32 * 3, 1, 0, 1), [2, 32, 32, 3]);
    const gt = tensor(randArray(2 * 32 * 32 * 3, 2, 0, 1), [2, 32, 32, 3]);
    await tr.step(lq, gt); // first step allocates optimizer state lazily, if any
    await sync();
    const base = memoryStats();
    const l = await tr.step(lq, gt);
    await sync();
    const after = memoryStats();
    expect(Number.isFinite(l.total)).toBe(true);
    expect(after.tensors).toBe(base.tensors);
    expect(after.bytes).toBe(base.bytes);
    tr.dispose();
    m.dispose();
    lq.dispose();
    gt.dispose();
  });
});

describe('restore() and the training step\'s peak', () => {
  // A training step's peak falls at the end of the forward or early in the backward: restore() releases what no later
  // op reads as it goes (stage scopes; MAXIM's decoder blocks consume their inputs), so after it returns only its
  // output and the tensors saved for the backward are alive — the same bytes as after tidy(() => restore()), which
  // frees everything else.
  for (const name of ['constyle-nafnet-tiny', 'constyle-restormer-tiny', 'constyle-maxim-tiny'])
    it(`${name}: holds nothing after it returns but its output and what the backward needs`, async () => {
      const m = createModel(name, { constyle: 'none' }) as unknown as ConStyleUNet; // ConStyleMaxim has the same restore()
      m.train();
      const S = 64;
      const img = tensor(randArray(2 * S * S * 3, 31, 0, 1), [2, S, S, 3]);
      const code = tensor(randArray(2 * 128, 32), [2, 128]);
      const feas = [[S / 2, 32], [S / 4, 64], [S / 8, 128]].map(([h, c], i) => tensor(randArray(2 * h! * h! * c!, 33 + i), [2, h!, h!, c!]));
      const held = async (scoped: boolean) => {
        await sync();
        const before = memoryStats().bytes;
        const out = scoped ? tidy(() => m.restore(img, code, feas)) : m.restore(img, code, feas);
        await sync();
        const bytes = memoryStats().bytes - before;
        const loss = mean(out);
        backward(loss); // frees the saved tensors
        for (const t of [loss, out]) t.dispose();
        return bytes;
      };
      const scoped = await held(true);
      expect(scoped).toBeGreaterThan(2 * S * S * 3 * 4);
      expect(await held(false)).toBe(scoped);
      for (const t of [img, code, ...feas]) t.dispose();
      m.dispose();
    });
});
