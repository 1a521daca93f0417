// Model checkpoints as safetensors with the official PyTorch state-dict names and layouts (float32),
// written atomically; metadata carries a format tag and whatever the caller adds (config, iteration).
import { IrcError } from '../errors.js';
import type { Module, StateDict } from '../nn/module.js';
import { loadSafetensors, saveSafetensors, toFloat32, type StWriteEntry } from './safetensors.js';

export async function saveCheckpoint(path: string, model: Module, metadata: Record<string, string> = {}): Promise<void> {
  const sd = await model.stateDict();
  const entries: Record<string, StWriteEntry> = {};
  for (const [k, v] of sd) entries[k] = { dtype: 'F32', shape: v.shape, data: v.data };
  saveSafetensors(path, entries, { format: 'irconstyle-state-dict', ...metadata });
}

/** Loads a checkpoint written by saveCheckpoint (or any safetensors state dict with official names). */
export function loadCheckpoint(path: string, model: Module, opts: { strict?: boolean } = {}): Record<string, string> {
  const f = loadSafetensors(path);
  const sd: StateDict = new Map();
  for (const [k, e] of f.tensors) sd.set(k, { shape: e.shape, data: toFloat32(e) });
  if (!sd.size) throw new IrcError('E_FORMAT', `${path}: no tensors in the checkpoint`);
  model.loadStateDict(sd, opts);
  return f.metadata;
}
