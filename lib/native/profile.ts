// Kernel-time profile per op: where a forward or a training step spends its time.
import { native } from './loader.js';

export interface OpTime {
  op: string;
  /** Kernel time (CPU: time in the kernel; CUDA: stream time between events around the op's launches). */
  ms: number;
  calls: number;
  /** Host time spent submitting the op (shape inference, output allocation, CUDA launches). */
  hostMs: number;
}

/**
 * Runs fn (awaited) with kernel timing on and returns the per-op totals, largest first. With `byShape` the rows are
 * split by shapes: `op` reads "name [input 0 shape] -> [output 0 shape]" (hostMs is 0 there). With `exact` (CUDA)
 * the GPU waits until each op is enqueued whole, so an op of several launches is not charged for the host's time
 * between them (the times a replayed CUDA graph would see; fn runs slower).
 */
export async function profileOps(fn: () => Promise<void>, opts: { byShape?: boolean; exact?: boolean } = {}): Promise<OpTime[]> {
  await native.sync();
  native.profile(true, opts.byShape ?? false, opts.exact ?? false);
  try {
    await fn();
    await native.sync();
  } finally {
    native.profile(false);
  }
  const rows = opts.byShape ? native.profileShapes().map((r) => ({ ...r, hostMs: 0 })) : (native.profile() ?? []);
  return rows.filter((r) => r.calls > 0).sort((a, b) => b.ms - a.ms);
}

/** A fixed-width table of an op profile (host times when the rows have them; by-shape rows have none). */
export function formatProfile(rows: OpTime[]): string {
  const total = rows.reduce((a, r) => a + r.ms, 0);
  const width = Math.max(26, ...rows.map((r) => r.op.length));
  const host = rows.some((r) => r.hostMs > 0);
  const lines = rows.map(
    (r) =>
      `  ${r.op.padEnd(width)} ${r.ms.toFixed(1).padStart(9)} ms ${((100 * r.ms) / total).toFixed(1).padStart(5)}%  ${String(r.calls).padStart(6)} calls` +
      (host ? `  host ${r.hostMs.toFixed(1).padStart(7)} ms` : ''),
  );
  return [...lines, `  ${'total kernel time'.padEnd(width)} ${total.toFixed(1).padStart(9)} ms`].join('\n');
}
