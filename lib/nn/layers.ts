// Basic layers with PyTorch parameter names: Conv2d, Linear, BatchNorm1d, LayerNorm2d, PReLU.
import type { Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';
import { constant, kaimingUniform } from './init.js';
import { conv2d, linear } from '../ops/conv.js';
import { batchNorm1d, layerNorm2d } from '../ops/norm.js';
import { prelu } from '../ops/activation.js';
import { conv1x1Add } from '../ops/fused.js';

export interface Conv2dOptions {
  stride?: number;
  pad?: number;
  groups?: number;
  bias?: boolean;
}

/** nn.Conv2d on NHWC input. Weight official [O, I/g, KH, KW], internal [KH, KW, I/g, O]. */
export class Conv2d extends Module {
  readonly stride: number;
  readonly pad: number;
  readonly groups: number;
  constructor(cin: number, cout: number, k: number, opts: Conv2dOptions = {}) {
    super();
    this.stride = opts.stride ?? 1;
    this.pad = opts.pad ?? (k - 1) >> 1;
    this.groups = opts.groups ?? 1;
    const fanIn = (cin / this.groups) * k * k;
    this.param('weight', [cout, cin / this.groups, k, k], kaimingUniform(cout * (cin / this.groups) * k * k, fanIn), 'conv');
    if (opts.bias ?? true) this.param('bias', [cout], kaimingUniform(cout, fanIn));
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.P.weight!, this.P.bias ?? null, { stride: this.stride, pad: this.pad, groups: this.groups });
  }
}

/** nn.Linear: weight [out, in]. */
export class Linear extends Module {
  constructor(cin: number, cout: number, bias = true) {
    super();
    this.param('weight', [cout, cin], kaimingUniform(cout * cin, cin));
    if (bias) this.param('bias', [cout], kaimingUniform(cout, cin));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.P.weight!, this.P.bias ?? null);
  }
  /** r + this(x), the residual added by the GEMM (one op, conv1x1_add with the Linear weight layout). */
  forwardAdd(x: Tensor, r: Tensor): Tensor {
    return conv1x1Add(x, this.P.weight!, r, this.P.bias ?? null, null);
  }
}

/** nn.BatchNorm1d (eps 1e-5, momentum 0.1, affine, running stats). */
export class BatchNorm1d extends Module {
  constructor(c: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.param('weight', [c], constant(c, 1));
    this.param('bias', [c], constant(c, 0));
    this.buffer('running_mean', [c], constant(c, 0));
    this.buffer('running_var', [c], constant(c, 1));
    this.scalar('num_batches_tracked', 0);
  }
  forward(x: Tensor): Tensor {
    if (this.training) this.S.num_batches_tracked! += 1;
    return batchNorm1d(x, this.P.weight!, this.P.bias!, this.B.running_mean!, this.B.running_var!, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

/** LayerNorm over channels of an NHWC map (NAFNet's LayerNorm2d), eps 1e-6. */
export class LayerNorm2d extends Module {
  constructor(c: number, readonly eps = 1e-6) {
    super();
    this.param('weight', [c], constant(c, 1));
    this.param('bias', [c], constant(c, 0));
  }
  forward(x: Tensor): Tensor {
    return layerNorm2d(x, this.P.weight!, this.P.bias!, this.eps);
  }
}

/** nn.PReLU(num_parameters = c), init 0.25. */
export class PReLU extends Module {
  constructor(c: number, init = 0.25) {
    super();
    this.param('weight', [c], constant(c, init));
  }
  forward(x: Tensor): Tensor {
    return prelu(x, this.P.weight!);
  }
}
