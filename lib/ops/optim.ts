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

/** One torch.optim.AdamW update of param (decoupled weight decay, no amsgrad); m and v are updated in place. */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, o: AdamWStepOptions): void {
  runOp('adamw_step', [param, grad, m, v], [o.lr, o.beta1, o.beta2, o.eps, o.wd, o.step]);
}

/** target = target * m + src * (1 - m), in place (EMA / momentum encoder update). */
export function momentumUpdate(target: Tensor, src: Tensor, m: number): void {
  runOp('momentum_update', [target, src], [m]);
}
