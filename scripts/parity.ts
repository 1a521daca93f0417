// npm run parity -- <fixture.safetensors> [...] [--verbose]: runs golden fixtures through the public API,
// prints the relative error of every group, and exits non-zero when any tensor is over tolerance.
import { printParity } from '../lib/parity/print.js';

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (!files.length) {
  console.error('usage: npm run parity -- <fixture.safetensors> [more fixtures] [--verbose]');
  process.exit(2);
}
process.exitCode = (await printParity(files, process.argv.includes('--verbose'))) ? 1 : 0;
