// Reading golden fixtures (official PyTorch numbers, NCHW / official layouts) and comparing against them.
import { IrcError } from '../errors.js';
import { loadSafetensors, toFloat32, type StFile } from '../io/safetensors.js';
import { Tensor, tensor } from '../tensor/tensor.js';
import { untracked } from '../tensor/scope.js';
import { nchwToNhwc, nhwcToNchw, toOfficial } from '../nn/layout.js';
import type { Module, StateEntry } from '../nn/module.js';

export interface Fixture {
  path: string;
  file: StFile;
  config: FixtureConfig;
}

export interface FixtureConfig {
  kind: 'constyle_train_step' | 'restoration_train_step' | 'irconstyle_train_step' | string;
  model?: string;
  config?: Record<string, unknown>;
  N: number;
  H: number;
  W: number;
  K?: number;
  dim?: number;
  m?: number;
  T?: number;
  opt?: { lr: number; wd: number; betas: [number, number]; eps: number };
}

export function loadFixture(path: string): Fixture {
  const file = loadSafetensors(path);
  const raw = file.metadata.config;
  if (!raw) throw new IrcError('E_FORMAT', `${path}: no __metadata__.config: not a golden fixture`);
  let config: FixtureConfig;
  try {
    config = JSON.parse(raw) as FixtureConfig;
  } catch {
    throw new IrcError('E_FORMAT', `${path}: __metadata__.config is not valid JSON`);
  }
  for (const k of ['kind', 'N', 'H', 'W'] as const)
    if (config[k] === undefined) throw new IrcError('E_FORMAT', `${path}: config has no '${k}'`);
  return { path, file, config };
}

export function has(f: Fixture, name: string): boolean {
  return f.file.tensors.has(name);
}

export function get(f: Fixture, name: string): { shape: number[]; data: Float32Array } {
  const e = f.file.tensors.get(name);
  if (!e) throw new IrcError('E_FORMAT', `${f.path}: missing tensor '${name}'`);
  return { shape: e.shape, data: toFloat32(e) };
}

/** Official-named entries under `prefix` (prefix stripped), e.g. all `param.*`. */
export function entries(f: Fixture, prefix: string): Map<string, StateEntry> {
  const out = new Map<string, StateEntry>();
  for (const [k, e] of f.file.tensors) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), { shape: e.shape, data: toFloat32(e) });
  return out;
}

/** An NCHW fixture image/map as an NHWC tensor (or an N×C code as is). */
export function inputTensor(f: Fixture, name: string, requiresGrad = false): Tensor {
  const { shape, data } = get(f, name);
  const t = untracked(() =>
    shape.length === 4
      ? tensor(nchwToNhwc(data, shape[0]!, shape[1]!, shape[2]!, shape[3]!), [shape[0]!, shape[2]!, shape[3]!, shape[1]!])
      : tensor(data, shape),
  );
  t.requiresGrad = requiresGrad;
  return t;
}

/** Tensor values in the fixture's layout: NHWC maps back to NCHW. */
export async function asNCHW(t: Tensor): Promise<Float32Array> {
  const d = await t.f32();
  if (t.rank !== 4) return d;
  const [n, h, w, c] = t.shape as [number, number, number, number];
  return nhwcToNchw(d, n, h, w, c);
}

/** Gradient of every parameter of `m` in official layout, by official name. */
export async function officialGrads(m: Module, prefix = ''): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, t, owner, local] of m.namedParameters()) {
    if (!t.grad) continue;
    out.set(prefix + name, toOfficial(owner.slot(local).layout, t.shape, await t.grad.f32()));
  }
  return out;
}

export async function officialParams(m: Module, prefix = ''): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, t, owner, local] of m.namedParameters())
    out.set(prefix + name, toOfficial(owner.slot(local).layout, t.shape, await t.f32()));
  return out;
}

// ---- comparison ----------------------------------------------------------------------------------------

export interface Check {
  group: 'out' | 'loss' | 'grad' | 'after';
  name: string;
  err: number;
  tol: number;
}

export const TOL = { out: 1e-4, loss: 1e-4, grad: 1e-3, after: 1e-2 } as const;

/** ‖a − b‖₂ / max(‖b‖₂, floor, 1e-12). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = 0): number {
  if (a.length !== b.length) return Infinity;
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; ++i) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), floor, 1e-12);
}

export function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; ++i) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

export class Report {
  readonly checks: Check[] = [];
  constructor(readonly fixture: Fixture) {}
  add(group: Check['group'], name: string, ours: ArrayLike<number>, ref: ArrayLike<number>, floor = 0): void {
    this.checks.push({ group, name, err: relErr(ours, ref, floor), tol: TOL[group] });
  }
  /** Compare against fixture tensor `name` (relative to max(‖ref‖, floor)). */
  cmp(group: Check['group'], name: string, ours: ArrayLike<number>, floor = 0): void {
    this.add(group, name, ours, get(this.fixture, name).data, floor);
  }
  /** ‖ours‖ against sqrt of the fixture's float64 gradsq entry (a norm check), relative to max(‖ref‖, floor). */
  cmpNorm(name: string, ours: Float32Array, floor = 0): void {
    const ref = Math.sqrt(get(this.fixture, `gradsq.${name}`).data[0]!);
    this.checks.push({ group: 'grad', name: `|grad.${name}|`, err: Math.abs(norm(ours) - ref) / Math.max(ref, floor, 1e-12), tol: TOL.grad });
  }
  get ok(): boolean {
    return this.checks.every((c) => c.err <= c.tol);
  }
  failures(): Check[] {
    return this.checks.filter((c) => !(c.err <= c.tol));
  }
}
