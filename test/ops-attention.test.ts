// channel_attention (Restormer's MDTA core): forward and backward against float64 references and against the
// unfused composition of the official code (permute, F.normalize, matmul, softmax, matmul, permute), finite-
// difference gradient checks, the clamp of tiny norms, determinism and validation.
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { runOp } from '../lib/ops/run.js';
import { mul } from '../lib/ops/elementwise.js';
import { softmax, l2Normalize } from '../lib/ops/activation2.js';
import { matmul } from '../lib/ops/conv.js';
import { permute } from '../lib/ops/memory.js';
import { split } from '../lib/ops/shape.js';
import { channelAttention, dwconvChannelAttention } from '../lib/ops/attention.js';
import { conv2d } from '../lib/ops/conv.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
import { backward } from '../lib/autograd/tape.js';
import { randArray, expectClose, gradcheck, relErr, differing } from './helpers.js';

interface Case {
  N: number; H: number; W: number; C: number; heads: number;
}
const cases: Case[] = [
  { N: 1, H: 3, W: 5, C: 4, heads: 1 },
  { N: 2, H: 5, W: 7, C: 6, heads: 2 },
  { N: 2, H: 4, W: 3, C: 12, heads: 4 },
  { N: 1, H: 1, W: 1, C: 9, heads: 3 },
  { N: 3, H: 9, W: 11, C: 48, heads: 1 },
  { N: 1, H: 6, W: 6, C: 40, heads: 8 },
];
const name = (c: Case) => `[${c.N},${c.H},${c.W},${3 * c.C}] heads ${c.heads}`;

/** Float64 forward and backward for Σ y ⊙ dy: returns y, dqkv, dt. */
function reference(c: Case, qkv: Float32Array, t: Float32Array, dy: Float32Array, eps = 1e-12) {
  const { N, C, heads } = c, P = c.H * c.W, ch = C / heads, C3 = 3 * C;
  const y = new Float64Array(N * P * C), dqkv = new Float64Array(qkv.length), dt = new Float64Array(heads);
  const at = (n: number, p: number, a: number) => qkv[(n * P + p) * C3 + a]!;
  for (let n = 0; n < N; ++n)
    for (let h = 0; h < heads; ++h) {
      const q = (p: number, i: number) => at(n, p, h * ch + i);
      const k = (p: number, j: number) => at(n, p, C + h * ch + j);
      const v = (p: number, j: number) => at(n, p, 2 * C + h * ch + j);
      const nrm = (f: (p: number, i: number) => number, i: number) => {
        let s = 0;
        for (let p = 0; p < P; ++p) s += f(p, i) ** 2;
        return Math.sqrt(s);
      };
      const nq = Array.from({ length: ch }, (_, i) => nrm(q, i)), nk = Array.from({ length: ch }, (_, j) => nrm(k, j));
      const cq = nq.map((x) => Math.max(x, eps)), ck = nk.map((x) => Math.max(x, eps));
      const cos: number[][] = [], A: number[][] = [];
      for (let i = 0; i < ch; ++i) {
        cos.push([]);
        for (let j = 0; j < ch; ++j) {
          let s = 0;
          for (let p = 0; p < P; ++p) s += q(p, i) * k(p, j);
          cos[i]!.push(s / (cq[i]! * ck[j]!));
        }
        const e = cos[i]!.map((x) => Math.exp(x * t[h]!));
        const z = e.reduce((a, b) => a + b, 0);
        A.push(e.map((x) => x / z));
      }
      const dY = (p: number, i: number) => dy[(n * P + p) * C + h * ch + i]!;
      for (let p = 0; p < P; ++p)
        for (let i = 0; i < ch; ++i) {
          let s = 0;
          for (let j = 0; j < ch; ++j) s += A[i]![j]! * v(p, j);
          y[(n * P + p) * C + h * ch + i] = s;
        }
      // backward
      const dC: number[][] = [];
      for (let i = 0; i < ch; ++i) {
        const dA = Array.from({ length: ch }, (_, j) => {
          let s = 0;
          for (let p = 0; p < P; ++p) s += dY(p, i) * v(p, j);
          return s;
        });
        const r = dA.reduce((acc, d, j) => acc + d * A[i]![j]!, 0);
        const dS = dA.map((d, j) => A[i]![j]! * (d - r));
        dt[h] += dS.reduce((acc, d, j) => acc + d * cos[i]![j]!, 0);
        dC.push(dS.map((d) => d * t[h]!));
      }
      for (let p = 0; p < P; ++p) {
        const base = (n * P + p) * C3;
        for (let j = 0; j < ch; ++j) {
          let s = 0;
          for (let i = 0; i < ch; ++i) s += A[i]![j]! * dY(p, i);
          dqkv[base + 2 * C + h * ch + j] = s;
        }
        for (let i = 0; i < ch; ++i) {
          let s = 0, r = 0;
          for (let j = 0; j < ch; ++j) {
            s += (dC[i]![j]! * k(p, j)) / (cq[i]! * ck[j]!);
            r += dC[i]![j]! * cos[i]![j]!;
          }
          dqkv[base + h * ch + i] = s - (nq[i]! >= eps ? (r * q(p, i)) / nq[i]! ** 2 : 0);
        }
        for (let j = 0; j < ch; ++j) {
          let s = 0, r = 0;
          for (let i = 0; i < ch; ++i) {
            s += (dC[i]![j]! * q(p, i)) / (cq[i]! * ck[j]!);
            r += dC[i]![j]! * cos[i]![j]!;
          }
          dqkv[base + C + h * ch + j] = s - (nk[j]! >= eps ? (r * k(p, j)) / nk[j]! ** 2 : 0);
        }
      }
    }
  return { y, dqkv, dt };
}

/** The official composition on [N, heads, c, HW] tensors. */
function unfused(qkv: Tensor, t: Tensor, heads: number): Tensor {
  const [n, h, w, c3] = qkv.shape as [number, number, number, number];
  const c = c3 / 3, ch = c / heads;
  const [q, k, v] = split(qkv, [c, c, c]);
  const toHeads = (x: Tensor) => permute(x.reshape([n, h * w, heads, ch]), [0, 2, 3, 1]);
  const attn = softmax(mul(matmul(l2Normalize(toHeads(q!)), l2Normalize(toHeads(k!)), { transB: true }), t.reshape([heads, 1, 1])));
  return permute(matmul(attn, toHeads(v!)), [0, 3, 1, 2]).reshape([n, h, w, c]);
}

describe('channel_attention', () => {
  it('forward matches float64 and the unfused composition', async () => {
    let seed = 1;
    for (const c of cases) {
      const qkv = randArray(c.N * c.H * c.W * 3 * c.C, seed++), t = randArray(c.heads, seed++, 0.5, 2);
      const dy = randArray(c.N * c.H * c.W * c.C, seed++);
      const xt = tensor(qkv, [c.N, c.H, c.W, 3 * c.C]), tt = tensor(t, [c.heads, 1, 1]);
      const y = channelAttention(xt, tt, c.heads);
      expect(y.shape).toEqual([c.N, c.H, c.W, c.C]);
      const ref = reference(c, qkv, t, dy);
      await expectClose(y, ref.y, 2e-6, name(c));
      await expectClose(y, (await unfused(xt, tt, c.heads).data()) as Float32Array, 2e-6, `${name(c)} vs unfused`);
    }
  });

  it('backward matches float64 and the unfused backward', async () => {
    let seed = 100;
    for (const c of cases) {
      const qkv = randArray(c.N * c.H * c.W * 3 * c.C, seed++), t = randArray(c.heads, seed++, 0.5, 2);
      const dy = randArray(c.N * c.H * c.W * c.C, seed++);
      const ref = reference(c, qkv, t, dy);
      const grads = async (f: (x: Tensor, tt: Tensor) => Tensor) => {
        const x = tensor(qkv, [c.N, c.H, c.W, 3 * c.C]), tt = tensor(t, [c.heads, 1, 1]);
        x.requiresGrad = true;
        tt.requiresGrad = true;
        backward(f(x, tt), tensor(dy, [c.N, c.H, c.W, c.C]));
        return { dx: (await x.grad!.data()) as Float32Array, dt: (await tt.grad!.data()) as Float32Array, x, tt };
      };
      const ours = await grads((x, tt) => channelAttention(x, tt, c.heads));
      expect(ours.tt.grad!.shape).toEqual([c.heads, 1, 1]);
      await expectClose(ours.x.grad!, ref.dqkv, 1e-5, `dqkv ${name(c)}`);
      await expectClose(ours.tt.grad!, ref.dt, 1e-5, `dt ${name(c)}`);
      const u = await grads((x, tt) => unfused(x, tt, c.heads));
      await expectClose(ours.x.grad!, u.dx, 1e-5, `dqkv vs unfused ${name(c)}`);
      await expectClose(ours.tt.grad!, u.dt, 1e-5, `dt vs unfused ${name(c)}`);
    }
  });

  it('gradients', async () => {
    await gradcheck((x, t) => channelAttention(x, t, 2), [
      { data: randArray(2 * 3 * 4 * 12, 201), shape: [2, 3, 4, 12] },
      { data: randArray(2, 202, 0.5, 2), shape: [2, 1, 1] },
    ]);
    await gradcheck((x, t) => channelAttention(x, t, 1), [
      { data: randArray(1 * 5 * 2 * 9, 203), shape: [1, 5, 2, 9] },
      { data: randArray(1, 204, 0.5, 2), shape: [1] },
    ]);
  });

  it('clamps tiny norms as F.normalize (a zero q channel gives zero cosines and no norm gradient)', async () => {
    const c: Case = { N: 1, H: 2, W: 3, C: 4, heads: 2 };
    const qkv = randArray(6 * 12, 301);
    for (let p = 0; p < 6; ++p) qkv[p * 12 + 1] = 0; // q channel 1 is zero everywhere
    const t = Float32Array.from([1.5, 0.7]), dy = randArray(6 * 4, 302);
    const ref = reference(c, qkv, t, dy);
    const x = tensor(qkv, [1, 2, 3, 12]), tt = tensor(t, [2]);
    x.requiresGrad = true;
    const [, cos, norms] = runOp('channel_attention', [x, tt], [2, 1e-12]);
    const cs = (await cos!.data()) as Float32Array;
    expect(Array.from(cs.slice(2, 4))).toEqual([0, 0]);
    expect((await norms!.data())[1]).toBe(0);
    const y = channelAttention(x, tt, 2);
    await expectClose(y, ref.y, 2e-6, 'y');
    backward(y, tensor(dy, [1, 2, 3, 4]));
    const dx = (await x.grad!.data()) as Float32Array;
    expect(dx.every(Number.isFinite)).toBe(true);
    // the zero channel's gradient is dy / eps-sized (as torch's); compare it and the rest separately
    const zero = (i: number) => i % 12 === 1;
    const pick = (a: ArrayLike<number>, z: boolean) => Array.from(a).filter((_, i) => zero(i) === z);
    for (const z of [true, false]) {
      const e = relErr(pick(dx, z), pick(ref.dqkv, z));
      expect(e, `dqkv (${z ? 'the zero channel' : 'other channels'}) relative error ${e}`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('is deterministic', async () => {
    const qkv = randArray(2 * 37 * 29 * 144, 5), t = randArray(3, 6, 0.5, 2), dy = randArray(2 * 37 * 29 * 48, 7);
    const run = async () => {
      const x = tensor(qkv, [2, 37, 29, 144]), tt = tensor(t, [3]);
      const [y, cos, norms] = runOp('channel_attention', [x, tt], [3, 1e-12]);
      const outs = [y!, ...runOp('channel_attention_backward', [tensor(dy, [2, 37, 29, 48]), x, tt, cos!, norms!], [3, 1e-12])];
      return Promise.all(outs.map(async (o) => Buffer.from(((await o.data()) as Float32Array).buffer)));
    };
    const [a, b] = [await run(), await run()];
    for (let i = 0; i < 3; ++i) expect(a[i]!.equals(b[i]!)).toBe(true);
  });

  it('validates shapes and attributes', () => {
    const x = tensor(randArray(2 * 4 * 4 * 12, 1), [2, 4, 4, 12]), t = tensor(Float32Array.from([1, 1]), [2]);
    expect(() => channelAttention(tensor(randArray(2 * 4 * 4 * 10, 1), [2, 4, 4, 10]), t, 2)).toThrowError(/qkv must have 3C channels/);
    expect(() => channelAttention(x, t, 3)).toThrowError(/heads must be >= 1 and divide C = 4, got 3/);
    expect(() => channelAttention(x, tensor(Float32Array.from([1, 1, 1]), [3]), 2)).toThrowError(/t must have 2 elements/);
    expect(() => channelAttention(x, t, 2, -1)).toThrowError(/eps must be >= 0/);
    const [, cos, norms] = runOp('channel_attention', [x, t], [2, 1e-12]);
    expect(() => runOp('channel_attention_backward', [tensor(randArray(2 * 4 * 4 * 3, 1), [2, 4, 4, 3]), x, t, cos!, norms!], [2, 1e-12])).toThrowError(
      /dy must have shape \[2, 4, 4, 4\]/,
    );
  });
});

describe('dwconvChannelAttention (MDTA qkv_dwconv + attention, the conv output recomputed in the backward)', () => {
  // [N, H, W, 3C], heads; the first with a bias
  const shapes: [number[], number, boolean][] = [[[2, 5, 7, 12], 2, true], [[1, 4, 3, 18], 3, false], [[1, 1, 1, 6], 1, true]];
  for (const [shape, heads, withBias] of shapes) {
    it(`${JSON.stringify(shape)} heads ${heads}${withBias ? ' with bias' : ''}: the separate ops' values, bit for bit`, async () => {
      const c3 = shape[3]!;
      const run = async (keepQkv: boolean) => {
        const x = tensor(randArray(shape.reduce((a, b) => a * b), 401), shape);
        const w = tensor(randArray(9 * c3, 402, -0.5, 0.5), [3, 3, 1, c3]);
        const b = withBias ? tensor(randArray(c3, 403), [c3]) : null;
        const t = tensor(randArray(heads, 404, 0.5, 2), [heads]);
        const ins = [x, w, ...(b ? [b] : []), t];
        for (const v of ins) v.requiresGrad = true;
        const y = dwconvChannelAttention(x, w, b, t, heads, { keepQkv });
        backward(y, tensor(randArray(y.size, 405), y.shape));
        return Promise.all([y, ...ins.map((v) => v.grad!)].map(async (v) => (await v.data()) as Float32Array));
      };
      const [kept, recomputed] = [await run(true), await run(false)];
      expect(recomputed.length).toBe(withBias ? 5 : 4);
      for (let i = 0; i < kept.length; ++i) expect(differing(recomputed[i]!, kept[i]!), `output ${i}`).toBe(0);
    });
  }

  it('keeps x, not the conv output, for the backward', async () => {
    const shape = [2, 16, 16, 48], c3 = 48;
    const live = async (keepQkv: boolean) => {
      const x = tensor(randArray(2 * 16 * 16 * 48, 411), shape);
      const w = tensor(randArray(9 * c3, 412), [3, 3, 1, c3]);
      const t = tensor(randArray(4, 413, 0.5, 2), [4]);
      x.requiresGrad = w.requiresGrad = true;
      await sync();
      const before = memoryStats().bytes;
      const y = dwconvChannelAttention(x, w, null, t, 4, { keepQkv });
      await sync();
      const held = memoryStats().bytes - before - 4 * y.size;
      backward(y, tensor(new Float32Array(y.size).fill(1), y.shape));
      for (const v of [x, w, t, y]) v.dispose();
      return held;
    };
    const qkvBytes = 4 * 2 * 16 * 16 * 48;
    const [kept, recomputed] = [await live(true), await live(false)];
    expect(kept - recomputed).toBe(qkvBytes);
  });

  it('gradients', async () => {
    await gradcheck((x, w, b, t) => dwconvChannelAttention(x, w, b, t, 2, { keepQkv: false }), [
      { data: randArray(2 * 3 * 4 * 12, 421), shape: [2, 3, 4, 12] },
      { data: randArray(9 * 12, 422, -0.5, 0.5), shape: [3, 3, 1, 12] },
      { data: randArray(12, 423), shape: [12] },
      { data: randArray(2, 424, 0.5, 2), shape: [2] },
    ]);
  });

  it('without gradients it is the two ops', async () => {
    const x = tensor(randArray(1 * 4 * 4 * 6, 431), [1, 4, 4, 6]), w = tensor(randArray(54, 432), [3, 3, 1, 6]);
    const t = tensor(Float32Array.from([1.3]), [1]);
    const a = await dwconvChannelAttention(x, w, null, t, 1, { keepQkv: false }).data();
    const b = await channelAttention(conv2d(x, w, null, { pad: 1, groups: 6 }), t, 1).data();
    expect(differing(a as Float32Array, b as Float32Array)).toBe(0);
  });
});
