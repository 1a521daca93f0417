// Elementwise arithmetic with numpy broadcasting (add, sub, mul), sumTo (the reduction that undoes a
// broadcast), scale, and the conveniences sum / mean.
import { record } from '../autograd/tape.js';
import { Tensor, type Shape } from '../tensor/tensor.js';
import { runOp } from './run.js';

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Gradient of a broadcast operand: gy summed down to `shape` (a view when nothing was broadcast). */
function reduceTo(gy: Tensor, shape: Shape): Tensor {
  if (sameShape(gy.shape, shape)) return gy.reshape(shape);
  if (gy.size === sizeOfShape(shape)) return gy.reshape(shape);
  return runOp('sum_to', [gy], [...shape])[0]!;
}

function sizeOfShape(s: Shape): number {
  return s.reduce((a, b) => a * b, 1);
}

/** a + b (broadcasting). */
export function add(a: Tensor, b: Tensor): Tensor {
  const [y] = runOp('add', [a, b]);
  const sa = a.shape, sb = b.shape;
  record({ name: 'add', inputs: [a, b], outputs: [y!], backward: ([gy]) => [reduceTo(gy!, sa), reduceTo(gy!, sb)] });
  return y!;
}

/** a - b (broadcasting). */
export function sub(a: Tensor, b: Tensor): Tensor {
  const [y] = runOp('sub', [a, b]);
  const sa = a.shape, sb = b.shape;
  record({
    name: 'sub',
    inputs: [a, b],
    outputs: [y!],
    backward: ([gy]) => {
      const gb = reduceTo(gy!, sb);
      const neg = runOp('scale', [gb], [-1, 0])[0]!;
      gb.dispose();
      return [reduceTo(gy!, sa), neg];
    },
  });
  return y!;
}

/** a * b (broadcasting). */
export function mul(a: Tensor, b: Tensor): Tensor {
  const [y] = runOp('mul', [a, b]);
  const sa = a.shape, sb = b.shape;
  record({
    name: 'mul',
    inputs: [a, b],
    outputs: [y!],
    save: [a, b],
    backward: ([gy], [as, bs]) => {
      const ga = runOp('mul', [gy!, bs!])[0]!;
      const gb = runOp('mul', [gy!, as!])[0]!;
      const ra = reduceTo(ga, sa), rb = reduceTo(gb, sb);
      ga.dispose();
      gb.dispose();
      return [ra, rb];
    },
  });
  return y!;
}

/** Sums x over the broadcast dims so the result has `shape` (which must broadcast to x.shape). */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  const [y] = runOp('sum_to', [x], [...shape]);
  const sx = x.shape;
  record({
    name: 'sum_to',
    inputs: [x],
    outputs: [y!],
    backward: ([gy]) => {
      const z = runOp('fill', [], [0, 0, ...sx])[0]!;
      const g = runOp('add', [z, gy!])[0]!;
      z.dispose();
      return [g];
    },
  });
  return y!;
}

/** alpha * x + beta. */
export function scale(x: Tensor, alpha: number, beta = 0): Tensor {
  const [y] = runOp('scale', [x], [alpha, beta]);
  record({ name: 'scale', inputs: [x], outputs: [y!], backward: ([gy]) => [runOp('scale', [gy!], [alpha, 0])[0]!] });
  return y!;
}

/** Sum of all elements, shape [1] (shape [] for a rank-0 x). */
export function sum(x: Tensor): Tensor {
  return sumTo(x, x.rank === 0 ? [] : [1]);
}

/** Mean of all elements, shape [1]. */
export function mean(x: Tensor): Tensor {
  const s = sum(x);
  const m = scale(s, 1 / x.size, 0);
  s.dispose();
  return m;
}
