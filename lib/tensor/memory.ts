import { native, type NativeMemoryStats } from '../native/loader.js';

/** Live tensor handles, live storages and bytes (in use), cached pool bytes and the peak. */
export function memoryStats(): NativeMemoryStats {
  return native.memoryStats();
}
/** Resolves when every op queued so far has run. */
export function sync(): Promise<void> {
  return native.sync();
}
