// conv2d / linear / matmul: float64 references on random inputs (odd sizes, strides, pads, groups) and central
// finite-difference gradient checks; determinism and shape validation.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { tensor } from '../lib/tensor/tensor.js';
import { conv2d, linear, matmul } from '../lib/ops/conv.js';
import { backward } from '../lib/autograd/tape.js';
import { randArray, expectClose, gradcheck, relErr } from './helpers.js';
import { runOp } from '../lib/ops/run.js';

interface ConvCase {
  N: number; H: number; W: number; Ci: number; KH: number; KW: number; Co: number; S: number; P: number; G: number;
}

function convRef(c: ConvCase, x: Float32Array, w: Float32Array, b: Float32Array | null): Float64Array {
  const { N, H, W, Ci, KH, KW, Co, S, P, G } = c;
  const cig = Ci / G, cog = Co / G;
  const Ho = Math.floor((H + 2 * P - KH) / S) + 1, Wo = Math.floor((W + 2 * P - KW) / S) + 1;
  const y = new Float64Array(N * Ho * Wo * Co);
  for (let n = 0; n < N; ++n)
    for (let oh = 0; oh < Ho; ++oh)
      for (let ow = 0; ow < Wo; ++ow)
        for (let co = 0; co < Co; ++co) {
          const g = Math.floor(co / cog);
          let s = b ? b[co]! : 0;
          for (let kh = 0; kh < KH; ++kh) {
            const ih = oh * S - P + kh;
            if (ih < 0 || ih >= H) continue;
            for (let kw = 0; kw < KW; ++kw) {
              const iw = ow * S - P + kw;
              if (iw < 0 || iw >= W) continue;
              for (let ci = 0; ci < cig; ++ci)
                s += x[((n * H + ih) * W + iw) * Ci + g * cig + ci]! * w[((kh * KW + kw) * cig + ci) * Co + co]!;
            }
          }
          y[((n * Ho + oh) * Wo + ow) * Co + co] = s;
        }
  return y;
}

const convCases: ConvCase[] = [
  { N: 1, H: 5, W: 7, Ci: 3, KH: 3, KW: 3, Co: 4, S: 1, P: 1, G: 1 },
  { N: 2, H: 7, W: 5, Ci: 3, KH: 3, KW: 3, Co: 5, S: 2, P: 1, G: 1 },
  { N: 2, H: 9, W: 6, Ci: 4, KH: 3, KW: 3, Co: 8, S: 2, P: 0, G: 1 },
  { N: 2, H: 6, W: 5, Ci: 16, KH: 1, KW: 1, Co: 24, S: 1, P: 0, G: 1 },
  { N: 1, H: 7, W: 5, Ci: 6, KH: 1, KW: 1, Co: 6, S: 2, P: 1, G: 1 },
  { N: 2, H: 8, W: 6, Ci: 8, KH: 2, KW: 2, Co: 16, S: 2, P: 0, G: 1 },
  { N: 1, H: 7, W: 9, Ci: 5, KH: 2, KW: 2, Co: 10, S: 2, P: 0, G: 1 },
  { N: 1, H: 9, W: 7, Ci: 5, KH: 4, KW: 4, Co: 3, S: 2, P: 1, G: 1 },
  { N: 2, H: 5, W: 7, Ci: 12, KH: 3, KW: 3, Co: 12, S: 1, P: 1, G: 12 },
  { N: 1, H: 9, W: 8, Ci: 19, KH: 3, KW: 3, Co: 19, S: 2, P: 1, G: 19 },
  { N: 1, H: 6, W: 6, Ci: 8, KH: 3, KW: 3, Co: 12, S: 1, P: 1, G: 4 },
  { N: 1, H: 24, W: 20, Ci: 16, KH: 3, KW: 3, Co: 32, S: 1, P: 1, G: 1 },
  // Cout <= 4 with Cin >= 8 (direct loops)
  { N: 2, H: 7, W: 6, Ci: 37, KH: 3, KW: 3, Co: 3, S: 2, P: 1, G: 1 },
  { N: 1, H: 5, W: 6, Ci: 16, KH: 3, KW: 3, Co: 1, S: 1, P: 1, G: 1 },
  { N: 1, H: 6, W: 5, Ci: 8, KH: 3, KW: 2, Co: 4, S: 1, P: 0, G: 1 },
  // weight >= 64Ki floats (big sequential im2col tiles)
  { N: 2, H: 6, W: 7, Ci: 72, KH: 3, KW: 3, Co: 104, S: 1, P: 1, G: 1 },
  // depthwise with C not a multiple of the vector width (overlapping last channel block), C < 8, C < 4
  { N: 2, H: 9, W: 11, Ci: 13, KH: 3, KW: 3, Co: 13, S: 1, P: 1, G: 13 },
  { N: 1, H: 7, W: 8, Ci: 6, KH: 3, KW: 3, Co: 6, S: 1, P: 1, G: 6 },
  { N: 1, H: 6, W: 9, Ci: 3, KH: 3, KW: 3, Co: 3, S: 1, P: 1, G: 3 },
  { N: 1, H: 5, W: 6, Ci: 254, KH: 3, KW: 3, Co: 254, S: 1, P: 1, G: 254 },
  { N: 1, H: 8, W: 7, Ci: 21, KH: 5, KW: 5, Co: 21, S: 1, P: 2, G: 21 },
];

const name = (c: ConvCase) => `N${c.N} ${c.H}x${c.W}x${c.Ci} k${c.KH}x${c.KW} Co${c.Co} s${c.S} p${c.P} g${c.G}`;

describe('conv2d', () => {
  it('matches a float64 reference (dense, 1x1, strided, 2x2/4x4, depthwise, grouped)', async () => {
    let seed = 1;
    for (const c of convCases) {
      const x = randArray(c.N * c.H * c.W * c.Ci, seed++), w = randArray(c.KH * c.KW * (c.Ci / c.G) * c.Co, seed++);
      const b = randArray(c.Co, seed++);
      for (const withBias of [true, false]) {
        const y = conv2d(tensor(x, [c.N, c.H, c.W, c.Ci]), tensor(w, [c.KH, c.KW, c.Ci / c.G, c.Co]),
          withBias ? tensor(b, [c.Co]) : null, { stride: c.S, pad: c.P, groups: c.G });
        const ref = convRef(c, x, w, withBias ? b : null);
        expect(y.shape).toEqual([c.N, Math.floor((c.H + 2 * c.P - c.KH) / c.S) + 1, Math.floor((c.W + 2 * c.P - c.KW) / c.S) + 1, c.Co]);
        await expectClose(y, ref, 1e-6, name(c));
      }
    }
  });

  it('gradients (dense 3x3 s1/s2, 1x1, depthwise, 2x2 s2, grouped, Cout <= 4, big weight)', async () => {
    const grads: ConvCase[] = [
      { N: 1, H: 5, W: 4, Ci: 3, KH: 3, KW: 3, Co: 4, S: 1, P: 1, G: 1 },
      { N: 2, H: 5, W: 5, Ci: 2, KH: 3, KW: 3, Co: 3, S: 2, P: 1, G: 1 },
      { N: 1, H: 4, W: 3, Ci: 5, KH: 1, KW: 1, Co: 4, S: 1, P: 0, G: 1 },
      { N: 1, H: 5, W: 6, Ci: 6, KH: 3, KW: 3, Co: 6, S: 1, P: 1, G: 6 },
      { N: 1, H: 5, W: 5, Ci: 4, KH: 3, KW: 3, Co: 4, S: 2, P: 1, G: 4 },
      { N: 1, H: 4, W: 6, Ci: 3, KH: 2, KW: 2, Co: 4, S: 2, P: 0, G: 1 },
      { N: 1, H: 4, W: 4, Ci: 4, KH: 3, KW: 3, Co: 6, S: 1, P: 1, G: 2 },
      { N: 1, H: 5, W: 7, Ci: 13, KH: 3, KW: 3, Co: 13, S: 1, P: 1, G: 13 },
      { N: 1, H: 6, W: 5, Ci: 19, KH: 3, KW: 3, Co: 19, S: 2, P: 1, G: 19 },
      { N: 1, H: 4, W: 5, Ci: 3, KH: 3, KW: 3, Co: 3, S: 1, P: 0, G: 3 },
      // Cout <= 4 with Cin >= 8 (direct backward loops: channel blocks of 32, 8 and a tail), big weight
      { N: 2, H: 5, W: 6, Ci: 9, KH: 3, KW: 3, Co: 3, S: 1, P: 1, G: 1 },
      { N: 1, H: 6, W: 5, Ci: 43, KH: 3, KW: 3, Co: 2, S: 2, P: 1, G: 1 },
      { N: 1, H: 5, W: 6, Ci: 64, KH: 3, KW: 3, Co: 120, S: 1, P: 1, G: 1 },
    ];
    let seed = 100;
    for (const c of grads) {
      const opts = { stride: c.S, pad: c.P, groups: c.G };
      await gradcheck((x, w, b) => conv2d(x, w, b!, opts), [
        { data: randArray(c.N * c.H * c.W * c.Ci, seed++), shape: [c.N, c.H, c.W, c.Ci] },
        { data: randArray(c.KH * c.KW * (c.Ci / c.G) * c.Co, seed++), shape: [c.KH, c.KW, c.Ci / c.G, c.Co] },
        { data: randArray(c.Co, seed++), shape: [c.Co] },
      ]);
      await gradcheck((x, w) => conv2d(x, w, null, opts), [
        { data: randArray(c.N * c.H * c.W * c.Ci, seed++), shape: [c.N, c.H, c.W, c.Ci] },
        { data: randArray(c.KH * c.KW * (c.Ci / c.G) * c.Co, seed++), shape: [c.KH, c.KW, c.Ci / c.G, c.Co] },
      ]);
    }
  });

  it('is deterministic', async () => {
    const x = randArray(2 * 33 * 31 * 16, 5), w = randArray(9 * 16 * 24, 6);
    const run = async () => (await conv2d(tensor(x, [2, 33, 31, 16]), tensor(w, [3, 3, 16, 24]), null, { pad: 1 }).data()) as Float32Array;
    const a = await run(), b = await run();
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });

  it('depthwise backward with C = 510 matches a float64 reference', async () => {
    const c: ConvCase = { N: 1, H: 6, W: 7, Ci: 510, KH: 3, KW: 3, Co: 510, S: 1, P: 1, G: 510 };
    const xs = randArray(6 * 7 * 510, 11), ws = randArray(9 * 510, 12), gy = randArray(6 * 7 * 510, 13);
    const x = tensor(xs, [1, 6, 7, 510]), w = tensor(ws, [3, 3, 1, 510]), b = tensor(randArray(510, 14), [510]);
    for (const t of [x, w, b]) t.requiresGrad = true;
    const y = conv2d(x, w, b, { pad: 1, groups: 510 });
    await expectClose(y, convRef(c, xs, ws, (await b.data()) as Float32Array), 1e-6, 'depthwise C=510');
    backward(y, tensor(gy, [1, 6, 7, 510]));
    const dx = new Float64Array(xs.length), dw = new Float64Array(ws.length), db = new Float64Array(510);
    for (let oh = 0; oh < 6; ++oh)
      for (let ow = 0; ow < 7; ++ow)
        for (let ch = 0; ch < 510; ++ch) {
          const g = gy[(oh * 7 + ow) * 510 + ch]!;
          db[ch] += g;
          for (let kh = 0; kh < 3; ++kh)
            for (let kw = 0; kw < 3; ++kw) {
              const ih = oh - 1 + kh, iw = ow - 1 + kw;
              if (ih < 0 || ih >= 6 || iw < 0 || iw >= 7) continue;
              dx[(ih * 7 + iw) * 510 + ch] += g * ws[(kh * 3 + kw) * 510 + ch]!;
              dw[(kh * 3 + kw) * 510 + ch] += g * xs[(ih * 7 + iw) * 510 + ch]!;
            }
        }
    await expectClose(x.grad!, dx, 1e-6, 'depthwise C=510 dx');
    await expectClose(w.grad!, dw, 1e-6, 'depthwise C=510 dw');
    await expectClose(b.grad!, db, 1e-6, 'depthwise C=510 db');
  });

  it('1x1 backwards match float64: NAFNet and Restormer widths (510, 255), 768 columns, odd sizes', async () => {
    const shapes: [number[], number][] = [
      [[2, 5, 7, 16], 32], [[1, 40, 40, 48], 96], [[1, 3, 5, 96], 192], [[1, 4, 4, 192], 384], [[3, 10, 10, 32], 16],
      [[1, 2, 3, 128], 768], [[1, 8, 8, 96], 510], [[2, 5, 5, 255], 96], [[1, 7, 9, 12], 20], [[1, 3, 3, 8], 8],
    ];
    let seed = 1200;
    for (const [xs, Co] of shapes) {
      const Ci = xs[3]!, rows = xs[0]! * xs[1]! * xs[2]!, ys = [...xs.slice(0, 3), Co];
      const x = randArray(rows * Ci, seed++), w = randArray(Ci * Co, seed++), dy = randArray(rows * Co, seed++);
      const ref = pointwiseBackwardRef(x, w, dy, rows, Ci, Co, (i, o) => i * Co + o);
      const got = await Promise.all(runOp('conv2d_backward', [tensor(dy, ys), tensor(x, xs), tensor(w, [1, 1, Ci, Co])], [1, 0, 1]).map((t) => t.data()));
      for (const [i, r] of ref.entries()) expect(relErr(got[i]!, r), `grad ${i} [${xs}] -> ${Co}`).toBeLessThanOrEqual(1e-5);
    }
  });

  it('validates shapes and attributes', () => {
    const x = tensor(randArray(2 * 32 * 32 * 16, 1), [2, 32, 32, 16]);
    expect(() => conv2d(x, tensor(randArray(3 * 3 * 8 * 32, 1), [3, 3, 8, 32]), null, { pad: 1 })).toThrowError(
      /weight expects Cin\/groups = 16 at dim 2, got 8 \(x shape \[2, 32, 32, 16\], weight shape \[3, 3, 8, 32\]\)/,
    );
    const w = tensor(randArray(3 * 3 * 16 * 8, 1), [3, 3, 16, 8]);
    expect(() => conv2d(x, w, tensor(randArray(4, 1), [4]))).toThrowError(/bias must have shape \[8\]/);
    expect(() => conv2d(x, w, null, { stride: 0 })).toThrowError(/stride must be >= 1/);
    expect(() => conv2d(x, w, null, { groups: 3 })).toThrowError(/not divisible by groups/);
    const tiny = tensor(randArray(2 * 2 * 16, 1), [1, 2, 2, 16]);
    expect(() => conv2d(tiny, w, null)).toThrowError(/output would be empty/);
  });
});

/** float64 dx, dw, db of y = x w + b over rows, for a weight laid out as at(i, o) (dw in the same layout). */
function pointwiseBackwardRef(x: Float32Array, w: Float32Array, dy: Float32Array, rows: number, I: number, O: number,
  at: (i: number, o: number) => number): [Float64Array, Float64Array, Float64Array] {
  const dx = new Float64Array(rows * I), dw = new Float64Array(O * I), db = new Float64Array(O);
  for (let r = 0; r < rows; ++r)
    for (let o = 0; o < O; ++o) {
      const d = dy[r * O + o]!;
      db[o] += d;
      for (let i = 0; i < I; ++i) {
        dx[r * I + i] += d * w[at(i, o)]!;
        dw[at(i, o)] += d * x[r * I + i]!;
      }
    }
  return [dx, dw, db];
}

function linearRef(x: Float32Array, rows: number, I: number, w: Float32Array, O: number, b: Float32Array | null): Float64Array {
  const y = new Float64Array(rows * O);
  for (let r = 0; r < rows; ++r)
    for (let o = 0; o < O; ++o) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < I; ++i) s += x[r * I + i]! * w[o * I + i]!;
      y[r * O + o] = s;
    }
  return y;
}

describe('linear', () => {
  it('matches a float64 reference', async () => {
    for (const [xs, O] of [[[5, 7], 3], [[2, 3, 17], 33], [[40, 70], 50], [[1, 1], 1]] as [number[], number][]) {
      const I = xs[xs.length - 1]!, rows = xs.reduce((a, b) => a * b, 1) / I;
      const x = randArray(rows * I, O), w = randArray(O * I, O + 1), b = randArray(O, O + 2);
      const y = linear(tensor(x, xs), tensor(w, [O, I]), tensor(b, [O]));
      expect(y.shape).toEqual([...xs.slice(0, -1), O]);
      await expectClose(y, linearRef(x, rows, I, w, O, b), 1e-6, `linear ${xs} -> ${O}`);
      await expectClose(linear(tensor(x, xs), tensor(w, [O, I]), null), linearRef(x, rows, I, w, O, null), 1e-6);
    }
    expect(() => linear(tensor(randArray(12, 1), [3, 4]), tensor(randArray(10, 1), [2, 5]), null)).toThrowError(
      /weight \[out, in\] expects in = 4/,
    );
  });

  it('gradients', async () => {
    await gradcheck((x, w, b) => linear(x, w, b!), [
      { data: randArray(2 * 3 * 5, 1), shape: [2, 3, 5] },
      { data: randArray(4 * 5, 2), shape: [4, 5] },
      { data: randArray(4, 3), shape: [4] },
    ]);
    await gradcheck((x, w) => linear(x, w, null), [
      { data: randArray(3 * 6, 4), shape: [3, 6] },
      { data: randArray(7 * 6, 5), shape: [7, 6] },
    ]);
  });
  it("MAXIM's shapes match float64: channel Linears with odd row counts, the spatial Dense over 256 positions", async () => {
    let seed = 1500;
    for (const [xs, O, bias] of [[[5, 13, 17, 64], 128, true], [[4, 16, 16, 256], 256, true], [[3, 19, 19, 96], 32, false]] as [number[], number, boolean][]) {
      const I = xs[3]!, rows = xs[0]! * xs[1]! * xs[2]!;
      const x = randArray(rows * I, seed++), w = randArray(O * I, seed++), b = bias ? randArray(O, seed++) : null;
      const y = runOp('linear', [tensor(x, xs), tensor(w, [O, I]), ...(b ? [tensor(b, [O])] : [])])[0]!;
      expect(relErr(await y.data(), linearRef(x, rows, I, w, O, b)), `[${xs}] -> ${O}`).toBeLessThanOrEqual(1e-6);
    }
  });

  it("a Linear + residual (conv1x1_add with a Linear's weight) matches float64, forward and backward", async () => {
    let seed = 1600;
    for (const [xs, O, bias] of [[[5, 13, 17, 64], 32, true], [[4, 16, 16, 64], 64, false]] as [number[], number, boolean][]) {
      const I = xs[3]!, rows = xs[0]! * xs[1]! * xs[2]!, ys = [...xs.slice(0, 3), O];
      const x = randArray(rows * I, seed++), w = randArray(O * I, seed++), r = randArray(rows * O, seed++);
      const b = bias ? randArray(O, seed++) : null, dy = randArray(rows * O, seed++);
      const ins = [tensor(x, xs), tensor(w, [O, I]), tensor(r, ys), ...(b ? [tensor(b, [O])] : [])];
      const y = await runOp('conv1x1_add', ins)[0]!.data();
      expect(relErr(y, linearRef(x, rows, I, w, O, b).map((v, i) => v + r[i]!)), `forward [${xs}] -> ${O}`).toBeLessThanOrEqual(1e-6);
      const got = await Promise.all(runOp('conv1x1_add_backward', [tensor(dy, ys), ins[0]!, ins[1]!, ...(b ? [ins[3]!] : [])]).map((t) => t.data()));
      const ref = pointwiseBackwardRef(x, w, dy, rows, I, O, (i, o) => o * I + i);
      expect(got.length).toBe(bias ? 3 : 2);
      for (let i = 0; i < got.length; i++) expect(relErr(got[i]!, ref[i]!), `grad ${i} [${xs}] -> ${O}`).toBeLessThanOrEqual(2e-6);
    }
  });

  it('linear_backward matches float64 at MAXIM\'s shapes, several output widths and odd row counts', async () => {
    const shapes: [number[], number][] = [[[5, 13, 17, 64], 128], [[4, 16, 16, 256], 256], [[3, 19, 19, 96], 40], [[1, 33, 33, 12], 20]];
    let seed = 1400;
    for (const [xs, O] of shapes) {
      const I = xs[3]!, rows = xs[0]! * xs[1]! * xs[2]!, ys = [...xs.slice(0, 3), O];
      const x = randArray(rows * I, seed++), w = randArray(O * I, seed++), dy = randArray(rows * O, seed++);
      const ref = pointwiseBackwardRef(x, w, dy, rows, I, O, (i, o) => o * I + i);
      const got = await Promise.all(runOp('linear_backward', [tensor(dy, ys), tensor(x, xs), tensor(w, [O, I])]).map((t) => t.data()));
      for (const [i, r] of ref.entries()) expect(relErr(got[i]!, r), `grad ${i} [${xs}] -> ${O}`).toBeLessThanOrEqual(2e-6);
    }
  });
});

function matmulRef(a: Float32Array, b: Float32Array, batch: number, M: number, K: number, N: number, tA: boolean, tB: boolean, sharedB: boolean): Float64Array {
  const y = new Float64Array(batch * M * N);
  for (let q = 0; q < batch; ++q)
    for (let i = 0; i < M; ++i)
      for (let j = 0; j < N; ++j) {
        let s = 0;
        const bo = sharedB ? 0 : q * K * N;
        for (let k = 0; k < K; ++k)
          s += (tA ? a[q * M * K + k * M + i]! : a[q * M * K + i * K + k]!) * (tB ? b[bo + j * K + k]! : b[bo + k * N + j]!);
        y[(q * M + i) * N + j] = s;
      }
  return y;
}

describe('matmul', () => {
  const combos = [[false, false], [true, false], [false, true], [true, true]] as const;
  const shapes = (bat: number[], M: number, K: number, N: number, tA: boolean, tB: boolean, sharedB: boolean) => ({
    as: [...bat, tA ? K : M, tA ? M : K],
    bs: [...(sharedB ? [] : bat), tB ? N : K, tB ? K : N],
  });

  it('matches a float64 reference for all transpose combinations, batched and shared b', async () => {
    let seed = 1;
    for (const [tA, tB] of combos)
      for (const [bat, M, K, N, sharedB] of [[[], 5, 7, 3, false], [[2, 3], 6, 9, 17, false], [[4], 33, 20, 18, true], [[3], 70, 40, 50, false]] as [number[], number, number, number, boolean][]) {
        const { as, bs } = shapes(bat, M, K, N, tA, tB, sharedB);
        const batch = bat.reduce((x, y) => x * y, 1);
        const a = randArray(batch * M * K, seed++), b = randArray((sharedB ? 1 : batch) * K * N, seed++);
        const y = matmul(tensor(a, as), tensor(b, bs), { transA: tA, transB: tB });
        expect(y.shape).toEqual([...bat, M, N]);
        await expectClose(y, matmulRef(a, b, batch, M, K, N, tA, tB, sharedB), 1e-6, `matmul ${bat} ${M}x${K}x${N} tA=${tA} tB=${tB}`);
      }
    expect(() => matmul(tensor(randArray(6, 1), [2, 3]), tensor(randArray(8, 1), [4, 2]))).toThrowError(/inner dims differ/);
    expect(() => matmul(tensor(randArray(12, 1), [2, 2, 3]), tensor(randArray(18, 1), [3, 3, 2]))).toThrowError(/batch dims/);
  });

  it('small M, N with a long K (split K) and wide one-K-block products match a float64 reference', async () => {
    let seed = 300;
    const cases: [number, number, number, number, boolean, boolean][] = [
      [1, 20, 9000, 17, false, true], [2, 24, 8200, 30, true, false], [1, 48, 4100, 40, false, false],
      [3, 7, 5000, 64, true, true], [1, 100, 4500, 90, false, true], [1, 24, 24, 2100, false, false],
      [2, 12, 12, 2300, true, false],
    ];
    for (const [batch, M, K, N, tA, tB] of cases) {
      const { as, bs } = shapes([batch], M, K, N, tA, tB, false);
      const a = randArray(batch * M * K, seed++), b = randArray(batch * K * N, seed++);
      const y = matmul(tensor(a, as), tensor(b, bs), { transA: tA, transB: tB });
      await expectClose(y, matmulRef(a, b, batch, M, K, N, tA, tB, false), 1e-6, `matmul ${batch} ${M}x${K}x${N} tA=${tA} tB=${tB}`);
    }
  });

  it('gradients for all transpose combinations (plain, batched, shared b)', async () => {
    let seed = 50;
    for (const [tA, tB] of combos)
      for (const [bat, sharedB] of [[[], false], [[2], false], [[2], true]] as [number[], boolean][]) {
        const { as, bs } = shapes(bat, 3, 4, 5, tA, tB, sharedB);
        await gradcheck((a, b) => matmul(a, b, { transA: tA, transB: tB }), [
          { data: randArray(as.reduce((x, y) => x * y, 1), seed++), shape: as },
          { data: randArray(bs.reduce((x, y) => x * y, 1), seed++), shape: bs },
        ]);
      }
  });
});

describe('determinism across thread counts', () => {
  // Child processes (the built package, as in core.test.ts) with IRCONSTYLE_THREADS = 1, 2, 3 hash their outputs.
  const script = `
    import { tensor, ops, backward } from 'irconstyle';
    import { createHash } from 'node:crypto';
        let s = 7;
    const r = (n) => { const a = new Float32Array(n); for (let i = 0; i < n; ++i) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; a[i] = s / 4294967296 - 0.5; } return a; };
    const h = createHash('sha256');
    const add = async (t) => h.update(Buffer.from((await t.data()).buffer));
    await add(ops.matmul(tensor(r(2 * 20 * 9000), [2, 20, 9000]), tensor(r(2 * 17 * 9000), [2, 17, 9000]), { transB: true }));
    await add(ops.matmul(tensor(r(8200 * 24), [1, 8200, 24]), tensor(r(8200 * 30), [1, 8200, 30]), { transA: true }));
    await add(ops.matmul(tensor(r(24 * 24), [24, 24]), tensor(r(24 * 2100), [24, 2100])));
    for (const C of [13, 510]) {
      const x = tensor(r(2 * 9 * 10 * C), [2, 9, 10, C]), w = tensor(r(9 * C), [3, 3, 1, C]);
      x.requiresGrad = true;
      w.requiresGrad = true;
      const y = ops.conv2d(x, w, null, { pad: 1, groups: C });
      await add(y);
      backward(y, tensor(r(2 * 9 * 10 * C), [2, 9, 10, C]));
      await add(x.grad);
      await add(w.grad);
    }
    // dense convs: big weight (sequential big tiles), Cout = 3 (direct loops), small weight (per-thread tiles)
    for (const [H, W, Ci, Co, S] of [[37, 41, 128, 64, 1], [17, 19, 40, 3, 2], [15, 16, 8, 5, 1]]) {
      const x = tensor(r(2 * H * W * Ci), [2, H, W, Ci]), w = tensor(r(9 * Ci * Co), [3, 3, Ci, Co]);
      const b = tensor(r(Co), [Co]);
      x.requiresGrad = true;
      w.requiresGrad = true;
      b.requiresGrad = true;
      const y = ops.conv2d(x, w, b, { pad: 1, stride: S });
      await add(y);
      backward(y, tensor(r(y.size), y.shape));
      await add(x.grad);
      await add(w.grad);
      await add(b.grad);
    }
    console.log(h.digest('hex'));`;
  const run = (threads: number) => execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, IRCONSTYLE_THREADS: String(threads) },
    encoding: 'utf8',
  }).trim();

  it('split-K matmul, wide A.V matmul, depthwise conv (C = 13, 510) and dense convs give the same bits for 1, 2 and 3 threads', () => {
    const one = run(1);
    expect(one).toMatch(/^[0-9a-f]{64}$/);
    expect(run(2)).toBe(one);
    expect(run(3)).toBe(one);
  });
});
