// Which backend runs the ops, and why. IRCONSTYLE_BACKEND=cpu|cuda|auto forces a choice.
import { native } from './loader.js';

export interface BackendInfo {
  /** The device ops run on. */
  device: 'cpu' | 'cuda';
  /** Why this backend was chosen (e.g. no NVIDIA driver). */
  reason: string;
  threads: number;
  simd: string;
  cuda: { compiled: boolean; devices: number; name: string; error: string };
}

export function backendInfo(): BackendInfo {
  const info = native.info();
  const want = (process.env.IRCONSTYLE_BACKEND ?? 'auto').toLowerCase();
  let reason: string;
  if (want === 'cpu') reason = 'IRCONSTYLE_BACKEND=cpu';
  else if (!info.cuda.compiled) reason = info.cuda.error || 'built without CUDA';
  else if (info.cuda.devices === 0) reason = info.cuda.error || 'no CUDA device';
  else reason = `CUDA device ${info.cuda.name} found, but this build has no CUDA kernels yet`;
  if (want !== 'cpu' && want !== 'cuda' && want !== 'auto') reason += ` (ignored unknown IRCONSTYLE_BACKEND=${want})`;
  else if (want === 'cuda') reason = `IRCONSTYLE_BACKEND=cuda requested, but: ${reason}`;
  return { device: 'cpu', reason, threads: info.threads, simd: info.simd, cuda: info.cuda };
}

/** One-line backend summary, e.g. `cpu (cudaErrorInsufficientDriver: ...)`. */
export function backend(): string {
  const b = backendInfo();
  return `${b.device} (${b.reason})`;
}
