// Builds a model by its official class name from a constructor configuration (fixture metadata, configs).
import { IrcError } from '../errors.js';
import type { Module } from '../nn/module.js';
import { NAFNet } from './nafnet.js';
import { constyleNAFNet } from './constyle_nafnet.js';
import { Restormer, constyleRestormer } from './restormer.js';
import type { UNetConfig } from './unet.js';
import { ConStyleMaxim, Maxim } from './maxim.js';

type Cfg = Record<string, unknown>;

function ints(cfg: Cfg, key: string, len?: number): number[] | undefined {
  const v = cfg[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x) || x < 0) || (len !== undefined && v.length !== len))
    throw new IrcError('E_ARG', `config.${key}: expected ${len ?? 'a list of'} non-negative integers, got ${JSON.stringify(v)}`);
  return v as number[];
}
function int(cfg: Cfg, key: string): number | undefined {
  const v = cfg[key];
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || (v as number) < 0) throw new IrcError('E_ARG', `config.${key}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return v as number;
}
function checkKeys(name: string, cfg: Cfg, allowed: string[]): void {
  const bad = Object.keys(cfg).filter((k) => !allowed.includes(k));
  if (bad.length) throw new IrcError('E_ARG', `${name}: unknown config key(s) ${bad.join(', ')} (expected some of ${allowed.join(', ')})`);
}

/** MAXIM block/grid sizes: config keys block_hr, block_lr, grid_hr, grid_lr as [h, w]. */
function maximSizes(cfg: Cfg): { blockHr?: [number, number]; blockLr?: [number, number]; gridHr?: [number, number]; gridLr?: [number, number] } {
  const pair = (k: string) => ints(cfg, k, 2) as [number, number] | undefined;
  return { blockHr: pair('block_hr'), blockLr: pair('block_lr'), gridHr: pair('grid_hr'), gridLr: pair('grid_lr') };
}

export const MODEL_NAMES = ['ConStyleNAFNet', 'NAFNet', 'ConStyleRestormer', 'Restormer', 'ConStyleMaxim', 'Maxim'] as const;

/** `name` is the official class name (ConStyleNAFNet, NAFNet); cfg uses the fixtures' config keys. */
export function buildModel(name: string, cfg: Cfg = {}): Module {
  switch (name) {
    case 'ConStyleNAFNet': {
      checkKeys(name, cfg, ['dim', 'left', 'bottom', 'right', 'constyle', 'K']);
      return constyleNAFNet({
        dim: int(cfg, 'dim'),
        left: ints(cfg, 'left', 3) as [number, number, number] | undefined,
        bottom: int(cfg, 'bottom'),
        right: ints(cfg, 'right', 3) as [number, number, number] | undefined,
        constyle: cfg.constyle as UNetConfig['constyle'],
        K: int(cfg, 'K'),
      });
    }
    case 'NAFNet': {
      checkKeys(name, cfg, ['width', 'middle', 'enc', 'dec', 'constyle']);
      return new NAFNet({
        width: int(cfg, 'width') ?? 64,
        middle: int(cfg, 'middle') ?? 7,
        enc: ints(cfg, 'enc') ?? [5, 6, 7, 7],
        dec: ints(cfg, 'dec') ?? [5, 6, 7, 7],
      });
    }
    case 'ConStyleRestormer': {
      checkKeys(name, cfg, ['dim', 'left', 'bottom', 'right', 'refine', 'heads', 'constyle', 'K']);
      return constyleRestormer({
        dim: int(cfg, 'dim'),
        left: ints(cfg, 'left', 3) as [number, number, number] | undefined,
        bottom: int(cfg, 'bottom'),
        right: ints(cfg, 'right', 3) as [number, number, number] | undefined,
        refine: int(cfg, 'refine'),
        heads: ints(cfg, 'heads', 4) as [number, number, number, number] | undefined,
        constyle: cfg.constyle as UNetConfig['constyle'],
        K: int(cfg, 'K'),
      });
    }
    case 'Restormer': {
      checkKeys(name, cfg, ['dim', 'blocks', 'refine', 'heads', 'constyle']);
      return new Restormer({
        dim: int(cfg, 'dim'),
        blocks: ints(cfg, 'blocks', 4) as [number, number, number, number] | undefined,
        refine: int(cfg, 'refine'),
        heads: ints(cfg, 'heads', 4) as [number, number, number, number] | undefined,
      });
    }
    case 'ConStyleMaxim': {
      checkKeys(name, cfg, ['features', 'bottom', 'block_hr', 'block_lr', 'grid_hr', 'grid_lr', 'constyle', 'K']);
      const K = int(cfg, 'K');
      return new ConStyleMaxim({
        features: int(cfg, 'features'),
        bottom: int(cfg, 'bottom'),
        ...maximSizes(cfg),
        constyle: cfg.constyle as UNetConfig['constyle'],
        constyleOptions: K !== undefined ? { K } : {},
      });
    }
    case 'Maxim': {
      checkKeys(name, cfg, ['features', 'block_hr', 'block_lr', 'grid_hr', 'grid_lr', 'constyle']);
      return new Maxim({ features: int(cfg, 'features'), ...maximSizes(cfg) });
    }
    default:
      throw new IrcError('E_ARG', `unknown model '${name}' (this build has ${MODEL_NAMES.join(', ')})`);
  }
}
