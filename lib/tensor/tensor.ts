// Tensor: a JS handle to a native, refcounted, contiguous tensor. Ops return at once; reads are Promises.
import { IrcError } from '../errors.js';
import { native } from '../native/loader.js';
import { track, untrack } from './scope.js';
import type { GradNode } from '../autograd/node.js';
import { defaultDevice, deviceCode, type Device } from '../native/backend.js';

export type { Device };

export type DType = 'float32' | 'int32';
export type Shape = readonly number[];

// Set by the autograd tape: records reshape views and device transfers so gradients flow through them.
let reshapeRecorder: ((src: Tensor, view: Tensor) => void) | null = null;
let transferRecorder: ((src: Tensor, copy: Tensor) => void) | null = null;
/** @internal */
export function setReshapeRecorder(fn: (src: Tensor, view: Tensor) => void): void {
  reshapeRecorder = fn;
}
/** @internal */
export function setTransferRecorder(fn: (src: Tensor, copy: Tensor) => void): void {
  transferRecorder = fn;
}

const finalizer = new FinalizationRegistry<number>((id) => native.dispose(id));

export function shapeStr(s: Shape): string {
  return `[${s.join(', ')}]`;
}

export function sizeOf(s: Shape): number {
  let n = 1;
  for (const d of s) n *= d;
  return n;
}

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  /** Where the data lives: 'cpu' or 'cuda'. */
  readonly device: Device;
  /** Leaf tensors with requiresGrad get `.grad` from `backward()`. */
  requiresGrad = false;
  grad: Tensor | null = null;
  /** @internal the autograd node that produced this tensor (null for leaves). */
  _node: GradNode | null = null;
  /** @internal index of this tensor among its node's outputs. */
  _outIndex = 0;
  /** @internal called once when this handle is disposed (autograd/reform.ts: a group formed again). */
  _onDispose: (() => void) | null = null;
  #id: number;
  #disposed = false;

  /** @internal use the factory functions (tensor, zeros, ...) or ops. */
  constructor(id: number, shape: Shape, dtype: DType, tracked = true) {
    this.#id = id;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = native.deviceOf(id) === 1 ? 'cuda' : 'cpu';
    finalizer.register(this, id, this);
    if (tracked) track(this);
  }

  /** @internal the native handle; throws E_DISPOSED after dispose(). */
  get id(): number {
    if (this.#disposed) throw new IrcError('E_DISPOSED', `tensor ${shapeStr(this.shape)} was disposed`);
    return this.#id;
  }
  get size(): number {
    return sizeOf(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /** Copies the values to JS once every queued op that writes them has run. */
  async data(): Promise<Float32Array | Int32Array> {
    const ab = await native.read(this.id).catch((e: unknown) => {
      throw toIrcError(e);
    });
    return this.dtype === 'int32' ? new Int32Array(ab) : new Float32Array(ab);
  }
  /** The values as float32 (throws E_DTYPE for int32 tensors). */
  async f32(): Promise<Float32Array> {
    if (this.dtype !== 'float32') throw new IrcError('E_DTYPE', `expected a float32 tensor, got ${this.dtype}`);
    return (await this.data()) as Float32Array;
  }
  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new IrcError('E_SHAPE', `item() needs exactly one element, got shape ${shapeStr(this.shape)}`);
    return (await this.data())[0]!;
  }

  /** A tensor sharing this one's storage with another shape (same number of elements). No copy. */
  reshape(shape: Shape): Tensor {
    if (sizeOf(shape) !== this.size)
      throw new IrcError('E_SHAPE', `reshape: cannot view ${shapeStr(this.shape)} (${this.size} elements) as ${shapeStr(shape)}`);
    const v = viewOf(this, 0, shape);
    reshapeRecorder?.(this, v);
    return v;
  }

  /** A copy on `device` (this tensor itself when it is already there). Differentiable. */
  to(device: Device): Tensor {
    if (device !== 'cpu' && device !== 'cuda') throw new IrcError('E_ARG', `to: device must be 'cpu' or 'cuda', got ${String(device)}`);
    if (device === this.device) return this;
    let id: number;
    try {
      id = native.to(this.id, deviceCode(device));
    } catch (e) {
      throw toIrcError(e);
    }
    const t = new Tensor(id, this.shape, this.dtype);
    transferRecorder?.(this, t);
    return t;
  }

  /** Frees the handle (the storage is freed once no queued op or view uses it). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    finalizer.unregister(this);
    untrack(this);
    native.dispose(this.#id);
    if (this.grad && !this.grad.isDisposed) this.grad.dispose();
    this._onDispose?.();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  toString(): string {
    return `Tensor(${shapeStr(this.shape)}, ${this.dtype}, ${this.device}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/** @internal rewrap a native error (which carries `code` and `op`) as IrcError. */
export function toIrcError(e: unknown): IrcError {
  if (e instanceof IrcError) return e;
  const err = e as { code?: string; message?: string; op?: string };
  const out = new IrcError(err?.code ?? 'E_INTERNAL', err?.message ?? String(e));
  if (err?.op) (out as IrcError & { op?: string }).op = err.op;
  return out;
}

/** A view of `t`'s storage at an element offset. Views keep the storage alive. */
export function viewOf(t: Tensor, offset: number, shape: Shape, tracked = true): Tensor {
  try {
    return new Tensor(native.view(t.id, offset, shape), shape, t.dtype, tracked);
  } catch (e) {
    throw toIrcError(e);
  }
}

function checkShape(shape: Shape, where: string): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0))
    throw new IrcError('E_SHAPE', `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
}

export interface TensorOptions {
  dtype?: DType;
  /** Default: the backend's device (see backend()). */
  device?: Device;
}

/** Creates a tensor from values (copied). Float32Array/number[] -> float32, Int32Array -> int32. */
export function tensor(
  values: Float32Array | Int32Array | readonly number[],
  shape?: Shape,
  options?: DType | TensorOptions,
): Tensor {
  const { dtype, device = defaultDevice() } = typeof options === 'string' ? { dtype: options } : (options ?? {});
  let data: Float32Array | Int32Array;
  if (values instanceof Float32Array || values instanceof Int32Array) data = values;
  else if (Array.isArray(values)) data = dtype === 'int32' ? Int32Array.from(values) : Float32Array.from(values);
  else
    throw new IrcError('E_DTYPE', `tensor: expected a Float32Array, Int32Array or number[], got ${Object.prototype.toString.call(values)}`);
  const s = shape ?? [data.length];
  checkShape(s, 'tensor');
  if (dtype && dtype !== (data instanceof Int32Array ? 'int32' : 'float32'))
    throw new IrcError('E_DTYPE', `tensor: dtype ${dtype} does not match the ${data.constructor.name} given`);
  if (sizeOf(s) !== data.length)
    throw new IrcError('E_SHAPE', `tensor: shape ${shapeStr(s)} holds ${sizeOf(s)} elements, got ${data.length} values`);
  try {
    return new Tensor(native.fromData(data, s, deviceCode(device)), s, data instanceof Int32Array ? 'int32' : 'float32');
  } catch (e) {
    throw toIrcError(e);
  }
}
