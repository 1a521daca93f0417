// Kernel-time profiles: per op and split by shapes.
import { describe, expect, it } from 'vitest';
import { profileOps, formatProfile } from '../lib/native/profile.js';
import { conv2d } from '../lib/ops/conv.js';
import { native } from '../lib/native/loader.js';
import { randTensor } from './helpers.js';

describe('profileOps', () => {
  it('counts each call once per op, and by shape splits the calls of one op by their shapes', async () => {
    const a = randTensor([1, 6, 5, 4], 1);
    const b = randTensor([2, 3, 3, 4], 2);
    const w = randTensor([3, 3, 4, 8], 3);
    const run = async () => {
      const outs = [conv2d(a, w, null, { pad: 1 }), conv2d(a, w, null, { pad: 1 }), conv2d(b, w, null, { pad: 1 })];
      await Promise.all(outs.map((o) => o.data()));
      for (const o of outs) o.dispose();
    };
    const perOp = await profileOps(run);
    expect(perOp.find((r) => r.op === 'conv2d')?.calls).toBe(3);
    expect(formatProfile(perOp)).toContain('conv2d');
    expect(native.profileShapes()).toEqual([]); // shape keys only when asked for (they cost host time per op)
    const byShape = await profileOps(run, { byShape: true });
    const conv = byShape.filter((r) => r.op.startsWith('conv2d '));
    expect(conv.map((r) => [r.op, r.calls]).sort()).toEqual([
      ['conv2d [1, 6, 5, 4] -> [1, 6, 5, 8]', 2],
      ['conv2d [2, 3, 3, 4] -> [2, 3, 3, 8]', 1],
    ]);
    for (const r of conv) expect(r.ms).toBeGreaterThanOrEqual(0);
    for (const t of [a, b, w]) t.dispose();
  });
});
