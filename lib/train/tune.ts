// Kernel tuning: which of the opt-in kernel paths make a training step faster on the card at hand, each checked
// against the default path on the same batch from the same state before it may be chosen (TrainerOptions.tune).
import { IrcError } from '../errors.js';
import { pushSwitches } from '../native/switches.js';
import type { Module } from '../nn/module.js';
import { GatingUnit } from '../models/maxim_blocks.js';
import { NAFBlock } from '../models/nafnet.js';
import { Attention } from '../models/restormer.js';

/** A kernel path to try: switches it sets (README "Kernel switches") and/or a JS-side change with its undo. */
export interface KernelVariant {
  name: string;
  switches?: Record<string, string>;
  /** Applied before the variant's steps; returns what undoes it. */
  apply?: () => () => void;
  /** Changes only backward kernels (captureForward does not try it by default). */
  backwardOnly?: boolean;
  /** Whether it changes anything in this model (the trainer tries it only then; default: always). */
  appliesTo?: (model: Module) => boolean;
}

/** Whether m or a module under it is one `is` accepts. */
function contains(m: Module, is: (m: Module) => boolean): boolean {
  return is(m) || m.children().some(([, c]) => contains(c, is));
}

/**
 * The opt-in CUDA paths the trainer tries by default, each made of ops proven on hardware (the device check's op cases
 * on the H100, run 9): the one-pass depthwise gate backward (slower there at the op level, which a whole step on
 * another card may still favour), NAFNet's SCA scale apart from conv3 (one GEMM over all rows instead of one per
 * sample; more memory held: 0.45 of PyTorch's peak instead of 0.39 by the memory model), and for MAXIM its gating
 * units as one op (less memory held).
 */
export const TUNE_VARIANTS: readonly KernelVariant[] = [
  { name: 'dwgateOnePass', switches: { IRCONSTYLE_DWGATE_BWD: 'one-pass' }, backwardOnly: true },
  { name: 'scaleApart', switches: { IRCONSTYLE_SCA_SCALE: 'apart' }, appliesTo: (m) => contains(m, (x) => x instanceof NAFBlock) },
  // MAXIM's gating units and spatial gating weights as one op each (less memory held for the backward; fewer ops)
  { name: 'spatialGate', switches: { IRCONSTYLE_SPATIAL_GATE: '1' }, appliesTo: (m) => contains(m, (x) => x instanceof GatingUnit) },
];

/**
 * Paths written since run 9 and checked here (their code run on the CPU) but not yet run on a GPU: tried only where
 * asked (`IRCONSTYLE_TUNE=all`, or TuneOptions.variants) — the device check's bench asks, after their op cases
 * passed on the card. A kernel that faults on a GPU could leave the CUDA context unusable, which a library's default
 * must not risk; once a device check has proven them they move to TUNE_VARIANTS.
 */
export const TRIAL_VARIANTS: readonly KernelVariant[] = [
  { name: 'pwSimt', switches: { IRCONSTYLE_PW_SIMT: '1' } },
  // the same kernel only where it is bound by memory, not by its FP32 FMAs (the shallow, narrow levels)
  { name: 'pwSimtMem', switches: { IRCONSTYLE_PW_SIMT: 'mem' } },
  { name: 'slideBatch', switches: { IRCONSTYLE_SLIDE: 'batch' } },
  { name: 'gemmTune', switches: { IRCONSTYLE_GEMM_TUNE: '1' } },
  { name: 'cudnnFind', switches: { IRCONSTYLE_CUDNN_FIND: '1' } },
  // Restormer's channel attention at its deep levels in training: each group of per-head GEMMs as one whole-width call
  { name: 'mdtaBlockDiag', switches: { IRCONSTYLE_MDTA: 'blockdiag' }, appliesTo: (m) => contains(m, (x) => x instanceof Attention) },
];

/** The variants tried when TuneOptions.variants is not given: TUNE_VARIANTS, and TRIAL_VARIANTS with
 * IRCONSTYLE_TUNE=all. */
export function defaultVariants(): readonly KernelVariant[] {
  return process.env.IRCONSTYLE_TUNE === 'all' ? [...TUNE_VARIANTS, ...TRIAL_VARIANTS] : TUNE_VARIANTS;
}

export interface TuneOptions {
  /** The variants tried beside the default (default: defaultVariants()). */
  variants?: readonly KernelVariant[];
  /** Timed steps per variant, after one untimed (default 5); the median counts. */
  steps?: number;
  /** How much faster than the best so far a variant must be to be taken (default 0.02: 2 %; negative: how much
   * slower it may be and still be taken, e.g. -10 to run the opt-in kernels whenever they agree). Below 1. */
  minGain?: number;
  /** Stop trying variants once this many seconds have passed (default: no limit); those left are reported skipped. */
  maxSeconds?: number;
  /** Largest relative difference of a loss from the default's (default 1e-2). */
  lossTol?: number;
  /** Largest relative L2 difference of a parameter's gradient from the default's (default 0.1; see compareSamples). */
  gradTol?: number;
}

/** What one step of a variant gave: its losses and, where compared, the gradients of named parameter ranges (or
 * other values: `kind`, default 'gradient', names them in messages). */
export interface TuneSample {
  losses: Record<string, number>;
  grads?: { data: Float32Array; entries: readonly { name: string; offset: number; size: number }[]; kind?: string };
}

export interface TuneTrial {
  /** The variants applied ('default': none). */
  name: string;
  /** Median step time, or null when it failed or was skipped. */
  ms: number | null;
  ok: boolean;
  /** Why it was not taken, or ''. */
  note: string;
}

export interface TuneReport {
  /** The variants chosen (empty: the default paths). */
  chosen: string[];
  /** The switches they set (applied to what the tuned trainer or forward enqueues, not process-wide). */
  switches: Record<string, string>;
  trials: TuneTrial[];
  seconds: number;
  /** Set when the tuning itself failed (the default paths then stay). */
  error?: string;
}

/** One step's measurement from a given state with the variants' paths in force. */
export type MeasureStep = () => Promise<{ ms: number; sample: TuneSample }>;

/**
 * null when `got` agrees with `ref`, else why not. Losses: |a − b| ≤ lossTol·max(|a|, |b|) + 1e-6. Gradients, per
 * named range: ‖g − r‖ ≤ gradTol·‖r‖ + 0.01·ρ·√n, ρ the RMS of the reference gradient over the parameters of the
 * same module (a floor for a parameter whose gradient is rounding noise beside its module's others, e.g. a bias
 * before a BatchNorm). TF32 and FP32 paths differ by ~1e-3; a wrong kernel by far more. Non-finite values never agree.
 */
export function compareSamples(ref: TuneSample, got: TuneSample, lossTol = 1e-2, gradTol = 0.1): string | null {
  for (const [k, a] of Object.entries(ref.losses)) {
    const b = got.losses[k];
    if (b === undefined || !Number.isFinite(b)) return `loss ${k} is ${String(b)}`;
    if (Math.abs(a - b) > lossTol * Math.max(Math.abs(a), Math.abs(b)) + 1e-6) return `loss ${k} ${b} against the default's ${a}`;
  }
  if (!ref.grads) return null;
  if (!got.grads || got.grads.data.length !== ref.grads.data.length) return 'no gradients to compare';
  const r = ref.grads.data, g = got.grads.data, kind = ref.grads.kind ?? 'gradient';
  const entries = ref.grads.entries;
  const sq = entries.map((e) => {  // ‖r‖² per range, once
    let s = 0;
    for (let i = e.offset; i < e.offset + e.size; ++i) s += r[i]! * r[i]!;
    return s;
  });
  const owner = (name: string) => name.slice(0, Math.max(0, name.lastIndexOf('.')));
  const modules = new Map<string, { sq: number; n: number }>();
  entries.forEach((e, j) => {
    const m = modules.get(owner(e.name)) ?? { sq: 0, n: 0 };
    m.sq += sq[j]!;
    m.n += e.size;
    modules.set(owner(e.name), m);
  });
  for (const [j, e] of entries.entries()) {
    let d2 = 0;
    for (let i = e.offset; i < e.offset + e.size; ++i) {
      if (!Number.isFinite(g[i]!)) return `the ${kind} of ${e.name} is not finite`;
      d2 += (g[i]! - r[i]!) ** 2;
    }
    const m = modules.get(owner(e.name))!;
    const err = Math.sqrt(d2), bound = gradTol * Math.sqrt(sq[j]!) + 0.01 * Math.sqrt((m.sq / m.n) * e.size);
    if (err > bound) return `the ${kind} of ${e.name} differs by ${err.toExponential(2)} (allowed ${bound.toExponential(2)})`;
  }
  return null;
}

/** Throws E_ARG naming the option that is out of range. */
export function checkTuneOptions(opts: TuneOptions): void {
  const bad = (what: string, v: unknown) => {
    throw new IrcError('E_ARG', `tune.${what}, got ${JSON.stringify(v)}`);
  };
  if (typeof opts !== 'object' || opts === null) bad('options must be an object (or true / false)', opts);
  if (opts.steps !== undefined && !(Number.isInteger(opts.steps) && opts.steps >= 1 && opts.steps <= 1000)) bad('steps must be an integer in [1, 1000]', opts.steps);
  if (opts.minGain !== undefined && !(Number.isFinite(opts.minGain) && opts.minGain < 1)) bad('minGain must be a number below 1', opts.minGain);
  for (const k of ['lossTol', 'gradTol', 'maxSeconds'] as const) if (opts[k] !== undefined && !(opts[k]! > 0)) bad(`${k} must be > 0`, opts[k]);
  if (opts.variants !== undefined && !Array.isArray(opts.variants)) bad('variants must be an array', opts.variants);
  const names = new Set<string>();
  for (const v of opts.variants ?? []) {
    if (!v || typeof v.name !== 'string' || !v.name || v.name === 'default' || names.has(v.name))
      bad("variants: each needs a unique name other than 'default'", v?.name);
    names.add(v.name);
    for (const f of ['apply', 'appliesTo'] as const)
      if (v[f] !== undefined && typeof v[f] !== 'function') bad(`variants: ${v.name}.${f} must be a function`, typeof v[f]);
    for (const [k, val] of Object.entries(v.switches ?? {}))
      if (!k.startsWith('IRCONSTYLE_') || typeof val !== 'string') bad(`variants: ${v.name}.switches must map IRCONSTYLE_* names to strings`, `${k}=${String(val)}`);
  }
}

/** Applies variants (their switches, then their JS changes); returns the undo. */
function applyVariants(vs: readonly KernelVariant[]): () => void {
  const restore = pushSwitches(Object.assign({}, ...vs.map((v) => v.switches ?? {})) as Record<string, string>);
  const undos = vs.map((v) => v.apply?.() ?? (() => {}));
  return () => {
    for (const u of undos.reverse()) u();
    restore();
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** @internal Median of per-step times (ms) of `steps` calls after one untimed call. */
export async function timeSteps(steps: number, once: () => Promise<void>): Promise<number> {
  await once();
  const times: number[] = [];
  for (let i = 0; i < steps; ++i) {
    const t0 = performance.now();
    await once();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * Times the default paths, then each variant alone (and the default again if any was faster), then adds the faster
 * ones to the fastest one by one; a variant whose step disagrees with the default's (compareSamples) or throws is
 * never taken. A variant whose switches the environment sets is skipped (the environment decides those). Returns the
 * chosen variants' switches for the caller to apply where it enqueues (withSwitches); their JS changes (`apply`) are
 * left applied.
 */
export async function searchVariants(measure: MeasureStep, opts: TuneOptions = {}): Promise<TuneReport> {
  const t0 = performance.now();
  checkTuneOptions(opts);
  const variants = opts.variants ?? defaultVariants();
  const minGain = opts.minGain ?? 0.02;
  const trials: TuneTrial[] = [];
  const base = await measure();  // the default paths: the reference (a failure here is the step's own)
  trials.push({ name: 'default', ms: base.ms, ok: true, note: '' });

  const run = async (vs: readonly KernelVariant[]): Promise<number | null> => {
    const name = vs.map((v) => v.name).join('+');
    if (performance.now() - t0 > (opts.maxSeconds ?? Infinity) * 1000) {
      trials.push({ name, ms: null, ok: false, note: `skipped: the tuning's ${opts.maxSeconds} s (maxSeconds) are spent` });
      return null;
    }
    const undo = applyVariants(vs);
    try {
      const m = await measure();
      const why = compareSamples(base.sample, m.sample, opts.lossTol, opts.gradTol);
      trials.push({ name, ms: m.ms, ok: !why, note: why ?? '' });
      return why ? null : m.ms;
    } catch (e) {
      trials.push({ name, ms: null, ok: false, note: `failed: ${(e as Error).message}` });
      return null;
    } finally {
      undo();
    }
  };

  const faster: { v: KernelVariant; ms: number }[] = [];
  for (const v of variants) {
    const envSet = Object.keys(v.switches ?? {}).filter((k) => process.env[k] !== undefined);
    if (envSet.length) {
      trials.push({ name: v.name, ms: null, ok: false, note: `skipped: ${envSet.join(', ')} set in the environment` });
      continue;
    }
    const ms = await run([v]);
    if (ms !== null && ms < base.ms * (1 - minGain)) faster.push({ v, ms });
  }
  // the default again: the first trial also warmed what every later one finds ready (allocator, caches), so the
  // faster of its two times is the one to beat
  if (faster.length) {
    const again = await measure();
    trials.push({ name: 'default', ms: again.ms, ok: true, note: 'again, after the variants' });
    base.ms = Math.min(base.ms, again.ms);
    faster.splice(0, faster.length, ...faster.filter((f) => f.ms < base.ms * (1 - minGain)));
  }
  faster.sort((a, b) => a.ms - b.ms);
  let chosen: KernelVariant[] = [];
  let best = base.ms;
  if (faster.length) {
    chosen = [faster[0]!.v];
    best = faster[0]!.ms;
    for (const f of faster.slice(1)) {
      const keys = new Set(chosen.flatMap((c) => Object.keys(c.switches ?? {})));
      if (Object.keys(f.v.switches ?? {}).some((k) => keys.has(k))) continue;  // another value of a switch already set
      const ms = await run([...chosen, f.v]);
      if (ms !== null && ms < best * (1 - minGain)) {
        chosen = [...chosen, f.v];
        best = ms;
      }
    }
  }
  for (const v of chosen) v.apply?.();
  const switches = Object.assign({}, ...chosen.map((v) => v.switches ?? {})) as Record<string, string>;
  return { chosen: chosen.map((v) => v.name), switches, trials, seconds: (performance.now() - t0) / 1000 };
}
