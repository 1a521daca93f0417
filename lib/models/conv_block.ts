// The plain convolutional Process Module (ConStyle v2's "vanilla CNN" block, spec §4.1): two Conv3×3 + PReLU
// layers with an identity skip.
import type { Tensor } from '../tensor/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d, PReLU } from '../nn/layers.js';
import { add } from '../ops/elementwise.js';

/** Conv3×3 + PReLU, as children 0 and 1. */
export class ConvPReLU extends Module {
  readonly conv: Conv2d;
  readonly act: PReLU;
  constructor(cin: number, cout: number) {
    super();
    this.conv = this.child('0', new Conv2d(cin, cout, 3));
    this.act = this.child('1', new PReLU(cout));
  }
  forward(x: Tensor): Tensor {
    return this.act.forward(this.conv.forward(x));
  }
}

/** x + PReLU(Conv(PReLU(Conv(x)))). */
export class ConvBlock extends Module {
  readonly body1: ConvPReLU;
  readonly body2: ConvPReLU;
  constructor(c: number) {
    super();
    this.body1 = this.child('body1', new ConvPReLU(c, c));
    this.body2 = this.child('body2', new ConvPReLU(c, c));
  }
  forward(x: Tensor): Tensor {
    return add(x, this.body2.forward(this.body1.forward(x)));
  }
}
