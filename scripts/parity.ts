// npm run parity -- <fixture.safetensors> [...]: runs golden fixtures through the public API, prints the
// relative error of every compared tensor by group, and exits non-zero when any is over tolerance.
import { runParity } from '../lib/parity/run.js';
import { isIrcError } from '../lib/errors.js';

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const verbose = process.argv.includes('--verbose');
if (!files.length) {
  console.error('usage: npm run parity -- <fixture.safetensors> [more fixtures] [--verbose]');
  process.exit(2);
}
let failed = 0;
for (const file of files) {
  try {
    const t0 = Date.now();
    const { kind, report } = await runParity(file);
    console.log(`\n${file} (${kind}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    for (const g of ['out', 'loss', 'grad', 'after'] as const) {
      const cs = report.checks.filter((c) => c.group === g);
      if (!cs.length) continue;
      const worst = cs.reduce((a, b) => (b.err > a.err || Number.isNaN(b.err) ? b : a));
      const bad = cs.filter((c) => !(c.err <= c.tol));
      console.log(`  ${g.padEnd(5)} ${String(cs.length).padStart(4)} tensors  max rel err ${worst.err.toExponential(2)} (${worst.name})  ${bad.length ? `FAIL ${bad.length}` : 'ok'}`);
      for (const c of verbose ? cs : bad) console.log(`      ${c.err <= c.tol ? '   ' : 'BAD'} ${c.err.toExponential(3)} <= ${c.tol}  ${c.name}`);
    }
    if (!report.ok) failed++;
    console.log(report.ok ? '  PASS' : '  FAIL');
  } catch (e) {
    failed++;
    console.log(`\n${file}\n  ERROR ${isIrcError(e) ? `${e.code}: ` : ''}${(e as Error).message}`);
  }
}
process.exit(failed ? 1 : 0);
