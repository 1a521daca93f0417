// Fused block ops: scaled_add (a + b·s), conv1x1_add (r + (x·w + b)·s), conv1x1_gate (z1·z2 of z = x·w + b) and dwconv_gate (act(z1)·z2 of a depthwise conv z = conv + b, with act
// the identity — NAFNet's SimpleGate — or GELU — Restormer's GDFN), forward and backward
// against float64 references and against the unfused compositions, finite-difference gradient checks,
// determinism and shape validation. Channel counts cover the vector paths and their tails (odd C included).
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { runOp } from '../lib/ops/run.js';
import { add, mul } from '../lib/ops/elementwise.js';
import { gelu } from '../lib/ops/activation.js';
import { split } from '../lib/ops/shape.js';
import { conv2d, linear } from '../lib/ops/conv.js';
import { simpleGate, channelScale } from '../lib/ops/nafnet.js';
import { scaledAdd, dwconvGate, conv1x1Add, conv1x1Gate } from '../lib/ops/fused.js';
import { randArray, expectClose, gradcheck, gelu64, relErr, differing, withEmulation } from './helpers.js';

describe('scaled_add', () => {
  const shapes: [number[], number[]][] = [
    [[1, 5, 7, 3], [1, 1, 1, 3]],
    [[2, 3, 4, 16], [16]],
    [[1, 9, 11, 37], [1, 1, 1, 37]],
    [[3, 40], [40]],
  ];

  it('matches float64 and add(a, mul(b, s))', async () => {
    let seed = 1;
    for (const [shape, ss] of shapes) {
      const n = shape.reduce((p, q) => p * q, 1), C = shape[shape.length - 1]!;
      const a = randArray(n, seed++), b = randArray(n, seed++), s = randArray(C, seed++);
      const ref = new Float64Array(n);
      for (let i = 0; i < n; ++i) ref[i] = a[i]! + b[i]! * s[i % C]!;
      const y = scaledAdd(tensor(a, shape), tensor(b, shape), tensor(s, ss));
      expect(y.shape).toEqual(shape);
      await expectClose(y, ref, 1e-7, `scaled_add ${shape}`);
      const u = (await add(tensor(a, shape), mul(tensor(b, shape), tensor(s, ss))).data()) as Float32Array;
      await expectClose(y, u, 1e-7, `scaled_add vs unfused ${shape}`);
    }
  });

  it('backward matches float64 (db = dy·s, ds = Σ dy·b)', async () => {
    let seed = 50;
    for (const [shape, ss] of shapes) {
      const n = shape.reduce((p, q) => p * q, 1), C = shape[shape.length - 1]!;
      const dy = randArray(n, seed++), b = randArray(n, seed++), s = randArray(C, seed++);
      const rdb = new Float64Array(n), rds = new Float64Array(C);
      for (let i = 0; i < n; ++i) {
        rdb[i] = dy[i]! * s[i % C]!;
        rds[i % C] += dy[i]! * b[i]!;
      }
      const [db, ds] = runOp('scaled_add_backward', [tensor(dy, shape), tensor(b, shape), tensor(s, ss)]);
      expect(db!.shape).toEqual(shape);
      expect(ds!.shape).toEqual(ss);
      await expectClose(db!, rdb, 1e-7, 'db');
      await expectClose(ds!, rds, 1e-6, 'ds');
    }
  });

  it('gradients', async () => {
    await gradcheck(scaledAdd, [
      { data: randArray(1 * 5 * 7 * 3, 11), shape: [1, 5, 7, 3] },
      { data: randArray(1 * 5 * 7 * 3, 12), shape: [1, 5, 7, 3] },
      { data: randArray(3, 13), shape: [1, 1, 1, 3] },
    ]);
    await gradcheck(scaledAdd, [
      { data: randArray(2 * 3 * 2 * 20, 14), shape: [2, 3, 2, 20] },
      { data: randArray(2 * 3 * 2 * 20, 15), shape: [2, 3, 2, 20] },
      { data: randArray(20, 16), shape: [20] },
    ]);
  });

  it('validates shapes', () => {
    const a = tensor(randArray(24, 1), [2, 3, 4]);
    expect(() => scaledAdd(a, a, tensor(randArray(3, 1), [3]))).toThrowError(/s must have 4 elements/);
    expect(() => scaledAdd(a, tensor(randArray(24, 1), [2, 4, 3]), tensor(randArray(4, 1), [4]))).toThrowError(/shape/);
  });
});

interface DgCase {
  N: number; H: number; W: number; C: number; K: number; P: number;
  /** GELU on the first half (act 1). */
  gelu?: boolean;
}

/** z = depthwise conv(x, w) + b over 2C channels, then y = act(z[:C]) * z[C:]; also returns z. */
function dgRef(c: DgCase, x: Float32Array, w: Float32Array, b: Float32Array | null) {
  const { N, H, W, C, K, P } = c;
  const C2 = 2 * C, Ho = H + 2 * P - K + 1, Wo = W + 2 * P - K + 1;
  const z = new Float64Array(N * Ho * Wo * C2);
  for (let n = 0; n < N; ++n)
    for (let oh = 0; oh < Ho; ++oh)
      for (let ow = 0; ow < Wo; ++ow)
        for (let ch = 0; ch < C2; ++ch) {
          let s = b ? b[ch]! : 0;
          for (let kh = 0; kh < K; ++kh) {
            const ih = oh - P + kh;
            if (ih < 0 || ih >= H) continue;
            for (let kw = 0; kw < K; ++kw) {
              const iw = ow - P + kw;
              if (iw < 0 || iw >= W) continue;
              s += x[((n * H + ih) * W + iw) * C2 + ch]! * w[(kh * K + kw) * C2 + ch]!;
            }
          }
          z[((n * Ho + oh) * Wo + ow) * C2 + ch] = s;
        }
  const y = new Float64Array(N * Ho * Wo * C);
  const act = (v: number) => (c.gelu ? gelu64(v).y : v);
  for (let p = 0; p < N * Ho * Wo; ++p) for (let j = 0; j < C; ++j) y[p * C + j] = act(z[p * C2 + j]!) * z[p * C2 + C + j]!;
  return { z, y, Ho, Wo };
}

/** dx, dw, db of Σ dy·y in float64. */
function dgBackRef(c: DgCase, dy: Float32Array, x: Float32Array, w: Float32Array, b: Float32Array | null) {
  const { N, H, W, C, K, P } = c;
  const C2 = 2 * C;
  const { z, Ho, Wo } = dgRef(c, x, w, b);
  const dx = new Float64Array(x.length), dw = new Float64Array(w.length), db = new Float64Array(C2);
  for (let n = 0; n < N; ++n)
    for (let oh = 0; oh < Ho; ++oh)
      for (let ow = 0; ow < Wo; ++ow) {
        const p = (n * Ho + oh) * Wo + ow;
        for (let ch = 0; ch < C2; ++ch) {
          const j = ch % C, z1 = z[p * C2 + j]!, z2 = z[p * C2 + C + j]!, d = dy[p * C + j]!;
          const g = c.gelu ? gelu64(z1) : { y: z1, dy: 1 };
          const dz = ch < C ? d * z2 * g.dy : d * g.y;
          db[ch] += dz;
          for (let kh = 0; kh < K; ++kh) {
            const ih = oh - P + kh;
            if (ih < 0 || ih >= H) continue;
            for (let kw = 0; kw < K; ++kw) {
              const iw = ow - P + kw;
              if (iw < 0 || iw >= W) continue;
              const xi = ((n * H + ih) * W + iw) * C2 + ch, wi = (kh * K + kw) * C2 + ch;
              dx[xi] += dz * w[wi]!;
              dw[wi] += dz * x[xi]!;
            }
          }
        }
      }
  return { dx, dw, db };
}

const dgCases: DgCase[] = [
  { N: 1, H: 5, W: 7, C: 3, K: 3, P: 1 },
  { N: 2, H: 7, W: 5, C: 3, K: 3, P: 0 },
  { N: 1, H: 6, W: 9, C: 8, K: 3, P: 1 },
  { N: 2, H: 9, W: 6, C: 20, K: 3, P: 1 },
  { N: 1, H: 11, W: 13, C: 24, K: 3, P: 1 },
  { N: 1, H: 7, W: 8, C: 5, K: 5, P: 2 },
  { N: 1, H: 6, W: 5, C: 17, K: 1, P: 0 },
  { N: 1, H: 4, W: 3, C: 16, K: 3, P: 2 },
  { N: 1, H: 40, W: 33, C: 48, K: 3, P: 1 },
  // GELU gate (Restormer's GDFN: odd hidden widths such as 127)
  { N: 1, H: 5, W: 7, C: 3, K: 3, P: 1, gelu: true },
  { N: 2, H: 9, W: 6, C: 20, K: 3, P: 1, gelu: true },
  { N: 1, H: 8, W: 11, C: 127, K: 3, P: 1, gelu: true },
  { N: 1, H: 7, W: 8, C: 5, K: 5, P: 2, gelu: true },
  { N: 2, H: 7, W: 5, C: 3, K: 3, P: 0, gelu: true },
];
const dgName = (c: DgCase) => `N${c.N} ${c.H}x${c.W}x${2 * c.C} k${c.K} p${c.P}${c.gelu ? ' gelu' : ''}`;
const dgAct = (c: DgCase) => (c.gelu ? 'gelu' : 'none');
/** The unfused forward: act(z1) · z2 of z = conv2d(x, w, b, {groups: 2C}). */
function dgUnfused(c: DgCase, xt: Tensor, wt: Tensor, bt: Tensor | null): Tensor {
  const z = conv2d(xt, wt, bt, { groups: 2 * c.C, pad: c.P });
  if (!c.gelu) return simpleGate(z);
  const [z1, z2] = split(z, [c.C, c.C]);
  return mul(gelu(z1!), z2!);
}

describe('dwconv_gate', () => {
  it('matches float64 and the unfused act(z1)·z2 of conv2d(x, w, b, {groups: 2C})', async () => {
    let seed = 200;
    for (const c of dgCases) {
      const C2 = 2 * c.C;
      const x = randArray(c.N * c.H * c.W * C2, seed++), w = randArray(c.K * c.K * C2, seed++), b = randArray(C2, seed++);
      for (const withBias of [true, false]) {
        const xt = tensor(x, [c.N, c.H, c.W, C2]), wt = tensor(w, [c.K, c.K, 1, C2]);
        const bt = withBias ? tensor(b, [C2]) : null;
        const y = dwconvGate(xt, wt, bt, c.P, dgAct(c));
        const { y: ref, Ho, Wo } = dgRef(c, x, w, withBias ? b : null);
        expect(y.shape).toEqual([c.N, Ho, Wo, c.C]);
        await expectClose(y, ref, 1e-6, dgName(c));
        const u = (await dgUnfused(c, xt, wt, bt).data()) as Float32Array;
        await expectClose(y, u, 1e-6, `${dgName(c)} vs unfused`);
      }
    }
  });

  it('backward matches float64 and the unfused backward', async () => {
    let seed = 300;
    for (const c of dgCases) {
      const C2 = 2 * c.C;
      const x = randArray(c.N * c.H * c.W * C2, seed++), w = randArray(c.K * c.K * C2, seed++), b = randArray(C2, seed++);
      const Ho = c.H + 2 * c.P - c.K + 1, Wo = c.W + 2 * c.P - c.K + 1;
      const dy = randArray(c.N * Ho * Wo * c.C, seed++);
      for (const withBias of [true, false]) {
        const bb = withBias ? b : null;
        const ref = dgBackRef(c, dy, x, w, bb);
        const ins = [tensor(dy, [c.N, Ho, Wo, c.C]), tensor(x, [c.N, c.H, c.W, C2]), tensor(w, [c.K, c.K, 1, C2])];
        if (bb) ins.push(tensor(bb, [C2]));
        const [dx, dw, db] = runOp('dwconv_gate_backward', ins, [c.P, c.gelu ? 1 : 0]);
        expect(dx!.shape).toEqual([c.N, c.H, c.W, C2]);
        expect(dw!.shape).toEqual([c.K, c.K, 1, C2]);
        expect(db!.shape).toEqual([C2]);
        await expectClose(dx!, ref.dx, 1e-6, `dx ${dgName(c)}`);
        await expectClose(dw!, ref.dw, 1e-6, `dw ${dgName(c)}`);
        await expectClose(db!, ref.db, 1e-6, `db ${dgName(c)}`);
        // unfused: dz from the gate's backward on z, then conv2d_backward
        const z = runOp('conv2d', bb ? [ins[1]!, ins[2]!, ins[3]!] : [ins[1]!, ins[2]!], [1, c.P, C2])[0]!;
        let dz: Tensor;
        if (!c.gelu) {
          dz = runOp('simple_gate_backward', [ins[0]!, z])[0]!;
        } else {
          const [z1, z2] = runOp('split', [z], [c.C, c.C]);
          const [a] = runOp('gelu', [z1!]);
          const dz1 = runOp('gelu_backward', [runOp('mul', [ins[0]!, z2!])[0]!, z1!])[0]!;
          dz = runOp('concat', [dz1, runOp('mul', [ins[0]!, a!])[0]!])[0]!;
        }
        const [ux, uw, ub] = runOp('conv2d_backward', [dz, ins[1]!, ins[2]!], [1, c.P, C2]);
        await expectClose(dx!, (await ux!.data()) as Float32Array, 1e-6, `dx vs unfused ${dgName(c)}`);
        await expectClose(dw!, (await uw!.data()) as Float32Array, 1e-6, `dw vs unfused ${dgName(c)}`);
        await expectClose(db!, (await ub!.data()) as Float32Array, 1e-6, `db vs unfused ${dgName(c)}`);
      }
    }
  });

  it("the CUDA one-pass backward's per-thread code (3x3, padding 1), run on the host, matches float64", async () => {
    // IRCONSTYLE_EMULATE=dwgate_bwd runs every work item of the CUDA kernel slide3_gate_bwd_k through its own code
    // (native/src/ops/dwgate_slide.h) on the CPU: row segments of 8 with tails, image borders, both activations
    const cases: DgCase[] = [
      ...dgCases.filter((c) => c.K === 3 && c.P === 1),
      { N: 2, H: 1, W: 1, C: 4, K: 3, P: 1 },
      { N: 1, H: 3, W: 17, C: 2, K: 3, P: 1, gelu: true },
      { N: 1, H: 9, W: 16, C: 7, K: 3, P: 1 },
    ];
    let seed = 880;
    for (const c of cases) {
      const C2 = 2 * c.C;
      const x = randArray(c.N * c.H * c.W * C2, seed++), w = randArray(9 * C2, seed++), b = randArray(C2, seed++);
      const dy = randArray(c.N * c.H * c.W * c.C, seed++);
      const ref = dgBackRef(c, dy, x, w, b);
      const ins = [tensor(dy, [c.N, c.H, c.W, c.C]), tensor(x, [c.N, c.H, c.W, C2]), tensor(w, [3, 3, 1, C2]), tensor(b, [C2])];
      const outs = await withEmulation('dwgate_bwd', async () => {
        const o = runOp('dwconv_gate_backward', ins, [1, c.gelu ? 1 : 0]);
        await o[0]!.data(); // the kernel ran (the env is read when it runs)
        return o;
      });
      for (const [i, r] of [ref.dx, ref.dw, ref.db].entries()) await expectClose(outs[i]!, r, 1e-6, `emulated grad ${i} ${dgName(c)}`);
      // and with its items rows first (IRCONSTYLE_SLIDE=batch)
      process.env.IRCONSTYLE_SLIDE = 'batch';
      try {
        const rows = await withEmulation('dwgate_bwd', async () => {
          const o = runOp('dwconv_gate_backward', ins, [1, c.gelu ? 1 : 0]);
          await Promise.all(o.map((t) => t.data()));
          return o;
        });
        for (const [i, r] of [ref.dx, ref.dw, ref.db].entries()) await expectClose(rows[i]!, r, 1e-6, `emulated rows first, grad ${i} ${dgName(c)}`);
      } finally {
        delete process.env.IRCONSTYLE_SLIDE;
      }
      // and the switch is real: the CPU's own path gives (slightly) different sums on the larger cases
      if (c.H * c.W >= 100) {
        const own = runOp('dwconv_gate_backward', ins, [1, c.gelu ? 1 : 0]);
        const [a, e] = [await own[1]!.data(), await outs[1]!.data()];
        expect(a.some((v, i) => v !== e[i]), `emulation ran for ${dgName(c)}`).toBe(true);
      }
    }
  });

  it("the CUDA sliding kernels' batched work items (IRCONSTYLE_SLIDE=batch), run on the host, match float64", async () => {
    // IRCONSTYLE_EMULATE=slide runs every work item of the sliding 3x3 kernels with the segment's loads first
    // (native/src/ops/slide3_batch.h) on the CPU: dwconv_gate forward, its two-pass backward (dz, then the pass over
    // dz), and conv2d's depthwise 3x3 forward and backward — segments of 8 with tails, one-pixel images, borders
    const cases: DgCase[] = [
      { N: 1, H: 1, W: 1, C: 1, K: 3, P: 1 },
      { N: 2, H: 3, W: 8, C: 3, K: 3, P: 1 },
      { N: 1, H: 5, W: 9, C: 5, K: 3, P: 1, gelu: true },
      { N: 2, H: 4, W: 17, C: 2, K: 3, P: 1 },
      { N: 1, H: 2, W: 7, C: 4, K: 3, P: 1, gelu: true },
      { N: 1, H: 12, W: 23, C: 6, K: 3, P: 1 },
      { N: 2, H: 3, W: 10, C: 70, K: 3, P: 1, gelu: true },  // > 64 channels per item: chunks of 32, a partial one
    ];
    let seed = 940;
    for (const c of cases) {
      const C2 = 2 * c.C, px = c.N * c.H * c.W;
      const x = randArray(px * C2, seed++), w = randArray(9 * C2, seed++), b = randArray(C2, seed++);
      const dy = randArray(px * c.C, seed++), dz = randArray(px * C2, seed++);
      const ref = dgRef(c, x, w, b), back = dgBackRef(c, dy, x, w, b);
      // the plain depthwise conv's backward given dz: dx, dw, db in float64
      const pd = { dx: new Float64Array(x.length), dw: new Float64Array(w.length), db: new Float64Array(C2) };
      for (let n = 0; n < c.N; ++n)
        for (let oh = 0; oh < c.H; ++oh)
          for (let ow = 0; ow < c.W; ++ow)
            for (let ch = 0; ch < C2; ++ch) {
              const d = dz[((n * c.H + oh) * c.W + ow) * C2 + ch]!;
              pd.db[ch] += d;
              for (let kh = 0; kh < 3; ++kh)
                for (let kw = 0; kw < 3; ++kw) {
                  const ih = oh - 1 + kh, iw = ow - 1 + kw;
                  if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                  const xi = ((n * c.H + ih) * c.W + iw) * C2 + ch, wi = (kh * 3 + kw) * C2 + ch;
                  pd.dx[xi] += d * w[wi]!;
                  pd.dw[wi] += d * x[xi]!;
                }
            }
      const xs = [c.N, c.H, c.W, C2];
      const [tx, tw, tb] = [tensor(x, xs), tensor(w, [3, 3, 1, C2]), tensor(b, [C2])];
      const act = c.gelu ? 1 : 0;
      const outs = await withEmulation('slide', async () => {
        const o = {
          y: runOp('dwconv_gate', [tx, tw, tb], [1, act]),
          gate: runOp('dwconv_gate_backward', [tensor(dy, [c.N, c.H, c.W, c.C]), tx, tw, tb], [1, act]),
          z: runOp('conv2d', [tx, tw, tb], [1, 1, C2]),
          conv: runOp('conv2d_backward', [tensor(dz, xs), tx, tw], [1, 1, C2]),
        };
        await Promise.all(Object.values(o).flat().map((t) => t.data())); // the kernels ran (the env is read then)
        return o;
      });
      const name = dgName(c);
      await expectClose(outs.y[0]!, ref.y, 1e-6, `emulated dwconv_gate ${name}`);
      for (const [i, r] of [back.dx, back.dw, back.db].entries()) await expectClose(outs.gate[i]!, r, 1e-6, `emulated gate grad ${i} ${name}`);
      await expectClose(outs.z[0]!, ref.z, 1e-6, `emulated depthwise conv ${name}`);
      for (const [i, r] of [pd.dx, pd.dw, pd.db].entries()) await expectClose(outs.conv[i]!, r, 1e-6, `emulated conv grad ${i} ${name}`);
      if (c.H * c.W >= 100) {  // and the switch is real: the CPU's own backward sums dw in another order
        const own = runOp('conv2d_backward', [tensor(dz, xs), tx, tw], [1, 1, C2]);
        expect(differing(await own[1]!.data(), await outs.conv[1]!.data()), `emulation ran for ${name}`).toBeGreaterThan(0);
      }
    }
  });

  it('gradients', async () => {
    const c = { N: 1, H: 5, W: 7, C: 3 };
    const x = { data: randArray(c.N * c.H * c.W * 6, 401), shape: [c.N, c.H, c.W, 6] };
    const w = { data: randArray(9 * 6, 402), shape: [3, 3, 1, 6] };
    await gradcheck((xx, ww, bb) => dwconvGate(xx, ww, bb!, 1), [x, w, { data: randArray(6, 403), shape: [6] }]);
    await gradcheck((xx, ww) => dwconvGate(xx, ww, null, 1), [x, w]);
    await gradcheck((xx, ww, bb) => dwconvGate(xx, ww, bb!, 0), [
      { data: randArray(2 * 4 * 5 * 20, 404), shape: [2, 4, 5, 20] },
      { data: randArray(9 * 20, 405), shape: [3, 3, 1, 20] },
      { data: randArray(20, 406), shape: [20] },
    ]);
    // GELU gate: 3x3 padding 1 (the GDFN case, odd half width) and a 5x5 kernel
    await gradcheck((xx, ww, bb) => dwconvGate(xx, ww, bb!, 1, 'gelu'), [x, w, { data: randArray(6, 407), shape: [6] }]);
    await gradcheck((xx, ww) => dwconvGate(xx, ww, null, 2, 'gelu'), [
      { data: randArray(1 * 6 * 5 * 10, 408), shape: [1, 6, 5, 10] },
      { data: randArray(25 * 10, 409), shape: [5, 5, 1, 10] },
    ]);
  });

  it('is deterministic', async () => {
    const x = randArray(2 * 37 * 29 * 64, 5), w = randArray(9 * 64, 6), b = randArray(64, 7), dy = randArray(2 * 37 * 29 * 32, 8);
    const fwd = async () => (await dwconvGate(tensor(x, [2, 37, 29, 64]), tensor(w, [3, 3, 1, 64]), tensor(b, [64]), 1).data()) as Float32Array;
    const bwd = async () => {
      const outs = runOp('dwconv_gate_backward', [tensor(dy, [2, 37, 29, 32]), tensor(x, [2, 37, 29, 64]), tensor(w, [3, 3, 1, 64]), tensor(b, [64])], [1]);
      return Promise.all(outs.map(async (t) => Buffer.from(((await t.data()) as Float32Array).buffer)));
    };
    expect(Buffer.from((await fwd()).buffer).equals(Buffer.from((await fwd()).buffer))).toBe(true);
    const [a, b2] = [await bwd(), await bwd()];
    for (let i = 0; i < 3; ++i) expect(a[i]!.equals(b2[i]!)).toBe(true);
  });

  it('validates shapes and attributes', () => {
    const x = tensor(randArray(2 * 8 * 8 * 16, 1), [2, 8, 8, 16]);
    const w = tensor(randArray(9 * 16, 1), [3, 3, 1, 16]);
    expect(() => dwconvGate(tensor(randArray(2 * 8 * 8 * 15, 1), [2, 8, 8, 15]), w, null, 1)).toThrowError(/even channel count/);
    expect(() => dwconvGate(x, tensor(randArray(9 * 8, 1), [3, 3, 1, 8]), null, 1)).toThrowError(/w must have shape \[KH, KW, 1, 16\]/);
    expect(() => dwconvGate(x, w, tensor(randArray(8, 1), [8]), 1)).toThrowError(/b must have shape \[16\]/);
    expect(() => dwconvGate(x, w, null, -1)).toThrowError(/pad must be >= 0/);
    expect(() => runOp('dwconv_gate', [x, w], [1, 2])).toThrowError(/act must be 0 \(product\) or 1 \(GELU on the first half\), got 2/);
    expect(() => dwconvGate(tensor(randArray(16, 1), [1, 1, 1, 16]), w, null, 0)).toThrowError(/does not fit/);
  });
});

describe('conv1x1_add', () => {
  interface PwCase {
    shape: number[]; Co: number; bias: boolean; scale: boolean;
    /** a per-sample input scale (NAFBlock's SCA weights) */
    inScale?: boolean;
  }
  const pwCases: PwCase[] = [
    { shape: [2, 5, 7, 6], Co: 4, bias: true, scale: true },
    { shape: [3, 5, 7, 6], Co: 4, bias: true, scale: true, inScale: true },
    { shape: [2, 9, 11, 48], Co: 48, bias: true, scale: true, inScale: true },
    { shape: [1, 9, 11, 48], Co: 48, bias: true, scale: true },
    { shape: [1, 3, 4, 8], Co: 13, bias: true, scale: false },
    { shape: [2, 4, 3, 5], Co: 5, bias: false, scale: false },
    { shape: [7, 3], Co: 2, bias: true, scale: true },
  ];
  const pwName = (c: PwCase) => `[${c.shape}] -> ${c.Co}${c.bias ? ' +b' : ''}${c.scale ? ' ·s' : ''}${c.inScale ? ' x·a' : ''}`;

  /** y = r + ((x a) w + b) s and the gradients of Σ y ⊙ dy, in float64. */
  function pwRef(c: PwCase, x: Float32Array, w: Float32Array, r: Float32Array, b: Float32Array, s: Float32Array, a: Float32Array, dy: Float32Array) {
    const Ci = c.shape[c.shape.length - 1]!, Co = c.Co, rows = x.length / Ci, perSample = rows / c.shape[0]!;
    const y = new Float64Array(rows * Co), dx = new Float64Array(x.length), dw = new Float64Array(w.length);
    const db = new Float64Array(Co), ds = new Float64Array(Co), da = new Float64Array(c.shape[0]! * Ci);
    for (let p = 0; p < rows; ++p) {
      const n = Math.floor(p / perSample);
      const av = (k: number) => (c.inScale ? a[n * Ci + k]! : 1);
      for (let o = 0; o < Co; ++o) {
        let z = c.bias ? b[o]! : 0;
        for (let k = 0; k < Ci; ++k) z += x[p * Ci + k]! * av(k) * w[k * Co + o]!;
        const sc = c.scale ? s[o]! : 1, d = dy[p * Co + o]!;
        y[p * Co + o] = r[p * Co + o]! + z * sc;
        ds[o] += d * z;
        db[o] += d * sc;
        for (let k = 0; k < Ci; ++k) {
          dx[p * Ci + k] += d * sc * w[k * Co + o]! * av(k);
          dw[k * Co + o] += d * sc * x[p * Ci + k]! * av(k);
          da[n * Ci + k] += d * sc * w[k * Co + o]! * x[p * Ci + k]!;
        }
      }
    }
    return { y, dx, dw, db, ds, da };
  }

  it('forward and backward match float64 and the unfused conv2d + scaled add', async () => {
    let seed = 500;
    for (const c of pwCases) {
      const Ci = c.shape[c.shape.length - 1]!, rows = c.shape.reduce((a, b) => a * b, 1) / Ci;
      const ys = [...c.shape.slice(0, -1), c.Co];
      const x = randArray(rows * Ci, seed++), w = randArray(Ci * c.Co, seed++), r = randArray(rows * c.Co, seed++);
      const b = randArray(c.Co, seed++), s = randArray(c.Co, seed++), dy = randArray(rows * c.Co, seed++);
      const a = randArray(c.shape[0]! * Ci, seed++);
      const ref = pwRef(c, x, w, r, b, s, a, dy);
      const xt = tensor(x, c.shape), wt = tensor(w, [1, 1, Ci, c.Co]), rt = tensor(r, ys);
      const bt = c.bias ? tensor(b, [c.Co]) : null, st = c.scale ? tensor(s, [1, 1, 1, c.Co]) : null;
      const at = c.inScale ? tensor(a, [c.shape[0]!, 1, 1, Ci]) : null;
      const y = conv1x1Add(xt, wt, rt, bt, st, at);
      expect(y.shape).toEqual(ys);
      await expectClose(y, ref.y, 1e-6, pwName(c));
      if (c.shape.length === 4) {
        const z = conv2d(at ? channelScale(xt, at) : xt, wt, bt);
        const u = st ? scaledAdd(rt, z, st) : add(rt, z);
        await expectClose(y, (await u.data()) as Float32Array, 1e-6, `${pwName(c)} vs unfused`);
      }
      const outs = runOp('conv1x1_add_backward', [tensor(dy, ys), xt, wt, ...(bt ? [bt] : []), ...(st ? [st] : []), ...(at ? [at] : [])]);
      expect(outs.length).toBe(2 + (c.bias ? 1 : 0) + (c.scale ? 1 : 0) + (c.inScale ? 1 : 0));
      await expectClose(outs[0]!, ref.dx, 1e-6, `dx ${pwName(c)}`);
      await expectClose(outs[1]!, ref.dw, 1e-6, `dw ${pwName(c)}`);
      if (c.bias) await expectClose(outs[2]!, ref.db, 1e-6, `db ${pwName(c)}`);
      if (c.scale) {
        expect(outs[3]!.shape).toEqual([1, 1, 1, c.Co]);
        await expectClose(outs[3]!, ref.ds, 1e-6, `ds ${pwName(c)}`);
      }
      if (c.inScale) {
        expect(outs[4]!.shape).toEqual([c.shape[0]!, 1, 1, Ci]);
        await expectClose(outs[4]!, ref.da, 1e-6, `da ${pwName(c)}`);
      }
    }
  });

  it("takes a Linear's weight [Co, Ci] too: r + x·wᵀ + b, against linear + add, forward and backward", async () => {
    let seed = 700;
    for (const [shape, Co, bias] of [[[2, 5, 7, 6], 4, true], [[3, 17], 9, false], [[1, 4, 4, 64], 32, true]] as const) {
      const Ci = shape[shape.length - 1]!, rows = shape.reduce((a, b) => a * b, 1) / Ci, ys = [...shape.slice(0, -1), Co];
      const xt = tensor(randArray(rows * Ci, seed++), [...shape]), wt = tensor(randArray(Co * Ci, seed++), [Co, Ci]);
      const rt = tensor(randArray(rows * Co, seed++), ys), bt = bias ? tensor(randArray(Co, seed++), [Co]) : null;
      const dy = tensor(randArray(rows * Co, seed++), ys);
      const y = conv1x1Add(xt, wt, rt, bt, null);
      await expectClose(y, (await add(rt, linear(xt, wt, bt)).data()) as Float32Array, 1e-6, `linear layout [${shape}]`);
      const outs = runOp('conv1x1_add_backward', [dy, xt, wt, ...(bt ? [bt] : [])]);
      const ref = runOp('linear_backward', [dy, xt, wt]);
      expect(outs[1]!.shape).toEqual([Co, Ci]);
      for (const i of bias ? [0, 1, 2] : [0, 1]) await expectClose(outs[i]!, (await ref[i]!.data()) as Float32Array, 1e-6, `grad ${i} [${shape}]`);
    }
    await gradcheck((xx, ww, rr, bb) => conv1x1Add(xx, ww, rr, bb!, null), [
      { data: randArray(2 * 3 * 5, 710), shape: [2, 3, 5] },
      { data: randArray(4 * 5, 711), shape: [4, 5] },
      { data: randArray(2 * 3 * 4, 712), shape: [2, 3, 4] },
      { data: randArray(4, 713), shape: [4] },
    ]);
    const x = tensor(randArray(12, 1), [2, 6]), w = tensor(randArray(18, 2), [3, 6]), r = tensor(randArray(6, 3), [2, 3]);
    const b = tensor(randArray(3, 4), [3]);
    expect(() => runOp('conv1x1_add', [x, w, r, b, b])).toThrowError(/s and a need the conv weight layout \[1, 1, Ci, Co\]/);
    expect(() => runOp('conv1x1_add', [x, tensor(randArray(18, 2), [6, 3]), r])).toThrowError(/w must have shape \[1, 1, 6, Co\] .* or \[Co, 6\]/);
  });

  it('an empty batch with the per-sample input scale: empty outputs, zero parameter gradients (no division by zero)', async () => {
    const x = tensor(new Float32Array(0), [0, 3, 4, 6]), w = tensor(randArray(30, 620), [1, 1, 6, 5]);
    const r = tensor(new Float32Array(0), [0, 3, 4, 5]), b = tensor(randArray(5, 621), [5]);
    const s = tensor(randArray(5, 622), [1, 1, 1, 5]), a = tensor(new Float32Array(0), [0, 1, 1, 6]);
    expect(conv1x1Add(x, w, r, b, s, a).shape).toEqual([0, 3, 4, 5]);
    const [dx, dw, db, ds, da] = runOp('conv1x1_add_backward', [r, x, w, b, s, a]);
    expect([dx!.shape, da!.shape]).toEqual([[0, 3, 4, 6], [0, 1, 1, 6]]);
    for (const g of [dw!, db!, ds!]) expect([...((await g.data()) as Float32Array)].every((v) => v === 0)).toBe(true);
  });

  it('gradients', async () => {
    const x = { data: randArray(2 * 3 * 4 * 6, 601), shape: [2, 3, 4, 6] };
    const w = { data: randArray(6 * 5, 602), shape: [1, 1, 6, 5] };
    const r = { data: randArray(2 * 3 * 4 * 5, 603), shape: [2, 3, 4, 5] };
    const b = { data: randArray(5, 604), shape: [5] };
    await gradcheck((xx, ww, rr, bb, ss) => conv1x1Add(xx, ww, rr, bb!, ss!), [x, w, r, b, { data: randArray(5, 605), shape: [1, 1, 1, 5] }]);
    await gradcheck((xx, ww, rr, bb, ss, aa) => conv1x1Add(xx, ww, rr, bb!, ss!, aa!), [
      x, w, r, b, { data: randArray(5, 606), shape: [1, 1, 1, 5] }, { data: randArray(12, 607), shape: [2, 1, 1, 6] },
    ]);
    await gradcheck((xx, ww, rr, bb) => conv1x1Add(xx, ww, rr, bb!, null), [x, w, r, b]);
    await gradcheck((xx, ww, rr) => conv1x1Add(xx, ww, rr, null, null), [x, w, r]);
  });

  it('validates shapes', () => {
    const x = tensor(randArray(2 * 4 * 4 * 6, 1), [2, 4, 4, 6]), w = tensor(randArray(6 * 3, 1), [1, 1, 6, 3]);
    const r = tensor(randArray(2 * 4 * 4 * 3, 1), [2, 4, 4, 3]);
    expect(() => conv1x1Add(x, tensor(randArray(9 * 6 * 3, 1), [3, 3, 6, 3]), r, null, null)).toThrowError(/w must have shape \[1, 1, 6, Co\]/);
    expect(() => conv1x1Add(x, w, tensor(randArray(2 * 4 * 4 * 4, 1), [2, 4, 4, 4]), null, null)).toThrowError(/r must have shape \[2, 4, 4, 3\]/);
    expect(() => conv1x1Add(x, w, r, tensor(randArray(4, 1), [4]), null)).toThrowError(/b must have shape \[3\]/);
    expect(() => conv1x1Add(x, w, r, tensor(randArray(3, 1), [3]), tensor(randArray(2, 1), [2]))).toThrowError(/s must have 3 elements/);
    const b3 = tensor(randArray(3, 1), [3]);
    expect(() => conv1x1Add(x, w, r, b3, b3, tensor(randArray(6, 1), [1, 1, 1, 6]))).toThrowError(/a must have N x Ci = 2 x 6 elements/);
  });
});

describe('conv1x1_gate', () => {
  // [x shape, C (half of the conv's output channels), bias]; the last case crosses the CPU's row chunks of z.
  const gateCases: [number[], number, boolean][] = [
    [[2, 5, 7, 6], 3, true],
    [[1, 9, 11, 48], 48, true],
    [[2, 4, 3, 5], 8, false],
    [[7, 3], 1, true],
    [[3, 50, 2], 4096, true],
  ];
  const gName = ([shape, C, bias]: [number[], number, boolean]) => `[${shape}] -> 2·${C}${bias ? ' +b' : ''}`;

  /** y = z1·z2 of z = x·w + b and the gradients of Σ y ⊙ dy, in float64. */
  /** A case's random x, w, b (with bias), dy from consecutive seeds; `next`: the seed after them. */
  function gateData([shape, C, bias]: [number[], number, boolean], seed: number) {
    const Ci = shape[shape.length - 1]!, rows = shape.reduce((a, b) => a * b, 1) / Ci, ys = [...shape.slice(0, -1), C];
    const x = randArray(rows * Ci, seed++), w = randArray(Ci * 2 * C, seed++), b = bias ? randArray(2 * C, seed++) : null;
    return { Ci, rows, ys, x, w, b, dy: randArray(rows * C, seed++), next: seed };
  }

  function gateRef(Ci: number, C: number, x: Float32Array, w: Float32Array, b: Float32Array | null, dy: Float32Array) {
    const rows = x.length / Ci, C2 = 2 * C;
    const y = new Float64Array(rows * C), dx = new Float64Array(x.length), dw = new Float64Array(w.length), db = new Float64Array(C2);
    const z = new Float64Array(C2);
    for (let p = 0; p < rows; ++p) {
      for (let o = 0; o < C2; ++o) {
        let t = b ? b[o]! : 0;
        for (let k = 0; k < Ci; ++k) t += x[p * Ci + k]! * w[k * C2 + o]!;
        z[o] = t;
      }
      for (let c = 0; c < C; ++c) {
        const d = dy[p * C + c]!;
        y[p * C + c] = z[c]! * z[C + c]!;
        for (const [o, dz] of [[c, d * z[C + c]!], [C + c, d * z[c]!]] as const) {
          db[o] += dz;
          for (let k = 0; k < Ci; ++k) {
            dx[p * Ci + k] += dz * w[k * C2 + o]!;
            dw[k * C2 + o] += dz * x[p * Ci + k]!;
          }
        }
      }
    }
    return { y, dx, dw, db };
  }


  it('forward and backward match float64 and equal simple_gate(conv2d(x, w, b)) and its backward bit for bit', async () => {
    let seed = 900;
    for (const c of gateCases) {
      const [shape, C] = c;
      const { Ci, rows, ys, x, w, b, dy, next } = gateData(c, seed);
      seed = next;
      const xt = tensor(x, shape), wt = tensor(w, [1, 1, Ci, 2 * C]), bt = b ? tensor(b, [2 * C]) : null, dyt = tensor(dy, ys);
      const y = conv1x1Gate(xt, wt, bt);
      expect(y.shape).toEqual(ys);
      const outs = runOp('conv1x1_gate_backward', [dyt, xt, wt, ...(bt ? [bt] : [])]);
      expect(outs.map((t) => t.shape)).toEqual([shape, [1, 1, Ci, 2 * C], [2 * C]]);
      if (rows * Ci * C < 2e6) {
        const ref = gateRef(Ci, C, x, w, b, dy);
        await expectClose(y, ref.y, 1e-6, gName(c));
        for (const [i, r] of [ref.dx, ref.dw, ref.db].entries()) await expectClose(outs[i]!, r, 1e-6, `grad ${i} ${gName(c)}`);
      }
      // the composition it replaces: conv2d (a 4-D x; rows otherwise) and simple_gate, then their backwards
      const x4 = xt.reshape([1, 1, rows, Ci]);
      const z = conv2d(x4, wt, bt);
      const u = simpleGate(z);
      expect(differing(await y.data(), await u.data()), `forward ${gName(c)}`).toBe(0);
      const [dz] = runOp('simple_gate_backward', [dyt.reshape([1, 1, rows, C]), z]);
      const ref = runOp('conv2d_backward', [dz!, x4, wt], [1, 0, 1]);
      for (let i = 0; i < 3; ++i) expect(differing(await outs[i]!.data(), await ref[i]!.data()), `grad ${i} ${gName(c)}`).toBe(0);
    }
  });

  it('gradients, z recomputed (the fused backward) and z kept (the CPU default when training)', async () => {
    const x = { data: randArray(2 * 3 * 4 * 6, 951), shape: [2, 3, 4, 6] };
    const w = { data: randArray(6 * 10, 952), shape: [1, 1, 6, 10] }, b = { data: randArray(10, 953), shape: [10] };
    await gradcheck((xx, ww, bb) => conv1x1Gate(xx, ww, bb!, { keepZ: false }), [x, w, b]);
    await gradcheck((xx, ww) => conv1x1Gate(xx, ww, null, { keepZ: false }), [x, w]);
    await gradcheck((xx, ww, bb) => conv1x1Gate(xx, ww, bb!), [{ data: x.data, shape: [4, 6, 6] }, w, b]);
    // which path records: the fused op only when z is not kept
    const recorded = (keepZ?: boolean) => {
      const xt = tensor(x.data, x.shape);
      xt.requiresGrad = true;
      const y = conv1x1Gate(xt, tensor(w.data, w.shape), tensor(b.data, b.shape), keepZ === undefined ? {} : { keepZ });
      return y._node?.name;
    };
    expect(recorded(false)).toBe('conv1x1_gate');
    expect(recorded(true)).toBe('simple_gate');
    expect(recorded()).toBe('simple_gate'); // the CPU default
  });

  it('validates shapes', () => {
    const x = tensor(randArray(2 * 4 * 4 * 6, 1), [2, 4, 4, 6]), w = tensor(randArray(6 * 8, 1), [1, 1, 6, 8]);
    expect(() => conv1x1Gate(x, tensor(randArray(6 * 7, 1), [1, 1, 6, 7]), null)).toThrowError(/w must have shape \[1, 1, 6, 2C\] .* got \[1, 1, 6, 7\]/);
    expect(() => conv1x1Gate(x, tensor(randArray(9 * 6 * 8, 1), [3, 3, 6, 8]), null)).toThrowError(/w must have shape \[1, 1, 6, 2C\]/);
    expect(() => conv1x1Gate(x, tensor(randArray(5 * 8, 1), [1, 1, 5, 8]), null)).toThrowError(/w must have shape \[1, 1, 6, 2C\]/);
    expect(() => conv1x1Gate(x, w, tensor(randArray(4, 1), [4]))).toThrowError(/b must have shape \[8\], got \[4\]/);
    expect(() => runOp('conv1x1_gate_backward', [tensor(randArray(2 * 4 * 4 * 8, 1), [2, 4, 4, 8]), x, w])).toThrowError(
      /dy must have shape \[2, 4, 4, 4\], got \[2, 4, 4, 8\]/);
  });
});

/** Inputs of the LayerNorm + 1x1 ops: x, the LayerNorm's lw / lb, w [1, 1, Ci, Co], b [Co] and dy with yC channels. */
