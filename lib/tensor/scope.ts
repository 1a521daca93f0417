// tidy() scopes: tensors created inside a scope are disposed when it ends, except those returned or kept.
import type { Tensor } from './tensor.js';

const scopes: Set<Tensor>[] = [];
let paused = 0;

export function track(t: Tensor): void {
  if (paused === 0 && scopes.length) scopes[scopes.length - 1]!.add(t);
}
export function untrack(t: Tensor): void {
  for (let i = scopes.length - 1; i >= 0; --i) if (scopes[i]!.delete(t)) return;
}

/** Runs fn with tensor tracking switched off (tensors created inside are owned by the caller). */
export function untracked<T>(fn: () => T): T {
  paused++;
  try {
    return fn();
  } finally {
    paused--;
  }
}

function collect(v: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (v === null || typeof v !== 'object' || seen.has(v)) return;
  seen.add(v);
  if ((v as { constructor?: { name?: string } }).constructor?.name === 'Tensor' && 'shape' in (v as object)) {
    out.add(v as Tensor);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collect(x, out, seen);
  else if (v instanceof Map) for (const x of v.values()) collect(x, out, seen);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collect(x, out, seen);
}

/**
 * Runs a synchronous fn; disposes every tensor created inside except the ones reachable from its result
 * (a tensor, or arrays/plain objects/Maps of them), which move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error('tidy(fn): fn must be synchronous (ops are already asynchronous)');
  const keep = new Set<Tensor>();
  collect(result, keep);
  for (const t of scope) {
    if (keep.has(t)) track(t);
    else t.dispose();
  }
  return result;
}

/**
 * tidy(fn) with tensor tracking on even inside untracked() (e.g. while backward() runs): for work that creates
 * intermediates there and must not leak them (activation checkpointing recomputes a forward inside backward).
 */
export function tidyTracked<T>(fn: () => T): T {
  const prev = paused;
  paused = 0;
  try {
    return tidy(fn);
  } finally {
    paused = prev;
  }
}

/**
 * Runs a synchronous fn with tracking on (even inside untracked()). If fn throws, every tensor created inside is
 * disposed (a backward rule that failed part way, e.g. out of GPU memory, would otherwise leave its intermediates to
 * garbage collection); otherwise they go where they would have gone without this call: to the enclosing scope, or
 * nowhere while tracking is paused.
 */
export function disposeOnError<T>(fn: () => T): T {
  const prev = paused;
  const scope = new Set<Tensor>();
  scopes.push(scope);
  paused = 0;
  return settle(fn, (ok) => {
    scopes.pop();
    paused = prev;
    for (const t of scope) {
      if (!ok) t.dispose();
      else if (!t.isDisposed) track(t);
    }
  });
}

/** Runs fn, then done(ok) whether it returned (ok) or threw (not ok: the error goes on to the caller). */
export function settle<T>(fn: () => T, done: (ok: boolean) => void): T {
  let ok = false;
  try {
    const result = fn();
    ok = true;
    return result;
  } finally {
    done(ok);
  }
}

/** Removes a tensor from the current tidy scope so it survives it. */
export function keep<T extends Tensor>(t: T): T {
  untrack(t);
  return t;
}

/** Disposes every tensor reachable from value (a tensor, or arrays/plain objects/Maps of them). */
export function disposeAll(value: unknown): void {
  const found = new Set<Tensor>();
  collect(value, found);
  for (const t of found) t.dispose();
}
