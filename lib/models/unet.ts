// The general restoration network of IRConStyle (spec §4.0–4.1): a U-Net template whose Process Modules are
// pluggable, fed with ConStyle's feature maps (DC) and latent code (bottleneck fusion).
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d, Linear, PReLU } from '../nn/layers.js';
import { add, mul } from '../ops/elementwise.js';
import { leakyRelu } from '../ops/activation.js';
import { concat, pixelShuffle, pixelUnshuffle } from '../ops/shape.js';
import { Blocks } from './nafnet.js';
import { tidy } from '../tensor/scope.js';
import { ConStyle, type ConStyleOptions, type EncoderOutput } from './constyle.js';

export type Level = 'l1' | 'l2' | 'l3' | 'bottom' | 'r3' | 'r2' | 'r1';
/** A block of a Process Module: maps [N,H,W,c] to [N,H,W,c]. */
export type Block = Module & { forward(x: Tensor): Tensor };
/** Builds the i-th block of a level with c channels. */
export type BlockFactory = (c: number, level: Level, index: number) => Block;

export interface UNetConfig {
  dim: number;
  left: [number, number, number];
  bottom: number;
  right: [number, number, number];
  /** Process Module block (e.g. NAFBlock). */
  block: BlockFactory;
  /** AffineTransform activation: LeakyReLU(0.1) (NAFNet, MAXIM) or per-channel PReLU (Restormer). */
  affineAct?: 'lrelu' | 'prelu';
  /** Preprocess_Module (3 → dim); default Conv3×3 without bias as child 0. */
  preprocess?: (dim: number) => Block;
  /** Finetune_Module (2·dim → 3); default Conv3×3 without bias as child 0. */
  finetune?: (dim: number) => Block;
  /** ConStyle inside the network: 'train' (official default: momentum encoder + queue), 'inference'
   * (encoder_q only) or 'none' (the restoration network alone, fed by an external ConStyle). */
  constyle?: 'train' | 'inference' | 'none';
  constyleOptions?: Omit<ConStyleOptions, 'train'>;
}

/** Sequential with a single conv as child 0. */
class Seq1 extends Module {
  readonly conv: Conv2d;
  constructor(conv: Conv2d) {
    super();
    this.conv = this.child('0', conv);
  }
  forward(x: Tensor): Tensor {
    return this.conv.forward(x);
  }
}

/** AffineTransform: Conv1×1 (no bias) + activation (PReLU as child 1). */
class AffineTransform extends Module {
  readonly conv: Conv2d;
  readonly act: PReLU | null;
  constructor(cin: number, dim: number, kind: 'lrelu' | 'prelu') {
    super();
    this.conv = this.child('0', new Conv2d(cin, dim, 1, { bias: false }));
    this.act = kind === 'prelu' ? this.child('1', new PReLU(dim)) : null;
  }
  forward(x: Tensor): Tensor {
    const y = this.conv.forward(x);
    return this.act ? this.act.forward(y) : leakyRelu(y, 0.1);
  }
}

/** DC(n): Conv3×3(n → n/4, no bias) + PixelUnshuffle(2), then concat with the ConStyle map. */
class DC extends Module {
  readonly down: Seq1;
  constructor(n: number) {
    super();
    if (n % 4) throw new IrcError('E_ARG', `DC: channels must be divisible by 4, got ${n}`);
    this.down = this.child('down', new Seq1(new Conv2d(n, n / 4, 3, { bias: false })));
  }
  forward(x: Tensor, fea: Tensor): Tensor {
    // tidy: the conv's and the unshuffle's outputs go at once (the next conv keeps the concat)
    return tidy(() => concat([pixelUnshuffle(this.down.forward(x), 2), fea]));
  }
}

/** UC(n, a, b): Conv3×3(n → 4n) + PixelShuffle(2), concat skip (a channels), Conv1×1(a → b). */
class UC extends Module {
  readonly up: Seq1;
  readonly down: Conv2d;
  constructor(n: number, a: number, b: number) {
    super();
    this.up = this.child('up', new Seq1(new Conv2d(n, 4 * n, 3, { bias: false })));
    this.down = this.child('down', new Conv2d(a, b, 1, { bias: false }));
  }
  forward(x: Tensor, skip: Tensor): Tensor {
    // tidy: the up conv's and the shuffle's outputs go at once (the 1×1 conv keeps the concat)
    return tidy(() => this.down.forward(concat([pixelShuffle(this.up.forward(x), 2), skip])));
  }
}

function blocks(n: number, c: number, level: Level, f: BlockFactory): Blocks<Block> {
  return new Blocks(Array.from({ length: n }, (_, i) => f(c, level, i)));
}

/** The ConStyle U-Net (official module names: Preprocess_Module, Process_Module_l1, DC1, …). */
export class ConStyleUNet extends Module {
  readonly config: UNetConfig;
  readonly ConStyle: ConStyle | null;
  readonly pre: Block;
  readonly l1: Blocks<Block>;
  readonly dc1: DC;
  readonly l2: Blocks<Block>;
  readonly dc2: DC;
  readonly l3: Blocks<Block>;
  readonly dc3: DC;
  readonly bottom: Blocks<Block>;
  readonly uc3: UC;
  readonly r3: Blocks<Block>;
  readonly uc2: UC;
  readonly r2: Blocks<Block>;
  readonly uc1: UC;
  readonly r1: Blocks<Block>;
  readonly fin: Block;
  readonly mlp: Seq1Linear;
  readonly fusion: Conv2d;
  readonly at: [AffineTransform, AffineTransform, AffineTransform];

  constructor(config: UNetConfig) {
    super();
    this.config = config;
    const { dim: d, left, bottom, right, block } = config;
    if (!Number.isInteger(d) || d <= 0 || d % 4)
      throw new IrcError('E_ARG', `ConStyle U-Net: dim must be a positive multiple of 4, got ${d}`);
    const mode = config.constyle ?? 'train';
    this.ConStyle = mode === 'none' ? null : this.child('ConStyle', new ConStyle({ ...config.constyleOptions, train: mode === 'train' }));
    this.pre = this.child('Preprocess_Module', config.preprocess?.(d) ?? new Seq1(new Conv2d(3, d, 3, { bias: false })));
    this.l1 = this.child('Process_Module_l1', blocks(left[0], d, 'l1', block));
    this.dc1 = this.child('DC1', new DC(d));
    this.l2 = this.child('Process_Module_l2', blocks(left[1], 2 * d, 'l2', block));
    this.dc2 = this.child('DC2', new DC(2 * d));
    this.l3 = this.child('Process_Module_l3', blocks(left[2], 3 * d, 'l3', block));
    this.dc3 = this.child('DC3', new DC(3 * d));
    this.bottom = this.child('Process_Module_bottom', blocks(bottom, 4 * d, 'bottom', block));
    this.uc3 = this.child('UC3', new UC(3 * d, 6 * d, 4 * d));
    this.r3 = this.child('Process_Module_r3', blocks(right[2], 4 * d, 'r3', block));
    this.uc2 = this.child('UC2', new UC(4 * d, 6 * d, 3 * d));
    this.r2 = this.child('Process_Module_r2', blocks(right[1], 3 * d, 'r2', block));
    this.uc1 = this.child('UC1', new UC(3 * d, 4 * d, 2 * d));
    this.r1 = this.child('Process_Module_r1', blocks(right[0], 2 * d, 'r1', block));
    this.fin = this.child('Finetune_Module', config.finetune?.(d) ?? new Seq1(new Conv2d(2 * d, 3, 3, { bias: false })));
    this.mlp = this.child('mlp', new Seq1Linear(128, 4 * d));
    this.fusion = this.child('local_fusion', new Conv2d(8 * d, 3 * d, 1, { bias: false }));
    const act = config.affineAct ?? 'lrelu';
    this.at = [
      this.child('AffineTransform0', new AffineTransform(32, d, act)),
      this.child('AffineTransform1', new AffineTransform(64, d, act)),
      this.child('AffineTransform2', new AffineTransform(128, d, act)),
    ];
  }

  /** Input H and W must be multiples of these (the three 2× down-samplings and ConStyle's stride-2 maps). */
  sizeMultiple(): [number, number] {
    return [8, 8];
  }

  /** Restoration given ConStyle's latent code `code` [N,128] and maps `feas` (NHWC). img: NHWC [N,H,W,3]. */
  restore(img: Tensor, code: Tensor, feas: readonly Tensor[]): Tensor {
    const [n, h, w, c] = img.shape as [number, number, number, number];
    if (img.rank !== 4 || c !== 3) throw new IrcError('E_SHAPE', `ConStyle U-Net: expected an NHWC image batch [N, H, W, 3], got [${img.shape.join(', ')}]`);
    if (h % 8 || w % 8)
      throw new IrcError('E_SHAPE', `ConStyle U-Net: height and width must be multiples of 8, got ${h}×${w} (pad with padToMultiple first)`);
    // Each stage in a tidy() scope: what the backward needs is held by its saved views, so no intermediate that only
    // fed the next op (the transformed ConStyle maps, DC / UC outputs, the fusion's inputs) stays alive to the end of
    // the forward, where a training step's peak can fall.
    const x0 = this.pre.forward(img);
    const e1 = this.l1.forward(x0);
    const e2 = tidy(() => this.l2.forward(this.dc1.forward(e1, this.at[0].forward(feas[0]!))));
    const e3 = tidy(() => this.l3.forward(this.dc2.forward(e2, this.at[1].forward(feas[1]!))));
    const b = tidy(() => this.bottom.forward(this.dc3.forward(e3, this.at[2].forward(feas[2]!))));
    const z = tidy(() => this.fusion.forward(concat([b, mul(b, this.mlp.forward(code).reshape([n, 1, 1, 4 * this.config.dim]))])));
    const d3 = tidy(() => this.r3.forward(this.uc3.forward(z, e3)));
    const d2 = tidy(() => this.r2.forward(this.uc2.forward(d3, e2)));
    const d1 = tidy(() => this.r1.forward(this.uc1.forward(d2, e1)));
    return tidy(() => add(this.fin.forward(d1), img));
  }

  /** Inference path: ConStyle's query encoder, then restoration. */
  forward(img: Tensor): Tensor {
    if (!this.ConStyle) throw new IrcError('E_ARG', 'this network was built without ConStyle (constyle: "none"): call restore(img, code, feas)');
    const enc: EncoderOutput = this.ConStyle.encode(img);
    const out = this.restore(img, enc.q1, enc.feas);
    return out;
  }
}

/** `mlp` = Sequential(Linear(128 → 4·dim, bias)). */
class Seq1Linear extends Module {
  readonly fc: Linear;
  constructor(cin: number, cout: number) {
    super();
    this.fc = this.child('0', new Linear(cin, cout));
  }
  forward(x: Tensor): Tensor {
    return this.fc.forward(x);
  }
}
