// Normalisation layers: batchNorm1d (x[N, C]) and layerNorm2d (NAFNet's LayerNorm2d over the channels of NHWC).
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
}

/**
 * nn.BatchNorm1d on x[N, C]. In training mode normalises with batch statistics and updates runningMean /
 * runningVar in place (momentum 0.1 by default, unbiased variance for the running estimate); in eval mode uses
 * the running statistics. Differentiable in x, gamma and beta.
 */
export function batchNorm1d(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  opts: BatchNormOptions,
): Tensor {
  const training = opts.training ? 1 : 0;
  const [y, sm, si] = runOp('batch_norm1d', [x, gamma, beta, runningMean, runningVar], [
    training,
    opts.momentum ?? 0.1,
    opts.eps ?? 1e-5,
  ]);
  record({
    name: 'batch_norm1d',
    inputs: [x, gamma, beta, runningMean, runningVar],
    outputs: [y!],
    save: [x, gamma, sm!, si!],
    backward: ([gy], [xs, gs, m, s]) => {
      const [dx, dg, db] = runOp('batch_norm1d_backward', [gy!, xs!, gs!, m!, s!], [training]);
      return [dx!, dg!, db!, null, null];
    },
  });
  sm!.dispose();
  si!.dispose();
  return y!;
}

/** LayerNorm2d: per pixel, normalise the channels (last axis) with biased variance, then w * . + b. */
export function layerNorm2d(x: Tensor, w: Tensor, b: Tensor, eps = 1e-6): Tensor {
  const [y, mean, rstd] = runOp('layer_norm2d', [x, w, b], [eps]);
  record({
    name: 'layer_norm2d',
    inputs: [x, w, b],
    outputs: [y!],
    save: [x, w, mean!, rstd!],
    accumulate: [0], // x's pending gradient (e.g. from a residual skip) is added by the backward kernel
    backward: ([gy], [xs, ws, m, r], [acc]) => {
      const [dx, dw, db] = runOp('layer_norm2d_backward', [gy!, xs!, ws!, m!, r!, ...(acc ? [acc] : [])]);
      return [dx!, dw!, db!];
    },
  });
  mean!.dispose();
  rstd!.dispose();
  return y!;
}
