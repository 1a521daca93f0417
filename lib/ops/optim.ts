// Optimiser kernels (in place, queued, not differentiable).
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

export interface AdamWStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  wd: number;
  /** 1 for the first update. */
  step: number;
}

/**
 * One torch.optim.AdamW update of param (decoupled weight decay, no amsgrad); m and v are updated in place.
 * `factors` (float32 [3] on param's device, see adamwFactors) supplies the per-step factors instead of lr and step:
 * a recorded CUDA graph replays later steps with the values written there.
 */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions, factors?: Tensor): void {
  runOp('adamw_step', factors ? [param, grad, m, v, factors] : [param, grad, m, v], [o.lr, o.beta1, o.beta2, o.eps, o.wd, o.step]);
}

/** The per-step AdamW factors [1 - lr·wd, -lr / (1 - β1^step), sqrt(1 - β2^step)] in double, rounded to float32. */
export function adamwFactors(o: AdamWStepOptions): Float32Array {
  return Float32Array.of(1 - o.lr * o.wd, -(o.lr / (1 - o.beta1 ** o.step)), Math.sqrt(1 - o.beta2 ** o.step));
}

/**
 * The MoCo queue step with the pointer on the device: returns [next, old] — copies of the n rows after the
 * pointer's block and of the block itself (queue [K, D], internal layout) — and writes q [n, D] over that block.
 * ptr: int32 [1], a multiple of n below K. The caller advances it.
 */
export function queueSwap(queue: Tensor, q: Tensor, ptr: Tensor): [Tensor, Tensor] {
  const [next, old] = runOp('queue_swap', [queue, q, ptr]);
  return [next!, old!];
}

/** target = target * m + src * (1 - m), in place (EMA / momentum encoder update). */
export function momentumUpdate(target: Tensor, src: Tensor, m: number): void {
  runOp('momentum_update', [target, src], [m]);
}
