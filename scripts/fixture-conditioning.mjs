// node scripts/fixture-conditioning.mjs [fixture.safetensors] [--seeds n] [--ulps k] [--seed0 s]
//
// How much float32 rounding alone moves a golden fixture's checks: every parameter and input image value of the
// fixture is moved by k units in the last place (each one up, down or not at all, at random; k = 1 by default), the
// fixture is run on this machine's backend as usual, and each check's relative error against the unchanged reference
// values is reported beside the unperturbed run's, for n seeds (s + 1 .. s + n; s = 1000 by default). A check that an ulp of noise in the inputs alone can
// push past its tolerance is ill-conditioned at that tolerance: any float32 engine with another summation order may
// miss it (BENCHMARKS.md, tenth session: constyle.safetensors' loss.upstream and its stage-4 gradient slice).
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const load = (p) => import(pathToFileURL(join(ROOT, 'dist', 'lib', p)).href);
const [{ loadSafetensors, saveSafetensors, toFloat32 }, { runParity }] = await Promise.all([load('io/safetensors.js'), load('parity/run.js')]);

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : dflt);
const file = args.find((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--'))) ?? join(ROOT, 'test', 'fixtures', 'constyle.safetensors');
const seeds = opt('seeds', 12), ulps = opt('ulps', 1), seed0 = opt('seed0', 1000);
if (!(seeds >= 1) || !(ulps >= 1)) throw new Error(`--seeds and --ulps must be >= 1, got ${seeds} and ${ulps}`);

const src = loadSafetensors(file);
const dir = mkdtempSync(join(tmpdir(), 'irc-cond-'));
const perturbed = join(dir, basename(file));
// an irconstyle_train_step fixture reads its ConStyle weights from the constyle.safetensors beside it (unperturbed)
const sibling = join(dirname(file), 'constyle.safetensors');
if (basename(file) !== 'constyle.safetensors' && existsSync(sibling)) copyFileSync(sibling, join(dir, 'constyle.safetensors'));

function perturb(seed) {
  let a = seed >>> 0;
  const rnd = () => (a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 4294967296;
  const out = {};
  for (const [name, e] of src.tensors) {
    if (!(name.startsWith('param.') || name === 'input.lq' || name === 'input.gt')) {
      out[name] = { dtype: e.dtype, shape: e.shape, data: e.data };
      continue;
    }
    const v = Float32Array.from(toFloat32(e));
    const bits = new Uint32Array(v.buffer);
    for (let i = 0; i < v.length; i++) {
      if (v[i] === 0 || !Number.isFinite(v[i])) continue;
      const r = rnd();
      if (r < 1 / 3) bits[i] += ulps;  // the magnitude up (same sign)
      else if (r < 2 / 3) bits[i] -= ulps;
    }
    out[name] = { dtype: 'F32', shape: e.shape, data: v };
  }
  saveSafetensors(perturbed, out, src.metadata);
}

try {
  const base = (await runParity(file)).report.checks;
  const runs = [];
  for (let s = 1; s <= seeds; s++) {
    perturb(seed0 + s);
    runs.push((await runParity(perturbed)).report.checks);
  }
  const worst = (c) => runs.map((r) => r.find((x) => x.name === c.name)?.err ?? NaN);
  const rows = base.map((c) => {
    const e = worst(c).sort((x, y) => x - y);
    return { ...c, median: e[e.length >> 1], max: e[e.length - 1], misses: e.filter((x) => !(x <= c.tol)).length };
  }).sort((x, y) => y.max / y.tol - x.max / x.tol);
  const f = (x) => x.toExponential(2);
  console.log(`${file}: each parameter and input value moved by ${ulps} ulp at random, ${seeds} seeds (${process.env.IRCONSTYLE_BACKEND ?? 'default'} backend)`);
  console.log(`  ${'check'.padEnd(48)} ${'tol'.padStart(8)} ${'as is'.padStart(9)} ${'median'.padStart(9)} ${'max'.padStart(9)}  seeds past tol`);
  for (const r of rows.slice(0, 12))
    console.log(`  ${r.name.padEnd(48)} ${f(r.tol).padStart(8)} ${f(r.err).padStart(9)} ${f(r.median).padStart(9)} ${f(r.max).padStart(9)}  ${r.misses}/${seeds}`);
  const fragile = rows.filter((r) => r.misses > 0);
  console.log(fragile.length ? `checks that ${ulps} ulp of input noise pushes past their tolerance: ${fragile.map((r) => r.name).join(', ')}`
    : `no check goes past its tolerance under ${ulps} ulp of input noise`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
