/**
 * Image input for the exported backbones, as MMDetection's DetDataPreprocessor prepares it for
 * the Swin configs: decoded to RGB (mmcv reads BGR and the config sets bgr_to_rgb=True, so the
 * network sees RGB), float32, normalised `(x - mean) / std` per channel, then padded bottom/right
 * with zeros (after normalisation) to a multiple of 32.
 *
 * Images are decoded with sharp (libvips; the same libjpeg-turbo family of decoders as OpenCV),
 * EXIF orientation applied as OpenCV's IMREAD_COLOR does, alpha dropped without compositing (as
 * OpenCV does), greyscale replicated to three channels.
 */
import { BadInputError } from '../../utils/errors.js';

export const MEAN = [123.675, 116.28, 103.53] as const;
export const STD = [58.395, 57.12, 57.375] as const;
export const PAD_DIVISOR = 32;

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, 8 bits. */
  data: Uint8Array;
}

export interface NetworkInput {
  /** [1, 3, H, W] */
  dims: [number, number, number, number];
  data: Float32Array;
  /** Height and width of the image content inside the padded input. */
  content: [number, number];
}

/** Decodes an image file (JPEG, PNG, WebP, TIFF...) to 8-bit RGB; optionally resizes (bilinear). */
export async function decodeImage(path: string, resize?: { width: number; height: number }): Promise<RgbImage> {
  const { default: sharp } = await import('sharp');
  let pipeline = sharp(path, { failOn: 'error' }).autoOrient();
  if (resize) pipeline = pipeline.resize(resize.width, resize.height, { fit: 'fill', kernel: 'linear' });
  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    out = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new BadInputError(`cannot decode image ${path}: ${reason}`, 'give a JPEG, PNG, WebP or TIFF file');
  }
  const { width, height, channels } = out.info;
  const src = out.data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, n = width * height; i < n; i++) {
    if (channels >= 3) {
      rgb[3 * i] = src[channels * i]!;
      rgb[3 * i + 1] = src[channels * i + 1]!;
      rgb[3 * i + 2] = src[channels * i + 2]!;
    } else {
      const g = src[channels * i]!; // grey or grey + alpha
      rgb[3 * i] = g;
      rgb[3 * i + 1] = g;
      rgb[3 * i + 2] = g;
    }
  }
  return { width, height, data: rgb };
}

/** Rounds `v` up to a multiple of `d`. */
export const ceilTo = (v: number, d: number): number => Math.ceil(v / d) * d;

/**
 * Normalises an RGB image into a zero-padded [1, 3, padH, padW] float32 tensor (float32
 * arithmetic, as PyTorch does it, so the values match MMDetection's exactly).
 */
export function toNetworkInput(img: RgbImage, padH: number, padW: number): NetworkInput {
  if (padH < img.height || padW < img.width) throw new Error('padding target smaller than the image');
  const plane = padH * padW;
  const data = new Float32Array(3 * plane); // zeros = the pad value after normalisation
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const mean = f(MEAN[c]!);
    const std = f(STD[c]!);
    const base = c * plane;
    for (let y = 0; y < img.height; y++) {
      const row = base + y * padW;
      const srcRow = y * img.width * 3;
      for (let x = 0; x < img.width; x++) {
        data[row + x] = f(f(img.data[srcRow + 3 * x + c]! - mean) / std);
      }
    }
  }
  return { dims: [1, 3, padH, padW], data, content: [img.height, img.width] };
}
