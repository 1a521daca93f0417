// Reverse-mode autograd over the op graph. Ops call record(); backward(loss) walks the graph in reverse
// creation order, accumulates gradients, and hands leaf gradients to `.grad` (added in place into an existing
// .grad, e.g. a view into a model's flat gradient arena).
import { IrcError } from '../errors.js';
import { Tensor, shapeStr, viewOf, setReshapeRecorder, setTransferRecorder } from '../tensor/tensor.js';
import { disposeOnError, settle, untracked } from '../tensor/scope.js';
import { native } from '../native/loader.js';
import { OP_ID } from '../native/ops.gen.js';
import { GradNode, isGradEnabled, nextSeq, withGrad } from './node.js';
import { keep, markView, open } from './reform.js';

export interface RecordSpec {
  name: string;
  inputs: (Tensor | null)[];
  outputs: Tensor[];
  save?: Tensor[];
  /**
   * gys: the outputs' gradients; acc[i] (for the inputs listed in `accumulate`): the gradient input i has already
   * received from consumers processed before this node, or null. A rule given acc[i] must return a gradient for i
   * that includes it (e.g. a kernel that adds it on its store).
   */
  backward: (gys: (Tensor | null)[], saved: Tensor[], acc: (Tensor | null)[]) => (Tensor | null)[];
  accumulate?: number[];
}

let observer: ((name: string) => void) | null = null;
/** Calls fn with the op name of every node whose backward runs (tests use it to prove gradient coverage). */
export function setBackwardObserver(fn: ((name: string) => void) | null): void {
  observer = fn;
}

/** Whether an op on these inputs is recorded: grad mode is on and one of them requires grad. */
export function needsGrad(inputs: (Tensor | null)[]): boolean {
  return isGradEnabled() && inputs.some((t) => t?.requiresGrad);
}

/** Registers a differentiable op on the graph (no-op when grad mode is off or no input requires grad). */
export function record(spec: RecordSpec): void {
  if (!needsGrad(spec.inputs)) return;
  const saved = (spec.save ?? []).map(keep);
  const node: GradNode = {
    name: spec.name,
    inputs: spec.inputs,
    nOutputs: spec.outputs.length,
    saved,
    backward: spec.backward,
    ...(spec.accumulate ? { accumulate: spec.accumulate } : {}),
    seq: nextSeq(),
  };
  attach(spec.outputs, node);
  if (saved.length) guards[guards.length - 1]?.push(node);
}

// The nodes with saved tensors recorded under each open freeGraphOnError call, innermost last.
const guards: GradNode[][] = [];

/**
 * Runs a synchronous fn; if it throws, frees the saved tensors of every graph node recorded inside. A forward or
 * backward that fails part way (e.g. out of GPU memory) leaves a graph no backward() will walk, and its saved
 * tensors — most of a training step's activations — would otherwise be held until garbage collection. On success
 * the nodes are left as they are (an enclosing call frees them if it fails).
 */
export function freeGraphOnError<T>(fn: () => T): T {
  const nodes: GradNode[] = [];
  guards.push(nodes);
  return settle(fn, (ok) => {
    guards.pop();
    const outer = guards[guards.length - 1];
    if (!ok) for (const n of nodes) freeNode(n);
    else if (outer) for (const n of nodes) outer.push(n);
  });
}

/** Marks outputs of an op without a backward: a gradient reaching them throws E_NO_GRAD. */
export function recordNonDifferentiable(name: string, inputs: Tensor[], outputs: Tensor[]): void {
  if (!needsGrad(inputs)) return;
  attach(outputs, { name, inputs, nOutputs: outputs.length, saved: [], backward: () => [], notDifferentiable: true, seq: nextSeq() });
}

// Reshape views are differentiable: the gradient is the output gradient viewed with the input's shape.
setReshapeRecorder((src, view) => {
  markView(src, view);
  record({
    name: 'reshape',
    inputs: [src],
    outputs: [view],
    backward: ([g]) => [g ? viewOf(g, 0, src.shape, false) : null],
  });
});

// Device transfers are differentiable: the gradient goes back to the source's device.
setTransferRecorder((src, copy) =>
  record({
    name: 'to',
    inputs: [src],
    outputs: [copy],
    backward: ([g]) => [g ? g.to(src.device) : null],
  }),
);

function attach(outputs: Tensor[], node: GradNode): void {
  outputs.forEach((t, i) => {
    t.requiresGrad = true;
    t._node = node;
    t._outIndex = i;
  });
}

/**
 * For a node whose rule folds pending gradients in (`accumulate`), removes each listed input's pending gradient
 * from `grads` and returns them by input index (null where there is none; an input listed twice gets it once).
 * The rule's result for that input then replaces the slot instead of being added to it.
 */
const NO_PENDING: readonly (Tensor | null)[] = Object.freeze([]);

function takePending(node: GradNode, grads: Map<GradNode, (Tensor | null)[]>): (Tensor | null)[] {
  if (!node.accumulate) return NO_PENDING as (Tensor | null)[]; // most nodes: no array per node
  const acc: (Tensor | null)[] = [];
  for (const i of node.accumulate) {
    const x = node.inputs[i];
    if (!x?.requiresGrad || !x._node) continue;
    const slot = grads.get(x._node);
    const prev = slot?.[x._outIndex] ?? null;
    if (!prev || prev.size !== x.size) continue;
    slot![x._outIndex] = null;
    acc[i] = prev;
  }
  return acc;
}

function addTensors(a: Tensor, b: Tensor): Tensor {
  return new Tensor(native.run(OP_ID.add, [a.id, b.id], [])[0]!, a.shape, a.dtype, false);
}

function freeNode(n: GradNode): void {
  for (const s of n.saved) s.dispose();
  n.saved = [];
}

/**
 * Back-propagates from `loss` (any shape; the seed gradient is ones, or `seed` when given).
 * Leaf tensors with requiresGrad receive `.grad`. The graph is freed afterwards.
 */
export function backward(loss: Tensor, seed?: Tensor): void {
  if (!loss.requiresGrad || !loss._node) {
    throw new IrcError('E_NO_GRAD', `backward: the tensor ${shapeStr(loss.shape)} does not depend on any tensor that requires grad`);
  }
  untracked(() => withGrad(false, () => run(loss, seed)));
}

function run(loss: Tensor, seed?: Tensor): void {
  // Collect the reachable nodes.
  const nodes = new Set<GradNode>();
  const stack: GradNode[] = [loss._node!];
  while (stack.length) {
    const n = stack.pop()!;
    if (nodes.has(n)) continue;
    nodes.add(n);
    for (const t of n.inputs) if (t?._node && !nodes.has(t._node)) stack.push(t._node);
  }
  const order = [...nodes].sort((a, b) => b.seq - a.seq);
  const leafAdds = new LeafAdds();
  // grads[node] = per-output gradient tensors (owned here).
  const grads = new Map<GradNode, (Tensor | null)[]>();
  const seedT = seed
    ? viewOf(seed, 0, seed.shape, false)
    : new Tensor(native.run(OP_ID.fill, [], [1, 0, ...loss.shape], loss.device === 'cuda' ? 1 : 0)[0]!, loss.shape, 'float32', false);
  grads.set(loss._node!, Array.from({ length: loss._node!.nOutputs }, (_, i) => (i === loss._outIndex ? seedT : null)));
  try {
    for (const node of order) {
      const gys = grads.get(node);
      grads.delete(node);
      if (!gys || gys.every((g) => g === null)) {
        freeNode(node);
        continue;
      }
      if (node.notDifferentiable) {
        throw new IrcError('E_NO_GRAD', `backward: a gradient must pass through '${node.name}', which is not differentiable`);
      }
      const acc = takePending(node, grads);
      let gxs: (Tensor | null)[];
      try {  // a rule that fails part way (out of GPU memory, say) disposes what it made
        gxs = disposeOnError(() => node.backward(gys, node.saved.map(open), acc));
      } finally {
        for (const a of acc) a?.dispose();
        for (const g of gys) g?.dispose();
      }
      freeNode(node);
      let i = 0;
      try {
        observer?.(node.name);
        for (; i < node.inputs.length; ++i) pass(node, i, gxs[i] ?? null, acc[i] ?? null, grads, leafAdds);
      } catch (e) {  // the gradients not handed on yet (an input's .grad is its own)
        for (let j = i; j < gxs.length; ++j) if (gxs[j] && gxs[j] !== node.inputs[j]?.grad) gxs[j]!.dispose();
        throw e;
      }
    }
    leafAdds.flush();
  } finally {
    leafAdds.drop();
    for (const gs of grads.values()) for (const g of gs) g?.dispose();
    for (const n of nodes) freeNode(n);
  }
}

/** Hands node's gradient g for input i on: added to the input's pending gradient, or to its .grad for a leaf. */
function pass(node: GradNode, i: number, g: Tensor | null, acc: Tensor | null, grads: Map<GradNode, (Tensor | null)[]>,
  leafAdds: LeafAdds): void {
  const x = node.inputs[i];
  if (acc && !g)
    throw new IrcError('E_INTERNAL', `backward of ${node.name}: took input ${i}'s pending gradient and returned none`);
  if (!g) return;
  if (!x || !x.requiresGrad) {
    g.dispose();
    return;
  }
  if (g.size !== x.size)
    throw new IrcError('E_INTERNAL',
      `backward of ${node.name}: gradient ${shapeStr(g.shape)} for input ${shapeStr(x.shape)}`);
  if (x._node) {
    const slot = grads.get(x._node) ?? new Array<Tensor | null>(x._node.nOutputs).fill(null);
    const prev = slot[x._outIndex];
    slot[x._outIndex] = prev ? addTensors(prev, g) : g;
    if (prev) {
      prev.dispose();
      g.dispose();
    }
    grads.set(x._node, slot);
  } else {
    accumulateLeaf(x, g, leafAdds);
  }
}

/**
 * Gradients added into existing leaf .grad tensors (the trainer's arena views: one per parameter, hundreds per
 * step), submitted as add_n_ batches of up to 128 pairs instead of one add_ each. A dst already in the batch
 * flushes it first (add_n_ needs distinct destinations).
 */
class LeafAdds {
  private ids: number[] = [];
  private dsts = new Set<number>();
  private srcs: Tensor[] = [];

  add(dst: Tensor, src: Tensor): void {
    if (this.dsts.has(dst.id)) this.flush();
    this.ids.push(dst.id, src.id);
    this.dsts.add(dst.id);
    this.srcs.push(src);
    if (this.srcs.length >= 128) this.flush();
  }

  flush(): void {
    if (this.srcs.length) native.run(OP_ID.add_n_, this.ids, []);
    this.drop();
  }

  /** Releases the batched sources (after a flush, or unsubmitted after an error). */
  drop(): void {
    for (const t of this.srcs) t.dispose();
    this.ids = [];
    this.dsts.clear();
    this.srcs = [];
  }
}

/**
 * A leaf's first gradient becomes its .grad as it is, and it may share storage with other gradients (add's rule
 * passes views of its incoming gradient to both inputs; the seed of a nested backward is the caller's gradient).
 * Such a .grad is not written in place while a view shares its storage: a later contribution, in this backward or a
 * later one, replaces it with a fresh sum. A .grad the caller put there (the trainer's arena views, zeroed each
 * step), or one no view shares, is added into in place (batched add_n_).
 */
const borrowed = new WeakSet<Tensor>();

function accumulateLeaf(x: Tensor, g: Tensor, adds: LeafAdds): void {
  if (x.grad && !x.grad.isDisposed) {
    if (!borrowed.has(x.grad) || native.soleView(x.grad.id)) {
      borrowed.delete(x.grad);
      return adds.add(x.grad, g);
    }
    const gs = shaped(g, x.shape);
    const sum = addTensors(x.grad, gs);
    x.grad.dispose();
    gs.dispose();
    x.grad = sum;
  } else {
    x.grad = shaped(g, x.shape);
    borrowed.add(x.grad);
  }
}

/** g itself when it has `shape`, else a view of it with that shape (g released). */
function shaped(g: Tensor, shape: readonly number[]): Tensor {
  return g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i]) ? g : reshapeOwned(g, shape);
}

function reshapeOwned(g: Tensor, shape: readonly number[]): Tensor {
  const v = viewOf(g, 0, shape, false);
  g.dispose();
  return v;
}
