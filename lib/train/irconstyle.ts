// One official IRConStyle training iteration (spec §5.1–5.4): ConStyle MoCo forward, restoration forward,
// L1 + CE + content + style while ConStyle trains (iteration <= constyleIter), then L1 only with encoder_q
// frozen (skipped by the optimizer, as PyTorch >= 2 does). AdamW over one flat arena.
import { IrcError } from '../errors.js';
import { tensor, toIrcError, viewOf, type Tensor } from '../tensor/tensor.js';
import { tidy, disposeAll, untracked } from '../tensor/scope.js';
import { zeros, fillInPlace } from '../tensor/create.js';
import { clone, copyInto } from '../ops/memory.js';
import { captured } from '../infer/graph.js';
import { native } from '../native/loader.js';
import { noGrad } from '../autograd/node.js';
import { backward, freeGraphOnError } from '../autograd/tape.js';
import { adamwFactors, adamwStep, type AdamWStepOptions } from '../ops/optim.js';
import { ParamArena } from '../nn/arena.js';
import { AdamW, type AdamWOptions } from '../optim/adamw.js';
import { ConStyleUNet } from '../models/unet.js';
import { setCheckpointing } from '../models/nafnet.js';
import { irconstyleLoss, pixelLoss } from '../losses/index.js';
import { sync } from '../tensor/memory.js';
import { withSwitches } from '../native/switches.js';
import type { Module } from '../nn/module.js';
import { checkTuneOptions, defaultVariants, searchVariants, timeSteps, type TuneOptions, type TuneReport, type TuneSample } from './tune.js';

export interface TrainerOptions extends AdamWOptions {
  /** Iterations (1-based) during which ConStyle's losses are used and encoder_q trains (default: forever). */
  constyleIter?: number;
  /**
   * Activation checkpointing of the restoration network's blocks (NAFNet / Restormer blocks, the layers of MAXIM's
   * encoder, decoder and bottleneck blocks): each keeps only its input for backward and runs again there. Much less
   * memory for one more forward of the blocks; same losses and gradients (default off).
   */
  checkpoint?: boolean;
  /**
   * Record the step as a CUDA graph and replay it (default: on for a model on CUDA, off on the CPU). The first step
   * of each kind (batch shapes, and whether ConStyle still trains) runs op by op; the next one is recorded and every
   * later one is a single launch plus a few tiny copies: no per-op host cost, and the step's memory is planned once.
   * Losses, parameters and optimizer state are the same as op by op. A kind whose recording or first replay fails
   * runs op by op from then on (`graphState` says why). On the CPU nothing is graphed, but with `graph: true` the
   * recorded step is checked against the capture rules.
   */
  graph?: boolean;
  /**
   * Graph mode: how many step kinds are recorded at most (default 2: a batch shape with ConStyle training and frozen).
   * Each recording keeps about one step's peak memory; a kind beyond the limit trains op by op (`graphState` says so).
   */
  maxGraphs?: number;
  /**
   * Kernel tuning (default: on for a model on CUDA, unless IRCONSTYLE_TUNE=0; off on the CPU). At the second step,
   * before anything is recorded, one step of the default kernel paths and of each opt-in path that applies to the
   * model (TUNE_VARIANTS: those proven on a GPU; with IRCONSTYLE_TUNE=all also TRIAL_VARIANTS: the SIMT 1×1 kernel,
   * the batched depthwise loads, the GEMM and cuDNN autotuners, not yet run on one) is
   * timed from the same state on the same batch, each checked against the default's losses and gradients, and the
   * fastest that agrees is kept (kernel switches set while this trainer enqueues its steps; a switch set in the
   * environment is left alone). Parameters, optimizer state, queue and statistics are then put back exactly, and the
   * step runs. `tuneReport` says what was tried and chosen. Takes about a second per variant (graph mode: a recording
   * and six replays each).
   */
  tune?: boolean | TuneOptions;
  /**
   * Kernel switches this trainer sets while it enqueues its steps (README "Kernel switches"), e.g. a previous run's
   * `tuneReport.switches`, to train on the same kernel paths without tuning again: with them, `tune` defaults to off.
   */
  switches?: Record<string, string>;
}

export interface StepLosses {
  pix: number;
  ce: number;
  content: number;
  style: number;
  total: number;
}

const LOSS_KEYS = ['pix', 'ce', 'content', 'style', 'total'] as const;
const OOM_RETRIES = 3;  // recordings of a step kind that failed for lack of GPU memory, tried again (#oomRetries)

/** A recorded step: its static inputs and loss buffers (named by keys), and the CUDA graph (null on the CPU). */
interface Recorded {
  lq: Tensor;
  gt: Tensor;
  keys: readonly string[];
  losses: Tensor[];
  graph: unknown;
}

/** A trainer's state, copied (kernel tuning puts it back after each trial). */
interface Snapshot {
  live: Tensor[];
  copies: Tensor[];
  scalars: [Module, string, number][];
  step: number;
}

export class IRConStyleTrainer {
  readonly arena: ParamArena;
  readonly optimizer: AdamW;
  readonly constyleIter: number;
  iteration = 0;
  #graph: boolean | undefined;  // undefined: on for a model on CUDA
  readonly #maxGraphs: number;
  /** Per step kind: 'warm' after its op-by-op step, then the recording (or why it failed). */
  readonly #kinds = new Map<string, 'warm' | Recorded | string>();
  // Recordings of a kind that failed for lack of GPU memory (E_OOM), which may pass when the card is less full: the
  // kind starts over (its next step op by op, which sizes the scratch buffers again, then a recording), up to
  // OOM_RETRIES times.
  readonly #oomRetries = new Map<string, number>();
  /** Device-side per-step values, written before each step (graph mode). */
  #factors: Tensor | null = null;
  #ptr: Tensor | null = null;
  /** Tuning still to do (null: none, or done); `first` until the first step has run (tuning waits for the second). */
  #tune: { opts: TuneOptions; first: boolean } | null;
  /** What the kernel tuning tried and chose (null before it ran, or without tuning). */
  tuneReport: TuneReport | null = null;
  /** The tuned kernel switches, set while this trainer enqueues its steps. */
  #switches: Record<string, string> = {};

  constructor(readonly model: ConStyleUNet, opts: TrainerOptions = {}) {
    if (!model.ConStyle?.encoder_k) throw new IrcError('E_ARG', 'IRConStyleTrainer needs a model built with constyle: "train"');
    const mg = opts.maxGraphs ?? 2;
    if (!Number.isInteger(mg) || mg < 0) throw new IrcError('E_ARG', `IRConStyleTrainer: maxGraphs must be an integer >= 0, got ${String(opts.maxGraphs)}`);
    this.#maxGraphs = mg;
    if (typeof opts.tune === 'object') checkTuneOptions(opts.tune);
    if (opts.switches !== undefined && (typeof opts.switches !== 'object' || opts.switches === null ||
        Object.entries(opts.switches).some(([k, v]) => !k.startsWith('IRCONSTYLE_') || typeof v !== 'string')))
      throw new IrcError('E_ARG', `IRConStyleTrainer: switches must map IRCONSTYLE_* names to strings, got ${JSON.stringify(opts.switches)}`);
    this.constyleIter = opts.constyleIter ?? Infinity;
    this.arena = new ParamArena(model);
    this.optimizer = new AdamW(this.arena, opts);
    this.#graph = opts.graph;
    const tune = opts.tune ?? (opts.switches === undefined && this.arena.params.device === 'cuda' && process.env.IRCONSTYLE_TUNE !== '0');
    this.#switches = { ...opts.switches };
    this.#tune = tune ? { opts: tune === true ? {} : tune, first: true } : null;
    if (opts.checkpoint) setCheckpointing(model, true);
    model.train();
  }

  /** Graph mode (TrainerOptions.graph); may be switched between steps. Switching it off frees the recordings. */
  get graph(): boolean {
    return this.#graph ?? this.arena.params.device === 'cuda';
  }
  set graph(on: boolean) {
    this.#graph = on;
    if (!on) this.#freeRecordings();
  }

  /** The kernel switches this trainer sets while it enqueues its steps (TrainerOptions.switches, or what tuning chose). */
  get switches(): Record<string, string> {
    return { ...this.#switches };
  }

  /**
   * Kernel tuning (TrainerOptions.tune) at the next step, e.g. after switching graph mode, which it times. Frees the
   * recordings (made with the kernels chosen before): each kind is recorded again at its second step after this.
   */
  retune(opts: TuneOptions = {}): void {
    checkTuneOptions(opts);
    this.#freeRecordings();
    this.#tune = { opts, first: false };
  }

  get constyleActive(): boolean {
    return this.iteration <= this.constyleIter;
  }

  /**
   * Graph mode: per step kind, whether its step is replayed as a CUDA graph (`graphed`), obeyed the capture rules
   * (`capturable`; checked on the CPU too), or why not (`reason`). Empty before the second step of a kind.
   */
  get graphState(): { kind: string; graphed: boolean; capturable: boolean; reason: string }[] {
    return [...this.#kinds].filter(([, v]) => v !== 'warm').map(([kind, v]) => typeof v === 'string'
      ? { kind, graphed: false, capturable: false, reason: v }
      : { kind, graphed: v.graph !== null, capturable: true, reason: v.graph !== null ? '' : 'the CPU backend replays op by op (CUDA graphs need a GPU)' });
  }

  /** Runs one iteration on NHWC batches lq/gt [N,H,W,3]; resolves with the losses. */
  async step(lq: Tensor, gt: Tensor): Promise<StepLosses> {
    this.iteration += 1;
    const cs = this.model.ConStyle!;
    const active = this.constyleActive;
    if (!active) for (const t of cs.encoder_q.parameters()) t.requiresGrad = false;
    let losses: Record<string, Tensor>;
    if (!this.graph) {
      await this.#tuneIfDue(lq, gt, active);
      losses = this.#body(lq, gt, active, null, null);
    } else {
      const kind = `${active ? 'constyle' : 'frozen'} [${lq.shape.join(',')}] [${gt.shape.join(',')}] ${lq.device}`;
      this.#writeStepValues(lq.device, active);
      await this.#tuneIfDue(lq, gt, active);
      const rec = this.#kinds.get(kind);
      if (native.profiling()) {  // ops are being timed (profileOps): op by op, no capture; a replay would time nothing
        losses = this.#body(lq, gt, active, this.#factors, this.#ptr);
        if (rec === undefined) this.#kinds.set(kind, 'warm');
      } else if (rec === 'warm' && this.#recordings() >= this.#maxGraphs) {  // op by op from now on
        this.#kinds.set(kind, `not recorded: ${this.#maxGraphs} step kind${this.#maxGraphs === 1 ? ' is' : 's are'} recorded already (TrainerOptions.maxGraphs)`);
        losses = this.#body(lq, gt, active, this.#factors, this.#ptr);
      } else if (rec === 'warm') {  // the second step of its kind: recorded, then replayed (CUDA) or already run (CPU)
        const r = await this.#record(lq, gt, active);
        let replayed: Record<string, Tensor> | null = null;
        if (r.rec) {
          try {  // the first launch reserves the graph's memory: a failure there leaves the kind op by op (or, for lack
            // of memory, to be recorded again at a later step)
            replayed = this.#replay(r.rec, lq, gt);
          } catch (e) {
            this.#drop(r.rec);
            r.rec = undefined;
            const err = toIrcError(e);
            r.why = `the first replay failed: ${err.code}: ${err.message}`;
          }
        }
        const retries = this.#oomRetries.get(kind) ?? 0;
        if (!r.rec && /\bE_OOM\b/.test(r.why) && retries < OOM_RETRIES) {
          this.#oomRetries.set(kind, retries + 1);
          this.#kinds.delete(kind);
        } else {
          this.#kinds.set(kind, r.rec ?? r.why);
        }
        if (replayed) losses = replayed;
        else if (lq.device !== 'cpu') losses = this.#body(lq, gt, active, this.#factors, this.#ptr);  // nothing ran
        else if (r.losses) losses = r.losses;  // the CPU ran the whole step; only the final check failed
        else throw new IrcError('E_CAPTURE', `graph mode: the step breaks the capture rules and stopped part way on the CPU ` +
          `(its updates are partly applied; later steps of this kind run op by op): ${r.why}`);
      } else if (typeof rec === 'object' && rec.graph !== null) {
        losses = this.#replay(rec, lq, gt);
      } else {  // the first step of its kind, or nothing to replay (the CPU, or the recording failed)
        losses = this.#body(lq, gt, active, this.#factors, this.#ptr);
        if (rec === undefined) this.#kinds.set(kind, 'warm');
      }
      this.optimizer.step += 1;
      if (active) cs.advanceQueue(lq.shape[0]!);
    }
    return { pix: 0, ce: 0, content: 0, style: 0, total: 0, ...(await this.#read(losses)) };
  }

  /** Kernel tuning (TrainerOptions.tune), due at the second step (or the next after retune), not while ops are
   * profiled (then at the first step after). */
  async #tuneIfDue(lq: Tensor, gt: Tensor, active: boolean): Promise<void> {
    if (!this.#tune || native.profiling()) return;
    if (this.#tune.first) {
      this.#tune.first = false;
      return;
    }
    const { opts } = this.#tune;
    this.#tune = null;
    const before = this.#switches;
    this.#switches = {};  // the trials start from the default paths
    const search = { ...opts, variants: (opts.variants ?? defaultVariants()).filter((v) => !v.appliesTo || v.appliesTo(this.model)) };
    const snap = this.#snapshot();
    let graphed = this.graph && lq.device === 'cuda' && this.#maxGraphs > 0;
    const measure = async (): Promise<{ ms: number; sample: TuneSample }> => {
      this.#restore(snap);
      // op by op first: the paths' first calls (the autotuners time their candidates outside a capture)
      const first = await this.#sample(this.#body(lq, gt, active, this.#factors, this.#ptr), !graphed);
      if (!graphed) return { ms: await timeSteps(opts.steps ?? 5, async () => { await this.#read(this.#body(lq, gt, active, this.#factors, this.#ptr)); }), sample: first };
      this.#restore(snap);
      const r = await this.#record(lq, gt, active);
      if (!r.rec) {
        if (r.losses) disposeAll(r.losses);
        throw new IrcError('E_CAPTURE', r.why);
      }
      try {
        const sample = await this.#sample(this.#replay(r.rec, lq, gt), true);
        const graph = r.rec.graph;
        return { ms: await timeSteps(opts.steps ?? 5, async () => { native.graphLaunch(graph); await sync(); }), sample };
      } finally {
        this.#drop(r.rec);
      }
    };
    try {
      try {
        this.tuneReport = await searchVariants(measure, search);
      } catch (e) {
        if (!graphed || (e as IrcError).code !== 'E_CAPTURE') throw e;
        graphed = false;  // the default step does not record: the kind will train op by op, and is tuned so
        this.tuneReport = await searchVariants(measure, search);
      }
      this.#switches = this.tuneReport.switches;
    } catch (e) {
      this.tuneReport = { chosen: [], switches: {}, trials: [], seconds: 0, error: toIrcError(e).message };
      this.#switches = before;  // (what was in force before stays)
    } finally {
      this.#restore(snap);
      disposeAll(snap.copies);
    }
  }

  /** The losses (read) and, with grads, the arena's gradients of a step; disposes the loss tensors. */
  async #sample(losses: Record<string, Tensor>, grads: boolean): Promise<TuneSample> {
    const vals = await this.#read(losses);
    if (!grads) return { losses: vals };
    return { losses: vals, grads: { data: await this.arena.grads.f32(), entries: this.arena.entries } };
  }

  /** The losses' values (every read enqueued at once: one wait for the step, not one round trip per loss); disposes
   * the tensors. */
  async #read(losses: Record<string, Tensor>): Promise<Record<string, number>> {
    try {
      const vals = await Promise.all(Object.values(losses).map((t) => t.item()));
      return Object.fromEntries(Object.keys(losses).map((k, i) => [k, vals[i]!]));
    } finally {
      disposeAll(losses);
    }
  }

  /** Everything a step changes: the arena, AdamW's moments and step count, the other parameters (encoder_k), the
   * buffers (queue, statistics) and the scalars (queue_ptr, batch counts). */
  #snapshot(): Snapshot {
    const inArena = new Set(this.arena.entries.map((e) => e.name));
    const live = [this.arena.params, this.optimizer.m, this.optimizer.v,
      ...this.model.namedParameters().filter(([n]) => !inArena.has(n)).map((e) => e[1]),
      ...this.model.namedBuffers().map((e) => e[1])];
    const copies = untracked(() => live.map((t) => clone(t)));
    const scalars = this.model.namedScalars().map(([, m, k]): [Module, string, number] => [m, k, m.S[k]!]);
    return { live, copies, scalars, step: this.optimizer.step };
  }

  #restore(s: Snapshot): void {
    untracked(() => s.live.forEach((t, i) => copyInto(t, s.copies[i]!)));
    for (const [m, k, v] of s.scalars) m.S[k] = v;
    this.optimizer.step = s.step;
  }

  /** The step's device work: losses, backward, update. With factors / ptr (graph mode) the per-step values are
   * read on the device and the caller advances the optimizer step and the queue pointer. */
  #body(lq: Tensor, gt: Tensor, active: boolean, factors: Tensor | null, ptr: Tensor | null): Record<string, Tensor> {
    return withSwitches(this.#switches, () => this.#bodyOn(lq, gt, active, factors, ptr));
  }

  #bodyOn(lq: Tensor, gt: Tensor, active: boolean, factors: Tensor | null, ptr: Tensor | null): Record<string, Tensor> {
    const cs = this.model.ConStyle!;
    this.arena.zeroGrad();
    // A step that fails part way (out of GPU memory, say) frees what it made at once: its graph's saved tensors and
    // the losses. The parameters and AdamW's state are untouched unless the update itself ran.
    const l = freeGraphOnError(() => {
      const losses = tidy((): Record<string, Tensor> => {
        if (active) {
          const o = cs.trainForward(lq, gt, ptr ?? undefined);
          const restored = this.model.restore(lq, o.q1, o.feas);
          return { ...irconstyleLoss(restored, gt, o) };
        }
        const enc = noGrad(() => cs.encode(lq));
        const pix = pixelLoss(this.model.restore(lq, enc.q1, enc.feas), gt);
        return { pix, total: pix };
      });
      try {
        backward(losses.total!);
      } catch (e) {
        disposeAll(losses);
        throw e;
      }
      return losses;
    });
    const o = this.optimizer;
    if (factors) {  // graph mode: the step's values are read on the device; the caller counts the step
      const opts = this.#nextStep();
      if (active) noGrad(() => adamwStep(this.arena.params, this.arena.grads, o.m, o.v, opts, factors));
      else this.#updateRestorationOnly(opts, factors);
    } else if (active) {
      o.update();
    } else {
      o.step += 1;
      this.#updateRestorationOnly(o.stepOptions(), null);
    }
    return l;
  }

  /** The optimizer's options for the step about to be taken (graph mode counts it after the step). */
  #nextStep(): AdamWStepOptions {
    return { ...this.optimizer.stepOptions(), step: this.optimizer.step + 1 };
  }

  /** Graph mode: the AdamW factors of the coming step and the queue pointer, written on the device. */
  #writeStepValues(device: Tensor['device'], active: boolean): void {
    const f = adamwFactors(this.#nextStep());
    untracked(() => {
      this.#factors ??= zeros([3], 'float32', device);
      this.#ptr ??= zeros([1], 'int32', device);
      const src = tensor(f, [3], { device });
      copyInto(this.#factors, src);
      src.dispose();
      if (active) fillInPlace(this.#ptr, this.model.ConStyle!.S.queue_ptr!);
    });
  }

  /**
   * Records the step (on CUDA: not run; on the CPU: run under the capture rules) into static buffers. On failure,
   * `why`, and on the CPU the losses when the step ran to the end (only the final check failed).
   */
  async #record(lq: Tensor, gt: Tensor, active: boolean): Promise<{ rec?: Recorded; why: string; losses?: Record<string, Tensor> }> {
    const keys = active ? LOSS_KEYS : (['pix', 'total'] as const);
    const rec: Recorded = untracked(() => ({
      lq: clone(lq), gt: clone(gt), keys, graph: null, losses: keys.map(() => zeros([], 'float32', lq.device)),
    }));
    let ran = false;
    const why = await captured(lq.device, () => {
      const l = this.#body(rec.lq, rec.gt, active, this.#factors, this.#ptr);
      keys.forEach((k, i) => copyInto(rec.losses[i]!, l[k]!));
      disposeAll(l);
      ran = true;
    }, (g) => (rec.graph = g));
    if (!why) return { rec, why };
    const losses = ran && lq.device === 'cpu' ? this.#replay(rec, lq, gt) : undefined;  // frees rec on the CPU
    if (!losses) disposeAll([rec.lq, rec.gt, rec.losses]);
    return { why: `capture failed: ${why}`, losses };
  }

  /** The losses of a recorded step: after one replay on CUDA; on the CPU, of the recording itself, which ran. */
  #replay(rec: Recorded, lq: Tensor, gt: Tensor): Record<string, Tensor> {
    if (rec.graph !== null) {
      copyInto(rec.lq, lq);
      copyInto(rec.gt, gt);
      native.graphLaunch(rec.graph);
    }
    const out = Object.fromEntries(rec.keys.map((k, i) => [k, clone(rec.losses[i]!)]));
    if (rec.graph === null) disposeAll([rec.lq, rec.gt, rec.losses]);  // never replayed
    return out;
  }

  /** AdamW over the arena minus ConStyle's range (frozen encoders are skipped, not decayed). */
  #updateRestorationOnly(opts: AdamWStepOptions, factors: Tensor | null): void {
    const { offset, size } = this.arena.range('ConStyle.');
    const o = this.optimizer;
    const end = offset + size;
    const parts: [number, number][] = [[0, offset], [end, this.arena.size - end]];
    noGrad(() => {
      for (const [at, n] of parts) {
        if (!n) continue;
        const v = (t: Tensor) => viewOf(t, at, [n], false);
        const views = [v(this.arena.params), v(this.arena.grads), v(o.m), v(o.v)] as const;
        adamwStep(views[0], views[1], views[2], views[3], opts, factors ?? undefined);
        for (const t of views) t.dispose();
      }
    });
  }

  /** Recorded kinds that hold a graph (and its memory). */
  #recordings(): number {
    return [...this.#kinds.values()].filter((v) => typeof v === 'object' && v.graph !== null).length;
  }

  #drop(r: Recorded): void {
    native.graphDestroy(r.graph);
    disposeAll([r.lq, r.gt, r.losses]);
  }

  #freeRecordings(): void {
    for (const r of this.#kinds.values()) if (typeof r === 'object' && r.graph !== null) this.#drop(r);
    this.#kinds.clear();
    this.#factors?.dispose();
    this.#ptr?.dispose();
    this.#factors = this.#ptr = null;
  }

  dispose(): void {
    this.#freeRecordings();
    this.optimizer.dispose();
    this.arena.dispose();
  }
}
