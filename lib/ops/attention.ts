// Restormer's MDTA core (transposed channel attention) as one op with its backward rule.
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

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
