// A fixed-shape forward replayed as one CUDA graph: inference without the per-op host cost (about 10 µs per op,
// which at 1×256² is most of a ConStyle NAFNet forward's latency).
import { IrcError } from '../errors.js';
import { noGrad } from '../autograd/node.js';
import { native } from '../native/loader.js';
import { deviceCode, type Device } from '../native/backend.js';
import { clone, copyInto } from '../ops/memory.js';
import { zeros } from '../tensor/create.js';
import { tidy, untracked } from '../tensor/scope.js';
import { Tensor, shapeStr, toIrcError, type Shape } from '../tensor/tensor.js';
import { sync } from '../tensor/memory.js';

export interface CaptureOptions {
  /** false: never make a graph (run() then runs fn op by op). Default true. */
  graph?: boolean;
}

/** A forward bound to one input shape and device; see captureForward. */
export interface CapturedForward {
  readonly inputShape: Shape;
  readonly outputShape: Shape;
  readonly device: Device;
  /** True when run() replays a CUDA graph. */
  readonly graphed: boolean;
  /** True when fn obeyed the capture rules (recorded on CUDA, checked on the CPU). */
  readonly capturable: boolean;
  /** Why run() does not replay a graph ('' when it does). */
  readonly reason: string;
  /** fn(x) for an input of inputShape on device; returns a new tensor the caller owns. */
  run(x: Tensor): Tensor;
  /** Frees the graph and its buffers. Idempotent. */
  dispose(): void;
}

/**
 * Binds fn (a synchronous forward such as `(x) => model.forward(x)`) to the shape and device of `example`. On CUDA
 * it runs fn once (so every library plan and scratch buffer exists), then records one more call into a CUDA graph;
 * run(x) copies x into the graph's input, replays the graph (one launch) and returns a copy of its output. On the
 * CPU, and whenever the recording fails, run(x) calls fn op by op, and `reason` says why.
 *
 * The capture rules: inside fn, only ops on the example's device; no tensors made from host data, no reads,
 * syncs or transfers (make constants beforehand); fn must not keep tensors it makes (tidy disposes them). Gradients
 * are off. On the CPU the first call of fn runs under the same rules, so `capturable` tells whether fn will
 * capture on a GPU.
 */
export async function captureForward(fn: (x: Tensor) => Tensor, example: Tensor, opts: CaptureOptions = {}): Promise<CapturedForward> {
  if (typeof fn !== 'function') throw new IrcError('E_ARG', `captureForward: fn must be a function, got ${typeof fn}`);
  if (!(example instanceof Tensor)) throw new IrcError('E_ARG', 'captureForward: example must be a Tensor');
  if (example.isDisposed) throw new IrcError('E_DISPOSED', `captureForward: the example tensor ${shapeStr(example.shape)} was disposed`);
  const device = example.device;
  const inputShape = example.shape;
  const call = (x: Tensor): Tensor => {
    const y = fn(x);
    if (!(y instanceof Tensor)) throw new IrcError('E_ARG', `captureForward: fn must return a Tensor, got ${typeof y}`);
    if (y.device !== device) throw new IrcError('E_ARG', `captureForward: fn returned a tensor on ${y.device}, expected ${device}`);
    return y;
  };
  let outputShape: Shape | null = null;
  // The first call: under the capture rules on the CPU (where nothing else is recorded), eager on CUDA.
  let checked = '';
  const first = (): void => tidy(() => void (outputShape = call(example).shape));
  if (device === 'cpu') checked = await captured(device, () => noGrad(first));
  if (!outputShape) noGrad(first);  // on CUDA; or again op by op when the CPU check failed (fn's own errors throw)
  await sync();

  let graph: unknown = null;
  let staticIn: Tensor | null = null, staticOut: Tensor | null = null;
  let reason = '';
  if (device === 'cpu') reason = checked ? `capture failed: ${checked}` : 'the CPU backend replays op by op (CUDA graphs need a GPU)';
  else if (opts.graph === false) reason = 'graphs turned off (graph: false)';
  else {
    const [si, so] = untracked(() => [clone(example), zeros(outputShape!, 'float32', device)] as const);  // owned here
    staticIn = si;
    staticOut = so;
    let result: unknown = null;
    checked = await captured(device, () => noGrad(() => tidy(() => copyInto(so, call(si)))), (g) => (result = g));
    if (checked || !result) {
      reason = `capture failed: ${checked || 'no graph was made'}`;
      staticIn.dispose();
      staticOut.dispose();
      staticIn = staticOut = null;
    } else {
      graph = result;
    }
  }
  const capturable = !checked;
  let disposed = false;
  const check = (x: Tensor): void => {
    if (disposed) throw new IrcError('E_DISPOSED', 'CapturedForward.run: this forward was disposed');
    if (!(x instanceof Tensor)) throw new IrcError('E_ARG', 'CapturedForward.run: expected a Tensor');
    if (x.device !== device) throw new IrcError('E_DEVICE', `CapturedForward.run: expected an input on ${device}, got one on ${x.device} (move it with .to('${device}'))`);
    if (x.dtype !== 'float32') throw new IrcError('E_DTYPE', `CapturedForward.run: expected a float32 input, got ${x.dtype}`);
    if (x.shape.length !== inputShape.length || x.shape.some((d, i) => d !== inputShape[i]))
      throw new IrcError('E_SHAPE', `CapturedForward.run: expected an input of shape ${shapeStr(inputShape)} (the example's), got ${shapeStr(x.shape)}`);
  };
  return {
    inputShape, outputShape: outputShape!, device, graphed: graph !== null, capturable, reason,
    run(x: Tensor): Tensor {
      check(x);
      if (graph === null) return noGrad(() => tidy(() => call(x)));
      copyInto(staticIn!, x);
      try {
        native.graphLaunch(graph);
      } catch (e) {
        throw toIrcError(e);
      }
      return noGrad(() => clone(staticOut!));
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      if (graph !== null) native.graphDestroy(graph);
      graph = null;
      staticIn?.dispose();
      staticOut?.dispose();
    },
  };
}

/** @internal Runs body inside a capture on device; resolves with '' or why the capture failed (then nothing is
 * kept). On CUDA body is recorded, not run, and `keep` receives the graph; on the CPU body runs (under the rules),
 * and the executor is awaited before the check of what body left alive. */
export async function captured(device: Device, body: () => void, keep?: (graph: unknown) => void): Promise<string> {
  try {
    native.captureBegin(deviceCode(device));
  } catch (e) {
    return toIrcError(e).message;
  }
  try {
    body();
  } catch (e) {
    native.captureEnd(false);
    return toIrcError(e).message;
  }
  try {
    if (device === 'cpu') {
      native.captureSeal();
      await native.sync(0);
    }
    const g = native.captureEnd(true);
    keep?.(g);
    return '';
  } catch (e) {
    return toIrcError(e).message;
  }
}
