// Losses with mean reduction: crossEntropy(logits[N, K], labels int32[N]), l1Loss, mseLoss. Each returns [1].
import { IrcError } from '../errors.js';
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

/** mean over rows of logsumexp(logits[n]) - logits[n, labels[n]]. Labels are int32 in [0, K). */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  if (labels.dtype !== 'int32') throw new IrcError('E_DTYPE', `crossEntropy: labels must be int32, got ${labels.dtype}`);
  const [y] = runOp('cross_entropy', [logits, labels]);
  record({
    name: 'cross_entropy',
    inputs: [logits, labels],
    outputs: [y!],
    save: [logits, labels],
    backward: ([gy], [l, t]) => [runOp('cross_entropy_backward', [gy!, l!, t!])[0]!, null],
  });
  return y!;
}

/** mean |a - b|. */
export function l1Loss(a: Tensor, b: Tensor): Tensor {
  const [y] = runOp('l1_loss', [a, b]);
  record({
    name: 'l1_loss',
    inputs: [a, b],
    outputs: [y!],
    save: [a, b],
    backward: ([gy], [as, bs]) => {
      const [da, db] = runOp('l1_loss_backward', [gy!, as!, bs!]);
      return [da!, db!];
    },
  });
  return y!;
}

/** mean (a - b)^2. */
export function mseLoss(a: Tensor, b: Tensor): Tensor {
  const [y] = runOp('mse_loss', [a, b]);
  record({
    name: 'mse_loss',
    inputs: [a, b],
    outputs: [y!],
    save: [a, b],
    backward: ([gy], [as, bs]) => {
      const [da] = runOp('mse_loss_backward', [gy!, as!, bs!]);
      const db = runOp('scale', [da!], [-1, 0])[0]!;
      return [da!, db];
    },
  });
  return y!;
}
