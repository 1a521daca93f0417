// The general restoration network of IRConStyle as an API (spec §4.1): the ConStyle U-Net template with its
// Process Module chosen by name — 'nafnet' (NAFBlock), 'restormer' (TransformerBlock), 'maxim' (MAB + RCAB),
// 'conv' (two Conv3×3 + PReLU with an identity skip) — or supplied as a factory of your own blocks.
import { IrcError } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/layers.js';
import { ConStyleUNet, type BlockFactory, type UNetConfig } from './unet.js';
import { constyleNAFNet } from './constyle_nafnet.js';
import { constyleRestormer } from './restormer.js';
import { ConvBlock, ConvPReLU } from './conv_block.js';
import { MultiAxisGmlpLayer, RCAB, type Size2 } from './maxim_blocks.js';

export type ProcessName = 'nafnet' | 'restormer' | 'maxim' | 'conv';

export interface GeneralNetworkConfig {
  /** The Process Module: a name or a factory (c, level, index) => block mapping [N,H,W,c] to itself. */
  process: ProcessName | BlockFactory;
  /** Width of level 1 (levels are dim, 2dim, 3dim, 4dim). Default 48. */
  dim?: number;
  left?: [number, number, number];
  bottom?: number;
  right?: [number, number, number];
  /** Restormer: heads of levels 1, 2, 3 and the bottom (default [1, 2, 4, 8]); refinement blocks (default 4). */
  heads?: [number, number, number, number];
  refine?: number;
  /** MAXIM: block and grid sizes used at every level (default [4, 4]: H, W multiples of 32). */
  block?: Size2;
  grid?: Size2;
  constyle?: UNetConfig['constyle'];
  K?: number;
}

/** MAB (multi-axis gMLP) followed by RCAB, as in MAXIM's encoder blocks (children 0 and 1). */
export class MaximProcessBlock extends Module {
  readonly mab: MultiAxisGmlpLayer;
  readonly rcab: RCAB;
  constructor(c: number, block: Size2, grid: Size2) {
    super();
    this.mab = this.child('0', new MultiAxisGmlpLayer(block, grid, c, false));
    this.rcab = this.child('1', new RCAB(c, { bias: false }));
  }
  forward(x: Tensor): Tensor {
    return this.rcab.forward(this.mab.forward(x));
  }
}

/** Finetune of the plain-CNN network: Conv3×3+PReLU (2dim → dim), then Conv3×3 (dim → 3). */
class ConvFinetune extends Module {
  readonly a: ConvPReLU;
  readonly b: Conv2d;
  constructor(dim: number) {
    super();
    this.a = this.child('0', new ConvPReLU(2 * dim, dim));
    this.b = this.child('1', new Conv2d(dim, 3, 3));
  }
  forward(x: Tensor): Tensor {
    return this.b.forward(this.a.forward(x));
  }
}

/** Builds the general restoration network with ConStyle in front of the chosen Process Module. */
export function restorationNetwork(cfg: GeneralNetworkConfig): ConStyleUNet {
  const shape = { dim: cfg.dim, left: cfg.left, bottom: cfg.bottom, right: cfg.right, constyle: cfg.constyle, K: cfg.K };
  const common = {
    dim: cfg.dim ?? 48,
    left: cfg.left ?? ([1, 1, 1] as [number, number, number]),
    bottom: cfg.bottom ?? 1,
    right: cfg.right ?? ([1, 1, 1] as [number, number, number]),
    constyle: cfg.constyle ?? 'train',
    constyleOptions: cfg.K !== undefined ? { K: cfg.K } : {},
  };
  if (typeof cfg.process === 'function') return new ConStyleUNet({ ...common, block: cfg.process });
  switch (cfg.process) {
    case 'nafnet':
      return constyleNAFNet(shape);
    case 'restormer':
      return constyleRestormer({ ...shape, heads: cfg.heads, refine: cfg.refine });
    case 'maxim': {
      const block = cfg.block ?? [4, 4];
      const grid = cfg.grid ?? [4, 4];
      return new ConStyleUNet({ ...common, block: (c) => new MaximProcessBlock(c, block, grid) });
    }
    case 'conv':
      return new ConStyleUNet({
        ...common,
        block: (c) => new ConvBlock(c),
        preprocess: (d) => new ConvPReLU(3, d),
        finetune: (d) => new ConvFinetune(d),
      });
    default:
      throw new IrcError('E_ARG', `restorationNetwork: unknown process '${String(cfg.process)}' (expected nafnet, restormer, maxim, conv or a factory)`);
  }
}
