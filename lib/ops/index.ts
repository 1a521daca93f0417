// Every differentiable op and tensor utility, by family.
export * from './activation.js';
export * from './activation2.js';
export * from './conv.js';
export * from './elementwise.js';
export * from './loss.js';
export * from './memory.js';
export * from './nafnet.js';
export * from './norm.js';
export * from './norm2.js';
export * from './fused.js';
export * from './attention.js';
export * from './optim.js';
export * from './shape.js';
export * from './resample.js';
export { runOp, type OpName } from './run.js';
