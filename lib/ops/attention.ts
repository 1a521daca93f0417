// Restormer's MDTA core (transposed channel attention) as one op with its backward rule, and behind its qkv
// depthwise conv with that conv's output recomputed in the backward instead of kept.
import { needsGrad, record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';
import { conv2d } from './conv.js';
import { composesOnCpu } from './fused.js';

/**
 * qkv[N, H, W, 3C] (q, k, v along the channels), temperature with `heads` elements -> y[N, H, W, C]: per head of
 * c = C / heads channels, over the H·W pixels, softmax(normalize(q) · normalize(k)ᵀ · t) · v — the official
 * MDTA between its qkv depthwise conv and project_out (F.normalize with `eps` over the pixel axis), without the
 * transposed copies. The backward recomputes the attention from the saved cosines.
 */
export function channelAttention(qkv: Tensor, temperature: Tensor, heads: number, eps = 1e-12): Tensor {
  const attrs = [heads, eps];
  const [y, cos, norms] = runOp('channel_attention', [qkv, temperature], attrs);
  record({
    name: 'channel_attention',
    inputs: [qkv, temperature],
    outputs: [y!],
    save: [qkv, temperature, cos!, norms!],
    backward: ([gy], [q, t, c, n]) => {
      const [dqkv, dt] = runOp('channel_attention_backward', [gy!, q!, t!, c!, n!], attrs);
      return [dqkv!, dt!];
    },
  });
  cos!.dispose();
  norms!.dispose();
  return y!;
}

/**
 * channelAttention(depthwise 3×3 conv of x (w [3, 3, 1, 3C], b [3C] or null, padding 1)): MDTA's qkv_dwconv and
 * attention core. The conv's output, the attention's whole input, is not kept for the backward: the backward
 * recomputes it (one depthwise conv) from x, which the conv's weight gradient needs anyway. That is the largest
 * tensor a Transformer block would otherwise keep beside the LayerNorm + qkv output (3C channels at full
 * resolution; ConStyle Restormer's training step at batch 8, 128²: 2,205 MiB). Same kernels, same order, so the
 * same values as the two separate ops. `keepQkv` keeps the conv output instead (the separate ops): by default on
 * the CPU, whose step is bound by arithmetic, not memory (see setKeepOnCpu).
 */
export function dwconvChannelAttention(x: Tensor, w: Tensor, b: Tensor | null, temperature: Tensor, heads: number,
  opts: { keepQkv?: boolean; eps?: number } = {}): Tensor {
  const c3 = x.shape[x.rank - 1]!;
  const convAttrs = [1, 1, c3]; // stride 1, padding 1, depthwise
  const eps = opts.eps ?? 1e-12;
  const ins = [x, w, ...(b ? [b] : []), temperature];
  if ((opts.keepQkv ?? composesOnCpu(x)) || !needsGrad(ins))
    return channelAttention(conv2d(x, w, b, { stride: 1, pad: 1, groups: c3 }), temperature, heads, eps);
  const attrs = [heads, eps];
  const [qkv] = runOp('conv2d', [x, w, ...(b ? [b] : [])], convAttrs);
  const [y, cos, norms] = runOp('channel_attention', [qkv!, temperature], attrs);
  qkv!.dispose();
  record({
    name: 'dwconv_channel_attention',
    inputs: ins,
    outputs: [y!],
    save: [x, w, ...(b ? [b] : []), temperature, cos!, norms!],
    backward: ([gy], saved) => {
      const [xs, ws] = saved as [Tensor, Tensor];
      const [bs, t, c, n] = (b ? saved.slice(2) : [null, ...saved.slice(2)]) as [Tensor | null, Tensor, Tensor, Tensor];
      const [q] = runOp('conv2d', [xs, ws, ...(bs ? [bs] : [])], convAttrs);
      const [dq, dt] = runOp('channel_attention_backward', [gy!, q!, t, c, n], attrs);
      q!.dispose();
      const [dx, dw, db] = runOp('conv2d_backward', [dq!, xs, ws], convAttrs);
      dq!.dispose();
      if (b) return [dx!, dw!, db!, dt!];
      db!.dispose();
      return [dx!, dw!, dt!];
    },
  });
  cos!.dispose();
  norms!.dispose();
  return y!;
}
