// Fused block ops with backward rules: scaledAdd (NAFBlock's β/γ skip a + b·s), dwconvGate (a depthwise conv and a
// gate in one pass — NAFBlock's conv2 + SimpleGate, or GDFN's GELU gate; its backward recomputes the conv output
// instead of saving it), conv1x1Add (a pointwise conv, scaled and added to a residual in one pass), conv1x1Gate (a
// pointwise conv and a SimpleGate, the conv output never stored), lnConv1x1Gate (the same behind a LayerNorm2d whose
// output is never stored either) and lnConv1x1 (a pointwise conv behind a LayerNorm2d); MAXIM's spatialGate (a
// gating unit), geluSplit and spatialMix (the cross-gating's spatial gating weights).
import { IrcError } from '../errors.js';
import { needsGrad, record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';
import { conv2d, linear } from './conv.js';
import { channelScale, simpleGate } from './nafnet.js';
import { layerNorm2d } from './norm.js';
import { joinParts } from './shape.js';
import { switchValue } from '../native/switches.js';

/** a[..., C] + b[..., C] * s (s has C elements, e.g. [1, 1, 1, C]). */
export function scaledAdd(a: Tensor, b: Tensor, s: Tensor): Tensor {
  const [y] = runOp('scaled_add', [a, b, s]);
  const sa = a.shape;
  record({
    name: 'scaled_add',
    inputs: [a, b, s],
    outputs: [y!],
    save: [b, s],
    backward: ([gy], [bs, ss]) => {
      const [db, ds] = runOp('scaled_add_backward', [gy!, bs!, ss!]);
      return [gy!.reshape(sa), db!, ds!]; // da = dy (a view, as add's gradient)
    },
  });
  return y!;
}

/** The gate's activation on the first half: none (NAFNet's SimpleGate) or exact GELU (Restormer's GDFN). */
export type GateActivation = 'none' | 'gelu';

/**
 * A gated depthwise conv: x[N, H, W, 2C], w[KH, KW, 1, 2C], b[2C] or null, stride 1, zero padding `pad`;
 * z = depthwise_conv(x, w) + b -> [N, Ho, Wo, C] = act(z[..., :C]) * z[..., C:]. With act 'none' it is NAFNet's
 * conv2 + SimpleGate, with 'gelu' the depthwise conv, chunk, GELU and product of Restormer's GDFN.
 */
export function dwconvGate(x: Tensor, w: Tensor, b: Tensor | null, pad: number, act: GateActivation = 'none'): Tensor {
  const attrs = [pad, act === 'gelu' ? 1 : 0];
  const [y] = runOp('dwconv_gate', b ? [x, w, b] : [x, w], attrs);
  record({
    name: 'dwconv_gate',
    inputs: b ? [x, w, b] : [x, w],
    outputs: [y!],
    save: b ? [x, w, b] : [x, w],
    backward: ([gy], saved) => {
      const [dx, dw, db] = runOp('dwconv_gate_backward', [gy!, ...saved.map((t) => t!)], attrs);
      if (!b) {
        db!.dispose();
        return [dx!, dw!];
      }
      return [dx!, dw!, db!];
    },
  });
  return y!;
}

/**
 * r + ((x ⊙ a)·w + b) ⊙ s for a pointwise conv weight w[1, 1, Ci, Co] over x[N, ..., Ci]: the per-sample input scale
 * a (N·Ci elements, e.g. [N, 1, 1, Ci]), the conv, its bias, the per-channel scale s and the residual add in one op
 * (NAFBlock's SCA scale + conv3 + β skip and conv5 + γ skip, Restormer's project_out with its skip). b, s and a may
 * be null; s without b, or a without b and s, take the unfused path.
 */
export function conv1x1Add(x: Tensor, w: Tensor, r: Tensor, b: Tensor | null, s: Tensor | null, a: Tensor | null = null): Tensor {
  if (a && (!b || !s)) return conv1x1Add(channelScale(x, a), w, r, b, s);
  if (s && !b) return scaledAdd(r, conv2d(x, w, null), s);
  const opt = [...(b ? [b] : []), ...(s ? [s] : []), ...(a ? [a] : [])];
  const [y] = runOp('conv1x1_add', [x, w, r, ...opt]);
  const rs = r.shape;
  record({
    name: 'conv1x1_add',
    inputs: [x, w, r, ...opt],
    outputs: [y!],
    save: [x, w, ...opt],
    backward: ([gy], saved) => {
      const [dx, dw, ...rest] = runOp('conv1x1_add_backward', [gy!, ...saved.map((t) => t!)]);
      return [dx!, dw!, gy!.reshape(rs), ...rest]; // dr = dy (a view)
    },
  });
  return y!;
}

let keepOnCpu = true;
/**
 * @internal Whether the fused ops that recompute in their backward (conv1x1Gate, lnConv1x1Gate, lnConv1x1) keep their
 * intermediates instead on the CPU when gradients are recorded (default true; tests turn it off to run the CUDA
 * paths' op structure on the CPU). Returns the previous setting.
 */
export function setKeepOnCpu(on: boolean): boolean {
  const was = keepOnCpu;
  keepOnCpu = on;
  return was;
}
const keepDefault = (x: Tensor) => x.device === 'cpu' && keepOnCpu;
/** @internal Whether a fused op on x runs as its separate ops instead (the CPU's default: see setKeepOnCpu). */
export const composesOnCpu = keepDefault;

/** Elements from which a LayerNorm + 1×1 pair without gradients runs as its separate ops on CUDA (inferenceApart). */
export const INFERENCE_APART_MIN = 1 << 22;

/**
 * @internal Whether a LayerNorm + 1×1 (or Linear) pair over x runs as its separate ops: on CUDA, without gradients,
 * for inputs of at least INFERENCE_APART_MIN elements. There the LayerNorm kernel and the library GEMM beat the one
 * op, whose library path forms the normalised rows with a slower row kernel (H100, run 9, [16,128,128,48]: 123
 * against 151 µs with the 1×1, 182 against 244 µs with the gate), and the GPU time, not the host's per-op cost, is
 * what a large input waits for. Training keeps the one op (its point is the memory the backward does not hold), and
 * so does `ownKernel` (IRCONSTYLE_PW_SIMT=1: the SIMT kernel forms the rows while staging them).
 */
export function inferenceApart(x: Tensor, ins: (Tensor | null)[], ownKernel: boolean): boolean {
  return x.device === 'cuda' && x.size >= INFERENCE_APART_MIN && !ownKernel && !needsGrad(ins);
}
const pwSimt = () => ['1', 'mem'].includes(switchValue('IRCONSTYLE_PW_SIMT') ?? '');

/** fns applied in turn to x (no gradients), each intermediate released once the next has read it. */
function chainApart(x: Tensor, ...fns: ((t: Tensor) => Tensor)[]): Tensor {
  let t = x;
  for (const f of fns) {
    const y = f(t);
    if (t !== x) t.dispose();
    t = y;
  }
  return t;
}

/**
 * z[..., :C] · z[..., C:] of the pointwise conv z = x·w + b, w[1, 1, Ci, 2C], over x[..., Ci]: NAFBlock's conv4 and
 * SimpleGate in one op. z is not stored (on CUDA not even written: the gate runs on each tile of the conv); the
 * backward recomputes it. `keepZ` trades that back when gradients are recorded: z is kept for the backward (the
 * separate conv2d and simpleGate) instead of recomputed. Default: on the CPU, where the step is bound by arithmetic
 * and the recompute costs more than the memory traffic it saves (a ConStyle NAFNet training step 6 % slower,
 * BENCHMARKS.md); not on CUDA, where the step is bound by memory traffic. Without gradients the fused op runs always.
 */
export function conv1x1Gate(x: Tensor, w: Tensor, b: Tensor | null, opts: { keepZ?: boolean } = {}): Tensor {
  const ins = b ? [x, w, b] : [x, w];
  if ((opts.keepZ ?? keepDefault(x)) && needsGrad(ins)) return simpleGate(pointwise(x, w, b));
  const [y] = runOp('conv1x1_gate', ins);
  record({
    name: 'conv1x1_gate',
    inputs: ins,
    outputs: [y!],
    save: ins,
    backward: ([gy], saved) => {
      const [dx, dw, db] = runOp('conv1x1_gate_backward', [gy!, ...saved.map((t) => t!)]);
      if (!b) {
        db!.dispose();
        return [dx!, dw!];
      }
      return [dx!, dw!, db!];
    },
  });
  return y!;
}

/**
 * conv1x1Gate(layerNorm2d(x, lw, lb, eps), w, b) in one op: NAFBlock's norm2, conv4 and SimpleGate. Neither the
 * normalised h nor the conv output z is stored (on CUDA h is formed inside the conv's tiles and z never written);
 * the backward forms h again from the row statistics and ends with layer_norm2d's own backward. `keepZ` as
 * conv1x1Gate's (default on the CPU: the separate layerNorm2d and conv1x1Gate when gradients are recorded).
 */
export function lnConv1x1Gate(x: Tensor, lw: Tensor, lb: Tensor, w: Tensor, b: Tensor | null, eps = 1e-6,
  opts: { keepZ?: boolean } = {}): Tensor {
  const ins = [x, lw, lb, w, b];
  const ln = (t: Tensor) => layerNorm2d(t, lw, lb, eps);
  if ((opts.keepZ ?? keepDefault(x)) && needsGrad(ins)) return conv1x1Gate(ln(x), w, b, { keepZ: true });
  if (inferenceApart(x, ins, pwSimt())) return chainApart(x, ln, (h) => pointwise(h, w, b), simpleGate);
  return lnPointwise('ln_conv1x1_gate', x, lw, lb, w, b, eps, true);
}

/**
 * conv2d(layerNorm2d(x, lw, lb, eps), w, b) for a pointwise w[1, 1, Ci, Co] in one op: NAFBlock's norm1 and conv1.
 * The normalised h is not stored (on CUDA formed inside the conv's tiles); the backward forms it again from the row
 * statistics and ends with layer_norm2d's own backward. `keepH`: keep h for the backward instead (the separate
 * ops), the default on the CPU when gradients are recorded.
 */
export function lnConv1x1(x: Tensor, lw: Tensor, lb: Tensor, w: Tensor, b: Tensor | null, eps = 1e-6,
  opts: { keepH?: boolean } = {}): Tensor {
  const ins = [x, lw, lb, w, b];
  const ln = (t: Tensor) => layerNorm2d(t, lw, lb, eps);
  if ((opts.keepH ?? keepDefault(x)) && needsGrad(ins)) return pointwise(ln(x), w, b);
  if (inferenceApart(x, ins, pwSimt())) return chainApart(x, ln, (h) => pointwise(h, w, b));
  return lnPointwise('ln_conv1x1', x, lw, lb, w, b, eps, false);
}

/**
 * linear(layerNorm2d(x, lw, lb, eps), w, b) for a Linear's w [Co, Ci] in one op (ln_conv1x1 takes a Linear's weight
 * too): MAXIM's LayerNorm + projection pairs. FP32-accurate as the linear op (with IRCONSTYLE_PW_SIMT=1 on CUDA the SIMT
 * kernel forms the LayerNorm on the way in and folds its backward into the dh pass). `keepH` as lnConv1x1's.
 */
export function lnLinear(x: Tensor, lw: Tensor, lb: Tensor, w: Tensor, b: Tensor | null, eps = 1e-6,
  opts: { keepH?: boolean } = {}): Tensor {
  const ins = [x, lw, lb, w, b];
  const ln = (t: Tensor) => layerNorm2d(t, lw, lb, eps);
  if ((opts.keepH ?? keepDefault(x)) && needsGrad(ins)) return linear(ln(x), w, b);
  if (inferenceApart(x, ins, pwSimt())) return chainApart(x, ln, (h) => linear(h, w, b));
  return lnPointwise('ln_conv1x1', x, lw, lb, w, b, eps, false);
}

/**
 * The LayerNorm + 1×1 ops and their rule: `op` (x, lw, lb, w, b?) gives y, mean, rstd; its backward op (dy, x, lw,
 * lb, w, mean, rstd, then b when `backwardTakesB`, then x's pending gradient (NAFBlock's skip) when there is one)
 * gives dx, dw, db, dlw, dlb: the conv's backward and layer_norm2d's in one op (on CUDA, where it can, one kernel).
 */
function lnPointwise(op: 'ln_conv1x1' | 'ln_conv1x1_gate', x: Tensor, lw: Tensor, lb: Tensor, w: Tensor,
  b: Tensor | null, eps: number, backwardTakesB: boolean): Tensor {
  const ins = [x, lw, lb, w, ...(b ? [b] : [])];
  const [y, mean, rstd] = runOp(op, ins, [eps]);
  record({
    name: op,
    inputs: ins,
    outputs: [y!],
    save: [x, lw, lb, w, mean!, rstd!, ...(b && backwardTakesB ? [b] : [])],
    accumulate: [0],
    backward: ([gy], [xs, lws, lbs, ws, m, r, bs], [acc]) => {
      const [dx, dw, db, dlw, dlb] = runOp(`${op}_backward`, [gy!, xs!, lws!, lbs!, ws!, m!, r!, ...(bs ? [bs] : []), ...(acc ? [acc] : [])], [acc ? 1 : 0]);
      if (!b) {
        db!.dispose();
        return [dx!, dlw!, dlb!, dw!];
      }
      return [dx!, dlw!, dlb!, dw!, db!];
    },
  });
  mean!.dispose();
  rstd!.dispose();
  return y!;
}

/** conv2d of a pointwise w[1, 1, Ci, Co] over x[..., Ci] of any rank (4-D as it is, else as one row of pixels). */
function pointwise(x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  if (x.rank === 4) return conv2d(x, w, b);
  const ci = x.shape[x.rank - 1]!;
  const y = conv2d(x.reshape([1, 1, x.size / ci, ci]), w, b);
  return y.reshape([...x.shape.slice(0, -1), y.shape[3]!]);
}

/** What MAXIM's gating unit mixes: the pixels of each patch ('block') or the patches ('grid'). */
export type GatingAxis = 'block' | 'grid';

/**
 * MAXIM's block / grid gating unit on z [N, H, W, 2C] in one op: a = act(z) (`act` 'gelu': the GmlpLayer's GELU,
 * applied on the way in), u, v = the halves of a, y = u ⊙ Dense(LayerNorm(v)) with the Dense (w [P, P], b [P]) over
 * the P pixels of each fh × fw patch (`over` 'block') or over the P patches (`over` 'grid'); `patch` is (fh, fw).
 * The official split, LayerNorm, block_images / swapaxes permutes, Dense and product (and the GELU before them) as
 * one op: on CUDA z's halves are read in place and the permutes are folded into the LayerNorm's and the product's
 * kernels; the CPU runs the separate ops' own code (equal bit for bit). The backward keeps z and the LayerNorm's
 * statistics; the Dense's input (the normalised v in the mixing layout) and output are formed again there (one more
 * GEMM, the forward's own: the same values), or with `keepDense` the output is kept (G·C·P more floats held, one
 * GEMM less).
 */
export function spatialGate(z: Tensor, lw: Tensor, lb: Tensor, w: Tensor, b: Tensor,
  opts: { over: GatingAxis; patch: readonly [number, number]; act?: 'none' | 'gelu'; eps?: number; keepDense?: boolean }): Tensor {
  const attrs = [opts.over === 'grid' ? 1 : 0, opts.patch[0], opts.patch[1], opts.act === 'gelu' ? 1 : 0, opts.eps ?? 1e-6];
  const keep = opts.keepDense === true && needsGrad([z, lw, lb, w, b]);
  const [y, mean, rstd, g] = runOp('spatial_gate', [z, lw, lb, w, b], keep ? [...attrs, 1] : attrs);
  record({
    name: 'spatial_gate',
    inputs: [z, lw, lb, w, b],
    outputs: [y!],
    save: keep ? [z, lw, lb, w, b, mean!, rstd!, g!] : [z, lw, lb, w, b, mean!, rstd!],
    backward: ([gy], saved) => runOp('spatial_gate_backward', [gy!, ...saved], attrs),
  });
  for (const x of [mean, rstd, g]) x?.dispose();
  return y!;
}

/** split(gelu(x), sizes) in one pass (MAXIM's GELU before its branches: the whole gelu(x) is never stored). */
export function geluSplit(x: Tensor, sizes: readonly number[]): Tensor[] {
  const ys = runOp('gelu_split', [x], sizes);
  record({
    name: 'gelu_split',
    inputs: [x],
    outputs: ys,
    save: [x],
    backward: (gys, [xs]) => [joinParts('gelu_split_backward', [xs!], gys, ys)],
  });
  return ys;
}

/** One mixing of spatialMix: the Dense (w [P, P], b [P] or null) over the positions of `over` for patch (fh, fw). */
export interface Mixing {
  over: GatingAxis;
  patch: readonly [number, number];
  w: Tensor;
  b: Tensor | null;
}

/**
 * MAXIM's spatial gating weights (the cross-gating block's) in one op: a = act(z) for z [N, H, W, 2C], y's first C
 * channels the first mixing's Dense over the positions of a's first half, its last C the second's over a's second
 * half — the official chunk, two block_images + swapaxes + Dense + back, and concat. The biases come both or neither.
 * The backward keeps only z (and the weights): the Denses' inputs are formed again from it.
 */
export function spatialMix(z: Tensor, first: Mixing, second: Mixing, act: 'none' | 'gelu' = 'none'): Tensor {
  if (!first.b !== !second.b) throw new IrcError('E_ARG', 'spatialMix: the two mixings need a bias each or neither');
  const attrs = [...[first, second].flatMap((m) => [m.over === 'grid' ? 1 : 0, m.patch[0], m.patch[1]]), act === 'gelu' ? 1 : 0];
  const ins = [z, first.w, second.w, ...(first.b && second.b ? [first.b, second.b] : [])];
  const [y] = runOp('spatial_mix', ins, attrs);
  record({
    name: 'spatial_mix',
    inputs: ins,
    outputs: [y!],
    save: [z, first.w, second.w],
    backward: ([gy], saved) => {
      const [dz, dw1, db1, dw2, db2] = runOp('spatial_mix_backward', [gy!, ...saved], attrs);
      if (ins.length === 5) return [dz!, dw1!, dw2!, db1!, db2!];
      db1!.dispose();
      db2!.dispose();
      return [dz!, dw1!, dw2!];
    },
  });
  return y!;
}
