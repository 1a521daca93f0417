// Public API of irconstyle.
export { IrcError, isIrcError } from './errors.js';
export { Tensor, tensor, type DType, type Shape } from './tensor/tensor.js';
export { zeros, ones, full, fillInPlace } from './tensor/create.js';
export { tidy, keep } from './tensor/scope.js';
export { noGrad } from './autograd/node.js';
export { backward } from './autograd/tape.js';
export { backend, backendInfo } from './native/backend.js';
export { memoryStats, sync } from './tensor/memory.js';
