// The SHA-256 of the native sources (native/** but native/emu, CMakeLists.txt, binding.gyp) by content:
// `npm run build:prebuilt` writes it beside the prebuilt addon (prebuilds/<platform>-<arch>/sources.sha256) and
// `npm pack` / `npm publish` (scripts/prepack.mjs) refuse a prebuild whose sources have changed since.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export function nativeSourcesHash(root) {
  const files = [];
  const walk = (p) => {
    if (relative(root, p) === join('native', 'emu')) return;  // the CUDA emulator: not read by the addon's builds
    if (statSync(p).isDirectory()) for (const f of readdirSync(p).sort()) walk(join(p, f));
    else files.push(p);
  };
  for (const p of ['native', 'CMakeLists.txt', 'binding.gyp']) walk(join(root, p));
  const h = createHash('sha256');
  for (const f of files) h.update(`${relative(root, f)}\0`).update(readFileSync(f)).update('\0');
  return h.digest('hex');
}
