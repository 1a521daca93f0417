#!/usr/bin/env node
// npm run bench:gpu-ops — GPU time of each op of a NAFBlock (forward and backward) at the shapes of ConStyle NAFNet
// training (batch 16, 128x128: level 1 C = 48 and the bottom level C = 384 at 16x16), from stream events around
// each op (native.profile, exact: the GPU's time alone), median of --reps runs after warm-ups. Prints µs per call,
// the bytes the op must move (inputs + outputs, once each) and the effective bandwidth in GB/s against the card's
// peak: a memory-bound op near the peak is done; one far below it is the next thing to fix. Without CUDA it prints
// why and exits 0. Imported by scripts/device-check.mjs (runOpBench).
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { buildInputs } from './op-cases.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const f = (shape, lo = -1, hi = 1) => ({ shape, dtype: 'float32', lo, hi });
const pos = (shape) => f(shape, 0.5, 2);
const numel = (s) => s.reduce((a, b) => a * b, 1);
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };

/** The ops of one NAFBlock at [N, H, W, C] (the ConStyle NAFNet's U-Net level), in step order. */
function blockCases(N, H, W, C, tag) {
  const x = [N, H, W, C], x2 = [N, H, W, 2 * C], v = [N, 1, 1, C], rows = N * H * W;
  const w11 = (ci, co) => f([1, 1, ci, co], -0.2, 0.2);
  return [
    ['layer_norm2d', [f(x), pos([C]), f([C])], [1e-6]],
    ['conv2d', [f(x), w11(C, 2 * C), f([2 * C])], [1, 0, 1], '1x1 C->2C +b'],
    ['ln_conv1x1', [f(x), pos([C]), f([C]), w11(C, 2 * C), f([2 * C])], [1e-6], 'C->2C +b'], // with layer_norm2d,
    ['dwconv_gate', [f(x2), f([3, 3, 1, 2 * C]), f([2 * C])], [1]],
    ['global_avg_pool', [f(x)], []],
    ['channel_scale', [f(x), f(v)], []],
    ['conv2d', [f(x), w11(C, C), f([C])], [1, 0, 1], '1x1 C->C +b'],
    ['scaled_add', [f(x), f(x), f([1, 1, 1, C])], []],
    ['conv1x1_add', [f(x), w11(C, C), f(x), f([C]), f([1, 1, 1, C]), f(v)], [], 'x·a C->C +b ·s +r'],
    ['simple_gate', [f(x2)], []],
    ['conv1x1_gate', [f(x), w11(C, 2 * C), f([2 * C])], [], 'C->2C +b'], // conv2d 1x1 C->2C + simple_gate in one,
    ['ln_conv1x1_gate', [f(x), pos([C]), f([C]), w11(C, 2 * C), f([2 * C])], [1e-6], 'C->2C +b'], // and layer_norm2d,
    ['scaled_add_backward', [f(x), f(x), f([1, 1, 1, C])], []],
    ['conv1x1_add_backward', [f(x), f(x), w11(C, C), f([C]), f([1, 1, 1, C]), f(v)], [], 'x·a C->C +b ·s'],
    ['conv2d_backward', [f(x), f(x), w11(C, C)], [1, 0, 1], '1x1 C->C'],
    ['simple_gate_backward', [f(x), f(x2)], []],
    ['conv2d_backward', [f(x2), f(x), w11(C, 2 * C)], [1, 0, 1], '1x1 C->2C'],
    ['ln_conv1x1_backward', [f(x2), f(x), pos([C]), f([C]), w11(C, 2 * C), f([rows]), pos([rows]), f(x)], [1], 'C->2C +acc'], // and layer_norm2d_backward,
    ['conv1x1_gate_backward', [f(x), f(x), w11(C, 2 * C), f([2 * C])], [], 'C->2C +b'], // both lines above in one,
    ['ln_conv1x1_gate_backward', [f(x), f(x), pos([C]), f([C]), w11(C, 2 * C), f([rows]), pos([rows]), f([2 * C]), f(x)], [1], 'C->2C +b +acc'],
    ['channel_scale_backward', [f(x), f(x), f(v)], []],
    ['global_avg_pool_backward', [f(v), f(x)], []],
    ['dwconv_gate_backward', [f(x), f(x2), f([3, 3, 1, 2 * C]), f([2 * C])], [1]],
    ['layer_norm2d_backward', [f(x), f(x), pos([C]), f([rows]), pos([rows])], []],
    ['add', [f(x), f(x)], []],
    ['add_', [f(x), f(x)], []],
  ].map(([op, inputs, attrs, what]) => ({ op, name: `${op}${what ? ` ${what}` : ''} ${tag}`, inputs, attrs }));
}

// The fused 1x1 ops at ConStyle NAFNet's level-1 and level-2 shapes, by default and by the SIMT kernel
// (IRCONSTYLE_PW_SIMT=1): the A/B of that opt-in kernel (C = 48 has its default rows above).
function simtCases(N, H, W, C) {
  const x = [N, H, W, C], x2 = [N, H, W, 2 * C], v = [N, 1, 1, C], rows = N * H * W, tag = `[${x}]`;
  const w11 = (ci, co) => f([1, 1, ci, co], -0.2, 0.2);
  return [
    ['ln_conv1x1', [f(x), pos([C]), f([C]), w11(C, 2 * C), f([2 * C])], [1e-6], 'C->2C +b'],
    ['ln_conv1x1_backward', [f(x2), f(x), pos([C]), f([C]), w11(C, 2 * C), f([rows]), pos([rows]), f(x)], [1], 'C->2C +acc'],
    ['ln_conv1x1_gate', [f(x), pos([C]), f([C]), w11(C, 2 * C), f([2 * C])], [1e-6], 'C->2C +b'],
    ['ln_conv1x1_gate_backward', [f(x), f(x), pos([C]), f([C]), w11(C, 2 * C), f([rows]), pos([rows]), f([2 * C]), f(x)], [1], 'C->2C +b +acc'],
    ['conv1x1_add', [f(x), w11(C, C), f(x), f([C]), f([1, 1, 1, C]), f(v)], [], 'x·a C->C +b ·s +r'],
    ['conv1x1_add_backward', [f(x), f(x), w11(C, C), f([C]), f([1, 1, 1, C]), f(v)], [], 'x·a C->C +b ·s'],
  ].flatMap(([op, inputs, attrs, what]) => [
    ...(C === 48 ? [] : [{ op, name: `${op} ${what} ${tag}`, inputs, attrs }]),
    { op, name: `${op} ${what} ${tag}, SIMT (opt-in)`, inputs, attrs, env: { IRCONSTYLE_PW_SIMT: '1' } },
    // the SIMT dh pass with the LayerNorm's backward apart (its own kernels), against the row above (in the pass)
    ...(op.startsWith('ln_conv1x1') && op.endsWith('_backward') ? [{ op, name: `${op} ${what} ${tag}, SIMT, LN apart`,
      inputs, attrs, env: { IRCONSTYLE_PW_SIMT: '1', IRCONSTYLE_LN_FOLD: '0' } }] : []),
  ]);
}

// The sliding 3x3 depthwise kernels with each work item's loads issued first (IRCONSTYLE_SLIDE=batch), beside the
// default rows of the same shapes: NAFNet's gate at level 1 and Restormer's depthwise convs and GELU gate.
function slideCases(N, H, W, C, R) {
  const x = [N, H, W, C], x2 = [N, H, W, 2 * C], r = [N >> 1, H, W, R], rh = [N >> 1, H, W, R >> 1];
  return [
    ['dwconv_gate', `[${x2}]`, [f(x2), f([3, 3, 1, 2 * C]), f([2 * C])], [1]],
    ['dwconv_gate_backward', `[${x2}]`, [f(x), f(x2), f([3, 3, 1, 2 * C]), f([2 * C])], [1]],
    ['conv2d', `dw3x3 +b [${r}]`, [f(r), f([3, 3, 1, R], -0.2, 0.2), f([R])], [1, 1, R]],
    ['conv2d_backward', `dw3x3 [${r}]`, [f(r), f(r), f([3, 3, 1, R], -0.2, 0.2)], [1, 1, R]],
    ['dwconv_gate', `gelu [${r}]`, [f(r), f([3, 3, 1, R], -0.2, 0.2)], [1, 1]],
    ['dwconv_gate_backward', `gelu [${r}]`, [f(rh), f(r), f([3, 3, 1, R], -0.2, 0.2)], [1, 1]],
  ].map(([op, what, inputs, attrs]) => ({ op, name: `${op} ${what}, batched loads (opt-in)`, inputs, attrs, env: { IRCONSTYLE_SLIDE: 'batch' } })).concat([
    // the one-pass gate backward with its items rows first (the 5-row x windows shared through L1)
    { op: 'dwconv_gate_backward', name: `dwconv_gate_backward [${x2}], one-pass rows first (opt-in)`, inputs: [f(x), f(x2), f([3, 3, 1, 2 * C]), f([2 * C])], attrs: [1],
      env: { IRCONSTYLE_SLIDE: 'batch', IRCONSTYLE_DWGATE_BWD: 'one-pass' } },
  ]);
}

export function opBenchCases(smoke = false) {
  if (smoke) return [...blockCases(2, 8, 8, 8, 'smoke [2,8,8,8]'), ...simtCases(2, 8, 8, 16), ...slideCases(2, 8, 9, 8, 12)];
  return [
    ...blockCases(16, 128, 128, 48, 'L1 [16,128,128,48]'),
    ...simtCases(16, 128, 128, 48),
    ...simtCases(16, 128, 128, 96),
    ...simtCases(16, 64, 64, 144),  // one block per SM where it takes the shape (conv1x1_add's 144 x 144 weights)
    ...blockCases(16, 16, 16, 384, 'bottom [16,16,16,384]'),
    ...slideCases(16, 128, 128, 48, 510),  // against the L1 rows above and the Restormer rows below
    { op: 'conv2d', name: 'conv2d 3x3 3->48 +b intro [16,128,128,3]', inputs: [f([16, 128, 128, 3]), f([3, 3, 3, 48], -0.2, 0.2), f([48])], attrs: [1, 1, 1] },
    { op: 'conv2d_backward', name: 'conv2d_backward 3x3 3->48 intro', inputs: [f([16, 128, 128, 48]), f([16, 128, 128, 3]), f([3, 3, 3, 48], -0.2, 0.2)], attrs: [1, 1, 1] },
    { op: 'conv2d', name: 'conv2d 3x3 48->3 +b ending [16,128,128,48]', inputs: [f([16, 128, 128, 48]), f([3, 3, 48, 3], -0.2, 0.2), f([3])], attrs: [1, 1, 1] },
    { op: 'conv2d_backward', name: 'conv2d_backward 3x3 48->3 ending', inputs: [f([16, 128, 128, 3]), f([16, 128, 128, 48]), f([3, 3, 48, 3], -0.2, 0.2)], attrs: [1, 1, 1] },
    { op: 'conv2d', name: 'conv2d 2x2 s2 48->96 down', inputs: [f([16, 128, 128, 48]), f([2, 2, 48, 96], -0.2, 0.2), f([96])], attrs: [2, 0, 1] },
    // ConStyle Restormer's depthwise 3x3 convs (qkv: 3 C = 144 at level 1 of batch 8; GDFN: 2 floor(2.66 C) = 510)
    { op: 'conv2d', name: 'conv2d dw3x3 +b Restormer [8,128,128,510]', inputs: [f([8, 128, 128, 510]), f([3, 3, 1, 510], -0.2, 0.2), f([510])], attrs: [1, 1, 510] },
    { op: 'conv2d_backward', name: 'conv2d_backward dw3x3 Restormer [8,128,128,510]', inputs: [f([8, 128, 128, 510]), f([8, 128, 128, 510]), f([3, 3, 1, 510], -0.2, 0.2)], attrs: [1, 1, 510] },
    // ConStyle Restormer's GDFN gate in its level-1 decoder and refinement blocks (C = 96, batch 8): depthwise 3x3
    // on 2 x 255 channels, GELU(z1) z2
    { op: 'dwconv_gate', name: 'dwconv_gate gelu Restormer [8,128,128,510]', inputs: [f([8, 128, 128, 510]), f([3, 3, 1, 510], -0.2, 0.2)], attrs: [1, 1] },
    { op: 'dwconv_gate_backward', name: 'dwconv_gate_backward gelu Restormer [8,128,128,510]', inputs: [f([8, 128, 128, 255]), f([8, 128, 128, 510]), f([3, 3, 1, 510], -0.2, 0.2)], attrs: [1, 1] },
    // the opt-in kernels (README "Kernel switches") beside the defaults above, for the A/B: the gate's backward in one
    // pass (dz formed where it is needed, never written)
    { op: 'dwconv_gate_backward', name: 'dwconv_gate_backward gelu Restormer, one-pass (opt-in)', inputs: [f([8, 128, 128, 255]), f([8, 128, 128, 510]), f([3, 3, 1, 510], -0.2, 0.2)], attrs: [1, 1], env: { IRCONSTYLE_DWGATE_BWD: 'one-pass' } },
    // Restormer's GDFN project_in at level 1 (96 -> 510)
    { op: 'conv2d_backward', name: 'conv2d_backward 1x1 96->510 Restormer L1', inputs: [f([8, 128, 128, 510]), f([8, 128, 128, 96]), f([1, 1, 96, 510], -0.2, 0.2)], attrs: [1, 0, 1] },
    // the one-pass depthwise gate backward at NAFNet's level 1, against the default's L1 row above
    { op: 'dwconv_gate_backward', name: 'dwconv_gate_backward L1 [16,128,128,48], one-pass (opt-in)', inputs: [f([16, 128, 128, 48]), f([16, 128, 128, 96]), f([3, 3, 1, 96]), f([96])], attrs: [1], env: { IRCONSTYLE_DWGATE_BWD: 'one-pass' } },
    // ConStyle Restormer's attention core at level 1 (decoder and refinement: C = 96, 1 head; run 7 spent 490 us
    // on the Gram matmul [8, 1, 96, 16384] -> [8, 1, 96, 96] alone) and level 4 (8 heads, 16x16), batch 8
    { op: 'channel_attention', name: 'channel_attention Restormer L1 [8,128,128,288]', inputs: [f([8, 128, 128, 288]), pos([1])], attrs: [1, 1e-12] },
    { op: 'matmul', name: 'matmul Gram of the old MDTA path [8,1,96,16384] x T', inputs: [f([8, 1, 96, 16384]), f([8, 1, 96, 16384])], attrs: [0, 1] },
    { op: 'channel_attention_backward', name: 'channel_attention_backward Restormer L1', inputs: [f([8, 128, 128, 96]), f([8, 128, 128, 288]), pos([1]), f([8, 1, 96, 96]), pos([8, 192])], attrs: [1, 1e-12] },
    { op: 'channel_attention', name: 'channel_attention Restormer L4 [8,16,16,1152]', inputs: [f([8, 16, 16, 1152]), pos([8])], attrs: [8, 1e-12] },
    { op: 'channel_attention_backward', name: 'channel_attention_backward Restormer L4', inputs: [f([8, 16, 16, 384]), f([8, 16, 16, 1152]), pos([8]), f([8, 8, 48, 48]), pos([8, 768])], attrs: [8, 1e-12] },
    // ConStyle Restormer's deepest level (8 heads of 24 channels), per head and as whole-width products (opt-in)
    ...[{}, { IRCONSTYLE_MDTA: 'blockdiag' }].flatMap((env) => {
      const tag = env.IRCONSTYLE_MDTA ? ', whole-width GEMMs (opt-in)' : '';
      return [
        { op: 'channel_attention', name: `channel_attention ConStyle Restormer L4 [8,16,16,576]${tag}`, inputs: [f([8, 16, 16, 576]), pos([8])], attrs: [8, 1e-12], env },
        { op: 'channel_attention_backward', name: `channel_attention_backward ConStyle Restormer L4${tag}`, inputs: [f([8, 16, 16, 192]), f([8, 16, 16, 576]), pos([8]), f([8, 8, 24, 24]), pos([8, 384])], attrs: [8, 1e-12], env },
      ];
    }),
    { op: 'conv2d', name: 'conv2d dw3x3 +b Restormer [8,128,128,144]', inputs: [f([8, 128, 128, 144]), f([3, 3, 1, 144], -0.2, 0.2), f([144])], attrs: [1, 1, 144] },
    // ConStyle MAXIM's Linears (FP32 in PyTorch) at level 1 of batch 16: in_project 64 -> 128 and the spatial Dense
    // over 256 positions, cuBLAS(Lt) FP32
    { op: 'linear', name: 'linear MAXIM in_project [16,128,128,64]->128 +b', inputs: [f([16, 128, 128, 64]), f([128, 64], -0.2, 0.2), f([128])], attrs: [] },
    { op: 'linear', name: 'linear MAXIM spatial [16,8,8,32,256]->256 +b', inputs: [f([16, 8, 8, 32, 256]), f([256, 256], -0.1, 0.1), f([256])], attrs: [] },
    { op: 'linear_backward', name: 'linear_backward MAXIM in_project [16,128,128,64]->128', inputs: [f([16, 128, 128, 128]), f([16, 128, 128, 64]), f([128, 64], -0.2, 0.2)], attrs: [] },
    { op: 'linear_backward', name: 'linear_backward MAXIM spatial [16,8,8,32,256]->256', inputs: [f([16, 8, 8, 32, 256]), f([16, 8, 8, 32, 256]), f([256, 256], -0.1, 0.1)], attrs: [] },
    // MAXIM's gating unit as one op at level 1 of batch 16 (z = in_project's output [16,128,128,64], C = 32): block
    // 16x16 with the GELU inside, grid 16x16 (patch 8x8). Its composition's passes are the rows above (the spatial
    // linear) plus gelu, split, layer_norm2d, two permutes and mul, and their backwards; the step's A/B (BENCH_AB=1)
    // times the two in one process.
    { op: 'spatial_gate', name: 'spatial_gate MAXIM block gelu [16,128,128,64] 16x16', inputs: [f([16, 128, 128, 64]), pos([32]), f([32]), f([256, 256], -0.1, 0.1), f([256])], attrs: [0, 16, 16, 1, 1e-6] },
    { op: 'spatial_gate_backward', name: 'spatial_gate_backward MAXIM block gelu', inputs: [f([16, 128, 128, 32]), f([16, 128, 128, 64]), pos([32]), f([32]), f([256, 256], -0.1, 0.1), f([256]), f([262144]), pos([262144])], attrs: [0, 16, 16, 1, 1e-6] },
    { op: 'spatial_gate', name: 'spatial_gate MAXIM grid gelu [16,128,128,64] patch 8x8', inputs: [f([16, 128, 128, 64]), pos([32]), f([32]), f([256, 256], -0.1, 0.1), f([256])], attrs: [1, 8, 8, 1, 1e-6] },
    { op: 'spatial_gate_backward', name: 'spatial_gate_backward MAXIM grid gelu', inputs: [f([16, 128, 128, 32]), f([16, 128, 128, 64]), pos([32]), f([32]), f([256, 256], -0.1, 0.1), f([256]), f([262144]), pos([262144])], attrs: [1, 8, 8, 1, 1e-6] },
    // the cross-gating's spatial gating weights at level 1 (C = 32 per half): grid 16x16 (patch 8x8) | block 16x16
    { op: 'spatial_mix', name: 'spatial_mix MAXIM gelu [16,128,128,64] grid | block', inputs: [f([16, 128, 128, 64]), f([256, 256], -0.1, 0.1), f([256, 256], -0.1, 0.1)], attrs: [1, 8, 8, 0, 16, 16, 1] },
    { op: 'spatial_mix_backward', name: 'spatial_mix_backward MAXIM gelu grid | block', inputs: [f([16, 128, 128, 64]), f([16, 128, 128, 64]), f([256, 256], -0.1, 0.1), f([256, 256], -0.1, 0.1)], attrs: [1, 8, 8, 0, 16, 16, 1] },
    // MAXIM's mixing layouts at level 1 (C = 32), both ways: the tile transpose with an axis over two dims (run 9:
    // 75.5 µs for the block one, its tiles half full with a = fw = 16 alone; the grid one went to the gather kernel)
    { op: 'permute', name: 'permute MAXIM blocked [16,8,16,8,16,32] (composition)', inputs: [f([16, 8, 16, 8, 16, 32])], attrs: [0, 1, 3, 5, 2, 4] },
    { op: 'permute', name: 'permute MAXIM block back [16,8,8,32,16,16]', inputs: [f([16, 8, 8, 32, 16, 16])], attrs: [0, 1, 4, 2, 5, 3] },
    { op: 'permute', name: 'permute MAXIM grid [16,8,16,8,16,32] patch 16x16', inputs: [f([16, 8, 16, 8, 16, 32])], attrs: [0, 2, 4, 5, 1, 3] },
    { op: 'permute', name: 'permute MAXIM grid back [16,16,16,32,8,8]', inputs: [f([16, 16, 16, 32, 8, 8])], attrs: [0, 4, 1, 5, 2, 3] },
    // MAXIM's channel splits and concats at level 1 (run 9's profile: 54 % of the bandwidth)
    { op: 'concat', name: 'concat MAXIM 2x[16,128,128,64]', inputs: [f([16, 128, 128, 64]), f([16, 128, 128, 64])], attrs: [] },
    { op: 'split', name: 'split MAXIM [16,128,128,128] 64|64', inputs: [f([16, 128, 128, 128])], attrs: [64, 64] },
    { op: 'gelu_split', name: 'gelu_split MAXIM [16,128,128,128] 64|64', inputs: [f([16, 128, 128, 128])], attrs: [64, 64] },
    { op: 'conv2d_backward', name: 'conv2d_backward 2x2 s2 48->96 down', inputs: [f([16, 64, 64, 96]), f([16, 128, 128, 48]), f([2, 2, 48, 96], -0.2, 0.2)], attrs: [2, 0, 1] },
  ];
}

/** The memory bandwidth of the card by its name, GB/s (the H100 SXM's for a card not listed). */
export function peakBandwidth(name) {
  const known = [[/H200/, 4800], [/H100.*(PCIe|PCI-E)/i, 2000], [/H100/, 3350], [/A100.*80/, 2039], [/A100/, 1555]];
  return known.find(([re]) => re.test(name ?? ''))?.[1] ?? 3350;
}

/** Times every case; returns { rows, table } (or { skipped }). peakGBs: the card's by default (peakBandwidth). */
export async function runOpBench({ reps = 10, log = console.log, peakGBs, device = 'cuda' } = {}) {
  process.env.IRCONSTYLE_BACKEND ??= device;
  const lib = await import(pathToFileURL(join(ROOT, 'dist', 'lib', 'index.js')).href);
  peakGBs ??= peakBandwidth(lib.backendInfo().cuda.name);
  const { native } = await import(pathToFileURL(join(ROOT, 'dist', 'lib', 'native', 'loader.js')).href);
  const { runOp } = await import(pathToFileURL(join(ROOT, 'dist', 'lib', 'ops', 'run.js')).href);
  if (lib.backendInfo().device !== device) return { skipped: `CUDA unavailable: ${lib.backend()}` };
  // Host cost of one op end to end (JS wrapper, N-API, shape inference, allocation, launch, dispose) on a tiny
  // tensor, where the kernel itself is negligible: the floor under any step made of many small ops.
  const overhead = {};
  // BENCH_OPS_FILTER=a|b keeps the cases whose name contains a or b and skips the overhead loop (e.g. under ncu).
  const filter = process.env.BENCH_OPS_FILTER ?? '';
  const keep = (name) => !filter || filter.split('|').some((f) => name.includes(f));
  // BENCH_OPS_WARMUPS: unprofiled calls per case before the timed ones (default 2; 1 under ncu, which then sees each
  // kernel of a case once)
  const warmups = Math.max(1, Number(process.env.BENCH_OPS_WARMUPS ?? 2));
  const tiny = lib.tensor(new Float32Array(16).fill(0.5), [16], { device });
  for (const [what, fn] of filter ? [] : [
    ['fill', () => runOp('fill', [], [0.5, 0, 16], device)],
    ['leaky_relu', () => runOp('leaky_relu', [tiny], [0.1], device)],
  ]) {
    const n = 20000;
    for (let i = 0; i < 2000; i++) for (const o of fn()) o.dispose();
    await lib.sync();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) for (const o of fn()) o.dispose();
    const t1 = performance.now();
    await lib.sync();
    overhead[what] = { hostUs: ((t1 - t0) * 1000) / n, withSyncUs: ((performance.now() - t0) * 1000) / n };
  }
  tiny.dispose();
  const rows = [];
  // a case that would set a switch the environment sets otherwise is skipped (the device check sets the switches of
  // kernels with failing cases off: tuneExclusions in scripts/fallback.mjs)
  const left = (c) => Object.entries(c.env ?? {}).every(([k, v]) => process.env[k] === undefined || process.env[k] === v);
  for (const c of opBenchCases(device === 'cpu').filter((c) => keep(c.name) && left(c))) {
    const { inputs } = buildInputs(lib, c, 1, device);
    const envBefore = Object.fromEntries(Object.keys(c.env ?? {}).map((k) => [k, process.env[k]]));
    Object.assign(process.env, c.env ?? {});  // a case may pick a kernel path (read by the native side per call)
    try {
      const times = [];
      let bytes = inputs.reduce((a, t) => a + 4 * numel(t.shape), 0);
      for (let it = 0; it < reps + warmups; it++) {
        await lib.sync();
        // warm-ups unprofiled (an autotuner or a library's plan runs there), then exact profiles: the stream waits
        // until the whole op is enqueued, so an op of several launches is timed without the host's gaps between them
        // (run 9's table, before this, included them)
        const timed = it >= warmups;
        if (timed) native.profile(true, false, true);
        const outs = runOp(c.op, inputs, c.attrs, device);
        await lib.sync();
        if (timed) native.profile(false);
        const p = timed ? (native.profile() ?? []).find((e) => e.op === c.op) : null;
        if (it === 0) bytes += outs.reduce((a, t) => a + 4 * numel(t.shape), 0);
        for (const o of outs) o.dispose();
        if (p) times.push(p.ms * 1000);
      }
      const us = median(times);
      const gbs = bytes / (us * 1e-6) / 1e9;
      rows.push({ name: c.name, us, MB: bytes / 1e6, gbs, ofPeak: gbs / peakGBs });
    } catch (e) {
      rows.push({ name: c.name, error: String(e?.message ?? e).split('\n')[0] });
    } finally {
      for (const t of inputs) t.dispose();
      for (const [k, v] of Object.entries(envBefore)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  }
  const table = [`op GPU time (median of ${reps}; bandwidth = inputs + outputs once, peak ${peakGBs} GB/s)`,
    `  ${'op'.padEnd(52)} ${'µs'.padStart(8)} ${'MB'.padStart(7)} ${'GB/s'.padStart(6)} ${'%peak'.padStart(6)}`];
  for (const r of rows) {
    table.push(r.error ? `  ${r.name.padEnd(52)} ERROR ${r.error.slice(0, 60)}`
      : `  ${r.name.padEnd(52)} ${r.us.toFixed(1).padStart(8)} ${r.MB.toFixed(1).padStart(7)} ${r.gbs.toFixed(0).padStart(6)} ${(100 * r.ofPeak).toFixed(0).padStart(5)}%`);
  }
  table.push(`  per-op host overhead on ${device} (tiny tensors, µs per op, submit+dispose / until done): ` +
    Object.entries(overhead).map(([k, v]) => `${k} ${v.hostUs.toFixed(1)} / ${v.withSyncUs.toFixed(1)}`).join(', '));
  for (const l of table) log(l);
  return { rows, table, overhead };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // --cpu-smoke: the same logic on the CPU backend with tiny shapes (no GPU needed).
  const smoke = process.argv.includes('--cpu-smoke');
  const reps = Number(process.env.BENCH_OPS_REPS ?? 10);
  const res = await runOpBench({ log: () => {}, reps, ...(smoke ? { device: 'cpu', reps: 2 } : {}) });
  if (res.skipped) console.log(`bench:gpu-ops: nothing to measure — ${res.skipped}.`);
  else for (const l of res.table) console.log(l);
}
