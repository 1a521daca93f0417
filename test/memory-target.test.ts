// Issue 4's peak-memory target (a training step holds at most half of PyTorch's peak) guarded without a GPU:
// scripts/memory-model.mjs replays CUDA's allocation intervals on the CPU (it matched every peak of run 9 on the H100
// to the MiB) and predicts the paper-size step. ConStyle MAXIM's is the one near the line: 6,049 MiB against the
// 12,998 MiB PyTorch measured beside it in run 9 (NAFNet and Restormer: 0.39 and 0.36 of theirs).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const PYTORCH_MAXIM_MIB = 12998; // run 9, call 3: torch.cuda.max_memory_allocated of the same step (BENCHMARKS.md)

describe('peak memory of a training step, predicted on the CPU', () => {
  it('ConStyle MAXIM b16 at 128² holds at most half of PyTorch\'s peak', () => {
    // a process of its own (the model sets IRCONSTYLE_CPU_QUEUE_DEPTH=1 before the addon loads), on the built library
    // under dist/ (npm run build:ts after a change to lib/)
    const out = execFileSync(process.execPath, [join(ROOT, 'scripts', 'memory-model.mjs'), '--models', 'constyle-maxim', '--no-checkpoint'],
      { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
    const m = /constyle-maxim: b2 (\d+) MiB, b4 (\d+) MiB → b16 (\d+) MiB/.exec(out);
    expect(m, out).not.toBeNull();
    const [b2, b4, b16] = m!.slice(1).map(Number) as [number, number, number];
    expect(b2).toBeLessThan(b4);
    expect(b16).toBeGreaterThan(4000); // (a model that measured nothing would pass the bound below)
    expect(b16).toBeLessThanOrEqual(PYTORCH_MAXIM_MIB / 2);
  }, 300_000);
});
