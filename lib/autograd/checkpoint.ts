// Activation checkpointing: a sub-network runs forward without keeping its intermediate tensors for backward, and
// runs again inside backward to produce its gradients. Peak memory drops to about one saved input per
// checkpointed block, for one more forward of those blocks. The recomputation uses the same kernels on the same
// values, so outputs and gradients are identical to the plain path. The sub-network must be deterministic and
// free of side effects (no BatchNorm running statistics, no dropout): NAFBlocks, Transformer blocks, MAXIM blocks.
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { viewOf } from '../tensor/tensor.js';
import { tidy, tidyTracked } from '../tensor/scope.js';
import { isGradEnabled, noGrad, withGrad } from './node.js';
import { backward, record } from './tape.js';

/**
 * y = fn(x), where fn uses the trainable tensors `params` (they receive their gradients when backward reaches y,
 * through the recomputation). Outside grad mode, or when nothing needs a gradient, it is simply fn(x).
 */
export function checkpoint(fn: (x: Tensor) => Tensor, x: Tensor, params: readonly Tensor[]): Tensor {
  const xNeedsGrad = x.requiresGrad;
  if (!isGradEnabled() || !(xNeedsGrad || params.some((p) => p.requiresGrad))) return fn(x);
  const y = noGrad(() => tidy(() => fn(x)));
  record({
    name: 'checkpoint',
    inputs: [x, ...params],
    outputs: [y],
    save: [x],
    backward: ([gy], [xs]) => {
      if (!gy) return [];
      // A fresh leaf over the saved input; fn's parameters accumulate their gradients as leaves do.
      const xl = viewOf(xs!, 0, xs!.shape, false);
      xl.requiresGrad = xNeedsGrad;
      try {
        const yr = withGrad(true, () => tidyTracked(() => fn(xl)));
        try {
          backward(yr, gy);
        } finally {
          yr.dispose();
        }
        const gx = xl.grad;
        xl.grad = null;
        return [gx];
      } finally {
        xl.dispose();
      }
    },
  });
  return y;
}

/** A module whose chain of layers can run checkpointed (setCheckpointing turns `checkpoint` on). */
export interface Checkpointable {
  checkpoint: boolean;
}

/** x through each layer in turn; with `on`, each layer is a checkpoint (keeps only its input for backward). */
export function chain(layers: readonly (Module & { forward(x: Tensor): Tensor })[], x: Tensor, on: boolean): Tensor {
  for (const l of layers) x = on ? checkpoint((t) => l.forward(t), x, l.parameters()) : l.forward(x);
  return x;
}
