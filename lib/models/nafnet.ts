// NAFBlock (spec §4.2) and the plain NAFNet of the official repository (§4.7).
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module, ModuleList } from '../nn/module.js';
import { Conv2d, LayerNorm2d } from '../nn/layers.js';
import { constant } from '../nn/init.js';
import { add } from '../ops/elementwise.js';
import { globalAvgPool, channelScale, simpleGate } from '../ops/nafnet.js';
import { conv1x1Add, dwconvGate, lnConv1x1, lnConv1x1Gate } from '../ops/fused.js';
import { pixelShuffle, pad2d, crop2d } from '../ops/shape.js';
import { chain, type Checkpointable } from '../autograd/checkpoint.js';
import { switchValue } from '../native/switches.js';

/** Simplified channel attention: `sca.1` is the 1×1 conv after global average pooling. */
class SCA extends Module {
  readonly conv: Conv2d;
  constructor(c: number) {
    super();
    this.conv = this.child('1', new Conv2d(c, c, 1));
  }
  forward(x: Tensor): Tensor {
    return channelScale(x, this.weights(x));
  }
  /** The per-sample channel weights [N, 1, 1, C] that forward multiplies x by. */
  weights(x: Tensor): Tensor {
    return this.conv.forward(globalAvgPool(x));
  }
}

/**
 * Which forms the NAFBlock's forward takes (`bench:gpu` with BENCH_AB=1 times the alternatives). `lnConv`: each
 * LayerNorm and the 1×1 conv after it (and SimpleGate, in the FFN) as one op — ln_conv1x1, ln_conv1x1_gate: the
 * LayerNorm's output and the conv's are formed again in the backward, so they are not kept (less memory, two more
 * passes); false: layer_norm2d, conv2d (and simple_gate) as separate ops. `scaleInConv`: the SCA's per-sample channel
 * scale inside conv3's op (conv1x1_add with a: one GEMM per sample, the scaled input never stored); false: a
 * channel_scale pass first, then one GEMM over every row (the scaled input kept for the backward).
 */
export const nafnetFusion = { lnConv: true, scaleInConv: true };
/** scaleInConv, unless the kernel switch IRCONSTYLE_SCA_SCALE=apart asks for the scale apart (the kernel tuning's
 * `scaleApart` variant, read at forward time). */
const scaleInConv = () => nafnetFusion.scaleInConv && switchValue('IRCONSTYLE_SCA_SCALE') !== 'apart';

/** NAFBlock(c): LN2d → 1×1 → dw3×3 → SimpleGate → SCA → 1×1, ×β skip; LN2d → 1×1 → SG → 1×1, ×γ skip. */
export class NAFBlock extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly conv3: Conv2d;
  readonly sca: SCA;
  readonly conv4: Conv2d;
  readonly conv5: Conv2d;
  readonly norm1: LayerNorm2d;
  readonly norm2: LayerNorm2d;
  /** β and γ start at 0 (identity block) unless `init` gives another value. */
  constructor(readonly c: number, init = 0) {
    super();
    const dw = 2 * c;
    this.conv1 = this.child('conv1', new Conv2d(c, dw, 1));
    this.conv2 = this.child('conv2', new Conv2d(dw, dw, 3, { groups: dw }));
    this.conv3 = this.child('conv3', new Conv2d(dw / 2, c, 1));
    this.sca = this.child('sca', new SCA(dw / 2));
    this.conv4 = this.child('conv4', new Conv2d(c, 2 * c, 1));
    this.conv5 = this.child('conv5', new Conv2d(c, c, 1));
    this.norm1 = this.child('norm1', new LayerNorm2d(c));
    this.norm2 = this.child('norm2', new LayerNorm2d(c));
    this.param('beta', [1, c, 1, 1], constant(c, init), 'chan');
    this.param('gamma', [1, c, 1, 1], constant(c, init), 'chan');
  }
  forward(inp: Tensor): Tensor {
    // norm1 + conv1 fused (nafnetFusion.lnConv); conv2 (depthwise 3×3) + SimpleGate fused; the SCA scale, conv3
    // and the β skip fused (inp + conv3(x·sca)·β; scaleInConv); norm2 + conv4 + SimpleGate fused (lnConv); conv5 and
    // the γ skip fused
    const c1 = this.conv1.P, n1 = this.norm1, fuse = nafnetFusion.lnConv;
    let x = fuse ? lnConv1x1(inp, n1.P.weight!, n1.P.bias!, c1.weight!, c1.bias ?? null, n1.eps) // norm1 + conv1
      : this.conv1.forward(n1.forward(inp));
    x = dwconvGate(x, this.conv2.P.weight!, this.conv2.P.bias ?? null, 1);
    const c3 = this.conv3.P;
    const c3b = c3.bias ?? null, a = this.sca.weights(x);
    const y = scaleInConv() ? conv1x1Add(x, c3.weight!, inp, c3b, this.P.beta!, a)
      : conv1x1Add(channelScale(x, a), c3.weight!, inp, c3b, this.P.beta!);
    const c4 = this.conv4.P, n2 = this.norm2;
    x = fuse ? lnConv1x1Gate(y, n2.P.weight!, n2.P.bias!, c4.weight!, c4.bias ?? null, n2.eps) // norm2, conv4, gate
      : simpleGate(this.conv4.forward(n2.forward(y)));
    const c5 = this.conv5.P;
    return conv1x1Add(x, c5.weight!, y, c5.bias ?? null, this.P.gamma!);
  }
}

/**
 * A sequence of blocks applied in order (nn.Sequential naming). With `checkpoint` on, each block keeps only its
 * input for backward and is recomputed there (activation checkpointing: much less memory, one more forward).
 */
export class Blocks<M extends Module & { forward(x: Tensor): Tensor }> extends ModuleList<M> implements Checkpointable {
  checkpoint = false;
  forward(x: Tensor): Tensor {
    return chain(this.items, x, this.checkpoint);
  }
}

/**
 * Turns activation checkpointing on or off in every block chain inside `model` (NAFNet / Restormer block sequences,
 * MAXIM's encoder, decoder and bottleneck blocks: each of their layers then keeps only its input for backward).
 */
export function setCheckpointing(model: Module, on: boolean): void {
  if (typeof (model as Partial<Checkpointable>).checkpoint === 'boolean') (model as unknown as Checkpointable).checkpoint = on;
  for (const [, c] of model.children()) setCheckpointing(c, on);
}

export interface NAFNetConfig {
  width: number;
  middle: number;
  enc: number[];
  dec: number[];
  inChannels?: number;
}

/** Up-sampler `ups.i`: 1×1 conv (c → 2c, no bias) + PixelShuffle(2). */
class Up extends Module {
  readonly conv: Conv2d;
  constructor(c: number) {
    super();
    this.conv = this.child('0', new Conv2d(c, 2 * c, 1, { bias: false }));
  }
  forward(x: Tensor): Tensor {
    return pixelShuffle(this.conv.forward(x), 2);
  }
}

/** The official NAFNet (repository config: width 64, enc [5,6,7,7], middle 7, dec [5,6,7,7]). */
export class NAFNet extends Module {
  readonly config: Required<NAFNetConfig>;
  readonly intro: Conv2d;
  readonly ending: Conv2d;
  readonly encoders: ModuleList<Blocks<NAFBlock>>;
  readonly decoders: ModuleList<Blocks<NAFBlock>>;
  readonly middle: Blocks<NAFBlock>;
  readonly ups: ModuleList<Up>;
  readonly downs: ModuleList<Conv2d>;

  constructor(config: NAFNetConfig) {
    super();
    if (config.enc.length !== config.dec.length)
      throw new IrcError('E_ARG', `NAFNet: enc and dec need the same number of levels, got ${config.enc.length} and ${config.dec.length}`);
    this.config = { inChannels: 3, ...config };
    const { width, inChannels } = this.config;
    this.intro = this.child('intro', new Conv2d(inChannels, width, 3));
    this.ending = this.child('ending', new Conv2d(width, inChannels, 3));
    const enc: Blocks<NAFBlock>[] = [];
    const downs: Conv2d[] = [];
    let c = width;
    for (const n of config.enc) {
      enc.push(new Blocks(Array.from({ length: n }, () => new NAFBlock(c))));
      downs.push(new Conv2d(c, 2 * c, 2, { stride: 2, pad: 0 }));
      c *= 2;
    }
    const mid = new Blocks(Array.from({ length: config.middle }, () => new NAFBlock(c)));
    const ups: Up[] = [];
    const dec: Blocks<NAFBlock>[] = [];
    for (const n of config.dec) {
      ups.push(new Up(c));
      c /= 2;
      dec.push(new Blocks(Array.from({ length: n }, () => new NAFBlock(c))));
    }
    this.encoders = this.child('encoders', new ModuleList(enc));
    this.decoders = this.child('decoders', new ModuleList(dec));
    this.middle = this.child('middle_blks', mid);
    this.ups = this.child('ups', new ModuleList(ups));
    this.downs = this.child('downs', new ModuleList(downs));
  }

  /** Any H and W work: the network pads internally. */
  sizeMultiple(): [number, number] {
    return [1, 1];
  }

  /** x: NHWC image [N, H, W, 3]; any H, W (zero-padded internally to a multiple of 2^levels, then cropped). */
  forward(inp: Tensor): Tensor {
    const [, h, w] = inp.shape as [number, number, number, number];
    const m = 2 ** this.config.enc.length;
    const ph = (m - (h % m)) % m;
    const pw = (m - (w % m)) % m;
    const padded = ph || pw ? pad2d(inp, [0, ph, 0, pw], 'zero') : inp;
    let x = this.intro.forward(padded);
    const skips: Tensor[] = [];
    this.encoders.items.forEach((e, i) => {
      x = e.forward(x);
      skips.push(x);
      x = this.downs.items[i]!.forward(x);
    });
    x = this.middle.forward(x);
    this.decoders.items.forEach((d, i) => {
      x = this.ups.items[i]!.forward(x);
      x = add(x, skips[skips.length - 1 - i]!);
      x = d.forward(x);
    });
    x = add(this.ending.forward(x), padded);
    return ph || pw ? crop2d(x, 0, 0, h, w) : x;
  }
}
