// NAFNet ops: simpleGate, globalAvgPool, channelScale (NHWC), with backward rules.
import { record } from '../autograd/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { runOp } from './run.js';

/** x[..., 2C] -> x[..., :C] * x[..., C:]. */
export function simpleGate(x: Tensor): Tensor {
  const [y] = runOp('simple_gate', [x]);
  record({
    name: 'simple_gate',
    inputs: [x],
    outputs: [y!],
    save: [x],
    backward: ([gy], [xs]) => [runOp('simple_gate_backward', [gy!, xs!])[0]!],
  });
  return y!;
}

/** x[N, H, W, C] -> mean over H, W: [N, 1, 1, C]. */
export function globalAvgPool(x: Tensor): Tensor {
  const [y] = runOp('global_avg_pool', [x]);
  record({
    name: 'global_avg_pool',
    inputs: [x],
    outputs: [y!],
    save: [x],
    accumulate: [0],
    backward: ([gy], [xs], [acc]) => [runOp('global_avg_pool_backward', [gy!, xs!, ...(acc ? [acc] : [])])[0]!],
  });
  return y!;
}

/** x[N, H, W, C] * s[N, 1, 1, C] (simplified channel attention). */
export function channelScale(x: Tensor, s: Tensor): Tensor {
  const [y] = runOp('channel_scale', [x, s]);
  record({
    name: 'channel_scale',
    inputs: [x, s],
    outputs: [y!],
    save: [x, s],
    backward: ([gy], [xs, ss]) => {
      const [dx, ds] = runOp('channel_scale_backward', [gy!, xs!, ss!]);
      return [dx!, ds!];
    },
  });
  return y!;
}
