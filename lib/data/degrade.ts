/**
 * Synthetic degradations (see the project's DEGRADATIONS spec). Images are float32 HWC in [0, 1],
 * sRGB-encoded values.
 */
import { IrcError } from '../errors.js';
import { Rng, fnv1a32 } from './photos.js';

/** The standard evaluation noise levels (0..255 units). */
export const NOISE_SIGMAS = [15, 25, 50] as const;

/** Seed for one (file, task, level) triple: fnv1a32(`${file}|${task}|${level}`). */
export function seedFor(file: string, task: string, level: string | number): number {
  return fnv1a32(`${file}|${task}|${level}`);
}

export interface NoiseOptions {
  /** Clip the result to [0, 1] ("realistic" variant). Default false (the main protocol). */
  clip?: boolean;
  /** After clipping, round to 8-bit levels: round(255 y) / 255. Implies clip. Default false. */
  quantize?: boolean;
}

/**
 * Additive white Gaussian noise: y = x + (sigma255 / 255) * n, n ~ N(0, 1) i.i.d. per pixel and channel,
 * drawn with rng.normal() in memory order (HWC: pixel by pixel, R G B). Returns a new array. By default
 * unclipped and unquantised, as the official SwinIR/Restormer test scripts do; see NoiseOptions for the
 * clipped 8-bit variant.
 */
export function addGaussianNoise(hwc: Float32Array, sigma255: number, rng: Rng, opts: NoiseOptions = {}): Float32Array {
  if (!(hwc instanceof Float32Array)) {
    throw new IrcError('E_DTYPE', `addGaussianNoise: image must be a Float32Array (HWC in [0, 1]), found ${Object.prototype.toString.call(hwc)}`);
  }
  if (typeof sigma255 !== 'number' || !Number.isFinite(sigma255) || sigma255 < 0) {
    throw new IrcError('E_ARG', `addGaussianNoise: sigma must be a finite number >= 0 in 0..255 units, found ${sigma255}`);
  }
  if (!(rng instanceof Rng)) throw new IrcError('E_ARG', 'addGaussianNoise: rng must be an Rng');
  const s = sigma255 / 255;
  const out = new Float32Array(hwc.length);
  for (let i = 0; i < hwc.length; i++) out[i] = hwc[i] + s * rng.normal();
  if (opts.clip || opts.quantize) {
    for (let i = 0; i < out.length; i++) {
      let v = out[i] < 0 ? 0 : out[i] > 1 ? 1 : out[i];
      if (opts.quantize) v = Math.round(v * 255) / 255;
      out[i] = v;
    }
  }
  return out;
}

/** A training noise level sigma ~ U[lo, hi] (0..255 units; default U[0, 55], blind denoising as CDnCNN). */
export function randomSigma(rng: Rng, lo = 0, hi = 55): number {
  if (!(hi >= lo)) throw new IrcError('E_ARG', `randomSigma: need lo <= hi, found [${lo}, ${hi}]`);
  return lo + (hi - lo) * rng.uniform();
}

/**
 * A reproducible evaluation pair for denoising: noisy = addGaussianNoise(clean, sigma, new Rng(seedFor(file,
 * 'denoise', sigma))). `file` is the photo's base name, e.g. "skimage_astronaut.png".
 */
export function denoisePair(clean: Float32Array, file: string, sigma255: number, opts: NoiseOptions = {}): {
  lq: Float32Array; gt: Float32Array; seed: number;
} {
  const seed = seedFor(file, 'denoise', sigma255);
  return { lq: addGaussianNoise(clean, sigma255, new Rng(seed), opts), gt: clean, seed };
}
