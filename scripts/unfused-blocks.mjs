// The block forwards as they were composed before the fused block ops (dwconv_gate's GELU gate, conv1x1_add,
// channel_attention; MAXIM's Linear + residual, its gating units, GELU + split pairs and spatial gating weights, its
// intermediates kept rather than formed again), for an A/B measurement in one process (scripts/bench-gpu.mjs, BENCH_AB=1): the same
// parameters and the same math through the separate ops. Not part of the library.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Loads the library's modules (by default the compiled ones under `root`/dist/lib; `load` maps a path like
 * 'models/nafnet.js' to a module, e.g. the TypeScript sources under vitest) and returns { patch(), restore() } over
 * the block prototypes.
 */
export async function unfusedBlocks(root, load = (p) => import(pathToFileURL(join(root, 'dist', 'lib', p)).href)) {
  const m = load;
  const [{ NAFBlock }, R, el, act, act2, conv, mem, shape, fused, naf, { Linear }, MB] = await Promise.all([
    m('models/nafnet.js'), m('models/restormer.js'), m('ops/elementwise.js'), m('ops/activation.js'),
    m('ops/activation2.js'), m('ops/conv.js'), m('ops/memory.js'), m('ops/shape.js'), m('ops/fused.js'), m('ops/nafnet.js'),
    m('nn/layers.js'), m('models/maxim_blocks.js'),
  ]);
  const { TransformerBlock, Attention, FeedForward } = R;
  const saved = [
    [NAFBlock.prototype, 'forward', NAFBlock.prototype.forward],
    [TransformerBlock.prototype, 'forward', TransformerBlock.prototype.forward],
    [Attention.prototype, 'forward', Attention.prototype.forward],
    [FeedForward.prototype, 'forward', FeedForward.prototype.forward],
    [Linear.prototype, 'forwardAdd', Linear.prototype.forwardAdd],
    [MB.GatingUnit.prototype, 'forward', MB.GatingUnit.prototype.forward],
  ];
  function nafBlock(inp) {
    let x = this.conv1.forward(this.norm1.forward(inp));
    x = fused.dwconvGate(x, this.conv2.P.weight, this.conv2.P.bias ?? null, 1);
    x = this.conv3.forward(naf.channelScale(x, this.sca.weights(x)));
    const y = fused.scaledAdd(inp, x, this.P.beta);
    x = this.conv5.forward(naf.simpleGate(this.conv4.forward(this.norm2.forward(y))));
    return fused.scaledAdd(y, x, this.P.gamma);
  }
  function attention(x) {
    const [n, h, w, c] = x.shape;
    const heads = this.heads, ch = c / heads;
    const [q, k, v] = shape.split(this.qkvDwconv.forward(this.qkv.forward(x)), [c, c, c]);
    const toHeads = (t) => mem.permute(t.reshape([n, h * w, heads, ch]), [0, 2, 3, 1]);
    const s = conv.matmul(act2.l2Normalize(toHeads(q), 1e-12), act2.l2Normalize(toHeads(k), 1e-12), { transB: true });
    const out = conv.matmul(act2.softmax(el.mul(s, this.P.temperature)), toHeads(v));
    return this.projectOut.forward(mem.permute(out, [0, 3, 1, 2]).reshape([n, h, w, c]));
  }
  function feedForward(x) {
    const [x1, x2] = shape.split(this.dwconv.forward(this.projectIn.forward(x)), [this.hidden, this.hidden]);
    return this.projectOut.forward(el.mul(act.gelu(x1), x2));
  }
  function transformerBlock(x) {
    const y = el.add(x, this.attn.forward(this.norm1.forward(x)));
    return el.add(y, this.ffn.forward(this.norm2.forward(y)));
  }
  return {
    patch() {
      MB.GatingUnit.prototype.forward = MB.GatingUnit.prototype.composed; // MAXIM's gating units
      MB.maximFusion.geluSplit = MB.maximFusion.spatialMix = false; // its GELU + split pairs, spatial gating weights
      MB.maximFusion.reform = false; // and every intermediate kept for the backward, as composed before the reforms
      NAFBlock.prototype.forward = nafBlock;
      TransformerBlock.prototype.forward = transformerBlock;
      Attention.prototype.forward = attention;
      FeedForward.prototype.forward = feedForward;
      Linear.prototype.forwardAdd = function (x, r) { return el.add(this.forward(x), r); }; // MAXIM's residuals
    },
    restore() {
      for (const [proto, k, f] of saved) proto[k] = f;
      MB.maximFusion.geluSplit = MB.maximFusion.spatialMix = MB.maximFusion.reform = true;
    },
  };
}
