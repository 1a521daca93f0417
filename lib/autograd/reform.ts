// Tensors a backward can form again instead of keeping. An op's backward rule keeps (saves) some of its inputs from the
// forward to the backward; for a tensor made by cheap ops from tensors that stay alive anyway (MAXIM's GELU halves, a
// LayerNorm's output, a product whose factors are kept), keeping those sources and running the cheap ops again in
// the backward holds less memory at the price of their memory traffic. `reformable` marks such tensors with the ops
// that make them; record() then keeps their sources (themselves marked or not) instead of them, and the first
// backward rule that needs one forms the whole group again — the forward's own ops on the same values, so the same
// bits — and shares it with the group's other readers until the last of them is done.
import { IrcError } from '../errors.js';
import type { Shape, Tensor } from '../tensor/tensor.js';
import { viewOf } from '../tensor/tensor.js';
import { keep as unscoped, tidyTracked } from '../tensor/scope.js';

/** A tensor's place in a Reform: output i of the group, viewed with `shape` (a reshape of it keeps the mark). */
export interface ReformMark {
  readonly r: Reform;
  readonly i: number;
  readonly shape: Shape;
}

/** What a saved slot holds: a view of the tensor, or its mark and (once formed) a view of the formed tensor. */
export type Kept = Tensor | LazySaved;

/**
 * A group of tensors made together by `form` from sources. The sources are kept (views, or their own groups' slots)
 * from the marking while a marked tensor is alive or a saved slot still reads the group; the first read forms the
 * group and releases them; the last slot's release frees what was formed.
 */
export class Reform {
  #srcs: Kept[] | null;
  #made: Tensor[] | null = null;
  #alive: number;
  #holds = 0;
  constructor(sources: readonly Tensor[], private readonly form: (srcs: Tensor[]) => Tensor[], outs: readonly Tensor[]) {
    this.#srcs = sources.map(keep);
    this.#alive = outs.length;
    for (const t of outs) {
      const prev = t._onDispose;  // (a tensor marked twice tells both groups)
      t._onDispose = () => {
        prev?.();
        this.#alive--;
        this.#settle();
      };
    }
  }

  /** One more saved slot reads this group; false (nothing taken) once its sources were released unformed. */
  acquire(): boolean {
    if (!this.#made && !this.#srcs) return false;
    this.#holds++;
    return true;
  }

  /** Output i viewed with `shape`, the group formed on first use (its sources then released). */
  get(i: number, shape: Shape): Tensor {
    if (!this.#made) {
      const srcs = this.#srcs!;
      // in a scope even inside backward(), so that form's own intermediates are released
      this.#made = tidyTracked(() => this.form(srcs.map(open))).map(unscoped);
      this.#srcs = null;
      for (const s of srcs) s.dispose();
    }
    return viewOf(this.#made[i]!, 0, shape, false);
  }

  /** A saved slot is done with the group. */
  release(): void {
    this.#holds--;
    this.#settle();
  }

  // With no marked tensor alive and no slot left to read it, nothing can need the group again.
  #settle(): void {
    if (this.#holds > 0 || this.#alive > 0) return;
    for (const t of this.#made ?? []) t.dispose();
    for (const s of this.#srcs ?? []) s.dispose();
    this.#made = this.#srcs = null;
  }
}

/** A saved slot for a marked tensor. */
export class LazySaved {
  #view: Tensor | null = null;
  #done = false;
  constructor(private readonly mark: ReformMark) {}
  get(): Tensor {
    if (this.#done) throw new IrcError('E_INTERNAL', 'reform: a saved tensor read after its release');
    return (this.#view ??= this.mark.r.get(this.mark.i, this.mark.shape));
  }
  dispose(): void {
    if (this.#done) return;
    this.#done = true;
    this.#view?.dispose();
    this.mark.r.release();
  }
}

const marks = new WeakMap<Tensor, ReformMark>();

/** What record() keeps of t: its mark when it has one (and the group's sources are still there), else a view. */
export function keep(t: Tensor): Kept {
  const m = marks.get(t);
  if (m && m.r.acquire()) return new LazySaved(m);
  return viewOf(t, 0, t.shape, false);
}

/** The tensor a saved slot stands for. */
export function open(k: Kept): Tensor {
  return k instanceof LazySaved ? k.get() : k;
}

/** A reshape view of a marked tensor is marked as the same output of the same group. */
export function markView(src: Tensor, view: Tensor): void {
  const m = marks.get(src);
  if (m) marks.set(view, { r: m.r, i: m.i, shape: view.shape });
}

/**
 * Marks `outs` as formed again by `form(sources)` for any backward rule that would keep them: `form` must give the
 * same values (the forward's own ops) from the sources, which are kept in their place from now on (or formed again
 * themselves, when marked) while a marked tensor is alive or a saved slot reads one. Returns `outs`.
 */
export function reformable<T extends Tensor[]>(outs: T, sources: readonly Tensor[], form: (srcs: Tensor[]) => Tensor[]): T {
  const r = new Reform(sources, form, outs);
  outs.forEach((t, i) => marks.set(t, { r, i, shape: t.shape }));
  return outs;
}
