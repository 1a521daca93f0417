// scripts/ncu-summary.mjs on an export in the layout of `ncu --import r.ncu-rep --page details --csv`: quoted fields
// with commas, thousands separators, units per metric, a metric name that two sections share with other units.
import { describe, expect, it } from 'vitest';

interface Kernel { id: string; kernel: string; grid: string; block: string; m: Record<string, number> }
const { parseCsv, shortName, summarizeNcuCsv } = (await import('../scripts/ncu-summary.mjs' as string)) as {
  parseCsv(text: string): string[][];
  shortName(name: string): string;
  summarizeNcuCsv(text: string): { kernels: Kernel[]; table: string[] };
};

const HEAD = '"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"';
const K1 = 'void irc::(anonymous namespace)::pw_simt_k<(irc::pwsimt::Mode)3, 6>(irc::pwsimt::Args)';
const K2 = 'void irc::(anonymous namespace)::slide3_bwd_batch_k<float2>(irc::Slide, const float2 *, const float2 *)';
const row = (id: number, k: string, sec: string, name: string, unit: string, v: string) =>
  `"${id}","4242","node","h","${k}","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","${sec}","${name}","${unit}","${v}"`;
const CSV = [
  '==PROF== Disconnected from process 4242',
  HEAD,
  row(0, K1, 'Memory Workload Analysis', 'Memory Throughput', 'Gbyte/second', '2,058.11'),
  row(0, K1, 'GPU Speed Of Light Throughput', 'DRAM Throughput', '%', '61.52'),
  row(0, K1, 'GPU Speed Of Light Throughput', 'Duration', 'usecond', '1,204.38'),
  row(0, K1, 'GPU Speed Of Light Throughput', 'Memory Throughput', '%', '63.10'),
  row(0, K1, 'GPU Speed Of Light Throughput', 'Compute (SM) Throughput', '%', '48.75'),
  row(0, K1, 'Memory Workload Analysis', 'L1/TEX Hit Rate', '%', '12.5'),
  row(0, K1, 'Occupancy', 'Achieved Occupancy', '%', '24.9'),
  row(0, K1, 'Occupancy', 'Registers Per Thread', 'register/thread', '128'),
  row(0, K1, 'Warp State Statistics', 'Warp Cycles Per Issued Instruction', 'cycle', '9.41'),
  row(1, K2, 'GPU Speed Of Light Throughput', 'Duration', 'msecond', '0.21'),
  row(1, K2, 'GPU Speed Of Light Throughput', 'DRAM Throughput', '%', '80.0'),
  row(1, K2, 'Occupancy', 'Achieved Occupancy', '%', 'n/a'),
].join('\r\n') + '\r\n';

describe('ncu-summary', () => {
  it('parses quoted CSV fields with commas, doubled quotes and line breaks', () => {
    expect(parseCsv('a,"b, c","d ""e"""\n"f\ng",h\n')).toEqual([['a', 'b, c', 'd "e"'], ['f\ng', 'h']]);
  });

  it('names a kernel without its namespaces and parameters, keeping its template arguments', () => {
    expect(shortName(K1)).toBe('pw_simt_k<(irc::pwsimt::Mode)3, 6>');
    expect(shortName('dwgate_dz_k')).toBe('dwgate_dz_k');
  });

  it('gives each kernel its time in µs and the speed-of-light percentages, not the same-named GB/s', () => {
    const { kernels, table } = summarizeNcuCsv(CSV);
    expect(kernels.map((k) => k.id)).toEqual(['0', '1']);
    expect(kernels[0].m).toEqual({ 'µs': 1204.38, 'DRAM%': 61.52, 'mem%': 63.1, 'SM%': 48.75, 'L1hit%': 12.5,
      'occ%': 24.9, regs: 128, 'cyc/iss': 9.41 });
    expect(kernels[1].m['µs']).toBeCloseTo(210, 9);
    expect(kernels[1].m['occ%']).toBeUndefined();  // (a value that is not a number is left out)
    expect(table[0]).toMatch(/^kernel\s+grid x block\s+µs\s+DRAM%\s+mem%\s+SM%\s+occ%\s+regs\s+cyc\/iss\s+L1hit%$/);
    expect(table[1]).toMatch(/^pw_simt_k<\(irc::pwsimt::Mode\)3, 6> +264,1,1 x 256,1,1 +1204\.4 +61\.5 +63\.1 +48\.8 +24\.9 +128 +9\.41 +12\.5$/);
    expect(table[2]).toMatch(/^slide3_bwd_batch_k<float2> .* 210\.0 +80\.0 +- +- +- +- +- +-$/);
  });

  it('says what it expected when the file is not a details export', () => {
    expect(() => summarizeNcuCsv('"ID","Kernel Name"\n"0","k"\n')).toThrow(/Metric Name.*--page details --csv/);
  });
});
