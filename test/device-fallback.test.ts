// What the device check does when a new CUDA kernel fails on the GPU machine (scripts/fallback.mjs): the failing
// ops' switches for the rest of the run, and the benchmark families measured again in safe mode.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

type Case = { op: string; name: string; env?: Record<string, string> };
type Res = { op: string; name: string; ok: boolean };
type Trial = { name: string; ms: number | null; ok: boolean; note: string };
type Variant = { name: string; switches: Record<string, string> };
const { kernelFallback, benchFailures, benchRerun, promotions, tuneExclusions, KERNEL_SWITCHES } = (await import('../scripts/fallback.mjs' as string)) as {
  promotions(bench: unknown, excluded: Record<string, string>, variants: readonly Variant[]): { promote: string[]; keep: { name: string; why: string }[] };
  kernelFallback(failed: Res[], cases: Case[]): { env: Record<string, string>; ops: string[]; unanswered: string[] };
  tuneExclusions(opRes: Record<string, (Res & { harness?: boolean })[]>): Record<string, string>;
  benchFailures(bench: unknown): string[];
  benchRerun(bench: unknown): { families: string[]; safe: boolean; tuneOff: boolean };
  KERNEL_SWITCHES: { env: Record<string, string>; on: Record<string, string>; ops: string[]; tune?: boolean }[];
};
const { opCases } = (await import('../scripts/op-cases.mjs' as string)) as { opCases(): Case[] };

const cases = opCases();
const fail = (name: string): Res => {
  const c = cases.find((x) => x.name === name);
  if (!c) throw new Error(`no case ${name}`);
  return { op: c.op, name, ok: false };
};

describe('kernel fallback of the device check', () => {
  it('every switch names a variable the native or TypeScript sources read, and ops of the op table', () => {
    const dir = join(import.meta.dirname, '..', 'native', 'src', 'ops');
    const read = (d: string) => readdirSync(d, { recursive: true, withFileTypes: true }).filter((f) => f.isFile())
      .map((f) => readFileSync(join(f.parentPath, f.name), 'utf8')).join('\n');
    const src = read(dir) + read(join(import.meta.dirname, '..', 'lib')).replaceAll("'", '"');
    const ops = new Set(readFileSync(join(dir, 'ops.def'), 'utf8').match(/^OP\(\s*(\w+)/gm)!.map((l) => l.replace(/^OP\(\s*/, '')));
    expect(ops.size).toBeGreaterThan(50);
    for (const s of KERNEL_SWITCHES) {
      // the value the sources compare with: the opt-in one (`on`), or the off one of a switch whose default is on
      // (IRCONSTYLE_LN_FOLD, IRCONSTYLE_PERMUTE_TILE)
      const compared = Object.keys(s.on).length ? s.on : s.env;
      expect(Object.keys(s.on).every((k) => k in s.env)).toBe(true);
      for (const [k, v] of Object.entries(compared)) {
        expect(src, k).toMatch(new RegExp(`("|env\\.)${k}\\b`)); // env_is("…", …) or process.env.…
        expect(src, `${k}=${v}`).toContain(`"${v}"`);
      }
      for (const op of s.ops) expect(ops.has(op), op).toBe(true);
    }
  });

  it('a failing fused LayerNorm + 1x1 + gate backward keeps its LayerNorm backward apart', () => {
    const fb = kernelFallback([fail('ln_conv1x1_gate_backward:b [2,32,32,48]->2·48')], cases);
    expect(fb.env).toEqual({ IRCONSTYLE_LN_FOLD: '0' });
    expect(fb.ops).toEqual(['ln_conv1x1_gate_backward']);
    expect(fb.unanswered).toEqual([]);
  });

  it('a failing permute goes back to one-dim tile axes; a failing Linear has no switch to fall back on', () => {
    const perm = cases.find((c) => c.op === 'permute' && !c.env);
    expect(perm).toBeDefined();
    expect(kernelFallback([fail(perm!.name)], cases).env).toEqual({ IRCONSTYLE_PERMUTE_TILE: '1' });
    const fb = kernelFallback([fail('linear:[5,13,17,64]->128 bias'), { ...fail('linear:[16,256]->128 bias'), ok: true }], cases);
    expect(fb.env).toEqual({});
    expect(fb.unanswered).toEqual(['linear']);
  });

  it('passing cases, cases of a fallback path itself, and ops without a switch set nothing', () => {
    expect(kernelFallback([{ ...fail('dwconv_gate_backward:3x3 p1 bias [2,32,32,96]'), ok: true }], cases).env).toEqual({});
    // the fallback's own case failing says the fallback is broken, not the default path
    expect(kernelFallback([fail('ln_conv1x1_backward:b [2,32,32,48]->96 +acc IRCONSTYLE_LN_FOLD=0')], cases).ops).toEqual([]);
    const att = cases.find((c) => c.op === 'channel_attention');
    expect(att).toBeDefined();
    const fb = kernelFallback([fail(att!.name)], cases);
    expect(fb.env).toEqual({});
    expect(fb.unanswered).toEqual(['channel_attention']);
  });
});

describe("the trainer's kernel tuning on the GPU machine", () => {
  it('the switches marked `tune` are those the tuning variants set', async () => {
    const { TUNE_VARIANTS, TRIAL_VARIANTS } = await import('../lib/train/tune.js');
    const marked = KERNEL_SWITCHES.filter((k) => k.tune).flatMap((k) => Object.keys(k.on)).sort();
    expect(marked).toEqual([...new Set([...TUNE_VARIANTS, ...TRIAL_VARIANTS].flatMap((v) => Object.keys(v.switches ?? {})))].sort());
  });
  it('a kernel with a failing case in a pass that ran it is left out (its switch off); other failures leave it in', () => {
    const r = (op: string, ok: boolean, harness = false) => ({ op, name: op, ok, harness });
    expect(tuneExclusions({ simt: [r('ln_conv1x1', true)], own: [r('conv2d', true)] })).toEqual({});
    expect(tuneExclusions({ simt: [r('ln_conv1x1_gate_backward', false)] })).toEqual({ IRCONSTYLE_PW_SIMT: '0' });
    expect(tuneExclusions({ slide: [r('dwconv_gate', false)] })).toEqual({ IRCONSTYLE_SLIDE: 'loop' });
    // the own pass runs every non-solo opt-in at once: each tunable one of a failing op's is left out
    expect(tuneExclusions({ own: [r('conv2d_backward', false)] })).toEqual({ IRCONSTYLE_CUDNN_FIND: '0', IRCONSTYLE_GEMM_TUNE: '0' });
    expect(tuneExclusions({ own: [r('dwconv_gate_backward', false)] })).toEqual({ IRCONSTYLE_DWGATE_BWD: 'two-pass' });
    // a failure in the strict pass is the default path's (the fallback's business), a harness failure no kernel's
    expect(tuneExclusions({ strict: [r('dwconv_gate', false)], simt: [r('conv1x1_gate', false, true)] })).toEqual({});
  });
});

describe('benchmark families measured again in safe mode', () => {
  const good = { msStep: 70, imgPerS: 228 };
  it('families with an error or a non-finite loss', () => {
    expect(benchFailures({ ours: good, others: [{ model: 'constyle-restormer', ...good }, { model: 'constyle-maxim', error: 'E_CUDA: x' }] })).toEqual(['maxim']);
    expect(benchFailures({ ours: { ...good, nonFinite: true }, others: [] })).toEqual(['nafnet']);
    expect(benchFailures({ ours: good, others: [{ model: 'constyle-maxim', ...good }] })).toEqual([]);
    expect(benchFailures({ skipped: 'CUDA unavailable' })).toEqual([]);
    expect(benchFailures({ ours: { error: 'E_CUDA: x' }, others: [], notRun: ['restormer', 'maxim'] })).toEqual(['nafnet', 'restormer', 'maxim']);
  });
  it('after an A/B variant failed, the families it left unrun run again as they are (no safe mode)', () => {
    // an A/B error in NAFNet's variants: its own figures stand, Restormer and MAXIM were left unrun
    expect(benchRerun({ ours: { ...good, abError: 'E_CUDA: x' }, others: [], notRun: ['restormer', 'maxim'] }))
      .toEqual({ families: ['restormer', 'maxim'], safe: false, tuneOff: false });
    // the process died during Restormer's A/B (its figures were saved first)
    expect(benchRerun({ error: 'worker exited', partial: { ours: good, others: [{ model: 'constyle-restormer', ...good, abRunning: true }] } }))
      .toEqual({ families: ['maxim'], safe: false, tuneOff: false });
    // a family's own step failed, or the process died outside an A/B: safe mode
    expect(benchRerun({ ours: { error: 'E_CUDA: x' }, others: [], notRun: ['restormer', 'maxim'] }).safe).toBe(true);
    expect(benchRerun({ error: 'worker exited', partial: { ours: good, others: [] } })).toEqual({ families: ['restormer', 'maxim'], safe: true, tuneOff: false });
    expect(benchRerun({ ours: good, others: [{ model: 'constyle-maxim', ...good }] })).toEqual({ families: [], safe: true, tuneOff: false });
  });
  it('a failure while the kernel tuning ran: the family (and those after it) again as they are, tuned with the proven variants', () => {
    // the process died in NAFNet's tuning (its op-by-op figures saved, the graph-mode step not measured)
    expect(benchRerun({ error: 'worker exited', partial: { ours: { ...good, tuneRunning: true }, others: [] } }))
      .toEqual({ families: ['nafnet', 'restormer', 'maxim'], safe: false, tuneOff: true });
    // an error thrown there (a poisoned context): the same
    expect(benchRerun({ ours: { ...good, tuneRunning: true, error: 'E_CUDA: illegal address' }, others: [], notRun: ['restormer', 'maxim'] }))
      .toEqual({ families: ['nafnet', 'restormer', 'maxim'], safe: false, tuneOff: true });
  });
  it('the kernels on trial that this run proved: op cases passed and every tuning that tried them agreed', async () => {
    const { TRIAL_VARIANTS } = await import('../lib/train/tune.js');
    const t = (name: string, ok = true, note = ''): Trial => ({ name, ms: ok ? 90 : null, ok, note });
    const tune = (...trials: Trial[]) => ({ chosen: [], switches: {}, trials: [t('default'), ...trials], seconds: 1 });
    const bench = {
      ours: { ...good, tune: tune(t('pwSimt'), t('pwSimtMem'), t('slideBatch'), t('gemmTune', false, 'loss ce differs by 3e-2')),
        infer512Graph: { tune: tune(t('pwSimt', false, 'failed: E_CUDA: illegal address')) } },
      others: [{ model: 'constyle-maxim', ...good, tune: tune(t('slideBatch'), t('cudnnFind', false, 'skipped: the tuning\'s 45 s (maxSeconds) are spent')) }],
    };
    const p = promotions(bench, {}, TRIAL_VARIANTS);
    expect(p.promote).toEqual(['pwSimtMem', 'slideBatch']);
    expect(Object.fromEntries(p.keep.map((k) => [k.name, k.why]))).toEqual({
      pwSimt: 'constyle-nafnet 512² inference: failed: E_CUDA: illegal address',
      gemmTune: 'constyle-nafnet training: loss ce differs by 3e-2',
      cudnnFind: 'no tuning tried it', // (skipped for time only)
      mdtaBlockDiag: 'no tuning tried it', // (no Restormer in this bench)
    });
    // a kernel whose op cases failed stays on trial whatever its tuning said; so does every one when the bench died early
    expect(promotions(bench, { IRCONSTYLE_SLIDE: '0' }, TRIAL_VARIANTS).keep.find((k) => k.name === 'slideBatch')?.why)
      .toBe('a case of its kernel failed');
    expect(promotions({ error: 'worker exited', partial: null }, {}, TRIAL_VARIANTS).promote).toEqual([]);
  });
  it('a bench process that died: every family without a step time in what it saved', () => {
    expect(benchFailures({ error: 'worker exited', partial: null })).toEqual(['nafnet', 'restormer', 'maxim']);
    expect(benchFailures({ error: 'worker exited', partial: { ours: good, others: [] } })).toEqual(['restormer', 'maxim']);
    expect(benchFailures({ error: 'worker exited', partial: { ours: good, others: [{ model: 'constyle-restormer', ...good }] } })).toEqual(['maxim']);
  });
});
