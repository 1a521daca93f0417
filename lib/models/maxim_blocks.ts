// MAXIM building blocks (spec §4.4) with the official module names of archs/ConStyle_Maxim_arch.py and
// archs/Maxim_arch.py. Activations are NHWC, so the official NCHW <-> NHWC permutes disappear; the only real
// data movement is the block/grid re-ordering around the spatial Dense layers of the gating units.
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d, Linear } from '../nn/layers.js';
import { constant, kaimingUniform } from '../nn/init.js';
import { conv2d, linear } from '../ops/conv.js';
import { layerNorm2d } from '../ops/norm.js';
import { gelu, leakyRelu } from '../ops/activation.js';
import { relu, sigmoid } from '../ops/activation2.js';
import { resizeBilinear } from '../ops/resample.js';
import { add, mul, scale } from '../ops/elementwise.js';
import { permute } from '../ops/memory.js';
import { concat, pixelShuffle, split } from '../ops/shape.js';
import { globalAvgPool, channelScale } from '../ops/nafnet.js';
import { composesOnCpu, geluSplit, lnLinear, spatialGate, spatialMix, type GatingAxis, type Mixing } from '../ops/fused.js';
import { tidy } from '../tensor/scope.js';
import { reformable } from '../autograd/reform.js';
import { isGradEnabled } from '../autograd/node.js';
import { switchValue } from '../native/switches.js';

export type Size2 = readonly [number, number];

/** Options shared by the MAXIM blocks. */
export interface MaximBlockOptions {
  /** use_bias of the official code (ConStyle MAXIM: false, MAXIM-1S: true). */
  bias: boolean;
  /** LeakyReLU slope inside RCAB (0.2). */
  lreluSlope?: number;
  /** Channel-attention reduction (4). */
  reduction?: number;
}

/** Layer_norm_process: LayerNorm over the channel axis, eps 1e-6, parameters `gamma` (1) and `beta` (0). */
export class MaximLayerNorm extends Module {
  constructor(c: number) {
    super();
    this.param('beta', [c], constant(c, 0));
    this.param('gamma', [c], constant(c, 1));
  }
  forward(x: Tensor): Tensor {
    return layerNorm2d(x, this.P.gamma!, this.P.beta!, 1e-6);
  }
  /** lin(this(x)) in one op (lnLinear: the normalised x neither written nor kept on CUDA). */
  linear(x: Tensor, lin: Linear): Tensor {
    return lnLinear(x, this.P.gamma!, this.P.beta!, lin.P.weight!, lin.P.bias ?? null, 1e-6);
  }
}

function dims(x: Tensor): [number, number, number, number] {
  if (x.rank !== 4) throw new IrcError('E_SHAPE', `MAXIM: expected an NHWC tensor [N, H, W, C], got [${x.shape.join(', ')}]`);
  return x.shape as unknown as [number, number, number, number];
}

function checkTiles(what: string, h: number, w: number, th: number, tw: number): void {
  if (h % th || w % tw)
    throw new IrcError('E_SHAPE', `MAXIM ${what}: a ${h}×${w} map does not split into ${th}×${tw} tiles (pad the image to the model's size multiple)`);
}

/** block_images: [N, H, W, C] -> [N, gh·gw, fh·fw, C] for patch (fh, fw); rows (gh, gw), columns (fh, fw), row-major. */
export function blockImages(x: Tensor, patch: Size2): Tensor {
  const [n, h, w, c] = dims(x);
  const [fh, fw] = patch;
  checkTiles('block_images', h, w, fh, fw);
  const gh = h / fh, gw = w / fw;
  return permute(x.reshape([n, gh, fh, gw, fw, c]), [0, 1, 3, 2, 4, 5]).reshape([n, gh * gw, fh * fw, c]);
}

/** unblock_images: the inverse of blockImages for grid (gh, gw) and patch (fh, fw). */
export function unblockImages(x: Tensor, grid: Size2, patch: Size2): Tensor {
  const [n, g, p, c] = x.shape as [number, number, number, number];
  const [gh, gw] = grid, [fh, fw] = patch;
  if (x.rank !== 4 || g !== gh * gw || p !== fh * fw)
    throw new IrcError('E_SHAPE', `unblock_images: expected [N, ${gh * gw}, ${fh * fw}, C], got [${x.shape.join(', ')}]`);
  return permute(x.reshape([n, gh, gw, fh, fw, c]), [0, 1, 3, 2, 4, 5]).reshape([n, gh * fh, gw * fw, c]);
}

// Dense over a spatial axis of the blocked view, as one permute each way: [N, gh, fh, gw, fw, C] ->
// [N, ·, ·, C, a, b] with (a, b) the mixed axes, Linear over a·b, then back.
const BLOCK_PERM = [0, 1, 3, 5, 2, 4]; // mixes (fh, fw): the block axis P
const GRID_PERM = [0, 2, 4, 5, 1, 3]; // mixes (gh, gw): the grid axis G
const inverse = (p: readonly number[]) => p.reduce<number[]>((inv, v, i) => ((inv[v] = i), inv), []);
const BLOCK_INV = inverse(BLOCK_PERM);
const GRID_INV = inverse(GRID_PERM);

/**
 * The official `block_images(x, patch) → permute → Dense → permute → unblock` on x [N, H, W, C]:
 * `over: 'block'` mixes the fh·fw positions inside each patch, `over: 'grid'` mixes the gh·gw patches. With `again`,
 * the Dense's input (x in the mixing layout) is formed again from x for its backward instead of kept (reform.ts).
 */
export function spatialDense(x: Tensor, patch: Size2, over: 'block' | 'grid', w: Tensor, b: Tensor | null, again = false): Tensor {
  const [n, h, wd, c] = dims(x);
  const [fh, fw] = patch;
  checkTiles('gating', h, wd, fh, fw);
  const gh = h / fh, gw = wd / fw;
  const perm = over === 'block' ? BLOCK_PERM : GRID_PERM;
  const mixing = (s: Tensor) => tidy(() => permute(s.reshape([n, gh, fh, gw, fw, c]), perm));
  const t = formedAgain(again, [x], ([s]) => mixing(s!));
  const [a, b2, c2, d2, e, f] = t.shape as [number, number, number, number, number, number];
  const y = linear(t.reshape([a, b2, c2, d2, e * f]), w, b).reshape([a, b2, c2, d2, e, f]);
  return permute(y, over === 'block' ? BLOCK_INV : GRID_INV).reshape([n, h, wd, c]);
}

/** @internal Whether MAXIM's cheap intermediates on x are formed again in the backward rather than kept
 * (`maximFusion.reform`): where the fused ops recompute (CUDA; the CPU when setKeepOnCpu(false)) and gradients are
 * recorded. */
export const lean = (x: Tensor) => maximFusion.reform && !composesOnCpu(x) && isGradEnabled();

/** @internal y = form(sources), marked (when `on`) to be formed again so by the backwards that read it (reform.ts). */
export function formedAgain(on: boolean, sources: Tensor[], form: (s: Tensor[]) => Tensor): Tensor {
  const y = form(sources);
  return on ? reformable([y], sources, (s) => [form(s)])[0]! : y;
}

/** GELU's two halves of z (geluHalves), formed again from z for their readers' backwards when `on`. */
function halvesOf(z: Tensor, on: boolean): [Tensor, Tensor] {
  return on ? reformable(geluHalves(z), [z], ([s]) => geluHalves(s!)) : geluHalves(z);
}

/** The gating units and spatial gating weights take their one-op forms (spatialGate, spatialMix) only with
 * IRCONSTYLE_SPATIAL_GATE=1: on the H100 the tile kernels measured several times slower than the separate ops
 * (BENCHMARKS.md, ninth session), for less memory. */
const tilesOff = () => switchValue('IRCONSTYLE_SPATIAL_GATE') !== '1';

/**
 * Block/GridGatingUnit(2C, n): split u, v; v <- LN(v); v <- Dense_0 over the block (P) or grid (G) axis; u ⊙ (v + 1).
 * One op (spatialGate); `act` 'gelu' applies the GmlpLayer's GELU to the input on the way in.
 */
export class GatingUnit extends Module {
  readonly intermediate_layernorm: MaximLayerNorm;
  readonly Dense_0: Linear;
  constructor(readonly kind: GatingAxis, c2: number, n: number) {
    super();
    this.intermediate_layernorm = this.child('intermediate_layernorm', new MaximLayerNorm(c2 / 2));
    this.Dense_0 = this.child('Dense_0', new Linear(n, n, true)); // bias always (flag not forwarded, §9 #19)
  }
  /**
   * patch: the (fh, fw) tiling of x's spatial dims. One op except on the CPU by default, where the separate ops
   * (`composed`) are faster (measured: inference 4 %, a training step 3 %; the fused op's CPU code runs the same
   * kernels plus its transposes) and give the same bits.
   */
  forward(x: Tensor, patch: Size2, act: 'none' | 'gelu' = 'none'): Tensor {
    if (composesOnCpu(x) || tilesOff()) return this.composed(x, patch, act);
    const ln = this.intermediate_layernorm.P, d = this.Dense_0.P;
    // u ⊙ (Dense(v) + 1): the +1 rides on the bias (P or G values instead of a full-map pass).
    return tidy(() => spatialGate(x, ln.gamma!, ln.beta!, d.weight!, scale(d.bias!, 1, 1), { over: this.kind, patch, act, eps: 1e-6, keepDense: maximFusion.keepDense }));
  }
  /** The official composition: (GELU,) split, LayerNorm, block_images + swapaxes, Dense, back, product; the GELU and
   * the split as one op (geluHalves: the whole GELU output neither written nor read again). */
  composed(x: Tensor, patch: Size2, act: 'none' | 'gelu' = 'none'): Tensor {
    return tidy(() => {
      const c = x.shape[3]! / 2, on = lean(x);
      const [u, v] = act === 'gelu' ? halvesOf(x, on) : (split(x, [c, c]) as [Tensor, Tensor]);
      const d = this.Dense_0.P, ln = this.intermediate_layernorm;
      // lean: only x and the Dense's output are kept; the halves, the LayerNorm's output, the Dense's input and the
      // product are formed again from them (elementwise and permute passes, no GEMM) by the backwards that read them
      const h = formedAgain(on, [v, ln.P.gamma!, ln.P.beta!], ([s, lw, lb]) => layerNorm2d(s!, lw!, lb!, 1e-6));
      const g = spatialDense(h, patch, this.kind, d.weight!, scale(d.bias!, 1, 1), on);
      return formedAgain(on, [u, g], ([a, b]) => mul(a!, b!));
    });
  }
}

/** GridGmlpLayer / BlockGmlpLayer(size, C): x + out_project(GatingUnit(GELU(in_project(LN(x))))). */
export class GmlpLayer extends Module {
  readonly LayerNorm: MaximLayerNorm;
  readonly in_project: Linear;
  readonly gate: GatingUnit;
  readonly out_project: Linear;
  /** size: grid (gh, gw) for 'grid', block (fh, fw) for 'block'. */
  constructor(readonly kind: GatingAxis, readonly size: Size2, c: number, bias: boolean, factor = 2) {
    super();
    this.LayerNorm = this.child('LayerNorm', new MaximLayerNorm(c));
    this.in_project = this.child('in_project', new Linear(c, c * factor, bias));
    const n = size[0] * size[1];
    this.gate = this.child(kind === 'grid' ? 'GridGatingUnit' : 'BlockGatingUnit', new GatingUnit(kind, c * factor, n));
    this.out_project = this.child('out_project', new Linear((c * factor) / 2, c, bias));
  }
  /** The (fh, fw) patch tiling of x for this layer's block or grid size. */
  patch(x: Tensor): Size2 {
    const [, h, w] = dims(x);
    if (h % this.size[0] || w % this.size[1])
      throw new IrcError('E_SHAPE', `MAXIM ${this.kind} gMLP: a ${h}×${w} map does not split into a ${this.size[0]}×${this.size[1]} ${this.kind} (pad the image to the model's size multiple)`);
    return this.kind === 'grid' ? [h / this.size[0], w / this.size[1]] : this.size;
  }
  forward(x: Tensor): Tensor {
    const patch = this.patch(x);
    return tidy(() => {
      const z = this.LayerNorm.linear(x, this.in_project); // the GELU is applied inside the gating op
      return this.out_project.forwardAdd(this.gate.forward(z, patch, 'gelu'), x); // x + out_project(…) in one op
    });
  }
}

/** @internal Whether MAXIM's GELU + split pairs and spatial gating weights run as one op each (scripts/unfused-blocks.mjs
 * turns them off for A/B timing), whether the gating units keep their Dense outputs for the backward (`keepDense`:
 * one GEMM less per unit there, G·C·P floats more held per unit; scripts/bench-gpu.mjs times both), and whether the
 * cheap intermediates of a training step are formed again in the backward rather than held from the forward to it
 * (`reform`, where `lean` applies: the GELU halves, the gating units' LayerNorm outputs, Dense inputs and products,
 * the cross-gating's GELU outputs and products, RCAB's LayerNorm output; no GEMM is run again). */
export const maximFusion = { geluSplit: true, spatialMix: true, keepDense: false, reform: true };

/** GELU, then the two channel halves (the official chunk), in one op. */
function geluHalves(y: Tensor): [Tensor, Tensor] {
  const h = y.shape[3]! / 2;
  return (maximFusion.geluSplit ? geluSplit(y, [h, h]) : split(gelu(y), [h, h])) as [Tensor, Tensor];
}

/** ResidualSplitHeadMultiAxisGmlpLayer (MAB): LN → Linear(C→2C) → GELU → (grid gMLP ‖ block gMLP) → Linear(2C→C) + x. */
export class MultiAxisGmlpLayer extends Module {
  readonly LayerNorm_in: MaximLayerNorm;
  readonly in_project: Linear;
  readonly GridGmlpLayer: GmlpLayer;
  readonly BlockGmlpLayer: GmlpLayer;
  readonly out_project: Linear;
  constructor(block: Size2, grid: Size2, c: number, bias: boolean, factor = 2) {
    super();
    this.LayerNorm_in = this.child('LayerNorm_in', new MaximLayerNorm(c));
    this.in_project = this.child('in_project', new Linear(c, c * factor, bias));
    const h = (c * factor) / 2;
    this.GridGmlpLayer = this.child('GridGmlpLayer', new GmlpLayer('grid', grid, h, bias));
    this.BlockGmlpLayer = this.child('BlockGmlpLayer', new GmlpLayer('block', block, h, bias));
    this.out_project = this.child('out_project', new Linear(c * factor, c, bias));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [u, v] = halvesOf(this.LayerNorm_in.linear(x, this.in_project), lean(x));
      const z = concat([this.GridGmlpLayer.forward(u), this.BlockGmlpLayer.forward(v)]);
      return this.out_project.forwardAdd(z, x);
    });
  }
}

/** CALayer(C, r): x ⊙ sigmoid(Conv_1(ReLU(Conv_0(mean_HW(x))))), 1×1 convs. */
export class CALayer extends Module {
  readonly Conv_0: Conv2d;
  readonly Conv_1: Conv2d;
  constructor(c: number, reduction: number, bias: boolean) {
    super();
    this.Conv_0 = this.child('Conv_0', new Conv2d(c, c / reduction, 1, { bias }));
    this.Conv_1 = this.child('Conv_1', new Conv2d(c / reduction, c, 1, { bias }));
  }
  forward(x: Tensor): Tensor {
    const s = sigmoid(this.Conv_1.forward(relu(this.Conv_0.forward(globalAvgPool(x)))));
    return channelScale(x, s);
  }
}

/** RCAB(C): x + CALayer(Conv3×3(LeakyReLU(Conv3×3(LN(x))))); the CALayer always has biases (§9 #19). */
export class RCAB extends Module {
  readonly LayerNorm: MaximLayerNorm;
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly channel_attention: CALayer;
  constructor(c: number, readonly opts: MaximBlockOptions) {
    super();
    this.LayerNorm = this.child('LayerNorm', new MaximLayerNorm(c));
    this.conv1 = this.child('conv1', new Conv2d(c, c, 3, { bias: opts.bias }));
    this.conv2 = this.child('conv2', new Conv2d(c, c, 3, { bias: opts.bias }));
    this.channel_attention = this.child('channel_attention', new CALayer(c, opts.reduction ?? 4, true));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      // conv1's output is not kept (the LeakyReLU keeps its own): freed here rather than at the end of the block; with
      // `lean` its input, the LayerNorm's output, is formed again for its backward from x (which the LayerNorm keeps)
      const ln = this.LayerNorm.P, on = lean(x);
      const h = tidy(() => {
        const n = formedAgain(on, [x, ln.gamma!, ln.beta!], ([s, w, b]) => layerNorm2d(s!, w!, b!, 1e-6));
        return leakyRelu(this.conv1.forward(n), this.opts.lreluSlope ?? 0.2);
      });
      const y = this.conv2.forward(h);
      return add(this.channel_attention.forward(y), x);
    });
  }
}

/** MlpBlock(C): Dense_1(GELU(Dense_0(x))). */
export class MlpBlock extends Module {
  readonly Dense_0: Linear;
  readonly Dense_1: Linear;
  constructor(c: number, bias: boolean) {
    super();
    this.Dense_0 = this.child('Dense_0', new Linear(c, c, bias));
    this.Dense_1 = this.child('Dense_1', new Linear(c, c, bias));
  }
  forward(x: Tensor): Tensor {
    return this.Dense_1.forward(gelu(this.Dense_0.forward(x)));
  }
}

/** RDCAB(C): x + CALayer(MlpBlock(LN(x))) (reduction 4, use_bias). */
export class RDCAB extends Module {
  readonly LayerNorm: MaximLayerNorm;
  readonly channel_mixing: MlpBlock;
  readonly channel_attention: CALayer;
  constructor(c: number, bias: boolean, reduction = 4) {
    super();
    this.LayerNorm = this.child('LayerNorm', new MaximLayerNorm(c));
    this.channel_mixing = this.child('channel_mixing', new MlpBlock(c, bias));
    this.channel_attention = this.child('channel_attention', new CALayer(c, reduction, bias));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const m = this.channel_mixing;  // MlpBlock: Dense_1(GELU(Dense_0(·))), its first Dense behind the LayerNorm
      return add(x, this.channel_attention.forward(m.Dense_1.forward(gelu(this.LayerNorm.linear(x, m.Dense_0)))));
    });
  }
}

/** GetSpatialGatingWeights(C, grid, block): LN → Linear(C→2C) → GELU → (grid Dense_0 ‖ block Dense_1) → Linear(2C→C). */
export class SpatialGatingWeights extends Module {
  readonly LayerNorm_in: MaximLayerNorm;
  readonly in_project: Linear;
  readonly Dense_0: Linear;
  readonly Dense_1: Linear;
  readonly out_project: Linear;
  constructor(c: number, readonly grid: Size2, readonly block: Size2, bias: boolean, factor = 2) {
    super();
    this.LayerNorm_in = this.child('LayerNorm_in', new MaximLayerNorm(c));
    this.in_project = this.child('in_project', new Linear(c, c * factor, bias));
    this.Dense_0 = this.child('Dense_0', new Linear(grid[0] * grid[1], grid[0] * grid[1], bias));
    this.Dense_1 = this.child('Dense_1', new Linear(block[0] * block[1], block[0] * block[1], bias));
    this.out_project = this.child('out_project', new Linear(c * factor, c, bias));
  }
  forward(x: Tensor): Tensor {
    const [, h, w] = dims(x);
    checkTiles('cross-gating grid', h, w, this.grid[0], this.grid[1]);
    const grid: Mixing = { over: 'grid', patch: [h / this.grid[0], w / this.grid[1]], w: this.Dense_0.P.weight!, b: this.Dense_0.P.bias ?? null };
    const block: Mixing = { over: 'block', patch: this.block, w: this.Dense_1.P.weight!, b: this.Dense_1.P.bias ?? null };
    return tidy(() => {
      const z = this.LayerNorm_in.linear(x, this.in_project);
      // one op (the GELU, both halves' mixing and the concat) except on the CPU by default, where the separate ops
      // are faster (forward at [4,128,128,64]: 106 ms against the op's 118 ms)
      if (maximFusion.spatialMix && !composesOnCpu(z) && !tilesOff()) return this.out_project.forward(spatialMix(z, grid, block, 'gelu'));
      const on = lean(z), [u, v] = halvesOf(z, on);
      const mix = (t: Tensor, m: Mixing) => spatialDense(t, m.patch, m.over, m.w, m.b, on);
      return this.out_project.forward(concat([mix(u, grid), mix(v, block)]));
    });
  }
}

/**
 * nn.ConvTranspose2d(cin, cout, kernel 2, stride 2). The official weight [cin, cout, 2, 2] read in memory order is a
 * 1×1 conv weight [1, 1, cin, 4·cout] whose output channel co·4 + 2i + j is PixelShuffle's channel order, so
 * y = PixelShuffle(conv1×1(x, W), 2) + bias. Stored in the official layout (a plain reshape view at run time).
 */
export class ConvTranspose2x2 extends Module {
  constructor(readonly cin: number, readonly cout: number, bias: boolean) {
    super();
    const fanIn = cout * 4; // PyTorch computes fan_in from weight.size(1) · k · k
    this.param('weight', [cin, cout, 2, 2], kaimingUniform(cin * cout * 4, fanIn));
    if (bias) this.param('bias', [cout], kaimingUniform(cout, fanIn));
  }
  forward(x: Tensor): Tensor {
    const y = pixelShuffle(conv2d(x, this.P.weight!.reshape([1, 1, this.cin, 4 * this.cout]), null), 2);
    return this.P.bias ? add(y, this.P.bias) : y;
  }
}

/** UpSampleRatio(cin, cout, r): antialiased bilinear resize by r (skipped at r = 1), then Conv_0 1×1. */
export class UpSampleRatio extends Module {
  readonly Conv_0: Conv2d;
  constructor(cin: number, cout: number, readonly ratio: number, bias: boolean) {
    super();
    this.Conv_0 = this.child('Conv_0', new Conv2d(cin, cout, 1, { bias }));
  }
  forward(x: Tensor): Tensor {
    return this.Conv_0.forward(resizeRatio(x, this.ratio));
  }
}

/** UpSampleRatio_(r) of ConStyle MAXIM: F.interpolate(bilinear, antialias) to (int(H·r), int(W·r)); identity at r = 1. */
export function resizeRatio(x: Tensor, ratio: number): Tensor {
  if (ratio === 1) return x;
  const [, h, w] = dims(x);
  return resizeBilinear(x, Math.floor(h * ratio), Math.floor(w * ratio), true);
}
