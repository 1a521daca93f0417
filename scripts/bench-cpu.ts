// npm run bench:cpu [-- --json] [--onnx <model.onnx>] [--reps N]
// GEMM GFLOP/s against the measured FMA peak; paper-size ConStyle NAFNet inference (1×256²) and one training
// step (2×128²), beside onnxruntime-node on the same network in the same run when it is installed.
import { readFileSync, existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { createRequire } from 'node:module';
import { native, packageRoot } from '../lib/native/loader.js';
import { backend } from '../lib/native/backend.js';
import { profileOps, formatProfile } from '../lib/native/profile.js';
import { tensor } from '../lib/tensor/tensor.js';
import { tidy } from '../lib/tensor/scope.js';
import { noGrad } from '../lib/autograd/node.js';
import { runOp } from '../lib/ops/run.js';
import { sync } from '../lib/tensor/memory.js';
import { constyleNAFNet } from '../lib/models/constyle_nafnet.js';
import { createModel } from '../lib/models/catalog.js';
import type { Module } from '../lib/nn/module.js';
import type { Tensor } from '../lib/tensor/tensor.js';
import { IRConStyleTrainer } from '../lib/train/irconstyle.js';
import { Rng } from '../lib/data/photos.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const profile = argv.includes('--profile');
const opt = (k: string) => (argv.indexOf(k) >= 0 ? argv[argv.indexOf(k) + 1] : undefined);
const reps = Number(opt('--reps') ?? 3);
const onnxPath = opt('--onnx') ?? process.env.IRCONSTYLE_ONNX ?? `${packageRoot()}/../shared/anchors/constyle_nafnet_w48.onnx`;
const log = (s: string) => {
  if (!json) console.log(s);
};
// The part of onnxruntime-node used here (an optional, not-installed-by-default anchor).
interface OrtModule {
  InferenceSession: { create(model: Uint8Array, o: object): Promise<{ inputNames: string[]; run(feeds: object): Promise<unknown> }> };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => object;
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;

function randn(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; ++i) a[i] = r.uniform();
  return a;
}

async function time(fn: () => Promise<void>, n = reps): Promise<number> {
  await fn(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < n; ++i) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

const info = native.info();
const result: Record<string, unknown> = {
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model,
  threads: info.threads,
  gemmIsa: info.gemm,
  backend: backend(),
};
log(`irconstyle CPU benchmark — ${result.cpu}, ${info.threads} threads, GEMM ${info.gemm}, ${result.backend}`);

// 1. FMA peak and GEMM.
// The best of three short measurements: a single one is easily disturbed by other work on the machine.
const peak = Math.max(await native.fmaPeak(), await native.fmaPeak(), await native.fmaPeak());
result.fmaPeakGflops = peak;
log(`FMA peak (measured): ${peak.toFixed(1)} GFLOP/s`);
const gemms: Record<string, number>[] = [];
for (const [m, k, n] of [[1024, 1024, 1024], [65536, 48, 96], [65536, 96, 48], [16384, 192, 384], [4096, 1296, 144]] as const) {
  const a = tensor(randn(m * k, 1), [m, k]);
  const b = tensor(randn(k * n, 2), [k, n]);
  const ms = await time(async () => {
    const [c] = runOp('matmul', [a, b], [0, 0]);
    await sync();
    c!.dispose();
  });
  const gf = (2 * m * n * k) / (ms * 1e6);
  gemms.push({ m, k, n, ms, gflops: gf, ofPeak: gf / peak });
  log(`  sgemm ${m}×${k} · ${k}×${n}: ${ms.toFixed(2)} ms, ${gf.toFixed(1)} GFLOP/s (${((100 * gf) / peak).toFixed(0)}% of peak)`);
  a.dispose();
  b.dispose();
}
result.gemm = gemms;

// 2. Paper-size ConStyle NAFNet inference, 1×256².
const S = 256;
const img = randn(S * S * 3, 3);
const infer = constyleNAFNet({ constyle: 'inference' }).eval();
const x = tensor(img, [1, S, S, 3]);
const oursMs = await time(async () => {
  const y = noGrad(() => tidy(() => infer.forward(x)));
  await y.data();
  y.dispose();
});
result.inference256Ms = oursMs;
log(`ConStyle NAFNet (${infer.numParameters().toLocaleString()} params) inference 1×${S}²: ${oursMs.toFixed(0)} ms`);
if (profile) {
  const rows = await profileOps(async () => {
    const y = noGrad(() => tidy(() => infer.forward(x)));
    await y.data();
    y.dispose();
  });
  result.inferenceProfile = rows;
  log(formatProfile(rows));
}
infer.dispose();

// 2b. The other ConStyle backbones at the same size, as a ratio of the NAFNet time (issue 3).
const backbones: Record<string, unknown> = {};
result.backbones = backbones;
for (const name of ['constyle-restormer', 'constyle-maxim']) {
  const m = createModel(name, { constyle: 'inference' }).eval() as Module & { forward(t: Tensor): Tensor };
  const ms = await time(async () => {
    const y = noGrad(() => tidy(() => m.forward(x)));
    await y.data();
    y.dispose();
  }, Math.max(1, reps - 1));
  backbones[name] = { ms, params: m.numParameters(), vsNafnet: ms / oursMs };
  log(`${name} (${m.numParameters().toLocaleString()} params) inference 1×${S}²: ${ms.toFixed(0)} ms (${(ms / oursMs).toFixed(2)}× the ConStyle NAFNet time)`);
  m.dispose();
}
x.dispose();

// 3. onnxruntime-node on the official export, same input size, same threads.
let ortMs: number | null = null;
try {
  const require = createRequire(import.meta.url);
  const ort = require('onnxruntime-node') as OrtModule;
  if (!existsSync(onnxPath)) throw new Error(`no ONNX model at ${onnxPath} (pass --onnx <file>)`);
  const sess = await ort.InferenceSession.create(readFileSync(onnxPath), { intraOpNumThreads: info.threads, interOpNumThreads: 1 });
  const feeds = { [sess.inputNames[0]!]: new ort.Tensor('float32', randn(3 * S * S, 4), [1, 3, S, S]) };
  ortMs = await time(async () => {
    await sess.run(feeds);
  });
  log(`onnxruntime-node ${require('onnxruntime-node/package.json').version} same network 1×${S}²: ${ortMs.toFixed(0)} ms`);
  log(`  ratio (onnxruntime / irconstyle): ${(ortMs / oursMs).toFixed(2)}× ${ortMs / oursMs >= 1 ? '(irconstyle faster)' : '(irconstyle slower)'}`);
} catch (e) {
  log(`onnxruntime-node anchor skipped: ${(e as Error).message.split('\n')[0]}`);
  log('  install it with: ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save onnxruntime-node');
}
result.onnxruntime256Ms = ortMs;
result.ratioVsOnnxruntime = ortMs ? ortMs / oursMs : null;

// 4. One training step at 2×128² (paper size, K = 65,760, all four losses, AdamW).
const model = constyleNAFNet();
const trainer = new IRConStyleTrainer(model);
const T = 128;
const lq = tensor(randn(2 * T * T * 3, 5), [2, T, T, 3]);
const gt = tensor(randn(2 * T * T * 3, 6), [2, T, T, 3]);
const stepMs = await time(async () => {
  await trainer.step(lq, gt);
}, Math.max(1, reps - 1));
result.trainStep2x128Ms = stepMs;
if (profile) {
  const rows = await profileOps(async () => {
    await trainer.step(lq, gt);
  });
  result.trainProfile = rows;
  log(formatProfile(rows));
}
log(`ConStyle NAFNet training step 2×${T}² (${model.numParameters().toLocaleString()} params incl. momentum encoder): ${stepMs.toFixed(0)} ms (${((2 * 1000) / stepMs).toFixed(2)} img/s)`);
trainer.dispose();
model.dispose();
lq.dispose();
gt.dispose();

if (json) console.log(JSON.stringify(result, null, 2));
