// npm run parity -- <fixture.safetensors> [...] [--verbose] [--fused]: runs golden fixtures through the public API,
// prints the relative error of every group, and exits non-zero when any tensor is over tolerance. --fused: the fused
// ops that recompute in their backward run as on CUDA (setKeepOnCpu(false)) instead of the CPU's separate ops.
import { printParity } from '../lib/parity/print.js';
import { setKeepOnCpu } from '../lib/ops/fused.js';

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (!files.length) {
  console.error('usage: npm run parity -- <fixture.safetensors> [more fixtures] [--verbose] [--fused]');
  process.exit(2);
}
if (process.argv.includes('--fused')) setKeepOnCpu(false);
process.exitCode = (await printParity(files, process.argv.includes('--verbose'))) ? 1 : 0;
