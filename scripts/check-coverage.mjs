// After `vitest run`: every op of ops.def must have run in some test, and every differentiable op's backward
// must have been verified by a finite-difference gradcheck (records written by test/setup.ts).
// `--clean` removes old records (run before the tests).
import { readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';

const dir = '.test-coverage';
if (process.argv.includes('--clean')) {
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
const ops = [];
for (const line of readFileSync('native/src/ops/ops.def', 'utf8').split('\n')) {
  const m = /^OP\((\w+),\s*\d+,\s*\d+,\s*([01])\)/.exec(line.trim());
  if (m) ops.push({ name: m[1], diff: m[2] === '1' });
}
const ran = new Set();
const graded = new Set();
if (existsSync(dir))
  for (const f of readdirSync(dir)) {
    const r = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8'));
    r.ran.forEach((n) => ran.add(n));
    r.gradChecked.forEach((n) => graded.add(n));
  }
const notRun = ops.filter((o) => !ran.has(o.name)).map((o) => o.name);
const notGraded = ops.filter((o) => o.diff && !graded.has(o.name)).map((o) => o.name);
console.log(`op coverage: ${ops.length - notRun.length}/${ops.length} ops ran in tests; ` +
  `${ops.filter((o) => o.diff).length - notGraded.length}/${ops.filter((o) => o.diff).length} differentiable ops gradient-checked`);
if (notRun.length) console.error(`  never run by any test: ${notRun.join(', ')}`);
if (notGraded.length) console.error(`  no finite-difference gradient check: ${notGraded.join(', ')}`);
process.exit(notRun.length || notGraded.length ? 1 : 0);
