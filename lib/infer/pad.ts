// Input-size rules (spec §4.9): reflect-pad an image batch to the multiple a network needs, crop back after.
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { pad2d, crop2d } from '../ops/shape.js';

export interface Padded {
  /** The padded batch (the input itself when nothing was needed). */
  x: Tensor;
  /** Crops a result of the padded size back to the original H × W. */
  crop(y: Tensor): Tensor;
}

/**
 * Pads x [N,H,W,C] at the bottom and right to multiples of `multiple` (one number or [mh, mw]), mirroring as the
 * official test datasets do ('reflect', no edge repetition) or with zeros.
 */
export function padToMultiple(x: Tensor, multiple: number | readonly [number, number], mode: 'reflect' | 'zero' = 'reflect'): Padded {
  const [mh, mw] = typeof multiple === 'number' ? [multiple, multiple] : multiple;
  if (!(Number.isInteger(mh) && mh >= 1 && Number.isInteger(mw) && mw >= 1))
    throw new IrcError('E_ARG', `padToMultiple: multiple must be a positive integer, got ${JSON.stringify(multiple)}`);
  if (x.rank !== 4) throw new IrcError('E_SHAPE', `padToMultiple: expected an NHWC batch [N, H, W, C], got [${x.shape.join(', ')}]`);
  const [, h, w] = x.shape as [number, number, number, number];
  const ph = (mh - (h % mh)) % mh;
  const pw = (mw - (w % mw)) % mw;
  if (!ph && !pw) return { x, crop: (y) => y };
  if (mode === 'reflect' && (ph >= h || pw >= w))
    throw new IrcError('E_SHAPE', `padToMultiple: a ${h}×${w} image is too small to reflect-pad to a multiple of ${mh}×${mw} (needs ${ph}×${pw} more); use mode 'zero' or a larger image`);
  return { x: pad2d(x, [0, ph, 0, pw], mode), crop: (y) => crop2d(y, 0, 0, h, w) };
}

/** A network with a forward pass and an input-size rule. */
export interface SizedNetwork {
  forward(x: Tensor): Tensor;
  sizeMultiple(): [number, number];
}

/** Runs net on an image batch of any size: reflect-pads to the network's multiple, then crops back. */
export function forwardAnySize(net: SizedNetwork, x: Tensor): Tensor {
  const p = padToMultiple(x, net.sizeMultiple());
  return p.crop(net.forward(p.x));
}
