// Activations: leakyRelu, prelu, gelu (exact erf), with their backward rules.
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

/**
 * x > 0 ? x : slope * x. For slope ≥ 0 the backward uses the output (y > 0 exactly where x > 0), which the next
 * layer (a conv) keeps anyway, so x itself, the conv output before it, is not kept.
 */
export function leakyRelu(x: Tensor, slope = 0.1): Tensor {
  const [y] = runOp('leaky_relu', [x], [slope]);
  record({
    name: 'leaky_relu',
    inputs: [x],
    outputs: [y!],
    save: [slope >= 0 ? y! : x],
    backward: ([gy], [s]) => [runOp('leaky_relu_backward', [gy!, s!], [slope])[0]!],
  });
  return y!;
}

/** x > 0 ? x : a * x with a per-channel (last axis) weight a[C], or a shared a[1]. */
export function prelu(x: Tensor, a: Tensor): Tensor {
  const [y] = runOp('prelu', [x, a]);
  record({
    name: 'prelu',
    inputs: [x, a],
    outputs: [y!],
    save: [x, a],
    backward: ([gy], [xs, as]) => {
      const [dx, da] = runOp('prelu_backward', [gy!, xs!, as!]);
      return [dx!, da!];
    },
  });
  return y!;
}

/** Exact GELU: 0.5 x (1 + erf(x / sqrt 2)). */
export function gelu(x: Tensor): Tensor {
  const [y] = runOp('gelu', [x]);
  record({
    name: 'gelu',
    inputs: [x],
    outputs: [y!],
    save: [x],
    backward: ([gy], [xs]) => [runOp('gelu_backward', [gy!, xs!])[0]!],
  });
  return y!;
}
