// The backend decision on probe results: every branch, without needing a GPU.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { backendInfo, chooseBackend, type BackendProbe } from '../lib/native/backend.js';
import { packageRoot } from '../lib/package-root.js';

const h100 = { compiled: true, devices: 1, name: 'NVIDIA H100 80GB HBM3', error: '', ops: 65, allOps: 65 };
const allLibs = 'cuBLAS 13.1.0 from /a/libcublas.so.13\ncuBLASLt 13.1.0 from /a/libcublasLt.so.13\ncuDNN 9.14.0 from /b/libcudnn.so.9';
const noDnn = 'cuBLAS 13.1.0 from /a/libcublas.so.13\ncuBLASLt 13.1.0 from /a/libcublasLt.so.13\ncuDNN not found (searched system loader)';
const noBlas = 'cuBLAS not found (searched system loader)\ncuBLASLt not found\ncuDNN 9.14.0 from /b/libcudnn.so.9';

function probe(want: string, over: Partial<BackendProbe> = {}): BackendProbe {
  return { want, cuda: h100, cudaInit: () => '', gpuLibs: () => allLibs, ...over };
}

describe('chooseBackend', () => {
  it('auto takes CUDA with a device, cuBLAS and cuDNN, and says which libraries', () => {
    const c = chooseBackend(probe('auto'));
    expect(c.device).toBe('cuda');
    expect(c.reason).toContain('NVIDIA H100 80GB HBM3, 65/65 ops with CUDA kernels; cuBLAS 13.1.0');
    expect(c.reason).toContain('cuDNN 9.14.0');
  });

  it('auto stays on the CPU without cuDNN; cuda runs without it', () => {
    const a = chooseBackend(probe('auto', { gpuLibs: () => noDnn }));
    expect(a.device).toBe('cpu');
    expect(a.reason).toMatch(/GPU libraries are incomplete.*cuDNN not found/);
    expect(a.reason).toContain('pip install nvidia-cublas nvidia-cudnn-cu13'); // (and how to get them)
    expect(chooseBackend(probe('cuda', { gpuLibs: () => noDnn })).device).toBe('cuda');
  });

  it('never takes CUDA without cuBLAS, and names the request when cuda was asked for', () => {
    expect(chooseBackend(probe('auto', { gpuLibs: () => noBlas })).device).toBe('cpu');
    const c = chooseBackend(probe('cuda', { gpuLibs: () => noBlas }));
    expect(c.device).toBe('cpu');
    expect(c.reason).toMatch(/^IRCONSTYLE_BACKEND=cuda requested, but: .*cuBLAS not found/);
  });

  it('reports the driver, build and device problems before asking for libraries', () => {
    let asked = false;
    const libs = () => ((asked = true), allLibs);
    const driver = chooseBackend(probe('auto', { cudaInit: () => 'cudaErrorInsufficientDriver: too old', gpuLibs: libs }));
    expect(driver).toEqual({ device: 'cpu', reason: 'cudaErrorInsufficientDriver: too old' });
    expect(chooseBackend(probe('auto', { cuda: { ...h100, compiled: false, error: '' } })).reason).toBe('built without CUDA');
    expect(chooseBackend(probe('auto', { cuda: { ...h100, devices: 0, error: '' } })).reason).toBe('no CUDA device');
    expect(chooseBackend(probe('auto', { cuda: { ...h100, ops: 0 } })).reason).toBe('this build has no CUDA kernels');
    expect(asked).toBe(false);
  });

  it('cpu forces the CPU without touching CUDA; an unknown value acts as auto and is named', () => {
    const c = chooseBackend(probe('cpu', { cudaInit: () => { throw new Error('must not be called'); } }));
    expect(c).toEqual({ device: 'cpu', reason: 'IRCONSTYLE_BACKEND=cpu' });
    const u = chooseBackend(probe('gpu'));
    expect(u.device).toBe('cuda');
    expect(u.reason).toContain('(ignored unknown IRCONSTYLE_BACKEND=gpu)');
  });
});

describe('backendInfo().addon', () => {
  it('on a machine where CUDA is compiled in but unusable, the reason says what is missing', () => {
    const info = backendInfo();
    if (!info.cuda.compiled || info.cuda.devices > 0) return; // (a GPU machine, or a CPU-only build: nothing to say)
    // no driver at all, or one too old for this build: said in words, not only by the runtime's error name
    if (info.reason.includes('cudaErrorInsufficientDriver'))
      expect(info.reason).toMatch(/cudaErrorInsufficientDriver: (no NVIDIA driver found|the NVIDIA driver supports CUDA \d+\.\d+, this build needs \d+\.\d+)/);
  });

  it('names the loaded addon file: this checkout\'s build/Release (a prebuild only where no build exists)', () => {
    const addon = backendInfo().addon;
    expect(existsSync(addon)).toBe(true);
    expect(addon).toBe(join(packageRoot(), 'build', 'Release', 'irconstyle.node'));
  });
});
