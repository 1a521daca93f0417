// Golden parity against the official PyTorch code (test/fixtures, tolerances of fixtures/README.md).
import { describe, expect, it } from 'vitest';
import { runParity } from '../lib/parity/run.js';

const cases = ['constyle', 'constyle_nafnet', 'nafnet', 'irconstyle_step', 'constyle_restormer', 'restormer', 'constyle_maxim', 'maxim'];

describe('golden fixtures', () => {
  for (const name of cases) {
    it(name, async () => {
      const { report } = await runParity(`test/fixtures/${name}.safetensors`);
      const bad = report.failures().map((c) => `${c.name}: ${c.err} > ${c.tol}`);
      expect(bad, bad.join('\n')).toEqual([]);
      expect(report.checks.length).toBeGreaterThan(10);
    }, 120_000);
  }
});
