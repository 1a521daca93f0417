// Prints the C++ sources of the CPU backend (one per line), for binding.gyp. CMakeLists.txt globs the same folders.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
const dirs = ['core', 'cpu', 'ops', 'cuda', 'binding'];
const files = dirs.flatMap((d) =>
  readdirSync(join('native/src', d)).filter((f) => f.endsWith('.cpp')).sort().map((f) => `native/src/${d}/${f}`));
process.stdout.write(files.join('\n') + '\n');
