// Which backend runs the ops, and why. IRCONSTYLE_BACKEND=cpu|cuda|auto forces a choice.
import { addonPath, native } from './loader.js';

export type Device = 'cpu' | 'cuda';

export interface BackendInfo {
  /** The device new tensors and models use by default. */
  device: Device;
  /** Why this backend was chosen (e.g. no NVIDIA driver). */
  reason: string;
  threads: number;
  simd: string;
  /** The native addon's file: prebuilds/<platform>-<arch>/… when the shipped binary runs, build/Release otherwise. */
  addon: string;
  cuda: { compiled: boolean; devices: number; name: string; error: string; ops: string[] };
}

let cached: BackendInfo | null = null;

/** What the backend choice looks at (probe results; cudaInit and gpuLibs are only asked when needed). */
export interface BackendProbe {
  want: string;
  cuda: { compiled: boolean; devices: number; name: string; error: string; ops: number; allOps: number };
  cudaInit: () => string;
  gpuLibs: () => string;
}

/**
 * The backend decision. `auto` takes CUDA with cuBLAS and cuDNN, the configuration checked on hardware (without
 * cuDNN the 3x3 convs fall back to im2col + GEMM, which `cuda` allows); `cpu` forces the CPU.
 */
export function chooseBackend(p: BackendProbe): { device: Device; reason: string } {
  const { want, cuda } = p;
  if (want === 'cpu') return { device: 'cpu', reason: 'IRCONSTYLE_BACKEND=cpu' };
  let problem: string | null = null;
  if (!cuda.compiled) problem = cuda.error || 'built without CUDA';
  else if (cuda.devices === 0) problem = cuda.error || 'no CUDA device';
  else if (!cuda.ops) problem = 'this build has no CUDA kernels';
  else problem = p.cudaInit() || null;
  let libs = '';
  if (!problem) {
    libs = p.gpuLibs().split('\n').filter(Boolean).join('; ');
    const cublas = /(^|; )cuBLAS \d/.test(libs), cudnn = /(^|; )cuDNN \d/.test(libs);
    if (!cublas || (!cudnn && want !== 'cuda'))
      problem = `${cuda.name} found, but the GPU libraries are incomplete (cuBLAS and cuDNN wanted; IRCONSTYLE_BACKEND=cuda ` +
        `runs without cuDNN): ${libs} — install a CUDA 13 toolkit or the Python wheels (pip install nvidia-cublas ` +
        'nvidia-cudnn-cu13), or set IRCONSTYLE_CUDA_LIBS to the folders that hold them (`:`-separated)';
  }
  const unknown = want !== 'auto' && want !== 'cuda' ? ` (ignored unknown IRCONSTYLE_BACKEND=${want})` : '';
  if (!problem) return { device: 'cuda', reason: `${cuda.name}, ${cuda.ops}/${cuda.allOps} ops with CUDA kernels; ${libs}${unknown}` };
  return { device: 'cpu', reason: (want === 'cuda' ? `IRCONSTYLE_BACKEND=cuda requested, but: ${problem}` : problem) + unknown };
}

/** Decides once per process (IRCONSTYLE_BACKEND is read at the first call). */
export function backendInfo(): BackendInfo {
  if (cached) return cached;
  const info = native.info();
  const choice = chooseBackend({
    want: (process.env.IRCONSTYLE_BACKEND ?? 'auto').toLowerCase(),
    cuda: { ...info.cuda, ops: info.cuda.ops.length, allOps: info.ops.length },
    cudaInit: () => native.cudaInit(),
    gpuLibs: () => native.gpuLibs(),
  });
  cached = { ...choice, threads: info.threads, simd: info.simd, addon: addonPath, cuda: info.cuda };
  return cached;
}

/** One-line backend summary, e.g. `cpu (cudaErrorInsufficientDriver: no NVIDIA driver found)`. */
export function backend(): string {
  const b = backendInfo();
  return `${b.device} (${b.reason})`;
}

/** The device new tensors, parameters and factories use when none is given. */
export function defaultDevice(): Device {
  return backendInfo().device;
}

export function deviceCode(d: Device): number {
  return d === 'cuda' ? 1 : 0;
}
