// npm's prepack hook: `npm pack` / `npm publish` refuse to pack the Linux x64 prebuilt addon unless it exists, was
// built from the current native sources (prebuilds/linux-x64/sources.sha256, written by `npm run build:prebuilt`)
// and has its CUDA kernels (users would otherwise get a CPU-only binary or a CPU source build). Other commands that
// run prepack (a git dependency's install) are let through.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeSourcesHash } from './native-hash.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const command = process.env.npm_command ?? '';
if (command === 'pack' || command === 'publish') {
  const dir = join(root, 'prebuilds', 'linux-x64');
  const binaries = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
  const stamp = join(dir, 'sources.sha256');
  let problem = '';
  if (binaries.length !== 1) problem = `expected one prebuilt addon in ${dir}, found ${binaries.length ? binaries.join(', ') : 'none'}`;
  else if (!existsSync(stamp) || readFileSync(stamp, 'utf8').trim() !== nativeSourcesHash(root))
    problem = `prebuilds/linux-x64/${binaries[0]} was not built from the current native sources`;
  else {
    const probe = `const i = require(${JSON.stringify(join(dir, binaries[0]))}).info(); console.log(i.cuda.compiled ? 'cuda' : 'cpu')`;
    const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
    if (r.status !== 0) problem = `prebuilds/linux-x64/${binaries[0]} does not load: ${(r.stderr || `exit ${r.signal ?? r.status}`).trim().split('\n')[0]}`;
    else if (r.stdout.trim() !== 'cuda') problem = `prebuilds/linux-x64/${binaries[0]} has no CUDA kernels (built without nvcc)`;
  }
  if (problem) {
    console.error(`[irconstyle] npm ${command}: ${problem}; run \`npm run build:prebuilt\` first`);
    process.exit(1);
  }
}
