#!/usr/bin/env node
// What a GPU service meets besides correct kernels: a full card, a kernel that faults, and exact profiling. On the
// CUDA emulator (`npm run build:emu`; scripts/check-emu.mjs runs it so) the card is made small
// (IRCONSTYLE_EMU_MEMORY) and a kernel is made to fault (IRCONSTYLE_EMU_FAULT):
//   IRCONSTYLE_ADDON=$PWD/build-emu/Release/irconstyle.node node scripts/service-scenarios.mjs
// On a GPU (scripts/device-session.sh runs it there) tensors fill the card until as much is free as the emulated
// card would have, and the fault scenarios are left out:
//   node scripts/service-scenarios.mjs
// Each scenario is a child process. Exit status 1 when a check fails.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

Error.stackTraceLimit = 200;  // (the stacks say whether an error came from the backward)
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const lib = await import(pathToFileURL(join(ROOT, 'dist', 'lib', 'index.js')).href);
const { constyleNAFNet, IRConStyleTrainer, tensor, zeros, noGrad, tidy, memoryStats, sync, backendInfo } = lib;
const { profileOps, ops, captureForward } = lib;
const emulated = /emulator/.test(backendInfo().cuda?.name ?? '');
const cardMiB = Number(process.env.SCENARIO_CARD_MIB ?? 0);
// (SCENARIO_FILL=1: fill on the emulator too, with IRCONSTYLE_EMU_MEMORY larger than the card: the GPU's way, checked
// here)
const fill = !emulated || process.env.SCENARIO_FILL === '1';

/**
 * On a GPU, tensors that take the card's memory until about as much is free as the emulated card (cardMiB) would
 * have with what this process holds now. Nothing on the emulator, whose card is that small.
 */
async function fillCard() {
  if (!fill || !cardMiB) return [];
  await sync();
  const m = memoryStats();
  return squeeze(Math.max(4, cardMiB - (m.cudaBytes + m.cudaGraphBytes) / 2 ** 20));
}

/** Tensors that take the card's memory but about `leave` MiB (to within 4 MiB). */
async function squeeze(leave) {
  const ballast = [];
  for (const mib of [4096, 1024, 256, 64, 16, 4]) {
    for (;;) {
      try {
        ballast.push(zeros([mib * 2 ** 18], 'float32', 'cuda'));
      } catch (e) {
        if (e?.code !== 'E_OOM') throw e;
        break;
      }
    }
  }
  let back = 0;  // MiB given back: at least `leave`, then to within 4 MiB of it
  while (back < leave && ballast.length) {
    const t = ballast.pop();
    back += t.size / 2 ** 18;
    t.dispose();
  }
  while (back - leave >= 4) {
    try {
      ballast.push(zeros([2 ** 20], 'float32', 'cuda'));
      back -= 4;
    } catch {
      break;
    }
  }
  await sync();
  console.log(`  (the card filled but ${back.toFixed(0)} MiB, by ${ballast.length} tensors)`);
  return ballast;
}

const failures = [];
function check(what, ok, detail = '') {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}`);
  if (!ok) failures.push(what);
}
/** Images [n, size, size, 3] with fixed values in [0, 1). */
const images = (n, size, seed) =>
  tensor(new Float32Array(n * size * size * 3).map((_, i) => ((i * 31 + seed) % 101) / 101), [n, size, size, 3]);
const held = () => {
  const m = memoryStats();
  return { tensors: m.tensors, cudaBytes: m.cudaBytes };
};
const sameHeld = (a, b) => a.tensors === b.tensors && a.cudaBytes === b.cudaBytes;
const fmtHeld = (m) => `${m.tensors} tensors, ${m.cudaBytes} bytes`;
async function expectOom(what, fn) {
  try {
    await fn();
    check(what, false, 'no error');
  } catch (e) {
    const where = /at backward \(.*autograd\/tape\.js/.test(e?.stack ?? '') ? 'in the backward' : 'in the forward';
    const ok = e?.code === 'E_OOM' && /cannot allocate .* of GPU/.test(e.message);
    check(what, ok, `${e?.message} (${e?.op}, ${where})`);
  }
}
const equal = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/** A small ConStyle NAFNet for inference, and restore(size): its output for an image of size² (a service's call). */
function restorer() {
  const model = constyleNAFNet({ dim: 16, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], constyle: 'inference' });
  model.eval();
  const restore = async (size) => {
    const x = images(1, size, 3);
    try {
      const y = noGrad(() => tidy(() => model.forward(x)));
      try {
        return await y.data();
      } finally {
        y.dispose();
      }
    } finally {
      x.dispose();
    }
  };
  return { model, restore };
}

/** A trainer of a small ConStyle NAFNet (the same weights each time). */
function smallTrainer(graph) {
  lib.setInitSeed(7);
  const model = constyleNAFNet({ dim: 8, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], K: 64 });
  return new IRConStyleTrainer(model, { lr: 3e-4, graph, tune: false });
}

// restore-style inference on a full card: a forward too large fails with E_OOM, leaves nothing behind, and the next
// one gives the same bits as before it
async function inferenceOnFullCard() {
  const { model, restore } = restorer();
  const before = await restore(48);
  // the same forward as a CUDA graph, recorded before the card fills: replays after the failures give the same bits
  const x48 = images(1, 48, 3);
  const graph = await captureForward((x) => model.forward(x), x48);
  const replay = async () => {
    const y = graph.run(x48);
    try {
      return await y.data();
    } finally {
      y.dispose();
    }
  };
  const replayed = await replay();
  const ballast = await fillCard();
  await sync();
  const base = held();
  for (const size of [1024, 512, 384]) {
    await expectOom(`inference 1x${size}² on a ${cardMiB} MiB card: E_OOM`, () => restore(size));
  }
  await sync();
  const after = held();
  check('nothing left by the failed forwards', sameHeld(base, after),
    `${fmtHeld(base)} before, ${fmtHeld(after)} after`);
  check('the next forward gives the same bits', equal(before, await restore(48)));
  check(`the graph recorded before replays the same bits (${graph.graphed ? 'graphed' : graph.reason})`,
    equal(replayed, await replay()) && equal(replayed, before));
  graph.dispose();
  x48.dispose();
  ballast.forEach((t) => t.dispose());
}

// training steps too large for the card, on a trainer that has trained: each that fails (sizes from large to small,
// so that some fail in the forward and, near the card's size, some in the backward) fails with E_OOM, leaves nothing
// behind (no garbage collection needed) and the trained parameters and AdamW's state untouched; and the trainer
// goes on. Which sizes fail where depends on what the kernels allocate, so the check asks only for failures in both.
async function trainingOnFullCard(graph) {
  const mode = graph ? 'graph mode' : 'op by op';
  const t = smallTrainer(graph);
  const small = [images(2, 32, 1), images(2, 32, 4)];
  for (let i = 0; i < 3; ++i) await t.step(small[0], small[1]);  // graph mode: warm, recorded, replayed
  const ballast = await fillCard();
  const state = async () => [await t.arena.params.data(), await t.optimizer.m.data(), await t.optimizer.v.data()];
  const where = new Set();
  for (const [n, size] of [[8, 128], [4, 96], [4, 88], [8, 64], [2, 120], [2, 112], [8, 56], [4, 80], [2, 104]]) {
    await sync();
    const base = held();
    const [p0, m0, v0] = await state();
    const step0 = t.optimizer.step;
    const big = [images(n, size, 9), images(n, size, 12)];
    let e = null;
    try {
      await t.step(big[0], big[1]);
    } catch (err) {
      e = err;
    }
    big.forEach((x) => x.dispose());
    if (!e) continue;
    const at = /at backward \(.*autograd\/tape\.js/.test(e.stack ?? '') ? 'backward' : 'forward';
    where.add(at);
    const what = `${mode}: a ${n}x${size}² step on a ${cardMiB} MiB card`;
    check(`${what} fails with E_OOM`, e.code === 'E_OOM' && /cannot allocate .* of GPU/.test(e.message),
      `${e.message} (${e.op}, in the ${at})`);
    await sync();
    const after = held();
    check(`${what}: nothing left`, sameHeld(base, after), `${fmtHeld(base)} before, ${fmtHeld(after)} after`);
    const [p1, m1, v1] = await state();
    check(`${what}: parameters, AdamW's moments and step count untouched`,
      equal(p0, p1) && equal(m0, m1) && equal(v0, v1) && t.optimizer.step === step0);
  }
  // (on a filled card, where what fails depends on the card and its libraries, said but not required)
  const failedIn = [...where].join(', ') || 'none failed';
  if (fill) console.log(`  (${mode}: steps failed in: ${failedIn})`);
  else check(`${mode}: steps failed in the forward and in the backward`, where.size === 2, failedIn);
  const steps = t.optimizer.step;
  const l = await t.step(small[0], small[1]);
  check(`${mode}: the next step trains`, Number.isFinite(l.total) && t.optimizer.step === steps + 1,
    `total ${l.total}`);
  ballast.forEach((x) => x.dispose());
}

// a kernel that faults (IRCONSTYLE_EMU_FAULT: the n-th grid reads an illegal address) loses the CUDA context for the
// rest of the process: the read that meets it and every later CUDA op fail with E_DEVICE_LOST and say so, nothing
// hangs, and the CPU backend still works. In inference, or in training as replayed CUDA graphs.
async function deviceFault(training) {
  let work;
  if (training) {
    const t = smallTrainer(true);
    const batch = [images(2, 32, 1), images(2, 32, 4)];
    work = () => t.step(batch[0], batch[1]);
  } else {
    const { restore } = restorer();
    work = () => restore(32);
  }
  const errors = [];
  let ok = 0;
  for (let i = 0; i < 8; ++i) {
    const t0 = performance.now();
    try {
      await work();
      ok++;
    } catch (e) {
      errors.push({ code: e?.code, message: String(e?.message), ms: performance.now() - t0 });
    }
  }
  check(`${training ? 'steps' : 'forwards'} before the fault run, the ones from it fail`, ok >= (training ? 3 : 1) &&
    errors.length >= 3, `${ok} ran, ${errors.length} failed`);
  check('each failure is E_DEVICE_LOST and says what to do', errors.every((e) => e.code === 'E_DEVICE_LOST' &&
    /cannot be used again in this process/.test(e.message) && /Restart the process/.test(e.message)),
    errors[0] ? `${errors[0].code}: ${errors[0].message}` : 'none');
  const later = errors.slice(1);
  check('after the first, they fail at once', later.every((e) => e.ms < 1000),
    later.map((e) => `${e.ms.toFixed(0)} ms`).join(', '));
  const a = tensor(new Float32Array([1, 2, 3]), [3], { device: 'cpu' });
  const sumOnCpu = await ops.add(a, a).data();
  check('the CPU backend still works', sumOnCpu.join(',') === '2,4,6', sumOnCpu.join(','));
}

// a step kind whose recording as a CUDA graph fails for lack of memory (the card squeezed by other tensors at its
// second step) is recorded at its next step once there is room, not left op by op for good
async function graphRetry() {
  const t = smallTrainer(true);
  const batch = [images(4, 64, 1), images(4, 64, 4)];
  await t.step(batch[0], batch[1]);  // the kind's first step, op by op
  const ballast = await squeeze(0);
  let e = null;
  try {
    await t.step(batch[0], batch[1]);  // its recording (and the op-by-op step after it) cannot get memory
  } catch (err) {
    e = err;
  }
  ballast.forEach((x) => x.dispose());
  check('the step whose recording ran out of memory fails with E_OOM', e?.code === 'E_OOM', String(e?.message));
  for (let i = 0; i < 3; ++i) await t.step(batch[0], batch[1]);  // op by op, recorded, replayed
  const state = t.graphState.find((g) => g.kind.includes('[4,64,64,3]'));
  check('the kind is recorded at a later step', state?.graphed === true, JSON.stringify(state));
}

// exact profiling holds the stream until each op is enqueued whole (the hold kernel), and reports every op
async function exactProfile() {
  const x = images(2, 24, 5);
  const w = tensor(new Float32Array(3 * 3 * 3 * 8).map((_, i) => ((i % 13) - 6) / 20), [3, 3, 3, 8]);
  const rows = await profileOps(async () => {
    for (let i = 0; i < 3; ++i) {
      const y = tidy(() => ops.relu(ops.conv2d(x, w, null, { padding: 1 })));
      await y.data();
      y.dispose();
    }
  }, { exact: true });
  const row = (name) => rows.find((r) => r.op === name);
  check('exact profile: conv2d and relu timed 3 times each', row('conv2d')?.calls === 3 && row('relu')?.calls === 3,
    rows.map((r) => `${r.op} ${r.calls}`).join(', '));
  check('exact profile: times are non-negative', rows.every((r) => r.ms >= 0));
  x.dispose();
  w.dispose();
}

const scenario = process.argv[2];
if (backendInfo().device !== 'cuda') {
  console.error(`[service-scenarios] the CUDA backend is not in use (${backendInfo().reason}); ` +
    'on a machine without a GPU, set IRCONSTYLE_ADDON to the emulated addon');
  process.exitCode = 1;
} else if (scenario) {
  if (scenario === 'inference') await inferenceOnFullCard();
  else if (scenario === 'train') await trainingOnFullCard(false);
  else if (scenario === 'train-graph') await trainingOnFullCard(true);
  else if (scenario === 'profile') await exactProfile();
  else if (scenario === 'graph-retry') await graphRetry();
  else if (scenario === 'fault') await deviceFault(false);
  else if (scenario === 'fault-train') await deviceFault(true);
  else throw new Error(`unknown scenario ${scenario}`);
  process.exitCode = failures.length ? 1 : 0;
} else {
  // name, the card's MiB, the grid that faults (the emulator only)
  const runs = [
    ['profile'], ['inference', '64'], ['train', '80'], ['train-graph', '80'], ['graph-retry', '80'],
    ['fault', '', '400'], ['fault-train', '', '3000'],
  ].filter(([, , fault]) => emulated || !fault);
  let bad = 0;
  for (const [name, mib, fault] of runs) {
    const how = mib ? ` (a ${mib} MiB card)` : fault ? ` (grid ${fault} faults)` : '';
    console.log(`[service-scenarios] ${name}${how}`);
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), name], {
      stdio: 'inherit',
      env: {
        ...process.env,
        ...(mib ? { IRCONSTYLE_EMU_MEMORY: mib, SCENARIO_CARD_MIB: mib } : {}),
        ...(fault ? { IRCONSTYLE_EMU_FAULT: fault } : {}),
      },
    });
    if (r.status !== 0) bad++;
  }
  console.log(bad ? `[service-scenarios] ${bad} scenario(s) FAILED` : '[service-scenarios] all passed');
  process.exitCode = bad ? 1 : 0;
}
