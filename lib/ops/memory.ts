// Memory ops: clone, permute, and the in-place copy/add used by the core (copyInto, addInto).
import { IrcError } from '../errors.js';
import { record } from '../autograd/tape.js';
import { Tensor, shapeStr } from '../tensor/tensor.js';
import { runOp } from './run.js';

/** A copy of x with its own storage. */
export function clone(x: Tensor): Tensor {
  const [y] = runOp('clone', [x]);
  record({ name: 'clone', inputs: [x], outputs: [y!], backward: ([gy]) => [gy!.reshape(gy!.shape)] });
  return y!;
}

/** y.shape[i] = x.shape[perm[i]] (a materialised transpose). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank)
    throw new IrcError('E_ATTR', `permute: perm must have ${x.rank} entries (rank of x ${shapeStr(x.shape)}), got [${perm.join(', ')}]`);
  const [y] = runOp('permute', [x], perm);
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  record({ name: 'permute', inputs: [x], outputs: [y!], backward: ([gy]) => [runOp('permute', [gy!], inv)[0]!] });
  return y!;
}

/** dst <- src in place (same number of elements and dtype; queued). Not differentiable. */
export function copyInto(dst: Tensor, src: Tensor): void {
  runOp('copy_', [dst, src]);
}

/** dst += src in place (same shape, float32; queued). Not differentiable. */
export function addInto(dst: Tensor, src: Tensor): void {
  runOp('add_', [dst, src]);
}
