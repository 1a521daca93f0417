// Which backend runs the ops, and why. IRCONSTYLE_BACKEND=cpu|cuda|auto forces a choice.
import { native } from './loader.js';

export type Device = 'cpu' | 'cuda';

export interface BackendInfo {
  /** The device new tensors and models use by default. */
  device: Device;
  /** Why this backend was chosen (e.g. no NVIDIA driver). */
  reason: string;
  threads: number;
  simd: string;
  cuda: { compiled: boolean; devices: number; name: string; error: string; ops: string[] };
}

let cached: BackendInfo | null = null;

/** Decides once per process (IRCONSTYLE_BACKEND is read at the first call). */
export function backendInfo(): BackendInfo {
  if (cached) return cached;
  const info = native.info();
  const want = (process.env.IRCONSTYLE_BACKEND ?? 'auto').toLowerCase();
  const base = { threads: info.threads, simd: info.simd, cuda: info.cuda };
  const cudaProblem = (): string | null => {
    if (!info.cuda.compiled) return info.cuda.error || 'built without CUDA';
    if (info.cuda.devices === 0) return info.cuda.error || 'no CUDA device';
    if (!info.cuda.ops.length) return 'this build has no CUDA kernels';
    return native.cudaInit() || null;
  };
  // `auto` takes CUDA with cuBLAS and cuDNN, the configuration checked on hardware. Without cuDNN the 3x3 convs
  // fall back to im2col + GEMM, which IRCONSTYLE_BACKEND=cuda allows.
  const gpuLibs = (): { ok: boolean; text: string } => {
    const text = native.gpuLibs().split('\n').filter(Boolean).join('; ');
    const cublas = /(^|; )cuBLAS \d/.test(text), cudnn = /(^|; )cuDNN \d/.test(text);
    return { ok: cublas && (cudnn || want === 'cuda'), text };
  };
  let device: Device = 'cpu';
  let reason: string;
  if (want === 'cpu') reason = 'IRCONSTYLE_BACKEND=cpu';
  else {
    const problem = cudaProblem();
    const libs = problem ? null : gpuLibs();
    const usable = !problem && libs!.ok;
    const why = problem ?? (libs!.ok ? '' : `${info.cuda.name} found, but the GPU libraries are incomplete (cuBLAS and cuDNN wanted; ` +
      `IRCONSTYLE_BACKEND=cuda runs without cuDNN): ${libs!.text}`);
    if (usable) {
      device = 'cuda';
      reason = `${info.cuda.name}, ${info.cuda.ops.length}/${info.ops.length} ops with CUDA kernels; ${libs!.text}`;
    } else if (want === 'cuda') reason = `IRCONSTYLE_BACKEND=cuda requested, but: ${why}`;
    else reason = why;
    if (want !== 'auto' && want !== 'cuda') reason += ` (ignored unknown IRCONSTYLE_BACKEND=${want})`;
  }
  cached = { device, reason, ...base };
  return cached;
}

/** One-line backend summary, e.g. `cpu (cudaErrorInsufficientDriver: ...)`. */
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
