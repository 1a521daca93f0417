/**
 * Self-contained PNG codec (node:zlib only). Decodes every standard PNG (colour types 0/2/3/4/6, bit depths
 * 1-16, Adam7 interlaced or not) to 8-bit RGB, HWC order; alpha and tRNS are ignored (the colour channels are
 * returned as stored). Encodes 8-bit RGB with per-row adaptive filtering.
 */
import { inflateSync, deflateSync } from 'node:zlib';
import { IrcError } from '../errors.js';
import { readFileBytes, writeFileAtomic } from './atomic.js';

/** 8-bit RGB image, row-major HWC: data[(y * width + x) * 3 + c]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const MAX_PIXELS = 1 << 28;

let CRC_TABLE: Uint32Array | null = null;
function crcTable(): Uint32Array {
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  return CRC_TABLE;
}

/** CRC-32 (ISO-HDLC, as used by PNG and zlib). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  const t = crcTable();
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function bad(msg: string): IrcError {
  return new IrcError('E_FORMAT', `PNG: ${msg}`);
}

const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
const ADAM7: [number, number, number, number][] = [
  [0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2],
];

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Undo the filter of one scanline in place. `prev` is the previous unfiltered line (or null). */
function unfilter(ft: number, line: Uint8Array, prev: Uint8Array | null, bpp: number, y: number): void {
  const n = line.length;
  switch (ft) {
    case 0: return;
    case 1:
      for (let i = bpp; i < n; i++) line[i] = (line[i] + line[i - bpp]) & 0xff;
      return;
    case 2:
      if (prev) for (let i = 0; i < n; i++) line[i] = (line[i] + prev[i]) & 0xff;
      return;
    case 3:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? line[i - bpp] : 0;
        const b = prev ? prev[i] : 0;
        line[i] = (line[i] + ((a + b) >> 1)) & 0xff;
      }
      return;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? line[i - bpp] : 0;
        const b = prev ? prev[i] : 0;
        const c = prev && i >= bpp ? prev[i - bpp] : 0;
        line[i] = (line[i] + paeth(a, b, c)) & 0xff;
      }
      return;
    default:
      throw bad(`scanline ${y}: unknown filter type ${ft} (expected 0..4)`);
  }
}

interface Header {
  width: number; height: number; depth: number; colorType: number; interlace: number;
}

/** Decode a PNG file's bytes to 8-bit RGB. Throws IrcError('E_FORMAT') on malformed input. */
export function decodePng(bytes: Uint8Array): RgbImage {
  if (!(bytes instanceof Uint8Array)) throw new IrcError('E_ARG', `decodePng: expected a Uint8Array, found ${typeof bytes}`);
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw bad('missing PNG signature (not a PNG file)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let hdr: Header | null = null;
  let palette: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let sawEnd = false;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) throw bad(`truncated chunk header at byte ${pos}`);
    const len = dv.getUint32(pos);
    const typeBytes = bytes.subarray(pos + 4, pos + 8);
    const type = String.fromCharCode(...typeBytes);
    if (!/^[A-Za-z]{4}$/.test(type)) throw bad(`invalid chunk type ${JSON.stringify(type)} at byte ${pos}`);
    if (len > 0x7fffffff || pos + 12 + len > bytes.length) {
      throw bad(`chunk ${type} at byte ${pos} declares ${len} bytes but only ${bytes.length - pos - 12} remain (truncated file?)`);
    }
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    const want = dv.getUint32(pos + 8 + len);
    const got = crc32(body, crc32(typeBytes));
    if (want !== got) throw bad(`CRC mismatch in chunk ${type} at byte ${pos}: stored 0x${want.toString(16)}, computed 0x${got.toString(16)}`);
    pos += 12 + len;
    if (hdr === null && type !== 'IHDR') throw bad(`first chunk must be IHDR, found ${type}`);
    if (type === 'IHDR') {
      if (hdr) throw bad('duplicate IHDR chunk');
      if (len !== 13) throw bad(`IHDR must be 13 bytes, found ${len}`);
      const bd = new DataView(body.buffer, body.byteOffset, 13);
      hdr = { width: bd.getUint32(0), height: bd.getUint32(4), depth: body[8], colorType: body[9], interlace: body[12] };
      if (hdr.width === 0 || hdr.height === 0 || hdr.width > 0x7fffffff || hdr.height > 0x7fffffff) {
        throw bad(`invalid size ${hdr.width}x${hdr.height}`);
      }
      if (hdr.width * hdr.height > MAX_PIXELS) throw bad(`image too large: ${hdr.width}x${hdr.height} exceeds ${MAX_PIXELS} pixels`);
      const okDepths = DEPTHS[hdr.colorType];
      if (!okDepths) throw bad(`unknown colour type ${hdr.colorType} (expected 0, 2, 3, 4 or 6)`);
      if (!okDepths.includes(hdr.depth)) {
        throw bad(`bit depth ${hdr.depth} is not allowed for colour type ${hdr.colorType} (allowed: ${okDepths.join(', ')})`);
      }
      if (body[10] !== 0) throw bad(`unknown compression method ${body[10]} (expected 0)`);
      if (body[11] !== 0) throw bad(`unknown filter method ${body[11]} (expected 0)`);
      if (hdr.interlace > 1) throw bad(`unknown interlace method ${hdr.interlace} (expected 0 or 1)`);
    } else if (type === 'PLTE') {
      if (len === 0 || len % 3 !== 0 || len > 768) throw bad(`PLTE length must be a multiple of 3 in 3..768, found ${len}`);
      palette = body.slice();
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      sawEnd = true;
      break;
    } else if ((typeBytes[0] & 0x20) === 0) {
      throw bad(`unknown critical chunk ${type}`);
    }
  }
  if (!hdr) throw bad('no IHDR chunk');
  if (!sawEnd) throw bad('missing IEND chunk (truncated file?)');
  if (idat.length === 0) throw bad('no IDAT chunk');
  if (hdr.colorType === 3 && !palette) throw bad('colour type 3 (palette) without a PLTE chunk');
  return decodePixels(hdr, palette, Buffer.concat(idat));
}

function decodePixels(h: Header, palette: Uint8Array | null, zdata: Uint8Array): RgbImage {
  const { width: W, height: H, depth, colorType } = h;
  const ch = CHANNELS[colorType];
  const bitsPP = ch * depth;
  const bpp = Math.max(1, bitsPP >> 3);
  const passes = h.interlace ? ADAM7 : [[0, 0, 1, 1] as [number, number, number, number]];
  const dims = passes.map(([x0, y0, dx, dy]) => {
    const pw = W > x0 ? Math.ceil((W - x0) / dx) : 0;
    const ph = H > y0 ? Math.ceil((H - y0) / dy) : 0;
    return { pw, ph, stride: Math.ceil((pw * bitsPP) / 8) };
  });
  const expected = dims.reduce((s, d) => s + (d.pw && d.ph ? d.ph * (1 + d.stride) : 0), 0);
  let raw: Buffer;
  try {
    raw = inflateSync(zdata, { maxOutputLength: expected + 1 });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/maxOutputLength|buffer/i.test(msg)) throw bad(`image data is longer than the ${expected} bytes that ${W}x${H} needs`);
    throw bad(`corrupt image data (zlib: ${msg})`);
  }
  if (raw.length !== expected) throw bad(`image data has ${raw.length} bytes, expected ${expected} for ${W}x${H}`);
  const out = new Uint8Array(W * H * 3);
  const maxV = (1 << depth) - 1;
  const scale = depth < 8 ? 255 / maxV : 1;
  const mask = maxV;
  const npal = palette ? palette.length / 3 : 0;
  let off = 0;
  for (let p = 0; p < passes.length; p++) {
    const [x0, y0, dx, dy] = passes[p];
    const { pw, ph, stride } = dims[p];
    if (pw === 0 || ph === 0) continue;
    let prev: Uint8Array | null = null;
    for (let py = 0; py < ph; py++) {
      const ft = raw[off];
      const line = raw.subarray(off + 1, off + 1 + stride);
      off += 1 + stride;
      unfilter(ft, line, prev, bpp, py);
      prev = line;
      const sample = (i: number): number => {
        if (depth === 8) return line[i];
        if (depth === 16) return line[2 * i] * 256 + line[2 * i + 1];
        const bit = i * depth;
        return (line[bit >> 3] >> (8 - depth - (bit & 7))) & mask;
      };
      const to8 = (v: number): number => (depth === 16 ? Math.floor((v * 255 + 32767) / 65535) : depth < 8 ? Math.round(v * scale) : v);
      const y = y0 + py * dy;
      for (let px = 0; px < pw; px++) {
        const o = (y * W + x0 + px * dx) * 3;
        const s0 = px * ch;
        if (colorType === 3) {
          const idx = sample(s0);
          if (idx >= npal) throw bad(`palette index ${idx} out of range (palette has ${npal} entries)`);
          out[o] = palette![idx * 3]; out[o + 1] = palette![idx * 3 + 1]; out[o + 2] = palette![idx * 3 + 2];
        } else if (colorType === 0 || colorType === 4) {
          const g = to8(sample(s0));
          out[o] = g; out[o + 1] = g; out[o + 2] = g;
        } else {
          out[o] = to8(sample(s0)); out[o + 1] = to8(sample(s0 + 1)); out[o + 2] = to8(sample(s0 + 2));
        }
      }
    }
  }
  return { width: W, height: H, data: out };
}

function checkImage(img: RgbImage, who: string): void {
  if (!img || typeof img !== 'object') throw new IrcError('E_ARG', `${who}: expected {width, height, data}`);
  const { width, height, data } = img;
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width <= 0 || height <= 0 ||
      width > 0x7fffffff || height > 0x7fffffff) {
    throw new IrcError('E_ARG', `${who}: invalid image size ${width}x${height}`);
  }
  if (!(data instanceof Uint8Array)) throw new IrcError('E_DTYPE', `${who}: data must be a Uint8Array (8-bit RGB)`);
  if (data.length !== width * height * 3) {
    throw new IrcError('E_SHAPE', `${who}: ${width}x${height} RGB needs ${width * height * 3} bytes, data has ${data.length}`);
  }
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

/** Encode 8-bit RGB (HWC) as a non-interlaced PNG; each row gets the filter with the smallest |residual| sum. */
export function encodePng(img: RgbImage, level = 9): Uint8Array {
  checkImage(img, 'encodePng');
  const { width: W, height: H, data } = img;
  const stride = W * 3;
  const raw = new Uint8Array(H * (stride + 1));
  const cand = [0, 1, 2, 3, 4].map(() => new Uint8Array(stride));
  const zero = new Uint8Array(stride);
  for (let y = 0; y < H; y++) {
    const cur = data.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? data.subarray((y - 1) * stride, y * stride) : zero;
    let best = 0, bestCost = Infinity;
    for (let f = 0; f < 5; f++) {
      const c = cand[f];
      let cost = 0;
      for (let i = 0; i < stride; i++) {
        const a = i >= 3 ? cur[i - 3] : 0, b = prev[i], cc = i >= 3 ? prev[i - 3] : 0;
        const pred = f === 0 ? 0 : f === 1 ? a : f === 2 ? b : f === 3 ? (a + b) >> 1 : paeth(a, b, cc);
        const r = (cur[i] - pred) & 0xff;
        c[i] = r;
        cost += r < 128 ? r : 256 - r;
      }
      if (cost < bestCost) { bestCost = cost; best = f; }
    }
    raw[y * (stride + 1)] = best;
    raw.set(cand[best], y * (stride + 1) + 1);
  }
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, W); hv.setUint32(4, H);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const parts = [
    Uint8Array.from(SIGNATURE), chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level })), chunk('IEND', new Uint8Array(0)),
  ];
  return Buffer.concat(parts);
}

/** Read a PNG file as 8-bit RGB (E_IO if unreadable, E_FORMAT if malformed; messages name the file). */
export function readImage(path: string): RgbImage {
  const bytes = readFileBytes(path);
  try {
    return decodePng(bytes);
  } catch (e) {
    if (e instanceof IrcError) throw new IrcError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** Write an 8-bit RGB image as PNG, atomically. */
export function writeImage(path: string, img: RgbImage): void {
  writeFileAtomic(path, encodePng(img));
}
