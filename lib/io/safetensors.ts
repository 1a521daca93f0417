/**
 * safetensors reader/writer (https://github.com/huggingface/safetensors format):
 *   [u64 little-endian header length N][N bytes UTF-8 JSON header][raw little-endian tensor data]
 * The header maps tensor names to {dtype, shape, data_offsets:[begin,end]} (offsets relative to the data
 * section) plus an optional "__metadata__" object of string -> string.
 */
import { IrcError } from '../errors.js';
import { readFileBytes, writeFileAtomic } from './atomic.js';
import { decodeF16, encodeF16, decodeBF16, encodeBF16 } from './half.js';

export type StDtype = 'F32' | 'F16' | 'F64' | 'I64' | 'I32' | 'BF16' | 'U8';

/**
 * One tensor. F16 and BF16 data is kept as raw IEEE bit patterns in a Uint16Array; use toFloat32() to
 * decode. Other dtypes map to their natural typed array (F32 Float32Array, F64 Float64Array,
 * I64 BigInt64Array, I32 Int32Array, U8 Uint8Array). Arrays own their memory (never views of the file).
 */
export interface StEntry {
  dtype: StDtype;
  shape: number[];
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;
}

export interface StFile {
  tensors: Map<string, StEntry>;
  metadata: Record<string, string>;
}

/** Input to the writer. F16/BF16 accept floats (Float32Array/number[], encoded round-to-nearest-even) or a
 * Uint16Array of raw bits; I64 accepts a BigInt64Array or integer numbers. */
export interface StWriteEntry {
  dtype: StDtype;
  shape: number[];
  data: ArrayLike<number> | BigInt64Array;
}

const ITEMSIZE: Record<StDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, U8: 1 };
export const ST_DTYPES: readonly StDtype[] = Object.keys(ITEMSIZE) as StDtype[];

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fmt(msg: string): IrcError {
  return new IrcError('E_FORMAT', `safetensors: ${msg}`);
}

function isDtype(s: unknown): s is StDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ITEMSIZE, s);
}

function describe(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    if (s === undefined) return String(v);
    return s.length > 80 ? s.slice(0, 77) + '...' : s;
  } catch {
    return String(v);
  }
}

/** Copy `n` bytes at `off` into a fresh, aligned buffer, converting to host byte order if needed. */
function copyBytes(bytes: Uint8Array, off: number, n: number, itemsize: number): ArrayBuffer {
  const out = new Uint8Array(n);
  out.set(bytes.subarray(off, off + n));
  if (!LITTLE_ENDIAN && itemsize > 1) {
    for (let i = 0; i < n; i += itemsize) out.subarray(i, i + itemsize).reverse();
  }
  return out.buffer;
}

function makeArray(dtype: StDtype, buf: ArrayBuffer): StEntry['data'] {
  switch (dtype) {
    case 'F32': return new Float32Array(buf);
    case 'F64': return new Float64Array(buf);
    case 'I64': return new BigInt64Array(buf);
    case 'I32': return new Int32Array(buf);
    case 'U8': return new Uint8Array(buf);
    case 'F16':
    case 'BF16': return new Uint16Array(buf);
  }
}

/** Parse a safetensors byte buffer. Throws IrcError('E_FORMAT') on any malformed input. */
export function readSafetensors(bytes: Uint8Array): StFile {
  if (!(bytes instanceof Uint8Array)) {
    throw new IrcError('E_ARG', `readSafetensors: expected a Uint8Array, found ${typeof bytes}`);
  }
  if (bytes.byteLength < 8) {
    throw fmt(`file too short: expected at least 8 bytes (header length), found ${bytes.byteLength}`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen64 = dv.getBigUint64(0, true);
  const avail = bytes.byteLength - 8;
  if (hlen64 > BigInt(avail)) {
    throw fmt(`header length ${hlen64} exceeds the ${avail} bytes that follow the 8-byte length prefix`);
  }
  const hlen = Number(hlen64);
  if (hlen < 2) throw fmt(`header length ${hlen} is too small for a JSON object`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + hlen));
  } catch {
    throw fmt('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw fmt(`header is not valid JSON (${e instanceof Error ? e.message : String(e)}); starts with ${describe(text.slice(0, 40))}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw fmt(`header must be a JSON object, found ${Array.isArray(header) ? 'an array' : describe(header)}`);
  }
  const dataStart = 8 + hlen;
  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const spans: { name: string; begin: number; end: number }[] = [];
  const parsed: { name: string; dtype: StDtype; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw fmt(`__metadata__ must be an object of strings, found ${describe(raw)}`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw fmt(`__metadata__["${k}"] must be a string, found ${describe(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw fmt(`tensor '${name}': expected {dtype, shape, data_offsets}, found ${describe(raw)}`);
    }
    const info = raw as Record<string, unknown>;
    const dtype = info.dtype;
    if (!isDtype(dtype)) {
      throw fmt(`tensor '${name}': unknown dtype ${describe(dtype)} (supported: ${ST_DTYPES.join(', ')})`);
    }
    const shape = info.shape;
    if (!Array.isArray(shape)) throw fmt(`tensor '${name}': shape must be an array, found ${describe(shape)}`);
    let numel = 1;
    for (const d of shape) {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        throw fmt(`tensor '${name}': shape entries must be non-negative integers, found ${describe(shape)}`);
      }
      numel *= d;
    }
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 ||
        !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      throw fmt(`tensor '${name}': data_offsets must be [begin, end] non-negative integers, found ${describe(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) throw fmt(`tensor '${name}': data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataLen) {
      throw fmt(`tensor '${name}': data_offsets [${begin}, ${end}] out of range: the data section has ${dataLen} bytes`);
    }
    const expected = numel * ITEMSIZE[dtype];
    if (!Number.isSafeInteger(expected) || expected !== end - begin) {
      throw fmt(`tensor '${name}': shape [${shape.join(', ')}] with dtype ${dtype} needs ${expected} bytes, ` +
        `but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    if (end > begin) spans.push({ name, begin, end });
    parsed.push({ name, dtype, shape: shape.slice() as number[], begin, end });
  }

  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const p = spans[i - 1], c = spans[i];
    if (c.begin < p.end) {
      throw fmt(`tensors '${p.name}' [${p.begin}, ${p.end}] and '${c.name}' [${c.begin}, ${c.end}] overlap`);
    }
  }

  const tensors = new Map<string, StEntry>();
  for (const t of parsed) {
    const n = t.end - t.begin;
    const buf = copyBytes(bytes, dataStart + t.begin, n, ITEMSIZE[t.dtype]);
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: makeArray(t.dtype, buf) });
  }
  return { tensors, metadata };
}

/** Read and parse a .safetensors file (E_IO if unreadable, E_FORMAT if malformed; messages name the file). */
export function loadSafetensors(path: string): StFile {
  const bytes = readFileBytes(path);
  try {
    return readSafetensors(bytes);
  } catch (e) {
    if (e instanceof IrcError) throw new IrcError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * Float32 view of an entry's values: F16/BF16 decoded, F64 rounded, integers converted. For F32 the
 * entry's own array is returned (not a copy).
 */
export function toFloat32(entry: StEntry): Float32Array {
  const d = entry.data;
  switch (entry.dtype) {
    case 'F32': return d as Float32Array;
    case 'F16': return decodeF16(d as Uint16Array);
    case 'BF16': return decodeBF16(d as Uint16Array);
    case 'I64': {
      const src = d as BigInt64Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = Number(src[i]);
      return out;
    }
    default: return Float32Array.from(d as Float64Array | Int32Array | Uint8Array);
  }
}

function encodeEntry(name: string, e: StWriteEntry): Uint8Array {
  if (e === null || typeof e !== 'object') throw new IrcError('E_ARG', `writeSafetensors: entry '${name}' is not an object`);
  if (!isDtype(e.dtype)) {
    throw new IrcError('E_DTYPE', `writeSafetensors: tensor '${name}': unknown dtype ${describe(e.dtype)} (supported: ${ST_DTYPES.join(', ')})`);
  }
  if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new IrcError('E_SHAPE', `writeSafetensors: tensor '${name}': shape must be non-negative integers, found ${describe(e.shape)}`);
  }
  const numel = e.shape.reduce((a, b) => a * b, 1);
  const src = e.data;
  if (src === null || typeof src !== 'object' || typeof (src as ArrayLike<unknown>).length !== 'number') {
    throw new IrcError('E_ARG', `writeSafetensors: tensor '${name}': data must be an array or typed array`);
  }
  if (src.length !== numel) {
    throw new IrcError('E_SHAPE', `writeSafetensors: tensor '${name}': shape [${e.shape.join(', ')}] has ${numel} elements, data has ${src.length}`);
  }
  const isBig = src instanceof BigInt64Array || src instanceof BigUint64Array;
  if (isBig && e.dtype !== 'I64') {
    throw new IrcError('E_DTYPE', `writeSafetensors: tensor '${name}': BigInt64Array data needs dtype I64, found ${e.dtype}`);
  }
  const num = src as ArrayLike<number>;
  let arr: ArrayBufferView;
  switch (e.dtype) {
    case 'F32': arr = src instanceof Float32Array ? src : Float32Array.from(num); break;
    case 'F64': arr = src instanceof Float64Array ? src : Float64Array.from(num); break;
    case 'I32': {
      if (!(src instanceof Int32Array)) checkInts(name, num, -2147483648, 2147483647);
      arr = src instanceof Int32Array ? src : Int32Array.from(num);
      break;
    }
    case 'U8': {
      if (!(src instanceof Uint8Array)) checkInts(name, num, 0, 255);
      arr = src instanceof Uint8Array ? src : Uint8Array.from(num);
      break;
    }
    case 'I64': {
      if (isBig) { arr = src as BigInt64Array; break; }
      checkInts(name, num, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      const out = new BigInt64Array(numel);
      for (let i = 0; i < numel; i++) out[i] = BigInt(num[i]);
      arr = out;
      break;
    }
    case 'F16':
    case 'BF16': {
      if (src instanceof Uint16Array) { arr = src; break; }
      arr = e.dtype === 'F16' ? encodeF16(num) : encodeBF16(num);
      break;
    }
  }
  const view = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  const item = ITEMSIZE[e.dtype];
  if (LITTLE_ENDIAN || item === 1) return view;
  return new Uint8Array(copyBytes(view, 0, view.byteLength, item));
}

function checkInts(name: string, a: ArrayLike<number>, lo: number, hi: number): void {
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (!Number.isInteger(v) || v < lo || v > hi) {
      throw new IrcError('E_ARG', `writeSafetensors: tensor '${name}': element ${i} = ${v} is not an integer in [${lo}, ${hi}]`);
    }
  }
}

/**
 * Serialise tensors to safetensors bytes. Tensor names are sorted; data is contiguous in that order; the
 * header is padded with spaces so the data section starts at a multiple of 8.
 */
export function writeSafetensors(entries: Record<string, StWriteEntry>, metadata?: Record<string, string>): Uint8Array {
  if (entries === null || typeof entries !== 'object') throw new IrcError('E_ARG', 'writeSafetensors: entries must be an object');
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    const m: Record<string, string> = {};
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new IrcError('E_ARG', `writeSafetensors: metadata["${k}"] must be a string, found ${typeof v}`);
      m[k] = v;
    }
    header.__metadata__ = m;
  }
  const names = Object.keys(entries).sort();
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const name of names) {
    if (name === '__metadata__' || name.length === 0) {
      throw new IrcError('E_ARG', `writeSafetensors: invalid tensor name ${describe(name)}`);
    }
    const blob = encodeEntry(name, entries[name]);
    header[name] = { dtype: entries[name].dtype, shape: entries[name].shape.slice(), data_offsets: [off, off + blob.byteLength] };
    blobs.push(blob);
    off += blob.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let pos = 8 + json.byteLength;
  for (const b of blobs) { out.set(b, pos); pos += b.byteLength; }
  return out;
}

/** Write a .safetensors file atomically (see writeFileAtomic). */
export function saveSafetensors(path: string, entries: Record<string, StWriteEntry>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, writeSafetensors(entries, metadata));
}
