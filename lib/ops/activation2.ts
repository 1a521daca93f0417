// Activations of the Transformer/MLP backbones: relu, sigmoid, softmax (last axis), l2Normalize (last axis).
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

/** max(x, 0). The backward uses the output (y > 0 exactly where x > 0). */
export function relu(x: Tensor): Tensor {
  const [y] = runOp('relu', [x]);
  record({
    name: 'relu',
    inputs: [x],
    outputs: [y!],
    save: [y!],
    backward: ([gy], [ys]) => [runOp('relu_backward', [gy!, ys!])[0]!],
  });
  return y!;
}

/** 1 / (1 + exp(-x)). The backward uses the output. */
export function sigmoid(x: Tensor): Tensor {
  const [y] = runOp('sigmoid', [x]);
  record({
    name: 'sigmoid',
    inputs: [x],
    outputs: [y!],
    save: [y!],
    backward: ([gy], [ys]) => [runOp('sigmoid_backward', [gy!, ys!])[0]!],
  });
  return y!;
}

/** Softmax over the last axis (max-subtracted). The backward uses the output. */
export function softmax(x: Tensor): Tensor {
  const [y] = runOp('softmax', [x]);
  record({
    name: 'softmax',
    inputs: [x],
    outputs: [y!],
    save: [y!],
    backward: ([gy], [ys]) => [runOp('softmax_backward', [gy!, ys!])[0]!],
  });
  return y!;
}

/** x / max(‖x‖₂, eps) over the last axis (torch F.normalize(x, p=2, dim=-1, eps)). */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  const [y] = runOp('l2_normalize', [x], [eps]);
  record({
    name: 'l2_normalize',
    inputs: [x],
    outputs: [y!],
    save: [x],
    backward: ([gy], [xs]) => [runOp('l2_normalize_backward', [gy!, xs!], [eps])[0]!],
  });
  return y!;
}
