// What scripts/device-check.mjs does when a new CUDA kernel fails on the GPU machine: which switches send the failing
// ops back to their older paths for the rest of the run, and which benchmark families to measure again in safe mode.
// Plain ESM, no dependencies (tested in test/device-fallback.test.ts).

/**
 * The CUDA kernel paths that have a switch (README "Kernel switches"), and the ops whose path each changes: `env`
 * keeps an op on the library (cuBLAS / cuDNN) or composed path, `on` asks for the project's own kernel. Since run 9
 * on the H100 the own kernels are opt-in (`on`): they measured slower there. scripts/device-check.mjs sets the `env`
 * switches of every op with a failing case (no `env` of its own) for the fixtures, graphs and benchmarks that follow,
 * and all of them for its safe-mode rerun of a failed benchmark; its `own` pass runs those ops' cases with every
 * `on` switch (OWN_KERNELS), except a switch with a `pass` of its own (SOLO_PASSES: its `on` alone, TF32 off).
 * `fallback: false` marks a switch that is off by default with the default path as its `env`: a failing op has
 * nothing to leave there, so the fallback never sets it.
 */
export const KERNEL_SWITCHES = [
  // the SIMT kernel's dh pass with the LayerNorm's backward folded in (IRCONSTYLE_PW_SIMT=1; '0' keeps it apart)
  { env: { IRCONSTYLE_LN_FOLD: '0' }, on: {}, ops: ['ln_conv1x1_backward', 'ln_conv1x1_gate_backward'] },
  { env: { IRCONSTYLE_DWGATE_BWD: 'two-pass' }, on: { IRCONSTYLE_DWGATE_BWD: 'one-pass' }, tune: true, ops: ['dwconv_gate_backward'] },
  // the permute kernel's tiles with each axis on one dim, as in run 9 (by default an axis may span two dims)
  { env: { IRCONSTYLE_PERMUTE_TILE: '1' }, on: {}, ops: ['permute'] },
  // (by default the thin kernels take the forward to <= 4 output channels only; '0': none, '1': every fitting call)
  { env: { IRCONSTYLE_THIN_CONV: '0' }, on: { IRCONSTYLE_THIN_CONV: '1' }, ops: ['conv2d', 'conv2d_backward'] },
  // cuDNN's algorithms chosen by timing them at the first call of each shape (cudnnFind*AlgorithmEx) instead of by its
  // heuristics
  { env: { IRCONSTYLE_CUDNN_FIND: '0' }, on: { IRCONSTYLE_CUDNN_FIND: '1' }, fallback: false, tune: true, ops: ['conv2d', 'conv2d_backward'] },
  // every GEMM through cuBLASLt with its algorithm chosen by timing the heuristic's candidates at the first call of
  // each shape, instead of the heuristic's first pick (cuBLAS's choice on the plain cuBLAS calls)
  { env: { IRCONSTYLE_GEMM_TUNE: '0' }, on: { IRCONSTYLE_GEMM_TUNE: '1' }, fallback: false, tune: true,
    ops: ['matmul', 'linear', 'linear_backward', 'conv2d', 'conv2d_backward', 'conv1x1_add', 'conv1x1_add_backward',
      'conv1x1_gate', 'conv1x1_gate_backward', 'ln_conv1x1', 'ln_conv1x1_backward', 'ln_conv1x1_gate',
      'ln_conv1x1_gate_backward', 'channel_attention', 'channel_attention_backward', 'spatial_gate_backward'] },
  // the SIMT pointwise-GEMM kernel (FP32 on CUDA cores: the LayerNorm or input scale formed on the way in, the bias,
  // gate or residual on the way out); proven in a strict pass of its own (`pass`)
  { env: { IRCONSTYLE_PW_SIMT: '0' }, on: { IRCONSTYLE_PW_SIMT: '1' }, fallback: false, tune: true, pass: 'simt',
    ops: ['conv1x1_gate', 'conv1x1_gate_backward', 'ln_conv1x1', 'ln_conv1x1_backward', 'ln_conv1x1_gate',
      'ln_conv1x1_gate_backward', 'conv1x1_add', 'conv1x1_add_backward'] },
  // the sliding 3x3 depthwise kernels (dwconv_gate, its two-pass backward, conv2d's depthwise 3x3) with each work
  // item's loads issued before its arithmetic and the items rows first; proven in a strict pass of its own
  { env: { IRCONSTYLE_SLIDE: 'loop' }, on: { IRCONSTYLE_SLIDE: 'batch' }, fallback: false, tune: true, pass: 'slide',
    ops: ['dwconv_gate', 'dwconv_gate_backward', 'conv2d', 'conv2d_backward'] },
  // Restormer's channel attention with several heads, samples and <= 1024 pixels: the per-head GEMMs as whole-width
  // products (the Gram's diagonal blocks; A and M block-diagonal), one cuBLAS call each; proven in a strict pass
  { env: { IRCONSTYLE_MDTA: 'heads' }, on: { IRCONSTYLE_MDTA: 'blockdiag' }, fallback: false, tune: true, pass: 'mdta',
    ops: ['channel_attention', 'channel_attention_backward'] },
  // read by lib/models/nafnet.ts: NAFNet's SCA scale as a channel_scale pass before conv3's GEMM instead of inside it
  // (the kernel tuning's scaleApart; the ops themselves have one path)
  { env: { IRCONSTYLE_SCA_SCALE: 'conv' }, on: { IRCONSTYLE_SCA_SCALE: 'apart' }, fallback: false, tune: true,
    ops: ['conv1x1_add', 'conv1x1_add_backward', 'channel_scale', 'channel_scale_backward'] },
  // read by lib/models/maxim_blocks.ts (the models' choice of op; the ops themselves have one path)
  { env: { IRCONSTYLE_SPATIAL_GATE: '0' }, on: { IRCONSTYLE_SPATIAL_GATE: '1' }, tune: true, ops: ['spatial_gate', 'spatial_gate_backward', 'spatial_mix', 'spatial_mix_backward'] },
];

/** The switches whose `env` leaves a default path for another (`fallback: false`: off by default, nothing to leave). */
const fallbacks = KERNEL_SWITCHES.filter((k) => k.fallback !== false);

/** Every `on` switch but those with a pass of their own: the project's own kernels wherever they take the shape. */
const own = KERNEL_SWITCHES.filter((k) => !k.pass);
export const OWN_KERNELS = Object.assign({}, ...own.map((k) => k.on));

/** The ops whose path such an `on` switch changes (the device check's `own` pass runs their cases). */
export const OWN_KERNEL_OPS = [...new Set(own.filter((k) => Object.keys(k.on).length).flatMap((k) => k.ops))];

/** The switches proven in a strict pass of their own (TF32 off): { name, env, ops }. */
export const SOLO_PASSES = KERNEL_SWITCHES.filter((k) => k.pass).map((k) => ({ name: k.pass, env: k.on, ops: k.ops }));

/**
 * The switches the trainer's kernel tuning tries (`tune`: lib/train/tune.ts TUNE_VARIANTS and TRIAL_VARIANTS) that it
 * must leave off:
 * those whose ops failed a case in a pass that had them on (their own pass, or the `own` pass with every `on` switch).
 * `opRes` maps a pass name to its results { op, ok }. Returns their `env` (off) values: set in the environment, the
 * tuning skips them.
 */
export function tuneExclusions(opRes) {
  const env = {};
  for (const k of KERNEL_SWITCHES.filter((s) => s.tune)) {
    const failed = (opRes[k.pass ?? 'own'] ?? []).filter((o) => !o.ok && !o.harness).map((o) => o.op);
    if (k.ops.some((op) => failed.includes(op))) Object.assign(env, k.env);
  }
  return env;
}

/**
 * The switches for failing op cases: `failed` are results { op, name, ok } (cases with an `env` of their own are
 * skipped: they test the fallback itself). Returns { env, ops, unanswered } (the merged switches, the failing ops, and
 * those of them no switch covers: the safe-mode bench's unfused blocks are their only way around).
 */
export function kernelFallback(failed, cases) {
  const own = new Set(cases.filter((c) => c.env).map((c) => c.name));
  const ops = new Set(failed.filter((o) => !o.ok && !own.has(o.name)).map((o) => o.op));
  const env = {};
  for (const s of fallbacks) if (s.ops.some((op) => ops.has(op))) Object.assign(env, s.env);
  const covered = new Set(fallbacks.flatMap((k) => k.ops));
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
    if (o.msStep > 0 && !bad(o) && !o.tuneRunning) done.add(fam(o.model));
  return ['nafnet', 'restormer', 'maxim'].filter((f) => !done.has(f));
}

/**
 * How scripts/device-check.mjs measures the failed families again: { families, safe, tuneOff }. In safe mode (every
 * kernel switch on its library path, the block forwards unfused) when a family's own step failed or the bench died
 * outside an A/B and the kernel tuning; as they are, without BENCH_AB, when only an A/B variant failed (`abError`) or
 * the process died during one (`abRunning`): the families it left unrun lose no figures to the safe paths then; and
 * so, but tuned with the proven variants only (`tuneOff`: IRCONSTYLE_TUNE=1), when a family failed or the process died
 * while the tuning ran (`tuneRunning`: a kernel on trial is the likely cause).
 */
export function benchRerun(bench) {
  const families = benchFailures(bench);
  const src = bench?.error ? bench.partial : bench;
  const all = src ? [src.ours, ...(src.others ?? [])].filter(Boolean) : [];
  const inAB = all.some((o) => o.abRunning || o.abError);
  const inTune = all.some((o) => o.tuneRunning);
  const ownFailed = all.some((o) => (o.error || o.nonFinite) && !o.tuneRunning);
  return { families, safe: !inTune && (ownFailed || !inAB), tuneOff: inTune };
}

/**
 * What this run says about the kernels on trial (lib/train/tune.ts TRIAL_VARIANTS, `variants`): the session that reads
 * it moves each one of `promote` into TUNE_VARIANTS, so that users' trainers try it by default. A variant is promoted
 * when its kernel passed its op cases (its switches are not among `excluded`, tuneExclusions' result) and every tuning
 * of the bench that tried it (each family's training step and inference graphs; `bench` as bench-gpu.mjs returns it,
 * or its `partial` after a failure) ran it and found it agreeing: no refusal, no error. One skipped for the tuning's
 * time is not counted either way; one that no tuning tried stays on trial. Returns { promote: names, keep: [{ name,
 * why }] }.
 */
export function promotions(bench, excluded, variants) {
  const src = bench?.error ? bench.partial : bench;
  const runs = src ? [src.ours, ...(src.others ?? [])].filter(Boolean) : [];
  const trials = runs.flatMap((o) => [['training', o.tune], ['256² inference', o.infer256Graph?.tune],
    ['512² inference', o.infer512Graph?.tune]].flatMap(([what, t]) =>
    (t?.trials ?? []).map((x) => ({ ...x, where: `${o.model ?? 'constyle-nafnet'} ${what}` }))));
  const promote = [], keep = [];
  for (const v of variants) {
    if (Object.keys(v.switches).some((k) => k in (excluded ?? {}))) {
      keep.push({ name: v.name, why: 'a case of its kernel failed' });
      continue;
    }
    const mine = trials.filter((x) => x.name === v.name && !/^skipped/.test(x.note));
    const refused = mine.find((x) => !x.ok);
    if (refused) keep.push({ name: v.name, why: `${refused.where}: ${refused.note}` });
    else if (!mine.length) keep.push({ name: v.name, why: 'no tuning tried it' });
    else promote.push(v.name);
  }
  return { promote, keep };
}
