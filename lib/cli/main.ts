#!/usr/bin/env node
// The `irconstyle` command.
import { backend, backendInfo } from '../native/backend.js';
import { printParity } from '../parity/print.js';
import { isIrcError } from '../errors.js';
import { listModels, parameterCounts } from '../models/catalog.js';

const USAGE = `usage: irconstyle <command>
  backend                      which backend runs the ops and why (e.g. "cpu (no NVIDIA driver)")
  models                       the named model configurations with their parameter counts
  parity <fixture>... [--verbose]  compare golden fixtures (official PyTorch numbers) with this engine`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'backend': {
      const b = backendInfo();
      console.log(backend());
      console.log(`threads ${b.threads}, SIMD ${b.simd}, CUDA compiled ${b.cuda.compiled}, devices ${b.cuda.devices}`);
      console.log(`addon ${b.addon}`);
      return 0;
    }
    case 'models': {
      console.log(`${'name'.padEnd(26)}${'class'.padEnd(20)}${'size'.padEnd(7)}${'inference'.padStart(13)}${'training'.padStart(13)}`);
      for (const m of listModels()) {
        let counts: string;
        try {
          const c = parameterCounts(m.name);
          counts = `${c.inference.toLocaleString('en-US').padStart(13)}${c.training.toLocaleString('en-US').padStart(13)}`;
        } catch (e) {
          counts = `  (${isIrcError(e) ? e.message : String(e)})`;
        }
        console.log(`${m.name.padEnd(26)}${m.model.padEnd(20)}${m.size.padEnd(7)}${counts}`);
      }
      return 0;
    }
    case 'parity': {
      const files = rest.filter((a) => !a.startsWith('--'));
      if (!files.length) {
        console.error(USAGE);
        return 2;
      }
      return (await printParity(files, rest.includes('--verbose'))) ? 1 : 0;
    }
    default:
      console.error(cmd ? `unknown command '${cmd}'\n${USAGE}` : USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(isIrcError(e) ? `${e.code}: ${e.message}` : e);
    process.exitCode = 1;
  },
);
