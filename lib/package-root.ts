// The folder of irconstyle's package.json, found by walking up from this module (works from lib/ under vitest
// and from dist/lib/ when compiled).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IrcError } from './errors.js';

let root: string | null = null;

export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'irconstyle') return (root = dir);
      } catch {
        /* an unreadable package.json: keep walking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new IrcError('E_IO', `cannot find the irconstyle package root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}
