// scripts/cuda-emu-source.mjs: the only rewrite a kernel file gets for the CUDA emulator build (native/emu). The
// emulator's own behaviour is checked by `npm run check:emu` (its self-test program and the device check).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const { emuSource } = (await import('../scripts/cuda-emu-source.mjs' as string)) as {
  emuSource(text: string, file: string): string;
};
const L = '->* ::irc_emu::Launch(__FILE__, __LINE__, ';

describe('cuda-emu-source', () => {
  it('rewrites launches, keeping the kernel expression, the arguments and the line count', () => {
    const src = [
      'k<float, 4><<<grid, 256, 0, s>>>(a, b);',
      '(v4 ? k1<4> : k1<1>)<<<cu::blocks_for(n),',
      '    kThreads, sm, st>>>(x,',
      '    y);',
      '#define LAUNCH(K) K<<<g_, kThreads, 0, s>>>(__VA_ARGS__);   \\',
      'IRC_NV_SWITCH(nv, ln_fwd_sub, <<<grid, kThreads, 0, s>>>(x4, rows))',
      'if (a << 2 > b >> 1) f<<<1, 32>>>(p);',
    ].join('\n');
    const out = emuSource(src, '/x/k.cu');
    const lines = out.split('\n');
    expect(lines[0]).toBe('#line 1 "/x/k.cu"');
    expect(lines.length).toBe(src.split('\n').length + 1);
    expect(lines[1]).toBe(`k<float, 4>${L}grid, 256, 0, s)(a, b);`);
    expect(lines[2]).toBe(`(v4 ? k1<4> : k1<1>)${L}cu::blocks_for(n),`);
    expect(lines[3]).toBe('    kThreads, sm, st)(x,');
    expect(lines[5]).toBe(`#define LAUNCH(K) K${L}g_, kThreads, 0, s)(__VA_ARGS__);   \\`);
    expect(lines[6]).toBe(`IRC_NV_SWITCH(nv, ln_fwd_sub, ${L}grid, kThreads, 0, s)(x4, rows))`);
    expect(lines[7]).toBe(`if (a << 2 > b >> 1) f${L}1, 32)(p);`);
  });

  it('turns extern __shared__ arrays into the launch\'s dynamic shared memory', () => {
    const out = emuSource('  extern __shared__ float4 smem4[];\n  extern  __shared__ __align__(16) float ws [ ];', 'f');
    expect(out.split('\n')).toEqual([
      '#line 1 "f"',
      '  float4* smem4 = ::irc_emu::dyn_smem_as<float4>();',
      '  float* ws = ::irc_emu::dyn_smem_as<float>();',
    ]);
  });

  it('refuses a launch whose <<< has no >>> before the next launch', () => {
    expect(() => emuSource('a\nk<<<1, 2(x);\nj<<<1, 2>>>(y);', 'bad.cu')).toThrow(/bad\.cu:2: .*no matching >>>/);
    expect(() => emuSource('k<<<1, 2', 'end.cu')).toThrow(/end\.cu:1/);
  });

  it('leaves no launch syntax in any kernel file of the project', () => {
    for (const dir of ['native/src/ops', 'native/src/cuda']) {
      for (const f of readdirSync(dir).filter((n) => /\.(cu|cuh)$/.test(n))) {
        const out = emuSource(readFileSync(join(dir, f), 'utf8'), f);
        expect(out.includes('<<<') || out.includes('>>>'), f).toBe(false);
        expect(/extern\s+__shared__/.test(out), f).toBe(false);
      }
    }
  });
});
