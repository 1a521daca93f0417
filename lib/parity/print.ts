// Prints parity reports (used by `npm run parity` and `irconstyle parity`).
import { runParity } from './run.js';
import { isIrcError } from '../errors.js';

/** Runs each fixture, prints every group's worst relative error; returns the number of failed fixtures. */
export async function printParity(files: string[], verbose = false, out: (s: string) => void = console.log): Promise<number> {
  let failed = 0;
  for (const file of files) {
    try {
      const t0 = Date.now();
      const { kind, report } = await runParity(file);
      out(`\n${file} (${kind}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      for (const g of ['out', 'loss', 'grad', 'after'] as const) {
        const cs = report.checks.filter((c) => c.group === g);
        if (!cs.length) continue;
        const worst = cs.reduce((a, b) => (b.err > a.err || Number.isNaN(b.err) ? b : a));
        const bad = cs.filter((c) => !(c.err <= c.tol));
        out(`  ${g.padEnd(5)} ${String(cs.length).padStart(4)} tensors  max rel err ${worst.err.toExponential(2)} (${worst.name})  ${bad.length ? `FAIL ${bad.length}` : 'ok'}`);
        for (const c of verbose ? cs : bad) out(`      ${c.err <= c.tol ? '   ' : 'BAD'} ${c.err.toExponential(3)} <= ${c.tol}  ${c.name}`);
      }
      if (!report.ok) failed++;
      out(report.ok ? '  PASS' : '  FAIL');
    } catch (e) {
      failed++;
      out(`\n${file}\n  ERROR ${isIrcError(e) ? `${e.code}: ` : ''}${(e as Error).message}`);
    }
  }
  return failed;
}
