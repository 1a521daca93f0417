// ConStyle MAXIM (spec §4.4, archs/ConStyle_Maxim_arch.py, class ConStyleMaxim) and the single-stage MAXIM-1S
// baseline (§4.7, archs/Maxim_arch.py, class Maxim), with the official module names. NHWC throughout.
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d, Linear } from '../nn/layers.js';
import { add, mul } from '../ops/elementwise.js';
import { leakyRelu } from '../ops/activation.js';
import { subsample2d } from '../ops/resample.js';
import { concat, pixelShuffle, pixelUnshuffle } from '../ops/shape.js';
import { Blocks } from './nafnet.js';
import { disposeAll, tidy } from '../tensor/scope.js';
import { ConStyle, type ConStyleOptions, type EncoderOutput } from './constyle.js';
import { UpSampleRatio, resizeRatio, type Size2 } from './maxim_blocks.js';
import { BottleneckBlock, CrossGatingBlock, UNetDecoderBlock, UNetEncoderBlock } from './maxim_stages.js';

export interface MaximSizes {
  /** Block size (fh, fw) at the high-resolution levels (H, H/2); official (16, 16). */
  blockHr?: Size2;
  /** Block size at the low-resolution levels (H/4, H/8); official (8, 8). */
  blockLr?: Size2;
  /** Grid size (gh, gw) at the high-resolution levels; official (16, 16). */
  gridHr?: Size2;
  /** Grid size of the bottleneck; official (8, 8). The H/4 level uses blockLr as its grid (official quirk, §9 #18). */
  gridLr?: Size2;
}

export interface ConStyleMaximConfig extends MaximSizes {
  /** features f (official 32). */
  features?: number;
  /** Number of BottleneckBlocks (official 2). */
  bottom?: number;
  /** 'train' (official default: momentum encoder + queue), 'inference' (encoder_q only) or 'none'. */
  constyle?: 'train' | 'inference' | 'none';
  constyleOptions?: Omit<ConStyleOptions, 'train'>;
}

export interface MaximConfig extends MaximSizes {
  /** features f (official 32). */
  features?: number;
}

interface Geometry {
  /** (block, grid) per level: 0 = H, 1 = H/2, 2 = H/4, 3 = H/8 (bottleneck). */
  levels: [Size2, Size2][];
}

function geometry(s: MaximSizes): Geometry {
  const bh = s.blockHr ?? [16, 16], bl = s.blockLr ?? [8, 8], gh = s.gridHr ?? [16, 16], gl = s.gridLr ?? [8, 8];
  for (const [k, v] of [['blockHr', bh], ['blockLr', bl], ['gridHr', gh], ['gridLr', gl]] as const)
    if (v.length !== 2 || v.some((d) => !Number.isInteger(d) || d <= 0))
      throw new IrcError('E_ARG', `MAXIM: ${k} must be two positive integers, got ${JSON.stringify(v)}`);
  // high_res_stages = 2: levels 0 and 1 use the hr sizes; level 2 passes block_size_lr as its grid.
  return { levels: [[bh, gh], [bh, gh], [bl, bl], [bl, gl]] };
}

const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
const lcm = (a: number, b: number) => (a / gcd(a, b)) * b;

/** The H and W multiples an input needs: every level's map must split into its blocks and grids. */
function sizeMultiple(g: Geometry, base: number): [number, number] {
  let mh = base, mw = base;
  g.levels.forEach(([b, gr], l) => {
    mh = lcm(mh, 2 ** l * lcm(b[0], gr[0]));
    mw = lcm(mw, 2 ** l * lcm(b[1], gr[1]));
  });
  return [mh, mw];
}

function checkImage(what: string, img: Tensor, mult: [number, number]): void {
  const [, h, w, c] = img.shape as [number, number, number, number];
  if (img.rank !== 4 || c !== 3) throw new IrcError('E_SHAPE', `${what}: expected an NHWC image batch [N, H, W, 3], got [${img.shape.join(', ')}]`);
  if (h % mult[0] || w % mult[1]) {
    const rule = mult[0] === mult[1] ? `height and width must be multiples of ${mult[0]}` : `height must be a multiple of ${mult[0]} and width of ${mult[1]}`;
    throw new IrcError('E_SHAPE', `${what}: ${rule}, got ${h}×${w} (pad with padToMultiple first)`);
  }
}

/** nearest_downsample(x, 1/r): output row i takes input row floor((i + 0.5)·r), i.e. r·i + r/2. */
function nearestDown(x: Tensor, r: number): Tensor {
  return subsample2d(x, r, r / 2);
}

/** Sequential with one module as child 0 (`mlp.0`, `Finetune_Module.0`, `AffineTransform*.0`, `UC*.up.0`, `DC*.down.0`). */
class Seq0<M extends Module & { forward(x: Tensor): Tensor }> extends Module {
  readonly m: M;
  constructor(m: M) {
    super();
    this.m = this.child('0', m);
  }
  forward(x: Tensor): Tensor {
    return this.m.forward(x);
  }
}

/** DC(n): Conv3×3(n → n/4, no bias) + PixelUnshuffle(2), then concat with the transformed ConStyle map. */
class DC extends Module {
  readonly down: Seq0<Conv2d>;
  constructor(n: number) {
    super();
    this.down = this.child('down', new Seq0(new Conv2d(n, n / 4, 3, { bias: false })));
  }
  forward(x: Tensor, fea: Tensor): Tensor {
    return concat([pixelUnshuffle(this.down.forward(x), 2), fea]);
  }
}

/** The MAXIM variant of UC(n): Conv3×3(n → 4n, no bias) + PixelShuffle(2) only. */
class UC extends Module {
  readonly up: Seq0<Conv2d>;
  constructor(n: number) {
    super();
    this.up = this.child('up', new Seq0(new Conv2d(n, 4 * n, 3, { bias: false })));
  }
  forward(x: Tensor): Tensor {
    return pixelShuffle(this.up.forward(x), 2);
  }
}

/** AffineTransform (ConvAct): Conv1×1 (no bias) + LeakyReLU(0.1). */
class AffineTransform extends Seq0<Conv2d> {
  override forward(x: Tensor): Tensor {
    return leakyRelu(this.m.forward(x), 0.1);
  }
}

/** ConStyle MAXIM (official defaults: f 32, 2 bottleneck blocks, no biases, hr 16, lr 8). */
export class ConStyleMaxim extends Module {
  readonly features: number;
  readonly ConStyle: ConStyle | null;
  readonly geometry: Geometry;
  readonly inputConvs: [Conv2d, Conv2d, Conv2d];
  readonly l1: UNetEncoderBlock;
  readonly dc1: DC;
  readonly l2: UNetEncoderBlock;
  readonly dc2: DC;
  readonly l3: UNetEncoderBlock;
  readonly dc3: DC;
  readonly bottom: Blocks<BottleneckBlock>;
  readonly fusion: Conv2d;
  /** UpSampleRatio_{1,2}, _{4,5}, _{7,8}: e2, e3 -> f channels for the cross-gating blocks 2, 1, 0. */
  readonly usr: [UpSampleRatio, UpSampleRatio][];
  readonly cgb: [CrossGatingBlock, CrossGatingBlock, CrossGatingBlock];
  readonly uc3: UC;
  readonly r3: UNetDecoderBlock;
  readonly uc2: UC;
  readonly r2: UNetDecoderBlock;
  readonly uc1: UC;
  readonly r1: UNetDecoderBlock;
  readonly mlp: Seq0<Linear>;
  readonly at: [AffineTransform, AffineTransform, AffineTransform];
  readonly fin: Seq0<Conv2d>;

  constructor(cfg: ConStyleMaximConfig = {}) {
    super();
    const f = (this.features = cfg.features ?? 32);
    if (!Number.isInteger(f) || f <= 0 || f % 4) throw new IrcError('E_ARG', `ConStyle MAXIM: features must be a positive multiple of 4, got ${f}`);
    const nb = cfg.bottom ?? 2;
    const g = (this.geometry = geometry(cfg));
    const L = g.levels;
    const o = { bias: false, lreluSlope: 0.2, reduction: 4 };
    const mode = cfg.constyle ?? 'train';
    this.ConStyle = mode === 'none' ? null : this.child('ConStyle', new ConStyle({ ...cfg.constyleOptions, train: mode === 'train' }));
    this.inputConvs = [0, 1, 2].map((i) => this.child(`stage_input_conv_${i}`, new Conv2d(3, f, 3, { bias: false }))) as [Conv2d, Conv2d, Conv2d];
    this.l1 = this.child('Process_Module_l1', new UNetEncoderBlock(2 * f, f, L[0]![0], L[0]![1], o));
    this.dc1 = this.child('DC1', new DC(f));
    this.l2 = this.child('Process_Module_l2', new UNetEncoderBlock(3 * f, 2 * f, L[1]![0], L[1]![1], o));
    this.dc2 = this.child('DC2', new DC(2 * f));
    this.l3 = this.child('Process_Module_l3', new UNetEncoderBlock(4 * f, 3 * f, L[2]![0], L[2]![1], o));
    this.dc3 = this.child('DC3', new DC(3 * f));
    this.bottom = this.child('Process_Module_bottom', new Blocks(Array.from({ length: nb }, () => new BottleneckBlock(4 * f, L[3]![0], L[3]![1], false))));
    this.fusion = this.child('local_fusion', new Conv2d(8 * f, 3 * f, 1, { bias: false }));
    // Cross gating, level 2 (H/4) first: UpSampleRatio_{3k+1} (e2) and _{3k+2} (e3); _{3k} are parameter-free.
    this.usr = [];
    const cgb: CrossGatingBlock[] = [];
    for (const [k, lvl] of [[0, 2], [1, 1], [2, 0]] as const) {
      this.usr[lvl] = [
        this.child(`UpSampleRatio_${3 * k + 1}`, new UpSampleRatio(2 * f, f, 2 ** (1 - lvl), false)),
        this.child(`UpSampleRatio_${3 * k + 2}`, new UpSampleRatio(3 * f, f, 2 ** (2 - lvl), false)),
      ];
      cgb[lvl] = this.child(`cross_gating_block_${lvl}`, new CrossGatingBlock(3 * f, f, L[lvl]![0], L[lvl]![1], lvl === 2 ? 3 * f : f, true, false));
    }
    this.cgb = cgb as [CrossGatingBlock, CrossGatingBlock, CrossGatingBlock];
    this.uc3 = this.child('UC3', new UC(3 * f));
    this.r3 = this.child('Process_Module_r3', new UNetDecoderBlock(6 * f, 3 * f, L[2]![0], L[2]![1], o, 'constyle'));
    this.uc2 = this.child('UC2', new UC(3 * f));
    this.r2 = this.child('Process_Module_r2', new UNetDecoderBlock(6 * f, 2 * f, L[1]![0], L[1]![1], o, 'constyle'));
    this.uc1 = this.child('UC1', new UC(2 * f));
    this.r1 = this.child('Process_Module_r1', new UNetDecoderBlock(5 * f, 2 * f, L[0]![0], L[0]![1], o, 'constyle'));
    this.mlp = this.child('mlp', new Seq0(new Linear(128, 4 * f)));
    const at2 = this.child('AffineTransform2', new AffineTransform(new Conv2d(128, f, 1, { bias: false })));
    const at1 = this.child('AffineTransform1', new AffineTransform(new Conv2d(64, f, 1, { bias: false })));
    const at0 = this.child('AffineTransform0', new AffineTransform(new Conv2d(32, f, 1, { bias: false })));
    this.at = [at0, at1, at2];
    this.fin = this.child('Finetune_Module', new Seq0(new Conv2d(2 * f, 3, 3, { bias: false })));
  }

  /** Input H and W must be multiples of these (64 × 64 with the official sizes). */
  sizeMultiple(): [number, number] {
    return sizeMultiple(this.geometry, 16);
  }

  /** Restoration given ConStyle's latent code `code` [N,128] and maps `feas` (NHWC). img: NHWC [N,H,W,3]. */
  restore(img: Tensor, code: Tensor, feas: readonly Tensor[]): Tensor {
    checkImage('ConStyle MAXIM', img, this.sizeMultiple());
    const n = img.shape[0]!, f = this.features;
    // Each stage in its own tidy() scope, and each stage's input disposed after its last reader: a training step's
    // peak memory falls at the end of this forward, and what a backward needs is held by its saved view, so the
    // intermediates no later stage reads (the DC/UC outputs, the concatenated signals and bridges, the encoder maps
    // after the cross gating) need not be alive there.
    const q = tidy(() => this.mlp.forward(code).reshape([n, 1, 1, 4 * f]));
    const [f0, f1, f2] = [0, 1, 2].map((i) => tidy(() => this.at[i]!.forward(feas[i]!))) as [Tensor, Tensor, Tensor];
    const [c0, c1, c2] = this.inputConvs;
    const s0 = c0.forward(img);
    const s1 = tidy(() => c1.forward(nearestDown(img, 2)));
    const s2 = tidy(() => c2.forward(nearestDown(img, 4)));
    // Encoder: the first block concatenates s0 with itself (§9 #18).
    const e1 = this.l1.forward(s0, s0);
    s0.dispose();
    const e2 = tidy(() => this.l2.forward(this.dc1.forward(e1, f0), s1));
    disposeAll([f0, s1]);
    const e3 = tidy(() => this.l3.forward(this.dc2.forward(e2, f1), s2));
    disposeAll([f1, s2]);
    const b = tidy(() => this.bottom.forward(this.dc3.forward(e3, f2)));
    f2.dispose();
    let x = tidy(() => this.fusion.forward(concat([b, mul(b, q)])));
    disposeAll([b, q]);
    // Cross gating from H/4 up to H; the global feature chain starts at the fused bottleneck.
    let global = x;
    const skips: Tensor[] = [];
    for (const lvl of [2, 1, 0]) {
      const [u2, u3] = this.usr[lvl]!;
      const [sk, y] = tidy(() => this.cgb[lvl]!.forward(concat([resizeRatio(e1, 2 ** -lvl), u2.forward(e2), u3.forward(e3)]), global));
      if (global !== x) global.dispose();
      skips[lvl] = sk;
      global = y;
    }
    disposeAll([e1, e2, e3, global]);
    // Decoder: bridges are [skip2, skip1, skip0] resized to the level; the skips go once the last bridge is made.
    for (const [r, uc, lvl] of [[this.r3, this.uc3, 2], [this.r2, this.uc2, 1], [this.r1, this.uc1, 0]] as const) {
      const prev = x;
      const bridge = tidy(() => concat([2, 1, 0].map((j) => resizeRatio(skips[j]!, 2 ** (j - lvl)))));
      if (lvl === 0) disposeAll(skips);
      x = r.forward(tidy(() => uc.forward(prev)), bridge, true);
      prev.dispose();
    }
    const out = tidy(() => add(this.fin.forward(x), img));
    x.dispose();
    return out;
  }

  /** Inference path: ConStyle's query encoder, then restoration. */
  forward(img: Tensor): Tensor {
    if (!this.ConStyle) throw new IrcError('E_ARG', 'this network was built without ConStyle (constyle: "none"): call restore(img, code, feas)');
    const enc: EncoderOutput = this.ConStyle.encode(img);
    return this.restore(img, enc.q1, enc.feas);
  }
}

/** MAXIM-1S, the single-stage MAXIM of the official repository (f 32, depth 3, all biases). */
export class Maxim extends Module {
  readonly features: number;
  readonly geometry: Geometry;
  readonly inputConvs: Conv2d[] = [];
  readonly encoders: UNetEncoderBlock[] = [];
  readonly global: BottleneckBlock[] = [];
  /** usr[lvl][j]: UpSampleRatio from encoder level j to cross-gating level lvl. */
  readonly usrEnc: UpSampleRatio[][] = [];
  readonly cgb: CrossGatingBlock[] = [];
  /** usrDec[lvl][j]: UpSampleRatio from skip level j to decoder level lvl. */
  readonly usrDec: UpSampleRatio[][] = [];
  readonly decoders: UNetDecoderBlock[] = [];
  readonly outputConv: Conv2d;

  constructor(cfg: MaximConfig = {}) {
    super();
    const f = (this.features = cfg.features ?? 32);
    if (!Number.isInteger(f) || f <= 0) throw new IrcError('E_ARG', `MAXIM: features must be a positive integer, got ${f}`);
    const g = (this.geometry = geometry(cfg));
    const L = g.levels;
    const o = { bias: true, lreluSlope: 0.2, reduction: 4, downConv: true };
    const width = [f, 2 * f, 4 * f];
    const encIn = [2 * f, 3 * f, 6 * f];
    for (let i = 0; i < 3; ++i) {
      this.inputConvs.push(this.child(`stage_0_input_conv_${i}`, new Conv2d(3, width[i]!, 3, { bias: true })));
      this.encoders.push(this.child(`stage_0_encoder_block_${i}`, new UNetEncoderBlock(encIn[i]!, width[i]!, L[i]![0], L[i]![1], o)));
    }
    for (let i = 0; i < 2; ++i) this.global.push(this.child(`stage_0_global_block_${i}`, new BottleneckBlock(4 * f, L[3]![0], L[3]![1], true)));
    // Cross gating (levels 2, 1, 0): UpSampleRatio_{3k+j} maps encoder level j to the level's width.
    const cinY = [2 * f, 4 * f, 4 * f];
    for (const [k, lvl] of [[0, 2], [1, 1], [2, 0]] as const) {
      this.usrEnc[lvl] = [0, 1, 2].map((j) => this.child(`UpSampleRatio_${3 * k + j}`, new UpSampleRatio(width[j]!, width[lvl]!, 2 ** (j - lvl), true)));
      this.cgb[lvl] = this.child(`stage_0_cross_gating_block_${lvl}`, new CrossGatingBlock(3 * width[lvl]!, width[lvl]!, L[lvl]![0], L[lvl]![1], cinY[lvl]!, true, true));
    }
    // Decoder (levels 2, 1, 0): UpSampleRatio_{9+3k+m} maps skip level 2-m to the level's width.
    const decIn = [2 * f, 4 * f, 4 * f];
    for (const [k, lvl] of [[0, 2], [1, 1], [2, 0]] as const) {
      this.usrDec[lvl] = [];
      for (let m = 0; m < 3; ++m) {
        const j = 2 - m;
        this.usrDec[lvl]![j] = this.child(`UpSampleRatio_${9 + 3 * k + m}`, new UpSampleRatio(width[j]!, width[lvl]!, 2 ** (j - lvl), true));
      }
      this.decoders[lvl] = this.child(`stage_0_decoder_block_${lvl}`, new UNetDecoderBlock(decIn[lvl]!, width[lvl]!, L[lvl]![0], L[lvl]![1], o, 'maxim'));
    }
    this.outputConv = this.child('stage_0_output_conv_0', new Conv2d(f, 3, 3, { bias: true }));
  }

  /** Input H and W must be multiples of these (64 × 64 with the official sizes). */
  sizeMultiple(): [number, number] {
    return sizeMultiple(this.geometry, 8);
  }

  /** img: NHWC [N, H, W, 3] with H, W multiples of sizeMultiple(). */
  forward(img: Tensor): Tensor {
    checkImage('MAXIM', img, this.sizeMultiple());
    const scales = [img, nearestDown(img, 2), nearestDown(img, 4)];
    const encs: Tensor[] = [];
    let x = this.inputConvs[0]!.forward(scales[0]!);
    for (let i = 0; i < 3; ++i) {
      const xs = i === 0 ? x : this.inputConvs[i]!.forward(scales[i]!);
      const e = this.encoders[i]!.forward(x, xs);
      encs.push(e);
      x = this.encoders[i]!.down(e);
    }
    for (const b of this.global) x = b.forward(x);
    let global = x;
    const skips: Tensor[] = [];
    for (const lvl of [2, 1, 0]) {
      const signal = concat([0, 1, 2].map((j) => this.usrEnc[lvl]![j]!.forward(encs[j]!)));
      const [sk, y] = this.cgb[lvl]!.forward(signal, global);
      skips[lvl] = sk;
      global = y;
    }
    for (const lvl of [2, 1, 0]) {
      const bridge = concat([2, 1, 0].map((j) => this.usrDec[lvl]![j]!.forward(skips[j]!)));
      x = this.decoders[lvl]!.forward(x, bridge);
    }
    return add(this.outputConv.forward(x), img);
  }
}
