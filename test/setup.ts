// Per test file: records which ops ran (native submission counters) and which ops' backward was verified by a
// finite-difference gradcheck; scripts/check-coverage.mjs checks the union against ops.def after the run.
import { afterAll } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { native } from '../lib/native/loader.js';
import { gradChecked } from './helpers.js';

const before = native.opCounts();

afterAll(() => {
  const names = native.info().ops;
  const after = native.opCounts();
  const ran = names.filter((_, i) => after[i]! > before[i]!);
  mkdirSync('.test-coverage', { recursive: true });
  writeFileSync(`.test-coverage/${randomUUID()}.json`, JSON.stringify({ ran, gradChecked: [...gradChecked] }));
});
