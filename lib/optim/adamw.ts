// AdamW over a flat parameter arena (torch.optim.AdamW semantics; one fused kernel per step).
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/create.js';
import { untracked } from '../tensor/scope.js';
import { noGrad } from '../autograd/node.js';
import { adamwStep, type AdamWStepOptions } from '../ops/optim.js';
import type { ParamArena } from '../nn/arena.js';

export interface AdamWOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of steps taken (bias corrections use it). */
  step = 0;
  readonly m: Tensor;
  readonly v: Tensor;

  /** Official settings by default: lr 3e-4, betas (0.9, 0.999), eps 1e-8, weight decay 1e-4. */
  constructor(readonly arena: ParamArena, opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 3e-4;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 1e-4;
    for (const [k, v] of Object.entries({ lr: this.lr, eps: this.eps, weightDecay: this.weightDecay }))
      if (!(v >= 0)) throw new IrcError('E_ARG', `AdamW: ${k} must be >= 0, got ${v}`);
    for (const [k, v] of Object.entries({ beta1: this.beta1, beta2: this.beta2 }))
      if (!(v >= 0 && v < 1)) throw new IrcError('E_ARG', `AdamW: ${k} must be in [0, 1), got ${v}`);
    const dev = arena.params.device;
    const { m, v } = untracked(() => ({ m: zeros([arena.size], 'float32', dev), v: zeros([arena.size], 'float32', dev) }));
    this.m = m;
    this.v = v;
  }

  /** The kernel's options for the current step count. */
  stepOptions(): AdamWStepOptions {
    return { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, wd: this.weightDecay, step: this.step };
  }

  /**
   * One update of every parameter of the arena from its gradient (queued). With `factors` (float32 [3] on the
   * arena's device, holding adamwFactors of the new step count) the kernel reads the per-step values from there.
   */
  update(factors?: Tensor): void {
    this.step += 1;
    noGrad(() => adamwStep(this.arena.params, this.arena.grads, this.m, this.v, this.stepOptions(), factors));
  }

  dispose(): void {
    this.m.dispose();
    this.v.dispose();
  }
}
