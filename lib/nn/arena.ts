// Flat parameter arenas: the parameters of a set of modules become views into one buffer, and their
// gradients views into a second, so optimizers, zeroing and EMA are one kernel each over the whole model.
import { IrcError } from '../errors.js';
import { Tensor, viewOf } from '../tensor/tensor.js';
import { zeros, fillInPlace } from '../tensor/create.js';
import { untracked } from '../tensor/scope.js';
import { runOp } from '../ops/run.js';
import type { Module } from './module.js';

export interface ArenaEntry {
  name: string;
  offset: number;
  size: number;
}

export class ParamArena {
  readonly params: Tensor;
  readonly grads: Tensor;
  readonly size: number;
  readonly entries: ArenaEntry[];

  /** Packs the parameters (with requiresGrad, unless `all`) of `root` into one arena. */
  constructor(root: Module, opts: { all?: boolean } = {}) {
    const list = root.namedParameters().filter(([, t]) => opts.all || t.requiresGrad);
    if (!list.length) throw new IrcError('E_ARG', 'ParamArena: the module has no parameters to pack');
    this.size = list.reduce((a, [, t]) => a + t.size, 0);
    this.entries = [];
    const device = list[0]![1].device;
    if (list.some(([, t]) => t.device !== device))
      throw new IrcError('E_DEVICE', `ParamArena: parameters live on several devices; move the module with .to('${device}') first`);
    const { params, grads } = untracked(() => ({ params: zeros([this.size], 'float32', device), grads: zeros([this.size], 'float32', device) }));
    this.params = params;
    this.grads = grads;
    let off = 0;
    untracked(() => {
      for (const [name, t, owner, local] of list) {
        const v = viewOf(params, off, t.shape, false);
        runOp('copy_', [v, t]);
        v.requiresGrad = t.requiresGrad;
        if (t.grad) runOp('copy_', [viewOf(grads, off, t.shape, false), t.grad]);
        v.grad = viewOf(grads, off, t.shape, false);
        t.dispose();
        owner.P[local] = v;
        this.entries.push({ name, offset: off, size: v.size });
        off += v.size;
      }
    });
  }

  /** Sets every gradient to zero (one kernel). */
  zeroGrad(): void {
    fillInPlace(this.grads, 0);
  }

  /** The arena range [offset, offset+size) covering the parameters whose names start with `prefix`. */
  range(prefix: string): { offset: number; size: number } {
    const sel = this.entries.filter((e) => e.name.startsWith(prefix));
    if (!sel.length) throw new IrcError('E_ARG', `ParamArena: no parameter starts with '${prefix}'`);
    const offset = sel[0]!.offset;
    const end = sel[sel.length - 1]!.offset + sel[sel.length - 1]!.size;
    if (sel.reduce((a, e) => a + e.size, 0) !== end - offset)
      throw new IrcError('E_INTERNAL', `ParamArena: parameters under '${prefix}' are not contiguous`);
    return { offset, size: end - offset };
  }

  dispose(): void {
    this.params.dispose();
    this.grads.dispose();
  }
}
