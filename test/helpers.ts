// Test utilities: seeded random data, float64 references, tensor comparison, finite-difference gradient checks.
import { expect } from 'vitest';
import { Tensor, tensor } from '../lib/tensor/tensor.js';
import { tidy } from '../lib/tensor/scope.js';
import { backward, setBackwardObserver } from '../lib/autograd/tape.js';
import { noGrad } from '../lib/autograd/node.js';
import { relErr } from '../lib/parity/fixture.js';

export { relErr };

/** How many elements of a and b differ (Infinity when the lengths do): 0 means bit-identical. */
export function differing(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; ++i) if (a[i] !== b[i]) n++;
  return n;
}

/**
 * Runs fn with IRCONSTYLE_EMULATE = mode (CUDA kernels' own code on the CPU backend; '' for none). fn must read its
 * results before it returns: the native kernels read the variable when they run.
 */
export async function withEmulation<T>(mode: string, fn: () => Promise<T>): Promise<T> {
  process.env.IRCONSTYLE_EMULATE = mode;
  try {
    return await fn();
  } finally {
    delete process.env.IRCONSTYLE_EMULATE;
  }
}

/** Deterministic PRNG (mulberry32) for test data. */
export function rng(seed = 1): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randArray(n: number, seed = 1, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; ++i) a[i] = lo + (hi - lo) * r();
  return a;
}

export function randTensor(shape: number[], seed = 1, lo = -1, hi = 1): Tensor {
  return tensor(randArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);
}

export async function expectClose(t: Tensor, ref: ArrayLike<number>, tol = 1e-5, what = ''): Promise<void> {
  const d = await t.data();
  const e = relErr(d, ref);
  expect(e, `${what} relative error ${e}`).toBeLessThanOrEqual(tol);
}

/** Names of the ops whose backward ran inside a gradcheck in this test file (see test/setup.ts). */
export const gradChecked = new Set<string>();

export interface GradcheckOptions {
  eps?: number;
  /** Max coordinates probed per input (chosen at random, always including the first and last). */
  probes?: number;
  rtol?: number;
  atol?: number;
  seed?: number;
}

/**
 * Central finite-difference check of every input's gradient. fn maps the inputs (fresh leaf tensors with
 * requiresGrad) to one output; the scalar probed is Σ fn(x) ⊙ R for a fixed random R, so every output
 * element matters. Numbers are accumulated in float64 on the JS side.
 */
export async function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: { data: Float32Array; shape: number[]; grad?: boolean }[],
  opts: GradcheckOptions = {},
): Promise<void> {
  const { eps = 1e-2, probes = 24, rtol = 2e-2, atol = 2e-3, seed = 7 } = opts;
  // Analytic.
  const leaves = inputs.map((x) => {
    const t = tensor(x.data, x.shape);
    t.requiresGrad = x.grad !== false;
    return t;
  });
  const y = fn(...leaves);
  const R = randArray(y.size, seed);
  const Rt = tensor(R, [...y.shape]);
  // Seeding backward with R gives the gradient of Σ y ⊙ R.
  setBackwardObserver((name) => gradChecked.add(name));
  try {
    backward(y, Rt);
  } finally {
    setBackwardObserver(null);
  }
  const grads = await Promise.all(leaves.map(async (t) => (t.grad ? ((await t.grad.data()) as Float32Array) : null)));
  const f = async (xs: Float32Array[]): Promise<number> => {
    const out = noGrad(() => tidy(() => fn(...xs.map((d, i) => tensor(d, inputs[i]!.shape)))));
    const d = await out.data();
    out.dispose();
    let s = 0;
    for (let i = 0; i < d.length; ++i) s += d[i]! * R[i]!;
    return s;
  };
  const r = rng(seed + 1);
  for (let k = 0; k < inputs.length; ++k) {
    if (inputs[k]!.grad === false) continue;
    const n = inputs[k]!.data.length;
    const g = grads[k];
    expect(g, `input ${k} received no gradient`).not.toBeNull();
    const idx = new Set<number>([0, n - 1]);
    while (idx.size < Math.min(probes, n)) idx.add(Math.floor(r() * n));
    for (const i of idx) {
      const xs = inputs.map((x) => Float32Array.from(x.data));
      const orig = xs[k]![i]!;
      xs[k]![i] = orig + eps;
      const fp = await f(xs);
      xs[k]![i] = orig - eps;
      const fm = await f(xs);
      const num = (fp - fm) / (2 * eps);
      const ana = g![i]!;
      expect(Math.abs(num - ana), `input ${k} [${i}]: numeric ${num} vs analytic ${ana}`).toBeLessThanOrEqual(
        atol + rtol * Math.max(Math.abs(num), Math.abs(ana)),
      );
    }
  }
  for (const t of leaves) t.dispose();
  Rt.dispose();
  y.dispose();
}

/** erf in float64 (series, then continued fraction), accurate to ~1e-15. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = ax, s = ax;
    for (let n = 1; n < 60; ++n) {
      term *= (-ax * ax) / n;
      s += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * s;
  }
  let f = 0;
  for (let n = 60; n >= 1; --n) f = (n / 2) / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

/** Exact GELU and its derivative in float64. */
export function gelu64(v: number): { y: number; dy: number } {
  const cdf = 0.5 * (1 + erf(v / Math.SQRT2));
  return { y: v * cdf, dy: cdf + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI) };
}
