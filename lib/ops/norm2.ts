// Restormer's BiasFree_LayerNorm over the last axis.
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

/**
 * y = x / sqrt(var + eps) * w over the last axis (var biased, about the mean; the numerator is NOT centred),
 * x[..., C], w[C]. Differentiable in x and w.
 */
export function layerNormBiasFree(x: Tensor, w: Tensor, eps = 1e-5): Tensor {
  const [y, rstd] = runOp('layer_norm_bias_free', [x, w], [eps]);
  record({
    name: 'layer_norm_bias_free',
    inputs: [x, w],
    outputs: [y!],
    save: [x, w, rstd!],
    accumulate: [0],
    backward: ([gy], [xs, ws, r], [acc]) => {
      const [dx, dw] = runOp('layer_norm_bias_free_backward', [gy!, xs!, ws!, r!, ...(acc ? [acc] : [])]);
      return [dx!, dw!];
    },
  });
  rstd!.dispose();
  return y!;
}
