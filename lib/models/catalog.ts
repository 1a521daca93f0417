// Named model configurations (models/registry.json): paper sizes and tiny sizes for tests and demos.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IrcError } from '../errors.js';
import { packageRoot } from '../native/loader.js';
import type { Module } from '../nn/module.js';
import { withoutRandomInit } from '../nn/init.js';
import { buildModel } from './registry.js';

export interface CatalogEntry {
  name: string;
  /** Official class name (ConStyleNAFNet, NAFNet, ConStyleRestormer, Restormer, ConStyleMaxim, Maxim). */
  model: string;
  size: 'paper' | 'tiny';
  config: Record<string, unknown>;
}

let cache: CatalogEntry[] | null = null;

export function listModels(): CatalogEntry[] {
  if (!cache) {
    const path = join(packageRoot(), 'models', 'registry.json');
    cache = (JSON.parse(readFileSync(path, 'utf8')) as { models: CatalogEntry[] }).models;
  }
  return cache.map((e) => ({ ...e, config: { ...e.config } }));
}

export function catalogEntry(name: string): CatalogEntry {
  const e = listModels().find((m) => m.name === name);
  if (!e) throw new IrcError('E_ARG', `unknown model name '${name}' (known: ${listModels().map((m) => m.name).join(', ')})`);
  return e;
}

/** Builds a named model. ConStyle networks take constyle 'train' (default), 'inference' or 'none'. */
export function createModel(name: string, opts: { constyle?: 'train' | 'inference' | 'none'; K?: number } = {}): Module {
  const e = catalogEntry(name);
  const cfg: Record<string, unknown> = { ...e.config };
  if (e.model.startsWith('ConStyle')) {
    if (opts.constyle) cfg.constyle = opts.constyle;
    if (opts.K !== undefined) cfg.K = opts.K;
  }
  return buildModel(e.model, cfg);
}

/** Parameter counts of a named model: inference (encoder_q only) and training (with the momentum encoder). */
export function parameterCounts(name: string): { inference: number; training: number } {
  const count = (constyle: 'train' | 'inference') =>
    withoutRandomInit(() => {
      const m = createModel(name, { constyle, K: 16 });
      const n = m.numParameters();
      m.dispose();
      return n;
    });
  const e = catalogEntry(name);
  const inference = count('inference');
  return { inference, training: e.model.startsWith('ConStyle') ? count('train') : inference };
}
