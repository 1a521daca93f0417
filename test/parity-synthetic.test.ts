// The parity tool is driven only by fixture metadata: fixtures of other sizes, batch sizes, seeds and block
// configurations (written here in the official format from a reference run of this engine) pass, and a
// perturbed one fails.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors, type StWriteEntry } from '../lib/io/safetensors.js';
import { buildModel } from '../lib/models/registry.js';
import { setInitSeed } from '../lib/nn/init.js';
import { nhwcToNchw } from '../lib/nn/layout.js';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { tidy } from '../lib/tensor/scope.js';
import { backward } from '../lib/autograd/tape.js';
import { l1Loss } from '../lib/ops/loss.js';
import { officialGrads } from '../lib/parity/fixture.js';
import { runParity } from '../lib/parity/run.js';
import { randArray } from './helpers.js';

async function nchw(t: Tensor): Promise<Float32Array> {
  const [n, h, w, c] = t.shape as number[];
  return nhwcToNchw(await t.f32(), n!, h!, w!, c!);
}

/** A restoration_train_step fixture from this engine (values perturbed by `bump` in out.restored[0]). */
async function makeFixture(model: string, config: Record<string, unknown>, N: number, H: number, W: number, seed: number, bump = 0): Promise<string> {
  setInitSeed(seed);
  const m = buildModel(model, { ...config, constyle: 'none' });
  // Give NAFBlock β/γ non-zero values so every path carries gradient, as the official fixtures do.
  const sd = await m.stateDict();
  for (const [k, v] of sd) if (/\.(beta|gamma)$/.test(k)) v.data.set(randArray(v.data.length, seed + k.length, -0.5, 0.5));
  m.loadStateDict(sd);
  m.train();
  const e: Record<string, StWriteEntry> = {};
  for (const [k, v] of sd) e[`param.${k}`] = { dtype: 'F32', shape: v.shape, data: v.data };
  const img = (s: number) => randArray(N * H * W * 3, s, 0, 1);
  const lq = tensor(img(seed + 1), [N, H, W, 3]);
  const gt = tensor(img(seed + 2), [N, H, W, 3]);
  e['input.lq'] = { dtype: 'F32', shape: [N, 3, H, W], data: await nchw(lq) };
  e['input.gt'] = { dtype: 'F32', shape: [N, 3, H, W], data: await nchw(gt) };
  const extra: Tensor[] = [];
  const restorer = 'restore' in m ? (m as unknown as { restore(x: Tensor, q: Tensor, f: Tensor[]): Tensor }) : null;
  if (restorer) {
    const shapes: [string, number[]][] = [['q1', [N, 128]], ['fea0', [N, H / 2, W / 2, 32]], ['fea1', [N, H / 4, W / 4, 64]], ['fea2', [N, H / 8, W / 8, 128]]];
    for (const [i, [name, s]] of shapes.entries()) {
      const t = tensor(randArray(s.reduce((a, b) => a * b), seed + 10 + i), s);
      t.requiresGrad = true;
      extra.push(t);
      e[`input.${name}`] = s.length === 4 ? { dtype: 'F32', shape: [s[0]!, s[3]!, s[1]!, s[2]!], data: await nchw(t) } : { dtype: 'F32', shape: s, data: await t.f32() };
    }
  }
  const { y, loss } = tidy(() => {
    const y = restorer ? restorer.restore(lq, extra[0]!, extra.slice(1)) : (m as unknown as { forward(x: Tensor): Tensor }).forward(lq);
    return { y, loss: l1Loss(y, gt) };
  });
  const out = await nchw(y);
  e['out.eval.restored'] = { dtype: 'F32', shape: [N, 3, H, W], data: out.slice() };
  out[0]! += bump;
  e['out.restored'] = { dtype: 'F32', shape: [N, 3, H, W], data: out };
  e['loss.l1'] = { dtype: 'F32', shape: [1], data: await loss.f32() };
  backward(loss);
  for (const [k, g] of await officialGrads(m)) e[`grad.${k}`] = { dtype: 'F32', shape: sd.get(k)!.shape, data: g };
  for (const [i, n] of ['q1', 'fea0', 'fea1', 'fea2'].entries())
    if (extra[i]) e[`grad.input.${n}`] = { dtype: 'F32', shape: e[`input.${n}`]!.shape, data: extra[i]!.rank === 4 ? await nchw(extra[i]!.grad!) : await extra[i]!.grad!.f32() };
  for (const t of [y, loss, lq, gt, ...extra]) t.dispose();
  m.dispose();
  const meta = { config: JSON.stringify({ kind: 'restoration_train_step', model, config, N, H, W, seed }) };
  const path = join(fixtureDir, `${model}-${seed}.safetensors`);
  writeFileSync(path, writeSafetensors(e, meta));
  return path;
}

const fixtureDir = mkdtempSync(join(tmpdir(), 'irc-parity-'));
afterAll(() => rmSync(fixtureDir, { recursive: true, force: true }));

describe('parity tool on unseen fixtures', () => {
  it('NAFNet with another width, depth, batch and an odd size passes; a perturbed output fails', async () => {
    const cfg = { width: 6, middle: 2, enc: [2, 1], dec: [1, 2] };
    const ok = await runParity(await makeFixture('NAFNet', cfg, 3, 21, 10, 77));
    expect(ok.report.failures()).toEqual([]);
    expect(ok.report.checks.filter((c) => c.group === 'grad').length).toBeGreaterThan(50);
    const bad = await runParity(await makeFixture('NAFNet', cfg, 3, 21, 10, 77, 0.05));
    expect(bad.report.failures().map((c) => c.name)).toEqual(['out.restored']);
  });

  it('ConStyle NAFNet with another dim, blocks, batch and size passes', async () => {
    const cfg = { dim: 12, left: [2, 1, 1], bottom: 2, right: [1, 1, 2] };
    const r = await runParity(await makeFixture('ConStyleNAFNet', cfg, 1, 24, 16, 5));
    expect(r.report.failures()).toEqual([]);
    expect(r.report.checks.some((c) => c.name === 'grad.input.fea2')).toBe(true);
  });

  const others: [string, Record<string, unknown>, number, number, number][] = [
    ['ConStyleRestormer', { dim: 8, left: [1, 2, 1], bottom: 1, right: [1, 1, 2], refine: 2, heads: [1, 2, 2, 4] }, 2, 16, 24],
    ['Restormer', { dim: 8, blocks: [1, 1, 2, 1], refine: 1, heads: [1, 1, 2, 2] }, 1, 24, 16],
    ['ConStyleMaxim', { features: 8, bottom: 2, block_hr: [2, 2], block_lr: [2, 2], grid_hr: [2, 2], grid_lr: [2, 2] }, 1, 32, 48],
    ['Maxim', { features: 8, block_hr: [2, 2], block_lr: [2, 2], grid_hr: [2, 2], grid_lr: [2, 2] }, 2, 32, 16],
  ];
  for (const [model, cfg, n, h, w] of others) {
    it(`${model} with another configuration, batch and size passes`, async () => {
      const r = await runParity(await makeFixture(model, cfg, n, h, w, 11 + n));
      expect(r.report.failures()).toEqual([]);
      expect(r.report.checks.filter((c) => c.group === 'grad').length).toBeGreaterThan(20);
    });
  }
});
