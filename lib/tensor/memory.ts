import { native, type NativeMemoryStats } from '../native/loader.js';
import { backendInfo } from '../native/backend.js';

/** Live tensor handles, live storages and bytes (in use), cached pool bytes, the peak, and CUDA bytes. */
export function memoryStats(): NativeMemoryStats {
  return native.memoryStats();
}
/** Resolves when every op queued so far has run (on the CPU executor and, when in use, the CUDA stream). */
export async function sync(): Promise<void> {
  await native.sync(0);
  if (backendInfo().device === 'cuda') await native.sync(1);
}
