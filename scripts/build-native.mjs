// Builds build/Release/irconstyle.node: with cmake-js (CUDA sources when nvcc is found; offline, the Node-API
// headers come from node-api-headers via package.json "binary"), or with node-gyp (CPU only, same sources)
// when cmake is missing or IRCONSTYLE_BUILD=node-gyp.
//
// --prebuild: the binary that ships in the npm package, prebuilds/<platform>-<arch>/node.napi[.glibc].node. Built
// with cmake-js in build-prebuild/ with the CUDA kernels (IRCONSTYLE_CUDA=ON unless set otherwise: a prebuild without
// them is refused unless IRCONSTYLE_CUDA=AUTO|OFF is given), libstdc++/libgcc linked in (IRCONSTYLE_PORTABLE), then
// stripped, moved into place atomically and checked: it loads in a child process and needs no shared library but
// glibc's.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeSourcesHash } from './native-hash.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuild = process.argv.includes('--prebuild');
const env = { ...process.env };
for (const dir of ['/usr/local/cuda/bin']) {
  if (existsSync(dir) && !(env.PATH ?? '').split(':').includes(dir)) env.PATH = `${dir}:${env.PATH ?? ''}`;
}

function fail(msg, status = 1) {
  console.error(`[irconstyle] ${msg}`);
  process.exit(status);
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
if (prebuild && !hasCmake) fail('--prebuild needs cmake (and cmake-js, a dev dependency)');
const useGyp = !prebuild && (env.IRCONSTYLE_BUILD === 'node-gyp' || !hasCmake);
const cuda = process.argv.includes('--emu') ? 'EMU' : (env.IRCONSTYLE_CUDA ?? (prebuild ? 'ON' : 'AUTO')).toUpperCase();
// --emu (or IRCONSTYLE_CUDA=EMU): the CUDA emulator build (native/emu: the kernels run on the CPU, for tests) in
// build-emu/Release, with the CPU stand-ins of cuBLAS, cuBLASLt and cuDNN in build-emu/emu-libs.
const asan = cuda === 'EMU' && process.argv.includes('--asan');  // the emulator with AddressSanitizer, build-emu-asan/
const outDir = prebuild ? 'build-prebuild' : cuda === 'EMU' ? (asan ? 'build-emu-asan' : 'build-emu') : 'build';
if (cuda === 'EMU' && (prebuild || useGyp)) fail('IRCONSTYLE_CUDA=EMU needs cmake and is not a prebuilt binary');
const defs = { IRCONSTYLE_CUDA: cuda, IRCONSTYLE_PORTABLE: prebuild ? 'ON' : 'OFF', ...(asan ? { IRCONSTYLE_EMU_ASAN: 'ON' } : {}) };
const cmakeArgs = ['cmake-js', 'compile', '-O', outDir, ...Object.entries(defs).map(([k, v]) => `--CD${k}=${v}`)];
if (!useGyp) reconfigureIfChanged(join(root, outDir, 'CMakeCache.txt'), defs);
const [cmd, args] = useGyp ? nodeGyp() : ['npx', cmakeArgs];
const sourcesHash = prebuild ? nativeSourcesHash(root) : '';  // of the sources the build reads (an edit during it shows)
console.log(`[irconstyle] building the native addon: ${cmd} ${args.join(' ')}`);
const r = spawnSync(cmd, args, { stdio: 'inherit', env, cwd: root });
if (r.status !== 0) fail('native build failed', r.status ?? 1);
if (prebuild) installPrebuild(join(root, 'build-prebuild', 'Release', 'irconstyle.node'));

/** cmake-js compile configures only a folder without a CMakeCache.txt, so the -D values above would not reach a
 * configured one: drop its cache when they differ from the cached ones (the objects stay; CMake configures again). */
function reconfigureIfChanged(cache, want) {
  if (!existsSync(cache)) return;
  const text = readFileSync(cache, 'utf8');
  const stale = Object.entries(want).filter(([k, v]) => (new RegExp(`^${k}:\\w+=(.*)$`, 'm').exec(text)?.[1] ?? '') !== v);
  if (!stale.length) return;
  console.log(`[irconstyle] ${stale.map(([k, v]) => `${k}=${v}`).join(' ')} differs from ${cache}: configuring again`);
  rmSync(cache);
}

function installPrebuild(built) {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const name = process.platform === 'linux' ? 'node.napi.glibc.node' : 'node.napi.node';
  const stripped = join(dirname(built), 'stripped.node');
  if (spawnSync('strip', ['--strip-unneeded', '-o', stripped, built], { stdio: 'inherit' }).status !== 0) copyFileSync(built, stripped);
  const problem = checkBinary(stripped);
  if (problem) fail(`the prebuilt addon is not fit to ship: ${problem}`);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  try {
    copyFileSync(stripped, tmp);
    renameSync(tmp, join(dir, name));
    writeFileSync(join(dir, 'sources.sha256'), `${sourcesHash}\n`);
  } finally {
    rmSync(tmp, { force: true });
  }
  console.log(`[irconstyle] ${join('prebuilds', `${process.platform}-${process.arch}`, name)}`);
}

/** "" when the binary loads in a child process (with its CUDA kernels unless the build was allowed without them) and
 * needs no shared library beyond glibc's; otherwise what is wrong. */
function checkBinary(file) {
  const probe = `const i = require(${JSON.stringify(file)}).info(); console.log(JSON.stringify({ ops: i.ops.length, cuda: i.cuda.compiled, kernels: i.cuda.ops.length, error: i.cuda.error }))`;
  const p = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
  if (p.status !== 0) return `it does not load: ${p.stderr.trim().split('\n').slice(0, 3).join(' ')}`;
  const info = JSON.parse(p.stdout);
  console.log(`[irconstyle] prebuild: ${info.ops} ops, ${info.cuda ? `${info.kernels} with CUDA kernels (here: ${info.error || 'a GPU'})` : 'CPU only'}`);
  if (!info.cuda && cuda === 'ON') return 'no CUDA kernels';
  const od = spawnSync('objdump', ['-p', file], { encoding: 'utf8' });
  if (od.status !== 0) return '';
  const glibc = /^(libc|libm|libdl|libpthread|librt)\.so\.\d+$|^ld-linux-[\w-]+\.so\.\d+$/;
  const needed = [...od.stdout.matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]);
  const extra = needed.filter((n) => !glibc.test(n));
  console.log(`[irconstyle] prebuild needs: ${needed.join(', ')}`);
  return extra.length ? `it needs ${extra.join(', ')} (only glibc's libraries may be needed)` : '';
}
