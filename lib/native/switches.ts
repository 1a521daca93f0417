// Kernel switches (README "Kernel switches"): IRCONSTYLE_* variables that pick a kernel path. The environment always
// wins; a switch it leaves unset may be set here, process-wide or for what a function enqueues (the kernel tuning of
// the trainer and of captureForward), for the native ops and the JS code that reads the same switches.
import { IrcError } from '../errors.js';
import { native } from './loader.js';

const set = new Map<string, string>();

/** A switch's value: the environment's, else the one set with setKernelSwitches, else undefined. */
export function switchValue(name: string): string | undefined {
  return process.env[name] ?? set.get(name);
}

/**
 * Sets switches where the environment leaves them unset (a null value clears one). Names must start with
 * IRCONSTYLE_. Ops enqueued from now on read them; a CUDA graph keeps the paths it was recorded with.
 */
export function setKernelSwitches(switches: Record<string, string | null>): void {
  for (const [name, value] of Object.entries(switches)) {
    if (!name.startsWith('IRCONSTYLE_') || (value !== null && typeof value !== 'string'))
      throw new IrcError('E_ARG', `setKernelSwitches: expected IRCONSTYLE_* names with string or null values, got ${name}=${String(value)}`);
  }
  for (const [name, value] of Object.entries(switches)) {
    native.setSwitch(name, value);
    if (value === null) set.delete(name);
    else set.set(name, value);
  }
}

/**
 * Runs fn (synchronous) with switches set where the environment leaves them unset, then puts the previous values
 * back. The ops fn enqueues run with them (ops read the switches as they were at enqueue, on either backend), and so
 * does a graph recorded inside.
 */
export function withSwitches<T>(switches: Readonly<Record<string, string>>, fn: () => T): T {
  if (!Object.keys(switches).length) return fn();
  const restore = pushSwitches(switches);
  try {
    return fn();
  } finally {
    restore();
  }
}

/** Sets switches (setKernelSwitches); returns what puts the values set before back. */
export function pushSwitches(switches: Readonly<Record<string, string>>): () => void {
  const before = Object.fromEntries(Object.keys(switches).map((k) => [k, set.get(k) ?? null]));
  setKernelSwitches(switches);
  return () => setKernelSwitches(before);
}

/** The switches in force: the IRCONSTYLE_* environment variables and those set with setKernelSwitches. */
export function kernelSwitches(): Record<string, { value: string; from: 'env' | 'set' }> {
  const out: Record<string, { value: string; from: 'env' | 'set' }> = {};
  for (const [k, v] of set) out[k] = { value: v, from: 'set' };
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('IRCONSTYLE_') && v !== undefined) out[k] = { value: v, from: 'env' };
  return out;
}
