/** Parsing of the shape strings the export commands take: `1x3x224x224` and `333x517,800x1216`. */

export interface InputShape {
  batch: number;
  channels: number;
  height: number;
  width: number;
}

/** The smallest height/width: four stages with patch 4 and three 2x merges need >= 32 pixels. */
const MIN_SIDE = 32;
/** A guard against typos (100000 pixels a side would not fit in memory anyway). */
const MAX_SIDE = 8192;

/** `text` split at `x` into `n` whole numbers (`1x3x224x224`, `333x517`), else undefined. */
function dims(text: string, n: number): number[] | undefined {
  const parts = text.trim().toLowerCase().split('x');
  return parts.length === n && parts.every((p) => /^\d+$/.test(p)) ? parts.map(Number) : undefined;
}

/** A height and a width, each checked against MIN_SIDE..MAX_SIDE. */
function checkSides(height: number, width: number): void {
  for (const [v, name] of [[height, 'height'], [width, 'width']] as const) {
    if (v < MIN_SIDE || v > MAX_SIDE) throw new Error(`${name} must be between ${MIN_SIDE} and ${MAX_SIDE}, got ${v}`);
  }
}

/** `BxCxHxW`, e.g. `1x3x224x224`; C must be 3. Throws an Error naming what is accepted. */
export function parseInputShape(raw: string): InputShape {
  const d = dims(raw, 4);
  if (!d) throw new Error('expected BxCxHxW with integers, e.g. 1x3x224x224');
  const [batch, channels, height, width] = d as [number, number, number, number];
  if (channels !== 3) throw new Error(`the backbone takes 3 channels (RGB), got ${channels}`);
  if (batch < 1 || batch > 64) throw new Error(`batch must be between 1 and 64, got ${batch}`);
  checkSides(height, width);
  return { batch, channels, height, width };
}

/** `HxW[,HxW...]`, e.g. `333x517,800x1216`. */
export function parseSizes(raw: string): [number, number][] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new Error('expected one or more HxW sizes, e.g. 333x517,800x1216');
  return items.map((item) => {
    const d = dims(item, 2);
    if (!d) throw new Error(`expected HxW sizes such as 333x517, got ${JSON.stringify(item)}`);
    const [h, w] = d as [number, number];
    checkSides(h, w);
    return [h, w];
  });
}

export const formatShape = (dims: readonly (number | string)[]): string => dims.join('x');
