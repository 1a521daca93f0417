/**
 * Regenerates data/photos/ (the small demo set shipped with the package) from the full photo collection.
 *
 *   npx tsc -p tsconfig.json && node dist/scripts/prepare-photos.js [SRC_DIR] [DEST_DIR]
 *
 * SRC_DIR defaults to /work/shared/data/photos, DEST_DIR to <package>/data/photos. For each chosen photo:
 * integer factor f = max(1, floor(longer side / 256)), plus 1 if a 256 * f crop would keep less than 75% of
 * the longer side; output size = min(side / f, 256) rounded down to a
 * multiple of 8; the centred (f * out) region is box-filtered f x f (mean, rounded half up). The result is
 * deterministic. data/photos/SOURCES.md (origin and licence of each file) is maintained by hand.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { readImage, writeImage, type RgbImage } from '../lib/io/png.js';
import { defaultPhotoDir } from '../lib/data/photos.js';

/** Chosen for licences that allow redistribution in an MIT package (public domain, CC0, CC-BY 2.0). */
export const DEMO_PHOTOS = [
  'skimage_astronaut.png',
  'skimage_chelsea.png',
  'skimage_coffee.png',
  'skimage_rocket.png',
  'mpl_grace-hopper.png',
  'scipy_face.png',
  'sklearn_china.png',
  'sklearn_flower.png',
];

export const MAX_SIDE = 256;

export function shrink(img: RgbImage, maxSide = MAX_SIDE): RgbImage {
  // Largest integer factor that keeps at least 75% of the longer side; otherwise the next larger one.
  const long = Math.max(img.width, img.height);
  let f = Math.max(1, Math.floor(long / maxSide));
  if ((maxSide * f) / long < 0.75) f += 1;
  const ow = Math.floor(Math.min(Math.floor(img.width / f), maxSide) / 8) * 8;
  const oh = Math.floor(Math.min(Math.floor(img.height / f), maxSide) / 8) * 8;
  if (ow === 0 || oh === 0) throw new Error(`image ${img.width}x${img.height} too small`);
  const x0 = Math.floor((img.width - ow * f) / 2), y0 = Math.floor((img.height - oh * f) / 2);
  const out = new Uint8Array(ow * oh * 3);
  const n = f * f;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let dy = 0; dy < f; dy++) {
          const row = (y0 + y * f + dy) * img.width;
          for (let dx = 0; dx < f; dx++) s += img.data[(row + x0 + x * f + dx) * 3 + c];
        }
        out[(y * ow + x) * 3 + c] = Math.floor(s / n + 0.5);
      }
    }
  }
  return { width: ow, height: oh, data: out };
}

function main(): void {
  const src = process.argv[2] ?? '/work/shared/data/photos';
  const dest = process.argv[3] ?? defaultPhotoDir();
  fs.mkdirSync(dest, { recursive: true });
  let total = 0;
  for (const name of DEMO_PHOTOS) {
    const img = readImage(path.join(src, name));
    const small = shrink(img);
    const out = path.join(dest, name);
    writeImage(out, small);
    const size = fs.statSync(out).size;
    total += size;
    console.log(`${name}: ${img.width}x${img.height} -> ${small.width}x${small.height} (${size} bytes)`);
  }
  console.log(`total ${total} bytes in ${dest}`);
}

if (process.argv[1] && path.resolve(process.argv[1]).replace(/\.ts$/, '.js').endsWith(path.join('scripts', 'prepare-photos.js'))) {
  main();
}
