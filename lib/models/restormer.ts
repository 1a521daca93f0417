// Restormer (spec §4.3, §4.7): MDTA + GDFN TransformerBlocks, the plain Restormer of the official repository,
// and ConStyle Restormer (the ConStyle U-Net of §4.0 with TransformerBlocks as Process Modules).
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/layers.js';
import { constant } from '../nn/init.js';
import { add } from '../ops/elementwise.js';
import { dwconvChannelAttention } from '../ops/attention.js';
import { conv1x1Add, dwconvGate, lnConv1x1 } from '../ops/fused.js';
import { layerNorm2d } from '../ops/norm.js';
import { layerNormBiasFree } from '../ops/norm2.js';
import { concat, pixelShuffle, pixelUnshuffle } from '../ops/shape.js';
import { Blocks } from './nafnet.js';
import { ConStyleUNet, type Level, type UNetConfig } from './unet.js';

export type LayerNormType = 'WithBias' | 'BiasFree';

export interface TransformerBlockOptions {
  /** FFN expansion factor: hidden width floor(factor·C) (official 2.66). */
  ffn?: number;
  /** Biases on every conv of the block (official false). */
  bias?: boolean;
  layerNorm?: LayerNormType;
}

/** The LayerNorm's `body`: per-pixel channel LayerNorm with eps 1e-5 (WithBias) or without bias/centring (BiasFree). */
class LayerNormBody extends Module {
  constructor(c: number, readonly type: LayerNormType) {
    super();
    this.param('weight', [c], constant(c, 1));
    if (type === 'WithBias') this.param('bias', [c], constant(c, 0));
  }
  forward(x: Tensor): Tensor {
    return this.type === 'WithBias' ? layerNorm2d(x, this.P.weight!, this.P.bias!, 1e-5) : layerNormBiasFree(x, this.P.weight!, 1e-5);
  }
}

/** Restormer's LayerNorm (state-dict names `body.weight`, `body.bias`). */
export class RestormerLayerNorm extends Module {
  readonly body: LayerNormBody;
  constructor(c: number, type: LayerNormType = 'WithBias') {
    super();
    this.body = this.child('body', new LayerNormBody(c, type));
  }
  forward(x: Tensor): Tensor {
    return this.body.forward(x);
  }
  /** conv(this(x)) for a 1×1 conv: one op with the WithBias norm (its output is then never stored), else the two. */
  pointwise(x: Tensor, conv: Conv2d): Tensor {
    const b = this.body;
    if (b.type === 'WithBias') return lnConv1x1(x, b.P.weight!, b.P.bias!, conv.P.weight!, conv.P.bias ?? null, 1e-5);
    return conv.forward(this.forward(x));
  }
}

/** MDTA: transposed (channel) attention per head, with a learned per-head temperature [heads, 1, 1] (init 1). */
export class Attention extends Module {
  readonly qkv: Conv2d;
  readonly qkvDwconv: Conv2d;
  readonly projectOut: Conv2d;
  constructor(readonly c: number, readonly heads: number, bias = false) {
    super();
    if (!Number.isInteger(heads) || heads <= 0 || c % heads)
      throw new IrcError('E_ARG', `Restormer attention: channels (${c}) must be divisible by the number of heads (${heads})`);
    this.param('temperature', [heads, 1, 1], constant(heads, 1));
    this.qkv = this.child('qkv', new Conv2d(c, 3 * c, 1, { bias }));
    this.qkvDwconv = this.child('qkv_dwconv', new Conv2d(3 * c, 3 * c, 3, { groups: 3 * c, bias }));
    this.projectOut = this.child('project_out', new Conv2d(c, c, 1, { bias }));
  }
  forward(x: Tensor): Tensor {
    return this.projectOut.forward(this.core(this.qkv.forward(x)));
  }
  /** r + MDTA(x), with project_out and the add in one op; with `norm`, r + MDTA(norm(x)) (norm and qkv in one op). */
  forwardAdd(x: Tensor, r: Tensor, norm?: RestormerLayerNorm): Tensor {
    const qkv = norm ? norm.pointwise(x, this.qkv) : this.qkv.forward(x);
    return conv1x1Add(this.core(qkv), this.projectOut.P.weight!, r, this.projectOut.P.bias ?? null, null);
  }
  /** softmax(normalize(q) normalize(k)ᵀ · temperature) v per head of the qkv_dwconv output (one fused op on the NHWC
   * qkv directly; the dwconv output recomputed in the backward, not kept). */
  private core(qkv: Tensor): Tensor {
    const d = this.qkvDwconv.P;
    return dwconvChannelAttention(qkv, d.weight!, d.bias ?? null, this.P.temperature!, this.heads);
  }
}

/** GDFN: 1×1 (C → 2h), depthwise 3×3, GELU(x1)·x2, 1×1 (h → C), with h = floor(ffn·C). */
export class FeedForward extends Module {
  readonly hidden: number;
  readonly projectIn: Conv2d;
  readonly dwconv: Conv2d;
  readonly projectOut: Conv2d;
  constructor(c: number, ffn = 2.66, bias = false) {
    super();
    const hd = (this.hidden = Math.floor(c * ffn));
    this.projectIn = this.child('project_in', new Conv2d(c, 2 * hd, 1, { bias }));
    this.dwconv = this.child('dwconv', new Conv2d(2 * hd, 2 * hd, 3, { groups: 2 * hd, bias }));
    this.projectOut = this.child('project_out', new Conv2d(hd, c, 1, { bias }));
  }
  forward(x: Tensor): Tensor {
    return this.projectOut.forward(this.gate(this.projectIn.forward(x)));
  }
  /** r + GDFN(x), with project_out and the add in one op; with `norm`, r + GDFN(norm(x)) (norm and project_in in one op). */
  forwardAdd(x: Tensor, r: Tensor, norm?: RestormerLayerNorm): Tensor {
    const p = norm ? norm.pointwise(x, this.projectIn) : this.projectIn.forward(x);
    return conv1x1Add(this.gate(p), this.projectOut.P.weight!, r, this.projectOut.P.bias ?? null, null);
  }
  /** dwconv, chunk, GELU(x1)·x2 of project_in's output as one fused op (the dwconv output is recomputed in the backward). */
  private gate(p: Tensor): Tensor {
    const d = this.dwconv;
    return dwconvGate(p, d.P.weight!, d.P.bias ?? null, 1, 'gelu');
  }
}

/** x + MDTA(LN(x)), then x + GDFN(LN(x)). */
export class TransformerBlock extends Module {
  readonly norm1: RestormerLayerNorm;
  readonly attn: Attention;
  readonly norm2: RestormerLayerNorm;
  readonly ffn: FeedForward;
  constructor(c: number, heads: number, opts: TransformerBlockOptions = {}) {
    super();
    const bias = opts.bias ?? false;
    this.norm1 = this.child('norm1', new RestormerLayerNorm(c, opts.layerNorm ?? 'WithBias'));
    this.attn = this.child('attn', new Attention(c, heads, bias));
    this.norm2 = this.child('norm2', new RestormerLayerNorm(c, opts.layerNorm ?? 'WithBias'));
    this.ffn = this.child('ffn', new FeedForward(c, opts.ffn ?? 2.66, bias));
  }
  forward(x: Tensor): Tensor {
    const y = this.attn.forwardAdd(x, x, this.norm1);
    return this.ffn.forwardAdd(y, y, this.norm2);
  }
}

/** OverlapPatchEmbed: Conv3×3 (cin → dim) as `proj`. */
export class OverlapPatchEmbed extends Module {
  readonly proj: Conv2d;
  constructor(cin: number, dim: number, bias = false) {
    super();
    this.proj = this.child('proj', new Conv2d(cin, dim, 3, { bias }));
  }
  forward(x: Tensor): Tensor {
    return this.proj.forward(x);
  }
}

/** Downsample(c): `body` = Sequential(Conv3×3(c → c/2, no bias), PixelUnshuffle(2)) -> 2c channels at half size. */
class Downsample extends Module {
  readonly conv: Conv2d;
  constructor(c: number) {
    super();
    this.conv = this.child('body', new Seq(new Conv2d(c, c / 2, 3, { bias: false }))).conv;
  }
  forward(x: Tensor): Tensor {
    return pixelUnshuffle(this.conv.forward(x), 2);
  }
}

/** Upsample(c): `body` = Sequential(Conv3×3(c → 2c, no bias), PixelShuffle(2)) -> c/2 channels at double size. */
class Upsample extends Module {
  readonly conv: Conv2d;
  constructor(c: number) {
    super();
    this.conv = this.child('body', new Seq(new Conv2d(c, 2 * c, 3, { bias: false }))).conv;
  }
  forward(x: Tensor): Tensor {
    return pixelShuffle(this.conv.forward(x), 2);
  }
}

/** A Sequential whose child 0 is a conv (the parameter-free shuffle that follows has no state). */
class Seq extends Module {
  readonly conv: Conv2d;
  constructor(conv: Conv2d) {
    super();
    this.conv = this.child('0', conv);
  }
}

function transformerBlocks(n: number, c: number, heads: number, opts: TransformerBlockOptions): Blocks<TransformerBlock> {
  return new Blocks(Array.from({ length: n }, () => new TransformerBlock(c, heads, opts)));
}

function checkHeads(name: string, heads: readonly number[]): void {
  if (heads.length !== 4 || heads.some((h) => !Number.isInteger(h) || h <= 0))
    throw new IrcError('E_ARG', `${name}: heads must be 4 positive integers, got ${JSON.stringify(heads)}`);
}

export interface RestormerConfig extends TransformerBlockOptions {
  dim?: number;
  /** TransformerBlocks per level: encoder 1..3 (decoder 3..1 reuse them) and the latent level. */
  blocks?: [number, number, number, number];
  refine?: number;
  heads?: [number, number, number, number];
}

/** The official Restormer (defaults: dim 48, blocks [4,6,6,8], 4 refinement blocks, heads [1,2,4,8]). */
export class Restormer extends Module {
  readonly config: Required<RestormerConfig>;
  readonly patchEmbed: OverlapPatchEmbed;
  readonly enc1: Blocks<TransformerBlock>;
  readonly down12: Downsample;
  readonly enc2: Blocks<TransformerBlock>;
  readonly down23: Downsample;
  readonly enc3: Blocks<TransformerBlock>;
  readonly down34: Downsample;
  readonly latent: Blocks<TransformerBlock>;
  readonly up43: Upsample;
  readonly reduce3: Conv2d;
  readonly dec3: Blocks<TransformerBlock>;
  readonly up32: Upsample;
  readonly reduce2: Conv2d;
  readonly dec2: Blocks<TransformerBlock>;
  readonly up21: Upsample;
  readonly dec1: Blocks<TransformerBlock>;
  readonly refinement: Blocks<TransformerBlock>;
  readonly output: Conv2d;

  constructor(config: RestormerConfig = {}) {
    super();
    const cfg = (this.config = {
      dim: config.dim ?? 48,
      blocks: config.blocks ?? [4, 6, 6, 8],
      refine: config.refine ?? 4,
      heads: config.heads ?? [1, 2, 4, 8],
      ffn: config.ffn ?? 2.66,
      bias: config.bias ?? false,
      layerNorm: config.layerNorm ?? 'WithBias',
    });
    const { dim: d, blocks: nb, heads: hs, refine, bias } = cfg;
    if (!Number.isInteger(d) || d <= 0 || d % 2)
      throw new IrcError('E_ARG', `Restormer: dim must be a positive even integer, got ${d}`);
    if (nb.length !== 4) throw new IrcError('E_ARG', `Restormer: blocks must have 4 entries, got ${JSON.stringify(nb)}`);
    checkHeads('Restormer', hs);
    const o: TransformerBlockOptions = { ffn: cfg.ffn, bias, layerNorm: cfg.layerNorm };
    this.patchEmbed = this.child('patch_embed', new OverlapPatchEmbed(3, d, bias));
    this.enc1 = this.child('encoder_level1', transformerBlocks(nb[0], d, hs[0], o));
    this.down12 = this.child('down1_2', new Downsample(d));
    this.enc2 = this.child('encoder_level2', transformerBlocks(nb[1], 2 * d, hs[1], o));
    this.down23 = this.child('down2_3', new Downsample(2 * d));
    this.enc3 = this.child('encoder_level3', transformerBlocks(nb[2], 4 * d, hs[2], o));
    this.down34 = this.child('down3_4', new Downsample(4 * d));
    this.latent = this.child('latent', transformerBlocks(nb[3], 8 * d, hs[3], o));
    this.up43 = this.child('up4_3', new Upsample(8 * d));
    this.reduce3 = this.child('reduce_chan_level3', new Conv2d(8 * d, 4 * d, 1, { bias }));
    this.dec3 = this.child('decoder_level3', transformerBlocks(nb[2], 4 * d, hs[2], o));
    this.up32 = this.child('up3_2', new Upsample(4 * d));
    this.reduce2 = this.child('reduce_chan_level2', new Conv2d(4 * d, 2 * d, 1, { bias }));
    this.dec2 = this.child('decoder_level2', transformerBlocks(nb[1], 2 * d, hs[1], o));
    this.up21 = this.child('up2_1', new Upsample(2 * d));
    this.dec1 = this.child('decoder_level1', transformerBlocks(nb[0], 2 * d, hs[0], o));
    this.refinement = this.child('refinement', transformerBlocks(refine, 2 * d, hs[0], o));
    this.output = this.child('output', new Conv2d(2 * d, 3, 3, { bias }));
  }

  /** Input H and W must be multiples of these (three 2× down-samplings). */
  sizeMultiple(): [number, number] {
    return [8, 8];
  }

  /** img: NHWC [N, H, W, 3] with H, W multiples of 8. Returns output(...) + img. */
  forward(img: Tensor): Tensor {
    const [, h, w, c] = img.shape as [number, number, number, number];
    if (img.rank !== 4 || c !== 3)
      throw new IrcError('E_SHAPE', `Restormer: expected an NHWC image batch [N, H, W, 3], got [${img.shape.join(', ')}]`);
    if (h % 8 || w % 8)
      throw new IrcError('E_SHAPE', `Restormer: height and width must be multiples of 8, got ${h}×${w} (pad with padToMultiple first)`);
    const e1 = this.enc1.forward(this.patchEmbed.forward(img));
    const e2 = this.enc2.forward(this.down12.forward(e1));
    const e3 = this.enc3.forward(this.down23.forward(e2));
    const lat = this.latent.forward(this.down34.forward(e3));
    const d3 = this.dec3.forward(this.reduce3.forward(concat([this.up43.forward(lat), e3])));
    const d2 = this.dec2.forward(this.reduce2.forward(concat([this.up32.forward(d3), e2])));
    const d1 = this.dec1.forward(concat([this.up21.forward(d2), e1]));
    return add(this.output.forward(this.refinement.forward(d1)), img);
  }
}

/** ConStyle Restormer's Finetune_Module: `refine` TransformerBlocks @2dim (children 0..refine-1), then Conv3×3 (2dim → 3). */
class RestormerFinetune extends Module {
  readonly blocks: TransformerBlock[];
  readonly conv: Conv2d;
  constructor(c: number, refine: number, heads: number, o: TransformerBlockOptions) {
    super();
    this.blocks = Array.from({ length: refine }, (_, i) => this.child(String(i), new TransformerBlock(c, heads, o)));
    this.conv = this.child(String(refine), new Conv2d(c, 3, 3, { bias: o.bias ?? false }));
  }
  forward(x: Tensor): Tensor {
    for (const b of this.blocks) x = b.forward(x);
    return this.conv.forward(x);
  }
}

export interface ConStyleRestormerConfig extends TransformerBlockOptions {
  dim?: number;
  left?: [number, number, number];
  bottom?: number;
  right?: [number, number, number];
  refine?: number;
  heads?: [number, number, number, number];
  constyle?: UNetConfig['constyle'];
  /** MoCo queue length (default 65,760). */
  K?: number;
}

/** Heads of each Process Module: l1/r1 heads[0], l2/r2 heads[1], l3/r3 heads[2], bottom heads[3]. */
const LEVEL_HEAD: Record<Level, number> = { l1: 0, r1: 0, l2: 1, r2: 1, l3: 2, r3: 2, bottom: 3 };

/** ConStyle Restormer (paper defaults: dim 48, left [4,6,6], bottom 8, right [4,6,6], 4 refinement blocks, heads [1,2,4,8]). */
export function constyleRestormer(cfg: ConStyleRestormerConfig = {}): ConStyleUNet {
  const heads = cfg.heads ?? [1, 2, 4, 8];
  checkHeads('ConStyle Restormer', heads);
  const o: TransformerBlockOptions = { ffn: cfg.ffn ?? 2.66, bias: cfg.bias ?? false, layerNorm: cfg.layerNorm ?? 'WithBias' };
  const refine = cfg.refine ?? 4;
  return new ConStyleUNet({
    dim: cfg.dim ?? 48,
    left: cfg.left ?? [4, 6, 6],
    bottom: cfg.bottom ?? 8,
    right: cfg.right ?? [4, 6, 6],
    block: (c, level) => new TransformerBlock(c, heads[LEVEL_HEAD[level]]!, o),
    affineAct: 'prelu',
    preprocess: (d) => new OverlapPatchEmbed(3, d, o.bias),
    finetune: (d) => new RestormerFinetune(2 * d, refine, heads[0], o),
    constyle: cfg.constyle ?? 'train',
    constyleOptions: cfg.K !== undefined ? { K: cfg.K } : {},
  });
}
