// The SIMT pointwise-GEMM kernel (native/src/ops/pw_simt_tile.h; on CUDA with IRCONSTYLE_PW_SIMT=1): its phases run
// on the host block by block and thread by thread (IRCONSTYLE_EMULATE=pw_simt) for every op that takes it, against
// the CPU backend's own path. Both are FP32 with sums in other orders, so they agree to rounding; the kernel's path
// must also have run (some bits differ) where the shape fits, and not run where it does not.
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { runOp } from '../lib/ops/run.js';
import { differing, randArray, relErr, withEmulation } from './helpers.js';

const t = (shape: number[], seed: number, lo = -1, hi = 1) =>
  tensor(randArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);

/** The outputs of run() on the CPU path and on the emulated kernel: equal to rounding; `taken`: the kernel ran (some
 * bits differ; null: not asserted, where both paths sum every product in the same order with FMAs). */
async function compare(what: string, run: () => Tensor[], taken: boolean | null, tol = 2e-5) {
  const read = (mode: string) => withEmulation(mode, async () => Promise.all(run().map((o) => o.data())));
  const cpu = await read(''), simt = await read('pw_simt');
  expect(simt.length).toBe(cpu.length);
  let differ = 0;
  for (let i = 0; i < cpu.length; ++i) {
    expect(relErr(simt[i]!, cpu[i]!), `${what}: output ${i}`).toBeLessThanOrEqual(tol);
    differ += differing(simt[i]!, cpu[i]!);
  }
  if (taken) expect(differ, `${what}: the kernel's path ran`).toBeGreaterThan(0);
  else if (taken === false) expect(differ, `${what}: not taken, the CPU path's bits`).toBe(0);
}

describe('the SIMT pointwise kernel (IRCONSTYLE_EMULATE=pw_simt)', () => {
  it('conv1x1_gate and its backward: partial tiles, 4, 6, 8 and 12 column groups, with and without bias', async () => {
    // [x shape, C, bias, taken]: 150 rows (a partial second tile of 128), C = 96 (64-row tiles), C = 24 (N = 48: an odd
    // number of column groups, which the gate cannot split: not taken)
    const cases: [number[], number, boolean, boolean][] = [[[3, 50, 48], 48, true, true], [[2, 7, 9, 96], 96, false, true],
      [[2, 6, 7, 32], 32, true, true], [[1, 9, 9, 64], 64, true, true], [[2, 5, 5, 32], 24, true, false]];
    let seed = 100;
    for (const [shape, C, bias, taken] of cases) {
      const Ci = shape.at(-1)!;
      const x = t(shape, seed++), w = t([1, 1, Ci, 2 * C], seed++, -0.3, 0.3), b = bias ? [t([2 * C], seed++)] : [];
      const dy = t([...shape.slice(0, -1), C], seed++);
      await compare(`conv1x1_gate [${shape}] C ${C}`, () => [...runOp('conv1x1_gate', [x, w, ...b]),
        ...runOp('conv1x1_gate_backward', [dy, x, w, ...b])], taken);
    }
  });

  it('ln_conv1x1_gate and its backward: the LayerNorm formed in the kernel (statistics written forward, given backward)', async () => {
    let seed = 200;
    for (const [shape, C, bias] of [[[3, 50, 48], 48, true], [[1, 9, 11, 96], 96, false]] as [number[], number, boolean][]) {
      const Ci = shape.at(-1)!;
      const x = t(shape, seed++, -2, 3), lw = t([Ci], seed++, 0.5, 1.5), lb = t([Ci], seed++);
      const w = t([1, 1, Ci, 2 * C], seed++, -0.3, 0.3), b = bias ? [t([2 * C], seed++)] : [];
      const dy = t([...shape.slice(0, -1), C], seed++), acc = t(shape, seed++);
      await compare(`ln_conv1x1_gate [${shape}]`, () => {
        const [y, mean, rstd] = runOp('ln_conv1x1_gate', [x, lw, lb, w, ...b], [1e-6]);
        return [y!, mean!, rstd!, ...runOp('ln_conv1x1_gate_backward', [dy, x, lw, lb, w, mean!, rstd!, ...b, acc], [1])];
      }, true);
    }
  });

  it('ln_conv1x1: conv and Linear layouts, 3, 4, 8, 9 and 12 column groups; 16 channels in', async () => {
    let seed = 300;
    // [x shape, Co, linear layout]
    for (const [shape, Co, lin] of [[[2, 9, 70, 16], 48, false], [[1, 11, 13, 64], 144, false], [[5, 37, 32], 192, true],
      [[3, 10, 21, 64], 128, true], [[2, 8, 8, 48], 64, false]] as [number[], number, boolean][]) {
      const Ci = shape.at(-1)!;
      const x = t(shape, seed++, -2, 3), lw = t([Ci], seed++, 0.5, 1.5), lb = t([Ci], seed++);
      const w = t(lin ? [Co, Ci] : [1, 1, Ci, Co], seed++, -0.3, 0.3), b = t([Co], seed++);
      const what = `ln_conv1x1 [${shape}] -> ${Co}${lin ? ' (Linear)' : ''}`;
      await compare(what, () => runOp('ln_conv1x1', [x, lw, lb, w, b], [1e-6]), true);
      // the backward's dh = dy w^T (a Linear's dy w) by the kernel where Ci is one of its column counts (a plain GEMM:
      // its sums may take the CPU's order bit for bit, so only the agreement is asserted; where it is not taken, the
      // CPU's bits)
      const dy = t([...shape.slice(0, -1), Co], seed++);
      const [, mean, rstd] = runOp('ln_conv1x1', [x, lw, lb, w, b], [1e-6]);  // the same statistics for both paths
      await compare(`${what} backward`, () => runOp('ln_conv1x1_backward', [dy, x, lw, lb, w, mean!, rstd!], [0]),
        [48, 64, 96, 128, 144, 192].includes(Ci) ? null : false);
    }
  });

  it("the LayerNorm's backward behind dh (kLnBwd): dx with and without x's pending gradient, its weight and bias gradients and the conv's bias gradient from per-block sums", async () => {
    let seed = 350;
    // [x shape, Co, linear layout, acc]: 4800 rows in 38 tiles over the 3 emulated blocks (their sums in [2][3][Ci]),
    // a partial tile, 3 and 6 column groups (Ci 48, 96), a Linear
    for (const [shape, Co, lin, acc] of [[[4, 30, 40, 48], 96, false, true], [[1, 9, 11, 96], 192, false, false],
      [[5, 37, 48], 64, true, true], [[2, 7, 9, 64], 32, false, true]] as [number[], number, boolean, boolean][]) {
      const Ci = shape.at(-1)!;
      const x = t(shape, seed++, -2, 3), lw = t([Ci], seed++, 0.5, 1.5), lb = t([Ci], seed++);
      const w = t(lin ? [Co, Ci] : [1, 1, Ci, Co], seed++, -0.3, 0.3), b = t([Co], seed++);
      const dy = t([...shape.slice(0, -1), Co], seed++), pending = acc ? [t(shape, seed++)] : [];
      const [, mean, rstd] = runOp('ln_conv1x1', [x, lw, lb, w, b], [1e-6]);
      await compare(`ln_conv1x1_backward [${shape}] -> ${Co}${lin ? ' (Linear)' : ''}${acc ? ' +acc' : ''}`,
        () => runOp('ln_conv1x1_backward', [dy, x, lw, lb, w, mean!, rstd!, ...pending], [acc ? 1 : 0]), true);
    }
    // and the gate's: dz by kGateBwd, then dh and the LayerNorm's backward by kLnBwd
    const x = t([3, 50, 48], 370, -2, 3), lw = t([48], 371, 0.5, 1.5), lb = t([48], 372);
    const w = t([1, 1, 48, 96], 373, -0.3, 0.3), b = t([96], 374), dy = t([3, 50, 48], 375), acc = t([3, 50, 48], 376);
    const [, mean, rstd] = runOp('ln_conv1x1_gate', [x, lw, lb, w, b], [1e-6]);
    await compare('ln_conv1x1_gate_backward +acc', () => runOp('ln_conv1x1_gate_backward', [dy, x, lw, lb, w, mean!, rstd!, b, acc], [1]), true);
  });

  it('conv1x1_add and its dx: the per-sample scale across tile and sample boundaries, the output scale, a Linear; many tiles per block', async () => {
    let seed = 400;
    // 2 samples of 130 rows (tiles of 128 straddle them); 4800 rows in 38 tiles over 3 emulated blocks; a Linear
    const cases: [number[], number, 'sca' | 'plain' | 'linear'][] = [[[2, 10, 13, 48], 48, 'sca'], [[4, 30, 40, 16], 48, 'plain'],
      [[3, 7, 5, 96], 96, 'sca'], [[6, 21, 64], 144, 'linear']];
    for (const [shape, Co, kind] of cases) {
      const Ci = shape.at(-1)!, n = shape[0]!;
      const x = t(shape, seed++), r = t([...shape.slice(0, -1), Co], seed++);
      const w = t(kind === 'linear' ? [Co, Ci] : [1, 1, Ci, Co], seed++, -0.3, 0.3), b = t([Co], seed++);
      const extra = kind === 'sca' ? [t([Co], seed++), t([n, 1, 1, Ci], seed++, 0, 2)] : [];
      await compare(`conv1x1_add [${shape}] -> ${Co} ${kind}`, () => runOp('conv1x1_add', [x, w, r, b, ...extra]), true);
      // the backward's dx by the kernel (s on the way in, a per sample on the way out); dw, db, ds, da the CPU's own
      const dy = t([...shape.slice(0, -1), Co], seed++);
      await compare(`conv1x1_add_backward [${shape}] -> ${Co} ${kind}`, () => runOp('conv1x1_add_backward', [dy, x, w, b, ...extra]),
        kind === 'linear' ? null : [48, 64, 96, 128, 144, 192].includes(Ci));  // dx has Ci outputs (16: not taken)
    }
  });

  it('shapes it does not take run the CPU path: fewer than 16 channels in, a channel count not a multiple of 16 out', async () => {
    const x = t([2, 6, 6, 8], 500), w = t([1, 1, 8, 48], 501), r = t([2, 6, 6, 48], 502);
    await compare('conv1x1_add Ci 8', () => runOp('conv1x1_add', [x, w, r]), false);
    const x2 = t([2, 6, 6, 32], 503), w2 = t([1, 1, 32, 40], 504), r2 = t([2, 6, 6, 40], 505);
    await compare('conv1x1_add Co 40', () => runOp('conv1x1_add', [x2, w2, r2]), false);
  });

  it('IRCONSTYLE_PW_SIMT=mem: only the calls bound by memory (K N <= 40 (K + N)) take it', async () => {
    process.env.IRCONSTYLE_PW_SIMT = 'mem';
    try {
      let seed = 600;
      // [shape, C]: C = 48 (K 48, N 96: 4,608 <= 5,760) taken; C = 96 (K 96, N 192: 18,432 > 11,520) not
      for (const [shape, C, taken] of [[[3, 50, 48], 48, true], [[2, 7, 9, 96], 96, false]] as [number[], number, boolean][]) {
        const Ci = shape.at(-1)!;
        const x = t(shape, seed++), w = t([1, 1, Ci, 2 * C], seed++, -0.3, 0.3), b = t([2 * C], seed++);
        const dy = t([...shape.slice(0, -1), C], seed++);
        await compare(`conv1x1_gate mem [${shape}] C ${C}`, () => runOp('conv1x1_gate_backward', [dy, x, w, b]), taken);
      }
    } finally {
      delete process.env.IRCONSTYLE_PW_SIMT;
    }
  });
});
