/** Minimal NumPy `.npy` (format 1.0, little-endian float32, C order) reading and writing. */
import { readFileSync, writeFileSync } from 'node:fs';

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

export interface NpyArray {
  shape: number[];
  data: Float32Array;
}

export function encodeNpy(data: Float32Array, shape: readonly number[]): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = MAGIC.length + 2 + 2 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const head = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(head, 0);
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

export function writeNpy(path: string, data: Float32Array, shape: readonly number[]): void {
  writeFileSync(path, encodeNpy(data, shape));
}

/** Reads a float32 (`<f4`) or float64 (`<f8`) C-order array as Float32Array. */
export function readNpy(path: string): NpyArray {
  const buf = readFileSync(path);
  if (!buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${path}: not a .npy file`);
  const major = buf[6]!;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order is not supported`);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const bytes = buf.subarray(start + headerLen);
  const copy = new Uint8Array(bytes); // aligned copy
  if (descr === '<f4') return { shape, data: new Float32Array(copy.buffer, 0, count) };
  if (descr === '<f8') return { shape, data: Float32Array.from(new Float64Array(copy.buffer, 0, count)) };
  throw new Error(`${path}: dtype ${descr ?? '?'} is not supported (float32/float64 only)`);
}
