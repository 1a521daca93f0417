// nn.Module: named parameters and buffers with the official PyTorch state-dict names and layouts at the
// boundary (stateDict/loadStateDict), internal NHWC-friendly layouts inside, train/eval modes.
import { IrcError } from '../errors.js';
import { Tensor, tensor, shapeStr, type Device } from '../tensor/tensor.js';
import { noGrad } from '../autograd/node.js';
import { untracked } from '../tensor/scope.js';
import { runOp } from '../ops/run.js';
import { internalShape, officialShape, toInternal, toOfficial, type Layout } from './layout.js';

export interface StateEntry {
  shape: number[];
  data: Float32Array;
}
export type StateDict = Map<string, StateEntry>;

interface Slot {
  layout: Layout;
  official: number[];
}

export class Module {
  training = true;
  /** Parameters by local name (internal layout). Read them at forward time: packing may rebind them. */
  readonly P: Record<string, Tensor> = {};
  /** Tensor buffers by local name. */
  readonly B: Record<string, Tensor> = {};
  /** Scalar buffers (e.g. BatchNorm num_batches_tracked), kept in JS. */
  readonly S: Record<string, number> = {};
  readonly #slots = new Map<string, Slot>();
  readonly #children: [string, Module][] = [];
  readonly #scalarShapes = new Map<string, number[]>();

  /** Registers a parameter given official-layout initial data. */
  protected param(name: string, official: number[], init: Float32Array, layout: Layout = 'plain'): Tensor {
    const t = this.#make(name, official, init, layout);
    t.requiresGrad = true;
    this.P[name] = t;
    return t;
  }
  protected buffer(name: string, official: number[], init: Float32Array, layout: Layout = 'plain'): Tensor {
    const t = this.#make(name, official, init, layout);
    this.B[name] = t;
    return t;
  }
  /** A scalar buffer kept in JS; `official` is its state-dict shape ([] or [1]). */
  protected scalar(name: string, value: number, official: number[] = []): void {
    this.S[name] = value;
    this.#scalarShapes.set(name, official);
  }
  protected child<M extends Module>(name: string, m: M): M {
    this.#children.push([name, m]);
    return m;
  }

  #make(name: string, official: number[], init: Float32Array, layout: Layout): Tensor {
    const n = official.reduce((a, b) => a * b, 1);
    if (init.length !== n) throw new IrcError('E_SHAPE', `${name}: ${init.length} initial values for shape ${shapeStr(official)}`);
    this.#slots.set(name, { layout, official });
    return untracked(() => tensor(toInternal(layout, official, init), internalShape(layout, official)));
  }

  children(): [string, Module][] {
    return [...this.#children];
  }

  /** [officialName, tensor, owner, localName] for every parameter, depth-first in registration order. */
  namedParameters(prefix = ''): [string, Tensor, Module, string][] {
    const out: [string, Tensor, Module, string][] = [];
    for (const [k, t] of Object.entries(this.P)) out.push([prefix + k, t, this, k]);
    for (const [n, c] of this.#children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }
  namedBuffers(prefix = ''): [string, Tensor, Module, string][] {
    const out: [string, Tensor, Module, string][] = [];
    for (const [k, t] of Object.entries(this.B)) out.push([prefix + k, t, this, k]);
    for (const [n, c] of this.#children) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }
  namedScalars(prefix = ''): [string, Module, string][] {
    const out: [string, Module, string][] = [];
    for (const k of Object.keys(this.S)) out.push([prefix + k, this, k]);
    for (const [n, c] of this.#children) out.push(...c.namedScalars(`${prefix}${n}.`));
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map((e) => e[1]);
  }
  numParameters(): number {
    return this.parameters().reduce((a, t) => a + t.size, 0);
  }

  /** @internal layout of a local parameter/buffer. */
  slot(local: string): Slot {
    const s = this.#slots.get(local);
    if (!s) throw new IrcError('E_ARG', `no parameter or buffer '${local}'`);
    return s;
  }

  /** @internal official shape of a scalar buffer. */
  scalarShape(local: string): number[] {
    return [...(this.#scalarShapes.get(local) ?? [])];
  }

  train(on = true): this {
    this.training = on;
    for (const [, c] of this.#children) c.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers in official names and layouts (what PyTorch's state_dict() holds). */
  async stateDict(): Promise<StateDict> {
    const out: StateDict = new Map();
    const add = async (name: string, t: Tensor, owner: Module, local: string) => {
      const s = owner.slot(local);
      out.set(name, { shape: officialShape(s.layout, t.shape), data: toOfficial(s.layout, t.shape, await t.f32()) });
    };
    for (const [n, t, o, l] of this.namedParameters()) await add(n, t, o, l);
    for (const [n, t, o, l] of this.namedBuffers()) await add(n, t, o, l);
    for (const [n, o, l] of this.namedScalars()) out.set(n, { shape: o.scalarShape(l), data: Float32Array.of(o.S[l]!) });
    return out;
  }

  /**
   * Loads official-layout values (copied into the existing tensors, so packed arenas stay intact).
   * strict: every parameter/buffer must be present and nothing unknown may be given.
   */
  loadStateDict(sd: StateDict | Record<string, StateEntry>, opts: { strict?: boolean; prefix?: string } = {}): void {
    const { strict = true, prefix = '' } = opts;
    const map = sd instanceof Map ? sd : new Map(Object.entries(sd));
    // Validate everything first, so a bad state dict leaves the module untouched.
    const used = new Set<string>();
    const missing: string[] = [];
    const copies: [Tensor, Slot, StateEntry][] = [];
    const check = (name: string, t: Tensor, owner: Module, local: string) => {
      const e = map.get(prefix + name);
      if (!e) return void missing.push(name);
      used.add(prefix + name);
      const s = owner.slot(local);
      if (e.shape.length !== s.official.length || e.shape.some((d, i) => d !== s.official[i]))
        throw new IrcError('E_SHAPE', `loadStateDict: '${name}' expects shape ${shapeStr(s.official)}, got ${shapeStr(e.shape)}`);
      if (e.data.length !== t.size) throw new IrcError('E_SHAPE', `loadStateDict: '${name}' has ${e.data.length} values for shape ${shapeStr(e.shape)}`);
      copies.push([t, s, e]);
    };
    for (const [n, t, o, l] of this.namedParameters()) check(n, t, o, l);
    for (const [n, t, o, l] of this.namedBuffers()) check(n, t, o, l);
    const scalars: [Module, string, number][] = [];
    for (const [n, o, l] of this.namedScalars()) {
      const e = map.get(prefix + n);
      if (!e) missing.push(n);
      else {
        used.add(prefix + n);
        scalars.push([o, l, e.data[0]!]);
      }
    }
    if (strict) {
      const unexpected = [...map.keys()].filter((k) => k.startsWith(prefix) && !used.has(k));
      if (missing.length || unexpected.length)
        throw new IrcError(
          'E_FORMAT',
          `loadStateDict: ${missing.length} missing (${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}), ` +
            `${unexpected.length} unexpected (${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ', …' : ''})`,
        );
    }
    untracked(() => {
      for (const [t, s, e] of copies) {
        const src = tensor(toInternal(s.layout, s.official, e.data), t.shape, { device: t.device });
        runOp('copy_', [t, src]);
        src.dispose();
      }
    });
    for (const [o, l, v] of scalars) o.S[l] = v;
  }

  /** Moves every parameter and buffer of this module tree to `device` (before building an arena/optimizer). */
  to(device: Device): this {
    untracked(() => {
      for (const [k, t] of Object.entries(this.P)) {
        if (t.device === device) continue;
        const moved = noGrad(() => t.to(device));
        moved.requiresGrad = t.requiresGrad;
        t.dispose();
        this.P[k] = moved;
      }
      for (const [k, t] of Object.entries(this.B)) {
        if (t.device === device) continue;
        this.B[k] = t.to(device);
        t.dispose();
      }
    });
    for (const [, c] of this.#children) c.to(device);
    return this;
  }

  /** Frees every parameter and buffer of this module tree. */
  dispose(): void {
    for (const t of Object.values(this.P)) t.dispose();
    for (const t of Object.values(this.B)) t.dispose();
    for (const [, c] of this.#children) c.dispose();
  }
}

/** A list of modules named '0', '1', ... (PyTorch nn.Sequential / nn.ModuleList naming). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
}
