// Conversions between official PyTorch layouts (state dicts, fixtures) and the engine's internal layouts.
import { IrcError } from '../errors.js';

/**
 * - plain: same shape and order;
 * - conv:  official [O, I/g, KH, KW] <-> internal [KH, KW, I/g, O];
 * - chan:  official [1, C, 1, 1] <-> internal [1, 1, 1, C] (same data order);
 * - queue: official [dim, K] <-> internal [K, dim] (transposed).
 */
export type Layout = 'plain' | 'conv' | 'chan' | 'queue';

export function internalShape(layout: Layout, official: readonly number[]): number[] {
  switch (layout) {
    case 'plain':
      return [...official];
    case 'conv': {
      const [o, i, kh, kw] = official as [number, number, number, number];
      return [kh, kw, i, o];
    }
    case 'chan':
      return [1, 1, 1, official[1]!];
    case 'queue':
      return [official[1]!, official[0]!];
  }
}

export function officialShape(layout: Layout, internal: readonly number[]): number[] {
  switch (layout) {
    case 'plain':
      return [...internal];
    case 'conv': {
      const [kh, kw, i, o] = internal as [number, number, number, number];
      return [o, i, kh, kw];
    }
    case 'chan':
      return [1, internal[3]!, 1, 1];
    case 'queue':
      return [internal[1]!, internal[0]!];
  }
}

/** Official-layout data -> internal-layout data. */
export function toInternal(layout: Layout, official: readonly number[], data: Float32Array): Float32Array {
  if (layout === 'plain' || layout === 'chan') return data;
  if (layout === 'queue') return transpose2d(data, official[0]!, official[1]!);
  const [o, i, kh, kw] = official as [number, number, number, number];
  const out = new Float32Array(data.length);
  for (let a = 0; a < o; ++a)
    for (let b = 0; b < i; ++b)
      for (let y = 0; y < kh; ++y)
        for (let x = 0; x < kw; ++x) out[((y * kw + x) * i + b) * o + a] = data[((a * i + b) * kh + y) * kw + x]!;
  return out;
}

/** Internal-layout data -> official-layout data. */
export function toOfficial(layout: Layout, internal: readonly number[], data: Float32Array): Float32Array {
  if (layout === 'plain' || layout === 'chan') return data;
  if (layout === 'queue') return transpose2d(data, internal[0]!, internal[1]!);
  const [kh, kw, i, o] = internal as [number, number, number, number];
  const out = new Float32Array(data.length);
  for (let a = 0; a < o; ++a)
    for (let b = 0; b < i; ++b)
      for (let y = 0; y < kh; ++y)
        for (let x = 0; x < kw; ++x) out[((a * i + b) * kh + y) * kw + x] = data[((y * kw + x) * i + b) * o + a]!;
  return out;
}

function transpose2d(d: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(d.length);
  for (let r = 0; r < rows; ++r) for (let c = 0; c < cols; ++c) out[c * rows + r] = d[r * cols + c]!;
  return out;
}

/** NCHW data -> NHWC data. */
export function nchwToNhwc(d: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  if (d.length !== n * c * h * w) throw new IrcError('E_SHAPE', `nchwToNhwc: ${d.length} values for [${n}, ${c}, ${h}, ${w}]`);
  const out = new Float32Array(d.length);
  for (let b = 0; b < n; ++b)
    for (let ch = 0; ch < c; ++ch)
      for (let y = 0; y < h; ++y)
        for (let x = 0; x < w; ++x) out[((b * h + y) * w + x) * c + ch] = d[((b * c + ch) * h + y) * w + x]!;
  return out;
}

/** NHWC data -> NCHW data. */
export function nhwcToNchw(d: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  if (d.length !== n * c * h * w) throw new IrcError('E_SHAPE', `nhwcToNchw: ${d.length} values for [${n}, ${h}, ${w}, ${c}]`);
  const out = new Float32Array(d.length);
  for (let b = 0; b < n; ++b)
    for (let ch = 0; ch < c; ++ch)
      for (let y = 0; y < h; ++y)
        for (let x = 0; x < w; ++x) out[((b * c + ch) * h + y) * w + x] = d[((b * h + y) * w + x) * c + ch]!;
  return out;
}
