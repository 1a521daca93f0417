#!/usr/bin/env node
// npm run bench:gpu — ConStyle NAFNet at paper size (dim 48, 7/8/9, 9, 7/8/9) on CUDA beside PyTorch, same run:
//   training: one full IRConStyle step (ConStyle MoCo forward with K = 65,760, restoration forward, L1 + CE +
//             content + style, backward, AdamW lr 3e-4 wd 1e-4) at batch 16, 128×128: median of 10 after 3
//             warm-ups, `await sync()` around each step -> ms/step and images/s;
//   inference: 1×256² and 1×512² (ConStyle query encoder + restoration), median of 20 after 3 warm-ups;
//   memory:   peak live CUDA tensor bytes over one training step (native.memoryStats().cudaBytes sampled after
//             every op submission and transfer), then also with the ops' scratch buffers (cudaScratchBytes: kernel
//             temporaries and library workspaces, which PyTorch's max_memory_allocated counts where its caching
//             allocator serves them), and the process's memory in nvidia-smi;
//   PyTorch:  python3 scripts/pytorch/constyle_nafnet.py (child process, before ours) and ours/PyTorch ratios.
// Without CUDA it prints why and exits 0. Flags: --no-pytorch, --json, --budget <s> (default 300), --only
// nafnet,restormer,maxim (which families), --safe (block forwards unfused; plain and graph-mode steps and
// inference only); BENCH_PYTORCH=nafnet,restormer,maxim picks the PyTorch references (default all); BENCH_AB=1 also times each
// training step with the block forwards composed of separate ops (scripts/unfused-blocks.mjs), NAFNet's with its
// LayerNorm + 1x1 pairs apart (nafnetFusion.lnConv) and its SCA scale apart (nafnetFusion.scaleInConv), and MAXIM's with its gating units as one op
// (IRCONSTYLE_SPATIAL_GATE=1), also keeping their Dense outputs, and MAXIM with its cheap intermediates kept rather
// than formed again in the backward (time and peak memory of each). The graph-mode step is tuned as a trainer on CUDA is by default (TrainerOptions.tune: each opt-in
// kernel path's recorded step timed beside the default's and checked against it; the trials are printed).
// Imported by scripts/device-check.mjs (runBench).
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { unfusedBlocks } from './unfused-blocks.mjs';
import { KERNEL_SWITCHES } from './fallback.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const median = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const MiB = 1024 * 1024;

function randomImages(lib, n, h, w, seed, device) {
  let a = seed >>> 0;
  const data = new Float32Array(n * h * w * 3);
  for (let i = 0; i < data.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    data[i] = a / 4294967296;
  }
  return lib.tensor(data, [n, h, w, 3], { device });
}

/** Runs a PyTorch reference script of scripts/pytorch; resolves with its JSON line or { error }. */
function runPyTorch(timeoutS, log, extraArgs = [], name = 'constyle_nafnet.py') {
  const script = join(ROOT, 'scripts', 'pytorch', name);
  return new Promise((res) => {
    const child = spawn(process.env.PYTHON ?? 'python3', [script, ...extraArgs], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); err += `\nkilled after ${timeoutS} s`; }, timeoutS * 1000);
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', (e) => { err += String(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      log(`pytorch: exit ${code}${err.trim() ? `; stderr tail: ${err.trim().split('\n').slice(-4).join(' | ')}` : ''}`);
      const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      try {
        res(line ? JSON.parse(line) : { error: `no JSON from PyTorch (exit ${code}): ${err.trim().slice(-400)}` });
      } catch (e) {
        res({ error: `bad JSON from PyTorch: ${line.slice(0, 200)}` });
      }
    });
  });
}

function smiMemoryMiB(pid) {
  const r = spawnSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 15000 });
  if (r.status !== 0) return null;
  for (const l of r.stdout.trim().split('\n')) {
    const [p, m] = l.split(',').map((s) => Number(s.trim()));
    if (p === pid) return m;
  }
  return null;
}

/** The median ms of steps 3..n of trainer (after two warm-ups), each awaited, and the last step's losses. */
async function timeSteps(lib, trainer, lq, gt, n = 5) {
  const ts = [];
  let losses = null;
  for (let it = 0; it < n; it++) {
    await lib.sync();
    const t0 = performance.now();
    losses = await trainer.step(lq, gt);
    await lib.sync();
    if (it >= 2) ts.push(performance.now() - t0);
  }
  return { ms: median(ts), losses };
}

/** Peak of native.memoryStats().cudaBytes over fn(), sampled after every op submission and transfer. */
async function peakBytes(native, fn, key = 'cudaBytes') {
  const orig = { run: native.run, to: native.to, fromData: native.fromData };
  let peak = native.memoryStats()[key];
  const sample = () => { const b = native.memoryStats()[key]; if (b > peak) peak = b; };
  for (const k of Object.keys(orig)) native[k] = (...a) => { const r = orig[k].apply(native, a); sample(); return r; };
  try {
    await fn();
  } finally {
    Object.assign(native, orig);
  }
  return peak;
}

/** Latency of `inf.forward(img)` through captureForward (a CUDA graph when it captures), and its output against the
 * op-by-op forward's. */
async function benchGraphed(lib, inf, img, reps, left) {
  const t0 = performance.now();
  // kernel tuning on (captureForward's option; off by default): each opt-in path's recording timed beside the default's
  const cf = await lib.captureForward((x) => inf.forward(x), img, { tune: left() > 60 && { maxSeconds: 15 } });
  await lib.sync();
  const out = { graphed: cf.graphed, capturable: cf.capturable, reason: cf.reason, captureMs: performance.now() - t0, tune: cf.tuneReport };
  try {
    const a = cf.run(img), b = lib.noGrad(() => lib.tidy(() => inf.forward(img)));
    const [ya, yb] = [await a.data(), await b.data()];
    a.dispose();
    b.dispose();
    let num = 0, den = 0;
    for (let i = 0; i < ya.length; i++) { num += (ya[i] - yb[i]) ** 2; den += yb[i] ** 2; }
    out.relErr = Math.sqrt(num / Math.max(den, 1e-30));
    const ts = [];
    for (let it = 0; it < reps + 3; it++) {
      if (it >= 6 && left() < 8) break;
      await lib.sync();
      const t1 = performance.now();
      const y = cf.run(img);
      await lib.sync();
      if (it >= 3) ts.push(performance.now() - t1);
      y.dispose();
    }
    out.ms = median(ts);
    out.runs = ts.length;
  } finally {
    cf.dispose();
  }
  return out;
}

/** One model's training step (IRConStyleTrainer), peak memory, kernel-time profile and inference latencies. */
async function benchModel(lib, native, { model, batch, size, K, device, left, log, profile = false, steps = 10, inferReps = 20, safe = false, reserveS = 0, saveProgress = () => {} }) {
  const ours = {};
  try {
    // --- training step
    lib.setInitSeed(1);
    const net = lib.createModel(model, { constyle: 'train', K }).to(device);
    // op by op first, on the default kernel paths (graph mode with kernel tuning, the defaults on CUDA, is timed
    // next): live memory is measured op by op
    const trainer = new lib.IRConStyleTrainer(net, { lr: 3e-4, weightDecay: 1e-4, graph: false, tune: false });
    const gt = randomImages(lib, batch, size, size, 1, device);
    const noise = randomImages(lib, batch, size, size, 2, device);
    const lq = lib.ops.add(gt, lib.ops.scale(noise, 0.2, -0.1));
    noise.dispose();
    const times = [];
    let losses = null;
    for (let it = 0; it < steps + 3; it++) {
      if (it >= 4 && left() < 30 + (2 * median(times)) / 1000) { // left() is in seconds, step times in ms
        log(`ours ${model}: stopping after ${times.length} timed steps (${left().toFixed(0)} s of the budget left)`);
        break;
      }
      await lib.sync();
      const t0 = performance.now();
      losses = await trainer.step(lq, gt);
      await lib.sync();
      const ms = performance.now() - t0;
      if (it >= 3) times.push(ms);
      log(`ours ${model}: train step ${it + 1}${it < 3 ? ' (warm-up)' : ''} ${ms.toFixed(1)} ms  total loss ${losses.total.toFixed(4)}`);
    }
    const msStep = times.length ? median(times) : NaN;
    Object.assign(ours, { msStep, imgPerS: (batch * 1000) / msStep, steps: times.length, lastLosses: losses });
    if (!Number.isFinite(losses?.total)) {
      ours.nonFinite = true;  // a kernel gone wrong shows here first (scripts/device-check.mjs reruns in safe mode)
      log(`ours ${model}: NON-FINITE total loss ${losses?.total}`);
    }
    ours.peakCudaMiB = (await peakBytes(native, async () => { await trainer.step(lq, gt); await lib.sync(); }, device === 'cuda' ? 'cudaBytes' : 'bytes')) / MiB;
    ours.nvidiaSmiMiB = smiMemoryMiB(process.pid);
    ours.scratchMiB = (native.memoryStats().cudaScratchBytes ?? 0) / MiB; // the slots only grow: their size after the steps
    log(`ours ${model}: ${msStep.toFixed(1)} ms/step, ${ours.imgPerS.toFixed(1)} img/s, peak live CUDA ${ours.peakCudaMiB.toFixed(0)} MiB (+ ${ours.scratchMiB.toFixed(0)} MiB of op scratch), nvidia-smi ${ours.nvidiaSmiMiB ?? '-'} MiB`);
    if (left() > 40) {  // (safe mode too: the library paths, replayed)
      // The same trainer in graph mode (its step recorded as one CUDA graph), tuned as a trainer on CUDA is by default
      // (its first step here: each opt-in kernel path recorded and replayed beside the default's, the fastest that
      // agrees kept for this trainer's steps, also the profiled ones after it): one op-by-op step, the recording, then
      // replays.
      trainer.graph = true;
      // (on the CPU smoke test: tuned op by op, the harness); at most 45 s of the budget. Marked while it runs: a kernel
      // on trial that poisons the process leaves the family to a rerun with the proven variants only (benchRerun)
      if (left() > 90 + reserveS) {
        ours.tuneRunning = true;
        saveProgress({ ...ours });
        // (testing the rerun: BENCH_TUNE_INJECT=exit ends the process in the tuning, as a faulting kernel would)
        const inject = process.env.BENCH_TUNE_INJECT === 'exit' ? [{ name: 'injected', apply: () => process.exit(70) }] : [];
        trainer.retune({ maxSeconds: Math.min(45, left() - 75 - reserveS), ...(inject.length ? { variants: [...lib.defaultVariants(), ...inject] } : {}) });
      }
      const gts = [];
      for (let it = 0; it < Math.max(5, steps) + 2; it++) {
        if (it >= 4 && left() < 25) break;
        await lib.sync();
        const t0 = performance.now();
        const l = await trainer.step(lq, gt);
        await lib.sync();
        if (it >= 2) gts.push(performance.now() - t0);
        if (it === 1) ours.graphState = trainer.graphState;
        if (it === 0 && trainer.tuneReport) {
          ours.tune = trainer.tuneReport;
          log(`ours ${model}: kernel tuning ${tuneText(ours.tune)}`);
        }
        delete ours.tuneRunning;
        ours.graphLoss = l.total;
      }
      ours.graph = { msStep: median(gts), imgPerS: (batch * 1000) / median(gts), steps: gts.length, graphed: ours.graphState?.[0]?.graphed ?? false,
        reason: ours.graphState?.[0]?.reason ?? '', graphMiB: native.memoryStats().cudaGraphBytes / MiB };
      log(`ours ${model} in graph mode: ${ours.graph.graphed ? `${ours.graph.msStep.toFixed(1)} ms/step (${gts.length} replays), ${ours.graph.graphMiB.toFixed(0)} MiB reserved by the graph, total loss ${ours.graphLoss.toFixed(4)}`
        : `not graphed (${ours.graph.reason}); ${ours.graph.msStep.toFixed(1)} ms/step op by op`}`);
      trainer.graph = false;
    }
    if (profile && !safe && left() > 20) {
      // Where a step's time goes: GPU time per op (events around each op's launches) against the wall time.
      // Host side: when the last op of the step was submitted (the GPU runs behind; a step whose submission
      // takes as long as the step is bound by the host, not the GPU).
      const run0 = native.run;
      let lastSubmit = 0;
      native.run = (...a) => { const r = run0.apply(native, a); lastSubmit = performance.now(); return r; };
      native.profile(true);
      const t0 = performance.now();
      try {
        await trainer.step(lq, gt);
        await lib.sync();
      } finally {
        native.run = run0;
      }
      const wall = performance.now() - t0;
      native.profile(false);
      const all = native.profile() ?? [];
      const prof = all.filter((p) => p.calls > 0).sort((a, b) => b.ms - a.ms);
      const gpuMs = prof.reduce((a, p) => a + p.ms, 0);
      const hostMs = all.reduce((a, p) => a + (p.hostMs ?? 0), 0);
      const disposeMs = all.find((p) => p.op === '(dispose)')?.hostMs ?? 0;
      const launches = prof.reduce((a, p) => a + p.calls, 0);
      ours.profile = { wallMs: wall, gpuMs, hostNativeMs: hostMs, disposeMs, ops: launches, submitMs: lastSubmit - t0, top: prof.slice(0, 25) };
      log(`ours ${model}: profiled step ${wall.toFixed(1)} ms wall, ${gpuMs.toFixed(1)} ms GPU in ${launches} ops; last op submitted at ${(lastSubmit - t0).toFixed(1)} ms; ` +
        `host time in native submission ${hostMs.toFixed(1)} ms (of which releasing tensors ${disposeMs.toFixed(1)} ms)`);
      for (const p of prof.slice(0, 25)) log(`  ${p.op.padEnd(28)} ${p.ms.toFixed(2).padStart(9)} ms ${String(p.calls).padStart(6)} calls  host ${(p.hostMs ?? 0).toFixed(2)} ms`);
      const byHost = [...all].sort((a, b) => (b.hostMs ?? 0) - (a.hostMs ?? 0)).slice(0, 12);
      log(`  by host time: ${byHost.map((p) => `${p.op} ${(p.hostMs ?? 0).toFixed(1)} ms/${p.calls}`).join(', ')}`);
      // A second profiled step, exact and split by shapes (a key per op costs host time, so not in the step above,
      // whose library ops' times include the GPU waiting for the host between their calls when the host falls
      // behind): the stream waits until each op is enqueued whole, so the times are the GPU's alone, as in a
      // replayed graph; their sum is compared with the graph-mode step.
      native.profile(true, true, true);
      await trainer.step(lq, gt);
      await lib.sync();
      native.profile(false);
      const exact = (native.profile() ?? []).filter((p) => p.calls > 0).sort((a, b) => b.ms - a.ms);
      const exactMs = exact.reduce((a, p) => a + p.ms, 0);
      ours.profile.exact = { gpuMs: exactMs, top: exact.slice(0, 25).map(({ op, ms, calls }) => ({ op, ms, calls })) };
      log(`  exact GPU time (each op enqueued whole before it runs): ${exactMs.toFixed(1)} ms in ${exact.reduce((a, p) => a + p.calls, 0)} ops` +
        `${ours.graph?.graphed ? ` (graph-mode step ${ours.graph.msStep.toFixed(1)} ms)` : ''}; ` +
        exact.slice(0, 16).map((p) => `${p.op} ${p.ms.toFixed(2)}`).join(', '));
      const byShape = (native.profileShapes?.() ?? []).sort((a, b) => b.ms - a.ms).slice(0, 40);
      ours.profile.byShape = byShape;
      log('  by op and shape (top 40; the exact step):');
      for (const p of byShape) log(`  ${p.ms.toFixed(2).padStart(8)} ms ${String(p.calls).padStart(5)}×  ${(1000 * p.ms / p.calls).toFixed(1).padStart(7)} µs  ${p.op}`);
    }
    trainer.dispose();
    net.dispose?.();
    if (profile && !safe && left() > 40) {
      // The same step with activation checkpointing (trainer option `checkpoint`): less memory, one more forward.
      lib.setInitSeed(1);
      const ckNet = lib.createModel(model, { constyle: 'train', K }).to(device);
      const ck = new lib.IRConStyleTrainer(ckNet, { lr: 3e-4, weightDecay: 1e-4, checkpoint: true, graph: false, tune: false });
      const { ms } = await timeSteps(lib, ck, lq, gt);
      const peak = (await peakBytes(native, async () => { await ck.step(lq, gt); await lib.sync(); }, device === 'cuda' ? 'cudaBytes' : 'bytes')) / MiB;
      ours.checkpointed = { msStep: ms, imgPerS: (batch * 1000) / ms, peakCudaMiB: peak };
      log(`ours ${model} (checkpoint: true): ${ms.toFixed(1)} ms/step, peak live CUDA ${peak.toFixed(0)} MiB`);
      ck.dispose();
      ckNet.dispose?.();
    }
    // --- inference
    lib.setInitSeed(2);
    const inf = lib.createModel(model, { constyle: 'inference' }).eval().to(device);
    for (const [k, s] of (device === 'cuda' ? [256, 512] : [32, 64]).entries()) {
      if (left() < 15) { log(`ours ${model}: inference ${s}² skipped (time budget)`); continue; }
      const img = randomImages(lib, 1, s, s, 3 + s, device);
      const ts = [], submit = [];
      for (let it = 0; it < inferReps + 3; it++) {
        if (it >= 6 && left() < 10) break;
        await lib.sync();
        const t0 = performance.now();
        const y = lib.noGrad(() => lib.tidy(() => inf.forward(img)));
        const t1 = performance.now();  // host time to submit the forward's ops (the GPU runs behind)
        await lib.sync();
        const ms = performance.now() - t0;
        y.dispose();
        if (it >= 3) { ts.push(ms); submit.push(t1 - t0); }
      }
      ours[k ? 'infer512Ms' : 'infer256Ms'] = median(ts);
      ours[k ? 'infer512SubmitMs' : 'infer256SubmitMs'] = median(submit);
      log(`ours ${model}: inference 1x${s}² ${median(ts).toFixed(2)} ms (${ts.length} runs; host submission ${median(submit).toFixed(2)} ms)`);
      // The same forward replayed as one CUDA graph (captureForward), checked against the op-by-op output.
      if (left() > 10) {
        ours.tuneRunning = true;  // (its kernel tuning: as the training step's above)
        saveProgress({ ...ours });
        const g = await benchGraphed(lib, inf, img, inferReps, left);
        delete ours.tuneRunning;
        ours[k ? 'infer512Graph' : 'infer256Graph'] = g;
        log(`ours ${model}: inference 1x${s}² as a graph: ${g.graphed ? `${g.ms.toFixed(2)} ms (${g.runs} runs; capture ${g.captureMs.toFixed(0)} ms; ` +
          `relative difference from op by op ${g.relErr.toExponential(2)})` : `not graphed: ${g.reason}`}${g.tune ? `; kernel tuning ${tuneText(g.tune)}` : ''}`);
      }
      if (k && profile && !safe && left() > 10) {
        // where the 512² forward's GPU time goes (exact: each op enqueued whole before it runs, as in the graph)
        native.profile(true, false, true);
        lib.noGrad(() => lib.tidy(() => inf.forward(img))).dispose();
        await lib.sync();
        native.profile(false);
        const top = (native.profile() ?? []).filter((p) => p.calls > 0).sort((a, b) => b.ms - a.ms);
        const gpuMs = top.reduce((a, p) => a + p.ms, 0);
        ours.infer512Profile = { gpuMs, top: top.slice(0, 12).map(({ op, ms, calls }) => ({ op, ms, calls })) };
        log(`ours ${model}: inference 1x${s}² exact GPU time ${gpuMs.toFixed(2)} ms in ${top.reduce((a, p) => a + p.calls, 0)} ops: ` +
          top.slice(0, 12).map((p) => `${p.op} ${p.ms.toFixed(2)}/${p.calls}`).join(', '));
      }
      img.dispose();
    }
    inf.dispose?.();
    // A/B variants last: a broken opt-in kernel can end the process, and this family's own figures are saved by then
    // (abRunning: scripts/device-check.mjs then measures the families left without the A/B, not in safe mode)
    if (process.env.BENCH_AB && !safe && left() > 30 + reserveS) try {
      saveProgress({ ...ours, abRunning: true });
      // A/B in the same process, on a trainer as the first (op by op, untuned: each variant against the default
      // paths; the opt-in kernels' own times are the tuning's above): each variant set, five steps timed (median of
      // the last three), its peak, unset
      lib.setInitSeed(1);
      const abNet = lib.createModel(model, { constyle: 'train', K }).to(device);
      const trainer = new lib.IRConStyleTrainer(abNet, { lr: 3e-4, weightDecay: 1e-4, graph: false, tune: false });
      const stepPeak = async () => (await peakBytes(native, async () => { await trainer.step(lq, gt); await lib.sync(); }, device === 'cuda' ? 'cudaBytes' : 'bytes')) / MiB;
      const env = (name, value) => {
        const was = process.env[name];
        return [() => { process.env[name] = value; }, () => { if (was === undefined) delete process.env[name]; else process.env[name] = was; }];
      };
      const ab = await unfusedBlocks(ROOT);
      const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', 'lib', 'models', p)).href);
      const [{ nafnetFusion }, { maximFusion }] = await Promise.all([dist('nafnet.js'), dist('maxim_blocks.js')]);
      const [gateOn, gateOff] = env('IRCONSTYLE_SPATIAL_GATE', '1');
      const variants = [
        // MAXIM's cheap intermediates (GELU halves, LayerNorm outputs, Dense inputs, products) kept from the forward
        // to the backward instead of formed again there: the default's time cost for its memory (mem:model: 6,049
        // against 9,483 MiB)
        ['keepIntermediates', 'MAXIM\'s intermediates kept, not formed again (maximFusion.reform = false)', model.includes('maxim'),
          () => { maximFusion.reform = false; }, () => { maximFusion.reform = true; }],
        // the gating units and spatial gating weights as one op each (fewer ops, less memory), then also keeping
        // their Dense outputs for the backward (one GEMM less each there, more memory held)
        ['spatialGate', 'the gating units as one op (IRCONSTYLE_SPATIAL_GATE=1)', model.includes('maxim'), gateOn, gateOff],
        ['keepDense', 'the gating units as one op, their Dense outputs kept', model.includes('maxim'),
          () => { gateOn(); maximFusion.keepDense = true; }, () => { maximFusion.keepDense = false; gateOff(); }],
        // the SCA scale as a channel_scale pass before one GEMM over all rows
        ['scaleApart', 'the SCA scale apart from conv3 (nafnetFusion.scaleInConv = false)', model.includes('nafnet'),
          () => { nafnetFusion.scaleInConv = false; }, () => { nafnetFusion.scaleInConv = true; }],
        // the NAFBlock's LayerNorm + 1x1 pairs as separate ops, its other fused ops kept
        ['lnApart', 'LayerNorm and 1x1 apart (nafnetFusion.lnConv = false)', model.includes('nafnet'),
          () => { nafnetFusion.lnConv = false; }, () => { nafnetFusion.lnConv = true; }],
        // the block forwards composed of the separate ops (scripts/unfused-blocks.mjs)
        ['unfused', 'the block ops unfused', true, () => ab.patch(), () => ab.restore()],
      ];
      for (const [key, what, applies, on, off] of variants) {
        if (!applies || left() < 30 + reserveS) continue;
        on();
        try {
          // (testing the containment: BENCH_AB_INJECT=<key> fails that variant)
          if (process.env.BENCH_AB_INJECT === key) throw new Error(`injected A/B failure in ${key} (BENCH_AB_INJECT)`);
          const { ms } = await timeSteps(lib, trainer, lq, gt);
          ours[key] = { msStep: ms, peakCudaMiB: await stepPeak() };
          // and as the default trains, in graph mode: a warm step, the recording, replays (recordings freed after)
          if (device === 'cuda' && left() > 30 + reserveS) {
            trainer.graph = true;
            try {
              ours[key].graphMs = (await timeSteps(lib, trainer, lq, gt, 6)).ms;
            } finally {
              trainer.graph = false;
            }
          }
        } catch (e) {  // the family's own figures stand; the next variants are tried; later families run afresh
          ours[key] = { error: errText(e) };
          ours.abError ??= `${key}: ${ours[key].error}`;
          log(`ours ${model} with ${what} (BENCH_AB): ERROR ${ours[key].error}`);
          continue;
        } finally {
          off();
        }
        log(`ours ${model} with ${what} (BENCH_AB): ${ours[key].msStep.toFixed(1)} ms/step` +
          `${ours[key].graphMs ? ` (${ours[key].graphMs.toFixed(1)} as a graph)` : ''}, peak live ${ours[key].peakCudaMiB.toFixed(0)} MiB, against ${msStep.toFixed(1)} ms, ${ours.peakCudaMiB.toFixed(0)} MiB`);
      }
      trainer.dispose();
      abNet.dispose?.();
    } catch (e) {  // (setting up the A/B failed)
      ours.abError ??= errText(e);
      log(`ours ${model}: A/B ERROR ${ours.abError}`);
    }
    for (const t of [lq, gt]) t.dispose();
  } catch (e) {
    ours.error = errText(e);
    log(`ours ${model}: ERROR ${ours.error}`);
  }
  return ours;
}

/** A tuning report in one line: what was chosen, each trial's median replay time (and why one was not taken). */
function tuneText(t) {
  if (t.error) return `FAILED (${t.error})`;
  return `chose ${t.chosen.join(' + ') || 'the default paths'} in ${t.seconds.toFixed(1)} s: ` +
    t.trials.map((x) => `${x.name} ${x.ms === null ? '-' : `${x.ms.toFixed(1)} ms`}${x.ok ? '' : ` (${x.note.slice(0, 60)})`}`).join('; ');
}

/** An error's code and first line. */
function errText(e) {
  return `${e?.code ? `${e.code}: ` : ''}${String(e?.message ?? e).split('\n')[0]}`;
}

/**
 * The benchmark. Sets IRCONSTYLE_BACKEND=cuda (unless set) before loading the library. Returns a result object:
 * { skipped } without CUDA, otherwise { device, ours, pytorch, ratios, table }.
 * `families`: which of nafnet, restormer, maxim run (default all). `safe`: the block forwards composed of separate
 * ops (scripts/unfused-blocks.mjs) and only the plain and graph-mode steps, the peak memory and inference — the fallback
 * run of scripts/device-check.mjs when a new kernel failed. `reusePytorch`: an earlier run's bench JSON whose PyTorch
 * numbers stand in for running PyTorch again (ratios against the same machine's reference).
 */
export async function runBench({
  budgetS = 300, pytorch = true, log = console.log, outDir = null, batch = 16, size = 128, K = 65760,
  device = 'cuda', model = 'constyle-nafnet', pytorchArgs = [], families = ['nafnet', 'restormer', 'maxim'],
  safe = false, reusePytorch = null, outName = 'bench-gpu.json',
} = {}) {
  const T0 = Date.now();
  const left = () => budgetS - (Date.now() - T0) / 1000;
  process.env.IRCONSTYLE_BACKEND ??= 'cuda';
  // the kernel tuning also tries the variants not yet proven on a GPU (TRIAL_VARIANTS): measuring them is this
  // bench's job (scripts/device-check.mjs runs it after their op cases, leaving out any that failed)
  process.env.IRCONSTYLE_TUNE ??= 'all';
  const lib = await import(pathToFileURL(join(ROOT, 'dist', 'lib', 'index.js')).href);
  const { native } = await import(pathToFileURL(join(ROOT, 'dist', 'lib', 'native', 'loader.js')).href);
  const info = lib.backendInfo();
  if (device === 'cuda' && info.device !== 'cuda') return { skipped: `CUDA unavailable: ${lib.backend()}` };
  log(`bench: ${budgetS} s budget${safe ? '; safe mode: block forwards unfused, plain and graph-mode steps and inference only' : ''}`);
  const result = { device: device === 'cuda' ? info.cuda.name : 'cpu (smoke test)', backend: lib.backend(), config: { model, batch, size, K, lr: 3e-4, wd: 1e-4 }, safe };
  const names = new Set(['IRCONSTYLE_TF32', 'IRCONSTYLE_TUNE', ...KERNEL_SWITCHES.flatMap((k) => [...Object.keys(k.env), ...Object.keys(k.on)])]);
  const env = Object.entries(process.env).filter(([k]) => names.has(k));
  if (env.length) log(`bench: kernel switches ${env.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  result.switches = Object.fromEntries(env);
  if (safe) (await unfusedBlocks(ROOT)).patch();
  const earlier = reusePytorch ? JSON.parse(readFileSync(reusePytorch, 'utf8')) : null;
  // written as the run goes, so that a crash (a poisoned CUDA context) leaves what was measured before it
  const save = () => { if (outDir) writeFileSync(join(outDir, outName), JSON.stringify(result, null, 1)); };

  // Which PyTorch references run: BENCH_PYTORCH=nafnet,restormer,maxim (default all) limits them in short runs.
  const refs = (process.env.BENCH_PYTORCH ?? 'nafnet,restormer,maxim').split(',');
  const wantRef = (family) => pytorch && refs.includes(family);
  // PyTorch first (bounded, known cost), so its numbers exist even if ours run out of time.
  result.pytorchRefs = { ...earlier?.pytorchRefs };  // by model, saved at once (a rerun's reuse reads them)
  if (earlier) result.pytorch = earlier.pytorchRefs?.[model];
  else if (wantRef('nafnet') && families.includes('nafnet')) {
    log('pytorch: python3 scripts/pytorch/constyle_nafnet.py ...');
    // It needs about 60 s on the H100 (model build, cuDNN autotuning, 23 steps, inference); a shorter limit kills it.
    result.pytorch = await runPyTorch(Math.min(240, Math.max(90, left() * 0.6)), log, pytorchArgs);
    log(`pytorch: ${JSON.stringify(result.pytorch)}`);
    result.pytorchRefs[model] = result.pytorch;
    save();
  }

  // The other ConStyle families, each beside its PyTorch reference (scripts/pytorch) when time allows. A family's A/B
  // variants leave the time the later families' own figures need (reserveS: their PyTorch runs and steps).
  const rest = device === 'cuda' && model === 'constyle-nafnet'
    ? [['constyle-restormer', 8, 'constyle_restormer.py', 'restormer'], ['constyle-maxim', 16, 'constyle_maxim.py', 'maxim']]
      .filter(([, , , family]) => families.includes(family)) : [];
  const reserve = (after) => rest.slice(after).reduce((a, [, , , f]) => a + 50 + (!earlier && wantRef(f) ? 90 : 0), 0);
  result.others = [];
  const progress = (into) => (o) => { Object.assign(into, o); save(); };  // a family's figures before its A/B
  result.ours = {};
  const ours = (result.ours = families.includes('nafnet') ? await benchModel(lib, native, { model, batch, size, K, device, left, log, profile: true, safe, reserveS: reserve(0), saveProgress: progress(result.ours) }) : { skipped: 'not asked for' });
  save();

  // After a failed step or A/B variant the rest are left to a fresh process (a CUDA error may have poisoned this
  // one's context): `notRun`.
  const failed = (o) => o.error || o.nonFinite || o.abError;
  if (rest.length) {
    for (const [j, [m, b, script, family]] of rest.entries()) {
      if (failed(ours) || result.others.some(failed)) {
        result.notRun = rest.slice(j).map(([, , , f]) => f);
        log(`ours: ${result.notRun.join(', ')} not run here after a failed step or A/B variant`);
        break;
      }
      if (left() < 45) { log(`ours: ${m} skipped (time budget)`); continue; }
      let pt = earlier?.pytorchRefs?.[m] ?? null;
      if (!earlier && wantRef(family) && left() > 150) {
        log(`pytorch: python3 scripts/pytorch/${script} ...`);
        pt = await runPyTorch(Math.min(180, Math.max(90, left() * 0.4)), log, [], script);
        log(`pytorch: ${JSON.stringify(pt)}`);
        result.pytorchRefs[m] = pt;
        save();
      }
      const entry = { model: m, batch: b };
      result.others.push(entry);
      const o = await benchModel(lib, native, { model: m, batch: b, size, K, device, left, log, steps: 6, inferReps: 8, profile: true, safe, reserveS: reserve(j + 1), saveProgress: progress(entry) });
      const usable = pt && !pt.error;
      delete entry.abRunning;
      delete entry.tuneRunning;  // (set while it tuned; still in o if it failed there)
      Object.assign(entry, o, { pytorch: pt, ratioImgPerS: usable ? o.imgPerS / pt.train_img_per_s : NaN,
        ratioInfer512: usable ? o.infer512Ms / pt.infer_512_ms : NaN });
      save();
    }
  }

  // Which GPU libraries and GEMM plans the runs used (cuBLASLt plans in use / refused, when reported).
  if (typeof native.gpuLibs === 'function') {
    result.gpuLibs = native.gpuLibs();
    log(`gpu libraries after the runs: ${result.gpuLibs.replace(/\n/g, '; ')}`);
  }

  // --- ratios and table
  const pt = result.pytorch && !result.pytorch.error ? result.pytorch : null;
  const r = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
  result.ratios = pt ? {
    msStep: r(ours.msStep, pt.train_ms_per_step), imgPerS: r(ours.imgPerS, pt.train_img_per_s),
    infer256Ms: r(ours.infer256Ms, pt.infer_256_ms), infer512Ms: r(ours.infer512Ms, pt.infer_512_ms),
    peakMiB: r(ours.peakCudaMiB, pt.peak_allocated_mib),
  } : null;
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const row = (name, a, b, ratio, d = 1) => `  ${name.padEnd(36)} ${f(a, d).padStart(9)} ${f(b, d).padStart(9)} ${f(ratio, 2).padStart(7)}`;
  result.table = [
    `bench ConStyle NAFNet paper size on ${result.device}: ours vs PyTorch (ratio ours/PyTorch)`,
    `  ${''.padEnd(36)} ${'ours'.padStart(9)} ${'PyTorch'.padStart(9)} ${'ratio'.padStart(7)}`,
    row(`train ms/step op by op (b${batch} ${size}²)`, ours.msStep, pt?.train_ms_per_step, result.ratios?.msStep),
    row('train img/s op by op (higher=better)', ours.imgPerS, pt?.train_img_per_s, result.ratios?.imgPerS),
    row('  as a CUDA graph (default): img/s', ours.graph?.graphed ? ours.graph.imgPerS : NaN, pt?.train_img_per_s, r(ours.graph?.graphed ? ours.graph.imgPerS : NaN, pt?.train_img_per_s)),
    ...[ours, ...result.others].filter((o) => o.tune).map((o) => `  ${o.model ?? model} kernel tuning: ${tuneText(o.tune)}`),
    ...[ours, ...result.others].filter((o) => o.infer512Graph?.tune).map((o) => `  ${o.model ?? model} 512² inference tuning: ${tuneText(o.infer512Graph.tune)}`),
    ...(ours.graph && !ours.graph.graphed ? [`  (training step not graphed: ${String(ours.graph.reason).slice(0, 160)})`] : []),
    row('inference 1x256² ms', ours.infer256Ms, pt?.infer_256_ms, result.ratios?.infer256Ms, 2),
    row('inference 1x512² ms', ours.infer512Ms, pt?.infer_512_ms, result.ratios?.infer512Ms, 2),
    row('  as a CUDA graph, tuned: 256² ms', ours.infer256Graph?.ms, pt?.infer_256_ms, r(ours.infer256Graph?.ms, pt?.infer_256_ms), 2),
    row('  as a CUDA graph, tuned: 512² ms', ours.infer512Graph?.ms, pt?.infer_512_ms, r(ours.infer512Graph?.ms, pt?.infer_512_ms), 2),
    ...[ours.infer256Graph, ours.infer512Graph].filter((g) => g && !g.graphed).slice(0, 1).map((g) => `  (not graphed: ${g.reason.slice(0, 160)})`),
    `  (host submission of one forward: ${f(ours.infer256SubmitMs, 2)} ms at 256², ${f(ours.infer512SubmitMs, 2)} ms at 512²)`,
    row('peak GPU MiB (allocated)', ours.peakCudaMiB, pt?.peak_allocated_mib, result.ratios?.peakMiB, 0),
    row('  graph-mode step (tuned): MiB reserved', ours.graph?.graphed ? ours.graph.graphMiB : NaN, pt?.peak_allocated_mib, r(ours.graph?.graphed ? ours.graph.graphMiB : NaN, pt?.peak_allocated_mib), 0),
    row('  + op scratch', ours.peakCudaMiB + ours.scratchMiB, pt?.peak_allocated_mib, r(ours.peakCudaMiB + ours.scratchMiB, pt?.peak_allocated_mib), 0),
    ...(ours.checkpointed ? [row('  with checkpoint: ms/step', ours.checkpointed.msStep, pt?.train_ms_per_step, r(ours.checkpointed.msStep, pt?.train_ms_per_step)),
      row('  with checkpoint: peak MiB', ours.checkpointed.peakCudaMiB, pt?.peak_allocated_mib, r(ours.checkpointed.peakCudaMiB, pt?.peak_allocated_mib), 0)] : []),
    ...[['block ops unfused', ours.unfused], ['LayerNorm and 1x1 apart', ours.lnApart], ['SCA scale apart', ours.scaleApart]].filter(([, o]) => o).map(([what, o]) =>
      row(`  A/B ${what}: ms/step`, o.msStep, pt?.train_ms_per_step, r(o.msStep, pt?.train_ms_per_step)) +
        `${o.graphMs ? `  (graph ${f(o.graphMs)} ms, ratio ${f(r(o.graphMs, pt?.train_ms_per_step), 2)})` : ''}${o.peakCudaMiB ? `  (peak ${f(o.peakCudaMiB, 0)} MiB)` : ''}`),
    ...(ours.profile ? [`  profiled step: ${f(ours.profile.wallMs)} ms wall (all ops submitted by ${f(ours.profile.submitMs)}; ${f(ours.profile.hostNativeMs)} ms of host time inside native submit/dispose), ${f(ours.profile.gpuMs)} ms GPU in ${ours.profile.ops} ops; top: ${ours.profile.top.slice(0, 4).map((p) => `${p.op} ${f(p.ms)}`).join(', ')}`] : []),
    ...(ours.profile?.exact ? [`  exact GPU time of a step: ${f(ours.profile.exact.gpuMs)} ms; top: ${ours.profile.exact.top.slice(0, 4).map((p) => `${p.op} ${f(p.ms)}`).join(', ')}`] : []),
    ...(ours.infer512Profile ? [`  inference 512² exact GPU time: ${f(ours.infer512Profile.gpuMs)} ms; top: ${ours.infer512Profile.top.slice(0, 4).map((p) => `${p.op} ${f(p.ms)}`).join(', ')}`] : []),
    ...(ours.error ? [`  ours: ERROR ${ours.error}`] : []),
    ...[ours, ...result.others].filter((o) => o.nonFinite).map((o) => `  ${o.model ?? model}: NON-FINITE training loss`),
    ...[ours, ...result.others].filter((o) => o.abError).map((o) => `  ${o.model ?? model}: A/B ERROR ${o.abError}`),
    ...result.others.map((o) => `  ${o.model} b${o.batch}: ${o.error ? `ERROR ${o.error}` : `${f(o.msStep)} ms/step, ${f(o.imgPerS)} img/s, peak ${f(o.peakCudaMiB, 0)} MiB (op scratch so far ${f(o.scratchMiB, 0)} MiB), infer ${f(o.infer256Ms, 2)} / ${f(o.infer512Ms, 2)} ms, as a graph ${f(o.infer256Graph?.ms, 2)} / ${f(o.infer512Graph?.ms, 2)} ms; graph-mode step ${o.graph?.graphed ? `${f(o.graph.msStep)} ms, ${f(o.graph.graphMiB, 0)} MiB reserved` : `not graphed (${String(o.graph?.reason ?? '-').slice(0, 80)})`}`}` +
      (o.pytorch && !o.pytorch.error ? `; PyTorch ${f(o.pytorch.train_ms_per_step)} ms/step, ${f(o.pytorch.infer_256_ms, 2)} / ${f(o.pytorch.infer_512_ms, 2)} ms, peak ${f(o.pytorch.peak_allocated_mib, 0)} MiB: img/s ratio ${f(o.ratioImgPerS, 2)}, 512² latency ratio ${f(o.ratioInfer512, 2)}` : o.pytorch?.error ? `; PyTorch ERROR ${o.pytorch.error.slice(0, 120)}` : '')),
    ...result.others.filter((o) => o.unfused || o.spatialGate || o.keepIntermediates).map((o) => `    A/B ${o.model}: ` + [
      ['intermediates kept, not formed again', o.keepIntermediates], ['block ops unfused', o.unfused], ['gating units as one op', o.spatialGate], ['  and Dense outputs kept', o.keepDense]].filter(([, v]) => v)
      .map(([what, v]) => `${what.trim()} ${f(v.msStep)} ms${v.graphMs ? ` (graph ${f(v.graphMs)})` : ''}${v.peakCudaMiB ? `, peak ${f(v.peakCudaMiB, 0)} MiB` : ''}`).join('; ')),
    ...(result.pytorch?.error ? [`  PyTorch: ERROR ${result.pytorch.error.slice(0, 200)}`] : []),
    '  anchors (../shared/anchors/README.md, H100): PyTorch 253.7 ms/step, 63.1 img/s, 20.8 / 30.3 ms, 26,990 MiB;',
    '    ConStyle Restormer b8 262.0 ms/step, 45.9 / 109.6 ms, 25,655 MiB; ConStyle MAXIM b16 184.5 ms/step, 58.9 / 65.6 ms, 15,111 MiB',
  ];
  const switches = env.map(([k, v]) => `${k}=${v}`).join(' ');
  if (safe) result.table.splice(1, 0, `  (safe mode: block forwards unfused; ${switches || 'no kernel switches'})`);
  else if (switches) result.table.splice(1, 0, `  (kernel switches: ${switches})`);
  save();
  return result;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const a = process.argv.slice(2);
  const budget = a.includes('--budget') ? Number(a[a.indexOf('--budget') + 1]) : 300;
  // --cpu-smoke: exercises this script without a GPU (tiny model on the CPU; PyTorch run as `--check`).
  const smoke = a.includes('--cpu-smoke') ? { device: 'cpu', model: 'constyle-nafnet-tiny', batch: 2, size: 32, K: 64, pytorchArgs: ['--check'] } : {};
  if (a.includes('--cpu-smoke')) process.env.IRCONSTYLE_BACKEND ??= 'cpu';
  const families = a.includes('--only') ? a[a.indexOf('--only') + 1].split(',') : undefined;
  const res = await runBench({ budgetS: budget, pytorch: !a.includes('--no-pytorch'), log: a.includes('--json') ? () => {} : console.log,
    safe: a.includes('--safe'), families, ...smoke });
  if (a.includes('--json')) console.log(JSON.stringify(res));
  else if (res.skipped) console.log(`bench:gpu: nothing to measure — ${res.skipped}. (Build with nvcc and run on a machine with an NVIDIA GPU; see scripts/pytorch/README.md.)`);
  else for (const l of res.table) console.log(l);
  process.exitCode = 0;
}
