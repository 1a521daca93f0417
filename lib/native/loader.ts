// The only import of the compiled addon. Finds build/Release or prebuilds/ through node-gyp-build.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { IrcError } from '../errors.js';
import { packageRoot } from '../package-root.js';

export { packageRoot };

export interface NativeInfo {
  /** ops: the ops that have a CUDA kernel in this build. */
  cuda: { compiled: boolean; devices: number; name: string; error: string; ops: string[] };
  threads: number;
  simd: 'avx512' | 'avx2' | 'scalar';
  /** GEMM micro-kernel in use. */
  gemm: string;
  ops: string[];
}
export interface NativeMemoryStats {
  tensors: number;
  storages: number;
  bytes: number;
  cachedBytes: number;
  peakBytes: number;
  /** Live CUDA device memory held by tensors. */
  cudaBytes: number;
  /** CUDA device memory reserved by recorded graphs (captureForward, the trainer's graph mode). */
  cudaGraphBytes: number;
  /** CUDA device memory held by the ops' scratch buffers (kernel temporaries and library workspaces; they grow to the
   * largest request and are reused). */
  cudaScratchBytes: number;
}
export interface NativeBinding {
  /** device: 0 cpu (default), 1 cuda. */
  fromData(data: Float32Array | Int32Array, shape: readonly number[], device?: number): number;
  /** Flat result: for each output its handle, dtype (0 f32, 1 i32), rank, dims. `device` only matters for ops
   * without inputs (outputs live on the inputs' device otherwise). */
  run(opId: number, inputs: number[], attrs: number[], device?: number): number[];
  /** A copy on another device, ordered after the work that writes the source. */
  to(id: number, device: number): number;
  deviceOf(id: number): number;
  /** Initialises CUDA; "" when usable, otherwise why not. */
  cudaInit(): string;
  /** One line per GPU library (cuBLAS, cuDNN): version and path, or why it is unavailable. Loads them. */
  gpuLibs(): string;
  view(id: number, offset: number, shape: readonly number[]): number;
  read(id: number): Promise<ArrayBuffer>;
  sync(device?: number): Promise<void>;
  dispose(id: number): boolean;
  /** Whether no other tensor (a view) shares tensor id's storage. */
  soleView(id: number): boolean;
  memoryStats(): NativeMemoryStats;
  info(): NativeInfo;
  /** Releases cached CPU blocks and resets peakBytes to the live bytes. */
  trim(): void;
  /** Submissions per op id since load (used by the test-coverage check). */
  opCounts(): number[];
  /** profile(on) starts (resetting) or stops kernel timing; profile() returns the per-op totals (kernel ms, host
   * submission ms) and a '(dispose)' row with the host time spent releasing tensors. */
  profile(on?: boolean, byShape?: boolean, exact?: boolean): { op: string; ms: number; calls: number; hostMs: number }[] | undefined;
  /** Whether kernel timing is on (a graph cannot be captured then). */
  profiling(): boolean;
  /** Kernel time split by op and shapes of the last profile(true, true): op is "name [in0 shape] -> [out0 shape]". */
  profileShapes(): { op: string; ms: number; calls: number }[];
  /** Sets (null: clears) a kernel switch where the environment leaves it unset; the environment always wins. */
  setSwitch(name: string, value: string | null): void;
  /** Opens a graph capture on device (0 cpu, 1 cuda); see native/src/core/executor.h for the rules. */
  captureBegin(device: number): void;
  /** Closes it: keep → the CUDA graph (null on the CPU) or throws E_CAPTURE; !keep → discards it, null. */
  captureEnd(keep: boolean): unknown;
  /** CPU captures: ends the rules without waiting, so that the executor can be awaited before captureEnd. */
  captureSeal(): void;
  /** Enqueues one replay of a graph from captureEnd. */
  graphLaunch(graph: unknown): void;
  /** Frees a graph now (a replay in flight completes). */
  graphDestroy(graph: unknown): void;
  /** Measured FMA peak of the CPU thread pool, GFLOP/s. */
  fmaPeak(): Promise<number>;
}

function load(): { binding: NativeBinding; path: string } {
  const require = createRequire(import.meta.url);
  const root = packageRoot();
  const errors: string[] = [];
  const tryPath = (path: string) => {
    try {
      return { binding: require(path) as NativeBinding, path };
    } catch (e) {
      errors.push((e as Error).message);
      return null;
    }
  };
  // IRCONSTYLE_ADDON=<file>: exactly that build of the addon (e.g. the CUDA emulator's, build-emu/Release/irconstyle.node)
  const forced = process.env.IRCONSTYLE_ADDON;
  if (forced) {
    const got = tryPath(resolve(forced));
    if (got) return got;
    throw new IrcError('E_INTERNAL', `irconstyle: IRCONSTYLE_ADDON=${forced} could not be loaded (${errors.join('; ')})`);
  }
  let found: string | null = null;
  try {
    // build/Release, else prebuilds/<platform>-<arch>/ (IRCONSTYLE_PREBUILD=<dir> overrides the folder)
    found = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(root);
  } catch (e) {
    errors.push((e as Error).message);
  }
  // Without node-gyp-build (e.g. a bare copy of the package), the local build directly (not when PREBUILDS_ONLY asks
  // for the prebuilt addon alone).
  const local = join(root, 'build', 'Release', 'irconstyle.node');
  const loaded = (found && tryPath(found)) || (found !== local && !process.env.PREBUILDS_ONLY && existsSync(local) && tryPath(local)) || null;
  if (loaded) return loaded;
  throw new IrcError(
    'E_INTERNAL',
    `irconstyle: the native addon could not be loaded from ${root} (${errors.join('; ')}). Build it from source with ` +
      `\`npm rebuild irconstyle --build-from-source\` (CPU; needs a C++17 compiler, make and Python 3), or in a clone of ` +
      'the repository with `npm run build:native`.',
  );
}

const loaded = load();
export const native: NativeBinding = loaded.binding;
/** The file the native addon was loaded from (build/Release for a source build, prebuilds/ for the shipped binary). */
export const addonPath: string = loaded.path;
