// The IRConStyle losses (spec §5.1), with the official signs and normalisation.
import type { Tensor } from '../tensor/tensor.js';
import { add, scale } from '../ops/elementwise.js';
import { matmul } from '../ops/conv.js';
import { crossEntropy, l1Loss, mseLoss } from '../ops/loss.js';
import type { ConStyleTrainOutput } from '../models/constyle.js';

/** Pixel loss: mean |ŷ − gt|. */
export function pixelLoss(restored: Tensor, gt: Tensor): Tensor {
  return l1Loss(restored, gt);
}

/** MoCo InfoNCE: cross-entropy of the N×(K+1) logits against label 0. */
export function mocoLoss(logits: Tensor, labels: Tensor): Tensor {
  return crossEntropy(logits, labels);
}

/** Content loss: mean (q1 − k)² (k carries no gradient). */
export function contentLoss(q1: Tensor, k: Tensor): Tensor {
  return mseLoss(q1, k);
}

/** Batch "Gram" matrix of N×d codes: X·Xᵀ / (d·N). */
export function gram(x: Tensor): Tensor {
  const [n, d] = x.shape as [number, number];
  return scale(matmul(x, x, { transB: true }), 1 / (d * n));
}

/** Style loss: −mean (G(q0) − G(neg0))² − mean (G(q1) − G(neg1))² (negative, as the official code). */
export function styleLoss(q0: Tensor, q1: Tensor, neg: readonly [Tensor, Tensor]): Tensor {
  return scale(add(mseLoss(gram(q0), gram(neg[0])), mseLoss(gram(q1), gram(neg[1]))), -1);
}

export interface IRConStyleLosses {
  pix: Tensor;
  ce: Tensor;
  content: Tensor;
  style: Tensor;
  total: Tensor;
}

/** L = L_pix + L_CE + L_content + L_style (all weights 1), while ConStyle is trained. */
export function irconstyleLoss(restored: Tensor, gt: Tensor, c: ConStyleTrainOutput): IRConStyleLosses {
  const pix = pixelLoss(restored, gt);
  const ce = mocoLoss(c.logits, c.labels);
  const content = contentLoss(c.q1, c.k);
  const style = styleLoss(c.q0, c.q1, c.neg);
  const total = add(add(add(pix, ce), content), style);
  return { pix, ce, content, style, total };
}
