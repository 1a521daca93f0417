// Test cases for EVERY op of native/src/ops/ops.def, used by scripts/device-check.mjs to compare the CUDA backend
// with the CPU backend on identical inputs. Plain ESM, no dependencies.
//
// A case: { op, name, inputs: [spec...], attrs, tol, mutates?: [input indices], conv?: true, env? }
//   spec: { shape, dtype: 'float32'|'int32', lo, hi }   uniform values in [lo, hi) (int32: integers)
//         + labels: K                                   int32 class labels in [0, K)
//         + view: [before, after]                       the input is a view at offset `before` into a flat base of
//                                                       before + numel + after elements (the base is compared too)
//   tol:  relative-error bound ‖cuda − cpu‖ / max(‖cpu‖, 1e-12) for every output and every input after the op
//         (1e-5 for ops without reductions over large axes, 1e-4 for reductions, conv, matmul, backward rules)
//   mutates: in-place ops; these inputs are expected to change (all inputs are compared after the op anyway)
//   conv: convolution/GEMM cases, rerun with TF32 allowed (IRCONSTYLE_TF32 unset) and reported separately
//   env:  environment variables set while the target runs the case (a kernel path chosen per call)
//
// buildInputs(lib, c, seed, device) makes the inputs deterministically from (seed, case name): host arrays ->
// CPU tensors -> `.to('cuda')` when device is 'cuda' (views are taken on the device copy of their base).

export const TOL_ELEM = 1e-5;
export const TOL_REDUCE = 1e-4;

const f = (shape, lo = -1, hi = 1) => ({ shape, dtype: 'float32', lo, hi });
const pos = (shape, lo = 0.1, hi = 2) => f(shape, lo, hi);
const i32 = (shape, lo = -1000, hi = 1000) => ({ shape, dtype: 'int32', lo, hi });
const labels = (n, K) => ({ shape: [n], dtype: 'int32', labels: K });
const view = (spec, before, after) => ({ ...spec, view: [before, after] });
const numel = (s) => s.reduce((a, b) => a * b, 1);
const outHW = (H, K, s, p) => Math.floor((H + 2 * p - K) / s) + 1;

/** All cases; `names` of ops without cases are reported by device-check as a coverage failure. */
export function opCases() {
  const C = [];
  const add = (op, name, inputs, attrs = [], extra = {}) =>
    C.push({ op, name: `${op}:${name}`, inputs, attrs, tol: TOL_ELEM, ...extra });
  const red = { tol: TOL_REDUCE };

  // --- creation / memory
  add('fill', 'f32 [2,3,4]', [], [0.5, 0, 2, 3, 4]);
  add('fill', 'i32 [5,3]', [], [7, 1, 5, 3]);
  add('fill', 'f32 [2,32,32,48]', [], [-1.25, 0, 2, 32, 32, 48]);
  add('fill', 'empty [0,5]', [], [3, 0, 0, 5]);
  add('clone', 'f32 [2,32,32,48]', [f([2, 32, 32, 48])]);
  add('clone', 'i32 [3,5]', [i32([3, 5])]);
  add('clone', 'view [7,13]', [view(f([7, 13]), 5, 3)]);
  add('copy_', 'reshape [6,4]<-[2,12]', [f([6, 4]), f([2, 12])], [], { mutates: [0] });
  add('copy_', 'i32 [3,5]', [i32([3, 5]), i32([15])], [], { mutates: [0] });
  add('copy_', 'into view [16,128] (queue slice)', [view(f([16, 128]), 128 * 32, 128 * 16), f([16, 128])], [], { mutates: [0] });
  add('copy_', 'f32 [2,32,32,48]', [f([2, 32, 32, 48]), f([2, 32, 32, 48])], [], { mutates: [0] });
  add('add_', 'f32 [2,32,32,48]', [f([2, 32, 32, 48]), f([2, 32, 32, 48])], [], { mutates: [0] });
  add('add_', 'f32 [7,13]', [f([7, 13]), f([7, 13])], [], { mutates: [0] });
  add('add_', 'view [5,3]', [view(f([5, 3]), 7, 2), f([5, 3])], [], { mutates: [0] });
  add('add_n_', '3 pairs incl. a view and an empty', [f([2, 32, 32, 48]), f([2, 32, 32, 48]), view(f([5, 3]), 7, 2), f([5, 3]), f([0, 4]), f([0, 4])], [], { mutates: [0, 2] });
  add('add_n_', '40 pairs (two launches)', Array.from({ length: 80 }, (_, i) => f([3 + (i >> 1), 5])), [], { mutates: Array.from({ length: 40 }, (_, i) => 2 * i) });
  add('fill_', 'f32 [7,13]', [f([7, 13])], [2.5], { mutates: [0] });
  add('fill_', 'i32 [5]', [i32([5])], [-3], { mutates: [0] });
  add('fill_', 'view [3,5]', [view(f([3, 5]), 4, 6)], [0], { mutates: [0] });
  add('permute', 'NHWC->NCHW [2,32,32,48]', [f([2, 32, 32, 48])], [0, 3, 1, 2]);
  add('permute', '[3,5,7] (2,0,1)', [f([3, 5, 7])], [2, 0, 1]);
  add('permute', 'i32 [2,3,4,5] reversed', [i32([2, 3, 4, 5])], [3, 2, 1, 0]);
  add('permute', 'transpose [5,7]', [f([5, 7])], [1, 0]);
  // MAXIM's mixing layouts, both ways (the tile transpose with an axis over two dims; odd sizes for the tails)
  add('permute', 'MAXIM block [2,4,16,2,16,24]', [f([2, 4, 16, 2, 16, 24])], [0, 1, 3, 5, 2, 4]);
  add('permute', 'MAXIM block back [2,4,2,24,16,16]', [f([2, 4, 2, 24, 16, 16])], [0, 1, 4, 2, 5, 3]);
  add('permute', 'MAXIM grid [2,8,3,8,5,20]', [f([2, 8, 3, 8, 5, 20])], [0, 2, 4, 5, 1, 3]);
  add('permute', 'MAXIM grid back [2,3,5,20,8,8]', [f([2, 3, 5, 20, 8, 8])], [0, 4, 1, 5, 2, 3]);
  add('permute', 'MAXIM block odd [1,3,6,2,5,17]', [f([1, 3, 6, 2, 5, 17])], [0, 1, 3, 5, 2, 4]);

  // --- elementwise
  for (const op of ['add', 'sub', 'mul']) {
    add(op, 'same [2,32,32,48]', [f([2, 32, 32, 48]), f([2, 32, 32, 48])]);
    add(op, 'bcast [2,32,32,48]x[48]', [f([2, 32, 32, 48]), f([48])]);
    add(op, 'bcast [2,1,13,5]x[1,7,1,5]', [f([2, 1, 13, 5]), f([1, 7, 1, 5])]);
    add(op, 'bcast [1]x[3,5]', [f([1]), f([3, 5])]);
    add(op, 'bcast [16,1]x[16,129]', [f([16, 1]), f([16, 129])]);
  }
  add('mul', 'channel [2,32,32,192]x[2,1,1,192]', [f([2, 32, 32, 192]), f([2, 1, 1, 192])]);
  add('sum_to', '[2,32,32,48]->[48]', [f([2, 32, 32, 48])], [48], red);
  add('sum_to', '[2,32,32,48]->[1,1,1,48]', [f([2, 32, 32, 48])], [1, 1, 1, 48], red);
  add('sum_to', '[2,32,32,48]->[2,1,1,48]', [f([2, 32, 32, 48])], [2, 1, 1, 48], red);
  add('sum_to', '[2,32,32,48]->[1]', [f([2, 32, 32, 48])], [1], red);
  add('sum_to', '[3,5,7]->[5,1]', [f([3, 5, 7])], [5, 1], red);
  add('sum_to', '[16,128]->[16,1]', [f([16, 128])], [16, 1], red);
  add('sum_to', 'identity [3,5]', [f([3, 5])], [3, 5], red);
  add('scale', '[2,32,32,48]', [f([2, 32, 32, 48])], [2.5, -1]);
  add('scale', '[7,13]', [f([7, 13])], [-1, 0]);
  add('scale', '[16,65761] 1/T', [f([16, 65761], -5, 5)], [1 / 0.07, 0]);
  // inputs one float past a 16-byte boundary: the kernels' scalar paths (the float4 ones need aligned pointers)
  add('scale', 'unaligned view [7,13]', [view(f([7, 13]), 1, 2)], [-1, 0.5]);
  add('gelu', 'unaligned view [3,37]', [view(f([3, 37], -6, 6), 1, 0)]);
  add('gelu_backward', 'unaligned views [3,37]', [view(f([3, 37]), 1, 0), view(f([3, 37], -6, 6), 3, 0)]);
  add('mul', 'same, unaligned view [5,12]', [view(f([5, 12]), 1, 0), f([5, 12])]);
  add('mul', 'channel, unaligned view [2,3,3,8]x[2,1,1,8]', [view(f([2, 3, 3, 8]), 1, 0), f([2, 1, 1, 8])]);
  add('prelu', 'a[C], unaligned view [1,3,5,8]', [view(f([1, 3, 5, 8]), 1, 0), f([8], 0, 0.5)]);
  add('fill_', 'unaligned view [3,5]', [view(f([3, 5]), 1, 6)], [0.25], { mutates: [0] });
  for (const [sh, slope] of [[[2, 32, 32, 48], 0.1], [[7, 13, 5], 0.2]]) {
    add('leaky_relu', `[${sh}] ${slope}`, [f(sh)], [slope]);
    add('leaky_relu_backward', `[${sh}] ${slope}`, [f(sh), f(sh)], [slope]);
  }
  add('prelu', 'a[C] [2,32,32,48]', [f([2, 32, 32, 48]), f([48], 0, 0.5)]);
  add('prelu', 'a[1] [1,7,13,5]', [f([1, 7, 13, 5]), f([1], 0, 0.5)]);
  add('prelu_backward', 'a[C] [2,32,32,48]', [f([2, 32, 32, 48]), f([2, 32, 32, 48]), f([48], 0, 0.5)], [], red);
  add('prelu_backward', 'a[1] [1,7,13,5]', [f([1, 7, 13, 5]), f([1, 7, 13, 5]), f([1], 0, 0.5)], [], red);
  add('prelu_backward', 'a[1] [2,16,16,48] (6 partial chunks)', [f([2, 16, 16, 48]), f([2, 16, 16, 48]), f([1], 0, 0.5)], [], red);
  for (const sh of [[2, 32, 32, 48], [7, 13, 5], [16, 128]]) {
    add('gelu', `[${sh}]`, [f(sh, -6, 6)]);
    add('gelu_backward', `[${sh}]`, [f(sh), f(sh, -6, 6)]);
    add('relu', `[${sh}]`, [f(sh)]);
    add('relu_backward', `[${sh}]`, [f(sh), f(sh)]);
    add('sigmoid', `[${sh}]`, [f(sh, -8, 8)]);
    add('sigmoid_backward', `[${sh}]`, [f(sh), f(sh, 0.001, 0.999)]);
  }
  for (const sh of [[4, 7], [2, 1, 48, 48], [2, 4, 13, 13], [16, 65761]]) {
    const r = sh[sh.length - 1] > 1000 ? 30 : 4;
    add('softmax', `[${sh}]`, [f(sh, -r, r)], [], red);
    add('softmax_backward', `[${sh}]`, [f(sh), f(sh, 0, 1 / sh[sh.length - 1])], [], red);
  }
  for (const [sh, eps] of [[[16, 128], 1e-12], [[3, 5], 1e-12], [[2, 4, 12, 256], 1e-12], [[2, 7], 0.5]]) {
    add('l2_normalize', `[${sh}] eps ${eps}`, [f(sh)], [eps], red);
    add('l2_normalize_backward', `[${sh}] eps ${eps}`, [f(sh), f(sh)], [eps], red);
  }
  add('l2_normalize', 'zero rows [3,4]', [f([3, 4], 0, 0)], [1e-12], red);
  add('l2_normalize', 'long rows [3,1500] (block kernel)', [f([3, 1500])], [1e-12], red);
  add('l2_normalize_backward', 'long rows [3,1500] (block kernel)', [f([3, 1500]), f([3, 1500])], [1e-12], red);
  // channel_attention: heads <= N (GEMMs batched over samples) and heads > N (over heads); C = 48 per head as in
  // ConStyle Restormer, odd pixel counts, one pixel. Backward inputs: cosines in [-1, 1], norms in [0.5, 2].
  // (P = H W >= 512 and even: the Gram split over pixel chunks on CUDA)
  for (const [sh, heads] of [[[2, 16, 16, 144], 1], [[3, 5, 7, 24], 2], [[1, 9, 7, 36], 4], [[2, 8, 8, 1152], 8], [[1, 1, 1, 9], 3],
    [[2, 32, 32, 48], 2], [[1, 64, 64, 144], 1], [[1, 33, 31, 24], 2],
    // (several heads and samples, <= 1024 pixels: IRCONSTYLE_MDTA=blockdiag's whole-width products; ConStyle
    // Restormer's deepest level, c = 24; odd sizes)
    [[8, 4, 4, 576], 8], [[4, 3, 5, 72], 4]]) {
    const C = sh[3] / 3, c = C / heads;
    const name = `[${sh}] heads ${heads}`;
    add('channel_attention', name, [f(sh), pos([heads], 0.5, 2)], [heads, 1e-12], red);
    add('channel_attention_backward', name, [f([...sh.slice(0, 3), C]), f(sh), pos([heads], 0.5, 2), f([sh[0], heads, c, c]), pos([sh[0], 2 * C], 0.5, 2)], [heads, 1e-12], red);
  }

  // --- convolutions (NHWC, w [KH,KW,Ci/g,Co])
  const convs = [
    ['3x3 s1 [2,32,32,48]->48 bias', [2, 32, 32, 48], [3, 3, 48, 48], true, 1, 1, 1],
    ['1x1 [2,32,32,48]->96 bias', [2, 32, 32, 48], [1, 1, 48, 96], true, 1, 0, 1],
    ['3x3 s1 enc [2,16,16,3]->16', [2, 16, 16, 3], [3, 3, 3, 16], false, 1, 1, 1],
    ['3x3 s2 enc [2,16,16,32]->64', [2, 16, 16, 32], [3, 3, 32, 64], false, 2, 1, 1],
    ['3x3 s2 odd [1,13,7,5]->3', [1, 13, 7, 5], [3, 3, 5, 3], false, 2, 1, 1],
    ['3x3 odd [1,7,13,5]->3 bias', [1, 7, 13, 5], [3, 3, 5, 3], true, 1, 1, 1],
    // the direct thin kernels (3x3 s1 p1, <= 4 channels on a side): intro / output convs, float4 and scalar
    // inputs, 1..4 channels, tiles cut by the image edge
    ['thin intro [2,32,32,3]->48 bias', [2, 32, 32, 3], [3, 3, 3, 48], true, 1, 1, 1],
    ['thin out [2,32,32,48]->3 bias', [2, 32, 32, 48], [3, 3, 48, 3], true, 1, 1, 1],
    ['thin out [1,9,7,96]->3', [1, 9, 7, 96], [3, 3, 96, 3], false, 1, 1, 1],
    ['thin [1,5,6,2]->7 bias', [1, 5, 6, 2], [3, 3, 2, 7], true, 1, 1, 1],
    ['thin [1,6,5,4]->4', [1, 6, 5, 4], [3, 3, 4, 4], false, 1, 1, 1],
    ['thin [2,11,17,64]->1 bias', [2, 11, 17, 64], [3, 3, 64, 1], true, 1, 1, 1],
    ['thin [1,9,9,1]->8', [1, 9, 9, 1], [3, 3, 1, 8], false, 1, 1, 1],
    ['thin out [1,3,33,7]->2', [1, 3, 33, 7], [3, 3, 7, 2], true, 1, 1, 1],
    ['grouped g3 [1,7,13,6]->6', [1, 7, 13, 6], [3, 3, 2, 6], true, 1, 1, 3],
    ['depthwise [2,13,7,96]', [2, 13, 7, 96], [3, 3, 1, 96], true, 1, 1, 96],
    ['depthwise [2,40,40,192]', [2, 40, 40, 192], [3, 3, 1, 192], true, 1, 1, 192],
    ['depthwise odd C [1,9,11,6]', [1, 9, 11, 6], [3, 3, 1, 6], true, 1, 1, 6],
    ['depthwise odd C [1,9,11,5]', [1, 9, 11, 5], [3, 3, 1, 5], true, 1, 1, 5],
    ['depthwise W=1 [2,6,1,4]', [2, 6, 1, 4], [3, 3, 1, 4], false, 1, 1, 4],
    ['depthwise s2 [1,13,7,8]', [1, 13, 7, 8], [3, 3, 1, 8], true, 2, 1, 8],
    ['depthwise p0 [1,9,9,8]', [1, 9, 9, 8], [3, 3, 1, 8], false, 1, 0, 8],
    ['depthwise 5x5 [1,9,11,8]', [1, 9, 11, 8], [5, 5, 1, 8], true, 1, 2, 8],  // the generic depthwise kernels
    ['depthwise 5x5 odd C [1,9,11,6]', [1, 9, 11, 6], [5, 5, 1, 6], true, 1, 2, 6],
    ['5x5 s3 p0 [1,13,13,4]->5', [1, 13, 13, 4], [5, 5, 4, 5], true, 3, 0, 1],
    ['UC 3x3 [1,8,8,144]->576', [1, 8, 8, 144], [3, 3, 144, 576], false, 1, 1, 1],
  ];
  for (const [name, xs, ws, bias, s, p, g] of convs) {
    const ys = [xs[0], outHW(xs[1], ws[0], s, p), outHW(xs[2], ws[1], s, p), ws[3]];
    const ins = [f(xs), f(ws, -0.3, 0.3)];
    if (bias) ins.push(f([ws[3]]));
    add('conv2d', name, ins, [s, p, g], { ...red, conv: true });
    add('conv2d_backward', name, [f(ys), f(xs), f(ws, -0.3, 0.3)], [s, p, g], { ...red, conv: true });
  }
  // 1x1 backwards (cuBLAS's dx and dW GEMMs, dy's column sums): NAFNet's and Restormer's widths (510 and 255 among
  // them), 768 output channels, odd sizes
  for (const [name, xs, Co] of [
    ['pw [2,16,16,48]->96', [2, 16, 16, 48], 96],
    ['pw tails [1,5,7,192]->384', [1, 5, 7, 192], 384],
    ['pw [3,9,9,32]->768', [3, 9, 9, 32], 768],
    ['pw [2,40,40,96]->96', [2, 40, 40, 96], 96],
    ['pw padded [2,16,16,96]->510', [2, 16, 16, 96], 510],
    ['pw padded [2,8,8,255]->96', [2, 8, 8, 255], 96],
    ['pw padded [1,7,9,12]->20', [1, 7, 9, 12], 20],
    ['pw [1,6,6,4]->24', [1, 6, 6, 4], 24],
  ]) {
    add('conv2d_backward', name, [f([...xs.slice(0, 3), Co]), f(xs), f([1, 1, xs[3], Co], -0.3, 0.3)], [1, 0, 1],
      { ...red, conv: true });
  }
  // conv1x1_add: r + ((x a) w + b) s with every optional-input combination; NAFBlock level-1 and bottom shapes
  for (const [name, xs, Co, nb, lin = false] of [
    ['b s [2,32,32,48]->48', [2, 32, 32, 48], 48, 2],
    ['b s a [2,32,32,48]->48', [2, 32, 32, 48], 48, 3],
    ['b s a [3,8,8,384]->384', [3, 8, 8, 384], 384, 3],
    ['b s a [2,5,7,6]->4', [2, 5, 7, 6], 4, 3],
    ['b s [2,8,8,384]->384', [2, 8, 8, 384], 384, 2],
    ['b [1,7,13,5]->3', [1, 7, 13, 5], 3, 1],
    ['[2,9,7,48]->48', [2, 9, 7, 48], 48, 0],
    ['b s [3,17]->6', [3, 17], 6, 2],
    ['lin b [2,32,32,64]->32', [2, 32, 32, 64], 32, 1, true],
    ['lin [5,13,17,64]->64 (no bias)', [5, 13, 17, 64], 64, 0, true],
    ['lin [3,7,13]->5', [3, 7, 13], 5, 0, true],
  ]) {
    const Ci = xs[xs.length - 1], ys = [...xs.slice(0, -1), Co];
    const w = f(lin ? [Co, Ci] : [1, 1, Ci, Co], -0.3, 0.3);  // lin: a Linear's weight [Co, Ci]
    const opt = [f([Co]), f([1, 1, 1, Co]), f([xs[0], 1, 1, Ci])].slice(0, nb);
    add('conv1x1_add', name, [f(xs), w, f(ys), ...opt], [], { ...red, conv: true });
    add('conv1x1_add_backward', name, [f(ys), f(xs), w, ...opt], [], { ...red, conv: true });
  }
  // conv1x1_gate: z1·z2 of z = x w + b (cuBLAS and the elementwise pass; the simt pass: the SIMT kernel): NAFNet's
  // widths, a row tail, odd channel counts.
  for (const [name, xs, C, bias] of [
    ['b [2,32,32,48]->2·48', [2, 32, 32, 48], 48, true],
    ['b [2,16,16,96]->2·96', [2, 16, 16, 96], 96, true],
    ['b [1,8,8,192]->2·192', [1, 8, 8, 192], 192, true],
    ['[3,17,48]->2·48 (row tail)', [3, 17, 48], 48, false],
    ['b [1,5,7,24]->2·24', [1, 5, 7, 24], 24, true],
    ['[1,7,13,5]->2·3', [1, 7, 13, 5], 3, false],
    ['b [1,4,4,352]->2·16', [1, 4, 4, 352], 16, true],
  ]) {
    const Ci = xs[xs.length - 1], ys = [...xs.slice(0, -1), C];
    const ins = [f(xs), f([1, 1, Ci, 2 * C], -0.3, 0.3), ...(bias ? [f([2 * C])] : [])];
    add('conv1x1_gate', name, ins, [], { ...red, conv: true });
    add('conv1x1_gate_backward', name, [f(ys), ...ins], [], { ...red, conv: true });
  }
  add('linear', '[16,256]->128 bias', [f([16, 256]), f([128, 256], -0.1, 0.1), f([128])], [], { ...red, conv: true });
  add('linear', '[2,7,13,5]->3', [f([2, 7, 13, 5]), f([3, 5])], [], { ...red, conv: true });
  add('linear', '[16,128]->192 bias', [f([16, 128]), f([192, 128], -0.1, 0.1), f([192])], [], { ...red, conv: true });
  add('linear_backward', '[16,256]->128', [f([16, 128]), f([16, 256]), f([128, 256], -0.1, 0.1)], [], { ...red, conv: true });
  add('linear_backward', '[2,7,13,5]->3', [f([2, 7, 13, 3]), f([2, 7, 13, 5]), f([3, 5])], [], { ...red, conv: true });
  // MAXIM's channel Linears (odd row counts) and its spatial Dense over 256 positions
  add('linear', '[5,13,17,64]->128 bias', [f([5, 13, 17, 64]), f([128, 64], -0.2, 0.2), f([128])], [], { ...red, conv: true });
  add('linear', '[2,4,4,32,256]->256 spatial', [f([2, 4, 4, 32, 256]), f([256, 256], -0.1, 0.1), f([256])], [], { ...red, conv: true });
  for (const [name, xs, O] of [
    ['[5,13,17,64]->128', [5, 13, 17, 64], 128], ['[2,4,4,32,256]->256 spatial', [2, 4, 4, 32, 256], 256],
    ['[3,19,19,96]->40', [3, 19, 19, 96], 40],
  ]) {
    const I = xs[xs.length - 1];
    add('linear_backward', name, [f([...xs.slice(0, -1), O]), f(xs), f([O, I], -0.2, 0.2)], [], { ...red, conv: true });
  }
  add('matmul', 'MoCo l_neg [16,128]x[65760,128]^T', [f([16, 128], -3, 3), f([65760, 128], -3, 3)], [0, 1], { ...red, conv: true });
  add('matmul', 'gram [16,128]x[16,128]^T', [f([16, 128]), f([16, 128])], [0, 1], { ...red, conv: true });
  add('matmul', 'batched [2,3,5,7]x[2,3,7,4]', [f([2, 3, 5, 7]), f([2, 3, 7, 4])], [0, 0], { ...red, conv: true });
  add('matmul', 'transA [2,7,5]x[2,7,4]', [f([2, 7, 5]), f([2, 7, 4])], [1, 0], { ...red, conv: true });
  add('matmul', 'rank-2 b [3,5,7]x[7,4]', [f([3, 5, 7]), f([7, 4])], [0, 0], { ...red, conv: true });
  add('matmul', 'transA transB [4,13]x[6,4]', [f([4, 13]), f([6, 4])], [1, 1], { ...red, conv: true });
  add('matmul', 'attention [2,4,48,256]x[2,4,48,256]^T', [f([2, 4, 48, 256]), f([2, 4, 48, 256])], [0, 1], { ...red, conv: true });

  // --- normalisation
  for (const [name, N, Cc] of [['[16,128]', 16, 128], ['[5,3]', 5, 3], ['[2,7]', 2, 7]]) {
    const ins = [f([N, Cc], -2, 3), pos([Cc], 0.5, 1.5), f([Cc]), f([Cc]), pos([Cc], 0.5, 2)];
    add('batch_norm1d', `train ${name}`, ins, [1, 0.1, 1e-5], { ...red, mutates: [3, 4] });
    add('batch_norm1d', `eval ${name}`, ins, [0, 0.1, 1e-5], red);
    for (const tr of [1, 0])
      add('batch_norm1d_backward', `${tr ? 'train' : 'eval'} ${name}`, [f([N, Cc]), f([N, Cc], -2, 3), pos([Cc], 0.5, 1.5), f([Cc]), pos([Cc], 0.5, 2)], [tr], red);
  }
  // C % 4 == 0 and C <= 512 take the lanes-per-row kernels (1, 2, 4, 16, 32 lanes below), the others the warp ones
  // (C % 4 != 0 above 32: the warp kernels of 2, 4, 8, 16 and 32 values per lane, and the block kernels above 1024)
  for (const sh of [[2, 32, 32, 48], [1, 7, 13, 5], [3, 5], [2, 16, 16, 192], [1, 7, 13, 16], [5, 7, 32], [2, 3, 3, 4], [1, 5, 7, 384], [2, 9, 9, 288],
    [1, 2, 3, 37], [1, 3, 3, 70], [2, 2, 3, 130], [1, 2, 3, 262], [1, 2, 2, 522], [1, 1, 3, 1030]]) {
    const Cc = sh[sh.length - 1], rows = numel(sh) / Cc;
    add('layer_norm2d', `[${sh}]`, [f(sh, -2, 3), pos([Cc], 0.5, 1.5), f([Cc])], [1e-6], red);
    add('layer_norm2d_backward', `[${sh}]`, [f(sh), f(sh, -2, 3), pos([Cc], 0.5, 1.5), f([rows], -0.5, 0.5), pos([rows], 0.5, 2)], [], red);
    add('layer_norm_bias_free', `[${sh}]`, [f(sh, -2, 3), pos([Cc], 0.5, 1.5)], [1e-5], red);
    add('layer_norm_bias_free_backward', `[${sh}]`, [f(sh), f(sh, -2, 3), pos([Cc], 0.5, 1.5), pos([rows], 0.5, 2)], [], red);
  }
  // with the accumulation input (a pending gradient added to dx): the lanes-per-row, warp and block kernels
  for (const sh of [[2, 32, 32, 48], [1, 7, 13, 5], [2, 3, 600], [1, 3, 1100]]) {
    const Cc = sh[sh.length - 1], rows = numel(sh) / Cc;
    add('layer_norm2d_backward', `acc [${sh}]`, [f(sh), f(sh, -2, 3), pos([Cc], 0.5, 1.5), f([rows], -0.5, 0.5), pos([rows], 0.5, 2), f(sh)], [], red);
    add('layer_norm_bias_free_backward', `acc [${sh}]`, [f(sh), f(sh, -2, 3), pos([Cc], 0.5, 1.5), pos([rows], 0.5, 2), f(sh)], [], red);
  }

  // --- NAFNet pieces
  for (const sh of [[2, 32, 32, 96], [1, 7, 13, 10], [3, 2]]) {
    const half = [...sh.slice(0, -1), sh[sh.length - 1] / 2];
    add('simple_gate', `[${sh}]`, [f(sh)]);
    add('simple_gate_backward', `[${sh}]`, [f(half), f(sh)]);
  }
  for (const sh of [[2, 32, 32, 48], [1, 7, 13, 5], [16, 8, 8, 256], [2, 9, 7, 1032]]) {
    add('global_avg_pool', `[${sh}]`, [f(sh)], [], red);
    add('global_avg_pool_backward', `[${sh}]`, [f([sh[0], 1, 1, sh[3]]), f(sh)]);
    add('global_avg_pool_backward', `acc [${sh}]`, [f([sh[0], 1, 1, sh[3]]), f(sh), f(sh)]);
    add('channel_scale', `[${sh}]`, [f(sh), f([sh[0], 1, 1, sh[3]])]);
    add('channel_scale_backward', `[${sh}]`, [f(sh), f(sh), f([sh[0], 1, 1, sh[3]])], [], red);
  }
  add('scaled_add', 's[1,1,1,C] [2,32,32,48]', [f([2, 32, 32, 48]), f([2, 32, 32, 48]), f([1, 1, 1, 48])]);
  add('scaled_add', 's[C] [1,7,13,5]', [f([1, 7, 13, 5]), f([1, 7, 13, 5]), f([5])]);
  add('scaled_add_backward', 's[1,1,1,C] [2,32,32,48]', [f([2, 32, 32, 48]), f([2, 32, 32, 48]), f([1, 1, 1, 48])], [], red);
  add('scaled_add_backward', 's[C] [1,7,13,5]', [f([1, 7, 13, 5]), f([1, 7, 13, 5]), f([5])], [], red);
  add('scaled_add_backward', 's[C] [1,5,6,1032]', [f([1, 5, 6, 1032]), f([1, 5, 6, 1032]), f([1032])], [], red);
  const dws = [
    ['3x3 p1 bias [2,32,32,96]', [2, 32, 32, 96], 3, 1, true],
    ['3x3 p1 [1,7,13,10]', [1, 7, 13, 10], 3, 1, false],
    ['5x5 p2 bias [1,13,7,6]', [1, 13, 7, 6], 5, 2, true],
    ['3x3 p0 bias [1,9,9,4]', [1, 9, 9, 4], 3, 0, true],
    ['3x3 p1 bias [2,16,16,384]', [2, 16, 16, 384], 3, 1, true],
    ['3x3 p1 bias [3,40,40,96]', [3, 40, 40, 96], 3, 1, true],
    ['3x3 p1 bias [1,4,5,2056]', [1, 4, 5, 2056], 3, 1, true],
    ['3x3 p1 [1,6,5,14]', [1, 6, 5, 14], 3, 1, false],
    // GELU gate (act 1, Restormer's GDFN: half widths 127 and 255 are odd)
    ['gelu 3x3 p1 [2,16,16,254]', [2, 16, 16, 254], 3, 1, false, 1],
    ['gelu 3x3 p1 bias [1,9,7,510]', [1, 9, 7, 510], 3, 1, true, 1],
    ['gelu 3x3 p1 [1,5,1,8]', [1, 5, 1, 8], 3, 1, false, 1],
    ['gelu 5x5 p2 bias [1,13,7,6]', [1, 13, 7, 6], 5, 2, true, 1],
    ['gelu 3x3 p0 [1,9,9,4]', [1, 9, 9, 4], 3, 0, false, 1],
  ];
  for (const [name, xs, k, p, bias, act = 0] of dws) {
    const C2 = xs[3];
    const ys = [xs[0], xs[1] + 2 * p - k + 1, xs[2] + 2 * p - k + 1, C2 / 2];
    const ins = [f(xs), f([k, k, 1, C2], -0.5, 0.5)];
    if (bias) ins.push(f([C2]));
    add('dwconv_gate', name, ins, [p, act], red);
    add('dwconv_gate_backward', name, [f(ys), ...ins], [p, act], red);
  }
  // ln_conv1x1_gate: conv1x1_gate behind a LayerNorm (the LayerNorm kernel and cuBLAS; the simt pass: formed on the
  // way in); the backward's statistics are inputs
  for (const [name, xs, C, bias] of [
    ['b [2,32,32,48]->2·48', [2, 32, 32, 48], 48, true],
    ['b [1,8,8,192]->2·192', [1, 8, 8, 192], 192, true],
    ['[3,17,48]->2·48 (row tail)', [3, 17, 48], 48, false],
    ['b [1,5,7,24]->2·24', [1, 5, 7, 24], 24, true],
    ['b [1,4,4,352]->2·16', [1, 4, 4, 352], 16, true],
  ]) {
    const Ci = xs[xs.length - 1], rows = numel(xs) / Ci, ys = [...xs.slice(0, -1), C];
    const ln = [pos([Ci], 0.5, 1.5), f([Ci])], w = f([1, 1, Ci, 2 * C], -0.3, 0.3), b = bias ? [f([2 * C])] : [];
    add('ln_conv1x1_gate', name, [f(xs, -2, 2), ...ln, w, ...b], [1e-6], { ...red, conv: true });
    const stats = [f([rows], -0.5, 0.5), pos([rows], 0.5, 2)];
    add('ln_conv1x1_gate_backward', name, [f(ys), f(xs, -2, 2), ...ln, w, ...stats, ...b], [], { ...red, conv: true });
    // with x's pending gradient (attrs [1]: the last input, added into dx)
    add('ln_conv1x1_gate_backward', `${name} +acc`, [f(ys), f(xs, -2, 2), ...ln, w, ...stats, ...b, f(xs)], [1], { ...red, conv: true });
    add('ln_conv1x1_gate_backward', `${name} +acc IRCONSTYLE_LN_FOLD=0`, [f(ys), f(xs, -2, 2), ...ln, w, ...stats, ...b, f(xs)], [1], { ...red, conv: true, env: { IRCONSTYLE_LN_FOLD: '0' } });
  }
  // ln_conv1x1: a 1x1 conv behind a LayerNorm (the LayerNorm kernel and cuBLASLt; the simt pass: formed on the way
  // in, and in the backward the LayerNorm's backward folded into the dh pass)
  for (const [name, xs, Co, bias] of [
    ['b [2,32,32,48]->96', [2, 32, 32, 48], 96, true],
    ['b [1,8,8,192]->384', [1, 8, 8, 192], 384, true],
    ['[3,17,48]->96 (row tail)', [3, 17, 48], 96, false],
    ['b [1,5,7,24]->20', [1, 5, 7, 24], 20, true],
    ['b [1,6,6,4]->8', [1, 6, 6, 4], 8, true],
  ]) {
    const Ci = xs[xs.length - 1], rows = numel(xs) / Ci, ys = [...xs.slice(0, -1), Co];
    const ln = [pos([Ci], 0.5, 1.5), f([Ci])], w = f([1, 1, Ci, Co], -0.3, 0.3);
    const extra = { ...red, conv: true };
    add('ln_conv1x1', name, [f(xs, -2, 2), ...ln, w, ...(bias ? [f([Co])] : [])], [1e-6], extra);
    const stats = [f([rows], -0.5, 0.5), pos([rows], 0.5, 2)];
    add('ln_conv1x1_backward', name, [f(ys), f(xs, -2, 2), ...ln, w, ...stats], [], extra);
    add('ln_conv1x1_backward', `${name} +acc`, [f(ys), f(xs, -2, 2), ...ln, w, ...stats, f(xs)], [1], extra);
    // the same without the LayerNorm's backward folded into the SIMT kernel's dh pass (dh, then the LayerNorm kernels)
    add('ln_conv1x1_backward', `${name} +acc IRCONSTYLE_LN_FOLD=0`, [f(ys), f(xs, -2, 2), ...ln, w, ...stats, f(xs)], [1], { ...extra, env: { IRCONSTYLE_LN_FOLD: '0' } });
  }
  // ln_conv1x1 with a Linear's weight [Co, Ci] (MAXIM's LayerNorm + projection): the linear op's FP32 GEMMs (the simt
  // pass: the LayerNorm formed in the forward, folded into the backward's dh pass, or not)
  for (const [name, xs, Co, env] of [
    ['lin b [5,13,17,64]->128', [5, 13, 17, 64], 128], ['lin b [5,13,17,64]->128 IRCONSTYLE_LN_FOLD=0', [5, 13, 17, 64], 128, { IRCONSTYLE_LN_FOLD: '0' }],
    ['lin b [2,9,7,32]->64', [2, 9, 7, 32], 64],
  ]) {
    const Ci = xs[xs.length - 1], rows = numel(xs) / Ci, ys = [...xs.slice(0, -1), Co];
    const ln = [pos([Ci], 0.5, 1.5), f([Ci])], w = f([Co, Ci], -0.3, 0.3), extra = { ...red, conv: true, ...(env ? { env } : {}) };
    add('ln_conv1x1', name, [f(xs, -2, 2), ...ln, w, f([Co])], [1e-6], extra);
    add('ln_conv1x1_backward', `${name} +acc`, [f(ys), f(xs, -2, 2), ...ln, w, f([rows], -0.5, 0.5), pos([rows], 0.5, 2), f(xs)], [1], extra);
  }
  // spatial_gate: MAXIM's gating unit (the LayerNorm into the mixing layout and the product back, transposed through
  // shared memory; the linear op's cuBLAS FP32 GEMMs in between). z, patch, grid, act
  for (const [name, zs, patch, grid, act] of [
    ['block gelu [4,64,64,64] 16x16', [4, 64, 64, 64], [16, 16], 0, 1],
    ['grid [2,32,32,66] patch 2x4 (P 128, C 33)', [2, 32, 32, 66], [2, 4], 1, 0],
    ['block [1,6,10,10] 3x5 (P 15 < one tile)', [1, 6, 10, 10], [3, 5], 0, 0],
    ['grid gelu [3,8,12,74] patch 4x3 (P 8, C 37)', [3, 8, 12, 74], [4, 3], 1, 1],
  ]) {
    const [N, H, W, C2] = zs, C = C2 / 2, P = grid ? (H / patch[0]) * (W / patch[1]) : patch[0] * patch[1];
    const attrs = [grid, patch[0], patch[1], act, 1e-6];
    const ln = [pos([C], 0.5, 1.5)], w = f([P, P], -0.2, 0.2);
    add('spatial_gate', name, [f(zs, -2, 2), ...ln, f([C]), w, f([P])], attrs, red);
    const back = (n) => [f([n, H, W, C]), f([n, H, W, C2], -2, 2), ...ln, f([C]), w, f([P]),
      f([n * H * W], -0.5, 0.5), pos([n * H * W], 0.5, 2)];
    add('spatial_gate_backward', name, back(N), attrs, red);
    if (name.startsWith('grid gelu')) add('spatial_gate_backward', `${name} batch 0`, back(0), attrs, red);
    if (name.startsWith('grid [2,32')) {  // keep = 1: g an output, and the backward reading it instead of forming it
      add('spatial_gate', `${name} keep`, [f(zs, -2, 2), ...ln, f([C]), w, f([P])], [...attrs, 1], red);
      add('spatial_gate_backward', `${name} kept g`, [...back(N), f([(N * H * W) / P, C, P])], attrs, red);
    }
  }
  // spatial_mix: the cross-gating's spatial gating weights (z's halves into the mixing layouts and back, the linear
  // op's kernels between). z, first (grid, patch), second (grid, patch), act, biases
  for (const [name, zs, m1, m2, act, bias] of [
    ['gelu [4,64,64,64] grid 4x4 | block 16x16 +b', [4, 64, 64, 64], [1, [4, 4]], [0, [16, 16]], 1, true],
    ['[2,16,12,74] grid 2x2 | block 8x6 (P 48, C 37)', [2, 16, 12, 74], [1, [2, 2]], [0, [8, 6]], 0, false],
  ]) {
    const [N, H, W, C2] = zs, C = C2 / 2, attrs = [m1[0], ...m1[1], m2[0], ...m2[1], act];
    const P = ([grid, [fh, fw]]) => (grid ? (H / fh) * (W / fw) : fh * fw), [p1, p2] = [P(m1), P(m2)];
    const ws = [f([p1, p1], -0.2, 0.2), f([p2, p2], -0.2, 0.2)];
    add('spatial_mix', name, [f(zs, -2, 2), ...ws, ...(bias ? [f([p1]), f([p2])] : [])], attrs, red);
    const back = (n) => [f([n, H, W, C2]), f([n, H, W, C2], -2, 2), ...ws];
    add('spatial_mix_backward', name, back(N), attrs, red);
    if (!bias) add('spatial_mix_backward', `${name} batch 0`, back(0), attrs, red);
  }
  // the gate's backward by each of its 3x3 padding-1 paths, whatever the pass's switches (two-pass is the default)
  for (const [name, xs, act, bias] of [['[2,16,16,96]', [2, 16, 16, 96], 0, true], ['gelu [1,9,7,510]', [1, 9, 7, 510], 1, false]]) {
    const ins = [f(xs), f([3, 3, 1, xs[3]], -0.5, 0.5), ...(bias ? [f([xs[3]])] : [])];
    add('dwconv_gate_backward', `two-pass ${name}`, [f([...xs.slice(0, 3), xs[3] / 2]), ...ins], [1, act],
      { ...red, env: { IRCONSTYLE_DWGATE_BWD: 'two-pass' } });
    // the one-pass kernel (opt-in; with IRCONSTYLE_SLIDE=batch, in the slide pass, its items rows first)
    add('dwconv_gate_backward', `one-pass ${name}`, [f([...xs.slice(0, 3), xs[3] / 2]), ...ins], [1, act],
      { ...red, env: { IRCONSTYLE_DWGATE_BWD: 'one-pass' } });
  }
  for (const [sh, r] of [[[2, 16, 16, 192], 2], [[1, 7, 13, 12], 2], [[1, 3, 5, 18], 3]])
    add('pixel_shuffle', `[${sh}] r${r}`, [f(sh)], [r]);
  for (const [sh, r] of [[[2, 32, 32, 12], 2], [[1, 14, 26, 5], 2], [[1, 9, 6, 3], 3]])
    add('pixel_unshuffle', `[${sh}] r${r}`, [f(sh)], [r]);
  add('concat', '2x[2,16,16,48]', [f([2, 16, 16, 48]), f([2, 16, 16, 48])]);
  add('concat', '[1,7,13,5|3|1]', [f([1, 7, 13, 5]), f([1, 7, 13, 3]), f([1, 7, 13, 1])]);
  add('concat', 'i32 [3,4|2]', [i32([3, 4]), i32([3, 2])]);
  add('concat', 'one input [5,3]', [f([5, 3])]);
  add('concat', 'logits [16,1|65760]', [f([16, 1]), f([16, 65760])]);
  add('split', '[2,16,16,96] 48|48', [f([2, 16, 16, 96])], [48, 48]);
  add('split', '[1,7,13,9] 5|3|1', [f([1, 7, 13, 9])], [5, 3, 1]);
  add('split', 'i32 [3,6] 2|4', [i32([3, 6])], [2, 4]);
  // float4 and scalar jobs in one launch, the scalar one with the more items (the grid sized by items, not columns)
  add('concat', '[2,9,7,8|3|1]', [f([2, 9, 7, 8]), f([2, 9, 7, 3]), f([2, 9, 7, 1])]);
  add('split', '[2,9,7,12] 8|3|1', [f([2, 9, 7, 12])], [8, 3, 1]);
  // gelu_split: split's jobs with GELU (float4 when every part allows it), its backward concat's times GELU'
  for (const [name, xs, sizes] of [['[2,32,32,128] 64|64', [2, 32, 32, 128], [64, 64]], ['[1,7,13,9] 5|3|1', [1, 7, 13, 9], [5, 3, 1]], ['[3,5,6] 2|4', [3, 5, 6], [2, 4]]]) {
    add('gelu_split', name, [f(xs, -4, 4)], sizes);
    add('gelu_split_backward', name, [f(xs, -4, 4), ...sizes.map((c) => f([...xs.slice(0, -1), c]))]);
  }
  add('split', '[4,5] 0|5', [f([4, 5])], [0, 5]);

  // --- geometry
  const pads = [
    ['zero 1111 [2,16,16,48]', [2, 16, 16, 48], [1, 1, 1, 1, 0]],
    ['reflect 2304 [1,7,13,5]', [1, 7, 13, 5], [2, 3, 0, 4, 1]],
    ['reflect 6566 [1,13,7,3]', [1, 13, 7, 3], [6, 5, 6, 6, 1]],
    ['zero 3025 [1,7,13,3]', [1, 7, 13, 3], [3, 0, 2, 5, 0]],
  ];
  for (const [name, xs, a] of pads) {
    add('pad2d', name, [f(xs)], a);
    add('pad2d_backward', name, [f([xs[0], xs[1] + a[0] + a[1], xs[2] + a[2] + a[3], xs[3]])], a);
  }
  add('crop2d', '[2,32,32,48] 0,0,16,16', [f([2, 32, 32, 48])], [0, 0, 16, 16]);
  add('crop2d', '[1,13,7,5] 3,2,7,4', [f([1, 13, 7, 5])], [3, 2, 7, 4]);
  add('crop2d', '[1,7,13,3] whole', [f([1, 7, 13, 3])], [0, 0, 7, 13]);
  for (const [xs, r, o] of [[[2, 32, 32, 48], 2, 1], [[1, 13, 7, 5], 4, 2], [[1, 7, 13, 3], 1, 0], [[1, 9, 11, 2], 3, 0]]) {
    const ys = [xs[0], Math.floor(xs[1] / r), Math.floor(xs[2] / r), xs[3]];
    add('subsample2d', `[${xs}] r${r} o${o}`, [f(xs)], [r, o]);
    add('subsample2d_backward', `[${xs}] r${r} o${o}`, [f(ys), f(xs)], [r, o]);
  }
  const rs = [
    [[2, 32, 32, 48], 16, 16, 0], [[2, 32, 32, 48], 16, 16, 1], [[1, 7, 13, 5], 13, 26, 0], [[1, 7, 13, 5], 13, 26, 1],
    [[1, 13, 7, 3], 5, 3, 1], [[1, 13, 7, 3], 5, 3, 0], [[1, 16, 16, 4], 7, 24, 1], [[2, 64, 64, 8], 16, 16, 1],
  ];
  for (const [xs, oh, ow, aa] of rs) {
    const name = `[${xs}]->${oh}x${ow}${aa ? ' aa' : ''}`;
    add('resize_bilinear', name, [f(xs)], [oh, ow, aa]);
    add('resize_bilinear_backward', name, [f([xs[0], oh, ow, xs[3]]), f(xs)], [oh, ow, aa], red);
  }

  // --- losses
  add('cross_entropy', 'MoCo [16,65761] labels 0', [f([16, 65761], -60, 60), labels(16, 1)], [], red);
  add('cross_entropy', '[5,7] random labels', [f([5, 7], -4, 4), labels(5, 7)], [], red);
  add('cross_entropy', '[3,1]', [f([3, 1]), labels(3, 1)], [], red);
  add('cross_entropy', '[64,1000]', [f([64, 1000], -10, 10), labels(64, 1000)], [], red);
  add('cross_entropy_backward', 'MoCo [16,65761] labels 0', [f([1], 0.5, 2), f([16, 65761], -60, 60), labels(16, 1)], [], red);
  add('cross_entropy_backward', '[5,7] random labels', [f([1], 0.5, 2), f([5, 7], -4, 4), labels(5, 7)], [], red);
  add('cross_entropy_backward', '[64,1000]', [f([1], 0.5, 2), f([64, 1000], -10, 10), labels(64, 1000)], [], red);
  for (const sh of [[2, 64, 64, 3], [1, 7, 13, 5], [16, 128], [16, 16]]) {
    for (const op of ['l1_loss', 'mse_loss']) {
      add(op, `[${sh}]`, [f(sh), f(sh)], [], red);
      add(`${op}_backward`, `[${sh}]`, [f([1], 0.5, 2), f(sh), f(sh)], [], red);
    }
  }

  // --- optimisation (in place)
  const adam = (step) => [3e-4, 0.9, 0.999, 1e-8, 1e-4, step];
  for (const [name, sh, step] of [['[1000] step 1', [1000], 1], ['[7] step 7', [7], 7], ['[1048579] step 3', [1048579], 3]])
    add('adamw_step', name, [f(sh), f(sh, -0.01, 0.01), f(sh, -0.01, 0.01), f(sh, 0, 1e-4)], adam(step), { mutates: [0, 2, 3] });
  add('adamw_step', 'arena views [4099] step 2', [view(f([4099]), 33, 11), view(f([4099], -0.01, 0.01), 33, 11),
    view(f([4099], -0.01, 0.01), 33, 11), view(f([4099], 0, 1e-4), 33, 11)], adam(2), { mutates: [0, 2, 3] });
  for (const [name, sh, m] of [['[1190832] 0.999', [1190832], 0.999], ['[7,13] 0.5', [7, 13], 0.5], ['[5] m 0', [5], 0], ['[5] m 1', [5], 1]])
    add('momentum_update', name, [f(sh), f(sh)], [m], { mutates: [0] });
  add('momentum_update', 'view [333] 0.999', [view(f([333]), 17, 4), f([333])], [0.999], { mutates: [0] });
  // the per-step factors read on the device ([1 - lr wd, -lr / bc1, sqrt(bc2)]; attrs lr and step then unused)
  add('adamw_step', '[4099] device factors', [f([4099]), f([4099], -0.01, 0.01), f([4099], -0.01, 0.01), f([4099], 0, 1e-4),
    f([3], 0.05, 1)], adam(5), { mutates: [0, 2, 3] });
  // the MoCo queue step, pointer on the device: wrap of the next block, K == n, the paper's dim with a batch of 16
  for (const [name, K, D, n, p] of [['K 12 n 4 p 8', 12, 5, 4, 8], ['K = n = 4', 4, 3, 4, 0], ['[2048,128] n 16 p 1024', 2048, 128, 16, 1024]])
    add('queue_swap', name, [f([K, D]), f([n, D]), i32([1], p, p + 1)], [], { mutates: [0] });

  // An empty batch: each op's first case with the leading dim 0 wherever it equals the first input's (a CUDA kernel
  // must launch nothing or a grid with nothing to do, and still write zero parameter gradients). Skipped: ops whose
  // other inputs would need other shapes then (row statistics, labels, the queue) and those without a batch.
  const noBatch = new Set(['fill', 'copy_', 'batch_norm1d', 'layer_norm2d_backward', 'layer_norm_bias_free_backward',
    'ln_conv1x1_backward', 'ln_conv1x1_gate_backward', 'spatial_gate_backward', 'spatial_mix_backward', 'cross_entropy', 'cross_entropy_backward', 'queue_swap',
    'moco_logits', 'adamw_step', 'momentum_update', 'add_n_']);
  const firsts = new Map();
  for (const c of C) if (!firsts.has(c.op) && !c.env && !noBatch.has(c.op) && !c.inputs.some((x) => x.view)) firsts.set(c.op, c);
  for (const c of firsts.values()) {
    const n0 = c.inputs[0]?.shape?.[0];
    if (!(n0 > 1) || c.inputs[0].shape.length < 2) continue;
    const inputs = c.inputs.map((x) => (x.shape.length > 1 && x.shape[0] === n0 ? { ...x, shape: [0, ...x.shape.slice(1)] } : x));
    C.push({ ...c, name: `${c.name} batch 0`, inputs });
  }
  return C;
}

/** Ops of `opNames` (from the op table) that no case covers. */
export function uncoveredOps(opNames, cases = opCases()) {
  const have = new Set(cases.map((c) => c.op));
  return opNames.filter((n) => !have.has(n));
}

function hashString(s) {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Deterministic uniform [0, 1) generator (mulberry32). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Host arrays for the inputs of case `c`: [{ data (the whole base for views), shape, dtype, view? }]. */
export function hostInputs(c, seed = 1) {
  const r = rng(hashString(c.name) ^ Math.imul(seed, 0x9e3779b1));
  return c.inputs.map((s) => {
    const n = numel(s.shape);
    const [before, after] = s.view ?? [0, 0];
    const total = before + n + after;
    let data;
    if (s.dtype === 'int32') {
      data = new Int32Array(total);
      if (s.labels !== undefined) for (let i = 0; i < total; i++) data[i] = Math.min(s.labels - 1, Math.floor(r() * s.labels));
      else for (let i = 0; i < total; i++) data[i] = Math.floor(s.lo + r() * (s.hi - s.lo));
    } else {
      data = new Float32Array(total);
      for (let i = 0; i < total; i++) data[i] = s.lo + r() * (s.hi - s.lo);
    }
    return { data, shape: s.shape, dtype: s.dtype, view: s.view ? { offset: before, total } : null };
  });
}

/**
 * Builds the inputs of case `c` on `device` ('cpu' | 'cuda'): created on the CPU with lib.tensor, copied with
 * `.to(device)`. Needs lib.tensor (and lib.viewOf for view inputs: dist/lib/tensor/tensor.js exports it).
 * Returns { inputs, bases } (bases: the flat tensors under view inputs, or null); the caller disposes both.
 */
export function buildInputs(lib, c, seed = 1, device = 'cpu') {
  const inputs = [];
  const bases = [];
  for (const h of hostInputs(c, seed)) {
    const host = lib.tensor(h.data, h.view ? [h.view.total] : h.shape, { device: 'cpu' });
    let t = host;
    if (device !== 'cpu') {
      t = host.to(device);
      host.dispose();
    }
    if (h.view) {
      if (!lib.viewOf) throw new Error(`${c.name}: view inputs need lib.viewOf`);
      bases.push(t);
      inputs.push(lib.viewOf(t, h.view.offset, h.shape));
    } else {
      bases.push(null);
      inputs.push(t);
    }
  }
  return { inputs, bases };
}
