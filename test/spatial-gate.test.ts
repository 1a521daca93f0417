// spatial_gate: MAXIM's block / grid gating unit as one op (and spatial_mix: its cross-gating's spatial gating
// weights), against the official composition (GELU, split,
// LayerNorm, block_images permute, Dense, permute back, product) bit for bit on the CPU, forward and backward; the
// CUDA kernels' tile programs run on the host (IRCONSTYLE_EMULATE=spatial_gate) against it; finite differences;
// empty batches and the errors for bad shapes and attributes.
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { runOp } from '../lib/ops/run.js';
import { mul } from '../lib/ops/elementwise.js';
import { gelu } from '../lib/ops/activation.js';
import { concat, split } from '../lib/ops/shape.js';
import { layerNorm2d } from '../lib/ops/norm.js';
import { geluSplit, setKeepOnCpu, spatialGate, spatialMix, type GatingAxis, type Mixing } from '../lib/ops/fused.js';
import { GatingUnit, spatialDense } from '../lib/models/maxim_blocks.js';
import { backward } from '../lib/autograd/tape.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
import { differing, gradcheck, randArray, relErr, withEmulation } from './helpers.js';

interface Case {
  shape: [number, number, number, number]; // z [N, H, W, 2C]
  patch: [number, number];
  over: GatingAxis;
  act: 'none' | 'gelu';
}

const P = (c: Case) => (c.over === 'block' ? c.patch[0] * c.patch[1] : (c.shape[1] / c.patch[0]) * (c.shape[2] / c.patch[1]));

function inputs(c: Case, seed: number) {
  const C = c.shape[3] / 2, p = P(c), n = c.shape.reduce((a, b) => a * b, 1);
  return {
    z: tensor(randArray(n, seed, -2, 2), c.shape),
    lw: tensor(randArray(C, seed + 1, 0.5, 1.5), [C]),
    lb: tensor(randArray(C, seed + 2), [C]),
    w: tensor(randArray(p * p, seed + 3, -0.3, 0.3), [p, p]),
    b: tensor(randArray(p, seed + 4), [p]),
    dy: tensor(randArray(n / 2, seed + 5), [...c.shape.slice(0, 3), C]),
  };
}

/** The official composition (maxim_blocks' spatialDense does block_images + swapaxes + Dense + back). */
function composed(c: Case, z: Tensor, lw: Tensor, lb: Tensor, w: Tensor, b: Tensor): Tensor {
  const a = c.act === 'gelu' ? gelu(z) : z;
  const C = a.shape[3]! / 2;
  const [u, v] = split(a, [C, C]) as [Tensor, Tensor];
  return mul(u, spatialDense(layerNorm2d(v, lw, lb, 1e-6), c.patch, c.over, w, b));
}

const fused = (c: Case, z: Tensor, lw: Tensor, lb: Tensor, w: Tensor, b: Tensor) =>
  spatialGate(z, lw, lb, w, b, { over: c.over, patch: c.patch, act: c.act, eps: 1e-6 });
/** The same with the Dense's output kept for the backward instead of formed again. */
const fusedKeep = (c: Case, z: Tensor, lw: Tensor, lb: Tensor, w: Tensor, b: Tensor) =>
  spatialGate(z, lw, lb, w, b, { over: c.over, patch: c.patch, act: c.act, eps: 1e-6, keepDense: true });

/** y and the five gradients (z, lw, lb, w, b) of fn for dy. */
async function run(c: Case, seed: number, fn: typeof fused): Promise<Float32Array[]> {
  const t = inputs(c, seed);
  const leaves = [t.z, t.lw, t.lb, t.w, t.b];
  for (const l of leaves) l.requiresGrad = true;
  const y = fn(c, t.z, t.lw, t.lb, t.w, t.b);
  backward(y, t.dy);
  return Promise.all([y, ...leaves.map((l) => l.grad!)].map(async (x) => Float32Array.from((await x.data()) as Float32Array)));
}

const CASES: Case[] = [
  { shape: [2, 6, 8, 10], patch: [3, 2], over: 'block', act: 'gelu' }, // P = 6 < one tile, C = 5
  { shape: [2, 6, 8, 10], patch: [3, 2], over: 'grid', act: 'none' }, // P = 2·4 = 8 patches
  { shape: [1, 16, 12, 74], patch: [8, 6], over: 'block', act: 'none' }, // P = 48: two tiles, the second partial; C = 37: two channel chunks
  { shape: [3, 8, 12, 66], patch: [1, 2], over: 'grid', act: 'gelu' }, // P = 48 patches, C = 33
  { shape: [1, 8, 8, 128], patch: [4, 4], over: 'grid', act: 'gelu' }, // C = 64: whole chunks
];
const name = (c: Case) => `${c.over} z [${c.shape.join(',')}] patch ${c.patch.join('×')} ${c.act}`;

/** Each case's outputs and gradients through the tile programs on the host (IRCONSTYLE_EMULATE=spatial_gate) within
 * 2e-5 of the CPU's own code. */
async function expectEmulationAgrees<C>(cases: C[], seed: number, run: (c: C, seed: number) => Promise<Float32Array[]>,
  name: (c: C) => string) {
  for (const [i, c] of cases.entries()) {
    const own = await run(c, seed + 10 * i);
    const emu = await withEmulation('spatial_gate', () => run(c, seed + 10 * i));
    for (let k = 0; k < own.length; ++k) expect(relErr(emu[k]!, own[k]!), `${name(c)} output ${k}`).toBeLessThanOrEqual(2e-5);
  }
}

describe('spatial_gate', () => {
  for (const [i, c] of CASES.entries())
    it(`equals the official composition bit for bit, forward and backward: ${name(c)}`, async () => {
      const [f, ref] = [await run(c, 700 + 10 * i, fused), await run(c, 700 + 10 * i, composed)];
      for (let k = 0; k < ref.length; ++k) expect(differing(f[k]!, ref[k]!), `output ${k}`).toBe(0);
    });

  it('keepDense (the Dense output kept, not formed again): the same bits, forward and backward', async () => {
    for (const [i, c] of CASES.entries()) {
      const [k, f] = [await run(c, 800 + 10 * i, fusedKeep), await run(c, 800 + 10 * i, fused)];
      for (let j = 0; j < f.length; ++j) expect(differing(k[j]!, f[j]!), `${name(c)} output ${j}`).toBe(0);
    }
  });

  it('the CUDA kernels\' tile programs (host model) give the same outputs and gradients', async () => {
    await expectEmulationAgrees(CASES, 900, (c, seed) => run(c, seed, fused), name);
    await expectEmulationAgrees(CASES.slice(0, 2), 950, (c, seed) => run(c, seed, fusedKeep), name);
  });

  it('gradients match finite differences (GELU inside, both axes)', async () => {
    for (const c of [CASES[0]!, CASES[3]!]) {
      const t = inputs(c, 40);
      const data = async (x: Tensor) => ({ data: Float32Array.from((await x.data()) as Float32Array), shape: [...x.shape] });
      const ins = await Promise.all([t.z, t.lw, t.lb, t.w, t.b].map(data));
      await gradcheck((z, lw, lb, w, b) => fused(c, z!, lw!, lb!, w!, b!), ins, { eps: 1e-2, rtol: 2e-2, atol: 3e-3 });
    }
  });

  it('keeps z and the row statistics for the backward, not the Dense input or output', async () => {
    const c = CASES[2]!, t = inputs(c, 60);
    t.z.requiresGrad = true;
    await sync();
    const before = memoryStats().bytes;
    const y = fused(c, t.z, t.lw, t.lb, t.w, t.b);
    await sync();
    const rows = c.shape[0] * c.shape[1] * c.shape[2], C = c.shape[3] / 2;
    expect(memoryStats().bytes - before).toBe(4 * (rows * C /* y */ + 2 * rows /* mean, rstd */));
    backward(y, t.dy);
    await sync();
    const before2 = memoryStats().bytes;  // now with z's gradient
    const kept = fusedKeep(c, t.z, t.lw, t.lb, t.w, t.b);
    await sync();
    expect(memoryStats().bytes - before2).toBe(4 * (2 * rows * C /* y, g */ + 2 * rows /* mean, rstd */));
    backward(kept, t.dy);
  });

  it('an empty batch gives an empty output and zero parameter gradients', async () => {
    const c: Case = { shape: [0, 4, 4, 6], patch: [2, 2], over: 'block', act: 'gelu' };
    const [y, dz, dlw, dlb, dw, db] = await run(c, 5, fused);
    expect([y!.length, dz!.length]).toEqual([0, 0]);
    for (const g of [dlw!, dlb!, dw!, db!]) expect([...g].every((v) => v === 0)).toBe(true);
  });

  it('MAXIM\'s GatingUnit takes the op only with IRCONSTYLE_SPATIAL_GATE=1, and not where the CPU keeps the separate ops', () => {
    const unit = new GatingUnit('grid', 10, 8);
    const z = tensor(randArray(2 * 6 * 8 * 10, 3), [2, 6, 8, 10]);
    z.requiresGrad = true;
    const node = () => unit.forward(z, [3, 2], 'gelu')._node?.name;
    expect(node()).toBe('mul'); // the CPU's default
    process.env.IRCONSTYLE_SPATIAL_GATE = '1';
    expect(node()).toBe('mul'); // the CPU keeps the separate ops even then
    const was = setKeepOnCpu(false);
    try {
      expect(node()).toBe('spatial_gate');
      process.env.IRCONSTYLE_SPATIAL_GATE = '0';
      expect(node()).toBe('mul');
      delete process.env.IRCONSTYLE_SPATIAL_GATE; // the default (as on CUDA): the separate ops
      expect(node()).toBe('mul');
    } finally {
      delete process.env.IRCONSTYLE_SPATIAL_GATE;
      setKeepOnCpu(was);
    }
  });

  it('names what it expected for bad shapes and attributes', () => {
    const t = inputs(CASES[0]!, 1);
    const call = (z: Tensor, w: Tensor, attrs: number[]) => () => runOp('spatial_gate', [z, t.lw, t.lb, w, t.b], attrs);
    expect(call(t.z, t.w, [0, 4, 2, 1, 1e-6])).toThrow(/patch 4x2 must tile the 6x8 map/);
    expect(call(t.z, t.w, [2, 3, 2, 1, 1e-6])).toThrow(/grid must be 0 \(mix inside patches\) or 1 \(mix patches\), got 2/);
    expect(call(t.z, t.w, [0, 3, 2, 3, 1e-6])).toThrow(/act must be 0 \(identity\) or 1 \(GELU\), got 3/);
    expect(call(t.z, t.w, [1, 3, 2, 1, 1e-6])).toThrow(/w \(the grid's positions squared\).*\[8, 8\]/);
    expect(call(tensor(new Float32Array(2 * 6 * 8 * 9), [2, 6, 8, 9]), t.w, [0, 3, 2, 1, 1e-6])).toThrow(/even, non-zero number of channels/);
    // the backward forms the Dense input and output again from z, the statistics, w and b, so it checks lb and b too
    const [, mean, rstd] = runOp('spatial_gate', [t.z, t.lw, t.lb, t.w, t.b], [0, 3, 2, 1, 1e-6]);
    expect(() => runOp('spatial_gate_backward', [t.dy, t.z, t.lw, t.w, t.w, t.b, mean!, rstd!], [0, 3, 2, 1, 1e-6])).toThrow(/lb must have shape \[5\], got \[6, 6\]/);
    expect(() => runOp('spatial_gate_backward', [t.dy, t.z, t.lw, t.lb, t.w, t.lw, mean!, rstd!], [0, 3, 2, 1, 1e-6])).toThrow(/b must have shape \[6\], got \[5\]/);
    expect(() => runOp('spatial_gate_backward', [t.dy, t.z, t.lw, t.lb, t.w, t.b, mean!, rstd!, t.w], [0, 3, 2, 1, 1e-6])).toThrow(/g must have shape \[16, 5, 6\], got \[6, 6\]/);
    expect(call(t.z, t.w, [0, 3, 2, 1, 1e-6, 2])).toThrow(/keep must be 0 \(g formed again in the backward\) or 1 \(g an output\), got 2/);
  });
});

// spatial_mix: z [N, H, W, 2C] with both mixings' (over, patch) and whether the Denses have biases
interface MixCase { shape: [number, number, number, number]; first: [GatingAxis, [number, number]]; second: [GatingAxis, [number, number]]; act: 'none' | 'gelu'; bias: boolean }
const MIX: MixCase[] = [
  { shape: [2, 8, 12, 20], first: ['grid', [4, 3]], second: ['block', [2, 6]], act: 'gelu', bias: true }, // P 8 and 12, C 10
  { shape: [1, 16, 12, 74], first: ['grid', [2, 2]], second: ['block', [8, 6]], act: 'none', bias: false }, // P 48 both, C 37
  { shape: [3, 4, 4, 128], first: ['block', [4, 4]], second: ['grid', [1, 1]], act: 'gelu', bias: true }, // C 64
];
const mixName = (c: MixCase) => `z [${c.shape.join(',')}] ${c.first[0]} ${c.first[1].join('×')} | ${c.second[0]} ${c.second[1].join('×')} ${c.act}${c.bias ? ' bias' : ''}`;
const mixP = (c: MixCase, [over, patch]: [GatingAxis, [number, number]]) =>
  over === 'block' ? patch[0] * patch[1] : (c.shape[1] / patch[0]) * (c.shape[2] / patch[1]);

async function runMix(c: MixCase, seed: number, fused: boolean): Promise<Float32Array[]> {
  const n = c.shape.reduce((a, b) => a * b, 1), [p1, p2] = [mixP(c, c.first), mixP(c, c.second)];
  const z = tensor(randArray(n, seed, -2, 2), c.shape);
  const ws = [p1, p2].map((p, i) => tensor(randArray(p * p, seed + 1 + i, -0.3, 0.3), [p, p]));
  const bs = c.bias ? [p1, p2].map((p, i) => tensor(randArray(p, seed + 3 + i), [p])) : [];
  const leaves = [z, ...ws, ...bs];
  for (const l of leaves) l.requiresGrad = true;
  const m = (i: number): Mixing => ({ over: [c.first, c.second][i]![0], patch: [c.first, c.second][i]![1], w: ws[i]!, b: bs[i] ?? null });
  let y: Tensor;
  if (fused) y = spatialMix(z, m(0), m(1), c.act);
  else {
    const C = c.shape[3] / 2;
    const [u, v] = (c.act === 'gelu' ? geluSplit(z, [C, C]) : split(z, [C, C])) as [Tensor, Tensor];
    y = concat([u, v].map((t, i) => spatialDense(t, m(i).patch, m(i).over, m(i).w, m(i).b)));
  }
  backward(y, tensor(randArray(n, seed + 9), c.shape));
  return Promise.all([y, ...leaves.map((l) => l.grad!)].map(async (x) => Float32Array.from((await x.data()) as Float32Array)));
}

describe('spatial_mix', () => {
  for (const [i, c] of MIX.entries())
    it(`equals the composition (GELU + split, two spatial Denses, concat) bit for bit: ${mixName(c)}`, async () => {
      const [f, ref] = [await runMix(c, 300 + 10 * i, true), await runMix(c, 300 + 10 * i, false)];
      for (let k = 0; k < ref.length; ++k) expect(differing(f[k]!, ref[k]!), `output ${k}`).toBe(0);
    });

  it('the CUDA kernels\' tile programs (host model) give the same outputs and gradients', () =>
    expectEmulationAgrees(MIX, 400, (c, seed) => runMix(c, seed, true), mixName));

  it('gradients match finite differences', async () => {
    const c = MIX[0]!, [p1, p2] = [mixP(c, c.first), mixP(c, c.second)];
    const ins = [{ data: randArray(c.shape.reduce((a, b) => a * b, 1), 50, -2, 2), shape: c.shape as number[] },
      { data: randArray(p1 * p1, 51, -0.3, 0.3), shape: [p1, p1] }, { data: randArray(p2 * p2, 52, -0.3, 0.3), shape: [p2, p2] },
      { data: randArray(p1, 53), shape: [p1] }, { data: randArray(p2, 54), shape: [p2] }];
    await gradcheck((z, w1, w2, b1, b2) => spatialMix(z!, { over: 'grid', patch: c.first[1], w: w1!, b: b1! }, { over: 'block', patch: c.second[1], w: w2!, b: b2! }, 'gelu'), ins);
  });

  it('keeps only z (and the weights) for the backward', async () => {
    const c = MIX[0]!, [p1, p2] = [mixP(c, c.first), mixP(c, c.second)];
    const z = tensor(randArray(c.shape.reduce((a, b) => a * b, 1), 70, -2, 2), c.shape);
    const w1 = tensor(randArray(p1 * p1, 71), [p1, p1]), w2 = tensor(randArray(p2 * p2, 72), [p2, p2]);
    z.requiresGrad = true;
    await sync();
    const before = memoryStats().bytes;
    const y = spatialMix(z, { over: 'grid', patch: c.first[1], w: w1, b: null }, { over: 'block', patch: c.second[1], w: w2, b: null }, 'gelu');
    await sync();
    expect(memoryStats().bytes - before).toBe(4 * y.size);
    backward(y, tensor(randArray(y.size, 73), y.shape));
  });

  it('an empty batch, one bias missing, a wrong weight', async () => {
    const w = (p: number) => tensor(randArray(p * p, 1), [p, p]);
    const z0 = tensor(new Float32Array(0), [0, 4, 4, 6]);
    z0.requiresGrad = true;
    const w1 = w(4);
    w1.requiresGrad = true;
    const y = spatialMix(z0, { over: 'grid', patch: [2, 2], w: w1, b: null }, { over: 'block', patch: [2, 2], w: w(4), b: null }, 'gelu');
    expect(y.shape).toEqual([0, 4, 4, 6]);
    backward(y, tensor(new Float32Array(0), [0, 4, 4, 6]));
    expect([...(await w1.grad!.data())].every((v) => v === 0)).toBe(true);
    const z = tensor(randArray(96, 2), [1, 4, 4, 6]);
    expect(() => spatialMix(z, { over: 'grid', patch: [2, 2], w: w(4), b: tensor(randArray(4, 1), [4]) }, { over: 'block', patch: [2, 2], w: w(4), b: null })).toThrow(/a bias each or neither/);
    expect(() => runOp('spatial_mix', [z, w(4), w(4), tensor(randArray(4, 1), [4])], [1, 2, 2, 0, 2, 2, 1])).toThrow(/the biases come both or neither \(z, w1, w2, b1, b2\), got 4 inputs/);
    expect(() => spatialMix(z, { over: 'grid', patch: [2, 2], w: w(3), b: null }, { over: 'block', patch: [2, 2], w: w(4), b: null })).toThrow(/w1 \(the first mixing's positions squared\) must have shape \[4, 4\], got \[3, 3\]/);
    expect(() => spatialMix(z, { over: 'grid', patch: [3, 2], w: w(4), b: null }, { over: 'block', patch: [2, 2], w: w(4), b: null })).toThrow(/the first patch 3x2 must tile the 4x4 map/);
  });
});
