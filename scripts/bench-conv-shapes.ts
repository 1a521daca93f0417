// npm run bench:conv-shapes [-- --model <name>] [--size S] [--backward]: times every distinct conv2d shape of a
// named model's inference at 1×S² (default constyle-nafnet, 256), forward (and backward), with its GFLOP/s.
import { Conv2d } from '../lib/nn/layers.js';
import { createModel } from '../lib/models/catalog.js';
import type { Module } from '../lib/nn/module.js';
import { native } from '../lib/native/loader.js';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { tidy } from '../lib/tensor/scope.js';
import { noGrad } from '../lib/autograd/node.js';
import { runOp } from '../lib/ops/run.js';
import { sync } from '../lib/tensor/memory.js';

const si = process.argv.indexOf('--size');
const S = si > 0 ? Number(process.argv[si + 1]) : 256;
const withBackward = process.argv.includes('--backward');
type Key = string;
const seen = new Map<Key, { x: number[]; w: number[]; stride: number; pad: number; groups: number; count: number }>();
const orig = Conv2d.prototype.forward;
Conv2d.prototype.forward = function (this: Conv2d, x: Tensor) {
  const w = this.P.weight!;
  const k = `${x.shape.join('x')}|${w.shape.join('x')}|s${this.stride}|g${this.groups}`;
  const e = seen.get(k);
  if (e) e.count++;
  else seen.set(k, { x: [...x.shape], w: [...w.shape], stride: this.stride, pad: this.pad, groups: this.groups, count: 1 });
  return orig.call(this, x);
};
const mi = process.argv.indexOf('--model');
const modelName = mi > 0 ? process.argv[mi + 1]! : 'constyle-nafnet';
const model = (createModel(modelName, { constyle: 'inference' }) as Module & { forward(x: Tensor): Tensor }).eval();
const img = tensor(new Float32Array(S * S * 3).fill(0.5), [1, S, S, 3]);
await noGrad(() => tidy(() => model.forward(img))).data();
Conv2d.prototype.forward = orig;
model.dispose();

const rows: string[] = [];
let totalMs = 0;
for (const e of [...seen.values()]) {
  const x = tensor(new Float32Array(e.x.reduce((a, b) => a * b)).fill(0.1), e.x);
  const w = tensor(new Float32Array(e.w.reduce((a, b) => a * b)).fill(0.01), e.w);
  const run = async () => {
    const [y] = runOp('conv2d', [x, w], [e.stride, e.pad, e.groups]);
    if (withBackward) {
      const outs = runOp('conv2d_backward', [y!, x, w], [e.stride, e.pad, e.groups]);
      await sync();
      outs.forEach((t) => t.dispose());
    } else await sync();
    y!.dispose();
  };
  await run();
  const ts: number[] = [];
  for (let i = 0; i < 3; ++i) {
    const t0 = performance.now();
    await run();
    ts.push(performance.now() - t0);
  }
  const ms = ts.sort((a, b) => a - b)[1]!;
  const [, h, wd] = e.x as [number, number, number, number];
  const [kh, kw, ci, co] = e.w as [number, number, number, number];
  const ho = Math.floor((h + 2 * e.pad - kh) / e.stride) + 1, wo = Math.floor((wd + 2 * e.pad - kw) / e.stride) + 1;
  const flops = 2 * ho * wo * kh * kw * ci * co * (withBackward ? 3 : 1);
  totalMs += ms * e.count;
  rows.push(`${`x[${e.x.join(',')}] w[${e.w.join(',')}] s${e.stride} g${e.groups}`.padEnd(44)} ×${String(e.count).padStart(3)}  ${ms.toFixed(2).padStart(8)} ms  ${(flops / ms / 1e6).toFixed(1).padStart(7)} GFLOP/s  total ${(ms * e.count).toFixed(0).padStart(5)} ms`);
  x.dispose();
  w.dispose();
}
console.log(`conv2d shapes of ${modelName} at 1×${S}² (${native.info().gemm}, ${native.info().threads} threads)${withBackward ? ', forward+backward' : ''}`);
console.log(rows.join('\n'));
console.log(`sum over calls: ${totalMs.toFixed(0)} ms`);
