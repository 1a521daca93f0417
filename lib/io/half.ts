/** IEEE half (binary16) and bfloat16 conversions. Encoders round to nearest, ties to even. */

let F16_TABLE: Float32Array | null = null;

/** Decode one binary16 bit pattern to a number (exact). */
export function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1024 + m) * 2 ** (e - 25);
}

function table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = halfToNumber(h);
  }
  return F16_TABLE;
}

/** Decode an array of binary16 bit patterns. */
export function decodeF16(bits: Uint16Array): Float32Array {
  const t = table();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

/** Round-half-to-even of a non-negative number whose fractional part is exact (it always is here). */
function rne(q: number): number {
  const f = Math.floor(q);
  const d = q - f;
  if (d > 0.5 || (d === 0.5 && (f & 1) === 1)) return f + 1;
  return f;
}

/**
 * Encode a number (float32 or float64) to binary16 with a single correct rounding (no double rounding):
 * overflow gives +-Inf, NaN a quiet NaN, and the sign of zero is kept.
 */
export function numberToHalf(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00; // 65520 is the tie between 65504 and 2^16; it rounds to even = Inf
  if (a < 2 ** -14) {
    return sign | rne(a * 2 ** 24); // subnormal (may round up to the smallest normal, 0x0400)
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  let q = rne(a * 2 ** (10 - e)); // in [1024, 2048]
  if (q === 2048) { q = 1024; e++; }
  return sign | ((e + 15) << 10) | (q - 1024);
}

/** Encode numbers to binary16 bit patterns. */
export function encodeF16(vals: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(vals.length);
  for (let i = 0; i < vals.length; i++) out[i] = numberToHalf(vals[i]);
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Decode bfloat16 bit patterns (the upper 16 bits of a float32). */
export function decodeBF16(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const o32 = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) o32[i] = bits[i] << 16;
  return out;
}

/** Encode to bfloat16 (values are first rounded to float32, then to bfloat16, ties to even). */
export function encodeBF16(vals: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(vals.length);
  for (let i = 0; i < vals.length; i++) {
    f32[0] = vals[i];
    const b = u32[0];
    if ((b & 0x7fffffff) > 0x7f800000) { out[i] = (b >>> 16) | 0x40; continue; }
    out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}
