// The CUDA emulator build (IRCONSTYLE_CUDA=EMU; native/emu/cuda_runtime.h): rewrites a kernel file into C++ that
// a host compiler takes, changing only what C++ cannot spell:
//   k<<<grid, block, smem, stream>>>(args)  ->  k ->* ::irc_emu::Launch(__FILE__, __LINE__, grid, block, ...)(args)
//   extern __shared__ T name[];            ->  T* name = ::irc_emu::dyn_smem_as<T>();
// Line numbers are kept (each rewrite stays on its lines), and a #line directive names the original file.
//   node scripts/cuda-emu-source.mjs <in.cu|in.cuh> <out.cpp>
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** The rewritten text of a kernel file's source (`file` is named in the #line directive). */
export function emuSource(text, file) {
  let out = '';
  let at = 0;
  for (;;) {
    const open = text.indexOf('<<<', at);
    if (open < 0) break;
    const close = text.indexOf('>>>', open + 3);
    const nested = text.indexOf('<<<', open + 3);
    if (close < 0 || (nested >= 0 && nested < close)) {
      const line = text.slice(0, open).split('\n').length;
      throw new Error(`${file}:${line}: a kernel launch's <<< has no matching >>>`);
    }
    out += text.slice(at, open) + '->* ::irc_emu::Launch(__FILE__, __LINE__, ' + text.slice(open + 3, close) + ')';
    at = close + 3;
  }
  out += text.slice(at);
  out = out.replace(
    /extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([\w:]+)\s+(\w+)\s*\[\s*\]\s*;/g,
    (_, type, name) => `${type}* ${name} = ::irc_emu::dyn_smem_as<${type}>();`,
  );
  return `#line 1 "${file}"\n${out}`;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) {
    console.error('usage: node scripts/cuda-emu-source.mjs <in.cu> <out.cpp>');
    process.exit(2);
  }
  mkdirSync(dirname(output), { recursive: true });
  const tmp = `${output}.${process.pid}.tmp`;
  writeFileSync(tmp, emuSource(readFileSync(input, 'utf8'), resolve(input)));
  renameSync(tmp, output);
}
