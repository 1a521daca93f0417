// npm's prepack hook: `npm pack` / `npm publish` refuse to pack without a current prebuilt addon for Linux x64
// (users would get a CPU source build instead of the CUDA-capable binary). Other commands that run prepack (a git
// dependency's install) are let through.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const command = process.env.npm_command ?? '';
if (command === 'pack' || command === 'publish') {
  const dir = join(root, 'prebuilds', 'linux-x64');
  const binary = existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.node')) : undefined;
  const newest = (p) => {
    const st = statSync(p);
    return st.isDirectory() ? Math.max(0, ...readdirSync(p).map((f) => newest(join(p, f)))) : st.mtimeMs;
  };
  const sources = Math.max(newest(join(root, 'native')), newest(join(root, 'CMakeLists.txt')));
  const problem = !binary ? `there is no prebuilt addon in ${dir}`
    : statSync(join(dir, binary)).mtimeMs < sources ? `prebuilds/linux-x64/${binary} is older than the native sources` : '';
  if (problem) {
    console.error(`[irconstyle] npm ${command}: ${problem}; run \`npm run build:prebuilt\` first`);
    process.exit(1);
  }
}
