#!/usr/bin/env node
// The CUDA backend checked on a machine without a GPU: the CUDA emulator build (`npm run build:emu`, native/emu)
// runs every kernel file's kernels on the CPU, so the device check's CUDA-against-CPU parity (every op case, the
// opt-in and trial kernels' passes, the golden fixtures, CUDA graphs) runs here. Then the op passes again with each
// block's threads run last to first between barriers (IRCONSTYLE_EMU_ORDER=reverse), which exposes a missing barrier
// between a shared-memory write and another thread's read. Before them, the emulator's and the cuBLAS/cuDNN
// stand-ins' own checks; between them, the op cases on the paths a GPU takes only for huge tensors or without cuDNN
// and cuBLASLt, and a full card and exact profiling (scripts/service-scenarios.mjs). Exit status 1 when anything fails.
// Logs: device-out-emu/, device-out-emu-fallback/ and device-out-emu-reverse/.
//   npm run build:emu && npm run check:emu            (about 3 minutes on 2 cores)
//   npm run check:emu -- --quick                       (the strict op cases and the fallback pass only)
//   npm run build:emu -- --asan && npm run check:emu -- --asan
//       every op pass with the kernels' and stand-ins' memory accesses checked by AddressSanitizer: a kernel that
//       reads or writes outside its buffers fails its case (the emulator's compute-sanitizer memcheck)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const asan = process.argv.includes('--asan');
const BUILD = join(ROOT, asan ? 'build-emu-asan' : 'build-emu');
const ADDON = join(BUILD, 'Release', 'irconstyle.node');

if (!existsSync(ADDON)) {
  const build = `npm run build:emu${asan ? ' -- --asan' : ''}`;
  console.error(`[check:emu] ${ADDON} not found: build the emulator first with \`${build}\``);
  process.exit(1);
}
// --asan: the AddressSanitizer build, whose runtime must be loaded before node's own libraries
let asanEnv = {};
if (asan) {
  const lib = spawnSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).stdout?.trim();
  if (!lib || !existsSync(lib)) {
    console.error('[check:emu] --asan: the ASan runtime was not found (`gcc -print-file-name=libasan.so`)');
    process.exit(1);
  }
  // every scratch buffer at its exact size, so that a kernel running past one is seen
  asanEnv = { LD_PRELOAD: lib, ASAN_OPTIONS: 'detect_leaks=0', IRCONSTYLE_SCRATCH_EXACT: '1' };
}

const failures = [];
function step(what, cmd, args, env = {}) {
  console.log(`\n[check:emu] ${what}: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) failures.push(`${what} (exit ${r.status ?? r.signal})`);
}

step('emulator self-test', join(BUILD, 'emu-selftest'), [], asanEnv);
step('emulator self-test, deadlock', join(BUILD, 'emu-selftest'), ['deadlock'], asanEnv);
step('cuBLAS / cuBLASLt / cuDNN stand-ins', join(BUILD, 'stand-in-selftest'), [join(BUILD, 'emu-libs')], asanEnv);
const check = (what, out, extra, env) =>
  step(what, process.execPath, [join(ROOT, 'scripts', 'device-check.mjs'), '--no-bench', '--no-op-bench', ...extra], {
    IRCONSTYLE_ADDON: ADDON,
    OUT: join(ROOT, out),
    DEVICE_CHECK_TIME_SCALE: '8',
    DEVICE_CHECK_BUDGET_S: '3000',
    DEVICE_CHECK_STALL_S: '300',
    DEVICE_CHECK_SMALL: '1',  // no paper-size graph case
    ...env,
  });
// a full card (out of memory in inference and training) and exact profiling
const scenarios = (env) =>
  step('service scenarios', process.execPath, [join(ROOT, 'scripts', 'service-scenarios.mjs')], {
    IRCONSTYLE_ADDON: ADDON,
    ...env,
  });
if (asan) {
  check('op passes under AddressSanitizer', 'device-out-emu-asan', ['--ops-only'], asanEnv);
  // (with the scratch buffers as the trainer has them: at exact sizes a slot is left at its last request, and a graph
  // whose step needs it larger cannot be recorded)
  scenarios({ ...asanEnv, IRCONSTYLE_SCRATCH_EXACT: '0' });
} else {
  const sitesFile = join(ROOT, 'device-out-emu', 'launch-sites.txt');
  rmSync(sitesFile, { force: true });
  check('device check on the emulator', 'device-out-emu', quick ? ['--ops-only', '--strict-only'] : [], {
    IRCONSTYLE_EMU_COVERAGE: sitesFile,
  });
  // The paths a GPU takes only for huge tensors or without a library: every kernel's 64-bit index variant (on a
  // card, tensors of 2^30 elements and more), and the convolutions and GEMM epilogues without cuDNN and cuBLASLt.
  check('op cases on the fallback paths', 'device-out-emu-fallback', ['--ops-only', '--strict-only'], {
    IRCONSTYLE_EMU_COVERAGE: sitesFile,
    IRCONSTYLE_EMU_WIDE_INDEX: '1',
    IRCONSTYLE_EMU_NO_CUDNN: '1',
    IRCONSTYLE_CUBLASLT: '0',
  });
  if (!quick) scenarios({ IRCONSTYLE_EMU_COVERAGE: sitesFile });
  console.log(`\n[check:emu] ${launchCoverage(existsSync(sitesFile) ? readFileSync(sitesFile, 'utf8') : '')}`);
}
if (!quick && !asan) {
  check('op cases, threads in reverse order', 'device-out-emu-reverse', ['--ops-only'], {
    IRCONSTYLE_EMU_ORDER: 'reverse',
  });
}
console.log(failures.length ? `\n[check:emu] FAILED: ${failures.join('; ')}` : '\n[check:emu] all passed');
process.exitCode = failures.length ? 1 : 0;

/** Which kernel launch sites of native/src the device check ran (reported, not checked): a `<<<` line that no case
 * reaches is a kernel no parity case has compared. Launches written inside a #define are recorded at the macro's
 * use and counted apart. */
function launchCoverage(recorded) {
  const ran = new Set(recorded.split('\n').filter(Boolean).map((l) => {
    const at = l.lastIndexOf(':');
    return `${relative(ROOT, l.slice(0, at))}:${l.slice(at + 1)}`;
  }));
  const sites = [];
  for (const dir of ['native/src/ops', 'native/src/cuda']) {
    for (const f of readdirSync(join(ROOT, dir)).filter((n) => /\.(cu|cuh)$/.test(n)).sort()) {
      const lines = readFileSync(join(ROOT, dir, f), 'utf8').split('\n');
      let inDefine = false;
      lines.forEach((text, i) => {
        const define = inDefine || /^\s*#\s*define\b/.test(text);
        if (text.includes('<<<') && !define) sites.push(`${dir}/${f}:${i + 1}`);
        inDefine = define && text.trimEnd().endsWith('\\');
      });
    }
  }
  const missed = sites.filter((s) => !ran.has(s));
  const viaMacros = [...ran].filter((s) => !sites.includes(s)).length;
  return `kernel launch sites run: ${sites.length - missed.length}/${sites.length} (and ${viaMacros} through macros)` +
    (missed.length ? `; never run by a case: ${missed.join(', ')}` : '');
}
