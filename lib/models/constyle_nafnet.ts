// ConStyle NAFNet (spec §4.2): the ConStyle U-Net with NAFBlocks. Paper defaults: dim 48, 7/8/9, 9, 7/8/9.
import { ConStyleUNet, type UNetConfig } from './unet.js';
import { NAFBlock } from './nafnet.js';

export interface ConStyleNAFNetConfig {
  dim?: number;
  left?: [number, number, number];
  bottom?: number;
  right?: [number, number, number];
  constyle?: UNetConfig['constyle'];
  /** MoCo queue length (default 65,760). */
  K?: number;
}

export function constyleNAFNet(cfg: ConStyleNAFNetConfig = {}): ConStyleUNet {
  return new ConStyleUNet({
    dim: cfg.dim ?? 48,
    left: cfg.left ?? [7, 8, 9],
    bottom: cfg.bottom ?? 9,
    right: cfg.right ?? [7, 8, 9],
    block: (c) => new NAFBlock(c),
    affineAct: 'lrelu',
    constyle: cfg.constyle ?? 'train',
    constyleOptions: cfg.K !== undefined ? { K: cfg.K } : {},
  });
}
