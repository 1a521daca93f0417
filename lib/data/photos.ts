/**
 * Demo/training photos: listing, loading, cropping, layout conversion, and a seeded RNG.
 * Images are 8-bit RGB HWC (`RgbImage`) or float32 HWC in [0, 1].
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IrcError } from '../errors.js';
import { packageRoot } from '../package-root.js';

export { packageRoot };
import { readImage, type RgbImage } from '../io/png.js';

export type { RgbImage };

/** An HWC image with any element type; `data.length === height * width * channels`. */
export interface HwcImage<T extends Uint8Array | Float32Array = Uint8Array | Float32Array> {
  width: number;
  height: number;
  data: T;
}

// ---------------------------------------------------------------------------------------------- RNG

/** FNV-1a 32-bit hash of a string's UTF-8 bytes (used to derive seeds, e.g. "<file>|<task>|<level>"). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Seeded PRNG: xoshiro128** (Blackman & Vigna), state seeded from a 32-bit seed by four splitmix32 steps
 * (z += 0x9e3779b9; z = (z ^ z>>>16) * 0x85ebca6b; z = (z ^ z>>>13) * 0xc2b2ae35; z ^= z>>>16).
 * - next(): uint32.
 * - uniform(): [0, 1) with 53 random bits: ((a >>> 5) * 2^26 + (b >>> 6)) / 2^53, a and b two next() draws.
 * - normal(): Box-Muller on u1 = 1 - uniform(), u2 = uniform(): r = sqrt(-2 ln u1); yields r cos(2 pi u2),
 *   then (on the next call) r sin(2 pi u2).
 * The sequence is fully determined by the seed (or by getState()).
 */
export class Rng {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed = 0) {
    if (!Number.isFinite(seed)) throw new IrcError('E_ARG', `Rng: seed must be a finite number, found ${seed}`);
    let z = Math.trunc(seed) >>> 0;
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b);
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35);
      this.s[i] = (t ^ (t >>> 16)) >>> 0;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }

  /** A generator seeded with fnv1a32(key). */
  static fromString(key: string): Rng {
    return new Rng(fnv1a32(key));
  }

  /** Restore a generator from getState(). */
  static fromState(state: number[]): Rng {
    if (!Array.isArray(state) || state.length !== 5) throw new IrcError('E_ARG', 'Rng.fromState: expected the 5-element array from getState()');
    const r = new Rng(0);
    for (let i = 0; i < 4; i++) r.s[i] = state[i] >>> 0;
    r.spare = Number.isNaN(state[4]) ? null : state[4];
    return r;
  }

  /** Snapshot of the full state (4 state words + the cached normal, NaN when none). */
  getState(): number[] {
    return [this.s[0], this.s[1], this.s[2], this.s[3], this.spare ?? NaN];
  }

  /** Next uint32. */
  next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1), 53-bit resolution. */
  uniform(): number {
    const a = this.next() >>> 5, b = this.next() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new IrcError('E_ARG', `Rng.int: n must be a positive integer, found ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal N(0, 1). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const th = 2 * Math.PI * u2;
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
}

// ------------------------------------------------------------------------------------------- files

/** The shipped demo photo folder (<package>/data/photos). */
export function defaultPhotoDir(): string {
  return path.join(packageRoot(), 'data', 'photos');
}

/** Absolute paths of the .png files in `dir` (default: the shipped demo photos), sorted by name. */
export function listPhotos(dir?: string): string[] {
  const d = path.resolve(dir ?? defaultPhotoDir());
  let names: string[];
  try {
    names = fs.readdirSync(d);
  } catch (e) {
    throw new IrcError('E_IO', `listPhotos: cannot read folder '${d}': ${e instanceof Error ? e.message : String(e)}`);
  }
  return names.filter((n) => n.toLowerCase().endsWith('.png')).sort().map((n) => path.join(d, n));
}

/** Load a PNG photo as 8-bit RGB HWC. */
export function loadPhoto(file: string): RgbImage {
  return readImage(file);
}

// ------------------------------------------------------------------------------------- transforms

function channelsOf(img: HwcImage, who: string): number {
  const { width, height, data } = img ?? ({} as HwcImage);
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width <= 0 || height <= 0 || !data) {
    throw new IrcError('E_ARG', `${who}: expected an image {width, height, data}, found ${width}x${height}`);
  }
  const c = data.length / (width * height);
  if (!Number.isInteger(c) || c < 1) {
    throw new IrcError('E_SHAPE', `${who}: data length ${data.length} is not a multiple of ${width}x${height}`);
  }
  return c;
}

/** Crop the rectangle at (x, y) of size w x h. */
export function crop<T extends Uint8Array | Float32Array>(img: HwcImage<T>, x: number, y: number, w: number, h: number): HwcImage<T> {
  const c = channelsOf(img, 'crop');
  if (![x, y, w, h].every(Number.isSafeInteger) || x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > img.width || y + h > img.height) {
    throw new IrcError('E_ARG', `crop: rectangle (${x}, ${y}) ${w}x${h} does not fit in a ${img.width}x${img.height} image`);
  }
  const out = new (img.data.constructor as { new (n: number): T })(w * h * c);
  for (let r = 0; r < h; r++) {
    const s = ((y + r) * img.width + x) * c;
    out.set(img.data.subarray(s, s + w * c), r * w * c);
  }
  return { width: w, height: h, data: out };
}

/** A uniformly placed crop of `size` (square, or {width, height}); E_ARG if the image is smaller. */
export function randomCrop<T extends Uint8Array | Float32Array>(
  img: HwcImage<T>, size: number | { width: number; height: number }, rng: Rng,
): HwcImage<T> {
  const w = typeof size === 'number' ? size : size.width;
  const h = typeof size === 'number' ? size : size.height;
  if (!Number.isSafeInteger(w) || !Number.isSafeInteger(h) || w <= 0 || h <= 0) {
    throw new IrcError('E_ARG', `randomCrop: size must be positive integers, found ${w}x${h}`);
  }
  if (w > img.width || h > img.height) {
    throw new IrcError('E_ARG', `randomCrop: crop ${w}x${h} is larger than the ${img.width}x${img.height} image`);
  }
  const y = rng.int(img.height - h + 1);
  const x = rng.int(img.width - w + 1);
  return crop(img, x, y, w, h);
}

/**
 * One of the 8 flip/rot90 variants (dihedral group), mode 0..7: bit 0 = flip left-right, then
 * (mode >> 1) quarter turns counter-clockwise. Mode 0 is the identity.
 */
export function augment<T extends Uint8Array | Float32Array>(img: HwcImage<T>, mode: number): HwcImage<T> {
  const c = channelsOf(img, 'augment');
  if (!Number.isInteger(mode) || mode < 0 || mode > 7) throw new IrcError('E_ARG', `augment: mode must be 0..7, found ${mode}`);
  const { width: W, height: H } = img;
  const flip = (mode & 1) === 1, turns = mode >> 1;
  const ow = turns % 2 ? H : W, oh = turns % 2 ? W : H;
  const out = new (img.data.constructor as { new (n: number): T })(img.data.length);
  for (let y = 0; y < H; y++) {
    for (let x0 = 0; x0 < W; x0++) {
      const x = flip ? W - 1 - x0 : x0;
      let ox: number, oy: number;
      switch (turns) {
        case 0: ox = x; oy = y; break;
        case 1: ox = y; oy = W - 1 - x; break;
        case 2: ox = W - 1 - x; oy = H - 1 - y; break;
        default: ox = H - 1 - y; oy = x; break;
      }
      const s = (y * W + x0) * c, d = (oy * ow + ox) * c;
      for (let k = 0; k < c; k++) out[d + k] = img.data[s + k];
    }
  }
  return { width: ow, height: oh, data: out };
}

/** 8-bit HWC -> float32 HWC in [0, 1] (v / 255). */
export function toHWCFloat(img: HwcImage<Uint8Array>): Float32Array {
  channelsOf(img, 'toHWCFloat');
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = img.data[i] / 255;
  return out;
}

/** HWC (8-bit: scaled by 1/255; float: as is) -> float32 CHW, the layout of the NCHW fixtures. */
export function toCHW(img: HwcImage): Float32Array {
  const c = channelsOf(img, 'toCHW');
  const n = img.width * img.height;
  const scale = img.data instanceof Uint8Array ? 1 / 255 : 1;
  const out = new Float32Array(n * c);
  for (let i = 0; i < n; i++) for (let k = 0; k < c; k++) out[k * n + i] = img.data[i * c + k] * scale;
  return out;
}

/** Float32 CHW -> float32 HWC. */
export function chwToHWC(chw: Float32Array, channels: number, height: number, width: number): Float32Array {
  const n = height * width;
  if (chw.length !== n * channels) {
    throw new IrcError('E_SHAPE', `chwToHWC: expected ${channels}x${height}x${width} = ${n * channels} values, found ${chw.length}`);
  }
  const out = new Float32Array(chw.length);
  for (let i = 0; i < n; i++) for (let k = 0; k < channels; k++) out[i * channels + k] = chw[k * n + i];
  return out;
}

/** Float32 HWC RGB in [0, 1] -> 8-bit image (clipped, rounded to nearest). */
export function fromHWCFloat(hwc: Float32Array, width: number, height: number): RgbImage {
  if (hwc.length !== width * height * 3) {
    throw new IrcError('E_SHAPE', `fromHWCFloat: ${width}x${height} RGB needs ${width * height * 3} values, found ${hwc.length}`);
  }
  const out = new Uint8Array(hwc.length);
  for (let i = 0; i < hwc.length; i++) {
    const v = Math.round(hwc[i] * 255);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v || 0;
  }
  return { width, height, data: out };
}
