// MAXIM family (spec §4.4, §4.7): parameter counts (§4.8), official names, state-dict round trip, a small
// forward/backward, the block/grid helpers and the size rule (§4.9).
import { describe, expect, it } from 'vitest';
import { ConStyleMaxim, Maxim } from '../lib/models/maxim.js';
import { blockImages, unblockImages, spatialDense, ConvTranspose2x2 } from '../lib/models/maxim_blocks.js';
import { buildModel } from '../lib/models/registry.js';
import { withoutRandomInit } from '../lib/nn/init.js';
import { tensor } from '../lib/tensor/tensor.js';
import { tidy } from '../lib/tensor/scope.js';
import { noGrad } from '../lib/autograd/node.js';
import { backward } from '../lib/autograd/tape.js';
import { mean } from '../lib/ops/elementwise.js';
import { randArray, relErr } from './helpers.js';
import { entries, loadFixture } from '../lib/parity/fixture.js';

const tiny = { features: 8, bottom: 1, blockHr: [4, 4], blockLr: [2, 2], gridHr: [4, 4], gridLr: [2, 2] } as const;

describe('MAXIM parameter counts (spec §4.8)', () => {
  it('ConStyle MAXIM: 8,101,664 inference / 9,292,496 training; 1,529,088 unused', () => {
    const inf = withoutRandomInit(() => new ConStyleMaxim({ constyle: 'inference' }));
    expect(inf.numParameters()).toBe(8_101_664);
    const unused = inf.namedParameters().filter(([n]) => /\.cross_gating_block\./.test(n)).reduce((a, [, t]) => a + t.size, 0);
    expect(unused).toBe(1_529_088);
    inf.dispose();
    const tr = withoutRandomInit(() => new ConStyleMaxim({ constyle: 'train', constyleOptions: { K: 16 } }));
    expect(tr.numParameters()).toBe(9_292_496);
    tr.dispose();
  });
  it('MAXIM-1S: 8,175,683; 1,697,024 unused', () => {
    const m = withoutRandomInit(() => new Maxim());
    expect(m.numParameters()).toBe(8_175_683);
    const unused = m
      .namedParameters()
      .filter(([n]) => /\.cross_gating_block\./.test(n) || /decoder_block_\d\.UNetEncoderBlock_0\.Conv_1\./.test(n))
      .reduce((a, [, t]) => a + t.size, 0);
    expect(unused).toBe(1_697_024 + [32, 64, 128].reduce((a, c) => a + c * c * 16 + c, 0));
    m.dispose();
  });
});

describe('MAXIM structure', () => {
  it('uses the official state-dict names (fixture keys) and round-trips exactly', async () => {
    for (const [file, name] of [['constyle_maxim', 'ConStyleMaxim'], ['maxim', 'Maxim']] as const) {
      const fx = loadFixture(`test/fixtures/${file}.safetensors`);
      const ref = entries(fx, 'param.');
      const m = buildModel(name, { ...fx.config.config, constyle: 'none' });
      const sd = await m.stateDict();
      expect([...sd.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [k, v] of ref) expect(sd.get(k)!.shape, k).toEqual(v.shape);
      m.loadStateDict(ref);
      const back = await m.stateDict();
      for (const [k, v] of ref) expect(relErr(back.get(k)!.data, v.data), k).toBe(0);
      m.dispose();
    }
  });

  it('builds ConStyle inside (train / inference) like the ConStyle U-Net, and validates configs', () => {
    const m = buildModel('ConStyleMaxim', { features: 8, bottom: 1, constyle: 'train', K: 16 });
    const names = m.namedParameters().map(([n]) => n);
    expect(names).toContain('ConStyle.encoder_k.stage1.0.0.weight');
    expect(m.namedBuffers().map(([n]) => n)).toContain('ConStyle.queue');
    m.dispose();
    expect(() => buildModel('Maxim', { features: 8, bottom: 2 })).toThrow(/unknown config key/);
    expect(() => buildModel('ConStyleMaxim', { block_hr: [4] })).toThrow(/block_hr/);
    expect(() => new ConStyleMaxim({ features: 6, constyle: 'none' })).toThrow(/multiple of 4/);
  });
});

describe('MAXIM primitives', () => {
  it('block_images / unblock_images follow the official (gh gw)(fh fw) order', async () => {
    const [n, h, w, c] = [2, 4, 6, 3];
    const data = randArray(n * h * w * c, 3);
    const x = tensor(data, [n, h, w, c]);
    const b = blockImages(x, [2, 3]); // gh 2, gw 2
    expect(b.shape).toEqual([n, 4, 6, c]);
    const bd = (await b.data()) as Float32Array;
    for (let i = 0; i < n; ++i)
      for (let y = 0; y < h; ++y)
        for (let xx = 0; xx < w; ++xx)
          for (let ch = 0; ch < c; ++ch) {
            const g = Math.floor(y / 2) * 2 + Math.floor(xx / 3), p = (y % 2) * 3 + (xx % 3);
            expect(bd[((i * 4 + g) * 6 + p) * c + ch]).toBe(data[((i * h + y) * w + xx) * c + ch]);
          }
    const u = unblockImages(b, [2, 2], [2, 3]);
    expect(Array.from((await u.data()) as Float32Array)).toEqual(Array.from(data));
    for (const t of [x, b, u]) t.dispose();
  });

  it('spatialDense = Dense over the block axis P / the grid axis G of the blocked view', async () => {
    const [n, h, w, c, fh, fw] = [1, 4, 4, 2, 2, 2];
    const data = randArray(n * h * w * c, 5);
    const W = randArray(16, 6), B = randArray(4, 7);
    const x = tensor(data, [n, h, w, c]), wt = tensor(W, [4, 4]), bt = tensor(B, [4]);
    const at = (y: number, xx: number, ch: number) => data[(y * w + xx) * c + ch]!;
    for (const over of ['block', 'grid'] as const) {
      const out = (await spatialDense(x, [fh, fw], over, wt, bt).data()) as Float32Array;
      for (let y = 0; y < h; ++y)
        for (let xx = 0; xx < w; ++xx)
          for (let ch = 0; ch < c; ++ch) {
            const [gy, gx, py, px] = [Math.floor(y / fh), Math.floor(xx / fw), y % fh, xx % fw];
            const o = over === 'block' ? py * 2 + px : gy * 2 + gx;
            let s = B[o]!;
            for (let k = 0; k < 4; ++k) {
              const [ky, kx] = over === 'block' ? [gy * fh + Math.floor(k / 2), gx * fw + (k % 2)] : [Math.floor(k / 2) * fh + py, (k % 2) * fw + px];
              s += W[o * 4 + k]! * at(ky, kx, ch);
            }
            expect(out[(y * w + xx) * c + ch]).toBeCloseTo(s, 5);
          }
    }
    for (const t of [x, wt, bt]) t.dispose();
  });

  it('ConvTranspose2x2 = nn.ConvTranspose2d(k 2, s 2) with official weight [Cin, Cout, 2, 2]', async () => {
    const [n, h, w, ci, co] = [1, 2, 3, 3, 2];
    const ct = new ConvTranspose2x2(ci, co, true);
    const W = randArray(ci * co * 4, 11), B = randArray(co, 12), X = randArray(n * h * w * ci, 13);
    ct.loadStateDict({ weight: { shape: [ci, co, 2, 2], data: W }, bias: { shape: [co], data: B } });
    const y = noGrad(() => ct.forward(tensor(X, [n, h, w, ci])));
    expect(y.shape).toEqual([n, 2 * h, 2 * w, co]);
    const yd = (await y.data()) as Float32Array;
    for (let oy = 0; oy < 2 * h; ++oy)
      for (let ox = 0; ox < 2 * w; ++ox)
        for (let o = 0; o < co; ++o) {
          let s = B[o]!;
          for (let i = 0; i < ci; ++i) s += X[((oy >> 1) * w + (ox >> 1)) * ci + i]! * W[((i * co + o) * 2 + (oy & 1)) * 2 + (ox & 1)]!;
          expect(yd[(oy * 2 * w + ox) * co + o]).toBeCloseTo(s, 5);
        }
    y.dispose();
    ct.dispose();
  });
});

describe('MAXIM forward / backward', () => {
  for (const name of ['ConStyleMaxim', 'Maxim'] as const) {
    it(`${name}: 64×64 with the official block/grid sizes, gradients reach every used parameter, train = eval`, async () => {
      const m = name === 'Maxim' ? new Maxim({ features: 8 }) : new ConStyleMaxim({ features: 8, bottom: 1, constyle: 'inference' });
      const img = tensor(randArray(2 * 64 * 64 * 3, 21, 0, 1), [2, 64, 64, 3]);
      m.train();
      const out = tidy(() => (m as Maxim).forward(img));
      expect(out.shape).toEqual([2, 64, 64, 3]);
      const loss = tidy(() => mean(out));
      backward(loss);
      const od = (await out.data()) as Float32Array;
      expect(od.every(Number.isFinite)).toBe(true);
      const dead = /(\.cross_gating_block\.|decoder_block_\d\.UNetEncoderBlock_0\.Conv_1\.)/;
      for (const [n, t] of m.namedParameters()) {
        if (dead.test(n)) continue;
        expect(t.grad, n).not.toBeNull();
      }
      for (const [n, t] of m.namedParameters()) if (dead.test(n)) expect(t.grad, n).toBeNull();
      if (m instanceof ConStyleMaxim) {
        // The restoration network has no train/eval difference (ConStyle's BatchNorm heads do): compare restore().
        const code = tensor(randArray(2 * 128, 22), [2, 128]);
        const feas = [[32, 32, 32], [16, 16, 64], [8, 8, 128]].map(([h, w, c], i) => tensor(randArray(2 * h! * w! * c!, 23 + i), [2, h!, w!, c!]));
        const tr = noGrad(() => tidy(() => m.restore(img, code, feas)));
        m.eval();
        const ev = noGrad(() => tidy(() => m.restore(img, code, feas)));
        expect(relErr((await ev.data()) as Float32Array, (await tr.data()) as Float32Array)).toBe(0);
        for (const t of [code, ...feas, tr, ev]) t.dispose();
      } else {
        m.eval();
        const ev = noGrad(() => tidy(() => m.forward(img)));
        expect(relErr((await ev.data()) as Float32Array, od)).toBe(0);
        ev.dispose();
      }
      for (const t of [img, out, loss]) t.dispose();
      m.dispose();
    });
  }

  it('rejects inputs that do not tile into the blocks and grids (multiples of 64 by default)', () => {
    const m = new Maxim({ features: 4 });
    const c = new ConStyleMaxim({ features: 4, bottom: 1, constyle: 'none' });
    expect(m.sizeMultiple()).toEqual([64, 64]);
    expect(c.sizeMultiple()).toEqual([64, 64]);
    const img = tensor(new Float32Array(32 * 96 * 3), [1, 32, 96, 3]);
    expect(() => m.forward(img)).toThrow(/E_SHAPE|multiples of 64, got 32×96/);
    expect(() => c.restore(img, img, [])).toThrow(/multiples of 64, got 32×96/);
    const gray = tensor(new Float32Array(64 * 64), [1, 64, 64, 1]);
    expect(() => m.forward(gray)).toThrow(/\[N, H, W, 3\]/);
    expect(new Maxim({ ...tiny, features: 4 }).sizeMultiple()).toEqual([16, 16]);
    for (const t of [img, gray]) t.dispose();
    m.dispose();
    c.dispose();
  });
});

