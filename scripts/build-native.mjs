// Builds build/Release/irconstyle.node: with cmake-js (CUDA sources when nvcc is found; offline, the Node-API
// headers come from node-api-headers via package.json "binary"), or with node-gyp (CPU only, same sources)
// when cmake is missing or IRCONSTYLE_BUILD=node-gyp.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';

const env = { ...process.env };
for (const dir of ['/usr/local/cuda/bin']) {
  if (existsSync(dir) && !(env.PATH ?? '').split(':').includes(dir)) env.PATH = `${dir}:${env.PATH ?? ''}`;
}

function nodeGyp() {
  // npm exposes its bundled node-gyp to scripts; otherwise look next to the running npm.
  const candidates = [env.npm_config_node_gyp, env.npm_execpath && join(dirname(env.npm_execpath), '../node_modules/node-gyp/bin/node-gyp.js')];
  const gyp = candidates.find((p) => p && existsSync(p));
  if (!gyp) return ['npx', ['--yes', 'node-gyp', 'rebuild']];
  const nodedir = env.npm_config_nodedir ? [`--nodedir=${env.npm_config_nodedir}`] : [];
  return [process.execPath, [gyp, 'rebuild', ...nodedir]];
}

const hasCmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' }).status === 0;
const useGyp = env.IRCONSTYLE_BUILD === 'node-gyp' || !hasCmake;
const cudaFlag = env.IRCONSTYLE_CUDA ? [`--CDIRCONSTYLE_CUDA=${env.IRCONSTYLE_CUDA}`] : [];
const [cmd, args] = useGyp ? nodeGyp() : ['npx', ['cmake-js', 'compile', '-O', 'build', ...cudaFlag]];
console.log(`[irconstyle] building the native addon: ${cmd} ${args.join(' ')}`);
const r = spawnSync(cmd, args, { stdio: 'inherit', env });
if (r.status !== 0) {
  console.error('[irconstyle] native build failed');
  process.exit(r.status ?? 1);
}
