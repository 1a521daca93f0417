// Builds build/Release/irconstyle.node with cmake-js (CUDA sources when nvcc is found), or with node-gyp when
// cmake is missing. Offline: cmake-js takes the Node-API headers from node-api-headers (package.json "binary").
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const env = { ...process.env };
for (const dir of ['/usr/local/cuda/bin']) {
  if (existsSync(dir) && !(env.PATH ?? '').split(':').includes(dir)) env.PATH = `${dir}:${env.PATH ?? ''}`;
}
const cudaFlag = env.IRCONSTYLE_CUDA ? [`--CDIRCONSTYLE_CUDA=${env.IRCONSTYLE_CUDA}`] : [];
const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
const [cmd, args] = hasCmake
  ? ['npx', ['cmake-js', 'compile', '-O', 'build', ...cudaFlag]]
  : ['npx', ['node-gyp', 'rebuild']];
console.log(`[irconstyle] building the native addon: ${cmd} ${args.join(' ')}`);
const r = spawnSync(cmd, args, { stdio: 'inherit', env });
if (r.status !== 0) {
  console.error('[irconstyle] native build failed');
  process.exit(r.status ?? 1);
}
