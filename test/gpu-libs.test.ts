// Where cuBLAS, cuBLASLt and cuDNN are searched for, with stand-in libraries built here: no GPU or NVIDIA library
// needed. The stand-ins export every entry point the addon looks up (names read from its source) and need each other
// by soname as the real ones do (cuBLAS needs cuBLASLt; cuDNN needs its sub-libraries), in folders that neither an
// RPATH nor the system loader reaches: they load only if the addon loads what they need first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendInfo } from '../lib/native/backend.js';
import { packageRoot } from '../lib/package-root.js';

const SPECIAL: Record<string, string> = {
  cublasCreate_v2: 'int cublasCreate_v2(void** h) { *h = (void*)1; return 0; }',
  cublasGetVersion_v2: 'int cublasGetVersion_v2(void* h, int* v) { (void)h; *v = 130100; return 0; }',
  cublasLtCreate: 'int cublasLtCreate(void** h) { *h = (void*)1; return 0; }',
  cublasLtGetVersion: 'size_t cublasLtGetVersion(void) { return 130100; }',
  // (as the real one, it opens cuBLASLt and its runtime-compiled engines, which need NVRTC, by soname: here it only
  // asks whether they are loaded)
  cudnnCreate: '#include <dlfcn.h>\nint cudnnCreate(void** h) { *h = (void*)1; ' +
    'return dlopen("libcublasLt.so.13", RTLD_NOW | RTLD_NOLOAD) && ' +
    'dlopen("libcudnn_engines_runtime_compiled.so.9", RTLD_NOW | RTLD_NOLOAD) ? 0 : 4; }',
  cudnnGetVersion: 'size_t cudnnGetVersion(void) { return 91900; }',
  cudnnGetErrorString: 'const char* cudnnGetErrorString(int s) { (void)s; return ""; }',
};

let root = '';
let cu13 = '', cudnn = '', site = '';

function cc(dir: string, file: string, code: string, needs: string[] = []): void {
  const src = join(root, `${file}.c`);
  writeFileSync(src, `#include <stddef.h>\n${code}\n`);
  execFileSync(process.env.CC ?? 'cc', ['-shared', '-fPIC', '-o', join(dir, file), `-Wl,-soname,${file}`, src,
    '-Wl,--no-as-needed', ...needs.map((n) => join(dir, n)), '-ldl']);  // (each need recorded, used or not)
}

// Every entry point of one library that the addon looks up, as a C stub.
function stubs(lib: RegExp): string {
  const names = [...readFileSync(join(packageRoot(), 'native', 'src', 'cuda', 'gpu_libs.cpp'), 'utf8')
    .matchAll(/sym\(o\.lib, "(\w+)"/g)].map((m) => m[1]).filter((n) => lib.test(n));
  expect(names.length).toBeGreaterThan(5);
  return names.map((n) => SPECIAL[n] ?? `int ${n}(void) { return 0; }`).join('\n');
}

// gpuLibs() of the addon in a fresh process (the libraries are searched once per process) with env as given.
function report(env: Record<string, string | undefined>): string {
  const base = { ...process.env };
  for (const k of ['IRCONSTYLE_CUDA_LIBS', 'PYTHONPATH', 'VIRTUAL_ENV', 'CONDA_PREFIX']) delete base[k];
  const script = `process.stdout.write(require(${JSON.stringify(backendInfo().addon)}).gpuLibs())`;
  return execFileSync(process.execPath, ['-e', script], { env: { ...base, ...env } as NodeJS.ProcessEnv, encoding: 'utf8' });
}

const fromDir = (r: string, lib: string, dir: string) =>
  new RegExp(`^${lib} [\\d.]+ from ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/`, 'm').test(r);
// (a machine whose own CUDA libraries the system loader finds takes those first: the folder searches are not reached)
const systemLibs = () => /^(cuBLAS|cuBLASLt|cuDNN) \d/m.test(report({}));

describe('GPU library search (stand-in libraries)', () => {
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'irc-gpulibs-'));
    site = join(root, 'env', 'lib', 'python3.12', 'site-packages');
    cu13 = join(site, 'nvidia', 'cu13', 'lib');
    cudnn = join(site, 'nvidia', 'cudnn', 'lib');
    for (const d of [cu13, cudnn, join(root, 'env', 'bin'), join(root, 'bin')]) mkdirSync(d, { recursive: true });
    cc(cu13, 'libcublasLt.so.13', stubs(/^cublasLt/));
    cc(cu13, 'libcublas.so.13', stubs(/^cublas(?!Lt)/), ['libcublasLt.so.13']);
    cc(cu13, 'libnvrtc.so.13', 'int nvrtcVersion(int* a, int* b) { *a = 13; *b = 0; return 0; }');
    cc(cudnn, 'libcudnn_graph.so.9', 'int irc_graph(void) { return 1; }');
    cc(cudnn, 'libcudnn_ops.so.9', 'int irc_graph(void);\nint irc_ops(void) { return irc_graph(); }',
      ['libcudnn_graph.so.9']);
    cc(cudnn, 'libcudnn_engines_runtime_compiled.so.9', 'int irc_rc(void) { return 1; }',
      [join('..', '..', 'cu13', 'lib', 'libnvrtc.so.13')]);
    cc(cudnn, 'libcudnn.so.9', `int irc_ops(void);\nint irc_dnn(void) { return irc_ops(); }\n${stubs(/^cudnn/)}`,
      ['libcudnn_ops.so.9']);
    // an environment's interpreter, and a link to it elsewhere on PATH (as /usr/bin/python3 -> /opt/env/bin/python3)
    writeFileSync(join(root, 'env', 'bin', 'python3'), '#!/bin/sh\nexit 0\n');
    chmodSync(join(root, 'env', 'bin', 'python3'), 0o755);
    symlinkSync(join('..', 'env', 'bin', 'python3'), join(root, 'bin', 'python3'));
  });
  afterAll(() => { if (root) rmSync(root, { recursive: true, force: true }); });

  it('IRCONSTYLE_CUDA_LIBS names several folders; what a library needs is loaded first', () => {
    const r = report({ IRCONSTYLE_CUDA_LIBS: `${join(root, 'absent')}:${cu13}:${cudnn}` });
    expect(fromDir(r, 'cuBLAS', cu13)).toBe(true);
    expect(fromDir(r, 'cuBLASLt', cu13)).toBe(true);
    expect(fromDir(r, 'cuDNN', cudnn)).toBe(true);
    expect(r).toMatch(/^cuDNN 9\.19\.0 from /m);
  });

  it.skipIf(systemLibs())('finds the wheels of the Python environment on PATH, also through a link to its interpreter', () => {
    for (const bin of [join(root, 'env', 'bin'), join(root, 'bin')]) {
      const r = report({ PATH: `${bin}:/usr/bin:/bin` });
      expect(fromDir(r, 'cuBLAS', cu13), r).toBe(true);
      expect(fromDir(r, 'cuDNN', cudnn), r).toBe(true);
    }
  });

  it.skipIf(systemLibs())('finds the wheels under PYTHONPATH and in a conda install in HOME; says where it searched otherwise', () => {
    const r = report({ PYTHONPATH: site, PATH: '/usr/bin:/bin' });
    expect(fromDir(r, 'cuDNN', cudnn), r).toBe(true);
    mkdirSync(join(root, 'home'));
    symlinkSync(join(root, 'env'), join(root, 'home', 'miniforge3'));
    const conda = report({ HOME: join(root, 'home'), PATH: '/usr/bin:/bin' });
    expect(fromDir(conda, 'cuBLAS', cu13), conda).toBe(true);
    const none = report({ PATH: '/usr/bin:/bin' });
    expect(none).toMatch(/^cuDNN not found \(searched system loader, /m);
    expect(none).not.toContain(root);
  });
});
