// npm start: trains a small ConStyle NAFNet for denoising (σ = 25) on the photos shipped with the package for
// about a minute (or --seconds N), printing the four losses and the PSNR on a held-out photo as they move.
import { backend } from '../lib/native/backend.js';
import { constyleNAFNet } from '../lib/models/constyle_nafnet.js';
import { IRConStyleTrainer } from '../lib/train/irconstyle.js';
import { denoiseBatch } from '../lib/data/batch.js';
import { Rng, listPhotos, loadPhoto, crop, toHWCFloat } from '../lib/data/photos.js';
import { addGaussianNoise } from '../lib/data/degrade.js';
import { psnr } from '../lib/metrics/psnr.js';
import { tensor } from '../lib/tensor/tensor.js';
import { tidy } from '../lib/tensor/scope.js';
import { noGrad } from '../lib/autograd/node.js';
import { setInitSeed } from '../lib/nn/init.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const seconds = arg('seconds', 60);
const sigma = arg('sigma', 25);
const batch = 4;
const patch = 64;

console.log(`irconstyle demo: ConStyle NAFNet denoising (σ=${sigma}) on the shipped photos, ${seconds} s`);
console.log(`backend: ${backend()}`);
const files = listPhotos();
const images = files.map((f) => loadPhoto(f));
const held = images.pop()!;
const heldName = files[files.length - 1]!.split('/').pop();
// Held-out validation image: a centred 128×128 crop with fixed noise.
const vs = 128;
const vcrop = crop(held, (held.width - vs) >> 1, (held.height - vs) >> 1, vs, vs);
const vgt = toHWCFloat(vcrop);
const vlq = addGaussianNoise(vgt, sigma, new Rng(1));
console.log(`train: ${images.length} photos, random ${patch}×${patch} crops, batch ${batch}; validate: ${heldName} (${vs}×${vs})`);

setInitSeed(10);
const model = constyleNAFNet({ dim: 16, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], K: 4096 });
const trainer = new IRConStyleTrainer(model, { lr: 1e-3 });
console.log(`model: ${model.numParameters().toLocaleString()} parameters (training configuration)`);

async function validate(): Promise<number> {
  model.eval();
  const out = noGrad(() => tidy(() => model.forward(tensor(vlq, [1, vs, vs, 3]))));
  const d = await out.f32();
  out.dispose();
  model.train();
  return psnr(d, vgt);
}

const rng = new Rng(42);
const noisy = psnr(vlq, vgt);
console.log(`PSNR of the noisy input: ${noisy.toFixed(2)} dB; restored at start: ${(await validate()).toFixed(2)} dB\n`);
console.log(' iter   time    pix      ce        content   style      | val PSNR');
const t0 = Date.now();
let it = 0;
let lastVal = t0;
for (;;) {
  const { lq, gt } = denoiseBatch(images, { batch, patch, sigma, rng });
  const l = await trainer.step(lq, gt);
  lq.dispose();
  gt.dispose();
  it++;
  const tr = trainer.tuneReport;
  if (it === 2 && tr)  // (on CUDA: the kernel paths this card runs fastest, chosen at the second step)
    console.log(`kernel tuning: ${tr.error ? `failed (${tr.error})` : `${tr.chosen.join(' + ') || 'the default paths'} (${tr.trials.length} trials, ${tr.seconds.toFixed(1)} s)`}`);
  const now = Date.now();
  const done = now - t0 >= seconds * 1000;
  if (now - lastVal >= Math.max(5000, (seconds * 1000) / 8) || done || it === 1) {
    lastVal = now;
    const p = await validate();
    console.log(
      `${String(it).padStart(5)} ${((now - t0) / 1000).toFixed(1).padStart(6)}s ${l.pix.toFixed(4)}  ${l.ce.toFixed(3).padStart(8)}  ${l.content.toExponential(2)}  ${l.style.toExponential(2)} | ${p.toFixed(2)} dB`,
    );
  }
  if (done) break;
}
trainer.dispose();
model.dispose();
