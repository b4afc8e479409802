/** Parsing of the shape strings the export commands take: `1x3x224x224` and `333x517,800x1216`. */

export interface InputShape {
  batch: number;
  channels: number;
  height: number;
  width: number;
}

/** The smallest height/width: four stages with patch 4 and three 2x merges need >= 32 pixels. */
export const MIN_SIDE = 32;
/** A guard against typos (100000 pixels a side would not fit in memory anyway). */
export const MAX_SIDE = 8192;

const dim = /^\d+$/;

/** `BxCxHxW`, e.g. `1x3x224x224`; C must be 3. Throws an Error naming what is accepted. */
export function parseInputShape(raw: string): InputShape {
  const parts = raw.trim().toLowerCase().split('x');
  if (parts.length !== 4 || !parts.every((p) => dim.test(p))) {
    throw new Error('expected BxCxHxW with integers, e.g. 1x3x224x224');
  }
  const [batch, channels, height, width] = parts.map(Number) as [number, number, number, number];
  if (channels !== 3) throw new Error(`the backbone takes 3 channels (RGB), got ${channels}`);
  if (batch < 1 || batch > 64) throw new Error(`batch must be between 1 and 64, got ${batch}`);
  checkSide(height, 'height');
  checkSide(width, 'width');
  return { batch, channels, height, width };
}

/** `HxW[,HxW...]`, e.g. `333x517,800x1216`. */
export function parseSizes(raw: string): [number, number][] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new Error('expected one or more HxW sizes, e.g. 333x517,800x1216');
  return items.map((item) => {
    const parts = item.toLowerCase().split('x');
    if (parts.length !== 2 || !parts.every((p) => dim.test(p))) {
      throw new Error(`expected HxW sizes such as 333x517, got ${JSON.stringify(item)}`);
    }
    const [h, w] = parts.map(Number) as [number, number];
    checkSide(h, 'height');
    checkSide(w, 'width');
    return [h, w];
  });
}

function checkSide(v: number, name: string): void {
  if (v < MIN_SIDE || v > MAX_SIDE) throw new Error(`${name} must be between ${MIN_SIDE} and ${MAX_SIDE}, got ${v}`);
}

export const formatShape = (dims: readonly (number | string)[]): string => dims.join('x');
