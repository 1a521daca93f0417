// npm run pack:check [-- --source]
//
// What a user gets from `npm install irconstyle`: packs this tree as npm would publish it (the built dist/ and the
// prebuilt addon of `npm run build:prebuilt`), installs the tarball into an empty project with production
// dependencies only (no compiler tools needed, no cmake-js), and checks there that
//   - the install script took the prebuilt addon (no source build: no build/ folder in the installed package),
//   - the package imports, `backend()` gives its one-line reason and the addon is the one in prebuilds/,
//   - a ConStyle NAFNet forward and a training step give the same numbers as this checkout's own build,
//   - the `irconstyle` command runs.
// --source also installs the tarball with --build-from-source: the install script builds the CPU addon with npm's
// node-gyp (what happens on a platform without a prebuild), and the same checks run against build/Release.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tuple = `${process.platform}-${process.arch}`;
const work = mkdtempSync(join(tmpdir(), 'irconstyle-pack-'));
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};

function run(cmd, args, cwd, extraEnv = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...extraEnv }, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited with ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout + r.stderr;
}

// The same computation in the checkout and in the installed package: printed as JSON.
const PROBE = `
import { backend, backendInfo, constyleNAFNet, IRConStyleTrainer, denoiseBatch, listPhotos, loadPhoto, Rng, setInitSeed, tensor, noGrad, tidy } from 'irconstyle';
setInitSeed(7);
const model = constyleNAFNet({ dim: 8, left: [1, 1, 1], bottom: 1, right: [1, 1, 1], K: 64 });
const img = tensor(new Float32Array(32 * 32 * 3).map((_, i) => 0.5 + 0.4 * Math.sin(i)), [1, 32, 32, 3]);
model.eval();
const out = noGrad(() => tidy(() => model.forward(img)));
const y = await out.data();
model.train();
const trainer = new IRConStyleTrainer(model, { lr: 3e-4 });
const { lq, gt } = denoiseBatch(listPhotos().slice(0, 4).map(loadPhoto), { batch: 2, patch: 32, sigma: 25, rng: new Rng(1) });
const losses = await trainer.step(lq, gt);
console.log(JSON.stringify({ backend: backend(), addon: backendInfo().addon, photos: listPhotos().length,
  out: Array.from(y.slice(0, 4)), outSum: y.reduce((a, b) => a + b, 0), losses }));
`;

function probe(cwd) {
  const file = join(cwd, 'probe.mjs');
  writeFileSync(file, PROBE);
  try {
    const text = run(process.execPath, [file], cwd);
    return JSON.parse(text.trim().split('\n').pop());
  } finally {
    rmSync(file, { force: true });
  }
}

function compare(got, want, label) {
  const close = (a, b) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));
  const outOk = got.out.every((v, i) => close(v, want.out[i])) && close(got.outSum, want.outSum);
  check(outOk, `${label}: the forward equals the checkout's (sum ${got.outSum.toFixed(6)} vs ${want.outSum.toFixed(6)})`);
  const keys = Object.keys(want.losses);
  const lossOk = keys.length > 0 && keys.every((k) => close(got.losses[k], want.losses[k]));
  check(lossOk, `${label}: the training step's losses equal the checkout's (${keys.map((k) => `${k} ${Number(got.losses[k]).toFixed(5)}`).join(', ')})`);
  check(got.photos === want.photos, `${label}: the shipped photos are there (${got.photos})`);
}

function installInto(name, tarball, flags) {
  const app = join(work, name);
  run('mkdir', ['-p', app], work);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: `irconstyle-${name}`, private: true, type: 'module' }));
  const t0 = performance.now();
  const log = run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts', ...flags, tarball], app);
  console.log(`     npm install ${flags.join(' ')} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { app, log, pkg: join(app, 'node_modules', 'irconstyle') };
}

try {
  const prebuilt = join(root, 'prebuilds', tuple);
  if (!existsSync(prebuilt) || !readdirSync(prebuilt).some((f) => f.endsWith('.node')))
    throw new Error(`no prebuilt addon in ${prebuilt}: run \`npm run build:prebuilt\` first`);
  const want = probe(root);
  console.log(`checkout: ${want.backend}; forward sum ${want.outSum.toFixed(6)}`);

  const packed = JSON.parse(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root));
  const tarball = join(work, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  console.log(`     ${packed[0].filename}: ${(packed[0].size / 2 ** 20).toFixed(1)} MiB packed, ${files.length} files`);
  check(files.some((f) => f.startsWith(`prebuilds/${tuple}/`)), `the tarball carries prebuilds/${tuple}/`);
  check(!files.some((f) => /^(build|build-prebuild|node_modules|test|lib)\//.test(f)), 'the tarball carries no build folders, tests or TS sources');

  const a = installInto('prebuilt', tarball, []);
  check(/using the prebuilt addon/.test(a.log), 'the install script took the prebuilt addon');
  check(!existsSync(join(a.pkg, 'build')), 'nothing was compiled during the install');
  const got = probe(a.app);
  check(got.addon.startsWith(join(a.pkg, 'prebuilds', tuple)), `the prebuilt addon runs: ${got.addon}`);
  check(/^(cpu|cuda) \(.+\)$/.test(got.backend), `backend(): ${got.backend}`);
  compare(got, want, 'prebuilt');
  const cli = run(join(a.app, 'node_modules', '.bin', 'irconstyle'), ['backend'], a.app);
  check(/^(cpu|cuda) \(/.test(cli) && cli.includes(`addon ${join(a.pkg, 'prebuilds')}`), `\`irconstyle backend\` runs: ${cli.split('\n')[0]}`);

  if (process.argv.includes('--source')) {
    const s = installInto('source', tarball, ['--build-from-source']);
    check(/building the CPU addon from source/.test(s.log) && /\[irconstyle\] built /.test(s.log), 'with --build-from-source the install script built the addon with node-gyp');
    const src = probe(s.app);
    check(src.addon === join(s.pkg, 'build', 'Release', 'irconstyle.node'), `the source build runs: ${src.addon}`);
    compare(src, want, 'source build');
  }
} catch (e) {
  check(false, e instanceof Error ? e.message : String(e));
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(failures.length ? `\npack check: ${failures.length} failed` : '\npack check: all passed');
process.exitCode = failures.length ? 1 : 0;
