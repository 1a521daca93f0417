// Convolution and matrix products: conv2d (NHWC, weight [KH, KW, Cin/groups, Cout]), linear (weight [out, in]),
// matmul (batched, optional transposes), with their backward rules.
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

export interface Conv2dOptions {
  stride?: number;
  pad?: number;
  groups?: number;
}

/** 2-D convolution of x[N, H, W, Cin] with w[KH, KW, Cin/groups, Cout] (+ b[Cout]) -> [N, Ho, Wo, Cout]. */
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const attrs = [opts.stride ?? 1, opts.pad ?? 0, opts.groups ?? 1];
  const [y] = runOp('conv2d', b ? [x, w, b] : [x, w], attrs);
  record({
    name: 'conv2d',
    inputs: b ? [x, w, b] : [x, w],
    outputs: [y!],
    save: [x, w],
    backward: ([gy], [xs, ws]) => {
      const [dx, dw, db] = runOp('conv2d_backward', [gy!, xs!, ws!], attrs);
      if (!b) {
        db!.dispose();
        return [dx!, dw!];
      }
      return [dx!, dw!, db!];
    },
  });
  return y!;
}

/** x[..., in] . w[out, in]^T (+ b[out]) -> [..., out]. */
export function linear(x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const [y] = runOp('linear', b ? [x, w, b] : [x, w]);
  record({
    name: 'linear',
    inputs: b ? [x, w, b] : [x, w],
    outputs: [y!],
    save: [x, w],
    backward: ([gy], [xs, ws]) => {
      const [dx, dw, db] = runOp('linear_backward', [gy!, xs!, ws!]);
      if (!b) {
        db!.dispose();
        return [dx!, dw!];
      }
      return [dx!, dw!, db!];
    },
  });
  return y!;
}

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

function mm(a: Tensor, b: Tensor, tA: boolean, tB: boolean): Tensor {
  return runOp('matmul', [a, b], [tA ? 1 : 0, tB ? 1 : 0])[0]!;
}

/** Swaps the last two dims (a copy). */
function swapLast(t: Tensor): Tensor {
  const r = t.shape.length;
  const perm = [...Array(r).keys()];
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return runOp('permute', [t], perm)[0]!;
}

/**
 * op(a)[..., M, K] . op(b)[..., K, N] -> [..., M, N], where op(t) swaps the last two dims of t when the
 * matching trans flag is set. Batch dims of a and b are equal, or b has rank 2 (shared by every batch).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const tA = !!opts.transA, tB = !!opts.transB;
  const y = mm(a, b, tA, tB);
  const sharedB = b.shape.length === 2 && a.shape.length > 2;
  const bShape = [...b.shape];
  record({
    name: 'matmul',
    inputs: [a, b],
    outputs: [y],
    save: [a, b],
    backward: ([gy], [as, bs]) => [gradA(gy!, as!, bs!, tA, tB, sharedB), gradB(gy!, as!, bs!, tA, tB, sharedB, bShape)],
  });
  return y;
}

// C = op(A) op(B):  d op(A) = dC op(B)^T,  d op(B) = op(A)^T dC.
function gradA(gy: Tensor, a: Tensor, b: Tensor, tA: boolean, tB: boolean, sharedB: boolean): Tensor {
  if (!tA) return mm(gy, b, false, !tB); // dA = dC op(B)^T
  if (!sharedB) return mm(b, gy, tB, true); // dA = op(B) dC^T
  const t = mm(gy, b, false, !tB); // [..., M, K], stored A is [..., K, M]
  const r = swapLast(t);
  t.dispose();
  return r;
}

function gradB(gy: Tensor, a: Tensor, b: Tensor, tA: boolean, tB: boolean, sharedB: boolean, bShape: number[]): Tensor {
  if (sharedB && !tA) {
    // Fold the batch into the rows: A [(batch M), K], dC [(batch M), N].
    const K = a.shape[a.shape.length - 1]!, N = gy.shape[gy.shape.length - 1]!;
    const a2 = a.reshape([a.size / K, K]), g2 = gy.reshape([gy.size / N, N]);
    const r = tB ? mm(g2, a2, true, false) : mm(a2, g2, true, false);
    a2.dispose();
    g2.dispose();
    return r;
  }
  const full = tB ? mm(gy, a, true, tA) : mm(a, gy, !tA, false); // dB = dC^T op(A)  |  op(A)^T dC
  if (!sharedB) return full;
  const r = runOp('sum_to', [full], bShape)[0]!;
  full.dispose();
  return r;
}
