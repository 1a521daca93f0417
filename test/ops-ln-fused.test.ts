// The LayerNorm + 1x1 ops: ln_conv1x1_gate (NAFBlock's norm2 + conv4 + SimpleGate) and ln_conv1x1 (norm1 + conv1,
// Restormer's norms with their projections, and with a Linear's weight MAXIM's LayerNorm + projection pairs), forward
// and backward against the separate ops bit for bit on the CPU, through the tape (recomputed against kept, finite
// differences, under a residual), and when a pair without gradients runs as its separate ops on CUDA. The SIMT
// kernel's paths for these ops (IRCONSTYLE_EMULATE=pw_simt) are in pw-simt.test.ts.
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { runOp } from '../lib/ops/run.js';
import { add, mul } from '../lib/ops/elementwise.js';
import { lnConv1x1, lnConv1x1Gate, inferenceApart, INFERENCE_APART_MIN } from '../lib/ops/fused.js';
import { noGrad } from '../lib/autograd/node.js';
import { backward } from '../lib/autograd/tape.js';
import { randArray, gradcheck, relErr, differing } from './helpers.js';

/** Each of got's outputs equals ref's bit for bit. */
async function expectBitwise(got: readonly Tensor[], ref: readonly Tensor[], what: string) {
  expect(got.length).toBe(ref.length);
  for (const [i, r] of ref.entries()) expect(differing(await got[i]!.data(), await r.data()), `output ${i} ${what}`).toBe(0);
}

function lnCase(shape: number[], Co: number, yC: number, bias: boolean, seed: number) {
  const Ci = shape[shape.length - 1]!, rows = shape.reduce((a, b) => a * b, 1) / Ci;
  return {
    Ci, rows,
    x: tensor(randArray(rows * Ci, seed, -2, 2), shape), lw: tensor(randArray(Ci, seed + 1, 0.5, 1.5), [Ci]),
    lb: tensor(randArray(Ci, seed + 2), [Ci]), w: tensor(randArray(Ci * Co, seed + 3), [1, 1, Ci, Co]),
    b: bias ? tensor(randArray(Co, seed + 4), [Co]) : null, dy: tensor(randArray(rows * yC, seed + 5), [...shape.slice(0, -1), yC]),
  };
}

type LnCase = ReturnType<typeof lnCase>;

/**
 * The leaves' gradients through fn(case, keep): with keep false the fused op recomputing in its backward (its tape
 * node is `node`), with keep true the separate ops keeping their intermediates; equal within 1e-6.
 */
async function expectFusedMatchesKept(make: () => LnCase, fn: (t: LnCase, keep: boolean) => Tensor, node: string, what: string) {
  const grads = async (keep: boolean) => {
    const t = make();
    const leaves = [t.x, t.lw, t.lb, t.w, ...(t.b ? [t.b] : [])];
    for (const l of leaves) l.requiresGrad = true;
    const y = fn(t, keep);
    expect(y._node?.name === node).toBe(!keep); // kept: the separate ops
    backward(y, t.dy);
    return Promise.all(leaves.map((l) => l.grad!.data()));
  };
  const [fused, kept] = [await grads(false), await grads(true)];
  for (let i = 0; i < fused.length; ++i) expect(relErr(fused[i]!, kept[i]!), `grad ${i} ${what}`).toBeLessThanOrEqual(1e-6);
}

describe('ln_conv1x1_gate', () => {
  // [x shape, C, bias]
  const cases: [number[], number, boolean][] = [
    [[2, 5, 7, 6], 3, true],
    [[1, 9, 11, 48], 48, true],
    [[7, 3], 1, false],
    [[3, 50, 16], 16, true],
  ];
  const make = (shape: number[], C: number, bias: boolean, seed: number) => lnCase(shape, 2 * C, C, bias, seed);

  it('equals layer_norm2d then conv1x1_gate bit for bit, forward (y, mean, rstd) and backward (dx, dw, db, dlw, dlb)', async () => {
    let seed = 1500;
    for (const [shape, C, bias] of cases) {
      const t = make(shape, C, bias, (seed += 10));
      const ins = [t.x, t.lw, t.lb, t.w, ...(t.b ? [t.b] : [])];
      const [y, mean, rstd] = runOp('ln_conv1x1_gate', ins, [1e-6]);
      const [h, m2, r2] = runOp('layer_norm2d', [t.x, t.lw, t.lb], [1e-6]);
      const [u] = runOp('conv1x1_gate', [h!, t.w, ...(t.b ? [t.b] : [])]);
      expect(differing(await y!.data(), await u!.data()), `y [${shape}]`).toBe(0);
      expect(differing(await mean!.data(), await m2!.data()), `mean [${shape}]`).toBe(0);
      expect(differing(await rstd!.data(), await r2!.data()), `rstd [${shape}]`).toBe(0);
      // with and without x's pending gradient (attrs [1]: the last input, added into dx)
      for (const acc of [null, tensor(randArray(t.x.size, seed + 5), [...shape])]) {
        const got = runOp('ln_conv1x1_gate_backward', [t.dy, t.x, t.lw, t.lb, t.w, mean!, rstd!, ...(t.b ? [t.b] : []), ...(acc ? [acc] : [])], [acc ? 1 : 0]);
        const [dh, dw, db] = runOp('conv1x1_gate_backward', [t.dy, h!, t.w, ...(t.b ? [t.b] : [])]);
        const [dx, dlw, dlb] = runOp('layer_norm2d_backward', [dh!, t.x, t.lw, mean!, rstd!, ...(acc ? [acc] : [])]);
        expect(got.map((g) => g.shape)).toEqual([shape, [1, 1, t.Ci, 2 * C], [2 * C], [t.Ci], [t.Ci]]);
        await expectBitwise(got, [dx!, dw!, db!, dlw!, dlb!], `[${shape}] acc ${!!acc}`);
      }
    }
  });

  it('gradients through the tape: fused (z and h recomputed) against kept, and finite differences', async () => {
    let seed = 1600;
    for (const [shape, C, bias] of cases.slice(0, 3)) {
      await expectFusedMatchesKept(() => make(shape, C, bias, seed), (t, keepZ) => lnConv1x1Gate(t.x, t.lw, t.lb, t.w, t.b, 1e-6, { keepZ }),
        'ln_conv1x1_gate', `[${shape}]`);
      seed += 10;
    }
    await gradcheck((xx, a, c, ww, bb) => lnConv1x1Gate(xx, a, c, ww, bb!, 1e-6, { keepZ: false }), [
      { data: randArray(2 * 3 * 4 * 6, 1651, -2, 2), shape: [2, 3, 4, 6] }, { data: randArray(6, 1652, 0.5, 1.5), shape: [6] },
      { data: randArray(6, 1653), shape: [6] }, { data: randArray(6 * 8, 1654), shape: [1, 1, 6, 8] }, { data: randArray(8, 1655), shape: [8] },
    ], { eps: 1e-3 });
  });

  it('validates shapes', () => {
    const x = tensor(randArray(2 * 4 * 4 * 6, 1), [2, 4, 4, 6]), v6 = tensor(randArray(6, 1), [6]);
    const w = tensor(randArray(6 * 8, 1), [1, 1, 6, 8]);
    expect(() => runOp('ln_conv1x1_gate', [x, tensor(randArray(5, 1), [5]), v6, w], [1e-6])).toThrowError(/LayerNorm's weight must have shape \[6\]/);
    expect(() => runOp('ln_conv1x1_gate', [x, v6, v6, tensor(randArray(6 * 7, 1), [1, 1, 6, 7])], [1e-6])).toThrowError(/w must have shape \[1, 1, 6, 2C\]/);
    expect(() => runOp('ln_conv1x1_gate', [x, v6, v6, w], [-1])).toThrowError(/eps must be >= 0/);
    const m = tensor(randArray(32, 1), [32]);
    expect(() => runOp('ln_conv1x1_gate_backward', [tensor(randArray(2 * 4 * 4 * 4, 1), [2, 4, 4, 4]), x, v6, v6, w, m, tensor(randArray(31, 1), [31])]))
      .toThrowError(/rstd must have shape \[32\]/);
    const dy = tensor(randArray(2 * 4 * 4 * 4, 1), [2, 4, 4, 4]);
    expect(() => runOp('ln_conv1x1_gate_backward', [dy, x, v6, v6, w, m, m, tensor(randArray(8, 1), [8]), v6], [1]))
      .toThrowError(/ln_conv1x1_gate_backward: acc must have the 192 elements of x \[2, 4, 4, 6\], got \[6\]/);
    expect(() => runOp('ln_conv1x1_gate_backward', [dy, x, v6, v6, w, m, m, v6, v6, v6], [1])).toThrowError(expect.objectContaining({ code: 'E_ARITY' }));
  });
});

describe('ln_conv1x1', () => {
  // [x shape, Co, bias]
  const cases: [number[], number, boolean][] = [
    [[2, 5, 7, 6], 5, true],
    [[1, 9, 11, 48], 96, true],
    [[7, 3], 4, false],
    [[3, 50, 16], 32, true],
  ];
  const make = (shape: number[], Co: number, bias: boolean, seed: number) => lnCase(shape, Co, Co, bias, seed);

  it('equals layer_norm2d then the 1x1 conv2d bit for bit, forward (y, mean, rstd) and backward (dx, dw, db, dlw, dlb)', async () => {
    let seed = 1800;
    for (const [shape, Co, bias] of cases) {
      const t = make(shape, Co, bias, (seed += 10));
      const [y, mean, rstd] = runOp('ln_conv1x1', [t.x, t.lw, t.lb, t.w, ...(t.b ? [t.b] : [])], [1e-6]);
      const [h, m2, r2] = runOp('layer_norm2d', [t.x, t.lw, t.lb], [1e-6]);
      const h4 = h!.reshape([1, 1, t.rows, t.Ci]);
      const [u] = runOp('conv2d', [h4, t.w, ...(t.b ? [t.b] : [])], [1, 0, 1]);
      expect(differing(await y!.data(), await u!.data()), `y [${shape}]`).toBe(0);
      expect(differing(await mean!.data(), await m2!.data()), `mean [${shape}]`).toBe(0);
      expect(differing(await rstd!.data(), await r2!.data()), `rstd [${shape}]`).toBe(0);
      for (const acc of [null, tensor(randArray(t.x.size, seed + 5), [...shape])]) {
        const got = runOp('ln_conv1x1_backward', [t.dy, t.x, t.lw, t.lb, t.w, mean!, rstd!, ...(acc ? [acc] : [])], [acc ? 1 : 0]);
        const [dh, dw, db] = runOp('conv2d_backward', [t.dy.reshape([1, 1, t.rows, Co]), h4, t.w], [1, 0, 1]);
        const [dx, dlw, dlb] = runOp('layer_norm2d_backward', [dh!.reshape([...shape]), t.x, t.lw, mean!, rstd!, ...(acc ? [acc] : [])]);
        expect(got.map((g) => g.shape)).toEqual([shape, [1, 1, t.Ci, Co], [Co], [t.Ci], [t.Ci]]);
        await expectBitwise(got, [dx!, dw!, db!, dlw!, dlb!], `[${shape}] acc ${!!acc}`);
      }
    }
  });

  it('gradients through the tape: fused (h recomputed) against kept, and finite differences', async () => {
    let seed = 1900;
    for (const [shape, Co, bias] of cases.slice(0, 3)) {
      await expectFusedMatchesKept(() => make(shape, Co, bias, seed), (t, keepH) => lnConv1x1(t.x, t.lw, t.lb, t.w, t.b, 1e-6, { keepH }),
        'ln_conv1x1', `[${shape}]`);
      seed += 10;
    }
    await gradcheck((xx, a, c, ww, bb) => lnConv1x1(xx, a, c, ww, bb!, 1e-6, { keepH: false }), [
      { data: randArray(2 * 3 * 4 * 6, 1951, -2, 2), shape: [2, 3, 4, 6] }, { data: randArray(6, 1952, 0.5, 1.5), shape: [6] },
      { data: randArray(6, 1953), shape: [6] }, { data: randArray(6 * 5, 1954), shape: [1, 1, 6, 5] }, { data: randArray(5, 1955), shape: [5] },
    ], { eps: 1e-3 });
  });

  it('validates shapes', () => {
    const x = tensor(randArray(2 * 4 * 4 * 6, 1), [2, 4, 4, 6]), v6 = tensor(randArray(6, 1), [6]);
    const w = tensor(randArray(6 * 5, 1), [1, 1, 6, 5]);
    expect(() => runOp('ln_conv1x1', [x, v6, tensor(randArray(4, 1), [4]), w], [1e-6])).toThrowError(/LayerNorm's bias must have shape \[6\]/);
    expect(() => runOp('ln_conv1x1', [tensor(new Float32Array(0), [2, 0]), tensor(new Float32Array(0), [0]), tensor(new Float32Array(0), [0]),
      tensor(new Float32Array(0), [1, 1, 0, 4])], [1e-6])).toThrowError(/at least one channel/);
    expect(() => runOp('ln_conv1x1', [x, v6, v6, tensor(randArray(9 * 6 * 5, 1), [3, 3, 6, 5])], [1e-6])).toThrowError(/w must have shape \[1, 1, 6, Co\]/);
    expect(() => runOp('ln_conv1x1', [x, v6, v6, w, tensor(randArray(4, 1), [4])], [1e-6])).toThrowError(/b must have shape \[5\]/);
    expect(() => runOp('ln_conv1x1_backward', [tensor(randArray(2 * 4 * 4 * 4, 1), [2, 4, 4, 4]), x, v6, v6, w, tensor(randArray(32, 1), [32]), tensor(randArray(32, 1), [32])]))
      .toThrowError(/dy must have shape \[2, 4, 4, 5\], got \[2, 4, 4, 4\]/);
  });
});

describe("ln_conv1x1 with a Linear's weight [Co, Ci] (MAXIM's LayerNorm + projection)", () => {
  const make = (shape: number[], Co: number, seed: number) => {
    const Ci = shape[shape.length - 1]!, rows = shape.reduce((a, b) => a * b, 1) / Ci;
    return {
      Ci, rows, x: tensor(randArray(rows * Ci, seed, -2, 2), shape), lw: tensor(randArray(Ci, seed + 1, 0.5, 1.5), [Ci]),
      lb: tensor(randArray(Ci, seed + 2), [Ci]), w: tensor(randArray(Co * Ci, seed + 3), [Co, Ci]), b: tensor(randArray(Co, seed + 4), [Co]),
      dy: tensor(randArray(rows * Co, seed + 5), [...shape.slice(0, -1), Co]), acc: tensor(randArray(rows * Ci, seed + 6), shape),
    };
  };

  it('equals layer_norm2d then linear bit for bit, forward and backward (with the pending gradient)', async () => {
    let seed = 2300;
    for (const [shape, Co] of [[[2, 5, 7, 6], 5], [[3, 17, 32], 64], [[7, 3], 4]] as [number[], number][]) {
      const t = make(shape, Co, (seed += 10));
      const [y, mean, rstd] = runOp('ln_conv1x1', [t.x, t.lw, t.lb, t.w, t.b], [1e-6]);
      const [h, m2, r2] = runOp('layer_norm2d', [t.x, t.lw, t.lb], [1e-6]);
      const [u] = runOp('linear', [h!, t.w, t.b]);
      expect(differing(await y!.data(), await u!.data()), `y [${shape}]`).toBe(0);
      expect(differing(await mean!.data(), await m2!.data()), `mean [${shape}]`).toBe(0);
      expect(differing(await rstd!.data(), await r2!.data()), `rstd [${shape}]`).toBe(0);
      const got = runOp('ln_conv1x1_backward', [t.dy, t.x, t.lw, t.lb, t.w, mean!, rstd!, t.acc], [1]);
      const [dh, dw, db] = runOp('linear_backward', [t.dy, h!, t.w]);
      const [dx, dlw, dlb] = runOp('layer_norm2d_backward', [dh!, t.x, t.lw, mean!, rstd!, t.acc]);
      expect(got.map((g) => g.shape)).toEqual([shape, [Co, t.Ci], [Co], [t.Ci], [t.Ci]]);
      await expectBitwise(got, [dx!, dw!, db!, dlw!, dlb!], `[${shape}]`);
    }
  });
});

describe('LayerNorm + 1x1 ops under a residual (the pending gradient folded into the LayerNorm backward)', () => {
  it('lnConv1x1Gate(x) + x and lnConv1x1(x) + x: fused gradients equal the separate ops', async () => {
    for (const gate of [true, false]) {
      const grads = async (fused: boolean) => {
        const C = 8, shape = [2, 3, 5, C];
        const x = tensor(randArray(2 * 3 * 5 * C, 2101, -2, 2), shape), lw = tensor(randArray(C, 2102, 0.5, 1.5), [C]);
        const lb = tensor(randArray(C, 2103), [C]), w = tensor(randArray(C * (gate ? 2 * C : C), 2104), [1, 1, C, gate ? 2 * C : C]);
        const b = tensor(randArray(gate ? 2 * C : C, 2105), [gate ? 2 * C : C]);
        const leaves = [x, lw, lb, w, b];
        for (const l of leaves) l.requiresGrad = true;
        const xi = mul(x, tensor(new Float32Array([1.5]), [1])); // not a leaf: its pending gradient is folded in
        const f = gate ? lnConv1x1Gate(xi, lw, lb, w, b, 1e-6, { keepZ: !fused }) : lnConv1x1(xi, lw, lb, w, b, 1e-6, { keepH: !fused });
        backward(add(f, xi), tensor(randArray(2 * 3 * 5 * C, 2106), shape));
        return Promise.all(leaves.map((l) => l.grad!.data()));
      };
      const [a, k] = [await grads(true), await grads(false)];
      for (let i = 0; i < a.length; ++i) expect(relErr(a[i]!, k[i]!), `${gate ? 'gate' : 'plain'} grad ${i}`).toBeLessThanOrEqual(1e-6);
    }
  });
});

describe('LayerNorm + 1x1 pairs without gradients on CUDA', () => {
  it('run as their separate ops for large inputs only, and never where gradients, the CPU or an own kernel ask', () => {
    const t = (device: string, size: number, requiresGrad = false) => ({ device, size, requiresGrad }) as unknown as Tensor;
    const w = t('cuda', 96), big = INFERENCE_APART_MIN;
    expect(inferenceApart(t('cuda', big), [t('cuda', big), w], false)).toBe(true);
    expect(inferenceApart(t('cuda', big - 1), [t('cuda', big - 1), w], false)).toBe(false); // host-bound: one op less
    expect(inferenceApart(t('cpu', big), [t('cpu', big), w], false)).toBe(false);
    expect(inferenceApart(t('cuda', big), [t('cuda', big), w], true)).toBe(false); // IRCONSTYLE_PW_SIMT=1
    const trained = [t('cuda', big), t('cuda', 96, true)];
    expect(inferenceApart(t('cuda', big), trained, false)).toBe(false); // training keeps the one op (memory)
    expect(noGrad(() => inferenceApart(t('cuda', big), trained, false))).toBe(true);
  });
});
