// PSNR as the official evaluation computes it (spec §6): clamp to [0,1], scale to 8 bits and round, then
// 10·log10(255² / MSE) over all pixels and channels.
import { IrcError } from '../errors.js';

export function to8bit(x: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(x.length);
  for (let i = 0; i < x.length; ++i) {
    const v = Math.round(Math.min(1, Math.max(0, x[i]!)) * 255);
    out[i] = Number.isNaN(v) ? 0 : v;
  }
  return out;
}

/** PSNR-RGB in dB of two float images in [0,1] (any layout, same length). Infinity when identical. */
export function psnr(restored: ArrayLike<number>, gt: ArrayLike<number>): number {
  if (restored.length !== gt.length || restored.length === 0)
    throw new IrcError('E_SHAPE', `psnr: images must have the same non-zero size, got ${restored.length} and ${gt.length} values`);
  const a = to8bit(restored);
  const b = to8bit(gt);
  let se = 0;
  for (let i = 0; i < a.length; ++i) se += (a[i]! - b[i]!) ** 2;
  const mse = se / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}
