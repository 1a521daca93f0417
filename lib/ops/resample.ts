// Spatial resampling of NHWC images: subsample2d (strided pick) and resizeBilinear (torch F.interpolate
// bilinear, align_corners=False, optional antialias).
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

/**
 * x[N, H, W, C] -> y[N, floor(H / r), floor(W / r), C], y[n, i, j] = x[n, r i + offset, r j + offset]
 * (MAXIM's nearest_downsample: r 2 offset 1, r 4 offset 2).
 */
export function subsample2d(x: Tensor, r: number, offset: number): Tensor {
  const attrs = [r, offset];
  const [y] = runOp('subsample2d', [x], attrs);
  record({
    name: 'subsample2d',
    inputs: [x],
    outputs: [y!],
    save: [x],
    backward: ([gy], [xs]) => [runOp('subsample2d_backward', [gy!, xs!], attrs)[0]!],
  });
  return y!;
}

/**
 * x[N, H, W, C] -> y[N, outH, outW, C]: torch F.interpolate(x, size=(outH, outW), mode='bilinear',
 * align_corners=False, antialias). With antialias, downscaling uses the triangle filter stretched by the scale.
 */
export function resizeBilinear(x: Tensor, outH: number, outW: number, antialias = true): Tensor {
  const attrs = [outH, outW, antialias ? 1 : 0];
  const [y] = runOp('resize_bilinear', [x], attrs);
  record({
    name: 'resize_bilinear',
    inputs: [x],
    outputs: [y!],
    save: [x],
    backward: ([gy], [xs]) => [runOp('resize_bilinear_backward', [gy!, xs!], attrs)[0]!],
  });
  return y!;
}
