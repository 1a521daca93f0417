import { describe, expect, it } from 'vitest';
import { tensor, Tensor } from '../lib/tensor/tensor.js';
import { zeros, full, fillInPlace } from '../lib/tensor/create.js';
import { tidy, keep } from '../lib/tensor/scope.js';
import { memoryStats, sync } from '../lib/tensor/memory.js';
import { backend, backendInfo } from '../lib/native/backend.js';
import { native } from '../lib/native/loader.js';
import { OPS } from '../lib/native/ops.gen.js';
import { runOp } from '../lib/ops/run.js';
import { IrcError } from '../lib/errors.js';
import { execFileSync } from 'node:child_process';

describe('native core', () => {
  it('native op table matches the generated TS table', () => {
    expect(native.info().ops).toEqual(OPS.map((o) => o.name));
  });

  it('reports the backend with a reason', () => {
    const b = backend();
    expect(b).toMatch(/^cpu \(.+\)$/);
    expect(backendInfo().threads).toBeGreaterThan(0);
  });

  it('round-trips data and creates filled tensors', async () => {
    const t = tensor([1, 2, 3, 4], [2, 2]);
    expect(Array.from(await t.data())).toEqual([1, 2, 3, 4]);
    const z = full([3], 2.5);
    expect(Array.from(await z.data())).toEqual([2.5, 2.5, 2.5]);
    fillInPlace(z, -1);
    expect(Array.from(await z.data())).toEqual([-1, -1, -1]);
    const i = zeros([2], 'int32');
    expect(i.dtype).toBe('int32');
    expect(await i.data()).toBeInstanceOf(Int32Array);
    t.dispose();
    z.dispose();
    i.dispose();
  });

  it('gives typed errors for bad input', () => {
    expect(() => tensor([1, 2, 3], [2, 2])).toThrowError(/holds 4 elements, got 3/);
    expect(() => tensor(new Float64Array(2) as unknown as Float32Array)).toThrowError(IrcError);
    expect(() => zeros([2, -1])).toThrowError(/non-negative integers/);
    const t = tensor([1, 2]);
    t.dispose();
    expect(() => runOp('clone', [t])).toThrowError(expect.objectContaining({ code: 'E_DISPOSED' }));
    expect(() => t.reshape([2])).toThrowError(expect.objectContaining({ code: 'E_DISPOSED' }));
    const u = tensor([1, 2]);
    expect(() => runOp('fill', [u])).toThrowError(expect.objectContaining({ code: 'E_ARITY' }));
    expect(() => u.reshape([3])).toThrowError(expect.objectContaining({ code: 'E_SHAPE' }));
    u.dispose();
  });

  it('tidy disposes what it does not return; memory returns to baseline', async () => {
    await sync();
    const base = memoryStats();
    const kept = tidy(() => {
      zeros([1000]);
      const k = zeros([10]);
      const r = full([5], 1);
      keep(k);
      return { r, k };
    });
    expect(memoryStats().tensors).toBe(base.tensors + 2);
    kept.r.dispose();
    kept.k.dispose();
    await sync();
    const after = memoryStats();
    expect(after.tensors).toBe(base.tensors);
    expect(after.bytes).toBe(base.bytes);
  });

  it('memoryStats has the CUDA figures: live tensors, graphs, op scratch (all 0 when the CPU runs everything)', async () => {
    await sync();
    const m = memoryStats();
    for (const k of ['cudaBytes', 'cudaGraphBytes', 'cudaScratchBytes'] as const) {
      expect(Number.isInteger(m[k]) && m[k] >= 0, k).toBe(true);
      if (native.info().cuda.devices === 0) expect(m[k], k).toBe(0);
    }
  });

  it('tidy disposes on error too', () => {
    const base = memoryStats().tensors;
    expect(() =>
      tidy(() => {
        zeros([4]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(memoryStats().tensors).toBe(base);
  });

  it('a kernel error on the queue surfaces at the next read with the op name, and poisons what depends on it', async () => {
    const logits = tensor([0.1, 0.2, 0.3, 0.4], [2, 2]);
    const labels = tensor(new Int32Array([0, 5]), [2]);
    const [loss] = runOp('cross_entropy', [logits, labels]);
    const [twice] = runOp('scale', [loss!], [2, 0]);
    await expect(loss!.data()).rejects.toMatchObject({ code: 'E_ARG', op: 'cross_entropy' });
    await expect(twice!.data()).rejects.toMatchObject({ code: 'E_ARG', message: expect.stringMatching(/label/) });
    // The executor keeps working afterwards.
    const ok = full([2], 3);
    expect(Array.from(await ok.data())).toEqual([3, 3]);
    for (const t of [logits, labels, loss!, twice!, ok]) t.dispose();
  });

  it('memory that cannot be allocated when a CPU kernel runs fails that op with E_OOM, not the process', async () => {
    // 2^45 floats: 128 TiB, beyond any machine's address space (CPU memory is allocated on the executor thread)
    const [huge] = runOp('fill', [], [0.5, 0, 2 ** 45]);
    const [twice] = runOp('scale', [huge!], [2, 0]);
    await expect(huge!.data()).rejects.toMatchObject({ code: 'E_OOM', message: expect.stringMatching(/cannot allocate 140737488355328 bytes/) });
    await expect(twice!.data()).rejects.toMatchObject({ code: 'E_OOM' });
    const ok = full([2], 3);
    expect(Array.from(await ok.data())).toEqual([3, 3]);
    for (const t of [huge!, twice!, ok]) t.dispose();
  });

  it('device transfers: to(cpu) is the identity here; CUDA gives a typed error with the reason', async () => {
    const t = tensor([1, 2, 3]);
    expect(t.device).toBe('cpu');
    expect(t.to('cpu')).toBe(t);
    if (!backendInfo().cuda.devices) {
      expect(() => t.to('cuda')).toThrowError(expect.objectContaining({ code: 'E_CUDA' }));
      expect(() => tensor([1], [1], { device: 'cuda' })).toThrowError(expect.objectContaining({ code: 'E_CUDA' }));
    }
    expect(() => t.to('tpu' as 'cpu')).toThrowError(/device must be 'cpu' or 'cuda'/);
    t.dispose();
  });

  it('IRCONSTYLE_BACKEND=cuda without a usable GPU falls back to the CPU and says why', () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', "import { backend } from 'irconstyle'; console.log(backend())"], {
      env: { ...process.env, IRCONSTYLE_BACKEND: backendInfo().cuda.devices ? 'cpu' : 'cuda' },
      encoding: 'utf8',
    });
    expect(out.trim()).toMatch(backendInfo().cuda.devices ? /^cpu \(IRCONSTYLE_BACKEND=cpu\)$/ : /^cpu \(IRCONSTYLE_BACKEND=cuda requested, but: .+\)$/);
  });

  it('IRCONSTYLE_CPU_QUEUE_DEPTH=1 holds CPU memory from submission to release, as CUDA does', () => {
    // Eight 4 MiB intermediates, each read by one sum, released by JS only at the end: with depth 1 every one was
    // allocated (its op ran) before the next op was submitted, so all eight are live together.
    const script = `import { ones, tidy, sync, memoryStats, ops } from 'irconstyle';
      const { add, sum } = ops;
      const x = ones([1 << 20]);
      await sync();
      const base = memoryStats().peakBytes;
      const s = tidy(() => { let acc = null; for (let i = 0; i < 8; i++) { const t = sum(add(x, x)); acc = acc ? add(acc, t) : t; } return acc; });
      const v = (await s.data())[0];
      console.log(JSON.stringify({ v, peakMiB: (memoryStats().peakBytes - base) / 2 ** 20 }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, IRCONSTYLE_BACKEND: 'cpu', IRCONSTYLE_CPU_QUEUE_DEPTH: '1' },
      encoding: 'utf8',
    }));
    expect(out.v).toBe(8 * 2 * (1 << 20));
    expect(out.peakMiB).toBeGreaterThanOrEqual(32);
  });

  it('views share storage and keep it alive after the base is disposed', async () => {
    const t = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const v = t.reshape([3, 2]);
    t.dispose();
    expect(Array.from(await v.data())).toEqual([1, 2, 3, 4, 5, 6]);
    v.dispose();
    expect(v).toBeInstanceOf(Tensor);
  });
});

describe('gradient accumulation into existing .grad (add_n_)', () => {
  it('add_n_ adds every pair in place and checks its inputs', async () => {
    const d1 = tensor([1, 2, 3], [3]), s1 = tensor([10, 20, 30], [3]);
    const d2 = tensor([0.5, 0.25], [1, 2]), s2 = tensor([1, 1], [1, 2]);
    runOp('add_n_', [d1, s1, d2, s2]);
    expect(Array.from(await d1.data())).toEqual([11, 22, 33]);
    expect(Array.from(await d2.data())).toEqual([1.5, 1.25]);
    expect(() => runOp('add_n_', [d1, s1, d2])).toThrowError(expect.objectContaining({ code: 'E_ARITY' }));
    expect(() => runOp('add_n_', [d1, s2])).toThrowError(expect.objectContaining({ code: 'E_SHAPE', message: expect.stringMatching(/src 0/) }));
    for (const t of [d1, s1, d2, s2]) t.dispose();
  });

  it('backward adds into preset .grad tensors, a leaf used twice included, and frees what it batched', async () => {
    const { backward } = await import('../lib/autograd/tape.js');
    const { mul, add, sum } = await import('../lib/ops/elementwise.js');
    const x = tensor([1, 2, 3], [3]), y = tensor([4, 5, 6], [3]);
    x.requiresGrad = y.requiresGrad = true;
    x.grad = tensor([100, 100, 100], [3]);
    y.grad = tensor([0, 0, 0], [3]);
    const before = memoryStats().tensors;
    const loss = tidy(() => sum(add(mul(x, y), mul(x, x)))); // d/dx = y + 2x, d/dy = x
    backward(loss);
    expect(Array.from(await x.grad.data())).toEqual([106, 109, 112]);
    expect(Array.from(await y.grad.data())).toEqual([1, 2, 3]);
    loss.dispose();
    expect(memoryStats().tensors).toBe(before);
    for (const t of [x.grad, y.grad, x, y]) t.dispose();
  });
  it('a .grad that shares storage with another gradient is never written in place (a later backward included)', async () => {
    const { backward } = await import('../lib/autograd/tape.js');
    const { add, sum } = await import('../lib/ops/elementwise.js');
    const a = tensor([1, 2], [2]), b = tensor([3, 4], [2]);
    a.requiresGrad = b.requiresGrad = true;
    // add's rule hands both inputs views of one gradient: a.grad and b.grad start out as views of one storage
    for (let i = 0; i < 2; i++) {
      const loss = tidy(() => sum(add(a, b)));
      backward(loss);
      loss.dispose();
    }
    expect(Array.from(await a.grad!.data())).toEqual([2, 2]);
    expect(Array.from(await b.grad!.data())).toEqual([2, 2]);
    for (const t of [a.grad!, b.grad!, a, b]) t.dispose();
  });
});
