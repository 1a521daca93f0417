// Shape ops on NHWC tensors: pixelShuffle / pixelUnshuffle (PyTorch channel order), concat / split along the
// last axis, pad2d (zero | reflect) and crop2d. Each one's gradient is its partner.
import { IrcError } from '../errors.js';
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

/** x[N, H, W, C r r] -> y[N, H r, W r, C], y[n, r h + i, r w + j, c] = x[n, h, w, c r r + i r + j]. */
export function pixelShuffle(x: Tensor, r: number): Tensor {
  const [y] = runOp('pixel_shuffle', [x], [r]);
  record({ name: 'pixel_shuffle', inputs: [x], outputs: [y!], backward: ([gy]) => [runOp('pixel_unshuffle', [gy!], [r])[0]!] });
  return y!;
}

/** x[N, H, W, C] -> y[N, H / r, W / r, C r r], the inverse of pixelShuffle. */
export function pixelUnshuffle(x: Tensor, r: number): Tensor {
  const [y] = runOp('pixel_unshuffle', [x], [r]);
  record({ name: 'pixel_unshuffle', inputs: [x], outputs: [y!], backward: ([gy]) => [runOp('pixel_shuffle', [gy!], [r])[0]!] });
  return y!;
}

/** Concatenates along the last axis (1 to 16 tensors, equal in every other dim). */
export function concat(xs: readonly Tensor[]): Tensor {
  if (xs.length < 1 || xs.length > 16)
    throw new IrcError('E_ARITY', `concat: expected 1 to 16 tensors, got ${xs.length}`);
  const [y] = runOp('concat', [...xs]);
  const sizes = xs.map((t) => t.shape[t.rank - 1] ?? 0);
  record({ name: 'concat', inputs: [...xs], outputs: [y!], backward: ([gy]) => runOp('split', [gy!], sizes) });
  return y!;
}

/** Splits along the last axis into pieces of the given sizes (summing to x.shape[-1]). */
export function split(x: Tensor, sizes: readonly number[]): Tensor[] {
  const ys = runOp('split', [x], sizes);
  record({
    name: 'split',
    inputs: [x],
    outputs: ys,
    backward: (gys) => [joinParts('concat', [], gys, ys)],
  });
  return ys;
}

/**
 * @internal The backward of a split into parts ys: `op` (concat, or gelu_split_backward after x) over `before` and
 * the parts' gradients, zeros for a part that got none.
 */
export function joinParts(op: 'concat' | 'gelu_split_backward', before: Tensor[], gys: (Tensor | null)[], ys: Tensor[]): Tensor {
  const zeros = gys.map((g, i) => (g ? null : runOp('fill', [], [0, 0, ...ys[i]!.shape])[0]!));
  const [dx] = runOp(op, [...before, ...gys.map((g, i) => g ?? zeros[i]!)]);
  for (const z of zeros) z?.dispose();
  return dx!;
}

export type PadMode = 'zero' | 'reflect';

/** Pads x[N, H, W, C] by pads = [top, bottom, left, right]; reflect mirrors without repeating the edge. */
export function pad2d(x: Tensor, pads: readonly [number, number, number, number] | readonly number[], mode: PadMode = 'zero'): Tensor {
  if (pads.length !== 4) throw new IrcError('E_ATTR', `pad2d: pads must be [top, bottom, left, right], got [${pads.join(', ')}]`);
  if (mode !== 'zero' && mode !== 'reflect') throw new IrcError('E_ATTR', `pad2d: mode must be 'zero' or 'reflect', got '${String(mode)}'`);
  const attrs = [...pads, mode === 'reflect' ? 1 : 0];
  const [y] = runOp('pad2d', [x], attrs);
  record({ name: 'pad2d', inputs: [x], outputs: [y!], backward: ([gy]) => [runOp('pad2d_backward', [gy!], attrs)[0]!] });
  return y!;
}

/** x[:, top:top+h, left:left+w, :]. */
export function crop2d(x: Tensor, top: number, left: number, h: number, w: number): Tensor {
  const [y] = runOp('crop2d', [x], [top, left, h, w]);
  const H = x.shape[1]!, W = x.shape[2]!;
  record({
    name: 'crop2d',
    inputs: [x],
    outputs: [y!],
    backward: ([gy]) => [runOp('pad2d', [gy!], [top, H - top - h, left, W - left - w, 0])[0]!],
  });
  return y!;
}
