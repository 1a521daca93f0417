// One official IRConStyle training iteration (spec §5.1–5.4): ConStyle MoCo forward, restoration forward,
// L1 + CE + content + style while ConStyle trains (iteration <= constyleIter), then L1 only with encoder_q
// frozen (skipped by the optimizer, as PyTorch >= 2 does). AdamW over one flat arena.
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { tidy, disposeAll } from '../tensor/scope.js';
import { noGrad } from '../autograd/node.js';
import { backward } from '../autograd/tape.js';
import { viewOf } from '../tensor/tensor.js';
import { adamwStep } from '../ops/optim.js';
import { ParamArena } from '../nn/arena.js';
import { AdamW, type AdamWOptions } from '../optim/adamw.js';
import { ConStyleUNet } from '../models/unet.js';
import { setCheckpointing } from '../models/nafnet.js';
import { irconstyleLoss, pixelLoss } from '../losses/index.js';

export interface TrainerOptions extends AdamWOptions {
  /** Iterations (1-based) during which ConStyle's losses are used and encoder_q trains (default: forever). */
  constyleIter?: number;
  /**
   * Activation checkpointing of the restoration network's blocks: each block keeps only its input for backward and
   * runs again there. Much less memory for one more forward of the blocks; same losses and gradients (default off).
   */
  checkpoint?: boolean;
}

export interface StepLosses {
  pix: number;
  ce: number;
  content: number;
  style: number;
  total: number;
}

export class IRConStyleTrainer {
  readonly arena: ParamArena;
  readonly optimizer: AdamW;
  readonly constyleIter: number;
  iteration = 0;

  constructor(readonly model: ConStyleUNet, opts: TrainerOptions = {}) {
    if (!model.ConStyle?.encoder_k) throw new IrcError('E_ARG', 'IRConStyleTrainer needs a model built with constyle: "train"');
    this.constyleIter = opts.constyleIter ?? Infinity;
    this.arena = new ParamArena(model);
    this.optimizer = new AdamW(this.arena, opts);
    if (opts.checkpoint) setCheckpointing(model, true);
    model.train();
  }

  get constyleActive(): boolean {
    return this.iteration <= this.constyleIter;
  }

  /** Runs one iteration on NHWC batches lq/gt [N,H,W,3]; resolves with the losses. */
  async step(lq: Tensor, gt: Tensor): Promise<StepLosses> {
    this.iteration += 1;
    const cs = this.model.ConStyle!;
    const active = this.constyleActive;
    if (!active) for (const t of cs.encoder_q.parameters()) t.requiresGrad = false;
    this.arena.zeroGrad();
    const l = tidy(() => {
      if (active) {
        const o = cs.trainForward(lq, gt);
        const restored = this.model.restore(lq, o.q1, o.feas);
        return irconstyleLoss(restored, gt, o);
      }
      const enc = noGrad(() => cs.encode(lq));
      const pix = pixelLoss(this.model.restore(lq, enc.q1, enc.feas), gt);
      return { pix, total: pix };
    });
    backward(l.total);
    if (active) this.optimizer.update();
    else this.#updateRestorationOnly();
    const out: StepLosses = { pix: 0, ce: 0, content: 0, style: 0, total: 0 };
    for (const [k, t] of Object.entries(l)) out[k as keyof StepLosses] = await (t as Tensor).item();
    disposeAll(l);
    return out;
  }

  /** AdamW over the arena minus ConStyle's range (frozen encoders are skipped, not decayed). */
  #updateRestorationOnly(): void {
    const { offset, size } = this.arena.range('ConStyle.');
    const o = this.optimizer;
    o.step += 1;
    const end = offset + size;
    const parts: [number, number][] = [[0, offset], [end, this.arena.size - end]];
    noGrad(() => {
      for (const [at, n] of parts) {
        if (!n) continue;
        const v = (t: Tensor) => viewOf(t, at, [n], false);
        const views = [v(this.arena.params), v(this.arena.grads), v(o.m), v(o.v)] as const;
        adamwStep(views[0], views[1], views[2], views[3], { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, wd: o.weightDecay, step: o.step });
        for (const t of views) t.dispose();
      }
    });
  }

  dispose(): void {
    this.optimizer.dispose();
    this.arena.dispose();
  }
}
