// Parameter initialisation with PyTorch's default rules, from a seeded generator.
import { Rng } from '../data/photos.js';

let current = new Rng(10);

/** Seeds the generator used by layer constructors (the official code uses seed 10). */
export function setInitSeed(seed: number): void {
  current = new Rng(seed);
}

let skipRandom = 0;

/** Builds modules with zero-filled instead of random initial values (for counting parameters quickly). */
export function withoutRandomInit<T>(fn: () => T): T {
  skipRandom++;
  try {
    return fn();
  } finally {
    skipRandom--;
  }
}

/** Uniform(-bound, bound) values. */
export function uniform(n: number, bound: number): Float32Array {
  const a = new Float32Array(n);
  if (skipRandom) return a;
  for (let i = 0; i < n; ++i) a[i] = (2 * current.uniform() - 1) * bound;
  return a;
}

/** N(0, 1) values. */
export function normal(n: number): Float32Array {
  const a = new Float32Array(n);
  if (skipRandom) return a;
  for (let i = 0; i < n; ++i) a[i] = current.normal();
  return a;
}

/** kaiming_uniform(a=√5) as nn.Conv2d/nn.Linear use: bound 1/sqrt(fan_in); biases use the same bound. */
export function kaimingUniform(n: number, fanIn: number): Float32Array {
  return uniform(n, 1 / Math.sqrt(fanIn));
}

export function constant(n: number, v: number): Float32Array {
  return new Float32Array(n).fill(v);
}
