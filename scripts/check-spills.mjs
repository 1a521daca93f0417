#!/usr/bin/env node
// npm run check:spills — the CUDA kernels' register budgets, checked without a GPU. Compiles every .cu file of
// native/src for sm_90 (the H100 / H200) with ptxas's resource report and fails when a kernel spills registers to local
// memory (spill stores or loads) that ALLOWED does not list: several kernels sit at their launch bounds' register cap
// (the SIMT 1x1 kernel and the batched depthwise backward at 128), where a small edit or another nvcc can start
// spilling inside their inner loops, which no CPU test would notice. Without nvcc it says so and exits 0.
//   --arch sm_XX   another architecture (default sm_90)     --jobs n   parallel compiles (default: the CPU count)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const opt = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const arch = opt('arch', 'sm_90');
const jobs = Math.max(1, Number(opt('jobs', String(availableParallelism()))));

// Kernels allowed to spill (demangled-name substring -> the most bytes of spill stores accepted), each with its reason.
// The figures are today's (nvcc 13.0): growth past them fails too. Per architecture; one without a list (sm_80's
// thin convs and column kernels spill a few bytes more) has its spills reported, not checked.
const ALLOWED_BY_ARCH = {
  sm_90: [
    // the thin 3x3 conv's 2-in / 4-out instantiations: 16 bytes, proven and timed on the H100 in run 9 (249 us
    // against cuDNN's 598 for the image-output conv)
    ['thin_out_k<2, 4,', 16],
    // the LayerNorm backward's 16-channel-group instantiation with the pending gradient and the weight gradients:
    // 4 bytes stored (8 loaded), run 9's kernel
    ['ln_bwd_warp<16, true, true>', 4],
  ],
};
const ALLOWED = ALLOWED_BY_ARCH[arch];

function findNvcc() {
  for (const c of ['nvcc', '/usr/local/cuda/bin/nvcc']) if (spawnSync(c, ['--version']).status === 0) return c;
  return null;
}

const nvcc = findNvcc();
if (!nvcc) {
  console.log('check:spills: skipped (no nvcc on this machine)');
  process.exit(0);
}
const files = ['native/src/cuda', 'native/src/ops'].flatMap((d) =>
  readdirSync(join(ROOT, d)).filter((f) => f.endsWith('.cu')).map((f) => join(ROOT, d, f)));
const out = mkdtempSync(join(tmpdir(), 'irc-spills-'));

// ptxas -v prints, per entry function, "Compiling entry function '<mangled>' for 'sm_90'" and then
// "Function properties for <mangled>" and on the next line "N bytes stack frame, S bytes spill stores, L bytes spill loads".
function compile(file, i) {
  return new Promise((resolve) => {
    const args = ['-std=c++17', '-O3', '-DNDEBUG', '-DIRC_WITH_CUDA=1', `-arch=${arch}`, '-Xptxas', '-v', '-c', file,
      '-o', join(out, `${i}.o`), '-I', join(ROOT, 'native/src')];
    const p = spawn(nvcc, args, { cwd: ROOT });
    let text = '';
    p.stdout.on('data', (d) => (text += d));
    p.stderr.on('data', (d) => (text += d));
    p.on('close', (code) => resolve({ file, code, text }));
  });
}

function demangle(names) {
  const r = spawnSync('c++filt', { input: names.join('\n'), encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n') : names;
}

const t0 = Date.now();
const results = [];
let next = 0;
await Promise.all(Array.from({ length: Math.min(jobs, files.length) }, async () => {
  while (next < files.length) {
    const i = next++;
    results.push(await compile(files[i], i));
  }
}));
rmSync(out, { recursive: true, force: true });

let failed = 0, kernels = 0;
const spills = [];
for (const { file, code, text } of results.sort((a, b) => a.file.localeCompare(b.file))) {
  if (code !== 0) {
    failed++;
    console.log(`FAIL ${relative(ROOT, file)}: nvcc exited ${code}\n${text.trim().split('\n').slice(-8).join('\n')}`);
    continue;
  }
  for (const m of text.matchAll(/Function properties for (\S+)\s+(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/g)) {
    kernels++;
    const [, name, , st, ld] = m;
    if (Number(st) || Number(ld)) spills.push({ file: relative(ROOT, file), name, stores: Number(st), loads: Number(ld) });
  }
}
const names = demangle(spills.map((s) => s.name));
for (const [i, s] of spills.entries()) {
  const full = names[i] ?? s.name;
  const allow = !ALLOWED || ALLOWED.find(([sub, max]) => full.includes(sub) && s.stores <= max);
  console.log(`${allow ? 'ok  ' : 'FAIL'} ${s.file}: ${full.slice(0, 140)} spills ${s.stores} bytes (stores), ${s.loads} (loads)${ALLOWED && allow ? ' (allowed)' : ''}`);
  if (!allow) failed++;
}
const verdict = failed ? `${failed} FAILED` : ALLOWED ? 'none unexpected' : `reported only (no allow-list for ${arch})`;
console.log(`check:spills: ${results.length} files, ${kernels} functions for ${arch}, ${spills.length} with spills, ` +
  `${verdict} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
process.exit(failed ? 1 : 0);
