#!/usr/bin/env node
// The CUDA backend checked on a machine without a GPU: the CUDA emulator build (`npm run build:emu`, native/emu)
// runs every kernel file's kernels on the CPU, so the device check's CUDA-against-CPU parity (every op case, the
// opt-in and trial kernels' passes, the golden fixtures, CUDA graphs) runs here. Then the op passes again with each
// block's threads run last to first between barriers (IRCONSTYLE_EMU_ORDER=reverse), which exposes a missing barrier
// between a shared-memory write and another thread's read. First the emulator's and the cuBLAS/cuDNN stand-ins' own
// checks. Exit status 1 when anything fails. Logs: device-out-emu/ and device-out-emu-reverse/.
//   npm run build:emu && npm run check:emu            (about 2.5 minutes on 2 cores)
//   npm run check:emu -- --quick                       (the op cases of the first pass only, threads in order)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUILD = join(ROOT, 'build-emu');
const ADDON = join(BUILD, 'Release', 'irconstyle.node');
const quick = process.argv.includes('--quick');

if (!existsSync(ADDON)) {
  console.error(`[check:emu] ${ADDON} not found: build the emulator first with \`npm run build:emu\``);
  process.exit(1);
}

const failures = [];
function step(what, cmd, args, env = {}) {
  console.log(`\n[check:emu] ${what}: ${[cmd, ...args].join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) failures.push(`${what} (exit ${r.status ?? r.signal})`);
}

step('emulator self-test', join(BUILD, 'emu-selftest'), []);
step('emulator self-test, deadlock', join(BUILD, 'emu-selftest'), ['deadlock']);
step('cuBLAS / cuBLASLt / cuDNN stand-ins', join(BUILD, 'stand-in-selftest'), [join(BUILD, 'emu-libs')]);
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
check('device check on the emulator', 'device-out-emu', quick ? ['--ops-only', '--strict-only'] : [], {});
if (!quick) {
  check('op cases, threads in reverse order', 'device-out-emu-reverse', ['--ops-only'], {
    IRCONSTYLE_EMU_ORDER: 'reverse',
  });
}
console.log(failures.length ? `\n[check:emu] FAILED: ${failures.join('; ')}` : '\n[check:emu] all passed');
process.exitCode = failures.length ? 1 : 0;
