// The trainer's graph mode: the recorded step reads its per-step values (AdamW factors, queue pointer) on the
// device, obeys the capture rules, and gives the same losses, parameters, optimizer state and queue as the
// op-by-op trainer, across the ConStyle freeze (two step kinds). On the CPU the recording runs the step.
import { describe, expect, it } from 'vitest';
import { createModel } from '../lib/models/catalog.js';
import { setInitSeed } from '../lib/nn/init.js';
import { IRConStyleTrainer, type StepLosses } from '../lib/train/irconstyle.js';
import { ConStyle } from '../lib/models/constyle.js';
import { adamwFactors, adamwStep, queueSwap } from '../lib/ops/optim.js';
import { tensor, type Tensor } from '../lib/tensor/tensor.js';
import { keep } from '../lib/tensor/scope.js';
import { add, scale } from '../lib/ops/elementwise.js';
import type { ConStyleUNet } from '../lib/models/unet.js';
import { randArray } from './helpers.js';
import { setKeepOnCpu } from '../lib/ops/fused.js';
import { profileOps } from '../lib/native/profile.js';

async function train(graph: boolean, steps: number, wrapRestore?: (y: Tensor) => Tensor, maxGraphs?: number) {
  setInitSeed(21);
  const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
  if (wrapRestore) {
    const restore = net.restore.bind(net);
    net.restore = (...a: Parameters<ConStyleUNet['restore']>) => wrapRestore(restore(...a));
  }
  const tr = new IRConStyleTrainer(net, { graph, constyleIter: 3, maxGraphs });
  const losses: StepLosses[] = [];
  for (let i = 0; i < steps; i++) {
    const lq = tensor(randArray(2 * 32 * 32 * 3, 10 + i, 0, 1), [2, 32, 32, 3]);
    const gt = tensor(randArray(2 * 32 * 32 * 3, 50 + i, 0, 1), [2, 32, 32, 3]);
    losses.push(await tr.step(lq, gt));
    lq.dispose();
    gt.dispose();
  }
  const cs = net.ConStyle!;
  const out = {
    losses,
    params: (await tr.arena.params.data()) as Float32Array,
    m: (await tr.optimizer.m.data()) as Float32Array,
    v: (await tr.optimizer.v.data()) as Float32Array,
    queue: (await cs.B.queue!.data()) as Float32Array,
    ptr: cs.S.queue_ptr,
    step: tr.optimizer.step,
    state: tr.graphState,
  };
  tr.dispose();
  net.dispose();
  return out;
}

describe('IRConStyleTrainer graph mode', () => {
  it('same losses, parameters, optimizer state and queue as op by op, across the ConStyle freeze', async () => {
    const steps = 7; // constyle kind: steps 1 (op by op), 2 (recorded), 3; frozen kind: 4, 5 (recorded), 6, 7
    const plain = await train(false, steps);
    const graph = await train(true, steps);
    expect(graph.losses).toEqual(plain.losses);
    expect(graph.params).toEqual(plain.params);
    expect(graph.m).toEqual(plain.m);
    expect(graph.v).toEqual(plain.v);
    expect(graph.queue).toEqual(plain.queue);
    expect([graph.ptr, graph.step]).toEqual([plain.ptr, plain.step]);
    expect(plain.ptr).toBe((3 * 2) % 16);
    expect(graph.state.map((s) => [s.kind.split(' ')[0], s.capturable, s.graphed])).toEqual([['constyle', true, false], ['frozen', true, false]]);
    expect(graph.state[0]!.reason).toMatch(/CPU/);
    expect(plain.state).toEqual([]);
    expect(plain.losses[6]!.ce).toBe(0); // frozen: L1 only
  });

  it('graph mode by default only for a model on CUDA; the option and the setter decide otherwise', () => {
    const mode = (opts: { graph?: boolean }, set?: boolean) => {
      setInitSeed(2);
      const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
      const tr = new IRConStyleTrainer(net, opts);
      if (set !== undefined) tr.graph = set;
      const r = [tr.graph, net.parameters()[0]!.device] as const;
      tr.dispose();
      net.dispose();
      return r;
    };
    const [auto, device] = mode({});
    expect(auto).toBe(device === 'cuda');
    expect(mode({}, true)[0]).toBe(true);
    expect(mode({ graph: false })[0]).toBe(false);
    expect(mode({ graph: true })[0]).toBe(true);
    expect(mode({ graph: true }, false)[0]).toBe(false);
  });

  it('kinds beyond maxGraphs train op by op, with the reason; maxGraphs is checked', async () => {
    const plain = await train(false, 3);
    const capped = await train(true, 3, undefined, 0);
    expect(capped.losses).toEqual(plain.losses);
    expect(capped.params).toEqual(plain.params);
    expect(capped.state.map((g) => [g.graphed, g.reason])).toEqual([[false, expect.stringMatching(/0 step kinds are recorded already \(TrainerOptions.maxGraphs\)/)]]);
    setInitSeed(2);
    const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
    expect(() => new IRConStyleTrainer(net, { maxGraphs: -1 })).toThrow(/maxGraphs must be an integer >= 0, got -1/);
    net.dispose();
  });

  it('a step profiled with profileOps runs op by op and leaves the recording for a later step', async () => {
    setInitSeed(4);
    const net = createModel('constyle-nafnet-tiny', { constyle: 'train', K: 16 }) as ConStyleUNet;
    const tr = new IRConStyleTrainer(net, { graph: true });
    const lq = tensor(randArray(2 * 32 * 32 * 3, 1, 0, 1), [2, 32, 32, 3]);
    const gt = tensor(randArray(2 * 32 * 32 * 3, 2, 0, 1), [2, 32, 32, 3]);
    await tr.step(lq, gt);
    const rows = await profileOps(async () => { await tr.step(lq, gt); });
    expect(rows.find((r) => r.op === 'adamw_step')?.calls).toBe(1);
    expect(tr.graphState).toEqual([]);  // not recorded while profiling (a capture would have failed)
    await tr.step(lq, gt);
    expect(tr.graphState.map((g) => g.capturable)).toEqual([true]);
    tr.dispose();
    net.dispose();
    lq.dispose();
    gt.dispose();
  });

  it('with the fused ops recomputing in their backward (as on CUDA): capturable, and the same step', async () => {
    const was = setKeepOnCpu(false);
    try {
      const plain = await train(false, 3);
      const graph = await train(true, 3);
      expect(graph.losses).toEqual(plain.losses);
      expect(graph.params).toEqual(plain.params);
      expect(graph.state[0]!.capturable).toBe(true);
    } finally {
      setKeepOnCpu(was);
    }
  });

  it('a step that breaks the capture rules: reported, and the CPU never applies a step twice', async () => {
    const plain = await train(false, 3);
    // leaves a tensor alive: the whole step ran, only the final check fails; its losses are used
    const leaky = await train(true, 3, (y) => { keep(scale(y, 1, 0)); return y; });
    expect(leaky.losses).toEqual(plain.losses);
    expect(leaky.params).toEqual(plain.params);
    expect(leaky.state[0]!.capturable).toBe(false);
    expect(leaky.state[0]!.reason).toMatch(/still alive/);
    // makes a tensor from host data part way: the step is refused with the reason
    await expect(train(true, 3, (y) => add(y, tensor(new Float32Array(1), [1])))).rejects.toThrow(/breaks the capture rules.*host data/);
  });

  it('adamw_step with device factors equals the attribute path; queue_swap equals the host-pointer swap', async () => {
    const n = 1000;
    // param, grad, m in [-1, 1); v in [0, 1)
    const mk = () => [1, 2, 3, 4].map((seed) => tensor(randArray(n, seed, seed === 4 ? 0 : -1, 1), [n]));
    const o = { lr: 3e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 1e-4, step: 7 };
    const a = mk(), b = mk();
    adamwStep(a[0]!, a[1]!, a[2]!, a[3]!, o);
    adamwStep(b[0]!, b[1]!, b[2]!, b[3]!, { ...o, step: 1, lr: 0 }, tensor(adamwFactors(o), [3]));
    for (const i of [0, 2, 3]) expect(await b[i]!.data()).toEqual(await a[i]!.data());
    expect(() => adamwStep(a[0]!, a[1]!, a[2]!, a[3]!, o, tensor(new Float32Array(2), [2]))).toThrow(/factors must have shape \[3\]/);

    // the MoCo step: device pointer against the host pointer, at every position including the wrap
    setInitSeed(3);
    const A = new ConStyle({ K: 12 });
    setInitSeed(3);
    const B = new ConStyle({ K: 12 });
    const lq = tensor(randArray(4 * 16 * 16 * 3, 5, 0, 1), [4, 16, 16, 3]);
    const gt = tensor(randArray(4 * 16 * 16 * 3, 6, 0, 1), [4, 16, 16, 3]);
    for (let it = 0; it < 4; it++) {
      const ptr = tensor(Int32Array.of(B.S.queue_ptr!), [1]);
      const ha = A.trainForward(lq, gt);
      const hb = B.trainForward(lq, gt, ptr);
      expect(B.S.queue_ptr).toBe((A.S.queue_ptr! + 12 - 4) % 12); // not advanced yet
      B.advanceQueue(4);
      for (const i of [0, 1]) expect(await hb.neg[i]!.data()).toEqual(await ha.neg[i]!.data());
      expect(await hb.logits.data()).toEqual(await ha.logits.data());
      expect(await B.B.queue!.data()).toEqual(await A.B.queue!.data());
      expect(B.S.queue_ptr).toBe(A.S.queue_ptr);
    }
    const q4 = tensor(new Float32Array(4 * 128), [4, 128]);
    expect(() => queueSwap(B.B.queue!, q4, tensor(Float32Array.of(0), [1]))).toThrow(/ptr must be an int32 tensor of shape \[1\]/);
    expect(() => queueSwap(B.B.queue!, tensor(new Float32Array(5 * 128), [5, 128]), tensor(Int32Array.of(0), [1])))
      .toThrow(/q must be \[n, 128\] with n >= 1 dividing the queue's 12 rows, got \[5, 128\]/);
    const bad = tensor(Int32Array.of(2), [1]);
    await expect(queueSwap(B.B.queue!, tensor(new Float32Array(4 * 128), [4, 128]), bad)[0].data()).rejects.toThrow(/multiple of 4/);
  });
});
