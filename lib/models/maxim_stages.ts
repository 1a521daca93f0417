// MAXIM stage blocks (spec §4.4, §4.7): CrossGatingBlock, UNetEncoderBlock, UNetDecoderBlock, BottleneckBlock,
// with the official module names. Everything is NHWC.
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d, Linear } from '../nn/layers.js';
import { gelu } from '../ops/activation.js';
import { add, mul } from '../ops/elementwise.js';
import { concat } from '../ops/shape.js';
import { tidy } from '../tensor/scope.js';
import { chain, type Checkpointable } from '../autograd/checkpoint.js';
import {
  ConvTranspose2x2, formedAgain, lean, MaximLayerNorm, MultiAxisGmlpLayer, RCAB, RDCAB, SpatialGatingWeights, type MaximBlockOptions, type Size2,
} from './maxim_blocks.js';

/**
 * CrossGatingBlock(x_features, C, block, grid, cin_y, upsample_y): y is optionally up-sampled by a 2×2 transposed
 * conv; x, y are projected to C channels, each gates the other through GetSpatialGatingWeights; returns (x, y).
 */
export class CrossGatingBlock extends Module {
  readonly ConvTranspose_0: ConvTranspose2x2 | null;
  readonly Conv_0: Conv2d;
  readonly Conv_1: Conv2d;
  readonly LayerNorm_x: MaximLayerNorm;
  readonly in_project_x: Linear;
  readonly SplitHeadMultiAxisGating_x: SpatialGatingWeights;
  readonly LayerNorm_y: MaximLayerNorm;
  readonly in_project_y: Linear;
  readonly SplitHeadMultiAxisGating_y: SpatialGatingWeights;
  readonly out_project_y: Linear;
  readonly out_project_x: Linear;
  constructor(xFeatures: number, c: number, block: Size2, grid: Size2, cinY: number, upsampleY: boolean, bias: boolean) {
    super();
    this.ConvTranspose_0 = upsampleY ? this.child('ConvTranspose_0', new ConvTranspose2x2(cinY, c, bias)) : null;
    this.Conv_0 = this.child('Conv_0', new Conv2d(xFeatures, c, 1, { bias }));
    this.Conv_1 = this.child('Conv_1', new Conv2d(c, c, 1, { bias }));
    this.LayerNorm_x = this.child('LayerNorm_x', new MaximLayerNorm(c));
    this.in_project_x = this.child('in_project_x', new Linear(c, c, bias));
    this.SplitHeadMultiAxisGating_x = this.child('SplitHeadMultiAxisGating_x', new SpatialGatingWeights(c, grid, block, bias));
    this.LayerNorm_y = this.child('LayerNorm_y', new MaximLayerNorm(c));
    this.in_project_y = this.child('in_project_y', new Linear(c, c, bias));
    this.SplitHeadMultiAxisGating_y = this.child('SplitHeadMultiAxisGating_y', new SpatialGatingWeights(c, grid, block, bias));
    this.out_project_y = this.child('out_project_y', new Linear(c, c, bias));
    this.out_project_x = this.child('out_project_x', new Linear(c, c, bias));
  }
  forward(x: Tensor, y: Tensor): [Tensor, Tensor] {
    return tidy((): [Tensor, Tensor] => {
      if (this.ConvTranspose_0) y = this.ConvTranspose_0.forward(y);
      const sx = this.Conv_0.forward(x);
      const sy = this.Conv_1.forward(y);
      // lean: the GELUs' outputs and the products are formed again by the backwards that read them (from the GELUs'
      // inputs and the gating weights, which their own backwards keep)
      const on = lean(x);
      const act = (z: Tensor) => formedAgain(on, [z], ([s]) => gelu(s!));
      const prod = (a: Tensor, b: Tensor) => formedAgain(on, [a, b], ([p, q]) => mul(p!, q!));
      const xg = act(this.LayerNorm_x.linear(sx, this.in_project_x));
      const gx = this.SplitHeadMultiAxisGating_x.forward(xg);
      const yg = act(this.LayerNorm_y.linear(sy, this.in_project_y));
      const gy = this.SplitHeadMultiAxisGating_y.forward(yg);
      const yo = this.out_project_y.forwardAdd(prod(yg, gx), sy);
      const xo = this.out_project_x.forwardAdd(prod(xg, gy), add(yo, sx));
      return [xo, yo];
    });
  }
}

export interface EncoderBlockOptions extends MaximBlockOptions {
  /** MAXIM-1S: the block owns `Conv_1`, a 4×4 stride-2 conv (always with bias), used by down(). */
  downConv?: boolean;
}

/**
 * UNetEncoderBlock(cin, C, block, grid): [concat skip] → Conv_0 1×1 → (MAB → RCAB) × 2 → + long shortcut.
 * It also owns the official never-executed `cross_gating_block` (parameters kept for checkpoints and counts, §9 #17).
 */
export class UNetEncoderBlock extends Module implements Checkpointable {
  /** Activation checkpointing of its four layers (setCheckpointing). */
  checkpoint = false;
  readonly Conv_0: Conv2d;
  readonly SplitHeadMultiAxisGmlpLayer_0: MultiAxisGmlpLayer;
  readonly SplitHeadMultiAxisGmlpLayer_1: MultiAxisGmlpLayer;
  readonly channel_attention_block_10: RCAB;
  readonly channel_attention_block_11: RCAB;
  readonly cross_gating_block: CrossGatingBlock;
  readonly Conv_1: Conv2d | null;
  constructor(cin: number, c: number, block: Size2, grid: Size2, opts: EncoderBlockOptions) {
    super();
    const bias = opts.bias;
    this.Conv_0 = this.child('Conv_0', new Conv2d(cin, c, 1, { bias }));
    this.SplitHeadMultiAxisGmlpLayer_0 = this.child('SplitHeadMultiAxisGmlpLayer_0', new MultiAxisGmlpLayer(block, grid, c, bias));
    this.SplitHeadMultiAxisGmlpLayer_1 = this.child('SplitHeadMultiAxisGmlpLayer_1', new MultiAxisGmlpLayer(block, grid, c, bias));
    this.channel_attention_block_10 = this.child('channel_attention_block_10', new RCAB(c, opts));
    this.channel_attention_block_11 = this.child('channel_attention_block_11', new RCAB(c, opts));
    this.cross_gating_block = this.child('cross_gating_block', new CrossGatingBlock(c, c, block, grid, 0, false, bias));
    this.Conv_1 = opts.downConv ? this.child('Conv_1', new Conv2d(c, c, 4, { stride: 2, pad: 1, bias: true })) : null;
  }
  /** consume: x and skip are the caller's temporaries, freed once Conv_0 has read them (not kept through the layers). */
  forward(x: Tensor, skip?: Tensor, consume = false): Tensor {
    return tidy(() => {
      const s = this.Conv_0.forward(skip ? concat([x, skip]) : x);
      if (consume) for (const t of skip ? [x, skip] : [x]) t.dispose();
      const layers = [this.SplitHeadMultiAxisGmlpLayer_0, this.channel_attention_block_10, this.SplitHeadMultiAxisGmlpLayer_1, this.channel_attention_block_11];
      return add(chain(layers, s, this.checkpoint), s);
    });
  }
  /** MAXIM-1S down-sampling (Conv_1, 4×4 stride 2, pad 1). */
  down(x: Tensor): Tensor {
    return this.Conv_1!.forward(x);
  }
}

/**
 * UNetDecoderBlock. ConStyle MAXIM: UNetEncoderBlock_0(cin → C) on concat(x, bridge). MAXIM-1S: ConvTranspose_0
 * (cin → C, 2×2 stride 2) first, then UNetEncoderBlock_0(4C → C) (whose Conv_1 exists but is never used).
 */
export class UNetDecoderBlock extends Module {
  readonly ConvTranspose_0: ConvTranspose2x2 | null;
  readonly UNetEncoderBlock_0: UNetEncoderBlock;
  constructor(cin: number, c: number, block: Size2, grid: Size2, opts: MaximBlockOptions, variant: 'constyle' | 'maxim') {
    super();
    if (variant === 'maxim') {
      this.ConvTranspose_0 = this.child('ConvTranspose_0', new ConvTranspose2x2(cin, c, opts.bias));
      this.UNetEncoderBlock_0 = this.child('UNetEncoderBlock_0', new UNetEncoderBlock(4 * c, c, block, grid, { ...opts, downConv: true }));
    } else {
      this.ConvTranspose_0 = null;
      this.UNetEncoderBlock_0 = this.child('UNetEncoderBlock_0', new UNetEncoderBlock(cin, c, block, grid, { ...opts, downConv: false }));
    }
  }
  /** consume: x and bridge are the caller's temporaries, freed once read (UNetEncoderBlock.forward). */
  forward(x: Tensor, bridge: Tensor, consume = false): Tensor {
    if (!this.ConvTranspose_0) return this.UNetEncoderBlock_0.forward(x, bridge, consume);
    const up = this.ConvTranspose_0.forward(x);
    if (consume) x.dispose();
    return this.UNetEncoderBlock_0.forward(up, bridge, consume);
  }
}

/** BottleneckBlock(C): input_proj 1×1 (always with bias) → (MAB → RDCAB) × 2 → + long shortcut. */
export class BottleneckBlock extends Module implements Checkpointable {
  /** Activation checkpointing of its four layers (setCheckpointing). */
  checkpoint = false;
  readonly input_proj: Conv2d;
  readonly SplitHeadMultiAxisGmlpLayer_0: MultiAxisGmlpLayer;
  readonly SplitHeadMultiAxisGmlpLayer_1: MultiAxisGmlpLayer;
  readonly channel_attention_block_1_0: RDCAB;
  readonly channel_attention_block_1_1: RDCAB;
  constructor(c: number, block: Size2, grid: Size2, bias: boolean) {
    super();
    this.input_proj = this.child('input_proj', new Conv2d(c, c, 1, { bias: true }));
    this.SplitHeadMultiAxisGmlpLayer_0 = this.child('SplitHeadMultiAxisGmlpLayer_0', new MultiAxisGmlpLayer(block, grid, c, bias));
    this.SplitHeadMultiAxisGmlpLayer_1 = this.child('SplitHeadMultiAxisGmlpLayer_1', new MultiAxisGmlpLayer(block, grid, c, bias));
    this.channel_attention_block_1_0 = this.child('channel_attention_block_1_0', new RDCAB(c, bias));
    this.channel_attention_block_1_1 = this.child('channel_attention_block_1_1', new RDCAB(c, bias));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const s = this.input_proj.forward(x);
      const layers = [this.SplitHeadMultiAxisGmlpLayer_0, this.channel_attention_block_1_0, this.SplitHeadMultiAxisGmlpLayer_1, this.channel_attention_block_1_1];
      return add(chain(layers, s, this.checkpoint), s);
    });
  }
}
