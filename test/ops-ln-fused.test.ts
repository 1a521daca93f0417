// The LayerNorm + 1x1 ops: ln_conv1x1_gate (NAFBlock's norm2 + conv4 + SimpleGate) and ln_conv1x1 (norm1 + conv1,
// Restormer's norms with their projections, and with a Linear's weight MAXIM's LayerNorm + projection pairs), forward
// and backward against the separate ops bit for bit on the CPU, through the tape (recomputed against kept, finite
// differences, under a residual), and the CUDA kernels' code run on the host (IRCONSTYLE_EMULATE): the LayerNorm
// formed on the way in, its backward folded into the one-pass 1x1 backward, conv1x1_gate's one-pass backward.
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { runOp } from '../lib/ops/run.js';
import { add, mul } from '../lib/ops/elementwise.js';
import { lnConv1x1, lnConv1x1Gate, inferenceApart, INFERENCE_APART_MIN } from '../lib/ops/fused.js';
import { noGrad } from '../lib/autograd/node.js';
import { backward } from '../lib/autograd/tape.js';
import { randArray, gradcheck, relErr, differing, withEmulation } from './helpers.js';

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

/**
 * The outputs of run('') (the CPU's own path) against run with the CUDA kernels' code on the host (pw_gate): exact
 * operands within float32 rounding, TF32 operands within TF32 rounding, and the TF32 model really rounding.
 */
async function expectEmulationMatches(run: (mode: string) => Promise<ArrayLike<number>[]>, what: string) {
  const [own, exact, tf32] = [await run(''), await run('pw_gate_fp32'), await run('pw_gate')];
  for (let i = 0; i < own.length; ++i) {
    expect(relErr(exact[i]!, own[i]!), `exact ${i} ${what}`).toBeLessThanOrEqual(2e-5);
    expect(relErr(tf32[i]!, own[i]!), `tf32 ${i} ${what}`).toBeLessThanOrEqual(5e-3);
  }
  expect(differing(tf32[0]!, exact[0]!), `the TF32 model rounds ${what}`).toBeGreaterThan(0);
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

  it("the CUDA kernels with the LayerNorm formed on the way in, run on the host with the WMMA model, match", async () => {
    // IRCONSTYLE_EMULATE=pw_gate[_fp32]: the gate kernel with its LayerNorm prologue (statistics computed forward,
    // given backward) and the one-pass backward normalising x in its staging
    let seed = 1700;
    for (const [shape, C, bias] of [[[3, 50, 48], 16, true], [[1, 9, 11, 96], 48, false]] as [number[], number, boolean][]) {
      const t = make(shape, C, bias, (seed += 10));
      const ins = [t.x, t.lw, t.lb, t.w, ...(t.b ? [t.b] : [])];
      const run = (mode: string) => withEmulation(mode, async () => {
        const [y, mean, rstd] = runOp('ln_conv1x1_gate', ins, [1e-6]);
        const grads = runOp('ln_conv1x1_gate_backward', [t.dy, t.x, t.lw, t.lb, t.w, mean!, rstd!, ...(t.b ? [t.b] : []), t.x], [1]);
        return await Promise.all([y!, mean!, rstd!, ...grads].map((g) => g.data()));
      });
      await expectEmulationMatches(run, `[${shape}]`);
    }
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

  it('the CUDA paths (the gate kernel writing z, the one-pass backward normalising x), run on the host, match', async () => {
    let seed = 2000;
    for (const [shape, Co, bias] of [[[3, 50, 48], 32, true], [[1, 9, 11, 96], 192, false]] as [number[], number, boolean][]) {
      const t = make(shape, Co, bias, (seed += 10));
      const run = (mode: string) => withEmulation(mode, async () => {
        const [y, mean, rstd] = runOp('ln_conv1x1', [t.x, t.lw, t.lb, t.w, ...(t.b ? [t.b] : [])], [1e-6]);
        const grads = runOp('ln_conv1x1_backward', [t.dy, t.x, t.lw, t.lb, t.w, mean!, rstd!, t.x], [1]);
        return await Promise.all([y!, mean!, rstd!, ...grads].map((g) => g.data()));
      });
      await expectEmulationMatches(run, `[${shape}]`);
    }
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

  it("the CUDA path (split-TF32 kernels, the LayerNorm formed in the forward's and folded into the backward's), run on the host", async () => {
    let seed = 2400;
    for (const [shape, Co] of [[[5, 13, 17, 64], 128], [[4, 16, 16, 32], 64]] as [number[], number][]) {
      const t = make(shape, Co, (seed += 10));
      const run = async (mode: string, fold = true) => {
        if (!fold) process.env.IRCONSTYLE_LN_FOLD = '0';
        try {
          return await withEmulation(mode, async () => {
            const [y, mean, rstd] = runOp('ln_conv1x1', [t.x, t.lw, t.lb, t.w, t.b], [1e-6]);
            const grads = runOp('ln_conv1x1_backward', [t.dy, t.x, t.lw, t.lb, t.w, mean!, rstd!, t.acc], [1]);
            return await Promise.all([y!, mean!, rstd!, ...grads].map((g) => g.data()));
          });
        } finally {
          delete process.env.IRCONSTYLE_LN_FOLD;
        }
      };
      const [own, split, unfolded] = [await run(''), await run('linear_fwd,linear_bwd'), await run('linear_fwd,linear_bwd', false)];
      for (let i = 0; i < own.length; ++i) expect(relErr(split[i]!, own[i]!), `output ${i} [${shape}]`).toBeLessThanOrEqual(2e-6);
      expect(differing(split[0]!, own[0]!), `the forward emulation ran [${shape}]`).toBeGreaterThan(0);
      expect(differing(split[3]!, unfolded[3]!), `the folded backward ran [${shape}]`).toBeGreaterThan(0);
    }
  });
});

describe("the one-pass 1x1 backward with the LayerNorm's backward folded in (CUDA's FOLD, run on the host)", () => {
  it('gives the separate ops\' dx (+ acc), dlw, dlb for both LayerNorm + 1x1 backwards; IRCONSTYLE_LN_FOLD=0 turns it off', async () => {
    // shapes: row tails of the 16-row chunks and of the blocks, several dw passes (192 -> 384), NAFNet's level-1 width
    let seed = 2100;
    for (const [shape, Co, gate] of [[[3, 50, 48], 96, false], [[1, 9, 11, 96], 192, true], [[1, 7, 9, 192], 384, false], [[2, 33, 48], 96, true]] as [number[], number, boolean][]) {
      const C = gate ? Co / 2 : Co;
      const t = lnCase(shape, Co, C, true, (seed += 10));
      const acc = tensor(randArray(t.x.size, seed + 7), [...shape]);
      const op = gate ? 'ln_conv1x1_gate' : 'ln_conv1x1';
      const [, mean, rstd] = runOp(op, [t.x, t.lw, t.lb, t.w, t.b!], [1e-6]);
      const ins = [t.dy, t.x, t.lw, t.lb, t.w, mean!, rstd!, ...(gate ? [t.b!] : []), acc];
      const run = async (mode: string, fold = true) => {
        if (!fold) process.env.IRCONSTYLE_LN_FOLD = '0';
        try {
          return await withEmulation(mode, () => Promise.all(runOp(`${op}_backward`, ins, [1]).map((g) => g.data())));
        } finally {
          delete process.env.IRCONSTYLE_LN_FOLD;
        }
      };
      const [own, folded, unfolded, tf32] = [await run(''), await run('pw_gate_fp32'), await run('pw_gate_fp32', false), await run('pw_gate')];
      for (let i = 0; i < own.length; ++i) {
        expect(relErr(folded[i]!, own[i]!), `folded ${i} [${shape}]`).toBeLessThanOrEqual(2e-5);
        expect(relErr(tf32[i]!, own[i]!), `tf32 ${i} [${shape}]`).toBeLessThanOrEqual(5e-3);
      }
      // the folded LayerNorm backward sums in its own order: it ran (and the switch turns it off)
      for (const i of [0, 3]) expect(differing(folded[i]!, unfolded[i]!), `fold ran for output ${i} [${shape}]`).toBeGreaterThan(0);
    }
  });
});

describe("conv1x1_gate's backward in one pass (CUDA's GATE: dz formed per chunk inside the 1x1 backward, run on the host)", () => {
  it('equals the two-kernel path (the gate kernel writing dz, then the 1x1 backward) but for db\'s summation order', async () => {
    let seed = 2200;
    // the last: a weight of several passes of dw tiles (192 -> 2·192: 4), which takes the two-kernel path (GATE would
    // form z again in every pass)
    const shapes = [[[3, 50, 48], 48, false, true], [[1, 9, 11, 96], 96, true, true], [[2, 33, 48], 16, true, false], [[1, 5, 9, 64], 64, true, true], [[1, 5, 9, 192], 192, true, true]] as [number[], number, boolean, boolean][];
    for (const [shape, C, ln, bias] of shapes) {
      const onePass = C < 192;
      const t = lnCase(shape, 2 * C, C, bias, (seed += 10));
      const acc = tensor(randArray(t.x.size, seed + 7), [...shape]);
      let op: 'ln_conv1x1_gate_backward' | 'conv1x1_gate_backward', ins: Tensor[], attrs: number[];
      if (ln) {
        const [, mean, rstd] = runOp('ln_conv1x1_gate', [t.x, t.lw, t.lb, t.w, ...(t.b ? [t.b] : [])], [1e-6]);
        [op, ins, attrs] = ['ln_conv1x1_gate_backward', [t.dy, t.x, t.lw, t.lb, t.w, mean!, rstd!, ...(t.b ? [t.b] : []), acc], [1]];
      } else {
        [op, ins, attrs] = ['conv1x1_gate_backward', [t.dy, t.x, t.w, ...(t.b ? [t.b] : [])], []];
      }
      const run = async (mode: string, gate: boolean | 'forced' = true) => {
        if (gate !== true) process.env.IRCONSTYLE_GATE_BWD = gate ? 'one-pass' : 'two-kernel';
        try {
          return await withEmulation(mode, () => Promise.all(runOp(op, ins, attrs).map((g) => g.data())));
        } finally {
          delete process.env.IRCONSTYLE_GATE_BWD;
        }
      };
      const [own, one, two, tf32] = [await run(''), await run('pw_gate_fp32'), await run('pw_gate_fp32', false), await run('pw_gate')];
      const dbAt = 2; // outputs: dx, dw, db (, dlw, dlb)
      for (let i = 0; i < own.length; ++i) {
        expect(relErr(one[i]!, own[i]!), `one pass ${i} [${shape}]`).toBeLessThanOrEqual(2e-5);
        expect(relErr(tf32[i]!, own[i]!), `tf32 ${i} [${shape}]`).toBeLessThanOrEqual(5e-3);
        if (i !== dbAt || !onePass) expect(differing(one[i]!, two[i]!), `same arithmetic ${i} [${shape}]`).toBe(0);
      }
      if (onePass) expect(differing(one[dbAt]!, two[dbAt]!), `the one-pass path ran [${shape}]`).toBeGreaterThan(0);
      else {  // IRCONSTYLE_GATE_BWD=one-pass forces it (four passes, z formed in each): the same numbers
        const forced = await run('pw_gate_fp32', 'forced');
        for (let i = 0; i < own.length; ++i) expect(relErr(forced[i]!, own[i]!), `forced ${i} [${shape}]`).toBeLessThanOrEqual(2e-5);
        expect(differing(forced[dbAt]!, two[dbAt]!), `the forced one-pass path ran [${shape}]`).toBeGreaterThan(0);
      }
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
    expect(inferenceApart(t('cuda', big), [t('cuda', big), w], true)).toBe(false); // IRCONSTYLE_PW_FWD=wmma etc.
    const trained = [t('cuda', big), t('cuda', 96, true)];
    expect(inferenceApart(t('cuda', big), trained, false)).toBe(false); // training keeps the one op (memory)
    expect(noGrad(() => inferenceApart(t('cuda', big), trained, false))).toBe(true);
  });
});
