// The general restoration network: every named Process Module and a user-supplied block train one step.
import { describe, expect, it } from 'vitest';
import { restorationNetwork, type ProcessName } from '../lib/models/general.js';
import { IRConStyleTrainer } from '../lib/train/irconstyle.js';
import { Module } from '../lib/nn/module.js';
import { Conv2d } from '../lib/nn/layers.js';
import { add } from '../lib/ops/elementwise.js';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { noGrad } from '../lib/autograd/node.js';
import { tidy } from '../lib/tensor/scope.js';
import { randArray } from './helpers.js';

const small = { dim: 8, left: [1, 1, 1] as [number, number, number], bottom: 1, right: [1, 1, 1] as [number, number, number], K: 8 };

class Residual extends Module {
  readonly conv: Conv2d;
  constructor(c: number) {
    super();
    this.conv = this.child('conv', new Conv2d(c, c, 3));
  }
  forward(x: Tensor): Tensor {
    return add(x, this.conv.forward(x));
  }
}

async function trainOnce(net: ReturnType<typeof restorationNetwork>): Promise<number> {
  const tr = new IRConStyleTrainer(net);
  const lq = tensor(randArray(2 * 32 * 32 * 3, 1, 0, 1), [2, 32, 32, 3]);
  const gt = tensor(randArray(2 * 32 * 32 * 3, 2, 0, 1), [2, 32, 32, 3]);
  const l = await tr.step(lq, gt);
  tr.dispose();
  for (const t of [lq, gt]) t.dispose();
  return l.total;
}

describe('restorationNetwork', () => {
  for (const process of ['nafnet', 'restormer', 'maxim', 'conv'] as ProcessName[]) {
    it(`process '${process}' builds with official template names and trains a step`, async () => {
      const net = restorationNetwork({ process, ...small });
      const names = net.namedParameters().map((e) => e[0]);
      expect(names.some((n) => n.startsWith('Process_Module_l1.0.'))).toBe(true);
      expect(names).toContain('local_fusion.weight');
      expect(names.some((n) => n.startsWith('ConStyle.encoder_k.'))).toBe(true);
      expect(Number.isFinite(await trainOnce(net))).toBe(true);
      net.eval();
      const y = noGrad(() => tidy(() => net.forward(tensor(randArray(32 * 32 * 3, 3, 0, 1), [1, 32, 32, 3]))));
      expect(y.shape).toEqual([1, 32, 32, 3]);
      y.dispose();
      net.dispose();
    });
  }

  it('accepts a user-supplied block factory', async () => {
    const net = restorationNetwork({ process: (c) => new Residual(c), ...small });
    expect(net.namedParameters().some(([n]) => n === 'Process_Module_bottom.0.conv.weight')).toBe(true);
    expect(Number.isFinite(await trainOnce(net))).toBe(true);
    net.dispose();
  });

  it('rejects an unknown process name', () => {
    expect(() => restorationNetwork({ process: 'unet' as ProcessName })).toThrowError(/unknown process 'unet'/);
  });
});

describe('input-size rules', () => {
  it('padToMultiple reflect-pads and crops back; forwardAnySize runs any size', async () => {
    const { padToMultiple, forwardAnySize } = await import('../lib/infer/pad.js');
    const x = tensor(Float32Array.from({ length: 1 * 5 * 3 * 1 }, (_, i) => i), [1, 5, 3, 1]);
    const p = padToMultiple(x, 4);
    expect(p.x.shape).toEqual([1, 8, 4, 1]);
    const d = await p.x.data();
    // Row 5 mirrors row 3 (no edge repetition); column 3 mirrors column 1.
    expect(d[5 * 4 + 0]).toBe(3 * 3 + 0);
    expect(d[0 * 4 + 3]).toBe(1);
    expect(Array.from(await p.crop(p.x).data())).toEqual(Array.from(await x.data()));
    expect(() => padToMultiple(x, 16)).toThrowError(/too small to reflect-pad/);
    const net = restorationNetwork({ process: 'conv', ...small, constyle: 'inference' }).eval();
    const img = tensor(randArray(1 * 20 * 27 * 3, 4, 0, 1), [1, 20, 27, 3]);
    expect(() => noGrad(() => net.forward(img))).toThrowError(/multiples of 8, got 20×27/);
    const y = noGrad(() => tidy(() => forwardAnySize(net, img)));
    expect(y.shape).toEqual([1, 20, 27, 3]);
    for (const t of [x, p.x, img, y]) t.dispose();
    net.dispose();
  });
});
