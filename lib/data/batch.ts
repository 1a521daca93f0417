// Training batches for synthetic denoising: random crops with the 8 dihedral augmentations, Gaussian noise.
import { IrcError } from '../errors.js';
import { tensor, type Tensor } from '../tensor/tensor.js';
import { Rng, augment, randomCrop, toHWCFloat, type HwcImage } from './photos.js';
import { addGaussianNoise } from './degrade.js';

export interface DenoiseBatchOptions {
  batch: number;
  patch: number;
  /** Noise σ in 0..255 units. */
  sigma: number;
  rng: Rng;
}

/** NHWC float32 tensors lq (noisy) and gt (clean) of shape [batch, patch, patch, 3]. */
export function denoiseBatch(images: readonly HwcImage<Uint8Array>[], o: DenoiseBatchOptions): { lq: Tensor; gt: Tensor } {
  if (!images.length) throw new IrcError('E_ARG', 'denoiseBatch: no images given');
  const per = o.patch * o.patch * 3;
  const gt = new Float32Array(o.batch * per);
  for (let b = 0; b < o.batch; ++b) {
    const img = images[o.rng.int(images.length)]!;
    const crop = augment(randomCrop(img, o.patch, o.rng), o.rng.int(8));
    gt.set(toHWCFloat(crop), b * per);
  }
  const lq = addGaussianNoise(gt, o.sigma, o.rng);
  const shape = [o.batch, o.patch, o.patch, 3];
  return { lq: tensor(lq, shape), gt: tensor(gt, shape) };
}
