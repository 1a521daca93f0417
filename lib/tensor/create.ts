// Tensor factories backed by the native fill op.
import { IrcError } from '../errors.js';
import { runOp } from '../ops/run.js';
import { Tensor, type DType, type Shape } from './tensor.js';
import type { Device } from '../native/backend.js';

function checkShape(shape: Shape, where: string): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0))
    throw new IrcError('E_SHAPE', `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
}

/** A tensor of the given shape filled with `value` (on `device`, by default the backend's). */
export function full(shape: Shape, value: number, dtype: DType = 'float32', device?: Device): Tensor {
  checkShape(shape, 'full');
  return runOp('fill', [], [value, dtype === 'int32' ? 1 : 0, ...shape], device)[0]!;
}
export function zeros(shape: Shape, dtype: DType = 'float32', device?: Device): Tensor {
  return full(shape, 0, dtype, device);
}
export function ones(shape: Shape, device?: Device): Tensor {
  return full(shape, 1, 'float32', device);
}
/** Sets every element of x to value, in place (queued). */
export function fillInPlace(x: Tensor, value: number): void {
  runOp('fill_', [x], [value]);
}
