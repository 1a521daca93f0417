// Kernel tuning (TrainerOptions.tune): the switches it sets reach the native ops (the environment still wins), the
// search takes the fastest variants that agree with the default, a variant whose losses or gradients disagree or
// that throws is never taken, and the trainer's state after tuning is exactly what it was, so the training run is
// the same as without tuning.
import { afterEach, describe, expect, it } from 'vitest';
import { createModel } from '../lib/models/catalog.js';
import { setInitSeed } from '../lib/nn/init.js';
import { IRConStyleTrainer, type StepLosses } from '../lib/train/irconstyle.js';
import { compareSamples, defaultVariants, searchVariants, TRIAL_VARIANTS, TUNE_VARIANTS, type KernelVariant, type TuneOptions, type TuneSample } from '../lib/train/tune.js';
import { kernelSwitches, setKernelSwitches, switchValue, withSwitches } from '../lib/native/switches.js';
import { tensor } from '../lib/tensor/tensor.js';
import { runOp } from '../lib/ops/run.js';
import type { ConStyleUNet } from '../lib/models/unet.js';
import { differing, randArray } from './helpers.js';
import { native } from '../lib/native/loader.js';
import { setKeepOnCpu } from '../lib/ops/fused.js';
import { captureForward } from '../lib/infer/graph.js';
import { scale } from '../lib/ops/elementwise.js';

afterEach(() => {
  setKernelSwitches(Object.fromEntries(Object.keys(kernelSwitches()).filter((k) => kernelSwitches()[k]!.from === 'set').map((k) => [k, null])));
});

describe('kernel switches set from JS', () => {
  it('reach the native ops where the environment leaves them unset; the environment wins', async () => {
    // conv1x1_gate's backward at a shape the SIMT kernel takes: its emulation (IRCONSTYLE_EMULATE=pw_simt) sums the
    // column sums in another order
    const x = tensor(randArray(3 * 50 * 48, 1, -1, 1), [3, 50, 48]), w = tensor(randArray(48 * 96, 2, -0.3, 0.3), [1, 1, 48, 96]);
    const b = tensor(randArray(96, 3), [96]), dy = tensor(randArray(3 * 50 * 48, 4), [3, 50, 48]);
    const run = async () => Float32Array.from((await Promise.all(runOp('conv1x1_gate_backward', [dy, x, w, b]).map((t) => t.data())))
      .flatMap((d) => [...(d as Float32Array)]));
    const plain = await run();
    setKernelSwitches({ IRCONSTYLE_EMULATE: 'pw_simt' });
    expect(switchValue('IRCONSTYLE_EMULATE')).toBe('pw_simt');
    expect(kernelSwitches().IRCONSTYLE_EMULATE).toEqual({ value: 'pw_simt', from: 'set' });
    const emulated = await run();
    expect(differing(emulated, plain)).toBeGreaterThan(0);
    process.env.IRCONSTYLE_EMULATE = '';  // set (to nothing) in the environment: no emulation, whatever JS set
    try {
      expect(differing(await run(), plain)).toBe(0);
      expect(kernelSwitches().IRCONSTYLE_EMULATE).toEqual({ value: '', from: 'env' });
    } finally {
      delete process.env.IRCONSTYLE_EMULATE;
    }
    expect(differing(await run(), emulated)).toBe(0);
    setKernelSwitches({ IRCONSTYLE_EMULATE: null });
    expect(differing(await run(), plain)).toBe(0);
    // scoped: what is enqueued inside runs with them, also when it runs (on the CPU's queue thread) after the scope
    const read = (ts: { data(): Promise<unknown> }[]) => Promise.all(ts.map((t) => t.data()))
      .then((ds) => Float32Array.from(ds.flatMap((d) => [...(d as Float32Array)])));
    const inside = withSwitches({ IRCONSTYLE_EMULATE: 'pw_simt' }, () => runOp('conv1x1_gate_backward', [dy, x, w, b]));
    const after = runOp('conv1x1_gate_backward', [dy, x, w, b]);
    expect(switchValue('IRCONSTYLE_EMULATE')).toBeUndefined();
    expect(differing(await read(inside), emulated)).toBe(0);
    expect(differing(await read(after), plain)).toBe(0);
    expect(() => setKernelSwitches({ PATH: '/' })).toThrow(/IRCONSTYLE_\* names/);
  });
});

describe('compareSamples', () => {
  const entries = [{ name: 'm.a', offset: 0, size: 4 }, { name: 'm.bias', offset: 4, size: 2 }];
  const ref: TuneSample = { losses: { total: 2, ce: 1 }, grads: { data: Float32Array.of(1, -2, 3, 4, 1e-9, -1e-9), entries } };
  const with_ = (losses: Record<string, number>, data: number[]): TuneSample => ({ losses, grads: { data: Float32Array.from(data), entries } });
  it('takes rounding differences, including a noise-only gradient', () => {
    expect(compareSamples(ref, with_({ total: 2.001, ce: 1 }, [1.001, -2, 3, 4, 3e-9, 2e-9]))).toBeNull();
  });
  it('names a loss or a gradient that differs, or one that is not finite', () => {
    expect(compareSamples(ref, with_({ total: 2.1, ce: 1 }, [1, -2, 3, 4, 0, 0]))).toMatch(/loss total/);
    expect(compareSamples(ref, with_({ total: 2, ce: NaN }, [1, -2, 3, 4, 0, 0]))).toMatch(/loss ce is NaN/);
    expect(compareSamples(ref, with_({ total: 2, ce: 1 }, [1, -2, 3, 5, 0, 0]))).toMatch(/gradient of m.a differs/);
    expect(compareSamples(ref, with_({ total: 2, ce: 1 }, [1, -2, 3, 4, 0.2, 0]))).toMatch(/gradient of m.bias/);
    expect(compareSamples(ref, with_({ total: 2, ce: 1 }, [1, -2, 3, Infinity, 0, 0]))).toMatch(/not finite/);
  });
});

describe('searchVariants', () => {
  // fake steps: the time depends on the test switches in force; C's losses are wrong, D throws
  const v = (n: string): KernelVariant => ({ name: n, switches: { [`IRCONSTYLE_TEST_${n}`]: '1' } });
  const on = (n: string) => switchValue(`IRCONSTYLE_TEST_${n}`) === '1';
  const measure = (times: (a: boolean, b: boolean) => number) => async () => {
    if (on('D')) throw new Error('no such kernel');
    const ms = on('C') ? 10 : times(on('A'), on('B'));
    return { ms, sample: { losses: { total: on('C') ? 3 : 1 } } };
  };
  it('takes the fastest agreeing variant, then adds others while they help; skips what the environment sets', async () => {
    process.env.IRCONSTYLE_TEST_E = '0';
    try {
      // A2 sets A's switch to another value (faster than the default, slower than A): never combined with A
      const a2: KernelVariant = { name: 'A2', switches: { IRCONSTYLE_TEST_A: '2' } };
      const times = (a: boolean, b: boolean) => (switchValue('IRCONSTYLE_TEST_A') === '2' ? 85 : 100 - (a ? 20 : 0) - (b ? 10 : 0));
      const r = await searchVariants(measure(times), { variants: [...['A', 'B', 'C', 'D', 'E'].map(v), a2] });
      expect(r.chosen).toEqual(['A', 'B']);
      expect(r.switches).toEqual({ IRCONSTYLE_TEST_A: '1', IRCONSTYLE_TEST_B: '1' });
      expect(r.trials.map((t) => [t.name, t.ms, t.ok])).toEqual([['default', 100, true], ['A', 80, true], ['B', 90, true],
        ['C', 10, false], ['D', null, false], ['E', null, false], ['A2', 85, true], ['default', 100, true], ['A+B', 70, true]]);
      expect(r.trials[3]!.note).toMatch(/loss total 3/);
      expect(r.trials[4]!.note).toMatch(/failed: no such kernel/);
      expect(r.trials[5]!.note).toMatch(/IRCONSTYLE_TEST_E set in the environment/);
      expect([on('A'), on('B'), on('C'), on('D')]).toEqual([false, false, false, false]);  // returned, not set
    } finally {
      delete process.env.IRCONSTYLE_TEST_E;
    }
  });
  it('keeps the default when nothing is faster by minGain, and a pair only when it beats the best alone', async () => {
    const none = await searchVariants(measure((a, b) => 100 - (a ? 1 : 0) - (b ? 1 : 0)), { variants: [v('A'), v('B')] });
    expect(none.chosen).toEqual([]);
    expect([on('A'), on('B')]).toEqual([false, false]);
    const one = await searchVariants(measure((a, b) => (a ? 80 : 100) + (a && b ? 5 : b ? -10 : 0)), { variants: [v('A'), v('B')] });
    expect(one.chosen).toEqual(['A']);
    expect(one.switches).toEqual({ IRCONSTYLE_TEST_A: '1' });
    // the default timed again after the variants: a first trial slowed by what it warmed does not make a variant win
    let calls = 0;
    const warm = await searchVariants(async () => ({ ms: calls++ === 0 ? 150 : on('A') ? 99 : 100, sample: { losses: { total: 1 } } }), { variants: [v('A')] });
    expect(warm.trials.map((t) => [t.name, t.ms])).toEqual([['default', 150], ['A', 99], ['default', 100]]);
    expect(warm.chosen).toEqual([]);
    await expect(searchVariants(measure(() => 1), { variants: [v('A'), v('A')] })).rejects.toThrow(/unique name/);
    // a time budget: the variants left when it is spent are skipped, not run
    const slow = async () => { await new Promise((r) => setTimeout(r, 30)); return { ms: on('A') ? 50 : 100, sample: { losses: { total: 1 } } }; };
    const cut = await searchVariants(slow, { variants: [v('B'), v('A')], maxSeconds: 0.01 });
    expect(cut.trials.map((t) => [t.name, t.ok])).toEqual([['default', true], ['B', false], ['A', false]]);
    expect(cut.trials[2]!.note).toMatch(/maxSeconds/);
    expect(cut.chosen).toEqual([]);
  });
});

let current: IRConStyleTrainer | null = null;  // the trainer train() runs (for variants that change its model)

async function train(tune: TuneOptions | boolean | undefined, graph: boolean, steps = 4) {
  setInitSeed(33);
  const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
  const tr = new IRConStyleTrainer(net, { graph, tune });
  current = tr;
  const losses: StepLosses[] = [];
  for (let i = 0; i < steps; i++) {
    const lq = tensor(randArray(2 * 32 * 32 * 3, 70 + i, 0, 1), [2, 32, 32, 3]);
    const gt = tensor(randArray(2 * 32 * 32 * 3, 90 + i, 0, 1), [2, 32, 32, 3]);
    losses.push(await tr.step(lq, gt));
    lq.dispose();
    gt.dispose();
  }
  const cs = net.ConStyle!;
  const out = {
    losses, report: tr.tuneReport,
    params: (await tr.arena.params.data()) as Float32Array,
    encoderK: await Promise.all(cs.encoder_k.parameters().map((t) => t.data())),
    m: (await tr.optimizer.m.data()) as Float32Array,
    v: (await tr.optimizer.v.data()) as Float32Array,
    queue: (await cs.B.queue!.data()) as Float32Array,
    ptr: cs.S.queue_ptr,
    step: tr.optimizer.step,
  };
  tr.dispose();
  net.dispose();
  return out;
}

describe('IRConStyleTrainer kernel tuning', () => {
  // a variant whose gradients are wrong (the arena's last parameter gets none) while its losses are right
  const broken: KernelVariant = {
    name: 'broken', apply: () => {
      const name = current!.arena.entries.at(-1)!.name;
      const last = current!.model.namedParameters().find((e) => e[0] === name)![1];
      last.requiresGrad = false;
      return () => (last.requiresGrad = true);
    },
  };
  const emulated: KernelVariant = { name: 'emulated', switches: { IRCONSTYLE_EMULATE: 'pw_simt,slide' } };

  for (const graph of [false, true]) {
    it(`leaves the run exactly as without tuning; rejects a variant with wrong gradients (graph ${graph})`, async () => {
      const plain = await train(false, graph);
      // minGain close to 1: nothing is taken, so the steps after tuning run the default paths as the plain run does
      const tuned = await train({ variants: [emulated, broken], minGain: 0.999, steps: 1 }, graph);
      expect(plain.report).toBeNull();
      const r = tuned.report!;
      expect(r.error).toBeUndefined();
      expect(r.trials.map((t) => [t.name, t.ok])).toEqual([['default', true], ['emulated', true], ['broken', false]]);
      expect(r.trials[2]!.note).toMatch(/gradient of .* differs/);
      expect(r.chosen).toEqual([]);
      expect(tuned.losses).toEqual(plain.losses);
      for (const k of ['params', 'm', 'v', 'queue'] as const) expect(differing(tuned[k], plain[k]), k).toBe(0);
      tuned.encoderK.forEach((t, i) => expect(differing(t, plain.encoderK[i]!), `encoder_k ${i}`).toBe(0));
      expect([tuned.ptr, tuned.step]).toEqual([plain.ptr, plain.step]);
      expect(switchValue('IRCONSTYLE_EMULATE')).toBeUndefined();
    });
  }

  it('is off by default on the CPU; tune: true tries the variants proven on a GPU, IRCONSTYLE_TUNE=all those on trial too', async () => {
    const off = await train(undefined, false, 3);
    expect(off.report).toBeNull();
    // (MAXIM's gating-unit variant and Restormer's channel-attention one do not apply to a NAFNet)
    const names = (vs: readonly KernelVariant[]) => vs.filter((v) => !['spatialGate', 'mdtaBlockDiag'].includes(v.name)).map((v) => v.name);
    expect(defaultVariants()).toEqual(TUNE_VARIANTS);
    const on = await train({ steps: 1, minGain: 0.999 }, false, 3);  // (nothing taken: the same steps after it)
    expect(on.report!.trials.map((t) => t.name).slice(0, names(TUNE_VARIANTS).length + 1)).toEqual(['default', ...names(TUNE_VARIANTS)]);
    expect(on.report!.trials.every((t) => t.ok)).toBe(true);
    expect(on.losses).toEqual(off.losses);
    process.env.IRCONSTYLE_TUNE = 'all';
    try {
      const all = await train({ steps: 1, minGain: 0.999 }, false, 3);
      const want = names([...TUNE_VARIANTS, ...TRIAL_VARIANTS]);
      expect(want).toContain('pwSimt');
      expect(all.report!.trials.map((t) => t.name).slice(0, want.length + 1)).toEqual(['default', ...want]);
      expect(all.report!.trials.every((t) => t.ok)).toBe(true);
    } finally {
      delete process.env.IRCONSTYLE_TUNE;
    }
  });

  it("the chosen switches apply to this trainer's steps (graph mode too), not to the process", async () => {
    setInitSeed(7);
    const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
    const seen: string[] = [];  // a test switch as the model's forward sees it (at enqueue, as the native ops do)
    const restore = net.restore.bind(net);
    net.restore = (...a: Parameters<ConStyleUNet['restore']>) => (seen.push(switchValue('IRCONSTYLE_TEST_X') ?? '-'), restore(...a));
    const tr = new IRConStyleTrainer(net, { graph: true, tune: { variants: [{ name: 'x', switches: { IRCONSTYLE_TEST_X: '1' } }], steps: 1, minGain: -1000 } });
    const x = tensor(randArray(2 * 32 * 32 * 3, 3, 0, 1), [2, 32, 32, 3]);
    for (let i = 0; i < 4; i++) {
      seen.length = 0;
      await tr.step(x, x);
      // step 1: the default; step 2: the trials (default, x, default again), then the recording (CPU: it runs)
      expect(seen, `step ${i + 1}`).toEqual([['-'], ['-', '-', '-', '1', '1', '1', '-', '-', '-', '1'], ['1'], ['1']][i]);
      expect(switchValue('IRCONSTYLE_TEST_X')).toBeUndefined();
    }
    expect(tr.tuneReport!.chosen).toEqual(['x']);
    tr.dispose();
    net.dispose();
    x.dispose();
  });

  it("NAFNet's SCA scale apart: tried only for a model with NAFBlocks, its forward through channel_scale", async () => {
    const apart = TUNE_VARIANTS.find((v) => v.name === 'scaleApart')!;
    setInitSeed(10);
    const maxim = createModel('constyle-maxim-tiny', { constyle: 'train', K: 16 });
    const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
    expect([apart.appliesTo!(maxim), apart.appliesTo!(net)]).toEqual([false, true]);
    maxim.dispose();
    const id = native.info().ops.indexOf('channel_scale'), count = () => native.opCounts()[id]!;
    const tr = new IRConStyleTrainer(net, { tune: { variants: [apart], steps: 1, minGain: 0.999 } });
    const x = tensor(randArray(2 * 32 * 32 * 3, 5, 0, 1), [2, 32, 32, 3]);
    const c0 = count();
    await tr.step(x, x);
    const c1 = count();
    await tr.step(x, x);
    expect([c1 - c0, count() > c1]).toEqual([0, true]);  // the default's step has none; the trial's do
    expect(tr.tuneReport!.trials.map((t) => [t.name, t.ok])).toEqual([['default', true], ['scaleApart', true]]);
    tr.dispose();
    net.dispose();
    x.dispose();
  });

  it("Restormer's whole-width channel-attention GEMMs: tried only for a model with Restormer's attention", () => {
    const mdta = TRIAL_VARIANTS.find((v) => v.name === 'mdtaBlockDiag')!;
    expect(mdta.switches).toEqual({ IRCONSTYLE_MDTA: 'blockdiag' });
    const models = ['constyle-restormer-tiny', 'constyle-nafnet-tiny', 'constyle-maxim-tiny'].map((n) => createModel(n, { constyle: 'inference' }));
    expect(models.map((m) => mdta.appliesTo!(m))).toEqual([true, false, false]);
    for (const m of models) m.dispose();
  });

  it("MAXIM's gating units as one op: tried only for a model that has them, and in agreement with the composition", async () => {
    const gate = TUNE_VARIANTS.find((v) => v.name === 'spatialGate')!;
    setInitSeed(9);
    const nafnet = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 });
    const maxim = createModel('constyle-maxim-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
    expect([gate.appliesTo!(nafnet), gate.appliesTo!(maxim)]).toEqual([false, true]);
    nafnet.dispose();
    const was = setKeepOnCpu(false);  // the CPU composes the gating units by default; as on CUDA here
    const id = native.info().ops.indexOf('spatial_gate'), count = () => native.opCounts()[id]!;
    try {
      const tr = new IRConStyleTrainer(maxim, { tune: { variants: [gate], steps: 1, minGain: 0.999 } });
      const x = tensor(randArray(2 * 32 * 32 * 3, 4, 0, 1), [2, 32, 32, 3]);
      await tr.step(x, x);
      const before = count();
      await tr.step(x, x);
      expect(tr.tuneReport!.trials.map((t) => [t.name, t.ok, t.note])).toEqual([['default', true, ''], ['spatialGate', true, '']]);
      expect(count()).toBeGreaterThan(before);  // the trial ran the one op
      tr.dispose();
      x.dispose();
    } finally {
      setKeepOnCpu(was);
      maxim.dispose();
    }
  });

  it('pinned switches (a previous run\'s choice) apply to the steps without tuning; bad ones are named', async () => {
    setInitSeed(11);
    const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
    expect(() => new IRConStyleTrainer(net, { switches: { PW_SIMT: '1' } })).toThrow(/switches must map IRCONSTYLE_\* names to strings/);
    const seen: string[] = [];
    const restore = net.restore.bind(net);
    net.restore = (...a: Parameters<ConStyleUNet['restore']>) => (seen.push(switchValue('IRCONSTYLE_TEST_X') ?? '-'), restore(...a));
    const tr = new IRConStyleTrainer(net, { switches: { IRCONSTYLE_TEST_X: '2' }, graph: true });
    const x = tensor(randArray(2 * 32 * 32 * 3, 6, 0, 1), [2, 32, 32, 3]);
    for (let i = 0; i < 3; i++) await tr.step(x, x);
    expect([seen, tr.tuneReport, tr.switches, switchValue('IRCONSTYLE_TEST_X')]).toEqual([['2', '2', '2'], null, { IRCONSTYLE_TEST_X: '2' }, undefined]);
    tr.dispose();
    net.dispose();
    x.dispose();
  });

  it('retune() tunes at the next step and records each kind again; bad options are named', async () => {
    setInitSeed(5);
    const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
    expect(() => new IRConStyleTrainer(net, { tune: { steps: 0 } })).toThrow(/tune.steps must be an integer in \[1, 1000\], got 0/);
    expect(() => new IRConStyleTrainer(net, { tune: { minGain: 1 } })).toThrow(/tune.minGain/);
    const tr = new IRConStyleTrainer(net, { graph: true });
    expect(() => tr.retune({ variants: [{ name: 'default' }] })).toThrow(/unique name other than 'default'/);
    expect(() => tr.retune({ variants: [{ name: 'x', switches: { PW_SIMT: '1' } }] })).toThrow(/x.switches must map IRCONSTYLE_\* names to strings, got "PW_SIMT=1"/);
    const x = tensor(randArray(2 * 32 * 32 * 3, 3, 0, 1), [2, 32, 32, 3]);
    await tr.step(x, x);
    await tr.step(x, x);  // recorded (on the CPU: checked against the capture rules)
    expect([tr.tuneReport, tr.graphState.length]).toEqual([null, 1]);
    tr.retune({ variants: [{ name: 'emulated', switches: { IRCONSTYLE_EMULATE: 'pw_simt' } }], steps: 1, minGain: 0.999 });
    expect(tr.graphState).toEqual([]);
    await tr.step(x, x);
    expect(tr.tuneReport!.trials.map((t) => t.name)).toEqual(['default', 'emulated']);
    expect(tr.graphState).toEqual([]);  // op by op, the first of its kind again
    await tr.step(x, x);
    expect(tr.graphState.map((g) => g.capturable)).toEqual([true]);
    tr.dispose();
    net.dispose();
    x.dispose();
  });
});

describe('captureForward kernel tuning', () => {
  it("checks each variant's output against the default's; the chosen switches apply to run(); off by default", async () => {
    setInitSeed(6);
    const m = createModel('constyle-nafnet-tiny', { constyle: 'inference' }).eval() as ConStyleUNet;
    let off = false;  // the broken variant scales the output by 1.05
    const seen: string[] = [];  // the test switch as fn sees it (read at enqueue, as the native ops read theirs)
    const fn = (t: Parameters<ConStyleUNet['forward']>[0]) => {
      seen.push(switchValue('IRCONSTYLE_TEST_X') ?? '-');
      return off ? scale(m.forward(t), 1.05) : m.forward(t);
    };
    const x = tensor(randArray(32 * 32 * 3, 8, 0, 1), [1, 32, 32, 3]);
    const plain = await captureForward(fn, x);
    expect(plain.tuneReport).toBeNull();
    const variants: KernelVariant[] = [{ name: 'x', switches: { IRCONSTYLE_TEST_X: '1' } },
      { name: 'broken', apply: () => { off = true; return () => (off = false); } }];
    // minGain -1000: a variant that agrees is taken even if slower
    const tuned = await captureForward(fn, x, { tune: { variants, steps: 1, minGain: -1000 } });
    const r = tuned.tuneReport!;
    expect(r.trials.map((t) => [t.name, t.ok])).toEqual([['default', true], ['x', true], ['broken', false], ['default', true]]);
    expect(r.trials[2]!.note).toMatch(/the output of the forward differs/);
    expect([r.chosen, r.switches, off]).toEqual([['x'], { IRCONSTYLE_TEST_X: '1' }, false]);
    // run() (op by op on the CPU) enqueues with the chosen switches; nothing is left set outside it
    seen.length = 0;
    const [a, b] = [await tuned.run(x).data(), await plain.run(x).data()];
    expect(seen).toEqual(['1', '-']);
    expect(differing(a, b)).toBe(0);
    expect(switchValue('IRCONSTYLE_TEST_X')).toBeUndefined();
    await expect(captureForward(fn, x, { tune: { steps: -1 } })).rejects.toThrow(/tune.steps/);
    plain.dispose();
    tuned.dispose();
    x.dispose();
  });
});
