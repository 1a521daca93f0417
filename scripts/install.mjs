// npm's install hook. A registry install has the prebuilt addon in prebuilds/<platform>-<arch>/ (CUDA kernels
// compiled in, static cudart, cuBLAS/cuDNN opened at run time): this script loads it in a child process and, when it
// loads, is done. When no prebuild fits (another platform, an older glibc), it builds the CPU addon from the shipped
// sources with npm's own node-gyp. In a source checkout (the repository: lib/ and tsconfig.json present) it does
// nothing: `prepare` builds everything there with cmake-js.
//   npm_config_build_from_source=true (npm install --build-from-source) skips the prebuild.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (m) => console.log(`[irconstyle] ${m}`);

/** Loads the addon node-gyp-build finds (PREBUILDS_ONLY: the prebuild alone) in a child, so that a binary that
 * crashes the process cannot fail the install; "" when it loads, else why not. */
function tryLoad(prebuildsOnly) {
  const probe = `const b = require('node-gyp-build'); const p = b.resolve(${JSON.stringify(root)}); const n = require(p); ` +
    `const i = n.info(); console.log(p + ' (' + i.ops.length + ' ops, ' + i.simd + (i.cuda.compiled ? ', CUDA kernels' : '') + ')')`;
  const env = { ...process.env, ...(prebuildsOnly ? { PREBUILDS_ONLY: '1' } : {}) };
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: root, env, encoding: 'utf8' });
  if (r.status === 0) return { ok: true, what: r.stdout.trim() };
  const out = `${r.stderr ?? ''}${r.stdout ?? ''}`;
  const why = out.split('\n').find((l) => /Error|error:/.test(l)) ?? (out.trim() || `the loader exited with ${r.signal ?? r.status}`);
  return { ok: false, what: why.trim() };
}

if (existsSync(join(root, 'lib')) && existsSync(join(root, 'tsconfig.json'))) {
  log('source checkout: `npm run build` (the prepare script) builds the addon');
} else {
  const fromSource = /^(1|true)$/i.test(process.env.npm_config_build_from_source ?? '');
  const pre = fromSource ? { ok: false, what: 'npm_config_build_from_source is set' } : tryLoad(true);
  if (pre.ok) {
    log(`using the prebuilt addon ${pre.what}`);
  } else {
    log(`no usable prebuilt addon for ${process.platform}-${process.arch} (${pre.what}); building the CPU addon from source with node-gyp`);
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
      cwd: root, stdio: 'inherit', env: { ...process.env, IRCONSTYLE_BUILD: 'node-gyp' },
    });
    const built = r.status === 0 ? tryLoad(false) : { ok: false, what: `node-gyp exited with ${r.status ?? r.signal}` };
    if (!built.ok) {
      console.error(`[irconstyle] the source build failed (${built.what}). It needs a C++17 compiler, make and Python 3 ` +
        '(node-gyp); see https://github.com/nodejs/node-gyp#installation');
      process.exitCode = 1;
    } else log(`built ${built.what}`);
  }
}
