// The device check's process plumbing (scripts/device-check.mjs, scripts/device-session.sh): its workers run in child
// processes restarted after crashes, hangs and poisoned CUDA contexts, and the GPU machine's cuBLAS / cuDNN are named
// where its PyTorch keeps them.
//   node scripts/device-run.mjs --wheel-libs   prints those folders, ':'-separated (nothing without such a python3)
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Runs `node script mode ...` from item `from`, restarting after crashes, hangs (no line for `stallS`) and poisoned
 * contexts, until every item has a result or `deadline` passes. Returns results by index. A worker prints one line
 * `@@<json>` per item ({ i, ... }), then `@@{"done":true}`, or `@@{"stopped":i}` when its time is up; any other line
 * goes to `log` as it is, with its stderr. Exit code 3: the failing item reported itself, then the context was found
 * unusable.
 */
export async function runChildWorkers({ script, cwd, mode, extra = [], env, n, deadline, stallS, log, label, wrap = [] }) {
  const results = new Map();
  let from = 0, empty = 0;
  const note = (i, error) => { if (i < n && !results.has(i)) results.set(i, { i, ok: false, error }); };
  while (from < n) {
    if (Date.now() > deadline - 2000) break;
    const argv = [...wrap, process.execPath, script, mode, '--from', String(from), '--deadline', String(deadline), ...extra];
    const child = spawn(argv[0], argv.slice(1), {
      cwd, env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '', last = from - 1, done = false, stopped = null, killedFor = null, tail = '';
    let stall = null;
    const arm = () => {
      clearTimeout(stall);
      stall = setTimeout(() => { killedFor = `no progress for ${stallS} s (hang?)`; child.kill('SIGKILL'); }, stallS * 1000);
    };
    arm();
    const hard = setTimeout(() => { killedFor = 'time budget'; child.kill('SIGKILL'); }, Math.max(1000, deadline + 15000 - Date.now()));
    child.stdout.on('data', (d) => {
      buf += d;
      let k;
      while ((k = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, k);
        buf = buf.slice(k + 1);
        if (!line.startsWith('@@')) { appendFileSync(log, line + '\n'); continue; }
        const o = JSON.parse(line.slice(2));
        arm();
        if (o.done) done = true;
        else if (o.stopped !== undefined) stopped = o.stopped;
        else {
          results.set(o.i, o);
          last = Math.max(last, o.i);
          appendFileSync(log, line.slice(2) + '\n');
          if (label) label(o);
        }
      }
    });
    child.stderr.on('data', (d) => { appendFileSync(log, String(d)); tail = (tail + d).slice(-1500); });
    const [code, sig] = await new Promise((res) => {
      // a command that cannot start (a missing DEVICE_CHECK_SANITIZER) emits 'error', maybe without 'close'
      child.on('error', (e) => { tail += `\n${e.message}`; res([null, null]); });
      child.on('close', (c, s) => res([c, s]));
    });
    clearTimeout(stall);
    clearTimeout(hard);
    if (done) break;
    if (stopped !== null) { for (let i = stopped; i < n; i++) note(i, 'not run: time budget'); break; }
    const why = killedFor ?? `worker exited (code ${code}, signal ${sig})${tail ? `: ${tail.trim().split('\n').slice(-3).join(' | ')}` : ''}`;
    appendFileSync(log, `--- worker stopped after item ${last}: ${why}\n`);
    if (killedFor === 'time budget') { for (let i = last + 1; i < n; i++) note(i, 'not run: time budget'); break; }
    if (last < from) empty++; else empty = 0;
    if (empty >= 2) { for (let i = from; i < n; i++) note(i, `worker fails to start: ${why}`); break; }
    if (code === 3) from = last + 1; // the failing item reported itself, then the context was found unusable
    else { note(last + 1, why); from = last + 2; }
  }
  for (let i = 0; i < n; i++) note(i, 'not run: time budget');
  return [...results.values()].sort((a, b) => a.i - b.i);
}

// The folders of the nvidia-* wheels of the python3 on PATH (the GPU machine's PyTorch environment), or [].
export function pythonWheelLibs() {
  const code = 'import os, nvidia\nfor p in nvidia.__path__:\n for s in sorted(os.listdir(p)):\n  d = os.path.join(p, s, "lib")\n  if os.path.isdir(d): print(d)';
  const r = spawnSync('python3', ['-c', code], { encoding: 'utf8', timeout: 30000 });
  return r.status === 0 ? r.stdout.split('\n').filter(Boolean) : [];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv.includes('--wheel-libs'))
  console.log(pythonWheelLibs().join(':'));
