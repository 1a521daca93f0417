// Enqueues one native op by name. Checks handles and dtypes here (with the caller's stack); shapes and attrs
// are validated natively at enqueue, synchronously, so errors still surface at the call site.
import { IrcError } from '../errors.js';
import { native } from '../native/loader.js';
import { OPS, OP_ID, type OpName } from '../native/ops.gen.js';
import { Tensor, toIrcError, type DType } from '../tensor/tensor.js';
import { defaultDevice, deviceCode, type Device } from '../native/backend.js';
import { recordNonDifferentiable } from '../autograd/tape.js';

export type { OpName };

/** Runs op `name` on `inputs` with numeric `attrs` (on the inputs' device; ops without inputs on `device`, by
 * default the backend's); returns its outputs (no autograd recording for
 * differentiable ops — their wrappers call record()). Non-differentiable ops mark their outputs so that a
 * gradient that would have to pass through them throws. */
export function runOp(name: OpName, inputs: Tensor[], attrs: readonly number[] = [], device?: Device): Tensor[] {
  const id = OP_ID[name];
  if (id === undefined) throw new IrcError('E_ARG', `unknown op '${name}'`);
  const ids = inputs.map((t, i) => {
    if (!(t instanceof Tensor)) throw new IrcError('E_ARG', `${name}: input ${i} must be a Tensor, got ${t === null ? 'null' : typeof t}`);
    if (t.isDisposed) throw new IrcError('E_DISPOSED', `${name}: input ${i} (shape [${t.shape.join(', ')}]) was disposed`);
    return t.id;
  });
  for (const a of attrs)
    if (typeof a !== 'number' || Number.isNaN(a)) throw new IrcError('E_ATTR', `${name}: attributes must be numbers, got ${String(a)}`);
  let outIds: number[];
  try {
    outIds = native.run(id, ids, attrs as number[], inputs.length ? undefined : deviceCode(device ?? defaultDevice()));
  } catch (e) {
    throw toIrcError(e);
  }
  const outs: Tensor[] = [];
  for (let k = 0; k < outIds.length; ) {
    const h = outIds[k++]!;
    const dtype: DType = outIds[k++] === 1 ? 'int32' : 'float32';
    const rank = outIds[k++]!;
    outs.push(new Tensor(h, outIds.slice(k, k + rank), dtype));
    k += rank;
  }
  if (!OPS[id]!.differentiable) recordNonDifferentiable(name, inputs, outs);
  return outs;
}

