import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { IrcError } from '../errors.js';

let beforeRenameHook: ((tmpPath: string) => void) | null = null;
/**
 * Test hook (not public API): when set, `fn` runs after the temp file is written and synced, just before
 * the rename; throwing from it simulates a crash/failure at that point. Pass null to clear.
 */
export function __setBeforeRenameHook(fn: ((tmpPath: string) => void) | null): void {
  beforeRenameHook = fn;
}

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Write `data` to `filePath` atomically: the bytes go to a temp file in the same directory, which is
 * fsync'ed and renamed over the target; then the directory is fsync'ed. On any failure the old file
 * (if any) is left untouched and the temp file is removed. Throws IrcError('E_IO').
 */
export function writeFileAtomic(filePath: string, data: Uint8Array | string): void {
  const abs = path.resolve(filePath);
  const dir = path.dirname(abs);
  const tmp = path.join(dir, `.${path.basename(abs)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx', 0o644);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.byteLength) {
      off += fs.writeSync(fd, buf, off, buf.byteLength - off);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    if (beforeRenameHook) beforeRenameHook(tmp);
    fs.renameSync(tmp, abs);
  } catch (e) {
    if (fd !== null) {
      try { fs.closeSync(fd); } catch { /* ignore */ }
    }
    try { fs.rmSync(tmp, { force: true }); } catch { /* ignore */ }
    if (e instanceof IrcError) throw e;
    throw new IrcError('E_IO', `writeFileAtomic: could not write '${abs}': ${errMsg(e)}`, { cause: e });
  }
  // Make the rename durable. Some platforms/filesystems do not allow fsync on a directory; ignore that.
  try {
    const dfd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* best effort */ }
}

/** Read a whole file, mapping errors to IrcError('E_IO'). */
export function readFileBytes(filePath: string): Uint8Array {
  try {
    const b = fs.readFileSync(filePath);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (e) {
    throw new IrcError('E_IO', `could not read '${filePath}': ${errMsg(e)}`, { cause: e });
  }
}
