// Restormer family (spec §4.3, §4.7): parameter counts, official state-dict names, MDTA/GDFN numerics,
// forward/backward, size rules and golden parity.
import { describe, expect, it } from 'vitest';
import { Restormer, constyleRestormer, Attention, FeedForward, TransformerBlock } from '../lib/models/restormer.js';
import { buildModel } from '../lib/models/registry.js';
import { withoutRandomInit } from '../lib/nn/init.js';
import { loadFixture, entries } from '../lib/parity/fixture.js';
import { tensor } from '../lib/tensor/tensor.js';
import { tidy } from '../lib/tensor/scope.js';
import { noGrad } from '../lib/autograd/node.js';
import { backward } from '../lib/autograd/tape.js';
import { l1Loss } from '../lib/ops/loss.js';
import { randArray, randTensor, gradcheck, relErr } from './helpers.js';

const TINY_CS = { dim: 8, left: [1, 1, 1] as [number, number, number], bottom: 1, right: [1, 1, 1] as [number, number, number], refine: 1 };
const TINY = { dim: 8, blocks: [1, 1, 1, 1] as [number, number, number, number], refine: 1 };

describe('Restormer parameter counts (spec §4.8)', () => {
  it('ConStyle Restormer: 15,574,960 inference / 16,765,792 training', () => {
    withoutRandomInit(() => {
      const inf = constyleRestormer({ constyle: 'inference' });
      expect(inf.numParameters()).toBe(15_574_960);
      inf.dispose();
      const tr = constyleRestormer({ K: 16 });
      expect(tr.numParameters()).toBe(16_765_792);
      tr.dispose();
      const none = constyleRestormer({ constyle: 'none' });
      expect(none.numParameters()).toBe(14_384_128);
      none.dispose();
    });
  });
  it('Restormer (official config): 26,126,644', () => {
    withoutRandomInit(() => {
      const m = new Restormer();
      expect(m.numParameters()).toBe(26_126_644);
      m.dispose();
    });
  });
  it('GDFN hidden width is floor(2.66·C)', () => {
    for (const [c, h] of [[48, 127], [96, 255], [144, 383], [192, 510]] as const) {
      const f = new FeedForward(c);
      expect(f.hidden).toBe(h);
      f.dispose();
    }
  });
});

describe('Restormer state dicts', () => {
  for (const [model, file, cfg] of [
    ['ConStyleRestormer', 'constyle_restormer', TINY_CS],
    ['Restormer', 'restormer', TINY],
  ] as const) {
    it(`${model}: the fixture's official names and shapes, exact round trip`, async () => {
      const f = loadFixture(`test/fixtures/${file}.safetensors`);
      expect(f.config.config).toMatchObject({ ...cfg, heads: [1, 2, 4, 8] });
      const ref = entries(f, 'param.');
      const m = buildModel(model, { ...cfg, heads: [1, 2, 4, 8], constyle: 'none' });
      const sd = await m.stateDict();
      expect([...sd.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [k, v] of ref) expect(sd.get(k)!.shape, k).toEqual(v.shape);
      m.loadStateDict(ref);
      const sd2 = await m.stateDict();
      for (const [k, v] of ref) expect(Array.from(sd2.get(k)!.data), k).toEqual(Array.from(v.data));
      m.dispose();
    });
  }
  it('temperature is [heads, 1, 1] initialised to 1; ConStyle Restormer has PReLU AffineTransforms', async () => {
    const m = constyleRestormer({ ...TINY_CS, constyle: 'none' });
    const sd = await m.stateDict();
    expect(sd.get('Process_Module_bottom.0.attn.temperature')!.shape).toEqual([8, 1, 1]);
    expect(Array.from(sd.get('Process_Module_r3.0.attn.temperature')!.data)).toEqual([1, 1, 1, 1]);
    expect(Array.from(sd.get('AffineTransform0.1.weight')!.data)).toEqual(new Array(8).fill(0.25));
    expect(sd.get('Finetune_Module.1.weight')!.shape).toEqual([3, 16, 3, 3]);
    m.dispose();
    expect(() => buildModel('Restormer', { dim: 8, width: 3 })).toThrowError(/unknown config key\(s\) width/);
    expect(() => buildModel('Restormer', { heads: [1, 2] })).toThrowError(/config\.heads/);
    expect(() => new Attention(10, 4)).toThrowError(/divisible by the number of heads/);
  });
});

describe('Restormer numerics', () => {
  it('MDTA matches a float64 reference', async () => {
    const [n, h, w, c, heads] = [2, 4, 3, 8, 2];
    const a = new Attention(c, heads);
    const sd = await a.stateDict();
    const temp = Float32Array.from([0.7, 1.9]);
    a.loadStateDict({ ...Object.fromEntries(sd), temperature: { shape: [heads, 1, 1], data: temp } });
    const x = randArray(n * h * w * c, 3);
    const xt = tensor(x, [n, h, w, c]);
    const y = noGrad(() => tidy(() => a.forward(xt)));
    const W = (k: string) => sd.get(k)!.data;
    const ref = mdtaRef(x, n, h * w, c, heads, W('qkv.weight'), W('qkv_dwconv.weight'), W('project_out.weight'), temp, h, w);
    expect(relErr(await y.f32(), ref)).toBeLessThan(1e-5);
    for (const t of [xt, y]) t.dispose();
    a.dispose();
  });

  it('TransformerBlock gradients pass a finite-difference check', async () => {
    const b = new TransformerBlock(4, 2, { ffn: 1.5 });
    await gradcheck((x) => b.forward(x), [{ data: randArray(1 * 4 * 4 * 4, 5), shape: [1, 4, 4, 4] }], { probes: 12 });
    b.dispose();
    // BiasFree LayerNorm variant: `body.weight` only.
    const bf = new TransformerBlock(4, 1, { layerNorm: 'BiasFree' });
    expect(bf.namedParameters().map((e) => e[0]).filter((k) => k.startsWith('norm'))).toEqual(['norm1.body.weight', 'norm2.body.weight']);
    await gradcheck((x) => bf.forward(x), [{ data: randArray(1 * 4 * 4 * 4, 6), shape: [1, 4, 4, 4] }], { probes: 12 });
    bf.dispose();
  });

  it('a small Restormer runs forward/backward; eval equals train; size rule', async () => {
    const m = new Restormer({ ...TINY, heads: [1, 2, 4, 8] });
    const lq = randTensor([1, 16, 16, 3], 1, 0, 1);
    const gt = randTensor([1, 16, 16, 3], 2, 0, 1);
    const { y, loss } = tidy(() => {
      const y = m.forward(lq);
      return { y, loss: l1Loss(y, gt) };
    });
    backward(loss);
    expect(Number.isFinite((await loss.f32())[0]!)).toBe(true);
    for (const [name, t] of m.namedParameters()) expect(t.grad, name).not.toBeNull();
    const temp = m.enc1.items[0]!.attn.P.temperature!.grad!;
    expect(temp.shape).toEqual([1, 1, 1]);
    m.eval();
    const ev = noGrad(() => tidy(() => m.forward(lq)));
    expect(relErr(await ev.f32(), await y.f32())).toBeLessThan(1e-6);
    const bad = randTensor([1, 12, 16, 3]);
    expect(() => noGrad(() => tidy(() => m.forward(bad)))).toThrowError(expect.objectContaining({ code: 'E_SHAPE' }));
    expect(() => noGrad(() => tidy(() => m.forward(bad)))).toThrowError(/multiples of 8, got 12×16/);
    for (const t of [lq, gt, y, loss, ev, bad]) t.dispose();
    m.dispose();
  });

  it('ConStyle Restormer enforces H, W multiples of 8', () => {
    const m = constyleRestormer({ ...TINY_CS, constyle: 'inference' }).eval();
    const x = randTensor([1, 16, 20, 3]);
    expect(() => noGrad(() => tidy(() => m.forward(x)))).toThrowError(expect.objectContaining({ code: 'E_SHAPE' }));
    x.dispose();
    m.dispose();
  });
});

/** float64 MDTA on NHWC x [n, hw, c] (weights in official layouts, no biases). */
function mdtaRef(
  x: Float32Array, n: number, hw: number, c: number, heads: number,
  wqkv: Float32Array, wdw: Float32Array, wout: Float32Array, temp: Float32Array, H: number, Wd: number,
): Float64Array {
  const c3 = 3 * c, ch = c / heads;
  const out = new Float64Array(n * hw * c);
  for (let b = 0; b < n; ++b) {
    const p = new Float64Array(hw * c3);
    for (let i = 0; i < hw; ++i)
      for (let o = 0; o < c3; ++o) {
        let s = 0;
        for (let k = 0; k < c; ++k) s += wqkv[o * c + k]! * x[(b * hw + i) * c + k]!;
        p[i * c3 + o] = s;
      }
    const d = new Float64Array(hw * c3);
    for (let y = 0; y < H; ++y)
      for (let xx = 0; xx < Wd; ++xx)
        for (let o = 0; o < c3; ++o) {
          let s = 0;
          for (let ky = 0; ky < 3; ++ky)
            for (let kx = 0; kx < 3; ++kx) {
              const yy = y + ky - 1, xs = xx + kx - 1;
              if (yy >= 0 && yy < H && xs >= 0 && xs < Wd) s += wdw[o * 9 + ky * 3 + kx]! * p[(yy * Wd + xs) * c3 + o]!;
            }
          d[(y * Wd + xx) * c3 + o] = s;
        }
    const att = new Float64Array(hw * c);
    for (let hd = 0; hd < heads; ++hd) {
      const vec = (part: number, ci: number) => {
        const v = new Float64Array(hw);
        for (let i = 0; i < hw; ++i) v[i] = d[i * c3 + part * c + hd * ch + ci]!;
        return v;
      };
      const nrm = (v: Float64Array) => {
        const s = Math.max(Math.sqrt(v.reduce((a, e) => a + e * e, 0)), 1e-12);
        return v.map((e) => e / s);
      };
      const q = Array.from({ length: ch }, (_, i) => nrm(vec(0, i)));
      const k = Array.from({ length: ch }, (_, i) => nrm(vec(1, i)));
      const v = Array.from({ length: ch }, (_, i) => vec(2, i));
      for (let i = 0; i < ch; ++i) {
        const logits = k.map((kj) => q[i]!.reduce((a, e, t) => a + e * kj[t]!, 0) * temp[hd]!);
        const mx = Math.max(...logits);
        const ex = logits.map((l) => Math.exp(l - mx));
        const z = ex.reduce((a, e) => a + e, 0);
        for (let t = 0; t < hw; ++t) {
          let s = 0;
          for (let j = 0; j < ch; ++j) s += (ex[j]! / z) * v[j]![t]!;
          att[t * c + hd * ch + i] = s;
        }
      }
    }
    for (let i = 0; i < hw; ++i)
      for (let o = 0; o < c; ++o) {
        let s = 0;
        for (let k = 0; k < c; ++k) s += wout[o * c + k]! * att[i * c + k]!;
        out[(b * hw + i) * c + o] = s;
      }
  }
  return out;
}
