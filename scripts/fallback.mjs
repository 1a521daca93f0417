// What scripts/device-check.mjs does when a new CUDA kernel fails on the GPU machine: which switches send the failing
// ops back to their older paths for the rest of the run, and which benchmark families to measure again in safe mode.
// Plain ESM, no dependencies (tested in test/device-fallback.test.ts).

/**
 * The CUDA kernel paths that have a switch back to an older path (README: backends), and the ops whose default path
 * each changes. scripts/device-check.mjs sets the switches of every op with a failing case (no `env` of its own) for
 * the fixtures, graphs and benchmarks that follow, and all of them for its safe-mode rerun of a failed benchmark.
 */
export const KERNEL_SWITCHES = [
  { env: { IRCONSTYLE_PW_FWD: 'cublas' },
    ops: ['conv1x1_gate', 'conv1x1_gate_backward', 'ln_conv1x1', 'ln_conv1x1_gate', 'ln_conv1x1_gate_backward'] },
  { env: { IRCONSTYLE_PW_BWD: 'cublas' },
    ops: ['conv2d_backward', 'conv1x1_add_backward', 'conv1x1_gate_backward', 'ln_conv1x1_backward', 'ln_conv1x1_gate_backward'] },
  { env: { IRCONSTYLE_LN_FOLD: '0' }, ops: ['ln_conv1x1_backward', 'ln_conv1x1_gate_backward'] },
  { env: { IRCONSTYLE_GATE_BWD: 'two-kernel' }, ops: ['conv1x1_gate_backward', 'ln_conv1x1_gate_backward'] },
  { env: { IRCONSTYLE_LINEAR_FWD: 'cublas' }, ops: ['linear', 'conv1x1_add', 'ln_conv1x1'] },
  { env: { IRCONSTYLE_LINEAR_BWD: 'cublas' }, ops: ['linear_backward', 'conv1x1_add_backward', 'ln_conv1x1_backward'] },
  { env: { IRCONSTYLE_DWGATE_BWD: 'two-pass' }, ops: ['dwconv_gate_backward'] },
  { env: { IRCONSTYLE_THIN_CONV: '0' }, ops: ['conv2d', 'conv2d_backward'] },
  { env: { IRCONSTYLE_SPATIAL_GATE: '0' }, ops: ['spatial_gate', 'spatial_gate_backward', 'spatial_mix', 'spatial_mix_backward'] }, // read by lib/models/maxim_blocks.ts
];

/**
 * The switches for failing op cases: `failed` are results { op, name, ok } (cases with an `env` of their own are
 * skipped: they test the fallback itself). Returns { env, ops, unanswered } (the merged switches, the failing ops, and
 * those of them no switch covers: the safe-mode bench's unfused blocks are their only way around).
 */
export function kernelFallback(failed, cases) {
  const own = new Set(cases.filter((c) => c.env).map((c) => c.name));
  const ops = new Set(failed.filter((o) => !o.ok && !own.has(o.name)).map((o) => o.op));
  const env = {};
  for (const s of KERNEL_SWITCHES) if (s.ops.some((op) => ops.has(op))) Object.assign(env, s.env);
  const covered = new Set(KERNEL_SWITCHES.flatMap((k) => k.ops));
  return { env, ops: [...ops].sort(), unanswered: [...ops].filter((op) => !covered.has(op)).sort() };
}

/**
 * The families (nafnet, restormer, maxim) whose benchmark failed — an error, a non-finite loss — or that the bench
 * left for a fresh process after a failure (`notRun`); when the bench process died, every family without a step time
 * in what it had saved (`partial`).
 */
export function benchFailures(bench) {
  const fam = (m) => ['nafnet', 'restormer', 'maxim'].find((f) => m.includes(f));
  const bad = (o) => o.error || o.nonFinite;
  if (!bench || bench.skipped) return [];
  if (!bench.error) {
    return [...(bad(bench.ours) ? ['nafnet'] : []), ...(bench.others ?? []).filter(bad).map((o) => fam(o.model)),
      ...(bench.notRun ?? [])];
  }
  const p = bench.partial, done = new Set();
  for (const o of [...(p?.ours ? [{ ...p.ours, model: 'nafnet' }] : []), ...(p?.others ?? [])])
    if (o.msStep > 0 && !bad(o)) done.add(fam(o.model));
  return ['nafnet', 'restormer', 'maxim'].filter((f) => !done.has(f));
}
