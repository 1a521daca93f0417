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
import { withSwitches } from '../native/switches.js';
import { checkTuneOptions, defaultVariants, searchVariants, timeSteps, type TuneOptions, type TuneReport, type TuneSample } from '../train/tune.js';

export interface CaptureOptions {
  /** false: never make a graph (run() then runs fn op by op). Default true. */
  graph?: boolean;
  /**
   * Kernel tuning (default off): before the recording, fn is timed on the default kernel paths and with each opt-in
   * path (defaultVariants() but the backward-only and model-specific ones; on CUDA as a recording replayed `steps` times, otherwise op by
   * op), each output checked against the default's (relative L2 difference ≤ gradTol + 0.01, gradTol 1e-2 here), and
   * the fastest that agrees by at least minGain is recorded (its switches also apply to run() op by op).
   * `tuneReport` says what was tried.
   */
  tune?: boolean | TuneOptions;
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
  /** What the kernel tuning tried and chose (CaptureOptions.tune), or null. */
  readonly tuneReport: TuneReport | null;
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
  const tuneOpts = opts.tune === true ? {} : opts.tune || null;
  if (tuneOpts) checkTuneOptions(tuneOpts);
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

  // fn recorded into a graph with static input and output buffers (owned by the caller), or why not
  const record = async (sw: Record<string, string> = {}): Promise<{ graph: unknown; si: Tensor; so: Tensor } | string> => {
    const [si, so] = untracked(() => [clone(example), zeros(outputShape!, 'float32', device)] as const);
    let result: unknown = null;
    const why = await captured(device, () => withSwitches(sw, () => noGrad(() => tidy(() => copyInto(so, call(si))))), (g) => (result = g));
    if (!why && result) return { graph: result, si, so };
    si.dispose();
    so.dispose();
    return why || 'no graph was made';
  };
  const canGraph = device !== 'cpu' && opts.graph !== false;

  let switches: Record<string, string> = {};
  let tuneReport: TuneReport | null = null;
  if (tuneOpts) {
    const sample = (data: Float32Array): TuneSample => ({ losses: {}, grads: { data, entries: [{ name: 'the forward', offset: 0, size: data.length }], kind: 'output' } });
    const eager = () => noGrad(() => tidy(() => call(example)));
    const measure = async (): Promise<{ ms: number; sample: TuneSample }> => {
      const y0 = eager();  // op by op first: the paths' first calls (the autotuners time their candidates outside a capture)
      const data = await y0.f32().finally(() => y0.dispose());
      if (!canGraph) {
        const once = async () => {
          const y = eager();
          await y.f32().finally(() => y.dispose());
        };
        return { ms: await timeSteps(tuneOpts.steps ?? 5, once), sample: sample(data) };
      }
      const r = await record();
      if (typeof r === 'string') throw new IrcError('E_CAPTURE', r);
      try {
        native.graphLaunch(r.graph);
        const s0 = sample(await r.so.f32());
        return { ms: await timeSteps(tuneOpts.steps ?? 5, async () => { native.graphLaunch(r.graph); await sync(); }), sample: s0 };
      } finally {
        native.graphDestroy(r.graph);
        r.si.dispose();
        r.so.dispose();
      }
    };
    try {
      tuneReport = await searchVariants(measure, { gradTol: 1e-2, variants: defaultVariants().filter((v) => !v.backwardOnly && !v.appliesTo), ...tuneOpts });
      switches = tuneReport.switches;
    } catch (e) {
      tuneReport = { chosen: [], switches: {}, trials: [], seconds: 0, error: toIrcError(e).message };
    }
  }

  let graph: unknown = null;
  let staticIn: Tensor | null = null, staticOut: Tensor | null = null;
  let reason = '';
  if (device === 'cpu') reason = checked ? `capture failed: ${checked}` : 'the CPU backend replays op by op (CUDA graphs need a GPU)';
  else if (opts.graph === false) reason = 'graphs turned off (graph: false)';
  else {
    const r = await record(switches);
    if (typeof r === 'string') {
      checked = r;
      reason = `capture failed: ${r}`;
    } else {
      ({ graph, si: staticIn, so: staticOut } = r);
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
    inputShape, outputShape: outputShape!, device, graphed: graph !== null, capturable, reason, tuneReport,
    run(x: Tensor): Tensor {
      check(x);
      if (graph === null) return withSwitches(switches, () => noGrad(() => tidy(() => call(x))));
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
