// The fused block ops against the block forwards composed of separate ops (scripts/unfused-blocks.mjs, the A/B
// patch bench:gpu uses): whole tiny models give the same outputs and parameter gradients either way.
import { describe, expect, it } from 'vitest';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { createModel } from '../lib/models/catalog.js';
import { buildModel } from '../lib/models/registry.js';
import { setInitSeed } from '../lib/nn/init.js';
import { runOp } from '../lib/ops/run.js';
import { mean } from '../lib/ops/elementwise.js';
import { backward } from '../lib/autograd/tape.js';
import type { Module } from '../lib/nn/module.js';
import { differing, relErr, withEmulation } from './helpers.js';
import { setKeepOnCpu } from '../lib/ops/fused.js';
import { nafnetFusion } from '../lib/models/nafnet.js';

// the A/B patch of scripts/unfused-blocks.mjs (a plain ESM script), loading the library's TypeScript sources
type AB = { patch(): void; restore(): void };
const { unfusedBlocks } = (await import('../scripts/unfused-blocks.mjs' as string)) as {
  unfusedBlocks(root: string, load: (p: string) => Promise<unknown>): Promise<AB>;
};

type Net = Module & { forward(...x: Tensor[]): Tensor };

async function run(name: string, make = () => createModel(name, { constyle: 'inference' })): Promise<{ y: Float32Array; grads: Map<string, Float32Array> }> {
  setInitSeed(5);
  const m = make() as Net;
  // non-zero β / γ so that every NAFBlock branch counts
  for (const [k, p] of m.namedParameters()) if (/(^|\\.)(beta|gamma)$/.test(k)) runOp('fill_', [p], [0.25]);
  for (const p of m.parameters()) p.requiresGrad = true;
  const x = tensor(new Float32Array(2 * 32 * 32 * 3).map((_, i) => Math.sin(0.37 * i) * 0.5 + 0.5), [2, 32, 32, 3]);
  const y = m.forward(x);
  const out = (await y.data()) as Float32Array;
  backward(mean(y));
  const grads = new Map<string, Float32Array>();
  for (const [k, p] of m.namedParameters()) if (p.grad) grads.set(k, Float32Array.from((await p.grad.data()) as Float32Array));
  m.dispose();
  return { y: Float32Array.from(out), grads };
}

describe('fused block ops vs the separate-op block forwards', () => {
  for (const name of ['constyle-nafnet-tiny', 'constyle-restormer-tiny', 'constyle-maxim-tiny']) {
    it(`${name}: same outputs and gradients`, async () => {
      const ab = await unfusedBlocks('..', (p: string) => import(`../lib/${p}`));
      const fused = await run(name);
      ab.patch();
      let plain;
      try {
        plain = await run(name);
      } finally {
        ab.restore();
      }
      // and with the fused ops recomputing in their backward, as on CUDA (the CPU keeps their intermediates by
      // default); then also through the CUDA kernels' own code on the host (IRCONSTYLE_EMULATE): the one-pass gate
      // backward (NAFNet, Restormer) and MAXIM's gating units as one op (spatial_gate's tiles, with the opt-in
      // IRCONSTYLE_SPATIAL_GATE=1), wherever the shapes take them
      const was = setKeepOnCpu(false);
      let recomputed, emulated, lnApart, simt;
      try {
        recomputed = await run(name);
        process.env.IRCONSTYLE_SPATIAL_GATE = '1';
        emulated = await withEmulation(name.includes('maxim') ? 'spatial_gate' : 'dwgate_bwd', () => run(name));
        // the SIMT pointwise kernel (IRCONSTYLE_PW_SIMT=1) and the batched depthwise kernels (IRCONSTYLE_SLIDE=batch)
        // wherever the model's shapes take them
        simt = await withEmulation('pw_simt,slide', () => run(name));
        // the NAFBlock's LayerNorm + 1x1 pairs and its SCA scale as separate ops, the other fused ops kept (nafnetFusion)
        if (name.includes('nafnet')) {
          nafnetFusion.lnConv = false;
          nafnetFusion.scaleInConv = false; // and the SCA scale as its own pass before conv3
          try {
            lnApart = await run(name);
          } finally {
            nafnetFusion.lnConv = nafnetFusion.scaleInConv = true;
          }
        }
      } finally {
        delete process.env.IRCONSTYLE_SPATIAL_GATE;
        setKeepOnCpu(was);
      }
      // a gradient that is zero in exact arithmetic (a Linear bias before a train-mode BatchNorm) is rounding noise
      // on both sides: it must stay noise (tiny against the largest gradient); the others are compared relative to
      // themselves, with a floor relative to the largest
      const norm = (g: Float32Array) => Math.sqrt(g.reduce((a, v) => a + v * v, 0));
      const scale = [...plain.grads.values()].reduce((m, g) => Math.max(m, norm(g)), 0);
      for (const r of [fused, recomputed, emulated, simt, ...(lnApart ? [lnApart] : [])]) {
        expect(relErr(r.y, plain.y)).toBeLessThanOrEqual(1e-5);
        expect([...r.grads.keys()].sort()).toEqual([...plain.grads.keys()].sort());
        for (const [k, g] of r.grads) {
          if (norm(plain.grads.get(k)!) < 1e-6 * scale) expect(norm(g), k).toBeLessThan(1e-6 * scale);
          else expect(relErr(g, plain.grads.get(k)!, 1e-4 * scale), k).toBeLessThanOrEqual(1e-4);
        }
      }
    });
  }
});

describe('the opt-in CUDA kernels in a whole model, their code run on the host', () => {
  it('ConStyle NAFNet at the paper width (48; one block per level): the SIMT pointwise and batched depthwise kernels', async () => {
    // IRCONSTYLE_EMULATE=pw_simt,slide, as IRCONSTYLE_PW_SIMT=1 IRCONSTYLE_SLIDE=batch run on CUDA (the tiny models'
    // widths are below the SIMT kernel's column counts): the same outputs and gradients as the CPU path, to rounding
    const make = () => buildModel('ConStyleNAFNet', { dim: 48, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], constyle: 'inference' });
    const was = setKeepOnCpu(false);  // the fused backwards recompute, as on CUDA
    let cpu, simt;
    try {
      cpu = await run('paper width', make);
      simt = await withEmulation('pw_simt,slide', () => run('paper width', make));
    } finally {
      setKeepOnCpu(was);
    }
    expect(relErr(simt.y, cpu.y)).toBeLessThanOrEqual(1e-5);
    const norm = (g: Float32Array) => Math.sqrt(g.reduce((a, v) => a + v * v, 0));
    const scale = [...cpu.grads.values()].reduce((m, g) => Math.max(m, norm(g)), 0);
    let differ = 0;
    for (const [k, g] of simt.grads) {
      const ref = cpu.grads.get(k)!;
      expect(relErr(g, ref, 1e-4 * scale), k).toBeLessThanOrEqual(1e-4);
      differ += differing(g, ref);
    }
    expect(differ, 'the kernels ran (some gradient bits differ)').toBeGreaterThan(0);
  });
});
