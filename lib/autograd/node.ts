// Autograd graph nodes and the global grad mode.
import type { Tensor } from '../tensor/tensor.js';
import type { Kept } from './reform.js';

export interface GradNode {
  name: string;
  /** Inputs in op order (null where an optional input was absent). Used for graph structure only. */
  inputs: (Tensor | null)[];
  /** Number of outputs the op produced. */
  nOutputs: number;
  /** Retained tensors (views sharing storage, or marks of tensors formed again: reform.ts) handed back to backward.
   * Freed after backward. */
  saved: Kept[];
  backward: (gys: (Tensor | null)[], saved: Tensor[], acc: (Tensor | null)[]) => (Tensor | null)[];
  /**
   * Inputs whose gradient the backward rule can fold a pending gradient into (acc[i]: the sum so far from the
   * input's other consumers; the rule's gradient for i must then include it), saving an add pass.
   */
  accumulate?: number[];
  /** Set for ops without a backward: reaching the node in backward() throws. */
  notDifferentiable?: boolean;
  /** Monotonic creation index: a node is always created after the nodes of its inputs. */
  seq: number;
}

let gradEnabled = true;
let seq = 0;

export function isGradEnabled(): boolean {
  return gradEnabled;
}
export function nextSeq(): number {
  return ++seq;
}

/** Runs fn with gradient recording off (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn with gradient recording on/off as given. */
export function withGrad<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}
