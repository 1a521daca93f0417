// npm run mem:model [-- --models constyle-nafnet,constyle-maxim] [--size 128] [--no-checkpoint] [--breakdown [rows]]
//
// Predicts the peak GPU memory of `bench:gpu`'s training steps on a machine without a GPU. On CUDA a tensor's
// memory is held from the op's submission until JS releases it; on the CPU it is allocated when the kernel runs
// and freed once both JS and the kernels are done with it, which can be much earlier (the JS thread runs ahead).
// With IRCONSTYLE_CPU_QUEUE_DEPTH=1 the JS thread waits for each op, so CPU memory is held over the same intervals as
// on CUDA, and the fused ops recompute in their backward as they do there (not keeping their intermediates, the
// CPU's default). The peak of one step is measured at two batch sizes and extended linearly (fixed part: weights,
// optimizer state, queue; per-image part: activations) to the benchmark's batch.
// Checked against the H100 runs 5–7 with the code of commit f5e8ff9 (run 7): its activations at batch 2, scaled to
// the benchmark's batch, give 23,984 / 32,879 / 17,313 MiB for ConStyle NAFNet b16 / Restormer b8 / MAXIM b16,
// against 23,767 / 32,787 / 17,099 MiB measured there (without the queue depth of 1: 23,488 / 22,183 / 11,089).
process.env.IRCONSTYLE_CPU_QUEUE_DEPTH = '1';
process.env.IRCONSTYLE_BACKEND = 'cpu';
const { join, dirname } = await import('node:path');
const { fileURLToPath, pathToFileURL } = await import('node:url');
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const load = (p) => import(pathToFileURL(join(ROOT, 'dist', 'lib', p)).href);
const [lib, { native }, fused, opsGen] = await Promise.all([
  load('index.js'), load('native/loader.js'), load('ops/fused.js'), load('native/ops.gen.js'),
]);

const MiB = 2 ** 20;
// PyTorch on the H100 (../shared/anchors/README.md: fp32, peak allocated), the benchmark's batches.
const MODELS = {
  'constyle-nafnet': { batch: 16, pytorchMiB: 26990 },
  'constyle-restormer': { batch: 8, pytorchMiB: 25655 },
  'constyle-maxim': { batch: 16, pytorchMiB: 15111 },
};
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const models = arg('models', Object.keys(MODELS).join(',')).split(',');
const size = Number(arg('size', '128'));
const modes = process.argv.includes('--no-checkpoint') ? [false] : [false, true];
const breakdownAt = process.argv.indexOf('--breakdown');
const breakdownRows = breakdownAt > 0 ? Number(/^\d+$/.test(process.argv[breakdownAt + 1] ?? '') ? process.argv[breakdownAt + 1] : 25) : 0;
for (const m of models) if (!MODELS[m]) throw new Error(`unknown model '${m}' (one of ${Object.keys(MODELS).join(', ')})`);

function images(n, seed) {
  let a = seed >>> 0;
  const data = new Float32Array(n * size * size * 3);
  for (let i = 0; i < data.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    data[i] = a / 4294967296;
  }
  return lib.tensor(data, [n, size, size, 3]);
}

// --breakdown: which tensors are alive at the peak. Every storage is followed from the op (or upload) that made it
// through its views to the release of its last handle; at each new high of the live bytes the live set is summed by
// producing op and output shape. With the queue depth of 1 it equals native.memoryStats().peakBytes (printed beside
// it), so the rows account for the whole peak. It also says where the peak falls (forward or backward) and which
// live tensors no backward holds: a view made by the autograd tape's record() (found by its name on the stack,
// tape.js of dist/) is a tensor saved for a backward; a storage alive without one is held only by a JS handle — an
// intermediate some scope keeps past its last reader, or a gradient, or a parameter.
const ledger = { storages: new Map(), saved: new Set(), live: 0, peak: 0, at: null, unsaved: null, on: false, ops: 0, firstBackward: 0, peakOp: '', peakIndex: 0 };
function watchAllocations() {
  const { OPS } = opsGen;
  const run = native.run.bind(native), view = native.view.bind(native), dispose = native.dispose.bind(native);
  const fromData = native.fromData.bind(native);
  const hold = (h, rec) => {
    rec.refs++;
    ledger.storages.set(h, rec);
  };
  const born = (h, key, shape) => {
    const bytes = 4 * shape.reduce((a, b) => a * b, 1);
    hold(h, { key, bytes, refs: 0 });
    ledger.live += bytes;
  };
  native.run = (id, ids, attrs, dev) => {
    const out = run(id, ids, attrs, dev);
    if (ledger.on) {
      ledger.ops++;
      if (!ledger.firstBackward && OPS[id].name.endsWith('_backward')) ledger.firstBackward = ledger.ops;
    }
    for (let k = 0; k < out.length; ) {
      const h = out[k];
      const rank = out[k + 2];
      const shape = out.slice(k + 3, k + 3 + rank);
      born(h, `${OPS[id].name} [${shape}]`, shape);
      k += 3 + rank;
    }
    if (ledger.on && ledger.live > ledger.peak) {
      ledger.peak = ledger.live;
      ledger.peakOp = `${OPS[id].name}, op ${ledger.ops}`;
      ledger.peakIndex = ledger.ops;
      ledger.at = new Map();
      ledger.unsaved = new Map();
      const savedRecs = new Set([...ledger.storages].filter(([h]) => ledger.saved.has(h)).map(([, r]) => r));
      for (const r of new Set(ledger.storages.values())) {
        ledger.at.set(r.key, (ledger.at.get(r.key) ?? 0) + r.bytes);
        if (!savedRecs.has(r)) ledger.unsaved.set(r.key, (ledger.unsaved.get(r.key) ?? 0) + r.bytes);
      }
    }
    return out;
  };
  native.fromData = (data, shape, dev) => {
    const h = fromData(data, shape, dev);
    born(h, `upload [${shape}]`, shape);
    return h;
  };
  native.view = (id, offset, shape) => {
    const h = view(id, offset, shape);
    const rec = ledger.storages.get(id);
    if (rec) hold(h, rec);
    if (ledger.on && /\bat record \(/.test(new Error().stack ?? '')) ledger.saved.add(h);
    return h;
  };
  native.dispose = (id) => {
    const rec = ledger.storages.get(id);
    if (rec) {
      ledger.storages.delete(id);
      ledger.saved.delete(id);
      if (--rec.refs === 0) ledger.live -= rec.bytes;
    }
    return dispose(id);
  };
}

function printBreakdown(title, nativePeak) {
  const rows = [...ledger.at].sort((a, b) => b[1] - a[1]);
  const byOp = new Map();
  for (const [k, b] of rows) {
    const op = k.split(' ')[0];
    byOp.set(op, (byOp.get(op) ?? 0) + b);
  }
  const fmt = (b) => (b / MiB).toFixed(1).padStart(9);
  console.log(`\n${title}: live at the peak ${fmt(ledger.peak).trim()} MiB (allocator's peak ${(nativePeak / MiB).toFixed(1)} MiB), by the op that made each tensor:`);
  for (const [k, b] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, breakdownRows)) console.log(`  ${k.padEnd(44)}${fmt(b)} MiB`);
  console.log('  by op and output shape:');
  for (const [k, b] of rows.slice(0, breakdownRows)) console.log(`  ${k.padEnd(44)}${fmt(b)} MiB`);
  const where = ledger.firstBackward && ledger.peakIndex >= ledger.firstBackward ? 'backward' : 'forward';
  const unsaved = [...ledger.unsaved].sort((a, b) => b[1] - a[1]);
  console.log(`  the peak: at ${ledger.peakOp} of the step (${where}; the backward starts at op ${ledger.firstBackward || '-'})`);
  console.log(`  alive there but saved by no backward (parameters, optimizer state and gradients among them): ${fmt(unsaved.reduce((a, [, b]) => a + b, 0)).trim()} MiB`);
  for (const [k, b] of unsaved.slice(0, Math.min(10, breakdownRows))) console.log(`  ${k.padEnd(44)}${fmt(b)} MiB`);
}

/** Peak live bytes of one training step (after a warm-up step) at batch n. */
async function stepPeak(model, n, checkpoint) {
  lib.setInitSeed(1);
  const net = lib.createModel(model, { constyle: 'train', K: 65760 });
  const trainer = new lib.IRConStyleTrainer(net, { lr: 3e-4, weightDecay: 1e-4, checkpoint });
  const gt = images(n, 1), lq = images(n, 2);
  try {
    await trainer.step(lq, gt);
    await lib.sync();
    native.trim();
    Object.assign(ledger, { peak: 0, at: null, unsaved: null, on: breakdownRows > 0, ops: 0, firstBackward: 0, peakOp: '', peakIndex: 0 });
    await trainer.step(lq, gt);
    await lib.sync();
    ledger.on = false;
    const peak = native.memoryStats().peakBytes;
    if (breakdownRows && n === 2) printBreakdown(`${model} b${n}${checkpoint ? ' (checkpoint)' : ''}`, peak);
    return peak;
  } finally {
    trainer.dispose();
    net.dispose();
    gt.dispose();
    lq.dispose();
  }
}

if (breakdownRows) watchAllocations();
const was = fused.setKeepOnCpu(false);
const rows = [];
try {
  for (const model of models) {
    const { batch, pytorchMiB } = MODELS[model];
    for (const ck of modes) {
      const t0 = performance.now();
      const [p2, p4] = [await stepPeak(model, 2, ck), await stepPeak(model, 4, ck)];
      const perImage = (p4 - p2) / 2, fixed = p2 - 2 * perImage;
      const predicted = (fixed + batch * perImage) / MiB;
      rows.push({ model, batch, checkpoint: ck, fixedMiB: fixed / MiB, perImageMiB: perImage / MiB, predictedMiB: predicted, pytorchMiB, ratio: predicted / pytorchMiB });
      console.log(`${model}${ck ? ' (checkpoint)' : ''}: b2 ${(p2 / MiB).toFixed(0)} MiB, b4 ${(p4 / MiB).toFixed(0)} MiB → b${batch} ${predicted.toFixed(0)} MiB (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
  }
} finally {
  fused.setKeepOnCpu(was);
}
console.log(`\npredicted peak GPU memory of one training step at ${size}² (CPU model of CUDA's allocation intervals)`);
console.log('  model               batch  checkpoint  fixed MiB  per image MiB  predicted MiB  PyTorch MiB (H100 anchor)  ratio');
for (const r of rows)
  console.log(`  ${r.model.padEnd(20)}${String(r.batch).padStart(5)}  ${(r.checkpoint ? 'yes' : 'no').padStart(10)}  ${r.fixedMiB.toFixed(0).padStart(9)}  ${r.perImageMiB.toFixed(1).padStart(13)}  ${r.predictedMiB.toFixed(0).padStart(13)}  ${String(r.pytorchMiB).padStart(25)}  ${r.ratio.toFixed(2).padStart(5)}`);
