// ConStyle (spec §3): the contrastive encoder MyBaseEncoder and its MoCo wrapper with the 128×K queue.
import { IrcError } from '../errors.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, viewOf } from '../tensor/tensor.js';
import { zeros } from '../tensor/create.js';
import { untracked } from '../tensor/scope.js';
import { noGrad } from '../autograd/node.js';
import { Module } from '../nn/module.js';
import { BatchNorm1d, Conv2d, Linear } from '../nn/layers.js';
import { normal } from '../nn/init.js';
import { leakyRelu, gelu } from '../ops/activation.js';
import { globalAvgPool } from '../ops/nafnet.js';
import { concat } from '../ops/shape.js';
import { mul, scale, sumTo } from '../ops/elementwise.js';
import { matmul } from '../ops/conv.js';
import { runOp } from '../ops/run.js';
import { momentumUpdate, queueSwap } from '../ops/optim.js';

/** Conv (no bias) + LeakyReLU(0.1); the conv is child `0`. */
class ConvAct extends Module {
  readonly conv: Conv2d;
  constructor(cin: number, cout: number, stride = 1) {
    super();
    this.conv = this.child('0', new Conv2d(cin, cout, 3, { stride, bias: false }));
  }
  forward(x: Tensor): Tensor {
    // the conv's output goes at once (the LeakyReLU keeps its own output for the backward)
    return tidy(() => leakyRelu(this.conv.forward(x), 0.1));
  }
}

class Stage extends Module {
  readonly layers: ConvAct[];
  constructor(spec: [number, number, number][]) {
    super();
    this.layers = spec.map(([i, o, s], k) => this.child(String(k), new ConvAct(i, o, s)));
  }
  forward(x: Tensor): Tensor {
    for (const l of this.layers) x = l.forward(x);
    return x;
  }
}

/** Linear → BatchNorm1d → GELU (children 0 and 1). */
class LinearBNAct extends Module {
  readonly fc: Linear;
  readonly bn: BatchNorm1d;
  constructor(cin: number, cout: number) {
    super();
    this.fc = this.child('0', new Linear(cin, cout));
    this.bn = this.child('1', new BatchNorm1d(cout));
  }
  forward(x: Tensor): Tensor {
    return gelu(this.bn.forward(this.fc.forward(x)));
  }
}

export interface EncoderOutput {
  /** out1 (mlp1), N×128. */
  q0: Tensor;
  /** out2 (mlp2), N×128: the latent code. */
  q1: Tensor;
  /** fea1..fea3 (NHWC): 32 ch @H/2, 64 ch @H/4, 128 ch @H/8. */
  feas: [Tensor, Tensor, Tensor];
}

/** MyBaseEncoder: four conv stages, global pooling, two Linear-BN-GELU heads. */
export class ConStyleEncoder extends Module {
  readonly stage1 = this.child('stage1', new Stage([[3, 16, 1], [16, 16, 1], [16, 32, 2]]));
  readonly stage2 = this.child('stage2', new Stage([[32, 32, 1], [32, 64, 2]]));
  readonly stage3 = this.child('stage3', new Stage([[64, 128, 1], [128, 128, 2]]));
  readonly stage4 = this.child('stage4', new Stage([[128, 256, 1], [256, 256, 2]]));
  readonly mlp1 = this.child('mlp1', new LinearBNAct(256, 128));
  readonly mlp2 = this.child('mlp2', new LinearBNAct(128, 128));

  /** x: NHWC image batch [N, H, W, 3]. */
  forward(x: Tensor): EncoderOutput {
    if (x.rank !== 4 || x.shape[3] !== 3)
      throw new IrcError('E_SHAPE', `ConStyle encoder: expected an NHWC image batch [N, H, W, 3], got [${x.shape.join(', ')}]`);
    const f1 = this.stage1.forward(x);
    const f2 = this.stage2.forward(f1);
    const f3 = this.stage3.forward(f2);
    const p = globalAvgPool(this.stage4.forward(f3));
    const q0 = this.mlp1.forward(p.reshape([p.shape[0]!, 256]));
    const q1 = this.mlp2.forward(q0);
    return { q0, q1, feas: [f1, f2, f3] };
  }
}

export interface ConStyleOptions {
  /** Build the training parts (momentum encoder, queue). Default true, as the official code. */
  train?: boolean;
  dim?: number;
  /** Queue length; default 65,760 (divisible by batch sizes 8 and 16). */
  K?: number;
  m?: number;
  T?: number;
}

export interface ConStyleTrainOutput extends EncoderOutput {
  /** Key embedding of the clean image (mlp2 of encoder_k), no gradient. */
  k: Tensor;
  /** [next-oldest queue slice, slice just overwritten], each N×dim, no gradient. */
  neg: [Tensor, Tensor];
  /** N×(K+1) logits / T; the positive is column 0. */
  logits: Tensor;
  /** int32 zeros [N]. */
  labels: Tensor;
}

/** The MoCo wrapper: encoder_q (trained), encoder_k (momentum copy), queue dim×K of past query codes. */
export class ConStyle extends Module {
  readonly encoder_q: ConStyleEncoder;
  readonly encoder_k: ConStyleEncoder | null = null;
  readonly dim: number;
  readonly K: number;
  readonly m: number;
  readonly T: number;

  constructor(opts: ConStyleOptions = {}) {
    super();
    this.dim = opts.dim ?? 128;
    this.K = opts.K ?? 65760;
    this.m = opts.m ?? 0.999;
    this.T = opts.T ?? 0.07;
    this.encoder_q = this.child('encoder_q', new ConStyleEncoder());
    if (opts.train ?? true) {
      const k = this.child('encoder_k', new ConStyleEncoder());
      for (const t of k.parameters()) t.requiresGrad = false;
      (this as { encoder_k: ConStyleEncoder | null }).encoder_k = k;
      this.buffer('queue', [this.dim, this.K], normal(this.dim * this.K), 'queue');
      this.scalar('queue_ptr', 0, [1]);
      this.copyQueryToKey();
    }
  }

  /** encoder_k ← encoder_q (parameters only), as at construction. */
  copyQueryToKey(): void {
    const k = this.encoder_k;
    if (!k) return;
    const qs = this.encoder_q.parameters();
    k.parameters().forEach((t, i) => runOp('copy_', [t, qs[i]!]));
  }

  /** θ_k ← m·θ_k + (1−m)·θ_q for every parameter pair. */
  momentumStep(): void {
    const k = this.encoder_k!;
    const qs = this.encoder_q.parameters();
    k.parameters().forEach((t, i) => momentumUpdate(t, qs[i]!, this.m));
  }

  /** Inference: the query encoder only. */
  encode(lq: Tensor): EncoderOutput {
    return this.encoder_q.forward(lq);
  }

  /**
   * One MoCo training forward (official train_forward): im_q = degraded lq, im_k = clean gt (NHWC). The queue
   * pointer is queue_ptr, advanced here; or, given `ptr` (int32 [1] on the device holding queue_ptr), read on the
   * device and left for the caller to advance (advanceQueue), so that a recorded graph can replay the step.
   */
  trainForward(lq: Tensor, gt: Tensor, ptr?: Tensor): ConStyleTrainOutput {
    const kEnc = this.encoder_k;
    const queue = this.B.queue;
    if (!kEnc || !queue) throw new IrcError('E_ARG', 'ConStyle.trainForward needs a ConStyle built with train: true');
    const n = lq.shape[0]!;
    if (this.K % n !== 0)
      throw new IrcError('E_SHAPE', `ConStyle: the queue length K = ${this.K} must be divisible by the batch size, got N = ${n}`);
    const q = this.encoder_q.forward(lq);
    const { k, snapshot } = noGrad(() => {
      this.momentumStep();
      // tidy: the key encoder's intermediates go at once (nothing keeps them for backward)
      return { k: tidy(() => kEnc.forward(gt).q1), snapshot: runOp('clone', [queue])[0]! };
    });
    const lPos = sumTo(mul(q.q1, k), [n, 1]);
    const lNeg = matmul(q.q1, snapshot, { transB: true });
    const logits = scale(concat([lPos, lNeg]), 1 / this.T);
    const labels = zeros([n], 'int32', lq.device);
    const neg = noGrad((): [Tensor, Tensor] => (ptr ? queueSwap(queue, q.q1, ptr) : this.#swapQueue(queue, q.q1, n)));
    return { ...q, k, neg, logits, labels };
  }

  /** queue_ptr after a step of batch n whose pointer was read on the device. */
  advanceQueue(n: number): void {
    this.S.queue_ptr = (this.S.queue_ptr! + n) % this.K;
  }

  /** Returns [next-oldest slice, oldest slice] (copies) and writes q1 over the oldest slice. */
  #swapQueue(queue: Tensor, q1: Tensor, n: number): [Tensor, Tensor] {
    const p = this.S.queue_ptr!;
    const p2 = (p + n) % this.K;  // next block
    const rows = (at: number) => untracked(() => viewOf(queue, at * this.dim, [n, this.dim]));
    const oldView = rows(p);
    const nextView = rows(p2);
    const neg1 = runOp('clone', [oldView])[0]!;
    const neg0 = runOp('clone', [nextView])[0]!;
    runOp('copy_', [oldView, q1]);
    oldView.dispose();
    nextView.dispose();
    this.advanceQueue(n);
    return [neg0, neg1];
  }
}
