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
  let device: Device = 'cpu';
  let reason: string;
  if (want === 'cpu') reason = 'IRCONSTYLE_BACKEND=cpu';
  else if (want === 'cuda') {
    const problem = cudaProblem();
    if (problem) reason = `IRCONSTYLE_BACKEND=cuda requested, but: ${problem}`;
    else {
      device = 'cuda';
      const libs = native.gpuLibs().split('\n').filter(Boolean).join('; ');
      reason = `${info.cuda.name}, ${info.cuda.ops.length}/${info.ops.length} ops with CUDA kernels, not yet verified on hardware; ${libs}`;
    }
  } else {
    const problem = info.cuda.compiled && info.cuda.devices > 0 ? null : info.cuda.error || 'built without CUDA';
    reason = problem ?? `CUDA device ${info.cuda.name} found; the CUDA backend is not yet verified on hardware, so it is used only with IRCONSTYLE_BACKEND=cuda`;
    if (want !== 'auto') reason += ` (ignored unknown IRCONSTYLE_BACKEND=${want})`;
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
