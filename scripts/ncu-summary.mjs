#!/usr/bin/env node
// One line per profiled kernel from Nsight Compute's CSV export (`ncu --import r.ncu-rep --page details --csv`):
// time, the speed-of-light throughputs, occupancy, registers, cycles per issued instruction and cache hit rates,
// whichever of them the profiled sections hold. scripts/device-session.sh prints it after profiling the newest
// kernels, so the call's reply says where each one stands without reading the full report.
//   node scripts/ncu-summary.mjs <details.csv>
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** RFC 4180 rows: quoted fields may hold commas, quotes (doubled) and newlines. */
export function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

// [column, metric name, unit wanted (undefined: any)]; a name two sections share with other units (Memory Throughput:
// % in the speed-of-light section, bytes per second in the memory workload one) is told apart by its unit
const COLUMNS = [
  ['µs', 'Duration'],
  ['DRAM%', 'DRAM Throughput', '%'],
  ['mem%', 'Memory Throughput', '%'],
  ['SM%', 'Compute (SM) Throughput', '%'],
  ['occ%', 'Achieved Occupancy', '%'],
  ['th.occ%', 'Theoretical Occupancy', '%'],
  ['regs', 'Registers Per Thread'],
  ['cyc/iss', 'Warp Cycles Per Issued Instruction'],
  ['L1hit%', 'L1/TEX Hit Rate', '%'],
  ['L2hit%', 'L2 Hit Rate', '%'],
];
const TO_US = { ns: 1e-3, nsecond: 1e-3, us: 1, usecond: 1, 'µs': 1, ms: 1e3, msecond: 1e3, s: 1e6, second: 1e6 };

const num = (v) => Number(String(v).replace(/,/g, ''));
/** The kernel's name without its parameter list ("k<3, 6>(Args)" -> "k<3, 6>"), namespaces dropped. */
export function shortName(full) {
  const name = full.replace(/\(anonymous namespace\)::/g, '');
  let depth = 0, end = name.length;
  for (let i = 0; i < name.length; i++) {
    if (name[i] === '<') depth++;
    else if (name[i] === '>') depth--;
    else if (name[i] === '(' && depth === 0) { end = i; break; }
  }
  const base = name.slice(0, end).replace(/^void\s+/, '');
  const lt = base.indexOf('<');
  const head = lt < 0 ? base : base.slice(0, lt);
  const cut = head.lastIndexOf('::');
  return head.slice(cut < 0 ? 0 : cut + 2) + (lt < 0 ? '' : base.slice(lt));
}

/** Kernels in profiling order, each with the wanted metrics found; and the table lines. */
export function summarizeNcuCsv(text) {
  const rows = parseCsv(text);
  const h = rows.findIndex((r) => r.includes('Metric Name') && r.includes('Kernel Name'));
  if (h < 0) throw new Error('ncu-summary: no header with "Kernel Name" and "Metric Name" (expected `ncu --page details --csv`)');
  const col = Object.fromEntries(rows[h].map((name, i) => [name, i]));
  for (const need of ['ID', 'Kernel Name', 'Metric Name', 'Metric Value'])
    if (col[need] === undefined) throw new Error(`ncu-summary: the CSV has no "${need}" column`);
  const kernels = new Map();
  for (const r of rows.slice(h + 1)) {
    const id = r[col.ID];
    if (id === undefined || r.length < rows[h].length) continue;
    let k = kernels.get(id);
    if (!k) kernels.set(id, (k = { id, kernel: r[col['Kernel Name']], grid: r[col['Grid Size']] ?? '', block: r[col['Block Size']] ?? '', m: {} }));
    const name = r[col['Metric Name']], unit = r[col['Metric Unit']] ?? '', v = r[col['Metric Value']];
    for (const [key, metric, wantUnit] of COLUMNS) {
      if (name !== metric || (wantUnit && unit !== wantUnit) || k.m[key] !== undefined) continue;
      const x = num(v);
      if (!Number.isFinite(x)) continue;
      k.m[key] = key === 'µs' ? x * (TO_US[unit] ?? NaN) : x;
    }
  }
  const list = [...kernels.values()];
  const used = COLUMNS.map(([key]) => key).filter((key) => list.some((k) => k.m[key] !== undefined));
  const names = list.map((k) => shortName(k.kernel));
  const w = Math.min(60, Math.max(6, ...names.map((n) => n.length)));
  const fmt = (key, x) => (x === undefined || Number.isNaN(x) ? '-' : key === 'regs' ? String(x) : x.toFixed(key === 'cyc/iss' ? 2 : 1));
  const table = [`${'kernel'.padEnd(w)} ${'grid x block'.padEnd(22)} ${used.map((u) => u.padStart(7)).join(' ')}`];
  list.forEach((k, i) => {
    const gb = `${k.grid.replace(/[() ]/g, '')} x ${k.block.replace(/[() ]/g, '')}`;
    table.push(`${names[i].slice(0, w).padEnd(w)} ${gb.slice(0, 22).padEnd(22)} ${used.map((u) => fmt(u, k.m[u]).padStart(7)).join(' ')}`);
  });
  return { kernels: list, table };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node scripts/ncu-summary.mjs <details.csv>   (from `ncu --import r.ncu-rep --page details --csv`)');
    process.exitCode = 2;
  } else {
    try {
      const { kernels, table } = summarizeNcuCsv(readFileSync(file, 'utf8'));
      console.log(`ncu: ${kernels.length} kernel reports`);
      for (const l of table) console.log(`  ${l}`);
    } catch (e) {
      console.error(String(e?.message ?? e));
      process.exitCode = 1;
    }
  }
}
